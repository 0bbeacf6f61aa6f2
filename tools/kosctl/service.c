/* kosctl service: register ephemeral services, issue and validate their
 * tokens, rotate their seeds (kos-service(7)).
 *
 * A token is a bearer credential: "token" prints it on standard output and
 * nowhere else, and "validate -" reads it from standard input so it need not
 * appear in the process list. --at TIME moves the clock (tests, and "would
 * this token still be valid in an hour?"). */
#include "config.h"

#include "tools/kosctl/kosctl.h"
#include "tools/common/kosjson.h"

#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define JSON_FLAGS (JSON_INDENT(2))

enum {
	OPT_OPS = 0x100,
	OPT_OP,
	OPT_WINDOW,
	OPT_TTL,
	OPT_AT,
	OPT_BREACH,
	OPT_DUE,
	OPT_INTERVAL,
};

/* What the options of every subcommand can set. */
struct opts {
	const char *ops, *op;
	kos_usec window, ttl, at, interval;
	bool have_at, breach, due;
};

static int usage_hint(const char *sub)
{
	kosctl_err("try 'kosctl service %s --help'", sub);
	return KOSCTL_USAGE;
}

static int bad_option(const char *sub, int opt, char **argv)
{
	const char *arg = argv[optind - 1];

	if (opt == ':')
		kosctl_err("service %s: option '%s' needs a value", sub, arg);
	else if (optopt != 0 && optopt < 0x100)
		kosctl_err("service %s: unknown option '-%c'", sub, optopt);
	else
		kosctl_err("service %s: unknown option '%s'", sub, arg);
	return usage_hint(sub);
}

static kos_usec fixed_clock(void *arg)
{
	return *(const kos_usec *)arg;
}

/* Parses the options named in allowed (a list of OPT_* ending with 0);
 * *done is true when the command is over with the returned status. */
static int parse_options(const char *sub, void (*usage)(FILE *), const int *allowed, int argc,
			 char **argv, struct opts *o, bool *done)
{
	static const struct option all[] = {
	    {"ops", required_argument, NULL, OPT_OPS},
	    {"op", required_argument, NULL, OPT_OP},
	    {"window", required_argument, NULL, OPT_WINDOW},
	    {"ttl", required_argument, NULL, OPT_TTL},
	    {"at", required_argument, NULL, OPT_AT},
	    {"breach", no_argument, NULL, OPT_BREACH},
	    {"due", no_argument, NULL, OPT_DUE},
	    {"interval", required_argument, NULL, OPT_INTERVAL},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct option mine[16]; /* all of the above fit */
	size_t n = 0, i, j;
	int opt;

	for (i = 0; all[i].name != NULL; i++) {
		bool ok = all[i].val == 'h';

		for (j = 0; !ok && allowed[j] != 0; j++)
			ok = allowed[j] == all[i].val;
		if (ok)
			mine[n++] = all[i];
	}
	memset(&mine[n], 0, sizeof(mine[n]));
	memset(o, 0, sizeof(*o));
	*done = true;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", mine, NULL)) != -1) {
		switch (opt) {
		case OPT_OPS:
			o->ops = optarg;
			break;
		case OPT_OP:
			o->op = optarg;
			break;
		case OPT_WINDOW:
		case OPT_TTL:
		case OPT_INTERVAL: {
			kos_usec d;

			if (kos_duration_parse(optarg, &d) != KOS_OK || d <= 0) {
				kosctl_err("service %s: bad duration '%s' (e.g. 90s, 5m, 12h, 7d)",
					   sub, optarg);
				return usage_hint(sub);
			}
			if (opt == OPT_WINDOW)
				o->window = d;
			else if (opt == OPT_TTL)
				o->ttl = d;
			else
				o->interval = d;
			break;
		}
		case OPT_AT:
			if (kosctl_parse_time(optarg, &o->at) != KOS_OK) {
				kosctl_err(
				    "service %s: bad time '%s' (now, +3d, -2h, 2026-12-07T10:00:00Z, "
				    "@EPOCHSECONDS)",
				    sub, optarg);
				return usage_hint(sub);
			}
			o->have_at = true;
			break;
		case OPT_BREACH:
			o->breach = true;
			break;
		case OPT_DUE:
			o->due = true;
			break;
		case 'h':
			usage(stdout);
			return KOSCTL_OK;
		default:
			return bad_option(sub, opt, argv);
		}
	}
	*done = false;
	return KOSCTL_OK;
}

