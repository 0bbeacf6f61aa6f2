/* Trust engine: a score per client from weighted factors, tiers, decay.
 * Thread safety: a kos_trust may be used from several threads; several
 * processes sharing one store lose no update. */
#ifndef KOS_TRUST_H
#define KOS_TRUST_H

#include <kos/common.h>
#include <kos/ledger.h>
#include <kos/names.h>
#include <kos/policy.h>
#include <kos/store.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kos_trust kos_trust;

typedef enum kos_factor {
	KOS_FACTOR_LATENCY = 0,
	KOS_FACTOR_INTEGRITY = 1,
	KOS_FACTOR_USAGE = 2,
	KOS_FACTOR_ANOMALY = 3,
	KOS_FACTOR_REPUTATION = 4,
} kos_factor;
#define KOS_FACTOR_COUNT 5

typedef enum kos_tier {
	KOS_TIER_DENY = 0,
	KOS_TIER_LOW = 1,
	KOS_TIER_MEDIUM = 2,
	KOS_TIER_HIGH = 3,
} kos_tier;

typedef enum kos_event {
	KOS_EVENT_LATENCY = 0,   /* value: latency in milliseconds */
	KOS_EVENT_SUCCESS,       /* an operation succeeded */
	KOS_EVENT_FAILURE,       /* an operation failed (not an integrity failure) */
	KOS_EVENT_INTEGRITY,     /* bad signature, failed tag, forged or malformed credential */
	KOS_EVENT_USAGE,         /* ops operations and bytes bytes used */
	KOS_EVENT_SCOPE,         /* request outside the credential's scope */
	KOS_EVENT_REPUTATION,    /* value: reputation feed value 0..100 */
} kos_event;

typedef struct kos_observation {
	kos_event event;
	double value;
	uint64_t ops;
	uint64_t bytes;
} kos_observation;

/* What a client's trust is at one instant (decay applied). */
typedef struct kos_trust_info {
	char client[65];
	double score;                      /* 0..100 */
	kos_tier tier;                     /* with the current threat level */
	double factor[KOS_FACTOR_COUNT];   /* 0..100 each */
	kos_usec created;
	kos_usec last_activity;
	uint64_t observations;
	uint64_t integrity_failures;
	uint64_t scope_violations;
	int anomalous;                     /* anomaly factor below the policy's flag level */
	double ceiling;                    /* the score's ceiling now: 100 until a penalty,
					      then rising back with time (kos-trust(7)) */
	kos_usec ceiling_since;            /* the penalty that set it; 0: none */
} kos_trust_info;

typedef kos_usec (*kos_clock_fn)(void *arg);

/* Creates an engine over pol and st (both borrowed; they must outlive the
 * engine). Errors: KOS_E_INVALID, KOS_E_NOMEM. */
KOS_API kos_rv kos_trust_new(const kos_policy *pol, kos_store *st, kos_trust **out);
KOS_API void kos_trust_free(kos_trust *tr);

/* Replaces the clock (default: kos_now; fn NULL restores it); tests and
 * "kosctl trust --at" simulate time with it. Not to be called while other
 * threads use the engine. */
KOS_API void kos_trust_set_clock(kos_trust *tr, kos_clock_fn fn, void *arg);

/* Swaps the policy (borrowed); used on reload. */
KOS_API void kos_trust_set_policy(kos_trust *tr, const kos_policy *pol);

KOS_API void kos_trust_set_threat(kos_trust *tr, kos_threat level);
KOS_API kos_threat kos_trust_get_threat(const kos_trust *tr);

/* Records one observation for client at the clock's time, creating the client
 * at the prior on first sight. Atomic across processes. When info is not NULL
 * it receives the state after the update. Errors: KOS_E_INVALID (bad client
 * name, event or value), KOS_E_STORE. */
KOS_API kos_rv kos_trust_observe(kos_trust *tr, const char *client,
				 const kos_observation *obs, kos_trust_info *info);

/* An observation as a sink queues it and kos_trust_observe_batch() applies it. */
typedef struct kos_observation_rec {
	char client[65];
	kos_observation obs;
	kos_usec at; /* when it happened (the engine's clock); 0: when applied */
} kos_observation_rec;

/* Takes an observation instead of the engine writing it (a validated client
 * and observation, the clock's time). Returning KOS_OK means the sink owns
 * it now (it must apply it later with kos_trust_observe_batch()); any other
 * value makes kos_trust_observe() write it directly, as without a sink. */
typedef kos_rv (*kos_trust_sink_fn)(void *arg, const char *client, const kos_observation *obs,
				    kos_usec at);

/* Installs (fn NULL: removes) a sink for kos_trust_observe() calls with info
 * NULL, so that a service can batch the hot path's observations instead of
 * one store transaction each; calls with info still write at once. Not to
 * be called while other threads use the engine. */
KOS_API void kos_trust_set_sink(kos_trust *tr, kos_trust_sink_fn fn, void *arg);

/* Applies n observations in order (recs[i].at, or the clock when 0) in ONE
 * store transaction: all or none are written. Errors: KOS_E_INVALID (a bad
 * client or observation: nothing written), KOS_E_STORE. Thread-safe. */
KOS_API kos_rv kos_trust_observe_batch(kos_trust *tr, const kos_observation_rec *recs, size_t n);

/* kos_trust_observe_batch() of n observations and kos_ledger_append() of m
 * entries to the engine's store, in ONE transaction: all or none (a
 * service's decisions with what they caused, committed before it answers
 * them). On failure the entries' chain values are cleared. Errors as the
 * two; thread-safe. */
KOS_API kos_rv kos_trust_commit(kos_trust *tr, const kos_observation_rec *recs, size_t n,
				kos_ledger_entry *e, size_t m);

/* The client's trust now. KOS_E_NOTFOUND for a client never observed. */
KOS_API kos_rv kos_trust_get(kos_trust *tr, const char *client, kos_trust_info *info);

/* The tier of score under the policy and current threat level. */
KOS_API kos_tier kos_trust_tier_of(const kos_trust *tr, double score);

/* Calls fn for every known client, in name order; stops at the first
 * non-zero return of fn and returns it. */
KOS_API kos_rv kos_trust_list(kos_trust *tr,
			      int (*fn)(const kos_trust_info *info, void *arg), void *arg);

/* Forgets a client. KOS_E_NOTFOUND when unknown. */
KOS_API kos_rv kos_trust_forget(kos_trust *tr, const char *client);


KOS_API const char *kos_tier_name(kos_tier t);
KOS_API const char *kos_factor_name(kos_factor f);
KOS_API const char *kos_event_name(kos_event e);
KOS_API kos_rv kos_event_parse(const char *s, kos_event *out);

#ifdef __cplusplus
}
#endif
#endif
