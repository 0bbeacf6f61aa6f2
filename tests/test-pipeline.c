/* The request pipeline (kos_pipeline): the order of its checks (scope,
 * trust, self-administration, delegation), that each refusal is observed,
 * that an admitted request is not, the outcome's observations, and the
 * ledger entry of step 7, on the memory store with a simulated clock. */
#include "config.h"

#include "kos/internal.h"
#include "tests/kos-test.h"

#include <string.h>

#define T0 (INT64_C(1800000000) * KOS_USEC_PER_SEC)

static kos_usec now = T0;

static kos_usec fx_clock(void *arg)
{
	(void)arg;
	return now;
}

struct fx {
	kos_policy *pol;
	kos_store *st;
	kos_trust *tr;
	kos_pipeline *p;
};

static void fx_init(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	CU_ASSERT_EQUAL_FATAL(kos_policy_new_default(&f->pol), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_store_open("memory:", &f->st), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_trust_new(f->pol, f->st, &f->tr), KOS_OK);
	kos_trust_set_clock(f->tr, fx_clock, NULL);
	CU_ASSERT_EQUAL_FATAL(kos_pipeline_new(f->tr, &f->p), KOS_OK);
	kos_pipeline_set_ledger(f->p, f->st, NULL, NULL);
}

static void fx_fini(struct fx *f)
{
	kos_pipeline_free(f->p);
	kos_trust_free(f->tr);
	kos_store_free(f->st);
	kos_policy_free(f->pol);
}

static uint64_t observations(struct fx *f, const char *client)
{
	kos_trust_info info;

	return kos_trust_get(f->tr, client, &info) == KOS_OK ? info.observations : 0;
}

