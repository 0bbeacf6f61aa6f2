/* The bounded buffer (see kos_buf in common/internal.h), after OpenSSH's
 * sshbuf. Storage never moves by realloc: growth copies and wipes the old
 * storage, as realloc would free it with whatever secret it held. */
#include "config.h"

#include "common/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

/* the first allocation; small texts need no growth at all */
#define BUF_INITIAL 256

void kos_buf_init(kos_buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	/* one byte is kept for the NUL after the data */
	b->max = max < SIZE_MAX ? max : SIZE_MAX - 1;
}

void kos_buf_uninit(kos_buf *b)
{
	kos_secret_free(b->p, b->cap);
	b->p = NULL;
	b->len = b->cap = b->dirty = 0;
	b->err = KOS_OK;
}

void kos_buf_reset(kos_buf *b)
{
	if (b->p != NULL) {
		OPENSSL_cleanse(b->p, b->dirty);
		b->p[0] = '\0';
		b->dirty = 1;
	}
	b->len = 0;
	b->err = KOS_OK;
}

static kos_rv fail(kos_buf *b, kos_rv rv)
{
	b->err = rv;
	return rv;
}

kos_rv kos_buf_fail(kos_buf *b, kos_rv rv)
{
	if (b->err == KOS_OK)
		b->err = rv;
	return b->err;
}

kos_rv kos_buf_reserve(kos_buf *b, size_t more, char **where)
{
	size_t need, ncap, old_cap = b->cap;
	char *np, *old = b->p;

	if (b->err != KOS_OK)
		return b->err;
	if (more > b->max - b->len)
		return fail(b, KOS_E_RANGE);
	need = b->len + more + 1; /* cannot overflow: len + more <= max < SIZE_MAX */
	if (need > b->cap) {
		/* doubling amortises appends; the cap keeps it within max */
		ncap = b->cap > SIZE_MAX / 2 ? SIZE_MAX : b->cap * 2;
		if (ncap < BUF_INITIAL)
			ncap = BUF_INITIAL;
		if (ncap < need)
			ncap = need;
		if (ncap > b->max + 1)
			ncap = b->max + 1;
		np = malloc(ncap);
		if (np == NULL)
			return fail(b, KOS_E_NOMEM);
		if (old != NULL)
			memcpy(np, old, b->len);
		kos_secret_free(old, old_cap);
		np[b->len] = '\0';
		b->p = np;
		b->cap = ncap;
		b->dirty = b->len + 1;
	}
	/* the caller may write all it reserved */
	if (need > b->dirty)
		b->dirty = need;
	if (where != NULL)
		*where = b->p + b->len;
	return KOS_OK;
}

void kos_buf_advance(kos_buf *b, size_t n)
{
	if (b->p == NULL || n > b->cap - 1 - b->len)
		return;
	b->len += n;
	b->p[b->len] = '\0';
}

kos_rv kos_buf_append(kos_buf *b, const void *data, size_t n)
{
	char *w;
	kos_rv rv = kos_buf_reserve(b, n, &w);

	if (rv != KOS_OK)
		return rv;
	if (n > 0)
		memcpy(w, data, n);
	kos_buf_advance(b, n);
	return KOS_OK;
}

kos_rv kos_buf_vprintf(kos_buf *b, const char *fmt, va_list ap)
{
	va_list aq;
	char *w;
	kos_rv rv;
	int n;

	if (b->err != KOS_OK)
		return b->err;
	/* try in the room there is; when that is too small, n says how much */
	va_copy(aq, ap);
	n = vsnprintf(b->p != NULL ? b->p + b->len : NULL, b->p != NULL ? b->cap - b->len : 0,
		      fmt, aq);
	va_end(aq);
	if (n < 0)
		return fail(b, KOS_E_INVALID);
	if (b->p != NULL) {
		/* what vsnprintf wrote, fitting or not */
		size_t wrote = (size_t)n < b->cap - b->len ? (size_t)n + 1 : b->cap - b->len;

		if (b->len + wrote > b->dirty)
			b->dirty = b->len + wrote;
	}
	if (b->p != NULL && (size_t)n < b->cap - b->len) {
		b->len += (size_t)n;
		return KOS_OK;
	}
	if (b->p != NULL)
		b->p[b->len] = '\0';
	rv = kos_buf_reserve(b, (size_t)n, &w);
	if (rv != KOS_OK)
		return rv;
	va_copy(aq, ap);
	vsnprintf(w, (size_t)n + 1, fmt, aq);
	va_end(aq);
	b->len += (size_t)n;
	return KOS_OK;
}

kos_rv kos_buf_printf(kos_buf *b, const char *fmt, ...)
{
	va_list ap;
	kos_rv rv;

	va_start(ap, fmt);
	rv = kos_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rv;
}

kos_rv kos_buf_read(kos_buf *b, FILE *f)
{
	char *w, extra;
	size_t room, got;
	kos_rv rv;

	for (;;) {
		room = b->max - b->len < 4096 ? b->max - b->len : 4096;
		if (room == 0) {
			/* full: one more byte tells input that is too large */
			if (fread(&extra, 1, 1, f) == 1)
				return fail(b, KOS_E_RANGE);
			break;
		}
		rv = kos_buf_reserve(b, room, &w);
		if (rv != KOS_OK)
			return rv;
		got = fread(w, 1, room, f);
		kos_buf_advance(b, got);
		if (got < room)
			break;
	}
	if (ferror(f))
		return fail(b, KOS_E_IO);
	return KOS_OK;
}

kos_rv kos_buf_take(kos_buf *b, char **p, size_t *len, size_t *cap)
{
	kos_rv rv = kos_buf_reserve(b, 0, NULL);

	*p = NULL;
	if (rv != KOS_OK)
		return rv;
	*p = b->p;
	if (len != NULL)
		*len = b->len;
	if (cap != NULL)
		*cap = b->cap;
	b->p = NULL;
	b->len = b->cap = b->dirty = 0;
	return KOS_OK;
}
