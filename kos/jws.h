/* JOSE building blocks for the credential authority: base64url (RFC 7515
 * section 2, no padding) through OpenSSL's encoder, and the JWK form of a
 * P-256 public key. Internal to libkos. Thread safety: no shared state. */
#ifndef KOS_JWS_H
#define KOS_JWS_H

#include "kos/internal.h"

/* Characters base64url needs for len bytes (no padding, no NUL). */
size_t kos_b64url_len(size_t len);

/* Encodes len bytes into out (kos_b64url_len(len) + 1 bytes, NUL-terminated).
 * Errors: KOS_E_RANGE when out is too small, KOS_E_NOMEM. */
kos_rv kos_b64url_encode(const uint8_t *in, size_t len, char *out, size_t out_len);

/* Decodes len characters into out (*out_len: in its size, out the bytes
 * written). Only the canonical form is accepted: characters of
 * [A-Za-z0-9_-], no padding, no length of the form 4n+1, unused trailing
 * bits zero (so one byte string has exactly one encoding). Errors:
 * KOS_E_PARSE, KOS_E_RANGE (out too small), KOS_E_NOMEM. */
kos_rv kos_b64url_decode(const char *in, size_t len, uint8_t *out, size_t *out_len);

/* The affine coordinates of a P-256 public key given as DER
 * SubjectPublicKeyInfo, base64url (43 characters each). KOS_E_PARSE when it
 * is not exactly one P-256 key. */
kos_rv kos_jwk_p256(const uint8_t *spki, size_t len, char x[44], char y[44]);

/* 1 when s is exactly n characters of the base64url alphabet. */
int kos_b64url_is(const char *s, size_t n);

#endif
