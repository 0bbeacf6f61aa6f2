/* Shamir sharing: GF(2^8) arithmetic, split/combine, refusals and the text form. */
#include "config.h"

#include "kos/internal.h"
#include "tests/kos-test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

/* Reference multiplication, written the textbook way (branches are fine in a
 * test): carry-less product, then reduction by x^8+x^4+x^3+x+1. */
static uint8_t ref_mul(uint8_t a, uint8_t b)
{
	unsigned p = 0, i;

	for (i = 0; i < 8; i++)
		if (b & (1u << i))
			p ^= (unsigned)a << i;
	for (i = 15; i >= 8; i--)
		if (p & (1u << i))
			p ^= 0x11bu << (i - 8);
	return (uint8_t)p;
}

static void random_bytes(uint8_t *buf, size_t len)
{
	CU_ASSERT_FATAL(RAND_bytes(buf, (int)len) == 1);
}

/* Combines shares[idx[0..m-1]] and tells whether the result equals want. */
static bool combine_matches(const kos_share *shares, const unsigned *idx, size_t m,
			    const uint8_t *want, size_t want_len)
{
	kos_share pick[KOS_SHAMIR_MAX_SHARES];
	uint8_t *got = NULL;
	size_t got_len = 0, i;
	bool same;

	for (i = 0; i < m; i++)
		pick[i] = shares[idx[i]];
	if (kos_shamir_combine(pick, m, &got, &got_len) != KOS_OK)
		return false;
	same = got_len == want_len && memcmp(got, want, want_len) == 0;
	kos_secret_free(got, got_len);
	return same;
}

/* --- GF(2^8) --- */

static void test_gf256_fips197_vectors(void)
{
	/* FIPS-197 section 4.2 and 4.2.1 */
	CU_ASSERT_EQUAL(kos_gf256_mul(0x57, 0x83), 0xc1);
	CU_ASSERT_EQUAL(kos_gf256_mul(0x57, 0x13), 0xfe);
	CU_ASSERT_EQUAL(kos_gf256_mul(0x57, 0x02), 0xae);
	CU_ASSERT_EQUAL(kos_gf256_mul(0x57, 0x04), 0x47);
	CU_ASSERT_EQUAL(kos_gf256_mul(0x57, 0x08), 0x8e);
	CU_ASSERT_EQUAL(kos_gf256_mul(0x57, 0x10), 0x07);
	/* {53}^-1 = {ca}: the worked example of the AES S-box */
	CU_ASSERT_EQUAL(kos_gf256_inv(0x53), 0xca);
	CU_ASSERT_EQUAL(kos_gf256_inv(0xca), 0x53);
}

static void test_gf256_mul_by_zero_and_one(void)
{
	unsigned a;

	for (a = 0; a < 256; a++) {
		CU_ASSERT_EQUAL(kos_gf256_mul((uint8_t)a, 0), 0);
		CU_ASSERT_EQUAL(kos_gf256_mul(0, (uint8_t)a), 0);
		CU_ASSERT_EQUAL(kos_gf256_mul((uint8_t)a, 1), a);
		CU_ASSERT_EQUAL(kos_gf256_mul(1, (uint8_t)a), a);
	}
}

static void test_gf256_mul_matches_reference(void)
{
	unsigned a, b, wrong = 0, asym = 0;

	for (a = 0; a < 256; a++) {
		for (b = 0; b < 256; b++) {
			uint8_t p = kos_gf256_mul((uint8_t)a, (uint8_t)b);

			wrong += p != ref_mul((uint8_t)a, (uint8_t)b);
			asym += p != kos_gf256_mul((uint8_t)b, (uint8_t)a);
		}
	}
	CU_ASSERT_EQUAL(wrong, 0);
	CU_ASSERT_EQUAL(asym, 0);
	CU_ASSERT_EQUAL(kos_gf256_mul(0x83, 0x57), 0xc1);
	CU_ASSERT_EQUAL(kos_gf256_mul(0xff, 0xff), ref_mul(0xff, 0xff));
}

