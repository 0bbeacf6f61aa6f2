/* Key management for kos's EC P-256, Ed25519 and RSA keys. A key object
 * holds the public half; every parameter question (bits, security bits,
 * maximum signature size, default digest, group name, the public key
 * itself) is answered by that public key, so kos never reimplements key
 * arithmetic. kosd's private halves are never exported: they live in
 * kosd, and kosctl makes them. Keys generated or imported here while kos
 * was fetched first are local keys (prov.h), generated, imported and
 * exported whole by the other providers. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/params.h>

#include "provider/prov.h"

static OSSL_FUNC_keymgmt_new_fn ec_new, ed25519_new, rsa_new;
static OSSL_FUNC_keymgmt_free_fn kmgmt_free;
static OSSL_FUNC_keymgmt_load_fn kmgmt_load;
static OSSL_FUNC_keymgmt_has_fn kmgmt_has;
static OSSL_FUNC_keymgmt_match_fn kmgmt_match;
static OSSL_FUNC_keymgmt_import_fn ec_import, ed25519_import, rsa_import;
static OSSL_FUNC_keymgmt_import_types_fn ec_types, ed25519_types, rsa_types;
static OSSL_FUNC_keymgmt_export_fn kmgmt_export;
static OSSL_FUNC_keymgmt_get_params_fn kmgmt_get_params;
static OSSL_FUNC_keymgmt_gettable_params_fn kmgmt_gettable_params;
static OSSL_FUNC_keymgmt_query_operation_name_fn ec_query, ed25519_query, rsa_query;
static OSSL_FUNC_keymgmt_dup_fn kmgmt_dup;
static OSSL_FUNC_keymgmt_gen_init_fn ec_gen_init, ed25519_gen_init, rsa_gen_init;
static OSSL_FUNC_keymgmt_gen_set_params_fn kmgmt_gen_set_params;
static OSSL_FUNC_keymgmt_gen_settable_params_fn kmgmt_gen_settable_params;
static OSSL_FUNC_keymgmt_gen_fn kmgmt_gen;
static OSSL_FUNC_keymgmt_gen_cleanup_fn kmgmt_gen_cleanup;

static void *ec_new(void *provctx)
{
	return kosprov_key_new(provctx, KOS_KEY_EC_P256);
}

static void *ed25519_new(void *provctx)
{
	return kosprov_key_new(provctx, KOS_KEY_ED25519);
}

static void *rsa_new(void *provctx)
{
	return kosprov_key_new(provctx, KOS_KEY_RSA_2048);
}

static void kmgmt_free(void *keydata)
{
	kosprov_key_free(keydata);
}

/* The reference of kos's store and decoder: a kosprov_key pointer; the
 * loader keeps its own reference and frees it. */
static void *kmgmt_load(const void *reference, size_t reference_sz)
{
	kosprov_key *k;

	if (reference == NULL || reference_sz != sizeof(k))
		return NULL;
	memcpy(&k, reference, sizeof(k));
	return kosprov_key_ref(k);
}

static int kmgmt_has(const void *keydata, int selection)
{
	const kosprov_key *k = keydata;

	if (k == NULL)
		return 0;
	if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0 && !k->priv && !k->local)
		return 0;
	if ((selection & (OSSL_KEYMGMT_SELECT_PUBLIC_KEY | OSSL_KEYMGMT_SELECT_ALL_PARAMETERS)) !=
		    0 &&
	    k->pub == NULL)
		return 0;
	return 1;
}

/* Keys match when their public halves do: a kos private key matches its
 * certificate's key, which is how TLS libraries pair them. */
static int kmgmt_match(const void *keydata1, const void *keydata2, int selection)
{
	const kosprov_key *a = keydata1, *b = keydata2;

	(void)selection;
	if (a == NULL || b == NULL || a->pub == NULL || b->pub == NULL)
		return 0;
	if (a->priv && b->priv &&
	    (strcmp(a->name, b->name) != 0 || a->version != b->version))
		return 0;
	return EVP_PKEY_eq(a->pub, b->pub) == 1;
}

/* Imports a key of the other providers (a certificate's public key to
 * match or verify with, a key file's private key): a local key. */
