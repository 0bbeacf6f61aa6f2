/* Benchmarks of the core: Shamir split/combine, trust decisions and the
 * ledger, each printed beside raw OpenSSL AES-256-GCM encryption of 1 KiB
 * measured in the same run. Rates, not assertions: compare the ratio with
 * the goals. */
#include "config.h"

#include "kos/internal.h"
#include "tests/bench/bench.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>


struct gcm {
	EVP_CIPHER_CTX *ctx;
	unsigned char key[32], iv[12], in[1024], out[1024], tag[16];
};

/* The baseline: one whole AES-256-GCM encryption of 1 KiB with its own
 * key set-up, as a server-side encrypt does. */
static int gcm_encrypt(void *arg)
{
	struct gcm *g = arg;
	int len;

	g->iv[0]++;
	if (EVP_EncryptInit_ex(g->ctx, EVP_aes_256_gcm(), NULL, g->key, g->iv) != 1 ||
	    EVP_EncryptUpdate(g->ctx, g->out, &len, g->in, sizeof(g->in)) != 1 ||
	    EVP_EncryptFinal_ex(g->ctx, g->out + len, &len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(g->ctx, EVP_CTRL_GCM_GET_TAG, 16, g->tag) != 1)
		return 1;
	return 0;
}

struct split {
	uint8_t secret[32];
	unsigned k, n;
	kos_share shares[9];
};

static int do_split(void *arg)
{
	struct split *s = arg;
	kos_share sh[9];

	if (kos_shamir_split(s->secret, sizeof(s->secret), s->k, s->n, sh) != KOS_OK)
		return 1;
	kos_shares_clear(sh, s->n);
	return 0;
}

static int do_combine(void *arg)
{
	struct split *s = arg;
	uint8_t *out;
	size_t len;

	if (kos_shamir_combine(s->shares, s->k, &out, &len) != KOS_OK)
		return 1;
	if (len != sizeof(s->secret) || memcmp(out, s->secret, len) != 0) {
		kos_secret_free(out, len);
		return 1;
	}
	kos_secret_free(out, len);
	return 0;
}

struct trust_bench {
	kos_trust *tr;
	kos_trust_info info;
	unsigned long i;
};

static int do_trust_get(void *arg)
{
	struct trust_bench *t = arg;

	return kos_trust_get(t->tr, "bench-client", &t->info) != KOS_OK;
}

static int do_trust_observe(void *arg)
{
	struct trust_bench *t = arg;
	kos_observation obs = { .event = KOS_EVENT_LATENCY, .value = (double)(t->i++ % 40) };

	return kos_trust_observe(t->tr, "bench-client", &obs, NULL) != KOS_OK;
}

/* kosd writes its decisions to the ledger in batches of 256 */
#define LEDGER_BATCH 256

struct ledger_bench {
	kos_store *st;
	kos_ledger_entry e[LEDGER_BATCH];
	uint64_t n;
};

static int do_ledger_append(void *arg)
{
	struct ledger_bench *l = arg;
	char jti[32];

	for (size_t i = 0; i < LEDGER_BATCH; i++) {
		snprintf(jti, sizeof(jti), "jti-%llu", (unsigned long long)l->n++);
		kos_ledger_entry_init(&l->e[i], kos_now(), "bench-client", "sign", "release-key",
				      "high", "allowed", "", jti);
	}
	return kos_ledger_append(l->st, l->e, LEDGER_BATCH) != KOS_OK;
}

static int do_ledger_verify(void *arg)
{
	struct ledger_bench *l = arg;
	kos_ledger_check c;

	return kos_ledger_verify(l->st, &c) != KOS_OK || c.checked != l->n;
}

static void report(const char *what, double r, double base, const char *goal)
{
	printf("%-44s %12.0f/s  %6.2fx AES-GCM%s%s\n", what, r, r / base, goal ? "  goal " : "",
	       goal ? goal : "");
}

int main(void)
{
	struct gcm g = { 0 };
	struct split sp;
	struct trust_bench tb = { 0 };
	kos_policy *pol = NULL;
	kos_store *mem = NULL, *db = NULL;
	char dir[] = "/tmp/kos-bench-XXXXXX", path[64];
	double base;
	unsigned sets[][2] = { { 3, 5 }, { 5, 9 } };

	g.ctx = EVP_CIPHER_CTX_new();
	if (g.ctx == NULL || RAND_bytes(g.key, sizeof(g.key)) != 1)
		return 1;
	base = bench_rate(gcm_encrypt, &g, 16);
	printf("%-44s %12.0f/s  (baseline)\n", "OpenSSL AES-256-GCM encrypt 1 KiB", base);

	RAND_bytes(sp.secret, sizeof(sp.secret));
	for (size_t i = 0; i < 2; i++) {
		char label[64];

		sp.k = sets[i][0];
		sp.n = sets[i][1];
		if (kos_shamir_split(sp.secret, sizeof(sp.secret), sp.k, sp.n, sp.shares) != KOS_OK)
			return 1;
		snprintf(label, sizeof(label), "Shamir split 32 B %u-of-%u", sp.k, sp.n);
		report(label, bench_rate(do_split, &sp, 16), base, NULL);
		snprintf(label, sizeof(label), "Shamir combine 32 B %u-of-%u", sp.k, sp.n);
		report(label, bench_rate(do_combine, &sp, 16), base, i == 0 ? ">= 0.2x" : NULL);
		kos_shares_clear(sp.shares, sp.n);
	}

	if (kos_policy_new_default(&pol) != KOS_OK || kos_store_open("memory:", &mem) != KOS_OK ||
	    kos_trust_new(pol, mem, &tb.tr) != KOS_OK)
		return 1;
	if (do_trust_observe(&tb) != 0)
		return 1;
	report("trust decision, in memory", bench_rate(do_trust_get, &tb, 16), base, ">= 1x");
	report("trust observation, in memory", bench_rate(do_trust_observe, &tb, 16), base, NULL);
	kos_trust_free(tb.tr);

	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(path, sizeof(path), "%s/state.db", dir);
	if (kos_store_open(path, &db) != KOS_OK || kos_trust_new(pol, db, &tb.tr) != KOS_OK)
		return 1;
	report("trust observation, persisted (SQLite)", bench_rate(do_trust_observe, &tb, 16), base, NULL);
	report("trust decision, from SQLite", bench_rate(do_trust_get, &tb, 16), base, NULL);
	kos_trust_free(tb.tr);

	/* per entry: batches of 256 appended, then the whole chain verified */
	{
		struct ledger_bench *lb = calloc(1, sizeof(*lb));

		if (lb == NULL)
			return 1;
		lb->st = db;
		report("ledger entries appended (SQLite, 256 a txn)",
		       bench_rate(do_ledger_append, lb, 1) * LEDGER_BATCH, base, NULL);
		report("ledger entries verified (SQLite)",
		       bench_rate(do_ledger_verify, lb, 1) * (double)lb->n, base, NULL);
		free(lb);
	}
	kos_store_free(db);
	kos_store_free(mem);
	kos_policy_free(pol);
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	if (system(path) != 0)
		fprintf(stderr, "bench: could not remove %s\n", dir);
	EVP_CIPHER_CTX_free(g.ctx);
	return 0;
}