static void test_gf256_inverse_of_every_element(void)
{
	unsigned a;

	CU_ASSERT_EQUAL(kos_gf256_inv(0), 0);
	for (a = 1; a < 256; a++) {
		uint8_t i = kos_gf256_inv((uint8_t)a);

		CU_ASSERT_EQUAL(kos_gf256_mul((uint8_t)a, i), 1);
		CU_ASSERT_EQUAL(kos_gf256_inv(i), a);
	}
}

/* --- split and combine --- */

static void test_split_gives_x_1_to_n_and_equal_lengths(void)
{
	uint8_t secret[20];
	kos_share shares[7];
	unsigned i;

	random_bytes(secret, sizeof(secret));
	CU_ASSERT_EQUAL_FATAL(kos_shamir_split(secret, sizeof(secret), 4, 7, shares), KOS_OK);
	for (i = 0; i < 7; i++) {
		CU_ASSERT_EQUAL(shares[i].x, i + 1);
		CU_ASSERT_EQUAL(shares[i].len, sizeof(secret));
		CU_ASSERT_PTR_NOT_NULL(shares[i].y);
	}
	kos_shares_clear(shares, 7);
	for (i = 0; i < 7; i++) {
		CU_ASSERT_PTR_NULL(shares[i].y);
		CU_ASSERT_EQUAL(shares[i].len, 0);
	}
}

static void test_split_2_of_3_every_pair_and_order_reconstructs(void)
{
	uint8_t secret[32];
	kos_share shares[3];
	unsigned a, b, all[3] = { 2, 0, 1 };

	random_bytes(secret, sizeof(secret));
	CU_ASSERT_EQUAL_FATAL(kos_shamir_split(secret, sizeof(secret), 2, 3, shares), KOS_OK);
	for (a = 0; a < 3; a++) {
		for (b = 0; b < 3; b++) {
			unsigned idx[2] = { a, b };

			if (a != b)
				CU_ASSERT_TRUE(combine_matches(shares, idx, 2, secret, sizeof(secret)));
		}
	}
	CU_ASSERT_TRUE(combine_matches(shares, all, 3, secret, sizeof(secret)));
	kos_shares_clear(shares, 3);
}

static void test_split_3_of_5_every_ordered_triple_reconstructs(void)
{
	uint8_t secret[32];
	kos_share shares[5];
	unsigned a, b, c, tried = 0, ok = 0;

	random_bytes(secret, sizeof(secret));
	CU_ASSERT_EQUAL_FATAL(kos_shamir_split(secret, sizeof(secret), 3, 5, shares), KOS_OK);
	for (a = 0; a < 5; a++)
		for (b = 0; b < 5; b++)
			for (c = 0; c < 5; c++) {
				unsigned idx[3] = { a, b, c };

				if (a == b || a == c || b == c)
					continue;
				tried++;
				ok += combine_matches(shares, idx, 3, secret, sizeof(secret));
			}
	CU_ASSERT_EQUAL(tried, 60);
	CU_ASSERT_EQUAL(ok, 60);
	kos_shares_clear(shares, 5);
}

static void test_more_than_k_shares_reconstruct(void)
{
	uint8_t secret[33];
	kos_share shares[5];
	unsigned mask, ok = 0, tried = 0;

	random_bytes(secret, sizeof(secret));
	CU_ASSERT_EQUAL_FATAL(kos_shamir_split(secret, sizeof(secret), 3, 5, shares), KOS_OK);
	/* every subset of 4 or 5 shares */
	for (mask = 0; mask < 32; mask++) {
		unsigned idx[5], m = 0, i;

		for (i = 0; i < 5; i++)
			if (mask & (1u << i))
				idx[m++] = 4 - i; /* descending x: order must not matter */
		if (m < 4)
			continue;
		tried++;
		ok += combine_matches(shares, idx, m, secret, sizeof(secret));
	}
	CU_ASSERT_EQUAL(tried, 6);
	CU_ASSERT_EQUAL(ok, 6);
	kos_shares_clear(shares, 5);
}

