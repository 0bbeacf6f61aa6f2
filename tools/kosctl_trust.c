/* kosctl trust: show, record, list and forget clients' trust.
 *
 * --at TIME evaluates (or records) at another instant through the engine's
 * clock hook: "show --at +7d" is what decay will have done in a week.
 * --json (global) prints through jansson. */
#include "config.h"

#include "tools/kosctl.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define JSON_FLAGS (JSON_INDENT(2) | JSON_REAL_PRECISION(10))

static int usage_hint(const char *sub)
{
	kosctl_err("try 'kosctl trust %s --help'", sub);
	return KOSCTL_USAGE;
}

/* Reports a getopt failure; returns KOSCTL_USAGE. */
static int bad_option(const char *sub, int opt, char **argv)
{
	const char *arg = argv[optind - 1];

	if (opt == ':')
		kosctl_err("trust %s: option '%s' needs a value", sub, arg);
	else if (arg[0] == '-' && arg[1] >= '0' && arg[1] <= '9')
		kosctl_err("trust %s: '%s': values are never negative", sub, arg);
	else if (optopt != 0)
		kosctl_err("trust %s: unknown option '-%c'", sub, optopt);
	else
		kosctl_err("trust %s: unknown option '%s'", sub, arg);
	return usage_hint(sub);
}

static kos_usec fixed_clock(void *arg)
{
	return *(const kos_usec *)arg;
}

/* Parses the common options (--at, --help); on return *done is true when
 * the command is over with the returned status. */
