/* kosd benchmarks, each beside a baseline measured in the same run on the
 * same machine (usage: bench-kosd POLICY KOSD [P11-KIT-CLIENT.SO]):
 *  - server-side decrypt of 1 KiB through kosd over its Unix socket with
 *    keep-alive (libcurl), 1 and 8 concurrent clients: requests per second
 *    and p50/p99 latency, vs raw OpenSSL AES-256-GCM decrypt of 1 KiB;
 *  - P-256 signing through kosd (POST /v1/keys/NAME/sign) vs direct SoftHSM
 *    C_Sign on the same key, and vs the stock process-isolation alternative:
 *    `p11-kit server` over the same SoftHSM token, reached through
 *    p11-kit-client.so, with as many client threads (goals: kosd >= 1.2x
 *    with 1 client, >= 1.5x with 8).
 *    Each is measured with the servers placed by the scheduler, then pinned
 *    beside their clients on one CPU, then on a CPU of their own: a round
 *    trip between CPUs costs far more than one on a CPU (a sleeping CPU is
 *    woken for each message), and that decides both servers' rates. The
 *    round trip is measured too, and with it the ceiling of any server that
 *    makes one round trip per signature and does nothing else. */
#include "config.h"

#include "kos/hsm.h"
#include "kos/internal.h"
#include "tests/bench/http.h"
#include "tests/bench/bench.h"

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#define MAX_CLIENTS 8
/* a latency percentile wants more samples than a rate */
#define RUN_SECONDS (2 * BENCH_SECONDS)
#define P11_CLIENT_DEFAULT "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so"
#define SIGN_KEY "bench-ec"
#define SIGN_LABEL "kos-sign:" SIGN_KEY ":1"

static char dir[] = "/tmp/kos-bench-kosd-XXXXXX";
static char inst[128], sock[160];
static char *creds[MAX_CLIENTS];
static pid_t kosd_pid = -1, p11_pid = -1;

/* --- the baselines ---------------------------------------------------- */

struct gcm {
	EVP_CIPHER_CTX *ctx;
	unsigned char key[32], iv[12], ct[1024], pt[1024], tag[16];
};

/* One whole AES-256-GCM decryption of 1 KiB with its own key set-up and
 * tag check. */
static int gcm_decrypt(void *arg)
{
	struct gcm *g = arg;
	int len;

	if (EVP_DecryptInit_ex(g->ctx, EVP_aes_256_gcm(), NULL, g->key, g->iv) != 1 ||
	    EVP_DecryptUpdate(g->ctx, g->pt, &len, g->ct, sizeof(g->ct)) != 1 ||
	    EVP_CIPHER_CTX_ctrl(g->ctx, EVP_CTRL_GCM_SET_TAG, 16, g->tag) != 1 ||
	    EVP_DecryptFinal_ex(g->ctx, g->pt + len, &len) != 1)
		return 1;
	return 0;
}

/* C_SignInit + C_Sign (CKM_ECDSA over a SHA-256 digest computed per call,
 * as kos computes it) on one open, logged-in session of a module. */
struct p11sign {
	CK_FUNCTION_LIST *f;
	CK_SESSION_HANDLE h;
	CK_OBJECT_HANDLE priv;
	CK_SLOT_ID slot;
	uint8_t data[32];
	/* direct: sessions come from kos_hsm's pool */
	kos_hsm *hsm;
	size_t tok;
};

static int p11_sign_on(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE priv,
		       const uint8_t data[32])
{
	CK_MECHANISM mech = { CKM_ECDSA, NULL, 0 };
	uint8_t sig[64], digest[32];
	CK_ULONG len = sizeof(sig);
	CK_RV rv;

	SHA256(data, 32, digest);
	rv = f->C_SignInit(h, &mech, priv);
	if (rv == CKR_OK)
		rv = f->C_Sign(h, digest, 32, sig, &len);
	return rv != CKR_OK || len != 64;
}

