/* kos's credentials against a second JOSE implementation, libjwt 1.10,
 * which shares no code with kos's verification: every kind of credential
 * kos issues (plain, scoped, certificate-bound, enrolled, refreshed, grants,
 * before and after a rotation) verifies with libjwt and the CA key from the
 * JWKS, with the claims kos reads; and every forgery tests/jwt-forge makes
 * (the scope widened under the old signature, a flipped signature bit,
 * another EC key, alg none, HS256 keyed with the public key's PEM, an
 * unknown kid) is refused by both, each forgery shown well made first. The
 * libjwt side is a relying party written as its users must write it: the
 * kid read from the header, its key from the JWKS (turned into PEM by
 * jwt-forge --pem, OpenSSL only), jwt_decode() with that key, and the
 * algorithm pinned, since libjwt takes it from the token. */
#include "config.h"

#include "kos/hsm.h"
#include "kos/internal.h"
#include "common/jws.h"
#include "kos/signer.h"
#include "tests/kos-test.h"

#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* SoftHSM 2.6.1 leaks in C_SignInit (see tests/test-signer.c); kos's own
 * leaks are still reported. */
const char *__lsan_default_suppressions(void) __attribute__((visibility("default"), used));
const char *__lsan_default_suppressions(void)
{
	return "leak:libsofthsm2.so\n";
}

#define SEC	KOS_USEC_PER_SEC
#define SCOPE	"decrypt:payments/* encrypt:payments/* sign:ca-2026"
#define SOFTHSM "/usr/lib/softhsm/libsofthsm2.so"

static char inst[512], wrong_pem[600], ca_pem[600], jwks_file[600], x5t[KOS_CRED_X5T_LEN + 1];
static kos_config *conf;
static kos_policy *pol;
static kos_store *st;
static kos_hsm *hsm;
static kos_trust *tr;
static kos_ca *ca;
static char kid1[KOS_CA_KID_LEN + 1];

/* The output of tests/jwt-forge with args (NULL-terminated), trailing
 * newline dropped; NULL when it failed. */
static char *jwt_forge(const char *const *args)
{
	const char *top = getenv("top_builddir");
	char prog[600], *out = NULL;
	const char *argv[16];
	size_t n = 0, cap = 0, argc = 0;
	int fd[2], status;
	pid_t pid;

	snprintf(prog, sizeof(prog), "%s/tests/jwt-forge", top != NULL ? top : ".");
	argv[argc++] = prog;
	while (*args != NULL && argc < KOS_ARRAY_SIZE(argv) - 1)
		argv[argc++] = *args++;
	argv[argc] = NULL;
	if (pipe(fd) != 0)
		return NULL;
	pid = fork();
	if (pid == 0) {
		dup2(fd[1], STDOUT_FILENO);
		close(fd[0]);
		close(fd[1]);
		execv(prog, (char *const *)argv);
		_exit(127);
	}
	close(fd[1]);
	for (;;) {
		ssize_t got;

		if (n + 1024 > cap) {
			char *more = realloc(out, cap + 4096);

			if (more == NULL)
				break;
			out = more;
			cap += 4096;
		}
		got = read(fd[0], out + n, cap - n - 1);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		n += (size_t)got;
	}
	close(fd[0]);
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0 || out == NULL) {
		free(out);
		return NULL;
	}
	while (n > 0 && out[n - 1] == '\n')
		n--;
	out[n] = '\0';
	return out;
}

/* jwt-forge EDITS... TOKEN: the forgery; the test stops when none is made. */
static char *forged(const char *const *edits, const char *token)
{
	const char *args[16];
	size_t i = 0;
	char *out;

	while (edits[i] != NULL && i < KOS_ARRAY_SIZE(args) - 2) {
		args[i] = edits[i];
		i++;
	}
	args[i++] = token;
	args[i] = NULL;
	out = jwt_forge(args);
	CU_ASSERT_PTR_NOT_NULL_FATAL(out);
	return out;
}

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	int ok = f != NULL && fputs(text, f) >= 0;

	if (f != NULL && fclose(f) != 0)
		ok = 0;
	return ok;
}

/* A small file's text; the test stops when it cannot be read. */
static char *read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	char *text = calloc(1, 8192);
	size_t n;

	CU_ASSERT_FATAL(f != NULL && text != NULL);
	n = fread(text, 1, 8191, f);
	fclose(f);
	CU_ASSERT_FATAL(n > 0);
	return text;
}

