/* The state store: locations, schema versions and migrations, the backend
 * interface on both backends, and no lost update under concurrent writers. */
#include "config.h"

#include "kos/store_backend.h"
#include "tests/kos-test.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SEC KOS_USEC_PER_SEC

static void raw_text(const char *path, const char *sql, char *out, size_t len)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *stmt = NULL;

	snprintf(out, len, "(none)");
	if (sqlite3_open(path, &db) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) == SQLITE_OK &&
	    sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0) != NULL)
		snprintf(out, len, "%s", (const char *)sqlite3_column_text(stmt, 0));
	sqlite3_finalize(stmt);
	sqlite3_close(db);
}

/* Every field of a state, derived from a seed, so that a round trip through
 * a backend can be checked column by column. */
static void fill(struct kos_trust_state *s, unsigned seed)
{
	size_t i;

	for (i = 0; i < KOS_FACTOR_COUNT; i++)
		s->factor[i] = seed % 50 + 0.125 * (double)(i + 1);
	s->created = (kos_usec)seed * 1000 + 1;
	s->last_activity = (kos_usec)seed * 1000 + 2;
	s->observations = seed + 3;
	s->integrity_failures = seed + 4;
	s->scope_violations = seed + 5;
	s->rate_start = (kos_usec)seed * 1000 + 6;
	s->rate_count = seed + 7;
	s->rate_flagged = seed & 1;
	s->base_n = seed + 8;
	s->base_mean = seed + 0.25;
	s->base_m2 = seed + 0.75;
	s->scope_start = (kos_usec)seed * 1000 + 9;
	s->scope_count = seed + 10;
	s->usage_start = (kos_usec)seed * 1000 + 11;
	s->usage_ops = seed + 12;
	s->usage_bytes = (uint64_t)seed << 33;
	s->ceiling = seed % 50 + 0.375;
	s->ceiling_at = (kos_usec)seed * 1000 + 13;
}

static void check_filled(const struct kos_trust_state *s, const char *client, unsigned seed)
{
	struct kos_trust_state e;

	memset(&e, 0, sizeof(e));
	fill(&e, seed);
	CU_ASSERT_STRING_EQUAL(s->client, client);
	for (size_t i = 0; i < KOS_FACTOR_COUNT; i++)
		CU_ASSERT_EQUAL(s->factor[i], e.factor[i]);
	CU_ASSERT_EQUAL(s->created, e.created);
	CU_ASSERT_EQUAL(s->last_activity, e.last_activity);
	CU_ASSERT_EQUAL(s->observations, e.observations);
	CU_ASSERT_EQUAL(s->integrity_failures, e.integrity_failures);
	CU_ASSERT_EQUAL(s->scope_violations, e.scope_violations);
	CU_ASSERT_EQUAL(s->rate_start, e.rate_start);
	CU_ASSERT_EQUAL(s->rate_count, e.rate_count);
	CU_ASSERT_EQUAL(s->rate_flagged, e.rate_flagged);
	CU_ASSERT_EQUAL(s->base_n, e.base_n);
	CU_ASSERT_EQUAL(s->base_mean, e.base_mean);
	CU_ASSERT_EQUAL(s->base_m2, e.base_m2);
	CU_ASSERT_EQUAL(s->scope_start, e.scope_start);
	CU_ASSERT_EQUAL(s->scope_count, e.scope_count);
	CU_ASSERT_EQUAL(s->usage_start, e.usage_start);
	CU_ASSERT_EQUAL(s->usage_ops, e.usage_ops);
	CU_ASSERT_EQUAL(s->usage_bytes, e.usage_bytes);
	CU_ASSERT_EQUAL(s->ceiling, e.ceiling);
	CU_ASSERT_EQUAL(s->ceiling_at, e.ceiling_at);
}

struct fill_arg {
	unsigned seed;
	int created; /* what the store said */
	char seen[65];
};

static kos_rv fill_fn(struct kos_trust_state *s, bool created, void *varg)
{
	struct fill_arg *a = varg;

	a->created = created;
	snprintf(a->seen, sizeof(a->seen), "%s", s->client);
	fill(s, a->seed);
	return KOS_OK;
}

static kos_rv count_fn(struct kos_trust_state *s, bool created, void *arg)
{
	(void)created;
	(void)arg;
	s->observations++;
	return KOS_OK;
}

/* Changes the state, then refuses: nothing may be written. */
static kos_rv refuse_fn(struct kos_trust_state *s, bool created, void *arg)
{
	(void)created;
	(void)arg;
	s->observations += 1000;
	s->factor[0] = -1;
	return KOS_E_POLICY;
}

struct names {
	char name[8][65];
	size_t n;
};

static void list_names(kos_store *st, struct names *out)
{
	struct kos_trust_state *all = NULL;
	size_t n = 0, i;

	memset(out, 0, sizeof(*out));
	CU_ASSERT_EQUAL_FATAL(kos_store_trust_list(st, &all, &n), KOS_OK);
	out->n = n;
	for (i = 0; i < n && i < 8; i++)
		snprintf(out->name[i], sizeof(out->name[i]), "%s", all[i].client);
	free(all);
}

/* The behaviour every backend shares. */
static void check_interface(kos_store *st)
{
	struct kos_trust_state s;
	struct fill_arg a = {.seed = 17};
	struct names ls;
	static const char *const order[] = {"Zed", "alice", "alice2", "bob", "carol"};

	CU_ASSERT_EQUAL(kos_store_schema_version(st), KOS_STORE_SCHEMA_VERSION);
	CU_ASSERT_EQUAL(kos_store_trust_get(st, "carol", &s), KOS_E_NOTFOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "carol"));
	list_names(st, &ls);
	CU_ASSERT_EQUAL(ls.n, 0);

	/* the first update creates, and fn sees a zeroed state named client */
	a.created = -1;
	CU_ASSERT_EQUAL_FATAL(kos_store_trust_update(st, "carol", fill_fn, &a), KOS_OK);
	CU_ASSERT_EQUAL(a.created, 1);
	CU_ASSERT_STRING_EQUAL(a.seen, "carol");
	memset(&s, 0, sizeof(s));
	CU_ASSERT_EQUAL_FATAL(kos_store_trust_get(st, "carol", &s), KOS_OK);
	check_filled(&s, "carol", 17);

	/* the next ones update */
	a.seed = 18;
	a.created = -1;
	CU_ASSERT_EQUAL(kos_store_trust_update(st, "carol", fill_fn, &a), KOS_OK);
	CU_ASSERT_EQUAL(a.created, 0);
	CU_ASSERT_EQUAL(kos_store_trust_update(st, "carol", count_fn, NULL), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_store_trust_get(st, "carol", &s), KOS_OK);
	CU_ASSERT_EQUAL(s.observations, 18 + 3 + 1);
	CU_ASSERT_EQUAL(s.usage_bytes, (uint64_t)18 << 33);

	/* a refused update writes nothing, and creates nothing */
	CU_ASSERT_EQUAL(kos_store_trust_update(st, "carol", refuse_fn, NULL), KOS_E_POLICY);
	CU_ASSERT_EQUAL(kos_store_trust_get(st, "carol", &s), KOS_OK);
	CU_ASSERT_EQUAL(s.observations, 18 + 3 + 1);
	CU_ASSERT_EQUAL(s.factor[0], 18 % 50 + 0.125);
	CU_ASSERT_EQUAL(kos_store_trust_update(st, "dave", refuse_fn, NULL), KOS_E_POLICY);
	CU_ASSERT_EQUAL(kos_store_trust_get(st, "dave", &s), KOS_E_NOTFOUND);

	/* listing in strcmp() order of names */
	CU_ASSERT_EQUAL(kos_store_trust_update(st, "bob", count_fn, NULL), KOS_OK);
	CU_ASSERT_EQUAL(kos_store_trust_update(st, "alice2", count_fn, NULL), KOS_OK);
	CU_ASSERT_EQUAL(kos_store_trust_update(st, "alice", count_fn, NULL), KOS_OK);
	CU_ASSERT_EQUAL(kos_store_trust_update(st, "Zed", count_fn, NULL), KOS_OK);
	list_names(st, &ls);
	CU_ASSERT_EQUAL_FATAL(ls.n, 5);
	for (size_t i = 0; i < 5; i++)
		CU_ASSERT_STRING_EQUAL(ls.name[i], order[i]);

	/* delete */
	CU_ASSERT_EQUAL(kos_store_trust_delete(st, "alice"), KOS_OK);
	CU_ASSERT_EQUAL(kos_store_trust_get(st, "alice", &s), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_store_trust_delete(st, "alice"), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_store_trust_get(st, "alice2", &s), KOS_OK);
	list_names(st, &ls);
	CU_ASSERT_EQUAL(ls.n, 4);
	CU_ASSERT_STRING_EQUAL(ls.name[1], "alice2");
}

