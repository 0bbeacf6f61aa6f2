/* The OpenSSL 3 provider "kos": private declarations shared by its files
 * (kos-provider(7)). The provider is a client of kosd through
 * libkos-client only: private keys stay in kosd's HSM tokens; a key object
 * here is a name, a version and the public half.
 * Thread safety: the provider context is shared by every thread of the
 * application; its handle pool is guarded by one mutex and rebuilt in a
 * forked child. Key objects are immutable after load (reference counted);
 * operation contexts belong to one thread at a time, as OpenSSL requires. */
#ifndef KOSPROV_PROV_H
#define KOSPROV_PROV_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/core.h>
#include <openssl/core_dispatch.h>
#include <openssl/evp.h>

#include <kos/client.h>

#define KOSPROV_EXPORT __attribute__((visibility("default")))
#define KOSPROV_NAME "kos"
/* Property query of the provider's own fetches (digests, public-key
 * arithmetic in its child library context): anything but kos itself. */
#define KOSPROV_PROPQ "provider!=kos"
/* Idle handles kept for reuse: one per thread that signs at a time. */
#define KOSPROV_POOL_MAX 16

/* Reasons raised through the core (kosprov_get_reason_strings()). */
enum kosprov_reason {
	KOSPROV_R_REVOKED = 1,
	KOSPROV_R_EXPIRED,
	KOSPROV_R_CREDENTIAL,
	KOSPROV_R_OUT_OF_SCOPE,
	KOSPROV_R_TRUST_TOO_LOW,
	KOSPROV_R_DENIED,
	KOSPROV_R_UNAVAILABLE,
	KOSPROV_R_NOT_FOUND,
	KOSPROV_R_REFUSED,
	KOSPROV_R_BAD_URI,
	KOSPROV_R_UNSUPPORTED,
	KOSPROV_R_CONFIG,
	KOSPROV_R_NO_PRIVATE_KEY,
	KOSPROV_R_INVALID_ARGUMENT,
	KOSPROV_R_DECRYPT_FAILED,
	KOSPROV_R_INTERNAL,
};

typedef struct kosprov_ctx {
	const OSSL_CORE_HANDLE *handle;
	OSSL_LIB_CTX *libctx; /* a child of the application's library context */
	/* the core's error callbacks */
	OSSL_FUNC_core_new_error_fn *new_error;
	OSSL_FUNC_core_set_error_debug_fn *set_error_debug;
	OSSL_FUNC_core_vset_error_fn *vset_error;
	/* configuration (openssl.cnf, else the client library's environment) */
	char *server, *cred_file, *tls_cert, *tls_key, *tls_ca;
	char *credential; /* $KOS_CREDENTIAL when no credential file is named (secret) */
	/* the handle pool (handles.c's lock) */
	pid_t pid;
	kos_client *pool[KOSPROV_POOL_MAX];
	size_t pooled;
} kosprov_ctx;

/* A kos key: a signing key's name and version in kosd, the public half
 * (an EVP_PKEY of the child library context) and whether the object stands
 * for the private half kosd keeps. With the provider loaded before the
 * default one, OpenSSL also fetches kos's key management and signatures
 * for keys that are not kosd's (a key file, a key it generates, a
 * certificate's public key to verify with): those are "local" keys, an
 * ordinary EVP_PKEY of the other providers carried here, whose operations
 * kos hands back to those providers unchanged. */
typedef struct kosprov_key {
	int refs; /* atomic */
	kosprov_ctx *prov;
	char name[KOS_KEY_NAME_MAX + 1]; /* "" for a key imported from its public half */
	uint32_t version;
	kos_key_type type;
	bool priv;	/* the private half is kosd's (name, version) */
	bool local;	/* pub holds the private half itself: not a kosd key */
	EVP_PKEY *pub;	/* the public half, or the whole local key */
} kosprov_key;

/* kos_prov.c */
/* Raises reason with a formatted detail through the core; returns 0, the
 * failure result of provider functions. */
