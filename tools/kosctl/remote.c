/* kosctl through kosd: which server, the client handle, calls and refusals.
 *
 * The commands kosd serves (key use and lifecycle, enrollment, refresh and
 * the administrative routes) go through the client library when a server
 * is known; every other command works on the state store and tokens
 * directly, as kosd's host administrator does (kosctl(1), "kosd and local
 * commands"). */
#include "config.h"

#include "tools/kosctl/kosctl.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

bool kosctl_remote(struct kosctl_ctx *ctx)
{
	const char *env;
	char *diag = NULL;

	if (ctx->local)
		return false;
	if (ctx->server_checked)
		return ctx->server != NULL;
	ctx->server_checked = true;
	if (ctx->server == NULL && (env = getenv(KOS_CLIENT_ENV_SERVER)) != NULL && env[0] != '\0')
		ctx->server = env;
	/* kos.conf is read quietly: when it cannot be, the local path that
	 * follows loads it again and reports why */
	if (ctx->server == NULL && ctx->conf == NULL &&
	    kos_config_load(ctx->config_path, &ctx->conf, &diag) != KOS_OK)
		ctx->conf = NULL;
	kos_free(diag);
	if (ctx->server == NULL && ctx->conf != NULL)
		ctx->server = kos_config_get0_server(ctx->conf);
	return ctx->server != NULL;
}

int kosctl_need_client(struct kosctl_ctx *ctx, bool enrolling)
{
	kos_rv rv;

	if (ctx->client != NULL)
		return KOSCTL_OK;
	if (!kosctl_remote(ctx)) {
		kosctl_err("no kosd to talk to (--server, KOS_SERVER or kos.conf's server)");
		return KOSCTL_FAIL;
	}
	/* kosctl chooses the credential itself: the library would otherwise
	 * insist on reading $KOS_CREDENTIAL_FILE, which enrollment is about
	 * to create */
	if (enrolling || ctx->cred_file != NULL) {
		unsetenv(KOS_CLIENT_ENV_CREDENTIAL_FILE);
		unsetenv(KOS_CLIENT_ENV_CREDENTIAL);
	}
	rv = kos_client_new(ctx->server, &ctx->client);
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, ctx->server);
		return KOSCTL_FAIL;
	}
	if (!enrolling && ctx->cred_file != NULL) {
		rv = kos_client_set_credential_file(ctx->client, ctx->cred_file);
		if (rv != KOS_OK) {
			kosctl_err_rv(rv, "credential");
			return KOSCTL_FAIL;
		}
	}
	return KOSCTL_OK;
}

void kosctl_err_remote(struct kosctl_ctx *ctx, kos_rv rv, const char *what)
{
	const char *code = kos_client_last_code(ctx->client);

	if (code[0] != '\0')
		kosctl_err("%s: refused by kosd (%s): %s", what, code, kos_last_error());
	else
		kosctl_err_rv(rv, what);
}

void kosctl_json_wipe(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (json_is_string(v))
		OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
}

int kosctl_call(struct kosctl_ctx *ctx, const char *what, const char *method, const char *path,
		json_t *body, json_t **answer)
{
	char *in = NULL, *out = NULL;
	json_t *doc;
	kos_rv rv;

	if (answer != NULL)
		*answer = NULL;
	if (kosctl_need_client(ctx, false) != KOSCTL_OK) {
		json_decref(body);
		return KOSCTL_FAIL;
	}
	if (body != NULL) {
		in = json_dumps(body, JSON_COMPACT);
		json_decref(body);
		if (in == NULL) {
			kosctl_err("%s: out of memory", what);
			return KOSCTL_FAIL;
		}
	}
	rv = kos_client_call(ctx->client, method, path, in, &out);
	free(in);
	if (rv != KOS_OK) {
		kosctl_err_remote(ctx, rv, what);
		return KOSCTL_FAIL;
	}
	doc = json_loads(out, 0, NULL);
	kos_secret_free(out, strlen(out));
	if (!json_is_object(doc)) {
		json_decref(doc);
		kosctl_err("%s: kosd's answer is not a JSON object", what);
		return KOSCTL_FAIL;
	}
	if (answer != NULL)
		*answer = doc;
	else
		json_decref(doc);
	return KOSCTL_OK;
}

const char *kosctl_jstr(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s != NULL ? s : "-";
}

double kosctl_jnum(const json_t *obj, const char *key)
{
	return json_number_value(json_object_get(obj, key));
}

long long kosctl_jint(const json_t *obj, const char *key)
{
	return (long long)json_integer_value(json_object_get(obj, key));
}

bool kosctl_jbool(const json_t *obj, const char *key)
{
	return json_is_true(json_object_get(obj, key));
}

int kosctl_not_remote(const char *what, const char *why)
{
	kosctl_err("%s: %s", what, why);
	return KOSCTL_USAGE;
}
