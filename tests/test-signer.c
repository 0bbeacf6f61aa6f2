#include "config.h"

#include "kos/internal.h"
#include "tests/kos-test.h"

static void test_placeholder(void)
{
	CU_FAIL("not written yet");
}

int main(void)
{
	static const struct kos_test_case cases[] = {
		KOS_TEST(test_placeholder),
	};

	return kos_test_run("signer", NULL, NULL, cases, KOS_ARRAY_SIZE(cases));
}
