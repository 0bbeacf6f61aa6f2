/* The one reader of libconfig files (kos.conf and policies): a size-capped
 * read, @include refused, integer literals checked for overflow, settings
 * taken through key tables that refuse unknown names and values out of
 * range, and every problem kept as "FILE:LINE: message".
 * Thread safety: a kos_cf is used by one thread; distinct ones are independent. */
#ifndef KOS_CONFFILE_H
#define KOS_CONFFILE_H

#include "kos/internal.h"

#include <libconfig.h>

/* What differs between the files read: their caps and how messages name
 * them and their settings. */
struct kos_cf_format {
	const char *a;		   /* the file in a message: "a policy", "kos.conf" */
	const char *the;	   /* "the policy", "kos.conf" */
	const char *sep;	   /* between the names of a setting's path: "." or ": " */
	size_t max_bytes;	   /* larger files are refused */
	unsigned max_settings;	   /* libconfig is quadratic in a group's settings */
	const char *settings_hint; /* after "more than N settings; " */
};

struct kos_cf_problem;

typedef struct kos_cf {
	const char *file; /* borrowed: the path every message names */
	const struct kos_cf_format *fmt;
	struct kos_cf_problem *problems;
	size_t n_problems;
	unsigned count;	    /* every problem found, listed or not */
	int first_unlisted; /* line of the first problem past the listed ones */
	bool oom;
	bool check_files; /* files named are checked now, not when used (kosd -t) */
	/* Lines holding an integer literal libconfig truncated (already
	 * reported): integer settings there are not judged a second time. */
	int overflow_line[16];
	unsigned n_overflow;
	config_t cfg;
	bool have_cfg;
} kos_cf;

/* Reads and parses path into cf (initialised here; always kos_cf_close()
 * it). KOS_OK: kos_cf_root() is the file's root group. KOS_E_POLICY: the
 * problems are in cf (the file is too large, not text, has @include, too
 * many settings, a syntax error, an integer that does not fit).
 * KOS_E_IO (missing, unreadable, not a regular file) or KOS_E_NOMEM: the
 * thread's error detail says why, naming path. */
kos_rv kos_cf_open(kos_cf *cf, const char *path, const struct kos_cf_format *fmt);
const config_setting_t *kos_cf_root(const kos_cf *cf);
/* Hands the problems over (*diag, may be NULL) as "FILE:LINE: message"
 * lines in file order, the first also as the error detail; KOS_E_POLICY,
 * or KOS_E_NOMEM. */
kos_rv kos_cf_finish(kos_cf *cf, char **diag);
void kos_cf_close(kos_cf *cf);

void kos_cf_problem(kos_cf *cf, int line, const char *fmt, ...) KOS_PRINTF(3, 4);

/* The setting's line, at least 1. */
int kos_cf_line(const config_setting_t *s);
/* With cf->check_files: a problem at line unless path is a regular file
 * this process can read (what names the setting, e.g. "listen.tls.cert"). */
void kos_cf_check_file(kos_cf *cf, int line, const char *what, const char *path);
/* "a group", "an integer", ... for "must be X, not Y" messages. */
const char *kos_cf_type(const config_setting_t *s);
/* s with control characters as '?', cut to len - 1: safe in a one-line message. */
const char *kos_cf_printable(const char *s, char *buf, size_t len);
/* True when s is an integer whose literal did not fit (already reported). */
bool kos_cf_overflowed(const kos_cf *cf, const config_setting_t *s);
/* path + sep + name into out (name alone when path is empty). */
void kos_cf_join(char *out, size_t len, const char *path, const char *sep, const char *name);

/* --- key tables --- */

/* Longest duration accepted anywhere: keeps now + duration far from overflow. */
#define KOS_CF_DURATION_MAX_DAYS 3650
/* Longest setting path built from known names. */
#define KOS_CF_PATH_LEN 96

enum kos_cf_kind {
	KOS_CF_KIND_GROUP,    /* { ... } holding sub */
	KOS_CF_KIND_NUMBER,   /* double; an integer literal is accepted too */
	KOS_CF_KIND_INT,      /* whole number into an unsigned or a 64-bit field */
	KOS_CF_KIND_DURATION, /* string with a unit, into a kos_usec */
	KOS_CF_KIND_NAME,     /* a-z, 0-9, '_', '-' into char[size] */
	KOS_CF_KIND_STRING,   /* printable ASCII without spaces, into char[size] */
	KOS_CF_KIND_BOOL,     /* true or false, into a bool */
	KOS_CF_KIND_FN,	      /* taken by fn */
};

