/* kosctl trust: show, record, list and forget clients' trust.
 *
 * --at TIME evaluates (or records) at another instant through the engine's
 * clock hook: "show --at +7d" is what decay will have done in a week.
 * With a server, show, observe, list and forget go through kosd (scope
 * admin:trust) unless --at asks for the store's what-if.
 * --json (global) prints the JSON of tools/common/kosjson.c either way. */
#include "config.h"

#include "tools/kosctl/kosctl.h"
#include "tools/common/kosjson.h"

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
				kosctl_err("trust %s: bad time '%s' (now, +3d, -2h, "
					   "2026-12-07T10:00:00Z, @EPOCHSECONDS)",
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
	if (kos_principal_name_valid(client))
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

static int print_json(json_t *v)
{
	return kosctl_print_json(v, JSON_FLAGS);
}

/* What 'trust show' prints, from the JSON of kosj_trust_info() (the
 * store's or kosd's). */
static void print_info(const json_t *o)
{
	const json_t *f = json_object_get(o, "factors");
	int i;

	printf("%-19s %s\n", "client:", kosctl_jstr(o, "client"));
	printf("%-19s %.1f\n", "score:", kosctl_jnum(o, "score"));
	printf("%-19s %s\n", "tier:", kosctl_jstr(o, "tier"));
	for (i = 0; i < KOS_FACTOR_COUNT; i++) {
		const char *name = kos_factor_name((kos_factor)i);

		printf("%s:%*s %.1f\n", name, (int)(18 - strlen(name)), "", kosctl_jnum(f, name));
	}
	printf("%-19s %s\n", "created:", kosctl_jstr(o, "created"));
	printf("%-19s %s\n", "last activity:", kosctl_jstr(o, "last_activity"));
	printf("%-19s %lld\n", "observations:", kosctl_jint(o, "observations"));
	printf("%-19s %lld\n", "integrity failures:", kosctl_jint(o, "integrity_failures"));
	printf("%-19s %lld\n", "scope violations:", kosctl_jint(o, "scope_violations"));
	printf("%-19s %s\n", "anomalous:", kosctl_jbool(o, "anomalous") ? "yes" : "no");
	/* a kosd older than the ceiling sends none: print nothing rather
	 * than a made-up 0 */
	if (json_object_get(o, "ceiling") != NULL) {
		const char *since = kosctl_jstr(o, "ceiling_since");

		if (since[0] != '\0' && strcmp(since, "-") != 0)
			printf("%-19s %.1f (rising since the penalty at %s)\n", "ceiling:",
			       kosctl_jnum(o, "ceiling"), since);
		else
			printf("%-19s %.1f\n", "ceiling:", kosctl_jnum(o, "ceiling"));
	}
}

/* Prints one client's trust (taking o): as JSON, or as 'trust show' does. */
static int print_trust(struct kosctl_ctx *ctx, json_t *o)
{
	if (ctx->json || o == NULL)
		return print_json(o);
	print_info(o);
	json_decref(o);
	return KOSCTL_OK;
}

/* --- show --- */

static void show_usage(FILE *f)
{
	fprintf(f, "usage: kosctl trust show CLIENT [--at TIME]\n"
		   "\n"
		   "Shows a client's trust: score (0-100), tier, the five factors, created and\n"
		   "last activity (UTC), counters, whether it is flagged anomalous, and the\n"
		   "ceiling its last penalty set on the score (it rises back to 100 with time,\n"
		   "see kos-trust(7)). Idle scores decay toward the policy's prior; --at shows\n"
		   "the trust at TIME: now, +7d or -2h (relative to now), an ISO 8601 UTC\n"
		   "time such as 2026-12-07T10:00:00Z, or @EPOCHSECONDS.\n"
		   "With a server, through kosd (scope admin:trust), except with --at, which\n"
		   "reads the store.\n"
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
	/* --at is an offline what-if on the store; kosd answers for now */
	if (!have_at && kosctl_remote(ctx)) {
		char path[128];
		json_t *ans;

		snprintf(path, sizeof(path), "/v1/admin/trust/%s", argv[optind]);
		if (kosctl_call(ctx, "trust show", "GET", path, NULL, &ans) != KOSCTL_OK)
			return KOSCTL_FAIL;
		return print_trust(ctx, ans);
	}
	if (load_trust(ctx, have_at, &at) != KOSCTL_OK)
		return KOSCTL_FAIL;
	rv = kos_trust_get(ctx->trust, argv[optind], &info);
	kos_trust_set_clock(ctx->trust, NULL, NULL);
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "trust show");
		return KOSCTL_FAIL;
	}
	return print_trust(ctx, kosj_trust_info(&info));
}

/* --- observe --- */

