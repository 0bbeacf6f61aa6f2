/* Credentials: issuance (HSM-signed JWS, ES256), enrollment, refresh,
 * verification with its cache, and revocation (kos-credential(5)).
 *
 * Signing: the JWS is assembled here: base64url(header) "." base64url(claims),
 * hashed with SHA-256 and signed with CKM_ECDSA by the CA key in the ca
 * token, whose raw r||s is the JWS ES256 signature as it stands.
 *
 * Verification trusts nothing the token says about how to verify it: the
 * algorithm is kos's, ES256, and the header must say so; the kid must name a
 * CA key this store knows, and the signature is checked with OpenSSL on
 * that key, parsed once when the key entered the in-memory copy (kos/ca.h).
 * The header must be the one kos writes, {"alg":"ES256","typ":"JWT","kid"},
 * nothing more; header and claims are read with jansson, the segments with
 * the canonical base64url decoder (common/jws.c), so one token has one text.
 * (JOSE libraries that believe the header's alg, libjwt 1.10 among them,
 * take an HS256 token keyed with the public key's PEM text; tests/test-jose.c
 * holds kos's credentials against libjwt as a second implementation.)
 *
 * The cache holds only credentials that verified (so nobody can fill it
 * with junk): found and matched by HMAC-SHA256 of the whole text under a
 * random key of the handle (a changed byte anywhere, the signature's
 * included, misses and is verified in full), kept until exp. It never holds
 * the text: a bearer credential is not left in kosd's memory for a core
 * dump or a reader of it to replay. A hit costs an HMAC, a read lock and a
 * copy: no store access, no signature. Revocations and CA key changes
 * reach it through kos_ca_sync(), which rechecks every entry under the
 * write lock. */
#include "config.h"

#include "kos/ca.h"
#include "common/jws.h"
#include "kos/signer.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#define SEC KOS_USEC_PER_SEC
/* The cache starts afresh beyond these (entries past exp are dropped first). */
#define CACHE_MAX_ENTRIES 65536
#define CACHE_MAX_BYTES	  (64u * 1024 * 1024)
/* A JOSE header kos writes is about 80 bytes. */
#define HEADER_MAX 1024
/* NumericDate values accepted: up to the year 9999. */
#define TIME_MAX_SEC INT64_C(253402300799)

const char *kos_cred_reason_name(kos_cred_reason reason)
{
	switch (reason) {
	case KOS_CRED_VALID:
		return "valid";
	case KOS_CRED_MALFORMED:
	case KOS_CRED_BAD_ALG:
	case KOS_CRED_UNKNOWN_KID:
	case KOS_CRED_BAD_SIGNATURE:
		return "invalid credential";
	case KOS_CRED_EXPIRED:
		return "expired";
	case KOS_CRED_NOT_YET_VALID:
		return "not yet valid";
	case KOS_CRED_WRONG_ISSUER:
		return "wrong issuer";
	case KOS_CRED_WRONG_AUDIENCE:
		return "wrong audience";
	case KOS_CRED_REVOKED:
		return "revoked";
	case KOS_CRED_WRONG_CERT:
		return "certificate mismatch";
	case KOS_CRED_ERROR:
		break;
	}
	return "error";
}

void kos_cred_free(char *token)
{
	if (token != NULL)
		kos_secret_free(token, strlen(token) + 1);
}

static void format_time(kos_usec t, char *buf, size_t len)
{
	if (kos_time_format(t, buf, len) != KOS_OK)
		snprintf(buf, len, "@%lld", (long long)(t / SEC));
}

/* Sets *why and the detail "REASON: ..."; returns KOS_E_INTEGRITY. */
static kos_rv refuse(kos_cred_reason *why, kos_cred_reason r, const char *fmt, ...)
    KOS_PRINTF(3, 4);

static kos_rv refuse(kos_cred_reason *why, kos_cred_reason r, const char *fmt, ...)
{
	char detail[400];
	va_list ap;

	*why = r;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	return kos_error_set(KOS_E_INTEGRITY, "%s: %s", kos_cred_reason_name(r), detail);
}

/* --- the cache ---------------------------------------------------------- */

/* The cache's key of a token: HMAC-SHA256 under the handle's random key.
 * Keyed, so nobody who does not know the key can aim tokens at one slot or
 * make one token pass for another. */
static kos_rv token_digest(const kos_ca *ca, const char *s, size_t len, uint8_t out[32])
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	unsigned int n = 0;
	int ok = m != NULL && EVP_MD_CTX_copy_ex(m, ca->cache_inner) == 1 &&
		 EVP_DigestUpdate(m, s, len) == 1 && EVP_DigestFinal_ex(m, out, &n) == 1 &&
		 n == 32 && EVP_MD_CTX_copy_ex(m, ca->cache_outer) == 1 &&
		 EVP_DigestUpdate(m, out, 32) == 1 && EVP_DigestFinal_ex(m, out, &n) == 1 &&
		 n == 32;

	EVP_MD_CTX_free(m);
	if (!ok)
		return kos_error_set(KOS_E_CRYPTO, "HMAC-SHA256 failed");
	return KOS_OK;
}

static size_t digest_slot(const uint8_t d[32])
{
	size_t i;

	memcpy(&i, d, sizeof(i));
	return i;
}

static void entry_free(struct cache_entry *e)
{
	free(e->scope);
	memset(e, 0, sizeof(*e));
}

static size_t entry_bytes(const struct cache_entry *e)
{
	return sizeof(*e) + (e->scope != NULL ? strlen(e->scope) + 1 : 0);
}

void kos_ca_cache_clear(kos_ca *ca)
{
	size_t i;

	for (i = 0; i < ca->cap; i++)
		if (ca->slots[i].used)
			entry_free(&ca->slots[i]);
	ca->count = 0;
	ca->bytes = 0;
}

/* The entry of the token with digest d, or NULL. Caller holds ca->lock. */
static struct cache_entry *cache_find(kos_ca *ca, const uint8_t d[32])
{
	size_t mask, i;

	if (ca->cap == 0)
		return NULL;
	mask = ca->cap - 1;
	for (i = digest_slot(d) & mask; ca->slots[i].used; i = (i + 1) & mask) {
		struct cache_entry *e = &ca->slots[i];

		if (CRYPTO_memcmp(e->digest, d, 32) == 0)
			return e;
	}
	return NULL;
}

static void place(struct cache_entry *slots, size_t cap, const struct cache_entry *e)
{
	size_t mask = cap - 1, i = digest_slot(e->digest) & mask;

	while (slots[i].used)
		i = (i + 1) & mask;
	slots[i] = *e;
}

