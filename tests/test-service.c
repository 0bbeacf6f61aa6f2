/* Tests of the service orchestrator on a real installation (SoftHSM tokens,
 * SQLite store): RFC 5869 HKDF vectors, the documented derivation, the seed
 * at rest (never plain in the store, only the token can open it, the
 * wrapping key sensitive and not extractable), service tokens and every
 * refusal, rotation by time and on breach, and the record channel. Formats
 * are re-checked here from kos-service(7) with OpenSSL directly, not
 * through kos. */
#include "config.h"

#include "kos/hsm.h"
#include "kos/internal.h"
#include "kos/store_backend.h"
#include "tests/kos-test.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char inst[512];
static kos_config *conf;
static kos_store *st;
static kos_hsm *hsm;
static kos_services *svc;
static size_t ca_tok;

/* the services' clock; 0: the real one */
static kos_usec fake_now;

static kos_usec fake_clock(void *arg)
{
	(void)arg;
	return fake_now;
}

static void set_time(kos_usec t)
{
	fake_now = t;
	kos_services_set_clock(svc, fake_clock, NULL);
}

static void real_time(void)
{
	kos_services_set_clock(svc, NULL, NULL);
}

static int suite_init(void)
{
	if (kos_test_inst_open(inst, sizeof(inst), KOS_HSM_OPEN_STRICT, &conf, NULL, &st, &hsm) != 0)
		return 1;
	if (kos_hsm_token_find(hsm, "ca", &ca_tok) != KOS_OK ||
	    kos_services_new(st, hsm, &svc) != KOS_OK)
		goto fail;
	return 0;
fail:
	fprintf(stderr, "set-up: %s\n", kos_last_error());
	return 1;
}

static int suite_cleanup(void)
{
	kos_services_free(svc);
	return kos_test_inst_close(conf, NULL, st, hsm);
}

/* --- helpers ------------------------------------------------------------------ */

static void unhex(const char *hex, uint8_t *out, size_t *len)
{
	size_t n = strlen(hex) / 2;

	CU_ASSERT_EQUAL_FATAL(kos_hex_decode(hex, 2 * n, out), KOS_OK);
	*len = n;
}

static void registered(const char *name, const char *ops)
{
	kos_rv rv = kos_service_register(svc, name, ops);

	if (rv != KOS_OK)
		fprintf(stderr, "register %s: %s\n", name, kos_last_error());
	CU_ASSERT_EQUAL_FATAL(rv, KOS_OK);
}

static char *issue(const char *name, const char *op, kos_usec wlen, kos_usec ttl)
{
	char *tok = NULL;
	kos_rv rv = kos_service_token_issue(svc, name, op, wlen, ttl, &tok);

	if (rv != KOS_OK)
		fprintf(stderr, "issue %s/%s: %s\n", name, op, kos_last_error());
	CU_ASSERT_EQUAL_FATAL(rv, KOS_OK);
	CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
	return tok;
}

static void drop(char *tok)
{
	if (tok != NULL)
		kos_secret_free(tok, strlen(tok));
}

static kos_rv validate(const char *tok, const char *op)
{
	kos_service_claims c;

	return kos_service_token_validate(svc, tok, op, &c);
}

/* Unpadded base64url, as kos-service(7) defines it, independently of kos. */
static char *b64url(const uint8_t *in, size_t len)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1);
	int n, i;

	CU_ASSERT_PTR_NOT_NULL_FATAL(out);
	n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	for (i = 0; i < n; i++)
		out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
	while (n > 0 && out[n - 1] == '=')
		n--;
	out[n] = '\0';
	return out;
}

static size_t unb64url(const char *in, size_t n, uint8_t *out)
{
	char buf[2048];
	size_t i, pad = (4 - n % 4) % 4;
	int got;

	CU_ASSERT_FATAL(n + pad < sizeof(buf));
	for (i = 0; i < n; i++)
		buf[i] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
	memset(buf + n, '=', pad);
	got = EVP_DecodeBlock(out, (unsigned char *)buf, (int)(n + pad));
	CU_ASSERT_FATAL(got >= (int)pad);
	return (size_t)got - pad;
}

/* A token text from a payload string and 32 MAC bytes. */
static char *make_token(const char *payload, const uint8_t mac[32])
{
	char *p = b64url((const uint8_t *)payload, strlen(payload));
	char *m = b64url(mac, 32);
	char *t = malloc(strlen(p) + strlen(m) + 32);

	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	sprintf(t, "kos-svc-v1.%s.%s", p, m);
	free(p);
	free(m);
	return t;
}

/* The payload JSON text of a token. */
static void token_payload(const char *tok, char *out, size_t cap)
{
	const char *p = tok + strlen("kos-svc-v1.");
	const char *dot = strchr(p, '.');
	size_t n;

	CU_ASSERT_PTR_NOT_NULL_FATAL(dot);
	CU_ASSERT_FATAL((size_t)(dot - p) * 3 / 4 + 4 < cap);
	n = unb64url(p, (size_t)(dot - p), (uint8_t *)out);
	out[n] = '\0';
}

/* Opens the service's seed with the test's own C_Decrypt, exactly as
 * kos-service(7) describes the wrapped form. CKR_OK and the seed, or the
 * token's refusal. */
