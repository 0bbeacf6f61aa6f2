/* The one reader of libconfig files: kos.conf (config.c) and policies
 * (policy.c) are read, checked and reported through here. */
#include "config.h"

#include "kos/conffile.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DURATION_MAX ((kos_usec)KOS_CF_DURATION_MAX_DAYS * 86400 * KOS_USEC_PER_SEC)

/* Problems beyond this are counted, not listed: a 1 MiB file of junk must
 * not turn into megabytes of messages. */
#define PROBLEMS_MAX 100

/* Problems as found; sorted by line when handed over, so they read in file
 * order although cross-field checks run last. */
struct kos_cf_problem {
	int line;
	unsigned seq; /* keeps problems on one line in the order found */
	char *msg;
};

void kos_cf_problem(kos_cf *cf, int line, const char *fmt, ...)
{
	struct kos_cf_problem *p;
	char msg[448];
	va_list ap;

	if (line < 1)
		line = 1;
	if (cf->count++ >= PROBLEMS_MAX) {
		if (cf->first_unlisted == 0)
			cf->first_unlisted = line;
		return;
	}
	if (cf->problems == NULL) {
		cf->problems = calloc(PROBLEMS_MAX, sizeof(*cf->problems));
		if (cf->problems == NULL) {
			cf->oom = true;
			return;
		}
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	p = &cf->problems[cf->n_problems];
	p->msg = kos_strdup(msg);
	if (p->msg == NULL) {
		cf->oom = true;
		return;
	}
	p->line = line;
	p->seq = cf->count;
	cf->n_problems++;
}

static int problem_cmp(const void *a, const void *b)
{
	const struct kos_cf_problem *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

kos_rv kos_cf_finish(kos_cf *cf, char **out)
{
	kos_diag d;
	size_t i;

	kos_diag_init(&d);
	if (cf->n_problems > 1)
		qsort(cf->problems, cf->n_problems, sizeof(*cf->problems), problem_cmp);
	for (i = 0; i < cf->n_problems; i++)
		kos_diag_add(&d, cf->file, cf->problems[i].line, "%s", cf->problems[i].msg);
	if (cf->count > PROBLEMS_MAX)
		kos_diag_add(&d, cf->file, cf->first_unlisted, "%u more problems not listed",
			     cf->count - PROBLEMS_MAX);
	if (d.oom || cf->oom) {
		kos_diag_finish(&d, NULL, KOS_E_NOMEM);
		return kos_error_set(KOS_E_NOMEM, "out of memory collecting the problems of %s",
				     cf->file);
	}
	return kos_diag_finish(&d, out, KOS_E_POLICY);
}

void kos_cf_close(kos_cf *cf)
{
	size_t i;

	for (i = 0; i < cf->n_problems; i++)
		free(cf->problems[i].msg);
	free(cf->problems);
	cf->problems = NULL;
	cf->n_problems = 0;
	if (cf->have_cfg)
		config_destroy(&cf->cfg);
	cf->have_cfg = false;
}

int kos_cf_line(const config_setting_t *s)
{
	int line = (int)config_setting_source_line(s);

	return line > 0 ? line : 1;
}

void kos_cf_join(char *out, size_t len, const char *path, const char *sep, const char *name)
{
	if (path[0] == '\0')
		snprintf(out, len, "%s", name);
	else
		snprintf(out, len, "%s%s%s", path, sep, name);
}

void kos_cf_check_file(kos_cf *cf, int line, const char *what, const char *path)
{
	struct stat sb;

	if (!cf->check_files || path == NULL)
		return;
	if (stat(path, &sb) != 0 || access(path, R_OK) != 0)
		kos_cf_problem(cf, line, "%s: %s: %s", what, path, strerror(errno));
	else if (!S_ISREG(sb.st_mode))
		kos_cf_problem(cf, line, "%s: %s: not a regular file", what, path);
}

const char *kos_cf_type(const config_setting_t *s)
{
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_GROUP:
		return "a group";
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		return "an integer";
	case CONFIG_TYPE_FLOAT:
		return "a float";
	case CONFIG_TYPE_STRING:
		return "a string";
	case CONFIG_TYPE_BOOL:
		return "a boolean";
	case CONFIG_TYPE_ARRAY:
		return "an array";
	case CONFIG_TYPE_LIST:
		return "a list";
	}
	return "an unknown type";
}

/* Text from the file made safe to quote in a one-line message: a newline in
 * a string value must not start a forged "FILE:LINE:" line. */
const char *kos_cf_printable(const char *s, char *buf, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len && s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];

		buf[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	buf[i] = '\0';
	return buf;
}

bool kos_cf_overflowed(const kos_cf *cf, const config_setting_t *s)
{
	unsigned i;

	if (config_setting_type(s) != CONFIG_TYPE_INT &&
	    config_setting_type(s) != CONFIG_TYPE_INT64)
		return false;
	for (i = 0; i < cf->n_overflow; i++)
		if (cf->overflow_line[i] == kos_cf_line(s))
			return true;
	return false;
}

static int take_number(kos_cf *cf, const config_setting_t *s, const char *path,
		       const struct kos_cf_key *k, void *base)
{
	bool open_min = (k->flags & KOS_CF_OPEN_MIN) != 0;
	double v;

	switch (config_setting_type(s)) {
	case CONFIG_TYPE_INT:
		v = (double)config_setting_get_int(s);
		break;
	case CONFIG_TYPE_INT64:
		v = (double)config_setting_get_int64(s);
		break;
	case CONFIG_TYPE_FLOAT:
		v = config_setting_get_float(s);
		break;
	default:
		kos_cf_problem(cf, kos_cf_line(s), "%s: must be a number, not %s", path,
			       kos_cf_type(s));
		return -1;
	}
	if (kos_cf_overflowed(cf, s))
		return -1;
	if (!isfinite(v)) {
		kos_cf_problem(cf, kos_cf_line(s), "%s: must be a finite number", path);
		return -1;
	}
	if (open_min ? v <= k->min : v < k->min) {
		kos_cf_problem(cf, kos_cf_line(s), "%s: must be %s %g (got %g)", path,
			       open_min ? ">" : ">=", k->min, v);
		return -1;
	}
	if (v > k->max) {
		kos_cf_problem(cf, kos_cf_line(s), "%s: must be <= %g (got %g)", path, k->max, v);
		return -1;
	}
	memcpy((char *)base + k->off, &v, sizeof(v));
	return kos_cf_line(s);
}

static int take_int(kos_cf *cf, const config_setting_t *s, const char *path,
		    const struct kos_cf_key *k, void *base)
{
	long long v;

	switch (config_setting_type(s)) {
	case CONFIG_TYPE_INT:
		v = config_setting_get_int(s);
		break;
	case CONFIG_TYPE_INT64:
		v = config_setting_get_int64(s);
		break;
	case CONFIG_TYPE_FLOAT:
		kos_cf_problem(cf, kos_cf_line(s), "%s: must be a whole number (got %g)", path,
			       config_setting_get_float(s));
		return -1;
	default:
		kos_cf_problem(cf, kos_cf_line(s), "%s: must be a whole number, not %s", path,
			       kos_cf_type(s));
		return -1;
	}
	if (kos_cf_overflowed(cf, s))
		return -1;
	if (v < k->imin) {
		kos_cf_problem(cf, kos_cf_line(s), "%s: must be >= %lld (got %lld)", path, k->imin,
			       v);
		return -1;
	}
	if (v > k->imax) {
		kos_cf_problem(cf, kos_cf_line(s), "%s: must be <= %lld (got %lld)", path, k->imax,
			       v);
		return -1;
	}
	if (k->size == sizeof(unsigned)) {
		unsigned u = (unsigned)v;

		memcpy((char *)base + k->off, &u, sizeof(u));
	} else {
		uint64_t u = (uint64_t)v;

		memcpy((char *)base + k->off, &u, sizeof(u));
	}
	return kos_cf_line(s);
}

static int take_duration(kos_cf *cf, const config_setting_t *s, const char *path,
			 const struct kos_cf_key *k, void *base)
{
	char shown[48];
	const char *text;
	kos_usec d;

	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		kos_cf_problem(cf, kos_cf_line(s),
			       "%s: must be a duration string with a unit such as \"90s\", not %s",
			       path, kos_cf_type(s));
		return -1;
	}
	text = config_setting_get_string(s);
	if (kos_duration_parse(text, &d) != KOS_OK) {
		kos_cf_problem(cf, kos_cf_line(s), "%s: \"%s\" is not a duration: %s", path,
			       kos_cf_printable(text, shown, sizeof(shown)), kos_last_error());
		return -1;
	}
	if (d == 0 && !(k->flags & KOS_CF_ZERO_OK)) {
		kos_cf_problem(cf, kos_cf_line(s), "%s: must be longer than 0", path);
		return -1;
	}
	if (k->dmin > 0 && d < k->dmin) {
		kos_duration_format(k->dmin, shown, sizeof(shown));
		kos_cf_problem(cf, kos_cf_line(s), "%s: must be at least %s", path, shown);
		return -1;
	}
	if (d > (k->dmax > 0 ? k->dmax : DURATION_MAX)) {
		if (k->dmax > 0)
			kos_duration_format(k->dmax, shown, sizeof(shown));
		else
			snprintf(shown, sizeof(shown), "%dd", KOS_CF_DURATION_MAX_DAYS);
		kos_cf_problem(cf, kos_cf_line(s), "%s: must be at most %s", path, shown);
		return -1;
	}
	memcpy((char *)base + k->off, &d, sizeof(d));
	return kos_cf_line(s);
}

