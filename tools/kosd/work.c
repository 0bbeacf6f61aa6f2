/* kosd's threads: one event loop, a pool of workers, and the group commit.
 *
 * Why a loop plus a work queue (rather than a loop per thread on
 * SO_REUSEPORT sockets): what waits in kosd is the token and the store,
 * not HTTP. A PKCS#11 call to a network HSM takes milliseconds, a store
 * transaction may wait for another process; HTTP framing, TLS records and
 * the gate take microseconds. So the loop keeps everything about
 * connections (accepting, TLS, evhttp's parsing, the gate, the connection
 * cap and per-peer budget, which are process-wide counts that one thread
 * keeps without a lock), and a request that reaches a handler is handed
 * whole to a worker: credential verification, the JSON body, the handler
 * with its token calls and store transactions. Loops per thread would
 * split those counts across threads and still block a loop per slow token
 * call. The public read-only routes (health, metrics, the CA's JWKS) are
 * answered on the loop itself, so a slow or stuck HSM never delays a
 * health check.
 *
 * A request's way: serve() (loop) -> the work queue -> a worker serves it
 * (kosd_http_work); its answer stays in the request, and what the request
 * caused for the store (its ledger entry, its trust observations; the sinks
 * find the request through kosd_work_current) stays with it -> the pending
 * group -> committed -> the answer queue -> the loop sends it
 * (kosd_http_answer). An answer thus leaves only after its decision is in
 * the store (DESIGN.md 3): kill -9 at any moment loses no answered
 * decision.
 *
 * Group commit: a worker with a finished request adds it to the pending
 * group; when no commit is running it becomes the committer and writes the
 * whole group (every request that finished meanwhile, whichever worker
 * served it), observations and ledger entries in one transaction
 * (kos_trust_commit), posts their answers, and goes on while more are pending; the
 * other workers meanwhile serve the next requests, which form the next
 * group. So one transaction serves as many requests as finish while the
 * previous one is written, and no worker waits for its own commit.
 * SQLite's WAL with synchronous=NORMAL makes a commit durable against the
 * process's death (kill -9, a crash), not against the machine's power
 * loss; listen.ledger "synced" makes the store fsync every commit
 * (kos_store_set_synced), which the group shares.
 *
 * A group whose commit fails (the store is down) is answered 503: its
 * decisions were made, so their entries go to obs.c's queues and are
 * written when the store takes them, and kosd_ledger_full then refuses new
 * decisions until it does.
 *
 * The worker count: listen.workers, else one per CPU, never more than the
 * smallest session count a token states (each worker holds at most one
 * session of a token at a time), at most KOS_LISTEN_MAX_WORKERS. */
#include "config.h"

#include "tools/kosd/kosd.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

struct kosd_work {
	struct kosd *d;
	pthread_t *threads;
	unsigned n_threads;
	bool durable;

	pthread_mutex_t lock; /* the work queue, flush and stop */
	pthread_cond_t cond;
	struct kosd_req *head, *tail;
	bool flush; /* the flush timer asked */
	bool stop;

	pthread_mutex_t commit_lock; /* the pending group, committing */
	struct kosd_req *pending, *pending_tail;
	bool committing;
	/* the committer's arrays, reused from group to group */
	kos_observation_rec *obs;
	size_t cap_obs;
	kos_ledger_entry *entries;
	size_t cap_entries;
	uint64_t groups, grouped;

	pthread_mutex_t answer_lock; /* the answers for the loop */
	struct kosd_req *answers, *answers_tail;
	struct event *ev_answers;
};

static _Thread_local struct kosd_req *current;

struct kosd_req *kosd_work_current(void)
{
	return current;
}

bool kosd_work_durable(const struct kosd *d)
{
	return !d->listen.ledger_batched;
}

bool kosd_grow(void **p, size_t *cap, size_t need, size_t size)
{
	size_t ncap = *cap ? *cap : 64;
	void *n;

	if (need <= *cap)
		return true;
	while (ncap < need)
		ncap *= 2;
	n = realloc(*p, ncap * size);
	if (n == NULL)
		return false;
	*p = n;
	*cap = ncap;
	return true;
}

kos_rv kosd_req_keep_entry(struct kosd_req *r, const kos_ledger_entry *e)
{
	if (!kosd_grow((void **)&r->entries, &r->cap_entries, r->n_entries + 1, sizeof(*e)))
		return KOS_E_NOMEM;
	r->entries[r->n_entries++] = *e;
	return KOS_OK;
}

#define QUEUE_PUSH(head, tail, r)                                                                  \
	do {                                                                                       \
		(r)->next = NULL;                                                                  \
		if ((tail) != NULL)                                                                \
			(tail)->next = (r);                                                        \
		else                                                                               \
			(head) = (r);                                                              \
		(tail) = (r);                                                                      \
	} while (0)

/* --- answers back to the loop ------------------------------------------- */

