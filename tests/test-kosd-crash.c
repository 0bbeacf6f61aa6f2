/* kosd killed with SIGKILL under load loses no answered decision. Eight
 * client threads, each with its own enrolled credential and libkos-client
 * handle, encrypt on the server and sign, and count per route the answers
 * they received whole (a 200 with its complete JSON body: what
 * kos_client_encrypt() and kos_client_sign() return KOS_OK for). At a
 * random moment 0.3 to 1.5 s into each round kosd ($KOSD, on a development
 * installation in a temporary directory) is killed with SIGKILL; once every
 * client has seen its connection fail, kosd is started again on the same
 * kos.conf and the next round begins; the last round ends with SIGTERM.
 * Then, from the store: every answer a client received has an "allowed"
 * ledger entry of that client and route, the chain verifies from entry 1,
 * and the client's trust holds the two observations of each answer. An
 * answer leaves kosd only after its ledger entry and observations are
 * committed (DESIGN.md 3), so none of this may depend on when kosd dies.
 * KOS_TEST_SEED=N repeats a run's kill times (the seed is printed). */
#include "config.h"

#include "kos/internal.h"
#include "tests/kos-test.h"

#include <kos/client.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

/* SoftHSM 2.6.1 leaks in C_SignInit (see tests/test-signer.c). */
const char *__lsan_default_suppressions(void) __attribute__((visibility("default"), used));
const char *__lsan_default_suppressions(void)
{
	return "leak:libsofthsm2.so\n";
}

const char *__asan_default_options(void) __attribute__((visibility("default"), used));
const char *__asan_default_options(void)
{
	return "fast_unwind_on_malloc=0";
}

#define N_CLIENTS 8
/* rounds ended by SIGKILL; one more ends with SIGTERM */
#define KILL_ROUNDS 4
/* the load before a kill: 0.3 s + up to 1.2 s, by time (not by count) so
 * that a slow build (ASan) runs as long */
#define KILL_AFTER_MIN 0.3
#define KILL_AFTER_SPAN 1.2
#define LAST_ROUND_SECONDS 0.5
/* how long the clients may take to see kosd gone (libkos-client's own
 * timeout is 30 s; a dead kosd fails a request at once) */
#define IDLE_WAIT_SECONDS 40
/* kos_access observes every admitted request twice: its latency and its
 * outcome (kos/trust.c) */
#define OBS_PER_ANSWER 2

#define DEK "crash-dek"
#define SIGNER "crash-ec"
#define SCOPE "encrypt:" DEK " decrypt:" DEK " sign:" SIGNER

enum route { ROUTE_ENCRYPT, ROUTE_SIGN, N_ROUTES };
/* the route names kosd's ledger gives them as action */
static const char *const route_names[N_ROUTES] = { "encrypt", "sign" };

struct client {
	char name[32];
	kos_client *c;
	unsigned rng;
	/* answers received whole, per route */
	unsigned long received[N_ROUTES];
	/* failures while kosd was up, and the first one's reason */
	unsigned long unexpected;
	char first_unexpected[200];
};

static char inst[512], sock[600], conf_path[700], log_path[700];
static pid_t kosd_pid = -1;
static unsigned seed;
static struct client clients[N_CLIENTS];
static uint64_t obs_before[N_CLIENTS];

/* The rounds: the main thread sets round (a new one begins) and ending
 * (kosd is about to be stopped: a failure from then on is the round's end,
 * before then an error); each client counts itself idle once it has seen
 * the end. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int round_no, ending, stopping, idle;
static pthread_t threads[N_CLIENTS];
static size_t n_threads;
static int load_ran;

static void sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* One request of route r; 1 when its answer arrived whole. */
static int request(struct client *cl, enum route r, unsigned long n)
{
	uint8_t data[256], *out = NULL;
	char ctx[64];
	size_t len = 1 + (size_t)rand_r(&cl->rng) % sizeof(data), out_len = 0;
	kos_rv rv;

	for (size_t i = 0; i < len; i++)
		data[i] = (uint8_t)rand_r(&cl->rng);
	if (r == ROUTE_ENCRYPT) {
		snprintf(ctx, sizeof(ctx), "%s request %lu", cl->name, n);
		rv = kos_client_encrypt(cl->c, DEK, ctx, data, len, &out, &out_len);
	} else {
		rv = kos_client_sign(cl->c, SIGNER, KOS_SIG_DEFAULT, data, len, &out, &out_len);
	}
	kos_free(out);
	return rv == KOS_OK && out_len > 0;
}

