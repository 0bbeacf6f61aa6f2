/* kosd under sustained concurrent load (started from $KOSD on a development
 * installation in a temporary directory): eight client threads and two
 * client processes, each with its own credential and one keep-alive
 * connection over the Unix socket (libcurl), encrypt and decrypt for a few
 * seconds. Every answer must be right, and after SIGTERM the trust
 * observations stored for each client must be exactly those its requests
 * produced: kosd batches them in memory, so this is what proves none is lost
 * or counted twice, across threads, processes and the shutdown flush. The
 * ledger likewise holds one entry per request, in one intact chain. Then,
 * with the store refusing ledger rows, kosd queues 16384 decisions and
 * refuses the rest with 503 until the store takes them again. Last, the
 * load once more with listen.ledger = "batched". */
#include "config.h"

#include "kos/internal.h"
#include "tests/kos-test.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

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

#define N_THREADS 8
#define N_PROCS 2
#define N_CLIENTS (N_THREADS + N_PROCS)
#define LOAD_SECONDS 3.0
/* kos_access observes every admitted request twice: its latency, and its
 * success (or failure) */
#define OBS_PER_REQUEST 2

static char inst[512], sock[600];
static pid_t kosd_pid = -1;
static char *creds[N_CLIENTS];
static uint64_t obs_before[N_CLIENTS];
static uint64_t ledger_before; /* entries before kosd starts */

/* What one client did; a client process sends it back through a pipe. */
struct load_result {
	unsigned long requests; /* sent, answered or not */
	unsigned long errors;	/* transport failures and non-200 answers */
	unsigned long wrong;	/* 200 answers with the wrong content */
	long connects;		/* connections libcurl opened */
	char first_error[160];
};

static struct load_result results[N_CLIENTS];
static int load_ran;

static void client_name(size_t i, char *buf, size_t len)
{
	if (i < N_THREADS)
		snprintf(buf, len, "thread-%zu", i);
	else
		snprintf(buf, len, "proc-%zu", i - N_THREADS);
}

/* The default policy with trust made of the integrity factor alone,
 * starting at 90, so that thousands of requests a second from one client
 * (usage quota, rate anomaly, latency under ASan) cannot move it to deny. */
static int write_policy(const char *path)
{
	static const char *const edits[][2] = {
		{ "prior = 60.0;", "prior = 90.0;" },
		{ "    latency = 1.0;", "    latency = 0.0;" },
		{ "    usage = 1.0;", "    usage = 0.0;" },
		{ "    anomaly = 2.0;", "    anomaly = 0.0;" },
		{ "    reputation = 1.0;", "    reputation = 0.0;" },
	};
	return kos_test_write_policy(path, edits, sizeof(edits) / sizeof(edits[0]));
}

/* --- HTTP over the Unix socket --------------------------------------- */

struct buf {
	char *p;
	size_t n;
};

static size_t on_data(char *data, size_t size, size_t nmemb, void *arg)
{
	struct buf *b = arg;
	size_t len = size * nmemb;
	char *np = realloc(b->p, b->n + len + 1);

	if (np == NULL)
		return 0;
	memcpy(np + b->n, data, len);
	b->n += len;
	np[b->n] = '\0';
	b->p = np;
	return len;
}

struct conn {
	CURL *h;
	struct curl_slist *hdrs;
	struct buf answer;
	long connects; /* connections opened, over all its requests */
};

static int conn_open(struct conn *c, const char *cred)
{
	char auth[4096];

	memset(c, 0, sizeof(*c));
	c->h = curl_easy_init();
	if (c->h == NULL)
		return -1;
	if (cred != NULL) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", cred);
		c->hdrs = curl_slist_append(c->hdrs, auth);
	}
	c->hdrs = curl_slist_append(c->hdrs, "Content-Type: application/json");
	/* no 100-continue round trip for bodies over 1 KiB */
	c->hdrs = curl_slist_append(c->hdrs, "Expect:");
	if (c->hdrs == NULL)
		return -1;
	curl_easy_setopt(c->h, CURLOPT_UNIX_SOCKET_PATH, sock);
	curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->hdrs);
	curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c->h, CURLOPT_WRITEDATA, &c->answer);
	curl_easy_setopt(c->h, CURLOPT_TIMEOUT, 20L);
	curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
	return 0;
}