static int kmgmt_import(kosprov_key *k, const char *keytype, int selection,
			const OSSL_PARAM params[], const char *const *privnames)
{
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pub = NULL;
	bool priv = false;
	int ok = 0;

	if (k == NULL || k->pub != NULL)
		return 0;
	for (size_t i = 0; privnames[i] != NULL; i++)
		if (OSSL_PARAM_locate_const(params, privnames[i]) != NULL)
			priv = (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0;
	ctx = EVP_PKEY_CTX_new_from_name(k->prov->libctx, keytype, KOSPROV_PROPQ);
	if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pub,
			      priv ? EVP_PKEY_KEYPAIR
			      : (selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) != 0
				      ? EVP_PKEY_PUBLIC_KEY
				      : EVP_PKEY_KEY_PARAMETERS,
			      (OSSL_PARAM *)params) <= 0)
		goto out;
	k->pub = pub;
	k->priv = false;
	k->local = priv;
	if (strcmp(keytype, "RSA") == 0 && EVP_PKEY_get_bits(pub) == 3072)
		k->type = KOS_KEY_RSA_3072;
	ok = 1;
out:
	EVP_PKEY_CTX_free(ctx);
	return ok;
}

static const char *const ec_private[] = { OSSL_PKEY_PARAM_PRIV_KEY, NULL };
static const char *const rsa_private[] = { OSSL_PKEY_PARAM_RSA_D, OSSL_PKEY_PARAM_RSA_FACTOR1,
					   NULL };

static int ec_import(void *keydata, int selection, const OSSL_PARAM params[])
{
	return kmgmt_import(keydata, "EC", selection, params, ec_private);
}

static int ed25519_import(void *keydata, int selection, const OSSL_PARAM params[])
{
	return kmgmt_import(keydata, "ED25519", selection, params, ec_private);
}

static int rsa_import(void *keydata, int selection, const OSSL_PARAM params[])
{
	return kmgmt_import(keydata, "RSA", selection, params, rsa_private);
}

static const OSSL_PARAM ec_public_types[] = {
	OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
	OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
	OSSL_PARAM_END
};
static const OSSL_PARAM ed25519_public_types[] = {
	OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
	OSSL_PARAM_END
};
static const OSSL_PARAM rsa_public_types[] = {
	OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, NULL, 0),
	OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, NULL, 0),
	OSSL_PARAM_END
};

static const OSSL_PARAM *ec_types(int selection)
{
	(void)selection;
	return ec_public_types;
}

static const OSSL_PARAM *ed25519_types(int selection)
{
	(void)selection;
	return ed25519_public_types;
}

static const OSSL_PARAM *rsa_types(int selection)
{
	(void)selection;
	return rsa_public_types;
}

/* The public half only. A private key's export is refused: OpenSSL then
 * runs the key's operations here instead of moving a public-only copy to
 * another provider, where signing would fail. */
static int kmgmt_export(void *keydata, int selection, OSSL_CALLBACK *cb, void *cbarg)
{
	kosprov_key *k = keydata;

	if (k == NULL || k->pub == NULL)
		return 0;
	if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0 && k->priv)
		return 0;
	if (!k->local)
		selection &= OSSL_KEYMGMT_SELECT_PUBLIC_KEY | OSSL_KEYMGMT_SELECT_ALL_PARAMETERS;
	return EVP_PKEY_export(k->pub, selection, cb, cbarg);
}

static int kmgmt_get_params(void *keydata, OSSL_PARAM params[])
{
	kosprov_key *k = keydata;

	if (k == NULL || k->pub == NULL)
		return 0;
	return EVP_PKEY_get_params(k->pub, params);
}

static const OSSL_PARAM kmgmt_gettable[] = {
	OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, NULL),
	OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, NULL),
	OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, NULL),
	OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_DEFAULT_DIGEST, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_MANDATORY_DIGEST, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
	OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, NULL, 0),
	OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
	OSSL_PARAM_BN(OSSL_PKEY_PARAM_EC_PUB_X, NULL, 0),
	OSSL_PARAM_BN(OSSL_PKEY_PARAM_EC_PUB_Y, NULL, 0),
	OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, NULL, 0),
	OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, NULL, 0),
	OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, NULL, 0),
	OSSL_PARAM_END
};

