/* The credential authority against a real installation (SoftHSM ca token,
 * SQLite store): credentials round-trip and verify with libjwt and plain
 * OpenSSL from the JWKS; every refusal the issue lists, and a header that is
 * not kos's under a good signature; CA keys parsed once per kid; enrollment and its
 * replay; refresh and the chain bound; revocation by jti, client and time,
 * seen by a second process; rotation; lifetimes by tier and threat level;
 * the automatic threat level. */
#include "config.h"

#include "kos/ca.h"
#include "kos/hsm.h"
#include "kos/internal.h"
#include "common/jws.h"
#include "kos/signer.h"
#include "kos/store_backend.h"
#include "tests/kos-test.h"

#include <jansson.h>
#include <jwt.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* SoftHSM 2.6.1 leaks in C_SignInit (see tests/test-signer.c); kos's own
 * leaks are still reported. */
const char *__lsan_default_suppressions(void) __attribute__((visibility("default"), used));
const char *__lsan_default_suppressions(void)
{
	return "leak:libsofthsm2.so\n";
}

const char *__asan_default_options(void) __attribute__((visibility("default"), used));
const char *__asan_default_options(void)
{
	return "fast_unwind_on_malloc=0";
}

#define SEC   KOS_USEC_PER_SEC
#define SCOPE "decrypt:payments/* encrypt:payments/* sign:ca-2026"

static char inst[512];
static kos_config *conf;
static kos_policy *pol;
static kos_store *st;
static kos_hsm *hsm;
static kos_trust *tr;
static kos_ca *ca;
static char kid1[KOS_CA_KID_LEN + 1];
static kos_usec clock_now;

static kos_usec test_clock(void *arg)
{
	(void)arg;
	return clock_now;
}

static void advance(kos_usec d)
{
	clock_now += d;
}

static int suite_init(void)
{
	if (kos_test_inst_open(inst, sizeof(inst), 0, &conf, &pol, &st, &hsm) != 0)
		return 1;
	if (kos_trust_new(pol, st, &tr) != KOS_OK || kos_ca_new(pol, st, hsm, tr, &ca) != KOS_OK)
		goto fail;
	/* whole seconds, as credentials carry them */
	clock_now = kos_now() / SEC * SEC;
	kos_ca_set_clock(ca, test_clock, NULL);
	kos_trust_set_clock(tr, test_clock, NULL);
	if (kos_ca_init(ca, kid1) != KOS_OK)
		goto fail;
	return 0;
fail:
	fprintf(stderr, "set-up: %s\n", kos_last_error());
	return 1;
}

static int suite_cleanup(void)
{
	kos_ca_free(ca);
	kos_trust_free(tr);
	kos_signer_forget(hsm);
	return kos_test_inst_close(conf, pol, st, hsm);
}

/* --- helpers --- */

static char *b64(const void *data, size_t len)
{
	size_t n = kos_b64url_len(len) + 1;
	char *out = malloc(n);

	CU_ASSERT_FATAL(out != NULL);
	CU_ASSERT_EQUAL_FATAL(kos_b64url_encode(data, len, out, n), KOS_OK);
	return out;
}

static char *b64s(const char *text)
{
	return b64(text, strlen(text));
}

/* The decoded part i (0 header, 1 payload, 2 signature) of a token. */
static uint8_t *part(const char *token, int i, size_t *len)
{
	const char *p = token, *end;
	uint8_t *out;

	while (i-- > 0)
		p = strchr(p, '.') + 1;
	end = strchr(p, '.');
	if (end == NULL)
		end = p + strlen(p);
	*len = (size_t)(end - p);
	out = malloc(*len + 1);
	CU_ASSERT_FATAL(out != NULL);
	CU_ASSERT_EQUAL_FATAL(kos_b64url_decode(p, (size_t)(end - p), out, len), KOS_OK);
	out[*len] = '\0';
	return out;
}

/* header "." payload "." signature by the current CA key, as kos signs,
 * over whatever text is given (so claims kos would never write can be
 * made to carry a good signature). */
static char *sign_raw(const char *header, const char *payload)
{
	struct kos_store_ca_key key;
	char *h = b64(header, strlen(header)), *p = b64(payload, strlen(payload)), *s, *out;
	uint8_t *sig = NULL;
	size_t sig_len = 0, tok, n;

	CU_ASSERT_EQUAL_FATAL(kos_store_ca_key_current(st, &key), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_hsm_token_find(hsm, key.token, &tok), KOS_OK);
	n = strlen(h) + strlen(p) + 200;
	out = malloc(n);
	CU_ASSERT_FATAL(out != NULL);
	snprintf(out, n, "%s.%s", h, p);
	CU_ASSERT_EQUAL_FATAL(kos_signer_sign(hsm, tok, KOS_KEY_EC_P256, key.label,
					      KOS_SIG_ECDSA_RAW, (uint8_t *)out, strlen(out), &sig,
					      &sig_len),
			      KOS_OK);
	s = b64(sig, sig_len);
	strcat(out, ".");
	strcat(out, s);
	free(h);
	free(p);
	free(s);
	kos_free(sig);
	return out;
}

static char *current_kid(void)
{
	static struct kos_store_ca_key key;

	CU_ASSERT_EQUAL_FATAL(kos_store_ca_key_current(st, &key), KOS_OK);
	return key.kid;
}

/* A payload kos would write, for client c, issued at the clock. */
static void payload(char *buf, size_t len, const char *iss, const char *aud, const char *extra)
{
	long long iat = clock_now / SEC;

	snprintf(buf, len,
		 "{\"iss\":\"%s\",\"sub\":\"raw\",\"aud\":%s,\"iat\":%lld,\"nbf\":%lld,"
		 "\"exp\":%lld,\"auth_time\":%lld,\"jti\":\"RRRRRRRRRRRRRRRRRRRRRR\",\"scope\":"
		 "\"decrypt:x\"%s}",
		 iss, aud, iat, iat, iat + 300, iat, extra);
}

static void header(char *buf, size_t len)
{
	snprintf(buf, len, "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", current_kid());
}

static void expect_refused(const char *token, const char *x5t, kos_cred_reason want,
			   const char *words)
{
	kos_cred_reason why = KOS_CRED_VALID;
	kos_cred_claims c;
	kos_rv rv;

	rv = kos_cred_verify(ca, token, x5t, &c, &why);
	CU_ASSERT_EQUAL(rv, KOS_E_INTEGRITY);
	if (why != want)
		fprintf(stderr, "\nwanted reason %d, got %d: %s\n", want, why, kos_last_error());
	CU_ASSERT_EQUAL(why, want);
	if (strstr(kos_last_error(), words) == NULL)
		fprintf(stderr, "\nno '%s' in '%s'\n", words, kos_last_error());
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), words));
	/* the reason names its words first */
	CU_ASSERT_EQUAL(strncmp(kos_last_error(), kos_cred_reason_name(want),
				strlen(kos_cred_reason_name(want))),
			0);
}

static void expect_valid(const char *token, const char *x5t, kos_cred_claims *c)
{
	kos_cred_reason why = KOS_CRED_ERROR;
	kos_rv rv = kos_cred_verify(ca, token, x5t, c, &why);

	if (rv != KOS_OK)
		fprintf(stderr, "\nrefused: %s\n", kos_last_error());
	CU_ASSERT_EQUAL(rv, KOS_OK);
	CU_ASSERT_EQUAL(why, KOS_CRED_VALID);
}

static void add_client(const char *name, const char *scope)
{
	char secret[KOS_CRED_SECRET_LEN + 1];

	CU_ASSERT_EQUAL_FATAL(kos_ca_client_add(ca, name, scope, secret), KOS_OK);
	OPENSSL_cleanse(secret, sizeof(secret));
}

static char *issue(const char *client, const char *scope, const char *x5t)
{
	char *t = NULL;
	kos_rv rv = kos_cred_issue(ca, client, scope, x5t, &t);

	if (rv != KOS_OK)
		fprintf(stderr, "\nissue: %s\n", kos_last_error());
	CU_ASSERT_EQUAL_FATAL(rv, KOS_OK);
	return t;
}

static void observe_n(const char *client, kos_event ev, double value, int n)
{
	kos_observation obs = {.event = ev, .value = value, .ops = 1, .bytes = 100};

	for (int i = 0; i < n; i++)
		CU_ASSERT_EQUAL_FATAL(kos_trust_observe(tr, client, &obs, NULL), KOS_OK);
}

/* An EC public key from a JWK's x and y. */
static EVP_PKEY *jwk_key(const char *x, const char *y)
{
	uint8_t point[65], bx[40], by[40];
	size_t lx = sizeof(bx), ly = sizeof(by);
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params;
	EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *pkey = NULL;

	CU_ASSERT_EQUAL_FATAL(kos_b64url_decode(x, strlen(x), bx, &lx), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_b64url_decode(y, strlen(y), by, &ly), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(lx, 32);
	CU_ASSERT_EQUAL_FATAL(ly, 32);
	point[0] = 0x04;
	memcpy(point + 1, bx, 32);
	memcpy(point + 33, by, 32);
	OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
	OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point));
	params = OSSL_PARAM_BLD_to_param(bld);
	CU_ASSERT_FATAL(params != NULL && pctx != NULL);
	CU_ASSERT_EQUAL(EVP_PKEY_fromdata_init(pctx), 1);
	CU_ASSERT_EQUAL(EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_PUBLIC_KEY, params), 1);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(pctx);
	return pkey;
}

/* The JWK of kid from the authority's JWKS, as an OpenSSL key; NULL when
 * the JWKS does not list it. */
static EVP_PKEY *jwks_key(const char *kid)
{
	json_t *doc, *keys, *k;
	char *text = NULL;
	EVP_PKEY *pkey = NULL;
	size_t i;

	CU_ASSERT_EQUAL_FATAL(kos_ca_jwks(ca, &text), KOS_OK);
	doc = json_loads(text, 0, NULL);
	CU_ASSERT_FATAL(doc != NULL);
	keys = json_object_get(doc, "keys");
	json_array_foreach(keys, i, k)
	{
		if (!kos_test_streq(json_string_value(json_object_get(k, "kid")), kid))
			continue;
		KOS_ASSERT_STR_EQ(json_string_value(json_object_get(k, "kty")), "EC");
		KOS_ASSERT_STR_EQ(json_string_value(json_object_get(k, "crv")), "P-256");
		KOS_ASSERT_STR_EQ(json_string_value(json_object_get(k, "alg")), "ES256");
		KOS_ASSERT_STR_EQ(json_string_value(json_object_get(k, "use")), "sig");
		pkey = jwk_key(json_string_value(json_object_get(k, "x")),
			       json_string_value(json_object_get(k, "y")));
	}
	json_decref(doc);
	kos_free(text);
	return pkey;
}

/* Plain OpenSSL ES256 verification of a compact JWS: r||s to DER, ECDSA
 * with SHA-256 over the signing input. */
static int openssl_verify(EVP_PKEY *pkey, const char *token)
{
	const char *dot2 = strrchr(token, '.');
	uint8_t *raw, *der = NULL;
	size_t raw_len;
	ECDSA_SIG *sig = ECDSA_SIG_new();
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int der_len, ok;

	raw = part(token, 2, &raw_len);
	CU_ASSERT_EQUAL_FATAL(raw_len, 64);
	ECDSA_SIG_set0(sig, BN_bin2bn(raw, 32, NULL), BN_bin2bn(raw + 32, 32, NULL));
	der_len = i2d_ECDSA_SIG(sig, &der);
	ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pkey) == 1 &&
	     EVP_DigestVerify(md, der, (size_t)der_len, (const uint8_t *)token,
			      (size_t)(dot2 - token)) == 1;
	OPENSSL_free(der);
	ECDSA_SIG_free(sig);
	EVP_MD_CTX_free(md);
	free(raw);
	return ok;
}

static char *pem_of(EVP_PKEY *pkey)
{
	uint8_t *der = NULL;
	char *pem = NULL;
	int len = i2d_PUBKEY(pkey, &der);

	CU_ASSERT_FATAL(len > 0);
	CU_ASSERT_EQUAL_FATAL(kos_spki_to_pem(der, (size_t)len, &pem), KOS_OK);
	OPENSSL_free(der);
	return pem;
}