static int parse_options(const char *sub, void (*usage)(FILE *), int argc, char **argv,
			 bool allow_at, kos_usec *at, bool *have_at, bool *done)
{
	static const struct option with_at[] = {
	    {"at", required_argument, NULL, 'a'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int opt;

	*done = true;
	*have_at = false;
	opterr = 0;
	/* with_at + 1: the same options without --at */
	while ((opt = getopt_long(argc, argv, allow_at ? ":a:h" : ":h",
				  allow_at ? with_at : with_at + 1, NULL)) != -1) {
		switch (opt) {
		case 'a':
			if (kosctl_parse_time(optarg, at) != KOS_OK) {
				kosctl_err("trust %s: bad time '%s' (now, +3d, -2h, @EPOCHSECONDS)",
					   sub, optarg);
				return usage_hint(sub);
			}
			*have_at = true;
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

static int check_client(const char *sub, const char *client)
{
	if (kos_client_name_valid(client))
		return KOSCTL_OK;
	kosctl_err("trust %s: invalid client name '%.80s' (1 to 64 of A-Z a-z 0-9 . _ @ -, "
		   "not starting with . or -)",
		   sub, client);
	return usage_hint(sub);
}

/* Loads the engine and, with --at, points its clock at *at. */
static int load_trust(struct kosctl_ctx *ctx, bool have_at, kos_usec *at)
{
	if (kosctl_need_trust(ctx) != KOSCTL_OK)
		return KOSCTL_FAIL;
	kos_trust_set_clock(ctx->trust, have_at ? fixed_clock : NULL, have_at ? at : NULL);
	return KOSCTL_OK;
}

/* ISO 8601 in UTC, to the second. */
static void format_time(kos_usec t, char *buf, size_t len)
{
	time_t s = (time_t)(t / KOS_USEC_PER_SEC);
	struct tm tm;

	if (t < 0 || gmtime_r(&s, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "@%lld", (long long)(t / KOS_USEC_PER_SEC));
}

/* Three decimals are plenty, and keep JSON free of binary-fraction noise. */
static double round3(double v)
{
	return round(v * 1000.0) / 1000.0;
}

static json_t *info_json(const kos_trust_info *info)
{
	char created[32], last[32];

	format_time(info->created, created, sizeof(created));
	format_time(info->last_activity, last, sizeof(last));
	return json_pack(
	    "{s:s, s:f, s:s, s:{s:f, s:f, s:f, s:f, s:f}, s:s, s:s, s:I, s:I, s:I, s:b}", "client",
	    info->client, "score", round3(info->score), "tier", kos_tier_name(info->tier),
	    "factors", kos_factor_name(KOS_FACTOR_LATENCY),
	    round3(info->factor[KOS_FACTOR_LATENCY]), kos_factor_name(KOS_FACTOR_INTEGRITY),
	    round3(info->factor[KOS_FACTOR_INTEGRITY]), kos_factor_name(KOS_FACTOR_USAGE),
	    round3(info->factor[KOS_FACTOR_USAGE]), kos_factor_name(KOS_FACTOR_ANOMALY),
	    round3(info->factor[KOS_FACTOR_ANOMALY]), kos_factor_name(KOS_FACTOR_REPUTATION),
	    round3(info->factor[KOS_FACTOR_REPUTATION]), "created", created, "last_activity", last,
	    "observations", (json_int_t)info->observations, "integrity_failures",
	    (json_int_t)info->integrity_failures, "scope_violations",
	    (json_int_t)info->scope_violations, "anomalous", info->anomalous ? 1 : 0);
}

/* Prints and releases a JSON value; KOSCTL_FAIL when it could not be. */
static int print_json(json_t *v)
{
	int rc = KOSCTL_OK;

	if (v == NULL) {
		kosctl_err("out of memory building JSON");
		return KOSCTL_FAIL;
	}
	if (json_dumpf(v, stdout, JSON_FLAGS) != 0 || fputc('\n', stdout) == EOF) {
		kosctl_err("error writing standard output");
		rc = KOSCTL_FAIL;
	}
	json_decref(v);
	return rc;
}

static void print_info(const kos_trust_info *info)
{
	char created[32], last[32];
	int i;

	format_time(info->created, created, sizeof(created));
	format_time(info->last_activity, last, sizeof(last));
	printf("%-19s %s\n", "client:", info->client);
	printf("%-19s %.1f\n", "score:", info->score);
	printf("%-19s %s\n", "tier:", kos_tier_name(info->tier));
	for (i = 0; i < KOS_FACTOR_COUNT; i++)
		printf("%s:%*s %.1f\n", kos_factor_name((kos_factor)i),
		       (int)(18 - strlen(kos_factor_name((kos_factor)i))), "", info->factor[i]);
	printf("%-19s %s\n", "created:", created);
	printf("%-19s %s\n", "last activity:", last);
	printf("%-19s %llu\n", "observations:", (unsigned long long)info->observations);
	printf("%-19s %llu\n", "integrity failures:", (unsigned long long)info->integrity_failures);
	printf("%-19s %llu\n", "scope violations:", (unsigned long long)info->scope_violations);
	printf("%-19s %s\n", "anomalous:", info->anomalous ? "yes" : "no");
}

/* --- show --- */

static void show_usage(FILE *f)
{
	fprintf(f, "usage: kosctl trust show CLIENT [--at TIME]\n"
		   "\n"
		   "Shows a client's trust: score (0-100), tier, the five factors, created and\n"
		   "last activity (UTC), counters, and whether it is flagged anomalous. Idle\n"
		   "scores decay toward the policy's prior; --at shows the trust at TIME:\n"
		   "now, +7d or -2h (relative to now), or @EPOCHSECONDS.\n"
		   "\n"
		   "options:\n"
		   "  --at TIME   evaluate at TIME instead of now\n"
		   "  -h, --help  show this help\n"
		   "\n"
		   "Exit status 1 for a client never observed.\n");
}

static int cmd_show(struct kosctl_ctx *ctx, int argc, char **argv)
{
	kos_trust_info info;
	kos_usec at = 0;
	bool have_at, done;
	kos_rv rv;
	int rc;

	rc = parse_options("show", show_usage, argc, argv, true, &at, &have_at, &done);
	if (done)
		return rc;
	if (argc - optind != 1) {
		kosctl_err(argc - optind < 1 ? "trust show: which client?"
					     : "trust show: one client at a time");
		return usage_hint("show");
	}
	if (check_client("show", argv[optind]) != KOSCTL_OK)
		return KOSCTL_USAGE;
	if (load_trust(ctx, have_at, &at) != KOSCTL_OK)
		return KOSCTL_FAIL;
	rv = kos_trust_get(ctx->trust, argv[optind], &info);
	kos_trust_set_clock(ctx->trust, NULL, NULL);
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "trust show");
		return KOSCTL_FAIL;
	}
	if (ctx->json)
		return print_json(info_json(&info));
	print_info(&info);
	return KOSCTL_OK;
}

/* --- observe --- */

static void observe_usage(FILE *f)
{
	fprintf(f, "usage: kosctl trust observe CLIENT EVENT [VALUE [BYTES]] [--at TIME]\n"
		   "\n"
		   "Records one observation of CLIENT (created at the policy's prior on first\n"
		   "sight) and prints the resulting score and tier. EVENT is one of:\n"
		   "  latency MS        a request took MS milliseconds\n"
		   "  success           an operation succeeded\n"
		   "  failure           an operation failed\n"
		   "  integrity         bad signature, failed tag, forged or malformed credential\n"
		   "  usage OPS [BYTES] operations and bytes used, against the policy's quota\n"
		   "  scope             a request outside the credential's scope\n"
		   "  reputation VALUE  a reputation feed's value, 0..100\n"
		   "\n"
		   "options:\n"
		   "  --at TIME   record at TIME (now, +3d, -2h, @EPOCHSECONDS) instead of now\n"
		   "  -h, --help  show this help\n");
}

/* A finite decimal number, nothing else on the argument. */
static bool parse_number(const char *s, double *out)
{
	char *end;
	double v;

	if (s[0] == '\0' || s[0] == ' ' || s[0] == '\t')
		return false;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || !isfinite(v))
		return false;
	*out = v;
	return true;
}

/* A whole decimal number that fits in 64 bits; no sign. */
static bool parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	if (i == 0)
		return false;
	*out = v;
	return true;
}

static int cmd_observe(struct kosctl_ctx *ctx, int argc, char **argv)
{
	kos_observation obs = {0};
	kos_trust_info info;
	const char *client, *event;
	char **vals;
	int nvals, min_vals = 0, max_vals = 0, rc;
	kos_usec at = 0;
	bool have_at, done;
	kos_rv rv;

	rc = parse_options("observe", observe_usage, argc, argv, true, &at, &have_at, &done);
	if (done)
		return rc;
	if (argc - optind < 2) {
		kosctl_err("trust observe: CLIENT and EVENT are required");
		return usage_hint("observe");
	}
	client = argv[optind];
	event = argv[optind + 1];
	vals = argv + optind + 2;
	nvals = argc - optind - 2;
	if (check_client("observe", client) != KOSCTL_OK)
		return KOSCTL_USAGE;
	if (kos_event_parse(event, &obs.event) != KOS_OK) {
		kosctl_err("trust observe: %s", kos_last_error());
		return usage_hint("observe");
	}
	switch (obs.event) {
	case KOS_EVENT_LATENCY:
	case KOS_EVENT_REPUTATION:
		min_vals = max_vals = 1;
		break;
	case KOS_EVENT_USAGE:
		min_vals = 1;
		max_vals = 2;
		break;
	default:
		break;
	}
	if (nvals < min_vals) {
		kosctl_err("trust observe: %s needs a value (%s)", event,
			   obs.event == KOS_EVENT_LATENCY ? "milliseconds"
			   : obs.event == KOS_EVENT_USAGE ? "operations, then optionally bytes"
							  : "0..100");
		return usage_hint("observe");
	}
	if (nvals > max_vals) {
		kosctl_err("trust observe: unexpected argument '%s' after %s", vals[max_vals],
			   event);
		return usage_hint("observe");
	}
	if (obs.event == KOS_EVENT_USAGE) {
		if (!parse_u64(vals[0], &obs.ops) ||
		    (nvals == 2 && !parse_u64(vals[1], &obs.bytes))) {
			kosctl_err("trust observe: usage wants whole numbers: OPS [BYTES]");
			return usage_hint("observe");
		}
		obs.value = (double)obs.ops;
	} else if (nvals == 1 && !parse_number(vals[0], &obs.value)) {
		kosctl_err("trust observe: %s wants a number, not '%s'", event, vals[0]);
		return usage_hint("observe");
	}

	if (load_trust(ctx, have_at, &at) != KOSCTL_OK)
		return KOSCTL_FAIL;
	rv = kos_trust_observe(ctx->trust, client, &obs, &info);
	kos_trust_set_clock(ctx->trust, NULL, NULL);
	if (rv == KOS_E_INVALID) {
		/* the value was out of range (latency < 0, reputation not 0..100) */
		kosctl_err_rv(rv, "trust observe");
		return usage_hint("observe");
	}
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "trust observe");
		return KOSCTL_FAIL;
	}
	if (ctx->json)
		return print_json(info_json(&info));
	printf("%s: score %.1f, tier %s\n", info.client, info.score, kos_tier_name(info.tier));
	return KOSCTL_OK;
}

