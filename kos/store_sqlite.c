/* SQLite state store: one file in WAL mode, shared by every process that
 * opens it.
 *
 * - Each change is one transaction started with BEGIN IMMEDIATE, so a
 *   read-modify-write (trust_update) holds the write lock from its read to
 *   its commit and concurrent processes lose no update.
 * - WAL with synchronous=NORMAL: readers never block the writer; a commit
 *   does not fsync (the WAL is synced at checkpoints), so a power loss may
 *   drop the last commits but never corrupts the file.
 * - The schema version is PRAGMA user_version. migrations[] holds the steps
 *   from version v to v+1; opening an older store runs the missing steps and
 *   sets the version in one transaction. A newer store is refused untouched.
 * - One connection per handle, its statements prepared once; a mutex
 *   serialises threads sharing the handle. A handle must not cross fork():
 *   the child opens its own. */
#include "config.h"

#include "kos/store_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* PRAGMA application_id of a kos store: "kos" and a 1. A file carrying
 * another application's id is refused. */
#define KOS_SQLITE_APP_ID 0x6b6f7301

/* How long one statement waits for another process's lock... */
#define BUSY_TIMEOUT_MS 5000
/* ...and how long step_retry() keeps trying when SQLite answers
 * SQLITE_BUSY without waiting. */
#define RETRY_USEC (10 * KOS_USEC_PER_SEC)

/* migrations[v] takes a store from schema version v to v + 1. Never edit a
 * released step: add one. */
static const char *const migrations[] = {
    /* 1: clients' factors and counters; meta for store-wide facts */
    "CREATE TABLE meta (\n"
    "	key TEXT PRIMARY KEY NOT NULL,\n"
    "	value TEXT NOT NULL\n"
    ") WITHOUT ROWID;\n"
    "INSERT INTO meta (key, value) VALUES ('format', 'kos state store');\n"
    "CREATE TABLE trust (\n"
    "	client TEXT PRIMARY KEY NOT NULL,\n"
    "	created INTEGER NOT NULL,\n"
    "	last_activity INTEGER NOT NULL,\n"
    "	f_latency REAL NOT NULL,\n"
    "	f_integrity REAL NOT NULL,\n"
    "	f_usage REAL NOT NULL,\n"
    "	f_anomaly REAL NOT NULL,\n"
    "	f_reputation REAL NOT NULL,\n"
    "	observations INTEGER NOT NULL DEFAULT 0,\n"
    "	integrity_failures INTEGER NOT NULL DEFAULT 0,\n"
    "	scope_violations INTEGER NOT NULL DEFAULT 0\n"
    ") WITHOUT ROWID;\n",

    /* 2: the request-rate baseline and the scope and usage windows */
    "ALTER TABLE trust ADD COLUMN rate_start INTEGER NOT NULL DEFAULT 0;\n"
    "ALTER TABLE trust ADD COLUMN rate_count INTEGER NOT NULL DEFAULT 0;\n"
    "ALTER TABLE trust ADD COLUMN rate_flagged INTEGER NOT NULL DEFAULT 0;\n"
    "ALTER TABLE trust ADD COLUMN base_n INTEGER NOT NULL DEFAULT 0;\n"
    "ALTER TABLE trust ADD COLUMN base_mean REAL NOT NULL DEFAULT 0;\n"
    "ALTER TABLE trust ADD COLUMN base_m2 REAL NOT NULL DEFAULT 0;\n"
    "ALTER TABLE trust ADD COLUMN scope_start INTEGER NOT NULL DEFAULT 0;\n"
    "ALTER TABLE trust ADD COLUMN scope_count INTEGER NOT NULL DEFAULT 0;\n"
    "ALTER TABLE trust ADD COLUMN usage_start INTEGER NOT NULL DEFAULT 0;\n"
    "ALTER TABLE trust ADD COLUMN usage_ops INTEGER NOT NULL DEFAULT 0;\n"
    "ALTER TABLE trust ADD COLUMN usage_bytes INTEGER NOT NULL DEFAULT 0;\n",
};

_Static_assert(KOS_ARRAY_SIZE(migrations) == KOS_STORE_SCHEMA_VERSION,
	       "one migration step per schema version");

/* The state's columns after the name, in the order bind_state and
 * read_state use; the factors in kos_factor order. */
