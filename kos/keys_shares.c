/* Data keys in use: reading shares from the KMS tokens, rebuilding a DEK
 * (naming every token that failed or returned a wrong share), server-side
 * encryption and decryption, and the medium tier's share references. Part
 * of the key service (kos/keys.c). */
#include "config.h"

#include "kos/hsm.h"
#include "kos/internal.h"
#include "kos/keys_internal.h"
#include "kos/store_backend.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

/* At most this many k-subsets are combined when looking for wrong shares. */
#define SUBSETS_MAX 4096
/* Tokens named in one failure message. */
#define PROBLEMS_MAX 32

/* --- problems: what failed, per token ------------------------------------------- */

struct problems {
	struct {
		char token[KOS_TOKEN_NAME_MAX + 1];
		char why[48];
		bool unreachable; /* skip the token for the rest of this call */
		bool wrong;	  /* it returned a wrong share */
	} p[PROBLEMS_MAX];
	size_t n;
	bool integrity; /* some set failed on wrong shares */
	char sets[320]; /* "set narrow: 1 of 2 needed; " ... */
};

static void problem_add(struct problems *pr, const char *token, const char *why, bool unreachable,
			bool wrong)
{
	size_t i;

	for (i = 0; i < pr->n; i++)
		if (strcmp(pr->p[i].token, token) == 0)
			return;
	if (pr->n == PROBLEMS_MAX)
		return;
	snprintf(pr->p[pr->n].token, sizeof(pr->p[0].token), "%s", token);
	snprintf(pr->p[pr->n].why, sizeof(pr->p[0].why), "%s", why);
	pr->p[pr->n].unreachable = unreachable;
	pr->p[pr->n].wrong = wrong;
	pr->n++;
}

static bool problem_unreachable(const struct problems *pr, const char *token)
{
	size_t i;

	for (i = 0; i < pr->n; i++)
		if (pr->p[i].unreachable && strcmp(pr->p[i].token, token) == 0)
			return true;
	return false;
}

static void sets_note(struct problems *pr, const char *fmt, ...) KOS_PRINTF(2, 3);

static void sets_note(struct problems *pr, const char *fmt, ...)
{
	size_t used = strlen(pr->sets);
	va_list ap;

	if (used + 1 >= sizeof(pr->sets))
		return;
	va_start(ap, fmt);
	vsnprintf(pr->sets + used, sizeof(pr->sets) - used, fmt, ap);
	va_end(ap);
}

/* "kms1 (share missing), kms3 (wrong share)" into buf. */
static void problems_tokens(const struct problems *pr, char *buf, size_t len)
{
	size_t i, used = 0;

	buf[0] = '\0';
	for (i = 0; i < pr->n && used + 1 < len; i++) {
		int n = snprintf(buf + used, len - used, "%s%s (%s)", i ? ", " : "", pr->p[i].token,
				 pr->p[i].why);

		if (n < 0)
			break;
		used += (size_t)n;
	}
}

/* Counts a wrong or missing share against the token in its statistics (the
 * reputation of a KMS token), as a failed call would be. */
static void note_bad_share(kos_hsm *hsm, size_t tok)
{
	char saved[512];
	kos_hsm_session s;

	snprintf(saved, sizeof(saved), "%s", kos_last_error());
	if (kos_hsm_session_get(hsm, tok, &s) == KOS_OK) {
		s.func = "kos share check";
		kos_hsm_session_put(hsm, &s, CKR_DATA_INVALID);
	}
	kos_error_set(KOS_E_INTEGRITY, "%s", saved);
}

/* --- reading shares ------------------------------------------------------------- */

/* Reads the share at loc from its token into *out, checking it is a share
 * of the right x. On failure the problem is recorded. */
static kos_rv share_read(kos_keys *keys, const struct kos_store_share *loc, kos_share *out,
			 struct problems *pr)
{
	uint8_t *data = NULL;
	size_t len = 0, tok;
	kos_rv rv;

	memset(out, 0, sizeof(*out));
	if (kos_hsm_token_find(keys->hsm, loc->token, &tok) != KOS_OK) {
		problem_add(pr, loc->token, "not in the configuration", true, false);
		return KOS_E_NOTFOUND;
	}
	rv = kos_hsm_data_get(keys->hsm, tok, loc->label, &data, &len);
	if (rv == KOS_E_NOTFOUND && kos_hsm_token_check(keys->hsm, tok, NULL) == KOS_OK) {
		/* the token is there, the share is not */
		note_bad_share(keys->hsm, tok);
		problem_add(pr, loc->token, "share missing", false, true);
		return rv;
	}
	if (rv != KOS_OK) {
		char why[48];

		snprintf(why, sizeof(why), "unreachable: %s", kos_strerror(rv));
		problem_add(pr, loc->token, why, true, false);
		return rv;
	}
	rv = kos_share_parse((const char *)data, len, out);
	kos_secret_free(data, len);
	if (rv == KOS_OK && (out->x != loc->x || out->len != KOS_DEK_LEN)) {
		kos_shares_clear(out, 1);
		rv = KOS_E_PARSE;
	}
	if (rv != KOS_OK) {
		note_bad_share(keys->hsm, tok);
		problem_add(pr, loc->token, "not a share of this key", false, true);
		return KOS_E_INTEGRITY;
	}
	return KOS_OK;
}