static CK_RV token_open_seed(const char *name, uint8_t seed[32])
{
	struct kos_service_row row;
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_OBJECT_HANDLE key;
	CK_ULONG n = 0, out_len;
	uint8_t out[64];
	char aad[128];
	kos_hsm_session s;
	CK_RV crv;

	CU_ASSERT_EQUAL_FATAL(kos_store_service_get(st, name, &row), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(row.wrapped_len, 77);
	CU_ASSERT_EQUAL_FATAL(row.wrapped_seed[0], 1);
	snprintf(aad, sizeof(aad), "kos-service-seed-v1|%s|%u", name, (unsigned)row.seed_version);
	{
		CK_ATTRIBUTE t[] = {
		    {CKA_CLASS, &cls, sizeof(cls)},
		    {CKA_LABEL, (void *)KOS_SERVICE_WRAP_LABEL, strlen(KOS_SERVICE_WRAP_LABEL)},
		    {CKA_ID, row.wrapped_seed + 1, 16},
		};
		CK_GCM_PARAMS gcm = {row.wrapped_seed + 17, 12,		 96,
				     (CK_BYTE_PTR)aad,	    strlen(aad), 128};
		CK_MECHANISM mech = {CKM_AES_GCM, &gcm, sizeof(gcm)};

		CU_ASSERT_EQUAL_FATAL(kos_hsm_session_get(hsm, ca_tok, &s), KOS_OK);
		crv = s.f->C_FindObjectsInit(s.h, t, 3);
		if (crv == CKR_OK) {
			crv = s.f->C_FindObjects(s.h, &key, 1, &n);
			s.f->C_FindObjectsFinal(s.h);
		}
		if (crv == CKR_OK && n == 0)
			crv = CKR_KEY_HANDLE_INVALID;
		if (crv == CKR_OK)
			crv = s.f->C_DecryptInit(s.h, &mech, key);
		if (crv == CKR_OK) {
			out_len = sizeof(out);
			crv = s.f->C_Decrypt(s.h, row.wrapped_seed + 29, 48, out, &out_len);
			if (crv == CKR_OK)
				CU_ASSERT_EQUAL(out_len, 32);
		}
		kos_hsm_session_put(hsm, &s, CKR_OK);
	}
	if (crv == CKR_OK)
		memcpy(seed, out, 32);
	OPENSSL_cleanse(out, sizeof(out));
	return crv;
}

/* The handle of the wrapping key (the only one), via a session the caller
 * puts back. */
static CK_OBJECT_HANDLE wrap_key(kos_hsm_session *s)
{
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_ATTRIBUTE t[] = {
	    {CKA_CLASS, &cls, sizeof(cls)},
	    {CKA_LABEL, (void *)KOS_SERVICE_WRAP_LABEL, strlen(KOS_SERVICE_WRAP_LABEL)},
	};
	CK_OBJECT_HANDLE key[2];
	CK_ULONG n = 0;

	CU_ASSERT_EQUAL_FATAL(kos_hsm_session_get(hsm, ca_tok, s), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(s->f->C_FindObjectsInit(s->h, t, 2), CKR_OK);
	CU_ASSERT_EQUAL(s->f->C_FindObjects(s->h, key, 2, &n), CKR_OK);
	CU_ASSERT_EQUAL(s->f->C_FindObjectsFinal(s->h), CKR_OK);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	return key[0];
}

/* --- HKDF: RFC 5869 appendix A, test cases 1 to 3 ------------------------------- */

static void check_hkdf(const char *ikm_hex, const char *salt_hex, const char *info_hex,
		       const char *okm_hex)
{
	uint8_t ikm[128], salt[128], info[128], okm[128], out[128];
	size_t ikm_len, salt_len, info_len, okm_len;

	unhex(ikm_hex, ikm, &ikm_len);
	unhex(salt_hex, salt, &salt_len);
	unhex(info_hex, info, &info_len);
	unhex(okm_hex, okm, &okm_len);
	CU_ASSERT_EQUAL_FATAL(
	    kos_hkdf_sha256(salt, salt_len, ikm, ikm_len, info, info_len, out, okm_len), KOS_OK);
	CU_ASSERT_EQUAL(memcmp(out, okm, okm_len), 0);
}

static void test_hkdf_rfc5869_case1(void)
{
	check_hkdf("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "000102030405060708090a0b0c",
		   "f0f1f2f3f4f5f6f7f8f9",
		   "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887"
		   "185865");
}

static void test_hkdf_rfc5869_case2(void)
{
	check_hkdf(
	    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f2021222324252627"
	    "28292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f",
	    "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f80818283848586"
	    "8788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacad"
	    "aeaf",
	    "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6"
	    "d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfd"
	    "feff",
	    "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac782"
	    "7271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3"
	    "434f1d87");
}

static void test_hkdf_rfc5869_case3(void)
{
	/* zero-length salt and info */
	check_hkdf("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "", "",
		   "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b6"
		   "1a96c8");
}

static void test_hkdf_refusals(void)
{
	uint8_t ikm[32] = {1}, out[8200], zeros[32] = {0}, a[32], b[32];

	CU_ASSERT_EQUAL(kos_hkdf_sha256(NULL, 0, ikm, 32, NULL, 0, out, 0), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_hkdf_sha256(NULL, 0, ikm, 32, NULL, 0, out, 255 * 32 + 1),
			KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_hkdf_sha256(NULL, 0, ikm, 32, NULL, 0, out, 255 * 32), KOS_OK);
	CU_ASSERT_EQUAL(kos_hkdf_sha256(NULL, 0, NULL, 0, NULL, 0, out, 32), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_hkdf_sha256(NULL, 0, ikm, 32, ikm, 1025, out, 32), KOS_E_INVALID);
	/* RFC 5869 2.2: no salt is a salt of HashLen zeros */
	CU_ASSERT_EQUAL(kos_hkdf_sha256(NULL, 0, ikm, 32, NULL, 0, a, 32), KOS_OK);
	CU_ASSERT_EQUAL(kos_hkdf_sha256(zeros, 32, ikm, 32, NULL, 0, b, 32), KOS_OK);
	CU_ASSERT_EQUAL(memcmp(a, b, 32), 0);
}

/* --- derivation ------------------------------------------------------------------ */

/* The example of kos-service(7), computed with Python's hmac module and with
 * "openssl kdf ... HKDF": seed 00..1f, service payments-api, operation
 * decrypt, 300-second windows, window 5000000. */
static void test_derive_known_answer(void)
{
	uint8_t seed[32], want[32];
	kos_service_keys k;
	size_t n, i;

	for (i = 0; i < 32; i++)
		seed[i] = (uint8_t)i;
	CU_ASSERT_EQUAL_FATAL(kos_service_derive_from_seed(seed, "payments-api", "decrypt", 5000000,
							   300 * KOS_USEC_PER_SEC, &k),
			      KOS_OK);
	unhex("77e25833931f24140d5edbdaa33c1c430276dc7251e67be12f6ed897a51793c6", want, &n);
	CU_ASSERT_EQUAL(memcmp(k.auth, want, 32), 0);
	unhex("c1a3d5048a9297038a1acca7a0b928c79dd28e89864e299306b0caf59668fe18", want, &n);
	CU_ASSERT_EQUAL(memcmp(k.authz, want, 32), 0);
	unhex("f64960b9331250880844482b451c35daf961c6f509757d41b1aa0fdfbcbc2691", want, &n);
	CU_ASSERT_EQUAL(memcmp(k.enc, want, 32), 0);
	CU_ASSERT_EQUAL(k.window, 5000000);
	CU_ASSERT_EQUAL(k.window_len, 300 * KOS_USEC_PER_SEC);
	/* the page's channel key: salt = id 00..0f, ikm = that seed */
	{
		uint8_t id[16], chan[32];

		for (i = 0; i < 16; i++)
			id[i] = (uint8_t)i;
		CU_ASSERT_EQUAL_FATAL(kos_hkdf_sha256(id, 16, seed, 32,
						      (const uint8_t *)"kos-service-v1|channel", 22,
						      chan, 32),
				      KOS_OK);
		unhex("8795d04b5705ff48b1fd426a7c2b9cc15816c9c544e536f470f1549bb91f422b", want, &n);
		CU_ASSERT_EQUAL(memcmp(chan, want, 32), 0);
	}
	kos_service_keys_clear(&k);
	CU_ASSERT_EQUAL(k.auth[0] | k.enc[31], 0);
}

/* Every input of the derivation changes every key. */
static void test_derive_separates(void)
{
	uint8_t seed[32] = {7}, seed2[32] = {8};
	kos_service_keys base, k;
	int i;

	CU_ASSERT_EQUAL_FATAL(kos_service_derive_from_seed(seed, "a", "op", 10, 0, &base), KOS_OK);
	CU_ASSERT_EQUAL(base.window_len, KOS_SERVICE_WINDOW_DEFAULT);
	CU_ASSERT_NOT_EQUAL(memcmp(base.auth, base.authz, 32), 0);
	CU_ASSERT_NOT_EQUAL(memcmp(base.auth, base.enc, 32), 0);
	CU_ASSERT_NOT_EQUAL(memcmp(base.authz, base.enc, 32), 0);
	for (i = 0; i < 5; i++) {
		kos_rv rv;

		switch (i) {
		case 0:
			rv = kos_service_derive_from_seed(seed2, "a", "op", 10, 0, &k);
			break;
		case 1:
			rv = kos_service_derive_from_seed(seed, "b", "op", 10, 0, &k);
			break;
		case 2:
			rv = kos_service_derive_from_seed(seed, "a", "op2", 10, 0, &k);
			break;
		case 3:
			rv = kos_service_derive_from_seed(seed, "a", "op", 11, 0, &k);
			break;
		default:
			rv = kos_service_derive_from_seed(seed, "a", "op", 10,
							  60 * KOS_USEC_PER_SEC, &k);
			break;
		}
		CU_ASSERT_EQUAL_FATAL(rv, KOS_OK);
		CU_ASSERT_NOT_EQUAL(memcmp(base.auth, k.auth, 32), 0);
		CU_ASSERT_NOT_EQUAL(memcmp(base.authz, k.authz, 32), 0);
		CU_ASSERT_NOT_EQUAL(memcmp(base.enc, k.enc, 32), 0);
	}
	CU_ASSERT_EQUAL(kos_service_derive_from_seed(seed, "bad|name", "op", 1, 0, &k),
			KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_service_derive_from_seed(seed, "a", "op|x", 1, 0, &k), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_service_derive_from_seed(seed, "a", "op", 1, 1500000, &k), KOS_E_RANGE);
	CU_ASSERT_EQUAL(kos_service_derive_from_seed(seed, "a", "op", 1,
						     KOS_SERVICE_WINDOW_MAX + KOS_USEC_PER_SEC, &k),
			KOS_E_RANGE);
}

static void test_window(void)
{
	uint64_t w;

	CU_ASSERT_EQUAL(
	    kos_service_window(1500000000 * KOS_USEC_PER_SEC + 999999, 300 * KOS_USEC_PER_SEC, &w),
	    KOS_OK);
	CU_ASSERT_EQUAL(w, 5000000);
	CU_ASSERT_EQUAL(
	    kos_service_window(1500000299 * KOS_USEC_PER_SEC, 300 * KOS_USEC_PER_SEC, &w), KOS_OK);
	CU_ASSERT_EQUAL(w, 5000000);
	CU_ASSERT_EQUAL(
	    kos_service_window(1500000300 * KOS_USEC_PER_SEC, 300 * KOS_USEC_PER_SEC, &w), KOS_OK);
	CU_ASSERT_EQUAL(w, 5000001);
	CU_ASSERT_EQUAL(kos_service_window(0, 0, &w), KOS_E_RANGE);
	CU_ASSERT_EQUAL(kos_service_window(-1, KOS_USEC_PER_SEC, &w), KOS_E_INVALID);
}

/* --- names and the registry ---------------------------------------------------- */

static void test_names(void)
{
	char longname[80];

	memset(longname, 'a', 64);
	longname[64] = '\0';
	CU_ASSERT_TRUE(kos_service_name_valid("svc-1.a_b"));
	CU_ASSERT_TRUE(kos_service_name_valid(longname));
	longname[64] = 'a';
	longname[65] = '\0';
	CU_ASSERT_FALSE(kos_service_name_valid(longname));
	CU_ASSERT_FALSE(kos_service_name_valid(""));
	CU_ASSERT_FALSE(kos_service_name_valid(".x"));
	CU_ASSERT_FALSE(kos_service_name_valid("-x"));
	CU_ASSERT_FALSE(kos_service_name_valid("a b"));
	CU_ASSERT_FALSE(kos_service_name_valid("a|b"));
	CU_ASSERT_TRUE(kos_service_ops_valid("read"));
	CU_ASSERT_TRUE(kos_service_ops_valid("read,write,decrypt:payments"));
	CU_ASSERT_FALSE(kos_service_ops_valid(""));
	CU_ASSERT_FALSE(kos_service_ops_valid("read,"));
	CU_ASSERT_FALSE(kos_service_ops_valid(",read"));
	CU_ASSERT_FALSE(kos_service_ops_valid("read,,write"));
	CU_ASSERT_FALSE(kos_service_ops_valid("read, write"));
	CU_ASSERT_FALSE(kos_service_ops_valid("read,read"));
	CU_ASSERT_FALSE(kos_service_ops_valid("a|b"));
	CU_ASSERT_TRUE(kos_service_ops_valid("a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r,s,t,u,v,w,x,y,z,"
					     "0,1,2,3,4,5"));
	CU_ASSERT_FALSE(kos_service_ops_valid("a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r,s,t,u,v,w,x,y,"
					      "z,0,1,2,3,4,5,6"));
}

static int count_fn(const kos_service_info *info, void *arg)
{
	(void)info;
	(*(int *)arg)++;
	return 0;
}

static void test_register(void)
{
	kos_service_info info;
	int n = 0;

	set_time(1700000000 * KOS_USEC_PER_SEC);
	registered("reg-a", "read,write");
	CU_ASSERT_EQUAL(kos_service_register(svc, "reg-a", "read"), KOS_E_EXISTS);
	CU_ASSERT_EQUAL(kos_service_register(svc, "bad name", "read"), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_service_register(svc, "reg-b", "read,,x"), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_service_get_info(svc, "reg-b", &info), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL_FATAL(kos_service_get_info(svc, "reg-a", &info), KOS_OK);
	CU_ASSERT_STRING_EQUAL(info.name, "reg-a");
	CU_ASSERT_STRING_EQUAL(info.ops, "read,write");
	CU_ASSERT_EQUAL(info.seed_version, 1);
	CU_ASSERT_EQUAL(info.created, 1700000000 * KOS_USEC_PER_SEC);
	CU_ASSERT_EQUAL(info.rotated, info.created);
	CU_ASSERT_EQUAL(kos_service_set_ops(svc, "reg-a", "read"), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_service_get_info(svc, "reg-a", &info), KOS_OK);
	CU_ASSERT_STRING_EQUAL(info.ops, "read");
	CU_ASSERT_EQUAL(kos_service_set_ops(svc, "nope", "read"), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_service_list(svc, count_fn, &n), KOS_OK);
	CU_ASSERT(n >= 1);
	CU_ASSERT_EQUAL(kos_service_remove(svc, "reg-a"), KOS_OK);
	CU_ASSERT_EQUAL(kos_service_remove(svc, "reg-a"), KOS_E_NOTFOUND);
	real_time();
}

/* --- the seed at rest ------------------------------------------------------------ */

static void test_seed_never_plain_in_store(void)
{
	struct kos_service_row row;
	uint8_t seed[32];
	kos_service_keys k, mine;
	uint64_t w;

	registered("rest", "decrypt,sign");
	CU_ASSERT_EQUAL_FATAL(kos_store_service_get(st, "rest", &row), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(token_open_seed("rest", seed), CKR_OK);
	/* nowhere in the row: not the wrapped bytes, not any other field */
	CU_ASSERT_PTR_NULL(memmem(&row, sizeof(row), seed, sizeof(seed)));
	CU_ASSERT_PTR_NULL(memmem(&row, sizeof(row), seed, 8));
	/* the documented derivation from the seed only the token could give */
	CU_ASSERT_EQUAL_FATAL(kos_service_window(kos_now(), 0 + KOS_SERVICE_WINDOW_DEFAULT, &w),
			      KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_service_derive(svc, "rest", "sign", w, 0, &k), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_service_derive_from_seed(seed, "rest", "sign", w, 0, &mine),
			      KOS_OK);
	CU_ASSERT_EQUAL(memcmp(k.auth, mine.auth, 32), 0);
	CU_ASSERT_EQUAL(memcmp(k.authz, mine.authz, 32), 0);
	CU_ASSERT_EQUAL(memcmp(k.enc, mine.enc, 32), 0);
	CU_ASSERT_EQUAL(k.seed_version, 1);
	/* a second service gets another seed */
	registered("rest2", "sign");
	CU_ASSERT_EQUAL_FATAL(kos_service_derive(svc, "rest2", "sign", w, 0, &k), KOS_OK);
	CU_ASSERT_NOT_EQUAL(memcmp(k.auth, mine.auth, 32), 0);
	CU_ASSERT_EQUAL(kos_service_derive(svc, "rest", "write", w, 0, &k), KOS_E_POLICY);
	CU_ASSERT_EQUAL(kos_service_derive(svc, "nope", "sign", w, 0, &k), KOS_E_NOTFOUND);
	OPENSSL_cleanse(seed, sizeof(seed));
	kos_service_keys_clear(&k);
	kos_service_keys_clear(&mine);
}

/* A wrapped seed is bound to its service and version, and to its bytes. */
static void test_wrapped_seed_bound(void)
{
	struct kos_service_row a, b, saved;
	kos_service_keys k;

	registered("bound-a", "x");
	registered("bound-b", "x");
	CU_ASSERT_EQUAL_FATAL(kos_store_service_get(st, "bound-a", &a), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_store_service_get(st, "bound-b", &b), KOS_OK);
	saved = b;
	/* a's wrapped seed copied into b's row */
	memcpy(b.wrapped_seed, a.wrapped_seed, sizeof(a.wrapped_seed));
	CU_ASSERT_EQUAL_FATAL(kos_store_service_put(st, &b), KOS_OK);
	CU_ASSERT_EQUAL(kos_service_derive(svc, "bound-b", "x", 1, 0, &k), KOS_E_INTEGRITY);
	/* the right bytes under another version number */
	b = saved;
	b.seed_version = 2;
	CU_ASSERT_EQUAL_FATAL(kos_store_service_put(st, &b), KOS_OK);
	CU_ASSERT_EQUAL(kos_service_derive(svc, "bound-b", "x", 1, 0, &k), KOS_E_INTEGRITY);
	/* one flipped ciphertext bit */
	b = saved;
	b.wrapped_seed[40] ^= 0x01;
	CU_ASSERT_EQUAL_FATAL(kos_store_service_put(st, &b), KOS_OK);
	CU_ASSERT_EQUAL(kos_service_derive(svc, "bound-b", "x", 1, 0, &k), KOS_E_INTEGRITY);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "token ca"));
	/* an unknown format */
	b = saved;
	b.wrapped_seed[0] = 2;
	CU_ASSERT_EQUAL_FATAL(kos_store_service_put(st, &b), KOS_OK);
	CU_ASSERT_EQUAL(kos_service_derive(svc, "bound-b", "x", 1, 0, &k), KOS_E_INTEGRITY);
	/* back as it was: works again */
	CU_ASSERT_EQUAL_FATAL(kos_store_service_put(st, &saved), KOS_OK);
	CU_ASSERT_EQUAL(kos_service_derive(svc, "bound-b", "x", 1, 0, &k), KOS_OK);
	kos_service_keys_clear(&k);
}

static void test_wrap_key_not_extractable(void)
{
	CK_BBOOL sensitive = CK_FALSE, extractable = CK_TRUE, never = CK_FALSE, always = CK_FALSE,
		 yes = CK_TRUE;
	CK_ATTRIBUTE flags[] = {
	    {CKA_SENSITIVE, &sensitive, sizeof(sensitive)},
	    {CKA_EXTRACTABLE, &extractable, sizeof(extractable)},
	    {CKA_NEVER_EXTRACTABLE, &never, sizeof(never)},
	    {CKA_ALWAYS_SENSITIVE, &always, sizeof(always)},
	};
	CK_ATTRIBUTE relax = {CKA_EXTRACTABLE, &yes, sizeof(yes)};
	uint8_t value[64];
	CK_ATTRIBUTE v = {CKA_VALUE, value, sizeof(value)};
	kos_hsm_session s;
	CK_OBJECT_HANDLE key;

	registered("nx", "x"); /* the key exists from here on */
	key = wrap_key(&s);
	CU_ASSERT_EQUAL(s.f->C_GetAttributeValue(s.h, key, &v, 1), CKR_ATTRIBUTE_SENSITIVE);
	CU_ASSERT_EQUAL(s.f->C_GetAttributeValue(s.h, key, flags, 4), CKR_OK);
	CU_ASSERT_EQUAL(sensitive, CK_TRUE);
	CU_ASSERT_EQUAL(extractable, CK_FALSE);
	CU_ASSERT_EQUAL(never, CK_TRUE);
	CU_ASSERT_EQUAL(always, CK_TRUE);
	CU_ASSERT_NOT_EQUAL(s.f->C_SetAttributeValue(s.h, key, &relax, 1), CKR_OK);
	CU_ASSERT_EQUAL(s.f->C_GetAttributeValue(s.h, key, &v, 1), CKR_ATTRIBUTE_SENSITIVE);
	kos_hsm_session_put(hsm, &s, CKR_OK);
}

/* --- tokens ------------------------------------------------------------------------ */

static void test_token_round_trip(void)
{
	kos_service_claims c;
	char *tok;
	uint64_t w;

	registered("rt", "read,write");
	set_time(1700000123 * KOS_USEC_PER_SEC + 456);
	tok = issue("rt", "read", 0, 0);
	CU_ASSERT_EQUAL(strncmp(tok, "kos-svc-v1.", 11), 0);
	CU_ASSERT(strlen(tok) < KOS_SERVICE_TOKEN_MAX);
	CU_ASSERT_EQUAL_FATAL(kos_service_token_validate(svc, tok, NULL, &c), KOS_OK);
	CU_ASSERT_STRING_EQUAL(c.service, "rt");
	CU_ASSERT_STRING_EQUAL(c.op, "read");
	CU_ASSERT_EQUAL(kos_service_window(fake_now, KOS_SERVICE_WINDOW_DEFAULT, &w), KOS_OK);
	CU_ASSERT_EQUAL(c.window, w);
	CU_ASSERT_EQUAL(c.window_len, KOS_SERVICE_WINDOW_DEFAULT);
	CU_ASSERT_EQUAL(c.seed_version, 1);
	CU_ASSERT_EQUAL(c.issued, 1700000123 * KOS_USEC_PER_SEC);
	CU_ASSERT_EQUAL(c.expires, c.issued + KOS_SERVICE_WINDOW_DEFAULT);
	CU_ASSERT_EQUAL(validate(tok, "read"), KOS_OK);
	CU_ASSERT_EQUAL(validate(tok, "write"), KOS_E_POLICY);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "not 'write'"));
	/* the token text is never part of a refusal */
	CU_ASSERT_PTR_NULL(strstr(kos_last_error(), tok + 11));
	drop(tok);
	/* a window and a lifetime of one's own */
	tok = issue("rt", "write", 60 * KOS_USEC_PER_SEC, 10 * KOS_USEC_PER_SEC);
	CU_ASSERT_EQUAL_FATAL(kos_service_token_validate(svc, tok, "write", &c), KOS_OK);
	CU_ASSERT_EQUAL(c.window_len, 60 * KOS_USEC_PER_SEC);
	CU_ASSERT_EQUAL(c.expires, c.issued + 10 * KOS_USEC_PER_SEC);
	drop(tok);
	CU_ASSERT_EQUAL(kos_service_token_issue(svc, "rt", "read", 60 * KOS_USEC_PER_SEC,
						61 * KOS_USEC_PER_SEC, &tok),
			KOS_E_RANGE);
	CU_ASSERT_PTR_NULL(tok);
	CU_ASSERT_EQUAL(kos_service_token_issue(svc, "rt", "read", 0, 1000, &tok), KOS_E_RANGE);
	CU_ASSERT_EQUAL(kos_service_token_issue(svc, "rt", "read", 1234567, 0, &tok), KOS_E_RANGE);
	CU_ASSERT_EQUAL(kos_service_token_issue(svc, "nope", "read", 0, 0, &tok), KOS_E_NOTFOUND);
	real_time();
}

