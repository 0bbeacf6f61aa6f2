/* Trust observations of the hot path, batched: kos_access observes every
 * request (latency, outcome); kosd queues them through the trust engine's
 * sink and writes them every 100 ms, or every KOSD_OBS_BATCH, in one store
 * transaction. Reads still go to the store, so a decision lags its own
 * requests' observations by at most one flush, never another process's
 * changes. A full queue (the store is down) makes the engine write directly
 * again, so memory stays bounded and nothing is dropped. */
#include "config.h"

#include "tools/kosd.h"

#include <stdlib.h>
#include <string.h>

#define KOSD_OBS_BATCH 256
#define KOSD_OBS_MAX 65536

struct kosd_obs {
	kos_trust *tr;
	kos_observation_rec *recs;
	size_t n, cap;
	uint64_t queued, written, batches;
	bool flushing;
};

static kos_rv sink(void *arg, const char *client, const kos_observation *obs, kos_usec at)
{
	struct kosd_obs *q = arg;
	kos_observation_rec *rec;

	if (q->n >= KOSD_OBS_MAX || q->flushing)
		return KOS_E_BUSY; /* the engine writes this one itself */
	if (q->n == q->cap) {
		size_t ncap = q->cap ? q->cap * 2 : 64;
		kos_observation_rec *nr = realloc(q->recs, ncap * sizeof(*nr));

		if (nr == NULL)
			return KOS_E_NOMEM;
		q->recs = nr;
		q->cap = ncap;
	}
	rec = &q->recs[q->n];
	memset(rec, 0, sizeof(*rec));
	/* the engine validated the name: at most 64 characters */
	strncpy(rec->client, client, sizeof(rec->client) - 1);
	rec->obs = *obs;
	rec->at = at;
	q->n++;
	q->queued++;
	if (q->n >= KOSD_OBS_BATCH)
		(void)kosd_obs_flush(q); /* on failure they stay queued for the timer */
	return KOS_OK;
}

kos_rv kosd_obs_new(kos_trust *tr, struct kosd_obs **out)
{
	struct kosd_obs *q = calloc(1, sizeof(*q));

	*out = NULL;
	if (q == NULL)
		return KOS_E_NOMEM;
	q->tr = tr;
	kos_trust_set_sink(tr, sink, q);
	*out = q;
	return KOS_OK;
}

kos_rv kosd_obs_flush(struct kosd_obs *q)
{
	kos_rv rv;

	if (q == NULL || q->n == 0)
		return KOS_OK;
	q->flushing = true;
	rv = kos_trust_observe_batch(q->tr, q->recs, q->n);
	q->flushing = false;
	if (rv != KOS_OK)
		return rv;
	q->written += q->n;
	q->batches++;
	q->n = 0;
	return KOS_OK;
}

size_t kosd_obs_pending(const struct kosd_obs *q)
{
	return q != NULL ? q->n : 0;
}

void kosd_obs_stats(const struct kosd_obs *q, uint64_t *queued, uint64_t *written,
		    uint64_t *batches)
{
	/* a KMS front (--role kms) keeps no queue */
	*queued = q != NULL ? q->queued : 0;
	*written = q != NULL ? q->written : 0;
	*batches = q != NULL ? q->batches : 0;
}

void kosd_obs_free(struct kosd_obs *q)
{
	if (q == NULL)
		return;
	kos_trust_set_sink(q->tr, NULL, NULL);
	free(q->recs);
	free(q);
}

/* --- the ledger (DESIGN.md 3, step 7) -------------------------------------
 * Every decision kosd answers is an entry of the store's ledger. Entries
 * are queued as requests finish and written with the observations: every
 * 100 ms, every KOSD_LEDGER_BATCH, and at shutdown, each batch in one
 * transaction. While KOSD_LEDGER_MAX entries wait (the store is down),
 * kosd refuses decisions it could not record (kosd_ledger_full). */

#define KOSD_LEDGER_BATCH 256
#define KOSD_LEDGER_MAX 16384

struct kosd_ledger {
	kos_store *st;
	kos_ledger_entry *e;
	size_t n, cap;
	uint64_t queued, written, batches;
};

kos_rv kosd_ledger_new(kos_store *st, struct kosd_ledger **out)
{
	struct kosd_ledger *q = calloc(1, sizeof(*q));

	*out = q;
	if (q == NULL)
		return KOS_E_NOMEM;
	q->st = st;
	return KOS_OK;
}

bool kosd_ledger_full(const struct kosd_ledger *q)
{
	return q != NULL && q->n >= KOSD_LEDGER_MAX;
}

kos_rv kosd_ledger_add(struct kosd_ledger *q, const kos_ledger_entry *e)
{
	if (q->n >= KOSD_LEDGER_MAX)
		return KOS_E_BUSY;
	if (q->n == q->cap) {
		size_t ncap = q->cap ? q->cap * 2 : 64;
		kos_ledger_entry *ne = realloc(q->e, ncap * sizeof(*ne));

		if (ne == NULL)
			return KOS_E_NOMEM;
		q->e = ne;
		q->cap = ncap;
	}
	q->e[q->n++] = *e;
	q->queued++;
	if (q->n >= KOSD_LEDGER_BATCH)
		(void)kosd_ledger_flush(q); /* on failure they stay queued for the timer */
	return KOS_OK;
}

kos_rv kosd_ledger_flush(struct kosd_ledger *q)
{
	kos_rv rv;

	if (q == NULL || q->n == 0)
		return KOS_OK;
	rv = kos_ledger_append(q->st, q->e, q->n);
	if (rv != KOS_OK)
		return rv;
	q->written += q->n;
	q->batches++;
	q->n = 0;
	return KOS_OK;
}

size_t kosd_ledger_pending(const struct kosd_ledger *q)
{
	return q != NULL ? q->n : 0;
}

void kosd_ledger_stats(const struct kosd_ledger *q, uint64_t *queued, uint64_t *written,
		       uint64_t *batches)
{
	*queued = q != NULL ? q->queued : 0;
	*written = q != NULL ? q->written : 0;
	*batches = q != NULL ? q->batches : 0;
}

void kosd_ledger_free(struct kosd_ledger *q)
{
	if (q == NULL)
		return;
	free(q->e);
	free(q);
}
