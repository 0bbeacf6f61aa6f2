/* kosctl ca, client, credential and threat: the credential authority.
 *
 * Credentials and enrollment secrets are bearer secrets: a command that
 * takes one reads it from standard input when the argument is "-" (an
 * argument is visible to other users in the process list). Nothing here
 * prints a credential except the command that makes it. */
#include "config.h"

#include "tools/kosctl/kosctl.h"
#include "tools/common/kosjson.h"
#include "tools/common/x5t.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define JSON_FLAGS (JSON_INDENT(2) | JSON_PRESERVE_ORDER)

/* --- shared helpers --- */

static int usage_hint(const char *group, const char *sub)
{
	kosctl_err("try 'kosctl %s %s --help'", group, sub);
	return KOSCTL_USAGE;
}

/* Parses argv with opts; --help prints usage. Returns -1 to go on with the
 * command (options seen through *seen), else the exit status. */
struct opt_out {
	const char *scope, *cnf, *jti, *client, *before, *reason;
	const char *cert; /* --cert FILE: --cnf of that certificate */
};

static int parse(const char *group, const char *sub, void (*usage)(FILE *),
		 const struct option *opts, const char *shortopts, int argc, char **argv,
		 struct opt_out *o)
{
	int opt;

	memset(o, 0, sizeof(*o));
	opterr = 0;
	while ((opt = getopt_long(argc, argv, shortopts, opts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			usage(stdout);
			return KOSCTL_OK;
		case 's':
			o->scope = optarg;
			break;
		case 'c':
			o->cnf = optarg;
			break;
		case 'F':
			o->cert = optarg;
			break;
		case 'j':
			o->jti = optarg;
			break;
		case 'C':
			o->client = optarg;
			break;
		case 'b':
			o->before = optarg;
			break;
		case 'r':
			o->reason = optarg;
			break;
		case ':':
			kosctl_err("%s %s: option '%s' needs a value", group, sub,
				   argv[optind - 1]);
			return usage_hint(group, sub);
		default:
			if (optopt != 0)
				kosctl_err("%s %s: unknown option '-%c'", group, sub, optopt);
			else
				kosctl_err("%s %s: unknown option '%s'", group, sub,
					   argv[optind - 1]);
			return usage_hint(group, sub);
		}
	}
	return -1;
}

static const struct option help_only[] = {
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Exactly n positional arguments. */
static int positional(const char *group, const char *sub, int argc, char **argv, int n,
		      const char *what)
{
	if (argc - optind < n) {
		kosctl_err("%s %s: %s missing", group, sub, what);
		return usage_hint(group, sub);
	}
	if (argc - optind > n) {
		kosctl_err("%s %s: unexpected argument '%s'", group, sub, argv[optind + n]);
		return usage_hint(group, sub);
	}
	return -1;
}

static int print_json(json_t *v)
{
	return kosctl_print_json(v, JSON_FLAGS);
}

/* A secret argument, or standard input for "-" (one line; the newline is
 * dropped). *buf is what to release with kos_secret_free(*buf, *cap). */
static int secret_arg(const char *arg, const char **value, unsigned char **buf, size_t *cap)
{
	size_t len;

	*buf = NULL;
	*cap = 0;
	if (strcmp(arg, "-") != 0) {
		*value = arg;
		return KOSCTL_OK;
	}
	if (kosctl_read_all(stdin, KOS_CRED_MAX + 2, buf, &len, cap) != KOS_OK)
		return KOSCTL_FAIL;
	while (len > 0 && ((*buf)[len - 1] == '\n' || (*buf)[len - 1] == '\r'))
		(*buf)[--len] = '\0';
	*value = (const char *)*buf;
	return KOSCTL_OK;
}

/* Prints and releases the list kosd answered (NULL or not a list: an error). */
static int print_list(json_t *arr, const char *what)
{
	if (!json_is_array(arr)) {
		json_decref(arr);
		kosctl_err("%s: kosd's answer holds no list", what);
		return KOSCTL_FAIL;
	}
	return print_json(arr);
}

/* A credential on standard output, and nothing else. */
static int print_token_text(struct kosctl_ctx *ctx, const char *token)
{
	if (!ctx->json)
		return printf("%s\n", token) < 0 ? KOSCTL_FAIL : KOSCTL_OK;
	return print_json(json_pack("{s:s}", "credential", token));
}

static int print_token(struct kosctl_ctx *ctx, char *token)
{
	int rc = print_token_text(ctx, token);

	kos_cred_free(token);
	return rc;
}

/* --- ca --- */

static void ca_init_usage(FILE *f)
{
	fprintf(f, "usage: kosctl ca init\n"
		   "\n"
		   "Makes the credential authority's first key: an EC P-256 key pair inside\n"
		   "the token with role ca, never extractable. Prints its kid. Fails when the\n"
		   "CA has a key already (see 'kosctl ca rotate').\n");
}

static void ca_rotate_usage(FILE *f)
{
	fprintf(f, "usage: kosctl ca rotate\n"
		   "\n"
		   "Makes a new CA key and prints its kid; credentials are signed with it from\n"
		   "now on. The previous key stops signing but keeps verifying until every\n"
		   "credential it can have signed has expired (the policy's longest lifetime\n"
		   "plus leeway); retired keys past that are destroyed on the token.\n");
}

static int print_kid(struct kosctl_ctx *ctx, const char *kid)
{
	if (ctx->json)
		return print_json(json_pack("{s:s}", "kid", kid));
	printf("%s\n", kid);
	return KOSCTL_OK;
}

static int ca_make(struct kosctl_ctx *ctx, int argc, char **argv, bool rotate)
{
	char kid[KOS_CA_KID_LEN + 1];
	struct opt_out o;
	const char *sub = rotate ? "rotate" : "init";
	kos_rv rv;
	int rc;

	rc = parse("ca", sub, rotate ? ca_rotate_usage : ca_init_usage, help_only, ":h", argc, argv,
		   &o);
	if (rc < 0)
		rc = positional("ca", sub, argc, argv, 0, "");
	if (rc >= 0)
		return rc;
	/* ca init bootstraps the store kosd would run on: always local */
	if (rotate && kosctl_remote(ctx)) {
		json_t *ans = NULL;

		if (kosctl_call(ctx, "ca rotate", "POST", "/v1/admin/ca/rotate", json_object(),
				&ans) != KOSCTL_OK)
			return KOSCTL_FAIL;
		rc = print_kid(ctx, kosctl_jstr(ans, "kid"));
		json_decref(ans);
		return rc;
	}
	if (kosctl_need_ca(ctx, true) != KOSCTL_OK)
		return KOSCTL_FAIL;
	rv = rotate ? kos_ca_rotate(ctx->ca, kid) : kos_ca_init(ctx->ca, kid);
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, rotate ? "ca rotate" : "ca init");
		return KOSCTL_FAIL;
	}
	return print_kid(ctx, kid);
}

static int cmd_ca_init(struct kosctl_ctx *ctx, int argc, char **argv)
{
	return ca_make(ctx, argc, argv, false);
}

static int cmd_ca_rotate(struct kosctl_ctx *ctx, int argc, char **argv)
{
	return ca_make(ctx, argc, argv, true);
}

static void ca_jwks_usage(FILE *f)
{
	fprintf(f, "usage: kosctl ca jwks\n"
		   "\n"
		   "Prints the public keys that verify credentials now as a JWKS document (RFC\n"
		   "7517): kty EC, crv P-256, x, y, kid, use sig, alg ES256. Any JOSE library\n"
		   "verifies kos credentials with it.\n");
}

