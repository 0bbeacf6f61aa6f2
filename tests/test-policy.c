/* Policy files: the shipped policies, every validation rule with the line it
 * reports, the integer-overflow guard, file handling and the summary. */
#include "config.h"

#include "kos/internal.h"
#include "tests/kos-test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEC KOS_USEC_PER_SEC

/* One share set as policy text. */
#define SET(name, lo, hi, n, k) \
	"{ name = \"" name "\"; min_score = " #lo "; max_score = " #hi "; n = " #n "; k = " #k "; }"

/* Writes text to a new file in the temporary directory; returns its path
 * (valid until the fourth next call). */
static const char *write_file(const char *text, size_t len)
{
	static char paths[4][512];
	static unsigned seq;
	char *path = paths[seq % 4];
	FILE *f;

	snprintf(path, sizeof(paths[0]), "%s/p%u.policy", kos_test_tmpdir(), seq++);
	f = fopen(path, "wb");
	CU_ASSERT_FATAL(f != NULL);
	CU_ASSERT_FATAL(fwrite(text, 1, len, f) == len);
	CU_ASSERT_FATAL(fclose(f) == 0);
	return path;
}

static const char *write_policy(const char *text)
{
	return write_file(text, strlen(text));
}

/* Loads text, expecting it to be refused; returns the problems (free them)
 * and the path they name in *path. */
static char *refused(const char *text, const char **path)
{
	kos_policy *pol = (kos_policy *)&pol; /* must come back NULL */
	char *diag = NULL;
	kos_rv rv;

	*path = write_policy(text);
	rv = kos_policy_load(*path, &pol, &diag);
	CU_ASSERT_EQUAL(rv, KOS_E_POLICY);
	CU_ASSERT_PTR_NULL(pol);
	CU_ASSERT_PTR_NOT_NULL_FATAL(diag);
	return diag;
}

/* Loads text, expecting success. */
static kos_policy *accepted(const char *text)
{
	kos_policy *pol = NULL;
	char *diag = NULL;
	kos_rv rv;

	rv = kos_policy_load(write_policy(text), &pol, &diag);
	if (rv != KOS_OK)
		fprintf(stderr, "\nunexpected refusal:\n%s", diag ? diag : kos_last_error());
	CU_ASSERT_EQUAL_FATAL(rv, KOS_OK);
	CU_ASSERT_PTR_NULL(diag);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pol);
	return pol;
}

static unsigned count_lines(const char *diag)
{
	unsigned n = 0;

	for (; *diag != '\0'; diag++)
		n += *diag == '\n';
	return n;
}

/* True when diag has a line "PATH:LINE: ..." containing what. */
static int has_problem(const char *diag, const char *path, int line, const char *what)
{
	char prefix[600];
	size_t plen;
	const char *p = diag;

	snprintf(prefix, sizeof(prefix), "%s:%d: ", path, line);
	plen = strlen(prefix);
	while (*p != '\0') {
		const char *end = strchr(p, '\n');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char one[1024];

		snprintf(one, sizeof(one), "%.*s", (int)len, p);
		if (strncmp(one, prefix, plen) == 0 && strstr(one + plen, what) != NULL)
			return 1;
		p += len + (end != NULL);
	}
	fprintf(stderr, "\nexpected %s%s... in:\n%s", prefix, what, diag);
	return 0;
}

/* True when the problems in diag, all about path, come in line order. */
static int in_line_order(const char *diag, const char *path)
{
	size_t plen = strlen(path);
	long last = 0;
	const char *p = diag;

	while (*p != '\0') {
		char *end;
		long line;

		if (strncmp(p, path, plen) != 0 || p[plen] != ':')
			return 0;
		line = strtol(p + plen + 1, &end, 10);
		if (line < last || *end != ':')
			return 0;
		last = line;
		p = strchr(p, '\n');
		if (p == NULL)
			break;
		p++;
	}
	return 1;
}

/* Expects text to be refused with exactly one problem, at line, saying what. */
static void expect_one(const char *text, int line, const char *what)
{
	const char *path;
	char *diag = refused(text, &path);

	CU_ASSERT(has_problem(diag, path, line, what));
	CU_ASSERT_EQUAL(count_lines(diag), 1);
	kos_free(diag);
}

static void assert_same_policy(const struct kos_policy *a, const struct kos_policy *b)
{
	size_t i;

	for (i = 0; i < KOS_FACTOR_COUNT; i++)
		CU_ASSERT_EQUAL(a->weight[i], b->weight[i]);
	CU_ASSERT_EQUAL(a->prior, b->prior);
	CU_ASSERT_EQUAL(a->half_life, b->half_life);
	CU_ASSERT_EQUAL(a->recovery_half_life, b->recovery_half_life);
	CU_ASSERT_EQUAL(a->latency.target, b->latency.target);
	CU_ASSERT_EQUAL(a->latency.limit, b->latency.limit);
	CU_ASSERT_EQUAL(a->latency.smoothing, b->latency.smoothing);
	CU_ASSERT_EQUAL(a->integrity.penalty, b->integrity.penalty);
	CU_ASSERT_EQUAL(a->integrity.failure_penalty, b->integrity.failure_penalty);
	CU_ASSERT_EQUAL(a->integrity.recovery, b->integrity.recovery);
	CU_ASSERT_EQUAL(a->usage.window, b->usage.window);
	CU_ASSERT_EQUAL(a->usage.ops, b->usage.ops);
	CU_ASSERT_EQUAL(a->usage.bytes, b->usage.bytes);
	CU_ASSERT_EQUAL(a->anomaly.window, b->anomaly.window);
	CU_ASSERT_EQUAL(a->anomaly.z_limit, b->anomaly.z_limit);
	CU_ASSERT_EQUAL(a->anomaly.min_samples, b->anomaly.min_samples);
	CU_ASSERT_EQUAL(a->anomaly.initial_rate, b->anomaly.initial_rate);
	CU_ASSERT_EQUAL(a->anomaly.penalty, b->anomaly.penalty);
	CU_ASSERT_EQUAL(a->anomaly.scope_violations, b->anomaly.scope_violations);
	CU_ASSERT_EQUAL(a->anomaly.scope_window, b->anomaly.scope_window);
	CU_ASSERT_EQUAL(a->anomaly.scope_penalty, b->anomaly.scope_penalty);
	CU_ASSERT_EQUAL(a->anomaly.recovery, b->anomaly.recovery);
	CU_ASSERT_EQUAL(a->anomaly.flag_below, b->anomaly.flag_below);
	CU_ASSERT_EQUAL(a->reputation.smoothing, b->reputation.smoothing);
	CU_ASSERT_EQUAL(a->tier_high, b->tier_high);
	CU_ASSERT_EQUAL(a->tier_medium, b->tier_medium);
	CU_ASSERT_EQUAL(a->request_threshold, b->request_threshold);
	CU_ASSERT_EQUAL_FATAL(a->n_share_sets, b->n_share_sets);
	for (i = 0; i < a->n_share_sets; i++) {
		CU_ASSERT_STRING_EQUAL(a->share_sets[i].name, b->share_sets[i].name);
		CU_ASSERT_EQUAL(a->share_sets[i].min_score, b->share_sets[i].min_score);
		CU_ASSERT_EQUAL(a->share_sets[i].max_score, b->share_sets[i].max_score);
		CU_ASSERT_EQUAL(a->share_sets[i].n, b->share_sets[i].n);
		CU_ASSERT_EQUAL(a->share_sets[i].k, b->share_sets[i].k);
	}
	for (i = 0; i < 4; i++)
		CU_ASSERT_EQUAL(a->credentials.lifetime[i], b->credentials.lifetime[i]);
	CU_ASSERT_EQUAL(a->credentials.leeway, b->credentials.leeway);
	CU_ASSERT_EQUAL(a->credentials.max_chain, b->credentials.max_chain);
	CU_ASSERT_EQUAL(a->credentials.enrollment, b->credentials.enrollment);
	CU_ASSERT_STRING_EQUAL(a->credentials.issuer, b->credentials.issuer);
	CU_ASSERT_STRING_EQUAL(a->credentials.audience, b->credentials.audience);
	CU_ASSERT_EQUAL(a->rotation.dek, b->rotation.dek);
	CU_ASSERT_EQUAL(a->rotation.signing, b->rotation.signing);
	CU_ASSERT_EQUAL(a->rotation.ca, b->rotation.ca);
	CU_ASSERT_EQUAL(a->keys.cache, b->keys.cache);
	CU_ASSERT_EQUAL(a->signing.allow_sha1, b->signing.allow_sha1);
	CU_ASSERT_EQUAL(a->signing.min_tier, b->signing.min_tier);
	for (i = 0; i < KOS_THREAT_COUNT; i++) {
		CU_ASSERT_EQUAL(a->threat[i].offset, b->threat[i].offset);
		CU_ASSERT_EQUAL(a->threat[i].lifetime_factor, b->threat[i].lifetime_factor);
		CU_ASSERT_EQUAL(a->threat[i].anomalous_share, b->threat[i].anomalous_share);
	}
	CU_ASSERT_EQUAL(a->threat_min_clients, b->threat_min_clients);
}