static int take_name(kos_cf *cf, const config_setting_t *s, const char *path,
		     const struct kos_cf_key *k, void *base)
{
	char shown[48];
	const char *name;
	size_t len, i;

	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		kos_cf_problem(cf, kos_cf_line(s), "%s: must be a string, not %s", path,
			       kos_cf_type(s));
		return -1;
	}
	name = config_setting_get_string(s);
	len = strlen(name);
	if (len < 1 || len >= k->size) {
		kos_cf_problem(cf, kos_cf_line(s), "%s: must be 1 to %zu characters long", path,
			       k->size - 1);
		return -1;
	}
	for (i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) {
			kos_cf_problem(cf, kos_cf_line(s),
				       "%s: \"%s\" may hold only a-z, 0-9, '_' and '-'", path,
				       kos_cf_printable(name, shown, sizeof(shown)));
			return -1;
		}
	}
	memcpy((char *)base + k->off, name, len + 1);
	return kos_cf_line(s);
}

static int take_string(kos_cf *cf, const config_setting_t *s, const char *path,
		       const struct kos_cf_key *k, void *base)
{
	char shown[48];
	const char *text;
	size_t len, i;

	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		kos_cf_problem(cf, kos_cf_line(s), "%s: must be a string, not %s", path,
			       kos_cf_type(s));
		return -1;
	}
	text = config_setting_get_string(s);
	len = strlen(text);
	if (len < 1 || len >= k->size) {
		kos_cf_problem(cf, kos_cf_line(s), "%s: must be 1 to %zu characters long", path,
			       k->size - 1);
		return -1;
	}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];

		if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\') {
			kos_cf_problem(
			    cf, kos_cf_line(s),
			    "%s: \"%s\" may hold only printable ASCII without spaces, quotes "
			    "or backslashes",
			    path, kos_cf_printable(text, shown, sizeof(shown)));
			return -1;
		}
	}
	memcpy((char *)base + k->off, text, len + 1);
	return kos_cf_line(s);
}

