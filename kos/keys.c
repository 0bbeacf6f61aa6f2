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
 * signing-key cache; it is never held across a store, token or signer call. */
#include "config.h"

#include "kos/hsm.h"
#include "kos/internal.h"
#include "kos/signer.h"
#include "kos/store_backend.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#define SHARE_PREFIX "kos-share:"
#define SIGN_PREFIX  "kos-sign:"
/* HMAC-SHA256(DEK, KCV_INFO), first KOS_KCV_LEN bytes: the key check value. */
#define KCV_INFO "kos-kcv"

#define CACHE_ENTRIES 64
/* A signing key's current version and token are kept this long, so a
 * signature costs no store query; a rotation by another process is seen
 * within it. */
#define SIGN_META_TTL	  KOS_USEC_PER_SEC
#define SIGN_META_ENTRIES 16
/* A version still creating after this long is stale whoever made it. */
#define CREATE_STALE (10 * 60 * KOS_USEC_PER_SEC)
/* At most this many k-subsets are combined when looking for wrong shares. */
#define SUBSETS_MAX 4096
/* Tokens named in one failure message. */
#define PROBLEMS_MAX 32

struct cache_entry {
	uint64_t hash; /* of the name; 0: empty */
	uint32_t version;
	bool current; /* was the current version when cached */
	kos_usec expires;
	char name[KOS_KEY_NAME_MAX + 1];
	uint8_t dek[KOS_DEK_LEN];
};

struct sign_meta {
	uint64_t hash; /* 0: empty */
	kos_usec expires;
	char name[KOS_KEY_NAME_MAX + 1];
	kos_key_type type;
	uint32_t version;
	size_t tok;
	char label[KOS_STORE_LABEL_MAX + 1];
};

struct kos_keys {
	kos_store *st;
	kos_hsm *hsm;
	kos_clock_fn clock;
	void *clock_arg;
	pthread_mutex_t lock;
	const kos_policy *pol;
	struct cache_entry *cache; /* CACHE_ENTRIES in a locked mapping */
	size_t cache_bytes;
	struct sign_meta meta[SIGN_META_ENTRIES];
	char creator[KOS_STORE_CREATOR_MAX + 1];
	unsigned inject_after;
	int inject_mode;
};

/* --- names ------------------------------------------------------------------ */

static const char *const type_names[] = {
    [KOS_KEY_DEK] = "dek",	     [KOS_KEY_EC_P256] = "ec-p256",   [KOS_KEY_ED25519] = "ed25519",
    [KOS_KEY_RSA_2048] = "rsa-2048", [KOS_KEY_RSA_3072] = "rsa-3072",
};

static const char *const alg_names[] = {
    [KOS_SIG_DEFAULT] = "default",     [KOS_SIG_ECDSA_RAW] = "ecdsa",
    [KOS_SIG_ECDSA_DER] = "ecdsa-der", [KOS_SIG_ED25519] = "ed25519",
    [KOS_SIG_RSA_PKCS1] = "rsa-pkcs1", [KOS_SIG_RSA_PSS] = "rsa-pss",
};

const char *kos_key_type_name(kos_key_type t)
{
	if ((unsigned)t < KOS_ARRAY_SIZE(type_names))
		return type_names[t];
	return "unknown";
}

kos_rv kos_key_type_parse(const char *s, kos_key_type *out)
{
	size_t i;

	for (i = 0; s != NULL && i < KOS_ARRAY_SIZE(type_names); i++) {
		if (strcmp(s, type_names[i]) == 0) {
			*out = (kos_key_type)i;
			return KOS_OK;
		}
	}
	return kos_error_set(KOS_E_INVALID,
			     "unknown key type '%.32s' (dek, ec-p256, ed25519, rsa-2048, rsa-3072)",
			     s != NULL ? s : "");
}

const char *kos_sig_alg_name(kos_sig_alg a)
{
	if ((unsigned)a < KOS_ARRAY_SIZE(alg_names))
		return alg_names[a];
	return "unknown";
}

kos_rv kos_sig_alg_parse(const char *s, kos_sig_alg *out)
{
	size_t i;

	for (i = 0; s != NULL && i < KOS_ARRAY_SIZE(alg_names); i++) {
		if (strcmp(s, alg_names[i]) == 0) {
			*out = (kos_sig_alg)i;
			return KOS_OK;
		}
	}
	return kos_error_set(KOS_E_INVALID,
			     "unknown signature algorithm '%.32s' (default, ecdsa, ecdsa-der, "
			     "ed25519, rsa-pkcs1, rsa-pss)",
			     s != NULL ? s : "");
}

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

