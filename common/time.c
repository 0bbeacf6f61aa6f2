/* ISO 8601 times in UTC to the second, "2026-12-07T10:00:00Z", both ways.
 * The calendar arithmetic is done here (Howard Hinnant's days_from_civil
 * and civil_from_days) rather than with gmtime_r/timegm: no time_t range,
 * no locale or TZ, and a parser that refuses what timegm would quietly
 * normalise ("2026-02-30" as 2026-03-02). */
#include "config.h"

#include "common/internal.h"

#include <stdio.h>
#include <string.h>

#define DAY_SECS INT64_C(86400)
#define YEAR_MIN 1970
/* 9999-12-31T23:59:59Z */
#define SECS_MAX INT64_C(253402300799)

/* Days since 1970-01-01 of y-m-d (proleptic Gregorian; y >= 0). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = y / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = z / 146097; /* z >= 0 here */
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	*m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static unsigned days_in_month(int64_t y, unsigned m)
{
	static const unsigned char days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : days[m - 1];
}

kos_rv kos_time_format(kos_usec t, char *buf, size_t len)
{
	int64_t s, sod, y;
	unsigned m, d;

	if (t < 0 || t / KOS_USEC_PER_SEC > SECS_MAX || buf == NULL || len < KOS_TIME_LEN)
		return KOS_E_RANGE;
	s = t / KOS_USEC_PER_SEC;
	sod = s % DAY_SECS;
	civil_from_days(s / DAY_SECS, &y, &m, &d);
	snprintf(buf, len, "%04d-%02u-%02uT%02d:%02d:%02dZ", (int)y, m, d, (int)(sod / 3600),
		 (int)(sod / 60 % 60), (int)(sod % 60));
	return KOS_OK;
}

/* The n-digit number at s, or -1 when one of them is not a digit. */
static int64_t digits(const char *s, size_t n)
{
	int64_t v = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

kos_rv kos_time_parse(const char *s, kos_usec *out)
{
	static const char form[] = "0000-00-00T00:00:00Z";
	int64_t y, mo, d, h, mi, sec;
	size_t i;

	if (s == NULL || out == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_time_parse: bad arguments");
	/* the separators first: a length or shape off by one is named as such */
	for (i = 0; i < sizeof(form) - 1; i++) {
		if (s[i] == '\0' || (form[i] != '0' && s[i] != form[i]))
			break;
	}
	if (i != sizeof(form) - 1 || s[i] != '\0')
		return kos_error_set(KOS_E_PARSE,
				     "'%.40s' is not a UTC time of the form 2026-12-07T10:00:00Z", s);
	y = digits(s, 4);
	mo = digits(s + 5, 2);
	d = digits(s + 8, 2);
	h = digits(s + 11, 2);
	mi = digits(s + 14, 2);
	sec = digits(s + 17, 2);
	if (y < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || sec < 0)
		return kos_error_set(KOS_E_PARSE,
				     "'%.40s' is not a UTC time of the form 2026-12-07T10:00:00Z", s);
	if (y < YEAR_MIN)
		return kos_error_set(KOS_E_PARSE, "'%s': years before %d are not kos times", s,
				     YEAR_MIN);
	if (mo < 1 || mo > 12)
		return kos_error_set(KOS_E_PARSE, "'%s': no month %d", s, (int)mo);
	if (d < 1 || d > days_in_month(y, (unsigned)mo))
		return kos_error_set(KOS_E_PARSE, "'%s': no day %d in that month", s, (int)d);
	if (h > 23 || mi > 59 || sec > 59)
		return kos_error_set(KOS_E_PARSE, "'%s': no such time of day", s);
	*out = ((days_from_civil(y, (unsigned)mo, (unsigned)d) * DAY_SECS) + h * 3600 + mi * 60 +
		sec) * KOS_USEC_PER_SEC;
	return KOS_OK;
}
