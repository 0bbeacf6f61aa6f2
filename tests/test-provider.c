/* The OpenSSL 3 provider kos.so as an application loads it: a library
 * context of its own, OSSL_PROVIDER_load of "default" and "kos" from the
 * build's .libs (or an openssl.cnf section), against a real kosd on a
 * development installation with SoftHSM tokens in a temporary directory.
 * Only kosd (and kosctl, which makes the installation) touch SoftHSM: this
 * process holds credentials and nothing else, so under LSan it must not
 * leak at all. Every signature is checked by the default provider of the
 * default library context with the public key kosd gave the client
 * library, never with what the provider says. */
#include "config.h"

#include "kos/internal.h"
#include "tests/kos-test.h"

#include <kos/client.h>

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/rsa.h>
#include <openssl/store.h>
#include <openssl/x509.h>

static char inst[512], sock[600], conf_path[600], kosd_log[600];
static kos_config *conf;
static kos_policy *pol;
static kos_store *st;
static kos_trust *tr;
static kos_ca *ca;
static pid_t kosd_pid = -1;
/* the base's policy knows signing.min_tier (branch server13) */
static bool have_min_tier;

/* kosd's public keys, as the client library gets them: the default
 * library context's, which only the default provider serves */
static EVP_PKEY *pub_p256, *pub_ed, *pub_rsa, *pub_other;

/* clients: app high; low at the low tier; deny at the deny tier; den high
 * until a case drops it to deny; gone revoked by a case */
static const char *const clients[] = { "app", "low", "deny", "den", "gone" };
#define SCOPE "sign:p256 sign:ed sign:rsa pubkey:* certify:p256"
#define NCLIENTS (sizeof(clients) / sizeof(clients[0]))

/* --- set-up ----------------------------------------------------------------- */

/* $KOSCTL --config kos.conf --local ARGS... (NULL-terminated; the first
 * may be "init", which takes no configuration): its exit status, its standard
 * output in out (len bytes, the last newline cut; out may be NULL), its
 * standard error appended to the test's kosctl.log. -1 when it did not run. */
static int kosctl(char *out, size_t len, ...)
{
	const char *bin = getenv("KOSCTL");
	const char *argv[24] = { "kosctl" };
	size_t n = 1, got = 0;
	int fds[2], status = -1;
	ssize_t r;
	va_list ap;
	pid_t pid;
	char junk[256];

	va_start(ap, len);
	for (const char *a = va_arg(ap, const char *); a != NULL && n < 20;
	     a = va_arg(ap, const char *)) {
		/* the installation's store and tokens, never a kosd the
		 * environment may name */
		if (n == 1 && strcmp(a, "init") != 0) {
			argv[n++] = "--config";
			argv[n++] = conf_path;
			argv[n++] = "--local";
		}
		argv[n++] = a;
	}
	va_end(ap);
	argv[n] = NULL;
	if (pipe(fds) != 0)
		return -1;
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		close(fds[0]);
		if (dup2(fds[1], 1) < 0 ||
		    freopen(kos_test_path("kosctl.log"), "a", stderr) == NULL)
			_exit(127);
		execv(bin != NULL ? bin : "./kosctl", (char *const *)argv);
		_exit(127);
	}
	close(fds[1]);
	while ((r = out != NULL && got + 1 < len ? read(fds[0], out + got, len - 1 - got)
						 : read(fds[0], junk, sizeof(junk))) > 0)
		if (out != NULL && got + 1 < len)
			got += (size_t)r;
	close(fds[0]);
	if (out != NULL && len > 0) {
		out[got] = '\0';
		out[strcspn(out, "\n")] = '\0';
	}
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static kos_rv integrity_failures(const char *client, int n)
{
	kos_observation obs = { .event = KOS_EVENT_INTEGRITY };
	kos_rv rv = KOS_OK;

	for (int i = 0; i < n && rv == KOS_OK; i++)
		rv = kos_trust_observe(tr, client, &obs, NULL);
	return rv;
}

static EVP_PKEY *pem_pubkey(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k = b != NULL ? PEM_read_bio_PUBKEY(b, NULL, NULL, NULL) : NULL;

	BIO_free(b);
	return k;
}

/* A client-library handle on kosd as client. */
static kos_client *handle(const char *client)
{
	kos_client *c = NULL;

	if (kos_client_new(sock, &c) != KOS_OK ||
	    kos_client_set_credential_file(c, kos_test_cred_path(client)) != KOS_OK) {
		kos_client_free(c);
		return NULL;
	}
	return c;
}

static EVP_PKEY *kosd_pubkey(kos_client *c, const char *name)
{
	char *pem = NULL;
	EVP_PKEY *k = NULL;

	if (kos_client_pubkey(c, name, &pem) == KOS_OK)
		k = pem_pubkey(pem);
	kos_free(pem);
	return k;
}

/* The policy: trust of the integrity factor alone, and signing from the
 * medium tier when the base's policy has the setting (the shipped policy
 * says min_tier = "low" then; an older one does not know the setting). */
static int write_policy(const char *path)
{
	static const char *const medium[][2] = {
		{ "min_tier = \"low\";", "min_tier = \"medium\";" },
	};
	static const char *const added[][2] = {
		{ "allow_sha1 = false;", "allow_sha1 = false; min_tier = \"medium\";" },
	};
	kos_policy *probe = NULL;

	if (kos_test_write_integrity_policy(path, medium, 1) != 0 &&
	    kos_test_write_integrity_policy(path, added, 1) != 0)
		return -1;
	have_min_tier = kos_policy_load(path, &probe, NULL) == KOS_OK;
	kos_policy_free(probe);
	if (!have_min_tier) {
		printf("\nnote: this base's policy has no signing.min_tier (branch server13 "
		       "brings it): a low-tier client still signs here\n");
		return kos_test_write_integrity_policy(path, NULL, 0);
	}
	return 0;
}

