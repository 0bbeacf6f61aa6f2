/* HKDF-SHA256 (RFC 5869) through OpenSSL's EVP_KDF "HKDF": kos never
 * implements HMAC or HKDF itself. */
#include "config.h"

#include "kos/internal.h"

#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <pthread.h>

/* OpenSSL 3.0 refuses a longer info (HKDF_MAXBUF). */
#define INFO_MAX 1024
#define OUT_MAX	 (255 * 32)

/* Fetched once: an implicit fetch per derivation costs a lock and a look-up. */
static EVP_KDF *hkdf;
static pthread_once_t hkdf_once = PTHREAD_ONCE_INIT;

static void hkdf_fetch(void)
{
	hkdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
}

kos_rv kos_hkdf_sha256(const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
		       const uint8_t *info, size_t info_len, uint8_t *out, size_t len)
{
	char digest[] = "SHA256";
	OSSL_PARAM params[5], *p = params;
	EVP_KDF_CTX *ctx = NULL;
	kos_rv rv = KOS_OK;

	if (out == NULL || len == 0 || len > OUT_MAX)
		return kos_error_set(KOS_E_INVALID, "HKDF-SHA256 output is 1 to %d bytes", OUT_MAX);
	if (ikm == NULL || ikm_len == 0 || (salt == NULL && salt_len > 0) ||
	    (info == NULL && info_len > 0))
		return kos_error_set(KOS_E_INVALID, "HKDF-SHA256: missing input keying material");
	if (info_len > INFO_MAX)
		return kos_error_set(KOS_E_INVALID, "HKDF-SHA256 info is at most %d bytes",
				     INFO_MAX);
	pthread_once(&hkdf_once, hkdf_fetch);
	if (hkdf == NULL || (ctx = EVP_KDF_CTX_new(hkdf)) == NULL)
		return kos_error_set(KOS_E_CRYPTO, "HKDF is not available from OpenSSL");

	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len);
	/* An absent salt is RFC 5869's HashLen zeros; a zero-length one is
	 * the same HMAC key, so leave it out rather than pass an empty buffer. */
	if (salt_len > 0)
		*p++ =
		    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
	if (info_len > 0)
		*p++ =
		    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, info_len);
	*p = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(ctx, out, len, params) != 1) {
		OPENSSL_cleanse(out, len);
		rv = kos_error_set(KOS_E_CRYPTO, "HKDF-SHA256 derivation failed");
	}
	EVP_KDF_CTX_free(ctx); /* cleanses the copies of the key it took */
	return rv;
}