#define TRUST_COLS                                                                                 \
	"created, last_activity, f_latency, f_integrity, f_usage, f_anomaly, f_reputation, "       \
	"observations, integrity_failures, scope_violations, rate_start, rate_count, "             \
	"rate_flagged, base_n, base_mean, base_m2, scope_start, scope_count, usage_start, "        \
	"usage_ops, usage_bytes"
#define N_TRUST_COLS 21

enum {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_N_TX, /* the statements above exist before the schema does */
	ST_GET = ST_N_TX,
	ST_INSERT,
	ST_UPDATE,
	ST_DELETE,
	ST_LIST,
	ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_GET] = "SELECT " TRUST_COLS " FROM trust WHERE client = ?1",
    [ST_INSERT] = "INSERT INTO trust (client, " TRUST_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, "
		  "?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, "
		  "?21, ?22)",
    [ST_UPDATE] = "UPDATE trust SET created = ?2, last_activity = ?3, f_latency = ?4, "
		  "f_integrity = ?5, f_usage = ?6, f_anomaly = ?7, f_reputation = ?8, "
		  "observations = ?9, integrity_failures = ?10, scope_violations = ?11, "
		  "rate_start = ?12, rate_count = ?13, rate_flagged = ?14, base_n = ?15, "
		  "base_mean = ?16, base_m2 = ?17, scope_start = ?18, scope_count = ?19, "
		  "usage_start = ?20, usage_ops = ?21, usage_bytes = ?22 WHERE client = ?1",
    [ST_DELETE] = "DELETE FROM trust WHERE client = ?1",
    [ST_LIST] = "SELECT client, " TRUST_COLS " FROM trust ORDER BY client",
};

struct sql_store {
	struct kos_store base;
	pthread_mutex_t lock;
	sqlite3 *db;
	char *path;
	int version;
	sqlite3_stmt *stmt[ST_COUNT];
};

static struct sql_store *sql_of(kos_store *st)
{
	return (struct sql_store *)st;
}

