/* The trust engine over simulated time: scores, decay, every observation,
 * the request-rate anomaly, tiers under threat levels, validation and
 * persistence, and the ceiling a penalty sets (a burst of successes after
 * integrity failures, recovery along the bound, a young client's burst, a
 * store reopened or migrated from schema 5). Expected values are computed
 * from the model's formulas (kos/trust.c) here, not copied from the
 * implementation's output. */
#include "config.h"

#include "kos/store_backend.h"
#include "tests/kos-test.h"

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEC KOS_USEC_PER_SEC
#define DAY (86400 * SEC)
#define T0  (INT64_C(1800000000) * SEC)
#define EPS 1e-9
/* for tests that must not see decay: ~146,000 years */
#define NO_DECAY (INT64_MAX / 2)

struct fx {
	struct kos_policy *pol;
	kos_store *st;
	kos_trust *tr;
	kos_usec now;
};

static kos_usec fx_clock(void *arg)
{
	return *(const kos_usec *)arg;
}

static void fx_open_store(struct fx *f, const char *location)
{
	CU_ASSERT_EQUAL_FATAL(kos_store_open(location, &f->st), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_trust_new(f->pol, f->st, &f->tr), KOS_OK);
	kos_trust_set_clock(f->tr, fx_clock, &f->now);
}

static void fx_init(struct fx *f, const char *location)
{
	memset(f, 0, sizeof(*f));
	CU_ASSERT_EQUAL_FATAL(kos_policy_new_default(&f->pol), KOS_OK);
	f->now = T0;
	fx_open_store(f, location);
}

static void fx_close_store(struct fx *f)
{
	kos_trust_free(f->tr);
	kos_store_free(f->st);
	f->tr = NULL;
	f->st = NULL;
}

static void fx_fini(struct fx *f)
{
	fx_close_store(f);
	kos_policy_free(f->pol);
}

static kos_rv observe(struct fx *f, const char *client, kos_event ev, double value,
		      kos_trust_info *info)
{
	kos_observation obs = {.event = ev, .value = value};

	return kos_trust_observe(f->tr, client, &obs, info);
}

static kos_rv observe_usage(struct fx *f, const char *client, uint64_t ops, uint64_t bytes,
			    kos_trust_info *info)
{
	kos_observation obs = {.event = KOS_EVENT_USAGE, .ops = ops, .bytes = bytes};

	return kos_trust_observe(f->tr, client, &obs, info);
}

/* The model's score: the weighted mean of the factors. */
static double wmean(const struct kos_policy *p, const double fac[KOS_FACTOR_COUNT])
{
	double s = 0, w = 0;

	for (int i = 0; i < KOS_FACTOR_COUNT; i++) {
		s += p->weight[i] * fac[i];
		w += p->weight[i];
	}
	return s / w;
}

static double clampf(double v)
{
	return v < 0 ? 0 : v > 100 ? 100 : v;
}

static void test_new_client_at_prior(void)
{
	struct fx f;
	kos_trust_info info;
	double want[KOS_FACTOR_COUNT];

	fx_init(&f, "memory:");
	CU_ASSERT_EQUAL(kos_trust_get(f.tr, "alice", &info), KOS_E_NOTFOUND);
	/* a reputation value equal to the prior leaves every factor there */
	CU_ASSERT_EQUAL_FATAL(observe(&f, "alice", KOS_EVENT_REPUTATION, 60.0, &info), KOS_OK);
	CU_ASSERT_STRING_EQUAL(info.client, "alice");
	for (int i = 0; i < KOS_FACTOR_COUNT; i++)
		CU_ASSERT_DOUBLE_EQUAL(info.factor[i], f.pol->prior, EPS);
	CU_ASSERT_DOUBLE_EQUAL(info.score, 60.0, EPS);
	CU_ASSERT_EQUAL(info.tier, KOS_TIER_MEDIUM);
	CU_ASSERT_EQUAL(info.created, T0);
	CU_ASSERT_EQUAL(info.last_activity, T0);
	CU_ASSERT_EQUAL(info.observations, 1);
	CU_ASSERT_EQUAL(info.integrity_failures, 0);
	CU_ASSERT_EQUAL(info.scope_violations, 0);
	CU_ASSERT_FALSE(info.anomalous);

	/* a success moves integrity only: the score by 4/9 of the recovery */
	f.now += SEC;
	CU_ASSERT_EQUAL_FATAL(observe(&f, "bob", KOS_EVENT_SUCCESS, 0, &info), KOS_OK);
	for (int i = 0; i < KOS_FACTOR_COUNT; i++)
		want[i] = 60.0;
	want[KOS_FACTOR_INTEGRITY] = 61.0;
	for (int i = 0; i < KOS_FACTOR_COUNT; i++)
		CU_ASSERT_DOUBLE_EQUAL(info.factor[i], want[i], EPS);
	CU_ASSERT_DOUBLE_EQUAL(info.score, wmean(f.pol, want), EPS);
	CU_ASSERT_DOUBLE_EQUAL(info.score, 60.0 + 4.0 / 9.0, EPS);
	CU_ASSERT_EQUAL(info.created, T0 + SEC);
	fx_fini(&f);
}

/* Integrity failures take a trusted client down through every tier. */
static void check_integrity_tiers(const char *location)
{
	static const kos_tier tiers[] = {KOS_TIER_HIGH, KOS_TIER_MEDIUM, KOS_TIER_MEDIUM,
					 KOS_TIER_LOW, KOS_TIER_DENY};
	struct fx f;
	kos_trust_info info, got;
	double fac[KOS_FACTOR_COUNT];
	int i;

	fx_init(&f, location);
	f.pol->prior = 90.0;
	f.pol->weight[KOS_FACTOR_LATENCY] = 1;
	f.pol->weight[KOS_FACTOR_INTEGRITY] = 6;
	f.pol->weight[KOS_FACTOR_USAGE] = 1;
	f.pol->weight[KOS_FACTOR_ANOMALY] = 1;
	f.pol->weight[KOS_FACTOR_REPUTATION] = 1;
	f.pol->request_threshold = 40.0;
	for (i = 0; i < KOS_FACTOR_COUNT; i++)
		fac[i] = 90.0;

	CU_ASSERT_EQUAL_FATAL(observe(&f, "mallory", KOS_EVENT_SUCCESS, 0, &info), KOS_OK);
	fac[KOS_FACTOR_INTEGRITY] = 91.0;
	CU_ASSERT_DOUBLE_EQUAL(info.score, wmean(f.pol, fac), EPS);
	CU_ASSERT_DOUBLE_EQUAL(info.score, 90.6, EPS);
	CU_ASSERT_EQUAL(info.tier, tiers[0]);
	for (i = 1; i <= 4; i++) {
		CU_ASSERT_EQUAL_FATAL(observe(&f, "mallory", KOS_EVENT_INTEGRITY, 0, &info),
				      KOS_OK);
		fac[KOS_FACTOR_INTEGRITY] =
		    clampf(fac[KOS_FACTOR_INTEGRITY] - f.pol->integrity.penalty);
		CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_INTEGRITY], fac[KOS_FACTOR_INTEGRITY],
				       EPS);
		CU_ASSERT_DOUBLE_EQUAL(info.score, wmean(f.pol, fac), EPS);
		CU_ASSERT_EQUAL(info.tier, tiers[i]);
		CU_ASSERT_EQUAL(info.integrity_failures, (uint64_t)i);
		CU_ASSERT_EQUAL(kos_trust_get(f.tr, "mallory", &got), KOS_OK);
		CU_ASSERT_DOUBLE_EQUAL(got.score, info.score, EPS);
		CU_ASSERT_EQUAL(got.tier, info.tier);
	}
	/* 75.6, 60.6, 45.6, then integrity clamps at 0: 36 */
	CU_ASSERT_DOUBLE_EQUAL(info.score, 36.0, EPS);
	CU_ASSERT_EQUAL(info.factor[KOS_FACTOR_INTEGRITY], 0.0);
	CU_ASSERT_EQUAL(info.observations, 5);
	fx_fini(&f);
}

static void test_integrity_tiers(void)
{
	check_integrity_tiers("memory:");
	check_integrity_tiers(kos_test_path("tiers.db"));
}

