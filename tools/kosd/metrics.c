/* kosd's metrics in the Prometheus text format: requests by route and
 * status, a latency histogram, decisions by tier and delivery, and the
 * observation queue. */
#include "config.h"

#include "tools/kosd/kosd.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

static const int statuses[] = { 200, 400, 401, 403, 404, 405, 409, 413, 422, 500, 503 };
#define N_STATUS (sizeof(statuses) / sizeof(statuses[0]) + 1) /* + "other" */

static const double buckets[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
				  0.05,	  0.1,	 0.25,	 0.5,	1.0,  2.5 };
#define N_BUCKETS (sizeof(buckets) / sizeof(buckets[0]))

static const char *const delivery_names[] = { "refused", "dek", "shares", "server" };

struct kosd_metrics {
	uint64_t (*requests)[N_STATUS]; /* by route id (kosd_routes) */
	uint64_t hist[N_BUCKETS]; /* non-cumulative: the first bucket that holds it */
	uint64_t count;
	double sum;
	/* tier x delivery: counted by the workers' handlers, read by the loop;
	 * everything above is the loop's alone */
	_Atomic uint64_t decisions[4][4];
};

struct kosd_metrics *kosd_metrics_new(void)
{
	struct kosd_metrics *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	m->requests = calloc(kosd_n_routes, sizeof(*m->requests));
	if (m->requests == NULL) {
		free(m);
		return NULL;
	}
	return m;
}

void kosd_metrics_free(struct kosd_metrics *m)
{
	if (m == NULL)
		return;
	free(m->requests);
	free(m);
}

void kosd_metrics_request(struct kosd_metrics *m, const struct kosd_route *route, int status,
			  double seconds)
{
	/* every request's route is a row of kosd_routes, the unknown one at
	 * least */
	size_t i, s = N_STATUS - 1, id = route != NULL ? (size_t)(route - kosd_routes) : 0;

	for (i = 0; i < N_STATUS - 1; i++)
		if (statuses[i] == status)
			s = i;
	m->requests[id][s]++;
	for (i = 0; i < N_BUCKETS; i++) {
		if (seconds <= buckets[i]) {
			m->hist[i]++;
			break;
		}
	}
	m->count++;
	m->sum += seconds;
}

void kosd_metrics_decision(struct kosd_metrics *m, kos_tier tier, kos_delivery delivery)
{
	if ((unsigned)tier < 4 && (unsigned)delivery < 4)
		atomic_fetch_add_explicit(&m->decisions[tier][delivery], 1, memory_order_relaxed);
}

