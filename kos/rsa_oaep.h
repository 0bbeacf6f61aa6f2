/* RSAES-OAEP decoding in kos, for tokens whose CKM_RSA_PKCS_OAEP refuses
 * the caller's parameters (SoftHSM 2.6.1 takes SHA-1, MGF1-SHA-1 and no
 * label only): the token then decrypts with CKM_RSA_X_509 and kos/signer.c
 * decodes here. Internal to libkos. Thread safety: pure functions. */
#ifndef KOS_RSA_OAEP_H
#define KOS_RSA_OAEP_H

#include "kos/internal.h"

#include <openssl/evp.h>

/* Decodes em, the k bytes of a raw RSA decryption (RFC 8017 7.1.2 step 3),
 * with hash md, MGF1 of mgf_md and label (may be NULL with label_len 0).
 * out holds at least k - 2 * hLen - 2 bytes; *out_len receives the
 * message's length. Constant time in the contents of em: no branch or
 * memory access depends on them until the one final accept or reject.
 * Errors: KOS_E_INTEGRITY for every decoding failure alike (one answer,
 * so the result is no padding oracle by content; out wiped),
 * KOS_E_INVALID (k too small for the hash, bad arguments), KOS_E_CRYPTO
 * (a digest failed). */
kos_rv kos_rsa_oaep_decode(const EVP_MD *md, const EVP_MD *mgf_md, const uint8_t *label,
			   size_t label_len, const uint8_t *em, size_t k, uint8_t *out,
			   size_t *out_len);

/* Moves the n bytes at the start of buf (k bytes) to its end and zeroes the
 * k - n before them, without a branch or memory access that depends on n
 * (0 < n <= k): a token may return a raw decryption without its leading
 * zero bytes, and how many there were is secret. */
void kos_rsa_right_align(uint8_t *buf, size_t k, size_t n);

#endif