static int direct_sign(void *arg)
{
	struct p11sign *p = arg;
	kos_hsm_session s;
	int rc;

	if (kos_hsm_session_get(p->hsm, p->tok, &s) != KOS_OK)
		return 1;
	rc = p11_sign_on(s.f, s.h, p->priv, p->data);
	kos_hsm_session_put(p->hsm, &s, rc == 0 ? CKR_OK : CKR_GENERAL_ERROR);
	return rc;
}

static CK_OBJECT_HANDLE find_private(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE h)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_LABEL, (void *)SIGN_LABEL, sizeof(SIGN_LABEL) - 1 },
	};
	CK_OBJECT_HANDLE o = CK_INVALID_HANDLE;
	CK_ULONG n = 0;

	if (f->C_FindObjectsInit(h, tmpl, 2) == CKR_OK) {
		f->C_FindObjects(h, &o, 1, &n);
		f->C_FindObjectsFinal(h);
	}
	return n == 1 ? o : CK_INVALID_HANDLE;
}

/* p11-kit-client.so: a session of its own on the token the main thread
 * logged in to */
struct p11state {
	CK_SESSION_HANDLE h;
	CK_OBJECT_HANDLE priv;
	CK_FUNCTION_LIST *f;
};

static int p11_open(const struct bench_workload *w, int idx, void **state)
{
	const struct p11sign *p = w->arg;
	struct p11state *s = calloc(1, sizeof(*s));

	(void)idx;
	*state = s;
	if (s == NULL)
		return -1;
	s->f = p->f;
	if (s->f->C_OpenSession(p->slot, CKF_SERIAL_SESSION, NULL, NULL, &s->h) != CKR_OK) {
		s->f = NULL;
		return -1;
	}
	s->priv = find_private(s->f, s->h);
	return s->priv == CK_INVALID_HANDLE ? -1 : 0;
}

static int p11_op(const struct bench_workload *w, void *state, char *err, size_t errlen)
{
	const struct p11sign *p = w->arg;
	struct p11state *s = state;

	if (p11_sign_on(s->f, s->h, s->priv, p->data) == 0)
		return 0;
	snprintf(err, errlen, "C_SignInit/C_Sign through p11-kit-client.so failed");
	return -1;
}

static void p11_close(void *state)
{
	struct p11state *s = state;

	if (s != NULL && s->f != NULL)
		s->f->C_CloseSession(s->h);
	free(s);
}

/* --- the machine's floor ------------------------------------------------ */

/* Seconds per round trip of 64 bytes between two processes over a Unix
 * socket pair: what any process-isolated signer pays at least once per
 * operation, whatever its protocol. */
static double socket_round_trip(int child_cpu)
{
	char buf[64] = { 0 };
	int sv[2], n = 0;
	double start, el;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return 0;
	pid = fork();
	if (pid == 0) {
		bench_pin(child_cpu);
		close(sv[0]);
		while (read(sv[1], buf, sizeof(buf)) == (ssize_t)sizeof(buf))
			if (write(sv[1], buf, sizeof(buf)) != (ssize_t)sizeof(buf))
				break;
		_exit(0);
	}
	close(sv[1]);
	start = bench_now();
	do {
		for (int i = 0; i < 256; i++, n++)
			if (write(sv[0], buf, sizeof(buf)) != (ssize_t)sizeof(buf) ||
			    read(sv[0], buf, sizeof(buf)) != (ssize_t)sizeof(buf))
				n = -1000000;
		el = bench_now() - start;
	} while (el < BENCH_SECONDS && n > 0);
	close(sv[0]);
	waitpid(pid, NULL, 0);
	return n > 0 ? el / n : 0;
}

/* --- p11-kit server ---------------------------------------------------- */

/* Starts `p11-kit server` on the signer token, loads p11-kit-client.so and
 * logs in with the signer's PIN; 0 on success, else -1 with the reason
 * printed. */
