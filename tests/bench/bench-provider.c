/* The OpenSSL provider's benchmarks, each beside baselines measured in the
 * same run (usage: bench-provider POLICY KOSD MODULES-DIR, the directory
 * holding kos.so):
 *  - TLS 1.3 handshakes per second in one process over a memory BIO pair
 *    (SSL_connect and SSL_accept alternating, the client verifying the
 *    server's certificate chain, no tickets, no resumption), the server's
 *    ECDSA P-256 key kos:NAME through the provider (kosd on its Unix
 *    socket, a high-tier client) vs a P-256 key read from a PEM file by the
 *    default provider (goal: >= 0.5x); the file key with kos loaded too, to
 *    show what loading the provider costs other keys; 1 thread, then 4
 *    threads sharing the SSL_CTX (kosd is one process);
 *  - EVP_DigestSign with P-256 and SHA-256 of 256 bytes through the
 *    provider vs the default provider with a file key, and vs SoftHSM
 *    C_SignInit + C_Sign of a digest, direct, on the token kosd signs with.
 * Each figure is a rate over 2 s or more, with the processes placed by the
 * scheduler and then all on CPU 0 (a round trip between CPUs wakes a
 * sleeping one and decides a remote signer's rate; FIELD-NOTES). Figures,
 * never assertions: the run fails only when an operation does. */
#include "config.h"

#include "kos/hsm.h"
#include "kos/internal.h"
#include "tests/bench/bench.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/store.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define SECONDS 2.0
#define THREADS 4
#define SIGN_KEY "bench-ec"
#define SIGN_LABEL "kos-sign:" SIGN_KEY ":1" /* its object in the signer token */
#define MSG_LEN 256

static char dir[] = "/tmp/kos-bench-provider-XXXXXX";
static char inst[128], sock[160];
static pid_t kosd_pid = -1;

static void cleanup(void)
{
	char cmd[200];

	bench_stop(&kosd_pid);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench: could not remove %s\n", dir);
}

static void die(const char *what)
{
	fprintf(stderr, "bench: %s\n", what);
	ERR_print_errors_fp(stderr);
	exit(1);
}

/* --- keys and certificates ------------------------------------------------ */

/* A library context with "default" (and "kos" from modules when given). */
static OSSL_LIB_CTX *libctx_new(const char *modules)
{
	OSSL_LIB_CTX *l = OSSL_LIB_CTX_new();

	if (l == NULL || OSSL_PROVIDER_load(l, "default") == NULL)
		die("cannot load the default provider");
	if (modules != NULL && (!OSSL_PROVIDER_set_default_search_path(l, modules) ||
				OSSL_PROVIDER_load(l, "kos") == NULL))
		die("cannot load the kos provider");
	return l;
}

static EVP_PKEY *store_key(OSSL_LIB_CTX *l, const char *uri)
{
	OSSL_STORE_CTX *s = OSSL_STORE_open_ex(uri, l, NULL, NULL, NULL, NULL, NULL, NULL);
	EVP_PKEY *k = NULL;

	if (s == NULL || !OSSL_STORE_expect(s, OSSL_STORE_INFO_PKEY))
		die("OSSL_STORE_open of the kos key");
	while (k == NULL && !OSSL_STORE_eof(s)) {
		OSSL_STORE_INFO *info = OSSL_STORE_load(s);

		if (info != NULL && OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
			k = OSSL_STORE_INFO_get1_PKEY(info);
		OSSL_STORE_INFO_free(info);
	}
	OSSL_STORE_close(s);
	if (k == NULL)
		die("the kos key did not load");
	return k;
}

static EVP_PKEY *pem_key(OSSL_LIB_CTX *l, const char *path)
{
	BIO *b = BIO_new_file(path, "r");
	EVP_PKEY *k = b != NULL ? PEM_read_bio_PrivateKey_ex(b, NULL, NULL, NULL, l, NULL) : NULL;

	BIO_free(b);
	if (k == NULL)
		die("the key file did not load");
	return k;
}

/* A certificate for key's public half, issued by ca (self-signed when
 * ca_cert is NULL). */
static X509 *issue(EVP_PKEY *key, EVP_PKEY *ca, X509 *ca_cert, const char *cn)
{
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();
	static long serial;

	if (x == NULL || n == NULL || !X509_set_version(x, X509_VERSION_3) ||
	    !ASN1_INTEGER_set(X509_get_serialNumber(x), ++serial) ||
	    !X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
					0) ||
	    !X509_set_subject_name(x, n) ||
	    !X509_set_issuer_name(x, ca_cert != NULL ? X509_get_subject_name(ca_cert) : n) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -60) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), 86400) || !X509_set_pubkey(x, key))
		die("cannot issue a certificate");
	if (ca_cert == NULL) {
		X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, NULL, NID_basic_constraints,
							"critical,CA:TRUE");

		if (e == NULL || !X509_add_ext(x, e, -1))
			die("cannot make the CA certificate");
		X509_EXTENSION_free(e);
	}
	if (X509_sign(x, ca, EVP_sha256()) <= 0)
		die("cannot sign a certificate");
	X509_NAME_free(n);
	return x;
}

