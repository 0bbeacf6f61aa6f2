/* kos.conf: the service's configuration file (libconfig syntax). */
#include "config.h"

#include "kos/conffile.h"

#include <p11-kit/uri.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>

#define KOS_CONFIG_MAX_SIZE (1024 * 1024)
/* 255 KMS tokens (the most a Shamir set can use) plus the other roles. */
#define KOS_CONFIG_MAX_TOKENS 512
#define KOS_CONFIG_MAX_ENV    64
#define KOS_CONFIG_MAX_VALUE  4096

struct kos_config_token {
	char *name;
	char *module;
	char *uri;
	char *pin; /* "file:/abs/path" or "env:NAME" */
	kos_token_role role;
};

struct kos_config_env {
	char *name;
	char *value;
};

/* One kms_fronts entry: the KMS tokens a KMS front serves and its address. */
struct kos_config_front {
	char *address; /* "unix:/ABSOLUTE" or "https://HOST:PORT" */
	char **tokens;
	size_t n_tokens;
	int line;
};

struct kos_config {
	char *path;
	char *store;
	char *policy;
	char *server; /* "unix:/ABSOLUTE" or "https://HOST:PORT"; NULL when unset */
	struct kos_config_token *tokens;
	size_t n_tokens;
	struct kos_config_env *env;
	size_t n_env;
	char *listen_unix;
	char *listen_tcp_host;
	char *tls_cert, *tls_key, *tls_client_ca;
	kos_listen_config listen;
	char *kms_jwks; /* the kms group: this file configures a KMS front */
	struct kos_config_front *fronts;
	size_t n_fronts;
};

#define KOS_LISTEN_DEFAULT_BODY (1024 * 1024)
/* base64 of the 64 MiB envelope limit plus the JSON around it */
#define KOS_LISTEN_DEFAULT_DATA_BODY (96 * 1024 * 1024)
#define KOS_LISTEN_DEFAULT_ANON_BODY (16 * 1024)
#define KOS_LISTEN_MAX_DATA_BODY     (1024 * 1024 * 1024)
#define KOS_LISTEN_SUN_PATH_MAX	     107 /* sizeof(sockaddr_un.sun_path) - 1 on Linux */
#define KOS_CONFIG_MAX_FRONTS	     255
#define KOS_FRONT_ADDRESS_MAX	     255

static const char *const role_names[KOS_TOKEN_ROLE_COUNT] = {
    [KOS_TOKEN_ROLE_KMS] = "kms",
    [KOS_TOKEN_ROLE_SIGNER] = "signer",
    [KOS_TOKEN_ROLE_CA] = "ca",
    [KOS_TOKEN_ROLE_TRUSTNODE] = "trustnode",
};

const char *kos_token_role_name(kos_token_role role)
{
	if ((unsigned)role >= KOS_TOKEN_ROLE_COUNT)
		return "?";
	return role_names[role];
}

kos_rv kos_token_role_parse(const char *s, kos_token_role *out)
{
	unsigned i;

	for (i = 0; s != NULL && i < KOS_TOKEN_ROLE_COUNT; i++) {
		if (strcmp(s, role_names[i]) == 0) {
			*out = (kos_token_role)i;
			return KOS_OK;
		}
	}
	return kos_error_set(KOS_E_PARSE, "unknown token role (kms, signer, ca, trustnode)");
}

const char *kos_config_default_path(void)
{
	const char *env = getenv("KOS_CONF");

	if (env != NULL && env[0] != '\0')
		return env;
	return KOS_SYSCONFDIR "/kos/kos.conf";
}

/* rel made absolute against the directory of conf_path (rel itself when
 * absolute or when conf_path has no directory part). */
static char *resolve_path(const char *conf_path, const char *rel)
{
	const char *slash = strrchr(conf_path, '/');
	size_t dirlen, n;
	char *out;

	if (rel[0] == '/' || slash == NULL)
		return kos_strdup(rel);
	dirlen = (size_t)(slash - conf_path) + 1;
	n = dirlen + strlen(rel) + 1;
	out = malloc(n);
	if (out == NULL)
		return NULL;
	memcpy(out, conf_path, dirlen);
	strcpy(out + dirlen, rel);
	return out;
}

/* Resolves a store location against the directory of the file that names
 * it: "sqlite:REL" and a plain relative path are resolved; any other scheme
 * ("memory:", "postgres://...") is kept as written, for kos_store_open() to
 * accept or refuse. */
static char *resolve(const char *conf_path, const char *value)
{
	size_t i = 0;
	char *path, *out;

	while ((value[i] >= 'a' && value[i] <= 'z') || (value[i] >= '0' && value[i] <= '9'))
		i++;
	if (i == 0 || value[i] != ':')
		return resolve_path(conf_path, value);
	if (i != 6 || strncmp(value, "sqlite", 6) != 0)
		return kos_strdup(value);
	path = resolve_path(conf_path, value + 7);
	if (path == NULL)
		return NULL;
	out = malloc(strlen(path) + 8);
	if (out != NULL) {
		memcpy(out, "sqlite:", 7);
		strcpy(out + 7, path);
	}
	free(path);
	return out;
}

void kos_config_free(kos_config *conf)
{
	size_t i;

	if (conf == NULL)
		return;
	for (i = 0; i < conf->n_tokens; i++) {
		free(conf->tokens[i].name);
		free(conf->tokens[i].module);
		free(conf->tokens[i].uri);
		free(conf->tokens[i].pin);
	}
	free(conf->tokens);
	for (i = 0; i < conf->n_env; i++) {
		free(conf->env[i].name);
		free(conf->env[i].value);
	}
	free(conf->env);
	for (i = 0; i < conf->n_fronts; i++) {
		for (size_t k = 0; k < conf->fronts[i].n_tokens; k++)
			free(conf->fronts[i].tokens[k]);
		free(conf->fronts[i].tokens);
		free(conf->fronts[i].address);
	}
	free(conf->fronts);
	free(conf->kms_jwks);
	free(conf->listen_unix);
	free(conf->listen_tcp_host);
	free(conf->tls_cert);
	free(conf->tls_key);
	free(conf->tls_client_ca);
	free(conf->path);
	free(conf->store);
	free(conf->policy);
	free(conf->server);
	free(conf);
}