/* kosd serves the JWKS without a credential (it is public); a credential
 * configured is used all the same, as the client library always sends it. */
static int jwks_remote(struct kosctl_ctx *ctx)
{
	json_t *ans;
	char *text;

	if (kosctl_call(ctx, "ca jwks", "GET", "/v1/ca/jwks", NULL, &ans) != KOSCTL_OK)
		return KOSCTL_FAIL;
	/* kos_ca_jwks()'s layout, so that both print the same document */
	text = json_dumps(ans, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(ans);
	if (text == NULL) {
		kosctl_err("ca jwks: out of memory");
		return KOSCTL_FAIL;
	}
	printf("%s\n", text);
	free(text);
	return KOSCTL_OK;
}

static int cmd_ca_jwks(struct kosctl_ctx *ctx, int argc, char **argv)
{
	struct opt_out o;
	char *json = NULL;
	kos_rv rv;
	int rc;

	rc = parse("ca", "jwks", ca_jwks_usage, help_only, ":h", argc, argv, &o);
	if (rc < 0)
		rc = positional("ca", "jwks", argc, argv, 0, "");
	if (rc >= 0)
		return rc;
	if (kosctl_remote(ctx))
		return jwks_remote(ctx);
	if (kosctl_need_ca(ctx, false) != KOSCTL_OK)
		return KOSCTL_FAIL;
	rv = kos_ca_jwks(ctx->ca, &json);
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "ca jwks");
		return KOSCTL_FAIL;
	}
	printf("%s\n", json);
	kos_free(json);
	return KOSCTL_OK;
}

static void ca_list_usage(FILE *f)
{
	fprintf(f, "usage: kosctl ca list\n"
		   "\n"
		   "Lists the CA keys, oldest first: kid, state (current, retired: verifies until\n"
		   "the time shown, expired: verifies nothing), created, retired, token and\n"
		   "label.\n");
}

struct list_json {
	kos_usec now;
	json_t *arr;
};

static void ca_text(const json_t *v)
{
	printf("%-22s  %-7s  %-20s  %-20s  %-20s  %s:%s\n", kosctl_jstr(v, "kid"),
	       kosctl_jstr(v, "state"), kosctl_jstr(v, "created"), kosctl_jstr(v, "retired"),
	       kosctl_jstr(v, "verifies_until"), kosctl_jstr(v, "token"), kosctl_jstr(v, "label"));
}

/* Rows in kosd's shape (tools/common/kosjson.c): --json is the same both ways. */
static int ca_list_json(const kos_ca_key_info *k, void *arg)
{
	struct list_json *l = arg;
	json_t *v = kosj_ca_key(k, l->now);

	if (v == NULL)
		return KOS_E_NOMEM;
	if (l->arr != NULL)
		return json_array_append_new(l->arr, v) == 0 ? 0 : KOS_E_NOMEM;
	ca_text(v);
	json_decref(v);
	return 0;
}

static int cmd_ca_list(struct kosctl_ctx *ctx, int argc, char **argv)
{
	struct list_json l = {kos_now(), NULL};
	struct opt_out o;
	kos_rv rv;
	int rc;

	rc = parse("ca", "list", ca_list_usage, help_only, ":h", argc, argv, &o);
	if (rc < 0)
		rc = positional("ca", "list", argc, argv, 0, "");
	if (rc >= 0)
		return rc;
	if (kosctl_remote(ctx)) {
		json_t *ans = NULL, *v;
		size_t i;

		if (kosctl_call(ctx, "ca list", "GET", "/v1/admin/ca", NULL, &ans) != KOSCTL_OK)
			return KOSCTL_FAIL;
		if (ctx->json) {
			l.arr = json_incref(json_object_get(ans, "keys"));
			json_decref(ans);
			return print_list(l.arr, "ca list");
		}
		printf("%-22s  %-7s  %-20s  %-20s  %-20s  %s\n", "KID", "STATE", "CREATED",
		       "RETIRED", "VERIFIES UNTIL", "TOKEN:LABEL");
		json_array_foreach (json_object_get(ans, "keys"), i, v)
			ca_text(v);
		json_decref(ans);
		return KOSCTL_OK;
	}
	if (kosctl_need_ca(ctx, false) != KOSCTL_OK)
		return KOSCTL_FAIL;
	if (ctx->json) {
		l.arr = json_array();
		if (l.arr == NULL)
			return print_json(NULL);
	} else {
		printf("%-22s  %-7s  %-20s  %-20s  %-20s  %s\n", "KID", "STATE", "CREATED",
		       "RETIRED", "VERIFIES UNTIL", "TOKEN:LABEL");
	}
	rv = kos_ca_list(ctx->ca, ca_list_json, &l);
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "ca list");
		json_decref(l.arr);
		return KOSCTL_FAIL;
	}
	return l.arr != NULL ? print_json(l.arr) : KOSCTL_OK;
}

int kosctl_cmd_ca(struct kosctl_ctx *ctx, int argc, char **argv)
{
	static const struct kosctl_cmd cmds[] = {
	    {"init", cmd_ca_init, "make the first CA key inside the ca token"},
	    {"rotate", cmd_ca_rotate, "make a new CA key; the old one verifies until expiry"},
	    {"jwks", cmd_ca_jwks, "print the verifying public keys as a JWKS document"},
	    {"list", cmd_ca_list, "list the CA keys and their state"},
	    {NULL, NULL, NULL},
	};

	return kosctl_dispatch(ctx, "ca", cmds, argc, argv);
}

/* --- client --- */

static int check_client(const char *sub, const char *name)
{
	if (kos_principal_name_valid(name))
		return -1;
	kosctl_err("client %s: invalid client name '%.80s' (1 to 64 of A-Z a-z 0-9 . _ @ -, not "
		   "starting with . or -)",
		   sub, name);
	return usage_hint("client", sub);
}

/* Prints a new secret: on standard output alone (for scripts), the note on
 * standard error. */
/* A one-time enrollment secret of client name: {client, secret, expires}
 * with --json, else the secret on standard output and a note on standard
 * error. expires is NULL for kosd's answer to client add, which names none. */
static int show_secret(struct kosctl_ctx *ctx, const char *name, const char *secret,
		       const char *expires)
{
	int rc = KOSCTL_OK;

	if (ctx->json && expires != NULL) {
		rc = print_json(json_pack("{s:s, s:s, s:s}", "client", name, "secret", secret,
					  "expires", expires));
	} else if (ctx->json) {
		rc = print_json(json_pack("{s:s, s:s}", "client", name, "secret", secret));
	} else {
		if (expires != NULL)
			fprintf(stderr,
				"kosctl: the one-time enrollment secret of client %s (shown once; "
				"valid until %s; 'kosctl credential enroll -' exchanges it):\n",
				name, expires);
		else
			fprintf(stderr,
				"kosctl: the one-time enrollment secret of client %s (shown once; "
				"'kosctl --server ... credential enroll -' exchanges it):\n",
				name);
		if (printf("%s\n", secret) < 0)
			rc = KOSCTL_FAIL;
	}
	return rc;
}