static void test_decay_half_life(void)
{
	struct fx f;
	kos_trust_info at0, info;
	double d0;

	fx_init(&f, "memory:");
	f.pol->anomaly.recovery = 0; /* keep the rate baseline out of this test */
	CU_ASSERT_EQUAL(observe(&f, "idle", KOS_EVENT_INTEGRITY, 0, NULL), KOS_OK);
	CU_ASSERT_EQUAL(observe(&f, "idle", KOS_EVENT_INTEGRITY, 0, NULL), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(observe(&f, "idle", KOS_EVENT_REPUTATION, 100, &at0), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(at0.factor[KOS_FACTOR_INTEGRITY], 10.0, EPS);
	CU_ASSERT_DOUBLE_EQUAL(at0.factor[KOS_FACTOR_REPUTATION], 72.0, EPS);
	/* the feed lifts a factor, not the score: the second failure left it
	 * at (60 + 4 * 10 + 60 + 2 * 60 + 60) / 9 and set the ceiling there */
	CU_ASSERT_DOUBLE_EQUAL(at0.ceiling, 340.0 / 9, EPS);
	CU_ASSERT_DOUBLE_EQUAL(at0.score, 340.0 / 9, EPS);
	CU_ASSERT_EQUAL(at0.ceiling_since, T0);
	/* a week is 28 recovery half-lives: the factors alone decide then */
	d0 = wmean(f.pol, at0.factor) - f.pol->prior;

	/* one half-life: every distance to the prior halves */
	f.now = T0 + f.pol->half_life;
	CU_ASSERT_EQUAL_FATAL(kos_trust_get(f.tr, "idle", &info), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_INTEGRITY], 35.0, EPS);
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_REPUTATION], 66.0, EPS);
	CU_ASSERT_DOUBLE_EQUAL(info.score - 60.0, d0 / 2, EPS);
	/* two: a quarter; one and a half: 2^-1.5 */
	f.now = T0 + 2 * f.pol->half_life;
	CU_ASSERT_EQUAL_FATAL(kos_trust_get(f.tr, "idle", &info), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(info.score - 60.0, d0 / 4, EPS);
	f.now = T0 + f.pol->half_life + f.pol->half_life / 2;
	CU_ASSERT_EQUAL_FATAL(kos_trust_get(f.tr, "idle", &info), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_INTEGRITY], 60.0 - 50.0 * pow(2, -1.5), EPS);
	/* a day */
	f.now = T0 + DAY;
	CU_ASSERT_EQUAL_FATAL(kos_trust_get(f.tr, "idle", &info), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_INTEGRITY], 60.0 - 50.0 * exp2(-1.0 / 7.0),
			       EPS);
	/* the tier follows the decayed score */
	CU_ASSERT_EQUAL(info.tier, kos_trust_tier_of(f.tr, info.score));

	/* an observation stores the decayed value, then applies the event;
	 * the next read decays from there, not from T0 again */
	f.now = T0 + f.pol->half_life;
	CU_ASSERT_EQUAL_FATAL(observe(&f, "idle", KOS_EVENT_SUCCESS, 0, &info), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_INTEGRITY], 36.0, EPS);
	CU_ASSERT_EQUAL(info.last_activity, T0 + f.pol->half_life);
	f.now = T0 + 2 * f.pol->half_life;
	CU_ASSERT_EQUAL_FATAL(kos_trust_get(f.tr, "idle", &info), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_INTEGRITY], 48.0, EPS);
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_REPUTATION], 63.0, EPS);
	fx_fini(&f);
}

static void test_get_does_not_write(void)
{
	struct fx f;
	struct kos_trust_state before, after;
	kos_trust_info info;

	fx_init(&f, kos_test_path("readonly.db"));
	CU_ASSERT_EQUAL_FATAL(observe(&f, "reader", KOS_EVENT_INTEGRITY, 0, NULL), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_store_trust_get(f.st, "reader", &before), KOS_OK);
	f.now = T0 + 30 * DAY;
	CU_ASSERT_EQUAL_FATAL(kos_trust_get(f.tr, "reader", &info), KOS_OK);
	CU_ASSERT(info.factor[KOS_FACTOR_INTEGRITY] > 35.0 + 10.0); /* decayed in the answer */
	CU_ASSERT_EQUAL(info.last_activity, T0);
	CU_ASSERT_EQUAL_FATAL(kos_store_trust_get(f.st, "reader", &after), KOS_OK);
	CU_ASSERT_EQUAL(after.last_activity, T0);
	CU_ASSERT_EQUAL(after.observations, before.observations);
	for (int i = 0; i < KOS_FACTOR_COUNT; i++)
		CU_ASSERT_EQUAL(after.factor[i], before.factor[i]);
	CU_ASSERT_EQUAL(after.factor[KOS_FACTOR_INTEGRITY], 35.0);
	/* and reading at the original time still gives the original answer */
	f.now = T0;
	CU_ASSERT_EQUAL_FATAL(kos_trust_get(f.tr, "reader", &info), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_INTEGRITY], 35.0, EPS);
	fx_fini(&f);
}

static void test_clock_backwards(void)
{
	struct fx f;
	kos_trust_info info;

	fx_init(&f, "memory:");
	CU_ASSERT_EQUAL_FATAL(observe(&f, "c", KOS_EVENT_INTEGRITY, 0, NULL), KOS_OK);
	f.now = T0 - 3600 * SEC;
	/* no decay backwards; and the ceiling the failure set at T0 has not
	 * begun to rise, so a success earns nothing */
	CU_ASSERT_EQUAL_FATAL(observe(&f, "c", KOS_EVENT_SUCCESS, 0, &info), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_INTEGRITY], 35.0, EPS);
	CU_ASSERT_DOUBLE_EQUAL(info.ceiling, 440.0 / 9, EPS);
	CU_ASSERT_EQUAL_FATAL(observe(&f, "c", KOS_EVENT_REPUTATION, 100, &info), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_REPUTATION], 72.0, EPS);
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_INTEGRITY], 35.0, EPS);
	CU_ASSERT_EQUAL(info.last_activity, T0);
	f.now = T0 - 7200 * SEC;
	CU_ASSERT_EQUAL_FATAL(kos_trust_get(f.tr, "c", &info), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_INTEGRITY], 35.0, EPS);
	/* a penalty behind the clock: the ceiling stays at or below its value
	 * and keeps its later anchor, so going back in time does not start the
	 * recovery sooner; here the feed kept the weighted score above it */
	CU_ASSERT_EQUAL_FATAL(observe(&f, "c", KOS_EVENT_FAILURE, 0, &info), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(wmean(f.pol, info.factor), (60 + 4 * 33.0 + 60 + 120 + 72) / 9, EPS);
	CU_ASSERT_DOUBLE_EQUAL(info.ceiling, 440.0 / 9, EPS);
	CU_ASSERT_DOUBLE_EQUAL(info.score, 440.0 / 9, EPS);
	CU_ASSERT_EQUAL(info.ceiling_since, T0);
	/* three more take it below, at the same anchor */
	for (int i = 0; i < 3; i++)
		CU_ASSERT_EQUAL_FATAL(observe(&f, "c", KOS_EVENT_FAILURE, 0, &info), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(info.ceiling, (60 + 4 * 27.0 + 60 + 120 + 72) / 9, EPS);
	CU_ASSERT_EQUAL(info.ceiling_since, T0);
	f.now = T0;
	CU_ASSERT_EQUAL_FATAL(kos_trust_get(f.tr, "c", &info), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(info.ceiling, (60 + 4 * 27.0 + 60 + 120 + 72) / 9, EPS);
	fx_fini(&f);
}

static void test_latency(void)
{
	static const struct {
		double ms, sample;
	} v[] = {
	    {0, 100},	   {5, 100},	  {20, 100}, {20.48, 99.9}, {260, 50},
	    {377, 25.625}, {499.52, 0.1}, {500, 0},  {1e9, 0},
	};
	struct fx f;
	kos_trust_info info;
	size_t i;

	fx_init(&f, "memory:");
	/* target 20 ms, limit 500 ms: with smoothing 1 the factor is the sample */
	f.pol->latency.smoothing = 1.0;
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		CU_ASSERT_EQUAL_FATAL(observe(&f, "lat", KOS_EVENT_LATENCY, v[i].ms, &info),
				      KOS_OK);
		CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_LATENCY], v[i].sample, 1e-9);
	}
	/* smoothing 0.2: an EWMA */
	f.pol->latency.smoothing = 0.2;
	CU_ASSERT_EQUAL(observe(&f, "lat", KOS_EVENT_LATENCY, 10, &info), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_LATENCY], 20.0, EPS);
	CU_ASSERT_EQUAL(observe(&f, "lat", KOS_EVENT_LATENCY, 260, &info), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_LATENCY], 26.0, EPS);
	/* a new client starts from the prior */
	CU_ASSERT_EQUAL(observe(&f, "lat2", KOS_EVENT_LATENCY, 1, &info), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_LATENCY], 68.0, EPS);
	fx_fini(&f);
}

static void test_usage_quota(void)
{
	struct fx f;
	kos_trust_info info;

	fx_init(&f, "memory:");
	f.pol->usage.ops = 100;
	f.pol->usage.bytes = 1000;
	f.pol->usage.window = 3600 * SEC;
	CU_ASSERT_EQUAL(observe_usage(&f, "u", 50, 0, &info), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_USAGE], 100.0, EPS);
	CU_ASSERT_EQUAL(observe_usage(&f, "u", 50, 1000, &info), KOS_OK); /* exactly at quota */
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_USAGE], 100.0, EPS);
	f.now += 60 * SEC;
	CU_ASSERT_EQUAL(observe_usage(&f, "u", 50, 0, &info), KOS_OK); /* 150 ops */
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_USAGE], 50.0, EPS);
	CU_ASSERT_EQUAL(observe_usage(&f, "u", 0, 800, &info), KOS_OK); /* 1800 bytes: lower */
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_USAGE], 20.0, EPS);
	CU_ASSERT_EQUAL(observe_usage(&f, "u", 60, 0, &info), KOS_OK); /* 210 ops: past 2x */
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_USAGE], 0.0, EPS);
	/* the window opened at T0 and lasts an hour */
	f.now = T0 + 3600 * SEC - 1;
	CU_ASSERT_EQUAL(observe_usage(&f, "u", 0, 0, &info), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_USAGE], 0.0, EPS);
	f.now = T0 + 3600 * SEC;
	CU_ASSERT_EQUAL(observe_usage(&f, "u", 120, 0, &info), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_USAGE], 80.0, EPS);
	/* other events do not touch the usage factor */
	CU_ASSERT_EQUAL(observe(&f, "u", KOS_EVENT_SUCCESS, 0, &info), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_USAGE], 80.0, EPS);
	/* no quota: not limited */
	f.pol->usage.ops = 0;
	f.pol->usage.bytes = 0;
	CU_ASSERT_EQUAL(observe_usage(&f, "u", UINT64_MAX, UINT64_MAX, &info), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_USAGE], 100.0, EPS);
	fx_fini(&f);
}