/* --- the shipped policies --- */

static void test_default_policy_loads(void)
{
	const char *path = kos_test_srcpath("policy/default.policy");
	kos_policy *pol = NULL;
	char *diag = NULL;

	CU_ASSERT_EQUAL_FATAL(kos_policy_load(path, &pol, &diag), KOS_OK);
	CU_ASSERT_PTR_NULL(diag);
	CU_ASSERT_STRING_EQUAL(kos_policy_get0_path(pol), path);
	kos_policy_free(pol);
}

static void test_default_policy_equals_builtin_defaults(void)
{
	struct kos_policy builtin;
	kos_policy *pol = NULL;

	kos_policy_init_defaults(&builtin);
	CU_ASSERT_EQUAL_FATAL(
	    kos_policy_load(kos_test_srcpath("policy/default.policy"), &pol, NULL), KOS_OK);
	assert_same_policy(pol, &builtin);
	kos_policy_free(pol);
}

static void test_strict_policy_is_stricter(void)
{
	struct kos_policy d;
	kos_policy *s = NULL;
	char *diag = NULL;
	size_t i;

	kos_policy_init_defaults(&d);
	CU_ASSERT_EQUAL_FATAL(kos_policy_load(kos_test_srcpath("policy/strict.policy"), &s, &diag),
			      KOS_OK);
	CU_ASSERT(s->tier_high > d.tier_high);
	CU_ASSERT(s->tier_medium > d.tier_medium);
	CU_ASSERT(s->request_threshold > d.request_threshold);
	for (i = KOS_TIER_LOW; i <= KOS_TIER_HIGH; i++)
		CU_ASSERT(s->credentials.lifetime[i] < d.credentials.lifetime[i]);
	CU_ASSERT(s->credentials.max_chain < d.credentials.max_chain);
	CU_ASSERT(s->integrity.penalty > d.integrity.penalty);
	CU_ASSERT(s->integrity.failure_penalty > d.integrity.failure_penalty);
	CU_ASSERT(s->anomaly.penalty > d.anomaly.penalty);
	CU_ASSERT(s->anomaly.scope_penalty > d.anomaly.scope_penalty);
	/* trust regained more slowly, a young client's burst judged sooner */
	CU_ASSERT(s->recovery_half_life > d.recovery_half_life);
	CU_ASSERT(s->anomaly.initial_rate < d.anomaly.initial_rate);
	CU_ASSERT(s->rotation.dek < d.rotation.dek);
	CU_ASSERT(s->keys.cache < d.keys.cache);
	CU_ASSERT(s->threat[KOS_THREAT_ELEVATED].offset > d.threat[KOS_THREAT_ELEVATED].offset);
	CU_ASSERT(s->threat[KOS_THREAT_CRITICAL].offset > d.threat[KOS_THREAT_CRITICAL].offset);
	CU_ASSERT(s->credentials.enrollment < d.credentials.enrollment);
	CU_ASSERT(s->threat[KOS_THREAT_ELEVATED].anomalous_share <
		  d.threat[KOS_THREAT_ELEVATED].anomalous_share);
	CU_ASSERT(s->threat[KOS_THREAT_CRITICAL].anomalous_share <
		  d.threat[KOS_THREAT_CRITICAL].anomalous_share);
	CU_ASSERT(s->threat_min_clients < d.threat_min_clients);
	CU_ASSERT(s->signing.min_tier > d.signing.min_tier);
	CU_ASSERT(s->n_share_sets >= 1);
	for (i = 0; i < s->n_share_sets; i++) {
		CU_ASSERT(s->share_sets[i].k >= 3);
		CU_ASSERT(s->share_sets[i].n >= 5);
	}
	kos_policy_free(s);
}

/* --- what a file may leave out --- */

static void test_version_alone_gives_defaults(void)
{
	struct kos_policy builtin;
	kos_policy *pol = accepted("version = 1;\n");

	kos_policy_init_defaults(&builtin);
	assert_same_policy(pol, &builtin);
	kos_policy_free(pol);
}

static void test_partial_group_keeps_other_defaults(void)
{
	kos_policy *pol = accepted("version = 1;\n"
				   "trust = { weights = { latency = 0.0; }; };\n"
				   "credentials = { lifetime = { high = \"20m\"; }; };\n");

	CU_ASSERT_EQUAL(pol->weight[KOS_FACTOR_LATENCY], 0.0);
	CU_ASSERT_EQUAL(pol->weight[KOS_FACTOR_INTEGRITY], 4.0);
	CU_ASSERT_EQUAL(pol->weight[KOS_FACTOR_ANOMALY], 2.0);
	CU_ASSERT_EQUAL(pol->credentials.lifetime[KOS_TIER_HIGH], 20 * 60 * SEC);
	CU_ASSERT_EQUAL(pol->credentials.lifetime[KOS_TIER_MEDIUM], 5 * 60 * SEC);
	CU_ASSERT_EQUAL(pol->n_share_sets, 2);
	kos_policy_free(pol);
}

static void test_share_sets_replace_the_defaults(void)
{
	kos_policy *pol = accepted("version = 1;\n"
				   "share_sets = ( " SET("all", 0, 100, 4, 3) " );\n");

	CU_ASSERT_EQUAL_FATAL(pol->n_share_sets, 1);
	CU_ASSERT_STRING_EQUAL(pol->share_sets[0].name, "all");
	CU_ASSERT_EQUAL(pol->share_sets[0].min_score, 0.0);
	CU_ASSERT_EQUAL(pol->share_sets[0].max_score, 100.0);
	CU_ASSERT_EQUAL(pol->share_sets[0].n, 4);
	CU_ASSERT_EQUAL(pol->share_sets[0].k, 3);
	kos_policy_free(pol);
}

