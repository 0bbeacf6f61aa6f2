/* SQLite state store: one file in WAL mode, shared by every process that
 * opens it.
 *
 * - Each change is one transaction started with BEGIN IMMEDIATE, so a
 *   read-modify-write (trust_update) holds the write lock from its read to
 *   its commit and concurrent processes lose no update.
 * - WAL with synchronous=NORMAL: readers never block the writer; a commit
 *   does not fsync (the WAL is synced at checkpoints), so a power loss may
 *   drop the last commits but never corrupts the file. set_synced makes a
 *   handle's commits fsync (synchronous=FULL), for kosd's listen.ledger
 *   "synced".
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
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

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

    /* 3: keys, their versions, share sets and where each share is. type is
     * a kos_key_type (0 dek, 1 ec-p256, 2 ed25519, 3 rsa-2048, 4 rsa-3072);
     * times are microseconds since the epoch. */
    "CREATE TABLE keys (\n"
    "	name TEXT PRIMARY KEY NOT NULL,\n"
    "	type INTEGER NOT NULL CHECK (type >= 0),\n"
    "	created INTEGER NOT NULL\n"
    ") WITHOUT ROWID;\n"
    "CREATE TABLE key_versions (\n"
    "	name TEXT NOT NULL REFERENCES keys (name),\n"
    "	version INTEGER NOT NULL CHECK (version > 0),\n"
    "	state TEXT NOT NULL CHECK (state IN ('creating', 'active', 'retired')),\n"
    "	created INTEGER NOT NULL,\n"
    "	kcv BLOB,\n"
    "	spki BLOB,\n"
    "	token TEXT,\n"
    "	label TEXT,\n"
    "	creator TEXT NOT NULL DEFAULT '',\n"
    "	PRIMARY KEY (name, version)\n"
    ") WITHOUT ROWID;\n"
    "CREATE TABLE key_share_sets (\n"
    "	name TEXT NOT NULL,\n"
    "	version INTEGER NOT NULL,\n"
    "	set_name TEXT NOT NULL,\n"
    "	position INTEGER NOT NULL,\n"
    "	n INTEGER NOT NULL CHECK (n BETWEEN 2 AND 255),\n"
    "	k INTEGER NOT NULL CHECK (k BETWEEN 2 AND n),\n"
    "	PRIMARY KEY (name, version, set_name),\n"
    "	FOREIGN KEY (name, version) REFERENCES key_versions (name, version)\n"
    ") WITHOUT ROWID;\n"
    "CREATE TABLE key_shares (\n"
    "	name TEXT NOT NULL,\n"
    "	version INTEGER NOT NULL,\n"
    "	set_name TEXT NOT NULL,\n"
    "	x INTEGER NOT NULL CHECK (x BETWEEN 1 AND 255),\n"
    "	token TEXT NOT NULL,\n"
    "	label TEXT NOT NULL,\n"
    "	PRIMARY KEY (name, version, set_name, x),\n"
    "	FOREIGN KEY (name, version, set_name)\n"
    "		REFERENCES key_share_sets (name, version, set_name)\n"
    ") WITHOUT ROWID;\n"
    "CREATE INDEX key_shares_token ON key_shares (token);\n",

    /* 4: services (seeds wrapped in an HSM token) and the credential
     * authority: CA keys (at most one current: retired = 0), registered
     * clients, enrollment secrets (SHA-256 only), revocations (one row per
     * kind and value; upto: credentials issued at or before it), and the
     * credential revision in meta, bumped with every change of CA keys or
     * revocations. Times are microseconds since the epoch. */
    "CREATE TABLE services (\n"
    "	name TEXT PRIMARY KEY NOT NULL,\n"
    "	ops TEXT NOT NULL,\n"
    "	seed_version INTEGER NOT NULL CHECK (seed_version > 0),\n"
    "	wrapped_seed BLOB NOT NULL,\n"
    "	created INTEGER NOT NULL,\n"
    "	rotated INTEGER NOT NULL\n"
    ") WITHOUT ROWID;\n"
    "CREATE TABLE ca_keys (\n"
    "	kid TEXT PRIMARY KEY NOT NULL,\n"
    "	token TEXT NOT NULL,\n"
    "	label TEXT NOT NULL,\n"
    "	spki BLOB NOT NULL,\n"
    "	created INTEGER NOT NULL,\n"
    "	retired INTEGER NOT NULL DEFAULT 0,\n"
    "	expires INTEGER NOT NULL DEFAULT 0\n"
    ") WITHOUT ROWID;\n"
    "CREATE UNIQUE INDEX ca_keys_current ON ca_keys (retired) WHERE retired = 0;\n"
    "CREATE TABLE cred_clients (\n"
    "	name TEXT PRIMARY KEY NOT NULL,\n"
    "	scope TEXT NOT NULL,\n"
    "	created INTEGER NOT NULL,\n"
    "	disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1))\n"
    ") WITHOUT ROWID;\n"
    "CREATE TABLE enrollments (\n"
    "	hash BLOB PRIMARY KEY NOT NULL CHECK (length(hash) = 32),\n"
    "	client TEXT NOT NULL REFERENCES cred_clients (name),\n"
    "	created INTEGER NOT NULL,\n"
    "	expires INTEGER NOT NULL,\n"
    "	used INTEGER NOT NULL DEFAULT 0\n"
    ") WITHOUT ROWID;\n"
    "CREATE INDEX enrollments_client ON enrollments (client);\n"
    "CREATE TABLE revocations (\n"
    "	kind TEXT NOT NULL CHECK (kind IN ('jti', 'client', 'before')),\n"
    "	value TEXT NOT NULL,\n"
    "	upto INTEGER NOT NULL DEFAULT 0,\n"
    "	created INTEGER NOT NULL,\n"
    "	expires INTEGER NOT NULL,\n"
    "	PRIMARY KEY (kind, value)\n"
    ") WITHOUT ROWID;\n"
    "CREATE INDEX revocations_expires ON revocations (expires);\n"
    "INSERT INTO meta (key, value) VALUES ('cred_revision', '0');\n",

    /* 5: the decision ledger (kos-ledger(5)): one row per entry, seq 1, 2,
     * ... in the order of the hash chain, with the texts as hashed. It is
     * append-only: the triggers refuse changes made through SQL by mistake
     * (a determined writer drops them; the chain then shows the change). */
    "CREATE TABLE ledger (\n"
    "	seq INTEGER PRIMARY KEY NOT NULL CHECK (seq > 0),\n"
    "	at INTEGER NOT NULL,\n"
    "	client TEXT NOT NULL,\n"
    "	action TEXT NOT NULL,\n"
    "	resource TEXT NOT NULL,\n"
    "	tier TEXT NOT NULL,\n"
    "	outcome TEXT NOT NULL,\n"
    "	reason TEXT NOT NULL,\n"
    "	jti TEXT NOT NULL,\n"
    "	prev BLOB NOT NULL CHECK (length(prev) = 32),\n"
    "	hash BLOB NOT NULL CHECK (length(hash) = 32)\n"
    ");\n"
    "CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger\n"
    "BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;\n"
    "CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger\n"
    "BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;\n",

    /* 6: the score ceiling of a client's last penalty (kos-trust(7)). A
     * row from before has no ceiling on record: -1 says so, and the trust
     * engine takes the score at the client's last activity instead of
     * leaving a penalised client unbounded. */
    "ALTER TABLE trust ADD COLUMN ceiling REAL NOT NULL DEFAULT -1;\n"
    "ALTER TABLE trust ADD COLUMN ceiling_at INTEGER NOT NULL DEFAULT 0;\n",

    /* 7: X.509 certificates beside signing key versions (DER, checked
     * against the version's public key when written; PKCS#11 clients find
     * them as CKO_CERTIFICATE objects). One per version; created in
     * microseconds since the epoch. */
    "CREATE TABLE key_certs (\n"
    "	name TEXT NOT NULL,\n"
    "	version INTEGER NOT NULL,\n"
    "	der BLOB NOT NULL CHECK (length(der) BETWEEN 1 AND 16384),\n"
    "	created INTEGER NOT NULL,\n"
    "	PRIMARY KEY (name, version),\n"
    "	FOREIGN KEY (name, version) REFERENCES key_versions (name, version)\n"
    ") WITHOUT ROWID;\n",
};

_Static_assert(KOS_ARRAY_SIZE(migrations) == KOS_STORE_SCHEMA_VERSION,
	       "one migration step per schema version");

/* The state's columns after the name, in the order bind_state and
 * read_state use; the factors in kos_factor order. */
#define TRUST_COLS                                                                                 \
	"created, last_activity, f_latency, f_integrity, f_usage, f_anomaly, f_reputation, "       \
	"observations, integrity_failures, scope_violations, rate_start, rate_count, "             \
	"rate_flagged, base_n, base_mean, base_m2, scope_start, scope_count, usage_start, "        \
	"usage_ops, usage_bytes, ceiling, ceiling_at"
#define N_TRUST_COLS 23

enum {
	ST_BEGIN,
	ST_BEGIN_READ,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_N_TX, /* the statements above exist before the schema does */
	ST_GET = ST_N_TX,
	ST_INSERT,
	ST_UPDATE,
	ST_DELETE,
	ST_LIST,
	ST_KEY_INSERT,
	ST_KEY_GET,
	ST_KEY_LIST,
	ST_KEY_DELETE,
	ST_VER_MAX,
	ST_VER_CURRENT,
	ST_VER_COUNT,
	ST_VER_STATE,
	ST_VER_INSERT,
	ST_VER_ACTIVATE,
	ST_VER_RETIRE,
	ST_VER_DELETE,
	ST_VER_GET,
	ST_VER_LIST,
	ST_SET_INSERT,
	ST_SETS_GET,
	ST_SETS_DELETE,
	ST_SHARE_INSERT,
	ST_SHARES_GET,
	ST_SHARES_DELETE,
	ST_SHARE_COUNTS,
	ST_SVC_PUT,
	ST_SVC_GET,
	ST_SVC_LIST,
	ST_SVC_DELETE,
	ST_CA_CURRENT,
	ST_CA_LIST,
	ST_CA_RETIRE,
	ST_CA_INSERT,
	ST_CA_DELETE,
	ST_REV_BUMP,
	ST_REV_GET,
	ST_CC_INSERT,
	ST_CC_GET,
	ST_CC_LIST,
	ST_CC_DISABLE,
	ST_EN_INSERT,
	ST_EN_DROP_UNUSED,
	ST_EN_GET,
	ST_EN_USE,
	ST_EN_PRUNE,
	ST_RV_UPSERT,
	ST_RV_LIST,
	ST_RV_PRUNE,
	ST_META_GET,
	ST_META_PUT,
	ST_LEDGER_HEAD,
	ST_LEDGER_INSERT,
	ST_LEDGER_READ,
	ST_CERT_PUT,
	ST_CERT_GET,
	ST_CERT_DELETE,
	ST_KEY_DEL_CERTS,
	ST_KEY_DEL_SHARES,
	ST_KEY_DEL_SETS,
	ST_KEY_DEL_VERSIONS,
	ST_COUNT
};

