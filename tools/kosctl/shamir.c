/* kosctl shamir: split a secret from standard input into share lines
 * (kos-share(5)) and combine share lines back into the secret.
 *
 * Secrets and shares go through buffers wiped before release and are written
 * with write(2) rather than stdio, so no copy lingers in a stdio buffer. */
#include "config.h"

#include "tools/kosctl/kosctl.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The longest useful combine input: 255 share lines of the longest kind,
 * each ending in "\r\n", and some room for blank lines. */
#define COMBINE_MAX_INPUT \
	((size_t)KOS_SHAMIR_MAX_SHARES * (KOS_SHARE_TEXT_MAX + 2) + 64 * 1024)

static int write_all(const void *buf, size_t len)
{
	const unsigned char *p = buf;

	while (len > 0) {
		ssize_t n = write(STDOUT_FILENO, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			kosctl_err("error writing standard output: %s", strerror(errno));
			return KOSCTL_FAIL;
		}
		p += n;
		len -= (size_t)n;
	}
	return KOSCTL_OK;
}

/* Reads all of standard input into a buffer the caller frees with
 * kos_secret_free(*buf, *cap). Unbuffered, so the secret is not also left in
 * stdio's own buffer, which nothing wipes. */
static kos_rv read_stdin(size_t max, unsigned char **buf, size_t *len, size_t *cap)
{
	setvbuf(stdin, NULL, _IONBF, 0);
	return kosctl_read_all(stdin, max, buf, len, cap);
}

static int usage_hint(const char *sub)
{
	kosctl_err("try 'kosctl shamir %s --help'", sub);
	return KOSCTL_USAGE;
}

/* Reports a getopt failure; returns KOSCTL_USAGE. */
static int bad_option(const char *sub, int opt, char **argv)
{
	const char *arg = argv[optind - 1];

	if (opt == ':')
		kosctl_err("shamir %s: option '%s' needs a value", sub, arg);
	else if (optopt != 0)
		kosctl_err("shamir %s: unknown option '-%c'", sub, optopt);
	else
		kosctl_err("shamir %s: unknown option '%s'", sub, arg);
	return usage_hint(sub);
}

static void split_usage(FILE *f)
{
	fprintf(f,
		"usage: kosctl shamir split -k K -n N\n"
		"\n"
		"Reads a secret (1 to %d bytes, binary) on standard input and writes N\n"
		"share lines (see kos-share(5)) on standard output. Any K of the shares\n"
		"recover the secret; fewer reveal nothing about it. Each share is itself\n"
		"a secret: store and send it as one.\n"
		"\n"
		"options:\n"
		"  -k, --threshold K  shares needed to recover the secret, 2..N\n"
		"  -n, --shares N     shares to make, K..%d\n"
		"  -h, --help         show this help\n",
		KOS_SHAMIR_MAX_SECRET, KOS_SHAMIR_MAX_SHARES);
}

/* A whole decimal number (no sign, no spaces); nine digits at most, so it
 * cannot overflow and the range check can name the number. */
static bool parse_count(const char *s, unsigned *out)
{
	unsigned v = 0;
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 9)
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (i == 0)
		return false;
	*out = v;
	return true;
}

static int cmd_split(struct kosctl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "threshold", required_argument, NULL, 'k' },
		{ "shares", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	kos_share shares[KOS_SHAMIR_MAX_SHARES];
	unsigned char *buf = NULL;
	size_t len = 0, cap = 0;
	unsigned k = 0, n = 0, i;
	bool have_k = false, have_n = false, split = false;
	int opt, rc;
	kos_rv rv;

	(void)ctx;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":k:n:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'k':
			if (!parse_count(optarg, &k)) {
				kosctl_err("shamir split: -k wants a whole number, not '%s'", optarg);
				return usage_hint("split");
			}
			have_k = true;
			break;
		case 'n':
			if (!parse_count(optarg, &n)) {
				kosctl_err("shamir split: -n wants a whole number, not '%s'", optarg);
				return usage_hint("split");
			}
			have_n = true;
			break;
		case 'h':
			split_usage(stdout);
			return KOSCTL_OK;
		default:
			return bad_option("split", opt, argv);
		}
	}
	if (optind < argc) {
		kosctl_err("shamir split: unexpected argument '%s'", argv[optind]);
		return usage_hint("split");
	}
	if (!have_k || !have_n) {
		kosctl_err("shamir split: both -k K and -n N are required");
		return usage_hint("split");
	}
	if (n > KOS_SHAMIR_MAX_SHARES) {
		kosctl_err("shamir split: -n %u: at most %d shares", n, KOS_SHAMIR_MAX_SHARES);
		return usage_hint("split");
	}
	if (k < KOS_SHAMIR_MIN_THRESHOLD || k > n) {
		kosctl_err("shamir split: -k %u -n %u: the threshold K must be 2..N", k, n);
		return usage_hint("split");
	}

	rv = read_stdin(KOS_SHAMIR_MAX_SECRET, &buf, &len, &cap);
	if (rv != KOS_OK)
		return KOSCTL_FAIL; /* kosctl_read_all() said why */
	if (len == 0) {
		kosctl_err("shamir split: no secret on standard input");
		rc = KOSCTL_FAIL;
		goto out;
	}
	rv = kos_shamir_split(buf, len, k, n, shares);
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "shamir split");
		rc = KOSCTL_FAIL;
		goto out;
	}
	split = true;
	/* Nothing of ours sits in stdout's buffer before the shares. */
	fflush(stdout);
	rc = KOSCTL_OK;
	for (i = 0; i < n && rc == KOSCTL_OK; i++) {
		char *line = NULL;
		size_t line_len;

		rv = kos_share_format(&shares[i], &line);
		if (rv != KOS_OK) {
			kosctl_err_rv(rv, "shamir split");
			rc = KOSCTL_FAIL;
			break;
		}
		line_len = strlen(line);
		rc = write_all(line, line_len);
		if (rc == KOSCTL_OK)
			rc = write_all("\n", 1);
		kos_secret_free(line, line_len);
	}
