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