int kos_key_name_valid(const char *name)
{
	size_t i;

	if (name == NULL || name[0] == '\0' || name[0] == '.' || name[0] == '-')
		return 0;
	for (i = 0; name[i] != '\0'; i++)
		if (i >= KOS_KEY_NAME_MAX || !name_char(name[i]))
			return 0;
	return 1;
}

static kos_rv check_name(const char *name)
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
static uint64_t name_hash(const char *s)
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

struct share_id {
	char name[KOS_KEY_NAME_MAX + 1];
	uint32_t version;
	char set[KOS_STORE_SET_NAME_MAX + 1];
	uint8_t x;
};

/* Parses "kos-share:NAME:VERSION:SET:X" exactly as share_label() writes it. */
static bool parse_share_label(const char *label, struct share_id *id)
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
static bool parse_sign_label(const char *label, char *name, uint32_t *version)
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

static bool kcv_matches(const uint8_t *dek, const uint8_t kcv[KOS_KCV_LEN])
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

static kos_usec now_of(kos_keys *keys)
{
	return keys->clock(keys->clock_arg);
}

/* The cache arena: locked out of swap and core dumps, wiped before it goes.
 * mlock may fail under a small RLIMIT_MEMLOCK; the DEKs are then still wiped
 * on every exit path, only not pinned. */
static struct cache_entry *arena_alloc(size_t *bytes)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t p = page > 0 ? (size_t)page : 4096;
	size_t len = (CACHE_ENTRIES * sizeof(struct cache_entry) + p - 1) / p * p;
	void *a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (a == MAP_FAILED)
		return NULL;
	(void)mlock(a, len);
#ifdef MADV_DONTDUMP
	(void)madvise(a, len, MADV_DONTDUMP);
#endif
	*bytes = len;
	return a;
}