static void test_path_recorded(void)
{
	const char *path = write_policy("version = 1;\n");
	kos_policy *pol = NULL;

	CU_ASSERT_EQUAL_FATAL(kos_policy_load(path, &pol, NULL), KOS_OK);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pol->path);
	CU_ASSERT_STRING_EQUAL(pol->path, path);
	CU_ASSERT_STRING_EQUAL(kos_policy_get0_path(pol), path);
	kos_policy_free(pol);
}

/* --- numbers and their types --- */

static void test_integer_for_float_accepted(void)
{
	kos_policy *pol =
	    accepted("version = 1;\n"
		     "trust = { prior = 70; weights = { integrity = 4; };\n"
		     "          latency = { smoothing = 1; }; };\n"
		     "tiers = { high = 90; medium = 60; request = 30; };\n"
		     "threat = { critical = { offset = 30; lifetime_factor = 0.1; }; };\n");

	CU_ASSERT_EQUAL(pol->prior, 70.0);
	CU_ASSERT_EQUAL(pol->weight[KOS_FACTOR_INTEGRITY], 4.0);
	CU_ASSERT_EQUAL(pol->latency.smoothing, 1.0);
	CU_ASSERT_EQUAL(pol->tier_high, 90.0);
	CU_ASSERT_EQUAL(pol->tier_medium, 60.0);
	CU_ASSERT_EQUAL(pol->request_threshold, 30.0);
	CU_ASSERT_EQUAL(pol->threat[KOS_THREAT_CRITICAL].offset, 30.0);
	kos_policy_free(pol);
}

static void test_float_for_integer_refused(void)
{
	expect_one("version = 1;\ntrust = {\n  usage = { ops = 1.5; };\n};\n", 3,
		   "trust.usage.ops: must be a whole number");
}

static void test_wrong_types_refused(void)
{
	expect_one("version = 1;\ntrust = { prior = \"60\"; };\n", 2,
		   "trust.prior: must be a number, not a string");
	expect_one("version = 1;\ntrust = { prior = true; };\n", 2,
		   "trust.prior: must be a number, not a boolean");
	expect_one("version = 1;\ntrust = {\n  weights = 1.0;\n};\n", 3,
		   "trust.weights: must be a group { ... }, not a float");
	expect_one("version = 1;\ntiers = ( 80.0, 50.0 );\n", 2,
		   "tiers: must be a group { ... }, not a list");
	expect_one("version = 1;\nshare_sets = { name = \"a\"; };\n", 2,
		   "share_sets: must be a list");
	expect_one("version = 1;\nshare_sets = ( \"narrow\" );\n", 2,
		   "share_sets[0]: must be a group { name = ...; ... }, not a string");
	expect_one("version = 1;\ntrust = { usage = { ops = \"many\"; }; };\n", 2,
		   "trust.usage.ops: must be a whole number, not a string");
}

static void test_negative_weight_refused(void)
{
	expect_one("version = 1;\ntrust = {\n  weights = {\n    latency = -1.0;\n  };\n};\n", 4,
		   "trust.weights.latency: must be >= 0");
}

static void test_all_zero_weights_refused(void)
{
	expect_one("version = 1;\n"
		   "trust = {\n"
		   "  weights = { latency = 0.0; integrity = 0; usage = 0.0;\n"
		   "              anomaly = 0.0; reputation = 0.0; };\n"
		   "};\n",
		   3, "trust.weights: at least one weight must be > 0");
}

static void test_non_finite_refused(void)
{
	expect_one("version = 1;\ntrust = { prior = 1e999; };\n", 2,
		   "trust.prior: must be a finite number");
	expect_one("version = 1;\ntrust = { weights = { usage = -1e999; }; };\n", 2,
		   "trust.weights.usage: must be a finite number");
}

static void test_ranges_refused(void)
{
	expect_one("version = 1;\ntrust = { prior = 100.5; };\n", 2,
		   "trust.prior: must be <= 100 (got 100.5)");
	expect_one("version = 1;\ntrust = { latency = { smoothing = 0.0; }; };\n", 2,
		   "trust.latency.smoothing: must be > 0 (got 0)");
	expect_one("version = 1;\ntrust = { reputation = { smoothing = 1.5; }; };\n", 2,
		   "trust.reputation.smoothing: must be <= 1");
	expect_one("version = 1;\ntrust = { integrity = { penalty = 101; }; };\n", 2,
		   "trust.integrity.penalty: must be <= 100");
	expect_one("version = 1;\ntrust = { anomaly = { min_samples = 1; }; };\n", 2,
		   "trust.anomaly.min_samples: must be >= 2 (got 1)");
	expect_one("version = 1;\ntrust = { usage = { bytes = -1; }; };\n", 2,
		   "trust.usage.bytes: must be >= 0 (got -1)");
	expect_one("version = 1;\ntiers = { high = 101.0; };\n", 2, "tiers.high: must be <= 100");
}

/* libconfig 1.5 truncates integer literals to 32 bits without a word. */
static void test_integer_overflow_refused(void)
{
	const char *path;
	char *diag;
	kos_policy *pol;

	/* 4294967356 truncates to 60, a valid prior: only the scan catches it */
	expect_one("version = 1;\ntrust = { prior = 4294967356; };\n", 2,
		   "integer 4294967356 does not fit in 32 bits");
	expect_one("version = 1;\ntrust = {\n  usage = { bytes = 3000000000; };\n};\n", 3,
		   "write 3000000000L for a 64-bit integer");
	expect_one("version = 1;\ntrust = { usage = { ops = 0x100000000; }; };\n", 2,
		   "does not fit in 32 bits");
	expect_one("version = 1;\ntrust = { usage = { ops = 99999999999999999999L; }; };\n", 2,
		   "does not fit in 64 bits");
	diag = refused("version = 1;\ntrust = { usage = { ops = -2147483649; }; };\n", &path);
	CU_ASSERT(has_problem(diag, path, 2, "integer -2147483649 does not fit in 32 bits"));
	kos_free(diag);

	pol = accepted(
	    "version = 1;\n"
	    "# 99999999999 in a comment, /* 99999999999 */ too\n"
	    "/* 99999999999\n 99999999999 */\n"
	    "trust = { usage = { bytes = 3000000000L; ops = 2147483647; }; prior = 1.5e1; };\n"
	    "share_sets = ( " SET("x99999999999", 0, 100, 3, 2) " );\n"
	    "// 99999999999\n");
	CU_ASSERT_EQUAL(pol->usage.bytes, UINT64_C(3000000000));
	CU_ASSERT_EQUAL(pol->usage.ops, 2147483647);
	CU_ASSERT_EQUAL(pol->prior, 15.0);
	kos_policy_free(pol);
}

/* --- durations --- */