static int print_secret(struct kosctl_ctx *ctx, const char *name, char *secret)
{
	kos_ca_client_info info;
	char expires[32] = "?";
	int rc;

	if (kos_ca_client_get(ctx->ca, name, &info) == KOS_OK)
		kosj_iso_time(info.secret_expires, expires, sizeof(expires), true);
	rc = show_secret(ctx, name, secret, expires);
	explicit_bzero(secret, KOS_CRED_SECRET_LEN + 1);
	return rc;
}

/* A secret through kosd: POST path with body (taken); kosd's answer holds
 * the secret, and its expiry when expires. */
static int secret_remote(struct kosctl_ctx *ctx, const char *what, const char *path, json_t *body,
			 const char *name, bool expires)
{
	json_t *ans = NULL;
	const char *secret;
	int rc;

	if (kosctl_call(ctx, what, "POST", path, body, &ans) != KOSCTL_OK)
		return KOSCTL_FAIL;
	secret = json_string_value(json_object_get(ans, "secret"));
	if (secret == NULL) {
		kosctl_err("%s: kosd's answer holds no secret", what);
		rc = KOSCTL_FAIL;
	} else {
		rc = show_secret(ctx, name, secret,
				 expires ? kosctl_jstr(ans, "expires") : NULL);
	}
	fflush(stdout);
	kosctl_json_wipe(ans, "secret");
	json_decref(ans);
	return rc;
}

static void client_add_usage(FILE *f)
{
	fprintf(f, "usage: kosctl client add NAME --scope SCOPE\n"
		   "\n"
		   "Registers a client with the widest scope it may ever hold (space-separated\n"
		   "ACTION:RESOURCE items, '*' globs in resources; kos-credential(5)) and prints\n"
		   "its one-time enrollment secret, once, on standard output. Only the secret's\n"
		   "SHA-256 is kept; it expires after the policy's credentials.enrollment.\n"
		   "Key actions: encrypt, decrypt, rewrap (re-encrypt under the current\n"
		   "version, without decrypting), key, sign, pubkey, certify; also service,\n"
		   "validate and admin (e.g. \"rewrap:archive-* admin:keys\").\n"
		   "\n"
		   "options:\n"
		   "  -s, --scope SCOPE  the client's scope (required)\n"
		   "  -h, --help         show this help\n");
}

/* client add through kosd: POST /v1/admin/clients. */
static int client_add_remote(struct kosctl_ctx *ctx, const char *name, const char *scope)
{
	return secret_remote(ctx, "client add", "/v1/admin/clients",
			     json_pack("{s:s, s:s}", "name", name, "scope", scope), name, false);
}

static int cmd_client_add(struct kosctl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"scope", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	char secret[KOS_CRED_SECRET_LEN + 1];
	struct opt_out o;
	kos_rv rv;
	int rc;

	rc = parse("client", "add", client_add_usage, opts, ":s:h", argc, argv, &o);
	if (rc < 0)
		rc = positional("client", "add", argc, argv, 1, "NAME");
	if (rc < 0)
		rc = check_client("add", argv[optind]);
	if (rc >= 0)
		return rc;
	if (o.scope == NULL) {
		kosctl_err("client add: --scope is required");
		return usage_hint("client", "add");
	}
	if (kos_scope_validate(o.scope) != KOS_OK) {
		kosctl_err("client add: %s", kos_last_error());
		return usage_hint("client", "add");
	}
	if (kosctl_remote(ctx))
		return client_add_remote(ctx, argv[optind], o.scope);
	if (kosctl_need_ca(ctx, false) != KOSCTL_OK)
		return KOSCTL_FAIL;
	rv = kos_ca_client_add(ctx->ca, argv[optind], o.scope, secret);
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "client add");
		return KOSCTL_FAIL;
	}
	return print_secret(ctx, argv[optind], secret);
}

static void client_secret_usage(FILE *f)
{
	fprintf(f, "usage: kosctl client secret NAME\n"
		   "\n"
		   "Prints a new one-time enrollment secret for a registered client (after its\n"
		   "refresh chain ended, or its credentials were revoked). An unused earlier\n"
		   "secret stops working.\n");
}

/* kosd answers {client, secret, expires}, the shape --json prints here. */
static int client_secret_remote(struct kosctl_ctx *ctx, const char *name)
{
	char path[64 + KOS_KEY_NAME_MAX];

	snprintf(path, sizeof(path), "/v1/admin/clients/%s/secret", name);
	return secret_remote(ctx, "client secret", path, json_object(), name, true);
}

static int cmd_client_secret(struct kosctl_ctx *ctx, int argc, char **argv)
{
	char secret[KOS_CRED_SECRET_LEN + 1];
	struct opt_out o;
	kos_rv rv;
	int rc;

	rc = parse("client", "secret", client_secret_usage, help_only, ":h", argc, argv, &o);
	if (rc < 0)
		rc = positional("client", "secret", argc, argv, 1, "NAME");
	if (rc < 0)
		rc = check_client("secret", argv[optind]);
	if (rc >= 0)
		return rc;
	if (kosctl_remote(ctx))
		return client_secret_remote(ctx, argv[optind]);
	if (kosctl_need_ca(ctx, false) != KOSCTL_OK)
		return KOSCTL_FAIL;
	rv = kos_ca_client_secret(ctx->ca, argv[optind], secret);
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "client secret");
		return KOSCTL_FAIL;
	}
	return print_secret(ctx, argv[optind], secret);
}

static json_t *client_json(const kos_ca_client_info *c)
{
	return kosj_client_info(c);
}

static void client_list_usage(FILE *f)
{
	fprintf(f, "usage: kosctl client list\n"
		   "\n"
		   "Lists registered clients in name order: name, enabled or disabled, created,\n"
		   "when an unused enrollment secret expires ('-': none pending), and scope.\n");
}

static void client_line_json(const json_t *o)
{
	printf("%-24s  %-8s  %-20s  %-20s  %s\n", kosctl_jstr(o, "client"),
	       kosctl_jbool(o, "disabled") ? "disabled" : "enabled", kosctl_jstr(o, "created"),
	       kosctl_jstr(o, "secret_expires"), kosctl_jstr(o, "scope"));
}

static int client_line(const kos_ca_client_info *c, void *arg)
{
	json_t *o = client_json(c);

	(void)arg;
	if (o == NULL)
		return KOS_E_NOMEM;
	client_line_json(o);
	json_decref(o);
	return 0;
}

/* GET /v1/admin/clients: {"clients": [what client_json() makes]} */
static int client_list_remote(struct kosctl_ctx *ctx)
{
	json_t *ans, *arr, *o;
	size_t i;

	if (kosctl_call(ctx, "client list", "GET", "/v1/admin/clients", NULL, &ans) != KOSCTL_OK)
		return KOSCTL_FAIL;
	arr = json_object_get(ans, "clients");
	if (!json_is_array(arr)) {
		json_decref(ans);
		kosctl_err("client list: kosd's answer has no client list");
		return KOSCTL_FAIL;
	}
	if (ctx->json) {
		json_incref(arr);
		json_decref(ans);
		return print_json(arr);
	}
	printf("%-24s  %-8s  %-20s  %-20s  %s\n", "CLIENT", "STATE", "CREATED", "SECRET EXPIRES",
	       "SCOPE");
	json_array_foreach(arr, i, o)
		client_line_json(o);
	json_decref(ans);
	return KOSCTL_OK;
}

static int client_json_line(const kos_ca_client_info *c, void *arg)
{
	return json_array_append_new(arg, client_json(c)) == 0 ? 0 : KOS_E_NOMEM;
}