#define KOS_CF_REQUIRED 0x1u /* missing is an error rather than the default */
#define KOS_CF_OPEN_MIN 0x2u /* NUMBER: the range is (min, max], min refused */
#define KOS_CF_ZERO_OK	0x4u /* DURATION: 0 accepted */

struct kos_cf_key;

/* Takes s (named path) into base; returns its line, or -1 once reported. */
typedef int (*kos_cf_take_fn)(kos_cf *cf, const config_setting_t *s, const char *path,
			      const struct kos_cf_key *k, void *base);

/* One setting of a file format; a table ends with a NULL name. */
struct kos_cf_key {
	const char *name;
	enum kos_cf_kind kind;
	unsigned flags;
	size_t off;		      /* of the value in the struct being filled */
	size_t size;		      /* INT, NAME, STRING: sizeof the field */
	double min, max;	      /* NUMBER */
	long long imin, imax;	      /* INT */
	kos_usec dmin, dmax;	      /* DURATION; dmax 0: KOS_CF_DURATION_MAX_DAYS */
	const struct kos_cf_key *sub; /* GROUP: members */
	kos_cf_take_fn fn;	      /* FN */
	const char *missing;	      /* REQUIRED: after "PATH: missing", else " (required)" */
	int id;			      /* slot in lines[] for cross-field checks */
};

#define KOS_CF_NUM(n, o, lo, hi, fl, i)                                                            \
	{                                                                                          \
		.name = (n), .kind = KOS_CF_KIND_NUMBER, .flags = (fl), .off = (o), .min = (lo),   \
		.max = (hi), .id = (i)                                                             \
	}
#define KOS_CF_INT(n, o, sz, lo, hi, fl, i)                                                        \
	{                                                                                          \
		.name = (n), .kind = KOS_CF_KIND_INT, .flags = (fl), .off = (o), .size = (sz),     \
		.imin = (lo), .imax = (hi), .id = (i)                                              \
	}
#define KOS_CF_DUR(n, o, fl, i)                                                                    \
	{                                                                                          \
		.name = (n), .kind = KOS_CF_KIND_DURATION, .flags = (fl), .off = (o), .id = (i)    \
	}
#define KOS_CF_DUR_RANGE(n, o, lo, hi, fl, i)                                                      \
	{                                                                                          \
		.name = (n), .kind = KOS_CF_KIND_DURATION, .flags = (fl), .off = (o),              \
		.dmin = (lo), .dmax = (hi), .id = (i)                                              \
	}
#define KOS_CF_STR(n, o, sz, i)                                                                    \
	{                                                                                          \
		.name = (n), .kind = KOS_CF_KIND_STRING, .off = (o), .size = (sz), .id = (i)       \
	}
#define KOS_CF_BOOL(n, o, i)                                                                       \
	{                                                                                          \
		.name = (n), .kind = KOS_CF_KIND_BOOL, .off = (o), .id = (i)                       \
	}
#define KOS_CF_GROUP(n, s, i)                                                                      \
	{                                                                                          \
		.name = (n), .kind = KOS_CF_KIND_GROUP, .sub = (s), .id = (i)                      \
	}
#define KOS_CF_FN(n, f, fl, i)                                                                     \
	{                                                                                          \
		.name = (n), .kind = KOS_CF_KIND_FN, .flags = (fl), .fn = (f), .id = (i)           \
	}
#define KOS_CF_END                                                                                 \
	{                                                                                          \
		.name = NULL                                                                       \
	}

/* Takes every member of group g that keys knows into base, refuses the
 * others, and reports required members that are missing. lines[k->id]
 * gets the line of what was taken (> 0), stays 0 when absent, and is -1
 * when refused, so a bad value does not also fail a comparison; lines may
 * be NULL when no key has an id. Keeps going after a problem so that one
 * run reports them all. */
void kos_cf_walk(kos_cf *cf, const config_setting_t *g, const char *path,
		 const struct kos_cf_key *keys, void *base, int *lines);
/* Only the unknown-name part of kos_cf_walk(), for groups taken by hand. */
void kos_cf_refuse_unknown(kos_cf *cf, const config_setting_t *g, const char *path,
			   const struct kos_cf_key *keys);

#endif