/* --- list --- */

static void list_usage(FILE *f)
{
	fprintf(f, "usage: kosctl trust list [--at TIME]\n"
		   "\n"
		   "Lists every known client, in name order, one a line: name, score, tier\n"
		   "and last activity (UTC). With --json, a JSON array of what 'trust show'\n"
		   "prints.\n"
		   "\n"
		   "options:\n"
		   "  --at TIME   evaluate at TIME (now, +7d, -2h, @EPOCHSECONDS)\n"
		   "  -h, --help  show this help\n");
}

static int list_line(const kos_trust_info *info, void *arg)
{
	char last[32];

	(void)arg;
	format_time(info->last_activity, last, sizeof(last));
	printf("%-24s %5.1f  %-6s  %s\n", info->client, info->score, kos_tier_name(info->tier),
	       last);
	return 0;
}

static int list_json(const kos_trust_info *info, void *arg)
{
	json_t *arr = arg;

	/* json_array_append_new releases the value even when it fails */
	return json_array_append_new(arr, info_json(info)) == 0 ? 0 : KOS_E_NOMEM;
}

static int cmd_list(struct kosctl_ctx *ctx, int argc, char **argv)
{
	json_t *arr = NULL;
	kos_usec at = 0;
	bool have_at, done;
	kos_rv rv;
	int rc;

	rc = parse_options("list", list_usage, argc, argv, true, &at, &have_at, &done);
	if (done)
		return rc;
	if (optind < argc) {
		kosctl_err("trust list: unexpected argument '%s'", argv[optind]);
		return usage_hint("list");
	}
	if (load_trust(ctx, have_at, &at) != KOSCTL_OK)
		return KOSCTL_FAIL;
	if (ctx->json) {
		arr = json_array();
		if (arr == NULL) {
			kosctl_err("out of memory building JSON");
			return KOSCTL_FAIL;
		}
	}
	rv = kos_trust_list(ctx->trust, arr != NULL ? list_json : list_line, arr);
	kos_trust_set_clock(ctx->trust, NULL, NULL);
	if (rv != KOS_OK) {
		if (rv == KOS_E_NOMEM && arr != NULL)
			kosctl_err("trust list: out of memory building JSON");
		else
			kosctl_err_rv(rv, "trust list");
		json_decref(arr);
		return KOSCTL_FAIL;
	}
	if (arr != NULL)
		return print_json(arr);
	return KOSCTL_OK;
}

