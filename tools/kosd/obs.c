/* What the hot path writes to the store, batched: trust observations and
 * ledger entries. Both are queued in memory and written every 100 ms (the
 * flush timer of kosd.c), or every KOSD_BATCH of them, each batch in one
 * store transaction, and at shutdown.
 *
 * Trust observations: kos_access observes every request (latency, outcome)
 * and kosd queues them through the trust engine's sink. Reads still go to
 * the store, so a decision lags its own requests' observations by at most
 * one flush, never another process's changes. A full queue (the store is
 * down) makes the engine write directly again, so memory stays bounded and
 * nothing is dropped.
 *
 * The ledger (DESIGN.md 3, step 7): every decision kosd answers is one
 * entry. While KOSD_LEDGER_MAX entries wait (the store is down), kosd
 * refuses the decisions it could not record (kosd_ledger_full). */
#include "config.h"

#include "tools/kosd/kosd.h"

#include <stdlib.h>
#include <string.h>

#define KOSD_BATCH 256
#define KOSD_OBS_MAX 65536
#define KOSD_LEDGER_MAX 16384

/* A queue of fixed-size items written in batches by write(). */
struct batch {
	size_t size, max; /* bytes an item, items at most */
	kos_rv (*write)(void *ctx, void *items, size_t n);
	void *ctx;
	unsigned char *items;
	size_t n, cap;
	uint64_t queued, written, batches;
	bool flushing;
};

static kos_rv batch_flush(struct batch *b)
{
	kos_rv rv;

	if (b->n == 0)
		return KOS_OK;
	b->flushing = true;
	rv = b->write(b->ctx, b->items, b->n);
	b->flushing = false;
	if (rv != KOS_OK)
		return rv;
	b->written += b->n;
	b->batches++;
	b->n = 0;
	return KOS_OK;
}

/* A slot for one more item (to be filled by the caller, then counted with
 * batch_added), or NULL: KOS_E_BUSY when full or flushing, KOS_E_NOMEM. */
static void *batch_slot(struct batch *b, kos_rv *rv)
{
	if (b->n >= b->max || b->flushing) {
		*rv = KOS_E_BUSY;
		return NULL;
	}
	if (b->n == b->cap) {
		size_t ncap = b->cap ? b->cap * 2 : 64;
		unsigned char *ni = realloc(b->items, ncap * b->size);

		if (ni == NULL) {
			*rv = KOS_E_NOMEM;
			return NULL;
		}
		b->items = ni;
		b->cap = ncap;
	}
	*rv = KOS_OK;
	return b->items + b->n * b->size;
}

static void batch_added(struct batch *b)
{
	b->n++;
	b->queued++;
	/* every KOSD_BATCH items; a failed flush leaves them queued, and while
	 * the store fails the next try comes KOSD_BATCH items (or the timer)
	 * later, not at every item */
	if (b->n % KOSD_BATCH == 0)
		(void)batch_flush(b);
}

static void batch_stats(const struct batch *b, uint64_t *queued, uint64_t *written,
			uint64_t *batches)
{
	/* a KMS front (--role kms) keeps no queues */
	*queued = b != NULL ? b->queued : 0;
	*written = b != NULL ? b->written : 0;
	*batches = b != NULL ? b->batches : 0;
}

/* --- trust observations ------------------------------------------------- */

struct kosd_obs {
	struct batch b;
	kos_trust *tr;
};

static kos_rv obs_write(void *ctx, void *items, size_t n)
{
	return kos_trust_observe_batch(ctx, items, n);
}

static kos_rv sink(void *arg, const char *client, const kos_observation *obs, kos_usec at)
{
	struct kosd_obs *q = arg;
	kos_observation_rec *rec;
	kos_rv rv;

	/* full, or called by the flush itself: the engine writes this one */
	rec = batch_slot(&q->b, &rv);
	if (rec == NULL)
		return rv;
	memset(rec, 0, sizeof(*rec));
	/* the engine validated the name: at most 64 characters */
	strncpy(rec->client, client, sizeof(rec->client) - 1);
	rec->obs = *obs;
	rec->at = at;
	batch_added(&q->b);
	return KOS_OK;
}

kos_rv kosd_obs_new(kos_trust *tr, struct kosd_obs **out)
{
	struct kosd_obs *q = calloc(1, sizeof(*q));

	*out = NULL;
	if (q == NULL)
		return KOS_E_NOMEM;
	q->tr = tr;
	q->b.size = sizeof(kos_observation_rec);
	q->b.max = KOSD_OBS_MAX;
	q->b.write = obs_write;
	q->b.ctx = tr;
	kos_trust_set_sink(tr, sink, q);
	*out = q;
	return KOS_OK;
}

kos_rv kosd_obs_flush(struct kosd_obs *q)
{
	return q != NULL ? batch_flush(&q->b) : KOS_OK;
}

size_t kosd_obs_pending(const struct kosd_obs *q)
{
	return q != NULL ? q->b.n : 0;
}

void kosd_obs_stats(const struct kosd_obs *q, uint64_t *queued, uint64_t *written,
		    uint64_t *batches)
{
	batch_stats(q != NULL ? &q->b : NULL, queued, written, batches);
}

void kosd_obs_free(struct kosd_obs *q)
{
	if (q == NULL)
		return;
	kos_trust_set_sink(q->tr, NULL, NULL);
	free(q->b.items);
	free(q);
}

/* --- the ledger --------------------------------------------------------- */

struct kosd_ledger {
	struct batch b;
};

static kos_rv ledger_write(void *ctx, void *items, size_t n)
{
	return kos_ledger_append(ctx, items, n);
}

kos_rv kosd_ledger_new(kos_store *st, struct kosd_ledger **out)
{
	struct kosd_ledger *q = calloc(1, sizeof(*q));

	*out = q;
	if (q == NULL)
		return KOS_E_NOMEM;
	q->b.size = sizeof(kos_ledger_entry);
	q->b.max = KOSD_LEDGER_MAX;
	q->b.write = ledger_write;
	q->b.ctx = st;
	return KOS_OK;
}

bool kosd_ledger_full(const struct kosd_ledger *q)
{
	return q != NULL && q->b.n >= q->b.max;
}

kos_rv kosd_ledger_add(struct kosd_ledger *q, const kos_ledger_entry *e)
{
	kos_ledger_entry *slot;
	kos_rv rv;

	slot = batch_slot(&q->b, &rv);
	if (slot == NULL)
		return rv;
	*slot = *e;
	batch_added(&q->b);
	return KOS_OK;
}

kos_rv kosd_ledger_flush(struct kosd_ledger *q)
{
	return q != NULL ? batch_flush(&q->b) : KOS_OK;
}

size_t kosd_ledger_pending(const struct kosd_ledger *q)
{
	return q != NULL ? q->b.n : 0;
}

void kosd_ledger_stats(const struct kosd_ledger *q, uint64_t *queued, uint64_t *written,
		       uint64_t *batches)
{
	batch_stats(q != NULL ? &q->b : NULL, queued, written, batches);
}

void kosd_ledger_free(struct kosd_ledger *q)
{
	if (q == NULL)
		return;
	free(q->b.items);
	free(q);
}
