/* Benchmarks of the credential authority, each beside a baseline measured in
 * the same run on the same machine:
 *  - credentials issued per second (HSM-signed) vs direct SoftHSM C_Sign
 *    with the same CA key;
 *  - uncached verification (every credential seen once, by a handle with
 *    an empty cache) vs raw OpenSSL ECDSA P-256 verification of the same
 *    credentials' signing inputs, the key parsed and the signatures made DER
 *    beforehand (goal >= 0.8x); the two alternate in rounds, so both meet
 *    the same load of the machine, and the median round of each counts;
 *    libjwt's jwt_decode() with a PEM key, the way kos once verified, is
 *    shown beside;
 *  - cached verification per second (goal >= 1,000,000/s), with the default
 *    revocation check and with a store read at every verification. */
#include "config.h"

#include "kos/ca.h"
#include "kos/hsm.h"
#include "kos/internal.h"
#include "tests/bench/bench.h"
#include "common/jws.h"
#include "kos/signer.h"
#include "kos/store_backend.h"

#include <jwt.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* distinct credentials for the uncached measurement (each verified once a
 * round), and the rounds */
#define UNCACHED_TOKENS 1500
#define ROUNDS		7

struct cb {
	kos_ca *ca;
	kos_hsm *hsm;
	size_t tok;
	CK_OBJECT_HANDLE priv;
	char *token; /* one credential, verified over and over */
	char **many; /* UNCACHED_TOKENS credentials */
	EVP_PKEY *pub;
	struct baseline {
		uint8_t *der_sig; /* the signature, DER */
		size_t der_len;
		size_t input_len; /* the signing input's length */
	} one, *each;	  /* of token, of many[i] */
	char *pem;
};

static int kos_issue(void *arg)
{
	struct cb *b = arg;
	char *t = NULL;

	if (kos_cred_issue(b->ca, "bench", NULL, NULL, &t) != KOS_OK)
		return 1;
	kos_cred_free(t);
	return 0;
}

/* The baseline: C_SignInit + C_Sign (CKM_ECDSA over a SHA-256 digest of a
 * credential-sized input) with the CA key, on a pooled session. */
static int direct_sign(void *arg)
{
	struct cb *b = arg;
	CK_MECHANISM mech = {CKM_ECDSA, NULL, 0};
	kos_hsm_session s;
	uint8_t sig[64], digest[32];
	CK_ULONG len = sizeof(sig);
	CK_RV rv;

	if (kos_hsm_session_get(b->hsm, b->tok, &s) != KOS_OK)
		return 1;
	SHA256((const uint8_t *)b->token, b->one.input_len, digest);
	rv = s.f->C_SignInit(s.h, &mech, b->priv);
	if (rv == CKR_OK)
		rv = s.f->C_Sign(s.h, digest, 32, sig, &len);
	kos_hsm_session_put(b->hsm, &s, rv);
	return rv != CKR_OK;
}

static int cached_verify(void *arg)
{
	struct cb *b = arg;
	kos_cred_claims c;

	return kos_cred_verify(b->ca, b->token, NULL, &c, NULL) != KOS_OK;
}

/* The baseline: ECDSA P-256 with SHA-256 over a signing input, the key
 * already parsed, the signature already DER. */
static int raw_verify(EVP_PKEY *pub, const struct baseline *bl, const char *token)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok = md != NULL && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub) == 1 &&
		 EVP_DigestVerify(md, bl->der_sig, bl->der_len, (const uint8_t *)token,
				  bl->input_len) == 1;

	EVP_MD_CTX_free(md);
	return !ok;
}

static int libjwt_decode(void *arg)
{
	struct cb *b = arg;
	jwt_t *jwt = NULL;
	int rc = jwt_decode(&jwt, b->token, (const unsigned char *)b->pem, (int)strlen(b->pem));

	jwt_free(jwt);
	return rc != 0;
}

static CK_OBJECT_HANDLE find_private(kos_hsm *hsm, size_t tok, const char *label)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE tmpl[] = {
	    {CKA_CLASS, &cls, sizeof(cls)},
	    {CKA_LABEL, (void *)label, strlen(label)},
	};
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	CK_ULONG n = 0;
	kos_hsm_session s;

	if (kos_hsm_session_get(hsm, tok, &s) != KOS_OK)
		return CK_INVALID_HANDLE;
	if (s.f->C_FindObjectsInit(s.h, tmpl, 2) == CKR_OK) {
		s.f->C_FindObjects(s.h, &h, 1, &n);
		s.f->C_FindObjectsFinal(s.h);
	}
	kos_hsm_session_put(hsm, &s, CKR_OK);
	return n == 1 ? h : CK_INVALID_HANDLE;
}

