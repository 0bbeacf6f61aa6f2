/* kosctl config: check configuration files as kosd -t does. */
#include "config.h"

#include "tools/kosctl/kosctl.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static const struct option help_only[] = {
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static void check_usage(FILE *f)
{
	fprintf(f, "usage: kosctl config check FILE...\n"
		   "\n"
		   "Validates configuration files (kos.conf(5)) and the policy each names\n"
		   "(kos-policy(5)), as kosd -t does, without opening a token, the state store\n"
		   "or a socket, but checking that every file it names for reading (token\n"
		   "modules, PIN files, TLS files, the policy) is there and readable. Prints\n"
		   "\"FILE: ok\" for each valid file; every problem of an invalid one, or of its\n"
		   "policy, goes to standard error as FILE:LINE: message.\n"
		   "\n"
		   "Exit status: 0 all files valid, 1 any invalid or unreadable, 2 usage error.\n");
}

/* Prints a load's problems (or its error when it has none); KOSCTL_FAIL. */
static int report(char *diag)
{
	if (diag != NULL && diag[0] != '\0')
		fputs(diag, stderr);
	else
		kosctl_err("%s", kos_last_error());
	kos_free(diag);
	return KOSCTL_FAIL;
}

static int check_one(const char *path)
{
	kos_config *conf = NULL;
	kos_policy *pol = NULL;
	char *diag = NULL;
	int rc;

	if (kos_config_load_ex(path, KOS_CONFIG_CHECK_FILES, &conf, &diag) != KOS_OK)
		return report(diag);
	if (kos_policy_load(kos_config_get0_policy(conf), &pol, &diag) != KOS_OK) {
		rc = report(diag);
	} else {
		printf("%s: ok\n", path);
		rc = KOSCTL_OK;
	}
	kos_policy_free(pol);
	kos_config_free(conf);
	return rc;
}

static int cmd_check(struct kosctl_ctx *ctx, int argc, char **argv)
{
	int rc = KOSCTL_OK, opt, i;

	(void)ctx;
	while ((opt = getopt_long(argc, argv, "h", help_only, NULL)) != -1) {
		if (opt == 'h') {
			check_usage(stdout);
			return KOSCTL_OK;
		}
		check_usage(stderr);
		return KOSCTL_USAGE;
	}
	if (optind >= argc) {
		kosctl_err("config check: no FILE given");
		check_usage(stderr);
		return KOSCTL_USAGE;
	}
	for (i = optind; i < argc; i++)
		if (check_one(argv[i]) != KOSCTL_OK)
			rc = KOSCTL_FAIL;
	return rc;
}

int kosctl_cmd_config(struct kosctl_ctx *ctx, int argc, char **argv)
{
	static const struct kosctl_cmd cmds[] = {
		{ "check", cmd_check, "validate configuration files and their policies" },
		{ NULL, NULL, NULL },
	};

	return kosctl_dispatch(ctx, "config", cmds, argc, argv);
}
