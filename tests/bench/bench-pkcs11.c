/* The PKCS#11 module's benchmarks, each beside a baseline measured in the
 * same run (usage: bench-pkcs11 POLICY KOSD MODULE [P11-KIT-CLIENT.SO]):
 *  - P-256 C_SignInit + C_Sign (CKM_ECDSA over a SHA-256 digest) through
 *    libkos-pkcs11.so, that is kosd and SoftHSM behind it, vs the stock
 *    process isolation with the same API: p11-kit-client.so through
 *    `p11-kit server` over the same SoftHSM token; 1 and 8 threads, each
 *    with a session of its own (goals: >= 1.2x with 1, >= 1.5x with 8).
 *    Measured with the servers placed by the scheduler, then with every
 *    process on one CPU (a round trip between CPUs wakes a sleeping one
 *    and decides both servers' rates; FIELD-NOTES);
 *  - C_EncryptInit + C_Encrypt CKM_AES_GCM of 1 KiB for a high-tier
 *    client, which encrypts locally with the DEK kosd delivered, vs raw
 *    OpenSSL EVP AES-256-GCM of 1 KiB with its own key set-up (goal:
 *    >= 0.8x);
 *  - C_FindObjectsInit + C_FindObjects + C_FindObjectsFinal of one label
 *    among 10, 100 and 1,000 keys the client's scope reaches, on one CPU:
 *    time per lookup and its growth (goal: flat, the filter is kosd's).
 * Figures, never assertions: the run fails only when an operation does. */
#include "config.h"

#include "kos/hsm.h"
#include "kos/internal.h"
#include "tests/bench/bench.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#define MAX_THREADS 8
#define P11_CLIENT_DEFAULT "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so"
#define SIGN_KEY "bench-ec"
#define SIGN_LABEL_HSM "kos-sign:" SIGN_KEY ":1" /* its object in the signer token */
#define DEK "bench"
#define FIND_MAX 1000

static char dir[] = "/tmp/kos-bench-pkcs11-XXXXXX";
static char inst[128], sock[160];
static pid_t kosd_pid = -1, p11_pid = -1;

static void cleanup(void)
{
	char cmd[200];

	bench_stop(&kosd_pid);
	bench_stop(&p11_pid);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench: could not remove %s\n", dir);
}

/* --- a PKCS#11 module -------------------------------------------------- */

struct module {
	const char *name;
	CK_FUNCTION_LIST *f;
	CK_SLOT_ID slot;
	CK_SESSION_HANDLE login; /* the session that logged in */
	const char *sign_label;	 /* the P-256 private key's CKA_LABEL */
};

static void die_rv(const char *what, const char *fn, CK_RV rv)
{
	fprintf(stderr, "bench: %s: %s failed: CKR 0x%lx\n", what, fn, (unsigned long)rv);
	exit(1);
}

/* Loads a module, initialises it for threads and opens a session on its
 * first token, logged in with pin (NULL: the protected path). */
static void module_open(struct module *m, const char *path, const char *pin)
{
	CK_C_INITIALIZE_ARGS args = { .flags = CKF_OS_LOCKING_OK };
	CK_C_GetFunctionList get;
	CK_SLOT_ID slots[16];
	CK_ULONG n = 16;
	CK_RV rv;
	void *lib;

	lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (lib == NULL) {
		fprintf(stderr, "bench: cannot load %s: %s\n", path, dlerror());
		exit(1);
	}
	*(void **)&get = dlsym(lib, "C_GetFunctionList");
	if (get == NULL || get(&m->f) != CKR_OK) {
		fprintf(stderr, "bench: %s: no C_GetFunctionList\n", path);
		exit(1);
	}
	rv = m->f->C_Initialize(&args);
	if (rv != CKR_OK)
		die_rv(m->name, "C_Initialize", rv);
	rv = m->f->C_GetSlotList(CK_TRUE, slots, &n);
	if (rv != CKR_OK || n == 0)
		die_rv(m->name, "C_GetSlotList (a token)", rv != CKR_OK ? rv : CKR_TOKEN_NOT_PRESENT);
	m->slot = slots[0];
	rv = m->f->C_OpenSession(m->slot, CKF_SERIAL_SESSION, NULL, NULL, &m->login);
	if (rv != CKR_OK)
		die_rv(m->name, "C_OpenSession", rv);
	rv = m->f->C_Login(m->login, CKU_USER, (CK_UTF8CHAR_PTR)pin,
			   pin != NULL ? (CK_ULONG)strlen(pin) : 0);
	if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN)
		die_rv(m->name, "C_Login", rv);
}