/* The PEM of kid's key in the authority's JWKS as it stands; NULL when the
 * JWKS does not list it (or cannot be had). */
static char *jwks_pem(const char *kid)
{
	const char *args[] = {"--pem", jwks_file, kid, NULL};
	char *text = NULL;
	int ok;

	if (kos_ca_jwks(ca, &text) != KOS_OK)
		return NULL;
	ok = write_file(jwks_file, text);
	kos_free(text);
	return ok ? jwt_forge(args) : NULL;
}

/* libjwt as a relying party: 1 and *out (freed with jwt_free) when token
 * verifies, 0 when it is refused. */
static int libjwt_verify(const char *token, jwt_t **out)
{
	jwt_t *peek = NULL, *jwt = NULL;
	char *pem = NULL;
	int ok = 0;

	*out = NULL;
	/* without a key libjwt decodes and checks nothing: only the kid is read */
	if (jwt_decode(&peek, token, NULL, 0) != 0 || jwt_get_header(peek, "kid") == NULL)
		goto out;
	pem = jwks_pem(jwt_get_header(peek, "kid"));
	if (pem == NULL)
		goto out;
	if (jwt_decode(&jwt, token, (const unsigned char *)pem, (int)strlen(pem)) != 0)
		goto out;
	/* libjwt verified with whatever the header named */
	if (jwt_get_alg(jwt) != JWT_ALG_ES256)
		goto out;
	*out = jwt;
	jwt = NULL;
	ok = 1;
out:
	jwt_free(peek);
	jwt_free(jwt);
	free(pem);
	return ok;
}

static int suite_init(void)
{
	char path[600], secret[KOS_CRED_SECRET_LEN + 1];
	uint8_t hash[32];
	EVP_PKEY *wrong = NULL;
	FILE *f;
	char *pem;

	if (kos_test_inst_open(inst, sizeof(inst), 0, &conf, &pol, &st, &hsm) != 0)
		return 1;
	if (kos_trust_new(pol, st, &tr) != KOS_OK || kos_ca_new(pol, st, hsm, tr, &ca) != KOS_OK ||
	    kos_ca_init(ca, kid1) != KOS_OK ||
	    kos_ca_client_add(ca, "web-1", SCOPE, secret) != KOS_OK)
		goto fail;
	OPENSSL_cleanse(secret, sizeof(secret));
	/* jwt-forge runs with SoftHSM's leaks ignored, as the shell tests do
	 * (kos_devinit() set SOFTHSM2_CONF for it) */
	snprintf(path, sizeof(path), "%s/lsan.supp", kos_test_tmpdir());
	if (!write_file(path, "leak:libsofthsm2.so\n"))
		goto fail;
	{
		char opts[700];

		snprintf(opts, sizeof(opts), "suppressions=%s", path);
		setenv("LSAN_OPTIONS", opts, 1);
	}
	snprintf(jwks_file, sizeof(jwks_file), "%s/jwks", kos_test_tmpdir());
	/* the forger's own EC key, and the CA key's PEM for the HS256 forgery */
	snprintf(wrong_pem, sizeof(wrong_pem), "%s/wrong.pem", kos_test_tmpdir());
	wrong = EVP_EC_gen("P-256");
	f = fopen(wrong_pem, "w");
	if (wrong == NULL || f == NULL ||
	    PEM_write_PrivateKey(f, wrong, NULL, NULL, 0, NULL, NULL) != 1) {
		if (f != NULL)
			fclose(f);
		EVP_PKEY_free(wrong);
		goto fail;
	}
	fclose(f);
	EVP_PKEY_free(wrong);
	pem = jwks_pem(kid1);
	snprintf(ca_pem, sizeof(ca_pem), "%s/ca.pub.pem", kos_test_tmpdir());
	if (pem == NULL || !write_file(ca_pem, pem)) {
		free(pem);
		goto fail;
	}
	free(pem);
	SHA256((const uint8_t *)"a certificate", 13, hash);
	if (kos_b64url_encode(hash, sizeof(hash), x5t, sizeof(x5t)) != KOS_OK)
		goto fail;
	return 0;
fail:
	fprintf(stderr, "set-up: %s\n", kos_last_error());
	return 1;
}