static void test_scope_violations(void)
{
	struct fx f;
	kos_trust_info info;
	int i;

	fx_init(&f, "memory:");
	f.pol->half_life = NO_DECAY;
	f.pol->anomaly.recovery = 0;
	/* defaults: 3 violations allowed per 10 minutes, 20 points each beyond */
	CU_ASSERT_EQUAL(f.pol->anomaly.scope_violations, 3);
	for (i = 1; i <= 3; i++) {
		f.now = T0 + i * SEC;
		CU_ASSERT_EQUAL_FATAL(observe(&f, "s", KOS_EVENT_SCOPE, 0, &info), KOS_OK);
		CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_ANOMALY], 60.0, 1e-6);
		CU_ASSERT_EQUAL(info.scope_violations, (uint64_t)i);
	}
	CU_ASSERT_FALSE(info.anomalous);
	f.now = T0 + 4 * SEC;
	CU_ASSERT_EQUAL(observe(&f, "s", KOS_EVENT_SCOPE, 0, &info), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_ANOMALY], 40.0, 1e-6);
	CU_ASSERT_FALSE(info.anomalous); /* flagged below 40, not at it */
	CU_ASSERT_EQUAL(observe(&f, "s", KOS_EVENT_SCOPE, 0, &info), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_ANOMALY], 20.0, 1e-6);
	CU_ASSERT_TRUE(info.anomalous);
	CU_ASSERT_EQUAL(info.scope_violations, 5);
	/* a new window (it opened at T0 + 1 s) starts counting afresh */
	f.now = T0 + SEC + f.pol->anomaly.scope_window;
	for (i = 1; i <= 3; i++) {
		CU_ASSERT_EQUAL(observe(&f, "s", KOS_EVENT_SCOPE, 0, &info), KOS_OK);
		CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_ANOMALY], 20.0, 1e-6);
	}
	CU_ASSERT_EQUAL(observe(&f, "s", KOS_EVENT_SCOPE, 0, &info), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_ANOMALY], 0.0, 1e-6);
	CU_ASSERT_EQUAL(observe(&f, "s", KOS_EVENT_SCOPE, 0, &info), KOS_OK);
	CU_ASSERT_EQUAL(info.factor[KOS_FACTOR_ANOMALY], 0.0); /* clamped */
	CU_ASSERT_EQUAL(info.scope_violations, 10);
	fx_fini(&f);
}

/* A steady rate builds the baseline; a burst costs the anomaly factor once
 * per bucket; a flagged bucket earns no recovery. */
static void test_rate_anomaly(void)
{
	const kos_usec W = 60 * SEC;
	struct fx f;
	kos_trust_info info;
	double a = 60.0, prev;
	int b, j, drops;

	fx_init(&f, "memory:");
	f.pol->half_life = NO_DECAY;
	CU_ASSERT_EQUAL(f.pol->anomaly.window, W);
	CU_ASSERT_EQUAL(f.pol->anomaly.min_samples, 10);
	/* ten buckets of five requests: nothing is judged before the baseline
	 * holds min_samples buckets; each completed bucket recovers 0.5 */
	for (b = 0; b < 10; b++) {
		for (j = 0; j < 5; j++) {
			f.now = T0 + b * W + j * SEC;
			CU_ASSERT_EQUAL_FATAL(observe(&f, "r", KOS_EVENT_SUCCESS, 0, &info),
					      KOS_OK);
			if (b > 0 && j == 0)
				a += 0.5;
			CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_ANOMALY], a, 1e-6);
		}
	}
	CU_ASSERT_DOUBLE_EQUAL(a, 64.5, EPS);

	/* bucket 10: baseline mean 5, stddev 0 -> limit 5 + 3 * max(0, 1) = 8;
	 * the 9th request costs 15, later ones nothing more */
	for (j = 0; j < 100; j++) {
		f.now = T0 + 10 * W + j * 10000;
		CU_ASSERT_EQUAL_FATAL(observe(&f, "r", KOS_EVENT_SUCCESS, 0, &info), KOS_OK);
		if (j == 0)
			a += 0.5; /* bucket 9 completed */
		if (j == 8)
			a -= 15.0;
		CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_ANOMALY], a, 1e-6);
	}
	CU_ASSERT_DOUBLE_EQUAL(a, 50.0, EPS);
	CU_ASSERT_FALSE(info.anomalous);

	/* bucket 11: the baseline now holds the burst (mean 150/11, stddev
	 * ~27.3, limit ~95.5), yet 100 requests still exceed it: one more drop,
	 * and no recovery for the flagged bucket 10 */
	drops = 0;
	prev = a;
	for (j = 0; j < 100; j++) {
		f.now = T0 + 11 * W + j * 10000;
		CU_ASSERT_EQUAL_FATAL(observe(&f, "r", KOS_EVENT_SUCCESS, 0, &info), KOS_OK);
		if (info.factor[KOS_FACTOR_ANOMALY] < prev - 1e-6) {
			drops++;
			CU_ASSERT_DOUBLE_EQUAL(prev - info.factor[KOS_FACTOR_ANOMALY], 15.0, 1e-6);
			/* exactly when the count passes mean + 3 * stddev */
			CU_ASSERT_EQUAL(j + 1, 96);
		}
		prev = info.factor[KOS_FACTOR_ANOMALY];
	}
	CU_ASSERT_EQUAL(drops, 1);
	a -= 15.0;
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_ANOMALY], 35.0, 1e-6);
	CU_ASSERT_TRUE(info.anomalous);

	/* back to five a bucket: bucket 11 was flagged (no recovery), bucket 12
	 * is ordinary (recovery when bucket 13 starts) */
	for (j = 0; j < 5; j++) {
		f.now = T0 + 12 * W + j * SEC;
		CU_ASSERT_EQUAL(observe(&f, "r", KOS_EVENT_SUCCESS, 0, &info), KOS_OK);
	}
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_ANOMALY], 35.0, 1e-6);
	/* reputation feeds are not requests: 300 of them in one bucket
	 * neither close bucket 12 nor count as a burst */
	f.now = T0 + 13 * W;
	for (j = 0; j < 300; j++)
		CU_ASSERT_EQUAL(observe(&f, "r", KOS_EVENT_REPUTATION, 60, &info), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_ANOMALY], 35.0, 1e-6);
	CU_ASSERT_EQUAL(observe(&f, "r", KOS_EVENT_SUCCESS, 0, &info), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_ANOMALY], 35.5, 1e-6);
	/* idle gaps are not empty buckets: after an hour away, the same five a
	 * bucket is still ordinary */
	for (j = 1; j < 5; j++) {
		f.now = T0 + 13 * W + j * SEC;
		CU_ASSERT_EQUAL(observe(&f, "r", KOS_EVENT_SUCCESS, 0, &info), KOS_OK);
	}
	f.now = T0 + 80 * W;
	for (j = 0; j < 5; j++)
		CU_ASSERT_EQUAL(observe(&f, "r", KOS_EVENT_SUCCESS, 0, &info), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_ANOMALY], 36.0, 1e-6);
	CU_ASSERT_EQUAL(info.observations, 50 + 200 + 5 + 300 + 1 + 4 + 5);
	fx_fini(&f);
}

static void test_reputation_ewma(void)
{
	struct fx f;
	kos_trust_info info;

	fx_init(&f, "memory:");
	CU_ASSERT_DOUBLE_EQUAL(f.pol->reputation.smoothing, 0.3, EPS);
	CU_ASSERT_EQUAL(observe(&f, "p", KOS_EVENT_REPUTATION, 100, &info), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_REPUTATION], 72.0, EPS);
	CU_ASSERT_EQUAL(observe(&f, "p", KOS_EVENT_REPUTATION, 0, &info), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_REPUTATION], 50.4, EPS);
	CU_ASSERT_EQUAL(observe(&f, "p", KOS_EVENT_REPUTATION, 50, &info), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_REPUTATION], 50.28, EPS);
	/* only the reputation factor moves */
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_INTEGRITY], 60.0, EPS);
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_ANOMALY], 60.0, EPS);
	fx_fini(&f);
}

