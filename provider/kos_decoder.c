/* Decoders for key files that carry a kos key URI (`kosctl key pem`):
 *   -----BEGIN KOS KEY URI-----
 *   base64 of "kos:NAME[;version=N][;type=public]"
 *   -----END KOS KEY URI-----
 * so programs that read a key *file* through OpenSSL (nginx's
 * ssl_certificate_key, curl --key, Python's ssl, the openssl CLI) use
 * kosd's key once the provider is activated. Two steps, as OpenSSL's own
 * decoders chain: PEM to "DER" of the structure "kos-uri" (the URI's
 * bytes), then that to a key object by reference; the file store and
 * PEM_read_bio_PrivateKey both find the chain. Any other input is left to
 * the other decoders untouched. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/params.h>
#include <openssl/pem.h>

#include "provider/prov.h"

#define KOSPROV_PEM_LABEL "KOS KEY URI"
#define KOSPROV_PEM_URI_MAX 256

static OSSL_FUNC_decoder_newctx_fn dec_newctx;
static OSSL_FUNC_decoder_freectx_fn dec_freectx;
static OSSL_FUNC_decoder_decode_fn pem_decode;
static OSSL_FUNC_decoder_decode_fn uri_decode;

static void *dec_newctx(void *provctx)
{
	return provctx;
}

static void dec_freectx(void *ctx)
{
	(void)ctx;
}

/* PEM of the label KOS KEY URI to its body, the URI. */
static int pem_decode(void *ctx, OSSL_CORE_BIO *cin, int selection, OSSL_CALLBACK *data_cb,
		      void *data_cbarg, OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
	kosprov_ctx *p = ctx;
	BIO *in = BIO_new_from_core_bio(p->libctx, cin);
	char *name = NULL, *header = NULL;
	unsigned char *data = NULL;
	long len = 0;
	int ok = 1;
	OSSL_PARAM params[3];

	(void)selection;
	(void)pw_cb;
	(void)pw_cbarg;
	if (in == NULL)
		return 0;
	/* not ours (another label, not PEM): 1 with no object, so the
	 * framework tries the next decoder */
	if (PEM_read_bio(in, &name, &header, &data, &len) != 1 ||
	    strcmp(name, KOSPROV_PEM_LABEL) != 0)
		goto out;
	if (len <= 0 || len > KOSPROV_PEM_URI_MAX) {
		ok = kosprov_raise(p, KOSPROV_R_BAD_URI,
				   "a " KOSPROV_PEM_LABEL " file holds no kos URI of at most %d "
				   "characters",
				   KOSPROV_PEM_URI_MAX);
		goto out;
	}
	params[0] = OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_DATA, data, (size_t)len);
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_STRUCTURE,
						     (char *)"kos-uri", 0);
	params[2] = OSSL_PARAM_construct_end();
	ok = data_cb(params, data_cbarg);
out:
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(data);
	BIO_free(in);
	return ok;
}

/* The URI to a key object (by reference, for kos's key management). Input
 * that is no kos URI is not ours: the structure may be unset when other
 * DER reaches this decoder. */
static int uri_decode(void *ctx, OSSL_CORE_BIO *cin, int selection, OSSL_CALLBACK *data_cb,
		      void *data_cbarg, OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
	kosprov_ctx *p = ctx;
	BIO *in = BIO_new_from_core_bio(p->libctx, cin);
	char uri[KOSPROV_PEM_URI_MAX + 2];
	int n, type = OSSL_OBJECT_PKEY, ok = 1;
	kosprov_key *k = NULL;
	OSSL_PARAM params[4];

	(void)selection;
	(void)pw_cb;
	(void)pw_cbarg;
	if (in == NULL)
		return 0;
	n = BIO_read(in, uri, (int)sizeof(uri) - 1);
	if (n < 4 || n > KOSPROV_PEM_URI_MAX || memcmp(uri, "kos:", 4) != 0)
		goto out;
	uri[n] = '\0';
	if (strlen(uri) != (size_t)n) {
		ok = kosprov_raise(p, KOSPROV_R_BAD_URI, "a kos URI with a NUL byte");
		goto out;
	}
	k = kosprov_key_load_uri(p, uri);
	if (k == NULL) {
		ok = 0;
		goto out;
	}
	params[0] = OSSL_PARAM_construct_int(OSSL_OBJECT_PARAM_TYPE, &type);
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_TYPE,
						     (char *)kosprov_key_type_name(k->type), 0);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_REFERENCE, &k, sizeof(k));
	params[3] = OSSL_PARAM_construct_end();
	ok = data_cb(params, data_cbarg);
out:
	kosprov_key_free(k);
	BIO_free(in);
	return ok;
}

const OSSL_DISPATCH kosprov_pem_decoder_functions[] = {
	{ OSSL_FUNC_DECODER_NEWCTX, (void (*)(void))dec_newctx },
	{ OSSL_FUNC_DECODER_FREECTX, (void (*)(void))dec_freectx },
	{ OSSL_FUNC_DECODER_DECODE, (void (*)(void))pem_decode },
	{ 0, NULL }
};

const OSSL_DISPATCH kosprov_uri_decoder_functions[] = {
	{ OSSL_FUNC_DECODER_NEWCTX, (void (*)(void))dec_newctx },
	{ OSSL_FUNC_DECODER_FREECTX, (void (*)(void))dec_freectx },
	{ OSSL_FUNC_DECODER_DECODE, (void (*)(void))uri_decode },
	{ 0, NULL }
};