static int suite_cleanup(void)
{
	kos_ca_free(ca);
	kos_trust_free(tr);
	kos_signer_forget(hsm);
	return kos_test_inst_close(conf, pol, st, hsm);
}

/* kos and libjwt both take token (bound: to x5t) and read the same claims
 * from it. */
static void expect_both_take(const char *what, const char *token, const char *bound)
{
	kos_cred_reason why = KOS_CRED_ERROR;
	kos_cred_claims c;
	jwt_t *jwt = NULL;
	json_t *cnf = NULL;
	char *cnf_text;

	if (kos_cred_verify(ca, token, bound, &c, &why) != KOS_OK) {
		fprintf(stderr, "\n%s: kos refused it: %s\n", what, kos_last_error());
		CU_FAIL("kos refused a credential it issued");
		return;
	}
	if (!libjwt_verify(token, &jwt)) {
		fprintf(stderr, "\n%s: libjwt refused it\n", what);
		CU_FAIL("libjwt refused a credential kos issued");
		return;
	}
	KOS_ASSERT_STR_EQ(jwt_get_header(jwt, "alg"), "ES256");
	KOS_ASSERT_STR_EQ(jwt_get_header(jwt, "typ"), "JWT");
	KOS_ASSERT_STR_EQ(jwt_get_header(jwt, "kid"), c.kid);
	KOS_ASSERT_STR_EQ(jwt_get_grant(jwt, "iss"), c.iss);
	KOS_ASSERT_STR_EQ(jwt_get_grant(jwt, "aud"), c.aud);
	KOS_ASSERT_STR_EQ(jwt_get_grant(jwt, "sub"), c.sub);
	KOS_ASSERT_STR_EQ(jwt_get_grant(jwt, "jti"), c.jti);
	KOS_ASSERT_STR_EQ(jwt_get_grant(jwt, "scope"), c.scope);
	CU_ASSERT_EQUAL(jwt_get_grant_int(jwt, "iat"), c.iat / SEC);
	CU_ASSERT_EQUAL(jwt_get_grant_int(jwt, "nbf"), c.nbf / SEC);
	CU_ASSERT_EQUAL(jwt_get_grant_int(jwt, "exp"), c.exp / SEC);
	CU_ASSERT_EQUAL(jwt_get_grant_int(jwt, "auth_time"), c.auth_time / SEC);
	if (c.kind == KOS_CRED_KIND_GRANT)
		KOS_ASSERT_STR_EQ(jwt_get_grant(jwt, "kos_kind"), "grant");
	else
		CU_ASSERT_PTR_NULL(jwt_get_grant(jwt, "kos_kind"));
	cnf_text = jwt_get_grants_json(jwt, "cnf");
	if (cnf_text != NULL)
		cnf = json_loads(cnf_text, 0, NULL);
	if (bound != NULL) {
		CU_ASSERT_STRING_EQUAL(c.x5t, bound);
		KOS_ASSERT_STR_EQ(json_string_value(json_object_get(cnf, "x5t#S256")), bound);
	} else {
		CU_ASSERT_PTR_NULL(cnf);
	}
	json_decref(cnf);
	free(cnf_text);
	jwt_free(jwt);
}

static char *issue(const char *scope, const char *bound)
{
	char *t = NULL;

	CU_ASSERT_EQUAL_FATAL(kos_cred_issue(ca, "web-1", scope, bound, &t), KOS_OK);
	return t;
}