static int suite_init(void)
{
	char path[700], secret[256];
	kos_client *c = NULL;

	snprintf(inst, sizeof(inst), "%s/inst", kos_test_tmpdir());
	snprintf(sock, sizeof(sock), "%s/kosd.sock", inst);
	snprintf(conf_path, sizeof(conf_path), "%s/kos.conf", inst);
	snprintf(kosd_log, sizeof(kosd_log), "%s/kosd.log", kos_test_tmpdir());
	snprintf(path, sizeof(path), "%s/test.policy", kos_test_tmpdir());
	/* kosctl and kosd, not this process, load SoftHSM and its leaks */
	if (kos_test_softhsm_leaks_ignored() != 0 || write_policy(path) != 0 ||
	    kosctl(NULL, 0, "init", "--dir", inst, "--policy", path, NULL) != 0 ||
	    kosctl(NULL, 0, "ca", "init", NULL) != 0 ||
	    kosctl(NULL, 0, "key", "create", "p256", "--type", "ec-p256", NULL) != 0 ||
	    kosctl(NULL, 0, "key", "create", "ed", "--type", "ed25519", NULL) != 0 ||
	    kosctl(NULL, 0, "key", "create", "rsa", "--type", "rsa-2048", NULL) != 0 ||
	    kosctl(NULL, 0, "key", "create", "other", "--type", "ec-p256", NULL) != 0) {
		fprintf(stderr, "set-up: kosctl failed (see %s)\n", kos_test_path("kosctl.log"));
		return 1;
	}
	if (kos_config_load(conf_path, &conf, NULL) != KOS_OK ||
	    kos_policy_load(kos_config_get0_policy(conf), &pol, NULL) != KOS_OK ||
	    kos_store_open(kos_config_get0_store(conf), &st) != KOS_OK ||
	    kos_trust_new(pol, st, &tr) != KOS_OK || kos_ca_new(pol, st, NULL, tr, &ca) != KOS_OK)
		goto fail;
	if (kos_test_kosd_start(conf_path, NULL, kosd_log, sock, &kosd_pid) != 0) {
		fprintf(stderr, "set-up: kosd did not start (see %s)\n", kosd_log);
		return 1;
	}
	for (size_t i = 0; i < NCLIENTS; i++) {
		int rc = kosctl(secret, sizeof(secret), "client", "add", clients[i], "--scope",
				SCOPE, NULL);

		if (rc != 0 || kos_test_enroll(sock, clients[i], secret) != 0) {
			OPENSSL_cleanse(secret, sizeof(secret));
			goto fail;
		}
		OPENSSL_cleanse(secret, sizeof(secret));
	}
	/* low: 90 less two integrity failures, 40; deny: less three, 15 */
	if (integrity_failures("low", 2) != KOS_OK || integrity_failures("deny", 3) != KOS_OK ||
	    (c = handle("app")) == NULL)
		goto fail;
	pub_p256 = kosd_pubkey(c, "p256");
	pub_ed = kosd_pubkey(c, "ed");
	pub_rsa = kosd_pubkey(c, "rsa");
	pub_other = kosd_pubkey(c, "other");
	kos_client_free(c);
	if (pub_p256 == NULL || pub_ed == NULL || pub_rsa == NULL || pub_other == NULL)
		goto fail;
	return 0;
fail:
	fprintf(stderr, "set-up: %s\n", kos_last_error());
	return 1;
}

static int suite_cleanup(void)
{
	kos_test_kosd_stop(&kosd_pid);
	EVP_PKEY_free(pub_p256);
	EVP_PKEY_free(pub_ed);
	EVP_PKEY_free(pub_rsa);
	EVP_PKEY_free(pub_other);
	kos_ca_free(ca);
	kos_trust_free(tr);
	kos_store_free(st);
	kos_policy_free(pol);
	kos_config_free(conf);
	return 0;
}

/* --- the provider as an application loads it ---------------------------------- */

struct app {
	OSSL_LIB_CTX *libctx;
	OSSL_PROVIDER *def, *kos;
};

static const char *modules_dir(void)
{
	static char dir[600];
	const char *top = getenv("top_builddir");

	snprintf(dir, sizeof(dir), "%s/.libs", top != NULL ? top : ".");
	return dir;
}

/* The provider's settings in the environment, as kos-client(3) reads it:
 * server (NULL: this kosd) and client's credential file. */
static void app_env(const char *client, const char *server)
{
	char addr[700];

	snprintf(addr, sizeof(addr), "unix:%s", server != NULL ? server : sock);
	setenv(KOS_CLIENT_ENV_SERVER, addr, 1);
	setenv(KOS_CLIENT_ENV_CREDENTIAL_FILE, kos_test_cred_path(client), 1);
	unsetenv(KOS_CLIENT_ENV_CREDENTIAL);
	unsetenv(KOS_CLIENT_ENV_TLS_CERT);
}

/* A library context with "default" and then "kos" loaded from the build,
 * for client (its credential from the environment) on server (NULL: this
 * kosd). 1, or 0 with the error queue printed. */
static int app_open(struct app *a, const char *client, const char *server)
{
	memset(a, 0, sizeof(*a));
	app_env(client, server);
	a->libctx = OSSL_LIB_CTX_new();
	if (a->libctx == NULL ||
	    !OSSL_PROVIDER_set_default_search_path(a->libctx, modules_dir()) ||
	    (a->def = OSSL_PROVIDER_load(a->libctx, "default")) == NULL ||
	    (a->kos = OSSL_PROVIDER_load(a->libctx, "kos")) == NULL) {
		ERR_print_errors_fp(stderr);
		return 0;
	}
	return 1;
}

static void app_close(struct app *a)
{
	if (a->kos != NULL)
		OSSL_PROVIDER_unload(a->kos);
	if (a->def != NULL)
		OSSL_PROVIDER_unload(a->def);
	OSSL_LIB_CTX_free(a->libctx);
	memset(a, 0, sizeof(*a));
}

/* 1 when the error queue holds an error whose reason string is reason, or
 * one of reason's alternatives separated by '|'. The queue is emptied, and
 * printed when the reason is not there. The library is not checked:
 * OpenSSL 3.0 gives each provider instance a library number of its own
 * (four per load of kos) and wraps them past 255 into its own libraries',
 * so after some 30 loads in one process kos's reasons come under "system
 * library" or "dsa routines". */
