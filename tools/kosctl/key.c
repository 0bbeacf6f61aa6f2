/* kosctl key: create, list, show, rotate, retire, destroy and use keys; kosctl fsck.
 *
 * Plaintext, envelopes and signatures go through stdin and stdout as binary;
 * plaintext lives in buffers wiped before release and is written with
 * write(2), so no copy stays in a stdio buffer (as kosctl shamir does). */
#include "config.h"

#include "tools/kosctl/kosctl.h"
#include "tools/kosctl/progress.h"
#include "tools/common/kosjson.h"
#include "common/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define JSON_FLAGS JSON_INDENT(2)
/* Envelope header and tag around the largest plaintext (kos-envelope(5)). */
#define ENVELOPE_MAX (KOS_ENVELOPE_MAX_PLAINTEXT + 22 + KOS_ENVELOPE_NAME_MAX + 16)
#define SIGN_MAX     (64u * 1024 * 1024)

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

/* Unbuffered, so the input (plaintext) is not also left in stdio's buffer. */
static kos_rv read_stdin(size_t max, unsigned char **buf, size_t *len, size_t *cap)
{
	setvbuf(stdin, NULL, _IONBF, 0);
	return kosctl_read_all(stdin, max, buf, len, cap);
}

static int usage_hint(const char *group, const char *sub)
{
	if (sub != NULL)
		kosctl_err("try 'kosctl %s %s --help'", group, sub);
	else
		kosctl_err("try 'kosctl %s --help'", group);
	return KOSCTL_USAGE;
}

static int bad_option(const char *what, int opt, char **argv)
{
	const char *arg = argv[optind - 1];

	if (opt == ':')
		kosctl_err("%s: option '%s' needs a value", what, arg);
	else if (optopt != 0)
		kosctl_err("%s: unknown option '-%c'", what, optopt);
	else
		kosctl_err("%s: unknown option '%s'", what, arg);
	return KOSCTL_USAGE;
}

/* The options every key subcommand may take; each accepts a subset. */
struct opts {
	const char *type, *context, *alg, *hash;
	const char *filter; /* --name: the key a listing is of */
	const char *iv, *aad, *tag_len; /* gcm-encrypt, gcm-decrypt: hex, hex, bytes */
	uint32_t version;
	int salt_len;
	bool have_version, due, repair, digest, pem, yes, public;
	const char *output; /* key pem: -o FILE */
	const char *name; /* the one positional argument, when taken */
	const char *file; /* key cert set: the second one */
	unsigned batch;	  /* key rewrap: envelopes per request */
	char **files;	  /* key rewrap: the FILEs after NAME */
	int n_files;
};

enum {
	O_TYPE = 't',
	O_CONTEXT = 'c',
	O_ALG = 'a',
	O_VERSION = 'V',
	O_DUE = 'd',
	O_REPAIR = 'r',
	O_DIGEST = 'D',
	O_HASH = 'H',
	O_SALT = 's',
	O_NAME = 'n',
	O_IV = 'i',
	O_AAD = 'A',
	O_TAG_LEN = 'T',
	O_PEM = 'p',
	O_YES = 'y',
	O_PUBLIC = 'P',
	O_OUTPUT = 'o',
	O_BATCH = 'b',
	O_HELP = 'h'
};

static bool parse_version(const char *s, uint32_t *out)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 10)
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (i == 0 || v == 0 || v > UINT32_MAX)
		return false;
	*out = (uint32_t)v;
	return true;
}

/* Parses argv for subcommand sub with the options in allowed (letters of
 * the enum) and, when want_name, one NAME. Returns -1 to go on, else the
 * exit status (help printed, or a usage error). */
static int parse(const char *group, const char *sub, void (*usage)(FILE *), const char *allowed,
		 int want_name, int argc, char **argv, struct opts *o)
{
	static const struct option all[] = {
	    {"type", required_argument, NULL, O_TYPE},
	    {"context", required_argument, NULL, O_CONTEXT},
	    {"alg", required_argument, NULL, O_ALG},
	    {"version", required_argument, NULL, O_VERSION},
	    {"due", no_argument, NULL, O_DUE},
	    {"repair", no_argument, NULL, O_REPAIR},
	    {"digest", no_argument, NULL, O_DIGEST},
	    {"hash", required_argument, NULL, O_HASH},
	    {"salt-len", required_argument, NULL, O_SALT},
	    {"name", required_argument, NULL, O_NAME},
	    {"iv", required_argument, NULL, O_IV},
	    {"aad", required_argument, NULL, O_AAD},
	    {"tag-len", required_argument, NULL, O_TAG_LEN},
	    {"pem", no_argument, NULL, O_PEM},
	    {"yes", no_argument, NULL, O_YES},
	    {"public", no_argument, NULL, O_PUBLIC},
	    {"output", required_argument, NULL, O_OUTPUT},
	    {"batch", required_argument, NULL, O_BATCH},
	    {"help", no_argument, NULL, O_HELP},
	    {NULL, 0, NULL, 0},
	};
	struct option mine[sizeof(all) / sizeof(all[0])];
	char what[64], shortopts[32] = ":";
	size_t i, n = 0;
	int opt;

	if (sub != NULL)
		snprintf(what, sizeof(what), "%s %s", group, sub);
	else
		snprintf(what, sizeof(what), "%s", group);
	for (i = 0; all[i].name != NULL; i++) {
		if (strchr(allowed, all[i].val) == NULL && all[i].val != O_HELP)
			continue;
		mine[n++] = all[i];
	}
	memset(&mine[n], 0, sizeof(mine[n]));
	/* short forms: -t -c -a -V -H -s -n -i -A -T -o -h; --due, --repair,
	 * --digest, --pem, --public and --yes have none (--yes least of all:
	 * it is to be typed out) */
	for (i = 0; allowed[i] != '\0'; i++) {
		if (allowed[i] == O_DUE || allowed[i] == O_REPAIR || allowed[i] == O_DIGEST ||
		    allowed[i] == O_PEM || allowed[i] == O_YES || allowed[i] == O_PUBLIC)
			continue;
		snprintf(shortopts + strlen(shortopts), sizeof(shortopts) - strlen(shortopts),
			 "%c:", allowed[i]);
	}
	snprintf(shortopts + strlen(shortopts), sizeof(shortopts) - strlen(shortopts), "h");
	memset(o, 0, sizeof(*o));
	o->salt_len = KOS_SIG_SALT_DEFAULT;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, shortopts, mine, NULL)) != -1) {
		switch (opt) {
		case O_TYPE:
			o->type = optarg;
			break;
		case O_CONTEXT:
			o->context = optarg;
			break;
		case O_ALG:
			o->alg = optarg;
			break;
		case O_VERSION:
			if (!parse_version(optarg, &o->version)) {
				kosctl_err("%s: --version wants a version number (1 or more), not "
					   "'%.40s'",
					   what, optarg);
				return usage_hint(group, sub);
			}
			o->have_version = true;
			break;
		case O_DUE:
			o->due = true;
			break;
		case O_REPAIR:
			o->repair = true;
			break;
		case O_DIGEST:
			o->digest = true;
			break;
		case O_HASH:
			o->hash = optarg;
			break;
		case O_NAME:
			o->filter = optarg;
			break;
		case O_SALT: {
			uint32_t v;

			/* 0 is a salt length (deterministic PSS), not "none" */
			if (strcmp(optarg, "0") == 0) {
				o->salt_len = 0;
				break;
			}
			if (!parse_version(optarg, &v) || v > 4096) {
				kosctl_err("%s: --salt-len wants a number of bytes (0 to 4096), "
					   "not '%.40s'",
					   what, optarg);
				return usage_hint(group, sub);
			}
			o->salt_len = (int)v;
			break;
		}
		case O_IV:
			o->iv = optarg;
			break;
		case O_AAD:
			o->aad = optarg;
			break;
		case O_TAG_LEN:
			o->tag_len = optarg;
			break;
		case O_PEM:
			o->pem = true;
			break;
		case O_YES:
			o->yes = true;
			break;
		case O_PUBLIC:
			o->public = true;
			break;
		case O_OUTPUT:
			o->output = optarg;
			break;
		case O_BATCH: {
			uint32_t v;

			if (!parse_version(optarg, &v) || v > KOS_CLIENT_REWRAP_MAX) {
				kosctl_err("%s: --batch wants a number of envelopes (1 to %d), "
					   "not '%.40s'",
					   what, KOS_CLIENT_REWRAP_MAX, optarg);
				return usage_hint(group, sub);
			}
			o->batch = v;
			break;
		}
		case O_HELP:
			usage(stdout);
			return KOSCTL_OK;
		default:
			bad_option(what, opt, argv);
			return usage_hint(group, sub);
		}
	}
	if (want_name && optind < argc)
		o->name = argv[optind++];
	/* 3: NAME and FILE; 4: NAME and FILE... */
	if (want_name == 3 && optind < argc)
		o->file = argv[optind++];
	if (want_name == 4) {
		o->files = argv + optind;
		o->n_files = argc - optind;
		optind = argc;
	}
	if (optind < argc) {
		kosctl_err("%s: unexpected argument '%.80s'", what, argv[optind]);
		return usage_hint(group, sub);
	}
	if ((want_name == 1 || want_name >= 3) && o->name == NULL) {
		kosctl_err("%s: which key? (NAME missing)", what);
		return usage_hint(group, sub);
	}
	if ((want_name == 3 && o->file == NULL) || (want_name == 4 && o->n_files == 0)) {
		kosctl_err("%s: which file? (FILE missing)", what);
		return usage_hint(group, sub);
	}
	if (o->name != NULL && !kos_key_name_valid(o->name)) {
		kosctl_err("%s: invalid key name '%.80s' (1 to %d of A-Z a-z 0-9 . _ -, not "
			   "starting with . or -)",
			   what, o->name, KOS_KEY_NAME_MAX);
		return usage_hint(group, sub);
	}
	return -1;
}

static int print_json(json_t *v)
{
	return kosctl_print_json(v, JSON_FLAGS);
}

/* Through kosd (kosctl_remote()) the client handle, else the key service
 * on the store and tokens; *remote says which. */
static int need(struct kosctl_ctx *ctx, bool *remote)
{
	*remote = kosctl_remote(ctx);
	return *remote ? kosctl_need_client(ctx, false) : kosctl_need_keys(ctx);
}

static void report(struct kosctl_ctx *ctx, bool remote, kos_rv rv, const char *what)
{
	if (remote)
		kosctl_err_remote(ctx, rv, what);
	else
		kosctl_err_rv(rv, what);
}

/* --- create ------------------------------------------------------------------ */