static void module_close(struct module *m)
{
	m->f->C_Logout(m->login);
	m->f->C_CloseSession(m->login);
	m->f->C_Finalize(NULL);
}

/* One lookup by label and class: the handle, or CK_INVALID_HANDLE. */
static CK_OBJECT_HANDLE find(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE h, CK_OBJECT_CLASS cls,
			     const char *label)
{
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_LABEL, (void *)label, strlen(label) },
	};
	CK_OBJECT_HANDLE o[2];
	CK_ULONG n = 0;

	if (f->C_FindObjectsInit(h, tmpl, 2) != CKR_OK)
		return CK_INVALID_HANDLE;
	if (f->C_FindObjects(h, o, 2, &n) != CKR_OK)
		n = 0;
	f->C_FindObjectsFinal(h);
	return n == 1 ? o[0] : CK_INVALID_HANDLE;
}

/* --- signing in threads ------------------------------------------------ */

struct signer {
	struct module *m;
	pthread_barrier_t *start;
	double end;
	unsigned long n;
	CK_RV failed;
};

static CK_RV sign_once(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE key,
		       unsigned long i)
{
	CK_MECHANISM mech = { CKM_ECDSA, NULL, 0 };
	uint8_t digest[32], sig[64];
	CK_ULONG len = sizeof(sig);
	CK_RV rv;

	/* a digest per call, as an application signs a new message each time */
	SHA256((const uint8_t *)&i, sizeof(i), digest);
	rv = f->C_SignInit(h, &mech, key);
	if (rv == CKR_OK)
		rv = f->C_Sign(h, digest, sizeof(digest), sig, &len);
	if (rv == CKR_OK && len != 64)
		rv = CKR_FUNCTION_FAILED;
	return rv;
}

static void *signer_main(void *arg)
{
	struct signer *s = arg;
	CK_FUNCTION_LIST *f = s->m->f;
	CK_SESSION_HANDLE h;
	CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
	CK_RV rv;

	rv = f->C_OpenSession(s->m->slot, CKF_SERIAL_SESSION, NULL, NULL, &h);
	if (rv == CKR_OK) {
		key = find(f, h, CKO_PRIVATE_KEY, s->m->sign_label);
		/* and one signature before the clock starts: a connection, a
		 * session on the token and the key's handle are set-up */
		rv = key == CK_INVALID_HANDLE ? CKR_KEY_HANDLE_INVALID : sign_once(f, h, key, 0);
	}
	pthread_barrier_wait(s->start);
	if (rv != CKR_OK) {
		s->failed = rv;
		return NULL;
	}
	while (bench_now() < s->end) {
		rv = sign_once(f, h, key, ++s->n);
		if (rv != CKR_OK) {
			s->failed = rv;
			break;
		}
	}
	f->C_CloseSession(h);
	return NULL;
}

/* Signatures per second over nthreads threads, each on a session of its
 * own. */
static double sign_rate(struct module *m, int nthreads)
{
	struct signer s[MAX_THREADS];
	pthread_t th[MAX_THREADS];
	pthread_barrier_t start;
	unsigned long total = 0;
	double t0;
	int i;

	memset(s, 0, sizeof(s));
	pthread_barrier_init(&start, NULL, (unsigned)nthreads + 1);
	for (i = 0; i < nthreads; i++) {
		s[i].m = m;
		s[i].start = &start;
		s[i].end = 1e300;
		if (pthread_create(&th[i], NULL, signer_main, &s[i]) != 0) {
			fprintf(stderr, "bench: pthread_create failed\n");
			exit(1);
		}
	}
	/* end is set once every thread is ready, before they are released */
	t0 = bench_now();
	for (i = 0; i < nthreads; i++)
		s[i].end = t0 + 2 * BENCH_SECONDS;
	pthread_barrier_wait(&start);
	t0 = bench_now();
	for (i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < nthreads; i++) {
		if (s[i].failed != CKR_OK)
			die_rv(m->name, "C_SignInit/C_Sign", s[i].failed);
		total += s[i].n;
	}
	pthread_barrier_destroy(&start);
	return (double)total / (bench_now() - t0);
}

/* Starts `p11-kit server` on the signer token (on cpu, -1: anywhere) and
 * opens p11-kit-client.so on it with the signer's PIN. */
