/* The kos client library (kos-client(3)): HTTP/1.1 + JSON to kosd over its
 * Unix socket or TLS 1.3 with a client certificate, through one libcurl easy
 * handle per server the kos_client talks to (kosd, and each KMS front a
 * share reference names), so every connection is kept alive between calls.
 * The credential is refreshed before it expires; decryption follows the
 * tier kosd decides (DESIGN.md 4).
 *
 * Secrets handled here: the credential, enrollment secrets, DEKs, shares,
 * grants and plaintexts. Our own buffers holding them are wiped before they
 * are freed. What libcurl copies (the Authorization header in its request
 * buffer) and what jansson's parser keeps in its scratch buffer are freed
 * without a wipe by those libraries; string values jansson hands us are
 * wiped in place before the document is released. */
#include "config.h"

#include "common/internal.h"
#include "common/envelope.h"
#include "common/jws.h"
#include "common/shamir.h"

#include <kos/client.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#define DEK_SLOTS 32
/* An answer holds at most a 64 MiB plaintext in base64 plus a little JSON;
 * so does a request. */
#define RESP_MAX ((size_t)96 * 1024 * 1024)
#define BODY_MAX RESP_MAX
#define TIMEOUT_MS 30000L
#define CONNECT_TIMEOUT_MS 5000L
#define KCV_INFO "kos-kcv"

struct dek_slot {
	char name[KOS_KEY_NAME_MAX + 1];
	uint32_t version;
	int used;
	kos_usec expires; /* CLOCK_MONOTONIC microseconds */
	int current;	  /* delivered as the current version: what encryption uses */
	uint8_t dek[KOS_DEK_LEN];
};

struct rbuf {
	kos_buf b; /* at most RESP_MAX */
	bool too_large;
};

/* One server: kosd, or a KMS front. */
struct conn {
	CURL *curl;	   /* NULL: the slot is free */
	char *addr;	   /* "unix:/PATH" or "https://HOST:PORT", for messages and matching */
	char *url_base;	   /* "http://localhost" or "https://HOST:PORT" */
	char *socket_path; /* NULL over TLS */
	uint64_t used;	   /* the handle's tick when last used, for eviction */
};

/* KMS fronts kept connected at once; the least recently used goes first. */
#define KMS_CONNS 8

struct kos_client {
	struct conn main;	       /* kosd */
	struct conn kms[KMS_CONNS]; /* KMS fronts other than kosd */
	uint64_t tick;
	char *tls_cert, *tls_key, *tls_ca; /* kos_client_set_tls(); NULL: not set */
	char *cred;	/* KOS_CRED_MAX + 1 bytes, wiped; "" when none */
	char *cred_file;
	kos_usec cred_iat, cred_exp, refresh_at;
	struct dek_slot *cache; /* DEK_SLOTS in a locked, undumpable mapping */
	size_t cache_bytes;
	struct rbuf resp;
	kos_client_stats stats;
	char last_code[64];
	kos_client_refusal last_refusal;
	EVP_CIPHER_CTX *gcm; /* local GCM, made at first use; holds no key between calls */
};

/* --- small helpers ------------------------------------------------------ */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

/* curl_global_init is not thread-safe before 7.84: run it once. It is never
 * undone: the process may hold other libcurl users. */
static void curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static kos_usec mono_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (kos_usec)ts.tv_sec * KOS_USEC_PER_SEC + ts.tv_nsec / 1000;
}

/* base64 (standard, padded) of len bytes into a new NUL-terminated buffer of
 * *out_len + 1 bytes; free with kos_secret_free(p, *out_len + 1). */
static char *b64_encode(const uint8_t *data, size_t len, size_t *out_len)
{
	size_t n = kos_b64_len(len);
	char *p;

	if (n == SIZE_MAX)
		return NULL;
	p = malloc(n + 1);
	if (p == NULL)
		return NULL;
	if (kos_b64_encode(data, len, p, n + 1) != KOS_OK) {
		free(p);
		return NULL;
	}
	*out_len = n;
	return p;
}

/* Decodes a standard padded base64 string in its canonical form only
 * (kos_b64_decode); *out is freed with kos_secret_free(*out, *len + 1) (one
 * spare byte so an empty result is still an allocation). */