/* Exactly one operand, a valid service name. */
static int one_name(const char *sub, int argc, char **argv, const char **name)
{
	if (argc - optind != 1) {
		kosctl_err(argc - optind < 1 ? "service %s: which service?"
					     : "service %s: one service at a time",
			   sub);
		return usage_hint(sub);
	}
	*name = argv[optind];
	if (!kos_service_name_valid(*name)) {
		kosctl_err(
		    "service %s: invalid service name '%.80s' (1 to %d of A-Z a-z 0-9 . _ -, "
		    "not starting with . or -)",
		    sub, *name, KOS_SERVICE_NAME_MAX);
		return usage_hint(sub);
	}
	return KOSCTL_OK;
}

static int check_ops(const char *sub, const char *ops)
{
	if (ops == NULL) {
		kosctl_err("service %s: --ops is required", sub);
		return usage_hint(sub);
	}
	if (!kos_service_ops_valid(ops)) {
		kosctl_err("service %s: invalid operation list '%.80s' (1 to %d distinct names of "
			   "A-Z a-z 0-9 . _ : -, comma-separated, no spaces)",
			   sub, ops, KOS_SERVICE_OPS_COUNT);
		return usage_hint(sub);
	}
	return KOSCTL_OK;
}

/* Loads the orchestrator and, with --at, points its clock at o->at. */
static int load(struct kosctl_ctx *ctx, struct opts *o)
{
	if (kosctl_need_services(ctx) != KOSCTL_OK)
		return KOSCTL_FAIL;
	kos_services_set_clock(ctx->services, o->have_at ? fixed_clock : NULL,
			       o->have_at ? &o->at : NULL);
	return KOSCTL_OK;
}

static int print_json(json_t *v)
{
	return kosctl_print_json(v, JSON_FLAGS);
}



/* --- register / ops / remove ------------------------------------------------------ */

/* A change to service name: through kosd (POST /v1/admin/services, or
 * /v1/admin/services/NAME/SUB with SUB given, with body, which is taken), or
 * here with local(). Both take the same pipeline and answer alike, so the
 * caller prints what changed either way. */
static int change(struct kosctl_ctx *ctx, struct opts *o, const char *what, const char *sub,
		  const char *name, json_t *body,
		  kos_rv (*local)(kos_services *sv, const char *name, const char *ops))
{
	char path[64 + KOS_SERVICE_NAME_MAX];
	kos_rv rv;

	if (kosctl_remote(ctx)) {
		if (sub != NULL)
			snprintf(path, sizeof(path), "/v1/admin/services/%s/%s", name, sub);
		else
			snprintf(path, sizeof(path), "/v1/admin/services");
		return kosctl_call(ctx, what, "POST", path, body, NULL);
	}
	json_decref(body);
	if (load(ctx, o) != KOSCTL_OK)
		return KOSCTL_FAIL;
	rv = local(ctx->services, name, o->ops);
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, what);
		return KOSCTL_FAIL;
	}
	return KOSCTL_OK;
}

static kos_rv remove_local(kos_services *sv, const char *name, const char *ops)
{
	(void)ops;
	return kos_service_remove(sv, name);
}

static void register_usage(FILE *f)
{
	fprintf(f,
		"usage: kosctl service register NAME --ops OP[,OP...]\n"
		"\n"
		"Registers a service allowed the operations listed, with a fresh random\n"
		"32-byte seed. The seed is encrypted inside the ca token (by the key\n"
		"'%s', made there on first use) and never stored in plain form.\n"
		"\n"
		"options:\n"
		"  --ops LIST  comma-separated operations (A-Z a-z 0-9 . _ : -)\n"
		"  -h, --help  show this help\n",
		KOS_SERVICE_WRAP_LABEL);
}