/* Combines shares[idx[0..k-1]] and checks the result against kcv; on a
 * match the DEK is in dek. */
static bool try_combine(const kos_share *shares, const size_t *idx, unsigned k,
			const uint8_t kcv[KOS_KCV_LEN], uint8_t dek[KOS_DEK_LEN])
{
	kos_share pick[KOS_SHAMIR_MAX_SHARES];
	uint8_t *secret = NULL;
	size_t len = 0, i;
	bool ok;

	for (i = 0; i < k; i++)
		pick[i] = shares[idx[i]];
	if (kos_shamir_combine(pick, k, &secret, &len) != KOS_OK)
		return false;
	ok = len == KOS_DEK_LEN && kos_keys_kcv_matches(secret, kcv);
	if (ok)
		memcpy(dek, secret, KOS_DEK_LEN);
	kos_secret_free(secret, len);
	return ok;
}

/* The next k-subset of 0..m-1 in lexicographic order; false after the last. */
static bool next_subset(size_t *idx, unsigned k, size_t m)
{
	size_t i = k;

	while (i-- > 0) {
		if (idx[i] < m - k + i) {
			idx[i]++;
			for (size_t j = i + 1; j < k; j++)
				idx[j] = idx[j - 1] + 1;
			return true;
		}
	}
	return false;
}

/* Rebuilds the DEK from one share set: reads shares until k are good and
 * combines them; when the key check value does not match, reads the rest
 * and looks for k shares that do, then names every share that disagrees
 * with them. */
static bool rebuild_from_set(kos_keys *keys, const struct kos_store_version *v,
			     const struct kos_store_share_set *set, uint8_t dek[KOS_DEK_LEN],
			     struct problems *pr)
{
	const struct kos_store_share *loc[KOS_SHAMIR_MAX_SHARES];
	const struct kos_store_share *got_loc[KOS_SHAMIR_MAX_SHARES];
	kos_share got[KOS_SHAMIR_MAX_SHARES];
	size_t idx[KOS_SHAMIR_MAX_SHARES];
	size_t n = 0, m = 0, i, tries = 0;
	bool ok = false, found = false;

	for (i = 0; i < v->n_shares && n < KOS_ARRAY_SIZE(loc); i++)
		if (strcmp(v->shares[i].set, set->name) == 0)
			loc[n++] = &v->shares[i];
	if (set->k < KOS_SHAMIR_MIN_THRESHOLD || set->k > n) {
		sets_note(pr, "set %s: %zu of %u shares recorded; ", set->name, n, set->k);
		return false;
	}
	/* the first k good shares; a token found unreachable earlier in this
	 * call (it may hold a share of another set) is not tried again */
	for (i = 0; i < n && m < set->k; i++) {
		if (problem_unreachable(pr, loc[i]->token))
			continue;
		if (share_read(keys, loc[i], &got[m], pr) == KOS_OK)
			got_loc[m++] = loc[i];
	}
	if (m < set->k) {
		sets_note(pr, "set %s: %zu of %u needed shares read; ", set->name, m, set->k);
		goto out;
	}
	for (i = 0; i < set->k; i++)
		idx[i] = i;
	if (try_combine(got, idx, set->k, v->kcv, dek)) {
		ok = true;
		goto out;
	}
	/* Some share is wrong. Read every other share of the set... */
	for (i = 0; i < n; i++) {
		size_t j;
		bool have = false;

		for (j = 0; j < m; j++)
			have = have || got_loc[j] == loc[i];
		if (have || problem_unreachable(pr, loc[i]->token))
			continue;
		if (share_read(keys, loc[i], &got[m], pr) == KOS_OK)
			got_loc[m++] = loc[i];
	}
	/* ...find k that give the key check value... */
	for (i = 0; i < set->k; i++)
		idx[i] = i;
	while (!found && m > set->k && tries++ < SUBSETS_MAX && next_subset(idx, set->k, m))
		found = try_combine(got, idx, set->k, v->kcv, dek);
	if (!found) {
		/* no k of them agree: every share read is suspect */
		for (i = 0; i < m; i++)
			problem_add(pr, got_loc[i]->token, "share disagrees", false, true);
		pr->integrity = true;
		sets_note(pr, "set %s: no %u of the %zu shares read give the key check value; ",
			  set->name, set->k, m);
		goto out;
	}
	/* ...and name each share not on the polynomial they define: with k-1
	 * good shares and a wrong one, interpolation misses the secret. */
	{
		size_t good[KOS_SHAMIR_MAX_SHARES], test[KOS_SHAMIR_MAX_SHARES], j;
		uint8_t scratch[KOS_DEK_LEN];

		memcpy(good, idx, set->k * sizeof(idx[0]));
		for (j = 0; j < m; j++) {
			bool in = false;
			size_t t;

			for (t = 0; t < set->k; t++)
				in = in || good[t] == j;
			if (in)
				continue;
			memcpy(test, good, (set->k - 1) * sizeof(good[0]));
			test[set->k - 1] = j;
			if (!try_combine(got, test, set->k, v->kcv, scratch)) {
				size_t tok;

				if (kos_hsm_token_find(keys->hsm, got_loc[j]->token, &tok) ==
				    KOS_OK)
					note_bad_share(keys->hsm, tok);
				problem_add(pr, got_loc[j]->token, "wrong share", false, true);
			}
		}
		OPENSSL_cleanse(scratch, sizeof(scratch));
	}
	ok = true;
out:
	kos_shares_clear(got, m);
	return ok;
}

