/* Private declarations of libkos-common (errors, helpers, GF(2^8)), used by
 * the client library, the server library and the tools; never installed. */
#ifndef KOS_COMMON_INTERNAL_H
#define KOS_COMMON_INTERNAL_H

#include <kos/common.h>
#include <kos/names.h>

#include <stdarg.h>
#include <stdbool.h>

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

/* --- diagnostics list for FILE:LINE reports (util.c) --- */

typedef struct kos_diag {
	char *buf;       /* "FILE:LINE: message\n" lines */
	size_t len, cap;
	unsigned count;
	bool oom;
} kos_diag;

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