static int queue_has(const char *reason)
{
	const char *data = NULL, *r;
	unsigned long e;
	int flags = 0, found = 0;
	char line[256], all[2048] = "";

	while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
		r = ERR_reason_error_string(e);
		for (const char *alt = reason; r != NULL && *alt != '\0';) {
			size_t n = strcspn(alt, "|");

			if (strlen(r) == n && strncmp(r, alt, n) == 0)
				found = 1;
			alt += n + (alt[n] == '|');
		}
		ERR_error_string_n(e, line, sizeof(line));
		if (strlen(all) + strlen(line) + strlen(data != NULL ? data : "") + 8 < sizeof(all))
			snprintf(all + strlen(all), sizeof(all) - strlen(all), "  %s (%s)\n", line,
				 (flags & ERR_TXT_STRING) != 0 && data != NULL ? data : "");
	}
	if (!found)
		fprintf(stderr, "\nwanted \"%s\" in the error queue, which held:\n%s", reason,
			all[0] != '\0' ? all : "  nothing\n");
	return found;
}

/* The objects OSSL_STORE gives for uri (expect: an OSSL_STORE_INFO_* or
 * 0), their types in types (up to 4), the key and certificate in *key and
 * *cert when wanted. The number of objects, -1 when the open or a load
 * fails (the error queue says why). */
static int store_load(OSSL_LIB_CTX *libctx, const char *uri, int expect, int types[4],
		      EVP_PKEY **key, X509 **cert)
{
	OSSL_STORE_CTX *s = OSSL_STORE_open_ex(uri, libctx, NULL, NULL, NULL, NULL, NULL, NULL);
	int n = 0;

	if (s == NULL || (expect != 0 && !OSSL_STORE_expect(s, expect))) {
		OSSL_STORE_close(s);
		return -1;
	}
	while (!OSSL_STORE_eof(s)) {
		OSSL_STORE_INFO *info = OSSL_STORE_load(s);
		int t;

		if (info == NULL) {
			if (OSSL_STORE_error(s)) {
				n = -1;
				break;
			}
			continue;
		}
		t = OSSL_STORE_INFO_get_type(info);
		if (n < 4 && types != NULL)
			types[n] = t;
		n++;
		if ((t == OSSL_STORE_INFO_PKEY || t == OSSL_STORE_INFO_PUBKEY) && key != NULL &&
		    *key == NULL)
			*key = t == OSSL_STORE_INFO_PKEY ? OSSL_STORE_INFO_get1_PKEY(info)
							 : OSSL_STORE_INFO_get1_PUBKEY(info);
		if (t == OSSL_STORE_INFO_CERT && cert != NULL && *cert == NULL)
			*cert = OSSL_STORE_INFO_get1_CERT(info);
		OSSL_STORE_INFO_free(info);
	}
	OSSL_STORE_close(s);
	return n;
}

/* The private key of uri (the store's first object), NULL after printing
 * the error queue unless quiet. */
static EVP_PKEY *load_key(OSSL_LIB_CTX *libctx, const char *uri, bool quiet)
{
	EVP_PKEY *k = NULL;

	if (store_load(libctx, uri, OSSL_STORE_INFO_PKEY, NULL, &k, NULL) < 0 || k == NULL) {
		EVP_PKEY_free(k);
		if (!quiet)
			ERR_print_errors_fp(stderr);
		return NULL;
	}
	return k;
}

/* --- signing and verifying -------------------------------------------------- */

/* How to sign: the digest (NULL for Ed25519), and for RSA-PSS the salt
 * length as OpenSSL names it ("digest", "max", a number), else NULL. */
struct how {
	const char *md, *pss_salt;
};

static int sig_params(const struct how *h, OSSL_PARAM p[3])
{
	size_t n = 0;

	if (h->pss_salt != NULL) {
		p[n++] = OSSL_PARAM_construct_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE,
							  (char *)OSSL_PKEY_RSA_PAD_MODE_PSS, 0);
		p[n++] = OSSL_PARAM_construct_utf8_string(OSSL_SIGNATURE_PARAM_PSS_SALTLEN,
							  (char *)h->pss_salt, 0);
	}
	p[n] = OSSL_PARAM_construct_end();
	return n > 0;
}

/* EVP_DigestSign of msg with key in libctx: 1 with the signature in sig
 * (*len in: its size), else 0 (the error queue says why). */
static int dsign(OSSL_LIB_CTX *libctx, EVP_PKEY *key, const struct how *h, const void *msg,
		 size_t msg_len, unsigned char *sig, size_t *len)
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	OSSL_PARAM p[3];
	int ok;

	sig_params(h, p);
	ok = m != NULL && EVP_DigestSignInit_ex(m, NULL, h->md, libctx, NULL, key, p) == 1 &&
	     EVP_DigestSign(m, sig, len, msg, msg_len) == 1;
	EVP_MD_CTX_free(m);
	return ok;
}

/* EVP_DigestVerify with kosd's public key, by the default provider. */
static int dverify(EVP_PKEY *pub, const struct how *h, const void *msg, size_t msg_len,
		   const unsigned char *sig, size_t len)
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	OSSL_PARAM p[3];
	int ok;

	sig_params(h, p);
	ok = m != NULL && EVP_DigestVerifyInit_ex(m, NULL, h->md, NULL, NULL, pub, p) == 1 &&
	     EVP_DigestVerify(m, sig, len, msg, msg_len) == 1;
	EVP_MD_CTX_free(m);
	ERR_clear_error();
	return ok;
}

/* Signs msg with key and checks the signature with pub: 1 when it verifies. */
static int sign_verifies(OSSL_LIB_CTX *libctx, EVP_PKEY *key, EVP_PKEY *pub, const struct how *h,
			 const char *msg)
{
	unsigned char sig[512];
	size_t len = sizeof(sig);

	if (!dsign(libctx, key, h, msg, strlen(msg), sig, &len)) {
		ERR_print_errors_fp(stderr);
		return 0;
	}
	return dverify(pub, h, msg, strlen(msg), sig, len);
}

/* EVP_PKEY_sign of a digest (md: the digest set on the context, or NULL),
 * then EVP_PKEY_verify with pub by the default provider. */
