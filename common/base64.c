/* base64 (RFC 4648 section 4) and base64url (section 5, unpadded, as JOSE
 * uses it), both ways in constant time: the texts are often secrets (DEKs,
 * shares, credential secrets), so no branch or table look-up depends on a
 * byte's or a character's value. Only lengths and padding, which are
 * public, are branched on. Decoders take the canonical form only. */
#include "config.h"

#include "common/internal.h"

#include <string.h>

#include <openssl/crypto.h>

/* -1 (all bits set) when lo <= c <= hi, else 0, without a branch: both
 * differences are negative only inside the range (c is 0..255). */
static int ct_in(int c, int lo, int hi)
{
	return ((lo - 1 - c) & (c - hi - 1)) >> 8;
}

/* The value 0..63 of a character of the alphabet (url: '-' and '_' for 62
 * and 63, else '+' and '/'), or -1. */
static int b64_value(int c, bool url)
{
	int c62 = url ? '-' : '+', c63 = url ? '_' : '/';
	int v = -1;

	v += ct_in(c, 'A', 'Z') & (c - 'A' + 1);
	v += ct_in(c, 'a', 'z') & (c - 'a' + 27);
	v += ct_in(c, '0', '9') & (c - '0' + 53);
	v += ct_in(c, c62, c62) & 63;
	v += ct_in(c, c63, c63) & 64;
	return v;
}

/* The character of v (0..63): 'A' plus an offset per range, each added
 * under a mask made from (bound - v) >> 8, all ones once v passes bound. */
static char b64_char(unsigned v, unsigned off62, unsigned off63)
{
	unsigned c = v + 'A';

	c += ((25u - v) >> 8) & 6;     /* 26..51: 'a'..'z' */
	c -= ((51u - v) >> 8) & 75;    /* 52..61: '0'..'9' */
	c -= ((61u - v) >> 8) & off62; /* 62 */
	c += ((62u - v) >> 8) & off63; /* 63 */
	return (char)c;
}

/* Characters for len bytes without padding, or SIZE_MAX. */
static size_t enc_len(size_t len, bool pad)
{
	size_t groups = len / 3, rest = len % 3;

	if (groups > (SIZE_MAX - 4) / 4)
		return SIZE_MAX;
	return groups * 4 + (rest == 0 ? 0 : pad ? 4 : rest + 1);
}

static kos_rv encode(const uint8_t *in, size_t len, char *out, size_t out_len, bool url)
{
	/* from what the ranges before give to '+' '/' or '-' '_' */
	unsigned off62 = url ? 13 : 15, off63 = url ? 49 : 3;
	size_t need = enc_len(len, !url), i, o = 0;
	uint32_t w;

	if (need == SIZE_MAX || out == NULL || out_len < need + 1)
		return kos_error_set(KOS_E_RANGE, "%s: output buffer too small",
				     url ? "base64url" : "base64");
	for (i = 0; len - i >= 3; i += 3) {
		w = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64_char(w >> 18, off62, off63);
		out[o++] = b64_char(w >> 12 & 63, off62, off63);
		out[o++] = b64_char(w >> 6 & 63, off62, off63);
		out[o++] = b64_char(w & 63, off62, off63);
	}
	if (len - i > 0) {
		bool two = len - i == 2;

		w = (uint32_t)in[i] << 16 | (two ? (uint32_t)in[i + 1] << 8 : 0);
		out[o++] = b64_char(w >> 18, off62, off63);
		out[o++] = b64_char(w >> 12 & 63, off62, off63);
		if (two)
			out[o++] = b64_char(w >> 6 & 63, off62, off63);
		else if (!url)
			out[o++] = '=';
		if (!url)
			out[o++] = '=';
	}
	out[o] = '\0';
	return KOS_OK;
}

/* Decodes n characters of data (no padding; n % 4 is 0, 2 or 3) into out,
 * n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0) bytes. False when a character is
 * outside the alphabet or the bits the last one leaves unused are not
 * zero, so that one byte string has one text. */