static void test_threat_levels(void)
{
	static const struct {
		kos_threat level;
		double score;
		kos_tier tier;
	} v[] = {
	    {KOS_THREAT_NORMAL, 100, KOS_TIER_HIGH},
	    {KOS_THREAT_NORMAL, 80, KOS_TIER_HIGH},
	    {KOS_THREAT_NORMAL, 79.9, KOS_TIER_MEDIUM},
	    {KOS_THREAT_NORMAL, 50, KOS_TIER_MEDIUM},
	    {KOS_THREAT_NORMAL, 49.9, KOS_TIER_LOW},
	    {KOS_THREAT_NORMAL, 20, KOS_TIER_LOW},
	    {KOS_THREAT_NORMAL, 19.9, KOS_TIER_DENY},
	    {KOS_THREAT_NORMAL, 0, KOS_TIER_DENY},
	    {KOS_THREAT_ELEVATED, 90, KOS_TIER_HIGH},
	    {KOS_THREAT_ELEVATED, 89.9, KOS_TIER_MEDIUM},
	    {KOS_THREAT_ELEVATED, 60, KOS_TIER_MEDIUM},
	    {KOS_THREAT_ELEVATED, 59.9, KOS_TIER_LOW},
	    {KOS_THREAT_ELEVATED, 30, KOS_TIER_LOW},
	    {KOS_THREAT_ELEVATED, 29.9, KOS_TIER_DENY},
	    /* critical: +25, the high threshold capped at 100 */
	    {KOS_THREAT_CRITICAL, 100, KOS_TIER_HIGH},
	    {KOS_THREAT_CRITICAL, 99.9, KOS_TIER_MEDIUM},
	    {KOS_THREAT_CRITICAL, 75, KOS_TIER_MEDIUM},
	    {KOS_THREAT_CRITICAL, 74.9, KOS_TIER_LOW},
	    {KOS_THREAT_CRITICAL, 45, KOS_TIER_LOW},
	    {KOS_THREAT_CRITICAL, 44.9, KOS_TIER_DENY},
	};
	struct fx f;
	kos_trust_info info;
	size_t i;

	fx_init(&f, "memory:");
	CU_ASSERT_EQUAL(kos_trust_get_threat(f.tr), KOS_THREAT_NORMAL);
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		kos_trust_set_threat(f.tr, v[i].level);
		CU_ASSERT_EQUAL(kos_trust_get_threat(f.tr), v[i].level);
		if (kos_trust_tier_of(f.tr, v[i].score) != v[i].tier) {
			fprintf(stderr, "\n  %s %.1f: got %s, want %s\n",
				kos_threat_name(v[i].level), v[i].score,
				kos_tier_name(kos_trust_tier_of(f.tr, v[i].score)),
				kos_tier_name(v[i].tier));
			CU_FAIL("tier");
		}
	}
	/* a client at 60 is medium, still medium when elevated, low when critical */
	kos_trust_set_threat(f.tr, KOS_THREAT_NORMAL);
	CU_ASSERT_EQUAL(observe(&f, "t", KOS_EVENT_REPUTATION, 60, &info), KOS_OK);
	CU_ASSERT_EQUAL(info.tier, KOS_TIER_MEDIUM);
	kos_trust_set_threat(f.tr, KOS_THREAT_ELEVATED);
	CU_ASSERT_EQUAL(kos_trust_get(f.tr, "t", &info), KOS_OK);
	CU_ASSERT_EQUAL(info.tier, KOS_TIER_MEDIUM);
	kos_trust_set_threat(f.tr, KOS_THREAT_CRITICAL);
	CU_ASSERT_EQUAL(kos_trust_get(f.tr, "t", &info), KOS_OK);
	CU_ASSERT_EQUAL(info.tier, KOS_TIER_LOW);
	CU_ASSERT_DOUBLE_EQUAL(info.score, 60.0, EPS);
	/* an unknown level is ignored */
	kos_trust_set_threat(f.tr, (kos_threat)7);
	CU_ASSERT_EQUAL(kos_trust_get_threat(f.tr), KOS_THREAT_CRITICAL);
	fx_fini(&f);
}

static void same_info(const kos_trust_info *a, const kos_trust_info *b)
{
	CU_ASSERT_STRING_EQUAL(a->client, b->client);
	CU_ASSERT_EQUAL(a->score, b->score);
	CU_ASSERT_EQUAL(a->tier, b->tier);
	for (int i = 0; i < KOS_FACTOR_COUNT; i++)
		CU_ASSERT_EQUAL(a->factor[i], b->factor[i]);
	CU_ASSERT_EQUAL(a->created, b->created);
	CU_ASSERT_EQUAL(a->last_activity, b->last_activity);
	CU_ASSERT_EQUAL(a->observations, b->observations);
	CU_ASSERT_EQUAL(a->integrity_failures, b->integrity_failures);
	CU_ASSERT_EQUAL(a->scope_violations, b->scope_violations);
	CU_ASSERT_EQUAL(a->anomalous, b->anomalous);
	CU_ASSERT_EQUAL(a->ceiling, b->ceiling);
	CU_ASSERT_EQUAL(a->ceiling_since, b->ceiling_since);
}

static void test_invalid_inputs(void)
{
	static const struct {
		kos_event ev;
		double value;
	} bad[] = {
	    {KOS_EVENT_LATENCY, NAN},
	    {KOS_EVENT_LATENCY, INFINITY},
	    {KOS_EVENT_LATENCY, -INFINITY},
	    {KOS_EVENT_LATENCY, -0.001},
	    {KOS_EVENT_REPUTATION, -0.5},
	    {KOS_EVENT_REPUTATION, 100.01},
	    {KOS_EVENT_REPUTATION, NAN},
	    {KOS_EVENT_REPUTATION, INFINITY},
	    {(kos_event)7, 0},
	    {(kos_event)-1, 0},
	};
	static const char *const bad_names[] = {
	    "",	    ".hidden", "-dash",
	    "a b",  "a/b",     "caf\xc3\xa9",
	    "a\nb", "x:y",     "0123456789012345678901234567890123456789012345678901234567890123x",
	};
	struct fx f;
	kos_trust_info before, after;
	kos_observation ok = {.event = KOS_EVENT_SUCCESS};
	size_t i;

	fx_init(&f, "memory:");
	CU_ASSERT_EQUAL_FATAL(observe(&f, "victim", KOS_EVENT_INTEGRITY, 0, &before), KOS_OK);
	f.now += SEC;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CU_ASSERT_EQUAL(observe(&f, "victim", bad[i].ev, bad[i].value, NULL),
				KOS_E_INVALID);
		CU_ASSERT_EQUAL(observe(&f, "newcomer", bad[i].ev, bad[i].value, NULL),
				KOS_E_INVALID);
	}
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "event"));
	f.now = T0;
	CU_ASSERT_EQUAL_FATAL(kos_trust_get(f.tr, "victim", &after), KOS_OK);
	same_info(&before, &after);
	CU_ASSERT_EQUAL(kos_trust_get(f.tr, "newcomer", &after), KOS_E_NOTFOUND);

	for (i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		CU_ASSERT_FALSE(kos_principal_name_valid(bad_names[i]));
		CU_ASSERT_EQUAL(kos_trust_observe(f.tr, bad_names[i], &ok, NULL), KOS_E_INVALID);
		CU_ASSERT_EQUAL(kos_trust_get(f.tr, bad_names[i], &after), KOS_E_INVALID);
		CU_ASSERT_EQUAL(kos_trust_forget(f.tr, bad_names[i]), KOS_E_INVALID);
	}
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "client name"));
	CU_ASSERT_FALSE(kos_principal_name_valid(NULL));
	CU_ASSERT_EQUAL(kos_trust_observe(f.tr, NULL, &ok, NULL), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_trust_observe(f.tr, "victim", NULL, NULL), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_trust_get(f.tr, "victim", NULL), KOS_E_INVALID);
	CU_ASSERT_EQUAL_FATAL(kos_trust_get(f.tr, "victim", &after), KOS_OK);
	same_info(&before, &after);

	/* the edges of what is valid */
	CU_ASSERT_TRUE(kos_principal_name_valid("a"));
	CU_ASSERT_TRUE(kos_principal_name_valid("svc@host.example_1-x"));
	CU_ASSERT_TRUE(kos_principal_name_valid("_x"));
	CU_ASSERT_TRUE(kos_principal_name_valid(
	    "0123456789012345678901234567890123456789012345678901234567890123"));
	CU_ASSERT_EQUAL(observe(&f,
				"0123456789012345678901234567890123456789012345678901234567890123",
				KOS_EVENT_LATENCY, 0, &after),
			KOS_OK);
	CU_ASSERT_EQUAL(strlen(after.client), 64);
	CU_ASSERT_EQUAL(observe(&f, "victim", KOS_EVENT_REPUTATION, 0, NULL), KOS_OK);
	CU_ASSERT_EQUAL(observe(&f, "victim", KOS_EVENT_REPUTATION, 100, NULL), KOS_OK);
	CU_ASSERT_EQUAL(observe(&f, "victim", KOS_EVENT_LATENCY, 0, NULL), KOS_OK);
	fx_fini(&f);
}

/* The same observations on a memory store, and on a SQLite store that is
 * closed and reopened between each: identical results, so every part of
 * the state survives a restart. */
static void test_persistence(void)
{
	static const struct {
		kos_event ev;
		double value;
		uint64_t ops, bytes;
		kos_usec dt;
	} seq[] = {
	    {KOS_EVENT_SUCCESS, 0, 0, 0, 0},	      {KOS_EVENT_LATENCY, 130, 0, 0, SEC},
	    {KOS_EVENT_USAGE, 0, 9000, 1 << 20, SEC}, {KOS_EVENT_USAGE, 0, 6000, 0, 10 * SEC},
	    {KOS_EVENT_SCOPE, 0, 0, 0, 61 * SEC},     {KOS_EVENT_SCOPE, 0, 0, 0, SEC},
	    {KOS_EVENT_SCOPE, 0, 0, 0, SEC},	      {KOS_EVENT_SCOPE, 0, 0, 0, SEC},
	    {KOS_EVENT_INTEGRITY, 0, 0, 0, 61 * SEC}, {KOS_EVENT_REPUTATION, 95, 0, 0, DAY},
	    {KOS_EVENT_FAILURE, 0, 0, 0, 61 * SEC},
	};
	const char *path = kos_test_path("persist.db");
	struct fx mem, db;
	kos_trust_info a, b;
	size_t i;

	fx_init(&mem, "memory:");
	fx_init(&db, path);
	for (i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
		kos_observation obs = {.event = seq[i].ev,
				       .value = seq[i].value,
				       .ops = seq[i].ops,
				       .bytes = seq[i].bytes};

		mem.now += seq[i].dt;
		db.now += seq[i].dt;
		CU_ASSERT_EQUAL_FATAL(kos_trust_observe(mem.tr, "durable", &obs, &a), KOS_OK);
		CU_ASSERT_EQUAL_FATAL(kos_trust_observe(db.tr, "durable", &obs, &b), KOS_OK);
		same_info(&a, &b);
		fx_close_store(&db);
		fx_open_store(&db, path);
		CU_ASSERT_EQUAL_FATAL(kos_trust_get(db.tr, "durable", &b), KOS_OK);
		same_info(&a, &b);
	}
	CU_ASSERT_EQUAL(a.scope_violations, 4);
	CU_ASSERT_EQUAL(a.integrity_failures, 1);
	CU_ASSERT(a.factor[KOS_FACTOR_USAGE] < 60.0);
	/* reading a week later decays the same way */
	mem.now += 7 * DAY;
	db.now += 7 * DAY;
	CU_ASSERT_EQUAL(kos_trust_get(mem.tr, "durable", &a), KOS_OK);
	CU_ASSERT_EQUAL(kos_trust_get(db.tr, "durable", &b), KOS_OK);
	same_info(&a, &b);
	fx_fini(&mem);
	fx_fini(&db);
}

