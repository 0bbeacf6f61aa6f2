/* Keys held by kos: data keys (DEKs, split with Shamir's scheme across KMS
 * tokens) and signing keys (inside a signer token), each with versions
 * (kos-keys(7)). Thread safety: a kos_keys may be used from several threads,
 * except kos_keys_set_clock(); several processes may share a store. */
#ifndef KOS_KEYS_H
#define KOS_KEYS_H

#include <kos/backend.h>
#include <kos/common.h>
#include <kos/names.h>
#include <kos/policy.h>
#include "common/shamir.h"
#include <kos/store.h>
#include <kos/trust.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kos_keys kos_keys;

typedef struct kos_key_info {
	char name[KOS_KEY_NAME_MAX + 1];
	kos_key_type type;
	uint32_t current;       /* version used to encrypt or sign */
	uint32_t min_version;   /* oldest version not retired */
	uint32_t versions;      /* versions not retired */
	kos_usec created;
	kos_usec rotated;       /* when the current version was made */
} kos_key_info;

typedef struct kos_key_version_info {
	uint32_t version;
	kos_usec created;
	int retired;
	uint8_t kcv[KOS_KCV_LEN];   /* DEK: key check value (not secret) */
	unsigned n_sets;            /* DEK: share sets */
	struct {
		char name[32];
		unsigned n, k;
	} sets[8];
	char token[33];             /* signing: the token holding the key pair */
	char label[129];            /* signing: the key pair's CKA_LABEL */
} kos_key_version_info;

/* Where one share of a DEK version is (kos_key_shares()). */
typedef struct kos_key_share_info {
	uint32_t version;
	char set[32];
	uint8_t x;
	char token[33];        /* the KMS token's kos name */
	char label[129];       /* the data object's CKA_LABEL, also the share id */
} kos_key_share_info;

/* A reference to one share, as a medium-tier client receives it. */
typedef struct kos_share_ref {
	char kms_token[33];    /* the KMS token holding the share */
	char share_id[129];    /* opaque id a KMS front resolves */
	uint8_t x;             /* the share's x coordinate */
} kos_share_ref;

/* Opens the key service over borrowed pol, st and hsm (all must outlive it;
 * free the service first). Errors: KOS_E_INVALID, KOS_E_NOMEM. */
KOS_API kos_rv kos_keys_new(const kos_policy *pol, kos_store *st, kos_hsm *hsm, kos_keys **out);
/* Wipes every cached DEK and frees; NULL-safe. Forgets the signer's cached
 * key handles of hsm, so hsm may be freed and another opened after it. */
KOS_API void kos_keys_free(kos_keys *keys);
/* Replaces the clock (default kos_now; fn NULL restores it) for version
 * times, rotation, the cache and fsck's staleness; for tests and "--at". */
KOS_API void kos_keys_set_clock(kos_keys *keys, kos_clock_fn fn, void *arg);
/* Swaps the policy (borrowed), e.g. on reload; wipes the DEK cache. The
 * share sets of new versions follow the new policy; existing versions keep
 * theirs. */
KOS_API void kos_keys_set_policy(kos_keys *keys, const kos_policy *pol);

/* Creates key name at version 1. DEK: random key, key check value, one share
 * set per share set of the policy, each share on a distinct KMS token; all or
 * nothing. Signing types: a key pair generated inside a signer token, never
 * extractable. Errors: KOS_E_EXISTS, KOS_E_INVALID (name, type), KOS_E_RANGE
 * (not enough KMS tokens for a share set), backend errors naming the token. */
KOS_API kos_rv kos_key_create(kos_keys *keys, const char *name, kos_key_type type);
/* Makes a new current version (same all-or-nothing rule and errors, plus
 * KOS_E_NOTFOUND); older versions stay usable until retired. *new_version
 * (may be NULL) receives its number. Wipes the key's cached DEKs. */
KOS_API kos_rv kos_key_rotate(kos_keys *keys, const char *name, uint32_t *new_version);
/* Rotates every key whose current version is older than the policy's
 * rotation interval for its type (by the clock); fn (may be NULL) hears of
 * each. A failure does not stop the others; the first is returned. */
