/* RSA decryption with kos's keys inside kosd's HSM: OAEP (any hash, MGF1
 * hash and label) and PKCS#1 v1.5, for `pkeyutl -decrypt` and CMS.
 * Encryption needs only the public half and runs in the application. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>
#include <openssl/rsa.h>

#include "provider/prov.h"

#define KOSPROV_OAEP_LABEL_MAX 1024

static OSSL_FUNC_asym_cipher_newctx_fn rsa_enc_newctx;
static OSSL_FUNC_asym_cipher_freectx_fn rsa_enc_freectx;
static OSSL_FUNC_asym_cipher_dupctx_fn rsa_enc_dupctx;
static OSSL_FUNC_asym_cipher_encrypt_init_fn rsa_enc_encrypt_init;
static OSSL_FUNC_asym_cipher_encrypt_fn rsa_enc_encrypt;
static OSSL_FUNC_asym_cipher_decrypt_init_fn rsa_enc_decrypt_init;
static OSSL_FUNC_asym_cipher_decrypt_fn rsa_enc_decrypt;
static OSSL_FUNC_asym_cipher_get_ctx_params_fn rsa_enc_get_ctx_params;
static OSSL_FUNC_asym_cipher_gettable_ctx_params_fn rsa_enc_gettable_ctx_params;
static OSSL_FUNC_asym_cipher_set_ctx_params_fn rsa_enc_set_ctx_params;
static OSSL_FUNC_asym_cipher_settable_ctx_params_fn rsa_enc_settable_ctx_params;

typedef struct kosprov_rsa_enc_ctx {
	kosprov_ctx *prov;
	kosprov_key *key;
	int pad;	 /* RSA_PKCS1_PADDING or RSA_PKCS1_OAEP_PADDING */
	EVP_MD *oaep_md; /* NULL: SHA-1, OpenSSL's and RFC 8017's default */
	EVP_MD *mgf1_md; /* NULL: the OAEP digest */
	unsigned char *label;
	size_t label_len;
} kosprov_rsa_enc_ctx;

static void *rsa_enc_newctx(void *provctx)
{
	kosprov_rsa_enc_ctx *e = calloc(1, sizeof(*e));

	if (e == NULL)
		return NULL;
	e->prov = provctx;
	e->pad = RSA_PKCS1_PADDING;
	return e;
}

static void rsa_enc_freectx(void *ctx)
{
	kosprov_rsa_enc_ctx *e = ctx;

	if (e == NULL)
		return;
	kosprov_key_free(e->key);
	EVP_MD_free(e->oaep_md);
	EVP_MD_free(e->mgf1_md);
	free(e->label);
	free(e);
}

static void *rsa_enc_dupctx(void *ctx)
{
	const kosprov_rsa_enc_ctx *e = ctx;
	kosprov_rsa_enc_ctx *d = rsa_enc_newctx(e->prov);

	if (d == NULL)
		return NULL;
	d->key = kosprov_key_ref(e->key);
	d->pad = e->pad;
	if ((e->oaep_md != NULL && (!EVP_MD_up_ref(e->oaep_md) || !(d->oaep_md = e->oaep_md))) ||
	    (e->mgf1_md != NULL && (!EVP_MD_up_ref(e->mgf1_md) || !(d->mgf1_md = e->mgf1_md))) ||
	    (e->label != NULL && (d->label = malloc(e->label_len)) == NULL)) {
		rsa_enc_freectx(d);
		return NULL;
	}
	if (e->label != NULL)
		memcpy(d->label, e->label, e->label_len);
	d->label_len = e->label_len;
	return d;
}

