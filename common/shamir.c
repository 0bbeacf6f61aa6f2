/* Shamir secret sharing over GF(2^8) with the AES polynomial, and the share
 * text form "kos-share-v1:<x>:<y>" (man/kos-share.5).
 *
 * Constant time: secret bytes (the secret, the polynomial coefficients and
 * share values) never index a table or steer a branch. Multiplication is
 * shift-and-masked-xor; the bulk work multiplies eight bytes at once by a
 * public constant (an x coordinate or a Lagrange coefficient), spreading each
 * bit of the secret operand into a byte mask. Only x coordinates, lengths,
 * k and n, which are public, decide the control flow. */
#include "config.h"

#include "common/internal.h"
#include "common/shamir.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#define SHARE_PREFIX	 "kos-share-v1:"
#define SHARE_PREFIX_LEN (sizeof(SHARE_PREFIX) - 1)

/* Split draws the coefficients of this many secret bytes at a time, so the
 * coefficient buffer stays at most 254 * SPLIT_CHUNK bytes whatever the
 * secret's length. A multiple of 8. */
#define SPLIT_CHUNK 512
#define SPLIT_WORDS (SPLIT_CHUNK / 8)

#define LANE_LSB UINT64_C(0x0101010101010101)

/* --- GF(2^8) ------------------------------------------------------------ */

/* a * x mod x^8+x^4+x^3+x+1, for a < 256: reduce by a mask from the top bit. */
static inline unsigned gf_xtime(unsigned a)
{
	return ((a << 1) ^ (0x11bu & (0u - (a >> 7)))) & 0xffu;
}

/* One bit of b: add a when the bit is set (mask, no branch), then a *= x. */
#define GF_STEP(r, a, b)                         \
	do {                                     \
		(r) ^= (a) & (0u - ((b) & 1u));  \
		(b) >>= 1;                       \
		(a) = gf_xtime(a);               \
	} while (0)

uint8_t kos_gf256_mul(uint8_t a, uint8_t b)
{
	unsigned x = a, y = b, r = 0;

	GF_STEP(r, x, y);
	GF_STEP(r, x, y);
	GF_STEP(r, x, y);
	GF_STEP(r, x, y);
	GF_STEP(r, x, y);
	GF_STEP(r, x, y);
	GF_STEP(r, x, y);
	r ^= x & (0u - (y & 1u));
	return (uint8_t)r;
}

/* a^254 = a^-1 in GF(2^8)* (a^255 = 1), and 0^254 = 0: no branch on a.
 * 254 = 2 + 4 + ... + 128, so multiply the seven successive squares. */
uint8_t kos_gf256_inv(uint8_t a)
{
	uint8_t sq = a, r = 1;
	int i;

	for (i = 0; i < 7; i++) {
		sq = kos_gf256_mul(sq, sq);
		r = kos_gf256_mul(r, sq);
	}
	return r;
}

/* t[b] = c * x^b, repeated in each byte of a word: the table for
 * gf_mul_lanes(). c is public (an x or a Lagrange coefficient). */
static void gf_lane_table(uint8_t c, uint64_t t[8])
{
	unsigned v = c;
	int b;

	for (b = 0; b < 8; b++) {
		t[b] = (uint64_t)v * LANE_LSB;
		v = gf_xtime(v);
	}
}

/* Multiplies each of the 8 bytes of y by the constant whose table is t. Bit b
 * of every byte becomes a byte mask ((m << 8) - m is m * 0xff without carries
 * between bytes), which selects c * x^b: no branch or look-up on y. */
static inline uint64_t gf_mul_lanes(uint64_t y, const uint64_t t[8])
{
	uint64_t r = 0, m;
	int b;

	for (b = 0; b < 8; b++) {
		m = (y >> b) & LANE_LSB;
		r ^= ((m << 8) - m) & t[b];
	}
	return r;
}

/* --- split and combine ------------------------------------------------------ */

