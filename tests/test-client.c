/* The client library against a real kosd (started from $KOSD on a
 * development installation in a temporary directory): health, enrollment,
 * the tier-dependent decryption paths, the DEK cache, keep-alive, automatic
 * refresh written back to the credential file, and kosd's refusals mapped
 * to kos_rv with their reasons. Trust is moved with the kos_trust API on the
 * same store, from this process, while kosd runs. */
#include "config.h"

#include "kos/internal.h"
#include "tests/kos-test.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

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

static char inst[512], sock[600];
static kos_config *conf;
static kos_policy *pol;
static kos_store *st;
static kos_trust *tr;
static kos_ca *ca;
static pid_t kosd_pid = -1;

/* enrollment secrets, by client */
static const char *const names[] = { "hugo", "mia", "lou", "rita", "rex", "dan", "eve" };
static char secrets[sizeof(names) / sizeof(names[0])][KOS_CRED_SECRET_LEN + 1];

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

/* The default policy with trust made of the integrity factor alone,
 * starting at 90 (high) with no recovery, so that each integrity failure
 * (25 points) moves a client one step down: 90 high, 65 medium, 40 low,
 * 15 deny. Medium credentials live 4 s, for the refresh test. */
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
	};
	char *text = NULL, *out = NULL;
	size_t len = 0;
	FILE *f;
	int rc = -1;

	if (kos_read_file(kos_test_srcpath("policy/default.policy"), 1 << 20, &text, &len) !=
	    KOS_OK)
		return -1;
	for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
		char *at = strstr(text, edits[i][0]);
		size_t ol = strlen(edits[i][0]), nl = strlen(edits[i][1]);

		if (at == NULL)
			goto out;
		out = malloc(strlen(text) - ol + nl + 1);
		if (out == NULL)
			goto out;
		memcpy(out, text, (size_t)(at - text));
		memcpy(out + (at - text), edits[i][1], nl);
		strcpy(out + (at - text) + nl, at + ol);
		free(text);
		text = out;
		out = NULL;
	}
	f = fopen(path, "w");
	if (f == NULL)
		goto out;
	rc = fputs(text, f) < 0 ? -1 : 0;
	if (fclose(f) != 0)
		rc = -1;
out:
	free(text);
	free(out);
	return rc;
}

static void stop_kosd(void)
{
	if (kosd_pid > 0) {
		kill(kosd_pid, SIGKILL);
		waitpid(kosd_pid, NULL, 0);
		kosd_pid = -1;
	}
}