/* --- round trip and format --- */

static void test_roundtrip(void)
{
	kos_cred_claims c, again;
	char *t;

	add_client("web-1", SCOPE);
	t = issue("web-1", NULL, NULL);
	CU_ASSERT(strlen(t) < 1024);
	expect_valid(t, NULL, &c);
	CU_ASSERT_STRING_EQUAL(c.iss, "kos");
	CU_ASSERT_STRING_EQUAL(c.aud, "kos");
	CU_ASSERT_STRING_EQUAL(c.sub, "web-1");
	CU_ASSERT_STRING_EQUAL(c.scope, SCOPE);
	CU_ASSERT_STRING_EQUAL(c.kid, kid1);
	CU_ASSERT_STRING_EQUAL(c.x5t, "");
	CU_ASSERT_EQUAL(strlen(c.jti), KOS_CRED_JTI_LEN);
	CU_ASSERT_EQUAL(c.iat, clock_now);
	CU_ASSERT_EQUAL(c.nbf, c.iat);
	CU_ASSERT_EQUAL(c.auth_time, c.iat);
	/* never observed: at the prior (60), tier medium, 5 minutes */
	CU_ASSERT_EQUAL(c.exp - c.iat, 5 * 60 * SEC);
	/* the second time from the cache: the same claims */
	expect_valid(t, NULL, &again);
	CU_ASSERT_STRING_EQUAL(again.jti, c.jti);
	CU_ASSERT_STRING_EQUAL(again.kid, c.kid);
	CU_ASSERT_STRING_EQUAL(again.scope, c.scope);
	CU_ASSERT_STRING_EQUAL(again.sub, c.sub);
	CU_ASSERT_STRING_EQUAL(again.iss, c.iss);
	CU_ASSERT_STRING_EQUAL(again.aud, c.aud);
	CU_ASSERT_EQUAL(again.exp, c.exp);
	CU_ASSERT_EQUAL(again.auth_time, c.auth_time);
	/* a narrower scope at issuance, never a wider one */
	kos_cred_free(t);
	t = issue("web-1", "decrypt:payments/eu", NULL);
	expect_valid(t, NULL, &c);
	CU_ASSERT_STRING_EQUAL(c.scope, "decrypt:payments/eu");
	kos_cred_free(t);
	CU_ASSERT_EQUAL(kos_cred_issue(ca, "web-1", "decrypt:*", NULL, &t), KOS_E_POLICY);
	CU_ASSERT_PTR_NULL(t);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "out of scope"));
	CU_ASSERT_EQUAL(kos_cred_issue(ca, "nobody", NULL, NULL, &t), KOS_E_NOTFOUND);
}

static void test_token_format(void)
{
	char *t = issue("web-1", NULL, NULL), expect[200];
	uint8_t *h, *p, *s;
	size_t hl, pl, sl;
	json_t *claims;

	h = part(t, 0, &hl);
	snprintf(expect, sizeof(expect), "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
		 kid1);
	CU_ASSERT_STRING_EQUAL((char *)h, expect);
	p = part(t, 1, &pl);
	claims = json_loads((char *)p, JSON_REJECT_DUPLICATES, NULL);
	CU_ASSERT_FATAL(claims != NULL);
	KOS_ASSERT_STR_EQ(json_string_value(json_object_get(claims, "iss")), "kos");
	KOS_ASSERT_STR_EQ(json_string_value(json_object_get(claims, "sub")), "web-1");
	KOS_ASSERT_STR_EQ(json_string_value(json_object_get(claims, "aud")), "kos");
	CU_ASSERT(json_is_integer(json_object_get(claims, "iat")));
	CU_ASSERT(json_is_integer(json_object_get(claims, "nbf")));
	CU_ASSERT(json_is_integer(json_object_get(claims, "exp")));
	CU_ASSERT(json_is_integer(json_object_get(claims, "auth_time")));
	CU_ASSERT_EQUAL(json_string_length(json_object_get(claims, "jti")), 22);
	KOS_ASSERT_STR_EQ(json_string_value(json_object_get(claims, "scope")), SCOPE);
	CU_ASSERT_PTR_NULL(json_object_get(claims, "cnf"));
	s = part(t, 2, &sl);
	CU_ASSERT_EQUAL(sl, 64);
	json_decref(claims);
	free(h);
	free(p);
	free(s);
	kos_cred_free(t);
}

/* The JWKS verifies kos's credentials with plain OpenSSL, and libjwt takes
 * them with the key from the JWKS: no kos code on the verifying side. */
static void test_jwks_interoperates(void)
{
	char *t = issue("web-1", NULL, NULL), *pem, *bad;
	EVP_PKEY *pkey = jwks_key(kid1);
	jwt_t *jwt = NULL;
	size_t i;

	CU_ASSERT_PTR_NOT_NULL_FATAL(pkey);
	CU_ASSERT_TRUE(openssl_verify(pkey, t));
	pem = pem_of(pkey);
	CU_ASSERT_EQUAL(jwt_decode(&jwt, t, (unsigned char *)pem, (int)strlen(pem)), 0);
	CU_ASSERT_EQUAL(jwt_get_alg(jwt), JWT_ALG_ES256);
	KOS_ASSERT_STR_EQ(jwt_get_grant(jwt, "sub"), "web-1");
	KOS_ASSERT_STR_EQ(jwt_get_header(jwt, "kid"), kid1);
	jwt_free(jwt);
	/* and neither takes a changed payload */
	bad = kos_strdup(t);
	i = (size_t)(strchr(bad, '.') - bad) + 5;
	bad[i] = bad[i] == 'A' ? 'B' : 'A';
	CU_ASSERT_FALSE(openssl_verify(pkey, bad));
	jwt = NULL;
	CU_ASSERT_NOT_EQUAL(jwt_decode(&jwt, bad, (unsigned char *)pem, (int)strlen(pem)), 0);
	jwt_free(jwt);
	free(bad);
	kos_free(pem);
	EVP_PKEY_free(pkey);
	kos_cred_free(t);
}

/* Replaces every occurrence of from (same length as to) in s. */
static void replace_all(char *s, const char *from, const char *to)
{
	for (char *p = strstr(s, from); p != NULL; p = strstr(p + strlen(to), from))
		memcpy(p, to, strlen(to));
}

/* A verifier made from the JWKS alone (a KMS front on another host): it
 * takes the authority's credentials and grants, refuses a changed one and a
 * key it was not given, refuses a JWKS with a point off the curve, and does
 * nothing that needs the store. */
static void test_jwks_verifier(void)
{
	char *t = issue("web-1", NULL, NULL), *text = NULL, *bad, *g = NULL, *u = NULL;
	char secret[KOS_CRED_SECRET_LEN + 1], other[KOS_CA_KID_LEN + 1];
	kos_cred_reason why = KOS_CRED_VALID;
	kos_cred_claims c;
	kos_ca *v = NULL;
	size_t i;

	CU_ASSERT_EQUAL_FATAL(kos_ca_jwks(ca, &text), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_ca_new_from_jwks(pol, text, &v), KOS_OK);
	kos_ca_set_clock(v, test_clock, NULL);
	CU_ASSERT_EQUAL(kos_cred_verify(v, t, NULL, &c, &why), KOS_OK);
	CU_ASSERT_STRING_EQUAL(c.sub, "web-1");
	CU_ASSERT_EQUAL(
	    kos_cred_issue_grant(ca, "web-1", "kos-share:k:1:narrow:2", NULL, 30 * SEC, &g),
	    KOS_OK);
	CU_ASSERT_EQUAL(kos_cred_verify(v, g, NULL, &c, &why), KOS_OK);
	CU_ASSERT_STRING_EQUAL(c.scope, "share:kos-share/k/1/narrow/2");
	/* a changed payload */
	bad = kos_strdup(t);
	i = (size_t)(strchr(bad, '.') - bad) + 5;
	bad[i] = bad[i] == 'A' ? 'B' : 'A';
	CU_ASSERT_EQUAL(kos_cred_verify(v, bad, NULL, NULL, &why), KOS_E_INTEGRITY);
	CU_ASSERT_NOT_EQUAL(why, KOS_CRED_VALID);
	free(bad);
	/* expiry is judged as by the authority */
	clock_now += 3600 * SEC;
	CU_ASSERT_EQUAL(kos_cred_verify(v, g, NULL, NULL, &why), KOS_E_INTEGRITY);
	CU_ASSERT_EQUAL(why, KOS_CRED_EXPIRED);
	clock_now -= 3600 * SEC;
	/* it has no store: it issues, registers and revokes nothing */
	CU_ASSERT_EQUAL(kos_ca_client_add(v, "jwks-x", "key:*", secret), KOS_E_INVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "no state store"));
	CU_ASSERT_EQUAL(kos_cred_issue(v, "web-1", NULL, NULL, &u), KOS_E_INVALID);
	CU_ASSERT_EQUAL(
	    kos_cred_issue_grant(v, "web-1", "kos-share:k:1:narrow:2", NULL, 30 * SEC, &u),
	    KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_cred_revoke_client(v, "web-1"), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_ca_rotate(v, NULL), KOS_E_INVALID);
	CU_ASSERT_PTR_NULL(u);
	kos_ca_free(v);
	v = NULL;

	/* a JWKS that does not hold the signing key: the kid is unknown */
	snprintf(other, sizeof(other), "%s", c.kid);
	other[0] = other[0] == 'A' ? 'B' : 'A';
	bad = kos_strdup(text);
	replace_all(bad, c.kid, other);
	CU_ASSERT_EQUAL_FATAL(kos_ca_new_from_jwks(pol, bad, &v), KOS_OK);
	kos_ca_set_clock(v, test_clock, NULL);
	CU_ASSERT_EQUAL(kos_cred_verify(v, t, NULL, NULL, &why), KOS_E_INTEGRITY);
	CU_ASSERT_EQUAL(why, KOS_CRED_UNKNOWN_KID);
	kos_ca_free(v);
	v = NULL;
	/* a changed x with the same y is no point of the curve */
	{
		char *x = strstr(bad, "\"x\": \"");

		CU_ASSERT_PTR_NOT_NULL_FATAL(x);
		x += 6;
		*x = *x == 'A' ? 'B' : 'A';
	}
	CU_ASSERT_EQUAL(kos_ca_new_from_jwks(pol, bad, &v), KOS_E_PARSE);
	CU_ASSERT_PTR_NULL(v);
	free(bad);
	CU_ASSERT_EQUAL(kos_ca_new_from_jwks(pol, "{\"keys\": []}", &v), KOS_E_PARSE);
	CU_ASSERT_EQUAL(kos_ca_new_from_jwks(pol, "not json", &v), KOS_E_PARSE);
	CU_ASSERT_EQUAL(kos_ca_new_from_jwks(pol,
					     "{\"keys\": [{\"kty\": \"RSA\", \"n\": \"AQAB\", "
					     "\"e\": \"AQAB\", \"kid\": \"x\"}]}",
					     &v),
			KOS_E_PARSE);
	CU_ASSERT_PTR_NULL(v);
	kos_free(text);
	kos_cred_free(g);
	kos_cred_free(t);
}

/* --- refusals --- */

static void test_expired(void)
{
	kos_usec start = clock_now;
	kos_cred_claims c;
	char *t = issue("web-1", NULL, NULL), *u = issue("web-1", NULL, NULL);

	expect_valid(t, NULL, &c); /* cached from here on */
	/* within the leeway past exp: still valid */
	clock_now = c.exp + pol->credentials.leeway - SEC;
	expect_valid(t, NULL, NULL);
	clock_now = c.exp + pol->credentials.leeway;
	expect_refused(t, NULL, KOS_CRED_EXPIRED, "expired at");
	/* u never went through the cache */
	expect_refused(u, NULL, KOS_CRED_EXPIRED, "expired at");
	clock_now = start;
	kos_cred_free(t);
	kos_cred_free(u);
}

