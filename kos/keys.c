/* The key service: data keys split with Shamir's scheme across KMS tokens,
 * signing keys inside a signer token, their versions, rotation and
 * retirement, the DEK cache, and fsck (kos-keys(7)).
 *
 * Where things are:
 * - The state store holds every key, version (creating, active, retired),
 *   key check value, public key, and the token and label of every share and
 *   key pair. The tokens hold the secrets: one CKO_DATA object per share,
 *   labelled "kos-share:NAME:VERSION:SET:X", holding the share's text form
 *   (kos-share(5)); one key pair per signing key version, labelled
 *   "kos-sign:NAME:VERSION".
 * - A version is made all or nothing: its row is written as creating first,
 *   then the objects, then one transaction records where they are and makes
 *   it active. A failure destroys what was written and deletes the row; a
 *   crash leaves a creating row and objects no active version owns, which
 *   kos_keys_fsck() finds and removes.
 * - A reconstructed DEK may be cached in a locked, undumpable arena for the
 *   policy's keys.cache time; the cached path of kos_key_decrypt() takes one
 *   mutex, touches neither the store nor a token, and allocates only the
 *   plaintext.
 *
 * Locking: keys->lock guards the policy pointer, the DEK cache and the
 * signing-key cache; it is never held across a store, token or signer call.
 *
 * This file holds the handle, names and labels, the key check value, the DEK
 * cache, creating, rotating and retiring versions, and signing keys;
 * kos/keys_info.c the information, kos/keys_shares.c reading shares,
 * server-side encryption and share references, kos/keys_fsck.c fsck. What
 * they share is in kos/keys_internal.h. */
#include "config.h"

#include "kos/hsm.h"
#include "kos/internal.h"
#include "kos/keys_internal.h"
#include "kos/signer.h"
#include "kos/store_backend.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

/* HMAC-SHA256(DEK, KCV_INFO), first KOS_KCV_LEN bytes: the key check value. */
#define KCV_INFO "kos-kcv"

#define CACHE_ENTRIES 64
/* A signing key's current version and token are kept this long, so a
 * signature costs no store query; a rotation by another process is seen
 * within it. */
#define SIGN_META_TTL KOS_USEC_PER_SEC

struct cache_entry {
	uint64_t hash; /* of the name; 0: empty */
	uint32_t version;
	bool current; /* was the current version when cached */
	kos_usec expires;
	char name[KOS_KEY_NAME_MAX + 1];
	uint8_t dek[KOS_DEK_LEN];
};

kos_rv kos_keys_check_name(const char *name)
{
	char shown[80];
	size_t i;

	if (kos_key_name_valid(name))
		return KOS_OK;
	if (name == NULL)
		return kos_error_set(KOS_E_INVALID, "no key name");
	/* quote only what is safe on one line */
	for (i = 0; i + 1 < sizeof(shown) && name[i] != '\0'; i++)
		shown[i] = name[i] < 0x20 || name[i] > 0x7e ? '?' : name[i];
	shown[i] = '\0';
	return kos_error_set(KOS_E_INVALID,
			     "invalid key name '%s': 1 to %d of A-Z a-z 0-9 . _ -, not starting "
			     "with '.' or '-'",
			     shown, KOS_KEY_NAME_MAX);
}

static bool is_signing(kos_key_type t)
{
	return t == KOS_KEY_EC_P256 || t == KOS_KEY_ED25519 || t == KOS_KEY_RSA_2048 ||
	       t == KOS_KEY_RSA_3072;
}

/* FNV-1a of a name, never 0 (0 marks an empty cache slot). */
uint64_t kos_keys_name_hash(const char *s)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	while (*s != '\0') {
		h ^= (unsigned char)*s++;
		h *= UINT64_C(0x100000001b3);
	}
	return h | 1;
}

/* --- labels ------------------------------------------------------------------ */

static void share_label(char *out, size_t len, const char *name, uint32_t version, const char *set,
			unsigned x)
{
	snprintf(out, len, SHARE_PREFIX "%.64s:%" PRIu32 ":%.31s:%u", name, version, set, x);
}

static void sign_label(char *out, size_t len, const char *name, uint32_t version)
{
	snprintf(out, len, SIGN_PREFIX "%s:%" PRIu32, name, version);
}

/* Reads a decimal without sign or leading zero into *v (at most max); returns
 * the end, or NULL. */
static const char *parse_uint(const char *p, uint64_t max, uint64_t *v)
{
	const char *start = p;

	*v = 0;
	if (*p == '0' && p[1] >= '0' && p[1] <= '9')
		return NULL;
	for (; *p >= '0' && *p <= '9'; p++) {
		*v = *v * 10 + (uint64_t)(*p - '0');
		if (*v > max)
			return NULL;
	}
	return p == start ? NULL : p;
}

/* Copies the field of p up to ':' into out (at most len - 1 bytes); returns
 * the position after the ':', or NULL. */
static const char *parse_field(const char *p, char *out, size_t len)
{
	const char *colon = strchr(p, ':');
	size_t n;

	if (colon == NULL)
		return NULL;
	n = (size_t)(colon - p);
	if (n == 0 || n >= len)
		return NULL;
	memcpy(out, p, n);
	out[n] = '\0';
	return colon + 1;
}

static bool set_name_valid(const char *s)
{
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' ||
		      *s == '-'))
			return false;
	return true;
}

/* Parses "kos-share:NAME:VERSION:SET:X" exactly as share_label() writes it. */
bool kos_keys_parse_share_label(const char *label, struct share_id *id)
{
	const char *p;
	uint64_t v;

	memset(id, 0, sizeof(*id));
	if (label == NULL || strncmp(label, SHARE_PREFIX, strlen(SHARE_PREFIX)) != 0)
		return false;
	p = parse_field(label + strlen(SHARE_PREFIX), id->name, sizeof(id->name));
	if (p == NULL || !kos_key_name_valid(id->name))
		return false;
	p = parse_uint(p, UINT32_MAX, &v);
	if (p == NULL || *p != ':' || v == 0)
		return false;
	id->version = (uint32_t)v;
	p = parse_field(p + 1, id->set, sizeof(id->set));
	if (p == NULL || !set_name_valid(id->set))
		return false;
	p = parse_uint(p, 255, &v);
	if (p == NULL || *p != '\0' || v == 0)
		return false;
	id->x = (uint8_t)v;
	return true;
}

