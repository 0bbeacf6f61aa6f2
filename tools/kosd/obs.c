/* What the hot path writes to the store: trust observations and ledger
 * entries.
 *
 * With listen.ledger "durable" (the default) what a request causes is kept
 * with the request (kosd_req_keep_*) and committed by work.c's group commit
 * before its answer leaves. The queues below take the rest: whatever no
 * worker's request caused (the windows of unauthenticated sources), what a
 * group commit could not write, and everything with listen.ledger
 * "batched", where they are written every 100 ms (the flush timer of
 * kosd.c, run by a worker), or every KOSD_BATCH of them, each batch in one
 * store transaction, and at shutdown.
 *
 * Trust observations: kos_access observes every request (latency, outcome)
 * and kosd keeps them through the trust engine's sink. Reads still go to
 * the store, so a batched decision lags its own requests' observations by
 * at most one flush, never another process's changes. A full queue (the
 * store is down) makes the engine write directly again, so memory stays
 * bounded and nothing is dropped.
 *
 * The ledger (DESIGN.md 3, step 7): every decision kosd answers is one
 * entry. While KOSD_LEDGER_MAX entries wait (the store is down), kosd
 * refuses the decisions it could not record (kosd_ledger_full).
 *
 * A store that refuses (disk full, locked by another process) is tried
 * again after 200 ms, then after twice as long each time up to 2 s: what
 * waits is not copied, rehashed and logged ten times a second while it
 * refuses. A forced flush (shutdown, the admin route) tries at once.
 *
 * Threads: a queue's items are under its lock; one flush at a time writes
 * (flush_lock), with the items taken out of the queue so that the others
 * keep adding while it writes; until written they still count as waiting
 * (the health answer's pending counts, the cap, kosd_ledger_full). */
#include "config.h"

#include "tools/kosd/kosd.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KOSD_BATCH 256
#define KOSD_RETRY_FIRST_NS (200 * 1000000LL)
#define KOSD_RETRY_MAX_NS (2000 * 1000000LL)
#define KOSD_OBS_MAX 65536
#define KOSD_LEDGER_MAX 16384

/* A queue of fixed-size items written in batches by write(). */
struct batch {
	size_t size, max; /* bytes an item, items at most */
	kos_rv (*write)(void *ctx, void *items, size_t n);
	void *ctx;
	pthread_mutex_t lock, flush_lock;
	unsigned char *items;
	size_t n, cap;
	/* items a flush has taken out and is writing: still waiting, for
	 * batch_pending and the cap (under lock) */
	size_t inflight;
	uint64_t queued, written, batches;
	/* after a failed write: the next one not before retry_at (CLOCK_MONOTONIC
	 * ns), retry_ns the wait after the next failure; under flush_lock */
	long long retry_at, retry_ns;
};

/* Set while this thread writes a batch: what the write itself causes is
 * written directly by the engine, not queued behind it. */
static _Thread_local bool flushing;

static void batch_init(struct batch *b, size_t size, size_t max,
		       kos_rv (*write)(void *ctx, void *items, size_t n), void *ctx)
{
	b->size = size;
	b->max = max;
	b->write = write;
	b->ctx = ctx;
	pthread_mutex_init(&b->lock, NULL);
	pthread_mutex_init(&b->flush_lock, NULL);
}

/* Room for n more items at the end, lock held; false when out of memory. */
static bool batch_room_locked(struct batch *b, size_t n)
{
	return kosd_grow((void **)&b->items, &b->cap, b->n + n, b->size);
}

static long long mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The n items a failed write took out (items, capacity cap) back in front
 * of what came meanwhile, lock held: the larger block is kept and only the
 * newcomers are copied. False when out of memory. */
static bool batch_put_back_locked(struct batch *b, unsigned char *items, size_t n, size_t cap)
{
	if (b->n > 0) {
		if (!kosd_grow((void **)&items, &cap, n + b->n, b->size))
			return false;
		memcpy(items + n * b->size, b->items, b->n * b->size);
	}
	free(b->items);
	b->items = items;
	b->n += n;
	b->cap = cap;
	return true;
}

/* Writes what is queued; when !force and the store refused a moment ago,
 * KOS_OK without trying (the wait of the header). */
