/* Tests of the common helpers: durations, hex, base64, secret memory,
 * bounded buffers, AES-256-GCM, ISO 8601 times, error details, kos.conf. */
#include "config.h"

#include "kos/internal.h"
#include "tests/kos-test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

static const char *write_file(const char *name, const char *text)
{
	static char path[4][512];
	static unsigned next;
	char *p = path[next++ % 4];
	FILE *f;

	snprintf(p, sizeof(path[0]), "%s/%s", kos_test_tmpdir(), name);
	f = fopen(p, "w");
	CU_ASSERT_FATAL(f != NULL);
	fputs(text, f);
	fclose(f);
	return p;
}

static void test_duration_units(void)
{
	kos_usec d;

	CU_ASSERT_EQUAL(kos_duration_parse("250ms", &d), KOS_OK);
	CU_ASSERT_EQUAL(d, 250000);
	CU_ASSERT_EQUAL(kos_duration_parse("90s", &d), KOS_OK);
	CU_ASSERT_EQUAL(d, 90 * KOS_USEC_PER_SEC);
	CU_ASSERT_EQUAL(kos_duration_parse("15m", &d), KOS_OK);
	CU_ASSERT_EQUAL(d, 900 * KOS_USEC_PER_SEC);
	CU_ASSERT_EQUAL(kos_duration_parse("12h", &d), KOS_OK);
	CU_ASSERT_EQUAL(d, 12 * 3600 * KOS_USEC_PER_SEC);
	CU_ASSERT_EQUAL(kos_duration_parse("30d", &d), KOS_OK);
	CU_ASSERT_EQUAL(d, 30 * 86400 * KOS_USEC_PER_SEC);
	CU_ASSERT_EQUAL(kos_duration_parse("0s", &d), KOS_OK);
	CU_ASSERT_EQUAL(d, 0);
}

static void test_duration_refusals(void)
{
	static const char *const bad[] = {
		"", "s", "10", "-5s", "+5s", "5 s", "5sec", "5S", "1.5h", "5s ", " 5s",
		"99999999999999999999d", "9223372036854775807d", "10w", "0x10s",
	};
	kos_usec d = 12345;
	size_t i;

	for (i = 0; i < KOS_ARRAY_SIZE(bad); i++) {
		CU_ASSERT_EQUAL(kos_duration_parse(bad[i], &d), KOS_E_PARSE);
		CU_ASSERT_EQUAL(d, 12345);
	}
	CU_ASSERT_EQUAL(kos_duration_parse(NULL, &d), KOS_E_PARSE);
	CU_ASSERT(strstr(kos_last_error(), "duration") != NULL);
}

static void test_duration_format(void)
{
	char buf[32];

	kos_duration_format(15 * 60 * KOS_USEC_PER_SEC, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "15m");
	kos_duration_format(7 * 86400 * KOS_USEC_PER_SEC, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "7d");
	kos_duration_format(1500 * 1000, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "1500ms");
	kos_duration_format(90 * KOS_USEC_PER_SEC, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "90s");
	kos_duration_format(7, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "7us");
}

static void test_hex_round_trip(void)
{
	uint8_t in[256], back[256];
	char hex[513];
	size_t i;

	for (i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)i;
	kos_hex_encode(in, sizeof(in), hex);
	CU_ASSERT_EQUAL(strlen(hex), 512);
	CU_ASSERT_NSTRING_EQUAL(hex, "000102030405060708090a0b0c0d0e0f10", 34);
	CU_ASSERT_STRING_EQUAL(hex + 500, "fafbfcfdfeff");
	CU_ASSERT_EQUAL(kos_hex_decode(hex, 512, back), KOS_OK);
	CU_ASSERT_EQUAL(memcmp(in, back, sizeof(in)), 0);
	CU_ASSERT_EQUAL(kos_hex_decode("DEADbeef", 8, back), KOS_OK);
	CU_ASSERT_EQUAL(back[0], 0xde);
	CU_ASSERT_EQUAL(back[3], 0xef);
}

static void test_hex_refusals(void)
{
	static const char *const bad[] = { "0g", "g0", "/0", ":0", "@0", "G0", "`0", "0 ", "\xff" "0" };
	uint8_t out[4];
	size_t i;

	for (i = 0; i < KOS_ARRAY_SIZE(bad); i++)
		CU_ASSERT_EQUAL(kos_hex_decode(bad[i], 2, out), KOS_E_PARSE);
	CU_ASSERT_EQUAL(kos_hex_decode("abc", 3, out), KOS_E_PARSE);
}

static void test_strerror_and_detail(void)
{
	CU_ASSERT_STRING_EQUAL(kos_strerror(KOS_OK), "success");
	CU_ASSERT_STRING_EQUAL(kos_strerror(KOS_E_INTEGRITY), "integrity check failed");
	CU_ASSERT_STRING_EQUAL(kos_strerror(-999), "unknown error");
	CU_ASSERT_EQUAL(kos_error_set(KOS_E_PARSE, "line %d", 7), KOS_E_PARSE);
	CU_ASSERT_STRING_EQUAL(kos_last_error(), "line 7");
	/* the detail itself as an argument: context put before it */
	kos_error_set(KOS_E_PARSE, "file %s: %s", "f.conf", kos_last_error());
	CU_ASSERT_STRING_EQUAL(kos_last_error(), "file f.conf: line 7");
	kos_error_set(KOS_E_PARSE, "%s (and more)", kos_last_error());
	CU_ASSERT_STRING_EQUAL(kos_last_error(), "file f.conf: line 7 (and more)");
	kos_error_clear();
	CU_ASSERT_STRING_EQUAL(kos_last_error(), "");
}

static void test_config_load(void)
{
	kos_config *conf = NULL;
	char *diag = NULL;
	const char *path = write_file("good.conf", "# kos\nstore = \"state.db\";\npolicy = \"/etc/kos/p.policy\";\n");
	char expect[600];

	CU_ASSERT_EQUAL_FATAL(kos_config_load(path, &conf, &diag), KOS_OK);
	CU_ASSERT_PTR_NULL(diag);
	snprintf(expect, sizeof(expect), "%s/state.db", kos_test_tmpdir());
	CU_ASSERT_STRING_EQUAL(kos_config_get0_store(conf), expect);
	CU_ASSERT_STRING_EQUAL(kos_config_get0_policy(conf), "/etc/kos/p.policy");
	CU_ASSERT_STRING_EQUAL(kos_config_get0_path(conf), path);
	kos_config_free(conf);

	path = write_file("scheme.conf", "store = \"sqlite:s.db\";\npolicy = \"p\";\n");
	CU_ASSERT_EQUAL_FATAL(kos_config_load(path, &conf, NULL), KOS_OK);
	snprintf(expect, sizeof(expect), "sqlite:%s/s.db", kos_test_tmpdir());
	CU_ASSERT_STRING_EQUAL(kos_config_get0_store(conf), expect);
	kos_config_free(conf);

	path = write_file("pg.conf", "store = \"postgres://db/kos\";\npolicy = \"p\";\n");
	CU_ASSERT_EQUAL_FATAL(kos_config_load(path, &conf, NULL), KOS_OK);
	CU_ASSERT_STRING_EQUAL(kos_config_get0_store(conf), "postgres://db/kos");
	kos_config_free(conf);

	path = write_file("mem.conf", "store = \"memory:\";\npolicy = \"p\";\n");
	CU_ASSERT_EQUAL_FATAL(kos_config_load(path, &conf, NULL), KOS_OK);
	CU_ASSERT_STRING_EQUAL(kos_config_get0_store(conf), "memory:");
	kos_config_free(conf);
}

