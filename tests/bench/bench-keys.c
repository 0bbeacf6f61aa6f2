/* Benchmarks of HSM-held keys, each beside a baseline measured in the same
 * run on the same machine:
 *  - server-side decrypt of 1 KiB with a cached DEK vs raw OpenSSL
 *    AES-256-GCM decrypt of 1 KiB (goal >= 0.8x);
 *  - DEK reconstruction from shares on SoftHSM tokens, uncached;
 *  - P-256 signing through libkos vs direct SoftHSM C_Sign on the same key
 *    (goal >= 0.9x). */
#include "config.h"

#include "kos/hsm.h"
#include "kos/internal.h"
#include "tests/bench/bench.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


struct gcm {
	EVP_CIPHER_CTX *ctx;
	unsigned char key[32], iv[12], ct[1024], pt[1024], tag[16];
};

/* The baseline: one whole AES-256-GCM decryption of 1 KiB with its own key
 * set-up and tag check. */
static int gcm_decrypt(void *arg)
{
	struct gcm *g = arg;
	int len;

	if (EVP_DecryptInit_ex(g->ctx, EVP_aes_256_gcm(), NULL, g->key, g->iv) != 1 ||
	    EVP_DecryptUpdate(g->ctx, g->pt, &len, g->ct, sizeof(g->ct)) != 1 ||
	    EVP_CIPHER_CTX_ctrl(g->ctx, EVP_CTRL_GCM_SET_TAG, 16, g->tag) != 1 ||
	    EVP_DecryptFinal_ex(g->ctx, g->pt + len, &len) != 1)
		return 1;
	return 0;
}

struct kb {
	kos_keys *keys;
	uint8_t *env;
	size_t env_len;
	kos_hsm *hsm;
	size_t tok;
	CK_OBJECT_HANDLE priv;
	uint8_t digest[32];
};

static int kos_decrypt(void *arg)
{
	struct kb *b = arg;
	uint8_t *pt;
	size_t len;

	if (kos_key_decrypt(b->keys, "ctx", b->env, b->env_len, &pt, &len) != KOS_OK)
		return 1;
	kos_secret_free(pt, len);
	return 0;
}

static int kos_reconstruct(void *arg)
{
	struct kb *b = arg;
	uint8_t dek[KOS_DEK_LEN];
	uint32_t v;

	if (kos_key_dek(b->keys, "bench", 0, dek, &v) != KOS_OK)
		return 1;
	OPENSSL_cleanse(dek, sizeof(dek));
	return 0;
}

static int kos_sign(void *arg)
{
	struct kb *b = arg;
	uint8_t *sig;
	size_t len;

	if (kos_key_sign(b->keys, "bench-ec", KOS_SIG_ECDSA_RAW, b->digest, 32, &sig, &len, NULL) !=
	    KOS_OK)
		return 1;
	kos_free(sig);
	return 0;
}

/* The baseline: C_SignInit + C_Sign (CKM_ECDSA over a SHA-256 digest) on one
 * open, logged-in session, the same key; the digest is computed per call as
 * kos computes it. */
static int direct_sign(void *arg)
{
	struct kb *b = arg;
	CK_MECHANISM mech = { CKM_ECDSA, NULL, 0 };
	kos_hsm_session s;
	uint8_t sig[64], digest[32];
	CK_ULONG len = sizeof(sig);
	CK_RV rv;

	if (kos_hsm_session_get(b->hsm, b->tok, &s) != KOS_OK)
		return 1;
	SHA256(b->digest, 32, digest);
	rv = s.f->C_SignInit(s.h, &mech, b->priv);
	if (rv == CKR_OK)
		rv = s.f->C_Sign(s.h, digest, 32, sig, &len);
	kos_hsm_session_put(b->hsm, &s, rv);
	return rv != CKR_OK;
}

static CK_OBJECT_HANDLE find_private(kos_hsm *hsm, size_t tok, const char *label)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_LABEL, (void *)label, strlen(label) },
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

static void report(const char *what, double r, double base, const char *base_name, const char *goal)
{
	printf("%-46s %10.0f/s  %6.2fx %s%s%s\n", what, r, r / base, base_name, goal ? "  goal " : "",
	       goal ? goal : "");
}

