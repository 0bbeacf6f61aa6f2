/* Tests of the HSM backend layer against real SoftHSM tokens: kos_devinit,
 * token settings in kos.conf, opening tokens, PIN sources, pooled sessions,
 * data objects, failures named by token, per-token statistics. */
#include "config.h"

#include "kos/hsm.h"
#include "kos/internal.h"
#include "tests/kos-test.h"

#include <dirent.h>
#include <openssl/crypto.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define N_TOKENS (KOS_DEVINIT_KMS_DEFAULT + 2 + KOS_DEVINIT_TRUSTNODES)

static char inst[512];      /* the installation every test uses */
static char inst_conf[600]; /* its kos.conf */

static const char *write_file(const char *name, const char *text, mode_t mode)
{
	const char *p = kos_test_path(name);
	FILE *f;

	unlink(p);
	f = fopen(p, "w");
	CU_ASSERT_FATAL(f != NULL);
	fputs(text, f);
	fclose(f);
	chmod(p, mode);
	return p;
}

static const char *policy_src(void)
{
	return kos_test_srcpath("policy/default.policy");
}

/* A kos.conf for inst's store, policy and SoftHSM with the given tokens. */
static const char *write_conf(const char *name, const char *tokens)
{
	char text[8192];

	snprintf(text, sizeof(text),
		 "store = \"%s/state.db\";\npolicy = \"%s/kos.policy\";\n"
		 "environment = { SOFTHSM2_CONF = \"%s/softhsm2.conf\"; };\n"
		 "tokens = (\n%s\n);\n",
		 inst, inst, inst, tokens);
	return write_file(name, text, 0644);
}

/* One token entry for inst's token "kos-LABEL" with a PIN source. */
static const char *entry(const char *name, const char *label, const char *pin)
{
	static char buf[8][1024];
	static unsigned next;
	char *p = buf[next++ % 8];

	snprintf(p, sizeof(buf[0]),
		 "{ name = \"%s\"; role = \"kms\"; module = \"%s\"; uri = \"pkcs11:token=kos-%s\"; "
		 "pin = \"%s\"; }",
		 name, KOS_SOFTHSM_MODULE, label, pin);
	return p;
}

static const char *inst_pin(const char *name)
{
	static char buf[4][700];
	static unsigned next;
	char *p = buf[next++ % 4];

	snprintf(p, sizeof(buf[0]), "file:%s/pins/%s.pin", inst, name);
	return p;
}

static kos_config *load(const char *path)
{
	kos_config *conf = NULL;
	char *diag = NULL;

	if (kos_config_load(path, &conf, &diag) != KOS_OK)
		fprintf(stderr, "%s: %s\n", path, diag ? diag : kos_last_error());
	kos_free(diag);
	return conf;
}

/* Opens path; on failure returns NULL with *rv set. */
static kos_hsm *open_path(const char *path, unsigned flags, kos_rv *rvp)
{
	kos_config *conf = load(path);
	kos_hsm *hsm = NULL;
	kos_rv rv;

	if (conf == NULL) {
		*rvp = KOS_E_POLICY;
		return NULL;
	}
	rv = kos_hsm_open(conf, flags, &hsm);
	kos_config_free(conf);
	if (rvp != NULL)
		*rvp = rv;
	return hsm;
}

static int suite_init(void)
{
	snprintf(inst, sizeof(inst), "%s/inst", kos_test_tmpdir());
	snprintf(inst_conf, sizeof(inst_conf), "%s/kos.conf", inst);
	if (kos_devinit(inst, 0, policy_src(), NULL) != KOS_OK) {
		fprintf(stderr, "kos_devinit: %s\n", kos_last_error());
		return 1;
	}
	return 0;
}

static mode_t mode_of(const char *path)
{
	struct stat sb;

	if (stat(path, &sb) != 0)
		return (mode_t)-1;
	return sb.st_mode & 07777;
}

/* --- kos_devinit ---------------------------------------------------------- */

static void test_devinit_installation(void)
{
	static const char *const names[N_TOKENS] = { "kms1",   "kms2",   "kms3",   "kms4",
						     "kms5",   "signer", "ca",     "trust1",
						     "trust2", "trust3", "trust4" };
	static const kos_token_role roles[N_TOKENS] = {
		KOS_TOKEN_ROLE_KMS,	  KOS_TOKEN_ROLE_KMS,	    KOS_TOKEN_ROLE_KMS,
		KOS_TOKEN_ROLE_KMS,	  KOS_TOKEN_ROLE_KMS,	    KOS_TOKEN_ROLE_SIGNER,
		KOS_TOKEN_ROLE_CA,	  KOS_TOKEN_ROLE_TRUSTNODE, KOS_TOKEN_ROLE_TRUSTNODE,
		KOS_TOKEN_ROLE_TRUSTNODE, KOS_TOKEN_ROLE_TRUSTNODE,
	};
	kos_config *conf = load(inst_conf);
	kos_store *st = NULL;
	char path[800], expect[800];
	kos_token_role role;
	size_t i;

	CU_ASSERT_PTR_NOT_NULL_FATAL(conf);
	CU_ASSERT_EQUAL_FATAL(kos_config_token_count(conf), N_TOKENS);
	for (i = 0; i < N_TOKENS; i++) {
		CU_ASSERT_STRING_EQUAL(kos_config_token_get0_name(conf, i), names[i]);
		CU_ASSERT_EQUAL(kos_config_token_get_role(conf, i, &role), KOS_OK);
		CU_ASSERT_EQUAL(role, roles[i]);
		snprintf(expect, sizeof(expect), "pkcs11:token=kos-%s", names[i]);
		CU_ASSERT_STRING_EQUAL(kos_config_token_get0_uri(conf, i), expect);
		snprintf(expect, sizeof(expect), "file:%s/pins/%s.pin", inst, names[i]);
		CU_ASSERT_STRING_EQUAL(kos_config_token_get0_pin(conf, i), expect);
		CU_ASSERT_STRING_EQUAL(kos_config_token_get0_module(conf, i), KOS_SOFTHSM_MODULE);
		/* PINs: owner only */
		snprintf(path, sizeof(path), "%s/pins/%s.pin", inst, names[i]);
		CU_ASSERT_EQUAL(mode_of(path), 0600);
		snprintf(path, sizeof(path), "%s/pins/%s.so-pin", inst, names[i]);
		CU_ASSERT_EQUAL(mode_of(path), 0600);
	}
	snprintf(path, sizeof(path), "%s/pins", inst);
	CU_ASSERT_EQUAL(mode_of(path), 0700);
	CU_ASSERT_EQUAL(mode_of(inst), 0700);
	/* absolute paths everywhere, the environment naming its SoftHSM */
	CU_ASSERT_EQUAL_FATAL(kos_config_env_count(conf), 1);
	CU_ASSERT_STRING_EQUAL(kos_config_env_get0_name(conf, 0), "SOFTHSM2_CONF");
	snprintf(expect, sizeof(expect), "%s/softhsm2.conf", inst);
	CU_ASSERT_STRING_EQUAL(kos_config_env_get0_value(conf, 0), expect);
	snprintf(expect, sizeof(expect), "%s/kos.policy", inst);
	CU_ASSERT_STRING_EQUAL(kos_config_get0_policy(conf), expect);
	/* the store exists and opens */
	CU_ASSERT_EQUAL(kos_store_open(kos_config_get0_store(conf), &st), KOS_OK);
	kos_store_free(st);
	kos_config_free(conf);
}

static void test_devinit_refuses_existing(void)
{
	char before[64] = "", after[64] = "", path[800];
	FILE *f;

	snprintf(path, sizeof(path), "%s/pins/kms1.pin", inst);
	f = fopen(path, "r");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_PTR_NOT_NULL(fgets(before, sizeof(before), f));
	fclose(f);
	CU_ASSERT_EQUAL(kos_devinit(inst, 0, policy_src(), NULL), KOS_E_EXISTS);
	CU_ASSERT(strstr(kos_last_error(), "kos.conf") != NULL);
	/* nothing was touched */
	f = fopen(path, "r");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_PTR_NOT_NULL(fgets(after, sizeof(after), f));
	fclose(f);
	CU_ASSERT_STRING_EQUAL(before, after);
	CU_ASSERT(access(inst_conf, R_OK) == 0);
}