kos_rv kos_shamir_split(const uint8_t *secret, size_t len, unsigned k, unsigned n,
			kos_share *shares)
{
	uint64_t *coef = NULL; /* k-1 rows of SPLIT_WORDS words: a_1..a_{k-1} */
	uint64_t sec[SPLIT_WORDS], acc[SPLIT_WORDS], t[8];
	size_t coef_len = 0, off, clen, nw, w;
	unsigned s, j;
	kos_rv rv;

	if (secret == NULL || shares == NULL)
		return kos_error_set(KOS_E_INVALID, "shamir split: NULL secret or shares");
	if (len == 0 || len > KOS_SHAMIR_MAX_SECRET)
		return kos_error_set(KOS_E_RANGE, "shamir split: secret of %zu bytes; 1 to %d allowed",
				     len, KOS_SHAMIR_MAX_SECRET);
	if (n > KOS_SHAMIR_MAX_SHARES)
		return kos_error_set(KOS_E_RANGE, "shamir split: %u shares; at most %d allowed", n,
				     KOS_SHAMIR_MAX_SHARES);
	if (k < KOS_SHAMIR_MIN_THRESHOLD || k > n)
		return kos_error_set(KOS_E_RANGE,
				     "shamir split: threshold %u with %u shares; need 2 <= k <= n",
				     k, n);

	memset(shares, 0, n * sizeof(*shares));
	for (s = 0; s < n; s++) {
		shares[s].y = malloc(len);
		if (shares[s].y == NULL) {
			rv = kos_error_set(KOS_E_NOMEM, "shamir split: out of memory");
			goto out;
		}
		shares[s].len = len;
		/* x = 1..n: x is public, so a random set would add nothing. */
		shares[s].x = (uint8_t)(s + 1);
	}
	coef_len = (size_t)(k - 1) * SPLIT_CHUNK;
	coef = malloc(coef_len);
	if (coef == NULL) {
		rv = kos_error_set(KOS_E_NOMEM, "shamir split: out of memory");
		goto out;
	}

	for (off = 0; off < len; off += clen) {
		clen = len - off < SPLIT_CHUNK ? len - off : SPLIT_CHUNK;
		nw = (clen + 7) / 8;
		/* Every byte gets its own polynomial a_0 + a_1 x + ... with
		 * a_0 the secret byte and the others uniform. */
		if (RAND_priv_bytes((unsigned char *)coef, (int)coef_len) != 1) {
			rv = kos_error_set(KOS_E_CRYPTO, "shamir split: random generator failed");
			goto out;
		}
		memset(sec, 0, sizeof(sec));
		memcpy(sec, secret + off, clen);
		for (s = 0; s < n; s++) {
			gf_lane_table(shares[s].x, t);
			/* Horner's rule from a_{k-1} down to a_0. */
			memcpy(acc, coef + (size_t)(k - 2) * SPLIT_WORDS, nw * 8);
			for (j = k - 2; j-- > 0;) {
				const uint64_t *a = coef + (size_t)j * SPLIT_WORDS;

				for (w = 0; w < nw; w++)
					acc[w] = gf_mul_lanes(acc[w], t) ^ a[w];
			}
			for (w = 0; w < nw; w++)
				acc[w] = gf_mul_lanes(acc[w], t) ^ sec[w];
			memcpy(shares[s].y + off, acc, clen);
		}
	}
	rv = KOS_OK;
out:
	OPENSSL_cleanse(sec, sizeof(sec));
	OPENSSL_cleanse(acc, sizeof(acc));
	kos_secret_free(coef, coef_len);
	if (rv != KOS_OK)
		kos_shares_clear(shares, n);
	return rv;
}

/* Checks what combine needs; only public fields (x, len, y != NULL) are read. */
static kos_rv combine_check(const kos_share *shares, size_t count)
{
	uint8_t seen[256] = { 0 }; /* 1 + index of the share holding each x */
	size_t i, len;

	if (count < KOS_SHAMIR_MIN_THRESHOLD)
		return kos_error_set(KOS_E_INVALID, "shamir combine: %zu share%s; at least 2 needed",
				     count, count == 1 ? "" : "s");
	if (count > KOS_SHAMIR_MAX_SHARES)
		return kos_error_set(KOS_E_INVALID,
				     "shamir combine: %zu shares; at most %d can have distinct x",
				     count, KOS_SHAMIR_MAX_SHARES);
	len = shares[0].len;
	for (i = 0; i < count; i++) {
		if (shares[i].y == NULL)
			return kos_error_set(KOS_E_INVALID, "shamir combine: share %zu has no y", i);
		if (shares[i].x == 0)
			return kos_error_set(KOS_E_INVALID,
					     "shamir combine: share %zu has x = 0; x must be 1..255",
					     i);
		if (seen[shares[i].x] != 0)
			return kos_error_set(KOS_E_INVALID,
					     "shamir combine: shares %u and %zu have the same x = %u",
					     seen[shares[i].x] - 1u, i, shares[i].x);
		seen[shares[i].x] = (uint8_t)(i + 1);
		if (shares[i].len != len)
			return kos_error_set(KOS_E_INVALID,
					     "shamir combine: share %zu is %zu bytes but share 0 is %zu",
					     i, shares[i].len, len);
	}
	if (len == 0 || len > KOS_SHAMIR_MAX_SECRET)
		return kos_error_set(KOS_E_INVALID,
				     "shamir combine: shares of %zu bytes; 1 to %d allowed", len,
				     KOS_SHAMIR_MAX_SECRET);
	return KOS_OK;
}