static int p11kit_open(const char *client_so, struct p11sign *p, int cpu)
{
	char p11sock[200], addr[220], log[200], pin_path[200], pin[256];
	char *argv[] = { "p11-kit", "server", "-f", "-n", p11sock, "--provider",
			 KOS_SOFTHSM_MODULE, "pkcs11:token=kos-signer", NULL };
	CK_C_GetFunctionList get;
	CK_SLOT_ID slots[32];
	CK_ULONG n = 32;
	CK_TOKEN_INFO ti;
	CK_RV rv;
	FILE *f;
	void *lib;
	size_t len;

	static int started;

	/* a new socket each time: the last server's may still be there */
	snprintf(p11sock, sizeof(p11sock), "%s/p11-kit-%d.sock", dir, ++started);
	snprintf(log, sizeof(log), "%s/p11-kit.log", dir);
	p11_pid = bench_spawn_on(argv, log, cpu);
	if (p11_pid < 0 || bench_wait_socket(p11_pid, p11sock) != 0) {
		fprintf(stderr, "p11-kit server did not start (see %s)\n", log);
		return -1;
	}
	snprintf(addr, sizeof(addr), "unix:path=%s", p11sock);
	setenv("P11_KIT_SERVER_ADDRESS", addr, 1);
	lib = dlopen(client_so, RTLD_NOW | RTLD_LOCAL);
	if (lib == NULL) {
		fprintf(stderr, "cannot load %s: %s\n", client_so, dlerror());
		return -1;
	}
	*(void **)&get = dlsym(lib, "C_GetFunctionList");
	if (get == NULL || get(&p->f) != CKR_OK) {
		fprintf(stderr, "%s: no C_GetFunctionList\n", client_so);
		return -1;
	}
	rv = p->f->C_Initialize(NULL);
	if (rv == CKR_OK)
		rv = p->f->C_GetSlotList(CK_TRUE, slots, &n);
	if (rv != CKR_OK || n == 0) {
		fprintf(stderr, "p11-kit-client.so: no token (CKR 0x%lx)\n", (unsigned long)rv);
		return -1;
	}
	if (p->f->C_GetTokenInfo(slots[0], &ti) != CKR_OK ||
	    memcmp(ti.label, "kos-signer ", 11) != 0) {
		fprintf(stderr, "p11-kit-client.so: the token is not kos-signer\n");
		return -1;
	}
	snprintf(pin_path, sizeof(pin_path), "%s/pins/signer.pin", inst);
	f = fopen(pin_path, "r");
	if (f == NULL || fgets(pin, sizeof(pin), f) == NULL) {
		fprintf(stderr, "cannot read %s\n", pin_path);
		if (f != NULL)
			fclose(f);
		return -1;
	}
	fclose(f);
	len = strcspn(pin, "\r\n");
	p->slot = slots[0];
	rv = p->f->C_OpenSession(slots[0], CKF_SERIAL_SESSION, NULL, NULL, &p->h);
	if (rv == CKR_OK)
		rv = p->f->C_Login(p->h, CKU_USER, (CK_UTF8CHAR_PTR)pin, (CK_ULONG)len);
	OPENSSL_cleanse(pin, sizeof(pin));
	if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
		fprintf(stderr, "p11-kit-client.so: login failed (CKR 0x%lx)\n", (unsigned long)rv);
		return -1;
	}
	p->priv = find_private(p->f, p->h);
	if (p->priv == CK_INVALID_HANDLE) {
		fprintf(stderr, "p11-kit-client.so: %s not found\n", SIGN_LABEL);
		return -1;
	}
	return 0;
}

/* --- set-up ------------------------------------------------------------ */

static void line(const char *what, struct bench_figures f, double base, const char *base_name,
		 const char *goal)
{
	printf("%-46s %10.0f/s  %8.4fx %-10s p50 %7.3f ms  p99 %7.3f ms%s%s\n", what, f.rate,
	       f.rate / base, base_name, f.p50 * 1e3, f.p99 * 1e3, goal ? "  goal " : "",
	       goal ? goal : "");
}