static void test_devinit_refusals_clean_up(void)
{
	const char *dir = kos_test_path("inst-bad");
	const char *junk = write_file("not-a-module.so", "not an ELF file\n", 0644);
	struct stat sb;

	CU_ASSERT_EQUAL(kos_devinit(dir, 1, policy_src(), NULL), KOS_E_RANGE);
	CU_ASSERT_EQUAL(kos_devinit(dir, 256, policy_src(), NULL), KOS_E_RANGE);
	CU_ASSERT_EQUAL(kos_devinit(dir, 0, policy_src(), "relative/lib.so"), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_devinit(dir, 0, policy_src(), "/nonexistent/lib.so"), KOS_E_IO);
	CU_ASSERT_EQUAL(kos_devinit(NULL, 0, policy_src(), NULL), KOS_E_INVALID);
	/* a bad policy: refused with its line, nothing left behind */
	CU_ASSERT_EQUAL(kos_devinit(dir, 0, write_file("bad.policy", "version = 1;\nbogus = 2;\n", 0644),
				    NULL),
			KOS_E_POLICY);
	CU_ASSERT(strstr(kos_last_error(), "bad.policy:") != NULL);
	CU_ASSERT(stat(dir, &sb) != 0 && errno == ENOENT);
	/* failing part-way (the token step) removes what was made */
	CU_ASSERT_EQUAL(kos_devinit(dir, 2, policy_src(), junk), KOS_E_CRYPTO);
	CU_ASSERT(strstr(kos_last_error(), "not-a-module.so") != NULL);
	CU_ASSERT(stat(dir, &sb) != 0 && errno == ENOENT);
	/* an existing directory is kept, and only what was made is removed */
	CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0755), 0);
	write_file("inst-bad/mine", "keep me\n", 0644);
	CU_ASSERT_EQUAL(kos_devinit(dir, 2, policy_src(), junk), KOS_E_CRYPTO);
	CU_ASSERT(stat(kos_test_path("inst-bad/mine"), &sb) == 0);
	CU_ASSERT(stat(kos_test_path("inst-bad/tokens"), &sb) != 0);
	CU_ASSERT(stat(kos_test_path("inst-bad/pins"), &sb) != 0);
	CU_ASSERT(stat(kos_test_path("inst-bad/softhsm2.conf"), &sb) != 0);
	CU_ASSERT(stat(kos_test_path("inst-bad/kos.policy"), &sb) != 0);
}

/* --- kos.conf tokens ------------------------------------------------------- */

static void test_config_tokens(void)
{
	const char *path;
	kos_config *conf;
	kos_token_role role;
	char expect[800];
	size_t i;

	path = write_file("tokens.conf",
			  "store = \"memory:\";\npolicy = \"p\";\n"
			  "environment = { SOFTHSM2_CONF = \"./sub/softhsm2.conf\"; OTHER = \"verbatim\"; "
			  "UP = \"../up\"; };\n"
			  "tokens = (\n"
			  "  { name = \"kms-1_a\"; module = \"/usr/lib/m.so\"; uri = \"pkcs11:token=kos-kms1\";\n"
			  "    pin = \"file:pins/kms1.pin\"; role = \"kms\"; },\n"
			  "  { name = \"ca\"; module = \"/usr/lib/m.so\"; "
			  "uri = \"pkcs11:token=kos-ca;serial=1234\"; pin = \"env:KOS_CA_PIN\"; role = \"ca\"; },\n"
			  "  { name = \"s\"; module = \"/m.so\"; uri = \"pkcs11:manufacturer=SoftHSM%20project\"; "
			  "pin = \"file:/abs/s.pin\"; role = \"signer\"; },\n"
			  "  { name = \"t\"; module = \"/m.so\"; uri = \"pkcs11:model=SoftHSM%20v2\"; "
			  "pin = \"env:T\"; role = \"trustnode\"; }\n"
			  ");\n",
			  0644);
	conf = load(path);
	CU_ASSERT_PTR_NOT_NULL_FATAL(conf);
	CU_ASSERT_EQUAL_FATAL(kos_config_token_count(conf), 4);
	CU_ASSERT_STRING_EQUAL(kos_config_token_get0_name(conf, 0), "kms-1_a");
	CU_ASSERT_STRING_EQUAL(kos_config_token_get0_module(conf, 0), "/usr/lib/m.so");
	CU_ASSERT_STRING_EQUAL(kos_config_token_get0_uri(conf, 0), "pkcs11:token=kos-kms1");
	snprintf(expect, sizeof(expect), "file:%s/pins/kms1.pin", kos_test_tmpdir());
	CU_ASSERT_STRING_EQUAL(kos_config_token_get0_pin(conf, 0), expect);
	CU_ASSERT_STRING_EQUAL(kos_config_token_get0_pin(conf, 1), "env:KOS_CA_PIN");
	CU_ASSERT_STRING_EQUAL(kos_config_token_get0_pin(conf, 2), "file:/abs/s.pin");
	for (i = 0; i < 4; i++) {
		static const kos_token_role want[] = { KOS_TOKEN_ROLE_KMS, KOS_TOKEN_ROLE_CA,
						       KOS_TOKEN_ROLE_SIGNER,
						       KOS_TOKEN_ROLE_TRUSTNODE };

		CU_ASSERT_EQUAL(kos_config_token_get_role(conf, i, &role), KOS_OK);
		CU_ASSERT_EQUAL(role, want[i]);
	}
	CU_ASSERT_PTR_NULL(kos_config_token_get0_name(conf, 4));
	CU_ASSERT_EQUAL(kos_config_token_get_role(conf, 4, &role), KOS_E_RANGE);
	CU_ASSERT_EQUAL(kos_config_token_find(conf, "ca", &i), KOS_OK);
	CU_ASSERT_EQUAL(i, 1);
	CU_ASSERT_EQUAL(kos_config_token_find(conf, "nope", &i), KOS_E_NOTFOUND);
	/* environment: ./ and ../ are paths next to kos.conf, the rest verbatim */
	CU_ASSERT_EQUAL_FATAL(kos_config_env_count(conf), 3);
	CU_ASSERT_STRING_EQUAL(kos_config_env_get0_name(conf, 0), "SOFTHSM2_CONF");
	snprintf(expect, sizeof(expect), "%s/./sub/softhsm2.conf", kos_test_tmpdir());
	CU_ASSERT_STRING_EQUAL(kos_config_env_get0_value(conf, 0), expect);
	CU_ASSERT_STRING_EQUAL(kos_config_env_get0_value(conf, 1), "verbatim");
	snprintf(expect, sizeof(expect), "%s/../up", kos_test_tmpdir());
	CU_ASSERT_STRING_EQUAL(kos_config_env_get0_value(conf, 2), expect);
	CU_ASSERT_PTR_NULL(kos_config_env_get0_name(conf, 3));
	kos_config_free(conf);

	/* no tokens at all is still a good file */
	conf = load(write_file("plain.conf", "store = \"memory:\";\npolicy = \"p\";\n", 0644));
	CU_ASSERT_PTR_NOT_NULL_FATAL(conf);
	CU_ASSERT_EQUAL(kos_config_token_count(conf), 0);
	CU_ASSERT_EQUAL(kos_config_env_count(conf), 0);
	kos_config_free(conf);

	CU_ASSERT_STRING_EQUAL(kos_token_role_name(KOS_TOKEN_ROLE_TRUSTNODE), "trustnode");
	CU_ASSERT_STRING_EQUAL(kos_token_role_name((kos_token_role)9), "?");
	CU_ASSERT_EQUAL(kos_token_role_parse("signer", &role), KOS_OK);
	CU_ASSERT_EQUAL(role, KOS_TOKEN_ROLE_SIGNER);
	CU_ASSERT_EQUAL(kos_token_role_parse("KMS", &role), KOS_E_PARSE);
}

/* diag holds "PATH:LINE: ...text..." */
static int has_line(const char *diag, const char *path, int line, const char *text)
{
	char head[800];
	const char *p = diag;

	snprintf(head, sizeof(head), "%s:%d: ", path, line);
	while (p != NULL && (p = strstr(p, head)) != NULL) {
		const char *end = strchr(p, '\n');

		p += strlen(head);
		if (end != NULL && strstr(p, text) != NULL && strstr(p, text) < end)
			return 1;
	}
	return 0;
}