static int cmd_client_list(struct kosctl_ctx *ctx, int argc, char **argv)
{
	struct opt_out o;
	json_t *arr = NULL;
	kos_rv rv;
	int rc;

	rc = parse("client", "list", client_list_usage, help_only, ":h", argc, argv, &o);
	if (rc < 0)
		rc = positional("client", "list", argc, argv, 0, "");
	if (rc >= 0)
		return rc;
	if (kosctl_remote(ctx))
		return client_list_remote(ctx);
	if (kosctl_need_ca(ctx, false) != KOSCTL_OK)
		return KOSCTL_FAIL;
	if (ctx->json) {
		arr = json_array();
		if (arr == NULL)
			return print_json(NULL);
		rv = kos_ca_client_list(ctx->ca, client_json_line, arr);
	} else {
		printf("%-24s  %-8s  %-20s  %-20s  %s\n", "CLIENT", "STATE", "CREATED",
		       "SECRET EXPIRES", "SCOPE");
		rv = kos_ca_client_list(ctx->ca, client_line, NULL);
	}
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "client list");
		json_decref(arr);
		return KOSCTL_FAIL;
	}
	return arr != NULL ? print_json(arr) : KOSCTL_OK;
}

static void client_show_usage(FILE *f)
{
	fprintf(f, "usage: kosctl client show NAME\n"
		   "\n"
		   "Shows a registered client: scope, created, enabled or disabled, and the\n"
		   "expiry of an unused enrollment secret. Exit status 1 for an unknown one.\n");
}

static int cmd_client_show(struct kosctl_ctx *ctx, int argc, char **argv)
{
	kos_ca_client_info info;
	char created[32], pending[32];
	struct opt_out o;
	kos_rv rv;
	int rc;

	rc = parse("client", "show", client_show_usage, help_only, ":h", argc, argv, &o);
	if (rc < 0)
		rc = positional("client", "show", argc, argv, 1, "NAME");
	if (rc < 0)
		rc = check_client("show", argv[optind]);
	if (rc >= 0)
		return rc;
	if (kosctl_remote(ctx)) {
		char path[64 + KOS_KEY_NAME_MAX];
		json_t *ans = NULL;

		snprintf(path, sizeof(path), "/v1/admin/clients/%s", argv[optind]);
		if (kosctl_call(ctx, "client show", "GET", path, NULL, &ans) != KOSCTL_OK)
			return KOSCTL_FAIL;
		if (ctx->json)
			return print_json(ans);
		printf("%-16s %s\n", "client:", kosctl_jstr(ans, "client"));
		printf("%-16s %s\n", "scope:", kosctl_jstr(ans, "scope"));
		printf("%-16s %s\n", "created:", kosctl_jstr(ans, "created"));
		printf("%-16s %s\n", "state:", kosctl_jbool(ans, "disabled") ? "disabled" : "enabled");
		printf("%-16s %s\n", "secret expires:", kosctl_jstr(ans, "secret_expires"));
		json_decref(ans);
		return KOSCTL_OK;
	}
	if (kosctl_need_ca(ctx, false) != KOSCTL_OK)
		return KOSCTL_FAIL;
	rv = kos_ca_client_get(ctx->ca, argv[optind], &info);
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "client show");
		return KOSCTL_FAIL;
	}
	if (ctx->json)
		return print_json(client_json(&info));
	kosj_iso_time(info.created, created, sizeof(created), true);
	kosj_iso_time(info.secret_expires, pending, sizeof(pending), true);
	printf("%-16s %s\n", "client:", info.name);
	printf("%-16s %s\n", "scope:", info.scope);
	printf("%-16s %s\n", "created:", created);
	printf("%-16s %s\n", "state:", info.disabled ? "disabled" : "enabled");
	printf("%-16s %s\n", "secret expires:", pending);
	return KOSCTL_OK;
}

static void client_disable_usage(FILE *f)
{
	fprintf(f, "usage: kosctl client disable NAME\n"
		   "       kosctl client enable NAME\n"
		   "\n"
		   "A disabled client gets no credential: no issuance, enrollment or refresh.\n"
		   "Credentials it holds stay valid until they expire; revoke them with\n"
		   "'kosctl credential revoke --client NAME'.\n");
}

static int client_enable(struct kosctl_ctx *ctx, int argc, char **argv, int disabled)
{
	const char *sub = disabled ? "disable" : "enable";
	struct opt_out o;
	kos_rv rv;
	int rc;

	rc = parse("client", sub, client_disable_usage, help_only, ":h", argc, argv, &o);
	if (rc < 0)
		rc = positional("client", sub, argc, argv, 1, "NAME");
	if (rc < 0)
		rc = check_client(sub, argv[optind]);
	if (rc >= 0)
		return rc;
	if (kosctl_remote(ctx)) {
		char path[64 + KOS_KEY_NAME_MAX];

		snprintf(path, sizeof(path), "/v1/admin/clients/%s/%s", argv[optind], sub);
		return kosctl_call(ctx, disabled ? "client disable" : "client enable", "POST", path,
				   json_object(), NULL);
	}
	if (kosctl_need_ca(ctx, false) != KOSCTL_OK)
		return KOSCTL_FAIL;
	rv = kos_ca_client_set_disabled(ctx->ca, argv[optind], disabled);
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, disabled ? "client disable" : "client enable");
		return KOSCTL_FAIL;
	}
	return KOSCTL_OK;
}

static int cmd_client_disable(struct kosctl_ctx *ctx, int argc, char **argv)
{
	return client_enable(ctx, argc, argv, 1);
}

static int cmd_client_enable(struct kosctl_ctx *ctx, int argc, char **argv)
{
	return client_enable(ctx, argc, argv, 0);
}

int kosctl_cmd_client(struct kosctl_ctx *ctx, int argc, char **argv)
{
	static const struct kosctl_cmd cmds[] = {
	    {"add", cmd_client_add, "register a client; prints its one-time enrollment secret"},
	    {"secret", cmd_client_secret, "print a new one-time enrollment secret"},
	    {"list", cmd_client_list, "list registered clients"},
	    {"show", cmd_client_show, "show a registered client"},
	    {"disable", cmd_client_disable, "issue a client no more credentials"},
	    {"enable", cmd_client_enable, "issue a disabled client credentials again"},
	    {NULL, NULL, NULL},
	};

	return kosctl_dispatch(ctx, "client", cmds, argc, argv);
}

/* --- credential --- */

static void enroll_usage(FILE *f)
{
	fprintf(f, "usage: kosctl credential enroll SECRET|-\n"
		   "\n"
		   "Exchanges a one-time enrollment secret ('-': read from standard input) for\n"
		   "the client's first credential, printed on standard output. A secret used a\n"
		   "second time is refused and recorded as an integrity failure of its client.\n"
		   "Through kosd (--server) the credential is written to the credential file\n"
		   "(--credential-file or KOS_CREDENTIAL_FILE; mode 0600) instead.\n");
}

/* Where a credential kosd gave went, on standard error. */
static void saved_note(struct kosctl_ctx *ctx, const char *what)
{
	char expires[32];

	kosj_iso_time(kos_client_credential_expires(ctx->client), expires, sizeof(expires), true);
	fprintf(stderr, "kosctl: %s; the credential is in %s (expires %s)\n", what, ctx->cred_file,
		expires);
}

