/* The client library against a real kosd (started from $KOSD on a
 * development installation in a temporary directory): health, enrollment,
 * the tier-dependent decryption paths, the DEK cache, keep-alive, automatic
 * refresh written back to the credential file, and kosd's refusals mapped
 * to kos_rv with their reasons. Trust is moved with the kos_trust API on the
 * same store, from this process, while kosd runs.
 *
 * A second kosd runs in the KMS role (kosd --role kms) with its own kos.conf
 * listing one KMS token of the same installation and the CA's JWKS: the
 * main kosd's kms_fronts send clients there for that token's shares, so a
 * medium-tier decryption fetches from both processes. kosd also listens on
 * TLS 1.3 with client certificates (a throwaway PKI made with the openssl
 * CLI), which the library reaches at https://127.0.0.1:PORT. */
#include "config.h"

#include "kos/internal.h"
#include "tests/kos-test.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdbool.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

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

#define SCOPE "encrypt:payments decrypt:payments sign:signer-1"

static char inst[512], sock[600], kms_sock[600], pki[600];
static kos_config *conf;
static kos_policy *pol;
static kos_store *st;
static kos_trust *tr;
static kos_ca *ca;
static pid_t kosd_pid = -1, kms_pid = -1;
static unsigned tls_port;
/* the KMS token the KMS kosd serves, and share ids of payments version 1:
 * the narrow set's share there and on the other token, a wide one there */
static char front_token[KOS_TOKEN_NAME_MAX + 1];
static char front_narrow[129], main_narrow[129], front_wide[129];

/* enrollment secrets, by client */
static const char *const names[] = { "hugo", "mia", "lou", "rita", "rex", "dan", "eve",
				     "mo",   "tess", "gus",  "meg", "lin", "gil", "cara", "cid" };
static char secrets[sizeof(names) / sizeof(names[0])][KOS_CRED_SECRET_LEN + 1];

/* finder reaches the bulk keys and three signing keys of each kind kos
 * signs with; dsig signs with signer-1 while its trust falls */
#define FINDER_SCOPE "decrypt:bulk-* sign:bulk-* sign:signer-1 sign:rsa-1 sign:ed-1"
#define BULK_KEYS    50 /* bulk-00 .. bulk-49 */
#define BULK_EC      5  /* of them, bulk-00 .. bulk-04 are EC P-256 keys */
static char finder_secret[KOS_CRED_SECRET_LEN + 1], digest_secret[KOS_CRED_SECRET_LEN + 1];
/* vers signs with chosen versions of tls-1 (two versions) and retires them */
#define VERS_SCOPE "sign:tls-1 admin:keys"
static char vers_secret[KOS_CRED_SECRET_LEN + 1];
/* rsad decrypts with RSA keys (rsa-2 has two versions), rsaf probes with
 * ciphertexts that do not decrypt */
#define RSA_SCOPE "decrypt:rsa-* decrypt:signer-1 pubkey:rsa-* admin:keys"
static char rsad_secret[KOS_CRED_SECRET_LEN + 1], rsaf_secret[KOS_CRED_SECRET_LEN + 1];

static const char *secret_of(const char *name)
{
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(names[i], name) == 0)
			return secrets[i];
	return "";
}

static kos_rv integrity_failures(const char *client, int n)
{
	kos_observation obs = { .event = KOS_EVENT_INTEGRITY };
	kos_rv rv = KOS_OK;

	for (int i = 0; i < n && rv == KOS_OK; i++)
		rv = kos_trust_observe(tr, client, &obs, NULL);
	return rv;
}

static kos_tier tier_of(const char *client)
{
	kos_trust_info info;

	if (kos_trust_get(tr, client, &info) != KOS_OK)
		return KOS_TIER_DENY;
	return info.tier;
}

/* The tier of client once it is want, or after 2 s what it is then: kosd
 * writes its observations every 100 ms. */
static kos_tier tier_soon(const char *client, kos_tier want)
{
	kos_tier t = tier_of(client);

	for (int i = 0; i < 100 && t != want; i++) {
		usleep(20000);
		t = tier_of(client);
	}
	return t;
}

/* The default policy with trust made of the integrity factor alone,
 * starting at 90 (high) with no recovery, so that each integrity failure
 * (25 points) moves a client one step down: 90 high, 65 medium, 40 low,
 * 15 deny. Medium credentials live 4 s, for the refresh test. The narrow
 * share set (scores 65 and up) has n = k = 2. */
static int write_policy(const char *path)
{
	static const char *const edits[][2] = {
		{ "prior = 60.0;", "prior = 90.0;" },
		{ "    latency = 1.0;", "    latency = 0.0;" },
		{ "    usage = 1.0;", "    usage = 0.0;" },
		{ "    anomaly = 2.0;", "    anomaly = 0.0;" },
		{ "    reputation = 1.0;", "    reputation = 0.0;" },
		{ "recovery = 1.0; };", "recovery = 0.0; };" },
		{ "medium = \"5m\"; low = \"1m\";", "medium = \"4s\"; low = \"3s\";" },
		/* both shares of the narrow set are fetched: one from each kosd */
		{ "max_score = 100.0; n = 3; k = 2;", "max_score = 100.0; n = 2; k = 2;" },
	};
	return kos_test_write_policy(path, edits, sizeof(edits) / sizeof(edits[0]));
}

/* Starts $KOSD with conf_path (and --role kms when kms) logging to log,
 * and waits until it answers on socket; the pid in *pid. */
static int spawn_kosd(const char *conf_path, bool kms, const char *log, const char *socket,
		      pid_t *pid)
{
	const char *bin = getenv("KOSD");
	kos_client *c = NULL;
	int ok = 0;

	*pid = fork();
	if (*pid < 0)
		return -1;
	if (*pid == 0) {
		if (freopen(log, "a", stderr) == NULL)
			_exit(127);
		if (kms)
			execl(bin != NULL ? bin : "./kosd", "kosd", "--config", conf_path, "--role",
			      "kms", (char *)NULL);
		else
			execl(bin != NULL ? bin : "./kosd", "kosd", "--config", conf_path,
			      (char *)NULL);
		_exit(127);
	}
	if (kos_client_new(socket, &c) != KOS_OK)
		return -1;
	for (int i = 0; i < 200 && !ok; i++) {
		if (kos_client_health(c, NULL, 0) == KOS_OK) {
			ok = 1;
			break;
		}
		if (waitpid(*pid, NULL, WNOHANG) == *pid) {
			*pid = -1;
			break;
		}
		usleep(50000);
	}
	kos_client_free(c);
	return ok ? 0 : -1;
}

static int start_kosd(void)
{
	char conf_path[600], log_path[600];

	snprintf(conf_path, sizeof(conf_path), "%s/kos.conf", inst);
	snprintf(log_path, sizeof(log_path), "%s/kosd.log", kos_test_tmpdir());
	if (spawn_kosd(conf_path, false, log_path, sock, &kosd_pid) != 0)
		return -1;
	snprintf(conf_path, sizeof(conf_path), "%s/kms.conf", inst);
	snprintf(log_path, sizeof(log_path), "%s/kms.log", kos_test_tmpdir());
	return spawn_kosd(conf_path, true, log_path, kms_sock, &kms_pid);
}

/* A TCP port nobody listens on now (the kernel's pick for port 0). */
static unsigned free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	unsigned port = 0;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* A throwaway PKI with the openssl CLI: a CA, kosd's certificate for
 * 127.0.0.1, a client certificate, and another CA. */
static int make_pki(void)
{
	char cmd[4096];

	snprintf(cmd, sizeof(cmd),
		 "set -e; mkdir -p '%s'; cd '%s'; exec >>openssl.log 2>&1\n"
		 "mkca() { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		 "-days 1 -subj \"/O=kos test/CN=$1\" -keyout $1.key -out $1.pem "
		 "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign; }\n"
		 "mkcert() { printf '%%b\\n' \"$2\" > $1.ext; "
		 "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		 "-subj \"/O=kos test/CN=$1\" -keyout $1.key -out $1.csr; "
		 "openssl x509 -req -in $1.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 "
		 "-extfile $1.ext -out $1.pem; }\n"
		 "mkca ca; mkca other\n"
		 "mkcert server 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n"
		 "extendedKeyUsage=serverAuth'\n"
		 "mkcert client extendedKeyUsage=clientAuth\n",
		 pki, pki);
	return system(cmd) == 0 ? 0 : -1;
}

static int pick_shares(const kos_key_share_info *sh, void *arg)
{
	(void)arg;
	if (strcmp(sh->set, "narrow") == 0) {
		/* the second narrow share's token goes to the KMS kosd */
		if (main_narrow[0] == '\0') {
			snprintf(main_narrow, sizeof(main_narrow), "%s", sh->label);
		} else {
			snprintf(front_narrow, sizeof(front_narrow), "%s", sh->label);
			snprintf(front_token, sizeof(front_token), "%s", sh->token);
		}
	}
	return 0;
}

static int pick_wide(const kos_key_share_info *sh, void *arg)
{
	(void)arg;
	if (strcmp(sh->set, "wide") == 0 && strcmp(sh->token, front_token) == 0)
		snprintf(front_wide, sizeof(front_wide), "%s", sh->label);
	return 0;
}

static int write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	int rc;

	if (f == NULL)
		return -1;
	rc = fputs(text, f) < 0 ? -1 : 0;
	if (fclose(f) != 0)
		rc = -1;
	return rc;
}

/* The main kos.conf gains the TLS listener and the kms_fronts entry; the
 * KMS kosd's kms.conf lists the front's token only, the CA's JWKS and no
 * store. */
static int write_confs(kos_ca *admin)
{
	char path[700], *text = NULL, *jwks = NULL, *out = NULL, *at;
	const char *old = "listen = { unix = \"kosd.sock\"; unix_mode = \"0660\"; };";
	size_t len = 0, t;
	int rc = -1;

	snprintf(path, sizeof(path), "%s/ca.jwks", inst);
	if (kos_ca_jwks(admin, &jwks) != KOS_OK || write_text(path, jwks) != 0)
		goto out;
	snprintf(path, sizeof(path), "%s/kos.conf", inst);
	if (kos_read_file(path, 1 << 20, &text, &len) != KOS_OK ||
	    (at = strstr(text, old)) == NULL || (out = malloc(len + 4096)) == NULL)
		goto out;
	sprintf(out,
		"%.*slisten = { unix = \"kosd.sock\"; unix_mode = \"0660\"; tcp = "
		"\"127.0.0.1:%u\";\n"
		"  tls = { cert = \"%s/server.pem\"; key = \"%s/server.key\"; client_ca = "
		"\"%s/ca.pem\"; }; };%s\n"
		"kms_fronts = ( { tokens = [\"%s\"]; address = \"unix:kms.sock\"; } );\n",
		(int)(at - text), text, tls_port, pki, pki, pki, at + strlen(old), front_token);
	if (write_text(path, out) != 0)
		goto out;
	if (kos_config_token_find(conf, front_token, &t) != KOS_OK || kos_config_env_count(conf) < 1)
		goto out;
	snprintf(out, len + 4096,
		 "# a KMS front for one token of the installation\n"
		 "policy = \"%s\";\n"
		 "environment = { %s = \"%s\"; };\n"
		 "tokens = ( { name = \"%s\"; role = \"kms\"; module = \"%s\"; uri = \"%s\"; "
		 "pin = \"%s\"; } );\n"
		 "kms = { jwks = \"ca.jwks\"; };\n"
		 "listen = { unix = \"kms.sock\"; unix_mode = \"0600\"; };\n",
		 kos_config_get0_policy(conf), kos_config_env_get0_name(conf, 0),
		 kos_config_env_get0_value(conf, 0), front_token,
		 kos_config_token_get0_module(conf, t), kos_config_token_get0_uri(conf, t),
		 kos_config_token_get0_pin(conf, t));
	snprintf(path, sizeof(path), "%s/kms.conf", inst);
	rc = write_text(path, out);
out:
	free(text);
	free(out);
	kos_free(jwks);
	return rc;
}