out:
	if (split)
		kos_shares_clear(shares, n);
	kos_secret_free(buf, cap);
	return rc;
}

static void combine_usage(FILE *f)
{
	fprintf(f,
		"usage: kosctl shamir combine\n"
		"\n"
		"Reads share lines (see kos-share(5)) on standard input, one a line, blank\n"
		"lines ignored, and writes the secret they recover on standard output as\n"
		"binary bytes. Give at least the threshold number of shares of one split:\n"
		"fewer, or shares of different splits, give a wrong secret without an\n"
		"error, so check the result (e.g. against a key check value).\n"
		"\n"
		"options:\n"
		"  -h, --help  show this help\n");
}

static bool blank_line(const unsigned char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
			return false;
	return true;
}

static int cmd_combine(struct kosctl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	kos_share shares[KOS_SHAMIR_MAX_SHARES];
	unsigned line_of[KOS_SHAMIR_MAX_SHARES]; /* line number of each share */
	unsigned x_line[256] = { 0 };            /* line holding each x, 0: none */
	unsigned char *buf = NULL, *p, *end;
	uint8_t *secret = NULL;
	size_t len = 0, cap = 0, secret_len = 0, count = 0;
	unsigned lineno = 0;
	int opt, rc = KOSCTL_FAIL;
	kos_rv rv;

	(void)ctx;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			combine_usage(stdout);
			return KOSCTL_OK;
		default:
			return bad_option("combine", opt, argv);
		}
	}
	if (optind < argc) {
		kosctl_err("shamir combine: unexpected argument '%s'", argv[optind]);
		return usage_hint("combine");
	}

	rv = read_stdin(COMBINE_MAX_INPUT, &buf, &len, &cap);
	if (rv != KOS_OK)
		return KOSCTL_FAIL; /* kosctl_read_all() said why */
	end = buf + len;
	for (p = buf; p < end;) {
		unsigned char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t line_len = nl != NULL ? (size_t)(nl - p) + 1 : (size_t)(end - p);
		kos_share *s = &shares[count];

		lineno++;
		if (blank_line(p, line_len)) {
			p += line_len;
			continue;
		}
		if (count == KOS_SHAMIR_MAX_SHARES) {
			kosctl_err("shamir combine: line %u: more than %d shares", lineno,
				   KOS_SHAMIR_MAX_SHARES);
			goto out;
		}
		rv = kos_share_parse((const char *)p, line_len, s);
		if (rv != KOS_OK) {
			kosctl_err("shamir combine: line %u: %s", lineno,
				   kos_last_error()[0] != '\0' ? kos_last_error() : kos_strerror(rv));
			goto out;
		}
		count++;
		line_of[count - 1] = lineno;
		if (x_line[s->x] != 0) {
			kosctl_err("shamir combine: line %u: x = %u already given on line %u",
				   lineno, s->x, x_line[s->x]);
			goto out;
		}
		x_line[s->x] = lineno;
		if (s->len != shares[0].len) {
			kosctl_err("shamir combine: line %u: share of %zu bytes, but the share on "
				   "line %u is %zu bytes (shares of different secrets?)",
				   lineno, s->len, line_of[0], shares[0].len);
			goto out;
		}
		p += line_len;
	}
	if (count < KOS_SHAMIR_MIN_THRESHOLD) {
		kosctl_err("shamir combine: %zu share%s on standard input; at least 2 needed",
			   count, count == 1 ? "" : "s");
		goto out;
	}
	rv = kos_shamir_combine(shares, count, &secret, &secret_len);
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "shamir combine");
		goto out;
	}
	fflush(stdout);
	rc = write_all(secret, secret_len);
out:
	kos_secret_free(secret, secret_len);
	kos_shares_clear(shares, count);
	kos_secret_free(buf, cap);
	return rc;
}

int kosctl_cmd_shamir(struct kosctl_ctx *ctx, int argc, char **argv)
{
	static const struct kosctl_cmd cmds[] = {
		{ "split", cmd_split, "split a secret on standard input into K-of-N share lines" },
		{ "combine", cmd_combine, "recover a secret from share lines on standard input" },
		{ NULL, NULL, NULL },
	};

	return kosctl_dispatch(ctx, "shamir", cmds, argc, argv);
}