static int take_key(kosprov_rsa_enc_ctx *e, kosprov_key *k, bool need_private)
{
	if (k == NULL || (k->type != KOS_KEY_RSA_2048 && k->type != KOS_KEY_RSA_3072) ||
	    k->pub == NULL)
		return kosprov_raise(e->prov, KOSPROV_R_INVALID_ARGUMENT, "not a kos RSA key");
	if (need_private && !k->priv && !k->local)
		return kosprov_raise(e->prov, KOSPROV_R_NO_PRIVATE_KEY,
				     "%s is a public key: kos decrypts with a private key's URI",
				     k->name[0] != '\0' ? k->name : "the key");
	kosprov_key_free(e->key);
	e->key = kosprov_key_ref(k);
	return 1;
}

static int rsa_enc_encrypt_init(void *ctx, void *provkey, const OSSL_PARAM params[])
{
	return take_key(ctx, provkey, false) && rsa_enc_set_ctx_params(ctx, params);
}

static int rsa_enc_decrypt_init(void *ctx, void *provkey, const OSSL_PARAM params[])
{
	return take_key(ctx, provkey, true) && rsa_enc_set_ctx_params(ctx, params);
}

/* Encryption with the public half, and decryption with a local key, by
 * the application's other providers. */
static int delegate(kosprov_rsa_enc_ctx *e, bool enc, unsigned char *out, size_t *outlen,
		    size_t outsize, const unsigned char *in, size_t inlen)
{
	EVP_PKEY_CTX *pctx;
	OSSL_PARAM params[5];
	size_t n = 0, len = outsize;
	int ok = 0;

	params[n++] = OSSL_PARAM_construct_int(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, &e->pad);
	if (e->oaep_md != NULL)
		params[n++] = OSSL_PARAM_construct_utf8_string(
			OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST, (char *)EVP_MD_get0_name(e->oaep_md), 0);
	if (e->mgf1_md != NULL)
		params[n++] = OSSL_PARAM_construct_utf8_string(
			OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST, (char *)EVP_MD_get0_name(e->mgf1_md), 0);
	if (e->label != NULL)
		params[n++] = OSSL_PARAM_construct_octet_string(OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL,
								e->label, e->label_len);
	params[n] = OSSL_PARAM_construct_end();
	pctx = EVP_PKEY_CTX_new_from_pkey(e->prov->libctx, e->key->pub, KOSPROV_PROPQ);
	if (pctx != NULL &&
	    (enc ? EVP_PKEY_encrypt_init_ex(pctx, params) > 0 &&
			   EVP_PKEY_encrypt(pctx, out, out != NULL ? &len : outlen, in, inlen) > 0
		 : EVP_PKEY_decrypt_init_ex(pctx, params) > 0 &&
			   EVP_PKEY_decrypt(pctx, out, out != NULL ? &len : outlen, in, inlen) > 0)) {
		if (out != NULL)
			*outlen = len;
		ok = 1;
	}
	EVP_PKEY_CTX_free(pctx);
	return ok ? 1
		  : kosprov_raise(e->prov, enc ? KOSPROV_R_INVALID_ARGUMENT : KOSPROV_R_DECRYPT_FAILED,
				  enc ? "RSA encryption" : "decryption failed");
}

static int rsa_enc_encrypt(void *ctx, unsigned char *out, size_t *outlen, size_t outsize,
			   const unsigned char *in, size_t inlen)
{
	kosprov_rsa_enc_ctx *e = ctx;

	if (e->key == NULL)
		return kosprov_raise(e->prov, KOSPROV_R_INVALID_ARGUMENT, "not initialised");
	return delegate(e, true, out, outlen, outsize, in, inlen);
}

