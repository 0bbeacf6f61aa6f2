/* kosctl: the administrator's command-line tool. One table of command groups;
 * each group lives in its own file and prints its own usage. */
#include "config.h"

#include "tools/kosctl/kosctl.h"
#include "tools/kosctl/progress.h"

#include "common/internal.h"

#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int cmd_help(struct kosctl_ctx *ctx, int argc, char **argv);
static int cmd_version(struct kosctl_ctx *ctx, int argc, char **argv);

static const struct kosctl_cmd commands[] = {
	{ "init", kosctl_cmd_init, "make a development installation with SoftHSM tokens" },
	{ "kms", kosctl_cmd_kms, "list the backend HSM tokens and their health" },
	{ "key", kosctl_cmd_key, "create, rotate, retire and use keys" },
	{ "fsck", kosctl_cmd_fsck, "find and remove what an interrupted key change left" },
	{ "ledger", kosctl_cmd_ledger, "show and verify the decision ledger (offline)" },
	{ "config", kosctl_cmd_config, "check configuration files (as kosd -t)" },
	{ "policy", kosctl_cmd_policy, "check policy files" },
	{ "shamir", kosctl_cmd_shamir, "split a secret into shares and combine them" },
	{ "trust", kosctl_cmd_trust, "show and record clients' trust" },
	{ "ca", kosctl_cmd_ca, "the credential authority's keys and JWKS" },
	{ "client", kosctl_cmd_client, "register clients and their enrollment secrets" },
	{ "credential", kosctl_cmd_credential, "enroll, issue, refresh, verify and revoke" },
	{ "threat", kosctl_cmd_threat, "set and show the threat level" },
	{ "service", kosctl_cmd_service, "register services; issue and validate service tokens" },
	{ "help", cmd_help, "show this help, or a command's (kosctl help COMMAND)" },
	{ "version", cmd_version, "print the version" },
};

void kosctl_err(const char *fmt, ...)
{
	va_list ap;

	fputs("kosctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void kosctl_err_rv(kos_rv rv, const char *what)
{
	const char *detail = kos_last_error();

	if (detail[0] != '\0')
		kosctl_err("%s: %s", what, detail);
	else
		kosctl_err("%s: %s", what, kos_strerror(rv));
}

int kosctl_print_json(json_t *v, size_t flags)
{
	int rc = KOSCTL_OK;

	if (v == NULL) {
		kosctl_err("out of memory building JSON");
		return KOSCTL_FAIL;
	}
	if (json_dumpf(v, stdout, flags) != 0 || fputc('\n', stdout) == EOF) {
		kosctl_err("error writing standard output");
		rc = KOSCTL_FAIL;
	}
	json_decref(v);
	return rc;
}

static void usage(FILE *f)
{
	size_t i;

	fprintf(f,
		"usage: kosctl [--config FILE] [--server ADDRESS [--credential-file FILE]]\n"
		"              [--local] [--json] [--verbose] [--progress|--no-progress]\n"
		"              COMMAND [ARGS...]\n"
		"\n"
		"Administers kos, the key orchestration service. Given a server, the\n"
		"commands kosd serves (keys, kms list, client add and list, credential\n"
		"enroll, refresh and revoke, trust show, list and observe, threat set and\n"
		"show, ca jwks, service register, token, validate and rotate, policy\n"
		"reload) go through it; the others (init, fsck, ledger, --at what-ifs, the\n"
		"rest of the store's commands, offline checks) always work on the state\n"
		"store and tokens of kos.conf. See kosctl(1), \"kosd and local commands\".\n"
		"\n"
		"options:\n"
		"  -c, --config FILE           configuration file (default: $KOS_CONF,\n"
		"                              else %s)\n"
		"  -s, --server ADDRESS        kosd's socket (PATH or unix:PATH) (default:\n"
		"                              $KOS_SERVER, else kos.conf's server)\n"
		"  -C, --credential-file FILE  the credential to use with kosd, and where\n"
		"                              enroll and refresh keep it (default:\n"
		"                              $KOS_CREDENTIAL_FILE, else $KOS_CREDENTIAL)\n"
		"  -L, --local                 never through kosd, even when a server is set\n"
		"  -j, --json                  print listings as JSON\n"
		"  -v, --verbose               say more on standard error (a decryption's path)\n"
		"      --progress              draw progress bars on standard error even when it\n"
		"                              is not a terminal (default: $KOSCTL_PROGRESS,\n"
		"                              always, never or auto: on a terminal, for what\n"
		"                              runs longer than a second)\n"
		"      --no-progress           never draw them\n"
		"  -h, --help                  show this help\n"
		"\n"
		"commands:\n",
		KOS_SYSCONFDIR "/kos/kos.conf");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n'kosctl COMMAND --help' shows a command's usage. Exit status: 0 success,\n"
		   "1 failure, 2 usage error. See kosctl(1).\n");
}

static const struct kosctl_cmd *find_command(const struct kosctl_cmd *cmds, size_t n,
					     const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(cmds[i].name, name) == 0)
			return &cmds[i];
	return NULL;
}