static void create_usage(FILE *f)
{
	fprintf(f, "usage: kosctl key create NAME [--type TYPE]\n"
		   "\n"
		   "Creates key NAME at version 1. A data key (dek, the default) is 256 random\n"
		   "bits split with Shamir's scheme into one share set per share set of the\n"
		   "policy, each share on its own KMS token; a signing key is a key pair made\n"
		   "inside the signer token that never leaves it. All or nothing: a failure\n"
		   "leaves no trace (see 'kosctl fsck' after a crash).\n"
		   "\n"
		   "options:\n"
		   "  -t, --type TYPE  dek, ec-p256, ed25519, rsa-2048 or rsa-3072 (default dek)\n"
		   "  -h, --help       show this help\n");
}

static int cmd_create(struct kosctl_ctx *ctx, int argc, char **argv)
{
	kos_key_type type = KOS_KEY_DEK;
	kos_key_info info;
	struct opts o;
	kos_rv rv;
	int rc = parse("key", "create", create_usage, "t", 1, argc, argv, &o);

	if (rc >= 0)
		return rc;
	if (o.type != NULL && kos_key_type_parse(o.type, &type) != KOS_OK) {
		kosctl_err("key create: %s", kos_last_error());
		return usage_hint("key", "create");
	}
	/* a key pair made in a token (RSA-3072 above all) takes seconds */
	kosctl_progress_start(0, "key create");
	if (kosctl_remote(ctx)) {
		json_t *ans = NULL;

		rc = kosctl_call(
			ctx, "key create", "POST", "/v1/admin/keys",
			json_pack("{s:s, s:s}", "name", o.name, "type", kos_key_type_name(type)),
			&ans);
		kosctl_progress_done();
		if (rc != KOSCTL_OK)
			return KOSCTL_FAIL;
		printf("created %s (%s), version %lld\n", o.name, kos_key_type_name(type),
		       (long long)json_integer_value(json_object_get(ans, "version")));
		json_decref(ans);
		return KOSCTL_OK;
	}
	if (kosctl_need_keys(ctx) != KOSCTL_OK) {
		kosctl_progress_done();
		return KOSCTL_FAIL;
	}
	rv = kos_key_create(ctx->keys, o.name, type);
	kosctl_progress_done();
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "key create");
		return KOSCTL_FAIL;
	}
	if (kos_key_get_info(ctx->keys, o.name, &info) == KOS_OK)
		printf("created %s (%s), version %u\n", o.name, kos_key_type_name(type),
		       info.current);
	return KOSCTL_OK;
}

/* --- list ---------------------------------------------------------------------- */

static void list_usage(FILE *f)
{
	fprintf(f, "usage: kosctl key list [--name NAME] [--type TYPE]\n"
		   "\n"
		   "Lists every key: name, type, current version, oldest version not retired,\n"
		   "versions not retired, and when the current version was made; through kosd,\n"
		   "the keys the credential's scope reaches. --name and --type list only the\n"
		   "key of that exact name and the keys of that type, filtered by kosd when a\n"
		   "server is set (no match: an empty list). With --json (global option), a\n"
		   "JSON array.\n"
		   "\n"
		   "options:\n"
		   "  -n, --name NAME  only the key NAME\n"
		   "  -t, --type TYPE  only keys of TYPE (dek, ec-p256, ed25519, rsa-2048,\n"
		   "                   rsa-3072)\n"
		   "  -h, --help       show this help\n");
}

static json_t *info_json(const kos_key_info *info)
{
	char created[32], rotated[32];

	kosj_iso_time(info->created, created, sizeof(created), true);
	kosj_iso_time(info->rotated, rotated, sizeof(rotated), true);
	return json_pack("{s:s, s:s, s:I, s:I, s:I, s:s, s:s}", "name", info->name, "type",
			 kos_key_type_name(info->type), "current", (json_int_t)info->current,
			 "min_version", (json_int_t)info->min_version, "active_versions",
			 (json_int_t)info->versions, "created", created, "rotated", rotated);
}

static int list_one(const kos_key_info *info, void *arg)
{
	json_t *arr = arg;
	char rotated[32];

	if (arr != NULL)
		return json_array_append_new(arr, info_json(info)) == 0 ? 0 : KOS_E_NOMEM;
	kosj_iso_time(info->rotated, rotated, sizeof(rotated), true);
	if (info->current == 0)
		printf("%-24s %-9s %7s %7s %8s %s\n", info->name, kos_key_type_name(info->type),
		       "-", "-", "0", "(incomplete: see kosctl fsck)");
	else
		printf("%-24s %-9s %7u %7u %8u %s\n", info->name, kos_key_type_name(info->type),
		       info->current, info->min_version, info->versions, rotated);
	return 0;
}

/* A key kosd lists: what the credential's scope reaches. */
static int list_remote_one(const kos_client_key *k, void *arg)
{
	json_t *arr = arg;

	if (arr != NULL)
		return json_array_append_new(
			   arr, json_pack("{s:s, s:s, s:I, s:I, s:I}", "name", k->name, "type",
					  k->type, "current", (json_int_t)k->current, "min_version",
					  (json_int_t)k->min_version, "active_versions",
					  (json_int_t)k->versions)) == 0
			   ? 0
			   : KOS_E_NOMEM;
	printf("%-24s %-9s %7u %7u %8u %s\n", k->name, k->type, k->current, k->min_version,
	       k->versions, "-");
	return 0;
}

static int cmd_list(struct kosctl_ctx *ctx, int argc, char **argv)
{
	json_t *arr = NULL;
	struct opts o;
	bool remote;
	kos_rv rv;
	kos_key_type type = KOS_KEY_DEK;
	int rc = parse("key", "list", list_usage, "nt", 0, argc, argv, &o);

	if (rc >= 0)
		return rc;
	if (o.filter != NULL && !kos_key_name_valid(o.filter)) {
		kosctl_err("key list: invalid key name '%.80s'", o.filter);
		return usage_hint("key", "list");
	}
	if (o.type != NULL && kos_key_type_parse(o.type, &type) != KOS_OK) {
		kosctl_err("key list: %s", kos_last_error());
		return usage_hint("key", "list");
	}
	if (need(ctx, &remote) != KOSCTL_OK)
		return KOSCTL_FAIL;
	if (ctx->json) {
		arr = json_array();
		if (arr == NULL) {
			kosctl_err("out of memory building JSON");
			return KOSCTL_FAIL;
		}
	} else {
		printf("%-24s %-9s %7s %7s %8s %s\n", "NAME", "TYPE", "CURRENT", "MIN", "VERSIONS",
		       "ROTATED");
	}
	if (remote)
		rv = kos_client_keys_find(ctx->client, o.filter, o.type, list_remote_one, arr);
	else
		rv = kos_key_list_filter(ctx->keys, o.filter, o.type != NULL ? (int)type : -1,
					 list_one, arr);
	if (rv != KOS_OK) {
		json_decref(arr);
		report(ctx, remote, rv, "key list");
		return KOSCTL_FAIL;
	}
	return arr != NULL ? print_json(arr) : KOSCTL_OK;
}

/* --- show ---------------------------------------------------------------------- */

static void show_usage(FILE *f)
{
	fprintf(f, "usage: kosctl key show NAME\n"
		   "\n"
		   "Shows key NAME and every version: its state, when it was made, and for a\n"
		   "data key its key check value (kos-keys(7)) and share sets, each with n, k\n"
		   "and the token of every share; for a signing key the token and label of\n"
		   "its key pair. Through kosd when a server is set (scope admin:keys), else\n"
		   "from the state store. With --json (global option), one JSON object.\n"
		   "\n"
		   "options:\n"
		   "  -h, --help  show this help\n");
}

/* What 'key show' prints, from kosj_key_show()'s JSON (the store's or
 * kosd's). */
static void print_key(const json_t *o)
{
	const json_t *versions = json_object_get(o, "versions"), *v;
	bool dek = strcmp(kosctl_jstr(o, "type"), "dek") == 0;
	size_t i, j, k;

	printf("name: %s\ntype: %s\ncreated: %s\n", kosctl_jstr(o, "name"), kosctl_jstr(o, "type"),
	       kosctl_jstr(o, "created"));
	if (kosctl_jint(o, "current") != 0)
		printf("current: %lld\n", kosctl_jint(o, "current"));
	else
		printf("current: none (incomplete: see kosctl fsck)\n");
	json_array_foreach(versions, i, v) {
		const json_t *sets = json_object_get(v, "sets"), *set;

		if (!dek) {
			printf("version %lld: %s, created %s", kosctl_jint(v, "version"),
			       kosctl_jstr(v, "state"), kosctl_jstr(v, "created"));
			if (strcmp(kosctl_jstr(v, "state"), "retired") != 0 &&
			    json_object_get(v, "token") != NULL)
				printf(", key pair %s on token %s", kosctl_jstr(v, "label"),
				       kosctl_jstr(v, "token"));
			printf("\n");
			continue;
		}
		printf("version %lld: %s, created %s, kcv %s\n", kosctl_jint(v, "version"),
		       kosctl_jstr(v, "state"), kosctl_jstr(v, "created"), kosctl_jstr(v, "kcv"));
		json_array_foreach(sets, j, set) {
			const json_t *shares = json_object_get(set, "shares"), *sh;

			printf("  set %s: %lld of %lld: ", kosctl_jstr(set, "name"),
			       kosctl_jint(set, "k"), kosctl_jint(set, "n"));
			if (json_array_size(shares) == 0)
				printf("(shares destroyed)");
			json_array_foreach(shares, k, sh)
				printf("%s%s (x=%lld)", k ? ", " : "", kosctl_jstr(sh, "token"),
				       kosctl_jint(sh, "x"));
			printf("\n");
		}
	}
}

static int cmd_show(struct kosctl_ctx *ctx, int argc, char **argv)
{
	json_t *obj = NULL;
	struct opts o;
	kos_rv rv;
	int rc = parse("key", "show", show_usage, "", 1, argc, argv, &o);

	if (rc >= 0)
		return rc;
	if (kosctl_remote(ctx)) {
		char path[128];

		snprintf(path, sizeof(path), "/v1/admin/keys/%s", o.name);
		if (kosctl_call(ctx, "key show", "GET", path, NULL, &obj) != KOSCTL_OK)
			return KOSCTL_FAIL;
	} else {
		if (kosctl_need_keys(ctx) != KOSCTL_OK)
			return KOSCTL_FAIL;
		rv = kosj_key_show(ctx->keys, o.name, &obj);
		if (rv != KOS_OK) {
			if (rv == KOS_E_NOMEM)
				kosctl_err("key show: out of memory building JSON");
			else
				kosctl_err_rv(rv, "key show");
			return KOSCTL_FAIL;
		}
	}
	if (ctx->json)
		return print_json(obj);
	print_key(obj);
	json_decref(obj);
	return KOSCTL_OK;
}

