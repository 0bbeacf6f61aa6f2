/* ledger-seed STORE N [BATCH]: appends N made-up decisions to the ledger of
 * state store STORE through kos_ledger_append(), BATCH (default 100) per
 * call, and prints the new head as "SEQ HASH". For the shell tests, which
 * have no other way to write entries until kosd records its decisions.
 * Entry i (from 0) is: client client-(i%5), action sign or decrypt,
 * resource key-(i%7), tier high/medium/low/deny/- by i%5, outcome
 * allowed/refused/failed by i%3 (refusals "trust too low"), jti jti-i, at
 * 2026-01-01T00:00:00Z plus i seconds. */
#include "config.h"

#include <kos/server.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int number(const char *s, unsigned long *out)
{
	char *end;

	*out = strtoul(s, &end, 10);
	return s[0] >= '0' && s[0] <= '9' && *end == '\0' && *out > 0 && *out <= 1000000;
}

int main(int argc, char **argv)
{
	static const char *const tiers[] = {"high", "medium", "low", "deny", "-"};
	static const char *const outcomes[] = {"allowed", "refused", "failed"};
	kos_ledger_entry *e;
	kos_store *st = NULL;
	unsigned long n, batch = 100, i = 0, k;
	uint8_t hash[KOS_LEDGER_HASH_LEN];
	uint64_t head;
	kos_rv rv;

	if (argc < 3 || argc > 4 || !number(argv[2], &n) ||
	    (argc == 4 && !number(argv[3], &batch))) {
		fprintf(stderr, "usage: ledger-seed STORE N [BATCH] (1 to 1000000)\n");
		return 2;
	}
	e = calloc(batch, sizeof(*e));
	if (e == NULL)
		return 1;
	rv = kos_store_open(argv[1], &st);
	while (rv == KOS_OK && i < n) {
		for (k = 0; k < batch && i + k < n; k++) {
			unsigned long j = i + k;
			char client[32], resource[32], jti[32];

			snprintf(client, sizeof(client), "client-%lu", j % 5);
			snprintf(resource, sizeof(resource), "key-%lu", j % 7);
			snprintf(jti, sizeof(jti), "jti-%lu", j);
			kos_ledger_entry_init(
			    &e[k], INT64_C(1767225600000000) + (kos_usec)j * 1000000, client,
			    j % 2 ? "sign" : "decrypt", resource, tiers[j % 5], outcomes[j % 3],
			    j % 3 == 1 ? "trust too low" : "", jti);
		}
		rv = kos_ledger_append(st, e, k);
		i += k;
	}
	if (rv == KOS_OK)
		rv = kos_ledger_head(st, &head, hash);
	if (rv != KOS_OK) {
		fprintf(stderr, "ledger-seed: %s\n", kos_last_error());
	} else {
		printf("%llu ", (unsigned long long)head);
		for (k = 0; k < sizeof(hash); k++)
			printf("%02x", hash[k]);
		printf("\n");
	}
	kos_store_free(st);
	free(e);
	return rv == KOS_OK ? 0 : 1;
}
