/* The service record channel (kos-service(7)): AES-256-GCM records under a
 * per-channel key, with counter nonces per direction.
 *
 *   version (1) | direction (4, BE) | counter (8, BE) | length (4, BE) |
 *   ciphertext (length) | tag (16)
 *
 * The nonce is direction || counter, so the two ends never share a nonce,
 * and the whole header is the additional data. Counters only go up: a
 * record at or below the last accepted counter is a replay or reordering.
 * A refused record leaves the channel as it was, so a forger cannot push the
 * counter forward or stall the channel. */
#include "config.h"

#include "kos/internal.h"

#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define RECORD_VERSION 1
#define NONCE_LEN      12
#define CHANNEL_INFO   "kos-service-v1|channel"

struct kos_channel {
	EVP_CIPHER_CTX *seal, *open; /* keyed once; the key lives only in them */
	uint32_t send_dir, recv_dir;
	uint64_t send_next; /* counter of the next record sealed */
	uint64_t recv_next; /* lowest counter still acceptable */
	bool send_done;	    /* the counter space is used up */
	bool recv_done;	    /* a record with the last counter was accepted */
	unsigned flags;
};

_Static_assert(NONCE_LEN == KOS_AEAD_IV_LEN && KOS_CHANNEL_TAG_LEN == KOS_AEAD_TAG_LEN,
	       "records are AES-256-GCM with a 96-bit nonce and a 128-bit tag");

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)(v >> 32));
	put32(p + 4, (uint32_t)v);
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) << 32 | get32(p + 4);
}

