/* The service orchestrator: services with a random seed that exists in plain
 * form only inside an HSM token (kos/seedwrap.c) and, for the length of one
 * call, in this process; per-window HKDF keys; HMAC-authenticated service
 * tokens. kos-service(7) is the reference for every format here.
 *
 * Seeds are not cached: each derivation decrypts in the token and wipes the
 * seed before returning. A cache would be safe to add, keyed by seed
 * version, since rotation bumps the version. */
#include "config.h"

#include "kos/internal.h"
#include "common/jws.h"
#include "kos/seedwrap.h"
#include "kos/store_backend.h"

#include <inttypes.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_PREFIX	  "kos-svc-v1."
#define TOKEN_MAC_LEN	  32
#define TOKEN_MAC_B64	  43  /* base64url of 32 bytes, unpadded */
#define TOKEN_PAYLOAD_MAX 512 /* decoded JSON bytes */
#define INFO_MAX	  256 /* an HKDF info string: ~190 bytes at most */

struct kos_services {
	kos_store *st;
	kos_seedwrap *wrap;
	kos_clock_fn clock;
	void *clock_arg;
};

/* --- names ------------------------------------------------------------------- */

static bool name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

int kos_service_name_valid(const char *name)
{
	size_t i;

	if (name == NULL || name[0] == '\0' || name[0] == '.' || name[0] == '-')
		return 0;
	for (i = 0; name[i] != '\0'; i++)
		if (i >= KOS_SERVICE_NAME_MAX || !name_char(name[i]))
			return 0;
	return 1;
}

/* One operation of n bytes at op (not NUL-terminated). */
static bool op_valid_n(const char *op, size_t n)
{
	size_t i;

	if (n == 0 || n > KOS_SERVICE_OP_MAX)
		return false;
	for (i = 0; i < n; i++)
		if (!name_char(op[i]) && op[i] != ':')
			return false;
	return true;
}

int kos_service_op_valid(const char *op)
{
	return op != NULL && op_valid_n(op, strnlen(op, KOS_SERVICE_OP_MAX + 1));
}

int kos_service_ops_valid(const char *ops)
{
	const char *items[KOS_SERVICE_OPS_COUNT];
	size_t lens[KOS_SERVICE_OPS_COUNT];
	size_t n = 0, j, len;
	const char *p, *end;

	if (ops == NULL)
		return 0;
	len = strnlen(ops, KOS_SERVICE_OPS_MAX + 1);
	if (len == 0 || len > KOS_SERVICE_OPS_MAX)
		return 0;
	for (p = ops;; p = end + 1) {
		end = strchr(p, ',');
		if (end == NULL)
			end = p + strlen(p);
		if (n == KOS_SERVICE_OPS_COUNT || !op_valid_n(p, (size_t)(end - p)))
			return 0;
		items[n] = p;
		lens[n] = (size_t)(end - p);
		for (j = 0; j < n; j++)
			if (lens[j] == lens[n] && memcmp(items[j], p, lens[n]) == 0)
				return 0;
		n++;
		if (*end == '\0')
			break;
	}
	return 1;
}

/* op is one of the items of the (valid) list ops. */
static bool ops_contain(const char *ops, const char *op)
{
	size_t n = strlen(op);
	const char *p = ops, *end;

	for (;;) {
		end = strchr(p, ',');
		if (end == NULL)
			end = p + strlen(p);
		if ((size_t)(end - p) == n && memcmp(p, op, n) == 0)
			return true;
		if (*end == '\0')
			return false;
		p = end + 1;
	}
}

/* --- time -------------------------------------------------------------------- */

static kos_usec default_clock(void *arg)
{
	(void)arg;
	return kos_now();
}

static kos_usec now_of(const kos_services *svc)
{
	return svc->clock(svc->clock_arg);
}

static kos_rv check_window_len(kos_usec window_len)
{
	if (window_len < KOS_SERVICE_WINDOW_MIN || window_len > KOS_SERVICE_WINDOW_MAX ||
	    window_len % KOS_USEC_PER_SEC != 0)
		return kos_error_set(KOS_E_RANGE, "a window is 1 to %" PRId64 " whole seconds",
				     (int64_t)(KOS_SERVICE_WINDOW_MAX / KOS_USEC_PER_SEC));
	return KOS_OK;
}