static void test_config_token_refusals(void)
{
	kos_config *conf = (kos_config *)1;
	char *diag = NULL;
	const char *path;

#define TOK(name, module, uri, pin, role)                                                          \
	"{ name = \"" name "\"; module = \"" module "\"; uri = \"" uri "\"; pin = \"" pin       \
	"\"; role = \"" role "\"; },\n"
	path = write_file("badtokens.conf",
			  "store = \"memory:\";\npolicy = \"p\";\ntokens = (\n"
			  /* 4 */ TOK("a", "/m.so", "http://x", "env:P", "kms")
			  /* 5 */ TOK("b", "/m.so", "pkcs11:token=b", "env:P", "boss")
			  /* 6 */ TOK("a", "/m.so", "pkcs11:token=c", "env:P", "kms")
			  /* 7 */ TOK("d", "/m.so", "pkcs11:token=d", "1234", "kms")
			  /* 8 */ TOK("e", "lib/m.so", "pkcs11:token=e", "env:P", "kms")
			  /* 9 */ TOK("F!", "/m.so", "pkcs11:token=f", "env:P", "kms")
			  /* 10 */ TOK("g", "/m.so", "pkcs11:token=g?pin-value=1234", "env:P", "kms")
			  /* 11 */ TOK("h", "/m.so", "pkcs11:", "env:P", "kms")
			  /* 12 */ "{ name = \"i\"; module = \"/m.so\"; uri = \"pkcs11:token=i\"; "
			  "pin = \"env:1X\"; role = \"kms\"; color = \"red\"; },\n"
			  /* 13 */ "{ name = \"j\"; uri = \"pkcs11:token=j\"; pin = \"env:P\"; "
			  "role = \"kms\"; },\n"
			  /* 14 */ "{ name = \"k\"; module = \"/m.so\"; uri = \"pkcs11:token=%zz\"; "
			  "pin = \"file:\"; role = 3; },\n"
			  /* 15 */ "\"not a group\"\n"
			  ");\n"
			  /* 17 */ "environment = { SOFTHSM2_CONF = 5; };\n",
			  0644);
#undef TOK
	CU_ASSERT_EQUAL(kos_config_load(path, &conf, &diag), KOS_E_POLICY);
	CU_ASSERT_PTR_NULL(conf);
	CU_ASSERT_PTR_NOT_NULL_FATAL(diag);
	CU_ASSERT(has_line(diag, path, 4, "token a: uri:"));
	CU_ASSERT(has_line(diag, path, 5, "token b: role:"));
	CU_ASSERT(has_line(diag, path, 6, "token a: name: used twice"));
	CU_ASSERT(has_line(diag, path, 7, "token d: pin:"));
	CU_ASSERT(has_line(diag, path, 8, "token e: module: must be an absolute path"));
	CU_ASSERT(has_line(diag, path, 9, "name: 1 to 32 of a-z"));
	CU_ASSERT(has_line(diag, path, 10, "token g: uri: must not carry a PIN"));
	CU_ASSERT(has_line(diag, path, 11, "token h: uri: names no token"));
	CU_ASSERT(has_line(diag, path, 12, "token i: pin:"));
	CU_ASSERT(has_line(diag, path, 12,
			   "tokens[8]: color: unknown setting (known here: name, module, uri, "
			   "pin, role)"));
	CU_ASSERT(has_line(diag, path, 13, "token j: module: missing"));
	CU_ASSERT(has_line(diag, path, 14, "token k: uri:"));
	CU_ASSERT(has_line(diag, path, 14, "token k: pin:"));
	CU_ASSERT(has_line(diag, path, 14, "token k: role: must be a string"));
	/* libconfig places a scalar list element on the line where it ends */
	CU_ASSERT(has_line(diag, path, 15, "each entry must be a group") ||
		  has_line(diag, path, 16, "each entry must be a group"));
	CU_ASSERT(has_line(diag, path, 17, "environment: SOFTHSM2_CONF: must be a string"));
	/* a PIN written where a source belongs (or in the URI) is not echoed back */
	CU_ASSERT(strstr(diag, "1234") == NULL);
	kos_free(diag);

	path = write_file("badtokens2.conf",
			  "store = \"memory:\";\npolicy = \"p\";\ntokens = { name = \"a\"; };\n"
			  "environment = ( \"x\" );\n",
			  0644);
	CU_ASSERT_EQUAL(kos_config_load(path, &conf, &diag), KOS_E_POLICY);
	CU_ASSERT_PTR_NOT_NULL_FATAL(diag);
	CU_ASSERT(has_line(diag, path, 3, "tokens: must be a list"));
	CU_ASSERT(has_line(diag, path, 4, "environment: must be a group"));
	kos_free(diag);
}

/* kms (a KMS front's configuration: no store needed) and kms_fronts (where
 * kosd sends clients for each KMS token's shares). */
static void test_config_kms_fronts(void)
{
	kos_config *conf = NULL;
	char *diag = NULL;
	const char *path;
	char want[600];

	path = write_file("fronts.conf",
			  "store = \"memory:\";\npolicy = \"p\";\ntokens = (\n"
			  "{ name = \"k1\"; module = \"/m.so\"; uri = \"pkcs11:token=k1\"; pin = "
			  "\"env:P\"; role = \"kms\"; },\n"
			  "{ name = \"k2\"; module = \"/m.so\"; uri = \"pkcs11:token=k2\"; pin = "
			  "\"env:P\"; role = \"kms\"; },\n"
			  "{ name = \"k3\"; module = \"/m.so\"; uri = \"pkcs11:token=k3\"; pin = "
			  "\"env:P\"; role = \"kms\"; } );\n"
			  "kms_fronts = ( { tokens = [\"k2\"]; address = \"unix:run/kms.sock\"; },\n"
			  "  { tokens = [\"k3\"]; address = \"https://kms.example:8443\"; } );\n",
			  0644);
	CU_ASSERT_EQUAL_FATAL(kos_config_load(path, &conf, &diag), KOS_OK);
	CU_ASSERT_PTR_NULL(kos_config_kms_front(conf, "k1"));
	snprintf(want, sizeof(want), "unix:%.*srun/kms.sock", (int)(strrchr(path, '/') + 1 - path),
		 path);
	CU_ASSERT_STRING_EQUAL(kos_config_kms_front(conf, "k2"), want);
	CU_ASSERT_STRING_EQUAL(kos_config_kms_front(conf, "k3"), "https://kms.example:8443");
	CU_ASSERT_PTR_NULL(kos_config_get0_kms_jwks(conf));
	kos_config_free(conf);
	conf = NULL;

	/* a KMS front: no store, the CA's JWKS */
	path = write_file("kmsfront.conf",
			  "policy = \"p\";\nkms = { jwks = \"ca.jwks\"; };\n", 0644);
	CU_ASSERT_EQUAL_FATAL(kos_config_load(path, &conf, &diag), KOS_OK);
	CU_ASSERT_PTR_NULL(kos_config_get0_store(conf));
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_config_get0_kms_jwks(conf), "/ca.jwks"));
	CU_ASSERT_EQUAL(kos_config_get0_kms_jwks(conf)[0], '/');
	kos_config_free(conf);
	conf = NULL;

	path = write_file("badfronts.conf",
			  "store = \"memory:\";\npolicy = \"p\";\ntokens = (\n"
			  /* 4 */ "{ name = \"k1\"; module = \"/m.so\"; uri = \"pkcs11:token=k1\"; "
			  "pin = \"env:P\"; role = \"kms\"; },\n"
			  /* 5 */ "{ name = \"s1\"; module = \"/m.so\"; uri = \"pkcs11:token=s1\"; "
			  "pin = \"env:P\"; role = \"signer\"; } );\n"
			  /* 6 */ "kms_fronts = ( { tokens = [\"k1\"]; address = \"unix:a.sock\"; },\n"
			  /* 7 */ "  { tokens = [\"k1\"]; address = \"unix:b.sock\"; },\n"
			  /* 8 */ "  { tokens = [\"s1\", \"nope\"]; address = \"unix:c.sock\"; },\n"
			  /* 9 */ "  { tokens = [\"k1\"]; address = \"http://x:80\"; },\n"
			  /* 10 */ "  { tokens = [\"k1\"]; address = \"https://x:80/v1\"; },\n"
			  /* 11 */ "  { tokens = []; address = \"unix:d.sock\"; color = 1; } );\n"
			  /* 12 */ "kms = { keys = \"x\"; };\n",
			  0644);
	CU_ASSERT_EQUAL(kos_config_load(path, &conf, &diag), KOS_E_POLICY);
	CU_ASSERT_PTR_NULL(conf);
	CU_ASSERT_PTR_NOT_NULL_FATAL(diag);
	CU_ASSERT(has_line(diag, path, 7, "kms_fronts: token k1: named by two fronts"));
	CU_ASSERT(has_line(diag, path, 8, "kms_fronts: token s1: not a token with role kms"));
	CU_ASSERT(has_line(diag, path, 8, "kms_fronts: token nope: not a token with role kms"));
	CU_ASSERT(has_line(diag, path, 9, "kms_fronts: address: must be"));
	CU_ASSERT(has_line(diag, path, 10, "kms_fronts: address: must be"));
	CU_ASSERT(has_line(diag, path, 11, "kms_fronts: tokens: must be a non-empty array"));
	CU_ASSERT(has_line(diag, path, 11,
			   "kms_fronts[5]: color: unknown setting (known here: tokens, address)"));
	CU_ASSERT(has_line(diag, path, 12, "kms: keys: unknown setting (known here: jwks)"));
	CU_ASSERT(has_line(diag, path, 12, "kms: jwks: missing"));
	kos_free(diag);

	/* without a kms group the store stays required */
	path = write_file("nostore.conf", "policy = \"p\";\n", 0644);
	CU_ASSERT_EQUAL(kos_config_load(path, &conf, &diag), KOS_E_POLICY);
	CU_ASSERT_PTR_NOT_NULL_FATAL(diag);
	CU_ASSERT_PTR_NOT_NULL(strstr(diag, "store: missing"));
	kos_free(diag);
}