static void test_durations_each_unit(void)
{
	kos_policy *pol = accepted(
	    "version = 1;\n"
	    "trust = { half_life = \"36h\"; latency = { target = \"250ms\"; limit = \"2s\"; }; };\n"
	    "credentials = { lifetime = { high = \"15m\"; medium = \"90s\"; low = \"90s\"; };\n"
	    "                leeway = \"0s\"; max_chain = \"1d\"; };\n"
	    "rotation = { dek = \"30d\"; signing = \"3650d\"; ca = \"12h\"; };\n");

	CU_ASSERT_EQUAL(pol->half_life, 36 * 3600 * SEC);
	CU_ASSERT_EQUAL(pol->latency.target, 250 * 1000);
	CU_ASSERT_EQUAL(pol->latency.limit, 2 * SEC);
	CU_ASSERT_EQUAL(pol->credentials.lifetime[KOS_TIER_HIGH], 15 * 60 * SEC);
	CU_ASSERT_EQUAL(pol->credentials.lifetime[KOS_TIER_MEDIUM], 90 * SEC);
	CU_ASSERT_EQUAL(pol->credentials.leeway, 0);
	CU_ASSERT_EQUAL(pol->credentials.max_chain, 86400 * SEC);
	CU_ASSERT_EQUAL(pol->rotation.dek, 30 * 86400 * SEC);
	CU_ASSERT_EQUAL(pol->rotation.signing, (kos_usec)3650 * 86400 * SEC);
	CU_ASSERT_EQUAL(pol->rotation.ca, 12 * 3600 * SEC);
	kos_policy_free(pol);
}

static void test_keys_cache(void)
{
	kos_policy *pol = accepted("version = 1;\nkeys = { cache = \"0s\"; };\n");

	/* "0s": no cache */
	CU_ASSERT_EQUAL(pol->keys.cache, 0);
	kos_policy_free(pol);
	pol = accepted("version = 1;\nkeys = { cache = \"90s\"; };\n");
	CU_ASSERT_EQUAL(pol->keys.cache, 90 * SEC);
	kos_policy_free(pol);
	/* equal to the rotation interval is the longest allowed */
	pol = accepted("version = 1;\nrotation = { dek = \"1h\"; };\nkeys = { cache = \"1h\"; };\n");
	CU_ASSERT_EQUAL(pol->keys.cache, 3600 * SEC);
	kos_policy_free(pol);
	expect_one("version = 1;\nrotation = { dek = \"1h\"; };\nkeys = { cache = \"2h\"; };\n", 3,
		   "keys.cache: must be at most rotation.dek (1h)");
	expect_one("version = 1;\nkeys = { cache = \"2h\"; };\nrotation = { dek = \"1h\"; };\n", 3,
		   "rotation.dek: must be at least keys.cache (2h)");
	expect_one("version = 1;\nkeys = { cache = 300; };\n", 2,
		   "keys.cache: must be a duration string");
	expect_one("version = 1;\nkeys = { cahce = \"5m\"; };\n", 2,
		   "keys.cahce: unknown setting (known here: cache)");
}

/* SHA-1 signing stays off unless a file says true, and only a boolean says
 * it: 1 or "yes" is refused rather than guessed at. */
static void test_signing_allow_sha1(void)
{
	kos_policy *pol = NULL;

	CU_ASSERT_EQUAL_FATAL(kos_policy_new_default(&pol), KOS_OK);
	CU_ASSERT_FALSE(pol->signing.allow_sha1);
	kos_policy_free(pol);
	pol = accepted("version = 1;\nsigning = { allow_sha1 = true; };\n");
	CU_ASSERT_TRUE(pol->signing.allow_sha1);
	kos_policy_free(pol);
	pol = accepted("version = 1;\nsigning = { allow_sha1 = FALSE; };\n");
	CU_ASSERT_FALSE(pol->signing.allow_sha1);
	kos_policy_free(pol);
	pol = accepted("version = 1;\nsigning = { };\n");
	CU_ASSERT_FALSE(pol->signing.allow_sha1);
	kos_policy_free(pol);
	expect_one("version = 1;\nsigning = { allow_sha1 = 1; };\n", 2,
		   "signing.allow_sha1: must be true or false, not an integer");
	expect_one("version = 1;\nsigning = { allow_sha1 = \"yes\"; };\n", 2,
		   "signing.allow_sha1: must be true or false, not a string");
	expect_one("version = 1;\nsigning = true;\n", 2,
		   "signing: must be a group { ... }, not a boolean");
	expect_one("version = 1;\nsigning = { allow_md5 = true; };\n", 2,
		   "signing.allow_md5: unknown setting (known here: allow_sha1, min_tier)");
}

/* Which tiers may use a private key: every one but deny by default, and
 * only a tier's name says otherwise (deny is no minimum: it signs nothing
 * anyway). */
static void test_signing_min_tier(void)
{
	static const struct {
		const char *value;
		kos_tier tier;
	} good[] = { { "\"high\"", KOS_TIER_HIGH },
		     { "\"medium\"", KOS_TIER_MEDIUM },
		     { "\"low\"", KOS_TIER_LOW } };
	kos_policy *pol = NULL;
	char text[128], buf[8192];
	size_t i;

	CU_ASSERT_EQUAL_FATAL(kos_policy_new_default(&pol), KOS_OK);
	CU_ASSERT_EQUAL(pol->signing.min_tier, KOS_TIER_LOW);
	kos_policy_free(pol);
	for (i = 0; i < KOS_ARRAY_SIZE(good); i++) {
		snprintf(text, sizeof(text), "version = 1;\nsigning = { min_tier = %s; };\n",
			 good[i].value);
		pol = accepted(text);
		CU_ASSERT_EQUAL(pol->signing.min_tier, good[i].tier);
		kos_policy_free(pol);
	}
	pol = accepted("version = 1;\nsigning = { min_tier = \"medium\"; };\n");
	CU_ASSERT_EQUAL_FATAL(kos_policy_describe(pol, buf, sizeof(buf)), KOS_OK);
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "\nsigning.min_tier: medium\n"));
	kos_policy_free(pol);
	expect_one("version = 1;\nsigning = { min_tier = \"deny\"; };\n", 2,
		   "signing.min_tier: must be \"high\", \"medium\" or \"low\", not \"deny\"");
	expect_one("version = 1;\nsigning = { min_tier = \"Medium\"; };\n", 2,
		   "signing.min_tier: must be \"high\", \"medium\" or \"low\", not \"Medium\"");
	expect_one("version = 1;\nsigning = { min_tier = 2; };\n", 2,
		   "signing.min_tier: must be \"high\", \"medium\" or \"low\", not an integer");
}

/* The pace of recovery after a penalty, and the rate a young client is
 * judged by. */
static void test_recovery_settings(void)
{
	kos_policy *pol = NULL;

	CU_ASSERT_EQUAL_FATAL(kos_policy_new_default(&pol), KOS_OK);
	CU_ASSERT_EQUAL(pol->recovery_half_life, 6 * 3600 * SEC);
	CU_ASSERT_EQUAL(pol->anomaly.initial_rate, 120);
	kos_policy_free(pol);
	pol = accepted("version = 1;\ntrust = { recovery_half_life = \"90m\";\n"
		       "  anomaly = { initial_rate = 1; }; };\n");
	CU_ASSERT_EQUAL(pol->recovery_half_life, 90 * 60 * SEC);
	CU_ASSERT_EQUAL(pol->anomaly.initial_rate, 1);
	kos_policy_free(pol);
	pol = accepted("version = 1;\ntrust = { anomaly = { initial_rate = 1000000000; }; };\n");
	CU_ASSERT_EQUAL(pol->anomaly.initial_rate, 1000000000);
	kos_policy_free(pol);
	expect_one("version = 1;\ntrust = {\n  recovery_half_life = \"0s\"; };\n", 3,
		   "trust.recovery_half_life: must be longer than 0");
	expect_one("version = 1;\ntrust = { recovery_half_life = 6.0; };\n", 2,
		   "trust.recovery_half_life: must be a duration string");
	expect_one("version = 1;\ntrust = { recovery_half_life = \"3651d\"; };\n", 2,
		   "trust.recovery_half_life: must be at most 3650d");
	/* 0 would leave a young client unjudged again */
	expect_one("version = 1;\ntrust = { anomaly = {\n  initial_rate = 0; }; };\n", 3,
		   "trust.anomaly.initial_rate: must be >= 1 (got 0)");
	expect_one("version = 1;\ntrust = { anomaly = { initial_rate = 1000000001; }; };\n", 2,
		   "trust.anomaly.initial_rate: must be <= 1000000000");
	expect_one("version = 1;\ntrust = { anomaly = { initial_rate = 2.5; }; };\n", 2,
		   "trust.anomaly.initial_rate: must be a whole number (got 2.5)");
}

