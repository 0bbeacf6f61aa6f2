/* Signing key pairs inside a PKCS#11 token (the signer, ca and trustnode
 * roles). Internal to libkos; kos/keys.c and later the credential authority
 * build on it. Thread safety: every function may be called from several
 * threads (pooled sessions per token as kos/hsm.h; the handle cache has its
 * own lock, never held across a module call).
 *
 * A key pair is found by its CKA_LABEL (the caller chooses it, e.g.
 * "kos-sign:NAME:VERSION") and CKA_ID (the first 16 bytes of SHA-256 of the
 * label). The private key is CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE, not
 * CKA_EXTRACTABLE, CKA_SIGN, and for RSA CKA_DECRYPT (pairs made before kos
 * decrypted lack it); the public key is CKA_TOKEN, CKA_VERIFY, and for RSA
 * CKA_ENCRYPT. */
#ifndef KOS_SIGNER_H
#define KOS_SIGNER_H

#include "kos/hsm.h"
#include "kos/internal.h"

/* Largest input kos_signer_sign() accepts. */
#define KOS_SIGNER_DATA_MAX (64u * 1024 * 1024)

/* Generates a key pair of type (not KOS_KEY_DEK) on token tok under label
 * (1..KOS_HSM_LABEL_MAX printable ASCII). *spki (DER SubjectPublicKeyInfo
 * built from the token's public key, *spki_len bytes) is freed with
 * kos_free(). Errors: KOS_E_EXISTS (an object with the label exists; not
 * atomic against a concurrent generate of the same label, so callers
 * serialise per label), KOS_E_INVALID, KOS_E_RANGE (tok), token errors. On
 * failure nothing is left on the token. */
kos_rv kos_signer_generate(kos_hsm *hsm, size_t tok, kos_key_type type, const char *label,
			   uint8_t **spki, size_t *spki_len);

/* Signs data with the private key labelled label; alg must fit type
 * (KOS_SIG_DEFAULT picks the type's default): kos_signer_sign_with() with
 * SHA-256 and, for RSA-PSS, a 32-byte salt. */
kos_rv kos_signer_sign(kos_hsm *hsm, size_t tok, kos_key_type type, const char *label,
		       kos_sig_alg alg, const uint8_t *data, size_t len, uint8_t **sig,
		       size_t *sig_len);

/* Signs in (data, or a digest with opts->digest; see kos_sign_opts) with
 * the private key labelled label. ECDSA and RSA hash data in kos with
 * opts->hash and send the token the digest: CKM_ECDSA (raw r||s, converted
 * to DER when asked), CKM_RSA_PKCS over the DigestInfo kos builds, or
 * CKM_RSA_PKCS_PSS with the hash, MGF1 of the hash and the salt length;
 * Ed25519 uses CKM_EDDSA over the data. Key handles are cached per
 * token and label, so a signature costs one C_Sign (plus C_SignInit); a
 * handle is looked up again after the token's sessions were dropped or when
 * the token says it is invalid. *sig is freed with kos_free().
 * Errors: KOS_E_INVALID (alg, hash, digest length or salt length does not
 * fit type, or the key on the token is not of type), KOS_E_NOTFOUND,
 * KOS_E_RANGE (len > KOS_SIGNER_DATA_MAX), KOS_E_INTEGRITY (two private keys with the label), token errors. */
kos_rv kos_signer_sign_with(kos_hsm *hsm, size_t tok, kos_key_type type, const char *label,
			    const kos_sign_opts *opts, const uint8_t *in, size_t len,
			    uint8_t **sig, size_t *sig_len);

/* Decrypts ct (exactly the modulus' length) with the RSA private key
 * labelled label inside the token: CKM_RSA_PKCS for PKCS#1 v1.5, or
 * CKM_RSA_PKCS_OAEP with opts' hash and MGF1 hash; where the token refuses
 * those OAEP parameters, or for a label (which SoftHSM ignores),
 * CKM_RSA_X_509 and OAEP decoded by kos in constant time (kos/rsa_oaep.h).
 * *pt (*pt_len bytes) is freed with kos_secret_free(*pt, *pt_len).
 * Errors: KOS_E_INTEGRITY "decryption failed" for every failure of the
 * decryption itself, whatever failed (no padding oracle by content),
 * KOS_E_POLICY (the key pair was made without CKA_DECRYPT), KOS_E_INVALID
 * (not an RSA type, the ciphertext's length, padding, hash or label),
 * KOS_E_NOTFOUND, token errors. */
kos_rv kos_signer_rsa_decrypt(kos_hsm *hsm, size_t tok, kos_key_type type, const char *label,
			      const kos_rsa_decrypt_opts *opts, const uint8_t *ct, size_t len,
			      uint8_t **pt, size_t *pt_len);

/* Reads the public key of label from the token as DER SubjectPublicKeyInfo,
 * freed with kos_free(). Errors: KOS_E_NOTFOUND, KOS_E_INVALID (a key type
 * kos does not make), token errors. */
kos_rv kos_signer_pubkey(kos_hsm *hsm, size_t tok, const char *label, uint8_t **spki,
			 size_t *spki_len);

/* Destroys both halves of the key pair (and forgets cached handles).
 * KOS_E_NOTFOUND when neither exists. */
kos_rv kos_signer_destroy(kos_hsm *hsm, size_t tok, const char *label);

/* Calls fn once with the label of every kos key pair on tok whose label
 * starts with prefix ("" or NULL: all), in label order, after the session is
 * back in the pool (fn may call the signer). A pair counts when either half
 * exists (a crash can leave one) and its CKA_ID is kos's for the label;
 * other applications' keys are skipped. A non-KOS_OK return from fn stops
 * the walk and is returned (for fsck). */
kos_rv kos_signer_list(kos_hsm *hsm, size_t tok, const char *prefix, kos_hsm_label_fn *fn,
		       void *arg);

/* DER SubjectPublicKeyInfo to PEM ("-----BEGIN PUBLIC KEY-----"), via
 * OpenSSL. *pem is NUL-terminated, freed with kos_free(). Errors:
 * KOS_E_PARSE (not exactly one DER SubjectPublicKeyInfo), KOS_E_NOMEM. */
kos_rv kos_spki_to_pem(const uint8_t *spki, size_t len, char **pem);

/* Forgets every cached key handle of hsm (NULL: of every handle). Call it
 * before kos_hsm_free() when the process may open another handle: a new one
 * can land at the same address while the module renumbers its objects. */
void kos_signer_forget(const kos_hsm *hsm);

/* Private-key lookups (C_FindObjects) kos_signer_sign() has made in this
 * process; for tests of the handle cache. */
uint64_t kos_signer_lookup_count(void);

#endif