/* Requests until one fails after the main thread announced the round's
 * end; a failure before that is an error of its own. */
static void run_round(struct client *cl)
{
	unsigned long n = 0;
	enum route r;
	int end;

	for (;; n++) {
		r = rand_r(&cl->rng) % 2 == 0 ? ROUTE_ENCRYPT : ROUTE_SIGN;
		if (request(cl, r, n)) {
			cl->received[r]++;
			continue;
		}
		pthread_mutex_lock(&lock);
		end = ending;
		pthread_mutex_unlock(&lock);
		if (end)
			return;
		if (cl->unexpected++ == 0)
			snprintf(cl->first_unexpected, sizeof(cl->first_unexpected), "%s: %s",
				 route_names[r], kos_last_error());
		/* not a busy loop against a kosd that refuses everything */
		sleep_s(0.01);
	}
}

static void *client_main(void *arg)
{
	struct client *cl = arg;
	int seen = 0;

	pthread_mutex_lock(&lock);
	for (;;) {
		while (!stopping && round_no == seen)
			pthread_cond_wait(&cond, &lock);
		if (stopping)
			break;
		seen = round_no;
		pthread_mutex_unlock(&lock);
		run_round(cl);
		pthread_mutex_lock(&lock);
		idle++;
		pthread_cond_broadcast(&cond);
	}
	pthread_mutex_unlock(&lock);
	return NULL;
}

static void stop_threads(void)
{
	pthread_mutex_lock(&lock);
	stopping = 1;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
	for (size_t i = 0; i < n_threads; i++)
		pthread_join(threads[i], NULL);
	n_threads = 0;
}

/* --- the store, read after kosd has stopped ------------------------------- */

struct config_set {
	kos_config *conf;
	kos_policy *pol;
	kos_store *st;
	kos_trust *tr;
};

static kos_rv open_set(struct config_set *s)
{
	kos_rv rv;

	memset(s, 0, sizeof(*s));
	rv = kos_config_load(conf_path, &s->conf, NULL);
	if (rv == KOS_OK)
		rv = kos_policy_load(kos_config_get0_policy(s->conf), &s->pol, NULL);
	if (rv == KOS_OK)
		rv = kos_store_open(kos_config_get0_store(s->conf), &s->st);
	if (rv == KOS_OK)
		rv = kos_trust_new(s->pol, s->st, &s->tr);
	return rv;
}

static void close_set(struct config_set *s)
{
	kos_trust_free(s->tr);
	kos_store_free(s->st);
	kos_policy_free(s->pol);
	kos_config_free(s->conf);
	memset(s, 0, sizeof(*s));
}

/* Observations stored for a client; 0 when never observed. */
static kos_rv stored_observations(struct config_set *s, const char *client, uint64_t *n)
{
	kos_trust_info info;
	kos_rv rv = kos_trust_get(s->tr, client, &info);

	*n = 0;
	if (rv == KOS_OK)
		*n = info.observations;
	return rv == KOS_E_NOTFOUND ? KOS_OK : rv;
}

/* "allowed" ledger entries per client and route */
struct ledger_count {
	unsigned long allowed[N_CLIENTS][N_ROUTES];
	unsigned long other; /* refused or failed entries of these clients and routes */
};

static int count_entry(const kos_ledger_entry *e, void *arg)
{
	struct ledger_count *lc = arg;

	for (size_t i = 0; i < N_CLIENTS; i++) {
		if (strcmp(e->client, clients[i].name) != 0)
			continue;
		for (size_t r = 0; r < N_ROUTES; r++) {
			if (strcmp(e->action, route_names[r]) != 0)
				continue;
			if (strcmp(e->outcome, "allowed") == 0)
				lc->allowed[i][r]++;
			else
				lc->other++;
		}
	}
	return 0;
}

/* --- set-up --------------------------------------------------------------- */

