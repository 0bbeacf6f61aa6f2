/* The one internal interface between libkos and a state store backend.
 *
 * Callers (the trust engine, the key service, later credentials) use only the
 * kos_store_* wrappers below; a backend (SQLite, memory, later PostgreSQL)
 * supplies a struct kos_store_ops and embeds struct kos_store as the first
 * member of its own handle. Adding a backend touches store.c's dispatch and
 * nothing else.
 *
 * Thread safety: every operation may be called from several threads on one
 * handle; backends serialise internally. Never installed. */
#ifndef KOS_STORE_BACKEND_H
#define KOS_STORE_BACKEND_H

#include "kos/internal.h"
#include "kos/ledger_chain.h"

#include <kos/cred.h>

/* The schema this code writes; a store at a higher version is refused. */
#define KOS_STORE_SCHEMA_VERSION 7

/* One client's persistent trust state, exactly as stored. Factors are as of
 * last_activity: decay to "now" is the trust engine's business. Windows and
 * buckets are open when their count is non-zero. */
struct kos_trust_state {
	char client[65];
	double factor[KOS_FACTOR_COUNT];
	kos_usec created;
	kos_usec last_activity;
	uint64_t observations;
	uint64_t integrity_failures;
	uint64_t scope_violations;

	/* request-rate bucket being counted */
	kos_usec rate_start;
	uint64_t rate_count;
	bool rate_flagged; /* this bucket already cost an anomaly penalty */
	/* Welford's running mean and M2 of completed non-empty buckets' counts */
	uint64_t base_n;
	double base_mean;
	double base_m2;

	/* scope violations in the current scope window */
	kos_usec scope_start;
	uint64_t scope_count;

	/* use in the current quota window */
	kos_usec usage_start;
	uint64_t usage_ops;
	uint64_t usage_bytes;

	/* The score ceiling set by the last penalty (kos/trust.c), as of
	 * ceiling_at; it rises toward 100 with time. Negative: not known (a row
	 * written before schema version 6). */
	double ceiling;
	kos_usec ceiling_at;
};

/* Called by trust_update with the client's state: the stored one, or (when
 * created is true) a zeroed one with only client set. Returning non-zero
 * abandons the update (nothing is written) and that value is returned.
 * Runs inside the store's lock and transaction: it must not call out. */
typedef kos_rv (*kos_trust_update_fn)(struct kos_trust_state *state, bool created, void *arg);

/* --- keys (schema version 3) ---------------------------------------------
 * A key has versions; a version is made in state creating (written before
 * anything goes to a token), becomes active in the one transaction that
 * records where its shares or key pair are, and may later be retired. Only
 * active versions encrypt, decrypt or sign; the current version is the
 * highest active one. Version numbers are never reused while a row holds
 * them: a new version is one above every version the key has. */

enum kos_key_state {
	KOS_KEY_STATE_CREATING = 0,
	KOS_KEY_STATE_ACTIVE = 1,
	KOS_KEY_STATE_RETIRED = 2,
};

#define KOS_STORE_LABEL_MAX    128  /* a PKCS#11 label kos writes (KOS_HSM_LABEL_MAX) */
#define KOS_STORE_SPKI_MAX     2048 /* DER SubjectPublicKeyInfo: RSA-3072 needs 422 */
#define KOS_STORE_CREATOR_MAX  127  /* "HOST:PID" of the process making a version */
#define KOS_STORE_SET_NAME_MAX 31

struct kos_store_key {
	char name[KOS_KEY_NAME_MAX + 1];
	kos_key_type type;
	kos_usec created;
};

struct kos_store_share_set {
	char name[KOS_STORE_SET_NAME_MAX + 1];
	unsigned n, k;
};

/* Where one share of a DEK version is: the object labelled label on the
 * token whose kos name is token. */
struct kos_store_share {
	char set[KOS_STORE_SET_NAME_MAX + 1];
	uint8_t x;
	char token[KOS_TOKEN_NAME_MAX + 1];
	char label[KOS_STORE_LABEL_MAX + 1];
};

