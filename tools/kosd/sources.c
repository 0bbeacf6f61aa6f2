/* Unauthenticated senders. Only authenticated actions of a client are
 * observations of that client (DESIGN.md 3): a request that names a client
 * without proving to be it (a replayed enrollment secret, a forged
 * credential) tells nothing about that client, and everything about the
 * sender. So what nobody authenticated counts against its source (the Unix
 * peer's uid, or the TLS peer's address), in windows of
 * KOSD_SOURCE_WINDOW seconds:
 * - the ledger gets one entry per source per window (action
 *   "unauthenticated", the source as resource, "N refused, last: REASON on
 *   ROUTE" as reason),
 *   written when the window ends, so a flood of probes cannot grow the
 *   ledger faster than one entry per source and window;
 * - past KOSD_SOURCE_MAX_FAILURES in a window, enrollment from the source
 *   is refused (429) without trying the secret, until the window ends.
 * At most KOSD_SOURCE_MAX sources are tracked; beyond that they share one
 * record named "other", so memory stays bounded whatever the senders.
 * The records are shared by the worker threads: d->sources_lock guards
 * them (the ledger entries themselves go to the batch queue). */
#include "config.h"

#include "tools/kosd/kosd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct kosd_source {
	char name[64];
	double start; /* monotonic seconds */
	uint64_t failures;
	char route[KOS_LEDGER_ACTION_MAX + 1];
	char reason[KOS_LEDGER_REASON_MAX + 1];
	struct kosd_source *next;
};

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct kosd_source *find(struct kosd *d, const char *name, bool make)
{
	struct kosd_source *s;

	for (s = d->sources; s != NULL; s = s->next)
		if (strcmp(s->name, name) == 0)
			return s;
	if (!make)
		return NULL;
	/* "other" itself may be the one record beyond the limit */
	if (d->n_sources >= KOSD_SOURCE_MAX && strcmp(name, "other") != 0)
		return find(d, "other", true);
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->start = mono();
	s->next = d->sources;
	d->sources = s;
	d->n_sources++;
	return s;
}

bool kosd_source_blocked(struct kosd *d, const char *source)
{
	struct kosd_source *s;
	bool blocked;

	pthread_mutex_lock(&d->sources_lock);
	s = find(d, source, false);
	if (s == NULL && d->n_sources >= KOSD_SOURCE_MAX)
		s = find(d, "other", false);
	blocked = s != NULL && mono() - s->start < KOSD_SOURCE_WINDOW &&
		  s->failures >= KOSD_SOURCE_MAX_FAILURES;
	pthread_mutex_unlock(&d->sources_lock);
	return blocked;
}

/* The window's entry: the source as the resource, the count and the last
 * reason; 0 failures write nothing. */
static void write_entry(struct kosd *d, struct kosd_source *s)
{
	/* cut to the field by kos_ledger_entry_init */
	char reason[KOS_LEDGER_REASON_MAX + KOS_LEDGER_ACTION_MAX + 64];

	if (s->failures == 0)
		return;
	snprintf(reason, sizeof(reason), "%llu refused, last: %s on %s",
		 (unsigned long long)s->failures, s->reason, s->route);
	if (kos_pipeline_record(d->pipeline, "-", "unauthenticated", s->name, "-", "refused", reason,
				"-") != KOS_OK)
		kosd_log(d, "ledger: could not queue the refusals of %s", s->name);
	s->failures = 0;
}

void kosd_source_failed(struct kosd *d, const char *source, const char *route, const char *reason)
{
	struct kosd_source *s;
	double now = mono();

	if (d->pipeline == NULL)
		return;
	pthread_mutex_lock(&d->sources_lock);
	s = find(d, source, true);
	if (s == NULL) {
		pthread_mutex_unlock(&d->sources_lock);
		kosd_log(d, "out of memory: a refusal of %s is not recorded", source);
		return;
	}
	if (now - s->start >= KOSD_SOURCE_WINDOW) {
		write_entry(d, s);
		s->start = now;
	}
	s->failures++;
	snprintf(s->route, sizeof(s->route), "%s", route);
	snprintf(s->reason, sizeof(s->reason), "%s", reason[0] != '\0' ? reason : "refused");
	pthread_mutex_unlock(&d->sources_lock);
}

void kosd_sources_flush(struct kosd *d, bool all)
{
	struct kosd_source **pp, *s;
	double now = mono();

	pthread_mutex_lock(&d->sources_lock);
	pp = &d->sources;
	while ((s = *pp) != NULL) {
		if (all || now - s->start >= KOSD_SOURCE_WINDOW) {
			write_entry(d, s);
			/* an ended window is forgotten: a quiet source costs nothing */
			*pp = s->next;
			d->n_sources--;
			free(s);
			continue;
		}
		pp = &s->next;
	}
	pthread_mutex_unlock(&d->sources_lock);
}
