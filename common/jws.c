/* base64url, JWK and ES256 helpers (see common/jws.h). The encoding itself is
 * OpenSSL's (EVP_EncodeBlock/EVP_DecodeBlock); only the alphabet
 * translation and the canonical-form checks are ours. So is ECDSA: the
 * JWS form r||s becomes the DER OpenSSL verifies, nothing more. */
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

/* Inputs up to this size are translated on the stack; credentials are
 * capped at 8 KiB, so only unusual callers allocate. */
#define STACK_BUF 2048

size_t kos_b64url_len(size_t len)
{
	return len / 3 * 4 + (len % 3 == 0 ? 0 : len % 3 + 1);
}

static int b64url_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

int kos_b64url_is(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!b64url_char(s[i]))
			return 0;
	return s[n] == '\0';
}

kos_rv kos_b64url_encode(const uint8_t *in, size_t len, char *out, size_t out_len)
{
	unsigned char stackbuf[STACK_BUF], *buf = stackbuf;
	size_t need = kos_b64url_len(len), padded, i;

	if (len > (SIZE_MAX - 4) / 4 * 3 - 3 || out_len < need + 1)
		return kos_error_set(KOS_E_RANGE, "base64url: output buffer too small");
	if (len > INT32_MAX / 2)
		return kos_error_set(KOS_E_RANGE, "base64url: input too large");
	padded = (len + 2) / 3 * 4 + 1;
	if (padded > sizeof(stackbuf)) {
		buf = malloc(padded);
		if (buf == NULL)
			return kos_error_set(KOS_E_NOMEM, "out of memory");
	}
	EVP_EncodeBlock(buf, in, (int)len);
	for (i = 0; i < need; i++) {
		char c = (char)buf[i];

		out[i] = c == '+' ? '-' : c == '/' ? '_' : c;
	}
	out[need] = '\0';
	if (buf != stackbuf) {
		OPENSSL_cleanse(buf, padded);
		free(buf);
	} else {
		OPENSSL_cleanse(stackbuf, padded);
	}
	return KOS_OK;
}

kos_rv kos_b64url_decode(const char *in, size_t len, uint8_t *out, size_t *out_len)
{
	unsigned char stackbuf[STACK_BUF], *buf = stackbuf, *raw = NULL;
	size_t padded, pad, bytes, i;
	kos_rv rv = KOS_OK;
	int got;

	if (len % 4 == 1)
		return kos_error_set(KOS_E_PARSE, "base64url: impossible length %zu", len);
	if (len > INT32_MAX / 2)
		return kos_error_set(KOS_E_PARSE, "base64url: input too large");
	pad = (4 - len % 4) % 4;
	padded = len + pad;
	bytes = len / 4 * 3 + (len % 4 == 0 ? 0 : len % 4 - 1);
	if (bytes > *out_len)
		return kos_error_set(KOS_E_RANGE, "base64url: %zu bytes do not fit in %zu", bytes,
				     *out_len);
	/* room for the translated text and for the padded decoding */
	if (padded * 2 + 1 > sizeof(stackbuf)) {
		buf = malloc(padded * 2 + 1);
		if (buf == NULL)
			return kos_error_set(KOS_E_NOMEM, "out of memory");
	}
	raw = buf + padded + 1;
	for (i = 0; i < len; i++) {
		char c = in[i];

		if (!b64url_char(c)) {
			rv = kos_error_set(KOS_E_PARSE,
					   "base64url: character %zu is not in the "
					   "alphabet",
					   i);
			goto out;
		}
		buf[i] = (unsigned char)(c == '-' ? '+' : c == '_' ? '/' : c);
	}
	for (i = 0; i < pad; i++)
		buf[len + i] = '=';
	buf[padded] = '\0';
	got = padded == 0 ? 0 : EVP_DecodeBlock(raw, buf, (int)padded);
	if (got < 0 || (size_t)got != padded / 4 * 3) {
		rv = kos_error_set(KOS_E_PARSE, "base64url: not decodable");
		goto out;
	}
	/* canonical: the bits past the last whole byte must be zero, or two
	 * texts would carry the same bytes */
	if (pad != 0) {
		unsigned char last[4] = {0};
		size_t tail = len % 4;
		char enc[5];

		memcpy(last, raw + bytes - (tail - 1), tail - 1);
		EVP_EncodeBlock((unsigned char *)enc, last, (int)(tail - 1));
		if (enc[tail - 1] != (char)buf[len - 1]) {
			rv = kos_error_set(KOS_E_PARSE, "base64url: non-canonical final character");
			goto out;
		}
	}
	memcpy(out, raw, bytes);
	*out_len = bytes;
out:
	OPENSSL_cleanse(buf, buf == stackbuf ? sizeof(stackbuf) : padded * 2 + 1);
	if (buf != stackbuf)
		free(buf);
	return rv;
}

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