static int suite_init(void)
{
	char path[600];
	kos_hsm *hsm = NULL;
	kos_keys *keys = NULL;
	kos_ca *admin = NULL;
	kos_rv rv = KOS_E_INTERNAL;

	snprintf(inst, sizeof(inst), "%s/inst", kos_test_tmpdir());
	snprintf(sock, sizeof(sock), "%s/kosd.sock", inst);
	snprintf(kms_sock, sizeof(kms_sock), "%s/kms.sock", inst);
	snprintf(pki, sizeof(pki), "%s/pki", kos_test_tmpdir());
	tls_port = free_port();
	if (tls_port == 0 || make_pki() != 0) {
		fprintf(stderr, "set-up: no port or no PKI (see %s/openssl.log)\n", pki);
		return 1;
	}
	snprintf(path, sizeof(path), "%s/test.policy", kos_test_tmpdir());
	if (write_policy(path) != 0 || kos_devinit(inst, 0, path, NULL) != KOS_OK)
		goto fail;
	snprintf(path, sizeof(path), "%s/kos.conf", inst);
	if (kos_config_load(path, &conf, NULL) != KOS_OK ||
	    kos_policy_load(kos_config_get0_policy(conf), &pol, NULL) != KOS_OK ||
	    kos_store_open(kos_config_get0_store(conf), &st) != KOS_OK ||
	    kos_trust_new(pol, st, &tr) != KOS_OK)
		goto fail;
	/* what an administrator does before kosd starts: the CA key, the keys
	 * and the clients; the token handles are closed again */
	if (kos_hsm_open(conf, 0, &hsm) != KOS_OK || kos_keys_new(pol, st, hsm, &keys) != KOS_OK ||
	    kos_ca_new(pol, st, hsm, tr, &admin) != KOS_OK || kos_ca_init(admin, NULL) != KOS_OK ||
	    kos_key_create(keys, "payments", KOS_KEY_DEK) != KOS_OK ||
	    kos_key_create(keys, "other", KOS_KEY_DEK) != KOS_OK ||
	    kos_key_create(keys, "signer-1", KOS_KEY_EC_P256) != KOS_OK ||
	    kos_key_create(keys, "rsa-1", KOS_KEY_RSA_2048) != KOS_OK ||
	    kos_key_create(keys, "ed-1", KOS_KEY_ED25519) != KOS_OK ||
	    kos_key_create(keys, "tls-1", KOS_KEY_EC_P256) != KOS_OK ||
	    kos_key_rotate(keys, "tls-1", NULL) != KOS_OK ||
	    kos_key_create(keys, "rsa-2", KOS_KEY_RSA_2048) != KOS_OK ||
	    kos_key_rotate(keys, "rsa-2", NULL) != KOS_OK)
		goto fail;
	for (int i = 0; i < BULK_KEYS; i++) {
		char name[24];

		snprintf(name, sizeof(name), "bulk-%02d", i);
		if (kos_key_create(keys, name, i < BULK_EC ? KOS_KEY_EC_P256 : KOS_KEY_DEK) !=
		    KOS_OK)
			goto fail;
	}
	if (kos_ca_client_add(admin, "finder", FINDER_SCOPE, finder_secret) != KOS_OK ||
	    kos_ca_client_add(admin, "dsig", "sign:signer-1", digest_secret) != KOS_OK ||
	    kos_ca_client_add(admin, "vers", VERS_SCOPE, vers_secret) != KOS_OK ||
	    kos_ca_client_add(admin, "rsad", RSA_SCOPE, rsad_secret) != KOS_OK ||
	    kos_ca_client_add(admin, "rsaf", RSA_SCOPE, rsaf_secret) != KOS_OK)
		goto fail;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		/* cara attaches certificates and does nothing else */
		if (kos_ca_client_add(admin, names[i],
				      strcmp(names[i], "cara") == 0 ? "certify:signer-1" : SCOPE,
				      secrets[i]) != KOS_OK)
			goto fail;
	/* tiers before enrollment, so credentials get their tier's lifetime:
	 * hugo high (observed once, so he is known), mia and rita medium (4 s),
	 * lou low (3 s) */
	if (kos_trust_observe(tr, "hugo", &(kos_observation){ .event = KOS_EVENT_SUCCESS },
			      NULL) != KOS_OK ||
	    integrity_failures("mia", 1) != KOS_OK || integrity_failures("rita", 1) != KOS_OK ||
	    integrity_failures("mo", 1) != KOS_OK || integrity_failures("tess", 1) != KOS_OK ||
	    integrity_failures("lou", 2) != KOS_OK ||
	    kos_trust_observe(tr, "gus", &(kos_observation){ .event = KOS_EVENT_SUCCESS },
			      NULL) != KOS_OK ||
	    integrity_failures("meg", 1) != KOS_OK || integrity_failures("lin", 2) != KOS_OK ||
	    integrity_failures("gil", 2) != KOS_OK)
		goto fail;
	if (kos_key_shares(keys, "payments", 1, pick_shares, NULL) != KOS_OK ||
	    front_token[0] == '\0' ||
	    kos_key_shares(keys, "payments", 1, pick_wide, NULL) != KOS_OK ||
	    front_wide[0] == '\0' || write_confs(admin) != 0)
		goto fail;
	kos_ca_free(admin);
	admin = NULL;
	kos_keys_free(keys);
	keys = NULL;
	kos_hsm_free(hsm);
	hsm = NULL;
	/* a verifier over the store alone, for revocations */
	if (kos_ca_new(pol, st, NULL, tr, &ca) != KOS_OK)
		goto fail;
	if (kos_test_softhsm_leaks_ignored() != 0 || start_kosd() != 0) {
		fprintf(stderr, "set-up: kosd did not start (see %s/kosd.log and kms.log)\n",
			kos_test_tmpdir());
		return 1;
	}
	return 0;
fail:
	fprintf(stderr, "set-up: %s (%d)\n", kos_last_error(), rv);
	kos_ca_free(admin);
	kos_keys_free(keys);
	kos_hsm_free(hsm);
	return 1;
}

/* A clean stop: SIGTERM, and kosd exits 0. */
static int stop_clean(pid_t *pid, const char *what)
{
	int status = 0;

	if (*pid <= 0)
		return 0;
	kill(*pid, SIGTERM);
	for (int i = 0; i < 100; i++) {
		if (waitpid(*pid, &status, WNOHANG) == *pid) {
			*pid = -1;
			break;
		}
		usleep(50000);
	}
	if (*pid > 0) {
		fprintf(stderr, "%s did not stop on SIGTERM\n", what);
		kill(*pid, SIGKILL);
		waitpid(*pid, NULL, 0);
		*pid = -1;
		return 1;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "%s exited with status %d\n", what, status);
		return 1;
	}
	return 0;
}

static int suite_cleanup(void)
{
	int rc = 0;

	rc |= stop_clean(&kms_pid, "the KMS kosd");
	rc |= stop_clean(&kosd_pid, "kosd");
	kos_ca_free(ca);
	kos_trust_free(tr);
	kos_store_free(st);
	kos_policy_free(pol);
	kos_config_free(conf);
	return rc;
}

/* A handle for client name, enrolled (credential saved to save when given). */
static kos_client *enrolled(const char *name, const char *save)
{
	kos_client *c = NULL;

	CU_ASSERT_EQUAL_FATAL(kos_client_new(sock, &c), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_client_enroll(c, secret_of(name), save), KOS_OK);
	return c;
}

static kos_rv encrypt_text(kos_client *c, const char *text, const char *ctx, uint8_t **env,
			   size_t *env_len)
{
	return kos_client_encrypt(c, "payments", ctx, (const uint8_t *)text, strlen(text), env,
				  env_len);
}

static void assert_decrypts(kos_client *c, const uint8_t *env, size_t env_len, const char *ctx,
			    const char *want)
{
	uint8_t *pt = NULL;
	size_t len = 0;

	CU_ASSERT_EQUAL(kos_client_decrypt(c, ctx, env, env_len, &pt, &len), KOS_OK);
	CU_ASSERT_EQUAL(len, strlen(want));
	if (pt != NULL && len == strlen(want))
		CU_ASSERT_EQUAL(memcmp(pt, want, len), 0);
	kos_secret_free(pt, len);
}

static char *read_text(const char *path)
{
	char *t = NULL;
	size_t n = 0;

	if (kos_read_file(path, 65536, &t, &n) != KOS_OK)
		return NULL;
	return t;
}

/* --- cases -------------------------------------------------------------- */

static void test_health(void)
{
	kos_client *c = NULL;
	char version[32] = "";

	CU_ASSERT_EQUAL_FATAL(kos_client_new(sock, &c), KOS_OK);
	CU_ASSERT_EQUAL(kos_client_health(c, version, sizeof(version)), KOS_OK);
	CU_ASSERT_STRING_EQUAL(version, PACKAGE_VERSION);
	kos_client_free(c);

	/* "unix:PATH" is the same socket */
	snprintf(version, sizeof(version), "%s", "");
	{
		char spec[700];

		snprintf(spec, sizeof(spec), "unix:%s", sock);
		CU_ASSERT_EQUAL_FATAL(kos_client_new(spec, &c), KOS_OK);
		CU_ASSERT_EQUAL(kos_client_health(c, NULL, 0), KOS_OK);
		kos_client_free(c);
	}
}

static void test_transport_failures(void)
{
	kos_client *c = NULL;
	char path[700], *out = NULL;

	snprintf(path, sizeof(path), "%s/nobody.sock", kos_test_tmpdir());
	CU_ASSERT_EQUAL_FATAL(kos_client_new(path, &c), KOS_OK);
	CU_ASSERT_EQUAL(kos_client_health(c, NULL, 0), KOS_E_IO);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "cannot reach kosd"));
	CU_ASSERT_EQUAL(kos_client_last_refusal(c), KOS_CLIENT_REFUSAL_UNAVAILABLE);
	/* TLS files that are not there are named at once */
	CU_ASSERT_EQUAL(kos_client_set_tls(c, "c.pem", "k.pem", "ca.pem"), KOS_E_IO);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "c.pem"));
	CU_ASSERT_EQUAL(kos_client_set_tls(c, NULL, "k.pem", NULL), KOS_E_INVALID);
	/* a query of plain name=value pairs passes the path check (and fails
	 * later, on the missing credential or kosd); anything else is no route */
	CU_ASSERT_EQUAL(kos_client_call(c, "GET", "/v1/keys/k/pubkey?a=1?b", NULL, &out),
			KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_client_call(c, "GET", "/v1/keys/k/pubkey?a=%2e", NULL, &out),
			KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_client_call(c, "GET", "/v1/keys/k/pubkey?a=b c", NULL, &out),
			KOS_E_INVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "not a route"));
	CU_ASSERT_NOT_EQUAL(kos_client_call(c, "GET", "/v1/keys/k/pubkey?version=1", NULL, &out),
			    KOS_OK);
	CU_ASSERT_PTR_NULL(strstr(kos_last_error(), "not a route"));
	CU_ASSERT_PTR_NULL(out);
	kos_client_free(c);
	/* an https:// server is HOST:PORT and nothing more */
	CU_ASSERT_EQUAL(kos_client_new("https://kos.example:8443", &c), KOS_OK);
	kos_client_free(c);
	c = NULL;
	CU_ASSERT_EQUAL(kos_client_new("https://kos.example:8443/v1", &c), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_client_new("https://kos.example", &c), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_client_new("http://kos.example:80", &c), KOS_E_INVALID);
	CU_ASSERT_PTR_NULL(c);
	unsetenv(KOS_CLIENT_ENV_SERVER);
	CU_ASSERT_EQUAL(kos_client_new(NULL, &c), KOS_E_INVALID);
	kos_client_free(NULL);
}

static void test_enroll(void)
{
	kos_client *c = NULL;
	char path[700];
	struct stat sb;
	char *text;

	snprintf(path, sizeof(path), "%s/eve.cred", kos_test_tmpdir());
	CU_ASSERT_EQUAL_FATAL(kos_client_new(sock, &c), KOS_OK);
	/* no credential yet: only health and enroll work */
	{
		uint8_t *env = NULL;
		size_t n = 0;

		CU_ASSERT_EQUAL(encrypt_text(c, "x", NULL, &env, &n), KOS_E_INVALID);
		CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "no credential"));
	}
	CU_ASSERT_EQUAL(kos_client_enroll(c, "not-a-secret-at-all", NULL), KOS_E_INTEGRITY);
	KOS_ASSERT_STR_EQ(kos_client_last_code(c), "invalid_secret");
	CU_ASSERT_EQUAL(kos_client_last_refusal(c), KOS_CLIENT_REFUSAL_CREDENTIAL);
	CU_ASSERT_EQUAL_FATAL(kos_client_enroll(c, secret_of("eve"), path), KOS_OK);
	CU_ASSERT(kos_client_credential_expires(c) > kos_now());
	CU_ASSERT_EQUAL_FATAL(stat(path, &sb), 0);
	CU_ASSERT_EQUAL(sb.st_mode & 0777, 0600);
	text = read_text(path);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	CU_ASSERT_EQUAL(strncmp(text, "eyJ", 3), 0);
	kos_secret_free(text, strlen(text));
	/* a one-time secret */
	CU_ASSERT_EQUAL(kos_client_enroll(c, secret_of("eve"), NULL), KOS_E_INTEGRITY);
	kos_client_free(c);

	/* the file the environment names is the credential of a new handle */
	setenv(KOS_CLIENT_ENV_CREDENTIAL_FILE, path, 1);
	CU_ASSERT_EQUAL(kos_client_new(sock, &c), KOS_OK);
	unsetenv(KOS_CLIENT_ENV_CREDENTIAL_FILE);
	if (c != NULL) {
		uint8_t *env = NULL;
		size_t n = 0;

		CU_ASSERT_EQUAL(encrypt_text(c, "x", NULL, &env, &n), KOS_OK);
		kos_free(env);
	}
	kos_client_free(c);
	/* a file that holds no credential */
	setenv(KOS_CLIENT_ENV_CREDENTIAL, "garbage", 1);
	c = NULL;
	CU_ASSERT_EQUAL(kos_client_new(sock, &c), KOS_E_INVALID);
	CU_ASSERT_PTR_NULL(c);
	unsetenv(KOS_CLIENT_ENV_CREDENTIAL);
}

static int has_key(const kos_client_key *k, void *arg)
{
	int *found = arg;

	if (strcmp(k->name, "payments") == 0 && strcmp(k->type, "dek") == 0 && k->current == 1)
		found[0]++;
	if (strcmp(k->name, "signer-1") == 0)
		found[1]++;
	if (strcmp(k->name, "other") == 0)
		found[2]++;
	return 0;
}

