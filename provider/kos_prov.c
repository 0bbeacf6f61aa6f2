/* The provider's entry point, its parameters and its error reasons: what
 * OpenSSL's core sees of kos (kos-provider(7)). */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>
#include <openssl/provider.h>

#include "provider/prov.h"

static OSSL_FUNC_provider_teardown_fn kosprov_teardown;
static OSSL_FUNC_provider_gettable_params_fn kosprov_gettable_params;
static OSSL_FUNC_provider_get_params_fn kosprov_get_params;
static OSSL_FUNC_provider_query_operation_fn kosprov_query_operation;
static OSSL_FUNC_provider_get_reason_strings_fn kosprov_get_reason_strings;
OSSL_provider_init_fn OSSL_provider_init KOSPROV_EXPORT;

/* The parameters of the provider's openssl.cnf section. */
#define KOSPROV_PARAM_SERVER "kos-server"
#define KOSPROV_PARAM_CREDENTIAL_FILE "kos-credential-file"
#define KOSPROV_PARAM_TLS_CERT "kos-tls-cert"
#define KOSPROV_PARAM_TLS_KEY "kos-tls-key"
#define KOSPROV_PARAM_TLS_CA "kos-tls-ca"

/* kosd's refusals as a user reads them, one row per kind of answer. */
static const OSSL_ITEM kosprov_reasons[] = {
	{ KOSPROV_R_REVOKED, "credential revoked" },
	{ KOSPROV_R_EXPIRED, "credential expired" },
	{ KOSPROV_R_CREDENTIAL, "credential refused" },
	{ KOSPROV_R_OUT_OF_SCOPE, "out of scope" },
	{ KOSPROV_R_TRUST_TOO_LOW, "trust too low" },
	{ KOSPROV_R_DENIED, "refused by policy" },
	{ KOSPROV_R_UNAVAILABLE, "kosd unavailable" },
	{ KOSPROV_R_NOT_FOUND, "no such key" },
	{ KOSPROV_R_REFUSED, "refused by kosd" },
	{ KOSPROV_R_BAD_URI, "bad kos key URI" },
	{ KOSPROV_R_UNSUPPORTED, "not supported by kos" },
	{ KOSPROV_R_CONFIG, "provider configuration" },
	{ KOSPROV_R_NO_PRIVATE_KEY, "no private key" },
	{ KOSPROV_R_INVALID_ARGUMENT, "invalid argument" },
	{ KOSPROV_R_DECRYPT_FAILED, "decryption failed" },
	{ KOSPROV_R_INTERNAL, "internal error" },
	{ 0, NULL },
};

/* Which reason each refusal of kosd is raised with. */
static const int kosprov_refusal_reason[] = {
	[KOS_CLIENT_REFUSAL_NONE] = KOSPROV_R_INTERNAL,
	[KOS_CLIENT_REFUSAL_REVOKED] = KOSPROV_R_REVOKED,
	[KOS_CLIENT_REFUSAL_EXPIRED] = KOSPROV_R_EXPIRED,
	[KOS_CLIENT_REFUSAL_CREDENTIAL] = KOSPROV_R_CREDENTIAL,
	[KOS_CLIENT_REFUSAL_OUT_OF_SCOPE] = KOSPROV_R_OUT_OF_SCOPE,
	[KOS_CLIENT_REFUSAL_TRUST_TOO_LOW] = KOSPROV_R_TRUST_TOO_LOW,
	[KOS_CLIENT_REFUSAL_DENY] = KOSPROV_R_DENIED,
	[KOS_CLIENT_REFUSAL_UNAVAILABLE] = KOSPROV_R_UNAVAILABLE,
	[KOS_CLIENT_REFUSAL_NOT_FOUND] = KOSPROV_R_NOT_FOUND,
	[KOS_CLIENT_REFUSAL_INVALID] = KOSPROV_R_INVALID_ARGUMENT,
	[KOS_CLIENT_REFUSAL_OTHER] = KOSPROV_R_REFUSED,
};

int kosprov_raise(const kosprov_ctx *p, int reason, const char *fmt, ...)
{
	va_list ap;

	if (p == NULL || p->new_error == NULL || p->vset_error == NULL)
		return 0;
	p->new_error(p->handle);
	if (p->set_error_debug != NULL)
		p->set_error_debug(p->handle, NULL, 0, NULL);
	va_start(ap, fmt);
	p->vset_error(p->handle, (uint32_t)reason, fmt, ap);
	va_end(ap);
	return 0;
}

