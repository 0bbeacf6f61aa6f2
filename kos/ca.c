/* The credential authority's handle and what it administers: CA keys inside
 * the ca token (init, rotation, JWKS), registered clients and their one-time
 * enrollment secrets, and the threat level (kept in the store's meta table,
 * manual or raised automatically). Credentials themselves: kos/cred.c.
 *
 * CA keys: the key pair labelled "kos-ca:KID" on the first reachable token
 * with role ca; the store keeps kid, token, label, public key and times.
 * A key is made before the store knows it; a failed install destroys it, a
 * crash between the two leaves an unused key pair on the token (no row
 * names it, so nothing uses it).
 *
 * The copy of CA public keys and revocations a process verifies against is
 * refreshed by kos_ca_sync(): see kos/ca.h. */
#include "config.h"

#include "kos/ca.h"
#include "common/jws.h"
#include "kos/signer.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#define THREAT_KEY "threat"

kos_usec kos_ca_now(const kos_ca *ca)
{
	return ca->clock != NULL ? ca->clock(ca->clock_arg) : kos_now();
}

int64_t kos_ca_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

kos_usec kos_ca_max_lifetime(const struct kos_policy *pol)
{
	kos_usec life = 0;
	double factor = 0;
	int i;

	for (i = KOS_TIER_LOW; i <= KOS_TIER_HIGH; i++)
		if (pol->credentials.lifetime[i] > life)
			life = pol->credentials.lifetime[i];
	for (i = 0; i < KOS_THREAT_COUNT; i++)
		if (pol->threat[i].lifetime_factor > factor)
			factor = pol->threat[i].lifetime_factor;
	return (kos_usec)ceil((double)life * (factor > 1.0 ? factor : 1.0));
}

/* The cache's HMAC-SHA256, keyed with fresh random bits that live on only
 * inside the two states; false on failure (the caller frees them). */
static bool cache_mac_new(kos_ca *ca)
{
	uint8_t key[32], pad[64];
	bool ok;
	size_t i;

	ca->cache_inner = EVP_MD_CTX_new();
	ca->cache_outer = EVP_MD_CTX_new();
	if (ca->cache_inner == NULL || ca->cache_outer == NULL ||
	    RAND_priv_bytes(key, sizeof(key)) != 1)
		return false;
	memset(pad, 0x36, sizeof(pad));
	for (i = 0; i < sizeof(key); i++)
		pad[i] ^= key[i];
	ok = EVP_DigestInit_ex(ca->cache_inner, EVP_sha256(), NULL) == 1 &&
	     EVP_DigestUpdate(ca->cache_inner, pad, sizeof(pad)) == 1;
	memset(pad, 0x5c, sizeof(pad));
	for (i = 0; i < sizeof(key); i++)
		pad[i] ^= key[i];
	ok = ok && EVP_DigestInit_ex(ca->cache_outer, EVP_sha256(), NULL) == 1 &&
	     EVP_DigestUpdate(ca->cache_outer, pad, sizeof(pad)) == 1;
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(pad, sizeof(pad));
	return ok;
}