kos_rv kos_shamir_combine(const kos_share *shares, size_t count, uint8_t **secret, size_t *len)
{
	uint64_t (*tab)[8] = NULL; /* per share: its Lagrange coefficient's lane table */
	uint8_t *out = NULL;
	uint64_t v = 0, acc = 0;
	size_t slen, nw, rem, w, i, j;
	kos_rv rv;

	if (secret == NULL || len == NULL)
		return kos_error_set(KOS_E_INVALID, "shamir combine: NULL output");
	*secret = NULL;
	*len = 0;
	if (shares == NULL)
		return kos_error_set(KOS_E_INVALID, "shamir combine: NULL shares");
	rv = combine_check(shares, count);
	if (rv != KOS_OK)
		return rv;

	slen = shares[0].len;
	tab = malloc(count * sizeof(*tab));
	out = malloc(slen);
	if (tab == NULL || out == NULL) {
		rv = kos_error_set(KOS_E_NOMEM, "shamir combine: out of memory");
		goto out;
	}

	/* Lagrange at 0: l_i = prod_{j != i} x_j / (x_j - x_i), and subtraction
	 * is xor. These depend on the public x only, so once per combine. */
	for (i = 0; i < count; i++) {
		uint8_t num = 1, den = 1;

		for (j = 0; j < count; j++) {
			if (j == i)
				continue;
			num = kos_gf256_mul(num, shares[j].x);
			den = kos_gf256_mul(den, shares[i].x ^ shares[j].x);
		}
		gf_lane_table(kos_gf256_mul(num, kos_gf256_inv(den)), tab[i]);
	}

	/* secret = sum_i l_i * y_i, eight bytes at a time. */
	nw = slen / 8;
	rem = slen % 8;
	for (w = 0; w < nw; w++) {
		acc = 0;
		for (i = 0; i < count; i++) {
			memcpy(&v, shares[i].y + 8 * w, 8);
			acc ^= gf_mul_lanes(v, tab[i]);
		}
		memcpy(out + 8 * w, &acc, 8);
	}
	if (rem != 0) {
		acc = 0;
		for (i = 0; i < count; i++) {
			v = 0;
			memcpy(&v, shares[i].y + 8 * nw, rem);
			acc ^= gf_mul_lanes(v, tab[i]);
		}
		memcpy(out + 8 * nw, &acc, rem);
	}
	*secret = out;
	*len = slen;
	out = NULL;
	rv = KOS_OK;
out:
	OPENSSL_cleanse(&v, sizeof(v));
	OPENSSL_cleanse(&acc, sizeof(acc));
	kos_secret_free(out, slen);
	free(tab);
	return rv;
}

void kos_shares_clear(kos_share *shares, size_t count)
{
	size_t i;

	if (shares == NULL)
		return;
	for (i = 0; i < count; i++) {
		kos_secret_free(shares[i].y, shares[i].len);
		memset(&shares[i], 0, sizeof(shares[i]));
	}
}

/* --- text form -------------------------------------------------------------- */

kos_rv kos_share_format(const kos_share *share, char **line)
{
	size_t cap;
	char *buf;
	int n;

	if (line == NULL)
		return kos_error_set(KOS_E_INVALID, "share format: NULL output");
	*line = NULL;
	if (share == NULL || share->y == NULL)
		return kos_error_set(KOS_E_INVALID, "share format: NULL share");
	if (share->x == 0)
		return kos_error_set(KOS_E_INVALID, "share format: x = 0; x must be 1..255");
	if (share->len == 0 || share->len > KOS_SHAMIR_MAX_SECRET)
		return kos_error_set(KOS_E_INVALID, "share format: y of %zu bytes; 1 to %d allowed",
				     share->len, KOS_SHAMIR_MAX_SECRET);
	cap = SHARE_PREFIX_LEN + 4 + 2 * share->len + 1; /* "255:" and the NUL */
	buf = malloc(cap);
	if (buf == NULL)
		return kos_error_set(KOS_E_NOMEM, "share format: out of memory");
	n = snprintf(buf, cap, SHARE_PREFIX "%u:", (unsigned)share->x);
	if (n < 0 || (size_t)n + 2 * share->len >= cap) {
		free(buf);
		return kos_error_set(KOS_E_INTERNAL, "share format: buffer size");
	}
	kos_hex_encode(share->y, share->len, buf + n);
	*line = buf;
	return KOS_OK;
}