/* --- rotate and retire ------------------------------------------------------------ */

static void rotate_usage(FILE *f)
{
	fprintf(f, "usage: kosctl key rotate NAME\n"
		   "       kosctl key rotate --due\n"
		   "\n"
		   "Makes a new current version of NAME (all or nothing, as create). Older\n"
		   "versions keep decrypting (and their public keys stay) until retired. With\n"
		   "--due, rotates every key whose current version is older than the policy's\n"
		   "rotation interval for its type (rotation.dek, rotation.signing) and prints\n"
		   "each.\n"
		   "\n"
		   "options:\n"
		   "      --due   rotate what the policy says is due\n"
		   "  -h, --help  show this help\n");
}

static void rotated(const char *name, uint32_t version, void *arg)
{
	(*(unsigned *)arg)++;
	kosctl_progress_clear();
	printf("rotated %s: version %u\n", name, version);
	fflush(stdout);
	kosctl_progress_step(1);
}

static int cmd_rotate(struct kosctl_ctx *ctx, int argc, char **argv)
{
	unsigned count = 0;
	uint32_t version = 0;
	struct opts o;
	kos_rv rv;
	int rc = parse("key", "rotate", rotate_usage, "d", 2, argc, argv, &o);

	if (rc >= 0)
		return rc;
	if (o.due == (o.name != NULL)) {
		kosctl_err("key rotate: give either NAME or --due");
		return usage_hint("key", "rotate");
	}
	/* a new key pair (RSA) takes seconds, every key due more */
	kosctl_progress_start(0, o.due ? "key rotate --due" : "key rotate");
	if (kosctl_remote(ctx)) {
		char path[64 + KOS_KEY_NAME_MAX];
		json_t *ans = NULL;

		if (o.due) {
			json_t *v;
			size_t i;

			rc = kosctl_call(ctx, "key rotate --due", "POST",
					 "/v1/admin/keys/rotate-due", json_object(), &ans);
			kosctl_progress_done();
			if (rc != KOSCTL_OK)
				return KOSCTL_FAIL;
			json_array_foreach (json_object_get(ans, "rotated"), i, v)
				rotated(kosctl_jstr(v, "name"), (uint32_t)kosctl_jint(v, "version"),
					&count);
			if (count == 0)
				printf("nothing is due\n");
			json_decref(ans);
			return KOSCTL_OK;
		}
		snprintf(path, sizeof(path), "/v1/admin/keys/%s/rotate", o.name);
		rc = kosctl_call(ctx, "key rotate", "POST", path, json_object(), &ans);
		kosctl_progress_done();
		if (rc != KOSCTL_OK)
			return KOSCTL_FAIL;
		rotated(o.name, (uint32_t)json_integer_value(json_object_get(ans, "version")),
			&count);
		json_decref(ans);
		return KOSCTL_OK;
	}
	if (kosctl_need_keys(ctx) != KOSCTL_OK) {
		kosctl_progress_done();
		return KOSCTL_FAIL;
	}
	if (o.due) {
		rv = kos_keys_rotate_due(ctx->keys, rotated, &count);
	} else {
		rv = kos_key_rotate(ctx->keys, o.name, &version);
	}
	kosctl_progress_done();
	if (rv == KOS_OK && o.due && count == 0)
		printf("nothing is due\n");
	else if (rv == KOS_OK && !o.due)
		rotated(o.name, version, &count);
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "key rotate");
		return KOSCTL_FAIL;
	}
	return KOSCTL_OK;
}

static void retire_usage(FILE *f)
{
	fprintf(f, "usage: kosctl key retire NAME --version V\n"
		   "\n"
		   "Retires version V of NAME (not the current one): its shares (data key) or\n"
		   "its key pair (signing key) are destroyed on the tokens, and envelopes of\n"
		   "that version can no longer be decrypted. A signing key's public key stays\n"
		   "available ('kosctl key pubkey NAME --version V').\n"
		   "\n"
		   "options:\n"
		   "  -V, --version V  the version to retire\n"
		   "  -h, --help       show this help\n");
}

static int cmd_retire(struct kosctl_ctx *ctx, int argc, char **argv)
{
	struct opts o;
	kos_rv rv;
	int rc = parse("key", "retire", retire_usage, "V", 1, argc, argv, &o);

	if (rc >= 0)
		return rc;
	if (!o.have_version) {
		kosctl_err("key retire: which version? (--version V)");
		return usage_hint("key", "retire");
	}
	if (kosctl_remote(ctx)) {
		char path[64 + KOS_KEY_NAME_MAX];

		snprintf(path, sizeof(path), "/v1/admin/keys/%s/retire", o.name);
		if (kosctl_call(ctx, "key retire", "POST", path,
				json_pack("{s:I}", "version", (json_int_t)o.version),
				NULL) != KOSCTL_OK)
			return KOSCTL_FAIL;
		printf("retired %s version %u\n", o.name, o.version);
		return KOSCTL_OK;
	}
	if (kosctl_need_keys(ctx) != KOSCTL_OK)
		return KOSCTL_FAIL;
	rv = kos_key_retire(ctx->keys, o.name, o.version);
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "key retire");
		return KOSCTL_FAIL;
	}
	printf("retired %s version %u\n", o.name, o.version);
	return KOSCTL_OK;
}

static void destroy_usage(FILE *f)
{
	fprintf(f, "usage: kosctl key destroy NAME --yes\n"
		   "\n"
		   "Destroys key NAME and every version of it: the state store forgets it\n"
		   "(versions, share locations, certificates) and its shares (data key) or key\n"
		   "pairs (signing key) are destroyed on the tokens. This cannot be undone:\n"
		   "envelopes made with the key can no longer be decrypted, signatures no longer\n"
		   "be made. The name can be used again. A token that cannot be reached keeps\n"
		   "its object, which 'kosctl fsck --repair' removes later. Through kosd it\n"
		   "needs admin:keys.\n"
		   "\n"
		   "options:\n"
		   "      --yes   destroy it (required: there is no way back)\n"
		   "  -h, --help  show this help\n");
}

static int cmd_destroy(struct kosctl_ctx *ctx, int argc, char **argv)
{
	struct opts o;
	json_t *ans = NULL;
	kos_rv rv;
	int rc = parse("key", "destroy", destroy_usage, "y", 1, argc, argv, &o);

	if (rc >= 0)
		return rc;
	if (!o.yes) {
		kosctl_err("key destroy: destroying %s cannot be undone (every version, and every "
			   "envelope made with it); add --yes to destroy it",
			   o.name);
		return usage_hint("key", "destroy");
	}
	if (kosctl_remote(ctx)) {
		char path[64 + KOS_KEY_NAME_MAX];
		const char *warning;

		snprintf(path, sizeof(path), "/v1/admin/keys/%s/destroy", o.name);
		if (kosctl_call(ctx, "key destroy", "POST", path, json_object(), &ans) !=
		    KOSCTL_OK)
			return KOSCTL_FAIL;
		warning = json_string_value(json_object_get(ans, "warning"));
		if (warning != NULL)
			kosctl_err("key destroy: %s", warning);
		json_decref(ans);
		printf("destroyed %s\n", o.name);
		return KOSCTL_OK;
	}
	if (kosctl_need_keys(ctx) != KOSCTL_OK)
		return KOSCTL_FAIL;
	rv = kos_key_destroy(ctx->keys, o.name);
	if (rv == KOS_E_IO) {
		/* the key is gone; only objects on unreachable tokens remain */
		kosctl_err_rv(rv, "key destroy");
		printf("destroyed %s\n", o.name);
		return KOSCTL_OK;
	}
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "key destroy");
		return KOSCTL_FAIL;
	}
	printf("destroyed %s\n", o.name);
	return KOSCTL_OK;
}

/* --- encrypt and decrypt ------------------------------------------------------------ */

/* One data operation on standard input's bytes: through kosd, or here
 * through kos_access as a named local administrator. Both take the same
 * pipeline, so only the call differs. */
enum data_op { DATA_ENCRYPT, DATA_DECRYPT, DATA_SIGN };

struct data_req {
	enum data_op op;
	const char *what; /* "key encrypt", for messages */
	const char *name, *context;
	kos_sign_opts sign; /* DATA_SIGN */
	const uint8_t *in;
	size_t len;
};

/* Runs q; on success *out (kos_secret_free) holds the envelope, plaintext
 * or signature. *done is -1 to go on with rv, else the exit status (the
 * local access could not be opened, or the pipeline refused: reported). */
static kos_rv data_run(struct kosctl_ctx *ctx, bool remote, const struct data_req *q,
		       uint8_t **out, size_t *out_len, int *done)
{
	kos_access_result res;
	kos_rv rv;

	*done = -1;
	if (remote) {
		switch (q->op) {
		case DATA_ENCRYPT:
			return kos_client_encrypt(ctx->client, q->name, q->context, q->in, q->len,
						  out, out_len);
		case DATA_DECRYPT:
			return kos_client_decrypt(ctx->client, q->context, q->in, q->len, out,
						  out_len);
		default: {
			kos_client_sign_opts so = KOS_CLIENT_SIGN_OPTS_INIT;

			so.alg = q->sign.alg;
			so.hash = q->sign.hash;
			so.salt_len = q->sign.salt_len;
			so.digest = q->sign.digest;
			so.version = q->sign.version;
			return kos_client_sign_ex(ctx->client, q->name, &so, q->in, q->len, out,
						  out_len, NULL);
		}
		}
	}
	/* server-side, as for a client of kosd: tier deny is refused */
	if (kosctl_need_access(ctx) != KOSCTL_OK) {
		*done = KOSCTL_FAIL;
		return KOS_E_INVALID;
	}
	switch (q->op) {
	case DATA_ENCRYPT:
		rv = kos_access_encrypt(ctx->access, ctx->admin, KOSCTL_ADMIN_SCOPE, q->name,
					q->context, q->in, q->len, &res);
		break;
	case DATA_DECRYPT:
		rv = kos_access_decrypt(ctx->access, ctx->admin, KOSCTL_ADMIN_SCOPE, q->context,
					q->in, q->len, &res);
		break;
	default:
		rv = kos_access_sign_with(ctx->access, ctx->admin, KOSCTL_ADMIN_SCOPE, q->name,
					  &q->sign, q->in, q->len, &res);
		break;
	}
	if (rv == KOS_OK && res.delivery == KOS_DELIVER_REFUSED) {
		*done = kosctl_refused(ctx, &res, q->what);
	} else if (rv == KOS_OK) {
		ctx->tier = kos_tier_name(res.tier);
		/* handed over as it is (an envelope or signature is no secret, a
		 * plaintext is wiped by the caller's kos_secret_free) */
		*out = res.data;
		*out_len = res.data_len;
		res.data = NULL;
	}
	kos_access_result_clear(&res);
	return rv;
}

