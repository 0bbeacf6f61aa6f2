/* ECDSA with kos's P-256 keys: DER signatures (X9.62), of a digest the
 * application computed (EVP_DigestSign*) or gave (EVP_PKEY_sign). */
#include "config.h"

#include <openssl/core_names.h>
#include <openssl/params.h>

#include "provider/prov.h"

static OSSL_FUNC_signature_newctx_fn ecdsa_newctx;
static OSSL_FUNC_signature_freectx_fn ecdsa_freectx;
static OSSL_FUNC_signature_dupctx_fn ecdsa_dupctx;
static OSSL_FUNC_signature_sign_init_fn ecdsa_sign_init;
static OSSL_FUNC_signature_sign_fn ecdsa_sign;
static OSSL_FUNC_signature_digest_sign_init_fn ecdsa_digest_sign_init;
static OSSL_FUNC_signature_digest_sign_update_fn ecdsa_digest_sign_update;
static OSSL_FUNC_signature_digest_sign_final_fn ecdsa_digest_sign_final;
static OSSL_FUNC_signature_verify_init_fn ecdsa_verify_init;
static OSSL_FUNC_signature_verify_fn ecdsa_verify;
static OSSL_FUNC_signature_digest_verify_init_fn ecdsa_digest_verify_init;
static OSSL_FUNC_signature_digest_verify_final_fn ecdsa_digest_verify_final;
static OSSL_FUNC_signature_get_ctx_params_fn ecdsa_get_ctx_params;
static OSSL_FUNC_signature_gettable_ctx_params_fn ecdsa_gettable_ctx_params;
static OSSL_FUNC_signature_set_ctx_params_fn ecdsa_set_ctx_params;
static OSSL_FUNC_signature_settable_ctx_params_fn ecdsa_settable_ctx_params;

static void *ecdsa_newctx(void *provctx, const char *propq)
{
	(void)propq;
	return kosprov_sig_newctx(provctx, KOS_SIG_ECDSA_DER);
}

static void ecdsa_freectx(void *ctx)
{
	kosprov_sig_freectx(ctx);
}

static void *ecdsa_dupctx(void *ctx)
{
	return kosprov_sig_dupctx(ctx);
}

static int ecdsa_sign_init(void *ctx, void *provkey, const OSSL_PARAM params[])
{
	return kosprov_sig_set_key(ctx, provkey, KOS_KEY_EC_P256) &&
	       ecdsa_set_ctx_params(ctx, params);
}

static int ecdsa_sign(void *ctx, unsigned char *sig, size_t *siglen, size_t sigsize,
		      const unsigned char *tbs, size_t tbslen)
{
	return kosprov_sig_sign(ctx, sig, siglen, sigsize, tbs, tbslen, 1);
}

static int ecdsa_digest_sign_init(void *ctx, const char *mdname, void *provkey,
				  const OSSL_PARAM params[])
{
	return kosprov_sig_set_key(ctx, provkey, KOS_KEY_EC_P256) &&
	       ecdsa_set_ctx_params(ctx, params) && kosprov_sig_digest_init(ctx, mdname);
}

static int ecdsa_digest_sign_update(void *ctx, const unsigned char *data, size_t datalen)
{
	return kosprov_sig_digest_update(ctx, data, datalen);
}

static int ecdsa_digest_sign_final(void *ctx, unsigned char *sig, size_t *siglen,
				   size_t sigsize)
{
	return kosprov_sig_digest_final(ctx, sig, siglen, sigsize);
}

/* Verification is the other providers' (sig.c), offered because OpenSSL
 * may fetch kos's ECDSA for any EC key when kos is loaded first. */
static int ecdsa_verify_init(void *ctx, void *provkey, const OSSL_PARAM params[])
{
	return kosprov_sig_set_verify_key(ctx, provkey, KOS_KEY_EC_P256) &&
	       ecdsa_set_ctx_params(ctx, params);
}

static int ecdsa_verify(void *ctx, const unsigned char *sig, size_t siglen,
			const unsigned char *tbs, size_t tbslen)
{
	return kosprov_sig_verify(ctx, sig, siglen, tbs, tbslen);
}

static int ecdsa_digest_verify_init(void *ctx, const char *mdname, void *provkey,
				    const OSSL_PARAM params[])
{
	return kosprov_sig_set_verify_key(ctx, provkey, KOS_KEY_EC_P256) &&
	       ecdsa_set_ctx_params(ctx, params) && kosprov_sig_digest_init(ctx, mdname);
}

static int ecdsa_digest_verify_final(void *ctx, const unsigned char *sig, size_t siglen)
{
	return kosprov_sig_digest_verify_final(ctx, sig, siglen);
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
	{ OSSL_FUNC_SIGNATURE_FREECTX, (void (*)(void))ecdsa_freectx },
	{ OSSL_FUNC_SIGNATURE_DUPCTX, (void (*)(void))ecdsa_dupctx },
	{ OSSL_FUNC_SIGNATURE_SIGN_INIT, (void (*)(void))ecdsa_sign_init },
	{ OSSL_FUNC_SIGNATURE_SIGN, (void (*)(void))ecdsa_sign },
	{ OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT, (void (*)(void))ecdsa_digest_sign_init },
	{ OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE, (void (*)(void))ecdsa_digest_sign_update },
	{ OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL, (void (*)(void))ecdsa_digest_sign_final },
	{ OSSL_FUNC_SIGNATURE_VERIFY_INIT, (void (*)(void))ecdsa_verify_init },
	{ OSSL_FUNC_SIGNATURE_VERIFY, (void (*)(void))ecdsa_verify },
	{ OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_INIT, (void (*)(void))ecdsa_digest_verify_init },
	{ OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_UPDATE, (void (*)(void))ecdsa_digest_sign_update },
	{ OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_FINAL, (void (*)(void))ecdsa_digest_verify_final },
	{ OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS, (void (*)(void))ecdsa_get_ctx_params },
	{ OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS, (void (*)(void))ecdsa_gettable_ctx_params },
	{ OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS, (void (*)(void))ecdsa_set_ctx_params },
	{ OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS, (void (*)(void))ecdsa_settable_ctx_params },
	{ 0, NULL }
};