/* The token is what kos-service(7) says: checked with OpenSSL's HMAC over
 * the documented signing input, under the key derived from the seed the
 * token gives back. */
static void test_token_format_documented(void)
{
	uint8_t seed[32], mac[32], got[64];
	unsigned int mac_len = 0;
	kos_service_keys k;
	char payload[600];
	const char *dot;
	json_t *j;
	size_t n;
	char *tok;

	registered("fmt", "decrypt");
	set_time(1700000000 * KOS_USEC_PER_SEC);
	tok = issue("fmt", "decrypt", 0, 0);
	token_payload(tok, payload, sizeof(payload));
	j = json_loads(payload, 0, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	KOS_ASSERT_STR_EQ(json_string_value(json_object_get(j, "svc")), "fmt");
	KOS_ASSERT_STR_EQ(json_string_value(json_object_get(j, "op")), "decrypt");
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "win")), 1700000000 / 300);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "wlen")), 300);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "sv")), 1);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "iat")), 1700000000);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "exp")), 1700000300);
	CU_ASSERT_EQUAL(json_object_size(j), 7);
	json_decref(j);

	CU_ASSERT_EQUAL_FATAL(token_open_seed("fmt", seed), CKR_OK);
	CU_ASSERT_EQUAL_FATAL(
	    kos_service_derive_from_seed(seed, "fmt", "decrypt", 1700000000 / 300, 0, &k), KOS_OK);
	dot = strrchr(tok, '.');
	CU_ASSERT_PTR_NOT_NULL_FATAL(HMAC(EVP_sha256(), k.auth, 32, (const unsigned char *)tok,
					  (size_t)(dot - tok), mac, &mac_len));
	CU_ASSERT_EQUAL(mac_len, 32);
	CU_ASSERT_EQUAL(strlen(dot + 1), 43);
	n = unb64url(dot + 1, strlen(dot + 1), got);
	CU_ASSERT_EQUAL(n, 32);
	CU_ASSERT_EQUAL(memcmp(got, mac, 32), 0);
	OPENSSL_cleanse(seed, sizeof(seed));
	kos_service_keys_clear(&k);
	drop(tok);
	real_time();
}