static void test_high_gets_the_dek_and_caches_it(void)
{
	kos_client *c = enrolled("hugo", NULL);
	kos_client_stats s;
	uint8_t *env = NULL, *pt = NULL;
	size_t env_len = 0, len = 0;
	int found[3] = { 0, 0, 0 };

	CU_ASSERT_EQUAL(tier_of("hugo"), KOS_TIER_HIGH);
	CU_ASSERT_EQUAL(kos_client_keys(c, has_key, found), KOS_OK);
	CU_ASSERT_EQUAL(found[0], 1);
	CU_ASSERT_EQUAL(found[1], 1);
	CU_ASSERT_EQUAL(found[2], 0); /* outside the scope: not listed */

	CU_ASSERT_EQUAL_FATAL(encrypt_text(c, "hello world", "order-1", &env, &env_len), KOS_OK);
	assert_decrypts(c, env, env_len, "order-1", "hello world");
	kos_client_get_stats(c, &s);
	CU_ASSERT_EQUAL(s.last_path, KOS_CLIENT_PATH_DEK);
	CU_ASSERT_EQUAL(s.deks_received, 1);
	CU_ASSERT_EQUAL(s.key_requests, 1);

	/* the second decryption is served from the cache: no request */
	assert_decrypts(c, env, env_len, "order-1", "hello world");
	kos_client_get_stats(c, &s);
	CU_ASSERT_EQUAL(s.last_path, KOS_CLIENT_PATH_CACHE);
	CU_ASSERT_EQUAL(s.key_requests, 1);
	CU_ASSERT_EQUAL(s.cache_hits, 1);
	CU_ASSERT_EQUAL(s.requests, 4); /* enroll, keys, encrypt, request */
	/* every request went over one kept-alive connection */
	CU_ASSERT_EQUAL(s.connects, 1);

	/* the context still binds, cached or not */
	CU_ASSERT_EQUAL(kos_client_decrypt(c, "order-2", env, env_len, &pt, &len), KOS_E_INTEGRITY);
	/* forgetting the keys makes the next decryption ask again */
	kos_client_forget_keys(c);
	assert_decrypts(c, env, env_len, "order-1", "hello world");
	kos_client_get_stats(c, &s);
	CU_ASSERT_EQUAL(s.key_requests, 2);
	CU_ASSERT_EQUAL(s.last_path, KOS_CLIENT_PATH_DEK);

	/* a tampered envelope */
	env[env_len - 1] ^= 1;
	CU_ASSERT_EQUAL(kos_client_decrypt(c, "order-1", env, env_len, &pt, &len), KOS_E_INTEGRITY);
	CU_ASSERT_EQUAL(kos_client_decrypt(c, NULL, (const uint8_t *)"junk", 4, &pt, &len),
			KOS_E_PARSE);
	kos_free(env);
	kos_client_free(c);
}

static void test_low_decrypts_server_side_only(void)
{
	kos_client *c = enrolled("lou", NULL);
	kos_client_stats s;
	uint8_t *env = NULL;
	size_t env_len = 0;

	CU_ASSERT_EQUAL(tier_of("lou"), KOS_TIER_LOW);
	CU_ASSERT_EQUAL_FATAL(encrypt_text(c, "low secret", "ctx", &env, &env_len), KOS_OK);
	assert_decrypts(c, env, env_len, "ctx", "low secret");
	assert_decrypts(c, env, env_len, "ctx", "low secret");
	kos_client_get_stats(c, &s);
	CU_ASSERT_EQUAL(s.last_path, KOS_CLIENT_PATH_SERVER);
	CU_ASSERT_EQUAL(s.deks_received, 0);
	CU_ASSERT_EQUAL(s.cache_hits, 0);
	CU_ASSERT_EQUAL(s.key_requests, 2);
	CU_ASSERT_EQUAL(tier_of("lou"), KOS_TIER_LOW);
	kos_free(env);
	kos_client_free(c);
}

static void test_medium_rebuilds_from_shares(void)
{
	kos_client *c = enrolled("mia", NULL);
	kos_client_stats s;
	uint8_t *env = NULL;
	size_t env_len = 0;

	CU_ASSERT_EQUAL(tier_of("mia"), KOS_TIER_MEDIUM);
	CU_ASSERT_EQUAL_FATAL(encrypt_text(c, "medium secret", "m", &env, &env_len), KOS_OK);
	assert_decrypts(c, env, env_len, "m", "medium secret");
	kos_client_get_stats(c, &s);
	CU_ASSERT_EQUAL(s.last_path, KOS_CLIENT_PATH_SHARES);
	CU_ASSERT_EQUAL(s.deks_received, 0);
	/* a score of 65 is in the narrow set: k = 2, one share from kosd and
	 * one from the KMS kosd, another process */
	CU_ASSERT_EQUAL(s.shares_fetched, 2);
	CU_ASSERT_EQUAL(s.shares_from_fronts, 1);
	CU_ASSERT_EQUAL(s.connects, 2);
	/* again: both connections are kept alive */
	assert_decrypts(c, env, env_len, "m", "medium secret");
	kos_client_get_stats(c, &s);
	CU_ASSERT_EQUAL(s.shares_fetched, 4);
	CU_ASSERT_EQUAL(s.shares_from_fronts, 2);
	CU_ASSERT_EQUAL(s.connects, 2);
	kos_free(env);
	kos_client_free(c);
}

/* curl (the CLI) over socket: the status, the answer in *doc (NULL when it
 * is not JSON; json_decref it). */
static int curl_json(const char *socket, const char *method, const char *path,
		     const char *bearer, const char *body, json_t **doc)
{
	char cmd[16384], code[8] = "", outp[700];
	char *text = NULL;
	size_t n = 0;
	FILE *p;

	*doc = NULL;
	snprintf(outp, sizeof(outp), "%s/curl.out", kos_test_tmpdir());
	unlink(outp);
	snprintf(cmd, sizeof(cmd),
		 "curl -s -o '%s' -w '%%{http_code}' --max-time 10 --unix-socket '%s' -X %s "
		 "%s%s%s %s%s%s 'http://kos%s'",
		 outp, socket, method, bearer != NULL ? "-H 'Authorization: Bearer " : "",
		 bearer != NULL ? bearer : "", bearer != NULL ? "'" : "",
		 body != NULL ? "-H 'Content-Type: application/json' --data-binary '" : "",
		 body != NULL ? body : "", body != NULL ? "'" : "", path);
	p = popen(cmd, "r");
	if (p == NULL)
		return 0;
	if (fgets(code, sizeof(code), p) == NULL)
		code[0] = '\0';
	pclose(p);
	if (kos_read_file(outp, 1 << 20, &text, &n) == KOS_OK) {
		*doc = json_loadb(text, n, 0, NULL);
		free(text);
	}
	return atoi(code);
}

/* {"share_id": id} */
static char *fetch_body(const char *id)
{
	static char b[256];

	snprintf(b, sizeof(b), "{\"share_id\":\"%s\"}", id);
	return b;
}

/* A grant is for exactly one share, at the KMS kosd as at kosd; the KMS
 * kosd serves its own tokens' shares only, and verifies grants with the
 * CA's public keys (it has no store). */
static void test_kms_front_grants(void)
{
	char path[700], *cred;
	const char *grant_front = NULL, *grant_main = NULL;
	kos_client *c;
	json_t *ans = NULL, *doc = NULL, *ref;
	size_t i;
	int st_code;

	snprintf(path, sizeof(path), "%s/mo.cred", kos_test_tmpdir());
	c = enrolled("mo", path);
	kos_client_free(c);
	cred = read_text(path);
	CU_ASSERT_PTR_NOT_NULL_FATAL(cred);
	cred[strcspn(cred, "\n")] = '\0';
	CU_ASSERT_EQUAL(tier_of("mo"), KOS_TIER_MEDIUM);
	/* the references and their grants, as the library receives them */
	st_code = curl_json(sock, "POST", "/v1/keys/payments/request", cred, "{}", &ans);
	CU_ASSERT_EQUAL_FATAL(st_code, 200);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ans);
	KOS_ASSERT_STR_EQ(json_string_value(json_object_get(ans, "delivery")), "shares");
	json_array_foreach(json_object_get(ans, "refs"), i, ref)
	{
		const char *id = json_string_value(json_object_get(ref, "share_id"));
		const char *kms = json_string_value(json_object_get(ref, "kms"));

		/* the token holding it is kms_token; "token" is gone */
		CU_ASSERT_PTR_NOT_NULL(json_string_value(json_object_get(ref, "kms_token")));
		CU_ASSERT_PTR_NULL(json_object_get(ref, "token"));
		if (id != NULL && strcmp(id, front_narrow) == 0) {
			KOS_ASSERT_STR_EQ(json_string_value(json_object_get(ref, "kms_token")),
					  front_token);
			CU_ASSERT_PTR_NOT_NULL(kms);
			if (kms != NULL) {
				CU_ASSERT_EQUAL(strncmp(kms, "unix:/", 6), 0);
				CU_ASSERT_PTR_NOT_NULL(strstr(kms, "/kms.sock"));
			}
			grant_front = json_string_value(json_object_get(ref, "grant"));
		} else if (id != NULL && strcmp(id, main_narrow) == 0) {
			/* no "kms": the kosd that answered serves it */
			CU_ASSERT_PTR_NULL(json_object_get(ref, "kms"));
			grant_main = json_string_value(json_object_get(ref, "grant"));
		}
	}
	CU_ASSERT_PTR_NOT_NULL_FATAL(grant_front);
	CU_ASSERT_PTR_NOT_NULL_FATAL(grant_main);

	/* the KMS kosd serves its share to its grant */
	CU_ASSERT_EQUAL(curl_json(kms_sock, "POST", "/v1/shares/fetch", grant_front,
				  fetch_body(front_narrow), &doc),
			200);
	CU_ASSERT_PTR_NOT_NULL(json_string_value(json_object_get(doc, "share")));
	json_decref(doc);
	/* a grant for one share is refused for another, there and at kosd */
	CU_ASSERT_EQUAL(curl_json(kms_sock, "POST", "/v1/shares/fetch", grant_main,
				  fetch_body(front_narrow), &doc),
			403);
	KOS_ASSERT_STR_EQ(json_string_value(json_object_get(doc, "error")), "out_of_scope");
	json_decref(doc);
	CU_ASSERT_EQUAL(curl_json(kms_sock, "POST", "/v1/shares/fetch", grant_front,
				  fetch_body(front_wide), &doc),
			403);
	json_decref(doc);
	CU_ASSERT_EQUAL(curl_json(sock, "POST", "/v1/shares/fetch", grant_front,
				  fetch_body(main_narrow), &doc),
			403);
	json_decref(doc);
	/* the client's own credential is no grant; junk is no credential */
	CU_ASSERT_EQUAL(curl_json(kms_sock, "POST", "/v1/shares/fetch", cred,
				  fetch_body(front_narrow), &doc),
			403);
	json_decref(doc);
	CU_ASSERT_EQUAL(curl_json(kms_sock, "POST", "/v1/shares/fetch", "eyJhbGciOiJIUzI1NiJ9.e30.x",
				  fetch_body(front_narrow), &doc),
			401);
	json_decref(doc);
	/* a share on a token the KMS kosd does not have: not found there,
	 * served by kosd */
	CU_ASSERT_EQUAL(curl_json(kms_sock, "POST", "/v1/shares/fetch", grant_main,
				  fetch_body(main_narrow), &doc),
			404);
	json_decref(doc);
	CU_ASSERT_EQUAL(curl_json(sock, "POST", "/v1/shares/fetch", grant_main,
				  fetch_body(main_narrow), &doc),
			200);
	json_decref(doc);
	json_decref(ans);
	kos_secret_free(cred, strlen(cred));
}

/* The KMS kosd answers health and metrics and its share route, and no
 * other route exists there, not even with a valid credential. */
static void test_kms_front_refuses_other_routes(void)
{
	char path[700], *cred;
	json_t *doc = NULL;

	snprintf(path, sizeof(path), "%s/mo.cred", kos_test_tmpdir());
	cred = read_text(path);
	CU_ASSERT_PTR_NOT_NULL_FATAL(cred);
	cred[strcspn(cred, "\n")] = '\0';
	CU_ASSERT_EQUAL(curl_json(kms_sock, "GET", "/v1/health", NULL, NULL, &doc), 200);
	KOS_ASSERT_STR_EQ(json_string_value(json_object_get(doc, "role")), "kms");
	json_decref(doc);
	CU_ASSERT_EQUAL(curl_json(sock, "GET", "/v1/health", NULL, NULL, &doc), 200);
	KOS_ASSERT_STR_EQ(json_string_value(json_object_get(doc, "role")), "main");
	json_decref(doc);
	CU_ASSERT_EQUAL(curl_json(kms_sock, "GET", "/metrics", NULL, NULL, &doc), 200);
	json_decref(doc);
	CU_ASSERT_EQUAL(curl_json(kms_sock, "GET", "/v1/keys", cred, NULL, &doc), 404);
	json_decref(doc);
	CU_ASSERT_EQUAL(curl_json(kms_sock, "POST", "/v1/keys/payments/request", cred, "{}", &doc),
			404);
	json_decref(doc);
	CU_ASSERT_EQUAL(curl_json(kms_sock, "POST", "/v1/credentials/enroll", NULL,
				  "{\"secret\":\"x\"}", &doc),
			404);
	json_decref(doc);
	CU_ASSERT_EQUAL(curl_json(kms_sock, "POST", "/v1/credentials/refresh", cred, "{}", &doc),
			404);
	json_decref(doc);
	CU_ASSERT_EQUAL(curl_json(kms_sock, "POST", "/v1/admin/keys", cred, "{}", &doc), 404);
	json_decref(doc);
	CU_ASSERT_EQUAL(curl_json(kms_sock, "POST", "/v1/decrypt", cred, "{}", &doc), 404);
	json_decref(doc);
	/* the same routes at kosd are there (refused for scope, not absent) */
	CU_ASSERT_EQUAL(curl_json(sock, "GET", "/v1/keys", cred, NULL, &doc), 200);
	json_decref(doc);
	kos_secret_free(cred, strlen(cred));
}