/* Only a libconfig boolean: 0 or "no" would be taken for an intent the
 * file may not have. */
static int take_bool(kos_cf *cf, const config_setting_t *s, const char *path,
		     const struct kos_cf_key *k, void *base)
{
	bool v;

	if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
		kos_cf_problem(cf, kos_cf_line(s), "%s: must be true or false, not %s", path,
			       kos_cf_type(s));
		return -1;
	}
	v = config_setting_get_bool(s) != 0;
	memcpy((char *)base + k->off, &v, sizeof(v));
	return kos_cf_line(s);
}

static const struct kos_cf_key *find_key(const struct kos_cf_key *keys, const char *name)
{
	for (; keys->name != NULL; keys++)
		if (name != NULL && strcmp(keys->name, name) == 0)
			return keys;
	return NULL;
}

static void unknown_key(kos_cf *cf, const config_setting_t *s, const char *path,
			const struct kos_cf_key *keys)
{
	char known[256] = "";
	size_t used = 0;
	const struct kos_cf_key *k;

	for (k = keys; k->name != NULL && used < sizeof(known); k++) {
		int n =
		    snprintf(known + used, sizeof(known) - used, "%s%s", used ? ", " : "", k->name);

		if (n < 0)
			break;
		used += (size_t)n;
	}
	/* names are [A-Za-z*][-A-Za-z0-9_*]* by libconfig's grammar: safe to quote */
	if (path[0] == '\0')
		kos_cf_problem(cf, kos_cf_line(s), "%.64s: unknown setting (known here: %s)",
			       config_setting_name(s), known);
	else
		kos_cf_problem(cf, kos_cf_line(s), "%s%s%.64s: unknown setting (known here: %s)",
			       path, cf->fmt->sep, config_setting_name(s), known);
}

