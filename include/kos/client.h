/* The kos client library: what applications, the PKCS#11 module, the
 * provider and kosctl use to reach kosd (kos-client(3), protocol kos-api(7)).
 * Thread safety: a kos_client is used by one thread at a time (it owns its
 * kept-alive connections, to kosd and to KMS fronts, and a DEK cache); give
 * each thread its own handle.
 * Handles share nothing, and error details are per thread. */
#ifndef KOS_CLIENT_H
#define KOS_CLIENT_H

#include <kos/common.h>
#include <kos/names.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kos_client kos_client;

/* Environment read by kos_client_new(). */
#define KOS_CLIENT_ENV_SERVER "KOS_SERVER"		   /* kosd's address when server is NULL */
#define KOS_CLIENT_ENV_CREDENTIAL_FILE "KOS_CREDENTIAL_FILE" /* file holding the credential */
#define KOS_CLIENT_ENV_CREDENTIAL "KOS_CREDENTIAL"	   /* the credential itself */
/* kos_client_set_tls() from the environment: certificate, key (default: the
 * certificate's file) and CA (default: the system's), PEM files */
#define KOS_CLIENT_ENV_TLS_CERT "KOS_TLS_CERT"
#define KOS_CLIENT_ENV_TLS_KEY "KOS_TLS_KEY"
#define KOS_CLIENT_ENV_TLS_CA "KOS_TLS_CA"

/* How a decryption went (kos_client_stats.last_path). */
typedef enum kos_client_path {
	KOS_CLIENT_PATH_NONE = 0,
	KOS_CLIENT_PATH_CACHE,	/* a cached DEK, no request */
	KOS_CLIENT_PATH_DEK,	/* high tier: the DEK was delivered */
	KOS_CLIENT_PATH_SHARES, /* medium tier: rebuilt from k shares */
	KOS_CLIENT_PATH_SERVER, /* low tier: decrypted by kosd */
} kos_client_path;

/* Why kosd refused the last call (kos_client_last_refusal()): one value per
 * kind of answer a front-end maps (the PKCS#11 module to a CK_RV, the
 * provider to a reason), beside the exact code kos_client_last_code() gives. */
typedef enum kos_client_refusal {
	KOS_CLIENT_REFUSAL_NONE = 0,	 /* not refused: success, or a local error */
	KOS_CLIENT_REFUSAL_REVOKED,	 /* the credential (or its client) is revoked */
	KOS_CLIENT_REFUSAL_EXPIRED,	 /* the credential expired and was not refreshed */
	KOS_CLIENT_REFUSAL_CREDENTIAL,	 /* no, a malformed or a forged credential, or
					    one bound to another certificate */
	KOS_CLIENT_REFUSAL_OUT_OF_SCOPE, /* the credential's scope does not reach it */
	KOS_CLIENT_REFUSAL_TRUST_TOO_LOW, /* the client's trust is below the threshold */
	KOS_CLIENT_REFUSAL_DENY,	 /* the policy refuses this tier the operation */
	KOS_CLIENT_REFUSAL_UNAVAILABLE,	 /* kosd unreachable, busy or its backend down */
	KOS_CLIENT_REFUSAL_NOT_FOUND,	 /* no such key, version, client or share */
	KOS_CLIENT_REFUSAL_INVALID,	 /* the request itself was refused as malformed */
	KOS_CLIENT_REFUSAL_OTHER,	 /* any other refusal (see the code) */
} kos_client_refusal;

/* Counters of one handle, for monitoring and tests. */
typedef struct kos_client_stats {
	uint64_t requests;     /* HTTP requests answered (any status) */
	uint64_t connects;     /* connections opened, to kosd and KMS fronts: each
				  server's stays open while keep-alive holds */
	uint64_t key_requests; /* POST /v1/keys/NAME/request */
	uint64_t cache_hits;   /* decryptions served by the DEK cache */
	uint64_t deks_received;
	uint64_t shares_fetched;
	uint64_t refreshes;    /* credentials refreshed (automatically or not) */
	uint64_t save_failures; /* refreshed credentials that could not be written back */
	kos_client_path last_path;
	uint64_t shares_from_fronts; /* of shares_fetched: from a KMS front other than kosd */
} kos_client_stats;