struct collected {
	char names[8][65];
	double score[8];
	int n;
	int stop_at; /* return 7 from this call (1-based); 0: never */
};

static int collect(const kos_trust_info *info, void *arg)
{
	struct collected *c = arg;

	if (c->n < 8) {
		snprintf(c->names[c->n], sizeof(c->names[0]), "%s", info->client);
		c->score[c->n] = info->score;
	}
	c->n++;
	return c->n == c->stop_at ? 7 : 0;
}

struct ordered {
	char last[65];
	int n, out_of_order, stop_at;
};

/* Counts the clients and those not after the one before. */
static int in_order(const kos_trust_info *info, void *arg)
{
	struct ordered *o = arg;

	if (o->n > 0 && strcmp(o->last, info->client) >= 0)
		o->out_of_order++;
	snprintf(o->last, sizeof(o->last), "%s", info->client);
	o->n++;
	return o->n == o->stop_at ? 7 : 0;
}

/* More clients than one page of the store's (1024): each once, in order,
 * and a stop in a later page stops there. */
static void check_list_pages(struct fx *f, int before)
{
	struct ordered o;
	char name[32];
	int i;

	for (i = 0; i < 2100; i++) {
		snprintf(name, sizeof(name), "many-%04d", i);
		CU_ASSERT_EQUAL_FATAL(observe(f, name, KOS_EVENT_SUCCESS, 0, NULL), KOS_OK);
	}
	memset(&o, 0, sizeof(o));
	CU_ASSERT_EQUAL(kos_trust_list(f->tr, in_order, &o), KOS_OK);
	CU_ASSERT_EQUAL(o.n, before + 2100);
	CU_ASSERT_EQUAL(o.out_of_order, 0);
	memset(&o, 0, sizeof(o));
	o.stop_at = 1500;
	CU_ASSERT_EQUAL(kos_trust_list(f->tr, in_order, &o), 7);
	CU_ASSERT_EQUAL(o.n, 1500);
}

static void check_list_and_forget(const char *location)
{
	static const char *const order[] = {"Bob", "alice", "bob", "carol"};
	struct fx f;
	struct collected c;
	kos_trust_info info;
	int i;

	fx_init(&f, location);
	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(kos_trust_list(f.tr, collect, &c), KOS_OK);
	CU_ASSERT_EQUAL(c.n, 0);
	CU_ASSERT_EQUAL(observe(&f, "carol", KOS_EVENT_SUCCESS, 0, NULL), KOS_OK);
	CU_ASSERT_EQUAL(observe(&f, "alice", KOS_EVENT_INTEGRITY, 0, NULL), KOS_OK);
	CU_ASSERT_EQUAL(observe(&f, "bob", KOS_EVENT_SUCCESS, 0, NULL), KOS_OK);
	CU_ASSERT_EQUAL(observe(&f, "Bob", KOS_EVENT_SUCCESS, 0, NULL), KOS_OK);
	f.now += 7 * DAY;
	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(kos_trust_list(f.tr, collect, &c), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(c.n, 4);
	for (i = 0; i < 4; i++)
		CU_ASSERT_STRING_EQUAL(c.names[i], order[i]);
	/* decayed like get: alice's integrity 35 is 47.5 a half-life later */
	CU_ASSERT_DOUBLE_EQUAL(c.score[1], (60.0 * 5 + 47.5 * 4) / 9, EPS);
	memset(&c, 0, sizeof(c));
	c.stop_at = 2;
	CU_ASSERT_EQUAL(kos_trust_list(f.tr, collect, &c), 7);
	CU_ASSERT_EQUAL(c.n, 2);

	CU_ASSERT_EQUAL(kos_trust_forget(f.tr, "bob"), KOS_OK);
	CU_ASSERT_EQUAL(kos_trust_get(f.tr, "bob", &info), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_trust_forget(f.tr, "bob"), KOS_E_NOTFOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "bob"));
	CU_ASSERT_EQUAL(kos_trust_get(f.tr, "Bob", &info), KOS_OK);
	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(kos_trust_list(f.tr, collect, &c), KOS_OK);
	CU_ASSERT_EQUAL(c.n, 3);
	CU_ASSERT_STRING_EQUAL(c.names[2], "carol");
	/* seen again, a forgotten client starts over at the prior */
	CU_ASSERT_EQUAL(observe(&f, "bob", KOS_EVENT_REPUTATION, 60, &info), KOS_OK);
	CU_ASSERT_EQUAL(info.observations, 1);
	CU_ASSERT_EQUAL(info.created, f.now);
	CU_ASSERT_DOUBLE_EQUAL(info.score, 60.0, EPS);
	check_list_pages(&f, 4);
	fx_fini(&f);
}

static void test_list_and_forget(void)
{
	check_list_and_forget("memory:");
	check_list_and_forget(kos_test_path("list.db"));
}

static void test_policy_swap(void)
{
	struct fx f;
	kos_policy *other = NULL;
	kos_trust_info info;

	fx_init(&f, "memory:");
	CU_ASSERT_EQUAL(observe(&f, "p", KOS_EVENT_REPUTATION, 60, &info), KOS_OK);
	CU_ASSERT_EQUAL(info.tier, KOS_TIER_MEDIUM);
	CU_ASSERT_EQUAL_FATAL(kos_policy_new_default(&other), KOS_OK);
	other->tier_medium = 61.0;
	kos_trust_set_policy(f.tr, other);
	CU_ASSERT_EQUAL(kos_trust_get(f.tr, "p", &info), KOS_OK);
	CU_ASSERT_EQUAL(info.tier, KOS_TIER_LOW);
	kos_trust_set_policy(f.tr, NULL); /* ignored */
	CU_ASSERT_EQUAL(kos_trust_tier_of(f.tr, 60.5), KOS_TIER_LOW);
	kos_trust_set_policy(f.tr, f.pol);
	CU_ASSERT_EQUAL(kos_trust_tier_of(f.tr, 60.5), KOS_TIER_MEDIUM);
	kos_policy_free(other);
	fx_fini(&f);
}

static void test_names(void)
{
	kos_event e;
	int i;

	for (i = 0; i <= KOS_EVENT_REPUTATION; i++) {
		CU_ASSERT_EQUAL(kos_event_parse(kos_event_name((kos_event)i), &e), KOS_OK);
		CU_ASSERT_EQUAL(e, (kos_event)i);
	}
	CU_ASSERT_STRING_EQUAL(kos_event_name(KOS_EVENT_INTEGRITY), "integrity");
	CU_ASSERT_STRING_EQUAL(kos_event_name(KOS_EVENT_USAGE), "usage");
	CU_ASSERT_STRING_EQUAL(kos_event_name((kos_event)99), "unknown");
	CU_ASSERT_EQUAL(kos_event_parse("Latency", &e), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_event_parse("", &e), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_event_parse(NULL, &e), KOS_E_INVALID);
	CU_ASSERT_STRING_EQUAL(kos_tier_name(KOS_TIER_DENY), "deny");
	CU_ASSERT_STRING_EQUAL(kos_tier_name(KOS_TIER_LOW), "low");
	CU_ASSERT_STRING_EQUAL(kos_tier_name(KOS_TIER_MEDIUM), "medium");
	CU_ASSERT_STRING_EQUAL(kos_tier_name(KOS_TIER_HIGH), "high");
	CU_ASSERT_STRING_EQUAL(kos_tier_name((kos_tier)4), "unknown");
	CU_ASSERT_STRING_EQUAL(kos_factor_name(KOS_FACTOR_LATENCY), "latency");
	CU_ASSERT_STRING_EQUAL(kos_factor_name(KOS_FACTOR_ANOMALY), "anomaly");
	CU_ASSERT_STRING_EQUAL(kos_factor_name(KOS_FACTOR_REPUTATION), "reputation");
	CU_ASSERT_STRING_EQUAL(kos_factor_name((kos_factor)5), "unknown");
}