static const OSSL_PARAM *kmgmt_gettable_params(void *provctx)
{
	(void)provctx;
	return kmgmt_gettable;
}

static const char *ec_query(int operation_id)
{
	/* a local key's key exchange is the other providers' ECDH */
	return operation_id == OSSL_OP_SIGNATURE ? "ECDSA"
	       : operation_id == OSSL_OP_KEYEXCH ? "ECDH"
						 : NULL;
}

static const char *ed25519_query(int operation_id)
{
	return operation_id == OSSL_OP_SIGNATURE ? "ED25519" : NULL;
}

static const char *rsa_query(int operation_id)
{
	return operation_id == OSSL_OP_SIGNATURE || operation_id == OSSL_OP_ASYM_CIPHER ? "RSA"
											 : NULL;
}

/* Key objects never change after load: a copy is another reference. */
static void *kmgmt_dup(const void *keydata, int selection)
{
	(void)selection;
	return kosprov_key_ref((kosprov_key *)keydata);
}

/* Generation of local keys, by the other providers: kos makes no key of
 * kosd here (kosctl key create does). */
typedef struct kosprov_gen_ctx {
	kosprov_ctx *prov;
	kos_key_type type;
	EVP_PKEY_CTX *pctx;
} kosprov_gen_ctx;

static void *gen_init(kosprov_ctx *p, kos_key_type type, const char *keytype, int selection,
		      const OSSL_PARAM params[])
{
	kosprov_gen_ctx *g = calloc(1, sizeof(*g));

	if (g == NULL)
		return NULL;
	g->prov = p;
	g->type = type;
	g->pctx = EVP_PKEY_CTX_new_from_name(p->libctx, keytype, KOSPROV_PROPQ);
	if (g->pctx == NULL ||
	    ((selection & OSSL_KEYMGMT_SELECT_KEYPAIR) != 0 ? EVP_PKEY_keygen_init(g->pctx)
							     : EVP_PKEY_paramgen_init(g->pctx)) <= 0 ||
	    (params != NULL && EVP_PKEY_CTX_set_params(g->pctx, params) <= 0)) {
		kmgmt_gen_cleanup(g);
		return NULL;
	}
	return g;
}

static void *ec_gen_init(void *provctx, int selection, const OSSL_PARAM params[])
{
	return gen_init(provctx, KOS_KEY_EC_P256, "EC", selection, params);
}

static void *ed25519_gen_init(void *provctx, int selection, const OSSL_PARAM params[])
{
	return gen_init(provctx, KOS_KEY_ED25519, "ED25519", selection, params);
}

static void *rsa_gen_init(void *provctx, int selection, const OSSL_PARAM params[])
{
	return gen_init(provctx, KOS_KEY_RSA_2048, "RSA", selection, params);
}

static int kmgmt_gen_set_params(void *genctx, const OSSL_PARAM params[])
{
	kosprov_gen_ctx *g = genctx;

	return g != NULL && (params == NULL || EVP_PKEY_CTX_set_params(g->pctx, params) > 0);
}

static const OSSL_PARAM *kmgmt_gen_settable_params(void *genctx, void *provctx)
{
	kosprov_gen_ctx *g = genctx;

	(void)provctx;
	return g != NULL ? EVP_PKEY_CTX_settable_params(g->pctx) : NULL;
}

static void *kmgmt_gen(void *genctx, OSSL_CALLBACK *cb, void *cbarg)
{
	kosprov_gen_ctx *g = genctx;
	EVP_PKEY *pkey = NULL;
	kosprov_key *k;

	(void)cb;
	(void)cbarg;
	if (g == NULL || EVP_PKEY_generate(g->pctx, &pkey) <= 0)
		return NULL;
	k = kosprov_key_new(g->prov, g->type);
	if (k == NULL) {
		EVP_PKEY_free(pkey);
		return NULL;
	}
	k->pub = pkey;
	k->local = true;
	if (g->type == KOS_KEY_RSA_2048 && EVP_PKEY_get_bits(pkey) == 3072)
		k->type = KOS_KEY_RSA_3072;
	return k;
}

