/* Envelope encryption: round trips, the documented layout, a fixed vector,
 * and every way an envelope can be wrong. */
#include "config.h"

#include "kos/internal.h"
#include "tests/kos-test.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

static uint8_t key[32];

static int init(void)
{
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)i;
	return 0;
}

static void test_round_trip_sizes(void)
{
	static const size_t sizes[] = { 0, 1, 15, 16, 17, 1024, 1 << 20 };
	uint8_t *pt = malloc(1 << 20), *env, *back;
	size_t env_len, len, i;

	CU_ASSERT_PTR_NOT_NULL_FATAL(pt);
	for (i = 0; i < (1 << 20); i++)
		pt[i] = (uint8_t)(i * 7);
	for (i = 0; i < KOS_ARRAY_SIZE(sizes); i++) {
		CU_ASSERT_EQUAL_FATAL(kos_envelope_seal(key, "k", 1, "ctx", pt, sizes[i], &env, &env_len),
				      KOS_OK);
		CU_ASSERT_EQUAL(env_len, 4 + 1 + 1 + 1 + 4 + 12 + sizes[i] + 16);
		CU_ASSERT_EQUAL_FATAL(kos_envelope_open(key, env, env_len, "ctx", &back, &len), KOS_OK);
		CU_ASSERT_EQUAL(len, sizes[i]);
		CU_ASSERT(memcmp(back, pt, len) == 0);
		kos_secret_free(back, len);
		kos_free(env);
	}
	free(pt);
}

static void test_nonces_differ(void)
{
	uint8_t *a, *b;
	size_t na, nb;

	CU_ASSERT_EQUAL_FATAL(kos_envelope_seal(key, "k", 1, NULL, (const uint8_t *)"x", 1, &a, &na), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_envelope_seal(key, "k", 1, NULL, (const uint8_t *)"x", 1, &b, &nb), KOS_OK);
	CU_ASSERT_EQUAL(na, nb);
	CU_ASSERT(memcmp(a + 11, b + 11, 12) != 0);
	kos_free(a);
	kos_free(b);
}

static void test_parse_header(void)
{
	kos_envelope_info info;
	uint8_t *env;
	size_t n;

	CU_ASSERT_EQUAL_FATAL(kos_envelope_seal(key, "payments/db", 70000, "c",
						(const uint8_t *)"hello", 5, &env, &n), KOS_OK);
	CU_ASSERT_EQUAL(kos_envelope_parse(env, n, &info), KOS_OK);
	CU_ASSERT_STRING_EQUAL(info.key_name, "payments/db");
	CU_ASSERT_EQUAL(info.key_version, 70000);
	CU_ASSERT_EQUAL(info.plaintext_len, 5);
	kos_free(env);
}

/* Decrypts by the layout kos-envelope(5) documents, with OpenSSL directly:
 * what another implementation would do. */
static void test_documented_layout(void)
{
	const char *ctx_str = "tenant=7";
	uint8_t *env, out[64];
	size_t n, hdr;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int l, ok;

	CU_ASSERT_EQUAL_FATAL(kos_envelope_seal(key, "abc", 2, ctx_str,
						(const uint8_t *)"plaintext!", 10, &env, &n), KOS_OK);
	CU_ASSERT(memcmp(env, "KOSE", 4) == 0);
	CU_ASSERT_EQUAL(env[4], 1);
	CU_ASSERT_EQUAL(env[5], 3);
	CU_ASSERT(memcmp(env + 6, "abc", 3) == 0);
	CU_ASSERT(env[9] == 0 && env[10] == 0 && env[11] == 0 && env[12] == 2);
	hdr = 4 + 1 + 1 + 3 + 4 + 12;
	CU_ASSERT_EQUAL_FATAL(n, hdr + 10 + 16);
	ok = EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, env + 13) == 1 &&
	     EVP_DecryptUpdate(c, NULL, &l, env, (int)hdr) == 1 &&
	     EVP_DecryptUpdate(c, NULL, &l, (const uint8_t *)ctx_str, (int)strlen(ctx_str)) == 1 &&
	     EVP_DecryptUpdate(c, out, &l, env + hdr, 10) == 1 &&
	     EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, env + hdr + 10) == 1 &&
	     EVP_DecryptFinal_ex(c, out + l, &l) == 1;
	CU_ASSERT(ok);
	CU_ASSERT(memcmp(out, "plaintext!", 10) == 0);
	EVP_CIPHER_CTX_free(c);
	kos_free(env);
}