/* Many clients: growth of the memory table and deletion inside probe runs. */
static void check_many(kos_store *st)
{
	struct kos_trust_state s, *all = NULL;
	char name[65];
	size_t n = 0;
	unsigned i, missing = 0, wrong = 0;

	for (i = 0; i < 600; i++) {
		snprintf(name, sizeof(name), "client-%04u", i);
		CU_ASSERT_EQUAL_FATAL(kos_store_trust_update(st, name, count_fn, NULL), KOS_OK);
		if (i % 2 == 0)
			CU_ASSERT_EQUAL_FATAL(kos_store_trust_update(st, name, count_fn, NULL),
					      KOS_OK);
	}
	for (i = 0; i < 600; i += 3) {
		snprintf(name, sizeof(name), "client-%04u", i);
		CU_ASSERT_EQUAL(kos_store_trust_delete(st, name), KOS_OK);
	}
	for (i = 0; i < 600; i++) {
		kos_rv rv;

		snprintf(name, sizeof(name), "client-%04u", i);
		rv = kos_store_trust_get(st, name, &s);
		if (i % 3 == 0) {
			if (rv != KOS_E_NOTFOUND)
				wrong++;
		} else if (rv != KOS_OK) {
			missing++;
		} else if (s.observations != (i % 2 == 0 ? 2u : 1u) ||
			   strcmp(s.client, name) != 0) {
			wrong++;
		}
	}
	CU_ASSERT_EQUAL(missing, 0);
	CU_ASSERT_EQUAL(wrong, 0);
	CU_ASSERT_EQUAL_FATAL(kos_store_trust_list(st, &all, &n), KOS_OK);
	CU_ASSERT_EQUAL(n, 400);
	for (i = 1; i < n; i++)
		CU_ASSERT(strcmp(all[i - 1].client, all[i].client) < 0);

	/* the same in pages of 150: 150, 150, 100, then none */
	name[0] = '\0';
	for (i = 0; i < 4; i++) {
		struct kos_trust_state *page = NULL;
		size_t got = 99, k;

		CU_ASSERT_EQUAL_FATAL(kos_store_trust_page(st, name, 150, &page, &got), KOS_OK);
		CU_ASSERT_EQUAL(got, i < 2 ? 150u : i == 2 ? 100u : 0u);
		for (k = 0; k < got && i * 150 + k < n; k++)
			if (strcmp(page[k].client, all[i * 150 + k].client) != 0 ||
			    page[k].observations != all[i * 150 + k].observations)
				wrong++;
		if (got > 0)
			snprintf(name, sizeof(name), "%s", page[got - 1].client);
		else
			CU_ASSERT_PTR_NULL(page);
		free(page);
	}
	CU_ASSERT_EQUAL(wrong, 0);
	free(all);
	/* a page starts after the name given, whether it exists or not */
	CU_ASSERT_EQUAL_FATAL(kos_store_trust_page(st, "client-0300", 2, &all, &n), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(n, 2);
	CU_ASSERT_STRING_EQUAL(all[0].client, "client-0301");
	CU_ASSERT_STRING_EQUAL(all[1].client, "client-0302");
	free(all);
	CU_ASSERT_EQUAL(kos_store_trust_page(st, "client-0599", 10, &all, &n), KOS_OK);
	CU_ASSERT_EQUAL(n, 0);
	CU_ASSERT_EQUAL(kos_store_trust_page(st, "", 0, &all, &n), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_store_trust_page(st, NULL, 10, &all, &n), KOS_E_INVALID);
}

/* --- keys --- */

static void count_tokens(const char *token, uint64_t n, void *arg)
{
	uint64_t *counts = arg;

	if (strcmp(token, "kms1") == 0)
		counts[0] += n;
	else if (strcmp(token, "kms2") == 0)
		counts[1] += n;
	else
		counts[2] += n;
}

/* A DEK version with one 2-of-2 set on kms1 and kms2. */
static void dek_version(struct kos_store_version *v, struct kos_store_share sh[2], const char *name,
			uint32_t version)
{
	unsigned i;

	memset(sh, 0, 2 * sizeof(*sh));
	for (i = 0; i < 2; i++) {
		snprintf(sh[i].set, sizeof(sh[i].set), "pair");
		sh[i].x = (uint8_t)(i + 1);
		snprintf(sh[i].token, sizeof(sh[i].token), "kms%u", i + 1);
		snprintf(sh[i].label, sizeof(sh[i].label), "kos-share:%s:%u:pair:%u", name, version,
			 i + 1);
	}
	memset(v, 0, sizeof(*v));
	snprintf(v->name, sizeof(v->name), "%s", name);
	v->version = version;
	v->n_sets = 1;
	snprintf(v->sets[0].name, sizeof(v->sets[0].name), "pair");
	v->sets[0].n = 2;
	v->sets[0].k = 2;
	v->n_shares = 2;
	v->shares = sh;
}

/* The key operations every backend shares. */
static void check_keys(kos_store *st)
{
	struct kos_store_key key = {.type = KOS_KEY_DEK, .created = 1000}, got, *keys = NULL;
	struct kos_store_version begin, v, *all = NULL, act;
	struct kos_store_share sh[2];
	uint64_t counts[3] = {0, 0, 0};
	uint32_t version = 99;
	size_t n = 0;

	memset(&begin, 0, sizeof(begin));
	begin.created = 2000;
	begin.has_kcv = true;
	memcpy(begin.kcv, "\x01\x02\x03\x04\x05\x06\x07\x08", KOS_KCV_LEN);
	snprintf(begin.creator, sizeof(begin.creator), "host:123");

	CU_ASSERT_EQUAL(kos_store_key_get(st, "k1", &got), KOS_E_NOTFOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "k1"));
	/* a version of an unknown key, without the key's row */
	CU_ASSERT_EQUAL(kos_store_key_version_begin(st, NULL, "k1", &begin, &version),
			KOS_E_NOTFOUND);

	/* a new key: version 1 in state creating, not yet current */
	CU_ASSERT_EQUAL_FATAL(kos_store_key_version_begin(st, &key, "k1", &begin, &version),
			      KOS_OK);
	CU_ASSERT_EQUAL(version, 1);
	CU_ASSERT_EQUAL(kos_store_key_version_begin(st, &key, "k1", &begin, &version),
			KOS_E_EXISTS);
	CU_ASSERT_EQUAL_FATAL(kos_store_key_get(st, "k1", &got), KOS_OK);
	CU_ASSERT_STRING_EQUAL(got.name, "k1");
	CU_ASSERT_EQUAL(got.type, KOS_KEY_DEK);
	CU_ASSERT_EQUAL(got.created, 1000);
	CU_ASSERT_EQUAL(kos_store_key_version_get(st, "k1", 0, &v), KOS_E_NOTFOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "no active version"));
	CU_ASSERT_EQUAL_FATAL(kos_store_key_version_get(st, "k1", 1, &v), KOS_OK);
	CU_ASSERT_EQUAL(v.state, KOS_KEY_STATE_CREATING);
	CU_ASSERT_EQUAL(v.created, 2000);
	CU_ASSERT(v.has_kcv);
	CU_ASSERT_EQUAL(memcmp(v.kcv, begin.kcv, KOS_KCV_LEN), 0);
	CU_ASSERT_STRING_EQUAL(v.creator, "host:123");
	CU_ASSERT_EQUAL(v.n_shares, 0);
	kos_store_version_clear(&v);

	/* activation records the sets and shares in the same step */
	dek_version(&act, sh, "k1", 1);
	CU_ASSERT_EQUAL_FATAL(kos_store_key_version_activate(st, &act), KOS_OK);
	CU_ASSERT_EQUAL(kos_store_key_version_activate(st, &act), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL_FATAL(kos_store_key_version_get(st, "k1", 0, &v), KOS_OK);
	CU_ASSERT_EQUAL(v.version, 1);
	CU_ASSERT_EQUAL(v.state, KOS_KEY_STATE_ACTIVE);
	CU_ASSERT_STRING_EQUAL(v.creator, "host:123");
	CU_ASSERT_EQUAL(memcmp(v.kcv, begin.kcv, KOS_KCV_LEN), 0);
	CU_ASSERT_EQUAL_FATAL(v.n_sets, 1);
	CU_ASSERT_STRING_EQUAL(v.sets[0].name, "pair");
	CU_ASSERT_EQUAL(v.sets[0].n, 2);
	CU_ASSERT_EQUAL(v.sets[0].k, 2);
	CU_ASSERT_EQUAL_FATAL(v.n_shares, 2);
	CU_ASSERT_EQUAL(v.shares[1].x, 2);
	CU_ASSERT_STRING_EQUAL(v.shares[1].token, "kms2");
	CU_ASSERT_STRING_EQUAL(v.shares[1].label, "kos-share:k1:1:pair:2");
	kos_store_version_clear(&v);
	CU_ASSERT_PTR_NULL(v.shares);

	/* the current version cannot be retired, nor aborted */
	CU_ASSERT_EQUAL(kos_store_key_version_retire(st, "k1", 1), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_store_key_version_abort(st, "k1", 1), KOS_E_NOTFOUND);

	/* version 2: a rotation that is abandoned, then one that completes */
	CU_ASSERT_EQUAL_FATAL(kos_store_key_version_begin(st, NULL, "k1", &begin, &version),
			      KOS_OK);
	CU_ASSERT_EQUAL(version, 2);
	CU_ASSERT_EQUAL(kos_store_key_version_abort(st, "k1", 2), KOS_OK);
	CU_ASSERT_EQUAL(kos_store_key_version_abort(st, "k1", 2), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_store_key_version_get(st, "k1", 2, &v), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_store_key_get(st, "k1", &got), KOS_OK); /* version 1 keeps the key */
	CU_ASSERT_EQUAL_FATAL(kos_store_key_version_begin(st, NULL, "k1", &begin, &version),
			      KOS_OK);
	CU_ASSERT_EQUAL(version, 2);
	dek_version(&act, sh, "k1", 2);
	CU_ASSERT_EQUAL_FATAL(kos_store_key_version_activate(st, &act), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_store_key_version_get(st, "k1", 0, &v), KOS_OK);
	CU_ASSERT_EQUAL(v.version, 2);
	kos_store_version_clear(&v);
	CU_ASSERT_EQUAL(kos_store_share_counts(st, count_tokens, counts), KOS_OK);
	CU_ASSERT_EQUAL(counts[0], 2);
	CU_ASSERT_EQUAL(counts[1], 2);
	CU_ASSERT_EQUAL(counts[2], 0);

	/* retiring version 1 drops its share rows, keeps the rest */
	CU_ASSERT_EQUAL(kos_store_key_version_retire(st, "k1", 3), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_store_key_version_retire(st, "nokey", 1), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_store_key_version_retire(st, "k1", 1), KOS_OK);
	CU_ASSERT_EQUAL(kos_store_key_version_retire(st, "k1", 1), KOS_E_NOTFOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "already retired"));
	CU_ASSERT_EQUAL_FATAL(kos_store_key_version_get(st, "k1", 1, &v), KOS_OK);
	CU_ASSERT_EQUAL(v.state, KOS_KEY_STATE_RETIRED);
	CU_ASSERT_EQUAL(v.n_shares, 0);
	CU_ASSERT_EQUAL(v.n_sets, 1);
	CU_ASSERT(v.has_kcv);
	kos_store_version_clear(&v);
	memset(counts, 0, sizeof(counts));
	CU_ASSERT_EQUAL(kos_store_share_counts(st, count_tokens, counts), KOS_OK);
	CU_ASSERT_EQUAL(counts[0], 1);

	/* a signing key: its public key, token and label */
	key.type = KOS_KEY_ED25519;
	begin.has_kcv = false;
	CU_ASSERT_EQUAL_FATAL(kos_store_key_version_begin(st, &key, "a-signer", &begin, &version),
			      KOS_OK);
	memset(&act, 0, sizeof(act));
	snprintf(act.name, sizeof(act.name), "a-signer");
	act.version = version;
	act.spki_len = 44;
	memset(act.spki, 0x5a, act.spki_len);
	snprintf(act.token, sizeof(act.token), "signer");
	snprintf(act.label, sizeof(act.label), "kos-sign:a-signer:1");
	CU_ASSERT_EQUAL_FATAL(kos_store_key_version_activate(st, &act), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_store_key_version_get(st, "a-signer", 1, &v), KOS_OK);
	CU_ASSERT_FALSE(v.has_kcv);
	CU_ASSERT_EQUAL(v.spki_len, 44);
	CU_ASSERT_EQUAL(memcmp(v.spki, act.spki, 44), 0);
	CU_ASSERT_STRING_EQUAL(v.token, "signer");
	CU_ASSERT_STRING_EQUAL(v.label, "kos-sign:a-signer:1");
	CU_ASSERT_EQUAL(v.n_sets, 0);
	kos_store_version_clear(&v);

	/* listing: names in strcmp() order, versions oldest first */
	CU_ASSERT_EQUAL_FATAL(kos_store_key_list(st, &keys, &n), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(n, 2);
	CU_ASSERT_STRING_EQUAL(keys[0].name, "a-signer");
	CU_ASSERT_EQUAL(keys[0].type, KOS_KEY_ED25519);
	CU_ASSERT_STRING_EQUAL(keys[1].name, "k1");
	free(keys);
	CU_ASSERT_EQUAL_FATAL(kos_store_key_versions(st, "k1", &all, &n), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(n, 2);
	CU_ASSERT_EQUAL(all[0].version, 1);
	CU_ASSERT_EQUAL(all[0].state, KOS_KEY_STATE_RETIRED);
	CU_ASSERT_EQUAL(all[1].version, 2);
	CU_ASSERT_EQUAL(all[1].n_shares, 2);
	kos_store_versions_free(all, n);
	CU_ASSERT_EQUAL(kos_store_key_versions(st, "nokey", &all, &n), KOS_E_NOTFOUND);

	/* aborting the only version of a new key removes the key too */
	key.type = KOS_KEY_DEK;
	CU_ASSERT_EQUAL_FATAL(kos_store_key_version_begin(st, &key, "gone", &begin, &version),
			      KOS_OK);
	CU_ASSERT_EQUAL(kos_store_key_version_abort(st, "gone", version), KOS_OK);
	CU_ASSERT_EQUAL(kos_store_key_get(st, "gone", &got), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_store_key_version_begin(st, &key, "gone", &begin, &version), KOS_OK);
	CU_ASSERT_EQUAL(version, 1);
}

/* --- services and credentials (schema version 4) --- */

struct service_seen {
	char names[4][65];
	size_t n;
	int stop_after;
};

static int service_fn(const struct kos_service_row *row, void *arg)
{
	struct service_seen *s = arg;

	if (s->n < 4)
		snprintf(s->names[s->n], sizeof(s->names[0]), "%s", row->name);
	s->n++;
	return s->stop_after != 0 && (int)s->n >= s->stop_after ? 42 : 0;
}

static void service_row(struct kos_service_row *r, const char *name, uint32_t version)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", name);
	snprintf(r->ops, sizeof(r->ops), "encrypt,decrypt");
	r->seed_version = version;
	r->wrapped_len = 40;
	memset(r->wrapped_seed, (int)version, r->wrapped_len);
	r->created = 100;
	r->rotated = 100 + version;
}