struct kos_store_version {
	char name[KOS_KEY_NAME_MAX + 1];
	uint32_t version;
	enum kos_key_state state;
	kos_usec created;
	bool has_kcv; /* DEK: the key check value */
	uint8_t kcv[KOS_KCV_LEN];
	size_t spki_len; /* signing: the public key, 0 for a DEK */
	uint8_t spki[KOS_STORE_SPKI_MAX];
	char token[KOS_TOKEN_NAME_MAX + 1]; /* signing: the key pair's token and label */
	char label[KOS_STORE_LABEL_MAX + 1];
	char creator[KOS_STORE_CREATOR_MAX + 1];
	unsigned n_sets; /* DEK: the share sets, in the policy's order */
	struct kos_store_share_set sets[KOS_POLICY_MAX_SHARE_SETS];
	size_t n_shares;		/* DEK: every share of every set */
	struct kos_store_share *shares; /* malloc'd; kos_store_version_clear() */
};

/* A signing key version's X.509 certificate (schema version 7), DER, as
 * kos_key_cert_set() checked it; public, so kept as it came. */
#define KOS_STORE_CERT_MAX 16384

/* Frees v->shares and zeroes v; NULL-safe. */
void kos_store_version_clear(struct kos_store_version *v);
/* Clears n versions and frees the array. */
void kos_store_versions_free(struct kos_store_version *v, size_t n);

/* --- services and credentials (schema version 4) -------------------------
 * Services (kos/service.c): one row per registered service. Credentials
 * (kos/ca.c, kos/cred.c): CA keys, registered clients, enrollment secrets
 * (only their SHA-256), revocations, and a credential revision that every
 * change of CA keys or revocations bumps in the same transaction, so other
 * processes notice with one read (or, on this machine, with the hint). */

struct kos_service_row {
	char name[65];	       /* 1..64 of [A-Za-z0-9._-] */
	char ops[512];	       /* comma-separated operation names */
	uint32_t seed_version; /* 1, 2, ... */
	uint8_t wrapped_seed[128];
	size_t wrapped_len; /* the seed encrypted inside an HSM token */
	kos_usec created, rotated;
};

/* A CA key: the key pair labelled label on the token named token. The
 * current key has retired == 0 (and expires == 0); at most one exists. */
struct kos_store_ca_key {
	char kid[KOS_CA_KID_LEN + 1];
	char token[KOS_TOKEN_NAME_MAX + 1];
	char label[KOS_STORE_LABEL_MAX + 1];
	size_t spki_len;
	uint8_t spki[KOS_STORE_SPKI_MAX];
	kos_usec created, retired, expires;
};

struct kos_store_cred_client {
	char name[65];
	char scope[KOS_SCOPE_MAX + 1];
	kos_usec created;
	bool disabled;
	kos_usec secret_expires; /* read only: the latest unused secret's expiry, 0: none */
};

#define KOS_STORE_HASH_LEN 32

struct kos_store_enrollment {
	uint8_t hash[KOS_STORE_HASH_LEN]; /* SHA-256 of the secret's text */
	char client[65];
	kos_usec created, expires;
	kos_usec used; /* 0: unused */
};

enum kos_revocation_kind {
	KOS_REVOKE_JTI = 0,    /* value: the jti */
	KOS_REVOKE_CLIENT = 1, /* value: the client; issued at or before `before` */
	KOS_REVOKE_BEFORE = 2, /* value: ""; every credential issued at or before `before` */
};

/* One per (kind, value): adding an existing one keeps the later before
 * and expires of the two. */
struct kos_store_revocation {
	enum kos_revocation_kind kind;
	char value[65];
	kos_usec before; /* CLIENT, BEFORE; 0 for JTI */
	kos_usec created;
	kos_usec expires; /* pruned after this */
};

/* "jti", "client", "before"; NULL for another value. */
const char *kos_revocation_kind_name(enum kos_revocation_kind k);

/* What kos_store_revocation_each calls for each row. */
typedef kos_rv (*kos_store_revocation_fn)(const struct kos_store_revocation *r, void *arg);

/* --- the decision ledger (schema version 5) ------------------------------
 * Append-only: entries are written by ledger_append only, never changed or
 * removed by kos. The chain's encoding, hash and linking are
 * kos/ledger_chain.c's (kos_ledger_chain_link(), called inside the append
 * transaction); the entry checks are kos/ledger.c's, which calls down into
 * the backends and is never called by them. A backend stores what it is
 * given and reads back exactly what it has. */

/* One stored entry as read. malformed: the row cannot be an entry kos
 * wrote (a text too long or not text, a time not an integer, a hash not 32
 * bytes); e then holds what could be read. */
struct kos_store_ledger_row {
	kos_ledger_entry e;
	bool malformed;
};