static void conn_close(struct conn *c)
{
	curl_easy_cleanup(c->h);
	curl_slist_free_all(c->hdrs);
	free(c->answer.p);
	memset(c, 0, sizeof(*c));
}

/* One request on the connection's keep-alive socket; body NULL for a GET.
 * Returns the HTTP status (0 for a transport failure); the answer is in
 * c->answer. */
static long conn_call(struct conn *c, const char *path, const char *body)
{
	char url[256];
	long status = 0, n = 0;
	CURLcode rc;

	snprintf(url, sizeof(url), "http://kos%s", path);
	c->answer.n = 0;
	if (c->answer.p != NULL)
		c->answer.p[0] = '\0';
	curl_easy_setopt(c->h, CURLOPT_URL, url);
	if (body != NULL) {
		curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	} else {
		curl_easy_setopt(c->h, CURLOPT_HTTPGET, 1L);
	}
	rc = curl_easy_perform(c->h);
	/* the count of the last transfer alone */
	if (curl_easy_getinfo(c->h, CURLINFO_NUM_CONNECTS, &n) == CURLE_OK)
		c->connects += n;
	if (rc != CURLE_OK)
		return 0;
	curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
	return status;
}

static char *b64(const uint8_t *p, size_t n)
{
	char *s = malloc(4 * ((n + 2) / 3) + 1);

	if (s != NULL)
		EVP_EncodeBlock((unsigned char *)s, p, (int)n);
	return s;
}

/* A string member of the answer's JSON object, decoded from base64; *len
 * is set. NULL when absent or not base64. */
static uint8_t *answer_b64(const struct conn *c, const char *key, size_t *len)
{
	json_t *o = json_loads(c->answer.p != NULL ? c->answer.p : "", 0, NULL);
	const char *s = json_string_value(json_object_get(o, key));
	uint8_t *out = NULL;
	size_t sl;
	int n;

	if (s == NULL || (sl = strlen(s)) % 4 != 0 || sl == 0)
		goto out;
	out = malloc(sl / 4 * 3);
	if (out == NULL)
		goto out;
	n = EVP_DecodeBlock(out, (const unsigned char *)s, (int)sl);
	if (n < 0) {
		free(out);
		out = NULL;
		goto out;
	}
	/* EVP_DecodeBlock counts the padding as zero bytes */
	n -= (s[sl - 1] == '=') + (s[sl - 2] == '=');
	*len = (size_t)n;
out:
	json_decref(o);
	return out;
}

/* --- the load -------------------------------------------------------- */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void note_error(struct load_result *r, const char *what, long status, const struct conn *c)
{
	if (r->first_error[0] == '\0')
		snprintf(r->first_error, sizeof(r->first_error), "%s: status %ld: %.100s", what,
			 status, c->answer.p != NULL ? c->answer.p : "");
}

/* Encrypts a fresh plaintext (its length and bytes vary, as does the
 * context) and decrypts the envelope, for LOAD_SECONDS; every answer is
 * checked against what was sent. */