/* --- opening tokens ----------------------------------------------------------- */

static void test_open_finds_every_token(void)
{
	kos_rv rv;
	kos_hsm *hsm = open_path(inst_conf, KOS_HSM_OPEN_STRICT, &rv);
	size_t i, idx;
	int logged_in;

	CU_ASSERT_EQUAL_FATAL(rv, KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_hsm_token_count(hsm), N_TOKENS);
	for (i = 0; i < N_TOKENS; i++) {
		struct kos_hsm_stats st;

		logged_in = -1;
		CU_ASSERT_EQUAL(kos_hsm_token_check(hsm, i, &logged_in), KOS_OK);
		CU_ASSERT_EQUAL(logged_in, 1);
		CU_ASSERT_EQUAL(kos_hsm_token_stats(hsm, i, &st), KOS_OK);
		CU_ASSERT_EQUAL(st.available, 1);
		CU_ASSERT_EQUAL(st.sessions_opened, 1);
		CU_ASSERT_EQUAL(st.logins, 1);
		CU_ASSERT_PTR_NOT_NULL(kos_hsm_get0_funcs(hsm, i));
	}
	CU_ASSERT_EQUAL(kos_hsm_token_find(hsm, "signer", &idx), KOS_OK);
	CU_ASSERT_STRING_EQUAL(kos_hsm_token_get0_name(hsm, idx), "signer");
	CU_ASSERT_EQUAL(kos_hsm_token_role(hsm, idx), KOS_TOKEN_ROLE_SIGNER);
	CU_ASSERT_EQUAL(kos_hsm_token_find(hsm, "nope", &idx), KOS_E_NOTFOUND);
	CU_ASSERT_PTR_NULL(kos_hsm_token_get0_name(hsm, N_TOKENS));
	CU_ASSERT_EQUAL(kos_hsm_token_check(hsm, N_TOKENS, NULL), KOS_E_RANGE);
	kos_hsm_free(hsm);
	kos_hsm_free(NULL);
}

/* --- data objects ---------------------------------------------------------- */

struct labels {
	char seen[8][KOS_HSM_LABEL_MAX + 1];
	size_t n;
	int stop_after;
};

static kos_rv collect(const char *label, void *arg)
{
	struct labels *l = arg;

	if (l->n < 8)
		snprintf(l->seen[l->n], sizeof(l->seen[0]), "%s", label);
	l->n++;
	if (l->stop_after != 0 && (int)l->n >= l->stop_after)
		return KOS_E_BUSY;
	return KOS_OK;
}

static int seen(const struct labels *l, const char *label)
{
	size_t i;

	for (i = 0; i < l->n && i < 8; i++)
		if (strcmp(l->seen[i], label) == 0)
			return 1;
	return 0;
}

static void test_data_round_trip(void)
{
	static const uint8_t bin[] = { 0, 1, 2, 0, 0xff, 0x80, 0 };
	kos_rv rv;
	kos_hsm *hsm = open_path(inst_conf, 0, &rv);
	struct labels l = { 0 };
	uint8_t *data = NULL, *big;
	size_t len = 0, n0 = 0, n = 0, tok = 1;

	CU_ASSERT_EQUAL_FATAL(rv, KOS_OK);
	CU_ASSERT_EQUAL(kos_hsm_token_count_objects(hsm, tok, &n0), KOS_OK);
	CU_ASSERT_EQUAL(kos_hsm_data_put(hsm, tok, "rt/a", bin, sizeof(bin)), KOS_OK);
	CU_ASSERT_EQUAL(kos_hsm_data_put(hsm, tok, "rt/b", "bee", 3), KOS_OK);
	CU_ASSERT_EQUAL(kos_hsm_data_put(hsm, tok, "other/c", "sea", 3), KOS_OK);
	CU_ASSERT_EQUAL(kos_hsm_token_count_objects(hsm, tok, &n), KOS_OK);
	CU_ASSERT_EQUAL(n, n0 + 3);

	CU_ASSERT_EQUAL(kos_hsm_data_get(hsm, tok, "rt/a", &data, &len), KOS_OK);
	CU_ASSERT_EQUAL(len, sizeof(bin));
	CU_ASSERT(data != NULL && memcmp(data, bin, sizeof(bin)) == 0);
	kos_secret_free(data, len);

	/* a label is write-once */
	CU_ASSERT_EQUAL(kos_hsm_data_put(hsm, tok, "rt/a", "x", 1), KOS_E_EXISTS);
	CU_ASSERT(strstr(kos_last_error(), "token kms2:") == kos_last_error());

	/* labels by prefix */
	CU_ASSERT_EQUAL(kos_hsm_data_list(hsm, tok, "rt/", collect, &l), KOS_OK);
	CU_ASSERT_EQUAL(l.n, 2);
	CU_ASSERT(seen(&l, "rt/a") && seen(&l, "rt/b"));
	memset(&l, 0, sizeof(l));
	CU_ASSERT_EQUAL(kos_hsm_data_list(hsm, tok, NULL, collect, &l), KOS_OK);
	CU_ASSERT_EQUAL(l.n, n0 + 3);
	memset(&l, 0, sizeof(l));
	l.stop_after = 1;
	CU_ASSERT_EQUAL(kos_hsm_data_list(hsm, tok, "", collect, &l), KOS_E_BUSY);
	CU_ASSERT_EQUAL(l.n, 1);

	/* the objects are on that token only */
	CU_ASSERT_EQUAL(kos_hsm_data_get(hsm, tok + 1, "rt/a", &data, &len), KOS_E_NOTFOUND);

	/* destroy */
	CU_ASSERT_EQUAL(kos_hsm_data_destroy(hsm, tok, "rt/a"), KOS_OK);
	CU_ASSERT_EQUAL(kos_hsm_data_get(hsm, tok, "rt/a", &data, &len), KOS_E_NOTFOUND);
	CU_ASSERT_PTR_NULL(data);
	CU_ASSERT_EQUAL(len, 0);
	CU_ASSERT(strstr(kos_last_error(), "token kms2:") != NULL);
	CU_ASSERT(strstr(kos_last_error(), "rt/a") != NULL);
	CU_ASSERT_EQUAL(kos_hsm_data_destroy(hsm, tok, "rt/a"), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_hsm_data_put(hsm, tok, "rt/a", "new", 3), KOS_OK);
	CU_ASSERT_EQUAL(kos_hsm_data_get(hsm, tok, "rt/a", &data, &len), KOS_OK);
	CU_ASSERT(len == 3 && memcmp(data, "new", 3) == 0);
	kos_secret_free(data, len);

	/* sizes and labels */
	big = calloc(1, KOS_HSM_DATA_MAX + 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	big[KOS_HSM_DATA_MAX - 1] = 0x5a;
	CU_ASSERT_EQUAL(kos_hsm_data_put(hsm, tok, "rt/big", big, KOS_HSM_DATA_MAX), KOS_OK);
	CU_ASSERT_EQUAL(kos_hsm_data_get(hsm, tok, "rt/big", &data, &len), KOS_OK);
	CU_ASSERT(len == KOS_HSM_DATA_MAX && data[KOS_HSM_DATA_MAX - 1] == 0x5a);
	kos_secret_free(data, len);
	CU_ASSERT_EQUAL(kos_hsm_data_put(hsm, tok, "rt/huge", big, KOS_HSM_DATA_MAX + 1),
			KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_hsm_data_put(hsm, tok, "rt/empty", big, 0), KOS_E_INVALID);
	free(big);
	CU_ASSERT_EQUAL(kos_hsm_data_put(hsm, tok, "", "x", 1), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_hsm_data_put(hsm, tok, "tab\there", "x", 1), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_hsm_data_get(hsm, tok, NULL, &data, &len), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_hsm_data_put(hsm, N_TOKENS, "x", "x", 1), KOS_E_RANGE);

	CU_ASSERT_EQUAL(kos_hsm_data_destroy(hsm, tok, "rt/a"), KOS_OK);
	CU_ASSERT_EQUAL(kos_hsm_data_destroy(hsm, tok, "rt/b"), KOS_OK);
	CU_ASSERT_EQUAL(kos_hsm_data_destroy(hsm, tok, "rt/big"), KOS_OK);
	CU_ASSERT_EQUAL(kos_hsm_data_destroy(hsm, tok, "other/c"), KOS_OK);
	CU_ASSERT_EQUAL(kos_hsm_token_count_objects(hsm, tok, &n), KOS_OK);
	CU_ASSERT_EQUAL(n, n0);
	kos_hsm_free(hsm);

	/* objects are token objects: a new handle (module re-initialised) sees them */
	hsm = open_path(inst_conf, 0, &rv);
	CU_ASSERT_EQUAL_FATAL(rv, KOS_OK);
	CU_ASSERT_EQUAL(kos_hsm_data_put(hsm, tok, "persist", "p", 1), KOS_OK);
	kos_hsm_free(hsm);
	hsm = open_path(inst_conf, 0, &rv);
	CU_ASSERT_EQUAL_FATAL(rv, KOS_OK);
	CU_ASSERT_EQUAL(kos_hsm_data_get(hsm, tok, "persist", &data, &len), KOS_OK);
	kos_secret_free(data, len);
	CU_ASSERT_EQUAL(kos_hsm_data_destroy(hsm, tok, "persist"), KOS_OK);
	kos_hsm_free(hsm);
}

/* The object's attributes as later key code relies on them. */
static void test_data_object_attributes(void)
{
	kos_rv rv;
	kos_hsm *hsm = open_path(inst_conf, 0, &rv);
	CK_OBJECT_CLASS cls = CKO_DATA;
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_LABEL, (void *)"attr", 4 },
	};
	CK_BBOOL token = 0, priv = 0, modifiable = 1;
	char app[16] = "";
	CK_ATTRIBUTE get[] = {
		{ CKA_TOKEN, &token, sizeof(token) },
		{ CKA_PRIVATE, &priv, sizeof(priv) },
		{ CKA_MODIFIABLE, &modifiable, sizeof(modifiable) },
		{ CKA_APPLICATION, app, sizeof(app) - 1 },
	};
	CK_OBJECT_HANDLE obj;
	CK_ULONG n = 0;
	kos_hsm_session s;

	CU_ASSERT_EQUAL_FATAL(rv, KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_hsm_data_put(hsm, 0, "attr", "v", 1), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_hsm_session_get(hsm, 0, &s), KOS_OK);
	CU_ASSERT_EQUAL(s.f->C_FindObjectsInit(s.h, tmpl, 2), CKR_OK);
	CU_ASSERT_EQUAL(s.f->C_FindObjects(s.h, &obj, 1, &n), CKR_OK);
	CU_ASSERT_EQUAL(s.f->C_FindObjectsFinal(s.h), CKR_OK);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	CU_ASSERT_EQUAL(s.f->C_GetAttributeValue(s.h, obj, get, 4), CKR_OK);
	CU_ASSERT_EQUAL(token, CK_TRUE);
	CU_ASSERT_EQUAL(priv, CK_TRUE);
	CU_ASSERT_EQUAL(modifiable, CK_FALSE);
	CU_ASSERT_EQUAL(get[3].ulValueLen, 3);
	CU_ASSERT_STRING_EQUAL(app, "kos");
	kos_hsm_session_put(hsm, &s, CKR_OK);
	CU_ASSERT_EQUAL(kos_hsm_data_destroy(hsm, 0, "attr"), KOS_OK);
	kos_hsm_free(hsm);
}

