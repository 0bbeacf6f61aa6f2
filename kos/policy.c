/* Policy files: parsing, validation and the built-in defaults. */
#include "config.h"

#include "kos/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libconfig.h>

#define SEC KOS_USEC_PER_SEC

void kos_policy_init_defaults(struct kos_policy *pol)
{
	memset(pol, 0, sizeof(*pol));
	pol->weight[KOS_FACTOR_LATENCY] = 1.0;
	pol->weight[KOS_FACTOR_INTEGRITY] = 4.0;
	pol->weight[KOS_FACTOR_USAGE] = 1.0;
	pol->weight[KOS_FACTOR_ANOMALY] = 2.0;
	pol->weight[KOS_FACTOR_REPUTATION] = 1.0;
	pol->prior = 60.0;
	pol->half_life = 7 * 86400 * SEC;
	pol->recovery_half_life = 6 * 3600 * SEC;
	pol->latency.target = 20 * 1000;
	pol->latency.limit = 500 * 1000;
	pol->latency.smoothing = 0.2;
	pol->integrity.penalty = 25.0;
	pol->integrity.failure_penalty = 2.0;
	pol->integrity.recovery = 1.0;
	pol->usage.window = 3600 * SEC;
	pol->usage.ops = 10000;
	pol->usage.bytes = 100 * 1024 * 1024;
	pol->anomaly.window = 60 * SEC;
	pol->anomaly.z_limit = 3.0;
	pol->anomaly.min_samples = 10;
	pol->anomaly.initial_rate = 120;
	pol->anomaly.penalty = 15.0;
	pol->anomaly.scope_violations = 3;
	pol->anomaly.scope_window = 600 * SEC;
	pol->anomaly.scope_penalty = 20.0;
	pol->anomaly.recovery = 0.5;
	pol->anomaly.flag_below = 40.0;
	pol->reputation.smoothing = 0.3;
	pol->tier_high = 80.0;
	pol->tier_medium = 50.0;
	pol->request_threshold = 20.0;
	pol->n_share_sets = 2;
	strcpy(pol->share_sets[0].name, "narrow");
	pol->share_sets[0].min_score = 65.0;
	pol->share_sets[0].max_score = 100.0;
	pol->share_sets[0].n = 3;
	pol->share_sets[0].k = 2;
	strcpy(pol->share_sets[1].name, "wide");
	pol->share_sets[1].min_score = 0.0;
	pol->share_sets[1].max_score = 65.0;
	pol->share_sets[1].n = 5;
	pol->share_sets[1].k = 3;
	pol->credentials.lifetime[KOS_TIER_HIGH] = 15 * 60 * SEC;
	pol->credentials.lifetime[KOS_TIER_MEDIUM] = 5 * 60 * SEC;
	pol->credentials.lifetime[KOS_TIER_LOW] = 60 * SEC;
	pol->credentials.lifetime[KOS_TIER_DENY] = 0;
	pol->credentials.leeway = 30 * SEC;
	pol->credentials.max_chain = 12 * 3600 * SEC;
	pol->credentials.enrollment = 24 * 3600 * SEC;
	strcpy(pol->credentials.issuer, "kos");
	strcpy(pol->credentials.audience, "kos");
	pol->rotation.dek = 30 * 86400 * SEC;
	pol->rotation.signing = 90 * 86400 * SEC;
	pol->rotation.ca = 180 * 86400 * SEC;
	pol->keys.cache = 5 * 60 * SEC;
	pol->threat[KOS_THREAT_NORMAL].offset = 0.0;
	pol->threat[KOS_THREAT_NORMAL].lifetime_factor = 1.0;
	pol->threat[KOS_THREAT_ELEVATED].offset = 10.0;
	pol->threat[KOS_THREAT_ELEVATED].lifetime_factor = 0.5;
	pol->threat[KOS_THREAT_CRITICAL].offset = 25.0;
	pol->threat[KOS_THREAT_CRITICAL].lifetime_factor = 0.25;
	pol->threat[KOS_THREAT_ELEVATED].anomalous_share = 0.1;
	pol->threat[KOS_THREAT_CRITICAL].anomalous_share = 0.25;
	pol->threat_min_clients = 10;
}