static bool decode(const char *in, size_t n, uint8_t *out, bool url)
{
	size_t i, o = 0, k, take;
	unsigned u[4];
	int bad = 0, v;

	for (i = 0; i < n; i += 4) {
		take = n - i < 4 ? n - i : 4;
		for (k = 0; k < 4; k++) {
			v = k < take ? b64_value((unsigned char)in[i + k], url) : 0;
			bad |= v;
			u[k] = (unsigned)v & 63;
		}
		out[o++] = (uint8_t)(u[0] << 2 | u[1] >> 4);
		if (take > 2)
			out[o++] = (uint8_t)((u[1] & 15) << 4 | u[2] >> 2);
		if (take > 3)
			out[o++] = (uint8_t)((u[2] & 3) << 6 | u[3]);
		if (take == 2)
			bad |= -(int)((u[1] & 15) != 0);
		else if (take == 3)
			bad |= -(int)((u[2] & 3) != 0);
	}
	return bad >= 0;
}

size_t kos_b64_len(size_t len)
{
	return enc_len(len, true);
}

kos_rv kos_b64_encode(const uint8_t *in, size_t len, char *out, size_t out_len)
{
	return encode(in, len, out, out_len, false);
}

kos_rv kos_b64_decode(const char *in, size_t len, uint8_t *out, size_t *out_len)
{
	size_t pad = 0, bytes;

	if (len % 4 != 0)
		return kos_error_set(KOS_E_PARSE, "base64: the length %zu is not a multiple of 4", len);
	/* padding is public (it gives the length): branching on it is fine;
	 * an '=' anywhere else is outside the alphabet */
	if (len >= 4 && in[len - 1] == '=')
		pad = in[len - 2] == '=' ? 2 : 1;
	bytes = len / 4 * 3 - pad;
	if (bytes > *out_len)
		return kos_error_set(KOS_E_RANGE, "base64: %zu bytes do not fit in %zu", bytes,
				     *out_len);
	if (!decode(in, len - pad, out, false)) {
		OPENSSL_cleanse(out, bytes);
		return kos_error_set(KOS_E_PARSE, "base64: not canonical base64 (alphabet A-Z a-z "
						  "0-9 + /, '=' only as the last one or two "
						  "characters, unused bits zero)");
	}
	*out_len = bytes;
	return KOS_OK;
}

size_t kos_b64url_len(size_t len)
{
	return enc_len(len, false);
}

kos_rv kos_b64url_encode(const uint8_t *in, size_t len, char *out, size_t out_len)
{
	return encode(in, len, out, out_len, true);
}

kos_rv kos_b64url_decode(const char *in, size_t len, uint8_t *out, size_t *out_len)
{
	size_t bytes, i;

	if (len % 4 == 1)
		return kos_error_set(KOS_E_PARSE, "base64url: impossible length %zu", len);
	bytes = len / 4 * 3 + (len % 4 == 0 ? 0 : len % 4 - 1);
	if (bytes > *out_len)
		return kos_error_set(KOS_E_RANGE, "base64url: %zu bytes do not fit in %zu", bytes,
				     *out_len);
	if (!decode(in, len, out, true)) {
		OPENSSL_cleanse(out, bytes);
		/* the text is refused: where it went wrong may be told */
		for (i = 0; i < len; i++)
			if (b64_value((unsigned char)in[i], true) < 0)
				return kos_error_set(KOS_E_PARSE,
						     "base64url: character %zu is not in the alphabet",
						     i);
		return kos_error_set(KOS_E_PARSE, "base64url: non-canonical final character");
	}
	*out_len = bytes;
	return KOS_OK;
}

int kos_b64url_is(const char *s, size_t n)
{
	int bad = 0;
	size_t i;

	/* the length is no secret, and a shorter string must not be read past
	 * its end; the characters are checked in constant time (a credential's
	 * secret goes through here) */
	if (s == NULL || strnlen(s, n + 1) != n)
		return 0;
	for (i = 0; i < n; i++)
		bad |= b64_value((unsigned char)s[i], true);
	return bad >= 0;
}