/* Every kind of credential kos issues verifies with libjwt. */
static void test_libjwt_takes_what_kos_issues(void)
{
	char secret[KOS_CRED_SECRET_LEN + 1], *t, *r = NULL, *g = NULL, *e = NULL;

	t = issue(NULL, NULL);
	expect_both_take("plain", t, NULL);
	CU_ASSERT_EQUAL(kos_cred_refresh(ca, t, NULL, NULL, &r, NULL), KOS_OK);
	expect_both_take("refreshed", r, NULL);
	kos_cred_free(r);
	kos_cred_free(t);
	t = issue("decrypt:payments/eu sign:ca-2026", NULL);
	expect_both_take("scoped", t, NULL);
	kos_cred_free(t);
	t = issue(NULL, x5t);
	expect_both_take("bound", t, x5t);
	r = NULL;
	CU_ASSERT_EQUAL(kos_cred_refresh(ca, t, x5t, "decrypt:payments/eu", &r, NULL), KOS_OK);
	expect_both_take("bound, refreshed narrower", r, x5t);
	kos_cred_free(r);
	kos_cred_free(t);
	CU_ASSERT_EQUAL_FATAL(
	    kos_cred_issue_grant(ca, "web-1", "kos-share:k:1:narrow:2", NULL, 30 * SEC, &g),
	    KOS_OK);
	expect_both_take("grant", g, NULL);
	kos_cred_free(g);
	g = NULL;
	CU_ASSERT_EQUAL_FATAL(
	    kos_cred_issue_grant(ca, "web-1", "kos-share:k:1:narrow:3", x5t, 30 * SEC, &g), KOS_OK);
	expect_both_take("bound grant", g, x5t);
	kos_cred_free(g);
	CU_ASSERT_EQUAL_FATAL(kos_ca_client_add(ca, "enrollee", "key:payments", secret), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_cred_enroll(ca, secret, &e), KOS_OK);
	expect_both_take("enrolled", e, NULL);
	kos_cred_free(e);
	e = NULL;
	CU_ASSERT_EQUAL_FATAL(kos_ca_client_secret(ca, "enrollee", secret), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_cred_enroll_bound(ca, secret, x5t, &e), KOS_OK);
	expect_both_take("enrolled over TLS", e, x5t);
	kos_cred_free(e);
	OPENSSL_cleanse(secret, sizeof(secret));
}

struct forgery {
	const char *what;
	const char *edits[8];
	kos_cred_reason reason; /* kos's */
};

/* The forgeries of tests/kosd-attack-routes.sh, each an admin:* credential
 * made from a real one: kos and libjwt refuse every one. */