static int start_kosd(void)
{
	const char *bin = getenv("KOSD");
	char conf_path[600], log_path[600];
	kos_client *c = NULL;
	int ok = 0;

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
	if (kos_client_new(sock, &c) != KOS_OK)
		return -1;
	for (int i = 0; i < 200 && !ok; i++) {
		if (kos_client_health(c, NULL, 0) == KOS_OK) {
			ok = 1;
			break;
		}
		if (waitpid(kosd_pid, NULL, WNOHANG) == kosd_pid) {
			kosd_pid = -1;
			break;
		}
		usleep(50000);
	}
	kos_client_free(c);
	return ok ? 0 : -1;
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
	    kos_key_create(keys, "signer-1", KOS_KEY_EC_P256) != KOS_OK)
		goto fail;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (kos_client_add(admin, names[i], SCOPE, secrets[i]) != KOS_OK)
			goto fail;
	/* tiers before enrollment, so credentials get their tier's lifetime:
	 * hugo high (observed once, so he is known), mia and rita medium (4 s),
	 * lou low (3 s) */
	if (kos_trust_observe(tr, "hugo", &(kos_observation){ .event = KOS_EVENT_SUCCESS },
			      NULL) != KOS_OK ||
	    integrity_failures("mia", 1) != KOS_OK || integrity_failures("rita", 1) != KOS_OK ||
	    integrity_failures("lou", 2) != KOS_OK)
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
	if (start_kosd() != 0) {
		fprintf(stderr, "set-up: kosd did not start (see %s/kosd.log)\n",
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

static int suite_cleanup(void)
{
	int status = 0, rc = 0;

	if (kosd_pid > 0) {
		/* a clean stop: SIGTERM, and kosd exits 0 */
		kill(kosd_pid, SIGTERM);
		for (int i = 0; i < 100; i++) {
			if (waitpid(kosd_pid, &status, WNOHANG) == kosd_pid) {
				kosd_pid = -1;
				break;
			}
			usleep(50000);
		}
		if (kosd_pid > 0) {
			fprintf(stderr, "kosd did not stop on SIGTERM\n");
			stop_kosd();
			rc = 1;
		} else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "kosd exited with status %d\n", status);
			rc = 1;
		}
	}
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
	char path[700];

	snprintf(path, sizeof(path), "%s/nobody.sock", kos_test_tmpdir());
	CU_ASSERT_EQUAL_FATAL(kos_client_new(path, &c), KOS_OK);
	CU_ASSERT_EQUAL(kos_client_health(c, NULL, 0), KOS_E_IO);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "cannot reach kosd"));
	/* TLS is reserved for later */
	CU_ASSERT_EQUAL(kos_client_set_tls(c, "c.pem", "k.pem", "ca.pem"), KOS_E_INVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "not supported yet"));
	kos_client_free(c);
	CU_ASSERT_EQUAL(kos_client_new("https://kos.example:8443", &c), KOS_E_INVALID);
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
	CU_ASSERT_STRING_EQUAL(kos_client_last_code(c), "invalid_secret");
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
	/* a score of 65 is in the narrow set: k = 2 */
	CU_ASSERT_EQUAL(s.shares_fetched, 2);
	kos_free(env);
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

	/* past 2/3 of its lifetime the next call refreshes it first */
	usleep(3200000);
	CU_ASSERT_EQUAL(kos_client_keys(c, has_key, found), KOS_OK);
	kos_client_get_stats(c, &s);
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
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "out of scope"));
	/* a name the library refuses before sending it */
	CU_ASSERT_EQUAL(kos_client_encrypt(c, "../x", NULL, (const uint8_t *)"a", 1, &env,
					   &env_len),
			KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_client_pubkey(c, "no-such-key", (char **)&pt), KOS_E_POLICY);

	/* trust too low: dan falls to deny */
	CU_ASSERT_EQUAL_FATAL(encrypt_text(c, "dan's", "d", &env, &env_len), KOS_OK);
	CU_ASSERT_EQUAL(integrity_failures("dan", 3), KOS_OK);
	CU_ASSERT_EQUAL(tier_of("dan"), KOS_TIER_DENY);
	CU_ASSERT_EQUAL(kos_client_decrypt(c, "d", env, env_len, &pt, &len), KOS_E_POLICY);
	CU_ASSERT_STRING_EQUAL(kos_last_error(), "trust too low");
	CU_ASSERT_STRING_EQUAL(kos_client_last_code(c), "trust_too_low");
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

int main(void)
{
	static const struct kos_test_case cases[] = {
		KOS_TEST(test_health),
		KOS_TEST(test_transport_failures),
		KOS_TEST(test_enroll),
		KOS_TEST(test_high_gets_the_dek_and_caches_it),
		KOS_TEST(test_low_decrypts_server_side_only),
		KOS_TEST(test_medium_rebuilds_from_shares),
		KOS_TEST(test_kms_front_wants_a_grant),
		KOS_TEST(test_refresh_writes_back),
		KOS_TEST(test_revoked_credential),
		KOS_TEST(test_refusals),
		KOS_TEST(test_sign_and_pubkey),
	};

	return kos_test_run("client", suite_init, suite_cleanup, cases,
			    sizeof(cases) / sizeof(cases[0]));
}
