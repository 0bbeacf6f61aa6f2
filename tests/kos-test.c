/* Test support shared by the CUnit programs. */
#include "config.h"

#include "tests/kos-test.h"

#include "kos/internal.h"

#include <kos/client.h>

#include <CUnit/Basic.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[256];

static void remove_tmpdir(void)
{
	char cmd[300];

	if (tmpdir[0] == '\0' || getenv("KOS_TEST_KEEP") != NULL)
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
}

const char *kos_test_tmpdir(void)
{
	const char *base = getenv("TMPDIR");

	if (tmpdir[0] != '\0')
		return tmpdir;
	snprintf(tmpdir, sizeof(tmpdir), "%s/kos-test-XXXXXX", base ? base : "/tmp");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		exit(99);
	}
	atexit(remove_tmpdir);
	return tmpdir;
}

const char *kos_test_srcpath(const char *rel)
{
	static char path[4][1024];
	static unsigned next;
	const char *srcdir = getenv("srcdir");
	char *p = path[next++ % 4];

	snprintf(p, sizeof(path[0]), "%s/%s", srcdir ? srcdir : ".", rel);
	return p;
}

int kos_test_write_policy(const char *path, const char *const (*edits)[2], size_t n)
{
	char *text = NULL, *out = NULL;
	size_t len = 0;
	FILE *f;
	int rc = -1;

	if (kos_read_file(kos_test_srcpath("policy/default.policy"), 1 << 20, &text, &len) !=
	    KOS_OK)
		return -1;
	for (size_t i = 0; i < n; i++) {
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

int kos_test_run(const char *suite_name, int (*init)(void), int (*cleanup)(void),
		 const struct kos_test_case *cases, size_t n)
{
	CU_pSuite suite;
	unsigned run, failed;
	size_t i;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 99;
	suite = CU_add_suite(suite_name, init, cleanup);
	if (suite == NULL)
		goto fail;
	for (i = 0; i < n; i++)
		if (CU_add_test(suite, cases[i].name, cases[i].fn) == NULL)
			goto fail;
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	/* CU_basic_run_tests() reports success even when cases fail. */
	run = CU_get_number_of_tests_run();
	failed = CU_get_number_of_tests_failed();
	if (CU_get_number_of_suites_failed() != 0) {
		/* the suite's init failed: nothing ran, count every case */
		run = (unsigned)n;
		failed = (unsigned)n;
	}
	printf("kos-tests: %s passed=%u failed=%u\n", suite_name, run - failed, failed);
	CU_cleanup_registry();
	return failed != 0 ? 1 : 0;
fail:
	fprintf(stderr, "CUnit: %s\n", CU_get_error_msg());
	CU_cleanup_registry();
	return 99;
}

const char *kos_test_path(const char *name)
{
	static char paths[8][700];
	static unsigned next;
	char *p = paths[next++ % 8];

	snprintf(p, sizeof(paths[0]), "%s/%s", kos_test_tmpdir(), name);
	return p;
}

int kos_test_sql_exec(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	int rc;

	rc = sqlite3_open(path, &db);
	/* a kos process may hold the write lock for a while */
	if (rc == SQLITE_OK)
		rc = sqlite3_busy_timeout(db, 10000);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	sqlite3_close(db);
	return rc;
}

int kos_test_sql_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *stmt = NULL;
	int v = -1;

	if (sqlite3_open(path, &db) == SQLITE_OK && sqlite3_busy_timeout(db, 10000) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) == SQLITE_OK &&
	    sqlite3_step(stmt) == SQLITE_ROW)
		v = sqlite3_column_int(stmt, 0);
	sqlite3_finalize(stmt);
	sqlite3_close(db);
	return v;
}

int kos_test_token_dir(const char *inst, const char *name, char *out, size_t len)
{
	char tokens[800], obj[1200], want[64], buf[4096];
	struct dirent *e;
	DIR *dir;
	int found = 0;

	snprintf(tokens, sizeof(tokens), "%s/tokens", inst);
	snprintf(want, sizeof(want), "kos-%s ", name);
	dir = opendir(tokens);
	if (dir == NULL)
		return 0;
	while (!found && (e = readdir(dir)) != NULL) {
		FILE *f;
		size_t n;

		if (e->d_name[0] == '.')
			continue;
		snprintf(obj, sizeof(obj), "%s/%s/token.object", tokens, e->d_name);
		f = fopen(obj, "rb");
		if (f == NULL)
			continue;
		n = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		if (memmem(buf, n, want, strlen(want)) != NULL) {
			snprintf(out, len, "%s/%s", tokens, e->d_name);
			found = 1;
		}
	}
	closedir(dir);
	return found;
}