static void test_fewer_than_k_shares_give_a_wrong_secret(void)
{
	uint8_t secret[16];
	kos_share shares[5];
	unsigned round, a, b, matches = 0, combined = 0;

	for (round = 0; round < 8; round++) {
		random_bytes(secret, sizeof(secret));
		CU_ASSERT_EQUAL_FATAL(kos_shamir_split(secret, sizeof(secret), 3, 5, shares),
				      KOS_OK);
		for (a = 0; a < 5; a++)
			for (b = a + 1; b < 5; b++) {
				kos_share pair[2] = { shares[a], shares[b] };
				uint8_t *got = NULL;
				size_t len = 0;

				/* k-1 shares combine (nothing says they are too
				 * few) but to an unrelated value */
				if (kos_shamir_combine(pair, 2, &got, &len) != KOS_OK)
					continue;
				combined++;
				matches += len == sizeof(secret) &&
					   memcmp(got, secret, sizeof(secret)) == 0;
				kos_secret_free(got, len);
			}
		kos_shares_clear(shares, 5);
	}
	CU_ASSERT_EQUAL(combined, 8 * 10);
	/* a match has probability 2^-128 per pair */
	CU_ASSERT_EQUAL(matches, 0);
}

static void test_one_byte_secret_with_255_shares(void)
{
	uint8_t secret[1] = { 0xa5 };
	kos_share shares[KOS_SHAMIR_MAX_SHARES];
	unsigned idx[KOS_SHAMIR_MAX_SHARES], i;

	CU_ASSERT_EQUAL_FATAL(kos_shamir_split(secret, 1, 2, 2, shares), KOS_OK);
	idx[0] = 1;
	idx[1] = 0;
	CU_ASSERT_TRUE(combine_matches(shares, idx, 2, secret, 1));
	kos_shares_clear(shares, 2);

	CU_ASSERT_EQUAL_FATAL(kos_shamir_split(secret, 1, 255, 255, shares), KOS_OK);
	CU_ASSERT_EQUAL(shares[254].x, 255);
	for (i = 0; i < 255; i++)
		idx[i] = 254 - i;
	CU_ASSERT_TRUE(combine_matches(shares, idx, 255, secret, 1));
	kos_shares_clear(shares, 255);
}

static void test_largest_secret_reconstructs(void)
{
	size_t len = KOS_SHAMIR_MAX_SECRET;
	uint8_t *secret = malloc(len);
	kos_share shares[4];
	unsigned idx1[3] = { 3, 1, 0 }, idx2[2] = { 0, 2 };

	CU_ASSERT_PTR_NOT_NULL_FATAL(secret);
	random_bytes(secret, len);
	CU_ASSERT_EQUAL_FATAL(kos_shamir_split(secret, len, 3, 4, shares), KOS_OK);
	CU_ASSERT_EQUAL(shares[0].len, len);
	CU_ASSERT_TRUE(combine_matches(shares, idx1, 3, secret, len));
	CU_ASSERT_FALSE(combine_matches(shares, idx2, 2, secret, len));
	kos_shares_clear(shares, 4);
	free(secret);
}

/* Lengths around the 8-byte lanes and the 512-byte coefficient chunks. */
static void test_odd_lengths_reconstruct(void)
{
	static const size_t lens[] = { 1, 2, 7, 8, 9, 15, 16, 17, 31, 63, 511, 512, 513, 1025, 4099 };
	uint8_t secret[4099];
	kos_share shares[4];
	unsigned idx[3] = { 1, 3, 2 };
	size_t i;

	random_bytes(secret, sizeof(secret));
	for (i = 0; i < KOS_ARRAY_SIZE(lens); i++) {
		CU_ASSERT_EQUAL_FATAL(kos_shamir_split(secret, lens[i], 3, 4, shares), KOS_OK);
		CU_ASSERT_TRUE(combine_matches(shares, idx, 3, secret, lens[i]));
		kos_shares_clear(shares, 4);
	}
}