/* The library over kosd's TLS listener: a client certificate is needed
 * before the first request, the server's CA must verify it, and then
 * everything works as over the Unix socket. The medium path fetches one
 * share over TLS from kosd; the other sits behind the KMS kosd's Unix
 * socket, where no certificate is presented, so the grant (bound to the
 * client's certificate like its credential) is refused there. */
static void test_client_over_tls(void)
{
	char url[64], cert[700], key[700], cafile[700], other[700];
	kos_client *c = NULL;
	kos_client_stats s;
	uint8_t *env = NULL;
	size_t env_len = 0;
	char version[32] = "";

	snprintf(url, sizeof(url), "https://127.0.0.1:%u", tls_port);
	snprintf(cert, sizeof(cert), "%s/client.pem", pki);
	snprintf(key, sizeof(key), "%s/client.key", pki);
	snprintf(cafile, sizeof(cafile), "%s/ca.pem", pki);
	snprintf(other, sizeof(other), "%s/other.pem", pki);
	CU_ASSERT_EQUAL_FATAL(kos_client_new(url, &c), KOS_OK);
	/* no client certificate yet */
	CU_ASSERT_EQUAL(kos_client_health(c, NULL, 0), KOS_E_INVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "kos_client_set_tls"));
	/* a CA that did not sign kosd's certificate: the handshake fails */
	CU_ASSERT_EQUAL(kos_client_set_tls(c, cert, key, other), KOS_OK);
	CU_ASSERT_EQUAL(kos_client_health(c, NULL, 0), KOS_E_IO);
	CU_ASSERT_EQUAL(kos_client_set_tls(c, cert, key, cafile), KOS_OK);
	CU_ASSERT_EQUAL(kos_client_health(c, version, sizeof(version)), KOS_OK);
	CU_ASSERT_STRING_EQUAL(version, PACKAGE_VERSION);
	CU_ASSERT_EQUAL_FATAL(kos_client_enroll(c, secret_of("tess"), NULL), KOS_OK);
	CU_ASSERT_EQUAL(tier_of("tess"), KOS_TIER_MEDIUM);
	CU_ASSERT_EQUAL_FATAL(encrypt_text(c, "over tls", "t", &env, &env_len), KOS_OK);
	{
		uint8_t *pt = NULL;
		size_t len = 0;

		CU_ASSERT_NOT_EQUAL(kos_client_decrypt(c, "t", env, env_len, &pt, &len), KOS_OK);
		CU_ASSERT_PTR_NULL(pt);
		if (strstr(kos_last_error(), "certificate mismatch") == NULL)
			fprintf(stderr, "\nover tls: %s\n", kos_last_error());
		CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "certificate mismatch"));
	}
	kos_client_get_stats(c, &s);
	CU_ASSERT_EQUAL(s.shares_fetched, 1);
	CU_ASSERT_EQUAL(s.shares_from_fronts, 0);
	kos_free(env);
	kos_client_free(c);

	/* the same from the environment */
	setenv(KOS_CLIENT_ENV_TLS_CERT, cert, 1);
	setenv(KOS_CLIENT_ENV_TLS_KEY, key, 1);
	setenv(KOS_CLIENT_ENV_TLS_CA, cafile, 1);
	c = NULL;
	CU_ASSERT_EQUAL(kos_client_new(url, &c), KOS_OK);
	unsetenv(KOS_CLIENT_ENV_TLS_CERT);
	unsetenv(KOS_CLIENT_ENV_TLS_KEY);
	unsetenv(KOS_CLIENT_ENV_TLS_CA);
	if (c != NULL)
		CU_ASSERT_EQUAL(kos_client_health(c, NULL, 0), KOS_OK);
	kos_client_free(c);
}

/* The KMS front serves no share to a credential that is not a grant for
 * exactly it: here a client's own credential (curl with the file). */
static void test_kms_front_wants_a_grant(void)
{
	char cmd[2048], code[8] = "";
	FILE *p;

	snprintf(cmd, sizeof(cmd),
		 "curl -s -o /dev/null -w '%%{http_code}' --max-time 10 --unix-socket '%s' "
		 "-H \"Authorization: Bearer $(cat '%s/eve.cred')\" "
		 "-d '{\"share_id\":\"kos-share:payments:1:narrow:1\"}' "
		 "http://kos/v1/shares/fetch",
		 sock, kos_test_tmpdir());
	p = popen(cmd, "r");
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT_PTR_NOT_NULL(fgets(code, sizeof(code), p));
	pclose(p);
	CU_ASSERT_STRING_EQUAL(code, "403");
}

static void test_refresh_writes_back(void)
{
	char path[700];
	kos_client *c = NULL, *again = NULL;
	kos_client_stats s;
	struct stat sb;
	char *before, *after;
	kos_usec exp0;
	int found[3] = { 0, 0, 0 };

	snprintf(path, sizeof(path), "%s/rita.cred", kos_test_tmpdir());
	c = enrolled("rita", path);
	exp0 = kos_client_credential_expires(c);
	/* medium: a 4 s credential */
	CU_ASSERT(exp0 - kos_now() <= 5 * KOS_USEC_PER_SEC);
	before = read_text(path);
	CU_ASSERT_PTR_NOT_NULL_FATAL(before);
	CU_ASSERT_EQUAL(kos_client_keys(c, has_key, found), KOS_OK);
	kos_client_get_stats(c, &s);
	CU_ASSERT_EQUAL(s.refreshes, 0);

	/* past 2/3 of its lifetime (issued at exp0 - 4 s, whole seconds),
	 * less up to 1/10 of it of jitter (kos-client(3)), the next call
	 * refreshes it first, and not before: calls until the refresh, at
	 * most until the credential expires */
	for (;;) {
		kos_usec t = kos_now();

		CU_ASSERT_EQUAL_FATAL(kos_client_keys(c, has_key, found), KOS_OK);
		kos_client_get_stats(c, &s);
		if (s.refreshes > 0) {
			CU_ASSERT(t >= exp0 - 4 * KOS_USEC_PER_SEC / 3 - 4 * KOS_USEC_PER_SEC / 10);
			break;
		}
		CU_ASSERT_FATAL(kos_now() < exp0);
		usleep(50000);
	}
	CU_ASSERT_EQUAL(s.refreshes, 1);
	CU_ASSERT_EQUAL(s.save_failures, 0);
	CU_ASSERT(kos_client_credential_expires(c) > exp0);
	after = read_text(path);
	CU_ASSERT_PTR_NOT_NULL_FATAL(after);
	CU_ASSERT_STRING_NOT_EQUAL(before, after);
	CU_ASSERT_EQUAL(stat(path, &sb), 0);
	CU_ASSERT_EQUAL(sb.st_mode & 0777, 0600);

	/* the file now holds a working credential */
	setenv(KOS_CLIENT_ENV_CREDENTIAL_FILE, path, 1);
	CU_ASSERT_EQUAL(kos_client_new(sock, &again), KOS_OK);
	unsetenv(KOS_CLIENT_ENV_CREDENTIAL_FILE);
	if (again != NULL)
		CU_ASSERT_EQUAL(kos_client_keys(again, has_key, found), KOS_OK);
	kos_client_free(again);

	/* an explicit refresh, kept in memory only for a set credential */
	after[strcspn(after, "\n")] = '\0';
	CU_ASSERT_EQUAL(kos_client_set_credential(c, after), KOS_OK);
	CU_ASSERT_EQUAL(kos_client_refresh(c), KOS_OK);
	kos_secret_free(before, strlen(before));
	before = read_text(path);
	CU_ASSERT_PTR_NOT_NULL(before);
	if (before != NULL) {
		before[strcspn(before, "\n")] = '\0';
		CU_ASSERT_STRING_EQUAL(before, after);
	}
	kos_secret_free(before, before != NULL ? strlen(before) : 0);
	kos_secret_free(after, strlen(after));
	kos_client_free(c);
}

static void test_revoked_credential(void)
{
	kos_client *c = enrolled("rex", NULL);
	uint8_t *env = NULL;
	size_t env_len = 0;
	kos_rv rv = KOS_OK;

	CU_ASSERT_EQUAL_FATAL(encrypt_text(c, "a", NULL, &env, &env_len), KOS_OK);
	kos_free(env);
	env = NULL;
	CU_ASSERT_EQUAL_FATAL(kos_cred_revoke_client(ca, "rex"), KOS_OK);
	/* seen at kosd's next verification; allow it a second at most */
	for (int i = 0; i < 20; i++) {
		rv = encrypt_text(c, "a", NULL, &env, &env_len);
		kos_free(env);
		env = NULL;
		if (rv != KOS_OK)
			break;
		usleep(100000);
	}
	CU_ASSERT_EQUAL(rv, KOS_E_INTEGRITY);
	CU_ASSERT_STRING_EQUAL(kos_last_error(), "revoked");
	CU_ASSERT_STRING_EQUAL(kos_client_last_code(c), "revoked");
	CU_ASSERT_EQUAL(kos_client_last_refusal(c), KOS_CLIENT_REFUSAL_REVOKED);
	/* nor can it be refreshed */
	CU_ASSERT_EQUAL(kos_client_refresh(c), KOS_E_INTEGRITY);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "revoked"));
	kos_client_free(c);
}

static void test_refusals(void)
{
	kos_client *c = enrolled("dan", NULL);
	uint8_t *env = NULL, *pt = NULL;
	size_t env_len = 0, len = 0;

	/* out of scope */
	CU_ASSERT_EQUAL(kos_client_encrypt(c, "other", NULL, (const uint8_t *)"a", 1, &env,
					   &env_len),
			KOS_E_POLICY);
	CU_ASSERT_STRING_EQUAL(kos_client_last_code(c), "out_of_scope");
	CU_ASSERT_EQUAL(kos_client_last_refusal(c), KOS_CLIENT_REFUSAL_OUT_OF_SCOPE);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "out of scope"));
	/* a name the library refuses before sending it */
	CU_ASSERT_EQUAL(kos_client_encrypt(c, "../x", NULL, (const uint8_t *)"a", 1, &env,
					   &env_len),
			KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_client_pubkey(c, "no-such-key", (char **)&pt), KOS_E_POLICY);

	/* trust too low: dan falls to deny */
	CU_ASSERT_EQUAL_FATAL(encrypt_text(c, "dan's", "d", &env, &env_len), KOS_OK);
	CU_ASSERT_EQUAL(kos_client_last_refusal(c), KOS_CLIENT_REFUSAL_NONE);
	CU_ASSERT_EQUAL(integrity_failures("dan", 3), KOS_OK);
	CU_ASSERT_EQUAL(tier_of("dan"), KOS_TIER_DENY);
	CU_ASSERT_EQUAL(kos_client_decrypt(c, "d", env, env_len, &pt, &len), KOS_E_POLICY);
	CU_ASSERT_STRING_EQUAL(kos_last_error(), "trust too low");
	CU_ASSERT_STRING_EQUAL(kos_client_last_code(c), "trust_too_low");
	CU_ASSERT_EQUAL(kos_client_last_refusal(c), KOS_CLIENT_REFUSAL_TRUST_TOO_LOW);
	CU_ASSERT_PTR_NULL(pt);
	kos_free(env);
	kos_client_free(c);
}

static int verify_sig(const char *pem, const uint8_t *data, size_t len, const uint8_t *sig,
		      size_t sig_len)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *pk = b != NULL ? PEM_read_bio_PUBKEY(b, NULL, NULL, NULL) : NULL;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok = 0;

	if (pk != NULL && md != NULL &&
	    EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pk) == 1)
		ok = EVP_DigestVerify(md, sig, sig_len, data, len) == 1;
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pk);
	BIO_free(b);
	return ok;
}

static void test_sign_and_pubkey(void)
{
	kos_client *c = NULL;
	static const uint8_t msg[] = "to be signed";
	uint8_t *sig = NULL;
	size_t sig_len = 0;
	char *pem = NULL;

	/* eve enrolled in test_enroll; her credential is in the file */
	char path[700];

	snprintf(path, sizeof(path), "%s/eve.cred", kos_test_tmpdir());
	CU_ASSERT_EQUAL_FATAL(kos_client_new(sock, &c), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_client_set_credential_file(c, path), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_client_pubkey(c, "signer-1", &pem), KOS_OK);
	CU_ASSERT_PTR_NOT_NULL(strstr(pem, "BEGIN PUBLIC KEY"));
	CU_ASSERT_EQUAL_FATAL(kos_client_sign(c, "signer-1", KOS_SIG_ECDSA_DER, msg, sizeof(msg),
					      &sig, &sig_len),
			      KOS_OK);
	CU_ASSERT(verify_sig(pem, msg, sizeof(msg), sig, sig_len));
	kos_free(sig);
	CU_ASSERT_EQUAL_FATAL(kos_client_sign(c, "signer-1", KOS_SIG_DEFAULT, msg, sizeof(msg), &sig,
					      &sig_len),
			      KOS_OK);
	CU_ASSERT_EQUAL(sig_len, 64); /* raw r||s */
	kos_free(sig);
	/* a data key does not sign */
	CU_ASSERT_NOT_EQUAL(kos_client_sign(c, "payments", KOS_SIG_DEFAULT, msg, sizeof(msg), &sig,
					    &sig_len),
			    KOS_OK);
	CU_ASSERT_PTR_NULL(sig);
	kos_free(pem);
	kos_client_free(c);
}