static void run_client(size_t idx, struct load_result *r)
{
	uint8_t pt[1024], *env = NULL, *back = NULL;
	size_t pt_len, env_len = 0, back_len = 0;
	char *pt64 = NULL, *env64 = NULL, *body = NULL, ctx[64];
	double end = now_s() + LOAD_SECONDS;
	struct conn c;
	unsigned long i;
	long status;

	memset(r, 0, sizeof(*r));
	if (conn_open(&c, creds[idx]) != 0) {
		r->errors++;
		snprintf(r->first_error, sizeof(r->first_error), "curl_easy_init failed");
		return;
	}
	body = malloc(2 * sizeof(pt) + 512);
	for (i = 0; body != NULL && now_s() < end; i++) {
		pt_len = 1 + (i * 37 + idx * 101) % sizeof(pt);
		if (RAND_bytes(pt, (int)pt_len) != 1)
			break;
		snprintf(ctx, sizeof(ctx), "client %zu request %lu", idx, i);
		pt64 = b64(pt, pt_len);
		if (pt64 == NULL)
			break;
		snprintf(body, 2 * sizeof(pt) + 512, "{\"plaintext\":\"%s\",\"context\":\"%s\"}",
			 pt64, ctx);
		free(pt64);
		r->requests++;
		status = conn_call(&c, "/v1/keys/load/encrypt", body);
		env = status == 200 ? answer_b64(&c, "envelope", &env_len) : NULL;
		if (env == NULL) {
			r->errors++;
			note_error(r, "encrypt", status, &c);
			continue;
		}
		env64 = b64(env, env_len);
		free(env);
		if (env64 == NULL)
			break;
		snprintf(body, 2 * sizeof(pt) + 512, "{\"envelope\":\"%s\",\"context\":\"%s\"}",
			 env64, ctx);
		free(env64);
		r->requests++;
		status = conn_call(&c, "/v1/decrypt", body);
		back = status == 200 ? answer_b64(&c, "plaintext", &back_len) : NULL;
		if (back == NULL) {
			r->errors++;
			note_error(r, "decrypt", status, &c);
			continue;
		}
		if (back_len != pt_len || memcmp(back, pt, pt_len) != 0) {
			r->wrong++;
			note_error(r, "decrypt gave another plaintext", status, &c);
		}
		free(back);
	}
	if (body == NULL) {
		r->errors++;
		snprintf(r->first_error, sizeof(r->first_error), "out of memory");
	}
	r->connects = c.connects;
	free(body);
	conn_close(&c);
}

static void *thread_main(void *arg)
{
	size_t idx = (size_t)(uintptr_t)arg;

	run_client(idx, &results[idx]);
	return NULL;
}

/* --- kosd ------------------------------------------------------------ */

static int health(void)
{
	struct conn c;
	long status;

	if (conn_open(&c, NULL) != 0)
		return 0;
	curl_easy_setopt(c.h, CURLOPT_TIMEOUT, 2L);
	status = conn_call(&c, "/v1/health", NULL);
	conn_close(&c);
	return status == 200;
}

/* The ledger entries kosd has queued (its health answer), -1 on failure. */
static long pending_ledger(void)
{
	struct conn c;
	json_t *o;
	long n = -1;

	if (conn_open(&c, NULL) != 0)
		return -1;
	if (conn_call(&c, "/v1/health", NULL) == 200) {
		o = json_loads(c.answer.p, 0, NULL);
		if (json_is_integer(json_object_get(o, "pending_ledger")))
			n = (long)json_integer_value(json_object_get(o, "pending_ledger"));
		json_decref(o);
	}
	conn_close(&c);
	return n;
}

