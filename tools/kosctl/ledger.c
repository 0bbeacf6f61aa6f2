/* kosctl ledger: show, verify and print the head of the decision ledger.
 *
 * Offline commands, like fsck: they read the state store of kos.conf
 * directly, server or not, so that the ledger can be checked without
 * trusting the kosd that wrote it. --json (global, or after the
 * subcommand) prints the JSON of tools/common/kosjson.c. */
#include "config.h"

#include "tools/kosctl/kosctl.h"
#include "tools/kosctl/progress.h"
#include "tools/common/kosjson.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define JSON_FLAGS JSON_INDENT(2)
/* hex digits of a hash in show's listing */
#define SHORT_HASH 16

static void show_usage(FILE *f)
{
	fprintf(f,
		"usage: kosctl ledger show [--from SEQ] [--limit N] [--json]\n"
		"\n"
		"Prints the decision ledger's entries as stored, one a line: seq, time\n"
		"(UTC), client, action, resource, tier, outcome, the first %d hex digits\n"
		"of the entry's hash, and the reason of a refusal or failure. Nothing is\n"
		"checked: see 'kosctl ledger verify'. Reads the state store directly,\n"
		"even when a server is set. With --json, a JSON array of every field.\n"
		"\n"
		"options:\n"
		"  -f, --from SEQ   start at entry SEQ (default 1)\n"
		"  -n, --limit N    at most N entries (default all)\n"
		"  -j, --json       print JSON (as the global --json)\n"
		"  -h, --help       show this help\n"
		"\n"
		"Exit status: 0 success, 1 failure, 2 usage error.\n",
		SHORT_HASH);
}

static void verify_usage(FILE *f)
{
	fprintf(f, "usage: kosctl ledger verify [--head SEQ:HASH] [--json]\n"
		   "\n"
		   "Checks the decision ledger's hash chain offline, from entry 1 on: the\n"
		   "entries are numbered without gaps, each one's prev is the hash of the\n"
		   "one before (32 zero bytes for entry 1), and each hash is SHA-256 of\n"
		   "prev and the entry (kos-ledger(5)). Prints \"ledger: N entries, chain\n"
		   "intact, head SEQ HASH\", or names the first bad entry and why. Entries\n"
		   "removed from the end cannot be told from a shorter ledger: give a head\n"
		   "recorded earlier ('kosctl ledger head') with --head, and entry SEQ must\n"
		   "still be there with that hash. Reads the state store directly, even\n"
		   "when a server is set.\n"
		   "\n"
		   "options:\n"
		   "  -H, --head SEQ:HASH  a head recorded earlier (SEQ HASH also works)\n"
		   "  -j, --json           print a JSON object\n"
		   "  -h, --help           show this help\n"
		   "\n"
		   "Exit status: 0 chain intact, 1 a bad entry (or a failure), 2 usage\n"
		   "error.\n");
}

static void head_usage(FILE *f)
{
	fprintf(f, "usage: kosctl ledger head [--json]\n"
		   "\n"
		   "Prints the last entry's seq and SHA-256 hash in hex (0 and zeros for\n"
		   "an empty ledger). Record it elsewhere: a later 'kosctl ledger verify'\n"
		   "whose chain passes through this entry with this hash shows that\n"
		   "nothing up to it was changed. Nothing is checked. Reads the state\n"
		   "store directly, even when a server is set.\n"
		   "\n"
		   "options:\n"
		   "  -j, --json  print a JSON object\n"
		   "  -h, --help  show this help\n"
		   "\n"
		   "Exit status: 0 success, 1 failure, 2 usage error.\n");
}

static int usage_hint(const char *sub)
{
	kosctl_err("try 'kosctl ledger %s --help'", sub);
	return KOSCTL_USAGE;
}

/* A count or entry number: 1 to INT64_MAX, digits only. */
static bool parse_count(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9' || v > ((uint64_t)INT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (i == 0 || v == 0)
		return false;
	*out = v;
	return true;
}

struct opts {
	uint64_t from, limit; /* 0: not given */
	bool json;
	/* verify --head: an earlier head (seq 0: not given) */
	uint64_t head_seq;
	uint8_t head_hash[KOS_LEDGER_HASH_LEN];
};

enum parse_kind { PLAIN, LISTING, VERIFYING };

/* "SEQ:HASH" or "SEQ HASH", as 'ledger head' prints it: SEQ >= 1 and 64
 * hex digits. */