static void p11kit_open(struct module *m, const char *client_so, int cpu)
{
	static int started;
	char p11sock[200], addr[220], log[200], pin_path[200], pin[256];
	char *argv[] = { "p11-kit", "server", "-f", "-n", p11sock, "--provider",
			 KOS_SOFTHSM_MODULE, "pkcs11:token=kos-signer", NULL };
	FILE *f;

	snprintf(p11sock, sizeof(p11sock), "%s/p11-kit-%d.sock", dir, ++started);
	snprintf(log, sizeof(log), "%s/p11-kit.log", dir);
	p11_pid = bench_spawn(argv, log);
	if (p11_pid < 0 || bench_wait_socket(p11_pid, p11sock) != 0) {
		fprintf(stderr, "bench: p11-kit server did not start (see %s)\n", log);
		exit(1);
	}
	bench_pin_pid(p11_pid, cpu);
	snprintf(addr, sizeof(addr), "unix:path=%s", p11sock);
	setenv("P11_KIT_SERVER_ADDRESS", addr, 1);
	snprintf(pin_path, sizeof(pin_path), "%s/pins/signer.pin", inst);
	f = fopen(pin_path, "r");
	if (f == NULL || fgets(pin, sizeof(pin), f) == NULL) {
		fprintf(stderr, "bench: cannot read %s\n", pin_path);
		exit(1);
	}
	fclose(f);
	pin[strcspn(pin, "\r\n")] = '\0';
	m->name = "p11-kit-client.so";
	m->sign_label = SIGN_LABEL_HSM;
	module_open(m, client_so, pin);
	OPENSSL_cleanse(pin, sizeof(pin));
}

static void compare_signing(const char *placement, int cpu, struct module *kos,
			    const char *client_so)
{
	static const int nthreads[2] = { 1, MAX_THREADS };
	static const char *goal[2] = { ">= 1.2x", ">= 1.5x" };
	struct module p11 = { 0 };
	double base[2], rate;
	char what[80];

	printf("\nP-256 C_Sign, %s:\n", placement);
	bench_pin(cpu);
	bench_pin_pid(kosd_pid, cpu);
	p11kit_open(&p11, client_so, cpu);
	for (int i = 0; i < 2; i++) {
		base[i] = sign_rate(&p11, nthreads[i]);
		snprintf(what, sizeof(what), "p11-kit server, %d thread%s", nthreads[i], i ? "s" : "");
		printf("%-48s %9.0f/s  (baseline)\n", what, base[i]);
	}
	module_close(&p11);
	bench_stop(&p11_pid);
	for (int i = 0; i < 2; i++) {
		rate = sign_rate(kos, nthreads[i]);
		snprintf(what, sizeof(what), "libkos-pkcs11.so + kosd, %d thread%s", nthreads[i],
			 i ? "s" : "");
		printf("%-48s %9.0f/s  %6.2fx p11-kit server  goal %s\n", what, rate,
		       rate / base[i], goal[i]);
	}
	bench_pin(-1);
	bench_pin_pid(kosd_pid, -1);
}

/* --- AES-GCM ------------------------------------------------------------ */

struct gcm {
	/* OpenSSL */
	EVP_CIPHER_CTX *ctx;
	unsigned char key[32];
	/* the module */
	CK_FUNCTION_LIST *f;
	CK_SESSION_HANDLE h;
	CK_OBJECT_HANDLE dek;
	/* both */
	unsigned char iv[12], aad[16], pt[1024], ct[1024 + 16];
	uint64_t counter;
};

/* a new IV per message, as GCM needs: a counter in its last 8 bytes */
static void next_iv(struct gcm *g)
{
	g->counter++;
	memcpy(g->iv + 4, &g->counter, 8);
}

static int gcm_openssl(void *arg)
{
	struct gcm *g = arg;
	int len, fin;

	next_iv(g);
	if (EVP_EncryptInit_ex(g->ctx, EVP_aes_256_gcm(), NULL, g->key, g->iv) != 1 ||
	    EVP_EncryptUpdate(g->ctx, NULL, &len, g->aad, sizeof(g->aad)) != 1 ||
	    EVP_EncryptUpdate(g->ctx, g->ct, &len, g->pt, sizeof(g->pt)) != 1 ||
	    EVP_EncryptFinal_ex(g->ctx, g->ct + len, &fin) != 1 ||
	    EVP_CIPHER_CTX_ctrl(g->ctx, EVP_CTRL_GCM_GET_TAG, 16, g->ct + sizeof(g->pt)) != 1)
		return 1;
	return 0;
}

