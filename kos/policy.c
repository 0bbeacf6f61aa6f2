/* Policy files: parsing, validation and the built-in defaults. */
#include "config.h"

#include "kos/internal.h"

#include <stdlib.h>
#include <string.h>

#define SEC KOS_USEC_PER_SEC

void kos_policy_init_defaults(struct kos_policy *pol)
{
	memset(pol, 0, sizeof(*pol));
	pol->weight[KOS_FACTOR_LATENCY] = 1.0;
	pol->weight[KOS_FACTOR_INTEGRITY] = 3.0;
	pol->weight[KOS_FACTOR_USAGE] = 1.0;
	pol->weight[KOS_FACTOR_ANOMALY] = 2.0;
	pol->weight[KOS_FACTOR_REPUTATION] = 1.0;
	pol->prior = 60.0;
	pol->half_life = 7 * 86400 * SEC;
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
	pol->rotation.dek = 30 * 86400 * SEC;
	pol->rotation.signing = 90 * 86400 * SEC;
	pol->rotation.ca = 180 * 86400 * SEC;
	pol->threat[KOS_THREAT_NORMAL].offset = 0.0;
	pol->threat[KOS_THREAT_NORMAL].lifetime_factor = 1.0;
	pol->threat[KOS_THREAT_ELEVATED].offset = 10.0;
	pol->threat[KOS_THREAT_ELEVATED].lifetime_factor = 0.5;
	pol->threat[KOS_THREAT_CRITICAL].offset = 25.0;
	pol->threat[KOS_THREAT_CRITICAL].lifetime_factor = 0.25;
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

/* TODO(policy parser): kos_policy_load and kos_policy_describe. */