static int cmd_register(struct kosctl_ctx *ctx, int argc, char **argv)
{
	static const int allowed[] = {OPT_OPS, 0};
	const char *name;
	struct opts o;
	bool done;
	int rc;

	rc = parse_options("register", register_usage, allowed, argc, argv, &o, &done);
	if (done)
		return rc;
	if (one_name("register", argc, argv, &name) != KOSCTL_OK ||
	    check_ops("register", o.ops) != KOSCTL_OK)
		return KOSCTL_USAGE;
	if (change(ctx, &o, "service register", NULL, name,
		   json_pack("{s:s, s:s}", "name", name, "ops", o.ops),
		   kos_service_register) != KOSCTL_OK)
		return KOSCTL_FAIL;
	printf("service %s registered: operations %s, seed version 1\n", name, o.ops);
	return KOSCTL_OK;
}

static void ops_usage(FILE *f)
{
	fprintf(f, "usage: kosctl service ops NAME --ops OP[,OP...]\n"
		   "\n"
		   "Replaces a service's operations. Tokens for an operation taken away stop\n"
		   "validating at once; the seed stays.\n"
		   "\n"
		   "options:\n"
		   "  --ops LIST  comma-separated operations\n"
		   "  -h, --help  show this help\n");
}

static int cmd_ops(struct kosctl_ctx *ctx, int argc, char **argv)
{
	static const int allowed[] = {OPT_OPS, 0};
	const char *name;
	struct opts o;
	bool done;
	int rc;

	rc = parse_options("ops", ops_usage, allowed, argc, argv, &o, &done);
	if (done)
		return rc;
	if (one_name("ops", argc, argv, &name) != KOSCTL_OK || check_ops("ops", o.ops) != KOSCTL_OK)
		return KOSCTL_USAGE;
	if (change(ctx, &o, "service ops", "ops", name, json_pack("{s:s}", "ops", o.ops),
		   kos_service_set_ops) != KOSCTL_OK)
		return KOSCTL_FAIL;
	printf("service %s: operations %s\n", name, o.ops);
	return KOSCTL_OK;
}

static void remove_usage(FILE *f)
{
	fprintf(f, "usage: kosctl service remove NAME\n"
		   "\n"
		   "Forgets a service and its wrapped seed; its tokens stop validating.\n"
		   "\n"
		   "options:\n"
		   "  -h, --help  show this help\n");
}

static int cmd_remove(struct kosctl_ctx *ctx, int argc, char **argv)
{
	static const int allowed[] = {0};
	const char *name;
	struct opts o;
	bool done;
	int rc;

	rc = parse_options("remove", remove_usage, allowed, argc, argv, &o, &done);
	if (done)
		return rc;
	if (one_name("remove", argc, argv, &name) != KOSCTL_OK)
		return KOSCTL_USAGE;
	if (change(ctx, &o, "service remove", "remove", name, json_object(), remove_local) !=
	    KOSCTL_OK)
		return KOSCTL_FAIL;
	printf("service %s removed\n", name);
	return KOSCTL_OK;
}

/* --- list / show -------------------------------------------------------------------- */

static void list_usage(FILE *f)
{
	fprintf(f, "usage: kosctl [--json] service list\n"
		   "\n"
		   "Lists the services: name, seed version, when the seed was made (UTC) and\n"
		   "the operations. Never shows a seed.\n"
		   "\n"
		   "options:\n"
		   "  -h, --help  show this help\n");
}

struct list_state {
	json_t *arr;
	size_t n;
	bool oom;
};

static int list_one(const kos_service_info *info, void *arg)
{
	struct list_state *ls = arg;
	char rotated[32];

	ls->n++;
	if (ls->arr != NULL) {
		if (json_array_append_new(ls->arr, kosj_service_info(info)) != 0) {
			ls->oom = true;
			return 1;
		}
		return 0;
	}
	kosj_iso_time(info->rotated, rotated, sizeof(rotated), false);
	printf("%-24s %7lu  %-20s  %s\n", info->name, (unsigned long)info->seed_version, rotated,
	       info->ops);
	return 0;
}