static void post_answers(struct kosd_work *w, struct kosd_req *first, struct kosd_req *last)
{
	pthread_mutex_lock(&w->answer_lock);
	if (w->answers_tail != NULL)
		w->answers_tail->next = first;
	else
		w->answers = first;
	w->answers_tail = last;
	pthread_mutex_unlock(&w->answer_lock);
	/* evthread makes this safe from any thread; several posts before the
	 * loop runs make one callback */
	event_active(w->ev_answers, EV_READ, 0);
}

static void send_answers(struct kosd_work *w)
{
	struct kosd_req *r, *next;

	pthread_mutex_lock(&w->answer_lock);
	r = w->answers;
	w->answers = w->answers_tail = NULL;
	pthread_mutex_unlock(&w->answer_lock);
	for (; r != NULL; r = next) {
		next = r->next;
		kosd_http_answer(r);
	}
}

static void on_answers(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	send_answers(arg);
}

/* --- the group commit --------------------------------------------------- */

/* Writes the group's observations and entries, committing lock not held;
 * on failure each request's answer becomes a 503 and what it caused goes
 * to the queues. */
static void commit_group(struct kosd_work *w, struct kosd_req *group)
{
	struct kosd *d = w->d;
	struct kosd_req *r;
	size_t n_obs = 0, n_entries = 0, n = 0;

	for (r = group; r != NULL; r = r->next) {
		n_obs += r->n_obs;
		n_entries += r->n_entries;
		n++;
	}
	if (!kosd_grow((void **)&w->obs, &w->cap_obs, n_obs, sizeof(*w->obs)) ||
	    !kosd_grow((void **)&w->entries, &w->cap_entries, n_entries, sizeof(*w->entries))) {
		kosd_log(d, "group commit: out of memory");
		goto failed;
	}
	n_obs = n_entries = 0;
	for (r = group; r != NULL; r = r->next) {
		if (r->n_obs > 0)
			memcpy(w->obs + n_obs, r->obs, r->n_obs * sizeof(*r->obs));
		if (r->n_entries > 0)
			memcpy(w->entries + n_entries, r->entries,
			       r->n_entries * sizeof(*r->entries));
		n_obs += r->n_obs;
		n_entries += r->n_entries;
	}
	/* the observations and the entries in one transaction (the trust
	 * engine's store is d->store): all of them or none */
	if (kos_trust_commit(d->trust, w->obs, n_obs, w->entries, n_entries) != KOS_OK) {
		kosd_log(d, "group commit: writing %zu trust observations and %zu ledger entries "
			    "failed (kept for the next try; their requests are answered 503): %s",
			 n_obs, n_entries, kos_last_error());
		goto failed;
	}
	if (n_obs > 0)
		kosd_obs_committed(d->obs, n_obs);
	if (n_entries > 0)
		kosd_ledger_committed(d->ledger, n_entries);
	w->groups++;
	w->grouped += n;
	return;
failed:
	for (r = group; r != NULL; r = r->next)
		if (r->n_obs > 0)
			kosd_obs_requeue(d->obs, r->obs, r->n_obs);
	for (r = group; r != NULL; r = r->next) {
		if (r->n_entries > 0 && !kosd_ledger_requeue(d->ledger, r->entries, r->n_entries))
			kosd_log(d, "out of memory: %zu ledger entries of %s are lost",
				 r->n_entries, r->route->name);
		kosd_http_unrecorded(r);
	}
}

/* r is served: it joins the pending group, and this worker commits while
 * no other does. */
static void finished(struct kosd_work *w, struct kosd_req *r)
{
	struct kosd_req *group, *last;

	if (!w->durable || (r->n_entries == 0 && r->n_obs == 0)) {
		post_answers(w, r, r);
		return;
	}
	pthread_mutex_lock(&w->commit_lock);
	QUEUE_PUSH(w->pending, w->pending_tail, r);
	if (w->committing) {
		pthread_mutex_unlock(&w->commit_lock);
		return;
	}
	w->committing = true;
	while (w->pending != NULL) {
		group = w->pending;
		last = w->pending_tail;
		w->pending = w->pending_tail = NULL;
		pthread_mutex_unlock(&w->commit_lock);
		commit_group(w, group);
		post_answers(w, group, last);
		pthread_mutex_lock(&w->commit_lock);
	}
	w->committing = false;
	pthread_mutex_unlock(&w->commit_lock);
}

/* --- the workers -------------------------------------------------------- */

/* The flush timer's work (kosd.c's on_flush did it on the loop before). */
static void flush_queues(struct kosd *d)
{
	kos_rv rv;

	if (d->obs == NULL)
		return;
	/* once a minute: with a million clients about a second on this worker,
	 * which no request waits for */
	kos_ca_threat_tick(d->ca);
	rv = kosd_obs_flush(d->obs, false);
	if (rv != KOS_OK)
		kosd_log(d, "writing %zu trust observations failed (kept for the next try): %s",
			 kosd_obs_pending(d->obs), kos_last_error());
	kosd_sources_flush(d, false);
	rv = kosd_ledger_flush(d->ledger, false);
	if (rv != KOS_OK)
		kosd_log(d, "writing %zu ledger entries failed (kept for the next try): %s",
			 kosd_ledger_pending(d->ledger), kos_last_error());
}