static void kmgmt_gen_cleanup(void *genctx)
{
	kosprov_gen_ctx *g = genctx;

	if (g == NULL)
		return;
	EVP_PKEY_CTX_free(g->pctx);
	free(g);
}

#define KOSPROV_KMGMT_COMMON                                                              \
	{ OSSL_FUNC_KEYMGMT_FREE, (void (*)(void))kmgmt_free },                           \
	{ OSSL_FUNC_KEYMGMT_LOAD, (void (*)(void))kmgmt_load },                           \
	{ OSSL_FUNC_KEYMGMT_HAS, (void (*)(void))kmgmt_has },                             \
	{ OSSL_FUNC_KEYMGMT_MATCH, (void (*)(void))kmgmt_match },                         \
	{ OSSL_FUNC_KEYMGMT_EXPORT, (void (*)(void))kmgmt_export },                       \
	{ OSSL_FUNC_KEYMGMT_GET_PARAMS, (void (*)(void))kmgmt_get_params },               \
	{ OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, (void (*)(void))kmgmt_gettable_params },     \
	{ OSSL_FUNC_KEYMGMT_DUP, (void (*)(void))kmgmt_dup },                             \
	{ OSSL_FUNC_KEYMGMT_GEN_SET_PARAMS, (void (*)(void))kmgmt_gen_set_params },       \
	{ OSSL_FUNC_KEYMGMT_GEN_SETTABLE_PARAMS, (void (*)(void))kmgmt_gen_settable_params }, \
	{ OSSL_FUNC_KEYMGMT_GEN, (void (*)(void))kmgmt_gen },                             \
	{ OSSL_FUNC_KEYMGMT_GEN_CLEANUP, (void (*)(void))kmgmt_gen_cleanup }

const OSSL_DISPATCH kosprov_ec_keymgmt_functions[] = {
	{ OSSL_FUNC_KEYMGMT_NEW, (void (*)(void))ec_new },
	{ OSSL_FUNC_KEYMGMT_GEN_INIT, (void (*)(void))ec_gen_init },
	{ OSSL_FUNC_KEYMGMT_IMPORT, (void (*)(void))ec_import },
	{ OSSL_FUNC_KEYMGMT_IMPORT_TYPES, (void (*)(void))ec_types },
	{ OSSL_FUNC_KEYMGMT_EXPORT_TYPES, (void (*)(void))ec_types },
	{ OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, (void (*)(void))ec_query },
	KOSPROV_KMGMT_COMMON,
	{ 0, NULL }
};

const OSSL_DISPATCH kosprov_ed25519_keymgmt_functions[] = {
	{ OSSL_FUNC_KEYMGMT_NEW, (void (*)(void))ed25519_new },
	{ OSSL_FUNC_KEYMGMT_GEN_INIT, (void (*)(void))ed25519_gen_init },
	{ OSSL_FUNC_KEYMGMT_IMPORT, (void (*)(void))ed25519_import },
	{ OSSL_FUNC_KEYMGMT_IMPORT_TYPES, (void (*)(void))ed25519_types },
	{ OSSL_FUNC_KEYMGMT_EXPORT_TYPES, (void (*)(void))ed25519_types },
	{ OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, (void (*)(void))ed25519_query },
	KOSPROV_KMGMT_COMMON,
	{ 0, NULL }
};

const OSSL_DISPATCH kosprov_rsa_keymgmt_functions[] = {
	{ OSSL_FUNC_KEYMGMT_NEW, (void (*)(void))rsa_new },
	{ OSSL_FUNC_KEYMGMT_GEN_INIT, (void (*)(void))rsa_gen_init },
	{ OSSL_FUNC_KEYMGMT_IMPORT, (void (*)(void))rsa_import },
	{ OSSL_FUNC_KEYMGMT_IMPORT_TYPES, (void (*)(void))rsa_types },
	{ OSSL_FUNC_KEYMGMT_EXPORT_TYPES, (void (*)(void))rsa_types },
	{ OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, (void (*)(void))rsa_query },
	KOSPROV_KMGMT_COMMON,
	{ 0, NULL }
};