/* credential enroll through kosd, into ctx->cred_file (0600, atomically). */
static int enroll_remote(struct kosctl_ctx *ctx, const char *secret)
{
	kos_rv rv;

	if (kosctl_need_client(ctx, true) != KOSCTL_OK)
		return KOSCTL_FAIL;
	rv = kos_client_enroll(ctx->client, secret, ctx->cred_file);
	if (rv != KOS_OK) {
		kosctl_err_remote(ctx, rv, "credential enroll");
		return KOSCTL_FAIL;
	}
	saved_note(ctx, "enrolled");
	return KOSCTL_OK;
}

static int cmd_enroll(struct kosctl_ctx *ctx, int argc, char **argv)
{
	unsigned char *buf = NULL;
	const char *secret;
	char *token = NULL;
	struct opt_out o;
	size_t cap = 0;
	kos_rv rv;
	int rc;

	rc = parse("credential", "enroll", enroll_usage, help_only, ":h", argc, argv, &o);
	if (rc < 0)
		rc = positional("credential", "enroll", argc, argv, 1, "SECRET");
	if (rc >= 0)
		return rc;
	if (kosctl_remote(ctx) && ctx->cred_file == NULL)
		return kosctl_not_remote("credential enroll",
					 "through kosd the credential goes to a file: give "
					 "--credential-file FILE (or KOS_CREDENTIAL_FILE)");
	if (secret_arg(argv[optind], &secret, &buf, &cap) != KOSCTL_OK)
		return KOSCTL_FAIL;
	if (kosctl_remote(ctx)) {
		rc = enroll_remote(ctx, secret);
		kos_secret_free(buf, cap);
		return rc;
	}
	if (kosctl_need_ca(ctx, true) != KOSCTL_OK) {
		kos_secret_free(buf, cap);
		return KOSCTL_FAIL;
	}
	rv = kos_cred_enroll(ctx->ca, secret, &token);
	kos_secret_free(buf, cap);
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "credential enroll");
		return KOSCTL_FAIL;
	}
	return print_token(ctx, token);
}

/* --cert FILE stands for --cnf with that certificate's thumbprint, kept in
 * buf. Returns -1 to go on, else the exit status. */
static int cert_cnf(const char *sub, struct opt_out *o, char buf[KOS_CRED_X5T_LEN + 1])
{
	char why[600];

	if (o->cert == NULL)
		return -1;
	if (o->cnf != NULL) {
		kosctl_err("credential %s: give --cnf or --cert, not both", sub);
		return usage_hint("credential", sub);
	}
	if (tools_x5t_of_file(o->cert, buf, why, sizeof(why)) != 0) {
		kosctl_err("credential %s: %s", sub, why);
		return KOSCTL_FAIL;
	}
	o->cnf = buf;
	return -1;
}

static const struct option issue_opts[] = {
    {"scope", required_argument, NULL, 's'},
    {"cnf", required_argument, NULL, 'c'},
    {"cert", required_argument, NULL, 'F'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void issue_usage(FILE *f)
{
	fprintf(f, "usage: kosctl credential issue CLIENT [--scope SCOPE] [--cnf X5T|--cert FILE]\n"
		   "\n"
		   "Issues a credential for a registered client directly and prints it. Its\n"
		   "lifetime follows the client's tier and the threat level; tier deny gets none.\n"
		   "\n"
		   "options:\n"
		   "  -s, --scope SCOPE  within the client's scope (default: all of it)\n"
		   "  -c, --cnf X5T      bind it to the TLS client certificate whose SHA-256\n"
		   "                     thumbprint, base64url, is X5T (cnf x5t#S256)\n"
		   "      --cert FILE    bind it to the certificate in FILE (PEM)\n"
		   "  -h, --help         show this help\n");
}

static int cmd_issue(struct kosctl_ctx *ctx, int argc, char **argv)
{
	char x5t[KOS_CRED_X5T_LEN + 1];
	struct opt_out o;
	char *token = NULL;
	kos_rv rv;
	int rc;

	rc = parse("credential", "issue", issue_usage, issue_opts, ":s:c:h", argc, argv, &o);
	if (rc < 0)
		rc = positional("credential", "issue", argc, argv, 1, "CLIENT");
	if (rc < 0)
		rc = cert_cnf("issue", &o, x5t);
	if (rc >= 0)
		return rc;
	if (!kos_principal_name_valid(argv[optind])) {
		kosctl_err("credential issue: invalid client name '%.80s'", argv[optind]);
		return usage_hint("credential", "issue");
	}
	if (kosctl_remote(ctx)) {
		json_t *body, *ans = NULL;

		body = json_pack("{s:s}", "client", argv[optind]);
		if (body != NULL && o.scope != NULL)
			json_object_set_new(body, "scope", json_string(o.scope));
		if (body != NULL && o.cnf != NULL)
			json_object_set_new(body, "cnf", json_string(o.cnf));
		if (body == NULL)
			return print_json(NULL);
		if (kosctl_call(ctx, "credential issue", "POST", "/v1/admin/credentials", body,
				&ans) != KOSCTL_OK)
			return KOSCTL_FAIL;
		rc = print_token_text(ctx, kosctl_jstr(ans, "credential"));
		kosctl_json_wipe(ans, "credential");
		json_decref(ans);
		return rc;
	}
	if (kosctl_need_ca(ctx, true) != KOSCTL_OK)
		return KOSCTL_FAIL;
	rv = kos_cred_issue(ctx->ca, argv[optind], o.scope, o.cnf, &token);
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "credential issue");
		return rv == KOS_E_INVALID ? usage_hint("credential", "issue") : KOSCTL_FAIL;
	}
	return print_token(ctx, token);
}

static void refresh_usage(FILE *f)
{
	fprintf(f, "usage: kosctl credential refresh TOKEN|- [--scope SCOPE] [--cnf X5T|--cert FILE]\n"
		   "       kosctl --server ADDRESS credential refresh [TOKEN|-] [--scope SCOPE]\n"
		   "\n"
		   "Through kosd without TOKEN, refreshes the credential kosctl uses: written\n"
		   "back to the credential file, or printed when it came from KOS_CREDENTIAL\n"
		   "or when --scope narrows it.\n"
		   "\n"
		   "Exchanges a valid credential ('-': read from standard input) for a fresh one\n"
		   "with the same or a narrower scope, printed on standard output. Refused when\n"
		   "the credential is invalid, expired or revoked, the scope is wider, the\n"
		   "client's tier is deny, or the refresh chain is older than the policy's\n"
		   "credentials.max_chain (then the client enrolls again).\n"
		   "\n"
		   "options:\n"
		   "  -s, --scope SCOPE  a narrower scope\n"
		   "  -c, --cnf X5T      the certificate presented, for a bound credential\n"
		   "      --cert FILE    the same, as the certificate in FILE (PEM)\n"
		   "  -h, --help         show this help\n");
}

/* credential refresh through kosd: of arg (a token or "-") when given,
 * else of the credential in use. */
