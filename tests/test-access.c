/* Tiered delivery against a real installation (SoftHSM tokens, SQLite):
 * each tier gets exactly what it may, and a low-tier client gets no DEK by
 * any route this layer offers. */
#include "config.h"

#include "kos/internal.h"
#include "tests/kos-test.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char inst[512];
static kos_config *conf;
static kos_policy *pol;
static kos_store *st;
static kos_hsm *hsm;
static kos_keys *keys;
static kos_trust *tr;
static kos_access *acc;
static uint8_t dek[KOS_DEK_LEN];

#define SCOPE "decrypt:payments encrypt:payments sign:signer-1"

static int suite_init(void)
{
	uint32_t v;

	if (kos_test_inst_open(inst, sizeof(inst), 0, &conf, &pol, &st, &hsm) != 0)
		return 1;
	if (kos_keys_new(pol, st, hsm, &keys) != KOS_OK || kos_trust_new(pol, st, &tr) != KOS_OK ||
	    kos_access_new(keys, tr, &acc) != KOS_OK)
		goto fail;
	if (kos_key_create(keys, "payments", KOS_KEY_DEK) != KOS_OK ||
	    kos_key_dek(keys, "payments", 0, dek, &v) != KOS_OK)
		goto fail;
	return 0;
fail:
	fprintf(stderr, "set-up: %s\n", kos_last_error());
	return 1;
}

static int suite_cleanup(void)
{
	kos_access_free(acc);
	kos_trust_free(tr);
	kos_keys_free(keys);
	return kos_test_inst_close(conf, pol, st, hsm);
}

static void observe_n(const char *client, kos_event ev, double value, int n)
{
	kos_observation obs = { .event = ev, .value = value, .ops = 1, .bytes = 100 };

	for (int i = 0; i < n; i++)
		CU_ASSERT_EQUAL_FATAL(kos_trust_observe(tr, client, &obs, NULL), KOS_OK);
}

static kos_tier tier_of(const char *client)
{
	kos_trust_info info;

	CU_ASSERT_EQUAL_FATAL(kos_trust_get(tr, client, &info), KOS_OK);
	return info.tier;
}

/* Good behaviour until the client is high. */
static void make_high(const char *client)
{
	observe_n(client, KOS_EVENT_SUCCESS, 0, 40);
	observe_n(client, KOS_EVENT_LATENCY, 5, 10);
	observe_n(client, KOS_EVENT_REPUTATION, 100, 10);
	observe_n(client, KOS_EVENT_USAGE, 0, 1);
	CU_ASSERT_EQUAL(tier_of(client), KOS_TIER_HIGH);
}

/* Two integrity failures take a new client (at the prior) to low. */
static void make_low(const char *client)
{
	observe_n(client, KOS_EVENT_INTEGRITY, 0, 2);
	CU_ASSERT_EQUAL(tier_of(client), KOS_TIER_LOW);
}

static void make_deny(const char *client)
{
	observe_n(client, KOS_EVENT_INTEGRITY, 0, 4);
	observe_n(client, KOS_EVENT_SCOPE, 0, 6);
	observe_n(client, KOS_EVENT_LATENCY, 5000, 15);
	observe_n(client, KOS_EVENT_REPUTATION, 0, 15);
	CU_ASSERT_EQUAL(tier_of(client), KOS_TIER_DENY);
}

/* The tier of a client never observed: the prior's. */
static kos_tier tier_of_new(const char *client)
{
	kos_trust_info info;

	CU_ASSERT_EQUAL(kos_trust_get(tr, client, &info), KOS_E_NOTFOUND);
	return kos_trust_tier_of(tr, pol->prior);
}

static uint64_t observations(const char *client)
{
	kos_trust_info info;

	if (kos_trust_get(tr, client, &info) != KOS_OK)
		return 0;
	return info.observations;
}

static void test_high_gets_the_dek(void)
{
	kos_access_result res;

	make_high("hugo");
	CU_ASSERT_EQUAL_FATAL(kos_access_key(acc, "hugo", SCOPE, "payments", 0, &res), KOS_OK);
	CU_ASSERT_EQUAL(res.delivery, KOS_DELIVER_DEK);
	CU_ASSERT_EQUAL(res.tier, KOS_TIER_HIGH);
	CU_ASSERT_EQUAL(res.version, 1);
	CU_ASSERT(memcmp(res.dek, dek, KOS_DEK_LEN) == 0);
	CU_ASSERT_EQUAL(res.n_refs, 0);
	kos_access_result_clear(&res);
	CU_ASSERT(res.dek[0] == 0 && res.dek[31] == 0);
}

