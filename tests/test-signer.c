/* Tests of signing key pairs on a real SoftHSM token: generation of each
 * type with non-extractable private keys, signatures verified by OpenSSL
 * against the returned SubjectPublicKeyInfo, refusals, destroy, list, PEM,
 * and the private-key handle cache. */
#include "config.h"

#include "common/jws.h"
#include "kos/hsm.h"
#include "kos/internal.h"
#include "kos/rsa_oaep.h"
#include "kos/signer.h"
#include "tests/kos-test.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* SoftHSM 2.6.1 leaks the ASN.1 object it decodes from CKA_EC_PARAMS in
 * every C_SignInit with an EdDSA key (OSSL::byteString2oid; fixed upstream
 * by SoftHSMv2 pull requests 858 and 863). The sanitizer runtimes, when
 * built in, ask these hooks for their defaults: a suppression for leaks
 * allocated under SoftHSM, and full unwinding so the suppression sees the
 * module's frames behind OpenSSL's (built without frame pointers). Leaks of
 * kos's own are still reported. */
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

static char inst[512];
static kos_config *conf;
static kos_hsm *hsm;
static size_t tok; /* the "signer" token */

static const uint8_t msg[] = "kos signs this message";

static int suite_init(void)
{
	char path[700];
	char *diag = NULL;

	snprintf(inst, sizeof(inst), "%s/inst", kos_test_tmpdir());
	if (kos_devinit(inst, 0, kos_test_srcpath("policy/default.policy"), NULL) != KOS_OK) {
		fprintf(stderr, "kos_devinit: %s\n", kos_last_error());
		return 1;
	}
	snprintf(path, sizeof(path), "%s/kos.conf", inst);
	if (kos_config_load(path, &conf, &diag) != KOS_OK) {
		fprintf(stderr, "%s: %s\n", path, diag ? diag : kos_last_error());
		kos_free(diag);
		return 1;
	}
	if (kos_hsm_open(conf, KOS_HSM_OPEN_STRICT, &hsm) != KOS_OK ||
	    kos_hsm_token_find(hsm, "signer", &tok) != KOS_OK) {
		fprintf(stderr, "backend: %s\n", kos_last_error());
		return 1;
	}
	return 0;
}

static int suite_cleanup(void)
{
	kos_signer_forget(hsm);
	kos_hsm_free(hsm);
	kos_config_free(conf);
	return 0;
}

/* --- helpers ------------------------------------------------------------------ */

struct spki {
	uint8_t *der;
	size_t len;
};

static void spki_clear(struct spki *k)
{
	kos_free(k->der);
	k->der = NULL;
	k->len = 0;
}

static void generate(kos_key_type type, const char *label, struct spki *k)
{
	kos_rv rv = kos_signer_generate(hsm, tok, type, label, &k->der, &k->len);

	if (rv != KOS_OK)
		fprintf(stderr, "generate %s: %s\n", label, kos_last_error());
	CU_ASSERT_EQUAL_FATAL(rv, KOS_OK);
	CU_ASSERT_PTR_NOT_NULL_FATAL(k->der);
	CU_ASSERT_FATAL(k->len > 0);
}

/* 1 when sig is a valid signature of data under the public key spki, 0
 * when not, -1 when the check could not be made. No CUnit calls: worker
 * threads use it. */
static int verify_quiet(const struct spki *k, kos_sig_alg alg, const uint8_t *data, size_t len,
			const uint8_t *sig, size_t sig_len)
{
	const unsigned char *p = k->der;
	EVP_PKEY *pkey = d2i_PUBKEY(NULL, &p, (long)k->len);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	ECDSA_SIG *es = NULL;
	BIGNUM *r = NULL, *s = NULL;
	unsigned char *der = NULL;
	int ok = -1, n;

	if (pkey == NULL || ctx == NULL)
		goto out;
	if (alg == KOS_SIG_ECDSA_RAW) {
		/* r||s to DER, as a verifier of JWS ES256 signatures does */
		if (sig_len != 64 || (es = ECDSA_SIG_new()) == NULL)
			goto out;
		r = BN_bin2bn(sig, 32, NULL);
		s = BN_bin2bn(sig + 32, 32, NULL);
		if (r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1)
			goto out;
		r = s = NULL; /* es owns them */
		n = i2d_ECDSA_SIG(es, &der);
		if (n <= 0)
			goto out;
		sig = der;
		sig_len = (size_t)n;
	}
	if (EVP_DigestVerifyInit(ctx, &pctx, alg == KOS_SIG_ED25519 ? NULL : EVP_sha256(), NULL,
				 pkey) != 1)
		goto out;
	if (alg == KOS_SIG_RSA_PSS &&
	    (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
	     EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) != 1 ||
	     EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) != 1))
		goto out;
	ok = EVP_DigestVerify(ctx, sig, sig_len, data, len) == 1;
out:
	OPENSSL_free(der);
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pkey);
	return ok;
}

static int verify(const struct spki *k, kos_sig_alg alg, const uint8_t *data, size_t len,
		  const uint8_t *sig, size_t sig_len)
{
	int ok = verify_quiet(k, alg, data, len, sig, sig_len);

	CU_ASSERT_FATAL(ok >= 0);
	return ok;
}

/* Signs msg with alg, checks the form and length, verifies it, and checks
 * that a tampered message and a tampered signature do not verify. */
static void sign_and_verify(kos_key_type type, const char *label, const struct spki *k,
			    kos_sig_alg alg, kos_sig_alg verify_as, size_t want_len)
{
	uint8_t *sig = NULL, other[sizeof(msg)];
	size_t sig_len = 0;
	kos_rv rv;

	rv = kos_signer_sign(hsm, tok, type, label, alg, msg, sizeof(msg), &sig, &sig_len);
	if (rv != KOS_OK)
		fprintf(stderr, "sign %s: %s\n", label, kos_last_error());
	CU_ASSERT_EQUAL_FATAL(rv, KOS_OK);
	if (want_len != 0)
		CU_ASSERT_EQUAL(sig_len, want_len);
	if (verify_as == KOS_SIG_ECDSA_DER)
		CU_ASSERT_EQUAL(sig[0], 0x30); /* a DER SEQUENCE */
	CU_ASSERT_EQUAL(verify(k, verify_as, msg, sizeof(msg), sig, sig_len), 1);
	memcpy(other, msg, sizeof(msg));
	other[3] ^= 0x01;
	CU_ASSERT_EQUAL(verify(k, verify_as, other, sizeof(other), sig, sig_len), 0);
	if (verify_as != KOS_SIG_ECDSA_DER) {
		sig[sig_len - 1] ^= 0x01;
		CU_ASSERT_EQUAL(verify(k, verify_as, msg, sizeof(msg), sig, sig_len), 0);
	}
	kos_free(sig);
}

/* The handles of label's key objects of class cls (0 when none). */
static CK_OBJECT_HANDLE find_one(kos_hsm_session *s, CK_OBJECT_CLASS cls, const char *label)
{
	CK_ATTRIBUTE t[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_LABEL, (void *)label, strlen(label) },
	};
	CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;
	CK_ULONG n = 0;

	CU_ASSERT_FATAL(s->f->C_FindObjectsInit(s->h, t, 2) == CKR_OK);
	CU_ASSERT(s->f->C_FindObjects(s->h, &obj, 1, &n) == CKR_OK);
	CU_ASSERT(s->f->C_FindObjectsFinal(s->h) == CKR_OK);
	return n == 1 ? obj : CK_INVALID_HANDLE;
}

static CK_BBOOL get_bool(kos_hsm_session *s, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_TYPE type)
{
	CK_BBOOL v = 0xff;
	CK_ATTRIBUTE a = { type, &v, sizeof(v) };

	CU_ASSERT_EQUAL(s->f->C_GetAttributeValue(s->h, obj, &a, 1), CKR_OK);
	return v;
}

/* The private key never leaves the token: secret parts read as sensitive,
 * usage is sign (and for RSA decrypt) only, CKA_ID is SHA-256(label)[:16]. */
static void check_attributes(kos_key_type type, const char *label)
{
	bool rsa = type == KOS_KEY_RSA_2048 || type == KOS_KEY_RSA_3072;
	CK_ATTRIBUTE_TYPE secret = rsa ? CKA_PRIVATE_EXPONENT : CKA_VALUE;
	uint8_t buf[1024], md[32], id[64];
	CK_ATTRIBUTE a = { secret, buf, sizeof(buf) };
	CK_ATTRIBUTE ida = { CKA_ID, id, sizeof(id) };
	CK_OBJECT_HANDLE priv, pub;
	kos_hsm_session s;

	CU_ASSERT_EQUAL_FATAL(kos_hsm_session_get(hsm, tok, &s), KOS_OK);
	priv = find_one(&s, CKO_PRIVATE_KEY, label);
	pub = find_one(&s, CKO_PUBLIC_KEY, label);
	CU_ASSERT_FATAL(priv != CK_INVALID_HANDLE && pub != CK_INVALID_HANDLE);
	CU_ASSERT_EQUAL(s.f->C_GetAttributeValue(s.h, priv, &a, 1), CKR_ATTRIBUTE_SENSITIVE);
	CU_ASSERT_EQUAL(a.ulValueLen, CK_UNAVAILABLE_INFORMATION);
	CU_ASSERT_EQUAL(get_bool(&s, priv, CKA_TOKEN), CK_TRUE);
	CU_ASSERT_EQUAL(get_bool(&s, priv, CKA_PRIVATE), CK_TRUE);
	CU_ASSERT_EQUAL(get_bool(&s, priv, CKA_SENSITIVE), CK_TRUE);
	CU_ASSERT_EQUAL(get_bool(&s, priv, CKA_EXTRACTABLE), CK_FALSE);
	CU_ASSERT_EQUAL(get_bool(&s, priv, CKA_NEVER_EXTRACTABLE), CK_TRUE);
	CU_ASSERT_EQUAL(get_bool(&s, priv, CKA_ALWAYS_SENSITIVE), CK_TRUE);
	CU_ASSERT_EQUAL(get_bool(&s, priv, CKA_LOCAL), CK_TRUE);
	CU_ASSERT_EQUAL(get_bool(&s, priv, CKA_SIGN), CK_TRUE);
	CU_ASSERT_EQUAL(get_bool(&s, priv, CKA_DECRYPT), rsa ? CK_TRUE : CK_FALSE);
	CU_ASSERT_EQUAL(get_bool(&s, priv, CKA_UNWRAP), CK_FALSE);
	CU_ASSERT_EQUAL(get_bool(&s, priv, CKA_DERIVE), CK_FALSE);
	CU_ASSERT_EQUAL(get_bool(&s, pub, CKA_TOKEN), CK_TRUE);
	CU_ASSERT_EQUAL(get_bool(&s, pub, CKA_VERIFY), CK_TRUE);
	CU_ASSERT_EQUAL(get_bool(&s, pub, CKA_ENCRYPT), rsa ? CK_TRUE : CK_FALSE);
	CU_ASSERT_EQUAL(get_bool(&s, pub, CKA_WRAP), CK_FALSE);
	CU_ASSERT_EQUAL(EVP_Digest(label, strlen(label), md, NULL, EVP_sha256(), NULL), 1);
	CU_ASSERT_EQUAL(s.f->C_GetAttributeValue(s.h, priv, &ida, 1), CKR_OK);
	CU_ASSERT_EQUAL(ida.ulValueLen, 16);
	CU_ASSERT(memcmp(id, md, 16) == 0);
	ida.ulValueLen = sizeof(id);
	CU_ASSERT_EQUAL(s.f->C_GetAttributeValue(s.h, pub, &ida, 1), CKR_OK);
	CU_ASSERT_EQUAL(ida.ulValueLen, 16);
	CU_ASSERT(memcmp(id, md, 16) == 0);
	kos_hsm_session_put(hsm, &s, CKR_OK);
}

