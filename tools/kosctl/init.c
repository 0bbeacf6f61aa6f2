/* kosctl init: make a development installation (SoftHSM tokens, PINs,
 * kos.conf, policy, state store) in one directory with kos_devinit(). */
#include "config.h"

#include "tools/kosctl/kosctl.h"
#include "tools/kosctl/progress.h"

#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static void init_usage(FILE *f)
{
	fprintf(f,
		"usage: kosctl init --dir DIR [--kms N] [--policy FILE] [--module PATH]\n"
		"\n"
		"Makes a complete development installation in DIR (created when missing):\n"
		"SoftHSM tokens kms1..kmsN, signer, ca and trust1..trust4, random PINs in\n"
		"DIR/pins (owner only), a copy of the policy, the state store, and\n"
		"DIR/kos.conf naming them all with absolute paths. Refuses a DIR that\n"
		"already holds an installation; removes what it made when it fails.\n"
		"\n"
		"options:\n"
		"  -d, --dir DIR       where to make the installation\n"
		"  -n, --kms N         KMS tokens, %d to %d (default %d)\n"
		"  -p, --policy FILE   policy to copy (default: $KOS_POLICY_DIR/default.policy,\n"
		"                      else %s)\n"
		"  -m, --module PATH   the SoftHSMv2 module (default %s)\n"
		"  -h, --help          show this help\n"
		"\n"
		"Then: export KOS_CONF=DIR/kos.conf\n",
		KOS_DEVINIT_KMS_MIN, KOS_DEVINIT_KMS_MAX, KOS_DEVINIT_KMS_DEFAULT,
		KOS_DATADIR "/policy/default.policy", KOS_SOFTHSM_MODULE);
}

static int usage_error(void)
{
	kosctl_err("try 'kosctl init --help'");
	return KOSCTL_USAGE;
}

static bool parse_count(const char *s, unsigned *out)
{
	unsigned long v = 0;
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9' || v > 1000)
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (i == 0 || v < KOS_DEVINIT_KMS_MIN || v > KOS_DEVINIT_KMS_MAX)
		return false;
	*out = (unsigned)v;
	return true;
}

/* Prints what the installation holds, read back from its kos.conf. */
static int report(struct kosctl_ctx *ctx, const char *dir, const char *policy_src)
{
	char conf_path[PATH_MAX + 16];
	kos_config *conf = NULL;
	char *diag = NULL;
	size_t i, n;
	kos_rv rv;
	int rc = KOSCTL_OK;

	snprintf(conf_path, sizeof(conf_path), "%s/kos.conf", dir);
	rv = kos_config_load(conf_path, &conf, &diag);
	kos_free(diag);
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "reading the new kos.conf back");
		return KOSCTL_FAIL;
	}
	n = kos_config_token_count(conf);
	if (ctx->json) {
		json_t *toks = json_array(), *v;

		for (i = 0; toks != NULL && i < n; i++) {
			kos_token_role role = KOS_TOKEN_ROLE_KMS;

			kos_config_token_get_role(conf, i, &role);
			if (json_array_append_new(
				    toks, json_pack("{s:s, s:s, s:s, s:s}", "name",
						    kos_config_token_get0_name(conf, i), "role",
						    kos_token_role_name(role), "uri",
						    kos_config_token_get0_uri(conf, i), "pin",
						    kos_config_token_get0_pin(conf, i))) != 0) {
				json_decref(toks);
				toks = NULL;
			}
		}
		v = toks == NULL ? NULL
				 : json_pack("{s:s, s:s, s:s, s:s, s:o}", "dir", dir, "config", conf_path,
					     "policy", kos_config_get0_policy(conf), "store",
					     kos_config_get0_store(conf), "tokens", toks);
		if (v == NULL || json_dumpf(v, stdout, JSON_INDENT(2)) != 0 ||
		    fputc('\n', stdout) == EOF) {
			kosctl_err("cannot print JSON");
			rc = KOSCTL_FAIL;
		}
		json_decref(v);
		kos_config_free(conf);
		return rc;
	}
	printf("made a development installation in %s\n", dir);
	printf("  %-13s %s\n", "configuration", conf_path);
	printf("  %-13s %s (a copy of %s)\n", "policy", kos_config_get0_policy(conf), policy_src);
	printf("  %-13s %s\n", "state store", kos_config_get0_store(conf));
	for (i = 0; i < kos_config_env_count(conf); i++)
		printf("  %-13s %s=%s\n", i == 0 ? "environment" : "",
		       kos_config_env_get0_name(conf, i), kos_config_env_get0_value(conf, i));
	printf("  %-13s %s/pins (owner only)\n", "PINs", dir);
	printf("  %-13s", "tokens");
	for (i = 0; i < n; i++) {
		kos_token_role role = KOS_TOKEN_ROLE_KMS;

		kos_config_token_get_role(conf, i, &role);
		printf(" %s(%s)", kos_config_token_get0_name(conf, i), kos_token_role_name(role));
	}
	printf("\n\nTo use it:\n  export KOS_CONF=%s\n", conf_path);
	kos_config_free(conf);
	return rc;
}

int kosctl_cmd_init(struct kosctl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "kms", required_argument, NULL, 'n' },
		{ "policy", required_argument, NULL, 'p' },
		{ "module", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = NULL, *policy = NULL, *module = NULL;
	char policy_buf[PATH_MAX], abs_dir[PATH_MAX];
	unsigned n_kms = KOS_DEVINIT_KMS_DEFAULT;
	kos_rv rv;
	int opt;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":d:n:p:m:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			dir = optarg;
			break;
		case 'n':
			if (!parse_count(optarg, &n_kms)) {
				kosctl_err("init: --kms takes a number from %d to %d, not '%s'",
					   KOS_DEVINIT_KMS_MIN, KOS_DEVINIT_KMS_MAX, optarg);
				return usage_error();
			}
			break;
		case 'p':
			policy = optarg;
			break;
		case 'm':
			module = optarg;
			break;
		case 'h':
			init_usage(stdout);
			return KOSCTL_OK;
		case ':':
			kosctl_err("init: option '%s' needs a value", argv[optind - 1]);
			return usage_error();
		default:
			kosctl_err("init: unknown option '%s'", argv[optind - 1]);
			return usage_error();
		}
	}
	if (optind < argc) {
		kosctl_err("init: unexpected argument '%s'", argv[optind]);
		return usage_error();
	}
	if (dir == NULL) {
		kosctl_err("init: --dir DIR is required");
		return usage_error();
	}
	if (policy == NULL) {
		const char *pd = getenv("KOS_POLICY_DIR");

		if (pd != NULL && pd[0] != '\0')
			snprintf(policy_buf, sizeof(policy_buf), "%s/default.policy", pd);
		else
			snprintf(policy_buf, sizeof(policy_buf), "%s", KOS_DATADIR "/policy/default.policy");
		policy = policy_buf;
	}
	/* tokens made and keys generated in them: seconds */
	kosctl_progress_start(0, "init");
	rv = kos_devinit(dir, n_kms, policy, module);
	kosctl_progress_done();
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "init");
		return KOSCTL_FAIL;
	}
	if (realpath(dir, abs_dir) == NULL)
		snprintf(abs_dir, sizeof(abs_dir), "%s", dir);
	return report(ctx, abs_dir, policy);
}