int kosprov_raise_client(const kosprov_ctx *p, const kos_client *c, kos_rv rv, const char *what)
{
	kos_client_refusal r = c != NULL ? kos_client_last_refusal(c) : KOS_CLIENT_REFUSAL_NONE;
	int reason;

	/* one answer for every failed decryption, whatever failed (kosd
	 * answers so, to be no padding oracle) */
	if (c != NULL && strcmp(kos_client_last_code(c), "decrypt_failed") == 0)
		reason = KOSPROV_R_DECRYPT_FAILED;
	else if ((size_t)r < sizeof(kosprov_refusal_reason) / sizeof(kosprov_refusal_reason[0]) &&
		 r != KOS_CLIENT_REFUSAL_NONE)
		reason = kosprov_refusal_reason[r];
	else if (rv == KOS_E_INVALID)
		reason = KOSPROV_R_INVALID_ARGUMENT;
	else if (rv == KOS_E_NOTFOUND)
		reason = KOSPROV_R_NOT_FOUND;
	else if (rv == KOS_E_INTEGRITY)
		reason = KOSPROV_R_DECRYPT_FAILED;
	else
		reason = KOSPROV_R_INTERNAL;
	/* kos_last_error() names the key and kosd's message, never a secret */
	return kosprov_raise(p, reason, "%s: %s", what, kos_last_error());
}

static const char *param_or_env(const OSSL_CORE_HANDLE *handle,
				OSSL_FUNC_core_get_params_fn *get_params, const char *key,
				const char *env)
{
	char *val = NULL;
	OSSL_PARAM params[2];

	params[0] = OSSL_PARAM_construct_utf8_ptr(key, &val, 0);
	params[1] = OSSL_PARAM_construct_end();
	if (get_params != NULL && get_params(handle, params) && val != NULL && val[0] != '\0')
		return val;
	return env != NULL ? getenv(env) : NULL;
}

static int dup_opt(char **dst, const char *src)
{
	*dst = NULL;
	if (src == NULL || src[0] == '\0')
		return 1;
	*dst = strdup(src);
	return *dst != NULL;
}

static void kosprov_ctx_free(kosprov_ctx *p)
{
	if (p == NULL)
		return;
	kosprov_handles_uninit(p);
	OSSL_LIB_CTX_free(p->libctx);
	free(p->server);
	free(p->cred_file);
	free(p->tls_cert);
	free(p->tls_key);
	free(p->tls_ca);
	if (p->credential != NULL)
		kos_secret_free(p->credential, strlen(p->credential));
	free(p);
}

static void kosprov_teardown(void *provctx)
{
	kosprov_ctx_free(provctx);
}

static const OSSL_PARAM kosprov_param_types[] = {
	OSSL_PARAM_DEFN(OSSL_PROV_PARAM_NAME, OSSL_PARAM_UTF8_PTR, NULL, 0),
	OSSL_PARAM_DEFN(OSSL_PROV_PARAM_VERSION, OSSL_PARAM_UTF8_PTR, NULL, 0),
	OSSL_PARAM_DEFN(OSSL_PROV_PARAM_BUILDINFO, OSSL_PARAM_UTF8_PTR, NULL, 0),
	OSSL_PARAM_DEFN(OSSL_PROV_PARAM_STATUS, OSSL_PARAM_INTEGER, NULL, 0),
	OSSL_PARAM_END
};

static const OSSL_PARAM *kosprov_gettable_params(void *provctx)
{
	(void)provctx;
	return kosprov_param_types;
}

static int kosprov_get_params(void *provctx, OSSL_PARAM params[])
{
	OSSL_PARAM *p;

	(void)provctx;
	p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_NAME);
	if (p != NULL && !OSSL_PARAM_set_utf8_ptr(p, "kos: keys held by kosd"))
		return 0;
	p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_VERSION);
	if (p != NULL && !OSSL_PARAM_set_utf8_ptr(p, PACKAGE_VERSION))
		return 0;
	p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_BUILDINFO);
	if (p != NULL && !OSSL_PARAM_set_utf8_ptr(p, PACKAGE_STRING))
		return 0;
	p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_STATUS);
	if (p != NULL && !OSSL_PARAM_set_int(p, 1))
		return 0;
	return 1;
}

