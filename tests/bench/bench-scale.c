/* kosd at scale, each figure beside a baseline or bound of the same run
 * (usage: bench-scale POLICY KOSD SLOWHSM.SO):
 *  1. a slow HSM: the signer token behind slowhsm.so at 2 ms per C_Sign,
 *     32 clients signing P-256 through kosd: signatures per second against
 *     the bound (signer sessions / 2 ms, a session per worker; goal >= 0.8x),
 *     and the latency of GET /v1/health probed every 10 ms meanwhile
 *     (goal: p99 within the probe interval, 10 ms);
 *  2. kosd's own CPU per request, kosd on one CPU and its client on the
 *     other: utime + stime of kosd (/proc/PID/stat) per server-side decrypt
 *     of 1 KiB with a cached data key (goal <= 20 us), and per P-256
 *     signature, where SoftHSM's C_Sign runs inside kosd: its CPU, measured
 *     in this process, is taken off (goal: <= 20 us beyond it);
 *  3. group commit: 8 clients decrypting with ledger = "durable" against
 *     ledger = "batched" (goal >= 0.8x), and "synced" (every commit
 *     fsynced) against "durable" (a figure);
 *  4. the size of the state: with 1,000 and with 1,000,000 clients in the
 *     store (registered, each with a trust record), and with 1,000,000
 *     revoked credentials, the rate of authenticated server-side decrypts
 *     and of credential checks (GET /v1/keys) against the small store
 *     (goal >= 0.8x), of credential refreshes (a figure), and kosd's VmRSS
 *     and VmHWM. The stores are filled
 *     before kosd starts: trust records through the trust engine's batch,
 *     registrations and revocations by SQL into the tables
 *     kos/store_sqlite.c made, 100,000 rows per transaction.
 * (1) runs once per listen.workers count of KOS_BENCH_WORKERS (default
 * "2,4,8,16"); KOS_BENCH_LEDGER=0 leaves (3) out; a kosd that refuses the
 * setting is measured without it, and says so. KOS_BENCH_SCALE sets the large count of (4);
 * KOS_BENCH_KEEP=1 keeps the directory (kosd's logs) for a look after;
 * KOS_BENCH_BASELINE_KOSD=PATH adds to (3) another kosd (an older build:
 * the asynchronous batching the durable ledger replaced), started on the
 * same store without a ledger setting.
 * Figures, never assertions: the run fails only when an operation does. */
#include "config.h"

#include "kos/devinit.h"
#include "kos/hsm.h"
#include "kos/internal.h"
#include "tests/bench/bench.h"
#include "tests/bench/http.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#define DEK	   "bench"
#define SIGN_KEY   "bench-ec"
#define SIGN_LABEL "kos-sign:" SIGN_KEY ":1" /* its object on the signer token */

#define SLOW_CLIENTS	32
#define SLOW_DELAY_US	2000
#define SLOW_SECONDS	3.0
#define PROBE_INTERVAL	0.010
#define MAX_WORKER_RUNS 8
#define DEFAULT_WORKERS "2,4,8,16"

#define CPU_SECONDS	2.0
#define COMMIT_CLIENTS	8
#define COMMIT_SECONDS	2.0
#define SCALE_CLIENTS	8
#define SCALE_SECONDS	1.5
#define SCALE_ROUNDS	2
#define SCALE_SMALL	1000
#define SCALE_LARGE	1000000
#define FILL_TXN	100000

/* the clients of each measurement, so that one's traffic (the anomaly
 * factor counts requests a minute) never lowers another's trust */
enum group { G_SLOW, G_CPU, G_COMMIT, G_SCALE, G_COUNT };
static const struct {
	const char *prefix;
	int n;
	const char *scope;
} groups[G_COUNT] = {
    [G_SLOW] = {"slow", SLOW_CLIENTS, "sign:" SIGN_KEY},
    [G_CPU] = {"cpu", COMMIT_CLIENTS, "decrypt:" DEK " sign:" SIGN_KEY},
    [G_COMMIT] = {"commit", COMMIT_CLIENTS, "decrypt:" DEK},
    [G_SCALE] = {"scale", SCALE_CLIENTS, "decrypt:" DEK " sign:" SIGN_KEY},
};

_Static_assert(SLOW_CLIENTS >= COMMIT_CLIENTS && SLOW_CLIENTS >= SCALE_CLIENTS,
	       "creds[] holds the largest group");

static char dir[] = "/tmp/kos-bench-scale-XXXXXX";
static char inst[128], state_db[200];
static const char *kosd_path, *slowhsm_path;
static char *creds[G_COUNT][SLOW_CLIENTS];
static char *dec_body, *sign_body, *pt64;
static pid_t kosd_pid[3] = {-1, -1, -1};
static int n_bench_clients;