/* The end of encrypt and sign: rv reported, or out written. */
static int data_written(struct kosctl_ctx *ctx, bool remote, kos_rv rv, const char *what,
			uint8_t *out, size_t out_len)
{
	int rc;

	if (rv != KOS_OK) {
		report(ctx, remote, rv, what);
		return KOSCTL_FAIL;
	}
	rc = write_all(out, out_len);
	kos_secret_free(out, out_len);
	return rc;
}

static void encrypt_usage(FILE *f)
{
	fprintf(f,
		"usage: kosctl key encrypt NAME [--context STR]\n"
		"\n"
		"Encrypts standard input (at most %u bytes) with the current version of\n"
		"data key NAME and writes the envelope (kos-envelope(5), binary) on\n"
		"standard output. The context is authenticated, not stored: decryption\n"
		"needs the same one.\n"
		"\n"
		"options:\n"
		"  -c, --context STR  additional authenticated data (up to %d bytes)\n"
		"  -h, --help         show this help\n",
		KOS_ENVELOPE_MAX_PLAINTEXT, KOS_ENVELOPE_CONTEXT_MAX);
}

static int cmd_encrypt(struct kosctl_ctx *ctx, int argc, char **argv)
{
	unsigned char *buf = NULL;
	uint8_t *env = NULL;
	size_t len = 0, cap = 0, env_len = 0;
	struct data_req q;
	struct opts o;
	bool remote;
	kos_rv rv;
	int rc = parse("key", "encrypt", encrypt_usage, "c", 1, argc, argv, &o);

	if (rc >= 0)
		return rc;
	if (o.context != NULL && strlen(o.context) > KOS_ENVELOPE_CONTEXT_MAX) {
		kosctl_err("key encrypt: the context is longer than %d bytes",
			   KOS_ENVELOPE_CONTEXT_MAX);
		return usage_hint("key", "encrypt");
	}
	if (need(ctx, &remote) != KOSCTL_OK)
		return KOSCTL_FAIL;
	if (read_stdin(KOS_ENVELOPE_MAX_PLAINTEXT, &buf, &len, &cap) != KOS_OK)
		return KOSCTL_FAIL; /* kosctl_read_all() said why */
	q = (struct data_req){ .op = DATA_ENCRYPT, .what = "key encrypt", .name = o.name,
			       .context = o.context, .in = buf, .len = len };
	rv = data_run(ctx, remote, &q, &env, &env_len, &rc);
	kos_secret_free(buf, cap);
	if (rc >= 0)
		return rc;
	return data_written(ctx, remote, rv, q.what, env, env_len);
}

static void decrypt_usage(FILE *f)
{
	fprintf(f, "usage: kosctl key decrypt [--context STR]\n"
		   "\n"
		   "Decrypts an envelope (kos-envelope(5)) read on standard input and writes\n"
		   "the plaintext on standard output. The envelope names its key and version.\n"
		   "A wrong context or a changed envelope fails with 'integrity check failed'\n"
		   "and writes nothing.\n"
		   "\n"
		   "options:\n"
		   "  -c, --context STR  the context given at encryption\n"
		   "  -h, --help         show this help\n");
}

/* --verbose through kosd: which path the tier took (kos-client(3)). */
static void decrypt_path_note(struct kosctl_ctx *ctx, kos_rv rv)
{
	kos_client_stats st;
	const char *what;

	kos_client_get_stats(ctx->client, &st);
	switch (st.last_path) {
	case KOS_CLIENT_PATH_CACHE:
		what = "cache (a DEK cached by this process)";
		break;
	case KOS_CLIENT_PATH_DEK:
		what = "dek (tier high: kosd delivered the DEK; decrypted here)";
		break;
	case KOS_CLIENT_PATH_SHARES:
		what = "shares (tier medium: the DEK was rebuilt here from shares fetched "
		       "with grants)";
		break;
	case KOS_CLIENT_PATH_SERVER:
		what = "server (tier low: kosd decrypted; the DEK never left it)";
		break;
	default:
		what = "none (refused before a key was delivered)";
		break;
	}
	if (st.last_path == KOS_CLIENT_PATH_SHARES)
		fprintf(stderr, "kosctl: path: %s; %llu share%s fetched%s\n", what,
			(unsigned long long)st.shares_fetched, st.shares_fetched == 1 ? "" : "s",
			rv == KOS_OK ? "" : "; then it failed");
	else
		fprintf(stderr, "kosctl: path: %s%s\n", what,
			rv == KOS_OK || st.last_path == KOS_CLIENT_PATH_NONE ? ""
									     : "; then it failed");
}

static int cmd_decrypt(struct kosctl_ctx *ctx, int argc, char **argv)
{
	unsigned char *buf = NULL;
	uint8_t *pt = NULL;
	size_t len = 0, cap = 0, pt_len = 0;
	struct data_req q;
	struct opts o;
	bool remote;
	kos_rv rv;
	int rc = parse("key", "decrypt", decrypt_usage, "c", 0, argc, argv, &o);

	if (rc >= 0)
		return rc;
	if (need(ctx, &remote) != KOSCTL_OK)
		return KOSCTL_FAIL;
	if (read_stdin(ENVELOPE_MAX, &buf, &len, &cap) != KOS_OK)
		return KOSCTL_FAIL;
	q = (struct data_req){ .op = DATA_DECRYPT, .what = "key decrypt", .context = o.context,
			       .in = buf, .len = len };
	rv = data_run(ctx, remote, &q, &pt, &pt_len, &rc);
	kos_secret_free(buf, cap);
	if (rc >= 0)
		return rc;
	if (remote && ctx->verbose)
		decrypt_path_note(ctx, rv);
	if (remote && rv != KOS_OK) {
		kosctl_err_remote(ctx, rv, "key decrypt");
		return KOSCTL_FAIL;
	}
	if (rv == KOS_E_INTEGRITY) {
		kosctl_err("key decrypt: %s: %s", kos_strerror(rv), kos_last_error());
		return KOSCTL_FAIL;
	}
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "key decrypt");
		return KOSCTL_FAIL;
	}
	rc = write_all(pt, pt_len);
	kos_secret_free(pt, pt_len);
	return rc;
}

/* --- rewrap ---------------------------------------------------------------------- */

#define REWRAP_BATCH 100

static void rewrap_usage(FILE *f)
{
	fprintf(f,
		"usage: kosctl key rewrap NAME [--context STR] [--batch N] FILE...\n"
		"       kosctl key rewrap NAME [--context STR] -\n"
		"\n"
		"Re-encrypts envelopes of data key NAME (kos-envelope(5), one per FILE, as\n"
		"'kosctl key encrypt' writes them) under its current version, inside kosd or\n"
		"the key service: the plaintext never reaches kosctl. Once no envelope of an\n"
		"old version is left, that version can be retired ('kosctl key retire').\n"
		"A FILE rewrapped is replaced atomically (a new file in its directory with\n"
		"its mode, written, synced and renamed over it); a FILE already at the\n"
		"current version is left untouched; a FILE that fails (another key's\n"
		"envelope, a retired version, tampered, a wrong context) is named with the\n"
		"reason and left as it was. '-' reads one envelope on standard input and\n"
		"writes it on standard output, rewrapped or as it was. Prints 'rewrapped N,\n"
		"already current M, failed K'; exit status 1 when any failed. Through kosd\n"
		"it needs rewrap:NAME, which does not allow decryption.\n"
		"\n"
		"options:\n"
		"  -c, --context STR  the context the envelopes were sealed with (every FILE)\n"
		"  -b, --batch N      envelopes per request, 1 to %d (default %d)\n"
		"  -h, --help         show this help\n",
		KOS_CLIENT_REWRAP_MAX, REWRAP_BATCH);
}

/* One FILE of a rewrap. */
struct rw_file {
	const char *path;
	uint8_t *buf; /* the envelope read (kos_free) */
	size_t len;
	mode_t mode;
	bool failed;
	char why[400]; /* the failure, as reported */
	int rewrapped;
	uint8_t *out; /* the new envelope (kos_free) */
	size_t out_len;
};

static void rw_fail(struct rw_file *f, const char *fmt, ...) KOS_PRINTF(2, 3);

static void rw_fail(struct rw_file *f, const char *fmt, ...)
{
	va_list ap;

	f->failed = true;
	va_start(ap, fmt);
	vsnprintf(f->why, sizeof(f->why), fmt, ap);
	va_end(ap);
}

static void rw_release(struct rw_file *f)
{
	kos_free(f->buf);
	kos_free(f->out);
	f->buf = f->out = NULL;
	f->len = f->out_len = 0;
}

/* Reads FILE: a regular file (a link is not followed: the rename that
 * replaces it would replace the link), at most one envelope's size. */
static void rw_read(struct rw_file *f)
{
	struct stat st;
	size_t got = 0;
	ssize_t n;
	int fd;

	fd = open(f->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		rw_fail(f, "%s", errno == ELOOP ? "a symbolic link (give its target)"
						: strerror(errno));
		return;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rw_fail(f, "not a regular file");
		goto out;
	}
	if ((uintmax_t)st.st_size > ENVELOPE_MAX) {
		rw_fail(f, "larger than any envelope (%zu bytes)", (size_t)ENVELOPE_MAX);
		goto out;
	}
	f->mode = st.st_mode & 07777;
	f->buf = malloc((size_t)st.st_size + 1);
	if (f->buf == NULL) {
		rw_fail(f, "out of memory");
		goto out;
	}
	while (got < (size_t)st.st_size) {
		n = read(fd, f->buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rw_fail(f, "%s", n < 0 ? strerror(errno) : "changed while read");
			goto out;
		}
		got += (size_t)n;
	}
	f->len = got;
out:
	close(fd);
}

/* Replaces path with len bytes of data: a temporary file beside it (same
 * directory, so the rename is atomic), of its mode, written and synced,
 * renamed over it, and the directory synced: a crash leaves the old
 * envelope or the new one, never a part. */