static void test_forgeries_refused_by_both(void)
{
	const struct forgery forgeries[] = {
	    {"the scope widened under the old signature",
	     {"-s", "scope=admin:*", NULL},
	     KOS_CRED_BAD_SIGNATURE},
	    {"a flipped signature bit",
	     {"-s", "scope=admin:*", "-f", NULL},
	     KOS_CRED_BAD_SIGNATURE},
	    {"re-signed with another EC key",
	     {"-s", "scope=admin:*", "-e", wrong_pem, NULL},
	     KOS_CRED_BAD_SIGNATURE},
	    {"another EC key under an unknown kid",
	     {"-s", "scope=admin:*", "-H", "kid=AAAAAAAAAAAAAAAAAAAAAA", "-e", wrong_pem},
	     KOS_CRED_UNKNOWN_KID},
	    {"alg none", {"-s", "scope=admin:*", "-0", NULL}, KOS_CRED_BAD_ALG},
	    {"alg none, the old signature kept",
	     {"-s", "scope=admin:*", "-H", "alg=none", NULL},
	     KOS_CRED_BAD_ALG},
	    {"HS256 keyed with the CA public key's PEM",
	     {"-s", "scope=admin:*", "-h", ca_pem, NULL},
	     KOS_CRED_BAD_ALG},
	};
	char *t = issue(NULL, NULL), *f, pin[600], casign[800], key_pub[700];
	kos_cred_reason why;
	jwt_t *jwt = NULL;
	size_t i;

	/* the control: an edit re-signed by the CA key itself (a thief of the
	 * token would sign so) is taken by both, so a refusal below is the
	 * forgery's, not the harness's */
	snprintf(pin, sizeof(pin), "%s/pins/ca.pin", inst);
	snprintf(casign, sizeof(casign), "%s:kos-ca:%s:kos-ca:%s", SOFTHSM, pin, kid1);
	{
		const char *const edits[] = {"-p", casign, "-s", "scope=decrypt:payments/eu", NULL};

		f = forged(edits, t);
		expect_both_take("re-signed by the CA key", f, NULL);
		free(f);
	}

	for (i = 0; i < KOS_ARRAY_SIZE(forgeries); i++) {
		const struct forgery *fg = &forgeries[i];

		f = forged(fg->edits, t);
		why = KOS_CRED_VALID;
		CU_ASSERT_EQUAL(kos_cred_verify(ca, f, NULL, NULL, &why), KOS_E_INTEGRITY);
		if (why != fg->reason)
			fprintf(stderr, "\n%s: kos's reason %d, not %d: %s\n", fg->what, why,
				fg->reason, kos_last_error());
		CU_ASSERT_EQUAL(why, fg->reason);
		if (libjwt_verify(f, &jwt)) {
			fprintf(stderr, "\n%s: libjwt took it\n", fg->what);
			CU_FAIL("libjwt took a forgery");
		}
		jwt_free(jwt);
		jwt = NULL;
		free(f);
	}

	/* the forgeries are well made: each verifies with the key it was made
	 * with, when the verifier lets the token choose */
	{
		const char *const hs[] = {"-s", "scope=admin:*", "-h", ca_pem, NULL};
		const char *const es[] = {"-s", "scope=admin:*", "-e", wrong_pem, NULL};
		const char *const none[] = {"-s", "scope=admin:*", "-0", NULL};
		char *pem = read_text(ca_pem);
		FILE *in;
		EVP_PKEY *k;

		f = forged(hs, t);
		/* libjwt alone believes the header: HS256 with the PEM as secret */
		CU_ASSERT_EQUAL(jwt_decode(&jwt, f, (const unsigned char *)pem, (int)strlen(pem)),
				0);
		jwt_free(jwt);
		jwt = NULL;
		free(pem);
		free(f);

		f = forged(es, t);
		in = fopen(wrong_pem, "r");
		CU_ASSERT_PTR_NOT_NULL_FATAL(in);
		k = PEM_read_PrivateKey(in, NULL, NULL, NULL);
		fclose(in);
		CU_ASSERT_PTR_NOT_NULL_FATAL(k);
		{
			BIO *b = BIO_new(BIO_s_mem());
			char *data;
			long n;

			CU_ASSERT_FATAL(b != NULL && PEM_write_bio_PUBKEY(b, k) == 1);
			n = BIO_get_mem_data(b, &data);
			CU_ASSERT_FATAL(n > 0 && (size_t)n < sizeof(key_pub));
			memcpy(key_pub, data, (size_t)n);
			key_pub[n] = '\0';
			BIO_free(b);
		}
		EVP_PKEY_free(k);
		CU_ASSERT_EQUAL(
		    jwt_decode(&jwt, f, (const unsigned char *)key_pub, (int)strlen(key_pub)), 0);
		CU_ASSERT_EQUAL(jwt_get_alg(jwt), JWT_ALG_ES256);
		KOS_ASSERT_STR_EQ(jwt_get_grant(jwt, "scope"), "admin:*");
		jwt_free(jwt);
		jwt = NULL;
		free(f);

		f = forged(none, t);
		CU_ASSERT_EQUAL(jwt_decode(&jwt, f, NULL, 0), 0);
		CU_ASSERT_EQUAL(jwt_get_alg(jwt), JWT_ALG_NONE);
		jwt_free(jwt);
		jwt = NULL;
		free(f);
	}
	kos_cred_free(t);
}

/* After a rotation both keys are in the JWKS: libjwt takes what each
 * signed, and not with the other's key. */
static void test_libjwt_after_rotation(void)
{
	char kid2[KOS_CA_KID_LEN + 1], *old = issue(NULL, NULL), *new_t, *pem;
	jwt_t *jwt = NULL;

	CU_ASSERT_EQUAL_FATAL(kos_ca_rotate(ca, kid2), KOS_OK);
	new_t = issue(NULL, x5t);
	expect_both_take("signed by the retired key", old, NULL);
	expect_both_take("signed by the new key", new_t, x5t);
	pem = jwks_pem(kid2);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pem);
	CU_ASSERT_NOT_EQUAL(jwt_decode(&jwt, old, (const unsigned char *)pem, (int)strlen(pem)), 0);
	jwt_free(jwt);
	free(pem);
	kos_cred_free(old);
	kos_cred_free(new_t);
}

int main(void)
{
	static const struct kos_test_case cases[] = {
	    KOS_TEST(test_libjwt_takes_what_kos_issues),
	    KOS_TEST(test_forgeries_refused_by_both),
	    KOS_TEST(test_libjwt_after_rotation),
	};

	return kos_test_run("jose", suite_init, suite_cleanup, cases,
			    sizeof(cases) / sizeof(cases[0]));
}