kos_rv kos_service_window(kos_usec t, kos_usec window_len, uint64_t *window)
{
	kos_rv rv = check_window_len(window_len);

	if (rv != KOS_OK)
		return rv;
	if (window == NULL || t < 0)
		return kos_error_set(KOS_E_INVALID, "kos_service_window: a time since 1970 and "
						    "an output are needed");
	*window = (uint64_t)(t / KOS_USEC_PER_SEC) / (uint64_t)(window_len / KOS_USEC_PER_SEC);
	return KOS_OK;
}

/* --- derivation ---------------------------------------------------------------- */

/* One key: HKDF-SHA256, empty salt, ikm = seed, info =
 * "kos-service-v1|LABEL|NAME|OP|WINDOW-SECONDS|WINDOW" (decimal numbers).
 * '|' cannot occur in names or operations, so the string is unambiguous. */
static kos_rv derive_one(const uint8_t *seed, const char *label, const char *name, const char *op,
			 uint64_t window, kos_usec window_len, uint8_t out[KOS_SERVICE_KEY_LEN])
{
	char info[INFO_MAX];
	int n;

	n = snprintf(info, sizeof(info), "kos-service-v1|%s|%s|%s|%" PRId64 "|%" PRIu64, label,
		     name, op, (int64_t)(window_len / KOS_USEC_PER_SEC), window);
	if (n < 0 || (size_t)n >= sizeof(info))
		return kos_error_set(KOS_E_INTERNAL, "HKDF info does not fit");
	return kos_hkdf_sha256(NULL, 0, seed, KOS_SERVICE_SEED_LEN, (const uint8_t *)info,
			       (size_t)n, out, KOS_SERVICE_KEY_LEN);
}

void kos_service_keys_clear(kos_service_keys *keys)
{
	if (keys != NULL)
		OPENSSL_cleanse(keys, sizeof(*keys));
}