/* The public key read back from the token is the one generate returned. */
static void check_pubkey(const char *label, const struct spki *k)
{
	struct spki again = { 0 };

	CU_ASSERT_EQUAL_FATAL(kos_signer_pubkey(hsm, tok, label, &again.der, &again.len), KOS_OK);
	CU_ASSERT_EQUAL(again.len, k->len);
	CU_ASSERT(again.len == k->len && memcmp(again.der, k->der, k->len) == 0);
	spki_clear(&again);
}

static int spki_type(const struct spki *k)
{
	const unsigned char *p = k->der;
	EVP_PKEY *pkey = d2i_PUBKEY(NULL, &p, (long)k->len);
	int id = pkey != NULL ? EVP_PKEY_get_base_id(pkey) : -1;

	CU_ASSERT((size_t)(p - k->der) == k->len);
	EVP_PKEY_free(pkey);
	return id;
}

static int spki_bits(const struct spki *k)
{
	const unsigned char *p = k->der;
	EVP_PKEY *pkey = d2i_PUBKEY(NULL, &p, (long)k->len);
	int bits = pkey != NULL ? EVP_PKEY_get_bits(pkey) : -1;

	EVP_PKEY_free(pkey);
	return bits;
}

/* --- each key type -------------------------------------------------------------- */

static void test_p256_generates_and_signs(void)
{
	const char *label = "kos-sign:p256:1";
	struct spki k = { 0 };

	generate(KOS_KEY_EC_P256, label, &k);
	CU_ASSERT_EQUAL(spki_type(&k), EVP_PKEY_EC);
	CU_ASSERT_EQUAL(spki_bits(&k), 256);
	check_attributes(KOS_KEY_EC_P256, label);
	check_pubkey(label, &k);
	/* raw r||s (the JWS ES256 form) is the default */
	sign_and_verify(KOS_KEY_EC_P256, label, &k, KOS_SIG_DEFAULT, KOS_SIG_ECDSA_RAW, 64);
	sign_and_verify(KOS_KEY_EC_P256, label, &k, KOS_SIG_ECDSA_RAW, KOS_SIG_ECDSA_RAW, 64);
	sign_and_verify(KOS_KEY_EC_P256, label, &k, KOS_SIG_ECDSA_DER, KOS_SIG_ECDSA_DER, 0);
	spki_clear(&k);
}

static void test_ed25519_generates_and_signs(void)
{
	const char *label = "kos-sign:ed25519:1";
	struct spki k = { 0 };

	generate(KOS_KEY_ED25519, label, &k);
	CU_ASSERT_EQUAL(spki_type(&k), EVP_PKEY_ED25519);
	CU_ASSERT_EQUAL(k.len, 44); /* 12-byte header and the 32-byte key (RFC 8410) */
	check_attributes(KOS_KEY_ED25519, label);
	check_pubkey(label, &k);
	sign_and_verify(KOS_KEY_ED25519, label, &k, KOS_SIG_DEFAULT, KOS_SIG_ED25519, 64);
	sign_and_verify(KOS_KEY_ED25519, label, &k, KOS_SIG_ED25519, KOS_SIG_ED25519, 64);
	spki_clear(&k);
}

static void check_rsa(kos_key_type type, const char *label, int bits)
{
	struct spki k = { 0 };

	generate(type, label, &k);
	CU_ASSERT_EQUAL(spki_type(&k), EVP_PKEY_RSA);
	CU_ASSERT_EQUAL(spki_bits(&k), bits);
	check_attributes(type, label);
	check_pubkey(label, &k);
	sign_and_verify(type, label, &k, KOS_SIG_DEFAULT, KOS_SIG_RSA_PKCS1, (size_t)bits / 8);
	sign_and_verify(type, label, &k, KOS_SIG_RSA_PKCS1, KOS_SIG_RSA_PKCS1, (size_t)bits / 8);
	sign_and_verify(type, label, &k, KOS_SIG_RSA_PSS, KOS_SIG_RSA_PSS, (size_t)bits / 8);
	spki_clear(&k);
}

static void test_rsa2048_generates_and_signs(void)
{
	check_rsa(KOS_KEY_RSA_2048, "kos-sign:rsa2048:1", 2048);
}

static void test_rsa3072_generates_and_signs(void)
{
	check_rsa(KOS_KEY_RSA_3072, "kos-sign:rsa3072:1", 3072);
}

static void test_pss_signatures_are_randomised(void)
{
	const char *label = "kos-sign:rsa2048:1"; /* made above */
	uint8_t *a = NULL, *b = NULL;
	size_t alen = 0, blen = 0;

	CU_ASSERT_EQUAL_FATAL(kos_signer_sign(hsm, tok, KOS_KEY_RSA_2048, label, KOS_SIG_RSA_PSS,
					      msg, sizeof(msg), &a, &alen),
			      KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_signer_sign(hsm, tok, KOS_KEY_RSA_2048, label, KOS_SIG_RSA_PSS,
					      msg, sizeof(msg), &b, &blen),
			      KOS_OK);
	/* a 32-byte random salt: two signatures of one message differ */
	CU_ASSERT(alen == blen && memcmp(a, b, alen) != 0);
	kos_free(a);
	kos_free(b);
}

static void test_sign_empty_message(void)
{
	struct spki k = { 0 };
	uint8_t *sig = NULL;
	size_t len = 0;

	CU_ASSERT_EQUAL_FATAL(kos_signer_pubkey(hsm, tok, "kos-sign:p256:1", &k.der, &k.len),
			      KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_signer_sign(hsm, tok, KOS_KEY_EC_P256, "kos-sign:p256:1",
					      KOS_SIG_ECDSA_DER, NULL, 0, &sig, &len),
			      KOS_OK);
	CU_ASSERT_EQUAL(verify(&k, KOS_SIG_ECDSA_DER, (const uint8_t *)"", 0, sig, len), 1);
	kos_free(sig);
	spki_clear(&k);

	CU_ASSERT_EQUAL_FATAL(kos_signer_pubkey(hsm, tok, "kos-sign:ed25519:1", &k.der, &k.len),
			      KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_signer_sign(hsm, tok, KOS_KEY_ED25519, "kos-sign:ed25519:1",
					      KOS_SIG_DEFAULT, NULL, 0, &sig, &len),
			      KOS_OK);
	CU_ASSERT_EQUAL(verify(&k, KOS_SIG_ED25519, (const uint8_t *)"", 0, sig, len), 1);
	kos_free(sig);
	spki_clear(&k);
}

/* --- digests and hashes --------------------------------------------------------- */

static const EVP_MD *md_of(kos_hash h)
{
	switch (h) {
	case KOS_HASH_SHA384:
		return EVP_sha384();
	case KOS_HASH_SHA512:
		return EVP_sha512();
	case KOS_HASH_SHA1:
		return EVP_sha1();
	default:
		return EVP_sha256();
	}
}

/* 1 when sig (DER for ECDSA) signs digest dg of hash under k, checked with
 * EVP_PKEY_verify as a PKCS#11 application's verifier does: PKCS#1 v1.5
 * with hash's DigestInfo, or PSS with MGF1 of hash and exactly salt bytes. */
static int verify_digest(const struct spki *k, kos_sig_alg alg, kos_hash hash, int salt,
			 const uint8_t *dg, size_t dlen, const uint8_t *sig, size_t sig_len)
{
	const unsigned char *p = k->der;
	EVP_PKEY *pkey = d2i_PUBKEY(NULL, &p, (long)k->len);
	EVP_PKEY_CTX *ctx = pkey != NULL ? EVP_PKEY_CTX_new(pkey, NULL) : NULL;
	int ok = -1;

	if (ctx == NULL || EVP_PKEY_verify_init(ctx) != 1 ||
	    EVP_PKEY_CTX_set_signature_md(ctx, md_of(hash)) != 1)
		goto out;
	if (alg == KOS_SIG_RSA_PKCS1 && EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) != 1)
		goto out;
	if (alg == KOS_SIG_RSA_PSS &&
	    (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) != 1 ||
	     EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, salt) != 1 ||
	     EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md_of(hash)) != 1))
		goto out;
	ok = EVP_PKEY_verify(ctx, sig, sig_len, dg, dlen) == 1;
out:
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(pkey);
	CU_ASSERT_FATAL(ok >= 0);
	return ok;
}

static void digest_msg(kos_hash h, uint8_t *out, size_t *len)
{
	unsigned int n = 0;

	CU_ASSERT_EQUAL_FATAL(EVP_Digest(msg, sizeof(msg), out, &n, md_of(h), NULL), 1);
	*len = n;
	CU_ASSERT_EQUAL_FATAL(*len, kos_hash_len(h));
}

