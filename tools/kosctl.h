/* kosctl: shared declarations of the command-line tool. */
#ifndef KOSCTL_H
#define KOSCTL_H

#include <kos/kos.h>

#include <stdbool.h>
#include <stdio.h>

/* Exit status of every command. */
enum { KOSCTL_OK = 0, KOSCTL_FAIL = 1, KOSCTL_USAGE = 2 };

/* What the global options set; resources are opened on first use and closed
 * by main. */
struct kosctl_ctx {
	const char *config_path; /* --config, $KOS_CONF, or the default */
	bool json;               /* --json: listings as JSON */
	kos_config *conf;
	kos_policy *policy;
	kos_store *store;
	kos_trust *trust;
	kos_hsm *hsm;     /* opened by kosctl_need_keys() */
	kos_keys *keys;   /* borrows policy, store and hsm: freed before them */
	kos_services *services; /* borrows store and hsm: freed before them */
	kos_ca *ca;       /* borrows policy, store, trust and hsm: freed before them */
};

typedef int (*kosctl_fn)(struct kosctl_ctx *ctx, int argc, char **argv);

struct kosctl_cmd {
	const char *name;
	kosctl_fn fn;
	const char *summary;
};

/* "kosctl: message" on stderr. */
void kosctl_err(const char *fmt, ...) KOS_PRINTF(1, 2);
/* Prints "kosctl: what: kos_last_error()" (or kos_strerror(rv) when empty). */
void kosctl_err_rv(kos_rv rv, const char *what);

/* Dispatches argv[1] among cmds (argv[0] is the group's name). Prints the
 * group's usage for "help", "--help", "-h" or no argument. */
int kosctl_dispatch(struct kosctl_ctx *ctx, const char *group, const struct kosctl_cmd *cmds,
		    int argc, char **argv);

/* Lazily load what a command needs; on failure print the reason and return
 * KOSCTL_FAIL. */
int kosctl_need_config(struct kosctl_ctx *ctx);
int kosctl_need_policy(struct kosctl_ctx *ctx);
int kosctl_need_store(struct kosctl_ctx *ctx);
int kosctl_need_trust(struct kosctl_ctx *ctx);
/* Configuration, policy, store, backend tokens (a token that cannot be used
 * is kept, marked unavailable: one KMS token down must not stop kosctl),
 * then the key service. */
int kosctl_need_keys(struct kosctl_ctx *ctx);
/* Configuration, store, backend tokens (as for keys), then the service
 * orchestrator. */
int kosctl_need_services(struct kosctl_ctx *ctx);
/* Configuration, policy, store and trust engine, with tokens the backend
 * tokens (as for keys), then the credential authority; without tokens it
 * verifies and administers but cannot sign. */
int kosctl_need_ca(struct kosctl_ctx *ctx, bool tokens);

/* Reads all of a stream, at most max bytes; KOS_E_RANGE when larger. The
 * buffer is NUL-terminated; free it with kos_secret_free(buf, cap) where cap
 * is returned in *cap (it may hold secrets). */
kos_rv kosctl_read_all(FILE *f, size_t max, unsigned char **buf, size_t *len, size_t *cap);

/* Parses a time: "now", "+3d"/"-90s" relative to now, or seconds since the
 * epoch ("@1700000000"). */
kos_rv kosctl_parse_time(const char *s, kos_usec *out);

/* Groups, one file each. */
int kosctl_cmd_init(struct kosctl_ctx *ctx, int argc, char **argv);
int kosctl_cmd_kms(struct kosctl_ctx *ctx, int argc, char **argv);
int kosctl_cmd_key(struct kosctl_ctx *ctx, int argc, char **argv);
int kosctl_cmd_fsck(struct kosctl_ctx *ctx, int argc, char **argv);
int kosctl_cmd_policy(struct kosctl_ctx *ctx, int argc, char **argv);
int kosctl_cmd_shamir(struct kosctl_ctx *ctx, int argc, char **argv);
int kosctl_cmd_trust(struct kosctl_ctx *ctx, int argc, char **argv);
int kosctl_cmd_service(struct kosctl_ctx *ctx, int argc, char **argv);
int kosctl_cmd_ca(struct kosctl_ctx *ctx, int argc, char **argv);
int kosctl_cmd_client(struct kosctl_ctx *ctx, int argc, char **argv);
int kosctl_cmd_credential(struct kosctl_ctx *ctx, int argc, char **argv);
int kosctl_cmd_threat(struct kosctl_ctx *ctx, int argc, char **argv);

#endif