static void test_config_refusals(void)
{
	kos_config *conf = (kos_config *)1;
	char *diag = NULL;
	const char *path;
	char expect[600];

	/* every problem, each with its line */
	path = write_file("bad.conf", "store = 5;\n\nbogus = \"x\";\npolicy = \"\";\n");
	CU_ASSERT_EQUAL(kos_config_load(path, &conf, &diag), KOS_E_POLICY);
	CU_ASSERT_PTR_NULL(conf);
	CU_ASSERT_PTR_NOT_NULL_FATAL(diag);
	snprintf(expect, sizeof(expect), "%s:1: store: must be a string\n", path);
	CU_ASSERT(strstr(diag, expect) != NULL);
	snprintf(expect, sizeof(expect),
		 "%s:3: bogus: unknown setting (known here: store, policy, server, tokens, "
		 "environment, listen, kms, kms_fronts)\n",
		 path);
	CU_ASSERT(strstr(diag, expect) != NULL);
	snprintf(expect, sizeof(expect), "%s:4: policy: must not be empty\n", path);
	CU_ASSERT(strstr(diag, expect) != NULL);
	/* the first problem is also the thread's detail */
	snprintf(expect, sizeof(expect), "%s:1: store: must be a string", path);
	CU_ASSERT_STRING_EQUAL(kos_last_error(), expect);
	kos_free(diag);

	path = write_file("syntax.conf", "store = \"a\";\npolicy = \"b\"\nstore2 = ;\n");
	CU_ASSERT_EQUAL(kos_config_load(path, &conf, &diag), KOS_E_POLICY);
	snprintf(expect, sizeof(expect), "%s:3: ", path);
	CU_ASSERT(diag != NULL && strncmp(diag, expect, strlen(expect)) == 0);
	kos_free(diag);

	path = write_file("missing.conf", "store = \"a\";\n");
	CU_ASSERT_EQUAL(kos_config_load(path, &conf, &diag), KOS_E_POLICY);
	CU_ASSERT(diag != NULL && strstr(diag, "policy: missing") != NULL);
	kos_free(diag);

	diag = NULL;
	CU_ASSERT_EQUAL(kos_config_load("/nonexistent/kos.conf", &conf, &diag), KOS_E_IO);
	CU_ASSERT_PTR_NULL(diag);
	CU_ASSERT(strstr(kos_last_error(), "/nonexistent/kos.conf") != NULL);
	CU_ASSERT_EQUAL(kos_config_load(kos_test_tmpdir(), &conf, NULL), KOS_E_IO);
	CU_ASSERT_EQUAL(kos_config_load(NULL, &conf, NULL), KOS_E_INVALID);
}

static void test_config_listen(void)
{
	kos_listen_config l;
	kos_config *conf = NULL;
	char *diag = NULL;
	const char *path;
	char expect[600];

	/* defaults: no socket */
	path = write_file("nolisten.conf", "store = \"a\";\npolicy = \"b\";\n");
	CU_ASSERT_EQUAL_FATAL(kos_config_load(path, &conf, NULL), KOS_OK);
	kos_config_get_listen(conf, &l);
	CU_ASSERT_PTR_NULL(l.unix_path);
	CU_ASSERT_EQUAL(l.unix_mode, 0660);
	CU_ASSERT_EQUAL(l.max_connections, 256);
	CU_ASSERT_EQUAL(l.timeout, 30 * KOS_USEC_PER_SEC);
	CU_ASSERT_EQUAL(l.max_body, 1024 * 1024);
	CU_ASSERT_EQUAL(l.max_data_body, 96 * 1024 * 1024);
	CU_ASSERT_EQUAL(l.max_anon_body, 16 * 1024);
	CU_ASSERT_EQUAL(l.max_connections_per_peer, 192);
	CU_ASSERT_PTR_NULL(l.tcp_host);
	CU_ASSERT_EQUAL(l.tcp_port, 0);
	CU_ASSERT_PTR_NULL(l.tls_cert);
	kos_config_free(conf);

	path = write_file("listen.conf",
			  "store = \"a\";\npolicy = \"b\";\n"
			  "listen = { unix = \"kosd.sock\"; unix_mode = \"0600\"; max_connections = 8;\n"
			  "  timeout = \"5s\"; max_body = 4096; max_data_body = 8192; };\n");
	CU_ASSERT_EQUAL_FATAL(kos_config_load(path, &conf, NULL), KOS_OK);
	kos_config_get_listen(conf, &l);
	snprintf(expect, sizeof(expect), "%s/kosd.sock", kos_test_tmpdir());
	CU_ASSERT_STRING_EQUAL(l.unix_path, expect);
	CU_ASSERT_EQUAL(l.unix_mode, 0600);
	CU_ASSERT_EQUAL(l.max_connections, 8);
	CU_ASSERT_EQUAL(l.timeout, 5 * KOS_USEC_PER_SEC);
	CU_ASSERT_EQUAL(l.max_body, 4096);
	CU_ASSERT_EQUAL(l.max_data_body, 8192);
	/* three quarters of max_connections by default */
	CU_ASSERT_EQUAL(l.max_connections_per_peer, 6);
	CU_ASSERT_PTR_NULL(l.tcp_host);
	kos_config_free(conf);

	/* the body without a credential, and the per-peer budget */
	path = write_file("peer.conf",
			  "store = \"a\";\npolicy = \"b\";\n"
			  "listen = { max_connections = 8; max_connections_per_peer = 2;\n"
			  "  max_anon_body = 2048; };\n");
	CU_ASSERT_EQUAL_FATAL(kos_config_load(path, &conf, NULL), KOS_OK);
	kos_config_get_listen(conf, &l);
	CU_ASSERT_EQUAL(l.max_connections_per_peer, 2);
	CU_ASSERT_EQUAL(l.max_anon_body, 2048);
	kos_config_free(conf);
	path = write_file("peer2.conf",
			  "store = \"a\";\npolicy = \"b\";\n"
			  "listen = { max_connections_per_peer = 9;\n  max_connections = 8; };\n");
	CU_ASSERT_EQUAL(kos_config_load(path, &conf, &diag), KOS_E_POLICY);
	snprintf(expect, sizeof(expect),
		 "%s:3: listen: max_connections_per_peer must not exceed max_connections (8)", path);
	CU_ASSERT_PTR_NOT_NULL(diag != NULL ? strstr(diag, expect) : NULL);
	kos_free(diag);
	diag = NULL;
	path = write_file("peer3.conf", "store = \"a\";\npolicy = \"b\";\n"
					"listen = { max_anon_body = 100; };\n");
	CU_ASSERT_EQUAL(kos_config_load(path, &conf, &diag), KOS_E_POLICY);
	CU_ASSERT_PTR_NOT_NULL(diag != NULL ? strstr(diag, "listen: max_anon_body: must be >= 1024 (got 100)")
				    : NULL);
	kos_free(diag);
	diag = NULL;

	/* TCP with TLS: paths against kos.conf's directory, an absolute one kept */
	path = write_file("tls.conf",
			  "store = \"a\";\npolicy = \"b\";\n"
			  "listen = { unix = \"kosd.sock\"; tcp = \"127.0.0.1:8443\";\n"
			  "  tls = { cert = \"server.pem\"; key = \"/etc/kos/server.key\";\n"
			  "          client_ca = \"ca/clients.pem\"; }; };\n");
	CU_ASSERT_EQUAL_FATAL(kos_config_load(path, &conf, NULL), KOS_OK);
	kos_config_get_listen(conf, &l);
	CU_ASSERT_STRING_EQUAL(l.tcp_host, "127.0.0.1");
	CU_ASSERT_EQUAL(l.tcp_port, 8443);
	snprintf(expect, sizeof(expect), "%s/server.pem", kos_test_tmpdir());
	CU_ASSERT_STRING_EQUAL(l.tls_cert, expect);
	CU_ASSERT_STRING_EQUAL(l.tls_key, "/etc/kos/server.key");
	snprintf(expect, sizeof(expect), "%s/ca/clients.pem", kos_test_tmpdir());
	CU_ASSERT_STRING_EQUAL(l.tls_client_ca, expect);
	kos_config_free(conf);

	path = write_file("tls6.conf", "store = \"a\";\npolicy = \"b\";\n"
				       "listen = { tcp = \"[::1]:443\"; tls = { cert = \"c\"; "
				       "key = \"k\"; client_ca = \"ca\"; }; };\n");
	CU_ASSERT_EQUAL_FATAL(kos_config_load(path, &conf, NULL), KOS_OK);
	kos_config_get_listen(conf, &l);
	CU_ASSERT_STRING_EQUAL(l.tcp_host, "::1");
	CU_ASSERT_EQUAL(l.tcp_port, 443);
	CU_ASSERT_PTR_NULL(l.unix_path);
	kos_config_free(conf);

	/* TCP is TLS only; each problem of the tls group at its line */
	path = write_file("badtls.conf", "store = \"a\";\npolicy = \"b\";\nlisten = {\n"
					 "  tcp = \"127.0.0.1:8443\";\n"
					 "};\n");
	CU_ASSERT_EQUAL(kos_config_load(path, &conf, &diag), KOS_E_POLICY);
	CU_ASSERT_PTR_NOT_NULL_FATAL(diag);
	snprintf(expect, sizeof(expect), "%s:4: listen: tcp: needs a tls group", path);
	CU_ASSERT(strstr(diag, expect) != NULL);
	kos_free(diag);
	diag = NULL;

	path = write_file("badtls2.conf", "store = \"a\";\npolicy = \"b\";\nlisten = {\n"
					  "  tcp = \"::1:8443\";\n"
					  "  tls = { cert = \"c\";\n"
					  "    key = 5;\n"
					  "    ca = \"x\"; };\n"
					  "};\n");
	CU_ASSERT_EQUAL(kos_config_load(path, &conf, &diag), KOS_E_POLICY);
	CU_ASSERT_PTR_NOT_NULL_FATAL(diag);
	snprintf(expect, sizeof(expect), "%s:4: listen: tcp: must be \"HOST:PORT\"", path);
	CU_ASSERT(strstr(diag, expect) != NULL);
	snprintf(expect, sizeof(expect), "%s:6: listen: tls: key: must be a string", path);
	CU_ASSERT(strstr(diag, expect) != NULL);
	snprintf(expect, sizeof(expect),
		 "%s:7: listen: tls: ca: unknown setting (known here: cert, key, client_ca)", path);
	CU_ASSERT(strstr(diag, expect) != NULL);
	snprintf(expect, sizeof(expect), "%s:5: listen: tls: client_ca: missing", path);
	CU_ASSERT(strstr(diag, expect) != NULL);
	kos_free(diag);
	diag = NULL;

	path = write_file("badtls3.conf", "store = \"a\";\npolicy = \"b\";\n"
					  "listen = { tcp = \"h:0\"; tls = { cert = \"c\"; key = \"k\"; "
					  "client_ca = \"ca\"; }; };\n");
	CU_ASSERT_EQUAL(kos_config_load(path, &conf, &diag), KOS_E_POLICY);
	CU_ASSERT_PTR_NOT_NULL_FATAL(diag);
	snprintf(expect, sizeof(expect), "%s:3: listen: tcp: the port must be within 1..65535",
		 path);
	CU_ASSERT(strstr(diag, expect) != NULL);
	kos_free(diag);
	diag = NULL;

	path = write_file("badtls4.conf", "store = \"a\";\npolicy = \"b\";\n"
					  "listen = { unix = \"s\";\n  tls = \"x\"; };\n");
	CU_ASSERT_EQUAL(kos_config_load(path, &conf, &diag), KOS_E_POLICY);
	CU_ASSERT_PTR_NOT_NULL_FATAL(diag);
	snprintf(expect, sizeof(expect), "%s:4: listen: tls: must be a group", path);
	CU_ASSERT(strstr(diag, expect) != NULL);
	snprintf(expect, sizeof(expect), "%s:4: listen: tls: no tcp listener", path);
	CU_ASSERT(strstr(diag, expect) != NULL);
	kos_free(diag);
	diag = NULL;

	path = write_file("badlisten.conf",
			  "store = \"a\";\npolicy = \"b\";\nlisten = {\n"
			  "  unix_mode = \"0666\";\n"
			  "  max_connections = 0;\n"
			  "  timeout = \"5\";\n"
			  "  tls = { cert = \"c\"; };\n"
			  "  bogus = 1;\n"
			  "  unix = \"/0123456789/0123456789/0123456789/0123456789/0123456789/"
			  "0123456789/0123456789/0123456789/0123456789/0123456789/kosd.sock\";\n"
			  "};\n");
	CU_ASSERT_EQUAL(kos_config_load(path, &conf, &diag), KOS_E_POLICY);
	CU_ASSERT_PTR_NOT_NULL_FATAL(diag);
	snprintf(expect, sizeof(expect), "%s:4: listen: unix_mode: must not let others write", path);
	CU_ASSERT(strstr(diag, expect) != NULL);
	snprintf(expect, sizeof(expect), "%s:5: listen: max_connections: must be >= 1 (got 0)", path);
	CU_ASSERT(strstr(diag, expect) != NULL);
	snprintf(expect, sizeof(expect), "%s:6: listen: timeout:", path);
	CU_ASSERT(strstr(diag, expect) != NULL);
	snprintf(expect, sizeof(expect), "%s:7: listen: tls: client_ca: missing", path);
	CU_ASSERT(strstr(diag, expect) != NULL);
	snprintf(expect, sizeof(expect),
		 "%s:8: listen: bogus: unknown setting (known here: unix, unix_mode", path);
	CU_ASSERT(strstr(diag, expect) != NULL);
	snprintf(expect, sizeof(expect), "%s:9: listen: unix: the socket path is longer", path);
	CU_ASSERT(strstr(diag, expect) != NULL);
	kos_free(diag);
}