KOS_API kos_rv kos_keys_rotate_due(kos_keys *keys,
				   void (*fn)(const char *name, uint32_t version, void *arg), void *arg);
/* Retires a version that is not current: its shares (or key pair) are
 * destroyed and it can no longer decrypt or sign; a signing key's public key
 * stays exportable. Errors: KOS_E_NOTFOUND (unknown, creating or already
 * retired), KOS_E_INVALID (current version, or 0); KOS_E_IO when the version
 * is retired but a token could not destroy its object (named; the object is
 * left for kos_keys_fsck()). */
KOS_API kos_rv kos_key_retire(kos_keys *keys, const char *name, uint32_t version);
/* Destroys key name: its row, every version, share set, share and
 * certificate leave the store in one transaction, its cached DEKs are wiped,
 * then its objects (every share on the KMS tokens, or the key pairs in the
 * signer token) are destroyed; the name may be created again. Errors:
 * KOS_E_NOTFOUND (no such key), KOS_E_INVALID, KOS_E_STORE, KOS_E_IO (the
 * key is destroyed but a token kept an object: named, left for
 * kos_keys_fsck()). */
KOS_API kos_rv kos_key_destroy(kos_keys *keys, const char *name);

KOS_API kos_rv kos_key_get_info(kos_keys *keys, const char *name, kos_key_info *info);
/* In name order; stops at the first non-zero return of fn and returns it. */
KOS_API kos_rv kos_key_list(kos_keys *keys, int (*fn)(const kos_key_info *info, void *arg), void *arg);
/* kos_key_list() of the keys named name (NULL: any; else exact, and looked
 * up by itself, so the cost does not grow with the number of keys) and of
 * type (negative: any; other types are skipped before their versions are
 * read). No key matching is not an error: fn is not called. Errors:
 * KOS_E_INVALID (a name that is not a key name, a type outside the enum). */
KOS_API kos_rv kos_key_list_filter(kos_keys *keys, const char *name, int type,
				   int (*fn)(const kos_key_info *info, void *arg), void *arg);
/* Every complete (active or retired) version of name, oldest first; stops
 * at the first non-zero return of fn and returns it. */
KOS_API kos_rv kos_key_versions(kos_keys *keys, const char *name,
				int (*fn)(const kos_key_version_info *v, void *arg), void *arg);

/* Every share location of DEK name at version (0: current), in set order
 * and then by x; retired versions have none. From the store only: no token
 * is contacted. Stops at the first non-zero return of fn and returns it.
 * Errors: KOS_E_NOTFOUND, KOS_E_INVALID (not a DEK). */
KOS_API kos_rv kos_key_shares(kos_keys *keys, const char *name, uint32_t version,
			      int (*fn)(const kos_key_share_info *share, void *arg), void *arg);

/* Server-side envelope encryption with the current version of DEK name;
 * *env is freed with kos_free(). Errors: KOS_E_NOTFOUND, KOS_E_INVALID (name,
 * sizes, a signing key), rebuild errors as kos_key_dek(). */
KOS_API kos_rv kos_key_encrypt(kos_keys *keys, const char *name, const char *context,
			       const uint8_t *pt, size_t len, uint8_t **env, size_t *env_len);
/* Server-side decryption; key and version come from the envelope. *pt is
 * freed with kos_secret_free(). With the DEK cached: no store query, no
 * token call, no allocation but *pt. Errors: KOS_E_PARSE, KOS_E_INTEGRITY
 * (wrong context, tampered), KOS_E_NOTFOUND (unknown key or retired
 * version), KOS_E_INVALID (a signing key), rebuild errors as kos_key_dek(). */
KOS_API kos_rv kos_key_decrypt(kos_keys *keys, const char *context, const uint8_t *env,
			       size_t env_len, uint8_t **pt, size_t *len);