static int refresh_remote(struct kosctl_ctx *ctx, const char *arg, const char *scope)
{
	unsigned char *buf = NULL;
	const char *token = NULL, *fresh;
	json_t *ans = NULL;
	size_t cap = 0;
	kos_rv rv;
	int rc;

	if (arg != NULL && secret_arg(arg, &token, &buf, &cap) != KOSCTL_OK)
		return KOSCTL_FAIL;
	rc = kosctl_need_client(ctx, arg != NULL);
	if (rc == KOSCTL_OK && token != NULL) {
		rv = kos_client_set_credential(ctx->client, token);
		if (rv != KOS_OK) {
			kosctl_err_rv(rv, "credential refresh");
			rc = KOSCTL_FAIL;
		}
	}
	kos_secret_free(buf, cap);
	if (rc != KOSCTL_OK)
		return rc;
	if (token == NULL && scope == NULL && ctx->cred_file != NULL) {
		rv = kos_client_refresh(ctx->client);
		if (rv != KOS_OK) {
			kosctl_err_remote(ctx, rv, "credential refresh");
			return KOSCTL_FAIL;
		}
		saved_note(ctx, "refreshed");
		return KOSCTL_OK;
	}
	if (kosctl_call(ctx, "credential refresh", "POST", "/v1/credentials/refresh",
			scope != NULL ? json_pack("{s:s}", "scope", scope) : json_object(),
			&ans) != KOSCTL_OK)
		return KOSCTL_FAIL;
	fresh = json_string_value(json_object_get(ans, "credential"));
	if (fresh == NULL) {
		kosctl_err("credential refresh: kosd's answer holds no credential");
		rc = KOSCTL_FAIL;
	} else if (ctx->json) {
		rc = print_json(json_pack("{s:s}", "credential", fresh));
	} else if (printf("%s\n", fresh) < 0) {
		rc = KOSCTL_FAIL;
	}
	fflush(stdout);
	kosctl_json_wipe(ans, "credential");
	json_decref(ans);
	return rc;
}

static int cmd_refresh(struct kosctl_ctx *ctx, int argc, char **argv)
{
	unsigned char *buf = NULL;
	kos_cred_reason why;
	const char *token;
	char *fresh = NULL;
	char x5t[KOS_CRED_X5T_LEN + 1];
	struct opt_out o;
	size_t cap = 0;
	kos_rv rv;
	int rc;

	rc = parse("credential", "refresh", refresh_usage, issue_opts, ":s:c:h", argc, argv, &o);
	if (rc < 0 && kosctl_remote(ctx)) {
		if (o.cnf != NULL || o.cert != NULL)
			return kosctl_not_remote("credential refresh",
						 "through kosd the binding comes from the TLS "
						 "connection: no --cnf or --cert");
		rc = positional("credential", "refresh", argc, argv, argc - optind > 0 ? 1 : 0,
				"TOKEN");
		if (rc >= 0)
			return rc;
		return refresh_remote(ctx, optind < argc ? argv[optind] : NULL, o.scope);
	}
	if (rc < 0)
		rc = positional("credential", "refresh", argc, argv, 1, "TOKEN");
	if (rc < 0)
		rc = cert_cnf("refresh", &o, x5t);
	if (rc >= 0)
		return rc;
	if (secret_arg(argv[optind], &token, &buf, &cap) != KOSCTL_OK)
		return KOSCTL_FAIL;
	if (kosctl_need_ca(ctx, true) != KOSCTL_OK) {
		kos_secret_free(buf, cap);
		return KOSCTL_FAIL;
	}
	rv = kos_cred_refresh(ctx->ca, token, o.cnf, o.scope, &fresh, &why);
	kos_secret_free(buf, cap);
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "credential refresh");
		return KOSCTL_FAIL;
	}
	return print_token(ctx, fresh);
}

static void verify_usage(FILE *f)
{
	fprintf(f, "usage: kosctl credential verify TOKEN|- [--cnf X5T|--cert FILE]\n"
		   "\n"
		   "Verifies a credential ('-': read from standard input) as every kos front-end\n"
		   "does. Valid: exit status 0 and its claims as JSON on standard output.\n"
		   "Refused: exit status 1 and the reason (invalid credential, expired, not yet\n"
		   "valid, wrong issuer, wrong audience, revoked, certificate mismatch) on\n"
		   "standard error; with --json also {\"valid\": false, \"reason\": ...} on\n"
		   "standard output.\n"
		   "\n"
		   "options:\n"
		   "  -c, --cnf X5T  the thumbprint of the certificate presented\n"
		   "      --cert FILE  the certificate presented (PEM)\n"
		   "  -h, --help     show this help\n");
}

static json_t *claims_json(const kos_cred_claims *c)
{
	json_t *v = json_pack(
	    "{s:b, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:s, s:s}", "valid", 1, "iss", c->iss,
	    "sub", c->sub, "aud", c->aud, "iat", (json_int_t)(c->iat / KOS_USEC_PER_SEC), "nbf",
	    (json_int_t)(c->nbf / KOS_USEC_PER_SEC), "exp", (json_int_t)(c->exp / KOS_USEC_PER_SEC),
	    "auth_time", (json_int_t)(c->auth_time / KOS_USEC_PER_SEC), "jti", c->jti, "scope",
	    c->scope, "kid", c->kid);

	if (v != NULL && c->x5t[0] != '\0' &&
	    json_object_set_new(v, "cnf", json_pack("{s:s}", "x5t#S256", c->x5t)) != 0) {
		json_decref(v);
		return NULL;
	}
	return v;
}

static int cmd_verify(struct kosctl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"cnf", required_argument, NULL, 'c'},
	    {"cert", required_argument, NULL, 'F'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	char x5t[KOS_CRED_X5T_LEN + 1];
	unsigned char *buf = NULL;
	kos_cred_reason why = KOS_CRED_ERROR;
	kos_cred_claims *c;
	const char *token;
	struct opt_out o;
	size_t cap = 0;
	kos_rv rv;
	int rc;

	rc = parse("credential", "verify", verify_usage, opts, ":c:h", argc, argv, &o);
	if (rc < 0)
		rc = positional("credential", "verify", argc, argv, 1, "TOKEN");
	if (rc < 0)
		rc = cert_cnf("verify", &o, x5t);
	if (rc >= 0)
		return rc;
	if (secret_arg(argv[optind], &token, &buf, &cap) != KOSCTL_OK)
		return KOSCTL_FAIL;
	c = malloc(sizeof(*c));
	if (c == NULL || kosctl_need_ca(ctx, false) != KOSCTL_OK) {
		free(c);
		kos_secret_free(buf, cap);
		return KOSCTL_FAIL;
	}
	rv = kos_cred_verify(ctx->ca, token, o.cnf, c, &why);
	kos_secret_free(buf, cap);
	if (rv == KOS_OK) {
		rc = print_json(claims_json(c));
	} else {
		kosctl_err_rv(rv, "credential verify");
		if (ctx->json)
			(void)print_json(json_pack("{s:b, s:s, s:s}", "valid", 0, "reason",
						   kos_cred_reason_name(why), "detail",
						   kos_last_error()));
		rc = rv == KOS_E_INVALID ? KOSCTL_USAGE : KOSCTL_FAIL;
	}
	free(c);
	return rc;
}

static void revoke_usage(FILE *f)
{
	fprintf(f, "usage: kosctl credential revoke --jti JTI | --client NAME | --before TIME\n"
		   "\n"
		   "Revokes one credential (its jti), every credential of a client issued up to\n"
		   "now, or every credential issued at or before TIME (now, -2h, an ISO 8601\n"
		   "UTC time such as 2026-12-07T10:00:00Z, or @EPOCHSECONDS; not in the\n"
		   "future). Every process sharing the state store refuses them from\n"
		   "its next verification on. A revocation is dropped once every credential it\n"
		   "covers has expired.\n"
		   "\n"
		   "options:\n"
		   "  -j, --jti JTI       one credential\n"
		   "  -C, --client NAME   a client's credentials\n"
		   "  -b, --before TIME   credentials issued at or before TIME\n"
		   "  -h, --help          show this help\n");
}