static void string_setting(kos_cf *cf, const config_setting_t *s, const char *name, bool is_store,
			   char **out)
{
	const char *v;

	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		kos_cf_problem(cf, kos_cf_line(s), "%s: must be a string", name);
		return;
	}
	v = config_setting_get_string(s);
	if (v == NULL || v[0] == '\0') {
		kos_cf_problem(cf, kos_cf_line(s), "%s: must not be empty", name);
		return;
	}
	*out = is_store ? resolve(cf->file, v) : resolve_path(cf->file, v);
	if (*out == NULL)
		cf->oom = true;
}

/* server: the kosd kosctl talks to (kosctl(1)): a socket path or
 * "unix:PATH" (made absolute against kos.conf's directory, kept as
 * "unix:/ABSOLUTE"), or "https://HOST:PORT" kept as written. */
static int take_server(kos_cf *cf, const config_setting_t *s, const char *path,
		       const struct kos_cf_key *k, void *base)
{
	kos_config *conf = base;
	int line = kos_cf_line(s);
	const char *v, *host, *colon;
	char *abs = NULL, *end = NULL;
	unsigned long port = 0;
	unsigned before = cf->count;

	(void)path;
	(void)k;
	free(conf->server);
	conf->server = NULL;
	if (config_setting_type(s) != CONFIG_TYPE_STRING ||
	    (v = config_setting_get_string(s)) == NULL || v[0] == '\0') {
		kos_cf_problem(cf, line,
			       "server: must be a non-empty string (\"kosd.sock\", "
			       "\"unix:PATH\" or \"https://HOST:PORT\")");
		return -1;
	}
	if (strlen(v) > 255 || strpbrk(v, " \t\r\n\"'\\") != NULL) {
		kos_cf_problem(cf, line, "server: at most 255 characters, no blanks or quotes");
		return -1;
	}
	if (strncmp(v, "https://", 8) == 0) {
		host = v + 8;
		colon = strrchr(host, ':');
		if (colon != NULL && colon > host && strpbrk(host, "/@?#") == NULL)
			port = strtoul(colon + 1, &end, 10);
		if (port < 1 || port > 65535 || end == colon + 1 || *end != '\0') {
			kos_cf_problem(cf, line, "server: must be \"https://HOST:PORT\"");
			return -1;
		}
		if ((conf->server = kos_strdup(v)) == NULL)
			cf->oom = true;
		return -1;
	}
	if (strstr(v, "://") != NULL) {
		kos_cf_problem(
		    cf, line,
		    "server: must be a socket path, \"unix:PATH\" or \"https://HOST:PORT\"");
		return -1;
	}
	if (strncmp(v, "unix:", 5) == 0)
		v += 5;
	if (v[0] == '\0') {
		kos_cf_problem(cf, line, "server: unix: the socket path is empty");
		return -1;
	}
	abs = resolve_path(cf->file, v);
	if (abs == NULL) {
		cf->oom = true;
		return -1;
	}
	if (strlen(abs) > KOS_LISTEN_SUN_PATH_MAX) {
		kos_cf_problem(cf, line,
			       "server: the socket path is longer than %d characters once made "
			       "absolute",
			       KOS_LISTEN_SUN_PATH_MAX);
	} else if ((conf->server = malloc(strlen(abs) + 6)) == NULL) {
		cf->oom = true;
	} else {
		memcpy(conf->server, "unix:", 5);
		memcpy(conf->server + 5, abs, strlen(abs) + 1);
	}
	free(abs);
	return cf->count == before ? kos_cf_line(s) : -1;
}

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static bool env_name_ok(const char *s)
{
	size_t i;

	if (!((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
		return false;
	for (i = 1; s[i] != '\0'; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return i <= 128;
}

/* The string value of member key of group g, or NULL after reporting why. */
static const char *member_string(kos_cf *cf, const config_setting_t *g, const char *tok,
				 const char *key)
{
	config_setting_t *s = config_setting_get_member(g, key);
	const char *v;

	if (s == NULL) {
		kos_cf_problem(cf, kos_cf_line(g), "token %s: %s: missing", tok, key);
		return NULL;
	}
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		kos_cf_problem(cf, kos_cf_line(s), "token %s: %s: must be a string", tok, key);
		return NULL;
	}
	v = config_setting_get_string(s);
	if (v == NULL || v[0] == '\0') {
		kos_cf_problem(cf, kos_cf_line(s), "token %s: %s: must not be empty", tok, key);
		return NULL;
	}
	if (strlen(v) > KOS_CONFIG_MAX_VALUE) {
		kos_cf_problem(cf, kos_cf_line(s), "token %s: %s: longer than %d characters", tok,
			       key, KOS_CONFIG_MAX_VALUE);
		return NULL;
	}
	return v;
}

/* A token URI must parse, must name a token (an empty "pkcs11:" would match
 * whichever token comes first) and must not carry a PIN: PINs come from the
 * pin setting, whose file permissions are checked. */
static void check_uri(kos_cf *cf, int line, const char *tok, const char *v)
{
	P11KitUri *uri = p11_kit_uri_new();
	CK_TOKEN_INFO *ti;
	int r;

	if (uri == NULL) {
		cf->oom = true;
		return;
	}
	r = p11_kit_uri_parse(v, P11_KIT_URI_FOR_TOKEN, uri);
	if (r != P11_KIT_URI_OK) {
		kos_cf_problem(cf, line, "token %s: uri: %s", tok, p11_kit_uri_message(r));
		goto out;
	}
	if (p11_kit_uri_any_unrecognized(uri)) {
		kos_cf_problem(
		    cf, line,
		    "token %s: uri: has attributes that do not select a token (use token=, "
		    "serial=, model=, manufacturer=)",
		    tok);
		goto out;
	}
	if (p11_kit_uri_get_pin_value(uri) != NULL || p11_kit_uri_get_pin_source(uri) != NULL) {
		kos_cf_problem(cf, line,
			       "token %s: uri: must not carry a PIN (use pin = \"file:...\")", tok);
		goto out;
	}
	ti = p11_kit_uri_get_token_info(uri);
	if (ti->label[0] == 0 && ti->manufacturerID[0] == 0 && ti->model[0] == 0 &&
	    ti->serialNumber[0] == 0)
		kos_cf_problem(cf, line,
			       "token %s: uri: names no token (give token=, serial=, model= or "
			       "manufacturer=)",
			       tok);
out:
	p11_kit_uri_free(uri);
}

/* The members of a token, and of a kms_fronts entry: by name only, as
 * parse_token() and take_fronts() check each member against the others. */
static const struct kos_cf_key token_keys[] = {
    {.name = "name"}, {.name = "module"}, {.name = "uri"},
    {.name = "pin"},  {.name = "role"},	  KOS_CF_END,
};
static const struct kos_cf_key front_keys[] = {
    {.name = "tokens"},
    {.name = "address"},
    KOS_CF_END,
};

static void parse_token(kos_cf *cf, const config_setting_t *g, kos_config *conf)
{
	struct kos_config_token *t = &conf->tokens[conf->n_tokens];
	const config_setting_t *m;
	const char *name, *module, *uri, *pin, *role;
	char label[KOS_TOKEN_NAME_MAX + 8], where[32], what[KOS_TOKEN_NAME_MAX + 24];
	unsigned before = cf->count;
	size_t k;

	if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
		kos_cf_problem(cf, kos_cf_line(g),
			       "tokens: each entry must be a group { name = ...; ... }");
		return;
	}
	snprintf(where, sizeof(where), "tokens[%zu]", conf->n_tokens);
	kos_cf_refuse_unknown(cf, g, where, token_keys);

	/* Messages name the token by its name when it has a usable one. */
	snprintf(label, sizeof(label), "#%zu", conf->n_tokens + 1);
	name = member_string(cf, g, label, "name");
	if (name != NULL) {
		size_t n = strlen(name), j;
		bool ok = n <= KOS_TOKEN_NAME_MAX;

		for (j = 0; ok && j < n; j++)
			ok = name_char(name[j]);
		m = config_setting_get_member(g, "name");
		if (!ok) {
			kos_cf_problem(cf, kos_cf_line(m),
				       "token %s: name: 1 to %d of a-z, 0-9, '_' and '-'", label,
				       KOS_TOKEN_NAME_MAX);
			name = NULL;
		} else {
			snprintf(label, sizeof(label), "%s", name);
			for (k = 0; k < conf->n_tokens; k++) {
				if (conf->tokens[k].name != NULL &&
				    strcmp(conf->tokens[k].name, name) == 0) {
					kos_cf_problem(cf, kos_cf_line(m),
						       "token %s: name: used twice", name);
					name = NULL;
					break;
				}
			}
		}
	}
	module = member_string(cf, g, label, "module");
	if (module != NULL && module[0] != '/') {
		kos_cf_problem(cf, kos_cf_line(config_setting_get_member(g, "module")),
			       "token %s: module: must be an absolute path", label);
		module = NULL;
	}
	uri = member_string(cf, g, label, "uri");
	if (uri != NULL) {
		unsigned c = cf->count;

		check_uri(cf, kos_cf_line(config_setting_get_member(g, "uri")), label, uri);
		if (cf->count != c)
			uri = NULL;
	}
	pin = member_string(cf, g, label, "pin");
	if (pin != NULL) {
		int line = kos_cf_line(config_setting_get_member(g, "pin"));

		if (strncmp(pin, "file:", 5) == 0 && pin[5] != '\0') {
			/* resolved below */
		} else if (strncmp(pin, "env:", 4) == 0 && env_name_ok(pin + 4)) {
			/* kept as written */
		} else {
			kos_cf_problem(
			    cf, line,
			    "token %s: pin: must be \"file:PATH\" or \"env:NAME\" (the PIN "
			    "itself does not belong in kos.conf)",
			    label);
			pin = NULL;
		}
	}
	role = member_string(cf, g, label, "role");
	if (role != NULL && kos_token_role_parse(role, &t->role) != KOS_OK) {
		kos_cf_problem(cf, kos_cf_line(config_setting_get_member(g, "role")),
			       "token %s: role: must be kms, signer, ca or trustnode", label);
		role = NULL;
	}
	kos_error_clear();
	/* Kept even when something is wrong, so a later entry reusing the name
	 * is reported too; a file with problems is never handed out. */
	conf->n_tokens++;
	if (name != NULL && (t->name = kos_strdup(name)) == NULL)
		cf->oom = true;
	if (cf->count != before)
		return;
	t->module = kos_strdup(module);
	t->uri = kos_strdup(uri);
	snprintf(what, sizeof(what), "token %s: module", label);
	kos_cf_check_file(cf, kos_cf_line(config_setting_get_member(g, "module")), what, module);
	if (strncmp(pin, "file:", 5) == 0) {
		char *abs = resolve_path(cf->file, pin + 5);

		snprintf(what, sizeof(what), "token %s: pin", label);
		kos_cf_check_file(cf, kos_cf_line(config_setting_get_member(g, "pin")), what, abs);
		if (abs != NULL) {
			t->pin = malloc(strlen(abs) + 6);
			if (t->pin != NULL)
				sprintf(t->pin, "file:%s", abs);
			free(abs);
		}
	} else {
		t->pin = kos_strdup(pin);
	}
	if (t->module == NULL || t->uri == NULL || t->pin == NULL)
		cf->oom = true;
}

static int take_tokens(kos_cf *cf, const config_setting_t *s, const char *path,
		       const struct kos_cf_key *k, void *base)
{
	kos_config *conf = base;
	const config_setting_t *g;
	unsigned i, n;
	unsigned before = cf->count;

	(void)path;
	(void)k;
	if (config_setting_type(s) != CONFIG_TYPE_LIST) {
		kos_cf_problem(cf, kos_cf_line(s),
			       "tokens: must be a list ( { name = ...; ... }, ... )");
		return -1;
	}
	n = (unsigned)config_setting_length(s);
	if (n > KOS_CONFIG_MAX_TOKENS) {
		kos_cf_problem(cf, kos_cf_line(s), "tokens: more than %d", KOS_CONFIG_MAX_TOKENS);
		return -1;
	}
	conf->tokens = calloc(n ? n : 1, sizeof(*conf->tokens));
	if (conf->tokens == NULL) {
		cf->oom = true;
		return -1;
	}
	for (i = 0; (g = config_setting_get_elem(s, i)) != NULL; i++)
		parse_token(cf, g, conf);
	return cf->count == before ? kos_cf_line(s) : -1;
}

static int take_env(kos_cf *cf, const config_setting_t *s, const char *path,
		    const struct kos_cf_key *k, void *base)
{
	kos_config *conf = base;
	const config_setting_t *m;
	unsigned i, n;
	unsigned before = cf->count;

	(void)path;
	(void)k;
	if (config_setting_type(s) != CONFIG_TYPE_GROUP) {
		kos_cf_problem(cf, kos_cf_line(s),
			       "environment: must be a group { NAME = \"value\"; ... }");
		return -1;
	}
	n = (unsigned)config_setting_length(s);
	if (n > KOS_CONFIG_MAX_ENV) {
		kos_cf_problem(cf, kos_cf_line(s), "environment: more than %d variables",
			       KOS_CONFIG_MAX_ENV);
		return -1;
	}
	conf->env = calloc(n ? n : 1, sizeof(*conf->env));
	if (conf->env == NULL) {
		cf->oom = true;
		return -1;
	}
	for (i = 0; (m = config_setting_get_elem(s, i)) != NULL; i++) {
		const char *name = config_setting_name(m), *v;
		struct kos_config_env *e = &conf->env[conf->n_env];
		int line = kos_cf_line(m);

		if (!env_name_ok(name)) {
			kos_cf_problem(cf, line, "environment: '%s' is not a variable name", name);
			continue;
		}
		if (config_setting_type(m) != CONFIG_TYPE_STRING) {
			kos_cf_problem(cf, line, "environment: %s: must be a string", name);
			continue;
		}
		v = config_setting_get_string(m);
		if (v == NULL || strlen(v) > KOS_CONFIG_MAX_VALUE) {
			kos_cf_problem(cf, line, "environment: %s: longer than %d characters", name,
				       KOS_CONFIG_MAX_VALUE);
			continue;
		}
		e->name = kos_strdup(name);
		/* Only an explicit ./ or ../ marks a path: other values (log levels,
		 * host names, bare file names) are the module's business. */
		if (strncmp(v, "./", 2) == 0 || strncmp(v, "../", 3) == 0)
			e->value = resolve_path(cf->file, v);
		else
			e->value = kos_strdup(v);
		conf->n_env++;
		if (e->name == NULL || e->value == NULL)
			cf->oom = true;
	}
	return cf->count == before ? kos_cf_line(s) : -1;
}

/* listen.tcp: "HOST:PORT" or "[IPV6]:PORT"; the host is kept without
 * brackets. A host name is allowed (kosd resolves it at start). */
static int take_tcp(kos_cf *cf, const config_setting_t *m, const char *path,
		    const struct kos_cf_key *k, void *base)
{
	kos_config *conf = base;
	const char *v, *colon, *host;
	size_t hlen;
	char *end = NULL;
	unsigned long port;
	int line = kos_cf_line(m);

	(void)path;
	(void)k;
	v = config_setting_type(m) == CONFIG_TYPE_STRING ? config_setting_get_string(m) : NULL;
	if (v == NULL || strlen(v) > 300) {
		kos_cf_problem(cf, line, "listen: tcp: must be a string \"HOST:PORT\"");
		return -1;
	}
	host = v;
	if (v[0] == '[') {
		const char *rb = strchr(v, ']');

		colon = rb != NULL && rb[1] == ':' ? rb + 1 : NULL;
		host = v + 1;
		hlen = rb != NULL ? (size_t)(rb - host) : 0;
	} else {
		colon = strrchr(v, ':');
		hlen = colon != NULL ? (size_t)(colon - v) : 0;
		/* an unbracketed IPv6 address is ambiguous */
		if (colon != NULL && memchr(v, ':', hlen) != NULL)
			colon = NULL;
	}
	if (colon == NULL || hlen == 0) {
		kos_cf_problem(cf, line,
			       "listen: tcp: must be \"HOST:PORT\" (\"127.0.0.1:8443\", "
			       "\"[::1]:8443\")");
		return -1;
	}
	if (colon[1] < '0' || colon[1] > '9' ||
	    (port = strtoul(colon + 1, &end, 10), *end != '\0') || port < 1 || port > 65535) {
		kos_cf_problem(cf, line, "listen: tcp: the port must be within 1..65535");
		return -1;
	}
	free(conf->listen_tcp_host);
	conf->listen_tcp_host = malloc(hlen + 1);
	if (conf->listen_tcp_host == NULL) {
		cf->oom = true;
		return -1;
	}
	memcpy(conf->listen_tcp_host, host, hlen);
	conf->listen_tcp_host[hlen] = '\0';
	conf->listen.tcp_port = (unsigned)port;
	return line;
}

/* A path (resolved against kos.conf's directory) into the char * at k->off. */
static int take_path(kos_cf *cf, const config_setting_t *s, const char *path,
		     const struct kos_cf_key *k, void *base)
{
	char **out = (char **)(void *)((char *)base + k->off);
	unsigned before = cf->count;

	free(*out);
	*out = NULL;
	string_setting(cf, s, path, false, out);
	return cf->count == before ? kos_cf_line(s) : -1;
}

/* A path like take_path() naming a file kos reads (TLS files, the policy,
 * the JWKS): with cf->check_files it must be readable now. */
static int take_file(kos_cf *cf, const config_setting_t *s, const char *path,
		     const struct kos_cf_key *k, void *base)
{
	int line = take_path(cf, s, path, k, base);

	if (line > 0)
		kos_cf_check_file(cf, line, path, *(char **)(void *)((char *)base + k->off));
	return line;
}

/* store: a path resolved like take_path(), or a store URI (resolve()). */
static int take_store(kos_cf *cf, const config_setting_t *s, const char *path,
		      const struct kos_cf_key *k, void *base)
{
	kos_config *conf = base;
	unsigned before = cf->count;

	(void)k;
	string_setting(cf, s, path, true, &conf->store);
	return cf->count == before ? kos_cf_line(s) : -1;
}

static int take_unix(kos_cf *cf, const config_setting_t *s, const char *path,
		     const struct kos_cf_key *k, void *base)
{
	kos_config *conf = base;
	int line = take_path(cf, s, path, k, base);

	if (conf->listen_unix != NULL && strlen(conf->listen_unix) > KOS_LISTEN_SUN_PATH_MAX) {
		kos_cf_problem(cf, line,
			       "%s: the socket path is longer than %d characters once made "
			       "absolute",
			       path, KOS_LISTEN_SUN_PATH_MAX);
		free(conf->listen_unix);
		conf->listen_unix = NULL;
		return -1;
	}
	return line;
}

static int take_unix_mode(kos_cf *cf, const config_setting_t *s, const char *path,
			  const struct kos_cf_key *k, void *base)
{
	kos_config *conf = base;
	int line = kos_cf_line(s);
	const char *str;
	char *end = NULL;
	unsigned long mode;

	(void)k;
	str = config_setting_type(s) == CONFIG_TYPE_STRING ? config_setting_get_string(s) : NULL;
	/* a string: libconfig reads 0660 as decimal 660 */
	if (str == NULL || str[0] != '0' || strlen(str) > 4 ||
	    (mode = strtoul(str, &end, 8), *end != '\0') || mode > 0777) {
		kos_cf_problem(cf, line, "%s: must be an octal mode string such as \"0660\"", path);
		return -1;
	}
	if (mode & 0002) {
		kos_cf_problem(cf, line, "%s: must not let others write (connect)", path);
		return -1;
	}
	conf->listen.unix_mode = (unsigned)mode;
	return line;
}

/* listen.ledger: "durable" (an answer leaves only once its ledger entry and
 * observations are committed), "synced" (and fsynced) or "batched"
 * (written every 100 ms). */
static int take_ledger_mode(kos_cf *cf, const config_setting_t *s, const char *path,
			    const struct kos_cf_key *k, void *base)
{
	kos_config *conf = base;
	int line = kos_cf_line(s);
	const char *str;

	(void)k;
	str = config_setting_type(s) == CONFIG_TYPE_STRING ? config_setting_get_string(s) : NULL;
	conf->listen.ledger_batched = false;
	conf->listen.ledger_synced = false;
	if (str != NULL && strcmp(str, "durable") == 0) {
		;
	} else if (str != NULL && strcmp(str, "synced") == 0) {
		conf->listen.ledger_synced = true;
	} else if (str != NULL && strcmp(str, "batched") == 0) {
		conf->listen.ledger_batched = true;
	} else {
		kos_cf_problem(cf, line, "%s: must be \"durable\", \"synced\" or \"batched\"",
			       path);
		return -1;
	}
	return line;
}

#define C(f)	 offsetof(struct kos_config, f)
#define CSIZE(f) sizeof(((struct kos_config *)NULL)->f)
#define PATH_KEY(n, f, fl, why)                                                                    \
	{                                                                                          \
		.name = (n), .kind = KOS_CF_KIND_FN, .flags = (fl), .fn = take_file, .off = C(f),  \
		.missing = (why)                                                                   \
	}

/* listen.tls: the server's certificate and key and the client CA. Their
 * contents are checked by kosd at start, where an unreadable file is named. */
static const struct kos_cf_key tls_keys[] = {
    PATH_KEY("cert", tls_cert, KOS_CF_REQUIRED, NULL),
    PATH_KEY("key", tls_key, KOS_CF_REQUIRED, NULL),
    PATH_KEY("client_ca", tls_client_ca, KOS_CF_REQUIRED, NULL),
    KOS_CF_END,
};

/* Members of listen that take part in its cross-checks. */
enum { L_NONE = 0, L_PER_PEER, L_COUNT };

static const struct kos_cf_key listen_keys[] = {
    {.name = "unix", .kind = KOS_CF_KIND_FN, .fn = take_unix, .off = C(listen_unix)},
    KOS_CF_FN("unix_mode", take_unix_mode, 0, L_NONE),
    KOS_CF_INT("max_connections", C(listen.max_connections), CSIZE(listen.max_connections), 1,
	       65536, 0, L_NONE),
    KOS_CF_INT("max_connections_per_peer", C(listen.max_connections_per_peer),
	       CSIZE(listen.max_connections_per_peer), 1, 65536, 0, L_PER_PEER),
    KOS_CF_INT("max_anon_body", C(listen.max_anon_body), CSIZE(listen.max_anon_body), 1024,
	       KOS_LISTEN_MAX_DATA_BODY, 0, L_NONE),
    KOS_CF_INT("max_body", C(listen.max_body), CSIZE(listen.max_body), 1024,
	       KOS_LISTEN_MAX_DATA_BODY, 0, L_NONE),
    KOS_CF_INT("max_data_body", C(listen.max_data_body), CSIZE(listen.max_data_body), 1024,
	       KOS_LISTEN_MAX_DATA_BODY, 0, L_NONE),
    KOS_CF_DUR_RANGE("timeout", C(listen.timeout), KOS_USEC_PER_SEC, 3600 * KOS_USEC_PER_SEC, 0,
		     L_NONE),
    KOS_CF_INT("workers", C(listen.workers), CSIZE(listen.workers), 0, KOS_LISTEN_MAX_WORKERS, 0,
	       L_NONE),
    KOS_CF_FN("ledger", take_ledger_mode, 0, L_NONE),
    KOS_CF_FN("tcp", take_tcp, 0, L_NONE),
    KOS_CF_GROUP("tls", tls_keys, L_NONE),
    KOS_CF_END,
};

static int take_listen(kos_cf *cf, const config_setting_t *s, const char *path,
		       const struct kos_cf_key *k, void *base)
{
	kos_config *conf = base;
	kos_listen_config *l = &conf->listen;
	const config_setting_t *tcp, *tls;
	int lines[L_COUNT] = {0};
	unsigned before = cf->count;

	(void)k;
	if (config_setting_type(s) != CONFIG_TYPE_GROUP) {
		kos_cf_problem(cf, kos_cf_line(s),
			       "listen: must be a group { unix = \"kosd.sock\"; ... }");
		return -1;
	}
	kos_cf_walk(cf, s, path, listen_keys, conf, lines);
	tcp = config_setting_get_member(s, "tcp");
	tls = config_setting_get_member(s, "tls");
	if (l->max_body > l->max_data_body)
		kos_cf_problem(cf, kos_cf_line(s),
			       "listen: max_body must not exceed max_data_body");
	/* one peer must not be able to hold every connection */
	if (lines[L_PER_PEER] == 0)
		l->max_connections_per_peer = l->max_connections - l->max_connections / 4;
	else if (lines[L_PER_PEER] > 0 && l->max_connections_per_peer > l->max_connections)
		kos_cf_problem(cf, lines[L_PER_PEER],
			       "listen: max_connections_per_peer must not exceed max_connections "
			       "(%u)",
			       l->max_connections);
	/* kosd speaks plain HTTP only where the kernel names the peer (the
	 * Unix socket): over TCP the client certificate is the channel's
	 * authentication (DESIGN.md 3, step 1) */
	if (tcp != NULL && tls == NULL)
		kos_cf_problem(cf, kos_cf_line(tcp),
			       "listen: tcp: needs a tls group (kosd serves TCP with TLS 1.3 and "
			       "client certificates only)");
	if (tls != NULL && tcp == NULL)
		kos_cf_problem(cf, kos_cf_line(tls),
			       "listen: tls: no tcp listener to use it (add tcp = \"HOST:PORT\")");
	return cf->count == before ? kos_cf_line(s) : -1;
}

/* kms: this file configures a KMS front (kosd --role kms), which verifies
 * grants with the CA's public keys alone: jwks names the JWKS document
 * "kosctl ca jwks" prints. */
static const struct kos_cf_key kms_keys[] = {
    PATH_KEY("jwks", kms_jwks, KOS_CF_REQUIRED, " (the CA's public keys, from kosctl ca jwks)"),
    KOS_CF_END,
};

/* A front's address: "unix:PATH" (made absolute against kos.conf's
 * directory) or "https://HOST:PORT" with nothing after the port. NULL after
 * reporting why. */
static char *front_address(kos_cf *cf, int line, const char *v)
{
	char *abs, *out;

	if (strlen(v) > KOS_FRONT_ADDRESS_MAX || strpbrk(v, " \t\r\n\"'\\") != NULL) {
		kos_cf_problem(cf, line,
			       "kms_fronts: address: at most %d characters, no blanks or quotes",
			       KOS_FRONT_ADDRESS_MAX);
		return NULL;
	}
	if (strncmp(v, "unix:", 5) == 0 && v[5] != '\0') {
		abs = resolve_path(cf->file, v + 5);
		if (abs == NULL) {
			cf->oom = true;
			return NULL;
		}
		if (strlen(abs) > KOS_LISTEN_SUN_PATH_MAX) {
			kos_cf_problem(cf, line,
				       "kms_fronts: address: the socket path is longer than %d "
				       "characters once made absolute",
				       KOS_LISTEN_SUN_PATH_MAX);
			free(abs);
			return NULL;
		}
		out = malloc(strlen(abs) + 6);
		if (out == NULL)
			cf->oom = true;
		else
			sprintf(out, "unix:%s", abs);
		free(abs);
		return out;
	}
	if (strncmp(v, "https://", 8) == 0) {
		const char *host = v + 8, *colon = strrchr(host, ':');
		char *end = NULL;
		unsigned long port;

		if (colon != NULL && colon > host && strchr(host, '/') == NULL &&
		    strchr(host, '@') == NULL && strchr(host, '?') == NULL &&
		    (port = strtoul(colon + 1, &end, 10), end != colon + 1 && *end == '\0') &&
		    port >= 1 && port <= 65535) {
			out = kos_strdup(v);
			if (out == NULL)
				cf->oom = true;
			return out;
		}
	}
	kos_cf_problem(cf, line,
		       "kms_fronts: address: must be \"unix:PATH\" or \"https://HOST:PORT\"");
	return NULL;
}

/* kms_fronts: which KMS front serves the shares of which KMS tokens, so
 * kosd can tell clients where to fetch each share. */
static int take_fronts(kos_cf *cf, const config_setting_t *s, const char *path,
		       const struct kos_cf_key *k, void *base)
{
	kos_config *conf = base;
	const config_setting_t *g;
	char where[32];
	unsigned i, j, n;
	unsigned before = cf->count;

	(void)path;
	(void)k;
	if (config_setting_type(s) != CONFIG_TYPE_LIST) {
		kos_cf_problem(cf, kos_cf_line(s),
			       "kms_fronts: must be a list ( { tokens = [\"kms4\"]; address = "
			       "\"unix:kms.sock\"; }, ... )");
		return -1;
	}
	n = (unsigned)config_setting_length(s);
	if (n > KOS_CONFIG_MAX_FRONTS) {
		kos_cf_problem(cf, kos_cf_line(s), "kms_fronts: more than %d",
			       KOS_CONFIG_MAX_FRONTS);
		return -1;
	}
	conf->fronts = calloc(n ? n : 1, sizeof(*conf->fronts));
	if (conf->fronts == NULL) {
		cf->oom = true;
		return -1;
	}
	for (i = 0; (g = config_setting_get_elem(s, i)) != NULL; i++) {
		struct kos_config_front *f = &conf->fronts[conf->n_fronts];
		const config_setting_t *toks, *addr;
		int line = kos_cf_line(g);
		unsigned nt;

		if (config_setting_type(g) != CONFIG_TYPE_GROUP) {
			kos_cf_problem(cf, line,
				       "kms_fronts: each entry must be a group { tokens = [...]; "
				       "address = \"...\"; }");
			continue;
		}
		snprintf(where, sizeof(where), "kms_fronts[%u]", i);
		kos_cf_refuse_unknown(cf, g, where, front_keys);
		addr = config_setting_get_member(g, "address");
		if (addr == NULL || config_setting_type(addr) != CONFIG_TYPE_STRING) {
			kos_cf_problem(cf, addr != NULL ? (int)kos_cf_line(addr) : line,
				       "kms_fronts: address: missing or not a string");
			continue;
		}
		toks = config_setting_get_member(g, "tokens");
		if (toks == NULL || config_setting_type(toks) != CONFIG_TYPE_ARRAY ||
		    config_setting_length(toks) < 1) {
			kos_cf_problem(
			    cf, toks != NULL ? (int)kos_cf_line(toks) : line,
			    "kms_fronts: tokens: must be a non-empty array of token names");
			continue;
		}
		f->line = line;
		f->address = front_address(cf, kos_cf_line(addr), config_setting_get_string(addr));
		conf->n_fronts++;
		if (f->address == NULL)
			continue;
		nt = (unsigned)config_setting_length(toks);
		f->tokens = calloc(nt, sizeof(*f->tokens));
		if (f->tokens == NULL) {
			cf->oom = true;
			continue;
		}
		for (j = 0; j < nt; j++) {
			const char *t = config_setting_get_string_elem(toks, (int)j);

			if (t == NULL || t[0] == '\0' || strlen(t) > KOS_TOKEN_NAME_MAX) {
				kos_cf_problem(cf, kos_cf_line(toks),
					       "kms_fronts: tokens: each must be a token name");
				continue;
			}
			f->tokens[f->n_tokens] = kos_strdup(t);
			if (f->tokens[f->n_tokens] == NULL)
				cf->oom = true;
			else
				f->n_tokens++;
		}
	}
	return cf->count == before ? kos_cf_line(s) : -1;
}

/* Once every setting is read (tokens may come after kms_fronts): each
 * token a front names is a KMS token of this file, named by one front only. */
static void check_fronts(kos_cf *cf, kos_config *conf)
{
	size_t i, j, k, l;

	for (i = 0; i < conf->n_fronts; i++) {
		const struct kos_config_front *f = &conf->fronts[i];

		for (j = 0; j < f->n_tokens; j++) {
			bool kms = false, twice = false;

			for (k = 0; k < conf->n_tokens; k++)
				if (conf->tokens[k].name != NULL &&
				    strcmp(conf->tokens[k].name, f->tokens[j]) == 0)
					kms = conf->tokens[k].role == KOS_TOKEN_ROLE_KMS;
			for (k = 0; k <= i; k++)
				for (l = 0; l < conf->fronts[k].n_tokens; l++)
					if ((k < i || l < j) &&
					    strcmp(conf->fronts[k].tokens[l], f->tokens[j]) == 0)
						twice = true;
			if (!kms)
				kos_cf_problem(cf, f->line,
					       "kms_fronts: token %s: not a token with role kms in "
					       "this file",
					       f->tokens[j]);
			else if (twice)
				kos_cf_problem(cf, f->line,
					       "kms_fronts: token %s: named by two fronts",
					       f->tokens[j]);
		}
	}
}

/* kos.conf holds a few settings per token: far fewer than this even with
 * KOS_CONFIG_MAX_TOKENS tokens and KOS_CONFIG_MAX_FRONTS fronts. */
static const struct kos_cf_format conf_format = {
    .a = "kos.conf",
    .the = "kos.conf",
    .sep = ": ",
    .max_bytes = KOS_CONFIG_MAX_SIZE,
    .max_settings = 4000,
    .settings_hint = "kos.conf has a few per token",
};

static const struct kos_cf_key root_keys[] = {
    KOS_CF_FN("store", take_store, 0, 0),
    PATH_KEY("policy", policy, KOS_CF_REQUIRED, " (the policy file)"),
    KOS_CF_FN("server", take_server, 0, 0),
    KOS_CF_FN("tokens", take_tokens, 0, 0),
    KOS_CF_FN("environment", take_env, 0, 0),
    KOS_CF_FN("listen", take_listen, 0, 0),
    KOS_CF_GROUP("kms", kms_keys, 0),
    KOS_CF_FN("kms_fronts", take_fronts, 0, 0),
    KOS_CF_END,
};

kos_rv kos_config_load(const char *path, kos_config **out, char **diag_out)
{
	return kos_config_load_ex(path, 0, out, diag_out);
}

kos_rv kos_config_load_ex(const char *path, unsigned flags, kos_config **out, char **diag_out)
{
	struct kos_config *conf = NULL;
	const config_setting_t *root;
	kos_cf cf;
	kos_rv rv;

	*out = NULL;
	if (diag_out != NULL)
		*diag_out = NULL;
	if (path == NULL)
		return kos_error_set(KOS_E_INVALID, "no configuration file given");
	rv = kos_cf_open(&cf, path, &conf_format);
	if (rv != KOS_OK)
		goto out;
	cf.check_files = (flags & KOS_CONFIG_CHECK_FILES) != 0;
	conf = calloc(1, sizeof(*conf));
	if (conf == NULL || (conf->path = kos_strdup(path)) == NULL) {
		rv = kos_error_set(KOS_E_NOMEM, "out of memory");
		goto out;
	}
	conf->listen.unix_mode = 0660;
	conf->listen.max_connections = 256;
	conf->listen.timeout = 30 * KOS_USEC_PER_SEC;
	conf->listen.max_body = KOS_LISTEN_DEFAULT_BODY;
	conf->listen.max_data_body = KOS_LISTEN_DEFAULT_DATA_BODY;
	conf->listen.max_anon_body = KOS_LISTEN_DEFAULT_ANON_BODY;
	conf->listen.max_connections_per_peer = 256 - 256 / 4;
	root = kos_cf_root(&cf);
	kos_cf_walk(&cf, root, "", root_keys, conf, NULL);
	check_fronts(&cf, conf);
	/* a KMS front (the kms group) keeps no state: it needs no store */
	if (conf->store == NULL && config_setting_get_member(root, "store") == NULL &&
	    config_setting_get_member(root, "kms") == NULL)
		kos_cf_problem(&cf, 1, "store: missing (the state store location)");
	if (cf.oom) {
		rv = kos_error_set(KOS_E_NOMEM, "out of memory");
		goto out;
	}
	rv = cf.count != 0 ? KOS_E_POLICY : KOS_OK;
out:
	if (rv == KOS_E_POLICY)
		rv = kos_cf_finish(&cf, diag_out);
	kos_cf_close(&cf);
	if (rv == KOS_OK) {
		*out = conf;
		kos_error_clear();
		return KOS_OK;
	}
	kos_config_free(conf);
	return rv;
}

const char *kos_config_get0_path(const kos_config *conf)
{
	return conf->path;
}

void kos_config_get_listen(const kos_config *conf, kos_listen_config *out)
{
	*out = conf->listen;
	out->unix_path = conf->listen_unix;
	out->tcp_host = conf->listen_tcp_host;
	out->tls_cert = conf->tls_cert;
	out->tls_key = conf->tls_key;
	out->tls_client_ca = conf->tls_client_ca;
}

const char *kos_config_get0_store(const kos_config *conf)
{
	return conf->store;
}

const char *kos_config_get0_policy(const kos_config *conf)
{
	return conf->policy;
}

const char *kos_config_get0_server(const kos_config *conf)
{
	return conf->server;
}

size_t kos_config_token_count(const kos_config *conf)
{
	return conf->n_tokens;
}

const char *kos_config_token_get0_name(const kos_config *conf, size_t i)
{
	return i < conf->n_tokens ? conf->tokens[i].name : NULL;
}

const char *kos_config_token_get0_module(const kos_config *conf, size_t i)
{
	return i < conf->n_tokens ? conf->tokens[i].module : NULL;
}

const char *kos_config_token_get0_uri(const kos_config *conf, size_t i)
{
	return i < conf->n_tokens ? conf->tokens[i].uri : NULL;
}

const char *kos_config_token_get0_pin(const kos_config *conf, size_t i)
{
	return i < conf->n_tokens ? conf->tokens[i].pin : NULL;
}

kos_rv kos_config_token_get_role(const kos_config *conf, size_t i, kos_token_role *role)
{
	if (i >= conf->n_tokens)
		return kos_error_set(KOS_E_RANGE, "no token #%zu", i);
	*role = conf->tokens[i].role;
	return KOS_OK;
}

kos_rv kos_config_token_find(const kos_config *conf, const char *name, size_t *i)
{
	size_t k;

	for (k = 0; k < conf->n_tokens; k++) {
		if (strcmp(conf->tokens[k].name, name) == 0) {
			*i = k;
			return KOS_OK;
		}
	}
	return kos_error_set(KOS_E_NOTFOUND, "no token called '%s' in %s", name, conf->path);
}

size_t kos_config_env_count(const kos_config *conf)
{
	return conf->n_env;
}

const char *kos_config_env_get0_name(const kos_config *conf, size_t i)
{
	return i < conf->n_env ? conf->env[i].name : NULL;
}

const char *kos_config_env_get0_value(const kos_config *conf, size_t i)
{
	return i < conf->n_env ? conf->env[i].value : NULL;
}

const char *kos_config_get0_kms_jwks(const kos_config *conf)
{
	return conf->kms_jwks;
}

const char *kos_config_kms_front(const kos_config *conf, const char *token)
{
	size_t i, j;

	if (token == NULL)
		return NULL;
	for (i = 0; i < conf->n_fronts; i++)
		for (j = 0; j < conf->fronts[i].n_tokens; j++)
			if (strcmp(conf->fronts[i].tokens[j], token) == 0)
				return conf->fronts[i].address;
	return NULL;
}
