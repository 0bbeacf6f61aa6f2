/* The request pipeline (DESIGN.md 3) as one module: every route of kosd and
 * every local command of kosctl asks it whether an authenticated client may
 * perform action:resource now (scope, trust, the rules of administration),
 * reports the outcome as that client's observations and records the
 * decision in the ledger. The tiered key operations (kos_access) take it
 * too. Thread safety: a kos_pipeline may be used from several threads once
 * its ledger sink is set. */
#ifndef KOS_PIPELINE_H
#define KOS_PIPELINE_H

#include <kos/common.h>
#include <kos/ledger.h>
#include <kos/store.h>
#include <kos/trust.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kos_pipeline kos_pipeline;

/* One request of an authenticated client. */
typedef struct kos_request {
	const char *client;   /* who asks (authenticated: credential or local administrator) */
	const char *scope;    /* what its credential allows */
	/* the scope action: "decrypt", "rewrap", "sign", "service", "admin",
	 * ... (kos/scope.h lists them); NULL for a listing that filters its
	 * items by scope itself (trust only) */
	const char *action;
	const char *resource; /* the key, service or administrative area */
	/* administration: the client acted upon (NULL: none). A client never
	 * administers itself when the request changes state (mutates). */
	const char *target;
	/* delegation: a scope the request gives away or acts upon (a new
	 * client's, an issued credential's, the target's registered scope),
	 * NULL for none. It must lie within the requester's scope. */
	const char *grant_scope;
	int mutates; /* 1 when the request changes state */
	/* the lowest tier the operation is served to (the policy's
	 * signing.min_tier for a private key); KOS_TIER_DENY (0): any tier
	 * above deny */
	kos_tier min_tier;
} kos_request;

/* What the pipeline decided. reason and code are static strings. */
typedef struct kos_decision {
	int allowed;
	kos_tier tier;	    /* the requester's tier now (a client never seen: the prior's) */
	double score;
	const char *reason; /* "out of scope", "trust too low", "self-administration",
			     * "beyond the granter's scope"; NULL when allowed */
	const char *code;   /* the same as an error code: "out_of_scope", "trust_too_low",
			     * "self_administration", "beyond_scope"; NULL when allowed */
} kos_decision;

/* Takes decisions with tr (borrowed; it must outlive the pipeline). Errors:
 * KOS_E_INVALID, KOS_E_NOMEM. */
KOS_API kos_rv kos_pipeline_new(kos_trust *tr, kos_pipeline **out);
KOS_API void kos_pipeline_free(kos_pipeline *p);

/* Where step 7 writes: st (borrowed) gets each entry at once through
 * kos_ledger_append(), or fn (when not NULL) takes it, e.g. a service's
 * batch queue. Not to be called while other threads use the pipeline. */
typedef kos_rv (*kos_pipeline_ledger_fn)(void *arg, const kos_ledger_entry *e);
KOS_API void kos_pipeline_set_ledger(kos_pipeline *p, kos_store *st, kos_pipeline_ledger_fn fn,
				     void *arg);

/* Steps 3 and 4, and the rules of administration, in this order: the
 * scope covers action:resource; the requester's tier is not deny and not
 * below rq->min_tier ("trust too low" either way); a request
 * that mutates does not target the requester itself; grant_scope lies within
 * the requester's scope (kos_scope_within). A refusal is KOS_OK with
 * d->allowed 0 and d->reason set, and is observed (a scope violation, or a
 * failure for deny); errors only for bad arguments and store failures. */
KOS_API kos_rv kos_pipeline_admit(kos_pipeline *p, const kos_request *rq, kos_decision *d);

/* Step 6: the outcome rv of an operation the pipeline admitted, as
 * observations of client: latency (latency_us >= 0; < 0 for none), and
 * success, an integrity failure or a failure; failures of the service
 * itself (memory, store, I/O, busy) are not the client's. */
KOS_API void kos_pipeline_observe(kos_pipeline *p, const char *client, kos_usec latency_us,
				  kos_rv rv);

/* Step 7: the decision as one ledger entry (kos_ledger_entry_init() rules:
 * untrusted text is made safe, NULL or "" is "-"). outcome is "allowed",
 * "refused" or "failed". Errors: those of the sink or kos_ledger_append(),
 * KOS_E_INVALID when no ledger is set. */
KOS_API kos_rv kos_pipeline_record(kos_pipeline *p, const char *client, const char *action,
				   const char *resource, const char *tier, const char *outcome,
				   const char *reason, const char *jti);

#ifdef __cplusplus
}
#endif
#endif
