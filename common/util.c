/* Small helpers: memory, files, durations, diagnostics, constant-time hex. */
#include "config.h"

#include "common/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/crypto.h>

void kos_secret_free(void *p, size_t len)
{
	if (p == NULL)
		return;
	OPENSSL_cleanse(p, len);
	free(p);
}

void kos_free(void *p)
{
	free(p);
}

kos_usec kos_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (kos_usec)ts.tv_sec * KOS_USEC_PER_SEC + ts.tv_nsec / 1000;
}

char *kos_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = malloc(n);

	if (d != NULL)
		memcpy(d, s, n);
	return d;
}

kos_rv kos_read_file(const char *path, size_t max, char **data, size_t *len)
{
	kos_buf b;
	FILE *f;
	kos_rv rv;

	*data = NULL;
	*len = 0;
	f = fopen(path, "rb");
	if (f == NULL)
		return kos_error_set(KOS_E_IO, "%s: %s", path, strerror(errno));
	kos_buf_init(&b, max);
	rv = kos_buf_read(&b, f);
	if (rv == KOS_OK)
		rv = kos_buf_take(&b, data, len, NULL);
	if (rv == KOS_E_RANGE)
		kos_error_set(rv, "%s: larger than %zu bytes", path, max);
	else if (rv == KOS_E_IO)
		kos_error_set(rv, "%s: read error", path);
	else if (rv != KOS_OK)
		kos_error_set(rv, "out of memory reading %s", path);
	kos_buf_uninit(&b);
	fclose(f);
	return rv;
}

kos_rv kos_duration_parse(const char *s, kos_usec *out)
{
	static const struct {
		const char *unit;
		kos_usec mult;
	} units[] = {
		{ "ms", 1000 },
		{ "s", KOS_USEC_PER_SEC },
		{ "m", 60 * KOS_USEC_PER_SEC },
		{ "h", 3600 * KOS_USEC_PER_SEC },
		{ "d", 86400 * KOS_USEC_PER_SEC },
	};
	const char *p = s;
	uint64_t v = 0;
	size_t i;

	if (s == NULL || *p < '0' || *p > '9')
		return kos_error_set(KOS_E_PARSE, "a duration is a whole number with a unit (ms, s, m, h, d)");
	while (*p >= '0' && *p <= '9') {
		if (v > (uint64_t)INT64_MAX / 10)
			return kos_error_set(KOS_E_PARSE, "duration too large");
		v = v * 10 + (uint64_t)(*p - '0');
		p++;
	}
	for (i = 0; i < KOS_ARRAY_SIZE(units); i++) {
		if (strcmp(p, units[i].unit) == 0) {
			if (v > (uint64_t)(INT64_MAX / units[i].mult))
				return kos_error_set(KOS_E_PARSE, "duration too large");
			*out = (kos_usec)v * units[i].mult;
			return KOS_OK;
		}
	}
	if (*p == '\0')
		return kos_error_set(KOS_E_PARSE, "duration without a unit (ms, s, m, h, d)");
	return kos_error_set(KOS_E_PARSE, "unknown duration unit (ms, s, m, h, d)");
}

void kos_duration_format(kos_usec d, char *buf, size_t len)
{
	static const struct {
		const char *unit;
		kos_usec mult;
	} units[] = {
		{ "d", 86400 * KOS_USEC_PER_SEC },
		{ "h", 3600 * KOS_USEC_PER_SEC },
		{ "m", 60 * KOS_USEC_PER_SEC },
		{ "s", KOS_USEC_PER_SEC },
		{ "ms", 1000 },
	};
	size_t i;

	for (i = 0; i < KOS_ARRAY_SIZE(units); i++) {
		if (d != 0 && d % units[i].mult == 0) {
			snprintf(buf, len, "%lld%s", (long long)(d / units[i].mult), units[i].unit);
			return;
		}
	}
	snprintf(buf, len, "%lldus", (long long)d);
}

/* Far more than a file's problems take (conffile.c lists at most 100). */
#define DIAG_MAX ((size_t)1 << 20)

void kos_diag_init(kos_diag *d)
{
	memset(d, 0, sizeof(*d));
	kos_buf_init(&d->text, DIAG_MAX);
}

void kos_diag_add(kos_diag *d, const char *file, int line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	d->count++;
	if (kos_buf_printf(&d->text, "%s:%d: %s\n", file, line, msg) != KOS_OK)
		d->oom = true;
}

kos_rv kos_diag_finish(kos_diag *d, char **out, kos_rv rv)
{
	char *text = NULL;

	if (d->text.len > 0) {
		size_t first = strcspn(d->text.p, "\n");

		kos_error_set(rv, "%.*s", (int)first, d->text.p);
	}
	if (out != NULL) {
		*out = NULL;
		/* no text, or none to be had: *out stays NULL, as before */
		if (d->text.len > 0 && kos_buf_take(&d->text, &text, NULL, NULL) == KOS_OK)
			*out = text;
	}
	kos_buf_uninit(&d->text);
	return rv;
}

/* Nibble to hex digit without a branch or table on the value:
 * 0..9 -> '0'..'9', 10..15 -> 'a'..'f'. */
static char hex_digit(unsigned v)
{
	/* (9 - v) >> 8 is all ones when v > 9 */
	unsigned over9 = ((9u - v) >> 8) & 1u;

	return (char)('0' + v + over9 * ('a' - '0' - 10));
}

void kos_hex_encode(const uint8_t *in, size_t len, char *out)
{
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = hex_digit(in[i] >> 4);
		out[2 * i + 1] = hex_digit(in[i] & 0xf);
	}
	out[2 * len] = '\0';
}

/* Returns the value of hex digit c in the low 4 bits, and bit 8 set when c is
 * not a hex digit; masks instead of branches on c. */
static unsigned hex_value(unsigned char c)
{
	unsigned ch = c;
	unsigned num = ((ch - '0') | ('9' - ch)) >> 31;          /* 0 when digit */
	unsigned low = ((ch - 'a') | ('f' - ch)) >> 31;          /* 0 when a-f */
	unsigned up = ((ch - 'A') | ('F' - ch)) >> 31;           /* 0 when A-F */
	unsigned val = ((ch - '0') & (num - 1u)) |
		       ((ch - 'a' + 10) & (low - 1u)) |
		       ((ch - 'A' + 10) & (up - 1u));

	return (val & 0xfu) | ((num & low & up) << 8);
}

kos_rv kos_hex_decode(const char *in, size_t hexlen, uint8_t *out)
{
	unsigned bad = 0;
	size_t i;

	if (hexlen % 2 != 0)
		return kos_error_set(KOS_E_PARSE, "odd number of hex digits");
	for (i = 0; i < hexlen / 2; i++) {
		unsigned hi = hex_value((unsigned char)in[2 * i]);
		unsigned lo = hex_value((unsigned char)in[2 * i + 1]);

		bad |= (hi | lo) & 0x100u;
		out[i] = (uint8_t)(((hi & 0xfu) << 4) | (lo & 0xfu));
	}
	if (bad)
		return kos_error_set(KOS_E_PARSE, "not a hex digit");
	return KOS_OK;
}