static kos_rv db_fail(struct sql_store *s, int rc, const char *what)
{
	kos_rv rv = KOS_E_STORE;

	if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
		rv = KOS_E_BUSY;
	else if (rc == SQLITE_NOMEM)
		rv = KOS_E_NOMEM;
	return kos_error_set(rv, "state store %s: %s: %s", s->path, what,
			     s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
}

static int64_t mono_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Steps a statement until SQLite stops answering SQLITE_BUSY, backing off
 * with jitter so that waiting processes do not retry in step. The busy
 * timeout covers most waits; this covers the BUSY answers given without
 * waiting (a lock upgrade that could deadlock, a stale WAL snapshot, a WAL
 * recovery). On SQLITE_ROW the statement stays on its row; otherwise it is
 * reset. */
static int step_retry(sqlite3_stmt *stmt)
{
	int64_t start = mono_usec(), now;
	long delay = 1000;
	int rc;

	for (;;) {
		rc = sqlite3_step(stmt);
		if (rc == SQLITE_ROW)
			return rc;
		sqlite3_reset(stmt);
		if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
			return rc;
		now = mono_usec();
		if (now - start >= RETRY_USEC)
			return rc;
		long pause = delay / 2 + (long)(now % (delay / 2 + 1));
		struct timespec ts = {.tv_sec = 0, .tv_nsec = pause * 1000};

		nanosleep(&ts, NULL);
		if (delay < 64000)
			delay *= 2;
	}
}

static kos_rv tx_begin(struct sql_store *s)
{
	int rc = step_retry(s->stmt[ST_BEGIN]);

	if (rc != SQLITE_DONE)
		return db_fail(s, rc, "cannot start a transaction");
	return KOS_OK;
}

static void tx_rollback(struct sql_store *s)
{
	/* after some errors SQLite has already rolled back */
	if (sqlite3_get_autocommit(s->db))
		return;
	sqlite3_step(s->stmt[ST_ROLLBACK]);
	sqlite3_reset(s->stmt[ST_ROLLBACK]);
}

static kos_rv tx_commit(struct sql_store *s)
{
	int rc = step_retry(s->stmt[ST_COMMIT]);

	if (rc != SQLITE_DONE) {
		kos_rv rv = db_fail(s, rc, "cannot commit");

		tx_rollback(s);
		return rv;
	}
	return KOS_OK;
}

static int64_t u2i(uint64_t v)
{
	return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
}

static uint64_t i2u(int64_t v)
{
	return v < 0 ? 0 : (uint64_t)v;
}

/* Binds ?2..?22 from st (?1 is the client). */
static int bind_state(sqlite3_stmt *stmt, const struct kos_trust_state *st)
{
	int i = 2, rc = SQLITE_OK;
	size_t f;

#define BIND(call)                                                                                 \
	do {                                                                                       \
		if (rc == SQLITE_OK)                                                               \
			rc = (call);                                                               \
		i++;                                                                               \
	} while (0)
	BIND(sqlite3_bind_int64(stmt, i, st->created));
	BIND(sqlite3_bind_int64(stmt, i, st->last_activity));
	for (f = 0; f < KOS_FACTOR_COUNT; f++)
		BIND(sqlite3_bind_double(stmt, i, st->factor[f]));
	BIND(sqlite3_bind_int64(stmt, i, u2i(st->observations)));
	BIND(sqlite3_bind_int64(stmt, i, u2i(st->integrity_failures)));
	BIND(sqlite3_bind_int64(stmt, i, u2i(st->scope_violations)));
	BIND(sqlite3_bind_int64(stmt, i, st->rate_start));
	BIND(sqlite3_bind_int64(stmt, i, u2i(st->rate_count)));
	BIND(sqlite3_bind_int(stmt, i, st->rate_flagged ? 1 : 0));
	BIND(sqlite3_bind_int64(stmt, i, u2i(st->base_n)));
	BIND(sqlite3_bind_double(stmt, i, st->base_mean));
	BIND(sqlite3_bind_double(stmt, i, st->base_m2));
	BIND(sqlite3_bind_int64(stmt, i, st->scope_start));
	BIND(sqlite3_bind_int64(stmt, i, u2i(st->scope_count)));
	BIND(sqlite3_bind_int64(stmt, i, st->usage_start));
	BIND(sqlite3_bind_int64(stmt, i, u2i(st->usage_ops)));
	BIND(sqlite3_bind_int64(stmt, i, u2i(st->usage_bytes)));
#undef BIND
	return rc;
}

/* Reads the TRUST_COLS starting at column c into st (client untouched). */
static void read_state(sqlite3_stmt *stmt, int c, struct kos_trust_state *st)
{
	size_t f;

	st->created = sqlite3_column_int64(stmt, c++);
	st->last_activity = sqlite3_column_int64(stmt, c++);
	for (f = 0; f < KOS_FACTOR_COUNT; f++)
		st->factor[f] = sqlite3_column_double(stmt, c++);
	st->observations = i2u(sqlite3_column_int64(stmt, c++));
	st->integrity_failures = i2u(sqlite3_column_int64(stmt, c++));
	st->scope_violations = i2u(sqlite3_column_int64(stmt, c++));
	st->rate_start = sqlite3_column_int64(stmt, c++);
	st->rate_count = i2u(sqlite3_column_int64(stmt, c++));
	st->rate_flagged = sqlite3_column_int(stmt, c++) != 0;
	st->base_n = i2u(sqlite3_column_int64(stmt, c++));
	st->base_mean = sqlite3_column_double(stmt, c++);
	st->base_m2 = sqlite3_column_double(stmt, c++);
	st->scope_start = sqlite3_column_int64(stmt, c++);
	st->scope_count = i2u(sqlite3_column_int64(stmt, c++));
	st->usage_start = sqlite3_column_int64(stmt, c++);
	st->usage_ops = i2u(sqlite3_column_int64(stmt, c++));
	st->usage_bytes = i2u(sqlite3_column_int64(stmt, c++));
}

static void set_client(struct kos_trust_state *st, const char *client)
{
	memset(st->client, 0, sizeof(st->client));
	memcpy(st->client, client, strnlen(client, sizeof(st->client) - 1));
}

/* Loads client into *st inside the caller's transaction; *found says
 * whether it exists. Leaves ST_GET reset. */
static kos_rv load(struct sql_store *s, const char *client, struct kos_trust_state *st, bool *found)
{
	sqlite3_stmt *stmt = s->stmt[ST_GET];
	kos_rv rv = KOS_OK;
	int rc;

	*found = false;
	rc = sqlite3_bind_text(stmt, 1, client, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		memset(st, 0, sizeof(*st));
		set_client(st, client);
		read_state(stmt, 0, st);
		*found = true;
	} else if (rc != SQLITE_DONE) {
		rv = db_fail(s, rc, "cannot read a client");
	}
	sqlite3_reset(stmt);
	return rv;
}

static kos_rv sql_trust_get(kos_store *st, const char *client, struct kos_trust_state *out)
{
	struct sql_store *s = sql_of(st);
	bool found;
	kos_rv rv;

	pthread_mutex_lock(&s->lock);
	rv = load(s, client, out, &found);
	pthread_mutex_unlock(&s->lock);
	if (rv == KOS_OK && !found)
		rv = kos_error_set(KOS_E_NOTFOUND, "unknown client '%s'", client);
	return rv;
}

/* The body of trust_update, inside the transaction and the lock. */
static kos_rv update_in_tx(struct sql_store *s, const char *client, kos_trust_update_fn fn,
			   void *arg)
{
	struct kos_trust_state work;
	sqlite3_stmt *stmt;
	bool found;
	kos_rv rv;
	int rc;

	rv = load(s, client, &work, &found);
	if (rv != KOS_OK)
		return rv;
	if (!found) {
		memset(&work, 0, sizeof(work));
		set_client(&work, client);
	}
	rv = fn(&work, !found, arg);
	if (rv != KOS_OK)
		return rv;
	stmt = s->stmt[found ? ST_UPDATE : ST_INSERT];
	rc = sqlite3_bind_text(stmt, 1, client, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = bind_state(stmt, &work);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(stmt);
	sqlite3_reset(stmt);
	if (rc != SQLITE_DONE)
		return db_fail(s, rc, "cannot write a client");
	return KOS_OK;
}

/* The body of trust_delete, inside the transaction and the lock. */
static kos_rv delete_in_tx(struct sql_store *s, const char *client, kos_trust_update_fn fn,
			   void *arg)
{
	sqlite3_stmt *stmt = s->stmt[ST_DELETE];
	int rc;

	(void)fn;
	(void)arg;
	rc = sqlite3_bind_text(stmt, 1, client, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(stmt);
	sqlite3_reset(stmt);
	if (rc != SQLITE_DONE)
		return db_fail(s, rc, "cannot delete a client");
	if (sqlite3_changes(s->db) == 0)
		return kos_error_set(KOS_E_NOTFOUND, "unknown client '%s'", client);
	return KOS_OK;
}

/* Runs body in one BEGIN IMMEDIATE transaction under the handle's lock:
 * committed when it succeeds, rolled back otherwise. */
static kos_rv in_tx(struct sql_store *s,
		    kos_rv (*body)(struct sql_store *, const char *, kos_trust_update_fn, void *),
		    const char *client, kos_trust_update_fn fn, void *arg)
{
	kos_rv rv;

	pthread_mutex_lock(&s->lock);
	rv = tx_begin(s);
	if (rv == KOS_OK) {
		rv = body(s, client, fn, arg);
		if (rv == KOS_OK)
			rv = tx_commit(s); /* rolls back itself when it fails */
		else
			tx_rollback(s);
	}
	pthread_mutex_unlock(&s->lock);
	return rv;
}

static kos_rv sql_trust_update(kos_store *st, const char *client, kos_trust_update_fn fn, void *arg)
{
	return in_tx(sql_of(st), update_in_tx, client, fn, arg);
}

static kos_rv sql_trust_delete(kos_store *st, const char *client)
{
	return in_tx(sql_of(st), delete_in_tx, client, NULL, NULL);
}

static kos_rv sql_trust_list(kos_store *st, struct kos_trust_state **out, size_t *n)
{
	struct sql_store *s = sql_of(st);
	sqlite3_stmt *stmt = s->stmt[ST_LIST];
	struct kos_trust_state *arr = NULL;
	size_t k = 0, cap = 0;
	kos_rv rv = KOS_OK;
	int rc;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&s->lock);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const unsigned char *name = sqlite3_column_text(stmt, 0);

		if (k == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct kos_trust_state *na;

			if (ncap > SIZE_MAX / sizeof(*arr)) {
				rv = kos_error_set(KOS_E_NOMEM, "too many clients to list");
				break;
			}
			na = realloc(arr, ncap * sizeof(*arr));
			if (na == NULL) {
				rv = kos_error_set(KOS_E_NOMEM, "out of memory listing clients");
				break;
			}
			arr = na;
			cap = ncap;
		}
		memset(&arr[k], 0, sizeof(arr[k]));
		set_client(&arr[k], name != NULL ? (const char *)name : "");
		read_state(stmt, 1, &arr[k]);
		k++;
	}
	if (rv == KOS_OK && rc != SQLITE_DONE)
		rv = db_fail(s, rc, "cannot list clients");
	sqlite3_reset(stmt);
	pthread_mutex_unlock(&s->lock);
	if (rv != KOS_OK) {
		free(arr);
		return rv;
	}
	*out = arr;
	*n = k;
	return KOS_OK;
}

static int sql_schema_version(kos_store *st)
{
	return sql_of(st)->version;
}

static void sql_free(kos_store *st)
{
	struct sql_store *s = sql_of(st);
	size_t i;

	for (i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->stmt[i]);
	sqlite3_close_v2(s->db);
	pthread_mutex_destroy(&s->lock);
	free(s->path);
	free(s);
}

static const struct kos_store_ops sql_ops = {
    .name = "sqlite",
    .free = sql_free,
    .schema_version = sql_schema_version,
    .trust_get = sql_trust_get,
    .trust_update = sql_trust_update,
    .trust_list = sql_trust_list,
    .trust_delete = sql_trust_delete,
};

/* Creates the file with mode 0600 before SQLite sees it (SQLite would use
 * 0644 less the umask; it gives the -wal and -shm files the mode of the
 * database), and refuses anything that is not a regular file. */
static kos_rv create_file(const char *path)
{
	struct stat sb;
	int fd;

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0)
		return kos_error_set(KOS_E_IO, "state store %s: %s", path, strerror(errno));
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		return kos_error_set(KOS_E_IO, "state store %s: not a regular file", path);
	}
	close(fd);
	return KOS_OK;
}