static void check_services(kos_store *st)
{
	struct kos_service_row r, got;
	struct service_seen seen = {.n = 0};

	CU_ASSERT_EQUAL(kos_store_service_get(st, "billing", &got), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_store_service_delete(st, "billing"), KOS_E_NOTFOUND);
	service_row(&r, "billing", 1);
	CU_ASSERT_EQUAL_FATAL(kos_store_service_put(st, &r), KOS_OK);
	service_row(&r, "auth", 1);
	CU_ASSERT_EQUAL_FATAL(kos_store_service_put(st, &r), KOS_OK);
	/* put replaces */
	service_row(&r, "billing", 2);
	snprintf(r.ops, sizeof(r.ops), "sign");
	CU_ASSERT_EQUAL_FATAL(kos_store_service_put(st, &r), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_store_service_get(st, "billing", &got), KOS_OK);
	CU_ASSERT_STRING_EQUAL(got.ops, "sign");
	CU_ASSERT_EQUAL(got.seed_version, 2);
	CU_ASSERT_EQUAL(got.wrapped_len, 40);
	CU_ASSERT_EQUAL(got.wrapped_seed[39], 2);
	CU_ASSERT_EQUAL(got.created, 100);
	CU_ASSERT_EQUAL(got.rotated, 102);
	/* name order; fn's non-zero return stops the walk and comes back */
	CU_ASSERT_EQUAL(kos_store_service_list(st, service_fn, &seen), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(seen.n, 2);
	CU_ASSERT_STRING_EQUAL(seen.names[0], "auth");
	CU_ASSERT_STRING_EQUAL(seen.names[1], "billing");
	memset(&seen, 0, sizeof(seen));
	seen.stop_after = 1;
	CU_ASSERT_EQUAL(kos_store_service_list(st, service_fn, &seen), 42);
	CU_ASSERT_EQUAL(seen.n, 1);
	/* a row without its wrapped seed is refused */
	r.wrapped_len = 0;
	CU_ASSERT_EQUAL(kos_store_service_put(st, &r), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_store_service_delete(st, "auth"), KOS_OK);
	CU_ASSERT_EQUAL(kos_store_service_get(st, "auth", &got), KOS_E_NOTFOUND);
}

static void ca_key(struct kos_store_ca_key *k, const char *kid, kos_usec created)
{
	memset(k, 0, sizeof(*k));
	snprintf(k->kid, sizeof(k->kid), "%s", kid);
	snprintf(k->token, sizeof(k->token), "ca");
	snprintf(k->label, sizeof(k->label), "kos-ca:%s", kid);
	k->spki_len = 91;
	memset(k->spki, 0x30, k->spki_len);
	k->created = created;
}

static uint64_t revision(kos_store *st)
{
	uint64_t rev = 0;

	CU_ASSERT_EQUAL(kos_store_cred_revision(st, &rev), KOS_OK);
	return rev;
}

/* kos_store_revocation_each's callback: counts the rows, stops at the
 * second (the client's, after the "before" one). */
static kos_rv count_two(const struct kos_store_revocation *r, void *arg)
{
	size_t *seen = arg;

	if (++*seen == 2)
		return r->kind == KOS_REVOKE_CLIENT ? KOS_E_RANGE : KOS_E_INVALID;
	return KOS_OK;
}

static void check_credentials(kos_store *st)
{
	struct kos_store_ca_key k, *keys = NULL;
	struct kos_store_cred_client c, got, *clients = NULL;
	struct kos_store_enrollment e, e2, ge;
	struct kos_store_revocation r, *revs = NULL;
	uint64_t rev0, hint0, removed = 0;
	size_t n = 0, seen;
	char *value = NULL;

	rev0 = revision(st);
	hint0 = kos_store_cred_hint(st);

	/* CA keys: init, rotate (the old one retires with its expiry), delete */
	CU_ASSERT_EQUAL(kos_store_ca_key_current(st, &k), KOS_E_NOTFOUND);
	ca_key(&k, "AAAAAAAAAAAAAAAAAAAAAA", 1000);
	CU_ASSERT_EQUAL(kos_store_ca_key_install(st, &k, 0, false), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL_FATAL(kos_store_ca_key_install(st, &k, 0, true), KOS_OK);
	CU_ASSERT_EQUAL(revision(st), rev0 + 1);
	CU_ASSERT_NOT_EQUAL(kos_store_cred_hint(st), hint0);
	ca_key(&k, "BBBBBBBBBBBBBBBBBBBBBB", 2000);
	CU_ASSERT_EQUAL(kos_store_ca_key_install(st, &k, 5000, true), KOS_E_EXISTS);
	CU_ASSERT_EQUAL(revision(st), rev0 + 1);
	CU_ASSERT_EQUAL_FATAL(kos_store_ca_key_install(st, &k, 5000, false), KOS_OK);
	CU_ASSERT_EQUAL(revision(st), rev0 + 2);
	CU_ASSERT_EQUAL_FATAL(kos_store_ca_key_current(st, &k), KOS_OK);
	CU_ASSERT_STRING_EQUAL(k.kid, "BBBBBBBBBBBBBBBBBBBBBB");
	CU_ASSERT_EQUAL(k.retired, 0);
	CU_ASSERT_EQUAL(k.spki_len, 91);
	CU_ASSERT_STRING_EQUAL(k.label, "kos-ca:BBBBBBBBBBBBBBBBBBBBBB");
	CU_ASSERT_EQUAL_FATAL(kos_store_ca_key_list(st, &keys, &n), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(n, 2);
	CU_ASSERT_STRING_EQUAL(keys[0].kid, "AAAAAAAAAAAAAAAAAAAAAA");
	CU_ASSERT_EQUAL(keys[0].retired, 2000);
	CU_ASSERT_EQUAL(keys[0].expires, 5000);
	CU_ASSERT_EQUAL(keys[1].retired, 0);
	free(keys);
	CU_ASSERT_EQUAL(kos_store_ca_key_delete(st, "BBBBBBBBBBBBBBBBBBBBBB"), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_store_ca_key_delete(st, "AAAAAAAAAAAAAAAAAAAAAA"), KOS_OK);
	CU_ASSERT_EQUAL(revision(st), rev0 + 3);
	CU_ASSERT_EQUAL_FATAL(kos_store_ca_key_list(st, &keys, &n), KOS_OK);
	CU_ASSERT_EQUAL(n, 1);
	free(keys);

	/* clients with their first secret */
	memset(&c, 0, sizeof(c));
	snprintf(c.name, sizeof(c.name), "web-1");
	snprintf(c.scope, sizeof(c.scope), "decrypt:payments/*");
	c.created = 10;
	memset(&e, 0, sizeof(e));
	memset(e.hash, 1, sizeof(e.hash));
	snprintf(e.client, sizeof(e.client), "web-1");
	e.created = 10;
	e.expires = 100;
	CU_ASSERT_EQUAL(kos_store_cred_client_get(st, "web-1", &got), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL_FATAL(kos_store_cred_client_add(st, &c, &e), KOS_OK);
	CU_ASSERT_EQUAL(kos_store_cred_client_add(st, &c, &e), KOS_E_EXISTS);
	CU_ASSERT_EQUAL_FATAL(kos_store_cred_client_get(st, "web-1", &got), KOS_OK);
	CU_ASSERT_STRING_EQUAL(got.scope, "decrypt:payments/*");
	CU_ASSERT_EQUAL(got.created, 10);
	CU_ASSERT_FALSE(got.disabled);
	CU_ASSERT_EQUAL(got.secret_expires, 100);
	snprintf(c.name, sizeof(c.name), "api");
	memset(e.hash, 2, sizeof(e.hash));
	snprintf(e.client, sizeof(e.client), "api");
	CU_ASSERT_EQUAL_FATAL(kos_store_cred_client_add(st, &c, &e), KOS_OK);
	CU_ASSERT_EQUAL(kos_store_cred_client_set_disabled(st, "api", true), KOS_OK);
	CU_ASSERT_EQUAL(kos_store_cred_client_set_disabled(st, "nobody", true), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL_FATAL(kos_store_cred_client_list(st, &clients, &n), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(n, 2);
	CU_ASSERT_STRING_EQUAL(clients[0].name, "api");
	CU_ASSERT_TRUE(clients[0].disabled);
	CU_ASSERT_STRING_EQUAL(clients[1].name, "web-1");
	CU_ASSERT_FALSE(clients[1].disabled);
	free(clients);

	/* enrollment secrets: one use, then refused; expiry; replacement */
	memset(ge.hash, 1, sizeof(ge.hash));
	CU_ASSERT_EQUAL_FATAL(kos_store_enrollment_get(st, ge.hash, &ge), KOS_OK);
	CU_ASSERT_STRING_EQUAL(ge.client, "web-1");
	CU_ASSERT_EQUAL(ge.used, 0);
	CU_ASSERT_EQUAL(kos_store_enrollment_use(st, e.hash, 100, &ge), KOS_E_RANGE);
	CU_ASSERT_STRING_EQUAL(ge.client, "api");
	memset(e.hash, 1, sizeof(e.hash));
	CU_ASSERT_EQUAL(kos_store_enrollment_use(st, e.hash, 50, &ge), KOS_OK);
	CU_ASSERT_EQUAL(ge.used, 0); /* the row as it was */
	CU_ASSERT_EQUAL(kos_store_enrollment_use(st, e.hash, 51, &ge), KOS_E_EXISTS);
	CU_ASSERT_EQUAL(ge.used, 50);
	CU_ASSERT_STRING_EQUAL(ge.client, "web-1");
	CU_ASSERT_EQUAL_FATAL(kos_store_cred_client_get(st, "web-1", &got), KOS_OK);
	CU_ASSERT_EQUAL(got.secret_expires, 0);
	memset(e2.hash, 9, sizeof(e2.hash));
	CU_ASSERT_EQUAL(kos_store_enrollment_use(st, e2.hash, 50, &ge), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_store_enrollment_get(st, e2.hash, &ge), KOS_E_NOTFOUND);
	memset(&e2, 0, sizeof(e2));
	memset(e2.hash, 3, sizeof(e2.hash));
	snprintf(e2.client, sizeof(e2.client), "api");
	e2.created = 60;
	e2.expires = 200;
	CU_ASSERT_EQUAL(kos_store_enrollment_add(st, &e2), KOS_OK);
	memset(e.hash, 2, sizeof(e.hash));
	/* the new secret replaced api's unused one */
	CU_ASSERT_EQUAL(kos_store_enrollment_get(st, e.hash, &ge), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL_FATAL(kos_store_cred_client_get(st, "api", &got), KOS_OK);
	CU_ASSERT_EQUAL(got.secret_expires, 200);
	snprintf(e2.client, sizeof(e2.client), "nobody");
	CU_ASSERT_EQUAL(kos_store_enrollment_add(st, &e2), KOS_E_NOTFOUND);

	/* revocations: one row per kind and value, widened; each add bumps */
	memset(&r, 0, sizeof(r));
	r.kind = KOS_REVOKE_CLIENT;
	snprintf(r.value, sizeof(r.value), "web-1");
	r.before = 500;
	r.created = 500;
	r.expires = 900;
	CU_ASSERT_EQUAL_FATAL(kos_store_revocation_add(st, &r), KOS_OK);
	CU_ASSERT_EQUAL(revision(st), rev0 + 4);
	r.before = 400;
	r.expires = 1000;
	CU_ASSERT_EQUAL_FATAL(kos_store_revocation_add(st, &r), KOS_OK);
	r.kind = KOS_REVOKE_JTI;
	snprintf(r.value, sizeof(r.value), "JJJJJJJJJJJJJJJJJJJJJJ");
	r.before = 0;
	r.expires = 300;
	CU_ASSERT_EQUAL_FATAL(kos_store_revocation_add(st, &r), KOS_OK);
	r.kind = KOS_REVOKE_BEFORE;
	r.value[0] = '\0';
	r.before = 450;
	r.expires = 2000;
	CU_ASSERT_EQUAL_FATAL(kos_store_revocation_add(st, &r), KOS_OK);
	CU_ASSERT_EQUAL(revision(st), rev0 + 7);
	CU_ASSERT_EQUAL_FATAL(kos_store_revocation_list(st, &revs, &n), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(n, 3);
	CU_ASSERT_EQUAL(revs[0].kind, KOS_REVOKE_BEFORE);
	CU_ASSERT_EQUAL(revs[0].before, 450);
	CU_ASSERT_EQUAL(revs[1].kind, KOS_REVOKE_CLIENT);
	CU_ASSERT_STRING_EQUAL(revs[1].value, "web-1");
	CU_ASSERT_EQUAL(revs[1].before, 500);
	CU_ASSERT_EQUAL(revs[1].expires, 1000);
	CU_ASSERT_EQUAL(revs[2].kind, KOS_REVOKE_JTI);
	CU_ASSERT_STRING_EQUAL(revs[2].value, "JJJJJJJJJJJJJJJJJJJJJJ");
	free(revs);
	/* row by row, in the same order, until the callback says stop */
	seen = 0;
	CU_ASSERT_EQUAL(kos_store_revocation_each(st, count_two, &seen), KOS_E_RANGE);
	CU_ASSERT_EQUAL(seen, 2);

	/* pruning: expired revocations, used and expired secrets; no bump */
	CU_ASSERT_EQUAL(kos_store_cred_prune(st, 300, &removed), KOS_OK);
	CU_ASSERT_EQUAL(removed, 3); /* the jti, web-1's used secret, api's expired one */
	CU_ASSERT_EQUAL(revision(st), rev0 + 7);
	CU_ASSERT_EQUAL_FATAL(kos_store_revocation_list(st, &revs, &n), KOS_OK);
	CU_ASSERT_EQUAL(n, 2);
	free(revs);
	CU_ASSERT_EQUAL(kos_store_cred_prune(st, 300, &removed), KOS_OK);
	CU_ASSERT_EQUAL(removed, 0);

	/* meta */
	CU_ASSERT_EQUAL(kos_store_meta_get(st, "threat", &value), KOS_E_NOTFOUND);
	CU_ASSERT_PTR_NULL(value);
	CU_ASSERT_EQUAL(kos_store_meta_put(st, "threat", "{\"level\":\"elevated\"}"), KOS_OK);
	CU_ASSERT_EQUAL(kos_store_meta_put(st, "threat", "{\"level\":\"critical\"}"), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_store_meta_get(st, "threat", &value), KOS_OK);
	CU_ASSERT_STRING_EQUAL(value, "{\"level\":\"critical\"}");
	free(value);
}

/* A revocation through one handle changes the hint another handle (another
 * process, as far as SQLite is concerned) reads, without a store read. */
static void test_cred_hint_shared(void)
{
	const char *path = kos_test_path("hint.db");
	kos_store *a = NULL, *b = NULL;
	struct kos_store_revocation r;
	uint64_t hint, rev;
	pid_t pid;
	int status;
	char hint_path[600];
	struct stat sb;

	CU_ASSERT_EQUAL_FATAL(kos_store_open(path, &a), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_store_open(path, &b), KOS_OK);
	snprintf(hint_path, sizeof(hint_path), "%s-kos-notify", path);
	CU_ASSERT_EQUAL_FATAL(stat(hint_path, &sb), 0);
	CU_ASSERT_EQUAL(sb.st_mode & 0777, 0600);
	hint = kos_store_cred_hint(b);
	memset(&r, 0, sizeof(r));
	r.kind = KOS_REVOKE_JTI;
	snprintf(r.value, sizeof(r.value), "KKKKKKKKKKKKKKKKKKKKKK");
	r.created = 1;
	r.expires = INT64_MAX;
	CU_ASSERT_EQUAL_FATAL(kos_store_revocation_add(a, &r), KOS_OK);
	CU_ASSERT_NOT_EQUAL(kos_store_cred_hint(b), hint);
	CU_ASSERT_EQUAL(kos_store_cred_revision(b, &rev), KOS_OK);
	CU_ASSERT_EQUAL(rev, 1);

	/* and in another process with its own handle */
	hint = kos_store_cred_hint(b);
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		kos_store *c = NULL;

		if (kos_store_open(path, &c) != KOS_OK)
			_exit(2);
		snprintf(r.value, sizeof(r.value), "LLLLLLLLLLLLLLLLLLLLLL");
		_exit(kos_store_revocation_add(c, &r) == KOS_OK ? 0 : 3);
	}
	CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CU_ASSERT_NOT_EQUAL(kos_store_cred_hint(b), hint);
	CU_ASSERT_EQUAL(kos_store_cred_revision(b, &rev), KOS_OK);
	CU_ASSERT_EQUAL(rev, 2);
	kos_store_free(a);
	kos_store_free(b);
}

/* A signing key version made active, as the key service records one. */
static void sign_version_active(kos_store *st, const char *name, bool new_key, uint32_t want)
{
	struct kos_store_key key = {.type = KOS_KEY_EC_P256, .created = 1000};
	struct kos_store_version v;
	uint32_t version = 0;

	memset(&v, 0, sizeof(v));
	v.created = 2000;
	snprintf(v.creator, sizeof(v.creator), "host:1");
	CU_ASSERT_EQUAL_FATAL(kos_store_key_version_begin(st, new_key ? &key : NULL, name, &v,
							  &version),
			      KOS_OK);
	CU_ASSERT_EQUAL_FATAL(version, want);
	snprintf(v.name, sizeof(v.name), "%s", name);
	v.version = version;
	v.spki_len = 3;
	memcpy(v.spki, "\x30\x01\x00", 3);
	snprintf(v.token, sizeof(v.token), "signer");
	snprintf(v.label, sizeof(v.label), "kos-sign:%s:%u", name, (unsigned)version);
	CU_ASSERT_EQUAL_FATAL(kos_store_key_version_activate(st, &v), KOS_OK);
}

static void cert_is(kos_store *st, const char *name, uint32_t version, const char *want,
		    size_t want_len)
{
	uint8_t *der = NULL;
	size_t len = 0;

	CU_ASSERT_EQUAL_FATAL(kos_store_key_cert_get(st, name, version, &der, &len), KOS_OK);
	CU_ASSERT_EQUAL(len, want_len);
	CU_ASSERT(der != NULL && len == want_len && memcmp(der, want, len) == 0);
	free(der);
}

/* Certificates beside key versions (schema version 7), as every backend
 * keeps them: one per active version, replaced by the next, kept when the
 * version is retired, refused for versions that are not active. */
static void check_certs(kos_store *st)
{
	static uint8_t big[KOS_STORE_CERT_MAX + 1];
	struct kos_store_version v;
	uint8_t *der = (uint8_t *)&der;
	uint32_t version = 0;
	size_t len = 7;

	CU_ASSERT_EQUAL(kos_store_key_cert_put(st, "c1", 1, (const uint8_t *)"DER1", 4, 5),
			KOS_E_NOTFOUND);
	sign_version_active(st, "c1", true, 1);
	CU_ASSERT_EQUAL(kos_store_key_cert_get(st, "c1", 1, &der, &len), KOS_E_NOTFOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "has no certificate"));
	CU_ASSERT(der == NULL && len == 0);
	CU_ASSERT_EQUAL(kos_store_key_cert_put(st, "c1", 2, (const uint8_t *)"DER1", 4, 5),
			KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_store_key_cert_put(st, "c1", 1, (const uint8_t *)"DER1", 4, 5), KOS_OK);
	cert_is(st, "c1", 1, "DER1", 4);
	CU_ASSERT_EQUAL(kos_store_key_cert_put(st, "c1", 1, (const uint8_t *)"DER-22", 6, 6),
			KOS_OK);
	cert_is(st, "c1", 1, "DER-22", 6);
	/* a version being made takes none; an active one its own */
	memset(&v, 0, sizeof(v));
	v.created = 3000;
	CU_ASSERT_EQUAL_FATAL(kos_store_key_version_begin(st, NULL, "c1", &v, &version), KOS_OK);
	CU_ASSERT_EQUAL(kos_store_key_cert_put(st, "c1", version, (const uint8_t *)"D2", 2, 7),
			KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_store_key_version_abort(st, "c1", version), KOS_OK);
	/* the aborted number is free again */
	sign_version_active(st, "c1", false, 2);
	CU_ASSERT_EQUAL(kos_store_key_cert_put(st, "c1", 2, (const uint8_t *)"DER3", 4, 8), KOS_OK);
	cert_is(st, "c1", 2, "DER3", 4);
	cert_is(st, "c1", 1, "DER-22", 6);
	/* retired: the certificate stays readable, a new one is refused */
	CU_ASSERT_EQUAL(kos_store_key_version_retire(st, "c1", 1), KOS_OK);
	cert_is(st, "c1", 1, "DER-22", 6);
	CU_ASSERT_EQUAL(kos_store_key_cert_put(st, "c1", 1, (const uint8_t *)"X", 1, 9),
			KOS_E_NOTFOUND);
	/* sizes */
	CU_ASSERT_EQUAL(kos_store_key_cert_put(st, "c1", 2, big, 0, 9), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_store_key_cert_put(st, "c1", 2, big, sizeof(big), 9), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_store_key_cert_put(st, "c1", 2, big, KOS_STORE_CERT_MAX, 9), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_store_key_cert_get(st, "c1", 2, &der, &len), KOS_OK);
	CU_ASSERT_EQUAL(len, KOS_STORE_CERT_MAX);
	free(der);
	CU_ASSERT_EQUAL(kos_store_key_cert_get(st, "nokey", 1, &der, &len), KOS_E_NOTFOUND);
}

/* Deleting a key (kos_key_destroy()'s store half), as every backend does
 * it: the key, every version in any state, its shares and certificates go
 * in one step, other keys stay, and the name can be used again. */
static void check_delete(kos_store *st)
{
	struct kos_store_key key = {.type = KOS_KEY_DEK, .created = 1000}, got;
	struct kos_store_version begin, act, v;
	struct kos_store_share sh[2];
	uint64_t counts[3] = {0, 0, 0}, before[3] = {0, 0, 0};
	uint32_t version = 0;
	uint8_t *der = NULL;
	size_t len = 0;

	CU_ASSERT_EQUAL(kos_store_share_counts(st, count_tokens, before), KOS_OK);
	CU_ASSERT_EQUAL(kos_store_key_delete(st, "del-dek"), KOS_E_NOTFOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "del-dek"));
	/* a DEK with two active versions (shares on kms1 and kms2) and a
	 * third still being made */
	memset(&begin, 0, sizeof(begin));
	begin.created = 2000;
	CU_ASSERT_EQUAL_FATAL(kos_store_key_version_begin(st, &key, "del-dek", &begin, &version),
			      KOS_OK);
	dek_version(&act, sh, "del-dek", version);
	CU_ASSERT_EQUAL_FATAL(kos_store_key_version_activate(st, &act), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_store_key_version_begin(st, NULL, "del-dek", &begin, &version),
			      KOS_OK);
	dek_version(&act, sh, "del-dek", version);
	CU_ASSERT_EQUAL_FATAL(kos_store_key_version_activate(st, &act), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_store_key_version_begin(st, NULL, "del-dek", &begin, &version),
			      KOS_OK);
	CU_ASSERT_EQUAL(version, 3);
	/* a signing key with certificates on two versions, one retired */
	sign_version_active(st, "del-sig", true, 1);
	sign_version_active(st, "del-sig", false, 2);
	CU_ASSERT_EQUAL(kos_store_key_cert_put(st, "del-sig", 1, (const uint8_t *)"C1", 2, 1),
			KOS_OK);
	CU_ASSERT_EQUAL(kos_store_key_cert_put(st, "del-sig", 2, (const uint8_t *)"C2", 2, 1),
			KOS_OK);
	CU_ASSERT_EQUAL(kos_store_key_version_retire(st, "del-sig", 1), KOS_OK);
	/* a neighbour that must survive */
	sign_version_active(st, "del-kept", true, 1);
	CU_ASSERT_EQUAL(kos_store_key_cert_put(st, "del-kept", 1, (const uint8_t *)"K", 1, 1),
			KOS_OK);

	CU_ASSERT_EQUAL(kos_store_key_delete(st, "del-dek"), KOS_OK);
	CU_ASSERT_EQUAL(kos_store_key_get(st, "del-dek", &got), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_store_key_version_get(st, "del-dek", 1, &v), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_store_key_version_get(st, "del-dek", 3, &v), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_store_share_counts(st, count_tokens, counts), KOS_OK);
	CU_ASSERT_EQUAL(counts[0], before[0]);
	CU_ASSERT_EQUAL(counts[1], before[1]);
	CU_ASSERT_EQUAL(kos_store_key_delete(st, "del-dek"), KOS_E_NOTFOUND);
	/* the creation that was under way finds its row gone */
	dek_version(&act, sh, "del-dek", 3);
	CU_ASSERT_EQUAL(kos_store_key_version_activate(st, &act), KOS_E_NOTFOUND);

	CU_ASSERT_EQUAL(kos_store_key_delete(st, "del-sig"), KOS_OK);
	CU_ASSERT_EQUAL(kos_store_key_cert_get(st, "del-sig", 1, &der, &len), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_store_key_cert_get(st, "del-sig", 2, &der, &len), KOS_E_NOTFOUND);
	cert_is(st, "del-kept", 1, "K", 1);
	CU_ASSERT_EQUAL(kos_store_key_get(st, "del-kept", &got), KOS_OK);

	/* the names are free: numbering starts again, no certificate comes back */
	sign_version_active(st, "del-sig", true, 1);
	CU_ASSERT_EQUAL(kos_store_key_cert_get(st, "del-sig", 1, &der, &len), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL_FATAL(kos_store_key_version_begin(st, &key, "del-dek", &begin, &version),
			      KOS_OK);
	CU_ASSERT_EQUAL(version, 1);

	/* one certificate removed, the key and the other certificate kept */
	CU_ASSERT_EQUAL(kos_store_key_cert_delete(st, "del-kept", 1), KOS_OK);
	CU_ASSERT_EQUAL(kos_store_key_cert_get(st, "del-kept", 1, &der, &len), KOS_E_NOTFOUND);
	CU_ASSERT_EQUAL(kos_store_key_cert_delete(st, "del-kept", 1), KOS_E_NOTFOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "has no certificate"));
	CU_ASSERT_EQUAL(kos_store_key_cert_delete(st, "del-kept", 0), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_store_key_get(st, "del-kept", &got), KOS_OK);
}

/* A certificate written to the SQLite file is there after a reopen. */
static void test_sqlite_certs_survive_reopen(void)
{
	const char *path = kos_test_path("certs.db");
	kos_store *st = NULL;

	CU_ASSERT_EQUAL_FATAL(kos_store_open(path, &st), KOS_OK);
	sign_version_active(st, "ca-leaf", true, 1);
	CU_ASSERT_EQUAL(kos_store_key_cert_put(st, "ca-leaf", 1, (const uint8_t *)"\x30\x82", 2, 1),
			KOS_OK);
	kos_store_free(st);
	st = NULL;
	CU_ASSERT_EQUAL_FATAL(kos_store_open(path, &st), KOS_OK);
	cert_is(st, "ca-leaf", 1, "\x30\x82", 2);
	kos_store_free(st);
	CU_ASSERT_EQUAL(kos_test_sql_int(path, "SELECT count(*) FROM key_certs"), 1);
}

static void test_memory_interface(void)
{
	kos_store *st = NULL;
	bool on;

	CU_ASSERT_EQUAL_FATAL(kos_store_open("memory:", &st), KOS_OK);
	CU_ASSERT_STRING_EQUAL(kos_store_backend(st), "memory");
	/* no disk to sync to */
	on = true;
	CU_ASSERT_EQUAL(kos_store_synced(st, &on), KOS_OK);
	CU_ASSERT(!on);
	CU_ASSERT_EQUAL(kos_store_set_synced(st, true), KOS_E_INVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "no disk"));
	check_interface(st);
	check_keys(st);
	check_services(st);
	check_credentials(st);
	check_certs(st);
	check_delete(st);
	kos_store_free(st);
	CU_ASSERT_EQUAL_FATAL(kos_store_open("memory:", &st), KOS_OK);
	check_many(st);
	kos_store_free(st);
}

static void test_sqlite_interface(void)
{
	kos_store *st = NULL;
	bool on;

	CU_ASSERT_EQUAL_FATAL(kos_store_open(kos_test_path("iface.db"), &st), KOS_OK);
	CU_ASSERT_STRING_EQUAL(kos_store_backend(st), "sqlite");
	/* commits fsynced or not, as SQLite itself reports it */
	on = true;
	CU_ASSERT_EQUAL(kos_store_synced(st, &on), KOS_OK);
	CU_ASSERT(!on);
	CU_ASSERT_EQUAL(kos_store_set_synced(st, true), KOS_OK);
	CU_ASSERT_EQUAL(kos_store_synced(st, &on), KOS_OK);
	CU_ASSERT(on);
	check_interface(st); /* every operation, synced */
	CU_ASSERT_EQUAL(kos_store_set_synced(st, false), KOS_OK);
	CU_ASSERT_EQUAL(kos_store_synced(st, &on), KOS_OK);
	CU_ASSERT(!on);
	check_keys(st);
	check_services(st);
	check_credentials(st);
	check_certs(st);
	check_delete(st);
	kos_store_free(st);
	CU_ASSERT_EQUAL_FATAL(kos_store_open(kos_test_path("many.db"), &st), KOS_OK);
	check_many(st);
	kos_store_free(st);
}

static void raw_exec(const char *path, const char *sql)
{
	sqlite3 *db = NULL;

	CU_ASSERT_EQUAL_FATAL(sqlite3_open(path, &db), SQLITE_OK);
	CU_ASSERT_EQUAL(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

/* A missing row is worded by the getter; rows kos cannot have written,
 * put there with SQL, are refused with KOS_E_STORE by the getter and by
 * the list, which then hands nothing out. */
static void test_sqlite_bad_rows(void)
{
	const char *path = kos_test_path("rows.db");
	struct kos_store_key key = {.type = KOS_KEY_DEK, .created = 1000};
	struct kos_store_version begin, v, *all = NULL;
	struct kos_store_revocation r, *revs = NULL;
	struct kos_service_row row;
	kos_store *st = NULL;
	uint32_t version = 0;
	char *value = NULL;
	size_t n = 0;

	CU_ASSERT_EQUAL_FATAL(kos_store_open(path, &st), KOS_OK);
	memset(&begin, 0, sizeof(begin));
	begin.created = 2000;
	snprintf(begin.creator, sizeof(begin.creator), "host:1");
	CU_ASSERT_EQUAL_FATAL(kos_store_key_version_begin(st, &key, "k1", &begin, &version),
			      KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_store_key_version_begin(st, NULL, "k1", &begin, &version),
			      KOS_OK);
	CU_ASSERT_EQUAL(version, 2);
	memset(&r, 0, sizeof(r));
	r.kind = KOS_REVOKE_JTI;
	snprintf(r.value, sizeof(r.value), "j1");
	r.created = 1;
	r.expires = INT64_MAX / 2;
	CU_ASSERT_EQUAL_FATAL(kos_store_revocation_add(st, &r), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_store_key_versions(st, "k1", &all, &n), KOS_OK);
	CU_ASSERT_EQUAL(n, 2);
	kos_store_versions_free(all, n);

	CU_ASSERT_EQUAL(kos_store_meta_get(st, "nope", &value), KOS_E_NOTFOUND);
	CU_ASSERT_PTR_NULL(value);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "no 'nope' setting"));
	CU_ASSERT_EQUAL(kos_store_service_get(st, "nosvc", &row), KOS_E_NOTFOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "unknown service 'nosvc'"));
	CU_ASSERT_EQUAL(kos_store_key_version_get(st, "k1", 7, &v), KOS_E_NOTFOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "key 'k1' has no version 7"));
	kos_store_free(st);

	raw_exec(path, "PRAGMA ignore_check_constraints = ON;"
		       "UPDATE key_versions SET spki = zeroblob(20000) WHERE version = 1;"
		       "UPDATE key_versions SET state = 'bogus' WHERE version = 2;"
		       "UPDATE revocations SET kind = 'nobody';");
	CU_ASSERT_EQUAL_FATAL(kos_store_open(path, &st), KOS_OK);
	CU_ASSERT_EQUAL(kos_store_key_version_get(st, "k1", 1, &v), KOS_E_STORE);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "a public key of 20000 bytes"));
	CU_ASSERT_EQUAL(kos_store_key_version_get(st, "k1", 2, &v), KOS_E_STORE);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "unknown state"));
	all = (void *)&v;
	n = 99;
	CU_ASSERT_EQUAL(kos_store_key_versions(st, "k1", &all, &n), KOS_E_STORE);
	CU_ASSERT_PTR_NULL(all);
	CU_ASSERT_EQUAL(n, 0);
	revs = (void *)&r;
	n = 99;
	CU_ASSERT_EQUAL(kos_store_revocation_list(st, &revs, &n), KOS_E_STORE);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "revocation of unknown kind"));
	CU_ASSERT_PTR_NULL(revs);
	CU_ASSERT_EQUAL(n, 0);
	kos_store_free(st);
}

