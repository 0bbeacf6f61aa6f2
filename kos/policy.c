/* Policy files: parsing, validation and the built-in defaults. */
#include "config.h"

#include "kos/conffile.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


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
	pol->signing.allow_sha1 = false;
	pol->signing.min_tier = KOS_TIER_LOW;
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
 * from being read whole into memory. Far more settings than a policy has
 * (about 60): libconfig is quadratic in the settings of one group. */
static const struct kos_cf_format policy_format = {
	.a = "a policy",
	.the = "the policy",
	.sep = ".",
	.max_bytes = 1024 * 1024,
	.max_settings = 2000,
	.settings_hint = "a policy has about 60",
};

/* Keeps a weighted sum of five factors finite. */
#define WEIGHT_MAX 1e6

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

#define WEIGHT_KEY(n, f) KOS_CF_NUM(n, P(weight[f]), 0, WEIGHT_MAX, 0, F_WEIGHT0 + (f))

static const struct kos_cf_key weights_keys[] = {
	WEIGHT_KEY("latency", KOS_FACTOR_LATENCY),
	WEIGHT_KEY("integrity", KOS_FACTOR_INTEGRITY),
	WEIGHT_KEY("usage", KOS_FACTOR_USAGE),
	WEIGHT_KEY("anomaly", KOS_FACTOR_ANOMALY),
	WEIGHT_KEY("reputation", KOS_FACTOR_REPUTATION),
	KOS_CF_END,
};

static const struct kos_cf_key latency_keys[] = {
	KOS_CF_DUR("target", P(latency.target), 0, F_LAT_TARGET),
	KOS_CF_DUR("limit", P(latency.limit), 0, F_LAT_LIMIT),
	KOS_CF_NUM("smoothing", P(latency.smoothing), 0, 1, KOS_CF_OPEN_MIN, F_NONE),
	KOS_CF_END,
};

static const struct kos_cf_key integrity_keys[] = {
	KOS_CF_NUM("penalty", P(integrity.penalty), 0, 100, 0, F_NONE),
	KOS_CF_NUM("failure_penalty", P(integrity.failure_penalty), 0, 100, 0, F_NONE),
	KOS_CF_NUM("recovery", P(integrity.recovery), 0, 100, 0, F_NONE),
	KOS_CF_END,
};

static const struct kos_cf_key usage_keys[] = {
	KOS_CF_DUR("window", P(usage.window), 0, F_NONE),
	KOS_CF_INT("ops", P(usage.ops), PSIZE(usage.ops), 0, INT64_MAX, 0, F_NONE),
	KOS_CF_INT("bytes", P(usage.bytes), PSIZE(usage.bytes), 0, INT64_MAX, 0, F_NONE),
	KOS_CF_END,
};

static const struct kos_cf_key anomaly_keys[] = {
	KOS_CF_DUR("window", P(anomaly.window), 0, F_NONE),
	KOS_CF_NUM("z_limit", P(anomaly.z_limit), 0, 100, KOS_CF_OPEN_MIN, F_NONE),
	/* a standard deviation needs two samples */
	KOS_CF_INT("min_samples", P(anomaly.min_samples), PSIZE(anomaly.min_samples), 2, 10000, 0,
		F_NONE),
	/* a young client is always judged: 0 would switch the check off */
	KOS_CF_INT("initial_rate", P(anomaly.initial_rate), PSIZE(anomaly.initial_rate), 1, 1000000000,
		0, F_NONE),
	KOS_CF_NUM("penalty", P(anomaly.penalty), 0, 100, 0, F_NONE),
	KOS_CF_INT("scope_violations", P(anomaly.scope_violations), PSIZE(anomaly.scope_violations), 0,
		1000000, 0, F_NONE),
	KOS_CF_DUR("scope_window", P(anomaly.scope_window), 0, F_NONE),
	KOS_CF_NUM("scope_penalty", P(anomaly.scope_penalty), 0, 100, 0, F_NONE),
	KOS_CF_NUM("recovery", P(anomaly.recovery), 0, 100, 0, F_NONE),
	KOS_CF_NUM("flag_below", P(anomaly.flag_below), 0, 100, 0, F_NONE),
	KOS_CF_END,
};