/* A key the credential's scope reaches (kos_client_keys()). */
typedef struct kos_client_key {
	char name[KOS_KEY_NAME_MAX + 1];
	char type[16]; /* "dek", "ec-p256", ... (kos_key_type_name) */
	uint32_t current, min_version, versions;
} kos_client_key;

/* Opens a handle for kosd at server: a Unix socket path, "unix:PATH", or
 * "https://HOST:PORT" for kosd's TLS listener (which needs
 * kos_client_set_tls() first); NULL takes $KOS_SERVER. No connection is
 * made yet. The credential is read from the file $KOS_CREDENTIAL_FILE
 * (refreshed ones are written back there) or else taken from
 * $KOS_CREDENTIAL; without either the handle can only call
 * kos_client_health() and kos_client_enroll() until one is set. With
 * $KOS_TLS_CERT set, kos_client_set_tls() is called with it, $KOS_TLS_KEY
 * and $KOS_TLS_CA. Free with kos_client_free(). Errors: KOS_E_INVALID (no
 * server, an address of another form), KOS_E_IO (the credential file, a TLS
 * file), KOS_E_NOMEM. */
KOS_API kos_rv kos_client_new(const char *server, kos_client **out);
/* kos_client_new() without reading the environment: server must be given,
 * and the credential and TLS files are the caller's to set (what the
 * provider does with its openssl.cnf section, which the environment must
 * not override). flags: KOS_CLIENT_NEW_NO_ENV (others: KOS_E_INVALID). */
#define KOS_CLIENT_NEW_NO_ENV 1u
KOS_API kos_rv kos_client_new_ex(const char *server, unsigned flags, kos_client **out);
/* Wipes the credential and every cached DEK and frees; NULL-safe. */
KOS_API void kos_client_free(kos_client *c);

/* TLS 1.3 (nothing older) with a client certificate for every https://
 * server of the handle, kosd's and the KMS fronts': cert and key are PEM
 * files (they may be one file), ca (may be NULL: the system's CA store)
 * the PEM CA certificates that verify the server, whose certificate must
 * name the host it is reached by. Paths are copied and the files read at
 * each new connection. Unix-socket servers ignore it. Errors:
 * KOS_E_INVALID, KOS_E_IO (a file that cannot be read, named); the handle
 * is unchanged then. */
KOS_API kos_rv kos_client_set_tls(kos_client *c, const char *cert, const char *key,
				  const char *ca);

/* Uses token (copied; NULL forgets the credential). Refreshed credentials
 * are kept in memory only. Errors: KOS_E_INVALID (too long, not a JWT). */
KOS_API kos_rv kos_client_set_credential(kos_client *c, const char *token);
/* Reads the credential from path (one line, at most KOS_CRED_MAX bytes);
 * refreshed credentials are written back to it atomically with mode 0600.
 * Errors: KOS_E_IO, KOS_E_INVALID, KOS_E_RANGE. */
KOS_API kos_rv kos_client_set_credential_file(kos_client *c, const char *path);

/* Exchanges a one-time enrollment secret for a credential, which the handle
 * then uses. save (may be NULL) names a file to write it to (atomically,
 * 0600) and to bind the handle to, as kos_client_set_credential_file().
 * Errors: KOS_E_INTEGRITY (unknown, expired or used secret), KOS_E_POLICY,
 * KOS_E_IO, transport errors. */