kos_rv kos_policy_new_default(kos_policy **out)
{
	struct kos_policy *pol = calloc(1, sizeof(*pol));

	*out = NULL;
	if (pol == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	kos_policy_init_defaults(pol);
	*out = pol;
	return KOS_OK;
}

void kos_policy_free(kos_policy *pol)
{
	if (pol == NULL)
		return;
	free(pol->path);
	free(pol);
}

const char *kos_policy_get0_path(const kos_policy *pol)
{
	return pol->path != NULL ? pol->path : "(built-in)";
}

kos_usec kos_policy_key_cache(const kos_policy *pol)
{
	return pol->keys.cache;
}

static const char *const threat_names[KOS_THREAT_COUNT] = { "normal", "elevated", "critical" };

const char *kos_threat_name(kos_threat t)
{
	if ((unsigned)t < KOS_THREAT_COUNT)
		return threat_names[t];
	return "unknown";
}

kos_rv kos_threat_parse(const char *s, kos_threat *out)
{
	unsigned i;

	for (i = 0; i < KOS_THREAT_COUNT; i++) {
		if (strcmp(s, threat_names[i]) == 0) {
			*out = (kos_threat)i;
			return KOS_OK;
		}
	}
	return kos_error_set(KOS_E_INVALID, "unknown threat level '%.32s' (normal, elevated, critical)", s);
}

/* --- loading ------------------------------------------------------------ */

/* A policy is a few KiB; the cap keeps a wrong path (a log, a disk image)
 * from being read whole into memory. */
#define POLICY_MAX_BYTES (1024 * 1024)
/* Far more settings than a policy has (about 60); see scan_text(). */
#define SETTINGS_MAX 2000
/* Longest duration accepted anywhere: keeps now + duration far from overflow. */
#define DURATION_MAX_DAYS 3650
#define DURATION_MAX ((kos_usec)DURATION_MAX_DAYS * 86400 * SEC)
/* Keeps a weighted sum of five factors finite. */
#define WEIGHT_MAX 1e6
/* Longest setting path built from known names: "trust.anomaly.scope_violations". */
#define PATH_LEN 64

enum key_kind {
	KEY_GROUP,      /* { ... } holding sub */
	KEY_NUMBER,     /* double; an integer literal is accepted too */
	KEY_INT,        /* whole number into an unsigned or a uint64_t */
	KEY_DURATION,   /* string with a unit, into a kos_usec */
	KEY_NAME,       /* share set name, into char[32] */
	KEY_STRING,     /* printable ASCII without spaces, into char[size] */
	KEY_VERSION,    /* the integer 1; not stored */
	KEY_SHARE_SETS, /* ( { share set }, ... ) */
};

#define KEY_REQUIRED 0x1u /* missing is an error rather than the default */
#define KEY_OPEN_MIN 0x2u /* NUMBER: the range is (min, max], min refused */
#define KEY_ZERO_OK 0x4u  /* DURATION: 0 accepted */

/* One setting of the file format; the tables below are the whole format
 * (kos-policy(5) documents the same keys, ranges and defaults). */
struct key {
	const char *name;
	enum key_kind kind;
	unsigned flags;
	size_t off;             /* of the value in the struct being filled */
	size_t size;            /* INT: sizeof the field */
	double min, max;        /* NUMBER */
	long long imin, imax;   /* INT */
	const struct key *sub;  /* GROUP: members, ended by a NULL name */
	int id;                 /* slot in lines[] for cross-field checks */
};

/* Settings that take part in cross-field checks. walk() stores in lines[id]
 * the setting's line (> 0); 0 means absent (the default stands) and -1
 * means already refused, so a bad value does not also fail a comparison. */
enum {
	F_NONE = 0,
	F_WEIGHTS,
	F_WEIGHT0, /* + kos_factor */
	F_LAT_TARGET = F_WEIGHT0 + KOS_FACTOR_COUNT,
	F_LAT_LIMIT,
	F_TIER_REQUEST,
	F_TIER_MEDIUM,
	F_TIER_HIGH,
	F_LIFE_LOW,
	F_LIFE_MEDIUM,
	F_LIFE_HIGH,
	F_MAX_CHAIN,
	F_OFFSET0, /* + kos_threat */
	F_FACTOR0 = F_OFFSET0 + KOS_THREAT_COUNT,
	F_SHARE0 = F_FACTOR0 + KOS_THREAT_COUNT, /* + kos_threat */
	F_ROT_DEK = F_SHARE0 + KOS_THREAT_COUNT,
	F_KEYS_CACHE,
	F_COUNT,
};

static const char *const field_path[F_COUNT] = {
	[F_WEIGHTS] = "trust.weights",
	[F_LAT_TARGET] = "trust.latency.target",
	[F_LAT_LIMIT] = "trust.latency.limit",
	[F_TIER_REQUEST] = "tiers.request",
	[F_TIER_MEDIUM] = "tiers.medium",
	[F_TIER_HIGH] = "tiers.high",
	[F_LIFE_LOW] = "credentials.lifetime.low",
	[F_LIFE_MEDIUM] = "credentials.lifetime.medium",
	[F_LIFE_HIGH] = "credentials.lifetime.high",
	[F_MAX_CHAIN] = "credentials.max_chain",
	[F_OFFSET0 + KOS_THREAT_NORMAL] = "threat.normal.offset",
	[F_OFFSET0 + KOS_THREAT_ELEVATED] = "threat.elevated.offset",
	[F_OFFSET0 + KOS_THREAT_CRITICAL] = "threat.critical.offset",
	[F_FACTOR0 + KOS_THREAT_NORMAL] = "threat.normal.lifetime_factor",
	[F_FACTOR0 + KOS_THREAT_ELEVATED] = "threat.elevated.lifetime_factor",
	[F_FACTOR0 + KOS_THREAT_CRITICAL] = "threat.critical.lifetime_factor",
	[F_SHARE0 + KOS_THREAT_ELEVATED] = "threat.elevated.anomalous_share",
	[F_SHARE0 + KOS_THREAT_CRITICAL] = "threat.critical.anomalous_share",
	[F_ROT_DEK] = "rotation.dek",
	[F_KEYS_CACHE] = "keys.cache",
};

/* The same for the members of one share set. */
enum { S_NONE = 0, S_NAME, S_MIN, S_MAX, S_N, S_K, S_COUNT };

#define P(f) offsetof(struct kos_policy, f)
#define PSIZE(f) sizeof(((struct kos_policy *)NULL)->f)
#define R(f) offsetof(struct kos_share_set_rule, f)
#define RSIZE(f) sizeof(((struct kos_share_set_rule *)NULL)->f)

#define NUM_KEY(n, o, lo, hi, fl, i) \
	{ .name = (n), .kind = KEY_NUMBER, .flags = (fl), .off = (o), .min = (lo), .max = (hi), \
	  .id = (i) }
#define INT_KEY(n, o, sz, lo, hi, fl, i) \
	{ .name = (n), .kind = KEY_INT, .flags = (fl), .off = (o), .size = (sz), .imin = (lo), \
	  .imax = (hi), .id = (i) }
#define DUR_KEY(n, o, fl, i) \
	{ .name = (n), .kind = KEY_DURATION, .flags = (fl), .off = (o), .id = (i) }
#define STR_KEY(n, o, sz, i) \
	{ .name = (n), .kind = KEY_STRING, .off = (o), .size = (sz), .id = (i) }
#define GROUP_KEY(n, s, i) { .name = (n), .kind = KEY_GROUP, .sub = (s), .id = (i) }
#define END_KEY { .name = NULL }

#define WEIGHT_KEY(n, f) NUM_KEY(n, P(weight[f]), 0, WEIGHT_MAX, 0, F_WEIGHT0 + (f))

static const struct key weights_keys[] = {
	WEIGHT_KEY("latency", KOS_FACTOR_LATENCY),
	WEIGHT_KEY("integrity", KOS_FACTOR_INTEGRITY),
	WEIGHT_KEY("usage", KOS_FACTOR_USAGE),
	WEIGHT_KEY("anomaly", KOS_FACTOR_ANOMALY),
	WEIGHT_KEY("reputation", KOS_FACTOR_REPUTATION),
	END_KEY,
};

static const struct key latency_keys[] = {
	DUR_KEY("target", P(latency.target), 0, F_LAT_TARGET),
	DUR_KEY("limit", P(latency.limit), 0, F_LAT_LIMIT),
	NUM_KEY("smoothing", P(latency.smoothing), 0, 1, KEY_OPEN_MIN, F_NONE),
	END_KEY,
};

static const struct key integrity_keys[] = {
	NUM_KEY("penalty", P(integrity.penalty), 0, 100, 0, F_NONE),
	NUM_KEY("failure_penalty", P(integrity.failure_penalty), 0, 100, 0, F_NONE),
	NUM_KEY("recovery", P(integrity.recovery), 0, 100, 0, F_NONE),
	END_KEY,
};

static const struct key usage_keys[] = {
	DUR_KEY("window", P(usage.window), 0, F_NONE),
	INT_KEY("ops", P(usage.ops), PSIZE(usage.ops), 0, INT64_MAX, 0, F_NONE),
	INT_KEY("bytes", P(usage.bytes), PSIZE(usage.bytes), 0, INT64_MAX, 0, F_NONE),
	END_KEY,
};

static const struct key anomaly_keys[] = {
	DUR_KEY("window", P(anomaly.window), 0, F_NONE),
	NUM_KEY("z_limit", P(anomaly.z_limit), 0, 100, KEY_OPEN_MIN, F_NONE),
	/* a standard deviation needs two samples */
	INT_KEY("min_samples", P(anomaly.min_samples), PSIZE(anomaly.min_samples), 2, 10000, 0,
		F_NONE),
	/* a young client is always judged: 0 would switch the check off */
	INT_KEY("initial_rate", P(anomaly.initial_rate), PSIZE(anomaly.initial_rate), 1, 1000000000,
		0, F_NONE),
	NUM_KEY("penalty", P(anomaly.penalty), 0, 100, 0, F_NONE),
	INT_KEY("scope_violations", P(anomaly.scope_violations), PSIZE(anomaly.scope_violations), 0,
		1000000, 0, F_NONE),
	DUR_KEY("scope_window", P(anomaly.scope_window), 0, F_NONE),
	NUM_KEY("scope_penalty", P(anomaly.scope_penalty), 0, 100, 0, F_NONE),
	NUM_KEY("recovery", P(anomaly.recovery), 0, 100, 0, F_NONE),
	NUM_KEY("flag_below", P(anomaly.flag_below), 0, 100, 0, F_NONE),
	END_KEY,
};

static const struct key reputation_keys[] = {
	NUM_KEY("smoothing", P(reputation.smoothing), 0, 1, KEY_OPEN_MIN, F_NONE),
	END_KEY,
};

static const struct key trust_keys[] = {
	NUM_KEY("prior", P(prior), 0, 100, 0, F_NONE),
	DUR_KEY("half_life", P(half_life), 0, F_NONE),
	DUR_KEY("recovery_half_life", P(recovery_half_life), 0, F_NONE),
	GROUP_KEY("weights", weights_keys, F_WEIGHTS),
	GROUP_KEY("latency", latency_keys, F_NONE),
	GROUP_KEY("integrity", integrity_keys, F_NONE),
	GROUP_KEY("usage", usage_keys, F_NONE),
	GROUP_KEY("anomaly", anomaly_keys, F_NONE),
	GROUP_KEY("reputation", reputation_keys, F_NONE),
	END_KEY,
};

static const struct key tiers_keys[] = {
	NUM_KEY("high", P(tier_high), 0, 100, 0, F_TIER_HIGH),
	NUM_KEY("medium", P(tier_medium), 0, 100, 0, F_TIER_MEDIUM),
	NUM_KEY("request", P(request_threshold), 0, 100, 0, F_TIER_REQUEST),
	END_KEY,
};

static const struct key share_set_keys[] = {
	{ .name = "name", .kind = KEY_NAME, .flags = KEY_REQUIRED, .off = R(name),
	  .size = RSIZE(name), .id = S_NAME },
	NUM_KEY("min_score", R(min_score), 0, 100, KEY_REQUIRED, S_MIN),
	NUM_KEY("max_score", R(max_score), 0, 100, KEY_REQUIRED, S_MAX),
	INT_KEY("n", R(n), RSIZE(n), 2, 255, KEY_REQUIRED, S_N),
	INT_KEY("k", R(k), RSIZE(k), 2, 255, KEY_REQUIRED, S_K),
	END_KEY,
};

static const struct key lifetime_keys[] = {
	DUR_KEY("high", P(credentials.lifetime[KOS_TIER_HIGH]), 0, F_LIFE_HIGH),
	DUR_KEY("medium", P(credentials.lifetime[KOS_TIER_MEDIUM]), 0, F_LIFE_MEDIUM),
	DUR_KEY("low", P(credentials.lifetime[KOS_TIER_LOW]), 0, F_LIFE_LOW),
	END_KEY,
};

static const struct key credentials_keys[] = {
	GROUP_KEY("lifetime", lifetime_keys, F_NONE),
	DUR_KEY("leeway", P(credentials.leeway), KEY_ZERO_OK, F_NONE),
	DUR_KEY("max_chain", P(credentials.max_chain), 0, F_MAX_CHAIN),
	DUR_KEY("enrollment", P(credentials.enrollment), 0, F_NONE),
	STR_KEY("issuer", P(credentials.issuer), PSIZE(credentials.issuer), F_NONE),
	STR_KEY("audience", P(credentials.audience), PSIZE(credentials.audience), F_NONE),
	END_KEY,
};

static const struct key rotation_keys[] = {
	DUR_KEY("dek", P(rotation.dek), 0, F_ROT_DEK),
	DUR_KEY("signing", P(rotation.signing), 0, F_NONE),
	DUR_KEY("ca", P(rotation.ca), 0, F_NONE),
	END_KEY,
};

static const struct key keys_keys[] = {
	DUR_KEY("cache", P(keys.cache), KEY_ZERO_OK, F_KEYS_CACHE),
	END_KEY,
};

#define THREAT_KEYS(t)                                                                          \
	{                                                                                       \
		NUM_KEY("offset", P(threat[t].offset), 0, 100, 0, F_OFFSET0 + (t)),             \
		NUM_KEY("lifetime_factor", P(threat[t].lifetime_factor), 0, 1, KEY_OPEN_MIN,    \
			F_FACTOR0 + (t)),                                                       \
		END_KEY,                                                                        \
	}

/* A raised level also says when it is reached without an administrator. */
#define RAISED_THREAT_KEYS(t)                                                                   \
	{                                                                                       \
		NUM_KEY("offset", P(threat[t].offset), 0, 100, 0, F_OFFSET0 + (t)),             \
		NUM_KEY("lifetime_factor", P(threat[t].lifetime_factor), 0, 1, KEY_OPEN_MIN,    \
			F_FACTOR0 + (t)),                                                       \
		NUM_KEY("anomalous_share", P(threat[t].anomalous_share), 0, 1, KEY_OPEN_MIN,    \
			F_SHARE0 + (t)),                                                        \
		END_KEY,                                                                        \
	}

static const struct key threat_normal_keys[] = THREAT_KEYS(KOS_THREAT_NORMAL);
static const struct key threat_elevated_keys[] = RAISED_THREAT_KEYS(KOS_THREAT_ELEVATED);
static const struct key threat_critical_keys[] = RAISED_THREAT_KEYS(KOS_THREAT_CRITICAL);

static const struct key threat_keys[] = {
	GROUP_KEY("normal", threat_normal_keys, F_NONE),
	GROUP_KEY("elevated", threat_elevated_keys, F_NONE),
	GROUP_KEY("critical", threat_critical_keys, F_NONE),
	INT_KEY("min_clients", P(threat_min_clients), PSIZE(threat_min_clients), 1, 1000000, 0,
		F_NONE),
	END_KEY,
};

static const struct key root_keys[] = {
	{ .name = "version", .kind = KEY_VERSION, .flags = KEY_REQUIRED },
	GROUP_KEY("trust", trust_keys, F_NONE),
	GROUP_KEY("tiers", tiers_keys, F_NONE),
	{ .name = "share_sets", .kind = KEY_SHARE_SETS },
	GROUP_KEY("credentials", credentials_keys, F_NONE),
	GROUP_KEY("rotation", rotation_keys, F_NONE),
	GROUP_KEY("keys", keys_keys, F_NONE),
	GROUP_KEY("threat", threat_keys, F_NONE),
	END_KEY,
};

/* Problems beyond this are counted, not listed: a 1 MiB file of junk must
 * not turn into megabytes of messages. */
#define PROBLEMS_MAX 100

struct problem {
	int line;
	unsigned seq; /* keeps problems on one line in the order found */
	char *msg;
};

struct loader {
	const char *file;
	/* problems as found; sorted by line when handed over, so they read in
	 * file order although cross-field checks run last */
	struct problem *problems;
	size_t n_problems;
	unsigned count;	    /* every problem found, listed or not */
	int first_unlisted; /* line of the first problem past PROBLEMS_MAX */
	bool oom;
	struct kos_policy *pol;
	int line[F_COUNT];
	/* Lines holding an integer literal libconfig truncated (already
	 * reported): integer settings there are not judged a second time. */
	int overflow_line[16];
	unsigned n_overflow;
};

static void problem(struct loader *ld, int line, const char *fmt, ...) KOS_PRINTF(3, 4);

static void problem(struct loader *ld, int line, const char *fmt, ...)
{
	struct problem *p;
	char msg[448];
	va_list ap;

	if (line < 1)
		line = 1;
	if (ld->count++ >= PROBLEMS_MAX) {
		if (ld->first_unlisted == 0)
			ld->first_unlisted = line;
		return;
	}
	if (ld->problems == NULL) {
		ld->problems = calloc(PROBLEMS_MAX, sizeof(*ld->problems));
		if (ld->problems == NULL) {
			ld->oom = true;
			return;
		}
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	p = &ld->problems[ld->n_problems];
	p->msg = kos_strdup(msg);
	if (p->msg == NULL) {
		ld->oom = true;
		return;
	}
	p->line = line;
	p->seq = ld->count;
	ld->n_problems++;
}

static int problem_cmp(const void *a, const void *b)
{
	const struct problem *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Hands the problems over as "FILE:LINE: message" lines, in file order. */
static kos_rv report_problems(struct loader *ld, char **out)
{
	kos_diag d = { 0 };
	size_t i;

	if (ld->n_problems > 1)
		qsort(ld->problems, ld->n_problems, sizeof(*ld->problems), problem_cmp);
	for (i = 0; i < ld->n_problems; i++)
		kos_diag_add(&d, ld->file, ld->problems[i].line, "%s", ld->problems[i].msg);
	if (ld->count > PROBLEMS_MAX)
		kos_diag_add(&d, ld->file, ld->first_unlisted, "%u more problems not listed",
			     ld->count - PROBLEMS_MAX);
	if (d.oom || ld->oom) {
		kos_diag_finish(&d, NULL, KOS_E_NOMEM);
		return kos_error_set(KOS_E_NOMEM, "out of memory collecting policy problems");
	}
	return kos_diag_finish(&d, out, KOS_E_POLICY);
}

static void loader_uninit(struct loader *ld)
{
	size_t i;

	for (i = 0; i < ld->n_problems; i++)
		free(ld->problems[i].msg);
	free(ld->problems);
}

static int line_of(const config_setting_t *s)
{
	int line = (int)config_setting_source_line(s);

	return line > 0 ? line : 1;
}

static void join(char *out, size_t len, const char *path, const char *name)
{
	if (path[0] == '\0')
		snprintf(out, len, "%s", name);
	else
		snprintf(out, len, "%s.%s", path, name);
}

static const char *type_desc(const config_setting_t *s)
{
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_GROUP:
		return "a group";
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		return "an integer";
	case CONFIG_TYPE_FLOAT:
		return "a float";
	case CONFIG_TYPE_STRING:
		return "a string";
	case CONFIG_TYPE_BOOL:
		return "a boolean";
	case CONFIG_TYPE_ARRAY:
		return "an array";
	case CONFIG_TYPE_LIST:
		return "a list";
	}
	return "an unknown type";
}

/* Text from the file made safe to quote in a one-line message: a newline in
 * a string value must not start a forged "FILE:LINE:" line. */
static const char *printable(const char *s, char *buf, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len && s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];

		buf[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	buf[i] = '\0';
	return buf;
}

static bool overflowed(const struct loader *ld, const config_setting_t *s)
{
	unsigned i;

	if (config_setting_type(s) != CONFIG_TYPE_INT &&
	    config_setting_type(s) != CONFIG_TYPE_INT64)
		return false;
	for (i = 0; i < ld->n_overflow; i++)
		if (ld->overflow_line[i] == line_of(s))
			return true;
	return false;
}

static int take_number(struct loader *ld, const config_setting_t *s, const char *path,
		       const struct key *k, void *base)
{
	bool open_min = (k->flags & KEY_OPEN_MIN) != 0;
	double v;

	switch (config_setting_type(s)) {
	case CONFIG_TYPE_INT:
		v = (double)config_setting_get_int(s);
		break;
	case CONFIG_TYPE_INT64:
		v = (double)config_setting_get_int64(s);
		break;
	case CONFIG_TYPE_FLOAT:
		v = config_setting_get_float(s);
		break;
	default:
		problem(ld, line_of(s), "%s: must be a number, not %s", path, type_desc(s));
		return -1;
	}
	if (overflowed(ld, s))
		return -1;
	if (!isfinite(v)) {
		problem(ld, line_of(s), "%s: must be a finite number", path);
		return -1;
	}
	if (open_min ? v <= k->min : v < k->min) {
		problem(ld, line_of(s), "%s: must be %s %g (got %g)", path,
			open_min ? ">" : ">=", k->min, v);
		return -1;
	}
	if (v > k->max) {
		problem(ld, line_of(s), "%s: must be <= %g (got %g)", path, k->max, v);
		return -1;
	}
	memcpy((char *)base + k->off, &v, sizeof(v));
	return line_of(s);
}

static int take_int(struct loader *ld, const config_setting_t *s, const char *path,
		    const struct key *k, void *base)
{
	long long v;

	switch (config_setting_type(s)) {
	case CONFIG_TYPE_INT:
		v = config_setting_get_int(s);
		break;
	case CONFIG_TYPE_INT64:
		v = config_setting_get_int64(s);
		break;
	case CONFIG_TYPE_FLOAT:
		problem(ld, line_of(s), "%s: must be a whole number (got %g)", path,
			config_setting_get_float(s));
		return -1;
	default:
		problem(ld, line_of(s), "%s: must be a whole number, not %s", path, type_desc(s));
		return -1;
	}
	if (overflowed(ld, s))
		return -1;
	if (v < k->imin) {
		problem(ld, line_of(s), "%s: must be >= %lld (got %lld)", path, k->imin, v);
		return -1;
	}
	if (v > k->imax) {
		problem(ld, line_of(s), "%s: must be <= %lld (got %lld)", path, k->imax, v);
		return -1;
	}
	if (k->size == sizeof(unsigned)) {
		unsigned u = (unsigned)v;

		memcpy((char *)base + k->off, &u, sizeof(u));
	} else {
		uint64_t u = (uint64_t)v;

		memcpy((char *)base + k->off, &u, sizeof(u));
	}
	return line_of(s);
}

static int take_duration(struct loader *ld, const config_setting_t *s, const char *path,
			 const struct key *k, void *base)
{
	char shown[48];
	const char *text;
	kos_usec d;

	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		problem(ld, line_of(s),
			"%s: must be a duration string with a unit such as \"90s\", not %s", path,
			type_desc(s));
		return -1;
	}
	text = config_setting_get_string(s);
	if (kos_duration_parse(text, &d) != KOS_OK) {
		problem(ld, line_of(s), "%s: \"%s\" is not a duration: %s", path,
			printable(text, shown, sizeof(shown)), kos_last_error());
		return -1;
	}
	if (d == 0 && !(k->flags & KEY_ZERO_OK)) {
		problem(ld, line_of(s), "%s: must be longer than 0", path);
		return -1;
	}
	if (d > DURATION_MAX) {
		problem(ld, line_of(s), "%s: must be at most %dd", path, DURATION_MAX_DAYS);
		return -1;
	}
	memcpy((char *)base + k->off, &d, sizeof(d));
	return line_of(s);
}

static int take_name(struct loader *ld, const config_setting_t *s, const char *path,
		     const struct key *k, void *base)
{
	char shown[48];
	const char *name;
	size_t len, i;

	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		problem(ld, line_of(s), "%s: must be a string, not %s", path, type_desc(s));
		return -1;
	}
	name = config_setting_get_string(s);
	len = strlen(name);
	if (len < 1 || len >= k->size) {
		problem(ld, line_of(s), "%s: must be 1 to %zu characters long", path, k->size - 1);
		return -1;
	}
	for (i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) {
			problem(ld, line_of(s), "%s: \"%s\" may hold only a-z, 0-9, '_' and '-'",
				path, printable(name, shown, sizeof(shown)));
			return -1;
		}
	}
	memcpy((char *)base + k->off, name, len + 1);
	return line_of(s);
}