static int suite_init(void)
{
	char path[700], secret[N_CLIENTS][KOS_CRED_SECRET_LEN + 1];
	const char *env = getenv("KOS_TEST_SEED");
	struct config_set s;
	kos_hsm *hsm = NULL;
	kos_keys *keys = NULL;
	kos_ca *ca = NULL;
	size_t i;
	int rc = 1;

	memset(&s, 0, sizeof(s));
	seed = env != NULL ? (unsigned)strtoul(env, NULL, 10)
			   : (unsigned)time(NULL) ^ ((unsigned)getpid() << 16);
	fprintf(stderr, "seed %u (KOS_TEST_SEED=%u repeats the kill times)\n", seed, seed);
	srand(seed);
	snprintf(inst, sizeof(inst), "%s/inst", kos_test_tmpdir());
	snprintf(sock, sizeof(sock), "%s/kosd.sock", inst);
	snprintf(conf_path, sizeof(conf_path), "%s/kos.conf", inst);
	snprintf(log_path, sizeof(log_path), "%s/kosd.log", kos_test_tmpdir());
	snprintf(path, sizeof(path), "%s/test.policy", kos_test_tmpdir());
	/* trust of the integrity factor alone: thousands of requests a second
	 * (usage, rate anomaly, latency under ASan) leave every client high */
	if (kos_test_softhsm_leaks_ignored() != 0 ||
	    kos_test_write_integrity_policy(path, NULL, 0) != 0 ||
	    kos_devinit(inst, 0, path, NULL) != KOS_OK)
		goto out;
	if (open_set(&s) != KOS_OK || kos_hsm_open(s.conf, 0, &hsm) != KOS_OK ||
	    kos_keys_new(s.pol, s.st, hsm, &keys) != KOS_OK ||
	    kos_ca_new(s.pol, s.st, hsm, s.tr, &ca) != KOS_OK || kos_ca_init(ca, NULL) != KOS_OK ||
	    kos_key_create(keys, DEK, KOS_KEY_DEK) != KOS_OK ||
	    kos_key_create(keys, SIGNER, KOS_KEY_EC_P256) != KOS_OK)
		goto out;
	for (i = 0; i < N_CLIENTS; i++) {
		snprintf(clients[i].name, sizeof(clients[i].name), "crash-%zu", i);
		clients[i].rng = seed ^ (unsigned)(i * 2654435761u);
		if (kos_ca_client_add(ca, clients[i].name, SCOPE, secret[i]) != KOS_OK)
			goto out;
	}
	kos_ca_free(ca);
	ca = NULL;
	kos_keys_free(keys);
	keys = NULL;
	kos_hsm_free(hsm);
	hsm = NULL;
	close_set(&s);
	/* each client enrolls through kosd, which then stops cleanly: the
	 * observations its load adds are counted from here */
	if (kos_test_kosd_start(conf_path, NULL, log_path, sock, &kosd_pid) != 0) {
		fprintf(stderr, "set-up: kosd did not start (see %s)\n", log_path);
		goto out;
	}
	for (i = 0; i < N_CLIENTS; i++)
		if (kos_test_enroll(sock, clients[i].name, secret[i]) != 0 ||
		    kos_client_new_ex(sock, KOS_CLIENT_NEW_NO_ENV, &clients[i].c) != KOS_OK ||
		    kos_client_set_credential_file(clients[i].c,
						   kos_test_cred_path(clients[i].name)) != KOS_OK)
			goto out;
	if (kos_test_kosd_stop(&kosd_pid) != 0) {
		fprintf(stderr, "set-up: kosd did not stop cleanly (see %s)\n", log_path);
		goto out;
	}
	if (open_set(&s) != KOS_OK)
		goto out;
	for (i = 0; i < N_CLIENTS; i++)
		if (stored_observations(&s, clients[i].name, &obs_before[i]) != KOS_OK)
			goto out;
	rc = 0;
out:
	if (rc != 0) {
		fprintf(stderr, "set-up: %s\n", kos_last_error());
		/* no cleanup follows a failed set-up */
		if (kosd_pid > 0) {
			kill(kosd_pid, SIGKILL);
			waitpid(kosd_pid, NULL, 0);
			kosd_pid = -1;
		}
	}
	OPENSSL_cleanse(secret, sizeof(secret));
	kos_ca_free(ca);
	kos_keys_free(keys);
	kos_hsm_free(hsm);
	close_set(&s);
	return rc;
}