static void drive_to_deny(struct fx *f, const char *client)
{
	kos_observation obs = { .event = KOS_EVENT_INTEGRITY };
	kos_trust_info info;
	int i;

	for (i = 0; i < 4; i++)
		CU_ASSERT_EQUAL(kos_trust_observe(f->tr, client, &obs, NULL), KOS_OK);
	obs.event = KOS_EVENT_SCOPE;
	for (i = 0; i < 8; i++)
		CU_ASSERT_EQUAL(kos_trust_observe(f->tr, client, &obs, NULL), KOS_OK);
	obs.event = KOS_EVENT_REPUTATION;
	obs.value = 0;
	for (i = 0; i < 12; i++)
		CU_ASSERT_EQUAL(kos_trust_observe(f->tr, client, &obs, NULL), KOS_OK);
	obs.event = KOS_EVENT_LATENCY;
	obs.value = 100000;
	for (i = 0; i < 12; i++)
		CU_ASSERT_EQUAL(kos_trust_observe(f->tr, client, &obs, &info), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(info.tier, KOS_TIER_DENY);
}

static void test_admits_in_scope(void)
{
	struct fx f;
	kos_request rq = { .client = "alice", .scope = "decrypt:pay-*", .action = "decrypt",
			   .resource = "pay-db" };
	kos_decision d;

	fx_init(&f);
	CU_ASSERT_EQUAL(kos_pipeline_admit(f.p, &rq, &d), KOS_OK);
	CU_ASSERT_TRUE(d.allowed);
	CU_ASSERT_PTR_NULL(d.reason);
	CU_ASSERT_PTR_NULL(d.code);
	/* never seen: the prior's tier, and an admission is no observation */
	CU_ASSERT_EQUAL(d.tier, kos_trust_tier_of(f.tr, f.pol->prior));
	CU_ASSERT_DOUBLE_EQUAL(d.score, f.pol->prior, 1e-9);
	CU_ASSERT_EQUAL(observations(&f, "alice"), 0);
	fx_fini(&f);
}

static void test_out_of_scope_observed(void)
{
	struct fx f;
	kos_request rq = { .client = "alice", .scope = "decrypt:pay-*", .action = "sign",
			   .resource = "pay-db" };
	kos_decision d;
	kos_trust_info info;

	fx_init(&f);
	CU_ASSERT_EQUAL(kos_pipeline_admit(f.p, &rq, &d), KOS_OK);
	CU_ASSERT_FALSE(d.allowed);
	CU_ASSERT_STRING_EQUAL(d.reason != NULL ? d.reason : "", "out of scope");
	CU_ASSERT_STRING_EQUAL(d.code != NULL ? d.code : "", "out_of_scope");
	CU_ASSERT_EQUAL_FATAL(kos_trust_get(f.tr, "alice", &info), KOS_OK);
	CU_ASSERT_EQUAL(info.scope_violations, 1);
	/* no scope at all is out of scope too */
	rq.scope = NULL;
	CU_ASSERT_EQUAL(kos_pipeline_admit(f.p, &rq, &d), KOS_OK);
	CU_ASSERT_FALSE(d.allowed);
	/* a listing (action NULL) checks trust only */
	rq.scope = "decrypt:pay-*";
	rq.action = NULL;
	rq.resource = NULL;
	CU_ASSERT_EQUAL(kos_pipeline_admit(f.p, &rq, &d), KOS_OK);
	CU_ASSERT_TRUE(d.allowed);
	fx_fini(&f);
}

static void test_deny_refuses_everything(void)
{
	struct fx f;
	kos_request rq = { .client = "mallory", .scope = "*:*", .action = "admin",
			   .resource = "trust", .target = "bob", .mutates = 1 };
	kos_decision d;
	uint64_t n;

	fx_init(&f);
	drive_to_deny(&f, "mallory");
	n = observations(&f, "mallory");
	CU_ASSERT_EQUAL(kos_pipeline_admit(f.p, &rq, &d), KOS_OK);
	CU_ASSERT_FALSE(d.allowed);
	CU_ASSERT_EQUAL(d.tier, KOS_TIER_DENY);
	CU_ASSERT_STRING_EQUAL(d.code != NULL ? d.code : "", "trust_too_low");
	CU_ASSERT_EQUAL(observations(&f, "mallory"), n + 1);
	/* deny comes before self-administration: a deny client forgetting
	 * itself is refused for its trust */
	rq.target = "mallory";
	CU_ASSERT_EQUAL(kos_pipeline_admit(f.p, &rq, &d), KOS_OK);
	CU_ASSERT_STRING_EQUAL(d.code != NULL ? d.code : "", "trust_too_low");
	/* and so is a service or a listing */
	rq.action = "service";
	rq.resource = "billing";
	rq.target = NULL;
	CU_ASSERT_EQUAL(kos_pipeline_admit(f.p, &rq, &d), KOS_OK);
	CU_ASSERT_FALSE(d.allowed);
	rq.action = NULL;
	CU_ASSERT_EQUAL(kos_pipeline_admit(f.p, &rq, &d), KOS_OK);
	CU_ASSERT_FALSE(d.allowed);
	fx_fini(&f);
}

/* A request for tiers from min_tier up: one below it is refused as deny
 * is ("trust too low", observed as a failure); scope is checked first. */
static void test_min_tier(void)
{
	struct fx f;
	kos_request rq = { .client = "mo", .scope = "sign:web", .action = "sign",
			   .resource = "web", .min_tier = KOS_TIER_HIGH };
	kos_decision d;
	kos_trust_info info;

	fx_init(&f);
	/* the prior (60) is medium: below high */
	CU_ASSERT_EQUAL(kos_pipeline_admit(f.p, &rq, &d), KOS_OK);
	CU_ASSERT_FALSE(d.allowed);
	CU_ASSERT_EQUAL(d.tier, KOS_TIER_MEDIUM);
	CU_ASSERT_STRING_EQUAL(d.code != NULL ? d.code : "", "trust_too_low");
	CU_ASSERT_STRING_EQUAL(d.reason != NULL ? d.reason : "", "trust too low");
	CU_ASSERT_PTR_NOT_NULL(strstr(kos_last_error(), "tier medium is below high"));
	CU_ASSERT_EQUAL_FATAL(kos_trust_get(f.tr, "mo", &info), KOS_OK);
	CU_ASSERT_EQUAL(info.observations, 1);
	CU_ASSERT_EQUAL(info.scope_violations, 0);
	rq.min_tier = KOS_TIER_MEDIUM;
	CU_ASSERT_EQUAL(kos_pipeline_admit(f.p, &rq, &d), KOS_OK);
	CU_ASSERT_TRUE(d.allowed);
	/* out of scope stays out of scope, whatever the tier */
	rq.min_tier = KOS_TIER_HIGH;
	rq.resource = "other";
	CU_ASSERT_EQUAL(kos_pipeline_admit(f.p, &rq, &d), KOS_OK);
	CU_ASSERT_STRING_EQUAL(d.code != NULL ? d.code : "", "out_of_scope");
	fx_fini(&f);
}

static void test_no_self_administration(void)
{
	struct fx f;
	kos_request rq = { .client = "ops", .scope = "admin:*", .action = "admin",
			   .resource = "trust", .target = "ops", .mutates = 1 };
	kos_decision d;

	fx_init(&f);
	CU_ASSERT_EQUAL(kos_pipeline_admit(f.p, &rq, &d), KOS_OK);
	CU_ASSERT_FALSE(d.allowed);
	CU_ASSERT_STRING_EQUAL(d.code != NULL ? d.code : "", "self_administration");
	CU_ASSERT_EQUAL(observations(&f, "ops"), 1);
	/* reading itself changes nothing and is allowed */
	rq.mutates = 0;
	CU_ASSERT_EQUAL(kos_pipeline_admit(f.p, &rq, &d), KOS_OK);
	CU_ASSERT_TRUE(d.allowed);
	/* another client is its job */
	rq.mutates = 1;
	rq.target = "web";
	CU_ASSERT_EQUAL(kos_pipeline_admit(f.p, &rq, &d), KOS_OK);
	CU_ASSERT_TRUE(d.allowed);
	fx_fini(&f);
}

static void test_delegation_within_scope(void)
{
	struct fx f;
	kos_request rq = { .client = "deleg", .scope = "admin:clients decrypt:pay-*",
			   .action = "admin", .resource = "clients", .target = "new",
			   .mutates = 1 };
	kos_decision d;
	static const char *const beyond[] = {
		"admin:* key:* decrypt:*", "admin:clients decrypt:*", "admin:trust",
		"*:*", "decrypt:pay-* sign:pay-db", "admin:clients decrypt:pay-* key:pay-db",
	};
	static const char *const within[] = {
		"decrypt:pay-db", "admin:clients", "decrypt:pay-* admin:clients", "decrypt:pay-x*",
	};
	size_t i;

	fx_init(&f);
	for (i = 0; i < sizeof(beyond) / sizeof(beyond[0]); i++) {
		rq.grant_scope = beyond[i];
		CU_ASSERT_EQUAL(kos_pipeline_admit(f.p, &rq, &d), KOS_OK);
		CU_ASSERT_FALSE(d.allowed);
		CU_ASSERT_STRING_EQUAL(d.code != NULL ? d.code : "", "beyond_scope");
	}
	for (i = 0; i < sizeof(within) / sizeof(within[0]); i++) {
		rq.grant_scope = within[i];
		CU_ASSERT_EQUAL(kos_pipeline_admit(f.p, &rq, &d), KOS_OK);
		CU_ASSERT_TRUE(d.allowed);
	}
	/* the area is checked before what is given away */
	rq.resource = "credentials";
	rq.grant_scope = "*:*";
	CU_ASSERT_EQUAL(kos_pipeline_admit(f.p, &rq, &d), KOS_OK);
	CU_ASSERT_STRING_EQUAL(d.code != NULL ? d.code : "", "out_of_scope");
	fx_fini(&f);
}

static void test_observe_outcomes(void)
{
	struct fx f;
	kos_trust_info info;

	fx_init(&f);
	kos_pipeline_observe(f.p, "c", 1000, KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_trust_get(f.tr, "c", &info), KOS_OK);
	CU_ASSERT_EQUAL(info.observations, 2); /* latency and success */
	kos_pipeline_observe(f.p, "c", -1, KOS_E_INTEGRITY);
	CU_ASSERT_EQUAL_FATAL(kos_trust_get(f.tr, "c", &info), KOS_OK);
	CU_ASSERT_EQUAL(info.observations, 3);
	CU_ASSERT_EQUAL(info.integrity_failures, 1);
	/* the service's own failures are not the client's */
	kos_pipeline_observe(f.p, "c", -1, KOS_E_STORE);
	kos_pipeline_observe(f.p, "c", -1, KOS_E_NOMEM);
	CU_ASSERT_EQUAL(observations(&f, "c"), 3);
	kos_pipeline_observe(f.p, "c", -1, KOS_E_INVALID);
	CU_ASSERT_EQUAL(observations(&f, "c"), 4);
	/* a name that is no client is nobody's observation */
	kos_pipeline_observe(f.p, "-", -1, KOS_E_INTEGRITY);
	fx_fini(&f);
}

static int count_entry(const kos_ledger_entry *e, void *arg)
{
	kos_ledger_entry *last = arg;

	*last = *e;
	return 0;
}

static void test_record(void)
{
	struct fx f;
	kos_ledger_entry e;
	kos_pipeline *bare;

	fx_init(&f);
	CU_ASSERT_EQUAL(kos_pipeline_record(f.p, "ops", "admin_clients", "new\nline", "high",
					    "refused", "beyond scope", "jti1"),
			KOS_OK);
	memset(&e, 0, sizeof(e));
	CU_ASSERT_EQUAL(kos_ledger_list(f.st, 1, 0, count_entry, &e), KOS_OK);
	CU_ASSERT_EQUAL(e.seq, 1);
	CU_ASSERT_STRING_EQUAL(e.client, "ops");
	CU_ASSERT_STRING_EQUAL(e.resource, "new?line");
	CU_ASSERT_STRING_EQUAL(e.outcome, "refused");
	CU_ASSERT_STRING_EQUAL(e.reason, "beyond scope");
	/* an outcome outside the set is refused by the ledger */
	CU_ASSERT_EQUAL(kos_pipeline_record(f.p, "ops", "x", "-", "-", "maybe", "", "-"),
			KOS_E_INVALID);
	/* no ledger, no record */
	CU_ASSERT_EQUAL_FATAL(kos_pipeline_new(f.tr, &bare), KOS_OK);
	CU_ASSERT_EQUAL(kos_pipeline_record(bare, "ops", "x", "-", "-", "allowed", "", "-"),
			KOS_E_INVALID);
	kos_pipeline_free(bare);
	fx_fini(&f);
}

static void test_bad_arguments(void)
{
	struct fx f;
	kos_request rq = { .client = "-bad", .scope = "*:*", .action = "decrypt", .resource = "k" };
	kos_decision d;

	fx_init(&f);
	CU_ASSERT_EQUAL(kos_pipeline_admit(f.p, &rq, &d), KOS_E_INVALID);
	CU_ASSERT_FALSE(d.allowed);
	CU_ASSERT_EQUAL(kos_pipeline_admit(f.p, NULL, &d), KOS_E_INVALID);
	CU_ASSERT_EQUAL(kos_pipeline_admit(f.p, &rq, NULL), KOS_E_INVALID);
	{
		/* the output is cleared even on failure */
		kos_pipeline *none = f.p;

		CU_ASSERT_EQUAL(kos_pipeline_new(NULL, &none), KOS_E_INVALID);
		CU_ASSERT_PTR_NULL(none);
	}
	fx_fini(&f);
}

int main(void)
{
	static const struct kos_test_case cases[] = {
		KOS_TEST(test_admits_in_scope),	      KOS_TEST(test_out_of_scope_observed),
		KOS_TEST(test_deny_refuses_everything), KOS_TEST(test_no_self_administration),
		KOS_TEST(test_delegation_within_scope), KOS_TEST(test_observe_outcomes),
		KOS_TEST(test_record),		      KOS_TEST(test_bad_arguments),
		KOS_TEST(test_min_tier),
	};

	return kos_test_run("pipeline", NULL, NULL, cases, sizeof(cases) / sizeof(cases[0]));
}
