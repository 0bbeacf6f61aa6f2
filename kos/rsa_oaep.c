/* RSAES-OAEP decoding (RFC 8017 7.1.2) in constant time.
 *
 * Why kos decodes at all: the token's CKM_RSA_PKCS_OAEP is preferred, but
 * SoftHSM 2.6.1 (and other modules) accept only SHA-1 with MGF1-SHA-1 and
 * no label there, while TLS, CMS and JOSE callers ask for SHA-256 and
 * labels. For those the token does the private-key operation alone
 * (CKM_RSA_X_509) and the encoding is checked here. OpenSSL's own
 * RSA_padding_check_PKCS1_OAEP_mgf1() is deprecated in OpenSSL 3 (the build
 * uses -Werror), so this is written after RFC 8017 and in the manner of
 * OpenSSL's rsa_oaep.c: every byte of the encoded message is read, and no
 * branch or index depends on what it holds until the single accept or
 * reject at the end (Manger's attack needs only to tell a bad leading byte
 * from a bad hash or padding; the caller answers every failure alike). */
#include "config.h"

#include "kos/rsa_oaep.h"

#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Masks: all ones or all zeros, from comparisons made without branches. */
static size_t ct_msb(size_t x)
{
	return (size_t)0 - (x >> (sizeof(x) * 8 - 1));
}

static size_t ct_is_zero(size_t x)
{
	return ct_msb(~x & (x - 1));
}

static size_t ct_eq(size_t a, size_t b)
{
	return ct_is_zero(a ^ b);
}

static size_t ct_select(size_t mask, size_t a, size_t b)
{
	return (mask & a) | (~mask & b);
}

static uint8_t ct_select_8(size_t mask, uint8_t a, uint8_t b)
{
	return (uint8_t)ct_select(mask, a, b);
}

/* MGF1 (RFC 8017 B.2.1) of seed into mask (len bytes). The loop runs by
 * len, which is public. */
static bool mgf1(EVP_MD_CTX *ctx, const EVP_MD *md, uint8_t *mask, size_t len,
		 const uint8_t *seed, size_t seed_len)
{
	uint8_t c[4], d[EVP_MAX_MD_SIZE];
	size_t done = 0, hlen = (size_t)EVP_MD_get_size(md), n;
	uint32_t i;
	bool ok = true;

	for (i = 0; ok && done < len; i++) {
		c[0] = (uint8_t)(i >> 24);
		c[1] = (uint8_t)(i >> 16);
		c[2] = (uint8_t)(i >> 8);
		c[3] = (uint8_t)i;
		ok = EVP_DigestInit_ex(ctx, md, NULL) == 1 &&
		     EVP_DigestUpdate(ctx, seed, seed_len) == 1 &&
		     EVP_DigestUpdate(ctx, c, sizeof(c)) == 1 &&
		     EVP_DigestFinal_ex(ctx, d, NULL) == 1;
		n = len - done < hlen ? len - done : hlen;
		if (ok)
			memcpy(mask + done, d, n);
		done += n;
	}
	OPENSSL_cleanse(d, sizeof(d));
	return ok;
}