/* What kos does, and nothing else: verification, hashing and ciphers stay
 * with the default provider. "provider=kos" lets a property query pick
 * these. */
#define KOSPROV_PROPS "provider=kos"
static const OSSL_ALGORITHM kosprov_keymgmt[] = {
	{ "EC:id-ecPublicKey:1.2.840.10045.2.1", KOSPROV_PROPS, kosprov_ec_keymgmt_functions,
	  "kos EC P-256 keys held by kosd" },
	{ "ED25519:1.3.101.112", KOSPROV_PROPS, kosprov_ed25519_keymgmt_functions,
	  "kos Ed25519 keys held by kosd" },
	{ "RSA:rsaEncryption:1.2.840.113549.1.1.1", KOSPROV_PROPS, kosprov_rsa_keymgmt_functions,
	  "kos RSA keys held by kosd" },
	{ NULL, NULL, NULL, NULL }
};

static const OSSL_ALGORITHM kosprov_signature[] = {
	{ "ECDSA", KOSPROV_PROPS, kosprov_ecdsa_signature_functions, "ECDSA in kosd" },
	{ "ED25519:1.3.101.112", KOSPROV_PROPS, kosprov_ed25519_signature_functions,
	  "Ed25519 in kosd" },
	{ "RSA:rsaEncryption:1.2.840.113549.1.1.1", KOSPROV_PROPS,
	  kosprov_rsa_signature_functions, "RSA PKCS#1 v1.5 and PSS in kosd" },
	{ NULL, NULL, NULL, NULL }
};

static const OSSL_ALGORITHM kosprov_asym_cipher[] = {
	{ "RSA:rsaEncryption:1.2.840.113549.1.1.1", KOSPROV_PROPS,
	  kosprov_rsa_asym_cipher_functions, "RSA OAEP and PKCS#1 v1.5 decryption in kosd" },
	{ NULL, NULL, NULL, NULL }
};

static const OSSL_ALGORITHM kosprov_store[] = {
	{ "kos", KOSPROV_PROPS, kosprov_store_functions, "kos: key URIs (kos-provider(7))" },
	{ NULL, NULL, NULL, NULL }
};

/* Key-URI files: PEM of the label "KOS KEY URI" to the structure
 * "kos-uri", then that to a key; every other PEM and DER goes on to the
 * default provider's decoders untouched. */
static const OSSL_ALGORITHM kosprov_decoder[] = {
	{ "DER", KOSPROV_PROPS ",input=pem", kosprov_pem_decoder_functions,
	  "kos key URI PEM files" },
	{ "EC:id-ecPublicKey:1.2.840.10045.2.1", KOSPROV_PROPS ",input=der,structure=kos-uri",
	  kosprov_uri_decoder_functions, "kos key URIs" },
	{ "ED25519:1.3.101.112", KOSPROV_PROPS ",input=der,structure=kos-uri",
	  kosprov_uri_decoder_functions, "kos key URIs" },
	{ "RSA:rsaEncryption:1.2.840.113549.1.1.1", KOSPROV_PROPS ",input=der,structure=kos-uri",
	  kosprov_uri_decoder_functions, "kos key URIs" },
	{ NULL, NULL, NULL, NULL }
};

static const OSSL_ALGORITHM kosprov_encoder[] = {
	{ "EC:id-ecPublicKey:1.2.840.10045.2.1", KOSPROV_PROPS ",output=text",
	  kosprov_text_encoder_functions, "kos keys as text" },
	{ "ED25519:1.3.101.112", KOSPROV_PROPS ",output=text", kosprov_text_encoder_functions,
	  "kos keys as text" },
	{ "RSA:rsaEncryption:1.2.840.113549.1.1.1", KOSPROV_PROPS ",output=text",
	  kosprov_text_encoder_functions, "kos keys as text" },
	{ NULL, NULL, NULL, NULL }
};