static void rw_replace(struct rw_file *f)
{
	const char *slash = strrchr(f->path, '/');
	const char *base = slash != NULL ? slash + 1 : f->path;
	int dlen = slash != NULL ? (int)(slash - f->path) + 1 : 0;
	char tmp[PATH_MAX], dir[PATH_MAX];
	size_t done = 0;
	ssize_t n;
	int fd, dfd, w;

	w = snprintf(tmp, sizeof(tmp), "%.*s.%s.rewrap-XXXXXX", dlen, f->path, base);
	if (w < 0 || (size_t)w >= sizeof(tmp)) {
		rw_fail(f, "the path is too long for a temporary file beside it");
		return;
	}
	fd = mkstemp(tmp);
	if (fd < 0) {
		rw_fail(f, "cannot make a file in its directory: %s", strerror(errno));
		return;
	}
	if (fchmod(fd, f->mode) != 0) {
		rw_fail(f, "cannot give the new file its mode: %s", strerror(errno));
		goto fail;
	}
	while (done < f->out_len) {
		n = write(fd, f->out + done, f->out_len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rw_fail(f, "cannot write the new file: %s", strerror(errno));
			goto fail;
		}
		done += (size_t)n;
	}
	if (fsync(fd) != 0) {
		rw_fail(f, "cannot sync the new file: %s", strerror(errno));
		goto fail;
	}
	if (close(fd) != 0) {
		fd = -1;
		rw_fail(f, "cannot write the new file: %s", strerror(errno));
		goto fail;
	}
	fd = -1;
	if (rename(tmp, f->path) != 0) {
		rw_fail(f, "cannot replace it: %s", strerror(errno));
		goto fail;
	}
	snprintf(dir, sizeof(dir), "%.*s", dlen > 0 ? dlen : 1, dlen > 0 ? f->path : ".");
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	return;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
}

/* The message of a request that failed for the whole batch, as
 * kosctl_err_remote() words it; false for a success. */
static bool rw_request_failed(struct kosctl_ctx *ctx, kos_rv rv, char *fatal, size_t len)
{
	const char *code;

	if (rv == KOS_OK)
		return false;
	code = kos_client_last_code(ctx->client);
	if (code[0] != '\0')
		snprintf(fatal, len, "key rewrap: refused by kosd (%s): %s", code, kos_last_error());
	else
		snprintf(fatal, len, "key rewrap: %s",
			 kos_last_error()[0] != '\0' ? kos_last_error() : kos_strerror(rv));
	return true;
}

/* The envelopes read of files[0..n) (those not failed) in one request,
 * through kosd or the local key service; each file gets its result. False
 * when the request as a whole failed, fatal saying why. */
static bool rw_batch(struct kosctl_ctx *ctx, bool remote, const char *name, const char *context,
		     struct rw_file *files, size_t n, char *fatal, size_t fatal_len)
{
	kos_client_rewrap_item *ci = NULL;
	kos_rewrap_item *li = NULL;
	size_t *at, i, m = 0;
	kos_access_result res;
	bool ok = false;
	kos_rv rv;

