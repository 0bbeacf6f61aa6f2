/* RSA signatures with kos's keys: PKCS#1 v1.5 (kosd builds the
 * DigestInfo) and PSS with MGF1 of the same hash and any salt length TLS
 * and X.509 use, of a digest the application computed or gave. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/objects.h>
#include <openssl/params.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "provider/prov.h"

static OSSL_FUNC_signature_newctx_fn rsa_newctx;
static OSSL_FUNC_signature_sign_fn rsa_sign;
static OSSL_FUNC_signature_get_ctx_params_fn rsa_get_ctx_params;
static OSSL_FUNC_signature_gettable_ctx_params_fn rsa_gettable_ctx_params;
static OSSL_FUNC_signature_set_ctx_params_fn rsa_set_ctx_params;
static OSSL_FUNC_signature_settable_ctx_params_fn rsa_settable_ctx_params;

static void *rsa_newctx(void *provctx, const char *propq)
{
	(void)propq;
	return kosprov_sig_newctx(provctx, KOS_SIG_RSA_PKCS1, KOS_KEY_RSA_2048, rsa_set_ctx_params);
}

/* EVP_PKEY_sign of PKCS#1 v1.5 without a digest set signs a DigestInfo
 * (what CKM_RSA_PKCS callers and `pkeyutl -sign` of one pass): kosd
 * builds the DigestInfo itself, so the digest and its hash are taken
 * out of it. */
static int sign_digest_info(kosprov_sig_ctx *s, unsigned char *sig, size_t *siglen,
			    size_t sigsize, const unsigned char *tbs, size_t tbslen)
{
	const unsigned char *q = tbs;
	X509_SIG *di = d2i_X509_SIG(NULL, &q, (long)tbslen);
	const X509_ALGOR *alg;
	const ASN1_OCTET_STRING *dgst;
	const ASN1_OBJECT *obj;
	EVP_MD *md = NULL, *saved = s->md;
	int ok = 0;

	if (di == NULL || q != tbs + tbslen) {
		X509_SIG_free(di);
		return kosprov_raise(s->prov, KOSPROV_R_INVALID_ARGUMENT,
				     "RSA PKCS#1 v1.5 of %zu bytes without a digest: give a "
				     "DigestInfo or set the digest",
				     tbslen);
	}
	X509_SIG_get0(di, &alg, &dgst);
	X509_ALGOR_get0(&obj, NULL, NULL, alg);
	md = EVP_MD_fetch(s->prov->libctx, OBJ_nid2sn(OBJ_obj2nid(obj)), KOSPROV_PROPQ);
	if (md == NULL) {
		kosprov_raise(s->prov, KOSPROV_R_UNSUPPORTED, "a DigestInfo of an unknown hash");
		goto out;
	}
	s->md = md;
	ok = kosprov_sig_sign(s, sig, siglen, sigsize, ASN1_STRING_get0_data(dgst),
			      (size_t)ASN1_STRING_length(dgst), 1);
	s->md = saved;
out:
	EVP_MD_free(md);
	X509_SIG_free(di);
	return ok;
}

static int rsa_sign(void *ctx, unsigned char *sig, size_t *siglen, size_t sigsize,
		    const unsigned char *tbs, size_t tbslen)
{
	kosprov_sig_ctx *s = ctx;

	if (sig != NULL && s->md == NULL && s->alg == KOS_SIG_RSA_PKCS1)
		return sign_digest_info(s, sig, siglen, sigsize, tbs, tbslen);
	return kosprov_sig_sign(s, sig, siglen, sigsize, tbs, tbslen, 1);
}

/* OpenSSL's names of the PSS salt lengths it reads as strings. */
static const struct {
	const char *name;
	int value;
} salt_names[] = {
	{ OSSL_PKEY_RSA_PSS_SALT_LEN_DIGEST, RSA_PSS_SALTLEN_DIGEST },
	{ OSSL_PKEY_RSA_PSS_SALT_LEN_MAX, RSA_PSS_SALTLEN_MAX },
	{ OSSL_PKEY_RSA_PSS_SALT_LEN_AUTO, RSA_PSS_SALTLEN_AUTO },
};