static kos_rv b64_decode(const char *s, size_t n, uint8_t **out, size_t *len)
{
	size_t cap = n / 4 * 3 + 1;
	uint8_t *buf;

	*out = NULL;
	*len = 0;
	buf = malloc(cap);
	if (buf == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	*len = cap; /* what buf holds, and then what was written */
	if (kos_b64_decode(s, n, buf, len) != KOS_OK) {
		kos_secret_free(buf, cap);
		*len = 0;
		return kos_error_set(KOS_E_PARSE, "kosd sent malformed base64");
	}
	*out = buf;
	return KOS_OK;
}

/* Wipes a string value of a parsed answer in place before it is released:
 * jansson frees without wiping. */
static void wipe_json_string(json_t *v)
{
	if (json_is_string(v))
		OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
}

static void wipe_member(json_t *o, const char *key)
{
	wipe_json_string(json_object_get(o, key));
}

/* --- request bodies: built by hand so that secrets land only in buffers
 * this file wipes ---------------------------------------------------------- */

/* A body is a kos_buf: a failed part fails the whole body (b->err), which
 * the caller checks once. */

static void body_raw(kos_buf *b, const char *s, size_t n)
{
	(void)kos_buf_append(b, s, n);
}

static void body_key(kos_buf *b, const char *key)
{
	body_raw(b, b->len <= 1 ? "\"" : ",\"", b->len <= 1 ? 1 : 2);
	body_raw(b, key, strlen(key));
	body_raw(b, "\":", 2);
}

/* A member whose value is not secret: escaped by jansson. */
static void body_str(kos_buf *b, const char *key, const char *value)
{
	json_t *s;
	char *txt;

	if (value == NULL)
		return;
	s = json_string(value);
	txt = s != NULL ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
	json_decref(s);
	if (txt == NULL) {
		kos_buf_fail(b, KOS_E_NOMEM);
		return;
	}
	body_key(b, key);
	body_raw(b, txt, strlen(txt));
	free(txt);
}

/* A member of characters that need no escaping (checked by the caller),
 * possibly secret. */
static void body_plain(kos_buf *b, const char *key, const char *value, size_t n)
{
	body_key(b, key);
	body_raw(b, "\"", 1);
	body_raw(b, value, n);
	body_raw(b, "\"", 1);
}

static void body_b64(kos_buf *b, const char *key, const uint8_t *data, size_t len)
{
	size_t n = 0;
	char *t = b64_encode(data, len, &n);

	if (t == NULL) {
		kos_buf_fail(b, KOS_E_NOMEM);
		return;
	}
	(void)kos_buf_reserve(b, n + strlen(key) + 8, NULL);
	body_plain(b, key, t, n);
	kos_secret_free(t, n + 1);
}

static void body_uint(kos_buf *b, const char *key, uint32_t v)
{
	char num[16];

	snprintf(num, sizeof(num), "%u", v);
	body_key(b, key);
	body_raw(b, num, strlen(num));
}

static void body_init(kos_buf *b)
{
	kos_buf_init(b, BODY_MAX);
	body_raw(b, "{", 1);
}

static void body_close(kos_buf *b)
{
	body_raw(b, "}", 1);
}

static void body_free(kos_buf *b)
{
	kos_buf_uninit(b);
}

/* --- HTTP --------------------------------------------------------------- */

static void rbuf_clear(struct rbuf *r)
{
	kos_buf_reset(&r->b);
	r->too_large = false;
}

static size_t on_data(char *data, size_t size, size_t nmemb, void *arg)
{
	struct rbuf *r = arg;
	size_t n = size * nmemb;

	if (kos_buf_append(&r->b, data, n) != KOS_OK) {
		r->too_large = r->b.err == KOS_E_RANGE;
		return 0;
	}
	return n;
}

/* kosd's refusal codes (kos-api(7)) by kind; a code not listed is judged
 * by its status. */
static const struct {
	const char *code;
	kos_client_refusal kind;
} refusal_kinds[] = {
	{"revoked", KOS_CLIENT_REFUSAL_REVOKED},
	{"expired", KOS_CLIENT_REFUSAL_EXPIRED},
	{"invalid_credential", KOS_CLIENT_REFUSAL_CREDENTIAL},
	{"certificate_mismatch", KOS_CLIENT_REFUSAL_CREDENTIAL},
	{"tls_required", KOS_CLIENT_REFUSAL_CREDENTIAL},
	{"invalid_secret", KOS_CLIENT_REFUSAL_CREDENTIAL},
	{"wrong_type", KOS_CLIENT_REFUSAL_CREDENTIAL},
	{"out_of_scope", KOS_CLIENT_REFUSAL_OUT_OF_SCOPE},
	{"beyond_scope", KOS_CLIENT_REFUSAL_OUT_OF_SCOPE},
	{"self_administration", KOS_CLIENT_REFUSAL_OUT_OF_SCOPE},
	{"trust_too_low", KOS_CLIENT_REFUSAL_TRUST_TOO_LOW},
	{"refused", KOS_CLIENT_REFUSAL_DENY},
	{"policy", KOS_CLIENT_REFUSAL_DENY},
	{"unavailable", KOS_CLIENT_REFUSAL_UNAVAILABLE},
	{"too_many_connections", KOS_CLIENT_REFUSAL_UNAVAILABLE},
	{"too_many_failures", KOS_CLIENT_REFUSAL_UNAVAILABLE},
	{"not_found", KOS_CLIENT_REFUSAL_NOT_FOUND},
	{"retired", KOS_CLIENT_REFUSAL_NOT_FOUND},
	{"decrypt_failed", KOS_CLIENT_REFUSAL_INVALID},
	{"bad_request", KOS_CLIENT_REFUSAL_INVALID},
	{"invalid_json", KOS_CLIENT_REFUSAL_INVALID},
	{"invalid_name", KOS_CLIENT_REFUSAL_INVALID},
	{"missing_field", KOS_CLIENT_REFUSAL_INVALID},
	{"too_large", KOS_CLIENT_REFUSAL_INVALID},
	{"method_not_allowed", KOS_CLIENT_REFUSAL_INVALID},
};

static kos_client_refusal refusal_kind(const char *code, long status)
{
	size_t i;

	for (i = 0; code != NULL && i < KOS_ARRAY_SIZE(refusal_kinds); i++)
		if (strcmp(code, refusal_kinds[i].code) == 0)
			return refusal_kinds[i].kind;
	switch (status) {
	case 400: case 413: return KOS_CLIENT_REFUSAL_INVALID;
	case 401: return KOS_CLIENT_REFUSAL_CREDENTIAL;
	case 403: return KOS_CLIENT_REFUSAL_DENY;
	case 404: return KOS_CLIENT_REFUSAL_NOT_FOUND;
	case 429: case 502: case 503: case 504: return KOS_CLIENT_REFUSAL_UNAVAILABLE;
	default: return KOS_CLIENT_REFUSAL_OTHER;
	}
}

/* Maps kosd's refusal to a kos_rv; the message becomes the error detail. */
static kos_rv refusal(kos_client *c, long status, json_t *doc)
{
	const char *code = json_string_value(json_object_get(doc, "error"));
	const char *msg = json_string_value(json_object_get(doc, "message"));
	kos_rv rv;

	snprintf(c->last_code, sizeof(c->last_code), "%s", code != NULL ? code : "");
	c->last_refusal = refusal_kind(code, status);
	switch (status) {
	case 400: rv = KOS_E_INVALID; break;
	case 401: rv = KOS_E_INTEGRITY; break;
	case 403: rv = KOS_E_POLICY; break;
	case 404: rv = KOS_E_NOTFOUND; break;
	case 409: rv = KOS_E_EXISTS; break;
	case 413: rv = KOS_E_RANGE; break;
	case 422: rv = KOS_E_INTEGRITY; break;
	case 503: rv = KOS_E_BUSY; break;
	default: rv = status >= 500 ? KOS_E_INTERNAL : KOS_E_INVALID; break;
	}
	/* a retired key version is gone for the caller as one never made is;
	 * the code tells them apart */
	if (code != NULL && strcmp(code, "retired") == 0)
		rv = KOS_E_NOTFOUND;
	/* a ciphertext that does not decrypt, as a tampered envelope */
	if (code != NULL && strcmp(code, "decrypt_failed") == 0)
		rv = KOS_E_INTEGRITY;
	if (msg != NULL)
		return kos_error_set(rv, "%s", msg);
	return kos_error_set(rv, "kosd answered HTTP %ld", status);
}

static bool add_header(struct curl_slist **list, const char *h)
{
	struct curl_slist *n = curl_slist_append(*list, h);

	if (n == NULL)
		return false;
	*list = n;
	return true;
}

/* One request to server k. body may be NULL (GET); bearer (may be NULL) is
 * sent as the credential. On KOS_OK *out (may be NULL) receives the answer's
 * JSON object (json_decref it). */
static kos_rv http_to(kos_client *c, struct conn *k, const char *path, const kos_buf *body,
		      const char *bearer, json_t **out)
{
	char url[320 + KOS_KEY_NAME_MAX];
	char auth[KOS_CRED_MAX + 32];
	struct curl_slist *hdr = NULL, *h;
	json_error_t jerr;
	json_t *doc = NULL;
	long status = 0, conns = 0;
	CURLcode cc;
	kos_rv rv;

	if (out != NULL)
		*out = NULL;
	c->last_code[0] = '\0';
	c->last_refusal = KOS_CLIENT_REFUSAL_NONE;
	rbuf_clear(&c->resp);
	k->used = ++c->tick;
	if (k->socket_path == NULL && c->tls_cert == NULL)
		return kos_error_set(KOS_E_INVALID,
				     "%s: TLS needs a client certificate (kos_client_set_tls)",
				     k->addr);
	snprintf(url, sizeof(url), "%s%s", k->url_base, path);

	/* headers: "Expect:" keeps curl from waiting for 100-continue */
	if (!add_header(&hdr, "Accept: application/json") ||
	    (body != NULL && (!add_header(&hdr, "Content-Type: application/json") ||
			      !add_header(&hdr, "Expect:")))) {
		rv = kos_error_set(KOS_E_NOMEM, "out of memory");
		goto out;
	}
	if (bearer != NULL) {
		bool ok;

		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", bearer);
		ok = add_header(&hdr, auth);
		OPENSSL_cleanse(auth, sizeof(auth));
		if (!ok) {
			rv = kos_error_set(KOS_E_NOMEM, "out of memory");
			goto out;
		}
	}
	cc = curl_easy_setopt(k->curl, CURLOPT_URL, url);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(k->curl, CURLOPT_HTTPHEADER, hdr);
	if (cc == CURLE_OK && body != NULL) {
		/* POSTFIELDSIZE first: POSTFIELDS alone would take strlen */
		cc = curl_easy_setopt(k->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
		if (cc == CURLE_OK)
			cc = curl_easy_setopt(k->curl, CURLOPT_POSTFIELDS, body->p);
	} else if (cc == CURLE_OK) {
		cc = curl_easy_setopt(k->curl, CURLOPT_HTTPGET, 1L);
	}
	if (cc == CURLE_OK)
		cc = curl_easy_perform(k->curl);
	/* the handle must not keep pointers to our buffers past this call */
	curl_easy_setopt(k->curl, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(k->curl, CURLOPT_POSTFIELDS, NULL);
	if (curl_easy_getinfo(k->curl, CURLINFO_NUM_CONNECTS, &conns) == CURLE_OK && conns > 0)
		c->stats.connects += (uint64_t)conns;
	if (cc != CURLE_OK) {
		if (c->resp.too_large) {
			rv = kos_error_set(KOS_E_RANGE, "kosd's answer is larger than %zu bytes",
					   RESP_MAX);
		} else {
			c->last_refusal = KOS_CLIENT_REFUSAL_UNAVAILABLE;
			rv = kos_error_set(KOS_E_IO, "cannot reach %s at %s: %s",
					   k == &c->main ? "kosd" : "the KMS front", k->addr,
					   curl_easy_strerror(cc));
		}
		goto out;
	}
	c->stats.requests++;
	curl_easy_getinfo(k->curl, CURLINFO_RESPONSE_CODE, &status);
	doc = c->resp.b.len > 0 ? json_loadb(c->resp.b.p, c->resp.b.len, 0, &jerr) : NULL;
	if (doc != NULL && !json_is_object(doc)) {
		json_decref(doc);
		doc = NULL;
	}
	if (status != 200) {
		rv = refusal(c, status, doc);
		goto out;
	}
	if (doc == NULL) {
		rv = kos_error_set(KOS_E_PARSE, "%s: kosd's answer is not a JSON object", path);
		goto out;
	}
	if (out != NULL) {
		*out = doc;
		doc = NULL;
	}
	rv = KOS_OK;
out:
	json_decref(doc);
	rbuf_clear(&c->resp);
	for (h = hdr; h != NULL; h = h->next)
		OPENSSL_cleanse(h->data, strlen(h->data));
	curl_slist_free_all(hdr);
	return rv;
}

static kos_rv http(kos_client *c, const char *path, const kos_buf *body, const char *bearer,
		   json_t **out)
{
	return http_to(c, &c->main, path, body, bearer, out);
}

/* --- the credential ----------------------------------------------------- */

/* Reads iat and exp from the payload (not verified: kosd does that; the
 * client needs only to know when to refresh). */
static kos_rv cred_times(const char *tok, kos_usec *iat, kos_usec *exp)
{
	const char *d1 = strchr(tok, '.'), *d2 = d1 != NULL ? strchr(d1 + 1, '.') : NULL;
	uint8_t payload[KOS_CRED_MAX];
	size_t plen = sizeof(payload);
	json_t *o = NULL;
	json_int_t i, e;
	kos_rv rv = KOS_E_INVALID;

	if (d2 == NULL || strchr(d2 + 1, '.') != NULL ||
	    kos_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), payload, &plen) != KOS_OK)
		goto out;
	o = json_loadb((const char *)payload, plen, 0, NULL);
	if (!json_is_integer(json_object_get(o, "exp")) ||
	    !json_is_integer(json_object_get(o, "iat")))
		goto out;
	i = json_integer_value(json_object_get(o, "iat"));
	e = json_integer_value(json_object_get(o, "exp"));
	if (i < 0 || e <= i || e > INT64_MAX / KOS_USEC_PER_SEC)
		goto out;
	*iat = (kos_usec)i * KOS_USEC_PER_SEC;
	*exp = (kos_usec)e * KOS_USEC_PER_SEC;
	rv = KOS_OK;
out:
	json_decref(o);
	OPENSSL_cleanse(payload, sizeof(payload));
	if (rv != KOS_OK)
		return kos_error_set(rv, "not a kos credential (a JWT with iat and exp)");
	return rv;
}

/* Installs tok (n bytes) and schedules its refresh at 2/3 of its lifetime
 * less up to 1/10 of jitter, so many clients issued together spread out. */
static kos_rv cred_install(kos_client *c, const char *tok, size_t n)
{
	kos_usec iat, exp, life, jitter = 0;
	uint32_t r = 0;
	kos_rv rv;

	if (n == 0 || n > KOS_CRED_MAX || strspn(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstu"
						      "vwxyz0123456789-_.") < n)
		return kos_error_set(KOS_E_INVALID, "not a kos credential");
	memcpy(c->cred, tok, n);
	c->cred[n] = '\0';
	rv = cred_times(c->cred, &iat, &exp);
	if (rv != KOS_OK) {
		OPENSSL_cleanse(c->cred, KOS_CRED_MAX + 1);
		return rv;
	}
	life = exp - iat;
	if (RAND_bytes((unsigned char *)&r, sizeof(r)) == 1)
		jitter = (kos_usec)((double)(life / 10) * ((double)r / 4294967296.0));
	c->cred_iat = iat;
	c->cred_exp = exp;
	c->refresh_at = iat + life / 3 * 2 - jitter;
	return KOS_OK;
}

static void cred_forget(kos_client *c)
{
	OPENSSL_cleanse(c->cred, KOS_CRED_MAX + 1);
	c->cred_iat = c->cred_exp = c->refresh_at = 0;
}

/* Writes tok to path atomically (a temporary file in the same directory,
 * renamed over it), mode 0600. */
static kos_rv cred_save(const char *path, const char *tok)
{
	size_t plen = strlen(path), n = strlen(tok), off = 0;
	char *tmp = malloc(plen + 8);
	kos_rv rv = KOS_OK;
	int fd;

	if (tmp == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	memcpy(tmp, path, plen);
	memcpy(tmp + plen, ".XXXXXX", 8);
	fd = mkstemp(tmp); /* 0600 already; fchmod below guards odd umasks */
	if (fd < 0) {
		rv = kos_error_set(KOS_E_IO, "cannot write the credential next to %s: %s", path,
				   strerror(errno));
		free(tmp);
		return rv;
	}
	if (fchmod(fd, 0600) != 0)
		rv = KOS_E_IO;
	while (rv == KOS_OK && off < n) {
		ssize_t w = write(fd, tok + off, n - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			rv = KOS_E_IO;
		else
			off += (size_t)w;
	}
	if (rv == KOS_OK && (write(fd, "\n", 1) != 1 || fsync(fd) != 0))
		rv = KOS_E_IO;
	if (close(fd) != 0)
		rv = KOS_E_IO;
	if (rv == KOS_OK && rename(tmp, path) != 0)
		rv = KOS_E_IO;
	if (rv != KOS_OK) {
		rv = kos_error_set(KOS_E_IO, "cannot write the credential to %s: %s", path,
				   strerror(errno));
		unlink(tmp);
	}
	free(tmp);
	return rv;
}

static kos_rv cred_load_file(kos_client *c, const char *path)
{
	char buf[KOS_CRED_MAX + 3];
	size_t n = 0;
	kos_rv rv;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kos_error_set(KOS_E_IO, "%s: %s", path, strerror(errno));
	while (n < sizeof(buf) - 1) {
		ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rv = kos_error_set(KOS_E_IO, "%s: %s", path, strerror(errno));
			close(fd);
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	if (n > KOS_CRED_MAX) {
		rv = kos_error_set(KOS_E_RANGE, "%s: longer than a credential (%d bytes)", path,
				   KOS_CRED_MAX);
		goto out;
	}
	rv = cred_install(c, buf, n);
	if (rv != KOS_OK)
		rv = kos_error_set(rv, "%s: %s", path, "not a kos credential");
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	return rv;
}

/* Takes the credential from an answer ({"credential": ...}), wiping it there. */
static kos_rv cred_from_answer(kos_client *c, json_t *doc)
{
	json_t *v = json_object_get(doc, "credential");
	kos_rv rv;

	if (!json_is_string(v))
		return kos_error_set(KOS_E_PARSE, "kosd's answer holds no credential");
	rv = cred_install(c, json_string_value(v), json_string_length(v));
	wipe_json_string(v);
	return rv;
}

/* POST /v1/credentials/refresh. *saved is false when the new credential
 * could not be written back to its file (it is in use all the same). */
static kos_rv do_refresh(kos_client *c, kos_rv *save_rv)
{
	kos_buf b;
	json_t *doc = NULL;
	kos_rv rv;

	*save_rv = KOS_OK;
	if (c->cred[0] == '\0')
		return kos_error_set(KOS_E_INVALID, "no credential to refresh");
	body_init(&b);
	body_close(&b);
	if (b.err != KOS_OK) {
		body_free(&b);
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	}
	rv = http(c, "/v1/credentials/refresh", &b, c->cred, &doc);
	body_free(&b);
	if (rv == KOS_OK)
		rv = cred_from_answer(c, doc);
	json_decref(doc);
	if (rv != KOS_OK)
		return rv;
	c->stats.refreshes++;
	if (c->cred_file != NULL) {
		*save_rv = cred_save(c->cred_file, c->cred);
		if (*save_rv != KOS_OK)
			c->stats.save_failures++;
	}
	return KOS_OK;
}

/* Before every call that needs the credential: refresh it when due. A
 * refresh refused for the credential itself (revoked, expired) is the
 * call's error; another failure leaves the old credential in use while it
 * is valid and tries again later. */
static kos_rv ensure_credential(kos_client *c)
{
	kos_usec now = kos_now(), left;
	kos_rv rv, save_rv;

	if (c->cred[0] == '\0')
		return kos_error_set(KOS_E_INVALID,
				     "no credential: set KOS_CREDENTIAL_FILE or KOS_CREDENTIAL, "
				     "or enroll");
	if (now < c->refresh_at)
		return KOS_OK;
	rv = do_refresh(c, &save_rv);
	if (rv == KOS_OK || rv == KOS_E_INTEGRITY)
		return rv;
	if (now >= c->cred_exp)
		return rv;
	left = (c->cred_exp - now) / 4;
	c->refresh_at = now + (left > KOS_USEC_PER_SEC ? left : KOS_USEC_PER_SEC);
	kos_error_clear();
	return KOS_OK;
}

/* --- the DEK cache ------------------------------------------------------ */

static void slot_wipe(struct dek_slot *s)
{
	OPENSSL_cleanse(s, sizeof(*s));
}

static void cache_sweep(kos_client *c)
{
	kos_usec now = mono_usec();

	for (size_t i = 0; i < DEK_SLOTS; i++)
		if (c->cache[i].used && c->cache[i].expires <= now)
			slot_wipe(&c->cache[i]);
}

static struct dek_slot *cache_find(kos_client *c, const char *name, uint32_t version)
{
	cache_sweep(c);
	for (size_t i = 0; i < DEK_SLOTS; i++) {
		struct dek_slot *s = &c->cache[i];

		if (s->used && s->version == version && strcmp(s->name, name) == 0)
			return s;
	}
	return NULL;
}

/* The slot of name's current version. After a rotation elsewhere it is
 * the previous version until it expires: still usable, and encryption
 * hands the version it used to the caller. */
static struct dek_slot *cache_find_current(kos_client *c, const char *name)
{
	cache_sweep(c);
	for (size_t i = 0; i < DEK_SLOTS; i++) {
		struct dek_slot *s = &c->cache[i];

		if (s->used && s->current && strcmp(s->name, name) == 0)
			return s;
	}
	return NULL;
}

static void cache_put(kos_client *c, const char *name, uint32_t version,
		      const uint8_t dek[KOS_DEK_LEN], kos_usec seconds, bool current)
{
	struct dek_slot *s = cache_find(c, name, version), *oldest = &c->cache[0];

	for (size_t i = 0; current && i < DEK_SLOTS; i++)
		if (c->cache[i].used && strcmp(c->cache[i].name, name) == 0)
			c->cache[i].current = 0;

	for (size_t i = 0; s == NULL && i < DEK_SLOTS; i++) {
		if (!c->cache[i].used)
			s = &c->cache[i];
		else if (c->cache[i].expires < oldest->expires)
			oldest = &c->cache[i];
	}
	if (s == NULL)
		s = oldest;
	slot_wipe(s);
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->version = version;
	s->expires = mono_usec() + seconds * KOS_USEC_PER_SEC;
	memcpy(s->dek, dek, KOS_DEK_LEN);
	s->current = current;
	s->used = 1;
}

void kos_client_forget_keys(kos_client *c)
{
	if (c != NULL && c->cache != NULL)
		OPENSSL_cleanse(c->cache, c->cache_bytes);
}

/* --- servers ------------------------------------------------------------ */

#define ADDR_MAX 255

static void conn_close(struct conn *k)
{
	if (k->curl != NULL)
		curl_easy_cleanup(k->curl);
	free(k->addr);
	free(k->url_base);
	free(k->socket_path);
	memset(k, 0, sizeof(*k));
}

/* The TLS options of the handle on k (a TLS server): TLS 1.3 at least, the
 * client certificate and key, and the CA that verifies the server (the
 * system's when none was given). */
static kos_rv conn_tls(kos_client *c, struct conn *k)
{
	if (k->curl == NULL || k->socket_path != NULL || c->tls_cert == NULL)
		return KOS_OK;
	if (curl_easy_setopt(k->curl, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_3) !=
		CURLE_OK ||
	    curl_easy_setopt(k->curl, CURLOPT_SSLCERT, c->tls_cert) != CURLE_OK ||
	    curl_easy_setopt(k->curl, CURLOPT_SSLCERTTYPE, "PEM") != CURLE_OK ||
	    curl_easy_setopt(k->curl, CURLOPT_SSLKEY, c->tls_key) != CURLE_OK ||
	    curl_easy_setopt(k->curl, CURLOPT_SSLKEYTYPE, "PEM") != CURLE_OK ||
	    (c->tls_ca != NULL && curl_easy_setopt(k->curl, CURLOPT_CAINFO, c->tls_ca) != CURLE_OK) ||
	    curl_easy_setopt(k->curl, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
	    curl_easy_setopt(k->curl, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK)
		return kos_error_set(KOS_E_INTERNAL, "this libcurl cannot do TLS 1.3 with a client "
						     "certificate");
	return KOS_OK;
}

/* Opens k for addr: "unix:PATH", a plain absolute path (kosd only, when
 * plain_ok), or "https://HOST:PORT". No connection is made yet. */
static kos_rv conn_open(kos_client *c, struct conn *k, const char *addr, bool plain_ok)
{
	const char *path = NULL;
	bool tls = false;
	CURLcode cc;

	memset(k, 0, sizeof(*k));
	if (addr == NULL || addr[0] == '\0' || strlen(addr) > ADDR_MAX)
		return kos_error_set(KOS_E_INVALID, "not a kosd address");
	if (strncmp(addr, "unix:", 5) == 0) {
		path = addr + 5;
	} else if (strncmp(addr, "https://", 8) == 0) {
		const char *host = addr + 8, *colon = strrchr(host, ':');
		size_t n = strlen(host);

		/* HOST:PORT and nothing more: the routes are the library's */
		if (n == 0 || host[n - 1] == '/' || strpbrk(host, "/?#@ \t\r\n\"\\") != NULL ||
		    colon == NULL || colon == host || colon[1] == '\0' ||
		    strspn(colon + 1, "0123456789") != strlen(colon + 1))
			return kos_error_set(KOS_E_INVALID, "%s: a TLS server is https://HOST:PORT",
					     addr);
		tls = true;
	} else if (plain_ok && strstr(addr, "://") == NULL) {
		path = addr;
	} else {
		return kos_error_set(KOS_E_INVALID,
				     "%s: not a kosd address (a socket path, unix:PATH or "
				     "https://HOST:PORT)",
				     addr);
	}
	if (!tls && (path[0] == '\0' || strlen(path) > 107))
		return kos_error_set(KOS_E_INVALID, "not a usable socket path");
	if (tls) {
		k->addr = kos_strdup(addr);
		k->url_base = kos_strdup(addr);
	} else {
		k->addr = malloc(strlen(path) + 6);
		if (k->addr != NULL)
			sprintf(k->addr, "unix:%s", path);
		k->url_base = kos_strdup("http://localhost");
		k->socket_path = kos_strdup(path);
	}
	k->curl = curl_easy_init();
	if (k->addr == NULL || k->url_base == NULL || (!tls && k->socket_path == NULL) ||
	    k->curl == NULL) {
		conn_close(k);
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	}
	/* an option this libcurl lacks (a build without Unix sockets or TLS) is
	 * a failure here, not a silent plain TCP connection later */
	cc = tls ? CURLE_OK : curl_easy_setopt(k->curl, CURLOPT_UNIX_SOCKET_PATH, k->socket_path);
	if (cc != CURLE_OK ||
#if LIBCURL_VERSION_NUM >= 0x075500
	    curl_easy_setopt(k->curl, CURLOPT_PROTOCOLS_STR, tls ? "https" : "http") != CURLE_OK ||
#else
	    curl_easy_setopt(k->curl, CURLOPT_PROTOCOLS,
			     tls ? (long)CURLPROTO_HTTPS : (long)CURLPROTO_HTTP) != CURLE_OK ||
#endif
	    curl_easy_setopt(k->curl, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(k->curl, CURLOPT_TIMEOUT_MS, TIMEOUT_MS) != CURLE_OK ||
	    curl_easy_setopt(k->curl, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS) != CURLE_OK ||
	    curl_easy_setopt(k->curl, CURLOPT_WRITEFUNCTION, on_data) != CURLE_OK ||
	    curl_easy_setopt(k->curl, CURLOPT_WRITEDATA, &c->resp) != CURLE_OK ||
	    curl_easy_setopt(k->curl, CURLOPT_USERAGENT, "kos-client/" PACKAGE_VERSION) !=
		CURLE_OK) {
		conn_close(k);
		return kos_error_set(KOS_E_INTERNAL, "this libcurl cannot talk %s",
				     tls ? "HTTPS" : "over a Unix socket");
	}
	return conn_tls(c, k);
}

/* The server for a share reference's "kms" address (NULL: kosd itself),
 * opened on first use and kept for the next; NULL with *rv set on failure. */
static struct conn *kms_conn(kos_client *c, const char *addr, kos_rv *rv_out)
{
	struct conn *k, *lru = &c->kms[0];
	kos_rv rv;

	if (addr == NULL || strcmp(addr, c->main.addr) == 0)
		return &c->main;
	for (size_t i = 0; i < KMS_CONNS; i++) {
		k = &c->kms[i];
		if (k->curl != NULL && strcmp(k->addr, addr) == 0)
			return k;
		if (k->curl == NULL || (lru->curl != NULL && k->used < lru->used))
			lru = k;
	}
	conn_close(lru);
	rv = conn_open(c, lru, addr, false);
	if (rv != KOS_OK) {
		*rv_out = kos_error_set(rv, "a share reference names no usable KMS front: %s",
					kos_last_error());
		return NULL;
	}
	return lru;
}

/* --- the handle --------------------------------------------------------- */

kos_rv kos_client_new(const char *server, kos_client **out)
{
	return kos_client_new_ex(server, 0, out);
}

kos_rv kos_client_new_ex(const char *server, unsigned flags, kos_client **out)
{
	const char *env, *cert, *key;
	kos_client *c = NULL;
	kos_rv rv;

	if (out == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_client_new: no output handle");
	*out = NULL;
	if ((flags & ~(unsigned)KOS_CLIENT_NEW_NO_ENV) != 0)
		return kos_error_set(KOS_E_INVALID, "kos_client_new_ex: unknown flags");
	if (server == NULL && !(flags & KOS_CLIENT_NEW_NO_ENV))
		server = getenv(KOS_CLIENT_ENV_SERVER);
	if (server == NULL || server[0] == '\0')
		return kos_error_set(KOS_E_INVALID, "no kosd address given (set KOS_SERVER)");
	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rc != CURLE_OK)
		return kos_error_set(KOS_E_INTERNAL, "libcurl: %s", curl_easy_strerror(curl_init_rc));

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	kos_buf_init(&c->resp.b, RESP_MAX);
	rv = conn_open(c, &c->main, server, true);
	if (rv != KOS_OK) {
		free(c);
		return rv;
	}
	c->cred = malloc(KOS_CRED_MAX + 1);
	c->cache_bytes = DEK_SLOTS * sizeof(struct dek_slot);
	c->cache = kos_secmem_alloc(c->cache_bytes, KOS_SECMEM_GUARD);
	if (c->cred == NULL || c->cache == NULL) {
		rv = kos_error_set(KOS_E_NOMEM, "out of memory");
		goto fail;
	}
	memset(c->cred, 0, KOS_CRED_MAX + 1);
	memset(c->cache, 0, c->cache_bytes);
	if (flags & KOS_CLIENT_NEW_NO_ENV) {
		*out = c;
		return KOS_OK;
	}

	cert = getenv(KOS_CLIENT_ENV_TLS_CERT);
	key = getenv(KOS_CLIENT_ENV_TLS_KEY);
	if (cert != NULL && cert[0] != '\0') {
		env = getenv(KOS_CLIENT_ENV_TLS_CA);
		rv = kos_client_set_tls(c, cert, key != NULL && key[0] != '\0' ? key : cert,
					env != NULL && env[0] != '\0' ? env : NULL);
		if (rv != KOS_OK)
			goto fail;
	}
	env = getenv(KOS_CLIENT_ENV_CREDENTIAL_FILE);
	if (env != NULL && env[0] != '\0') {
		rv = kos_client_set_credential_file(c, env);
		if (rv != KOS_OK)
			goto fail;
	} else if ((env = getenv(KOS_CLIENT_ENV_CREDENTIAL)) != NULL && env[0] != '\0') {
		rv = cred_install(c, env, strlen(env));
		if (rv != KOS_OK) {
			rv = kos_error_set(rv, "KOS_CREDENTIAL: not a kos credential");
			goto fail;
		}
	}
	*out = c;
	return KOS_OK;
fail:
	kos_client_free(c);
	return rv;
}

void kos_client_free(kos_client *c)
{
	if (c == NULL)
		return;
	conn_close(&c->main);
	for (size_t i = 0; i < KMS_CONNS; i++)
		conn_close(&c->kms[i]);
	kos_secmem_free(c->cache);
	EVP_CIPHER_CTX_free(c->gcm);
	kos_secret_free(c->cred, c->cred != NULL ? KOS_CRED_MAX + 1 : 0);
	kos_buf_uninit(&c->resp.b);
	free(c->cred_file);
	free(c->tls_cert);
	free(c->tls_key);
	free(c->tls_ca);
	free(c);
}

/* A file the TLS set-up names must be there to read: a typo is found now,
 * not at the first handshake. */
static kos_rv readable(const char *what, const char *path)
{
	if (path[0] == '\0' || access(path, R_OK) != 0)
		return kos_error_set(KOS_E_IO, "TLS %s %s: %s", what, path,
				     path[0] == '\0' ? "empty path" : strerror(errno));
	return KOS_OK;
}

kos_rv kos_client_set_tls(kos_client *c, const char *cert, const char *key, const char *ca)
{
	char *nc = NULL, *nk = NULL, *na = NULL;
	kos_rv rv;

	if (c == NULL || cert == NULL || key == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_client_set_tls: a client certificate and "
						    "its key are needed");
	if ((rv = readable("certificate", cert)) != KOS_OK ||
	    (rv = readable("key", key)) != KOS_OK ||
	    (ca != NULL && (rv = readable("CA file", ca)) != KOS_OK))
		return rv;
	nc = kos_strdup(cert);
	nk = kos_strdup(key);
	na = ca != NULL ? kos_strdup(ca) : NULL;
	if (nc == NULL || nk == NULL || (ca != NULL && na == NULL)) {
		free(nc);
		free(nk);
		free(na);
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	}
	free(c->tls_cert);
	free(c->tls_key);
	free(c->tls_ca);
	c->tls_cert = nc;
	c->tls_key = nk;
	c->tls_ca = na;
	/* a server already open keeps its handle: the new files apply to its
	 * next connection, and a kept-alive one made with other files closes */
	rv = conn_tls(c, &c->main);
	for (size_t i = 0; rv == KOS_OK && i < KMS_CONNS; i++)
		rv = conn_tls(c, &c->kms[i]);
	return rv;
}

kos_rv kos_client_set_credential(kos_client *c, const char *token)
{
	if (c == NULL)
		return kos_error_set(KOS_E_INVALID, "no client");
	free(c->cred_file);
	c->cred_file = NULL;
	cred_forget(c);
	if (token == NULL)
		return KOS_OK;
	return cred_install(c, token, strlen(token));
}

kos_rv kos_client_set_credential_file(kos_client *c, const char *path)
{
	char *p;
	kos_rv rv;

	if (c == NULL || path == NULL)
		return kos_error_set(KOS_E_INVALID, "no client or no path");
	p = kos_strdup(path);
	if (p == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	cred_forget(c);
	rv = cred_load_file(c, path);
	if (rv != KOS_OK) {
		free(p);
		return rv;
	}
	free(c->cred_file);
	c->cred_file = p;
	return KOS_OK;
}

kos_usec kos_client_credential_expires(const kos_client *c)
{
	return c != NULL && c->cred[0] != '\0' ? c->cred_exp : 0;
}

kos_rv kos_client_enroll(kos_client *c, const char *secret, const char *save)
{
	kos_buf b;
	json_t *doc = NULL;
	char *p = NULL;
	size_t n;
	kos_rv rv;

	if (c == NULL || secret == NULL)
		return kos_error_set(KOS_E_INVALID, "no client or no secret");
	n = strlen(secret);
	/* base64url only, so it needs no escaping in the body */
	if (n == 0 || n > 256 || strspn(secret, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstu"
						"vwxyz0123456789-_") != n)
		return kos_error_set(KOS_E_INVALID, "not an enrollment secret");
	if (save != NULL && (p = kos_strdup(save)) == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	body_init(&b);
	body_plain(&b, "secret", secret, n);
	body_close(&b);
	if (b.err != KOS_OK) {
		rv = kos_error_set(KOS_E_NOMEM, "out of memory");
		goto out;
	}
	rv = http(c, "/v1/credentials/enroll", &b, NULL, &doc);
	if (rv != KOS_OK)
		goto out;
	rv = cred_from_answer(c, doc);
	if (rv != KOS_OK)
		goto out;
	free(c->cred_file);
	c->cred_file = p;
	p = NULL;
	if (c->cred_file != NULL)
		rv = cred_save(c->cred_file, c->cred);
out:
	json_decref(doc);
	body_free(&b);
	free(p);
	return rv;
}

kos_rv kos_client_refresh(kos_client *c)
{
	kos_rv rv, save_rv;

	if (c == NULL)
		return kos_error_set(KOS_E_INVALID, "no client");
	rv = do_refresh(c, &save_rv);
	return rv != KOS_OK ? rv : save_rv;
}

kos_rv kos_client_health(kos_client *c, char *version, size_t version_len)
{
	json_t *doc = NULL;
	const char *st, *v;
	kos_rv rv;

	if (c == NULL)
		return kos_error_set(KOS_E_INVALID, "no client");
	rv = http(c, "/v1/health", NULL, NULL, &doc);
	if (rv != KOS_OK)
		return rv;
	st = json_string_value(json_object_get(doc, "status"));
	v = json_string_value(json_object_get(doc, "version"));
	if (st == NULL || strcmp(st, "ok") != 0)
		rv = kos_error_set(KOS_E_BUSY, "kosd is not healthy: %s", st != NULL ? st : "?");
	else if (version != NULL && version_len > 0)
		snprintf(version, version_len, "%s", v != NULL ? v : "");
	json_decref(doc);
	return rv;
}

kos_rv kos_client_keys_find(kos_client *c, const char *name, const char *type,
			    int (*fn)(const kos_client_key *key, void *arg), void *arg)
{
	char path[64 + KOS_KEY_NAME_MAX];
	json_t *doc = NULL, *arr, *o;
	kos_key_type kt;
	size_t i;
	kos_rv rv;

	if (c == NULL || fn == NULL)
		return kos_error_set(KOS_E_INVALID, "no client or no callback");
	if (name != NULL && !kos_key_name_valid(name))
		return kos_error_set(KOS_E_INVALID, "not a key name");
	if (type != NULL && (rv = kos_key_type_parse(type, &kt)) != KOS_OK)
		return rv;
	/* key names and type names need no escaping in a query */
	snprintf(path, sizeof(path), "/v1/keys%s%s%s%s%s", name != NULL || type != NULL ? "?" : "",
		 name != NULL ? "name=" : "", name != NULL ? name : "",
		 name != NULL && type != NULL ? "&type=" : type != NULL ? "type=" : "",
		 type != NULL ? type : "");
	rv = ensure_credential(c);
	if (rv == KOS_OK)
		rv = http(c, path, NULL, c->cred, &doc);
	if (rv != KOS_OK)
		return rv;
	arr = json_object_get(doc, "keys");
	if (!json_is_array(arr)) {
		json_decref(doc);
		return kos_error_set(KOS_E_PARSE, "kosd's key list is malformed");
	}
	json_array_foreach(arr, i, o) {
		kos_client_key k;
		const char *kname = json_string_value(json_object_get(o, "name"));
		const char *ktype = json_string_value(json_object_get(o, "type"));

		memset(&k, 0, sizeof(k));
		if (kname == NULL || strlen(kname) > KOS_KEY_NAME_MAX) {
			rv = kos_error_set(KOS_E_PARSE, "kosd's key list is malformed");
			break;
		}
		snprintf(k.name, sizeof(k.name), "%s", kname);
		snprintf(k.type, sizeof(k.type), "%s", ktype != NULL ? ktype : "");
		k.current = (uint32_t)json_integer_value(json_object_get(o, "current"));
		k.min_version = (uint32_t)json_integer_value(json_object_get(o, "min_version"));
		k.versions = (uint32_t)json_integer_value(json_object_get(o, "versions"));
		rv = fn(&k, arg);
		if (rv != 0)
			break;
	}
	json_decref(doc);
	return rv;
}

kos_rv kos_client_keys(kos_client *c, int (*fn)(const kos_client_key *key, void *arg), void *arg)
{
	return kos_client_keys_find(c, NULL, NULL, fn, arg);
}

static kos_rv check_name(const char *name)
{
	if (name == NULL || !kos_key_name_valid(name))
		return kos_error_set(KOS_E_INVALID, "not a key name");
	return KOS_OK;
}

/* Decodes the base64 member key of doc into *out (secret: freed with
 * kos_secret_free(*out, *len + 1)) and wipes the member's text. */
static kos_rv answer_b64(json_t *doc, const char *key, uint8_t **out, size_t *len)
{
	json_t *v = json_object_get(doc, key);
	kos_rv rv;

	if (!json_is_string(v))
		return kos_error_set(KOS_E_PARSE, "kosd's answer has no \"%s\"", key);
	rv = b64_decode(json_string_value(v), json_string_length(v), out, len);
	wipe_json_string(v);
	return rv;
}

kos_rv kos_client_encrypt(kos_client *c, const char *name, const char *context, const uint8_t *pt,
			  size_t len, uint8_t **env, size_t *env_len)
{
	char path[32 + KOS_KEY_NAME_MAX];
	kos_buf b;
	json_t *doc = NULL;
	uint8_t *e = NULL;
	size_t elen = 0;
	kos_rv rv;

	if (c == NULL || env == NULL || env_len == NULL || (pt == NULL && len > 0))
		return kos_error_set(KOS_E_INVALID, "kos_client_encrypt: bad arguments");
	*env = NULL;
	*env_len = 0;
	if ((rv = check_name(name)) != KOS_OK)
		return rv;
	if (len > KOS_ENVELOPE_MAX_PLAINTEXT)
		return kos_error_set(KOS_E_RANGE, "plaintext larger than %u bytes",
				     KOS_ENVELOPE_MAX_PLAINTEXT);
	rv = ensure_credential(c);
	if (rv != KOS_OK)
		return rv;
	body_init(&b);
	(void)kos_buf_reserve(&b, len / 3 * 4 + 64 + (context != NULL ? 2 * strlen(context) : 0),
			      NULL);
	body_b64(&b, "plaintext", pt != NULL ? pt : (const uint8_t *)"", len);
	body_str(&b, "context", context);
	body_close(&b);
	if (b.err != KOS_OK) {
		rv = kos_error_set(KOS_E_NOMEM, "out of memory");
		goto out;
	}
	snprintf(path, sizeof(path), "/v1/keys/%s/encrypt", name);
	rv = http(c, path, &b, c->cred, &doc);
	if (rv == KOS_OK)
		rv = answer_b64(doc, "envelope", &e, &elen);
	if (rv != KOS_OK)
		goto out;
	/* hand it over as kos_free() memory of the exact size */
	*env = e;
	*env_len = elen;
	e = NULL;
out:
	kos_secret_free(e, elen + 1);
	json_decref(doc);
	body_free(&b);
	return rv;
}

/* kosd's key check value: HMAC-SHA256(dek, "kos-kcv"), first 8 bytes. */
static bool kcv_ok(const uint8_t *dek, const uint8_t kcv[KOS_KCV_LEN])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mlen = 0;
	bool ok;

	ok = HMAC(EVP_sha256(), dek, KOS_DEK_LEN, (const unsigned char *)KCV_INFO,
		  sizeof(KCV_INFO) - 1, mac, &mlen) != NULL &&
	     mlen >= KOS_KCV_LEN && CRYPTO_memcmp(mac, kcv, KOS_KCV_LEN) == 0;
	OPENSSL_cleanse(mac, sizeof(mac));
	return ok;
}

/* The medium path: k shares from the KMS fronts named by refs, each fetched
 * with its own grant, combined and checked against the key check value. */
static kos_rv dek_from_shares(kos_client *c, json_t *doc, uint8_t dek[KOS_DEK_LEN])
{
	json_t *refs = json_object_get(doc, "refs"), *ref;
	const char *kcv_hex = json_string_value(json_object_get(doc, "kcv"));
	json_int_t k = json_integer_value(json_object_get(doc, "k"));
	kos_share shares[KOS_SHAMIR_MAX_SHARES];
	uint8_t kcv[KOS_KCV_LEN];
	uint8_t *secret = NULL;
	size_t got = 0, slen = 0, i;
	kos_rv rv = KOS_OK, last = KOS_OK;

	memset(shares, 0, sizeof(shares));
	if (!json_is_array(refs) || k < KOS_SHAMIR_MIN_THRESHOLD ||
	    k > (json_int_t)json_array_size(refs) || kcv_hex == NULL ||
	    strlen(kcv_hex) != 2 * KOS_KCV_LEN ||
	    kos_hex_decode(kcv_hex, 2 * KOS_KCV_LEN, kcv) != KOS_OK)
		return kos_error_set(KOS_E_PARSE, "kosd's share references are malformed "
						  "(refs, k and kcv needed)");
	json_array_foreach(refs, i, ref) {
		json_t *grant = json_object_get(ref, "grant"), *ans = NULL, *line;
		const char *id = json_string_value(json_object_get(ref, "share_id"));
		json_t *kms = json_object_get(ref, "kms");
		json_int_t x = json_integer_value(json_object_get(ref, "x"));
		struct conn *srv = NULL;
		kos_buf b;

		if ((json_int_t)got == k)
			break;
		if (!json_is_string(grant) || id == NULL || x < 1 || x > 255 ||
		    (kms != NULL && !json_is_string(kms))) {
			last = kos_error_set(KOS_E_PARSE, "a share reference is malformed");
			continue;
		}
		/* where kosd says the share is: a KMS front, or (no "kms") kosd */
		srv = kms_conn(c, json_string_value(kms), &last);
		if (srv == NULL)
			continue;
		body_init(&b);
		body_str(&b, "share_id", id);
		body_close(&b);
		last = b.err != KOS_OK ? kos_error_set(KOS_E_NOMEM, "out of memory")
			     : http_to(c, srv, "/v1/shares/fetch", &b, json_string_value(grant), &ans);
		body_free(&b);
		line = json_object_get(ans, "share");
		if (last == KOS_OK && !json_is_string(line))
			last = kos_error_set(KOS_E_PARSE, "the KMS front sent no share");
		if (last == KOS_OK)
			last = kos_share_parse(json_string_value(line), json_string_length(line),
					       &shares[got]);
		if (last == KOS_OK && shares[got].x != (uint8_t)x) {
			kos_shares_clear(&shares[got], 1);
			last = kos_error_set(KOS_E_INTEGRITY, "share %s came with the wrong x", id);
		}
		wipe_json_string(line);
		json_decref(ans);
		if (last == KOS_OK) {
			got++;
			c->stats.shares_fetched++;
			if (srv != &c->main)
				c->stats.shares_from_fronts++;
		}
	}
	/* the grants are single-purpose: wipe them with the answer */
	json_array_foreach(refs, i, ref) wipe_member(ref, "grant");
	if ((json_int_t)got < k) {
		char why[256];

		snprintf(why, sizeof(why), "%s", kos_last_error());
		rv = kos_error_set(last != KOS_OK ? last : KOS_E_IO,
				   "only %zu of %lld shares could be fetched: %s", got, (long long)k,
				   why);
		goto out;
	}
	rv = kos_shamir_combine(shares, got, &secret, &slen);
	if (rv != KOS_OK)
		goto out;
	if (slen != KOS_DEK_LEN || !kcv_ok(secret, kcv)) {
		rv = kos_error_set(KOS_E_INTEGRITY,
				   "the shares do not rebuild the key (key check value mismatch)");
		goto out;
	}
	memcpy(dek, secret, KOS_DEK_LEN);
out:
	kos_secret_free(secret, slen);
	kos_shares_clear(shares, got);
	return rv;
}

/* The low path: POST /v1/decrypt. */
static kos_rv decrypt_server(kos_client *c, const char *context, const uint8_t *env,
			     size_t env_len, uint8_t **pt, size_t *len)
{
	kos_buf b;
	json_t *doc = NULL;
	kos_rv rv;

	body_init(&b);
	(void)kos_buf_reserve(&b,
			      env_len / 3 * 4 + 64 + (context != NULL ? 2 * strlen(context) : 0),
			      NULL);
	body_b64(&b, "envelope", env, env_len);
	body_str(&b, "context", context);
	body_close(&b);
	if (b.err != KOS_OK)
		rv = kos_error_set(KOS_E_NOMEM, "out of memory");
	else
		rv = http(c, "/v1/decrypt", &b, c->cred, &doc);
	body_free(&b);
	if (rv == KOS_OK) {
		size_t n = 0;

		rv = answer_b64(doc, "plaintext", pt, &n);
		/* kos_secret_free(*pt, *len) must wipe it all: hand out the
		 * exact length, the spare byte stays zero */
		*len = n;
	}
	json_decref(doc);
	return rv;
}

/* What the caller's tier gives of DEK name at version (0: the current
 * one): the DEK, from the cache or delivered (high: cached for the time
 * kosd names) or rebuilt from shares (medium), into dek with its version
 * in *got; or *server set when only kosd may use it (low). */
static kos_rv key_fetch(kos_client *c, const char *name, uint32_t version,
			uint8_t dek[KOS_DEK_LEN], uint32_t *got, bool *server)
{
	char path[32 + KOS_KEY_NAME_MAX];
	struct dek_slot *slot;
	kos_buf b;
	json_t *doc = NULL;
	const char *delivery;
	json_int_t v;
	uint8_t *d = NULL;
	size_t dlen = 0;
	kos_rv rv;

	*server = false;
	*got = 0;
	slot = version != 0 ? cache_find(c, name, version) : cache_find_current(c, name);
	if (slot != NULL) {
		c->stats.cache_hits++;
		c->stats.last_path = KOS_CLIENT_PATH_CACHE;
		memcpy(dek, slot->dek, KOS_DEK_LEN);
		*got = slot->version;
		return KOS_OK;
	}
	rv = ensure_credential(c);
	if (rv != KOS_OK)
		return rv;
	body_init(&b);
	if (version != 0)
		body_uint(&b, "version", version);
	body_close(&b);
	if (b.err != KOS_OK) {
		body_free(&b);
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	}
	snprintf(path, sizeof(path), "/v1/keys/%s/request", name);
	rv = http(c, path, &b, c->cred, &doc);
	body_free(&b);
	if (rv != KOS_OK)
		goto out;
	c->stats.key_requests++;
	delivery = json_string_value(json_object_get(doc, "delivery"));
	v = json_integer_value(json_object_get(doc, "version"));
	if (v < 1 || v > UINT32_MAX || (version != 0 && v != (json_int_t)version)) {
		rv = kos_error_set(KOS_E_PARSE, "kosd's key answer names another version");
		goto out;
	}
	*got = (uint32_t)v;
	if (delivery == NULL) {
		rv = kos_error_set(KOS_E_PARSE, "kosd's key answer names no delivery");
	} else if (strcmp(delivery, "dek") == 0) {
		json_int_t secs = json_integer_value(json_object_get(doc, "cache_seconds"));

		rv = answer_b64(doc, "dek", &d, &dlen);
		if (rv == KOS_OK && dlen != KOS_DEK_LEN)
			rv = kos_error_set(KOS_E_PARSE, "kosd sent a DEK of %zu bytes", dlen);
		if (rv != KOS_OK)
			goto out;
		memcpy(dek, d, KOS_DEK_LEN);
		c->stats.deks_received++;
		c->stats.last_path = KOS_CLIENT_PATH_DEK;
		if (secs > 0)
			cache_put(c, name, *got, dek, secs > 86400 ? 86400 : (kos_usec)secs,
				  version == 0);
	} else if (strcmp(delivery, "shares") == 0) {
		rv = dek_from_shares(c, doc, dek);
		if (rv == KOS_OK)
			c->stats.last_path = KOS_CLIENT_PATH_SHARES;
	} else if (strcmp(delivery, "server") == 0) {
		c->stats.last_path = KOS_CLIENT_PATH_SERVER;
		*server = true;
	} else {
		rv = kos_error_set(KOS_E_PARSE, "kosd's key answer names an unknown delivery");
	}
out:
	if (doc != NULL)
		wipe_member(doc, "dek");
	json_decref(doc);
	kos_secret_free(d, dlen + 1);
	if (rv != KOS_OK)
		OPENSSL_cleanse(dek, KOS_DEK_LEN);
	return rv;
}

kos_rv kos_client_decrypt(kos_client *c, const char *context, const uint8_t *env, size_t env_len,
			  uint8_t **pt, size_t *len)
{
	kos_envelope_info info;
	uint8_t dek[KOS_DEK_LEN];
	uint32_t got;
	bool server;
	kos_rv rv;

	if (c == NULL || env == NULL || pt == NULL || len == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_client_decrypt: bad arguments");
	*pt = NULL;
	*len = 0;
	rv = kos_envelope_parse(env, env_len, &info);
	if (rv != KOS_OK)
		return rv;
	/* an envelope always names its version, 1 or more */
	rv = key_fetch(c, info.key_name, info.key_version, dek, &got, &server);
	if (rv == KOS_OK && server)
		rv = decrypt_server(c, context, env, env_len, pt, len);
	else if (rv == KOS_OK)
		rv = kos_envelope_open(dek, env, env_len, context, pt, len);
	OPENSSL_cleanse(dek, sizeof(dek));
	return rv;
}

/* An answer's "version": 1..UINT32_MAX, and want when want is not 0. */
static kos_rv answer_version(json_t *doc, uint32_t want, uint32_t *out)
{
	json_t *v = json_object_get(doc, "version");
	json_int_t n = json_integer_value(v);

	if (!json_is_integer(v) || n < 1 || n > UINT32_MAX || (want != 0 && n != (json_int_t)want))
		return kos_error_set(KOS_E_PARSE, "kosd's answer names no version, or another");
	*out = (uint32_t)n;
	return KOS_OK;
}

/* --- rewrap --------------------------------------------------------------- */

void kos_client_rewrap_clear(kos_client_rewrap_item *items, size_t n)
{
	size_t i;

	for (i = 0; items != NULL && i < n; i++) {
		kos_free(items[i].out);
		items[i].out = NULL;
		items[i].out_len = 0;
		items[i].rv = KOS_OK;
		items[i].code[0] = '\0';
		items[i].message[0] = '\0';
		items[i].rewrapped = 0;
		items[i].version = 0;
	}
}

/* {"envelopes": [{"envelope": B64, "context": S?}, ...]}: envelopes are
 * ciphertext, the context is escaped by jansson. */
static void rewrap_body(kos_buf *b, const kos_client_rewrap_item *items, size_t n)
{
	size_t i, len;
	char *t;

	body_raw(b, "\"envelopes\":[", 13);
	for (i = 0; i < n && b->err == KOS_OK; i++) {
		t = b64_encode(items[i].env, items[i].env_len, &len);
		if (t == NULL) {
			kos_buf_fail(b, KOS_E_NOMEM);
			break;
		}
		body_raw(b, i == 0 ? "{\"envelope\":\"" : ",{\"envelope\":\"", i == 0 ? 13 : 14);
		body_raw(b, t, len);
		body_raw(b, "\"", 1);
		kos_secret_free(t, len + 1);
		body_str(b, "context", items[i].context);
		body_raw(b, "}", 1);
	}
	body_raw(b, "]", 1);
}

/* The kos_rv of an item's error code (kos-api(7), the rewrap route). */
static kos_rv rewrap_rv(const char *code)
{
	static const struct {
		const char *code;
		kos_rv rv;
	} map[] = {
		{ "integrity", KOS_E_INTEGRITY }, { "retired", KOS_E_NOTFOUND },
		{ "not_found", KOS_E_NOTFOUND },  { "wrong_key", KOS_E_INVALID },
		{ "bad_request", KOS_E_INVALID }, { "bad_base64", KOS_E_INVALID },
		{ "wrong_type", KOS_E_INVALID },  { "missing_field", KOS_E_INVALID },
		{ "unavailable", KOS_E_BUSY },
	};
	size_t i;

	for (i = 0; i < KOS_ARRAY_SIZE(map); i++)
		if (strcmp(code, map[i].code) == 0)
			return map[i].rv;
	return KOS_E_INTERNAL;
}

/* One entry of "results" into it; KOS_E_PARSE when kosd's answer is not
 * of the shape kos-api(7) gives. */
static kos_rv rewrap_result(json_t *o, kos_client_rewrap_item *it)
{
	json_t *err = json_object_get(o, "error"), *rw = json_object_get(o, "rewrapped");
	uint8_t *e = NULL;
	size_t elen = 0;
	kos_rv rv;

	if (!json_is_object(o))
		return kos_error_set(KOS_E_PARSE, "kosd's rewrap answer holds a result that is not "
						  "an object");
	if (json_is_string(err)) {
		const char *msg = json_string_value(json_object_get(o, "message"));

		snprintf(it->code, sizeof(it->code), "%s", json_string_value(err));
		snprintf(it->message, sizeof(it->message), "%s", msg != NULL ? msg : it->code);
		it->rv = rewrap_rv(it->code);
		return KOS_OK;
	}
	if (!json_is_boolean(rw))
		return kos_error_set(KOS_E_PARSE, "kosd's rewrap answer holds a result without "
						  "\"rewrapped\"");
	rv = answer_version(o, 0, &it->version);
	if (rv != KOS_OK || !json_is_true(rw))
		return rv;
	rv = answer_b64(o, "envelope", &e, &elen);
	if (rv != KOS_OK)
		return rv;
	/* kos_free() memory: an envelope is no secret */
	it->out = e;
	it->out_len = elen;
	it->rewrapped = 1;
	return KOS_OK;
}

kos_rv kos_client_rewrap(kos_client *c, const char *name, kos_client_rewrap_item *items, size_t n,
			 uint32_t *current)
{
	char path[32 + KOS_KEY_NAME_MAX];
	json_t *doc = NULL, *res;
	uint32_t cur = 0;
	size_t i, need = 64;
	kos_buf b;
	kos_rv rv;

	if (current != NULL)
		*current = 0;
	if (c == NULL || items == NULL || n == 0)
		return kos_error_set(KOS_E_INVALID, "kos_client_rewrap: bad arguments");
	if ((rv = check_name(name)) != KOS_OK)
		return rv;
	if (n > KOS_CLIENT_REWRAP_MAX)
		return kos_error_set(KOS_E_RANGE, "at most %d envelopes per rewrap, not %zu",
				     KOS_CLIENT_REWRAP_MAX, n);
	for (i = 0; i < n; i++) {
		if (items[i].env == NULL)
			return kos_error_set(KOS_E_INVALID, "kos_client_rewrap: item %zu has no "
							    "envelope",
					     i);
		items[i].out = NULL;
	}
	kos_client_rewrap_clear(items, n);
	rv = ensure_credential(c);
	if (rv != KOS_OK)
		return rv;
	body_init(&b);
	for (i = 0; i < n; i++)
		need += items[i].env_len / 3 * 4 + 40 +
			(items[i].context != NULL ? 2 * strlen(items[i].context) : 0);
	(void)kos_buf_reserve(&b, need, NULL);
	rewrap_body(&b, items, n);
	body_close(&b);
	if (b.err != KOS_OK) {
		rv = kos_error_set(b.err == KOS_E_RANGE ? KOS_E_RANGE : KOS_E_NOMEM,
				   b.err == KOS_E_RANGE ? "the envelopes make a request larger than "
							  "the client sends"
							: "out of memory");
		goto out;
	}
	snprintf(path, sizeof(path), "/v1/keys/%s/rewrap", name);
	rv = http(c, path, &b, c->cred, &doc);
	if (rv != KOS_OK)
		goto out;
	res = json_object_get(doc, "results");
	if (!json_is_array(res) || json_array_size(res) != n) {
		rv = kos_error_set(KOS_E_PARSE, "kosd's rewrap answer does not hold %zu results", n);
		goto out;
	}
	rv = answer_version(doc, 0, &cur);
	for (i = 0; rv == KOS_OK && i < n; i++)
		rv = rewrap_result(json_array_get(res, i), &items[i]);
	if (rv != KOS_OK) {
		kos_client_rewrap_clear(items, n);
		goto out;
	}
	if (current != NULL)
		*current = cur;
out:
	json_decref(doc);
	body_free(&b);
	return rv;
}

/* POST /v1/keys/NAME/sign, the one request builder of every signing call:
 * "data" or (opts->digest) "digest"; "alg", "hash", "salt_len" and
 * "version" are sent only when they differ from the defaults, so a plain
 * kos_client_sign() asks exactly what it always did. named_hash: "hash" is
 * sent even for SHA-256 (what kos_client_sign_hash() always did). */
static kos_rv sign_req(kos_client *c, const char *what, const char *name,
		       const kos_client_sign_opts *o, bool named_hash, const uint8_t *in,
		       size_t len, uint8_t **sig, size_t *sig_len, uint32_t *version_out)
{
	char path[32 + KOS_KEY_NAME_MAX];
	kos_buf b;
	json_t *doc = NULL;
	uint8_t *s = NULL;
	size_t slen = 0;
	uint32_t got = 0;
	kos_rv rv;

	if (version_out != NULL)
		*version_out = 0;
	if (c == NULL || o == NULL || sig == NULL || sig_len == NULL || (in == NULL && len > 0))
		return kos_error_set(KOS_E_INVALID, "%s: bad arguments", what);
	*sig = NULL;
	*sig_len = 0;
	if ((rv = check_name(name)) != KOS_OK)
		return rv;
	if ((unsigned)o->alg >= KOS_SIG_ALG_COUNT)
		return kos_error_set(KOS_E_INVALID, "%s: unknown signature algorithm %d", what,
				     (int)o->alg);
	if (kos_hash_len(o->hash) == 0)
		return kos_error_set(KOS_E_INVALID, "%s: unknown hash %d", what, (int)o->hash);
	if (o->digest && len != kos_hash_len(o->hash))
		return kos_error_set(KOS_E_INVALID, "%s: a %s digest is %zu bytes, not %zu", what,
				     kos_hash_name(o->hash), kos_hash_len(o->hash), len);
	if (o->salt_len != KOS_SIG_SALT_DEFAULT && o->salt_len < 0)
		return kos_error_set(KOS_E_INVALID, "%s: a negative salt length", what);
	rv = ensure_credential(c);
	if (rv != KOS_OK)
		return rv;
	body_init(&b);
	body_b64(&b, o->digest ? "digest" : "data", in != NULL ? in : (const uint8_t *)"", len);
	if (o->alg != KOS_SIG_DEFAULT)
		body_str(&b, "alg", kos_sig_alg_name(o->alg));
	/* a digest always names its hash: kosd cannot tell */
	if (named_hash || o->digest || o->hash != KOS_HASH_SHA256)
		body_str(&b, "hash", kos_hash_name(o->hash));
	if (o->salt_len != KOS_SIG_SALT_DEFAULT)
		body_uint(&b, "salt_len", (uint32_t)o->salt_len);
	if (o->version != 0)
		body_uint(&b, "version", o->version);
	body_close(&b);
	if (b.err != KOS_OK) {
		rv = kos_error_set(KOS_E_NOMEM, "out of memory");
		goto out;
	}
	snprintf(path, sizeof(path), "/v1/keys/%s/sign", name);
	rv = http(c, path, &b, c->cred, &doc);
	if (rv == KOS_OK)
		rv = answer_version(doc, o->version, &got);
	if (rv == KOS_OK)
		rv = answer_b64(doc, "signature", &s, &slen);
	if (rv == KOS_OK) {
		*sig = s;
		*sig_len = slen;
		s = NULL;
		if (version_out != NULL)
			*version_out = got;
	}
out:
	kos_secret_free(s, slen + 1);
	json_decref(doc);
	body_free(&b);
	return rv;
}

kos_rv kos_client_sign_ex(kos_client *c, const char *name, const kos_client_sign_opts *opts,
			  const uint8_t *data, size_t len, uint8_t **sig, size_t *sig_len,
			  uint32_t *version_out)
{
	return sign_req(c, "kos_client_sign_ex", name, opts, false, data, len, sig, sig_len,
			version_out);
}

kos_rv kos_client_sign(kos_client *c, const char *name, kos_sig_alg alg, const uint8_t *data,
		       size_t len, uint8_t **sig, size_t *sig_len)
{
	kos_client_sign_opts o = KOS_CLIENT_SIGN_OPTS_INIT;

	o.alg = alg;
	return sign_req(c, "kos_client_sign", name, &o, false, data, len, sig, sig_len, NULL);
}

kos_rv kos_client_sign_hash(kos_client *c, const char *name, kos_sig_alg alg, kos_hash hash,
			    int salt_len, const uint8_t *data, size_t len, uint8_t **sig,
			    size_t *sig_len)
{
	kos_client_sign_opts o = KOS_CLIENT_SIGN_OPTS_INIT;

	o.alg = alg;
	o.hash = hash;
	o.salt_len = salt_len;
	return sign_req(c, "kos_client_sign_hash", name, &o, true, data, len, sig, sig_len, NULL);
}

kos_rv kos_client_sign_digest(kos_client *c, const char *name, kos_sig_alg alg, kos_hash hash,
			      int salt_len, const uint8_t *digest, size_t len, uint8_t **sig,
			      size_t *sig_len)
{
	kos_client_sign_opts o = KOS_CLIENT_SIGN_OPTS_INIT;

	o.alg = alg;
	o.hash = hash;
	o.salt_len = salt_len;
	o.digest = 1;
	return sign_req(c, "kos_client_sign_digest", name, &o, true, digest, len, sig, sig_len,
			NULL);
}

kos_rv kos_client_pubkey_at(kos_client *c, const char *name, uint32_t version, char **pem,
			    uint32_t *version_out)
{
	char path[48 + KOS_KEY_NAME_MAX];
	json_t *doc = NULL;
	uint32_t got = 0;
	const char *p;
	kos_rv rv;

	if (version_out != NULL)
		*version_out = 0;
	if (c == NULL || pem == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_client_pubkey: bad arguments");
	*pem = NULL;
	if ((rv = check_name(name)) != KOS_OK)
		return rv;
	rv = ensure_credential(c);
	if (rv != KOS_OK)
		return rv;
	if (version != 0)
		snprintf(path, sizeof(path), "/v1/keys/%s/pubkey?version=%" PRIu32, name, version);
	else
		snprintf(path, sizeof(path), "/v1/keys/%s/pubkey", name);
	rv = http(c, path, NULL, c->cred, &doc);
	if (rv != KOS_OK)
		return rv;
	p = json_string_value(json_object_get(doc, "pem"));
	if (p == NULL)
		rv = kos_error_set(KOS_E_PARSE, "kosd's answer has no \"pem\"");
	else
		rv = answer_version(doc, version, &got);
	if (rv == KOS_OK && (*pem = kos_strdup(p)) == NULL)
		rv = kos_error_set(KOS_E_NOMEM, "out of memory");
	if (rv == KOS_OK && version_out != NULL)
		*version_out = got;
	json_decref(doc);
	return rv;
}

kos_rv kos_client_pubkey(kos_client *c, const char *name, char **pem)
{
	return kos_client_pubkey_at(c, name, 0, pem, NULL);
}

/* --- RSA decryption inside kosd's HSM ---------------------------------- */

kos_rv kos_client_rsa_decrypt(kos_client *c, const char *name, const kos_client_rsa_opts *opts,
			      const uint8_t *ct, size_t len, uint8_t **pt, size_t *pt_len)
{
	char path[48 + KOS_KEY_NAME_MAX];
	json_t *doc = NULL;
	uint32_t got = 0;
	kos_buf b;
	kos_rv rv;

	if (c == NULL || opts == NULL || ct == NULL || len == 0 || pt == NULL || pt_len == NULL ||
	    (opts->label == NULL && opts->label_len > 0))
		return kos_error_set(KOS_E_INVALID, "kos_client_rsa_decrypt: bad arguments");
	*pt = NULL;
	*pt_len = 0;
	if ((rv = check_name(name)) != KOS_OK)
		return rv;
	if (opts->padding != KOS_RSA_PAD_PKCS1 && opts->padding != KOS_RSA_PAD_OAEP)
		return kos_error_set(KOS_E_INVALID, "kos_client_rsa_decrypt: unknown padding %d",
				     (int)opts->padding);
	if (opts->padding == KOS_RSA_PAD_OAEP &&
	    (kos_hash_len(opts->hash) == 0 || kos_hash_len(opts->mgf1) == 0))
		return kos_error_set(KOS_E_INVALID, "kos_client_rsa_decrypt: unknown OAEP hash");
	if (opts->label_len > KOS_RSA_LABEL_MAX)
		return kos_error_set(KOS_E_RANGE, "an OAEP label is at most %d bytes",
				     KOS_RSA_LABEL_MAX);
	rv = ensure_credential(c);
	if (rv != KOS_OK)
		return rv;
	body_init(&b);
	(void)kos_buf_reserve(&b, (len + opts->label_len) / 3 * 4 + 160, NULL);
	body_b64(&b, "ciphertext", ct, len);
	if (opts->padding == KOS_RSA_PAD_PKCS1) {
		body_str(&b, "padding", "pkcs1");
	} else {
		body_str(&b, "padding", "oaep");
		body_str(&b, "hash", kos_hash_name(opts->hash));
		body_str(&b, "mgf1", kos_hash_name(opts->mgf1));
		if (opts->label_len > 0)
			body_b64(&b, "label", opts->label, opts->label_len);
	}
	if (opts->version != 0)
		body_uint(&b, "version", opts->version);
	body_close(&b);
	if (b.err != KOS_OK) {
		body_free(&b);
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	}
	snprintf(path, sizeof(path), "/v1/keys/%s/rsa/decrypt", name);
	rv = http(c, path, &b, c->cred, &doc);
	body_free(&b);
	if (rv == KOS_OK)
		rv = answer_version(doc, opts->version, &got);
	if (rv == KOS_OK) {
		size_t n = 0;

		/* the spare byte answer_b64() allocates stays zero: the exact
		 * length frees it all */
		rv = answer_b64(doc, "plaintext", pt, &n);
		*pt_len = n;
	}
	json_decref(doc);
	return rv;
}

/* --- AES-256-GCM with the caller's parameters -------------------------- */

/* The low path: POST /v1/keys/NAME/gcm/{encrypt,decrypt}. */
static kos_rv gcm_server(kos_client *c, bool enc, const char *name, uint32_t version,
			 const kos_client_gcm *p, const uint8_t *in, size_t len, uint8_t **out,
			 size_t *out_len, uint32_t *got)
{
	char path[48 + KOS_KEY_NAME_MAX];
	json_t *doc = NULL;
	json_int_t v;
	kos_buf b;
	kos_rv rv;

	body_init(&b);
	(void)kos_buf_reserve(&b, (len + p->aad_len) / 3 * 4 + 128, NULL);
	body_b64(&b, enc ? "plaintext" : "ciphertext", in != NULL ? in : (const uint8_t *)"", len);
	body_b64(&b, "iv", p->iv, p->iv_len);
	if (p->aad_len > 0)
		body_b64(&b, "aad", p->aad, p->aad_len);
	body_uint(&b, "tag_len", (uint32_t)p->tag_len);
	if (version != 0)
		body_uint(&b, "version", version);
	body_close(&b);
	if (b.err != KOS_OK) {
		body_free(&b);
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	}
	snprintf(path, sizeof(path), "/v1/keys/%s/gcm/%s", name, enc ? "encrypt" : "decrypt");
	rv = http(c, path, &b, c->cred, &doc);
	body_free(&b);
	if (rv == KOS_OK) {
		v = json_integer_value(json_object_get(doc, "version"));
		if (v < 1 || v > UINT32_MAX || (version != 0 && v != (json_int_t)version))
			rv = kos_error_set(KOS_E_PARSE, "kosd's answer names another version");
		else
			*got = (uint32_t)v;
	}
	if (rv == KOS_OK) {
		size_t n = 0;

		/* the spare byte answer_b64() allocates stays zero: the exact
		 * length frees it all */
		rv = answer_b64(doc, enc ? "ciphertext" : "plaintext", out, &n);
		*out_len = n;
	}
	json_decref(doc);
	return rv;
}

/* The local path: GCM here with the DEK (high, medium). */
static kos_rv gcm_local(kos_client *c, bool enc, const char *name, uint32_t version,
			const uint8_t dek[KOS_DEK_LEN], const kos_client_gcm *p, const uint8_t *in,
			size_t len, uint8_t **out, size_t *out_len)
{
	size_t n = enc ? len : len - p->tag_len;
	uint8_t *buf;
	kos_rv rv;

	if (c->gcm == NULL && (c->gcm = kos_aead_ctx_new(NULL)) == NULL)
		return kos_error_set(KOS_E_CRYPTO, "AES-256-GCM is not available");
	buf = malloc(n + (enc ? p->tag_len : 1));
	if (buf == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	/* the handle's context keeps no key schedule of the DEK after */
	if (enc)
		rv = kos_aead_seal_tag(c->gcm, dek, p->iv, p->aad, p->aad_len, in, len, buf,
				       buf + len, p->tag_len);
	else
		rv = kos_aead_open_tag(c->gcm, dek, p->iv, p->aad, p->aad_len, in, n, in + n,
				       p->tag_len, buf);
	if (rv != KOS_OK) {
		kos_secret_free(buf, n + (enc ? p->tag_len : 1));
		if (rv == KOS_E_INTEGRITY)
			return kos_error_set(KOS_E_INTEGRITY,
					     "AES-GCM tag for %s version %" PRIu32
					     " does not verify (wrong version, IV, additional data "
					     "or tag, or tampered)",
					     name, version);
		return kos_error_set(KOS_E_CRYPTO, "AES-256-GCM %s failed",
				     enc ? "encryption" : "decryption");
	}
	*out = buf;
	*out_len = enc ? len + p->tag_len : n;
	return KOS_OK;
}

static kos_rv gcm_run(kos_client *c, bool enc, const char *name, uint32_t version,
		      const kos_client_gcm *p, const uint8_t *in, size_t len, uint8_t **out,
		      size_t *out_len, uint32_t *version_out)
{
	uint8_t dek[KOS_DEK_LEN];
	uint32_t got = 0;
	bool server = false;
	kos_rv rv;

	if (c == NULL || p == NULL || out == NULL || out_len == NULL || (in == NULL && len > 0) ||
	    p->iv == NULL || (p->aad == NULL && p->aad_len > 0))
		return kos_error_set(KOS_E_INVALID, "kos_client_gcm_%s: bad arguments",
				     enc ? "encrypt" : "decrypt");
	*out = NULL;
	*out_len = 0;
	if (version_out != NULL)
		*version_out = 0;
	if ((rv = check_name(name)) != KOS_OK)
		return rv;
	if (!enc && version == 0)
		return kos_error_set(KOS_E_INVALID, "GCM decryption needs the key version");
	/* the same checks and words as kosd's, before anything is asked */
	rv = kos_aead_gcm_check(p->iv_len, p->aad_len, p->tag_len, len, !enc);
	if (rv != KOS_OK)
		return rv;
	rv = key_fetch(c, name, enc ? 0 : version, dek, &got, &server);
	if (rv == KOS_OK && server)
		rv = gcm_server(c, enc, name, enc ? 0 : version, p, in, len, out, out_len, &got);
	else if (rv == KOS_OK)
		rv = gcm_local(c, enc, name, got, dek, p, in, len, out, out_len);
	OPENSSL_cleanse(dek, sizeof(dek));
	if (rv == KOS_OK && version_out != NULL)
		*version_out = got;
	return rv;
}

kos_rv kos_client_gcm_encrypt(kos_client *c, const char *name, const kos_client_gcm *p,
			      const uint8_t *pt, size_t len, uint8_t **ct, size_t *ct_len,
			      uint32_t *version)
{
	return gcm_run(c, true, name, 0, p, pt, len, ct, ct_len, version);
}

kos_rv kos_client_gcm_decrypt(kos_client *c, const char *name, uint32_t version,
			      const kos_client_gcm *p, const uint8_t *ct, size_t ct_len,
			      uint8_t **pt, size_t *len)
{
	return gcm_run(c, false, name, version, p, ct, ct_len, pt, len, NULL);
}

/* --- certificates beside signing keys -------------------------------- */

kos_rv kos_client_cert_get(kos_client *c, const char *name, uint32_t version, uint8_t **der,
			   size_t *len)
{
	char path[64 + KOS_KEY_NAME_MAX];
	json_t *doc = NULL;
	uint8_t *d = NULL;
	size_t n = 0;
	kos_rv rv;

	if (c == NULL || der == NULL || len == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_client_cert_get: bad arguments");
	*der = NULL;
	*len = 0;
	if ((rv = check_name(name)) != KOS_OK)
		return rv;
	rv = ensure_credential(c);
	if (rv != KOS_OK)
		return rv;
	if (version != 0)
		snprintf(path, sizeof(path), "/v1/keys/%s/certificate?version=%" PRIu32, name,
			 version);
	else
		snprintf(path, sizeof(path), "/v1/keys/%s/certificate", name);
	rv = http(c, path, NULL, c->cred, &doc);
	if (rv == KOS_OK)
		rv = answer_b64(doc, "der", &d, &n);
	if (rv == KOS_OK && n == 0) {
		kos_secret_free(d, n + 1);
		rv = kos_error_set(KOS_E_PARSE, "kosd sent an empty certificate");
	}
	if (rv == KOS_OK) {
		*der = d;
		*len = n;
	}
	json_decref(doc);
	return rv;
}

kos_rv kos_client_cert_set(kos_client *c, const char *name, uint32_t version, const uint8_t *der,
			   size_t len)
{
	char path[48 + KOS_KEY_NAME_MAX];
	json_t *doc = NULL;
	kos_buf b;
	kos_rv rv;

	if (c == NULL || der == NULL || len == 0)
		return kos_error_set(KOS_E_INVALID, "kos_client_cert_set: bad arguments");
	if ((rv = check_name(name)) != KOS_OK)
		return rv;
	rv = ensure_credential(c);
	if (rv != KOS_OK)
		return rv;
	body_init(&b);
	(void)kos_buf_reserve(&b, len / 3 * 4 + 64, NULL);
	body_b64(&b, "der", der, len);
	if (version != 0)
		body_uint(&b, "version", version);
	body_close(&b);
	if (b.err != KOS_OK) {
		body_free(&b);
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	}
	snprintf(path, sizeof(path), "/v1/keys/%s/certificate", name);
	rv = http(c, path, &b, c->cred, &doc);
	body_free(&b);
	json_decref(doc);
	return rv;
}

void kos_client_get_stats(const kos_client *c, kos_client_stats *stats)
{
	if (stats == NULL)
		return;
	if (c == NULL)
		memset(stats, 0, sizeof(*stats));
	else
		*stats = c->stats;
}

const char *kos_client_last_code(const kos_client *c)
{
	return c != NULL ? c->last_code : "";
}

kos_client_refusal kos_client_last_refusal(const kos_client *c)
{
	return c != NULL ? c->last_refusal : KOS_CLIENT_REFUSAL_NONE;
}

/* --- any route ------------------------------------------------------------ */

/* Wipes every string of an answer in place before it is released: a generic
 * answer may hold an enrollment secret or a credential anywhere. */
static void wipe_json_strings(json_t *v)
{
	const char *key;
	json_t *m;
	size_t i;

	if (json_is_string(v))
		wipe_json_string(v);
	else if (json_is_object(v))
		json_object_foreach(v, key, m) wipe_json_strings(m);
	else if (json_is_array(v))
		json_array_foreach(v, i, m) wipe_json_strings(m);
}

kos_rv kos_client_call(kos_client *c, const char *method, const char *path, const char *json_in,
		       char **json_out)
{
	json_t *doc = NULL, *in = NULL;
	char *txt = NULL;
	size_t n, q;
	kos_rv rv;
	kos_buf b;

	kos_buf_init(&b, BODY_MAX);
	if (json_out != NULL)
		*json_out = NULL;
	if (c == NULL || method == NULL || path == NULL || json_out == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_client_call: bad arguments");
	n = strlen(path);
	/* a path of the API only: no escapes, no dot segments; a query of
	 * plain name=value pairs may follow (?version=V), nothing that would
	 * need escaping or could reach another route */
	q = strspn(path, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-/@");
	if (q < n && path[q] == '?')
		q += 1 + strspn(path + q + 1,
				"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-=&");
	if (n < 5 || n > 200 || strncmp(path, "/v1/", 4) != 0 || strstr(path, "..") != NULL ||
	    strstr(path, "//") != NULL || q != n)
		return kos_error_set(KOS_E_INVALID, "kos_client_call: '%.64s' is not a route of the "
						    "API (/v1/...)",
				     path);
	if (strcmp(method, "GET") == 0) {
		if (json_in != NULL)
			return kos_error_set(KOS_E_INVALID, "kos_client_call: GET takes no body");
	} else if (strcmp(method, "POST") != 0) {
		return kos_error_set(KOS_E_INVALID, "kos_client_call: method GET or POST");
	}
	if (json_in != NULL) {
		/* checked here so a typo is the caller's error, not kosd's 400 */
		in = json_loads(json_in, JSON_REJECT_DUPLICATES, NULL);
		if (!json_is_object(in)) {
			json_decref(in);
			return kos_error_set(KOS_E_INVALID, "kos_client_call: the body is not a "
							    "JSON object");
		}
		wipe_json_strings(in);
		json_decref(in);
	}
	rv = ensure_credential(c);
	if (rv != KOS_OK)
		return rv;
	if (strcmp(method, "POST") == 0) {
		body_raw(&b, json_in != NULL ? json_in : "{}", strlen(json_in != NULL ? json_in : "{}"));
		if (b.err != KOS_OK) {
			rv = kos_error_set(KOS_E_NOMEM, "out of memory");
			goto out;
		}
	}
	rv = http(c, path, strcmp(method, "POST") == 0 ? &b : NULL, c->cred, &doc);
	if (rv != KOS_OK)
		goto out;
	txt = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (txt == NULL) {
		rv = kos_error_set(KOS_E_NOMEM, "out of memory");
		goto out;
	}
	n = strlen(txt);
	*json_out = malloc(n + 1);
	if (*json_out == NULL)
		rv = kos_error_set(KOS_E_NOMEM, "out of memory");
	else
		memcpy(*json_out, txt, n + 1);
	OPENSSL_cleanse(txt, n);
	free(txt);
out:
	wipe_json_strings(doc);
	json_decref(doc);
	body_free(&b);
	return rv;
}
