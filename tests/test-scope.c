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

int main(void)
{
	static const struct kos_test_case cases[] = {
		KOS_TEST(test_valid_scopes),
		KOS_TEST(test_invalid_scopes),
		KOS_TEST(test_allows),
		KOS_TEST(test_within),
	};

	return kos_test_run("scope", NULL, NULL, cases, KOS_ARRAY_SIZE(cases));
}