	memset(&res, 0, sizeof(res));
	at = calloc(n, sizeof(*at));
	if (remote)
		ci = calloc(n, sizeof(*ci));
	else
		li = calloc(n, sizeof(*li));
	if (at == NULL || (ci == NULL && li == NULL)) {
		snprintf(fatal, fatal_len, "key rewrap: out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (files[i].failed)
			continue;
		if (remote)
			ci[m] = (kos_client_rewrap_item){ .env = files[i].buf,
							  .env_len = files[i].len,
							  .context = context };
		else
			li[m] = (kos_rewrap_item){ .env = files[i].buf, .env_len = files[i].len,
						   .context = context };
		at[m++] = i;
	}
	if (m == 0) {
		ok = true;
		goto out;
	}
	if (remote) {
		rv = kos_client_rewrap(ctx->client, name, ci, m, NULL);
		if (rw_request_failed(ctx, rv, fatal, fatal_len))
			goto out;
	} else {
		rv = kos_access_rewrap(ctx->access, ctx->admin, KOSCTL_ADMIN_SCOPE, name, li, m,
				       &res);
		if (rv != KOS_OK) {
			snprintf(fatal, fatal_len, "key rewrap: %s",
				 kos_last_error()[0] != '\0' ? kos_last_error() : kos_strerror(rv));
			goto out;
		}
		ctx->tier = kos_tier_name(res.tier);
		if (res.delivery == KOS_DELIVER_REFUSED) {
			/* as kosctl_refused() says it, once the bar is gone */
			ctx->refused = true;
			ctx->reason = res.reason;
			snprintf(fatal, fatal_len, "key rewrap: refused: %s (as %s)",
				 res.reason != NULL ? res.reason : "refused", ctx->admin);
			goto out;
		}
	}
	for (i = 0; i < m; i++) {
		struct rw_file *f = &files[at[i]];

		if (remote && ci[i].rv != KOS_OK) {
			rw_fail(f, "%s (%s)", ci[i].message, ci[i].code);
		} else if (!remote && li[i].rv != KOS_OK) {
			rw_fail(f, "%s (%s)", li[i].message,
				li[i].code != NULL ? li[i].code : "internal");
		} else if (remote ? ci[i].rewrapped : li[i].rewrapped) {
			f->rewrapped = 1;
			f->out = remote ? ci[i].out : li[i].out;
			f->out_len = remote ? ci[i].out_len : li[i].out_len;
			if (remote)
				ci[i].out = NULL;
			else
				li[i].out = NULL;
		}
	}
	ok = true;
out:
	if (ci != NULL)
		kos_client_rewrap_clear(ci, m);
	if (li != NULL)
		kos_rewrap_items_clear(li, m);
	free(ci);
	free(li);
	free(at);
	kos_access_result_clear(&res);
	return ok;
}

/* '-': one envelope from standard input to standard output. */
static int rw_stdin(struct kosctl_ctx *ctx, bool remote, const char *name, const char *context)
{
	struct rw_file f = { .path = "-" };
	unsigned char *buf = NULL;
	size_t len = 0, cap = 0;
	char fatal[600];
	int rc;

	if (read_stdin(ENVELOPE_MAX, &buf, &len, &cap) != KOS_OK)
		return KOSCTL_FAIL;
	f.buf = malloc(len + 1);
	if (f.buf == NULL) {
		kos_secret_free(buf, cap);
		kosctl_err("key rewrap: out of memory");
		return KOSCTL_FAIL;
	}
	memcpy(f.buf, buf, len);
	f.len = len;
	kos_secret_free(buf, cap);
	if (!rw_batch(ctx, remote, name, context, &f, 1, fatal, sizeof(fatal))) {
		rw_release(&f);
		kosctl_err("%s", fatal);
		return KOSCTL_FAIL;
	}
	if (f.failed) {
		kosctl_err("key rewrap: -: %s", f.why);
		rw_release(&f);
		return KOSCTL_FAIL;
	}
	rc = f.rewrapped ? write_all(f.out, f.out_len) : write_all(f.buf, f.len);
	if (rc == KOSCTL_OK)
		fprintf(stderr, "kosctl: key rewrap: %s\n",
			f.rewrapped ? "rewrapped 1, already current 0, failed 0"
				    : "rewrapped 0, already current 1, failed 0");
	rw_release(&f);
	return rc;
}

static int cmd_rewrap(struct kosctl_ctx *ctx, int argc, char **argv)
{
	size_t n, i, j, m, batch, rewrapped = 0, current = 0, failed = 0, left = 0;
	struct rw_file *files;
	char fatal[600] = "";
	struct opts o;
	bool remote;
	int rc = parse("key", "rewrap", rewrap_usage, "cb", 4, argc, argv, &o);

	if (rc >= 0)
		return rc;
	if (o.context != NULL && strlen(o.context) > KOS_ENVELOPE_CONTEXT_MAX) {
		kosctl_err("key rewrap: the context is longer than %d bytes",
			   KOS_ENVELOPE_CONTEXT_MAX);
		return usage_hint("key", "rewrap");
	}
	for (i = 0; i < (size_t)o.n_files; i++)
		if (strcmp(o.files[i], "-") == 0 && o.n_files > 1) {
			kosctl_err("key rewrap: '-' (standard input to standard output) is the "
				   "only FILE when given");
			return usage_hint("key", "rewrap");
		}
	batch = o.batch != 0 ? o.batch : REWRAP_BATCH;
	if (need(ctx, &remote) != KOSCTL_OK)
		return KOSCTL_FAIL;
	if (!remote && kosctl_need_access(ctx) != KOSCTL_OK)
		return KOSCTL_FAIL;
	if (strcmp(o.files[0], "-") == 0)
		return rw_stdin(ctx, remote, o.name, o.context);
	n = (size_t)o.n_files;
	files = calloc(n, sizeof(*files));
	if (files == NULL) {
		kosctl_err("key rewrap: out of memory");
		return KOSCTL_FAIL;
	}
	kosctl_progress_start(n, "rewrap");
	for (i = 0; i < n; i += m) {
		m = n - i < batch ? n - i : batch;
		for (j = i; j < i + m; j++) {
			files[j].path = o.files[j];
			rw_read(&files[j]);
		}
		if (!rw_batch(ctx, remote, o.name, o.context, files + i, m, fatal,
			      sizeof(fatal))) {
			for (j = i; j < i + m; j++)
				rw_release(&files[j]);
			left = n - i;
			break;
		}
		for (j = i; j < i + m; j++) {
			if (!files[j].failed && files[j].rewrapped)
				rw_replace(&files[j]);
			if (files[j].failed)
				failed++;
			else if (files[j].rewrapped)
				rewrapped++;
			else
				current++;
			rw_release(&files[j]);
		}
		kosctl_progress_step(m);
	}
	kosctl_progress_done();
	for (i = 0; i < n; i++)
		if (files[i].failed)
			kosctl_err("key rewrap: %s: %s", files[i].path, files[i].why);
	if (fatal[0] != '\0')
		kosctl_err("%s", fatal);
	if (ctx->json) {
		json_t *fl = json_array();

		for (i = 0; fl != NULL && i < n; i++)
			if (files[i].failed)
				json_array_append_new(fl, json_pack("{s:s, s:s}", "file",
								    files[i].path, "reason",
								    files[i].why));
		rc = print_json(json_pack("{s:I, s:I, s:I, s:I, s:o*}", "rewrapped",
					  (json_int_t)rewrapped, "current", (json_int_t)current,
					  "failed", (json_int_t)failed, "not_attempted",
					  (json_int_t)left, "failures", fl));
	} else {
		printf("rewrapped %zu, already current %zu, failed %zu", rewrapped, current,
		       failed);
		if (left > 0)
			printf(", not attempted %zu", left);
		printf("\n");
		rc = KOSCTL_OK;
	}
	free(files);
	if (rc != KOSCTL_OK || failed > 0 || left > 0)
		return KOSCTL_FAIL;
	return KOSCTL_OK;
}

/* --- sign and pubkey ------------------------------------------------------------- */

static void sign_usage(FILE *f)
{
	fprintf(f,
		"usage: kosctl key sign NAME [--alg ALG] [--hash HASH] [--digest]\n"
		"                            [--salt-len N] [--version V]\n"
		"\n"
		"Signs standard input (at most %u bytes) inside the signer token with the\n"
		"current version of signing key NAME (or version V, which must not be\n"
		"retired) and writes the signature (binary) on standard output. ECDSA and\n"
		"RSA sign the digest of the data by HASH; with --digest, standard input is\n"
		"that digest (binary, as long as HASH's), which is signed as it is (RSA\n"
		"PKCS#1 v1.5: in the DigestInfo kos builds for HASH). Ed25519 signs the\n"
		"data itself and takes no digest.\n"
		"\n"
		"options:\n"
		"  -a, --alg ALG     default (ecdsa for ec-p256, ed25519, rsa-pkcs1 for RSA),\n"
		"                    ecdsa (raw r||s, 64 bytes, as JWS ES256), ecdsa-der (what\n"
		"                    'openssl dgst -verify' reads), ed25519, rsa-pkcs1, rsa-pss\n"
		"  -H, --hash HASH   sha256 (default), sha384, sha512, or sha1 when the\n"
		"                    policy allows it (signing.allow_sha1)\n"
		"      --digest      standard input is a digest of HASH, not data\n"
		"  -s, --salt-len N  rsa-pss: salt bytes (default: HASH's length)\n"
		"  -V, --version V   the key version that signs (default: current)\n"
		"  -h, --help        show this help\n",
		SIGN_MAX);
}

static int cmd_sign(struct kosctl_ctx *ctx, int argc, char **argv)
{
	kos_sign_opts so = KOS_SIGN_OPTS_INIT;
	unsigned char *buf = NULL;
	uint8_t *sig = NULL;
	size_t len = 0, cap = 0, sig_len = 0;
	struct data_req q;
	struct opts o;
	bool remote;
	kos_rv rv;
	int rc = parse("key", "sign", sign_usage, "aHDsV", 1, argc, argv, &o);

	if (rc >= 0)
		return rc;
	if ((o.alg != NULL && kos_sig_alg_parse(o.alg, &so.alg) != KOS_OK) ||
	    (o.hash != NULL && kos_hash_parse(o.hash, &so.hash) != KOS_OK)) {
		kosctl_err("key sign: %s", kos_last_error());
		return usage_hint("key", "sign");
	}
	so.digest = o.digest;
	so.salt_len = o.salt_len;
	so.version = o.version;
	if (need(ctx, &remote) != KOSCTL_OK)
		return KOSCTL_FAIL;
	if (read_stdin(so.digest ? KOS_HASH_MAX_LEN + 1 : SIGN_MAX, &buf, &len, &cap) != KOS_OK)
		return KOSCTL_FAIL;
	if (so.digest && len != kos_hash_len(so.hash)) {
		kosctl_err("key sign: a %s digest is %zu bytes; standard input held %zu",
			   kos_hash_name(so.hash), kos_hash_len(so.hash), len);
		kos_secret_free(buf, cap);
		return KOSCTL_FAIL;
	}
	q = (struct data_req){ .op = DATA_SIGN, .what = "key sign", .name = o.name, .sign = so,
			       .in = buf, .len = len };
	rv = data_run(ctx, remote, &q, &sig, &sig_len, &rc);
	kos_secret_free(buf, cap);
	if (rc >= 0)
		return rc;
	return data_written(ctx, remote, rv, q.what, sig, sig_len);
}

static void pubkey_usage(FILE *f)
{
	fprintf(f, "usage: kosctl key pubkey NAME [--version V]\n"
		   "\n"
		   "Writes the public key of signing key NAME (default: the current version;\n"
		   "retired versions too) as PEM SubjectPublicKeyInfo on standard output. It\n"
		   "comes from the state store: no token is contacted.\n"
		   "\n"
		   "options:\n"
		   "  -V, --version V  the version (default: current)\n"
		   "  -h, --help       show this help\n");
}

static int cmd_pubkey(struct kosctl_ctx *ctx, int argc, char **argv)
{
	char *pem = NULL;
	struct opts o;
	bool remote;
	kos_rv rv;
	int rc = parse("key", "pubkey", pubkey_usage, "V", 1, argc, argv, &o);

	if (rc >= 0)
		return rc;
	if (need(ctx, &remote) != KOSCTL_OK)
		return KOSCTL_FAIL;
	if (remote)
		rv = kos_client_pubkey_at(ctx->client, o.name, o.version, &pem, NULL);
	else
		rv = kos_key_pubkey_pem(ctx->keys, o.name, o.version, &pem);
	if (rv != KOS_OK) {
		report(ctx, remote, rv, "key pubkey");
		return KOSCTL_FAIL;
	}
	fputs(pem, stdout);
	kos_free(pem);
	return KOSCTL_OK;
}

/* --- pem: a kos key URI in a PEM file -------------------------------------------- */

/* The PEM label of a file that carries a kos key URI: programs that read a
 * key from a file (nginx 1.22's ssl_certificate_key, curl --key) hand it to
 * OpenSSL's decoders, where the kos provider takes it. No key material is
 * in it, only the name. */
#define KEY_URI_PEM_LABEL "KOS KEY URI"

static void pem_usage(FILE *f)
{
	fprintf(f, "usage: kosctl key pem NAME [--version V] [--public] [-o FILE]\n"
		   "\n"
		   "Writes a small PEM file naming signing key NAME for the kos OpenSSL\n"
		   "provider, for programs that read a key from a file (nginx\n"
		   "ssl_certificate_key, curl --key). Its label is \"KOS KEY URI\" and its body\n"
		   "the URI kos:NAME[;version=V][;type=public]; it holds no key material.\n"
		   "Without --version the URI names the current version, whichever that is\n"
		   "when it is used; a TLS certificate is for one version, so give it.\n"
		   "Through kosd, or on the key store, as the other key commands go, NAME must\n"
		   "be a signing key and V one of its versions, not retired unless --public.\n"
		   "\n"
		   "options:\n"
		   "  -V, --version V      the key version (default: none, the current one)\n"
		   "      --public         the key's public half (;type=public)\n"
		   "  -o, --output FILE    write FILE instead of standard output\n"
		   "  -h, --help           show this help\n");
}

struct pem_find {
	uint32_t version;
	bool found, retired;
	kos_client_key key; /* through kosd */
};

static int pem_version_of(const kos_key_version_info *v, void *arg)
{
	struct pem_find *f = arg;

	if (v->version != f->version)
		return 0;
	f->found = true;
	f->retired = v->retired;
	return 1;
}

static int pem_key_of(const kos_client_key *k, void *arg)
{
	struct pem_find *f = arg;

	f->key = *k;
	f->found = true;
	return 0;
}

static int pem_retired(const struct opts *o)
{
	kosctl_err("key pem: key %s version %" PRIu32 " is retired: it no longer signs or "
		   "decrypts (--public names its public key)",
		   o->name, o->version);
	return KOSCTL_FAIL;
}

/* Whether NAME is a signing key with the version asked, usable as asked;
 * KOSCTL_OK, or KOSCTL_FAIL once said why. Through kosd: the version's
 * public key (refused for a data key or a version never made) and the
 * key's oldest active version; on the store: its versions. */
static int pem_check(struct kosctl_ctx *ctx, bool remote, const struct opts *o)
{
	struct pem_find f = { .version = o->version };
	kos_key_info info;
	char *pem = NULL;
	kos_rv rv;

	if (remote) {
		rv = kos_client_pubkey_at(ctx->client, o->name, o->version, &pem, NULL);
		kos_free(pem);
		if (rv == KOS_OK && o->version != 0 && !o->public)
			rv = kos_client_keys_find(ctx->client, o->name, NULL, pem_key_of, &f);
		if (rv != KOS_OK) {
			report(ctx, remote, rv, "key pem");
			return KOSCTL_FAIL;
		}
		/* a version below the oldest active one is retired */
		if (f.found && o->version < f.key.min_version)
			return pem_retired(o);
		return KOSCTL_OK;
	}
	rv = kos_key_get_info(ctx->keys, o->name, &info);
	if (rv == KOS_OK && info.type == KOS_KEY_DEK) {
		kosctl_err("key pem: key %s is a data key, not a signing key", o->name);
		return KOSCTL_FAIL;
	}
	if (rv == KOS_OK && o->version != 0) {
		rv = kos_key_versions(ctx->keys, o->name, pem_version_of, &f);
		if (rv == 1)
			rv = KOS_OK;
		if (rv == KOS_OK && !f.found) {
			kosctl_err("key pem: key %s has no version %" PRIu32, o->name, o->version);
			return KOSCTL_FAIL;
		}
	}
	if (rv != KOS_OK) {
		report(ctx, remote, rv, "key pem");
		return KOSCTL_FAIL;
	}
	if (f.retired && !o->public)
		return pem_retired(o);
	return KOSCTL_OK;
}

/* Whether kos.conf loads, read quietly: without a store and without kosd
 * there is nothing to check the name against. */
static bool config_loads(struct kosctl_ctx *ctx)
{
	char *diag = NULL;

	if (ctx->conf == NULL && kos_config_load(ctx->config_path, &ctx->conf, &diag) != KOS_OK)
		ctx->conf = NULL;
	kos_free(diag);
	return ctx->conf != NULL;
}

static int write_file(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "w");
	bool ok;

	if (f == NULL) {
		kosctl_err("key pem: %s: %s", path, strerror(errno));
		return KOSCTL_FAIL;
	}
	ok = fwrite(text, 1, len, f) == len;
	if (fclose(f) != 0)
		ok = false;
	if (!ok) {
		kosctl_err("key pem: %s: %s", path, strerror(errno));
		return KOSCTL_FAIL;
	}
	return KOSCTL_OK;
}