/* --- TLS 1.3 handshakes ---------------------------------------------------- */

static SSL_CTX *server_ctx(OSSL_LIB_CTX *l, X509 *cert, EVP_PKEY *key)
{
	SSL_CTX *c = SSL_CTX_new_ex(l, NULL, TLS_server_method());

	if (c == NULL || !SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION) ||
	    SSL_CTX_use_certificate(c, cert) != 1 || SSL_CTX_use_PrivateKey(c, key) != 1 ||
	    SSL_CTX_check_private_key(c) != 1 || !SSL_CTX_set_num_tickets(c, 0))
		die("the server's SSL_CTX");
	SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
	return c;
}

static SSL_CTX *client_ctx(OSSL_LIB_CTX *l, X509 *ca)
{
	SSL_CTX *c = SSL_CTX_new_ex(l, NULL, TLS_client_method());

	if (c == NULL || !SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION) ||
	    X509_STORE_add_cert(SSL_CTX_get_cert_store(c), ca) != 1)
		die("the client's SSL_CTX");
	SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
	return c;
}

struct tls {
	SSL_CTX *srv, *cli;
};

/* 1 while an SSL_do_handshake result only waits for the other side. */
static int pending(SSL *s, int rc)
{
	int e = SSL_get_error(s, rc);

	return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
}

/* One full handshake, client and server in turn over a BIO pair. */
static int handshake(void *arg)
{
	const struct tls *t = arg;
	SSL *s = SSL_new(t->srv), *c = SSL_new(t->cli);
	BIO *bs = NULL, *bc = NULL;
	int rs = 0, rc = 0, ok = 0;

	if (s == NULL || c == NULL || !BIO_new_bio_pair(&bs, 0, &bc, 0))
		goto out;
	SSL_set_bio(s, bs, bs);
	SSL_set_bio(c, bc, bc);
	SSL_set_accept_state(s);
	SSL_set_connect_state(c);
	for (int i = 0; i < 32 && (rs != 1 || rc != 1); i++) {
		if (rc != 1 && (rc = SSL_do_handshake(c)) != 1 && !pending(c, rc))
			goto out;
		if (rs != 1 && (rs = SSL_do_handshake(s)) != 1 && !pending(s, rs))
			goto out;
	}
	ok = rs == 1 && rc == 1 && SSL_get_verify_result(c) == X509_V_OK;
out:
	if (!ok) {
		fprintf(stderr, "bench: a TLS handshake failed\n");
		ERR_print_errors_fp(stderr);
	}
	SSL_free(s);
	SSL_free(c);
	return !ok;
}

struct hs_thread {
	const struct tls *t;
	pthread_barrier_t *start;
	double end;
	unsigned long n;
	int failed;
};

static void *hs_main(void *arg)
{
	struct hs_thread *h = arg;

	/* one handshake before the clock: the provider's handle for this
	 * thread, its connection to kosd */
	h->failed = handshake((void *)h->t);
	pthread_barrier_wait(h->start);
	while (!h->failed && bench_now() < h->end) {
		h->failed = handshake((void *)h->t);
		h->n++;
	}
	return NULL;
}

