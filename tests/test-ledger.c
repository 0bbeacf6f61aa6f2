/* The decision ledger: the chain's values (checked against an encoder of
 * the test's own and a known answer), batches all or nothing, every
 * validation error, verification of intact and tampered ledgers (tampered
 * with SQL on the file, as an intruder would), both backends, concurrent
 * processes and threads, and the migration from a schema version 4 store. */
#include "config.h"

#include "kos/store_backend.h"
#include "tests/kos-test.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define T0 INT64_C(1767225600000000) /* 2026-01-01T00:00:00Z */

static kos_store *open_store(const char *loc)
{
	kos_store *st = NULL;

	if (kos_store_open(loc, &st) != KOS_OK) {
		fprintf(stderr, "\n  cannot open %s: %s\n", loc, kos_last_error());
		return NULL;
	}
	return st;
}

/* The test's own encoder (kos-ledger(5)), written from the man page. */
static void ref_hash(const kos_ledger_entry *e, uint8_t out[32])
{
	const char *text[] = {e->client,  e->action, e->resource, e->tier,
			      e->outcome, e->reason, e->jti};
	uint8_t num[8];
	unsigned int len = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	size_t i;
	int j;

	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(EVP_DigestInit_ex(c, EVP_sha256(), NULL), 1);
	EVP_DigestUpdate(c, e->prev, 32);
	EVP_DigestUpdate(c, "KOSL\x01", 5);
	for (j = 0; j < 8; j++)
		num[j] = (uint8_t)(e->seq >> (56 - 8 * j));
	EVP_DigestUpdate(c, num, 8);
	for (j = 0; j < 8; j++)
		num[j] = (uint8_t)((uint64_t)e->at >> (56 - 8 * j));
	EVP_DigestUpdate(c, num, 8);
	for (i = 0; i < 7; i++) {
		size_t n = strlen(text[i]);

		num[0] = (uint8_t)(n >> 8);
		num[1] = (uint8_t)n;
		EVP_DigestUpdate(c, num, 2);
		EVP_DigestUpdate(c, text[i], n);
	}
	CU_ASSERT_EQUAL(EVP_DigestFinal_ex(c, out, &len), 1);
	CU_ASSERT_EQUAL(len, 32);
	EVP_MD_CTX_free(c);
}