static void cleanup(void)
{
	char cmd[200];

	for (int i = 0; i < 3; i++)
		bench_stop(&kosd_pid[i]);
	if (getenv("KOS_BENCH_KEEP") != NULL && strcmp(getenv("KOS_BENCH_KEEP"), "1") == 0) {
		fprintf(stderr, "bench: kept %s\n", dir);
		return;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench: could not remove %s\n", dir);
}

static void die(const char *what)
{
	fprintf(stderr, "bench: %s\n", what);
	exit(1);
}

static void die_kos(const char *what)
{
	fprintf(stderr, "bench: %s: %s\n", what, kos_last_error());
	exit(1);
}

/* --- kos.conf and kosd ------------------------------------------------- */

/* inst/NAME from inst/kos.conf with kosd's socket at inst/SOCK, the state
 * store at store (NULL: the same), the signer token's module (NULL: the
 * same) and extra settings of listen (NULL: none). */
static void write_conf(const char *name, const char *sock, const char *store, const char *signer,
		       const char *listen_extra)
{
	char src[200], dst[200], e[3][2][400];
	const char *edits[3][2];
	size_t n = 0;

	snprintf(src, sizeof(src), "%s/kos.conf", inst);
	snprintf(dst, sizeof(dst), "%s/%s", inst, name);
	snprintf(e[n][0], sizeof(e[n][0]),
		 "listen = { unix = \"kosd.sock\"; unix_mode = \"0660\";");
	snprintf(e[n][1], sizeof(e[n][1]), "listen = { unix = \"%s\"; unix_mode = \"0660\";%s%s",
		 sock, listen_extra != NULL ? " " : "", listen_extra != NULL ? listen_extra : "");
	n++;
	if (store != NULL) {
		snprintf(e[n][0], sizeof(e[n][0]), "store = \"%s\";", state_db);
		snprintf(e[n][1], sizeof(e[n][1]), "store = \"%s\";", store);
		n++;
	}
	if (signer != NULL) {
		snprintf(e[n][0], sizeof(e[n][0]),
			 "{ name = \"signer\"; role = \"signer\"; module = \"%s\";",
			 KOS_SOFTHSM_MODULE);
		snprintf(e[n][1], sizeof(e[n][1]),
			 "{ name = \"signer\"; role = \"signer\"; module = \"%s\";", signer);
		n++;
	}
	for (size_t i = 0; i < n; i++) {
		edits[i][0] = e[i][0];
		edits[i][1] = e[i][1];
	}
	if (bench_edit_file(src, dst, edits, n) != 0)
		die("cannot write a kos.conf");
}

/* kosd on inst/conf, answering on inst/sock, on CPU cpu (< 0: anywhere).
 * When it exits because listen has no setting named setting (NULL: any
 * failure is fatal), -1; any other failure ends the run. */
static pid_t start_kosd(const char *conf, const char *sock, int cpu, const char *setting)
{
	char conf_path[200], sock_path[200], log[200], unknown[80];
	static int started;
	pid_t pid;

	snprintf(conf_path, sizeof(conf_path), "%s/%s", inst, conf);
	snprintf(sock_path, sizeof(sock_path), "%s/%s", inst, sock);
	/* a log per start, so that a refusal found is this start's */
	snprintf(log, sizeof(log), "%s/kosd-%d.log", dir, ++started);
	pid = bench_kosd_start(kosd_path, conf_path, sock_path, log, cpu);
	if (pid > 0)
		return pid;
	snprintf(unknown, sizeof(unknown), "listen: %s: unknown setting", setting ? setting : "");
	if (setting != NULL && bench_file_has(log, unknown))
		return -1;
	fprintf(stderr, "bench: kosd did not start on %s (see %s)\n", conf_path, log);
	exit(1);
}

static void sock_path_of(char *buf, size_t len, const char *sock)
{
	snprintf(buf, len, "%s/%s", inst, sock);
}

/* --- 1. a slow HSM ------------------------------------------------------- */

struct probe {
	const char *sock;
	double start, end;
	double *lat;
	size_t n, cap;
	int failed;
};

/* GET /v1/health every PROBE_INTERVAL from start to end, each latency
 * kept */
static void *probe_main(void *arg)
{
	struct probe *p = arg;
	struct bench_conn c;
	double next, t0, t1;

	if (bench_conn_open(&c, p->sock, NULL) != 0) {
		p->failed = 1;
		bench_conn_close(&c);
		return NULL;
	}
	while (bench_now() < p->start)
		usleep(1000);
	next = bench_now();
	while ((t0 = bench_now()) < p->end) {
		if (t0 < next) {
			usleep((useconds_t)((next - t0) * 1e6));
			continue;
		}
		next = t0 + PROBE_INTERVAL;
		if (bench_conn_call(&c, "/v1/health", NULL) != 200) {
			p->failed = 1;
			break;
		}
		t1 = bench_now();
		if (p->n == p->cap) {
			size_t ncap = p->cap ? p->cap * 2 : 1024;
			double *nl = realloc(p->lat, ncap * sizeof(*nl));

			if (nl == NULL) {
				p->failed = 1;
				break;
			}
			p->lat = nl;
			p->cap = ncap;
		}
		p->lat[p->n++] = t1 - t0;
	}
	bench_conn_close(&c);
	return NULL;
}

/* The worker counts KOS_BENCH_WORKERS asks for, DEFAULT_WORKERS when it is
 * unset. */
static size_t worker_counts(unsigned *out)
{
	const char *s = getenv("KOS_BENCH_WORKERS");
	size_t n = 0;
	char *end;

	if (s == NULL || *s == '\0')
		s = DEFAULT_WORKERS;
	while (*s != '\0' && n < MAX_WORKER_RUNS) {
		unsigned long v;

		s += strspn(s, ", ");
		if (*s == '\0')
			break;
		errno = 0;
		v = strtoul(s, &end, 10);
		if (end == s || errno != 0 || v == 0 || v > 1024) {
			fprintf(stderr,
				"bench: KOS_BENCH_WORKERS: \"%s\" is not a list of worker "
				"counts (1..1024, e.g. \"2,4,8,16\")\n",
				getenv("KOS_BENCH_WORKERS"));
			exit(2);
		}
		out[n++] = (unsigned)v;
		s = end;
	}
	return n;
}

static void slow_hsm(void)
{
	unsigned counts[MAX_WORKER_RUNS];
	size_t n_counts = worker_counts(counts), run;
	char sock[200], extra[64], delay[64];
	struct bench_workload sign;
	struct bench_figures f, h;
	struct probe p;
	pthread_t th;
	int single = 0;

	printf("\n1. slow HSM: signer token behind slowhsm.so, C_Sign %d ms, %d clients signing "
	       "P-256 for %.0f s\n",
	       SLOW_DELAY_US / 1000, SLOW_CLIENTS, SLOW_SECONDS);
	/* kosd's environment: the module slowhsm forwards to, and the delay */
	snprintf(delay, sizeof(delay), "C_Sign=%d,*=0", SLOW_DELAY_US);
	setenv("KOS_SLOWHSM_MODULE", KOS_SOFTHSM_MODULE, 1);
	setenv("KOS_SLOWHSM_DELAY", delay, 1);
	sock_path_of(sock, sizeof(sock), "kosd-slow.sock");
	sign = bench_kosd_workload(sock, creds[G_SLOW], "/v1/keys/" SIGN_KEY "/sign", sign_body,
				   "\"signature\"");
	for (run = 0; run < (n_counts > 0 ? n_counts : 1); run++) {
		unsigned sessions = n_counts > 0 ? counts[run] : 1;
		double bound = sessions * 1e6 / SLOW_DELAY_US;
		char what[80];

		if (n_counts > 0) {
			snprintf(extra, sizeof(extra), "workers = %u;", counts[run]);
			snprintf(what, sizeof(what), "workers = %u", counts[run]);
		} else {
			snprintf(what, sizeof(what), "%s",
				 single ? "the single loop (1 session)"
					: "kosd's default (taken as 1 session)");
		}
		write_conf("kos-slow.conf", "kosd-slow.sock", NULL, slowhsm_path,
			   n_counts > 0 ? extra : NULL);
		kosd_pid[0] = start_kosd("kos-slow.conf", "kosd-slow.sock", -1,
					 n_counts > 0 ? "workers" : NULL);
		if (kosd_pid[0] < 0) {
			printf("kosd has no workers setting: measuring the single loop\n");
			single = 1;
			n_counts = 0;
			run = (size_t)-1; /* once more, without it */
			continue;
		}
		memset(&p, 0, sizeof(p));
		p.sock = sock;
		/* the clients connect in the first 50 ms, then run SLOW_SECONDS */
		p.start = bench_now() + 0.1;
		p.end = bench_now() + 0.05 + SLOW_SECONDS;
		if (pthread_create(&th, NULL, probe_main, &p) != 0)
			die("pthread_create failed");
		f = bench_run_clients(SLOW_CLIENTS, &sign, SLOW_SECONDS, "signing through kosd");
		pthread_join(th, NULL);
		bench_stop(&kosd_pid[0]);
		if (p.failed)
			die("GET /v1/health failed while the clients signed");
		h = bench_figures_of(p.lat, p.n, 0);
		free(p.lat);
		printf("%-44s %8.0f/s  bound %6.0f/s (%u session%s / %d ms)  %5.2fx  goal >= 0.8x "
		       "%s\n",
		       what, f.rate, bound, sessions, sessions > 1 ? "s" : "", SLOW_DELAY_US / 1000,
		       f.rate / bound, bench_verdict(f.rate >= 0.8 * bound));
		printf("%-44s p50 %6.2f ms  p99 %6.2f ms (%zu probes)  goal p99 <= %.0f ms %s\n",
		       "  GET /v1/health meanwhile, every 10 ms", h.p50 * 1e3, h.p99 * 1e3, h.n,
		       PROBE_INTERVAL * 1e3, bench_verdict(h.n > 0 && h.p99 <= PROBE_INTERVAL));
	}
	unsetenv("KOS_SLOWHSM_DELAY");
	unsetenv("KOS_SLOWHSM_MODULE");
}

/* --- 2. kosd's CPU per request ------------------------------------------ */

struct direct {
	kos_hsm *hsm;
	size_t tok;
	CK_OBJECT_HANDLE priv;
	uint8_t data[32];
};

/* C_SignInit + C_Sign (CKM_ECDSA over a SHA-256 digest), as kos signs,
 * on a session of kos_hsm's pool. */
static int direct_sign(struct direct *d)
{
	CK_MECHANISM mech = {CKM_ECDSA, NULL, 0};
	uint8_t sig[64], digest[32];
	CK_ULONG len = sizeof(sig);
	kos_hsm_session s;
	CK_RV rv;

	if (kos_hsm_session_get(d->hsm, d->tok, &s) != KOS_OK)
		return 1;
	SHA256(d->data, sizeof(d->data), digest);
	rv = s.f->C_SignInit(s.h, &mech, d->priv);
	if (rv == CKR_OK)
		rv = s.f->C_Sign(s.h, digest, sizeof(digest), sig, &len);
	kos_hsm_session_put(d->hsm, &s, rv);
	return rv != CKR_OK || len != sizeof(sig);
}

static void direct_open(struct direct *d, kos_config *conf)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE tmpl[] = {
	    {CKA_CLASS, &cls, sizeof(cls)},
	    {CKA_LABEL, (void *)SIGN_LABEL, sizeof(SIGN_LABEL) - 1},
	};
	kos_hsm_session s;
	CK_ULONG n = 0;

	memset(d, 0, sizeof(*d));
	d->priv = CK_INVALID_HANDLE;
	if (kos_hsm_open(conf, 0, &d->hsm) != KOS_OK ||
	    kos_hsm_token_find(d->hsm, "signer", &d->tok) != KOS_OK ||
	    kos_hsm_session_get(d->hsm, d->tok, &s) != KOS_OK)
		die_kos("the signer token");
	if (s.f->C_FindObjectsInit(s.h, tmpl, 2) == CKR_OK) {
		s.f->C_FindObjects(s.h, &d->priv, 1, &n);
		s.f->C_FindObjectsFinal(s.h);
	}
	kos_hsm_session_put(d->hsm, &s, CKR_OK);
	if (n != 1)
		die("the signing key's object was not found on the signer token");
	RAND_bytes(d->data, sizeof(d->data));
}