static void test_config_default_path(void)
{
	setenv("KOS_CONF", "/x/y.conf", 1);
	CU_ASSERT_STRING_EQUAL(kos_config_default_path(), "/x/y.conf");
	unsetenv("KOS_CONF");
	CU_ASSERT(strstr(kos_config_default_path(), "/kos/kos.conf") != NULL);
}

static void test_read_file_cap(void)
{
	char *data = NULL;
	size_t len = 0;
	const char *path = write_file("ten", "0123456789");

	CU_ASSERT_EQUAL(kos_read_file(path, 10, &data, &len), KOS_OK);
	CU_ASSERT_EQUAL(len, 10);
	CU_ASSERT_STRING_EQUAL(data, "0123456789");
	free(data);
	CU_ASSERT_EQUAL(kos_read_file(path, 9, &data, &len), KOS_E_RANGE);
	CU_ASSERT_PTR_NULL(data);
	CU_ASSERT_EQUAL(kos_read_file("/nonexistent", 9, &data, &len), KOS_E_IO);
}

/* RFC 4648 section 10's vectors, and every byte string of up to 3 bytes of
 * a few values: decoding the encoding gives the bytes back. */
static void test_b64_round_trip(void)
{
	static const char *const vec[][2] = {
		{ "", "" },	     { "f", "Zg==" },	  { "fo", "Zm8=" },	{ "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
	};
	uint8_t buf[16], raw[3];
	unsigned char txt[8];
	size_t i, n, len;

	for (i = 0; i < KOS_ARRAY_SIZE(vec); i++) {
		n = sizeof(buf);
		CU_ASSERT_EQUAL(kos_b64_decode(vec[i][1], strlen(vec[i][1]), buf, &n), KOS_OK);
		CU_ASSERT_EQUAL(n, strlen(vec[i][0]));
		CU_ASSERT(memcmp(buf, vec[i][0], n) == 0);
	}
	for (len = 1; len <= 3; len++) {
		for (i = 0; i < 256; i++) {
			memset(raw, (int)i, sizeof(raw));
			raw[0] = (uint8_t)(255 - i);
			EVP_EncodeBlock(txt, raw, (int)len);
			n = sizeof(buf);
			CU_ASSERT_EQUAL_FATAL(kos_b64_decode((char *)txt, 4, buf, &n), KOS_OK);
			CU_ASSERT_EQUAL(n, len);
			CU_ASSERT(memcmp(buf, raw, len) == 0);
		}
	}
	/* the whole alphabet */
	n = sizeof(buf);
	CU_ASSERT_EQUAL(kos_b64_decode("+/09AZaz", 8, buf, &n), KOS_OK);
	CU_ASSERT_EQUAL(n, 6);
	CU_ASSERT(buf[0] == 0xfb && buf[1] == 0xfd && buf[2] == 0x3d);
}

/* Texts OpenSSL's lenient decoder takes but that are not the one canonical
 * encoding of any bytes: padding inside, only padding, unused bits set,
 * whitespace, another alphabet, a length that is not a multiple of 4. */
static void test_b64_refusals(void)
{
	static const char *const bad[] = {
		"QQ==QQ==", "====", "QR==", "QUF=", "QUI=x===", "Q===", "QQ=A", "QQ= ", " QQ=",
		"QQ==\n", "Zm9v\n", "Zm 9v", "Zm9-", "Zm9_", "Zm9", "Zm9vY", "Zm9v=", "Zm9v====",
		"=Zm9", "Z=9v", "\x80m9v",
	};
	uint8_t buf[16];
	size_t i, n;

	for (i = 0; i < KOS_ARRAY_SIZE(bad); i++) {
		n = sizeof(buf);
		memset(buf, 0x55, sizeof(buf));
		CU_ASSERT_EQUAL(kos_b64_decode(bad[i], strlen(bad[i]), buf, &n), KOS_E_PARSE);
		CU_ASSERT_EQUAL(n, sizeof(buf));
	}
	/* NUL inside the text given with its length */
	n = sizeof(buf);
	CU_ASSERT_EQUAL(kos_b64_decode("Zm\0v", 4, buf, &n), KOS_E_PARSE);
	/* too small an output is a range error, before anything is written */
	n = 2;
	CU_ASSERT_EQUAL(kos_b64_decode("Zm9v", 4, buf, &n), KOS_E_RANGE);
	n = 3;
	CU_ASSERT_EQUAL(kos_b64_decode("Zm9v", 4, buf, &n), KOS_OK);
	CU_ASSERT_NSTRING_EQUAL(buf, "foo", 3);
}

/* Runs fn(arg) in a child; true when the child died of signal sig. */
static bool child_dies_of(void (*fn)(void *), void *arg, int sig)
{
	int status = 0;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		/* no core file for the expected crash, and the signal itself:
		 * AddressSanitizer's handler would turn a SIGSEGV into an exit */
		signal(SIGABRT, SIG_DFL);
		signal(SIGSEGV, SIG_DFL);
		signal(SIGBUS, SIG_DFL);
		fn(arg);
		_exit(0);
	}
	CU_ASSERT_FATAL(waitpid(pid, &status, 0) == pid);
	return WIFSIGNALED(status) && WTERMSIG(status) == sig;
}