/* P-256 signing through kosd and through p11-kit server, the same number
 * of client threads each, with the servers on server_cpu and the clients
 * on client_cpu (-1: unpinned), each beside direct C_Sign. */
static void compare_signing(const char *placement, int server_cpu, int client_cpu,
			    struct p11sign *direct, const struct bench_workload *sign,
			    const char *client_so)
{
	/* the goals: kosd against p11-kit server with as many clients */
	static const int nclients[2] = { 1, MAX_CLIENTS };
	static const double goal[2] = { 1.2, 1.5 };
	struct bench_workload p11 = { .open = p11_open, .op = p11_op, .close = p11_close };
	struct bench_figures remote[2] = { { 0, 0, 0, 0, 0 }, { 0, 0, 0, 0, 0 } }, f;
	struct p11sign conn = { 0 };
	double direct_rate, rtt;
	char what[80];
	int i;

	printf("\nP-256 signing, %s:\n", placement);
	bench_pin(client_cpu);
	bench_pin_pid(kosd_pid, server_cpu);
	direct_rate = bench_rate(direct_sign, direct, 4);
	printf("%-46s %10.0f/s  (baseline)\n", "SoftHSM C_Sign, direct, one session", direct_rate);
	rtt = socket_round_trip(server_cpu);
	if (rtt > 0)
		printf("%-46s %10.1f us\n", "Unix socket round trip, 64 bytes", rtt * 1e6);
	memcpy(conn.data, direct->data, sizeof(conn.data));
	if (p11kit_open(client_so, &conn, server_cpu) == 0) {
		p11.arg = &conn;
		for (i = 0; i < 2; i++) {
			remote[i] =
				bench_run_clients(nclients[i], &p11, RUN_SECONDS, "p11-kit server");
			snprintf(what, sizeof(what), "p11-kit server, %d client%s", nclients[i],
				 i ? "s" : "");
			line(what, remote[i], direct_rate, "C_Sign", NULL);
		}
		conn.f->C_Logout(conn.h);
		conn.f->C_CloseSession(conn.h);
		conn.f->C_Finalize(NULL);
	} else {
		printf("%-46s %10s    (p11-kit server unavailable, see above)\n",
		       "p11-kit server", "-");
	}
	bench_stop(&p11_pid);
	if (rtt > 0 && remote[0].rate > 0) {
		double ceiling = 1.0 / (rtt + 1.0 / direct_rate);

		printf("%-46s %10.0f/s  %8.2fx p11-kit server, 1 client\n",
		       "ceiling: one round trip + C_Sign, nothing else", ceiling,
		       ceiling / remote[0].rate);
	}
	for (i = 0; i < 2; i++) {
		f = bench_run_clients(nclients[i], sign, RUN_SECONDS, "signing through kosd");
		snprintf(what, sizeof(what), "kosd, %d client%s", nclients[i], i ? "s" : "");
		line(what, f, direct_rate, "C_Sign", NULL);
		snprintf(what, sizeof(what), "kosd / p11-kit server, %d client%s", nclients[i],
			 i ? "s each" : " each");
		if (remote[i].rate > 0)
			printf("%-46s %10.2fx  goal >= %.1fx %s\n", what,
			       f.rate / remote[i].rate, goal[i],
			       bench_verdict(f.rate >= goal[i] * remote[i].rate));
		else
			printf("%-46s %10s   goal >= %.1fx %s (p11-kit server unavailable)\n",
			       what, "-", goal[i], bench_verdict(0));
	}
	bench_pin(-1);
}

static void cleanup(void)
{
	char cmd[200];

	bench_stop(&kosd_pid);
	bench_stop(&p11_pid);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench: could not remove %s\n", dir);
}