static int start_kosd(void)
{
	const char *bin = getenv("KOSD");
	char conf_path[600], log_path[600];

	snprintf(conf_path, sizeof(conf_path), "%s/kos.conf", inst);
	snprintf(log_path, sizeof(log_path), "%s/kosd.log", kos_test_tmpdir());
	kosd_pid = fork();
	if (kosd_pid < 0)
		return -1;
	if (kosd_pid == 0) {
		if (freopen(log_path, "a", stderr) == NULL)
			_exit(127);
		execl(bin != NULL ? bin : "./kosd", "kosd", "--config", conf_path, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		if (health())
			return 0;
		if (waitpid(kosd_pid, NULL, WNOHANG) == kosd_pid) {
			kosd_pid = -1;
			return -1;
		}
		usleep(50000);
	}
	return -1;
}

/* SIGTERM and the exit status, or -1 when it did not stop within 10 s. */
static int stop_kosd(void)
{
	int status = 0;

	if (kosd_pid <= 0)
		return -1;
	kill(kosd_pid, SIGTERM);
	for (int i = 0; i < 200; i++) {
		if (waitpid(kosd_pid, &status, WNOHANG) == kosd_pid) {
			kosd_pid = -1;
			return status;
		}
		usleep(50000);
	}
	kill(kosd_pid, SIGKILL);
	waitpid(kosd_pid, NULL, 0);
	kosd_pid = -1;
	return -1;
}

/* The installation's store, opened as another process would. */
static kos_rv open_store(kos_store **st)
{
	char path[600];
	kos_config *conf = NULL;
	kos_rv rv;

	*st = NULL;
	snprintf(path, sizeof(path), "%s/kos.conf", inst);
	rv = kos_config_load(path, &conf, NULL);
	if (rv == KOS_OK)
		rv = kos_store_open(kos_config_get0_store(conf), st);
	kos_config_free(conf);
	return rv;
}

/* Observations stored for a client, read from the store; 0 when never seen. */
static kos_rv stored_observations(const char *client, uint64_t *n)
{
	char path[600];
	kos_config *conf = NULL;
	kos_policy *pol = NULL;
	kos_store *st = NULL;
	kos_trust *tr = NULL;
	kos_trust_info info;
	kos_rv rv;

	*n = 0;
	snprintf(path, sizeof(path), "%s/kos.conf", inst);
	rv = kos_config_load(path, &conf, NULL);
	if (rv == KOS_OK)
		rv = kos_policy_load(kos_config_get0_policy(conf), &pol, NULL);
	if (rv == KOS_OK)
		rv = kos_store_open(kos_config_get0_store(conf), &st);
	if (rv == KOS_OK)
		rv = kos_trust_new(pol, st, &tr);
	if (rv == KOS_OK) {
		rv = kos_trust_get(tr, client, &info);
		if (rv == KOS_OK)
			*n = info.observations;
		else if (rv == KOS_E_NOTFOUND)
			rv = KOS_OK;
	}
	kos_trust_free(tr);
	kos_store_free(st);
	kos_policy_free(pol);
	kos_config_free(conf);
	return rv;
}

static int suite_init(void)
{
	char path[600], name[32], secret[KOS_CRED_SECRET_LEN + 1];
	kos_config *conf = NULL;
	kos_policy *pol = NULL;
	kos_store *st = NULL;
	kos_trust *tr = NULL;
	kos_hsm *hsm = NULL;
	kos_keys *keys = NULL;
	kos_ca *ca = NULL;
	int rc = 1;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return 1;
	snprintf(inst, sizeof(inst), "%s/inst", kos_test_tmpdir());
	snprintf(sock, sizeof(sock), "%s/kosd.sock", inst);
	snprintf(path, sizeof(path), "%s/test.policy", kos_test_tmpdir());
	if (write_policy(path) != 0 || kos_devinit(inst, 0, path, NULL) != KOS_OK)
		goto out;
	snprintf(path, sizeof(path), "%s/kos.conf", inst);
	/* what an administrator does before kosd starts: the CA key, the data
	 * key and one enrolled client per thread and process */
	if (kos_config_load(path, &conf, NULL) != KOS_OK ||
	    kos_policy_load(kos_config_get0_policy(conf), &pol, NULL) != KOS_OK ||
	    kos_store_open(kos_config_get0_store(conf), &st) != KOS_OK ||
	    kos_trust_new(pol, st, &tr) != KOS_OK || kos_hsm_open(conf, 0, &hsm) != KOS_OK ||
	    kos_keys_new(pol, st, hsm, &keys) != KOS_OK ||
	    kos_ca_new(pol, st, hsm, tr, &ca) != KOS_OK || kos_ca_init(ca, NULL) != KOS_OK ||
	    kos_key_create(keys, "load", KOS_KEY_DEK) != KOS_OK)
		goto out;
	for (size_t i = 0; i < N_CLIENTS; i++) {
		client_name(i, name, sizeof(name));
		if (kos_ca_client_add(ca, name, "encrypt:load decrypt:load", secret) != KOS_OK ||
		    kos_cred_enroll(ca, secret, &creds[i]) != KOS_OK)
			goto out;
	}
	kos_ca_free(ca);
	ca = NULL;
	kos_keys_free(keys);
	keys = NULL;
	kos_hsm_free(hsm);
	hsm = NULL;
	for (size_t i = 0; i < N_CLIENTS; i++) {
		client_name(i, name, sizeof(name));
		if (stored_observations(name, &obs_before[i]) != KOS_OK)
			goto out;
	}
	if (kos_ledger_head(st, &ledger_before, NULL) != KOS_OK)
		goto out;
	if (start_kosd() != 0) {
		fprintf(stderr, "set-up: kosd did not start (see %s/kosd.log)\n",
			kos_test_tmpdir());
		goto out;
	}
	rc = 0;
out:
	if (rc != 0)
		fprintf(stderr, "set-up: %s\n", kos_last_error());
	OPENSSL_cleanse(secret, sizeof(secret));
	kos_ca_free(ca);
	kos_keys_free(keys);
	kos_hsm_free(hsm);
	kos_trust_free(tr);
	kos_store_free(st);
	kos_policy_free(pol);
	kos_config_free(conf);
	return rc;
}

static int suite_cleanup(void)
{
	int rc = 0;

	if (kosd_pid > 0 && stop_kosd() != 0)
		rc = 1;
	for (size_t i = 0; i < N_CLIENTS; i++) {
		kos_cred_free(creds[i]);
		creds[i] = NULL;
	}
	curl_global_cleanup();
	return rc;
}

/* A client process: the load, its result written to fd. */
static void proc_main(size_t idx, int fd)
{
	struct load_result r;
	const char *p = (const char *)&r;
	size_t left = sizeof(r);
	ssize_t n;

	run_client(idx, &r);
	while (left > 0) {
		n = write(fd, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(1);
		p += n;
		left -= (size_t)n;
	}
	_exit(0);
}

static int read_result(int fd, struct load_result *r)
{
	char *p = (char *)r;
	size_t left = sizeof(*r);
	ssize_t n;

	while (left > 0) {
		n = read(fd, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		left -= (size_t)n;
	}
	return 0;
}

/* The load from the N_THREADS client threads of this process, their
 * results in results[]. */
static void run_threads(void)
{
	pthread_t th[N_THREADS];
	size_t i;

	for (i = 0; i < N_THREADS; i++)
		CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, thread_main, (void *)(uintptr_t)i),
				      0);
	for (i = 0; i < N_THREADS; i++)
		pthread_join(th[i], NULL);
}

/* Ten clients at once, every answer checked; each keeps its one connection. */
static void test_concurrent_clients_get_right_answers(void)
{
	pid_t pids[N_PROCS];
	int fds[N_PROCS][2], status;
	unsigned long total = 0;
	char name[32];
	size_t i;

	CU_ASSERT_FATAL(kosd_pid > 0);
	/* the processes first, while this one has a single thread */
	for (i = 0; i < N_PROCS; i++) {
		CU_ASSERT_EQUAL_FATAL(pipe(fds[i]), 0);
		pids[i] = fork();
		CU_ASSERT_FATAL(pids[i] >= 0);
		if (pids[i] == 0) {
			close(fds[i][0]);
			proc_main(N_THREADS + i, fds[i][1]);
		}
		close(fds[i][1]);
	}
	run_threads();
	for (i = 0; i < N_PROCS; i++) {
		struct load_result *r = &results[N_THREADS + i];

		CU_ASSERT_EQUAL(read_result(fds[i][0], r), 0);
		close(fds[i][0]);
		CU_ASSERT_EQUAL(waitpid(pids[i], &status, 0), pids[i]);
		CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	for (i = 0; i < N_CLIENTS; i++) {
		const struct load_result *r = &results[i];

		client_name(i, name, sizeof(name));
		if (r->errors != 0 || r->wrong != 0)
			fprintf(stderr, "%s: %lu errors, %lu wrong answers; first: %s\n", name,
				r->errors, r->wrong, r->first_error);
		CU_ASSERT_EQUAL(r->errors, 0);
		CU_ASSERT_EQUAL(r->wrong, 0);
		/* the two requests of a round and the rounds themselves */
		CU_ASSERT(r->requests >= 2 && r->requests % 2 == 0);
		CU_ASSERT_EQUAL(r->connects, 1);
		total += r->requests;
	}
	fprintf(stderr, "%lu requests in %.0f s from %d clients\n", total, LOAD_SECONDS,
		N_CLIENTS);
	CU_ASSERT(health());
	load_ran = 1;
}

/* SIGTERM flushes the batched observations: exactly two per request, per
 * client. */
static void test_shutdown_stores_every_observation(void)
{
	char name[32];
	uint64_t after;
	unsigned long total = 0;
	kos_ledger_check check;
	kos_store *st = NULL;

	struct conn c;

	CU_ASSERT_FATAL(load_ran);
	/* a last few requests right before SIGTERM, so that some observations
	 * are still queued (kosd writes them every 100 ms) when it stops */
	CU_ASSERT_EQUAL_FATAL(conn_open(&c, creds[0]), 0);
	for (int i = 0; i < 5; i++) {
		CU_ASSERT_EQUAL(conn_call(&c, "/v1/keys/load/encrypt", "{\"plaintext\":\"aGk=\"}"),
				200);
		results[0].requests++;
	}
	conn_close(&c);
	CU_ASSERT_EQUAL_FATAL(stop_kosd(), 0);
	for (size_t i = 0; i < N_CLIENTS; i++) {
		client_name(i, name, sizeof(name));
		CU_ASSERT_EQUAL_FATAL(stored_observations(name, &after), KOS_OK);
		if (after != obs_before[i] + OBS_PER_REQUEST * results[i].requests)
			fprintf(stderr, "%s: %llu observations stored, %llu + %d x %lu expected\n",
				name, (unsigned long long)after,
				(unsigned long long)obs_before[i], OBS_PER_REQUEST,
				results[i].requests);
		CU_ASSERT_EQUAL(after, obs_before[i] + OBS_PER_REQUEST * results[i].requests);
		total += results[i].requests;
	}
	/* and one ledger entry per request, in one intact chain */
	CU_ASSERT_EQUAL_FATAL(open_store(&st), KOS_OK);
	CU_ASSERT_EQUAL(kos_ledger_verify(st, &check), KOS_OK);
	if (check.checked != ledger_before + total)
		fprintf(stderr, "ledger: %llu entries, %llu + %lu expected\n",
			(unsigned long long)check.checked, (unsigned long long)ledger_before, total);
	CU_ASSERT_EQUAL(check.checked, ledger_before + total);
	kos_store_free(st);
}

/* Answers of n requests from one client thread: how many were 200, 503
 * with "unavailable", and anything else. */
struct burst {
	size_t idx;
	unsigned long n, ok, refused, other;
};

static void *burst_main(void *arg)
{
	struct burst *b = arg;
	struct conn c;
	long status;

	if (conn_open(&c, creds[b->idx]) != 0) {
		b->other = b->n;
		return NULL;
	}
	for (unsigned long i = 0; i < b->n; i++) {
		status = conn_call(&c, "/v1/keys", NULL);
		if (status == 200)
			b->ok++;
		else if (status == 503 && c.answer.p != NULL &&
			 strstr(c.answer.p, "\"error\":\"unavailable\"") != NULL)
			b->refused++;
		else
			b->other++;
	}
	conn_close(&c);
	return NULL;
}

/* n requests from each of N_THREADS threads; the sums in *sum. */
static void burst(unsigned long n, struct burst *sum)
{
	pthread_t th[N_THREADS];
	struct burst b[N_THREADS];
	size_t i;

	memset(sum, 0, sizeof(*sum));
	for (i = 0; i < N_THREADS; i++) {
		memset(&b[i], 0, sizeof(b[i]));
		b[i].idx = i;
		b[i].n = n;
		CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, burst_main, &b[i]), 0);
	}
	for (i = 0; i < N_THREADS; i++) {
		pthread_join(th[i], NULL);
		sum->n += b[i].n;
		sum->ok += b[i].ok;
		sum->refused += b[i].refused;
		sum->other += b[i].other;
	}
}