static const struct ca_pub *key_find(const kos_ca *ca, const char *kid)
{
	size_t i;

	for (i = 0; i < ca->n_keys; i++)
		if (strcmp(ca->keys[i].kid, kid) == 0)
			return &ca->keys[i];
	return NULL;
}

static int name_cmp(const void *key, const void *elem)
{
	/* a jti entry and a client entry both start with their name */
	return strcmp(key, elem);
}

/* 1 when the revocations in force cover a credential of sub with jti,
 * issued at iat. Caller holds ca->lock. */
static int is_revoked(const kos_ca *ca, const char *sub, const char *jti, kos_usec iat)
{
	const struct ca_revoked *r = &ca->revoked;
	const struct ca_revoked_client *c;

	if (r->before != 0 && iat <= r->before)
		return 1;
	if (r->n_jti > 0 && bsearch(jti, r->jti, r->n_jti, sizeof(*r->jti), name_cmp) != NULL)
		return 1;
	if (r->n_clients == 0)
		return 0;
	c = bsearch(sub, r->clients, r->n_clients, sizeof(*r->clients), name_cmp);
	return c != NULL && iat <= c->before;
}

/* Rebuilds the table with the entries keep() accepts, in a table of cap
 * slots (a power of two); the others are freed. Caller holds the write lock. */
static kos_rv cache_rebuild(kos_ca *ca, size_t cap,
			    int (*keep)(kos_ca *, const struct cache_entry *, void *), void *arg)
{
	struct cache_entry *slots = NULL;
	size_t i;

	if (cap > 0) {
		slots = calloc(cap, sizeof(*slots));
		if (slots == NULL)
			return kos_error_set(KOS_E_NOMEM, "out of memory");
	}
	ca->count = 0;
	ca->bytes = 0;
	for (i = 0; i < ca->cap; i++) {
		struct cache_entry *e = &ca->slots[i];

		if (!e->used)
			continue;
		if (slots != NULL && keep != NULL && keep(ca, e, arg) &&
		    (ca->count + 1) * 2 <= cap) {
			place(slots, cap, e);
			ca->count++;
			ca->bytes += entry_bytes(e);
		} else {
			entry_free(e);
		}
	}
	free(ca->slots);
	ca->slots = slots;
	ca->cap = cap;
	return KOS_OK;
}

/* A cached credential must not outlive its key's verification time (kos
 * never issues one that would; another signer of the same key might). */
static int outlives_key(const kos_ca *ca, const struct ca_pub *k, kos_usec exp)
{
	return k->expires != 0 && exp + ca->pol->credentials.leeway > k->expires;
}

static int keep_valid(kos_ca *ca, const struct cache_entry *e, void *arg)
{
	const struct ca_pub *k = key_find(ca, e->kid);

	(void)arg;
	return k != NULL && !outlives_key(ca, k, e->exp) && !is_revoked(ca, e->sub, e->jti, e->iat);
}

static int keep_unexpired(kos_ca *ca, const struct cache_entry *e, void *arg)
{
	return e->exp + ca->pol->credentials.leeway > *(const kos_usec *)arg;
}

void kos_ca_cache_recheck(kos_ca *ca)
{
	if (ca->count == 0)
		return;
	/* out of memory: start afresh rather than keep what may be revoked */
	if (cache_rebuild(ca, ca->cap, keep_valid, NULL) != KOS_OK)
		(void)cache_rebuild(ca, 0, NULL, NULL);
}

/* Takes e (its buffers) into the cache; frees them when it cannot. Caller
 * holds the write lock. */
static void cache_insert(kos_ca *ca, struct cache_entry *e, kos_usec now)
{
	size_t bytes = entry_bytes(e);

	if (cache_find(ca, e->digest) != NULL) {
		entry_free(e);
		return;
	}
	if (ca->count + 1 > CACHE_MAX_ENTRIES || ca->bytes + bytes > CACHE_MAX_BYTES) {
		(void)cache_rebuild(ca, ca->cap, keep_unexpired, &now);
		if (ca->count + 1 > CACHE_MAX_ENTRIES || ca->bytes + bytes > CACHE_MAX_BYTES)
			kos_ca_cache_clear(ca);
	}
	if ((ca->count + 1) * 2 > ca->cap) {
		size_t ncap = ca->cap ? ca->cap * 2 : 256;

		if (cache_rebuild(ca, ncap, keep_unexpired, &now) != KOS_OK) {
			entry_free(e);
			return;
		}
	}
	place(ca->slots, ca->cap, e);
	ca->count++;
	ca->bytes += bytes;
}

/* --- verification ------------------------------------------------------- */