static int take_string(struct loader *ld, const config_setting_t *s, const char *path,
		       const struct key *k, void *base)
{
	char shown[48];
	const char *text;
	size_t len, i;

	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		problem(ld, line_of(s), "%s: must be a string, not %s", path, type_desc(s));
		return -1;
	}
	text = config_setting_get_string(s);
	len = strlen(text);
	if (len < 1 || len >= k->size) {
		problem(ld, line_of(s), "%s: must be 1 to %zu characters long", path, k->size - 1);
		return -1;
	}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];

		if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\') {
			problem(ld, line_of(s),
				"%s: \"%s\" may hold only printable ASCII without spaces, quotes "
				"or backslashes",
				path, printable(text, shown, sizeof(shown)));
			return -1;
		}
	}
	memcpy((char *)base + k->off, text, len + 1);
	return line_of(s);
}

static int take_version(struct loader *ld, const config_setting_t *s, const char *path)
{
	long long v;

	if (config_setting_type(s) != CONFIG_TYPE_INT &&
	    config_setting_type(s) != CONFIG_TYPE_INT64) {
		problem(ld, line_of(s), "%s: must be the integer 1, not %s", path, type_desc(s));
		return -1;
	}
	v = config_setting_get_int64(s);
	if (overflowed(ld, s))
		return -1;
	if (v != 1) {
		problem(ld, line_of(s), "%s: unsupported version %lld; this kos reads version 1",
			path, v);
		return -1;
	}
	return line_of(s);
}