static bool parse_head(const char *arg, struct opts *o)
{
	const char *h;
	char *end;
	unsigned long long seq;
	size_t i;

	if (arg[0] < '1' || arg[0] > '9')
		return false;
	errno = 0;
	seq = strtoull(arg, &end, 10);
	if (errno != 0 || (*end != ':' && *end != ' '))
		return false;
	h = end + 1;
	if (strlen(h) != 2 * KOS_LEDGER_HASH_LEN)
		return false;
	for (i = 0; i < KOS_LEDGER_HASH_LEN; i++) {
		unsigned v = 0;

		for (int k = 0; k < 2; k++) {
			char c = h[2 * i + (size_t)k];

			if (c >= '0' && c <= '9')
				v = v * 16 + (unsigned)(c - '0');
			else if (c >= 'a' && c <= 'f')
				v = v * 16 + (unsigned)(c - 'a' + 10);
			else if (c >= 'A' && c <= 'F')
				v = v * 16 + (unsigned)(c - 'A' + 10);
			else
				return false;
		}
		o->head_hash[i] = (uint8_t)v;
	}
	o->head_seq = seq;
	return true;
}

/* Parses sub's options (show: --from and --limit too). Returns -1 to go
 * on, else the exit status (help printed, or a usage error). */
static int parse(const char *sub, void (*usage)(FILE *), enum parse_kind kind, int argc,
		 char **argv, struct opts *o)
{
	static const struct option all[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {"from", required_argument, NULL, 'f'},
	    {"limit", required_argument, NULL, 'n'},
	    {NULL, 0, NULL, 0},
	};
	static const struct option verifying[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {"head", required_argument, NULL, 'H'},
	    {NULL, 0, NULL, 0},
	};
	static const struct option plain[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const struct option *longs = kind == LISTING ? all : kind == VERIFYING ? verifying : plain;
	const char *shorts = kind == LISTING ? ":jhf:n:" : kind == VERIFYING ? ":jhH:" : ":jh";
	const char *arg;
	int opt;

	memset(o, 0, sizeof(*o));
	opterr = 0;
	while ((opt = getopt_long(argc, argv, shorts, longs, NULL)) != -1) {
		switch (opt) {
		case 'j':
			o->json = true;
			break;
		case 'h':
			usage(stdout);
			return KOSCTL_OK;
		case 'f':
		case 'n':
			if (!parse_count(optarg, opt == 'f' ? &o->from : &o->limit)) {
				kosctl_err("ledger %s: %s wants %s (1 or more), not '%.40s'", sub,
					   opt == 'f' ? "--from" : "--limit",
					   opt == 'f' ? "an entry number" : "a number of entries",
					   optarg);
				return usage_hint(sub);
			}
			break;
		case 'H':
			if (!parse_head(optarg, o)) {
				kosctl_err("ledger %s: --head wants SEQ:HASH as 'kosctl ledger head' "
					   "prints it (an entry number, then 64 hex digits), not "
					   "'%.80s'",
					   sub, optarg);
				return usage_hint(sub);
			}
			break;
		case ':':
			kosctl_err("ledger %s: option '%s' needs a value", sub, argv[optind - 1]);
			return usage_hint(sub);
		default:
			arg = argv[optind - 1];
			if (optopt != 0)
				kosctl_err("ledger %s: unknown option '-%c'", sub, optopt);
			else
				kosctl_err("ledger %s: unknown option '%s'", sub, arg);
			return usage_hint(sub);
		}
	}
	if (optind < argc) {
		kosctl_err("ledger %s: unexpected argument '%.80s'", sub, argv[optind]);
		return usage_hint(sub);
	}
	return -1;
}

/* A stored text for the terminal: what is not printable ASCII (only in a
 * tampered entry) shows as '?'. */
static const char *safe(const char *in, char *buf, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len && in[i] != '\0'; i++)
		buf[i] = in[i] >= 0x20 && in[i] < 0x7f ? in[i] : '?';
	buf[i] = '\0';
	return buf;
}

static int print_json(json_t *v)
{
	return kosctl_print_json(v, JSON_FLAGS);
}

struct show {
	bool json;
	uint64_t shown;
	bool failed; /* out of memory or output error: reported */
};

/* One entry of show, streamed: the JSON array is written element by
 * element (indented as jansson indents a whole array), so memory stays
 * bounded however long the ledger. */