static void to_hex(const uint8_t *p, size_t n, char *out)
{
	size_t i;

	for (i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
}

/* A valid entry derived from i. */
static void make(kos_ledger_entry *e, unsigned i, const char *who)
{
	static const char *const tiers[] = {"high", "medium", "low", "deny", "-"};
	static const char *const outcomes[] = {"allowed", "refused", "failed"};
	char client[80], resource[40], jti[40];

	snprintf(client, sizeof(client), "%s", who);
	snprintf(resource, sizeof(resource), "key-%u", i % 7);
	snprintf(jti, sizeof(jti), "%s-%u", who, i);
	kos_ledger_entry_init(e, T0 + (kos_usec)i * 1000, client, i % 2 ? "sign" : "decrypt",
			      resource, tiers[i % 5], outcomes[i % 3],
			      i % 3 == 1 ? "trust too low" : "", jti);
}

/* Appends n entries made by make() from first on, in batches of batch. */
static kos_rv append_n(kos_store *st, unsigned first, unsigned n, unsigned batch, const char *who)
{
	kos_ledger_entry *e = calloc(batch, sizeof(*e));
	unsigned i = 0, k;
	kos_rv rv = KOS_OK;

	if (e == NULL)
		return KOS_E_NOMEM;
	while (rv == KOS_OK && i < n) {
		for (k = 0; k < batch && i + k < n; k++)
			make(&e[k], first + i + k, who);
		rv = kos_ledger_append(st, e, k);
		i += k;
	}
	free(e);
	return rv;
}

struct collect {
	kos_ledger_entry *e;
	size_t n, cap;
	size_t stop_after; /* 0: never */
};

static int collect_fn(const kos_ledger_entry *e, void *arg)
{
	struct collect *c = arg;

	if (c->n == c->cap) {
		size_t ncap = c->cap ? c->cap * 2 : 64;
		kos_ledger_entry *na = realloc(c->e, ncap * sizeof(*na));

		if (na == NULL)
			return KOS_E_NOMEM;
		c->e = na;
		c->cap = ncap;
	}
	c->e[c->n++] = *e;
	if (c->stop_after != 0 && c->n == c->stop_after)
		return 42;
	return 0;
}

/* Every entry, the chain's values checked against ref_hash(). */
static void check_chain(kos_store *st, uint64_t want)
{
	struct collect c = {0};
	uint8_t prev[32] = {0}, h[32], head[32];
	uint64_t seq = 99;
	size_t i;

	CU_ASSERT_EQUAL_FATAL(kos_ledger_list(st, 1, 0, collect_fn, &c), KOS_OK);
	CU_ASSERT_EQUAL(c.n, want);
	for (i = 0; i < c.n; i++) {
		CU_ASSERT_EQUAL(c.e[i].seq, i + 1);
		CU_ASSERT(memcmp(c.e[i].prev, prev, 32) == 0);
		ref_hash(&c.e[i], h);
		CU_ASSERT(memcmp(c.e[i].hash, h, 32) == 0);
		memcpy(prev, c.e[i].hash, 32);
	}
	CU_ASSERT_EQUAL(kos_ledger_head(st, &seq, head), KOS_OK);
	CU_ASSERT_EQUAL(seq, want);
	CU_ASSERT(memcmp(head, prev, 32) == 0);
	free(c.e);
}

/* --- values --- */

/* Two entries of a known answer, unlinked. */
static void known_entries(kos_ledger_entry e[2])
{
	kos_ledger_entry_init(&e[0], T0, "web-1", "decrypt", "payments", "high", "allowed", "",
			      "3f2a9c");
	kos_ledger_entry_init(&e[1], T0 + 250000, NULL, "enroll", "", "-", "refused",
			      "invalid credential", NULL);
}

/* The known answer's entries as linked first into a ledger: hashes
 * computed with Python's hashlib from the layout in kos-ledger(5). */
static void check_known_answer(const kos_ledger_entry e[2])
{
	static const uint8_t zeros[32] = {0};
	char hex[65];

	CU_ASSERT_EQUAL(e[0].seq, 1);
	CU_ASSERT_EQUAL(e[1].seq, 2);
	CU_ASSERT(memcmp(e[0].prev, zeros, 32) == 0);
	to_hex(e[0].hash, 32, hex);
	CU_ASSERT_STRING_EQUAL(hex,
			       "dbac80b4e9f8c2e057659701746802eb94716db370cdead1b4d27b3e74b731dd");
	to_hex(e[1].hash, 32, hex);
	CU_ASSERT_STRING_EQUAL(hex,
			       "b95480a67d004339ac2a6a850cd8b39d1340b5a3d905ce6fc91f9737d8769ab7");
	CU_ASSERT(memcmp(e[1].prev, e[0].hash, 32) == 0);
}

static void test_known_answer(void)
{
	kos_store *st = open_store("memory:");
	kos_ledger_entry e[2];

	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	known_entries(e);
	CU_ASSERT_EQUAL_FATAL(kos_ledger_append(st, e, 2), KOS_OK);
	check_known_answer(e);
	kos_store_free(st);
}

/* The chain leaf on its own, without a store: the entries it links have
 * the known-answer hashes and verify (each hash recomputes, each prev is
 * the hash before); any changed field, time, seq or prev breaks the hash. */
static void test_chain_leaf(void)
{
	static const uint8_t zeros[32] = {0};
	kos_ledger_entry e[2], t;
	uint8_t h[32];
	size_t k;

	known_entries(e);
	CU_ASSERT_EQUAL_FATAL(kos_ledger_chain_link(e, 2, 0, zeros), KOS_OK);
	check_known_answer(e);
	for (k = 0; k < 2; k++) {
		CU_ASSERT_EQUAL(kos_ledger_chain_hash(&e[k], h), KOS_OK);
		CU_ASSERT(memcmp(h, e[k].hash, 32) == 0);
	}

	/* every text field counts, and so do the numbers and prev */
	for (k = 0; k < KOS_LEDGER_FIELDS; k++) {
		t = e[1];
		((char *)&t + kos_ledger_fields[k].off)[0] ^= 0x01;
		CU_ASSERT_EQUAL(kos_ledger_chain_hash(&t, h), KOS_OK);
		CU_ASSERT(memcmp(h, e[1].hash, 32) != 0);
	}
	t = e[1];
	t.at++;
	CU_ASSERT_EQUAL(kos_ledger_chain_hash(&t, h), KOS_OK);
	CU_ASSERT(memcmp(h, e[1].hash, 32) != 0);
	t = e[1];
	t.seq = 3;
	CU_ASSERT_EQUAL(kos_ledger_chain_hash(&t, h), KOS_OK);
	CU_ASSERT(memcmp(h, e[1].hash, 32) != 0);
	t = e[1];
	t.prev[31] ^= 0x80;
	CU_ASSERT_EQUAL(kos_ledger_chain_hash(&t, h), KOS_OK);
	CU_ASSERT(memcmp(h, e[1].hash, 32) != 0);

	/* after a head; and no sequence numbers past INT64_MAX */
	t = e[0];
	CU_ASSERT_EQUAL(kos_ledger_chain_link(&t, 1, 41, e[1].hash), KOS_OK);
	CU_ASSERT_EQUAL(t.seq, 42);
	CU_ASSERT(memcmp(t.prev, e[1].hash, 32) == 0);
	ref_hash(&t, h);
	CU_ASSERT(memcmp(h, t.hash, 32) == 0);
	CU_ASSERT_EQUAL(kos_ledger_chain_link(&t, 1, (uint64_t)INT64_MAX, e[1].hash), KOS_E_RANGE);
	CU_ASSERT_EQUAL(kos_ledger_chain_link(&t, 2, (uint64_t)INT64_MAX - 1, e[1].hash),
			KOS_E_RANGE);
}

static void test_append_and_chain(void)
{
	const char *path = kos_test_path("chain.db");
	kos_store *st = open_store(path);
	kos_ledger_entry e[3], again;
	uint8_t zero[32] = {0}, h[32];
	struct collect c = {0};
	uint64_t seq = 99;

	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	/* empty: head 0 and zeros */
	CU_ASSERT_EQUAL(kos_ledger_head(st, &seq, h), KOS_OK);
	CU_ASSERT_EQUAL(seq, 0);
	CU_ASSERT(memcmp(h, zero, 32) == 0);

	make(&e[0], 0, "alice");
	make(&e[1], 1, "bob");
	make(&e[2], 2, "-");
	CU_ASSERT_EQUAL_FATAL(kos_ledger_append(st, e, 3), KOS_OK);
	CU_ASSERT_EQUAL(e[0].seq, 1);
	CU_ASSERT_EQUAL(e[2].seq, 3);
	CU_ASSERT(memcmp(e[0].prev, zero, 32) == 0);
	CU_ASSERT(memcmp(e[1].prev, e[0].hash, 32) == 0);
	CU_ASSERT(memcmp(e[2].prev, e[1].hash, 32) == 0);
	ref_hash(&e[1], h);
	CU_ASSERT(memcmp(h, e[1].hash, 32) == 0);
	/* a second batch continues the chain */
	make(&again, 3, "carol");
	CU_ASSERT_EQUAL_FATAL(kos_ledger_append(st, &again, 1), KOS_OK);
	CU_ASSERT_EQUAL(again.seq, 4);
	CU_ASSERT(memcmp(again.prev, e[2].hash, 32) == 0);
	/* an empty batch does nothing */
	CU_ASSERT_EQUAL(kos_ledger_append(st, NULL, 0), KOS_OK);

	/* read back exactly as written */
	CU_ASSERT_EQUAL_FATAL(kos_ledger_list(st, 1, 0, collect_fn, &c), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(c.n, 4);
	CU_ASSERT(memcmp(&c.e[1], &e[1], sizeof(e[1])) == 0);
	CU_ASSERT_STRING_EQUAL(c.e[1].client, "bob");
	CU_ASSERT_STRING_EQUAL(c.e[1].reason, "trust too low");
	CU_ASSERT_STRING_EQUAL(c.e[2].client, "-");
	CU_ASSERT_EQUAL(c.e[2].at, T0 + 2000);
	free(c.e);
	check_chain(st, 4);
	kos_store_free(st);

	/* survives a reopen, and the chain goes on from its head */
	st = open_store(path);
	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	check_chain(st, 4);
	make(&again, 4, "dave");
	CU_ASSERT_EQUAL(kos_ledger_append(st, &again, 1), KOS_OK);
	CU_ASSERT_EQUAL(again.seq, 5);
	check_chain(st, 5);
	kos_store_free(st);
	CU_ASSERT_EQUAL(kos_test_sql_int(path, "SELECT count(*) FROM ledger"), 5);
}

/* --- validation --- */

struct bad_case {
	const char *what; /* in the error detail */
	void (*spoil)(kos_ledger_entry *e);
};

static void s_client_empty(kos_ledger_entry *e)
{
	e->client[0] = '\0';
}
static void s_action_empty(kos_ledger_entry *e)
{
	e->action[0] = '\0';
}
static void s_resource_empty(kos_ledger_entry *e)
{
	e->resource[0] = '\0';
}
static void s_tier_empty(kos_ledger_entry *e)
{
	e->tier[0] = '\0';
}
static void s_outcome_empty(kos_ledger_entry *e)
{
	e->outcome[0] = '\0';
}
static void s_jti_empty(kos_ledger_entry *e)
{
	e->jti[0] = '\0';
}
static void s_client_long(kos_ledger_entry *e)
{
	memset(e->client, 'a', sizeof(e->client));
}
static void s_action_long(kos_ledger_entry *e)
{
	memset(e->action, 'a', sizeof(e->action));
}
static void s_resource_long(kos_ledger_entry *e)
{
	memset(e->resource, 'r', sizeof(e->resource));
}
static void s_tier_long(kos_ledger_entry *e)
{
	memset(e->tier, 'h', sizeof(e->tier));
}
static void s_outcome_long(kos_ledger_entry *e)
{
	memset(e->outcome, 'o', sizeof(e->outcome));
}
static void s_reason_long(kos_ledger_entry *e)
{
	memset(e->reason, 'x', sizeof(e->reason));
}
static void s_jti_long(kos_ledger_entry *e)
{
	memset(e->jti, 'j', sizeof(e->jti));
}
static void s_client_newline(kos_ledger_entry *e)
{
	strcpy(e->client, "ali\nce");
}
static void s_client_space(kos_ledger_entry *e)
{
	strcpy(e->client, "ali ce");
}
static void s_action_tab(kos_ledger_entry *e)
{
	strcpy(e->action, "si\tgn");
}
static void s_resource_del(kos_ledger_entry *e)
{
	strcpy(e->resource, "key\x7f");
}
static void s_resource_utf8(kos_ledger_entry *e)
{
	strcpy(e->resource, "caf\xc3\xa9");
}
static void s_reason_cr(kos_ledger_entry *e)
{
	strcpy(e->reason, "bad\r");
}
static void s_jti_esc(kos_ledger_entry *e)
{
	strcpy(e->jti, "\x1b[0m");
}
static void s_tier_unknown(kos_ledger_entry *e)
{
	strcpy(e->tier, "maybe");
}
static void s_outcome_unknown(kos_ledger_entry *e)
{
	strcpy(e->outcome, "ok");
}
static void s_at_negative(kos_ledger_entry *e)
{
	e->at = -1;
}

static const struct bad_case bad_cases[] = {
    {"client is empty", s_client_empty},
    {"action is empty", s_action_empty},
    {"resource is empty", s_resource_empty},
    {"tier is empty", s_tier_empty},
    {"outcome is empty", s_outcome_empty},
    {"jti is empty", s_jti_empty},
    {"client longer than 64 bytes", s_client_long},
    {"action longer than 32 bytes", s_action_long},
    {"resource longer than 128 bytes", s_resource_long},
    {"tier longer than 7 bytes", s_tier_long},
    {"outcome longer than 15 bytes", s_outcome_long},
    {"reason longer than 64 bytes", s_reason_long},
    {"jti longer than 64 bytes", s_jti_long},
    {"client holds byte 0x0a at 3", s_client_newline},
    {"client holds byte 0x20 at 3", s_client_space},
    {"action holds byte 0x09", s_action_tab},
    {"resource holds byte 0x7f", s_resource_del},
    {"resource holds byte 0xc3", s_resource_utf8},
    {"reason holds byte 0x0d", s_reason_cr},
    {"jti holds byte 0x1b", s_jti_esc},
    {"tier 'maybe' is none of", s_tier_unknown},
    {"outcome 'ok' is none of", s_outcome_unknown},
    {"time before 1970", s_at_negative},
};

static void check_validation(const char *loc)
{
	kos_store *st = open_store(loc);
	kos_ledger_entry e[3];
	uint64_t seq = 99;
	size_t i;

	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	for (i = 0; i < KOS_ARRAY_SIZE(bad_cases); i++) {
		char want[128];
		kos_rv rv;

		make(&e[0], 0, "a");
		make(&e[1], 1, "b");
		make(&e[2], 2, "c");
		bad_cases[i].spoil(&e[1]);
		rv = kos_ledger_append(st, e, 3);
		CU_ASSERT_EQUAL(rv, KOS_E_INVALID);
		snprintf(want, sizeof(want), "ledger entry 2 of the batch: %s", bad_cases[i].what);
		if (strstr(kos_last_error(), want) == NULL) {
			fprintf(stderr, "\n  case %zu: '%s' lacks '%s'\n", i, kos_last_error(),
				want);
			CU_FAIL("validation detail");
		}
		/* nothing of the batch was written, and no chain values handed out */
		CU_ASSERT_EQUAL(e[0].seq, 0);
	}
	CU_ASSERT_EQUAL(kos_ledger_head(st, &seq, NULL), KOS_OK);
	CU_ASSERT_EQUAL(seq, 0);

	/* what is allowed: an empty reason, spaces in reason, every "-", every tier */
	make(&e[0], 0, "a");
	e[0].reason[0] = '\0';
	make(&e[1], 1, "b");
	strcpy(e[1].reason, "out of scope: sign:ca-2026 ~!@#$%^&*()");
	kos_ledger_entry_init(&e[2], 0, "-", "admin_revoke", "-", "-", "failed", "", "-");
	CU_ASSERT_EQUAL(kos_ledger_append(st, e, 3), KOS_OK);
	CU_ASSERT_EQUAL(kos_ledger_head(st, &seq, NULL), KOS_OK);
	CU_ASSERT_EQUAL(seq, 3);
	kos_store_free(st);
}

static void test_validation_sqlite(void)
{
	const char *path = kos_test_path("valid.db");

	check_validation(path);
	CU_ASSERT_EQUAL(kos_test_sql_int(path, "SELECT count(*) FROM ledger"), 3);
}

static void test_validation_memory(void)
{
	check_validation("memory:");
}

static void test_bad_arguments(void)
{
	kos_store *st = open_store("memory:");
	kos_ledger_check c;
	kos_ledger_entry e;
	struct collect col = {0};

	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	make(&e, 0, "a");
	CU_ASSERT_EQUAL(kos_ledger_append(NULL, &e, 1), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_ledger_append(st, NULL, 1), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_ledger_head(NULL, NULL, NULL), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_ledger_list(NULL, 1, 0, collect_fn, &col), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_ledger_list(st, 1, 0, NULL, NULL), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_ledger_verify(NULL, &c), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_ledger_verify(st, NULL), KOS_E_INVALID);
	kos_store_free(st);
}

static void test_entry_init(void)
{
	kos_ledger_entry e;
	char longname[300];

	memset(longname, 'k', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	memset(&e, 0x55, sizeof(e));
	kos_ledger_entry_init(&e, T0, "we b\n1", "si\xc3\xa9gn", longname, "high", "allowed",
			      "why\tnot here", "");
	CU_ASSERT_EQUAL(e.seq, 0);
	CU_ASSERT_EQUAL(e.at, T0);
	CU_ASSERT_STRING_EQUAL(e.client, "we?b?1");
	CU_ASSERT_STRING_EQUAL(e.action, "si??gn");
	CU_ASSERT_EQUAL(strlen(e.resource), KOS_LEDGER_RESOURCE_MAX);
	CU_ASSERT_STRING_EQUAL(e.reason, "why?not here");
	CU_ASSERT_STRING_EQUAL(e.jti, "-");
	CU_ASSERT_EQUAL(e.hash[0], 0);
	/* what it makes from untrusted text is always accepted (tier and
	 * outcome aside) */
	{
		kos_store *st = open_store("memory:");

		CU_ASSERT_PTR_NOT_NULL_FATAL(st);
		CU_ASSERT_EQUAL(kos_ledger_append(st, &e, 1), KOS_OK);
		kos_ledger_entry_init(&e, T0, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
		CU_ASSERT_STRING_EQUAL(e.client, "-");
		CU_ASSERT_STRING_EQUAL(e.reason, "");
		CU_ASSERT_EQUAL(kos_ledger_append(st, &e, 1), KOS_E_INVALID); /* outcome "-" */
		kos_store_free(st);
	}
	kos_ledger_entry_init(NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
}

/* --- batches --- */

static void check_batch_atomic(const char *loc)
{
	kos_store *st = open_store(loc);
	kos_ledger_entry *e = calloc(256, sizeof(*e));
	uint8_t before[32], after[32];
	uint64_t seq = 0;
	unsigned i;

	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	CU_ASSERT_EQUAL_FATAL(append_n(st, 0, 10, 10, "pre"), KOS_OK);
	CU_ASSERT_EQUAL(kos_ledger_head(st, &seq, before), KOS_OK);
	/* one bad entry at the end of a batch of 256: none is written */
	for (i = 0; i < 256; i++)
		make(&e[i], i, "batch");
	strcpy(e[255].outcome, "maybe");
	CU_ASSERT_EQUAL(kos_ledger_append(st, e, 256), KOS_E_INVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "ledger entry 256 of the batch"));
	CU_ASSERT_EQUAL(kos_ledger_head(st, &seq, after), KOS_OK);
	CU_ASSERT_EQUAL(seq, 10);
	CU_ASSERT(memcmp(before, after, 32) == 0);
	/* fixed, the whole batch goes in, numbered on */
	strcpy(e[255].outcome, "allowed");
	CU_ASSERT_EQUAL(kos_ledger_append(st, e, 256), KOS_OK);
	CU_ASSERT_EQUAL(e[0].seq, 11);
	CU_ASSERT_EQUAL(e[255].seq, 266);
	CU_ASSERT(memcmp(e[0].prev, before, 32) == 0);
	check_chain(st, 266);
	free(e);
	kos_store_free(st);
}

static void test_batch_atomic_sqlite(void)
{
	const char *path = kos_test_path("batch.db");

	check_batch_atomic(path);
	CU_ASSERT_EQUAL(kos_test_sql_int(path, "SELECT count(*) FROM ledger"), 266);
}

static void test_batch_atomic_memory(void)
{
	check_batch_atomic("memory:");
}

/* A failure inside the store's transaction (the table made read-only
 * under kos's feet) writes nothing either. */
static void test_batch_store_failure(void)
{
	const char *path = kos_test_path("fail.db");
	kos_store *st = open_store(path);
	kos_ledger_entry e[4];
	uint64_t seq = 0;
	unsigned i;

	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	CU_ASSERT_EQUAL_FATAL(append_n(st, 0, 2, 2, "pre"), KOS_OK);
	/* a trigger that refuses the third row of the next batch */
	CU_ASSERT_EQUAL_FATAL(kos_test_sql_exec(path, "CREATE TRIGGER fail_third BEFORE INSERT ON ledger "
					     "WHEN NEW.seq = 5 BEGIN SELECT RAISE(ABORT, 'no'); "
					     "END;"),
			      SQLITE_OK);
	for (i = 0; i < 4; i++)
		make(&e[i], i, "x");
	CU_ASSERT_EQUAL(kos_ledger_append(st, e, 4), KOS_E_STORE);
	CU_ASSERT_EQUAL(e[0].seq, 0);
	CU_ASSERT_EQUAL(kos_ledger_head(st, &seq, NULL), KOS_OK);
	CU_ASSERT_EQUAL(seq, 2);
	CU_ASSERT_EQUAL(kos_test_sql_int(path, "SELECT count(*) FROM ledger"), 2);
	kos_store_free(st);
}

/* --- listing --- */

static void check_list(const char *loc)
{
	kos_store *st = open_store(loc);
	struct collect c = {0};

	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	CU_ASSERT_EQUAL_FATAL(append_n(st, 0, 600, 100, "lister"), KOS_OK);
	/* past a page boundary, from the middle */
	CU_ASSERT_EQUAL(kos_ledger_list(st, 250, 0, collect_fn, &c), KOS_OK);
	CU_ASSERT_EQUAL(c.n, 351);
	CU_ASSERT_EQUAL(c.e[0].seq, 250);
	CU_ASSERT_EQUAL(c.e[350].seq, 600);
	CU_ASSERT_STRING_EQUAL(c.e[0].jti, "lister-249");
	c.n = 0;
	/* with a limit over several pages */
	CU_ASSERT_EQUAL(kos_ledger_list(st, 2, 300, collect_fn, &c), KOS_OK);
	CU_ASSERT_EQUAL(c.n, 300);
	CU_ASSERT_EQUAL(c.e[299].seq, 301);
	c.n = 0;
	/* seq 0 means from the start; past the end gives nothing */
	CU_ASSERT_EQUAL(kos_ledger_list(st, 0, 3, collect_fn, &c), KOS_OK);
	CU_ASSERT_EQUAL(c.n, 3);
	CU_ASSERT_EQUAL(c.e[0].seq, 1);
	c.n = 0;
	CU_ASSERT_EQUAL(kos_ledger_list(st, 601, 0, collect_fn, &c), KOS_OK);
	CU_ASSERT_EQUAL(c.n, 0);
	CU_ASSERT_EQUAL(kos_ledger_list(st, UINT64_MAX, 0, collect_fn, &c), KOS_OK);
	CU_ASSERT_EQUAL(c.n, 0);
	/* the callback stops it and its value comes back */
	c.stop_after = 5;
	CU_ASSERT_EQUAL(kos_ledger_list(st, 1, 0, collect_fn, &c), 42);
	CU_ASSERT_EQUAL(c.n, 5);
	free(c.e);
	kos_store_free(st);
}

static void test_list_sqlite(void)
{
	check_list(kos_test_path("list.db"));
}

static void test_list_memory(void)
{
	check_list("memory:");
}

/* --- verification --- */

static void check_intact(const char *loc)
{
	kos_store *st = open_store(loc);
	kos_ledger_check c;
	uint8_t head[32], zero[32] = {0};
	uint64_t seq;

	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	CU_ASSERT_EQUAL(kos_ledger_verify(st, &c), KOS_OK);
	CU_ASSERT_EQUAL(c.checked, 0);
	CU_ASSERT_EQUAL(c.head_seq, 0);
	CU_ASSERT(memcmp(c.head_hash, zero, 32) == 0);
	/* more than two pages, and an exact multiple of one */
	CU_ASSERT_EQUAL_FATAL(append_n(st, 0, 768, 256, "v"), KOS_OK);
	CU_ASSERT_EQUAL(kos_ledger_verify(st, &c), KOS_OK);
	CU_ASSERT_EQUAL(c.checked, 768);
	CU_ASSERT_EQUAL(c.first_bad, 0);
	CU_ASSERT_STRING_EQUAL(c.why, "");
	CU_ASSERT_EQUAL(kos_ledger_head(st, &seq, head), KOS_OK);
	CU_ASSERT_EQUAL(c.head_seq, seq);
	CU_ASSERT(memcmp(c.head_hash, head, 32) == 0);
	CU_ASSERT_EQUAL_FATAL(append_n(st, 768, 5, 1, "v"), KOS_OK);
	CU_ASSERT_EQUAL(kos_ledger_verify(st, &c), KOS_OK);
	CU_ASSERT_EQUAL(c.checked, 773);
	kos_store_free(st);
}

static void test_verify_intact_sqlite(void)
{
	check_intact(kos_test_path("intact.db"));
}

static void test_verify_intact_memory(void)
{
	check_intact("memory:");
}

/* Makes a ledger of 10 entries at name, changes it with sql (the
 * append-only triggers dropped first, as an intruder would) and checks
 * that verification names entry bad with why. */
static void check_tamper(const char *name, const char *sql, uint64_t bad, const char *why)
{
	const char *path = kos_test_path(name);
	char script[1024], detail[160];
	kos_store *st = open_store(path);
	kos_ledger_check c;

	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	CU_ASSERT_EQUAL_FATAL(append_n(st, 0, 10, 4, "t"), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_ledger_verify(st, &c), KOS_OK);
	kos_store_free(st);
	snprintf(script, sizeof(script),
		 "DROP TRIGGER ledger_no_update; DROP TRIGGER ledger_no_delete; %s", sql);
	CU_ASSERT_EQUAL_FATAL(kos_test_sql_exec(path, script), SQLITE_OK);

	st = open_store(path);
	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	CU_ASSERT_EQUAL(kos_ledger_verify(st, &c), KOS_E_INTEGRITY);
	CU_ASSERT_EQUAL(c.first_bad, bad);
	CU_ASSERT_EQUAL(c.checked, bad - 1);
	CU_ASSERT_EQUAL(c.head_seq, bad - 1);
	if (strcmp(c.why, why) != 0) {
		fprintf(stderr, "\n  %s: why '%s', expected '%s'\n", name, c.why, why);
		CU_FAIL("why");
	}
	snprintf(detail, sizeof(detail), "ledger entry %llu: %s", (unsigned long long)bad, why);
	CU_ASSERT_STRING_EQUAL(kos_last_error(), detail);
	/* the intact part ends where it should: its head is entry bad - 1's */
	if (bad > 1) {
		struct collect col = {0};

		CU_ASSERT_EQUAL(kos_ledger_list(st, bad - 1, 1, collect_fn, &col), KOS_OK);
		if (col.n == 1 && col.e[0].seq == bad - 1)
			CU_ASSERT(memcmp(col.e[0].hash, c.head_hash, 32) == 0);
		free(col.e);
	}
	kos_store_free(st);
}

static void test_tamper_field(void)
{
	check_tamper("t-field.db", "UPDATE ledger SET client = 'mallory' WHERE seq = 7;", 7,
		     "hash does not match");
	check_tamper("t-outcome.db",
		     "UPDATE ledger SET outcome = 'allowed', reason = '' WHERE "
		     "seq = 8;",
		     8, "hash does not match");
	check_tamper("t-time.db", "UPDATE ledger SET at = at + 1 WHERE seq = 3;", 3,
		     "hash does not match");
	check_tamper("t-first.db", "UPDATE ledger SET jti = 'other' WHERE seq = 1;", 1,
		     "hash does not match");
	check_tamper("t-last.db", "UPDATE ledger SET resource = 'x' WHERE seq = 10;", 10,
		     "hash does not match");
}

static void test_tamper_hash(void)
{
	check_tamper("t-hash.db", "UPDATE ledger SET hash = randomblob(32) WHERE seq = 5;", 5,
		     "hash does not match");
	check_tamper("t-prev1.db", "UPDATE ledger SET prev = randomblob(32) WHERE seq = 1;", 1,
		     "prev is not 32 zero bytes");
	check_tamper("t-prev.db", "UPDATE ledger SET prev = randomblob(32) WHERE seq = 6;", 6,
		     "prev does not match entry 5");
}

/* An intruder who changes an entry and recomputes its hash is caught at the
 * next entry, whose prev no longer matches. */
static void test_tamper_rehashed(void)
{
	const char *path = kos_test_path("t-rehash.db");
	kos_store *st = open_store(path);
	struct collect c = {0};
	kos_ledger_check chk;
	char sql[512], hex[65];
	uint8_t h[32];

	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	CU_ASSERT_EQUAL_FATAL(append_n(st, 0, 10, 10, "r"), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_ledger_list(st, 4, 1, collect_fn, &c), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(c.n, 1);
	kos_store_free(st);
	strcpy(c.e[0].outcome, "allowed");
	strcpy(c.e[0].reason, "");
	strcpy(c.e[0].client, "mallory");
	ref_hash(&c.e[0], h);
	to_hex(h, 32, hex);
	snprintf(sql, sizeof(sql),
		 "DROP TRIGGER ledger_no_update; UPDATE ledger SET outcome = 'allowed', reason = "
		 "'', client = 'mallory', hash = x'%s' WHERE seq = 4;",
		 hex);
	CU_ASSERT_EQUAL_FATAL(kos_test_sql_exec(path, sql), SQLITE_OK);
	st = open_store(path);
	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	CU_ASSERT_EQUAL(kos_ledger_verify(st, &chk), KOS_E_INTEGRITY);
	CU_ASSERT_EQUAL(chk.first_bad, 5);
	CU_ASSERT_STRING_EQUAL(chk.why, "prev does not match entry 4");
	kos_store_free(st);
	free(c.e);
}

static void test_tamper_delete(void)
{
	check_tamper("t-del.db", "DELETE FROM ledger WHERE seq = 7;", 7, "missing entry 7");
	check_tamper("t-del1.db", "DELETE FROM ledger WHERE seq = 1;", 1, "missing entry 1");
	check_tamper("t-del-range.db", "DELETE FROM ledger WHERE seq BETWEEN 3 AND 8;", 3,
		     "missing entry 3");
}

static void test_tamper_reorder(void)
{
	check_tamper("t-swap.db",
		     "UPDATE ledger SET seq = 1000 WHERE seq = 4;"
		     "UPDATE ledger SET seq = 4 WHERE seq = 5;"
		     "UPDATE ledger SET seq = 5 WHERE seq = 1000;",
		     4, "prev does not match entry 3");
	/* renumbered after a deletion, to hide the gap */
	check_tamper("t-renumber.db",
		     "DELETE FROM ledger WHERE seq = 6;"
		     "UPDATE ledger SET seq = seq - 1 WHERE seq > 6;",
		     6, "prev does not match entry 5");
}

static void test_tamper_malformed(void)
{
	check_tamper("t-long.db", "UPDATE ledger SET client = printf('%.100c', 'x') WHERE seq = 8;",
		     8,
		     "malformed (a text too long or not text, a time not an integer, or a hash "
		     "not 32 bytes)");
	/* the same bytes as a blob would hash the same: not what kos wrote */
	check_tamper("t-type.db", "UPDATE ledger SET tier = CAST(tier AS BLOB) WHERE seq = 2;", 2,
		     "malformed (a text too long or not text, a time not an integer, or a hash "
		     "not 32 bytes)");
	check_tamper("t-at.db", "UPDATE ledger SET at = 'yesterday' WHERE seq = 4;", 4,
		     "malformed (a text too long or not text, a time not an integer, or a hash "
		     "not 32 bytes)");
	check_tamper("t-nul.db", "UPDATE ledger SET jti = 'a' || char(0) || 'b' WHERE seq = 9;", 9,
		     "malformed (a text too long or not text, a time not an integer, or a hash "
		     "not 32 bytes)");
}

/* The schema refuses changes and deletions made by mistake; appends from
 * another program with a bad hash are caught by verify. */
static void test_append_only(void)
{
	const char *path = kos_test_path("append-only.db");
	kos_store *st = open_store(path);
	kos_ledger_check c;

	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	CU_ASSERT_EQUAL_FATAL(append_n(st, 0, 3, 3, "a"), KOS_OK);
	kos_store_free(st);
	CU_ASSERT_NOT_EQUAL(kos_test_sql_exec(path, "UPDATE ledger SET client = 'x' WHERE seq = 2"),
			    SQLITE_OK);
	CU_ASSERT_NOT_EQUAL(kos_test_sql_exec(path, "DELETE FROM ledger WHERE seq = 3"), SQLITE_OK);
	CU_ASSERT_NOT_EQUAL(kos_test_sql_exec(path, "INSERT INTO ledger VALUES (4, 1, 'a', 'b', 'c', "
					   "'-', 'allowed', '', '-', x'00', zeroblob(32))"),
			    SQLITE_OK);
	CU_ASSERT_EQUAL(kos_test_sql_int(path, "SELECT count(*) FROM ledger"), 3);
	CU_ASSERT_EQUAL(kos_test_sql_exec(path, "INSERT INTO ledger VALUES (4, 1, 'a', 'b', 'c', '-', "
				       "'allowed', '', '-', randomblob(32), randomblob(32))"),
			SQLITE_OK);
	st = open_store(path);
	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	CU_ASSERT_EQUAL(kos_ledger_verify(st, &c), KOS_E_INTEGRITY);
	CU_ASSERT_EQUAL(c.first_bad, 4);
	CU_ASSERT_EQUAL(c.checked, 3);
	kos_store_free(st);
}

/* --- concurrency --- */

#define PROCS	  4
#define BATCHES	  25
#define PER_BATCH 8

/* Each process's entries come back in its own order, all in one chain. */
static void check_interleaved(kos_store *st, unsigned writers, const char *prefix, unsigned each)
{
	struct collect c = {0};
	unsigned next[PROCS] = {0};
	kos_ledger_check chk;
	size_t i;

	CU_ASSERT_EQUAL(kos_ledger_verify(st, &chk), KOS_OK);
	CU_ASSERT_EQUAL(chk.checked, (uint64_t)writers * each);
	CU_ASSERT_EQUAL_FATAL(kos_ledger_list(st, 1, 0, collect_fn, &c), KOS_OK);
	CU_ASSERT_EQUAL(c.n, (size_t)writers * each);
	for (i = 0; i < c.n; i++) {
		unsigned w, k;
		char want[80];

		if (sscanf(c.e[i].client, "%*[a-z]-%u", &w) != 1 || w >= writers) {
			CU_FAIL("an entry of no writer");
			continue;
		}
		k = next[w]++;
		snprintf(want, sizeof(want), "%s-%u-%u", prefix, w, k);
		CU_ASSERT_STRING_EQUAL(c.e[i].jti, want);
	}
	for (i = 0; i < writers; i++)
		CU_ASSERT_EQUAL(next[i], each);
	free(c.e);
}

/* Appends BATCHES batches of PER_BATCH entries as writer w; its jti are
 * PREFIX-w-0, PREFIX-w-1, ... */
static kos_rv writer(kos_store *st, const char *prefix, unsigned w)
{
	kos_ledger_entry e[PER_BATCH];
	char client[40], jti[64];
	unsigned b, k, n = 0;
	kos_rv rv = KOS_OK;

	snprintf(client, sizeof(client), "%s-%u", prefix, w);
	for (b = 0; b < BATCHES && rv == KOS_OK; b++) {
		for (k = 0; k < PER_BATCH; k++, n++) {
			snprintf(jti, sizeof(jti), "%s-%u-%u", prefix, w, n);
			kos_ledger_entry_init(&e[k], T0 + n, client, "sign", "ca-2026", "high",
					      "allowed", "", jti);
		}
		rv = kos_ledger_append(st, e, PER_BATCH);
	}
	return rv;
}

static void test_concurrent_processes(void)
{
	const char *path = kos_test_path("procs.db");
	pid_t pids[PROCS];
	kos_store *st;
	unsigned w;
	int status;

	/* the store is created by the children, racing on the migration too */
	for (w = 0; w < PROCS; w++) {
		pids[w] = fork();
		CU_ASSERT_FATAL(pids[w] >= 0);
		if (pids[w] == 0) {
			kos_store *mine = NULL;
			kos_rv rv = kos_store_open(path, &mine);

			if (rv == KOS_OK)
				rv = writer(mine, "proc", w);
			if (rv != KOS_OK)
				fprintf(stderr, "\n  writer %u: %s\n", w, kos_last_error());
			kos_store_free(mine);
			_exit(rv == KOS_OK ? 0 : 1);
		}
	}
	for (w = 0; w < PROCS; w++) {
		CU_ASSERT_EQUAL(waitpid(pids[w], &status, 0), pids[w]);
		CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	st = open_store(path);
	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	check_interleaved(st, PROCS, "proc", BATCHES * PER_BATCH);
	kos_store_free(st);
}

struct thread_arg {
	kos_store *st;
	unsigned w;
	kos_rv rv;
};

static void *thread_main(void *varg)
{
	struct thread_arg *a = varg;

	a->rv = writer(a->st, "thread", a->w);
	return NULL;
}

static void check_threads(const char *loc)
{
	kos_store *st = open_store(loc);
	struct thread_arg args[PROCS];
	pthread_t th[PROCS];
	unsigned w;

	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	for (w = 0; w < PROCS; w++) {
		args[w] = (struct thread_arg){st, w, KOS_E_INTERNAL};
		CU_ASSERT_EQUAL_FATAL(pthread_create(&th[w], NULL, thread_main, &args[w]), 0);
	}
	for (w = 0; w < PROCS; w++) {
		pthread_join(th[w], NULL);
		CU_ASSERT_EQUAL(args[w].rv, KOS_OK);
	}
	check_interleaved(st, PROCS, "thread", BATCHES * PER_BATCH);
	kos_store_free(st);
}

static void test_concurrent_threads_sqlite(void)
{
	check_threads(kos_test_path("threads.db"));
}

static void test_concurrent_threads_memory(void)
{
	check_threads("memory:");
}

/* --- migration --- */

/* A store as kos wrote it at schema version 4: the released steps 1 to 4
 * are unchanged, so a current store without step 5's table and with
 * user_version 4 is exactly one. */
static void test_migrate_from_v4(void)
{
	const char *path = kos_test_path("v4.db");
	kos_store *st = open_store(path);
	kos_ledger_check c;
	char *v = NULL;
	uint64_t seq = 99;

	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	CU_ASSERT_EQUAL(kos_store_meta_put(st, "probe", "from v4"), KOS_OK);
	kos_store_free(st);
	CU_ASSERT_EQUAL_FATAL(kos_test_sql_exec(path, "DROP TABLE key_certs; DROP TABLE ledger; ALTER TABLE trust DROP "
						      "COLUMN ceiling; ALTER TABLE trust DROP COLUMN "
						      "ceiling_at; PRAGMA user_version = 4;"),
			      SQLITE_OK);
	CU_ASSERT_EQUAL_FATAL(kos_test_sql_int(path, "PRAGMA user_version"), 4);
	CU_ASSERT_EQUAL_FATAL(
	    kos_test_sql_int(path, "SELECT count(*) FROM sqlite_master WHERE name LIKE 'ledger%'"), 0);

	st = open_store(path);
	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	CU_ASSERT_EQUAL(kos_store_schema_version(st), KOS_STORE_SCHEMA_VERSION);
	CU_ASSERT_EQUAL(kos_store_meta_get(st, "probe", &v), KOS_OK);
	CU_ASSERT_STRING_EQUAL(v != NULL ? v : "", "from v4");
	free(v);
	CU_ASSERT_EQUAL(kos_ledger_head(st, &seq, NULL), KOS_OK);
	CU_ASSERT_EQUAL(seq, 0);
	CU_ASSERT_EQUAL(append_n(st, 0, 3, 3, "m"), KOS_OK);
	CU_ASSERT_EQUAL(kos_ledger_verify(st, &c), KOS_OK);
	CU_ASSERT_EQUAL(c.checked, 3);
	kos_store_free(st);
	CU_ASSERT_EQUAL(kos_test_sql_int(path, "PRAGMA user_version"), KOS_STORE_SCHEMA_VERSION);
	CU_ASSERT_EQUAL(kos_test_sql_int(path, "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' "
				      "AND tbl_name = 'ledger'"),
			2);
}

int main(void)
{
	static const struct kos_test_case cases[] = {
	    KOS_TEST(test_known_answer),
	    KOS_TEST(test_chain_leaf),
	    KOS_TEST(test_append_and_chain),
	    KOS_TEST(test_validation_sqlite),
	    KOS_TEST(test_validation_memory),
	    KOS_TEST(test_bad_arguments),
	    KOS_TEST(test_entry_init),
	    KOS_TEST(test_batch_atomic_sqlite),
	    KOS_TEST(test_batch_atomic_memory),
	    KOS_TEST(test_batch_store_failure),
	    KOS_TEST(test_list_sqlite),
	    KOS_TEST(test_list_memory),
	    KOS_TEST(test_verify_intact_sqlite),
	    KOS_TEST(test_verify_intact_memory),
	    KOS_TEST(test_tamper_field),
	    KOS_TEST(test_tamper_hash),
	    KOS_TEST(test_tamper_rehashed),
	    KOS_TEST(test_tamper_delete),
	    KOS_TEST(test_tamper_reorder),
	    KOS_TEST(test_tamper_malformed),
	    KOS_TEST(test_append_only),
	    KOS_TEST(test_concurrent_processes),
	    KOS_TEST(test_concurrent_threads_sqlite),
	    KOS_TEST(test_concurrent_threads_memory),
	    KOS_TEST(test_migrate_from_v4),
	};

	return kos_test_run("ledger", NULL, NULL, cases, KOS_ARRAY_SIZE(cases));
}