static void test_split_draws_a_polynomial_per_byte(void)
{
	uint8_t zeros[64] = { 0 };
	kos_share a[2], b[2];
	size_t i, same_as_first = 0;

	CU_ASSERT_EQUAL_FATAL(kos_shamir_split(zeros, sizeof(zeros), 2, 2, a), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_shamir_split(zeros, sizeof(zeros), 2, 2, b), KOS_OK);
	/* one polynomial for all bytes would make a share of zeros constant */
	for (i = 1; i < sizeof(zeros); i++)
		same_as_first += a[0].y[i] == a[0].y[0];
	CU_ASSERT_NOT_EQUAL(same_as_first, sizeof(zeros) - 1);
	/* fresh randomness on every split */
	CU_ASSERT_NOT_EQUAL(memcmp(a[0].y, b[0].y, sizeof(zeros)), 0);
	/* a share alone is not the secret */
	CU_ASSERT_NOT_EQUAL(memcmp(a[0].y, zeros, sizeof(zeros)), 0);
	kos_shares_clear(a, 2);
	kos_shares_clear(b, 2);
}

/* f(x) = 0x2a + 0x57 x per byte 0, 0x00 + 0x01 x per byte 1, 0xff + 0 x per
 * byte 2; at x = 0x83 and 0x13, FIPS-197's products give
 * 0x57*0x83 = 0xc1 -> y0 = 0x2a^0xc1 = 0xeb, 0x57*0x13 = 0xfe -> y0 = 0xd4. */
static void test_combine_known_answer_degree_1(void)
{
	uint8_t y1[3] = { 0xeb, 0x83, 0xff }, y2[3] = { 0xd4, 0x13, 0xff };
	uint8_t want[3] = { 0x2a, 0x00, 0xff };
	kos_share shares[2] = { { 0x83, 3, y1 }, { 0x13, 3, y2 } };
	uint8_t *got = NULL;
	size_t len = 0;

	CU_ASSERT_EQUAL_FATAL(kos_shamir_combine(shares, 2, &got, &len), KOS_OK);
	CU_ASSERT_EQUAL(len, 3);
	CU_ASSERT_EQUAL(memcmp(got, want, 3), 0);
	kos_secret_free(got, len);
}

/* f(x) = 0xc3 + 0x02 x + 0x80 x^2 at x = 1, 2, 3, by hand:
 *   f(1) = c3 ^ 02 ^ 80 = 41
 *   f(2) = c3 ^ 2*02 ^ 4*80 = c3 ^ 04 ^ 36 = f1       (4*80 = xtime(1b) = 36)
 *   f(3) = c3 ^ 3*02 ^ 5*80 = c3 ^ 06 ^ b6 = 73       (3*3 = 5, 5*80 = 36^80)
 * and g(x) = 0x11 + x + x^2: g(1) = 11, g(2) = 11^2^4 = 17, g(3) = 11^3^5 = 17. */
static void test_combine_known_answer_degree_2(void)
{
	uint8_t y1[2] = { 0x41, 0x11 }, y2[2] = { 0xf1, 0x17 }, y3[2] = { 0x73, 0x17 };
	uint8_t want[2] = { 0xc3, 0x11 };
	kos_share shares[3] = { { 3, 2, y3 }, { 1, 2, y1 }, { 2, 2, y2 } };
	uint8_t *got = NULL;
	size_t len = 0;

	CU_ASSERT_EQUAL_FATAL(kos_shamir_combine(shares, 3, &got, &len), KOS_OK);
	CU_ASSERT_EQUAL(len, 2);
	CU_ASSERT_EQUAL(memcmp(got, want, 2), 0);
	kos_secret_free(got, len);
}

/* --- refusals --- */