static void copy_str(char *dst, size_t len, const char *src)
{
	size_t n = strnlen(src, len - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* Fills claims from a cache entry (iss and aud are the policy's: an entry
 * matched them when it went in, and a policy change empties the cache). */
static void claims_from_entry(const kos_ca *ca, const struct cache_entry *e, kos_cred_claims *c)
{
	copy_str(c->iss, sizeof(c->iss), ca->pol->credentials.issuer);
	copy_str(c->aud, sizeof(c->aud), ca->pol->credentials.audience);
	copy_str(c->sub, sizeof(c->sub), e->sub);
	copy_str(c->jti, sizeof(c->jti), e->jti);
	copy_str(c->kid, sizeof(c->kid), e->kid);
	copy_str(c->scope, sizeof(c->scope), e->scope);
	copy_str(c->x5t, sizeof(c->x5t), e->x5t);
	c->iat = e->iat;
	c->nbf = e->nbf;
	c->exp = e->exp;
	c->auth_time = e->auth_time;
	c->kind = e->kind;
}

/* The checks that depend on the instant and the channel, for a credential
 * whose signature and claims are known good. A grant's exp has no leeway:
 * it lives seconds and kosd issued it itself, so the leeway (meant for the
 * skew of clocks over a credential's minutes) would multiply its life. */
static kos_rv judge_time_and_binding(const struct kos_policy *pol, kos_cred_kind kind,
				     const char *jti, kos_usec iat, kos_usec nbf, kos_usec exp,
				     const char *bound, const char *x5t, kos_usec now,
				     kos_cred_reason *why)
{
	kos_usec exp_leeway = kind == KOS_CRED_KIND_GRANT ? 0 : pol->credentials.leeway;
	char when[32];

	if (now >= exp + exp_leeway) {
		format_time(exp, when, sizeof(when));
		return refuse(why, KOS_CRED_EXPIRED, "credential %s expired at %s", jti, when);
	}
	if (now + pol->credentials.leeway < nbf || now + pol->credentials.leeway < iat) {
		format_time(nbf > iat ? nbf : iat, when, sizeof(when));
		return refuse(why, KOS_CRED_NOT_YET_VALID, "credential %s is valid from %s", jti,
			      when);
	}
	if (bound[0] != '\0') {
		if (x5t == NULL)
			return refuse(why, KOS_CRED_WRONG_CERT,
				      "credential %s is bound to a client certificate and none was "
				      "presented",
				      jti);
		if (CRYPTO_memcmp(bound, x5t, KOS_CRED_X5T_LEN) != 0)
			return refuse(why, KOS_CRED_WRONG_CERT,
				      "credential %s is bound to another client certificate", jti);
	}
	return KOS_OK;
}

static kos_rv json_time(json_t *obj, const char *name, kos_usec *out, kos_cred_reason *why)
{
	json_t *v = json_object_get(obj, name);
	json_int_t t;

	if (!json_is_integer(v))
		return refuse(why, KOS_CRED_MALFORMED, "claim \"%s\" missing or not an integer",
			      name);
	t = json_integer_value(v);
	if (t < 0 || t > TIME_MAX_SEC)
		return refuse(why, KOS_CRED_MALFORMED, "claim \"%s\" out of range", name);
	*out = (kos_usec)t * SEC;
	return KOS_OK;
}

/* A string claim of at most len - 1 bytes into out. */
static kos_rv json_str(json_t *obj, const char *name, char *out, size_t len, kos_cred_reason *why)
{
	json_t *v = json_object_get(obj, name);

	if (!json_is_string(v))
		return refuse(why, KOS_CRED_MALFORMED, "claim \"%s\" missing or not a string",
			      name);
	if (json_string_length(v) >= len || strlen(json_string_value(v)) != json_string_length(v))
		return refuse(why, KOS_CRED_MALFORMED, "claim \"%s\" too long", name);
	memcpy(out, json_string_value(v), json_string_length(v) + 1);
	return KOS_OK;
}

/* Decodes a base64url segment holding a JSON object. */
static kos_rv segment_json(const char *seg, size_t len, size_t max, const char *what, json_t **out,
			   kos_cred_reason *why)
{
	json_error_t jerr;
	uint8_t *buf;
	size_t n = len / 4 * 3 + 3;
	kos_rv rv;

	*out = NULL;
	if (len == 0 || n > max)
		return refuse(why, KOS_CRED_MALFORMED, "%s empty or too large", what);
	buf = malloc(n);
	if (buf == NULL) {
		*why = KOS_CRED_ERROR;
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	}
	rv = kos_b64url_decode(seg, len, buf, &n);
	if (rv != KOS_OK) {
		rv = refuse(why, KOS_CRED_MALFORMED, "%s is not base64url: %s", what,
			    kos_last_error());
		goto out;
	}
	*out = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, &jerr);
	if (*out == NULL || !json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		rv = refuse(why, KOS_CRED_MALFORMED, "%s is not a JSON object", what);
	}
out:
	kos_secret_free(buf, len / 4 * 3 + 3);
	return rv;
}

/* Header: alg must be ES256, kid a CA key's. *exact: it says exactly what
 * kos writes (alg, typ "JWT" and the kid, no other member), which the caller
 * requires once the signature verified, so that a changed header reads as
 * the forgery it is. */
static kos_rv check_header(const char *seg, size_t len, char kid[KOS_CA_KID_LEN + 1], bool *exact,
			   kos_cred_reason *why)
{
	json_t *h = NULL, *alg, *k, *typ;
	kos_rv rv;

	rv = segment_json(seg, len, HEADER_MAX, "header", &h, why);
	if (rv != KOS_OK)
		return rv;
	alg = json_object_get(h, "alg");
	if (!json_is_string(alg) || strcmp(json_string_value(alg), "ES256") != 0 ||
	    json_string_length(alg) != 5) {
		char shown[16];

		snprintf(shown, sizeof(shown), "%s",
			 json_is_string(alg) ? json_string_value(alg) : "(none)");
		for (char *p = shown; *p != '\0'; p++)
			if (*p < 0x20 || *p > 0x7e)
				*p = '?';
		rv = refuse(why, KOS_CRED_BAD_ALG, "alg \"%s\" refused: only ES256 is accepted",
			    shown);
		goto out;
	}
	/* RFC 7515 4.1.11: extensions a verifier does not understand are fatal */
	if (json_object_get(h, "crit") != NULL) {
		rv = refuse(why, KOS_CRED_MALFORMED, "header has \"crit\" extensions");
		goto out;
	}
	typ = json_object_get(h, "typ");
	if (typ != NULL && (!json_is_string(typ) || strcmp(json_string_value(typ), "JWT") != 0)) {
		rv = refuse(why, KOS_CRED_MALFORMED, "header typ is not \"JWT\"");
		goto out;
	}
	k = json_object_get(h, "kid");
	if (!json_is_string(k) || !kos_b64url_is(json_string_value(k), KOS_CA_KID_LEN)) {
		rv = refuse(why, KOS_CRED_UNKNOWN_KID, "header has no kos kid");
		goto out;
	}
	memcpy(kid, json_string_value(k), KOS_CA_KID_LEN + 1);
	/* alg, kid and a typ of "JWT" (jansson refuses a NUL inside a string) */
	*exact = typ != NULL && json_object_size(h) == 3;
out:
	json_decref(h);
	return rv;
}

/* The claims of payload p (a JSON object): their form, iss and aud. */
static kos_rv check_claims(const kos_ca *ca, json_t *p, kos_cred_claims *c, kos_cred_reason *why)
{
	const struct kos_policy *pol = ca->pol;
	json_t *aud, *cnf, *kind;
	kos_rv rv;

	if ((rv = json_str(p, "iss", c->iss, sizeof(c->iss), why)) != KOS_OK ||
	    (rv = json_str(p, "sub", c->sub, sizeof(c->sub), why)) != KOS_OK ||
	    (rv = json_str(p, "jti", c->jti, sizeof(c->jti), why)) != KOS_OK ||
	    (rv = json_str(p, "scope", c->scope, sizeof(c->scope), why)) != KOS_OK ||
	    (rv = json_time(p, "iat", &c->iat, why)) != KOS_OK ||
	    (rv = json_time(p, "nbf", &c->nbf, why)) != KOS_OK ||
	    (rv = json_time(p, "exp", &c->exp, why)) != KOS_OK ||
	    (rv = json_time(p, "auth_time", &c->auth_time, why)) != KOS_OK)
		goto out;
	if (!kos_principal_name_valid(c->sub) || !kos_b64url_is(c->jti, KOS_CRED_JTI_LEN) ||
	    kos_scope_validate(c->scope) != KOS_OK) {
		rv = refuse(why, KOS_CRED_MALFORMED, "claim sub, jti or scope malformed");
		goto out;
	}
	if (c->exp <= c->iat || c->auth_time > c->iat) {
		rv = refuse(why, KOS_CRED_MALFORMED, "claims exp, iat and auth_time out of order");
		goto out;
	}
	/* the kind, and the form it implies: a grant names exactly one share
	 * and a credential none, so neither passes for the other */
	kind = json_object_get(p, "kos_kind");
	if (kind != NULL) {
		if (!json_is_string(kind) || strcmp(json_string_value(kind), "grant") != 0 ||
		    json_string_length(kind) != 5) {
			rv = refuse(why, KOS_CRED_MALFORMED, "claim kos_kind is not \"grant\"");
			goto out;
		}
		c->kind = KOS_CRED_KIND_GRANT;
	}
	if (c->kind == KOS_CRED_KIND_GRANT
		? strncmp(c->scope, KOS_SCOPE_GRANT_ACTION ":", 6) != 0 ||
		      strpbrk(c->scope, " *") != NULL
		: kos_scope_has_grant_item(c->scope)) {
		rv = refuse(why, KOS_CRED_MALFORMED,
			    c->kind == KOS_CRED_KIND_GRANT
				? "a grant's scope is not one \"share:\" item"
				: "a credential's scope holds a \"share:\" item (only grants do)");
		goto out;
	}
	cnf = json_object_get(p, "cnf");
	if (cnf != NULL) {
		json_t *t = json_object_get(cnf, "x5t#S256");

		if (!json_is_object(cnf) || !json_is_string(t) ||
		    !kos_b64url_is(json_string_value(t), KOS_CRED_X5T_LEN)) {
			rv =
			    refuse(why, KOS_CRED_MALFORMED, "claim cnf is not {\"x5t#S256\": ...}");
			goto out;
		}
		memcpy(c->x5t, json_string_value(t), KOS_CRED_X5T_LEN + 1);
	}
	if (strcmp(c->iss, pol->credentials.issuer) != 0) {
		rv = refuse(why, KOS_CRED_WRONG_ISSUER, "credential %s was not issued by \"%s\"",
			    c->jti, pol->credentials.issuer);
		goto out;
	}
	/* RFC 7519 4.1.3: one string, or an array of them */
	aud = json_object_get(p, "aud");
	if (json_is_string(aud) && strcmp(json_string_value(aud), pol->credentials.audience) == 0) {
		copy_str(c->aud, sizeof(c->aud), pol->credentials.audience);
	} else if (json_is_array(aud)) {
		size_t i;
		json_t *v;

		json_array_foreach(aud, i, v)
		{
			if (json_is_string(v) &&
			    strcmp(json_string_value(v), pol->credentials.audience) == 0)
				copy_str(c->aud, sizeof(c->aud), pol->credentials.audience);
		}
	}
	if (c->aud[0] == '\0')
		rv = refuse(why, KOS_CRED_WRONG_AUDIENCE, "credential %s is not meant for \"%s\"",
			    c->jti, pol->credentials.audience);
out:
	return rv;
}

/* Everything but revocation, on a credential not in the cache: form,
 * header, signature, claims, times, binding. Caller holds no lock; ca->pol
 * and the keys are read under the read lock, and the key is used with a
 * reference of its own, so a sync meanwhile frees nothing in use. */
static kos_rv verify_full(kos_ca *ca, const char *token, size_t len, const char *x5t, kos_usec now,
			  kos_cred_claims *c, kos_cred_reason *why)
{
	const char *dot1, *dot2;
	const struct ca_pub *key;
	json_t *payload = NULL;
	char kid[KOS_CA_KID_LEN + 1];
	uint8_t sig[KOS_ES256_SIG_LEN + 3];
	size_t sig_len = sizeof(sig), i;
	kos_usec key_expires = 0;
	EVP_PKEY *pkey = NULL;
	bool exact = false;
	kos_rv rv;

	for (i = 0; i < len; i++) {
		char ch = token[i];

		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		      (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.'))
			return refuse(why, KOS_CRED_MALFORMED,
				      "character %zu is not base64url or '.'", i);
	}
	dot1 = memchr(token, '.', len);
	dot2 = dot1 != NULL ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
	if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL)
		return refuse(why, KOS_CRED_MALFORMED,
			      "not three dot-separated parts (JWS compact)");
	rv = check_header(token, (size_t)(dot1 - token), kid, &exact, why);
	if (rv != KOS_OK)
		return rv;
	rv = kos_b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), sig, &sig_len);
	if (rv != KOS_OK || sig_len != KOS_ES256_SIG_LEN) {
		rv = refuse(why, KOS_CRED_MALFORMED, "signature is not 64 bytes of base64url");
		goto out;
	}
	/* duplicate names, which jansson's default resolves silently, are
	 * refused */
	rv = segment_json(dot1 + 1, (size_t)(dot2 - dot1 - 1), KOS_CRED_MAX, "payload", &payload,
			  why);
	if (rv != KOS_OK)
		goto out;

	pthread_rwlock_rdlock(&ca->lock);
	key = key_find(ca, kid);
	if (key != NULL && EVP_PKEY_up_ref(key->pkey) == 1) {
		pkey = key->pkey;
		key_expires = key->expires;
	}
	pthread_rwlock_unlock(&ca->lock);
	if (key == NULL) {
		rv = refuse(why, KOS_CRED_UNKNOWN_KID, "kid %s is not a key of this CA", kid);
		goto out;
	}
	if (pkey == NULL) {
		*why = KOS_CRED_ERROR;
		rv = kos_error_set(KOS_E_CRYPTO, "cannot take a reference to CA key %s", kid);
		goto out;
	}
	if (key_expires != 0 && now >= key_expires) {
		rv = refuse(why, KOS_CRED_UNKNOWN_KID, "CA key %s no longer verifies", kid);
		goto out;
	}

	/* ES256 because kos says so: the header's alg was only checked to
	 * agree */
	rv = kos_es256_verify(pkey, (const uint8_t *)token, (size_t)(dot2 - token), sig);
	if (rv == KOS_E_INTEGRITY) {
		rv = refuse(why, KOS_CRED_BAD_SIGNATURE, "signature does not verify with CA key %s",
			    kid);
		goto out;
	}
	if (rv != KOS_OK) {
		*why = KOS_CRED_ERROR;
		goto out;
	}
	if (!exact) {
		rv = refuse(why, KOS_CRED_MALFORMED,
			    "header is not the one kos writes ({\"alg\":\"ES256\",\"typ\":"
			    "\"JWT\",\"kid\":...})");
		goto out;
	}

	memset(c, 0, sizeof(*c));
	memcpy(c->kid, kid, sizeof(kid));
	pthread_rwlock_rdlock(&ca->lock);
	rv = check_claims(ca, payload, c, why);
	if (rv == KOS_OK)
		rv = judge_time_and_binding(ca->pol, c->kind, c->jti, c->iat, c->nbf, c->exp,
					    c->x5t, x5t, now, why);
	pthread_rwlock_unlock(&ca->lock);