static void test_token_tampered(void)
{
	char payload[600], forged[600], *tok, *t, *p;
	uint8_t zeros[32] = {0};
	size_t len, i;

	registered("tamper", "read,admin");
	tok = issue("tamper", "read", 0, 0);
	CU_ASSERT_EQUAL_FATAL(validate(tok, NULL), KOS_OK);
	len = strlen(tok);
	t = malloc(len + 64);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);

	/* one character changed anywhere after the prefix: never valid */
	for (i = 11; i < len; i++) {
		kos_rv rv;

		strcpy(t, tok);
		if (t[i] == '.')
			continue;
		t[i] = t[i] == 'A' ? 'B' : 'A';
		rv = validate(t, NULL);
		CU_ASSERT_NOT_EQUAL(rv, KOS_OK);
		if (rv == KOS_OK)
			fprintf(stderr, "tampered at %zu accepted\n", i);
	}
	/* a flipped bit in the MAC */
	strcpy(t, tok);
	t[len - 5] = t[len - 5] == 'x' ? 'y' : 'x';
	CU_ASSERT_EQUAL(validate(t, NULL), KOS_E_INTEGRITY);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "MAC"));

	/* the claims changed and re-encoded, the MAC kept */
	token_payload(tok, payload, sizeof(payload));
	p = strstr(payload, "\"op\":\"read\"");
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	snprintf(forged, sizeof(forged), "%.*s\"op\":\"admin\"%s", (int)(p - payload), payload,
		 p + strlen("\"op\":\"read\""));
	{
		const char *dot = strrchr(tok, '.');
		uint8_t mac[64];
		char *ft;

		CU_ASSERT_EQUAL(unb64url(dot + 1, strlen(dot + 1), mac), 32);
		ft = make_token(forged, mac);
		CU_ASSERT_EQUAL(validate(ft, NULL), KOS_E_INTEGRITY);
		free(ft);
		/* exp pushed out, MAC kept */
		p = strstr(payload, "\"exp\":");
		CU_ASSERT_PTR_NOT_NULL_FATAL(p);
		snprintf(forged, sizeof(forged), "%.*s\"exp\":9%s", (int)(p - payload), payload,
			 p + 6);
		ft = make_token(forged, mac);
		CU_ASSERT_EQUAL(validate(ft, NULL), KOS_E_INTEGRITY);
		free(ft);
	}

	/* truncated: each prefix of the token */
	for (i = 0; i < len; i++) {
		memcpy(t, tok, i);
		t[i] = '\0';
		CU_ASSERT_NOT_EQUAL(validate(t, NULL), KOS_OK);
	}
	/* appended text, a fourth part, padding, characters outside base64url */
	snprintf(t, len + 64, "%sA", tok);
	CU_ASSERT_EQUAL(validate(t, NULL), KOS_E_PARSE);
	snprintf(t, len + 64, "%s.x", tok);
	CU_ASSERT_EQUAL(validate(t, NULL), KOS_E_PARSE);
	snprintf(t, len + 64, "%s=", tok);
	CU_ASSERT_EQUAL(validate(t, NULL), KOS_E_PARSE);
	strcpy(t, tok);
	t[14] = '+';
	CU_ASSERT_EQUAL(validate(t, NULL), KOS_E_PARSE);
	strcpy(t, tok);
	t[15] = ' ';
	CU_ASSERT_EQUAL(validate(t, NULL), KOS_E_PARSE);
	CU_ASSERT_EQUAL(validate("", NULL), KOS_E_PARSE);
	CU_ASSERT_EQUAL(validate("kos-svc-v1.", NULL), KOS_E_PARSE);
	CU_ASSERT_EQUAL(validate("kos-svc-v1..", NULL), KOS_E_PARSE);
	CU_ASSERT_EQUAL(validate("kos-svc-v2.e30.AAAA", NULL), KOS_E_PARSE);
	CU_ASSERT_EQUAL(validate("kos-svc-v1.!!!!.AAAA", NULL), KOS_E_PARSE);
	/* a non-canonical MAC encoding: the last character's unused bits set */
	strcpy(t, tok);
	{
		static const char alphabet[] =
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
		const char *pos = strchr(alphabet, t[len - 1]);

		CU_ASSERT_PTR_NOT_NULL_FATAL(pos);
		/* 43 characters carry 258 bits: the last one's low 2 bits are unused */
		t[len - 1] = alphabet[(pos - alphabet) ^ 1];
		CU_ASSERT_EQUAL(validate(t, NULL), KOS_E_PARSE);
	}
	/* oversized */
	{
		char *big = malloc(4096);

		CU_ASSERT_PTR_NOT_NULL_FATAL(big);
		memset(big, 'A', 4095);
		memcpy(big, "kos-svc-v1.", 11);
		big[4095] = '\0';
		CU_ASSERT_EQUAL(validate(big, NULL), KOS_E_PARSE);
		free(big);
	}
	/* well-formed base64url around bad JSON and bad claims */
	{
		static const char *bad[] = {
		    "not json",
		    "[1,2]",
		    "\"x\"",
		    "{}",
		    "{\"svc\":\"tamper\",\"op\":\"read\",\"win\":1,\"wlen\":300,\"sv\":1,\"iat\":"
		    "1}",
		    "{\"svc\":\"tamper\",\"op\":\"read\",\"win\":1,\"wlen\":300,\"sv\":1,\"iat\":1,"
		    "\"exp\":2,\"x\":1}",
		    "{\"svc\":\"tamper\",\"op\":\"read\",\"win\":\"1\",\"wlen\":300,\"sv\":1,"
		    "\"iat\":1,\"exp\":2}",
		    "{\"svc\":\"tamper\",\"op\":\"read\",\"win\":1.5,\"wlen\":300,\"sv\":1,"
		    "\"iat\":1,\"exp\":2}",
		    "{\"svc\":\"tamper\",\"op\":\"read\",\"win\":-1,\"wlen\":300,\"sv\":1,"
		    "\"iat\":1,\"exp\":2}",
		    "{\"svc\":\"tamper\",\"op\":\"read\",\"win\":1,\"wlen\":0,\"sv\":1,"
		    "\"iat\":1,\"exp\":2}",
		    "{\"svc\":\"tamper\",\"op\":\"read\",\"win\":1,\"wlen\":300,\"sv\":0,"
		    "\"iat\":1,\"exp\":2}",
		    "{\"svc\":\"tamper\",\"op\":\"read\",\"win\":1,\"wlen\":300,\"sv\":4294967296,"
		    "\"iat\":1,\"exp\":2}",
		    "{\"svc\":\"tam per\",\"op\":\"read\",\"win\":1,\"wlen\":300,\"sv\":1,"
		    "\"iat\":1,\"exp\":2}",
		    "{\"svc\":\"tamper\",\"op\":\"re|ad\",\"win\":1,\"wlen\":300,\"sv\":1,"
		    "\"iat\":1,\"exp\":2}",
		    "{\"svc\":\"tamper\",\"svc\":\"tamper\",\"op\":\"read\",\"win\":1,"
		    "\"wlen\":300,\"sv\":1,\"iat\":1}",
		    "{\"svc\":\"tamper\",\"op\":\"read\",\"win\":1,\"wlen\":300,\"sv\":1,"
		    "\"iat\":1,\"exp\":2",
		};

		for (i = 0; i < KOS_ARRAY_SIZE(bad); i++) {
			char *ft = make_token(bad[i], zeros);

			CU_ASSERT_EQUAL(validate(ft, NULL), KOS_E_PARSE);
			free(ft);
		}
	}
	free(t);
	drop(tok);
}