static void test_split_refuses_out_of_range(void)
{
	uint8_t secret[16] = { 1 }, *big;
	kos_share shares[KOS_SHAMIR_MAX_SHARES + 1];

	big = calloc(1, KOS_SHAMIR_MAX_SECRET + 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	CU_ASSERT_EQUAL(kos_shamir_split(secret, 0, 2, 3, shares), KOS_E_RANGE);
	CU_ASSERT_EQUAL(kos_shamir_split(big, KOS_SHAMIR_MAX_SECRET + 1, 2, 3, shares),
			KOS_E_RANGE);
	CU_ASSERT_STRING_NOT_EQUAL(kos_last_error(), "");
	CU_ASSERT_EQUAL(kos_shamir_split(secret, 16, 1, 3, shares), KOS_E_RANGE);
	CU_ASSERT_EQUAL(kos_shamir_split(secret, 16, 0, 3, shares), KOS_E_RANGE);
	CU_ASSERT_EQUAL(kos_shamir_split(secret, 16, 4, 3, shares), KOS_E_RANGE);
	CU_ASSERT_EQUAL(kos_shamir_split(secret, 16, 2, 256, shares), KOS_E_RANGE);
	CU_ASSERT_EQUAL(kos_shamir_split(secret, 16, 2, 1, shares), KOS_E_RANGE);
	CU_ASSERT_EQUAL(kos_shamir_split(secret, 16, 2, 0, shares), KOS_E_RANGE);
	free(big);
}

static void test_split_refuses_null(void)
{
	uint8_t secret[16] = { 1 };
	kos_share shares[3];

	CU_ASSERT_EQUAL(kos_shamir_split(NULL, 16, 2, 3, shares), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_shamir_split(secret, 16, 2, 3, NULL), KOS_E_INVALID);
}

static void test_combine_refuses_too_few_shares(void)
{
	uint8_t y[4] = { 1, 2, 3, 4 };
	kos_share one[1] = { { 1, 4, y } };
	uint8_t sentinel = 0, *got = &sentinel;
	size_t len = 9;

	CU_ASSERT_EQUAL(kos_shamir_combine(one, 1, &got, &len), KOS_E_INVALID);
	CU_ASSERT_PTR_NULL(got);
	CU_ASSERT_EQUAL(len, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "at least 2"));
	CU_ASSERT_EQUAL(kos_shamir_combine(one, 0, &got, &len), KOS_E_INVALID);
}

static void test_combine_refuses_unequal_lengths(void)
{
	uint8_t a[4] = { 0 }, b[5] = { 0 };
	kos_share s[2] = { { 1, 4, a }, { 2, 5, b } };
	uint8_t *got = NULL;
	size_t len = 0;

	CU_ASSERT_EQUAL(kos_shamir_combine(s, 2, &got, &len), KOS_E_INVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "bytes"));
	CU_ASSERT_PTR_NULL(got);
}

static void test_combine_refuses_bad_lengths(void)
{
	uint8_t *a = calloc(1, KOS_SHAMIR_MAX_SECRET + 1);
	uint8_t *b = calloc(1, KOS_SHAMIR_MAX_SECRET + 1);
	kos_share s[2] = { { 1, 0, a }, { 2, 0, b } };
	uint8_t *got = NULL;
	size_t len = 0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_EQUAL(kos_shamir_combine(s, 2, &got, &len), KOS_E_INVALID);
	s[0].len = s[1].len = KOS_SHAMIR_MAX_SECRET + 1;
	CU_ASSERT_EQUAL(kos_shamir_combine(s, 2, &got, &len), KOS_E_INVALID);
	s[0].len = s[1].len = KOS_SHAMIR_MAX_SECRET;
	CU_ASSERT_EQUAL(kos_shamir_combine(s, 2, &got, &len), KOS_OK);
	CU_ASSERT_EQUAL(len, KOS_SHAMIR_MAX_SECRET);
	kos_secret_free(got, len);
	free(a);
	free(b);
}

static void test_combine_refuses_zero_or_duplicate_x(void)
{
	uint8_t a[2] = { 1, 2 }, b[2] = { 3, 4 }, c[2] = { 5, 6 };
	kos_share s[3] = { { 1, 2, a }, { 0, 2, b }, { 3, 2, c } };
	uint8_t *got = NULL;
	size_t len = 0;

	CU_ASSERT_EQUAL(kos_shamir_combine(s, 3, &got, &len), KOS_E_INVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "x = 0"));
	s[1].x = 3;
	CU_ASSERT_EQUAL(kos_shamir_combine(s, 3, &got, &len), KOS_E_INVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "same x"));
	s[1].x = 2;
	CU_ASSERT_EQUAL(kos_shamir_combine(s, 3, &got, &len), KOS_OK);
	kos_secret_free(got, len);
}