static int suite_cleanup(void)
{
	if (kosd_pid > 0) {
		kill(kosd_pid, SIGKILL);
		waitpid(kosd_pid, NULL, 0);
		kosd_pid = -1;
	}
	stop_threads();
	for (size_t i = 0; i < N_CLIENTS; i++) {
		kos_client_free(clients[i].c);
		clients[i].c = NULL;
	}
	return 0;
}

/* --- the cases ------------------------------------------------------------ */

static unsigned long total_received(void)
{
	unsigned long n = 0;

	for (size_t i = 0; i < N_CLIENTS; i++)
		for (size_t r = 0; r < N_ROUTES; r++)
			n += clients[i].received[r];
	return n;
}

/* Begins a round, lets it run for secs, then announces its end and sends
 * sig to kosd; returns once every client has seen the end (0), or -1 when
 * one has not within IDLE_WAIT_SECONDS. */
static int run_and_stop(double secs, int sig, int *status)
{
	struct timespec deadline;
	int rc = 0;

	pthread_mutex_lock(&lock);
	ending = 0;
	idle = 0;
	round_no++;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
	sleep_s(secs);
	/* before the signal: a request that fails after it is the round's end */
	pthread_mutex_lock(&lock);
	ending = 1;
	pthread_mutex_unlock(&lock);
	if (sig == SIGKILL) {
		kill(kosd_pid, SIGKILL);
		if (waitpid(kosd_pid, status, 0) != kosd_pid)
			*status = -1;
		kosd_pid = -1;
	} else {
		*status = kos_test_kosd_stop(&kosd_pid);
	}
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += IDLE_WAIT_SECONDS;
	pthread_mutex_lock(&lock);
	while (idle < N_CLIENTS && rc == 0)
		if (pthread_cond_timedwait(&cond, &lock, &deadline) == ETIMEDOUT)
			rc = -1;
	pthread_mutex_unlock(&lock);
	return rc;
}

/* KILL_ROUNDS rounds ended by SIGKILL at random moments and one by SIGTERM;
 * kosd restarts on the same store each time and the clients carry on with
 * their handles, which connect again. */
static void test_load_through_kills(void)
{
	unsigned long before;
	double secs;
	int status, r;

	for (size_t i = 0; i < N_CLIENTS; i++) {
		CU_ASSERT_EQUAL_FATAL(pthread_create(&threads[i], NULL, client_main, &clients[i]),
				      0);
		n_threads++;
	}
	for (r = 1; r <= KILL_ROUNDS + 1; r++) {
		if (kos_test_kosd_start(conf_path, NULL, log_path, sock, &kosd_pid) != 0)
			fprintf(stderr, "round %d: kosd did not start (see %s)\n", r, log_path);
		CU_ASSERT_FATAL(kosd_pid > 0);
		before = total_received();
		if (r <= KILL_ROUNDS) {
			secs = KILL_AFTER_MIN + KILL_AFTER_SPAN * ((double)rand() / RAND_MAX);
			CU_ASSERT_EQUAL_FATAL(run_and_stop(secs, SIGKILL, &status), 0);
			CU_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
		} else {
			secs = LAST_ROUND_SECONDS;
			CU_ASSERT_EQUAL_FATAL(run_and_stop(secs, SIGTERM, &status), 0);
			/* the last stop is a clean one */
			CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		}
		fprintf(stderr, "round %d: %s after %.2f s, %lu answers received\n", r,
			r <= KILL_ROUNDS ? "SIGKILL" : "SIGTERM", secs, total_received() - before);
	}
	stop_threads();
	for (size_t i = 0; i < N_CLIENTS; i++) {
		const struct client *cl = &clients[i];

		if (cl->unexpected != 0)
			fprintf(stderr, "%s: %lu requests failed while kosd was up; first: %s\n",
				cl->name, cl->unexpected, cl->first_unexpected);
		CU_ASSERT_EQUAL(cl->unexpected, 0);
		/* and it was answered at all, on both routes */
		CU_ASSERT(cl->received[ROUTE_ENCRYPT] > 0 && cl->received[ROUTE_SIGN] > 0);
	}
	fprintf(stderr, "%lu answers received by %d clients\n", total_received(), N_CLIENTS);
	load_ran = 1;
}

