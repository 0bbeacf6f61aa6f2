/* kos.conf refused: every bad file gives its FILE:LINE problems and no
 * configuration; a good one loads as it always did. */
#include "config.h"

#include "kos/internal.h"
#include "tests/kos-test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Writes text (len bytes) to a new file in the temporary directory; returns
 * its path (valid until the fourth next call). */
static const char *write_conf(const char *text, size_t len)
{
	static char paths[4][512];
	static unsigned seq;
	char *path = paths[seq % 4];
	FILE *f;

	snprintf(path, sizeof(paths[0]), "%s/c%u.conf", kos_test_tmpdir(), seq++);
	f = fopen(path, "wb");
	CU_ASSERT_FATAL(f != NULL);
	CU_ASSERT_FATAL(fwrite(text, 1, len, f) == len);
	CU_ASSERT_FATAL(fclose(f) == 0);
	return path;
}

/* Loads text, expecting a refusal with nothing loaded; returns the
 * problems (free them) and the file's path in *path. */
static char *refused(const char *text, const char **path)
{
	kos_config *conf = (kos_config *)&conf; /* must come back NULL */
	char *diag = NULL;

	*path = write_conf(text, strlen(text));
	CU_ASSERT_EQUAL(kos_config_load(*path, &conf, &diag), KOS_E_POLICY);
	CU_ASSERT_PTR_NULL(conf);
	CU_ASSERT_PTR_NOT_NULL_FATAL(diag);
	return diag;
}

static unsigned count_lines(const char *diag)
{
	unsigned n = 0;

	for (; *diag != '\0'; diag++)
		n += *diag == '\n';
	return n;
}

/* True when diag has the line "PATH:LINE: what" exactly. */
static int has_line(const char *diag, const char *path, int line, const char *what)
{
	char want[1024];
	const char *p = diag;
	size_t n;

	n = (size_t)snprintf(want, sizeof(want), "%s:%d: %s\n", path, line, what);
	for (; (p = strstr(p, want)) != NULL; p++)
		if (p == diag || p[-1] == '\n')
			return 1;
	fprintf(stderr, "\nexpected %.*s in:\n%s", (int)n - 1, want, diag);
	return 0;
}

/* text must be refused with exactly one problem, "FILE:line: what". */
static void expect_one(const char *text, int line, const char *what)
{
	const char *path;
	char *diag = refused(text, &path);

	CU_ASSERT(has_line(diag, path, line, what));
	CU_ASSERT_EQUAL(count_lines(diag), 1);
	/* the first problem is also the thread's error detail */
	CU_ASSERT(strstr(kos_last_error(), what) != NULL);
	kos_free(diag);
}

#define HEAD "store = \"memory:\";\npolicy = \"p.policy\";\n"

/* libconfig 1.5 truncates integer literals to 32 bits without a word:
 * 4294967396 would load as 100, a valid max_connections. */
static void test_overflowing_integers_refused(void)
{
	expect_one(HEAD "listen = { max_connections = 4294967396; };\n", 3,
		   "integer 4294967396 does not fit in 32 bits; write 4294967396L for a 64-bit "
		   "integer");
	expect_one(HEAD "listen = {\n  max_body = 0x100000400;\n};\n", 4,
		   "integer 0x100000400 does not fit in 32 bits; write 0x100000400L for a 64-bit "
		   "integer");
	expect_one(HEAD "listen = { max_data_body = 99999999999999999999L; };\n", 3,
		   "integer 99999999999999999999L does not fit in 64 bits");
	expect_one(HEAD "listen = { max_connections = -2147483649; };\n", 3,
		   "integer -2147483649 does not fit in 32 bits; write -2147483649L for a 64-bit "
		   "integer");
}