/* --- finding and destroying ------------------------------------------------ */

static CK_RV count_object(kos_hsm_session *s, CK_OBJECT_HANDLE obj, void *arg)
{
	(void)s;
	(void)obj;
	(*(unsigned *)arg)++;
	return CKR_OK;
}

static CK_RV fail_third(kos_hsm_session *s, CK_OBJECT_HANDLE obj, void *arg)
{
	(void)obj;
	if (++*(unsigned *)arg < 3)
		return CKR_OK;
	s->func = "third";
	return CKR_FUNCTION_FAILED;
}

static CK_RV make_object(kos_hsm_session *s, const char *label)
{
	CK_OBJECT_CLASS cls = CKO_DATA;
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE t[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_APPLICATION, (void *)"kos-test", 8 },
		{ CKA_LABEL, (void *)label, strlen(label) },
		{ CKA_VALUE, (void *)"v", 1 },
	};
	CK_OBJECT_HANDLE obj;

	return s->f->C_CreateObject(s->h, t, KOS_ARRAY_SIZE(t), &obj);
}

/* More objects under one label than the destroy helper takes per batch, so
 * it has to find again; every helper leaves no find behind, which the next
 * C_FindObjectsInit on the same session would refuse. */
static void test_find_and_destroy(void)
{
	kos_rv rv;
	kos_hsm *hsm = open_path(inst_conf, 0, &rv);
	CK_ATTRIBUTE many = { CKA_LABEL, (void *)"fd-many", 7 };
	CK_ATTRIBUTE one = { CKA_LABEL, (void *)"fd-one", 6 };
	CK_ATTRIBUTE none = { CKA_LABEL, (void *)"fd-none", 7 };
	CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE, objs[8];
	unsigned long destroyed = 0;
	unsigned count;
	CK_ULONG n;
	kos_hsm_session s;
	int i, made = 0;

	CU_ASSERT_EQUAL_FATAL(rv, KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_hsm_session_get(hsm, 0, &s), KOS_OK);
	for (i = 0; i < 20; i++)
		made += make_object(&s, "fd-many") == CKR_OK;
	CU_ASSERT_EQUAL_FATAL(made, 20);
	CU_ASSERT_EQUAL_FATAL(make_object(&s, "fd-one"), CKR_OK);

	/* exactly one: none, one, or "more than one" */
	CU_ASSERT_EQUAL(kos_hsm_find_one(&s, &one, 1, &obj, &n), CKR_OK);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT(obj != CK_INVALID_HANDLE);
	CU_ASSERT_EQUAL(kos_hsm_find_one(&s, &many, 1, &obj, &n), CKR_OK);
	CU_ASSERT_EQUAL(n, 2);
	CU_ASSERT_EQUAL(kos_hsm_find_one(&s, &none, 1, &obj, &n), CKR_OK);
	CU_ASSERT_EQUAL(n, 0);

	/* up to max, and every match */
	CU_ASSERT_EQUAL(kos_hsm_find(&s, &many, 1, objs, 5, &n), CKR_OK);
	CU_ASSERT_EQUAL(n, 5);
	count = 0;
	CU_ASSERT_EQUAL(kos_hsm_find_each(&s, &many, 1, count_object, &count), CKR_OK);
	CU_ASSERT_EQUAL(count, 20);
	count = 0;
	CU_ASSERT_EQUAL(kos_hsm_find_each(&s, &many, 1, fail_third, &count),
			CKR_FUNCTION_FAILED);
	CU_ASSERT_EQUAL(count, 3);
	CU_ASSERT_STRING_EQUAL(s.func, "third");

	/* a refused template names the function */
	s.func = NULL;
	CU_ASSERT_NOT_EQUAL(kos_hsm_find(&s, NULL, 1, objs, 1, &n), CKR_OK);
	CU_ASSERT_EQUAL(n, 0);
	CU_ASSERT(s.func != NULL && strcmp(s.func, "C_FindObjectsInit") == 0);

	/* destroy by template: all of them, and only them */
	CU_ASSERT_EQUAL(kos_hsm_destroy(&s, &many, 1, &destroyed), CKR_OK);
	CU_ASSERT_EQUAL(destroyed, 20);
	count = 0;
	CU_ASSERT_EQUAL(kos_hsm_find_each(&s, &many, 1, count_object, &count), CKR_OK);
	CU_ASSERT_EQUAL(count, 0);
	CU_ASSERT_EQUAL(kos_hsm_find_one(&s, &one, 1, &obj, &n), CKR_OK);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_EQUAL(kos_hsm_destroy(&s, &one, 1, &destroyed), CKR_OK);
	CU_ASSERT_EQUAL(destroyed, 21);
	CU_ASSERT_EQUAL(kos_hsm_destroy(&s, &one, 1, &destroyed), CKR_OK);
	CU_ASSERT_EQUAL(destroyed, 21);
	kos_hsm_session_put(hsm, &s, CKR_OK);
	kos_hsm_free(hsm);
}