static int rsa_enc_decrypt(void *ctx, unsigned char *out, size_t *outlen, size_t outsize,
			   const unsigned char *in, size_t inlen)
{
	kosprov_rsa_enc_ctx *e = ctx;
	kos_client_rsa_opts o = KOS_CLIENT_RSA_OPTS_INIT;
	size_t max;
	kos_client *c = NULL;
	uint8_t *pt = NULL;
	size_t pt_len = 0;
	kos_rv rv;
	int ok = 0;

	if (e->key == NULL)
		return kosprov_raise(e->prov, KOSPROV_R_INVALID_ARGUMENT, "not initialised");
	if (e->key->local)
		return delegate(e, false, out, outlen, outsize, in, inlen);
	max = (size_t)EVP_PKEY_get_size(e->key->pub);
	if (out == NULL) {
		*outlen = max;
		return 1;
	}
	o.version = e->key->version;
	if (e->pad == RSA_PKCS1_OAEP_PADDING) {
		o.padding = KOS_RSA_PAD_OAEP;
		if (e->oaep_md != NULL && !kosprov_md_hash(e->prov, e->oaep_md, &o.hash))
			return 0;
		o.mgf1 = o.hash;
		if (e->mgf1_md != NULL && !kosprov_md_hash(e->prov, e->mgf1_md, &o.mgf1))
			return 0;
		o.label = e->label;
		o.label_len = e->label_len;
	}
	c = kosprov_handle_get(e->prov);
	if (c == NULL)
		return 0;
	rv = kos_client_rsa_decrypt(c, e->key->name, &o, in, inlen, &pt, &pt_len);
	if (rv != KOS_OK) {
		kosprov_raise_client(e->prov, c, rv, e->key->name);
		goto out;
	}
	if (pt_len > outsize) {
		kosprov_raise(e->prov, KOSPROV_R_INVALID_ARGUMENT,
			      "a buffer of %zu bytes for %zu of plaintext", outsize, pt_len);
		goto out;
	}
	memcpy(out, pt, pt_len);
	*outlen = pt_len;
	ok = 1;
out:
	kos_secret_free(pt, pt_len);
	kosprov_handle_put(e->prov, c);
	return ok;
}

static int rsa_enc_get_ctx_params(void *ctx, OSSL_PARAM params[])
{
	kosprov_rsa_enc_ctx *e = ctx;
	OSSL_PARAM *p;

	p = OSSL_PARAM_locate(params, OSSL_ASYM_CIPHER_PARAM_PAD_MODE);
	if (p != NULL &&
	    !(p->data_type == OSSL_PARAM_INTEGER
		      ? OSSL_PARAM_set_int(p, e->pad)
		      : OSSL_PARAM_set_utf8_string(p, e->pad == RSA_PKCS1_OAEP_PADDING
							      ? OSSL_PKEY_RSA_PAD_MODE_OAEP
							      : OSSL_PKEY_RSA_PAD_MODE_PKCSV15)))
		return 0;
	p = OSSL_PARAM_locate(params, OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST);
	if (p != NULL &&
	    !OSSL_PARAM_set_utf8_string(p, e->oaep_md != NULL ? EVP_MD_get0_name(e->oaep_md)
							     : "SHA1"))
		return 0;
	p = OSSL_PARAM_locate(params, OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST);
	if (p != NULL) {
		const EVP_MD *m = e->mgf1_md != NULL ? e->mgf1_md : e->oaep_md;

		if (!OSSL_PARAM_set_utf8_string(p, m != NULL ? EVP_MD_get0_name(m) : "SHA1"))
			return 0;
	}
	p = OSSL_PARAM_locate(params, OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL);
	if (p != NULL && !OSSL_PARAM_set_octet_ptr(p, e->label, e->label_len))
		return 0;
	return 1;
}

static const OSSL_PARAM rsa_enc_gettable[] = {
	OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST, NULL, 0),
	OSSL_PARAM_octet_ptr(OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL, NULL, 0),
	OSSL_PARAM_END
};

static const OSSL_PARAM *rsa_enc_gettable_ctx_params(void *ctx, void *provctx)
{
	(void)ctx;
	(void)provctx;
	return rsa_enc_gettable;
}