/* --- digests and filtered listings ---------------------------------------------- */

static const EVP_MD *md_of(kos_hash h)
{
	return h == KOS_HASH_SHA384 ? EVP_sha384() : h == KOS_HASH_SHA512 ? EVP_sha512()
									  : EVP_sha256();
}

/* 1 when sig signs digest dg of hash under pem (EVP_PKEY_verify, as a
 * PKCS#11 application's verifier): ECDSA (DER), PKCS#1 v1.5 (pss 0) or
 * PSS with MGF1 of hash and a salt of exactly pss bytes. */
static int verify_digest(const char *pem, kos_hash hash, int pss, const uint8_t *dg, size_t dlen,
			 const uint8_t *sig, size_t sig_len)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *pk = b != NULL ? PEM_read_bio_PUBKEY(b, NULL, NULL, NULL) : NULL;
	EVP_PKEY_CTX *ctx = pk != NULL ? EVP_PKEY_CTX_new(pk, NULL) : NULL;
	int ok = 0;

	if (ctx != NULL && EVP_PKEY_verify_init(ctx) == 1 &&
	    EVP_PKEY_CTX_set_signature_md(ctx, md_of(hash)) == 1 &&
	    (pss == 0 || (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) == 1 &&
			  EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, pss) == 1 &&
			  EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md_of(hash)) == 1)))
		ok = EVP_PKEY_verify(ctx, sig, sig_len, dg, dlen) == 1;
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(pk);
	BIO_free(b);
	return ok;
}

static const uint8_t dmsg[] = "a digest of this is signed";

static size_t digest_of(kos_hash h, uint8_t *out)
{
	unsigned int n = 0;

	CU_ASSERT_EQUAL_FATAL(EVP_Digest(dmsg, sizeof(dmsg), out, &n, md_of(h), NULL), 1);
	return n;
}

static kos_client *finder(void)
{
	kos_client *c = NULL;
	char path[700];

	/* enrolled once, by the first test that needs it */
	snprintf(path, sizeof(path), "%s/finder.cred", kos_test_tmpdir());
	CU_ASSERT_EQUAL_FATAL(kos_client_new(sock, &c), KOS_OK);
	if (access(path, R_OK) == 0) {
		CU_ASSERT_EQUAL_FATAL(kos_client_set_credential_file(c, path), KOS_OK);
	} else {
		CU_ASSERT_EQUAL_FATAL(kos_client_enroll(c, finder_secret, path), KOS_OK);
	}
	return c;
}

static void test_sign_digest_verifies(void)
{
	static const kos_hash hashes[] = { KOS_HASH_SHA256, KOS_HASH_SHA384, KOS_HASH_SHA512 };
	kos_client *c = finder();
	char *ec = NULL, *rsa = NULL;
	uint8_t dg[KOS_HASH_MAX_LEN], *sig = NULL;
	size_t dlen, sig_len = 0, i;

	CU_ASSERT_EQUAL_FATAL(kos_client_pubkey(c, "signer-1", &ec), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_client_pubkey(c, "rsa-1", &rsa), KOS_OK);
	for (i = 0; i < KOS_ARRAY_SIZE(hashes); i++) {
		kos_hash h = hashes[i];
		static const int salts[] = { KOS_SIG_SALT_DEFAULT, 32, 64 };

		dlen = digest_of(h, dg);
		CU_ASSERT_EQUAL_FATAL(kos_client_sign_digest(c, "signer-1", KOS_SIG_ECDSA_DER, h,
							     KOS_SIG_SALT_DEFAULT, dg, dlen, &sig,
							     &sig_len),
				      KOS_OK);
		CU_ASSERT(verify_digest(ec, h, 0, dg, dlen, sig, sig_len));
		kos_free(sig);
		CU_ASSERT_EQUAL_FATAL(kos_client_sign_digest(c, "rsa-1", KOS_SIG_RSA_PKCS1, h,
							     KOS_SIG_SALT_DEFAULT, dg, dlen, &sig,
							     &sig_len),
				      KOS_OK);
		CU_ASSERT_EQUAL(sig_len, 256);
		CU_ASSERT(verify_digest(rsa, h, 0, dg, dlen, sig, sig_len));
		kos_free(sig);
		for (size_t j = 0; j < KOS_ARRAY_SIZE(salts); j++) {
			int want = salts[j] == KOS_SIG_SALT_DEFAULT ? (int)dlen : salts[j];

			CU_ASSERT_EQUAL_FATAL(kos_client_sign_digest(c, "rsa-1", KOS_SIG_RSA_PSS, h,
								     salts[j], dg, dlen, &sig,
								     &sig_len),
					      KOS_OK);
			CU_ASSERT(verify_digest(rsa, h, want, dg, dlen, sig, sig_len));
			CU_ASSERT(!verify_digest(rsa, h, want + 1, dg, dlen, sig, sig_len));
			kos_free(sig);
		}
		/* data hashed by kosd with h: a signature of the same digest */
		CU_ASSERT_EQUAL_FATAL(kos_client_sign_hash(c, "rsa-1", KOS_SIG_RSA_PSS, h, 32, dmsg,
							   sizeof(dmsg), &sig, &sig_len),
				      KOS_OK);
		CU_ASSERT(verify_digest(rsa, h, 32, dg, dlen, sig, sig_len));
		kos_free(sig);
		CU_ASSERT_EQUAL_FATAL(kos_client_sign_hash(c, "signer-1", KOS_SIG_ECDSA_DER, h,
							   KOS_SIG_SALT_DEFAULT, dmsg, sizeof(dmsg),
							   &sig, &sig_len),
				      KOS_OK);
		CU_ASSERT(verify_digest(ec, h, 0, dg, dlen, sig, sig_len));
		kos_free(sig);
	}
	kos_free(ec);
	kos_free(rsa);
	kos_client_free(c);
}

static void test_sign_digest_refusals(void)
{
	kos_client *c = finder(), *e = NULL;
	uint8_t dg[KOS_HASH_MAX_LEN] = { 0 }, *sig = NULL;
	size_t sig_len = 0;
	char *ans = NULL, path[700];

	/* a digest of another length: refused here, and by kosd */
	CU_ASSERT_EQUAL(kos_client_sign_digest(c, "signer-1", KOS_SIG_DEFAULT, KOS_HASH_SHA384,
					       KOS_SIG_SALT_DEFAULT, dg, 32, &sig, &sig_len),
			KOS_E_INVALID);
	CU_ASSERT_PTR_NULL(sig);
	CU_ASSERT_EQUAL(kos_client_call(c, "POST", "/v1/keys/signer-1/sign",
					"{\"digest\":\"AAAA\",\"hash\":\"sha256\"}", &ans),
			KOS_E_INVALID);
	CU_ASSERT_STRING_EQUAL(kos_client_last_code(c), "bad_request");
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "a sha256 digest is 32 bytes, not 3"));
	/* an unknown hash, a digest without its hash, both data and digest */
	CU_ASSERT_EQUAL(kos_client_call(c, "POST", "/v1/keys/signer-1/sign",
					"{\"data\":\"AAAA\",\"hash\":\"md5\"}", &ans),
			KOS_E_INVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "unknown hash"));
	CU_ASSERT_EQUAL(kos_client_call(c, "POST", "/v1/keys/signer-1/sign",
					"{\"digest\":\"AAAA\"}", &ans),
			KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_client_call(c, "POST", "/v1/keys/signer-1/sign",
					"{\"data\":\"AAAA\",\"digest\":\"AAAA\",\"hash\":\"sha256\"}",
					&ans),
			KOS_E_INVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "exactly one of"));
	CU_ASSERT_EQUAL(kos_client_sign_digest(c, "signer-1", KOS_SIG_DEFAULT, (kos_hash)9,
					       KOS_SIG_SALT_DEFAULT, dg, 32, &sig, &sig_len),
			KOS_E_INVALID);
	/* Ed25519 signs messages only */
	CU_ASSERT_EQUAL(kos_client_sign_digest(c, "ed-1", KOS_SIG_DEFAULT, KOS_HASH_SHA256,
					       KOS_SIG_SALT_DEFAULT, dg, 32, &sig, &sig_len),
			KOS_E_INVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "not a digest"));
	CU_ASSERT_EQUAL(kos_client_last_refusal(c), KOS_CLIENT_REFUSAL_INVALID);
	CU_ASSERT_EQUAL(kos_client_sign_hash(c, "ed-1", KOS_SIG_DEFAULT, KOS_HASH_SHA512,
					     KOS_SIG_SALT_DEFAULT, dmsg, sizeof(dmsg), &sig,
					     &sig_len),
			KOS_E_INVALID);
	CU_ASSERT_EQUAL_FATAL(kos_client_sign(c, "ed-1", KOS_SIG_DEFAULT, dmsg, sizeof(dmsg), &sig,
					      &sig_len),
			      KOS_OK);
	kos_free(sig);
	sig = NULL;
	/* a salt the key cannot hold; a salt for PKCS#1 v1.5 */
	CU_ASSERT_EQUAL(kos_client_sign_digest(c, "rsa-1", KOS_SIG_RSA_PSS, KOS_HASH_SHA256, 223,
					       dg, 32, &sig, &sig_len),
			KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_client_sign_digest(c, "rsa-1", KOS_SIG_RSA_PKCS1, KOS_HASH_SHA256, 32,
					       dg, 32, &sig, &sig_len),
			KOS_E_INVALID);
	/* out of scope: eve holds sign:signer-1 only */
	snprintf(path, sizeof(path), "%s/eve.cred", kos_test_tmpdir());
	CU_ASSERT_EQUAL_FATAL(kos_client_new(sock, &e), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_client_set_credential_file(e, path), KOS_OK);
	CU_ASSERT_EQUAL(kos_client_sign_digest(e, "rsa-1", KOS_SIG_DEFAULT, KOS_HASH_SHA256,
					       KOS_SIG_SALT_DEFAULT, dg, 32, &sig, &sig_len),
			KOS_E_POLICY);
	CU_ASSERT_EQUAL(kos_client_last_refusal(e), KOS_CLIENT_REFUSAL_OUT_OF_SCOPE);
	CU_ASSERT_PTR_NULL(sig);
	kos_client_free(e);
	kos_client_free(c);
}