static void walk(struct loader *ld, const config_setting_t *g, const char *path,
		 const struct key *keys, void *base, int *lines);

static int take_share_sets(struct loader *ld, const config_setting_t *list, const char *path)
{
	struct {
		struct kos_share_set_rule rule;
		int index;
	} good[KOS_POLICY_MAX_SHARE_SETS];
	char shown[48];
	size_t n_good = 0, j;
	bool bad = false;
	int count, i;

	if (!config_setting_is_list(list)) {
		problem(ld, line_of(list),
			"%s: must be a list ( { name = ...; ... }, ... ), not %s", path,
			type_desc(list));
		return -1;
	}
	count = config_setting_length(list);
	if (count < 1 || count > KOS_POLICY_MAX_SHARE_SETS) {
		problem(ld, line_of(list), "%s: must hold 1 to %d share sets (has %d)", path,
			KOS_POLICY_MAX_SHARE_SETS, count);
		bad = true;
	}
	for (i = 0; i < count; i++) {
		const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
		struct kos_share_set_rule rule;
		int sl[S_COUNT] = { 0 };
		unsigned before = ld->count;
		char epath[PATH_LEN];

		snprintf(epath, sizeof(epath), "%.40s[%d]", path, i);
		if (!config_setting_is_group(e)) {
			problem(ld, line_of(e), "%s: must be a group { name = ...; ... }, not %s",
				epath, type_desc(e));
			bad = true;
			continue;
		}
		memset(&rule, 0, sizeof(rule));
		walk(ld, e, epath, share_set_keys, &rule, sl);
		if (sl[S_MIN] > 0 && sl[S_MAX] > 0 && rule.min_score >= rule.max_score)
			problem(ld, sl[S_MAX], "%s.max_score: must be greater than min_score (%g)",
				epath, rule.min_score);
		if (sl[S_N] > 0 && sl[S_K] > 0 && rule.k > rule.n)
			problem(ld, sl[S_K], "%s.k: must be at most n (%u)", epath, rule.n);
		for (j = 0; ld->count == before && j < n_good; j++) {
			const struct kos_share_set_rule *o = &good[j].rule;

			if (strcmp(o->name, rule.name) == 0)
				problem(ld, sl[S_NAME],
					"%s.name: \"%s\" is already the name of %s[%d]", epath,
					printable(rule.name, shown, sizeof(shown)), path,
					good[j].index);
			else if (rule.min_score < o->max_score && o->min_score < rule.max_score)
				problem(
				    ld, line_of(e),
				    "%s: scores [%g, %g) overlap those of %s[%d] \"%s\" [%g, %g)",
				    epath, rule.min_score, rule.max_score, path, good[j].index,
				    o->name, o->min_score, o->max_score);
		}
		if (ld->count != before) {
			bad = true;
			continue;
		}
		if (n_good < KOS_POLICY_MAX_SHARE_SETS) {
			good[n_good].rule = rule;
			good[n_good].index = i;
			n_good++;
		}
	}
	if (bad)
		return -1;
	for (j = 0; j < n_good; j++)
		ld->pol->share_sets[j] = good[j].rule;
	ld->pol->n_share_sets = n_good;
	return line_of(list);
}