static int show_entry(const kos_ledger_entry *e, void *arg)
{
	struct show *sh = arg;
	char at[32], hash[2 * KOS_LEDGER_HASH_LEN + 1];
	char t[7][KOS_LEDGER_RESOURCE_MAX + 1];
	json_t *o;
	char *text, *p;

	if (!sh->json) {
		if (sh->shown == 0)
			printf("%6s %-20s %-16s %-20s %-20s %-6s %-7s %-*s %s\n", "SEQ", "TIME",
			       "CLIENT", "ACTION", "RESOURCE", "TIER", "OUTCOME", SHORT_HASH,
			       "HASH", "REASON");
		kosj_iso_time(e->at, at, sizeof(at), false);
		kosj_hex(e->hash, sizeof(e->hash), hash);
		printf("%6" PRIu64 " %-20s %-16s %-20s %-20s %-6s %-7s %.*s%s%s\n", e->seq, at,
		       safe(e->client, t[0], sizeof(t[0])), safe(e->action, t[1], sizeof(t[1])),
		       safe(e->resource, t[2], sizeof(t[2])), safe(e->tier, t[3], sizeof(t[3])),
		       safe(e->outcome, t[4], sizeof(t[4])), SHORT_HASH, hash,
		       e->reason[0] != '\0' ? " " : "", safe(e->reason, t[5], sizeof(t[5])));
		sh->shown++;
		return 0;
	}
	o = kosj_ledger_entry(e);
	text = o != NULL ? json_dumps(o, JSON_FLAGS) : NULL;
	json_decref(o);
	if (text == NULL) {
		kosctl_err("out of memory building JSON");
		sh->failed = true;
		return KOS_E_NOMEM;
	}
	fputs(sh->shown == 0 ? "[\n  " : ",\n  ", stdout);
	for (p = text; *p != '\0'; p++) {
		fputc(*p, stdout);
		if (*p == '\n')
			fputs("  ", stdout);
	}
	free(text);
	sh->shown++;
	if (ferror(stdout)) {
		kosctl_err("error writing standard output");
		sh->failed = true;
		return KOS_E_IO;
	}
	return 0;
}

static int cmd_show(struct kosctl_ctx *ctx, int argc, char **argv)
{
	struct show sh = {0};
	struct opts o;
	kos_rv rv;
	int rc = parse("show", show_usage, LISTING, argc, argv, &o);

	if (rc >= 0)
		return rc;
	if (kosctl_need_store(ctx) != KOSCTL_OK)
		return KOSCTL_FAIL;
	sh.json = o.json || ctx->json;
#if SIZE_MAX < UINT64_MAX
	if (o.limit > SIZE_MAX)
		o.limit = SIZE_MAX;
#endif
	rv =
	    kos_ledger_list(ctx->store, o.from != 0 ? o.from : 1, (size_t)o.limit, show_entry, &sh);
	if (sh.json)
		fputs(sh.shown == 0 ? "[]\n" : "\n]\n", stdout);
	if (rv != KOS_OK) {
		if (!sh.failed)
			kosctl_err_rv(rv, "ledger show");
		return KOSCTL_FAIL;
	}
	return KOSCTL_OK;
}

static json_t *head_json(uint64_t seq, const uint8_t *hash)
{
	char h[2 * KOS_LEDGER_HASH_LEN + 1];

	kosj_hex(hash, KOS_LEDGER_HASH_LEN, h);
	return json_pack("{s:I, s:s}", "seq", (json_int_t)seq, "hash", h);
}

struct found {
	bool found;
	uint64_t seq;
	uint8_t hash[KOS_LEDGER_HASH_LEN];
};

static int find_entry(const kos_ledger_entry *e, void *arg)
{
	struct found *f = arg;

	f->found = true;
	f->seq = e->seq;
	memcpy(f->hash, e->hash, sizeof(f->hash));
	return 0;
}

/* The progress bar's count: the entries checked so far. */
static void verified(uint64_t checked, void *arg)
{
	uint64_t *shown = arg;

	kosctl_progress_step(checked - *shown);
	*shown = checked;
}

