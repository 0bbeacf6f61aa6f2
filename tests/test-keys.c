/* The key service against a real installation (SoftHSM tokens, SQLite):
 * DEK shares on distinct tokens, envelopes, rotation and retirement, lost
 * and lying tokens, all-or-nothing creation with injected failures and
 * crashes, fsck, share references for the medium tier, rotation and cache
 * expiry by a simulated clock, signing keys, and bad input. */
#include "config.h"

#include "kos/hsm.h"
#include "kos/internal.h"
#include "kos/signer.h"
#include "kos/store_backend.h"
#include "tests/kos-test.h"

#include <dirent.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SEC KOS_USEC_PER_SEC
#define MIN (60 * SEC)
#define DAY (86400 * SEC)

/* SoftHSM 2.6.1 leaks an ASN.1 object in every C_SignInit with an EdDSA key
 * (see tests/test-signer.c); kos's own leaks are still reported. */
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

static char inst[512];
static char conf_path[600];
static kos_config *conf;
static kos_policy *pol;
static struct kos_policy nocache; /* pol with keys.cache = 0 */
static kos_store *st;
static kos_hsm *hsm;
static kos_keys *keys;

/* --- set-up --------------------------------------------------------------------- */

static int open_all(void)
{
	if (kos_hsm_open(conf, 0, &hsm) != KOS_OK || kos_keys_new(pol, st, hsm, &keys) != KOS_OK) {
		fprintf(stderr, "open: %s\n", kos_last_error());
		return 1;
	}
	return 0;
}

/* Frees the key service and the backend handle: the module is finalized,
 * so token directories can be moved and are scanned again on open. */
static void close_all(void)
{
	kos_keys_free(keys);
	keys = NULL;
	kos_hsm_free(hsm);
	hsm = NULL;
}

static int suite_init(void)
{
	char *diag = NULL;

	snprintf(inst, sizeof(inst), "%s/inst", kos_test_tmpdir());
	snprintf(conf_path, sizeof(conf_path), "%s/kos.conf", inst);
	if (kos_devinit(inst, 0, kos_test_srcpath("policy/default.policy"), NULL) != KOS_OK) {
		fprintf(stderr, "kos_devinit: %s\n", kos_last_error());
		return 1;
	}
	if (kos_config_load(conf_path, &conf, &diag) != KOS_OK ||
	    kos_policy_load(kos_config_get0_policy(conf), &pol, &diag) != KOS_OK ||
	    kos_store_open(kos_config_get0_store(conf), &st) != KOS_OK) {
		fprintf(stderr, "set-up: %s\n", diag ? diag : kos_last_error());
		kos_free(diag);
		return 1;
	}
	nocache = *pol;
	nocache.path = NULL;
	nocache.keys.cache = 0;
	return open_all();
}

static int suite_cleanup(void)
{
	close_all();
	kos_store_free(st);
	kos_policy_free(pol);
	kos_config_free(conf);
	return 0;
}

/* --- helpers ------------------------------------------------------------------- */

static size_t tok_of(const char *name)
{
	size_t tok = (size_t)-1;

	CU_ASSERT_EQUAL(kos_hsm_token_find(hsm, name, &tok), KOS_OK);
	return tok;
}

struct prefix_count {
	const char *prefix;
	size_t n;
};

static kos_rv count_label(const char *label, void *arg)
{
	struct prefix_count *c = arg;

	if (strncmp(label, c->prefix, strlen(c->prefix)) == 0)
		c->n++;
	return KOS_OK;
}

/* kos data objects whose label starts with prefix, on every token. */
static size_t objects_with(const char *prefix)
{
	struct prefix_count c = {prefix, 0};
	size_t i;

	for (i = 0; i < kos_hsm_token_count(hsm); i++)
		CU_ASSERT_EQUAL(kos_hsm_data_list(hsm, i, prefix, count_label, &c), KOS_OK);
	return c.n;
}

static size_t key_pairs_with(const char *prefix)
{
	struct prefix_count c = {prefix, 0};

	CU_ASSERT_EQUAL(kos_signer_list(hsm, tok_of("signer"), prefix, count_label, &c), KOS_OK);
	return c.n;
}

static void expected_kcv(const uint8_t dek[KOS_DEK_LEN], uint8_t kcv[KOS_KCV_LEN])
{
	unsigned char mac[32];
	unsigned int len = sizeof(mac);

	CU_ASSERT_PTR_NOT_NULL_FATAL(
	    HMAC(EVP_sha256(), dek, KOS_DEK_LEN, (const unsigned char *)"kos-kcv", 7, mac, &len));
	memcpy(kcv, mac, KOS_KCV_LEN);
}

/* Moves the named tokens out of the token directory (lost) or back. Call
 * between close_all() and open_all(). */
static void move_tokens(const char *const *names, size_t n, int lose)
{
	char dir[1300], moved[1300];
	size_t i;

	for (i = 0; i < n; i++) {
		snprintf(moved, sizeof(moved), "%s/lost-%s", inst, names[i]);
		if (lose) {
			CU_ASSERT_FATAL(kos_test_token_dir(inst, names[i], dir, sizeof(dir)));
			CU_ASSERT_EQUAL_FATAL(rename(dir, moved), 0);
		} else {
			snprintf(dir, sizeof(dir), "%s/tokens/back-%s", inst, names[i]);
			CU_ASSERT_EQUAL_FATAL(rename(moved, dir), 0);
		}
	}
}

/* The share locations of name at version, from the store. */
static void locations(const char *name, uint32_t version, struct kos_store_version *v)
{
	CU_ASSERT_EQUAL_FATAL(kos_store_key_version_get(st, name, version, v), KOS_OK);
}

/* The distinct tokens holding the shares of set in v. */
static size_t set_tokens(const struct kos_store_version *v, const char *set, const char **out)
{
	size_t i, n = 0;

	for (i = 0; i < v->n_shares; i++)
		if (strcmp(v->shares[i].set, set) == 0)
			out[n++] = v->shares[i].token;
	return n;
}

static kos_usec sim_now;

static kos_usec sim_clock(void *arg)
{
	(void)arg;
	return sim_now;
}

/* Replaces the share at loc by other bytes under the same label. */
static void overwrite_share(const struct kos_store_share *loc, const char *text)
{
	size_t tok = tok_of(loc->token);

	CU_ASSERT_EQUAL_FATAL(kos_hsm_data_destroy(hsm, tok, loc->label), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_hsm_data_put(hsm, tok, loc->label, text, strlen(text)), KOS_OK);
}

/* A well-formed share of x that is not on the key's polynomial. */
static void forge_share(uint8_t x, char *out, size_t len)
{
	uint8_t y[KOS_DEK_LEN];
	kos_share sh = {.x = x, .len = sizeof(y), .y = y};
	char *line = NULL;

	CU_ASSERT_EQUAL_FATAL(RAND_bytes(y, sizeof(y)), 1);
	CU_ASSERT_EQUAL_FATAL(kos_share_format(&sh, &line), KOS_OK);
	snprintf(out, len, "%s", line);
	kos_secret_free(line, strlen(line));
}

static uint64_t failures_of(const char *token)
{
	struct kos_hsm_stats s;

	CU_ASSERT_EQUAL(kos_hsm_token_stats(hsm, tok_of(token), &s), KOS_OK);
	return s.failures;
}

/* --- names ------------------------------------------------------------------------ */

static void test_names_and_types(void)
{
	static const char *const good[] = {"a", "payments", "Pay.ments_2-x", "0",
					   "a234567890123456789012345678901234567890123456789"
					   "012345678901234"};
	static const char *const bad[] = {"",
					  ".hidden",
					  "-dash",
					  "a:b",
					  "a b",
					  "sl/ash",
					  "é",
					  "a234567890123456789012345678901234567890123456789"
					  "0123456789012345"};
	kos_key_type t;
	kos_sig_alg a;
	size_t i;

	for (i = 0; i < KOS_ARRAY_SIZE(good); i++)
		CU_ASSERT(kos_key_name_valid(good[i]));
	for (i = 0; i < KOS_ARRAY_SIZE(bad); i++)
		CU_ASSERT_FALSE(kos_key_name_valid(bad[i]));
	CU_ASSERT_FALSE(kos_key_name_valid(NULL));
	for (i = 0; i <= KOS_KEY_RSA_3072; i++) {
		CU_ASSERT_EQUAL(kos_key_type_parse(kos_key_type_name((kos_key_type)i), &t), KOS_OK);
		CU_ASSERT_EQUAL(t, (kos_key_type)i);
	}
	CU_ASSERT_STRING_EQUAL(kos_key_type_name(KOS_KEY_EC_P256), "ec-p256");
	CU_ASSERT_EQUAL(kos_key_type_parse("aes", &t), KOS_E_INVALID);
	CU_ASSERT(strstr(kos_last_error(), "rsa-3072") != NULL);
	for (i = 0; i <= KOS_SIG_RSA_PSS; i++) {
		CU_ASSERT_EQUAL(kos_sig_alg_parse(kos_sig_alg_name((kos_sig_alg)i), &a), KOS_OK);
		CU_ASSERT_EQUAL(a, (kos_sig_alg)i);
	}
	CU_ASSERT_STRING_EQUAL(kos_sig_alg_name(KOS_SIG_ECDSA_DER), "ecdsa-der");
	CU_ASSERT_EQUAL(kos_sig_alg_parse("md5", &a), KOS_E_INVALID);
}

/* --- creation ---------------------------------------------------------------------- */

static void test_create_dek_shares_on_distinct_tokens(void)
{
	struct kos_store_version v;
	kos_key_info info;
	const char *toks[8];
	uint8_t dek[KOS_DEK_LEN], kcv[KOS_KCV_LEN];
	uint32_t version = 0;
	size_t i, j, n, per_token[5] = {0};

	CU_ASSERT_EQUAL_FATAL(kos_key_create(keys, "payments", KOS_KEY_DEK), KOS_OK);
	locations("payments", 0, &v);
	CU_ASSERT_EQUAL(v.version, 1);
	CU_ASSERT_EQUAL(v.state, KOS_KEY_STATE_ACTIVE);
	/* one share set per share set of the policy */
	CU_ASSERT_EQUAL_FATAL(v.n_sets, 2);
	CU_ASSERT_STRING_EQUAL(v.sets[0].name, "narrow");
	CU_ASSERT_EQUAL(v.sets[0].n, 3);
	CU_ASSERT_EQUAL(v.sets[0].k, 2);
	CU_ASSERT_STRING_EQUAL(v.sets[1].name, "wide");
	CU_ASSERT_EQUAL(v.sets[1].n, 5);
	CU_ASSERT_EQUAL(v.sets[1].k, 3);
	CU_ASSERT_EQUAL_FATAL(v.n_shares, 8);
	/* within a set, every share on its own KMS token */
	for (int s = 0; s < 2; s++) {
		n = set_tokens(&v, v.sets[s].name, toks);
		CU_ASSERT_EQUAL(n, v.sets[s].n);
		for (i = 0; i < n; i++) {
			size_t tok = tok_of(toks[i]);

			CU_ASSERT_EQUAL(kos_hsm_token_role(hsm, tok), KOS_TOKEN_ROLE_KMS);
			per_token[tok < 5 ? tok : 0]++;
			for (j = 0; j < i; j++)
				CU_ASSERT_STRING_NOT_EQUAL(toks[i], toks[j]);
		}
	}
	/* 8 shares over 5 tokens, least loaded first: 2, 2, 2, 1, 1 */
	for (i = 0; i < 5; i++)
		CU_ASSERT(per_token[i] == 1 || per_token[i] == 2);
	/* each object is there, labelled and holding the share of its x */
	for (i = 0; i < v.n_shares; i++) {
		char label[130];
		uint8_t *data = NULL;
		size_t len = 0;
		kos_share sh;

		snprintf(label, sizeof(label), "kos-share:payments:1:%s:%u", v.shares[i].set,
			 v.shares[i].x);
		CU_ASSERT_STRING_EQUAL(v.shares[i].label, label);
		CU_ASSERT_EQUAL_FATAL(
		    kos_hsm_data_get(hsm, tok_of(v.shares[i].token), label, &data, &len), KOS_OK);
		CU_ASSERT_EQUAL(kos_share_parse((const char *)data, len, &sh), KOS_OK);
		CU_ASSERT_EQUAL(sh.x, v.shares[i].x);
		CU_ASSERT_EQUAL(sh.len, KOS_DEK_LEN);
		kos_shares_clear(&sh, 1);
		kos_secret_free(data, len);
	}
	CU_ASSERT_EQUAL(objects_with("kos-share:payments:"), 8);
	/* the key check value is HMAC-SHA256(DEK, "kos-kcv") */
	CU_ASSERT_EQUAL_FATAL(kos_key_dek(keys, "payments", 0, dek, &version), KOS_OK);
	CU_ASSERT_EQUAL(version, 1);
	expected_kcv(dek, kcv);
	CU_ASSERT(v.has_kcv);
	CU_ASSERT_EQUAL(memcmp(v.kcv, kcv, KOS_KCV_LEN), 0);
	kos_store_version_clear(&v);

	CU_ASSERT_EQUAL_FATAL(kos_key_get_info(keys, "payments", &info), KOS_OK);
	CU_ASSERT_STRING_EQUAL(info.name, "payments");
	CU_ASSERT_EQUAL(info.type, KOS_KEY_DEK);
	CU_ASSERT_EQUAL(info.current, 1);
	CU_ASSERT_EQUAL(info.min_version, 1);
	CU_ASSERT_EQUAL(info.versions, 1);
	CU_ASSERT(info.created > 0 && info.rotated == info.created);
	OPENSSL_cleanse(dek, sizeof(dek));
}

static int count_share_info(const kos_key_share_info *s, void *arg)
{
	(*(unsigned *)arg)++;
	CU_ASSERT(strncmp(s->label, "kos-share:", 10) == 0);
	CU_ASSERT(s->token[0] != '\0');
	return 0;
}

static int first_version(const kos_key_version_info *v, void *arg)
{
	*(kos_key_version_info *)arg = *v;
	return 1; /* stop */
}

static void test_versions_and_share_listing(void)
{
	kos_key_version_info vi;
	unsigned n = 0;

	memset(&vi, 0, sizeof(vi));
	CU_ASSERT_EQUAL(kos_key_versions(keys, "payments", first_version, &vi), 1);
	CU_ASSERT_EQUAL(vi.version, 1);
	CU_ASSERT_FALSE(vi.retired);
	CU_ASSERT_EQUAL(vi.n_sets, 2);
	CU_ASSERT_STRING_EQUAL(vi.sets[1].name, "wide");
	CU_ASSERT_EQUAL(vi.sets[1].k, 3);
	CU_ASSERT_EQUAL(kos_key_shares(keys, "payments", 0, count_share_info, &n), KOS_OK);
	CU_ASSERT_EQUAL(n, 8);
	CU_ASSERT_EQUAL(kos_key_shares(keys, "nokey", 0, count_share_info, &n), KOS_E_NOTFOUND);
}