KOS_API kos_rv kos_client_enroll(kos_client *c, const char *secret, const char *save);
/* Refreshes the credential now. Every call that needs a credential does it
 * by itself once 2/3 of its lifetime (less a random jitter of up to 1/10)
 * have passed, so callers need this only to force one. Errors: as the
 * server's refusal (KOS_E_INTEGRITY "revoked", "expired"; KOS_E_POLICY),
 * KOS_E_IO when the new credential could not be written back (it is still
 * used). */
KOS_API kos_rv kos_client_refresh(kos_client *c);
/* The credential's expiry (microseconds since the epoch), 0 without one. */
KOS_API kos_usec kos_client_credential_expires(const kos_client *c);

/* GET /v1/health; version (may be NULL) receives kosd's version. */
KOS_API kos_rv kos_client_health(kos_client *c, char *version, size_t version_len);

/* Calls fn for each key the credential's scope reaches, in name order; a
 * non-zero return of fn stops and is returned. */
KOS_API kos_rv kos_client_keys(kos_client *c,
			       int (*fn)(const kos_client_key *key, void *arg), void *arg);
/* kos_client_keys() of the keys kosd finds named name (NULL: any; else
 * exactly) and of type (a kos_key_type_name(), NULL: any): kosd filters, so
 * one key among thousands costs one small answer. No match calls fn never
 * and returns KOS_OK. Errors: KOS_E_INVALID (not a key name or type), as
 * kos_client_keys(). */
KOS_API kos_rv kos_client_keys_find(kos_client *c, const char *name, const char *type,
				    int (*fn)(const kos_client_key *key, void *arg), void *arg);

/* Server-side encryption with the current version of DEK name; context (may
 * be NULL) is authenticated (kos-envelope(5)). *env is freed with kos_free(). */
KOS_API kos_rv kos_client_encrypt(kos_client *c, const char *name, const char *context,
				  const uint8_t *pt, size_t len, uint8_t **env, size_t *env_len);

/* Decrypts an envelope by the path the caller's tier allows: high, with the
 * delivered DEK (cached in locked memory for the time kosd names); medium,
 * with the DEK rebuilt from k shares fetched from the KMS fronts and checked
 * against the key check value; low, by kosd. *pt is freed with
 * kos_secret_free(*pt, *len). Errors: KOS_E_PARSE (not an envelope),
 * KOS_E_INTEGRITY (wrong context, tampered, a bad share set), KOS_E_POLICY
 * ("trust too low", "out of scope"), KOS_E_NOTFOUND, transport errors. */
KOS_API kos_rv kos_client_decrypt(kos_client *c, const char *context, const uint8_t *env,
				  size_t env_len, uint8_t **pt, size_t *len);
/* Rewrap (POST /v1/keys/NAME/rewrap): envelopes of data key NAME
 * re-encrypted by kosd under its current version with the context each
 * was sealed with, the plaintext never leaving kosd. At most
 * KOS_CLIENT_REWRAP_MAX envelopes a call. */
#define KOS_CLIENT_REWRAP_MAX 1000
typedef struct kos_client_rewrap_item {
	const uint8_t *env;	/* in: the envelope */
	size_t env_len;
	const char *context;	/* in: its context (NULL: empty) */
	kos_rv rv;		/* out: KOS_OK or why this envelope failed */
	char code[32];		/* out: kosd's code for the failure ("integrity",
				 * "retired", "wrong_key", ...), "" on success */
	char message[256];	/* out: kosd's message for it, "" on success */
	int rewrapped;		/* out: 1 when out is a new envelope, 0 when env is
				 * at the current version already (out NULL) */
	uint32_t version;	/* out: the version the envelope is of now */
	uint8_t *out;		/* out: the new envelope, freed with kos_free() */
	size_t out_len;
} kos_client_rewrap_item;