static void test_sqlite_create_and_reopen(void)
{
	const char *path = kos_test_path("create.db");
	char loc[600], mode[32];
	kos_store *st = NULL;
	struct kos_trust_state s;
	struct fill_arg a = {.seed = 42};
	struct stat sb;

	snprintf(loc, sizeof(loc), "sqlite:%s", path);
	CU_ASSERT_EQUAL_FATAL(kos_store_open(loc, &st), KOS_OK);
	CU_ASSERT_EQUAL(kos_store_schema_version(st), KOS_STORE_SCHEMA_VERSION);
	CU_ASSERT_EQUAL(kos_store_trust_update(st, "persisted", fill_fn, &a), KOS_OK);

	/* while open: 0600, WAL, and the version is on disk */
	CU_ASSERT_EQUAL_FATAL(stat(path, &sb), 0);
	CU_ASSERT_EQUAL(sb.st_mode & 0777, 0600);
	raw_text(path, "PRAGMA journal_mode", mode, sizeof(mode));
	CU_ASSERT_STRING_EQUAL(mode, "wal");
	CU_ASSERT_EQUAL(kos_test_sql_int(path, "PRAGMA user_version"), KOS_STORE_SCHEMA_VERSION);
	kos_store_free(st);

	/* reopened as a plain path */
	st = NULL;
	CU_ASSERT_EQUAL_FATAL(kos_store_open(path, &st), KOS_OK);
	CU_ASSERT_EQUAL(kos_store_schema_version(st), KOS_STORE_SCHEMA_VERSION);
	memset(&s, 0, sizeof(s));
	CU_ASSERT_EQUAL_FATAL(kos_store_trust_get(st, "persisted", &s), KOS_OK);
	check_filled(&s, "persisted", 42);
	kos_store_free(st);
}