/* Rewrap: re-encrypts envelope env of DEK name, sealed with context, as a
 * new envelope of name's current version with the same context, the
 * plaintext held only in locked memory and wiped at once; *out is freed
 * with kos_free(). An envelope already at the current version is
 * authenticated and left as it is: KOS_OK with *out NULL. *version_out
 * (may be NULL) receives the current version. Errors: KOS_E_PARSE (not an
 * envelope), KOS_E_INVALID (an envelope of another key, a signing key, a
 * context too long), KOS_E_INTEGRITY (wrong context, tampered),
 * KOS_E_NOTFOUND (no such key or version, a retired version), KOS_E_NOMEM,
 * rebuild errors as kos_key_dek(). Thread-safe. */
KOS_API kos_rv kos_key_rewrap(kos_keys *keys, const char *name, const char *context,
			      const uint8_t *env, size_t env_len, uint8_t **out, size_t *out_len,
			      uint32_t *version_out);

/* The caller's parameters of AES-256-GCM (CKM_AES_GCM's CK_GCM_PARAMS):
 * limits KOS_GCM_* of <kos/names.h>. */
typedef struct kos_gcm_params {
	const uint8_t *iv;
	size_t iv_len;
	const uint8_t *aad; /* may be NULL with aad_len 0 */
	size_t aad_len;
	size_t tag_len;     /* bytes */
} kos_gcm_params;

/* AES-256-GCM with DEK name and the caller's IV, additional data and tag
 * length; no envelope: *ct is the ciphertext with the tag appended (len +
 * tag_len bytes, freed with kos_free()). version 0 or the current one
 * (another is refused: old versions only decrypt); *version_out (may be
 * NULL) receives it. The IV is the caller's to never repeat under one
 * version. Errors: KOS_E_INVALID (parameters, sizes, a signing key, a
 * version not current), KOS_E_NOTFOUND, rebuild errors as kos_key_dek(). */
KOS_API kos_rv kos_key_gcm_encrypt(kos_keys *keys, const char *name, uint32_t version,
				   const kos_gcm_params *p, const uint8_t *pt, size_t len,
				   uint8_t **ct, size_t *ct_len, uint32_t *version_out);
/* Opens what kos_key_gcm_encrypt() made with version (required: nothing
 * names it otherwise); *pt is freed with kos_secret_free(*pt, *len).
 * Errors: KOS_E_INTEGRITY (the tag does not verify: nothing is handed
 * out), KOS_E_INVALID (parameters, a ciphertext shorter than its tag, no
 * version), KOS_E_NOTFOUND (unknown key, version or retired), rebuild
 * errors as kos_key_dek(). */
KOS_API kos_rv kos_key_gcm_decrypt(kos_keys *keys, const char *name, uint32_t version,
				   const kos_gcm_params *p, const uint8_t *ct, size_t ct_len,
				   uint8_t **pt, size_t *len);

/* The DEK of name at version (0: current) into dek, reconstructed from any
 * k reachable shares of a set and checked against the key check value; from
 * the cache when it holds it (and cached for the policy's keys.cache).
 * *version_out (may be NULL) receives the version. A token that failed or
 * returned a wrong share counts a failure in its statistics even when the
 * DEK is rebuilt from others. Errors: KOS_E_NOTFOUND, KOS_E_INVALID,
 * KOS_E_IO (fewer than k shares of every set readable), KOS_E_INTEGRITY
 * (shares read but no k of them give the key check value); on failure
 * kos_last_error() names every token that failed or returned a wrong share
 * and dek is wiped. */
KOS_API kos_rv kos_key_dek(kos_keys *keys, const char *name, uint32_t version,
			   uint8_t dek[KOS_DEK_LEN], uint32_t *version_out);

/* Share references for a medium-tier client: for set_name (the set the
 * policy assigns to the client's score), k reachable shares on distinct
 * tokens. refs must hold 255. Errors: KOS_E_NOTFOUND, KOS_E_IO (fewer than k
 * tokens reachable, naming them). */
KOS_API kos_rv kos_key_share_refs(kos_keys *keys, const char *name, uint32_t version,
				  const char *set_name, kos_share_ref *refs, size_t *n,
				  unsigned *k, uint32_t *version_out);