static void test_bad_durations_refused(void)
{
	expect_one("version = 1;\ntrust = { half_life = \"7\"; };\n", 2,
		   "trust.half_life: \"7\" is not a duration");
	expect_one("version = 1;\ntrust = { half_life = \"7\"; };\n", 2, "without a unit");
	expect_one("version = 1;\ntrust = { half_life = \"1w\"; };\n", 2, "unknown duration unit");
	expect_one("version = 1;\nrotation = { dek = \"-5d\"; };\n", 2,
		   "rotation.dek: \"-5d\" is not a duration");
	expect_one(
	    "version = 1;\nrotation = { dek = 30; };\n", 2,
	    "rotation.dek: must be a duration string with a unit such as \"90s\", not an integer");
	expect_one("version = 1;\ntrust = { half_life = \"0s\"; };\n", 2,
		   "trust.half_life: must be longer than 0");
	expect_one("version = 1;\nrotation = { ca = \"3651d\"; };\n", 2,
		   "rotation.ca: must be at most 3650d");
	expect_one("version = 1;\nrotation = { ca = \"99999999999999999999d\"; };\n", 2,
		   "duration too large");
}

static void test_control_characters_not_echoed(void)
{
	const char *path;
	char *diag =
	    refused("version = 1;\nrotation = { ca = \"1\\nx.policy:1: fake\"; };\n", &path);

	CU_ASSERT_EQUAL(count_lines(diag), 1);
	CU_ASSERT(has_problem(diag, path, 2, "\"1?x.policy:1: fake\" is not a duration"));
	kos_free(diag);
}

/* --- cross-field rules --- */

static void test_tiers_out_of_order_refused(void)
{
	expect_one("version = 1;\ntiers = {\n  high = 50.0;\n  medium = 60.0;\n};\n", 4,
		   "tiers.medium: must be less than tiers.high (50)");
	expect_one("version = 1;\ntiers = {\n  medium = 60.0;\n  high = 50.0;\n};\n", 4,
		   "tiers.high: must be greater than tiers.medium (60)");
	/* against a default: reported where the file says something */
	expect_one("version = 1;\ntiers = { request = 50.0; };\n", 2,
		   "tiers.request: must be less than tiers.medium (50)");
	expect_one("version = 1;\ntiers = { medium = 20.0; };\n", 2,
		   "tiers.medium: must be greater than tiers.request (20)");
}

static void test_bad_value_not_compared_again(void)
{
	/* high is refused for its range; the order check must not pile on */
	expect_one("version = 1;\ntiers = { high = 150.0; medium = 90.0; };\n", 2,
		   "tiers.high: must be <= 100");
}

static void test_latency_target_below_limit(void)
{
	expect_one(
	    "version = 1;\ntrust = { latency = {\n  target = \"1s\";\n  limit = \"1s\"; }; };\n", 4,
	    "trust.latency.limit: must be greater than trust.latency.target (1s)");
}

static void test_lifetimes_ordered(void)
{
	expect_one("version = 1;\ncredentials = { lifetime = {\n  low = \"10m\"; }; };\n", 3,
		   "credentials.lifetime.low: must be at most credentials.lifetime.medium (5m)");
	expect_one("version = 1;\ncredentials = { lifetime = {\n"
		   "  high = \"1m\";\n"
		   "  medium = \"2m\"; }; };\n",
		   4,
		   "credentials.lifetime.medium: must be at most "
		   "credentials.lifetime.high (1m)");
	expect_one("version = 1;\ncredentials = {\n  max_chain = \"10m\";\n};\n", 3,
		   "credentials.max_chain: must be at least credentials.lifetime.high (15m)");
	expect_one("version = 1;\ncredentials = { lifetime = { low = \"0s\"; }; };\n", 2,
		   "credentials.lifetime.low: must be longer than 0");
}

static void test_threat_levels_ordered(void)
{
	expect_one("version = 1;\nthreat = {\n  elevated = { offset = 30.0; };\n};\n", 3,
		   "threat.elevated.offset: must be at most threat.critical.offset (25)");
	expect_one("version = 1;\nthreat = {\n  critical = { lifetime_factor = 0.75; };\n};\n", 3,
		   "threat.critical.lifetime_factor: must be at most "
		   "threat.elevated.lifetime_factor (0.5)");
	expect_one("version = 1;\nthreat = { normal = { offset = -1.0; }; };\n", 2,
		   "threat.normal.offset: must be >= 0");
	expect_one("version = 1;\nthreat = { critical = { lifetime_factor = 0.0; }; };\n", 2,
		   "threat.critical.lifetime_factor: must be > 0");
	expect_one("version = 1;\nthreat = { normal = { lifetime_factor = 1.5; }; };\n", 2,
		   "threat.normal.lifetime_factor: must be <= 1");
}

static void test_threat_anomalous_shares(void)
{
	kos_policy *pol = accepted("version = 1;\nthreat = {\n"
				   "  elevated = { anomalous_share = 0.2; };\n"
				   "  critical = { anomalous_share = 1.0; };\n"
				   "  min_clients = 3;\n};\n");

	CU_ASSERT_EQUAL(pol->threat[KOS_THREAT_ELEVATED].anomalous_share, 0.2);
	CU_ASSERT_EQUAL(pol->threat[KOS_THREAT_CRITICAL].anomalous_share, 1.0);
	CU_ASSERT_EQUAL(pol->threat_min_clients, 3);
	kos_policy_free(pol);
	expect_one("version = 1;\nthreat = {\n  elevated = { anomalous_share = 0.5; };\n};\n", 3,
		   "threat.elevated.anomalous_share: must be at most "
		   "threat.critical.anomalous_share (0.25)");
	expect_one("version = 1;\nthreat = { critical = { anomalous_share = 0.0; }; };\n", 2,
		   "threat.critical.anomalous_share: must be > 0");
	expect_one("version = 1;\nthreat = { normal = { anomalous_share = 0.5; }; };\n", 2,
		   "threat.normal.anomalous_share: unknown setting");
	expect_one("version = 1;\nthreat = { min_clients = 0; };\n", 2,
		   "threat.min_clients: must be >= 1");
}

/* --- credentials --- */