static const struct kos_cf_key reputation_keys[] = {
	KOS_CF_NUM("smoothing", P(reputation.smoothing), 0, 1, KOS_CF_OPEN_MIN, F_NONE),
	KOS_CF_END,
};

static const struct kos_cf_key trust_keys[] = {
	KOS_CF_NUM("prior", P(prior), 0, 100, 0, F_NONE),
	KOS_CF_DUR("half_life", P(half_life), 0, F_NONE),
	KOS_CF_DUR("recovery_half_life", P(recovery_half_life), 0, F_NONE),
	KOS_CF_GROUP("weights", weights_keys, F_WEIGHTS),
	KOS_CF_GROUP("latency", latency_keys, F_NONE),
	KOS_CF_GROUP("integrity", integrity_keys, F_NONE),
	KOS_CF_GROUP("usage", usage_keys, F_NONE),
	KOS_CF_GROUP("anomaly", anomaly_keys, F_NONE),
	KOS_CF_GROUP("reputation", reputation_keys, F_NONE),
	KOS_CF_END,
};

static const struct kos_cf_key tiers_keys[] = {
	KOS_CF_NUM("high", P(tier_high), 0, 100, 0, F_TIER_HIGH),
	KOS_CF_NUM("medium", P(tier_medium), 0, 100, 0, F_TIER_MEDIUM),
	KOS_CF_NUM("request", P(request_threshold), 0, 100, 0, F_TIER_REQUEST),
	KOS_CF_END,
};

static const struct kos_cf_key share_set_keys[] = {
	{ .name = "name", .kind = KOS_CF_KIND_NAME, .flags = KOS_CF_REQUIRED, .off = R(name),
	  .size = RSIZE(name), .id = S_NAME },
	KOS_CF_NUM("min_score", R(min_score), 0, 100, KOS_CF_REQUIRED, S_MIN),
	KOS_CF_NUM("max_score", R(max_score), 0, 100, KOS_CF_REQUIRED, S_MAX),
	KOS_CF_INT("n", R(n), RSIZE(n), 2, 255, KOS_CF_REQUIRED, S_N),
	KOS_CF_INT("k", R(k), RSIZE(k), 2, 255, KOS_CF_REQUIRED, S_K),
	KOS_CF_END,
};

static const struct kos_cf_key lifetime_keys[] = {
	KOS_CF_DUR("high", P(credentials.lifetime[KOS_TIER_HIGH]), 0, F_LIFE_HIGH),
	KOS_CF_DUR("medium", P(credentials.lifetime[KOS_TIER_MEDIUM]), 0, F_LIFE_MEDIUM),
	KOS_CF_DUR("low", P(credentials.lifetime[KOS_TIER_LOW]), 0, F_LIFE_LOW),
	KOS_CF_END,
};

static const struct kos_cf_key credentials_keys[] = {
	KOS_CF_GROUP("lifetime", lifetime_keys, F_NONE),
	KOS_CF_DUR("leeway", P(credentials.leeway), KOS_CF_ZERO_OK, F_NONE),
	KOS_CF_DUR("max_chain", P(credentials.max_chain), 0, F_MAX_CHAIN),
	KOS_CF_DUR("enrollment", P(credentials.enrollment), 0, F_NONE),
	KOS_CF_STR("issuer", P(credentials.issuer), PSIZE(credentials.issuer), F_NONE),
	KOS_CF_STR("audience", P(credentials.audience), PSIZE(credentials.audience), F_NONE),
	KOS_CF_END,
};

static const struct kos_cf_key rotation_keys[] = {
	KOS_CF_DUR("dek", P(rotation.dek), 0, F_ROT_DEK),
	KOS_CF_DUR("signing", P(rotation.signing), 0, F_NONE),
	KOS_CF_DUR("ca", P(rotation.ca), 0, F_NONE),
	KOS_CF_END,
};