/* The VmFlags line of the mapping of /proc/self/smaps that holds p, or "". */
static void smaps_flags(const void *p, char *out, size_t len)
{
	char line[512];
	bool in = false;
	FILE *f = fopen("/proc/self/smaps", "r");

	out[0] = '\0';
	CU_ASSERT_FATAL(f != NULL);
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
			in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
		else if (in && strncmp(line, "VmFlags:", 8) == 0) {
			snprintf(out, len, "%s", line + 8);
			break;
		}
	}
	fclose(f);
}

static void write_at(void *arg)
{
	*(volatile uint8_t *)arg = 0x55;
}

static void free_it(void *arg)
{
	kos_secmem_free(arg);
}

static void test_secmem_alloc_free(void)
{
	static const size_t sizes[] = { 1, 15, 16, 4095, 4096, 4097, 70000 };
	char flags[512];
	size_t i, j;

	for (i = 0; i < KOS_ARRAY_SIZE(sizes); i++) {
		for (j = 0; j < 2; j++) {
			uint8_t *p = kos_secmem_alloc(sizes[i], j ? KOS_SECMEM_GUARD : 0);
			size_t k, nonzero = 0;

			CU_ASSERT_PTR_NOT_NULL_FATAL(p);
			CU_ASSERT_EQUAL((uintptr_t)p % 16, 0);
			for (k = 0; k < sizes[i]; k++)
				nonzero += p[k] != 0;
			CU_ASSERT_EQUAL(nonzero, 0);
			memset(p, 0xa5, sizes[i]);
			/* left out of core dumps: "dd" among the mapping's flags */
			smaps_flags(p, flags, sizeof(flags));
			CU_ASSERT_PTR_NOT_NULL(strstr(flags, " dd"));
			kos_secmem_free(p);
		}
	}
	kos_secmem_free(NULL);
	CU_ASSERT_PTR_NULL(kos_secmem_alloc(0, 0));
	CU_ASSERT_PTR_NULL(kos_secmem_alloc(16, 0x80));
	CU_ASSERT_PTR_NULL(kos_secmem_alloc(SIZE_MAX, 0));
	CU_ASSERT_PTR_NULL(kos_secmem_alloc(SIZE_MAX / 2, KOS_SECMEM_GUARD));
}

/* The guard page right after the data faults; a freed region is gone; an
 * overwritten header stops the process rather than unmapping at random. */
static void test_secmem_guards(void)
{
	uint8_t *p = kos_secmem_alloc(64, KOS_SECMEM_GUARD);
	uint8_t *q = kos_secmem_alloc(64, 0);
	uint8_t *r;

	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(q);
	CU_ASSERT_FALSE(child_dies_of(write_at, p + 63, SIGSEGV));
	CU_ASSERT_TRUE(child_dies_of(write_at, p + 64, SIGSEGV));
	/* the data is against the end without guards too */
	CU_ASSERT_EQUAL(((uintptr_t)q + 64) % (uintptr_t)sysconf(_SC_PAGESIZE), 0);
	p[-1] ^= 1;
	CU_ASSERT_TRUE(child_dies_of(free_it, p, SIGABRT));
	p[-1] ^= 1;
	kos_secmem_free(p);
	CU_ASSERT_TRUE(child_dies_of(write_at, p, SIGSEGV));
	kos_secmem_free(q);
	r = kos_secmem_alloc(1, KOS_SECMEM_GUARD);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_TRUE(child_dies_of(write_at, r + 16, SIGSEGV));
	kos_secmem_free(r);
}

/* free() of the test and of the static libraries goes through here
 * (-Wl,--wrap=free), so a test can look at a block just before it goes. */
void __real_free(void *p);
void __wrap_free(void *p);

/* volatile: the compiler takes free() for a function that cannot reach a
 * file's static variables */
static const void *volatile watched;
static volatile size_t watched_len;
static volatile int watched_wiped = -1; /* -1: not freed yet; 0: freed with data; 1: wiped */

void __wrap_free(void *p)
{
	if (p != NULL && p == watched) {
		const volatile uint8_t *b = p;
		unsigned acc = 0;
		size_t i;

		for (i = 0; i < watched_len; i++)
			acc |= b[i];
		watched_wiped = acc == 0;
		watched = NULL;
	}
	__real_free(p);
}

static void watch(const void *p, size_t len)
{
	watched = p;
	watched_len = len;
	watched_wiped = -1;
}

static void test_buf_append_and_take(void)
{
	char big[3000], *p = NULL;
	size_t len = 0, cap = 0, i;
	kos_buf b;

	kos_buf_init(&b, 1 << 16);
	CU_ASSERT_PTR_NULL(b.p);
	CU_ASSERT_EQUAL(kos_buf_append(&b, "ab", 2), KOS_OK);
	CU_ASSERT_EQUAL(kos_buf_printf(&b, "%s-%d", "cd", 42), KOS_OK);
	CU_ASSERT_EQUAL(b.len, 7);
	CU_ASSERT_STRING_EQUAL(b.p, "abcd-42");
	/* growth keeps the data and the NUL after it */
	for (i = 0; i < sizeof(big); i++)
		big[i] = (char)('a' + i % 26);
	CU_ASSERT_EQUAL(kos_buf_append(&b, big, sizeof(big)), KOS_OK);
	CU_ASSERT_EQUAL(kos_buf_printf(&b, "%.*s", (int)sizeof(big), big), KOS_OK);
	CU_ASSERT_EQUAL(b.len, 7 + 2 * sizeof(big));
	CU_ASSERT(memcmp(b.p + 7, big, sizeof(big)) == 0);
	CU_ASSERT(memcmp(b.p + 7 + sizeof(big), big, sizeof(big)) == 0);
	CU_ASSERT_EQUAL(b.p[b.len], '\0');
	CU_ASSERT(b.cap > b.len && b.cap <= (1 << 16) + 1);
	CU_ASSERT_EQUAL(kos_buf_take(&b, &p, &len, &cap), KOS_OK);
	CU_ASSERT_EQUAL(len, 7 + 2 * sizeof(big));
	CU_ASSERT(cap > len);
	CU_ASSERT_PTR_NULL(b.p);
	CU_ASSERT_EQUAL(b.len, 0);
	CU_ASSERT_NSTRING_EQUAL(p, "abcd-42abc", 10);
	kos_secret_free(p, cap);
	/* an empty buffer still hands over a string */
	CU_ASSERT_EQUAL(kos_buf_take(&b, &p, &len, NULL), KOS_OK);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT_EQUAL(len, 0);
	CU_ASSERT_STRING_EQUAL(p, "");
	free(p);
	kos_buf_uninit(&b);
}