static void observe_usage(FILE *f)
{
	fprintf(f, "usage: kosctl trust observe CLIENT EVENT [VALUE [BYTES]] [--at TIME]\n"
		   "\n"
		   "Records one observation of CLIENT (created at the policy's prior on first\n"
		   "sight) and prints the resulting score and tier; through kosd when a\n"
		   "server is set (scope admin:trust) and --at is not given. EVENT is one of:\n"
		   "  latency MS        a request took MS milliseconds\n"
		   "  success           an operation succeeded\n"
		   "  failure           an operation failed\n"
		   "  integrity         bad signature, failed tag, forged or malformed credential\n"
		   "  usage OPS [BYTES] operations and bytes used, against the policy's quota\n"
		   "  scope             a request outside the credential's scope\n"
		   "  reputation VALUE  a reputation feed's value, 0..100\n"
		   "\n"
		   "options:\n"
		   "  --at TIME   record at TIME (now, +3d, -2h, 2026-12-07T10:00:00Z or\n"
		   "              @EPOCHSECONDS) instead of now\n"
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

/* POST /v1/admin/trust/CLIENT/observe; kosd records at once and answers
 * the client's trust. */
static int observe_remote(struct kosctl_ctx *ctx, const char *client, const char *event,
			  const kos_observation *obs, int nvals)
{
	json_t *body = json_pack("{s:s}", "event", event), *ans;
	char path[128];
	int bad = body == NULL;

	if (!bad && obs->event == KOS_EVENT_USAGE)
		bad = json_object_set_new(body, "ops", json_integer((json_int_t)obs->ops)) != 0 ||
		      (nvals == 2 &&
		       json_object_set_new(body, "bytes", json_integer((json_int_t)obs->bytes)) != 0);
	else if (!bad && nvals == 1)
		bad = json_object_set_new(body, "value", json_real(obs->value)) != 0;
	if (bad || obs->ops > (uint64_t)INT64_MAX || obs->bytes > (uint64_t)INT64_MAX) {
		json_decref(body);
		kosctl_err("trust observe: out of memory, or a count too large for kosd");
		return KOSCTL_FAIL;
	}
	snprintf(path, sizeof(path), "/v1/admin/trust/%s/observe", client);
	if (kosctl_call(ctx, "trust observe", "POST", path, body, &ans) != KOSCTL_OK)
		return KOSCTL_FAIL;
	if (ctx->json)
		return print_json(ans);
	printf("%s: score %.1f, tier %s\n", kosctl_jstr(ans, "client"), kosctl_jnum(ans, "score"),
	       kosctl_jstr(ans, "tier"));
	json_decref(ans);
	return KOSCTL_OK;
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

	if (!have_at && kosctl_remote(ctx))
		return observe_remote(ctx, client, event, &obs, nvals);
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
		return print_json(kosj_trust_info(&info));
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
		   "prints. Through kosd when a server is set and --at is not given.\n"
		   "\n"
		   "options:\n"
		   "  --at TIME   evaluate at TIME (now, +7d, -2h, 2026-12-07T10:00:00Z or\n"
		   "              @EPOCHSECONDS)\n"
		   "  -h, --help  show this help\n");
}

static void list_line_json(const json_t *o)
{
	printf("%-24s %5.1f  %-6s  %s\n", kosctl_jstr(o, "client"), kosctl_jnum(o, "score"),
	       kosctl_jstr(o, "tier"), kosctl_jstr(o, "last_activity"));
}

static int list_line(const kos_trust_info *info, void *arg)
{
	json_t *o = kosj_trust_info(info);

	(void)arg;
	if (o == NULL)
		return KOS_E_NOMEM;
	list_line_json(o);
	json_decref(o);
	return 0;
}

static int list_json(const kos_trust_info *info, void *arg)
{
	json_t *arr = arg;

	/* json_array_append_new releases the value even when it fails */
	return json_array_append_new(arr, kosj_trust_info(info)) == 0 ? 0 : KOS_E_NOMEM;
}

static int list_remote(struct kosctl_ctx *ctx)
{
	json_t *ans, *arr, *o;
	size_t i;

	if (kosctl_call(ctx, "trust list", "GET", "/v1/admin/trust", NULL, &ans) != KOSCTL_OK)
		return KOSCTL_FAIL;
	arr = json_object_get(ans, "clients");
	if (!json_is_array(arr)) {
		json_decref(ans);
		kosctl_err("trust list: kosd's answer has no client list");
		return KOSCTL_FAIL;
	}
	if (ctx->json) {
		json_incref(arr);
		json_decref(ans);
		return print_json(arr);
	}
	json_array_foreach(arr, i, o)
		list_line_json(o);
	json_decref(ans);
	return KOSCTL_OK;
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
	if (!have_at && kosctl_remote(ctx))
		return list_remote(ctx);
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
		   "Through kosd when a server is set (scope admin:trust). Exit status 1 for\n"
		   "an unknown client.\n"
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
	if (kosctl_remote(ctx)) {
		char path[64 + KOS_KEY_NAME_MAX];

		snprintf(path, sizeof(path), "/v1/admin/trust/%s/forget", argv[optind]);
		return kosctl_call(ctx, "trust forget", "POST", path, json_object(), NULL);
	}
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