/* Sends n items (1..KOS_CLIENT_REWRAP_MAX) in one request and fills each
 * with its own result, in order; *current (may be NULL) receives the key's
 * current version. KOS_OK once kosd answered for every item, whatever
 * each item's rv: KOS_E_INTEGRITY (tampered, a wrong context),
 * KOS_E_NOTFOUND (a retired version: code "retired"; one the key never
 * had), KOS_E_INVALID (another key's envelope: "wrong_key"; not an
 * envelope), KOS_E_BUSY. Needs rewrap:NAME, which gives no decryption;
 * every tier but deny. Errors of the whole request: KOS_E_INVALID
 * (arguments), KOS_E_RANGE (more than KOS_CLIENT_REWRAP_MAX), kosd's
 * refusals as kos_client_decrypt() (KOS_E_POLICY "out of scope", "trust
 * too low"), KOS_E_NOTFOUND (no such key), transport errors; the items
 * are then left without results. Free the new envelopes with
 * kos_client_rewrap_clear(). */
KOS_API kos_rv kos_client_rewrap(kos_client *c, const char *name, kos_client_rewrap_item *items,
				 size_t n, uint32_t *current);
/* Frees the new envelopes of n items and clears their results; NULL-safe. */
KOS_API void kos_client_rewrap_clear(kos_client_rewrap_item *items, size_t n);

/* The caller's parameters of AES-256-GCM (PKCS#11's CK_GCM_PARAMS, the tag
 * length in bytes): an IV of KOS_GCM_IV_LEN bytes, additional data of at
 * most KOS_GCM_AAD_MAX bytes (aad may be NULL with aad_len 0), a tag of
 * KOS_GCM_TAG_MIN..KOS_GCM_TAG_MAX bytes (<kos/names.h>). */
typedef struct kos_client_gcm {
	const uint8_t *iv;
	size_t iv_len;
	const uint8_t *aad;
	size_t aad_len;
	size_t tag_len;
} kos_client_gcm;

/* AES-256-GCM with DEK name's current version and the caller's parameters
 * (CKM_AES_GCM): *ct is the ciphertext with the tag appended (len +
 * tag_len bytes, freed with kos_free()), *version (may be NULL) the
 * version used, which decryption needs. By tier, as kos_client_decrypt():
 * locally with the delivered (cached) DEK or the DEK rebuilt from shares,
 * or by kosd. The caller must never repeat an IV under one version. A
 * cached DEK keeps being used for the time kosd named, even after a
 * rotation: *version says which. Errors: KOS_E_INVALID (parameters, sizes,
 * a signing key), KOS_E_POLICY, KOS_E_NOTFOUND, transport errors. */
KOS_API kos_rv kos_client_gcm_encrypt(kos_client *c, const char *name, const kos_client_gcm *p,
				      const uint8_t *pt, size_t len, uint8_t **ct, size_t *ct_len,
				      uint32_t *version);
/* Opens what kos_client_gcm_encrypt() (or kosd's gcm/encrypt) made with
 * version (1 or more) of name; *pt is freed with kos_secret_free(*pt,
 * *len). Errors: KOS_E_INTEGRITY (the tag does not verify: a changed bit,
 * another IV, additional data or version, a cut tag; nothing is handed
 * out), KOS_E_INVALID (parameters, a ciphertext shorter than its tag, no
 * version), as kos_client_gcm_encrypt() otherwise. */
KOS_API kos_rv kos_client_gcm_decrypt(kos_client *c, const char *name, uint32_t version,
				      const kos_client_gcm *p, const uint8_t *ct, size_t ct_len,
				      uint8_t **pt, size_t *len);

/* Wipes every cached DEK of the handle. */
KOS_API void kos_client_forget_keys(kos_client *c);

/* How kos_client_sign_ex() signs; KOS_CLIENT_SIGN_OPTS_INIT is
 * kos_client_sign()'s with KOS_SIG_DEFAULT. */
typedef struct kos_client_sign_opts {
	kos_sig_alg alg;  /* KOS_SIG_DEFAULT: the key type's default */
	kos_hash hash;    /* ECDSA, RSA */
	int salt_len;     /* RSA-PSS: KOS_SIG_SALT_DEFAULT = the hash's length */
	uint32_t version; /* 0: the current */
	int digest;       /* 1: data is a digest of hash (kos_hash_len bytes) */
} kos_client_sign_opts;
#define KOS_CLIENT_SIGN_OPTS_INIT { KOS_SIG_DEFAULT, KOS_HASH_SHA256, KOS_SIG_SALT_DEFAULT, 0, 0 }