struct kos_store_ops {
	const char *name; /* "sqlite", "memory" */
	void (*free)(kos_store *st);
	int (*schema_version)(kos_store *st);
	/* Whether this handle's commits are on disk before they return, power
	 * loss included (SQLite: synchronous=FULL, an fsync of the WAL per
	 * commit), or only survive the process's death (synchronous=NORMAL,
	 * the default). NULL in a backend with no disk (memory): setting it
	 * is refused, synced reads false. */
	kos_rv (*set_synced)(kos_store *st, bool on);
	/* What the handle does now, read back from the backend itself. */
	kos_rv (*synced)(kos_store *st, bool *on);
	/* KOS_E_NOTFOUND for an unknown client (detail set). */
	kos_rv (*trust_get)(kos_store *st, const char *client, struct kos_trust_state *out);
	/* Loads or initialises, calls fn, writes back: one atomic step, across
	 * processes for a shared backend. */
	kos_rv (*trust_update)(kos_store *st, const char *client, kos_trust_update_fn fn,
			       void *arg);
	/* trust_update for n clients in order (a client may repeat: each
	 * call sees the previous one's state), fn called with args[i], in ONE
	 * transaction: all are written or none (the memory backend keeps the
	 * updates before a failure, which only running out of memory causes). */
	kos_rv (*trust_update_batch)(kos_store *st, size_t n, const char *const *clients,
				     kos_trust_update_fn fn, void *const *args);
	/* Up to max (>= 1) clients whose names come after `after` ("" for the
	 * first), in strcmp() order of names; *out is malloc'd (free()), NULL
	 * when *n is 0. Fewer than max: the last page. A scan of a million
	 * clients thus holds one page at a time, and the handle's lock only
	 * while a page is read. */
	kos_rv (*trust_page)(kos_store *st, const char *after, size_t max,
			     struct kos_trust_state **out, size_t *n);
	/* KOS_E_NOTFOUND for an unknown client. */
	kos_rv (*trust_delete)(kos_store *st, const char *client);

	/* Keys. Names must be valid (kos_key_name_valid); each call is one
	 * transaction. */
	/* Writes a new version of name in state creating with v's created,
	 * kcv and creator (the rest of v is ignored); *version receives its
	 * number. With key (a new key), the key's row is written in the same
	 * transaction: KOS_E_EXISTS when the name is taken. Without it the key
	 * must exist: KOS_E_NOTFOUND. */
	kos_rv (*key_version_begin)(kos_store *st, const struct kos_store_key *key,
				    const char *name, const struct kos_store_version *v,
				    uint32_t *version);
	/* Makes v->name/v->version active and records v's sets, shares, spki,
	 * token and label, all in one transaction. KOS_E_NOTFOUND when that
	 * version is not in state creating (fsck removed it meanwhile). */
	kos_rv (*key_version_activate)(kos_store *st, const struct kos_store_version *v);
	/* Deletes a version in state creating, and the key's row when no
	 * version is left. KOS_E_NOTFOUND when there is no such version. */
	kos_rv (*key_version_abort)(kos_store *st, const char *name, uint32_t version);
	/* Active to retired, deleting the version's share rows (sets, spki,
	 * token and label stay). KOS_E_NOTFOUND when it is not active,
	 * KOS_E_INVALID when it is the current version. */
	kos_rv (*key_version_retire)(kos_store *st, const char *name, uint32_t version);
	/* Deletes key name with every version (any state), share set, share
	 * and certificate, in one transaction: the name is free afterwards.
	 * The tokens' objects are the caller's (kos_key_destroy()). KOS_E_NOTFOUND
	 * for an unknown key. */
	kos_rv (*key_delete)(kos_store *st, const char *name);
	/* KOS_E_NOTFOUND for an unknown key (detail set). */
	kos_rv (*key_get)(kos_store *st, const char *name, struct kos_store_key *out);
	/* Every key in strcmp() order of names; *out is malloc'd (free()). */
	kos_rv (*key_list)(kos_store *st, struct kos_store_key **out, size_t *n);
	/* One version with its sets and shares, read in one snapshot; version 0
	 * is the current one. KOS_E_NOTFOUND for an unknown key or version, or
	 * (version 0) a key with no active version. Clear *out after use. */
	kos_rv (*key_version_get)(kos_store *st, const char *name, uint32_t version,
				  struct kos_store_version *out);
	/* Every version of name in any state, oldest first, with sets and
	 * shares (kos_store_versions_free()). KOS_E_NOTFOUND for an unknown key. */
	kos_rv (*key_versions)(kos_store *st, const char *name, struct kos_store_version **out,
			       size_t *n);
	/* Stores der (1..KOS_STORE_CERT_MAX bytes) as the certificate of
	 * name/version, replacing one stored before, in one transaction.
	 * KOS_E_NOTFOUND when that version is not active. */
	kos_rv (*key_cert_put)(kos_store *st, const char *name, uint32_t version,
			       const uint8_t *der, size_t len, kos_usec created);
	/* The certificate of name/version; *der is malloc'd (free()).
	 * KOS_E_NOTFOUND when none is stored. */
	kos_rv (*key_cert_get)(kos_store *st, const char *name, uint32_t version, uint8_t **der,
			       size_t *len);
	/* Deletes the certificate of name/version in one transaction.
	 * KOS_E_NOTFOUND when none is stored. */
	kos_rv (*key_cert_delete)(kos_store *st, const char *name, uint32_t version);
	/* Calls fn with the number of share rows of every token that has any. */
	kos_rv (*share_counts)(kos_store *st, void (*fn)(const char *token, uint64_t n, void *arg),
			       void *arg);