int main(int argc, char **argv)
{
	char dir[] = "/tmp/kos-bench-XXXXXX", path[128];
	const char *policy = argc > 1 ? argv[1] : "policy/default.policy";
	kos_config *conf = NULL;
	kos_policy *pol = NULL, *nocache = NULL;
	kos_store *st = NULL;
	struct kb b = { 0 };
	struct gcm g = { 0 };
	double base, direct;
	int len;

	g.ctx = EVP_CIPHER_CTX_new();
	RAND_bytes(g.key, sizeof(g.key));
	RAND_bytes(g.iv, sizeof(g.iv));
	if (EVP_EncryptInit_ex(g.ctx, EVP_aes_256_gcm(), NULL, g.key, g.iv) != 1 ||
	    EVP_EncryptUpdate(g.ctx, g.ct, &len, g.pt, sizeof(g.pt)) != 1 ||
	    EVP_EncryptFinal_ex(g.ctx, g.ct + len, &len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(g.ctx, EVP_CTRL_GCM_GET_TAG, 16, g.tag) != 1)
		return 1;

	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(path, sizeof(path), "%s/inst", dir);
	if (kos_devinit(path, 0, policy, NULL) != KOS_OK)
		goto fail;
	snprintf(path, sizeof(path), "%s/inst/kos.conf", dir);
	if (kos_config_load(path, &conf, NULL) != KOS_OK ||
	    kos_policy_load(kos_config_get0_policy(conf), &pol, NULL) != KOS_OK ||
	    kos_store_open(kos_config_get0_store(conf), &st) != KOS_OK ||
	    kos_hsm_open(conf, 0, &b.hsm) != KOS_OK || kos_keys_new(pol, st, b.hsm, &b.keys) != KOS_OK)
		goto fail;
	if (kos_key_create(b.keys, "bench", KOS_KEY_DEK) != KOS_OK ||
	    kos_key_create(b.keys, "bench-ec", KOS_KEY_EC_P256) != KOS_OK)
		goto fail;
	memset(g.pt, 'p', sizeof(g.pt));
	if (kos_key_encrypt(b.keys, "bench", "ctx", g.pt, sizeof(g.pt), &b.env, &b.env_len) != KOS_OK)
		goto fail;

	base = bench_rate(gcm_decrypt, &g, 4);
	printf("%-46s %10.0f/s  (baseline)\n", "OpenSSL AES-256-GCM decrypt 1 KiB", base);
	report("kos server-side decrypt 1 KiB, cached DEK", bench_rate(kos_decrypt, &b, 4), base, "AES-GCM",
	       ">= 0.8x");

	/* uncached: a policy whose cache time is 0 */
	if (kos_policy_new_default(&nocache) != KOS_OK)
		goto fail;
	*nocache = *pol;
	nocache->path = NULL;
	nocache->keys.cache = 0;
	kos_keys_set_policy(b.keys, nocache);
	report("DEK reconstruction from shares, uncached", bench_rate(kos_reconstruct, &b, 4), base, "AES-GCM",
	       NULL);
	kos_keys_set_policy(b.keys, pol);

	if (kos_hsm_token_find(b.hsm, "signer", &b.tok) != KOS_OK)
		goto fail;
	b.priv = find_private(b.hsm, b.tok, "kos-sign:bench-ec:1");
	if (b.priv == CK_INVALID_HANDLE) {
		fprintf(stderr, "bench: the signing key's handle was not found\n");
		goto fail;
	}
	RAND_bytes(b.digest, sizeof(b.digest));
	direct = bench_rate(direct_sign, &b, 4);
	printf("%-46s %10.0f/s  (baseline)\n", "SoftHSM C_Sign P-256, direct", direct);
	report("kos P-256 sign (libkos)", bench_rate(kos_sign, &b, 4), direct, "C_Sign", ">= 0.9x");

	kos_free(b.env);
	kos_keys_free(b.keys);
	kos_hsm_free(b.hsm);
	kos_store_free(st);
	kos_policy_free(nocache);
	kos_policy_free(pol);
	kos_config_free(conf);
	EVP_CIPHER_CTX_free(g.ctx);
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	return system(path) != 0;
fail:
	fprintf(stderr, "bench: %s\n", kos_last_error());
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	if (system(path) != 0)
		fprintf(stderr, "bench: could not remove %s\n", dir);
	return 1;
}