/* References name k distinct tokens, and the shares they name give the DEK. */
static void check_refs(const kos_access_result *res)
{
	kos_share shares[255];
	uint8_t *secret = NULL;
	size_t len = 0, i, j;

	CU_ASSERT_EQUAL_FATAL(res->delivery, KOS_DELIVER_SHARES);
	CU_ASSERT_EQUAL(res->n_refs, res->k);
	CU_ASSERT(res->k >= 2);
	for (i = 0; i < res->n_refs; i++)
		for (j = i + 1; j < res->n_refs; j++) {
			CU_ASSERT(strcmp(res->refs[i].kms_token, res->refs[j].kms_token) != 0);
			CU_ASSERT(res->refs[i].x != res->refs[j].x);
		}
	memset(shares, 0, sizeof(shares));
	for (i = 0; i < res->n_refs; i++) {
		CU_ASSERT_EQUAL_FATAL(kos_key_share_get(keys, res->refs[i].share_id, &shares[i]), KOS_OK);
		CU_ASSERT_EQUAL(shares[i].x, res->refs[i].x);
	}
	CU_ASSERT_EQUAL_FATAL(kos_shamir_combine(shares, res->n_refs, &secret, &len), KOS_OK);
	CU_ASSERT_EQUAL(len, KOS_DEK_LEN);
	CU_ASSERT(memcmp(secret, dek, KOS_DEK_LEN) == 0);
	kos_secret_free(secret, len);
	kos_shares_clear(shares, res->n_refs);
}

static void test_medium_gets_share_refs(void)
{
	kos_access_result res;
	const struct kos_share_set_rule *wide = NULL, *narrow = NULL;

	for (size_t i = 0; i < pol->n_share_sets; i++) {
		if (strcmp(pol->share_sets[i].name, "wide") == 0)
			wide = &pol->share_sets[i];
		if (strcmp(pol->share_sets[i].name, "narrow") == 0)
			narrow = &pol->share_sets[i];
	}
	CU_ASSERT_PTR_NOT_NULL_FATAL(wide);
	CU_ASSERT_PTR_NOT_NULL_FATAL(narrow);

	/* a new client stands at the prior (60): medium, the wide set */
	CU_ASSERT_EQUAL_FATAL(kos_access_key(acc, "mia", SCOPE, "payments", 0, &res), KOS_OK);
	CU_ASSERT_EQUAL(res.tier, KOS_TIER_MEDIUM);
	CU_ASSERT_STRING_EQUAL(res.share_set, "wide");
	CU_ASSERT_EQUAL(res.k, wide->k);
	check_refs(&res);
	for (size_t i = 0; i < KOS_DEK_LEN; i++)
		CU_ASSERT_EQUAL(res.dek[i], 0);
	kos_access_result_clear(&res);

	/* better behaviour, a higher medium score: the narrow set */
	observe_n("mia", KOS_EVENT_SUCCESS, 0, 30);
	CU_ASSERT_EQUAL_FATAL(kos_access_key(acc, "mia", SCOPE, "payments", 0, &res), KOS_OK);
	CU_ASSERT_EQUAL(res.tier, KOS_TIER_MEDIUM);
	CU_ASSERT(res.score >= narrow->min_score);
	CU_ASSERT_STRING_EQUAL(res.share_set, "narrow");
	CU_ASSERT_EQUAL(res.k, narrow->k);
	check_refs(&res);
	kos_access_result_clear(&res);
}

static void test_low_gets_server_side_only(void)
{
	kos_access_result res, dec;
	const char *msg = "card 4111";

	make_low("lou");
	CU_ASSERT_EQUAL_FATAL(kos_access_key(acc, "lou", SCOPE, "payments", 0, &res), KOS_OK);
	CU_ASSERT_EQUAL(res.delivery, KOS_DELIVER_SERVER);
	CU_ASSERT_EQUAL(res.tier, KOS_TIER_LOW);
	CU_ASSERT_STRING_EQUAL(res.reason, "server-side only");
	CU_ASSERT_EQUAL(res.n_refs, 0);
	CU_ASSERT_PTR_NULL(res.data);
	for (size_t i = 0; i < KOS_DEK_LEN; i++)
		CU_ASSERT_EQUAL(res.dek[i], 0);
	kos_access_result_clear(&res);

	/* the work is done for it instead */
	CU_ASSERT_EQUAL_FATAL(kos_access_encrypt(acc, "lou", SCOPE, "payments", "ctx",
						 (const uint8_t *)msg, strlen(msg), &res), KOS_OK);
	CU_ASSERT_EQUAL(res.delivery, KOS_DELIVER_SERVER);
	CU_ASSERT_PTR_NOT_NULL_FATAL(res.data);
	CU_ASSERT_EQUAL_FATAL(kos_access_decrypt(acc, "lou", SCOPE, "ctx", res.data, res.data_len, &dec),
			      KOS_OK);
	CU_ASSERT_EQUAL(dec.delivery, KOS_DELIVER_SERVER);
	CU_ASSERT_EQUAL(dec.data_len, strlen(msg));
	CU_ASSERT(dec.data != NULL && memcmp(dec.data, msg, strlen(msg)) == 0);
	kos_access_result_clear(&dec);
	kos_access_result_clear(&res);

	/* asking for a specific version changes nothing */
	CU_ASSERT_EQUAL_FATAL(kos_access_key(acc, "lou", "key:payments", "payments", 1, &res), KOS_OK);
	CU_ASSERT_EQUAL(res.delivery, KOS_DELIVER_SERVER);
	CU_ASSERT_EQUAL(res.n_refs, 0);
	kos_access_result_clear(&res);
}