kos_rv kos_rsa_oaep_decode(const EVP_MD *md, const EVP_MD *mgf_md, const uint8_t *label,
			   size_t label_len, const uint8_t *em, size_t k, uint8_t *out,
			   size_t *out_len)
{
	uint8_t lhash[EVP_MAX_MD_SIZE], seed[EVP_MAX_MD_SIZE], *db = NULL, *msg;
	size_t hlen, dblen, mlen_max, i, b, good, looking, one_index = 0, shift;
	EVP_MD_CTX *ctx = NULL;
	int n;
	kos_rv rv;

	if (out_len != NULL)
		*out_len = 0;
	if (md == NULL || mgf_md == NULL || em == NULL || out == NULL || out_len == NULL ||
	    (label == NULL && label_len > 0))
		return kos_error_set(KOS_E_INVALID, "kos_rsa_oaep_decode: bad arguments");
	n = EVP_MD_get_size(md);
	if (n <= 0 || EVP_MD_get_size(mgf_md) <= 0)
		return kos_error_set(KOS_E_INVALID, "OAEP: a hash of no size");
	hlen = (size_t)n;
	if (k < 2 * hlen + 2)
		return kos_error_set(KOS_E_INVALID,
				     "OAEP: a %zu-byte modulus is too short for the hash", k);
	dblen = k - hlen - 1;
	mlen_max = dblen - hlen - 1;
	db = malloc(dblen);
	ctx = EVP_MD_CTX_new();
	if (db == NULL || ctx == NULL) {
		rv = kos_error_set(KOS_E_NOMEM, "out of memory");
		goto out;
	}
	/* EM = Y || maskedSeed || maskedDB; seed = maskedSeed ^ MGF(maskedDB),
	 * DB = maskedDB ^ MGF(seed) = lHash' || PS || 0x01 || M */
	if (EVP_Digest(label != NULL ? label : (const uint8_t *)"", label_len, lhash, NULL, md,
		       NULL) != 1 ||
	    !mgf1(ctx, mgf_md, seed, hlen, em + 1 + hlen, dblen)) {
		rv = kos_error_set(KOS_E_CRYPTO, "OAEP: the digest failed");
		goto out;
	}
	for (i = 0; i < hlen; i++)
		seed[i] ^= em[1 + i];
	if (!mgf1(ctx, mgf_md, db, dblen, seed, hlen)) {
		rv = kos_error_set(KOS_E_CRYPTO, "OAEP: the digest failed");
		goto out;
	}
	for (i = 0; i < dblen; i++)
		db[i] ^= em[1 + hlen + i];

	good = ct_is_zero(em[0]);
	good &= ct_is_zero((size_t)CRYPTO_memcmp(db, lhash, hlen));
	/* PS is zeros up to the first 0x01; any other byte before it fails */
	looking = ~(size_t)0;
	for (i = hlen; i < dblen; i++) {
		size_t is1 = ct_eq(db[i], 1), is0 = ct_eq(db[i], 0);

		one_index = ct_select(looking & is1, i, one_index);
		looking &= ~is1;
		good &= ~(looking & ~is0);
	}
	good &= ~looking;

	/* M starts shift bytes into the mlen_max bytes after lHash' and the
	 * shortest PS: moved to their front by a barrel shift over shift's
	 * bits, every byte read at every step */
	msg = db + hlen + 1;
	shift = ct_select(good, one_index - hlen, 0);
	for (b = 1; b <= mlen_max; b <<= 1) {
		size_t mask = ~ct_is_zero(shift & b);

		for (i = 0; i + b < mlen_max; i++)
			msg[i] = ct_select_8(mask, msg[i + b], msg[i]);
		for (i = mlen_max - b; i < mlen_max; i++)
			msg[i] = ct_select_8(mask, 0, msg[i]);
	}
	memcpy(out, msg, mlen_max);
	/* the one decision on what the ciphertext held */
	if (good == 0) {
		OPENSSL_cleanse(out, mlen_max);
		rv = kos_error_set(KOS_E_INTEGRITY, "decryption failed");
		goto out;
	}
	*out_len = mlen_max - shift;
	rv = KOS_OK;
out:
	if (db != NULL) {
		OPENSSL_cleanse(db, dblen);
		free(db);
	}
	OPENSSL_cleanse(seed, sizeof(seed));
	EVP_MD_CTX_free(ctx);
	return rv;
}

void kos_rsa_right_align(uint8_t *buf, size_t k, size_t n)
{
	size_t s = k - n, b, j;

	for (b = 1; b <= k; b <<= 1) {
		size_t mask = ~ct_is_zero(s & b);

		for (j = k; j-- > b;)
			buf[j] = ct_select_8(mask, buf[j - b], buf[j]);
		for (j = 0; j < b && j < k; j++)
			buf[j] = ct_select_8(mask, 0, buf[j]);
	}
}