/* An envelope made by this format's first implementation: later versions
 * must still open it. */
static void test_fixed_vector(void)
{
	static const char hex[] =
		"4b4f534501087061796d656e7473000000037cb38b06a5b83914338a808499e3dde4b7028e90"
		"051f866c95494d4a14f81287ace7771ebcdf0f534e063c";
	uint8_t env[sizeof(hex) / 2], *pt;
	size_t len;

	CU_ASSERT_EQUAL_FATAL(kos_hex_decode(hex, sizeof(hex) - 1, env), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_envelope_open(key, env, sizeof(env), "order:42", &pt, &len), KOS_OK);
	CU_ASSERT_EQUAL(len, 15);
	CU_ASSERT(memcmp(pt, "kos envelope v1", 15) == 0);
	kos_secret_free(pt, len);
	CU_ASSERT_EQUAL(kos_envelope_open(key, env, sizeof(env), "order:43", &pt, &len),
			KOS_E_INTEGRITY);
}

static void test_wrong_context_and_key(void)
{
	uint8_t *env, *pt = (uint8_t *)1, other[32];
	size_t n, len = 99;

	CU_ASSERT_EQUAL_FATAL(kos_envelope_seal(key, "k", 1, "right", (const uint8_t *)"s", 1, &env, &n),
			      KOS_OK);
	CU_ASSERT_EQUAL(kos_envelope_open(key, env, n, "wrong", &pt, &len), KOS_E_INTEGRITY);
	CU_ASSERT_PTR_NULL(pt);
	CU_ASSERT_EQUAL(len, 0);
	CU_ASSERT(strstr(kos_last_error(), "failed authentication") != NULL);
	CU_ASSERT_EQUAL(kos_envelope_open(key, env, n, NULL, &pt, &len), KOS_E_INTEGRITY);
	memcpy(other, key, 32);
	other[31] ^= 1;
	CU_ASSERT_EQUAL(kos_envelope_open(other, env, n, "right", &pt, &len), KOS_E_INTEGRITY);
	kos_free(env);
	/* no context and the empty context are the same */
	CU_ASSERT_EQUAL_FATAL(kos_envelope_seal(key, "k", 1, NULL, (const uint8_t *)"s", 1, &env, &n), KOS_OK);
	CU_ASSERT_EQUAL(kos_envelope_open(key, env, n, "", &pt, &len), KOS_OK);
	kos_secret_free(pt, len);
	kos_free(env);
}

/* Flipping any bit of an envelope never yields a plaintext. */
static void test_every_bit_flip_refused(void)
{
	uint8_t *env, *pt;
	size_t n, len, i;
	int bit;

	CU_ASSERT_EQUAL_FATAL(kos_envelope_seal(key, "key1", 9, "c", (const uint8_t *)"secret data", 11,
						&env, &n), KOS_OK);
	for (i = 0; i < n; i++) {
		for (bit = 0; bit < 8; bit++) {
			kos_rv rv;

			env[i] ^= (uint8_t)(1 << bit);
			rv = kos_envelope_open(key, env, n, "c", &pt, &len);
			CU_ASSERT(rv == KOS_E_INTEGRITY || rv == KOS_E_PARSE);
			if (rv == KOS_OK)
				kos_secret_free(pt, len);
			env[i] ^= (uint8_t)(1 << bit);
		}
	}
	kos_free(env);
}

