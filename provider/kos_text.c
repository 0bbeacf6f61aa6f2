/* `openssl pkey -text` of a kos key: which key of kosd it is, and its
 * public half as OpenSSL prints it; the private half is not here to print. */
#include "config.h"

#include <openssl/bio.h>
#include <openssl/core_names.h>

#include "provider/prov.h"

static OSSL_FUNC_encoder_newctx_fn text_newctx;
static OSSL_FUNC_encoder_freectx_fn text_freectx;
static OSSL_FUNC_encoder_does_selection_fn text_does_selection;
static OSSL_FUNC_encoder_encode_fn text_encode;

static void *text_newctx(void *provctx)
{
	return provctx;
}

static void text_freectx(void *ctx)
{
	(void)ctx;
}

static int text_does_selection(void *ctx, int selection)
{
	(void)ctx;
	return (selection & (OSSL_KEYMGMT_SELECT_KEYPAIR | OSSL_KEYMGMT_SELECT_ALL_PARAMETERS)) !=
	       0;
}

static int text_encode(void *ctx, OSSL_CORE_BIO *cout, const void *obj_raw,
		       const OSSL_PARAM obj_abstract[], int selection,
		       OSSL_PASSPHRASE_CALLBACK *cb, void *cbarg)
{
	kosprov_ctx *p = ctx;
	const kosprov_key *k = obj_raw;
	BIO *out;
	int ok;

	(void)obj_abstract;
	(void)cb;
	(void)cbarg;
	if (k == NULL || k->pub == NULL)
		return 0;
	out = BIO_new_from_core_bio(p->libctx, cout);
	if (out == NULL)
		return 0;
	if (k->priv && (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0)
		ok = BIO_printf(out, "kos key %s, version %u: the private key is held by kosd\n",
				k->name, (unsigned)k->version) > 0;
	else if (k->name[0] != '\0')
		ok = BIO_printf(out, "kos key %s, version %u (public)\n", k->name,
				(unsigned)k->version) > 0;
	else
		ok = 1;
	ok = ok && EVP_PKEY_print_public(out, k->pub, 0, NULL) > 0;
	BIO_free(out);
	return ok;
}

const OSSL_DISPATCH kosprov_text_encoder_functions[] = {
	{ OSSL_FUNC_ENCODER_NEWCTX, (void (*)(void))text_newctx },
	{ OSSL_FUNC_ENCODER_FREECTX, (void (*)(void))text_freectx },
	{ OSSL_FUNC_ENCODER_DOES_SELECTION, (void (*)(void))text_does_selection },
	{ OSSL_FUNC_ENCODER_ENCODE, (void (*)(void))text_encode },
	{ 0, NULL }
};