static void test_credential_names(void)
{
	kos_policy *pol = accepted("version = 1;\ncredentials = {\n"
				   "  issuer = \"https://kos.example/ca\";\n"
				   "  audience = \"payments\";\n"
				   "  enrollment = \"2h\";\n};\n");

	CU_ASSERT_STRING_EQUAL(pol->credentials.issuer, "https://kos.example/ca");
	CU_ASSERT_STRING_EQUAL(pol->credentials.audience, "payments");
	CU_ASSERT_EQUAL(pol->credentials.enrollment, 2 * 3600 * SEC);
	kos_policy_free(pol);
	expect_one("version = 1;\ncredentials = { issuer = \"two words\"; };\n", 2,
		   "credentials.issuer: \"two words\" may hold only printable ASCII");
	expect_one("version = 1;\ncredentials = { audience = \"\"; };\n", 2,
		   "credentials.audience: must be 1 to 255 characters long");
	expect_one("version = 1;\ncredentials = { audience = 5; };\n", 2,
		   "credentials.audience: must be a string, not an integer");
	expect_one("version = 1;\ncredentials = { enrollment = \"0s\"; };\n", 2,
		   "credentials.enrollment: must be longer than 0");
}

/* --- share sets --- */

static void test_share_set_k_and_n_refused(void)
{
	expect_one("version = 1;\nshare_sets = (\n  " SET("a", 0, 100, 3, 1) "\n);\n", 3,
		   "share_sets[0].k: must be >= 2 (got 1)");
	expect_one("version = 1;\nshare_sets = (\n  " SET("a", 0, 100, 3, 4) "\n);\n", 3,
		   "share_sets[0].k: must be at most n (3)");
	expect_one("version = 1;\nshare_sets = (\n  " SET("a", 0, 100, 256, 3) "\n);\n", 3,
		   "share_sets[0].n: must be <= 255 (got 256)");
	expect_one("version = 1;\nshare_sets = (\n"
		   "  { name = \"a\"; min_score = 0; max_score = 100; n = 3; }\n"
		   ");\n",
		   3, "share_sets[0].k: missing (required)");
}

static void test_share_set_names_refused(void)
{
	expect_one("version = 1;\nshare_sets = (\n"
		   "  " SET("a", 0, 50, 3, 2) ",\n"
		   "  " SET("a", 50, 100, 3, 2) "\n"
		   ");\n",
		   4, "share_sets[1].name: \"a\" is already the name of share_sets[0]");
	expect_one("version = 1;\nshare_sets = ( " SET("Narrow", 0, 100, 3, 2) " );\n", 2,
		   "share_sets[0].name: \"Narrow\" may hold only a-z, 0-9, '_' and '-'");
	expect_one("version = 1;\nshare_sets = ( " SET("", 0, 100, 3, 2) " );\n", 2,
		   "share_sets[0].name: must be 1 to 31 characters long");
	expect_one("version = 1;\n"
		   "share_sets = ( " SET("abcdefghijklmnopqrstuvwxyz012345", 0, 100, 3, 2) " );\n",
		   2, "must be 1 to 31 characters long");
	/* 31 characters is the longest accepted */
	kos_policy_free(accepted("version = 1;\n"
				 "share_sets = ( " SET("abcdefghijklmnopqrstuvwxyz01234", 0, 100, 3,
						       2) " );\n"));
}

static void test_share_set_ranges_refused(void)
{
	const char *path;
	char *diag;

	expect_one("version = 1;\nshare_sets = (\n  " SET("a", 50, 50, 3, 2) "\n);\n", 3,
		   "share_sets[0].max_score: must be greater than min_score (50)");
	expect_one("version = 1;\nshare_sets = (\n"
		   "  " SET("a", 0, 70, 3, 2) ",\n"
		   "  " SET("b", 60, 100, 5, 3) "\n"
		   ");\n",
		   4,
		   "share_sets[1]: scores [60, 100) overlap those of "
		   "share_sets[0] \"a\" [0, 70)");
	expect_one("version = 1;\nshare_sets = ( " SET("a", -1, 100, 3, 2) " );\n", 2,
		   "share_sets[0].min_score: must be >= 0");
	expect_one("version = 1;\nshare_sets = ();\n", 2,
		   "share_sets: must hold 1 to 8 share sets (has 0)");
	/* touching ranges do not overlap: [0, 50) and [50, 100) */
	kos_policy_free(accepted("version = 1;\nshare_sets = (\n"
				 "  " SET("a", 0, 50, 3, 2) ",\n"
				 "  " SET("b", 50, 100, 3, 2) "\n"
				 ");\n"));

	diag = refused("version = 1;\nshare_sets = (\n"
		       SET("s0", 0, 10, 3, 2) ", " SET("s1", 10, 20, 3, 2) ",\n"
		       SET("s2", 20, 30, 3, 2) ", " SET("s3", 30, 40, 3, 2) ",\n"
		       SET("s4", 40, 50, 3, 2) ", " SET("s5", 50, 60, 3, 2) ",\n"
		       SET("s6", 60, 70, 3, 2) ", " SET("s7", 70, 80, 3, 2) ",\n"
		       SET("s8", 80, 90, 3, 2) "\n"
		       ");\n",
		       &path);
	CU_ASSERT(has_problem(diag, path, 2, "share_sets: must hold 1 to 8 share sets (has 9)"));
	CU_ASSERT_EQUAL(count_lines(diag), 1);
	kos_free(diag);
}

/* --- structure --- */

static void test_missing_version_refused(void)
{
	expect_one("trust = { prior = 50.0; };\n", 1, "version: missing");
	expect_one("", 1, "version: missing");
}

static void test_wrong_version_refused(void)
{
	expect_one("# a comment\nversion = 2;\n", 2, "version: unsupported version 2");
	expect_one("version = \"1\";\n", 1, "version: must be the integer 1, not a string");
	expect_one("version = 1.0;\n", 1, "version: must be the integer 1, not a float");
}

static void test_unknown_key_top_level(void)
{
	expect_one("version = 1;\n\npolicy_name = \"x\";\n", 3,
		   "policy_name: unknown setting (known here: version, trust");
}

static void test_unknown_key_nested(void)
{
	expect_one("version = 1;\ntrust = {\n  weights = {\n    latncy = 1.0;\n  };\n};\n", 4,
		   "trust.weights.latncy: unknown setting (known here: latency, integrity, usage, "
		   "anomaly, reputation)");
	expect_one("version = 1;\nthreat = { normal = {\n  ofset = 1.0; }; };\n", 3,
		   "threat.normal.ofset: unknown setting");
	expect_one("version = 1;\nshare_sets = (\n  { name = \"a\"; min_score = 0; max_score = "
		   "100; n = 3; k = 2; m = 1; }\n);\n",
		   3, "share_sets[0].m: unknown setting");
	/* names are case-sensitive */
	expect_one("version = 1;\nTiers = { high = 90.0; };\n", 2, "Tiers: unknown setting");
}

static void test_syntax_error_line(void)
{
	const char *path;
	char *diag =
	    refused("version = 1;\ntrust = {\n  prior = = 60.0;\n  weights = 5;\n};\n", &path);

	/* libconfig stops at the first syntax error: nothing after it is judged */
	CU_ASSERT(has_problem(diag, path, 3, "syntax error"));
	CU_ASSERT_EQUAL(count_lines(diag), 1);
	kos_free(diag);
	/* an unclosed group is found at the end of the file */
	expect_one("version = 1;\ntrust = {\n  prior = 60.0;\n\n", 5, "syntax error");
	/* duplicate names are a libconfig parse error */
	expect_one("version = 1;\ntiers = { high = 90.0; };\ntiers = { medium = 60.0; };\n", 3,
		   "duplicate setting");
}