/* Reads the schema version and refuses a store this code cannot use: a
 * newer schema, another application's database, or one at version 0 that
 * already holds tables. One statement, hence one snapshot: another process
 * may be creating the store right now, and its tables must not be seen
 * without the version it sets in the same transaction. Writes nothing. */
static kos_rv read_identity(struct sql_store *s, int *version)
{
	static const char sql[] = "SELECT (SELECT user_version FROM pragma_user_version), "
				  "(SELECT application_id FROM pragma_application_id), "
				  "(SELECT count(*) FROM sqlite_master)";
	sqlite3_stmt *stmt = NULL;
	int rc, app_id, objects;

	rc = sqlite3_prepare_v2(s->db, sql, -1, &stmt, NULL);
	if (rc == SQLITE_OK)
		rc = step_retry(stmt);
	if (rc != SQLITE_ROW) {
		kos_rv rv = db_fail(s, rc, "cannot read the schema version");

		sqlite3_finalize(stmt);
		return rv;
	}
	*version = sqlite3_column_int(stmt, 0);
	app_id = sqlite3_column_int(stmt, 1);
	objects = sqlite3_column_int(stmt, 2);
	sqlite3_finalize(stmt);
	if (*version > KOS_STORE_SCHEMA_VERSION)
		return kos_error_set(KOS_E_STORE,
				     "state store %s has schema version %d, newer than this kos "
				     "understands (%d): upgrade kos",
				     s->path, *version, KOS_STORE_SCHEMA_VERSION);
	if (app_id != 0 && app_id != KOS_SQLITE_APP_ID)
		return kos_error_set(KOS_E_STORE,
				     "state store %s: an SQLite database of another application",
				     s->path);
	if (*version == 0 && objects != 0)
		return kos_error_set(KOS_E_STORE,
				     "state store %s: an SQLite database that is not a kos state "
				     "store",
				     s->path);
	return KOS_OK;
}