static kos_rv sign_opts(kos_key_type type, const char *label, kos_sig_alg alg, kos_hash hash,
			int salt, int digest, const uint8_t *in, size_t len, uint8_t **sig,
			size_t *sig_len)
{
	kos_sign_opts o = { alg, hash, salt, digest, 0 };

	return kos_signer_sign_with(hsm, tok, type, label, &o, in, len, sig, sig_len);
}

/* A digest given and the same data hashed by kos both give signatures of
 * the digest; a changed digest, or PSS checked with another salt length,
 * does not verify. */
static void check_digest(const struct spki *k, kos_key_type type, const char *label,
			 kos_sig_alg alg, kos_hash hash, int salt)
{
	int vsalt = salt == KOS_SIG_SALT_DEFAULT ? (int)kos_hash_len(hash) : salt;
	uint8_t dg[KOS_HASH_MAX_LEN], *sig = NULL, *der = NULL;
	size_t dlen = 0, sig_len = 0, der_len = 0;
	int digest;

	digest_msg(hash, dg, &dlen);
	for (digest = 0; digest <= 1; digest++) {
		kos_rv rv = sign_opts(type, label, alg, hash, salt, digest, digest ? dg : msg,
				      digest ? dlen : sizeof(msg), &sig, &sig_len);

		if (rv != KOS_OK)
			fprintf(stderr, "sign %s: %s\n", label, kos_last_error());
		CU_ASSERT_EQUAL_FATAL(rv, KOS_OK);
		if (alg == KOS_SIG_ECDSA_RAW) {
			CU_ASSERT_EQUAL_FATAL(sig_len, 64);
			CU_ASSERT_EQUAL_FATAL(kos_ecdsa_raw_to_der(sig, sig_len, &der, &der_len),
					      KOS_OK);
			kos_free(sig);
			sig = der;
			sig_len = der_len;
		}
		CU_ASSERT_EQUAL(verify_digest(k, alg, hash, vsalt, dg, dlen, sig, sig_len), 1);
		dg[0] ^= 0x01;
		CU_ASSERT_EQUAL(verify_digest(k, alg, hash, vsalt, dg, dlen, sig, sig_len), 0);
		dg[0] ^= 0x01;
		if (alg == KOS_SIG_RSA_PSS)
			CU_ASSERT_EQUAL(verify_digest(k, alg, hash, vsalt + 1, dg, dlen, sig,
						      sig_len),
					0);
		kos_free(sig);
		sig = NULL;
	}
}

/* SHA-1 too: the signer signs what it is asked; kos_key_sign_with() holds
 * the policy that refuses SHA-1 by default (test-keys). */
static const kos_hash all_hashes[] = { KOS_HASH_SHA256, KOS_HASH_SHA384, KOS_HASH_SHA512,
				       KOS_HASH_SHA1 };

static void test_p256_signs_digests(void)
{
	struct spki k = { 0 };
	size_t i;

	CU_ASSERT_EQUAL_FATAL(kos_signer_pubkey(hsm, tok, "kos-sign:p256:1", &k.der, &k.len),
			      KOS_OK);
	for (i = 0; i < KOS_ARRAY_SIZE(all_hashes); i++) {
		check_digest(&k, KOS_KEY_EC_P256, "kos-sign:p256:1", KOS_SIG_ECDSA_DER,
			     all_hashes[i], KOS_SIG_SALT_DEFAULT);
		check_digest(&k, KOS_KEY_EC_P256, "kos-sign:p256:1", KOS_SIG_ECDSA_RAW,
			     all_hashes[i], KOS_SIG_SALT_DEFAULT);
	}
	spki_clear(&k);
}

static void test_rsa_signs_digests_pkcs1_and_pss(void)
{
	struct spki k = { 0 };
	size_t i;

	CU_ASSERT_EQUAL_FATAL(kos_signer_pubkey(hsm, tok, "kos-sign:rsa2048:1", &k.der, &k.len),
			      KOS_OK);
	for (i = 0; i < KOS_ARRAY_SIZE(all_hashes); i++) {
		kos_hash h = all_hashes[i];

		check_digest(&k, KOS_KEY_RSA_2048, "kos-sign:rsa2048:1", KOS_SIG_RSA_PKCS1, h,
			     KOS_SIG_SALT_DEFAULT);
		check_digest(&k, KOS_KEY_RSA_2048, "kos-sign:rsa2048:1", KOS_SIG_RSA_PSS, h,
			     KOS_SIG_SALT_DEFAULT);
		check_digest(&k, KOS_KEY_RSA_2048, "kos-sign:rsa2048:1", KOS_SIG_RSA_PSS, h, 32);
		check_digest(&k, KOS_KEY_RSA_2048, "kos-sign:rsa2048:1", KOS_SIG_RSA_PSS, h, 64);
	}
	/* the longest salt RSA-2048 takes with SHA-512: 256 - 64 - 2 */
	check_digest(&k, KOS_KEY_RSA_2048, "kos-sign:rsa2048:1", KOS_SIG_RSA_PSS, KOS_HASH_SHA512,
		     190);
	spki_clear(&k);
	CU_ASSERT_EQUAL_FATAL(kos_signer_pubkey(hsm, tok, "kos-sign:rsa3072:1", &k.der, &k.len),
			      KOS_OK);
	check_digest(&k, KOS_KEY_RSA_3072, "kos-sign:rsa3072:1", KOS_SIG_RSA_PSS, KOS_HASH_SHA384,
		     48);
	check_digest(&k, KOS_KEY_RSA_3072, "kos-sign:rsa3072:1", KOS_SIG_RSA_PKCS1,
		     KOS_HASH_SHA512, KOS_SIG_SALT_DEFAULT);
	spki_clear(&k);
}

static void test_pkcs1_digest_and_data_sign_alike(void)
{
	uint8_t dg[KOS_HASH_MAX_LEN], *a = NULL, *b = NULL;
	size_t dlen = 0, alen = 0, blen = 0;

	/* PKCS#1 v1.5 is deterministic: the DigestInfo kos builds around a
	 * digest is the one it builds around its own hash of the data */
	digest_msg(KOS_HASH_SHA384, dg, &dlen);
	CU_ASSERT_EQUAL_FATAL(sign_opts(KOS_KEY_RSA_2048, "kos-sign:rsa2048:1", KOS_SIG_RSA_PKCS1,
					KOS_HASH_SHA384, KOS_SIG_SALT_DEFAULT, 1, dg, dlen, &a,
					&alen),
			      KOS_OK);
	CU_ASSERT_EQUAL_FATAL(sign_opts(KOS_KEY_RSA_2048, "kos-sign:rsa2048:1", KOS_SIG_RSA_PKCS1,
					KOS_HASH_SHA384, KOS_SIG_SALT_DEFAULT, 0, msg, sizeof(msg),
					&b, &blen),
			      KOS_OK);
	CU_ASSERT(alen == blen && memcmp(a, b, alen) == 0);
	kos_free(a);
	kos_free(b);
	/* and a salt of 0 makes PSS deterministic */
	CU_ASSERT_EQUAL_FATAL(sign_opts(KOS_KEY_RSA_2048, "kos-sign:rsa2048:1", KOS_SIG_RSA_PSS,
					KOS_HASH_SHA384, 0, 1, dg, dlen, &a, &alen),
			      KOS_OK);
	CU_ASSERT_EQUAL_FATAL(sign_opts(KOS_KEY_RSA_2048, "kos-sign:rsa2048:1", KOS_SIG_RSA_PSS,
					KOS_HASH_SHA384, 0, 0, msg, sizeof(msg), &b, &blen),
			      KOS_OK);
	CU_ASSERT(alen == blen && memcmp(a, b, alen) == 0);
	kos_free(a);
	kos_free(b);
}

static void expect_refused(kos_key_type type, const char *label, kos_sig_alg alg, kos_hash hash,
			   int salt, int digest, size_t len, const char *why)
{
	uint8_t in[100] = { 0 }, *sig = (uint8_t *)"untouched";
	size_t sig_len = 9;

	CU_ASSERT_EQUAL(sign_opts(type, label, alg, hash, salt, digest, in, len, &sig, &sig_len),
			KOS_E_INVALID);
	CU_ASSERT_PTR_NULL(sig);
	CU_ASSERT_EQUAL(sig_len, 0);
	if (strstr(kos_last_error(), why) == NULL)
		fprintf(stderr, "wanted '%s' in: %s\n", why, kos_last_error());
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), why));
}

static void test_digest_refusals(void)
{
	const char *ec = "kos-sign:p256:1", *ed = "kos-sign:ed25519:1", *rsa = "kos-sign:rsa2048:1";

	/* a digest of another length than its hash's */
	expect_refused(KOS_KEY_EC_P256, ec, KOS_SIG_DEFAULT, KOS_HASH_SHA256, KOS_SIG_SALT_DEFAULT,
		       1, 31, "a sha256 digest is 32 bytes, not 31");
	expect_refused(KOS_KEY_EC_P256, ec, KOS_SIG_DEFAULT, KOS_HASH_SHA384, KOS_SIG_SALT_DEFAULT,
		       1, 32, "a sha384 digest is 48 bytes, not 32");
	expect_refused(KOS_KEY_RSA_2048, rsa, KOS_SIG_RSA_PSS, KOS_HASH_SHA512,
		       KOS_SIG_SALT_DEFAULT, 1, 48, "a sha512 digest is 64 bytes, not 48");
	expect_refused(KOS_KEY_RSA_2048, rsa, KOS_SIG_RSA_PKCS1, KOS_HASH_SHA256,
		       KOS_SIG_SALT_DEFAULT, 1, 0, "a sha256 digest is 32 bytes, not 0");
	/* an unknown hash */
	expect_refused(KOS_KEY_EC_P256, ec, KOS_SIG_DEFAULT, (kos_hash)7, KOS_SIG_SALT_DEFAULT, 1,
		       32, "unknown signature algorithm or hash");
	/* Ed25519 is pure: no digest, no other hash */
	expect_refused(KOS_KEY_ED25519, ed, KOS_SIG_DEFAULT, KOS_HASH_SHA256, KOS_SIG_SALT_DEFAULT,
		       1, 32, "signs the message itself, not a digest");
	expect_refused(KOS_KEY_ED25519, ed, KOS_SIG_ED25519, KOS_HASH_SHA512, KOS_SIG_SALT_DEFAULT,
		       0, 10, "takes no hash");
	expect_refused(KOS_KEY_ED25519, ed, KOS_SIG_ED25519, KOS_HASH_SHA1, KOS_SIG_SALT_DEFAULT,
		       0, 10, "takes no hash");
	expect_refused(KOS_KEY_EC_P256, ec, KOS_SIG_DEFAULT, KOS_HASH_SHA1, KOS_SIG_SALT_DEFAULT,
		       1, 32, "a sha1 digest is 20 bytes, not 32");
	/* a salt length for a form without one, or one the key cannot hold */
	expect_refused(KOS_KEY_EC_P256, ec, KOS_SIG_ECDSA_DER, KOS_HASH_SHA256, 32, 0, 10,
		       "takes no salt length");
	expect_refused(KOS_KEY_RSA_2048, rsa, KOS_SIG_RSA_PKCS1, KOS_HASH_SHA256, 32, 1, 32,
		       "takes no salt length");
	expect_refused(KOS_KEY_RSA_2048, rsa, KOS_SIG_RSA_PSS, KOS_HASH_SHA256, 223, 1, 32,
		       "takes a salt of at most");
	expect_refused(KOS_KEY_RSA_2048, rsa, KOS_SIG_RSA_PSS, KOS_HASH_SHA512, 191, 1, 64,
		       "takes a salt of at most");
	expect_refused(KOS_KEY_RSA_2048, rsa, KOS_SIG_RSA_PSS, KOS_HASH_SHA256, -2, 1, 32,
		       "takes a salt of at most");
}