static void test_not_yet_valid(void)
{
	kos_usec start = clock_now;
	char h[200], p[600], *t;

	/* issued "later" by a CA whose clock runs ahead */
	advance(10 * 60 * SEC);
	t = issue("web-1", NULL, NULL);
	clock_now = start;
	expect_refused(t, NULL, KOS_CRED_NOT_YET_VALID, "valid from");
	/* within the leeway it is taken */
	clock_now = start + 10 * 60 * SEC - pol->credentials.leeway;
	expect_valid(t, NULL, NULL);
	clock_now = start;
	kos_cred_free(t);
	/* nbf in the future with iat now */
	header(h, sizeof(h));
	snprintf(p, sizeof(p),
		 "{\"iss\":\"kos\",\"sub\":\"raw\",\"aud\":\"kos\",\"iat\":%lld,\"nbf\":%lld,"
		 "\"exp\":%lld,\"auth_time\":%lld,\"jti\":\"NNNNNNNNNNNNNNNNNNNNNN\",\"scope\":"
		 "\"decrypt:x\"}",
		 (long long)(start / SEC), (long long)(start / SEC + 120),
		 (long long)(start / SEC + 300), (long long)(start / SEC));
	t = sign_raw(h, p);
	expect_refused(t, NULL, KOS_CRED_NOT_YET_VALID, "valid from");
	free(t);
}

static void test_wrong_issuer_and_audience(void)
{
	char h[200], p[600], *t;

	header(h, sizeof(h));
	payload(p, sizeof(p), "kos", "\"kos\"", "");
	t = sign_raw(h, p);
	expect_valid(t, NULL, NULL); /* the helper makes good ones */
	free(t);
	payload(p, sizeof(p), "evil", "\"kos\"", "");
	t = sign_raw(h, p);
	expect_refused(t, NULL, KOS_CRED_WRONG_ISSUER, "not issued by \"kos\"");
	free(t);
	payload(p, sizeof(p), "kos", "\"payroll\"", "");
	t = sign_raw(h, p);
	expect_refused(t, NULL, KOS_CRED_WRONG_AUDIENCE, "not meant for \"kos\"");
	free(t);
	/* an array of audiences is taken when it holds ours */
	payload(p, sizeof(p), "kos", "[\"payroll\",\"kos\"]", "");
	t = sign_raw(h, p);
	expect_valid(t, NULL, NULL);
	free(t);
	payload(p, sizeof(p), "kos", "[\"payroll\"]", "");
	t = sign_raw(h, p);
	expect_refused(t, NULL, KOS_CRED_WRONG_AUDIENCE, "not meant for");
	free(t);
	/* the policy decides: a verifier for another audience refuses ours */
	{
		kos_policy *other = NULL;
		char *mine = issue("web-1", NULL, NULL);

		CU_ASSERT_EQUAL_FATAL(kos_policy_new_default(&other), KOS_OK);
		snprintf(other->credentials.audience, sizeof(other->credentials.audience),
			 "payroll");
		kos_ca_set_policy(ca, other);
		expect_refused(mine, NULL, KOS_CRED_WRONG_AUDIENCE, "not meant for \"payroll\"");
		kos_ca_set_policy(ca, pol);
		expect_valid(mine, NULL, NULL);
		kos_policy_free(other);
		kos_cred_free(mine);
	}
}

static void test_unknown_kid(void)
{
	char h[200], p[600], *t, *forged;
	kos_store *mem = NULL;
	kos_trust *mtr = NULL;
	kos_ca *other = NULL;
	char okid[KOS_CA_KID_LEN + 1];

	/* a kid nobody made */
	snprintf(h, sizeof(h), "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
		 "ZZZZZZZZZZZZZZZZZZZZZZ");
	payload(p, sizeof(p), "kos", "\"kos\"", "");
	t = sign_raw(h, p);
	expect_refused(t, NULL, KOS_CRED_UNKNOWN_KID, "not a key of this CA");
	free(t);
	/* no kid at all */
	t = sign_raw("{\"alg\":\"ES256\",\"typ\":\"JWT\"}", p);
	expect_refused(t, NULL, KOS_CRED_UNKNOWN_KID, "no kos kid");
	free(t);
	/* a real CA key in the same token, but of another CA (another store):
	 * well signed, and still refused */
	CU_ASSERT_EQUAL_FATAL(kos_store_open("memory:", &mem), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_trust_new(pol, mem, &mtr), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_ca_new(pol, mem, hsm, mtr, &other), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_ca_init(other, okid), KOS_OK);
	{
		char secret[KOS_CRED_SECRET_LEN + 1];

		CU_ASSERT_EQUAL_FATAL(kos_ca_client_add(other, "web-1", SCOPE, secret), KOS_OK);
	}
	CU_ASSERT_EQUAL_FATAL(kos_cred_issue(other, "web-1", NULL, NULL, &forged), KOS_OK);
	CU_ASSERT_EQUAL(kos_cred_verify(other, forged, NULL, NULL, NULL), KOS_OK);
	expect_refused(forged, NULL, KOS_CRED_UNKNOWN_KID, okid);
	kos_cred_free(forged);
	kos_ca_free(other);
	kos_trust_free(mtr);
	kos_store_free(mem);
}

static void test_alg_none(void)
{
	char p[600], *h64, *p64, t[1200];

	payload(p, sizeof(p), "kos", "\"kos\"", "");
	h64 = b64s("{\"alg\":\"none\",\"typ\":\"JWT\"}");
	p64 = b64(p, strlen(p));
	snprintf(t, sizeof(t), "%s.%s.", h64, p64);
	expect_refused(t, NULL, KOS_CRED_BAD_ALG, "alg \"none\" refused");
	free(h64);
	/* the case and spelling of ES256 are exact */
	h64 = b64s("{\"alg\":\"es256\",\"typ\":\"JWT\"}");
	snprintf(t, sizeof(t), "%s.%s.AAAA", h64, p64);
	expect_refused(t, NULL, KOS_CRED_BAD_ALG, "only ES256");
	free(h64);
	h64 = b64s("{\"typ\":\"JWT\"}");
	snprintf(t, sizeof(t), "%s.%s.AAAA", h64, p64);
	expect_refused(t, NULL, KOS_CRED_BAD_ALG, "alg \"(none)\"");
	free(h64);
	free(p64);
}

/* The classic key-confusion forgery: HS256 with the CA's public key PEM as
 * the HMAC secret. libjwt 1.10 on its own accepts it; kos must not. */
static void test_hs256_with_public_key(void)
{
	char h[200], p[600], *h64, *p64, *s64, *t, *pem;
	struct kos_store_ca_key key;
	uint8_t mac[32];
	unsigned int mac_len = sizeof(mac);
	size_t n;
	jwt_t *jwt = NULL;

	CU_ASSERT_EQUAL_FATAL(kos_store_ca_key_current(st, &key), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_spki_to_pem(key.spki, key.spki_len, &pem), KOS_OK);
	snprintf(h, sizeof(h), "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", key.kid);
	payload(p, sizeof(p), "kos", "\"kos\"", "");
	h64 = b64(h, strlen(h));
	p64 = b64(p, strlen(p));
	n = strlen(h64) + strlen(p64) + 100;
	t = malloc(n);
	snprintf(t, n, "%s.%s", h64, p64);
	CU_ASSERT_PTR_NOT_NULL_FATAL(
	    HMAC(EVP_sha256(), pem, (int)strlen(pem), (uint8_t *)t, strlen(t), mac, &mac_len));
	s64 = b64(mac, mac_len);
	strcat(t, ".");
	strcat(t, s64);
	/* the premise: libjwt alone takes it */
	CU_ASSERT_EQUAL(jwt_decode(&jwt, t, (unsigned char *)pem, (int)strlen(pem)), 0);
	jwt_free(jwt);
	expect_refused(t, NULL, KOS_CRED_BAD_ALG, "alg \"HS256\" refused");
	free(h64);
	free(p64);
	free(s64);
	free(t);
	kos_free(pem);
}

/* Replaces part i of token by the base64url of text. */
static char *replace_part(const char *token, int i, const uint8_t *data, size_t len)
{
	const char *dot1 = strchr(token, '.'), *dot2 = strrchr(token, '.');
	char *enc = b64(data, len), *out;
	size_t n = strlen(token) + strlen(enc) + 4;

	out = malloc(n);
	CU_ASSERT_FATAL(out != NULL);
	if (i == 0)
		snprintf(out, n, "%s%s", enc, dot1);
	else if (i == 1)
		snprintf(out, n, "%.*s%s%s", (int)(dot1 - token + 1), token, enc, dot2);
	else
		snprintf(out, n, "%.*s%s", (int)(dot2 - token + 1), token, enc);
	free(enc);
	return out;
}

static void test_tampered(void)
{
	char *t = issue("web-1", NULL, NULL), *bad, h[200];
	uint8_t *p, *s;
	size_t pl, sl;

	/* header: a field added (the kid still names a CA key) */
	snprintf(h, sizeof(h), "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"%s\",\"x\":1}", kid1);
	bad = replace_part(t, 0, (uint8_t *)h, strlen(h));
	expect_refused(bad, NULL, KOS_CRED_BAD_SIGNATURE, "does not verify");
	free(bad);
	/* payload: a wider scope */
	p = part(t, 1, &pl);
	{
		char *wide = malloc(pl + 64), *at = strstr((char *)p, SCOPE);

		CU_ASSERT_PTR_NOT_NULL_FATAL(at);
		snprintf(wide, pl + 64, "%.*s*:*%s", (int)(at - (char *)p), (char *)p,
			 at + strlen(SCOPE));
		bad = replace_part(t, 1, (uint8_t *)wide, strlen(wide));
		expect_refused(bad, NULL, KOS_CRED_BAD_SIGNATURE, "does not verify");
		free(bad);
		free(wide);
	}
	/* signature: one bit */
	s = part(t, 2, &sl);
	s[10] ^= 0x01;
	bad = replace_part(t, 2, s, sl);
	expect_refused(bad, NULL, KOS_CRED_BAD_SIGNATURE, "does not verify");
	free(bad);
	/* signature: r and s swapped, and one byte short */
	{
		uint8_t sw[64];

		s[10] ^= 0x01;
		memcpy(sw, s + 32, 32);
		memcpy(sw + 32, s, 32);
		bad = replace_part(t, 2, sw, 64);
		expect_refused(bad, NULL, KOS_CRED_BAD_SIGNATURE, "does not verify");
		free(bad);
		bad = replace_part(t, 2, s, 63);
		expect_refused(bad, NULL, KOS_CRED_MALFORMED, "64 bytes");
		free(bad);
	}
	/* the original still verifies */
	expect_valid(t, NULL, NULL);
	free(p);
	free(s);
	kos_cred_free(t);
}

/* The header must say what kos writes and nothing more, even under a good
 * signature: without typ, with a member more, a kid or typ with a NUL
 * inside (no JSON to jansson's reader); the same members in another order
 * are the same header. */
static void test_header_exact(void)
{
	static const struct {
		const char *before, *after, *words;
	} bad[] = {
	    {"{\"alg\":\"ES256\",\"kid\":\"", "\"}", "not the one kos writes"},
	    {"{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"", "\",\"x5u\":\"https://x/\"}",
	     "not the one kos writes"},
	    {"{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"", "\",\"jwk\":{}}",
	     "not the one kos writes"},
	    {"{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"", "\\u0000x\"}", "not a JSON object"},
	    {"{\"alg\":\"ES256\",\"typ\":\"JWT\\u0000\",\"kid\":\"", "\"}", "not a JSON object"},
	};
	char h[300], p[600], *t;
	size_t i;

	payload(p, sizeof(p), "kos", "\"kos\"", "");
	for (i = 0; i < KOS_ARRAY_SIZE(bad); i++) {
		snprintf(h, sizeof(h), "%s%s%s", bad[i].before, current_kid(), bad[i].after);
		t = sign_raw(h, p);
		expect_refused(t, NULL, KOS_CRED_MALFORMED, bad[i].words);
		free(t);
	}
	/* the control: the same payload under kos's header, and under its
	 * members in another order */
	header(h, sizeof(h));
	t = sign_raw(h, p);
	expect_valid(t, NULL, NULL);
	free(t);
	snprintf(h, sizeof(h), "{\"kid\":\"%s\", \"typ\":\"JWT\", \"alg\":\"ES256\"}",
		 current_kid());
	t = sign_raw(h, p);
	expect_valid(t, NULL, NULL);
	free(t);
}