/* A caller's own refusal about a token reads like the layer's. */
static void test_token_error(void)
{
	kos_rv rv;
	kos_hsm *hsm = open_path(inst_conf, 0, &rv);

	CU_ASSERT_EQUAL_FATAL(rv, KOS_OK);
	CU_ASSERT_EQUAL(kos_hsm_error(hsm, 1, KOS_E_EXISTS, "label '%s' taken", "x"),
			KOS_E_EXISTS);
	CU_ASSERT_STRING_EQUAL(kos_last_error(), "token kms2: label 'x' taken");
	CU_ASSERT_EQUAL(kos_hsm_error(hsm, N_TOKENS, KOS_E_RANGE, "gone"), KOS_E_RANGE);
	CU_ASSERT_STRING_EQUAL(kos_last_error(), "token ?: gone");
	kos_hsm_free(hsm);
}

/* --- sessions --------------------------------------------------------------- */

static void test_session_reuse(void)
{
	kos_rv rv;
	kos_hsm *hsm = open_path(inst_conf, 0, &rv);
	struct kos_hsm_stats before, after;
	kos_hsm_session s;
	int i, failed = 0;

	CU_ASSERT_EQUAL_FATAL(rv, KOS_OK);
	CU_ASSERT_EQUAL(kos_hsm_token_stats(hsm, 2, &before), KOS_OK);
	for (i = 0; i < 1000; i++) {
		CK_SESSION_INFO info;
		CK_RV crv;

		if (kos_hsm_session_get(hsm, 2, &s) != KOS_OK) {
			failed++;
			continue;
		}
		crv = s.f->C_GetSessionInfo(s.h, &info);
		if (crv != CKR_OK || info.state != CKS_RW_USER_FUNCTIONS)
			failed++;
		kos_hsm_session_put(hsm, &s, crv);
	}
	CU_ASSERT_EQUAL(failed, 0);
	CU_ASSERT_EQUAL(kos_hsm_token_stats(hsm, 2, &after), KOS_OK);
	CU_ASSERT_EQUAL(after.calls - before.calls, 1000);
	CU_ASSERT(after.sessions_opened - before.sessions_opened <= 1);
	CU_ASSERT(after.logins <= 1);
	CU_ASSERT_EQUAL(after.sessions_busy, 0);
	CU_ASSERT_EQUAL(after.sessions_idle, 1);
	kos_hsm_free(hsm);
}

struct worker {
	kos_hsm *hsm;
	int failures;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint8_t *data;
	size_t len;
	int i;

	for (i = 0; i < 200; i++) {
		if (kos_hsm_data_get(w->hsm, 3, "threads", &data, &len) != KOS_OK || len != 6 ||
		    memcmp(data, "shared", 6) != 0)
			w->failures++;
		kos_secret_free(data, len);
	}
	return NULL;
}

static void test_sessions_threads(void)
{
	kos_rv rv;
	kos_hsm *hsm = open_path(inst_conf, 0, &rv);
	struct worker w[4];
	pthread_t th[4];
	struct kos_hsm_stats st;
	int i;

	CU_ASSERT_EQUAL_FATAL(rv, KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_hsm_data_put(hsm, 3, "threads", "shared", 6), KOS_OK);
	for (i = 0; i < 4; i++) {
		w[i].hsm = hsm;
		w[i].failures = 0;
		CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		CU_ASSERT_EQUAL(w[i].failures, 0);
	}
	CU_ASSERT_EQUAL(kos_hsm_token_stats(hsm, 3, &st), KOS_OK);
	CU_ASSERT_EQUAL(st.failures, 0);
	/* at most one session per thread, plus the put's */
	CU_ASSERT(st.sessions_opened <= 5);
	CU_ASSERT_EQUAL(st.sessions_busy, 0);
	CU_ASSERT_EQUAL(kos_hsm_data_destroy(hsm, 3, "threads"), KOS_OK);
	kos_hsm_free(hsm);
}

/* A pooled session that died behind the pool's back is dropped and the
 * operation runs again on a fresh one. */
static void test_broken_session_reopened(void)
{
	kos_rv rv;
	kos_hsm *hsm = open_path(inst_conf, 0, &rv);
	struct kos_hsm_stats st;
	kos_hsm_session s;
	uint8_t *data;
	size_t len;

	CU_ASSERT_EQUAL_FATAL(rv, KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_hsm_data_put(hsm, 4, "broken", "ok", 2), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_hsm_session_get(hsm, 4, &s), KOS_OK);
	CU_ASSERT_EQUAL(s.f->C_CloseSession(s.h), CKR_OK);
	kos_hsm_session_put(hsm, &s, CKR_OK); /* pooled, but dead */
	CU_ASSERT_EQUAL(kos_hsm_data_get(hsm, 4, "broken", &data, &len), KOS_OK);
	CU_ASSERT(len == 2 && memcmp(data, "ok", 2) == 0);
	kos_secret_free(data, len);
	CU_ASSERT_EQUAL(kos_hsm_token_stats(hsm, 4, &st), KOS_OK);
	CU_ASSERT(st.sessions_dropped >= 1);
	CU_ASSERT_EQUAL(st.sessions_opened, 2);
	CU_ASSERT(strstr(st.last_error, "CKR_SESSION_HANDLE_INVALID") != NULL);
	CU_ASSERT(strstr(st.last_error, "token kms5:") == st.last_error);

	/* a lost login flushes the pool: the next call opens and logs in again */
	CU_ASSERT_EQUAL_FATAL(kos_hsm_session_get(hsm, 4, &s), KOS_OK);
	s.func = "C_Sign";
	kos_hsm_session_put(hsm, &s, CKR_USER_NOT_LOGGED_IN);
	CU_ASSERT_EQUAL(kos_hsm_token_stats(hsm, 4, &st), KOS_OK);
	CU_ASSERT_EQUAL(st.sessions_idle, 0);
	CU_ASSERT_EQUAL(kos_hsm_data_get(hsm, 4, "broken", &data, &len), KOS_OK);
	kos_secret_free(data, len);
	CU_ASSERT_EQUAL(kos_hsm_token_stats(hsm, 4, &st), KOS_OK);
	CU_ASSERT_EQUAL(st.sessions_opened, 3);
	CU_ASSERT_EQUAL(st.sessions_idle, 1);
	CU_ASSERT_EQUAL(kos_hsm_data_destroy(hsm, 4, "broken"), KOS_OK);

	/* a failure that is the caller's does not drop the session */
	CU_ASSERT_EQUAL_FATAL(kos_hsm_session_get(hsm, 4, &s), KOS_OK);
	s.func = "C_Sign";
	kos_hsm_session_put(hsm, &s, CKR_KEY_HANDLE_INVALID);
	CU_ASSERT_EQUAL(kos_hsm_token_stats(hsm, 4, &st), KOS_OK);
	CU_ASSERT_EQUAL(st.sessions_idle, 1);
	CU_ASSERT(strstr(st.last_error, "C_Sign: CKR_KEY_HANDLE_INVALID") != NULL);
	CU_ASSERT_EQUAL(kos_hsm_fail(hsm, 4, "C_Sign", CKR_KEY_HANDLE_INVALID), KOS_E_INVALID);
	CU_ASSERT(strstr(kos_last_error(), "token kms5: C_Sign: CKR_KEY_HANDLE_INVALID") != NULL);
	kos_hsm_free(hsm);
}

/* --- failures named by token --------------------------------------------- */