char *kosd_metrics_render(struct kosd *d)
{
	struct kosd_metrics *m = d->metrics;
	uint64_t cum = 0, queued, written, batches;
	char *buf = NULL;
	size_t len = 0, r, s, i;
	FILE *f = open_memstream(&buf, &len);

	if (f == NULL)
		return NULL;
	fputs("# HELP kosd_requests_total HTTP requests by route and status.\n"
	      "# TYPE kosd_requests_total counter\n",
	      f);
	for (r = 0; r < kosd_n_routes; r++) {
		for (s = 0; s < N_STATUS; s++) {
			char code[8];

			if (m->requests[r][s] == 0)
				continue;
			if (s < N_STATUS - 1)
				snprintf(code, sizeof(code), "%d", statuses[s]);
			else
				snprintf(code, sizeof(code), "other");
			fprintf(f, "kosd_requests_total{route=\"%s\",status=\"%s\"} %llu\n",
				kosd_routes[r].name, code,
				(unsigned long long)m->requests[r][s]);
		}
	}
	fputs("# HELP kosd_request_duration_seconds Time from routing to the answer.\n"
	      "# TYPE kosd_request_duration_seconds histogram\n",
	      f);
	for (i = 0; i < N_BUCKETS; i++) {
		cum += m->hist[i];
		fprintf(f, "kosd_request_duration_seconds_bucket{le=\"%g\"} %llu\n", buckets[i],
			(unsigned long long)cum);
	}
	fprintf(f, "kosd_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
		(unsigned long long)m->count);
	fprintf(f, "kosd_request_duration_seconds_sum %.6f\n", m->sum);
	fprintf(f, "kosd_request_duration_seconds_count %llu\n", (unsigned long long)m->count);
	fputs("# HELP kosd_decisions_total Key decisions by trust tier and delivery.\n"
	      "# TYPE kosd_decisions_total counter\n",
	      f);
	for (r = 0; r < 4; r++)
		for (s = 0; s < 4; s++)
			fprintf(f, "kosd_decisions_total{tier=\"%s\",delivery=\"%s\"} %llu\n",
				kos_tier_name((kos_tier)r), delivery_names[s],
				(unsigned long long)atomic_load_explicit(&m->decisions[r][s],
									 memory_order_relaxed));
	kosd_obs_stats(d->obs, &queued, &written, &batches);
	fprintf(f,
		"# HELP kosd_observations_queued_total Trust observations queued.\n"
		"# TYPE kosd_observations_queued_total counter\n"
		"kosd_observations_queued_total %llu\n"
		"# HELP kosd_observations_written_total Queued observations written to the store.\n"
		"# TYPE kosd_observations_written_total counter\n"
		"kosd_observations_written_total %llu\n"
		"# HELP kosd_observation_batches_total Store transactions that wrote them.\n"
		"# TYPE kosd_observation_batches_total counter\n"
		"kosd_observation_batches_total %llu\n"
		"# HELP kosd_connections Open connections, counted against the cap.\n"
		"# TYPE kosd_connections gauge\n"
		"kosd_connections %zu\n"
		"# HELP kosd_connections_refused_total Connections refused at the cap.\n"
		"# TYPE kosd_connections_refused_total counter\n"
		"kosd_connections_refused_total %llu\n"
		"# HELP kosd_connections_expired_total Connections closed at the request deadline.\n"
		"# TYPE kosd_connections_expired_total counter\n"
		"kosd_connections_expired_total %llu\n",
		(unsigned long long)queued, (unsigned long long)written,
		(unsigned long long)batches, d->n_conns, (unsigned long long)d->conns_refused,
		(unsigned long long)d->conns_expired);
	kosd_ledger_stats(d->ledger, &queued, &written, &batches);
	fprintf(f,
		"# HELP kosd_ledger_entries_queued_total Decisions queued for the ledger.\n"
		"# TYPE kosd_ledger_entries_queued_total counter\n"
		"kosd_ledger_entries_queued_total %llu\n"
		"# HELP kosd_ledger_entries_written_total Queued decisions written to the ledger.\n"
		"# TYPE kosd_ledger_entries_written_total counter\n"
		"kosd_ledger_entries_written_total %llu\n"
		"# HELP kosd_ledger_batches_total Store transactions that wrote them.\n"
		"# TYPE kosd_ledger_batches_total counter\n"
		"kosd_ledger_batches_total %llu\n",
		(unsigned long long)queued, (unsigned long long)written,
		(unsigned long long)batches);
	kosd_work_stats(d, &batches, &queued);
	fprintf(f,
		"# HELP kosd_workers Worker threads serving requests.\n"
		"# TYPE kosd_workers gauge\n"
		"kosd_workers %u\n"
		"# HELP kosd_group_commits_total Group commits: requests' decisions committed "
		"together before their answers left.\n"
		"# TYPE kosd_group_commits_total counter\n"
		"kosd_group_commits_total %llu\n"
		"# HELP kosd_group_commit_requests_total Requests those commits carried.\n"
		"# TYPE kosd_group_commit_requests_total counter\n"
		"kosd_group_commit_requests_total %llu\n",
		d->workers, (unsigned long long)batches, (unsigned long long)queued);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}