	/* Services. */
	/* Inserts row, or replaces the row of the same name. */
	kos_rv (*service_put)(kos_store *st, const struct kos_service_row *row);
	/* KOS_E_NOTFOUND for an unknown service. */
	kos_rv (*service_get)(kos_store *st, const char *name, struct kos_service_row *row);
	/* Calls fn for every service in strcmp() order of names, outside the
	 * store's lock; a non-zero return of fn stops and is returned. */
	kos_rv (*service_list)(kos_store *st,
			       int (*fn)(const struct kos_service_row *row, void *arg), void *arg);
	/* KOS_E_NOTFOUND for an unknown service. */
	kos_rv (*service_delete)(kos_store *st, const char *name);

	/* Credentials. Every change of CA keys or revocations bumps the
	 * credential revision in its transaction and then the hint. */
	/* Makes key the current CA key, retiring the current one (retired =
	 * key->created, expires = old_expires), in one transaction. With
	 * first: KOS_E_EXISTS when a current key exists; without: KOS_E_NOTFOUND
	 * when none does. */
	kos_rv (*ca_key_install)(kos_store *st, const struct kos_store_ca_key *key,
				 kos_usec old_expires, bool first);
	/* Every CA key, oldest first; *out is malloc'd (free()). */
	kos_rv (*ca_key_list)(kos_store *st, struct kos_store_ca_key **out, size_t *n);
	/* KOS_E_NOTFOUND when there is no current key. */
	kos_rv (*ca_key_current)(kos_store *st, struct kos_store_ca_key *out);
	/* Forgets a retired key; KOS_E_NOTFOUND for an unknown or current one. */
	kos_rv (*ca_key_delete)(kos_store *st, const char *kid);
	/* Registers a client and its first enrollment secret in one
	 * transaction; KOS_E_EXISTS when the name is taken. */
	kos_rv (*cred_client_add)(kos_store *st, const struct kos_store_cred_client *c,
				  const struct kos_store_enrollment *e);
	/* KOS_E_NOTFOUND for an unknown client. */
	kos_rv (*cred_client_get)(kos_store *st, const char *name,
				  struct kos_store_cred_client *out);
	/* Every client in strcmp() order of names; *out is malloc'd (free()). */
	kos_rv (*cred_client_list)(kos_store *st, struct kos_store_cred_client **out, size_t *n);
	/* KOS_E_NOTFOUND for an unknown client. */
	kos_rv (*cred_client_set_disabled)(kos_store *st, const char *name, bool disabled);
	/* A new secret for e->client, deleting its unused ones, in one
	 * transaction; KOS_E_NOTFOUND for an unknown client. */
	kos_rv (*enrollment_add)(kos_store *st, const struct kos_store_enrollment *e);
	/* KOS_E_NOTFOUND when no secret has that hash. */
	kos_rv (*enrollment_get)(kos_store *st, const uint8_t *hash,
				 struct kos_store_enrollment *out);
	/* Marks the secret used at now, atomically. *out receives the row as
	 * it was. KOS_E_NOTFOUND (no such secret), KOS_E_EXISTS (already
	 * used: nothing changes), KOS_E_RANGE (expired at now: nothing changes). */
	kos_rv (*enrollment_use)(kos_store *st, const uint8_t *hash, kos_usec now,
				 struct kos_store_enrollment *out);
	/* Adds (or widens, see struct kos_store_revocation) a revocation. */
	kos_rv (*revocation_add)(kos_store *st, const struct kos_store_revocation *r);
	/* Calls fn for every revocation, ordered by kind, then value, while
	 * it returns KOS_OK (else stops and returns what fn returned). fn
	 * runs under the handle's lock and must not use the store. One row at
	 * a time: a million revocations are never all in memory at once. */
	kos_rv (*revocation_each)(kos_store *st, kos_store_revocation_fn fn, void *arg);
	/* Deletes revocations that expired at now and enrollment secrets that
	 * are used or expired; *removed counts the rows. */
	kos_rv (*cred_prune)(kos_store *st, kos_usec now, uint64_t *removed);
	/* The credential revision (authoritative: read from the store). */
	kos_rv (*cred_revision)(kos_store *st, uint64_t *rev);
	/* A number that changes, in every process on this machine sharing the
	 * store, after each change of the revision made through libkos: one
	 * atomic load, no store access. A backend without such a signal
	 * returns a constant (readers then rely on their check interval). */
	uint64_t (*cred_hint)(kos_store *st);