static void test_deny_gets_nothing(void)
{
	kos_access_result res;
	uint8_t *env;
	size_t env_len;

	make_deny("dan");
	CU_ASSERT_EQUAL(kos_access_key(acc, "dan", SCOPE, "payments", 0, &res), KOS_OK);
	CU_ASSERT_EQUAL(res.delivery, KOS_DELIVER_REFUSED);
	CU_ASSERT_STRING_EQUAL(res.reason, "trust too low");
	CU_ASSERT_EQUAL(kos_key_encrypt(keys, "payments", NULL, (const uint8_t *)"x", 1, &env, &env_len),
			KOS_OK);
	CU_ASSERT_EQUAL(kos_access_decrypt(acc, "dan", SCOPE, NULL, env, env_len, &res), KOS_OK);
	CU_ASSERT_EQUAL(res.delivery, KOS_DELIVER_REFUSED);
	CU_ASSERT_PTR_NULL(res.data);
	CU_ASSERT_EQUAL(kos_access_encrypt(acc, "dan", SCOPE, "payments", NULL, (const uint8_t *)"x", 1,
					   &res), KOS_OK);
	CU_ASSERT_EQUAL(res.delivery, KOS_DELIVER_REFUSED);
	CU_ASSERT_PTR_NULL(res.data);
	kos_free(env);
}

static void test_out_of_scope_refused_and_observed(void)
{
	kos_access_result res;
	kos_trust_info before, after;

	make_high("olga");
	CU_ASSERT_EQUAL_FATAL(kos_trust_get(tr, "olga", &before), KOS_OK);
	CU_ASSERT_EQUAL(kos_access_key(acc, "olga", "decrypt:other", "payments", 0, &res), KOS_OK);
	CU_ASSERT_EQUAL(res.delivery, KOS_DELIVER_REFUSED);
	CU_ASSERT_STRING_EQUAL(res.reason, "out of scope");
	for (size_t i = 0; i < KOS_DEK_LEN; i++)
		CU_ASSERT_EQUAL(res.dek[i], 0);
	/* encrypt:payments does not let one decrypt, nor ask for the key */
	CU_ASSERT_EQUAL(kos_access_key(acc, "olga", "encrypt:payments", "payments", 0, &res), KOS_OK);
	CU_ASSERT_EQUAL(res.delivery, KOS_DELIVER_REFUSED);
	CU_ASSERT_EQUAL(kos_access_key(acc, "olga", NULL, "payments", 0, &res), KOS_OK);
	CU_ASSERT_EQUAL(res.delivery, KOS_DELIVER_REFUSED);
	CU_ASSERT_EQUAL_FATAL(kos_trust_get(tr, "olga", &after), KOS_OK);
	CU_ASSERT_EQUAL(after.scope_violations, before.scope_violations + 3);
}

static void test_wrong_context_is_an_integrity_failure(void)
{
	kos_access_result res;
	kos_trust_info before, after;
	uint8_t *env;
	size_t env_len;

	CU_ASSERT_EQUAL_FATAL(kos_key_encrypt(keys, "payments", "right", (const uint8_t *)"abc", 3, &env,
					      &env_len), KOS_OK);
	make_high("ivy");
	CU_ASSERT_EQUAL_FATAL(kos_trust_get(tr, "ivy", &before), KOS_OK);
	CU_ASSERT_EQUAL(kos_access_decrypt(acc, "ivy", SCOPE, "wrong", env, env_len, &res),
			KOS_E_INTEGRITY);
	CU_ASSERT_PTR_NULL(res.data);
	env[env_len - 1] ^= 1;
	CU_ASSERT_EQUAL(kos_access_decrypt(acc, "ivy", SCOPE, "right", env, env_len, &res),
			KOS_E_INTEGRITY);
	CU_ASSERT_EQUAL(kos_access_decrypt(acc, "ivy", SCOPE, "right", env, 10, &res), KOS_E_PARSE);
	CU_ASSERT_EQUAL_FATAL(kos_trust_get(tr, "ivy", &after), KOS_OK);
	CU_ASSERT_EQUAL(after.integrity_failures, before.integrity_failures + 3);
	CU_ASSERT(after.score < before.score);
	kos_free(env);
}