static const OSSL_ALGORITHM *kosprov_query_operation(void *provctx, int operation_id,
						     int *no_cache)
{
	(void)provctx;
	*no_cache = 0;
	switch (operation_id) {
	case OSSL_OP_KEYMGMT:
		return kosprov_keymgmt;
	case OSSL_OP_SIGNATURE:
		return kosprov_signature;
	case OSSL_OP_ASYM_CIPHER:
		return kosprov_asym_cipher;
	case OSSL_OP_STORE:
		return kosprov_store;
	case OSSL_OP_DECODER:
		return kosprov_decoder;
	case OSSL_OP_ENCODER:
		return kosprov_encoder;
	default:
		return NULL;
	}
}

static const OSSL_ITEM *kosprov_get_reason_strings(void *provctx)
{
	(void)provctx;
	return kosprov_reasons;
}

static const OSSL_DISPATCH kosprov_dispatch[] = {
	{ OSSL_FUNC_PROVIDER_TEARDOWN, (void (*)(void))kosprov_teardown },
	{ OSSL_FUNC_PROVIDER_GETTABLE_PARAMS, (void (*)(void))kosprov_gettable_params },
	{ OSSL_FUNC_PROVIDER_GET_PARAMS, (void (*)(void))kosprov_get_params },
	{ OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))kosprov_query_operation },
	{ OSSL_FUNC_PROVIDER_GET_REASON_STRINGS, (void (*)(void))kosprov_get_reason_strings },
	{ 0, NULL }
};

int OSSL_provider_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
		       const OSSL_DISPATCH **out, void **provctx)
{
	OSSL_FUNC_core_get_params_fn *get_params = NULL;
	const OSSL_DISPATCH *d;
	kosprov_ctx *p;

	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return 0;
	p->handle = handle;
	for (d = in; d != NULL && d->function_id != 0; d++) {
		switch (d->function_id) {
		case OSSL_FUNC_CORE_GET_PARAMS:
			get_params = OSSL_FUNC_core_get_params(d);
			break;
		case OSSL_FUNC_CORE_NEW_ERROR:
			p->new_error = OSSL_FUNC_core_new_error(d);
			break;
		case OSSL_FUNC_CORE_SET_ERROR_DEBUG:
			p->set_error_debug = OSSL_FUNC_core_set_error_debug(d);
			break;
		case OSSL_FUNC_CORE_VSET_ERROR:
			p->vset_error = OSSL_FUNC_core_vset_error(d);
			break;
		default:
			break;
		}
	}
	/* the section's values first, the client library's variables else */
	if (!dup_opt(&p->server, param_or_env(handle, get_params, KOSPROV_PARAM_SERVER,
					      KOS_CLIENT_ENV_SERVER)) ||
	    !dup_opt(&p->cred_file, param_or_env(handle, get_params, KOSPROV_PARAM_CREDENTIAL_FILE,
						 KOS_CLIENT_ENV_CREDENTIAL_FILE)) ||
	    !dup_opt(&p->tls_cert, param_or_env(handle, get_params, KOSPROV_PARAM_TLS_CERT,
						KOS_CLIENT_ENV_TLS_CERT)) ||
	    !dup_opt(&p->tls_key, param_or_env(handle, get_params, KOSPROV_PARAM_TLS_KEY,
					       KOS_CLIENT_ENV_TLS_KEY)) ||
	    !dup_opt(&p->tls_ca, param_or_env(handle, get_params, KOSPROV_PARAM_TLS_CA,
					      KOS_CLIENT_ENV_TLS_CA)))
		goto err;
	/* the credential itself, only from the environment (a file is the
	 * way to name one in openssl.cnf) */
	if (p->cred_file == NULL && getenv(KOS_CLIENT_ENV_CREDENTIAL) != NULL &&
	    getenv(KOS_CLIENT_ENV_CREDENTIAL)[0] != '\0') {
		p->credential = strdup(getenv(KOS_CLIENT_ENV_CREDENTIAL));
		if (p->credential == NULL)
			goto err;
	}
	/* digests and the public halves' arithmetic come from the
	 * application's other providers, through a child library context */
	p->libctx = OSSL_LIB_CTX_new_child(handle, in);
	if (p->libctx == NULL || kosprov_handles_init(p) != KOS_OK)
		goto err;
	*out = kosprov_dispatch;
	*provctx = p;
	return 1;
err:
	kosprov_ctx_free(p);
	return 0;
}
