/* The module's configuration: a JSON file naming one slot per kosd
 * (kos-pkcs11(8)), $KOS_PKCS11_CONF or $(sysconfdir)/kos/pkcs11.json, or,
 * with neither, one slot "kos" from the client library's environment.
 * JSON (jansson, which the client links anyway) rather than libconfig: a
 * module loaded into every application brings no parser of its own. */
#include "config.h"

#include "pkcs11/internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#define KOSP11_CONF_ENV "KOS_PKCS11_CONF"
#define KOSP11_SLOTS_MAX 64

/* Said once per process: an application that retries C_Initialize in a
 * loop should not fill its log. */
static bool kosp11_config_warned;

KOS_PRINTF(2, 3) static void config_error(const char *file, const char *fmt, ...)
{
	va_list ap;

	if (kosp11_config_warned)
		return;
	kosp11_config_warned = true;
	fprintf(stderr, "kos-pkcs11: %s: ", file);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static char *dup_or_null(const char *s)
{
	return s != NULL && s[0] != '\0' ? strdup(s) : NULL;
}

void kosp11_slots_free(struct kosp11_slot *slots, size_t n, bool forget_handles)
{
	if (slots == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		struct kosp11_slot *s = &slots[i];

		/* in a forked child the handles hold the parent's connections
		 * (and TLS sessions): closing them would write on the
		 * parent's sockets, so they are left alone */
		if (!forget_handles)
			for (size_t j = 0; j < s->pooled; j++)
				kos_client_free(s->pool[j]);
		free(s->server);
		free(s->cred_file);
		free(s->tls_cert);
		free(s->tls_key);
		free(s->tls_ca);
		if (s->pin_cred != NULL)
			kos_secret_free(s->pin_cred, strlen(s->pin_cred));
		free(s->pin_file);
	}
	if (!forget_handles)
		free(slots);
}

static int member_string(const char *file, json_t *obj, const char *where, const char *key,
			 bool required, const char **out)
{
	json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (v == NULL) {
		if (required) {
			config_error(file, "%s: \"%s\" is missing", where, key);
			return -1;
		}
		return 0;
	}
	if (!json_is_string(v) || json_string_length(v) == 0) {
		config_error(file, "%s: \"%s\" must be a non-empty string", where, key);
		return -1;
	}
	*out = json_string_value(v);
	return 0;
}

static int only_members(const char *file, json_t *obj, const char *where,
			const char *const *known)
{
	const char *key;
	json_t *v;

	json_object_foreach (obj, key, v) {
		size_t i;

		for (i = 0; known[i] != NULL; i++)
			if (strcmp(key, known[i]) == 0)
				break;
		if (known[i] == NULL) {
			config_error(file, "%s: unknown member \"%s\"", where, key);
			return -1;
		}
	}
	return 0;
}

static int slot_from_json(const char *file, json_t *js, size_t i, struct kosp11_slot *s)
{
	static const char *const known[] = { "label", "server", "credential_file", "tls", NULL };
	static const char *const tls_known[] = { "cert", "key", "ca", NULL };
	const char *label, *server, *cred, *cert = NULL, *key = NULL, *ca = NULL;
	char where[48];
	json_t *tls;

	snprintf(where, sizeof(where), "slots[%zu]", i);
	if (!json_is_object(js)) {
		config_error(file, "%s must be an object", where);
		return -1;
	}
	if (only_members(file, js, where, known) != 0 ||
	    member_string(file, js, where, "label", false, &label) != 0 ||
	    member_string(file, js, where, "server", true, &server) != 0 ||
	    member_string(file, js, where, "credential_file", false, &cred) != 0)
		return -1;
	if (label == NULL)
		label = "kos";
	if (strlen(label) > 32) {
		config_error(file, "%s: the label is longer than 32 characters", where);
		return -1;
	}
	if ((tls = json_object_get(js, "tls")) != NULL) {
		strncat(where, ".tls", sizeof(where) - strlen(where) - 1);
		if (!json_is_object(tls)) {
			config_error(file, "%s must be an object", where);
			return -1;
		}
		if (only_members(file, tls, where, tls_known) != 0 ||
		    member_string(file, tls, where, "cert", true, &cert) != 0 ||
		    member_string(file, tls, where, "key", false, &key) != 0 ||
		    member_string(file, tls, where, "ca", false, &ca) != 0)
			return -1;
	}
	snprintf(s->label, sizeof(s->label), "%s", label);
	s->server = strdup(server);
	s->cred_file = dup_or_null(cred);
	s->tls_cert = dup_or_null(cert);
	s->tls_key = dup_or_null(key);
	s->tls_ca = dup_or_null(ca);
	if (s->server == NULL || (cred != NULL && s->cred_file == NULL) ||
	    (cert != NULL && s->tls_cert == NULL) || (key != NULL && s->tls_key == NULL) ||
	    (ca != NULL && s->tls_ca == NULL))
		return -2;
	return 0;
}

static CK_RV config_file(const char *file, struct kosp11_slot **out, size_t *n)
{
	struct kosp11_slot *slots = NULL;
	json_error_t jerr;
	json_t *root, *arr;
	size_t count = 0;
	CK_RV rv = CKR_GENERAL_ERROR;

	root = json_load_file(file, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		if (jerr.line > 0)
			config_error(file, "line %d: %s", jerr.line, jerr.text);
		else
			config_error(file, "%s", jerr.text);
		return CKR_GENERAL_ERROR;
	}
	if (!json_is_object(root)) {
		config_error(file, "not a JSON object");
		goto out;
	}
	if (only_members(file, root, "the file", (const char *const[]){ "slots", NULL }) != 0)
		goto out;
	arr = json_object_get(root, "slots");
	if (!json_is_array(arr)) {
		config_error(file, "\"slots\" must be an array");
		goto out;
	}
	count = json_array_size(arr);
	if (count > KOSP11_SLOTS_MAX) {
		config_error(file, "more than %d slots", KOSP11_SLOTS_MAX);
		goto out;
	}
	if (count > 0 && (slots = calloc(count, sizeof(*slots))) == NULL) {
		rv = CKR_HOST_MEMORY;
		goto out;
	}
	for (size_t i = 0; i < count; i++) {
		int r = slot_from_json(file, json_array_get(arr, i), i, &slots[i]);

		if (r != 0) {
			rv = r == -2 ? CKR_HOST_MEMORY : CKR_GENERAL_ERROR;
			kosp11_slots_free(slots, count, false);
			slots = NULL;
			goto out;
		}
	}
	*out = slots;
	*n = count;
	rv = CKR_OK;
out:
	json_decref(root);
	return rv;
}

CK_RV kosp11_config_load(struct kosp11_slot **out, size_t *n)
{
	const char *file = getenv(KOSP11_CONF_ENV), *server;
	struct kosp11_slot *s;

	*out = NULL;
	*n = 0;
	if (file != NULL && file[0] != '\0')
		return config_file(file, out, n);
	file = KOS_SYSCONFDIR "/kos/pkcs11.json";
	if (access(file, F_OK) == 0 || errno != ENOENT)
		return config_file(file, out, n);
	/* no file: the client library's environment, as kosctl uses it */
	server = getenv(KOS_CLIENT_ENV_SERVER);
	if (server == NULL || server[0] == '\0')
		return CKR_OK;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return CKR_HOST_MEMORY;
	snprintf(s->label, sizeof(s->label), "kos");
	s->server = strdup(server);
	s->cred_file = dup_or_null(getenv(KOS_CLIENT_ENV_CREDENTIAL_FILE));
	s->tls_cert = dup_or_null(getenv(KOS_CLIENT_ENV_TLS_CERT));
	s->tls_key = dup_or_null(getenv(KOS_CLIENT_ENV_TLS_KEY));
	s->tls_ca = dup_or_null(getenv(KOS_CLIENT_ENV_TLS_CA));
	if (s->server == NULL) {
		kosp11_slots_free(s, 1, false);
		return CKR_HOST_MEMORY;
	}
	*out = s;
	*n = 1;
	return CKR_OK;
}