static void test_create_refusals(void)
{
	struct kos_policy big = *pol;
	struct kos_store_key key;

	CU_ASSERT_EQUAL(kos_key_create(keys, "payments", KOS_KEY_DEK), KOS_E_EXISTS);
	CU_ASSERT_EQUAL(kos_key_create(keys, "-bad", KOS_KEY_DEK), KOS_E_INVALID);
	CU_ASSERT(strstr(kos_last_error(), "invalid key name") != NULL);
	CU_ASSERT_EQUAL(kos_key_create(keys, "a:b", KOS_KEY_DEK), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_key_create(keys, NULL, KOS_KEY_DEK), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_key_create(keys, "typeless", (kos_key_type)42), KOS_E_INVALID);

	/* a share set wider than the KMS tokens there are */
	big.path = NULL;
	big.share_sets[1].n = 7;
	big.share_sets[1].k = 4;
	kos_keys_set_policy(keys, &big);
	CU_ASSERT_EQUAL(kos_key_create(keys, "too-wide", KOS_KEY_DEK), KOS_E_RANGE);
	CU_ASSERT(strstr(kos_last_error(), "share set wide needs 7 distinct KMS tokens") != NULL);
	CU_ASSERT(strstr(kos_last_error(), "has 5") != NULL);
	CU_ASSERT_EQUAL(kos_key_rotate(keys, "payments", NULL), KOS_E_RANGE);
	kos_keys_set_policy(keys, pol);
	/* nothing was written */
	CU_ASSERT_EQUAL(kos_store_key_get(st, "too-wide", &key), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(objects_with("kos-share:too-wide:"), 0);
	CU_ASSERT_EQUAL(objects_with("kos-share:payments:2:"), 0);
}

/* --- envelopes ----------------------------------------------------------------------- */

static void test_encrypt_decrypt_round_trip(void)
{
	static const uint8_t msg[] = "a payment of 12.00 EUR";
	uint8_t *env = NULL, *pt = NULL, *pt2 = NULL;
	uint8_t dek[KOS_DEK_LEN];
	size_t env_len = 0, len = 0, len2 = 0;
	kos_envelope_info info;
	uint32_t v;

	CU_ASSERT_EQUAL_FATAL(
	    kos_key_encrypt(keys, "payments", "order-1", msg, sizeof(msg), &env, &env_len), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_envelope_parse(env, env_len, &info), KOS_OK);
	CU_ASSERT_STRING_EQUAL(info.key_name, "payments");
	CU_ASSERT_EQUAL(info.key_version, 1);
	CU_ASSERT_EQUAL_FATAL(kos_key_decrypt(keys, "order-1", env, env_len, &pt, &len), KOS_OK);
	CU_ASSERT_EQUAL(len, sizeof(msg));
	CU_ASSERT_EQUAL(memcmp(pt, msg, len), 0);
	kos_secret_free(pt, len);
	/* the same format as kos_envelope_open() with the DEK itself */
	CU_ASSERT_EQUAL_FATAL(kos_key_dek(keys, "payments", 1, dek, &v), KOS_OK);
	CU_ASSERT_EQUAL(kos_envelope_open(dek, env, env_len, "order-1", &pt2, &len2), KOS_OK);
	CU_ASSERT(len2 == sizeof(msg) && memcmp(pt2, msg, len2) == 0);
	kos_secret_free(pt2, len2);
	/* a wrong context fails the tag, and gives nothing */
	pt = (uint8_t *)&pt;
	CU_ASSERT_EQUAL(kos_key_decrypt(keys, "order-2", env, env_len, &pt, &len), KOS_E_INTEGRITY);
	CU_ASSERT_PTR_NULL(pt);
	CU_ASSERT(strstr(kos_last_error(), "failed authentication") != NULL);
	CU_ASSERT_EQUAL(kos_key_decrypt(keys, NULL, env, env_len, &pt, &len), KOS_E_INTEGRITY);
	kos_free(env);

	/* sealed by whoever holds the DEK (a high-tier client), opened by kos */
	CU_ASSERT_EQUAL_FATAL(
	    kos_envelope_seal(dek, "payments", 1, NULL, (const uint8_t *)"", 0, &env, &env_len),
	    KOS_OK);
	CU_ASSERT_EQUAL(kos_key_decrypt(keys, "", env, env_len, &pt, &len), KOS_OK);
	CU_ASSERT_EQUAL(len, 0);
	kos_secret_free(pt, len);
	kos_free(env);
	OPENSSL_cleanse(dek, sizeof(dek));
}

/* AES-256-GCM by OpenSSL alone, the reference the caller-given-IV path is
 * held to: out gets len bytes and the taglen-byte tag after them. */
static int raw_gcm(int enc, const uint8_t *key, const uint8_t *iv, const uint8_t *aad,
		   size_t aad_len, const uint8_t *in, size_t len, uint8_t *out, size_t taglen)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n = 0, ok;

	ok = ctx != NULL && EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, iv, enc) == 1 &&
	     (aad_len == 0 || EVP_CipherUpdate(ctx, NULL, &n, aad, (int)aad_len) == 1) &&
	     EVP_CipherUpdate(ctx, out, &n, in, (int)len) == 1;
	if (ok && !enc)
		ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, (int)taglen,
					 (void *)(in + len)) == 1;
	ok = ok && EVP_CipherFinal_ex(ctx, out + len, &n) == 1;
	if (ok && enc)
		ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, (int)taglen, out + len) == 1;
	EVP_CIPHER_CTX_free(ctx);
	return ok;
}

/* CKM_AES_GCM's semantics: the caller's IV, additional data and tag
 * length, the tag after the ciphertext; what kos makes OpenSSL opens with
 * the DEK and the other way round, for each tag length and for empty and
 * long additional data and plaintext. */
static void test_gcm_caller_iv_interop(void)
{
	static const size_t aad_lens[] = { 0, 20, KOS_GCM_AAD_MAX };
	static const size_t pt_lens[] = { 0, 1, 60, 4096 };
	uint8_t dek[KOS_DEK_LEN], iv[KOS_GCM_IV_LEN], *aad, *msg, *ref;
	size_t a, m, tl;
	uint32_t v = 0;

	aad = malloc(KOS_GCM_AAD_MAX);
	msg = malloc(4096);
	ref = malloc(4096 + 16);
	CU_ASSERT_FATAL(aad != NULL && msg != NULL && ref != NULL);
	CU_ASSERT_EQUAL_FATAL(RAND_bytes(aad, KOS_GCM_AAD_MAX), 1);
	CU_ASSERT_EQUAL_FATAL(RAND_bytes(msg, 4096), 1);
	CU_ASSERT_EQUAL_FATAL(RAND_bytes(iv, sizeof(iv)), 1);
	CU_ASSERT_EQUAL_FATAL(kos_key_create(keys, "gcm-1", KOS_KEY_DEK), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_key_dek(keys, "gcm-1", 1, dek, &v), KOS_OK);
	for (a = 0; a < KOS_ARRAY_SIZE(aad_lens); a++)
		for (m = 0; m < KOS_ARRAY_SIZE(pt_lens); m++)
			for (tl = KOS_GCM_TAG_MIN; tl <= KOS_GCM_TAG_MAX; tl += 2) {
				kos_gcm_params p = { iv, sizeof(iv), aad, aad_lens[a], tl };
				size_t n = pt_lens[m], ct_len = 0, len = 0;
				uint8_t *ct = NULL, *pt = NULL;

				v = 0;
				CU_ASSERT_EQUAL_FATAL(kos_key_gcm_encrypt(keys, "gcm-1", 0, &p, msg,
									  n, &ct, &ct_len, &v),
						      KOS_OK);
				CU_ASSERT_EQUAL(v, 1);
				CU_ASSERT_EQUAL_FATAL(ct_len, n + tl);
				CU_ASSERT_FATAL(raw_gcm(1, dek, iv, aad, aad_lens[a], msg, n, ref,
							tl));
				CU_ASSERT(memcmp(ct, ref, n + tl) == 0);
				/* OpenSSL opens kos's ... */
				CU_ASSERT(raw_gcm(0, dek, iv, aad, aad_lens[a], ct, n, ref, tl));
				CU_ASSERT(memcmp(ref, msg, n) == 0);
				/* ... and kos opens OpenSSL's */
				CU_ASSERT(raw_gcm(1, dek, iv, aad, aad_lens[a], msg, n, ct, tl));
				CU_ASSERT_EQUAL(kos_key_gcm_decrypt(keys, "gcm-1", 1, &p, ct, ct_len,
								    &pt, &len),
						KOS_OK);
				CU_ASSERT(len == n && (n == 0 || memcmp(pt, msg, n) == 0));
				kos_secret_free(pt, len);
				kos_free(ct);
			}
	/* the version named when it is the current one */
	{
		kos_gcm_params p = { iv, sizeof(iv), NULL, 0, 16 };
		uint8_t *ct = NULL;
		size_t ct_len = 0;

		CU_ASSERT_EQUAL(kos_key_gcm_encrypt(keys, "gcm-1", 1, &p, msg, 16, &ct, &ct_len,
						    NULL),
				KOS_OK);
		kos_free(ct);
	}
	OPENSSL_cleanse(dek, sizeof(dek));
	free(aad);
	free(msg);
	free(ref);
}

/* Every way a GCM ciphertext can be wrong is refused with a clear reason
 * and hands nothing out; parameters outside kos's limits are refused
 * before a key is touched; versions follow the key's life. */
static void test_gcm_refusals(void)
{
	static const uint8_t msg[] = "card 4111 1111 1111 1111";
	uint8_t iv[KOS_GCM_IV_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 }, iv2[16];
	uint8_t aad[] = "record 7", *ct = NULL, *bad, *pt, *out = NULL, big[1];
	kos_gcm_params p = { iv, sizeof(iv), aad, sizeof(aad), 16 }, q;
	size_t ct_len = 0, len, i;
	uint32_t v = 0;

	CU_ASSERT_EQUAL_FATAL(kos_key_gcm_encrypt(keys, "gcm-1", 0, &p, msg, sizeof(msg), &ct,
						  &ct_len, &v),
			      KOS_OK);
	bad = malloc(ct_len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bad);
	/* a flipped bit anywhere, in the ciphertext or the tag */
	for (i = 0; i < ct_len * 8; i += 7) {
		memcpy(bad, ct, ct_len);
		bad[i / 8] ^= (uint8_t)(1u << (i % 8));
		pt = (uint8_t *)&pt;
		len = 99;
		CU_ASSERT_EQUAL(kos_key_gcm_decrypt(keys, "gcm-1", v, &p, bad, ct_len, &pt, &len),
				KOS_E_INTEGRITY);
		CU_ASSERT(pt == NULL && len == 0);
	}
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "does not verify"));
	/* a wrong additional data, none, a wrong IV */
	q = p;
	q.aad_len--;
	pt = NULL;
	CU_ASSERT_EQUAL(kos_key_gcm_decrypt(keys, "gcm-1", v, &q, ct, ct_len, &pt, &len),
			KOS_E_INTEGRITY);
	q.aad = NULL;
	q.aad_len = 0;
	CU_ASSERT_EQUAL(kos_key_gcm_decrypt(keys, "gcm-1", v, &q, ct, ct_len, &pt, &len),
			KOS_E_INTEGRITY);
	q = p;
	memcpy(iv2, iv, sizeof(iv));
	iv2[11] ^= 1;
	q.iv = iv2;
	CU_ASSERT_EQUAL(kos_key_gcm_decrypt(keys, "gcm-1", v, &q, ct, ct_len, &pt, &len),
			KOS_E_INTEGRITY);
	CU_ASSERT_PTR_NULL(pt);
	/* a short tag: the last bytes cut off, the length kept, or a tag
	 * length outside 12..16; a ciphertext shorter than its tag */
	CU_ASSERT_EQUAL(kos_key_gcm_decrypt(keys, "gcm-1", v, &p, ct, ct_len - 4, &pt, &len),
			KOS_E_INTEGRITY);
	q = p;
	q.tag_len = 8;
	CU_ASSERT_EQUAL(kos_key_gcm_decrypt(keys, "gcm-1", v, &q, ct, ct_len - 8, &pt, &len),
			KOS_E_INVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "tag length must be 12 to 16"));
	CU_ASSERT_EQUAL(kos_key_gcm_decrypt(keys, "gcm-1", v, &p, ct, 15, &pt, &len),
			KOS_E_INVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "shorter than its 16-byte tag"));
	/* GCM's own rule: a truncated tag is the tag of that length */
	q.tag_len = 12;
	CU_ASSERT_EQUAL(kos_key_gcm_decrypt(keys, "gcm-1", v, &q, ct, ct_len - 4, &pt, &len),
			KOS_OK);
	CU_ASSERT(len == sizeof(msg) && memcmp(pt, msg, len) == 0);
	kos_secret_free(pt, len);
	pt = NULL;
	/* an IV of another length, additional data over the cap */
	q = p;
	q.iv = iv2;
	q.iv_len = 16;
	CU_ASSERT_EQUAL(kos_key_gcm_encrypt(keys, "gcm-1", 0, &q, msg, sizeof(msg), &out, &len,
					    NULL),
			KOS_E_INVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "IV must be 12 bytes"));
	CU_ASSERT_PTR_NULL(out);
	q = p;
	q.aad = big;
	q.aad_len = KOS_GCM_AAD_MAX + 1;
	CU_ASSERT_EQUAL(kos_key_gcm_decrypt(keys, "gcm-1", v, &q, ct, ct_len, &pt, &len),
			KOS_E_INVALID);
	/* no version to decrypt with; one not current to encrypt with; a
	 * version that is not the one encrypted with */
	CU_ASSERT_EQUAL(kos_key_gcm_decrypt(keys, "gcm-1", 0, &p, ct, ct_len, &pt, &len),
			KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_key_rotate(keys, "gcm-1", NULL), KOS_OK);
	CU_ASSERT_EQUAL(kos_key_gcm_encrypt(keys, "gcm-1", 1, &p, msg, sizeof(msg), &out, &len,
					    NULL),
			KOS_E_INVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "not current"));
	CU_ASSERT_EQUAL(kos_key_gcm_decrypt(keys, "gcm-1", 2, &p, ct, ct_len, &pt, &len),
			KOS_E_INTEGRITY);
	CU_ASSERT_EQUAL(kos_key_gcm_decrypt(keys, "gcm-1", 3, &p, ct, ct_len, &pt, &len),
			KOS_E_NOTFOUND);
	/* the old version still opens what it made, until it is retired */
	CU_ASSERT_EQUAL(kos_key_gcm_decrypt(keys, "gcm-1", 1, &p, ct, ct_len, &pt, &len), KOS_OK);
	kos_secret_free(pt, len);
	pt = NULL;
	CU_ASSERT_EQUAL(kos_key_retire(keys, "gcm-1", 1), KOS_OK);
	CU_ASSERT_EQUAL(kos_key_gcm_decrypt(keys, "gcm-1", 1, &p, ct, ct_len, &pt, &len),
			KOS_E_NOTFOUND);
	/* not a data key, no such key */
	CU_ASSERT_EQUAL(kos_key_create(keys, "gcm-sig", KOS_KEY_EC_P256), KOS_OK);
	CU_ASSERT_EQUAL(kos_key_gcm_encrypt(keys, "gcm-sig", 0, &p, msg, sizeof(msg), &out, &len,
					    NULL),
			KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_key_gcm_encrypt(keys, "gcm-none", 0, &p, msg, sizeof(msg), &out, &len,
					    NULL),
			KOS_E_NOTFOUND);
	CU_ASSERT_PTR_NULL(pt);
	free(bad);
	kos_free(ct);
}

