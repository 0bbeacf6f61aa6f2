/* Shamir secret sharing over GF(2^8) (AES polynomial x^8+x^4+x^3+x+1).
 * Thread safety: all functions are thread-safe (no shared state). */
#ifndef KOS_SHAMIR_H
#define KOS_SHAMIR_H

#include <kos/common.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KOS_SHAMIR_MAX_SECRET 65536
#define KOS_SHAMIR_MAX_SHARES 255
#define KOS_SHAMIR_MIN_THRESHOLD 2
/* The longest share text line kos accepts: "kos-share-v1:255:" and 2 hex digits a byte. */
#define KOS_SHARE_TEXT_MAX (17 + 2 * KOS_SHAMIR_MAX_SECRET)

/* One share: a plain container. y is owned by the share and holds len bytes. */
typedef struct kos_share {
	uint8_t x;   /* x coordinate, 1..255 */
	size_t len;  /* length of y, equal to the secret's length */
	uint8_t *y;
} kos_share;

/* Splits secret (1..KOS_SHAMIR_MAX_SECRET bytes) into n shares (k <= n <= 255,
 * k >= 2) written to shares[0..n-1] with x = 1..n; the caller frees them with
 * kos_shares_clear(). Randomness from OpenSSL's private RNG. On error nothing
 * is allocated. Errors: KOS_E_INVALID (NULL argument), KOS_E_RANGE (len, k or
 * n out of range), KOS_E_CRYPTO, KOS_E_NOMEM. */
KOS_API kos_rv kos_shamir_split(const uint8_t *secret, size_t len, unsigned k,
				unsigned n, kos_share *shares);

/* Reconstructs the secret from count >= 2 shares with distinct non-zero x and
 * equal lengths. *secret (len bytes) is freed with kos_secret_free(). With
 * fewer than k genuine shares the result is a wrong secret, not an error:
 * check it against a key check value. Errors: KOS_E_INVALID, KOS_E_NOMEM. */
KOS_API kos_rv kos_shamir_combine(const kos_share *shares, size_t count,
				  uint8_t **secret, size_t *len);

/* Wipes and frees the y of count shares and zeroes the structs; NULL-safe. */
KOS_API void kos_shares_clear(kos_share *shares, size_t count);

/* Text form, one line without newline: "kos-share-v1:<x>:<y hex lowercase>"
 * (kos-share(5)). *line is freed with kos_secret_free(*line, strlen(*line)).
 * Errors: KOS_E_INVALID (x = 0, no y, length out of range), KOS_E_NOMEM. */
KOS_API kos_rv kos_share_format(const kos_share *share, char **line);

/* Parses len bytes of text (a trailing "\n" or "\r\n" is allowed) into *share;
 * free with kos_shares_clear(share, 1); on error *share is left zeroed.
 * Errors: KOS_E_PARSE (with the reason, never the share's bytes, in
 * kos_last_error()), KOS_E_INVALID (NULL argument), KOS_E_NOMEM. */
KOS_API kos_rv kos_share_parse(const char *text, size_t len, kos_share *share);

#ifdef __cplusplus
}
#endif
#endif
