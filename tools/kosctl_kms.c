/* kosctl kms: the backend HSM tokens kos.conf names, and their health. */
#include "config.h"

#include "tools/kosctl.h"

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
		   "shows why. With --json (global option), a JSON array.\n"
		   "\n"
		   "options:\n"
		   "  -h, --help  show this help\n"
		   "\n"
		   "Exit status: 0 every token reachable, 1 any is not (or the configuration\n"
		   "cannot be used), 2 usage error.\n");
}

struct row {
	const char *name;
	kos_token_role role;
	int reachable, logged_in, have_count;
	size_t objects;
	struct kos_hsm_stats st;
	char error[256];
};

static void probe(kos_hsm *hsm, size_t i, struct row *r)
{
	kos_rv rv;

	memset(r, 0, sizeof(*r));
	r->name = kos_hsm_token_get0_name(hsm, i);
	r->role = kos_hsm_token_role(hsm, i);
	rv = kos_hsm_token_check(hsm, i, &r->logged_in);
	r->reachable = rv == KOS_OK;
	if (rv == KOS_OK) {
		rv = kos_hsm_token_count_objects(hsm, i, &r->objects);
		r->have_count = rv == KOS_OK;
	}
	if (rv != KOS_OK)
		snprintf(r->error, sizeof(r->error), "%s", kos_last_error());
	kos_hsm_token_stats(hsm, i, &r->st);
}

static json_t *row_json(const struct row *r)
{
	json_t *v = json_pack("{s:s, s:s, s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:I}", "name", r->name,
			      "role", kos_token_role_name(r->role), "reachable", r->reachable,
			      "logged_in", r->logged_in, "calls", (json_int_t)r->st.calls, "failures",
			      (json_int_t)r->st.failures, "sessions_opened",
			      (json_int_t)r->st.sessions_opened, "logins", (json_int_t)r->st.logins,
			      "latency_ewma_us", (json_int_t)r->st.latency_ewma, "latency_total_us",
			      (json_int_t)r->st.latency_total);

	if (v == NULL)
		return NULL;
	if (json_object_set_new(v, "objects",
				r->have_count ? json_integer((json_int_t)r->objects) : json_null()) != 0 ||
	    json_object_set_new(v, "error", r->error[0] ? json_string(r->error) : json_null()) != 0) {
		json_decref(v);
		return NULL;
	}
	return v;
}

static int cmd_list(struct kosctl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	json_t *arr = NULL;
	kos_hsm *hsm = NULL;
	size_t i, n, down = 0;
	int opt, rc = KOSCTL_OK;
	kos_rv rv;

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
	if (ctx->json && (arr = json_array()) == NULL) {
		kosctl_err("out of memory building JSON");
		kos_hsm_free(hsm);
		return KOSCTL_FAIL;
	}
	if (!ctx->json)
		printf("%-16s %-9s %-9s %-9s %7s %6s %8s %9s\n", "NAME", "ROLE", "REACHABLE",
		       "LOGGED-IN", "OBJECTS", "CALLS", "FAILURES", "LATENCY");
	for (i = 0; i < n; i++) {
		struct row r;

		probe(hsm, i, &r);
		if (!r.reachable)
			down++;
		if (arr != NULL) {
			if (json_array_append_new(arr, row_json(&r)) != 0) {
				kosctl_err("out of memory building JSON");
				rc = KOSCTL_FAIL;
				break;
			}
			continue;
		}
		printf("%-16s %-9s %-9s %-9s ", r.name, kos_token_role_name(r.role),
		       r.reachable ? "yes" : "no", r.reachable ? (r.logged_in ? "yes" : "no") : "-");
		if (r.have_count)
			printf("%7zu ", r.objects);
		else
			printf("%7s ", "-");
		printf("%6llu %8llu %7.2fms\n", (unsigned long long)r.st.calls,
		       (unsigned long long)r.st.failures, (double)r.st.latency_ewma / 1000.0);
		if (r.error[0] != '\0')
			printf("  %s\n", r.error);
	}
	kos_hsm_free(hsm);
	if (arr != NULL) {
		if (rc == KOSCTL_OK &&
		    (json_dumpf(arr, stdout, JSON_INDENT(2)) != 0 || fputc('\n', stdout) == EOF)) {
			kosctl_err("error writing standard output");
			rc = KOSCTL_FAIL;
		}
		json_decref(arr);
	}
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