static double process_cpu(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct cpu_cost {
	double per, user, sys; /* kosd's CPU seconds per request: all, user, system */
	size_t n;	       /* requests */
};

/* kosd's CPU per request of w, kosd on kosd_cpu and the client on
 * client_cpu */
static struct cpu_cost cpu_per_request(const struct bench_workload *w, const char *what,
				       int n_clients, int kosd_cpu, int client_cpu)
{
	struct bench_figures f;
	struct cpu_cost c;
	double before, after, u0, u1, s0, s1;

	bench_pin(client_cpu);
	kosd_pid[0] = start_kosd("kos.conf", "kosd.sock", kosd_cpu, NULL);
	before = bench_proc_cpu(kosd_pid[0], &u0, &s0);
	f = bench_run_clients(n_clients, w, CPU_SECONDS, what);
	/* the last ledger batch and observations are written within 100 ms */
	usleep(300000);
	after = bench_proc_cpu(kosd_pid[0], &u1, &s1);
	bench_stop(&kosd_pid[0]);
	bench_pin(-1);
	if (before < 0 || after < 0 || f.n == 0)
		die("cannot read kosd's CPU time from /proc");
	c.n = f.n;
	c.per = (after - before) / (double)f.n;
	c.user = (u1 - u0) / (double)f.n;
	c.sys = (s1 - s0) / (double)f.n;
	return c;
}

static void cpu_cost(kos_config *conf)
{
	int two = sysconf(_SC_NPROCESSORS_ONLN) >= 2;
	int kosd_cpu = two ? 1 : 0, client_cpu = 0;
	struct bench_workload w;
	struct cpu_cost c;
	struct direct d;
	double c_sign, t0;
	size_t i, n_direct = 0;
	char sock[200];

	printf("\n2. kosd's CPU per request (utime + stime of kosd, /proc/PID/stat), kosd on CPU "
	       "%d, its client on CPU %d%s\n",
	       kosd_cpu, client_cpu, two ? "" : " (one CPU only: both share it)");
	sock_path_of(sock, sizeof(sock), "kosd.sock");
	w = bench_kosd_workload(sock, creds[G_CPU], "/v1/decrypt", dec_body, pt64);
	c = cpu_per_request(&w, "decrypt through kosd", 1, kosd_cpu, client_cpu);
	printf("%-48s %7.1f us  (user %.1f, system %.1f; %zu requests)  goal <= 20 us %s\n",
	       "server-side decrypt of 1 KiB, cached data key", c.per * 1e6, c.user * 1e6,
	       c.sys * 1e6, c.n, bench_verdict(c.per <= 20e-6));
	/* the same with 8 clients: one group commit (and wake-up) serves several
	 * requests */
	c = cpu_per_request(&w, "decrypt through kosd", COMMIT_CLIENTS, kosd_cpu, client_cpu);
	printf("%-48s %7.1f us  (user %.1f, system %.1f; %zu requests)  goal <= 20 us %s\n",
	       "  the same, 8 clients", c.per * 1e6, c.user * 1e6, c.sys * 1e6, c.n,
	       bench_verdict(c.per <= 20e-6));

	/* SoftHSM's C_Sign runs in kosd's process: its CPU, measured here on
	 * the same key and CPU, is SoftHSM's and not kosd's */
	direct_open(&d, conf);
	bench_pin(kosd_cpu);
	t0 = process_cpu();
	for (i = 0; process_cpu() - t0 < 0.5; i++)
		if (direct_sign(&d) != 0)
			die("C_Sign on the signer token failed");
	n_direct = i;
	c_sign = (process_cpu() - t0) / (double)n_direct;
	bench_pin(-1);
	kos_hsm_free(d.hsm);

	w = bench_kosd_workload(sock, creds[G_CPU], "/v1/keys/" SIGN_KEY "/sign", sign_body,
				"\"signature\"");
	c = cpu_per_request(&w, "signing through kosd", 1, kosd_cpu, client_cpu);
	printf("%-48s %7.1f us  (user %.1f, system %.1f; %zu requests; SoftHSM's C_Sign "
	       "included)\n",
	       "P-256 signature", c.per * 1e6, c.user * 1e6, c.sys * 1e6, c.n);
	printf("%-48s %7.1f us  (%zu calls in this process)\n",
	       "  of which SoftHSM C_SignInit + C_Sign", c_sign * 1e6, n_direct);
	printf("%-48s %7.1f us  goal <= 20 us %s\n", "  kosd's own, beyond C_Sign",
	       (c.per - c_sign) * 1e6, bench_verdict(c.per - c_sign <= 20e-6));
}

/* --- 3. group commit ------------------------------------------------------ */

static void group_commit(void)
{
	/* this kosd's three settings, then (KOS_BENCH_BASELINE_KOSD) another */
	static const char *const modes[4] = {"durable", "batched", "synced", "today's"};
	const char *ask = getenv("KOS_BENCH_LEDGER"), *today = getenv("KOS_BENCH_BASELINE_KOSD");
	const char *self = kosd_path;
	double best[4] = {0, 0, 0, 0};
	int n_modes = today != NULL && *today != '\0' ? 4 : 3;
	struct bench_workload w;
	char sock[200], extra[64];

	printf("\n3. group commit: %d clients decrypting 1 KiB, ledger = \"durable\" against "
	       "\"batched\" and \"synced\"%s\n",
	       COMMIT_CLIENTS,
	       n_modes == 4 ? ", and against today's kosd (KOS_BENCH_BASELINE_KOSD)" : "");
	if (ask != NULL && strcmp(ask, "0") == 0) {
		printf("durable / batched: not measured (KOS_BENCH_LEDGER=0)  goal >= 0.8x %s\n",
		       bench_verdict(0));
		return;
	}
	sock_path_of(sock, sizeof(sock), "kosd-commit.sock");
	w = bench_kosd_workload(sock, creds[G_COMMIT], "/v1/decrypt", dec_body, pt64);
	/* alternating, the better of two runs each: other work on the
	 * machine moves one run, seldom both */
	for (int round = 0; round < 2; round++) {
		for (int m = 0; m < n_modes; m++) {
			struct bench_figures f;

			snprintf(extra, sizeof(extra), "ledger = \"%s\";", modes[m]);
			/* today's kosd: its own default (batched), no setting */
			write_conf("kos-commit.conf", "kosd-commit.sock", NULL, NULL,
				   m < 3 ? extra : NULL);
			kosd_path = m < 3 ? self : today;
			kosd_pid[0] = start_kosd("kos-commit.conf", "kosd-commit.sock", -1,
						 m < 3 ? "ledger" : NULL);
			kosd_path = self;
			if (kosd_pid[0] < 0) {
				printf(
				    "kosd has no ledger setting: durable / batched not measured  "
				    "goal >= 0.8x %s\n",
				    bench_verdict(0));
				return;
			}
			f = bench_run_clients(COMMIT_CLIENTS, &w, COMMIT_SECONDS,
					      "decrypt through kosd");
			bench_stop(&kosd_pid[0]);
			if (f.rate > best[m])
				best[m] = f.rate;
			printf("ledger = \"%s\", run %d %*s %8.0f/s  p50 %6.3f ms  p99 %6.3f ms\n",
			       modes[m], round + 1, 22, "", f.rate, f.p50 * 1e3, f.p99 * 1e3);
		}
	}
	printf("durable / batched (the better run of each) %8.2fx  goal >= 0.8x %s\n",
	       best[0] / best[1], bench_verdict(best[0] >= 0.8 * best[1]));
	printf("synced / durable (every commit fsynced)     %8.2fx  (figure, no goal)\n",
	       best[2] / best[0]);
	if (n_modes == 4)
		printf("durable / today's kosd (batched, one loop) %8.2fx  goal >= 0.8x %s\n",
		       best[0] / best[3], bench_verdict(best[0] >= 0.8 * best[3]));
}

/* --- 4. the size of the state --------------------------------------------- */

static void sql_check(sqlite3 *db, int rc, const char *what)
{
	if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
		fprintf(stderr, "bench: %s: %s\n", what, sqlite3_errmsg(db));
		exit(1);
	}
}