static void test_every_decision_is_observed(void)
{
	kos_access_result res;
	uint64_t n0 = observations("otto"), n1;

	CU_ASSERT_EQUAL(kos_access_key(acc, "otto", SCOPE, "payments", 0, &res), KOS_OK);
	kos_access_result_clear(&res);
	n1 = observations("otto");
	CU_ASSERT(n1 > n0);
	CU_ASSERT_EQUAL(kos_access_key(acc, "otto", "sign:x", "payments", 0, &res), KOS_OK);
	CU_ASSERT(observations("otto") > n1);
}

static void test_threat_level_shifts_tiers(void)
{
	kos_access_result res;
	kos_trust_info info;

	make_high("tess");
	CU_ASSERT_EQUAL_FATAL(kos_trust_get(tr, "tess", &info), KOS_OK);
	/* at critical the high threshold is 80 + 25, capped at 100: out of reach */
	CU_ASSERT(info.score >= 80.0 && info.score < 100.0);
	kos_trust_set_threat(tr, KOS_THREAT_CRITICAL);
	CU_ASSERT_EQUAL(kos_access_key(acc, "tess", SCOPE, "payments", 0, &res), KOS_OK);
	CU_ASSERT_EQUAL(res.tier, KOS_TIER_MEDIUM);
	CU_ASSERT_EQUAL(res.delivery, KOS_DELIVER_SHARES);
	kos_access_result_clear(&res);
	kos_trust_set_threat(tr, KOS_THREAT_NORMAL);
	CU_ASSERT_EQUAL(kos_access_key(acc, "tess", SCOPE, "payments", 0, &res), KOS_OK);
	CU_ASSERT_EQUAL(res.delivery, KOS_DELIVER_DEK);
	kos_access_result_clear(&res);
}

static void test_signing_by_tier(void)
{
	kos_access_result res;

	CU_ASSERT_EQUAL_FATAL(kos_key_create(keys, "signer-1", KOS_KEY_EC_P256), KOS_OK);
	make_low("sam");
	CU_ASSERT_EQUAL(kos_access_sign(acc, "sam", SCOPE, "signer-1", KOS_SIG_ECDSA_RAW,
					(const uint8_t *)"msg", 3, &res), KOS_OK);
	CU_ASSERT_EQUAL(res.delivery, KOS_DELIVER_SERVER);
	CU_ASSERT_EQUAL(res.data_len, 64);
	kos_access_result_clear(&res);
	/* a signing key is not a data key */
	CU_ASSERT_EQUAL(kos_access_key(acc, "sam", "decrypt:signer-1", "signer-1", 0, &res),
			KOS_E_INVALID);
	make_deny("sid");
	CU_ASSERT_EQUAL(kos_access_sign(acc, "sid", SCOPE, "signer-1", KOS_SIG_DEFAULT,
					(const uint8_t *)"msg", 3, &res), KOS_OK);
	CU_ASSERT_EQUAL(res.delivery, KOS_DELIVER_REFUSED);
	CU_ASSERT_PTR_NULL(res.data);
}

#define TIERED "sign:tiered-ec decrypt:payments"

/* signing.min_tier = "medium": a low client is refused signing with
 * "trust too low" (observed, as deny's refusal is), a medium one signs;
 * "low", the default, serves both. */
static void test_min_tier_keeps_private_keys_from_low(void)
{
	struct kos_policy medium = *pol;
	kos_access_result res;
	uint64_t before;

	CU_ASSERT_EQUAL_FATAL(kos_key_create(keys, "tiered-ec", KOS_KEY_EC_P256), KOS_OK);
	medium.path = NULL;
	medium.signing.min_tier = KOS_TIER_MEDIUM;
	make_low("lea");
	/* a new client stands at the prior: medium */
	CU_ASSERT_EQUAL(tier_of_new("meo"), KOS_TIER_MEDIUM);

	kos_trust_set_policy(tr, &medium);
	before = observations("lea");
	CU_ASSERT_EQUAL(kos_access_sign(acc, "lea", TIERED, "tiered-ec", KOS_SIG_DEFAULT,
					(const uint8_t *)"msg", 3, &res), KOS_OK);
	CU_ASSERT_EQUAL(res.delivery, KOS_DELIVER_REFUSED);
	CU_ASSERT_EQUAL(res.tier, KOS_TIER_LOW);
	KOS_ASSERT_STR_EQ(res.reason, "trust too low");
	CU_ASSERT_PTR_NULL(res.data);
	CU_ASSERT(observations("lea") > before);
	kos_access_result_clear(&res);
	CU_ASSERT_EQUAL(kos_access_sign(acc, "meo", TIERED, "tiered-ec", KOS_SIG_DEFAULT,
					(const uint8_t *)"msg", 3, &res), KOS_OK);
	CU_ASSERT_EQUAL(res.delivery, KOS_DELIVER_SERVER);
	CU_ASSERT_EQUAL(res.tier, KOS_TIER_MEDIUM);
	CU_ASSERT_EQUAL(res.data_len, 64);
	kos_access_result_clear(&res);
	/* the knob is about private keys: a low client's data keys are served */
	CU_ASSERT_EQUAL(kos_access_key(acc, "lea", TIERED, "payments", 0, &res), KOS_OK);
	CU_ASSERT_EQUAL(res.delivery, KOS_DELIVER_SERVER);
	kos_access_result_clear(&res);

	kos_trust_set_policy(tr, pol);
	CU_ASSERT_EQUAL(tier_of("lea"), KOS_TIER_LOW);
	CU_ASSERT_EQUAL(kos_access_sign(acc, "lea", TIERED, "tiered-ec", KOS_SIG_DEFAULT,
					(const uint8_t *)"msg", 3, &res), KOS_OK);
	CU_ASSERT_EQUAL(res.delivery, KOS_DELIVER_SERVER);
	kos_access_result_clear(&res);
}