/* Handshakes per second over nthreads threads sharing t's contexts. */
static double hs_rate(const struct tls *t, int nthreads)
{
	struct hs_thread h[THREADS];
	pthread_t th[THREADS];
	pthread_barrier_t start;
	unsigned long total = 0;
	double t0;

	if (nthreads == 1) {
		if (handshake((void *)t) != 0)
			exit(1);
		return bench_rate_for(handshake, (void *)t, 4, SECONDS);
	}
	memset(h, 0, sizeof(h));
	pthread_barrier_init(&start, NULL, (unsigned)nthreads + 1);
	for (int i = 0; i < nthreads; i++) {
		h[i].t = t;
		h[i].start = &start;
		h[i].end = 1e300;
		if (pthread_create(&th[i], NULL, hs_main, &h[i]) != 0)
			die("pthread_create");
	}
	/* end is set once every thread is ready, before they are released */
	t0 = bench_now();
	for (int i = 0; i < nthreads; i++)
		h[i].end = t0 + SECONDS;
	pthread_barrier_wait(&start);
	t0 = bench_now();
	for (int i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < nthreads; i++) {
		if (h[i].failed)
			exit(1);
		total += h[i].n;
	}
	pthread_barrier_destroy(&start);
	return (double)total / (bench_now() - t0);
}

/* --- signing ---------------------------------------------------------- */

struct dsign {
	OSSL_LIB_CTX *libctx;
	EVP_PKEY *key;
	EVP_MD_CTX *m;
	unsigned char msg[MSG_LEN];
	uint64_t counter;
};

/* EVP_DigestSignInit_ex + EVP_DigestSign of a new message each call. */
static int digest_sign(void *arg)
{
	struct dsign *d = arg;
	unsigned char sig[80];
	size_t len = sizeof(sig);

	d->counter++;
	memcpy(d->msg, &d->counter, sizeof(d->counter));
	if (EVP_DigestSignInit_ex(d->m, NULL, "SHA256", d->libctx, NULL, d->key, NULL) != 1 ||
	    EVP_DigestSign(d->m, sig, &len, d->msg, sizeof(d->msg)) != 1) {
		fprintf(stderr, "bench: EVP_DigestSign failed\n");
		ERR_print_errors_fp(stderr);
		return 1;
	}
	return 0;
}

/* SoftHSM C_SignInit + C_Sign (CKM_ECDSA) of a SHA-256 digest computed per
 * call, on a session of kos_hsm's pool: what kosd does per signature. */
struct direct {
	kos_hsm *hsm;
	size_t tok;
	CK_OBJECT_HANDLE priv;
	unsigned char msg[MSG_LEN];
	uint64_t counter;
};

static int direct_sign(void *arg)
{
	struct direct *d = arg;
	CK_MECHANISM mech = { CKM_ECDSA, NULL, 0 };
	uint8_t digest[32], sig[64];
	CK_ULONG len = sizeof(sig);
	kos_hsm_session s;
	CK_RV rv;

	d->counter++;
	memcpy(d->msg, &d->counter, sizeof(d->counter));
	SHA256(d->msg, sizeof(d->msg), digest);
	if (kos_hsm_session_get(d->hsm, d->tok, &s) != KOS_OK)
		return 1;
	rv = s.f->C_SignInit(s.h, &mech, d->priv);
	if (rv == CKR_OK)
		rv = s.f->C_Sign(s.h, digest, sizeof(digest), sig, &len);
	kos_hsm_session_put(d->hsm, &s, rv);
	return rv != CKR_OK || len != 64;
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
		if (f->C_FindObjects(h, &o, 1, &n) != CKR_OK || n != 1)
			o = CK_INVALID_HANDLE;
		f->C_FindObjectsFinal(h);
	}
	return o;
}

/* --- the measurements --------------------------------------------------- */

struct setup {
	OSSL_LIB_CTX *def, *kos;
	struct tls file, file_kos, kos_key;
	struct dsign sign_file, sign_kos;
	struct direct direct;
};

static void line(const char *what, double rate, double base, const char *base_name,
		 const char *goal)
{
	if (base <= 0)
		printf("%-52s %9.0f/s  (baseline)\n", what, rate);
	else
		printf("%-52s %9.0f/s  %6.2fx %s%s%s\n", what, rate, rate / base, base_name,
		       goal != NULL ? "  goal " : "", goal != NULL ? goal : "");
}