/* --- refusals ------------------------------------------------------------------- */

static void expect_invalid(kos_key_type type, const char *label, kos_sig_alg alg)
{
	uint8_t *sig = (uint8_t *)"untouched";
	size_t len = 7;

	CU_ASSERT_EQUAL(kos_signer_sign(hsm, tok, type, label, alg, msg, sizeof(msg), &sig, &len),
			KOS_E_INVALID);
	CU_ASSERT_PTR_NULL(sig);
	CU_ASSERT_EQUAL(len, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "token signer: "));
}

static void test_wrong_alg_for_type_refused(void)
{
	expect_invalid(KOS_KEY_EC_P256, "kos-sign:p256:1", KOS_SIG_ED25519);
	expect_invalid(KOS_KEY_EC_P256, "kos-sign:p256:1", KOS_SIG_RSA_PKCS1);
	expect_invalid(KOS_KEY_EC_P256, "kos-sign:p256:1", KOS_SIG_RSA_PSS);
	expect_invalid(KOS_KEY_ED25519, "kos-sign:ed25519:1", KOS_SIG_ECDSA_RAW);
	expect_invalid(KOS_KEY_ED25519, "kos-sign:ed25519:1", KOS_SIG_ECDSA_DER);
	expect_invalid(KOS_KEY_ED25519, "kos-sign:ed25519:1", KOS_SIG_RSA_PSS);
	expect_invalid(KOS_KEY_RSA_2048, "kos-sign:rsa2048:1", KOS_SIG_ECDSA_RAW);
	expect_invalid(KOS_KEY_RSA_2048, "kos-sign:rsa2048:1", KOS_SIG_ED25519);
	expect_invalid(KOS_KEY_RSA_3072, "kos-sign:rsa3072:1", KOS_SIG_ECDSA_DER);
	expect_invalid(KOS_KEY_EC_P256, "kos-sign:p256:1", (kos_sig_alg)99);
	expect_invalid(KOS_KEY_DEK, "kos-sign:p256:1", KOS_SIG_DEFAULT);
}

static void test_type_must_match_the_token_key(void)
{
	/* the caller's type is checked against what the token holds */
	expect_invalid(KOS_KEY_ED25519, "kos-sign:p256:1", KOS_SIG_DEFAULT);
	expect_invalid(KOS_KEY_EC_P256, "kos-sign:ed25519:1", KOS_SIG_DEFAULT);
	expect_invalid(KOS_KEY_RSA_2048, "kos-sign:rsa3072:1", KOS_SIG_DEFAULT);
	expect_invalid(KOS_KEY_RSA_3072, "kos-sign:rsa2048:1", KOS_SIG_RSA_PSS);
	expect_invalid(KOS_KEY_RSA_2048, "kos-sign:p256:1", KOS_SIG_RSA_PKCS1);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "EC P-256"));
}

/* --- RSA decryption ------------------------------------------------------------ */

/* Encrypts pt to the public key k as o says, with OpenSSL (padding
 * RSA_NO_PADDING when raw: pt is then the whole block); *ct_len the length. */
static void rsa_encrypt(const struct spki *k, const kos_rsa_decrypt_opts *o, bool raw,
			const uint8_t *pt, size_t len, uint8_t *ct, size_t *ct_len)
{
	const unsigned char *p = k->der;
	EVP_PKEY *pkey = d2i_PUBKEY(NULL, &p, (long)k->len);
	EVP_PKEY_CTX *ctx = pkey != NULL ? EVP_PKEY_CTX_new(pkey, NULL) : NULL;
	int ok;

	*ct_len = 512;
	ok = ctx != NULL && EVP_PKEY_encrypt_init(ctx) == 1;
	if (ok && raw)
		ok = EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING) == 1;
	else if (ok && o->padding == KOS_RSA_PAD_PKCS1)
		ok = EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1;
	else if (ok)
		ok = EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) == 1 &&
		     EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md_of(o->hash)) == 1 &&
		     EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md_of(o->mgf1)) == 1;
	if (ok && !raw && o->padding == KOS_RSA_PAD_OAEP && o->label_len > 0) {
		void *l = OPENSSL_memdup(o->label, o->label_len);

		ok = l != NULL && EVP_PKEY_CTX_set0_rsa_oaep_label(ctx, l, (int)o->label_len) == 1;
	}
	ok = ok && EVP_PKEY_encrypt(ctx, ct, ct_len, pt, len) == 1;
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(pkey);
	CU_ASSERT_FATAL(ok);
}

static kos_rv rsa_decrypt(const char *label, const kos_rsa_decrypt_opts *o, const uint8_t *ct,
			  size_t len, uint8_t **pt, size_t *pt_len)
{
	return kos_signer_rsa_decrypt(hsm, tok, KOS_KEY_RSA_2048, label, o, ct, len, pt, pt_len);
}

/* What comes back is what was encrypted: PKCS#1 v1.5, and OAEP with every
 * hash, another MGF1 hash, with and without a label (the token's OAEP
 * where it takes the parameters, kos's decoding elsewhere); every failure
 * of the decryption is the same KOS_E_INTEGRITY "decryption failed". */
static void test_rsa_decrypts_pkcs1_and_oaep(void)
{
	static const struct {
		kos_rsa_padding pad;
		kos_hash hash, mgf1;
		const char *label;
	} cases[] = {
		{ KOS_RSA_PAD_PKCS1, KOS_HASH_SHA1, KOS_HASH_SHA1, NULL },
		{ KOS_RSA_PAD_OAEP, KOS_HASH_SHA1, KOS_HASH_SHA1, NULL },
		{ KOS_RSA_PAD_OAEP, KOS_HASH_SHA1, KOS_HASH_SHA1, "a label" },
		{ KOS_RSA_PAD_OAEP, KOS_HASH_SHA256, KOS_HASH_SHA256, NULL },
		{ KOS_RSA_PAD_OAEP, KOS_HASH_SHA256, KOS_HASH_SHA256, "tls" },
		{ KOS_RSA_PAD_OAEP, KOS_HASH_SHA384, KOS_HASH_SHA1, NULL },
		{ KOS_RSA_PAD_OAEP, KOS_HASH_SHA512, KOS_HASH_SHA512, "cms" },
	};
	const char *label = "kos-sign:rsa-dec:1";
	struct spki k = { 0 };
	uint8_t ct[512], *pt = NULL;
	size_t ct_len, pt_len = 0, i;

	generate(KOS_KEY_RSA_2048, label, &k);
	for (i = 0; i < KOS_ARRAY_SIZE(cases); i++) {
		kos_rsa_decrypt_opts o = KOS_RSA_DECRYPT_OPTS_INIT;
		kos_rv rv;

		o.padding = cases[i].pad;
		o.hash = cases[i].hash;
		o.mgf1 = cases[i].mgf1;
		o.label = (const uint8_t *)cases[i].label;
		o.label_len = cases[i].label != NULL ? strlen(cases[i].label) : 0;
		rsa_encrypt(&k, &o, false, msg, sizeof(msg), ct, &ct_len);
		CU_ASSERT_EQUAL_FATAL(ct_len, 256);
		rv = rsa_decrypt(label, &o, ct, ct_len, &pt, &pt_len);
		if (rv != KOS_OK)
			fprintf(stderr, "case %zu: %s\n", i, kos_last_error());
		CU_ASSERT_EQUAL_FATAL(rv, KOS_OK);
		CU_ASSERT(pt_len == sizeof(msg) && memcmp(pt, msg, sizeof(msg)) == 0);
		kos_secret_free(pt, pt_len);
		pt = NULL;
		/* a changed ciphertext */
		ct[100] ^= 0x40;
		CU_ASSERT_EQUAL(rsa_decrypt(label, &o, ct, ct_len, &pt, &pt_len), KOS_E_INTEGRITY);
		KOS_ASSERT_STR_EQ(kos_last_error(), "decryption failed");
		CU_ASSERT(pt == NULL && pt_len == 0);
		ct[100] ^= 0x40;
		if (o.padding == KOS_RSA_PAD_OAEP) {
			/* another label, or another hash */
			o.label = (const uint8_t *)"other";
			o.label_len = 5;
			CU_ASSERT_EQUAL(rsa_decrypt(label, &o, ct, ct_len, &pt, &pt_len),
					KOS_E_INTEGRITY);
			KOS_ASSERT_STR_EQ(kos_last_error(), "decryption failed");
			o.label = (const uint8_t *)cases[i].label;
			o.label_len = cases[i].label != NULL ? strlen(cases[i].label) : 0;
			o.hash = o.hash == KOS_HASH_SHA1 ? KOS_HASH_SHA256 : KOS_HASH_SHA1;
			CU_ASSERT_EQUAL(rsa_decrypt(label, &o, ct, ct_len, &pt, &pt_len),
					KOS_E_INTEGRITY);
			CU_ASSERT_PTR_NULL(pt);
		}
	}
	{
		/* a block with no PKCS#1 v1.5 padding at all, 00 01 FF ...: the
		 * token refuses it, and the answer is the same */
		kos_rsa_decrypt_opts o = KOS_RSA_DECRYPT_OPTS_INIT;
		uint8_t block[256];

		memset(block, 0xff, sizeof(block));
		block[0] = 0x00;
		block[1] = 0x01;
		rsa_encrypt(&k, &o, true, block, sizeof(block), ct, &ct_len);
		CU_ASSERT_EQUAL(rsa_decrypt(label, &o, ct, ct_len, &pt, &pt_len), KOS_E_INTEGRITY);
		KOS_ASSERT_STR_EQ(kos_last_error(), "decryption failed");
		o.padding = KOS_RSA_PAD_OAEP;
		CU_ASSERT_EQUAL(rsa_decrypt(label, &o, ct, ct_len, &pt, &pt_len), KOS_E_INTEGRITY);
		o.hash = o.mgf1 = KOS_HASH_SHA256;
		CU_ASSERT_EQUAL(rsa_decrypt(label, &o, ct, ct_len, &pt, &pt_len), KOS_E_INTEGRITY);
		KOS_ASSERT_STR_EQ(kos_last_error(), "decryption failed");
		/* a number above the modulus */
		memset(ct, 0xff, 256);
		CU_ASSERT_EQUAL(rsa_decrypt(label, &o, ct, 256, &pt, &pt_len), KOS_E_INTEGRITY);
		CU_ASSERT_PTR_NULL(pt);
	}
	spki_clear(&k);
}