static void test_uncached_round_trip(void)
{
	uint8_t *env = NULL, *pt = NULL;
	size_t env_len = 0, len = 0;

	kos_keys_set_policy(keys, &nocache);
	CU_ASSERT_EQUAL_FATAL(
	    kos_key_encrypt(keys, "payments", "c", (const uint8_t *)"x", 1, &env, &env_len),
	    KOS_OK);
	CU_ASSERT_EQUAL(kos_key_decrypt(keys, "c", env, env_len, &pt, &len), KOS_OK);
	CU_ASSERT(len == 1 && pt[0] == 'x');
	kos_secret_free(pt, len);
	kos_free(env);
	kos_keys_set_policy(keys, pol);
}

/* --- rotation and retirement ----------------------------------------------------- */

static int collect_versions(const kos_key_version_info *v, void *arg)
{
	kos_key_version_info *all = arg;

	if (v->version < 8)
		all[v->version] = *v;
	return 0;
}

static void test_rotate_then_decrypt_old_and_new(void)
{
	uint8_t *env1 = NULL, *env2 = NULL, *pt = NULL;
	size_t len1 = 0, len2 = 0, len = 0;
	kos_envelope_info info;
	kos_key_info ki;
	uint32_t v = 0;

	CU_ASSERT_EQUAL_FATAL(kos_key_create(keys, "rot", KOS_KEY_DEK), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(
	    kos_key_encrypt(keys, "rot", "c", (const uint8_t *)"one", 3, &env1, &len1), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_key_rotate(keys, "rot", &v), KOS_OK);
	CU_ASSERT_EQUAL(v, 2);
	CU_ASSERT_EQUAL_FATAL(
	    kos_key_encrypt(keys, "rot", "c", (const uint8_t *)"two", 3, &env2, &len2), KOS_OK);
	CU_ASSERT_EQUAL(kos_envelope_parse(env2, len2, &info), KOS_OK);
	CU_ASSERT_EQUAL(info.key_version, 2);
	CU_ASSERT_EQUAL(objects_with("kos-share:rot:2:"), 8);

	/* both decrypt, cached and not */
	for (int pass = 0; pass < 2; pass++) {
		kos_keys_set_policy(keys, pass == 0 ? pol : &nocache);
		CU_ASSERT_EQUAL(kos_key_decrypt(keys, "c", env1, len1, &pt, &len), KOS_OK);
		CU_ASSERT(len == 3 && memcmp(pt, "one", 3) == 0);
		kos_secret_free(pt, len);
		CU_ASSERT_EQUAL(kos_key_decrypt(keys, "c", env2, len2, &pt, &len), KOS_OK);
		CU_ASSERT(len == 3 && memcmp(pt, "two", 3) == 0);
		kos_secret_free(pt, len);
	}
	kos_keys_set_policy(keys, pol);
	CU_ASSERT_EQUAL(kos_key_get_info(keys, "rot", &ki), KOS_OK);
	CU_ASSERT_EQUAL(ki.current, 2);
	CU_ASSERT_EQUAL(ki.min_version, 1);
	CU_ASSERT_EQUAL(ki.versions, 2);
	CU_ASSERT(ki.rotated >= ki.created);
	kos_free(env1);
	kos_free(env2);
}

static void test_retire_refuses_old_envelopes_and_destroys_shares(void)
{
	kos_key_version_info all[8];
	struct kos_store_version v1;
	uint8_t *env1 = NULL, *pt = NULL, dek[KOS_DEK_LEN];
	size_t len1 = 0, len = 0, i;
	unsigned n = 0;
	kos_key_info ki;
	uint32_t v;

	/* an envelope of version 1, made through the DEK */
	CU_ASSERT_EQUAL_FATAL(kos_key_dek(keys, "rot", 1, dek, &v), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(
	    kos_envelope_seal(dek, "rot", 1, "c", (const uint8_t *)"old", 3, &env1, &len1), KOS_OK);
	OPENSSL_cleanse(dek, sizeof(dek));
	locations("rot", 1, &v1);
	CU_ASSERT_EQUAL(v1.n_shares, 8);

	CU_ASSERT_EQUAL(kos_key_retire(keys, "rot", 2), KOS_E_INVALID); /* current */
	CU_ASSERT(strstr(kos_last_error(), "current") != NULL);
	CU_ASSERT_EQUAL(kos_key_retire(keys, "rot", 9), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_key_retire(keys, "nokey", 1), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_key_retire(keys, "rot", 1), KOS_OK);
	CU_ASSERT_EQUAL(kos_key_retire(keys, "rot", 1), KOS_E_NOTFOUND);

	/* refused, from the cache or not */
	pt = (uint8_t *)&pt;
	CU_ASSERT_EQUAL(kos_key_decrypt(keys, "c", env1, len1, &pt, &len), KOS_E_NOTFOUND);
	CU_ASSERT_PTR_NULL(pt);
	CU_ASSERT(strstr(kos_last_error(), "retired") != NULL);
	CU_ASSERT_EQUAL(kos_key_dek(keys, "rot", 1, dek, &v), KOS_E_NOTFOUND);
	/* its shares are gone from every token and from the store */
	for (i = 0; i < v1.n_shares; i++) {
		uint8_t *data = NULL;
		size_t dlen = 0;

		CU_ASSERT_EQUAL(kos_hsm_data_get(hsm, tok_of(v1.shares[i].token),
						 v1.shares[i].label, &data, &dlen),
				KOS_E_NOTFOUND);
	}
	CU_ASSERT_EQUAL(objects_with("kos-share:rot:1:"), 0);
	CU_ASSERT_EQUAL(objects_with("kos-share:rot:2:"), 8);
	CU_ASSERT_EQUAL(kos_key_shares(keys, "rot", 1, count_share_info, &n), KOS_OK);
	CU_ASSERT_EQUAL(n, 0);
	kos_store_version_clear(&v1);

	memset(all, 0, sizeof(all));
	CU_ASSERT_EQUAL(kos_key_versions(keys, "rot", collect_versions, all), KOS_OK);
	CU_ASSERT(all[1].retired);
	CU_ASSERT_FALSE(all[2].retired);
	CU_ASSERT_EQUAL(kos_key_get_info(keys, "rot", &ki), KOS_OK);
	CU_ASSERT_EQUAL(ki.current, 2);
	CU_ASSERT_EQUAL(ki.min_version, 2);
	CU_ASSERT_EQUAL(ki.versions, 1);
	kos_free(env1);
}

/* --- lost and lying tokens ---------------------------------------------------------- */

static void test_lost_tokens(void)
{
	struct kos_store_version v;
	const char *narrow[3], *wide[5], *lose[3];
	char names[5][33];
	uint8_t *env = NULL, *pt = NULL;
	size_t env_len = 0, len = 0, i, n_narrow, n_wide, n;
	kos_share_ref refs[255];
	unsigned k = 0;
	uint32_t ver;
	kos_rv rv;

	CU_ASSERT_EQUAL_FATAL(kos_key_create(keys, "lossy", KOS_KEY_DEK), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(
	    kos_key_encrypt(keys, "lossy", "c", (const uint8_t *)"keep", 4, &env, &env_len),
	    KOS_OK);
	locations("lossy", 1, &v);
	n_narrow = set_tokens(&v, "narrow", narrow);
	n_wide = set_tokens(&v, "wide", wide);
	CU_ASSERT_EQUAL_FATAL(n_narrow, 3);
	CU_ASSERT_EQUAL_FATAL(n_wide, 5);
	for (i = 0; i < 3; i++) {
		snprintf(names[i], sizeof(names[i]), "%s", narrow[i]);
		lose[i] = names[i];
	}
	kos_store_version_clear(&v);

	/* n - k of each set gone (one of narrow, two of the five for wide):
	 * a fresh service (nothing cached) still decrypts */
	for (n = 1; n <= 2; n++) {
		close_all();
		move_tokens(lose, n, 1);
		CU_ASSERT_EQUAL_FATAL(open_all(), 0);
		rv = kos_key_decrypt(keys, "c", env, env_len, &pt, &len);
		CU_ASSERT_EQUAL(rv, KOS_OK);
		if (rv != KOS_OK)
			fprintf(stderr, "\n%zu lost: %s\n", n, kos_last_error());
		CU_ASSERT(len == 4 && memcmp(pt, "keep", 4) == 0);
		kos_secret_free(pt, len);
		pt = NULL;
		/* share references name only reachable tokens */
		CU_ASSERT_EQUAL(kos_key_share_refs(keys, "lossy", 0, "wide", refs, &len, &k, &ver),
				KOS_OK);
		CU_ASSERT_EQUAL(len, 3);
		for (i = 0; i < len; i++)
			for (size_t j = 0; j < n; j++)
				CU_ASSERT_STRING_NOT_EQUAL(refs[i].kms_token, lose[j]);
		close_all();
		move_tokens(lose, n, 0);
		CU_ASSERT_EQUAL_FATAL(open_all(), 0);
	}

	/* three gone: every narrow token, so two of wide: fewer than k anywhere */
	close_all();
	move_tokens(lose, 3, 1);
	CU_ASSERT_EQUAL_FATAL(open_all(), 0);
	pt = (uint8_t *)&pt;
	rv = kos_key_decrypt(keys, "c", env, env_len, &pt, &len);
	CU_ASSERT_EQUAL(rv, KOS_E_IO);
	CU_ASSERT_PTR_NULL(pt);
	for (i = 0; i < 3; i++) {
		if (strstr(kos_last_error(), lose[i]) == NULL) {
			fprintf(stderr, "\n%s not named in: %s\n", lose[i], kos_last_error());
			CU_FAIL("a lost token is not named");
		}
	}
	CU_ASSERT(strstr(kos_last_error(), "cannot rebuild") != NULL);
	CU_ASSERT(strstr(kos_last_error(), "set wide: 2 of 3") != NULL);
	CU_ASSERT_EQUAL(kos_key_share_refs(keys, "lossy", 0, "narrow", refs, &len, &k, &ver),
			KOS_E_IO);
	CU_ASSERT(strstr(kos_last_error(), lose[0]) != NULL);
	/* other keys' versions and the store are untouched: the tokens come back */
	close_all();
	move_tokens(lose, 3, 0);
	CU_ASSERT_EQUAL_FATAL(open_all(), 0);
	CU_ASSERT_EQUAL(kos_key_decrypt(keys, "c", env, env_len, &pt, &len), KOS_OK);
	kos_secret_free(pt, len);
	kos_free(env);
}

static void test_wrong_share_detected(void)
{
	struct kos_store_version v;
	const struct kos_store_share *narrow[3] = {NULL, NULL, NULL}, *wide[5];
	uint8_t dek[KOS_DEK_LEN], first[KOS_DEK_LEN];
	char forged[128];
	uint64_t before;
	size_t i, nn = 0, nw = 0;
	uint32_t ver;
	kos_rv rv;

	CU_ASSERT_EQUAL_FATAL(kos_key_create(keys, "tamper", KOS_KEY_DEK), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_key_dek(keys, "tamper", 0, first, &ver), KOS_OK);
	locations("tamper", 1, &v);
	for (i = 0; i < v.n_shares; i++) {
		if (strcmp(v.shares[i].set, "narrow") == 0)
			narrow[nn++] = &v.shares[i];
		else
			wide[nw++] = &v.shares[i];
	}
	CU_ASSERT_EQUAL_FATAL(nn, 3);
	CU_ASSERT_EQUAL_FATAL(nw, 5);
	kos_keys_set_policy(keys, &nocache);

	/* one wrong share in narrow: still the right DEK, the token counted */
	forge_share(narrow[0]->x, forged, sizeof(forged));
	overwrite_share(narrow[0], forged);
	before = failures_of(narrow[0]->token);
	CU_ASSERT_EQUAL_FATAL(kos_key_dek(keys, "tamper", 0, dek, &ver), KOS_OK);
	CU_ASSERT_EQUAL(memcmp(dek, first, KOS_DEK_LEN), 0);
	CU_ASSERT(failures_of(narrow[0]->token) > before);

	/* garbage in a second: narrow cannot give it, wide does */
	overwrite_share(narrow[1], "not a share at all");
	CU_ASSERT_EQUAL_FATAL(kos_key_dek(keys, "tamper", 0, dek, &ver), KOS_OK);
	CU_ASSERT_EQUAL(memcmp(dek, first, KOS_DEK_LEN), 0);

	/* two wrong shares of five in wide: three good ones remain */
	for (i = 0; i < 2; i++) {
		forge_share(wide[i]->x, forged, sizeof(forged));
		overwrite_share(wide[i], forged);
	}
	CU_ASSERT_EQUAL_FATAL(kos_key_dek(keys, "tamper", 0, dek, &ver), KOS_OK);
	CU_ASSERT_EQUAL(memcmp(dek, first, KOS_DEK_LEN), 0);

	/* a third: no three of wide agree; the failure names the liars */
	forge_share(wide[2]->x, forged, sizeof(forged));
	overwrite_share(wide[2], forged);
	rv = kos_key_dek(keys, "tamper", 0, dek, &ver);
	CU_ASSERT_EQUAL(rv, KOS_E_INTEGRITY);
	for (i = 0; i < 3; i++)
		CU_ASSERT(strstr(kos_last_error(), wide[i]->token) != NULL);
	CU_ASSERT(strstr(kos_last_error(), narrow[1]->token) != NULL);
	CU_ASSERT(strstr(kos_last_error(), "not a share of this key") != NULL);
	for (i = 0; i < KOS_DEK_LEN; i++)
		CU_ASSERT_EQUAL(dek[i], 0); /* wiped, not half a key */
	kos_keys_set_policy(keys, pol);
	kos_store_version_clear(&v);
	OPENSSL_cleanse(first, sizeof(first));
}

/* --- all or nothing -------------------------------------------------------------------- */

static void test_injected_failure_leaves_nothing(void)
{
	struct kos_store_key key;
	struct kos_store_version v;
	kos_key_info ki;
	uint32_t ver = 0;
	unsigned m;

	for (m = 0; m <= 8; m += 4) {
		kos_keys_test_inject(keys, m, KOS_KEYS_INJECT_FAIL);
		CU_ASSERT_EQUAL(kos_key_create(keys, "inj", KOS_KEY_DEK), KOS_E_IO);
		CU_ASSERT(strstr(kos_last_error(), "failure injected") != NULL);
		CU_ASSERT_EQUAL(kos_store_key_get(st, "inj", &key), KOS_E_NOTFOUND);
		CU_ASSERT_EQUAL(objects_with("kos-share:inj:"), 0);
	}
	/* a rotation the same way: version 1 stays current, whole */
	CU_ASSERT_EQUAL_FATAL(kos_key_create(keys, "inj", KOS_KEY_DEK), KOS_OK);
	kos_keys_test_inject(keys, 5, KOS_KEYS_INJECT_FAIL);
	CU_ASSERT_EQUAL(kos_key_rotate(keys, "inj", &ver), KOS_E_IO);
	CU_ASSERT_EQUAL(objects_with("kos-share:inj:2:"), 0);
	CU_ASSERT_EQUAL(kos_store_key_version_get(st, "inj", 2, &v), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_key_get_info(keys, "inj", &ki), KOS_OK);
	CU_ASSERT_EQUAL(ki.current, 1);
	CU_ASSERT_EQUAL(ki.versions, 1);
	CU_ASSERT_EQUAL(objects_with("kos-share:inj:1:"), 8);
	/* the hook fires once */
	CU_ASSERT_EQUAL(kos_key_rotate(keys, "inj", &ver), KOS_OK);
	CU_ASSERT_EQUAL(ver, 2);
}

/* In a child with its own service: creates name with a crash injected after
 * n objects. Returns the child's exit status. */
static int crash_child(const char *name, kos_key_type type, unsigned n)
{
	pid_t pid;
	int status = -1;

	close_all(); /* the module must not be loaded across fork() */
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		kos_store *cst = NULL;

		if (kos_store_open(kos_config_get0_store(conf), &cst) != KOS_OK ||
		    kos_hsm_open(conf, 0, &hsm) != KOS_OK ||
		    kos_keys_new(pol, cst, hsm, &keys) != KOS_OK)
			_exit(2);
		kos_keys_test_inject(keys, n, KOS_KEYS_INJECT_CRASH);
		kos_key_create(keys, name, type);
		_exit(4); /* not reached */
	}
	CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
	CU_ASSERT_EQUAL_FATAL(open_all(), 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

struct lines {
	char text[4096];
};

static void collect_line(const char *line, void *arg)
{
	struct lines *l = arg;
	size_t used = strlen(l->text);

	snprintf(l->text + used, sizeof(l->text) - used, "%s\n", line);
}

static void test_crash_then_fsck(void)
{
	struct kos_store_version v;
	struct kos_store_key key;
	struct lines out;
	uint8_t *env = NULL;
	size_t env_len = 0;
	unsigned found = 99;

	/* a clean installation first */
	memset(&out, 0, sizeof(out));
	CU_ASSERT_EQUAL(kos_keys_fsck(keys, 0, collect_line, &out, &found), KOS_OK);
	CU_ASSERT_EQUAL(found, 0);

	CU_ASSERT_EQUAL_FATAL(crash_child("crashed", KOS_KEY_DEK, 5), 3);
	/* a creating row and five objects no active version owns */
	CU_ASSERT_EQUAL_FATAL(kos_store_key_version_get(st, "crashed", 1, &v), KOS_OK);
	CU_ASSERT_EQUAL(v.state, KOS_KEY_STATE_CREATING);
	kos_store_version_clear(&v);
	CU_ASSERT_EQUAL(objects_with("kos-share:crashed:1:"), 5);
	/* the incomplete key is no key to use */
	CU_ASSERT_EQUAL(
	    kos_key_encrypt(keys, "crashed", NULL, (const uint8_t *)"x", 1, &env, &env_len),
	    KOS_E_NOTFOUND);
	CU_ASSERT(strstr(kos_last_error(), "no active version") != NULL);
	CU_ASSERT_EQUAL(kos_key_create(keys, "crashed", KOS_KEY_DEK), KOS_E_EXISTS);

	/* found, not repaired */
	memset(&out, 0, sizeof(out));
	CU_ASSERT_EQUAL(kos_keys_fsck(keys, 0, collect_line, &out, &found), KOS_OK);
	CU_ASSERT_EQUAL(found, 6);
	CU_ASSERT(strstr(out.text, "key crashed version 1: incomplete") != NULL);
	CU_ASSERT(strstr(out.text, "share object 'kos-share:crashed:1:narrow:1'") != NULL);
	CU_ASSERT(strstr(out.text, "repaired") == NULL);
	CU_ASSERT_EQUAL(objects_with("kos-share:crashed:1:"), 5);

	/* repaired */
	memset(&out, 0, sizeof(out));
	CU_ASSERT_EQUAL(kos_keys_fsck(keys, 1, collect_line, &out, &found), KOS_OK);
	CU_ASSERT_EQUAL(found, 6);
	CU_ASSERT(strstr(out.text, "repaired: destroyed") != NULL);
	CU_ASSERT(strstr(out.text, "repaired: incomplete version removed") != NULL);
	CU_ASSERT_EQUAL(objects_with("kos-share:crashed:"), 0);
	CU_ASSERT_EQUAL(kos_store_key_get(st, "crashed", &key), KOS_E_NOTFOUND);
	/* and clean; everything else survived */
	memset(&out, 0, sizeof(out));
	CU_ASSERT_EQUAL(kos_keys_fsck(keys, 1, collect_line, &out, &found), KOS_OK);
	CU_ASSERT_EQUAL(found, 0);
	CU_ASSERT_EQUAL(objects_with("kos-share:payments:1:"), 8);
	CU_ASSERT_EQUAL(kos_key_create(keys, "crashed", KOS_KEY_DEK), KOS_OK);
}

/* A crash during a rotation (the child rotates instead of creating). */
static void test_crash_during_rotation(void)
{
	struct lines out;
	kos_key_info ki;
	unsigned found = 0;
	pid_t pid;
	int status = -1;

	CU_ASSERT_EQUAL_FATAL(kos_key_create(keys, "crash-rot", KOS_KEY_DEK), KOS_OK);
	close_all();
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		kos_store *cst = NULL;

		if (kos_store_open(kos_config_get0_store(conf), &cst) != KOS_OK ||
		    kos_hsm_open(conf, 0, &hsm) != KOS_OK ||
		    kos_keys_new(pol, cst, hsm, &keys) != KOS_OK)
			_exit(2);
		kos_keys_test_inject(keys, 7, KOS_KEYS_INJECT_CRASH);
		kos_key_rotate(keys, "crash-rot", NULL);
		_exit(4);
	}
	CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 3);
	CU_ASSERT_EQUAL_FATAL(open_all(), 0);
	CU_ASSERT_EQUAL(objects_with("kos-share:crash-rot:2:"), 7);
	CU_ASSERT_EQUAL(kos_key_get_info(keys, "crash-rot", &ki), KOS_OK);
	CU_ASSERT_EQUAL(ki.current, 1);
	memset(&out, 0, sizeof(out));
	CU_ASSERT_EQUAL(kos_keys_fsck(keys, 1, collect_line, &out, &found), KOS_OK);
	CU_ASSERT_EQUAL(found, 8);
	CU_ASSERT_EQUAL(objects_with("kos-share:crash-rot:2:"), 0);
	CU_ASSERT_EQUAL(objects_with("kos-share:crash-rot:1:"), 8);
	CU_ASSERT_EQUAL(kos_key_get_info(keys, "crash-rot", &ki), KOS_OK);
	CU_ASSERT_EQUAL(ki.current, 1);
	CU_ASSERT_EQUAL(kos_keys_fsck(keys, 0, NULL, NULL, &found), KOS_OK);
	CU_ASSERT_EQUAL(found, 0);
	/* the next rotation uses the number again */
	CU_ASSERT_EQUAL(kos_key_rotate(keys, "crash-rot", NULL), KOS_OK);
	CU_ASSERT_EQUAL(kos_key_get_info(keys, "crash-rot", &ki), KOS_OK);
	CU_ASSERT_EQUAL(ki.current, 2);
}

/* A version being made by a live process is left alone until it is stale. */
static void test_fsck_leaves_live_creation_alone(void)
{
	struct kos_store_key key = {.type = KOS_KEY_DEK};
	struct kos_store_version begin;
	struct lines out;
	char host[64] = "";
	uint32_t ver = 0;
	unsigned found = 99;

	CU_ASSERT_EQUAL(gethostname(host, sizeof(host) - 1), 0);
	memset(&begin, 0, sizeof(begin));
	begin.created = kos_now();
	key.created = begin.created;
	/* "made" by this very process, as another thread of kosd would */
	snprintf(begin.creator, sizeof(begin.creator), "%s:%ld", host, (long)getpid());
	CU_ASSERT_EQUAL_FATAL(kos_store_key_version_begin(st, &key, "live", &begin, &ver), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_hsm_data_put(hsm, tok_of("kms1"), "kos-share:live:1:narrow:1",
					       "kos-share-v1:1:00", 17),
			      KOS_OK);
	memset(&out, 0, sizeof(out));
	CU_ASSERT_EQUAL(kos_keys_fsck(keys, 1, collect_line, &out, &found), KOS_OK);
	CU_ASSERT_EQUAL(found, 0);
	CU_ASSERT(strstr(out.text, "left alone") != NULL);
	CU_ASSERT_EQUAL(objects_with("kos-share:live:"), 1);
	/* eleven minutes later it is stale */
	sim_now = kos_now() + 11 * MIN;
	kos_keys_set_clock(keys, sim_clock, NULL);
	CU_ASSERT_EQUAL(kos_keys_fsck(keys, 1, NULL, NULL, &found), KOS_OK);
	CU_ASSERT_EQUAL(found, 2);
	kos_keys_set_clock(keys, NULL, NULL);
	CU_ASSERT_EQUAL(objects_with("kos-share:live:"), 0);
	CU_ASSERT_EQUAL(kos_store_key_get(st, "live", &key), KOS_E_NOTFOUND);
	/* an object under a label kos never writes for a version is an orphan too */
	CU_ASSERT_EQUAL_FATAL(
	    kos_hsm_data_put(hsm, tok_of("kms2"), "kos-share:payments:1:narrow:9", "x", 1), KOS_OK);
	CU_ASSERT_EQUAL(kos_keys_fsck(keys, 1, NULL, NULL, &found), KOS_OK);
	CU_ASSERT_EQUAL(found, 1);
	CU_ASSERT_EQUAL(objects_with("kos-share:payments:1:"), 8);
}

/* A retirement while a token is down: the version is retired, the token is
 * named, and its object is left for fsck, which cannot check the token
 * until it is back. */
static void test_retire_with_a_token_down(void)
{
	static const char *const down[] = {"kms5"};
	struct lines out;
	kos_key_info ki;
	unsigned found = 0;

	struct kos_store_version v;
	char want[128];
	unsigned on5 = 0;
	size_t i;

	CU_ASSERT_EQUAL_FATAL(kos_key_create(keys, "half", KOS_KEY_DEK), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_key_rotate(keys, "half", NULL), KOS_OK);
	locations("half", 1, &v);
	for (i = 0; i < v.n_shares; i++)
		on5 += strcmp(v.shares[i].token, "kms5") == 0;
	kos_store_version_clear(&v);
	CU_ASSERT_FATAL(on5 >= 1); /* wide (5 of 5 tokens) has one there at least */
	close_all();
	move_tokens(down, 1, 1);
	CU_ASSERT_EQUAL_FATAL(open_all(), 0);
	CU_ASSERT_EQUAL(kos_key_retire(keys, "half", 1), KOS_E_IO);
	snprintf(want, sizeof(want), "is retired, but %u object%s could not be destroyed: kms5",
		 on5, on5 == 1 ? "" : "s");
	CU_ASSERT(strstr(kos_last_error(), want) != NULL);
	CU_ASSERT_EQUAL(kos_key_get_info(keys, "half", &ki), KOS_OK);
	CU_ASSERT_EQUAL(ki.min_version, 2);
	/* wide needs all five KMS tokens: refused before anything is written */
	CU_ASSERT_EQUAL(kos_key_create(keys, "nofit", KOS_KEY_DEK), KOS_E_RANGE);
	CU_ASSERT(strstr(kos_last_error(),
			 "share set wide needs 5 distinct KMS tokens; 4 of "
			 "the 5 configured are reachable (unreachable: kms5)") != NULL);
	CU_ASSERT_EQUAL(kos_key_get_info(keys, "nofit", &ki), KOS_E_NOTFOUND);
	memset(&out, 0, sizeof(out));
	CU_ASSERT_EQUAL(kos_keys_fsck(keys, 1, collect_line, &out, &found), KOS_E_IO);
	CU_ASSERT(strstr(kos_last_error(), "token kms5 could not be checked") != NULL);
	CU_ASSERT(strstr(out.text, "warning: token kms5 not checked") != NULL);
	CU_ASSERT_EQUAL(found, 0);
	close_all();
	move_tokens(down, 1, 0);
	CU_ASSERT_EQUAL_FATAL(open_all(), 0);
	CU_ASSERT_EQUAL(objects_with("kos-share:half:1:"), on5);
	CU_ASSERT_EQUAL(objects_with("kos-share:nofit:"), 0);
	memset(&out, 0, sizeof(out));
	CU_ASSERT_EQUAL(kos_keys_fsck(keys, 1, collect_line, &out, &found), KOS_OK);
	CU_ASSERT_EQUAL(found, on5);
	CU_ASSERT(strstr(out.text, "token kms5: share object 'kos-share:half:1:") != NULL);
	CU_ASSERT_EQUAL(objects_with("kos-share:half:1:"), 0);
	CU_ASSERT_EQUAL(objects_with("kos-share:half:2:"), 8);
}

/* --- the medium tier --------------------------------------------------------------------- */

static void test_share_refs_combine_to_the_dek(void)
{
	static const char *const sets[] = {"narrow", "wide"};
	kos_share_ref refs[255];
	kos_share shares[8];
	uint8_t dek[KOS_DEK_LEN], kcv[KOS_KCV_LEN], want[KOS_KCV_LEN];
	uint8_t *secret = NULL;
	size_t n = 0, len = 0, i, j, s;
	unsigned k = 0;
	uint32_t ver = 0, v2;

	CU_ASSERT_EQUAL_FATAL(kos_key_dek(keys, "payments", 0, dek, &v2), KOS_OK);
	expected_kcv(dek, want);
	for (s = 0; s < 2; s++) {
		CU_ASSERT_EQUAL_FATAL(
		    kos_key_share_refs(keys, "payments", 0, sets[s], refs, &n, &k, &ver), KOS_OK);
		CU_ASSERT_EQUAL(ver, 1);
		CU_ASSERT_EQUAL(k, s == 0 ? 2 : 3);
		CU_ASSERT_EQUAL_FATAL(n, k);
		for (i = 0; i < n; i++) {
			CU_ASSERT(strncmp(refs[i].share_id, "kos-share:payments:1:", 21) == 0);
			for (j = 0; j < i; j++)
				CU_ASSERT_STRING_NOT_EQUAL(refs[i].kms_token, refs[j].kms_token);
			/* what a KMS front serves for the reference */
			CU_ASSERT_EQUAL_FATAL(kos_key_share_get(keys, refs[i].share_id, &shares[i]),
					      KOS_OK);
			CU_ASSERT_EQUAL(shares[i].x, refs[i].x);
		}
		CU_ASSERT_EQUAL_FATAL(kos_shamir_combine(shares, n, &secret, &len), KOS_OK);
		CU_ASSERT_EQUAL(len, KOS_DEK_LEN);
		expected_kcv(secret, kcv);
		CU_ASSERT_EQUAL(memcmp(kcv, want, KOS_KCV_LEN), 0);
		CU_ASSERT_EQUAL(memcmp(secret, dek, KOS_DEK_LEN), 0);
		kos_secret_free(secret, len);
		kos_shares_clear(shares, n);
	}
	CU_ASSERT_EQUAL(kos_key_share_refs(keys, "payments", 0, "middle", refs, &n, &k, &ver),
			KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_key_share_refs(keys, "nokey", 0, "wide", refs, &n, &k, &ver),
			KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_key_share_get(keys, "kos-share:payments:1:narrow:9", &shares[0]),
			KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_key_share_get(keys, "kos-share:payments:01:narrow:1", &shares[0]),
			KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_key_share_get(keys, "garbage", &shares[0]), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_key_share_get(keys, NULL, &shares[0]), KOS_E_NOTFOUND);
	/* a retired version's shares are not served */
	CU_ASSERT_EQUAL(kos_key_share_get(keys, "kos-share:rot:1:wide:1", &shares[0]),
			KOS_E_NOTFOUND);
	CU_ASSERT_PTR_NULL(shares[0].y);
	OPENSSL_cleanse(dek, sizeof(dek));
}

/* --- time ---------------------------------------------------------------------------------- */

static void note_rotation(const char *name, uint32_t version, void *arg)
{
	int *seen = arg;

	if (strcmp(name, "aging") == 0 && version == 2)
		(*seen)++;
}

static void test_rotation_due_by_clock(void)
{
	kos_key_info ki;
	int seen = 0;

	sim_now = kos_now();
	kos_keys_set_clock(keys, sim_clock, NULL);
	CU_ASSERT_EQUAL_FATAL(kos_key_create(keys, "aging", KOS_KEY_DEK), KOS_OK);
	/* 29 days on (rotation.dek is 30d): nothing is due */
	sim_now += 29 * DAY;
	CU_ASSERT_EQUAL(kos_keys_rotate_due(keys, note_rotation, &seen), KOS_OK);
	CU_ASSERT_EQUAL(seen, 0);
	CU_ASSERT_EQUAL(kos_key_get_info(keys, "aging", &ki), KOS_OK);
	CU_ASSERT_EQUAL(ki.current, 1);
	/* 31 days: due, once (with every other key made in real time) */
	sim_now += 2 * DAY;
	CU_ASSERT_EQUAL(kos_keys_rotate_due(keys, note_rotation, &seen), KOS_OK);
	CU_ASSERT_EQUAL(seen, 1);
	CU_ASSERT_EQUAL(kos_key_get_info(keys, "aging", &ki), KOS_OK);
	CU_ASSERT_EQUAL(ki.current, 2);
	CU_ASSERT_EQUAL(ki.rotated, sim_now);
	CU_ASSERT_EQUAL(kos_keys_rotate_due(keys, note_rotation, &seen), KOS_OK);
	CU_ASSERT_EQUAL(seen, 1);
	kos_keys_set_clock(keys, NULL, NULL);
}

static void test_cache_expiry_by_clock(void)
{
	struct kos_store_version v;
	uint8_t dek[KOS_DEK_LEN], first[KOS_DEK_LEN];
	uint8_t *env = NULL, *pt = NULL;
	size_t env_len = 0, len = 0, i;
	uint32_t ver;

	sim_now = kos_now();
	kos_keys_set_clock(keys, sim_clock, NULL);
	CU_ASSERT_EQUAL_FATAL(kos_key_create(keys, "cached", KOS_KEY_DEK), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_key_dek(keys, "cached", 0, first, &ver), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(
	    kos_key_encrypt(keys, "cached", "c", (const uint8_t *)"abc", 3, &env, &env_len),
	    KOS_OK);
	/* every share destroyed behind the service's back */
	locations("cached", 1, &v);
	for (i = 0; i < v.n_shares; i++)
		CU_ASSERT_EQUAL(
		    kos_hsm_data_destroy(hsm, tok_of(v.shares[i].token), v.shares[i].label),
		    KOS_OK);
	kos_store_version_clear(&v);
	/* within keys.cache (5m) the cached DEK still works */
	sim_now += 4 * MIN;
	CU_ASSERT_EQUAL(kos_key_dek(keys, "cached", 0, dek, &ver), KOS_OK);
	CU_ASSERT_EQUAL(memcmp(dek, first, KOS_DEK_LEN), 0);
	CU_ASSERT_EQUAL(kos_key_decrypt(keys, "c", env, env_len, &pt, &len), KOS_OK);
	kos_secret_free(pt, len);
	/* after it, the DEK must be rebuilt, and cannot be */
	sim_now += 2 * MIN;
	CU_ASSERT_EQUAL(kos_key_dek(keys, "cached", 0, dek, &ver), KOS_E_IO);
	CU_ASSERT(strstr(kos_last_error(), "share missing") != NULL);
	CU_ASSERT_EQUAL(kos_key_decrypt(keys, "c", env, env_len, &pt, &len), KOS_E_IO);

	/* a policy swap wipes the cache at once */
	sim_now = kos_now();
	CU_ASSERT_EQUAL_FATAL(kos_key_create(keys, "cached2", KOS_KEY_DEK), KOS_OK);
	locations("cached2", 1, &v);
	for (i = 0; i < v.n_shares; i++)
		kos_hsm_data_destroy(hsm, tok_of(v.shares[i].token), v.shares[i].label);
	kos_store_version_clear(&v);
	CU_ASSERT_EQUAL(kos_key_dek(keys, "cached2", 0, dek, &ver), KOS_OK);
	kos_keys_set_policy(keys, pol);
	CU_ASSERT_EQUAL(kos_key_dek(keys, "cached2", 0, dek, &ver), KOS_E_IO);
	kos_keys_set_clock(keys, NULL, NULL);
	kos_free(env);
	OPENSSL_cleanse(first, sizeof(first));
}

/* --- signing keys ------------------------------------------------------------------------- */

static EVP_PKEY *pubkey(const char *name, uint32_t version)
{
	char *pem = NULL;
	EVP_PKEY *pk = NULL;
	BIO *bio;

	CU_ASSERT_EQUAL_FATAL(kos_key_pubkey_pem(keys, name, version, &pem), KOS_OK);
	CU_ASSERT(strncmp(pem, "-----BEGIN PUBLIC KEY-----", 26) == 0);
	bio = BIO_new_mem_buf(pem, -1);
	pk = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	BIO_free(bio);
	kos_free(pem);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pk);
	return pk;
}

static int verify(EVP_PKEY *pk, kos_sig_alg alg, const uint8_t *data, size_t len,
		  const uint8_t *sig, size_t sig_len)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	const EVP_MD *md = alg == KOS_SIG_ED25519 ? NULL : EVP_sha256();
	int ok;

	ok = EVP_DigestVerifyInit(ctx, &pctx, md, NULL, pk) == 1;
	if (ok && alg == KOS_SIG_RSA_PSS)
		ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
		     EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) == 1 &&
		     EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) == 1;
	ok = ok && EVP_DigestVerify(ctx, sig, sig_len, data, len) == 1;
	EVP_MD_CTX_free(ctx);
	return ok;
}