static void measure(const char *placement, int cpu, struct setup *s, bool threads)
{
	double base, rate, direct;
	char what[80];

	bench_pin(cpu);
	bench_pin_pid(kosd_pid, cpu);
	printf("\nTLS 1.3 handshakes, ECDSA P-256 server key, one process, %s:\n", placement);
	base = hs_rate(&s->file, 1);
	line("server key from a PEM file, default provider", base, 0, NULL, NULL);
	rate = hs_rate(&s->file_kos, 1);
	line("the same file key, kos loaded too", rate, base, "file key", NULL);
	rate = hs_rate(&s->kos_key, 1);
	line("server key kos:" SIGN_KEY " (kosd, Unix socket)", rate, base, "file key",
	     ">= 0.5x");
	if (threads) {
		base = hs_rate(&s->file, THREADS);
		snprintf(what, sizeof(what), "file key, %d threads", THREADS);
		line(what, base, 0, NULL, NULL);
		rate = hs_rate(&s->kos_key, THREADS);
		snprintf(what, sizeof(what), "kos:" SIGN_KEY ", %d threads", THREADS);
		line(what, rate, base, "file key, as many threads", ">= 0.5x");
	}

	printf("\nP-256 EVP_DigestSign, SHA-256 of %d bytes, %s:\n", MSG_LEN, placement);
	base = bench_rate_for(digest_sign, &s->sign_file, 16, SECONDS);
	line("file key, default provider", base, 0, NULL, NULL);
	direct = bench_rate_for(direct_sign, &s->direct, 16, SECONDS);
	line("SoftHSM C_SignInit + C_Sign of a digest, direct", direct, base, "file key", NULL);
	rate = bench_rate_for(digest_sign, &s->sign_kos, 4, SECONDS);
	line("kos:" SIGN_KEY " through kosd", rate, base, "file key", NULL);
	line("kos:" SIGN_KEY " through kosd", rate, direct, "SoftHSM C_Sign direct", NULL);
	bench_pin(-1);
	bench_pin_pid(kosd_pid, -1);
}

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