static int cmd_revoke(struct kosctl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"jti", required_argument, NULL, 'j'},
	    {"client", required_argument, NULL, 'C'},
	    {"before", required_argument, NULL, 'b'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct opt_out o;
	kos_usec before = 0;
	kos_rv rv;
	int rc, n;

	rc = parse("credential", "revoke", revoke_usage, opts, ":j:C:b:h", argc, argv, &o);
	if (rc < 0)
		rc = positional("credential", "revoke", argc, argv, 0, "");
	if (rc >= 0)
		return rc;
	n = (o.jti != NULL) + (o.client != NULL) + (o.before != NULL);
	if (n != 1) {
		kosctl_err("credential revoke: give exactly one of --jti, --client, --before");
		return usage_hint("credential", "revoke");
	}
	if (o.before != NULL && kosctl_parse_time(o.before, &before) != KOS_OK) {
		kosctl_err("credential revoke: bad time '%s' (now, -2h, 2026-12-07T10:00:00Z, "
			   "@EPOCHSECONDS)",
			   o.before);
		return usage_hint("credential", "revoke");
	}
	if (kosctl_remote(ctx)) {
		json_t *body;

		if (o.jti != NULL)
			body = json_pack("{s:s}", "jti", o.jti);
		else if (o.client != NULL)
			body = json_pack("{s:s}", "client", o.client);
		else
			body =
			    json_pack("{s:I}", "before", (json_int_t)(before / KOS_USEC_PER_SEC));
		return kosctl_call(ctx, "credential revoke", "POST", "/v1/admin/revoke", body,
				   NULL);
	}
	if (kosctl_need_ca(ctx, false) != KOSCTL_OK)
		return KOSCTL_FAIL;
	if (o.jti != NULL)
		rv = kos_cred_revoke_jti(ctx->ca, o.jti);
	else if (o.client != NULL)
		rv = kos_cred_revoke_client(ctx->ca, o.client);
	else
		rv = kos_cred_revoke_before(ctx->ca, before);
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "credential revoke");
		return rv == KOS_E_INVALID ? usage_hint("credential", "revoke") : KOSCTL_FAIL;
	}
	return KOSCTL_OK;
}

static void revocations_usage(FILE *f)
{
	fprintf(f, "usage: kosctl credential revocations\n"
		   "\n"
		   "Lists the revocations in force: kind (jti, client, before), what (the jti or\n"
		   "client), issued up to (client, before), made, and when it will be pruned.\n");
}

static void revocation_text(const json_t *v)
{
	const char *value = kosctl_jstr(v, "value");

	printf("%-7s %-24s %-20s %-20s %s\n", kosctl_jstr(v, "kind"), value[0] != '\0' ? value : "-",
	       kosctl_jstr(v, "issued_up_to"), kosctl_jstr(v, "created"), kosctl_jstr(v, "expires"));
}

/* One row in kosd's shape (tools/common/kosjson.c), so --json is the same both ways. */
static int revocation_line(const kos_revocation_info *r, void *arg)
{
	json_t *arr = arg, *v = kosj_revocation_info(r);

	if (v == NULL)
		return KOS_E_NOMEM;
	if (arr != NULL)
		return json_array_append_new(arr, v) == 0 ? 0 : KOS_E_NOMEM;
	revocation_text(v);
	json_decref(v);
	return 0;
}

static int cmd_revocations(struct kosctl_ctx *ctx, int argc, char **argv)
{
	struct opt_out o;
	json_t *arr = NULL;
	kos_rv rv;
	int rc;

	rc = parse("credential", "revocations", revocations_usage, help_only, ":h", argc, argv, &o);
	if (rc < 0)
		rc = positional("credential", "revocations", argc, argv, 0, "");
	if (rc >= 0)
		return rc;
	if (kosctl_remote(ctx)) {
		json_t *ans = NULL, *v;
		size_t i;

		if (kosctl_call(ctx, "credential revocations", "GET", "/v1/admin/revocations", NULL,
				&ans) != KOSCTL_OK)
			return KOSCTL_FAIL;
		if (ctx->json) {
			arr = json_incref(json_object_get(ans, "revocations"));
			json_decref(ans);
			return print_list(arr, "credential revocations");
		}
		printf("%-7s %-24s %-20s %-20s %s\n", "KIND", "WHAT", "ISSUED UP TO", "MADE",
		       "PRUNED AFTER");
		json_array_foreach (json_object_get(ans, "revocations"), i, v)
			revocation_text(v);
		json_decref(ans);
		return KOSCTL_OK;
	}
	if (kosctl_need_ca(ctx, false) != KOSCTL_OK)
		return KOSCTL_FAIL;
	if (ctx->json) {
		arr = json_array();
		if (arr == NULL)
			return print_json(NULL);
	} else {
		printf("%-7s %-24s %-20s %-20s %s\n", "KIND", "WHAT", "ISSUED UP TO", "MADE",
		       "PRUNED AFTER");
	}
	rv = kos_cred_revocations(ctx->ca, revocation_line, arr);
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "credential revocations");
		json_decref(arr);
		return KOSCTL_FAIL;
	}
	return arr != NULL ? print_json(arr) : KOSCTL_OK;
}

static void prune_usage(FILE *f)
{
	fprintf(f, "usage: kosctl credential prune\n"
		   "\n"
		   "Removes revocations whose credentials have all expired, and enrollment\n"
		   "secrets that were used or expired; prints how many went. Revoking prunes\n"
		   "too.\n");
}

static int cmd_prune(struct kosctl_ctx *ctx, int argc, char **argv)
{
	struct opt_out o;
	uint64_t removed = 0;
	kos_rv rv;
	int rc;

	rc = parse("credential", "prune", prune_usage, help_only, ":h", argc, argv, &o);
	if (rc < 0)
		rc = positional("credential", "prune", argc, argv, 0, "");
	if (rc >= 0)
		return rc;
	if (kosctl_remote(ctx)) {
		json_t *ans = NULL;

		if (kosctl_call(ctx, "credential prune", "POST", "/v1/admin/revocations/prune",
				json_object(), &ans) != KOSCTL_OK)
			return KOSCTL_FAIL;
		removed = (uint64_t)kosctl_jint(ans, "removed");
		json_decref(ans);
	} else {
		if (kosctl_need_ca(ctx, false) != KOSCTL_OK)
			return KOSCTL_FAIL;
		rv = kos_cred_prune(ctx->ca, &removed);
		if (rv != KOS_OK) {
			kosctl_err_rv(rv, "credential prune");
			return KOSCTL_FAIL;
		}
	}
	if (ctx->json)
		return print_json(json_pack("{s:I}", "removed", (json_int_t)removed));
	printf("removed %llu\n", (unsigned long long)removed);
	return KOSCTL_OK;
}