static void test_oversized(void)
{
	char *big = malloc(KOS_CRED_MAX + 2);
	char *t = issue("web-1", NULL, NULL);

	CU_ASSERT_FATAL(big != NULL);
	memset(big, 'A', KOS_CRED_MAX + 1);
	big[KOS_CRED_MAX + 1] = '\0';
	expect_refused(big, NULL, KOS_CRED_MALFORMED, "larger than 8192 bytes");
	/* a real credential with 8 KiB of padding in front: still too large */
	memset(big, 'A', KOS_CRED_MAX + 1 - strlen(t));
	strcpy(big + KOS_CRED_MAX + 1 - strlen(t), t);
	expect_refused(big, NULL, KOS_CRED_MALFORMED, "larger than");
	/* exactly at the cap it is judged (and found malformed) */
	big[KOS_CRED_MAX] = '\0';
	memset(big, 'A', KOS_CRED_MAX);
	expect_refused(big, NULL, KOS_CRED_MALFORMED, "three dot-separated parts");
	free(big);
	kos_cred_free(t);
}

static void test_malformed(void)
{
	char *t = issue("web-1", NULL, NULL), *bad, h[200], p[600];
	size_t n = strlen(t);

	/* not base64url */
	bad = kos_strdup(t);
	bad[3] = '+';
	expect_refused(bad, NULL, KOS_CRED_MALFORMED, "not base64url");
	bad[3] = '=';
	expect_refused(bad, NULL, KOS_CRED_MALFORMED, "not base64url");
	free(bad);
	/* padding is not JWS */
	bad = malloc(n + 3);
	snprintf(bad, n + 3, "%s==", t);
	expect_refused(bad, NULL, KOS_CRED_MALFORMED, "not base64url");
	free(bad);
	/* too few and too many parts, empty ones */
	expect_refused("", NULL, KOS_CRED_MALFORMED, "three");
	expect_refused("abc.def", NULL, KOS_CRED_MALFORMED, "three");
	bad = malloc(n + 8);
	snprintf(bad, n + 8, "%s.AAAA", t);
	expect_refused(bad, NULL, KOS_CRED_MALFORMED, "three");
	free(bad);
	expect_refused("..", NULL, KOS_CRED_MALFORMED, "header empty");
	/* a base64url length no byte string has, and a non-canonical last character */
	bad = kos_strdup(t);
	memmove(strchr(bad, '.') - 1, strchr(bad, '.'), strlen(strchr(bad, '.')) + 1);
	expect_refused(bad, NULL, KOS_CRED_MALFORMED, "header is not base64url");
	free(bad);
	{
		/* "eyJ9" would need a zero in its last bits: "eyJ-" is not canonical */
		char tok[64];

		snprintf(tok, sizeof(tok), "eyJhIjoxfR.e30.AAAA");
		expect_refused(tok, NULL, KOS_CRED_MALFORMED, "non-canonical");
	}
	/* header: not JSON, not an object, a duplicate name */
	{
		static const char *const heads[] = {"not json", "[1,2]",
						    "{\"alg\":\"ES256\",\"alg\":\"ES256\"}"};

		for (size_t i = 0; i < KOS_ARRAY_SIZE(heads); i++) {
			bad = replace_part(t, 0, (const uint8_t *)heads[i], strlen(heads[i]));
			expect_refused(bad, NULL, KOS_CRED_MALFORMED,
				       "header is not a JSON object");
			free(bad);
		}
	}
	/* a critical extension kos does not know */
	snprintf(h, sizeof(h), "{\"alg\":\"ES256\",\"kid\":\"%s\",\"crit\":[\"b64\"]}", kid1);
	bad = replace_part(t, 0, (uint8_t *)h, strlen(h));
	expect_refused(bad, NULL, KOS_CRED_MALFORMED, "crit");
	free(bad);
	/* signed, but a payload that is not JSON, or claims of the wrong form */
	header(h, sizeof(h));
	bad = sign_raw(h, "{\"iss\":\"kos\"");
	expect_refused(bad, NULL, KOS_CRED_MALFORMED, "payload is not a JSON object");
	free(bad);
	payload(p, sizeof(p), "kos", "\"kos\"", ",\"scope\":\"decrypt:y\"");
	bad = sign_raw(h, p);
	expect_refused(bad, NULL, KOS_CRED_MALFORMED, "payload is not a JSON object");
	free(bad);
	bad = sign_raw(h, "{\"iss\":\"kos\",\"sub\":\"raw\",\"aud\":\"kos\",\"iat\":\"1\"}");
	expect_refused(bad, NULL, KOS_CRED_MALFORMED, "claim \"jti\"");
	free(bad);
	snprintf(p, sizeof(p),
		 "{\"iss\":\"kos\",\"sub\":\"raw\",\"aud\":\"kos\",\"iat\":1.5,\"nbf\":1,"
		 "\"exp\":9,\"auth_time\":1,\"jti\":\"RRRRRRRRRRRRRRRRRRRRRR\",\"scope\":\"a:b\"}");
	bad = sign_raw(h, p);
	expect_refused(bad, NULL, KOS_CRED_MALFORMED, "claim \"iat\" missing or not an integer");
	free(bad);
	payload(p, sizeof(p), "kos", "\"kos\"", ",\"cnf\":{\"jkt\":\"x\"}");
	bad = sign_raw(h, p);
	expect_refused(bad, NULL, KOS_CRED_MALFORMED, "cnf");
	free(bad);
	kos_cred_free(t);
}

/* --- binding to a TLS client certificate --- */

static void test_cnf_binding(void)
{
	uint8_t der_hash[32];
	char x5t[KOS_CRED_X5T_LEN + 1], other[KOS_CRED_X5T_LEN + 1], *t, *r = NULL;
	kos_cred_claims c;

	SHA256((const uint8_t *)"a certificate", 13, der_hash);
	CU_ASSERT_EQUAL_FATAL(kos_b64url_encode(der_hash, 32, x5t, sizeof(x5t)), KOS_OK);
	SHA256((const uint8_t *)"another one", 11, der_hash);
	CU_ASSERT_EQUAL_FATAL(kos_b64url_encode(der_hash, 32, other, sizeof(other)), KOS_OK);
	t = issue("web-1", NULL, x5t);
	expect_valid(t, x5t, &c);
	CU_ASSERT_STRING_EQUAL(c.x5t, x5t);
	expect_refused(t, NULL, KOS_CRED_WRONG_CERT, "none was presented");
	expect_refused(t, other, KOS_CRED_WRONG_CERT, "another client certificate");
	/* a refresh keeps the binding and needs the certificate */
	CU_ASSERT_EQUAL(kos_cred_refresh(ca, t, other, NULL, &r, NULL), KOS_E_INTEGRITY);
	CU_ASSERT_EQUAL_FATAL(kos_cred_refresh(ca, t, x5t, NULL, &r, NULL), KOS_OK);
	expect_valid(r, x5t, &c);
	CU_ASSERT_STRING_EQUAL(c.x5t, x5t);
	expect_refused(r, NULL, KOS_CRED_WRONG_CERT, "none was presented");
	kos_cred_free(r);
	r = NULL;
	/* a bearer credential accepts any channel */
	kos_cred_free(t);
	t = issue("web-1", NULL, NULL);
	expect_valid(t, other, NULL);
	/* a malformed thumbprint is the caller's error */
	CU_ASSERT_EQUAL(kos_cred_verify(ca, t, "short", NULL, NULL), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_cred_issue(ca, "web-1", NULL, "short", &r), KOS_E_INVALID);
	kos_cred_free(t);
	kos_cred_free(r);
}

/* --- revocation --- */

/* The parsed key of kid in the authority's copy (NULL: none), and the copy. */
static EVP_PKEY *parsed_key(const char *kid, const struct ca_pub **copy)
{
	EVP_PKEY *k = NULL;

	pthread_rwlock_rdlock(&ca->lock);
	for (size_t i = 0; i < ca->n_keys; i++)
		if (strcmp(ca->keys[i].kid, kid) == 0)
			k = ca->keys[i].pkey;
	if (copy != NULL)
		*copy = ca->keys;
	pthread_rwlock_unlock(&ca->lock);
	return k;
}

static void test_revoked_by_jti(void)
{
	char *t = issue("web-1", NULL, NULL), *u = issue("web-1", NULL, NULL);
	const struct ca_pub *copy_before, *copy_after;
	EVP_PKEY *key_before;
	kos_cred_claims c;

	expect_valid(t, NULL, &c);
	expect_valid(u, NULL, NULL);
	key_before = parsed_key(c.kid, &copy_before);
	CU_ASSERT_PTR_NOT_NULL(key_before);
	CU_ASSERT_EQUAL_FATAL(kos_cred_revoke_jti(ca, c.jti), KOS_OK);
	expect_refused(t, NULL, KOS_CRED_REVOKED, c.jti);
	/* only that one */
	expect_valid(u, NULL, NULL);
	/* the revocation made a new copy of the keys, and the key was not
	 * parsed again for it */
	CU_ASSERT_PTR_EQUAL(parsed_key(c.kid, &copy_after), key_before);
	CU_ASSERT_PTR_NOT_EQUAL(copy_after, copy_before);
	CU_ASSERT_EQUAL(kos_cred_revoke_jti(ca, "short"), KOS_E_INVALID);
	kos_cred_free(t);
	kos_cred_free(u);
}

static void test_revoked_by_client(void)
{
	char *a, *b, *later;

	add_client("rev-client", "decrypt:x");
	a = issue("rev-client", NULL, NULL);
	b = issue("web-1", NULL, NULL);
	expect_valid(a, NULL, NULL);
	CU_ASSERT_EQUAL_FATAL(kos_cred_revoke_client(ca, "rev-client"), KOS_OK);
	expect_refused(a, NULL, KOS_CRED_REVOKED, "rev-client");
	expect_valid(b, NULL, NULL);
	/* credentials issued after the revocation's second are good */
	advance(SEC);
	later = issue("rev-client", NULL, NULL);
	expect_valid(later, NULL, NULL);
	CU_ASSERT_EQUAL(kos_cred_revoke_client(ca, "nobody"), KOS_E_NOTFOUND);
	kos_cred_free(a);
	kos_cred_free(b);
	kos_cred_free(later);
}

static void test_revoked_by_time(void)
{
	char *a, *b, *later;

	advance(SEC);
	a = issue("web-1", NULL, NULL);
	b = issue("rev-client", NULL, NULL);
	expect_valid(a, NULL, NULL);
	advance(2 * SEC);
	CU_ASSERT_EQUAL(kos_cred_revoke_before(ca, clock_now + SEC), KOS_E_INVALID);
	CU_ASSERT_EQUAL_FATAL(kos_cred_revoke_before(ca, clock_now - SEC), KOS_OK);
	expect_refused(a, NULL, KOS_CRED_REVOKED, "revoked");
	expect_refused(b, NULL, KOS_CRED_REVOKED, "revoked");
	later = issue("web-1", NULL, NULL);
	expect_valid(later, NULL, NULL);
	kos_cred_free(a);
	kos_cred_free(b);
	kos_cred_free(later);
}

struct rev_seen {
	int jti, client, before;
};

static int count_revocations(const kos_revocation_info *r, void *arg)
{
	struct rev_seen *s = arg;

	s->jti += strcmp(r->kind, "jti") == 0;
	s->client += strcmp(r->kind, "client") == 0;
	s->before += strcmp(r->kind, "before") == 0;
	CU_ASSERT(r->expires > r->created);
	return 0;
}