int main(int argc, char **argv)
{
	const char *policy = argc > 1 ? argv[1] : "policy/default.policy";
	const char *kosd = argc > 2 ? argv[2] : getenv("KOSD");
	const char *modules = argc > 3 ? argv[3] : NULL;
	char path[200], log[200], cred_path[200], key_path[200], addr[200];
	char secret[KOS_CRED_SECRET_LEN + 1];
	char *kosd_argv[] = { NULL, "--config", path, NULL };
	char *cred = NULL;
	kos_config *conf = NULL;
	kos_policy *pol = NULL;
	kos_store *st = NULL;
	kos_trust *tr = NULL;
	kos_keys *keys = NULL;
	kos_ca *ca = NULL;
	struct setup s;
	EVP_PKEY *ca_key, *gen, *file_def, *file_kos, *kos_key;
	X509 *ca_cert, *file_cert, *kos_cert;
	BIO *b;

	if (kosd == NULL || modules == NULL) {
		fprintf(stderr, "usage: bench-provider POLICY KOSD MODULES-DIR\n");
		return 2;
	}
	memset(&s, 0, sizeof(s));
	kosd_argv[0] = (char *)kosd;
	if (mkdtemp(dir) == NULL)
		return 1;
	atexit(cleanup);

	/* an installation with a signing key and one client (high tier) */
	snprintf(inst, sizeof(inst), "%s/inst", dir);
	snprintf(sock, sizeof(sock), "%s/kosd.sock", inst);
	snprintf(path, sizeof(path), "%s/bench.policy", dir);
	if (bench_write_policy(policy, path) != 0 || kos_devinit(inst, 0, path, NULL) != KOS_OK)
		goto fail;
	snprintf(path, sizeof(path), "%s/kos.conf", inst);
	if (kos_config_load(path, &conf, NULL) != KOS_OK ||
	    kos_policy_load(kos_config_get0_policy(conf), &pol, NULL) != KOS_OK ||
	    kos_store_open(kos_config_get0_store(conf), &st) != KOS_OK ||
	    kos_trust_new(pol, st, &tr) != KOS_OK ||
	    kos_hsm_open(conf, 0, &s.direct.hsm) != KOS_OK ||
	    kos_keys_new(pol, st, s.direct.hsm, &keys) != KOS_OK ||
	    kos_ca_new(pol, st, s.direct.hsm, tr, &ca) != KOS_OK ||
	    kos_ca_init(ca, NULL) != KOS_OK ||
	    kos_key_create(keys, SIGN_KEY, KOS_KEY_EC_P256) != KOS_OK ||
	    kos_ca_client_add(ca, "bench", "sign:" SIGN_KEY " pubkey:" SIGN_KEY, secret) !=
		    KOS_OK ||
	    kos_cred_enroll(ca, secret, &cred) != KOS_OK)
		goto fail;
	OPENSSL_cleanse(secret, sizeof(secret));
	snprintf(cred_path, sizeof(cred_path), "%s/bench.cred", dir);
	if (write_secret_file(cred_path, cred) != 0)
		goto fail;
	kos_cred_free(cred);
	cred = NULL;
	if (kos_hsm_token_find(s.direct.hsm, "signer", &s.direct.tok) != KOS_OK)
		goto fail;
	{
		kos_hsm_session hs;

		if (kos_hsm_session_get(s.direct.hsm, s.direct.tok, &hs) != KOS_OK)
			goto fail;
		s.direct.priv = find_private(hs.f, hs.h);
		kos_hsm_session_put(s.direct.hsm, &hs, CKR_OK);
	}
	if (s.direct.priv == CK_INVALID_HANDLE) {
		fprintf(stderr, "bench: the signing key's object was not found\n");
		goto fail;
	}

	snprintf(log, sizeof(log), "%s/kosd.log", dir);
	kosd_pid = bench_spawn(kosd_argv, log);
	if (kosd_pid < 0 || bench_wait_socket(kosd_pid, sock) != 0) {
		fprintf(stderr, "bench: kosd did not start (see %s)\n", log);
		kosd_pid = -1;
		goto fail;
	}

	/* the provider as an application loads it, with the client's
	 * credential; a file key written and read back as PEM */
	snprintf(addr, sizeof(addr), "unix:%s", sock);
	setenv(KOS_CLIENT_ENV_SERVER, addr, 1);
	setenv(KOS_CLIENT_ENV_CREDENTIAL_FILE, cred_path, 1);
	s.def = libctx_new(NULL);
	s.kos = libctx_new(modules);
	snprintf(key_path, sizeof(key_path), "%s/server.key", dir);
	gen = EVP_EC_gen("P-256");
	b = BIO_new_file(key_path, "w");
	if (gen == NULL || b == NULL ||
	    !PEM_write_bio_PrivateKey(b, gen, NULL, NULL, 0, NULL, NULL))
		die("cannot write the key file");
	BIO_free(b);
	EVP_PKEY_free(gen);
	file_def = pem_key(s.def, key_path);
	file_kos = pem_key(s.kos, key_path);
	kos_key = store_key(s.kos, "kos:" SIGN_KEY);
	ca_key = EVP_EC_gen("P-256");
	if (ca_key == NULL)
		die("cannot make the CA's key");
	ca_cert = issue(ca_key, ca_key, NULL, "kos bench CA");
	file_cert = issue(file_def, ca_key, ca_cert, "file");
	kos_cert = issue(kos_key, ca_key, ca_cert, "kos");
	s.file.cli = s.file_kos.cli = s.kos_key.cli = client_ctx(s.def, ca_cert);
	s.file.srv = server_ctx(s.def, file_cert, file_def);
	s.file_kos.srv = server_ctx(s.kos, file_cert, file_kos);
	s.kos_key.srv = server_ctx(s.kos, kos_cert, kos_key);
	s.sign_file = (struct dsign){ .libctx = s.def, .key = file_def, .m = EVP_MD_CTX_new() };
	s.sign_kos = (struct dsign){ .libctx = s.kos, .key = kos_key, .m = EVP_MD_CTX_new() };
	if (s.sign_file.m == NULL || s.sign_kos.m == NULL)
		die("out of memory");

	measure("as the scheduler places them", -1, &s, true);
	if (sysconf(_SC_NPROCESSORS_ONLN) >= 2)
		measure("every process on CPU 0", 0, &s, false);

	EVP_MD_CTX_free(s.sign_file.m);
	EVP_MD_CTX_free(s.sign_kos.m);
	SSL_CTX_free(s.file.srv);
	SSL_CTX_free(s.file_kos.srv);
	SSL_CTX_free(s.kos_key.srv);
	SSL_CTX_free(s.file.cli);
	X509_free(ca_cert);
	X509_free(file_cert);
	X509_free(kos_cert);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(file_def);
	EVP_PKEY_free(file_kos);
	EVP_PKEY_free(kos_key);
	OSSL_LIB_CTX_free(s.kos);
	OSSL_LIB_CTX_free(s.def);
	bench_stop(&kosd_pid);
	kos_ca_free(ca);
	kos_keys_free(keys);
	kos_hsm_free(s.direct.hsm);
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