static void test_out_of_range_integers_refused(void)
{
	expect_one(HEAD "listen = { max_connections = 65537; };\n", 3,
		   "listen: max_connections: must be <= 65536 (got 65537)");
	/* a 64-bit literal that fits is judged by the range, not truncated */
	expect_one(HEAD "listen = { max_connections = 4294967396L; };\n", 3,
		   "listen: max_connections: must be <= 65536 (got 4294967396)");
	expect_one(HEAD "listen = { max_connections = 0; };\n", 3,
		   "listen: max_connections: must be >= 1 (got 0)");
	expect_one(HEAD "listen = { max_body = 1023; };\n", 3,
		   "listen: max_body: must be >= 1024 (got 1023)");
	expect_one(HEAD "listen = { max_data_body = 1073741825; };\n", 3,
		   "listen: max_data_body: must be <= 1073741824 (got 1073741825)");
	expect_one(HEAD "listen = { max_connections_per_peer = -1; };\n", 3,
		   "listen: max_connections_per_peer: must be >= 1 (got -1)");
	expect_one(HEAD "listen = { timeout = \"2h\"; };\n", 3, "listen: timeout: must be at most 1h");
	expect_one(HEAD "listen = { timeout = \"500ms\"; };\n", 3,
		   "listen: timeout: must be at least 1s");
}

static void test_include_refused(void)
{
	expect_one(HEAD "@include \"/etc/passwd\"\n", 3,
		   "@include is not allowed in kos.conf: keep kos.conf in one file");
	/* after blanks too, as libconfig's lexer takes it */
	expect_one(HEAD "listen = {\n  @include \"listen.conf\"\n};\n", 4,
		   "@include is not allowed in kos.conf: keep kos.conf in one file");
}

static void test_unknown_keys_refused(void)
{
	expect_one(HEAD "stroe = \"state.db\";\n", 3,
		   "stroe: unknown setting (known here: store, policy, server, tokens, "
		   "environment, listen, kms, kms_fronts)");
	expect_one(HEAD "listen = {\n  max_conections = 8;\n};\n", 4,
		   "listen: max_conections: unknown setting (known here: unix, unix_mode, "
		   "max_connections, max_connections_per_peer, max_anon_body, max_body, "
		   "max_data_body, timeout, workers, ledger, tcp, tls)");
	expect_one(HEAD "listen = { tcp = \"127.0.0.1:8443\";\n  tls = { cert = \"c\"; key = \"k\"; "
			"client_ca = \"ca\";\n    crl = \"x\"; }; };\n",
		   5, "listen: tls: crl: unknown setting (known here: cert, key, client_ca)");
	expect_one(HEAD "kms = { jwks = \"ca.jwks\"; jwk = \"x\"; };\n", 3,
		   "kms: jwk: unknown setting (known here: jwks)");
	expect_one(HEAD "tokens = ( { name = \"a\"; module = \"/m.so\"; uri = \"pkcs11:token=a\";\n"
			"  pin = \"env:P\"; role = \"kms\"; slot = 1; } );\n",
		   4, "tokens[0]: slot: unknown setting (known here: name, module, uri, pin, role)");
}

static void test_wrong_types_refused(void)
{
	expect_one("store = 5;\npolicy = \"p\";\n", 1, "store: must be a string");
	expect_one(HEAD "listen = { max_connections = \"8\"; };\n", 3,
		   "listen: max_connections: must be a whole number, not a string");
	expect_one(HEAD "listen = { max_body = 4096.0; };\n", 3,
		   "listen: max_body: must be a whole number (got 4096)");
	expect_one(HEAD "listen = { timeout = 30; };\n", 3,
		   "listen: timeout: must be a duration string with a unit such as \"90s\", not an "
		   "integer");
	expect_one(HEAD "listen = ( 1 );\n", 3,
		   "listen: must be a group { unix = \"kosd.sock\"; ... }");
	expect_one(HEAD "kms = \"ca.jwks\";\n", 3, "kms: must be a group { ... }, not a string");
	expect_one(HEAD "listen = { unix_mode = 0660; };\n", 3,
		   "listen: unix_mode: must be an octal mode string such as \"0660\"");
	expect_one(HEAD "listen = { ledger = \"fast\"; };\n", 3,
		   "listen: ledger: must be \"durable\", \"synced\" or \"batched\"");
	expect_one(HEAD "listen = { ledger = 1; };\n", 3,
		   "listen: ledger: must be \"durable\", \"synced\" or \"batched\"");
	expect_one(HEAD "listen = { workers = 257; };\n", 3,
		   "listen: workers: must be <= 256 (got 257)");
	expect_one(HEAD "listen = { workers = -1; };\n", 3, "listen: workers: must be >= 0 (got -1)");
}