/* kosd answers {"services": [...]} in kosctl's shape (tools/common/kosjson.c). */
static int list_remote(struct kosctl_ctx *ctx)
{
	json_t *ans = NULL, *arr, *v;
	size_t i;

	if (kosctl_call(ctx, "service list", "GET", "/v1/admin/services", NULL, &ans) != KOSCTL_OK)
		return KOSCTL_FAIL;
	arr = json_object_get(ans, "services");
	if (!json_is_array(arr)) {
		json_decref(ans);
		kosctl_err("service list: kosd's answer holds no list");
		return KOSCTL_FAIL;
	}
	if (ctx->json) {
		json_incref(arr);
		json_decref(ans);
		return print_json(arr);
	}
	printf("%-24s %7s  %-20s  %s\n", "NAME", "VERSION", "ROTATED", "OPERATIONS");
	json_array_foreach (arr, i, v) {
		json_t *op;
		size_t j;

		printf("%-24s %7lld  %-20s  ", kosctl_jstr(v, "name"), kosctl_jint(v, "seed_version"),
		       kosctl_jstr(v, "rotated"));
		json_array_foreach (json_object_get(v, "ops"), j, op)
			printf("%s%s", j > 0 ? "," : "", json_string_value(op));
		putchar('\n');
	}
	json_decref(ans);
	return KOSCTL_OK;
}

static int cmd_list(struct kosctl_ctx *ctx, int argc, char **argv)
{
	static const int allowed[] = {0};
	struct list_state ls = {0};
	struct opts o;
	bool done;
	kos_rv rv;
	int rc;

	rc = parse_options("list", list_usage, allowed, argc, argv, &o, &done);
	if (done)
		return rc;
	if (argc - optind != 0) {
		kosctl_err("service list: no arguments expected");
		return usage_hint("list");
	}
	if (kosctl_remote(ctx))
		return list_remote(ctx);
	if (load(ctx, &o) != KOSCTL_OK)
		return KOSCTL_FAIL;
	if (ctx->json) {
		ls.arr = json_array();
		if (ls.arr == NULL) {
			kosctl_err("out of memory");
			return KOSCTL_FAIL;
		}
	} else {
		printf("%-24s %7s  %-20s  %s\n", "NAME", "VERSION", "ROTATED", "OPERATIONS");
	}
	rv = kos_service_list(ctx->services, list_one, &ls);
	if (rv != KOS_OK || ls.oom) {
		json_decref(ls.arr);
		if (ls.oom)
			kosctl_err("out of memory building JSON");
		else
			kosctl_err_rv(rv, "service list");
		return KOSCTL_FAIL;
	}
	if (ls.arr != NULL)
		return print_json(ls.arr);
	return KOSCTL_OK;
}

static void show_usage(FILE *f)
{
	fprintf(f, "usage: kosctl [--json] service show NAME\n"
		   "\n"
		   "Shows a service: operations, seed version, when it was registered and\n"
		   "when its seed was made (UTC). Exit status 1 for an unknown service.\n"
		   "\n"
		   "options:\n"
		   "  -h, --help  show this help\n");
}

static int cmd_show(struct kosctl_ctx *ctx, int argc, char **argv)
{
	static const int allowed[] = {0};
	kos_service_info info;
	char created[32], rotated[32];
	const char *name;
	struct opts o;
	bool done;
	kos_rv rv;
	int rc;

	rc = parse_options("show", show_usage, allowed, argc, argv, &o, &done);
	if (done)
		return rc;
	if (one_name("show", argc, argv, &name) != KOSCTL_OK)
		return KOSCTL_USAGE;
	if (kosctl_remote(ctx)) {
		char path[64 + KOS_SERVICE_NAME_MAX];
		json_t *ans = NULL, *op;
		size_t j;

		snprintf(path, sizeof(path), "/v1/admin/services/%s", name);
		if (kosctl_call(ctx, "service show", "GET", path, NULL, &ans) != KOSCTL_OK)
			return KOSCTL_FAIL;
		if (ctx->json)
			return print_json(ans);
		printf("%-14s %s\n", "service:", kosctl_jstr(ans, "name"));
		printf("%-14s ", "operations:");
		json_array_foreach (json_object_get(ans, "ops"), j, op)
			printf("%s%s", j > 0 ? "," : "", json_string_value(op));
		putchar('\n');
		printf("%-14s %lld\n", "seed version:", kosctl_jint(ans, "seed_version"));
		printf("%-14s %s\n", "registered:", kosctl_jstr(ans, "created"));
		printf("%-14s %s\n", "seed made:", kosctl_jstr(ans, "rotated"));
		json_decref(ans);
		return KOSCTL_OK;
	}
	if (load(ctx, &o) != KOSCTL_OK)
		return KOSCTL_FAIL;
	rv = kos_service_get_info(ctx->services, name, &info);
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "service show");
		return KOSCTL_FAIL;
	}
	if (ctx->json)
		return print_json(kosj_service_info(&info));
	kosj_iso_time(info.created, created, sizeof(created), false);
	kosj_iso_time(info.rotated, rotated, sizeof(rotated), false);
	printf("%-14s %s\n", "service:", info.name);
	printf("%-14s %s\n", "operations:", info.ops);
	printf("%-14s %lu\n", "seed version:", (unsigned long)info.seed_version);
	printf("%-14s %s\n", "registered:", created);
	printf("%-14s %s\n", "seed made:", rotated);
	return KOSCTL_OK;
}