/* Every answer a client received has its "allowed" entry of that client
 * and route in the ledger; there may be more (a request decided and
 * recorded whose answer the kill cut off). */
static void test_every_answer_is_ledgered(void)
{
	struct ledger_count lc;
	struct config_set s;
	unsigned long missing = 0, entries = 0;

	CU_ASSERT_FATAL(load_ran);
	memset(&lc, 0, sizeof(lc));
	CU_ASSERT_EQUAL_FATAL(open_set(&s), KOS_OK);
	CU_ASSERT_EQUAL(kos_ledger_list(s.st, 1, 0, count_entry, &lc), KOS_OK);
	close_set(&s);
	for (size_t i = 0; i < N_CLIENTS; i++) {
		for (size_t r = 0; r < N_ROUTES; r++) {
			unsigned long got = clients[i].received[r], have = lc.allowed[i][r];

			entries += have;
			if (have >= got)
				continue;
			fprintf(stderr,
				"%s %s: %lu answers received, %lu allowed entries in the "
				"ledger (%lu missing)\n",
				clients[i].name, route_names[r], got, have, got - have);
			missing += got - have;
			CU_ASSERT(have >= got);
		}
	}
	fprintf(stderr,
		"ledger: %lu allowed entries (%lu other) for %lu answers received, "
		"%lu missing\n",
		entries, lc.other, total_received(), missing);
	CU_ASSERT_EQUAL(missing, 0);
}

/* The chain is intact from entry 1 to the head. */
static void test_chain_verifies(void)
{
	kos_ledger_check check;
	struct config_set s;
	uint64_t head = 0;

	CU_ASSERT_FATAL(load_ran);
	CU_ASSERT_EQUAL_FATAL(open_set(&s), KOS_OK);
	CU_ASSERT_EQUAL(kos_ledger_head(s.st, &head, NULL), KOS_OK);
	if (kos_ledger_verify(s.st, &check) != KOS_OK) {
		fprintf(stderr, "ledger verify: %s\n", kos_last_error());
		CU_FAIL("the chain does not verify");
	}
	CU_ASSERT_EQUAL(check.checked, head);
	CU_ASSERT_EQUAL(check.head_seq, head);
	CU_ASSERT(head > 0);
	close_set(&s);
}

/* The trust of each client holds the two observations of every answer it
 * received. */
static void test_every_answer_is_observed(void)
{
	struct config_set s;
	uint64_t after, want, missing = 0;

	CU_ASSERT_FATAL(load_ran);
	CU_ASSERT_EQUAL_FATAL(open_set(&s), KOS_OK);
	for (size_t i = 0; i < N_CLIENTS; i++) {
		const struct client *cl = &clients[i];

		CU_ASSERT_EQUAL(stored_observations(&s, cl->name, &after), KOS_OK);
		want = obs_before[i] +
		       OBS_PER_ANSWER * (cl->received[ROUTE_ENCRYPT] + cl->received[ROUTE_SIGN]);
		if (after < want)
			fprintf(stderr,
				"%s: %llu observations stored, at least %llu + %d x %lu "
				"expected (%llu missing)\n",
				cl->name, (unsigned long long)after,
				(unsigned long long)obs_before[i], OBS_PER_ANSWER,
				cl->received[ROUTE_ENCRYPT] + cl->received[ROUTE_SIGN],
				(unsigned long long)(want - after));
		CU_ASSERT(after >= want);
		if (after < want)
			missing += want - after;
	}
	fprintf(stderr, "trust: %llu observations missing\n", (unsigned long long)missing);
	close_set(&s);
}

int main(void)
{
	static const struct kos_test_case cases[] = {
		KOS_TEST(test_load_through_kills),
		KOS_TEST(test_every_answer_is_ledgered),
		KOS_TEST(test_chain_verifies),
		KOS_TEST(test_every_answer_is_observed),
	};

	return kos_test_run("kosd-crash", suite_init, suite_cleanup, cases,
			    sizeof(cases) / sizeof(cases[0]));
}
