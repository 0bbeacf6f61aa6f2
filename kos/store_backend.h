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

/* The schema this code writes; a store at a higher version is refused. */
#define KOS_STORE_SCHEMA_VERSION 3

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

/* Frees v->shares and zeroes v; NULL-safe. */
void kos_store_version_clear(struct kos_store_version *v);
/* Clears n versions and frees the array. */
void kos_store_versions_free(struct kos_store_version *v, size_t n);

struct kos_store_ops {
	const char *name; /* "sqlite", "memory" */
	void (*free)(kos_store *st);
	int (*schema_version)(kos_store *st);
	/* KOS_E_NOTFOUND for an unknown client (detail set). */
	kos_rv (*trust_get)(kos_store *st, const char *client, struct kos_trust_state *out);
	/* Loads or initialises, calls fn, writes back: one atomic step, across
	 * processes for a shared backend. */
	kos_rv (*trust_update)(kos_store *st, const char *client, kos_trust_update_fn fn,
			       void *arg);
	/* Every client in strcmp() order of names; *out is malloc'd (free()). */
	kos_rv (*trust_list)(kos_store *st, struct kos_trust_state **out, size_t *n);
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
	/* Calls fn with the number of share rows of every token that has any. */
	kos_rv (*share_counts)(kos_store *st, void (*fn)(const char *token, uint64_t n, void *arg),
			       void *arg);
};

struct kos_store {
	const struct kos_store_ops *ops;
};

/* Backend constructors, called by kos_store_open(). path is a file name. */
kos_rv kos_store_sqlite_open(const char *path, kos_store **out);
kos_rv kos_store_mem_open(kos_store **out);

/* The wrappers callers use; same contracts as the ops above. The client name
 * must already be valid (kos_client_name_valid). */
kos_rv kos_store_trust_get(kos_store *st, const char *client, struct kos_trust_state *out);
kos_rv kos_store_trust_update(kos_store *st, const char *client, kos_trust_update_fn fn, void *arg);
kos_rv kos_store_trust_list(kos_store *st, struct kos_trust_state **out, size_t *n);
kos_rv kos_store_trust_delete(kos_store *st, const char *client);
kos_rv kos_store_key_version_begin(kos_store *st, const struct kos_store_key *key, const char *name,
				   const struct kos_store_version *v, uint32_t *version);
kos_rv kos_store_key_version_activate(kos_store *st, const struct kos_store_version *v);
kos_rv kos_store_key_version_abort(kos_store *st, const char *name, uint32_t version);
kos_rv kos_store_key_version_retire(kos_store *st, const char *name, uint32_t version);
kos_rv kos_store_key_get(kos_store *st, const char *name, struct kos_store_key *out);
kos_rv kos_store_key_list(kos_store *st, struct kos_store_key **out, size_t *n);
kos_rv kos_store_key_version_get(kos_store *st, const char *name, uint32_t version,
				 struct kos_store_version *out);
kos_rv kos_store_key_versions(kos_store *st, const char *name, struct kos_store_version **out,
			      size_t *n);
kos_rv kos_store_share_counts(kos_store *st, void (*fn)(const char *token, uint64_t n, void *arg),
			      void *arg);

/* "creating", "active", "retired"; NULL for another value. */
const char *kos_key_state_name(enum kos_key_state s);

#endif