static int take(kos_cf *cf, const config_setting_t *s, const char *path, const struct kos_cf_key *k,
		void *base, int *lines)
{
	switch (k->kind) {
	case KOS_CF_KIND_GROUP:
		if (!config_setting_is_group(s)) {
			kos_cf_problem(cf, kos_cf_line(s), "%s: must be a group { ... }, not %s",
				       path, kos_cf_type(s));
			return -1;
		}
		kos_cf_walk(cf, s, path, k->sub, base, lines);
		return kos_cf_line(s);
	case KOS_CF_KIND_NUMBER:
		return take_number(cf, s, path, k, base);
	case KOS_CF_KIND_INT:
		return take_int(cf, s, path, k, base);
	case KOS_CF_KIND_DURATION:
		return take_duration(cf, s, path, k, base);
	case KOS_CF_KIND_NAME:
		return take_name(cf, s, path, k, base);
	case KOS_CF_KIND_STRING:
		return take_string(cf, s, path, k, base);
	case KOS_CF_KIND_BOOL:
		return take_bool(cf, s, path, k, base);
	case KOS_CF_KIND_FN:
		return k->fn(cf, s, path, k, base);
	}
	kos_cf_problem(cf, kos_cf_line(s), "%s: internal error: unknown key kind", path);
	return -1;
}

void kos_cf_refuse_unknown(kos_cf *cf, const config_setting_t *g, const char *path,
			   const struct kos_cf_key *keys)
{
	int n = config_setting_length(g), i;

	for (i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);

		if (find_key(keys, config_setting_name(s)) == NULL)
			unknown_key(cf, s, path, keys);
	}
}

void kos_cf_walk(kos_cf *cf, const config_setting_t *g, const char *path,
		 const struct kos_cf_key *keys, void *base, int *lines)
{
	int n = config_setting_length(g), i, line;
	const struct kos_cf_key *k;
	char sub[KOS_CF_PATH_LEN];

	for (i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);

		k = find_key(keys, config_setting_name(s));
		if (k == NULL) {
			unknown_key(cf, s, path, keys);
			continue;
		}
		kos_cf_join(sub, sizeof(sub), path, cf->fmt->sep, k->name);
		line = take(cf, s, sub, k, base, lines);
		if (lines != NULL)
			lines[k->id] = line;
	}
	for (k = keys; k->name != NULL; k++) {
		if (!(k->flags & KOS_CF_REQUIRED) || config_setting_get_member(g, k->name) != NULL)
			continue;
		kos_cf_join(sub, sizeof(sub), path, cf->fmt->sep, k->name);
		kos_cf_problem(cf, kos_cf_line(g), "%s: missing%s", sub,
			       k->missing != NULL ? k->missing : " (required)");
	}
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void integer_too_large(kos_cf *cf, int line, const char *lit, size_t len, bool wide)
{
	int shown = len > 40 ? 40 : (int)len;

	if (wide)
		kos_cf_problem(cf, line, "integer %.*s does not fit in 64 bits", shown, lit);
	else
		kos_cf_problem(
		    cf, line,
		    "integer %.*s does not fit in 32 bits; write %.*sL for a 64-bit integer", shown,
		    lit, shown, lit);
	if (cf->n_overflow < KOS_ARRAY_SIZE(cf->overflow_line))
		cf->overflow_line[cf->n_overflow++] = line;
}

/* One numeric literal at p, matched as libconfig's lexer does (longest of
 * integer, integer64 "L", hex, hex64 and float); returns the end. With
 * judge, an integer that does not fit is reported. */