/* A file written by kos at schema version 1, before the anomaly columns. */
static const char v1_schema[] =
    "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) WITHOUT ROWID;"
    "INSERT INTO meta (key, value) VALUES ('format', 'kos state store');"
    "CREATE TABLE trust (client TEXT PRIMARY KEY NOT NULL, created INTEGER NOT NULL,"
    " last_activity INTEGER NOT NULL, f_latency REAL NOT NULL, f_integrity REAL NOT NULL,"
    " f_usage REAL NOT NULL, f_anomaly REAL NOT NULL, f_reputation REAL NOT NULL,"
    " observations INTEGER NOT NULL DEFAULT 0, integrity_failures INTEGER NOT NULL DEFAULT 0,"
    " scope_violations INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
    "INSERT INTO trust VALUES ('old-client', 1000, 2000, 10.5, 20.5, 30.5, 40.5, 50.5, 7, 2, 1);"
    "INSERT INTO trust VALUES ('older', 500, 600, 1, 2, 3, 4, 5, 1, 0, 0);"
    "PRAGMA user_version = 1;";

static void test_migrate_from_v1(void)
{
	const char *path = kos_test_path("v1.db");
	kos_store *st = NULL;
	struct kos_trust_state s;
	struct fill_arg a = {.seed = 3};

	CU_ASSERT_EQUAL_FATAL(kos_test_sql_exec(path, v1_schema), SQLITE_OK);
	CU_ASSERT_EQUAL_FATAL(kos_test_sql_int(path, "PRAGMA user_version"), 1);

	CU_ASSERT_EQUAL_FATAL(kos_store_open(path, &st), KOS_OK);
	CU_ASSERT_EQUAL(kos_store_schema_version(st), KOS_STORE_SCHEMA_VERSION);
	memset(&s, 0, sizeof(s));
	CU_ASSERT_EQUAL_FATAL(kos_store_trust_get(st, "old-client", &s), KOS_OK);
	CU_ASSERT_EQUAL(s.created, 1000);
	CU_ASSERT_EQUAL(s.last_activity, 2000);
	CU_ASSERT_EQUAL(s.factor[KOS_FACTOR_LATENCY], 10.5);
	CU_ASSERT_EQUAL(s.factor[KOS_FACTOR_INTEGRITY], 20.5);
	CU_ASSERT_EQUAL(s.factor[KOS_FACTOR_USAGE], 30.5);
	CU_ASSERT_EQUAL(s.factor[KOS_FACTOR_ANOMALY], 40.5);
	CU_ASSERT_EQUAL(s.factor[KOS_FACTOR_REPUTATION], 50.5);
	CU_ASSERT_EQUAL(s.observations, 7);
	CU_ASSERT_EQUAL(s.integrity_failures, 2);
	CU_ASSERT_EQUAL(s.scope_violations, 1);
	/* the columns step 2 added start empty */
	CU_ASSERT_EQUAL(s.rate_count, 0);
	CU_ASSERT_EQUAL(s.base_n, 0);
	CU_ASSERT_EQUAL(s.usage_ops, 0);
	/* and step 6's ceiling is not known */
	CU_ASSERT(s.ceiling < 0);
	CU_ASSERT_EQUAL(s.ceiling_at, 0);
	CU_ASSERT_EQUAL(kos_store_trust_get(st, "older", &s), KOS_OK);
	CU_ASSERT_EQUAL(s.factor[KOS_FACTOR_REPUTATION], 5.0);
	/* and the new columns are written and read back */
	CU_ASSERT_EQUAL(kos_store_trust_update(st, "old-client", fill_fn, &a), KOS_OK);
	CU_ASSERT_EQUAL(kos_store_trust_get(st, "old-client", &s), KOS_OK);
	check_filled(&s, "old-client", 3);
	kos_store_free(st);

	CU_ASSERT_EQUAL(kos_test_sql_int(path, "PRAGMA user_version"), KOS_STORE_SCHEMA_VERSION);
	CU_ASSERT_EQUAL(kos_test_sql_int(path, "PRAGMA application_id"), 0x6b6f7301);
	CU_ASSERT_EQUAL(kos_test_sql_int(path, "SELECT count(*) FROM trust"), 2);
}