static void test_wrong_pin(void)
{
	char tokens[4096];
	const char *pin = write_file("wrong.pin", "not-the-pin\n", 0600);
	char src[800];
	const char *path;
	kos_hsm *hsm;
	struct kos_hsm_stats st;
	kos_rv rv;
	int logged_in = 1;

	snprintf(src, sizeof(src), "file:%s", pin);
	snprintf(tokens, sizeof(tokens), "%s,\n%s", entry("kms1", "kms1", inst_pin("kms1")),
		 entry("kms2", "kms2", src));
	path = write_conf("wrongpin.conf", tokens);

	hsm = open_path(path, KOS_HSM_OPEN_STRICT, &rv);
	CU_ASSERT_PTR_NULL(hsm);
	CU_ASSERT_EQUAL(rv, KOS_E_INTEGRITY);
	CU_ASSERT(strstr(kos_last_error(), "token kms2:") != NULL);
	CU_ASSERT(strstr(kos_last_error(), "CKR_PIN_INCORRECT") != NULL);
	CU_ASSERT(strstr(kos_last_error(), "not-the-pin") == NULL);

	/* without STRICT the other token works and the bad one says why */
	hsm = open_path(path, 0, &rv);
	CU_ASSERT_EQUAL_FATAL(rv, KOS_OK);
	CU_ASSERT_EQUAL(kos_hsm_token_check(hsm, 0, NULL), KOS_OK);
	CU_ASSERT_EQUAL(kos_hsm_token_check(hsm, 1, &logged_in), KOS_E_INTEGRITY);
	CU_ASSERT_EQUAL(logged_in, 0);
	CU_ASSERT(strstr(kos_last_error(), "token kms2:") != NULL);
	/* never tried again: a repeated wrong PIN locks real tokens */
	CU_ASSERT_EQUAL(kos_hsm_token_check(hsm, 1, NULL), KOS_E_INTEGRITY);
	CU_ASSERT(strstr(kos_last_error(), "token kms2:") != NULL);
	CU_ASSERT_EQUAL(kos_hsm_token_stats(hsm, 1, &st), KOS_OK);
	CU_ASSERT_EQUAL(st.available, 0);
	CU_ASSERT_EQUAL(st.sessions_opened, 1);
	CU_ASSERT_EQUAL(st.failures, 2);
	kos_hsm_free(hsm);
}

static void test_pin_sources(void)
{
	char src[800], pinval[128] = "", path_pin[800];
	const char *path, *pin;
	kos_hsm *hsm;
	kos_rv rv;
	FILE *f;

	/* a PIN file others can read is refused, naming file and token */
	snprintf(path_pin, sizeof(path_pin), "%s/pins/kms3.pin", inst);
	f = fopen(path_pin, "r");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_PTR_NOT_NULL(fgets(pinval, sizeof(pinval), f));
	fclose(f);
	pin = write_file("open.pin", pinval, 0644);
	snprintf(src, sizeof(src), "file:%s", pin);
	path = write_conf("openpin.conf", entry("kms3", "kms3", src));
	hsm = open_path(path, KOS_HSM_OPEN_STRICT, &rv);
	CU_ASSERT_PTR_NULL(hsm);
	CU_ASSERT_EQUAL(rv, KOS_E_POLICY);
	CU_ASSERT(strstr(kos_last_error(), "token kms3:") != NULL);
	CU_ASSERT(strstr(kos_last_error(), "open.pin") != NULL);
	CU_ASSERT(strstr(kos_last_error(), "0644") != NULL);
	pinval[strcspn(pinval, "\n")] = '\0';
	CU_ASSERT(strstr(kos_last_error(), pinval) == NULL);
	/* the same file made private works; so does one without a newline */
	chmod(pin, 0600);
	hsm = open_path(path, KOS_HSM_OPEN_STRICT, &rv);
	CU_ASSERT_EQUAL(rv, KOS_OK);
	kos_hsm_free(hsm);
	write_file("open.pin", pinval, 0600);
	hsm = open_path(path, KOS_HSM_OPEN_STRICT, &rv);
	CU_ASSERT_EQUAL(rv, KOS_OK);
	kos_hsm_free(hsm);

	/* missing and oversized files */
	snprintf(src, sizeof(src), "file:%s", kos_test_path("no-such.pin"));
	path = write_conf("nopin.conf", entry("kms3", "kms3", src));
	hsm = open_path(path, KOS_HSM_OPEN_STRICT, &rv);
	CU_ASSERT_EQUAL(rv, KOS_E_IO);
	CU_ASSERT(strstr(kos_last_error(), "token kms3:") != NULL);
	{
		char huge[400];

		memset(huge, 'x', sizeof(huge) - 1);
		huge[sizeof(huge) - 1] = '\0';
		pin = write_file("huge.pin", huge, 0600);
	}
	snprintf(src, sizeof(src), "file:%s", pin);
	path = write_conf("hugepin.conf", entry("kms3", "kms3", src));
	hsm = open_path(path, KOS_HSM_OPEN_STRICT, &rv);
	CU_ASSERT_EQUAL(rv, KOS_E_POLICY);
	CU_ASSERT(strstr(kos_last_error(), "longer than") != NULL);

	/* env: */
	path = write_conf("envpin.conf", entry("kms3", "kms3", "env:KOS_TEST_KMS3_PIN"));
	unsetenv("KOS_TEST_KMS3_PIN");
	hsm = open_path(path, KOS_HSM_OPEN_STRICT, &rv);
	CU_ASSERT_EQUAL(rv, KOS_E_POLICY);
	CU_ASSERT(strstr(kos_last_error(), "token kms3:") != NULL);
	CU_ASSERT(strstr(kos_last_error(), "KOS_TEST_KMS3_PIN") != NULL);
	setenv("KOS_TEST_KMS3_PIN", pinval, 1);
	hsm = open_path(path, KOS_HSM_OPEN_STRICT, &rv);
	CU_ASSERT_EQUAL(rv, KOS_OK);
	kos_hsm_free(hsm);
	unsetenv("KOS_TEST_KMS3_PIN");
	OPENSSL_cleanse(pinval, sizeof(pinval));
}