/* Parses "kos-sign:NAME:VERSION". */
bool kos_keys_parse_sign_label(const char *label, char *name, uint32_t *version)
{
	const char *p;
	uint64_t v;

	if (label == NULL || strncmp(label, SIGN_PREFIX, strlen(SIGN_PREFIX)) != 0)
		return false;
	p = parse_field(label + strlen(SIGN_PREFIX), name, KOS_KEY_NAME_MAX + 1);
	if (p == NULL || !kos_key_name_valid(name))
		return false;
	p = parse_uint(p, UINT32_MAX, &v);
	if (p == NULL || *p != '\0' || v == 0)
		return false;
	*version = (uint32_t)v;
	return true;
}

/* --- the key check value ------------------------------------------------------ */

/* HMAC-SHA256 keyed with the DEK over a fixed string: a PRF output, so it
 * says nothing about the key, yet a wrong reconstruction matches it only by
 * a 2^-64 chance. */
static kos_rv kcv_compute(const uint8_t dek[KOS_DEK_LEN], uint8_t kcv[KOS_KCV_LEN])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	if (HMAC(EVP_sha256(), dek, KOS_DEK_LEN, (const unsigned char *)KCV_INFO,
		 sizeof(KCV_INFO) - 1, mac, &len) == NULL ||
	    len < KOS_KCV_LEN) {
		OPENSSL_cleanse(mac, sizeof(mac));
		return kos_error_set(KOS_E_CRYPTO, "cannot compute a key check value");
	}
	memcpy(kcv, mac, KOS_KCV_LEN);
	OPENSSL_cleanse(mac, sizeof(mac));
	return KOS_OK;
}

bool kos_keys_kcv_matches(const uint8_t *dek, const uint8_t kcv[KOS_KCV_LEN])
{
	uint8_t got[KOS_KCV_LEN];

	if (kcv_compute(dek, got) != KOS_OK)
		return false;
	return CRYPTO_memcmp(got, kcv, KOS_KCV_LEN) == 0;
}

/* --- the handle ---------------------------------------------------------------- */

static kos_usec default_clock(void *arg)
{
	(void)arg;
	return kos_now();
}

kos_usec kos_keys_now(kos_keys *keys)
{
	return keys->clock(keys->clock_arg);
}