static kos_rv batch_flush(struct batch *b, bool force)
{
	unsigned char *items;
	size_t n, cap;
	kos_rv rv;

	pthread_mutex_lock(&b->flush_lock);
	if (!force && b->retry_at != 0 && mono_ns() < b->retry_at) {
		pthread_mutex_unlock(&b->flush_lock);
		return KOS_OK;
	}
	pthread_mutex_lock(&b->lock);
	items = b->items;
	n = b->n;
	cap = b->cap;
	b->items = NULL;
	b->n = b->cap = 0;
	b->inflight = n;
	pthread_mutex_unlock(&b->lock);
	if (n == 0) {
		free(items);
		pthread_mutex_unlock(&b->flush_lock);
		return KOS_OK;
	}
	flushing = true;
	rv = b->write(b->ctx, items, n);
	flushing = false;
	pthread_mutex_lock(&b->lock);
	b->inflight = 0;
	if (rv == KOS_OK) {
		b->written += n;
		b->batches++;
		b->retry_at = b->retry_ns = 0;
		if (b->items == NULL) {
			/* keep the buffer for the next items */
			b->items = items;
			b->cap = cap;
			items = NULL;
		}
	} else {
		b->retry_ns = b->retry_ns == 0 ? KOSD_RETRY_FIRST_NS : b->retry_ns * 2;
		if (b->retry_ns > KOSD_RETRY_MAX_NS)
			b->retry_ns = KOSD_RETRY_MAX_NS;
		b->retry_at = mono_ns() + b->retry_ns;
		/* kept for the next try, before what came meanwhile */
		if (batch_put_back_locked(b, items, n, cap))
			items = NULL;
		else
			b->queued -= n; /* out of memory: lost, and said so by the caller's log */
	}
	pthread_mutex_unlock(&b->lock);
	free(items);
	pthread_mutex_unlock(&b->flush_lock);
	return rv;
}

/* Queues n items (copied): KOS_E_BUSY when full or called by a flush,
 * KOS_E_NOMEM. Every KOSD_BATCH items the caller flushes; a failed flush
 * leaves them queued, and while the store fails the next try comes
 * KOSD_BATCH items (or the timer) later, not at every item. */
static kos_rv batch_add(struct batch *b, const void *items, size_t n)
{
	bool flush;

	if (flushing)
		return KOS_E_BUSY;
	pthread_mutex_lock(&b->lock);
	if (b->n + b->inflight + n > b->max) {
		pthread_mutex_unlock(&b->lock);
		return KOS_E_BUSY;
	}
	if (!batch_room_locked(b, n)) {
		pthread_mutex_unlock(&b->lock);
		return KOS_E_NOMEM;
	}
	memcpy(b->items + b->n * b->size, items, n * b->size);
	flush = (b->n + n) / KOSD_BATCH != b->n / KOSD_BATCH;
	b->n += n;
	b->queued += n;
	pthread_mutex_unlock(&b->lock);
	if (flush)
		(void)batch_flush(b, false);
	return KOS_OK;
}

static size_t batch_pending(const struct batch *b)
{
	size_t n;

	pthread_mutex_lock((pthread_mutex_t *)&b->lock);
	n = b->n + b->inflight;
	pthread_mutex_unlock((pthread_mutex_t *)&b->lock);
	return n;
}

static void batch_committed(struct batch *b, size_t n)
{
	pthread_mutex_lock(&b->lock);
	b->queued += n;
	b->written += n;
	b->batches++;
	pthread_mutex_unlock(&b->lock);
}

static void batch_stats(const struct batch *b, uint64_t *queued, uint64_t *written,
			uint64_t *batches)
{
	/* a KMS front (--role kms) keeps no queues */
	*queued = *written = *batches = 0;
	if (b == NULL)
		return;
	pthread_mutex_lock((pthread_mutex_t *)&b->lock);
	*queued = b->queued;
	*written = b->written;
	*batches = b->batches;
	pthread_mutex_unlock((pthread_mutex_t *)&b->lock);
}

static void batch_free(struct batch *b)
{
	free(b->items);
	pthread_mutex_destroy(&b->lock);
	pthread_mutex_destroy(&b->flush_lock);
}

/* --- trust observations ------------------------------------------------- */

struct kosd_obs {
	struct batch b;
	kos_trust *tr;
	bool durable;
};

