/* kosd's HTTP API for the benchmarks: connections, start-up, client threads. */
#include "config.h"

#include "tests/bench/http.h"
#include "tests/bench/bench.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

static size_t on_data(char *data, size_t size, size_t nmemb, void *arg)
{
	struct bench_conn *c = arg;
	size_t len = size * nmemb;

	if (c->n + len + 1 > c->cap) {
		size_t ncap = (c->n + len + 1) * 2;
		char *np = realloc(c->answer, ncap);

		if (np == NULL)
			return 0;
		c->answer = np;
		c->cap = ncap;
	}
	memcpy(c->answer + c->n, data, len);
	c->n += len;
	c->answer[c->n] = '\0';
	return len;
}

int bench_conn_open(struct bench_conn *c, const char *sock, const char *cred)
{
	char auth[4096];

	memset(c, 0, sizeof(*c));
	c->h = curl_easy_init();
	if (c->h == NULL)
		return -1;
	if (cred != NULL) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", cred);
		c->hdrs = curl_slist_append(c->hdrs, auth);
		OPENSSL_cleanse(auth, sizeof(auth));
	}
	c->hdrs = curl_slist_append(c->hdrs, "Content-Type: application/json");
	c->hdrs = curl_slist_append(c->hdrs, "Expect:");
	if (c->hdrs == NULL)
		return -1;
	curl_easy_setopt(c->h, CURLOPT_UNIX_SOCKET_PATH, sock);
	curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->hdrs);
	curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c->h, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(c->h, CURLOPT_TIMEOUT, 20L);
	curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
	return 0;
}

void bench_conn_close(struct bench_conn *c)
{
	curl_easy_cleanup(c->h);
	curl_slist_free_all(c->hdrs);
	free(c->answer);
	memset(c, 0, sizeof(*c));
}

long bench_conn_call(struct bench_conn *c, const char *path, const char *body)
{
	char url[256];
	long status = 0;

	snprintf(url, sizeof(url), "http://kos%s", path);
	c->n = 0;
	if (c->answer != NULL)
		c->answer[0] = '\0';
	curl_easy_setopt(c->h, CURLOPT_URL, url);
	if (body != NULL) {
		curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	} else {
		curl_easy_setopt(c->h, CURLOPT_HTTPGET, 1L);
	}
	if (curl_easy_perform(c->h) != CURLE_OK)
		return 0;
	curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
	return status;
}

/* --- kosd --------------------------------------------------------------- */

static int kosd_healthy(const void *sock)
{
	struct bench_conn c;
	long status = 0;

	if (bench_conn_open(&c, sock, NULL) == 0) {
		curl_easy_setopt(c.h, CURLOPT_TIMEOUT, 2L);
		status = bench_conn_call(&c, "/v1/health", NULL);
	}
	bench_conn_close(&c);
	return status == 200;
}

pid_t bench_kosd_start(const char *kosd, const char *conf, const char *sock, const char *log,
		       int cpu)
{
	char *argv[] = {(char *)kosd, "--config", (char *)conf, NULL};
	pid_t pid = bench_spawn_on(argv, log, cpu);

	if (pid < 0)
		return -1;
	if (bench_wait(pid, kosd_healthy, sock) != 0) {
		/* reaped when it exited; stopped when it never answered */
		bench_stop(&pid);
		return -1;
	}
	return pid;
}

char *bench_b64(const uint8_t *p, size_t n)
{
	char *s = malloc(4 * ((n + 2) / 3) + 1);

	if (s != NULL)
		EVP_EncodeBlock((unsigned char *)s, p, (int)n);
	return s;
}

/* a client with its own credential and keep-alive connection */
static int kosd_open(const struct bench_workload *w, int idx, void **state)
{
	struct bench_conn *c = calloc(1, sizeof(*c));

	*state = c;
	if (c == NULL || bench_conn_open(c, w->sock, w->creds[idx]) != 0)
		return -1;
	/* the connection is made before the clock starts: keep-alive */
	return bench_conn_call(c, w->path, w->body) == 200 ? 0 : -1;
}

static int kosd_op(const struct bench_workload *w, void *state, char *err, size_t errlen)
{
	struct bench_conn *c = state;
	long status = bench_conn_call(c, w->path, w->body);

	if (status == 200 && c->answer != NULL && strstr(c->answer, w->want) != NULL)
		return 0;
	snprintf(err, errlen, "status %ld: %.150s", status, c->answer != NULL ? c->answer : "");
	return -1;
}