/* r||s to DER, for OpenSSL. */
static size_t raw_to_der(const uint8_t *raw, uint8_t *der)
{
	ECDSA_SIG *s = ECDSA_SIG_new();
	unsigned char *p = der;
	int len;

	ECDSA_SIG_set0(s, BN_bin2bn(raw, 32, NULL), BN_bin2bn(raw + 32, 32, NULL));
	len = i2d_ECDSA_SIG(s, &p);
	ECDSA_SIG_free(s);
	return len > 0 ? (size_t)len : 0;
}

static void sign_and_verify(const char *name, kos_sig_alg alg, uint32_t want_version)
{
	static const uint8_t data[] = "kos signs this";
	uint8_t *sig = NULL, der[80];
	size_t sig_len = 0;
	uint32_t ver = 0;
	EVP_PKEY *pk;

	CU_ASSERT_EQUAL_FATAL(
	    kos_key_sign(keys, name, alg, data, sizeof(data), &sig, &sig_len, &ver), KOS_OK);
	CU_ASSERT_EQUAL(ver, want_version);
	pk = pubkey(name, ver);
	if (alg == KOS_SIG_ECDSA_RAW || (alg == KOS_SIG_DEFAULT && sig_len == 64)) {
		size_t n;

		CU_ASSERT_EQUAL_FATAL(sig_len, 64);
		n = raw_to_der(sig, der);
		CU_ASSERT(verify(pk, KOS_SIG_ECDSA_DER, data, sizeof(data), der, n));
	} else {
		CU_ASSERT(verify(pk, alg, data, sizeof(data), sig, sig_len));
	}
	/* and not for other data */
	CU_ASSERT_FALSE(verify(pk, alg == KOS_SIG_ECDSA_RAW ? KOS_SIG_ECDSA_DER : alg,
			       (const uint8_t *)"other", 5, sig, sig_len));
	EVP_PKEY_free(pk);
	kos_free(sig);
}