static const struct kos_cf_key keys_keys[] = {
	KOS_CF_DUR("cache", P(keys.cache), KOS_CF_ZERO_OK, F_KEYS_CACHE),
	KOS_CF_END,
};

static int take_min_tier(kos_cf *cf, const config_setting_t *s, const char *path,
			 const struct kos_cf_key *k, void *base);

static const struct kos_cf_key signing_keys[] = {
	KOS_CF_BOOL("allow_sha1", P(signing.allow_sha1), F_NONE),
	KOS_CF_FN("min_tier", take_min_tier, 0, F_NONE),
	KOS_CF_END,
};

#define THREAT_KEYS(t)                                                                          \
	{                                                                                       \
		KOS_CF_NUM("offset", P(threat[t].offset), 0, 100, 0, F_OFFSET0 + (t)),             \
		KOS_CF_NUM("lifetime_factor", P(threat[t].lifetime_factor), 0, 1, KOS_CF_OPEN_MIN,    \
			F_FACTOR0 + (t)),                                                       \
		KOS_CF_END,                                                                        \
	}

/* A raised level also says when it is reached without an administrator. */
#define RAISED_THREAT_KEYS(t)                                                                   \
	{                                                                                       \
		KOS_CF_NUM("offset", P(threat[t].offset), 0, 100, 0, F_OFFSET0 + (t)),             \
		KOS_CF_NUM("lifetime_factor", P(threat[t].lifetime_factor), 0, 1, KOS_CF_OPEN_MIN,    \
			F_FACTOR0 + (t)),                                                       \
		KOS_CF_NUM("anomalous_share", P(threat[t].anomalous_share), 0, 1, KOS_CF_OPEN_MIN,    \
			F_SHARE0 + (t)),                                                        \
		KOS_CF_END,                                                                        \
	}

static const struct kos_cf_key threat_normal_keys[] = THREAT_KEYS(KOS_THREAT_NORMAL);
static const struct kos_cf_key threat_elevated_keys[] = RAISED_THREAT_KEYS(KOS_THREAT_ELEVATED);
static const struct kos_cf_key threat_critical_keys[] = RAISED_THREAT_KEYS(KOS_THREAT_CRITICAL);

static const struct kos_cf_key threat_keys[] = {
	KOS_CF_GROUP("normal", threat_normal_keys, F_NONE),
	KOS_CF_GROUP("elevated", threat_elevated_keys, F_NONE),
	KOS_CF_GROUP("critical", threat_critical_keys, F_NONE),
	KOS_CF_INT("min_clients", P(threat_min_clients), PSIZE(threat_min_clients), 1, 1000000, 0,
		F_NONE),
	KOS_CF_END,
};

static int take_version(kos_cf *cf, const config_setting_t *s, const char *path,
			const struct kos_cf_key *k, void *base);
static int take_share_sets(kos_cf *cf, const config_setting_t *list, const char *path,
			   const struct kos_cf_key *k, void *base);

static const struct kos_cf_key root_keys[] = {
	{ .name = "version", .kind = KOS_CF_KIND_FN, .flags = KOS_CF_REQUIRED, .fn = take_version,
	  .missing = "; a policy starts with \"version = 1;\"" },
	KOS_CF_GROUP("trust", trust_keys, F_NONE),
	KOS_CF_GROUP("tiers", tiers_keys, F_NONE),
	KOS_CF_FN("share_sets", take_share_sets, 0, F_NONE),
	KOS_CF_GROUP("credentials", credentials_keys, F_NONE),
	KOS_CF_GROUP("rotation", rotation_keys, F_NONE),
	KOS_CF_GROUP("keys", keys_keys, F_NONE),
	KOS_CF_GROUP("signing", signing_keys, F_NONE),
	KOS_CF_GROUP("threat", threat_keys, F_NONE),
	KOS_CF_END,
};