/* An RSA ciphertext (PKCS#1 v1.5, OpenSSL) to the current version of name. */
static size_t rsa_ct(const char *name, const uint8_t *pt, size_t len, uint8_t ct[256])
{
	char *pem = NULL;
	BIO *bio;
	EVP_PKEY *pk;
	EVP_PKEY_CTX *ctx;
	size_t n = 256;

	CU_ASSERT_EQUAL_FATAL(kos_key_pubkey_pem(keys, name, 0, &pem), KOS_OK);
	bio = BIO_new_mem_buf(pem, -1);
	pk = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	ctx = pk != NULL ? EVP_PKEY_CTX_new(pk, NULL) : NULL;
	CU_ASSERT_FATAL(ctx != NULL && EVP_PKEY_encrypt_init(ctx) == 1 &&
			EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1 &&
			EVP_PKEY_encrypt(ctx, ct, &n, pt, len) == 1);
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(pk);
	BIO_free(bio);
	kos_free(pem);
	return n;
}

/* RSA decryption takes decrypt:NAME (sign:NAME is not enough), the tiers
 * from signing.min_tier, and counts a ciphertext that does not decrypt as
 * the client's integrity failure. */
static void test_rsa_decrypt_scope_tier_and_integrity(void)
{
	static const uint8_t secret[] = "premaster";
	struct kos_policy medium = *pol;
	kos_rsa_decrypt_opts o = KOS_RSA_DECRYPT_OPTS_INIT;
	kos_access_result res;
	kos_trust_info before, after;
	uint8_t ct[256];
	size_t n;

	CU_ASSERT_EQUAL_FATAL(kos_key_create(keys, "tiered-rsa", KOS_KEY_RSA_2048), KOS_OK);
	n = rsa_ct("tiered-rsa", secret, sizeof(secret), ct);
	make_high("rhea");
	CU_ASSERT_EQUAL_FATAL(kos_access_rsa_decrypt(acc, "rhea", "decrypt:tiered-rsa",
						     "tiered-rsa", &o, ct, n, &res),
			      KOS_OK);
	CU_ASSERT_EQUAL(res.delivery, KOS_DELIVER_SERVER);
	CU_ASSERT_EQUAL(res.version, 1);
	CU_ASSERT(res.data_len == sizeof(secret) && memcmp(res.data, secret, res.data_len) == 0);
	kos_access_result_clear(&res);
	/* the scope of signing, or of another key, is not the scope of decryption */
	CU_ASSERT_EQUAL(kos_access_rsa_decrypt(acc, "rhea", "sign:tiered-rsa decrypt:other",
					       "tiered-rsa", &o, ct, n, &res),
			KOS_OK);
	CU_ASSERT_EQUAL(res.delivery, KOS_DELIVER_REFUSED);
	KOS_ASSERT_STR_EQ(res.reason, "out of scope");
	CU_ASSERT_PTR_NULL(res.data);
	/* a ciphertext that does not decrypt: an integrity failure */
	CU_ASSERT_EQUAL_FATAL(kos_trust_get(tr, "rhea", &before), KOS_OK);
	ct[17] ^= 1;
	CU_ASSERT_EQUAL(kos_access_rsa_decrypt(acc, "rhea", "decrypt:tiered-rsa", "tiered-rsa", &o,
					       ct, n, &res),
			KOS_E_INTEGRITY);
	CU_ASSERT_PTR_NULL(res.data);
	CU_ASSERT_EQUAL_FATAL(kos_trust_get(tr, "rhea", &after), KOS_OK);
	CU_ASSERT_EQUAL(after.integrity_failures, before.integrity_failures + 1);
	CU_ASSERT(after.score < before.score);
	ct[17] ^= 1;

	/* min_tier = "medium": low refused, medium served */
	medium.path = NULL;
	medium.signing.min_tier = KOS_TIER_MEDIUM;
	kos_trust_set_policy(tr, &medium);
	make_low("lars");
	CU_ASSERT_EQUAL(kos_access_rsa_decrypt(acc, "lars", "decrypt:tiered-rsa", "tiered-rsa", &o,
					       ct, n, &res),
			KOS_OK);
	CU_ASSERT_EQUAL(res.delivery, KOS_DELIVER_REFUSED);
	KOS_ASSERT_STR_EQ(res.reason, "trust too low");
	CU_ASSERT_PTR_NULL(res.data);
	CU_ASSERT_EQUAL(tier_of_new("mara"), KOS_TIER_MEDIUM);
	CU_ASSERT_EQUAL(kos_access_rsa_decrypt(acc, "mara", "decrypt:tiered-rsa", "tiered-rsa", &o,
					       ct, n, &res),
			KOS_OK);
	CU_ASSERT_EQUAL(res.delivery, KOS_DELIVER_SERVER);
	CU_ASSERT_EQUAL(res.data_len, sizeof(secret));
	kos_access_result_clear(&res);
	kos_trust_set_policy(tr, pol);
	/* deny is refused whatever the policy */
	make_deny("dora");
	CU_ASSERT_EQUAL(kos_access_rsa_decrypt(acc, "dora", "decrypt:tiered-rsa", "tiered-rsa", &o,
					       ct, n, &res),
			KOS_OK);
	CU_ASSERT_EQUAL(res.delivery, KOS_DELIVER_REFUSED);
}