static int cmd_help(struct kosctl_ctx *ctx, int argc, char **argv)
{
	const struct kosctl_cmd *c;
	char *sub[] = { NULL, (char *)"--help", NULL };

	if (argc < 2) {
		usage(stdout);
		return KOSCTL_OK;
	}
	c = find_command(commands, sizeof(commands) / sizeof(commands[0]), argv[1]);
	if (c == NULL || c->fn == cmd_help) {
		kosctl_err("unknown command '%s'; try 'kosctl help'", argv[1]);
		return KOSCTL_USAGE;
	}
	sub[0] = argv[1];
	return c->fn(ctx, 2, sub);
}

static int cmd_version(struct kosctl_ctx *ctx, int argc, char **argv)
{
	(void)ctx;
	(void)argc;
	(void)argv;
	printf("kosctl %s\n", PACKAGE_VERSION);
	return KOSCTL_OK;
}

int kosctl_dispatch(struct kosctl_ctx *ctx, const char *group, const struct kosctl_cmd *cmds,
		    int argc, char **argv)
{
	const struct kosctl_cmd *c;
	size_t n = 0, i;
	bool help;

	while (cmds[n].name != NULL)
		n++;
	help = argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
	       strcmp(argv[1], "-h") == 0;
	if (help) {
		FILE *f = argc < 2 ? stderr : stdout;

		fprintf(f, "usage: kosctl %s SUBCOMMAND [ARGS...]\n\nsubcommands:\n", group);
		for (i = 0; i < n; i++)
			fprintf(f, "  %-12s %s\n", cmds[i].name, cmds[i].summary);
		fprintf(f, "\n'kosctl %s SUBCOMMAND --help' shows its usage.\n", group);
		return argc < 2 ? KOSCTL_USAGE : KOSCTL_OK;
	}
	c = find_command(cmds, n, argv[1]);
	if (c == NULL) {
		kosctl_err("%s: unknown subcommand '%s'; try 'kosctl %s help'", group, argv[1], group);
		return KOSCTL_USAGE;
	}
	optind = 0; /* the subcommand parses its options afresh */
	return c->fn(ctx, argc - 1, argv + 1);
}

int kosctl_need_config(struct kosctl_ctx *ctx)
{
	char *diag = NULL;
	kos_rv rv;

	if (ctx->conf != NULL)
		return KOSCTL_OK;
	rv = kos_config_load(ctx->config_path, &ctx->conf, &diag);
	if (rv != KOS_OK) {
		if (diag != NULL && diag[0] != '\0')
			fputs(diag, stderr);
		else
			kosctl_err_rv(rv, ctx->config_path);
		kos_free(diag);
		kosctl_err("cannot load the configuration (use --config FILE or KOS_CONF)");
		return KOSCTL_FAIL;
	}
	return KOSCTL_OK;
}

int kosctl_need_policy(struct kosctl_ctx *ctx)
{
	char *diag = NULL;
	kos_rv rv;

	if (ctx->policy != NULL)
		return KOSCTL_OK;
	if (kosctl_need_config(ctx) != KOSCTL_OK)
		return KOSCTL_FAIL;
	rv = kos_policy_load(kos_config_get0_policy(ctx->conf), &ctx->policy, &diag);
	if (rv != KOS_OK) {
		if (diag != NULL && diag[0] != '\0')
			fputs(diag, stderr);
		else
			kosctl_err_rv(rv, kos_config_get0_policy(ctx->conf));
		kos_free(diag);
		return KOSCTL_FAIL;
	}
	return KOSCTL_OK;
}

int kosctl_need_store(struct kosctl_ctx *ctx)
{
	kos_rv rv;

	if (ctx->store != NULL)
		return KOSCTL_OK;
	if (kosctl_need_config(ctx) != KOSCTL_OK)
		return KOSCTL_FAIL;
	rv = kos_store_open(kos_config_get0_store(ctx->conf), &ctx->store);
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "state store");
		return KOSCTL_FAIL;
	}
	return KOSCTL_OK;
}

