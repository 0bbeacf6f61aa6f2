/* Scopes: syntax, matching, and narrowing. */
#include "config.h"

#include "kos/internal.h"
#include "tests/kos-test.h"

#include <string.h>

static void test_valid_scopes(void)
{
	static const char *const good[] = {
		"decrypt:payments/*",
		"decrypt:payments/* sign:ca-2026",
		"  encrypt:a   decrypt:b  ",
		"*:*",
		"key:payments/db/v2",
		"admin:clients",
	};
	size_t i;

	for (i = 0; i < KOS_ARRAY_SIZE(good); i++)
		CU_ASSERT_EQUAL(kos_scope_validate(good[i]), KOS_OK);
}

static void test_invalid_scopes(void)
{
	static const char *const bad[] = {
		"", "   ", "decrypt", "decrypt:", ":payments", "Decrypt:x", "de crypt:x",
		"decrypt:pay?ments", "decrypt:[ab]", "decrypt:a\\b", "decrypt:a:b",
		"decrypt:a\tsign:b", "decrypt:caf\xc3\xa9", "**:x", "de*:x",
	};
	char big[KOS_SCOPE_MAX + 16];
	size_t i;

	for (i = 0; i < KOS_ARRAY_SIZE(bad); i++)
		CU_ASSERT_EQUAL(kos_scope_validate(bad[i]), KOS_E_PARSE);
	CU_ASSERT_EQUAL(kos_scope_validate(NULL), KOS_E_PARSE);
	CU_ASSERT_EQUAL(kos_scope_validate("encrypt:a bogus"), KOS_E_PARSE);
	CU_ASSERT(strstr(kos_last_error(), "item 2") != NULL);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "decrypt:", 8);
	CU_ASSERT_EQUAL(kos_scope_validate(big), KOS_E_PARSE);
}

static void test_allows(void)
{
	const char *s = "decrypt:payments/* sign:ca-2026 encrypt:logs";

	CU_ASSERT_TRUE(kos_scope_allows(s, "decrypt", "payments/db"));
	CU_ASSERT_TRUE(kos_scope_allows(s, "decrypt", "payments/eu/db"));
	CU_ASSERT_FALSE(kos_scope_allows(s, "decrypt", "payments"));
	CU_ASSERT_FALSE(kos_scope_allows(s, "decrypt", "payroll/db"));
	CU_ASSERT_FALSE(kos_scope_allows(s, "encrypt", "payments/db"));
	CU_ASSERT_TRUE(kos_scope_allows(s, "sign", "ca-2026"));
	CU_ASSERT_FALSE(kos_scope_allows(s, "sign", "ca-2027"));
	CU_ASSERT_TRUE(kos_scope_allows(s, "encrypt", "logs"));
	CU_ASSERT_FALSE(kos_scope_allows(s, "encrypt", "logs2"));
	CU_ASSERT_FALSE(kos_scope_allows(s, "decryp", "payments/db"));
	CU_ASSERT_FALSE(kos_scope_allows(s, "decrypt:payments/db", ""));
	CU_ASSERT_TRUE(kos_scope_allows("*:payments/*", "sign", "payments/x"));
	CU_ASSERT_FALSE(kos_scope_allows("*:payments/*", "sign", "other"));
	CU_ASSERT_TRUE(kos_scope_allows("decrypt:*-2026", "decrypt", "ca-2026"));
	CU_ASSERT_FALSE(kos_scope_allows("decrypt:*-2026", "decrypt", "ca-2027"));
	/* invalid scopes allow nothing */
	CU_ASSERT_FALSE(kos_scope_allows("decrypt:[p]*", "decrypt", "p"));
	CU_ASSERT_FALSE(kos_scope_allows(NULL, "decrypt", "p"));
	CU_ASSERT_FALSE(kos_scope_allows("decrypt:*", NULL, "p"));
}

static void test_within(void)
{
	const char *wide = "decrypt:payments/* sign:ca-2026";

	CU_ASSERT_TRUE(kos_scope_within("decrypt:payments/db", wide));
	CU_ASSERT_TRUE(kos_scope_within("decrypt:payments/*", wide));
	CU_ASSERT_TRUE(kos_scope_within("decrypt:payments/eu-* sign:ca-2026", wide));
	CU_ASSERT_TRUE(kos_scope_within(wide, wide));
	CU_ASSERT_FALSE(kos_scope_within("decrypt:*", wide));
	CU_ASSERT_FALSE(kos_scope_within("decrypt:pay*", wide));
	CU_ASSERT_FALSE(kos_scope_within("encrypt:payments/db", wide));
	CU_ASSERT_FALSE(kos_scope_within("*:payments/db", wide));
	CU_ASSERT_FALSE(kos_scope_within("decrypt:payments/db sign:ca-2027", wide));
	CU_ASSERT_TRUE(kos_scope_within("*:payments/db", "*:payments/*"));
	CU_ASSERT_TRUE(kos_scope_within("sign:x", "*:*"));
	CU_ASSERT_FALSE(kos_scope_within("bad", wide));
	CU_ASSERT_FALSE(kos_scope_within("decrypt:payments/db", "bad"));
}