static int take_version(kos_cf *cf, const config_setting_t *s, const char *path,
			const struct kos_cf_key *k, void *base)
{
	long long v;

	(void)k;
	(void)base;
	if (config_setting_type(s) != CONFIG_TYPE_INT &&
	    config_setting_type(s) != CONFIG_TYPE_INT64) {
		kos_cf_problem(cf, kos_cf_line(s), "%s: must be the integer 1, not %s", path, kos_cf_type(s));
		return -1;
	}
	v = config_setting_get_int64(s);
	if (kos_cf_overflowed(cf, s))
		return -1;
	if (v != 1) {
		kos_cf_problem(cf, kos_cf_line(s), "%s: unsupported version %lld; this kos reads version 1",
			path, v);
		return -1;
	}
	return kos_cf_line(s);
}

/* signing.min_tier: a tier that is not deny, by name (deny signs nothing
 * whatever the policy says). */
static int take_min_tier(kos_cf *cf, const config_setting_t *s, const char *path,
			 const struct kos_cf_key *k, void *base)
{
	static const kos_tier tiers[] = { KOS_TIER_HIGH, KOS_TIER_MEDIUM, KOS_TIER_LOW };
	struct kos_policy *pol = base;
	const char *text;
	char shown[48];
	size_t i;

	(void)k;
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		kos_cf_problem(cf, kos_cf_line(s),
			       "%s: must be \"high\", \"medium\" or \"low\", not %s", path,
			       kos_cf_type(s));
		return -1;
	}
	text = config_setting_get_string(s);
	for (i = 0; i < KOS_ARRAY_SIZE(tiers); i++) {
		if (strcmp(text, kos_tier_name(tiers[i])) == 0) {
			pol->signing.min_tier = tiers[i];
			return kos_cf_line(s);
		}
	}
	kos_cf_problem(cf, kos_cf_line(s),
		       "%s: must be \"high\", \"medium\" or \"low\", not \"%s\"", path,
		       kos_cf_printable(text, shown, sizeof(shown)));
	return -1;
}

