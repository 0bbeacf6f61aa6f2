/* ECDSA with kos's P-256 keys: DER signatures (X9.62), of a digest the
 * application computed (EVP_DigestSign*) or gave (EVP_PKEY_sign). */
#include "config.h"

#include <openssl/core_names.h>
#include <openssl/params.h>

#include "provider/prov.h"

static OSSL_FUNC_signature_newctx_fn ecdsa_newctx;
static OSSL_FUNC_signature_get_ctx_params_fn ecdsa_get_ctx_params;
static OSSL_FUNC_signature_gettable_ctx_params_fn ecdsa_gettable_ctx_params;
static OSSL_FUNC_signature_set_ctx_params_fn ecdsa_set_ctx_params;
static OSSL_FUNC_signature_settable_ctx_params_fn ecdsa_settable_ctx_params;

static void *ecdsa_newctx(void *provctx, const char *propq)
{
	(void)propq;
	return kosprov_sig_newctx(provctx, KOS_SIG_ECDSA_DER, KOS_KEY_EC_P256,
				  ecdsa_set_ctx_params);
}

static int ecdsa_get_ctx_params(void *ctx, OSSL_PARAM params[])
{
	kosprov_sig_ctx *s = ctx;
	OSSL_PARAM *p;

	p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_ALGORITHM_ID);
	if (p != NULL && !kosprov_sig_get_algorithm_id(s, p))
		return 0;
	p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_DIGEST);
	if (p != NULL && s->md != NULL && !OSSL_PARAM_set_utf8_string(p, EVP_MD_get0_name(s->md)))
		return 0;
	return 1;
}

static const OSSL_PARAM ecdsa_gettable[] = {
	OSSL_PARAM_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
	OSSL_PARAM_END
};

static const OSSL_PARAM *ecdsa_gettable_ctx_params(void *ctx, void *provctx)
{
	(void)ctx;
	(void)provctx;
	return ecdsa_gettable;
}

static int ecdsa_set_ctx_params(void *ctx, const OSSL_PARAM params[])
{
	const OSSL_PARAM *p;
	const char *mdname = NULL;

	if (params == NULL)
		return 1;
	p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_DIGEST);
	if (p != NULL && (!OSSL_PARAM_get_utf8_string_ptr(p, &mdname) ||
			  !kosprov_sig_set_md(ctx, mdname)))
		return 0;
	return 1;
}

static const OSSL_PARAM ecdsa_settable[] = {
	OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
	OSSL_PARAM_END
};

static const OSSL_PARAM *ecdsa_settable_ctx_params(void *ctx, void *provctx)
{
	(void)ctx;
	(void)provctx;
	return ecdsa_settable;
}

const OSSL_DISPATCH kosprov_ecdsa_signature_functions[] = {
	{ OSSL_FUNC_SIGNATURE_NEWCTX, (void (*)(void))ecdsa_newctx },
	{ OSSL_FUNC_SIGNATURE_SIGN, (void (*)(void))kosprov_sig_sign_digest },
	KOSPROV_SIG_DIGEST_FUNCTIONS,
	{ OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS, (void (*)(void))ecdsa_get_ctx_params },
	{ OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS, (void (*)(void))ecdsa_gettable_ctx_params },
	{ OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS, (void (*)(void))ecdsa_set_ctx_params },
	{ OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS, (void (*)(void))ecdsa_settable_ctx_params },
	{ 0, NULL }
};