static const struct key *find_key(const struct key *keys, const char *name)
{
	for (; keys->name != NULL; keys++)
		if (name != NULL && strcmp(keys->name, name) == 0)
			return keys;
	return NULL;
}

static void unknown_key(struct loader *ld, const config_setting_t *s, const char *path,
			const struct key *keys)
{
	char known[256] = "";
	size_t used = 0;
	const struct key *k;

	for (k = keys; k->name != NULL && used < sizeof(known); k++) {
		int n =
		    snprintf(known + used, sizeof(known) - used, "%s%s", used ? ", " : "", k->name);

		if (n < 0)
			break;
		used += (size_t)n;
	}
	/* names are [A-Za-z*][-A-Za-z0-9_*]* by libconfig's grammar: safe to quote */
	if (path[0] == '\0')
		problem(ld, line_of(s), "%.64s: unknown setting (known here: %s)",
			config_setting_name(s), known);
	else
		problem(ld, line_of(s), "%s.%.64s: unknown setting (known here: %s)", path,
			config_setting_name(s), known);
}

static int take(struct loader *ld, const config_setting_t *s, const char *path, const struct key *k,
		void *base, int *lines)
{
	switch (k->kind) {
	case KEY_GROUP:
		if (!config_setting_is_group(s)) {
			problem(ld, line_of(s), "%s: must be a group { ... }, not %s", path,
				type_desc(s));
			return -1;
		}
		walk(ld, s, path, k->sub, base, lines);
		return line_of(s);
	case KEY_NUMBER:
		return take_number(ld, s, path, k, base);
	case KEY_INT:
		return take_int(ld, s, path, k, base);
	case KEY_DURATION:
		return take_duration(ld, s, path, k, base);
	case KEY_NAME:
		return take_name(ld, s, path, k, base);
	case KEY_STRING:
		return take_string(ld, s, path, k, base);
	case KEY_VERSION:
		return take_version(ld, s, path);
	case KEY_SHARE_SETS:
		return take_share_sets(ld, s, path);
	}
	problem(ld, line_of(s), "%s: internal error: unknown key kind", path);
	return -1;
}