static void test_include_refused(void)
{
	const char *other = write_policy("tiers = { high = 90.0; };\n");
	char text[700];

	snprintf(text, sizeof(text), "version = 1;\n  @include \"%s\"\n", other);
	expect_one(text, 2, "@include is not allowed");
}

static void test_many_problems_all_reported(void)
{
	const char *path = kos_test_srcpath("tests/data/policy/many-problems.policy");
	kos_policy *pol = NULL;
	char *diag = NULL;

	CU_ASSERT_EQUAL_FATAL(kos_policy_load(path, &pol, &diag), KOS_E_POLICY);
	CU_ASSERT_PTR_NULL(pol);
	CU_ASSERT_PTR_NOT_NULL_FATAL(diag);
	CU_ASSERT(has_problem(diag, path, 1, "version: missing"));
	CU_ASSERT(has_problem(diag, path, 6, "trust.prior: must be <= 100"));
	CU_ASSERT(has_problem(diag, path, 9, "trust.weights.latency: must be >= 0"));
	CU_ASSERT(has_problem(diag, path, 14, "trust.wieghts: unknown setting"));
	CU_ASSERT(has_problem(diag, path, 16, "trust.half_life: \"7\" is not a duration"));
	CU_ASSERT(has_problem(diag, path, 20, "tiers.medium: must be less than tiers.high (60)"));
	CU_ASSERT(has_problem(diag, path, 25, "share_sets[0].k: must be at most n (3)"));
	CU_ASSERT(has_problem(diag, path, 26, "share_sets[1].n: must be <= 255"));
	CU_ASSERT(has_problem(diag, path, 30, "credentials.lifetime.low: must be at most"));
	CU_ASSERT(
	    has_problem(diag, path, 34,
			"threat.critical.offset: must be at least threat.elevated.offset (10)"));
	CU_ASSERT_EQUAL(count_lines(diag), 10);
	CU_ASSERT(in_line_order(diag, path));
	/* the first problem is also the thread's error detail */
	CU_ASSERT(strstr(kos_last_error(), "version: missing") != NULL);
	kos_free(diag);
}

static void test_problems_listed_in_file_order_and_capped(void)
{
	char text[8192];
	size_t used;
	const char *path;
	char *diag;
	int i;

	used = (size_t)snprintf(text, sizeof(text), "version = 1;\n");
	for (i = 0; i < 150; i++)
		used += (size_t)snprintf(text + used, sizeof(text) - used, "junk%d = 1;\n", i);
	CU_ASSERT_FATAL(used < sizeof(text));
	diag = refused(text, &path);
	CU_ASSERT_EQUAL(count_lines(diag), 101);
	CU_ASSERT(has_problem(diag, path, 2, "junk0: unknown setting"));
	CU_ASSERT(has_problem(diag, path, 101, "junk99: unknown setting"));
	CU_ASSERT(has_problem(diag, path, 102, "50 more problems not listed"));
	kos_free(diag);
}

/* libconfig's parser is quadratic in the settings of one group: a file with
 * far more settings than any policy is refused before it is parsed. */
static void test_too_many_settings_refused(void)
{
	size_t cap = 64 * 1024, used;
	char *text = malloc(cap);
	const char *path;
	char *diag;
	int i;

	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	used = (size_t)snprintf(text, cap, "version = 1;\n");
	for (i = 0; i < 2000; i++)
		used += (size_t)snprintf(text + used, cap - used, "s%d: 1;\n", i);
	CU_ASSERT_FATAL(used < cap);
	diag = refused(text, &path);
	CU_ASSERT(has_problem(diag, path, 2001, "more than 2000 settings"));
	CU_ASSERT_EQUAL(count_lines(diag), 1);
	kos_free(diag);
	free(text);
}

/* --- files --- */

static void test_nonexistent_file_is_io_error(void)
{
	kos_policy *pol = (kos_policy *)&pol;
	char *diag = (char *)&diag;
	char path[600];

	snprintf(path, sizeof(path), "%s/no-such.policy", kos_test_tmpdir());
	CU_ASSERT_EQUAL(kos_policy_load(path, &pol, &diag), KOS_E_IO);
	CU_ASSERT_PTR_NULL(pol);
	CU_ASSERT_PTR_NULL(diag);
	CU_ASSERT(strstr(kos_last_error(), "no-such.policy") != NULL);
}

static void test_directory_is_io_error(void)
{
	kos_policy *pol = NULL;

	CU_ASSERT_EQUAL(kos_policy_load(kos_test_tmpdir(), &pol, NULL), KOS_E_IO);
	CU_ASSERT_PTR_NULL(pol);
	CU_ASSERT(strstr(kos_last_error(), "directory") != NULL);
}

static void test_unreadable_file_is_io_error(void)
{
	const char *path = write_policy("version = 1;\n");
	kos_policy *pol = NULL;

	if (geteuid() == 0)
		return; /* root reads it anyway */
	CU_ASSERT_FATAL(chmod(path, 0) == 0);
	CU_ASSERT_EQUAL(kos_policy_load(path, &pol, NULL), KOS_E_IO);
	CU_ASSERT_PTR_NULL(pol);
}

static void test_null_path_invalid(void)
{
	kos_policy *pol = (kos_policy *)&pol;

	CU_ASSERT_EQUAL(kos_policy_load(NULL, &pol, NULL), KOS_E_INVALID);
	CU_ASSERT_PTR_NULL(pol);
}

static void test_oversized_file_refused(void)
{
	size_t len = 1024 * 1024 + 1;
	char *text = malloc(len);
	const char *path;
	kos_policy *pol = NULL;
	char *diag = NULL;

	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	/* valid libconfig throughout, so only the size can refuse it */
	memset(text, '\n', len);
	memcpy(text, "version = 1;\n#", 14);
	path = write_file(text, len);
	CU_ASSERT_EQUAL(kos_policy_load(path, &pol, &diag), KOS_E_POLICY);
	CU_ASSERT_PTR_NULL(pol);
	CU_ASSERT_PTR_NOT_NULL_FATAL(diag);
	CU_ASSERT(has_problem(diag, path, 1, "larger than 1048576 bytes"));
	kos_free(diag);

	/* one byte less is accepted */
	path = write_file(text, len - 1);
	CU_ASSERT_EQUAL(kos_policy_load(path, &pol, NULL), KOS_OK);
	kos_policy_free(pol);
	free(text);
}

static void test_nul_byte_refused(void)
{
	static const char text[] =
	    "version = 1;\n\ntiers = { high = 90.0; };\0tiers = { high = 10.0; };\n";
	const char *path = write_file(text, sizeof(text) - 1);
	kos_policy *pol = NULL;
	char *diag = NULL;

	CU_ASSERT_EQUAL(kos_policy_load(path, &pol, &diag), KOS_E_POLICY);
	CU_ASSERT_PTR_NULL(pol);
	CU_ASSERT_PTR_NOT_NULL_FATAL(diag);
	CU_ASSERT(has_problem(diag, path, 3, "NUL byte"));
	kos_free(diag);
}