int main(int argc, char **argv)
{
	const char *policy = argc > 1 ? argv[1] : "policy/default.policy";
	const char *kosd = argc > 2 ? argv[2] : getenv("KOSD");
	const char *client_so = argc > 3 ? argv[3] : P11_CLIENT_DEFAULT;
	char path[200], log[200], secret[KOS_CRED_SECRET_LEN + 1], name[32];
	char *dec_body = NULL, *sign_body = NULL, *pt64 = NULL, *env64 = NULL;
	kos_config *conf = NULL;
	kos_policy *pol = NULL;
	kos_store *st = NULL;
	kos_trust *tr = NULL;
	kos_keys *keys = NULL;
	kos_ca *ca = NULL;
	struct p11sign direct = { 0 };
	struct bench_figures f;
	struct gcm g = { 0 };
	uint8_t *env = NULL;
	size_t env_len = 0;
	struct bench_workload dec, sign;
	double base;
	int len, i;

	if (kosd == NULL) {
		fprintf(stderr, "usage: bench-kosd POLICY KOSD [P11-KIT-CLIENT.SO]\n");
		return 2;
	}
	g.ctx = EVP_CIPHER_CTX_new();
	RAND_bytes(g.key, sizeof(g.key));
	RAND_bytes(g.iv, sizeof(g.iv));
	memset(g.pt, 'p', sizeof(g.pt));
	if (g.ctx == NULL || EVP_EncryptInit_ex(g.ctx, EVP_aes_256_gcm(), NULL, g.key, g.iv) != 1 ||
	    EVP_EncryptUpdate(g.ctx, g.ct, &len, g.pt, sizeof(g.pt)) != 1 ||
	    EVP_EncryptFinal_ex(g.ctx, g.ct + len, &len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(g.ctx, EVP_CTRL_GCM_GET_TAG, 16, g.tag) != 1)
		return 1;
	if (mkdtemp(dir) == NULL || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return 1;
	atexit(cleanup);

	/* an installation with a data key, a signing key and eight clients */
	snprintf(inst, sizeof(inst), "%s/inst", dir);
	snprintf(sock, sizeof(sock), "%s/kosd.sock", inst);
	snprintf(path, sizeof(path), "%s/bench.policy", dir);
	if (bench_write_policy(policy, path) != 0 || kos_devinit(inst, 0, path, NULL) != KOS_OK)
		goto fail;
	snprintf(path, sizeof(path), "%s/kos.conf", inst);
	if (kos_config_load(path, &conf, NULL) != KOS_OK ||
	    kos_policy_load(kos_config_get0_policy(conf), &pol, NULL) != KOS_OK ||
	    kos_store_open(kos_config_get0_store(conf), &st) != KOS_OK ||
	    kos_trust_new(pol, st, &tr) != KOS_OK || kos_hsm_open(conf, 0, &direct.hsm) != KOS_OK ||
	    kos_keys_new(pol, st, direct.hsm, &keys) != KOS_OK ||
	    kos_ca_new(pol, st, direct.hsm, tr, &ca) != KOS_OK || kos_ca_init(ca, NULL) != KOS_OK ||
	    kos_key_create(keys, "bench", KOS_KEY_DEK) != KOS_OK ||
	    kos_key_create(keys, SIGN_KEY, KOS_KEY_EC_P256) != KOS_OK ||
	    kos_key_encrypt(keys, "bench", "ctx", g.pt, sizeof(g.pt), &env, &env_len) != KOS_OK)
		goto fail;
	for (i = 0; i < MAX_CLIENTS; i++) {
		snprintf(name, sizeof(name), "bench-%d", i);
		if (kos_ca_client_add(ca, name, "decrypt:bench sign:" SIGN_KEY, secret) != KOS_OK ||
		    kos_cred_enroll(ca, secret, &creds[i]) != KOS_OK)
			goto fail;
	}
	OPENSSL_cleanse(secret, sizeof(secret));
	if (kos_hsm_token_find(direct.hsm, "signer", &direct.tok) != KOS_OK)
		goto fail;
	{
		kos_hsm_session s;

		if (kos_hsm_session_get(direct.hsm, direct.tok, &s) != KOS_OK)
			goto fail;
		direct.priv = find_private(s.f, s.h);
		kos_hsm_session_put(direct.hsm, &s, CKR_OK);
	}
	if (direct.priv == CK_INVALID_HANDLE) {
		fprintf(stderr, "bench: the signing key's handle was not found\n");
		goto fail;
	}
	RAND_bytes(direct.data, sizeof(direct.data));

	pt64 = bench_b64(g.pt, sizeof(g.pt));
	env64 = bench_b64(env, env_len);
	dec_body = malloc(strlen(env64 != NULL ? env64 : "") + 64);
	sign_body = bench_b64(direct.data, sizeof(direct.data));
	if (pt64 == NULL || env64 == NULL || dec_body == NULL || sign_body == NULL)
		goto fail;
	snprintf(dec_body, strlen(env64) + 64, "{\"envelope\":\"%s\",\"context\":\"ctx\"}", env64);
	{
		char *sb = malloc(strlen(sign_body) + 32);

		if (sb == NULL)
			goto fail;
		sprintf(sb, "{\"data\":\"%s\"}", sign_body);
		free(sign_body);
		sign_body = sb;
	}

	snprintf(log, sizeof(log), "%s/kosd.log", dir);
	snprintf(path, sizeof(path), "%s/kos.conf", inst);
	kosd_pid = bench_kosd_start(kosd, path, sock, log, -1);
	if (kosd_pid < 0) {
		fprintf(stderr, "bench: kosd did not start (see %s)\n", log);
		kosd_pid = -1;
		goto fail;
	}

	base = bench_rate(gcm_decrypt, &g, 4);
	printf("%-46s %10.0f/s  (baseline)\n", "OpenSSL AES-256-GCM decrypt 1 KiB", base);
	dec = bench_kosd_workload(sock, creds, "/v1/decrypt", dec_body, pt64);
	f = bench_run_clients(1, &dec, RUN_SECONDS, "decrypt through kosd");
	line("kosd decrypt 1 KiB, Unix socket, 1 client", f, base, "AES-GCM", NULL);
	f = bench_run_clients(MAX_CLIENTS, &dec, RUN_SECONDS, "decrypt through kosd");
	line("kosd decrypt 1 KiB, Unix socket, 8 clients", f, base, "AES-GCM", NULL);

	sign = bench_kosd_workload(sock, creds, "/v1/keys/" SIGN_KEY "/sign", sign_body,
				   "\"signature\"");
	/* where the scheduler puts the server beside its client decides the
	 * cost of a round trip (a CPU of its own has to be woken for every
	 * message); each placement is measured, pinned, for both servers */
	compare_signing("as the scheduler places them", -1, -1, &direct, &sign, client_so);
	if (sysconf(_SC_NPROCESSORS_ONLN) >= 2) {
		compare_signing("server and clients on one CPU", 0, 0, &direct, &sign, client_so);
		compare_signing("server on a CPU of its own", 1, 0, &direct, &sign, client_so);
	}

	bench_stop(&kosd_pid);
	for (i = 0; i < MAX_CLIENTS; i++)
		kos_cred_free(creds[i]);
	free(pt64);
	free(env64);
	free(dec_body);
	free(sign_body);
	kos_free(env);
	kos_ca_free(ca);
	kos_keys_free(keys);
	kos_hsm_free(direct.hsm);
	kos_trust_free(tr);
	kos_store_free(st);
	kos_policy_free(pol);
	kos_config_free(conf);
	EVP_CIPHER_CTX_free(g.ctx);
	curl_global_cleanup();
	return 0;
fail:
	fprintf(stderr, "bench: %s\n", kos_last_error());
	return 1;
}
