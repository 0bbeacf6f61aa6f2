/* kosd's HTTP API for the benchmarks: keep-alive connections over its Unix
 * socket (libcurl), kosd started and waited for until it answers, and
 * client threads that each repeat one operation for a fixed time.
 * A struct bench_conn belongs to one thread at a time; call
 * curl_global_init() before the first. */
#ifndef KOS_BENCH_HTTP_H
#define KOS_BENCH_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <curl/curl.h>

struct bench_conn {
	CURL *h;
	struct curl_slist *hdrs;
	char *answer; /* the last answer's body, NUL-terminated */
	size_t n, cap;
};

/* A connection to kosd's socket sock, sending cred (NULL: none) as its
 * bearer credential; 0, or -1 (close it all the same). */
int bench_conn_open(struct bench_conn *c, const char *sock, const char *cred);
void bench_conn_close(struct bench_conn *c);
/* One request (a GET when body is NULL, else a POST of JSON); the HTTP
 * status, 0 when no answer came. */
long bench_conn_call(struct bench_conn *c, const char *path, const char *body);

/* Starts `kosd --config conf` on CPU cpu (< 0: anywhere) with its output
 * appended to log, and waits up to 10 s until it answers GET /v1/health on
 * sock; its pid, or -1 when it exited first or never answered (its log says
 * why). */
pid_t bench_kosd_start(const char *kosd, const char *conf, const char *sock, const char *log,
		       int cpu);

/* base64 of p (malloc'd), or NULL. */
char *bench_b64(const uint8_t *p, size_t n);

/* What each client thread does: opens its own connection or session before
 * the clock starts, then repeats one operation until the time is up. */
struct bench_workload {
	int (*open)(const struct bench_workload *w, int idx, void **state);
	/* 0 when the operation succeeded; else a reason in err */
	int (*op)(const struct bench_workload *w, void *state, char *err, size_t errlen);
	void (*close)(void *state);
	/* kosd: its socket, one credential per client, the request and a
	 * substring every answer holds */
	const char *sock;
	char *const *creds;
	const char *path, *body, *want;
	/* the open function's, for other workloads */
	void *arg;
};

/* A kosd workload (bench_workload's kosd members set, arg NULL): client i
 * sends creds[i] on a keep-alive connection of its own. */
struct bench_workload bench_kosd_workload(const char *sock, char *const *creds, const char *path,
					  const char *body, const char *want);

struct bench_figures {
	double rate;	 /* operations per second, over all clients */
	double p50, p99; /* seconds per operation */
	size_t n;	 /* operations made */
	double max;	 /* the slowest operation, seconds */
};

/* The figures of n latencies (sorted here) made in seconds. */
struct bench_figures bench_figures_of(double *lat, size_t n, double seconds);

/* n client threads run w for seconds. Exits with a message naming what on
 * any failure: a figure of errors is none. */
struct bench_figures bench_run_clients(int n, const struct bench_workload *w, double seconds,
				       const char *what);

#endif
