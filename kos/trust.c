/* The trust engine: a score per client from weighted factors, decay toward a
 * prior, tiers, and the observations that move the factors.
 *
 * THE MODEL (reference for kos-policy(5); names are policy parameters)
 *
 * Factors. Every client has five factor sub-scores in [0, 100]: latency,
 * integrity, usage, anomaly and reputation. A client seen for the first time
 * starts with every factor at `prior`. After every change a factor is
 * clamped to [0, 100].
 *
 * Score. The weighted mean of the factors, under the ceiling (below):
 *     weighted = sum(weight[i] * f[i]) / sum(weight[i])
 *     score    = min(weighted, ceiling(now))
 *
 * Decay. With t = now - last_activity (0 when the clock went back), every
 * factor moves toward the prior:
 *     f(now) = prior + (f - prior) * 2^(-t / half_life)
 * so after one half-life the distance to the prior is halved (and so is the
 * score's, the score being linear in the factors). Reads (kos_trust_get,
 * kos_trust_list) compute this without writing anything: an idle client
 * costs nothing. An observation first stores the decayed factors and sets
 * last_activity to now (never backwards), then applies the event.
 *
 * Ceiling: trust recovers with time, not with traffic (DESIGN.md 4). A
 * client's own requests are cheap to make, so nothing they do may lift it
 * across a tier boundary faster than the policy allows. Every penalty (an
 * integrity failure, a plain failure, a scope violation past the allowance,
 * an unusual request rate; one that takes 0 points is none) sets
 *     c0 = min(score right after the penalty, ceiling(now)),  t0 = now
 * and from there the ceiling rises toward 100 with time alone, H being
 * recovery_half_life:
 *     ceiling(t) = 100 - (100 - c0) * 2^(-(t - t0) / H)     (c0 while t <= t0)
 * A client never penalised has c0 = 100. A penalty never raises the
 * ceiling; re-anchoring it at its current value leaves the curve unchanged
 * (the exponential has no memory). The bound, whatever the client sends and
 * whatever feeds report: a client left at s0 by a penalty at t0 has
 *     score(t) <= 100 - (100 - s0) * 2^(-(t - t0) / H)
 * and so stays below a threshold T > s0 until
 *     t0 + H * log2((100 - s0) / (100 - T));
 * with the defaults (H = 6h), 10.2 hours from 35 to high (80) and 2.3 hours
 * to medium (50). Falling is immediate: a penalty lowers the factors at
 * once and the ceiling with them.
 * The ceiling also keeps successes from repaying failures by their number:
 * a success raises integrity only as far as the weighted score reaches the
 * ceiling (below). Right after a penalty the two are equal, so a burst of
 * successes earns nothing; as the ceiling rises, steady successes can follow
 * it, never bank trust above it for later. (Latency and usage may take the
 * weighted score above the ceiling by at most their weights' share of the
 * distance to 100, and anomaly recovery only with time; the score stays
 * under the ceiling regardless.)
 * Why a ceiling rather than a smaller or rationed recovery per success: any
 * rule that counts successes lets a patient client bank trust at whatever
 * rate the rule allows, and its bound depends on the traffic; a ceiling
 * that depends on time alone gives one closed bound for every traffic
 * pattern, and the policy states it in one number (the half-life). It caps
 * only after a penalty: a client never penalised still rises from the prior
 * with its successes, as the policy's prior and recovery allow.
 * A state stored before the ceiling existed (schema 5) has none on record;
 * it is taken as the weighted score at the client's last activity, so a
 * client penalised before an upgrade is bounded like any other.
 *
 * Observations (one event each):
 *   latency MS  sample = 100 when MS <= latency.target, 0 when MS >=
 *               latency.limit, linear in between:
 *                   sample = 100 * (limit - MS) / (limit - target);
 *               latency = (1 - s) * latency + s * sample, s = latency.smoothing
 *   success     integrity += min(integrity.recovery, room), where room is
 *               what takes the weighted score to ceiling(now):
 *                   room = max(0, ceiling - weighted) * sum(weight) /
 *                          weight[integrity]
 *               (no limit when the integrity weight is 0: then a success
 *               does not move the score)
 *   failure     integrity -= integrity.failure_penalty; a penalty
 *   integrity   integrity -= integrity.penalty; integrity_failures += 1;
 *               a penalty
 *   usage OPS BYTES
 *               OPS and BYTES are added to the usage window's totals; a window
 *               opens at the first use after the last one ended and lasts
 *               usage.window. For each quota q (usage.ops, usage.bytes; 0 = no
 *               quota) with total u: 100 when u <= q, 0 when u >= 2q,
 *               100 * (2q - u) / q in between; usage = the lowest of these
 *               (100 when no quota is set).
 *   scope       scope_violations += 1 and counted in the scope window (opens at
 *               the first violation after the last window ended, lasts
 *               anomaly.scope_window). Each violation beyond the first
 *               anomaly.scope_violations in a window: anomaly -=
 *               anomaly.scope_penalty, a penalty.
 *   reputation V (0..100)
 *               reputation = (1 - s) * reputation + s * V,
 *               s = reputation.smoothing
 *
 * Request rate. Every observation except reputation is one request, counted
 * in the current bucket; a bucket opens at the first request after the last
 * one ended and lasts anomaly.window. When a request finds its bucket over,
 * that bucket's count joins the baseline (running mean and population
 * standard deviation of the counts of past non-empty buckets; idle periods
 * are not counted, so the baseline is the rate while active) and, unless the
 * bucket was flagged, anomaly += anomaly.recovery. The first request that
 * takes the current bucket's count above its limit costs anomaly -=
 * anomaly.penalty (a penalty) and flags the bucket: once per bucket. The
 * limit is
 *     mean + anomaly.z_limit * max(stddev, 1)
 * once the baseline holds anomaly.min_samples buckets (at least 1), and
 * anomaly.initial_rate before: a young client has no history to be judged
 * by, so it is judged by a strict default rather than not at all (a burst
 * from a new credential is the cheapest attack there is). A request through
 * kosd is two observations (latency and outcome), so it counts twice.
 * A client is anomalous while its (decayed) anomaly factor is below
 * anomaly.flag_below.
 *
 * Tiers. With off = the offset of the current threat level and each
 * threshold capped at 100:
 *     score >= min(tier_high + off, 100)          high
 *     score >= min(tier_medium + off, 100)        medium
 *     score >= min(request_threshold + off, 100)  low
 *     otherwise                                   deny
 *
 * Atomicity: an observation is one read-modify-write of one client's state
 * inside one store transaction, so concurrent writers (threads or processes)
 * lose nothing. */