/* The refusal again, after counting 36 million rows (about half a
 * second): a flush that is slow to fail. */
#define SLOW_REFUSAL                                                                      \
	"DROP TRIGGER test_refuse; CREATE TABLE test_slow(x); "                           \
	"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 6000) " \
	"INSERT INTO test_slow SELECT x FROM c; "                                         \
	"CREATE TRIGGER test_refuse BEFORE INSERT ON ledger BEGIN "                       \
	"SELECT RAISE(ABORT, 'disk full') WHERE "                                         \
	"(SELECT count(*) FROM test_slow a, test_slow b) > 0; END"

/* While the store refuses ledger entries, no decision is answered: each
 * one's group commit fails and it is answered 503, its entry kept in the
 * queue for when the store takes it; once 16384 wait, kosd refuses
 * decisions before making them (503 too). When the store takes them again,
 * every queued entry is written and kosd decides again. */
static void test_full_ledger_refuses_decisions(void)
{
	char db[600];
	struct burst first, second;
	kos_ledger_check check;
	kos_store *st = NULL;
	uint64_t before;
	long queued, least;

	snprintf(db, sizeof(db), "%s/state.db", inst);
	CU_ASSERT_EQUAL_FATAL(open_store(&st), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_ledger_head(st, &before, NULL), KOS_OK);
	kos_store_free(st);
	st = NULL;
	/* the store refuses ledger rows, as a full disk would */
	CU_ASSERT_EQUAL_FATAL(kos_test_sql_exec(db, "CREATE TRIGGER test_refuse BEFORE INSERT ON "
						    "ledger BEGIN SELECT RAISE(ABORT, 'disk "
						    "full'); END"),
			      0);
	CU_ASSERT_EQUAL_FATAL(start_kosd(), 0);
	/* 8 x 2100 = 16800 requests: none answered with what was decided */
	burst(2100, &first);
	fprintf(stderr, "store refusing: %lu answered, %lu refused, %lu other\n", first.ok,
		first.refused, first.other);
	CU_ASSERT_EQUAL(first.other, 0);
	CU_ASSERT_EQUAL(first.ok, 0);
	CU_ASSERT_EQUAL(first.refused, first.n);
	CU_ASSERT(health());
	/* the decisions made wait in the queue, at least up to its cap */
	queued = pending_ledger();
	fprintf(stderr, "queued while refusing: %ld\n", queued);
	CU_ASSERT(queued >= 16384 && queued <= (long)first.n);
	/* while a flush is writing them (here refused after 0.5 s, every 2 s)
	 * they are still waiting: health counts them and the cap holds */
	CU_ASSERT_EQUAL_FATAL(kos_test_sql_exec(db, SLOW_REFUSAL), 0);
	least = LONG_MAX;
	for (int i = 0; i < 60; i++) {
		long n = pending_ledger();

		if (n < least)
			least = n;
		usleep(50000);
	}
	fprintf(stderr, "least queued while refusing slowly: %ld\n", least);
	CU_ASSERT_EQUAL(least, queued);
	CU_ASSERT_EQUAL_FATAL(kos_test_sql_exec(db, "DROP TRIGGER test_refuse"), 0);
	/* the next flush (every 100 ms) writes the queue; decisions resume */
	for (int i = 0; i < 200 && pending_ledger() != 0; i++)
		usleep(50000);
	CU_ASSERT_EQUAL(pending_ledger(), 0);
	burst(10, &second);
	CU_ASSERT_EQUAL(second.ok, second.n);
	CU_ASSERT_EQUAL_FATAL(stop_kosd(), 0);
	CU_ASSERT_EQUAL_FATAL(open_store(&st), KOS_OK);
	CU_ASSERT_EQUAL(kos_ledger_verify(st, &check), KOS_OK);
	CU_ASSERT_EQUAL(check.checked, before + (uint64_t)queued + second.ok);
	kos_store_free(st);
}

