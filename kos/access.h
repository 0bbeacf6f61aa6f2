/* Tiered key delivery: what a client may receive of a key, decided per
 * request from its current trust and the scope it holds (DESIGN.md 3-4).
 * Thread safety: a kos_access may be used from several threads. */
#ifndef KOS_ACCESS_H
#define KOS_ACCESS_H

#include <kos/common.h>
#include <kos/keys.h>
#include <kos/trust.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kos_access kos_access;

/* What a decision delivered. */
typedef enum kos_delivery {
	KOS_DELIVER_REFUSED = 0,  /* reason says why */
	KOS_DELIVER_DEK,          /* high: the whole DEK */
	KOS_DELIVER_SHARES,       /* medium: k share references */
	KOS_DELIVER_SERVER,       /* low: a server-side result only */
} kos_delivery;

typedef struct kos_access_result {
	kos_delivery delivery;
	kos_tier tier;
	double score;
	const char *reason;         /* static: "trust too low", "out of scope", ... or NULL */
	uint32_t version;           /* key version used */
	uint8_t dek[KOS_DEK_LEN];   /* KOS_DELIVER_DEK; wiped by kos_access_result_clear() */
	char share_set[32];         /* KOS_DELIVER_SHARES */
	unsigned k;
	size_t n_refs;
	kos_share_ref refs[255];
	uint8_t *data;              /* server-side result (plaintext or envelope) */
	size_t data_len;
} kos_access_result;

/* Borrows keys and tr (they must outlive it). */
KOS_API kos_rv kos_access_new(kos_keys *keys, kos_trust *tr, kos_access **out);
KOS_API void kos_access_free(kos_access *acc);

/* Asks for key name (version 0: current) for decryption: by tier, the DEK,
 * share references, or "server-side only" (delivery SERVER without data).
 * Needs scope item "decrypt:NAME" (or "key:NAME"). Returns KOS_OK with a
 * REFUSED result for a refusal; errors only for failures. */
KOS_API kos_rv kos_access_key(kos_access *acc, const char *client, const char *scope,
			      const char *name, uint32_t version, kos_access_result *res);

/* Server-side decryption of an envelope (any tier that is not deny; needs
 * "decrypt:NAME"). A wrong context or tampered envelope is an integrity
 * observation for the client and KOS_E_INTEGRITY. */
KOS_API kos_rv kos_access_decrypt(kos_access *acc, const char *client, const char *scope,
				  const char *context, const uint8_t *env, size_t env_len,
				  kos_access_result *res);

/* Server-side encryption with the current version (needs "encrypt:NAME"). */
KOS_API kos_rv kos_access_encrypt(kos_access *acc, const char *client, const char *scope,
				  const char *name, const char *context, const uint8_t *pt,
				  size_t len, kos_access_result *res);

/* The most envelopes one rewrap request carries (kos_access_rewrap()). */
#define KOS_REWRAP_MAX 1000

/* One envelope of a rewrap: the caller sets env, env_len and context (may
 * be NULL: empty); kos_access_rewrap() sets the rest. */
typedef struct kos_rewrap_item {
	const uint8_t *env;
	size_t env_len;
	const char *context;
	kos_rv rv;	   /* KOS_OK, or why this envelope failed */
	const char *code;  /* static: NULL, or when rv fails "bad_request", "wrong_key",
			    * "not_found", "retired", "integrity", "unavailable", "internal" */
	char message[256]; /* the failure's detail, never a secret; "" when none */
	int rewrapped;	   /* 1: out is a new envelope; 0: env was at the current version */
	uint32_t version;  /* the version the envelope is of now (the current one) */
	uint8_t *out;	   /* the new envelope (kos_free()), NULL unless rewrapped */
	size_t out_len;
} kos_rewrap_item;

/* Rewrap (kos_key_rewrap()) of n envelopes of DEK name (0 to
 * KOS_REWRAP_MAX) as one request: one admission, needing "rewrap:NAME"
 * (decrypt:NAME does not give it, and it gives no decryption), at every
 * tier but deny, as server-side decryption is, since neither plaintext nor
 * DEK leaves kosd; then each item on its own: an envelope that fails (of
 * another key, a retired version, tampered, a wrong context) gets its rv,
 * code and message and changes nothing else. One observation for the
 * request: an integrity failure when any envelope failed authentication,
 * else a failure when any failed, else a success. res->version is the
 * current version, res->delivery SERVER (no data). A refusal is KOS_OK
 * with a REFUSED result, the items untouched; errors (KOS_E_NOTFOUND no
 * such key, KOS_E_INVALID a signing key or arguments, KOS_E_RANGE more
 * than KOS_REWRAP_MAX) concern the whole request. Free the new envelopes
 * with kos_rewrap_items_clear(). */
KOS_API kos_rv kos_access_rewrap(kos_access *acc, const char *client, const char *scope,
				 const char *name, kos_rewrap_item *items, size_t n,
				 kos_access_result *res);
/* Frees the new envelopes of n items and clears what kos_access_rewrap()
 * set; NULL-safe. */
KOS_API void kos_rewrap_items_clear(kos_rewrap_item *items, size_t n);

/* Signing inside the HSM (needs "sign:NAME"; the tiers from the policy's
 * signing.min_tier, every one but deny by default). */
KOS_API kos_rv kos_access_sign(kos_access *acc, const char *client, const char *scope,
			       const char *name, kos_sig_alg alg, const uint8_t *data, size_t len,
			       kos_access_result *res);
/* kos_access_sign() as opts says (data or a digest; kos_key_sign_with()):
 * the same scope item, tiers and observations. */
KOS_API kos_rv kos_access_sign_with(kos_access *acc, const char *client, const char *scope,
				    const char *name, const kos_sign_opts *opts,
				    const uint8_t *in, size_t len, kos_access_result *res);

/* RSA decryption inside the HSM (kos_key_rsa_decrypt()): needs
 * "decrypt:NAME", the tiers from the policy's signing.min_tier. res->data
 * is the plaintext, res->version the version used. A failed decryption is
 * an integrity observation and KOS_E_INTEGRITY. */
KOS_API kos_rv kos_access_rsa_decrypt(kos_access *acc, const char *client, const char *scope,
				      const char *name, const kos_rsa_decrypt_opts *opts,
				      const uint8_t *ct, size_t len, kos_access_result *res);

/* AES-256-GCM with the caller's parameters (kos_key_gcm_encrypt(),
 * kos_key_gcm_decrypt()), server-side for any tier that is not deny; needs
 * "encrypt:NAME" or "decrypt:NAME". res->data is the ciphertext with its
 * tag, or the plaintext; res->version the version used. A tag that does
 * not verify is an integrity observation and KOS_E_INTEGRITY. */
KOS_API kos_rv kos_access_gcm_encrypt(kos_access *acc, const char *client, const char *scope,
				      const char *name, uint32_t version, const kos_gcm_params *p,
				      const uint8_t *pt, size_t len, kos_access_result *res);
KOS_API kos_rv kos_access_gcm_decrypt(kos_access *acc, const char *client, const char *scope,
				      const char *name, uint32_t version, const kos_gcm_params *p,
				      const uint8_t *ct, size_t len, kos_access_result *res);

/* Wipes the DEK and frees data; the struct may be reused. */
KOS_API void kos_access_result_clear(kos_access_result *res);

#ifdef __cplusplus
}
#endif
#endif