/* The handle both constructors share; borrowed pointers may be NULL here. */
static kos_rv ca_alloc(const kos_policy *pol, kos_store *st, kos_hsm *hsm, kos_trust *tr,
		       kos_ca **out)
{
	pthread_rwlockattr_t attr;
	kos_ca *ca;
	int rc;

	ca = calloc(1, sizeof(*ca));
	if (ca == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	ca->pol = pol;
	ca->st = st;
	ca->hsm = hsm;
	ca->tr = tr;
	atomic_init(&ca->hint_seen, 0);
	atomic_init(&ca->last_poll, 0);
	atomic_init(&ca->interval, KOS_CA_CHECK_DEFAULT);
	atomic_init(&ca->loaded, 0);
	atomic_init(&ca->last_eval, INT64_MIN);
	atomic_init(&ca->threat_on_issue, 1);
	if (pthread_mutex_init(&ca->sync_lock, NULL) != 0) {
		free(ca);
		return kos_error_set(KOS_E_NOMEM, "cannot create a lock");
	}
	/* verifications take the read lock millions of times a second; the
	 * writer (a revocation reaching the cache) must not starve behind them.
	 * No path takes the read lock twice, so writer preference is safe. */
	if (pthread_rwlockattr_init(&attr) != 0) {
		pthread_mutex_destroy(&ca->sync_lock);
		free(ca);
		return kos_error_set(KOS_E_NOMEM, "cannot create a lock");
	}
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	rc = pthread_rwlock_init(&ca->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	if (rc != 0) {
		pthread_mutex_destroy(&ca->sync_lock);
		free(ca);
		return kos_error_set(KOS_E_NOMEM, "cannot create a lock");
	}
	if (!cache_mac_new(ca)) {
		EVP_MD_CTX_free(ca->cache_inner);
		EVP_MD_CTX_free(ca->cache_outer);
		pthread_rwlock_destroy(&ca->lock);
		pthread_mutex_destroy(&ca->sync_lock);
		free(ca);
		return kos_error_set(KOS_E_CRYPTO, "cannot key the credential cache (HMAC-SHA256)");
	}
	*out = ca;
	return KOS_OK;
}

kos_rv kos_ca_new(const kos_policy *pol, kos_store *st, kos_hsm *hsm, kos_trust *tr, kos_ca **out)
{
	if (out == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_ca_new: no output handle");
	*out = NULL;
	if (pol == NULL || st == NULL || tr == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_ca_new: policy, store and trust needed");
	return ca_alloc(pol, st, hsm, tr, out);
}

/* One JWK of a JWKS into k: an EC P-256 signature key with a kos kid,
 * checked by rebuilding its SubjectPublicKeyInfo and reading the point back
 * (OpenSSL refuses a point off the curve). */
static kos_rv jwk_key(json_t *jwk, size_t i, struct ca_pub *k)
{
	/* DER SubjectPublicKeyInfo of a P-256 key up to the uncompressed point */
	static const uint8_t prefix[] = { 0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48,
					  0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
					  0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04 };
	const char *kty = NULL, *crv = NULL, *x = NULL, *y = NULL, *kid = NULL, *alg = NULL,
		   *use = NULL;
	uint8_t spki[sizeof(prefix) + 64];
	size_t n;
	char xx[44], yy[44];
	kos_rv rv;

	if (json_unpack(jwk, "{s:s, s:s, s:s, s:s, s:s, s?s, s?s}", "kty", &kty, "crv", &crv, "x",
			&x, "y", &y, "kid", &kid, "alg", &alg, "use", &use) != 0 ||
	    strcmp(kty, "EC") != 0 || strcmp(crv, "P-256") != 0 ||
	    (alg != NULL && strcmp(alg, "ES256") != 0) || (use != NULL && strcmp(use, "sig") != 0))
		return kos_error_set(KOS_E_PARSE,
				     "JWKS key #%zu is not an EC P-256 ES256 signature key with x, "
				     "y and kid",
				     i + 1);
	if (!kos_b64url_is(kid, KOS_CA_KID_LEN) || !kos_b64url_is(x, 43) || !kos_b64url_is(y, 43))
		return kos_error_set(KOS_E_PARSE, "JWKS key #%zu: kid, x or y malformed", i + 1);
	memcpy(spki, prefix, sizeof(prefix));
	n = 32;
	rv = kos_b64url_decode(x, 43, spki + sizeof(prefix), &n);
	if (rv == KOS_OK && n == 32) {
		n = 32;
		rv = kos_b64url_decode(y, 43, spki + sizeof(prefix) + 32, &n);
	}
	if (rv != KOS_OK || n != 32)
		return kos_error_set(KOS_E_PARSE, "JWKS key #%zu: x or y is not 32 bytes", i + 1);
	if (kos_jwk_p256(spki, sizeof(spki), xx, yy) != KOS_OK || strcmp(xx, x) != 0 ||
	    strcmp(yy, y) != 0)
		return kos_error_set(KOS_E_PARSE, "JWKS key #%zu (kid %s): not a P-256 point",
				     i + 1, kid);
	memset(k, 0, sizeof(*k));
	rv = kos_es256_key(spki, sizeof(spki), &k->pkey);
	if (rv != KOS_OK)
		return kos_error_set(rv, "JWKS key #%zu (kid %s): not a P-256 key", i + 1, kid);
	memcpy(k->kid, kid, KOS_CA_KID_LEN + 1);
	memcpy(k->spki, spki, sizeof(spki));
	k->spki_len = sizeof(spki);
	return KOS_OK;
}

/* Frees a copy of n keys (their references to the parsed keys). */
static void keys_free(struct ca_pub *keys, size_t n)
{
	size_t i;

	if (keys == NULL)
		return;
	for (i = 0; i < n; i++)
		EVP_PKEY_free(keys[i].pkey);
	free(keys);
}

kos_rv kos_ca_new_from_jwks(const kos_policy *pol, const char *jwks, kos_ca **out)
{
	json_t *doc = NULL, *keys, *jwk;
	struct ca_pub *pub = NULL;
	json_error_t jerr;
	kos_ca *ca = NULL;
	size_t i, n = 0;
	kos_rv rv;

	if (out == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_ca_new_from_jwks: no output handle");
	*out = NULL;
	if (pol == NULL || jwks == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_ca_new_from_jwks: policy and JWKS needed");
	if (strlen(jwks) > KOS_CA_JWKS_MAX)
		return kos_error_set(KOS_E_RANGE, "JWKS larger than %d bytes", KOS_CA_JWKS_MAX);
	doc = json_loads(jwks, JSON_REJECT_DUPLICATES, &jerr);
	keys = json_object_get(doc, "keys");
	if (doc == NULL || !json_is_array(keys) || json_array_size(keys) == 0) {
		rv = kos_error_set(KOS_E_PARSE, "not a JWKS document ({\"keys\": [...]}) with a key");
		goto out;
	}
	n = json_array_size(keys);
	if (n > KOS_CA_JWKS_KEYS) {
		rv = kos_error_set(KOS_E_RANGE, "JWKS with more than %d keys", KOS_CA_JWKS_KEYS);
		goto out;
	}
	pub = calloc(n, sizeof(*pub));
	if (pub == NULL) {
		rv = kos_error_set(KOS_E_NOMEM, "out of memory");
		goto out;
	}
	json_array_foreach(keys, i, jwk)
	{
		rv = jwk_key(jwk, i, &pub[i]);
		if (rv != KOS_OK)
			goto out;
		for (size_t j = 0; j < i; j++)
			if (strcmp(pub[j].kid, pub[i].kid) == 0) {
				rv = kos_error_set(KOS_E_PARSE, "JWKS names kid %s twice",
						   pub[i].kid);
				goto out;
			}
	}
	rv = ca_alloc(pol, NULL, NULL, NULL, &ca);
	if (rv != KOS_OK)
		goto out;
	/* the copy is fixed: kos_ca_sync() has no store to follow */
	ca->keys = pub;
	ca->n_keys = n;
	pub = NULL;
	atomic_store(&ca->loaded, 1);
	*out = ca;
out:
	keys_free(pub, n);
	json_decref(doc);
	return rv;
}

kos_rv kos_ca_no_store(void)
{
	return kos_error_set(KOS_E_INVALID, "this credential authority verifies with public keys "
					    "only (a JWKS): it has no state store");
}

void kos_ca_free(kos_ca *ca)
{
	if (ca == NULL)
		return;
	kos_ca_cache_clear(ca);
	free(ca->slots);
	keys_free(ca->keys, ca->n_keys);
	kos_ca_revoked_free(&ca->revoked);
	pthread_rwlock_destroy(&ca->lock);
	pthread_mutex_destroy(&ca->sync_lock);
	EVP_MD_CTX_free(ca->cache_inner);
	EVP_MD_CTX_free(ca->cache_outer);
	free(ca);
}

void kos_ca_set_clock(kos_ca *ca, kos_clock_fn fn, void *arg)
{
	ca->clock = fn;
	ca->clock_arg = fn != NULL ? arg : NULL;
}

void kos_ca_set_policy(kos_ca *ca, const kos_policy *pol)
{
	if (pol == NULL)
		return;
	pthread_rwlock_wrlock(&ca->lock);
	ca->pol = pol;
	/* iss, aud and leeway may differ: judge every credential again */
	kos_ca_cache_clear(ca);
	pthread_rwlock_unlock(&ca->lock);
}

void kos_ca_set_revocation_check(kos_ca *ca, kos_usec interval)
{
	atomic_store(&ca->interval, interval > 0 ? interval : 0);
}

/* --- the in-memory copy ------------------------------------------------- */

void kos_ca_revoked_free(struct ca_revoked *r)
{
	free(r->jti);
	free(r->clients);
	memset(r, 0, sizeof(*r));
}

static int jti_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

static int client_cmp(const void *a, const void *b)
{
	const struct ca_revoked_client *x = a, *y = b;

	return strcmp(x->client, y->client);
}

/* Room for one more element in *arr (capacity *cap, n used), doubling;
 * false when out of memory. A large block grows in place (mremap), so the
 * copy's peak is about its final size. */
static bool revoked_room(void **arr, size_t *cap, size_t n, size_t size)
{
	size_t ncap = *cap != 0 ? *cap * 2 : 64;
	void *p;

	if (n < *cap)
		return true;
	p = realloc(*arr, ncap * size);
	if (p == NULL)
		return false;
	*arr = p;
	*cap = ncap;
	return true;
}

struct revoked_load {
	struct ca_revoked *r;
	size_t cap_jti, cap_clients;
};

static kos_rv revoked_add(const struct kos_store_revocation *row, void *arg)
{
	struct revoked_load *l = arg;
	struct ca_revoked *r = l->r;

	switch (row->kind) {
	case KOS_REVOKE_JTI:
		if (!revoked_room((void **)&r->jti, &l->cap_jti, r->n_jti, sizeof(*r->jti)))
			return kos_error_set(KOS_E_NOMEM, "out of memory");
		memset(r->jti[r->n_jti], 0, sizeof(r->jti[0]));
		memcpy(r->jti[r->n_jti], row->value, strnlen(row->value, sizeof(r->jti[0]) - 1));
		r->n_jti++;
		break;
	case KOS_REVOKE_CLIENT:
		if (!revoked_room((void **)&r->clients, &l->cap_clients, r->n_clients,
				  sizeof(*r->clients)))
			return kos_error_set(KOS_E_NOMEM, "out of memory");
		snprintf(r->clients[r->n_clients].client, sizeof(r->clients[0].client), "%s",
			 row->value);
		r->clients[r->n_clients++].before = row->before;
		break;
	case KOS_REVOKE_BEFORE:
		if (row->before > r->before)
			r->before = row->before;
		break;
	}
	return KOS_OK;
}

/* The store's revocations as a new copy, read row by row: the copy alone
 * is ever in memory (33 bytes a revoked credential), never the rows. */
static kos_rv load_revoked(kos_ca *ca, struct ca_revoked *r)
{
	struct revoked_load l = {r, 0, 0};
	kos_rv rv;

	memset(r, 0, sizeof(*r));
	rv = kos_store_revocation_each(ca->st, revoked_add, &l);
	if (rv != KOS_OK) {
		kos_ca_revoked_free(r);
		return rv;
	}
	if (r->n_jti > 1)
		qsort(r->jti, r->n_jti, sizeof(*r->jti), jti_cmp);
	if (r->n_clients > 1)
		qsort(r->clients, r->n_clients, sizeof(*r->clients), client_cmp);
	return KOS_OK;
}

/* The parsed key of kid with this SPKI in the copy in force, with a new
 * reference; NULL when the copy has none. Caller holds ca->sync_lock, the
 * only writer of ca->keys. */
static EVP_PKEY *key_reuse(const kos_ca *ca, const struct kos_store_ca_key *row)
{
	size_t i;

	for (i = 0; i < ca->n_keys; i++) {
		const struct ca_pub *k = &ca->keys[i];

		if (strcmp(k->kid, row->kid) == 0 && k->spki_len == row->spki_len &&
		    memcmp(k->spki, row->spki, row->spki_len) == 0 && EVP_PKEY_up_ref(k->pkey) == 1)
			return k->pkey;
	}
	return NULL;
}

/* The store's CA keys as a new copy; keys the copy in force holds already
 * are shared with it, the others parsed. Caller holds ca->sync_lock. */
static kos_rv load_keys(kos_ca *ca, struct ca_pub **out, size_t *n_out)
{
	struct kos_store_ca_key *rows = NULL;
	struct ca_pub *keys = NULL;
	size_t n = 0, i, k = 0;
	kos_rv rv;

	*out = NULL;
	*n_out = 0;
	rv = kos_store_ca_key_list(ca->st, &rows, &n);
	if (rv != KOS_OK)
		return rv;
	if (n > 0) {
		keys = calloc(n, sizeof(*keys));
		if (keys == NULL) {
			free(rows);
			return kos_error_set(KOS_E_NOMEM, "out of memory");
		}
	}
	for (i = 0; i < n; i++) {
		EVP_PKEY *pkey = NULL;

		if (rows[i].spki_len > sizeof(keys[k].spki))
			continue;
		pkey = key_reuse(ca, &rows[i]);
		if (pkey == NULL &&
		    kos_es256_key(rows[i].spki, rows[i].spki_len, &pkey) != KOS_OK) {
			/* a key kos cannot read verifies nothing; the others still do */
			kos_error_clear();
			continue;
		}
		snprintf(keys[k].kid, sizeof(keys[k].kid), "%s", rows[i].kid);
		snprintf(keys[k].token, sizeof(keys[k].token), "%s", rows[i].token);
		memcpy(keys[k].spki, rows[i].spki, rows[i].spki_len);
		keys[k].spki_len = rows[i].spki_len;
		keys[k].pkey = pkey;
		keys[k].expires = rows[i].retired != 0 ? rows[i].expires : 0;
		k++;
	}
	free(rows);
	*out = keys;
	*n_out = k;
	return KOS_OK;
}

kos_rv kos_ca_sync(kos_ca *ca, bool force)
{
	uint64_t hint, rev = 0;
	int64_t mono = kos_ca_mono(), interval = atomic_load(&ca->interval);
	struct ca_revoked revoked, old_revoked;
	struct ca_pub *keys = NULL, *old_keys;
	size_t n_keys = 0, old_n;
	kos_rv rv;

	/* a JWKS verifier: its keys are fixed and it knows no revocations */
	if (ca->st == NULL)
		return KOS_OK;
	hint = kos_store_cred_hint(ca->st);

	if (!force && atomic_load_explicit(&ca->loaded, memory_order_acquire) &&
	    hint == atomic_load_explicit(&ca->hint_seen, memory_order_relaxed) && interval > 0 &&
	    mono - atomic_load_explicit(&ca->last_poll, memory_order_relaxed) < interval)
		return KOS_OK;
	pthread_mutex_lock(&ca->sync_lock);
	rv = kos_store_cred_revision(ca->st, &rev);
	if (rv != KOS_OK)
		goto out;
	if (!atomic_load(&ca->loaded) || rev != ca->revision) {
		rv = load_keys(ca, &keys, &n_keys);
		if (rv != KOS_OK)
			goto out;
		rv = load_revoked(ca, &revoked);
		if (rv != KOS_OK) {
			keys_free(keys, n_keys);
			goto out;
		}
		pthread_rwlock_wrlock(&ca->lock);
		old_keys = ca->keys;
		old_n = ca->n_keys;
		old_revoked = ca->revoked;
		ca->keys = keys;
		ca->n_keys = n_keys;
		ca->revoked = revoked;
		/* a revoked credential or one of a forgotten key leaves every cache */
		kos_ca_cache_recheck(ca);
		pthread_rwlock_unlock(&ca->lock);
		/* a verification still holding one of the old keys has its own
		 * reference */
		keys_free(old_keys, old_n);
		kos_ca_revoked_free(&old_revoked);
		ca->revision = rev;
	}
	atomic_store_explicit(&ca->hint_seen, hint, memory_order_relaxed);
	atomic_store_explicit(&ca->last_poll, mono, memory_order_relaxed);
	atomic_store_explicit(&ca->loaded, 1, memory_order_release);
out:
	pthread_mutex_unlock(&ca->sync_lock);
	return rv;
}

/* --- CA keys ------------------------------------------------------------ */

/* The first token with role ca that answers. */
static kos_rv ca_token(kos_ca *ca, size_t *tok)
{
	size_t i, count;
	char why[300] = "";
	bool seen = false;

	if (ca->hsm == NULL)
		return kos_error_set(KOS_E_INVALID,
				     "this credential authority has no backend tokens");
	count = kos_hsm_token_count(ca->hsm);
	for (i = 0; i < count; i++) {
		if (kos_hsm_token_role(ca->hsm, i) != KOS_TOKEN_ROLE_CA)
			continue;
		if (kos_hsm_token_check(ca->hsm, i, NULL) == KOS_OK) {
			*tok = i;
			return KOS_OK;
		}
		if (!seen)
			snprintf(why, sizeof(why), "%s", kos_last_error());
		seen = true;
	}
	if (!seen)
		return kos_error_set(KOS_E_NOTFOUND, "no token with role ca in the configuration");
	return kos_error_set(KOS_E_IO, "no ca token answers: %s", why);
}

static kos_rv random_b64url(size_t bytes, char *out, size_t out_len)
{
	uint8_t raw[32];
	kos_rv rv;

	if (bytes == 0 || bytes > sizeof(raw))
		return kos_error_set(KOS_E_INTERNAL, "random_b64url: bad size");
	/* Secrets and key ids are typed on command lines: one that starts
	 * with '-' would be read as an option, so draw again (6 bits of the
	 * first character lose 1/64 of their values). */
	do {
		if (RAND_bytes(raw, (int)bytes) != 1) {
			rv = kos_error_set(KOS_E_CRYPTO, "no randomness");
			break;
		}
		rv = kos_b64url_encode(raw, bytes, out, out_len);
	} while (rv == KOS_OK && out[0] == '-');
	OPENSSL_cleanse(raw, sizeof(raw));
	return rv;
}

/* Destroys retired keys whose verification time is over (on the token
 * first: a row without its key pair is harmless, the reverse is a key
 * pair nothing will ever remove). Failures are left for the next rotation. */
static void prune_keys(kos_ca *ca, kos_usec now)
{
	struct kos_store_ca_key *rows = NULL;
	size_t n = 0, i, tok;

	if (kos_store_ca_key_list(ca->st, &rows, &n) != KOS_OK)
		return;
	for (i = 0; i < n; i++) {
		kos_rv rv;

		if (rows[i].retired == 0 || rows[i].expires > now)
			continue;
		rv = kos_hsm_token_find(ca->hsm, rows[i].token, &tok);
		if (rv == KOS_OK) {
			rv = kos_signer_destroy(ca->hsm, tok, rows[i].label);
			if (rv == KOS_E_NOTFOUND)
				rv = KOS_OK;
		}
		if (rv == KOS_OK)
			(void)kos_store_ca_key_delete(ca->st, rows[i].kid);
	}
	free(rows);
}

static kos_rv make_key(kos_ca *ca, bool first, char kid_out[KOS_CA_KID_LEN + 1])
{
	struct kos_store_ca_key *key;
	uint8_t *spki = NULL;
	size_t spki_len = 0, tok = 0;
	const struct kos_policy *pol;
	kos_usec now = kos_ca_now(ca), old_expires;
	char why[400];
	kos_rv rv;

	rv = ca_token(ca, &tok);
	if (rv != KOS_OK)
		return rv;
	key = calloc(1, sizeof(*key));
	if (key == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	rv = random_b64url(16, key->kid, sizeof(key->kid));
	if (rv != KOS_OK)
		goto out;
	snprintf(key->label, sizeof(key->label), "%s%s", KOS_CA_LABEL_PREFIX, key->kid);
	snprintf(key->token, sizeof(key->token), "%s", kos_hsm_token_get0_name(ca->hsm, tok));
	rv = kos_signer_generate(ca->hsm, tok, KOS_KEY_EC_P256, key->label, &spki, &spki_len);
	if (rv != KOS_OK)
		goto out;
	if (spki_len > sizeof(key->spki)) {
		rv = kos_error_set(KOS_E_RANGE, "CA public key of %zu bytes", spki_len);
		goto undo;
	}
	memcpy(key->spki, spki, spki_len);
	key->spki_len = spki_len;
	key->created = now;
	pthread_rwlock_rdlock(&ca->lock);
	pol = ca->pol;
	old_expires =
	    now + kos_ca_max_lifetime(pol) + pol->credentials.leeway + KOS_CA_RETIRE_MARGIN;
	pthread_rwlock_unlock(&ca->lock);
	rv = kos_store_ca_key_install(ca->st, key, old_expires, first);
	if (rv != KOS_OK)
		goto undo;
	if (kid_out != NULL)
		memcpy(kid_out, key->kid, KOS_CA_KID_LEN + 1);
	(void)kos_ca_sync(ca, true);
	if (!first)
		prune_keys(ca, now);
	goto out;
undo:
	snprintf(why, sizeof(why), "%s", kos_last_error());
	(void)kos_signer_destroy(ca->hsm, tok, key->label);
	kos_error_set(rv, "%s", why);
out:
	kos_free(spki);
	free(key);
	return rv;
}

kos_rv kos_ca_init(kos_ca *ca, char kid[KOS_CA_KID_LEN + 1])
{
	return make_key(ca, true, kid);
}

kos_rv kos_ca_rotate(kos_ca *ca, char kid[KOS_CA_KID_LEN + 1])
{
	struct kos_store_ca_key cur;
	kos_rv rv;

	if (ca->st == NULL)
		return kos_ca_no_store();
	/* say "initialise first" before a key pair is made for nothing */
	rv = kos_store_ca_key_current(ca->st, &cur);
	if (rv != KOS_OK)
		return rv;
	return make_key(ca, false, kid);
}

static void key_info(const struct kos_store_ca_key *k, kos_ca_key_info *info)
{
	memset(info, 0, sizeof(*info));
	snprintf(info->kid, sizeof(info->kid), "%s", k->kid);
	snprintf(info->token, sizeof(info->token), "%s", k->token);
	snprintf(info->label, sizeof(info->label), "%s", k->label);
	info->created = k->created;
	info->retired = k->retired;
	info->expires = k->retired != 0 ? k->expires : 0;
}

kos_rv kos_ca_list(kos_ca *ca, int (*fn)(const kos_ca_key_info *key, void *arg), void *arg)
{
	struct kos_store_ca_key *rows = NULL;
	kos_ca_key_info info;
	size_t n = 0, i;
	kos_rv rv;

	if (ca == NULL || fn == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_ca_list: missing argument");
	if (ca->st == NULL)
		return kos_ca_no_store();
	rv = kos_store_ca_key_list(ca->st, &rows, &n);
	for (i = 0; rv == KOS_OK && i < n; i++) {
		int r;

		key_info(&rows[i], &info);
		r = fn(&info, arg);
		if (r != 0)
			rv = r;
	}
	free(rows);
	return rv;
}

kos_rv kos_ca_jwks(kos_ca *ca, char **json)
{
	struct kos_store_ca_key *rows = NULL;
	json_t *doc = NULL, *keys;
	kos_usec now;
	size_t n = 0, i, used = 0;
	kos_rv rv;

	if (ca == NULL || json == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_ca_jwks: missing argument");
	*json = NULL;
	if (ca->st == NULL)
		return kos_ca_no_store();
	now = kos_ca_now(ca);
	rv = kos_store_ca_key_list(ca->st, &rows, &n);
	if (rv != KOS_OK)
		return rv;
	keys = json_array();
	doc = json_pack("{s:o}", "keys", keys);
	if (keys == NULL || doc == NULL) {
		rv = kos_error_set(KOS_E_NOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		char x[44], y[44];
		json_t *jwk;

		if (rows[i].retired != 0 && rows[i].expires <= now)
			continue;
		rv = kos_jwk_p256(rows[i].spki, rows[i].spki_len, x, y);
		if (rv != KOS_OK) {
			rv = kos_error_set(KOS_E_STORE, "CA key %s: %s", rows[i].kid,
					   kos_last_error());
			goto out;
		}
		jwk = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256",
				"x", x, "y", y, "kid", rows[i].kid, "use", "sig", "alg", "ES256");
		if (jwk == NULL || json_array_append_new(keys, jwk) != 0) {
			rv = kos_error_set(KOS_E_NOMEM, "out of memory");
			goto out;
		}
		used++;
	}
	if (used == 0) {
		rv = kos_error_set(KOS_E_NOTFOUND, "the CA has no key (kosctl ca init)");
		goto out;
	}
	*json = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (*json == NULL)
		rv = kos_error_set(KOS_E_NOMEM, "out of memory");
out:
	json_decref(doc);
	free(rows);
	return rv;
}

/* --- clients and enrollment secrets ------------------------------------- */

static kos_rv check_name(const char *name)
{
	if (!kos_principal_name_valid(name))
		return kos_error_set(KOS_E_INVALID,
				     "invalid client name (1 to 64 of A-Z a-z 0-9 . _ @ -, not "
				     "starting with . or -)");
	return KOS_OK;
}

/* A fresh secret into secret and its stored form into e. */
static kos_rv new_secret(kos_ca *ca, const char *client, char secret[KOS_CRED_SECRET_LEN + 1],
			 struct kos_store_enrollment *e)
{
	kos_rv rv;

	memset(e, 0, sizeof(*e));
	rv = random_b64url(32, secret, KOS_CRED_SECRET_LEN + 1);
	if (rv != KOS_OK)
		return rv;
	SHA256((const unsigned char *)secret, KOS_CRED_SECRET_LEN, e->hash);
	snprintf(e->client, sizeof(e->client), "%s", client);
	e->created = kos_ca_now(ca);
	pthread_rwlock_rdlock(&ca->lock);
	e->expires = e->created + ca->pol->credentials.enrollment;
	pthread_rwlock_unlock(&ca->lock);
	return KOS_OK;
}

kos_rv kos_ca_client_add(kos_ca *ca, const char *name, const char *scope,
		      char secret[KOS_CRED_SECRET_LEN + 1])
{
	struct kos_store_cred_client *c;
	struct kos_store_enrollment e;
	kos_rv rv;

	if (ca == NULL || name == NULL || scope == NULL || secret == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_ca_client_add: missing argument");
	if (ca->st == NULL)
		return kos_ca_no_store();
	secret[0] = '\0';
	rv = check_name(name);
	if (rv == KOS_OK)
		rv = kos_scope_validate(scope);
	if (rv != KOS_OK)
		return rv == KOS_E_PARSE ? kos_error_set(KOS_E_INVALID, "%s", kos_last_error())
					 : rv;
	/* a registered scope is what credentials are issued with; a share is
	 * reached only through a grant of a key-request decision */
	if (kos_scope_has_grant_item(scope))
		return kos_error_set(KOS_E_INVALID,
				     "a client's scope holds no \"share:\" item: shares are "
				     "fetched with grants that key requests issue");
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	snprintf(c->name, sizeof(c->name), "%s", name);
	snprintf(c->scope, sizeof(c->scope), "%s", scope);
	c->created = kos_ca_now(ca);
	rv = new_secret(ca, name, secret, &e);
	if (rv == KOS_OK)
		rv = kos_store_cred_client_add(ca->st, c, &e);
	if (rv != KOS_OK)
		OPENSSL_cleanse(secret, KOS_CRED_SECRET_LEN + 1);
	free(c);
	return rv;
}

kos_rv kos_ca_client_secret(kos_ca *ca, const char *name, char secret[KOS_CRED_SECRET_LEN + 1])
{
	struct kos_store_enrollment e;
	kos_rv rv;

	if (ca == NULL || name == NULL || secret == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_ca_client_secret: missing argument");
	if (ca->st == NULL)
		return kos_ca_no_store();
	secret[0] = '\0';
	rv = check_name(name);
	if (rv == KOS_OK)
		rv = new_secret(ca, name, secret, &e);
	if (rv == KOS_OK)
		rv = kos_store_enrollment_add(ca->st, &e);
	if (rv != KOS_OK)
		OPENSSL_cleanse(secret, KOS_CRED_SECRET_LEN + 1);
	return rv;
}

static void client_info(const struct kos_store_cred_client *c, kos_ca_client_info *info)
{
	memset(info, 0, sizeof(*info));
	snprintf(info->name, sizeof(info->name), "%s", c->name);
	snprintf(info->scope, sizeof(info->scope), "%s", c->scope);
	info->created = c->created;
	info->disabled = c->disabled ? 1 : 0;
	info->secret_expires = c->secret_expires;
}

kos_rv kos_ca_client_get(kos_ca *ca, const char *name, kos_ca_client_info *info)
{
	struct kos_store_cred_client *c;
	kos_rv rv;

	if (ca == NULL || name == NULL || info == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_ca_client_get: missing argument");
	if (ca->st == NULL)
		return kos_ca_no_store();
	rv = check_name(name);
	if (rv != KOS_OK)
		return rv;
	c = malloc(sizeof(*c));
	if (c == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	rv = kos_store_cred_client_get(ca->st, name, c);
	if (rv == KOS_OK)
		client_info(c, info);
	free(c);
	return rv;
}

kos_rv kos_ca_client_list(kos_ca *ca, int (*fn)(const kos_ca_client_info *info, void *arg), void *arg)
{
	struct kos_store_cred_client *rows = NULL;
	kos_ca_client_info *info;
	size_t n = 0, i;
	kos_rv rv;

	if (ca == NULL || fn == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_ca_client_list: missing argument");
	if (ca->st == NULL)
		return kos_ca_no_store();
	info = malloc(sizeof(*info));
	if (info == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	rv = kos_store_cred_client_list(ca->st, &rows, &n);
	for (i = 0; rv == KOS_OK && i < n; i++) {
		int r;

		client_info(&rows[i], info);
		r = fn(info, arg);
		if (r != 0)
			rv = r;
	}
	free(rows);
	free(info);
	return rv;
}

kos_rv kos_ca_client_set_disabled(kos_ca *ca, const char *name, int disabled)
{
	kos_rv rv;

	if (ca == NULL || name == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_ca_client_set_disabled: missing argument");
	if (ca->st == NULL)
		return kos_ca_no_store();
	rv = check_name(name);
	if (rv != KOS_OK)
		return rv;
	return kos_store_cred_client_set_disabled(ca->st, name, disabled != 0);
}

/* --- threat level ------------------------------------------------------- */

/* The stored level; a store that never had one stands at normal. */
static kos_rv threat_read(kos_ca *ca, kos_threat_info *info)
{
	json_t *doc = NULL;
	json_error_t jerr;
	char *text = NULL;
	const char *level = NULL, *reason = "";
	json_int_t since = 0;
	int automatic = 0;
	kos_threat t;
	kos_rv rv;

	memset(info, 0, sizeof(*info));
	info->level = KOS_THREAT_NORMAL;
	rv = kos_store_meta_get(ca->st, THREAT_KEY, &text);
	if (rv == KOS_E_NOTFOUND) {
		kos_error_clear();
		return KOS_OK;
	}
	if (rv != KOS_OK)
		return rv;
	doc = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	if (doc == NULL ||
	    json_unpack(doc, "{s:s, s:I, s:b, s:s}", "level", &level, "since", &since, "automatic",
			&automatic, "reason", &reason) != 0 ||
	    kos_threat_parse(level, &t) != KOS_OK) {
		rv = kos_error_set(KOS_E_STORE, "state store: the threat level is unreadable");
		goto out;
	}
	info->level = t;
	info->since = (kos_usec)since;
	info->automatic = automatic ? 1 : 0;
	snprintf(info->reason, sizeof(info->reason), "%s", reason);
out:
	json_decref(doc);
	free(text);
	return rv;
}

static kos_rv threat_write(kos_ca *ca, kos_threat level, const char *reason, bool automatic)
{
	json_t *doc;
	char *text;
	kos_rv rv;

	doc = json_pack("{s:s, s:I, s:b, s:s}", "level", kos_threat_name(level), "since",
			(json_int_t)kos_ca_now(ca), "automatic", automatic ? 1 : 0, "reason",
			reason != NULL ? reason : "");
	text = doc != NULL ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(doc);
	if (text == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	rv = kos_store_meta_put(ca->st, THREAT_KEY, text);
	free(text);
	if (rv == KOS_OK)
		kos_trust_set_threat(ca->tr, level);
	return rv;
}

kos_rv kos_threat_set(kos_ca *ca, kos_threat level, const char *reason)
{
	size_t i;

	if (ca == NULL || (unsigned)level >= KOS_THREAT_COUNT)
		return kos_error_set(KOS_E_INVALID, "kos_threat_set: bad level");
	if (ca->st == NULL)
		return kos_ca_no_store();
	if (reason != NULL) {
		if (strlen(reason) > 255)
			return kos_error_set(KOS_E_INVALID, "threat reason longer than 255 bytes");
		for (i = 0; reason[i] != '\0'; i++)
			if ((unsigned char)reason[i] < 0x20 || reason[i] == 0x7f)
				return kos_error_set(KOS_E_INVALID,
						     "threat reason holds a control character");
	}
	return threat_write(ca, level, reason, false);
}

kos_rv kos_threat_get(kos_ca *ca, kos_threat_info *info)
{
	kos_rv rv;

	if (ca == NULL || info == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_threat_get: missing argument");
	if (ca->st == NULL)
		return kos_ca_no_store();
	rv = threat_read(ca, info);
	if (rv == KOS_OK)
		kos_trust_set_threat(ca->tr, info->level);
	return rv;
}

kos_rv kos_ca_threat_level(kos_ca *ca, kos_threat *level)
{
	kos_threat_info info;
	kos_rv rv = kos_threat_get(ca, &info);

	*level = info.level;
	return rv;
}

struct anomaly_count {
	size_t total, anomalous;
};

static int count_anomalous(const kos_trust_info *info, void *arg)
{
	struct anomaly_count *c = arg;

	c->total++;
	c->anomalous += info->anomalous ? 1 : 0;
	return 0;
}

kos_rv kos_threat_evaluate(kos_ca *ca, kos_threat_info *out, int *raised)
{
	struct anomaly_count c = {0, 0};
	const struct kos_policy *pol;
	kos_threat_info info;
	kos_threat target = KOS_THREAT_NORMAL;
	char reason[256];
	double share;
	unsigned min_clients;
	int i;
	kos_rv rv;

	if (raised != NULL)
		*raised = 0;
	if (ca == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_threat_evaluate: no authority");
	if (ca->st == NULL)
		return kos_ca_no_store();
	rv = kos_threat_get(ca, &info);
	if (rv == KOS_OK)
		rv = kos_trust_list(ca->tr, count_anomalous, &c);
	if (rv != KOS_OK)
		return rv;
	pthread_rwlock_rdlock(&ca->lock);
	pol = ca->pol;
	min_clients = pol->threat_min_clients;
	share = c.total > 0 ? (double)c.anomalous / (double)c.total : 0.0;
	for (i = KOS_THREAT_CRITICAL; i > KOS_THREAT_NORMAL; i--) {
		if (c.total >= min_clients && c.anomalous > 0 &&
		    share >= pol->threat[i].anomalous_share) {
			target = (kos_threat)i;
			break;
		}
	}
	snprintf(reason, sizeof(reason),
		 "automatic: %zu of %zu clients (%.0f%%) flagged anomalous, at or above "
		 "threat.%s.anomalous_share (%g)",
		 c.anomalous, c.total, share * 100.0, kos_threat_name(target),
		 pol->threat[target].anomalous_share);
	pthread_rwlock_unlock(&ca->lock);
	if (target > info.level) {
		rv = threat_write(ca, target, reason, true);
		if (rv != KOS_OK)
			return rv;
		if (raised != NULL)
			*raised = 1;
		rv = kos_threat_get(ca, &info);
	}
	if (out != NULL)
		*out = info;
	return rv;
}

void kos_ca_set_threat_on_issue(kos_ca *ca, bool on)
{
	if (ca != NULL)
		atomic_store(&ca->threat_on_issue, on ? 1 : 0);
}

void kos_ca_threat_tick_on_issue(kos_ca *ca)
{
	if (atomic_load(&ca->threat_on_issue))
		kos_ca_threat_tick(ca);
}

void kos_ca_threat_tick(kos_ca *ca)
{
	int64_t mono, last;

	if (ca == NULL || ca->st == NULL)
		return;
	mono = kos_ca_mono();
	last = atomic_load(&ca->last_eval);

	if (last != INT64_MIN && mono - last < KOS_THREAT_EVAL_INTERVAL)
		return;
	/* one thread evaluates; the others go on */
	if (!atomic_compare_exchange_strong(&ca->last_eval, &last, mono))
		return;
	if (kos_threat_evaluate(ca, NULL, NULL) != KOS_OK)
		kos_error_clear();
}