/* listen.ledger = "batched": the same load on the worker threads, where
 * each answer is posted to the loop on its own as soon as it is made (no
 * group commit): every answer right, kosd up, a clean stop and an intact
 * chain. A request taken from the work queue once carried the queue's next
 * one into the answer list, and kosd crashed within a second of this. */
static void test_batched_ledger_under_load(void)
{
	char conf_path[600], *text = NULL, *at, *edited = NULL;
	const char *listen = "listen = { ";
	kos_ledger_check check;
	kos_store *st = NULL;
	unsigned long total = 0;
	size_t len = 0, i;
	FILE *f;

	snprintf(conf_path, sizeof(conf_path), "%s/kos.conf", inst);
	f = fopen(conf_path, "r");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	text = calloc(1, 65536);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	len = fread(text, 1, 65535, f);
	fclose(f);
	CU_ASSERT_FATAL(len > 0 && len < 65535);
	at = strstr(text, listen);
	CU_ASSERT_PTR_NOT_NULL_FATAL(at);
	CU_ASSERT_FATAL(asprintf(&edited, "%.*s%sledger = \"batched\"; %s", (int)(at - text), text,
				 listen, at + strlen(listen)) > 0);
	CU_ASSERT_EQUAL_FATAL(kos_test_write_text(conf_path, edited), 0);
	free(edited);
	free(text);
	CU_ASSERT_EQUAL_FATAL(start_kosd(), 0);
	memset(results, 0, sizeof(results));
	run_threads();
	for (i = 0; i < N_THREADS; i++) {
		if (results[i].errors != 0 || results[i].wrong != 0)
			fprintf(stderr, "batched, client %zu: %lu errors, %lu wrong; first: %s\n", i,
				results[i].errors, results[i].wrong, results[i].first_error);
		CU_ASSERT_EQUAL(results[i].errors, 0);
		CU_ASSERT_EQUAL(results[i].wrong, 0);
		CU_ASSERT(results[i].requests >= 2);
		total += results[i].requests;
	}
	fprintf(stderr, "batched ledger: %lu requests in %.0f s from %d clients\n", total,
		LOAD_SECONDS, N_THREADS);
	CU_ASSERT(health());
	CU_ASSERT_EQUAL_FATAL(stop_kosd(), 0);
	CU_ASSERT_EQUAL_FATAL(open_store(&st), KOS_OK);
	CU_ASSERT_EQUAL(kos_ledger_verify(st, &check), KOS_OK);
	kos_store_free(st);
}

int main(void)
{
	static const struct kos_test_case cases[] = {
		KOS_TEST(test_concurrent_clients_get_right_answers),
		KOS_TEST(test_shutdown_stores_every_observation),
		KOS_TEST(test_full_ledger_refuses_decisions),
		KOS_TEST(test_batched_ledger_under_load),
	};

	return kos_test_run("kosd-load", suite_init, suite_cleanup, cases,
			    sizeof(cases) / sizeof(cases[0]));
}