int kos_test_streq(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

CU_BOOL kos_test_str_eq_report(const char *actual, const char *expected, const char *what,
			       const char *file, int line)
{
	if (kos_test_streq(actual, expected))
		return CU_TRUE;
	fprintf(stderr, "%s:%d: %s is %s%s%s, expected %s%s%s\n", file, line, what,
		actual != NULL ? "\"" : "", actual != NULL ? actual : "NULL",
		actual != NULL ? "\"" : "", expected != NULL ? "\"" : "",
		expected != NULL ? expected : "NULL", expected != NULL ? "\"" : "");
	return CU_FALSE;
}

int kos_test_inst_open(char *inst, size_t len, unsigned hsm_flags, kos_config **conf,
		       kos_policy **pol, kos_store **st, kos_hsm **hsm)
{
	char path[600];
	char *diag = NULL;

	snprintf(inst, len, "%s/inst", kos_test_tmpdir());
	snprintf(path, sizeof(path), "%s/kos.conf", inst);
	if (kos_devinit(inst, 0, kos_test_srcpath("policy/default.policy"), NULL) != KOS_OK ||
	    (conf != NULL && kos_config_load(path, conf, &diag) != KOS_OK) ||
	    (pol != NULL && kos_policy_load(kos_config_get0_policy(*conf), pol, &diag) != KOS_OK) ||
	    (st != NULL && kos_store_open(kos_config_get0_store(*conf), st) != KOS_OK) ||
	    (hsm != NULL && kos_hsm_open(*conf, hsm_flags, hsm) != KOS_OK)) {
		fprintf(stderr, "set-up: %s\n", diag != NULL ? diag : kos_last_error());
		kos_free(diag);
		return 1;
	}
	return 0;
}

int kos_test_inst_close(kos_config *conf, kos_policy *pol, kos_store *st, kos_hsm *hsm)
{
	kos_hsm_free(hsm);
	kos_store_free(st);
	kos_policy_free(pol);
	kos_config_free(conf);
	return 0;
}

int kos_test_softhsm_leaks_ignored(void)
{
	const char *path = kos_test_path("lsan.supp");
	char opts[700];
	FILE *f = fopen(path, "w");

	if (f == NULL || fputs("leak:libsofthsm2.so\n", f) < 0) {
		if (f != NULL)
			fclose(f);
		return 1;
	}
	if (fclose(f) != 0)
		return 1;
	snprintf(opts, sizeof(opts), "suppressions=%s", path);
	if (setenv("LSAN_OPTIONS", opts, 1) != 0 ||
	    setenv("ASAN_OPTIONS", "fast_unwind_on_malloc=0", 1) != 0)
		return 1;
	return 0;
}

int kos_test_kosd_start(const char *conf_path, const char *const *args, const char *log,
			const char *socket, pid_t *pid)
{
	const char *bin = getenv("KOSD");
	const char *argv[16] = { "kosd", "--config", conf_path };
	size_t n = 3;
	kos_client *c = NULL;
	int ok = 0;

	for (; args != NULL && *args != NULL && n < sizeof(argv) / sizeof(argv[0]) - 1; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	fflush(stdout);
	fflush(stderr);
	*pid = fork();
	if (*pid < 0)
		return -1;
	if (*pid == 0) {
		if (freopen(log, "a", stderr) == NULL)
			_exit(127);
		execv(bin != NULL ? bin : "./kosd", (char *const *)argv);
		_exit(127);
	}
	if (kos_client_new(socket, &c) != KOS_OK)
		return -1;
	for (int i = 0; i < 200 && !ok; i++) {
		if (kos_client_health(c, NULL, 0) == KOS_OK)
			ok = 1;
		else if (waitpid(*pid, NULL, WNOHANG) == *pid)
			*pid = -1;
		if (ok || *pid < 0)
			break;
		usleep(50000);
	}
	kos_client_free(c);
	return ok ? 0 : -1;
}

int kos_test_kosd_stop(pid_t *pid)
{
	int status = -1;

	if (*pid <= 0)
		return -1;
	kill(*pid, SIGCONT);
	kill(*pid, SIGTERM);
	if (waitpid(*pid, &status, 0) != *pid)
		status = -1;
	*pid = -1;
	return status;
}

int kos_test_write_integrity_policy(const char *path, const char *const (*edits)[2], size_t n)
{
	static const char *const integrity[][2] = {
		{ "prior = 60.0;", "prior = 90.0;" },
		{ "    latency = 1.0;", "    latency = 0.0;" },
		{ "    usage = 1.0;", "    usage = 0.0;" },
		{ "    anomaly = 2.0;", "    anomaly = 0.0;" },
		{ "    reputation = 1.0;", "    reputation = 0.0;" },
		{ "recovery = 1.0; };", "recovery = 0.0; };" },
	};
	const size_t ni = sizeof(integrity) / sizeof(integrity[0]);
	const char *(*all)[2] = calloc(ni + n, sizeof(*all));
	int rc;

	if (all == NULL)
		return -1;
	memcpy(all, integrity, sizeof(integrity));
	if (n > 0)
		memcpy(all + ni, edits, n * sizeof(*all));
	rc = kos_test_write_policy(path, (const char *const(*)[2])all, ni + n);
	free(all);
	return rc;
}

const char *kos_test_cred_path(const char *client)
{
	char name[KOS_PRINCIPAL_NAME_MAX + 8];

	snprintf(name, sizeof(name), "%s.cred", client);
	return kos_test_path(name);
}

int kos_test_enroll(const char *socket, const char *client, const char *secret)
{
	kos_client *c = NULL;
	kos_rv rv = kos_client_new(socket, &c);

	if (rv == KOS_OK)
		rv = kos_client_enroll(c, secret, kos_test_cred_path(client));
	kos_client_free(c);
	return rv == KOS_OK ? 0 : -1;
}

int kos_test_write_text(const char *path, const char *text)
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
