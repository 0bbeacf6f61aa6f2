/* The store loader of kos key URIs (OSSL_STORE_open("kos:NAME")): the key
 * (private, or public with type=public), then the certificate kosd keeps
 * beside that version when it has one, so `-key kos:NAME -cert kos:NAME`
 * names both. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/params.h>
#include <openssl/store.h>

#include "provider/prov.h"

static OSSL_FUNC_store_open_fn store_open;
static OSSL_FUNC_store_settable_ctx_params_fn store_settable_ctx_params;
static OSSL_FUNC_store_set_ctx_params_fn store_set_ctx_params;
static OSSL_FUNC_store_load_fn store_load;
static OSSL_FUNC_store_eof_fn store_eof;
static OSSL_FUNC_store_close_fn store_close;

enum store_step { STEP_KEY = 0, STEP_CERT, STEP_DONE };

typedef struct kosprov_store_ctx {
	kosprov_ctx *prov;
	char *uri;
	enum store_step step;
	int expect; /* OSSL_STORE_INFO_*, 0: anything */
	char name[KOS_KEY_NAME_MAX + 1];
	uint32_t version; /* the loaded key's, for its certificate */
} kosprov_store_ctx;

static void *store_open(void *provctx, const char *uri)
{
	kosprov_ctx *p = provctx;
	kosprov_store_ctx *s;
	char name[KOS_KEY_NAME_MAX + 1];
	uint32_t version;
	bool public_only;
	const char *why;

	/* a malformed URI fails here, before any request */
	if (!kosprov_uri_parse(uri, name, &version, &public_only, &why)) {
		kosprov_raise(p, KOSPROV_R_BAD_URI, "%.64s: %s", uri != NULL ? uri : "", why);
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL || (s->uri = strdup(uri)) == NULL) {
		free(s);
		return NULL;
	}
	s->prov = p;
	strcpy(s->name, name);
	s->version = version;
	return s;
}

static const OSSL_PARAM store_settable[] = {
	OSSL_PARAM_int(OSSL_STORE_PARAM_EXPECT, NULL),
	OSSL_PARAM_END
};

static const OSSL_PARAM *store_settable_ctx_params(void *provctx)
{
	(void)provctx;
	return store_settable;
}

static int store_set_ctx_params(void *loaderctx, const OSSL_PARAM params[])
{
	kosprov_store_ctx *s = loaderctx;
	const OSSL_PARAM *p;

	if (params == NULL)
		return 1;
	p = OSSL_PARAM_locate_const(params, OSSL_STORE_PARAM_EXPECT);
	if (p != NULL && !OSSL_PARAM_get_int(p, &s->expect))
		return 0;
	return 1;
}

static int load_key(kosprov_store_ctx *s, OSSL_CALLBACK *object_cb, void *object_cbarg)
{
	kosprov_key *k = kosprov_key_load_uri(s->prov, s->uri);
	int type = OSSL_OBJECT_PKEY, ok;
	OSSL_PARAM params[4];

	if (k == NULL)
		return 0;
	s->version = k->version;
	params[0] = OSSL_PARAM_construct_int(OSSL_OBJECT_PARAM_TYPE, &type);
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_TYPE,
						     (char *)kosprov_key_type_name(k->type), 0);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_REFERENCE, &k, sizeof(k));
	params[3] = OSSL_PARAM_construct_end();
	ok = object_cb(params, object_cbarg);
	kosprov_key_free(k);
	return ok;
}

/* The certificate beside the key's version; none is no error. */
static int load_cert(kosprov_store_ctx *s, OSSL_CALLBACK *object_cb, void *object_cbarg)
{
	kos_client *c = kosprov_handle_get(s->prov);
	int type = OSSL_OBJECT_CERT, ok = 0;
	uint8_t *der = NULL;
	size_t len = 0;
	OSSL_PARAM params[3];
	kos_rv rv;

	if (c == NULL)
		return 0;
	rv = kos_client_cert_get(c, s->name, s->version, &der, &len);
	if (rv == KOS_E_NOTFOUND) {
		ok = 1;
		goto out;
	}
	if (rv != KOS_OK) {
		kosprov_raise_client(s->prov, c, rv, s->name);
		goto out;
	}
	params[0] = OSSL_PARAM_construct_int(OSSL_OBJECT_PARAM_TYPE, &type);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_DATA, der, len);
	params[2] = OSSL_PARAM_construct_end();
	ok = object_cb(params, object_cbarg);
out:
	kos_free(der);
	kosprov_handle_put(s->prov, c);
	return ok;
}

static int store_load(void *loaderctx, OSSL_CALLBACK *object_cb, void *object_cbarg,
		      OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
	kosprov_store_ctx *s = loaderctx;
	bool want_key = s->expect == 0 || s->expect == OSSL_STORE_INFO_PKEY ||
			s->expect == OSSL_STORE_INFO_PUBKEY;
	bool want_cert = s->expect == 0 || s->expect == OSSL_STORE_INFO_CERT;
	int ok = 1;

	(void)pw_cb;
	(void)pw_cbarg;
	if (s->step == STEP_KEY) {
		s->step = STEP_CERT;
		if (want_key) {
			ok = load_key(s, object_cb, object_cbarg);
			if (!ok)
				s->step = STEP_DONE;
			return ok;
		}
	}
	if (s->step == STEP_CERT) {
		s->step = STEP_DONE;
		if (want_cert)
			ok = load_cert(s, object_cb, object_cbarg);
	}
	return ok;
}

static int store_eof(void *loaderctx)
{
	return ((kosprov_store_ctx *)loaderctx)->step == STEP_DONE;
}

static int store_close(void *loaderctx)
{
	kosprov_store_ctx *s = loaderctx;

	if (s != NULL)
		free(s->uri);
	free(s);
	return 1;
}

const OSSL_DISPATCH kosprov_store_functions[] = {
	{ OSSL_FUNC_STORE_OPEN, (void (*)(void))store_open },
	{ OSSL_FUNC_STORE_SETTABLE_CTX_PARAMS, (void (*)(void))store_settable_ctx_params },
	{ OSSL_FUNC_STORE_SET_CTX_PARAMS, (void (*)(void))store_set_ctx_params },
	{ OSSL_FUNC_STORE_LOAD, (void (*)(void))store_load },
	{ OSSL_FUNC_STORE_EOF, (void (*)(void))store_eof },
	{ OSSL_FUNC_STORE_CLOSE, (void (*)(void))store_close },
	{ 0, NULL }
};
