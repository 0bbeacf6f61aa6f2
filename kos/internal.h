/* Private declarations shared by libkos modules; never installed. */
#ifndef KOS_INTERNAL_H
#define KOS_INTERNAL_H

#include "common/internal.h"
#include <kos/server.h>

#include <stdarg.h>
#include <stdbool.h>

/* --- policy (policy.c) --- */

#define KOS_POLICY_MAX_SHARE_SETS 8

struct kos_share_set_rule {
	char name[32];
	double min_score;     /* the set applies to scores in [min_score, max_score) */
	double max_score;
	unsigned n, k;
};

struct kos_policy {
	char *path;

	/* trust */
	double weight[KOS_FACTOR_COUNT]; /* >= 0, not all zero */
	double prior;                    /* 0..100: where new and idle scores sit */
	kos_usec half_life;              /* decay toward the prior */
	kos_usec recovery_half_life;     /* a penalty's score ceiling halves its distance to 100 */
	struct {
		kos_usec target;         /* at or below: sub-score 100 */
		kos_usec limit;          /* at or above: sub-score 0 */
		double smoothing;        /* EWMA weight of a new sample, (0,1] */
	} latency;
	struct {
		double penalty;          /* subtracted per integrity failure */
		double failure_penalty;  /* subtracted per plain failure */
		double recovery;         /* added per success */
	} integrity;
	struct {
		kos_usec window;         /* quota period */
		uint64_t ops;            /* operations per window; 0: no quota */
		uint64_t bytes;          /* bytes per window; 0: no quota */
	} usage;
	struct {
		kos_usec window;         /* request-rate bucket */
		double z_limit;          /* rate beyond mean + z_limit*stddev is unusual */
		unsigned min_samples;    /* buckets of history before judging by the baseline */
		uint64_t initial_rate;   /* requests per window tolerated before that */
		double penalty;          /* subtracted for an unusual rate */
		unsigned scope_violations; /* violations within scope_window before penalties */
		kos_usec scope_window;
		double scope_penalty;    /* subtracted per violation past the limit */
		double recovery;         /* added per ordinary bucket */
		double flag_below;       /* anomaly factor below this: client flagged anomalous */
	} anomaly;
	struct {
		double smoothing;        /* EWMA weight of a feed value, (0,1] */
	} reputation;

	/* tiers (before the threat offset) */
	double tier_high, tier_medium, request_threshold;

	struct kos_share_set_rule share_sets[KOS_POLICY_MAX_SHARE_SETS];
	size_t n_share_sets;

	struct {
		kos_usec lifetime[4];    /* indexed by kos_tier; [KOS_TIER_DENY] = 0 */
		kos_usec leeway;
		kos_usec max_chain;
		kos_usec enrollment;     /* how long an enrollment secret stays usable */
		char issuer[256];        /* iss of every credential */
		char audience[256];      /* aud of every credential */
	} credentials;

	struct {
		kos_usec dek, signing, ca;
	} rotation;

	struct {
		kos_usec cache;          /* how long a reconstructed DEK stays cached; 0: never */
	} keys;

	struct {
		bool allow_sha1;         /* SHA-1 signatures, for legacy consumers only */
		kos_tier min_tier;       /* lowest tier that signs or decrypts with a
					    private key (KOS_TIER_LOW: every tier but deny) */
	} signing;

	struct {
		double offset;           /* added to every threshold */
		double lifetime_factor;  /* (0,1]: credential lifetimes multiplied by it */
		double anomalous_share;  /* elevated, critical: share of clients flagged
					    anomalous that raises the level to this one */
	} threat[KOS_THREAT_COUNT];
	unsigned threat_min_clients;     /* fewer known clients: no automatic raise */
};

/* The policy an engine currently uses (trust.c). */
const struct kos_policy *kos_trust_get0_policy(const kos_trust *tr);

/* Fills pol with the built-in defaults (path not set). */
void kos_policy_init_defaults(struct kos_policy *pol);

/* --- keys (keys.c) --- */

/* TEST ONLY: makes the next version creation of keys stop once after_shares
 * objects (shares, or 1 for a signing key's key pair) are on tokens, before
 * the version is activated: mode KOS_KEYS_INJECT_FAIL returns KOS_E_IO (the
 * creation rolls back), KOS_KEYS_INJECT_CRASH calls _exit(3) as a killed
 * process would. With KOS_KEYS_INJECT_CRASH, kos_key_destroy() crashes
 * once after_shares objects are destroyed (0: right after the store's
 * transaction). KOS_KEYS_INJECT_OFF clears it. Not thread-safe. */
enum { KOS_KEYS_INJECT_OFF = 0, KOS_KEYS_INJECT_FAIL = 1, KOS_KEYS_INJECT_CRASH = 2 };
void kos_keys_test_inject(kos_keys *keys, unsigned after_shares, int mode);

#endif