static void test_missing_settings_refused(void)
{
	expect_one("store = \"memory:\";\n", 1, "policy: missing (the policy file)");
	expect_one("policy = \"p\";\n", 1, "store: missing (the state store location)");
	expect_one(HEAD "kms = {\n};\n", 3,
		   "kms: jwks: missing (the CA's public keys, from kosctl ca jwks)");
}

static void test_oversized_file_refused(void)
{
	size_t len = 1024 * 1024 + 1;
	char *text = malloc(len);
	kos_config *conf = (kos_config *)&conf;
	const char *path;
	char *diag = NULL;
	char want[600];

	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	/* valid throughout, so only the size can refuse it */
	memset(text, '\n', len);
	memcpy(text, HEAD "#", strlen(HEAD) + 1);
	path = write_conf(text, len);
	CU_ASSERT_EQUAL(kos_config_load(path, &conf, &diag), KOS_E_POLICY);
	CU_ASSERT_PTR_NULL(conf);
	CU_ASSERT_PTR_NOT_NULL_FATAL(diag);
	snprintf(want, sizeof(want), "%s:1: file is larger than 1048576 bytes; kos.conf is a few KiB\n",
		 path);
	CU_ASSERT_STRING_EQUAL(diag, want);
	kos_free(diag);

	/* one byte less loads */
	path = write_conf(text, len - 1);
	CU_ASSERT_EQUAL(kos_config_load(path, &conf, NULL), KOS_OK);
	CU_ASSERT_PTR_NOT_NULL(conf);
	kos_config_free(conf);
	free(text);
}

static void test_missing_file_refused(void)
{
	kos_config *conf = (kos_config *)&conf;
	char *diag = (char *)&diag;
	char path[600], want[700];

	/* no line to name: the file and the system's reason */
	snprintf(path, sizeof(path), "%s/no-such.conf", kos_test_tmpdir());
	CU_ASSERT_EQUAL(kos_config_load(path, &conf, &diag), KOS_E_IO);
	CU_ASSERT_PTR_NULL(conf);
	CU_ASSERT_PTR_NULL(diag);
	snprintf(want, sizeof(want), "%s: No such file or directory", path);
	CU_ASSERT_STRING_EQUAL(kos_last_error(), want);

	CU_ASSERT_EQUAL(kos_config_load(kos_test_tmpdir(), &conf, NULL), KOS_E_IO);
	CU_ASSERT_PTR_NULL(conf);
	snprintf(want, sizeof(want), "%s: is a directory, not a file", kos_test_tmpdir());
	CU_ASSERT_STRING_EQUAL(kos_last_error(), want);
}

static void test_syntax_errors_refused(void)
{
	expect_one(HEAD "listen = { max_connections = ; };\n", 3, "syntax error");
	/* an unclosed group is found at the end of the file */
	expect_one(HEAD "listen = {\n  unix = \"kosd.sock\";\n\n", 6, "syntax error");
	expect_one(HEAD "store = \"again\";\n", 3, "duplicate setting name");
	expect_one(HEAD "x\001 = 1;\n", 3, "syntax error");
	/* a NUL byte would hide the rest of the file from libconfig */
	{
		static const char text[] = HEAD "\0listen = { max_connections = 0; };\n";
		kos_config *conf = (kos_config *)&conf;
		const char *path = write_conf(text, sizeof(text) - 1);
		char *diag = NULL;

		CU_ASSERT_EQUAL(kos_config_load(path, &conf, &diag), KOS_E_POLICY);
		CU_ASSERT_PTR_NULL(conf);
		CU_ASSERT_PTR_NOT_NULL_FATAL(diag);
		CU_ASSERT(has_line(diag, path, 3, "contains a NUL byte; kos.conf is a text file"));
		kos_free(diag);
	}
}