/* Refused before the token is asked: another length than the modulus',
 * an unknown padding or hash, a key of another type. */
static void test_rsa_decrypt_refusals(void)
{
	kos_rsa_decrypt_opts o = KOS_RSA_DECRYPT_OPTS_INIT;
	uint8_t ct[384] = { 1 }, *pt = NULL;
	size_t pt_len = 0;

	CU_ASSERT_EQUAL(rsa_decrypt("kos-sign:rsa-dec:1", &o, ct, 255, &pt, &pt_len),
			KOS_E_INVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "256 bytes"));
	CU_ASSERT_EQUAL(kos_signer_rsa_decrypt(hsm, tok, KOS_KEY_RSA_3072, "kos-sign:rsa-dec:1", &o,
					       ct, 384, &pt, &pt_len),
			KOS_E_INVALID); /* the token's key is RSA-2048 */
	CU_ASSERT_EQUAL(kos_signer_rsa_decrypt(hsm, tok, KOS_KEY_EC_P256, "kos-sign:p256:1", &o, ct,
					       64, &pt, &pt_len),
			KOS_E_INVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "only RSA keys decrypt"));
	o.padding = (kos_rsa_padding)7;
	CU_ASSERT_EQUAL(rsa_decrypt("kos-sign:rsa-dec:1", &o, ct, 256, &pt, &pt_len),
			KOS_E_INVALID);
	o.padding = KOS_RSA_PAD_OAEP;
	o.hash = (kos_hash)9;
	CU_ASSERT_EQUAL(rsa_decrypt("kos-sign:rsa-dec:1", &o, ct, 256, &pt, &pt_len),
			KOS_E_INVALID);
	o.hash = KOS_HASH_SHA1;
	o.label_len = 3;
	CU_ASSERT_EQUAL(rsa_decrypt("kos-sign:rsa-dec:1", &o, ct, 256, &pt, &pt_len),
			KOS_E_INVALID);
	CU_ASSERT_EQUAL(rsa_decrypt("kos-sign:none:1", &o, ct, 256, &pt, &pt_len), KOS_E_INVALID);
	o.label_len = 0;
	CU_ASSERT_EQUAL(rsa_decrypt("kos-sign:none:1", &o, ct, 256, &pt, &pt_len), KOS_E_NOTFOUND);
	CU_ASSERT_PTR_NULL(pt);
}

/* A key pair made before kos decrypted has CKA_DECRYPT false: refused as
 * such (KOS_E_POLICY), not as a token error. */
static void test_rsa_decrypt_needs_cka_decrypt(void)
{
	static const char label[] = "kos-sign:old-rsa:1";
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ULONG bits = 2048;
	CK_BYTE f4[] = { 1, 0, 1 };
	uint8_t id[32], ct[256] = { 1 }, *pt = NULL;
	CK_ATTRIBUTE pub[] = {
		{ CKA_TOKEN, &yes, 1 },		   { CKA_VERIFY, &yes, 1 },
		{ CKA_ENCRYPT, &no, 1 },	   { CKA_MODULUS_BITS, &bits, sizeof(bits) },
		{ CKA_PUBLIC_EXPONENT, f4, 3 },	   { CKA_LABEL, (void *)label, sizeof(label) - 1 },
		{ CKA_ID, id, 16 },
	};
	CK_ATTRIBUTE priv[] = {
		{ CKA_TOKEN, &yes, 1 },	   { CKA_PRIVATE, &yes, 1 },
		{ CKA_SENSITIVE, &yes, 1 }, { CKA_SIGN, &yes, 1 },
		{ CKA_DECRYPT, &no, 1 },   { CKA_LABEL, (void *)label, sizeof(label) - 1 },
		{ CKA_ID, id, 16 },
	};
	CK_MECHANISM gen = { CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0 };
	CK_OBJECT_HANDLE hpub, hpriv;
	kos_rsa_decrypt_opts o = KOS_RSA_DECRYPT_OPTS_INIT;
	kos_hsm_session s;
	size_t pt_len = 0;

	CU_ASSERT_EQUAL_FATAL(EVP_Digest(label, strlen(label), id, NULL, EVP_sha256(), NULL), 1);
	CU_ASSERT_EQUAL_FATAL(kos_hsm_session_get(hsm, tok, &s), KOS_OK);
	CU_ASSERT_EQUAL(s.f->C_GenerateKeyPair(s.h, &gen, pub, KOS_ARRAY_SIZE(pub), priv,
					       KOS_ARRAY_SIZE(priv), &hpub, &hpriv),
			CKR_OK);
	kos_hsm_session_put(hsm, &s, CKR_OK);
	CU_ASSERT_EQUAL(rsa_decrypt(label, &o, ct, sizeof(ct), &pt, &pt_len), KOS_E_POLICY);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "made without decryption"));
	o.padding = KOS_RSA_PAD_OAEP;
	o.hash = o.mgf1 = KOS_HASH_SHA256;
	CU_ASSERT_EQUAL(rsa_decrypt(label, &o, ct, sizeof(ct), &pt, &pt_len), KOS_E_POLICY);
	CU_ASSERT_PTR_NULL(pt);
	CU_ASSERT_EQUAL(kos_signer_destroy(hsm, tok, label), KOS_OK);
}

/* --- OAEP decoding in kos (RFC 8017 7.1) --------------------------------------- */

enum oaep_fault { OAEP_GOOD, OAEP_Y, OAEP_LHASH, OAEP_PS, OAEP_NO_ONE, OAEP_TWO };

static void test_mgf1(const EVP_MD *md, uint8_t *out, size_t len, const uint8_t *seed, size_t n)
{
	uint8_t buf[512 + 4], d[EVP_MAX_MD_SIZE];
	size_t hlen = (size_t)EVP_MD_get_size(md), done;
	uint32_t c;

	memcpy(buf, seed, n);
	for (c = 0, done = 0; done < len; c++) {
		buf[n] = (uint8_t)(c >> 24);
		buf[n + 1] = (uint8_t)(c >> 16);
		buf[n + 2] = (uint8_t)(c >> 8);
		buf[n + 3] = (uint8_t)c;
		CU_ASSERT_FATAL(EVP_Digest(buf, n + 4, d, NULL, md, NULL) == 1);
		memcpy(out + done, d, len - done < hlen ? len - done : hlen);
		done += len - done < hlen ? len - done : hlen;
	}
}

/* EM for msg (RFC 8017 7.1.1 step 2) into em (k bytes), with a fault. */
static void oaep_encode(const EVP_MD *md, const char *label, const uint8_t *m, size_t mlen,
			size_t k, enum oaep_fault fault, uint8_t *em)
{
	size_t hlen = (size_t)EVP_MD_get_size(md), dblen = k - hlen - 1, i;
	uint8_t db[512], seed[EVP_MAX_MD_SIZE], mask[512];

	memset(db, 0, sizeof(db));
	CU_ASSERT_FATAL(EVP_Digest(label, strlen(label), db, NULL, md, NULL) == 1);
	if (fault == OAEP_LHASH)
		db[3] ^= 1;
	if (fault != OAEP_NO_ONE)
		db[dblen - mlen - 1] = fault == OAEP_TWO ? 0x02 : 0x01;
	if (fault == OAEP_PS)
		db[hlen] = 0x07;
	memcpy(db + dblen - mlen, m, mlen);
	for (i = 0; i < hlen; i++)
		seed[i] = (uint8_t)(0x5a + 7 * i);
	test_mgf1(md, mask, dblen, seed, hlen);
	for (i = 0; i < dblen; i++)
		em[1 + hlen + i] = db[i] ^ mask[i];
	test_mgf1(md, mask, hlen, em + 1 + hlen, dblen);
	for (i = 0; i < hlen; i++)
		em[1 + i] = seed[i] ^ mask[i];
	em[0] = fault == OAEP_Y ? 0x01 : 0x00;
}

/* Messages of every length from none to the longest, with SHA-1, SHA-256
 * and SHA-512, come back; each kind of bad encoding is refused alike and
 * leaves nothing in the output. */