int kosctl_need_trust(struct kosctl_ctx *ctx)
{
	kos_rv rv;

	if (ctx->trust != NULL)
		return KOSCTL_OK;
	if (kosctl_need_policy(ctx) != KOSCTL_OK || kosctl_need_store(ctx) != KOSCTL_OK)
		return KOSCTL_FAIL;
	rv = kos_trust_new(ctx->policy, ctx->store, &ctx->trust);
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "trust engine");
		return KOSCTL_FAIL;
	}
	return KOSCTL_OK;
}

/* "USER@local": the name the local administrator's decisions carry, from
 * the effective user (characters a client name may not hold become '_'). */
static void local_admin_name(struct kosctl_ctx *ctx)
{
	const struct passwd *pw = getpwuid(geteuid());
	char user[48];
	size_t i;

	if (pw != NULL && pw->pw_name != NULL && pw->pw_name[0] != '\0')
		snprintf(user, sizeof(user), "%s", pw->pw_name);
	else
		snprintf(user, sizeof(user), "uid%ld", (long)geteuid());
	for (i = 0; user[i] != '\0'; i++) {
		char c = user[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			user[i] = '_';
	}
	if (user[0] == '.' || user[0] == '-')
		user[0] = '_';
	snprintf(ctx->admin, sizeof(ctx->admin), "%s@local", user);
}

int kosctl_need_access(struct kosctl_ctx *ctx)
{
	kos_rv rv;

	if (ctx->access != NULL)
		return KOSCTL_OK;
	if (kosctl_need_keys(ctx) != KOSCTL_OK || kosctl_need_trust(ctx) != KOSCTL_OK)
		return KOSCTL_FAIL;
	rv = kos_access_new(ctx->keys, ctx->trust, &ctx->access);
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "access");
		return KOSCTL_FAIL;
	}
	return KOSCTL_OK;
}

int kosctl_refused(struct kosctl_ctx *ctx, const kos_access_result *res, const char *what)
{
	ctx->refused = true;
	ctx->tier = kos_tier_name(res->tier);
	ctx->reason = res->reason;
	kosctl_err("%s: refused: %s (as %s)", what, res->reason != NULL ? res->reason : "refused",
		   ctx->admin);
	return KOSCTL_FAIL;
}

/* The commands whose first argument after the subcommand is the name of
 * what they act on (a key, client or service): the ledger's resource. No
 * other argument is recorded: some are secrets or credentials. */
static bool names_resource(const char *group, const char *sub)
{
	static const char *const with_name[] = {
		"key create", "key rotate", "key retire", "key show", "key encrypt", "key sign",
		"key rewrap",
		"key pubkey", "key shares", "client add", "client show", "client disable",
		"client enable", "client secret", "trust show", "trust observe", "trust forget",
		"service register", "service rotate", "service show", "service ops",
		"service remove", "service token", "credential issue",
	};
	char both[64];
	size_t i;

	snprintf(both, sizeof(both), "%s %s", group, sub);
	for (i = 0; i < sizeof(with_name) / sizeof(with_name[0]); i++)
		if (strcmp(both, with_name[i]) == 0)
			return true;
	return false;
}

/* Step 7 for a local command that used the store: one ledger entry, the
 * local administrator as client, "local_GROUP_COMMAND" as action and what
 * it acted on as resource. argv is as the user gave it (before getopt
 * permuted it). The ledger's own commands read the ledger and write
 * nothing to it. */
static void record_local(struct kosctl_ctx *ctx, int argc, char **argv, int rc)
{
	char action[KOS_LEDGER_ACTION_MAX + 1];
	const char *sub = NULL, *res = NULL;
	kos_ledger_entry e;
	int i;

	if (ctx->store == NULL || ctx->client != NULL || strcmp(argv[0], "ledger") == 0)
		return;
	for (i = 1; i < argc && sub == NULL; i++)
		if (argv[i][0] != '-')
			sub = argv[i];
	if (sub != NULL && i < argc && argv[i][0] != '-' && names_resource(argv[0], sub) &&
	    (kos_key_name_valid(argv[i]) || kos_principal_name_valid(argv[i])))
		res = argv[i];
	snprintf(action, sizeof(action), "local_%s%s%s", argv[0], sub != NULL ? "_" : "",
		 sub != NULL ? sub : "");
	kos_ledger_entry_init(&e, kos_now(), ctx->admin, action, res,
			      ctx->tier != NULL ? ctx->tier : "-",
			      rc == KOSCTL_OK ? "allowed" : ctx->refused ? "refused" : "failed",
			      ctx->reason != NULL ? ctx->reason : "", "-");
	if (kos_ledger_append(ctx->store, &e, 1) != KOS_OK)
		kosctl_err("ledger: the decision could not be recorded: %s", kos_last_error());
}