static sqlite3 *sql_open(const char *path)
{
	sqlite3 *db = NULL;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
		die("cannot open the state store with SQLite");
	sqlite3_busy_timeout(db, 5000);
	/* room for the indexes being filled */
	sql_check(db, sqlite3_exec(db, "PRAGMA cache_size = -262144", NULL, NULL, NULL),
		  "PRAGMA cache_size");
	return db;
}

static void sql_exec(sqlite3 *db, const char *sql)
{
	sql_check(db, sqlite3_exec(db, sql, NULL, NULL, NULL), sql);
}

/* Clients fill-FROM .. fill-(TO-1) in the store at path, each registered
 * (cred_clients) and known to the trust engine (a trust record made by
 * kos_trust_observe_batch() from one successful request, at times spread
 * over the last day), FILL_TXN clients a transaction. */
static void fill_clients(const char *path, const kos_policy *pol, unsigned from, unsigned to)
{
	kos_observation_rec *recs = calloc(FILL_TXN, sizeof(*recs));
	sqlite3 *db = sql_open(path);
	kos_usec now = kos_now();
	sqlite3_stmt *ins = NULL;
	kos_store *st = NULL;
	kos_trust *tr = NULL;
	char loc[220];

	snprintf(loc, sizeof(loc), "sqlite:%s", path);
	if (recs == NULL)
		die("out of memory");
	if (kos_store_open(loc, &st) != KOS_OK || kos_trust_new(pol, st, &tr) != KOS_OK)
		die_kos("the state store");
	sql_check(db,
		  sqlite3_prepare_v2(db,
				     "INSERT INTO cred_clients (name, scope, created, disabled) "
				     "VALUES (?1, 'decrypt:" DEK "', ?2, 0)",
				     -1, &ins, NULL),
		  "INSERT INTO cred_clients");
	for (unsigned at = from; at < to;) {
		unsigned n = to - at < FILL_TXN ? to - at : FILL_TXN;

		sql_exec(db, "BEGIN IMMEDIATE");
		for (unsigned i = 0; i < n; i++) {
			kos_observation_rec *r = &recs[i];

			snprintf(r->client, sizeof(r->client), "fill-%07u", at + i);
			r->obs.event = KOS_EVENT_SUCCESS;
			r->at = now - (kos_usec)((at + i) % 86400) * KOS_USEC_PER_SEC;
			sqlite3_bind_text(ins, 1, r->client, -1, SQLITE_STATIC);
			sqlite3_bind_int64(ins, 2, r->at);
			sql_check(db, sqlite3_step(ins), "INSERT INTO cred_clients");
			sqlite3_reset(ins);
		}
		sql_exec(db, "COMMIT");
		if (kos_trust_observe_batch(tr, recs, n) != KOS_OK)
			die_kos("the trust records");
		at += n;
	}
	sqlite3_finalize(ins);
	sqlite3_close(db);
	kos_trust_free(tr);
	kos_store_free(st);
	free(recs);
}