/* Takes every member of group g that keys knows into base, refuses the
 * others, and reports required members that are missing. Keeps walking
 * after a problem so that one run reports them all. */
static void walk(struct loader *ld, const config_setting_t *g, const char *path,
		 const struct key *keys, void *base, int *lines)
{
	int n = config_setting_length(g), i;
	const struct key *k;
	char sub[PATH_LEN];

	for (i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);

		k = find_key(keys, config_setting_name(s));
		if (k == NULL) {
			unknown_key(ld, s, path, keys);
			continue;
		}
		join(sub, sizeof(sub), path, k->name);
		lines[k->id] = take(ld, s, sub, k, base, lines);
	}
	for (k = keys; k->name != NULL; k++) {
		if (!(k->flags & KEY_REQUIRED) || config_setting_get_member(g, k->name) != NULL)
			continue;
		join(sub, sizeof(sub), path, k->name);
		if (k->kind == KEY_VERSION)
			problem(ld, line_of(g),
				"%s: missing; a policy starts with \"version = 1;\"", sub);
		else
			problem(ld, line_of(g), "%s: missing (required)", sub);
	}
}

static void show_value(char *buf, size_t len, double v, bool duration)
{
	if (duration)
		kos_duration_format((kos_usec)v, buf, len);
	else
		snprintf(buf, len, "%g", v);
}

/* Requires lo < hi (strict) or lo <= hi, reporting at the later of the two
 * settings in the file (where the contradiction shows), or at the one that is
 * there when the other kept its default. */
static void check_order(struct loader *ld, int lo, double lo_v, int hi, double hi_v, bool strict,
			bool duration)
{
	int l_lo = ld->line[lo], l_hi = ld->line[hi];
	char shown[32];

	if (l_lo < 0 || l_hi < 0)
		return;
	if (strict ? lo_v < hi_v : lo_v <= hi_v)
		return;
	if (l_hi >= l_lo) {
		show_value(shown, sizeof(shown), lo_v, duration);
		problem(ld, l_hi, "%s: must be %s %s (%s)", field_path[hi],
			strict ? "greater than" : "at least", field_path[lo], shown);
	} else {
		show_value(shown, sizeof(shown), hi_v, duration);
		problem(ld, l_lo, "%s: must be %s %s (%s)", field_path[lo],
			strict ? "less than" : "at most", field_path[hi], shown);
	}
}

