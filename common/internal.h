/* Private declarations of libkos-common (errors, secret memory, buffers,
 * AES-GCM, base64, times, helpers, GF(2^8)), used by
 * the client library, the server library and the tools; never installed. */
#ifndef KOS_COMMON_INTERNAL_H
#define KOS_COMMON_INTERNAL_H

#include <kos/common.h>
#include <kos/names.h>

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#include <openssl/types.h>

#define KOS_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* --- errors (error.c) --- */

/* Sets this thread's error detail and returns rv, so a failure reads
 * `return kos_error_set(KOS_E_PARSE, "bad share: %s", why);`. Never pass a secret. */
kos_rv kos_error_set(kos_rv rv, const char *fmt, ...) KOS_PRINTF(2, 3);
kos_rv kos_error_vset(kos_rv rv, const char *fmt, va_list ap) KOS_PRINTF(2, 0);
void kos_error_clear(void);

/* --- secret memory (secmem.c) --- */

/* PROT_NONE pages on both sides, the data against the one after: a linear
 * overrun faults instead of reading or writing a neighbour. */
#define KOS_SECMEM_GUARD 1u

/* len zeroed bytes in a mapping of their own, left out of core dumps and
 * locked out of swap (a failed mlock, under a small RLIMIT_MEMLOCK, is
 * tolerated: the bytes are still wiped on free), 16-byte aligned. flags: 0
 * or KOS_SECMEM_GUARD. NULL when len is 0 or too large, or mmap fails.
 * Free with kos_secmem_free(). Thread-safe. */
void *kos_secmem_alloc(size_t len, unsigned flags);
/* Wipes (OPENSSL_cleanse), unlocks and unmaps p from kos_secmem_alloc();
 * NULL is fine. Aborts when the bytes before p were overwritten: the
 * process's memory is no longer what it thinks it is. */
void kos_secmem_free(void *p);

/* --- bounded buffer that wipes itself (buf.c) --- */

/* A byte buffer with a maximum length fixed at kos_buf_init(), after the
 * model of OpenSSH's sshbuf: appends past the maximum fail with KOS_E_RANGE,
 * growth is overflow-checked and copies, wiping the old storage, and
 * kos_buf_reset() and kos_buf_uninit() wipe it too, so a secret written
 * into the buffer leaves no copy behind. A NUL always follows the data once
 * storage exists, so text can be used as a C string. The first failure is
 * kept: later calls return it and change nothing, so a run of appends can
 * be checked once. Caller-owned; not thread-safe. */
typedef struct kos_buf {
	char *p;       /* len bytes, then a NUL; NULL before the first append */
	size_t len, cap, max;
	size_t dirty;  /* bytes of p that may have been written: what a reset wipes */
	kos_rv err;    /* the first failure, or KOS_OK */
} kos_buf;

void kos_buf_init(kos_buf *b, size_t max);
/* Wipes and frees the storage; b can be initialised again. */
void kos_buf_uninit(kos_buf *b);
/* Wipes what was written and empties b, keeping its storage (a reused
 * buffer costs a wipe of what it held, not of its capacity); clears err. */
void kos_buf_reset(kos_buf *b);
/* Makes room for more bytes after the data; *where (may be NULL) is where
 * they go, valid until the next call; kos_buf_advance() then counts those
 * of them written. Errors: KOS_E_RANGE (past the maximum), KOS_E_NOMEM, or
 * the earlier failure. */
kos_rv kos_buf_reserve(kos_buf *b, size_t more, char **where);
/* Adds n bytes written at kos_buf_reserve()'s *where (n at most what was
 * reserved) to the data and terminates it. */
void kos_buf_advance(kos_buf *b, size_t n);
kos_rv kos_buf_append(kos_buf *b, const void *data, size_t n);
/* Records a failure of the caller's own (a part it could not make) as b's,
 * unless b failed already; returns b's failure. */