static int pkey_sign_verifies(OSSL_LIB_CTX *libctx, EVP_PKEY *key, EVP_PKEY *pub, const char *md,
			      const unsigned char *tbs, size_t tbs_len)
{
	EVP_PKEY_CTX *s = EVP_PKEY_CTX_new_from_pkey(libctx, key, NULL);
	EVP_PKEY_CTX *v = EVP_PKEY_CTX_new_from_pkey(NULL, pub, NULL);
	unsigned char sig[512];
	size_t len = sizeof(sig);
	int ok;

	ok = s != NULL && v != NULL && EVP_PKEY_sign_init(s) == 1 &&
	     (md == NULL || EVP_PKEY_CTX_set_signature_md(s, EVP_get_digestbyname(md)) == 1) &&
	     EVP_PKEY_sign(s, sig, &len, tbs, tbs_len) == 1;
	if (!ok)
		ERR_print_errors_fp(stderr);
	ok = ok && EVP_PKEY_verify_init(v) == 1 &&
	     (md == NULL || EVP_PKEY_CTX_set_signature_md(v, EVP_get_digestbyname(md)) == 1) &&
	     EVP_PKEY_verify(v, sig, len, tbs, tbs_len) == 1;
	EVP_PKEY_CTX_free(s);
	EVP_PKEY_CTX_free(v);
	ERR_clear_error();
	return ok;
}

static const struct how HOW_SHA256 = { "SHA256", NULL };

/* Open /proc/self/fd entries: connections the provider left open show. */
static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* --- cases ---------------------------------------------------------------- */

/* Load, use, unload, 20 times: every round signs through kosd; kos.so is
 * unloaded each time (OpenSSL closes the module with the last provider).
 * The sanitizer build's LSan checks that nothing leaks; both builds check
 * that no connection stays open. */
static void test_load_use_unload_20_times(void)
{
	int fds = -1, ok = 0;

	for (int i = 0; i < 20; i++) {
		struct app a;
		EVP_PKEY *k = NULL;
		char msg[32];

		snprintf(msg, sizeof(msg), "round %d", i);
		if (app_open(&a, "app", NULL) &&
		    (k = load_key(a.libctx, "kos:p256", false)) != NULL &&
		    sign_verifies(a.libctx, k, pub_p256, &HOW_SHA256, msg))
			ok++;
		EVP_PKEY_free(k);
		app_close(&a);
		/* after the first round: what OpenSSL and libcurl keep for good */
		if (i == 0)
			fds = open_fds();
	}
	CU_ASSERT_EQUAL(ok, 20);
	CU_ASSERT(fds > 0);
	CU_ASSERT_EQUAL(open_fds(), fds);
}

/* kos-server and kos-credential-file from an openssl.cnf section, loaded
 * with OSSL_LIB_CTX_load_config: the section wins over the environment. */
static void test_config_section(void)
{
	char cnf[4096], path[700], nowhere[700];
	OSSL_LIB_CTX *libctx;
	EVP_PKEY *k;

	snprintf(cnf, sizeof(cnf),
		 "openssl_conf = openssl_init\n"
		 "[openssl_init]\nproviders = provider_sect\n"
		 "[provider_sect]\ndefault = default_sect\nkos = kos_sect\n"
		 "[default_sect]\nactivate = 1\n"
		 "[kos_sect]\nmodule = %s/kos.so\nkos-server = unix:%s\n"
		 "kos-credential-file = %s\nactivate = 1\n",
		 modules_dir(), sock, kos_test_cred_path("app"));
	snprintf(path, sizeof(path), "%s/openssl.cnf", kos_test_tmpdir());
	CU_ASSERT_FATAL(kos_test_write_text(path, cnf) == 0);

	/* nothing in the environment */
	unsetenv(KOS_CLIENT_ENV_SERVER);
	unsetenv(KOS_CLIENT_ENV_CREDENTIAL_FILE);
	unsetenv(KOS_CLIENT_ENV_CREDENTIAL);
	libctx = OSSL_LIB_CTX_new();
	CU_ASSERT_FATAL(libctx != NULL);
	CU_ASSERT(OSSL_LIB_CTX_load_config(libctx, path) == 1);
	CU_ASSERT(OSSL_PROVIDER_available(libctx, "kos") == 1);
	CU_ASSERT(OSSL_PROVIDER_available(libctx, "default") == 1);
	k = load_key(libctx, "kos:p256", false);
	CU_ASSERT(k != NULL && sign_verifies(libctx, k, pub_p256, &HOW_SHA256, "configured"));
	EVP_PKEY_free(k);
	OSSL_LIB_CTX_free(libctx);

	/* the environment names another server and the deny-tier client's
	 * credential: the section's values are used */
	snprintf(nowhere, sizeof(nowhere), "%s/nowhere.sock", kos_test_tmpdir());
	app_env("deny", nowhere);
	libctx = OSSL_LIB_CTX_new();
	CU_ASSERT_FATAL(libctx != NULL);
	CU_ASSERT(OSSL_LIB_CTX_load_config(libctx, path) == 1);
	k = load_key(libctx, "kos:p256", false);
	CU_ASSERT(k != NULL && sign_verifies(libctx, k, pub_p256, &HOW_SHA256, "the section wins"));
	EVP_PKEY_free(k);
	OSSL_LIB_CTX_free(libctx);
}

/* A certificate for kosd's p256 key by a throwaway CA, as DER. */
static int make_cert(unsigned char **der, int *len)
{
	EVP_PKEY *ca_key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();
	int ok;

	ok = ca_key != NULL && x != NULL && n != NULL && X509_set_version(x, X509_VERSION_3) &&
	     ASN1_INTEGER_set(X509_get_serialNumber(x), 13) &&
	     X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"kos p256",
					-1, -1, 0) &&
	     X509_set_subject_name(x, n) && X509_set_issuer_name(x, n) &&
	     X509_gmtime_adj(X509_getm_notBefore(x), 0) &&
	     X509_gmtime_adj(X509_getm_notAfter(x), 86400) && X509_set_pubkey(x, pub_p256) &&
	     X509_sign(x, ca_key, EVP_sha256()) > 0 && (*len = i2d_X509(x, der)) > 0;
	X509_NAME_free(n);
	X509_free(x);
	EVP_PKEY_free(ca_key);
	return ok;
}

/* kos:NAME through OSSL_STORE: the private key, then the certificate kosd
 * keeps beside it once one is stored; type=public gives a public key. */