static void test_revocations_pruned(void)
{
	struct rev_seen seen = {0, 0, 0};
	kos_usec start = clock_now;
	uint64_t removed = 0;

	CU_ASSERT_EQUAL(kos_cred_revocations(ca, count_revocations, &seen), KOS_OK);
	CU_ASSERT(seen.jti >= 1 && seen.client >= 1 && seen.before == 1);
	/* long after every credential they cover has expired */
	advance(kos_ca_max_lifetime(pol) + pol->credentials.leeway + KOS_CA_RETIRE_MARGIN +
		10 * SEC);
	CU_ASSERT_EQUAL(kos_cred_prune(ca, &removed), KOS_OK);
	CU_ASSERT(removed >= 3);
	memset(&seen, 0, sizeof(seen));
	CU_ASSERT_EQUAL(kos_cred_revocations(ca, count_revocations, &seen), KOS_OK);
	CU_ASSERT_EQUAL(seen.jti + seen.client + seen.before, 0);
	clock_now = start + 3 * SEC;
}

/* A second process with its own handles on the same store: it sees a
 * revocation made here at its next verification, with the default
 * settings, although it had the credential cached. */
static void test_revocation_seen_by_another_process(void)
{
	char *t = issue("web-1", NULL, NULL), *fresh = NULL, c;
	int to_child[2], to_parent[2], status;
	kos_cred_claims claims;
	pid_t pid;

	expect_valid(t, NULL, &claims);
	CU_ASSERT_EQUAL_FATAL(pipe(to_child), 0);
	CU_ASSERT_EQUAL_FATAL(pipe(to_parent), 0);
	fflush(NULL);
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		kos_store *st2 = NULL;
		kos_trust *tr2 = NULL;
		kos_ca *ca2 = NULL;
		char msg;
		int rc = 0;

		/* no token here: a verifier needs only the store */
		if (kos_store_open(kos_config_get0_store(conf), &st2) != KOS_OK ||
		    kos_trust_new(pol, st2, &tr2) != KOS_OK ||
		    kos_ca_new(pol, st2, NULL, tr2, &ca2) != KOS_OK)
			_exit(10);
		kos_ca_set_clock(ca2, test_clock, NULL);
		/* twice: the second answer comes from the cache */
		if (kos_cred_verify(ca2, t, NULL, NULL, NULL) != KOS_OK ||
		    kos_cred_verify(ca2, t, NULL, NULL, NULL) != KOS_OK)
			_exit(11);
		if (write(to_parent[1], "v", 1) != 1 || read(to_child[0], &msg, 1) != 1)
			_exit(12);
		{
			kos_cred_reason why = KOS_CRED_VALID;

			if (kos_cred_verify(ca2, t, NULL, NULL, &why) != KOS_E_INTEGRITY ||
			    why != KOS_CRED_REVOKED)
				rc = 13;
		}
		/* a credential signed by a key made there after we started */
		if (rc == 0 && read(to_child[0], &msg, 1) == 1) {
			char buf[KOS_CRED_MAX + 1];
			ssize_t n = read(to_child[0], buf, sizeof(buf) - 1);

			if (n <= 0)
				rc = 14;
			else {
				buf[n] = '\0';
				if (kos_cred_verify(ca2, buf, NULL, NULL, NULL) != KOS_OK)
					rc = 15;
			}
		}
		kos_ca_free(ca2);
		kos_trust_free(tr2);
		kos_store_free(st2);
		_exit(rc);
	}
	CU_ASSERT_EQUAL(read(to_parent[0], &c, 1), 1);
	CU_ASSERT_EQUAL(kos_cred_revoke_jti(ca, claims.jti), KOS_OK);
	CU_ASSERT_EQUAL(write(to_child[1], "r", 1), 1);
	/* then a rotation, and a credential under the new key */
	CU_ASSERT_EQUAL(kos_ca_rotate(ca, NULL), KOS_OK);
	fresh = issue("web-1", NULL, NULL);
	CU_ASSERT_EQUAL(write(to_child[1], "k", 1), 1);
	CU_ASSERT_EQUAL(write(to_child[1], fresh, strlen(fresh)), (ssize_t)strlen(fresh));
	CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
	CU_ASSERT_TRUE(WIFEXITED(status));
	if (WEXITSTATUS(status) != 0)
		fprintf(stderr, "\nchild exited %d\n", WEXITSTATUS(status));
	CU_ASSERT_EQUAL(WEXITSTATUS(status), 0);
	close(to_child[0]);
	close(to_child[1]);
	close(to_parent[0]);
	close(to_parent[1]);
	kos_cred_free(t);
	kos_cred_free(fresh);
}

struct hammer {
	const char *token;
	_Atomic int *revoked; /* set once the revocation returned */
	_Atomic int early_valid; /* valid answers before it (from the cache) */
	int late_valid;	      /* valid answers after that: must stay 0 */
	int errors;
};

static void *hammer_fn(void *arg)
{
	struct hammer *h = arg;

	int after_count = 0;

	/* cached answers until the revocation, then some uncached refusals
	 * (each a libjwt check) */
	for (long i = 0; i < 5000000 && after_count < 50; i++) {
		int after = atomic_load(h->revoked);
		kos_rv rv = kos_cred_verify(ca, h->token, NULL, NULL, NULL);

		if (rv == KOS_OK && after)
			h->late_valid++;
		else if (rv == KOS_OK)
			atomic_fetch_add(&h->early_valid, 1);
		else if (rv != KOS_OK && rv != KOS_E_INTEGRITY)
			h->errors++;
		after_count += after;
	}
	return NULL;
}

/* Threads verifying a cached credential while it is revoked: once the
 * revocation has returned, no thread is told it is valid. */
static void test_revocation_under_load(void)
{
	char *t = issue("web-1", NULL, NULL);
	_Atomic int revoked = 0;
	struct hammer h[3];
	pthread_t th[3];
	kos_cred_claims c;

	expect_valid(t, NULL, &c);
	for (int i = 0; i < 3; i++) {
		h[i] = (struct hammer){ t, &revoked, 0, 0, 0 };
		CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, hammer_fn, &h[i]), 0);
	}
	/* the revocation lands while every thread is answered from the cache:
	 * each has had a valid answer (deadline 10 s) */
	for (kos_usec end = kos_now() + 10 * KOS_USEC_PER_SEC; kos_now() < end;) {
		if (atomic_load(&h[0].early_valid) > 0 && atomic_load(&h[1].early_valid) > 0 &&
		    atomic_load(&h[2].early_valid) > 0)
			break;
		usleep(1000);
	}
	for (int i = 0; i < 3; i++)
		CU_ASSERT(atomic_load(&h[i].early_valid) > 0);
	CU_ASSERT_EQUAL(kos_cred_revoke_jti(ca, c.jti), KOS_OK);
	atomic_store(&revoked, 1);
	for (int i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		CU_ASSERT_EQUAL(h[i].late_valid, 0);
		CU_ASSERT_EQUAL(h[i].errors, 0);
	}
	kos_cred_free(t);
}

/* --- rotation and keys --- */

static int count_keys(const kos_ca_key_info *k, void *arg)
{
	(*(int *)arg)++;
	CU_ASSERT_EQUAL(strncmp(k->label, "kos-ca:", 7), 0);
	CU_ASSERT_STRING_EQUAL(k->token, "ca");
	return 0;
}

static void test_rotation(void)
{
	char before[KOS_CA_KID_LEN + 1], after[KOS_CA_KID_LEN + 1];
	char *old, *new_t, *long_lived, h[200], p[600];
	kos_cred_claims c;
	EVP_PKEY *k, *old_key;
	int n = 0;

	snprintf(before, sizeof(before), "%s", current_kid());
	old = issue("web-1", NULL, NULL);
	/* what kos never makes: a credential outliving its key's retirement */
	header(h, sizeof(h));
	snprintf(p, sizeof(p),
		 "{\"iss\":\"kos\",\"sub\":\"raw\",\"aud\":\"kos\",\"iat\":%lld,\"nbf\":%lld,"
		 "\"exp\":%lld,\"auth_time\":%lld,\"jti\":\"LLLLLLLLLLLLLLLLLLLLLL\",\"scope\":"
		 "\"decrypt:x\"}",
		 (long long)(clock_now / SEC), (long long)(clock_now / SEC),
		 (long long)(clock_now / SEC + 30 * 86400), (long long)(clock_now / SEC));
	long_lived = sign_raw(h, p);
	expect_valid(long_lived, NULL, NULL);
	old_key = parsed_key(before, NULL);
	CU_ASSERT_PTR_NOT_NULL(old_key);
	CU_ASSERT_EQUAL_FATAL(kos_ca_rotate(ca, after), KOS_OK);
	CU_ASSERT_STRING_NOT_EQUAL(before, after);
	CU_ASSERT_STRING_EQUAL(current_kid(), after);
	/* the rotation parsed the new key only */
	CU_ASSERT_PTR_EQUAL(parsed_key(before, NULL), old_key);
	CU_ASSERT_PTR_NOT_NULL(parsed_key(after, NULL));
	CU_ASSERT_PTR_NOT_EQUAL(parsed_key(after, NULL), old_key);
	new_t = issue("web-1", NULL, NULL);
	expect_valid(new_t, NULL, &c);
	CU_ASSERT_STRING_EQUAL(c.kid, after);
	/* the old key still verifies what it signed, and is in the JWKS */
	expect_valid(old, NULL, &c);
	CU_ASSERT_STRING_EQUAL(c.kid, before);
	k = jwks_key(before);
	CU_ASSERT_PTR_NOT_NULL(k);
	CU_ASSERT_TRUE(k != NULL && openssl_verify(k, old));
	EVP_PKEY_free(k);
	k = jwks_key(after);
	CU_ASSERT_TRUE(k != NULL && openssl_verify(k, new_t));
	EVP_PKEY_free(k);
	CU_ASSERT_EQUAL(kos_ca_init(ca, NULL), KOS_E_EXISTS);

	/* once every credential the old key can have signed has expired, it
	 * leaves the JWKS, and the next rotation destroys it */
	expect_valid(long_lived, NULL, NULL);
	advance(kos_ca_max_lifetime(pol) + pol->credentials.leeway + KOS_CA_RETIRE_MARGIN + SEC);
	CU_ASSERT_PTR_NULL(jwks_key(before));
	expect_refused(old, NULL, KOS_CRED_EXPIRED, "expired at");
	expect_refused(long_lived, NULL, KOS_CRED_UNKNOWN_KID, "no longer verifies");
	CU_ASSERT_EQUAL(kos_ca_list(ca, count_keys, &n), KOS_OK);
	CU_ASSERT(n >= 3);
	CU_ASSERT_EQUAL_FATAL(kos_ca_rotate(ca, NULL), KOS_OK);
	n = 0;
	CU_ASSERT_EQUAL(kos_ca_list(ca, count_keys, &n), KOS_OK);
	CU_ASSERT_EQUAL(n, 2);
	/* and its parsed key leaves the copy */
	CU_ASSERT_EQUAL(kos_ca_sync(ca, true), KOS_OK);
	CU_ASSERT_PTR_NULL(parsed_key(before, NULL));
	{
		size_t tok;
		uint8_t *spki = NULL;
		size_t len = 0;
		char label[64];

		CU_ASSERT_EQUAL_FATAL(kos_hsm_token_find(hsm, "ca", &tok), KOS_OK);
		snprintf(label, sizeof(label), "kos-ca:%s", before);
		CU_ASSERT_EQUAL(kos_signer_pubkey(hsm, tok, label, &spki, &len), KOS_E_NOTFOUND);
		kos_free(spki);
	}
	free(long_lived);
	kos_cred_free(old);
	kos_cred_free(new_t);
}

/* --- enrollment --- */

/* Enrollment over TLS: the credential is bound to the certificate; a
 * malformed thumbprint is refused before the secret is used. */