/* 1 when lo <= c <= hi, else 0; no branch on c (c < 256, so c - lo and hi - c
 * have bit 31 set exactly when they are "negative"). */
static inline unsigned in_range(unsigned c, unsigned lo, unsigned hi)
{
	return (((c - lo) | (hi - c)) >> 31) ^ 1u;
}

#define PARSE_ERR(...) kos_error_set(KOS_E_PARSE, "malformed share: " __VA_ARGS__)

/* Validates the x field at p (public, so it may branch) up to the ':' before
 * y; sets *x and *y_start. */
static kos_rv parse_x(const char *p, const char *end, uint8_t *x, const char **y_start)
{
	const char *q = p;
	unsigned v = 0;

	while (q < end && q - p < 4 && *q >= '0' && *q <= '9') {
		v = v * 10 + (unsigned)(*q - '0');
		q++;
	}
	if (q == p) {
		if (p == end)
			return PARSE_ERR("missing x and y fields after \"" SHARE_PREFIX "\"");
		return PARSE_ERR("x is not a decimal number");
	}
	if (q - p == 1 && v == 0)
		return PARSE_ERR("x is 0; x must be 1..255");
	if (*p == '0')
		return PARSE_ERR("x has a leading zero");
	if (q - p > 3 || v > 255)
		return PARSE_ERR("x is out of range; x must be 1..255");
	if (q == end)
		return PARSE_ERR("missing y field (expected " SHARE_PREFIX "<x>:<y>)");
	if (*q != ':')
		return PARSE_ERR("x is not a decimal number");
	*x = (uint8_t)v;
	*y_start = q + 1;
	return KOS_OK;
}

/* Checks that y holds only lowercase hex digits without branching on its
 * characters (a malformed line may still be mostly a real share); only the
 * summary decides the message, which never quotes the text. */
static kos_rv check_y_digits(const char *y, size_t ylen)
{
	unsigned bad = 0, upper = 0, colon = 0;
	size_t i;

	for (i = 0; i < ylen; i++) {
		unsigned c = (unsigned char)y[i];

		bad |= (in_range(c, '0', '9') | in_range(c, 'a', 'f')) ^ 1u;
		upper |= in_range(c, 'A', 'F');
		colon |= in_range(c, ':', ':');
	}
	if (!bad)
		return KOS_OK;
	if (colon)
		return PARSE_ERR("extra field after y");
	if (upper)
		return PARSE_ERR("y has an uppercase hex digit; the format is lowercase hex");
	return PARSE_ERR("y holds a character other than 0-9 and a-f (or trailing garbage)");
}

kos_rv kos_share_parse(const char *text, size_t len, kos_share *share)
{
	const char *end, *y = NULL;
	uint8_t x = 0;
	size_t ylen;
	kos_rv rv;

	if (share == NULL)
		return kos_error_set(KOS_E_INVALID, "share parse: NULL share");
	memset(share, 0, sizeof(*share));
	if (text == NULL)
		return kos_error_set(KOS_E_INVALID, "share parse: NULL text");
	if (len > KOS_SHARE_TEXT_MAX + 2)
		return PARSE_ERR("line longer than %d characters", KOS_SHARE_TEXT_MAX);
	end = text + len;
	if (end > text && end[-1] == '\n') {
		end--;
		if (end > text && end[-1] == '\r')
			end--;
	}
	if ((size_t)(end - text) < SHARE_PREFIX_LEN ||
	    memcmp(text, SHARE_PREFIX, SHARE_PREFIX_LEN) != 0)
		return PARSE_ERR("not a \"" SHARE_PREFIX "\" line");
	rv = parse_x(text + SHARE_PREFIX_LEN, end, &x, &y);
	if (rv != KOS_OK)
		return rv;
	ylen = (size_t)(end - y);
	if (ylen == 0)
		return PARSE_ERR("y is empty");
	if (ylen > 2 * (size_t)KOS_SHAMIR_MAX_SECRET)
		return PARSE_ERR("y is longer than %d bytes", KOS_SHAMIR_MAX_SECRET);
	rv = check_y_digits(y, ylen);
	if (rv != KOS_OK)
		return rv;
	if (ylen % 2 != 0)
		return PARSE_ERR("y has an odd number of hex digits");
	share->y = malloc(ylen / 2);
	if (share->y == NULL)
		return kos_error_set(KOS_E_NOMEM, "share parse: out of memory");
	share->len = ylen / 2;
	rv = kos_hex_decode(y, ylen, share->y);
	if (rv != KOS_OK) {
		kos_shares_clear(share, 1);
		return PARSE_ERR("y is not hex");
	}
	share->x = x;
	return KOS_OK;
}