static void test_oaep_decode(void)
{
	static const enum oaep_fault faults[] = { OAEP_Y, OAEP_LHASH, OAEP_PS, OAEP_NO_ONE,
						  OAEP_TWO };
	const EVP_MD *mds[] = { EVP_sha1(), EVP_sha256(), EVP_sha512() };
	uint8_t m[256], em[256], out[256];
	size_t k = 256, i, j, f, n;

	/* no 00 or 01 in the message: a fault must not leave a valid, shorter one */
	for (i = 0; i < sizeof(m); i++)
		m[i] = (uint8_t)(0x80 | (i * 31));
	for (i = 0; i < KOS_ARRAY_SIZE(mds); i++) {
		size_t hlen = (size_t)EVP_MD_get_size(mds[i]), max = k - 2 * hlen - 2;
		const size_t lens[] = { 0, 1, 2, 3, 17, max / 2, max - 1, max };

		for (j = 0; j < KOS_ARRAY_SIZE(lens); j++) {
			oaep_encode(mds[i], "L", m, lens[j], k, OAEP_GOOD, em);
			memset(out, 0xee, sizeof(out));
			CU_ASSERT_EQUAL_FATAL(kos_rsa_oaep_decode(mds[i], mds[i],
								  (const uint8_t *)"L", 1, em, k,
								  out, &n),
					      KOS_OK);
			CU_ASSERT(n == lens[j] && memcmp(out, m, n) == 0);
			/* the rest of what decoding may write is zeros */
			for (f = n; f < max; f++)
				CU_ASSERT_EQUAL(out[f], 0);
			/* another label */
			CU_ASSERT_EQUAL(kos_rsa_oaep_decode(mds[i], mds[i], NULL, 0, em, k, out,
							    &n),
					KOS_E_INTEGRITY);
			for (f = 0; f < KOS_ARRAY_SIZE(faults); f++) {
				if (faults[f] == OAEP_PS && lens[j] == max)
					continue; /* no PS to spoil */
				oaep_encode(mds[i], "L", m, lens[j], k, faults[f], em);
				memset(out, 0xee, sizeof(out));
				n = 99;
				CU_ASSERT_EQUAL(kos_rsa_oaep_decode(mds[i], mds[i],
								    (const uint8_t *)"L", 1, em,
								    k, out, &n),
						KOS_E_INTEGRITY);
				KOS_ASSERT_STR_EQ(kos_last_error(), "decryption failed");
				CU_ASSERT_EQUAL(n, 0);
				CU_ASSERT(out[0] == 0 && out[max - 1] == 0);
			}
		}
	}
	/* a modulus too short for the hash; bad arguments */
	CU_ASSERT_EQUAL(kos_rsa_oaep_decode(EVP_sha512(), EVP_sha512(), NULL, 0, em, 129, out, &n),
			KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_rsa_oaep_decode(EVP_sha1(), EVP_sha1(), NULL, 3, em, k, out, &n),
			KOS_E_INVALID);
}

/* OpenSSL's OAEP encryption, undone by a raw RSA decryption and kos's
 * decoding: the two implementations agree. */
static void test_oaep_decode_agrees_with_openssl(void)
{
	EVP_PKEY *key = EVP_RSA_gen(2048);
	EVP_PKEY_CTX *e = key != NULL ? EVP_PKEY_CTX_new(key, NULL) : NULL;
	EVP_PKEY_CTX *d = key != NULL ? EVP_PKEY_CTX_new(key, NULL) : NULL;
	uint8_t ct[256], em[256], out[256];
	size_t ct_len = sizeof(ct), em_len = sizeof(em), n = 0;
	void *l = OPENSSL_memdup("label", 5);

	CU_ASSERT_FATAL(e != NULL && d != NULL && l != NULL);
	CU_ASSERT_FATAL(EVP_PKEY_encrypt_init(e) == 1 &&
			EVP_PKEY_CTX_set_rsa_padding(e, RSA_PKCS1_OAEP_PADDING) == 1 &&
			EVP_PKEY_CTX_set_rsa_oaep_md(e, EVP_sha256()) == 1 &&
			EVP_PKEY_CTX_set_rsa_mgf1_md(e, EVP_sha384()) == 1 &&
			EVP_PKEY_CTX_set0_rsa_oaep_label(e, l, 5) == 1 &&
			EVP_PKEY_encrypt(e, ct, &ct_len, msg, sizeof(msg)) == 1);
	CU_ASSERT_FATAL(EVP_PKEY_decrypt_init(d) == 1 &&
			EVP_PKEY_CTX_set_rsa_padding(d, RSA_NO_PADDING) == 1 &&
			EVP_PKEY_decrypt(d, em, &em_len, ct, ct_len) == 1 && em_len == 256);
	CU_ASSERT_EQUAL(kos_rsa_oaep_decode(EVP_sha256(), EVP_sha384(), (const uint8_t *)"label",
					    5, em, 256, out, &n),
			KOS_OK);
	CU_ASSERT(n == sizeof(msg) && memcmp(out, msg, n) == 0);
	CU_ASSERT_EQUAL(kos_rsa_oaep_decode(EVP_sha256(), EVP_sha256(), (const uint8_t *)"label",
					    5, em, 256, out, &n),
			KOS_E_INTEGRITY);
	EVP_PKEY_CTX_free(e);
	EVP_PKEY_CTX_free(d);
	EVP_PKEY_free(key);
}

/* A raw decryption without its leading zero bytes goes back in place. */
static void test_right_align(void)
{
	static const size_t ns[] = { 256, 255, 253, 200, 129, 128, 1, 0 };
	uint8_t buf[256], want[256];
	size_t i, j;

	for (i = 0; i < KOS_ARRAY_SIZE(ns); i++) {
		size_t n = ns[i];

		memset(want, 0, sizeof(want));
		for (j = 0; j < n; j++)
			want[256 - n + j] = buf[j] = (uint8_t)(j + 1);
		for (j = n; j < 256; j++)
			buf[j] = 0xaa; /* what the token did not write */
		kos_rsa_right_align(buf, 256, n);
		CU_ASSERT(memcmp(buf, want, 256) == 0);
	}
}

static void test_generate_refuses_bad_arguments(void)
{
	char longer[KOS_HSM_LABEL_MAX + 2];
	uint8_t *spki = NULL;
	size_t len = 0;

	memset(longer, 'a', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	CU_ASSERT_EQUAL(kos_signer_generate(hsm, tok, KOS_KEY_DEK, "kos-sign:dek", &spki, &len),
			KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_signer_generate(hsm, tok, (kos_key_type)42, "x", &spki, &len),
			KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_signer_generate(hsm, tok, KOS_KEY_EC_P256, "", &spki, &len),
			KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_signer_generate(hsm, tok, KOS_KEY_EC_P256, longer, &spki, &len),
			KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_signer_generate(hsm, tok, KOS_KEY_EC_P256, "tab\there", &spki, &len),
			KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_signer_generate(hsm, tok, KOS_KEY_EC_P256, NULL, &spki, &len),
			KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_signer_generate(hsm, kos_hsm_token_count(hsm), KOS_KEY_EC_P256, "x",
					    &spki, &len),
			KOS_E_RANGE);
	CU_ASSERT_PTR_NULL(spki);
	/* a label of exactly the maximum works */
	longer[KOS_HSM_LABEL_MAX] = '\0';
	CU_ASSERT_EQUAL(kos_signer_generate(hsm, tok, KOS_KEY_EC_P256, longer, &spki, &len),
			KOS_OK);
	kos_free(spki);
	CU_ASSERT_EQUAL(kos_signer_destroy(hsm, tok, longer), KOS_OK);
}

static void test_sign_refuses_oversized_data(void)
{
	uint8_t *sig = NULL;
	size_t len = 0;

	/* the size is refused before the data is read, so msg stands in */
	CU_ASSERT_EQUAL(kos_signer_sign(hsm, tok, KOS_KEY_ED25519, "kos-sign:ed25519:1",
					KOS_SIG_DEFAULT, msg, (size_t)KOS_SIGNER_DATA_MAX + 1, &sig,
					&len),
			KOS_E_RANGE);
	CU_ASSERT_PTR_NULL(sig);
	CU_ASSERT_EQUAL(kos_signer_sign(hsm, tok, KOS_KEY_ED25519, "kos-sign:ed25519:1",
					KOS_SIG_DEFAULT, NULL, 5, &sig, &len),
			KOS_E_INVALID);
}

static void test_duplicate_label_refused(void)
{
	const char *label = "kos-sign:dup:1";
	struct spki k = { 0 }, again = { 0 };

	generate(KOS_KEY_EC_P256, label, &k);
	CU_ASSERT_EQUAL(kos_signer_generate(hsm, tok, KOS_KEY_ED25519, label, &again.der,
					    &again.len),
			KOS_E_EXISTS);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "token signer: "));
	CU_ASSERT_PTR_NULL(again.der);
	/* the first key is untouched and still the one found */
	check_pubkey(label, &k);
	sign_and_verify(KOS_KEY_EC_P256, label, &k, KOS_SIG_DEFAULT, KOS_SIG_ECDSA_RAW, 64);
	CU_ASSERT_EQUAL(kos_signer_destroy(hsm, tok, label), KOS_OK);
	spki_clear(&k);
}

static void test_label_of_data_object_refused(void)
{
	const char *label = "kos-sign:taken:1";
	kos_hsm_session s;
	uint8_t *spki = NULL;
	size_t len = 0;

	CU_ASSERT_EQUAL_FATAL(kos_hsm_data_put(hsm, tok, label, "x", 1), KOS_OK);
	CU_ASSERT_EQUAL(kos_signer_generate(hsm, tok, KOS_KEY_EC_P256, label, &spki, &len),
			KOS_E_EXISTS);
	CU_ASSERT_EQUAL_FATAL(kos_hsm_session_get(hsm, tok, &s), KOS_OK);
	CU_ASSERT_EQUAL(find_one(&s, CKO_PRIVATE_KEY, label), CK_INVALID_HANDLE);
	CU_ASSERT_EQUAL(find_one(&s, CKO_PUBLIC_KEY, label), CK_INVALID_HANDLE);
	kos_hsm_session_put(hsm, &s, CKR_OK);
	CU_ASSERT_EQUAL(kos_hsm_data_destroy(hsm, tok, label), KOS_OK);
}

/* --- destroy ------------------------------------------------------------------- */

static void test_destroy_then_sign_not_found(void)
{
	const char *label = "kos-sign:gone:1";
	struct spki k = { 0 };
	uint8_t *sig = NULL;
	size_t len = 0;

	generate(KOS_KEY_EC_P256, label, &k);
	sign_and_verify(KOS_KEY_EC_P256, label, &k, KOS_SIG_DEFAULT, KOS_SIG_ECDSA_RAW, 64);
	CU_ASSERT_EQUAL(kos_signer_destroy(hsm, tok, label), KOS_OK);
	CU_ASSERT_EQUAL(kos_signer_sign(hsm, tok, KOS_KEY_EC_P256, label, KOS_SIG_DEFAULT, msg,
					sizeof(msg), &sig, &len),
			KOS_E_NOTFOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "token signer: "));
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), label));
	CU_ASSERT_PTR_NULL(sig);
	CU_ASSERT_EQUAL(kos_signer_destroy(hsm, tok, label), KOS_E_NOTFOUND);
	spki_clear(&k);
	CU_ASSERT_EQUAL(kos_signer_pubkey(hsm, tok, label, &k.der, &k.len), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_signer_destroy(hsm, tok, "kos-sign:never"), KOS_E_NOTFOUND);
}