static int rsa_enc_set_ctx_params(void *ctx, const OSSL_PARAM params[])
{
	kosprov_rsa_enc_ctx *e = ctx;
	const OSSL_PARAM *p;

	if (params == NULL)
		return 1;
	p = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_PAD_MODE);
	if (p != NULL) {
		int pad = 0;

		/* no raw RSA and no TLS 1.2 key-exchange padding: kosd is no
		 * oracle for them */
		if (!kosprov_pad_param(p, &pad) ||
		    (pad != RSA_PKCS1_PADDING && pad != RSA_PKCS1_OAEP_PADDING))
			return kosprov_raise(e->prov, KOSPROV_R_UNSUPPORTED,
					     "kos decrypts RSA with OAEP or PKCS#1 v1.5 "
					     "padding only");
		e->pad = pad;
	}
	p = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST);
	if (p != NULL && !kosprov_md_param(e->prov, p, &e->oaep_md))
		return 0;
	p = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST);
	if (p != NULL && !kosprov_md_param(e->prov, p, &e->mgf1_md))
		return 0;
	p = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL);
	if (p != NULL) {
		const void *label = NULL;
		size_t len = 0;
		unsigned char *copy = NULL;

		if (!OSSL_PARAM_get_octet_string_ptr(p, &label, &len) ||
		    len > KOSPROV_OAEP_LABEL_MAX)
			return kosprov_raise(e->prov, KOSPROV_R_INVALID_ARGUMENT,
					     "an OAEP label over %d bytes", KOSPROV_OAEP_LABEL_MAX);
		if (len > 0 && (copy = malloc(len)) == NULL)
			return 0;
		if (len > 0)
			memcpy(copy, label, len);
		free(e->label);
		e->label = copy;
		e->label_len = len;
	}
	p = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_TLS_CLIENT_VERSION);
	if (p != NULL)
		return kosprov_raise(e->prov, KOSPROV_R_UNSUPPORTED,
				     "kos does not decrypt TLS 1.2 RSA key exchange");
	return 1;
}

static const OSSL_PARAM rsa_enc_settable[] = {
	OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST, NULL, 0),
	OSSL_PARAM_octet_string(OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL, NULL, 0),
	OSSL_PARAM_END
};

static const OSSL_PARAM *rsa_enc_settable_ctx_params(void *ctx, void *provctx)
{
	(void)ctx;
	(void)provctx;
	return rsa_enc_settable;
}

const OSSL_DISPATCH kosprov_rsa_asym_cipher_functions[] = {
	{ OSSL_FUNC_ASYM_CIPHER_NEWCTX, (void (*)(void))rsa_enc_newctx },
	{ OSSL_FUNC_ASYM_CIPHER_FREECTX, (void (*)(void))rsa_enc_freectx },
	{ OSSL_FUNC_ASYM_CIPHER_DUPCTX, (void (*)(void))rsa_enc_dupctx },
	{ OSSL_FUNC_ASYM_CIPHER_ENCRYPT_INIT, (void (*)(void))rsa_enc_encrypt_init },
	{ OSSL_FUNC_ASYM_CIPHER_ENCRYPT, (void (*)(void))rsa_enc_encrypt },
	{ OSSL_FUNC_ASYM_CIPHER_DECRYPT_INIT, (void (*)(void))rsa_enc_decrypt_init },
	{ OSSL_FUNC_ASYM_CIPHER_DECRYPT, (void (*)(void))rsa_enc_decrypt },
	{ OSSL_FUNC_ASYM_CIPHER_GET_CTX_PARAMS, (void (*)(void))rsa_enc_get_ctx_params },
	{ OSSL_FUNC_ASYM_CIPHER_GETTABLE_CTX_PARAMS, (void (*)(void))rsa_enc_gettable_ctx_params },
	{ OSSL_FUNC_ASYM_CIPHER_SET_CTX_PARAMS, (void (*)(void))rsa_enc_set_ctx_params },
	{ OSSL_FUNC_ASYM_CIPHER_SETTABLE_CTX_PARAMS, (void (*)(void))rsa_enc_settable_ctx_params },
	{ 0, NULL }
};