int kosctl_need_keys(struct kosctl_ctx *ctx)
{
	kos_rv rv;

	if (ctx->keys != NULL)
		return KOSCTL_OK;
	if (kosctl_need_policy(ctx) != KOSCTL_OK || kosctl_need_store(ctx) != KOSCTL_OK)
		return KOSCTL_FAIL;
	if (ctx->hsm == NULL) {
		rv = kos_hsm_open(ctx->conf, 0, &ctx->hsm);
		if (rv != KOS_OK) {
			kosctl_err_rv(rv, "backend tokens");
			return KOSCTL_FAIL;
		}
	}
	rv = kos_keys_new(ctx->policy, ctx->store, ctx->hsm, &ctx->keys);
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "key service");
		return KOSCTL_FAIL;
	}
	return KOSCTL_OK;
}

int kosctl_need_services(struct kosctl_ctx *ctx)
{
	kos_rv rv;

	if (ctx->services != NULL)
		return KOSCTL_OK;
	if (kosctl_need_store(ctx) != KOSCTL_OK)
		return KOSCTL_FAIL;
	if (ctx->hsm == NULL) {
		rv = kos_hsm_open(ctx->conf, 0, &ctx->hsm);
		if (rv != KOS_OK) {
			kosctl_err_rv(rv, "backend tokens");
			return KOSCTL_FAIL;
		}
	}
	rv = kos_services_new(ctx->store, ctx->hsm, &ctx->services);
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "service orchestrator");
		return KOSCTL_FAIL;
	}
	return KOSCTL_OK;
}

int kosctl_need_ca(struct kosctl_ctx *ctx, bool tokens)
{
	kos_rv rv;

	if (ctx->ca != NULL && (!tokens || ctx->hsm != NULL))
		return KOSCTL_OK;
	if (kosctl_need_trust(ctx) != KOSCTL_OK)
		return KOSCTL_FAIL;
	if (tokens && ctx->hsm == NULL) {
		rv = kos_hsm_open(ctx->conf, 0, &ctx->hsm);
		if (rv != KOS_OK) {
			kosctl_err_rv(rv, "backend tokens");
			return KOSCTL_FAIL;
		}
	}
	kos_ca_free(ctx->ca);
	rv = kos_ca_new(ctx->policy, ctx->store, ctx->hsm, ctx->trust, &ctx->ca);
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "credential authority");
		return KOSCTL_FAIL;
	}
	return KOSCTL_OK;
}

kos_rv kosctl_read_all(FILE *f, size_t max, unsigned char **out, size_t *len, size_t *capp)
{
	kos_buf b;
	kos_rv rv;

	*out = NULL;
	*len = 0;
	*capp = 0;
	/* the buffer wipes what it held when it grows: the input may be a secret */
	kos_buf_init(&b, max);
	rv = kos_buf_read(&b, f);
	if (rv == KOS_OK)
		rv = kos_buf_take(&b, (char **)out, len, capp);
	kos_buf_uninit(&b);
	if (rv == KOS_E_RANGE)
		kosctl_err("input larger than %zu bytes", max);
	else if (rv == KOS_E_IO)
		kosctl_err("read error on standard input");
	else if (rv != KOS_OK)
		kosctl_err("out of memory");
	return rv;
}

kos_rv kosctl_parse_time(const char *s, kos_usec *out)
{
	kos_usec d;
	char *end;
	long long v;

	if (strcmp(s, "now") == 0) {
		*out = kos_now();
		return KOS_OK;
	}
	if (s[0] == '+' || s[0] == '-') {
		if (kos_duration_parse(s + 1, &d) != KOS_OK)
			return KOS_E_PARSE;
		*out = kos_now() + (s[0] == '+' ? d : -d);
		return KOS_OK;
	}
	if (s[0] == '@') {
		errno = 0;
		v = strtoll(s + 1, &end, 10);
		if (errno != 0 || end == s + 1 || *end != '\0' || v < 0 ||
		    v > INT64_MAX / KOS_USEC_PER_SEC)
			return KOS_E_PARSE;
		*out = (kos_usec)v * KOS_USEC_PER_SEC;
		return KOS_OK;
	}
	/* the form kosctl prints times in, so a printed time can be given back */
	return kos_time_parse(s, out);
}