/* Signs with signing key name inside kosd's HSM, as opts says: data hashed
 * by kosd with opts->hash (ECDSA, RSA), or with opts->digest a digest of
 * opts->hash the caller computed (len must be kos_hash_len(hash)), signed
 * as PKCS#11's CKM_ECDSA, CKM_RSA_PKCS (in the DigestInfo kosd builds for
 * hash) and CKM_RSA_PKCS_PSS (MGF1 of hash, a salt of salt_len bytes) do;
 * Ed25519 signs the data itself (KOS_HASH_SHA256, the default salt, no
 * digest). opts->version names the key version (0: the current one): a
 * TLS server keeps signing with its certificate's version after a
 * rotation. *sig is freed with kos_free(); *version_out (may be NULL)
 * receives the version that signed. Errors: KOS_E_INVALID (kosd's too: a
 * form, hash, digest length or salt that does not fit the key),
 * KOS_E_NOTFOUND (no such key or version; a retired version, with
 * kos_client_last_code() "retired"), kosd's refusals as
 * kos_client_decrypt(), transport errors. */
KOS_API kos_rv kos_client_sign_ex(kos_client *c, const char *name,
				  const kos_client_sign_opts *opts, const uint8_t *data,
				  size_t len, uint8_t **sig, size_t *sig_len,
				  uint32_t *version_out);
/* kos_client_sign_ex() with alg and the current version, data hashed with
 * SHA-256. */
KOS_API kos_rv kos_client_sign(kos_client *c, const char *name, kos_sig_alg alg,
			       const uint8_t *data, size_t len, uint8_t **sig, size_t *sig_len);
/* kos_client_sign_ex() of data hashed by hash, with the current version. */
KOS_API kos_rv kos_client_sign_hash(kos_client *c, const char *name, kos_sig_alg alg,
				    kos_hash hash, int salt_len, const uint8_t *data, size_t len,
				    uint8_t **sig, size_t *sig_len);
/* kos_client_sign_ex() of a digest of hash (a PKCS#11 caller that holds a
 * DigestInfo passes its digest and the hash its prefix names), with the
 * current version. */
KOS_API kos_rv kos_client_sign_digest(kos_client *c, const char *name, kos_sig_alg alg,
				      kos_hash hash, int salt_len, const uint8_t *digest,
				      size_t len, uint8_t **sig, size_t *sig_len);
/* The public key of version (0: the current one; retired versions too) of
 * signing key name as PEM; *pem is freed with kos_free(), *version_out (may
 * be NULL) receives the version it is, so a caller of the current key
 * learns which. Needs sign:NAME or pubkey:NAME. Errors: KOS_E_NOTFOUND,
 * KOS_E_INVALID (a data key), kosd's refusals, transport errors. */
KOS_API kos_rv kos_client_pubkey_at(kos_client *c, const char *name, uint32_t version,
				    char **pem, uint32_t *version_out);
/* kos_client_pubkey_at() of the current version. */
KOS_API kos_rv kos_client_pubkey(kos_client *c, const char *name, char **pem);

/* How kos_client_rsa_decrypt() decrypts; KOS_CLIENT_RSA_OPTS_INIT is
 * PKCS#1 v1.5 with the current version (and SHA-1 with MGF1-SHA-1 for
 * OAEP, RFC 8017's and OpenSSL's defaults). */
typedef struct kos_client_rsa_opts {
	kos_rsa_padding padding;
	kos_hash hash, mgf1;			/* OAEP */
	const uint8_t *label; size_t label_len;	/* OAEP, may be NULL/0 */
	uint32_t version;			/* 0: current */
} kos_client_rsa_opts;
#define KOS_CLIENT_RSA_OPTS_INIT { KOS_RSA_PAD_PKCS1, KOS_HASH_SHA1, KOS_HASH_SHA1, NULL, 0, 0 }