static void *worker(void *arg)
{
	struct kosd_work *w = arg;
	struct kosd_req *r;
	bool flush;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (w->head == NULL && !w->flush && !w->stop)
			pthread_cond_wait(&w->cond, &w->lock);
		if (w->head == NULL && !w->flush)
			break; /* stopping, and nothing is left */
		flush = w->flush;
		w->flush = false;
		r = w->head;
		if (r != NULL) {
			w->head = r->next;
			if (w->head == NULL)
				w->tail = NULL;
			/* the link is reused by the answer list: a request posted
			 * alone must not carry the queue's next one with it */
			r->next = NULL;
		}
		pthread_mutex_unlock(&w->lock);
		if (flush)
			flush_queues(w->d);
		if (r != NULL) {
			current = r;
			kosd_http_work(r);
			current = NULL;
			finished(w, r);
		}
		pthread_mutex_lock(&w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

void kosd_work_submit(struct kosd *d, struct kosd_req *r)
{
	struct kosd_work *w = d->work;

	pthread_mutex_lock(&w->lock);
	QUEUE_PUSH(w->head, w->tail, r);
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

void kosd_work_flush(struct kosd *d)
{
	struct kosd_work *w = d->work;

	if (w == NULL)
		return;
	pthread_mutex_lock(&w->lock);
	w->flush = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

void kosd_work_stats(const struct kosd *d, uint64_t *groups, uint64_t *requests)
{
	struct kosd_work *w = d->work;

	*groups = *requests = 0;
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->commit_lock);
	*groups = w->groups;
	*requests = w->grouped;
	pthread_mutex_unlock(&w->commit_lock);
}

/* listen.workers, else one per CPU; capped by the tokens' sessions. */
static unsigned worker_count(struct kosd *d, unsigned long *cap_out)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned long n = d->listen.workers, cap = 0, m;
	size_t i;

	if (n == 0)
		n = cpus > 0 ? (unsigned long)cpus : 1;
	for (i = 0; d->hsm != NULL && i < kos_hsm_token_count(d->hsm); i++) {
		m = kos_hsm_token_max_sessions(d->hsm, i);
		if (m > 0 && (cap == 0 || m < cap))
			cap = m;
	}
	*cap_out = cap;
	if (cap > 0 && n > cap)
		n = cap;
	if (n > KOS_LISTEN_MAX_WORKERS)
		n = KOS_LISTEN_MAX_WORKERS;
	return n > 0 ? (unsigned)n : 1;
}

int kosd_work_start(struct kosd *d)
{
	struct kosd_work *w = calloc(1, sizeof(*w));
	const char *answers;
	unsigned long cap = 0;
	unsigned n, i;

	if (w == NULL) {
		kosd_log(d, "out of memory");
		return -1;
	}
	d->work = w;
	w->d = d;
	w->durable = kosd_work_durable(d) && d->ledger != NULL;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	pthread_mutex_init(&w->commit_lock, NULL);
	pthread_mutex_init(&w->answer_lock, NULL);
	w->ev_answers = event_new(d->base, -1, 0, on_answers, w);
	n = worker_count(d, &cap);
	w->threads = calloc(n, sizeof(*w->threads));
	if (w->ev_answers == NULL || w->threads == NULL) {
		kosd_log(d, "out of memory");
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (pthread_create(&w->threads[i], NULL, worker, w) != 0) {
			kosd_log(d, "cannot start worker thread %u", i + 1);
			break;
		}
		w->n_threads++;
	}
	d->workers = w->n_threads;
	if (w->n_threads == 0)
		return -1;
	if (!w->durable)
		answers = "leave before their ledger entries are written (batched)";
	else if (d->synced)
		answers = "wait for their ledger entries on disk (group commit, synced)";
	else
		answers = "wait for their ledger entries (group commit)";
	kosd_log(d, "%u worker thread%s%s; answers %s", w->n_threads, w->n_threads == 1 ? "" : "s",
		 cap > 0 && d->listen.workers > cap ? " (capped by the tokens' sessions)" : "",
		 answers);
	return 0;
}

void kosd_work_stop(struct kosd *d)
{
	struct kosd_work *w = d->work;
	unsigned i;

	if (w == NULL)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	for (i = 0; i < w->n_threads; i++)
		pthread_join(w->threads[i], NULL);
	/* every request handed out is answered now, committed or not */
	if (w->ev_answers != NULL) {
		send_answers(w);
		event_free(w->ev_answers);
	}
	free(w->threads);
	free(w->obs);
	free(w->entries);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->commit_lock);
	pthread_mutex_destroy(&w->answer_lock);
	free(w);
	d->work = NULL;
	d->workers = 0;
}