/* The maximum is the bound on the data, whatever the call; the first
 * failure sticks until a reset; sizes near SIZE_MAX do not wrap around. */
static void test_buf_bounds(void)
{
	char *w = NULL, *p = (char *)"x";
	kos_buf b;

	kos_buf_init(&b, 10);
	CU_ASSERT_EQUAL(kos_buf_append(&b, "0123456789", 10), KOS_OK);
	CU_ASSERT_EQUAL(b.cap, 11);
	CU_ASSERT_EQUAL(kos_buf_append(&b, "x", 1), KOS_E_RANGE);
	CU_ASSERT_EQUAL(b.len, 10);
	CU_ASSERT_STRING_EQUAL(b.p, "0123456789");
	/* sticky: even what would fit now fails */
	CU_ASSERT_EQUAL(kos_buf_append(&b, "", 0), KOS_E_RANGE);
	CU_ASSERT_EQUAL(kos_buf_take(&b, &p, NULL, NULL), KOS_E_RANGE);
	CU_ASSERT_PTR_NULL(p);
	kos_buf_reset(&b);
	CU_ASSERT_EQUAL(b.err, KOS_OK);
	CU_ASSERT_EQUAL(b.len, 0);
	CU_ASSERT_STRING_EQUAL(b.p, "");
	CU_ASSERT_EQUAL(kos_buf_printf(&b, "%s", "0123456789"), KOS_OK);
	kos_buf_reset(&b);
	CU_ASSERT_EQUAL(kos_buf_printf(&b, "%s", "0123456789A"), KOS_E_RANGE);
	CU_ASSERT_EQUAL(b.len, 0);
	CU_ASSERT_STRING_EQUAL(b.p, "");
	/* what the printf that did not fit wrote past the data is wiped too */
	kos_buf_reset(&b);
	CU_ASSERT(memcmp(b.p, "\0\0\0\0\0\0\0\0\0\0\0", 11) == 0);
	CU_ASSERT_EQUAL(kos_buf_append(&b, "01234", 5), KOS_OK);
	CU_ASSERT_EQUAL(kos_buf_reserve(&b, SIZE_MAX, &w), KOS_E_RANGE);
	kos_buf_reset(&b);
	CU_ASSERT_EQUAL(kos_buf_append(&b, "01234", 5), KOS_OK);
	CU_ASSERT_EQUAL(kos_buf_reserve(&b, SIZE_MAX - 3, &w), KOS_E_RANGE);
	kos_buf_reset(&b);
	CU_ASSERT_EQUAL(kos_buf_reserve(&b, 10, &w), KOS_OK);
	CU_ASSERT_EQUAL(kos_buf_reserve(&b, 11, &w), KOS_E_RANGE);
	kos_buf_reset(&b);
	/* reserve, write, advance; advance past what there is changes nothing */
	CU_ASSERT_EQUAL(kos_buf_reserve(&b, 3, &w), KOS_OK);
	memcpy(w, "xyz", 3);
	kos_buf_advance(&b, 3);
	CU_ASSERT_STRING_EQUAL(b.p, "xyz");
	kos_buf_advance(&b, 100);
	CU_ASSERT_EQUAL(b.len, 3);
	CU_ASSERT_EQUAL(kos_buf_fail(&b, KOS_E_NOMEM), KOS_E_NOMEM);
	CU_ASSERT_EQUAL(kos_buf_fail(&b, KOS_E_PARSE), KOS_E_NOMEM);
	CU_ASSERT_EQUAL(kos_buf_append(&b, "a", 1), KOS_E_NOMEM);
	kos_buf_uninit(&b);
	/* a maximum of SIZE_MAX leaves room for the NUL */
	kos_buf_init(&b, SIZE_MAX);
	CU_ASSERT_EQUAL(kos_buf_append(&b, "a", 1), KOS_OK);
	CU_ASSERT_EQUAL(kos_buf_reserve(&b, SIZE_MAX - 1, &w), KOS_E_RANGE);
	kos_buf_uninit(&b);
	kos_buf_init(&b, 0);
	CU_ASSERT_EQUAL(kos_buf_append(&b, "a", 1), KOS_E_RANGE);
	kos_buf_uninit(&b);
}

/* Growth, reset and uninit leave no copy of the data behind. */
static void test_buf_wipe(void)
{
	char secret[200];
	volatile char *p;
	kos_buf b;
	size_t i, nonzero = 0;

	/* the watch itself sees an unwiped block (volatile: a memset just
	 * before free() is a dead store the compiler may drop) */
	p = malloc(16);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	for (i = 0; i < 16; i++)
		p[i] = 'S';
	watch((const void *)p, 16);
	free((void *)p);
	CU_ASSERT_EQUAL(watched_wiped, 0);

	memset(secret, 'S', sizeof(secret));
	kos_buf_init(&b, 1 << 20);
	CU_ASSERT_EQUAL(kos_buf_append(&b, secret, sizeof(secret)), KOS_OK);
	watch(b.p, b.cap);
	CU_ASSERT_EQUAL(kos_buf_append(&b, secret, sizeof(secret)), KOS_OK); /* grows */
	CU_ASSERT_EQUAL(watched_wiped, 1);
	watch(b.p, b.cap);
	CU_ASSERT_EQUAL(kos_buf_printf(&b, "%0*d", 4000, 7), KOS_OK); /* grows */
	CU_ASSERT_EQUAL(watched_wiped, 1);
	CU_ASSERT_EQUAL(b.len, 4400);
	kos_buf_reset(&b);
	for (i = 0; i <= 4400; i++)
		nonzero += b.p[i] != 0;
	CU_ASSERT_EQUAL(nonzero, 0);
	CU_ASSERT_EQUAL(kos_buf_append(&b, secret, sizeof(secret)), KOS_OK);
	watch(b.p, b.cap);
	kos_buf_uninit(&b);
	CU_ASSERT_EQUAL(watched_wiped, 1);
	CU_ASSERT_PTR_NULL(b.p);
}

/* A stream read to its end, up to the maximum and not a byte more. */
static void test_buf_read(void)
{
	static char data[10000];
	size_t i;
	kos_buf b;
	FILE *f;

	for (i = 0; i < sizeof(data); i++)
		data[i] = (char)('a' + i % 23);
	f = fmemopen(data, sizeof(data), "r");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	kos_buf_init(&b, sizeof(data));
	CU_ASSERT_EQUAL(kos_buf_read(&b, f), KOS_OK);
	CU_ASSERT_EQUAL(b.len, sizeof(data));
	CU_ASSERT(memcmp(b.p, data, sizeof(data)) == 0);
	CU_ASSERT_EQUAL(b.p[b.len], '\0');
	kos_buf_uninit(&b);
	rewind(f);
	kos_buf_init(&b, sizeof(data) - 1);
	CU_ASSERT_EQUAL(kos_buf_read(&b, f), KOS_E_RANGE);
	CU_ASSERT_EQUAL(b.len, sizeof(data) - 1);
	kos_buf_uninit(&b);
	/* appended after what is there */
	rewind(f);
	kos_buf_init(&b, 2 * sizeof(data));
	CU_ASSERT_EQUAL(kos_buf_append(&b, "xy", 2), KOS_OK);
	CU_ASSERT_EQUAL(kos_buf_read(&b, f), KOS_OK);
	CU_ASSERT_EQUAL(b.len, sizeof(data) + 2);
	CU_ASSERT(memcmp(b.p + 2, data, sizeof(data)) == 0);
	/* at the end: nothing more */
	CU_ASSERT_EQUAL(kos_buf_read(&b, f), KOS_OK);
	CU_ASSERT_EQUAL(b.len, sizeof(data) + 2);
	kos_buf_uninit(&b);
	fclose(f);
	f = fmemopen(data, 0, "r");
	if (f != NULL) {
		kos_buf_init(&b, 0);
		CU_ASSERT_EQUAL(kos_buf_read(&b, f), KOS_OK);
		CU_ASSERT_EQUAL(b.len, 0);
		kos_buf_uninit(&b);
		fclose(f);
	}
}