static kos_rv set_wal(struct sql_store *s)
{
	sqlite3_stmt *stmt = NULL;
	const unsigned char *mode;
	kos_rv rv = KOS_OK;
	int rc;

	rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &stmt, NULL);
	if (rc != SQLITE_OK)
		return db_fail(s, rc, "cannot set WAL mode");
	/* switching a new file to WAL writes its header under a lock upgrade
	 * that may answer BUSY at once while another process does the same */
	rc = step_retry(stmt);
	if (rc != SQLITE_ROW) {
		rv = db_fail(s, rc, "cannot set WAL mode");
		goto out;
	}
	mode = sqlite3_column_text(stmt, 0);
	if (mode == NULL || strcasecmp((const char *)mode, "wal") != 0)
		rv = kos_error_set(KOS_E_STORE,
				   "state store %s: WAL mode refused (journal mode '%s'); is the "
				   "file on a network file system?",
				   s->path, mode != NULL ? (const char *)mode : "?");
out:
	sqlite3_finalize(stmt);
	return rv;
}

static kos_rv prepare(struct sql_store *s, int from, int to)
{
	int i, rc;

	for (i = from; i < to; i++) {
		rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
					&s->stmt[i], NULL);
		if (rc != SQLITE_OK)
			return db_fail(s, rc, "cannot prepare a statement");
	}
	return KOS_OK;
}