static void test_missing_token(void)
{
	char dir[1200], moved[1300];
	kos_hsm *hsm;
	kos_rv rv;
	size_t trust4;
	int logged_in = 1;

	CU_ASSERT_FATAL(kos_test_token_dir(inst, "trust4", dir, sizeof(dir)));
	/* out of the token directory: SoftHSM loads every directory in it */
	snprintf(moved, sizeof(moved), "%s/trust4-moved", inst);
	CU_ASSERT_EQUAL_FATAL(rename(dir, moved), 0);

	hsm = open_path(inst_conf, KOS_HSM_OPEN_STRICT, &rv);
	CU_ASSERT_PTR_NULL(hsm);
	CU_ASSERT_EQUAL(rv, KOS_E_NOTFOUND);
	CU_ASSERT(strstr(kos_last_error(), "token trust4:") != NULL);
	CU_ASSERT(strstr(kos_last_error(), "pkcs11:token=kos-trust4") != NULL);

	hsm = open_path(inst_conf, 0, &rv);
	CU_ASSERT_EQUAL(rv, KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_hsm_token_find(hsm, "trust4", &trust4), KOS_OK);
	CU_ASSERT_EQUAL(kos_hsm_token_check(hsm, trust4, &logged_in), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(logged_in, 0);
	CU_ASSERT(strstr(kos_last_error(), "token trust4:") != NULL);
	CU_ASSERT_EQUAL(kos_hsm_token_check(hsm, 0, NULL), KOS_OK);
	kos_hsm_free(hsm);

	CU_ASSERT_EQUAL_FATAL(rename(moved, dir), 0);
	hsm = open_path(inst_conf, KOS_HSM_OPEN_STRICT, &rv);
	CU_ASSERT_EQUAL(rv, KOS_OK);
	kos_hsm_free(hsm);
}

static void test_missing_module_and_duplicates(void)
{
	char tokens[4096], bad[1024];
	const char *path;
	kos_hsm *hsm;
	struct kos_hsm_stats st;
	kos_rv rv;

	snprintf(bad, sizeof(bad),
		 "{ name = \"ghost\"; role = \"kms\"; module = \"/nonexistent/libghost.so\"; "
		 "uri = \"pkcs11:token=ghost\"; pin = \"%s\"; }",
		 inst_pin("kms1"));
	snprintf(tokens, sizeof(tokens), "%s,\n%s", entry("kms1", "kms1", inst_pin("kms1")), bad);
	path = write_conf("ghost.conf", tokens);
	hsm = open_path(path, KOS_HSM_OPEN_STRICT, &rv);
	CU_ASSERT_PTR_NULL(hsm);
	CU_ASSERT_EQUAL(rv, KOS_E_IO);
	CU_ASSERT(strstr(kos_last_error(), "token ghost:") != NULL);
	CU_ASSERT(strstr(kos_last_error(), "/nonexistent/libghost.so") != NULL);
	hsm = open_path(path, 0, &rv);
	CU_ASSERT_EQUAL_FATAL(rv, KOS_OK);
	CU_ASSERT_EQUAL(kos_hsm_token_check(hsm, 0, NULL), KOS_OK);
	CU_ASSERT_EQUAL(kos_hsm_token_check(hsm, 1, NULL), KOS_E_IO);
	CU_ASSERT_PTR_NULL(kos_hsm_get0_funcs(hsm, 1));
	CU_ASSERT_EQUAL(kos_hsm_token_stats(hsm, 1, &st), KOS_OK);
	CU_ASSERT_EQUAL(st.available, 0);
	kos_hsm_free(hsm);

	/* two names for one token */
	snprintf(tokens, sizeof(tokens), "%s,\n%s", entry("kms1", "kms1", inst_pin("kms1")),
		 entry("again", "kms1", inst_pin("kms1")));
	path = write_conf("dup.conf", tokens);
	hsm = open_path(path, KOS_HSM_OPEN_STRICT, &rv);
	CU_ASSERT_PTR_NULL(hsm);
	CU_ASSERT_EQUAL(rv, KOS_E_POLICY);
	CU_ASSERT(strstr(kos_last_error(), "token again: is the same token as kms1") != NULL);
}

static void test_environment_conflict(void)
{
	const char *other;
	kos_hsm *a, *b;
	kos_rv rv;

	a = open_path(inst_conf, 0, &rv);
	CU_ASSERT_EQUAL_FATAL(rv, KOS_OK);
	other = write_file("other-env.conf",
			   "store = \"memory:\";\npolicy = \"p\";\n"
			   "environment = { SOFTHSM2_CONF = \"/elsewhere/softhsm2.conf\"; };\n",
			   0644);
	b = open_path(other, 0, &rv);
	CU_ASSERT_PTR_NULL(b);
	CU_ASSERT_EQUAL(rv, KOS_E_BUSY);
	CU_ASSERT(strstr(kos_last_error(), "SOFTHSM2_CONF") != NULL);
	/* the same environment is fine while loaded */
	b = open_path(inst_conf, 0, &rv);
	CU_ASSERT_EQUAL(rv, KOS_OK);
	kos_hsm_free(b);
	kos_hsm_free(a);
}

/* kos_devinit while this process has SoftHSM loaded with another token
 * directory: the child initialises the new tokens, the parent's are untouched. */
static void test_devinit_beside_loaded_module(void)
{
	const char *dir = kos_test_path("inst2");
	char conf2[800];
	kos_hsm *a, *b;
	uint8_t *data;
	size_t len;
	kos_rv rv;

	a = open_path(inst_conf, 0, &rv);
	CU_ASSERT_EQUAL_FATAL(rv, KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_hsm_data_put(a, 0, "beside", "A", 1), KOS_OK);
	CU_ASSERT_EQUAL(kos_devinit(dir, 2, policy_src(), NULL), KOS_OK);
	CU_ASSERT_EQUAL(kos_hsm_data_get(a, 0, "beside", &data, &len), KOS_OK);
	kos_secret_free(data, len);
	CU_ASSERT_EQUAL(kos_hsm_data_destroy(a, 0, "beside"), KOS_OK);
	/* the new installation cannot be opened while the other is loaded... */
	snprintf(conf2, sizeof(conf2), "%s/kos.conf", dir);
	b = open_path(conf2, 0, &rv);
	CU_ASSERT_EQUAL(rv, KOS_E_BUSY);
	kos_hsm_free(a);
	/* ...and opens, every token logged in, once the other is released */
	b = open_path(conf2, KOS_HSM_OPEN_STRICT, &rv);
	CU_ASSERT_EQUAL(rv, KOS_OK);
	CU_ASSERT_EQUAL(kos_hsm_token_count(b), 2 + 2 + KOS_DEVINIT_TRUSTNODES);
	kos_hsm_free(b);
}

static void test_stats_count_calls(void)
{
	kos_rv rv;
	kos_hsm *hsm = open_path(inst_conf, 0, &rv);
	struct kos_hsm_stats st;
	uint8_t *data;
	size_t len, n;
	int i;

	CU_ASSERT_EQUAL_FATAL(rv, KOS_OK);
	CU_ASSERT_EQUAL(kos_hsm_token_stats(hsm, 6, &st), KOS_OK);
	CU_ASSERT_EQUAL(st.calls, 0);
	CU_ASSERT_EQUAL(st.last_call, 0);
	CU_ASSERT_STRING_EQUAL(st.last_error, "");
	CU_ASSERT_EQUAL(kos_hsm_data_put(hsm, 6, "stats", "s", 1), KOS_OK);
	for (i = 0; i < 10; i++) {
		CU_ASSERT_EQUAL(kos_hsm_data_get(hsm, 6, "stats", &data, &len), KOS_OK);
		kos_secret_free(data, len);
	}
	CU_ASSERT_EQUAL(kos_hsm_token_count_objects(hsm, 6, &n), KOS_OK);
	CU_ASSERT_EQUAL(kos_hsm_data_destroy(hsm, 6, "stats"), KOS_OK);
	CU_ASSERT_EQUAL(kos_hsm_token_stats(hsm, 6, &st), KOS_OK);
	CU_ASSERT_EQUAL(st.calls, 13);
	CU_ASSERT_EQUAL(st.failures, 0);
	CU_ASSERT(st.latency_total > 0);
	CU_ASSERT(st.latency_ewma > 0 && st.latency_ewma <= st.latency_total);
	CU_ASSERT(st.last_call > 0);
	CU_ASSERT_EQUAL(st.last_failure, 0);
	/* other tokens untouched */
	CU_ASSERT_EQUAL(kos_hsm_token_stats(hsm, 7, &st), KOS_OK);
	CU_ASSERT_EQUAL(st.calls, 0);
	CU_ASSERT_EQUAL(kos_hsm_token_stats(hsm, N_TOKENS, &st), KOS_E_RANGE);
	kos_hsm_free(hsm);
}

static void test_ckr_mapping(void)
{
	CU_ASSERT_EQUAL(kos_hsm_rv(CKR_OK), KOS_OK);
	CU_ASSERT_EQUAL(kos_hsm_rv(CKR_PIN_INCORRECT), KOS_E_INTEGRITY);
	CU_ASSERT_EQUAL(kos_hsm_rv(CKR_DEVICE_REMOVED), KOS_E_IO);
	CU_ASSERT_EQUAL(kos_hsm_rv(CKR_HOST_MEMORY), KOS_E_NOMEM);
	CU_ASSERT_EQUAL(kos_hsm_rv(CKR_SESSION_COUNT), KOS_E_BUSY);
	CU_ASSERT_EQUAL(kos_hsm_rv(CKR_GENERAL_ERROR), KOS_E_CRYPTO);
	CU_ASSERT_STRING_EQUAL(kos_hsm_ckr_name(CKR_USER_NOT_LOGGED_IN), "CKR_USER_NOT_LOGGED_IN");
	CU_ASSERT_STRING_EQUAL(kos_hsm_ckr_name(0x80001234UL), "CKR_0x80001234");
	CU_ASSERT(kos_hsm_rv_session_failed(CKR_SESSION_HANDLE_INVALID));
	CU_ASSERT(kos_hsm_rv_session_failed(CKR_DEVICE_REMOVED));
	CU_ASSERT(!kos_hsm_rv_session_failed(CKR_KEY_HANDLE_INVALID));
}

int main(void)
{
	static const struct kos_test_case cases[] = {
		KOS_TEST(test_devinit_installation),
		KOS_TEST(test_devinit_refuses_existing),
		KOS_TEST(test_devinit_refusals_clean_up),
		KOS_TEST(test_config_tokens),
		KOS_TEST(test_config_token_refusals),
		KOS_TEST(test_config_kms_fronts),
		KOS_TEST(test_open_finds_every_token),
		KOS_TEST(test_data_round_trip),
		KOS_TEST(test_data_object_attributes),
		KOS_TEST(test_find_and_destroy),
		KOS_TEST(test_token_error),
		KOS_TEST(test_session_reuse),
		KOS_TEST(test_sessions_threads),
		KOS_TEST(test_broken_session_reopened),
		KOS_TEST(test_wrong_pin),
		KOS_TEST(test_pin_sources),
		KOS_TEST(test_missing_token),
		KOS_TEST(test_missing_module_and_duplicates),
		KOS_TEST(test_environment_conflict),
		KOS_TEST(test_devinit_beside_loaded_module),
		KOS_TEST(test_stats_count_calls),
		KOS_TEST(test_ckr_mapping),
	};

	return kos_test_run("hsm", suite_init, NULL, cases, KOS_ARRAY_SIZE(cases));
}