/* --- list ---------------------------------------------------------------------- */

struct labels {
	char text[1024];
	unsigned n;
	unsigned stop_after; /* 0: never */
};

static kos_rv collect(const char *label, void *arg)
{
	struct labels *l = arg;
	size_t used = strlen(l->text);

	snprintf(l->text + used, sizeof(l->text) - used, "%s%s", used ? " " : "", label);
	if (++l->n == l->stop_after)
		return KOS_E_BUSY;
	return KOS_OK;
}

/* A key pair made directly through PKCS#11, as another application would. */
static void foreign_pair(const char *label, const uint8_t *id, size_t id_len)
{
	static const CK_BYTE p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48,
					0xce, 0x3d, 0x03, 0x01, 0x07 };
	CK_BBOOL yes = CK_TRUE;
	CK_MECHANISM mech = { CKM_EC_KEY_PAIR_GEN, NULL, 0 };
	CK_ATTRIBUTE pub[] = {
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_EC_PARAMS, (void *)p256, sizeof(p256) },
		{ CKA_LABEL, (void *)label, strlen(label) },
		{ CKA_ID, (void *)id, id_len },
	};
	CK_ATTRIBUTE priv[] = {
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_SIGN, &yes, sizeof(yes) },
		{ CKA_LABEL, (void *)label, strlen(label) },
		{ CKA_ID, (void *)id, id_len },
	};
	CK_OBJECT_HANDLE hpub, hpriv;
	kos_hsm_session s;

	CU_ASSERT_EQUAL_FATAL(kos_hsm_session_get(hsm, tok, &s), KOS_OK);
	CU_ASSERT_EQUAL(s.f->C_GenerateKeyPair(s.h, &mech, pub, KOS_ARRAY_SIZE(pub), priv,
					       KOS_ARRAY_SIZE(priv), &hpub, &hpriv),
			CKR_OK);
	kos_hsm_session_put(hsm, &s, CKR_OK);
}

static void destroy_directly(const char *label, CK_OBJECT_CLASS cls)
{
	kos_hsm_session s;
	CK_OBJECT_HANDLE obj;

	CU_ASSERT_EQUAL_FATAL(kos_hsm_session_get(hsm, tok, &s), KOS_OK);
	obj = find_one(&s, cls, label);
	CU_ASSERT(obj != CK_INVALID_HANDLE);
	CU_ASSERT_EQUAL(s.f->C_DestroyObject(s.h, obj), CKR_OK);
	kos_hsm_session_put(hsm, &s, CKR_OK);
}

static void test_list_with_prefix(void)
{
	static const uint8_t other_id[16] = { 1, 2, 3 };
	struct labels l = { "", 0, 0 };
	struct spki k = { 0 };

	generate(KOS_KEY_EC_P256, "list-b:1", &k);
	spki_clear(&k);
	generate(KOS_KEY_ED25519, "list-a:2", &k);
	spki_clear(&k);
	generate(KOS_KEY_EC_P256, "list-a:1", &k);
	spki_clear(&k);
	/* another application's key under a matching label is not kos's */
	foreign_pair("list-a:foreign", other_id, sizeof(other_id));
	CU_ASSERT_EQUAL(kos_hsm_data_put(hsm, tok, "list-a:data", "x", 1), KOS_OK);

	CU_ASSERT_EQUAL(kos_signer_list(hsm, tok, "list-a:", collect, &l), KOS_OK);
	CU_ASSERT_STRING_EQUAL(l.text, "list-a:1 list-a:2");
	memset(&l, 0, sizeof(l));
	CU_ASSERT_EQUAL(kos_signer_list(hsm, tok, "list-", collect, &l), KOS_OK);
	CU_ASSERT_STRING_EQUAL(l.text, "list-a:1 list-a:2 list-b:1");
	memset(&l, 0, sizeof(l));
	CU_ASSERT_EQUAL(kos_signer_list(hsm, tok, "nothing-", collect, &l), KOS_OK);
	CU_ASSERT_EQUAL(l.n, 0);
	/* everything: the pairs made by other tests too, each once */
	memset(&l, 0, sizeof(l));
	CU_ASSERT_EQUAL(kos_signer_list(hsm, tok, NULL, collect, &l), KOS_OK);
	CU_ASSERT_PTR_NOT_NULL(strstr(l.text, "kos-sign:p256:1 "));
	CU_ASSERT_PTR_NOT_NULL(strstr(l.text, "list-b:1"));
	CU_ASSERT_PTR_NULL(strstr(l.text, "foreign"));
	CU_ASSERT_PTR_NULL(strstr(l.text, "list-a:data"));
	/* fn's failure stops the walk */
	memset(&l, 0, sizeof(l));
	l.stop_after = 1;
	CU_ASSERT_EQUAL(kos_signer_list(hsm, tok, "list-", collect, &l), KOS_E_BUSY);
	CU_ASSERT_EQUAL(l.n, 1);

	/* a lone public half (a crash between the two destroys) is listed, so
	 * fsck can remove it */
	destroy_directly("list-b:1", CKO_PRIVATE_KEY);
	memset(&l, 0, sizeof(l));
	CU_ASSERT_EQUAL(kos_signer_list(hsm, tok, "list-b:", collect, &l), KOS_OK);
	CU_ASSERT_STRING_EQUAL(l.text, "list-b:1");
	CU_ASSERT_EQUAL(kos_signer_destroy(hsm, tok, "list-b:1"), KOS_OK);
	memset(&l, 0, sizeof(l));
	CU_ASSERT_EQUAL(kos_signer_list(hsm, tok, "list-b:", collect, &l), KOS_OK);
	CU_ASSERT_EQUAL(l.n, 0);
	/* and destroy leaves the foreign key alone */
	CU_ASSERT_EQUAL(kos_signer_destroy(hsm, tok, "list-a:foreign"), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_hsm_data_destroy(hsm, tok, "list-a:data"), KOS_OK);
}

/* --- PEM ----------------------------------------------------------------------- */

static void test_pem_round_trip(void)
{
	static const char *const labels[] = { "kos-sign:p256:1", "kos-sign:ed25519:1",
					      "kos-sign:rsa2048:1", "kos-sign:rsa3072:1" };
	static const char head[] = "-----BEGIN PUBLIC KEY-----\n";
	static const char tail[] = "-----END PUBLIC KEY-----\n";
	unsigned char *der;
	size_t i;

	for (i = 0; i < KOS_ARRAY_SIZE(labels); i++) {
		struct spki k = { 0 };
		EVP_PKEY *pkey;
		char *pem = NULL;
		BIO *bio;
		int n;

		CU_ASSERT_EQUAL_FATAL(kos_signer_pubkey(hsm, tok, labels[i], &k.der, &k.len),
				      KOS_OK);
		CU_ASSERT_EQUAL_FATAL(kos_spki_to_pem(k.der, k.len, &pem), KOS_OK);
		CU_ASSERT(strncmp(pem, head, strlen(head)) == 0);
		CU_ASSERT(strlen(pem) > strlen(tail) &&
			  strcmp(pem + strlen(pem) - strlen(tail), tail) == 0);
		bio = BIO_new_mem_buf(pem, -1);
		pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
		CU_ASSERT_PTR_NOT_NULL_FATAL(pkey);
		der = NULL;
		n = i2d_PUBKEY(pkey, &der);
		CU_ASSERT(n > 0 && (size_t)n == k.len && memcmp(der, k.der, k.len) == 0);
		OPENSSL_free(der);
		EVP_PKEY_free(pkey);
		BIO_free(bio);
		kos_free(pem);
		spki_clear(&k);
	}
}

static void test_pem_refuses_garbage(void)
{
	static const uint8_t junk[] = { 0x30, 0x03, 0x02, 0x01, 0x05 };
	uint8_t longer[1024];
	struct spki k = { 0 };
	char *pem = (char *)"untouched";

	CU_ASSERT_EQUAL(kos_spki_to_pem(junk, sizeof(junk), &pem), KOS_E_PARSE);
	CU_ASSERT_PTR_NULL(pem);
	CU_ASSERT_EQUAL(kos_spki_to_pem((const uint8_t *)"hello", 5, &pem), KOS_E_PARSE);
	CU_ASSERT_EQUAL(kos_spki_to_pem(junk, 0, &pem), KOS_E_PARSE);
	CU_ASSERT_EQUAL(kos_spki_to_pem(NULL, 10, &pem), KOS_E_PARSE);
	CU_ASSERT_EQUAL_FATAL(kos_signer_pubkey(hsm, tok, "kos-sign:p256:1", &k.der, &k.len),
			      KOS_OK);
	/* truncated, or with bytes after the structure */
	CU_ASSERT_EQUAL(kos_spki_to_pem(k.der, k.len - 1, &pem), KOS_E_PARSE);
	CU_ASSERT_FATAL(k.len + 1 <= sizeof(longer));
	memcpy(longer, k.der, k.len);
	longer[k.len] = 0;
	CU_ASSERT_EQUAL(kos_spki_to_pem(longer, k.len + 1, &pem), KOS_E_PARSE);
	/* a point not on the curve */
	memcpy(longer, k.der, k.len);
	longer[k.len - 1] ^= 0x01;
	CU_ASSERT_EQUAL(kos_spki_to_pem(longer, k.len, &pem), KOS_E_PARSE);
	CU_ASSERT_PTR_NULL(pem);
	spki_clear(&k);
}

/* --- the handle cache -------------------------------------------------------- */

static void sign_n(kos_key_type type, const char *label, unsigned n)
{
	uint8_t *sig;
	size_t len;
	unsigned i;

	for (i = 0; i < n; i++) {
		sig = NULL;
		CU_ASSERT_EQUAL_FATAL(kos_signer_sign(hsm, tok, type, label, KOS_SIG_DEFAULT, msg,
						      sizeof(msg), &sig, &len),
				      KOS_OK);
		kos_free(sig);
	}
}

