/* Test support: every CUnit program registers its cases here and ends with a
 * line "kos-tests: NAME passed=P failed=F" that the test command totals. */
#ifndef KOS_TEST_H
#define KOS_TEST_H

#include <CUnit/CUnit.h>
#include <sys/types.h>

struct kos_test_case {
	const char *name;
	void (*fn)(void);
};

#define KOS_TEST(fn) { #fn, fn }

/* Runs the cases as one suite; returns the process exit status (0 only when
 * every case passed). init/cleanup may be NULL. */
int kos_test_run(const char *suite, int (*init)(void), int (*cleanup)(void),
		 const struct kos_test_case *cases, size_t n);

/* A fresh temporary directory for this program (removed at exit unless
 * KOS_TEST_KEEP is set); returns its path. */
const char *kos_test_tmpdir(void);

/* "TMPDIR/name" in kos_test_tmpdir(); the result lives until 8 more calls. */
const char *kos_test_path(const char *name);

/* SQL on an SQLite file through a connection of its own, as another program
 * would (waiting up to 10 s for a lock): kos_test_sql_exec returns
 * sqlite3_exec's code; kos_test_sql_int the first column of the first row,
 * -1 when there is none. */
int kos_test_sql_exec(const char *path, const char *sql);
int kos_test_sql_int(const char *path, const char *sql);

/* The directory of the SoftHSM token labelled kos-NAME in installation
 * inst (SoftHSM keeps the label in token.object); 1 when found. */
int kos_test_token_dir(const char *inst, const char *name, char *out, size_t len);

/* Writes policy/default.policy to path with each edits[i][0] replaced by
 * edits[i][1] (first occurrence); -1 when a text is not found or on I/O
 * errors. Tests derive their policies from the shipped one this way. */
int kos_test_write_policy(const char *path, const char *const (*edits)[2], size_t n);

/* A development installation made by kos_devinit() in TMPDIR/inst (its
 * directory copied to inst, len bytes), and the handles a suite opens on it:
 * each of conf, pol, st, hsm may be NULL when the suite does not want it
 * (pol, st and hsm need conf). hsm_flags go to kos_hsm_open(). Returns 0,
 * or 1 after printing "set-up: WHY" (a suite init's return value). */
struct kos_config;
struct kos_policy;
struct kos_store;
struct kos_hsm;
int kos_test_inst_open(char *inst, size_t len, unsigned hsm_flags, struct kos_config **conf,
		       struct kos_policy **pol, struct kos_store **st, struct kos_hsm **hsm);
/* Frees what kos_test_inst_open() opened (NULL-safe); returns 0. */
int kos_test_inst_close(struct kos_config *conf, struct kos_policy *pol, struct kos_store *st,
			struct kos_hsm *hsm);

/* For the programs a test starts (kosd): SoftHSM's own leaks are not
 * reported, kos's are (LSAN_OPTIONS suppressions in a file of the temporary
 * directory, and full stacks so that the suppression sees libsofthsm2), as
 * tests/lib.sh's softhsm_leaks_ignored does for the shell tests. 0 or 1. */
int kos_test_softhsm_leaks_ignored(void);

/* A real kosd for a test: $KOSD (else ./kosd) with --config conf_path and
 * the further arguments args (NULL-terminated; NULL for none, e.g. "--role",
 * "kms"), its standard error appended to log. Returns 0 once its health
 * route answers on socket, -1 when it exits first or stays silent for 10 s
 * (*pid is then -1 if it exited). Not thread-safe (it forks). */
int kos_test_kosd_start(const char *conf_path, const char *const *args, const char *log,
			const char *socket, pid_t *pid);
/* SIGCONT and SIGTERM to *pid (a stopped kosd too), and waits: the wait
 * status, -1 without a process; *pid becomes -1. */
int kos_test_kosd_stop(pid_t *pid);

/* The shipped policy with trust from the integrity factor alone, as the
 * tests of clients use it: 90 at first (high), 25 points less per integrity
 * failure and 2 per plain failure, no recovery; then edits (n may be 0) as
 * kos_test_write_policy() applies them. 0, or -1 as it. */
int kos_test_write_integrity_policy(const char *path, const char *const (*edits)[2], size_t n);

/* "TMPDIR/CLIENT.cred", where kos_test_enroll() keeps client's credential;
 * the result lives until 8 more calls (it shares kos_test_path()'s). */
const char *kos_test_cred_path(const char *client);
/* Exchanges client's one-time secret with kosd at socket for a credential
 * kept in kos_test_cred_path(client). 0, or -1 (kos_last_error() says why). */
int kos_test_enroll(const char *socket, const char *client, const char *secret);

/* Writes text to path (created 0600, replaced if there). 0 or -1. */
int kos_test_write_text(const char *path, const char *text);

/* Path of a file in the source tree (for data files), from $srcdir. */
const char *kos_test_srcpath(const char *rel);

/* 1 when both strings are there and equal; a NULL is unequal to anything. */
int kos_test_streq(const char *a, const char *b);

/* CU_ASSERT_STRING_EQUAL for a string that may be missing (a JSON member,
 * a header): a NULL fails the assertion, and prints both sides, instead of
 * crashing the program and losing the cases after it. */
#define KOS_ASSERT_STR_EQ(actual, expected)                                                        \
	CU_assertImplementation(kos_test_str_eq_report((actual), (expected), #actual, __FILE__,    \
						       __LINE__),                                 \
				__LINE__, "KOS_ASSERT_STR_EQ(" #actual ", " #expected ")", __FILE__,     \
				"", CU_FALSE)
CU_BOOL kos_test_str_eq_report(const char *actual, const char *expected, const char *what,
			       const char *file, int line);

#endif
