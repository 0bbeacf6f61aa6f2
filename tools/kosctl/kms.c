/* kosctl kms: the backend HSM tokens kos.conf names, and their health. */
#include "config.h"

#include "tools/kosctl/kosctl.h"
#include "tools/common/kosjson.h"

#include <getopt.h>
#include <jansson.h>
#include <string.h>

static void list_usage(FILE *f)
{
	fprintf(f, "usage: kosctl kms list\n"
		   "\n"
		   "Opens every backend token of the configuration (kos.conf(5)) and prints,\n"
		   "one a line: name, role, whether it is reachable, whether the session is\n"
		   "logged in, the number of kos data objects on it, and this command's\n"
		   "calls to it (count, failures, average latency). An unreachable token\n"
		   "shows why. Through kosd when a server is set (scope admin:kms; the calls\n"
		   "are then kosd's). With --json (global option), a JSON array.\n"
		   "\n"
		   "options:\n"
		   "  -h, --help  show this help\n"
		   "\n"
		   "Exit status: 0 every token reachable, 1 any is not (or the configuration\n"
		   "cannot be used), 2 usage error.\n");
}

/* One line of the listing from kosj_token()'s JSON (the store's tokens or
 * kosd's). */
static void print_row(const json_t *r)
{
	bool up = kosctl_jbool(r, "reachable");
	const json_t *objects = json_object_get(r, "objects");

	printf("%-16s %-9s %-9s %-9s ", kosctl_jstr(r, "name"), kosctl_jstr(r, "role"),
	       up ? "yes" : "no", up ? (kosctl_jbool(r, "logged_in") ? "yes" : "no") : "-");
	if (json_is_integer(objects))
		printf("%7lld ", (long long)json_integer_value(objects));
	else
		printf("%7s ", "-");
	printf("%6lld %8lld %7.2fms\n", kosctl_jint(r, "calls"), kosctl_jint(r, "failures"),
	       (double)kosctl_jint(r, "latency_ewma_us") / 1000.0);
	if (json_is_string(json_object_get(r, "error")))
		printf("  %s\n", kosctl_jstr(r, "error"));
}

/* The rows, kosd's (GET /v1/admin/kms: its own handle's statistics) or
 * this process's; *arr receives them. */
static int rows(struct kosctl_ctx *ctx, json_t **arr)
{
	json_t *ans;
	kos_hsm *hsm = NULL;
	size_t i, n;
	kos_rv rv;

	*arr = NULL;
	if (kosctl_remote(ctx)) {
		if (kosctl_call(ctx, "kms list", "GET", "/v1/admin/kms", NULL, &ans) != KOSCTL_OK)
			return KOSCTL_FAIL;
		*arr = json_incref(json_object_get(ans, "tokens"));
		json_decref(ans);
		if (!json_is_array(*arr)) {
			json_decref(*arr);
			*arr = NULL;
			kosctl_err("kms list: kosd's answer has no token list");
			return KOSCTL_FAIL;
		}
		return KOSCTL_OK;
	}
	if (kosctl_need_config(ctx) != KOSCTL_OK)
		return KOSCTL_FAIL;
	n = kos_config_token_count(ctx->conf);
	if (n == 0) {
		kosctl_err("kms list: %s names no tokens", kos_config_get0_path(ctx->conf));
		return KOSCTL_FAIL;
	}
	rv = kos_hsm_open(ctx->conf, 0, &hsm);
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "kms list");
		return KOSCTL_FAIL;
	}
	*arr = json_array();
	for (i = 0; *arr != NULL && i < n; i++) {
		if (json_array_append_new(*arr, kosj_token(hsm, i, NULL)) != 0) {
			json_decref(*arr);
			*arr = NULL;
		}
	}
	kos_hsm_free(hsm);
	if (*arr == NULL) {
		kosctl_err("out of memory building JSON");
		return KOSCTL_FAIL;
	}
	return KOSCTL_OK;
}

static int cmd_list(struct kosctl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	json_t *arr = NULL, *r;
	size_t i, n, down = 0;
	int opt, rc = KOSCTL_OK;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (opt == 'h') {
			list_usage(stdout);
			return KOSCTL_OK;
		}
		kosctl_err("kms list: unknown option '%s'; try 'kosctl kms list --help'",
			   argv[optind - 1]);
		return KOSCTL_USAGE;
	}
	if (optind < argc) {
		kosctl_err("kms list: unexpected argument '%s'", argv[optind]);
		return KOSCTL_USAGE;
	}
	if (rows(ctx, &arr) != KOSCTL_OK)
		return KOSCTL_FAIL;
	n = json_array_size(arr);
	if (!ctx->json)
		printf("%-16s %-9s %-9s %-9s %7s %6s %8s %9s\n", "NAME", "ROLE", "REACHABLE",
		       "LOGGED-IN", "OBJECTS", "CALLS", "FAILURES", "LATENCY");
	json_array_foreach(arr, i, r) {
		if (!kosctl_jbool(r, "reachable"))
			down++;
		if (!ctx->json)
			print_row(r);
	}
	if (ctx->json &&
	    (json_dumpf(arr, stdout, JSON_INDENT(2)) != 0 || fputc('\n', stdout) == EOF)) {
		kosctl_err("error writing standard output");
		rc = KOSCTL_FAIL;
	}
	json_decref(arr);
	if (rc == KOSCTL_OK && down > 0) {
		kosctl_err("kms list: %zu of %zu tokens unreachable", down, n);
		rc = KOSCTL_FAIL;
	}
	return rc;
}
int kosctl_cmd_kms(struct kosctl_ctx *ctx, int argc, char **argv)
{
	static const struct kosctl_cmd cmds[] = {
		{ "list", cmd_list, "list the backend tokens: reachable, logged in, objects, calls" },
		{ NULL, NULL, NULL },
	};

	return kosctl_dispatch(ctx, "kms", cmds, argc, argv);
}