static const char *scan_number(kos_cf *cf, const char *p, int line, bool judge)
{
	const char *start = p;
	uint64_t v = 0, limit;
	bool neg = false, big = false, wide = false;

	if (*p == '-' || *p == '+')
		neg = *p++ == '-';
	if (!neg && p == start && p[0] == '0' && (p[1] == 'x' || p[1] == 'X') &&
	    hex_value(p[2]) >= 0) {
		for (p += 2; hex_value(*p) >= 0; p++) {
			big = big || v > (UINT64_MAX >> 4);
			v = (v << 4) | (uint64_t)hex_value(*p);
		}
	} else {
		for (; is_digit(*p); p++) {
			big = big || v > (UINT64_MAX - 9) / 10;
			v = v * 10 + (uint64_t)(*p - '0');
		}
		if (*p == '.' ||
		    ((*p == 'e' || *p == 'E') &&
		     (is_digit(p[1]) || ((p[1] == '+' || p[1] == '-') && is_digit(p[2]))))) {
			/* a float: atof() saturates to inf, which the checks refuse */
			if (*p == '.')
				for (p++; is_digit(*p); p++)
					;
			if ((*p == 'e' || *p == 'E') &&
			    (is_digit(p[1]) || ((p[1] == '+' || p[1] == '-') && is_digit(p[2]))))
				for (p += 2; is_digit(*p); p++)
					;
			return p;
		}
	}
	if (*p == 'L') {
		wide = true;
		p += p[1] == 'L' ? 2 : 1;
	}
	limit = wide ? (uint64_t)INT64_MAX : (uint64_t)INT_MAX;
	if (judge && (big || v > limit + (neg ? 1 : 0)))
		integer_too_large(cf, line, start, (size_t)(p - start), wide);
	return p;
}

/* Walks the text as libconfig's lexer does, skipping comments, strings and
 * names, for two things the parser does not guard against:
 * - libconfig 1.5 reads integer literals with atoi(): 3000000000 silently
 *   becomes -1294967296 and 4294967356 becomes 60. With integers set (on
 *   text already parsed, so well-formed), literals that do not fit are
 *   refused: 32 bits without an L suffix, 64 bits with one.
 * - libconfig looks for a duplicate name on every insertion, so parsing n
 *   settings of one group costs n^2: 100000 of them in 1 MiB take minutes.
 *   Returns the line of the setting ('=' or ':') past the format's cap, or 0,
 *   so such a file is refused before it is parsed.
 * Any text is safe here: every step advances. */
static int scan_text(kos_cf *cf, const char *p, bool integers)
{
	unsigned settings = 0;
	int line = 1, too_many = 0;

	while (*p != '\0') {
		if (*p == '\n') {
			line++;
			p++;
		} else if (p[0] == '/' && p[1] == '*') {
			for (p += 2; *p != '\0' && !(p[0] == '*' && p[1] == '/'); p++)
				if (*p == '\n')
					line++;
			if (*p != '\0')
				p += 2;
		} else if (*p == '#' || (p[0] == '/' && p[1] == '/')) {
			while (*p != '\0' && *p != '\n')
				p++;
		} else if (*p == '"') {
			for (p++; *p != '\0' && *p != '"'; p++) {
				if (*p == '\\' && p[1] != '\0')
					p++;
				if (*p == '\n')
					line++;
			}
			if (*p != '\0')
				p++;
		} else if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || *p == '*') {
			for (p++; (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
				  is_digit(*p) || *p == '-' || *p == '_' || *p == '*';
			     p++)
				;
		} else if (is_digit(*p) || *p == '.' ||
			   ((*p == '-' || *p == '+') && (is_digit(p[1]) || p[1] == '.'))) {
			p = scan_number(cf, p, line, integers);
		} else {
			if ((*p == '=' || *p == ':') && ++settings == cf->fmt->max_settings + 1)
				too_many = line;
			p++;
		}
	}
	return too_many;
}

static void too_large(kos_cf *cf)
{
	kos_cf_problem(cf, 1, "file is larger than %zu bytes; %s is a few KiB", cf->fmt->max_bytes,
		       cf->fmt->a);
}

/* Refuses @include before libconfig sees it: the parser would open any file
 * it names (no size cap, no check), and a file must be one reviewable whole.
 * Matches the lexer's rule: at the start of a line after blanks. */