/* n revoked credentials (random jtis, as kos issues them, revoked until a
 * day from now) in the store at path, FILL_TXN a transaction, and the
 * credential revision bumped as kos bumps it. */
static void fill_revocations(const char *path, unsigned n)
{
	sqlite3 *db = sql_open(path);
	kos_usec now = kos_now();
	sqlite3_stmt *ins = NULL;
	uint8_t raw[16];
	char jti[KOS_CRED_JTI_LEN + 1];

	sql_check(
	    db,
	    sqlite3_prepare_v2(db,
			       "INSERT INTO revocations (kind, value, upto, created, expires) "
			       "VALUES ('jti', ?1, 0, ?2, ?3)",
			       -1, &ins, NULL),
	    "INSERT INTO revocations");
	for (unsigned done = 0; done < n;) {
		unsigned k = n - done < FILL_TXN ? n - done : FILL_TXN;

		sql_exec(db, "BEGIN IMMEDIATE");
		for (unsigned i = 0; i < k; i++) {
			if (RAND_bytes(raw, sizeof(raw)) != 1 ||
			    kos_b64url_encode(raw, sizeof(raw), jti, sizeof(jti)) != KOS_OK)
				die("no random jti");
			sqlite3_bind_text(ins, 1, jti, -1, SQLITE_TRANSIENT);
			sqlite3_bind_int64(ins, 2, now);
			sqlite3_bind_int64(ins, 3, now + 86400 * KOS_USEC_PER_SEC);
			sql_check(db, sqlite3_step(ins), "INSERT INTO revocations");
			sqlite3_reset(ins);
		}
		sql_exec(db, "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = "
			     "'cred_revision'");
		sql_exec(db, "COMMIT");
		done += k;
	}
	sqlite3_finalize(ins);
	sqlite3_close(db);
}

