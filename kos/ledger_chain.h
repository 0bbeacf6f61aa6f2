/* The ledger's hash chain (kos-ledger(5)): an entry's fields, their
 * canonical encoding and SHA-256 hash, and the linking of a batch after a
 * head. Pure computation on entries. It sits below both the ledger
 * (kos/ledger.c: checks, append, verify) and the store backends, which
 * link entries inside their append transaction, and calls neither: the
 * backends never call up into the ledger. Private to libkos-server.
 * Thread safety: every function is thread-safe (no state). */
#ifndef KOS_LEDGER_CHAIN_H
#define KOS_LEDGER_CHAIN_H

#include <kos/common.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KOS_LEDGER_HASH_LEN 32
/* The longest text of each field, in bytes (the arrays hold one more). */
#define KOS_LEDGER_CLIENT_MAX	64
#define KOS_LEDGER_ACTION_MAX	32
#define KOS_LEDGER_RESOURCE_MAX 128
#define KOS_LEDGER_TIER_MAX	7
#define KOS_LEDGER_OUTCOME_MAX	15
#define KOS_LEDGER_REASON_MAX	64
#define KOS_LEDGER_JTI_MAX	64

/* One decision. Text fields are NUL-terminated printable ASCII (0x20 to
 * 0x7e); all but reason are 1.. bytes without spaces, reason is 0.. bytes
 * and may hold spaces. tier is "high", "medium", "low", "deny" or "-";
 * outcome is "allowed", "refused" or "failed". "-" stands for "none" (no
 * authenticated client, no resource, no credential). */
typedef struct kos_ledger_entry {
	uint64_t seq; /* set by kos_ledger_append() */
	kos_usec at;  /* when the decision was made; >= 0 */
	char client[KOS_LEDGER_CLIENT_MAX + 1];
	char action[KOS_LEDGER_ACTION_MAX + 1];	    /* "sign", "decrypt", "enroll", ... */
	char resource[KOS_LEDGER_RESOURCE_MAX + 1]; /* the key, client or service concerned */
	char tier[KOS_LEDGER_TIER_MAX + 1];
	char outcome[KOS_LEDGER_OUTCOME_MAX + 1];
	char reason[KOS_LEDGER_REASON_MAX + 1]; /* why it was refused or failed, or "" */
	char jti[KOS_LEDGER_JTI_MAX + 1];	/* the credential's id */
	uint8_t prev[KOS_LEDGER_HASH_LEN];	/* set by append: the previous entry's hash */
	uint8_t hash[KOS_LEDGER_HASH_LEN];	/* set by append: SHA-256(prev || encoding) */
} kos_ledger_entry;

/* One text field of an entry, in encoding order: its name (for messages),
 * where it is in kos_ledger_entry and its array's size, whether it may be
 * empty, and whether it may hold spaces. */
struct kos_ledger_field {
	const char *name;
	size_t off, size;
	bool may_be_empty, spaces;
};

#define KOS_LEDGER_FIELDS 7
/* client, action, resource, tier, outcome, reason, jti */
extern const struct kos_ledger_field kos_ledger_fields[KOS_LEDGER_FIELDS];

/* The text of field f of e (NUL-terminated when e is well-formed). */
const char *kos_ledger_field_text(const kos_ledger_entry *e, const struct kos_ledger_field *f);

/* SHA-256(e->prev || encoding of e's seq, at and fields) into out. Texts
 * are taken up to their NUL or their longest length, so a malformed entry
 * read back still hashes (to something else). Errors: KOS_E_CRYPTO. */
kos_rv kos_ledger_chain_hash(const kos_ledger_entry *e, uint8_t out[KOS_LEDGER_HASH_LEN]);

/* Sets seq, prev and hash of e[0..n) as the entries following the head
 * (head_seq, head_hash: 0 and zeros for an empty ledger); the entries'
 * other fields must be set and are not checked here. Errors: KOS_E_RANGE
 * (no sequence numbers left), KOS_E_CRYPTO. */
kos_rv kos_ledger_chain_link(kos_ledger_entry *e, size_t n, uint64_t head_seq,
			     const uint8_t head_hash[KOS_LEDGER_HASH_LEN]);

/* What kos_ledger_append() checks of a batch before writing anything:
 * KOS_E_INVALID naming the entry and the field. */
kos_rv kos_ledger_entries_check(const kos_ledger_entry *e, size_t n);
/* Clears seq, prev and hash of entries that were not written, so that no
 * chain value looks real. */
void kos_ledger_entries_unlink(kos_ledger_entry *e, size_t n);

#endif