/* What a KMS front serves: the share a reference names, read from its token
 * (free with kos_shares_clear()). Errors: KOS_E_NOTFOUND (no such share of
 * an active version), KOS_E_INTEGRITY (the token holds something else),
 * token errors. */
KOS_API kos_rv kos_key_share_get(kos_keys *keys, const char *share_id, kos_share *share);
/* What a KMS front without the state store serves (kosd --role kms): the
 * share share_id names, found by its label on the KMS tokens of hsm (free
 * with kos_shares_clear()). Whether its version is still active is the
 * store's to say: a retired version's shares are destroyed on the tokens,
 * so they are not found. Errors: KOS_E_NOTFOUND, KOS_E_INTEGRITY (the object
 * holds another share or none), the error of a token that failed when no
 * other held the share. */
KOS_API kos_rv kos_key_share_read(kos_hsm *hsm, const char *share_id, kos_share *share);

/* Signs len bytes with the current version of signing key name (SHA-256
 * for ECDSA and RSA, RSA-PSS with a 32-byte salt). *sig is freed with
 * kos_free(). Errors: KOS_E_INVALID (alg does not fit the type),
 * KOS_E_NOTFOUND, token errors. */
KOS_API kos_rv kos_key_sign(kos_keys *keys, const char *name, kos_sig_alg alg, const uint8_t *data,
			    size_t len, uint8_t **sig, size_t *sig_len, uint32_t *version_out);

/* How a signature is made (kos_key_sign_with()); KOS_SIGN_OPTS_INIT is
 * kos_key_sign()'s. With digest, the input is a digest of hash the caller
 * computed, signed as it is (what PKCS#11's CKM_ECDSA, CKM_RSA_PKCS and
 * CKM_RSA_PKCS_PSS take): ECDSA signs it raw, RSA PKCS#1 v1.5 signs the
 * DigestInfo kos builds for hash around it, RSA-PSS uses MGF1 with hash.
 * Ed25519 signs the message itself: it takes neither a digest nor a hash
 * other than the default. version names the key version that signs: a
 * TLS server's certificate is for one version, which must keep signing
 * after a rotation until the certificate is replaced. */
typedef struct kos_sign_opts {
	kos_sig_alg alg;
	kos_hash hash;
	int salt_len;     /* RSA-PSS only: 0..(modulus bytes - hash length - 2), or
			     KOS_SIG_SALT_DEFAULT: the hash's length */
	int digest;       /* 1: the input is a digest of hash; 0: data kos hashes */
	uint32_t version; /* 0: the current one; else an active version */
} kos_sign_opts;
#define KOS_SIGN_OPTS_INIT { KOS_SIG_DEFAULT, KOS_HASH_SHA256, KOS_SIG_SALT_DEFAULT, 0, 0 }

/* kos_key_sign() as opts says; *version_out (may be NULL) receives the
 * version that signed. Errors: KOS_E_INVALID (alg does not fit the type, a
 * digest not of the hash's length, a digest or hash for Ed25519, a salt
 * length for another form or too long for the key), KOS_E_POLICY
 * (KOS_HASH_SHA1 while the policy's signing.allow_sha1 is false),
 * KOS_E_NOTFOUND (no such key or version, or a retired version, the detail
 * saying which), token errors. Thread-safe. */
KOS_API kos_rv kos_key_sign_with(kos_keys *keys, const char *name, const kos_sign_opts *opts,
				 const uint8_t *in, size_t len, uint8_t **sig, size_t *sig_len,
				 uint32_t *version_out);
/* How kos_key_rsa_decrypt() decrypts; KOS_RSA_DECRYPT_OPTS_INIT is PKCS#1
 * v1.5 with the current version (OAEP defaults: SHA-1 and MGF1-SHA-1, as
 * RFC 8017 and OpenSSL have them). */
typedef struct kos_rsa_decrypt_opts {
	kos_rsa_padding padding;
	kos_hash hash, mgf1;	/* OAEP */
	const uint8_t *label;	/* OAEP, may be NULL with label_len 0 */
	size_t label_len;	/* at most KOS_RSA_LABEL_MAX */
	uint32_t version;	/* 0: the current one; else an active version */
} kos_rsa_decrypt_opts;
#define KOS_RSA_DECRYPT_OPTS_INIT { KOS_RSA_PAD_PKCS1, KOS_HASH_SHA1, KOS_HASH_SHA1, NULL, 0, 0 }