static void test_diag_lines(void)
{
	kos_diag d;
	char *text = NULL;

	kos_diag_init(&d);
	kos_diag_add(&d, "a.conf", 3, "bad %s", "thing");
	kos_diag_add(&d, "a.conf", 7, "worse");
	CU_ASSERT_EQUAL(d.count, 2);
	CU_ASSERT_FALSE(d.oom);
	CU_ASSERT_EQUAL(kos_diag_finish(&d, &text, KOS_E_POLICY), KOS_E_POLICY);
	CU_ASSERT_STRING_EQUAL(text, "a.conf:3: bad thing\na.conf:7: worse\n");
	CU_ASSERT_STRING_EQUAL(kos_last_error(), "a.conf:3: bad thing");
	free(text);
	kos_diag_init(&d);
	CU_ASSERT_EQUAL(kos_diag_finish(&d, &text, KOS_OK), KOS_OK);
	CU_ASSERT_PTR_NULL(text);
}

static size_t unhex(const char *h, uint8_t *out)
{
	size_t n = strlen(h);

	CU_ASSERT_EQUAL_FATAL(kos_hex_decode(h, n, out), KOS_OK);
	return n / 2;
}

/* AES-256 test cases 13, 14 and 16 of the GCM specification (McGrew and
 * Viega, "The Galois/Counter Mode of Operation", the vectors NIST's GCM
 * validation starts from). */
static const struct {
	const char *k, *iv, *p, *a, *c, *t;
} gcm_kat[] = {
	{ "0000000000000000000000000000000000000000000000000000000000000000",
	  "000000000000000000000000", "", "", "", "530f8afbc74536b9a963b4f1c4cb738b" },
	{ "0000000000000000000000000000000000000000000000000000000000000000",
	  "000000000000000000000000", "00000000000000000000000000000000", "",
	  "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919" },
	{ "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
	  "cafebabefacedbaddecaf888",
	  "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
	  "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
	  "feedfacedeadbeeffeedfacedeadbeefabaddad2",
	  "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
	  "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
	  "76fc6ece0f4e1768cddf8853bb2d551b" },
};

static void test_aead_known_answers(void)
{
	uint8_t k[32], iv[12], p[64], a[32], c[64], t[16], out[64], tag[16];
	EVP_CIPHER_CTX *ctx = kos_aead_ctx_new(NULL);
	size_t i, pl, al, split;

	CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
	for (i = 0; i < KOS_ARRAY_SIZE(gcm_kat); i++) {
		unhex(gcm_kat[i].k, k);
		unhex(gcm_kat[i].iv, iv);
		pl = unhex(gcm_kat[i].p, p);
		al = unhex(gcm_kat[i].a, a);
		CU_ASSERT_EQUAL(unhex(gcm_kat[i].c, c), pl);
		unhex(gcm_kat[i].t, t);
		/* the additional data may come in two pieces, split anywhere */
		for (split = 0; split <= al; split++) {
			memset(out, 0, sizeof(out));
			CU_ASSERT_EQUAL(kos_aead_seal(NULL, k, iv, a, split, a + split, al - split, p,
						      pl, out, tag),
					KOS_OK);
			CU_ASSERT(memcmp(out, c, pl) == 0);
			CU_ASSERT(memcmp(tag, t, 16) == 0);
		}
		/* a context of the caller's, used again and again */
		memset(out, 0, sizeof(out));
		CU_ASSERT_EQUAL(kos_aead_open(ctx, k, iv, a, al, NULL, 0, c, pl, t, out), KOS_OK);
		CU_ASSERT(memcmp(out, p, pl) == 0);
		/* in place */
		memcpy(out, p, pl);
		CU_ASSERT_EQUAL(kos_aead_seal(ctx, k, iv, NULL, 0, a, al, out, pl, out, tag),
				KOS_OK);
		CU_ASSERT(memcmp(out, c, pl) == 0);
		CU_ASSERT(memcmp(tag, t, 16) == 0);
	}
	EVP_CIPHER_CTX_free(ctx);
}

/* The caller's tag length: the tag is the full one's first taglen bytes
 * (SP 800-38D 5.2.1.2), on the specification's vectors; every changed bit
 * and a tag outside 12..16 bytes are refused; the parameter checks name
 * what is wrong. */
static void test_aead_tag_lengths(void)
{
	uint8_t k[32], iv[12], p[64], a[32], c[64], t[16], out[64], tag[16], bad[16];
	size_t i, pl, al, taglen;

	for (i = 0; i < KOS_ARRAY_SIZE(gcm_kat); i++) {
		unhex(gcm_kat[i].k, k);
		unhex(gcm_kat[i].iv, iv);
		pl = unhex(gcm_kat[i].p, p);
		al = unhex(gcm_kat[i].a, a);
		unhex(gcm_kat[i].c, c);
		unhex(gcm_kat[i].t, t);
		for (taglen = KOS_GCM_TAG_MIN; taglen <= KOS_GCM_TAG_MAX; taglen++) {
			memset(tag, 0, sizeof(tag));
			CU_ASSERT_EQUAL(kos_aead_seal_tag(NULL, k, iv, a, al, p, pl, out, tag,
							  taglen),
					KOS_OK);
			CU_ASSERT(memcmp(out, c, pl) == 0);
			CU_ASSERT(memcmp(tag, t, taglen) == 0);
			CU_ASSERT_EQUAL(kos_aead_open_tag(NULL, k, iv, a, al, c, pl, t, taglen, out),
					KOS_OK);
			CU_ASSERT(memcmp(out, p, pl) == 0);
			memcpy(bad, t, taglen);
			bad[taglen - 1] ^= 0x01;
			CU_ASSERT_EQUAL(kos_aead_open_tag(NULL, k, iv, a, al, c, pl, bad, taglen,
							  out),
					KOS_E_INTEGRITY);
		}
		/* what OpenSSL would accept and SP 800-38D does not */
		CU_ASSERT_EQUAL(kos_aead_open_tag(NULL, k, iv, a, al, c, pl, t, 8, out),
				KOS_E_INTEGRITY);
		CU_ASSERT_EQUAL(kos_aead_open_tag(NULL, k, iv, a, al, c, pl, t, 4, out),
				KOS_E_INTEGRITY);
		CU_ASSERT_EQUAL(kos_aead_seal_tag(NULL, k, iv, a, al, p, pl, out, tag, 8),
				KOS_E_CRYPTO);
	}
	CU_ASSERT_EQUAL(kos_aead_gcm_check(12, 0, 16, 0, false), KOS_OK);
	CU_ASSERT_EQUAL(kos_aead_gcm_check(12, KOS_GCM_AAD_MAX, 12, 12, true), KOS_OK);
	CU_ASSERT_EQUAL(kos_aead_gcm_check(16, 0, 16, 0, false), KOS_E_INVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "IV must be 12 bytes"));
	CU_ASSERT_EQUAL(kos_aead_gcm_check(12, 0, 8, 0, false), KOS_E_INVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "tag length"));
	CU_ASSERT_EQUAL(kos_aead_gcm_check(12, KOS_GCM_AAD_MAX + 1, 16, 0, false), KOS_E_INVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "additional data"));
	CU_ASSERT_EQUAL(kos_aead_gcm_check(12, 0, 16, 15, true), KOS_E_INVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "shorter than its"));
	CU_ASSERT_EQUAL(kos_aead_gcm_check(12, 0, 16, KOS_GCM_MAX_PLAINTEXT + 1, false),
			KOS_E_INVALID);
}