/* --- token / validate ---------------------------------------------------------------- */

static void token_usage(FILE *f)
{
	fprintf(f, "usage: kosctl service token NAME --op OP [--window DURATION] [--ttl DURATION]\n"
		   "                            [--at TIME]\n"
		   "\n"
		   "Issues a service token for one registered operation in the current time\n"
		   "window and prints it. The token is a bearer credential: keep it out of\n"
		   "logs. It is valid for --ttl (default and at most one window length), so it\n"
		   "outlives its window by at most one window.\n"
		   "\n"
		   "options:\n"
		   "  --op OP            the operation (required)\n"
		   "  --window DURATION  window length, whole seconds from 1s to 1d (default 5m)\n"
		   "  --ttl DURATION     lifetime (default: the window length)\n"
		   "  --at TIME          issue as at TIME: now, +3d, -2h,\n"
		   "                     2026-12-07T10:00:00Z (UTC) or @EPOCHSECONDS\n"
		   "  -h, --help         show this help\n");
}

/* POST /v1/services/NAME/token: the caller needs the scope service:NAME. */
static int token_remote(struct kosctl_ctx *ctx, const char *name, const struct opts *o)
{
	json_t *body = json_pack("{s:s}", "op", o->op), *ans;
	char path[128];

	if (body != NULL &&
	    ((o->window != 0 && json_object_set_new(body, "window",
						    json_integer(o->window / KOS_USEC_PER_SEC)) != 0) ||
	     (o->ttl != 0 &&
	      json_object_set_new(body, "ttl", json_integer(o->ttl / KOS_USEC_PER_SEC)) != 0))) {
		json_decref(body);
		body = NULL;
	}
	if (body == NULL) {
		kosctl_err("service token: out of memory");
		return KOSCTL_FAIL;
	}
	snprintf(path, sizeof(path), "/v1/services/%s/token", name);
	if (kosctl_call(ctx, "service token", "POST", path, body, &ans) != KOSCTL_OK)
		return KOSCTL_FAIL;
	printf("%s\n", kosctl_jstr(ans, "token"));
	kosctl_json_wipe(ans, "token");
	json_decref(ans);
	return KOSCTL_OK;
}

static int cmd_token(struct kosctl_ctx *ctx, int argc, char **argv)
{
	static const int allowed[] = {OPT_OP, OPT_WINDOW, OPT_TTL, OPT_AT, 0};
	const char *name;
	char *token = NULL;
	struct opts o;
	bool done;
	kos_rv rv;
	int rc;

	rc = parse_options("token", token_usage, allowed, argc, argv, &o, &done);
	if (done)
		return rc;
	if (one_name("token", argc, argv, &name) != KOSCTL_OK)
		return KOSCTL_USAGE;
	if (o.op == NULL || !kos_service_op_valid(o.op)) {
		kosctl_err(o.op == NULL ? "service token: --op is required"
					: "service token: invalid operation name");
		return usage_hint("token");
	}
	if (o.window != 0 &&
	    (o.window % KOS_USEC_PER_SEC != 0 || o.window > KOS_SERVICE_WINDOW_MAX)) {
		kosctl_err("service token: a window is 1s to 1d in whole seconds");
		return usage_hint("token");
	}
	/* --at issues as at another time: only the store's seed can do that */
	if (!o.have_at && kosctl_remote(ctx))
		return token_remote(ctx, name, &o);
	if (load(ctx, &o) != KOSCTL_OK)
		return KOSCTL_FAIL;
	rv = kos_service_token_issue(ctx->services, name, o.op, o.window, o.ttl, &token);
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "service token");
		return KOSCTL_FAIL;
	}
	printf("%s\n", token);
	kos_secret_free(token, strlen(token));
	return KOSCTL_OK;
}

