/* A decoder for key files that carry a kos key URI (`kosctl key pem`):
 *   -----BEGIN KOS KEY URI-----
 *   base64 of "kos:NAME[;version=N][;type=public]"
 *   -----END KOS KEY URI-----
 * so programs that read a key *file* through OpenSSL (nginx's
 * ssl_certificate_key, curl --key, Python's ssl) use kosd's key once the
 * provider is activated in openssl.cnf. Any other PEM is left to the other
 * decoders untouched. */
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

static OSSL_FUNC_decoder_newctx_fn pem_newctx;
static OSSL_FUNC_decoder_freectx_fn pem_freectx;
static OSSL_FUNC_decoder_decode_fn pem_decode;

static void *pem_newctx(void *provctx)
{
	return provctx;
}

static void pem_freectx(void *ctx)
{
	(void)ctx;
}

static int pem_decode(void *ctx, OSSL_CORE_BIO *cin, int selection, OSSL_CALLBACK *data_cb,
		      void *data_cbarg, OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
	kosprov_ctx *p = ctx;
	BIO *in = BIO_new_from_core_bio(p->libctx, cin);
	char *name = NULL, *header = NULL, uri[KOSPROV_PEM_URI_MAX + 1];
	unsigned char *data = NULL;
	long len = 0;
	kosprov_key *k = NULL;
	int type = OSSL_OBJECT_PKEY, ok = 1;
	OSSL_PARAM params[4];

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
	if (len <= 0 || len > KOSPROV_PEM_URI_MAX || memchr(data, '\0', (size_t)len) != NULL) {
		ok = kosprov_raise(p, KOSPROV_R_BAD_URI,
				   "a " KOSPROV_PEM_LABEL " file holds no kos URI of at most %d "
				   "characters",
				   KOSPROV_PEM_URI_MAX);
		goto out;
	}
	memcpy(uri, data, (size_t)len);
	uri[len] = '\0';
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
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(data);
	BIO_free(in);
	return ok;
}

const OSSL_DISPATCH kosprov_pem_decoder_functions[] = {
	{ OSSL_FUNC_DECODER_NEWCTX, (void (*)(void))pem_newctx },
	{ OSSL_FUNC_DECODER_FREECTX, (void (*)(void))pem_freectx },
	{ OSSL_FUNC_DECODER_DECODE, (void (*)(void))pem_decode },
	{ 0, NULL }
};
