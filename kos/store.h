/* The state store: where kos keeps what must survive a restart.
 * Thread safety: a kos_store handle may be used from several threads (calls
 * are serialised inside); several processes may open the same store. */
#ifndef KOS_STORE_H
#define KOS_STORE_H

#include <kos/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kos_store kos_store;

/* Opens (creating and migrating when needed) a store. location is
 * "sqlite:PATH", a plain PATH (SQLite), or "memory:" (in-process, not
 * persistent). Errors: KOS_E_INVALID, KOS_E_STORE, KOS_E_IO, KOS_E_NOMEM. */
KOS_API kos_rv kos_store_open(const char *location, kos_store **out);

KOS_API void kos_store_free(kos_store *st);

/* The schema version of an open store. */
KOS_API int kos_store_schema_version(kos_store *st);

/* The backend's name: "sqlite" or "memory". */
KOS_API const char *kos_store_backend(const kos_store *st);

/* Whether this handle's commits are on disk before they return, so that a
 * power loss loses none (SQLite: synchronous=FULL, an fsync of the WAL per
 * commit), or only survive the process's death (synchronous=NORMAL, the
 * default). Errors: KOS_E_INVALID for the memory store (no disk),
 * KOS_E_STORE. kos_store_synced reads the handle's mode back (false for
 * the memory store). */
KOS_API kos_rv kos_store_set_synced(kos_store *st, bool on);
KOS_API kos_rv kos_store_synced(kos_store *st, bool *on);

#ifdef __cplusplus
}
#endif
#endif