static void validate_usage(FILE *f)
{
	fprintf(f, "usage: kosctl service validate TOKEN|- [--op OP] [--at TIME]\n"
		   "\n"
		   "Checks a service token: its form, the service, the current seed version,\n"
		   "the MAC under the re-derived authentication key, expiry, the window\n"
		   "(current or previous) and that the operation is registered (and is OP,\n"
		   "when given). '-' reads the token from standard input.\n"
		   "\n"
		   "Exit status 0 and the claims as JSON when valid; 1 and the reason on\n"
		   "standard error when not.\n"
		   "\n"
		   "options:\n"
		   "  --op OP     the operation the token must be for\n"
		   "  --at TIME   validate as at TIME: now, +3d, -2h, 2026-12-07T10:00:00Z\n"
		   "              (UTC) or @EPOCHSECONDS\n"
		   "  -h, --help  show this help\n");
}

/* The token from argv or, for "-", standard input (one line). */
static int read_token(const char *arg, char **token, size_t *cap)
{
	unsigned char *buf;
	size_t len;

	if (strcmp(arg, "-") != 0) {
		*token = (char *)arg;
		*cap = 0;
		return KOSCTL_OK;
	}
	if (kosctl_read_all(stdin, KOS_SERVICE_TOKEN_MAX + 2, &buf, &len, cap) != KOS_OK)
		return KOSCTL_FAIL;
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		buf[--len] = '\0';
	*token = (char *)buf;
	return KOSCTL_OK;
}

static int cmd_validate(struct kosctl_ctx *ctx, int argc, char **argv)
{
	static const int allowed[] = {OPT_OP, OPT_AT, 0};
	kos_service_claims c;
	char *token = NULL;
	size_t cap = 0;
	struct opts o;
	bool done;
	kos_rv rv;
	int rc;

	rc = parse_options("validate", validate_usage, allowed, argc, argv, &o, &done);
	if (done)
		return rc;
	if (argc - optind != 1) {
		kosctl_err(argc - optind < 1 ? "service validate: which token? ('-' reads it from "
					       "standard input)"
					     : "service validate: one token at a time");
		return usage_hint("validate");
	}
	if (o.op != NULL && !kos_service_op_valid(o.op)) {
		kosctl_err("service validate: invalid operation name");
		return usage_hint("validate");
	}
	if (read_token(argv[optind], &token, &cap) != KOSCTL_OK)
		return KOSCTL_FAIL;
	rc = KOSCTL_FAIL;
	if (!o.have_at && kosctl_remote(ctx)) {
		json_t *body = json_pack("{s:s}", "token", token), *ans;

		if (body != NULL && o.op != NULL &&
		    json_object_set_new(body, "op", json_string(o.op)) != 0) {
			json_decref(body);
			body = NULL;
		}
		/* kosd's refusal (invalid_token) carries the reason, never the token */
		if (kosctl_call(ctx, "service validate", "POST", "/v1/services/validate", body,
				&ans) == KOSCTL_OK)
			rc = print_json(ans);
		goto out;
	}
	if (load(ctx, &o) != KOSCTL_OK)
		goto out;
	rv = kos_service_token_validate(ctx->services, token, o.op, &c);
	if (rv != KOS_OK) {
		/* the reason never quotes the token */
		kosctl_err_rv(rv, "service validate: refused");
		goto out;
	}
	rc = print_json(kosj_service_claims(&c));
out:
	if (cap != 0)
		kos_secret_free(token, cap);
	return rc;
}

/* --- rotate -------------------------------------------------------------------------- */