static void test_store_key_certificate_public(void)
{
	struct app a;
	int types[4] = { 0 };
	EVP_PKEY *k = NULL, *pk = NULL;
	X509 *cert = NULL;
	unsigned char *der = NULL;
	int der_len = 0;
	kos_client *c;

	CU_ASSERT_FATAL(app_open(&a, "app", NULL));
	/* no certificate yet: the key alone */
	CU_ASSERT_EQUAL(store_load(a.libctx, "kos:p256", 0, types, &k, &cert), 1);
	CU_ASSERT_EQUAL(types[0], OSSL_STORE_INFO_PKEY);
	CU_ASSERT(k != NULL && EVP_PKEY_eq(k, pub_p256) == 1);
	CU_ASSERT(cert == NULL);
	EVP_PKEY_free(k);
	k = NULL;

	/* stored beside the key (the client's cert_set, as kosctl key cert set) */
	c = handle("app");
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT_FATAL(make_cert(&der, &der_len));
	CU_ASSERT_EQUAL(kos_client_cert_set(c, "p256", 0, der, (size_t)der_len), KOS_OK);
	kos_client_free(c);
	OPENSSL_free(der);
	memset(types, 0, sizeof(types));
	CU_ASSERT_EQUAL(store_load(a.libctx, "kos:p256", 0, types, &k, &cert), 2);
	CU_ASSERT_EQUAL(types[0], OSSL_STORE_INFO_PKEY);
	CU_ASSERT_EQUAL(types[1], OSSL_STORE_INFO_CERT);
	CU_ASSERT_FATAL(k != NULL && cert != NULL);
	CU_ASSERT(EVP_PKEY_eq(X509_get0_pubkey(cert), pub_p256) == 1);
	/* what a TLS server checks before it uses the pair */
	CU_ASSERT_EQUAL(EVP_PKEY_eq(k, X509_get0_pubkey(cert)), 1);
	CU_ASSERT_EQUAL(X509_check_private_key(cert, k), 1);
	CU_ASSERT_EQUAL(EVP_PKEY_eq(k, pub_other), 0);
	CU_ASSERT(sign_verifies(a.libctx, k, pub_p256, &HOW_SHA256, "key and certificate"));
	X509_free(cert);
	cert = NULL;
	/* the certificate alone when asked for */
	memset(types, 0, sizeof(types));
	CU_ASSERT_EQUAL(store_load(a.libctx, "kos:p256", OSSL_STORE_INFO_CERT, types, NULL, &cert),
			1);
	CU_ASSERT_EQUAL(types[0], OSSL_STORE_INFO_CERT);
	CU_ASSERT(cert != NULL && X509_check_private_key(cert, k) == 1);
	X509_free(cert);
	cert = NULL;
	ERR_clear_error();

	/* type=public: a public key, which does not sign */
	memset(types, 0, sizeof(types));
	CU_ASSERT(store_load(a.libctx, "kos:ed;type=public", 0, types, &pk, NULL) >= 1);
	CU_ASSERT_EQUAL(types[0], OSSL_STORE_INFO_PUBKEY);
	CU_ASSERT(pk != NULL && EVP_PKEY_eq(pk, pub_ed) == 1);
	if (pk != NULL) {
		unsigned char sig[128];
		size_t len = sizeof(sig);
		struct how ed = { NULL, NULL };

		ERR_clear_error();
		CU_ASSERT(!dsign(a.libctx, pk, &ed, "x", 1, sig, &len));
		/* OpenSSL hands the public half to the default provider, which
		 * refuses it, before kos would */
		CU_ASSERT(queue_has("no private key|not a private key"));
	}
	EVP_PKEY_free(pk);
	EVP_PKEY_free(k);
	app_close(&a);
}

/* 65 characters, one more than a key name has */
#define LONG_NAME "a-name-of-sixty-five-characters-is-one-more-than-a-name-may-have-"

/* Malformed kos: URIs fail before any request, with "bad kos key URI";
 * a key kosd does not have with "no such key". */
static void test_bad_uris(void)
{
	static const char *const bad[] = {
		"kos:",
		"kos:-x",
		"kos:p256;version=0",
		"kos:p256;version=x",
		"kos:p256;type=secret",
		"kos:p256;color=red",
		"kos:p256;version=1;version=1",
		"kos:p256;;",
		"kos:p256;version",
		"kos:" LONG_NAME,
	};
	struct app a;
	EVP_PKEY *k;

	CU_ASSERT_FATAL(app_open(&a, "app", NULL));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ERR_clear_error();
		k = load_key(a.libctx, bad[i], true);
		CU_ASSERT(k == NULL);
		if (!queue_has("bad kos key URI"))
			fprintf(stderr, "  (for %s)\n", bad[i]);
		EVP_PKEY_free(k);
	}
	ERR_clear_error();
	k = load_key(a.libctx, "kos:nosuch", true);
	CU_ASSERT(k == NULL);
	CU_ASSERT(queue_has("no such key"));
	EVP_PKEY_free(k);
	/* and a well-formed URI with both attributes loads */
	k = load_key(a.libctx, "kos:p256;type=private;version=1", false);
	CU_ASSERT(k != NULL && EVP_PKEY_eq(k, pub_p256) == 1);
	EVP_PKEY_free(k);
	app_close(&a);
}

/* EVP_DigestSign with every form kos signs, each verified by the default
 * provider with kosd's key; a changed signature does not verify. */