static void test_aead_refusals(void)
{
	uint8_t k[32], iv[12], p[64], a[32], c[64], t[16], out[64], bad[64];
	EVP_CIPHER_CTX *ctx;
	size_t pl, al, i;

	unhex(gcm_kat[2].k, k);
	unhex(gcm_kat[2].iv, iv);
	pl = unhex(gcm_kat[2].p, p);
	al = unhex(gcm_kat[2].a, a);
	unhex(gcm_kat[2].c, c);
	unhex(gcm_kat[2].t, t);
	/* any changed bit of ciphertext, tag, additional data or IV fails,
	 * and what was decrypted is wiped */
	for (i = 0; i < pl + 16 + al + 12; i++) {
		uint8_t cc[64], tt[16], aa[32], ii[12];

		memcpy(cc, c, pl);
		memcpy(tt, t, 16);
		memcpy(aa, a, al);
		memcpy(ii, iv, 12);
		if (i < pl)
			cc[i] ^= 0x01;
		else if (i < pl + 16)
			tt[i - pl] ^= 0x80;
		else if (i < pl + 16 + al)
			aa[i - pl - 16] ^= 0x10;
		else
			ii[i - pl - 16 - al] ^= 0x02;
		memset(out, 0x55, sizeof(out));
		CU_ASSERT_EQUAL(kos_aead_open(NULL, k, ii, aa, al, NULL, 0, cc, pl, tt, out),
				KOS_E_INTEGRITY);
		memset(bad, 0, sizeof(bad));
		CU_ASSERT(memcmp(out, bad, pl) == 0);
	}
	/* the additional data's pieces are not interchangeable with the text */
	CU_ASSERT_EQUAL(kos_aead_open(NULL, k, iv, a, al - 1, NULL, 0, c, pl, t, out),
			KOS_E_INTEGRITY);
	/* no key and no context */
	CU_ASSERT_EQUAL(kos_aead_seal(NULL, NULL, iv, NULL, 0, NULL, 0, p, pl, out, t), KOS_E_CRYPTO);
	/* a key given with the caller's context is not left in it, while a
	 * context keyed once keeps its key */
	ctx = kos_aead_ctx_new(NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
	CU_ASSERT_EQUAL(kos_aead_open(ctx, k, iv, a, al, NULL, 0, c, pl, t, out), KOS_OK);
	CU_ASSERT_EQUAL(kos_aead_open(ctx, NULL, iv, a, al, NULL, 0, c, pl, t, out),
			KOS_E_INTEGRITY);
	EVP_CIPHER_CTX_free(ctx);
	ctx = kos_aead_ctx_new(k);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
	CU_ASSERT_EQUAL(kos_aead_open(ctx, NULL, iv, a, al, NULL, 0, c, pl, t, out), KOS_OK);
	CU_ASSERT(memcmp(out, p, pl) == 0);
	CU_ASSERT_EQUAL(kos_aead_open(ctx, NULL, iv, a, al, NULL, 0, c, pl, t, out), KOS_OK);
	EVP_CIPHER_CTX_free(ctx);
}

/* RFC 4648 section 10's vectors, in both alphabets (base64url unpadded). */
static void test_b64_encode_vectors(void)
{
	static const char *const vec[][3] = {
		{ "", "", "" },
		{ "f", "Zg==", "Zg" },
		{ "fo", "Zm8=", "Zm8" },
		{ "foo", "Zm9v", "Zm9v" },
		{ "foob", "Zm9vYg==", "Zm9vYg" },
		{ "fooba", "Zm9vYmE=", "Zm9vYmE" },
		{ "foobar", "Zm9vYmFy", "Zm9vYmFy" },
	};
	static const uint8_t top[] = { 0xfb, 0xff, 0xbf, 0xf8 };
	char out[16];
	size_t i, n;

	for (i = 0; i < KOS_ARRAY_SIZE(vec); i++) {
		n = strlen(vec[i][0]);
		CU_ASSERT_EQUAL(kos_b64_len(n), strlen(vec[i][1]));
		CU_ASSERT_EQUAL(kos_b64url_len(n), strlen(vec[i][2]));
		memset(out, 'x', sizeof(out));
		CU_ASSERT_EQUAL(kos_b64_encode((const uint8_t *)vec[i][0], n, out, sizeof(out)),
				KOS_OK);
		CU_ASSERT_STRING_EQUAL(out, vec[i][1]);
		memset(out, 'x', sizeof(out));
		CU_ASSERT_EQUAL(kos_b64url_encode((const uint8_t *)vec[i][0], n, out, sizeof(out)),
				KOS_OK);
		CU_ASSERT_STRING_EQUAL(out, vec[i][2]);
	}
	/* 62 and 63, the characters where the alphabets differ */
	CU_ASSERT_EQUAL(kos_b64_encode(top, sizeof(top), out, sizeof(out)), KOS_OK);
	CU_ASSERT_STRING_EQUAL(out, "+/+/+A==");
	CU_ASSERT_EQUAL(kos_b64url_encode(top, sizeof(top), out, sizeof(out)), KOS_OK);
	CU_ASSERT_STRING_EQUAL(out, "-_-_-A");
	/* the output must hold the text and its NUL */
	CU_ASSERT_EQUAL(kos_b64_encode((const uint8_t *)"foob", 4, out, 8), KOS_E_RANGE);
	CU_ASSERT_EQUAL(kos_b64_encode((const uint8_t *)"foob", 4, out, 9), KOS_OK);
	CU_ASSERT_EQUAL(kos_b64url_encode((const uint8_t *)"foob", 4, out, 6), KOS_E_RANGE);
	CU_ASSERT_EQUAL(kos_b64url_encode((const uint8_t *)"foob", 4, out, 7), KOS_OK);
	CU_ASSERT_EQUAL(kos_b64_encode((const uint8_t *)"", 0, out, 0), KOS_E_RANGE);
	/* lengths that would not fit a size_t */
	CU_ASSERT_EQUAL(kos_b64_len(SIZE_MAX), SIZE_MAX);
	CU_ASSERT_EQUAL(kos_b64url_len(SIZE_MAX), SIZE_MAX);
	CU_ASSERT_EQUAL(kos_b64_len(SIZE_MAX / 4 * 3), SIZE_MAX);
	CU_ASSERT_EQUAL(kos_b64_encode((const uint8_t *)"", SIZE_MAX, out, sizeof(out)),
			KOS_E_RANGE);
}

/* Every value of every position, against OpenSSL's encoder, and back. */
static void test_b64_encode_matches(void)
{
	uint8_t raw[67], back[67];
	char ours[96], url[96], want[96];
	size_t len, i, j, n;

	for (i = 0; i < 256; i++) {
		for (len = 1; len <= sizeof(raw); len += 1 + (len > 6) * 7) {
			for (j = 0; j < len; j++)
				raw[j] = (uint8_t)(i * 7 + j * 131 + (j == len - 1 ? i : 0));
			raw[len - 1] = (uint8_t)i;
			EVP_EncodeBlock((unsigned char *)want, raw, (int)len);
			CU_ASSERT_EQUAL_FATAL(kos_b64_encode(raw, len, ours, sizeof(ours)), KOS_OK);
			CU_ASSERT_STRING_EQUAL_FATAL(ours, want);
			CU_ASSERT_EQUAL_FATAL(kos_b64url_encode(raw, len, url, sizeof(url)), KOS_OK);
			for (j = 0; want[j] != '\0' && want[j] != '='; j++)
				want[j] = want[j] == '+' ? '-' : want[j] == '/' ? '_' : want[j];
			want[j] = '\0';
			CU_ASSERT_STRING_EQUAL_FATAL(url, want);
			n = sizeof(back);
			CU_ASSERT_EQUAL_FATAL(kos_b64_decode(ours, strlen(ours), back, &n), KOS_OK);
			CU_ASSERT_FATAL(n == len && memcmp(back, raw, len) == 0);
			n = sizeof(back);
			CU_ASSERT_EQUAL_FATAL(kos_b64url_decode(url, strlen(url), back, &n), KOS_OK);
			CU_ASSERT_FATAL(n == len && memcmp(back, raw, len) == 0);
			CU_ASSERT_TRUE(kos_b64url_is(url, strlen(url)));
		}
	}
}

/* base64url's canonical form only: no padding, no other alphabet, no
 * 4n+1 length, no set unused bits; out is wiped on a refusal. */
static void test_b64url_refusals(void)
{
	static const char *const bad[] = {
		"Zg==", "Zg=", "Z", "Zm9vY", "Zh", "Zm9", "Zm+v", "Zm/v", "Zm9v\n", " Zm9", "Zm 9",
		"=Zm9", "Zm9v=", "\x80m9v", "Zm9vYm$",
	};
	uint8_t buf[16], zero[16] = { 0 };
	size_t i, n;

	for (i = 0; i < KOS_ARRAY_SIZE(bad); i++) {
		n = sizeof(buf);
		memset(buf, 0x55, sizeof(buf));
		CU_ASSERT_EQUAL(kos_b64url_decode(bad[i], strlen(bad[i]), buf, &n), KOS_E_PARSE);
		CU_ASSERT_EQUAL(n, sizeof(buf));
		if (strlen(bad[i]) % 4 != 1)
			CU_ASSERT(memcmp(buf, zero, strlen(bad[i]) / 4 * 3) == 0);
	}
	n = sizeof(buf);
	CU_ASSERT_EQUAL(kos_b64url_decode("Zm9v", 4, buf, &n), KOS_OK);
	CU_ASSERT_EQUAL(n, 3);
	n = 2;
	CU_ASSERT_EQUAL(kos_b64url_decode("Zm9v", 4, buf, &n), KOS_E_RANGE);
	n = sizeof(buf);
	CU_ASSERT_EQUAL(kos_b64url_decode("", 0, buf, &n), KOS_OK);
	CU_ASSERT_EQUAL(n, 0);
	n = sizeof(buf);
	CU_ASSERT_EQUAL(kos_b64url_decode("Zm+v", 4, buf, &n), KOS_E_PARSE);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "character 2"));
	CU_ASSERT_TRUE(kos_b64url_is("azAZ09-_", 8));
	CU_ASSERT_FALSE(kos_b64url_is("azAZ09+_", 8));
	CU_ASSERT_FALSE(kos_b64url_is("azAZ09-=", 8));
	CU_ASSERT_FALSE(kos_b64url_is("azAZ09-_x", 8));
	CU_ASSERT_FALSE(kos_b64url_is("azAZ", 8));
}