/* --- forget --- */

static void forget_usage(FILE *f)
{
	fprintf(f, "usage: kosctl trust forget CLIENT\n"
		   "\n"
		   "Removes a client's trust state; seen again, it starts over at the prior.\n"
		   "Exit status 1 for an unknown client.\n"
		   "\n"
		   "options:\n"
		   "  -h, --help  show this help\n");
}

static int cmd_forget(struct kosctl_ctx *ctx, int argc, char **argv)
{
	kos_usec at = 0;
	bool have_at, done;
	kos_rv rv;
	int rc;

	rc = parse_options("forget", forget_usage, argc, argv, false, &at, &have_at, &done);
	if (done)
		return rc;
	if (argc - optind != 1) {
		kosctl_err(argc - optind < 1 ? "trust forget: which client?"
					     : "trust forget: one client at a time");
		return usage_hint("forget");
	}
	if (check_client("forget", argv[optind]) != KOSCTL_OK)
		return KOSCTL_USAGE;
	if (kosctl_need_trust(ctx) != KOSCTL_OK)
		return KOSCTL_FAIL;
	rv = kos_trust_forget(ctx->trust, argv[optind]);
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "trust forget");
		return KOSCTL_FAIL;
	}
	return KOSCTL_OK;
}

int kosctl_cmd_trust(struct kosctl_ctx *ctx, int argc, char **argv)
{
	static const struct kosctl_cmd cmds[] = {
	    {"show", cmd_show, "show a client's score, tier and factors"},
	    {"observe", cmd_observe, "record an observation of a client"},
	    {"list", cmd_list, "list every client with score, tier and last activity"},
	    {"forget", cmd_forget, "remove a client's trust state"},
	    {NULL, NULL, NULL},
	};

	return kosctl_dispatch(ctx, "trust", cmds, argc, argv);
}
