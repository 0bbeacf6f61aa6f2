/* kosctl policy: check policy files and show what a policy says. */
#include "config.h"

#include "tools/kosctl/kosctl.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

/* kos_policy_describe() output is a few KiB; the cap only stops a runaway. */
#define DESCRIBE_MAX (1024 * 1024)

static const struct option help_only[] = {
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static void check_usage(FILE *f)
{
	fprintf(f, "usage: kosctl policy check FILE...\n"
		   "\n"
		   "Validates policy files (kos-policy(5)) without loading them into kosd.\n"
		   "Prints \"FILE: ok\" for each valid file; every problem of an invalid one\n"
		   "goes to standard error as FILE:LINE: message.\n"
		   "\n"
		   "Exit status: 0 all files valid, 1 any invalid or unreadable, 2 usage error.\n");
}

static void show_usage(FILE *f)
{
	fprintf(f, "usage: kosctl policy show [FILE]\n"
		   "\n"
		   "Prints every setting of a policy, defaults included, one \"key: value\"\n"
		   "per line. Without FILE, shows the policy named by the configuration\n"
		   "(kos.conf(5)). Text only: --json is not supported here.\n"
		   "\n"
		   "Exit status: 0 success, 1 the policy cannot be loaded, 2 usage error.\n");
}

/* Parses the subcommand's options (only --help); returns -1 to go on, or the
 * exit status when done. */
static int parse_help(int argc, char **argv, void (*usage)(FILE *f))
{
	int opt;

	while ((opt = getopt_long(argc, argv, "h", help_only, NULL)) != -1) {
		switch (opt) {
		case 'h':
			usage(stdout);
			return KOSCTL_OK;
		default:
			usage(stderr);
			return KOSCTL_USAGE;
		}
	}
	return -1;
}

/* Loads path, printing its problems; returns KOSCTL_OK or KOSCTL_FAIL. */
static int load_reporting(const char *path, kos_policy **pol)
{
	char *diag = NULL;
	kos_rv rv;

	rv = kos_policy_load(path, pol, &diag);
	if (rv == KOS_OK)
		return KOSCTL_OK;
	if (diag != NULL && diag[0] != '\0')
		fputs(diag, stderr);
	else
		kosctl_err("%s", kos_last_error()[0] != '\0' ? kos_last_error() : kos_strerror(rv));
	kos_free(diag);
	return KOSCTL_FAIL;
}

static int cmd_check(struct kosctl_ctx *ctx, int argc, char **argv)
{
	int rc = KOSCTL_OK, i;

	(void)ctx;
	i = parse_help(argc, argv, check_usage);
	if (i >= 0)
		return i;
	if (optind >= argc) {
		kosctl_err("policy check: no FILE given");
		check_usage(stderr);
		return KOSCTL_USAGE;
	}
	for (i = optind; i < argc; i++) {
		kos_policy *pol = NULL;

		if (load_reporting(argv[i], &pol) == KOSCTL_OK)
			printf("%s: ok\n", argv[i]);
		else
			rc = KOSCTL_FAIL;
		kos_policy_free(pol);
	}
	return rc;
}

/* Prints the summary, growing the buffer until it fits. */
static int print_description(const kos_policy *pol)
{
	size_t len = 4096;
	char *buf = NULL;
	kos_rv rv;

	for (;;) {
		char *nb = realloc(buf, len);

		if (nb == NULL) {
			free(buf);
			kosctl_err("out of memory");
			return KOSCTL_FAIL;
		}
		buf = nb;
		rv = kos_policy_describe(pol, buf, len);
		if (rv != KOS_E_RANGE || len >= DESCRIBE_MAX)
			break;
		len *= 2;
	}
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "policy show");
		free(buf);
		return KOSCTL_FAIL;
	}
	fputs(buf, stdout);
	free(buf);
	return KOSCTL_OK;
}

static int cmd_show(struct kosctl_ctx *ctx, int argc, char **argv)
{
	kos_policy *own = NULL;
	int rc;

	rc = parse_help(argc, argv, show_usage);
	if (rc >= 0)
		return rc;
	if (argc - optind > 1) {
		kosctl_err("policy show: at most one FILE");
		show_usage(stderr);
		return KOSCTL_USAGE;
	}
	/* JSON goes through jansson, which kosctl does not link: refuse rather
	 * than print text to a script that asked for JSON. */
	if (ctx->json) {
		kosctl_err("policy show: no JSON output; run it without --json");
		return KOSCTL_USAGE;
	}
	if (optind < argc) {
		if (load_reporting(argv[optind], &own) != KOSCTL_OK)
			return KOSCTL_FAIL;
		rc = print_description(own);
		kos_policy_free(own);
		return rc;
	}
	if (kosctl_need_policy(ctx) != KOSCTL_OK)
		return KOSCTL_FAIL;
	return print_description(ctx->policy);
}

static void reload_usage(FILE *f)
{
	fprintf(f, "usage: kosctl --server ADDRESS policy reload\n"
		   "\n"
		   "Asks kosd to load its policy file again (as SIGHUP does, but from any\n"
		   "host, with a credential holding admin:policy). A policy with a problem is\n"
		   "refused with the first one and kosd keeps the policy it has.\n"
		   "\n"
		   "Exit status: 0 reloaded, 1 refused or failed, 2 usage error.\n");
}

static int cmd_reload(struct kosctl_ctx *ctx, int argc, char **argv)
{
	json_t *ans = NULL;
	const char *path;
	int rc = parse_help(argc, argv, reload_usage);

	if (rc >= 0)
		return rc;
	if (optind < argc) {
		kosctl_err("policy reload: unexpected argument '%s'", argv[optind]);
		return KOSCTL_USAGE;
	}
	if (!kosctl_remote(ctx))
		return kosctl_not_remote("policy reload", "asks a running kosd: give --server "
							  "(or send kosd SIGHUP)");
	if (kosctl_call(ctx, "policy reload", "POST", "/v1/admin/policy/reload", json_object(),
			&ans) != KOSCTL_OK)
		return KOSCTL_FAIL;
	path = json_string_value(json_object_get(ans, "policy"));
	printf("reloaded %s\n", path != NULL ? path : "the policy");
	json_decref(ans);
	return KOSCTL_OK;
}

int kosctl_cmd_policy(struct kosctl_ctx *ctx, int argc, char **argv)
{
	static const struct kosctl_cmd cmds[] = {
		{ "check", cmd_check, "validate policy files, reporting every problem" },
		{ "show", cmd_show, "print every setting of a policy" },
		{ "reload", cmd_reload, "make kosd load its policy again (through kosd)" },
		{ NULL, NULL, NULL },
	};

	return kosctl_dispatch(ctx, "policy", cmds, argc, argv);
}