kos_rv kos_buf_fail(kos_buf *b, kos_rv rv);
kos_rv kos_buf_printf(kos_buf *b, const char *fmt, ...) KOS_PRINTF(2, 3);
kos_rv kos_buf_vprintf(kos_buf *b, const char *fmt, va_list ap) KOS_PRINTF(2, 0);
/* Appends what is left of f. Errors: KOS_E_RANGE when f holds more than
 * the maximum allows (what fits is kept), KOS_E_IO on a read error,
 * KOS_E_NOMEM; no error detail: the caller names the file. */
kos_rv kos_buf_read(kos_buf *b, FILE *f);
/* Hands the storage over (NUL-terminated; never NULL on success: an empty
 * buffer gets one byte) and leaves b empty. The caller frees it with
 * kos_secret_free(p, *cap) (cap may be NULL when the text is not secret:
 * then free()). Errors: b's failure, KOS_E_NOMEM; nothing is handed over. */
kos_rv kos_buf_take(kos_buf *b, char **p, size_t *len, size_t *cap);

/* --- AES-256-GCM (aead.c) --- */

#define KOS_AEAD_KEY_LEN 32
#define KOS_AEAD_IV_LEN	 12
#define KOS_AEAD_TAG_LEN 16

/* A cipher context for AES-256-GCM, keyed with key when it is not NULL:
 * for callers that keep the key only in the context (a channel) or reuse a
 * context (one per thread). NULL when OpenSSL cannot provide one. Free with
 * EVP_CIPHER_CTX_free(), which cleanses the key schedule. Thread-safe. */
EVP_CIPHER_CTX *kos_aead_ctx_new(const uint8_t *key);

/* Seals len bytes of in into out (len bytes; may be in) and tag, with the
 * 12-byte iv and two pieces of additional data, aad then aad2 (either may
 * be NULL with length 0). ctx: NULL for a context of the call's own, or one
 * from kos_aead_ctx_new(); key: the 32-byte key, or NULL to use the one ctx
 * holds. A key given with a caller's ctx is not left in it afterwards.
 * Returns KOS_OK or KOS_E_CRYPTO, without an error detail: the caller says
 * what failed. Thread-safe with distinct contexts. */
kos_rv kos_aead_seal(EVP_CIPHER_CTX *ctx, const uint8_t *key, const uint8_t *iv,
		     const uint8_t *aad, size_t aad_len, const uint8_t *aad2, size_t aad2_len,
		     const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag);
/* Opens what kos_aead_seal() sealed: KOS_OK, KOS_E_INTEGRITY when the tag
 * does not verify (out is then wiped), or KOS_E_CRYPTO; no error detail. */
kos_rv kos_aead_open(EVP_CIPHER_CTX *ctx, const uint8_t *key, const uint8_t *iv,
		     const uint8_t *aad, size_t aad_len, const uint8_t *aad2, size_t aad2_len,
		     const uint8_t *in, size_t len, const uint8_t *tag, uint8_t *out);

/* kos_aead_seal()/kos_aead_open() with the caller's tag length (taglen
 * KOS_GCM_TAG_MIN..KOS_GCM_TAG_MAX; the tag is the first taglen bytes of
 * the full one, as SP 800-38D truncates) and one piece of additional data:
 * GCM with the caller's parameters (KOS_GCM_* in <kos/names.h>). Same
 * results, no error detail. */
kos_rv kos_aead_seal_tag(EVP_CIPHER_CTX *ctx, const uint8_t *key, const uint8_t *iv,
			 const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
			 uint8_t *out, uint8_t *tag, size_t taglen);
kos_rv kos_aead_open_tag(EVP_CIPHER_CTX *ctx, const uint8_t *key, const uint8_t *iv,
			 const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
			 const uint8_t *tag, size_t taglen, uint8_t *out);
/* Checks the caller's GCM parameters against the limits of <kos/names.h>:
 * KOS_E_INVALID naming the first that is wrong (with the detail set), for
 * in_len bytes in (for decryption: ciphertext and tag). */
kos_rv kos_aead_gcm_check(size_t iv_len, size_t aad_len, size_t tag_len, size_t in_len,
			  bool decrypt);