static void test_new_refuses_null(void)
{
	kos_policy *pol = NULL;
	kos_store *st = NULL;
	kos_trust *tr = (kos_trust *)&tr;

	CU_ASSERT_EQUAL_FATAL(kos_policy_new_default(&pol), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_store_open("memory:", &st), KOS_OK);
	CU_ASSERT_EQUAL(kos_trust_new(NULL, st, &tr), KOS_E_INVALID);
	CU_ASSERT_PTR_NULL(tr);
	CU_ASSERT_EQUAL(kos_trust_new(pol, NULL, &tr), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_trust_new(pol, st, NULL), KOS_E_INVALID);
	kos_trust_free(NULL);
	kos_store_free(st);
	kos_policy_free(pol);
}

struct sink_box {
	kos_observation_rec recs[8];
	size_t n;
	kos_rv answer;
};

static kos_rv box_sink(void *arg, const char *client, const kos_observation *obs, kos_usec at)
{
	struct sink_box *b = arg;

	if (b->answer != KOS_OK || b->n == 8)
		return b->answer != KOS_OK ? b->answer : KOS_E_BUSY;
	snprintf(b->recs[b->n].client, sizeof(b->recs[0].client), "%s", client);
	b->recs[b->n].obs = *obs;
	b->recs[b->n].at = at;
	b->n++;
	return KOS_OK;
}

/* A sink takes observations made without info; the batch writes them, in
 * order and at their own times, as one-by-one observations would have. */
static void check_sink_and_batch(const char *location)
{
	struct sink_box box = { .answer = KOS_OK };
	kos_trust_info info, direct;
	struct fx f, g;
	kos_observation_rec bad;

	fx_init(&f, location);
	fx_init(&g, "memory:");
	kos_trust_set_sink(f.tr, box_sink, &box);
	CU_ASSERT_EQUAL(observe(&f, "a", KOS_EVENT_INTEGRITY, 0, NULL), KOS_OK);
	f.now += SEC;
	CU_ASSERT_EQUAL(observe(&f, "b", KOS_EVENT_SUCCESS, 0, NULL), KOS_OK);
	f.now += SEC;
	CU_ASSERT_EQUAL(observe(&f, "a", KOS_EVENT_LATENCY, 300.0, NULL), KOS_OK);
	CU_ASSERT_EQUAL(box.n, 3);
	CU_ASSERT_EQUAL(box.recs[0].at, T0);
	CU_ASSERT_EQUAL(box.recs[2].at, T0 + 2 * SEC);
	/* queued, not written */
	CU_ASSERT_EQUAL(kos_trust_get(f.tr, "a", &info), KOS_E_NOTFOUND);
	/* with info the caller wants the result now: written at once */
	CU_ASSERT_EQUAL(observe(&f, "c", KOS_EVENT_SUCCESS, 0, &info), KOS_OK);
	CU_ASSERT_EQUAL(box.n, 3);
	CU_ASSERT_EQUAL(kos_trust_get(f.tr, "c", &info), KOS_OK);
	/* a sink that declines: written directly */
	box.answer = KOS_E_BUSY;
	CU_ASSERT_EQUAL(observe(&f, "d", KOS_EVENT_SUCCESS, 0, NULL), KOS_OK);
	CU_ASSERT_EQUAL(kos_trust_get(f.tr, "d", &info), KOS_OK);
	kos_trust_set_sink(f.tr, NULL, NULL);

	/* a bad record refuses the batch: nothing written */
	bad = box.recs[0];
	snprintf(bad.client, sizeof(bad.client), "-bad");
	CU_ASSERT_EQUAL(kos_trust_observe_batch(f.tr, &bad, 1), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_trust_observe_batch(f.tr, NULL, 0), KOS_OK);

	f.now += DAY;
	CU_ASSERT_EQUAL_FATAL(kos_trust_observe_batch(f.tr, box.recs, box.n), KOS_OK);
	CU_ASSERT_EQUAL(kos_trust_get(f.tr, "a", &info), KOS_OK);
	CU_ASSERT_EQUAL(info.observations, 2);
	CU_ASSERT_EQUAL(info.integrity_failures, 1);
	CU_ASSERT_EQUAL(info.last_activity, T0 + 2 * SEC);

	/* the same observations one by one on another engine */
	CU_ASSERT_EQUAL(observe(&g, "a", KOS_EVENT_INTEGRITY, 0, NULL), KOS_OK);
	g.now += 2 * SEC;
	CU_ASSERT_EQUAL(observe(&g, "a", KOS_EVENT_LATENCY, 300.0, NULL), KOS_OK);
	g.now = f.now;
	CU_ASSERT_EQUAL(kos_trust_get(g.tr, "a", &direct), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(info.score, direct.score, EPS);
	CU_ASSERT_EQUAL(kos_trust_get(f.tr, "b", &info), KOS_OK);
	CU_ASSERT_EQUAL(info.observations, 1);
	fx_fini(&g);
	fx_fini(&f);
}

static void test_sink_and_batch(void)
{
	check_sink_and_batch("memory:");
	check_sink_and_batch(kos_test_path("batch.db"));
}

/* kos_trust_commit(): observations and ledger entries in one transaction.
 * A bad entry refuses the whole commit before anything is written; with
 * the SQLite store refusing ledger rows the observations are not written
 * either, and the entries carry no chain values. */
static void check_commit(const char *location, const char *db)
{
	kos_observation_rec rec;
	kos_ledger_entry e[2];
	kos_trust_info info;
	uint64_t seq = 0;
	struct fx f;

	fx_init(&f, location);
	memset(&rec, 0, sizeof(rec));
	snprintf(rec.client, sizeof(rec.client), "a");
	rec.obs.event = KOS_EVENT_SUCCESS;
	rec.at = T0;
	kos_ledger_entry_init(&e[0], T0, "a", "decrypt", "k", "high", "allowed", "", "j1");
	kos_ledger_entry_init(&e[1], T0, "a", "sign", "k", "high", "allowed", "", "j2");
	CU_ASSERT_EQUAL(kos_trust_commit(NULL, &rec, 1, e, 2), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_trust_commit(f.tr, NULL, 1, e, 2), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_trust_commit(f.tr, &rec, 1, NULL, 2), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_trust_commit(f.tr, NULL, 0, NULL, 0), KOS_OK);
	/* entries alone */
	kos_ledger_entry_init(&e[0], T0, "a", "encrypt", "k", "high", "allowed", "", "j0");
	CU_ASSERT_EQUAL_FATAL(kos_trust_commit(f.tr, NULL, 0, e, 1), KOS_OK);
	CU_ASSERT_EQUAL(kos_trust_get(f.tr, "a", &info), KOS_E_NOTFOUND);
	kos_ledger_entry_init(&e[0], T0, "a", "decrypt", "k", "high", "allowed", "", "j1");
	CU_ASSERT_EQUAL_FATAL(kos_trust_commit(f.tr, &rec, 1, e, 2), KOS_OK);
	CU_ASSERT_EQUAL(kos_trust_get(f.tr, "a", &info), KOS_OK);
	CU_ASSERT_EQUAL(info.observations, 1);
	CU_ASSERT_EQUAL(kos_ledger_head(f.st, &seq, NULL), KOS_OK);
	CU_ASSERT_EQUAL(seq, 3);
	CU_ASSERT_EQUAL(e[1].seq, 3);
	/* an outcome outside its set: refused, nothing written */
	kos_ledger_entry_init(&e[0], T0, "a", "decrypt", "k", "high", "allowed", "", "j3");
	kos_ledger_entry_init(&e[1], T0, "a", "decrypt", "k", "high", "maybe", "", "j4");
	CU_ASSERT_EQUAL(kos_trust_commit(f.tr, &rec, 1, e, 2), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_trust_get(f.tr, "a", &info), KOS_OK);
	CU_ASSERT_EQUAL(info.observations, 1);
	CU_ASSERT_EQUAL(kos_ledger_head(f.st, &seq, NULL), KOS_OK);
	CU_ASSERT_EQUAL(seq, 3);
	if (db != NULL) {
		/* the store refuses ledger rows: the observation goes with them */
		CU_ASSERT_EQUAL_FATAL(kos_test_sql_exec(db, "CREATE TRIGGER refuse BEFORE INSERT "
							    "ON ledger BEGIN SELECT RAISE(ABORT, "
							    "'disk full'); END"),
				      SQLITE_OK);
		kos_ledger_entry_init(&e[1], T0, "a", "sign", "k", "high", "allowed", "", "j4");
		CU_ASSERT_EQUAL(kos_trust_commit(f.tr, &rec, 1, e, 2), KOS_E_STORE);
		CU_ASSERT_EQUAL(e[0].seq, 0);
		CU_ASSERT_EQUAL(e[1].seq, 0);
		CU_ASSERT_EQUAL(kos_trust_get(f.tr, "a", &info), KOS_OK);
		CU_ASSERT_EQUAL(info.observations, 1);
		CU_ASSERT_EQUAL_FATAL(kos_test_sql_exec(db, "DROP TRIGGER refuse"), SQLITE_OK);
		CU_ASSERT_EQUAL(kos_trust_commit(f.tr, &rec, 1, e, 2), KOS_OK);
		CU_ASSERT_EQUAL(kos_trust_get(f.tr, "a", &info), KOS_OK);
		CU_ASSERT_EQUAL(info.observations, 2);
		CU_ASSERT_EQUAL(kos_ledger_head(f.st, &seq, NULL), KOS_OK);
		CU_ASSERT_EQUAL(seq, 5);
	}
	fx_fini(&f);
}

static void test_commit_with_ledger(void)
{
	check_commit("memory:", NULL);
	check_commit(kos_test_path("commit.db"), kos_test_path("commit.db"));
}

/* --- the ceiling: trust recovers with time, not with traffic --- */

/* The closed bound of kos/trust.c: a client left at s0 by a penalty is at
 * most this dt later. */
static double bound(const struct kos_policy *p, double s0, kos_usec dt)
{
	return 100.0 - (100.0 - s0) * exp2(-(double)dt / (double)p->recovery_half_life);
}

/* One request as kos_access observes it: a fast answer, then its outcome. */
static void request(struct fx *f, const char *client, kos_event outcome, kos_trust_info *info)
{
	CU_ASSERT_EQUAL(observe(f, client, KOS_EVENT_LATENCY, 1.0, NULL), KOS_OK);
	CU_ASSERT_EQUAL(observe(f, client, outcome, 0, info), KOS_OK);
}

/* Three integrity failures at f->now: a client of the default policy at
 * (60 + 0 + 60 + 2 * 60 + 60) / 9 = 33.3, low. */
static void three_failures(struct fx *f, const char *client, kos_trust_info *info)
{
	for (int i = 0; i < 3; i++)
		CU_ASSERT_EQUAL_FATAL(observe(f, client, KOS_EVENT_INTEGRITY, 0, info), KOS_OK);
}

static void test_ceiling_formula(void)
{
	struct fx f;
	kos_trust_info info;
	const double c0 = 300.0 / 9;
	kos_usec h;
	int k;

	fx_init(&f, "memory:");
	h = f.pol->recovery_half_life;
	CU_ASSERT_EQUAL(h, 6 * 3600 * SEC);
	/* never penalised: no ceiling */
	CU_ASSERT_EQUAL_FATAL(observe(&f, "c", KOS_EVENT_SUCCESS, 0, &info), KOS_OK);
	CU_ASSERT_EQUAL(info.ceiling, 100.0);
	CU_ASSERT_EQUAL(info.ceiling_since, 0);
	CU_ASSERT_EQUAL(kos_trust_forget(f.tr, "c"), KOS_OK);

	three_failures(&f, "c", &info);
	CU_ASSERT_DOUBLE_EQUAL(info.score, c0, EPS);
	CU_ASSERT_DOUBLE_EQUAL(info.ceiling, c0, EPS);
	CU_ASSERT_EQUAL(info.ceiling_since, T0);
	CU_ASSERT_EQUAL(info.tier, KOS_TIER_LOW);
	/* every half-life halves the ceiling's distance to 100, read without
	 * writing; the factors decay toward the prior on their own, slower */
	for (k = 0; k <= 8; k++) {
		f.now = T0 + k * h / 2;
		CU_ASSERT_EQUAL_FATAL(kos_trust_get(f.tr, "c", &info), KOS_OK);
		CU_ASSERT_DOUBLE_EQUAL(info.ceiling, 100.0 - (100.0 - c0) * exp2(-k / 2.0), EPS);
		CU_ASSERT_DOUBLE_EQUAL(info.ceiling, bound(f.pol, c0, f.now - T0), EPS);
		CU_ASSERT_DOUBLE_EQUAL(info.score, fmin(wmean(f.pol, info.factor), info.ceiling),
				       EPS);
		CU_ASSERT_EQUAL(info.ceiling_since, T0);
	}
	CU_ASSERT_DOUBLE_EQUAL(info.ceiling, 100.0 - (100.0 - c0) / 16, EPS);
	/* a later penalty lowers it again, from its own score */
	f.now = T0 + h;
	CU_ASSERT_EQUAL_FATAL(observe(&f, "c", KOS_EVENT_FAILURE, 0, &info), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(info.ceiling, wmean(f.pol, info.factor), EPS);
	CU_ASSERT_DOUBLE_EQUAL(info.score, info.ceiling, EPS);
	CU_ASSERT_EQUAL(info.ceiling_since, T0 + h);
	/* a penalty of 0 points is none */
	f.pol->integrity.failure_penalty = 0;
	CU_ASSERT_EQUAL_FATAL(observe(&f, "fine", KOS_EVENT_FAILURE, 0, &info), KOS_OK);
	CU_ASSERT_EQUAL(info.ceiling, 100.0);
	fx_fini(&f);
}

/* The reproduction of the finding: after three integrity failures, 1000
 * cheap successful requests in two seconds. The score stays on the
 * ceiling's curve, below medium and high; integrity is not repaid. */
static void check_burst(const char *policy_file)
{
	struct fx f;
	kos_trust_info info;
	kos_policy *loaded = NULL;
	double s0;
	int i;

	fx_init(&f, "memory:");
	if (policy_file != NULL) {
		CU_ASSERT_EQUAL_FATAL(kos_policy_load(kos_test_srcpath(policy_file), &loaded, NULL),
				      KOS_OK);
		kos_trust_set_policy(f.tr, loaded);
	}
	three_failures(&f, "mallory", &info);
	s0 = info.score;
	CU_ASSERT_DOUBLE_EQUAL(info.ceiling, s0, EPS);
	CU_ASSERT(info.tier <= KOS_TIER_LOW);
	for (i = 1; i <= 1000; i++) {
		f.now = T0 + i * 2000;
		request(&f, "mallory", KOS_EVENT_SUCCESS, &info);
		CU_ASSERT(info.score <= bound(kos_trust_get0_policy(f.tr), s0, f.now - T0) + EPS);
	}
	CU_ASSERT_EQUAL(f.now, T0 + 2 * SEC);
	/* on the ceiling (which the burst's anomaly penalty may have lowered) */
	CU_ASSERT_DOUBLE_EQUAL(info.score, info.ceiling, EPS);
	CU_ASSERT(info.score < kos_trust_get0_policy(f.tr)->tier_medium);
	CU_ASSERT(info.score < kos_trust_get0_policy(f.tr)->tier_high);
	CU_ASSERT(info.tier <= KOS_TIER_LOW);
	/* 1000 successes repaid nothing: at most what two seconds of the
	 * ceiling's rise made room for (recovery would have given 100) */
	CU_ASSERT(info.factor[KOS_FACTOR_INTEGRITY] < 0.01);
	CU_ASSERT_EQUAL(info.observations, 3 + 2000);
	fx_fini(&f);
	kos_policy_free(loaded);
}

static void test_burst_after_integrity_failures(void)
{
	struct fx f;
	kos_trust_info info;

	check_burst(NULL);
	check_burst("policy/default.policy");
	check_burst("policy/strict.policy");

	/* the default policy's numbers: 33.3 after the failures, 33.338 two
	 * seconds later; the burst also cost one anomaly penalty (its
	 * 121st observation) */
	fx_init(&f, "memory:");
	three_failures(&f, "m", &info);
	for (int i = 1; i <= 1000; i++) {
		f.now = T0 + i * 2000;
		request(&f, "m", KOS_EVENT_SUCCESS, &info);
	}
	CU_ASSERT_DOUBLE_EQUAL(info.score, 100.0 - 200.0 / 3 * exp2(-2.0 / 21600), EPS);
	CU_ASSERT_DOUBLE_EQUAL(info.score, 33.3376, 1e-4);
	/* 60 - 15, decayed for two seconds toward the prior */
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_ANOMALY], 45.0, 1e-4);
	CU_ASSERT(info.factor[KOS_FACTOR_INTEGRITY] < 0.001);
	CU_ASSERT_EQUAL(info.tier, KOS_TIER_LOW);
	/* a minute later, still low: the weighted score (latency 100, the
	 * rest as left) is above the ceiling, which alone rose */
	f.now += 60 * SEC;
	request(&f, "m", KOS_EVENT_SUCCESS, &info);
	CU_ASSERT_DOUBLE_EQUAL(info.score, 100.0 - 200.0 / 3 * exp2(-62.0 / 21600), EPS);
	CU_ASSERT_EQUAL(info.tier, KOS_TIER_LOW);
	fx_fini(&f);
}

