/* The decision ledger: every decision kos makes (who asked for what, the
 * tier, the outcome; names only, never a secret) as an entry of a SHA-256
 * hash chain in the state store. Entries are numbered 1, 2, ... (seq); each
 * entry's hash covers the previous one's, so a changed, removed or
 * reordered entry breaks the chain from there on. Format: kos-ledger(5).
 * Thread safety: every function is thread-safe; appends from several
 * threads and processes on one store form one linear chain. */
#ifndef KOS_LEDGER_H
#define KOS_LEDGER_H

#include <kos/common.h>
#include <kos/store.h>

/* the entry, its limits and its hash chain */
#include "kos/ledger_chain.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Fills e for a decision from untrusted text: clears it, sets at, and
 * copies each string with every byte a field may not hold (controls, non-
 * ASCII, and spaces outside reason) replaced by '?', cut to the field's
 * size; NULL or "" becomes "-" (reason: ""). tier and outcome are not
 * checked here: kos_ledger_append() refuses values outside their sets. */
KOS_API void kos_ledger_entry_init(kos_ledger_entry *e, kos_usec at, const char *client,
				   const char *action, const char *resource, const char *tier,
				   const char *outcome, const char *reason, const char *jti);

/* Appends e[0..n) after the ledger's head, in order, in ONE store
 * transaction: all n are written or none. On success each e[i]'s seq, prev
 * and hash are set. Every entry is checked first: one invalid entry refuses
 * the batch with KOS_E_INVALID, its index and field in kos_last_error(),
 * and nothing written. n == 0 does nothing. Errors: KOS_E_INVALID,
 * KOS_E_RANGE (seq exhausted), KOS_E_STORE, KOS_E_BUSY, KOS_E_NOMEM,
 * KOS_E_CRYPTO. */
KOS_API kos_rv kos_ledger_append(kos_store *st, kos_ledger_entry *e, size_t n);

/* The last entry's seq and hash; 0 and 32 zero bytes for an empty ledger.
 * Either output may be NULL. Errors: KOS_E_INVALID, KOS_E_STORE. */
KOS_API kos_rv kos_ledger_head(kos_store *st, uint64_t *seq, uint8_t hash[KOS_LEDGER_HASH_LEN]);

/* Called by kos_ledger_list() for each entry, outside the store's lock (it
 * may use the store); a non-zero return stops the listing and is returned. */
typedef int (*kos_ledger_fn)(const kos_ledger_entry *e, void *arg);

/* Calls fn for the entries with seq >= from_seq, ascending, at most limit
 * of them (0: no limit), as stored: nothing is checked (see
 * kos_ledger_verify()). Reads in pages: memory stays bounded however long
 * the ledger. Errors: KOS_E_INVALID, KOS_E_STORE, or fn's value. */
KOS_API kos_rv kos_ledger_list(kos_store *st, uint64_t from_seq, size_t limit, kos_ledger_fn fn,
			       void *arg);

/* What kos_ledger_verify() found. */
typedef struct kos_ledger_check {
	uint64_t checked;			/* entries found intact, from seq 1 on */
	uint64_t head_seq;			/* the last intact entry's seq; 0: none */
	uint8_t head_hash[KOS_LEDGER_HASH_LEN]; /* and its hash; zeros: none */
	uint64_t first_bad; /* the first bad (or missing) entry's seq; 0: none */
	char why[128];	    /* why it is bad; "" when intact */
} kos_ledger_check;

/* Walks the ledger from seq 1, streaming (bounded memory): each entry must
 * have the next seq ("missing entry N" otherwise), its prev must be the
 * previous entry's hash ("prev does not match entry N"; 32 zero bytes for
 * entry 1), and its hash must be SHA-256(prev || encoding) ("hash does not
 * match"). KOS_OK when the chain is intact; KOS_E_INTEGRITY at the first
 * bad entry, out filled and "ledger entry N: why" in kos_last_error(). A
 * chain cut short after its last entry cannot be told from a shorter one:
 * compare the head with one recorded elsewhere. Errors: KOS_E_INVALID,
 * KOS_E_INTEGRITY, KOS_E_STORE, KOS_E_CRYPTO. */
KOS_API kos_rv kos_ledger_verify(kos_store *st, kos_ledger_check *out);
/* kos_ledger_verify() that calls fn (may be NULL) with the entries found
 * intact so far after each page it read, for a progress display. */
KOS_API kos_rv kos_ledger_verify_progress(kos_store *st, kos_ledger_check *out,
					  void (*fn)(uint64_t checked, void *arg), void *arg);

#ifdef __cplusplus
}
#endif
#endif