static int gcm_module(void *arg)
{
	struct gcm *g = arg;
	CK_GCM_PARAMS p = { g->iv, sizeof(g->iv), 96, g->aad, sizeof(g->aad), 128 };
	CK_MECHANISM mech = { CKM_AES_GCM, &p, sizeof(p) };
	CK_ULONG len = sizeof(g->ct);
	CK_RV rv;

	next_iv(g);
	rv = g->f->C_EncryptInit(g->h, &mech, g->dek);
	if (rv == CKR_OK)
		rv = g->f->C_Encrypt(g->h, g->pt, sizeof(g->pt), g->ct, &len);
	if (rv != CKR_OK || len != sizeof(g->ct)) {
		fprintf(stderr, "bench: C_EncryptInit/C_Encrypt AES-GCM: CKR 0x%lx\n",
			(unsigned long)rv);
		return 1;
	}
	return 0;
}

/* --- lookups ------------------------------------------------------------ */

struct lookup {
	CK_FUNCTION_LIST *f;
	CK_SESSION_HANDLE h;
	char label[32];
};

static int lookup_one(void *arg)
{
	struct lookup *l = arg;

	return find(l->f, l->h, CKO_PRIVATE_KEY, l->label) == CK_INVALID_HANDLE;
}

/* --- set-up ------------------------------------------------------------- */

static int write_secret_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	size_t len = strlen(text);
	int rc;

	if (fd < 0)
		return -1;
	rc = write(fd, text, len) == (ssize_t)len ? 0 : -1;
	if (close(fd) != 0)
		rc = -1;
	return rc;
}