	/* Store-wide facts (the meta table): key 1..64 printable, value text. */
	/* *value is malloc'd (free()); KOS_E_NOTFOUND when the key is unset. */
	kos_rv (*meta_get)(kos_store *st, const char *key, char **value);
	kos_rv (*meta_put)(kos_store *st, const char *key, const char *value);

	/* The ledger. */
	/* Reads the head, kos_ledger_chain_link()s e[0..n) (n > 0, each valid) to
	 * it and writes them, in ONE transaction (across processes for a
	 * shared backend): all or none. */
	kos_rv (*ledger_append)(kos_store *st, kos_ledger_entry *e, size_t n);
	/* trust_update_batch of n clients, then ledger_append of m entries, in
	 * ONE transaction: all or none (a service's decisions and what caused
	 * them, committed before it answers). Optional: without it
	 * kos_store_decisions_commit() makes the two calls. */
	kos_rv (*decisions_commit)(kos_store *st, size_t n, const char *const *clients,
				   kos_trust_update_fn fn, void *const *args, kos_ledger_entry *e,
				   size_t m);
	/* The last entry's seq and hash; 0 and zeros when there is none. */
	kos_rv (*ledger_head)(kos_store *st, uint64_t *seq, uint8_t *hash);
	/* Up to max (> 0) entries with seq >= from, ascending, into rows, in
	 * one snapshot; *n receives how many. */
	kos_rv (*ledger_read)(kos_store *st, uint64_t from, struct kos_store_ledger_row *rows,
			      size_t max, size_t *n);
};

struct kos_store {
	const struct kos_store_ops *ops;
};

/* Backend constructors, called by kos_store_open(). path is a file name. */
kos_rv kos_store_sqlite_open(const char *path, kos_store **out);
kos_rv kos_store_mem_open(kos_store **out);

/* The wrappers callers use; same contracts as the ops above. The client name
 * must already be valid (kos_principal_name_valid). */
kos_rv kos_store_trust_get(kos_store *st, const char *client, struct kos_trust_state *out);
kos_rv kos_store_trust_update(kos_store *st, const char *client, kos_trust_update_fn fn, void *arg);
kos_rv kos_store_trust_update_batch(kos_store *st, size_t n, const char *const *clients,
				    kos_trust_update_fn fn, void *const *args);
/* Calls fn for every client in strcmp() order of names, read a page
 * (KOS_STORE_TRUST_PAGE clients) at a time: fn runs without the store's
 * lock, a million clients are never all in memory, and other users of the
 * store go on between pages. Stops at fn's first non-zero return and
 * returns it (a kos_rv or the caller's own code). */
#define KOS_STORE_TRUST_PAGE 1024
kos_rv kos_store_trust_each(kos_store *st, int (*fn)(const struct kos_trust_state *s, void *arg),
			    void *arg);
/* Every client (all pages at once: for small stores and tests). */
kos_rv kos_store_trust_list(kos_store *st, struct kos_trust_state **out, size_t *n);
kos_rv kos_store_trust_page(kos_store *st, const char *after, size_t max,
			    struct kos_trust_state **out, size_t *n);
kos_rv kos_store_trust_delete(kos_store *st, const char *client);
kos_rv kos_store_key_version_begin(kos_store *st, const struct kos_store_key *key, const char *name,
				   const struct kos_store_version *v, uint32_t *version);
