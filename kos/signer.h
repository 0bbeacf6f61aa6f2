/* Signing key pairs inside a PKCS#11 token (the signer, ca and trustnode
 * roles). Internal to libkos; kos/keys.c and later the credential authority
 * build on it. Thread safety: as kos/hsm.h (pooled sessions per token).
 *
 * A key pair is found by its CKA_LABEL (the caller chooses it, e.g.
 * "kos-sign:NAME:VERSION") and CKA_ID (the first 16 bytes of SHA-256 of the
 * label). The private key is CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE, not
 * CKA_EXTRACTABLE, CKA_SIGN only; the public key is CKA_TOKEN, CKA_VERIFY. */
#ifndef KOS_SIGNER_H
#define KOS_SIGNER_H

#include "kos/hsm.h"
#include "kos/internal.h"

/* Generates a key pair of type (not KOS_KEY_DEK) on token tok under label.
 * *spki (DER SubjectPublicKeyInfo, *spki_len bytes) is freed with kos_free().
 * Errors: KOS_E_EXISTS (label in use), KOS_E_INVALID, token errors. On
 * failure nothing is left on the token. */
kos_rv kos_signer_generate(kos_hsm *hsm, size_t tok, kos_key_type type, const char *label,
			   uint8_t **spki, size_t *spki_len);

/* Signs data with the private key labelled label; alg must fit type
 * (KOS_SIG_DEFAULT picks the type's default). ECDSA hashes with SHA-256 in
 * kos and signs the digest with CKM_ECDSA (raw r||s, converted to DER when
 * asked); Ed25519 uses CKM_EDDSA over the data; RSA uses
 * CKM_SHA256_RSA_PKCS or CKM_SHA256_RSA_PKCS_PSS. Key handles are cached per
 * token and label, so a signature costs one C_Sign (plus C_SignInit).
 * *sig is freed with kos_free(). */
kos_rv kos_signer_sign(kos_hsm *hsm, size_t tok, kos_key_type type, const char *label,
		       kos_sig_alg alg, const uint8_t *data, size_t len, uint8_t **sig,
		       size_t *sig_len);

/* Reads the public key of label from the token as DER SubjectPublicKeyInfo. */
kos_rv kos_signer_pubkey(kos_hsm *hsm, size_t tok, const char *label, uint8_t **spki,
			 size_t *spki_len);

/* Destroys both halves of the key pair (and forgets cached handles).
 * KOS_E_NOTFOUND when neither exists. */
kos_rv kos_signer_destroy(kos_hsm *hsm, size_t tok, const char *label);

/* Calls fn with the label of every key pair on tok whose label starts with
 * prefix (for fsck). */
kos_rv kos_signer_list(kos_hsm *hsm, size_t tok, const char *prefix, kos_hsm_label_fn *fn,
		       void *arg);

/* DER SubjectPublicKeyInfo to PEM ("-----BEGIN PUBLIC KEY-----"), via
 * OpenSSL. *pem is NUL-terminated, freed with kos_free(). */
kos_rv kos_spki_to_pem(const uint8_t *spki, size_t len, char **pem);

#endif