static int create_find_keys(kos_keys *keys, int from, int to)
{
	char name[32];

	for (int i = from; i < to; i++) {
		snprintf(name, sizeof(name), "find-%04d", i);
		if (kos_key_create(keys, name, KOS_KEY_ED25519) != KOS_OK)
			return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *policy = argc > 1 ? argv[1] : "policy/default.policy";
	const char *kosd = argc > 2 ? argv[2] : getenv("KOSD");
	const char *module = argc > 3 ? argv[3] : NULL;
	const char *client_so = argc > 4 ? argv[4] : P11_CLIENT_DEFAULT;
	static const int counts[] = { 10, 100, FIND_MAX };
	char path[200], log[200], cred_path[200], conf_path[200], conf_text[600];
	char secret[KOS_CRED_SECRET_LEN + 1];
	char *kosd_argv[] = { NULL, "--config", path, NULL };
	char *cred = NULL;
	kos_config *conf = NULL;
	kos_policy *pol = NULL;
	kos_store *st = NULL;
	kos_trust *tr = NULL;
	kos_keys *keys = NULL;
	kos_ca *ca = NULL;
	kos_hsm *hsm = NULL;
	struct module kos = { .name = "libkos-pkcs11.so", .sign_label = SIGN_KEY };
	struct gcm g = { 0 };
	struct lookup l;
	double base, rate, per[3];
	int have = 0;

	if (kosd == NULL || module == NULL) {
		fprintf(stderr, "usage: bench-pkcs11 POLICY KOSD MODULE [P11-KIT-CLIENT.SO]\n");
		return 2;
	}
	kosd_argv[0] = (char *)kosd;
	if (mkdtemp(dir) == NULL)
		return 1;
	atexit(cleanup);

	/* an installation with a data key, a signing key and one client */
	snprintf(inst, sizeof(inst), "%s/inst", dir);
	snprintf(sock, sizeof(sock), "%s/kosd.sock", inst);
	snprintf(path, sizeof(path), "%s/bench.policy", dir);
	if (bench_write_policy(policy, path) != 0 || kos_devinit(inst, 0, path, NULL) != KOS_OK)
		goto fail;
	snprintf(path, sizeof(path), "%s/kos.conf", inst);
	if (kos_config_load(path, &conf, NULL) != KOS_OK ||
	    kos_policy_load(kos_config_get0_policy(conf), &pol, NULL) != KOS_OK ||
	    kos_store_open(kos_config_get0_store(conf), &st) != KOS_OK ||
	    kos_trust_new(pol, st, &tr) != KOS_OK || kos_hsm_open(conf, 0, &hsm) != KOS_OK ||
	    kos_keys_new(pol, st, hsm, &keys) != KOS_OK ||
	    kos_ca_new(pol, st, hsm, tr, &ca) != KOS_OK || kos_ca_init(ca, NULL) != KOS_OK ||
	    kos_key_create(keys, DEK, KOS_KEY_DEK) != KOS_OK ||
	    kos_key_create(keys, SIGN_KEY, KOS_KEY_EC_P256) != KOS_OK ||
	    create_find_keys(keys, 0, counts[0]) != 0)
		goto fail;
	have = counts[0];
	if (kos_ca_client_add(ca, "bench",
			      "sign:" SIGN_KEY " pubkey:* encrypt:" DEK " decrypt:" DEK " key:" DEK
			      " sign:find-*",
			      secret) != KOS_OK ||
	    kos_cred_enroll(ca, secret, &cred) != KOS_OK)
		goto fail;
	OPENSSL_cleanse(secret, sizeof(secret));
	snprintf(cred_path, sizeof(cred_path), "%s/bench.cred", dir);
	snprintf(conf_path, sizeof(conf_path), "%s/pkcs11.json", dir);
	snprintf(conf_text, sizeof(conf_text),
		 "{\"slots\": [{\"label\": \"kos\", \"server\": \"unix:%s\", "
		 "\"credential_file\": \"%s\"}]}\n",
		 sock, cred_path);
	if (write_secret_file(cred_path, cred) != 0 || write_secret_file(conf_path, conf_text) != 0)
		goto fail;
	kos_cred_free(cred);
	cred = NULL;
	setenv("KOS_PKCS11_CONF", conf_path, 1);

	snprintf(log, sizeof(log), "%s/kosd.log", dir);
	kosd_pid = bench_spawn(kosd_argv, log);
	if (kosd_pid < 0 || bench_wait_socket(kosd_pid, sock) != 0) {
		fprintf(stderr, "bench: kosd did not start (see %s)\n", log);
		kosd_pid = -1;
		goto fail;
	}
	/* the credential file names the client: a NULL PIN logs in */
	module_open(&kos, module, NULL);

	compare_signing("as the scheduler places them", -1, &kos, client_so);
	if (sysconf(_SC_NPROCESSORS_ONLN) >= 2)
		compare_signing("every process on CPU 0", 0, &kos, client_so);

	/* AES-GCM: the first C_Encrypt fetches the DEK, the rest are local */
	g.ctx = EVP_CIPHER_CTX_new();
	if (g.ctx == NULL)
		goto fail;
	RAND_bytes(g.key, sizeof(g.key));
	RAND_bytes(g.iv, sizeof(g.iv));
	RAND_bytes(g.aad, sizeof(g.aad));
	memset(g.pt, 'p', sizeof(g.pt));
	g.f = kos.f;
	g.h = kos.login;
	g.dek = find(kos.f, kos.login, CKO_SECRET_KEY, DEK);
	if (g.dek == CK_INVALID_HANDLE) {
		fprintf(stderr, "bench: the data key " DEK " is not on the token\n");
		goto fail;
	}
	printf("\nAES-256-GCM encryption of 1 KiB, a high-tier client:\n");
	base = bench_rate(gcm_openssl, &g, 16);
	printf("%-48s %9.0f/s  (baseline)\n", "OpenSSL EVP AES-256-GCM", base);
	if (gcm_module(&g) != 0)
		goto fail;
	rate = bench_rate(gcm_module, &g, 16);
	printf("%-48s %9.0f/s  %6.2fx OpenSSL  goal >= 0.8x\n", "libkos-pkcs11.so C_Encrypt", rate,
	       rate / base);

	/* lookups of one label among more and more keys, every process on
	 * one CPU: unpinned, where the scheduler puts kosd beside the client
	 * changes a lookup's time by 2-3x from run to run, more than the
	 * growth measured */
	bench_pin(0);
	bench_pin_pid(kosd_pid, 0);
	printf("\nC_FindObjectsInit + C_FindObjects of one label, every process on CPU 0:\n");
	l.f = kos.f;
	l.h = kos.login;
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		if (create_find_keys(keys, have, counts[i]) != 0)
			goto fail;
		have = counts[i];
		snprintf(l.label, sizeof(l.label), "find-%04d", counts[i] / 2);
		if (lookup_one(&l) != 0) {
			fprintf(stderr, "bench: %s not found among %d keys\n", l.label, have);
			goto fail;
		}
		rate = bench_rate(lookup_one, &l, 4);
		per[i] = 1e6 / rate;
		printf("among %4d keys %33s %9.0f/s  %8.1f us per lookup  %5.2fx the time among %d\n",
		       have, "", rate, per[i], per[i] / per[0], counts[0]);
	}
	printf("growth from %d to %d keys: %.2fx the time per lookup  goal: flat\n", counts[0],
	       FIND_MAX, per[2] / per[0]);

	module_close(&kos);
	bench_stop(&kosd_pid);
	EVP_CIPHER_CTX_free(g.ctx);
	kos_ca_free(ca);
	kos_keys_free(keys);
	kos_hsm_free(hsm);
	kos_trust_free(tr);
	kos_store_free(st);
	kos_policy_free(pol);
	kos_config_free(conf);
	return 0;
fail:
	fprintf(stderr, "bench: %s\n", kos_last_error());
	kos_cred_free(cred);
	return 1;
}