static void test_token_expired(void)
{
	const kos_usec t0 = 1700000400 * KOS_USEC_PER_SEC; /* a window boundary (300 s) */
	char *tok;

	registered("exp", "read");
	set_time(t0 + 10 * KOS_USEC_PER_SEC);
	tok = issue("exp", "read", 0, 60 * KOS_USEC_PER_SEC);
	set_time(t0 + 69 * KOS_USEC_PER_SEC);
	CU_ASSERT_EQUAL(validate(tok, NULL), KOS_OK);
	set_time(t0 + 70 * KOS_USEC_PER_SEC - 1);
	CU_ASSERT_EQUAL(validate(tok, NULL), KOS_OK);
	set_time(t0 + 70 * KOS_USEC_PER_SEC);
	CU_ASSERT_EQUAL(validate(tok, NULL), KOS_E_RANGE);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "expired"));
	set_time(t0 + 86400 * KOS_USEC_PER_SEC);
	CU_ASSERT_EQUAL(validate(tok, NULL), KOS_E_RANGE);
	drop(tok);
	real_time();
}

static void test_token_window(void)
{
	const kos_usec wlen = 300 * KOS_USEC_PER_SEC;
	const kos_usec t0 = 1700000400 * KOS_USEC_PER_SEC; /* a window boundary */
	char *tok;

	registered("win", "read");
	/* issued late in a window: still valid early in the next one */
	set_time(t0 + wlen - 5 * KOS_USEC_PER_SEC);
	tok = issue("win", "read", wlen, 0);
	set_time(t0 + wlen + 100 * KOS_USEC_PER_SEC);
	CU_ASSERT_EQUAL(validate(tok, NULL), KOS_OK);
	set_time(t0 + 2 * wlen - 5 * KOS_USEC_PER_SEC);
	CU_ASSERT_EQUAL(validate(tok, NULL), KOS_E_RANGE);
	drop(tok);
	/* a token of a window that has not begun (the issuer's clock ahead) */
	set_time(t0 + 2 * wlen);
	tok = issue("win", "read", wlen, 0);
	set_time(t0 + wlen + 10 * KOS_USEC_PER_SEC);
	CU_ASSERT_EQUAL(validate(tok, NULL), KOS_E_RANGE);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "window"));
	set_time(t0 + 2 * wlen);
	CU_ASSERT_EQUAL(validate(tok, NULL), KOS_OK);
	drop(tok);
	real_time();
}