static int cmd_verify(struct kosctl_ctx *ctx, int argc, char **argv)
{
	uint64_t total = 0, shown = 0;
	char h[2 * KOS_LEDGER_HASH_LEN + 1];
	kos_ledger_check c;
	struct opts o;
	bool head_bad = false;
	json_t *v;
	kos_rv rv;
	int rc = parse("verify", verify_usage, VERIFYING, argc, argv, &o);

	if (rc >= 0)
		return rc;
	if (kosctl_need_store(ctx) != KOSCTL_OK)
		return KOSCTL_FAIL;
	/* the head's seq is the length of an intact chain: the bar's total
	 * (none when it cannot be read; verify says why) */
	if (kos_ledger_head(ctx->store, &total, NULL) != KOS_OK)
		total = 0;
	kosctl_progress_start(total, "ledger verify");
	rv = kos_ledger_verify_progress(ctx->store, &c, verified, &shown);
	kosctl_progress_done();
	if (rv != KOS_OK && rv != KOS_E_INTEGRITY) {
		kosctl_err_rv(rv, "ledger verify");
		return KOSCTL_FAIL;
	}
	/* an earlier head: entry head_seq, intact, still has that hash */
	if (rv == KOS_OK && o.head_seq != 0) {
		struct found f = {0};

		rv = o.head_seq <= c.head_seq
			 ? kos_ledger_list(ctx->store, o.head_seq, 1, find_entry, &f)
			 : KOS_OK;
		if (rv != KOS_OK) {
			kosctl_err_rv(rv, "ledger verify");
			return KOSCTL_FAIL;
		}
		if (!f.found || f.seq != o.head_seq) {
			c.first_bad = o.head_seq;
			snprintf(c.why, sizeof(c.why), "missing: the ledger ends at entry %" PRIu64
				 " before the head given", c.head_seq);
			rv = KOS_E_INTEGRITY;
		} else if (memcmp(f.hash, o.head_hash, sizeof(f.hash)) != 0) {
			c.first_bad = o.head_seq;
			snprintf(c.why, sizeof(c.why), "its hash is not the head given");
			rv = KOS_E_INTEGRITY;
		}
		head_bad = rv != KOS_OK;
	}
	kosj_hex(c.head_hash, sizeof(c.head_hash), h);
	if (o.json || ctx->json) {
		if (rv == KOS_OK)
			v = json_pack("{s:b, s:I, s:o*}", "intact", 1, "entries",
				      (json_int_t)c.checked, "head",
				      head_json(c.head_seq, c.head_hash));
		else
			v = json_pack("{s:b, s:I, s:o*, s:I, s:s}", "intact", 0, "entries",
				      (json_int_t)c.checked, "head",
				      head_json(c.head_seq, c.head_hash), "first_bad",
				      (json_int_t)c.first_bad, "why", c.why);
		rc = print_json(v);
		if (rc != KOSCTL_OK)
			return rc;
	} else if (rv == KOS_OK) {
		printf("ledger: %" PRIu64 " entr%s, chain intact, head %" PRIu64 " %s\n", c.checked,
		       c.checked == 1 ? "y" : "ies", c.head_seq, h);
	}
	if (rv == KOS_OK)
		return KOSCTL_OK;
	if (head_bad)
		kosctl_err("ledger: entry %" PRIu64 " is bad: %s (the chain itself is intact to its "
			   "head %" PRIu64 " %s: entries were rewritten or removed since)",
			   c.first_bad, c.why, c.head_seq, h);
	else if (c.checked == 0)
		kosctl_err("ledger: entry %" PRIu64 " is bad: %s (no entry before it is intact)",
			   c.first_bad, c.why);
	else
		kosctl_err("ledger: entry %" PRIu64 " is bad: %s (entries 1 to %" PRIu64
			   " intact, up to hash %s)",
			   c.first_bad, c.why, c.head_seq, h);
	return KOSCTL_FAIL;
}

static int cmd_head(struct kosctl_ctx *ctx, int argc, char **argv)
{
	uint8_t hash[KOS_LEDGER_HASH_LEN];
	char h[2 * KOS_LEDGER_HASH_LEN + 1];
	uint64_t seq;
	struct opts o;
	kos_rv rv;
	int rc = parse("head", head_usage, PLAIN, argc, argv, &o);

	if (rc >= 0)
		return rc;
	if (kosctl_need_store(ctx) != KOSCTL_OK)
		return KOSCTL_FAIL;
	rv = kos_ledger_head(ctx->store, &seq, hash);
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "ledger head");
		return KOSCTL_FAIL;
	}
	if (o.json || ctx->json)
		return print_json(head_json(seq, hash));
	kosj_hex(hash, sizeof(hash), h);
	printf("%" PRIu64 " %s\n", seq, h);
	return KOSCTL_OK;
}

int kosctl_cmd_ledger(struct kosctl_ctx *ctx, int argc, char **argv)
{
	static const struct kosctl_cmd cmds[] = {
	    {"show", cmd_show, "print entries: who, what, tier, outcome, reason"},
	    {"verify", cmd_verify, "check the hash chain; name the first bad entry"},
	    {"head", cmd_head, "print the last entry's seq and hash"},
	    {NULL, NULL, NULL},
	};

	return kosctl_dispatch(ctx, "ledger", cmds, argc, argv);
}