#include "config.h"

#include "kos/ledger_chain.h"
#include "kos/store_backend.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct kos_trust {
	_Atomic(const struct kos_policy *) pol; /* swapped on reload */
	_Atomic int threat;
	kos_store *st;
	kos_clock_fn clock; /* NULL: kos_now */
	void *clock_arg;
	kos_trust_sink_fn sink; /* NULL: observations are written at once */
	void *sink_arg;
};

static const char *const tier_names[] = {"deny", "low", "medium", "high"};
static const char *const factor_names[KOS_FACTOR_COUNT] = {"latency", "integrity", "usage",
							   "anomaly", "reputation"};
static const char *const event_names[] = {"latency", "success", "failure",   "integrity",
					  "usage",   "scope",	"reputation"};

kos_rv kos_trust_new(const kos_policy *pol, kos_store *st, kos_trust **out)
{
	kos_trust *tr;

	if (out == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_trust_new: no output handle");
	*out = NULL;
	if (pol == NULL || st == NULL)
		return kos_error_set(KOS_E_INVALID,
				     "kos_trust_new: a policy and a store are needed");
	tr = calloc(1, sizeof(*tr));
	if (tr == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	atomic_init(&tr->pol, pol);
	atomic_init(&tr->threat, KOS_THREAT_NORMAL);
	tr->st = st;
	*out = tr;
	return KOS_OK;
}

void kos_trust_free(kos_trust *tr)
{
	free(tr);
}

void kos_trust_set_clock(kos_trust *tr, kos_clock_fn fn, void *arg)
{
	tr->clock = fn;
	tr->clock_arg = arg;
}

void kos_trust_set_policy(kos_trust *tr, const kos_policy *pol)
{
	if (pol != NULL)
		atomic_store_explicit(&tr->pol, pol, memory_order_release);
}

void kos_trust_set_threat(kos_trust *tr, kos_threat level)
{
	if ((unsigned)level < KOS_THREAT_COUNT)
		atomic_store_explicit(&tr->threat, (int)level, memory_order_relaxed);
}

kos_threat kos_trust_get_threat(const kos_trust *tr)
{
	/* an atomic load does not modify; C11's signature just lacks const */
	return (kos_threat)atomic_load_explicit((_Atomic int *)&tr->threat, memory_order_relaxed);
}

static const struct kos_policy *policy_of(kos_trust *tr)
{
	return atomic_load_explicit(&tr->pol, memory_order_acquire);
}

static kos_usec now_of(const kos_trust *tr)
{
	return tr->clock != NULL ? tr->clock(tr->clock_arg) : kos_now();
}

static double clamp100(double v)
{
	if (v < 0.0)
		return 0.0;
	if (v > 100.0)
		return 100.0;
	return v;
}

/* 2^(-t/half_life): how much of a factor's distance to the prior is left
 * after t; 1 when the clock did not move forward. */
static double decay_weight(const struct kos_policy *pol, kos_usec last, kos_usec now)
{
	if (now <= last || pol->half_life <= 0)
		return 1.0;
	return exp2(-(double)(now - last) / (double)pol->half_life);
}

static double score_of(const struct kos_policy *pol, const double f[KOS_FACTOR_COUNT])
{
	double sum = 0.0, wsum = 0.0;
	size_t i;

	for (i = 0; i < KOS_FACTOR_COUNT; i++) {
		sum += pol->weight[i] * f[i];
		wsum += pol->weight[i];
	}
	/* a validated policy has a positive weight; stay defined anyway */
	return wsum > 0.0 ? clamp100(sum / wsum) : pol->prior;
}

static double threshold(double base, double offset)
{
	double t = base + offset;

	return t > 100.0 ? 100.0 : t;
}

static kos_tier tier_for(const struct kos_policy *pol, kos_threat level, double score)
{
	double off = (unsigned)level < KOS_THREAT_COUNT ? pol->threat[level].offset : 0.0;

	if (score >= threshold(pol->tier_high, off))
		return KOS_TIER_HIGH;
	if (score >= threshold(pol->tier_medium, off))
		return KOS_TIER_MEDIUM;
	if (score >= threshold(pol->request_threshold, off))
		return KOS_TIER_LOW;
	return KOS_TIER_DENY;
}

kos_tier kos_trust_tier_of(const kos_trust *tr, double score)
{
	return tier_for(policy_of((kos_trust *)tr), kos_trust_get_threat(tr), score);
}

/* A ceiling on record: a number in [0, 100] (a negative one, or NaN from a
 * damaged row, is none). */
static bool ceiling_known(const struct kos_trust_state *s)
{
	return s->ceiling >= 0.0;
}

/* The ceiling at now (see THE MODEL); 100 for a client never penalised.
 * With none on record, the weighted score of the stored factors (they are
 * as of last_activity) from last_activity. */
static double ceiling_of(const struct kos_policy *pol, const struct kos_trust_state *s,
			 kos_usec now)
{
	double c0 = ceiling_known(s) ? s->ceiling : score_of(pol, s->factor);
	kos_usec t0 = ceiling_known(s) ? s->ceiling_at : s->last_activity;

	if (c0 >= 100.0)
		return 100.0;
	if (now <= t0 || pol->recovery_half_life <= 0)
		return c0;
	return clamp100(100.0 -
			(100.0 - c0) * exp2(-(double)(now - t0) / (double)pol->recovery_half_life));
}

/* Applies a penalty's consequence for the ceiling, once the penalty is in
 * the factors: down to the score the client is left with, never up, and
 * never anchored earlier than it was (a clock that went back would make it
 * recover sooner). */
static void lower_ceiling(struct kos_trust_state *s, const struct kos_policy *pol, kos_usec now)
{
	double c = ceiling_of(pol, s, now), score = score_of(pol, s->factor);

	s->ceiling = score < c ? score : c;
	if (now > s->ceiling_at)
		s->ceiling_at = now;
}

/* The trust of a stored state at now, decay applied; writes nothing. */
static void fill_info(const struct kos_policy *pol, kos_threat level,
		      const struct kos_trust_state *s, kos_usec now, kos_trust_info *info)
{
	double w = decay_weight(pol, s->last_activity, now), weighted;
	size_t i;

	memcpy(info->client, s->client, sizeof(info->client));
	info->client[sizeof(info->client) - 1] = '\0';
	for (i = 0; i < KOS_FACTOR_COUNT; i++)
		info->factor[i] = clamp100(pol->prior + (s->factor[i] - pol->prior) * w);
	info->ceiling = ceiling_of(pol, s, now);
	if (ceiling_known(s))
		info->ceiling_since = s->ceiling < 100.0 ? s->ceiling_at : 0;
	else
		info->ceiling_since = score_of(pol, s->factor) < 100.0 ? s->last_activity : 0;
	weighted = score_of(pol, info->factor);
	info->score = weighted < info->ceiling ? weighted : info->ceiling;
	info->tier = tier_for(pol, level, info->score);
	info->created = s->created;
	info->last_activity = s->last_activity;
	info->observations = s->observations;
	info->integrity_failures = s->integrity_failures;
	info->scope_violations = s->scope_violations;
	info->anomalous = info->factor[KOS_FACTOR_ANOMALY] < pol->anomaly.flag_below;
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* A window that opened at start and lasts len is over at now. A clock that
 * went back keeps the window open. */
static bool window_over(kos_usec start, kos_usec now, kos_usec len)
{
	return len <= 0 || (now > start && now - start >= len);
}

static void adjust(double *f, double delta)
{
	*f = clamp100(*f + delta);
}

static void count_request(struct kos_trust_state *s, const struct kos_policy *pol, kos_usec now)
{
	double *anomaly = &s->factor[KOS_FACTOR_ANOMALY];
	unsigned min_samples = pol->anomaly.min_samples > 0 ? pol->anomaly.min_samples : 1;

	if (s->rate_count > 0 && window_over(s->rate_start, now, pol->anomaly.window)) {
		/* Welford's update: numerically stable over any number of buckets */
		double x = (double)s->rate_count, d;

		s->base_n++;
		d = x - s->base_mean;
		s->base_mean += d / (double)s->base_n;
		s->base_m2 += d * (x - s->base_mean);
		if (!s->rate_flagged)
			adjust(anomaly, pol->anomaly.recovery);
		s->rate_count = 0;
		s->rate_flagged = false;
	}
	if (s->rate_count == 0)
		s->rate_start = now;
	s->rate_count = add_sat(s->rate_count, 1);
	if (!s->rate_flagged) {
		double limit = (double)pol->anomaly.initial_rate;

		if (s->base_n >= min_samples) {
			double sd = sqrt(s->base_m2 / (double)s->base_n);

			limit = s->base_mean + pol->anomaly.z_limit * (sd > 1.0 ? sd : 1.0);
		}
		if ((double)s->rate_count > limit) {
			adjust(anomaly, -pol->anomaly.penalty);
			s->rate_flagged = true;
			if (pol->anomaly.penalty > 0.0)
				lower_ceiling(s, pol, now);
		}
	}
}

/* A success's integrity.recovery, limited to what takes the weighted score
 * up to the ceiling: a success fills the room time has made, and a burst
 * of them banks nothing beyond it. */
static void recover_integrity(struct kos_trust_state *s, const struct kos_policy *pol,
			      kos_usec now)
{
	double w = pol->weight[KOS_FACTOR_INTEGRITY], wsum = 0.0, step = pol->integrity.recovery;
	size_t i;

	for (i = 0; i < KOS_FACTOR_COUNT; i++)
		wsum += pol->weight[i];
	if (w > 0.0 && wsum > 0.0) {
		double room = (ceiling_of(pol, s, now) - score_of(pol, s->factor)) * wsum / w;

		if (room < step)
			step = room > 0.0 ? room : 0.0;
	}
	adjust(&s->factor[KOS_FACTOR_INTEGRITY], step);
}

static double latency_sample(const struct kos_policy *pol, double ms)
{
	double us = ms * 1000.0;
	double target = (double)pol->latency.target, limit = (double)pol->latency.limit;

	if (us <= target)
		return 100.0;
	if (us >= limit)
		return 0.0;
	return 100.0 * (limit - us) / (limit - target);
}

static double quota_score(uint64_t used, uint64_t quota)
{
	if (quota == 0 || used <= quota)
		return 100.0;
	if (used / 2 >= quota)
		return 0.0;
	return 100.0 * ((2.0 * (double)quota - (double)used) / (double)quota);
}

static void record_usage(struct kos_trust_state *s, const struct kos_policy *pol,
			 const kos_observation *obs, kos_usec now)
{
	double ops_score, bytes_score;

	if ((s->usage_ops == 0 && s->usage_bytes == 0) ||
	    window_over(s->usage_start, now, pol->usage.window)) {
		s->usage_start = now;
		s->usage_ops = 0;
		s->usage_bytes = 0;
	}
	s->usage_ops = add_sat(s->usage_ops, obs->ops);
	s->usage_bytes = add_sat(s->usage_bytes, obs->bytes);
	ops_score = quota_score(s->usage_ops, pol->usage.ops);
	bytes_score = quota_score(s->usage_bytes, pol->usage.bytes);
	s->factor[KOS_FACTOR_USAGE] = ops_score < bytes_score ? ops_score : bytes_score;
}

static void record_scope(struct kos_trust_state *s, const struct kos_policy *pol, kos_usec now)
{
	if (s->scope_count == 0 || window_over(s->scope_start, now, pol->anomaly.scope_window)) {
		s->scope_start = now;
		s->scope_count = 0;
	}
	s->scope_count = add_sat(s->scope_count, 1);
	s->scope_violations = add_sat(s->scope_violations, 1);
	if (s->scope_count > pol->anomaly.scope_violations) {
		adjust(&s->factor[KOS_FACTOR_ANOMALY], -pol->anomaly.scope_penalty);
		if (pol->anomaly.scope_penalty > 0.0)
			lower_ceiling(s, pol, now);
	}
}

struct observe_arg {
	const struct kos_policy *pol;
	const kos_observation *obs;
	kos_usec now;
	struct kos_trust_state after;
};

/* The read-modify-write of one observation; runs inside the store's
 * transaction, so it only computes. */
static kos_rv observe_apply(struct kos_trust_state *s, bool created, void *varg)
{
	struct observe_arg *a = varg;
	const struct kos_policy *pol = a->pol;
	const kos_observation *obs = a->obs;
	double *f = s->factor;
	size_t i;

	if (created) {
		for (i = 0; i < KOS_FACTOR_COUNT; i++)
			f[i] = pol->prior;
		s->created = a->now;
		s->last_activity = a->now;
		s->ceiling = 100.0;
		s->ceiling_at = 0;
	} else {
		double w = decay_weight(pol, s->last_activity, a->now);

		/* none on record: the score at the last activity, fixed now,
		 * before decay moves the factors it is taken from */
		if (!ceiling_known(s)) {
			s->ceiling = score_of(pol, f);
			s->ceiling_at = s->last_activity;
		}

		for (i = 0; i < KOS_FACTOR_COUNT; i++)
			f[i] = clamp100(pol->prior + (f[i] - pol->prior) * w);
		if (a->now > s->last_activity)
			s->last_activity = a->now;
	}
	s->observations = add_sat(s->observations, 1);
	if (obs->event != KOS_EVENT_REPUTATION)
		count_request(s, pol, a->now);

	switch (obs->event) {
	case KOS_EVENT_LATENCY:
		f[KOS_FACTOR_LATENCY] =
		    clamp100((1.0 - pol->latency.smoothing) * f[KOS_FACTOR_LATENCY] +
			     pol->latency.smoothing * latency_sample(pol, obs->value));
		break;
	case KOS_EVENT_SUCCESS:
		recover_integrity(s, pol, a->now);
		break;
	case KOS_EVENT_FAILURE:
		adjust(&f[KOS_FACTOR_INTEGRITY], -pol->integrity.failure_penalty);
		if (pol->integrity.failure_penalty > 0.0)
			lower_ceiling(s, pol, a->now);
		break;
	case KOS_EVENT_INTEGRITY:
		adjust(&f[KOS_FACTOR_INTEGRITY], -pol->integrity.penalty);
		s->integrity_failures = add_sat(s->integrity_failures, 1);
		if (pol->integrity.penalty > 0.0)
			lower_ceiling(s, pol, a->now);
		break;
	case KOS_EVENT_USAGE:
		record_usage(s, pol, obs, a->now);
		break;
	case KOS_EVENT_SCOPE:
		record_scope(s, pol, a->now);
		break;
	case KOS_EVENT_REPUTATION:
		f[KOS_FACTOR_REPUTATION] =
		    clamp100((1.0 - pol->reputation.smoothing) * f[KOS_FACTOR_REPUTATION] +
			     pol->reputation.smoothing * obs->value);
		break;
	default:
		/* checked before the transaction began */
		return kos_error_set(KOS_E_INTERNAL, "unknown event %d", (int)obs->event);
	}
	a->after = *s;
	return KOS_OK;
}

static kos_rv check_observation(const kos_observation *obs)
{
	switch (obs->event) {
	case KOS_EVENT_LATENCY:
		if (!isfinite(obs->value) || obs->value < 0.0)
			return kos_error_set(
			    KOS_E_INVALID, "latency must be a finite number of milliseconds >= 0");
		return KOS_OK;
	case KOS_EVENT_REPUTATION:
		/* written so that NaN fails too */
		if (!(obs->value >= 0.0 && obs->value <= 100.0))
			return kos_error_set(KOS_E_INVALID, "reputation must be within 0..100");
		return KOS_OK;
	case KOS_EVENT_SUCCESS:
	case KOS_EVENT_FAILURE:
	case KOS_EVENT_INTEGRITY:
	case KOS_EVENT_USAGE:
	case KOS_EVENT_SCOPE:
		return KOS_OK;
	}
	return kos_error_set(KOS_E_INVALID, "unknown trust event %d", (int)obs->event);
}

static kos_rv check_client(const char *client)
{
	if (!kos_principal_name_valid(client))
		return kos_error_set(KOS_E_INVALID,
				     "invalid client name (1 to 64 of A-Z a-z 0-9 . _ @ -, not "
				     "starting with . or -)");
	return KOS_OK;
}

kos_rv kos_trust_observe(kos_trust *tr, const char *client, const kos_observation *obs,
			 kos_trust_info *info)
{
	struct observe_arg a;
	kos_rv rv;

	if (tr == NULL || obs == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_trust_observe: missing argument");
	rv = check_client(client);
	if (rv == KOS_OK)
		rv = check_observation(obs);
	if (rv != KOS_OK)
		return rv;
	a.pol = policy_of(tr);
	a.obs = obs;
	a.now = now_of(tr);
	if (info == NULL && tr->sink != NULL && tr->sink(tr->sink_arg, client, obs, a.now) == KOS_OK)
		return KOS_OK;
	rv = kos_store_trust_update(tr->st, client, observe_apply, &a);
	if (rv != KOS_OK)
		return rv;
	if (info != NULL)
		fill_info(a.pol, kos_trust_get_threat(tr), &a.after, a.now, info);
	return KOS_OK;
}

void kos_trust_set_sink(kos_trust *tr, kos_trust_sink_fn fn, void *arg)
{
	tr->sink = fn;
	tr->sink_arg = fn != NULL ? arg : NULL;
}

/* kos_trust_observe_batch() and kos_trust_commit(): the observations, then
 * (m > 0) the ledger entries, in one store transaction. */
static kos_rv observe_batch(kos_trust *tr, const kos_observation_rec *recs, size_t n,
			    kos_ledger_entry *e, size_t m)
{
	const struct kos_policy *pol;
	struct observe_arg *a = NULL;
	const char **clients = NULL;
	void **args = NULL;
	kos_usec now;
	size_t i;
	kos_rv rv;

	if (n == 0 && m == 0)
		return KOS_OK;
	if (m > 0) {
		rv = kos_ledger_entries_check(e, m);
		if (rv != KOS_OK)
			return rv;
	}
	for (i = 0; i < n; i++) {
		if (memchr(recs[i].client, '\0', sizeof(recs[i].client)) == NULL)
			return kos_error_set(KOS_E_INVALID, "observation %zu: client name too long", i);
		rv = check_client(recs[i].client);
		if (rv == KOS_OK)
			rv = check_observation(&recs[i].obs);
		if (rv != KOS_OK)
			return rv;
	}
	if (n > SIZE_MAX / sizeof(*a))
		return kos_error_set(KOS_E_NOMEM, "too many observations");
	/* no observations (entries alone) allocate nothing: calloc(0) may be NULL */
	a = n > 0 ? calloc(n, sizeof(*a)) : NULL;
	clients = n > 0 ? calloc(n, sizeof(*clients)) : NULL;
	args = n > 0 ? calloc(n, sizeof(*args)) : NULL;
	if (n > 0 && (a == NULL || clients == NULL || args == NULL)) {
		rv = kos_error_set(KOS_E_NOMEM, "out of memory");
		goto out;
	}
	pol = policy_of(tr);
	now = now_of(tr);
	for (i = 0; i < n; i++) {
		a[i].pol = pol;
		a[i].obs = &recs[i].obs;
		a[i].now = recs[i].at != 0 ? recs[i].at : now;
		clients[i] = recs[i].client;
		args[i] = &a[i];
	}
	if (m == 0)
		rv = kos_store_trust_update_batch(tr->st, n, clients, observe_apply, args);
	else
		rv = kos_store_decisions_commit(tr->st, n, clients, observe_apply, args, e, m);
out:
	if (rv != KOS_OK && m > 0)
		kos_ledger_entries_unlink(e, m);
	free(args);
	free(clients);
	free(a);
	return rv;
}

kos_rv kos_trust_observe_batch(kos_trust *tr, const kos_observation_rec *recs, size_t n)
{
	if (tr == NULL || (recs == NULL && n > 0))
		return kos_error_set(KOS_E_INVALID, "kos_trust_observe_batch: missing argument");
	return observe_batch(tr, recs, n, NULL, 0);
}

kos_rv kos_trust_commit(kos_trust *tr, const kos_observation_rec *recs, size_t n,
			kos_ledger_entry *e, size_t m)
{
	if (tr == NULL || (recs == NULL && n > 0) || (e == NULL && m > 0))
		return kos_error_set(KOS_E_INVALID, "kos_trust_commit: missing argument");
	return observe_batch(tr, recs, n, e, m);
}

kos_rv kos_trust_get(kos_trust *tr, const char *client, kos_trust_info *info)
{
	struct kos_trust_state s;
	kos_rv rv;

	if (tr == NULL || info == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_trust_get: missing argument");
	rv = check_client(client);
	if (rv != KOS_OK)
		return rv;
	rv = kos_store_trust_get(tr->st, client, &s);
	if (rv != KOS_OK)
		return rv;
	fill_info(policy_of(tr), kos_trust_get_threat(tr), &s, now_of(tr), info);
	return KOS_OK;
}

struct list_arg {
	const struct kos_policy *pol;
	kos_threat level;
	kos_usec now;
	int (*fn)(const kos_trust_info *info, void *arg);
	void *arg;
};

static int list_one(const struct kos_trust_state *s, void *varg)
{
	struct list_arg *a = varg;
	kos_trust_info info;

	fill_info(a->pol, a->level, s, a->now, &info);
	return a->fn(&info, a->arg);
}

kos_rv kos_trust_list(kos_trust *tr, int (*fn)(const kos_trust_info *info, void *arg), void *arg)
{
	struct list_arg a;

	if (tr == NULL || fn == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_trust_list: missing argument");
	a.pol = policy_of(tr);
	a.level = kos_trust_get_threat(tr);
	a.now = now_of(tr);
	a.fn = fn;
	a.arg = arg;
	/* a page of copies at a time: fn runs without any store lock held */
	return kos_store_trust_each(tr->st, list_one, &a);
}

kos_rv kos_trust_forget(kos_trust *tr, const char *client)
{
	kos_rv rv;

	if (tr == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_trust_forget: missing argument");
	rv = check_client(client);
	if (rv != KOS_OK)
		return rv;
	return kos_store_trust_delete(tr->st, client);
}

const char *kos_tier_name(kos_tier t)
{
	if ((unsigned)t < KOS_ARRAY_SIZE(tier_names))
		return tier_names[t];
	return "unknown";
}

const char *kos_factor_name(kos_factor f)
{
	if ((unsigned)f < KOS_FACTOR_COUNT)
		return factor_names[f];
	return "unknown";
}

const char *kos_event_name(kos_event e)
{
	if ((unsigned)e < KOS_ARRAY_SIZE(event_names))
		return event_names[e];
	return "unknown";
}

kos_rv kos_event_parse(const char *s, kos_event *out)
{
	size_t i;

	if (s != NULL) {
		for (i = 0; i < KOS_ARRAY_SIZE(event_names); i++) {
			if (strcmp(s, event_names[i]) == 0) {
				*out = (kos_event)i;
				return KOS_OK;
			}
		}
	}
	return kos_error_set(KOS_E_INVALID,
			     "unknown event '%.32s' (latency, success, failure, integrity, usage, "
			     "scope, reputation)",
			     s != NULL ? s : "");
}

const struct kos_policy *kos_trust_get0_policy(const kos_trust *tr)
{
	return atomic_load(&tr->pol);
}
