/* kosctl: shared declarations of the command-line tool. */
#ifndef KOSCTL_H
#define KOSCTL_H

#include <kos/client.h>
#include <kos/server.h>

#include <jansson.h>

#include <stdbool.h>
#include <stdio.h>

/* Exit status of every command. */
enum { KOSCTL_OK = 0, KOSCTL_FAIL = 1, KOSCTL_USAGE = 2 };

/* What the global options set; resources are opened on first use and closed
 * by main. */
struct kosctl_ctx {
	const char *config_path; /* --config, $KOS_CONF, or the default */
	bool json;               /* --json: listings as JSON */
	bool verbose;            /* --verbose: notes such as a decryption's path */
	bool local;              /* --local: never through kosd */
	const char *server;      /* --server, $KOS_SERVER or kos.conf's; see kosctl_remote() */
	bool server_checked;
	char *cred_file;         /* --credential-file or $KOS_CREDENTIAL_FILE (a copy) */
	kos_client *client;      /* opened by kosctl_need_client() */
	kos_config *conf;
	kos_policy *policy;
	kos_store *store;
	kos_trust *trust;
	kos_hsm *hsm;     /* opened by kosctl_need_keys() */
	kos_keys *keys;   /* borrows policy, store and hsm: freed before them */
	kos_services *services; /* borrows store and hsm: freed before them */
	kos_ca *ca;       /* borrows policy, store, trust and hsm: freed before them */
	kos_access *access; /* borrows keys and trust: freed before them */
	/* the pipeline of local commands (kosctl_need_access): they act as the
	 * local administrator "USER@local", with every scope but share:; what
	 * they decided is recorded in the ledger by main */
	char admin[65];
	const char *tier;	  /* the decision's tier (static), NULL: none */
	bool refused;		  /* the pipeline refused it */
	const char *reason;	  /* why (static), for the ledger */
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
/* Prints v (taken) and a newline on stdout with jansson's flags; KOSCTL_OK,
 * or KOSCTL_FAIL (reported) when v is NULL or stdout fails. */
int kosctl_print_json(json_t *v, size_t flags);

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

/* Keys and trust, then the tiered access of the local administrator
 * (ctx->admin), so that local key operations take the pipeline as kosd's
 * routes do. */
int kosctl_need_access(struct kosctl_ctx *ctx);
/* The scope of the local administrator. */
#define KOSCTL_ADMIN_SCOPE "*:*"
/* A refusal of the pipeline for a local command: notes it for the ledger,
 * prints "kosctl: what: refused: REASON" and returns KOSCTL_FAIL. */
int kosctl_refused(struct kosctl_ctx *ctx, const kos_access_result *res, const char *what);

/* kosctl through kosd (tools/kosctl/remote.c). */

/* Whether commands kosd serves go through it: --server, else $KOS_SERVER,
 * else kos.conf's server (read quietly: without one, the local path reports
 * a bad kos.conf); never with --local. */
bool kosctl_remote(struct kosctl_ctx *ctx);
/* Opens the client handle for kosctl_remote()'s server with the credential
 * of --credential-file, $KOS_CREDENTIAL_FILE or $KOS_CREDENTIAL; enrolling,
 * without one. Prints the reason and returns KOSCTL_FAIL on failure. */
int kosctl_need_client(struct kosctl_ctx *ctx, bool enrolling);
/* "kosctl: what: refused by kosd (CODE): MESSAGE", or as kosctl_err_rv()
 * when kosd did not refuse (transport, local checks). */
void kosctl_err_remote(struct kosctl_ctx *ctx, kos_rv rv, const char *what);
/* Sends body (taken, may be NULL for GET) to path; on success *answer
 * (may be NULL) receives kosd's answer, whose secret strings the caller
 * wipes (kosctl_json_wipe) before json_decref. Prints refusals as
 * kosctl_err_remote(). Returns KOSCTL_OK or KOSCTL_FAIL. */
int kosctl_call(struct kosctl_ctx *ctx, const char *what, const char *method, const char *path,
		json_t *body, json_t **answer);
/* Wipes a string member of a JSON object in place (jansson frees without). */
void kosctl_json_wipe(json_t *obj, const char *key);
/* Members of kosd's answers, for printing: a string ("-" when absent or
 * not a string), a number (0 when not one), an integer, a boolean. */
const char *kosctl_jstr(const json_t *obj, const char *key);
double kosctl_jnum(const json_t *obj, const char *key);
long long kosctl_jint(const json_t *obj, const char *key);
bool kosctl_jbool(const json_t *obj, const char *key);
/* Refuses a command with a reason when it cannot run through kosd. */
int kosctl_not_remote(const char *what, const char *why);

/* Reads all of a stream, at most max bytes; KOS_E_RANGE when larger. The
 * buffer is NUL-terminated; free it with kos_secret_free(buf, cap) where cap
 * is returned in *cap (it may hold secrets). */
kos_rv kosctl_read_all(FILE *f, size_t max, unsigned char **buf, size_t *len, size_t *cap);

/* Parses a time: "now", "+3d"/"-90s" relative to now, an ISO 8601 time in
 * UTC ("2026-12-07T10:00:00Z", kos_time_parse) or seconds since the epoch
 * ("@1700000000"). */
kos_rv kosctl_parse_time(const char *s, kos_usec *out);

/* Groups, one file each. */
int kosctl_cmd_init(struct kosctl_ctx *ctx, int argc, char **argv);
int kosctl_cmd_kms(struct kosctl_ctx *ctx, int argc, char **argv);
int kosctl_cmd_key(struct kosctl_ctx *ctx, int argc, char **argv);
int kosctl_cmd_fsck(struct kosctl_ctx *ctx, int argc, char **argv);
int kosctl_cmd_ledger(struct kosctl_ctx *ctx, int argc, char **argv);
int kosctl_cmd_config(struct kosctl_ctx *ctx, int argc, char **argv);
int kosctl_cmd_policy(struct kosctl_ctx *ctx, int argc, char **argv);
int kosctl_cmd_shamir(struct kosctl_ctx *ctx, int argc, char **argv);
int kosctl_cmd_trust(struct kosctl_ctx *ctx, int argc, char **argv);
int kosctl_cmd_service(struct kosctl_ctx *ctx, int argc, char **argv);
int kosctl_cmd_ca(struct kosctl_ctx *ctx, int argc, char **argv);
int kosctl_cmd_client(struct kosctl_ctx *ctx, int argc, char **argv);
int kosctl_cmd_credential(struct kosctl_ctx *ctx, int argc, char **argv);
int kosctl_cmd_threat(struct kosctl_ctx *ctx, int argc, char **argv);

#endif