static void test_combine_refuses_null(void)
{
	uint8_t a[2] = { 1, 2 };
	kos_share s[2] = { { 1, 2, a }, { 2, 2, NULL } };
	uint8_t *got = NULL;
	size_t len = 0;

	CU_ASSERT_EQUAL(kos_shamir_combine(s, 2, &got, &len), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_shamir_combine(NULL, 2, &got, &len), KOS_E_INVALID);
	s[1].y = a;
	CU_ASSERT_EQUAL(kos_shamir_combine(s, 2, NULL, &len), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_shamir_combine(s, 2, &got, NULL), KOS_E_INVALID);
}

static void test_shares_clear_accepts_null(void)
{
	kos_share s[2] = { { 0 }, { 0 } };

	kos_shares_clear(NULL, 3);
	/* a set from a split: each share's y freed and the fields zeroed */
	s[0].x = 7;
	s[0].len = 16;
	s[0].y = malloc(16);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s[0].y);
	memset(s[0].y, 0xa5, 16);
	s[1].x = 9;
	kos_shares_clear(s, 2);
	CU_ASSERT_PTR_NULL(s[0].y);
	CU_ASSERT_EQUAL(s[0].x, 0);
	CU_ASSERT_EQUAL(s[0].len, 0);
	CU_ASSERT_EQUAL(s[1].x, 0);
}

/* --- text form --- */

static void test_share_format_known_text(void)
{
	uint8_t y[3] = { 0x00, 0xff, 0x0a };
	kos_share s = { 3, 3, y };
	char *line = NULL;

	CU_ASSERT_EQUAL_FATAL(kos_share_format(&s, &line), KOS_OK);
	CU_ASSERT_STRING_EQUAL(line, "kos-share-v1:3:00ff0a");
	kos_secret_free(line, strlen(line));
	s.x = 255;
	CU_ASSERT_EQUAL_FATAL(kos_share_format(&s, &line), KOS_OK);
	CU_ASSERT_STRING_EQUAL(line, "kos-share-v1:255:00ff0a");
	kos_secret_free(line, strlen(line));
	s.x = 0;
	CU_ASSERT_EQUAL(kos_share_format(&s, &line), KOS_E_INVALID);
	s.x = 1;
	s.len = 0;
	CU_ASSERT_EQUAL(kos_share_format(&s, &line), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_share_format(NULL, &line), KOS_E_INVALID);
}

static void test_share_text_round_trip(void)
{
	uint8_t secret[40];
	kos_share shares[5], parsed[5];
	unsigned i, idx[3] = { 4, 0, 2 };

	random_bytes(secret, sizeof(secret));
	CU_ASSERT_EQUAL_FATAL(kos_shamir_split(secret, sizeof(secret), 3, 5, shares), KOS_OK);
	for (i = 0; i < 5; i++) {
		char *line = NULL;

		CU_ASSERT_EQUAL_FATAL(kos_share_format(&shares[i], &line), KOS_OK);
		CU_ASSERT_EQUAL(strlen(line), 13 + 2 + 80);
		CU_ASSERT_EQUAL_FATAL(kos_share_parse(line, strlen(line), &parsed[i]), KOS_OK);
		CU_ASSERT_EQUAL(parsed[i].x, shares[i].x);
		CU_ASSERT_EQUAL(parsed[i].len, shares[i].len);
		CU_ASSERT_EQUAL(memcmp(parsed[i].y, shares[i].y, shares[i].len), 0);
		kos_secret_free(line, strlen(line));
	}
	CU_ASSERT_TRUE(combine_matches(parsed, idx, 3, secret, sizeof(secret)));
	kos_shares_clear(shares, 5);
	kos_shares_clear(parsed, 5);
}

static void test_share_parse_accepts_one_line_ending(void)
{
	static const char *ok[] = { "kos-share-v1:7:0aff", "kos-share-v1:7:0aff\n",
				    "kos-share-v1:7:0aff\r\n" };
	kos_share s;
	size_t i;

	for (i = 0; i < KOS_ARRAY_SIZE(ok); i++) {
		CU_ASSERT_EQUAL_FATAL(kos_share_parse(ok[i], strlen(ok[i]), &s), KOS_OK);
		CU_ASSERT_EQUAL(s.x, 7);
		CU_ASSERT_EQUAL(s.len, 2);
		CU_ASSERT_EQUAL(s.y[0], 0x0a);
		CU_ASSERT_EQUAL(s.y[1], 0xff);
		kos_shares_clear(&s, 1);
	}
	CU_ASSERT_EQUAL(kos_share_parse("kos-share-v1:1:00", 17, &s), KOS_OK);
	kos_shares_clear(&s, 1);
	CU_ASSERT_EQUAL(kos_share_parse("kos-share-v1:255:00", 19, &s), KOS_OK);
	CU_ASSERT_EQUAL(s.x, 255);
	kos_shares_clear(&s, 1);
}