static void test_token_unregistered_op(void)
{
	char *tok = NULL;

	registered("ops", "read,write");
	CU_ASSERT_EQUAL(kos_service_token_issue(svc, "ops", "admin", 0, 0, &tok), KOS_E_POLICY);
	CU_ASSERT_PTR_NULL(tok);
	CU_ASSERT_EQUAL(kos_service_token_issue(svc, "ops", "bad op", 0, 0, &tok), KOS_E_INVALID);
	tok = issue("ops", "write", 0, 0);
	CU_ASSERT_EQUAL(validate(tok, NULL), KOS_OK);
	/* the operation taken away: its tokens stop at once */
	CU_ASSERT_EQUAL_FATAL(kos_service_set_ops(svc, "ops", "read"), KOS_OK);
	CU_ASSERT_EQUAL(validate(tok, NULL), KOS_E_POLICY);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "not registered"));
	CU_ASSERT_EQUAL_FATAL(kos_service_set_ops(svc, "ops", "read,write"), KOS_OK);
	CU_ASSERT_EQUAL(validate(tok, NULL), KOS_OK);
	/* the service gone */
	CU_ASSERT_EQUAL_FATAL(kos_service_remove(svc, "ops"), KOS_OK);
	CU_ASSERT_EQUAL(validate(tok, NULL), KOS_E_NOTFOUND);
	drop(tok);
}

static void test_token_after_rotation(void)
{
	kos_service_keys before, after;
	kos_service_info info;
	char *tok, *tok2;
	uint32_t v = 0;

	registered("rot", "read");
	tok = issue("rot", "read", 0, 0);
	CU_ASSERT_EQUAL_FATAL(kos_service_derive(svc, "rot", "read", 42, 0, &before), KOS_OK);
	CU_ASSERT_EQUAL(validate(tok, NULL), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_service_rotate(svc, "rot", 0, &v), KOS_OK);
	CU_ASSERT_EQUAL(v, 2);
	CU_ASSERT_EQUAL(validate(tok, NULL), KOS_E_RANGE);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "rotated"));
	CU_ASSERT_EQUAL_FATAL(kos_service_derive(svc, "rot", "read", 42, 0, &after), KOS_OK);
	CU_ASSERT_EQUAL(after.seed_version, 2);
	CU_ASSERT_NOT_EQUAL(memcmp(before.auth, after.auth, 32), 0);
	CU_ASSERT_NOT_EQUAL(memcmp(before.enc, after.enc, 32), 0);
	tok2 = issue("rot", "read", 0, 0);
	CU_ASSERT_EQUAL(validate(tok2, NULL), KOS_OK);
	/* breach: at once, and the token of a moment ago is refused too */
	CU_ASSERT_EQUAL_FATAL(kos_service_rotate(svc, "rot", KOS_SERVICE_ROTATE_BREACH, &v),
			      KOS_OK);
	CU_ASSERT_EQUAL(v, 3);
	CU_ASSERT_EQUAL(validate(tok2, NULL), KOS_E_RANGE);
	CU_ASSERT_EQUAL(validate(tok, NULL), KOS_E_RANGE);
	CU_ASSERT_EQUAL_FATAL(kos_service_get_info(svc, "rot", &info), KOS_OK);
	CU_ASSERT_EQUAL(info.seed_version, 3);
	CU_ASSERT_EQUAL(kos_service_rotate(svc, "nope", 0, &v), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_service_rotate(svc, "rot", 0x80, &v), KOS_E_INVALID);
	/* a breach rotation works even when the old wrapped seed is damaged */
	{
		struct kos_service_row row;

		CU_ASSERT_EQUAL_FATAL(kos_store_service_get(st, "rot", &row), KOS_OK);
		memset(row.wrapped_seed, 0xee, sizeof(row.wrapped_seed));
		CU_ASSERT_EQUAL_FATAL(kos_store_service_put(st, &row), KOS_OK);
		CU_ASSERT_EQUAL(kos_service_derive(svc, "rot", "read", 42, 0, &after),
				KOS_E_INTEGRITY);
		CU_ASSERT_EQUAL(kos_service_rotate(svc, "rot", KOS_SERVICE_ROTATE_BREACH, &v),
				KOS_OK);
		CU_ASSERT_EQUAL(kos_service_derive(svc, "rot", "read", 42, 0, &after), KOS_OK);
	}
	drop(tok);
	drop(tok2);
	kos_service_keys_clear(&before);
	kos_service_keys_clear(&after);
}

static void rotated_fn(const char *name, uint32_t version, void *arg)
{
	(void)version;
	if (strncmp(name, "due-", 4) == 0)
		(*(int *)arg)++;
}

static void test_rotate_due(void)
{
	const kos_usec t0 = 1800000000 * KOS_USEC_PER_SEC, hour = 3600 * KOS_USEC_PER_SEC;
	kos_service_info info;
	char *old, *tok;
	int n = 0;

	/* every other service of this program is due too at t0 + 2 days */
	set_time(t0);
	registered("due-a", "read");
	set_time(t0 + hour);
	registered("due-b", "read");
	old = issue("due-a", "read", 0, 0);
	set_time(t0 + 2 * hour - 1);
	CU_ASSERT_EQUAL(kos_services_rotate_due(svc, 2 * hour, rotated_fn, &n), KOS_OK);
	CU_ASSERT_EQUAL(n, 0);
	set_time(t0 + 2 * hour);
	CU_ASSERT_EQUAL(kos_services_rotate_due(svc, 2 * hour, rotated_fn, &n), KOS_OK);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_EQUAL_FATAL(kos_service_get_info(svc, "due-a", &info), KOS_OK);
	CU_ASSERT_EQUAL(info.seed_version, 2);
	CU_ASSERT_EQUAL(info.rotated, t0 + 2 * hour);
	CU_ASSERT_EQUAL_FATAL(kos_service_get_info(svc, "due-b", &info), KOS_OK);
	CU_ASSERT_EQUAL(info.seed_version, 1);
	/* rotated by time: the token made before is refused */
	CU_ASSERT_EQUAL(validate(old, NULL), KOS_E_RANGE);
	tok = issue("due-a", "read", 0, 0);
	CU_ASSERT_EQUAL(validate(tok, NULL), KOS_OK);
	/* the default interval */
	n = 0;
	set_time(t0 + hour + KOS_SERVICE_ROTATION_DEFAULT);
	CU_ASSERT_EQUAL(kos_services_rotate_due(svc, 0, rotated_fn, &n), KOS_OK);
	CU_ASSERT_EQUAL(n, 1); /* due-b; due-a was rotated an hour later */
	CU_ASSERT_EQUAL(kos_services_rotate_due(svc, -1, NULL, NULL), KOS_E_INVALID);
	drop(old);
	drop(tok);
	real_time();
}

/* Without the key in the token the stored seed is useless. Runs last: it
 * destroys the wrapping key. */