enum { OPT_PROGRESS = 1000, OPT_NO_PROGRESS };

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "server", required_argument, NULL, 's' },
		{ "credential-file", required_argument, NULL, 'C' },
		{ "local", no_argument, NULL, 'L' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "progress", no_argument, NULL, OPT_PROGRESS },
		{ "no-progress", no_argument, NULL, OPT_NO_PROGRESS },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct kosctl_ctx ctx = { 0 };
	const struct kosctl_cmd *c;
	const char *cred_file = NULL, *env;
	int opt, rc, progress = -1;

	/* '+': stop at the first non-option, which is the command. */
	while ((opt = getopt_long(argc, argv, "+c:js:C:LvhV", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			ctx.config_path = optarg;
			break;
		case 'j':
			ctx.json = true;
			break;
		case 's':
			if (optarg[0] == '\0') {
				kosctl_err("--server: an empty address");
				return KOSCTL_USAGE;
			}
			ctx.server = optarg;
			break;
		case 'C':
			cred_file = optarg;
			break;
		case 'L':
			ctx.local = true;
			break;
		case 'v':
			ctx.verbose = true;
			break;
		case OPT_PROGRESS:
			progress = KOSCTL_PROGRESS_ALWAYS;
			break;
		case OPT_NO_PROGRESS:
			progress = KOSCTL_PROGRESS_NEVER;
			break;
		case 'h':
			usage(stdout);
			return KOSCTL_OK;
		case 'V':
			return cmd_version(&ctx, 0, NULL);
		default:
			usage(stderr);
			return KOSCTL_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return KOSCTL_USAGE;
	}
	/* the option wins over the environment */
	if (progress < 0 && (env = getenv("KOSCTL_PROGRESS")) != NULL && env[0] != '\0' &&
	    (progress = kosctl_progress_parse_mode(env)) < 0) {
		kosctl_err("KOSCTL_PROGRESS: '%.40s' is not always, never or auto", env);
		return KOSCTL_USAGE;
	}
	kosctl_progress_set_mode(progress < 0 ? KOSCTL_PROGRESS_AUTO
					      : (enum kosctl_progress_mode)progress);
	if (ctx.config_path == NULL)
		ctx.config_path = kos_config_default_path();
	if (ctx.local && ctx.server != NULL) {
		kosctl_err("--local and --server exclude each other");
		return KOSCTL_USAGE;
	}
	c = find_command(commands, sizeof(commands) / sizeof(commands[0]), argv[optind]);
	if (c == NULL) {
		kosctl_err("unknown command '%s'; try 'kosctl help'", argv[optind]);
		return KOSCTL_USAGE;
	}
	/* a copy: opening the client may unset the variable */
	if (cred_file == NULL && (cred_file = getenv(KOS_CLIENT_ENV_CREDENTIAL_FILE)) != NULL &&
	    cred_file[0] == '\0')
		cred_file = NULL;
	if (cred_file != NULL && (ctx.cred_file = strdup(cred_file)) == NULL) {
		kosctl_err("out of memory");
		return KOSCTL_FAIL;
	}
	{
		int first = optind;
		/* the command's getopt permutes argv; the ledger reads it as given */
		char **given = calloc((size_t)(argc - first) + 1, sizeof(*given));

		if (given == NULL) {
			kosctl_err("out of memory");
			free(ctx.cred_file);
			return KOSCTL_FAIL;
		}
		memcpy(given, argv + first, (size_t)(argc - first) * sizeof(*given));
		/* Each command parses its own options with getopt from its own
		 * argv[0]; optind = 0 makes glibc's getopt start afresh. */
		optind = 0;
		local_admin_name(&ctx);
		rc = c->fn(&ctx, argc - first, argv + first);
		kosctl_progress_done();
		record_local(&ctx, argc - first, given, rc);
		free(given);
	}
	kos_client_free(ctx.client);
	kos_access_free(ctx.access);
	free(ctx.cred_file);
	/* the key service borrows the policy, the store and the tokens */
	kos_ca_free(ctx.ca);
	kos_keys_free(ctx.keys);
	kos_services_free(ctx.services);
	kos_hsm_free(ctx.hsm);
	kos_trust_free(ctx.trust);
	kos_store_free(ctx.store);
	kos_policy_free(ctx.policy);
	kos_config_free(ctx.conf);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		kosctl_err("error writing standard output");
		return KOSCTL_FAIL;
	}
	return rc;
}