static int rsa_get_ctx_params(void *ctx, OSSL_PARAM params[])
{
	kosprov_sig_ctx *s = ctx;
	int pad = s->alg == KOS_SIG_RSA_PSS ? RSA_PKCS1_PSS_PADDING : RSA_PKCS1_PADDING;
	OSSL_PARAM *p;

	p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_ALGORITHM_ID);
	if (p != NULL && !kosprov_sig_get_algorithm_id(s, p))
		return 0;
	p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_DIGEST);
	if (p != NULL && s->md != NULL && !OSSL_PARAM_set_utf8_string(p, EVP_MD_get0_name(s->md)))
		return 0;
	p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_PAD_MODE);
	if (p != NULL &&
	    !(p->data_type == OSSL_PARAM_INTEGER
		      ? OSSL_PARAM_set_int(p, pad)
		      : OSSL_PARAM_set_utf8_string(p, pad == RSA_PKCS1_PSS_PADDING
							      ? OSSL_PKEY_RSA_PAD_MODE_PSS
							      : OSSL_PKEY_RSA_PAD_MODE_PKCSV15)))
		return 0;
	p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_PSS_SALTLEN);
	if (p != NULL) {
		if (p->data_type == OSSL_PARAM_INTEGER) {
			if (!OSSL_PARAM_set_int(p, s->pss_saltlen_param))
				return 0;
		} else {
			char buf[16];

			snprintf(buf, sizeof(buf), "%d", s->pss_saltlen_param);
			for (size_t i = 0; i < sizeof(salt_names) / sizeof(salt_names[0]); i++)
				if (salt_names[i].value == s->pss_saltlen_param)
					snprintf(buf, sizeof(buf), "%s", salt_names[i].name);
			if (!OSSL_PARAM_set_utf8_string(p, buf))
				return 0;
		}
	}
	p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_MGF1_DIGEST);
	if (p != NULL) {
		const EVP_MD *m = s->mgf1 != NULL ? s->mgf1 : s->md;

		if (m != NULL && !OSSL_PARAM_set_utf8_string(p, EVP_MD_get0_name(m)))
			return 0;
	}
	return 1;
}

static const OSSL_PARAM rsa_gettable[] = {
	OSSL_PARAM_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, NULL, 0),
	OSSL_PARAM_END
};

static const OSSL_PARAM *rsa_gettable_ctx_params(void *ctx, void *provctx)
{
	(void)ctx;
	(void)provctx;
	return rsa_gettable;
}

static int set_pad(kosprov_sig_ctx *s, const OSSL_PARAM *p)
{
	int pad = 0;

	if (!kosprov_pad_param(p, &pad) ||
	    (pad != RSA_PKCS1_PADDING && pad != RSA_PKCS1_PSS_PADDING))
		return kosprov_raise(s->prov, KOSPROV_R_UNSUPPORTED,
				     "kos signs RSA with PKCS#1 v1.5 or PSS padding only");
	s->alg = pad == RSA_PKCS1_PSS_PADDING ? KOS_SIG_RSA_PSS : KOS_SIG_RSA_PKCS1;
	return 1;
}

static int set_salt(kosprov_sig_ctx *s, const OSSL_PARAM *p)
{
	const char *name = NULL;
	int v;

	if (p->data_type == OSSL_PARAM_INTEGER) {
		if (!OSSL_PARAM_get_int(p, &v))
			return 0;
	} else {
		char *end;
		long l;

		if (!OSSL_PARAM_get_utf8_string_ptr(p, &name))
			return 0;
		for (size_t i = 0; i < sizeof(salt_names) / sizeof(salt_names[0]); i++)
			if (strcmp(name, salt_names[i].name) == 0) {
				s->pss_saltlen_param = salt_names[i].value;
				return 1;
			}
		l = strtol(name, &end, 10);
		if (end == name || *end != '\0' || l < 0 || l > 4096)
			return kosprov_raise(s->prov, KOSPROV_R_INVALID_ARGUMENT,
					     "a PSS salt length of %.20s", name);
		v = (int)l;
	}
	if (v < RSA_PSS_SALTLEN_MAX)
		return kosprov_raise(s->prov, KOSPROV_R_INVALID_ARGUMENT,
				     "a PSS salt length of %d", v);
	s->pss_saltlen_param = v;
	return 1;
}

static int rsa_set_ctx_params(void *ctx, const OSSL_PARAM params[])
{
	kosprov_sig_ctx *s = ctx;
	const OSSL_PARAM *p;
	const char *name = NULL;

	if (params == NULL)
		return 1;
	p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_DIGEST);
	if (p != NULL &&
	    (!OSSL_PARAM_get_utf8_string_ptr(p, &name) || !kosprov_sig_set_md(s, name)))
		return 0;
	p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PAD_MODE);
	if (p != NULL && !set_pad(s, p))
		return 0;
	p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PSS_SALTLEN);
	if (p != NULL && !set_salt(s, p))
		return 0;
	p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_MGF1_DIGEST);
	if (p != NULL && !kosprov_md_param(s->prov, p, &s->mgf1))
		return 0;
	return 1;
}

static const OSSL_PARAM rsa_settable[] = {
	OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, NULL, 0),
	OSSL_PARAM_END
};

static const OSSL_PARAM *rsa_settable_ctx_params(void *ctx, void *provctx)
{
	(void)ctx;
	(void)provctx;
	return rsa_settable;
}

const OSSL_DISPATCH kosprov_rsa_signature_functions[] = {
	{ OSSL_FUNC_SIGNATURE_NEWCTX, (void (*)(void))rsa_newctx },
	{ OSSL_FUNC_SIGNATURE_SIGN, (void (*)(void))rsa_sign },
	KOSPROV_SIG_DIGEST_FUNCTIONS,
	{ OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS, (void (*)(void))rsa_get_ctx_params },
	{ OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS, (void (*)(void))rsa_gettable_ctx_params },
	{ OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS, (void (*)(void))rsa_set_ctx_params },
	{ OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS, (void (*)(void))rsa_settable_ctx_params },
	{ 0, NULL }
};