/* Every problem of one file at once, in file order; nothing loaded. */
static void test_all_problems_reported_in_order(void)
{
	const char *path;
	char *diag = refused("store = \"memory:\";\n"
			     "colour = 1;\n"
			     "listen = {\n"
			     "  max_connections = 4294967396;\n"
			     "  max_body = 10;\n"
			     "  bogus = 1;\n"
			     "};\n",
			     &path);

	CU_ASSERT(has_line(diag, path, 1, "policy: missing (the policy file)"));
	CU_ASSERT(has_line(diag, path, 2,
			   "colour: unknown setting (known here: store, policy, server, tokens, "
			   "environment, listen, kms, kms_fronts)"));
	CU_ASSERT(has_line(diag, path, 4,
			   "integer 4294967396 does not fit in 32 bits; write 4294967396L for a "
			   "64-bit integer"));
	CU_ASSERT(has_line(diag, path, 5, "listen: max_body: must be >= 1024 (got 10)"));
	CU_ASSERT(strstr(diag, "listen: bogus: unknown setting") != NULL);
	CU_ASSERT_EQUAL(count_lines(diag), 5);
	kos_free(diag);
}

/* The same values as before the checks: a good file is unchanged. */
static void test_good_file_loads(void)
{
	kos_listen_config l;
	kos_config *conf = NULL;
	char *diag = NULL;
	static const char text[] = HEAD "# max_connections = 4294967396;\n"
				       "listen = { unix = \"kosd.sock\"; max_connections = 100;\n"
				       "  max_data_body = 536870912L; timeout = \"1h\";\n"
				       "  unix_mode = \"0600\"; };\n";
	const char *path = write_conf(text, sizeof(text) - 1);

	if (kos_config_load(path, &conf, &diag) != KOS_OK)
		fprintf(stderr, "\nunexpected refusal:\n%s", diag != NULL ? diag : kos_last_error());
	CU_ASSERT_PTR_NULL(diag);
	CU_ASSERT_PTR_NOT_NULL_FATAL(conf);
	kos_config_get_listen(conf, &l);
	CU_ASSERT_EQUAL(l.max_connections, 100);
	CU_ASSERT_EQUAL(l.max_connections_per_peer, 75);
	CU_ASSERT_EQUAL(l.max_data_body, 536870912);
	CU_ASSERT_EQUAL(l.timeout, 3600 * KOS_USEC_PER_SEC);
	CU_ASSERT_EQUAL(l.unix_mode, 0600);
	CU_ASSERT(!l.ledger_batched);
	CU_ASSERT(!l.ledger_synced);
	CU_ASSERT_STRING_EQUAL(kos_config_get0_store(conf), "memory:");
	kos_config_free(conf);
}

/* listen.ledger: each of its three values, as kosd reads them. */
static void test_ledger_modes(void)
{
	static const struct {
		const char *value;
		bool batched, synced;
	} modes[] = {{"durable", false, false}, {"synced", false, true}, {"batched", true, false}};
	kos_listen_config l;
	kos_config *conf = NULL;
	char text[200];
	size_t i;

	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		int n = snprintf(text, sizeof(text), HEAD "listen = { ledger = \"%s\"; };\n",
				 modes[i].value);

		CU_ASSERT_EQUAL_FATAL(
		    kos_config_load(write_conf(text, (size_t)n), &conf, NULL), KOS_OK);
		kos_config_get_listen(conf, &l);
		CU_ASSERT_EQUAL(l.ledger_batched, modes[i].batched);
		CU_ASSERT_EQUAL(l.ledger_synced, modes[i].synced);
		kos_config_free(conf);
		conf = NULL;
	}
}

int main(void)
{
	static const struct kos_test_case cases[] = {
		KOS_TEST(test_overflowing_integers_refused),
		KOS_TEST(test_ledger_modes),
		KOS_TEST(test_out_of_range_integers_refused),
		KOS_TEST(test_include_refused),
		KOS_TEST(test_unknown_keys_refused),
		KOS_TEST(test_wrong_types_refused),
		KOS_TEST(test_missing_settings_refused),
		KOS_TEST(test_oversized_file_refused),
		KOS_TEST(test_missing_file_refused),
		KOS_TEST(test_syntax_errors_refused),
		KOS_TEST(test_all_problems_reported_in_order),
		KOS_TEST(test_good_file_loads),
	};

	return kos_test_run("config", NULL, NULL, cases, KOS_ARRAY_SIZE(cases));
}