static void test_time_round_trip(void)
{
	static const struct {
		int64_t secs;
		const char *text;
	} vec[] = {
		{ 0, "1970-01-01T00:00:00Z" },
		{ 1796637600, "2026-12-07T10:00:00Z" },
		{ 951868799, "2000-02-29T23:59:59Z" },
		{ 951868800, "2000-03-01T00:00:00Z" },
		{ 4107542400, "2100-03-01T00:00:00Z" },
		{ 253402300799, "9999-12-31T23:59:59Z" },
	};
	char buf[KOS_TIME_LEN];
	kos_usec t;
	int64_t s;
	size_t i;

	for (i = 0; i < KOS_ARRAY_SIZE(vec); i++) {
		CU_ASSERT_EQUAL(kos_time_format(vec[i].secs * KOS_USEC_PER_SEC, buf, sizeof(buf)),
				KOS_OK);
		CU_ASSERT_STRING_EQUAL(buf, vec[i].text);
		t = -1;
		CU_ASSERT_EQUAL(kos_time_parse(vec[i].text, &t), KOS_OK);
		CU_ASSERT_EQUAL(t, vec[i].secs * KOS_USEC_PER_SEC);
	}
	/* to the second, truncated */
	CU_ASSERT_EQUAL(kos_time_format(1796637600 * KOS_USEC_PER_SEC + 999999, buf, sizeof(buf)),
			KOS_OK);
	CU_ASSERT_STRING_EQUAL(buf, "2026-12-07T10:00:00Z");
	/* against the C library, from 1970 to past 2400, at odd seconds of
	 * the day: both ways */
	for (s = 0; s < INT64_C(14000000000); s += INT64_C(86400) * 13 + 3607) {
		time_t tt = (time_t)s;
		struct tm tm;
		char want[64];

		CU_ASSERT_FATAL(gmtime_r(&tt, &tm) != NULL);
		strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%SZ", &tm);
		CU_ASSERT_EQUAL_FATAL(kos_time_format(s * KOS_USEC_PER_SEC, buf, sizeof(buf)), KOS_OK);
		CU_ASSERT_STRING_EQUAL_FATAL(buf, want);
		CU_ASSERT_EQUAL_FATAL(kos_time_parse(want, &t), KOS_OK);
		CU_ASSERT_EQUAL_FATAL(t, s * KOS_USEC_PER_SEC);
	}
}

static void test_time_refusals(void)
{
	static const char *const bad[] = {
		"2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z", "2026-12-07 10:00",
		"2026-12-07 10:00:00Z", "2026-12-07T10:00:00Zjunk", "2026-12-07T10:00:00Z ",
		" 2026-12-07T10:00:00Z", "2026-12-07T10:00:00", "2026-12-07T10:00:00z",
		"2026-12-07t10:00:00Z", "2026-12-07T10:00:00.5Z", "2026-12-07T10:00:00+00:00",
		"10000-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "0000-01-01T00:00:00Z",
		"-001-01-01T00:00:00Z", "+2026-12-07T10:00:00Z", "2026-02-29T00:00:00Z",
		"2100-02-29T00:00:00Z", "2026-04-31T00:00:00Z", "2026-12-00T00:00:00Z",
		"2026-12-32T00:00:00Z", "2026-12-07T24:00:00Z", "2026-12-07T10:60:00Z",
		"2026-12-07T10:00:60Z", "2026-1-07T10:00:00Z", "2026-12-7T10:00:00Z",
		"2026-12-07T1:00:00Z", "20261207T100000Z", "2026-12-07", "", "@1796637600",
		"2026-12-0xT10:00:00Z", "2026-12-07T10:0 :00Z",
	};
	char buf[KOS_TIME_LEN + 4];
	kos_usec t;
	size_t i;

	for (i = 0; i < KOS_ARRAY_SIZE(bad); i++) {
		t = 42;
		CU_ASSERT_EQUAL(kos_time_parse(bad[i], &t), KOS_E_PARSE);
		CU_ASSERT_EQUAL(t, 42);
		CU_ASSERT(kos_last_error()[0] != '\0');
	}
	CU_ASSERT_EQUAL(kos_time_parse(NULL, &t), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_time_parse("2024-02-29T12:00:00Z", &t), KOS_OK);
	CU_ASSERT_EQUAL(kos_time_parse("2026-12-07T10:00:00Z\n", &t), KOS_E_PARSE);
	/* out of range, or no room: nothing written */
	memset(buf, 'x', sizeof(buf));
	CU_ASSERT_EQUAL(kos_time_format(-1, buf, sizeof(buf)), KOS_E_RANGE);
	CU_ASSERT_EQUAL(kos_time_format(INT64_C(253402300800) * KOS_USEC_PER_SEC, buf,
					sizeof(buf)),
			KOS_E_RANGE);
	CU_ASSERT_EQUAL(kos_time_format(INT64_MAX, buf, sizeof(buf)), KOS_E_RANGE);
	CU_ASSERT_EQUAL(kos_time_format(0, buf, KOS_TIME_LEN - 1), KOS_E_RANGE);
	CU_ASSERT_EQUAL(buf[0], 'x');
	CU_ASSERT_EQUAL(kos_time_format(0, buf, KOS_TIME_LEN), KOS_OK);
	CU_ASSERT_STRING_EQUAL(buf, "1970-01-01T00:00:00Z");
}

int main(void)
{
	static const struct kos_test_case cases[] = {
		KOS_TEST(test_duration_units),
		KOS_TEST(test_duration_refusals),
		KOS_TEST(test_duration_format),
		KOS_TEST(test_hex_round_trip),
		KOS_TEST(test_hex_refusals),
		KOS_TEST(test_strerror_and_detail),
		KOS_TEST(test_config_load),
		KOS_TEST(test_config_refusals),
		KOS_TEST(test_config_listen),
		KOS_TEST(test_config_default_path),
		KOS_TEST(test_read_file_cap),
		KOS_TEST(test_b64_round_trip),
		KOS_TEST(test_b64_refusals),
		KOS_TEST(test_b64_encode_vectors),
		KOS_TEST(test_b64_encode_matches),
		KOS_TEST(test_b64url_refusals),
		KOS_TEST(test_secmem_alloc_free),
		KOS_TEST(test_secmem_guards),
		KOS_TEST(test_buf_append_and_take),
		KOS_TEST(test_buf_bounds),
		KOS_TEST(test_buf_wipe),
		KOS_TEST(test_buf_read),
		KOS_TEST(test_diag_lines),
		KOS_TEST(test_aead_known_answers),
		KOS_TEST(test_aead_tag_lengths),
		KOS_TEST(test_aead_refusals),
		KOS_TEST(test_time_round_trip),
		KOS_TEST(test_time_refusals),
	};

	return kos_test_run("util", NULL, NULL, cases, KOS_ARRAY_SIZE(cases));
}