static void test_share_parse_refuses_malformed(void)
{
	static const char *bad[] = {
		"",
		"\n",
		"kos-share-v1",
		"kos-share-v1:",
		"kos-share-v2:1:00",
		"KOS-SHARE-V1:1:00",
		" kos-share-v1:1:00",
		"kos-share:1:00",
		"kos-share-v1:1",
		"kos-share-v1:1:",
		"kos-share-v1::00",
		"kos-share-v1:0:00",
		"kos-share-v1:00:00",
		"kos-share-v1:01:00",
		"kos-share-v1:256:00",
		"kos-share-v1:1000:00",
		"kos-share-v1:99999999999999999999:00",
		"kos-share-v1:+1:00",
		"kos-share-v1:-1:00",
		"kos-share-v1: 1:00",
		"kos-share-v1:1 :00",
		"kos-share-v1:0x1:00",
		"kos-share-v1:1:0",
		"kos-share-v1:1:000",
		"kos-share-v1:1:0A",
		"kos-share-v1:1:AB",
		"kos-share-v1:1:0g",
		"kos-share-v1:1:00:00",
		"kos-share-v1:1:00 ",
		"kos-share-v1:1: 00",
		"kos-share-v1:1:00\n\n",
		"kos-share-v1:1:00\r",
		"kos-share-v1:1:00\n\r",
		"kos-share-v1:1:00\nkos-share-v1:2:00",
		"kos-share-v1:1:00x",
	};
	kos_share s;
	size_t i;

	for (i = 0; i < KOS_ARRAY_SIZE(bad); i++) {
		kos_rv rv = kos_share_parse(bad[i], strlen(bad[i]), &s);

		if (rv != KOS_E_PARSE)
			fprintf(stderr, "\naccepted or wrong error (%d) for \"%s\"\n", rv, bad[i]);
		CU_ASSERT_EQUAL(rv, KOS_E_PARSE);
		CU_ASSERT_PTR_NULL(s.y);
		CU_ASSERT_STRING_NOT_EQUAL(kos_last_error(), "");
	}
	/* an embedded NUL is not a hex digit */
	CU_ASSERT_EQUAL(kos_share_parse("kos-share-v1:1:00\0000", 19, &s), KOS_E_PARSE);
	CU_ASSERT_EQUAL(kos_share_parse(NULL, 0, &s), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_share_parse("kos-share-v1:1:00", 17, NULL), KOS_E_INVALID);
}

static void test_share_parse_messages_name_the_problem(void)
{
	static const struct {
		const char *text, *words;
	} cases[] = {
		{ "kos-share-v2:1:00", "kos-share-v1" },
		{ "kos-share-v1:01:00", "leading zero" },
		{ "kos-share-v1:256:00", "1..255" },
		{ "kos-share-v1:1", "missing y" },
		{ "kos-share-v1:1:", "empty" },
		{ "kos-share-v1:1:abc", "odd" },
		{ "kos-share-v1:1:AB", "lowercase" },
		{ "kos-share-v1:1:00:00", "extra field" },
	};
	kos_share s;
	size_t i;

	for (i = 0; i < KOS_ARRAY_SIZE(cases); i++) {
		CU_ASSERT_EQUAL(kos_share_parse(cases[i].text, strlen(cases[i].text), &s),
				KOS_E_PARSE);
		CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), cases[i].words));
	}
}