/* A credential's signature as DER and the length of its signing input. */
static int prepare_one(const char *token, struct baseline *bl)
{
	const char *dot2 = strrchr(token, '.');
	uint8_t raw[64];
	size_t n = sizeof(raw);
	ECDSA_SIG *sig;
	uint8_t *der = NULL;
	int len;

	bl->input_len = (size_t)(dot2 - token);
	if (kos_b64url_decode(dot2 + 1, strlen(dot2 + 1), raw, &n) != KOS_OK || n != 64)
		return 1;
	sig = ECDSA_SIG_new();
	if (sig == NULL ||
	    ECDSA_SIG_set0(sig, BN_bin2bn(raw, 32, NULL), BN_bin2bn(raw + 32, 32, NULL)) != 1) {
		ECDSA_SIG_free(sig);
		return 1;
	}
	len = i2d_ECDSA_SIG(sig, &der);
	ECDSA_SIG_free(sig);
	if (len <= 0)
		return 1;
	bl->der_sig = der;
	bl->der_len = (size_t)len;
	return 0;
}

/* The CA's public key, parsed, and as PEM (for libjwt). */
static int prepare_key(struct cb *b, const struct kos_store_ca_key *key)
{
	const unsigned char *p = key->spki;

	b->pub = d2i_PUBKEY(NULL, &p, (long)key->spki_len);
	if (b->pub == NULL)
		return 1;
	return kos_spki_to_pem(key->spki, key->spki_len, &b->pem) != KOS_OK;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Rates of the raw baseline and of kos's uncached verification over the
 * same credentials, median of ROUNDS alternating rounds. Each kos round
 * verifies with a new handle (an empty cache), whose keys are read before
 * the clock starts. */
static int uncached_rounds(struct cb *b, const kos_policy *pol, kos_store *st, kos_trust *tr,
			   double *raw_rate, double *kos_rate)
{
	double raw[ROUNDS], kos[ROUNDS], t0;
	size_t r, i;

	for (r = 0; r < ROUNDS; r++) {
		kos_ca *v = NULL;

		t0 = bench_now();
		for (i = 0; i < UNCACHED_TOKENS; i++)
			if (raw_verify(b->pub, &b->each[i], b->many[i]) != 0) {
				fprintf(stderr, "bench: the OpenSSL baseline failed\n");
				return 1;
			}
		raw[r] = UNCACHED_TOKENS / (bench_now() - t0);

		if (kos_ca_new(pol, st, b->hsm, tr, &v) != KOS_OK ||
		    kos_cred_verify(v, b->token, NULL, NULL, NULL) != KOS_OK) {
			kos_ca_free(v);
			return 1;
		}
		t0 = bench_now();
		for (i = 0; i < UNCACHED_TOKENS; i++)
			if (kos_cred_verify(v, b->many[i], NULL, NULL, NULL) != KOS_OK) {
				fprintf(stderr, "bench: verification failed: %s\n",
					kos_last_error());
				kos_ca_free(v);
				return 1;
			}
		kos[r] = UNCACHED_TOKENS / (bench_now() - t0);
		kos_ca_free(v);
	}
	qsort(raw, ROUNDS, sizeof(raw[0]), cmp_double);
	qsort(kos, ROUNDS, sizeof(kos[0]), cmp_double);
	*raw_rate = raw[ROUNDS / 2];
	*kos_rate = kos[ROUNDS / 2];
	return 0;
}

static void report(const char *what, double r, double base, const char *base_name, const char *goal)
{
	printf("%-48s %10.0f/s  %6.2fx %s%s%s\n", what, r, r / base, base_name,
	       goal ? "  goal " : "", goal ? goal : "");
}

int main(int argc, char **argv)
{
	char dir[] = "/tmp/kos-bench-XXXXXX", path[128], secret[KOS_CRED_SECRET_LEN + 1];
	const char *policy = argc > 1 ? argv[1] : "policy/default.policy";
	struct kos_store_ca_key key;
	kos_config *conf = NULL;
	kos_policy *pol = NULL;
	kos_store *st = NULL;
	kos_trust *tr = NULL;
	struct cb b = {0};
	double base, direct, uncached;
	size_t i;
	int rc = 1;

	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(path, sizeof(path), "%s/inst", dir);
	if (kos_devinit(path, 0, policy, NULL) != KOS_OK)
		goto out;
	snprintf(path, sizeof(path), "%s/inst/kos.conf", dir);
	if (kos_config_load(path, &conf, NULL) != KOS_OK ||
	    kos_policy_load(kos_config_get0_policy(conf), &pol, NULL) != KOS_OK ||
	    kos_store_open(kos_config_get0_store(conf), &st) != KOS_OK ||
	    kos_hsm_open(conf, 0, &b.hsm) != KOS_OK || kos_trust_new(pol, st, &tr) != KOS_OK ||
	    kos_ca_new(pol, st, b.hsm, tr, &b.ca) != KOS_OK)
		goto out;
	if (kos_ca_init(b.ca, NULL) != KOS_OK ||
	    kos_ca_client_add(b.ca, "bench", "decrypt:payments/* encrypt:payments/* sign:ca-2026",
			   secret) != KOS_OK ||
	    kos_cred_issue(b.ca, "bench", NULL, NULL, &b.token) != KOS_OK ||
	    kos_store_ca_key_current(st, &key) != KOS_OK ||
	    kos_hsm_token_find(b.hsm, key.token, &b.tok) != KOS_OK)
		goto out;
	if (prepare_key(&b, &key) != 0 || prepare_one(b.token, &b.one) != 0) {
		fprintf(stderr, "bench: cannot prepare the OpenSSL baseline\n");
		goto out;
	}
	b.priv = find_private(b.hsm, b.tok, key.label);
	if (b.priv == CK_INVALID_HANDLE) {
		fprintf(stderr, "bench: the CA key's handle was not found\n");
		goto out;
	}
	printf("credential: %zu bytes\n", strlen(b.token));

	direct = bench_rate(direct_sign, &b, 4);
	printf("%-48s %10.0f/s  (baseline)\n", "SoftHSM C_Sign P-256 with the CA key, direct",
	       direct);
	report("kos credentials issued (HSM-signed)", bench_rate(kos_issue, &b, 4), direct, "C_Sign", NULL);

	b.many = calloc(UNCACHED_TOKENS, sizeof(*b.many));
	b.each = calloc(UNCACHED_TOKENS, sizeof(*b.each));
	if (b.many == NULL || b.each == NULL)
		goto out;
	for (i = 0; i < UNCACHED_TOKENS; i++)
		if (kos_cred_issue(b.ca, "bench", NULL, NULL, &b.many[i]) != KOS_OK ||
		    prepare_one(b.many[i], &b.each[i]) != 0)
			goto out;
	if (uncached_rounds(&b, pol, st, tr, &base, &uncached) != 0)
		goto out;
	printf("%-48s %10.0f/s  (baseline, median of %d rounds)\n",
	       "OpenSSL ECDSA P-256 verify, key parsed once", base, ROUNDS);
	report("kos verify, uncached (every credential new)", uncached, base, "OpenSSL", ">= 0.8x");
	report("libjwt jwt_decode(), PEM key (kos before)", bench_rate(libjwt_decode, &b, 4), base,
	       "OpenSSL", NULL);

	report("kos verify, cached (revocation check 1s+hint)", bench_rate(cached_verify, &b, 4), 1e6,
	       "1M/s", ">= 1.0x");
	kos_ca_set_revocation_check(b.ca, 0);
	report("kos verify, cached, store read every time", bench_rate(cached_verify, &b, 4), 1e6, "1M/s",
	       NULL);
	rc = 0;
out:
	if (rc != 0)
		fprintf(stderr, "bench: %s\n", kos_last_error());
	if (b.many != NULL)
		for (i = 0; i < UNCACHED_TOKENS; i++)
			kos_cred_free(b.many[i]);
	if (b.each != NULL)
		for (i = 0; i < UNCACHED_TOKENS; i++)
			OPENSSL_free(b.each[i].der_sig);
	free(b.many);
	free(b.each);
	kos_cred_free(b.token);
	kos_free(b.pem);
	OPENSSL_free(b.one.der_sig);
	EVP_PKEY_free(b.pub);
	kos_ca_free(b.ca);
	kos_trust_free(tr);
	kos_signer_forget(b.hsm);
	kos_hsm_free(b.hsm);
	kos_store_free(st);
	kos_policy_free(pol);
	kos_config_free(conf);
	OPENSSL_cleanse(secret, sizeof(secret));
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	if (system(path) != 0)
		fprintf(stderr, "bench: could not remove %s\n", dir);
	return rc;
}