/* src to dst, a closed SQLite store (its WAL folded back in) */
static void copy_store(const char *src, const char *dst)
{
	char wal[220], buf[1 << 16];
	struct stat sb;
	ssize_t got;
	int in, out;

	snprintf(wal, sizeof(wal), "%s-wal", src);
	if (stat(wal, &sb) == 0 && sb.st_size > 0)
		die("the state store still has a write-ahead log: a connection is open");
	in = open(src, O_RDONLY);
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (in < 0 || out < 0)
		die("cannot copy the state store");
	while ((got = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)got) != got)
			die("cannot copy the state store");
	if (got < 0 || close(out) != 0)
		die("cannot copy the state store");
	close(in);
}

static unsigned scale_large(void)
{
	const char *s = getenv("KOS_BENCH_SCALE");
	unsigned long v;
	char *end;

	if (s == NULL || *s == '\0')
		return SCALE_LARGE;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (*end != '\0' || errno != 0 || v < 10 * SCALE_SMALL || v > 100000000) {
		fprintf(stderr,
			"bench: KOS_BENCH_SCALE: \"%s\" is not a count of %d to 100000000\n", s,
			10 * SCALE_SMALL);
		exit(2);
	}
	return (unsigned)v;
}

static const char *thousands(unsigned long v, char *buf, size_t len)
{
	if (v >= 1000000)
		snprintf(buf, len, "%lu,%03lu,%03lu", v / 1000000, v / 1000 % 1000, v % 1000);
	else if (v >= 1000)
		snprintf(buf, len, "%lu,%03lu", v / 1000, v % 1000);
	else
		snprintf(buf, len, "%lu", v);
	return buf;
}

/* Seconds until kosd on sock answers a first authenticated request (its
 * first credential verification loads the revocations) */
static double first_answer(const char *sock, const char *cred, const char *path,
			   const char *body)
{
	struct bench_conn c;
	double t0 = bench_now();
	long status = 0;

	if (bench_conn_open(&c, sock, cred) == 0)
		status = bench_conn_call(&c, path, body);
	bench_conn_close(&c);
	if (status != 200)
		die("kosd refused a first authenticated request");
	return bench_now() - t0;
}