/* A client that behaves (a request a minute) after three failures climbs
 * exactly on the ceiling's curve: medium and high no sooner than the
 * bound's times, and at n half-lives 100 - (100 - s0) / 2^n. */
static void test_recovery_after_half_lives(void)
{
	struct fx f;
	kos_trust_info info;
	const double c0 = 300.0 / 9;
	kos_usec h, t_medium, t_high;
	int m;

	fx_init(&f, "memory:");
	h = f.pol->recovery_half_life;
	three_failures(&f, "steady", &info);
	t_medium = T0 + (kos_usec)((double)h * log2((100.0 - c0) / (100.0 - f.pol->tier_medium)));
	t_high = T0 + (kos_usec)((double)h * log2((100.0 - c0) / (100.0 - f.pol->tier_high)));
	/* 2.49 and 10.42 hours */
	CU_ASSERT(t_medium > T0 + 149 * 60 * SEC && t_medium < T0 + 150 * 60 * SEC);
	CU_ASSERT(t_high > T0 + 625 * 60 * SEC && t_high < T0 + 626 * 60 * SEC);
	for (m = 1; m <= 12 * 60; m++) {
		f.now = T0 + m * 60 * SEC;
		request(&f, "steady", KOS_EVENT_SUCCESS, &info);
		/* on the curve: the successes fill what time has opened */
		CU_ASSERT_DOUBLE_EQUAL(info.score, bound(f.pol, c0, f.now - T0), 1e-9);
		CU_ASSERT_EQUAL(info.tier, f.now < t_medium ? KOS_TIER_LOW
					   : f.now < t_high ? KOS_TIER_MEDIUM
							    : KOS_TIER_HIGH);
		if (m == 360) {
			CU_ASSERT_DOUBLE_EQUAL(info.score, 100.0 - (100.0 - c0) / 2, 1e-9);
		}
	}
	CU_ASSERT_DOUBLE_EQUAL(info.score, 100.0 - (100.0 - c0) / 4, 1e-9);
	CU_ASSERT_EQUAL(info.tier, KOS_TIER_HIGH);
	CU_ASSERT_EQUAL(info.ceiling_since, T0);
	fx_fini(&f);
}

