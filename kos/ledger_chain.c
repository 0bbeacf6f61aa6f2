/* The ledger's hash chain: the canonical encoding of an entry, its hash and
 * the linking of a batch (kos-ledger(5)). A leaf: libcrypto and the
 * error detail only, so the store backends can link inside their append
 * transaction without calling up into the ledger. */
#include "config.h"

#include "kos/ledger_chain.h"
#include "common/internal.h"

#include <string.h>

#include <openssl/evp.h>

/* The encoding's magic and format version (kos-ledger(5)). */
static const uint8_t ledger_magic[4] = {'K', 'O', 'S', 'L'};
#define LEDGER_FORMAT 1

#define AT(f) offsetof(kos_ledger_entry, f), sizeof(((kos_ledger_entry *)0)->f)
const struct kos_ledger_field kos_ledger_fields[KOS_LEDGER_FIELDS] = {
    {"client", AT(client), false, false},     {"action", AT(action), false, false},
    {"resource", AT(resource), false, false}, {"tier", AT(tier), false, false},
    {"outcome", AT(outcome), false, false},   {"reason", AT(reason), true, true},
    {"jti", AT(jti), false, false},
};
#undef AT

/* The largest encoding: magic, format, seq, at, and each field's length
 * and text. */
#define ENCODING_MAX                                                                               \
	(4 + 1 + 8 + 8 + 2 * KOS_LEDGER_FIELDS + KOS_LEDGER_CLIENT_MAX + KOS_LEDGER_ACTION_MAX +   \
	 KOS_LEDGER_RESOURCE_MAX + KOS_LEDGER_TIER_MAX + KOS_LEDGER_OUTCOME_MAX +                  \
	 KOS_LEDGER_REASON_MAX + KOS_LEDGER_JTI_MAX)

const char *kos_ledger_field_text(const kos_ledger_entry *e, const struct kos_ledger_field *f)
{
	return (const char *)e + f->off;
}

static uint8_t *put_u64(uint8_t *p, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--)
		*p++ = (uint8_t)(v >> (8 * i));
	return p;
}

kos_rv kos_ledger_chain_hash(const kos_ledger_entry *e, uint8_t out[KOS_LEDGER_HASH_LEN])
{
	uint8_t buf[KOS_LEDGER_HASH_LEN + ENCODING_MAX], *p = buf;
	unsigned int mdlen = 0;
	size_t k;

	memcpy(p, e->prev, KOS_LEDGER_HASH_LEN);
	p += KOS_LEDGER_HASH_LEN;
	memcpy(p, ledger_magic, sizeof(ledger_magic));
	p += sizeof(ledger_magic);
	*p++ = LEDGER_FORMAT;
	p = put_u64(p, e->seq);
	p = put_u64(p, (uint64_t)e->at);
	for (k = 0; k < KOS_LEDGER_FIELDS; k++) {
		const char *s = kos_ledger_field_text(e, &kos_ledger_fields[k]);
		/* within ENCODING_MAX even for an array without its NUL */
		size_t len = strnlen(s, kos_ledger_fields[k].size - 1);

		*p++ = (uint8_t)(len >> 8);
		*p++ = (uint8_t)len;
		memcpy(p, s, len);
		p += len;
	}
	if (EVP_Digest(buf, (size_t)(p - buf), out, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen != KOS_LEDGER_HASH_LEN)
		return kos_error_set(KOS_E_CRYPTO, "ledger: SHA-256 failed");
	return KOS_OK;
}

kos_rv kos_ledger_chain_link(kos_ledger_entry *e, size_t n, uint64_t head_seq,
			     const uint8_t head_hash[KOS_LEDGER_HASH_LEN])
{
	const uint8_t *prev = head_hash;
	size_t i;
	kos_rv rv;

	/* seq stays within SQLite's signed 64-bit integers */
	if (head_seq > (uint64_t)INT64_MAX || n > (uint64_t)INT64_MAX - head_seq)
		return kos_error_set(KOS_E_RANGE, "ledger: no sequence numbers left");
	for (i = 0; i < n; i++) {
		e[i].seq = head_seq + i + 1;
		memcpy(e[i].prev, prev, KOS_LEDGER_HASH_LEN);
		rv = kos_ledger_chain_hash(&e[i], e[i].hash);
		if (rv != KOS_OK)
			return rv;
		prev = e[i].hash;
	}
	return KOS_OK;
}