static void state_scale(const kos_policy *pol)
{
	unsigned large = scale_large();
	unsigned small_fill = SCALE_SMALL - (unsigned)n_bench_clients;
	const char *names[3] = {"small", "clients", "revoked"};
	char what[3][100], db[3][220], conf[40], sock[3][200], a[32], b[32];
	double t0, dec[3] = {0, 0, 0}, chk[3] = {0, 0, 0}, iss[3] = {0, 0, 0}, start_s[3],
		   first_s[3], iss_max[3] = {0, 0, 0}, first_iss[3];
	struct bench_workload wd, wc, wi;
	long rss, hwm;
	int i;

	printf("\n4. the size of the state: %d clients decrypting 1 KiB (a trust decision each) "
	       "and checking credentials (GET /v1/keys)\n",
	       SCALE_CLIENTS);
	snprintf(what[0], sizeof(what[0]), "%s clients, %s revoked",
		 thousands(SCALE_SMALL, a, sizeof(a)), thousands(SCALE_SMALL, b, sizeof(b)));
	snprintf(what[1], sizeof(what[1]), "%s clients, %s revoked", thousands(large, a, sizeof(a)),
		 thousands(SCALE_SMALL, b, sizeof(b)));
	snprintf(what[2], sizeof(what[2]), "%s clients, %s revoked",
		 thousands(SCALE_SMALL, a, sizeof(a)), thousands(large, b, sizeof(b)));

	/* the small store, then two copies grown from it */
	t0 = bench_now();
	fill_clients(state_db, pol, 0, small_fill);
	fill_revocations(state_db, SCALE_SMALL);
	for (i = 0; i < 3; i++) {
		snprintf(db[i], sizeof(db[i]), "%s/%s.db", dir, names[i]);
		copy_store(state_db, db[i]);
	}
	printf("%-44s %6.1f s\n", "filled the small store", bench_now() - t0);
	t0 = bench_now();
	fill_clients(db[1], pol, small_fill, large - (unsigned)n_bench_clients);
	printf("%-44s %6.1f s  (%s clients, a trust record and a registration each)\n",
	       "filled the store of many clients", bench_now() - t0,
	       thousands(large - SCALE_SMALL, a, sizeof(a)));
	t0 = bench_now();
	fill_revocations(db[2], large - SCALE_SMALL);
	printf("%-44s %6.1f s  (%s revoked credentials)\n", "filled the store of many revocations",
	       bench_now() - t0, thousands(large - SCALE_SMALL, a, sizeof(a)));

	for (i = 0; i < 3; i++) {
		char sock_name[40];

		snprintf(conf, sizeof(conf), "kos-%s.conf", names[i]);
		snprintf(sock_name, sizeof(sock_name), "kosd-%s.sock", names[i]);
		sock_path_of(sock[i], sizeof(sock[i]), sock_name);
		write_conf(conf, sock_name, db[i], NULL, NULL);
		t0 = bench_now();
		kosd_pid[i] = start_kosd(conf, sock_name, -1, NULL);
		start_s[i] = bench_now() - t0;
		first_s[i] = first_answer(sock[i], creds[G_SCALE][0], "/v1/keys", NULL);
		/* the first issuance since kosd started: the one that judged the
		 * threat level from every client while it waited, when issuance
		 * did that */
		first_iss[i] = first_answer(sock[i], creds[G_SCALE][0], "/v1/credentials/refresh",
					    "{}");
	}
	/* the stores in turn, the best of the rounds each: other work on the
	 * machine moves one run, seldom all */
	for (int round = 0; round < SCALE_ROUNDS; round++) {
		for (i = 0; i < 3; i++) {
			struct bench_figures f;

			wd = bench_kosd_workload(sock[i], creds[G_SCALE], "/v1/decrypt", dec_body,
						 pt64);
			wc = bench_kosd_workload(sock[i], creds[G_SCALE], "/v1/keys", NULL,
						 "\"keys\"");
			f = bench_run_clients(SCALE_CLIENTS, &wd, SCALE_SECONDS,
					      "decrypt through kosd");
			if (f.rate > dec[i])
				dec[i] = f.rate;
			f = bench_run_clients(SCALE_CLIENTS, &wc, SCALE_SECONDS,
					      "credential check through kosd");
			if (f.rate > chk[i])
				chk[i] = f.rate;
			wi = bench_kosd_workload(sock[i], creds[G_SCALE], "/v1/credentials/refresh",
						 "{}", "\"credential\"");
			f = bench_run_clients(SCALE_CLIENTS, &wi, SCALE_SECONDS,
					      "credential refresh through kosd");
			if (f.rate > iss[i])
				iss[i] = f.rate;
			if (f.max > iss_max[i])
				iss_max[i] = f.max;
		}
	}
	for (i = 0; i < 3; i++) {
		printf("%-34s decrypt %6.0f/s  check %6.0f/s", what[i], dec[i], chk[i]);
		if (i > 0)
			printf("  %.2fx and %.2fx the small store  goal >= 0.8x %s",
			       dec[i] / dec[0], chk[i] / chk[0],
			       bench_verdict(dec[i] >= 0.8 * dec[0] && chk[i] >= 0.8 * chk[0]));
		else
			printf("  (baseline)");
		printf("\n");
	}
	/* issuance: an ES256 signature in the CA token and a store write each;
	 * the threat level, judged once a minute from every client, must not
	 * fall on it */
	for (i = 0; i < 3; i++) {
		printf("%-34s refresh %6.0f/s  slowest %6.1f ms, the first %6.1f ms", what[i],
		       iss[i], iss_max[i] * 1e3, first_iss[i] * 1e3);
		if (i > 0)
			printf("  %.2fx the small store (figures, no goal)", iss[i] / iss[0]);
		printf("\n");
	}
	for (i = 0; i < 3; i++) {
		if (bench_proc_mem(kosd_pid[i], &rss, &hwm) != 0)
			die("cannot read kosd's memory from /proc");
		printf("%-34s kosd VmRSS %6.1f MiB  VmHWM %6.1f MiB  start %4.2f s, first "
		       "authenticated answer %4.2f s (figures, no goal)\n",
		       what[i], rss / 1024.0, hwm / 1024.0, start_s[i], first_s[i]);
		bench_stop(&kosd_pid[i]);
	}
}