static kos_rv obs_write(void *ctx, void *items, size_t n)
{
	return kos_trust_observe_batch(ctx, items, n);
}

static void fill_rec(kos_observation_rec *rec, const char *client, const kos_observation *obs,
		     kos_usec at)
{
	memset(rec, 0, sizeof(*rec));
	/* the engine validated the name: at most 64 characters */
	strncpy(rec->client, client, sizeof(rec->client) - 1);
	rec->obs = *obs;
	rec->at = at;
}

kos_rv kosd_req_keep_obs(struct kosd_req *r, const char *client, const kos_observation *obs,
			 kos_usec at)
{
	if (!kosd_grow((void **)&r->obs, &r->cap_obs, r->n_obs + 1, sizeof(*r->obs)))
		return KOS_E_NOMEM;
	fill_rec(&r->obs[r->n_obs++], client, obs, at);
	return KOS_OK;
}

static kos_rv sink(void *arg, const char *client, const kos_observation *obs, kos_usec at)
{
	struct kosd_obs *q = arg;
	struct kosd_req *r = q->durable ? kosd_work_current() : NULL;
	kos_observation_rec rec;

	/* a worker's request commits it before answering */
	if (r != NULL && !flushing)
		return kosd_req_keep_obs(r, client, obs, at);
	/* full, or called by the flush itself: the engine writes this one */
	fill_rec(&rec, client, obs, at);
	return batch_add(&q->b, &rec, 1);
}

kos_rv kosd_obs_new(kos_trust *tr, bool durable, struct kosd_obs **out)
{
	struct kosd_obs *q = calloc(1, sizeof(*q));

	*out = NULL;
	if (q == NULL)
		return KOS_E_NOMEM;
	q->tr = tr;
	q->durable = durable;
	batch_init(&q->b, sizeof(kos_observation_rec), KOSD_OBS_MAX, obs_write, tr);
	kos_trust_set_sink(tr, sink, q);
	*out = q;
	return KOS_OK;
}

kos_rv kosd_obs_flush(struct kosd_obs *q, bool force)
{
	return q != NULL ? batch_flush(&q->b, force) : KOS_OK;
}

size_t kosd_obs_pending(const struct kosd_obs *q)
{
	return q != NULL ? batch_pending(&q->b) : 0;
}

void kosd_obs_requeue(struct kosd_obs *q, const kos_observation_rec *recs, size_t n)
{
	size_t i;

	/* one by one: what the queue cannot take the engine writes itself */
	for (i = 0; i < n; i++)
		if (batch_add(&q->b, &recs[i], 1) != KOS_OK)
			(void)kos_trust_observe_batch(q->tr, &recs[i], 1);
}

void kosd_obs_committed(struct kosd_obs *q, size_t n)
{
	batch_committed(&q->b, n);
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
	batch_free(&q->b);
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
	batch_init(&q->b, sizeof(kos_ledger_entry), KOSD_LEDGER_MAX, ledger_write, st);
	return KOS_OK;
}

bool kosd_ledger_full(const struct kosd_ledger *q)
{
	return q != NULL && batch_pending(&q->b) >= q->b.max;
}

kos_rv kosd_ledger_add(struct kosd_ledger *q, const kos_ledger_entry *e)
{
	return batch_add(&q->b, e, 1);
}

bool kosd_ledger_requeue(struct kosd_ledger *q, const kos_ledger_entry *e, size_t n)
{
	bool room;

	pthread_mutex_lock(&q->b.lock);
	/* past the cap too: these decisions were made and must be written;
	 * kosd_ledger_full then refuses new ones until they are */
	room = batch_room_locked(&q->b, n);
	if (room) {
		memcpy(q->b.items + q->b.n * q->b.size, e, n * q->b.size);
		q->b.n += n;
		q->b.queued += n;
	}
	pthread_mutex_unlock(&q->b.lock);
	return room;
}

void kosd_ledger_committed(struct kosd_ledger *q, size_t n)
{
	batch_committed(&q->b, n);
}

kos_rv kosd_ledger_flush(struct kosd_ledger *q, bool force)
{
	return q != NULL ? batch_flush(&q->b, force) : KOS_OK;
}

size_t kosd_ledger_pending(const struct kosd_ledger *q)
{
	return q != NULL ? batch_pending(&q->b) : 0;
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
	batch_free(&q->b);
	free(q);
}