static int take_share_sets(kos_cf *cf, const config_setting_t *list, const char *path,
			   const struct kos_cf_key *k, void *base)
{
	struct kos_policy *pol = base;
	struct {
		struct kos_share_set_rule rule;
		int index;
	} good[KOS_POLICY_MAX_SHARE_SETS];
	char shown[48];
	size_t n_good = 0, j;
	bool bad = false;
	int count, i;

	(void)k;
	if (!config_setting_is_list(list)) {
		kos_cf_problem(cf, kos_cf_line(list),
			"%s: must be a list ( { name = ...; ... }, ... ), not %s", path,
			kos_cf_type(list));
		return -1;
	}
	count = config_setting_length(list);
	if (count < 1 || count > KOS_POLICY_MAX_SHARE_SETS) {
		kos_cf_problem(cf, kos_cf_line(list), "%s: must hold 1 to %d share sets (has %d)", path,
			KOS_POLICY_MAX_SHARE_SETS, count);
		bad = true;
	}
	for (i = 0; i < count; i++) {
		const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
		struct kos_share_set_rule rule;
		int sl[S_COUNT] = { 0 };
		unsigned before = cf->count;
		char epath[KOS_CF_PATH_LEN];

		snprintf(epath, sizeof(epath), "%.40s[%d]", path, i);
		if (!config_setting_is_group(e)) {
			kos_cf_problem(cf, kos_cf_line(e), "%s: must be a group { name = ...; ... }, not %s",
				epath, kos_cf_type(e));
			bad = true;
			continue;
		}
		memset(&rule, 0, sizeof(rule));
		kos_cf_walk(cf, e, epath, share_set_keys, &rule, sl);
		if (sl[S_MIN] > 0 && sl[S_MAX] > 0 && rule.min_score >= rule.max_score)
			kos_cf_problem(cf, sl[S_MAX], "%s.max_score: must be greater than min_score (%g)",
				epath, rule.min_score);
		if (sl[S_N] > 0 && sl[S_K] > 0 && rule.k > rule.n)
			kos_cf_problem(cf, sl[S_K], "%s.k: must be at most n (%u)", epath, rule.n);
		for (j = 0; cf->count == before && j < n_good; j++) {
			const struct kos_share_set_rule *o = &good[j].rule;

			if (strcmp(o->name, rule.name) == 0)
				kos_cf_problem(cf, sl[S_NAME],
					"%s.name: \"%s\" is already the name of %s[%d]", epath,
					kos_cf_printable(rule.name, shown, sizeof(shown)), path,
					good[j].index);
			else if (rule.min_score < o->max_score && o->min_score < rule.max_score)
				kos_cf_problem(
				    cf, kos_cf_line(e),
				    "%s: scores [%g, %g) overlap those of %s[%d] \"%s\" [%g, %g)",
				    epath, rule.min_score, rule.max_score, path, good[j].index,
				    o->name, o->min_score, o->max_score);
		}
		if (cf->count != before) {
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
		pol->share_sets[j] = good[j].rule;
	pol->n_share_sets = n_good;
	return kos_cf_line(list);
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
static void check_order(kos_cf *cf, const int *line, int lo, double lo_v, int hi, double hi_v,
			bool strict, bool duration)
{
	int l_lo = line[lo], l_hi = line[hi];
	char shown[32];

	if (l_lo < 0 || l_hi < 0)
		return;
	if (strict ? lo_v < hi_v : lo_v <= hi_v)
		return;
	if (l_hi >= l_lo) {
		show_value(shown, sizeof(shown), lo_v, duration);
		kos_cf_problem(cf, l_hi, "%s: must be %s %s (%s)", field_path[hi],
			strict ? "greater than" : "at least", field_path[lo], shown);
	} else {
		show_value(shown, sizeof(shown), hi_v, duration);
		kos_cf_problem(cf, l_lo, "%s: must be %s %s (%s)", field_path[lo],
			strict ? "less than" : "at most", field_path[hi], shown);
	}
}

static void check_cross(kos_cf *cf, const struct kos_policy *p, const int *line)
{
	const kos_usec *life = p->credentials.lifetime;
	double sum = 0;
	bool weights_ok = true;
	int i;

	for (i = 0; i < KOS_FACTOR_COUNT; i++) {
		weights_ok = weights_ok && line[F_WEIGHT0 + i] >= 0;
		sum += p->weight[i];
	}
	if (line[F_WEIGHTS] > 0 && weights_ok && sum == 0)
		kos_cf_problem(cf, line[F_WEIGHTS], "trust.weights: at least one weight must be > 0");
	check_order(cf, line, F_LAT_TARGET, (double)p->latency.target, F_LAT_LIMIT,
		    (double)p->latency.limit, true, true);
	check_order(cf, line, F_TIER_REQUEST, p->request_threshold, F_TIER_MEDIUM, p->tier_medium, true,
		    false);
	check_order(cf, line, F_TIER_MEDIUM, p->tier_medium, F_TIER_HIGH, p->tier_high, true, false);
	check_order(cf, line, F_LIFE_LOW, (double)life[KOS_TIER_LOW], F_LIFE_MEDIUM,
		    (double)life[KOS_TIER_MEDIUM], false, true);
	check_order(cf, line, F_LIFE_MEDIUM, (double)life[KOS_TIER_MEDIUM], F_LIFE_HIGH,
		    (double)life[KOS_TIER_HIGH], false, true);
	check_order(cf, line, F_LIFE_HIGH, (double)life[KOS_TIER_HIGH], F_MAX_CHAIN,
		    (double)p->credentials.max_chain, false, true);
	/* a DEK version cached past the rotation interval would keep
	 * encrypting under the old version after another process rotated */
	check_order(cf, line, F_KEYS_CACHE, (double)p->keys.cache, F_ROT_DEK, (double)p->rotation.dek,
		    false, true);
	for (i = KOS_THREAT_NORMAL; i < KOS_THREAT_CRITICAL; i++) {
		check_order(cf, line, F_OFFSET0 + i, p->threat[i].offset, F_OFFSET0 + i + 1,
			    p->threat[i + 1].offset, false, false);
		/* lifetime factors run the other way: never longer at a higher level */
		check_order(cf, line, F_FACTOR0 + i + 1, p->threat[i + 1].lifetime_factor, F_FACTOR0 + i,
			    p->threat[i].lifetime_factor, false, false);
	}
	/* the higher level needs at least the share the lower one does */
	check_order(cf, line, F_SHARE0 + KOS_THREAT_ELEVATED, p->threat[KOS_THREAT_ELEVATED].anomalous_share,
		    F_SHARE0 + KOS_THREAT_CRITICAL, p->threat[KOS_THREAT_CRITICAL].anomalous_share,
		    false, false);
}


kos_rv kos_policy_load(const char *path, kos_policy **out, char **diag)
{
	struct kos_policy *pol = NULL;
	int line[F_COUNT] = { 0 };
	kos_cf cf;
	kos_rv rv;

	if (diag != NULL)
		*diag = NULL;
	if (out == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_policy_load: no place for the policy");
	*out = NULL;
	if (path == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_policy_load: no policy file given");

	rv = kos_cf_open(&cf, path, &policy_format);
	if (rv != KOS_OK)
		goto out;
	pol = calloc(1, sizeof(*pol));
	if (pol == NULL) {
		rv = kos_error_set(KOS_E_NOMEM, "out of memory");
		goto out;
	}
	kos_policy_init_defaults(pol);
	kos_cf_walk(&cf, kos_cf_root(&cf), "", root_keys, pol, line);
	check_cross(&cf, pol, line);
	if (cf.count != 0) {
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
		rv = kos_cf_finish(&cf, diag);
	kos_cf_close(&cf);
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
static void describe_keys(struct outbuf *o, const struct kos_policy *pol, const struct kos_cf_key *keys,
			  const char *path)
{
	const struct kos_cf_key *k;
	char sub[KOS_CF_PATH_LEN], dur[32];
	size_t i;

	for (k = keys; k->name != NULL; k++) {
		const char *at = (const char *)pol + k->off;

		kos_cf_join(sub, sizeof(sub), path, ".", k->name);
		switch (k->kind) {
		case KOS_CF_KIND_GROUP:
			describe_keys(o, pol, k->sub, sub);
			break;
		case KOS_CF_KIND_NUMBER: {
			double v;

			memcpy(&v, at, sizeof(v));
			put(o, "%s: %g\n", sub, v);
			break;
		}
		case KOS_CF_KIND_INT:
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
		case KOS_CF_KIND_DURATION: {
			kos_usec v;

			memcpy(&v, at, sizeof(v));
			if (v == 0)
				snprintf(dur, sizeof(dur), "0s");
			else
				kos_duration_format(v, dur, sizeof(dur));
			put(o, "%s: %s\n", sub, dur);
			break;
		}
		case KOS_CF_KIND_FN:
			if (k->fn == take_min_tier) {
				put(o, "%s: %s\n", sub, kos_tier_name(pol->signing.min_tier));
				break;
			}
			/* version is not stored; share_sets is the other */
			if (k->fn != take_share_sets)
				break;
			for (i = 0; i < pol->n_share_sets; i++) {
				const struct kos_share_set_rule *r = &pol->share_sets[i];

				put(o, "%s.%s: scores [%g, %g), %u of %u shares\n", sub, r->name,
				    r->min_score, r->max_score, r->k, r->n);
			}
			break;
		case KOS_CF_KIND_STRING:
			put(o, "%s: %s\n", sub, at);
			break;
		case KOS_CF_KIND_BOOL: {
			bool v;

			memcpy(&v, at, sizeof(v));
			put(o, "%s: %s\n", sub, v ? "true" : "false");
			break;
		}
		case KOS_CF_KIND_NAME:
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