/* a NULL-safe CU_ASSERT_STRING_EQUAL, so a broken decision fails the case
 * instead of crashing the program */
static bool str_is(const char *s, const char *want)
{
	return s != NULL && strcmp(s, want) == 0;
}

/* An envelope of key name under context, from the key service itself. */
static uint8_t *seal(const char *name, const char *context, const char *msg, size_t *len)
{
	uint8_t *env = NULL;

	CU_ASSERT_EQUAL_FATAL(kos_key_encrypt(keys, name, context, (const uint8_t *)msg,
					      strlen(msg), &env, len), KOS_OK);
	return env;
}

static uint32_t version_of_env(const uint8_t *env, size_t len)
{
	kos_envelope_info info;

	CU_ASSERT_EQUAL_FATAL(kos_envelope_parse(env, len, &info), KOS_OK);
	return info.key_version;
}

/* What decrypts env under context, by the key service (NULL: nothing). */
static bool opens_to(const uint8_t *env, size_t len, const char *context, const char *msg)
{
	uint8_t *pt = NULL;
	size_t n = 0;
	bool ok;

	if (kos_key_decrypt(keys, context, env, len, &pt, &n) != KOS_OK)
		return false;
	ok = n == strlen(msg) && memcmp(pt, msg, n) == 0;
	kos_secret_free(pt, n);
	return ok;
}

/* Rewrap moves envelopes of an old version to the current one, leaves a
 * current one as it is, and fails each bad envelope on its own: another
 * key's, a tampered one, a wrong context, garbage, a retired version. */