static void test_wrap_key_removed(void)
{
	kos_service_keys k;
	kos_hsm_session s;
	CK_OBJECT_HANDLE key;
	uint8_t seed[32];
	char *tok;

	registered("gone", "read");
	tok = issue("gone", "read", 0, 0);
	CU_ASSERT_EQUAL(validate(tok, NULL), KOS_OK); /* the handle is cached now */
	key = wrap_key(&s);
	CU_ASSERT_EQUAL(s.f->C_DestroyObject(s.h, key), CKR_OK);
	kos_hsm_session_put(hsm, &s, CKR_OK);
	CU_ASSERT_EQUAL(validate(tok, NULL), KOS_E_NOTFOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "not on the token"));
	CU_ASSERT_EQUAL(kos_service_derive(svc, "gone", "read", 1, 0, &k), KOS_E_NOTFOUND);
	CU_ASSERT_NOT_EQUAL(token_open_seed("gone", seed), CKR_OK);
	/* a new registration makes a new key; the old seeds stay unreadable */
	registered("after", "read");
	CU_ASSERT_EQUAL(kos_service_derive(svc, "after", "read", 1, 0, &k), KOS_OK);
	CU_ASSERT_EQUAL(kos_service_derive(svc, "gone", "read", 1, 0, &k), KOS_E_NOTFOUND);
	/* rotating gives the service a seed under the new key */
	CU_ASSERT_EQUAL(kos_service_rotate(svc, "gone", KOS_SERVICE_ROTATE_BREACH, NULL), KOS_OK);
	CU_ASSERT_EQUAL(kos_service_derive(svc, "gone", "read", 1, 0, &k), KOS_OK);
	kos_service_keys_clear(&k);
	drop(tok);
}

/* --- the channel ------------------------------------------------------------------ */

static const uint8_t chan_key[32] = {0x42, 1, 2, 3};
static const uint8_t chan_id[16] = {9, 8, 7};

static void pair(kos_channel **a, kos_channel **b, unsigned flags)
{
	CU_ASSERT_EQUAL_FATAL(kos_channel_new(chan_key, chan_id, KOS_CHANNEL_INITIATOR, flags, a),
			      KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_channel_new(chan_key, chan_id, KOS_CHANNEL_RESPONDER, flags, b),
			      KOS_OK);
}

struct rec {
	uint8_t *p;
	size_t n;
};

static struct rec seal(kos_channel *ch, const char *msg)
{
	struct rec r;

	CU_ASSERT_EQUAL_FATAL(kos_channel_seal(ch, (const uint8_t *)msg, strlen(msg), &r.p, &r.n),
			      KOS_OK);
	return r;
}

/* KOS_OK and the plaintext equal to want, or the refusal. */
static kos_rv open_rec(kos_channel *ch, struct rec r, const char *want)
{
	uint8_t *out = NULL;
	size_t n = 0;
	kos_rv rv = kos_channel_open(ch, r.p, r.n, &out, &n);

	if (rv == KOS_OK) {
		CU_ASSERT_EQUAL(n, strlen(want));
		CU_ASSERT(n == 0 || memcmp(out, want, n) == 0);
	} else {
		CU_ASSERT_PTR_NULL(out);
	}
	kos_secret_free(out, n);
	return rv;
}

static void test_channel_round_trip(void)
{
	kos_channel *a, *b;
	struct rec r;
	size_t len;
	int i;

	pair(&a, &b, 0);
	for (i = 0; i < 3; i++) {
		r = seal(a, "hello responder");
		CU_ASSERT_EQUAL(r.n, 17 + 15 + 16);
		CU_ASSERT_EQUAL(r.p[0], 1);
		CU_ASSERT_EQUAL(r.p[4], 1);  /* direction 1 */
		CU_ASSERT_EQUAL(r.p[12], i); /* counter */
		CU_ASSERT_EQUAL(kos_channel_record_len(r.p, &len), KOS_OK);
		CU_ASSERT_EQUAL(len, r.n);
		CU_ASSERT_EQUAL(open_rec(b, r, "hello responder"), KOS_OK);
		kos_free(r.p);
		r = seal(b, "hello initiator");
		CU_ASSERT_EQUAL(r.p[4], 2);
		CU_ASSERT_EQUAL(open_rec(a, r, "hello initiator"), KOS_OK);
		kos_free(r.p);
	}
	r = seal(a, "");
	CU_ASSERT_EQUAL(r.n, 33);
	CU_ASSERT_EQUAL(open_rec(b, r, ""), KOS_OK);
	kos_free(r.p);
	kos_channel_free(a);
	kos_channel_free(b);
}

/* A record is what kos-service(7) says: opened here with OpenSSL under
 * HKDF(salt = id, ikm = key, info = "kos-service-v1|channel"). */
static void test_channel_format_documented(void)
{
	uint8_t key[32], pt[64], tag[16];
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	kos_channel *a, *b;
	struct rec r;
	int n, m;

	pair(&a, &b, 0);
	r = seal(a, "first");
	kos_free(r.p);
	r = seal(a, "second record");
	CU_ASSERT_EQUAL_FATAL(kos_hkdf_sha256(chan_id, 16, chan_key, 32,
					      (const uint8_t *)"kos-service-v1|channel", 22, key,
					      32),
			      KOS_OK);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
	CU_ASSERT_EQUAL(r.p[16], 13); /* length */
	memcpy(tag, r.p + r.n - 16, 16);
	CU_ASSERT_EQUAL(EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, r.p + 1), 1);
	CU_ASSERT_EQUAL(EVP_DecryptUpdate(ctx, NULL, &n, r.p, 17), 1);
	CU_ASSERT_EQUAL(EVP_DecryptUpdate(ctx, pt, &n, r.p + 17, 13), 1);
	CU_ASSERT_EQUAL(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, tag), 1);
	CU_ASSERT_EQUAL(EVP_DecryptFinal_ex(ctx, pt + n, &m), 1);
	CU_ASSERT_EQUAL(n + m, 13);
	CU_ASSERT_EQUAL(memcmp(pt, "second record", 13), 0);
	EVP_CIPHER_CTX_free(ctx);
	kos_free(r.p);
	kos_channel_free(a);
	kos_channel_free(b);
}

static void test_channel_replay_refused(void)
{
	kos_channel *a, *b;
	struct rec r1, r2;

	pair(&a, &b, 0);
	r1 = seal(a, "pay 10");
	r2 = seal(a, "pay 20");
	CU_ASSERT_EQUAL(open_rec(b, r1, "pay 10"), KOS_OK);
	CU_ASSERT_EQUAL(open_rec(b, r1, "pay 10"), KOS_E_INTEGRITY);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "replayed"));
	CU_ASSERT_EQUAL(open_rec(b, r2, "pay 20"), KOS_OK);
	CU_ASSERT_EQUAL(open_rec(b, r2, "pay 20"), KOS_E_INTEGRITY);
	CU_ASSERT_EQUAL(open_rec(b, r1, "pay 10"), KOS_E_INTEGRITY);
	kos_free(r1.p);
	kos_free(r2.p);
	kos_channel_free(a);
	kos_channel_free(b);
}

static void test_channel_reorder_refused(void)
{
	kos_channel *a, *b;
	struct rec r[3];
	int i;

	pair(&a, &b, 0);
	for (i = 0; i < 3; i++)
		r[i] = seal(a, "m");
	/* 2 before 1: 1 is refused; a datagram channel accepts the gap */
	CU_ASSERT_EQUAL(open_rec(b, r[0], "m"), KOS_OK);
	CU_ASSERT_EQUAL(open_rec(b, r[2], "m"), KOS_OK);
	CU_ASSERT_EQUAL(open_rec(b, r[1], "m"), KOS_E_INTEGRITY);
	kos_channel_free(b);
	/* in order: the gap itself is refused, and changes nothing */
	CU_ASSERT_EQUAL_FATAL(
	    kos_channel_new(chan_key, chan_id, KOS_CHANNEL_RESPONDER, KOS_CHANNEL_IN_ORDER, &b),
	    KOS_OK);
	CU_ASSERT_EQUAL(open_rec(b, r[1], "m"), KOS_E_INTEGRITY);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "missing"));
	CU_ASSERT_EQUAL(open_rec(b, r[0], "m"), KOS_OK);
	CU_ASSERT_EQUAL(open_rec(b, r[2], "m"), KOS_E_INTEGRITY);
	CU_ASSERT_EQUAL(open_rec(b, r[1], "m"), KOS_OK);
	CU_ASSERT_EQUAL(open_rec(b, r[2], "m"), KOS_OK);
	for (i = 0; i < 3; i++)
		kos_free(r[i].p);
	kos_channel_free(a);
	kos_channel_free(b);
}