static void test_digest_sign_every_form(void)
{
	static const struct how ec[] = {
		{ "SHA256", NULL },
		{ "SHA384", NULL },
		{ "SHA512", NULL },
	};
	static const struct how rsa[] = {
		{ "SHA256", NULL },     { "SHA384", NULL },    { "SHA512", NULL },
		{ "SHA256", "digest" }, { "SHA256", "max" },   { "SHA384", "digest" },
		{ "SHA512", "max" },    { "SHA256", "20" },
	};
	static const struct how ed = { NULL, NULL };
	unsigned char sig[512];
	size_t len = sizeof(sig);
	struct app a;
	EVP_PKEY *p256, *ed25519, *rsa2048;

	CU_ASSERT_FATAL(app_open(&a, "app", NULL));
	p256 = load_key(a.libctx, "kos:p256", false);
	ed25519 = load_key(a.libctx, "kos:ed", false);
	rsa2048 = load_key(a.libctx, "kos:rsa", false);
	CU_ASSERT_FATAL(p256 != NULL && ed25519 != NULL && rsa2048 != NULL);
	for (size_t i = 0; i < sizeof(ec) / sizeof(ec[0]); i++)
		CU_ASSERT(sign_verifies(a.libctx, p256, pub_p256, &ec[i], "ECDSA P-256"));
	CU_ASSERT(sign_verifies(a.libctx, ed25519, pub_ed, &ed, "Ed25519"));
	for (size_t i = 0; i < sizeof(rsa) / sizeof(rsa[0]); i++)
		if (!sign_verifies(a.libctx, rsa2048, pub_rsa, &rsa[i], "RSA"))
			CU_FAIL_FATAL("an RSA signature does not verify");
	/* the checks can fail: another key's, another message, a changed byte */
	CU_ASSERT_FATAL(dsign(a.libctx, p256, &HOW_SHA256, "m", 1, sig, &len));
	CU_ASSERT(dverify(pub_p256, &HOW_SHA256, "m", 1, sig, len));
	CU_ASSERT(!dverify(pub_other, &HOW_SHA256, "m", 1, sig, len));
	CU_ASSERT(!dverify(pub_p256, &HOW_SHA256, "n", 1, sig, len));
	sig[len / 2] ^= 1;
	CU_ASSERT(!dverify(pub_p256, &HOW_SHA256, "m", 1, sig, len));
	/* PSS with the digest's salt length is not PSS with the largest */
	len = sizeof(sig);
	CU_ASSERT_FATAL(dsign(a.libctx, rsa2048, &rsa[4], "m", 1, sig, &len));
	CU_ASSERT(dverify(pub_rsa, &rsa[4], "m", 1, sig, len));
	CU_ASSERT(!dverify(pub_rsa, &rsa[3], "m", 1, sig, len));
	EVP_PKEY_free(p256);
	EVP_PKEY_free(ed25519);
	EVP_PKEY_free(rsa2048);
	app_close(&a);
}

/* EVP_PKEY_sign of a digest the application computed: ECDSA by the
 * digest's length, RSA with the digest named, RSA PKCS#1 v1.5 of a
 * DigestInfo. */
static void test_pkey_sign_digest(void)
{
	/* DigestInfo prefix of SHA-256 (RFC 8017, 9.2) */
	static const unsigned char sha256_prefix[] = { 0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60,
						       0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
						       0x01, 0x05, 0x00, 0x04, 0x20 };
	unsigned char d256[32], d384[48], di[sizeof(sha256_prefix) + 32];
	struct app a;
	EVP_PKEY *p256, *rsa2048;
	EVP_PKEY_CTX *v;
	unsigned char sig[512];
	size_t len = sizeof(sig);

	EVP_Digest("digest", 6, d256, NULL, EVP_sha256(), NULL);
	EVP_Digest("digest", 6, d384, NULL, EVP_sha384(), NULL);
	memcpy(di, sha256_prefix, sizeof(sha256_prefix));
	memcpy(di + sizeof(sha256_prefix), d256, sizeof(d256));
	CU_ASSERT_FATAL(app_open(&a, "app", NULL));
	p256 = load_key(a.libctx, "kos:p256", false);
	rsa2048 = load_key(a.libctx, "kos:rsa", false);
	CU_ASSERT_FATAL(p256 != NULL && rsa2048 != NULL);
	CU_ASSERT(pkey_sign_verifies(a.libctx, p256, pub_p256, NULL, d256, sizeof(d256)));
	CU_ASSERT(pkey_sign_verifies(a.libctx, p256, pub_p256, NULL, d384, sizeof(d384)));
	CU_ASSERT(pkey_sign_verifies(a.libctx, rsa2048, pub_rsa, "SHA384", d384, sizeof(d384)));
	/* a DigestInfo, as CKM_RSA_PKCS callers pass it: the default
	 * provider's PKCS#1 v1.5 verification of the digest with SHA-256 */
	{
		EVP_PKEY_CTX *s = EVP_PKEY_CTX_new_from_pkey(a.libctx, rsa2048, NULL);

		CU_ASSERT(s != NULL && EVP_PKEY_sign_init(s) == 1 &&
			  EVP_PKEY_sign(s, sig, &len, di, sizeof(di)) == 1);
		EVP_PKEY_CTX_free(s);
	}
	v = EVP_PKEY_CTX_new_from_pkey(NULL, pub_rsa, NULL);
	CU_ASSERT(v != NULL && EVP_PKEY_verify_init(v) == 1 &&
		  EVP_PKEY_CTX_set_signature_md(v, EVP_sha256()) == 1 &&
		  EVP_PKEY_verify(v, sig, len, d256, sizeof(d256)) == 1);
	EVP_PKEY_CTX_free(v);
	ERR_clear_error();
	EVP_PKEY_free(p256);
	EVP_PKEY_free(rsa2048);
	app_close(&a);
}

/* 8 threads signing with one EVP_PKEY at once, 50 signatures each. */
struct signer {
	OSSL_LIB_CTX *libctx;
	EVP_PKEY *key;
	int id, verified;
};

static void *signer_main(void *arg)
{
	struct signer *s = arg;

	for (int i = 0; i < 50; i++) {
		char msg[48];

		snprintf(msg, sizeof(msg), "thread %d, signature %d", s->id, i);
		s->verified += sign_verifies(s->libctx, s->key, pub_p256, &HOW_SHA256, msg);
	}
	return NULL;
}