/* A file written by kos at schema version 2: trust only, no keys. */
static const char v2_schema[] =
    "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) WITHOUT ROWID;"
    "INSERT INTO meta (key, value) VALUES ('format', 'kos state store');"
    "CREATE TABLE trust (client TEXT PRIMARY KEY NOT NULL, created INTEGER NOT NULL,"
    " last_activity INTEGER NOT NULL, f_latency REAL NOT NULL, f_integrity REAL NOT NULL,"
    " f_usage REAL NOT NULL, f_anomaly REAL NOT NULL, f_reputation REAL NOT NULL,"
    " observations INTEGER NOT NULL DEFAULT 0, integrity_failures INTEGER NOT NULL DEFAULT 0,"
    " scope_violations INTEGER NOT NULL DEFAULT 0, rate_start INTEGER NOT NULL DEFAULT 0,"
    " rate_count INTEGER NOT NULL DEFAULT 0, rate_flagged INTEGER NOT NULL DEFAULT 0,"
    " base_n INTEGER NOT NULL DEFAULT 0, base_mean REAL NOT NULL DEFAULT 0,"
    " base_m2 REAL NOT NULL DEFAULT 0, scope_start INTEGER NOT NULL DEFAULT 0,"
    " scope_count INTEGER NOT NULL DEFAULT 0, usage_start INTEGER NOT NULL DEFAULT 0,"
    " usage_ops INTEGER NOT NULL DEFAULT 0, usage_bytes INTEGER NOT NULL DEFAULT 0)"
    " WITHOUT ROWID;"
    "INSERT INTO trust (client, created, last_activity, f_latency, f_integrity, f_usage,"
    " f_anomaly, f_reputation, observations, usage_ops)"
    " VALUES ('v2-client', 10, 20, 1, 2, 3, 4, 5, 6, 77);"
    "PRAGMA user_version = 2; PRAGMA application_id = 1802466049;";

static void test_migrate_from_v2(void)
{
	const char *path = kos_test_path("v2.db");
	kos_store *st = NULL;
	struct kos_trust_state s;
	struct kos_store_key key = {.type = KOS_KEY_DEK, .created = 5};
	struct kos_store_version begin;
	uint32_t version = 0;

	CU_ASSERT_EQUAL_FATAL(kos_test_sql_exec(path, v2_schema), SQLITE_OK);
	CU_ASSERT_EQUAL_FATAL(kos_test_sql_int(path, "PRAGMA user_version"), 2);

	CU_ASSERT_EQUAL_FATAL(kos_store_open(path, &st), KOS_OK);
	CU_ASSERT_EQUAL(kos_store_schema_version(st), KOS_STORE_SCHEMA_VERSION);
	/* the trust rows are untouched */
	CU_ASSERT_EQUAL_FATAL(kos_store_trust_get(st, "v2-client", &s), KOS_OK);
	CU_ASSERT_EQUAL(s.observations, 6);
	CU_ASSERT_EQUAL(s.usage_ops, 77);
	CU_ASSERT_EQUAL(s.factor[KOS_FACTOR_REPUTATION], 5.0);
	/* and the key tables work */
	memset(&begin, 0, sizeof(begin));
	begin.created = 6;
	CU_ASSERT_EQUAL(kos_store_key_version_begin(st, &key, "migrated", &begin, &version),
			KOS_OK);
	CU_ASSERT_EQUAL(version, 1);
	kos_store_free(st);

	CU_ASSERT_EQUAL(kos_test_sql_int(path, "PRAGMA user_version"), KOS_STORE_SCHEMA_VERSION);
	CU_ASSERT_EQUAL(kos_test_sql_int(path, "SELECT count(*) FROM keys"), 1);
	CU_ASSERT_EQUAL(kos_test_sql_int(path, "SELECT count(*) FROM key_versions WHERE state = 'creating'"),
			1);
	CU_ASSERT_EQUAL(kos_test_sql_int(path, "SELECT count(*) FROM key_shares"), 0);
	CU_ASSERT_EQUAL(kos_test_sql_int(path, "SELECT count(*) FROM key_share_sets"), 0);
	/* the schema refuses a state kos does not know, even from another program */
	CU_ASSERT_NOT_EQUAL(kos_test_sql_exec(path, "UPDATE key_versions SET state = 'lost'"), SQLITE_OK);
}

/* A file written by kos at schema version 3: trust and keys, no services
 * or credentials. */