static void test_signing_keys(void)
{
	kos_key_version_info all[8];
	uint8_t *sig = NULL, *env = NULL;
	size_t sig_len = 0, env_len = 0;
	char *pem1 = NULL, *pem1b = NULL, *pem2 = NULL;
	kos_key_info ki;
	uint32_t ver = 0;

	CU_ASSERT_EQUAL_FATAL(kos_key_create(keys, "sig-ec", KOS_KEY_EC_P256), KOS_OK);
	CU_ASSERT_EQUAL(key_pairs_with("kos-sign:sig-ec:1"), 1);
	sign_and_verify("sig-ec", KOS_SIG_ECDSA_DER, 1);
	sign_and_verify("sig-ec", KOS_SIG_ECDSA_RAW, 1);
	sign_and_verify("sig-ec", KOS_SIG_DEFAULT, 1);
	CU_ASSERT_EQUAL(kos_key_sign(keys, "sig-ec", KOS_SIG_RSA_PSS, (const uint8_t *)"x", 1, &sig,
				     &sig_len, NULL),
			KOS_E_INVALID);

	CU_ASSERT_EQUAL_FATAL(kos_key_create(keys, "sig-ed", KOS_KEY_ED25519), KOS_OK);
	sign_and_verify("sig-ed", KOS_SIG_ED25519, 1);
	CU_ASSERT_EQUAL_FATAL(kos_key_create(keys, "sig-rsa", KOS_KEY_RSA_2048), KOS_OK);
	sign_and_verify("sig-rsa", KOS_SIG_RSA_PKCS1, 1);
	sign_and_verify("sig-rsa", KOS_SIG_RSA_PSS, 1);

	/* rotation: the new pair signs; the old public key stays */
	CU_ASSERT_EQUAL_FATAL(kos_key_pubkey_pem(keys, "sig-ec", 0, &pem1), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_key_rotate(keys, "sig-ec", &ver), KOS_OK);
	CU_ASSERT_EQUAL(ver, 2);
	sign_and_verify("sig-ec", KOS_SIG_ECDSA_DER, 2);
	CU_ASSERT_EQUAL_FATAL(kos_key_pubkey_pem(keys, "sig-ec", 0, &pem2), KOS_OK);
	CU_ASSERT_STRING_NOT_EQUAL(pem1, pem2);
	/* retiring version 1 destroys its key pair; the public key is still there */
	CU_ASSERT_EQUAL(kos_key_retire(keys, "sig-ec", 2), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_key_retire(keys, "sig-ec", 1), KOS_OK);
	CU_ASSERT_EQUAL(key_pairs_with("kos-sign:sig-ec:1"), 0);
	CU_ASSERT_EQUAL(key_pairs_with("kos-sign:sig-ec:2"), 1);
	CU_ASSERT_EQUAL_FATAL(kos_key_pubkey_pem(keys, "sig-ec", 1, &pem1b), KOS_OK);
	CU_ASSERT_STRING_EQUAL(pem1, pem1b);
	memset(all, 0, sizeof(all));
	CU_ASSERT_EQUAL(kos_key_versions(keys, "sig-ec", collect_versions, all), KOS_OK);
	CU_ASSERT(all[1].retired);
	CU_ASSERT_STRING_EQUAL(all[2].token, "signer");
	CU_ASSERT_STRING_EQUAL(all[2].label, "kos-sign:sig-ec:2");
	CU_ASSERT_EQUAL(kos_key_get_info(keys, "sig-ec", &ki), KOS_OK);
	CU_ASSERT_EQUAL(ki.type, KOS_KEY_EC_P256);
	CU_ASSERT_EQUAL(ki.current, 2);
	kos_free(pem1);
	kos_free(pem1b);
	kos_free(pem2);

	/* the wrong type for the operation */
	CU_ASSERT_EQUAL(kos_key_sign(keys, "payments", KOS_SIG_DEFAULT, (const uint8_t *)"x", 1,
				     &sig, &sig_len, NULL),
			KOS_E_INVALID);
	CU_ASSERT(strstr(kos_last_error(), "not a signing key") != NULL);
	CU_ASSERT_EQUAL(
	    kos_key_encrypt(keys, "sig-ec", NULL, (const uint8_t *)"x", 1, &env, &env_len),
	    KOS_E_INVALID);
	CU_ASSERT(strstr(kos_last_error(), "not a data key") != NULL);
	CU_ASSERT_EQUAL(kos_key_pubkey_pem(keys, "payments", 0, &pem1), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_key_share_refs(keys, "sig-ec", 0, "wide", NULL, &sig_len, NULL, NULL),
			KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_key_sign(keys, "nokey", KOS_SIG_DEFAULT, (const uint8_t *)"x", 1, &sig,
				     &sig_len, NULL),
			KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_key_pubkey_pem(keys, "sig-ec", 7, &pem1), KOS_E_NOTFOUND);
}

/* A chosen version signs, the current one by default; a retired version
 * is refused as retired, one never made as absent; the cache of the
 * current version does not answer for a version asked by number. */