#define VER_COLS "version, state, created, kcv, spki, token, label, creator"
#define SVC_COLS "name, ops, seed_version, wrapped_seed, created, rotated"
#define CA_COLS	 "kid, token, label, spki, created, retired, expires"
/* a ledger entry's columns, in kos_ledger_entry's order */
#define LEDGER_COLS "seq, at, client, action, resource, tier, outcome, reason, jti, prev, hash"
/* a client's columns and the expiry of its latest unused secret */
#define CC_COLS                                                                                    \
	"c.name, c.scope, c.created, c.disabled, (SELECT max(e.expires) FROM enrollments AS e "    \
	"WHERE e.client = c.name AND e.used = 0)"

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    /* a read snapshot over several statements; never upgraded to a write */
    [ST_BEGIN_READ] = "BEGIN",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_GET] = "SELECT " TRUST_COLS " FROM trust WHERE client = ?1",
    [ST_INSERT] = "INSERT INTO trust (client, " TRUST_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, "
		  "?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, "
		  "?21, ?22, ?23, ?24)",
    [ST_UPDATE] = "UPDATE trust SET created = ?2, last_activity = ?3, f_latency = ?4, "
		  "f_integrity = ?5, f_usage = ?6, f_anomaly = ?7, f_reputation = ?8, "
		  "observations = ?9, integrity_failures = ?10, scope_violations = ?11, "
		  "rate_start = ?12, rate_count = ?13, rate_flagged = ?14, base_n = ?15, "
		  "base_mean = ?16, base_m2 = ?17, scope_start = ?18, scope_count = ?19, "
		  "usage_start = ?20, usage_ops = ?21, usage_bytes = ?22, ceiling = ?23, "
		  "ceiling_at = ?24 WHERE client = ?1",
    [ST_DELETE] = "DELETE FROM trust WHERE client = ?1",
    [ST_LIST] = "SELECT client, " TRUST_COLS " FROM trust WHERE client > ?1 ORDER BY client "
		"LIMIT ?2",
    [ST_KEY_INSERT] = "INSERT INTO keys (name, type, created) VALUES (?1, ?2, ?3)",
    [ST_KEY_GET] = "SELECT type, created FROM keys WHERE name = ?1",
    [ST_KEY_LIST] = "SELECT name, type, created FROM keys ORDER BY name",
    [ST_KEY_DELETE] = "DELETE FROM keys WHERE name = ?1",
    [ST_VER_MAX] = "SELECT coalesce(max(version), 0) FROM key_versions WHERE name = ?1",
    [ST_VER_CURRENT] = "SELECT coalesce(max(version), 0) FROM key_versions WHERE name = ?1 "
		       "AND state = 'active'",
    [ST_VER_COUNT] = "SELECT count(*) FROM key_versions WHERE name = ?1",
    [ST_VER_STATE] = "SELECT state FROM key_versions WHERE name = ?1 AND version = ?2",
    [ST_VER_INSERT] = "INSERT INTO key_versions (name, version, state, created, kcv, creator) "
		      "VALUES (?1, ?2, 'creating', ?3, ?4, ?5)",
    [ST_VER_ACTIVATE] = "UPDATE key_versions SET state = 'active', spki = ?3, token = ?4, "
			"label = ?5 WHERE name = ?1 AND version = ?2 AND state = 'creating'",
    [ST_VER_RETIRE] = "UPDATE key_versions SET state = 'retired' WHERE name = ?1 AND "
		      "version = ?2 AND state = 'active'",
    [ST_VER_DELETE] = "DELETE FROM key_versions WHERE name = ?1 AND version = ?2 AND "
		      "state = 'creating'",
    [ST_VER_GET] = "SELECT " VER_COLS " FROM key_versions WHERE name = ?1 AND version = ?2",
    [ST_VER_LIST] = "SELECT " VER_COLS " FROM key_versions WHERE name = ?1 ORDER BY version",
    [ST_SET_INSERT] = "INSERT INTO key_share_sets (name, version, set_name, position, n, k) "
		      "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_SETS_GET] = "SELECT set_name, n, k FROM key_share_sets WHERE name = ?1 AND "
		    "version = ?2 ORDER BY position",
    [ST_SETS_DELETE] = "DELETE FROM key_share_sets WHERE name = ?1 AND version = ?2",
    [ST_SHARE_INSERT] = "INSERT INTO key_shares (name, version, set_name, x, token, label) "
			"VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_SHARES_GET] = "SELECT s.set_name, s.x, s.token, s.label FROM key_shares AS s "
		      "JOIN key_share_sets AS t USING (name, version, set_name) "
		      "WHERE s.name = ?1 AND s.version = ?2 ORDER BY t.position, s.x",
    [ST_SHARES_DELETE] = "DELETE FROM key_shares WHERE name = ?1 AND version = ?2",
    [ST_SHARE_COUNTS] = "SELECT token, count(*) FROM key_shares GROUP BY token ORDER BY token",
    [ST_SVC_PUT] = "INSERT OR REPLACE INTO services (" SVC_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_SVC_GET] = "SELECT " SVC_COLS " FROM services WHERE name = ?1",
    [ST_SVC_LIST] = "SELECT " SVC_COLS " FROM services ORDER BY name",
    [ST_SVC_DELETE] = "DELETE FROM services WHERE name = ?1",
    [ST_CA_CURRENT] = "SELECT " CA_COLS " FROM ca_keys WHERE retired = 0",
    [ST_CA_LIST] = "SELECT " CA_COLS " FROM ca_keys ORDER BY created, kid",
    [ST_CA_RETIRE] = "UPDATE ca_keys SET retired = ?1, expires = ?2 WHERE retired = 0",
    [ST_CA_INSERT] = "INSERT INTO ca_keys (" CA_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, 0, 0)",
    [ST_CA_DELETE] = "DELETE FROM ca_keys WHERE kid = ?1 AND retired != 0",
    [ST_REV_BUMP] = "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = "
		    "'cred_revision'",
    [ST_REV_GET] = "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'cred_revision'",
    [ST_CC_INSERT] = "INSERT INTO cred_clients (name, scope, created, disabled) VALUES (?1, ?2, "
		     "?3, ?4)",
    [ST_CC_GET] = "SELECT " CC_COLS " FROM cred_clients AS c WHERE c.name = ?1",
    [ST_CC_LIST] = "SELECT " CC_COLS " FROM cred_clients AS c ORDER BY c.name",
    [ST_CC_DISABLE] = "UPDATE cred_clients SET disabled = ?2 WHERE name = ?1",
    [ST_EN_INSERT] = "INSERT INTO enrollments (hash, client, created, expires, used) VALUES (?1, "
		     "?2, ?3, ?4, 0)",
    [ST_EN_DROP_UNUSED] = "DELETE FROM enrollments WHERE client = ?1 AND used = 0",
    [ST_EN_GET] = "SELECT client, created, expires, used FROM enrollments WHERE hash = ?1",
    [ST_EN_USE] = "UPDATE enrollments SET used = ?2 WHERE hash = ?1 AND used = 0",
    [ST_EN_PRUNE] = "DELETE FROM enrollments WHERE used != 0 OR expires <= ?1",
    [ST_RV_UPSERT] = "INSERT INTO revocations (kind, value, upto, created, expires) VALUES (?1, "
		     "?2, ?3, ?4, ?5) ON CONFLICT (kind, value) DO UPDATE SET upto = "
		     "max(upto, excluded.upto), expires = max(expires, excluded.expires)",
    [ST_RV_LIST] = "SELECT kind, value, upto, created, expires FROM revocations ORDER BY kind, "
		   "value",
    [ST_RV_PRUNE] = "DELETE FROM revocations WHERE expires <= ?1",
    [ST_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [ST_META_PUT] = "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE "
		    "SET value = excluded.value",
    [ST_LEDGER_HEAD] = "SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1",
    [ST_LEDGER_INSERT] = "INSERT INTO ledger (" LEDGER_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
			 "?7, ?8, ?9, ?10, ?11)",
    [ST_LEDGER_READ] = "SELECT " LEDGER_COLS " FROM ledger WHERE seq >= ?1 ORDER BY seq LIMIT ?2",
    [ST_CERT_PUT] = "INSERT INTO key_certs (name, version, der, created) VALUES (?1, ?2, ?3, ?4) "
		    "ON CONFLICT (name, version) DO UPDATE SET der = excluded.der, "
		    "created = excluded.created",
    [ST_CERT_GET] = "SELECT der FROM key_certs WHERE name = ?1 AND version = ?2",
    [ST_CERT_DELETE] = "DELETE FROM key_certs WHERE name = ?1 AND version = ?2",
    /* a key's rows, children before parents (the foreign keys) */
    [ST_KEY_DEL_CERTS] = "DELETE FROM key_certs WHERE name = ?1",
    [ST_KEY_DEL_SHARES] = "DELETE FROM key_shares WHERE name = ?1",
    [ST_KEY_DEL_SETS] = "DELETE FROM key_share_sets WHERE name = ?1",
    [ST_KEY_DEL_VERSIONS] = "DELETE FROM key_versions WHERE name = ?1",
};

struct sql_store {
	struct kos_store base;
	pthread_mutex_t lock;
	sqlite3 *db;
	char *path;
	int version;
	sqlite3_stmt *stmt[ST_COUNT];
	_Atomic uint64_t *hint; /* the mapped credential hint, or NULL */
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

/* --- statements ------------------------------------------------------------
 * Every statement is prepared once (prepare()) and run through the helpers
 * here: they step it, retrying SQLITE_BUSY on the first step, read what it
 * returns, then reset it and clear its bindings (a blob bound SQLITE_STATIC
 * must not outlive its buffer), and put the database's message in the
 * detail of a failure. rc is the result of the caller's bindings: a failed
 * bind is reported like a failed step. */

/* Reads the columns of the row a statement is on into rec; a return other
 * than KOS_OK (its detail set) refuses the row and ends the query. */
typedef kos_rv (*row_reader)(sqlite3_stmt *stmt, void *rec);

/* Runs a bound statement that returns no row. */
static kos_rv exec_bound(struct sql_store *s, sqlite3_stmt *stmt, int rc, const char *what)
{
	if (rc == SQLITE_OK)
		rc = step_retry(stmt);
	sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
	if (rc != SQLITE_DONE)
		return db_fail(s, rc, what);
	return KOS_OK;
}

/* Runs a bound statement for at most one row, whose columns read (NULL:
 * none wanted) takes into rec. *found says whether a row came and was
 * read: no row is no error here, the caller words its own. */
static kos_rv query_row(struct sql_store *s, sqlite3_stmt *stmt, int rc, row_reader read,
			void *rec, bool *found, const char *what)
{
	kos_rv rv = KOS_OK;

	*found = false;
	if (rc == SQLITE_OK)
		rc = step_retry(stmt);
	if (rc == SQLITE_ROW) {
		if (read != NULL)
			rv = read(stmt, rec);
		*found = rv == KOS_OK;
	} else if (rc != SQLITE_DONE) {
		rv = db_fail(s, rc, what);
	}
	sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
	return rv;
}

/* Runs a bound statement through all its rows, each read by each into
 * arg; the first refusal ends it. Only the first step is retried: a retry
 * resets the statement, which would then yield its rows again. */
static kos_rv query_rows(struct sql_store *s, sqlite3_stmt *stmt, int rc, row_reader each,
			 void *arg, const char *what)
{
	kos_rv rv = KOS_OK;

	if (rc == SQLITE_OK)
		rc = step_retry(stmt);
	for (; rc == SQLITE_ROW; rc = sqlite3_step(stmt)) {
		rv = each(stmt, arg);
		if (rv != KOS_OK)
			break;
	}
	if (rv == KOS_OK && rc != SQLITE_DONE)
		rv = db_fail(s, rc, what);
	sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
	return rv;
}

static kos_rv read_int(sqlite3_stmt *stmt, void *rec)
{
	*(int64_t *)rec = sqlite3_column_int64(stmt, 0);
	return KOS_OK;
}

/* The integer in the first column of a bound statement's one row; 0 when
 * no row comes. */
static kos_rv query_int(struct sql_store *s, sqlite3_stmt *stmt, int rc, int64_t *out,
			const char *what)
{
	bool found;

	*out = 0;
	return query_row(s, stmt, rc, read_int, out, &found, what);
}

/* Makes room for one more element of size sz in *arr, whose capacity is *cap
 * and which holds n. */
static kos_rv grow(void **arr, size_t *cap, size_t n, size_t sz)
{
	size_t ncap;
	void *na;

	if (n < *cap)
		return KOS_OK;
	ncap = *cap ? *cap * 2 : 16;
	if (ncap > SIZE_MAX / sz)
		return kos_error_set(KOS_E_NOMEM, "state store: too many rows");
	na = realloc(*arr, ncap * sz);
	if (na == NULL)
		return kos_error_set(KOS_E_NOMEM, "state store: out of memory");
	*arr = na;
	*cap = ncap;
	return KOS_OK;
}

struct collect {
	void *arr;
	size_t elem, n, cap;
	row_reader read;
};

static kos_rv collect_row(sqlite3_stmt *stmt, void *arg)
{
	struct collect *c = arg;
	unsigned char *rec;
	kos_rv rv;

	rv = grow(&c->arr, &c->cap, c->n, c->elem);
	if (rv != KOS_OK)
		return rv;
	rec = (unsigned char *)c->arr + c->n * c->elem;
	memset(rec, 0, c->elem);
	rv = c->read(stmt, rec);
	if (rv == KOS_OK)
		c->n++;
	return rv;
}

/* Reads every row of a bound statement into a new array of elem-byte
 * records, each zeroed and filled by read, under the caller's lock. On
 * failure nothing is handed out and what was read is wiped. *cap is the
 * array's capacity in records (to wipe it). */
static kos_rv select_rows_locked(struct sql_store *s, sqlite3_stmt *stmt, int rc, size_t elem,
				 row_reader read, const char *what, void **out, size_t *n,
				 size_t *cap)
{
	struct collect c = {NULL, elem, 0, 0, read};
	kos_rv rv = query_rows(s, stmt, rc, collect_row, &c, what);

	*out = NULL;
	*n = 0;
	*cap = 0;
	if (rv != KOS_OK) {
		if (c.arr != NULL)
			OPENSSL_cleanse(c.arr, c.cap * elem);
		free(c.arr);
		return rv;
	}
	*out = c.arr;
	*n = c.n;
	*cap = c.cap;
	return KOS_OK;
}

/* select_rows_locked() for a statement without parameters, in one pass
 * under the handle's lock. */
static kos_rv select_rows(struct sql_store *s, sqlite3_stmt *stmt, size_t elem, row_reader read,
			  const char *what, void **out, size_t *n, size_t *cap)
{
	kos_rv rv;

	pthread_mutex_lock(&s->lock);
	rv = select_rows_locked(s, stmt, SQLITE_OK, elem, read, what, out, n, cap);
	pthread_mutex_unlock(&s->lock);
	return rv;
}

/* --- columns --------------------------------------------------------------- */

/* Copies text column col into out (size bytes), cut to fit and
 * NUL-terminated; NULL reads as "". */
static void copy_col(sqlite3_stmt *stmt, int col, char *out, size_t size)
{
	const unsigned char *t = sqlite3_column_text(stmt, col);

	memset(out, 0, size);
	if (t != NULL)
		memcpy(out, t, strnlen((const char *)t, size - 1));
}

/* Copies blob column col into out when it holds 1..cap bytes. Returns its
 * length: 0 for NULL or empty, above cap when nothing was copied. */
static size_t col_blob(sqlite3_stmt *stmt, int col, void *out, size_t cap)
{
	const void *blob = sqlite3_column_blob(stmt, col);
	int len = sqlite3_column_bytes(stmt, col);

	if (blob == NULL || len <= 0)
		return 0;
	if ((size_t)len <= cap)
		memcpy(out, blob, (size_t)len);
	return (size_t)len;
}

/* Copies blob column col into out when it holds exactly len bytes. */
static bool col_blob_exact(sqlite3_stmt *stmt, int col, void *out, size_t len)
{
	const void *blob = sqlite3_column_blob(stmt, col);

	if (blob == NULL || sqlite3_column_bytes(stmt, col) != (int)len)
		return false;
	memcpy(out, blob, len);
	return true;
}

/* --- trust ----------------------------------------------------------------- */

/* Binds ?2..?24 from st (?1 is the client). */
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
	BIND(sqlite3_bind_double(stmt, i, st->ceiling));
	BIND(sqlite3_bind_int64(stmt, i, st->ceiling_at));
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
	st->ceiling = sqlite3_column_double(stmt, c++);
	st->ceiling_at = sqlite3_column_int64(stmt, c++);
}