static const char v3_keys[] =
    "CREATE TABLE keys (name TEXT PRIMARY KEY NOT NULL, type INTEGER NOT NULL CHECK (type >= 0),"
    " created INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE key_versions (name TEXT NOT NULL REFERENCES keys (name),"
    " version INTEGER NOT NULL CHECK (version > 0), state TEXT NOT NULL CHECK (state IN"
    " ('creating', 'active', 'retired')), created INTEGER NOT NULL, kcv BLOB, spki BLOB,"
    " token TEXT, label TEXT, creator TEXT NOT NULL DEFAULT '', PRIMARY KEY (name, version))"
    " WITHOUT ROWID;"
    "CREATE TABLE key_share_sets (name TEXT NOT NULL, version INTEGER NOT NULL,"
    " set_name TEXT NOT NULL, position INTEGER NOT NULL, n INTEGER NOT NULL CHECK (n BETWEEN 2"
    " AND 255), k INTEGER NOT NULL CHECK (k BETWEEN 2 AND n), PRIMARY KEY (name, version,"
    " set_name), FOREIGN KEY (name, version) REFERENCES key_versions (name, version))"
    " WITHOUT ROWID;"
    "CREATE TABLE key_shares (name TEXT NOT NULL, version INTEGER NOT NULL, set_name TEXT NOT"
    " NULL, x INTEGER NOT NULL CHECK (x BETWEEN 1 AND 255), token TEXT NOT NULL, label TEXT NOT"
    " NULL, PRIMARY KEY (name, version, set_name, x), FOREIGN KEY (name, version, set_name)"
    " REFERENCES key_share_sets (name, version, set_name)) WITHOUT ROWID;"
    "CREATE INDEX key_shares_token ON key_shares (token);"
    "INSERT INTO keys (name, type, created) VALUES ('v3-key', 1, 7);"
    "INSERT INTO key_versions (name, version, state, created, token, label) VALUES"
    " ('v3-key', 1, 'active', 8, 'signer', 'kos-sign:v3-key:1');"
    "PRAGMA user_version = 3;";

static void test_migrate_from_v3(void)
{
	const char *path = kos_test_path("v3.db");
	kos_store *st = NULL;
	struct kos_store_version v;
	struct kos_store_cred_client *clients = NULL;
	size_t n = 99;
	uint64_t rev = 99;

	CU_ASSERT_EQUAL_FATAL(kos_test_sql_exec(path, v2_schema), SQLITE_OK);
	CU_ASSERT_EQUAL_FATAL(kos_test_sql_exec(path, v3_keys), SQLITE_OK);
	CU_ASSERT_EQUAL_FATAL(kos_test_sql_int(path, "PRAGMA user_version"), 3);

	CU_ASSERT_EQUAL_FATAL(kos_store_open(path, &st), KOS_OK);
	CU_ASSERT_EQUAL(kos_store_schema_version(st), KOS_STORE_SCHEMA_VERSION);
	/* the keys are untouched */
	CU_ASSERT_EQUAL_FATAL(kos_store_key_version_get(st, "v3-key", 0, &v), KOS_OK);
	CU_ASSERT_EQUAL(v.version, 1);
	CU_ASSERT_STRING_EQUAL(v.label, "kos-sign:v3-key:1");
	kos_store_version_clear(&v);
	/* the new tables start empty, the revision at 0 */
	CU_ASSERT_EQUAL(kos_store_cred_revision(st, &rev), KOS_OK);
	CU_ASSERT_EQUAL(rev, 0);
	CU_ASSERT_EQUAL(kos_store_cred_client_list(st, &clients, &n), KOS_OK);
	CU_ASSERT_EQUAL(n, 0);
	free(clients);
	check_services(st);
	check_credentials(st);
	kos_store_free(st);

	CU_ASSERT_EQUAL(kos_test_sql_int(path, "PRAGMA user_version"), KOS_STORE_SCHEMA_VERSION);
	CU_ASSERT_EQUAL(kos_test_sql_int(path, "SELECT count(*) FROM ca_keys WHERE retired = 0"), 1);
	/* the schema itself keeps one current CA key and well-formed rows */
	CU_ASSERT_NOT_EQUAL(kos_test_sql_exec(path, "INSERT INTO ca_keys (kid, token, label, spki, created)"
					   " VALUES ('x', 'ca', 'l', x'30', 1)"),
			    SQLITE_OK);
	CU_ASSERT_NOT_EQUAL(kos_test_sql_exec(path, "INSERT INTO revocations (kind, value, created, expires)"
					   " VALUES ('nonsense', '', 1, 2)"),
			    SQLITE_OK);
	CU_ASSERT_NOT_EQUAL(kos_test_sql_exec(path,
				     "INSERT INTO enrollments (hash, client, created, expires)"
				     " VALUES (x'00', 'api', 1, 2)"),
			    SQLITE_OK);
}

/* A store as kos wrote it at schema version 5: the released steps 1 to 5
 * are unchanged, so a current store without step 6's columns and with
 * user_version 5 is exactly one. */
static const char v5_from_current[] =
    "DROP TABLE key_certs;"
    "ALTER TABLE trust DROP COLUMN ceiling; ALTER TABLE trust DROP COLUMN ceiling_at;"
    "INSERT INTO trust (client, created, last_activity, f_latency, f_integrity, f_usage,"
    " f_anomaly, f_reputation, observations, integrity_failures, scope_violations,"
    " rate_start, rate_count, base_n, base_mean, usage_ops)"
    " VALUES ('v5-client', 10, 20, 80, 0, 100, 45, 60, 206, 3, 1, 15, 200, 0, 0, 100);"
    "PRAGMA user_version = 5;";

static void test_migrate_from_v5(void)
{
	const char *path = kos_test_path("v5.db");
	kos_store *st = NULL;
	struct kos_trust_state s;
	struct fill_arg a = {.seed = 5};

	CU_ASSERT_EQUAL_FATAL(kos_store_open(path, &st), KOS_OK);
	CU_ASSERT_EQUAL(kos_store_trust_update(st, "kept", fill_fn, &a), KOS_OK);
	kos_store_free(st);
	CU_ASSERT_EQUAL_FATAL(kos_test_sql_exec(path, v5_from_current), SQLITE_OK);
	CU_ASSERT_EQUAL_FATAL(kos_test_sql_int(path, "PRAGMA user_version"), 5);
	CU_ASSERT_EQUAL_FATAL(kos_test_sql_int(path, "SELECT count(*) FROM pragma_table_info('trust')"
						     " WHERE name LIKE 'ceiling%'"),
			      0);

	st = NULL;
	CU_ASSERT_EQUAL_FATAL(kos_store_open(path, &st), KOS_OK);
	CU_ASSERT_EQUAL(kos_store_schema_version(st), KOS_STORE_SCHEMA_VERSION);
	/* the v5 columns are untouched; the ceiling is not known */
	memset(&s, 0, sizeof(s));
	CU_ASSERT_EQUAL_FATAL(kos_store_trust_get(st, "v5-client", &s), KOS_OK);
	CU_ASSERT_EQUAL(s.created, 10);
	CU_ASSERT_EQUAL(s.last_activity, 20);
	CU_ASSERT_EQUAL(s.factor[KOS_FACTOR_LATENCY], 80.0);
	CU_ASSERT_EQUAL(s.factor[KOS_FACTOR_INTEGRITY], 0.0);
	CU_ASSERT_EQUAL(s.factor[KOS_FACTOR_ANOMALY], 45.0);
	CU_ASSERT_EQUAL(s.observations, 206);
	CU_ASSERT_EQUAL(s.integrity_failures, 3);
	CU_ASSERT_EQUAL(s.rate_count, 200);
	CU_ASSERT_EQUAL(s.usage_ops, 100);
	CU_ASSERT(s.ceiling < 0);
	CU_ASSERT_EQUAL(s.ceiling_at, 0);
	/* a row migrated with its ceiling columns: the defaults, not the values */
	CU_ASSERT_EQUAL_FATAL(kos_store_trust_get(st, "kept", &s), KOS_OK);
	CU_ASSERT(s.ceiling < 0);
	CU_ASSERT_EQUAL(s.usage_ops, 5 + 12);
	/* and the new columns are written and read back */
	a.seed = 6;
	CU_ASSERT_EQUAL(kos_store_trust_update(st, "v5-client", fill_fn, &a), KOS_OK);
	kos_store_free(st);
	st = NULL;
	CU_ASSERT_EQUAL_FATAL(kos_store_open(path, &st), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_store_trust_get(st, "v5-client", &s), KOS_OK);
	check_filled(&s, "v5-client", 6);
	kos_store_free(st);
	CU_ASSERT_EQUAL(kos_test_sql_int(path, "PRAGMA user_version"), KOS_STORE_SCHEMA_VERSION);
	CU_ASSERT_EQUAL(kos_test_sql_int(path, "SELECT count(*) FROM trust"), 2);
}

/* A store as kos wrote it at schema version 6: the current one without
 * step 7's table. Its keys are kept, and certificates can be stored. */
static void test_migrate_from_v6(void)
{
	const char *path = kos_test_path("v6.db");
	struct kos_store_version v;
	kos_store *st = NULL;

	CU_ASSERT_EQUAL_FATAL(kos_store_open(path, &st), KOS_OK);
	sign_version_active(st, "v6-key", true, 1);
	kos_store_free(st);
	CU_ASSERT_EQUAL_FATAL(kos_test_sql_exec(path, "DROP TABLE key_certs; PRAGMA user_version = 6;"),
			      SQLITE_OK);
	CU_ASSERT_EQUAL_FATAL(kos_test_sql_int(path, "SELECT count(*) FROM sqlite_master WHERE "
						     "name = 'key_certs'"),
			      0);

	st = NULL;
	CU_ASSERT_EQUAL_FATAL(kos_store_open(path, &st), KOS_OK);
	CU_ASSERT_EQUAL(kos_store_schema_version(st), KOS_STORE_SCHEMA_VERSION);
	CU_ASSERT_EQUAL_FATAL(kos_store_key_version_get(st, "v6-key", 1, &v), KOS_OK);
	CU_ASSERT_EQUAL(v.state, KOS_KEY_STATE_ACTIVE);
	CU_ASSERT_STRING_EQUAL(v.label, "kos-sign:v6-key:1");
	kos_store_version_clear(&v);
	CU_ASSERT_EQUAL(kos_store_key_cert_put(st, "v6-key", 1, (const uint8_t *)"CERT", 4, 1),
			KOS_OK);
	cert_is(st, "v6-key", 1, "CERT", 4);
	kos_store_free(st);
	CU_ASSERT_EQUAL(kos_test_sql_int(path, "PRAGMA user_version"), KOS_STORE_SCHEMA_VERSION);
	/* the schema refuses an empty certificate, even from another program */
	CU_ASSERT_NOT_EQUAL(kos_test_sql_exec(path, "INSERT INTO key_certs VALUES "
						    "('v6-key', 1, x'', 0)"),
			    SQLITE_OK);
}

static void test_newer_schema_refused(void)
{
	const char *path = kos_test_path("newer.db");
	char sql[64];
	kos_store *st = NULL;

	CU_ASSERT_EQUAL_FATAL(kos_store_open(path, &st), KOS_OK);
	CU_ASSERT_EQUAL(kos_store_trust_update(st, "x", count_fn, NULL), KOS_OK);
	kos_store_free(st);
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", KOS_STORE_SCHEMA_VERSION + 1);
	CU_ASSERT_EQUAL_FATAL(kos_test_sql_exec(path, sql), SQLITE_OK);

	st = (kos_store *)&st; /* must be reset to NULL */
	CU_ASSERT_EQUAL(kos_store_open(path, &st), KOS_E_STORE);
	CU_ASSERT_PTR_NULL(st);
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "newer"));
	/* refused untouched */
	CU_ASSERT_EQUAL(kos_test_sql_int(path, "PRAGMA user_version"), KOS_STORE_SCHEMA_VERSION + 1);
	CU_ASSERT_EQUAL(kos_test_sql_int(path, "SELECT count(*) FROM trust"), 1);
}