static void test_share_parse_error_never_quotes_the_share(void)
{
	const char *text = "kos-share-v1:9:deadbeefcafe42Z";
	kos_share s;

	CU_ASSERT_EQUAL(kos_share_parse(text, strlen(text), &s), KOS_E_PARSE);
	CU_ASSERT_PTR_NULL(strstr(kos_last_error(), "dead"));
	CU_ASSERT_PTR_NULL(strstr(kos_last_error(), "cafe"));
	CU_ASSERT_PTR_NULL(strstr(kos_last_error(), "42"));
}

static void test_share_parse_length_limits(void)
{
	size_t hex = 2 * (size_t)KOS_SHAMIR_MAX_SECRET;
	size_t cap = 17 + hex + 8;
	char *text = malloc(cap);
	kos_share s;
	size_t n;

	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	n = (size_t)snprintf(text, cap, "kos-share-v1:255:");
	memset(text + n, 'e', hex);
	CU_ASSERT_EQUAL(n + hex, KOS_SHARE_TEXT_MAX);
	CU_ASSERT_EQUAL(kos_share_parse(text, n + hex, &s), KOS_OK);
	CU_ASSERT_EQUAL(s.len, KOS_SHAMIR_MAX_SECRET);
	CU_ASSERT_EQUAL(s.y[KOS_SHAMIR_MAX_SECRET - 1], 0xee);
	kos_shares_clear(&s, 1);
	memcpy(text + n + hex, "\r\n", 2);
	CU_ASSERT_EQUAL(kos_share_parse(text, n + hex + 2, &s), KOS_OK);
	kos_shares_clear(&s, 1);
	/* one byte more */
	memset(text + n + hex, 'e', 2);
	CU_ASSERT_EQUAL(kos_share_parse(text, n + hex + 2, &s), KOS_E_PARSE);
	CU_ASSERT_PTR_NULL(s.y);
	n = (size_t)snprintf(text, cap, "kos-share-v1:1:");
	memset(text + n, 'e', hex + 2);
	CU_ASSERT_EQUAL(kos_share_parse(text, n + hex + 2, &s), KOS_E_PARSE);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "longer"));
	free(text);
}

int main(void)
{
	static const struct kos_test_case cases[] = {
		KOS_TEST(test_gf256_fips197_vectors),
		KOS_TEST(test_gf256_mul_by_zero_and_one),
		KOS_TEST(test_gf256_mul_matches_reference),
		KOS_TEST(test_gf256_inverse_of_every_element),
		KOS_TEST(test_split_gives_x_1_to_n_and_equal_lengths),
		KOS_TEST(test_split_2_of_3_every_pair_and_order_reconstructs),
		KOS_TEST(test_split_3_of_5_every_ordered_triple_reconstructs),
		KOS_TEST(test_more_than_k_shares_reconstruct),
		KOS_TEST(test_fewer_than_k_shares_give_a_wrong_secret),
		KOS_TEST(test_one_byte_secret_with_255_shares),
		KOS_TEST(test_largest_secret_reconstructs),
		KOS_TEST(test_odd_lengths_reconstruct),
		KOS_TEST(test_split_draws_a_polynomial_per_byte),
		KOS_TEST(test_combine_known_answer_degree_1),
		KOS_TEST(test_combine_known_answer_degree_2),
		KOS_TEST(test_split_refuses_out_of_range),
		KOS_TEST(test_split_refuses_null),
		KOS_TEST(test_combine_refuses_too_few_shares),
		KOS_TEST(test_combine_refuses_unequal_lengths),
		KOS_TEST(test_combine_refuses_bad_lengths),
		KOS_TEST(test_combine_refuses_zero_or_duplicate_x),
		KOS_TEST(test_combine_refuses_null),
		KOS_TEST(test_shares_clear_accepts_null),
		KOS_TEST(test_share_format_known_text),
		KOS_TEST(test_share_text_round_trip),
		KOS_TEST(test_share_parse_accepts_one_line_ending),
		KOS_TEST(test_share_parse_refuses_malformed),
		KOS_TEST(test_share_parse_messages_name_the_problem),
		KOS_TEST(test_share_parse_error_never_quotes_the_share),
		KOS_TEST(test_share_parse_length_limits),
	};

	return kos_test_run("shamir", NULL, NULL, cases, KOS_ARRAY_SIZE(cases));
}