static void test_cache_many_signatures_few_lookups(void)
{
	const char *label = "kos-sign:cache:1";
	struct kos_hsm_stats before, after;
	struct spki k = { 0 };
	uint64_t lookups;

	generate(KOS_KEY_EC_P256, label, &k);
	lookups = kos_signer_lookup_count();
	CU_ASSERT_EQUAL(kos_hsm_token_stats(hsm, tok, &before), KOS_OK);
	sign_n(KOS_KEY_EC_P256, label, 200);
	CU_ASSERT_EQUAL(kos_hsm_token_stats(hsm, tok, &after), KOS_OK);
	CU_ASSERT(kos_signer_lookup_count() - lookups <= 1);
	/* one backend call per signature, on pooled sessions */
	CU_ASSERT_EQUAL(after.calls - before.calls, 200);
	CU_ASSERT_EQUAL(after.sessions_opened, before.sessions_opened);
	sign_and_verify(KOS_KEY_EC_P256, label, &k, KOS_SIG_DEFAULT, KOS_SIG_ECDSA_RAW, 64);
	spki_clear(&k);
}

static void test_cache_survives_destroy_and_regenerate(void)
{
	const char *label = "kos-sign:cache:2";
	struct spki old = { 0 }, fresh = { 0 };
	uint8_t *sig = NULL;
	size_t len = 0;

	generate(KOS_KEY_EC_P256, label, &old);
	sign_n(KOS_KEY_EC_P256, label, 3);
	CU_ASSERT_EQUAL(kos_signer_destroy(hsm, tok, label), KOS_OK);
	generate(KOS_KEY_EC_P256, label, &fresh);
	CU_ASSERT(old.len != fresh.len || memcmp(old.der, fresh.der, old.len) != 0);
	CU_ASSERT_EQUAL_FATAL(kos_signer_sign(hsm, tok, KOS_KEY_EC_P256, label, KOS_SIG_ECDSA_DER,
					      msg, sizeof(msg), &sig, &len),
			      KOS_OK);
	CU_ASSERT_EQUAL(verify(&fresh, KOS_SIG_ECDSA_DER, msg, sizeof(msg), sig, len), 1);
	CU_ASSERT_EQUAL(verify(&old, KOS_SIG_ECDSA_DER, msg, sizeof(msg), sig, len), 0);
	kos_free(sig);
	spki_clear(&old);
	spki_clear(&fresh);
}

static void test_cache_relooks_up_a_key_replaced_behind_its_back(void)
{
	const char *label = "kos-sign:cache:3";
	struct spki old = { 0 }, fresh = { 0 };
	uint8_t id[32], *sig = NULL;
	uint64_t lookups;
	size_t len = 0;

	generate(KOS_KEY_EC_P256, label, &old);
	sign_n(KOS_KEY_EC_P256, label, 2); /* the handle is cached now */
	/* another process replaces the pair: same label, same CKA_ID */
	destroy_directly(label, CKO_PRIVATE_KEY);
	destroy_directly(label, CKO_PUBLIC_KEY);
	CU_ASSERT_EQUAL(EVP_Digest(label, strlen(label), id, NULL, EVP_sha256(), NULL), 1);
	foreign_pair(label, id, 16);
	CU_ASSERT_EQUAL_FATAL(kos_signer_pubkey(hsm, tok, label, &fresh.der, &fresh.len), KOS_OK);
	lookups = kos_signer_lookup_count();
	CU_ASSERT_EQUAL_FATAL(kos_signer_sign(hsm, tok, KOS_KEY_EC_P256, label, KOS_SIG_ECDSA_DER,
					      msg, sizeof(msg), &sig, &len),
			      KOS_OK);
	CU_ASSERT_EQUAL(kos_signer_lookup_count() - lookups, 1);
	CU_ASSERT_EQUAL(verify(&fresh, KOS_SIG_ECDSA_DER, msg, sizeof(msg), sig, len), 1);
	CU_ASSERT_EQUAL(verify(&old, KOS_SIG_ECDSA_DER, msg, sizeof(msg), sig, len), 0);
	kos_free(sig);
	/* and it is cached again */
	lookups = kos_signer_lookup_count();
	sign_n(KOS_KEY_EC_P256, label, 5);
	CU_ASSERT_EQUAL(kos_signer_lookup_count(), lookups);
	CU_ASSERT_EQUAL(kos_signer_destroy(hsm, tok, label), KOS_OK);
	spki_clear(&old);
	spki_clear(&fresh);
}

static void test_cache_relooks_up_after_sessions_dropped(void)
{
	const char *label = "kos-sign:cache:4";
	struct spki k = { 0 };
	kos_hsm_session s, keep;
	uint64_t lookups;

	generate(KOS_KEY_ED25519, label, &k);
	sign_n(KOS_KEY_ED25519, label, 2);
	/* A device error makes the backend layer drop every pooled session of
	 * the token and look it up again: handles from before are not trusted.
	 * A session held meanwhile keeps the token logged in, so SoftHSM keeps
	 * its private-object handles valid and only the generation tells. */
	CU_ASSERT_EQUAL_FATAL(kos_hsm_session_get(hsm, tok, &keep), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_hsm_session_get(hsm, tok, &s), KOS_OK);
	s.func = "test";
	kos_hsm_session_put(hsm, &s, CKR_DEVICE_REMOVED);
	lookups = kos_signer_lookup_count();
	sign_n(KOS_KEY_ED25519, label, 3);
	CU_ASSERT_EQUAL(kos_signer_lookup_count() - lookups, 1);
	kos_hsm_session_put(hsm, &keep, CKR_OK);
	sign_and_verify(KOS_KEY_ED25519, label, &k, KOS_SIG_DEFAULT, KOS_SIG_ED25519, 64);
	spki_clear(&k);
}

static void test_forget_drops_cached_handles(void)
{
	const char *label = "kos-sign:cache:1";
	uint64_t lookups;

	sign_n(KOS_KEY_EC_P256, label, 1);
	lookups = kos_signer_lookup_count();
	kos_signer_forget(hsm);
	sign_n(KOS_KEY_EC_P256, label, 2);
	CU_ASSERT_EQUAL(kos_signer_lookup_count() - lookups, 1);
	kos_signer_forget(NULL);
	sign_n(KOS_KEY_EC_P256, label, 1);
	CU_ASSERT_EQUAL(kos_signer_lookup_count() - lookups, 2);
}

struct worker {
	pthread_t th;
	struct spki *k;
	const char *label;
	unsigned good;
};

static void *sign_worker(void *arg)
{
	struct worker *w = arg;
	uint8_t *sig;
	size_t len;
	unsigned i;

	for (i = 0; i < 50; i++) {
		sig = NULL;
		if (kos_signer_sign(hsm, tok, KOS_KEY_EC_P256, w->label, KOS_SIG_ECDSA_DER, msg,
				    sizeof(msg), &sig, &len) == KOS_OK &&
		    verify_quiet(w->k, KOS_SIG_ECDSA_DER, msg, sizeof(msg), sig, len) == 1)
			w->good++;
		kos_free(sig);
	}
	return NULL;
}

static void test_concurrent_signatures(void)
{
	struct spki k = { 0 };
	struct worker w[4];
	uint64_t lookups;
	size_t i;

	CU_ASSERT_EQUAL_FATAL(kos_signer_pubkey(hsm, tok, "kos-sign:cache:1", &k.der, &k.len),
			      KOS_OK);
	kos_signer_forget(hsm);
	lookups = kos_signer_lookup_count();
	for (i = 0; i < KOS_ARRAY_SIZE(w); i++) {
		w[i] = (struct worker){ .k = &k, .label = "kos-sign:cache:1" };
		CU_ASSERT_EQUAL_FATAL(pthread_create(&w[i].th, NULL, sign_worker, &w[i]), 0);
	}
	for (i = 0; i < KOS_ARRAY_SIZE(w); i++) {
		pthread_join(w[i].th, NULL);
		CU_ASSERT_EQUAL(w[i].good, 50);
	}
	/* at most one lookup per thread that missed at the start */
	CU_ASSERT(kos_signer_lookup_count() - lookups <= KOS_ARRAY_SIZE(w));
	spki_clear(&k);
}

int main(void)
{
	static const struct kos_test_case cases[] = {
		KOS_TEST(test_p256_generates_and_signs),
		KOS_TEST(test_ed25519_generates_and_signs),
		KOS_TEST(test_rsa2048_generates_and_signs),
		KOS_TEST(test_rsa3072_generates_and_signs),
		KOS_TEST(test_pss_signatures_are_randomised),
		KOS_TEST(test_sign_empty_message),
		KOS_TEST(test_p256_signs_digests),
		KOS_TEST(test_rsa_signs_digests_pkcs1_and_pss),
		KOS_TEST(test_pkcs1_digest_and_data_sign_alike),
		KOS_TEST(test_digest_refusals),
		KOS_TEST(test_wrong_alg_for_type_refused),
		KOS_TEST(test_type_must_match_the_token_key),
		KOS_TEST(test_rsa_decrypts_pkcs1_and_oaep),
		KOS_TEST(test_rsa_decrypt_refusals),
		KOS_TEST(test_rsa_decrypt_needs_cka_decrypt),
		KOS_TEST(test_oaep_decode),
		KOS_TEST(test_oaep_decode_agrees_with_openssl),
		KOS_TEST(test_right_align),
		KOS_TEST(test_generate_refuses_bad_arguments),
		KOS_TEST(test_sign_refuses_oversized_data),
		KOS_TEST(test_duplicate_label_refused),
		KOS_TEST(test_label_of_data_object_refused),
		KOS_TEST(test_destroy_then_sign_not_found),
		KOS_TEST(test_list_with_prefix),
		KOS_TEST(test_pem_round_trip),
		KOS_TEST(test_pem_refuses_garbage),
		KOS_TEST(test_cache_many_signatures_few_lookups),
		KOS_TEST(test_cache_survives_destroy_and_regenerate),
		KOS_TEST(test_cache_relooks_up_a_key_replaced_behind_its_back),
		KOS_TEST(test_cache_relooks_up_after_sessions_dropped),
		KOS_TEST(test_forget_drops_cached_handles),
		KOS_TEST(test_concurrent_signatures),
	};

	return kos_test_run("signer", suite_init, suite_cleanup, cases, KOS_ARRAY_SIZE(cases));
}