static void test_sign_digest_follows_the_tier(void)
{
	kos_client *c = NULL;
	uint8_t dg[32] = { 1 }, *sig = NULL;
	size_t sig_len = 0;

	/* low signs, as data signing does (inside the HSM); deny does not */
	CU_ASSERT_EQUAL_FATAL(kos_client_new(sock, &c), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_client_enroll(c, digest_secret, NULL), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(integrity_failures("dsig", 2), KOS_OK);
	CU_ASSERT_EQUAL(tier_of("dsig"), KOS_TIER_LOW);
	CU_ASSERT_EQUAL(kos_client_sign_digest(c, "signer-1", KOS_SIG_DEFAULT, KOS_HASH_SHA256,
					       KOS_SIG_SALT_DEFAULT, dg, 32, &sig, &sig_len),
			KOS_OK);
	kos_free(sig);
	sig = NULL;
	CU_ASSERT_EQUAL_FATAL(integrity_failures("dsig", 1), KOS_OK);
	CU_ASSERT_EQUAL(tier_of("dsig"), KOS_TIER_DENY);
	CU_ASSERT_EQUAL(kos_client_sign_digest(c, "signer-1", KOS_SIG_DEFAULT, KOS_HASH_SHA256,
					       KOS_SIG_SALT_DEFAULT, dg, 32, &sig, &sig_len),
			KOS_E_POLICY);
	CU_ASSERT_EQUAL(kos_client_last_refusal(c), KOS_CLIENT_REFUSAL_TRUST_TOO_LOW);
	CU_ASSERT_PTR_NULL(sig);
	kos_client_free(c);
}

/* A TLS server's certificate is for one key version: after a rotation it
 * keeps signing with that version until the certificate is replaced, and a
 * retired version is refused as such. */
static void test_sign_with_a_version(void)
{
	static const uint8_t msg[] = "a handshake's transcript";
	kos_client_sign_opts o = KOS_CLIENT_SIGN_OPTS_INIT;
	kos_client *c = NULL;
	uint8_t *sig = NULL, dg[32];
	size_t sig_len = 0;
	uint32_t v = 0;
	char *v1 = NULL, *v2 = NULL, *cur = NULL, *ans = NULL;

	CU_ASSERT_EQUAL_FATAL(kos_client_new(sock, &c), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_client_enroll(c, vers_secret, NULL), KOS_OK);
	/* the current public key says which version it is */
	CU_ASSERT_EQUAL_FATAL(kos_client_pubkey_at(c, "tls-1", 0, &cur, &v), KOS_OK);
	CU_ASSERT_EQUAL(v, 2);
	CU_ASSERT_EQUAL_FATAL(kos_client_pubkey_at(c, "tls-1", 1, &v1, &v), KOS_OK);
	CU_ASSERT_EQUAL(v, 1);
	CU_ASSERT_EQUAL_FATAL(kos_client_pubkey_at(c, "tls-1", 2, &v2, NULL), KOS_OK);
	KOS_ASSERT_STR_EQ(cur, v2);
	CU_ASSERT(strcmp(v1, v2) != 0);

	/* default: the current version, which the answer names */
	o.alg = KOS_SIG_ECDSA_DER;
	CU_ASSERT_EQUAL_FATAL(kos_client_sign_ex(c, "tls-1", &o, msg, sizeof(msg), &sig, &sig_len,
						 &v),
			      KOS_OK);
	CU_ASSERT_EQUAL(v, 2);
	CU_ASSERT(verify_sig(v2, msg, sizeof(msg), sig, sig_len));
	kos_free(sig);
	/* version 1 after the rotation: verifies with version 1's key only */
	o.version = 1;
	CU_ASSERT_EQUAL_FATAL(kos_client_sign_ex(c, "tls-1", &o, msg, sizeof(msg), &sig, &sig_len,
						 &v),
			      KOS_OK);
	CU_ASSERT_EQUAL(v, 1);
	CU_ASSERT(verify_sig(v1, msg, sizeof(msg), sig, sig_len));
	CU_ASSERT(!verify_sig(v2, msg, sizeof(msg), sig, sig_len));
	kos_free(sig);
	/* a digest with a version, as the provider signs a TLS handshake */
	CU_ASSERT_EQUAL_FATAL(EVP_Digest(msg, sizeof(msg), dg, NULL, EVP_sha256(), NULL), 1);
	o.digest = 1;
	CU_ASSERT_EQUAL_FATAL(kos_client_sign_ex(c, "tls-1", &o, dg, sizeof(dg), &sig, &sig_len,
						 &v),
			      KOS_OK);
	CU_ASSERT_EQUAL(v, 1);
	CU_ASSERT(verify_digest(v1, KOS_HASH_SHA256, 0, dg, sizeof(dg), sig, sig_len));
	kos_free(sig);
	sig = NULL;
	/* a version the key never had: not found */
	o.version = 7;
	CU_ASSERT_EQUAL(kos_client_sign_ex(c, "tls-1", &o, dg, sizeof(dg), &sig, &sig_len, &v),
			KOS_E_NOTFOUND);
	KOS_ASSERT_STR_EQ(kos_client_last_code(c), "not_found");
	CU_ASSERT(sig == NULL && v == 0);
	CU_ASSERT_EQUAL(kos_client_pubkey_at(c, "tls-1", 7, &ans, &v), KOS_E_NOTFOUND);
	CU_ASSERT_PTR_NULL(ans);

	/* retired: refused as retired, the public key still readable */
	CU_ASSERT_EQUAL_FATAL(kos_client_call(c, "POST", "/v1/admin/keys/tls-1/retire",
					      "{\"version\":1}", &ans),
			      KOS_OK);
	kos_secret_free(ans, strlen(ans));
	ans = NULL;
	o.version = 1;
	CU_ASSERT_EQUAL(kos_client_sign_ex(c, "tls-1", &o, dg, sizeof(dg), &sig, &sig_len, &v),
			KOS_E_NOTFOUND);
	KOS_ASSERT_STR_EQ(kos_client_last_code(c), "retired");
	CU_ASSERT_EQUAL(kos_client_last_refusal(c), KOS_CLIENT_REFUSAL_NOT_FOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "version 1 is retired"));
	CU_ASSERT_PTR_NULL(sig);
	kos_free(v1);
	v1 = NULL;
	CU_ASSERT_EQUAL(kos_client_pubkey_at(c, "tls-1", 1, &v1, &v), KOS_OK);
	CU_ASSERT_EQUAL(v, 1);
	/* the current version signs on */
	o.version = 0;
	CU_ASSERT_EQUAL(kos_client_sign_ex(c, "tls-1", &o, dg, sizeof(dg), &sig, &sig_len, &v),
			KOS_OK);
	CU_ASSERT_EQUAL(v, 2);
	kos_free(sig);
	/* bad arguments never reach kosd */
	CU_ASSERT_EQUAL(kos_client_sign_ex(c, "tls-1", NULL, dg, sizeof(dg), &sig, &sig_len, &v),
			KOS_E_INVALID);
	kos_free(v1);
	kos_free(v2);
	kos_free(cur);
	kos_client_free(c);
}

/* --- RSA decryption inside kosd's HSM ---------------------------------------- */

/* Runs openssl pkeyutl -encrypt with the public key in pub and opts on
 * in, the ciphertext into ct (*len bytes). */
static void pkeyutl_encrypt(const char *pub, const char *opts, const char *in, uint8_t *ct,
			    size_t *len)
{
	char cmd[2048], out[700];
	FILE *f;

	snprintf(out, sizeof(out), "%s/rsa.ct", kos_test_tmpdir());
	snprintf(cmd, sizeof(cmd),
		 "openssl pkeyutl -encrypt -pubin -inkey '%s' -in '%s' -out '%s' %s "
		 ">>'%s/openssl.log' 2>&1",
		 pub, in, out, opts, kos_test_tmpdir());
	CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
	f = fopen(out, "rb");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	*len = fread(ct, 1, 512, f);
	fclose(f);
}

/* The public key of name's version as a file, for openssl pkeyutl. */
static void pubkey_file(kos_client *c, const char *name, uint32_t version, char *path,
			size_t len)
{
	char *pem = NULL;

	snprintf(path, len, "%s/%s-%u.pub", kos_test_tmpdir(), name, (unsigned)version);
	CU_ASSERT_EQUAL_FATAL(kos_client_pubkey_at(c, name, version, &pem, NULL), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(write_text(path, pem), 0);
	kos_free(pem);
}

/* PKCS#1 v1.5 and OAEP (SHA-1 and SHA-256, with and without a label) of
 * ciphertexts openssl pkeyutl made with the key's public half come back
 * through kosd; a version is chosen, a retired one refused as retired. */
static void test_rsa_decrypt(void)
{
	static const char secret[] = "a premaster secret, 48 bytes or so";
	static const struct {
		const char *opts;
		kos_rsa_padding pad;
		kos_hash hash;
		const char *label;
	} cases[] = {
		{ "", KOS_RSA_PAD_PKCS1, KOS_HASH_SHA1, NULL },
		{ "-pkeyopt rsa_padding_mode:oaep", KOS_RSA_PAD_OAEP, KOS_HASH_SHA1, NULL },
		{ "-pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_label:6b6f73", KOS_RSA_PAD_OAEP,
		  KOS_HASH_SHA1, "kos" },
		{ "-pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 "
		  "-pkeyopt rsa_mgf1_md:sha256",
		  KOS_RSA_PAD_OAEP, KOS_HASH_SHA256, NULL },
		{ "-pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 "
		  "-pkeyopt rsa_mgf1_md:sha256 -pkeyopt rsa_oaep_label:6b6f73",
		  KOS_RSA_PAD_OAEP, KOS_HASH_SHA256, "kos" },
	};
	kos_client *c = NULL;
	char pub[700], in[700], *ans = NULL;
	uint8_t ct[512], *pt = NULL;
	size_t ct_len = 0, pt_len = 0, i;

	CU_ASSERT_EQUAL_FATAL(kos_client_new(sock, &c), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_client_enroll(c, rsad_secret, NULL), KOS_OK);
	snprintf(in, sizeof(in), "%s/rsa.pt", kos_test_tmpdir());
	CU_ASSERT_EQUAL_FATAL(write_text(in, secret), 0);
	pubkey_file(c, "rsa-1", 0, pub, sizeof(pub));
	for (i = 0; i < KOS_ARRAY_SIZE(cases); i++) {
		kos_client_rsa_opts o = KOS_CLIENT_RSA_OPTS_INIT;
		kos_rv rv;

		pkeyutl_encrypt(pub, cases[i].opts, in, ct, &ct_len);
		CU_ASSERT_EQUAL_FATAL(ct_len, 256);
		o.padding = cases[i].pad;
		o.hash = o.mgf1 = cases[i].hash;
		o.label = (const uint8_t *)cases[i].label;
		o.label_len = cases[i].label != NULL ? strlen(cases[i].label) : 0;
		rv = kos_client_rsa_decrypt(c, "rsa-1", &o, ct, ct_len, &pt, &pt_len);
		if (rv != KOS_OK)
			fprintf(stderr, "case %zu: %s (%s)\n", i, kos_last_error(),
				kos_client_last_code(c));
		CU_ASSERT_EQUAL_FATAL(rv, KOS_OK);
		CU_ASSERT(pt_len == strlen(secret) && memcmp(pt, secret, pt_len) == 0);
		kos_secret_free(pt, pt_len);
		pt = NULL;
	}
	CU_ASSERT_EQUAL(tier_soon("rsad", KOS_TIER_HIGH), KOS_TIER_HIGH);

	/* a chosen version: rsa-2 has two, and version 1 decrypts its own */
	pubkey_file(c, "rsa-2", 1, pub, sizeof(pub));
	pkeyutl_encrypt(pub, "-pkeyopt rsa_padding_mode:oaep", in, ct, &ct_len);
	{
		kos_client_rsa_opts o = KOS_CLIENT_RSA_OPTS_INIT;

		o.padding = KOS_RSA_PAD_OAEP;
		o.version = 1;
		CU_ASSERT_EQUAL_FATAL(kos_client_rsa_decrypt(c, "rsa-2", &o, ct, ct_len, &pt,
							     &pt_len),
				      KOS_OK);
		CU_ASSERT(pt_len == strlen(secret) && memcmp(pt, secret, pt_len) == 0);
		kos_secret_free(pt, pt_len);
		pt = NULL;
		CU_ASSERT_EQUAL_FATAL(kos_client_call(c, "POST", "/v1/admin/keys/rsa-2/retire",
						      "{\"version\":1}", &ans),
				      KOS_OK);
		kos_secret_free(ans, strlen(ans));
		CU_ASSERT_EQUAL(kos_client_rsa_decrypt(c, "rsa-2", &o, ct, ct_len, &pt, &pt_len),
				KOS_E_NOTFOUND);
		KOS_ASSERT_STR_EQ(kos_client_last_code(c), "retired");
		o.version = 9;
		CU_ASSERT_EQUAL(kos_client_rsa_decrypt(c, "rsa-2", &o, ct, ct_len, &pt, &pt_len),
				KOS_E_NOTFOUND);
		KOS_ASSERT_STR_EQ(kos_client_last_code(c), "not_found");
		CU_ASSERT_PTR_NULL(pt);
		/* an EC key: 400, not a decryption failure */
		o.version = 0;
		CU_ASSERT_EQUAL(kos_client_rsa_decrypt(c, "signer-1", &o, ct, 64, &pt, &pt_len),
				KOS_E_INVALID);
		KOS_ASSERT_STR_EQ(kos_client_last_code(c), "bad_request");
		CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "only RSA keys decrypt"));
		/* a ciphertext of another length */
		CU_ASSERT_EQUAL(kos_client_rsa_decrypt(c, "rsa-1", &o, ct, 255, &pt, &pt_len),
				KOS_E_INVALID);
		CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "256 bytes"));
		/* bad options never reach kosd */
		o.padding = (kos_rsa_padding)5;
		CU_ASSERT_EQUAL(kos_client_rsa_decrypt(c, "rsa-1", &o, ct, 256, &pt, &pt_len),
				KOS_E_INVALID);
		CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "unknown padding"));
	}
	CU_ASSERT_EQUAL(tier_soon("rsad", KOS_TIER_HIGH), KOS_TIER_HIGH);
	kos_client_free(c);
}

/* Every ciphertext that does not decrypt gets one answer (400
 * decrypt_failed, "decryption failed"), and costs the client its trust:
 * a client probing for a padding oracle falls to deny in a few tries. Out
 * of scope is out of scope. */