static void test_threads_sign_with_one_key(void)
{
	struct signer s[8];
	pthread_t t[8];
	struct app a;
	EVP_PKEY *k;
	int total = 0;

	CU_ASSERT_FATAL(app_open(&a, "app", NULL));
	k = load_key(a.libctx, "kos:p256", false);
	CU_ASSERT_FATAL(k != NULL);
	for (int i = 0; i < 8; i++) {
		s[i] = (struct signer){ .libctx = a.libctx, .key = k, .id = i };
		CU_ASSERT_FATAL(pthread_create(&t[i], NULL, signer_main, &s[i]) == 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		total += s[i].verified;
	}
	CU_ASSERT_EQUAL(total, 400);
	EVP_PKEY_free(k);
	app_close(&a);
}

/* 100 signatures of "WHO n" with k, each verified: how many verify. */
static int sign_100(OSSL_LIB_CTX *libctx, EVP_PKEY *k, const char *who)
{
	int ok = 0;

	for (int i = 0; i < 100; i++) {
		char msg[32];

		snprintf(msg, sizeof(msg), "%s %d", who, i);
		ok += sign_verifies(libctx, k, pub_p256, &HOW_SHA256, msg);
	}
	return ok;
}

/* The parent signs, forks; the child signs with the key it inherited and
 * hands a signature back, which the parent verifies; the parent signs
 * again. Both sign at the same time too: were the child to use the
 * parent's kept-alive connection to kosd, their requests and answers would
 * interleave on it and signatures fail or not verify. */
static void test_fork(void)
{
	unsigned char sig[128];
	size_t len = sizeof(sig);
	struct app a;
	EVP_PKEY *k;
	int fds[2], go[2], status = -1;
	ssize_t got;
	pid_t pid;

	CU_ASSERT_FATAL(app_open(&a, "app", NULL));
	k = load_key(a.libctx, "kos:p256", false);
	CU_ASSERT_FATAL(k != NULL);
	CU_ASSERT(sign_verifies(a.libctx, k, pub_p256, &HOW_SHA256, "parent, before"));
	CU_ASSERT_FATAL(pipe(fds) == 0 && pipe(go) == 0);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		char c;

#ifdef __SANITIZE_ADDRESS__
		/* ASan turns a SIGSEGV into an exit: the parent must see a crash */
		signal(SIGSEGV, SIG_DFL);
#endif
		close(fds[0]);
		close(go[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(2);
		if (sign_100(a.libctx, k, "child") != 100)
			_exit(3);
		if (!dsign(a.libctx, k, &HOW_SHA256, "child", 5, sig, &len)) {
			ERR_print_errors_fp(stderr);
			_exit(4);
		}
		_exit(write(fds[1], sig, len) == (ssize_t)len ? 0 : 5);
	}
	close(fds[1]);
	close(go[0]);
	CU_ASSERT(write(go[1], "g", 1) == 1);
	close(go[1]);
	CU_ASSERT_EQUAL(sign_100(a.libctx, k, "parent"), 100);
	got = read(fds[0], sig, sizeof(sig));
	close(fds[0]);
	CU_ASSERT(waitpid(pid, &status, 0) == pid);
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fprintf(stderr, "\nthe child %s %d\n", WIFEXITED(status) ? "exited" : "died of",
			WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	CU_ASSERT(got > 0 && dverify(pub_p256, &HOW_SHA256, "child", 5, sig, (size_t)got));
	CU_ASSERT(sign_verifies(a.libctx, k, pub_p256, &HOW_SHA256, "parent, after"));
	EVP_PKEY_free(k);
	app_close(&a);
}

/* Signs once with client's key (loaded before), expecting failure with
 * reason; 1 when so. */
static int sign_refused(OSSL_LIB_CTX *libctx, EVP_PKEY *k, const char *reason)
{
	unsigned char sig[128];
	size_t len = sizeof(sig);

	ERR_clear_error();
	if (dsign(libctx, k, &HOW_SHA256, "refused", 7, sig, &len)) {
		fprintf(stderr, "\nsigned, expected \"%s\"\n", reason);
		return 0;
	}
	return queue_has(reason);
}

/* A low-tier client (policy signing.min_tier = "medium") and a deny-tier
 * one are refused signing with "trust too low"; a deny-tier client is
 * refused even the key, so den loads it while high and then falls. */
static void test_low_and_deny_tiers(void)
{
	struct app a;
	EVP_PKEY *k;

	/* low: the key loads (its public half is no private-key use) */
	CU_ASSERT_FATAL(app_open(&a, "low", NULL));
	k = load_key(a.libctx, "kos:p256", false);
	CU_ASSERT_FATAL(k != NULL);
	if (have_min_tier) {
		CU_ASSERT(sign_refused(a.libctx, k, "trust too low"));
	} else {
		/* this base signs for every tier but deny */
		CU_ASSERT(sign_verifies(a.libctx, k, pub_p256, &HOW_SHA256, "low, no min_tier"));
	}
	EVP_PKEY_free(k);
	app_close(&a);

	/* den falls from high to deny with its key loaded */
	CU_ASSERT_FATAL(app_open(&a, "den", NULL));
	k = load_key(a.libctx, "kos:p256", false);
	CU_ASSERT_FATAL(k != NULL);
	CU_ASSERT(sign_verifies(a.libctx, k, pub_p256, &HOW_SHA256, "den, still high"));
	CU_ASSERT_EQUAL_FATAL(integrity_failures("den", 3), KOS_OK);
	CU_ASSERT(sign_refused(a.libctx, k, "trust too low"));
	EVP_PKEY_free(k);
	ERR_clear_error();
	k = load_key(a.libctx, "kos:p256", true);
	CU_ASSERT(k == NULL);
	CU_ASSERT(queue_has("trust too low"));
	EVP_PKEY_free(k);
	app_close(&a);
}

/* A key loaded while the client was trusted: it revoked, the next
 * signatures fail with "credential revoked" (once kosd sees it). */
static void test_revoked_credential(void)
{
	struct app a;
	EVP_PKEY *k;
	unsigned char sig[128];
	size_t len;
	int signed_after = 0;

	CU_ASSERT_FATAL(app_open(&a, "gone", NULL));
	k = load_key(a.libctx, "kos:p256", false);
	CU_ASSERT_FATAL(k != NULL);
	CU_ASSERT(sign_verifies(a.libctx, k, pub_p256, &HOW_SHA256, "before revocation"));
	CU_ASSERT_EQUAL_FATAL(kos_cred_revoke_client(ca, "gone"), KOS_OK);
	for (int i = 0; i < 20; i++) {
		len = sizeof(sig);
		ERR_clear_error();
		if (!dsign(a.libctx, k, &HOW_SHA256, "after", 5, sig, &len))
			break;
		signed_after++;
		usleep(100000);
	}
	CU_ASSERT(signed_after < 20);
	CU_ASSERT(queue_has("credential revoked"));
	/* and the next attempt says the same */
	CU_ASSERT(sign_refused(a.libctx, k, "credential revoked"));
	EVP_PKEY_free(k);
	app_close(&a);
}

/* A key the credential may read (pubkey:*) but not sign with. */
static void test_out_of_scope(void)
{
	struct app a;
	EVP_PKEY *k;

	CU_ASSERT_FATAL(app_open(&a, "app", NULL));
	k = load_key(a.libctx, "kos:other", false);
	CU_ASSERT_FATAL(k != NULL);
	CU_ASSERT(EVP_PKEY_eq(k, pub_other) == 1);
	CU_ASSERT(sign_refused(a.libctx, k, "out of scope"));
	EVP_PKEY_free(k);
	app_close(&a);
}

/* kosd unreachable: on another socket path nothing loads; and kosd
 * stopping under a loaded key fails its signatures, which work again with
 * the same EVP_PKEY once kosd is back. */
static void test_kosd_unavailable(void)
{
	char nowhere[700];
	struct app a;
	EVP_PKEY *k;

	snprintf(nowhere, sizeof(nowhere), "%s/nowhere.sock", kos_test_tmpdir());
	CU_ASSERT_FATAL(app_open(&a, "app", nowhere));
	ERR_clear_error();
	k = load_key(a.libctx, "kos:p256", true);
	CU_ASSERT(k == NULL);
	CU_ASSERT(queue_has("kosd unavailable"));
	EVP_PKEY_free(k);
	app_close(&a);

	CU_ASSERT_FATAL(app_open(&a, "app", NULL));
	k = load_key(a.libctx, "kos:p256", false);
	CU_ASSERT_FATAL(k != NULL);
	CU_ASSERT(sign_verifies(a.libctx, k, pub_p256, &HOW_SHA256, "kosd up"));
	kos_test_kosd_stop(&kosd_pid);
	CU_ASSERT(sign_refused(a.libctx, k, "kosd unavailable"));
	CU_ASSERT_FATAL(kos_test_kosd_start(conf_path, NULL, kosd_log, sock, &kosd_pid) == 0);
	CU_ASSERT(sign_verifies(a.libctx, k, pub_p256, &HOW_SHA256, "kosd back"));
	EVP_PKEY_free(k);
	app_close(&a);
}

/* A refusal, the provider's or kosd's, leaves the EVP_PKEY as it was:
 * the next good signature with it works. */
static void test_refusal_changes_nothing(void)
{
	static const struct how sha3 = { "SHA3-256", NULL }, sha1 = { "SHA1", NULL },
				pss_max = { "SHA256", "max" }, pss_long = { "SHA256", "223" },
				ed_sha = { "SHA256", NULL }, ed = { NULL, NULL };
	unsigned char sig[512], d17[17] = { 0 };
	size_t len;
	struct app a;
	EVP_PKEY *p256, *rsa2048, *ed25519;
	EVP_PKEY_CTX *s;

	CU_ASSERT_FATAL(app_open(&a, "app", NULL));
	p256 = load_key(a.libctx, "kos:p256", false);
	rsa2048 = load_key(a.libctx, "kos:rsa", false);
	ed25519 = load_key(a.libctx, "kos:ed", false);
	CU_ASSERT_FATAL(p256 != NULL && rsa2048 != NULL && ed25519 != NULL);

	/* a digest of no hash's length (the provider) */
	s = EVP_PKEY_CTX_new_from_pkey(a.libctx, p256, NULL);
	len = sizeof(sig);
	ERR_clear_error();
	CU_ASSERT(s != NULL && EVP_PKEY_sign_init(s) == 1 &&
		  EVP_PKEY_sign(s, sig, &len, d17, sizeof(d17)) != 1);
	CU_ASSERT(queue_has("invalid argument"));
	EVP_PKEY_CTX_free(s);
	CU_ASSERT(sign_verifies(a.libctx, p256, pub_p256, &HOW_SHA256, "after a bad digest"));

	/* a hash kos does not sign with (the provider) */
	len = sizeof(sig);
	ERR_clear_error();
	CU_ASSERT(!dsign(a.libctx, p256, &sha3, "m", 1, sig, &len));
	CU_ASSERT(queue_has("not supported by kos"));
	CU_ASSERT(sign_verifies(a.libctx, p256, pub_p256, &HOW_SHA256, "after SHA3-256"));

	/* SHA-1, which kosd's policy refuses (kosd) */
	len = sizeof(sig);
	ERR_clear_error();
	CU_ASSERT(!dsign(a.libctx, p256, &sha1, "m", 1, sig, &len));
	CU_ASSERT(queue_has("refused by policy"));
	CU_ASSERT(sign_verifies(a.libctx, p256, pub_p256, &HOW_SHA256, "after SHA-1"));

	/* a PSS salt longer than the key allows (222 bytes for SHA-256) */
	len = sizeof(sig);
	ERR_clear_error();
	CU_ASSERT(!dsign(a.libctx, rsa2048, &pss_long, "m", 1, sig, &len));
	CU_ASSERT(queue_has("invalid argument"));
	CU_ASSERT(sign_verifies(a.libctx, rsa2048, pub_rsa, &pss_max, "after a long salt"));

	/* Ed25519 with a digest named */
	len = sizeof(sig);
	ERR_clear_error();
	CU_ASSERT(!dsign(a.libctx, ed25519, &ed_sha, "m", 1, sig, &len));
	CU_ASSERT(queue_has("invalid argument"));
	CU_ASSERT(sign_verifies(a.libctx, ed25519, pub_ed, &ed, "after a digest for Ed25519"));

	/* and nothing is left in the queue by the good ones */
	CU_ASSERT_EQUAL(ERR_peek_error(), 0);
	EVP_PKEY_free(p256);
	EVP_PKEY_free(rsa2048);
	EVP_PKEY_free(ed25519);
	app_close(&a);
}

int main(void)
{
	static const struct kos_test_case cases[] = {
		KOS_TEST(test_load_use_unload_20_times),
		KOS_TEST(test_config_section),
		KOS_TEST(test_store_key_certificate_public),
		KOS_TEST(test_bad_uris),
		KOS_TEST(test_digest_sign_every_form),
		KOS_TEST(test_pkey_sign_digest),
		KOS_TEST(test_threads_sign_with_one_key),
		KOS_TEST(test_fork),
		KOS_TEST(test_refusal_changes_nothing),
		KOS_TEST(test_out_of_scope),
		KOS_TEST(test_revoked_credential),
		KOS_TEST(test_kosd_unavailable),
		KOS_TEST(test_low_and_deny_tiers),
	};

	return kos_test_run("provider", suite_init, suite_cleanup, cases,
			    sizeof(cases) / sizeof(cases[0]));
}
