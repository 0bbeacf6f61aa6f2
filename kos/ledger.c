/* The decision ledger: entry checks, append, list and the chain walk.
 * The encoding, hash and linking are kos/ledger_chain.c's; storage is the
 * store backends'. */
#include "config.h"

#include "kos/ledger_chain.h"
#include "kos/store_backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Entries read per page by list and verify: bounds their memory
 * (about 120 KiB) whatever the ledger's length. */
#define PAGE 256

static const char *const tiers[] = {"high", "medium", "low", "deny", "-"};
static const char *const outcomes[] = {"allowed", "refused", "failed"};

static bool field_char(unsigned char c, const struct kos_ledger_field *f)
{
	return c > 0x20 ? c < 0x7f : c == 0x20 && f->spaces;
}

static bool in_set(const char *s, const char *const *set, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(s, set[i]) == 0)
			return true;
	return false;
}

/* Checks entry i of a batch; the detail names the entry and the field. */
static kos_rv entry_check(const kos_ledger_entry *e, size_t i)
{
	size_t k, j, len;

	if (e->at < 0)
		return kos_error_set(KOS_E_INVALID,
				     "ledger entry %zu of the batch: time before 1970", i + 1);
	for (k = 0; k < KOS_LEDGER_FIELDS; k++) {
		const struct kos_ledger_field *f = &kos_ledger_fields[k];
		const char *s = kos_ledger_field_text(e, f);

		len = strnlen(s, f->size);
		if (len == f->size)
			return kos_error_set(KOS_E_INVALID,
					     "ledger entry %zu of the batch: %s longer than %zu "
					     "bytes",
					     i + 1, f->name, f->size - 1);
		if (len == 0 && !f->may_be_empty)
			return kos_error_set(
			    KOS_E_INVALID,
			    "ledger entry %zu of the batch: %s is empty (use \"-\" for none)",
			    i + 1, f->name);
		for (j = 0; j < len; j++)
			if (!field_char((unsigned char)s[j], f))
				return kos_error_set(
				    KOS_E_INVALID,
				    "ledger entry %zu of the batch: %s holds byte 0x%02x at %zu "
				    "(printable ASCII only%s)",
				    i + 1, f->name, (unsigned char)s[j], j,
				    f->spaces ? "" : ", no spaces");
	}
	if (!in_set(e->tier, tiers, KOS_ARRAY_SIZE(tiers)))
		return kos_error_set(KOS_E_INVALID,
				     "ledger entry %zu of the batch: tier '%s' is none of high, "
				     "medium, low, deny, -",
				     i + 1, e->tier);
	if (!in_set(e->outcome, outcomes, KOS_ARRAY_SIZE(outcomes)))
		return kos_error_set(KOS_E_INVALID,
				     "ledger entry %zu of the batch: outcome '%s' is none of "
				     "allowed, refused, failed",
				     i + 1, e->outcome);
	return KOS_OK;
}

/* Copies src into dst (size bytes) keeping only what the field may hold. */
static void sanitize(char *dst, size_t size, const char *src,
		     const struct kos_ledger_field *f)
{
	size_t i;

	memset(dst, 0, size);
	if (src == NULL || src[0] == '\0') {
		if (!f->may_be_empty)
			dst[0] = '-';
		return;
	}
	for (i = 0; i + 1 < size && src[i] != '\0'; i++)
		dst[i] = field_char((unsigned char)src[i], f) ? src[i] : '?';
}

void kos_ledger_entry_init(kos_ledger_entry *e, kos_usec at, const char *client, const char *action,
			   const char *resource, const char *tier, const char *outcome,
			   const char *reason, const char *jti)
{
	const char *src[KOS_LEDGER_FIELDS] = {client, action, resource, tier,
					      outcome, reason, jti};
	size_t k;

	if (e == NULL)
		return;
	memset(e, 0, sizeof(*e));
	e->at = at;
	for (k = 0; k < KOS_LEDGER_FIELDS; k++)
		sanitize((char *)e + kos_ledger_fields[k].off, kos_ledger_fields[k].size, src[k],
			 &kos_ledger_fields[k]);
}

kos_rv kos_ledger_append(kos_store *st, kos_ledger_entry *e, size_t n)
{
	kos_rv rv;

	if (st == NULL || (e == NULL && n > 0))
		return kos_error_set(KOS_E_INVALID, "kos_ledger_append: no store or no entries");
	if (n == 0)
		return KOS_OK;
	rv = kos_ledger_entries_check(e, n);
	if (rv != KOS_OK)
		return rv;
	rv = kos_store_ledger_append(st, e, n);
	if (rv != KOS_OK)
		kos_ledger_entries_unlink(e, n);
	return rv;
}

kos_rv kos_ledger_entries_check(const kos_ledger_entry *e, size_t n)
{
	size_t i;
	kos_rv rv;

	for (i = 0; i < n; i++) {
		rv = entry_check(&e[i], i);
		if (rv != KOS_OK)
			return rv;
	}
	return KOS_OK;
}

void kos_ledger_entries_unlink(kos_ledger_entry *e, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		e[i].seq = 0;
		memset(e[i].prev, 0, sizeof(e[i].prev));
		memset(e[i].hash, 0, sizeof(e[i].hash));
	}
}