static void set_client(struct kos_trust_state *st, const char *client)
{
	memset(st->client, 0, sizeof(st->client));
	memcpy(st->client, client, strnlen(client, sizeof(st->client) - 1));
}

/* A row read into out, which is set afresh for name: name and what the
 * row holds. */
struct named_rec {
	const char *name;
	void *out;
};

static kos_rv read_trust_row(sqlite3_stmt *stmt, void *rec)
{
	struct named_rec *r = rec;
	struct kos_trust_state *st = r->out;

	memset(st, 0, sizeof(*st));
	set_client(st, r->name);
	read_state(stmt, 0, st);
	return KOS_OK;
}

/* Loads client into *st inside the caller's transaction or lock; *found
 * says whether it exists (when not, *st is untouched). */
static kos_rv load(struct sql_store *s, const char *client, struct kos_trust_state *st, bool *found)
{
	sqlite3_stmt *stmt = s->stmt[ST_GET];
	struct named_rec r = {client, st};

	return query_row(s, stmt, sqlite3_bind_text(stmt, 1, client, -1, SQLITE_STATIC),
			 read_trust_row, &r, found, "cannot read a client");
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
	return exec_bound(s, stmt, rc, "cannot write a client");
}

/* The body of trust_delete, inside the transaction and the lock. */
static kos_rv delete_in_tx(struct sql_store *s, const char *client, kos_trust_update_fn fn,
			   void *arg)
{
	sqlite3_stmt *stmt = s->stmt[ST_DELETE];
	kos_rv rv;

	(void)fn;
	(void)arg;
	rv = exec_bound(s, stmt, sqlite3_bind_text(stmt, 1, client, -1, SQLITE_STATIC),
			"cannot delete a client");
	if (rv != KOS_OK)
		return rv;
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

/* One BEGIN IMMEDIATE for the whole batch (one commit instead of n), and
 * for decisions_commit the ledger entries after the trust updates in the
 * same transaction. */
static kos_rv sql_decisions_commit(kos_store *st, size_t n, const char *const *clients,
				   kos_trust_update_fn fn, void *const *args, kos_ledger_entry *e,
				   size_t m);

static kos_rv sql_trust_update_batch(kos_store *st, size_t n, const char *const *clients,
				     kos_trust_update_fn fn, void *const *args)
{
	return sql_decisions_commit(st, n, clients, fn, args, NULL, 0);
}

static kos_rv sql_trust_delete(kos_store *st, const char *client)
{
	return in_tx(sql_of(st), delete_in_tx, client, NULL, NULL);
}

/* A row of ST_LIST: the client, then the TRUST_COLS. */
static kos_rv read_trust_list_row(sqlite3_stmt *stmt, void *rec)
{
	const unsigned char *name = sqlite3_column_text(stmt, 0);

	set_client(rec, name != NULL ? (const char *)name : "");
	read_state(stmt, 1, rec);
	return KOS_OK;
}

static kos_rv sql_trust_page(kos_store *st, const char *after, size_t max,
			     struct kos_trust_state **out, size_t *n)
{
	struct sql_store *s = sql_of(st);
	sqlite3_stmt *stmt = s->stmt[ST_LIST];
	size_t cap;
	kos_rv rv;
	int rc;

	pthread_mutex_lock(&s->lock);
	rc = sqlite3_bind_text(stmt, 1, after, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(stmt, 2, max > INT64_MAX ? INT64_MAX : (sqlite3_int64)max);
	rv = select_rows_locked(s, stmt, rc, sizeof(**out), read_trust_list_row,
				"cannot list clients", (void **)out, n, &cap);
	pthread_mutex_unlock(&s->lock);
	return rv;
}

/* --- keys ------------------------------------------------------------------- */

/* Runs body in one transaction under the handle's lock: BEGIN IMMEDIATE for
 * a change, a plain BEGIN (one consistent snapshot) for reads; committed
 * when body succeeds, rolled back otherwise. */
static kos_rv run_tx(struct sql_store *s, bool write, kos_rv (*body)(struct sql_store *, void *),
		     void *arg)
{
	kos_rv rv;
	int rc;

	pthread_mutex_lock(&s->lock);
	if (write) {
		rv = tx_begin(s);
	} else {
		rc = step_retry(s->stmt[ST_BEGIN_READ]);
		rv = rc == SQLITE_DONE ? KOS_OK : db_fail(s, rc, "cannot start a transaction");
	}
	if (rv == KOS_OK) {
		rv = body(s, arg);
		if (rv == KOS_OK)
			rv = tx_commit(s);
		else
			tx_rollback(s);
	}
	pthread_mutex_unlock(&s->lock);
	return rv;
}

/* Binds ?1 = name and ?2 = version (when version is not 0). */
static int bind_nv(sqlite3_stmt *stmt, const char *name, uint32_t version)
{
	int rc = sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);

	if (rc == SQLITE_OK && version != 0)
		rc = sqlite3_bind_int64(stmt, 2, version);
	return rc;
}

static kos_rv unknown_key(const char *name)
{
	return kos_error_set(KOS_E_NOTFOUND, "unknown key '%s'", name);
}

static kos_rv read_key_row(sqlite3_stmt *stmt, void *rec)
{
	struct named_rec *r = rec;
	struct kos_store_key *k = r->out;

	memset(k, 0, sizeof(*k));
	memcpy(k->name, r->name, strnlen(r->name, sizeof(k->name) - 1));
	k->type = (kos_key_type)sqlite3_column_int(stmt, 0);
	k->created = sqlite3_column_int64(stmt, 1);
	return KOS_OK;
}

/* Reads key name's row into *out (may be NULL); *found says whether it
 * exists. */
static kos_rv load_key(struct sql_store *s, const char *name, struct kos_store_key *out,
		       bool *found)
{
	sqlite3_stmt *stmt = s->stmt[ST_KEY_GET];
	struct named_rec r = {name, out};

	return query_row(s, stmt, bind_nv(stmt, name, 0), out != NULL ? read_key_row : NULL, &r,
			 found, "cannot read a key");
}

static kos_rv state_parse(const unsigned char *t, enum kos_key_state *out)
{
	int i;

	for (i = KOS_KEY_STATE_CREATING; i <= KOS_KEY_STATE_RETIRED; i++) {
		if (t != NULL && strcmp((const char *)t, kos_key_state_name(i)) == 0) {
			*out = (enum kos_key_state)i;
			return KOS_OK;
		}
	}
	return kos_error_set(KOS_E_STORE, "state store: a key version in an unknown state");
}

static kos_rv read_state_row(sqlite3_stmt *stmt, void *rec)
{
	return state_parse(sqlite3_column_text(stmt, 0), rec);
}

/* The state of name/version; *found says whether the version exists. */
static kos_rv load_state(struct sql_store *s, const char *name, uint32_t version,
			 enum kos_key_state *state, bool *found)
{
	sqlite3_stmt *stmt = s->stmt[ST_VER_STATE];

	return query_row(s, stmt, bind_nv(stmt, name, version), read_state_row, state, found,
			 "cannot read a key version");
}

/* Reads the VER_COLS of the current row into v (name, sets and shares
 * untouched). */
static kos_rv read_version(sqlite3_stmt *stmt, void *rec)
{
	struct kos_store_version *v = rec;
	size_t len;
	kos_rv rv;

	v->version = (uint32_t)sqlite3_column_int64(stmt, 0);
	rv = state_parse(sqlite3_column_text(stmt, 1), &v->state);
	if (rv != KOS_OK)
		return rv;
	v->created = sqlite3_column_int64(stmt, 2);
	v->has_kcv = col_blob_exact(stmt, 3, v->kcv, KOS_KCV_LEN);
	len = col_blob(stmt, 4, v->spki, sizeof(v->spki));
	if (len > sizeof(v->spki))
		return kos_error_set(KOS_E_STORE, "state store: a public key of %zu bytes", len);
	v->spki_len = len;
	copy_col(stmt, 5, v->token, sizeof(v->token));
	copy_col(stmt, 6, v->label, sizeof(v->label));
	copy_col(stmt, 7, v->creator, sizeof(v->creator));
	return KOS_OK;
}

/* A row of ST_SETS_GET into the next of v's share sets. */
static kos_rv read_set_row(sqlite3_stmt *stmt, void *rec)
{
	struct kos_store_version *v = rec;
	struct kos_store_share_set *set;

	if (v->n_sets == KOS_ARRAY_SIZE(v->sets))
		return kos_error_set(KOS_E_STORE,
				     "state store: key %s version %u has more "
				     "than %zu share sets",
				     v->name, v->version, KOS_ARRAY_SIZE(v->sets));
	set = &v->sets[v->n_sets++];
	copy_col(stmt, 0, set->name, sizeof(set->name));
	set->n = (unsigned)sqlite3_column_int(stmt, 1);
	set->k = (unsigned)sqlite3_column_int(stmt, 2);
	return KOS_OK;
}

static kos_rv read_share_row(sqlite3_stmt *stmt, void *rec)
{
	struct kos_store_share *sh = rec;

	copy_col(stmt, 0, sh->set, sizeof(sh->set));
	sh->x = (uint8_t)sqlite3_column_int(stmt, 1);
	copy_col(stmt, 2, sh->token, sizeof(sh->token));
	copy_col(stmt, 3, sh->label, sizeof(sh->label));
	return KOS_OK;
}

/* Loads the sets and shares of v (name and version set). */
static kos_rv load_shares(struct sql_store *s, struct kos_store_version *v)
{
	sqlite3_stmt *stmt = s->stmt[ST_SETS_GET];
	struct kos_store_share *arr;
	size_t n, cap;
	kos_rv rv;

	v->n_sets = 0;
	rv = query_rows(s, stmt, bind_nv(stmt, v->name, v->version), read_set_row, v,
			"cannot read share sets");
	if (rv != KOS_OK)
		return rv;
	stmt = s->stmt[ST_SHARES_GET];
	rv = select_rows_locked(s, stmt, bind_nv(stmt, v->name, v->version), sizeof(*arr),
				read_share_row, "cannot read shares", (void **)&arr, &n, &cap);
	if (rv != KOS_OK)
		return rv;
	free(v->shares);
	v->shares = arr;
	v->n_shares = n;
	return KOS_OK;
}

struct begin_arg {
	const struct kos_store_key *key;
	const char *name;
	const struct kos_store_version *v;
	uint32_t version;
};

static kos_rv begin_in_tx(struct sql_store *s, void *varg)
{
	struct begin_arg *a = varg;
	sqlite3_stmt *stmt;
	int64_t max;
	bool found;
	kos_rv rv;
	int rc;

	rv = load_key(s, a->name, NULL, &found);
	if (rv != KOS_OK)
		return rv;
	if (a->key != NULL && found)
		return kos_error_set(KOS_E_EXISTS, "key '%s' already exists", a->name);
	if (a->key == NULL && !found)
		return unknown_key(a->name);
	if (a->key != NULL) {
		stmt = s->stmt[ST_KEY_INSERT];
		rc = bind_nv(stmt, a->name, 0);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_int(stmt, 2, (int)a->key->type);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_int64(stmt, 3, a->key->created);
		rv = exec_bound(s, stmt, rc, "cannot write a key");
		if (rv != KOS_OK)
			return rv;
	}
	stmt = s->stmt[ST_VER_MAX];
	rv = query_int(s, stmt, bind_nv(stmt, a->name, 0), &max, "cannot read key versions");
	if (rv != KOS_OK)
		return rv;
	if (max < 0 || max >= (int64_t)UINT32_MAX)
		return kos_error_set(KOS_E_RANGE, "key '%s' has no version number left", a->name);
	a->version = (uint32_t)max + 1;
	stmt = s->stmt[ST_VER_INSERT];
	rc = bind_nv(stmt, a->name, a->version);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(stmt, 3, a->v->created);
	if (rc == SQLITE_OK)
		rc = a->v->has_kcv
			 ? sqlite3_bind_blob(stmt, 4, a->v->kcv, KOS_KCV_LEN, SQLITE_STATIC)
			 : sqlite3_bind_null(stmt, 4);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(stmt, 5, a->v->creator, -1, SQLITE_STATIC);
	return exec_bound(s, stmt, rc, "cannot write a key version");
}

static kos_rv sql_key_version_begin(kos_store *st, const struct kos_store_key *key,
				    const char *name, const struct kos_store_version *v,
				    uint32_t *version)
{
	struct begin_arg a = {key, name, v, 0};
	kos_rv rv = run_tx(sql_of(st), true, begin_in_tx, &a);

	*version = rv == KOS_OK ? a.version : 0;
	return rv;
}

static kos_rv activate_in_tx(struct sql_store *s, void *varg)
{
	const struct kos_store_version *v = varg;
	sqlite3_stmt *stmt = s->stmt[ST_VER_ACTIVATE];
	size_t i;
	kos_rv rv;
	int rc;

	rc = bind_nv(stmt, v->name, v->version);
	if (rc == SQLITE_OK)
		rc = v->spki_len > 0
			 ? sqlite3_bind_blob(stmt, 3, v->spki, (int)v->spki_len, SQLITE_STATIC)
			 : sqlite3_bind_null(stmt, 3);
	if (rc == SQLITE_OK)
		rc = v->token[0] ? sqlite3_bind_text(stmt, 4, v->token, -1, SQLITE_STATIC)
				 : sqlite3_bind_null(stmt, 4);
	if (rc == SQLITE_OK)
		rc = v->label[0] ? sqlite3_bind_text(stmt, 5, v->label, -1, SQLITE_STATIC)
				 : sqlite3_bind_null(stmt, 5);
	rv = exec_bound(s, stmt, rc, "cannot activate a key version");
	if (rv != KOS_OK)
		return rv;
	if (sqlite3_changes(s->db) == 0)
		return kos_error_set(KOS_E_NOTFOUND,
				     "key '%s' version %u is no longer being created (removed by "
				     "fsck?)",
				     v->name, v->version);
	for (i = 0; i < v->n_sets; i++) {
		stmt = s->stmt[ST_SET_INSERT];
		rc = bind_nv(stmt, v->name, v->version);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_text(stmt, 3, v->sets[i].name, -1, SQLITE_STATIC);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_int64(stmt, 4, (int64_t)i);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_int(stmt, 5, (int)v->sets[i].n);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_int(stmt, 6, (int)v->sets[i].k);
		rv = exec_bound(s, stmt, rc, "cannot write a share set");
		if (rv != KOS_OK)
			return rv;
	}
	for (i = 0; i < v->n_shares; i++) {
		const struct kos_store_share *sh = &v->shares[i];

		stmt = s->stmt[ST_SHARE_INSERT];
		rc = bind_nv(stmt, v->name, v->version);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_text(stmt, 3, sh->set, -1, SQLITE_STATIC);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_int(stmt, 4, sh->x);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_text(stmt, 5, sh->token, -1, SQLITE_STATIC);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_text(stmt, 6, sh->label, -1, SQLITE_STATIC);
		rv = exec_bound(s, stmt, rc, "cannot write a share location");
		if (rv != KOS_OK)
			return rv;
	}
	return KOS_OK;
}

static kos_rv sql_key_version_activate(kos_store *st, const struct kos_store_version *v)
{
	return run_tx(sql_of(st), true, activate_in_tx, (void *)v);
}

struct nv_arg {
	const char *name;
	uint32_t version;
};

/* Deletes the share rows and sets of name/version. */
static kos_rv drop_shares(struct sql_store *s, const char *name, uint32_t version, bool sets)
{
	sqlite3_stmt *stmt = s->stmt[ST_SHARES_DELETE];
	kos_rv rv;

	rv = exec_bound(s, stmt, bind_nv(stmt, name, version), "cannot delete shares");
	if (rv != KOS_OK || !sets)
		return rv;
	stmt = s->stmt[ST_SETS_DELETE];
	return exec_bound(s, stmt, bind_nv(stmt, name, version), "cannot delete share sets");
}

static kos_rv abort_in_tx(struct sql_store *s, void *varg)
{
	struct nv_arg *a = varg;
	enum kos_key_state state;
	sqlite3_stmt *stmt;
	int64_t left;
	bool found;
	kos_rv rv;

	rv = load_state(s, a->name, a->version, &state, &found);
	if (rv != KOS_OK)
		return rv;
	if (!found || state != KOS_KEY_STATE_CREATING)
		return kos_error_set(KOS_E_NOTFOUND, "key '%s' has no version %u being created",
				     a->name, a->version);
	rv = drop_shares(s, a->name, a->version, true);
	if (rv != KOS_OK)
		return rv;
	stmt = s->stmt[ST_VER_DELETE];
	rv = exec_bound(s, stmt, bind_nv(stmt, a->name, a->version), "cannot delete a key version");
	if (rv != KOS_OK)
		return rv;
	stmt = s->stmt[ST_VER_COUNT];
	rv = query_int(s, stmt, bind_nv(stmt, a->name, 0), &left, "cannot count key versions");
	if (rv != KOS_OK || left > 0)
		return rv;
	stmt = s->stmt[ST_KEY_DELETE];
	return exec_bound(s, stmt, bind_nv(stmt, a->name, 0), "cannot delete a key");
}

static kos_rv sql_key_version_abort(kos_store *st, const char *name, uint32_t version)
{
	struct nv_arg a = {name, version};

	return run_tx(sql_of(st), true, abort_in_tx, &a);
}

static kos_rv retire_in_tx(struct sql_store *s, void *varg)
{
	struct nv_arg *a = varg;
	enum kos_key_state state;
	sqlite3_stmt *stmt;
	int64_t current;
	bool found;
	kos_rv rv;

	rv = load_key(s, a->name, NULL, &found);
	if (rv != KOS_OK)
		return rv;
	if (!found)
		return unknown_key(a->name);
	rv = load_state(s, a->name, a->version, &state, &found);
	if (rv != KOS_OK)
		return rv;
	if (!found || state == KOS_KEY_STATE_CREATING)
		return kos_error_set(KOS_E_NOTFOUND, "key '%s' has no version %u", a->name,
				     a->version);
	if (state == KOS_KEY_STATE_RETIRED)
		return kos_error_set(KOS_E_NOTFOUND, "key '%s' version %u is already retired",
				     a->name, a->version);
	stmt = s->stmt[ST_VER_CURRENT];
	rv = query_int(s, stmt, bind_nv(stmt, a->name, 0), &current, "cannot read key versions");
	if (rv != KOS_OK)
		return rv;
	if (current == (int64_t)a->version)
		return kos_error_set(KOS_E_INVALID,
				     "key '%s' version %u is the current version: rotate first",
				     a->name, a->version);
	stmt = s->stmt[ST_VER_RETIRE];
	rv = exec_bound(s, stmt, bind_nv(stmt, a->name, a->version), "cannot retire a key version");
	if (rv != KOS_OK)
		return rv;
	return drop_shares(s, a->name, a->version, false);
}

static kos_rv sql_key_version_retire(kos_store *st, const char *name, uint32_t version)
{
	struct nv_arg a = {name, version};

	return run_tx(sql_of(st), true, retire_in_tx, &a);
}

static kos_rv key_delete_in_tx(struct sql_store *s, void *varg)
{
	static const int order[] = {ST_KEY_DEL_CERTS, ST_KEY_DEL_SHARES, ST_KEY_DEL_SETS,
				    ST_KEY_DEL_VERSIONS, ST_KEY_DELETE};
	struct nv_arg *a = varg;
	sqlite3_stmt *stmt;
	bool found;
	size_t i;
	kos_rv rv;

	rv = load_key(s, a->name, NULL, &found);
	if (rv != KOS_OK)
		return rv;
	if (!found)
		return unknown_key(a->name);
	for (i = 0; rv == KOS_OK && i < KOS_ARRAY_SIZE(order); i++) {
		stmt = s->stmt[order[i]];
		rv = exec_bound(s, stmt, bind_nv(stmt, a->name, 0), "cannot delete a key");
	}
	return rv;
}

static kos_rv sql_key_delete(kos_store *st, const char *name)
{
	struct nv_arg a = {name, 0};

	return run_tx(sql_of(st), true, key_delete_in_tx, &a);
}

static kos_rv sql_key_get(kos_store *st, const char *name, struct kos_store_key *out)
{
	struct sql_store *s = sql_of(st);
	bool found;
	kos_rv rv;

	pthread_mutex_lock(&s->lock);
	rv = load_key(s, name, out, &found);
	pthread_mutex_unlock(&s->lock);
	if (rv == KOS_OK && !found)
		rv = unknown_key(name);
	return rv;
}

/* A row of ST_KEY_LIST. */
static kos_rv read_key_list_row(sqlite3_stmt *stmt, void *rec)
{
	struct kos_store_key *k = rec;

	copy_col(stmt, 0, k->name, sizeof(k->name));
	k->type = (kos_key_type)sqlite3_column_int(stmt, 1);
	k->created = sqlite3_column_int64(stmt, 2);
	return KOS_OK;
}

static kos_rv sql_key_list(kos_store *st, struct kos_store_key **out, size_t *n)
{
	struct sql_store *s = sql_of(st);
	size_t cap;

	return select_rows(s, s->stmt[ST_KEY_LIST], sizeof(**out), read_key_list_row,
			   "cannot list keys", (void **)out, n, &cap);
}

struct version_arg {
	const char *name;
	uint32_t version;
	struct kos_store_version *v;
	size_t n;
};

static kos_rv version_get_in_tx(struct sql_store *s, void *varg)
{
	struct version_arg *a = varg;
	struct kos_store_version *v = a->v;
	uint32_t version = a->version;
	sqlite3_stmt *stmt;
	bool found;
	kos_rv rv;

	rv = load_key(s, a->name, NULL, &found);
	if (rv != KOS_OK)
		return rv;
	if (!found)
		return unknown_key(a->name);
	if (version == 0) {
		int64_t current;

		stmt = s->stmt[ST_VER_CURRENT];
		rv = query_int(s, stmt, bind_nv(stmt, a->name, 0), &current,
			       "cannot read key versions");
		if (rv != KOS_OK)
			return rv;
		if (current == 0)
			return kos_error_set(KOS_E_NOTFOUND, "key '%s' has no active version",
					     a->name);
		version = (uint32_t)current;
	}
	stmt = s->stmt[ST_VER_GET];
	rv = query_row(s, stmt, bind_nv(stmt, a->name, version), read_version, v, &found,
		       "cannot read a key version");
	if (rv != KOS_OK)
		return rv;
	if (!found)
		return kos_error_set(KOS_E_NOTFOUND, "key '%s' has no version %u", a->name,
				     version);
	memcpy(v->name, a->name, strnlen(a->name, sizeof(v->name) - 1));
	return load_shares(s, v);
}

static kos_rv sql_key_version_get(kos_store *st, const char *name, uint32_t version,
				  struct kos_store_version *out)
{
	struct version_arg a = {name, version, out, 0};
	kos_rv rv;

	memset(out, 0, sizeof(*out));
	rv = run_tx(sql_of(st), false, version_get_in_tx, &a);
	if (rv != KOS_OK)
		kos_store_version_clear(out);
	return rv;
}

static kos_rv versions_in_tx(struct sql_store *s, void *varg)
{
	struct version_arg *a = varg;
	sqlite3_stmt *stmt = s->stmt[ST_VER_LIST];
	size_t cap, i;
	bool found;
	kos_rv rv;

	rv = load_key(s, a->name, NULL, &found);
	if (rv != KOS_OK)
		return rv;
	if (!found)
		return unknown_key(a->name);
	rv = select_rows_locked(s, stmt, bind_nv(stmt, a->name, 0), sizeof(*a->v), read_version,
				"cannot list key versions", (void **)&a->v, &a->n, &cap);
	for (i = 0; rv == KOS_OK && i < a->n; i++) {
		memcpy(a->v[i].name, a->name, strnlen(a->name, sizeof(a->v[i].name) - 1));
		rv = load_shares(s, &a->v[i]);
	}
	return rv;
}

static kos_rv sql_key_versions(kos_store *st, const char *name, struct kos_store_version **out,
			       size_t *n)
{
	struct version_arg a = {name, 0, NULL, 0};
	kos_rv rv;

	*out = NULL;
	*n = 0;
	rv = run_tx(sql_of(st), false, versions_in_tx, &a);
	if (rv != KOS_OK) {
		kos_store_versions_free(a.v, a.n);
		return rv;
	}
	*out = a.v;
	*n = a.n;
	return KOS_OK;
}

struct share_counts {
	struct {
		char token[KOS_TOKEN_NAME_MAX + 1];
		uint64_t n;
	} rows[64];
	size_t n;
};

/* More tokens than rows[] holds are rare and only make the choice of
 * tokens less even: the rest is passed over. */
static kos_rv read_share_count_row(sqlite3_stmt *stmt, void *rec)
{
	struct share_counts *c = rec;

	if (c->n == KOS_ARRAY_SIZE(c->rows))
		return KOS_OK;
	copy_col(stmt, 0, c->rows[c->n].token, sizeof(c->rows[c->n].token));
	c->rows[c->n].n = i2u(sqlite3_column_int64(stmt, 1));
	c->n++;
	return KOS_OK;
}

static kos_rv sql_share_counts(kos_store *st, void (*fn)(const char *token, uint64_t n, void *arg),
			       void *arg)
{
	struct sql_store *s = sql_of(st);
	struct share_counts c;
	size_t i;
	kos_rv rv;

	/* fn is called outside the lock */
	c.n = 0;
	pthread_mutex_lock(&s->lock);
	rv = query_rows(s, s->stmt[ST_SHARE_COUNTS], SQLITE_OK, read_share_count_row, &c,
			"cannot count shares");
	pthread_mutex_unlock(&s->lock);
	for (i = 0; rv == KOS_OK && i < c.n; i++)
		fn(c.rows[i].token, c.rows[i].n, arg);
	return rv;
}

/* --- services ---------------------------------------------------------------- */

static kos_rv read_service(sqlite3_stmt *stmt, void *rec)
{
	struct kos_service_row *row = rec;
	size_t n;

	memset(row, 0, sizeof(*row));
	copy_col(stmt, 0, row->name, sizeof(row->name));
	copy_col(stmt, 1, row->ops, sizeof(row->ops));
	row->seed_version = (uint32_t)sqlite3_column_int64(stmt, 2);
	n = col_blob(stmt, 3, row->wrapped_seed, sizeof(row->wrapped_seed));
	if (n <= sizeof(row->wrapped_seed))
		row->wrapped_len = n;
	row->created = sqlite3_column_int64(stmt, 4);
	row->rotated = sqlite3_column_int64(stmt, 5);
	return KOS_OK;
}

static kos_rv sql_service_put(kos_store *st, const struct kos_service_row *row)
{
	struct sql_store *s = sql_of(st);
	sqlite3_stmt *stmt = s->stmt[ST_SVC_PUT];
	kos_rv rv;
	int rc;

	if (row->wrapped_len == 0 || row->wrapped_len > sizeof(row->wrapped_seed))
		return kos_error_set(KOS_E_INVALID, "service '%s': wrapped seed of %zu bytes",
				     row->name, row->wrapped_len);
	pthread_mutex_lock(&s->lock);
	rc = sqlite3_bind_text(stmt, 1, row->name, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(stmt, 2, row->ops, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(stmt, 3, row->seed_version);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_blob(stmt, 4, row->wrapped_seed, (int)row->wrapped_len,
				       SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(stmt, 5, row->created);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(stmt, 6, row->rotated);
	rv = exec_bound(s, stmt, rc, "cannot write a service");
	pthread_mutex_unlock(&s->lock);
	return rv;
}

static kos_rv sql_service_get(kos_store *st, const char *name, struct kos_service_row *row)
{
	struct sql_store *s = sql_of(st);
	sqlite3_stmt *stmt = s->stmt[ST_SVC_GET];
	bool found;
	kos_rv rv;

	pthread_mutex_lock(&s->lock);
	rv = query_row(s, stmt, sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC), read_service,
		       row, &found, "cannot read a service");
	pthread_mutex_unlock(&s->lock);
	if (rv == KOS_OK && !found)
		rv = kos_error_set(KOS_E_NOTFOUND, "unknown service '%s'", name);
	return rv;
}

static kos_rv sql_service_list(kos_store *st,
			       int (*fn)(const struct kos_service_row *row, void *arg), void *arg)
{
	struct sql_store *s = sql_of(st);
	struct kos_service_row *rows;
	size_t n, cap, i;
	kos_rv rv;

	/* read whole, then call fn outside the lock: fn may use the store */
	rv = select_rows(s, s->stmt[ST_SVC_LIST], sizeof(*rows), read_service,
			 "cannot list services", (void **)&rows, &n, &cap);
	for (i = 0; rv == KOS_OK && i < n; i++) {
		int r = fn(&rows[i], arg);

		if (r != 0)
			rv = r;
	}
	if (rows != NULL)
		OPENSSL_cleanse(rows, cap * sizeof(*rows));
	free(rows);
	return rv;
}

static kos_rv sql_service_delete(kos_store *st, const char *name)
{
	struct sql_store *s = sql_of(st);
	sqlite3_stmt *stmt = s->stmt[ST_SVC_DELETE];
	kos_rv rv;

	pthread_mutex_lock(&s->lock);
	rv = exec_bound(s, stmt, sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC),
			"cannot delete a service");
	if (rv == KOS_OK && sqlite3_changes(s->db) == 0)
		rv = kos_error_set(KOS_E_NOTFOUND, "unknown service '%s'", name);
	pthread_mutex_unlock(&s->lock);
	return rv;
}

/* --- credentials ------------------------------------------------------------- */

/* Signals a committed change of the credential revision to every process
 * that mapped the hint. */
static void hint_bump(struct sql_store *s)
{
	if (s->hint != NULL)
		atomic_fetch_add_explicit(s->hint, 1, memory_order_release);
}

static kos_rv bump_revision(struct sql_store *s)
{
	sqlite3_stmt *stmt = s->stmt[ST_REV_BUMP];

	return exec_bound(s, stmt, SQLITE_OK, "cannot bump the credential revision");
}

/* Runs a change of the credential revision: body, the bump, the commit,
 * then the hint. */
static kos_rv run_cred_tx(struct sql_store *s, kos_rv (*body)(struct sql_store *, void *),
			  void *arg);

struct cred_body {
	kos_rv (*body)(struct sql_store *, void *);
	void *arg;
};

static kos_rv cred_body_run(struct sql_store *s, void *varg)
{
	struct cred_body *b = varg;
	kos_rv rv = b->body(s, b->arg);

	if (rv == KOS_OK)
		rv = bump_revision(s);
	return rv;
}

static kos_rv run_cred_tx(struct sql_store *s, kos_rv (*body)(struct sql_store *, void *),
			  void *arg)
{
	struct cred_body b = {body, arg};
	kos_rv rv = run_tx(s, true, cred_body_run, &b);

	if (rv == KOS_OK)
		hint_bump(s);
	return rv;
}

static kos_rv read_ca_key(sqlite3_stmt *stmt, void *rec)
{
	struct kos_store_ca_key *k = rec;
	size_t n;

	memset(k, 0, sizeof(*k));
	copy_col(stmt, 0, k->kid, sizeof(k->kid));
	copy_col(stmt, 1, k->token, sizeof(k->token));
	copy_col(stmt, 2, k->label, sizeof(k->label));
	n = col_blob(stmt, 3, k->spki, sizeof(k->spki));
	if (n <= sizeof(k->spki))
		k->spki_len = n;
	k->created = sqlite3_column_int64(stmt, 4);
	k->retired = sqlite3_column_int64(stmt, 5);
	k->expires = sqlite3_column_int64(stmt, 6);
	return KOS_OK;
}

/* The current CA key into *out (may be NULL); *found says whether one exists. */
static kos_rv load_current(struct sql_store *s, struct kos_store_ca_key *out, bool *found)
{
	return query_row(s, s->stmt[ST_CA_CURRENT], SQLITE_OK, out != NULL ? read_ca_key : NULL,
			 out, found, "cannot read the CA key");
}

struct install_arg {
	const struct kos_store_ca_key *key;
	kos_usec old_expires;
	bool first;
};

static kos_rv install_in_tx(struct sql_store *s, void *varg)
{
	struct install_arg *a = varg;
	const struct kos_store_ca_key *k = a->key;
	sqlite3_stmt *stmt;
	bool found;
	kos_rv rv;
	int rc;

	rv = load_current(s, NULL, &found);
	if (rv != KOS_OK)
		return rv;
	if (a->first && found)
		return kos_error_set(KOS_E_EXISTS, "the CA has a key already (rotate it instead)");
	if (!a->first && !found)
		return kos_error_set(KOS_E_NOTFOUND, "the CA has no key yet (initialise it first)");
	if (found) {
		stmt = s->stmt[ST_CA_RETIRE];
		rc = sqlite3_bind_int64(stmt, 1, k->created);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_int64(stmt, 2, a->old_expires);
		rv = exec_bound(s, stmt, rc, "cannot retire the CA key");
		if (rv != KOS_OK)
			return rv;
	}
	stmt = s->stmt[ST_CA_INSERT];
	rc = sqlite3_bind_text(stmt, 1, k->kid, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(stmt, 2, k->token, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(stmt, 3, k->label, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_blob(stmt, 4, k->spki, (int)k->spki_len, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(stmt, 5, k->created);
	return exec_bound(s, stmt, rc, "cannot write the CA key");
}

static kos_rv sql_ca_key_install(kos_store *st, const struct kos_store_ca_key *key,
				 kos_usec old_expires, bool first)
{
	struct install_arg a = {key, old_expires, first};

	if (key->spki_len == 0 || key->spki_len > sizeof(key->spki))
		return kos_error_set(KOS_E_INVALID, "CA key %s: no public key", key->kid);
	return run_cred_tx(sql_of(st), install_in_tx, &a);
}

static kos_rv sql_ca_key_list(kos_store *st, struct kos_store_ca_key **out, size_t *n)
{
	struct sql_store *s = sql_of(st);
	size_t cap;

	return select_rows(s, s->stmt[ST_CA_LIST], sizeof(**out), read_ca_key,
			   "cannot list CA keys", (void **)out, n, &cap);
}

static kos_rv sql_ca_key_current(kos_store *st, struct kos_store_ca_key *out)
{
	struct sql_store *s = sql_of(st);
	bool found;
	kos_rv rv;

	pthread_mutex_lock(&s->lock);
	rv = load_current(s, out, &found);
	pthread_mutex_unlock(&s->lock);
	if (rv == KOS_OK && !found)
		rv = kos_error_set(KOS_E_NOTFOUND, "the CA has no key (kosctl ca init)");
	return rv;
}

static kos_rv ca_delete_in_tx(struct sql_store *s, void *varg)
{
	sqlite3_stmt *stmt = s->stmt[ST_CA_DELETE];
	kos_rv rv;

	rv = exec_bound(s, stmt, sqlite3_bind_text(stmt, 1, varg, -1, SQLITE_STATIC),
			"cannot delete a CA key");
	if (rv == KOS_OK && sqlite3_changes(s->db) == 0)
		rv = kos_error_set(KOS_E_NOTFOUND, "no retired CA key %s", (const char *)varg);
	return rv;
}

static kos_rv sql_ca_key_delete(kos_store *st, const char *kid)
{
	return run_cred_tx(sql_of(st), ca_delete_in_tx, (void *)kid);
}

static kos_rv read_client(sqlite3_stmt *stmt, void *rec)
{
	struct kos_store_cred_client *c = rec;

	memset(c, 0, sizeof(*c));
	copy_col(stmt, 0, c->name, sizeof(c->name));
	copy_col(stmt, 1, c->scope, sizeof(c->scope));
	c->created = sqlite3_column_int64(stmt, 2);
	c->disabled = sqlite3_column_int(stmt, 3) != 0;
	c->secret_expires = sqlite3_column_int64(stmt, 4); /* NULL reads as 0 */
	return KOS_OK;
}

static kos_rv insert_enrollment(struct sql_store *s, const struct kos_store_enrollment *e)
{
	sqlite3_stmt *stmt = s->stmt[ST_EN_INSERT];
	int rc;

	rc = sqlite3_bind_blob(stmt, 1, e->hash, KOS_STORE_HASH_LEN, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(stmt, 2, e->client, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(stmt, 3, e->created);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(stmt, 4, e->expires);
	return exec_bound(s, stmt, rc, "cannot write an enrollment secret");
}

struct client_arg {
	const struct kos_store_cred_client *c;
	const struct kos_store_enrollment *e;
};

static kos_rv client_add_in_tx(struct sql_store *s, void *varg)
{
	struct client_arg *a = varg;
	sqlite3_stmt *stmt = s->stmt[ST_CC_INSERT];
	int rc;

	rc = sqlite3_bind_text(stmt, 1, a->c->name, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(stmt, 2, a->c->scope, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(stmt, 3, a->c->created);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int(stmt, 4, a->c->disabled ? 1 : 0);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(stmt);
	sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
	if (rc == SQLITE_CONSTRAINT)
		return kos_error_set(KOS_E_EXISTS, "client '%s' exists already", a->c->name);
	if (rc != SQLITE_DONE)
		return db_fail(s, rc, "cannot write a client");
	return insert_enrollment(s, a->e);
}

static kos_rv sql_cred_client_add(kos_store *st, const struct kos_store_cred_client *c,
				  const struct kos_store_enrollment *e)
{
	struct client_arg a = {c, e};

	return run_tx(sql_of(st), true, client_add_in_tx, &a);
}

/* Reads client name into *out (may be NULL) under the caller's lock;
 * *found says whether it exists. */
static kos_rv client_get_locked(struct sql_store *s, const char *name,
				struct kos_store_cred_client *out, bool *found)
{
	sqlite3_stmt *stmt = s->stmt[ST_CC_GET];

	return query_row(s, stmt, sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC),
			 out != NULL ? read_client : NULL, out, found, "cannot read a client");
}

static kos_rv sql_cred_client_get(kos_store *st, const char *name,
				  struct kos_store_cred_client *out)
{
	struct sql_store *s = sql_of(st);
	bool found;
	kos_rv rv;

	pthread_mutex_lock(&s->lock);
	rv = client_get_locked(s, name, out, &found);
	pthread_mutex_unlock(&s->lock);
	if (rv == KOS_OK && !found)
		rv = kos_error_set(KOS_E_NOTFOUND, "unknown client '%s' (kosctl client add)", name);
	return rv;
}

static kos_rv sql_cred_client_list(kos_store *st, struct kos_store_cred_client **out, size_t *n)
{
	struct sql_store *s = sql_of(st);
	size_t cap;

	return select_rows(s, s->stmt[ST_CC_LIST], sizeof(**out), read_client,
			   "cannot list clients", (void **)out, n, &cap);
}

struct disable_arg {
	const char *name;
	bool disabled;
};

static kos_rv disable_in_tx(struct sql_store *s, void *varg)
{
	struct disable_arg *a = varg;
	sqlite3_stmt *stmt = s->stmt[ST_CC_DISABLE];
	kos_rv rv;
	int rc;

	rc = sqlite3_bind_text(stmt, 1, a->name, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int(stmt, 2, a->disabled ? 1 : 0);
	rv = exec_bound(s, stmt, rc, "cannot update a client");
	if (rv == KOS_OK && sqlite3_changes(s->db) == 0)
		rv = kos_error_set(KOS_E_NOTFOUND, "unknown client '%s'", a->name);
	return rv;
}

static kos_rv sql_cred_client_set_disabled(kos_store *st, const char *name, bool disabled)
{
	struct disable_arg a = {name, disabled};

	return run_tx(sql_of(st), true, disable_in_tx, &a);
}

static kos_rv enrollment_add_in_tx(struct sql_store *s, void *varg)
{
	const struct kos_store_enrollment *e = varg;
	sqlite3_stmt *stmt;
	bool found;
	kos_rv rv;

	rv = client_get_locked(s, e->client, NULL, &found);
	if (rv != KOS_OK)
		return rv;
	if (!found)
		return kos_error_set(KOS_E_NOTFOUND, "unknown client '%s'", e->client);
	stmt = s->stmt[ST_EN_DROP_UNUSED];
	rv = exec_bound(s, stmt, sqlite3_bind_text(stmt, 1, e->client, -1, SQLITE_STATIC),
			"cannot drop enrollment secrets");
	if (rv != KOS_OK)
		return rv;
	return insert_enrollment(s, e);
}

static kos_rv sql_enrollment_add(kos_store *st, const struct kos_store_enrollment *e)
{
	return run_tx(sql_of(st), true, enrollment_add_in_tx, (void *)e);
}

struct enrollment_rec {
	uint8_t hash[KOS_STORE_HASH_LEN]; /* a copy: the caller's may be out->hash */
	struct kos_store_enrollment *out;
};

static kos_rv read_enrollment(sqlite3_stmt *stmt, void *rec)
{
	struct enrollment_rec *r = rec;
	struct kos_store_enrollment *e = r->out;

	memset(e, 0, sizeof(*e));
	memcpy(e->hash, r->hash, KOS_STORE_HASH_LEN);
	copy_col(stmt, 0, e->client, sizeof(e->client));
	e->created = sqlite3_column_int64(stmt, 1);
	e->expires = sqlite3_column_int64(stmt, 2);
	e->used = sqlite3_column_int64(stmt, 3);
	return KOS_OK;
}

static kos_rv enrollment_load(struct sql_store *s, const uint8_t *hash,
			      struct kos_store_enrollment *out, bool *found)
{
	sqlite3_stmt *stmt = s->stmt[ST_EN_GET];
	struct enrollment_rec r;

	memcpy(r.hash, hash, KOS_STORE_HASH_LEN);
	r.out = out;
	return query_row(s, stmt,
			 sqlite3_bind_blob(stmt, 1, r.hash, KOS_STORE_HASH_LEN, SQLITE_STATIC),
			 read_enrollment, &r, found, "cannot read an enrollment secret");
}

static kos_rv sql_enrollment_get(kos_store *st, const uint8_t *hash,
				 struct kos_store_enrollment *out)
{
	struct sql_store *s = sql_of(st);
	bool found;
	kos_rv rv;

	pthread_mutex_lock(&s->lock);
	rv = enrollment_load(s, hash, out, &found);
	pthread_mutex_unlock(&s->lock);
	if (rv == KOS_OK && !found)
		rv = kos_error_set(KOS_E_NOTFOUND, "unknown enrollment secret");
	return rv;
}

struct use_arg {
	const uint8_t *hash;
	kos_usec now;
	struct kos_store_enrollment *out;
};

static kos_rv use_in_tx(struct sql_store *s, void *varg)
{
	struct use_arg *a = varg;
	sqlite3_stmt *stmt = s->stmt[ST_EN_USE];
	bool found;
	kos_rv rv;
	int rc;

	rv = enrollment_load(s, a->hash, a->out, &found);
	if (rv != KOS_OK)
		return rv;
	if (!found)
		return kos_error_set(KOS_E_NOTFOUND, "unknown enrollment secret");
	if (a->out->used != 0)
		return kos_error_set(KOS_E_EXISTS, "enrollment secret of client '%s' already used",
				     a->out->client);
	if (a->now >= a->out->expires)
		return kos_error_set(KOS_E_RANGE, "enrollment secret of client '%s' expired",
				     a->out->client);
	rc = sqlite3_bind_blob(stmt, 1, a->hash, KOS_STORE_HASH_LEN, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(stmt, 2, a->now > 0 ? a->now : 1);
	return exec_bound(s, stmt, rc, "cannot mark an enrollment secret used");
}

static kos_rv sql_enrollment_use(kos_store *st, const uint8_t *hash, kos_usec now,
				 struct kos_store_enrollment *out)
{
	struct use_arg a = {hash, now, out};

	memset(out, 0, sizeof(*out));
	return run_tx(sql_of(st), true, use_in_tx, &a);
}

static kos_rv revocation_in_tx(struct sql_store *s, void *varg)
{
	const struct kos_store_revocation *r = varg;
	sqlite3_stmt *stmt = s->stmt[ST_RV_UPSERT];
	const char *kind = kos_revocation_kind_name(r->kind);
	int rc;

	if (kind == NULL)
		return kos_error_set(KOS_E_INVALID, "unknown kind of revocation");
	rc = sqlite3_bind_text(stmt, 1, kind, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(stmt, 2, r->value, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(stmt, 3, r->before);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(stmt, 4, r->created);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(stmt, 5, r->expires);
	return exec_bound(s, stmt, rc, "cannot write a revocation");
}

static kos_rv sql_revocation_add(kos_store *st, const struct kos_store_revocation *r)
{
	return run_cred_tx(sql_of(st), revocation_in_tx, (void *)r);
}

static kos_rv read_revocation_row(sqlite3_stmt *stmt, void *rec)
{
	const unsigned char *kind = sqlite3_column_text(stmt, 0);
	struct kos_store_revocation *r = rec;
	int i;

	for (i = KOS_REVOKE_JTI; i <= KOS_REVOKE_BEFORE; i++)
		if (kind != NULL && strcmp((const char *)kind, kos_revocation_kind_name(i)) == 0)
			break;
	if (i > KOS_REVOKE_BEFORE)
		return kos_error_set(KOS_E_STORE, "state store: a revocation of unknown kind");
	r->kind = (enum kos_revocation_kind)i;
	copy_col(stmt, 1, r->value, sizeof(r->value));
	r->before = sqlite3_column_int64(stmt, 2);
	r->created = sqlite3_column_int64(stmt, 3);
	r->expires = sqlite3_column_int64(stmt, 4);
	return KOS_OK;
}

struct revocation_each {
	kos_store_revocation_fn fn;
	void *arg;
};

static kos_rv each_revocation_row(sqlite3_stmt *stmt, void *varg)
{
	struct revocation_each *a = varg;
	struct kos_store_revocation r;
	kos_rv rv;

	memset(&r, 0, sizeof(r));
	rv = read_revocation_row(stmt, &r);
	return rv == KOS_OK ? a->fn(&r, a->arg) : rv;
}

static kos_rv sql_revocation_each(kos_store *st, kos_store_revocation_fn fn, void *arg)
{
	struct sql_store *s = sql_of(st);
	struct revocation_each a = {fn, arg};
	kos_rv rv;

	pthread_mutex_lock(&s->lock);
	rv = query_rows(s, s->stmt[ST_RV_LIST], SQLITE_OK, each_revocation_row, &a,
			"cannot list revocations");
	pthread_mutex_unlock(&s->lock);
	return rv;
}

struct prune_arg {
	kos_usec now;
	uint64_t removed;
};

static kos_rv prune_in_tx(struct sql_store *s, void *varg)
{
	struct prune_arg *a = varg;
	static const int which[] = {ST_RV_PRUNE, ST_EN_PRUNE};
	size_t i;
	kos_rv rv;

	for (i = 0; i < KOS_ARRAY_SIZE(which); i++) {
		sqlite3_stmt *stmt = s->stmt[which[i]];

		rv = exec_bound(s, stmt, sqlite3_bind_int64(stmt, 1, a->now),
				"cannot prune credential state");
		if (rv != KOS_OK)
			return rv;
		a->removed += (uint64_t)sqlite3_changes(s->db);
	}
	return KOS_OK;
}

/* Pruning takes away only revocations that cover nothing valid any more:
 * no bump, nobody needs to reload for it. */
static kos_rv sql_cred_prune(kos_store *st, kos_usec now, uint64_t *removed)
{
	struct prune_arg a = {now, 0};
	kos_rv rv = run_tx(sql_of(st), true, prune_in_tx, &a);

	if (removed != NULL)
		*removed = rv == KOS_OK ? a.removed : 0;
	return rv;
}

static kos_rv sql_cred_revision(kos_store *st, uint64_t *rev)
{
	struct sql_store *s = sql_of(st);
	sqlite3_stmt *stmt = s->stmt[ST_REV_GET];
	int64_t v;
	kos_rv rv;

	pthread_mutex_lock(&s->lock);
	rv = query_int(s, stmt, SQLITE_OK, &v, "cannot read the credential revision");
	pthread_mutex_unlock(&s->lock);
	*rev = rv == KOS_OK ? i2u(v) : 0;
	return rv;
}

static uint64_t sql_cred_hint(kos_store *st)
{
	struct sql_store *s = sql_of(st);

	if (s->hint == NULL)
		return 0;
	return atomic_load_explicit(s->hint, memory_order_acquire);
}

static kos_rv read_meta_value(sqlite3_stmt *stmt, void *rec)
{
	const unsigned char *t = sqlite3_column_text(stmt, 0);
	char **value = rec;

	*value = kos_strdup(t != NULL ? (const char *)t : "");
	if (*value == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	return KOS_OK;
}

static kos_rv sql_meta_get(kos_store *st, const char *key, char **value)
{
	struct sql_store *s = sql_of(st);
	sqlite3_stmt *stmt = s->stmt[ST_META_GET];
	bool found;
	kos_rv rv;

	*value = NULL;
	pthread_mutex_lock(&s->lock);
	rv = query_row(s, stmt, sqlite3_bind_text(stmt, 1, key, -1, SQLITE_STATIC),
		       read_meta_value, value, &found, "cannot read a setting");
	pthread_mutex_unlock(&s->lock);
	if (rv == KOS_OK && !found)
		rv = kos_error_set(KOS_E_NOTFOUND, "state store: no '%s' setting", key);
	return rv;
}

struct meta_arg {
	const char *key, *value;
};

static kos_rv meta_in_tx(struct sql_store *s, void *varg)
{
	struct meta_arg *a = varg;
	sqlite3_stmt *stmt = s->stmt[ST_META_PUT];
	int rc;

	rc = sqlite3_bind_text(stmt, 1, a->key, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(stmt, 2, a->value, -1, SQLITE_STATIC);
	return exec_bound(s, stmt, rc, "cannot write a setting");
}

static kos_rv sql_meta_put(kos_store *st, const char *key, const char *value)
{
	struct meta_arg a = {key, value};

	return run_tx(sql_of(st), true, meta_in_tx, &a);
}

/* --- certificates beside signing keys ------------------------------------------ */

struct cert_put_arg {
	const char *name;
	uint32_t version;
	const uint8_t *der;
	size_t len;
	kos_usec created;
};

static kos_rv cert_put_in_tx(struct sql_store *s, void *varg)
{
	struct cert_put_arg *a = varg;
	sqlite3_stmt *stmt = s->stmt[ST_CERT_PUT];
	enum kos_key_state state;
	bool found;
	kos_rv rv;
	int rc;

	/* in the transaction: a retirement cannot slip in between */
	rv = load_state(s, a->name, a->version, &state, &found);
	if (rv != KOS_OK)
		return rv;
	if (!found || state != KOS_KEY_STATE_ACTIVE)
		return kos_error_set(KOS_E_NOTFOUND, "key %s has no active version %" PRIu32,
				     a->name, a->version);
	rc = bind_nv(stmt, a->name, a->version);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_blob(stmt, 3, a->der, (int)a->len, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(stmt, 4, a->created);
	return exec_bound(s, stmt, rc, "cannot write a certificate");
}

static kos_rv sql_key_cert_put(kos_store *st, const char *name, uint32_t version,
			       const uint8_t *der, size_t len, kos_usec created)
{
	struct cert_put_arg a = { name, version, der, len, created };

	return run_tx(sql_of(st), true, cert_put_in_tx, &a);
}

struct cert_get_arg {
	uint8_t *der;
	size_t len;
};

static kos_rv read_cert(sqlite3_stmt *stmt, void *rec)
{
	struct cert_get_arg *a = rec;
	const void *blob = sqlite3_column_blob(stmt, 0);
	int n = sqlite3_column_bytes(stmt, 0);

	/* the schema's CHECK holds for kos's rows; another writer's are
	 * refused, not handed on */
	if (blob == NULL || n <= 0 || n > KOS_STORE_CERT_MAX)
		return kos_error_set(KOS_E_STORE, "state store: a certificate of %d bytes", n);
	a->der = malloc((size_t)n);
	if (a->der == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	memcpy(a->der, blob, (size_t)n);
	a->len = (size_t)n;
	return KOS_OK;
}

static kos_rv sql_key_cert_get(kos_store *st, const char *name, uint32_t version, uint8_t **der,
			       size_t *len)
{
	struct sql_store *s = sql_of(st);
	sqlite3_stmt *stmt = s->stmt[ST_CERT_GET];
	struct cert_get_arg a = { NULL, 0 };
	bool found;
	kos_rv rv;

	pthread_mutex_lock(&s->lock);
	rv = query_row(s, stmt, bind_nv(stmt, name, version), read_cert, &a, &found,
		       "cannot read a certificate");
	pthread_mutex_unlock(&s->lock);
	if (rv == KOS_OK && !found)
		rv = kos_error_set(KOS_E_NOTFOUND, "key %s version %" PRIu32 " has no certificate",
				   name, version);
	if (rv != KOS_OK) {
		free(a.der);
		return rv;
	}
	*der = a.der;
	*len = a.len;
	return KOS_OK;
}

static kos_rv cert_delete_in_tx(struct sql_store *s, void *varg)
{
	struct nv_arg *a = varg;
	sqlite3_stmt *stmt = s->stmt[ST_CERT_DELETE];
	kos_rv rv;

	rv = exec_bound(s, stmt, bind_nv(stmt, a->name, a->version),
			"cannot delete a certificate");
	if (rv == KOS_OK && sqlite3_changes(s->db) == 0)
		rv = kos_error_set(KOS_E_NOTFOUND, "key %s version %" PRIu32 " has no certificate",
				   a->name, a->version);
	return rv;
}

static kos_rv sql_key_cert_delete(kos_store *st, const char *name, uint32_t version)
{
	struct nv_arg a = {name, version};

	return run_tx(sql_of(st), true, cert_delete_in_tx, &a);
}

/* --- the ledger ---------------------------------------------------------------- */

struct ledger_head {
	uint64_t seq;
	uint8_t *hash;
	bool hash_ok;
};

static kos_rv read_ledger_head(sqlite3_stmt *stmt, void *rec)
{
	struct ledger_head *h = rec;

	h->seq = i2u(sqlite3_column_int64(stmt, 0));
	h->hash_ok = col_blob_exact(stmt, 1, h->hash, KOS_LEDGER_HASH_LEN);
	return KOS_OK;
}

/* The head's seq and hash (0 and zeros for an empty ledger), inside the
 * caller's lock or transaction. */
static kos_rv ledger_head_locked(struct sql_store *s, uint64_t *seq, uint8_t *hash)
{
	struct ledger_head h = {0, hash, false};
	bool found;
	kos_rv rv;

	*seq = 0;
	memset(hash, 0, KOS_LEDGER_HASH_LEN);
	rv = query_row(s, s->stmt[ST_LEDGER_HEAD], SQLITE_OK, read_ledger_head, &h, &found,
		       "cannot read the ledger's head");
	if (rv != KOS_OK || !found)
		return rv;
	*seq = h.seq;
	if (!h.hash_ok)
		return kos_error_set(KOS_E_STORE,
				     "state store %s: ledger entry %llu has no %d-byte hash",
				     s->path, (unsigned long long)h.seq, KOS_LEDGER_HASH_LEN);
	return KOS_OK;
}

struct ledger_arg {
	kos_ledger_entry *e;
	size_t n;
};

/* Reading the head and writing after it in one BEGIN IMMEDIATE transaction
 * keeps the chain linear when several processes append. */
static kos_rv ledger_append_in_tx(struct sql_store *s, void *varg)
{
	struct ledger_arg *a = varg;
	sqlite3_stmt *stmt = s->stmt[ST_LEDGER_INSERT];
	uint8_t head[KOS_LEDGER_HASH_LEN];
	uint64_t seq;
	size_t i;
	kos_rv rv;
	int rc;

	rv = ledger_head_locked(s, &seq, head);
	if (rv == KOS_OK)
		rv = kos_ledger_chain_link(a->e, a->n, seq, head);
	for (i = 0; rv == KOS_OK && i < a->n; i++) {
		const kos_ledger_entry *e = &a->e[i];
		const char *text[] = {e->client,  e->action, e->resource, e->tier,
				      e->outcome, e->reason, e->jti};
		size_t t;

		rc = sqlite3_bind_int64(stmt, 1, u2i(e->seq));
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_int64(stmt, 2, e->at);
		for (t = 0; rc == SQLITE_OK && t < KOS_ARRAY_SIZE(text); t++)
			rc = sqlite3_bind_text(stmt, 3 + (int)t, text[t], -1, SQLITE_STATIC);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_blob(stmt, 10, e->prev, KOS_LEDGER_HASH_LEN,
					       SQLITE_STATIC);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_blob(stmt, 11, e->hash, KOS_LEDGER_HASH_LEN,
					       SQLITE_STATIC);
		rv = exec_bound(s, stmt, rc, "cannot write a ledger entry");
	}
	return rv;
}

static kos_rv sql_ledger_append(kos_store *st, kos_ledger_entry *e, size_t n)
{
	struct ledger_arg a = {e, n};

	return run_tx(sql_of(st), true, ledger_append_in_tx, &a);
}

/* The trust updates, then the ledger entries, under one BEGIN IMMEDIATE:
 * one commit where trust_update_batch and ledger_append make two. */
struct decisions_arg {
	size_t n;
	const char *const *clients;
	kos_trust_update_fn fn;
	void *const *args;
	struct ledger_arg entries;
};

static kos_rv decisions_in_tx(struct sql_store *s, void *varg)
{
	struct decisions_arg *a = varg;
	kos_rv rv = KOS_OK;
	size_t i;

	for (i = 0; i < a->n && rv == KOS_OK; i++)
		rv = update_in_tx(s, a->clients[i], a->fn, a->args[i]);
	if (rv == KOS_OK && a->entries.n > 0)
		rv = ledger_append_in_tx(s, &a->entries);
	return rv;
}

static kos_rv sql_decisions_commit(kos_store *st, size_t n, const char *const *clients,
				   kos_trust_update_fn fn, void *const *args, kos_ledger_entry *e,
				   size_t m)
{
	struct decisions_arg a = {n, clients, fn, args, {e, m}};

	if (n == 0 && m == 0)
		return KOS_OK;
	return run_tx(sql_of(st), true, decisions_in_tx, &a);
}

static kos_rv sql_ledger_head(kos_store *st, uint64_t *seq, uint8_t *hash)
{
	struct sql_store *s = sql_of(st);
	kos_rv rv;

	pthread_mutex_lock(&s->lock);
	rv = ledger_head_locked(s, seq, hash);
	pthread_mutex_unlock(&s->lock);
	return rv;
}

/* Copies text column col into out (size bytes); false when it is not text,
 * holds a NUL or does not fit: then no entry kos wrote. */
static bool ledger_text(sqlite3_stmt *stmt, int col, char *out, size_t size)
{
	/* the type before any conversion: after one it is undefined */
	bool text = sqlite3_column_type(stmt, col) == SQLITE_TEXT;
	const unsigned char *t = sqlite3_column_text(stmt, col);
	int len = sqlite3_column_bytes(stmt, col);

	copy_col(stmt, col, out, size);
	return text && t != NULL && len >= 0 && (size_t)len < size &&
	       strlen((const char *)t) == (size_t)len;
}

static bool ledger_hash(sqlite3_stmt *stmt, int col, uint8_t *out)
{
	/* the type before any conversion, as in ledger_text() */
	return sqlite3_column_type(stmt, col) == SQLITE_BLOB &&
	       col_blob_exact(stmt, col, out, KOS_LEDGER_HASH_LEN);
}

struct ledger_page {
	struct kos_store_ledger_row *rows;
	size_t max, n;
};

static kos_rv read_ledger_row(sqlite3_stmt *stmt, void *rec)
{
	struct ledger_page *p = rec;
	struct kos_store_ledger_row *r;
	kos_ledger_entry *e;
	bool ok;

	/* LIMIT says max already; this keeps within rows[] whatever it says */
	if (p->n == p->max)
		return KOS_OK;
	r = &p->rows[p->n++];
	e = &r->e;
	memset(r, 0, sizeof(*r));
	e->seq = i2u(sqlite3_column_int64(stmt, 0));
	ok = sqlite3_column_type(stmt, 1) == SQLITE_INTEGER;
	e->at = sqlite3_column_int64(stmt, 1);
	ok &= ledger_text(stmt, 2, e->client, sizeof(e->client));
	ok &= ledger_text(stmt, 3, e->action, sizeof(e->action));
	ok &= ledger_text(stmt, 4, e->resource, sizeof(e->resource));
	ok &= ledger_text(stmt, 5, e->tier, sizeof(e->tier));
	ok &= ledger_text(stmt, 6, e->outcome, sizeof(e->outcome));
	ok &= ledger_text(stmt, 7, e->reason, sizeof(e->reason));
	ok &= ledger_text(stmt, 8, e->jti, sizeof(e->jti));
	ok &= ledger_hash(stmt, 9, e->prev);
	ok &= ledger_hash(stmt, 10, e->hash);
	r->malformed = !ok;
	return KOS_OK;
}

static kos_rv sql_ledger_read(kos_store *st, uint64_t from, struct kos_store_ledger_row *rows,
			      size_t max, size_t *n)
{
	struct sql_store *s = sql_of(st);
	sqlite3_stmt *stmt = s->stmt[ST_LEDGER_READ];
	struct ledger_page p = {rows, max, 0};
	kos_rv rv;
	int rc;

	*n = 0;
	pthread_mutex_lock(&s->lock);
	/* one statement: one snapshot */
	rc = sqlite3_bind_int64(stmt, 1, u2i(from));
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(stmt, 2, u2i(max));
	rv = query_rows(s, stmt, rc, read_ledger_row, &p, "cannot read the ledger");
	pthread_mutex_unlock(&s->lock);
	*n = rv == KOS_OK ? p.n : 0;
	return rv;
}

/* The credential hint: a 64-bit counter at the start of a small file next
 * to the store (PATH-kos-notify, mode 0600), mapped shared by every handle;
 * a writer adds one after each commit that bumped the credential revision.
 * Without it (the file cannot be made or mapped) readers fall back to their
 * check interval. */
#define HINT_SIZE 4096

static void hint_open(struct sql_store *s)
{
	struct stat sb;
	char *path;
	size_t len = strlen(s->path) + sizeof("-kos-notify");
	void *map;
	int fd;

	path = malloc(len);
	if (path == NULL)
		return;
	snprintf(path, len, "%s-kos-notify", s->path);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW, 0600);
	free(path);
	if (fd < 0)
		return;
	/* growing a new file races harmlessly: both write the same size */
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) ||
	    (sb.st_size < HINT_SIZE && ftruncate(fd, HINT_SIZE) != 0)) {
		close(fd);
		return;
	}
	map = mmap(NULL, HINT_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (map != MAP_FAILED)
		s->hint = map;
}

static int sql_schema_version(kos_store *st)
{
	return sql_of(st)->version;
}

/* synchronous=FULL: the WAL is fsynced at every commit, so a committed
 * transaction survives a power loss too; NORMAL (the default, see the
 * header) fsyncs it at checkpoints only. Per connection: this handle's. */
static kos_rv sql_set_synced(kos_store *st, bool on)
{
	struct sql_store *s = sql_of(st);
	kos_rv rv = KOS_OK;
	int rc;

	pthread_mutex_lock(&s->lock);
	rc = sqlite3_exec(s->db, on ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL",
			  NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		rv = db_fail(s, rc, "cannot set synchronous mode");
	pthread_mutex_unlock(&s->lock);
	return rv;
}

static kos_rv sql_synced(kos_store *st, bool *on)
{
	struct sql_store *s = sql_of(st);
	sqlite3_stmt *stmt = NULL;
	kos_rv rv = KOS_OK;
	int rc;

	pthread_mutex_lock(&s->lock);
	rc = sqlite3_prepare_v2(s->db, "PRAGMA synchronous", -1, &stmt, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		*on = sqlite3_column_int(stmt, 0) >= 2; /* FULL (2) or EXTRA (3) */
	else
		rv = db_fail(s, rc, "cannot read synchronous mode");
	sqlite3_finalize(stmt);
	pthread_mutex_unlock(&s->lock);
	return rv;
}

static void sql_free(kos_store *st)
{
	struct sql_store *s = sql_of(st);
	size_t i;

	for (i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->stmt[i]);
	if (s->hint != NULL)
		munmap((void *)s->hint, HINT_SIZE);
	sqlite3_close_v2(s->db);
	pthread_mutex_destroy(&s->lock);
	free(s->path);
	free(s);
}

static const struct kos_store_ops sql_ops = {
    .name = "sqlite",
    .free = sql_free,
    .schema_version = sql_schema_version,
    .set_synced = sql_set_synced,
    .synced = sql_synced,
    .trust_get = sql_trust_get,
    .trust_update = sql_trust_update,
    .trust_update_batch = sql_trust_update_batch,
    .decisions_commit = sql_decisions_commit,
    .trust_page = sql_trust_page,
    .trust_delete = sql_trust_delete,
    .key_version_begin = sql_key_version_begin,
    .key_version_activate = sql_key_version_activate,
    .key_version_abort = sql_key_version_abort,
    .key_version_retire = sql_key_version_retire,
    .key_delete = sql_key_delete,
    .key_get = sql_key_get,
    .key_list = sql_key_list,
    .key_version_get = sql_key_version_get,
    .key_versions = sql_key_versions,
    .share_counts = sql_share_counts,
    .key_cert_put = sql_key_cert_put,
    .key_cert_get = sql_key_cert_get,
    .key_cert_delete = sql_key_cert_delete,
    .service_put = sql_service_put,
    .service_get = sql_service_get,
    .service_list = sql_service_list,
    .service_delete = sql_service_delete,
    .ca_key_install = sql_ca_key_install,
    .ca_key_list = sql_ca_key_list,
    .ca_key_current = sql_ca_key_current,
    .ca_key_delete = sql_ca_key_delete,
    .cred_client_add = sql_cred_client_add,
    .cred_client_get = sql_cred_client_get,
    .cred_client_list = sql_cred_client_list,
    .cred_client_set_disabled = sql_cred_client_set_disabled,
    .enrollment_add = sql_enrollment_add,
    .enrollment_get = sql_enrollment_get,
    .enrollment_use = sql_enrollment_use,
    .revocation_add = sql_revocation_add,
    .revocation_each = sql_revocation_each,
    .cred_prune = sql_cred_prune,
    .cred_revision = sql_cred_revision,
    .cred_hint = sql_cred_hint,
    .meta_get = sql_meta_get,
    .meta_put = sql_meta_put,
    .ledger_append = sql_ledger_append,
    .ledger_head = sql_ledger_head,
    .ledger_read = sql_ledger_read,
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
struct identity {
	int version, app_id, objects;
};

static kos_rv read_identity_row(sqlite3_stmt *stmt, void *rec)
{
	struct identity *id = rec;

	id->version = sqlite3_column_int(stmt, 0);
	id->app_id = sqlite3_column_int(stmt, 1);
	id->objects = sqlite3_column_int(stmt, 2);
	return KOS_OK;
}

static kos_rv read_identity(struct sql_store *s, int *version)
{
	static const char sql[] = "SELECT (SELECT user_version FROM pragma_user_version), "
				  "(SELECT application_id FROM pragma_application_id), "
				  "(SELECT count(*) FROM sqlite_master)";
	static const char what[] = "cannot read the schema version";
	struct identity id = {0, 0, 0};
	sqlite3_stmt *stmt = NULL;
	bool found;
	kos_rv rv;
	int rc;

	rc = sqlite3_prepare_v2(s->db, sql, -1, &stmt, NULL);
	if (rc != SQLITE_OK)
		return db_fail(s, rc, what);
	rv = query_row(s, stmt, SQLITE_OK, read_identity_row, &id, &found, what);
	sqlite3_finalize(stmt);
	if (rv == KOS_OK && !found)
		rv = db_fail(s, SQLITE_DONE, what);
	if (rv != KOS_OK)
		return rv;
	*version = id.version;
	if (*version > KOS_STORE_SCHEMA_VERSION)
		return kos_error_set(KOS_E_STORE,
				     "state store %s has schema version %d, newer than this kos "
				     "understands (%d): upgrade kos",
				     s->path, *version, KOS_STORE_SCHEMA_VERSION);
	if (id.app_id != 0 && id.app_id != KOS_SQLITE_APP_ID)
		return kos_error_set(KOS_E_STORE,
				     "state store %s: an SQLite database of another application",
				     s->path);
	if (*version == 0 && id.objects != 0)
		return kos_error_set(KOS_E_STORE,
				     "state store %s: an SQLite database that is not a kos state "
				     "store",
				     s->path);
	return KOS_OK;
}

struct journal_mode {
	char mode[16];
	bool null;
};

static kos_rv read_journal_mode(sqlite3_stmt *stmt, void *rec)
{
	struct journal_mode *m = rec;

	m->null = sqlite3_column_type(stmt, 0) == SQLITE_NULL;
	copy_col(stmt, 0, m->mode, sizeof(m->mode));
	return KOS_OK;
}

static kos_rv set_wal(struct sql_store *s)
{
	static const char what[] = "cannot set WAL mode";
	struct journal_mode m = {"", true};
	sqlite3_stmt *stmt = NULL;
	bool found;
	kos_rv rv;
	int rc;

	rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &stmt, NULL);
	if (rc != SQLITE_OK)
		return db_fail(s, rc, what);
	/* switching a new file to WAL writes its header under a lock upgrade
	 * that may answer BUSY at once while another process does the same;
	 * query_row() retries it */
	rv = query_row(s, stmt, SQLITE_OK, read_journal_mode, &m, &found, what);
	sqlite3_finalize(stmt);
	if (rv == KOS_OK && !found)
		rv = db_fail(s, SQLITE_DONE, what);
	if (rv == KOS_OK && (m.null || strcasecmp(m.mode, "wal") != 0))
		rv = kos_error_set(KOS_E_STORE,
				   "state store %s: WAL mode refused (journal mode '%s'); is the "
				   "file on a network file system?",
				   s->path, m.null ? "?" : m.mode);
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
	/* a share row without its version, or a version without its key, is
	 * refused by SQLite itself (off by default, per connection) */
	rc = sqlite3_exec(s->db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		rv = db_fail(s, rc, "cannot enable foreign keys");
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
	hint_open(s);
	*out = &s->base;
	return KOS_OK;
err:
	sql_free(&s->base);
	return rv;
}