static void test_rewrap_moves_envelopes_forward(void)
{
	kos_rewrap_item it[8];
	kos_access_result res;
	kos_trust_info before, after;
	uint8_t *e1, *e2, *e3, *cur, *other, *bad, *old;
	size_t l1, l2, l3, lcur, lother, lbad, lold;
	uint32_t v;

	CU_ASSERT_EQUAL_FATAL(kos_key_create(keys, "archive", KOS_KEY_DEK), KOS_OK);
	e1 = seal("archive", "row-1", "alpha", &l1);
	e2 = seal("archive", "row-2", "beta", &l2);
	e3 = seal("archive", NULL, "", &l3);
	bad = seal("archive", "row-4", "delta", &lbad);
	bad[lbad - 1] ^= 1;
	other = seal("payments", "row-1", "alpha", &lother);
	CU_ASSERT_EQUAL_FATAL(kos_key_rotate(keys, "archive", &v), KOS_OK);
	CU_ASSERT_EQUAL(v, 2);
	cur = seal("archive", "row-5", "epsilon", &lcur);

	memset(it, 0, sizeof(it));
	it[0] = (kos_rewrap_item){ .env = e1, .env_len = l1, .context = "row-1" };
	it[1] = (kos_rewrap_item){ .env = e2, .env_len = l2, .context = "row-2" };
	it[2] = (kos_rewrap_item){ .env = e3, .env_len = l3, .context = NULL };
	it[3] = (kos_rewrap_item){ .env = cur, .env_len = lcur, .context = "row-5" };
	it[4] = (kos_rewrap_item){ .env = bad, .env_len = lbad, .context = "row-4" };
	it[5] = (kos_rewrap_item){ .env = e1, .env_len = l1, .context = "row-9" };
	it[6] = (kos_rewrap_item){ .env = other, .env_len = lother, .context = "row-1" };
	it[7] = (kos_rewrap_item){ .env = (const uint8_t *)"garbage", .env_len = 7 };
	make_low("rita");
	CU_ASSERT_EQUAL_FATAL(kos_trust_get(tr, "rita", &before), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_access_rewrap(acc, "rita", "rewrap:archive", "archive", it, 8,
						&res), KOS_OK);
	CU_ASSERT_EQUAL(res.delivery, KOS_DELIVER_SERVER);
	CU_ASSERT_EQUAL(res.tier, KOS_TIER_LOW);
	CU_ASSERT_EQUAL(res.version, 2);
	for (int i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL(it[i].rv, KOS_OK);
		CU_ASSERT_EQUAL(it[i].rewrapped, 1);
		CU_ASSERT_EQUAL(it[i].version, 2);
		CU_ASSERT_PTR_NOT_NULL_FATAL(it[i].out);
		CU_ASSERT_EQUAL(version_of_env(it[i].out, it[i].out_len), 2);
	}
	CU_ASSERT(opens_to(it[0].out, it[0].out_len, "row-1", "alpha"));
	CU_ASSERT(opens_to(it[1].out, it[1].out_len, "row-2", "beta"));
	CU_ASSERT(opens_to(it[2].out, it[2].out_len, NULL, ""));
	/* the context stays bound to the new envelope */
	CU_ASSERT(!opens_to(it[0].out, it[0].out_len, "row-2", "alpha"));
	/* already current: authenticated, not re-encrypted */
	CU_ASSERT_EQUAL(it[3].rv, KOS_OK);
	CU_ASSERT_EQUAL(it[3].rewrapped, 0);
	CU_ASSERT_PTR_NULL(it[3].out);
	CU_ASSERT_EQUAL(it[3].version, 2);
	CU_ASSERT_EQUAL(it[4].rv, KOS_E_INTEGRITY);
	CU_ASSERT(str_is(it[4].code, "integrity"));
	CU_ASSERT(strstr(it[4].message, "failed authentication") != NULL);
	CU_ASSERT_PTR_NULL(it[4].out);
	CU_ASSERT_EQUAL(it[5].rv, KOS_E_INTEGRITY);
	CU_ASSERT_EQUAL(it[6].rv, KOS_E_INVALID);
	CU_ASSERT(str_is(it[6].code, "wrong_key"));
	CU_ASSERT(strstr(it[6].message, "payments") != NULL);
	CU_ASSERT_EQUAL(it[7].rv, KOS_E_PARSE);
	CU_ASSERT(str_is(it[7].code, "bad_request"));
	/* the originals are untouched and still open */
	CU_ASSERT(opens_to(e1, l1, "row-1", "alpha"));
	/* one request, one observation: an integrity failure among them */
	CU_ASSERT_EQUAL_FATAL(kos_trust_get(tr, "rita", &after), KOS_OK);
	CU_ASSERT_EQUAL(after.integrity_failures, before.integrity_failures + 1);

	/* once v1 is retired its envelopes cannot move; the rewrapped ones open */
	old = malloc(l1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(old);
	memcpy(old, e1, l1);
	lold = l1;
	CU_ASSERT_EQUAL_FATAL(kos_key_retire(keys, "archive", 1), KOS_OK);
	CU_ASSERT(opens_to(it[0].out, it[0].out_len, "row-1", "alpha"));
	kos_rewrap_items_clear(it, 8);
	CU_ASSERT_PTR_NULL(it[0].out);
	it[0] = (kos_rewrap_item){ .env = old, .env_len = lold, .context = "row-1" };
	CU_ASSERT_EQUAL_FATAL(kos_access_rewrap(acc, "rita", "rewrap:*", "archive", it, 1, &res),
			      KOS_OK);
	CU_ASSERT_EQUAL(it[0].rv, KOS_E_NOTFOUND);
	CU_ASSERT(str_is(it[0].code, "retired"));
	CU_ASSERT(strstr(it[0].message, "retired") != NULL);
	kos_rewrap_items_clear(it, 1);
	kos_access_result_clear(&res);
	free(old);
	kos_free(e1);
	kos_free(e2);
	kos_free(e3);
	kos_free(cur);
	kos_free(bad);
	kos_free(other);
}

/* rewrap:NAME rewraps and does nothing else; decrypt:NAME does not
 * rewrap; deny is refused; a batch has a cap; a signing key has none. */
static void test_rewrap_scope_and_tiers(void)
{
	kos_rewrap_item it[1];
	kos_access_result res;
	kos_rewrap_item *many;
	uint8_t *env;
	size_t len;

	env = seal("payments", "c", "secret", &len);
	memset(it, 0, sizeof(it));
	it[0] = (kos_rewrap_item){ .env = env, .env_len = len, .context = "c" };
	CU_ASSERT_EQUAL(kos_access_rewrap(acc, "rob", "decrypt:payments encrypt:payments",
					  "payments", it, 1, &res), KOS_OK);
	CU_ASSERT_EQUAL(res.delivery, KOS_DELIVER_REFUSED);
	CU_ASSERT(str_is(res.reason, "out of scope"));
	CU_ASSERT_PTR_NULL(it[0].out);
	CU_ASSERT_EQUAL(kos_access_rewrap(acc, "rob", "rewrap:other", "payments", it, 1, &res),
			KOS_OK);
	CU_ASSERT_EQUAL(res.delivery, KOS_DELIVER_REFUSED);
	CU_ASSERT_EQUAL(kos_access_rewrap(acc, "rob", "rewrap:payments", "payments", it, 1, &res),
			KOS_OK);
	CU_ASSERT_EQUAL(res.delivery, KOS_DELIVER_SERVER);
	CU_ASSERT_EQUAL(it[0].rv, KOS_OK);
	kos_rewrap_items_clear(it, 1);
	/* the rewrapper cannot read what it moves */
	CU_ASSERT_EQUAL(kos_access_decrypt(acc, "rob", "rewrap:payments", "c", env, len, &res),
			KOS_OK);
	CU_ASSERT_EQUAL(res.delivery, KOS_DELIVER_REFUSED);
	CU_ASSERT_PTR_NULL(res.data);
	CU_ASSERT_EQUAL(kos_access_key(acc, "rob", "rewrap:payments", "payments", 0, &res), KOS_OK);
	CU_ASSERT_EQUAL(res.delivery, KOS_DELIVER_REFUSED);

	make_deny("ron");
	CU_ASSERT_EQUAL(kos_access_rewrap(acc, "ron", "rewrap:payments", "payments", it, 1, &res),
			KOS_OK);
	CU_ASSERT_EQUAL(res.delivery, KOS_DELIVER_REFUSED);
	CU_ASSERT(str_is(res.reason, "trust too low"));
	CU_ASSERT_PTR_NULL(it[0].out);

	many = calloc(KOS_REWRAP_MAX + 1, sizeof(*many));
	CU_ASSERT_PTR_NOT_NULL_FATAL(many);
	CU_ASSERT_EQUAL(kos_access_rewrap(acc, "rob", "rewrap:payments", "payments", many,
					  KOS_REWRAP_MAX + 1, &res), KOS_E_RANGE);
	free(many);
	CU_ASSERT_EQUAL(kos_access_rewrap(acc, "rob", "rewrap:*", "signer-1", it, 1, &res),
			KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_access_rewrap(acc, "rob", "rewrap:*", "nosuchkey", it, 1, &res),
			KOS_E_NOTFOUND);
	CU_ASSERT_PTR_NULL(it[0].out);
	kos_free(env);
}

static void test_bad_input_refused(void)
{
	kos_access_result res;

	CU_ASSERT_EQUAL(kos_access_key(acc, "../x", SCOPE, "payments", 0, &res), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_access_key(acc, "ann", SCOPE, "pay ments", 0, &res), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_access_key(acc, "ann", "decrypt:*", "nosuchkey", 0, &res), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_access_key(acc, "ann", SCOPE, "payments", 99, &res), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_access_decrypt(acc, "ann", SCOPE, NULL, (const uint8_t *)"garbage", 7, &res),
			KOS_E_PARSE);
	CU_ASSERT_EQUAL(kos_access_key(NULL, "ann", SCOPE, "payments", 0, &res), KOS_E_INVALID);
}

int main(void)
{
	static const struct kos_test_case cases[] = {
		KOS_TEST(test_high_gets_the_dek),
		KOS_TEST(test_medium_gets_share_refs),
		KOS_TEST(test_low_gets_server_side_only),
		KOS_TEST(test_deny_gets_nothing),
		KOS_TEST(test_out_of_scope_refused_and_observed),
		KOS_TEST(test_wrong_context_is_an_integrity_failure),
		KOS_TEST(test_every_decision_is_observed),
		KOS_TEST(test_threat_level_shifts_tiers),
		KOS_TEST(test_signing_by_tier),
		KOS_TEST(test_min_tier_keeps_private_keys_from_low),
		KOS_TEST(test_rsa_decrypt_scope_tier_and_integrity),
		KOS_TEST(test_rewrap_moves_envelopes_forward),
		KOS_TEST(test_rewrap_scope_and_tiers),
		KOS_TEST(test_bad_input_refused),
	};

	return kos_test_run("access", suite_init, suite_cleanup, cases, KOS_ARRAY_SIZE(cases));
}