kos_rv kos_ledger_head(kos_store *st, uint64_t *seq, uint8_t hash[KOS_LEDGER_HASH_LEN])
{
	uint8_t h[KOS_LEDGER_HASH_LEN];
	uint64_t s;
	kos_rv rv;

	if (st == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_ledger_head: no store");
	rv = kos_store_ledger_head(st, &s, h);
	if (rv != KOS_OK)
		return rv;
	if (seq != NULL)
		*seq = s;
	if (hash != NULL)
		memcpy(hash, h, sizeof(h));
	return KOS_OK;
}

/* A page buffer for list and verify: on the heap, as it is large. */
static kos_rv page_new(struct kos_store_ledger_row **rows)
{
	*rows = calloc(PAGE, sizeof(**rows));
	if (*rows == NULL)
		return kos_error_set(KOS_E_NOMEM, "ledger: out of memory");
	return KOS_OK;
}

kos_rv kos_ledger_list(kos_store *st, uint64_t from_seq, size_t limit, kos_ledger_fn fn, void *arg)
{
	struct kos_store_ledger_row *rows;
	size_t n, i, want;
	uint64_t next = from_seq == 0 ? 1 : from_seq;
	kos_rv rv;

	if (st == NULL || fn == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_ledger_list: no store or no callback");
	if (next > (uint64_t)INT64_MAX)
		return KOS_OK; /* no entry can have such a seq */
	rv = page_new(&rows);
	if (rv != KOS_OK)
		return rv;
	for (;;) {
		want = limit != 0 && limit < PAGE ? limit : PAGE;
		rv = kos_store_ledger_read(st, next, rows, want, &n);
		if (rv != KOS_OK)
			break;
		for (i = 0; i < n && rv == KOS_OK; i++)
			rv = fn(&rows[i].e, arg);
		if (rv != KOS_OK || n < want || rows[n - 1].e.seq >= (uint64_t)INT64_MAX)
			break;
		next = rows[n - 1].e.seq + 1;
		if (limit != 0) {
			limit -= n;
			if (limit == 0)
				break;
		}
	}
	free(rows);
	return rv;
}

/* Records the first bad entry in out and the thread's error detail. */
static kos_rv bad(kos_ledger_check *out, uint64_t seq, const char *fmt, ...) KOS_PRINTF(3, 4);

static kos_rv bad(kos_ledger_check *out, uint64_t seq, const char *fmt, ...)
{
	va_list ap;

	out->first_bad = seq;
	va_start(ap, fmt);
	vsnprintf(out->why, sizeof(out->why), fmt, ap);
	va_end(ap);
	return kos_error_set(KOS_E_INTEGRITY, "ledger entry %llu: %s", (unsigned long long)seq,
			     out->why);
}

/* Checks one row against the chain so far (out->head_*); on success it
 * becomes the head. */
static kos_rv check_row(const struct kos_store_ledger_row *r, kos_ledger_check *out)
{
	uint64_t expect = out->head_seq + 1;
	uint8_t h[KOS_LEDGER_HASH_LEN];
	kos_rv rv;

	if (r->e.seq != expect)
		return bad(out, expect, "missing entry %llu", (unsigned long long)expect);
	if (r->malformed)
		return bad(out, expect,
			   "malformed (a text too long or not text, a time not an integer, or a "
			   "hash not %d bytes)",
			   KOS_LEDGER_HASH_LEN);
	if (memcmp(r->e.prev, out->head_hash, KOS_LEDGER_HASH_LEN) != 0) {
		if (expect == 1)
			return bad(out, 1, "prev is not %d zero bytes", KOS_LEDGER_HASH_LEN);
		return bad(out, expect, "prev does not match entry %llu",
			   (unsigned long long)(expect - 1));
	}
	rv = kos_ledger_chain_hash(&r->e, h);
	if (rv != KOS_OK)
		return rv;
	if (memcmp(h, r->e.hash, sizeof(h)) != 0)
		return bad(out, expect, "hash does not match");
	out->checked++;
	out->head_seq = expect;
	memcpy(out->head_hash, h, sizeof(h));
	return KOS_OK;
}

kos_rv kos_ledger_verify(kos_store *st, kos_ledger_check *out)
{
	return kos_ledger_verify_progress(st, out, NULL, NULL);
}

kos_rv kos_ledger_verify_progress(kos_store *st, kos_ledger_check *out,
				  void (*fn)(uint64_t checked, void *arg), void *arg)
{
	struct kos_store_ledger_row *rows;
	size_t n, i;
	kos_rv rv;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (st == NULL || out == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_ledger_verify: no store or no result");
	rv = page_new(&rows);
	if (rv != KOS_OK)
		return rv;
	do {
		rv = kos_store_ledger_read(st, out->head_seq + 1, rows, PAGE, &n);
		for (i = 0; rv == KOS_OK && i < n; i++)
			rv = check_row(&rows[i], out);
		if (fn != NULL)
			fn(out->checked, arg);
	} while (rv == KOS_OK && n == PAGE);
	free(rows);
	return rv;
}