/* Brings the schema to KOS_STORE_SCHEMA_VERSION in one transaction. The
 * version is read again under the write lock: another process may have
 * migrated (or created) the store since we looked. */
static kos_rv migrate(struct sql_store *s)
{
	char *msg = NULL;
	char sql[128];
	int version = 0;
	kos_rv rv;

	rv = tx_begin(s);
	if (rv != KOS_OK)
		return rv;
	rv = read_identity(s, &version);
	if (rv != KOS_OK)
		goto out;
	for (; version < KOS_STORE_SCHEMA_VERSION; version++) {
		if (sqlite3_exec(s->db, migrations[version], NULL, NULL, &msg) != SQLITE_OK) {
			rv = kos_error_set(KOS_E_STORE,
					   "state store %s: migrating to schema version %d: %s",
					   s->path, version + 1, msg != NULL ? msg : "failed");
			sqlite3_free(msg);
			goto out;
		}
	}
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d; PRAGMA application_id = %d;",
		 KOS_STORE_SCHEMA_VERSION, KOS_SQLITE_APP_ID);
	if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		rv = kos_error_set(KOS_E_STORE, "state store %s: setting the schema version: %s",
				   s->path, msg != NULL ? msg : "failed");
		sqlite3_free(msg);
		goto out;
	}
	rv = tx_commit(s);
	if (rv == KOS_OK)
		s->version = KOS_STORE_SCHEMA_VERSION;
	return rv;
out:
	tx_rollback(s);
	return rv;
}

kos_rv kos_store_sqlite_open(const char *path, kos_store **out)
{
	struct sql_store *s;
	kos_rv rv;
	int rc, version = 0;

	*out = NULL;
	if (path == NULL || path[0] == '\0')
		return kos_error_set(KOS_E_INVALID, "empty state store path");
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	s->base.ops = &sql_ops;
	if (pthread_mutex_init(&s->lock, NULL) != 0) {
		free(s);
		return kos_error_set(KOS_E_NOMEM, "cannot create a lock");
	}
	s->path = kos_strdup(path);
	if (s->path == NULL) {
		rv = kos_error_set(KOS_E_NOMEM, "out of memory");
		goto err;
	}
	rv = create_file(path);
	if (rv != KOS_OK)
		goto err;
	/* NOMUTEX: s->lock already serialises every use of the connection */
	rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		rv = db_fail(s, rc, "cannot open");
		goto err;
	}
	rc = sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
	if (rc != SQLITE_OK) {
		rv = db_fail(s, rc, "cannot set the busy timeout");
		goto err;
	}
	/* before anything writes (setting WAL does): refuse what is not ours */
	rv = read_identity(s, &version);
	if (rv == KOS_OK)
		rv = set_wal(s);
	if (rv != KOS_OK)
		goto err;
	rc = sqlite3_exec(s->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		rv = db_fail(s, rc, "cannot set synchronous mode");
		goto err;
	}
	rv = prepare(s, 0, ST_N_TX);
	if (rv != KOS_OK)
		goto err;
	s->version = version;
	if (version != KOS_STORE_SCHEMA_VERSION) {
		rv = migrate(s);
		if (rv != KOS_OK)
			goto err;
	}
	rv = prepare(s, ST_N_TX, ST_COUNT);
	if (rv != KOS_OK)
		goto err;
	*out = &s->base;
	return KOS_OK;
err:
	sql_free(&s->base);
	return rv;
}
