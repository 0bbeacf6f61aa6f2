/* The one internal interface between libkos and a state store backend.
 *
 * Callers (the trust engine, later credentials and keys) use only the
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
#define KOS_STORE_SCHEMA_VERSION 2

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

#endif
