/* The request pipeline (DESIGN.md 3): steps 3 and 4 (scope, trust) and the
 * rules of administration, step 6 (observations) and step 7 (the ledger),
 * in one place for every caller: kosd's routes, kosctl's local commands and
 * the tiered key operations of kos_access. Steps 1 and 2 (the channel and
 * the credential) belong to the caller, which alone knows the channel; what
 * it hands over is a client it has authenticated.
 *
 * The order of the checks is part of the contract: scope first (a request
 * outside the scope is a scope violation whatever the trust), then trust
 * (deny refuses everything, administration included), then the two rules of
 * administration, which only an in-scope, trusted administrator reaches:
 * nobody administers itself, and nobody gives away more than it holds. */
#include "config.h"

#include "kos/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kos_pipeline {
	kos_trust *tr;
	kos_store *st;
	kos_pipeline_ledger_fn sink;
	void *sink_arg;
};

kos_rv kos_pipeline_new(kos_trust *tr, kos_pipeline **out)
{
	kos_pipeline *p;

	if (out == NULL)
		return kos_error_set(KOS_E_INVALID, "no output for the pipeline");
	*out = NULL;
	if (tr == NULL)
		return kos_error_set(KOS_E_INVALID, "the pipeline needs the trust engine");
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	p->tr = tr;
	*out = p;
	return KOS_OK;
}

void kos_pipeline_free(kos_pipeline *p)
{
	free(p);
}

void kos_pipeline_set_ledger(kos_pipeline *p, kos_store *st, kos_pipeline_ledger_fn fn, void *arg)
{
	if (p == NULL)
		return;
	p->st = st;
	p->sink = fn;
	p->sink_arg = fn != NULL ? arg : NULL;
}

static void observe(kos_pipeline *p, const char *client, kos_event ev, double value)
{
	kos_observation obs = { .event = ev, .value = value };
	char saved[512];

	/* An observation that fails (store busy past its timeout) must not
	 * replace the reason the caller is about to read. */
	snprintf(saved, sizeof(saved), "%s", kos_last_error());
	if (kos_trust_observe(p->tr, client, &obs, NULL) != KOS_OK)
		kos_error_set(KOS_E_STORE, "%s", saved);
	else
		kos_error_set(KOS_OK, "%s", saved);
}

void kos_pipeline_observe(kos_pipeline *p, const char *client, kos_usec latency_us, kos_rv rv)
{
	if (p == NULL || !kos_principal_name_valid(client))
		return;
	if (latency_us >= 0)
		observe(p, client, KOS_EVENT_LATENCY, (double)latency_us / 1000.0);
	if (rv == KOS_OK)
		observe(p, client, KOS_EVENT_SUCCESS, 0);
	else if (rv == KOS_E_INTEGRITY)
		observe(p, client, KOS_EVENT_INTEGRITY, 0);
	else if (rv != KOS_E_NOMEM && rv != KOS_E_IO && rv != KOS_E_STORE && rv != KOS_E_BUSY)
		/* the client's failures count; the service's own do not */
		observe(p, client, KOS_EVENT_FAILURE, 0);
}

static void refuse(kos_decision *d, const char *reason, const char *code)
{
	d->allowed = 0;
	d->reason = reason;
	d->code = code;
}

kos_rv kos_pipeline_admit(kos_pipeline *p, const kos_request *rq, kos_decision *d)
{
	kos_trust_info info;
	kos_rv rv;

	if (d == NULL)
		return kos_error_set(KOS_E_INVALID, "no decision to fill");
	memset(d, 0, sizeof(*d));
	if (p == NULL || rq == NULL)
		return kos_error_set(KOS_E_INVALID, "no pipeline or request");
	if (!kos_principal_name_valid(rq->client))
		return kos_error_set(KOS_E_INVALID, "invalid client name");
	if (rq->scope == NULL ||
	    (rq->action != NULL && !kos_scope_allows(rq->scope, rq->action, rq->resource))) {
		refuse(d, "out of scope", "out_of_scope");
		observe(p, rq->client, KOS_EVENT_SCOPE, 0);
		kos_error_set(KOS_OK, "%s:%s is not in the client's scope",
			      rq->action != NULL ? rq->action : "",
			      rq->resource != NULL ? rq->resource : "");
		return KOS_OK;
	}
	rv = kos_trust_get(p->tr, rq->client, &info);
	if (rv == KOS_E_NOTFOUND) {
		/* never seen: it stands at the prior until it is observed */
		info.score = kos_trust_get0_policy(p->tr)->prior;
		info.tier = kos_trust_tier_of(p->tr, info.score);
	} else if (rv != KOS_OK) {
		return rv;
	}
	d->score = info.score;
	d->tier = info.tier;
	if (info.tier == KOS_TIER_DENY) {
		refuse(d, "trust too low", "trust_too_low");
		observe(p, rq->client, KOS_EVENT_FAILURE, 0);
		kos_error_set(KOS_OK, "client's trust %.1f is below the request threshold",
			      info.score);
		return KOS_OK;
	}
	/* an operation the policy keeps from the lower tiers (a private key's,
	 * by signing.min_tier): the same refusal, observed the same way */
	if (info.tier < rq->min_tier) {
		refuse(d, "trust too low", "trust_too_low");
		observe(p, rq->client, KOS_EVENT_FAILURE, 0);
		kos_error_set(KOS_OK, "client's tier %s is below %s, the lowest this operation is "
				      "served to",
			      kos_tier_name(info.tier), kos_tier_name(rq->min_tier));
		return KOS_OK;
	}
	/* a client that could lift its own trust, renew its own secret or
	 * credentials, or re-enable itself would undo every decision above */
	if (rq->mutates && rq->target != NULL && strcmp(rq->target, rq->client) == 0) {
		refuse(d, "self-administration", "self_administration");
		observe(p, rq->client, KOS_EVENT_SCOPE, 0);
		kos_error_set(KOS_OK, "a client does not administer itself");
		return KOS_OK;
	}
	if (rq->grant_scope != NULL && !kos_scope_within(rq->grant_scope, rq->scope)) {
		refuse(d, "beyond the granter's scope", "beyond_scope");
		observe(p, rq->client, KOS_EVENT_SCOPE, 0);
		kos_error_set(KOS_OK, "the scope given or acted upon is not within the granter's");
		return KOS_OK;
	}
	d->allowed = 1;
	return KOS_OK;
}

kos_rv kos_pipeline_record(kos_pipeline *p, const char *client, const char *action,
			   const char *resource, const char *tier, const char *outcome,
			   const char *reason, const char *jti)
{
	kos_ledger_entry e;

	if (p == NULL || (p->sink == NULL && p->st == NULL))
		return kos_error_set(KOS_E_INVALID, "the pipeline has no ledger");
	kos_ledger_entry_init(&e, kos_now(), client, action, resource, tier, outcome, reason, jti);
	if (p->sink != NULL)
		return p->sink(p->sink_arg, &e);
	return kos_ledger_append(p->st, &e, 1);
}