/* Before it has anomaly.min_samples buckets of history, a client is judged
 * by anomaly.initial_rate; after, by its own baseline. */
static void test_young_client_burst_flagged(void)
{
	struct fx f;
	kos_trust_info info;
	int i, b;

	fx_init(&f, "memory:");
	f.pol->half_life = NO_DECAY;
	CU_ASSERT_EQUAL(f.pol->anomaly.initial_rate, 120);
	/* 60 requests (120 observations) in a minute are allowed... */
	for (i = 0; i < 60; i++) {
		f.now = T0 + i * 100000;
		request(&f, "young", KOS_EVENT_SUCCESS, &info);
	}
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_ANOMALY], 60.0, EPS);
	CU_ASSERT_EQUAL(info.ceiling, 100.0);
	/* ...the 121st observation costs the penalty, once in the bucket */
	CU_ASSERT_EQUAL(observe(&f, "young", KOS_EVENT_LATENCY, 1.0, &info), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_ANOMALY], 45.0, EPS);
	/* the score right after the penalty (the latency sample that came
	 * with it moves a factor already within 1e-4 of 100 after it) */
	CU_ASSERT_DOUBLE_EQUAL(info.ceiling, wmean(f.pol, info.factor), 1e-5);
	/* sixty successes had taken integrity and latency to 100: 82.2, high;
	 * the burst takes it back to medium, and there it stays */
	CU_ASSERT_DOUBLE_EQUAL(info.ceiling, (100 + 4 * 100 + 60 + 2 * 45 + 60) / 9.0, 1e-4);
	CU_ASSERT_EQUAL(info.tier, KOS_TIER_MEDIUM);
	CU_ASSERT_EQUAL(info.ceiling_since, T0 + 59 * 100000);
	for (i = 0; i < 100; i++)
		request(&f, "young", KOS_EVENT_SUCCESS, &info);
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_ANOMALY], 45.0, EPS);
	CU_ASSERT_EQUAL(info.tier, KOS_TIER_MEDIUM);
	fx_fini(&f);

	/* the switch to the client's own history: initial_rate 10, ten buckets
	 * of 8 observations (mean 8, stddev 0: limit 11) */
	fx_init(&f, "memory:");
	f.pol->half_life = NO_DECAY;
	f.pol->anomaly.initial_rate = 10;
	f.pol->anomaly.recovery = 0;
	for (b = 0; b < 10; b++)
		for (i = 0; i < 4; i++) {
			f.now = T0 + b * 60 * SEC + i * SEC;
			request(&f, "grown", KOS_EVENT_SUCCESS, &info);
		}
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_ANOMALY], 60.0, EPS);
	for (i = 0; i < 11; i++) {
		f.now = T0 + 10 * 60 * SEC + i * SEC;
		CU_ASSERT_EQUAL(observe(&f, "grown", KOS_EVENT_SUCCESS, 0, &info), KOS_OK);
	}
	/* 11 > initial_rate, within the baseline's limit */
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_ANOMALY], 60.0, EPS);
	CU_ASSERT_EQUAL(observe(&f, "grown", KOS_EVENT_SUCCESS, 0, &info), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_ANOMALY], 45.0, EPS);
	/* and the same 11 in a young client's first bucket are flagged */
	for (i = 0; i < 11; i++)
		CU_ASSERT_EQUAL(observe(&f, "new", KOS_EVENT_SUCCESS, 0, &info), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(info.factor[KOS_FACTOR_ANOMALY], 45.0, EPS);
	fx_fini(&f);
}

/* The ceiling is part of the stored state: a restart (or another process)
 * does not lift it. */
static void test_ceiling_persists(void)
{
	const char *path = kos_test_path("ceiling.db");
	struct fx f;
	kos_trust_info info, again;
	int i;

	fx_init(&f, path);
	three_failures(&f, "p", &info);
	fx_close_store(&f);
	fx_open_store(&f, path);
	f.now = T0 + 3600 * SEC;
	CU_ASSERT_EQUAL_FATAL(kos_trust_get(f.tr, "p", &again), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(again.ceiling, bound(f.pol, 300.0 / 9, 3600 * SEC), EPS);
	CU_ASSERT_EQUAL(again.ceiling_since, T0);
	for (i = 0; i < 50; i++) {
		request(&f, "p", KOS_EVENT_SUCCESS, &info);
		f.now += 1000;
	}
	fx_close_store(&f);
	fx_open_store(&f, path);
	CU_ASSERT_EQUAL_FATAL(kos_trust_get(f.tr, "p", &again), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(again.score, bound(f.pol, 300.0 / 9, f.now - T0), 1e-6);
	CU_ASSERT_EQUAL(again.tier, KOS_TIER_LOW);
	CU_ASSERT_EQUAL(again.ceiling_since, T0);
	fx_fini(&f);
}

/* A client penalised before the ceiling existed (a schema 5 store): its
 * score at its last activity is its ceiling, so it is bounded too. */
static void test_ceiling_after_migration(void)
{
	const char *path = kos_test_path("v5-trust.db");
	struct fx f;
	kos_trust_info info;
	struct kos_trust_state st;
	const double s0 = (80 + 0 + 60 + 2 * 60 + 60) / 9.0;
	char sql[1024];
	int i;

	/* a current store taken back to version 5, holding the client as a
	 * v5 kos left it: integrity 0 after three failures, at T0 */
	fx_init(&f, path);
	fx_close_store(&f);
	snprintf(sql, sizeof(sql),
		 "DROP TABLE key_certs;"
		 "ALTER TABLE trust DROP COLUMN ceiling; ALTER TABLE trust DROP COLUMN ceiling_at;"
		 "INSERT INTO trust (client, created, last_activity, f_latency, f_integrity, f_usage,"
		 " f_anomaly, f_reputation, observations, integrity_failures, rate_start, rate_count)"
		 " VALUES ('old', %lld, %lld, 80, 0, 60, 60, 60, 6, 3, %lld, 6);"
		 "PRAGMA user_version = 5;",
		 (long long)T0, (long long)T0, (long long)T0);
	CU_ASSERT_EQUAL_FATAL(kos_test_sql_exec(path, sql), SQLITE_OK);
	f.now = T0 + 10 * SEC;
	fx_open_store(&f, path);
	CU_ASSERT_EQUAL_FATAL(kos_store_trust_get(f.st, "old", &st), KOS_OK);
	CU_ASSERT(st.ceiling < 0);
	/* read: the ceiling is the score at the last activity, rising since */
	CU_ASSERT_EQUAL_FATAL(kos_trust_get(f.tr, "old", &info), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(info.ceiling, bound(f.pol, s0, 10 * SEC), EPS);
	CU_ASSERT_EQUAL(info.ceiling_since, T0);
	CU_ASSERT_EQUAL(info.tier, KOS_TIER_LOW);
	/* the first observation puts that ceiling on record */
	request(&f, "old", KOS_EVENT_SUCCESS, &info);
	CU_ASSERT_EQUAL_FATAL(kos_store_trust_get(f.st, "old", &st), KOS_OK);
	CU_ASSERT_DOUBLE_EQUAL(st.ceiling, s0, EPS);
	CU_ASSERT_EQUAL(st.ceiling_at, T0);
	/* and the burst of the finding leaves it low */
	for (i = 0; i < 100; i++) {
		f.now += 20000;
		request(&f, "old", KOS_EVENT_SUCCESS, &info);
		CU_ASSERT(info.score <= bound(f.pol, s0, f.now - T0) + EPS);
	}
	CU_ASSERT_EQUAL(info.tier, KOS_TIER_LOW);
	/* what two seconds of the ceiling's rise made room for, not 100 */
	CU_ASSERT(info.factor[KOS_FACTOR_INTEGRITY] < 0.02);
	fx_fini(&f);
}

int main(void)
{
	static const struct kos_test_case cases[] = {
	    KOS_TEST(test_new_client_at_prior), KOS_TEST(test_integrity_tiers),
	    KOS_TEST(test_decay_half_life),	KOS_TEST(test_get_does_not_write),
	    KOS_TEST(test_clock_backwards),	KOS_TEST(test_latency),
	    KOS_TEST(test_usage_quota),		KOS_TEST(test_scope_violations),
	    KOS_TEST(test_rate_anomaly),	KOS_TEST(test_reputation_ewma),
	    KOS_TEST(test_threat_levels),	KOS_TEST(test_invalid_inputs),
	    KOS_TEST(test_persistence),		KOS_TEST(test_list_and_forget),
	    KOS_TEST(test_policy_swap),		KOS_TEST(test_names),
	    KOS_TEST(test_new_refuses_null),	KOS_TEST(test_sink_and_batch), KOS_TEST(test_commit_with_ledger),
	    KOS_TEST(test_ceiling_formula),	KOS_TEST(test_burst_after_integrity_failures),
	    KOS_TEST(test_recovery_after_half_lives), KOS_TEST(test_young_client_burst_flagged),
	    KOS_TEST(test_ceiling_persists),	KOS_TEST(test_ceiling_after_migration),
	};

	return kos_test_run("trust", NULL, NULL, cases, sizeof(cases) / sizeof(cases[0]));
}