static void rotate_usage(FILE *f)
{
	fprintf(f, "usage: kosctl service rotate NAME [--breach]\n"
		   "       kosctl service rotate --due [--interval DURATION] [--at TIME]\n"
		   "\n"
		   "Gives a service a fresh seed (the next seed version). Every token and\n"
		   "key of the old seed stops validating at once: the old wrapped seed is\n"
		   "overwritten, never kept.\n"
		   "\n"
		   "options:\n"
		   "  --breach             the seed is believed exposed: rotate now, without\n"
		   "                       reading the old seed (works even when it is damaged)\n"
		   "  --due                rotate every service whose seed is older than the\n"
		   "                       interval\n"
		   "  --interval DURATION  for --due (default 7d)\n"
		   "  --at TIME            the time for --due: now, +3d, -2h,\n"
		   "                       2026-12-07T10:00:00Z (UTC) or @EPOCHSECONDS\n"
		   "  -h, --help           show this help\n");
}

static void rotated_one(const char *name, uint32_t version, void *arg)
{
	(*(unsigned *)arg)++;
	printf("service %s: seed version %lu\n", name, (unsigned long)version);
}

static int cmd_rotate(struct kosctl_ctx *ctx, int argc, char **argv)
{
	static const int allowed[] = {OPT_BREACH, OPT_DUE, OPT_INTERVAL, OPT_AT, 0};
	const char *name;
	unsigned n = 0;
	uint32_t v = 0;
	struct opts o;
	bool done;
	kos_rv rv;
	int rc;

	rc = parse_options("rotate", rotate_usage, allowed, argc, argv, &o, &done);
	if (done)
		return rc;
	if (o.due) {
		if (argc - optind != 0 || o.breach) {
			kosctl_err("service rotate: --due takes no service name and no --breach");
			return usage_hint("rotate");
		}
		if (load(ctx, &o) != KOSCTL_OK)
			return KOSCTL_FAIL;
		rv = kos_services_rotate_due(ctx->services, o.interval, rotated_one, &n);
		if (rv != KOS_OK) {
			kosctl_err_rv(rv, "service rotate --due");
			return KOSCTL_FAIL;
		}
		printf("%u service%s rotated\n", n, n == 1 ? "" : "s");
		return KOSCTL_OK;
	}
	if (o.interval != 0 || o.have_at) {
		kosctl_err("service rotate: --interval and --at go with --due");
		return usage_hint("rotate");
	}
	if (one_name("rotate", argc, argv, &name) != KOSCTL_OK)
		return KOSCTL_USAGE;
	if (kosctl_remote(ctx)) {
		json_t *ans;
		char path[128];

		snprintf(path, sizeof(path), "/v1/admin/services/%s/rotate", name);
		if (kosctl_call(ctx, o.breach ? "service rotate --breach" : "service rotate", "POST",
				path, json_pack("{s:b}", "breach", o.breach), &ans) != KOSCTL_OK)
			return KOSCTL_FAIL;
		v = (uint32_t)kosctl_jint(ans, "seed_version");
		json_decref(ans);
	} else {
		if (load(ctx, &o) != KOSCTL_OK)
			return KOSCTL_FAIL;
		rv = kos_service_rotate(ctx->services, name,
					o.breach ? KOS_SERVICE_ROTATE_BREACH : 0, &v);
		if (rv != KOS_OK) {
			kosctl_err_rv(rv, o.breach ? "service rotate --breach" : "service rotate");
			return KOSCTL_FAIL;
		}
	}
	printf("service %s: seed version %lu%s\n", name, (unsigned long)v,
	       o.breach ? " (breach: the old seed is destroyed and its tokens refused)" : "");
	return KOSCTL_OK;
}

int kosctl_cmd_service(struct kosctl_ctx *ctx, int argc, char **argv)
{
	static const struct kosctl_cmd cmds[] = {
	    {"register", cmd_register, "register a service with its operations"},
	    {"ops", cmd_ops, "replace a service's operations"},
	    {"token", cmd_token, "issue a service token for one operation"},
	    {"validate", cmd_validate, "check a service token; print its claims"},
	    {"rotate", cmd_rotate, "give a service a fresh seed (--breach, --due)"},
	    {"list", cmd_list, "list the services"},
	    {"show", cmd_show, "show one service"},
	    {"remove", cmd_remove, "forget a service"},
	    {NULL, NULL, NULL},
	};

	return kosctl_dispatch(ctx, "service", cmds, argc, argv);
}