static void arena_free(struct cache_entry *a, size_t bytes)
{
	if (a == NULL)
		return;
	OPENSSL_cleanse(a, bytes);
	(void)munlock(a, bytes);
	munmap(a, bytes);
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
	keys->cache = arena_alloc(&keys->cache_bytes);
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
	arena_free(keys->cache, keys->cache_bytes);
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
	uint64_t h = name_hash(name);
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
static bool cache_get(kos_keys *keys, const char *name, uint64_t h, uint32_t version,
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
static void cache_put(kos_keys *keys, const char *name, uint32_t version, bool current,
		      const uint8_t dek[KOS_DEK_LEN])
{
	uint64_t h = name_hash(name);
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
	ok = len == KOS_DEK_LEN && kcv_matches(secret, kcv);
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

	if (cache_get(keys, name, name_hash(name), version, dek, version_out))
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
	cache_put(keys, name, v.version, version == 0, dek);
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
	rv = check_name(name);
	if (rv == KOS_OK)
		rv = dek_get(keys, name, version, dek, &got);
	if (rv != KOS_OK)
		OPENSSL_cleanse(dek, KOS_DEK_LEN);
	if (version_out != NULL)
		*version_out = got;
	return rv;
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

	c.act.created = now_of(keys);
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
		cache_put(keys, name, c.version, true, dek);
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
	rv = check_name(name);
	if (rv != KOS_OK)
		return rv;
	if ((unsigned)type >= KOS_ARRAY_SIZE(type_names))
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
	rv = check_name(name);
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
	now = now_of(keys);
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
	rv = check_name(name);
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

/* --- information ---------------------------------------------------------------- */

static void info_fill(kos_key_info *info, const struct kos_store_key *key,
		      const struct kos_store_version *v, size_t n)
{
	size_t i;

	memset(info, 0, sizeof(*info));
	snprintf(info->name, sizeof(info->name), "%s", key->name);
	info->type = key->type;
	info->created = key->created;
	for (i = 0; i < n; i++) {
		if (v[i].state != KOS_KEY_STATE_ACTIVE)
			continue;
		if (info->min_version == 0)
			info->min_version = v[i].version;
		info->current = v[i].version;
		info->rotated = v[i].created;
		info->versions++;
	}
}

kos_rv kos_key_get_info(kos_keys *keys, const char *name, kos_key_info *info)
{
	struct kos_store_version *v = NULL;
	struct kos_store_key key;
	size_t n = 0;
	kos_rv rv;

	if (keys == NULL || info == NULL)
		return kos_error_set(KOS_E_INVALID,
				     "kos_key_get_info: no key service or no output");
	rv = check_name(name);
	if (rv == KOS_OK)
		rv = kos_store_key_get(keys->st, name, &key);
	if (rv == KOS_OK)
		rv = kos_store_key_versions(keys->st, name, &v, &n);
	if (rv != KOS_OK)
		return rv;
	info_fill(info, &key, v, n);
	kos_store_versions_free(v, n);
	return KOS_OK;
}

kos_rv kos_key_list(kos_keys *keys, int (*fn)(const kos_key_info *info, void *arg), void *arg)
{
	struct kos_store_key *all = NULL;
	size_t n = 0, i;
	kos_rv rv;

	if (keys == NULL || fn == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_key_list: no key service or no callback");
	rv = kos_store_key_list(keys->st, &all, &n);
	for (i = 0; rv == KOS_OK && i < n; i++) {
		struct kos_store_version *v = NULL;
		size_t nv = 0;
		kos_key_info info;

		rv = kos_store_key_versions(keys->st, all[i].name, &v, &nv);
		if (rv == KOS_E_NOTFOUND) {
			rv = KOS_OK; /* removed since the list was read */
			continue;
		}
		if (rv != KOS_OK)
			break;
		info_fill(&info, &all[i], v, nv);
		kos_store_versions_free(v, nv);
		rv = fn(&info, arg);
	}
	free(all);
	return rv;
}

kos_rv kos_key_versions(kos_keys *keys, const char *name,
			int (*fn)(const kos_key_version_info *v, void *arg), void *arg)
{
	struct kos_store_version *v = NULL;
	size_t n = 0, i;
	kos_rv rv;

	if (keys == NULL || fn == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_key_versions: no key service or no "
						    "callback");
	rv = check_name(name);
	if (rv == KOS_OK)
		rv = kos_store_key_versions(keys->st, name, &v, &n);
	for (i = 0; rv == KOS_OK && i < n; i++) {
		kos_key_version_info info;
		unsigned s;

		/* an incomplete version is fsck's business, not a version */
		if (v[i].state == KOS_KEY_STATE_CREATING)
			continue;
		memset(&info, 0, sizeof(info));
		info.version = v[i].version;
		info.created = v[i].created;
		info.retired = v[i].state == KOS_KEY_STATE_RETIRED;
		if (v[i].has_kcv)
			memcpy(info.kcv, v[i].kcv, KOS_KCV_LEN);
		for (s = 0; s < v[i].n_sets && s < KOS_ARRAY_SIZE(info.sets); s++) {
			snprintf(info.sets[s].name, sizeof(info.sets[s].name), "%s",
				 v[i].sets[s].name);
			info.sets[s].n = v[i].sets[s].n;
			info.sets[s].k = v[i].sets[s].k;
		}
		info.n_sets = s;
		snprintf(info.token, sizeof(info.token), "%s", v[i].token);
		snprintf(info.label, sizeof(info.label), "%s", v[i].label);
		rv = fn(&info, arg);
	}
	kos_store_versions_free(v, n);
	return rv;
}

/* An active version of DEK name (0: current) with its shares. */
static kos_rv dek_version(kos_keys *keys, const char *name, uint32_t version,
			  struct kos_store_version *v)
{
	struct kos_store_key key;
	kos_rv rv;

	memset(v, 0, sizeof(*v));
	rv = check_name(name);
	if (rv == KOS_OK)
		rv = kos_store_key_get(keys->st, name, &key);
	if (rv != KOS_OK)
		return rv;
	if (key.type != KOS_KEY_DEK)
		return kos_error_set(KOS_E_INVALID, "key %s is a %s signing key, not a data key",
				     name, kos_key_type_name(key.type));
	rv = kos_store_key_version_get(keys->st, name, version, v);
	if (rv == KOS_OK && v->state == KOS_KEY_STATE_CREATING) {
		kos_store_version_clear(v);
		rv = kos_error_set(KOS_E_NOTFOUND, "key %s has no version %" PRIu32, name, version);
	}
	return rv;
}

kos_rv kos_key_shares(kos_keys *keys, const char *name, uint32_t version,
		      int (*fn)(const kos_key_share_info *share, void *arg), void *arg)
{
	struct kos_store_version v;
	size_t i;
	kos_rv rv;

	if (keys == NULL || fn == NULL)
		return kos_error_set(KOS_E_INVALID,
				     "kos_key_shares: no key service or no callback");
	rv = dek_version(keys, name, version, &v);
	for (i = 0; rv == KOS_OK && i < v.n_shares; i++) {
		kos_key_share_info info;

		memset(&info, 0, sizeof(info));
		info.version = v.version;
		snprintf(info.set, sizeof(info.set), "%s", v.shares[i].set);
		info.x = v.shares[i].x;
		snprintf(info.token, sizeof(info.token), "%s", v.shares[i].token);
		snprintf(info.label, sizeof(info.label), "%s", v.shares[i].label);
		rv = fn(&info, arg);
	}
	kos_store_version_clear(&v);
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
	rv = check_name(name);
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

/* AES-256-GCM fetched once, and one cipher context per thread: the cached
 * decryption path allocates nothing but the plaintext. */
static EVP_CIPHER *gcm_cipher;
static pthread_key_t gcm_ctx_key;
static bool gcm_ctx_key_ok;
static pthread_once_t gcm_once = PTHREAD_ONCE_INIT;

static void gcm_ctx_free(void *p)
{
	EVP_CIPHER_CTX_free(p);
}

static void gcm_init(void)
{
	gcm_cipher = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
	gcm_ctx_key_ok = pthread_key_create(&gcm_ctx_key, gcm_ctx_free) == 0;
}

static EVP_CIPHER_CTX *gcm_ctx(void)
{
	EVP_CIPHER_CTX *ctx;

	pthread_once(&gcm_once, gcm_init);
	if (gcm_cipher == NULL || !gcm_ctx_key_ok)
		return NULL;
	ctx = pthread_getspecific(gcm_ctx_key);
	if (ctx == NULL) {
		/* The cipher is set once: EVP_DecryptInit_ex() with a cipher
		 * frees and allocates the provider's context every time; with
		 * NULL it only sets the key and the nonce. */
		ctx = EVP_CIPHER_CTX_new();
		if (ctx != NULL && (EVP_DecryptInit_ex(ctx, gcm_cipher, NULL, NULL, NULL) != 1 ||
				    pthread_setspecific(gcm_ctx_key, ctx) != 0)) {
			EVP_CIPHER_CTX_free(ctx);
			ctx = NULL;
		}
	}
	return ctx;
}

/* kos_envelope_open() with this thread's cipher context: the same format
 * (kos-envelope(5)): the header, then the context, as additional data. */
static kos_rv envelope_open(const uint8_t key[KOS_DEK_LEN], const uint8_t *env, size_t env_len,
			    const kos_envelope_info *info, const char *context, size_t ctx_len,
			    uint8_t **pt, size_t *len)
{
	EVP_CIPHER_CTX *ctx = gcm_ctx();
	size_t n = info->plaintext_len;
	size_t hdr_len = env_len - n - KOS_ENVELOPE_TAG_LEN;
	static const uint8_t scrub_key[KOS_DEK_LEN];
	uint8_t tag[KOS_ENVELOPE_TAG_LEN];
	uint8_t *out;
	int got;
	bool ok;

	if (ctx == NULL)
		return kos_error_set(KOS_E_CRYPTO, "AES-256-GCM is not available");
	out = malloc(n + 1);
	if (out == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	memcpy(tag, env + env_len - KOS_ENVELOPE_TAG_LEN, sizeof(tag));
	if (EVP_DecryptInit_ex(ctx, NULL, NULL, key, env + hdr_len - KOS_ENVELOPE_NONCE_LEN) != 1 ||
	    EVP_DecryptUpdate(ctx, NULL, &got, env, (int)hdr_len) != 1 ||
	    (ctx_len > 0 &&
	     EVP_DecryptUpdate(ctx, NULL, &got, (const uint8_t *)context, (int)ctx_len) != 1) ||
	    (n > 0 && EVP_DecryptUpdate(ctx, out, &got, env + hdr_len, (int)n) != 1) ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, KOS_ENVELOPE_TAG_LEN, tag) != 1) {
		(void)EVP_DecryptInit_ex(ctx, NULL, NULL, scrub_key, NULL);
		kos_secret_free(out, n + 1);
		return kos_error_set(KOS_E_CRYPTO, "AES-256-GCM decryption failed");
	}
	ok = EVP_DecryptFinal_ex(ctx, out + n, &got) == 1;
	/* the context outlives the call: leave no key schedule of the DEK in it */
	(void)EVP_DecryptInit_ex(ctx, NULL, NULL, scrub_key, NULL);
	if (!ok) {
		kos_secret_free(out, n + 1);
		return kos_error_set(KOS_E_INTEGRITY,
				     "envelope for %s version %" PRIu32 " failed authentication "
				     "(wrong key or context, or tampered)",
				     info->key_name, info->key_version);
	}
	*pt = out;
	*len = n;
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
	rv = kos_envelope_parse(env, env_len, &info);
	if (rv != KOS_OK)
		return rv;
	ctx_len = context != NULL ? strnlen(context, KOS_ENVELOPE_CONTEXT_MAX + 1) : 0;
	if (ctx_len > KOS_ENVELOPE_CONTEXT_MAX)
		return kos_error_set(KOS_E_INVALID, "context longer than %d bytes",
				     KOS_ENVELOPE_CONTEXT_MAX);
	/* a name the envelope format allows but kos never gives a key */
	if (!kos_key_name_valid(info.key_name))
		return kos_error_set(KOS_E_NOTFOUND, "the envelope names no kos key");
	rv = dek_get(keys, info.key_name, info.key_version, dek, &version);
	if (rv == KOS_OK)
		rv = envelope_open(dek, env, env_len, &info, context, ctx_len, pt, len);
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
	rv = dek_version(keys, name, version, &v);
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
	if (!parse_share_label(share_id, &id))
		return kos_error_set(KOS_E_NOTFOUND, "not a kos share id");
	rv = dek_version(keys, id.name, id.version, &v);
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
	if (!parse_share_label(share_id, &id))
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

/* --- signing keys ------------------------------------------------------------------ */

/* The current version of signing key name, its token and label: from the
 * short-lived cache, else the store. */
static kos_rv sign_meta_get(kos_keys *keys, const char *name, struct sign_meta *out)
{
	uint64_t h = name_hash(name);
	struct kos_store_version v;
	struct kos_store_key key;
	kos_usec now;
	size_t i, slot = 0;
	bool hit = false;
	kos_rv rv;

	pthread_mutex_lock(&keys->lock);
	now = keys->clock(keys->clock_arg);
	for (i = 0; i < SIGN_META_ENTRIES && !hit; i++) {
		if (keys->meta[i].hash == h && keys->meta[i].expires > now &&
		    strcmp(keys->meta[i].name, name) == 0) {
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
	rv = kos_store_key_version_get(keys->st, name, 0, &v);
	if (rv != KOS_OK)
		return rv;
	memset(out, 0, sizeof(*out));
	out->hash = h;
	snprintf(out->name, sizeof(out->name), "%s", name);
	out->type = key.type;
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
		    (keys->meta[i].hash == h && strcmp(keys->meta[i].name, name) == 0)) {
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

kos_rv kos_key_sign(kos_keys *keys, const char *name, kos_sig_alg alg, const uint8_t *data,
		    size_t len, uint8_t **sig, size_t *sig_len, uint32_t *version_out)
{
	struct sign_meta m;
	kos_rv rv;

	if (sig == NULL || sig_len == NULL)
		return kos_error_set(KOS_E_INVALID, "no output for the signature");
	*sig = NULL;
	*sig_len = 0;
	if (keys == NULL || (data == NULL && len > 0))
		return kos_error_set(KOS_E_INVALID, "no key service or no data");
	if ((unsigned)alg >= KOS_ARRAY_SIZE(alg_names))
		return kos_error_set(KOS_E_INVALID, "unknown signature algorithm %d", (int)alg);
	rv = check_name(name);
	if (rv == KOS_OK)
		rv = sign_meta_get(keys, name, &m);
	if (rv != KOS_OK)
		return rv;
	rv = kos_signer_sign(keys->hsm, m.tok, m.type, m.label, alg, data, len, sig, sig_len);
	if (rv == KOS_OK && version_out != NULL)
		*version_out = m.version;
	return rv;
}

kos_rv kos_key_pubkey_pem(kos_keys *keys, const char *name, uint32_t version, char **pem)
{
	struct kos_store_version v;
	struct kos_store_key key;
	kos_rv rv;

	if (pem == NULL)
		return kos_error_set(KOS_E_INVALID, "no output for the public key");
	*pem = NULL;
	if (keys == NULL)
		return kos_error_set(KOS_E_INVALID, "no key service");
	rv = check_name(name);
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
	kos_store_version_clear(&v);
	return rv;
}

/* --- fsck ---------------------------------------------------------------------------- */

/* What the store says may be on tokens: every object of an active version,
 * and the versions still being made by a live process (left alone). */
struct owned {
	char token[KOS_TOKEN_NAME_MAX + 1];
	char label[KOS_STORE_LABEL_MAX + 1];
};

struct busy {
	char name[KOS_KEY_NAME_MAX + 1];
	uint32_t version;
};

struct fsck {
	kos_keys *keys;
	int repair;
	void (*fn)(const char *line, void *arg);
	void *arg;
	unsigned found;
	unsigned unrepaired;
	struct owned *owned;
	size_t n_owned, cap_owned;
	struct busy *busy;
	size_t n_busy, cap_busy;
	size_t tok; /* the token being walked */
	kos_rv first_error;
	char first_detail[512];
};

static void say(struct fsck *f, const char *fmt, ...) KOS_PRINTF(2, 3);

static void say(struct fsck *f, const char *fmt, ...)
{
	char line[640];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (f->fn != NULL)
		f->fn(line, f->arg);
}

static void repair_failed(struct fsck *f, kos_rv rv)
{
	f->unrepaired++;
	if (f->first_error == KOS_OK) {
		f->first_error = rv;
		snprintf(f->first_detail, sizeof(f->first_detail), "%s", kos_last_error());
	}
	say(f, "  not repaired: %s", kos_last_error());
}

static kos_rv own(struct fsck *f, const char *token, const char *label)
{
	if (f->n_owned == f->cap_owned) {
		size_t ncap = f->cap_owned ? f->cap_owned * 2 : 64;
		struct owned *no = realloc(f->owned, ncap * sizeof(*no));

		if (no == NULL)
			return kos_error_set(KOS_E_NOMEM, "out of memory");
		f->owned = no;
		f->cap_owned = ncap;
	}
	snprintf(f->owned[f->n_owned].token, sizeof(f->owned[0].token), "%s", token);
	snprintf(f->owned[f->n_owned].label, sizeof(f->owned[0].label), "%s", label);
	f->n_owned++;
	return KOS_OK;
}

static bool is_owned(const struct fsck *f, const char *token, const char *label)
{
	size_t i;

	for (i = 0; i < f->n_owned; i++)
		if (strcmp(f->owned[i].label, label) == 0 && strcmp(f->owned[i].token, token) == 0)
			return true;
	return false;
}

static bool is_busy(const struct fsck *f, const char *name, uint32_t version)
{
	size_t i;

	for (i = 0; i < f->n_busy; i++)
		if (f->busy[i].version == version && strcmp(f->busy[i].name, name) == 0)
			return true;
	return false;
}

/* A creating version is stale (its maker crashed) when the process that
 * wrote it, on this host, is gone, or when it is older than CREATE_STALE. */
static bool creation_stale(kos_keys *keys, const struct kos_store_version *v, kos_usec now)
{
	const char *colon = strrchr(v->creator, ':');
	size_t host_len;
	char *end;
	long pid;

	if (now - v->created >= CREATE_STALE)
		return true;
	if (colon == NULL)
		return false;
	host_len = (size_t)(colon - v->creator);
	if (strncmp(v->creator, keys->creator, host_len) != 0 || keys->creator[host_len] != ':')
		return false; /* another host: only age tells */
	pid = strtol(colon + 1, &end, 10);
	if (*end != '\0' || pid <= 0)
		return false;
	if (pid == (long)getpid())
		return false; /* another thread of this process may be making it */
	return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

static void format_time(kos_usec t, char *buf, size_t len)
{
	time_t s = (time_t)(t / KOS_USEC_PER_SEC);
	struct tm tm;

	if (gmtime_r(&s, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "@%lld", (long long)s);
}

/* Walks the store: owned objects, busy and stale versions (reported, and
 * with repair removed once their objects are gone: see fsck_rows). */
static kos_rv fsck_store(struct fsck *f, struct busy **stale, size_t *n_stale)
{
	struct kos_store_key *all = NULL;
	kos_usec now = now_of(f->keys);
	size_t n = 0, i, j, s;
	kos_rv rv;

	*stale = NULL;
	*n_stale = 0;
	rv = kos_store_key_list(f->keys->st, &all, &n);
	for (i = 0; rv == KOS_OK && i < n; i++) {
		struct kos_store_version *v = NULL;
		size_t nv = 0;

		rv = kos_store_key_versions(f->keys->st, all[i].name, &v, &nv);
		if (rv == KOS_E_NOTFOUND) {
			rv = KOS_OK;
			continue;
		}
		for (j = 0; rv == KOS_OK && j < nv; j++) {
			if (v[j].state == KOS_KEY_STATE_ACTIVE) {
				if (v[j].label[0] != '\0')
					rv = own(f, v[j].token, v[j].label);
				for (s = 0; rv == KOS_OK && s < v[j].n_shares; s++)
					rv = own(f, v[j].shares[s].token, v[j].shares[s].label);
			} else if (v[j].state == KOS_KEY_STATE_CREATING) {
				char when[40];

				format_time(v[j].created, when, sizeof(when));
				if (!creation_stale(f->keys, &v[j], now)) {
					struct busy *nb;

					say(f,
					    "key %s version %" PRIu32 ": being created by %s "
					    "since %s; left alone",
					    all[i].name, v[j].version, v[j].creator, when);
					nb = realloc(f->busy, (f->n_busy + 1) * sizeof(*nb));
					if (nb == NULL) {
						rv = kos_error_set(KOS_E_NOMEM, "out of memory");
						break;
					}
					f->busy = nb;
					snprintf(nb[f->n_busy].name, sizeof(nb[0].name), "%s",
						 all[i].name);
					nb[f->n_busy].version = v[j].version;
					f->n_busy++;
					continue;
				}
				f->found++;
				say(f,
				    "key %s version %" PRIu32 ": incomplete (creation by %s "
				    "since %s never finished)",
				    all[i].name, v[j].version, v[j].creator, when);
				{
					struct busy *ns =
					    realloc(*stale, (*n_stale + 1) * sizeof(*ns));

					if (ns == NULL) {
						rv = kos_error_set(KOS_E_NOMEM, "out of memory");
						break;
					}
					*stale = ns;
					snprintf(ns[*n_stale].name, sizeof(ns[0].name), "%s",
						 all[i].name);
					ns[*n_stale].version = v[j].version;
					(*n_stale)++;
				}
			}
		}
		kos_store_versions_free(v, nv);
	}
	free(all);
	return rv;
}

/* An object's label names a version; one of a busy version is left alone. */
static bool label_busy(const struct fsck *f, const char *label)
{
	struct share_id id;
	char name[KOS_KEY_NAME_MAX + 1];
	uint32_t version;

	if (parse_share_label(label, &id))
		return is_busy(f, id.name, id.version);
	if (parse_sign_label(label, name, &version))
		return is_busy(f, name, version);
	return false;
}

/* An object that looked unowned is checked against the store again before
 * it is reported: another process may have begun (or completed) its
 * version since the store was walked; rows are written before objects. */
static bool still_orphan(struct fsck *f, const char *token, const char *label)
{
	struct kos_store_version v;
	struct share_id id;
	char name[KOS_KEY_NAME_MAX + 1];
	uint32_t version;
	bool orphan = true;
	size_t i;

	if (parse_share_label(label, &id)) {
		snprintf(name, sizeof(name), "%s", id.name);
		version = id.version;
	} else if (!parse_sign_label(label, name, &version)) {
		return true; /* not a label kos writes for a version */
	}
	if (kos_store_key_version_get(f->keys->st, name, version, &v) != KOS_OK)
		return true;
	if (v.state == KOS_KEY_STATE_CREATING) {
		orphan = creation_stale(f->keys, &v, now_of(f->keys));
	} else if (v.state == KOS_KEY_STATE_ACTIVE) {
		if (strcmp(v.token, token) == 0 && strcmp(v.label, label) == 0)
			orphan = false;
		for (i = 0; i < v.n_shares; i++)
			if (strcmp(v.shares[i].token, token) == 0 &&
			    strcmp(v.shares[i].label, label) == 0)
				orphan = false;
	}
	kos_store_version_clear(&v);
	return orphan;
}

static kos_rv fsck_share_object(const char *label, void *arg)
{
	struct fsck *f = arg;
	const char *token = kos_hsm_token_get0_name(f->keys->hsm, f->tok);
	kos_rv rv;

	if (is_owned(f, token, label) || label_busy(f, label) || !still_orphan(f, token, label))
		return KOS_OK;
	f->found++;
	say(f, "token %s: share object '%s' belongs to no active version", token, label);
	if (!f->repair)
		return KOS_OK;
	rv = kos_hsm_data_destroy(f->keys->hsm, f->tok, label);
	if (rv == KOS_OK || rv == KOS_E_NOTFOUND)
		say(f, "  repaired: destroyed");
	else
		repair_failed(f, rv);
	return KOS_OK;
}

static kos_rv fsck_key_pair(const char *label, void *arg)
{
	struct fsck *f = arg;
	const char *token = kos_hsm_token_get0_name(f->keys->hsm, f->tok);
	kos_rv rv;

	if (is_owned(f, token, label) || label_busy(f, label) || !still_orphan(f, token, label))
		return KOS_OK;
	f->found++;
	say(f, "token %s: key pair '%s' belongs to no active version", token, label);
	if (!f->repair)
		return KOS_OK;
	rv = kos_signer_destroy(f->keys->hsm, f->tok, label);
	if (rv == KOS_OK || rv == KOS_E_NOTFOUND)
		say(f, "  repaired: destroyed");
	else
		repair_failed(f, rv);
	return KOS_OK;
}

kos_rv kos_keys_fsck(kos_keys *keys, int repair, void (*fn)(const char *line, void *arg), void *arg,
		     unsigned *found)
{
	struct busy *stale = NULL;
	char unchecked[256] = "";
	struct fsck f;
	size_t n_stale = 0, i, count;
	kos_rv rv;

	if (found != NULL)
		*found = 0;
	if (keys == NULL)
		return kos_error_set(KOS_E_INVALID, "no key service");
	memset(&f, 0, sizeof(f));
	f.keys = keys;
	f.repair = repair;
	f.fn = fn;
	f.arg = arg;
	rv = fsck_store(&f, &stale, &n_stale);
	if (rv != KOS_OK)
		goto out;
	/* Objects no active version owns: shares on any token (only kos
	 * writes "kos-share:" objects), key pairs on signer tokens. */
	count = kos_hsm_token_count(keys->hsm);
	for (i = 0; i < count; i++) {
		f.tok = i;
		rv = kos_hsm_data_list(keys->hsm, i, SHARE_PREFIX, fsck_share_object, &f);
		if (rv == KOS_OK && kos_hsm_token_role(keys->hsm, i) == KOS_TOKEN_ROLE_SIGNER)
			rv = kos_signer_list(keys->hsm, i, SIGN_PREFIX, fsck_key_pair, &f);
		if (rv == KOS_E_NOMEM)
			goto out;
		if (rv != KOS_OK) {
			size_t used = strlen(unchecked);

			say(&f, "warning: token %s not checked: %s",
			    kos_hsm_token_get0_name(keys->hsm, i), kos_last_error());
			snprintf(unchecked + used, sizeof(unchecked) - used, "%s%s",
				 used ? ", " : "", kos_hsm_token_get0_name(keys->hsm, i));
		}
	}
	/* the rows last: an object whose row is gone is still an orphan */
	for (i = 0; repair && i < n_stale; i++) {
		rv = kos_store_key_version_abort(keys->st, stale[i].name, stale[i].version);
		if (rv == KOS_OK || rv == KOS_E_NOTFOUND)
			say(&f, "key %s version %" PRIu32 ": repaired: incomplete version removed",
			    stale[i].name, stale[i].version);
		else
			repair_failed(&f, rv);
	}
	rv = KOS_OK;
	if (f.first_error != KOS_OK)
		rv = kos_error_set(f.first_error, "fsck: %u of %u findings not repaired; first: %s",
				   f.unrepaired, f.found, f.first_detail);
	else if (unchecked[0] != '\0')
		rv = kos_error_set(KOS_E_IO, "fsck: incomplete: token%s %s could not be checked",
				   strchr(unchecked, ',') != NULL ? "s" : "", unchecked);
out:
	free(stale);
	free(f.owned);
	free(f.busy);
	if (found != NULL)
		*found = f.found;
	return rv;
}