/* Decrypts ct, len bytes (the modulus' length), with RSA key name inside
 * kosd's HSM: PKCS#1 v1.5 (kept for CMS and legacy protocols) or OAEP
 * (preferred) with opts' hash, MGF1 hash and label. *pt is freed with
 * kos_secret_free(*pt, *pt_len). Needs decrypt:NAME and a tier from the
 * policy's signing.min_tier. Errors: KOS_E_INTEGRITY (the ciphertext does
 * not decrypt, whatever failed: kosd gives one answer; it costs the
 * client trust), KOS_E_INVALID (not an RSA key, a ciphertext of another
 * length, the options, a key made without decryption), KOS_E_NOTFOUND (no
 * such key or version; "retired"), kosd's refusals as
 * kos_client_decrypt(), transport errors. */
KOS_API kos_rv kos_client_rsa_decrypt(kos_client *c, const char *name,
				      const kos_client_rsa_opts *opts, const uint8_t *ct,
				      size_t len, uint8_t **pt, size_t *pt_len);

/* The X.509 certificate (DER) stored beside version (0: current) of signing
 * key name; *der is freed with kos_free(). Needs a scope that reaches the
 * key (sign:, pubkey: or certify:NAME). Errors: KOS_E_NOTFOUND (none
 * stored, no such key or version), KOS_E_POLICY, transport errors. */
KOS_API kos_rv kos_client_cert_get(kos_client *c, const char *name, uint32_t version,
				   uint8_t **der, size_t *len);
/* Stores an X.509 certificate (DER, at most 16384 bytes) beside version (0:
 * current) of signing key name, replacing the one it had; kosd checks that
 * it parses and carries that version's public key. Needs certify:NAME.
 * Errors: KOS_E_INVALID (not a certificate, another key's, a data key),
 * KOS_E_NOTFOUND, KOS_E_POLICY, transport errors. */
KOS_API kos_rv kos_client_cert_set(kos_client *c, const char *name, uint32_t version,
				   const uint8_t *der, size_t len);

/* The handle's counters. */
KOS_API void kos_client_get_stats(const kos_client *c, kos_client_stats *stats);
/* The "error" code of kosd's last refusal ("revoked", "trust_too_low",
 * "out_of_scope", ...) or "" when the last call was not refused by kosd;
 * valid until the handle's next call. kos_last_error() holds the message. */
KOS_API const char *kos_client_last_code(const kos_client *c);
/* The kind of kosd's last refusal, or KOS_CLIENT_REFUSAL_UNAVAILABLE when the
 * last call could not reach kosd or a KMS front; KOS_CLIENT_REFUSAL_NONE when
 * it succeeded or failed before asking. Valid until the handle's next call. */
KOS_API kos_client_refusal kos_client_last_refusal(const kos_client *c);

/* Calls any route of kos-api(7) not covered above (the administrative
 * routes, a refresh to a narrower scope): method "GET" with json_in NULL, or
 * "POST" with json_in a JSON object as text (NULL: {}); path starts with
 * "/v1/" and may end in a query of name=value pairs ("?version=2"). The credential is sent, and refreshed when due, as for the calls
 * above. On KOS_OK *json_out is kosd's answer object as compact JSON text;
 * it may hold secrets (an enrollment secret, a credential): free it with
 * kos_secret_free(*json_out, strlen(*json_out)). Errors: KOS_E_INVALID
 * (method, path, a body that is not an object), kosd's refusals as above
 * (kos_client_last_code() names them), transport errors. */
KOS_API kos_rv kos_client_call(kos_client *c, const char *method, const char *path,
			       const char *json_in, char **json_out);

#ifdef __cplusplus
}
#endif
#endif