/* No wildcard, of action or resource, allows the grant action;
 * only the literal item does, and nothing narrows into one. */
static void test_share_not_wildcarded(void)
{
	const char *id = "kos-share/payments/1/low/2";

	CU_ASSERT_FALSE(kos_scope_allows("*:*", "share", id));
	CU_ASSERT_FALSE(kos_scope_allows("*:*payments*", "share", id));
	CU_ASSERT_FALSE(kos_scope_allows("share:*", "share", id));
	CU_ASSERT_FALSE(kos_scope_allows("share:kos-share/payments/*", "share", id));
	CU_ASSERT_FALSE(kos_scope_allows("*:kos-share/payments/1/low/2", "share", id));
	CU_ASSERT_TRUE(kos_scope_allows("share:kos-share/payments/1/low/2", "share", id));
	CU_ASSERT_FALSE(kos_scope_allows("share:kos-share/payments/1/low/2", "share",
					 "kos-share/payments/1/low/3"));
	CU_ASSERT_FALSE(kos_scope_allows("share:kos-share/payments/1/low/2", "share",
					 "kos-share/payments/1/low/2x"));
	/* the wildcards keep their meaning for every other action */
	CU_ASSERT_TRUE(kos_scope_allows("*:*", "decrypt", id));
	CU_ASSERT_TRUE(kos_scope_allows("*:*payments*", "sign", id));
	/* a refresh to a grant's scope is never within a wildcard */
	CU_ASSERT_FALSE(kos_scope_within("share:kos-share/payments/1/low/2", "*:*"));
	CU_ASSERT_FALSE(kos_scope_within("share:kos-share/payments/1/low/2", "*:*payments*"));
	CU_ASSERT_FALSE(kos_scope_within("share:*", "*:*"));
	CU_ASSERT_FALSE(kos_scope_within("share:*", "share:*"));
	CU_ASSERT_FALSE(kos_scope_within("decrypt:a share:x", "decrypt:* *:*"));
	CU_ASSERT_TRUE(kos_scope_within("share:x", "share:x decrypt:y"));
	CU_ASSERT_TRUE(kos_scope_within("decrypt:payments", "*:*"));
	/* which scopes hold the grant action at all */
	CU_ASSERT_TRUE(kos_scope_has_grant_item("share:x"));
	CU_ASSERT_TRUE(kos_scope_has_grant_item("decrypt:a  share:*"));
	CU_ASSERT_FALSE(kos_scope_has_grant_item("*:*"));
	CU_ASSERT_FALSE(kos_scope_has_grant_item("shares:x sharex:y decrypt:share"));
	CU_ASSERT_FALSE(kos_scope_has_grant_item("bad"));
	CU_ASSERT_FALSE(kos_scope_has_grant_item(NULL));
}

/* rewrap is an action of its own: decrypt does not give it, nor it decrypt,
 * and a credential narrowed to rewrap stays within one that holds it. */
static void test_rewrap_is_its_own_action(void)
{
	CU_ASSERT_TRUE(kos_scope_allows("rewrap:archive-*", "rewrap", "archive-2025"));
	CU_ASSERT_FALSE(kos_scope_allows("rewrap:archive-*", "decrypt", "archive-2025"));
	CU_ASSERT_FALSE(kos_scope_allows("rewrap:archive-*", "key", "archive-2025"));
	CU_ASSERT_FALSE(kos_scope_allows("decrypt:* encrypt:*", "rewrap", "archive-2025"));
	CU_ASSERT_TRUE(kos_scope_allows("*:archive-2025", "rewrap", "archive-2025"));
	CU_ASSERT_TRUE(kos_scope_within("rewrap:archive-2025", "rewrap:archive-*"));
	CU_ASSERT_FALSE(kos_scope_within("decrypt:archive-2025", "rewrap:archive-*"));
	CU_ASSERT_FALSE(kos_scope_within("rewrap:archive-2025", "decrypt:archive-*"));
}

int main(void)
{
	static const struct kos_test_case cases[] = {
		KOS_TEST(test_valid_scopes),
		KOS_TEST(test_invalid_scopes),
		KOS_TEST(test_allows),
		KOS_TEST(test_within),
		KOS_TEST(test_share_not_wildcarded),
		KOS_TEST(test_rewrap_is_its_own_action),
	};

	return kos_test_run("scope", NULL, NULL, cases, KOS_ARRAY_SIZE(cases));
}