kos_rv kos_store_key_version_activate(kos_store *st, const struct kos_store_version *v);
kos_rv kos_store_key_version_abort(kos_store *st, const char *name, uint32_t version);
kos_rv kos_store_key_version_retire(kos_store *st, const char *name, uint32_t version);
kos_rv kos_store_key_delete(kos_store *st, const char *name);
kos_rv kos_store_key_get(kos_store *st, const char *name, struct kos_store_key *out);
kos_rv kos_store_key_list(kos_store *st, struct kos_store_key **out, size_t *n);
kos_rv kos_store_key_version_get(kos_store *st, const char *name, uint32_t version,
				 struct kos_store_version *out);
kos_rv kos_store_key_versions(kos_store *st, const char *name, struct kos_store_version **out,
			      size_t *n);
kos_rv kos_store_share_counts(kos_store *st, void (*fn)(const char *token, uint64_t n, void *arg),
			      void *arg);
kos_rv kos_store_key_cert_put(kos_store *st, const char *name, uint32_t version,
			     const uint8_t *der, size_t len, kos_usec created);
kos_rv kos_store_key_cert_get(kos_store *st, const char *name, uint32_t version, uint8_t **der,
			     size_t *len);
kos_rv kos_store_key_cert_delete(kos_store *st, const char *name, uint32_t version);

kos_rv kos_store_service_put(kos_store *st, const struct kos_service_row *row);
kos_rv kos_store_service_get(kos_store *st, const char *name, struct kos_service_row *row);
kos_rv kos_store_service_list(kos_store *st,
			      int (*fn)(const struct kos_service_row *row, void *arg), void *arg);
kos_rv kos_store_service_delete(kos_store *st, const char *name);
kos_rv kos_store_ca_key_install(kos_store *st, const struct kos_store_ca_key *key,
				kos_usec old_expires, bool first);
kos_rv kos_store_ca_key_list(kos_store *st, struct kos_store_ca_key **out, size_t *n);
kos_rv kos_store_ca_key_current(kos_store *st, struct kos_store_ca_key *out);
kos_rv kos_store_ca_key_delete(kos_store *st, const char *kid);
kos_rv kos_store_cred_client_add(kos_store *st, const struct kos_store_cred_client *c,
				 const struct kos_store_enrollment *e);
kos_rv kos_store_cred_client_get(kos_store *st, const char *name,
				 struct kos_store_cred_client *out);
kos_rv kos_store_cred_client_list(kos_store *st, struct kos_store_cred_client **out, size_t *n);
kos_rv kos_store_cred_client_set_disabled(kos_store *st, const char *name, bool disabled);
kos_rv kos_store_enrollment_add(kos_store *st, const struct kos_store_enrollment *e);
kos_rv kos_store_enrollment_get(kos_store *st, const uint8_t *hash,
				struct kos_store_enrollment *out);
kos_rv kos_store_enrollment_use(kos_store *st, const uint8_t *hash, kos_usec now,
				struct kos_store_enrollment *out);
kos_rv kos_store_revocation_add(kos_store *st, const struct kos_store_revocation *r);
/* Every revocation (kos_store_revocation_each's order); *out is malloc'd
 * (free()). */
kos_rv kos_store_revocation_list(kos_store *st, struct kos_store_revocation **out, size_t *n);
kos_rv kos_store_revocation_each(kos_store *st, kos_store_revocation_fn fn, void *arg);
kos_rv kos_store_cred_prune(kos_store *st, kos_usec now, uint64_t *removed);
kos_rv kos_store_cred_revision(kos_store *st, uint64_t *rev);
uint64_t kos_store_cred_hint(kos_store *st);
kos_rv kos_store_meta_get(kos_store *st, const char *key, char **value);
kos_rv kos_store_meta_put(kos_store *st, const char *key, const char *value);
kos_rv kos_store_ledger_append(kos_store *st, kos_ledger_entry *e, size_t n);
kos_rv kos_store_decisions_commit(kos_store *st, size_t n, const char *const *clients,
				  kos_trust_update_fn fn, void *const *args, kos_ledger_entry *e,
				  size_t m);
kos_rv kos_store_ledger_head(kos_store *st, uint64_t *seq, uint8_t *hash);
kos_rv kos_store_ledger_read(kos_store *st, uint64_t from, struct kos_store_ledger_row *rows,
			     size_t max, size_t *n);

/* "creating", "active", "retired"; NULL for another value. */
const char *kos_key_state_name(enum kos_key_state s);

#endif