kos_rv kos_channel_id_random(uint8_t id[KOS_CHANNEL_ID_LEN])
{
	if (id == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_channel_id_random: no output");
	if (RAND_bytes(id, KOS_CHANNEL_ID_LEN) != 1)
		return kos_error_set(KOS_E_CRYPTO, "no random bytes from OpenSSL");
	return KOS_OK;
}

kos_rv kos_channel_new(const uint8_t enc[KOS_SERVICE_KEY_LEN], const uint8_t id[KOS_CHANNEL_ID_LEN],
		       kos_channel_role role, unsigned flags, kos_channel **out)
{
	uint8_t key[32];
	kos_channel *ch = NULL;
	kos_rv rv;

	if (out == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_channel_new: no output handle");
	*out = NULL;
	if (enc == NULL || id == NULL ||
	    (role != KOS_CHANNEL_INITIATOR && role != KOS_CHANNEL_RESPONDER) ||
	    (flags & ~KOS_CHANNEL_IN_ORDER) != 0)
		return kos_error_set(KOS_E_INVALID, "kos_channel_new: bad arguments");
	rv = kos_hkdf_sha256(id, KOS_CHANNEL_ID_LEN, enc, KOS_SERVICE_KEY_LEN,
			     (const uint8_t *)CHANNEL_INFO, strlen(CHANNEL_INFO), key, sizeof(key));
	if (rv != KOS_OK)
		return rv;
	ch = calloc(1, sizeof(*ch));
	if (ch == NULL) {
		rv = kos_error_set(KOS_E_NOMEM, "out of memory");
		goto out;
	}
	ch->seal = kos_aead_ctx_new(key);
	ch->open = kos_aead_ctx_new(key);
	if (ch->seal == NULL || ch->open == NULL) {
		rv = kos_error_set(KOS_E_CRYPTO, "cannot set up AES-256-GCM");
		goto out;
	}
	ch->send_dir = role == KOS_CHANNEL_INITIATOR ? 1 : 2;
	ch->recv_dir = role == KOS_CHANNEL_INITIATOR ? 2 : 1;
	ch->flags = flags;
	*out = ch;
	ch = NULL;
out:
	OPENSSL_cleanse(key, sizeof(key));
	kos_channel_free(ch);
	return rv;
}

void kos_channel_free(kos_channel *ch)
{
	if (ch == NULL)
		return;
	EVP_CIPHER_CTX_free(ch->seal); /* cleanses the key schedule */
	EVP_CIPHER_CTX_free(ch->open);
	OPENSSL_cleanse(ch, sizeof(*ch));
	free(ch);
}

static void header(uint8_t h[KOS_CHANNEL_HEADER_LEN], uint32_t dir, uint64_t counter, uint32_t len)
{
	h[0] = RECORD_VERSION;
	put32(h + 1, dir);
	put64(h + 5, counter);
	put32(h + 13, len);
}

kos_rv kos_channel_record_len(const uint8_t hdr[KOS_CHANNEL_HEADER_LEN], size_t *len)
{
	uint32_t n;

	if (hdr == NULL || len == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_channel_record_len: bad arguments");
	if (hdr[0] != RECORD_VERSION)
		return kos_error_set(KOS_E_PARSE, "record of unknown version %u", hdr[0]);
	n = get32(hdr + 13);
	if (n > KOS_CHANNEL_RECORD_MAX)
		return kos_error_set(KOS_E_PARSE, "record longer than %u bytes",
				     KOS_CHANNEL_RECORD_MAX);
	*len = KOS_CHANNEL_HEADER_LEN + (size_t)n + KOS_CHANNEL_TAG_LEN;
	return KOS_OK;
}

kos_rv kos_channel_seal(kos_channel *ch, const uint8_t *in, size_t len, uint8_t **rec,
			size_t *rec_len)
{
	uint8_t *buf, *h;
	size_t total;

	if (rec == NULL || rec_len == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_channel_seal: no output");
	*rec = NULL;
	*rec_len = 0;
	if (ch == NULL || (in == NULL && len > 0))
		return kos_error_set(KOS_E_INVALID, "kos_channel_seal: bad arguments");
	if (len > KOS_CHANNEL_RECORD_MAX)
		return kos_error_set(KOS_E_INVALID, "a record holds at most %u bytes",
				     KOS_CHANNEL_RECORD_MAX);
	if (ch->send_done)
		return kos_error_set(KOS_E_RANGE, "the channel's counter is used up: open a "
						  "new channel");
	total = KOS_CHANNEL_HEADER_LEN + len + KOS_CHANNEL_TAG_LEN;
	buf = malloc(total);
	if (buf == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	h = buf;
	header(h, ch->send_dir, ch->send_next, (uint32_t)len);
	/* nonce = direction || counter, which are header bytes 1..12 */
	if (kos_aead_seal(ch->seal, NULL, h + 1, h, KOS_CHANNEL_HEADER_LEN, NULL, 0, in, len,
			  buf + KOS_CHANNEL_HEADER_LEN, buf + KOS_CHANNEL_HEADER_LEN + len) != KOS_OK) {
		free(buf);
		return kos_error_set(KOS_E_CRYPTO, "AES-256-GCM encryption failed");
	}
	/* A nonce is spent even if the caller drops the record. */
	if (ch->send_next == UINT64_MAX)
		ch->send_done = true;
	else
		ch->send_next++;
	*rec = buf;
	*rec_len = total;
	return KOS_OK;
}

kos_rv kos_channel_open(kos_channel *ch, const uint8_t *rec, size_t rec_len, uint8_t **out,
			size_t *out_len)
{
	uint8_t tag[KOS_CHANNEL_TAG_LEN];
	uint8_t *buf = NULL;
	uint64_t counter;
	uint32_t dir;
	size_t want, len;
	kos_rv rv;

	if (out == NULL || out_len == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_channel_open: no output");
	*out = NULL;
	*out_len = 0;
	if (ch == NULL || rec == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_channel_open: bad arguments");
	if (rec_len < KOS_CHANNEL_HEADER_LEN + KOS_CHANNEL_TAG_LEN)
		return kos_error_set(KOS_E_PARSE, "record truncated (%zu bytes)", rec_len);
	rv = kos_channel_record_len(rec, &want);
	if (rv != KOS_OK)
		return rv;
	if (want != rec_len)
		return kos_error_set(KOS_E_PARSE, "record of %zu bytes says it has %zu", rec_len,
				     want);
	len = rec_len - KOS_CHANNEL_HEADER_LEN - KOS_CHANNEL_TAG_LEN;
	dir = get32(rec + 1);
	counter = get64(rec + 5);
	if (dir != ch->recv_dir)
		return kos_error_set(KOS_E_INTEGRITY, dir == ch->send_dir
							  ? "record of this end's own direction "
							    "(reflected)"
							  : "record of an unknown direction");
	if (ch->recv_done || counter < ch->recv_next)
		return kos_error_set(KOS_E_INTEGRITY,
				     "record %" PRIu64 " replayed or out of order "
				     "(next acceptable: %" PRIu64 ")",
				     counter, ch->recv_next);
	if ((ch->flags & KOS_CHANNEL_IN_ORDER) && counter != ch->recv_next)
		return kos_error_set(KOS_E_INTEGRITY,
				     "record %" PRIu64 " where %" PRIu64
				     " was due: records are missing",
				     counter, ch->recv_next);
	/* malloc(0) may return NULL: always ask for one byte more */
	buf = malloc(len + 1);
	if (buf == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	memcpy(tag, rec + KOS_CHANNEL_HEADER_LEN + len, KOS_CHANNEL_TAG_LEN);
	rv = kos_aead_open(ch->open, NULL, rec + 1, rec, KOS_CHANNEL_HEADER_LEN, NULL, 0,
			   rec + KOS_CHANNEL_HEADER_LEN, len, tag, buf);
	if (rv != KOS_OK) {
		kos_secret_free(buf, len + 1);
		if (rv == KOS_E_INTEGRITY)
			return kos_error_set(rv, "record %" PRIu64 " fails its tag check",
					     counter);
		return kos_error_set(KOS_E_CRYPTO, "AES-256-GCM decryption failed");
	}
	if (counter == UINT64_MAX)
		ch->recv_done = true;
	else
		ch->recv_next = counter + 1;
	*out = buf;
	*out_len = len;
	return KOS_OK;
}