static void test_sign_with_a_version(void)
{
	static const uint8_t data[] = "a TLS server signs this";
	kos_sign_opts o = KOS_SIGN_OPTS_INIT;
	uint8_t *sig = NULL;
	size_t sig_len = 0;
	uint32_t ver = 0;
	char *pem = NULL;
	EVP_PKEY *v1, *v2;

	CU_ASSERT_EQUAL_FATAL(kos_key_create(keys, "ver-ec", KOS_KEY_EC_P256), KOS_OK);
	o.alg = KOS_SIG_ECDSA_DER;
	/* version 1 is current and asked by number alike */
	o.version = 1;
	CU_ASSERT_EQUAL_FATAL(kos_key_sign_with(keys, "ver-ec", &o, data, sizeof(data), &sig,
						&sig_len, &ver),
			      KOS_OK);
	CU_ASSERT_EQUAL(ver, 1);
	kos_free(sig);
	CU_ASSERT_EQUAL_FATAL(kos_key_rotate(keys, "ver-ec", NULL), KOS_OK);
	v1 = pubkey("ver-ec", 1);
	v2 = pubkey("ver-ec", 2);
	CU_ASSERT_EQUAL_FATAL(kos_key_sign_with(keys, "ver-ec", &o, data, sizeof(data), &sig,
						&sig_len, &ver),
			      KOS_OK);
	CU_ASSERT_EQUAL(ver, 1);
	CU_ASSERT(verify(v1, KOS_SIG_ECDSA_DER, data, sizeof(data), sig, sig_len));
	CU_ASSERT_FALSE(verify(v2, KOS_SIG_ECDSA_DER, data, sizeof(data), sig, sig_len));
	kos_free(sig);
	o.version = 0;
	CU_ASSERT_EQUAL_FATAL(kos_key_sign_with(keys, "ver-ec", &o, data, sizeof(data), &sig,
						&sig_len, &ver),
			      KOS_OK);
	CU_ASSERT_EQUAL(ver, 2);
	CU_ASSERT(verify(v2, KOS_SIG_ECDSA_DER, data, sizeof(data), sig, sig_len));
	kos_free(sig);
	sig = NULL;
	/* the public key of the current version says which it is */
	CU_ASSERT_EQUAL_FATAL(kos_key_pubkey_pem_at(keys, "ver-ec", 0, &pem, &ver), KOS_OK);
	CU_ASSERT_EQUAL(ver, 2);
	kos_free(pem);
	o.version = 3;
	CU_ASSERT_EQUAL(kos_key_sign_with(keys, "ver-ec", &o, data, sizeof(data), &sig, &sig_len,
					  &ver),
			KOS_E_NOTFOUND);
	CU_ASSERT_STRING_EQUAL(kos_last_error(), "key ver-ec has no version 3");
	CU_ASSERT_PTR_NULL(sig);
	CU_ASSERT_EQUAL(kos_key_retire(keys, "ver-ec", 1), KOS_OK);
	o.version = 1;
	CU_ASSERT_EQUAL(kos_key_sign_with(keys, "ver-ec", &o, data, sizeof(data), &sig, &sig_len,
					  &ver),
			KOS_E_NOTFOUND);
	CU_ASSERT_STRING_EQUAL(kos_last_error(), "key ver-ec version 1 is retired");
	CU_ASSERT_PTR_NULL(sig);
	/* a data key has no version that signs */
	o.version = 1;
	CU_ASSERT_EQUAL(kos_key_sign_with(keys, "payments", &o, data, sizeof(data), &sig, &sig_len,
					  &ver),
			KOS_E_INVALID);
	EVP_PKEY_free(v1);
	EVP_PKEY_free(v2);
}

/* OAEP with SHA-256 to key name's version (OpenSSL, as a client would). */
static size_t oaep_to(const char *name, uint32_t version, const uint8_t *pt, size_t len,
		      uint8_t ct[384])
{
	EVP_PKEY *pk = pubkey(name, version);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pk, NULL);
	size_t n = 384;

	CU_ASSERT_FATAL(ctx != NULL && EVP_PKEY_encrypt_init(ctx) == 1 &&
			EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) == 1 &&
			EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) == 1 &&
			EVP_PKEY_encrypt(ctx, ct, &n, pt, len) == 1);
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(pk);
	return n;
}

/* RSA decryption by key version: the current one by default, an older
 * active one by number, a retired one refused as retired; only RSA keys,
 * ciphertexts of the modulus' length; a key pair made before kos decrypted
 * (CKA_DECRYPT false) is named as such. */
static void test_rsa_decrypt_by_version(void)
{
	static const uint8_t secret[] = "a TLS premaster secret";
	kos_rsa_decrypt_opts o = KOS_RSA_DECRYPT_OPTS_INIT;
	uint8_t ct[384], *pt = NULL;
	size_t n, pt_len = 0;
	uint32_t ver = 0;

	CU_ASSERT_EQUAL_FATAL(kos_key_create(keys, "dec-rsa", KOS_KEY_RSA_2048), KOS_OK);
	o.padding = KOS_RSA_PAD_OAEP;
	o.hash = o.mgf1 = KOS_HASH_SHA256;
	n = oaep_to("dec-rsa", 1, secret, sizeof(secret), ct);
	CU_ASSERT_EQUAL_FATAL(kos_key_rsa_decrypt(keys, "dec-rsa", &o, ct, n, &pt, &pt_len, &ver),
			      KOS_OK);
	CU_ASSERT(ver == 1 && pt_len == sizeof(secret) && memcmp(pt, secret, pt_len) == 0);
	kos_secret_free(pt, pt_len);
	pt = NULL;
	CU_ASSERT_EQUAL_FATAL(kos_key_rotate(keys, "dec-rsa", NULL), KOS_OK);
	/* version 2 is another key pair: version 1's ciphertext does not open */
	CU_ASSERT_EQUAL(kos_key_rsa_decrypt(keys, "dec-rsa", &o, ct, n, &pt, &pt_len, &ver),
			KOS_E_INTEGRITY);
	o.version = 1;
	CU_ASSERT_EQUAL_FATAL(kos_key_rsa_decrypt(keys, "dec-rsa", &o, ct, n, &pt, &pt_len, &ver),
			      KOS_OK);
	CU_ASSERT_EQUAL(ver, 1);
	kos_secret_free(pt, pt_len);
	pt = NULL;
	CU_ASSERT_EQUAL(kos_key_retire(keys, "dec-rsa", 1), KOS_OK);
	CU_ASSERT_EQUAL(kos_key_rsa_decrypt(keys, "dec-rsa", &o, ct, n, &pt, &pt_len, &ver),
			KOS_E_NOTFOUND);
	KOS_ASSERT_STR_EQ(kos_last_error(), "key dec-rsa version 1 is retired");
	o.version = 0;
	CU_ASSERT_EQUAL(kos_key_rsa_decrypt(keys, "dec-rsa", &o, ct, n - 1, &pt, &pt_len, &ver),
			KOS_E_INVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "a ciphertext is 256 bytes"));
	CU_ASSERT_EQUAL(kos_key_rsa_decrypt(keys, "sig-ec", &o, ct, 64, &pt, &pt_len, &ver),
			KOS_E_INVALID);
	KOS_ASSERT_STR_EQ(kos_last_error(), "key sig-ec is ec-p256: only RSA keys decrypt");
	CU_ASSERT_EQUAL(kos_key_rsa_decrypt(keys, "payments", &o, ct, n, &pt, &pt_len, &ver),
			KOS_E_INVALID);
	CU_ASSERT_PTR_NULL(pt);

	/* version 2's private key replaced by one without CKA_DECRYPT, as a
	 * key made before would be */
	{
		static const char label[] = "kos-sign:dec-rsa:2";
		CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
		CK_ULONG bits = 2048;
		CK_BYTE f4[] = { 1, 0, 1 };
		uint8_t id[32];
		CK_ATTRIBUTE pubt[] = {
			{ CKA_TOKEN, &yes, 1 },
			{ CKA_MODULUS_BITS, &bits, sizeof(bits) },
			{ CKA_PUBLIC_EXPONENT, f4, 3 },
			{ CKA_LABEL, (void *)label, sizeof(label) - 1 },
			{ CKA_ID, id, 16 },
		};
		CK_ATTRIBUTE privt[] = {
			{ CKA_TOKEN, &yes, 1 },	   { CKA_PRIVATE, &yes, 1 },
			{ CKA_SENSITIVE, &yes, 1 }, { CKA_SIGN, &yes, 1 },
			{ CKA_DECRYPT, &no, 1 },   { CKA_LABEL, (void *)label, sizeof(label) - 1 },
			{ CKA_ID, id, 16 },
		};
		CK_MECHANISM gen = { CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0 };
		CK_OBJECT_HANDLE a, b;
		kos_hsm_session s;
		size_t t;

		CU_ASSERT_FATAL(EVP_Digest(label, strlen(label), id, NULL, EVP_sha256(), NULL) ==
				1);
		CU_ASSERT_EQUAL_FATAL(kos_hsm_token_find(hsm, "signer", &t), KOS_OK);
		CU_ASSERT_EQUAL_FATAL(kos_signer_destroy(hsm, t, label), KOS_OK);
		CU_ASSERT_EQUAL_FATAL(kos_hsm_session_get(hsm, t, &s), KOS_OK);
		CU_ASSERT_EQUAL(s.f->C_GenerateKeyPair(s.h, &gen, pubt, KOS_ARRAY_SIZE(pubt), privt,
						       KOS_ARRAY_SIZE(privt), &a, &b),
				CKR_OK);
		kos_hsm_session_put(hsm, &s, CKR_OK);
		memset(ct, 0x11, 256);
		CU_ASSERT_EQUAL(kos_key_rsa_decrypt(keys, "dec-rsa", &o, ct, 256, &pt, &pt_len,
						    &ver),
				KOS_E_INVALID);
		KOS_ASSERT_STR_EQ(kos_last_error(),
				  "key dec-rsa version 2 was made without decryption; rotate it");
		CU_ASSERT_PTR_NULL(pt);
	}
	/* the rotation the message asks for gives a key that decrypts */
	CU_ASSERT_EQUAL_FATAL(kos_key_rotate(keys, "dec-rsa", &ver), KOS_OK);
	n = oaep_to("dec-rsa", ver, secret, sizeof(secret), ct);
	CU_ASSERT_EQUAL(kos_key_rsa_decrypt(keys, "dec-rsa", &o, ct, n, &pt, &pt_len, &ver),
			KOS_OK);
	kos_secret_free(pt, pt_len);
}

/* 1 when sig (DER for ECDSA) signs the SHA-1 digest dg under pk, checked
 * on the digest as a PKCS#11 verifier does: PKCS#1 v1.5 with SHA-1's
 * DigestInfo for RSA. */
static int verify_sha1(EVP_PKEY *pk, const uint8_t dg[20], const uint8_t *sig, size_t sig_len)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pk, NULL);
	int ok;

	ok = ctx != NULL && EVP_PKEY_verify_init(ctx) == 1 &&
	     EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha1()) == 1;
	if (ok && EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA)
		ok = EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1;
	ok = ok && EVP_PKEY_verify(ctx, sig, sig_len, dg, 20) == 1;
	EVP_PKEY_CTX_free(ctx);
	return ok;
}

/* SHA-1 is refused until the policy allows it (signing.allow_sha1), then
 * signed for ECDSA and RSA PKCS#1 v1.5 and verified by OpenSSL; Ed25519
 * never takes it. */
static void test_sha1_signing_needs_the_policy(void)
{
	static const uint8_t data[] = "a legacy consumer signs this";
	struct kos_policy sha1 = *pol;
	kos_sign_opts o = KOS_SIGN_OPTS_INIT;
	uint8_t dg[20], *sig = NULL, der[80];
	size_t sig_len = 0, n;
	EVP_PKEY *pk;

	CU_ASSERT_EQUAL_FATAL(kos_key_create(keys, "sha1-ec", KOS_KEY_EC_P256), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_key_create(keys, "sha1-rsa", KOS_KEY_RSA_2048), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_key_create(keys, "sha1-ed", KOS_KEY_ED25519), KOS_OK);
	SHA1(data, sizeof(data), dg);
	o.hash = KOS_HASH_SHA1;
	o.digest = 1;

	/* the default policy: refused, for a digest and for data alike */
	CU_ASSERT_FALSE(pol->signing.allow_sha1);
	CU_ASSERT_EQUAL(kos_key_sign_with(keys, "sha1-rsa", &o, dg, sizeof(dg), &sig, &sig_len,
					  NULL),
			KOS_E_POLICY);
	CU_ASSERT_STRING_EQUAL(kos_last_error(),
			       "SHA-1 signatures are disabled by the policy (signing.allow_sha1)");
	CU_ASSERT_PTR_NULL(sig);
	o.digest = 0;
	CU_ASSERT_EQUAL(kos_key_sign_with(keys, "sha1-ec", &o, data, sizeof(data), &sig, &sig_len,
					  NULL),
			KOS_E_POLICY);
	CU_ASSERT_PTR_NULL(sig);

	sha1.path = NULL;
	sha1.signing.allow_sha1 = true;
	kos_keys_set_policy(keys, &sha1);
	/* RSA PKCS#1 v1.5 over SHA-1's DigestInfo, from the digest */
	o.digest = 1;
	CU_ASSERT_EQUAL_FATAL(kos_key_sign_with(keys, "sha1-rsa", &o, dg, sizeof(dg), &sig,
						&sig_len, NULL),
			      KOS_OK);
	pk = pubkey("sha1-rsa", 0);
	CU_ASSERT(verify_sha1(pk, dg, sig, sig_len));
	dg[0] ^= 1;
	CU_ASSERT_FALSE(verify_sha1(pk, dg, sig, sig_len));
	dg[0] ^= 1;
	EVP_PKEY_free(pk);
	kos_free(sig);
	sig = NULL;
	/* ECDSA, kos hashing the data with SHA-1 */
	o.digest = 0;
	o.alg = KOS_SIG_ECDSA_DER;
	CU_ASSERT_EQUAL_FATAL(kos_key_sign_with(keys, "sha1-ec", &o, data, sizeof(data), &sig,
						&sig_len, NULL),
			      KOS_OK);
	pk = pubkey("sha1-ec", 0);
	CU_ASSERT(verify_sha1(pk, dg, sig, sig_len));
	EVP_PKEY_free(pk);
	kos_free(sig);
	sig = NULL;
	/* raw r||s from a digest, as CKM_ECDSA returns it */
	o.digest = 1;
	o.alg = KOS_SIG_ECDSA_RAW;
	CU_ASSERT_EQUAL_FATAL(kos_key_sign_with(keys, "sha1-ec", &o, dg, sizeof(dg), &sig,
						&sig_len, NULL),
			      KOS_OK);
	CU_ASSERT_EQUAL_FATAL(sig_len, 64);
	n = raw_to_der(sig, der);
	pk = pubkey("sha1-ec", 0);
	CU_ASSERT(verify_sha1(pk, dg, der, n));
	EVP_PKEY_free(pk);
	kos_free(sig);
	sig = NULL;
	/* Ed25519 signs the message itself: no hash, whatever the policy */
	o.alg = KOS_SIG_DEFAULT;
	o.digest = 0;
	CU_ASSERT_EQUAL(kos_key_sign_with(keys, "sha1-ed", &o, data, sizeof(data), &sig, &sig_len,
					  NULL),
			KOS_E_INVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "takes no hash"));
	CU_ASSERT_PTR_NULL(sig);

	/* a reload back to the default takes the permission away again */
	kos_keys_set_policy(keys, pol);
	o.alg = KOS_SIG_DEFAULT;
	o.digest = 1;
	CU_ASSERT_EQUAL(kos_key_sign_with(keys, "sha1-rsa", &o, dg, sizeof(dg), &sig, &sig_len,
					  NULL),
			KOS_E_POLICY);
	CU_ASSERT_PTR_NULL(sig);
}

