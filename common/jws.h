/* JOSE building blocks for the credential authority: the JWK form of a
 * P-256 public key and ES256 (RFC 7518 section 3.4) verification with
 * OpenSSL. base64url (RFC 7515 section 2, no padding) is kos_b64url_*() of
 * common/internal.h.
 * Internal to libkos. Thread safety: no shared state; an EVP_PKEY from
 * kos_es256_key() may verify in several threads at once. */
#ifndef KOS_JWS_H
#define KOS_JWS_H

#include "common/internal.h"

#include <openssl/types.h>

/* The length of a JWS ES256 signature: r||s, 32 bytes each. */
#define KOS_ES256_SIG_LEN 64

/* The affine coordinates of a P-256 public key given as DER
 * SubjectPublicKeyInfo, base64url (43 characters each). KOS_E_PARSE when it
 * is not exactly one P-256 key. */
kos_rv kos_jwk_p256(const uint8_t *spki, size_t len, char x[44], char y[44]);

/* The P-256 public key of a DER SubjectPublicKeyInfo, parsed for
 * kos_es256_verify(); the caller frees *out with EVP_PKEY_free(). Errors:
 * KOS_E_PARSE when spki is not exactly one P-256 key. */
kos_rv kos_es256_key(const uint8_t *spki, size_t len, EVP_PKEY **out);

/* Checks an ES256 signature (r||s) over the len bytes of input with pkey
 * (from kos_es256_key). KOS_OK when it verifies, KOS_E_INTEGRITY when it
 * does not, KOS_E_NOMEM or KOS_E_CRYPTO. The algorithm is the caller's choice, never the
 * signed text's. */
kos_rv kos_es256_verify(EVP_PKEY *pkey, const uint8_t *input, size_t len,
			const uint8_t sig[KOS_ES256_SIG_LEN]);

/* An ECDSA signature r||s (n bytes, two halves of n / 2) as X9.62 DER in a
 * new buffer the caller frees with free(). Errors: KOS_E_NOMEM,
 * KOS_E_CRYPTO. */
kos_rv kos_ecdsa_raw_to_der(const uint8_t *raw, size_t n, uint8_t **der, size_t *der_len);

#endif