static void test_enrollment_bound(void)
{
	char secret[KOS_CRED_SECRET_LEN + 1], x5t[KOS_CRED_X5T_LEN + 1], *t = NULL;
	uint8_t der_hash[32];
	kos_cred_claims c;

	SHA256((const uint8_t *)"a certificate", 13, der_hash);
	CU_ASSERT_EQUAL_FATAL(kos_b64url_encode(der_hash, 32, x5t, sizeof(x5t)), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_ca_client_add(ca, "tls-enrollee", "key:*", secret), KOS_OK);
	CU_ASSERT_EQUAL(kos_cred_enroll_bound(ca, secret, "short", &t), KOS_E_INVALID);
	CU_ASSERT_PTR_NULL(t);
	CU_ASSERT_EQUAL_FATAL(kos_cred_enroll_bound(ca, secret, x5t, &t), KOS_OK);
	expect_valid(t, x5t, &c);
	CU_ASSERT_STRING_EQUAL(c.sub, "tls-enrollee");
	CU_ASSERT_STRING_EQUAL(c.x5t, x5t);
	expect_refused(t, NULL, KOS_CRED_WRONG_CERT, "none was presented");
	kos_cred_free(t);
	t = NULL;
	/* an empty thumbprint is a bearer credential, as with kos_cred_enroll */
	CU_ASSERT_EQUAL_FATAL(kos_ca_client_secret(ca, "tls-enrollee", secret), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_cred_enroll_bound(ca, secret, "", &t), KOS_OK);
	expect_valid(t, NULL, &c);
	CU_ASSERT_STRING_EQUAL(c.x5t, "");
	kos_cred_free(t);
}

static void test_enrollment(void)
{
	char secret[KOS_CRED_SECRET_LEN + 1], again[KOS_CRED_SECRET_LEN + 1], *t = NULL;
	kos_trust_info before, after;
	kos_ca_client_info info;
	kos_cred_claims c;

	CU_ASSERT_EQUAL_FATAL(kos_ca_client_add(ca, "enrollee", "sign:ca-2026 decrypt:db", secret),
			      KOS_OK);
	CU_ASSERT_EQUAL(strlen(secret), KOS_CRED_SECRET_LEN);
	CU_ASSERT_EQUAL_FATAL(kos_ca_client_get(ca, "enrollee", &info), KOS_OK);
	CU_ASSERT_EQUAL(info.secret_expires, clock_now + pol->credentials.enrollment);
	CU_ASSERT_EQUAL(kos_ca_client_add(ca, "enrollee", "sign:x", again), KOS_E_EXISTS);
	CU_ASSERT_EQUAL(kos_ca_client_add(ca, "-bad", "sign:x", again), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_ca_client_add(ca, "fine", "sign x", again), KOS_E_INVALID);

	CU_ASSERT_EQUAL_FATAL(kos_cred_enroll(ca, secret, &t), KOS_OK);
	expect_valid(t, NULL, &c);
	CU_ASSERT_STRING_EQUAL(c.sub, "enrollee");
	CU_ASSERT_STRING_EQUAL(c.scope, "sign:ca-2026 decrypt:db");
	CU_ASSERT_EQUAL(c.auth_time, c.iat);
	kos_cred_free(t);
	t = NULL;
	CU_ASSERT_EQUAL_FATAL(kos_ca_client_get(ca, "enrollee", &info), KOS_OK);
	CU_ASSERT_EQUAL(info.secret_expires, 0);

	/* the replay: refused, and no observation of that client, whose
	 * trust a stranger holding the used secret must not lower */
	if (kos_trust_get(tr, "enrollee", &before) != KOS_OK)
		before.observations = 0;
	CU_ASSERT_EQUAL(kos_cred_enroll(ca, secret, &t), KOS_E_INTEGRITY);
	CU_ASSERT_PTR_NULL(t);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "already used"));
	if (kos_trust_get(tr, "enrollee", &after) != KOS_OK)
		after.observations = 0;
	CU_ASSERT_EQUAL(after.observations, before.observations);

	/* unknown and malformed secrets */
	memset(again, 'A', KOS_CRED_SECRET_LEN);
	again[KOS_CRED_SECRET_LEN] = '\0';
	CU_ASSERT_EQUAL(kos_cred_enroll(ca, again, &t), KOS_E_INTEGRITY);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "unknown enrollment secret"));
	CU_ASSERT_EQUAL(kos_cred_enroll(ca, "short", &t), KOS_E_INTEGRITY);

	/* a new secret works once; an expired one never */
	CU_ASSERT_EQUAL_FATAL(kos_ca_client_secret(ca, "enrollee", secret), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_ca_client_secret(ca, "enrollee", again), KOS_OK);
	/* the first was replaced by the second */
	CU_ASSERT_EQUAL(kos_cred_enroll(ca, secret, &t), KOS_E_INTEGRITY);
	advance(pol->credentials.enrollment);
	CU_ASSERT_EQUAL(kos_cred_enroll(ca, again, &t), KOS_E_INTEGRITY);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "expired"));
	advance(-pol->credentials.enrollment);
	CU_ASSERT_EQUAL_FATAL(kos_cred_enroll(ca, again, &t), KOS_OK);
	kos_cred_free(t);
	CU_ASSERT_EQUAL(kos_ca_client_secret(ca, "nobody", secret), KOS_E_NOTFOUND);
	OPENSSL_cleanse(secret, sizeof(secret));
	OPENSSL_cleanse(again, sizeof(again));
}

/* --- refresh --- */

static void test_refresh(void)
{
	kos_policy *short_chain = NULL;
	kos_cred_claims c0, c;
	kos_cred_reason why;
	kos_usec start = clock_now;
	char *t0, *t1 = NULL, *t2 = NULL, *t3 = NULL;

	CU_ASSERT_EQUAL_FATAL(kos_policy_new_default(&short_chain), KOS_OK);
	*short_chain = *pol;
	short_chain->path = NULL;
	short_chain->credentials.max_chain = 12 * 60 * SEC;
	kos_ca_set_policy(ca, short_chain);

	add_client("refresher", SCOPE);
	t0 = issue("refresher", NULL, NULL);
	expect_valid(t0, NULL, &c0);
	/* same scope, then narrower; a wider one is refused */
	advance(4 * 60 * SEC);
	CU_ASSERT_EQUAL_FATAL(kos_cred_refresh(ca, t0, NULL, NULL, &t1, &why), KOS_OK);
	expect_valid(t1, NULL, &c);
	CU_ASSERT_STRING_EQUAL(c.scope, SCOPE);
	CU_ASSERT_STRING_NOT_EQUAL(c.jti, c0.jti);
	CU_ASSERT_EQUAL(c.auth_time, c0.auth_time);
	CU_ASSERT_EQUAL(c.exp, clock_now + 5 * 60 * SEC);
	CU_ASSERT_EQUAL(kos_cred_refresh(ca, t1, NULL, "decrypt:*", &t2, &why), KOS_E_POLICY);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "out of scope"));
	CU_ASSERT_EQUAL(kos_cred_refresh(ca, t1, NULL, "decrypt:payments/* admin:x", &t2, &why),
			KOS_E_POLICY);
	CU_ASSERT_EQUAL_FATAL(kos_cred_refresh(ca, t1, NULL, "decrypt:payments/eu", &t2, &why),
			      KOS_OK);
	expect_valid(t2, NULL, &c);
	CU_ASSERT_STRING_EQUAL(c.scope, "decrypt:payments/eu");
	/* and the narrower one cannot grow back */
	CU_ASSERT_EQUAL(kos_cred_refresh(ca, t2, NULL, SCOPE, &t3, &why), KOS_E_POLICY);
	/* near the chain's end, exp stops at auth_time + max_chain */
	advance(4 * 60 * SEC);
	CU_ASSERT_EQUAL_FATAL(kos_cred_refresh(ca, t1, NULL, NULL, &t3, &why), KOS_OK);
	expect_valid(t3, NULL, &c);
	CU_ASSERT_EQUAL(c.exp, c0.auth_time + 12 * 60 * SEC);
	kos_cred_free(t2);
	t2 = NULL;
	/* beyond max_chain: refused even while the credential itself is in its leeway */
	clock_now = c0.auth_time + 12 * 60 * SEC + 5 * SEC;
	expect_valid(t3, NULL, NULL);
	CU_ASSERT_EQUAL(kos_cred_refresh(ca, t3, NULL, NULL, &t2, &why), KOS_E_POLICY);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "max_chain"));
	CU_ASSERT_PTR_NULL(t2);
	/* an expired one is refused with its reason */
	clock_now = c0.exp + pol->credentials.leeway + SEC;
	CU_ASSERT_EQUAL(kos_cred_refresh(ca, t0, NULL, NULL, &t2, &why), KOS_E_INTEGRITY);
	CU_ASSERT_EQUAL(why, KOS_CRED_EXPIRED);
	clock_now = start + 4 * 60 * SEC;
	/* a revoked one too */
	CU_ASSERT_EQUAL_FATAL(kos_cred_revoke_jti(ca, c0.jti), KOS_OK);
	CU_ASSERT_EQUAL(kos_cred_refresh(ca, t0, NULL, NULL, &t2, &why), KOS_E_INTEGRITY);
	CU_ASSERT_EQUAL(why, KOS_CRED_REVOKED);
	/* a disabled client gets none */
	CU_ASSERT_EQUAL(kos_ca_client_set_disabled(ca, "refresher", 1), KOS_OK);
	CU_ASSERT_EQUAL(kos_cred_refresh(ca, t1, NULL, NULL, &t2, &why), KOS_E_POLICY);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "disabled"));
	CU_ASSERT_EQUAL(kos_cred_issue(ca, "refresher", NULL, NULL, &t2), KOS_E_POLICY);
	CU_ASSERT_EQUAL(kos_ca_client_set_disabled(ca, "refresher", 0), KOS_OK);
	CU_ASSERT_EQUAL(kos_cred_refresh(ca, t1, NULL, NULL, &t2, &why), KOS_OK);

	kos_ca_set_policy(ca, pol);
	kos_policy_free(short_chain);
	clock_now = start + 9 * 60 * SEC;
	kos_cred_free(t0);
	kos_cred_free(t1);
	kos_cred_free(t2);
	kos_cred_free(t3);
}

/* --- lifetimes, tiers and the threat level --- */

static kos_usec lifetime_of(const char *client)
{
	kos_cred_claims c;
	char *t = issue(client, NULL, NULL);

	expect_valid(t, NULL, &c);
	kos_cred_free(t);
	return c.exp - c.iat;
}

static void test_lifetimes_by_threat(void)
{
	kos_threat_info info;

	add_client("life", "decrypt:x");
	CU_ASSERT_EQUAL(kos_threat_get(ca, &info), KOS_OK);
	CU_ASSERT_EQUAL(info.level, KOS_THREAT_NORMAL);
	/* prior 60: medium, 5m */
	CU_ASSERT_EQUAL(lifetime_of("life"), 5 * 60 * SEC);
	/* elevated: thresholds +10 (60 is still medium), lifetimes halved */
	CU_ASSERT_EQUAL(kos_threat_set(ca, KOS_THREAT_ELEVATED, "drill"), KOS_OK);
	CU_ASSERT_EQUAL(lifetime_of("life"), 150 * SEC);
	CU_ASSERT_EQUAL(kos_threat_get(ca, &info), KOS_OK);
	CU_ASSERT_EQUAL(info.level, KOS_THREAT_ELEVATED);
	CU_ASSERT_STRING_EQUAL(info.reason, "drill");
	CU_ASSERT_EQUAL(info.automatic, 0);
	CU_ASSERT_EQUAL(info.since, clock_now);
	/* critical: +25 makes 60 low (1m), times 0.25 */
	CU_ASSERT_EQUAL(kos_threat_set(ca, KOS_THREAT_CRITICAL, NULL), KOS_OK);
	CU_ASSERT_EQUAL(lifetime_of("life"), 15 * SEC);
	/* a high client at normal */
	CU_ASSERT_EQUAL(kos_threat_set(ca, KOS_THREAT_NORMAL, "all clear"), KOS_OK);
	observe_n("life", KOS_EVENT_SUCCESS, 0, 40);
	observe_n("life", KOS_EVENT_LATENCY, 5, 10);
	observe_n("life", KOS_EVENT_REPUTATION, 100, 10);
	observe_n("life", KOS_EVENT_USAGE, 0, 1);
	CU_ASSERT_EQUAL(lifetime_of("life"), 15 * 60 * SEC);
	CU_ASSERT_EQUAL(kos_threat_set(ca, 7, NULL), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_threat_set(ca, KOS_THREAT_NORMAL, "bad\nreason"), KOS_E_INVALID);
}