static void check_cross(struct loader *ld)
{
	const struct kos_policy *p = ld->pol;
	const kos_usec *life = p->credentials.lifetime;
	double sum = 0;
	bool weights_ok = true;
	int i;

	for (i = 0; i < KOS_FACTOR_COUNT; i++) {
		weights_ok = weights_ok && ld->line[F_WEIGHT0 + i] >= 0;
		sum += p->weight[i];
	}
	if (ld->line[F_WEIGHTS] > 0 && weights_ok && sum == 0)
		problem(ld, ld->line[F_WEIGHTS], "trust.weights: at least one weight must be > 0");
	check_order(ld, F_LAT_TARGET, (double)p->latency.target, F_LAT_LIMIT,
		    (double)p->latency.limit, true, true);
	check_order(ld, F_TIER_REQUEST, p->request_threshold, F_TIER_MEDIUM, p->tier_medium, true,
		    false);
	check_order(ld, F_TIER_MEDIUM, p->tier_medium, F_TIER_HIGH, p->tier_high, true, false);
	check_order(ld, F_LIFE_LOW, (double)life[KOS_TIER_LOW], F_LIFE_MEDIUM,
		    (double)life[KOS_TIER_MEDIUM], false, true);
	check_order(ld, F_LIFE_MEDIUM, (double)life[KOS_TIER_MEDIUM], F_LIFE_HIGH,
		    (double)life[KOS_TIER_HIGH], false, true);
	check_order(ld, F_LIFE_HIGH, (double)life[KOS_TIER_HIGH], F_MAX_CHAIN,
		    (double)p->credentials.max_chain, false, true);
	/* a DEK version cached past the rotation interval would keep
	 * encrypting under the old version after another process rotated */
	check_order(ld, F_KEYS_CACHE, (double)p->keys.cache, F_ROT_DEK, (double)p->rotation.dek,
		    false, true);
	for (i = KOS_THREAT_NORMAL; i < KOS_THREAT_CRITICAL; i++) {
		check_order(ld, F_OFFSET0 + i, p->threat[i].offset, F_OFFSET0 + i + 1,
			    p->threat[i + 1].offset, false, false);
		/* lifetime factors run the other way: never longer at a higher level */
		check_order(ld, F_FACTOR0 + i + 1, p->threat[i + 1].lifetime_factor, F_FACTOR0 + i,
			    p->threat[i].lifetime_factor, false, false);
	}
	/* the higher level needs at least the share the lower one does */
	check_order(ld, F_SHARE0 + KOS_THREAT_ELEVATED, p->threat[KOS_THREAT_ELEVATED].anomalous_share,
		    F_SHARE0 + KOS_THREAT_CRITICAL, p->threat[KOS_THREAT_CRITICAL].anomalous_share,
		    false, false);
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void integer_too_large(struct loader *ld, int line, const char *lit, size_t len, bool wide)
{
	int shown = len > 40 ? 40 : (int)len;

	if (wide)
		problem(ld, line, "integer %.*s does not fit in 64 bits", shown, lit);
	else
		problem(ld, line,
			"integer %.*s does not fit in 32 bits; write %.*sL for a 64-bit integer",
			shown, lit, shown, lit);
	if (ld->n_overflow < KOS_ARRAY_SIZE(ld->overflow_line))
		ld->overflow_line[ld->n_overflow++] = line;
}

/* One numeric literal at p, matched as libconfig's lexer does (longest of
 * integer, integer64 "L", hex, hex64 and float); returns the end. With
 * judge, an integer that does not fit is reported. */
static const char *scan_number(struct loader *ld, const char *p, int line, bool judge)
{
	const char *start = p;
	uint64_t v = 0, limit;
	bool neg = false, big = false, wide = false;

	if (*p == '-' || *p == '+')
		neg = *p++ == '-';
	if (!neg && p == start && p[0] == '0' && (p[1] == 'x' || p[1] == 'X') &&
	    hex_value(p[2]) >= 0) {
		for (p += 2; hex_value(*p) >= 0; p++) {
			big = big || v > (UINT64_MAX >> 4);
			v = (v << 4) | (uint64_t)hex_value(*p);
		}
	} else {
		for (; is_digit(*p); p++) {
			big = big || v > (UINT64_MAX - 9) / 10;
			v = v * 10 + (uint64_t)(*p - '0');
		}
		if (*p == '.' ||
		    ((*p == 'e' || *p == 'E') &&
		     (is_digit(p[1]) || ((p[1] == '+' || p[1] == '-') && is_digit(p[2]))))) {
			/* a float: atof() saturates to inf, which the checks refuse */
			if (*p == '.')
				for (p++; is_digit(*p); p++)
					;
			if ((*p == 'e' || *p == 'E') &&
			    (is_digit(p[1]) || ((p[1] == '+' || p[1] == '-') && is_digit(p[2]))))
				for (p += 2; is_digit(*p); p++)
					;
			return p;
		}
	}
	if (*p == 'L') {
		wide = true;
		p += p[1] == 'L' ? 2 : 1;
	}
	limit = wide ? (uint64_t)INT64_MAX : (uint64_t)INT_MAX;
	if (judge && (big || v > limit + (neg ? 1 : 0)))
		integer_too_large(ld, line, start, (size_t)(p - start), wide);
	return p;
}

/* Walks the text as libconfig's lexer does, skipping comments, strings and
 * names, for two things the parser does not guard against:
 * - libconfig 1.5 reads integer literals with atoi(): 3000000000 silently
 *   becomes -1294967296 and 4294967356 becomes 60. With integers set (on
 *   text already parsed, so well-formed), literals that do not fit are
 *   refused: 32 bits without an L suffix, 64 bits with one.
 * - libconfig looks for a duplicate name on every insertion, so parsing n
 *   settings of one group costs n^2: 100000 of them in 1 MiB take minutes.
 *   Returns the line of the setting ('=' or ':') past SETTINGS_MAX, or 0,
 *   so such a file is refused before it is parsed.
 * Any text is safe here: every step advances. */
static int scan_text(struct loader *ld, const char *p, bool integers)
{
	unsigned settings = 0;
	int line = 1, too_many = 0;

	while (*p != '\0') {
		if (*p == '\n') {
			line++;
			p++;
		} else if (p[0] == '/' && p[1] == '*') {
			for (p += 2; *p != '\0' && !(p[0] == '*' && p[1] == '/'); p++)
				if (*p == '\n')
					line++;
			if (*p != '\0')
				p += 2;
		} else if (*p == '#' || (p[0] == '/' && p[1] == '/')) {
			while (*p != '\0' && *p != '\n')
				p++;
		} else if (*p == '"') {
			for (p++; *p != '\0' && *p != '"'; p++) {
				if (*p == '\\' && p[1] != '\0')
					p++;
				if (*p == '\n')
					line++;
			}
			if (*p != '\0')
				p++;
		} else if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || *p == '*') {
			for (p++; (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
				  is_digit(*p) || *p == '-' || *p == '_' || *p == '*';
			     p++)
				;
		} else if (is_digit(*p) || *p == '.' ||
			   ((*p == '-' || *p == '+') && (is_digit(p[1]) || p[1] == '.'))) {
			p = scan_number(ld, p, line, integers);
		} else {
			if ((*p == '=' || *p == ':') && ++settings == SETTINGS_MAX + 1)
				too_many = line;
			p++;
		}
	}
	return too_many;
}

/* Refuses @include before libconfig sees it: the parser would open any file
 * it names (no size cap, no check), and a policy must be one reviewable file.
 * Matches the lexer's rule: at the start of a line after blanks. */
static void refuse_includes(struct loader *ld, const char *text)
{
	const char *p = text;
	int line = 1;

	while (*p != '\0') {
		const char *q = p;

		while (*q == ' ' || *q == '\t')
			q++;
		if (strncmp(q, "@include", 8) == 0)
			problem(ld, line,
				"@include is not allowed in a policy: keep the policy in one file");
		p = strchr(p, '\n');
		if (p == NULL)
			break;
		p++;
		line++;
	}
}

/* Reads path whole. The checks run on the open descriptor, so a FIFO or a
 * device is refused without blocking and a swapped path cannot slip past;
 * O_NONBLOCK only matters for such files. */
static kos_rv read_policy_file(struct loader *ld, const char *path, char **text)
{
	struct stat st;
	char *buf = NULL;
	size_t n = 0, size;
	kos_rv rv;
	int fd;

	*text = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return kos_error_set(KOS_E_IO, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0) {
		rv = kos_error_set(KOS_E_IO, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		rv = kos_error_set(KOS_E_IO, "%s: is a directory, not a policy file", path);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rv = kos_error_set(KOS_E_IO, "%s: not a regular file", path);
		goto out;
	}
	if (st.st_size > POLICY_MAX_BYTES) {
		problem(ld, 1, "file is larger than %d bytes; a policy is a few KiB",
			POLICY_MAX_BYTES);
		rv = KOS_E_POLICY;
		goto out;
	}
	/* one byte more than fstat() said shows a file that grew since, or
	 * one (like those in /proc) whose size is not known in advance */
	size = (size_t)st.st_size + 1;
	buf = malloc(size + 1);
	if (buf == NULL) {
		rv = kos_error_set(KOS_E_NOMEM, "out of memory");
		goto out;
	}
	for (;;) {
		ssize_t got;

		if (n == size) {
			char *nb;

			if (size > POLICY_MAX_BYTES) {
				problem(ld, 1,
					"file is larger than %d bytes; a policy is a few KiB",
					POLICY_MAX_BYTES);
				rv = KOS_E_POLICY;
				goto out;
			}
			size = POLICY_MAX_BYTES + 1;
			nb = realloc(buf, size + 1);
			if (nb == NULL) {
				rv = kos_error_set(KOS_E_NOMEM, "out of memory");
				goto out;
			}
			buf = nb;
		}
		got = read(fd, buf + n, size - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			rv = kos_error_set(KOS_E_IO, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	buf[n] = '\0';
	if (strlen(buf) != n) {
		const char *p;
		int line = 1;

		for (p = buf; *p != '\0'; p++)
			if (*p == '\n')
				line++;
		problem(ld, line, "contains a NUL byte; a policy is a text file");
		rv = KOS_E_POLICY;
		goto out;
	}
	*text = buf;
	buf = NULL;
	rv = KOS_OK;
out:
	free(buf);
	close(fd);
	return rv;
}

kos_rv kos_policy_load(const char *path, kos_policy **out, char **diag)
{
	struct loader ld;
	struct kos_policy *pol = NULL;
	config_t cfg;
	bool have_cfg = false;
	char *text = NULL;
	kos_rv rv;
	int line;

	if (diag != NULL)
		*diag = NULL;
	if (out == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_policy_load: no place for the policy");
	*out = NULL;
	if (path == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_policy_load: no policy file given");
	memset(&ld, 0, sizeof(ld));
	ld.file = path;

	rv = read_policy_file(&ld, path, &text);
	if (rv != KOS_OK)
		goto out;
	refuse_includes(&ld, text);
	line = scan_text(&ld, text, false);
	if (line != 0)
		problem(&ld, line, "more than %d settings; a policy has about 60", SETTINGS_MAX);
	if (ld.count != 0) {
		rv = KOS_E_POLICY;
		goto out;
	}
	config_init(&cfg);
	have_cfg = true;
	if (config_read_string(&cfg, text) != CONFIG_TRUE) {
		const char *why = config_error_text(&cfg);

		problem(&ld, config_error_line(&cfg), "%s", why != NULL ? why : "cannot parse");
		rv = KOS_E_POLICY;
		goto out;
	}
	scan_text(&ld, text, true);

	pol = calloc(1, sizeof(*pol));
	if (pol == NULL) {
		rv = kos_error_set(KOS_E_NOMEM, "out of memory");
		goto out;
	}
	kos_policy_init_defaults(pol);
	ld.pol = pol;
	walk(&ld, config_root_setting(&cfg), "", root_keys, pol, ld.line);
	check_cross(&ld);
	if (ld.count != 0) {
		rv = KOS_E_POLICY;
		goto out;
	}
	pol->path = kos_strdup(path);
	if (pol->path == NULL) {
		rv = kos_error_set(KOS_E_NOMEM, "out of memory");
		goto out;
	}
	*out = pol;
	pol = NULL;
	kos_error_clear();
	rv = KOS_OK;
out:
	if (rv == KOS_E_POLICY)
		rv = report_problems(&ld, diag);
	loader_uninit(&ld);
	if (have_cfg)
		config_destroy(&cfg);
	free(text);
	kos_policy_free(pol);
	return rv;
}

/* --- describing --------------------------------------------------------- */

struct outbuf {
	char *buf;
	size_t len, pos;
	bool full;
};

static void put(struct outbuf *o, const char *fmt, ...) KOS_PRINTF(2, 3);

static void put(struct outbuf *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->full)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->pos, o->len - o->pos, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->len - o->pos) {
		o->full = true;
		return;
	}
	o->pos += (size_t)n;
}

/* Prints every leaf of keys under its file path, so the summary names the
 * settings exactly as kos-policy(5) and the file do. */
static void describe_keys(struct outbuf *o, const struct kos_policy *pol, const struct key *keys,
			  const char *path)
{
	const struct key *k;
	char sub[PATH_LEN], dur[32];
	size_t i;

	for (k = keys; k->name != NULL; k++) {
		const char *at = (const char *)pol + k->off;

		join(sub, sizeof(sub), path, k->name);
		switch (k->kind) {
		case KEY_GROUP:
			describe_keys(o, pol, k->sub, sub);
			break;
		case KEY_NUMBER: {
			double v;

			memcpy(&v, at, sizeof(v));
			put(o, "%s: %g\n", sub, v);
			break;
		}
		case KEY_INT:
			if (k->size == sizeof(unsigned)) {
				unsigned v;

				memcpy(&v, at, sizeof(v));
				put(o, "%s: %u\n", sub, v);
			} else {
				uint64_t v;

				memcpy(&v, at, sizeof(v));
				put(o, "%s: %" PRIu64 "\n", sub, v);
			}
			break;
		case KEY_DURATION: {
			kos_usec v;

			memcpy(&v, at, sizeof(v));
			if (v == 0)
				snprintf(dur, sizeof(dur), "0s");
			else
				kos_duration_format(v, dur, sizeof(dur));
			put(o, "%s: %s\n", sub, dur);
			break;
		}
		case KEY_SHARE_SETS:
			for (i = 0; i < pol->n_share_sets; i++) {
				const struct kos_share_set_rule *r = &pol->share_sets[i];

				put(o, "%s.%s: scores [%g, %g), %u of %u shares\n", sub, r->name,
				    r->min_score, r->max_score, r->k, r->n);
			}
			break;
		case KEY_STRING:
			put(o, "%s: %s\n", sub, at);
			break;
		case KEY_NAME:
		case KEY_VERSION:
			break;
		}
	}
}

kos_rv kos_policy_describe(const kos_policy *pol, char *buf, size_t len)
{
	struct outbuf o = { .buf = buf, .len = len };

	if (pol == NULL || (buf == NULL && len != 0))
		return kos_error_set(KOS_E_INVALID, "kos_policy_describe: no policy or no buffer");
	if (len == 0)
		return kos_error_set(KOS_E_RANGE, "policy summary does not fit in 0 bytes");
	put(&o, "policy: %s\n", kos_policy_get0_path(pol));
	describe_keys(&o, pol, root_keys, "");
	if (o.full) {
		buf[0] = '\0';
		return kos_error_set(KOS_E_RANGE, "policy summary does not fit in %zu bytes", len);
	}
	return KOS_OK;
}