static int cmd_pem(struct kosctl_ctx *ctx, int argc, char **argv)
{
	char uri[4 + KOS_KEY_NAME_MAX + 32];
	struct opts o;
	bool remote;
	BIO *bio = NULL;
	char *text;
	long n;
	int rc = parse("key", "pem", pem_usage, "VPo", 1, argc, argv, &o);

	if (rc >= 0)
		return rc;
	remote = kosctl_remote(ctx);
	if (!remote && !config_loads(ctx)) {
		kosctl_err("key pem: no kosd and no key store to check %s against: written "
			   "unchecked",
			   o.name);
	} else {
		if (need(ctx, &remote) != KOSCTL_OK)
			return KOSCTL_FAIL;
		if (pem_check(ctx, remote, &o) != KOSCTL_OK)
			return KOSCTL_FAIL;
	}
	/* the URI grammar the provider parses: kos:NAME[;version=N][;type=public],
	 * ;type=private being the default and not written */
	snprintf(uri, sizeof(uri), "kos:%s", o.name);
	if (o.have_version)
		snprintf(uri + strlen(uri), sizeof(uri) - strlen(uri), ";version=%" PRIu32,
			 o.version);
	if (o.public)
		snprintf(uri + strlen(uri), sizeof(uri) - strlen(uri), ";type=public");
	bio = BIO_new(BIO_s_mem());
	if (bio == NULL || PEM_write_bio(bio, KEY_URI_PEM_LABEL, "", (const unsigned char *)uri,
					 (long)strlen(uri)) <= 0 ||
	    (n = BIO_get_mem_data(bio, &text)) <= 0) {
		BIO_free(bio);
		kosctl_err("key pem: cannot write the PEM text");
		return KOSCTL_FAIL;
	}
	rc = o.output != NULL ? write_file(o.output, text, (size_t)n) : write_all(text, (size_t)n);
	BIO_free(bio);
	return rc;
}

/* --- AES-256-GCM with the caller's IV, additional data and tag length --------------- */

static void gcm_usage(FILE *f, bool enc)
{
	if (enc)
		fprintf(f,
			"usage: kosctl key gcm-encrypt NAME --iv HEX [--aad HEX] [--tag-len N]\n"
			"                              [--version V]\n"
			"\n"
			"Encrypts standard input (at most %u bytes) with AES-256-GCM under the\n"
			"current version of data key NAME, with the IV, additional data and tag\n"
			"length given (PKCS#11's CKM_AES_GCM), and writes the ciphertext with the\n"
			"tag appended (binary) on standard output, and the version used on\n"
			"standard error: decryption needs it. No envelope: never use an IV twice\n"
			"with one version.\n",
			KOS_GCM_MAX_PLAINTEXT);
	else
		fprintf(f, "usage: kosctl key gcm-decrypt NAME --version V --iv HEX [--aad HEX]\n"
			   "                              [--tag-len N]\n"
			   "\n"
			   "Decrypts standard input, AES-256-GCM ciphertext with its tag appended\n"
			   "as gcm-encrypt writes it, with version V of data key NAME, and writes\n"
			   "the plaintext on standard output. A changed bit, another IV, additional\n"
			   "data or version, or a cut tag fails with 'integrity check failed' and\n"
			   "writes nothing.\n");
	fprintf(f,
		"\n"
		"options:\n"
		"  -i, --iv HEX       the IV, %d bytes (%d hex digits)\n"
		"  -A, --aad HEX      additional authenticated data (up to %d bytes)\n"
		"  -T, --tag-len N    tag length in bytes, %d to %d (default %d)\n"
		"  -V, --version V    %s\n"
		"  -h, --help         show this help\n",
		KOS_GCM_IV_LEN, 2 * KOS_GCM_IV_LEN, KOS_GCM_AAD_MAX, KOS_GCM_TAG_MIN,
		KOS_GCM_TAG_MAX, KOS_GCM_TAG_MAX,
		enc ? "refuse unless V is the current version" : "the version encrypted with");
}

static void gcm_encrypt_usage(FILE *f)
{
	gcm_usage(f, true);
}

static void gcm_decrypt_usage(FILE *f)
{
	gcm_usage(f, false);
}

/* A hex option into *out (kos_secret_free(*out, *len)); false after saying
 * why. */
static bool hex_arg(const char *what, const char *opt, const char *hex, size_t max, uint8_t **out,
		    size_t *len)
{
	size_t n = hex != NULL ? strlen(hex) : 0;

	*out = NULL;
	*len = 0;
	if (n % 2 != 0 || n / 2 > max) {
		kosctl_err("%s: --%s wants an even number of hex digits, at most %zu bytes", what,
			   opt, max);
		return false;
	}
	*out = malloc(n / 2 + 1);
	if (*out == NULL) {
		kosctl_err("%s: out of memory", what);
		return false;
	}
	if (n > 0 && kos_hex_decode(hex, n, *out) != KOS_OK) {
		kosctl_err("%s: --%s is not hex", what, opt);
		kos_secret_free(*out, n / 2 + 1);
		*out = NULL;
		return false;
	}
	*len = n / 2;
	return true;
}

static int cmd_gcm(struct kosctl_ctx *ctx, int argc, char **argv, bool enc)
{
	const char *what = enc ? "key gcm-encrypt" : "key gcm-decrypt";
	const char *sub = enc ? "gcm-encrypt" : "gcm-decrypt";
	kos_access_result res;
	kos_gcm_params p;
	unsigned char *buf = NULL;
	uint8_t *iv = NULL, *aad = NULL, *out = NULL;
	size_t len = 0, cap = 0, iv_len = 0, aad_len = 0, out_len = 0, tag_len = KOS_GCM_TAG_MAX;
	uint32_t version = 0;
	struct opts o;
	bool remote;
	kos_rv rv;
	int rc = parse("key", sub, enc ? gcm_encrypt_usage : gcm_decrypt_usage, "iATV", 1, argc,
		       argv, &o);

	memset(&res, 0, sizeof(res));
	if (rc >= 0)
		return rc;
	if (o.iv == NULL) {
		kosctl_err("%s: --iv is required", what);
		return usage_hint("key", sub);
	}
	if (!enc && !o.have_version) {
		kosctl_err("%s: --version is required (no envelope names it)", what);
		return usage_hint("key", sub);
	}
	if (o.tag_len != NULL) {
		uint32_t t;

		if (!parse_version(o.tag_len, &t) || t > 255) {
			kosctl_err("%s: --tag-len wants a number of bytes, not '%.40s'", what,
				   o.tag_len);
			return usage_hint("key", sub);
		}
		tag_len = t;
	}
	if (!hex_arg(what, "iv", o.iv, 64, &iv, &iv_len) ||
	    !hex_arg(what, "aad", o.aad, KOS_GCM_AAD_MAX, &aad, &aad_len)) {
		rc = KOSCTL_USAGE;
		goto out;
	}
	p = (kos_gcm_params){ .iv = iv, .iv_len = iv_len, .aad = aad, .aad_len = aad_len,
			      .tag_len = tag_len };
	/* the parameters' own words, before anything is read or asked */
	if (kos_aead_gcm_check(iv_len, aad_len, tag_len, enc ? 0 : tag_len, !enc) != KOS_OK) {
		kosctl_err("%s: %s", what, kos_last_error());
		rc = KOSCTL_USAGE;
		goto out;
	}
	if (need(ctx, &remote) != KOSCTL_OK) {
		rc = KOSCTL_FAIL;
		goto out;
	}
	if (read_stdin(KOS_GCM_MAX_PLAINTEXT + KOS_GCM_TAG_MAX, &buf, &len, &cap) != KOS_OK) {
		rc = KOSCTL_FAIL;
		goto out;
	}
	if (remote) {
		kos_client_gcm cp = { .iv = iv, .iv_len = iv_len, .aad = aad, .aad_len = aad_len,
				      .tag_len = tag_len };

		if (enc)
			rv = kos_client_gcm_encrypt(ctx->client, o.name, &cp, buf, len, &out,
						    &out_len, &version);
		else
			rv = kos_client_gcm_decrypt(ctx->client, o.name, o.version, &cp, buf, len,
						    &out, &out_len);
		/* the client library encrypts with the current version only */
		if (rv == KOS_OK && enc && o.have_version && version != o.version) {
			kosctl_err("%s: key %s version %" PRIu32 " is not current (%" PRIu32 ")",
				   what, o.name, o.version, version);
			rc = KOSCTL_FAIL;
			goto out;
		}
		if (rv == KOS_OK && !enc)
			version = o.version;
	} else {
		if (kosctl_need_access(ctx) != KOSCTL_OK) {
			rc = KOSCTL_FAIL;
			goto out;
		}
		if (enc)
			rv = kos_access_gcm_encrypt(ctx->access, ctx->admin, KOSCTL_ADMIN_SCOPE,
						    o.name, o.version, &p, buf, len, &res);
		else
			rv = kos_access_gcm_decrypt(ctx->access, ctx->admin, KOSCTL_ADMIN_SCOPE,
						    o.name, o.version, &p, buf, len, &res);
		if (rv == KOS_OK && res.delivery == KOS_DELIVER_REFUSED) {
			rc = kosctl_refused(ctx, &res, what);
			goto out;
		}
		if (rv == KOS_OK) {
			ctx->tier = kos_tier_name(res.tier);
			out = res.data;
			out_len = res.data_len;
			version = res.version;
			res.data = NULL;
		}
	}
	if (rv != KOS_OK) {
		if (rv == KOS_E_INTEGRITY && !remote)
			kosctl_err("%s: %s: %s", what, kos_strerror(rv), kos_last_error());
		else
			report(ctx, remote, rv, what);
		rc = KOSCTL_FAIL;
		goto out;
	}
	rc = write_all(out, out_len);
	if (rc == KOSCTL_OK && enc)
		fprintf(stderr, "kosctl: key %s version %" PRIu32 "\n", o.name, version);
out:
	kos_access_result_clear(&res);
	kos_secret_free(out, out_len);
	kos_secret_free(buf, cap);
	kos_secret_free(aad, aad_len + 1);
	kos_secret_free(iv, iv_len + 1);
	return rc;
}

static int cmd_gcm_encrypt(struct kosctl_ctx *ctx, int argc, char **argv)
{
	return cmd_gcm(ctx, argc, argv, true);
}

static int cmd_gcm_decrypt(struct kosctl_ctx *ctx, int argc, char **argv)
{
	return cmd_gcm(ctx, argc, argv, false);
}

/* --- certificates beside signing keys ----------------------------------------------- */

static void cert_set_usage(FILE *f)
{
	fprintf(f, "usage: kosctl key cert set NAME FILE [--version V]\n"
		   "\n"
		   "Stores the X.509 certificate in FILE (DER or PEM; - reads standard input)\n"
		   "beside signing key NAME (default: its current version), replacing the one\n"
		   "it had. It must carry that version's public key. Through kosd it needs\n"
		   "certify:NAME.\n"
		   "\n"
		   "options:\n"
		   "  -V, --version V  the version (default: current)\n"
		   "  -h, --help       show this help\n");
}

static void cert_show_usage(FILE *f)
{
	fprintf(f, "usage: kosctl key cert show NAME [--pem] [--version V]\n"
		   "\n"
		   "Writes the certificate stored beside signing key NAME (default: its\n"
		   "current version) on standard output: DER (binary), or PEM with --pem.\n"
		   "\n"
		   "options:\n"
		   "      --pem        PEM text instead of DER\n"
		   "  -V, --version V  the version (default: current)\n"
		   "  -h, --help       show this help\n");
}