/* A share grant verifies for its one share and is never renewed. */
static void test_grant_not_refreshable(void)
{
	kos_cred_claims c;
	char *g = NULL, *r = NULL;

	add_client("granted", "decrypt:payments");
	CU_ASSERT_EQUAL_FATAL(
	    kos_cred_issue_grant(ca, "granted", "kos-share:payments:1:wide:3", NULL, 30 * SEC, &g),
	    KOS_OK);
	expect_valid(g, NULL, &c);
	CU_ASSERT_STRING_EQUAL(c.scope, "share:kos-share/payments/1/wide/3");
	CU_ASSERT_EQUAL(c.kind, KOS_CRED_KIND_GRANT);
	CU_ASSERT(c.exp - c.iat <= 30 * SEC);
	CU_ASSERT_EQUAL(kos_cred_refresh(ca, g, NULL, NULL, &r, NULL), KOS_E_POLICY);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "grant cannot be refreshed"));
	CU_ASSERT_PTR_NULL(r);
	/* nor narrowed to its own scope */
	CU_ASSERT_EQUAL(kos_cred_refresh(ca, g, NULL, c.scope, &r, NULL), KOS_E_POLICY);
	CU_ASSERT_PTR_NULL(r);
	kos_cred_free(g);
}

/* The grant kind is in the token ("kos_kind": "grant"); a credential has
 * none; and the kind's form is enforced on whatever carries a good
 * signature: a "grant" naming no share, or a credential naming one. */
static void test_grant_kind(void)
{
	char h[200], p[600], *t, *g = NULL, *text;
	kos_cred_claims c;
	size_t n;

	add_client("kind-1", "decrypt:x");
	t = issue("kind-1", NULL, NULL);
	expect_valid(t, NULL, &c);
	CU_ASSERT_EQUAL(c.kind, KOS_CRED_KIND_CREDENTIAL);
	text = (char *)part(t, 1, &n);
	CU_ASSERT_PTR_NULL(strstr(text, "kos_kind"));
	free(text);
	CU_ASSERT_EQUAL_FATAL(
	    kos_cred_issue_grant(ca, "kind-1", "kos-share:x:1:s:1", NULL, 10 * SEC, &g), KOS_OK);
	text = (char *)part(g, 1, &n);
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"kos_kind\":\"grant\""));
	free(text);
	/* a second verification (from the cache) says the same */
	expect_valid(g, NULL, &c);
	expect_valid(g, NULL, &c);
	CU_ASSERT_EQUAL(c.kind, KOS_CRED_KIND_GRANT);
	kos_cred_free(g);
	kos_cred_free(t);

	header(h, sizeof(h));
	/* signed by the CA but of a form kos never writes */
	payload(p, sizeof(p), "kos", "\"kos\"", ",\"kos_kind\":\"grant\"");
	t = sign_raw(h, p);
	expect_refused(t, NULL, KOS_CRED_MALFORMED, "not one \"share:\" item");
	free(t);
	payload(p, sizeof(p), "kos", "\"kos\"", ",\"kos_kind\":\"admin\"");
	t = sign_raw(h, p);
	expect_refused(t, NULL, KOS_CRED_MALFORMED, "kos_kind");
	free(t);
	snprintf(p, sizeof(p),
		 "{\"iss\":\"kos\",\"sub\":\"raw\",\"aud\":\"kos\",\"iat\":%lld,\"nbf\":%lld,"
		 "\"exp\":%lld,\"auth_time\":%lld,\"jti\":\"RRRRRRRRRRRRRRRRRRRRRR\",\"scope\":"
		 "\"share:kos-share/x/1/s/1\"}",
		 (long long)(clock_now / SEC), (long long)(clock_now / SEC),
		 (long long)(clock_now / SEC + 300), (long long)(clock_now / SEC));
	t = sign_raw(h, p);
	expect_refused(t, NULL, KOS_CRED_MALFORMED, "only grants");
	free(t);
}

/* No path but kos_cred_issue_grant() yields a "share:" item —
 * not refresh (a "*:*" or "*:*payments*" client is the attacker), not
 * administrative issue, not registration, not enrollment. */
static void test_share_scope_refused(void)
{
	char secret[KOS_CRED_SECRET_LEN + 1], *t, *r = NULL;
	const char *share = "share:kos-share/payments/1/low/2";

	add_client("wild-1", "*:*");
	add_client("wild-2", "*:*payments*");
	t = issue("wild-1", NULL, NULL);
	CU_ASSERT_EQUAL(kos_cred_refresh(ca, t, NULL, share, &r, NULL), KOS_E_POLICY);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "share:"));
	CU_ASSERT_PTR_NULL(r);
	/* hidden among other items */
	CU_ASSERT_EQUAL(
	    kos_cred_refresh(ca, t, NULL, "decrypt:a share:kos-share/x/1/s/1", &r, NULL),
	    KOS_E_POLICY);
	CU_ASSERT_PTR_NULL(r);
	kos_cred_free(t);
	t = issue("wild-2", NULL, NULL);
	CU_ASSERT_EQUAL(kos_cred_refresh(ca, t, NULL, share, &r, NULL), KOS_E_POLICY);
	CU_ASSERT_PTR_NULL(r);
	kos_cred_free(t);
	/* administrative issue */
	CU_ASSERT_EQUAL(kos_cred_issue(ca, "wild-1", share, NULL, &r), KOS_E_INVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "share:"));
	CU_ASSERT_PTR_NULL(r);
	/* registration, so no enrollment either */
	CU_ASSERT_EQUAL(kos_ca_client_add(ca, "wild-3", share, secret), KOS_E_INVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "share:"));
	CU_ASSERT_EQUAL(kos_ca_client_add(ca, "wild-3", "decrypt:x share:kos-share/x/1/s/1", secret),
			KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_ca_client_get(ca, "wild-3", &(kos_ca_client_info){0}), KOS_E_NOTFOUND);
}

/* A store written before grants were a kind may hold a registered "share:"
 * scope: enrollment (and issue with the registered scope) still yields no
 * credential carrying it, and the secret is not spent by the refusal. */
static void test_enroll_share_scope_refused(void)
{
	struct kos_store_cred_client *c = calloc(1, sizeof(*c));
	struct kos_store_enrollment e = {0};
	const char *secret = "EEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEE";
	char *t = NULL;

	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT_EQUAL_FATAL(strlen(secret), KOS_CRED_SECRET_LEN);
	snprintf(c->name, sizeof(c->name), "legacy-1");
	snprintf(c->scope, sizeof(c->scope), "decrypt:x share:kos-share/x/1/s/1");
	c->created = clock_now;
	SHA256((const unsigned char *)secret, KOS_CRED_SECRET_LEN, e.hash);
	snprintf(e.client, sizeof(e.client), "legacy-1");
	e.created = clock_now;
	e.expires = clock_now + 3600 * SEC;
	CU_ASSERT_EQUAL_FATAL(kos_store_cred_client_add(st, c, &e), KOS_OK);
	free(c);
	CU_ASSERT_EQUAL(kos_cred_enroll(ca, secret, &t), KOS_E_POLICY);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "share:"));
	CU_ASSERT_PTR_NULL(t);
	CU_ASSERT_EQUAL(kos_cred_issue(ca, "legacy-1", NULL, NULL, &t), KOS_E_POLICY);
	CU_ASSERT_PTR_NULL(t);
	/* a narrower scope without the item is still issued */
	CU_ASSERT_EQUAL(kos_cred_issue(ca, "legacy-1", "decrypt:x", NULL, &t), KOS_OK);
	kos_cred_free(t);
}

/* A grant's exp has no leeway (the CA's test clock). */
static void test_grant_expiry_exact(void)
{
	kos_cred_claims c;
	char *g = NULL;

	CU_ASSERT_FATAL(pol->credentials.leeway > 0);
	add_client("exp-1", "decrypt:x");
	CU_ASSERT_EQUAL_FATAL(
	    kos_cred_issue_grant(ca, "exp-1", "kos-share:x:1:s:1", NULL, 30 * SEC, &g), KOS_OK);
	expect_valid(g, NULL, &c);
	CU_ASSERT_EQUAL(c.exp - c.iat, 30 * SEC);
	clock_now = c.exp - SEC;
	expect_valid(g, NULL, NULL);
	clock_now = c.exp;
	expect_refused(g, NULL, KOS_CRED_EXPIRED, "expired");
	clock_now = c.exp + pol->credentials.leeway - SEC;
	expect_refused(g, NULL, KOS_CRED_EXPIRED, "expired");
	/* a KMS front's verifier (JWKS only) judges it the same */
	{
		char *jwks = NULL;
		kos_cred_reason why = KOS_CRED_VALID;
		kos_ca *v = NULL;

		CU_ASSERT_EQUAL_FATAL(kos_ca_jwks(ca, &jwks), KOS_OK);
		CU_ASSERT_EQUAL_FATAL(kos_ca_new_from_jwks(pol, jwks, &v), KOS_OK);
		kos_ca_set_clock(v, test_clock, NULL);
		clock_now = c.exp - SEC;
		CU_ASSERT_EQUAL(kos_cred_verify(v, g, NULL, NULL, &why), KOS_OK);
		clock_now = c.exp + SEC;
		CU_ASSERT_EQUAL(kos_cred_verify(v, g, NULL, NULL, &why), KOS_E_INTEGRITY);
		CU_ASSERT_EQUAL(why, KOS_CRED_EXPIRED);
		kos_ca_free(v);
		kos_free(jwks);
	}
	clock_now = c.iat;
	kos_cred_free(g);
}

/* A grant is bound like the requester's credential. */
static void test_grant_bound(void)
{
	uint8_t der_hash[32];
	char x5t[KOS_CRED_X5T_LEN + 1], other[KOS_CRED_X5T_LEN + 1], *g = NULL;
	kos_cred_claims c;

	SHA256((const uint8_t *)"the requester's certificate", 27, der_hash);
	CU_ASSERT_EQUAL_FATAL(kos_b64url_encode(der_hash, 32, x5t, sizeof(x5t)), KOS_OK);
	SHA256((const uint8_t *)"someone else's", 14, der_hash);
	CU_ASSERT_EQUAL_FATAL(kos_b64url_encode(der_hash, 32, other, sizeof(other)), KOS_OK);
	add_client("bound-1", "decrypt:x");
	CU_ASSERT_EQUAL_FATAL(
	    kos_cred_issue_grant(ca, "bound-1", "kos-share:x:1:s:1", x5t, 10 * SEC, &g), KOS_OK);
	expect_valid(g, x5t, &c);
	CU_ASSERT_STRING_EQUAL(c.x5t, x5t);
	expect_refused(g, NULL, KOS_CRED_WRONG_CERT, "none was presented");
	expect_refused(g, other, KOS_CRED_WRONG_CERT, "another client certificate");
	kos_cred_free(g);
	g = NULL;
	/* "" is a bearer requester's, and a bad thumbprint the caller's error */
	CU_ASSERT_EQUAL_FATAL(
	    kos_cred_issue_grant(ca, "bound-1", "kos-share:x:1:s:1", "", 10 * SEC, &g), KOS_OK);
	expect_valid(g, other, &c);
	CU_ASSERT_STRING_EQUAL(c.x5t, "");
	kos_cred_free(g);
	g = NULL;
	CU_ASSERT_EQUAL(
	    kos_cred_issue_grant(ca, "bound-1", "kos-share:x:1:s:1", "short", 10 * SEC, &g),
	    KOS_E_INVALID);
	CU_ASSERT_PTR_NULL(g);
}

/* The cache keeps a digest of the whole token, not its text,
 * and a token that differs from a cached one in any byte (here one of its
 * signature) is verified afresh and refused. */