static void test_channel_tampered_refused(void)
{
	kos_channel *a, *b, *other;
	uint8_t other_id[16] = {1};
	struct rec r, good;
	size_t i;

	pair(&a, &b, 0);
	r = seal(a, "transfer 100 to alice");
	/* every single bit flipped: header (AAD), ciphertext and tag */
	for (i = 0; i < r.n * 8; i++) {
		kos_rv rv;

		r.p[i / 8] ^= (uint8_t)(1u << (i % 8));
		rv = open_rec(b, r, "transfer 100 to alice");
		CU_ASSERT(rv == KOS_E_INTEGRITY || rv == KOS_E_PARSE);
		r.p[i / 8] ^= (uint8_t)(1u << (i % 8));
	}
	/* truncated, lengthened */
	CU_ASSERT_EQUAL(open_rec(b, (struct rec){r.p, r.n - 1}, ""), KOS_E_PARSE);
	CU_ASSERT_EQUAL(open_rec(b, (struct rec){r.p, 20}, ""), KOS_E_PARSE);
	/* another channel id (or key) cannot open it */
	CU_ASSERT_EQUAL_FATAL(kos_channel_new(chan_key, other_id, KOS_CHANNEL_RESPONDER, 0, &other),
			      KOS_OK);
	CU_ASSERT_EQUAL(open_rec(other, r, "transfer 100 to alice"), KOS_E_INTEGRITY);
	kos_channel_free(other);
	/* refusals changed nothing: the genuine record still opens */
	CU_ASSERT_EQUAL(open_rec(b, r, "transfer 100 to alice"), KOS_OK);
	good = seal(a, "next");
	CU_ASSERT_EQUAL(open_rec(b, good, "next"), KOS_OK);
	kos_free(good.p);
	kos_free(r.p);
	kos_channel_free(a);
	kos_channel_free(b);
}

static void test_channel_direction_refused(void)
{
	kos_channel *a, *b;
	struct rec r;

	pair(&a, &b, 0);
	/* a record reflected back to its sender */
	r = seal(a, "to b");
	CU_ASSERT_EQUAL(open_rec(a, r, "to b"), KOS_E_INTEGRITY);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "own direction"));
	CU_ASSERT_EQUAL(open_rec(b, r, "to b"), KOS_OK);
	kos_free(r.p);
	/* the responder's records are no good to another responder */
	r = seal(b, "to a");
	CU_ASSERT_EQUAL(open_rec(b, r, "to a"), KOS_E_INTEGRITY);
	CU_ASSERT_EQUAL(open_rec(a, r, "to a"), KOS_OK);
	kos_channel_free(b);
	/* the direction rewritten to the one a fresh responder expects: the
	 * header is authenticated, so the tag catches it */
	CU_ASSERT_EQUAL_FATAL(kos_channel_new(chan_key, chan_id, KOS_CHANNEL_RESPONDER, 0, &b),
			      KOS_OK);
	r.p[4] = 1;
	CU_ASSERT_EQUAL(open_rec(b, r, "to a"), KOS_E_INTEGRITY);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "tag"));
	kos_free(r.p);
	kos_channel_free(a);
	kos_channel_free(b);
}

static void test_channel_limits(void)
{
	uint8_t hdr[17] = {1}, id[16], id2[16], *big, *rec = NULL;
	kos_channel *a;
	size_t len;

	CU_ASSERT_EQUAL(kos_channel_new(chan_key, chan_id, (kos_channel_role)3, 0, &a),
			KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_channel_new(chan_key, chan_id, KOS_CHANNEL_INITIATOR, 0x10, &a),
			KOS_E_INVALID);
	CU_ASSERT_EQUAL_FATAL(kos_channel_new(chan_key, chan_id, KOS_CHANNEL_INITIATOR, 0, &a),
			      KOS_OK);
	big = calloc(1, KOS_CHANNEL_RECORD_MAX + 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	CU_ASSERT_EQUAL(kos_channel_seal(a, big, KOS_CHANNEL_RECORD_MAX + 1, &rec, &len),
			KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_channel_seal(a, big, KOS_CHANNEL_RECORD_MAX, &rec, &len), KOS_OK);
	CU_ASSERT_EQUAL(len, 17 + KOS_CHANNEL_RECORD_MAX + 16);
	kos_free(rec);
	free(big);
	hdr[13] = 0x00;
	hdr[14] = 0x10;
	hdr[15] = 0x00;
	hdr[16] = 0x01; /* 2^20 + 1 */
	CU_ASSERT_EQUAL(kos_channel_record_len(hdr, &len), KOS_E_PARSE);
	hdr[16] = 0x00;
	CU_ASSERT_EQUAL(kos_channel_record_len(hdr, &len), KOS_OK);
	hdr[0] = 2;
	CU_ASSERT_EQUAL(kos_channel_record_len(hdr, &len), KOS_E_PARSE);
	CU_ASSERT_EQUAL(kos_channel_id_random(id), KOS_OK);
	CU_ASSERT_EQUAL(kos_channel_id_random(id2), KOS_OK);
	CU_ASSERT_NOT_EQUAL(memcmp(id, id2, 16), 0);
	kos_channel_free(a);
	kos_channel_free(NULL);
}

/* Service keys to channel: both ends derive the same keys from kos. */
static void test_channel_with_service_keys(void)
{
	kos_service_keys k1, k2;
	kos_channel *a, *b;
	uint8_t id[16];
	struct rec r;

	registered("chan", "stream");
	CU_ASSERT_EQUAL_FATAL(kos_service_derive(svc, "chan", "stream", 7, 0, &k1), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_service_derive(svc, "chan", "stream", 7, 0, &k2), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_channel_id_random(id), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(
	    kos_channel_new(k1.enc, id, KOS_CHANNEL_INITIATOR, KOS_CHANNEL_IN_ORDER, &a), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(
	    kos_channel_new(k2.enc, id, KOS_CHANNEL_RESPONDER, KOS_CHANNEL_IN_ORDER, &b), KOS_OK);
	r = seal(a, "ping");
	CU_ASSERT_EQUAL(open_rec(b, r, "ping"), KOS_OK);
	kos_free(r.p);
	kos_channel_free(a);
	kos_channel_free(b);
	kos_service_keys_clear(&k1);
	kos_service_keys_clear(&k2);
}

int main(void)
{
	static const struct kos_test_case cases[] = {
	    KOS_TEST(test_hkdf_rfc5869_case1),
	    KOS_TEST(test_hkdf_rfc5869_case2),
	    KOS_TEST(test_hkdf_rfc5869_case3),
	    KOS_TEST(test_hkdf_refusals),
	    KOS_TEST(test_derive_known_answer),
	    KOS_TEST(test_derive_separates),
	    KOS_TEST(test_window),
	    KOS_TEST(test_names),
	    KOS_TEST(test_register),
	    KOS_TEST(test_seed_never_plain_in_store),
	    KOS_TEST(test_wrapped_seed_bound),
	    KOS_TEST(test_wrap_key_not_extractable),
	    KOS_TEST(test_token_round_trip),
	    KOS_TEST(test_token_format_documented),
	    KOS_TEST(test_token_tampered),
	    KOS_TEST(test_token_expired),
	    KOS_TEST(test_token_window),
	    KOS_TEST(test_token_unregistered_op),
	    KOS_TEST(test_token_after_rotation),
	    KOS_TEST(test_rotate_due),
	    KOS_TEST(test_channel_round_trip),
	    KOS_TEST(test_channel_format_documented),
	    KOS_TEST(test_channel_replay_refused),
	    KOS_TEST(test_channel_reorder_refused),
	    KOS_TEST(test_channel_tampered_refused),
	    KOS_TEST(test_channel_direction_refused),
	    KOS_TEST(test_channel_limits),
	    KOS_TEST(test_channel_with_service_keys),
	    KOS_TEST(test_wrap_key_removed),
	};

	return kos_test_run("service", suite_init, suite_cleanup, cases, KOS_ARRAY_SIZE(cases));
}