/* --- base64 (base64.c); the decoder kos_b64_decode() is in <kos/common.h> --- */

/* Characters standard base64 (RFC 4648 section 4, padded) needs for len
 * bytes, without the NUL; SIZE_MAX when that does not fit a size_t. */
size_t kos_b64_len(size_t len);
/* Encodes len bytes into out (out_len >= kos_b64_len(len) + 1), NUL-
 * terminated. Constant time in the bytes' values: no branch or table look-
 * up on them, as they are often a DEK. KOS_E_RANGE when out is too small. */
kos_rv kos_b64_encode(const uint8_t *in, size_t len, char *out, size_t out_len);
/* base64url (RFC 4648 section 5, unpadded, as JOSE uses it), the same way
 * in its alphabet; SIZE_MAX again from kos_b64url_len() when too large. */
size_t kos_b64url_len(size_t len);
kos_rv kos_b64url_encode(const uint8_t *in, size_t len, char *out, size_t out_len);
/* Decodes len characters into out (*out_len: in its size, out the bytes
 * written). Only the canonical form is accepted: characters of
 * [A-Za-z0-9_-], no padding, no length of the form 4n+1, unused trailing
 * bits zero (so one byte string has exactly one encoding). Constant time in
 * the characters' values. Errors: KOS_E_PARSE (out wiped), KOS_E_RANGE (out
 * too small). */
kos_rv kos_b64url_decode(const char *in, size_t len, uint8_t *out, size_t *out_len);
/* 1 when s is exactly n characters of the base64url alphabet (then a NUL);
 * constant time in their values. */
int kos_b64url_is(const char *s, size_t n);

/* --- ISO 8601 times in UTC (time.c) --- */

/* "YYYY-MM-DDTHH:MM:SSZ" and its NUL */
#define KOS_TIME_LEN 21

/* Formats t, to the second (truncated), as "2026-12-07T10:00:00Z" into buf
 * (len >= KOS_TIME_LEN). KOS_E_RANGE, buf untouched and no error detail
 * set (callers format times into their messages), when t is before 1970 or
 * after 9999, or buf is too small. Thread-safe. */
kos_rv kos_time_format(kos_usec t, char *buf, size_t len);
/* Parses exactly that form (years 1970 to 9999, real dates, seconds 0-59,
 * the Z and nothing after it) into *out. KOS_E_PARSE, with a detail,
 * otherwise; *out is then untouched. Thread-safe. */
kos_rv kos_time_parse(const char *s, kos_usec *out);

/* --- diagnostics list for FILE:LINE reports (util.c) --- */

typedef struct kos_diag {
	kos_buf text;    /* "FILE:LINE: message\n" lines */
	unsigned count;
	bool oom;        /* a line was lost */
} kos_diag;

void kos_diag_init(kos_diag *d);
void kos_diag_add(kos_diag *d, const char *file, int line, const char *fmt, ...)
	KOS_PRINTF(4, 5);
/* Hands the text over to *out (may be NULL: then freed) and sets the thread's
 * error detail to the first line; returns rv. */
kos_rv kos_diag_finish(kos_diag *d, char **out, kos_rv rv);

/* --- small helpers (util.c) --- */

char *kos_strdup(const char *s);
/* Reads a whole file of at most max bytes; KOS_E_RANGE when larger. */
kos_rv kos_read_file(const char *path, size_t max, char **data, size_t *len);

/* Constant-time lowercase hex: no branch or table look-up on the data. */
void kos_hex_encode(const uint8_t *in, size_t len, char *out /* 2*len+1 */);
/* Returns KOS_E_PARSE on an odd length or a non-hex digit (lowercase or
 * uppercase accepted); constant time in the digits' values. */
kos_rv kos_hex_decode(const char *in, size_t hexlen, uint8_t *out /* hexlen/2 */);

/* --- GF(2^8) arithmetic (shamir.c), constant time --- */

uint8_t kos_gf256_mul(uint8_t a, uint8_t b);
uint8_t kos_gf256_inv(uint8_t a); /* inv(0) = 0 */

#endif