static void test_signing_key_all_or_nothing(void)
{
	struct kos_store_key key;
	unsigned found = 0;

	kos_keys_test_inject(keys, 1, KOS_KEYS_INJECT_FAIL);
	CU_ASSERT_EQUAL(kos_key_create(keys, "sig-fail", KOS_KEY_ED25519), KOS_E_IO);
	CU_ASSERT_EQUAL(kos_store_key_get(st, "sig-fail", &key), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(key_pairs_with("kos-sign:sig-fail:"), 0);

	CU_ASSERT_EQUAL_FATAL(crash_child("sig-crash", KOS_KEY_EC_P256, 1), 3);
	CU_ASSERT_EQUAL(key_pairs_with("kos-sign:sig-crash:1"), 1);
	CU_ASSERT_EQUAL(kos_keys_fsck(keys, 1, NULL, NULL, &found), KOS_OK);
	CU_ASSERT_EQUAL(found, 2); /* the row and the key pair */
	CU_ASSERT_EQUAL(key_pairs_with("kos-sign:sig-crash:"), 0);
	CU_ASSERT_EQUAL(kos_store_key_get(st, "sig-crash", &key), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(key_pairs_with("kos-sign:sig-ec:2"), 1);
	CU_ASSERT_EQUAL(kos_keys_fsck(keys, 0, NULL, NULL, &found), KOS_OK);
	CU_ASSERT_EQUAL(found, 0);
}

/* A certificate for pub (PEM) issued by a throwaway CA key, as DER in
 * *der (OPENSSL_free()); its length. */
static int make_cert(const char *pub_pem, uint8_t **der)
{
	BIO *bio = BIO_new_mem_buf(pub_pem, -1);
	EVP_PKEY *pub = bio != NULL ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
	EVP_PKEY *ca = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();
	int len = -1;

	*der = NULL;
	if (pub != NULL && ca != NULL && x != NULL && n != NULL &&
	    X509_set_version(x, 2) == 1 && ASN1_INTEGER_set(X509_get_serialNumber(x), 7) == 1 &&
	    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"kos test",
				       -1, -1, 0) == 1 &&
	    X509_set_subject_name(x, n) == 1 && X509_set_issuer_name(x, n) == 1 &&
	    X509_gmtime_adj(X509_getm_notBefore(x), 0) != NULL &&
	    X509_gmtime_adj(X509_getm_notAfter(x), 86400) != NULL && X509_set_pubkey(x, pub) == 1 &&
	    X509_sign(x, ca, EVP_sha256()) > 0)
		len = i2d_X509(x, der);
	X509_NAME_free(n);
	X509_free(x);
	EVP_PKEY_free(ca);
	EVP_PKEY_free(pub);
	BIO_free(bio);
	return len;
}

/* Certificates beside signing keys: stored when they carry the version's
 * public key and nothing else, read back as stored, per version. */
static void test_certificates(void)
{
	char *pem1 = NULL, *pem2 = NULL, *other = NULL, *text = NULL;
	uint8_t *c1 = NULL, *c2 = NULL, *co = NULL, *der = NULL, *junk;
	int l1, l2, lo;
	size_t len = 0;
	uint32_t v = 0;

	CU_ASSERT_EQUAL_FATAL(kos_key_create(keys, "cert-ec", KOS_KEY_EC_P256), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_key_create(keys, "cert-ed", KOS_KEY_ED25519), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_key_pubkey_pem(keys, "cert-ec", 0, &pem1), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_key_pubkey_pem(keys, "cert-ed", 0, &other), KOS_OK);
	l1 = make_cert(pem1, &c1);
	lo = make_cert(other, &co);
	CU_ASSERT_FATAL(l1 > 0 && lo > 0);

	/* none yet */
	CU_ASSERT_EQUAL(kos_key_cert_get(keys, "cert-ec", 0, &der, &len, &v), KOS_E_NOTFOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "has no certificate"));
	CU_ASSERT_EQUAL(kos_key_cert_set(keys, "cert-ec", 0, c1, (size_t)l1, &v), KOS_OK);
	CU_ASSERT_EQUAL(v, 1);
	CU_ASSERT_EQUAL_FATAL(kos_key_cert_get(keys, "cert-ec", 0, &der, &len, &v), KOS_OK);
	CU_ASSERT(len == (size_t)l1 && memcmp(der, c1, len) == 0);
	CU_ASSERT_EQUAL(v, 1);
	CU_ASSERT_EQUAL(kos_key_cert_pem(der, len, &text), KOS_OK);
	CU_ASSERT(text != NULL && strncmp(text, "-----BEGIN CERTIFICATE-----\n", 28) == 0);
	kos_free(text);
	kos_free(der);
	der = NULL;

	/* another key's certificate, not a certificate, one with bytes after it */
	CU_ASSERT_EQUAL(kos_key_cert_set(keys, "cert-ec", 0, co, (size_t)lo, NULL), KOS_E_INVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "public key is not that of key cert-ec"));
	CU_ASSERT_EQUAL(kos_key_cert_set(keys, "cert-ec", 0, (const uint8_t *)"\x30\x03\x02\x01\x01",
					 5, NULL),
			KOS_E_INVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "not an X.509 certificate"));
	junk = malloc((size_t)l1 + 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(junk);
	memcpy(junk, c1, (size_t)l1);
	junk[l1] = 0;
	CU_ASSERT_EQUAL(kos_key_cert_set(keys, "cert-ec", 0, junk, (size_t)l1 + 1, NULL),
			KOS_E_INVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "bytes after it"));
	free(junk);
	/* nothing of the refusals was stored */
	CU_ASSERT_EQUAL_FATAL(kos_key_cert_get(keys, "cert-ec", 1, &der, &len, NULL), KOS_OK);
	CU_ASSERT(len == (size_t)l1 && memcmp(der, c1, len) == 0);
	kos_free(der);
	der = NULL;
	/* the right one for the other key; a data key, no such key */
	CU_ASSERT_EQUAL(kos_key_cert_set(keys, "cert-ed", 0, co, (size_t)lo, NULL), KOS_OK);
	CU_ASSERT_EQUAL(kos_key_cert_set(keys, "payments", 0, c1, (size_t)l1, NULL), KOS_E_INVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "data key"));
	CU_ASSERT_EQUAL(kos_key_cert_get(keys, "payments", 0, &der, &len, NULL), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_key_cert_set(keys, "cert-none", 0, c1, (size_t)l1, NULL),
			KOS_E_NOTFOUND);

	/* per version: the new version's key needs its own certificate */
	CU_ASSERT_EQUAL_FATAL(kos_key_rotate(keys, "cert-ec", NULL), KOS_OK);
	CU_ASSERT_EQUAL(kos_key_cert_get(keys, "cert-ec", 0, &der, &len, NULL), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_key_cert_set(keys, "cert-ec", 0, c1, (size_t)l1, NULL), KOS_E_INVALID);
	CU_ASSERT_EQUAL_FATAL(kos_key_pubkey_pem(keys, "cert-ec", 2, &pem2), KOS_OK);
	l2 = make_cert(pem2, &c2);
	CU_ASSERT_FATAL(l2 > 0);
	CU_ASSERT_EQUAL(kos_key_cert_set(keys, "cert-ec", 2, c2, (size_t)l2, &v), KOS_OK);
	CU_ASSERT_EQUAL(v, 2);
	CU_ASSERT_EQUAL(kos_key_cert_set(keys, "cert-ec", 3, c2, (size_t)l2, NULL), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL_FATAL(kos_key_cert_get(keys, "cert-ec", 1, &der, &len, &v), KOS_OK);
	CU_ASSERT(v == 1 && len == (size_t)l1 && memcmp(der, c1, len) == 0);
	kos_free(der);
	CU_ASSERT_EQUAL_FATAL(kos_key_cert_get(keys, "cert-ec", 0, &der, &len, &v), KOS_OK);
	CU_ASSERT(v == 2 && len == (size_t)l2 && memcmp(der, c2, len) == 0);
	kos_free(der);
	/* a retired version keeps its certificate and takes no new one */
	CU_ASSERT_EQUAL(kos_key_retire(keys, "cert-ec", 1), KOS_OK);
	CU_ASSERT_EQUAL(kos_key_cert_get(keys, "cert-ec", 1, &der, &len, NULL), KOS_OK);
	kos_free(der);
	CU_ASSERT_EQUAL(kos_key_cert_set(keys, "cert-ec", 1, c1, (size_t)l1, NULL), KOS_E_NOTFOUND);

	OPENSSL_free(c1);
	OPENSSL_free(c2);
	OPENSSL_free(co);
	kos_free(pem1);
	kos_free(pem2);
	kos_free(other);
}

/* The public key comes from the store: it survives the loss of the token. */
static void test_pubkey_without_the_token(void)
{
	static const char *const signer[] = {"signer"};
	char *pem = NULL;
	uint8_t *sig = NULL;
	size_t sig_len = 0;

	close_all();
	move_tokens(signer, 1, 1);
	CU_ASSERT_EQUAL_FATAL(open_all(), 0);
	CU_ASSERT_EQUAL(kos_key_pubkey_pem(keys, "sig-ec", 1, &pem), KOS_OK);
	kos_free(pem);
	CU_ASSERT_EQUAL(kos_key_pubkey_pem(keys, "sig-ec", 0, &pem), KOS_OK);
	kos_free(pem);
	CU_ASSERT_NOT_EQUAL(kos_key_sign(keys, "sig-ec", KOS_SIG_DEFAULT, (const uint8_t *)"x", 1,
					 &sig, &sig_len, NULL),
			    KOS_OK);
	CU_ASSERT(strstr(kos_last_error(), "signer") != NULL);
	close_all();
	move_tokens(signer, 1, 0);
	CU_ASSERT_EQUAL_FATAL(open_all(), 0);
	sign_and_verify("sig-ec", KOS_SIG_ECDSA_DER, 2);
}

/* --- bad input ------------------------------------------------------------------------------ */