static void refuse_includes(kos_cf *cf, const char *text)
{
	const char *p = text;
	int line = 1;

	while (*p != '\0') {
		const char *q = p;

		while (*q == ' ' || *q == '\t')
			q++;
		if (strncmp(q, "@include", 8) == 0)
			kos_cf_problem(cf, line,
				       "@include is not allowed in %s: keep %s in one file",
				       cf->fmt->a, cf->fmt->the);
		p = strchr(p, '\n');
		if (p == NULL)
			break;
		p++;
		line++;
	}
}

/* Reads path whole. The checks run on the open descriptor, so a FIFO or a
 * device is refused without blocking and a swapped path cannot slip past;
 * O_NONBLOCK only matters for such files. */
static kos_rv read_text(kos_cf *cf, const char *path, char **text)
{
	struct stat st;
	char *buf = NULL;
	size_t n = 0, size;
	kos_rv rv;
	int fd;

	*text = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return kos_error_set(KOS_E_IO, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0) {
		rv = kos_error_set(KOS_E_IO, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		rv = kos_error_set(KOS_E_IO, "%s: is a directory, not a file", path);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rv = kos_error_set(KOS_E_IO, "%s: not a regular file", path);
		goto out;
	}
	if ((uint64_t)st.st_size > cf->fmt->max_bytes) {
		too_large(cf);
		rv = KOS_E_POLICY;
		goto out;
	}
	/* one byte more than fstat() said shows a file that grew since, or
	 * one (like those in /proc) whose size is not known in advance */
	size = (size_t)st.st_size + 1;
	buf = malloc(size + 1);
	if (buf == NULL) {
		rv = kos_error_set(KOS_E_NOMEM, "out of memory");
		goto out;
	}
	for (;;) {
		ssize_t got;

		if (n == size) {
			char *nb;

			if (size > cf->fmt->max_bytes) {
				too_large(cf);
				rv = KOS_E_POLICY;
				goto out;
			}
			size = cf->fmt->max_bytes + 1;
			nb = realloc(buf, size + 1);
			if (nb == NULL) {
				rv = kos_error_set(KOS_E_NOMEM, "out of memory");
				goto out;
			}
			buf = nb;
		}
		got = read(fd, buf + n, size - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			rv = kos_error_set(KOS_E_IO, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	buf[n] = '\0';
	if (strlen(buf) != n) {
		const char *p;
		int line = 1;

		for (p = buf; *p != '\0'; p++)
			if (*p == '\n')
				line++;
		kos_cf_problem(cf, line, "contains a NUL byte; %s is a text file", cf->fmt->a);
		rv = KOS_E_POLICY;
		goto out;
	}
	*text = buf;
	buf = NULL;
	rv = KOS_OK;
out:
	free(buf);
	close(fd);
	return rv;
}

const config_setting_t *kos_cf_root(const kos_cf *cf)
{
	return config_root_setting(&cf->cfg);
}

kos_rv kos_cf_open(kos_cf *cf, const char *path, const struct kos_cf_format *fmt)
{
	char *text = NULL;
	kos_rv rv;
	int line;

	memset(cf, 0, sizeof(*cf));
	cf->file = path;
	cf->fmt = fmt;
	rv = read_text(cf, path, &text);
	if (rv != KOS_OK)
		goto out;
	refuse_includes(cf, text);
	line = scan_text(cf, text, false);
	if (line != 0)
		kos_cf_problem(cf, line, "more than %u settings; %s", fmt->max_settings,
			       fmt->settings_hint);
	if (cf->count != 0) {
		rv = KOS_E_POLICY;
		goto out;
	}
	config_init(&cf->cfg);
	cf->have_cfg = true;
	if (config_read_string(&cf->cfg, text) != CONFIG_TRUE) {
		const char *why = config_error_text(&cf->cfg);

		kos_cf_problem(cf, config_error_line(&cf->cfg), "%s",
			       why != NULL ? why : "cannot parse");
		rv = KOS_E_POLICY;
		goto out;
	}
	/* on text libconfig parsed, so well-formed; an overflow is reported,
	 * and the settings it spoiled are not judged again */
	scan_text(cf, text, true);
	rv = KOS_OK;
out:
	free(text);
	return rv;
}
