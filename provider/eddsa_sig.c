/* Ed25519 with kos's keys: one-shot (EVP_DigestSign with no digest), the
 * message itself sent to kosd, as RFC 8032 has Ed25519 hash it inside. */
#include "config.h"

#include <openssl/core_names.h>
#include <openssl/params.h>

#include "provider/prov.h"

#define KOSPROV_ED25519_MSG_MAX (1u << 20) /* kosd's signing data limit */

static OSSL_FUNC_signature_newctx_fn ed25519_newctx;
static OSSL_FUNC_signature_digest_sign_init_fn ed25519_digest_sign_init;
static OSSL_FUNC_signature_digest_sign_fn ed25519_digest_sign;
static OSSL_FUNC_signature_digest_verify_init_fn ed25519_digest_verify_init;
static OSSL_FUNC_signature_digest_verify_fn ed25519_digest_verify;
static OSSL_FUNC_signature_get_ctx_params_fn ed25519_get_ctx_params;
static OSSL_FUNC_signature_gettable_ctx_params_fn ed25519_gettable_ctx_params;

static int no_params(void *ctx, const OSSL_PARAM params[])
{
	(void)ctx;
	(void)params;
	return 1;
}

static void *ed25519_newctx(void *provctx, const char *propq)
{
	(void)propq;
	return kosprov_sig_newctx(provctx, KOS_SIG_ED25519, KOS_KEY_ED25519, no_params);
}

/* Ed25519 hashes inside the signature (RFC 8032): no digest is taken. */
static int init(kosprov_sig_ctx *s, const char *mdname, kosprov_key *key, bool verify)
{
	if (mdname != NULL && mdname[0] != '\0')
		return kosprov_raise(s->prov, KOSPROV_R_INVALID_ARGUMENT,
				     "Ed25519 takes no digest (%.40s given)", mdname);
	return kosprov_sig_set_key(s, key, verify);
}

static int ed25519_digest_sign_init(void *ctx, const char *mdname, void *provkey,
				    const OSSL_PARAM params[])
{
	(void)params;
	return init(ctx, mdname, provkey, false);
}

static int ed25519_digest_sign(void *ctx, unsigned char *sig, size_t *siglen, size_t sigsize,
			       const unsigned char *tbs, size_t tbslen)
{
	kosprov_sig_ctx *s = ctx;

	if (sig != NULL && tbslen > KOSPROV_ED25519_MSG_MAX)
		return kosprov_raise(s->prov, KOSPROV_R_INVALID_ARGUMENT,
				     "an Ed25519 message of %zu bytes (kos signs at most %u)",
				     tbslen, KOSPROV_ED25519_MSG_MAX);
	return kosprov_sig_sign(s, sig, siglen, sigsize, tbs, tbslen, 0);
}

/* Verification is the other providers' (prov.h says why it is offered). */
static int ed25519_digest_verify_init(void *ctx, const char *mdname, void *provkey,
				      const OSSL_PARAM params[])
{
	(void)params;
	return init(ctx, mdname, provkey, true);
}

static int ed25519_digest_verify(void *ctx, const unsigned char *sig, size_t siglen,
				 const unsigned char *tbs, size_t tbslen)
{
	return kosprov_sig_verify_message(ctx, sig, siglen, tbs, tbslen);
}

static int ed25519_get_ctx_params(void *ctx, OSSL_PARAM params[])
{
	OSSL_PARAM *p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_ALGORITHM_ID);

	return p == NULL || kosprov_sig_get_algorithm_id(ctx, p);
}

static const OSSL_PARAM ed25519_gettable[] = {
	OSSL_PARAM_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, NULL, 0),
	OSSL_PARAM_END
};

static const OSSL_PARAM *ed25519_gettable_ctx_params(void *ctx, void *provctx)
{
	(void)ctx;
	(void)provctx;
	return ed25519_gettable;
}

const OSSL_DISPATCH kosprov_ed25519_signature_functions[] = {
	{ OSSL_FUNC_SIGNATURE_NEWCTX, (void (*)(void))ed25519_newctx },
	{ OSSL_FUNC_SIGNATURE_FREECTX, (void (*)(void))kosprov_sig_freectx },
	{ OSSL_FUNC_SIGNATURE_DUPCTX, (void (*)(void))kosprov_sig_dupctx },
	{ OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT, (void (*)(void))ed25519_digest_sign_init },
	{ OSSL_FUNC_SIGNATURE_DIGEST_SIGN, (void (*)(void))ed25519_digest_sign },
	{ OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_INIT, (void (*)(void))ed25519_digest_verify_init },
	{ OSSL_FUNC_SIGNATURE_DIGEST_VERIFY, (void (*)(void))ed25519_digest_verify },
	{ OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS, (void (*)(void))ed25519_get_ctx_params },
	{ OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS, (void (*)(void))ed25519_gettable_ctx_params },
	{ 0, NULL }
};