static void test_bad_input_changes_nothing(void)
{
	uint8_t *env = NULL, *pt = NULL, *big = NULL, dek[KOS_DEK_LEN];
	size_t env_len = 0, len = 0, big_len, objects = objects_with("kos-share:payments:");
	kos_key_info before, after;
	uint8_t saved;
	uint32_t ver;

	CU_ASSERT_EQUAL_FATAL(kos_key_get_info(keys, "payments", &before), KOS_OK);
	CU_ASSERT_EQUAL(
	    kos_key_encrypt(keys, "nokey", NULL, (const uint8_t *)"x", 1, &env, &env_len),
	    KOS_E_NOTFOUND);
	CU_ASSERT(strstr(kos_last_error(), "unknown key 'nokey'") != NULL);
	CU_ASSERT_EQUAL(
	    kos_key_encrypt(keys, "bad name", NULL, (const uint8_t *)"x", 1, &env, &env_len),
	    KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_key_dek(keys, ".x", 0, dek, &ver), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_key_dek(keys, "payments", 77, dek, &ver), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_key_rotate(keys, "nokey", NULL), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_key_get_info(keys, "nokey", &after), KOS_E_NOTFOUND);

	CU_ASSERT_EQUAL_FATAL(
	    kos_key_encrypt(keys, "payments", "c", (const uint8_t *)"hello", 5, &env, &env_len),
	    KOS_OK);
	/* truncated: every length short of the whole */
	for (len = 0; len < env_len; len += (len < 40 ? 1 : 7)) {
		kos_rv rv = kos_key_decrypt(keys, "c", env, len, &pt, &big_len);

		CU_ASSERT(rv == KOS_E_PARSE || rv == KOS_E_INTEGRITY);
		CU_ASSERT_PTR_NULL(pt);
	}
	/* garbage, and a bit flipped anywhere */
	CU_ASSERT_EQUAL(kos_key_decrypt(keys, "c",
					(const uint8_t *)"garbage-garbage-garbage-garbage"
							 "-garbage",
					39, &pt, &len),
			KOS_E_PARSE);
	for (size_t i = 0; i < env_len; i += 5) {
		kos_rv rv;

		env[i] ^= 0x20;
		rv = kos_key_decrypt(keys, "c", env, env_len, &pt, &len);
		CU_ASSERT(rv == KOS_E_PARSE || rv == KOS_E_INTEGRITY || rv == KOS_E_NOTFOUND);
		CU_ASSERT_PTR_NULL(pt);
		env[i] ^= 0x20;
	}
	/* a version that never was, a key that does not exist, a name kos never gives */
	saved = env[6 + 8 + 3];
	env[6 + 8 + 3] = 99;
	CU_ASSERT_EQUAL(kos_key_decrypt(keys, "c", env, env_len, &pt, &len), KOS_E_NOTFOUND);
	CU_ASSERT(strstr(kos_last_error(), "no version 99") != NULL);
	env[6 + 8 + 3] = saved;
	memcpy(env + 6, "paymentz", 8);
	CU_ASSERT_EQUAL(kos_key_decrypt(keys, "c", env, env_len, &pt, &len), KOS_E_NOTFOUND);
	memcpy(env + 6, "pay:ents", 8);
	CU_ASSERT_EQUAL(kos_key_decrypt(keys, "c", env, env_len, &pt, &len), KOS_E_NOTFOUND);
	memcpy(env + 6, "payments", 8);
	CU_ASSERT_EQUAL(kos_key_decrypt(keys, "c", env, env_len, &pt, &len), KOS_OK);
	kos_secret_free(pt, len);
	/* oversized: more ciphertext than the format allows */
	big_len = env_len + KOS_ENVELOPE_MAX_PLAINTEXT;
	big = calloc(1, big_len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	memcpy(big, env, env_len - KOS_ENVELOPE_TAG_LEN);
	pt = NULL;
	CU_ASSERT_EQUAL(kos_key_decrypt(keys, "c", big, big_len, &pt, &len), KOS_E_PARSE);
	CU_ASSERT(strstr(kos_last_error(), "larger") != NULL);
	free(big);
	/* a context longer than the format allows */
	big = malloc(KOS_ENVELOPE_CONTEXT_MAX + 2);
	memset(big, 'c', KOS_ENVELOPE_CONTEXT_MAX + 1);
	big[KOS_ENVELOPE_CONTEXT_MAX + 1] = '\0';
	CU_ASSERT_EQUAL(kos_key_decrypt(keys, (const char *)big, env, env_len, &pt, &len),
			KOS_E_INVALID);
	free(big);
	CU_ASSERT_EQUAL(kos_key_decrypt(keys, "c", NULL, 0, &pt, &len), KOS_E_PARSE);
	CU_ASSERT_EQUAL(kos_key_decrypt(keys, "c", env, env_len, NULL, &len), KOS_E_INVALID);
	kos_free(env);

	CU_ASSERT_EQUAL(kos_key_get_info(keys, "payments", &after), KOS_OK);
	CU_ASSERT_EQUAL(after.current, before.current);
	CU_ASSERT_EQUAL(after.versions, before.versions);
	CU_ASSERT_EQUAL(objects_with("kos-share:payments:"), objects);
}

struct listing {
	char prev[KOS_KEY_NAME_MAX + 1];
	int n, ordered, stop_at;
	kos_key_info payments;
};

static int list_each(const kos_key_info *info, void *arg)
{
	struct listing *l = arg;

	if (strcmp(l->prev, info->name) >= 0)
		l->ordered = 0;
	memcpy(l->prev, info->name, sizeof(l->prev));
	if (strcmp(info->name, "payments") == 0)
		l->payments = *info;
	return ++l->n == l->stop_at ? 7 : 0;
}

/* --- destroying keys ------------------------------------------------------------- */

/* A DEK destroyed: gone from the store, its cache and every token; old
 * envelopes no longer open, not even from the cache; the name is free. */
static void test_destroy_dek(void)
{
	static const uint8_t msg[] = "destroyed with its key";
	uint8_t *env = NULL, *pt = NULL, dek[KOS_DEK_LEN];
	size_t env_len = 0, len = 0, before;
	kos_key_info ki;
	unsigned found = 99;
	uint32_t v = 0;

	before = objects_with("kos-share:");
	CU_ASSERT_EQUAL_FATAL(kos_key_create(keys, "del-dek", KOS_KEY_DEK), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_key_rotate(keys, "del-dek", &v), KOS_OK);
	CU_ASSERT_EQUAL(objects_with("kos-share:del-dek:"), 16);
	CU_ASSERT_EQUAL_FATAL(
	    kos_key_encrypt(keys, "del-dek", "ctx", msg, sizeof(msg), &env, &env_len), KOS_OK);
	/* in the cache now */
	CU_ASSERT_EQUAL_FATAL(kos_key_decrypt(keys, "ctx", env, env_len, &pt, &len), KOS_OK);
	kos_secret_free(pt, len);
	pt = NULL;

	CU_ASSERT_EQUAL(kos_key_destroy(keys, "del-dek"), KOS_OK);
	CU_ASSERT_EQUAL(kos_key_get_info(keys, "del-dek", &ki), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(objects_with("kos-share:del-dek:"), 0);
	CU_ASSERT_EQUAL(objects_with("kos-share:"), before);
	CU_ASSERT_EQUAL(kos_key_decrypt(keys, "ctx", env, env_len, &pt, &len), KOS_E_NOTFOUND);
	CU_ASSERT_PTR_NULL(pt);
	CU_ASSERT_EQUAL(kos_key_dek(keys, "del-dek", 1, dek, &v), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_key_destroy(keys, "del-dek"), KOS_E_NOTFOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "del-dek"));
	/* nothing is left for fsck, and other keys are untouched */
	CU_ASSERT_EQUAL(kos_keys_fsck(keys, 0, NULL, NULL, &found), KOS_OK);
	CU_ASSERT_EQUAL(found, 0);
	CU_ASSERT_EQUAL(objects_with("kos-share:payments:1:"), 8);

	/* created again: a new key, which the old envelope does not open */
	CU_ASSERT_EQUAL_FATAL(kos_key_create(keys, "del-dek", KOS_KEY_DEK), KOS_OK);
	CU_ASSERT_EQUAL(kos_key_get_info(keys, "del-dek", &ki), KOS_OK);
	CU_ASSERT_EQUAL(ki.current, 1);
	CU_ASSERT_NOT_EQUAL(kos_key_decrypt(keys, "ctx", env, env_len, &pt, &len), KOS_OK);
	CU_ASSERT_PTR_NULL(pt);
	CU_ASSERT_EQUAL(kos_key_destroy(keys, "del-dek"), KOS_OK);
	/* bad input */
	CU_ASSERT_EQUAL(kos_key_destroy(NULL, "del-dek"), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_key_destroy(keys, NULL), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_key_destroy(keys, "../x"), KOS_E_INVALID);
	free(env);
}

/* A signing key destroyed: its key pairs (current and older) leave the
 * signer token, its certificates the store; signing fails at once. */
static void test_destroy_signing_key(void)
{
	uint8_t *sig = NULL, *der = NULL, *cert = NULL;
	char *pem = NULL;
	size_t sig_len = 0, len = 0;
	uint32_t v = 0;
	int l;

	CU_ASSERT_EQUAL_FATAL(kos_key_create(keys, "del-sig", KOS_KEY_EC_P256), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_key_rotate(keys, "del-sig", &v), KOS_OK);
	CU_ASSERT_EQUAL(key_pairs_with("kos-sign:del-sig:"), 2);
	CU_ASSERT_EQUAL_FATAL(kos_key_pubkey_pem(keys, "del-sig", 0, &pem), KOS_OK);
	l = make_cert(pem, &cert);
	CU_ASSERT_FATAL(l > 0);
	CU_ASSERT_EQUAL(kos_key_cert_set(keys, "del-sig", 0, cert, (size_t)l, NULL), KOS_OK);
	/* signed once, so its token and label are cached */
	CU_ASSERT_EQUAL(kos_key_sign(keys, "del-sig", KOS_SIG_DEFAULT,
				     (const uint8_t *)"x", 1, &sig, &sig_len, NULL),
			KOS_OK);
	kos_free(sig);
	sig = NULL;

	CU_ASSERT_EQUAL(kos_key_destroy(keys, "del-sig"), KOS_OK);
	CU_ASSERT_EQUAL(key_pairs_with("kos-sign:del-sig:"), 0);
	CU_ASSERT_EQUAL(kos_key_sign(keys, "del-sig", KOS_SIG_DEFAULT,
				     (const uint8_t *)"x", 1, &sig, &sig_len, NULL),
			KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_key_cert_get(keys, "del-sig", 2, &der, &len, NULL), KOS_E_NOTFOUND);
	kos_free(pem);
	pem = NULL;
	CU_ASSERT_EQUAL(kos_key_pubkey_pem(keys, "del-sig", 0, &pem), KOS_E_NOTFOUND);
	/* the name is free, and the old certificate is not the new key's */
	CU_ASSERT_EQUAL_FATAL(kos_key_create(keys, "del-sig", KOS_KEY_ED25519), KOS_OK);
	CU_ASSERT_EQUAL(kos_key_cert_get(keys, "del-sig", 0, &der, &len, NULL), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(key_pairs_with("kos-sign:del-sig:"), 1);
	CU_ASSERT_EQUAL(kos_key_destroy(keys, "del-sig"), KOS_OK);
	CU_ASSERT_EQUAL(key_pairs_with("kos-sign:del-sig:"), 0);
	free(cert);
}

/* In a child with its own service: destroys name with a crash injected
 * after n token objects. Returns the child's exit status. */
static int destroy_crash_child(const char *name, unsigned n)
{
	pid_t pid;
	int status = -1;

	close_all();
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		kos_store *cst = NULL;

		if (kos_store_open(kos_config_get0_store(conf), &cst) != KOS_OK ||
		    kos_hsm_open(conf, 0, &hsm) != KOS_OK ||
		    kos_keys_new(pol, cst, hsm, &keys) != KOS_OK)
			_exit(2);
		kos_keys_test_inject(keys, n, KOS_KEYS_INJECT_CRASH);
		kos_key_destroy(keys, name);
		_exit(4);
	}
	CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
	CU_ASSERT_EQUAL_FATAL(open_all(), 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* A crash between the store's transaction and the tokens, or midway
 * through the tokens: the key is gone, what is left on the tokens is an
 * orphan that fsck reports and repairs, and the name can be reused. */
static void test_destroy_crash_then_fsck(void)
{
	struct kos_store_key key;
	struct lines out;
	unsigned found = 99;

	CU_ASSERT_EQUAL_FATAL(kos_key_create(keys, "del-crash", KOS_KEY_DEK), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(destroy_crash_child("del-crash", 3), 3);
	CU_ASSERT_EQUAL(kos_store_key_get(st, "del-crash", &key), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(objects_with("kos-share:del-crash:1:"), 5);
	memset(&out, 0, sizeof(out));
	CU_ASSERT_EQUAL(kos_keys_fsck(keys, 0, collect_line, &out, &found), KOS_OK);
	CU_ASSERT_EQUAL(found, 5);
	CU_ASSERT(strstr(out.text, "share object 'kos-share:del-crash:1:") != NULL);
	CU_ASSERT(strstr(out.text, "belongs to no active version") != NULL);
	CU_ASSERT_EQUAL(objects_with("kos-share:del-crash:1:"), 5);
	memset(&out, 0, sizeof(out));
	CU_ASSERT_EQUAL(kos_keys_fsck(keys, 1, collect_line, &out, &found), KOS_OK);
	CU_ASSERT_EQUAL(found, 5);
	CU_ASSERT(strstr(out.text, "repaired: destroyed") != NULL);
	CU_ASSERT_EQUAL(objects_with("kos-share:del-crash:"), 0);
	CU_ASSERT_EQUAL(kos_keys_fsck(keys, 0, NULL, NULL, &found), KOS_OK);
	CU_ASSERT_EQUAL(found, 0);
	CU_ASSERT_EQUAL(objects_with("kos-share:payments:1:"), 8);
	CU_ASSERT_EQUAL(kos_key_create(keys, "del-crash", KOS_KEY_DEK), KOS_OK);
	CU_ASSERT_EQUAL(kos_key_destroy(keys, "del-crash"), KOS_OK);

	/* a signing key, crashed before any token was touched */
	CU_ASSERT_EQUAL_FATAL(kos_key_create(keys, "del-crash-sig", KOS_KEY_ED25519), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(destroy_crash_child("del-crash-sig", 0), 3);
	CU_ASSERT_EQUAL(kos_store_key_get(st, "del-crash-sig", &key), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(key_pairs_with("kos-sign:del-crash-sig:"), 1);
	memset(&out, 0, sizeof(out));
	CU_ASSERT_EQUAL(kos_keys_fsck(keys, 1, collect_line, &out, &found), KOS_OK);
	CU_ASSERT_EQUAL(found, 1);
	CU_ASSERT(strstr(out.text, "key pair 'kos-sign:del-crash-sig:1'") != NULL);
	CU_ASSERT_EQUAL(key_pairs_with("kos-sign:del-crash-sig:"), 0);
	CU_ASSERT_EQUAL(kos_key_create(keys, "del-crash-sig", KOS_KEY_ED25519), KOS_OK);
	CU_ASSERT_EQUAL(kos_key_destroy(keys, "del-crash-sig"), KOS_OK);
}

/* A certificate removed: the key and its other certificates stay. */
static void test_cert_remove(void)
{
	char *pem1 = NULL, *pem2 = NULL;
	uint8_t *c1 = NULL, *c2 = NULL, *der = NULL;
	kos_key_info ki;
	size_t len = 0;
	uint32_t v = 0;
	int l1, l2;

	CU_ASSERT_EQUAL_FATAL(kos_key_create(keys, "del-cert", KOS_KEY_EC_P256), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_key_pubkey_pem(keys, "del-cert", 1, &pem1), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_key_rotate(keys, "del-cert", &v), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_key_pubkey_pem(keys, "del-cert", 2, &pem2), KOS_OK);
	l1 = make_cert(pem1, &c1);
	l2 = make_cert(pem2, &c2);
	CU_ASSERT_FATAL(l1 > 0 && l2 > 0);
	CU_ASSERT_EQUAL(kos_key_cert_set(keys, "del-cert", 1, c1, (size_t)l1, NULL), KOS_OK);
	CU_ASSERT_EQUAL(kos_key_cert_set(keys, "del-cert", 2, c2, (size_t)l2, NULL), KOS_OK);

	/* 0 is the current version */
	CU_ASSERT_EQUAL(kos_key_cert_remove(keys, "del-cert", 0), KOS_OK);
	CU_ASSERT_EQUAL(kos_key_cert_get(keys, "del-cert", 2, &der, &len, NULL), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL_FATAL(kos_key_cert_get(keys, "del-cert", 1, &der, &len, NULL), KOS_OK);
	CU_ASSERT(len == (size_t)l1 && memcmp(der, c1, len) == 0);
	kos_free(der);
	der = NULL;
	CU_ASSERT_EQUAL(kos_key_cert_remove(keys, "del-cert", 2), KOS_E_NOTFOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "has no certificate"));
	/* a retired version's too */
	CU_ASSERT_EQUAL(kos_key_retire(keys, "del-cert", 1), KOS_OK);
	CU_ASSERT_EQUAL(kos_key_cert_remove(keys, "del-cert", 1), KOS_OK);
	CU_ASSERT_EQUAL(kos_key_cert_get(keys, "del-cert", 1, &der, &len, NULL), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_key_get_info(keys, "del-cert", &ki), KOS_OK);
	CU_ASSERT_EQUAL(ki.current, 2);
	/* refusals */
	CU_ASSERT_EQUAL(kos_key_cert_remove(keys, "del-cert", 3), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_key_cert_remove(keys, "no-such-key", 0), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_key_cert_remove(keys, "payments", 0), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_key_cert_remove(NULL, "del-cert", 0), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_key_destroy(keys, "del-cert"), KOS_OK);
	kos_free(pem1);
	kos_free(pem2);
	free(c1);
	free(c2);
}

static void test_list_in_name_order(void)
{
	struct listing l;

	memset(&l, 0, sizeof(l));
	l.ordered = 1;
	CU_ASSERT_EQUAL(kos_key_list(keys, list_each, &l), KOS_OK);
	CU_ASSERT(l.n >= 10);
	CU_ASSERT(l.ordered);
	CU_ASSERT(l.payments.current >= 1);
	CU_ASSERT_EQUAL(l.payments.type, KOS_KEY_DEK);
	/* a non-zero return stops the walk and is returned */
	memset(&l, 0, sizeof(l));
	l.stop_at = 2;
	CU_ASSERT_EQUAL(kos_key_list(keys, list_each, &l), 7);
	CU_ASSERT_EQUAL(l.n, 2);
	CU_ASSERT_EQUAL(kos_key_list(keys, NULL, &l), KOS_E_INVALID);
}

int main(void)
{
	static const struct kos_test_case cases[] = {
	    KOS_TEST(test_names_and_types),
	    KOS_TEST(test_create_dek_shares_on_distinct_tokens),
	    KOS_TEST(test_versions_and_share_listing),
	    KOS_TEST(test_create_refusals),
	    KOS_TEST(test_encrypt_decrypt_round_trip),
	    KOS_TEST(test_gcm_caller_iv_interop),
	    KOS_TEST(test_gcm_refusals),
	    KOS_TEST(test_uncached_round_trip),
	    KOS_TEST(test_rotate_then_decrypt_old_and_new),
	    KOS_TEST(test_retire_refuses_old_envelopes_and_destroys_shares),
	    KOS_TEST(test_lost_tokens),
	    KOS_TEST(test_wrong_share_detected),
	    KOS_TEST(test_injected_failure_leaves_nothing),
	    KOS_TEST(test_crash_then_fsck),
	    KOS_TEST(test_crash_during_rotation),
	    KOS_TEST(test_fsck_leaves_live_creation_alone),
	    KOS_TEST(test_retire_with_a_token_down),
	    KOS_TEST(test_share_refs_combine_to_the_dek),
	    KOS_TEST(test_rotation_due_by_clock),
	    KOS_TEST(test_cache_expiry_by_clock),
	    KOS_TEST(test_signing_keys),
	    KOS_TEST(test_signing_key_all_or_nothing),
	    KOS_TEST(test_sign_with_a_version),
	    KOS_TEST(test_rsa_decrypt_by_version),
	    KOS_TEST(test_sha1_signing_needs_the_policy),
	    KOS_TEST(test_pubkey_without_the_token),
	    KOS_TEST(test_certificates),
	    KOS_TEST(test_bad_input_changes_nothing),
	    KOS_TEST(test_list_in_name_order),
	    KOS_TEST(test_destroy_dek),
	    KOS_TEST(test_destroy_signing_key),
	    KOS_TEST(test_destroy_crash_then_fsck),
	    KOS_TEST(test_cert_remove),
	};

	return kos_test_run("keys", suite_init, suite_cleanup, cases, KOS_ARRAY_SIZE(cases));
}