kos_rv kos_service_derive_from_seed(const uint8_t seed[KOS_SERVICE_SEED_LEN], const char *name,
				    const char *op, uint64_t window, kos_usec window_len,
				    kos_service_keys *keys)
{
	kos_rv rv;

	if (keys == NULL || seed == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_service_derive: no seed or no output");
	memset(keys, 0, sizeof(*keys));
	if (window_len == 0)
		window_len = KOS_SERVICE_WINDOW_DEFAULT;
	if (!kos_service_name_valid(name))
		return kos_error_set(KOS_E_INVALID, "invalid service name");
	if (!kos_service_op_valid(op))
		return kos_error_set(KOS_E_INVALID, "invalid operation name");
	rv = check_window_len(window_len);
	if (rv != KOS_OK)
		return rv;
	rv = derive_one(seed, "auth", name, op, window, window_len, keys->auth);
	if (rv == KOS_OK)
		rv = derive_one(seed, "authz", name, op, window, window_len, keys->authz);
	if (rv == KOS_OK)
		rv = derive_one(seed, "enc", name, op, window, window_len, keys->enc);
	if (rv != KOS_OK) {
		kos_service_keys_clear(keys);
		return rv;
	}
	keys->window = window;
	keys->window_len = window_len;
	return KOS_OK;
}

/* --- the handle ------------------------------------------------------------------ */

kos_rv kos_services_new(kos_store *st, kos_hsm *hsm, kos_services **out)
{
	kos_services *svc;
	kos_rv rv;

	if (out == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_services_new: no output handle");
	*out = NULL;
	if (st == NULL || hsm == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_services_new: needs a store and the "
						    "backend tokens");
	svc = calloc(1, sizeof(*svc));
	if (svc == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	rv = kos_seedwrap_new(hsm, &svc->wrap);
	if (rv != KOS_OK) {
		free(svc);
		return rv;
	}
	svc->st = st;
	svc->clock = default_clock;
	*out = svc;
	return KOS_OK;
}

void kos_services_free(kos_services *svc)
{
	if (svc == NULL)
		return;
	kos_seedwrap_free(svc->wrap);
	free(svc);
}

void kos_services_set_clock(kos_services *svc, kos_clock_fn fn, void *arg)
{
	if (svc == NULL)
		return;
	svc->clock = fn != NULL ? fn : default_clock;
	svc->clock_arg = fn != NULL ? arg : NULL;
}

/* --- registry ---------------------------------------------------------------------- */

static kos_rv get_row(kos_services *svc, const char *name, struct kos_service_row *row)
{
	kos_rv rv;

	if (!kos_service_name_valid(name))
		return kos_error_set(KOS_E_INVALID,
				     "invalid service name (1 to %d of A-Z a-z 0-9 "
				     ". _ -, not starting with . or -)",
				     KOS_SERVICE_NAME_MAX);
	memset(row, 0, sizeof(*row));
	rv = kos_store_service_get(svc->st, name, row);
	if (rv == KOS_E_NOTFOUND)
		return kos_error_set(rv, "no service '%s'", name);
	if (rv != KOS_OK)
		return rv;
	/* the store is outside the token: check what the code below relies on */
	if (row->name[sizeof(row->name) - 1] != '\0' || row->ops[sizeof(row->ops) - 1] != '\0' ||
	    !kos_service_ops_valid(row->ops) || row->seed_version == 0 ||
	    row->wrapped_len > sizeof(row->wrapped_seed))
		return kos_error_set(KOS_E_INTEGRITY, "service %s: the stored row is damaged",
				     name);
	return KOS_OK;
}

static void info_of(const struct kos_service_row *row, kos_service_info *info)
{
	memset(info, 0, sizeof(*info));
	snprintf(info->name, sizeof(info->name), "%s", row->name);
	snprintf(info->ops, sizeof(info->ops), "%s", row->ops);
	info->seed_version = row->seed_version;
	info->created = row->created;
	info->rotated = row->rotated;
}

/* Writes row with a fresh seed of version row->seed_version. */
static kos_rv put_with_new_seed(kos_services *svc, struct kos_service_row *row)
{
	uint8_t seed[KOS_SERVICE_SEED_LEN];
	kos_rv rv;

	if (RAND_priv_bytes(seed, sizeof(seed)) != 1)
		return kos_error_set(KOS_E_CRYPTO, "no random bytes from OpenSSL");
	rv = kos_seedwrap_seal(svc->wrap, row->name, row->seed_version, seed, row->wrapped_seed);
	row->wrapped_len = KOS_SEEDWRAP_LEN;
	OPENSSL_cleanse(seed, sizeof(seed));
	if (rv == KOS_OK)
		rv = kos_store_service_put(svc->st, row);
	return rv;
}

kos_rv kos_service_register(kos_services *svc, const char *name, const char *ops)
{
	struct kos_service_row row;
	kos_rv rv;

	if (svc == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_service_register: no handle");
	rv = get_row(svc, name, &row);
	if (rv == KOS_OK)
		return kos_error_set(KOS_E_EXISTS, "service '%s' already exists", name);
	if (rv != KOS_E_NOTFOUND)
		return rv;
	if (!kos_service_ops_valid(ops))
		return kos_error_set(KOS_E_INVALID,
				     "invalid operation list (1 to %d distinct "
				     "names of A-Z a-z 0-9 . _ : -, comma-separated)",
				     KOS_SERVICE_OPS_COUNT);
	memset(&row, 0, sizeof(row));
	snprintf(row.name, sizeof(row.name), "%s", name);
	snprintf(row.ops, sizeof(row.ops), "%s", ops);
	row.seed_version = 1;
	row.created = row.rotated = now_of(svc);
	return put_with_new_seed(svc, &row);
}

kos_rv kos_service_set_ops(kos_services *svc, const char *name, const char *ops)
{
	struct kos_service_row row;
	kos_rv rv;

	if (svc == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_service_set_ops: no handle");
	if (!kos_service_ops_valid(ops))
		return kos_error_set(KOS_E_INVALID, "invalid operation list");
	rv = get_row(svc, name, &row);
	if (rv != KOS_OK)
		return rv;
	snprintf(row.ops, sizeof(row.ops), "%s", ops);
	return kos_store_service_put(svc->st, &row);
}

kos_rv kos_service_remove(kos_services *svc, const char *name)
{
	kos_rv rv;

	if (svc == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_service_remove: no handle");
	if (!kos_service_name_valid(name))
		return kos_error_set(KOS_E_INVALID, "invalid service name");
	rv = kos_store_service_delete(svc->st, name);
	if (rv == KOS_E_NOTFOUND)
		return kos_error_set(rv, "no service '%s'", name);
	return rv;
}

kos_rv kos_service_get_info(kos_services *svc, const char *name, kos_service_info *info)
{
	struct kos_service_row row;
	kos_rv rv;

	if (svc == NULL || info == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_service_get_info: bad arguments");
	rv = get_row(svc, name, &row);
	if (rv == KOS_OK)
		info_of(&row, info);
	return rv;
}

struct collect {
	kos_service_info *v;
	size_t n, cap;
	bool oom;
};

static int collect_row(const struct kos_service_row *row, void *arg)
{
	struct collect *c = arg;

	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		kos_service_info *v = realloc(c->v, cap * sizeof(*v));

		if (v == NULL) {
			c->oom = true;
			return 1;
		}
		c->v = v;
		c->cap = cap;
	}
	info_of(row, &c->v[c->n++]);
	return 0;
}

/* Every service, read first so callers' functions run outside the store. */
static kos_rv collect_all(kos_services *svc, struct collect *c)
{
	kos_rv rv;

	memset(c, 0, sizeof(*c));
	rv = kos_store_service_list(svc->st, collect_row, c);
	if (c->oom)
		rv = kos_error_set(KOS_E_NOMEM, "out of memory");
	if (rv != KOS_OK) {
		free(c->v);
		c->v = NULL;
		c->n = 0;
	}
	return rv;
}

kos_rv kos_service_list(kos_services *svc, int (*fn)(const kos_service_info *info, void *arg),
			void *arg)
{
	struct collect c;
	kos_rv rv;
	size_t i;
	int r = 0;

	if (svc == NULL || fn == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_service_list: bad arguments");
	rv = collect_all(svc, &c);
	if (rv != KOS_OK)
		return rv;
	for (i = 0; i < c.n && r == 0; i++)
		r = fn(&c.v[i], arg);
	free(c.v);
	return r;
}

kos_rv kos_service_rotate(kos_services *svc, const char *name, unsigned flags,
			  uint32_t *new_version)
{
	struct kos_service_row row;
	kos_rv rv;

	if (svc == NULL || (flags & ~KOS_SERVICE_ROTATE_BREACH) != 0)
		return kos_error_set(KOS_E_INVALID, "kos_service_rotate: bad arguments");
	rv = get_row(svc, name, &row);
	if (rv != KOS_OK)
		return rv;
	if (row.seed_version == UINT32_MAX)
		return kos_error_set(KOS_E_RANGE, "service %s: no seed version left", name);
	/* The old wrapped seed is never read: the row's bytes are overwritten
	 * by the new ones in the one store write below, which is what ends
	 * every token and key of the old version. */
	OPENSSL_cleanse(row.wrapped_seed, sizeof(row.wrapped_seed));
	row.wrapped_len = 0;
	row.seed_version++;
	row.rotated = now_of(svc);
	rv = put_with_new_seed(svc, &row);
	if (rv == KOS_OK && new_version != NULL)
		*new_version = row.seed_version;
	return rv;
}

kos_rv kos_services_rotate_due(kos_services *svc, kos_usec interval,
			       void (*fn)(const char *name, uint32_t version, void *arg), void *arg)
{
	struct collect c;
	kos_usec now;
	uint32_t v;
	kos_rv rv;
	size_t i;

	if (svc == NULL || interval < 0)
		return kos_error_set(KOS_E_INVALID, "kos_services_rotate_due: bad arguments");
	if (interval == 0)
		interval = KOS_SERVICE_ROTATION_DEFAULT;
	rv = collect_all(svc, &c);
	if (rv != KOS_OK)
		return rv;
	now = now_of(svc);
	for (i = 0; i < c.n && rv == KOS_OK; i++) {
		if (now - c.v[i].rotated < interval)
			continue;
		rv = kos_service_rotate(svc, c.v[i].name, 0, &v);
		if (rv == KOS_OK && fn != NULL)
			fn(c.v[i].name, v, arg);
	}
	free(c.v);
	return rv;
}

/* --- derivation through the token ---------------------------------------------------- */

/* Loads name, checks op is registered and opens the seed (wiped by the
 * caller). */
static kos_rv load_seed(kos_services *svc, const char *name, const char *op,
			struct kos_service_row *row, uint8_t seed[KOS_SERVICE_SEED_LEN])
{
	kos_rv rv;

	if (!kos_service_op_valid(op))
		return kos_error_set(KOS_E_INVALID,
				     "invalid operation name (1 to %d of A-Z a-z "
				     "0-9 . _ : -)",
				     KOS_SERVICE_OP_MAX);
	rv = get_row(svc, name, row);
	if (rv != KOS_OK)
		return rv;
	if (!ops_contain(row->ops, op))
		return kos_error_set(KOS_E_POLICY, "service %s: operation '%s' is not registered",
				     name, op);
	return kos_seedwrap_open(svc->wrap, name, row->seed_version, row->wrapped_seed,
				 row->wrapped_len, seed);
}

kos_rv kos_service_derive(kos_services *svc, const char *name, const char *op, uint64_t window,
			  kos_usec window_len, kos_service_keys *keys)
{
	uint8_t seed[KOS_SERVICE_SEED_LEN];
	struct kos_service_row row;
	kos_rv rv;

	if (keys == NULL || svc == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_service_derive: bad arguments");
	memset(keys, 0, sizeof(*keys));
	if (window_len == 0)
		window_len = KOS_SERVICE_WINDOW_DEFAULT;
	rv = check_window_len(window_len);
	if (rv != KOS_OK)
		return rv;
	rv = load_seed(svc, name, op, &row, seed);
	if (rv == KOS_OK)
		rv = kos_service_derive_from_seed(seed, name, op, window, window_len, keys);
	OPENSSL_cleanse(seed, sizeof(seed));
	if (rv == KOS_OK)
		keys->seed_version = row.seed_version;
	return rv;
}

/* --- tokens ------------------------------------------------------------------------- */

static EVP_MAC *hmac;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

static void hmac_fetch(void)
{
	hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

static kos_rv hmac_sha256(const uint8_t key[KOS_SERVICE_KEY_LEN], const char *data, size_t len,
			  uint8_t out[TOKEN_MAC_LEN])
{
	char digest[] = "SHA256";
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
	    OSSL_PARAM_construct_end(),
	};
	EVP_MAC_CTX *ctx = NULL;
	size_t n = 0;
	kos_rv rv = KOS_OK;

	pthread_once(&hmac_once, hmac_fetch);
	if (hmac == NULL || (ctx = EVP_MAC_CTX_new(hmac)) == NULL ||
	    EVP_MAC_init(ctx, key, KOS_SERVICE_KEY_LEN, params) != 1 ||
	    EVP_MAC_update(ctx, (const unsigned char *)data, len) != 1 ||
	    EVP_MAC_final(ctx, out, &n, TOKEN_MAC_LEN) != 1 || n != TOKEN_MAC_LEN)
		rv = kos_error_set(KOS_E_CRYPTO, "HMAC-SHA256 failed");
	EVP_MAC_CTX_free(ctx);
	return rv;
}

kos_rv kos_service_token_issue(kos_services *svc, const char *name, const char *op,
			       kos_usec window_len, kos_usec ttl, char **token)
{
	uint8_t seed[KOS_SERVICE_SEED_LEN], key[KOS_SERVICE_KEY_LEN], mac[TOKEN_MAC_LEN];
	struct kos_service_row row;
	json_t *claims = NULL;
	char *payload = NULL, *text = NULL;
	size_t plen, n, cap;
	int64_t wlen_s, now_s, ttl_s;
	uint64_t window;
	kos_usec now;
	kos_rv rv;

	if (token == NULL || svc == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_service_token_issue: bad arguments");
	*token = NULL;
	if (window_len == 0)
		window_len = KOS_SERVICE_WINDOW_DEFAULT;
	rv = check_window_len(window_len);
	if (rv != KOS_OK)
		return rv;
	if (ttl == 0)
		ttl = window_len;
	if (ttl < KOS_USEC_PER_SEC || ttl > window_len)
		return kos_error_set(KOS_E_RANGE, "a service token lives 1 s to one window length");
	now = now_of(svc);
	if (now < 0)
		return kos_error_set(KOS_E_RANGE, "the clock is before 1970");
	wlen_s = window_len / KOS_USEC_PER_SEC;
	now_s = now / KOS_USEC_PER_SEC;
	ttl_s = ttl / KOS_USEC_PER_SEC;
	window = (uint64_t)(now_s / wlen_s);

	rv = load_seed(svc, name, op, &row, seed);
	if (rv == KOS_OK)
		rv = derive_one(seed, "auth", name, op, window, window_len, key);
	OPENSSL_cleanse(seed, sizeof(seed));
	if (rv != KOS_OK)
		goto out;

	/* Members in this order, compact: other implementations need not
	 * reproduce it, since the MAC covers the text as sent. */
	claims = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "svc", name, "op", op, "win",
			   (json_int_t)window, "wlen", (json_int_t)wlen_s, "sv",
			   (json_int_t)row.seed_version, "iat", (json_int_t)now_s, "exp",
			   (json_int_t)(now_s + ttl_s));
	payload = claims != NULL ? json_dumps(claims, JSON_COMPACT) : NULL;
	if (payload == NULL) {
		rv = kos_error_set(KOS_E_NOMEM, "out of memory building the token");
		goto out;
	}
	plen = strlen(payload);
	cap = strlen(TOKEN_PREFIX) + 4 * ((plen + 2) / 3) + 1 + TOKEN_MAC_B64 + 4 + 1;
	text = malloc(cap);
	if (text == NULL) {
		rv = kos_error_set(KOS_E_NOMEM, "out of memory");
		goto out;
	}
	n = strlen(TOKEN_PREFIX);
	memcpy(text, TOKEN_PREFIX, n);
	rv = kos_b64url_encode((const uint8_t *)payload, plen, text + n, cap - n);
	if (rv != KOS_OK)
		goto out;
	n += strlen(text + n);
	rv = hmac_sha256(key, text, n, mac);
	if (rv != KOS_OK)
		goto out;
	text[n++] = '.';
	rv = kos_b64url_encode(mac, sizeof(mac), text + n, cap - n);
	if (rv != KOS_OK)
		goto out;
	*token = text;
	text = NULL;
out:
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(mac, sizeof(mac));
	if (text != NULL)
		kos_secret_free(text, cap);
	free(payload);
	json_decref(claims);
	return rv;
}

/* An integer member of the claims in [min, max]. */
static bool claim_int(json_t *obj, const char *key, int64_t min, int64_t max, int64_t *out)
{
	json_t *v = json_object_get(obj, key);
	json_int_t i;

	if (v == NULL || !json_is_integer(v))
		return false;
	i = json_integer_value(v);
	if (i < min || i > max)
		return false;
	*out = (int64_t)i;
	return true;
}

static bool claim_str(json_t *obj, const char *key, char *out, size_t cap)
{
	json_t *v = json_object_get(obj, key);

	if (v == NULL || !json_is_string(v) || json_string_length(v) >= cap)
		return false;
	memcpy(out, json_string_value(v), json_string_length(v) + 1);
	return true;
}

/* Parses the token's form and claims (nothing checked against the store
 * yet). *signed_len is the length of the MACed prefix of token. */
static kos_rv parse_token(const char *token, kos_service_claims *c, uint8_t mac[TOKEN_MAC_LEN],
			  size_t *signed_len)
{
	const size_t prefix = strlen(TOKEN_PREFIX);
	uint8_t payload[TOKEN_PAYLOAD_MAX + 8], macbuf[TOKEN_MAC_LEN + 4];
	int64_t win, wlen, sv, iat, expv;
	const char *dot, *p64;
	size_t len, plen, mlen;
	json_error_t jerr;
	json_t *obj;
	kos_rv rv = KOS_E_PARSE;

	len = strnlen(token, KOS_SERVICE_TOKEN_MAX + 1);
	if (len > KOS_SERVICE_TOKEN_MAX)
		return kos_error_set(KOS_E_PARSE, "token longer than %d bytes",
				     KOS_SERVICE_TOKEN_MAX);
	if (len < prefix || memcmp(token, TOKEN_PREFIX, prefix) != 0)
		return kos_error_set(KOS_E_PARSE, "not a kos service token (no '%s' prefix)",
				     TOKEN_PREFIX);
	p64 = token + prefix;
	dot = memchr(p64, '.', len - prefix);
	if (dot == NULL || strchr(dot + 1, '.') != NULL)
		return kos_error_set(KOS_E_PARSE, "a service token has three dot-separated parts");
	plen = sizeof(payload);
	mlen = sizeof(macbuf);
	if (dot == p64 || (size_t)(dot - p64) > 4 * TOKEN_PAYLOAD_MAX / 3 + 4 ||
	    kos_b64url_decode(p64, (size_t)(dot - p64), payload, &plen) != KOS_OK)
		return kos_error_set(KOS_E_PARSE, "the token's payload is not canonical base64url");
	if (strlen(dot + 1) != TOKEN_MAC_B64 ||
	    kos_b64url_decode(dot + 1, TOKEN_MAC_B64, macbuf, &mlen) != KOS_OK ||
	    mlen != TOKEN_MAC_LEN)
		return kos_error_set(KOS_E_PARSE, "the token's MAC is not 32 bytes of base64url");
	memcpy(mac, macbuf, TOKEN_MAC_LEN);
	OPENSSL_cleanse(macbuf, sizeof(macbuf));
	*signed_len = (size_t)(dot - token);

	obj = json_loadb((const char *)payload, plen, JSON_REJECT_DUPLICATES, &jerr);
	if (obj == NULL || !json_is_object(obj)) {
		rv = kos_error_set(KOS_E_PARSE, "the token's payload is not a JSON object");
		goto out;
	}
	memset(c, 0, sizeof(*c));
	if (json_object_size(obj) != 7 || !claim_str(obj, "svc", c->service, sizeof(c->service)) ||
	    !claim_str(obj, "op", c->op, sizeof(c->op)) ||
	    !claim_int(obj, "win", 0, INT64_MAX, &win) ||
	    !claim_int(obj, "wlen", 1, KOS_SERVICE_WINDOW_MAX / KOS_USEC_PER_SEC, &wlen) ||
	    !claim_int(obj, "sv", 1, UINT32_MAX, &sv) ||
	    !claim_int(obj, "iat", 0, INT64_MAX / KOS_USEC_PER_SEC, &iat) ||
	    !claim_int(obj, "exp", 0, INT64_MAX / KOS_USEC_PER_SEC, &expv)) {
		rv = kos_error_set(KOS_E_PARSE, "the token's claims are not exactly svc, op, win, "
						"wlen, sv, iat and exp of the right types");
		goto out;
	}
	if (!kos_service_name_valid(c->service) || !kos_service_op_valid(c->op)) {
		rv = kos_error_set(KOS_E_PARSE, "the token names an invalid service or operation");
		goto out;
	}
	c->window = (uint64_t)win;
	c->window_len = wlen * KOS_USEC_PER_SEC;
	c->seed_version = (uint32_t)sv;
	c->issued = iat * KOS_USEC_PER_SEC;
	c->expires = expv * KOS_USEC_PER_SEC;
	rv = KOS_OK;
out:
	json_decref(obj);
	OPENSSL_cleanse(payload, sizeof(payload));
	return rv;
}

kos_rv kos_service_token_validate(kos_services *svc, const char *token, const char *op,
				  kos_service_claims *claims)
{
	uint8_t seed[KOS_SERVICE_SEED_LEN], key[KOS_SERVICE_KEY_LEN];
	uint8_t mac[TOKEN_MAC_LEN], want[TOKEN_MAC_LEN];
	struct kos_service_row row;
	kos_service_claims c;
	int64_t wlen_s, iat_s, exp_s;
	uint64_t now_window;
	size_t signed_len = 0;
	kos_usec now;
	kos_rv rv;

	if (claims != NULL)
		memset(claims, 0, sizeof(*claims));
	if (svc == NULL || token == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_service_token_validate: bad arguments");
	if (op != NULL && !kos_service_op_valid(op))
		return kos_error_set(KOS_E_INVALID, "invalid operation name");
	rv = parse_token(token, &c, mac, &signed_len);
	if (rv != KOS_OK)
		goto out;
	rv = get_row(svc, c.service, &row);
	if (rv == KOS_E_NOTFOUND) {
		rv = kos_error_set(rv, "unknown service '%s'", c.service);
		goto out;
	}
	if (rv != KOS_OK)
		goto out;
	/* An old version's seed is gone, so such a MAC cannot even be checked. */
	if (c.seed_version != row.seed_version) {
		rv = kos_error_set(KOS_E_RANGE,
				   "service %s: the token is of seed version %" PRIu32
				   ", the seed was rotated (now version %" PRIu32 ")",
				   c.service, c.seed_version, row.seed_version);
		goto out;
	}
	rv = kos_seedwrap_open(svc->wrap, row.name, row.seed_version, row.wrapped_seed,
			       row.wrapped_len, seed);
	if (rv == KOS_OK)
		rv = derive_one(seed, "auth", c.service, c.op, c.window, c.window_len, key);
	OPENSSL_cleanse(seed, sizeof(seed));
	if (rv == KOS_OK)
		rv = hmac_sha256(key, token, signed_len, want);
	if (rv != KOS_OK)
		goto out;
	if (CRYPTO_memcmp(mac, want, TOKEN_MAC_LEN) != 0) {
		rv = kos_error_set(KOS_E_INTEGRITY, "service %s: the token's MAC does not verify",
				   c.service);
		goto out;
	}
	/* Authentic from here on. A kos issuer keeps iat in window win and
	 * exp within one window length after iat. */
	wlen_s = c.window_len / KOS_USEC_PER_SEC;
	iat_s = c.issued / KOS_USEC_PER_SEC;
	exp_s = c.expires / KOS_USEC_PER_SEC;
	if ((uint64_t)(iat_s / wlen_s) != c.window || exp_s <= iat_s || exp_s - iat_s > wlen_s) {
		rv = kos_error_set(KOS_E_INTEGRITY,
				   "service %s: the token's times disagree with "
				   "its window",
				   c.service);
		goto out;
	}
	now = now_of(svc);
	if (now < 0) {
		rv = kos_error_set(KOS_E_RANGE, "the clock is before 1970");
		goto out;
	}
	if (now >= c.expires) {
		rv = kos_error_set(KOS_E_RANGE, "service %s: the token expired %" PRId64 " s ago",
				   c.service, (now - c.expires) / KOS_USEC_PER_SEC);
		goto out;
	}
	now_window = (uint64_t)(now / KOS_USEC_PER_SEC / wlen_s);
	if (c.window > now_window || c.window + 1 < now_window) {
		rv = kos_error_set(KOS_E_RANGE,
				   "service %s: the token's window %" PRIu64 " is "
				   "neither the current (%" PRIu64 ") nor the previous one",
				   c.service, c.window, now_window);
		goto out;
	}
	if (!ops_contain(row.ops, c.op)) {
		rv = kos_error_set(KOS_E_POLICY, "service %s: operation '%s' is not registered",
				   c.service, c.op);
		goto out;
	}
	if (op != NULL && strcmp(op, c.op) != 0) {
		rv = kos_error_set(KOS_E_POLICY,
				   "service %s: the token is for operation '%s', "
				   "not '%s'",
				   c.service, c.op, op);
		goto out;
	}
	if (claims != NULL)
		*claims = c;
	rv = KOS_OK;
out:
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(mac, sizeof(mac));
	OPENSSL_cleanse(want, sizeof(want));
	return rv;
}