static void kosd_close(void *state)
{
	if (state != NULL)
		bench_conn_close(state);
	free(state);
}

struct bench_workload bench_kosd_workload(const char *sock, char *const *creds, const char *path,
					  const char *body, const char *want)
{
	struct bench_workload w = {.open = kosd_open,
				   .op = kosd_op,
				   .close = kosd_close,
				   .sock = sock,
				   .creds = creds,
				   .path = path,
				   .body = body,
				   .want = want};

	return w;
}

/* --- concurrent clients --------------------------------------------------- */

struct client {
	const struct bench_workload *w;
	int idx;
	pthread_barrier_t *start;
	double end;
	double *lat;
	size_t n, cap;
	int failed;
	char error[200];
};

static void *client_main(void *arg)
{
	struct client *cl = arg;
	void *state = NULL;
	double t0, t1;

	if (cl->w->open(cl->w, cl->idx, &state) != 0) {
		cl->failed = 1;
		snprintf(cl->error, sizeof(cl->error), "could not connect");
		pthread_barrier_wait(cl->start);
		cl->w->close(state);
		return NULL;
	}
	pthread_barrier_wait(cl->start);
	t0 = bench_now();
	while (t0 < cl->end) {
		if (cl->w->op(cl->w, state, cl->error, sizeof(cl->error)) != 0)
			goto fail;
		t1 = bench_now();
		if (cl->n == cl->cap) {
			size_t ncap = cl->cap ? cl->cap * 2 : 4096;
			double *nl = realloc(cl->lat, ncap * sizeof(*nl));

			if (nl == NULL)
				goto fail;
			cl->lat = nl;
			cl->cap = ncap;
		}
		cl->lat[cl->n++] = t1 - t0;
		t0 = t1;
	}
	cl->w->close(state);
	return NULL;
fail:
	cl->failed = 1;
	cl->w->close(state);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

struct bench_figures bench_figures_of(double *lat, size_t n, double seconds)
{
	struct bench_figures f = {0, 0, 0, n, 0};

	qsort(lat, n, sizeof(*lat), cmp_double);
	if (seconds > 0)
		f.rate = (double)n / seconds;
	if (n > 0) {
		f.p50 = lat[n / 2];
		f.p99 = lat[n * 99 / 100];
		f.max = lat[n - 1];
	}
	return f;
}

struct bench_figures bench_run_clients(int n, const struct bench_workload *w, double seconds,
				       const char *what)
{
	struct client *cl = calloc((size_t)n, sizeof(*cl));
	pthread_t *th = calloc((size_t)n, sizeof(*th));
	pthread_barrier_t start_barrier;
	struct bench_figures fig;
	double start, end, *all;
	size_t total = 0, k = 0;
	int i;

	if (cl == NULL || th == NULL) {
		fprintf(stderr, "bench: out of memory\n");
		exit(1);
	}
	pthread_barrier_init(&start_barrier, NULL, (unsigned)n + 1);
	/* set before the barrier releases the clients; the connections are
	 * made in the first 50 ms */
	end = bench_now() + 0.05 + seconds;
	for (i = 0; i < n; i++) {
		cl[i].w = w;
		cl[i].idx = i;
		cl[i].start = &start_barrier;
		cl[i].end = end;
		if (pthread_create(&th[i], NULL, client_main, &cl[i]) != 0) {
			fprintf(stderr, "bench: pthread_create failed\n");
			exit(1);
		}
	}
	pthread_barrier_wait(&start_barrier);
	start = bench_now();
	for (i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	end = bench_now();
	for (i = 0; i < n; i++) {
		if (cl[i].failed) {
			fprintf(stderr, "bench: %s failed: %s\n", what, cl[i].error);
			exit(1);
		}
		total += cl[i].n;
	}
	all = malloc((total ? total : 1) * sizeof(*all));
	if (all == NULL) {
		fprintf(stderr, "bench: out of memory\n");
		exit(1);
	}
	for (i = 0; i < n; i++) {
		memcpy(all + k, cl[i].lat, cl[i].n * sizeof(*all));
		k += cl[i].n;
		free(cl[i].lat);
	}
	fig = bench_figures_of(all, total, end - start);
	free(all);
	pthread_barrier_destroy(&start_barrier);
	free(th);
	free(cl);
	return fig;
}
