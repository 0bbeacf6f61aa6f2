/* kos common definitions: result codes and error details.
 * Thread safety: every function here is thread-safe; error details are per thread. */
#ifndef KOS_COMMON_H
#define KOS_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define KOS_API __attribute__((visibility("default")))
#define KOS_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define KOS_API
#define KOS_PRINTF(f, a)
#endif

/* 0 on success, a negative KOS_E_* on failure. */
typedef int kos_rv;

/* Time in microseconds since the Unix epoch; durations in microseconds. */
typedef int64_t kos_usec;
#define KOS_USEC_PER_SEC INT64_C(1000000)

enum {
	KOS_OK = 0,
	KOS_E_INVALID = -1,   /* bad argument or input */
	KOS_E_NOMEM = -2,     /* out of memory */
	KOS_E_IO = -3,        /* file or system error */
	KOS_E_PARSE = -4,     /* malformed text or data */
	KOS_E_POLICY = -5,    /* policy or configuration refused */
	KOS_E_NOTFOUND = -6,  /* no such object */
	KOS_E_EXISTS = -7,    /* already exists */
	KOS_E_STORE = -8,     /* state store failure */
	KOS_E_BUSY = -9,      /* resource busy, try again */
	KOS_E_CRYPTO = -10,   /* cryptographic operation failed */
	KOS_E_INTEGRITY = -11,/* authentication or consistency check failed */
	KOS_E_RANGE = -12,    /* value out of the allowed range */
	KOS_E_INTERNAL = -13, /* a bug: should not happen */
};

/* A short static description of rv; never NULL. */
KOS_API const char *kos_strerror(kos_rv rv);

/* The detail of the last error raised by this thread ("" when none); the
 * string stays valid until the thread's next kos call. Never holds a secret. */
KOS_API const char *kos_last_error(void);

/* Wipes len bytes at p and frees p; p may be NULL. For every buffer libkos
 * hands out that holds a secret (secrets, shares, their text forms). */
KOS_API void kos_secret_free(void *p, size_t len);

/* Frees a non-secret buffer libkos handed out; p may be NULL. */
KOS_API void kos_free(void *p);

/* Decodes standard base64 (RFC 4648 section 4) in its canonical form only:
 * a length that is a multiple of 4, characters of A-Z a-z 0-9 + /, '=' only
 * as the last one or two characters, the bits it leaves unused zero, so
 * encoding the bytes again gives the text back. out holds *out_len bytes
 * (len / 4 * 3 is always enough); on success *out_len is the bytes written.
 * Constant time in the characters' values (for secrets). Errors:
 * KOS_E_PARSE (out wiped), KOS_E_RANGE (out too small). Thread-safe. */
KOS_API kos_rv kos_b64_decode(const char *in, size_t len, uint8_t *out, size_t *out_len);

/* The current wall-clock time. */
KOS_API kos_usec kos_now(void);

/* Parses a duration with a unit: "250ms", "90s", "15m", "12h", "30d".
 * KOS_E_PARSE on anything else (no unit, negative, overflow, trailing text). */
KOS_API kos_rv kos_duration_parse(const char *s, kos_usec *out);

/* Formats a duration with the largest unit that divides it ("15m", "1500ms"). */
KOS_API void kos_duration_format(kos_usec d, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