/* Rebuilds the DEK of an active version from any set; sets with the fewest
 * shares needed come first. On failure the error names every token that
 * failed or returned a wrong share. */
static kos_rv dek_rebuild(kos_keys *keys, const struct kos_store_version *v,
			  uint8_t dek[KOS_DEK_LEN])
{
	struct problems *pr;
	unsigned order[KOS_POLICY_MAX_SHARE_SETS];
	char tokens[400];
	unsigned i, j;
	kos_rv rv;

	if (!v->has_kcv || v->n_sets == 0)
		return kos_error_set(KOS_E_STORE,
				     "key %s version %" PRIu32 ": no key check value or "
				     "share sets in the state store",
				     v->name, v->version);
	pr = calloc(1, sizeof(*pr));
	if (pr == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	for (i = 0; i < v->n_sets; i++)
		order[i] = i;
	for (i = 1; i < v->n_sets; i++)
		for (j = i; j > 0 && v->sets[order[j]].k < v->sets[order[j - 1]].k; j--) {
			unsigned t = order[j];

			order[j] = order[j - 1];
			order[j - 1] = t;
		}
	for (i = 0; i < v->n_sets; i++) {
		if (rebuild_from_set(keys, v, &v->sets[order[i]], dek, pr)) {
			free(pr);
			kos_error_clear();
			return KOS_OK;
		}
	}
	problems_tokens(pr, tokens, sizeof(tokens));
	{
		size_t len = strlen(pr->sets);

		if (len >= 2 && strcmp(pr->sets + len - 2, "; ") == 0)
			pr->sets[len - 2] = '\0';
	}
	/* the tokens first: they are what the message must name */
	rv = kos_error_set(pr->integrity ? KOS_E_INTEGRITY : KOS_E_IO,
			   "key %s version %" PRIu32 ": cannot rebuild the DEK: %s%s%s", v->name,
			   v->version, tokens[0] ? "tokens " : "", tokens, tokens[0] ? "; " : "");
	{
		char *detail = kos_strdup(kos_last_error());

		if (detail != NULL) {
			kos_error_set(rv, "%s%s", detail, pr->sets);
			free(detail);
		}
	}
	free(pr);
	return rv;
}

/* The DEK of name at version (0: current): from the cache, else rebuilt from
 * the tokens (and cached). */
static kos_rv dek_get(kos_keys *keys, const char *name, uint32_t version, uint8_t dek[KOS_DEK_LEN],
		      uint32_t *version_out)
{
	struct kos_store_version v;
	struct kos_store_key key;
	kos_rv rv;

	if (kos_keys_cache_get(keys, name, kos_keys_name_hash(name), version, dek, version_out))
		return KOS_OK;
	rv = kos_store_key_get(keys->st, name, &key);
	if (rv != KOS_OK)
		return rv;
	if (key.type != KOS_KEY_DEK)
		return kos_error_set(KOS_E_INVALID, "key %s is a %s signing key, not a data key",
				     name, kos_key_type_name(key.type));
	rv = kos_store_key_version_get(keys->st, name, version, &v);
	if (rv != KOS_OK)
		return rv;
	if (v.state != KOS_KEY_STATE_ACTIVE) {
		rv = kos_error_set(
		    KOS_E_NOTFOUND, "key %s version %" PRIu32 " is %s", name, v.version,
		    v.state == KOS_KEY_STATE_RETIRED ? "retired" : "not complete (being created)");
		goto out;
	}
	rv = dek_rebuild(keys, &v, dek);
	if (rv != KOS_OK)
		goto out;
	*version_out = v.version;
	kos_keys_cache_put(keys, name, v.version, version == 0, dek);
out:
	kos_store_version_clear(&v);
	return rv;
}

kos_rv kos_key_dek(kos_keys *keys, const char *name, uint32_t version, uint8_t dek[KOS_DEK_LEN],
		   uint32_t *version_out)
{
	uint32_t got = 0;
	kos_rv rv;

	if (keys == NULL || dek == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_key_dek: no key service or no output");
	rv = kos_keys_check_name(name);
	if (rv == KOS_OK)
		rv = dek_get(keys, name, version, dek, &got);
	if (rv != KOS_OK)
		OPENSSL_cleanse(dek, KOS_DEK_LEN);
	if (version_out != NULL)
		*version_out = got;
	return rv;
}

/* --- server-side encryption ------------------------------------------------------- */

kos_rv kos_key_encrypt(kos_keys *keys, const char *name, const char *context, const uint8_t *pt,
		       size_t len, uint8_t **env, size_t *env_len)
{
	uint8_t dek[KOS_DEK_LEN];
	uint32_t version = 0;
	kos_rv rv;

	if (env == NULL || env_len == NULL)
		return kos_error_set(KOS_E_INVALID, "no output for the envelope");
	*env = NULL;
	*env_len = 0;
	if (keys == NULL || (pt == NULL && len > 0))
		return kos_error_set(KOS_E_INVALID, "no key service or no plaintext");
	rv = kos_keys_check_name(name);
	if (rv != KOS_OK)
		return rv;
	if (len > KOS_ENVELOPE_MAX_PLAINTEXT)
		return kos_error_set(KOS_E_INVALID, "plaintext larger than %u bytes",
				     KOS_ENVELOPE_MAX_PLAINTEXT);
	rv = dek_get(keys, name, 0, dek, &version);
	if (rv == KOS_OK)
		rv = kos_envelope_seal(dek, name, version, context, pt, len, env, env_len);
	OPENSSL_cleanse(dek, sizeof(dek));
	return rv;
}

_Static_assert(KOS_DEK_LEN == KOS_AEAD_KEY_LEN, "DEKs are AES-256 keys");

/* One cipher context per thread: the cached decryption path allocates
 * nothing but the plaintext. */
static pthread_key_t gcm_ctx_key;
static bool gcm_ctx_key_ok;
static pthread_once_t gcm_once = PTHREAD_ONCE_INIT;

static void gcm_ctx_free(void *p)
{
	EVP_CIPHER_CTX_free(p);
}

static void gcm_init(void)
{
	gcm_ctx_key_ok = pthread_key_create(&gcm_ctx_key, gcm_ctx_free) == 0;
}

static EVP_CIPHER_CTX *gcm_ctx(void)
{
	EVP_CIPHER_CTX *ctx;

	pthread_once(&gcm_once, gcm_init);
	if (!gcm_ctx_key_ok)
		return NULL;
	ctx = pthread_getspecific(gcm_ctx_key);
	if (ctx == NULL) {
		ctx = kos_aead_ctx_new(NULL);
		if (ctx != NULL && pthread_setspecific(gcm_ctx_key, ctx) != 0) {
			EVP_CIPHER_CTX_free(ctx);
			ctx = NULL;
		}
	}
	return ctx;
}

/* kos_envelope_open() with this thread's cipher context into out
 * (info->plaintext_len bytes, the caller's): the same format
 * (kos-envelope(5)): the header, then the context, as additional data.
 * out is wiped when the tag does not verify. */
static kos_rv envelope_open_into(const uint8_t key[KOS_DEK_LEN], const uint8_t *env,
				 size_t env_len, const kos_envelope_info *info,
				 const char *context, size_t ctx_len, uint8_t *out)
{
	EVP_CIPHER_CTX *ctx = gcm_ctx();
	size_t n = info->plaintext_len;
	size_t hdr_len = env_len - n - KOS_ENVELOPE_TAG_LEN;
	uint8_t tag[KOS_ENVELOPE_TAG_LEN];
	kos_rv rv;

	if (ctx == NULL)
		return kos_error_set(KOS_E_CRYPTO, "AES-256-GCM is not available");
	memcpy(tag, env + env_len - KOS_ENVELOPE_TAG_LEN, sizeof(tag));
	/* the context outlives the call: kos_aead_open() leaves no key
	 * schedule of the DEK in it */
	rv = kos_aead_open(ctx, key, env + hdr_len - KOS_ENVELOPE_NONCE_LEN, env, hdr_len,
			   (const uint8_t *)context, ctx_len, env + hdr_len, n, tag, out);
	if (rv == KOS_E_INTEGRITY)
		return kos_error_set(KOS_E_INTEGRITY,
				     "envelope for %s version %" PRIu32 " failed authentication "
				     "(wrong key or context, or tampered)",
				     info->key_name, info->key_version);
	if (rv != KOS_OK) {
		OPENSSL_cleanse(out, n);
		return kos_error_set(KOS_E_CRYPTO, "AES-256-GCM decryption failed");
	}
	return KOS_OK;
}

/* envelope_open_into() a new buffer, *pt, freed with kos_secret_free(). */
static kos_rv envelope_open(const uint8_t key[KOS_DEK_LEN], const uint8_t *env, size_t env_len,
			    const kos_envelope_info *info, const char *context, size_t ctx_len,
			    uint8_t **pt, size_t *len)
{
	size_t n = info->plaintext_len;
	uint8_t *out;
	kos_rv rv;

	out = malloc(n + 1);
	if (out == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	rv = envelope_open_into(key, env, env_len, info, context, ctx_len, out);
	if (rv != KOS_OK) {
		kos_secret_free(out, n + 1);
		return rv;
	}
	*pt = out;
	*len = n;
	return KOS_OK;
}

/* The envelope's header (kos_envelope_parse()) and the context's length,
 * refused past KOS_ENVELOPE_CONTEXT_MAX: what decrypt and rewrap check
 * before any key is fetched. */
static kos_rv envelope_and_context(const uint8_t *env, size_t env_len, const char *context,
				   kos_envelope_info *info, size_t *ctx_len)
{
	kos_rv rv = kos_envelope_parse(env, env_len, info);

	if (rv != KOS_OK)
		return rv;
	*ctx_len = context != NULL ? strnlen(context, KOS_ENVELOPE_CONTEXT_MAX + 1) : 0;
	if (*ctx_len > KOS_ENVELOPE_CONTEXT_MAX)
		return kos_error_set(KOS_E_INVALID, "context longer than %d bytes",
				     KOS_ENVELOPE_CONTEXT_MAX);
	return KOS_OK;
}

kos_rv kos_key_decrypt(kos_keys *keys, const char *context, const uint8_t *env, size_t env_len,
		       uint8_t **pt, size_t *len)
{
	kos_envelope_info info;
	uint8_t dek[KOS_DEK_LEN];
	uint32_t version;
	size_t ctx_len;
	kos_rv rv;

	if (pt == NULL || len == NULL)
		return kos_error_set(KOS_E_INVALID, "no output for the plaintext");
	*pt = NULL;
	*len = 0;
	if (keys == NULL)
		return kos_error_set(KOS_E_INVALID, "no key service");
	rv = envelope_and_context(env, env_len, context, &info, &ctx_len);
	if (rv != KOS_OK)
		return rv;
	/* a name the envelope format allows but kos never gives a key */
	if (!kos_key_name_valid(info.key_name))
		return kos_error_set(KOS_E_NOTFOUND, "the envelope names no kos key");
	rv = dek_get(keys, info.key_name, info.key_version, dek, &version);
	if (rv == KOS_OK)
		rv = envelope_open(dek, env, env_len, &info, context, ctx_len, pt, len);
	OPENSSL_cleanse(dek, sizeof(dek));
	return rv;
}

/* --- rewrap: an envelope moved to the current version -------------------------------- */

/* The plaintext exists only between the two calls below, in a locked,
 * undumpable mapping of its own (kos_secmem_alloc), wiped as soon as the
 * new envelope is sealed: nothing of it leaves this function. An envelope
 * already at the current version is opened too, so that every answer,
 * rewrapped or not, says the envelope and its context are genuine. */
kos_rv kos_key_rewrap(kos_keys *keys, const char *name, const char *context, const uint8_t *env,
		      size_t env_len, uint8_t **out, size_t *out_len, uint32_t *version_out)
{
	uint8_t old_dek[KOS_DEK_LEN], cur_dek[KOS_DEK_LEN];
	kos_envelope_info info;
	uint32_t current = 0, got = 0;
	uint8_t *pt = NULL;
	size_t ctx_len;
	kos_rv rv;

	if (out == NULL || out_len == NULL)
		return kos_error_set(KOS_E_INVALID, "no output for the envelope");
	*out = NULL;
	*out_len = 0;
	if (version_out != NULL)
		*version_out = 0;
	if (keys == NULL || env == NULL)
		return kos_error_set(KOS_E_INVALID, "no key service or no envelope");
	rv = kos_keys_check_name(name);
	if (rv != KOS_OK)
		return rv;
	rv = envelope_and_context(env, env_len, context, &info, &ctx_len);
	if (rv != KOS_OK)
		return rv;
	/* the scope admitted was for name: another key's envelope is not
	 * touched, whatever the caller may do with that key otherwise */
	if (strcmp(info.key_name, name) != 0)
		return kos_error_set(KOS_E_INVALID, "the envelope is of key %s, not %s",
				     info.key_name, name);
	rv = dek_get(keys, name, 0, cur_dek, &current);
	if (rv != KOS_OK)
		goto out;
	if (info.key_version > current) {
		rv = kos_error_set(KOS_E_NOTFOUND, "key %s has no version %" PRIu32, name,
				   info.key_version);
		goto out;
	}
	if (info.key_version != current) {
		rv = dek_get(keys, name, info.key_version, old_dek, &got);
		if (rv != KOS_OK)
			goto out;
	}
	pt = kos_secmem_alloc(info.plaintext_len + 1, KOS_SECMEM_GUARD);
	if (pt == NULL) {
		rv = kos_error_set(KOS_E_NOMEM, "out of memory (locked memory for the plaintext)");
		goto out;
	}
	rv = envelope_open_into(info.key_version == current ? cur_dek : old_dek, env, env_len,
				&info, context, ctx_len, pt);
	if (rv == KOS_OK && info.key_version != current)
		rv = kos_envelope_seal(cur_dek, name, current, context, pt, info.plaintext_len, out,
				       out_len);
	if (rv == KOS_OK && version_out != NULL)
		*version_out = current;
out:
	kos_secmem_free(pt);
	OPENSSL_cleanse(old_dek, sizeof(old_dek));
	OPENSSL_cleanse(cur_dek, sizeof(cur_dek));
	return rv;
}

/* --- AES-256-GCM with the caller's parameters (CKM_AES_GCM) --------------------------- */

kos_rv kos_key_gcm_encrypt(kos_keys *keys, const char *name, uint32_t version,
			   const kos_gcm_params *p, const uint8_t *pt, size_t len, uint8_t **ct,
			   size_t *ct_len, uint32_t *version_out)
{
	uint8_t dek[KOS_DEK_LEN];
	uint32_t got = 0;
	EVP_CIPHER_CTX *ctx;
	uint8_t *out = NULL;
	kos_rv rv;

	if (ct == NULL || ct_len == NULL)
		return kos_error_set(KOS_E_INVALID, "no output for the ciphertext");
	*ct = NULL;
	*ct_len = 0;
	if (version_out != NULL)
		*version_out = 0;
	if (keys == NULL || p == NULL || (pt == NULL && len > 0) || p->iv == NULL ||
	    (p->aad == NULL && p->aad_len > 0))
		return kos_error_set(KOS_E_INVALID, "no key service, parameters or plaintext");
	rv = kos_keys_check_name(name);
	if (rv == KOS_OK)
		rv = kos_aead_gcm_check(p->iv_len, p->aad_len, p->tag_len, len, false);
	if (rv != KOS_OK)
		return rv;
	/* old versions only decrypt: a version named must be the current one,
	 * so a caller that pinned one learns of a rotation */
	rv = dek_get(keys, name, 0, dek, &got);
	if (rv == KOS_OK && version != 0 && version != got)
		rv = kos_error_set(KOS_E_INVALID,
				   "key %s version %" PRIu32 " is not current (%" PRIu32
				   "): encryption uses the current version",
				   name, version, got);
	if (rv != KOS_OK)
		goto out;
	ctx = gcm_ctx();
	out = malloc(len + p->tag_len);
	if (ctx == NULL || out == NULL) {
		rv = kos_error_set(ctx == NULL ? KOS_E_CRYPTO : KOS_E_NOMEM,
				   ctx == NULL ? "AES-256-GCM is not available" : "out of memory");
		goto out;
	}
	rv = kos_aead_seal_tag(ctx, dek, p->iv, p->aad, p->aad_len, pt, len, out, out + len,
			       p->tag_len);
	if (rv != KOS_OK) {
		rv = kos_error_set(KOS_E_CRYPTO, "AES-256-GCM encryption failed");
		goto out;
	}
	*ct = out;
	*ct_len = len + p->tag_len;
	out = NULL;
	if (version_out != NULL)
		*version_out = got;
out:
	free(out);
	OPENSSL_cleanse(dek, sizeof(dek));
	return rv;
}

kos_rv kos_key_gcm_decrypt(kos_keys *keys, const char *name, uint32_t version,
			   const kos_gcm_params *p, const uint8_t *ct, size_t ct_len, uint8_t **pt,
			   size_t *len)
{
	uint8_t dek[KOS_DEK_LEN];
	uint32_t got = 0;
	EVP_CIPHER_CTX *ctx;
	uint8_t *out = NULL;
	size_t n = 0;
	kos_rv rv;

	if (pt == NULL || len == NULL)
		return kos_error_set(KOS_E_INVALID, "no output for the plaintext");
	*pt = NULL;
	*len = 0;
	if (keys == NULL || p == NULL || (ct == NULL && ct_len > 0) || p->iv == NULL ||
	    (p->aad == NULL && p->aad_len > 0))
		return kos_error_set(KOS_E_INVALID, "no key service, parameters or ciphertext");
	/* no envelope names the version: the caller must */
	if (version == 0)
		return kos_error_set(KOS_E_INVALID, "GCM decryption needs the key version");
	rv = kos_keys_check_name(name);
	if (rv == KOS_OK)
		rv = kos_aead_gcm_check(p->iv_len, p->aad_len, p->tag_len, ct_len, true);
	if (rv != KOS_OK)
		return rv;
	n = ct_len - p->tag_len;
	rv = dek_get(keys, name, version, dek, &got);
	if (rv != KOS_OK)
		goto out;
	ctx = gcm_ctx();
	out = malloc(n + 1);
	if (ctx == NULL || out == NULL) {
		rv = kos_error_set(ctx == NULL ? KOS_E_CRYPTO : KOS_E_NOMEM,
				   ctx == NULL ? "AES-256-GCM is not available" : "out of memory");
		goto out;
	}
	rv = kos_aead_open_tag(ctx, dek, p->iv, p->aad, p->aad_len, ct, n, ct + n, p->tag_len,
			       out);
	if (rv == KOS_E_INTEGRITY)
		rv = kos_error_set(KOS_E_INTEGRITY,
				   "AES-GCM tag for %s version %" PRIu32 " does not verify (wrong "
				   "version, IV, additional data or tag, or tampered)",
				   name, version);
	else if (rv != KOS_OK)
		rv = kos_error_set(KOS_E_CRYPTO, "AES-256-GCM decryption failed");
	if (rv != KOS_OK)
		goto out;
	*pt = out;
	*len = n;
	out = NULL;
out:
	/* kos_aead_open_tag() wiped what it wrote on failure */
	if (out != NULL)
		kos_secret_free(out, n + 1);
	OPENSSL_cleanse(dek, sizeof(dek));
	return rv;
}

/* --- medium tier: share references ------------------------------------------------- */

struct ref_candidate {
	const struct kos_store_share *loc;
	size_t tok;
	kos_usec latency;
	bool known;
};

kos_rv kos_key_share_refs(kos_keys *keys, const char *name, uint32_t version, const char *set_name,
			  kos_share_ref *refs, size_t *n, unsigned *k, uint32_t *version_out)
{
	struct ref_candidate cand[KOS_SHAMIR_MAX_SHARES];
	const struct kos_store_share_set *set = NULL;
	struct kos_store_version v;
	char down[320] = "";
	size_t n_cand = 0, i, j, got = 0, used = 0;
	kos_rv rv;

	if (n != NULL)
		*n = 0;
	if (keys == NULL || set_name == NULL || refs == NULL || n == NULL || k == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_key_share_refs: missing argument");
	rv = kos_keys_dek_version(keys, name, version, &v);
	if (rv != KOS_OK)
		return rv;
	if (v.state != KOS_KEY_STATE_ACTIVE) {
		rv = kos_error_set(KOS_E_NOTFOUND, "key %s version %" PRIu32 " is retired", name,
				   v.version);
		goto out;
	}
	for (i = 0; i < v.n_sets; i++)
		if (strcmp(v.sets[i].name, set_name) == 0)
			set = &v.sets[i];
	if (set == NULL) {
		rv = kos_error_set(KOS_E_NOTFOUND,
				   "key %s version %" PRIu32 " has no share set "
				   "'%.31s'",
				   name, v.version, set_name);
		goto out;
	}
	for (i = 0; i < v.n_shares && n_cand < KOS_ARRAY_SIZE(cand); i++) {
		struct kos_hsm_stats stats;
		struct ref_candidate *c = &cand[n_cand];

		if (strcmp(v.shares[i].set, set_name) != 0)
			continue;
		c->loc = &v.shares[i];
		c->known = kos_hsm_token_find(keys->hsm, c->loc->token, &c->tok) == KOS_OK;
		c->latency = c->known && kos_hsm_token_stats(keys->hsm, c->tok, &stats) == KOS_OK
				 ? stats.latency_ewma
				 : INT64_MAX;
		n_cand++;
	}
	/* the fastest tokens first (insertion sort: n <= 255) */
	for (i = 1; i < n_cand; i++)
		for (j = i; j > 0 && cand[j].latency < cand[j - 1].latency; j--) {
			struct ref_candidate t = cand[j];

			cand[j] = cand[j - 1];
			cand[j - 1] = t;
		}
	for (i = 0; i < n_cand && got < set->k; i++) {
		kos_share_ref *r = &refs[got];

		if (!cand[i].known || kos_hsm_token_check(keys->hsm, cand[i].tok, NULL) != KOS_OK) {
			if (used + 1 < sizeof(down)) {
				int w = snprintf(down + used, sizeof(down) - used, "%s%s",
						 used ? ", " : "", cand[i].loc->token);

				if (w > 0)
					used += (size_t)w;
			}
			continue;
		}
		memset(r, 0, sizeof(*r));
		snprintf(r->kms_token, sizeof(r->kms_token), "%s", cand[i].loc->token);
		snprintf(r->share_id, sizeof(r->share_id), "%s", cand[i].loc->label);
		r->x = cand[i].loc->x;
		got++;
	}
	if (got < set->k) {
		rv = kos_error_set(KOS_E_IO,
				   "key %s version %" PRIu32 " set %s: %zu of %u needed KMS tokens "
				   "reachable; unreachable: %s",
				   name, v.version, set_name, got, set->k, down[0] ? down : "none");
		goto out;
	}
	*n = got;
	*k = set->k;
	if (version_out != NULL)
		*version_out = v.version;
out:
	kos_store_version_clear(&v);
	return rv;
}

kos_rv kos_key_share_get(kos_keys *keys, const char *share_id, kos_share *share)
{
	const struct kos_store_share *loc = NULL;
	struct kos_store_version v;
	struct problems *pr = NULL;
	struct share_id id;
	size_t i;
	kos_rv rv;

	if (share != NULL)
		memset(share, 0, sizeof(*share));
	if (keys == NULL || share == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_key_share_get: missing argument");
	if (!kos_keys_parse_share_label(share_id, &id))
		return kos_error_set(KOS_E_NOTFOUND, "not a kos share id");
	rv = kos_keys_dek_version(keys, id.name, id.version, &v);
	if (rv != KOS_OK)
		return rv;
	for (i = 0; i < v.n_shares; i++)
		if (v.shares[i].x == id.x && strcmp(v.shares[i].set, id.set) == 0 &&
		    strcmp(v.shares[i].label, share_id) == 0)
			loc = &v.shares[i];
	if (v.state != KOS_KEY_STATE_ACTIVE || loc == NULL) {
		rv = kos_error_set(KOS_E_NOTFOUND,
				   "no share %s (unknown, or its version is retired)", share_id);
		goto out;
	}
	pr = calloc(1, sizeof(*pr));
	if (pr == NULL) {
		rv = kos_error_set(KOS_E_NOMEM, "out of memory");
		goto out;
	}
	rv = share_read(keys, loc, share, pr);
	if (rv != KOS_OK)
		rv = kos_error_set(rv, "share %s: token %s: %s", share_id, loc->token,
				   pr->n > 0 ? pr->p[0].why : kos_strerror(rv));
out:
	free(pr);
	kos_store_version_clear(&v);
	return rv;
}

kos_rv kos_key_share_read(kos_hsm *hsm, const char *share_id, kos_share *share)
{
	struct share_id id;
	char failed[200] = "";
	size_t tok, count, used = 0;
	kos_rv rv, last = KOS_E_NOTFOUND;

	if (share != NULL)
		memset(share, 0, sizeof(*share));
	if (hsm == NULL || share_id == NULL || share == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_key_share_read: missing argument");
	if (!kos_keys_parse_share_label(share_id, &id))
		return kos_error_set(KOS_E_NOTFOUND, "not a kos share id");
	count = kos_hsm_token_count(hsm);
	for (tok = 0; tok < count; tok++) {
		uint8_t *data = NULL;
		size_t len = 0;

		if (kos_hsm_token_role(hsm, tok) != KOS_TOKEN_ROLE_KMS)
			continue;
		rv = kos_hsm_data_get(hsm, tok, share_id, &data, &len);
		if (rv == KOS_E_NOTFOUND)
			continue;
		if (rv != KOS_OK) {
			/* another token may still hold it; say which failed */
			int w = snprintf(failed + used, sizeof(failed) - used, "%s%s", used ? ", " : "",
					 kos_hsm_token_get0_name(hsm, tok));

			if (w > 0 && (size_t)w < sizeof(failed) - used)
				used += (size_t)w;
			last = rv;
			continue;
		}
		rv = kos_share_parse((const char *)data, len, share);
		kos_secret_free(data, len);
		/* the label says which share it is; the content must agree */
		if (rv == KOS_OK && (share->x != id.x || share->len != KOS_DEK_LEN)) {
			kos_shares_clear(share, 1);
			rv = KOS_E_PARSE;
		}
		if (rv != KOS_OK) {
			note_bad_share(hsm, tok);
			return kos_error_set(KOS_E_INTEGRITY, "share %s: token %s holds something else",
					     share_id, kos_hsm_token_get0_name(hsm, tok));
		}
		return KOS_OK;
	}
	if (last != KOS_E_NOTFOUND)
		return kos_error_set(last, "share %s: not found on the tokens that answered; failed: %s",
				     share_id, failed);
	return kos_error_set(KOS_E_NOTFOUND, "no share %s on this KMS front's tokens", share_id);
}
