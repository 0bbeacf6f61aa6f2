/* Policy files (libconfig syntax, see kos-policy(5)).
 * Thread safety: a loaded policy is immutable and may be shared by threads. */
#ifndef KOS_POLICY_H
#define KOS_POLICY_H

#include <kos/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kos_policy kos_policy;

typedef enum kos_threat {
	KOS_THREAT_NORMAL = 0,
	KOS_THREAT_ELEVATED = 1,
	KOS_THREAT_CRITICAL = 2,
} kos_threat;
#define KOS_THREAT_COUNT 3

/* Loads and validates a policy file. On success *pol is set (free with
 * kos_policy_free()). On failure *pol is NULL and, when diag is not NULL,
 * *diag receives every problem found, one "FILE:LINE: message\n" line each
 * (free with kos_free()); kos_last_error() holds the first.
 * Errors: KOS_E_IO (unreadable), KOS_E_POLICY (invalid), KOS_E_NOMEM. */
KOS_API kos_rv kos_policy_load(const char *path, kos_policy **pol, char **diag);

/* A policy with the built-in defaults (the values of policy/default.policy). */
KOS_API kos_rv kos_policy_new_default(kos_policy **pol);

KOS_API void kos_policy_free(kos_policy *pol);

/* The file the policy was loaded from, or "(built-in)". */
KOS_API const char *kos_policy_get0_path(const kos_policy *pol);

/* How long a client may cache a data key it received (keys.cache). */
KOS_API kos_usec kos_policy_key_cache(const kos_policy *pol);

/* Writes a human-readable summary (weights, thresholds, share sets, ...) with
 * one "key: value" per line to buf; returns KOS_E_RANGE when it does not fit. */
KOS_API kos_rv kos_policy_describe(const kos_policy *pol, char *buf, size_t len);

KOS_API const char *kos_threat_name(kos_threat t);
KOS_API kos_rv kos_threat_parse(const char *s, kos_threat *out);

#ifdef __cplusplus
}
#endif
#endif