static void test_diag_optional(void)
{
	kos_policy *pol = NULL;

	CU_ASSERT_EQUAL(kos_policy_load(write_policy("version = 3;\n"), &pol, NULL), KOS_E_POLICY);
	CU_ASSERT_PTR_NULL(pol);
	CU_ASSERT(strstr(kos_last_error(), ":1: version: unsupported version 3") != NULL);
}

/* --- the summary --- */

static void test_describe_lists_settings(void)
{
	static const char *const expected[] = {
		"policy: (built-in)\n",
		"trust.prior: 60\n",
		"trust.half_life: 7d\n",
		"trust.weights.latency: 1\n",
		"trust.weights.integrity: 4\n",
		"trust.latency.target: 20ms\n",
		"trust.latency.limit: 500ms\n",
		"trust.usage.bytes: 104857600\n",
		"trust.anomaly.min_samples: 10\n",
		"trust.anomaly.initial_rate: 120\n",
		"trust.recovery_half_life: 6h\n",
		"trust.anomaly.scope_window: 10m\n",
		"trust.reputation.smoothing: 0.3\n",
		"tiers.high: 80\n",
		"tiers.medium: 50\n",
		"tiers.request: 20\n",
		"share_sets.narrow: scores [65, 100), 2 of 3 shares\n",
		"share_sets.wide: scores [0, 65), 3 of 5 shares\n",
		"credentials.lifetime.high: 15m\n",
		"credentials.lifetime.low: 1m\n",
		"credentials.leeway: 30s\n",
		"credentials.max_chain: 12h\n",
		"rotation.dek: 30d\n",
		"rotation.ca: 180d\n",
		"keys.cache: 5m\n",
		"signing.allow_sha1: false\n",
		"threat.elevated.offset: 10\n",
		"threat.critical.lifetime_factor: 0.25\n",
		"credentials.enrollment: 1d\n",
		"credentials.issuer: kos\n",
		"credentials.audience: kos\n",
		"threat.elevated.anomalous_share: 0.1\n",
		"threat.critical.anomalous_share: 0.25\n",
		"threat.min_clients: 10\n",
	};
	kos_policy *pol = NULL;
	char buf[4096];
	size_t i;

	CU_ASSERT_EQUAL_FATAL(kos_policy_new_default(&pol), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_policy_describe(pol, buf, sizeof(buf)), KOS_OK);
	CU_ASSERT_EQUAL(strncmp(buf, expected[0], strlen(expected[0])), 0);
	for (i = 0; i < KOS_ARRAY_SIZE(expected); i++) {
		if (strstr(buf, expected[i]) == NULL)
			fprintf(stderr, "\nmissing %s in:\n%s", expected[i], buf);
		CU_ASSERT_PTR_NOT_NULL(strstr(buf, expected[i]));
	}
	kos_policy_free(pol);
}

static void test_describe_shows_loaded_values(void)
{
	kos_policy *pol = accepted("version = 1;\ncredentials = { leeway = \"0s\"; };\n"
				   "trust = { usage = { bytes = 5000000000L; }; };\n");
	char buf[4096], line[700];

	CU_ASSERT_EQUAL_FATAL(kos_policy_describe(pol, buf, sizeof(buf)), KOS_OK);
	snprintf(line, sizeof(line), "policy: %s\n", pol->path);
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, line));
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "credentials.leeway: 0s\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "trust.usage.bytes: 5000000000\n"));
	kos_policy_free(pol);
}

static void test_describe_too_small(void)
{
	kos_policy *pol = NULL;
	char buf[4096];
	size_t need;

	CU_ASSERT_EQUAL_FATAL(kos_policy_new_default(&pol), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_policy_describe(pol, buf, sizeof(buf)), KOS_OK);
	need = strlen(buf) + 1;
	CU_ASSERT_EQUAL(kos_policy_describe(pol, buf, 16), KOS_E_RANGE);
	CU_ASSERT_EQUAL(buf[0], '\0');
	CU_ASSERT_EQUAL(kos_policy_describe(pol, buf, need - 1), KOS_E_RANGE);
	CU_ASSERT_EQUAL(kos_policy_describe(pol, buf, need), KOS_OK);
	CU_ASSERT_EQUAL(strlen(buf) + 1, need);
	CU_ASSERT_EQUAL(kos_policy_describe(pol, NULL, 0), KOS_E_RANGE);
	CU_ASSERT_EQUAL(kos_policy_describe(NULL, buf, sizeof(buf)), KOS_E_INVALID);
	kos_policy_free(pol);
}

int main(void)
{
	static const struct kos_test_case cases[] = {
		KOS_TEST(test_default_policy_loads),
		KOS_TEST(test_default_policy_equals_builtin_defaults),
		KOS_TEST(test_strict_policy_is_stricter),
		KOS_TEST(test_version_alone_gives_defaults),
		KOS_TEST(test_partial_group_keeps_other_defaults),
		KOS_TEST(test_share_sets_replace_the_defaults),
		KOS_TEST(test_path_recorded),
		KOS_TEST(test_integer_for_float_accepted),
		KOS_TEST(test_float_for_integer_refused),
		KOS_TEST(test_wrong_types_refused),
		KOS_TEST(test_negative_weight_refused),
		KOS_TEST(test_all_zero_weights_refused),
		KOS_TEST(test_non_finite_refused),
		KOS_TEST(test_ranges_refused),
		KOS_TEST(test_integer_overflow_refused),
		KOS_TEST(test_durations_each_unit),
		KOS_TEST(test_keys_cache),
		KOS_TEST(test_signing_allow_sha1),
		KOS_TEST(test_signing_min_tier),
		KOS_TEST(test_recovery_settings),
		KOS_TEST(test_bad_durations_refused),
		KOS_TEST(test_control_characters_not_echoed),
		KOS_TEST(test_tiers_out_of_order_refused),
		KOS_TEST(test_bad_value_not_compared_again),
		KOS_TEST(test_latency_target_below_limit),
		KOS_TEST(test_lifetimes_ordered),
		KOS_TEST(test_threat_levels_ordered),
		KOS_TEST(test_threat_anomalous_shares),
		KOS_TEST(test_credential_names),
		KOS_TEST(test_share_set_k_and_n_refused),
		KOS_TEST(test_share_set_names_refused),
		KOS_TEST(test_share_set_ranges_refused),
		KOS_TEST(test_missing_version_refused),
		KOS_TEST(test_wrong_version_refused),
		KOS_TEST(test_unknown_key_top_level),
		KOS_TEST(test_unknown_key_nested),
		KOS_TEST(test_syntax_error_line),
		KOS_TEST(test_include_refused),
		KOS_TEST(test_many_problems_all_reported),
		KOS_TEST(test_problems_listed_in_file_order_and_capped),
		KOS_TEST(test_too_many_settings_refused),
		KOS_TEST(test_nonexistent_file_is_io_error),
		KOS_TEST(test_directory_is_io_error),
		KOS_TEST(test_unreadable_file_is_io_error),
		KOS_TEST(test_null_path_invalid),
		KOS_TEST(test_oversized_file_refused),
		KOS_TEST(test_nul_byte_refused),
		KOS_TEST(test_diag_optional),
		KOS_TEST(test_describe_lists_settings),
		KOS_TEST(test_describe_shows_loaded_values),
		KOS_TEST(test_describe_too_small),
	};

	return kos_test_run("policy", NULL, NULL, cases, sizeof(cases) / sizeof(cases[0]));
}