/* Decrypts ct (the modulus' length) with version opts->version of RSA key
 * name inside its token; *pt is freed with kos_secret_free(*pt, *len),
 * *version_out (may be NULL) receives the version. Errors: KOS_E_INTEGRITY
 * ("decryption failed", for every failure of the decryption alike),
 * KOS_E_INVALID (not an RSA key, the ciphertext's length, the options, a
 * key version made without decryption: "rotate it"), KOS_E_NOTFOUND (no
 * such key or version, or a retired one), token errors. Thread-safe. */
KOS_API kos_rv kos_key_rsa_decrypt(kos_keys *keys, const char *name,
				   const kos_rsa_decrypt_opts *opts, const uint8_t *ct,
				   size_t len, uint8_t **pt, size_t *pt_len,
				   uint32_t *version_out);

/* The public key of name at version (0: current) as PEM
 * (SubjectPublicKeyInfo); retired versions too. Free with kos_free(). */
KOS_API kos_rv kos_key_pubkey_pem(kos_keys *keys, const char *name, uint32_t version, char **pem);
/* kos_key_pubkey_pem(), and *version_out (may be NULL) receives the version
 * it is: the current one's number for version 0. */
KOS_API kos_rv kos_key_pubkey_pem_at(kos_keys *keys, const char *name, uint32_t version,
				     char **pem, uint32_t *version_out);

/* Certificates beside signing keys (kos-keys(7)): an X.509 certificate in
 * DER, at most KOS_KEY_CERT_MAX bytes, stored with version (0: current) of
 * signing key name, replacing the one it had. It must parse as one
 * certificate with nothing after it and carry that version's public key.
 * *version_out (may be NULL) receives the version. Errors: KOS_E_INVALID
 * (not a certificate, another public key, a data key), KOS_E_NOTFOUND (no
 * such key or active version), KOS_E_STORE. */
#define KOS_KEY_CERT_MAX 16384
KOS_API kos_rv kos_key_cert_set(kos_keys *keys, const char *name, uint32_t version,
				const uint8_t *der, size_t len, uint32_t *version_out);
/* The certificate of version (0: current; retired versions too) of name;
 * *der is freed with kos_free(). Errors: KOS_E_NOTFOUND (no such key or
 * version, or none stored), KOS_E_INVALID (a data key), KOS_E_STORE. */
KOS_API kos_rv kos_key_cert_get(kos_keys *keys, const char *name, uint32_t version,
				uint8_t **der, size_t *len, uint32_t *version_out);
/* Removes the certificate of version (0: current; retired versions too) of
 * name. Errors: KOS_E_NOTFOUND (no such key or version, or none stored),
 * KOS_E_INVALID (a data key), KOS_E_STORE. */
KOS_API kos_rv kos_key_cert_remove(kos_keys *keys, const char *name, uint32_t version);
/* A certificate's DER as PEM text ("-----BEGIN CERTIFICATE-----"), freed
 * with kos_free(). Errors: KOS_E_PARSE, KOS_E_NOMEM. Thread-safe. */
KOS_API kos_rv kos_key_cert_pem(const uint8_t *der, size_t len, char **pem);

/* Finds what a crash can leave: versions in the store never completed, and
 * kos share or key objects on tokens that no active version owns. A version
 * still being made by a live process (same host, process alive, younger than
 * ten minutes) is left alone. With repair, removes them. fn (may be NULL)
 * hears one line per finding or repair. *found counts the findings.
 * Errors: a repair that failed (the first one's), KOS_E_IO when a token
 * could not be checked (named; the rest is still checked and repaired),
 * KOS_E_STORE. */
KOS_API kos_rv kos_keys_fsck(kos_keys *keys, int repair,
			     void (*fn)(const char *line, void *arg), void *arg, unsigned *found);


#ifdef __cplusplus
}
#endif
#endif