/* FILE's certificate as DER into *der (OPENSSL_free()); PEM is converted,
 * anything else handed on as it is for the key service to judge. */
static int cert_read(const char *what, const char *file, uint8_t **der, size_t *len)
{
	static const char pem_tag[] = "-----BEGIN CERTIFICATE-----";
	unsigned char *buf = NULL;
	size_t n = 0, cap = 0;
	kos_rv rv;

	*der = NULL;
	*len = 0;
	if (strcmp(file, "-") == 0) {
		rv = kosctl_read_all(stdin, 4 * KOS_KEY_CERT_MAX, &buf, &n, &cap);
	} else {
		FILE *f = fopen(file, "rb");

		if (f == NULL) {
			kosctl_err("%s: %s: %s", what, file, strerror(errno));
			return KOSCTL_FAIL;
		}
		rv = kosctl_read_all(f, 4 * KOS_KEY_CERT_MAX, &buf, &n, &cap);
		fclose(f);
	}
	if (rv != KOS_OK)
		return KOSCTL_FAIL; /* kosctl_read_all() said why */
	if (n >= sizeof(pem_tag) - 1 && memmem(buf, n, pem_tag, sizeof(pem_tag) - 1) != NULL) {
		BIO *bio = BIO_new_mem_buf(buf, (int)n);
		X509 *x = bio != NULL ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
		int dl = x != NULL ? i2d_X509(x, der) : -1;

		X509_free(x);
		BIO_free(bio);
		kos_secret_free(buf, cap);
		if (dl <= 0) {
			kosctl_err("%s: %s: not a PEM certificate", what, file);
			return KOSCTL_FAIL;
		}
		*len = (size_t)dl;
		return KOSCTL_OK;
	}
	*der = OPENSSL_malloc(n > 0 ? n : 1);
	if (*der == NULL) {
		kos_secret_free(buf, cap);
		kosctl_err("%s: out of memory", what);
		return KOSCTL_FAIL;
	}
	memcpy(*der, buf, n);
	*len = n;
	kos_secret_free(buf, cap);
	return KOSCTL_OK;
}

static int cmd_cert_set(struct kosctl_ctx *ctx, int argc, char **argv)
{
	uint8_t *der = NULL;
	size_t len = 0;
	uint32_t got = 0;
	struct opts o;
	bool remote;
	kos_rv rv;
	int rc = parse("key cert", "set", cert_set_usage, "V", 3, argc, argv, &o);

	if (rc >= 0)
		return rc;
	if (need(ctx, &remote) != KOSCTL_OK)
		return KOSCTL_FAIL;
	if (cert_read("key cert set", o.file, &der, &len) != KOSCTL_OK)
		return KOSCTL_FAIL;
	if (len == 0) {
		kosctl_err("key cert set: %s is empty", o.file);
		OPENSSL_free(der);
		return KOSCTL_FAIL;
	}
	if (remote)
		rv = kos_client_cert_set(ctx->client, o.name, o.version, der, len);
	else
		rv = kos_key_cert_set(ctx->keys, o.name, o.version, der, len, &got);
	OPENSSL_free(der);
	if (rv != KOS_OK) {
		report(ctx, remote, rv, "key cert set");
		return KOSCTL_FAIL;
	}
	if (remote || got == 0)
		printf("certificate stored for %s\n", o.name);
	else
		printf("certificate stored for %s version %" PRIu32 "\n", o.name, got);
	return KOSCTL_OK;
}

static int cmd_cert_show(struct kosctl_ctx *ctx, int argc, char **argv)
{
	uint8_t *der = NULL;
	char *pem = NULL;
	size_t len = 0;
	struct opts o;
	bool remote;
	kos_rv rv;
	int rc = parse("key cert", "show", cert_show_usage, "Vp", 1, argc, argv, &o);

	if (rc >= 0)
		return rc;
	if (need(ctx, &remote) != KOSCTL_OK)
		return KOSCTL_FAIL;
	if (remote)
		rv = kos_client_cert_get(ctx->client, o.name, o.version, &der, &len);
	else
		rv = kos_key_cert_get(ctx->keys, o.name, o.version, &der, &len, NULL);
	if (rv == KOS_OK && o.pem)
		rv = kos_key_cert_pem(der, len, &pem);
	if (rv != KOS_OK) {
		report(ctx, remote, rv, "key cert show");
		kos_free(der);
		return KOSCTL_FAIL;
	}
	if (o.pem) {
		fputs(pem, stdout);
		rc = KOSCTL_OK;
	} else {
		rc = write_all(der, len);
	}
	kos_free(pem);
	kos_free(der);
	return rc;
}

static void cert_remove_usage(FILE *f)
{
	fprintf(f, "usage: kosctl key cert remove NAME [--version V]\n"
		   "\n"
		   "Removes the certificate stored beside signing key NAME (default: its\n"
		   "current version; a retired version's too). The key stays. Through kosd it\n"
		   "needs certify:NAME.\n"
		   "\n"
		   "options:\n"
		   "  -V, --version V  the version (default: current)\n"
		   "  -h, --help       show this help\n");
}

static int cmd_cert_remove(struct kosctl_ctx *ctx, int argc, char **argv)
{
	struct opts o;
	kos_rv rv;
	int rc = parse("key cert", "remove", cert_remove_usage, "V", 1, argc, argv, &o);

	if (rc >= 0)
		return rc;
	if (kosctl_remote(ctx)) {
		char path[64 + KOS_KEY_NAME_MAX];

		snprintf(path, sizeof(path), "/v1/keys/%s/certificate/remove", o.name);
		if (kosctl_call(ctx, "key cert remove", "POST", path,
				o.have_version
				    ? json_pack("{s:I}", "version", (json_int_t)o.version)
				    : json_object(),
				NULL) != KOSCTL_OK)
			return KOSCTL_FAIL;
		printf("certificate removed from %s\n", o.name);
		return KOSCTL_OK;
	}
	if (kosctl_need_keys(ctx) != KOSCTL_OK)
		return KOSCTL_FAIL;
	rv = kos_key_cert_remove(ctx->keys, o.name, o.version);
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "key cert remove");
		return KOSCTL_FAIL;
	}
	printf("certificate removed from %s\n", o.name);
	return KOSCTL_OK;
}

static int cmd_cert(struct kosctl_ctx *ctx, int argc, char **argv)
{
	static const struct kosctl_cmd cmds[] = {
	    {"set", cmd_cert_set, "store a certificate beside a signing key"},
	    {"show", cmd_cert_show, "print the certificate stored beside a signing key"},
	    {"remove", cmd_cert_remove, "remove the certificate stored beside a signing key"},
	    {NULL, NULL, NULL},
	};

	return kosctl_dispatch(ctx, "key cert", cmds, argc, argv);
}

int kosctl_cmd_key(struct kosctl_ctx *ctx, int argc, char **argv)
{
	static const struct kosctl_cmd cmds[] = {
	    {"create", cmd_create, "create a data key or a signing key"},
	    {"list", cmd_list, "list the keys"},
	    {"show", cmd_show, "show a key's versions, check values and share locations"},
	    {"rotate", cmd_rotate, "make a new current version (or every one due)"},
	    {"retire", cmd_retire, "retire an old version, destroying its shares or key pair"},
	    {"destroy", cmd_destroy, "destroy a key and every version of it (--yes)"},
	    {"encrypt", cmd_encrypt, "encrypt standard input into an envelope"},
	    {"decrypt", cmd_decrypt, "decrypt an envelope from standard input"},
	    {"rewrap", cmd_rewrap, "re-encrypt envelope files under the current version"},
	    {"sign", cmd_sign, "sign standard input inside the signer token"},
	    {"pubkey", cmd_pubkey, "print a signing key's public key as PEM"},
	    {"pem", cmd_pem, "write a PEM file naming a key for the kos OpenSSL provider"},
	    {"gcm-encrypt", cmd_gcm_encrypt, "AES-256-GCM with a given IV, AAD and tag length"},
	    {"gcm-decrypt", cmd_gcm_decrypt, "open what gcm-encrypt wrote, with its version"},
	    {"cert", cmd_cert, "store, show or remove the certificate beside a signing key"},
	    {NULL, NULL, NULL},
	};

	return kosctl_dispatch(ctx, "key", cmds, argc, argv);
}

/* --- fsck ------------------------------------------------------------------------ */

static void fsck_usage(FILE *f)
{
	fprintf(f, "usage: kosctl fsck [--repair]\n"
		   "\n"
		   "Looks for what an interrupted key creation or rotation leaves: versions\n"
		   "in the state store that never completed, and kos share objects or key\n"
		   "pairs on the tokens that no active version owns (a retired version's\n"
		   "objects a token was down for, too). A version another live process is\n"
		   "still making is left alone. Prints one line per finding; with --repair,\n"
		   "destroys those objects and removes those versions.\n"
		   "\n"
		   "options:\n"
		   "      --repair  remove what is found\n"
		   "  -h, --help    show this help\n"
		   "\n"
		   "Exit status: 0 nothing found, or everything found repaired; 1 something\n"
		   "found and not repaired (or a failure); 2 usage error.\n");
}

static void fsck_line(const char *line, void *arg)
{
	(void)arg;
	kosctl_progress_clear();
	printf("%s\n", line);
	fflush(stdout);
	kosctl_progress_step(1);
}

int kosctl_cmd_fsck(struct kosctl_ctx *ctx, int argc, char **argv)
{
	unsigned found = 0;
	struct opts o;
	kos_rv rv;
	int rc = parse("fsck", NULL, fsck_usage, "r", 0, argc, argv, &o);

	if (rc >= 0)
		return rc;
	if (kosctl_need_keys(ctx) != KOSCTL_OK)
		return KOSCTL_FAIL;
	/* every token is searched: seconds with many objects or slow tokens */
	kosctl_progress_start(0, o.repair ? "fsck --repair" : "fsck");
	rv = kos_keys_fsck(ctx->keys, o.repair, fsck_line, NULL, &found);
	kosctl_progress_done();
	fflush(stdout);
	if (rv != KOS_OK) {
		kosctl_err_rv(rv, "fsck");
		return KOSCTL_FAIL;
	}
	if (found == 0) {
		printf("fsck: clean\n");
		return KOSCTL_OK;
	}
	if (o.repair) {
		printf("fsck: %u finding%s repaired\n", found, found == 1 ? "" : "s");
		return KOSCTL_OK;
	}
	kosctl_err("fsck: %u finding%s; run 'kosctl fsck --repair' to remove %s", found,
		   found == 1 ? "" : "s", found == 1 ? "it" : "them");
	return KOSCTL_FAIL;
}