int kosprov_raise(const kosprov_ctx *p, int reason, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Raises what the handle's last call says (kosd's refusal, else the
 * client library's detail) about what; returns 0. */
int kosprov_raise_client(const kosprov_ctx *p, const kos_client *c, kos_rv rv, const char *what);

/* handles.c */
kos_rv kosprov_handles_init(kosprov_ctx *p);
void kosprov_handles_uninit(kosprov_ctx *p);
/* A handle on kosd with the configured credential, from the pool or new;
 * NULL after raising. Thread-safe; in a forked child the parent's handles
 * are left alone and new ones made. Give it back with kosprov_handle_put. */
kos_client *kosprov_handle_get(kosprov_ctx *p);
void kosprov_handle_put(kosprov_ctx *p, kos_client *c);

/* kos_key.c */
/* Parses "kos:NAME[;version=N][;type=private|public]"; 0 for another
 * scheme or a malformed URI (detail in why, which may be NULL). */
int kosprov_uri_parse(const char *uri, char name[KOS_KEY_NAME_MAX + 1], uint32_t *version,
		      bool *public_only, const char **why);
/* Asks kosd for name's public key at version (0: current) and makes a key
 * object for it; NULL after raising. */
kosprov_key *kosprov_key_load_uri(kosprov_ctx *p, const char *uri);
kosprov_key *kosprov_key_new(kosprov_ctx *p, kos_key_type type);
kosprov_key *kosprov_key_ref(kosprov_key *k);
void kosprov_key_free(kosprov_key *k);
/* The OpenSSL key type name of a kos key type ("EC", "ED25519", "RSA"). */
const char *kosprov_key_type_name(kos_key_type t);

/* sig.c: the signing core every signature file uses */
typedef struct kosprov_sig_ctx {
	kosprov_ctx *prov;
	kos_key_type type;  /* the key type of the algorithm */
	OSSL_FUNC_signature_set_ctx_params_fn *set_params; /* the algorithm's */
	kosprov_key *key;
	EVP_MD_CTX *md_ctx; /* digest_sign: hashed here, in the application */
	EVP_MD *md;	    /* NULL: not set (plain sign takes the length's hash) */
	kos_sig_alg alg;
	int pss_saltlen_param; /* RSA-PSS as set: -1 digest, -2 auto, -3 max, or bytes */
	EVP_MD *mgf1;	    /* RSA-PSS: NULL = the digest */
} kosprov_sig_ctx;

kosprov_sig_ctx *kosprov_sig_newctx(kosprov_ctx *p, kos_sig_alg alg, kos_key_type type,
				    OSSL_FUNC_signature_set_ctx_params_fn *set_params);
/* Fetches mdname (NULL: keep) as the digest; 0 after raising when the
 * other providers have none. */
int kosprov_sig_set_md(kosprov_sig_ctx *s, const char *mdname);
/* The kos hash of an EVP_MD; 0 after raising when kos has none for it. */
int kosprov_md_hash(const kosprov_ctx *p, const EVP_MD *md, kos_hash *h);
/* Fetches the digest a parameter names into *dst (freeing the old one); 0
 * after raising. */
int kosprov_md_param(const kosprov_ctx *p, const OSSL_PARAM *param, EVP_MD **dst);
/* RSA's padding mode from a parameter given as a number or a name
 * ("pkcs1", "pss", "oaep", ...); 0 when it is neither. */
int kosprov_pad_param(const OSSL_PARAM *param, int *pad);
/* Signs a digest (or, for Ed25519, the message) in kosd, or by the other
 * providers for a local key: with sig NULL only *siglen (the largest
 * signature) is set. */
int kosprov_sig_sign(kosprov_sig_ctx *s, unsigned char *sig, size_t *siglen, size_t sigsize,
		     const unsigned char *tbs, size_t tbslen, int digest);
/* Takes key (a reference) for signing (the private half: kosd's, or a
 * local key) or verifying; 0 after raising for another type. */
int kosprov_sig_set_key(kosprov_sig_ctx *s, kosprov_key *key, bool verify);
/* The DER AlgorithmIdentifier of the signature s makes, into p. */
int kosprov_sig_get_algorithm_id(kosprov_sig_ctx *s, OSSL_PARAM *p);
/* Ed25519's one-shot verification of a message, by the other providers. */
int kosprov_sig_verify_message(kosprov_sig_ctx *s, const unsigned char *sig, size_t siglen,
			       const unsigned char *msg, size_t msglen);

/* The signature functions ECDSA and RSA share (sig.c): the key is taken
 * with the algorithm's parameters, the digest computed here and signed in
 * kosd; verification is the other providers' with the public half,
 * offered because OpenSSL may fetch kos's algorithm for any key of the
 * type when kos is loaded before the default provider. */
OSSL_FUNC_signature_freectx_fn kosprov_sig_freectx;
OSSL_FUNC_signature_dupctx_fn kosprov_sig_dupctx;
OSSL_FUNC_signature_sign_init_fn kosprov_sig_sign_init;
OSSL_FUNC_signature_sign_fn kosprov_sig_sign_digest;
OSSL_FUNC_signature_digest_sign_init_fn kosprov_sig_digest_sign_init;
OSSL_FUNC_signature_digest_sign_update_fn kosprov_sig_digest_update;
OSSL_FUNC_signature_digest_sign_final_fn kosprov_sig_digest_sign_final;
OSSL_FUNC_signature_verify_init_fn kosprov_sig_verify_init;
OSSL_FUNC_signature_verify_fn kosprov_sig_verify;
OSSL_FUNC_signature_digest_verify_init_fn kosprov_sig_digest_verify_init;
OSSL_FUNC_signature_digest_verify_final_fn kosprov_sig_digest_verify_final;

#define KOSPROV_SIG_DIGEST_FUNCTIONS                                                         \
	{ OSSL_FUNC_SIGNATURE_FREECTX, (void (*)(void))kosprov_sig_freectx },                 \
	{ OSSL_FUNC_SIGNATURE_DUPCTX, (void (*)(void))kosprov_sig_dupctx },                   \
	{ OSSL_FUNC_SIGNATURE_SIGN_INIT, (void (*)(void))kosprov_sig_sign_init },             \
	{ OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT, (void (*)(void))kosprov_sig_digest_sign_init }, \
	{ OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE, (void (*)(void))kosprov_sig_digest_update }, \
	{ OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL, (void (*)(void))kosprov_sig_digest_sign_final }, \
	{ OSSL_FUNC_SIGNATURE_VERIFY_INIT, (void (*)(void))kosprov_sig_verify_init },         \
	{ OSSL_FUNC_SIGNATURE_VERIFY, (void (*)(void))kosprov_sig_verify },                   \
	{ OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_INIT, (void (*)(void))kosprov_sig_digest_verify_init }, \
	{ OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_UPDATE, (void (*)(void))kosprov_sig_digest_update }, \
	{ OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_FINAL, (void (*)(void))kosprov_sig_digest_verify_final }

/* The algorithm tables of each file. */
extern const OSSL_DISPATCH kosprov_ec_keymgmt_functions[];
extern const OSSL_DISPATCH kosprov_ed25519_keymgmt_functions[];
extern const OSSL_DISPATCH kosprov_rsa_keymgmt_functions[];
extern const OSSL_DISPATCH kosprov_ecdsa_signature_functions[];
extern const OSSL_DISPATCH kosprov_ed25519_signature_functions[];
extern const OSSL_DISPATCH kosprov_rsa_signature_functions[];
extern const OSSL_DISPATCH kosprov_rsa_asym_cipher_functions[];
extern const OSSL_DISPATCH kosprov_store_functions[];
extern const OSSL_DISPATCH kosprov_pem_decoder_functions[];
extern const OSSL_DISPATCH kosprov_uri_decoder_functions[];
extern const OSSL_DISPATCH kosprov_text_encoder_functions[];

#endif