kos_rv kos_keys_new(const kos_policy *pol, kos_store *st, kos_hsm *hsm, kos_keys **out)
{
	kos_keys *keys;
	char host[64] = "";

	if (out == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_keys_new: no output handle");
	*out = NULL;
	if (pol == NULL || st == NULL || hsm == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_keys_new: needs a policy, a store and "
						    "the backend tokens");
	keys = calloc(1, sizeof(*keys));
	if (keys == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	if (pthread_mutex_init(&keys->lock, NULL) != 0) {
		free(keys);
		return kos_error_set(KOS_E_NOMEM, "cannot create a lock");
	}
	/* The cache: locked out of swap and core dumps, wiped before it goes. */
	keys->cache_bytes = CACHE_ENTRIES * sizeof(struct cache_entry);
	keys->cache = kos_secmem_alloc(keys->cache_bytes, KOS_SECMEM_GUARD);
	if (keys->cache == NULL) {
		pthread_mutex_destroy(&keys->lock);
		free(keys);
		return kos_error_set(KOS_E_NOMEM, "cannot map memory for the key cache");
	}
	keys->pol = pol;
	keys->st = st;
	keys->hsm = hsm;
	keys->clock = default_clock;
	if (gethostname(host, sizeof(host) - 1) != 0)
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = '\0';
	snprintf(keys->creator, sizeof(keys->creator), "%s:%ld", host, (long)getpid());
	*out = keys;
	return KOS_OK;
}

void kos_keys_free(kos_keys *keys)
{
	if (keys == NULL)
		return;
	kos_secmem_free(keys->cache);
	/* the handle may be freed and another one opened at its address */
	kos_signer_forget(keys->hsm);
	pthread_mutex_destroy(&keys->lock);
	free(keys);
}

void kos_keys_set_clock(kos_keys *keys, kos_clock_fn fn, void *arg)
{
	pthread_mutex_lock(&keys->lock);
	keys->clock = fn != NULL ? fn : default_clock;
	keys->clock_arg = fn != NULL ? arg : NULL;
	pthread_mutex_unlock(&keys->lock);
}

void kos_keys_test_inject(kos_keys *keys, unsigned after_shares, int mode)
{
	keys->inject_after = after_shares;
	keys->inject_mode = mode;
}

/* --- the DEK cache ------------------------------------------------------------ */

static void entry_wipe(struct cache_entry *e)
{
	OPENSSL_cleanse(e, sizeof(*e));
}

/* Caller holds the lock. */
static void cache_wipe_all(kos_keys *keys)
{
	OPENSSL_cleanse(keys->cache, keys->cache_bytes);
	memset(keys->meta, 0, sizeof(keys->meta));
}

/* Wipes every cached version of name (and its signing entry). */
static void cache_forget(kos_keys *keys, const char *name)
{
	uint64_t h = kos_keys_name_hash(name);
	size_t i;

	pthread_mutex_lock(&keys->lock);
	for (i = 0; i < CACHE_ENTRIES; i++)
		if (keys->cache[i].hash == h && strcmp(keys->cache[i].name, name) == 0)
			entry_wipe(&keys->cache[i]);
	for (i = 0; i < SIGN_META_ENTRIES; i++)
		if (keys->meta[i].hash == h && strcmp(keys->meta[i].name, name) == 0)
			memset(&keys->meta[i], 0, sizeof(keys->meta[i]));
	pthread_mutex_unlock(&keys->lock);
}

void kos_keys_set_policy(kos_keys *keys, const kos_policy *pol)
{
	if (keys == NULL || pol == NULL)
		return;
	pthread_mutex_lock(&keys->lock);
	keys->pol = pol;
	cache_wipe_all(keys);
	pthread_mutex_unlock(&keys->lock);
}

/* Copies the cached DEK of name at version (0: the current one) into dek.
 * Expired entries met on the way are wiped. */
bool kos_keys_cache_get(kos_keys *keys, const char *name, uint64_t h, uint32_t version,
			uint8_t dek[KOS_DEK_LEN], uint32_t *version_out)
{
	kos_usec now;
	bool hit = false;
	size_t i;

	pthread_mutex_lock(&keys->lock);
	now = keys->clock(keys->clock_arg);
	for (i = 0; i < CACHE_ENTRIES; i++) {
		struct cache_entry *e = &keys->cache[i];

		if (e->hash == 0)
			continue;
		if (e->expires <= now) {
			entry_wipe(e);
			continue;
		}
		if (!hit && e->hash == h && (version != 0 ? e->version == version : e->current) &&
		    strcmp(e->name, name) == 0) {
			memcpy(dek, e->dek, KOS_DEK_LEN);
			*version_out = e->version;
			hit = true;
		}
	}
	pthread_mutex_unlock(&keys->lock);
	return hit;
}

/* Caches a DEK for the policy's keys.cache time (nothing when it is 0). */
void kos_keys_cache_put(kos_keys *keys, const char *name, uint32_t version, bool current,
			const uint8_t dek[KOS_DEK_LEN])
{
	uint64_t h = kos_keys_name_hash(name);
	struct cache_entry *slot = NULL;
	kos_usec now, ttl;
	size_t i;

	pthread_mutex_lock(&keys->lock);
	ttl = keys->pol->keys.cache;
	if (ttl <= 0)
		goto out;
	now = keys->clock(keys->clock_arg);
	for (i = 0; i < CACHE_ENTRIES; i++) {
		struct cache_entry *e = &keys->cache[i];

		if (e->hash != 0 && e->expires <= now)
			entry_wipe(e);
		if (e->hash == h && strcmp(e->name, name) == 0 &&
		    (e->version == version || (current && e->current)))
			entry_wipe(e); /* replaced below: one entry per version, one current */
		if (e->hash == 0) {
			if (slot == NULL)
				slot = e;
		}
	}
	if (slot == NULL) {
		/* full: the entry closest to expiry makes room */
		slot = &keys->cache[0];
		for (i = 1; i < CACHE_ENTRIES; i++)
			if (keys->cache[i].expires < slot->expires)
				slot = &keys->cache[i];
		entry_wipe(slot);
	}
	slot->hash = h;
	slot->version = version;
	slot->current = current;
	slot->expires = now > INT64_MAX - ttl ? INT64_MAX : now + ttl;
	memcpy(slot->name, name, strlen(name) + 1);
	memcpy(slot->dek, dek, KOS_DEK_LEN);
out:
	pthread_mutex_unlock(&keys->lock);
}

/* --- choosing tokens ------------------------------------------------------------- */

struct kms {
	size_t tok;
	uint64_t load; /* shares already on it */
	bool failed;   /* a write failed during this creation */
	char why[64];
};

struct kms_list {
	struct kms *k;
	size_t n;
	kos_hsm *hsm;
};

static void add_load(const char *token, uint64_t n, void *arg)
{
	struct kms_list *l = arg;
	size_t i;

	for (i = 0; i < l->n; i++)
		if (strcmp(kos_hsm_token_get0_name(l->hsm, l->k[i].tok), token) == 0)
			l->k[i].load += n;
}

/* Every KMS token of the configuration with the number of shares the store
 * already places on it. */
static kos_rv kms_tokens(kos_keys *keys, struct kms_list *l)
{
	size_t i, count = kos_hsm_token_count(keys->hsm);

	l->hsm = keys->hsm;
	l->n = 0;
	l->k = calloc(count ? count : 1, sizeof(*l->k));
	if (l->k == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	for (i = 0; i < count; i++) {
		struct kms *k;

		if (kos_hsm_token_role(keys->hsm, i) != KOS_TOKEN_ROLE_KMS)
			continue;
		k = &l->k[l->n++];
		k->tok = i;
		/* a token that does not answer now gets no share: better a
		 * clear refusal than a version written, then undone */
		if (kos_hsm_token_check(keys->hsm, i, NULL) != KOS_OK) {
			k->failed = true;
			snprintf(k->why, sizeof(k->why), "unreachable: %s", kos_strerror(KOS_E_IO));
		}
	}
	return kos_store_share_counts(keys->st, add_load, l);
}

/* The least-loaded KMS token not used yet in this set and not failed. */
static struct kms *kms_pick(struct kms_list *l, const bool *used)
{
	struct kms *best = NULL;
	size_t i;

	for (i = 0; i < l->n; i++) {
		if (used[i] || l->k[i].failed)
			continue;
		if (best == NULL || l->k[i].load < best->load)
			best = &l->k[i];
	}
	return best;
}

/* --- creating versions ---------------------------------------------------------- */

struct written {
	size_t tok;
	char label[KOS_STORE_LABEL_MAX + 1];
};

struct creation {
	kos_keys *keys;
	const char *name;
	kos_key_type type;
	bool new_key;
	uint32_t version;
	bool begun;
	struct written *w; /* objects on tokens so far */
	size_t n_w;
	struct kos_store_version act;
};

/* The test hook: stop after n objects as a failure or a crash would. */
static kos_rv inject_point(struct creation *c)
{
	kos_keys *keys = c->keys;

	if (keys->inject_mode == KOS_KEYS_INJECT_OFF || c->n_w != keys->inject_after)
		return KOS_OK;
	if (keys->inject_mode == KOS_KEYS_INJECT_CRASH)
		_exit(3);
	keys->inject_mode = KOS_KEYS_INJECT_OFF;
	return kos_error_set(KOS_E_IO,
			     "key %s version %" PRIu32 ": failure injected after %zu "
			     "objects",
			     c->name, c->version, c->n_w);
}

/* Removes what a failed creation wrote: its objects, then its row. A token
 * that refuses leaves an orphan for fsck; the first error stays the one
 * reported. */
static void creation_undo(struct creation *c)
{
	char saved[512];
	size_t i;

	snprintf(saved, sizeof(saved), "%s", kos_last_error());
	for (i = c->n_w; i-- > 0;) {
		if (is_signing(c->type))
			(void)kos_signer_destroy(c->keys->hsm, c->w[i].tok, c->w[i].label);
		else
			(void)kos_hsm_data_destroy(c->keys->hsm, c->w[i].tok, c->w[i].label);
	}
	if (c->begun)
		(void)kos_store_key_version_abort(c->keys->st, c->name, c->version);
	kos_error_set(KOS_E_IO, "%s", saved);
}

/* Writes the shares of one set on distinct KMS tokens. */
static kos_rv write_set(struct creation *c, const struct kos_share_set_rule *rule,
			const uint8_t dek[KOS_DEK_LEN], struct kms_list *l)
{
	kos_share shares[KOS_SHAMIR_MAX_SHARES];
	bool used[KOS_SHAMIR_MAX_SHARES + 8];
	bool *usedp = used;
	char *text = NULL;
	unsigned x;
	kos_rv rv;

	if (l->n > KOS_ARRAY_SIZE(used)) {
		usedp = calloc(l->n, sizeof(*usedp));
		if (usedp == NULL)
			return kos_error_set(KOS_E_NOMEM, "out of memory");
	} else {
		memset(used, 0, sizeof(used));
	}
	rv = kos_shamir_split(dek, KOS_DEK_LEN, rule->k, rule->n, shares);
	if (rv != KOS_OK)
		goto out;
	c->act.sets[c->act.n_sets].n = rule->n;
	c->act.sets[c->act.n_sets].k = rule->k;
	snprintf(c->act.sets[c->act.n_sets].name, sizeof(c->act.sets[0].name), "%.31s", rule->name);
	c->act.n_sets++;
	for (x = 1; x <= rule->n; x++) {
		struct kos_store_share *sh = &c->act.shares[c->act.n_shares];
		struct written *w = &c->w[c->n_w];
		struct kms *t;

		rv = kos_share_format(&shares[x - 1], &text);
		if (rv != KOS_OK)
			goto out;
		share_label(w->label, sizeof(w->label), c->name, c->version, rule->name, x);
		for (;;) {
			t = kms_pick(l, usedp);
			if (t == NULL) {
				char tried[256] = "";
				size_t i, used_len = 0;

				for (i = 0; i < l->n; i++) {
					int k;

					if (!l->k[i].failed || used_len + 1 >= sizeof(tried))
						continue;
					k = snprintf(
					    tried + used_len, sizeof(tried) - used_len, "%s%s (%s)",
					    used_len ? ", " : "",
					    kos_hsm_token_get0_name(c->keys->hsm, l->k[i].tok),
					    l->k[i].why);
					if (k > 0)
						used_len += (size_t)k;
				}
				rv = kos_error_set(KOS_E_IO,
						   "key %s version %" PRIu32
						   ": share set %s needs %u "
						   "distinct KMS tokens, too few accept shares; "
						   "failed: %s",
						   c->name, c->version, rule->name, rule->n, tried);
				goto out;
			}
			rv = kos_hsm_data_put(c->keys->hsm, t->tok, w->label, text, strlen(text));
			if (rv == KOS_OK)
				break;
			t->failed = true;
			snprintf(t->why, sizeof(t->why), "%s", kos_strerror(rv));
		}
		kos_secret_free(text, strlen(text));
		text = NULL;
		usedp[t - l->k] = true;
		t->load++;
		w->tok = t->tok;
		c->n_w++;
		memset(sh, 0, sizeof(*sh));
		snprintf(sh->set, sizeof(sh->set), "%.31s", rule->name);
		sh->x = (uint8_t)x;
		snprintf(sh->token, sizeof(sh->token), "%s",
			 kos_hsm_token_get0_name(c->keys->hsm, t->tok));
		memcpy(sh->label, w->label, sizeof(sh->label));
		c->act.n_shares++;
		rv = inject_point(c);
		if (rv != KOS_OK)
			goto out;
	}
out:
	if (text != NULL)
		kos_secret_free(text, strlen(text));
	kos_shares_clear(shares, rule->n);
	if (usedp != used)
		free(usedp);
	return rv;
}

/* The share sets of the policy, checked against the KMS tokens there are. */
static kos_rv policy_sets(kos_keys *keys, const struct kms_list *l, struct kos_share_set_rule *sets,
			  size_t *n, size_t *total)
{
	char names[256] = "", down[256] = "";
	size_t i, used = 0, used_down = 0, up = 0;

	pthread_mutex_lock(&keys->lock);
	*n = keys->pol->n_share_sets;
	memcpy(sets, keys->pol->share_sets, *n * sizeof(*sets));
	pthread_mutex_unlock(&keys->lock);
	for (i = 0; i < l->n; i++) {
		const char *name = kos_hsm_token_get0_name(keys->hsm, l->k[i].tok);
		int k;

		if (!l->k[i].failed)
			up++;
		if (used + 1 < sizeof(names)) {
			k = snprintf(names + used, sizeof(names) - used, "%s%s", i ? ", " : "",
				     name);
			if (k > 0)
				used += (size_t)k;
		}
		if (l->k[i].failed && used_down + 1 < sizeof(down)) {
			k = snprintf(down + used_down, sizeof(down) - used_down, "%s%s",
				     used_down ? ", " : "", name);
			if (k > 0)
				used_down += (size_t)k;
		}
	}
	*total = 0;
	if (*n == 0)
		return kos_error_set(KOS_E_POLICY, "the policy has no share sets");
	for (i = 0; i < *n; i++) {
		if (sets[i].n > l->n)
			return kos_error_set(KOS_E_RANGE,
					     "share set %s needs %u distinct KMS tokens; the "
					     "configuration has %zu%s%s%s",
					     sets[i].name, sets[i].n, l->n, l->n ? " (" : "", names,
					     l->n ? ")" : "");
		if (sets[i].n > up)
			return kos_error_set(
			    KOS_E_RANGE,
			    "share set %s needs %u distinct KMS tokens; %zu of the "
			    "%zu configured are reachable (unreachable: %s)",
			    sets[i].name, sets[i].n, up, l->n, down);
		*total += sets[i].n;
	}
	return KOS_OK;
}

/* The first token with the signer role that answers. */
static kos_rv signer_token(kos_keys *keys, size_t *tok)
{
	size_t i, count = kos_hsm_token_count(keys->hsm), seen = 0;
	char why[400] = "";
	size_t used = 0;

	for (i = 0; i < count; i++) {
		if (kos_hsm_token_role(keys->hsm, i) != KOS_TOKEN_ROLE_SIGNER)
			continue;
		seen++;
		if (kos_hsm_token_check(keys->hsm, i, NULL) == KOS_OK) {
			*tok = i;
			return KOS_OK;
		}
		if (used + 1 < sizeof(why)) {
			int k = snprintf(why + used, sizeof(why) - used, "%s%s", used ? "; " : "",
					 kos_last_error());

			if (k > 0)
				used += (size_t)k;
		}
	}
	if (seen == 0)
		return kos_error_set(KOS_E_RANGE, "no token with the signer role in the "
						  "configuration");
	return kos_error_set(KOS_E_IO, "no signer token is reachable: %s", why);
}

/* Makes a new version of name: the row (creating), the shares or the key
 * pair, then the activation. All or nothing. */
static kos_rv create_version(kos_keys *keys, const char *name, kos_key_type type, bool new_key,
			     uint32_t *version_out)
{
	struct kos_share_set_rule sets[KOS_POLICY_MAX_SHARE_SETS];
	struct kos_store_key key = {.type = type};
	struct creation c;
	struct kms_list l = {0};
	uint8_t dek[KOS_DEK_LEN];
	uint8_t *spki = NULL;
	size_t n_sets = 0, total = 1, i, sign_tok = 0;
	kos_rv rv;

	memset(&c, 0, sizeof(c));
	c.keys = keys;
	c.name = name;
	c.type = type;
	c.new_key = new_key;
	if (type == KOS_KEY_DEK) {
		rv = kms_tokens(keys, &l);
		if (rv == KOS_OK)
			rv = policy_sets(keys, &l, sets, &n_sets, &total);
		if (rv == KOS_OK && RAND_priv_bytes(dek, sizeof(dek)) != 1)
			rv = kos_error_set(KOS_E_CRYPTO, "no randomness for a data key");
		if (rv == KOS_OK)
			rv = kcv_compute(dek, c.act.kcv);
		c.act.has_kcv = true;
	} else if (is_signing(type)) {
		rv = signer_token(keys, &sign_tok);
	} else {
		rv = kos_error_set(KOS_E_INVALID, "unknown key type %d", (int)type);
	}
	if (rv != KOS_OK)
		goto out;
	c.w = calloc(total, sizeof(*c.w));
	c.act.shares = calloc(total, sizeof(*c.act.shares));
	if (c.w == NULL || c.act.shares == NULL) {
		rv = kos_error_set(KOS_E_NOMEM, "out of memory");
		goto out;
	}

	c.act.created = kos_keys_now(keys);
	snprintf(c.act.creator, sizeof(c.act.creator), "%s", keys->creator);
	key.created = c.act.created;
	rv = kos_store_key_version_begin(keys->st, new_key ? &key : NULL, name, &c.act, &c.version);
	if (rv != KOS_OK)
		goto out;
	c.begun = true;
	snprintf(c.act.name, sizeof(c.act.name), "%s", name);
	c.act.version = c.version;
	rv = inject_point(&c);
	if (rv != KOS_OK)
		goto undo;

	if (type == KOS_KEY_DEK) {
		for (i = 0; i < n_sets; i++) {
			rv = write_set(&c, &sets[i], dek, &l);
			if (rv != KOS_OK)
				goto undo;
		}
	} else {
		size_t spki_len = 0;

		sign_label(c.w[0].label, sizeof(c.w[0].label), name, c.version);
		rv = kos_signer_generate(keys->hsm, sign_tok, type, c.w[0].label, &spki, &spki_len);
		if (rv != KOS_OK)
			goto undo;
		c.w[0].tok = sign_tok;
		c.n_w = 1;
		if (spki_len > sizeof(c.act.spki)) {
			rv = kos_error_set(KOS_E_RANGE, "public key of %zu bytes", spki_len);
			goto undo;
		}
		memcpy(c.act.spki, spki, spki_len);
		c.act.spki_len = spki_len;
		snprintf(c.act.token, sizeof(c.act.token), "%s",
			 kos_hsm_token_get0_name(keys->hsm, sign_tok));
		memcpy(c.act.label, c.w[0].label, sizeof(c.act.label));
		rv = inject_point(&c);
		if (rv != KOS_OK)
			goto undo;
	}
	rv = kos_store_key_version_activate(keys->st, &c.act);
	if (rv != KOS_OK)
		goto undo;
	cache_forget(keys, name);
	if (type == KOS_KEY_DEK)
		kos_keys_cache_put(keys, name, c.version, true, dek);
	if (version_out != NULL)
		*version_out = c.version;
	goto out;
undo:
	creation_undo(&c);
out:
	OPENSSL_cleanse(dek, sizeof(dek));
	kos_free(spki);
	free(c.w);
	free(c.act.shares);
	free(l.k);
	return rv;
}

kos_rv kos_key_create(kos_keys *keys, const char *name, kos_key_type type)
{
	struct kos_store_key key;
	kos_rv rv;

	if (keys == NULL)
		return kos_error_set(KOS_E_INVALID, "no key service");
	rv = kos_keys_check_name(name);
	if (rv != KOS_OK)
		return rv;
	if ((unsigned)type >= KOS_KEY_TYPE_COUNT)
		return kos_error_set(KOS_E_INVALID, "unknown key type %d", (int)type);
	/* a clear answer before any work; the store checks again atomically */
	if (kos_store_key_get(keys->st, name, &key) == KOS_OK)
		return kos_error_set(KOS_E_EXISTS, "key %s already exists", name);
	return create_version(keys, name, type, true, NULL);
}

kos_rv kos_key_rotate(kos_keys *keys, const char *name, uint32_t *new_version)
{
	struct kos_store_key key;
	kos_rv rv;

	if (keys == NULL)
		return kos_error_set(KOS_E_INVALID, "no key service");
	rv = kos_keys_check_name(name);
	if (rv == KOS_OK)
		rv = kos_store_key_get(keys->st, name, &key);
	if (rv != KOS_OK)
		return rv;
	return create_version(keys, name, key.type, false, new_version);
}

kos_rv kos_keys_rotate_due(kos_keys *keys,
			   void (*fn)(const char *name, uint32_t version, void *arg), void *arg)
{
	struct kos_store_key *all = NULL;
	char first_error[512] = "";
	kos_rv first = KOS_OK, rv;
	kos_usec now, dek_every, sign_every;
	size_t n = 0, i;

	if (keys == NULL)
		return kos_error_set(KOS_E_INVALID, "no key service");
	rv = kos_store_key_list(keys->st, &all, &n);
	if (rv != KOS_OK)
		return rv;
	pthread_mutex_lock(&keys->lock);
	dek_every = keys->pol->rotation.dek;
	sign_every = keys->pol->rotation.signing;
	pthread_mutex_unlock(&keys->lock);
	now = kos_keys_now(keys);
	for (i = 0; i < n; i++) {
		struct kos_store_version v;
		kos_usec every = all[i].type == KOS_KEY_DEK ? dek_every : sign_every;
		uint32_t made = 0;

		if (kos_store_key_version_get(keys->st, all[i].name, 0, &v) != KOS_OK)
			continue; /* no active version: nothing to rotate */
		rv = KOS_OK;
		if (every > 0 && now - v.created >= every)
			rv = create_version(keys, all[i].name, all[i].type, false, &made);
		kos_store_version_clear(&v);
		if (rv != KOS_OK && first == KOS_OK) {
			first = rv;
			snprintf(first_error, sizeof(first_error), "%s", kos_last_error());
		}
		if (rv == KOS_OK && made != 0 && fn != NULL)
			fn(all[i].name, made, arg);
	}
	free(all);
	if (first != KOS_OK)
		return kos_error_set(first, "%s", first_error);
	return KOS_OK;
}

/* --- retiring ------------------------------------------------------------------- */

/* KOS_E_NOTFOUND from a destroy means the object is gone only when the
 * token itself answers; a token that is not there is a failure. */
static kos_rv destroy_result(kos_keys *keys, size_t tok, kos_rv rv)
{
	char saved[512];

	if (rv != KOS_E_NOTFOUND)
		return rv;
	snprintf(saved, sizeof(saved), "%s", kos_last_error());
	if (kos_hsm_token_check(keys->hsm, tok, NULL) == KOS_OK)
		return KOS_OK;
	return kos_error_set(KOS_E_IO, "%s", saved);
}

kos_rv kos_key_retire(kos_keys *keys, const char *name, uint32_t version)
{
	struct kos_store_version v;
	struct kos_store_key key;
	char failed[320] = "";
	size_t i, used = 0, n_failed = 0;
	kos_rv rv;

	if (keys == NULL)
		return kos_error_set(KOS_E_INVALID, "no key service");
	rv = kos_keys_check_name(name);
	if (rv == KOS_OK)
		rv = kos_store_key_get(keys->st, name, &key);
	if (rv != KOS_OK)
		return rv;
	if (version == 0)
		return kos_error_set(KOS_E_INVALID, "retire: name a version (1 or more)");
	rv = kos_store_key_version_get(keys->st, name, version, &v);
	if (rv != KOS_OK)
		return rv;
	/* the store refuses the current version, a retired or creating one */
	rv = kos_store_key_version_retire(keys->st, name, version);
	if (rv != KOS_OK)
		goto out;
	cache_forget(keys, name);
	/* The version is unusable from here on; what cannot be destroyed now
	 * (a token down) is an orphan kos_keys_fsck() removes later. */
	if (is_signing(key.type)) {
		size_t tok;

		rv = kos_hsm_token_find(keys->hsm, v.token, &tok);
		if (rv == KOS_OK)
			rv = destroy_result(keys, tok, kos_signer_destroy(keys->hsm, tok, v.label));
		if (rv != KOS_OK) {
			snprintf(failed, sizeof(failed), "%s (%s)", v.token, kos_strerror(rv));
			n_failed = 1;
		}
	} else {
		for (i = 0; i < v.n_shares; i++) {
			size_t tok;

			rv = kos_hsm_token_find(keys->hsm, v.shares[i].token, &tok);
			if (rv == KOS_OK)
				rv = destroy_result(
				    keys, tok,
				    kos_hsm_data_destroy(keys->hsm, tok, v.shares[i].label));
			if (rv == KOS_OK)
				continue;
			n_failed++;
			if (used + 1 < sizeof(failed)) {
				int k =
				    snprintf(failed + used, sizeof(failed) - used, "%s%s (%s)",
					     used ? ", " : "", v.shares[i].token, kos_strerror(rv));

				if (k > 0)
					used += (size_t)k;
			}
		}
	}
	rv = KOS_OK;
	if (n_failed > 0)
		rv = kos_error_set(
		    KOS_E_IO,
		    "key %s version %" PRIu32 " is retired, but %zu object%s could "
		    "not be destroyed: %s; run 'kosctl fsck --repair' when the token%s "
		    "can be reached",
		    name, version, n_failed, n_failed == 1 ? "" : "s", failed,
		    n_failed == 1 ? "" : "s");
out:
	kos_store_version_clear(&v);
	return rv;
}

/* --- destroying ------------------------------------------------------------------ */

struct destruction {
	kos_keys *keys;
	unsigned destroyed;
	size_t n_failed;
	char failed[320];
	size_t used;
};

/* The test hook for a crash between the store and the tokens, or midway
 * through the tokens. */
static void destroy_inject(struct destruction *d)
{
	if (d->keys->inject_mode == KOS_KEYS_INJECT_CRASH && d->destroyed == d->keys->inject_after)
		_exit(3);
}

static void destroy_object(struct destruction *d, bool signing, const char *token,
			   const char *label)
{
	kos_hsm *hsm = d->keys->hsm;
	size_t tok;
	kos_rv rv;

	rv = kos_hsm_token_find(hsm, token, &tok);
	if (rv == KOS_OK)
		rv = destroy_result(d->keys, tok,
				    signing ? kos_signer_destroy(hsm, tok, label)
					    : kos_hsm_data_destroy(hsm, tok, label));
	if (rv == KOS_OK) {
		d->destroyed++;
		destroy_inject(d);
		return;
	}
	d->n_failed++;
	if (d->used + 1 < sizeof(d->failed)) {
		int k = snprintf(d->failed + d->used, sizeof(d->failed) - d->used, "%s%s (%s)",
				 d->used ? ", " : "", token, kos_strerror(rv));

		if (k > 0)
			d->used += (size_t)k;
	}
}

kos_rv kos_key_destroy(kos_keys *keys, const char *name)
{
	struct kos_store_version *v = NULL;
	struct destruction d;
	struct kos_store_key key;
	size_t n = 0, i, s;
	bool signing;
	kos_rv rv;

	if (keys == NULL)
		return kos_error_set(KOS_E_INVALID, "no key service");
	rv = kos_keys_check_name(name);
	if (rv == KOS_OK)
		rv = kos_store_key_get(keys->st, name, &key);
	if (rv == KOS_OK)
		rv = kos_store_key_versions(keys->st, name, &v, &n);
	if (rv != KOS_OK)
		return rv;
	signing = is_signing(key.type);
	/* The store first: once its transaction commits the key is gone for
	 * every caller, and an object left on a token (a crash below, a token
	 * down, a version begun after the read above) belongs to no version,
	 * which kos_keys_fsck() removes. The other order would leave rows
	 * naming objects that no longer exist. */
	rv = kos_store_key_delete(keys->st, name);
	if (rv != KOS_OK)
		goto out;
	cache_forget(keys, name);
	memset(&d, 0, sizeof(d));
	d.keys = keys;
	destroy_inject(&d);
	for (i = 0; i < n; i++) {
		/* a retired version's objects went at its retirement; a
		 * version still creating records none yet (its maker undoes it
		 * when the activation finds the row gone) */
		if (v[i].state != KOS_KEY_STATE_ACTIVE)
			continue;
		if (signing && v[i].label[0] != '\0')
			destroy_object(&d, true, v[i].token, v[i].label);
		for (s = 0; !signing && s < v[i].n_shares; s++)
			destroy_object(&d, false, v[i].shares[s].token, v[i].shares[s].label);
	}
	if (d.n_failed > 0)
		rv = kos_error_set(KOS_E_IO,
				   "key %s is destroyed, but %zu object%s could not be destroyed: "
				   "%s; run 'kosctl fsck --repair' when the token%s can be reached",
				   name, d.n_failed, d.n_failed == 1 ? "" : "s", d.failed,
				   d.n_failed == 1 ? "" : "s");
out:
	kos_store_versions_free(v, n);
	return rv;
}

/* --- signing keys ------------------------------------------------------------------ */

/* Version asked (0: the current one) of signing key name, its token and
 * label: from the short-lived cache, else the store. Only an active
 * version is found; a retired one is KOS_E_NOTFOUND saying so. */
static kos_rv sign_meta_get(kos_keys *keys, const char *name, uint32_t asked,
			    struct sign_meta *out)
{
	uint64_t h = kos_keys_name_hash(name);
	struct kos_store_version v;
	struct kos_store_key key;
	kos_usec now;
	size_t i, slot = 0;
	bool hit = false;
	kos_rv rv;

	pthread_mutex_lock(&keys->lock);
	now = keys->clock(keys->clock_arg);
	for (i = 0; i < SIGN_META_ENTRIES && !hit; i++) {
		if (keys->meta[i].hash == h && keys->meta[i].asked == asked &&
		    keys->meta[i].expires > now && strcmp(keys->meta[i].name, name) == 0) {
			*out = keys->meta[i];
			hit = true;
		}
	}
	pthread_mutex_unlock(&keys->lock);
	if (hit)
		return KOS_OK;

	rv = kos_store_key_get(keys->st, name, &key);
	if (rv != KOS_OK)
		return rv;
	if (!is_signing(key.type))
		return kos_error_set(KOS_E_INVALID, "key %s is a data key, not a signing key",
				     name);
	rv = kos_store_key_version_get(keys->st, name, asked, &v);
	if (rv == KOS_E_NOTFOUND && asked != 0)
		return kos_error_set(KOS_E_NOTFOUND, "key %s has no version %" PRIu32, name, asked);
	if (rv != KOS_OK)
		return rv;
	if (v.state != KOS_KEY_STATE_ACTIVE) {
		/* a retired version's key pair is destroyed: it signs nothing more */
		rv = v.state == KOS_KEY_STATE_RETIRED
			 ? kos_error_set(KOS_E_NOTFOUND, "key %s version %" PRIu32 " is retired",
					 name, asked)
			 : kos_error_set(KOS_E_NOTFOUND, "key %s has no version %" PRIu32, name,
					 asked);
		kos_store_version_clear(&v);
		return rv;
	}
	memset(out, 0, sizeof(*out));
	out->hash = h;
	snprintf(out->name, sizeof(out->name), "%s", name);
	out->type = key.type;
	out->asked = asked;
	out->version = v.version;
	snprintf(out->label, sizeof(out->label), "%s", v.label);
	rv = kos_hsm_token_find(keys->hsm, v.token, &out->tok);
	if (rv != KOS_OK)
		rv = kos_error_set(KOS_E_NOTFOUND,
				   "key %s version %" PRIu32 " is on token %s, which the "
				   "configuration does not name",
				   name, v.version, v.token);
	kos_store_version_clear(&v);
	if (rv != KOS_OK)
		return rv;
	pthread_mutex_lock(&keys->lock);
	out->expires = now + SIGN_META_TTL;
	for (i = 0; i < SIGN_META_ENTRIES; i++) {
		if (keys->meta[i].hash == 0 ||
		    (keys->meta[i].hash == h && keys->meta[i].asked == asked &&
		     strcmp(keys->meta[i].name, name) == 0)) {
			slot = i;
			break;
		}
		if (keys->meta[i].expires < keys->meta[slot].expires)
			slot = i;
	}
	keys->meta[slot] = *out;
	pthread_mutex_unlock(&keys->lock);
	return KOS_OK;
}

/* SHA-1 collisions can be bought (chosen-prefix, 2020): a signature over a
 * SHA-1 digest may vouch for a document the signer never saw. Only a site
 * with a legacy consumer turns it on. */
static bool sha1_allowed(kos_keys *keys)
{
	bool ok;

	pthread_mutex_lock(&keys->lock);
	ok = keys->pol->signing.allow_sha1;
	pthread_mutex_unlock(&keys->lock);
	return ok;
}

kos_rv kos_key_sign_with(kos_keys *keys, const char *name, const kos_sign_opts *opts,
			 const uint8_t *in, size_t len, uint8_t **sig, size_t *sig_len,
			 uint32_t *version_out)
{
	struct sign_meta m;
	kos_rv rv;

	if (sig == NULL || sig_len == NULL)
		return kos_error_set(KOS_E_INVALID, "no output for the signature");
	*sig = NULL;
	*sig_len = 0;
	if (keys == NULL || opts == NULL || (in == NULL && len > 0))
		return kos_error_set(KOS_E_INVALID, "no key service or no data");
	if ((unsigned)opts->alg >= KOS_SIG_ALG_COUNT)
		return kos_error_set(KOS_E_INVALID, "unknown signature algorithm %d",
				     (int)opts->alg);
	if ((unsigned)opts->hash >= KOS_HASH_COUNT)
		return kos_error_set(KOS_E_INVALID, "unknown hash %d", (int)opts->hash);
	if (opts->hash == KOS_HASH_SHA1 && !sha1_allowed(keys))
		return kos_error_set(
		    KOS_E_POLICY,
		    "SHA-1 signatures are disabled by the policy (signing.allow_sha1)");
	rv = kos_keys_check_name(name);
	if (rv == KOS_OK)
		rv = sign_meta_get(keys, name, opts->version, &m);
	if (rv != KOS_OK)
		return rv;
	rv = kos_signer_sign_with(keys->hsm, m.tok, m.type, m.label, opts, in, len, sig, sig_len);
	if (rv == KOS_OK && version_out != NULL)
		*version_out = m.version;
	return rv;
}

kos_rv kos_key_sign(kos_keys *keys, const char *name, kos_sig_alg alg, const uint8_t *data,
		    size_t len, uint8_t **sig, size_t *sig_len, uint32_t *version_out)
{
	kos_sign_opts opts = KOS_SIGN_OPTS_INIT;

	opts.alg = alg;
	return kos_key_sign_with(keys, name, &opts, data, len, sig, sig_len, version_out);
}

static bool is_rsa(kos_key_type t)
{
	return t == KOS_KEY_RSA_2048 || t == KOS_KEY_RSA_3072;
}

kos_rv kos_key_rsa_decrypt(kos_keys *keys, const char *name, const kos_rsa_decrypt_opts *opts,
			   const uint8_t *ct, size_t len, uint8_t **pt, size_t *pt_len,
			   uint32_t *version_out)
{
	struct sign_meta m;
	kos_rv rv;

	if (pt == NULL || pt_len == NULL)
		return kos_error_set(KOS_E_INVALID, "no output for the plaintext");
	*pt = NULL;
	*pt_len = 0;
	if (version_out != NULL)
		*version_out = 0;
	if (keys == NULL || opts == NULL || ct == NULL)
		return kos_error_set(KOS_E_INVALID, "no key service, options or ciphertext");
	rv = kos_keys_check_name(name);
	if (rv == KOS_OK)
		rv = sign_meta_get(keys, name, opts->version, &m);
	if (rv != KOS_OK)
		return rv;
	if (!is_rsa(m.type))
		return kos_error_set(KOS_E_INVALID, "key %s is %s: only RSA keys decrypt", name,
				     kos_key_type_name(m.type));
	if (len != (m.type == KOS_KEY_RSA_2048 ? 256u : 384u))
		return kos_error_set(
		    KOS_E_INVALID, "key %s is %s: a ciphertext is %u bytes (the modulus'), not %zu",
		    name, kos_key_type_name(m.type), m.type == KOS_KEY_RSA_2048 ? 256u : 384u, len);
	rv = kos_signer_rsa_decrypt(keys->hsm, m.tok, m.type, m.label, opts, ct, len, pt, pt_len);
	/* CKA_DECRYPT false: a key pair made before kos decrypted with RSA */
	if (rv == KOS_E_POLICY)
		return kos_error_set(KOS_E_INVALID,
				     "key %s version %" PRIu32 " was made without decryption; "
				     "rotate it",
				     name, m.version);
	if (rv == KOS_OK && version_out != NULL)
		*version_out = m.version;
	return rv;
}

kos_rv kos_key_pubkey_pem_at(kos_keys *keys, const char *name, uint32_t version, char **pem,
			     uint32_t *version_out)
{
	struct kos_store_version v;
	struct kos_store_key key;
	kos_rv rv;

	if (pem == NULL)
		return kos_error_set(KOS_E_INVALID, "no output for the public key");
	*pem = NULL;
	if (version_out != NULL)
		*version_out = 0;
	if (keys == NULL)
		return kos_error_set(KOS_E_INVALID, "no key service");
	rv = kos_keys_check_name(name);
	if (rv == KOS_OK)
		rv = kos_store_key_get(keys->st, name, &key);
	if (rv != KOS_OK)
		return rv;
	if (!is_signing(key.type))
		return kos_error_set(KOS_E_INVALID, "key %s is a data key: it has no public key",
				     name);
	rv = kos_store_key_version_get(keys->st, name, version, &v);
	if (rv != KOS_OK)
		return rv;
	if (v.state == KOS_KEY_STATE_CREATING || v.spki_len == 0)
		rv = kos_error_set(KOS_E_NOTFOUND, "key %s has no version %" PRIu32, name, version);
	else
		rv = kos_spki_to_pem(v.spki, v.spki_len, pem);
	if (rv == KOS_OK && version_out != NULL)
		*version_out = v.version;
	kos_store_version_clear(&v);
	return rv;
}

kos_rv kos_key_pubkey_pem(kos_keys *keys, const char *name, uint32_t version, char **pem)
{
	return kos_key_pubkey_pem_at(keys, name, version, pem, NULL);
}