/* --- set-up --------------------------------------------------------------- */

int main(int argc, char **argv)
{
	char path[200], secret[KOS_CRED_SECRET_LEN + 1], name[32], *env64 = NULL, *data64;
	uint8_t pt[1024], data[32], *env = NULL;
	size_t env_len = 0;
	kos_config *conf = NULL;
	kos_policy *pol = NULL;
	kos_store *st = NULL;
	kos_trust *tr = NULL;
	kos_hsm *hsm = NULL;
	kos_keys *keys = NULL;
	kos_ca *ca = NULL;
	double t_start = bench_now();
	int g, i;

	if (argc != 4) {
		fprintf(stderr,
			"usage: bench-scale POLICY KOSD SLOWHSM.SO\n"
			"  KOS_BENCH_WORKERS=\"2,4,8,16\": the slow HSM with listen.workers "
			"= each (the default)\n"
			"  KOS_BENCH_LEDGER=0: no group commit run (listen.ledger durable "
			"against batched)\n"
			"  KOS_BENCH_SCALE=N: N clients and N revocations in the large "
			"stores (1000000)\n");
		return 2;
	}
	kosd_path = argv[2];
	slowhsm_path = argv[3];
	if (access(slowhsm_path, R_OK) != 0) {
		fprintf(stderr, "bench: %s: %s (make check builds slowhsm.so)\n", slowhsm_path,
			strerror(errno));
		return 1;
	}
	(void)scale_large(); /* a bad value is refused before the work */
	if (mkdtemp(dir) == NULL || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return 1;
	atexit(cleanup);

	/* an installation with a data key, a signing key and the clients */
	snprintf(inst, sizeof(inst), "%s/inst", dir);
	snprintf(state_db, sizeof(state_db), "%s/state.db", inst);
	snprintf(path, sizeof(path), "%s/bench.policy", dir);
	if (bench_write_policy(argv[1], path) != 0 || kos_devinit(inst, 0, path, NULL) != KOS_OK)
		die_kos("the installation");
	snprintf(path, sizeof(path), "%s/kos.conf", inst);
	memset(pt, 'p', sizeof(pt));
	if (kos_config_load(path, &conf, NULL) != KOS_OK ||
	    kos_policy_load(kos_config_get0_policy(conf), &pol, NULL) != KOS_OK ||
	    kos_store_open(kos_config_get0_store(conf), &st) != KOS_OK ||
	    kos_trust_new(pol, st, &tr) != KOS_OK || kos_hsm_open(conf, 0, &hsm) != KOS_OK ||
	    kos_keys_new(pol, st, hsm, &keys) != KOS_OK ||
	    kos_ca_new(pol, st, hsm, tr, &ca) != KOS_OK || kos_ca_init(ca, NULL) != KOS_OK ||
	    kos_key_create(keys, DEK, KOS_KEY_DEK) != KOS_OK ||
	    kos_key_create(keys, SIGN_KEY, KOS_KEY_EC_P256) != KOS_OK ||
	    kos_key_encrypt(keys, DEK, "ctx", pt, sizeof(pt), &env, &env_len) != KOS_OK)
		die_kos("the installation");
	for (g = 0; g < G_COUNT; g++) {
		for (i = 0; i < groups[g].n; i++) {
			snprintf(name, sizeof(name), "%s-%d", groups[g].prefix, i);
			if (kos_ca_client_add(ca, name, groups[g].scope, secret) != KOS_OK ||
			    kos_cred_enroll(ca, secret, &creds[g][i]) != KOS_OK)
				die_kos("a client");
			n_bench_clients++;
		}
	}
	OPENSSL_cleanse(secret, sizeof(secret));
	/* kosd is the store's and tokens' only user from here on */
	kos_ca_free(ca);
	kos_keys_free(keys);
	kos_hsm_free(hsm);
	kos_trust_free(tr);
	kos_store_free(st);

	RAND_bytes(data, sizeof(data));
	pt64 = bench_b64(pt, sizeof(pt));
	env64 = bench_b64(env, env_len);
	data64 = bench_b64(data, sizeof(data));
	if (pt64 == NULL || env64 == NULL || data64 == NULL)
		die("out of memory");
	dec_body = malloc(strlen(env64) + 64);
	sign_body = malloc(strlen(data64) + 32);
	if (dec_body == NULL || sign_body == NULL)
		die("out of memory");
	sprintf(dec_body, "{\"envelope\":\"%s\",\"context\":\"ctx\"}", env64);
	sprintf(sign_body, "{\"data\":\"%s\"}", data64);
	free(env64);
	free(data64);
	kos_free(env);

	slow_hsm();
	cpu_cost(conf);
	group_commit();
	state_scale(pol);

	printf("\nbench-scale took %.0f s\n", bench_now() - t_start);
	for (g = 0; g < G_COUNT; g++)
		for (i = 0; i < groups[g].n; i++)
			kos_cred_free(creds[g][i]);
	free(dec_body);
	free(sign_body);
	free(pt64);
	kos_policy_free(pol);
	kos_config_free(conf);
	curl_global_cleanup();
	return 0;
}
