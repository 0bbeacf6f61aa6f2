/* JWK and ES256 helpers (see common/jws.h); base64url is common/base64.c's.
 * ECDSA is OpenSSL's: the JWS form r||s becomes the DER OpenSSL verifies,
 * nothing more. */
#include "config.h"

#include "common/jws.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

kos_rv kos_es256_key(const uint8_t *spki, size_t len, EVP_PKEY **out)
{
	const unsigned char *p = spki;
	EVP_PKEY *pkey = NULL;
	char group[32];

	*out = NULL;
	if (len > 65536)
		return kos_error_set(KOS_E_PARSE, "public key too large");
	pkey = d2i_PUBKEY(NULL, &p, (long)len);
	if (pkey == NULL || p != spki + len) {
		EVP_PKEY_free(pkey);
		ERR_clear_error();
		return kos_error_set(KOS_E_PARSE, "not one DER SubjectPublicKeyInfo");
	}
	if (!EVP_PKEY_is_a(pkey, "EC") ||
	    EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
					   NULL) != 1 ||
	    strcmp(group, "prime256v1") != 0) {
		EVP_PKEY_free(pkey);
		ERR_clear_error();
		return kos_error_set(KOS_E_PARSE, "not a P-256 public key");
	}
	*out = pkey;
	return KOS_OK;
}

kos_rv kos_ecdsa_raw_to_der(const uint8_t *raw, size_t n, uint8_t **der, size_t *der_len)
{
	ECDSA_SIG *es = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(raw, (int)(n / 2), NULL);
	BIGNUM *s = BN_bin2bn(raw + n / 2, (int)(n / 2), NULL);
	unsigned char *p;
	uint8_t *buf = NULL;
	kos_rv rv = KOS_E_NOMEM;
	int len;

	if (es == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1)
		goto out;
	r = s = NULL; /* owned by es now */
	len = i2d_ECDSA_SIG(es, NULL);
	if (len <= 0 || (buf = malloc((size_t)len)) == NULL)
		goto out;
	p = buf;
	if (i2d_ECDSA_SIG(es, &p) != len) {
		rv = KOS_E_CRYPTO;
		goto out;
	}
	*der = buf;
	*der_len = (size_t)len;
	buf = NULL;
	rv = KOS_OK;
out:
	free(buf);
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(es);
	return rv;
}

kos_rv kos_es256_verify(EVP_PKEY *pkey, const uint8_t *input, size_t len,
			const uint8_t sig[KOS_ES256_SIG_LEN])
{
	EVP_MD_CTX *md = NULL;
	uint8_t *der = NULL;
	size_t der_len = 0;
	kos_rv rv;

	rv = kos_ecdsa_raw_to_der(sig, KOS_ES256_SIG_LEN, &der, &der_len);
	if (rv != KOS_OK)
		return kos_error_set(rv, "ES256: cannot convert the signature");
	md = EVP_MD_CTX_new();
	if (md == NULL || EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pkey) != 1) {
		rv = kos_error_set(KOS_E_CRYPTO, "ES256: cannot set up a verification");
		goto out;
	}
	/* 0 is a wrong signature, below 0 one OpenSSL could not read (r or s
	 * out of range): to the caller both are a signature that does not
	 * verify */
	if (EVP_DigestVerify(md, der, der_len, input, len) != 1)
		rv = kos_error_set(KOS_E_INTEGRITY, "ES256: the signature does not verify");
out:
	/* a refusal must not leave OpenSSL errors queued for the thread's next
	 * user (a TLS connection reads that queue) */
	if (rv != KOS_OK)
		ERR_clear_error();
	EVP_MD_CTX_free(md);
	kos_secret_free(der, der_len);
	return rv;
}

kos_rv kos_jwk_p256(const uint8_t *spki, size_t len, char x[44], char y[44])
{
	EVP_PKEY *pkey = NULL;
	BIGNUM *bx = NULL, *by = NULL;
	uint8_t bin[32];
	kos_rv rv;

	rv = kos_es256_key(spki, len, &pkey);
	if (rv != KOS_OK)
		return rv;
	if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, &bx) != 1 ||
	    EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &by) != 1) {
		rv = kos_error_set(KOS_E_PARSE, "P-256 public key without coordinates");
		goto out;
	}
	if (BN_bn2binpad(bx, bin, sizeof(bin)) != sizeof(bin)) {
		rv = kos_error_set(KOS_E_PARSE, "P-256 coordinate out of range");
		goto out;
	}
	rv = kos_b64url_encode(bin, sizeof(bin), x, 44);
	if (rv != KOS_OK)
		goto out;
	if (BN_bn2binpad(by, bin, sizeof(bin)) != sizeof(bin)) {
		rv = kos_error_set(KOS_E_PARSE, "P-256 coordinate out of range");
		goto out;
	}
	rv = kos_b64url_encode(bin, sizeof(bin), y, 44);
out:
	BN_free(bx);
	BN_free(by);
	EVP_PKEY_free(pkey);
	return rv;
}