int kosctl_cmd_credential(struct kosctl_ctx *ctx, int argc, char **argv)
{
	static const struct kosctl_cmd cmds[] = {
	    {"enroll", cmd_enroll, "exchange a one-time secret for the first credential"},
	    {"issue", cmd_issue, "issue a credential for a registered client"},
	    {"refresh", cmd_refresh, "exchange a valid credential for a fresh one"},
	    {"verify", cmd_verify, "verify a credential; print its claims or the reason"},
	    {"revoke", cmd_revoke, "revoke by jti, by client, or by issue time"},
	    {"revocations", cmd_revocations, "list the revocations in force"},
	    {"prune", cmd_prune, "drop expired revocations and spent secrets"},
	    {NULL, NULL, NULL},
	};

	return kosctl_dispatch(ctx, "credential", cmds, argc, argv);
}

/* --- threat --- */

/* Prints the threat level (taking o, kosj_threat_info()'s JSON). */
static int print_threat_json(struct kosctl_ctx *ctx, json_t *o)
{
	const char *reason;

	if (ctx->json || o == NULL)
		return print_json(o);
	reason = kosctl_jstr(o, "reason");
	printf("%-8s %s\n", "level:", kosctl_jstr(o, "level"));
	printf("%-8s %s\n", "since:", kosctl_jstr(o, "since"));
	printf("%-8s %s\n", "set by:", kosctl_jstr(o, "set_by"));
	printf("%-8s %s\n", "reason:", reason[0] != '\0' ? reason : "-");
	json_decref(o);
	return KOSCTL_OK;
}

static int print_threat(struct kosctl_ctx *ctx, const kos_threat_info *t)
{
	return print_threat_json(ctx, kosj_threat_info(t));
}

static void threat_set_usage(FILE *f)
{
	fprintf(f, "usage: kosctl threat set LEVEL [--reason TEXT]\n"
		   "\n"
		   "Sets the threat level (normal, elevated, critical) for every process sharing\n"
		   "the state store: at elevated and critical, tier thresholds rise by the\n"
		   "level's offset and credential lifetimes shrink by its lifetime_factor\n"
		   "(kos-policy(5)).\n"
		   "\n"
		   "options:\n"
		   "  -r, --reason TEXT  why (shown by 'kosctl threat show'; at most 255 bytes)\n"
		   "  -h, --help         show this help\n");
}

static int cmd_threat_set(struct kosctl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"reason", required_argument, NULL, 'r'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	kos_threat level;
	kos_threat_info info;
	struct opt_out o;
	kos_rv rv;
	int rc;

	rc = parse("threat", "set", threat_set_usage, opts, ":r:h", argc, argv, &o);
	if (rc < 0)
		rc = positional("threat", "set", argc, argv, 1, "LEVEL");
	if (rc >= 0)
		return rc;
	if (kos_threat_parse(argv[optind], &level) != KOS_OK) {
		kosctl_err("threat set: %s", kos_last_error());
		return usage_hint("threat", "set");
	}
	if (kosctl_remote(ctx)) {
		json_t *body = json_pack("{s:s}", "level", kos_threat_name(level));

		if (body != NULL && o.reason != NULL &&
		    json_object_set_new(body, "reason", json_string(o.reason)) != 0) {
			json_decref(body);
			body = NULL;
		}
		if (kosctl_call(ctx, "threat set", "POST", "/v1/admin/threat", body, NULL) !=
		    KOSCTL_OK)
			return KOSCTL_FAIL;
		printf("%-8s %s\n", "level:", kos_threat_name(level));
		return KOSCTL_OK;
	}
	if (kosctl_need_ca(ctx, false) != KOSCTL_OK)
		return KOSCTL_FAIL;
	rv = kos_threat_set(ctx->ca, level, o.reason);
	if (rv == KOS_OK)
		rv = kos_threat_get(ctx->ca, &info);
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "threat set");
		return rv == KOS_E_INVALID ? usage_hint("threat", "set") : KOSCTL_FAIL;
	}
	return print_threat(ctx, &info);
}

static void threat_show_usage(FILE *f)
{
	fprintf(f, "usage: kosctl threat show\n"
		   "\n"
		   "Shows the threat level, since when, whether an administrator or the\n"
		   "automatic check set it, and why.\n");
}

static int cmd_threat_show(struct kosctl_ctx *ctx, int argc, char **argv)
{
	kos_threat_info info;
	struct opt_out o;
	kos_rv rv;
	int rc;

	rc = parse("threat", "show", threat_show_usage, help_only, ":h", argc, argv, &o);
	if (rc < 0)
		rc = positional("threat", "show", argc, argv, 0, "");
	if (rc >= 0)
		return rc;
	if (kosctl_remote(ctx)) {
		json_t *ans;

		if (kosctl_call(ctx, "threat show", "GET", "/v1/admin/threat", NULL, &ans) !=
		    KOSCTL_OK)
			return KOSCTL_FAIL;
		return print_threat_json(ctx, ans);
	}
	if (kosctl_need_ca(ctx, false) != KOSCTL_OK)
		return KOSCTL_FAIL;
	rv = kos_threat_get(ctx->ca, &info);
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "threat show");
		return KOSCTL_FAIL;
	}
	return print_threat(ctx, &info);
}

static void threat_check_usage(FILE *f)
{
	fprintf(f, "usage: kosctl threat check\n"
		   "\n"
		   "Runs the automatic check now (issuance runs it at most once a minute): when\n"
		   "the share of known clients flagged anomalous reaches the policy's\n"
		   "threat.elevated.anomalous_share or threat.critical.anomalous_share, with at\n"
		   "least threat.min_clients clients, the level is raised and the reason\n"
		   "recorded. It never lowers the level. Prints the level after the check.\n");
}

static int cmd_threat_check(struct kosctl_ctx *ctx, int argc, char **argv)
{
	kos_threat_info info;
	struct opt_out o;
	int raised = 0;
	kos_rv rv;
	int rc;

	rc = parse("threat", "check", threat_check_usage, help_only, ":h", argc, argv, &o);
	if (rc < 0)
		rc = positional("threat", "check", argc, argv, 0, "");
	if (rc >= 0)
		return rc;
	if (kosctl_remote(ctx)) {
		json_t *ans = NULL;

		if (kosctl_call(ctx, "threat check", "POST", "/v1/admin/threat/check", json_object(),
				&ans) != KOSCTL_OK)
			return KOSCTL_FAIL;
		raised = kosctl_jbool(ans, "raised");
		/* what is printed is the level, as the local check prints it */
		json_object_del(ans, "raised");
		if (raised && !ctx->json)
			fprintf(stderr, "kosctl: threat level raised to %s\n",
				kosctl_jstr(ans, "level"));
		return print_threat_json(ctx, ans);
	}
	if (kosctl_need_ca(ctx, false) != KOSCTL_OK)
		return KOSCTL_FAIL;
	rv = kos_threat_evaluate(ctx->ca, &info, &raised);
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "threat check");
		return KOSCTL_FAIL;
	}
	if (raised && !ctx->json)
		fprintf(stderr, "kosctl: threat level raised to %s\n", kos_threat_name(info.level));
	return print_threat(ctx, &info);
}

int kosctl_cmd_threat(struct kosctl_ctx *ctx, int argc, char **argv)
{
	static const struct kosctl_cmd cmds[] = {
	    {"set", cmd_threat_set, "set the threat level, with a reason"},
	    {"show", cmd_threat_show, "show the threat level and why it was set"},
	    {"check", cmd_threat_check, "raise the level if too many clients are anomalous"},
	    {NULL, NULL, NULL},
	};

	return kosctl_dispatch(ctx, "threat", cmds, argc, argv);
}