static void check_refused(const char *loc, kos_rv want, const char *detail)
{
	kos_store *st = (kos_store *)&st;
	kos_rv rv = kos_store_open(loc, &st);

	CU_ASSERT_EQUAL(rv, want);
	CU_ASSERT_PTR_NULL(st);
	if (detail != NULL && strstr(kos_last_error(), detail) == NULL) {
		fprintf(stderr, "\n  %s: detail '%s' lacks '%s'\n", loc ? loc : "(null)",
			kos_last_error(), detail);
		CU_FAIL("error detail");
	}
	if (rv == KOS_OK)
		kos_store_free(st);
}

static void test_bad_locations(void)
{
	const char *text = kos_test_path("text.db");
	const char *foreign = kos_test_path("foreign.db");
	const char *other_app = kos_test_path("other-app.db");
	char loc[600], mode[32];
	FILE *f;
	kos_store *st = NULL;

	check_refused(NULL, KOS_E_INVALID, "empty");
	check_refused("", KOS_E_INVALID, "empty");
	check_refused("sqlite:", KOS_E_INVALID, "no file");
	check_refused("memory:/tmp/x", KOS_E_INVALID, "no path");
	check_refused("postgres://db.example/kos", KOS_E_INVALID, "not supported");
	check_refused("postgresql:host=db", KOS_E_INVALID, "'postgresql' is not supported");
	check_refused(kos_test_tmpdir(), KOS_E_IO, "directory");
	snprintf(loc, sizeof(loc), "sqlite:%s", kos_test_tmpdir());
	check_refused(loc, KOS_E_IO, "directory");
	check_refused("/nonexistent-kos-dir/state.db", KOS_E_IO, "No such file");

	f = fopen(text, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs("this is not a database, but it is long enough to look like a header\n", f);
	fclose(f);
	check_refused(text, KOS_E_STORE, "not a database");

	/* another program's database is neither migrated nor switched to WAL */
	CU_ASSERT_EQUAL_FATAL(
	    kos_test_sql_exec(foreign, "CREATE TABLE foo (x); INSERT INTO foo VALUES (1);"), SQLITE_OK);
	check_refused(foreign, KOS_E_STORE, "not a kos state store");
	raw_text(foreign, "PRAGMA journal_mode", mode, sizeof(mode));
	CU_ASSERT_STRING_EQUAL(mode, "delete");
	CU_ASSERT_EQUAL(kos_test_sql_int(foreign, "SELECT count(*) FROM foo"), 1);
	CU_ASSERT_EQUAL_FATAL(kos_test_sql_exec(other_app,
				       "PRAGMA application_id = 1234; CREATE TABLE t (x);"
				       "PRAGMA user_version = 1;"),
			      SQLITE_OK);
	check_refused(other_app, KOS_E_STORE, "another application");

	/* a colon after a slash is part of a plain path, not a scheme */
	CU_ASSERT_EQUAL(kos_store_open(kos_test_path("odd:name.db"), &st), KOS_OK);
	if (st != NULL)
		CU_ASSERT_STRING_EQUAL(kos_store_backend(st), "sqlite");
	kos_store_free(st);
	kos_store_free(NULL);
}

/* Another connection holds the write lock for a while: an update waits for
 * it instead of failing. */
struct holder {
	sqlite3 *db;
	int rc;
};

static void *release_later(void *arg)
{
	struct holder *h = arg;
	struct timespec ts = {0, 300 * 1000 * 1000};

	nanosleep(&ts, NULL);
	h->rc = sqlite3_exec(h->db, "COMMIT", NULL, NULL, NULL);
	return NULL;
}

static void test_sqlite_waits_for_lock(void)
{
	const char *path = kos_test_path("busy.db");
	kos_store *st = NULL;
	struct holder h = {NULL, -1};
	struct kos_trust_state s;
	struct timespec t0, t1;
	pthread_t th;
	double waited;

	CU_ASSERT_EQUAL_FATAL(kos_store_open(path, &st), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(sqlite3_open(path, &h.db), SQLITE_OK);
	CU_ASSERT_EQUAL_FATAL(sqlite3_exec(h.db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, release_later, &h), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CU_ASSERT_EQUAL(kos_store_trust_update(st, "waiter", count_fn, NULL), KOS_OK);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	pthread_join(th, NULL);
	waited = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	CU_ASSERT(waited >= 0.25);
	CU_ASSERT_EQUAL(h.rc, SQLITE_OK);
	CU_ASSERT_EQUAL(kos_store_trust_get(st, "waiter", &s), KOS_OK);
	CU_ASSERT_EQUAL(s.observations, 1);
	sqlite3_close(h.db);
	kos_store_free(st);
}

#define PER_CHILD 500
#define OWN_EVERY 5

/* One writer process: its own handle on the shared file, real observations
 * through the trust engine. Exit status 0 when every call succeeded. */
static int writer(const char *path, int id)
{
	kos_policy *pol = NULL;
	kos_store *st = NULL;
	kos_trust *tr = NULL;
	kos_observation obs = {.event = KOS_EVENT_SUCCESS};
	char own[32];
	int i, failures = 0;

	snprintf(own, sizeof(own), "own-%d", id);
	if (kos_policy_new_default(&pol) != KOS_OK || kos_store_open(path, &st) != KOS_OK ||
	    kos_trust_new(pol, st, &tr) != KOS_OK)
		return 2;
	for (i = 0; i < PER_CHILD; i++) {
		if (kos_trust_observe(tr, "shared", &obs, NULL) != KOS_OK)
			failures++;
		if (i % OWN_EVERY == 0 && kos_trust_observe(tr, own, &obs, NULL) != KOS_OK)
			failures++;
	}
	if (failures != 0)
		fprintf(stderr, "writer %d: %d failures, last: %s\n", id, failures,
			kos_last_error());
	kos_trust_free(tr);
	kos_store_free(st);
	kos_policy_free(pol);
	return failures == 0 ? 0 : 1;
}

static void test_concurrent_processes(void)
{
	const char *path = kos_test_path("shared.db");
	kos_store *st = NULL;
	struct kos_trust_state s;
	pid_t pid[2];
	int i, status;

	/* the children create the file themselves, racing on the migration too */
	for (i = 0; i < 2; i++) {
		pid[i] = fork();
		CU_ASSERT_FATAL(pid[i] >= 0);
		if (pid[i] == 0)
			_exit(writer(path, i)); /* _exit: not the parent's atexit handlers */
	}
	for (i = 0; i < 2; i++) {
		CU_ASSERT_EQUAL(waitpid(pid[i], &status, 0), pid[i]);
		CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	CU_ASSERT_EQUAL_FATAL(kos_store_open(path, &st), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_store_trust_get(st, "shared", &s), KOS_OK);
	CU_ASSERT_EQUAL(s.observations, 2 * PER_CHILD);
	CU_ASSERT_EQUAL(kos_store_trust_get(st, "own-0", &s), KOS_OK);
	CU_ASSERT_EQUAL(s.observations, PER_CHILD / OWN_EVERY);
	CU_ASSERT_EQUAL(kos_store_trust_get(st, "own-1", &s), KOS_OK);
	CU_ASSERT_EQUAL(s.observations, PER_CHILD / OWN_EVERY);
	kos_store_free(st);
}

/* Several processes creating the same new store at once: each must open it
 * (one migrates, the others see the result, none sees half of it). */
static void test_concurrent_creation(void)
{
	const int rounds = 20, children = 3;
	struct kos_trust_state s;
	kos_store *st = NULL;
	char name[32];
	pid_t pid[3];
	int r, i, status, failed = 0;

	for (r = 0; r < rounds; r++) {
		snprintf(name, sizeof(name), "created-%d.db", r);
		const char *path = kos_test_path(name);

		for (i = 0; i < children; i++) {
			pid[i] = fork();
			CU_ASSERT_FATAL(pid[i] >= 0);
			if (pid[i] == 0) {
				int rc = 1;

				if (kos_store_open(path, &st) == KOS_OK &&
				    kos_store_trust_update(st, "c", count_fn, NULL) == KOS_OK)
					rc = 0;
				else
					fprintf(stderr, "child: %s\n", kos_last_error());
				kos_store_free(st);
				_exit(rc);
			}
		}
		for (i = 0; i < children; i++) {
			if (waitpid(pid[i], &status, 0) != pid[i] || !WIFEXITED(status) ||
			    WEXITSTATUS(status) != 0)
				failed++;
		}
		CU_ASSERT_EQUAL_FATAL(kos_store_open(path, &st), KOS_OK);
		CU_ASSERT_EQUAL(kos_store_trust_get(st, "c", &s), KOS_OK);
		CU_ASSERT_EQUAL(s.observations, (uint64_t)children);
		kos_store_free(st);
		st = NULL;
	}
	CU_ASSERT_EQUAL(failed, 0);
}

struct thread_arg {
	kos_store *st;
	int failures;
};

static void *thread_writer(void *varg)
{
	struct thread_arg *a = varg;

	for (int i = 0; i < 250; i++)
		if (kos_store_trust_update(a->st, "threads", count_fn, NULL) != KOS_OK)
			a->failures++;
	return NULL;
}

static void check_threads(kos_store *st)
{
	struct thread_arg a[4];
	struct kos_trust_state s;
	pthread_t th[4];
	int i;

	for (i = 0; i < 4; i++) {
		a[i].st = st;
		a[i].failures = 0;
		CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, thread_writer, &a[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		CU_ASSERT_EQUAL(a[i].failures, 0);
	}
	CU_ASSERT_EQUAL_FATAL(kos_store_trust_get(st, "threads", &s), KOS_OK);
	CU_ASSERT_EQUAL(s.observations, 1000);
}

static void test_concurrent_threads(void)
{
	kos_store *st = NULL;

	CU_ASSERT_EQUAL_FATAL(kos_store_open("memory:", &st), KOS_OK);
	check_threads(st);
	kos_store_free(st);
	CU_ASSERT_EQUAL_FATAL(kos_store_open(kos_test_path("threads.db"), &st), KOS_OK);
	check_threads(st);
	kos_store_free(st);
}

int main(void)
{
	static const struct kos_test_case cases[] = {
	    KOS_TEST(test_memory_interface),
	    KOS_TEST(test_sqlite_interface),
	    KOS_TEST(test_sqlite_bad_rows),
	    KOS_TEST(test_sqlite_create_and_reopen),
	    KOS_TEST(test_migrate_from_v1),
	    KOS_TEST(test_migrate_from_v5),
	    KOS_TEST(test_migrate_from_v6),
	    KOS_TEST(test_sqlite_certs_survive_reopen),
	    KOS_TEST(test_migrate_from_v2),
	    KOS_TEST(test_migrate_from_v3),
	    KOS_TEST(test_cred_hint_shared),
	    KOS_TEST(test_newer_schema_refused),
	    KOS_TEST(test_bad_locations),
	    KOS_TEST(test_sqlite_waits_for_lock),
	    KOS_TEST(test_concurrent_processes),
	    KOS_TEST(test_concurrent_creation),
	    KOS_TEST(test_concurrent_threads),
	};

	return kos_test_run("store", NULL, NULL, cases, sizeof(cases) / sizeof(cases[0]));
}
