/* Names, kinds and limits kos's clients and kosd share: key types, signature
 * forms, key and client (principal) names, the credential size. Thread
 * safety: every function is pure. */
#ifndef KOS_NAMES_H
#define KOS_NAMES_H

#include <kos/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kos_key_type {
	KOS_KEY_DEK = 0,       /* 256-bit AES data key, shared across KMS tokens */
	KOS_KEY_EC_P256 = 1,
	KOS_KEY_ED25519 = 2,
	KOS_KEY_RSA_2048 = 3,
	KOS_KEY_RSA_3072 = 4,
} kos_key_type;
#define KOS_KEY_TYPE_COUNT 5

/* Signature forms. KOS_SIG_DEFAULT: ECDSA raw r||s for P-256, Ed25519, and
 * RSA PKCS#1 v1.5 for RSA. ECDSA and RSA sign a digest (kos_hash): of the
 * data, which kos hashes (SHA-256 unless another hash is named), or one the
 * caller computed; Ed25519 signs the message itself. */
typedef enum kos_sig_alg {
	KOS_SIG_DEFAULT = 0,
	KOS_SIG_ECDSA_RAW,    /* r||s, 64 bytes: the JWS ES256 form */
	KOS_SIG_ECDSA_DER,    /* X9.62 DER, what OpenSSL verifies */
	KOS_SIG_ED25519,
	KOS_SIG_RSA_PKCS1,    /* RSASSA-PKCS1-v1_5: DigestInfo of the hash, built by kos */
	KOS_SIG_RSA_PSS,      /* RSASSA-PSS, MGF1 with the same hash, salt as long as
				 the hash unless another length is given */
} kos_sig_alg;
#define KOS_SIG_ALG_COUNT 6

/* The hash an ECDSA or RSA signature is made over. */
typedef enum kos_hash {
	KOS_HASH_SHA256 = 0,
	KOS_HASH_SHA384,
	KOS_HASH_SHA512,
	/* weak (chosen-prefix collisions): kosd signs it only when the policy
	 * allows it (signing.allow_sha1) */
	KOS_HASH_SHA1,
} kos_hash;
#define KOS_HASH_COUNT 4
#define KOS_HASH_MAX_LEN 64 /* bytes of the longest digest */
/* RSA-PSS salt length meaning "as long as the hash" (the length PKCS#11
 * callers and TLS 1.3 use). */
#define KOS_SIG_SALT_DEFAULT (-1)

/* RSA decryption inside the HSM: PKCS#1 v1.5 (RSAES-PKCS1-v1_5, kept for
 * CMS and legacy protocols) or OAEP (RSAES-OAEP, RFC 8017 7.1: preferred),
 * with a hash and an MGF1 hash of kos_hash. SHA-1 in OAEP is no signature
 * and is not gated by signing.allow_sha1. */
typedef enum kos_rsa_padding {
	KOS_RSA_PAD_PKCS1 = 0,
	KOS_RSA_PAD_OAEP,
} kos_rsa_padding;
#define KOS_RSA_LABEL_MAX 4096 /* the longest OAEP label kos takes, in bytes */

#define KOS_KEY_NAME_MAX 64     /* names: 1..64 of [A-Za-z0-9._-], not starting with '.' or '-' */
#define KOS_DEK_LEN 32
#define KOS_KCV_LEN 8

/* AES-256-GCM with the caller's IV, additional data and tag length, on a
 * DEK (CKM_AES_GCM): the IV is 96 bits, the only length SP 800-38D lets an
 * IV be used as given (others go through GHASH); tags of 96 to 128 bits
 * (PKCS#11 allows down to 32, which SP 800-38D reserves for special
 * uses); the tag follows the ciphertext, as PKCS#11 writes it. */
#define KOS_GCM_IV_LEN 12
#define KOS_GCM_TAG_MIN 12
#define KOS_GCM_TAG_MAX 16
#define KOS_GCM_AAD_MAX 65536
#define KOS_GCM_MAX_PLAINTEXT (64u * 1024 * 1024)

#define KOS_CRED_MAX 8192 /* largest credential accepted, in bytes */
#define KOS_PRINCIPAL_NAME_MAX 64 /* client names: 1..64 of [A-Za-z0-9._@-], not starting with '.' or '-' */

/* "dek", "ec-p256", ...; "unknown" for a value outside the enum. */
KOS_API const char *kos_key_type_name(kos_key_type t);
/* KOS_E_INVALID (with the accepted names in the detail) for an unknown name. */
KOS_API kos_rv kos_key_type_parse(const char *s, kos_key_type *out);
KOS_API const char *kos_sig_alg_name(kos_sig_alg a);
KOS_API kos_rv kos_sig_alg_parse(const char *s, kos_sig_alg *out);
/* "sha256", "sha384", "sha512", "sha1"; "unknown" for a value outside the enum. */
KOS_API const char *kos_hash_name(kos_hash h);
/* KOS_E_INVALID (with the accepted names in the detail) for an unknown name. */
KOS_API kos_rv kos_hash_parse(const char *s, kos_hash *out);
/* The digest's length in bytes (32, 48, 64, 20); 0 for a value outside the enum. */
KOS_API size_t kos_hash_len(kos_hash h);
/* 1 when name is a valid key name (KOS_KEY_NAME_MAX), else 0. */
KOS_API int kos_key_name_valid(const char *name);
/* 1 when name is a valid client name (KOS_PRINCIPAL_NAME_MAX), else 0. */
KOS_API int kos_principal_name_valid(const char *name);

#ifdef __cplusplus
}
#endif
#endif