static void test_truncated_and_extended(void)
{
	uint8_t *env, *pt, *longer;
	size_t n, len, i;

	CU_ASSERT_EQUAL_FATAL(kos_envelope_seal(key, "key1", 1, NULL, (const uint8_t *)"abcdef", 6, &env, &n),
			      KOS_OK);
	for (i = 0; i < n; i++) {
		kos_rv rv = kos_envelope_open(key, env, i, NULL, &pt, &len);

		CU_ASSERT(rv == KOS_E_PARSE || rv == KOS_E_INTEGRITY);
	}
	CU_ASSERT_EQUAL(kos_envelope_open(key, env, 0, NULL, &pt, &len), KOS_E_PARSE);
	CU_ASSERT_EQUAL(kos_envelope_open(key, NULL, 10, NULL, &pt, &len), KOS_E_PARSE);
	longer = malloc(n + 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(longer);
	memcpy(longer, env, n);
	longer[n] = 0;
	CU_ASSERT_EQUAL(kos_envelope_open(key, longer, n + 1, NULL, &pt, &len), KOS_E_INTEGRITY);
	free(longer);
	kos_free(env);
}

static void test_header_refusals(void)
{
	uint8_t *env, *pt;
	size_t n, len;
	kos_envelope_info info;

	CU_ASSERT_EQUAL_FATAL(kos_envelope_seal(key, "key1", 1, NULL, (const uint8_t *)"abc", 3, &env, &n),
			      KOS_OK);
	env[0] = 'X';
	CU_ASSERT_EQUAL(kos_envelope_parse(env, n, &info), KOS_E_PARSE);
	CU_ASSERT(strstr(kos_last_error(), "magic") != NULL);
	env[0] = 'K';
	env[4] = 2;
	CU_ASSERT_EQUAL(kos_envelope_open(key, env, n, NULL, &pt, &len), KOS_E_PARSE);
	CU_ASSERT(strstr(kos_last_error(), "format version 2") != NULL);
	env[4] = 1;
	env[5] = 200; /* name longer than the envelope */
	CU_ASSERT_EQUAL(kos_envelope_parse(env, n, &info), KOS_E_PARSE);
	env[5] = 4;
	env[7] = ' '; /* a name with a space */
	CU_ASSERT_EQUAL(kos_envelope_parse(env, n, &info), KOS_E_PARSE);
	env[7] = 'e';
	memset(env + 10, 0, 4); /* version 0 */
	CU_ASSERT_EQUAL(kos_envelope_parse(env, n, &info), KOS_E_PARSE);
	kos_free(env);
}

static void test_seal_refusals(void)
{
	uint8_t *env = (uint8_t *)1;
	size_t n = 5;
	char long_name[KOS_ENVELOPE_NAME_MAX + 2];
	char *big_ctx = malloc(KOS_ENVELOPE_CONTEXT_MAX + 2);

	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	CU_ASSERT_EQUAL(kos_envelope_seal(key, "", 1, NULL, (const uint8_t *)"a", 1, &env, &n), KOS_E_INVALID);
	CU_ASSERT_PTR_NULL(env);
	CU_ASSERT_EQUAL(n, 0);
	CU_ASSERT_EQUAL(kos_envelope_seal(key, long_name, 1, NULL, (const uint8_t *)"a", 1, &env, &n),
			KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_envelope_seal(key, "a b", 1, NULL, (const uint8_t *)"a", 1, &env, &n),
			KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_envelope_seal(key, "k", 0, NULL, (const uint8_t *)"a", 1, &env, &n),
			KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_envelope_seal(key, "k", 1, NULL, (const uint8_t *)"a",
					  (size_t)KOS_ENVELOPE_MAX_PLAINTEXT + 1, &env, &n),
			KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_envelope_seal(NULL, "k", 1, NULL, (const uint8_t *)"a", 1, &env, &n),
			KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_envelope_seal(key, "k", 1, NULL, NULL, 1, &env, &n), KOS_E_INVALID);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big_ctx);
	memset(big_ctx, 'c', KOS_ENVELOPE_CONTEXT_MAX + 1);
	big_ctx[KOS_ENVELOPE_CONTEXT_MAX + 1] = '\0';
	CU_ASSERT_EQUAL(kos_envelope_seal(key, "k", 1, big_ctx, (const uint8_t *)"a", 1, &env, &n),
			KOS_E_INVALID);
	free(big_ctx);
}

int main(void)
{
	static const struct kos_test_case cases[] = {
		KOS_TEST(test_round_trip_sizes),
		KOS_TEST(test_nonces_differ),
		KOS_TEST(test_parse_header),
		KOS_TEST(test_documented_layout),
		KOS_TEST(test_fixed_vector),
		KOS_TEST(test_wrong_context_and_key),
		KOS_TEST(test_every_bit_flip_refused),
		KOS_TEST(test_truncated_and_extended),
		KOS_TEST(test_header_refusals),
		KOS_TEST(test_seal_refusals),
	};

	return kos_test_run("envelope", init, NULL, cases, KOS_ARRAY_SIZE(cases));
}