static void test_rsa_decrypt_failures(void)
{
	kos_client_rsa_opts o = KOS_CLIENT_RSA_OPTS_INIT;
	kos_client *c = NULL, *f = finder();
	char pub[700], in[700], msg1[512], msg2[512];
	uint8_t ct[512], *pt = NULL;
	size_t ct_len = 0, pt_len = 0;

	CU_ASSERT_EQUAL_FATAL(kos_client_new(sock, &c), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_client_enroll(c, rsaf_secret, NULL), KOS_OK);
	snprintf(in, sizeof(in), "%s/rsa.pt", kos_test_tmpdir());
	CU_ASSERT_EQUAL_FATAL(write_text(in, "probe"), 0);
	pubkey_file(c, "rsa-1", 0, pub, sizeof(pub));
	pkeyutl_encrypt(pub, "", in, ct, &ct_len);
	/* sign:rsa-1 does not decrypt */
	CU_ASSERT_EQUAL(kos_client_rsa_decrypt(f, "rsa-1", &o, ct, ct_len, &pt, &pt_len),
			KOS_E_POLICY);
	KOS_ASSERT_STR_EQ(kos_client_last_code(f), "out_of_scope");
	CU_ASSERT_EQUAL(kos_client_last_refusal(f), KOS_CLIENT_REFUSAL_OUT_OF_SCOPE);

	/* a changed PKCS#1 v1.5 ciphertext, and OAEP with another label */
	ct[40] ^= 0x10;
	CU_ASSERT_EQUAL(kos_client_rsa_decrypt(c, "rsa-1", &o, ct, ct_len, &pt, &pt_len),
			KOS_E_INTEGRITY);
	KOS_ASSERT_STR_EQ(kos_client_last_code(c), "decrypt_failed");
	snprintf(msg1, sizeof(msg1), "%s", kos_last_error());
	KOS_ASSERT_STR_EQ(msg1, "decryption failed");
	CU_ASSERT_PTR_NULL(pt);
	CU_ASSERT_EQUAL(tier_soon("rsaf", KOS_TIER_MEDIUM), KOS_TIER_MEDIUM);
	pkeyutl_encrypt(pub, "-pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256", in, ct,
			&ct_len);
	o.padding = KOS_RSA_PAD_OAEP;
	o.hash = o.mgf1 = KOS_HASH_SHA256; /* pkeyutl's MGF1 follows rsa_oaep_md */
	o.label = (const uint8_t *)"x";
	o.label_len = 1;
	CU_ASSERT_EQUAL(kos_client_rsa_decrypt(c, "rsa-1", &o, ct, ct_len, &pt, &pt_len),
			KOS_E_INTEGRITY);
	KOS_ASSERT_STR_EQ(kos_client_last_code(c), "decrypt_failed");
	snprintf(msg2, sizeof(msg2), "%s", kos_last_error());
	KOS_ASSERT_STR_EQ(msg1, msg2);
	CU_ASSERT_EQUAL(tier_soon("rsaf", KOS_TIER_LOW), KOS_TIER_LOW);
	/* without the label it opens: the failure was the label's */
	o.label = NULL;
	o.label_len = 0;
	CU_ASSERT_EQUAL(kos_client_rsa_decrypt(c, "rsa-1", &o, ct, ct_len, &pt, &pt_len), KOS_OK);
	CU_ASSERT(pt_len == 5 && memcmp(pt, "probe", 5) == 0);
	kos_secret_free(pt, pt_len);
	pt = NULL;
	/* a third failure and the client is at deny */
	ct[0] ^= 0x80;
	CU_ASSERT_EQUAL(kos_client_rsa_decrypt(c, "rsa-1", &o, ct, ct_len, &pt, &pt_len),
			KOS_E_INTEGRITY);
	CU_ASSERT_EQUAL(tier_soon("rsaf", KOS_TIER_DENY), KOS_TIER_DENY);
	ct[0] ^= 0x80;
	CU_ASSERT_EQUAL(kos_client_rsa_decrypt(c, "rsa-1", &o, ct, ct_len, &pt, &pt_len),
			KOS_E_POLICY);
	KOS_ASSERT_STR_EQ(kos_client_last_code(c), "trust_too_low");
	CU_ASSERT_PTR_NULL(pt);
	kos_client_free(c);
	kos_client_free(f);
}

struct found {
	unsigned n;
	unsigned bulk, dek, other_type;
	char last[KOS_KEY_NAME_MAX + 1];
	const char *type; /* when set: every key must be of it */
};

static int found_one(const kos_client_key *k, void *arg)
{
	struct found *f = arg;

	f->n++;
	if (strncmp(k->name, "bulk-", 5) == 0)
		f->bulk++;
	if (strcmp(k->type, "dek") == 0)
		f->dek++;
	if (f->type != NULL && strcmp(k->type, f->type) != 0)
		f->other_type++;
	snprintf(f->last, sizeof(f->last), "%s", k->name);
	return 0;
}

static void test_keys_find_filters_in_kosd(void)
{
	kos_client *c = finder();
	struct found f;
	kos_client_stats before, after;
	char *ans = NULL;

	/* everything finder's scope reaches: the bulk keys and its three
	 * signing keys, not payments or other */
	memset(&f, 0, sizeof(f));
	CU_ASSERT_EQUAL_FATAL(kos_client_keys(c, found_one, &f), KOS_OK);
	CU_ASSERT_EQUAL(f.n, BULK_KEYS + 3);
	CU_ASSERT_EQUAL(f.bulk, BULK_KEYS);
	/* one name: exactly that key, in one request */
	memset(&f, 0, sizeof(f));
	kos_client_get_stats(c, &before);
	CU_ASSERT_EQUAL_FATAL(kos_client_keys_find(c, "bulk-37", NULL, found_one, &f), KOS_OK);
	kos_client_get_stats(c, &after);
	CU_ASSERT_EQUAL(after.requests - before.requests, 1);
	CU_ASSERT_EQUAL(f.n, 1);
	CU_ASSERT_STRING_EQUAL(f.last, "bulk-37");
	/* a type: only keys of it */
	memset(&f, 0, sizeof(f));
	f.type = "ec-p256";
	CU_ASSERT_EQUAL_FATAL(kos_client_keys_find(c, NULL, "ec-p256", found_one, &f), KOS_OK);
	CU_ASSERT_EQUAL(f.n, BULK_EC + 1); /* and signer-1 */
	CU_ASSERT_EQUAL(f.other_type, 0);
	memset(&f, 0, sizeof(f));
	f.type = "dek";
	CU_ASSERT_EQUAL_FATAL(kos_client_keys_find(c, NULL, "dek", found_one, &f), KOS_OK);
	CU_ASSERT_EQUAL(f.n, BULK_KEYS - BULK_EC);
	CU_ASSERT_EQUAL(f.other_type, 0);
	/* both: the key when it is of the type, else nothing */
	memset(&f, 0, sizeof(f));
	CU_ASSERT_EQUAL(kos_client_keys_find(c, "rsa-1", "rsa-2048", found_one, &f), KOS_OK);
	CU_ASSERT_EQUAL(f.n, 1);
	memset(&f, 0, sizeof(f));
	CU_ASSERT_EQUAL(kos_client_keys_find(c, "rsa-1", "dek", found_one, &f), KOS_OK);
	CU_ASSERT_EQUAL(f.n, 0);
	/* an unknown name is an empty list, not an error */
	memset(&f, 0, sizeof(f));
	CU_ASSERT_EQUAL(kos_client_keys_find(c, "no-such-key", NULL, found_one, &f), KOS_OK);
	CU_ASSERT_EQUAL(f.n, 0);
	/* a key out of scope never appears, by name or by type */
	memset(&f, 0, sizeof(f));
	CU_ASSERT_EQUAL(kos_client_keys_find(c, "payments", NULL, found_one, &f), KOS_OK);
	CU_ASSERT_EQUAL(f.n, 0);
	memset(&f, 0, sizeof(f));
	CU_ASSERT_EQUAL(kos_client_keys_find(c, NULL, "dek", found_one, &f), KOS_OK);
	CU_ASSERT_EQUAL(f.n, BULK_KEYS - BULK_EC);
	CU_ASSERT_STRING_NOT_EQUAL(f.last, "payments");
	CU_ASSERT_STRING_NOT_EQUAL(f.last, "other");
	/* bad filters: refused here, and by kosd */
	CU_ASSERT_EQUAL(kos_client_keys_find(c, "a/b", NULL, found_one, &f), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_client_keys_find(c, NULL, "aes", found_one, &f), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_client_call(c, "GET", "/v1/keys?type=aes", NULL, &ans), KOS_E_INVALID);
	CU_ASSERT_STRING_EQUAL(kos_client_last_code(c), "bad_request");
	CU_ASSERT_EQUAL(kos_client_call(c, "GET", "/v1/keys?name=.x", NULL, &ans), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_client_call(c, "GET", "/v1/keys?nmae=bulk-1", NULL, &ans),
			KOS_E_INVALID);
	kos_client_free(c);
}

/* A server on a Unix socket that answers one request 200 with answer, run
 * in a thread; stands for a kosd whose answers are not what kosd sends. */
struct fake_kosd {
	struct event_base *base;
	struct evhttp *http;
	const char *answer;
	pthread_t thread;
};

static void fake_answer(struct evhttp_request *req, void *arg)
{
	struct fake_kosd *f = arg;
	struct evbuffer *b = evbuffer_new();
	struct timeval linger = { 0, 200000 };

	evbuffer_add_printf(b, "%s", f->answer);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "application/json");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
	/* long enough for the answer to leave */
	event_base_loopexit(f->base, &linger);
}

static void *fake_run(void *arg)
{
	struct fake_kosd *f = arg;

	event_base_dispatch(f->base);
	return NULL;
}

static bool fake_start(struct fake_kosd *f, const char *path, const char *answer)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	memset(f, 0, sizeof(*f));
	f->answer = answer;
	if (strlen(path) >= sizeof(sa.sun_path))
		return false;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0)
		return false;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 8) != 0 ||
	    evutil_make_socket_nonblocking(fd) != 0 || (f->base = event_base_new()) == NULL ||
	    (f->http = evhttp_new(f->base)) == NULL || evhttp_accept_socket(f->http, fd) != 0) {
		close(fd);
		return false;
	}
	evhttp_set_gencb(f->http, fake_answer, f);
	return pthread_create(&f->thread, NULL, fake_run, f) == 0;
}

static void fake_stop(struct fake_kosd *f)
{
	pthread_join(f->thread, NULL);
	evhttp_free(f->http);
	event_base_free(f->base);
}

/* base64 in kosd's answers is taken in its canonical form only: padding
 * only at the end, the unused bits zero, whole quanta */
/* The DEK of payments version 1 as a high-tier client receives it, for
 * OpenSSL alone to use. */
static void dek_of_payments(kos_client *c, uint8_t dek[KOS_DEK_LEN])
{
	char *ans = NULL;
	json_t *doc;
	const char *b64;
	size_t n = KOS_DEK_LEN;

	CU_ASSERT_EQUAL_FATAL(kos_client_call(c, "POST", "/v1/keys/payments/request",
					      "{\"version\": 1}", &ans),
			      KOS_OK);
	doc = json_loads(ans, 0, NULL);
	b64 = json_string_value(json_object_get(doc, "dek"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(b64);
	CU_ASSERT_EQUAL(kos_b64_decode(b64, strlen(b64), dek, &n), KOS_OK);
	CU_ASSERT_EQUAL(n, KOS_DEK_LEN);
	json_decref(doc);
	kos_secret_free(ans, strlen(ans));
}

static int raw_gcm(int enc, const uint8_t *key, const kos_client_gcm *p, const uint8_t *in,
		   size_t len, uint8_t *out)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n = 0, ok;

	ok = ctx != NULL && EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, p->iv, enc) == 1 &&
	     EVP_CipherUpdate(ctx, NULL, &n, p->aad, (int)p->aad_len) == 1 &&
	     EVP_CipherUpdate(ctx, out, &n, in, (int)len) == 1;
	if (ok && !enc)
		ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, (int)p->tag_len,
					 (void *)(in + len)) == 1;
	ok = ok && EVP_CipherFinal_ex(ctx, out + len, &n) == 1;
	if (ok && enc)
		ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, (int)p->tag_len, out + len) ==
		     1;
	EVP_CIPHER_CTX_free(ctx);
	return ok;
}

static void assert_gcm_opens(kos_client *c, const kos_client_gcm *p, const uint8_t *ct,
			     size_t ct_len, const char *want, kos_client_path path)
{
	kos_client_stats s;
	uint8_t *pt = NULL;
	size_t len = 0;

	CU_ASSERT_EQUAL(kos_client_gcm_decrypt(c, "payments", 1, p, ct, ct_len, &pt, &len), KOS_OK);
	CU_ASSERT(len == strlen(want) && pt != NULL && memcmp(pt, want, len) == 0);
	kos_client_get_stats(c, &s);
	CU_ASSERT_EQUAL(s.last_path, path);
	kos_secret_free(pt, len);
}

/* CKM_AES_GCM across the tiers: what kosd encrypts for a low-tier client
 * opens locally with the delivered DEK (high), with the DEK rebuilt from
 * shares (medium) and with OpenSSL alone, and the other way round; every
 * changed input is refused on both paths with nothing handed out. */