out:
	OPENSSL_cleanse(sig, sizeof(sig));
	EVP_PKEY_free(pkey);
	json_decref(payload);
	return rv;
}

kos_rv kos_cred_verify(kos_ca *ca, const char *token, const char *x5t, kos_cred_claims *claims,
		       kos_cred_reason *reason)
{
	kos_cred_reason why_local, *why = reason != NULL ? reason : &why_local;
	struct cache_entry *e, fresh;
	const struct ca_pub *key;
	kos_cred_claims *c = NULL;
	uint8_t digest[32];
	kos_usec now;
	size_t len;
	kos_rv rv;

	*why = KOS_CRED_ERROR;
	if (ca == NULL || token == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_cred_verify: missing argument");
	if (x5t != NULL && !kos_b64url_is(x5t, KOS_CRED_X5T_LEN))
		return kos_error_set(KOS_E_INVALID,
				     "the presented certificate's thumbprint is not 43 base64url "
				     "characters");
	len = strnlen(token, KOS_CRED_MAX + 1);
	if (len > KOS_CRED_MAX)
		return refuse(why, KOS_CRED_MALFORMED, "larger than %d bytes", KOS_CRED_MAX);
	rv = kos_ca_sync(ca, false);
	if (rv != KOS_OK)
		return rv;
	now = kos_ca_now(ca);
	rv = token_digest(ca, token, len, digest);
	if (rv != KOS_OK)
		return rv;

	pthread_rwlock_rdlock(&ca->lock);
	e = cache_find(ca, digest);
	if (e != NULL) {
		rv = judge_time_and_binding(ca->pol, e->kind, e->jti, e->iat, e->nbf, e->exp,
					    e->x5t, x5t, now, why);
		if (rv == KOS_OK) {
			*why = KOS_CRED_VALID;
			if (claims != NULL)
				claims_from_entry(ca, e, claims);
		}
		pthread_rwlock_unlock(&ca->lock);
		return rv;
	}
	pthread_rwlock_unlock(&ca->lock);

	c = malloc(sizeof(*c));
	if (c == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	rv = verify_full(ca, token, len, x5t, now, c, why);
	if (rv != KOS_OK)
		goto out;

	memset(&fresh, 0, sizeof(fresh));
	memcpy(fresh.digest, digest, sizeof(digest));
	fresh.used = true;
	fresh.scope = kos_strdup(c->scope);
	copy_str(fresh.sub, sizeof(fresh.sub), c->sub);
	copy_str(fresh.jti, sizeof(fresh.jti), c->jti);
	copy_str(fresh.kid, sizeof(fresh.kid), c->kid);
	copy_str(fresh.x5t, sizeof(fresh.x5t), c->x5t);
	fresh.iat = c->iat;
	fresh.nbf = c->nbf;
	fresh.exp = c->exp;
	fresh.auth_time = c->auth_time;
	fresh.kind = c->kind;

	/* revocation is judged under the write lock, with the insertion, so a
	 * sync that lands meanwhile either sees the entry or is seen by it */
	pthread_rwlock_wrlock(&ca->lock);
	key = key_find(ca, c->kid);
	if (key == NULL) {
		rv = refuse(why, KOS_CRED_UNKNOWN_KID, "kid %s is no longer a key of this CA",
			    c->kid);
	} else if (is_revoked(ca, c->sub, c->jti, c->iat)) {
		rv = refuse(why, KOS_CRED_REVOKED, "credential %s of client %s is revoked", c->jti,
			    c->sub);
	} else if (fresh.scope != NULL && !outlives_key(ca, key, c->exp)) {
		cache_insert(ca, &fresh, now);
		fresh.scope = NULL;
	}
	pthread_rwlock_unlock(&ca->lock);
	free(fresh.scope);
	if (rv == KOS_OK) {
		*why = KOS_CRED_VALID;
		if (claims != NULL)
			*claims = *c;
	}
out:
	OPENSSL_cleanse(digest, sizeof(digest));
	free(c);
	return rv;
}

/* --- issuance ----------------------------------------------------------- */

struct issue_req {
	const char *client;
	const char *scope;
	const char *x5t;    /* NULL or "": a bearer credential */
	kos_usec auth_time; /* 0: now (a new chain) */
	kos_usec not_after; /* 0: no bound; else exp is at most this */
	kos_cred_kind kind; /* KOS_CRED_KIND_GRANT only from kos_cred_issue_grant() */
};

/* base64url of a JSON value's compact text into a new string. */
static kos_rv b64_json(json_t *v, char **out)
{
	char *text = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
	size_t n;
	kos_rv rv;

	*out = NULL;
	if (text == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	n = kos_b64url_len(strlen(text)) + 1;
	*out = malloc(n);
	if (*out == NULL) {
		free(text);
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	}
	rv = kos_b64url_encode((const uint8_t *)text, strlen(text), *out, n);
	free(text);
	if (rv != KOS_OK) {
		free(*out);
		*out = NULL;
	}
	return rv;
}

/* The tier the client stands at now, with the stored threat level applied
 * (a client never observed stands at the prior). */
static kos_rv current_tier(kos_ca *ca, const char *client, kos_threat *level, kos_tier *tier)
{
	kos_trust_info info;
	kos_rv rv;

	rv = kos_ca_threat_level(ca, level);
	if (rv != KOS_OK)
		return rv;
	rv = kos_trust_get(ca->tr, client, &info);
	if (rv == KOS_E_NOTFOUND) {
		kos_error_clear();
		*tier = kos_trust_tier_of(ca->tr, kos_trust_get0_policy(ca->tr)->prior);
		return KOS_OK;
	}
	if (rv == KOS_OK)
		*tier = info.tier;
	return rv;
}

static kos_rv issue(kos_ca *ca, const struct issue_req *r, char **token)
{
	char kid[KOS_CA_KID_LEN + 1] = "", label[KOS_HSM_LABEL_MAX + 1];
	char ktoken[KOS_TOKEN_NAME_MAX + 1] = "";
	char jti[KOS_CRED_JTI_LEN + 1], iss[KOS_CRED_NAME_MAX + 1], aud[KOS_CRED_NAME_MAX + 1];
	char *h64 = NULL, *c64 = NULL, *out = NULL, sig64[90];
	json_t *header = NULL, *claims = NULL;
	uint8_t raw[16], *sig = NULL;
	size_t sig_len = 0, tok, n = 0;
	kos_threat level;
	kos_tier tier;
	kos_usec now, life, iat, exp, auth;
	kos_rv rv;

	*token = NULL;
	if (ca->hsm == NULL)
		return kos_error_set(KOS_E_INVALID,
				     "this credential authority has no backend tokens");
	/* the one gate every issuance passes: enrollment, refresh and
	 * administrative issue never yield a share item, whatever the
	 * registered scope (an older store may hold one) */
	if (r->kind != KOS_CRED_KIND_GRANT && kos_scope_has_grant_item(r->scope))
		return kos_error_set(KOS_E_POLICY,
				     "out of scope: a credential holds no \"share:\" item (shares "
				     "are fetched with grants that key requests issue)");
	kos_ca_threat_tick_on_issue(ca);
	rv = current_tier(ca, r->client, &level, &tier);
	if (rv != KOS_OK)
		return rv;
	if (tier == KOS_TIER_DENY)
		return kos_error_set(KOS_E_POLICY, "trust too low: client %s stands at tier deny",
				     r->client);
	now = kos_ca_now(ca);
	pthread_rwlock_rdlock(&ca->lock);
	life = (kos_usec)((double)ca->pol->credentials.lifetime[tier] *
			  ca->pol->threat[level].lifetime_factor);
	copy_str(iss, sizeof(iss), ca->pol->credentials.issuer);
	copy_str(aud, sizeof(aud), ca->pol->credentials.audience);
	pthread_rwlock_unlock(&ca->lock);
	iat = now / SEC;
	exp = iat + (life / SEC > 0 ? life / SEC : 1);
	if (r->not_after != 0 && exp > r->not_after / SEC)
		exp = r->not_after / SEC;
	if (exp <= iat)
		return kos_error_set(KOS_E_POLICY,
				     "refresh chain of client %s is over (credentials.max_chain): "
				     "enroll again",
				     r->client);
	auth = r->auth_time != 0 ? r->auth_time / SEC : iat;

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return kos_error_set(KOS_E_CRYPTO, "no randomness for a jti");
	rv = kos_b64url_encode(raw, sizeof(raw), jti, sizeof(jti));
	if (rv != KOS_OK)
		return rv;
	/* the current key from the in-memory copy: a rotation anywhere bumps
	 * the revision, and the copy follows it before it is used */
	rv = kos_ca_sync(ca, false);
	if (rv != KOS_OK)
		return rv;
	pthread_rwlock_rdlock(&ca->lock);
	for (size_t i = 0; i < ca->n_keys; i++) {
		if (ca->keys[i].expires == 0) {
			copy_str(kid, sizeof(kid), ca->keys[i].kid);
			copy_str(ktoken, sizeof(ktoken), ca->keys[i].token);
		}
	}
	pthread_rwlock_unlock(&ca->lock);
	if (kid[0] == '\0')
		return kos_error_set(KOS_E_NOTFOUND, "the CA has no key (kosctl ca init)");
	snprintf(label, sizeof(label), "%s%s", KOS_CA_LABEL_PREFIX, kid);
	rv = kos_hsm_token_find(ca->hsm, ktoken, &tok);
	if (rv != KOS_OK)
		return kos_error_set(KOS_E_NOTFOUND, "the CA key's token %s is not configured",
				     ktoken);
	header = json_pack("{s:s, s:s, s:s}", "alg", "ES256", "typ", "JWT", "kid", kid);
	claims = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:s}", "iss", iss, "sub",
			   r->client, "aud", aud, "iat", (json_int_t)iat, "nbf", (json_int_t)iat,
			   "exp", (json_int_t)exp, "auth_time", (json_int_t)auth, "jti", jti,
			   "scope", r->scope);
	if (header == NULL || claims == NULL) {
		rv = kos_error_set(KOS_E_NOMEM, "out of memory");
		goto out;
	}
	if (r->x5t != NULL && r->x5t[0] != '\0' &&
	    json_object_set_new(claims, "cnf", json_pack("{s:s}", "x5t#S256", r->x5t)) != 0) {
		rv = kos_error_set(KOS_E_NOMEM, "out of memory");
		goto out;
	}
	if (r->kind == KOS_CRED_KIND_GRANT &&
	    json_object_set_new(claims, "kos_kind", json_string("grant")) != 0) {
		rv = kos_error_set(KOS_E_NOMEM, "out of memory");
		goto out;
	}
	rv = b64_json(header, &h64);
	if (rv == KOS_OK)
		rv = b64_json(claims, &c64);
	if (rv != KOS_OK)
		goto out;
	n = strlen(h64) + 1 + strlen(c64) + 1 + 86 + 1;
	if (n > KOS_CRED_MAX + 1) {
		rv = kos_error_set(KOS_E_RANGE, "credential would be larger than %d bytes",
				   KOS_CRED_MAX);
		goto out;
	}
	out = malloc(n);
	if (out == NULL) {
		rv = kos_error_set(KOS_E_NOMEM, "out of memory");
		goto out;
	}
	snprintf(out, n, "%s.%s", h64, c64);
	rv = kos_signer_sign(ca->hsm, tok, KOS_KEY_EC_P256, label, KOS_SIG_ECDSA_RAW,
			     (const uint8_t *)out, strlen(out), &sig, &sig_len);
	if (rv != KOS_OK)
		goto out;
	if (sig_len != KOS_ES256_SIG_LEN) {
		rv = kos_error_set(KOS_E_CRYPTO, "CA key %s gave a %zu-byte signature", kid,
				   sig_len);
		goto out;
	}
	rv = kos_b64url_encode(sig, sig_len, sig64, sizeof(sig64));
	if (rv != KOS_OK)
		goto out;
	strcat(out, ".");
	strcat(out, sig64);
	*token = out;
	out = NULL;
out:
	if (out != NULL)
		kos_secret_free(out, n);
	kos_free(sig);
	free(h64);
	free(c64);
	json_decref(header);
	json_decref(claims);
	return rv;
}

/* The registered client, refusing a disabled one. */
static kos_rv usable_client(kos_ca *ca, const char *name, struct kos_store_cred_client *c)
{
	kos_rv rv = kos_store_cred_client_get(ca->st, name, c);

	if (rv != KOS_OK)
		return rv;
	if (c->disabled)
		return kos_error_set(KOS_E_POLICY, "client %s is disabled", name);
	return KOS_OK;
}

kos_rv kos_cred_issue(kos_ca *ca, const char *client, const char *scope, const char *x5t,
		      char **token)
{
	struct kos_store_cred_client *c;
	struct issue_req r = {0};
	kos_rv rv;

	if (token != NULL)
		*token = NULL;
	if (ca == NULL || client == NULL || token == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_cred_issue: missing argument");
	if (ca->st == NULL)
		return kos_ca_no_store();
	if (!kos_principal_name_valid(client))
		return kos_error_set(KOS_E_INVALID, "invalid client name");
	if (x5t != NULL && !kos_b64url_is(x5t, KOS_CRED_X5T_LEN))
		return kos_error_set(KOS_E_INVALID,
				     "certificate thumbprint is not 43 base64url characters "
				     "(SHA-256)");
	if (scope != NULL && kos_scope_validate(scope) != KOS_OK)
		return kos_error_set(KOS_E_INVALID, "%s", kos_last_error());
	if (scope != NULL && kos_scope_has_grant_item(scope))
		return kos_error_set(KOS_E_INVALID,
				     "a credential holds no \"share:\" item: only key requests "
				     "issue grants");
	c = malloc(sizeof(*c));
	if (c == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	rv = usable_client(ca, client, c);
	if (rv != KOS_OK)
		goto out;
	if (scope != NULL && !kos_scope_within(scope, c->scope)) {
		rv = kos_error_set(KOS_E_POLICY,
				   "out of scope: \"%.200s\" is not within client %s's registered "
				   "scope",
				   scope, client);
		goto out;
	}
	r.client = client;
	r.scope = scope != NULL ? scope : c->scope;
	r.x5t = x5t;
	rv = issue(ca, &r, token);
out:
	free(c);
	return rv;
}

kos_rv kos_cred_issue_grant(kos_ca *ca, const char *client, const char *share_id, const char *x5t,
			    kos_usec lifetime, char **token)
{
	struct kos_store_cred_client *c;
	struct issue_req r = {0};
	char scope[160];
	kos_rv rv;

	if (token != NULL)
		*token = NULL;
	if (ca == NULL || client == NULL || share_id == NULL || token == NULL ||
	    lifetime < SEC)
		return kos_error_set(KOS_E_INVALID, "kos_cred_issue_grant: bad argument");
	if (ca->st == NULL)
		return kos_ca_no_store();
	if (!kos_principal_name_valid(client))
		return kos_error_set(KOS_E_INVALID, "invalid client name");
	if (x5t != NULL && x5t[0] != '\0' && !kos_b64url_is(x5t, KOS_CRED_X5T_LEN))
		return kos_error_set(KOS_E_INVALID,
				     "certificate thumbprint is not 43 base64url characters "
				     "(SHA-256)");
	if ((size_t)snprintf(scope, sizeof(scope), "share:%s", share_id) >= sizeof(scope) ||
	    strpbrk(share_id, " *?[]\\/") != NULL)
		return kos_error_set(KOS_E_INVALID, "share id makes no grant scope");
	/* a resource holds no ':' (share ids do): they are written as '/' */
	for (char *p = scope + 6; *p != '\0'; p++)
		if (*p == ':')
			*p = '/';
	if (kos_scope_validate(scope) != KOS_OK)
		return kos_error_set(KOS_E_INVALID, "share id makes no grant scope");
	c = malloc(sizeof(*c));
	if (c == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	rv = usable_client(ca, client, c);
	if (rv == KOS_OK) {
		r.client = client;
		r.scope = scope;
		/* bound as the requester's credential is: a grant of a client
		 * that came over TLS is worthless without its certificate */
		r.x5t = x5t;
		r.not_after = kos_ca_now(ca) + lifetime;
		r.kind = KOS_CRED_KIND_GRANT;
		rv = issue(ca, &r, token);
	}
	free(c);
	return rv;
}

kos_rv kos_cred_enroll(kos_ca *ca, const char *secret, char **token)
{
	return kos_cred_enroll_bound(ca, secret, NULL, token);
}

kos_rv kos_cred_enroll_bound(kos_ca *ca, const char *secret, const char *x5t, char **token)
{
	struct kos_store_enrollment e;
	struct kos_store_cred_client *c = NULL;
	struct issue_req r = {0};
	uint8_t hash[KOS_STORE_HASH_LEN];
	char *tok = NULL;
	kos_usec now;
	kos_rv rv;

	if (token != NULL)
		*token = NULL;
	if (ca == NULL || secret == NULL || token == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_cred_enroll: missing argument");
	if (ca->st == NULL)
		return kos_ca_no_store();
	if (x5t != NULL && x5t[0] != '\0' && !kos_b64url_is(x5t, KOS_CRED_X5T_LEN))
		return kos_error_set(KOS_E_INVALID,
				     "a certificate thumbprint is 43 base64url characters");
	if (!kos_b64url_is(secret, KOS_CRED_SECRET_LEN))
		return kos_error_set(KOS_E_INTEGRITY,
				     "not an enrollment secret (43 base64url characters)");
	SHA256((const unsigned char *)secret, KOS_CRED_SECRET_LEN, hash);
	rv = kos_store_enrollment_get(ca->st, hash, &e);
	if (rv == KOS_E_NOTFOUND)
		return kos_error_set(KOS_E_INTEGRITY, "unknown enrollment secret");
	if (rv != KOS_OK)
		return rv;
	now = kos_ca_now(ca);
	if (e.used != 0)
		goto replay;
	if (now >= e.expires)
		return kos_error_set(KOS_E_INTEGRITY, "the enrollment secret of client %s expired",
				     e.client);
	c = malloc(sizeof(*c));
	if (c == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	rv = usable_client(ca, e.client, c);
	if (rv != KOS_OK)
		goto out;
	/* sign first, then take the secret: a token failure must not burn it,
	 * and of two racing uses exactly one takes it */
	r.client = c->name;
	r.scope = c->scope;
	r.x5t = x5t;
	r.auth_time = now;
	rv = issue(ca, &r, &tok);
	if (rv != KOS_OK)
		goto out;
	rv = kos_store_enrollment_use(ca->st, hash, now, &e);
	if (rv == KOS_E_EXISTS) {
		kos_cred_free(tok);
		tok = NULL;
		free(c);
		goto replay;
	}
	if (rv == KOS_E_RANGE)
		rv = kos_error_set(KOS_E_INTEGRITY, "the enrollment secret of client %s expired",
				   e.client);
	if (rv == KOS_OK) {
		*token = tok;
		tok = NULL;
	}
out:
	kos_cred_free(tok);
	free(c);
	OPENSSL_cleanse(hash, sizeof(hash));
	return rv;
replay:
	OPENSSL_cleanse(hash, sizeof(hash));
	/* Not an observation of the secret's client: whoever sends a used
	 * secret proves nothing about being that client, so a replay must not
	 * let a stranger lower someone else's trust. The caller, who knows the
	 * channel, counts it against the sender. */
	return kos_error_set(KOS_E_INTEGRITY, "enrollment secret of client %s already used (replay)",
			     e.client);
}

kos_rv kos_cred_refresh(kos_ca *ca, const char *token, const char *x5t, const char *scope,
			char **new_token, kos_cred_reason *reason)
{
	kos_cred_reason why_local, *why = reason != NULL ? reason : &why_local;
	struct {
		kos_cred_claims claims;
		struct kos_store_cred_client c;
	} * b;
	struct issue_req r = {0};
	kos_usec now, max_chain;
	kos_rv rv;

	*why = KOS_CRED_ERROR;
	if (new_token != NULL)
		*new_token = NULL;
	if (ca == NULL || token == NULL || new_token == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_cred_refresh: missing argument");
	if (ca->st == NULL)
		return kos_ca_no_store();
	if (scope != NULL && kos_scope_validate(scope) != KOS_OK)
		return kos_error_set(KOS_E_INVALID, "%s", kos_last_error());
	b = malloc(sizeof(*b));
	if (b == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	rv = kos_cred_verify(ca, token, x5t, &b->claims, why);
	if (rv != KOS_OK)
		goto out;
	/* a grant is for one share and for seconds: never renewed into a
	 * credential that lives as long as the client's tier allows */
	if (b->claims.kind == KOS_CRED_KIND_GRANT) {
		rv = kos_error_set(KOS_E_POLICY, "out of scope: a share grant cannot be refreshed");
		goto out;
	}
	/* nor is one made by refreshing: "*:*" covers no share (kos_scope_within),
	 * and the refusal says why */
	if (scope != NULL && kos_scope_has_grant_item(scope)) {
		rv = kos_error_set(KOS_E_POLICY,
				   "out of scope: a refresh never yields a \"share:\" item (grants "
				   "are issued by key requests only)");
		goto out;
	}
	rv = usable_client(ca, b->claims.sub, &b->c);
	if (rv != KOS_OK)
		goto out;
	if (scope != NULL && !kos_scope_within(scope, b->claims.scope)) {
		rv = kos_error_set(
		    KOS_E_POLICY, "out of scope: a refresh may only narrow the credential's scope");
		goto out;
	}
	now = kos_ca_now(ca);
	pthread_rwlock_rdlock(&ca->lock);
	max_chain = ca->pol->credentials.max_chain;
	pthread_rwlock_unlock(&ca->lock);
	if (now >= b->claims.auth_time + max_chain) {
		rv =
		    kos_error_set(KOS_E_POLICY,
				  "refresh chain of client %s is older than credentials.max_chain: "
				  "enroll again",
				  b->claims.sub);
		goto out;
	}
	r.client = b->claims.sub;
	r.scope = scope != NULL ? scope : b->claims.scope;
	r.x5t = b->claims.x5t;
	r.auth_time = b->claims.auth_time;
	r.not_after = b->claims.auth_time + max_chain;
	rv = issue(ca, &r, new_token);
out:
	free(b);
	return rv;
}

/* --- revocation --------------------------------------------------------- */

static kos_rv revoke(kos_ca *ca, enum kos_revocation_kind kind, const char *value, kos_usec before)
{
	struct kos_store_revocation r;
	kos_usec now = kos_ca_now(ca), base;
	kos_rv rv;

	memset(&r, 0, sizeof(r));
	r.kind = kind;
	copy_str(r.value, sizeof(r.value), value);
	r.before = before;
	r.created = now;
	base = kind == KOS_REVOKE_JTI ? now : before;
	pthread_rwlock_rdlock(&ca->lock);
	/* every credential it can cover has expired by then */
	r.expires = base + kos_ca_max_lifetime(ca->pol) + ca->pol->credentials.leeway +
		    KOS_CA_RETIRE_MARGIN;
	pthread_rwlock_unlock(&ca->lock);
	rv = kos_store_revocation_add(ca->st, &r);
	if (rv != KOS_OK)
		return rv;
	if (kos_store_cred_prune(ca->st, now, NULL) != KOS_OK)
		kos_error_clear();
	/* this process sees it at once, whatever the hint does */
	return kos_ca_sync(ca, true);
}

kos_rv kos_cred_revoke_jti(kos_ca *ca, const char *jti)
{
	if (ca == NULL || jti == NULL || !kos_b64url_is(jti, KOS_CRED_JTI_LEN))
		return kos_error_set(KOS_E_INVALID, "a jti is 22 base64url characters");
	if (ca->st == NULL)
		return kos_ca_no_store();
	return revoke(ca, KOS_REVOKE_JTI, jti, 0);
}

kos_rv kos_cred_revoke_client(kos_ca *ca, const char *client)
{
	struct kos_store_cred_client *c;
	kos_rv rv;

	if (ca == NULL || client == NULL || !kos_principal_name_valid(client))
		return kos_error_set(KOS_E_INVALID, "invalid client name");
	if (ca->st == NULL)
		return kos_ca_no_store();
	c = malloc(sizeof(*c));
	if (c == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	rv = kos_store_cred_client_get(ca->st, client, c);
	free(c);
	if (rv != KOS_OK)
		return rv;
	return revoke(ca, KOS_REVOKE_CLIENT, client, kos_ca_now(ca));
}

kos_rv kos_cred_revoke_before(kos_ca *ca, kos_usec time)
{
	if (ca == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_cred_revoke_before: no authority");
	if (ca->st == NULL)
		return kos_ca_no_store();
	if (time <= 0 || time > kos_ca_now(ca))
		return kos_error_set(KOS_E_INVALID,
				     "revoke --before takes a time not in the future");
	return revoke(ca, KOS_REVOKE_BEFORE, "", time);
}

kos_rv kos_cred_revocations(kos_ca *ca, int (*fn)(const kos_revocation_info *r, void *arg),
			    void *arg)
{
	struct kos_store_revocation *rows = NULL;
	kos_revocation_info info;
	size_t n = 0, i;
	kos_rv rv;

	if (ca == NULL || fn == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_cred_revocations: missing argument");
	if (ca->st == NULL)
		return kos_ca_no_store();
	rv = kos_store_revocation_list(ca->st, &rows, &n);
	for (i = 0; rv == KOS_OK && i < n; i++) {
		int f;

		memset(&info, 0, sizeof(info));
		copy_str(info.kind, sizeof(info.kind), kos_revocation_kind_name(rows[i].kind));
		copy_str(info.value, sizeof(info.value), rows[i].value);
		info.before = rows[i].before;
		info.created = rows[i].created;
		info.expires = rows[i].expires;
		f = fn(&info, arg);
		if (f != 0)
			rv = f;
	}
	free(rows);
	return rv;
}

kos_rv kos_cred_prune(kos_ca *ca, uint64_t *removed)
{
	if (ca == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_cred_prune: no authority");
	if (ca->st == NULL)
		return kos_ca_no_store();
	return kos_store_cred_prune(ca->st, kos_ca_now(ca), removed);
}