static void test_cache_digest_covers_token(void)
{
	char *t = issue("web-1", NULL, NULL), *bad;
	size_t len = strlen(t), i;

	expect_valid(t, NULL, NULL);
	expect_valid(t, NULL, NULL); /* now from the cache */
	/* a byte inside the signature (not its last character, whose low bits
	 * base64url leaves unused), then the payload and the header */
	{
		size_t at[3];

		at[0] = len - 10;
		at[1] = (size_t)(strchr(t, '.') - t) + 3;
		at[2] = 5;
		for (i = 0; i < 3; i++) {
			bad = kos_strdup(t);
			CU_ASSERT_FATAL(bad != NULL);
			bad[at[i]] = bad[at[i]] == 'A' ? 'B' : 'A';
			CU_ASSERT_EQUAL(kos_cred_verify(ca, bad, NULL, NULL, NULL),
					KOS_E_INTEGRITY);
			free(bad);
		}
	}
	/* the cached entry still serves the genuine token (struct cache_entry
	 * has no field that could hold its text) */
	expect_valid(t, NULL, NULL);
	kos_cred_free(t);
}

static void test_deny_refused(void)
{
	char secret[KOS_CRED_SECRET_LEN + 1], *t = NULL, *r = NULL;
	kos_trust_info info;

	add_client("denied", "decrypt:x");
	t = issue("denied", NULL, NULL);
	observe_n("denied", KOS_EVENT_INTEGRITY, 0, 4);
	observe_n("denied", KOS_EVENT_SCOPE, 0, 6);
	observe_n("denied", KOS_EVENT_LATENCY, 5000, 15);
	observe_n("denied", KOS_EVENT_REPUTATION, 0, 15);
	CU_ASSERT_EQUAL_FATAL(kos_trust_get(tr, "denied", &info), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(info.tier, KOS_TIER_DENY);
	CU_ASSERT_EQUAL(kos_cred_issue(ca, "denied", NULL, NULL, &r), KOS_E_POLICY);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "trust too low"));
	CU_ASSERT_EQUAL(kos_cred_refresh(ca, t, NULL, NULL, &r, NULL), KOS_E_POLICY);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "trust too low"));
	CU_ASSERT_PTR_NULL(r);
	/* nor through enrollment, and the secret is not spent by the refusal */
	CU_ASSERT_EQUAL_FATAL(kos_ca_client_secret(ca, "denied", secret), KOS_OK);
	CU_ASSERT_EQUAL(kos_cred_enroll(ca, secret, &r), KOS_E_POLICY);
	{
		kos_ca_client_info ci;

		CU_ASSERT_EQUAL(kos_ca_client_get(ca, "denied", &ci), KOS_OK);
		CU_ASSERT_NOT_EQUAL(ci.secret_expires, 0);
	}
	OPENSSL_cleanse(secret, sizeof(secret));
	kos_cred_free(t);
}

static void test_threat_automatic(void)
{
	kos_policy *p = NULL;
	kos_store *mem = NULL;
	kos_trust *mtr = NULL;
	kos_ca *mca = NULL;
	kos_threat_info info;
	char name[32];
	int raised = -1;

	CU_ASSERT_EQUAL_FATAL(kos_policy_new_default(&p), KOS_OK);
	p->threat_min_clients = 10;
	CU_ASSERT_EQUAL_FATAL(kos_store_open("memory:", &mem), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_trust_new(p, mem, &mtr), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_ca_new(p, mem, NULL, mtr, &mca), KOS_OK);
	/* 9 clients, 2 anomalous: too few clients to judge */
	for (int i = 0; i < 9; i++) {
		kos_observation ok = {.event = KOS_EVENT_SUCCESS};

		snprintf(name, sizeof(name), "c%d", i);
		CU_ASSERT_EQUAL(kos_trust_observe(mtr, name, &ok, NULL), KOS_OK);
	}
	for (int i = 0; i < 2; i++) {
		kos_observation scope = {.event = KOS_EVENT_SCOPE};

		snprintf(name, sizeof(name), "c%d", i);
		for (int j = 0; j < 5; j++)
			CU_ASSERT_EQUAL(kos_trust_observe(mtr, name, &scope, NULL), KOS_OK);
	}
	CU_ASSERT_EQUAL(kos_threat_evaluate(mca, &info, &raised), KOS_OK);
	CU_ASSERT_EQUAL(raised, 0);
	CU_ASSERT_EQUAL(info.level, KOS_THREAT_NORMAL);
	/* the tenth: 2 of 10 is 20%, past elevated's 10%, short of critical's 25% */
	{
		kos_observation ok = {.event = KOS_EVENT_SUCCESS};

		CU_ASSERT_EQUAL(kos_trust_observe(mtr, "c9", &ok, NULL), KOS_OK);
	}
	CU_ASSERT_EQUAL(kos_threat_evaluate(mca, &info, &raised), KOS_OK);
	CU_ASSERT_EQUAL(raised, 1);
	CU_ASSERT_EQUAL(info.level, KOS_THREAT_ELEVATED);
	CU_ASSERT_EQUAL(info.automatic, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(info.reason, "2 of 10 clients (20%) flagged anomalous"));
	CU_ASSERT_EQUAL(kos_trust_get_threat(mtr), KOS_THREAT_ELEVATED);
	/* once raised, not again */
	CU_ASSERT_EQUAL(kos_threat_evaluate(mca, &info, &raised), KOS_OK);
	CU_ASSERT_EQUAL(raised, 0);
	/* a third anomalous client: 30%, critical */
	{
		kos_observation scope = {.event = KOS_EVENT_SCOPE};

		for (int j = 0; j < 5; j++)
			CU_ASSERT_EQUAL(kos_trust_observe(mtr, "c2", &scope, NULL), KOS_OK);
	}
	CU_ASSERT_EQUAL(kos_threat_evaluate(mca, &info, &raised), KOS_OK);
	CU_ASSERT_EQUAL(raised, 1);
	CU_ASSERT_EQUAL(info.level, KOS_THREAT_CRITICAL);
	/* never lowered automatically; an administrator lowers it */
	CU_ASSERT_EQUAL(kos_threat_set(mca, KOS_THREAT_NORMAL, "reviewed"), KOS_OK);
	CU_ASSERT_EQUAL(kos_threat_get(mca, &info), KOS_OK);
	CU_ASSERT_EQUAL(info.level, KOS_THREAT_NORMAL);
	CU_ASSERT_EQUAL(info.automatic, 0);
	kos_ca_free(mca);
	kos_trust_free(mtr);
	kos_store_free(mem);
	kos_policy_free(p);
}

/* --- handles without tokens, arguments --- */

static void test_verify_only_handle(void)
{
	kos_ca *v = NULL;
	char *t = issue("web-1", NULL, NULL), *u = NULL;
	char secret[KOS_CRED_SECRET_LEN + 1];

	CU_ASSERT_EQUAL_FATAL(kos_ca_new(pol, st, NULL, tr, &v), KOS_OK);
	kos_ca_set_clock(v, test_clock, NULL);
	CU_ASSERT_EQUAL(kos_cred_verify(v, t, NULL, NULL, NULL), KOS_OK);
	CU_ASSERT_EQUAL(kos_ca_rotate(v, NULL), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_cred_issue(v, "web-1", NULL, NULL, &u), KOS_E_INVALID);
	CU_ASSERT_PTR_NULL(u);
	/* clients and secrets need no token */
	CU_ASSERT_EQUAL(kos_ca_client_add(v, "no-token", "decrypt:x", secret), KOS_OK);
	kos_ca_free(v);
	CU_ASSERT_EQUAL(kos_ca_new(NULL, st, NULL, tr, &v), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_cred_verify(ca, NULL, NULL, NULL, NULL), KOS_E_INVALID);
	kos_cred_free(t);
	kos_cred_free(NULL);
	CU_ASSERT_STRING_EQUAL(kos_cred_reason_name(KOS_CRED_REVOKED), "revoked");
	CU_ASSERT_STRING_EQUAL(kos_cred_reason_name(KOS_CRED_BAD_ALG), "invalid credential");
}

static void test_base64url(void)
{
	/* RFC 4648 section 10, in the URL alphabet without padding */
	static const struct {
		const char *raw, *enc;
	} v[] = {{"", ""},	     {"f", "Zg"},	   {"fo", "Zm8"},	  {"foo", "Zm9v"},
		 {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}};
	uint8_t out[16], raw[3] = {0xfb, 0xff, 0xfe};
	char enc[16];
	size_t n;

	for (size_t i = 0; i < KOS_ARRAY_SIZE(v); i++) {
		CU_ASSERT_EQUAL(kos_b64url_encode((const uint8_t *)v[i].raw, strlen(v[i].raw), enc,
						  sizeof(enc)),
				KOS_OK);
		CU_ASSERT_STRING_EQUAL(enc, v[i].enc);
		n = sizeof(out);
		CU_ASSERT_EQUAL(kos_b64url_decode(v[i].enc, strlen(v[i].enc), out, &n), KOS_OK);
		CU_ASSERT_EQUAL(n, strlen(v[i].raw));
		CU_ASSERT_EQUAL(memcmp(out, v[i].raw, n), 0);
	}
	CU_ASSERT_EQUAL(kos_b64url_encode(raw, 3, enc, sizeof(enc)), KOS_OK);
	CU_ASSERT_STRING_EQUAL(enc, "-__-");
	n = sizeof(out);
	CU_ASSERT_EQUAL(kos_b64url_decode("Zh", 2, out, &n), KOS_E_PARSE); /* non-canonical */
	n = sizeof(out);
	CU_ASSERT_EQUAL(kos_b64url_decode("Zm9=", 4, out, &n), KOS_E_PARSE); /* padding */
	n = sizeof(out);
	CU_ASSERT_EQUAL(kos_b64url_decode("Z", 1, out, &n), KOS_E_PARSE); /* 4n+1 */
	n = sizeof(out);
	CU_ASSERT_EQUAL(kos_b64url_decode("Zm+v", 4, out, &n), KOS_E_PARSE); /* alphabet */
	n = 2;
	CU_ASSERT_EQUAL(kos_b64url_decode("Zm9v", 4, out, &n), KOS_E_RANGE);
	CU_ASSERT_EQUAL(kos_b64url_encode(raw, 3, enc, 4), KOS_E_RANGE);
}

int main(void)
{
	static const struct kos_test_case cases[] = {
	    KOS_TEST(test_base64url),
	    KOS_TEST(test_roundtrip),
	    KOS_TEST(test_token_format),
	    KOS_TEST(test_jwks_interoperates),
	    KOS_TEST(test_jwks_verifier),
	    KOS_TEST(test_expired),
	    KOS_TEST(test_not_yet_valid),
	    KOS_TEST(test_wrong_issuer_and_audience),
	    KOS_TEST(test_unknown_kid),
	    KOS_TEST(test_alg_none),
	    KOS_TEST(test_hs256_with_public_key),
	    KOS_TEST(test_tampered),
	    KOS_TEST(test_header_exact),
	    KOS_TEST(test_oversized),
	    KOS_TEST(test_malformed),
	    KOS_TEST(test_cnf_binding),
	    KOS_TEST(test_revoked_by_jti),
	    KOS_TEST(test_revoked_by_client),
	    KOS_TEST(test_revoked_by_time),
	    KOS_TEST(test_revocations_pruned),
	    KOS_TEST(test_revocation_seen_by_another_process),
	    KOS_TEST(test_revocation_under_load),
	    KOS_TEST(test_rotation),
	    KOS_TEST(test_enrollment),
	    KOS_TEST(test_enrollment_bound),
	    KOS_TEST(test_refresh),
	    KOS_TEST(test_lifetimes_by_threat),
	    KOS_TEST(test_grant_not_refreshable),
	    KOS_TEST(test_grant_kind),
	    KOS_TEST(test_share_scope_refused),
	    KOS_TEST(test_enroll_share_scope_refused),
	    KOS_TEST(test_grant_expiry_exact),
	    KOS_TEST(test_grant_bound),
	    KOS_TEST(test_cache_digest_covers_token),
	    KOS_TEST(test_deny_refused),
	    KOS_TEST(test_threat_automatic),
	    KOS_TEST(test_verify_only_handle),
	};

	return kos_test_run("cred", suite_init, suite_cleanup, cases,
			    sizeof(cases) / sizeof(cases[0]));
}
