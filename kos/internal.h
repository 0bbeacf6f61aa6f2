/* Private declarations shared by libkos modules; never installed. */
#ifndef KOS_INTERNAL_H
#define KOS_INTERNAL_H

#include <kos/kos.h>

#include <stdarg.h>
#include <stdbool.h>

#define KOS_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* --- errors (error.c) --- */

/* Sets this thread's error detail and returns rv, so a failure reads
 * `return kos_error_set(KOS_E_PARSE, "bad share: %s", why);`. Never pass a secret. */
kos_rv kos_error_set(kos_rv rv, const char *fmt, ...) KOS_PRINTF(2, 3);
kos_rv kos_error_vset(kos_rv rv, const char *fmt, va_list ap) KOS_PRINTF(2, 0);
void kos_error_clear(void);

/* --- diagnostics list for FILE:LINE reports (util.c) --- */

typedef struct kos_diag {
	char *buf;       /* "FILE:LINE: message\n" lines */
	size_t len, cap;
	unsigned count;
	bool oom;
} kos_diag;

void kos_diag_add(kos_diag *d, const char *file, int line, const char *fmt, ...)
	KOS_PRINTF(4, 5);
/* Hands the text over to *out (may be NULL: then freed) and sets the thread's
 * error detail to the first line; returns rv. */
kos_rv kos_diag_finish(kos_diag *d, char **out, kos_rv rv);

/* --- small helpers (util.c) --- */

char *kos_strdup(const char *s);
/* Reads a whole file of at most max bytes; KOS_E_RANGE when larger. */
kos_rv kos_read_file(const char *path, size_t max, char **data, size_t *len);

/* Constant-time lowercase hex: no branch or table look-up on the data. */
void kos_hex_encode(const uint8_t *in, size_t len, char *out /* 2*len+1 */);
/* Returns KOS_E_PARSE on an odd length or a non-hex digit (lowercase or
 * uppercase accepted); constant time in the digits' values. */
kos_rv kos_hex_decode(const char *in, size_t hexlen, uint8_t *out /* hexlen/2 */);

/* --- GF(2^8) arithmetic (shamir.c), constant time --- */

uint8_t kos_gf256_mul(uint8_t a, uint8_t b);
uint8_t kos_gf256_inv(uint8_t a); /* inv(0) = 0 */

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
 * process would. KOS_KEYS_INJECT_OFF clears it. Not thread-safe. */
enum { KOS_KEYS_INJECT_OFF = 0, KOS_KEYS_INJECT_FAIL = 1, KOS_KEYS_INJECT_CRASH = 2 };
void kos_keys_test_inject(kos_keys *keys, unsigned after_shares, int mode);

#endif