static void test_gcm_across_tiers(void)
{
	static const char msg[] = "PKCS#11 C_Encrypt with CKM_AES_GCM";
	uint8_t iv[KOS_GCM_IV_LEN] = "kos-gcm-iv-1", aad[] = "slot 0, object 7";
	kos_client_gcm p = { iv, sizeof(iv), aad, sizeof(aad), 16 }, q;
	kos_client *hi = enrolled("gus", NULL), *mid = enrolled("meg", NULL);
	kos_client *lo = enrolled("lin", NULL), *gil = enrolled("gil", NULL);
	uint8_t dek[KOS_DEK_LEN], ref[sizeof(msg) + 16];
	uint8_t *ct_lo = NULL, *ct_hi = NULL, *ct_mid = NULL, *pt = NULL;
	size_t lo_len = 0, hi_len = 0, mid_len = 0, len = 0;
	kos_client_stats s;
	uint32_t v = 0;

	CU_ASSERT_EQUAL(tier_of("gus"), KOS_TIER_HIGH);
	CU_ASSERT_EQUAL(tier_of("lin"), KOS_TIER_LOW);
	CU_ASSERT_EQUAL(tier_of("meg"), KOS_TIER_MEDIUM);
	/* low: kosd encrypts, the DEK stays there */
	CU_ASSERT_EQUAL_FATAL(kos_client_gcm_encrypt(lo, "payments", &p, (const uint8_t *)msg,
						     strlen(msg), &ct_lo, &lo_len, &v),
			      KOS_OK);
	CU_ASSERT_EQUAL(v, 1);
	CU_ASSERT_EQUAL(lo_len, strlen(msg) + 16);
	kos_client_get_stats(lo, &s);
	CU_ASSERT_EQUAL(s.last_path, KOS_CLIENT_PATH_SERVER);
	CU_ASSERT_EQUAL(s.deks_received, 0);
	/* high opens it here, medium from shares, OpenSSL with the DEK */
	assert_gcm_opens(hi, &p, ct_lo, lo_len, msg, KOS_CLIENT_PATH_DEK);
	assert_gcm_opens(mid, &p, ct_lo, lo_len, msg, KOS_CLIENT_PATH_SHARES);
	dek_of_payments(hi, dek);
	CU_ASSERT(raw_gcm(0, dek, &p, ct_lo, strlen(msg), ref));
	CU_ASSERT(memcmp(ref, msg, strlen(msg)) == 0);

	/* high encrypts from its cache; medium with a 12-byte tag */
	v = 0;
	CU_ASSERT_EQUAL_FATAL(kos_client_gcm_encrypt(hi, "payments", &p, (const uint8_t *)msg,
						     strlen(msg), &ct_hi, &hi_len, &v),
			      KOS_OK);
	CU_ASSERT_EQUAL(v, 1);
	kos_client_get_stats(hi, &s);
	CU_ASSERT(s.last_path == KOS_CLIENT_PATH_CACHE || s.last_path == KOS_CLIENT_PATH_DEK);
	CU_ASSERT_EQUAL(hi_len, lo_len);
	/* one key, IV and additional data: one ciphertext, whoever computes it */
	CU_ASSERT(memcmp(ct_hi, ct_lo, lo_len) == 0);
	q = p;
	q.tag_len = 12;
	CU_ASSERT_EQUAL_FATAL(kos_client_gcm_encrypt(mid, "payments", &q, (const uint8_t *)msg,
						     strlen(msg), &ct_mid, &mid_len, &v),
			      KOS_OK);
	CU_ASSERT_EQUAL(mid_len, strlen(msg) + 12);
	kos_client_get_stats(mid, &s);
	CU_ASSERT_EQUAL(s.last_path, KOS_CLIENT_PATH_SHARES);
	assert_gcm_opens(lo, &q, ct_mid, mid_len, msg, KOS_CLIENT_PATH_SERVER);
	CU_ASSERT(raw_gcm(1, dek, &q, (const uint8_t *)msg, strlen(msg), ref));
	CU_ASSERT(memcmp(ref, ct_mid, mid_len) == 0);

	/* refused locally: a flipped bit, a wrong AAD, a wrong IV, a cut tag */
	ct_hi[3] ^= 0x10;
	CU_ASSERT_EQUAL(kos_client_gcm_decrypt(hi, "payments", 1, &p, ct_hi, hi_len, &pt, &len),
			KOS_E_INTEGRITY);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "does not verify"));
	ct_hi[3] ^= 0x10;
	q = p;
	q.aad_len = 3;
	CU_ASSERT_EQUAL(kos_client_gcm_decrypt(hi, "payments", 1, &q, ct_hi, hi_len, &pt, &len),
			KOS_E_INTEGRITY);
	q = p;
	q.iv = (const uint8_t *)"kos-gcm-iv-2";
	CU_ASSERT_EQUAL(kos_client_gcm_decrypt(hi, "payments", 1, &q, ct_hi, hi_len, &pt, &len),
			KOS_E_INTEGRITY);
	CU_ASSERT_EQUAL(kos_client_gcm_decrypt(hi, "payments", 1, &p, ct_hi, hi_len - 1, &pt, &len),
			KOS_E_INTEGRITY);
	CU_ASSERT(pt == NULL && len == 0);
	/* parameters refused before anything is asked */
	q = p;
	q.tag_len = 4;
	CU_ASSERT_EQUAL(kos_client_gcm_encrypt(hi, "payments", &q, (const uint8_t *)msg,
					       strlen(msg), &pt, &len, NULL),
			KOS_E_INVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "tag length"));
	CU_ASSERT_EQUAL(kos_client_gcm_decrypt(hi, "payments", 0, &p, ct_hi, hi_len, &pt, &len),
			KOS_E_INVALID);
	/* refused by kosd (a low-tier client of its own: the failure costs
	 * it trust, as a tampered envelope does), and the refusal named */
	ct_lo[lo_len - 1] ^= 0x01;
	CU_ASSERT_EQUAL(kos_client_gcm_decrypt(gil, "payments", 1, &p, ct_lo, lo_len, &pt, &len),
			KOS_E_INTEGRITY);
	CU_ASSERT_STRING_EQUAL(kos_client_last_code(gil), "integrity");
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "does not verify"));
	CU_ASSERT(pt == NULL && len == 0);
	kos_client_get_stats(gil, &s);
	CU_ASSERT_EQUAL(s.last_path, KOS_CLIENT_PATH_SERVER);
	/* out of scope */
	CU_ASSERT_EQUAL(kos_client_gcm_encrypt(lo, "other", &p, (const uint8_t *)msg, strlen(msg),
					       &pt, &len, NULL),
			KOS_E_POLICY);
	CU_ASSERT_EQUAL(kos_client_last_refusal(lo), KOS_CLIENT_REFUSAL_OUT_OF_SCOPE);
	CU_ASSERT_PTR_NULL(pt);

	OPENSSL_cleanse(dek, sizeof(dek));
	kos_free(ct_lo);
	kos_free(ct_hi);
	kos_free(ct_mid);
	kos_client_free(hi);
	kos_client_free(mid);
	kos_client_free(lo);
	kos_client_free(gil);
}

/* A certificate for the public key in pem, issued by a throwaway CA key;
 * its DER in *der (OPENSSL_free()), its length returned. */
static int cert_for(const char *pem, uint8_t **der)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *pub = bio != NULL ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
	EVP_PKEY *issuer = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	int len = -1;

	*der = NULL;
	if (pub != NULL && issuer != NULL && x != NULL && X509_set_version(x, 2) == 1 &&
	    X509_gmtime_adj(X509_getm_notBefore(x), 0) != NULL &&
	    X509_gmtime_adj(X509_getm_notAfter(x), 86400) != NULL && X509_set_pubkey(x, pub) == 1 &&
	    X509_sign(x, issuer, EVP_sha256()) > 0)
		len = i2d_X509(x, der);
	X509_free(x);
	EVP_PKEY_free(issuer);
	EVP_PKEY_free(pub);
	BIO_free(bio);
	return len;
}

/* Certificates through the client library: written with certify:NAME
 * only, read by a client whose scope reaches the key, refused otherwise. */
static void test_certificates(void)
{
	kos_client *user = enrolled("cid", NULL), *cara = enrolled("cara", NULL);
	uint8_t *good = NULL, *bad = NULL, *der = (uint8_t *)&der;
	char *pem = NULL;
	size_t len = 5;
	int gl, bl;

	CU_ASSERT_EQUAL_FATAL(kos_client_pubkey(user, "signer-1", &pem), KOS_OK);
	gl = cert_for(pem, &good);
	{
		/* another key's certificate */
		EVP_PKEY *k = EVP_EC_gen("P-256");
		BIO *b = BIO_new(BIO_s_mem());
		char *text = NULL;
		long n;

		CU_ASSERT_FATAL(k != NULL && b != NULL && PEM_write_bio_PUBKEY(b, k) == 1);
		BIO_write(b, "", 1);
		n = BIO_get_mem_data(b, &text);
		CU_ASSERT_FATAL(n > 0);
		bl = cert_for(text, &bad);
		BIO_free(b);
		EVP_PKEY_free(k);
	}
	CU_ASSERT_FATAL(gl > 0 && bl > 0);
	{
		/* certify:signer-1 alone lists the key it may certify, and no other */
		int found[3] = { 0, 0, 0 };

		CU_ASSERT_EQUAL(kos_client_keys(cara, has_key, found), KOS_OK);
		CU_ASSERT(found[0] == 0 && found[1] == 1 && found[2] == 0);
	}
	CU_ASSERT_EQUAL(kos_client_cert_get(user, "signer-1", 0, &der, &len), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_client_last_refusal(user), KOS_CLIENT_REFUSAL_NOT_FOUND);
	CU_ASSERT(der == NULL && len == 0);
	/* sign:signer-1 reads but does not write */
	CU_ASSERT_EQUAL(kos_client_cert_set(user, "signer-1", 0, good, (size_t)gl), KOS_E_POLICY);
	CU_ASSERT_EQUAL(kos_client_last_refusal(user), KOS_CLIENT_REFUSAL_OUT_OF_SCOPE);
	CU_ASSERT_EQUAL(kos_client_cert_set(cara, "signer-1", 0, bad, (size_t)bl), KOS_E_INVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "public key is not"));
	CU_ASSERT_EQUAL(kos_client_cert_set(cara, "signer-1", 0, (const uint8_t *)"\x30\x00", 2),
			KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_client_cert_set(cara, "signer-1", 0, good, (size_t)gl), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_client_cert_get(user, "signer-1", 0, &der, &len), KOS_OK);
	CU_ASSERT(len == (size_t)gl && memcmp(der, good, len) == 0);
	kos_free(der);
	CU_ASSERT_EQUAL_FATAL(kos_client_cert_get(cara, "signer-1", 1, &der, &len), KOS_OK);
	kos_free(der);
	/* certify:signer-1 reaches no other key */
	CU_ASSERT_EQUAL(kos_client_cert_get(cara, "payments", 0, &der, &len), KOS_E_POLICY);
	CU_ASSERT_EQUAL(kos_client_last_refusal(cara), KOS_CLIENT_REFUSAL_OUT_OF_SCOPE);
	CU_ASSERT_EQUAL(kos_client_cert_set(cara, "signer-1", 0, NULL, 0), KOS_E_INVALID);
	OPENSSL_free(good);
	OPENSSL_free(bad);
	kos_free(pem);
	kos_client_free(user);
	kos_client_free(cara);
}

static void test_answers_canonical_base64(void)
{
	static const struct {
		const char *answer;
		kos_rv rv;
	} cases[] = {
		{ "{\"signature\":\"QQ==\",\"version\":1}", KOS_OK },
		{ "{\"signature\":\"QR==\",\"version\":1}", KOS_E_PARSE },  /* unused bits set */
		{ "{\"signature\":\"QUI=QUI=\",\"version\":1}", KOS_E_PARSE }, /* padding inside */
		{ "{\"signature\":\"QQ\",\"version\":1}", KOS_E_PARSE },	  /* unpadded */
		{ "{\"signature\":\"QU I=\",\"version\":1}", KOS_E_PARSE },	  /* a space */
		{ "{\"signature\":\"Q===\",\"version\":1}", KOS_E_PARSE },  /* three pads */
		/* a signature that does not say which version made it */
		{ "{\"signature\":\"QQ==\"}", KOS_E_PARSE },
	};
	static const uint8_t msg[] = "to be signed";
	char path[700], cred[700];
	size_t i;

	snprintf(path, sizeof(path), "%s/fake.sock", kos_test_tmpdir());
	snprintf(cred, sizeof(cred), "%s/eve.cred", kos_test_tmpdir());
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		kos_client *c = NULL;
		uint8_t *sig = NULL;
		size_t sig_len = 0;
		struct fake_kosd f;
		kos_rv rv;

		CU_ASSERT_FATAL(fake_start(&f, path, cases[i].answer));
		CU_ASSERT_EQUAL_FATAL(kos_client_new(path, &c), KOS_OK);
		CU_ASSERT_EQUAL_FATAL(kos_client_set_credential_file(c, cred), KOS_OK);
		rv = kos_client_sign(c, "signer-1", KOS_SIG_DEFAULT, msg, sizeof(msg), &sig,
				     &sig_len);
		CU_ASSERT_EQUAL(rv, cases[i].rv);
		if (cases[i].rv == KOS_OK) {
			CU_ASSERT_EQUAL(sig_len, 1);
			CU_ASSERT(sig != NULL && sig[0] == 'A');
		} else {
			CU_ASSERT_PTR_NULL(sig);
			const char *why = i + 1 < KOS_ARRAY_SIZE(cases) ? "malformed base64"
									: "names no version";

			CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), why));
		}
		kos_free(sig);
		kos_client_free(c);
		fake_stop(&f);
	}
}

int main(void)
{
	static const struct kos_test_case cases[] = {
		KOS_TEST(test_health),
		KOS_TEST(test_transport_failures),
		KOS_TEST(test_enroll),
		KOS_TEST(test_high_gets_the_dek_and_caches_it),
		KOS_TEST(test_low_decrypts_server_side_only),
		KOS_TEST(test_medium_rebuilds_from_shares),
		KOS_TEST(test_kms_front_grants),
		KOS_TEST(test_kms_front_refuses_other_routes),
		KOS_TEST(test_client_over_tls),
		KOS_TEST(test_kms_front_wants_a_grant),
		KOS_TEST(test_refresh_writes_back),
		KOS_TEST(test_revoked_credential),
		KOS_TEST(test_refusals),
		KOS_TEST(test_sign_and_pubkey),
		KOS_TEST(test_sign_digest_verifies),
		KOS_TEST(test_sign_digest_refusals),
		KOS_TEST(test_sign_digest_follows_the_tier),
		KOS_TEST(test_sign_with_a_version),
		KOS_TEST(test_rsa_decrypt),
		KOS_TEST(test_rsa_decrypt_failures),
		KOS_TEST(test_keys_find_filters_in_kosd),
		KOS_TEST(test_gcm_across_tiers),
		KOS_TEST(test_certificates),
		KOS_TEST(test_answers_canonical_base64),
	};

	return kos_test_run("client", suite_init, suite_cleanup, cases,
			    sizeof(cases) / sizeof(cases[0]));
}
