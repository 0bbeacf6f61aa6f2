/* The envelope format (kos-envelope(5)):
 *
 *   "KOSE" | format version (1 byte) | name length (1 byte) | key name |
 *   key version (4 bytes, big endian) | nonce (12 bytes) | ciphertext | tag (16 bytes)
 *
 * The header (everything before the ciphertext) and then the caller's
 * context are the GCM additional data, so neither the key name and version
 * nor the context can be changed without the tag failing. */
#include "config.h"

#include "common/internal.h"
#include "common/envelope.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

static const uint8_t envelope_magic[4] = { 'K', 'O', 'S', 'E' };

#define HEADER_FIXED (4 + 1 + 1 + 4 + KOS_ENVELOPE_NONCE_LEN)

_Static_assert(KOS_ENVELOPE_KEY_LEN == KOS_AEAD_KEY_LEN &&
		       KOS_ENVELOPE_NONCE_LEN == KOS_AEAD_IV_LEN &&
		       KOS_ENVELOPE_TAG_LEN == KOS_AEAD_TAG_LEN,
	       "an envelope is AES-256-GCM with a 96-bit nonce and a 128-bit tag");

static int name_valid(const char *name, size_t n)
{
	size_t i;

	if (n == 0 || n > KOS_ENVELOPE_NAME_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c < 0x21 || c > 0x7e)
			return 0;
	}
	return 1;
}

static size_t context_len(const char *context)
{
	return context != NULL ? strnlen(context, KOS_ENVELOPE_CONTEXT_MAX + 1) : 0;
}

kos_rv kos_envelope_seal(const uint8_t key[KOS_ENVELOPE_KEY_LEN], const char *key_name,
			 uint32_t key_version, const char *context, const uint8_t *pt, size_t len,
			 uint8_t **env, size_t *env_len)
{
	size_t name_len, hdr_len, total, ctx_len;
	uint8_t *buf, *p;
	kos_rv rv;

	if (env == NULL || env_len == NULL)
		return kos_error_set(KOS_E_INVALID, "no output for the envelope");
	*env = NULL;
	*env_len = 0;
	if (key == NULL || key_name == NULL || (pt == NULL && len > 0))
		return kos_error_set(KOS_E_INVALID, "missing key, key name or plaintext");
	name_len = strnlen(key_name, KOS_ENVELOPE_NAME_MAX + 1);
	if (!name_valid(key_name, name_len))
		return kos_error_set(KOS_E_INVALID, "key name must be 1 to %d printable characters",
				     KOS_ENVELOPE_NAME_MAX);
	if (key_version == 0)
		return kos_error_set(KOS_E_INVALID, "key versions start at 1");
	if (len > KOS_ENVELOPE_MAX_PLAINTEXT)
		return kos_error_set(KOS_E_INVALID, "plaintext larger than %u bytes",
				     KOS_ENVELOPE_MAX_PLAINTEXT);
	ctx_len = context_len(context);
	if (ctx_len > KOS_ENVELOPE_CONTEXT_MAX)
		return kos_error_set(KOS_E_INVALID, "context longer than %d bytes",
				     KOS_ENVELOPE_CONTEXT_MAX);

	hdr_len = HEADER_FIXED + name_len;
	total = hdr_len + len + KOS_ENVELOPE_TAG_LEN;
	buf = malloc(total);
	if (buf == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	p = buf;
	memcpy(p, envelope_magic, 4);
	p += 4;
	*p++ = KOS_ENVELOPE_VERSION;
	*p++ = (uint8_t)name_len;
	memcpy(p, key_name, name_len);
	p += name_len;
	*p++ = (uint8_t)(key_version >> 24);
	*p++ = (uint8_t)(key_version >> 16);
	*p++ = (uint8_t)(key_version >> 8);
	*p++ = (uint8_t)key_version;
	/* A random 96-bit nonce per envelope: with 2^32 envelopes under one
	 * key version the collision chance stays below 2^-32 (NIST SP 800-38D);
	 * rotation keeps versions well below that. */
	if (RAND_bytes(p, KOS_ENVELOPE_NONCE_LEN) != 1) {
		free(buf);
		return kos_error_set(KOS_E_CRYPTO, "no randomness for the nonce");
	}
	rv = kos_aead_seal(NULL, key, p, buf, hdr_len, (const uint8_t *)context, ctx_len, pt, len,
			   buf + hdr_len, buf + hdr_len + len);
	if (rv != KOS_OK) {
		free(buf);
		return kos_error_set(rv, "AES-256-GCM encryption failed");
	}
	*env = buf;
	*env_len = total;
	return KOS_OK;
}

/* Parses the header; on success *hdr_len is where the ciphertext starts. */
static kos_rv parse_header(const uint8_t *env, size_t env_len, kos_envelope_info *info,
			   size_t *hdr_len)
{
	size_t name_len;
	const uint8_t *p;

	if (env == NULL || env_len < HEADER_FIXED + 1 + KOS_ENVELOPE_TAG_LEN)
		return kos_error_set(KOS_E_PARSE, "not a kos envelope: too short");
	if (memcmp(env, envelope_magic, 4) != 0)
		return kos_error_set(KOS_E_PARSE, "not a kos envelope: bad magic");
	if (env[4] != KOS_ENVELOPE_VERSION)
		return kos_error_set(KOS_E_PARSE, "unsupported envelope format version %u", env[4]);
	name_len = env[5];
	if (env_len < HEADER_FIXED + name_len + KOS_ENVELOPE_TAG_LEN)
		return kos_error_set(KOS_E_PARSE, "truncated envelope");
	if (!name_valid((const char *)env + 6, name_len))
		return kos_error_set(KOS_E_PARSE, "envelope names an invalid key");
	if (env_len - HEADER_FIXED - name_len - KOS_ENVELOPE_TAG_LEN > KOS_ENVELOPE_MAX_PLAINTEXT)
		return kos_error_set(KOS_E_PARSE, "envelope larger than the format allows");
	memcpy(info->key_name, env + 6, name_len);
	info->key_name[name_len] = '\0';
	p = env + 6 + name_len;
	info->key_version = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	if (info->key_version == 0)
		return kos_error_set(KOS_E_PARSE, "envelope names key version 0");
	*hdr_len = HEADER_FIXED + name_len;
	info->plaintext_len = env_len - *hdr_len - KOS_ENVELOPE_TAG_LEN;
	return KOS_OK;
}

kos_rv kos_envelope_parse(const uint8_t *env, size_t env_len, kos_envelope_info *info)
{
	size_t hdr_len;

	if (info == NULL)
		return kos_error_set(KOS_E_INVALID, "no output for the envelope header");
	return parse_header(env, env_len, info, &hdr_len);
}

kos_rv kos_envelope_open(const uint8_t key[KOS_ENVELOPE_KEY_LEN], const uint8_t *env,
			 size_t env_len, const char *context, uint8_t **pt, size_t *len)
{
	kos_envelope_info info;
	uint8_t tag[KOS_ENVELOPE_TAG_LEN];
	size_t hdr_len, ctx_len;
	uint8_t *out;
	kos_rv rv;

	if (pt == NULL || len == NULL)
		return kos_error_set(KOS_E_INVALID, "no output for the plaintext");
	*pt = NULL;
	*len = 0;
	if (key == NULL)
		return kos_error_set(KOS_E_INVALID, "no key");
	rv = parse_header(env, env_len, &info, &hdr_len);
	if (rv != KOS_OK)
		return rv;
	ctx_len = context_len(context);
	if (ctx_len > KOS_ENVELOPE_CONTEXT_MAX)
		return kos_error_set(KOS_E_INVALID, "context longer than %d bytes",
				     KOS_ENVELOPE_CONTEXT_MAX);
	out = malloc(info.plaintext_len + 1);
	if (out == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	memcpy(tag, env + env_len - KOS_ENVELOPE_TAG_LEN, sizeof(tag));
	rv = kos_aead_open(NULL, key, env + hdr_len - KOS_ENVELOPE_NONCE_LEN, env, hdr_len,
			   (const uint8_t *)context, ctx_len, env + hdr_len, info.plaintext_len, tag,
			   out);
	if (rv != KOS_OK) {
		kos_secret_free(out, info.plaintext_len + 1);
		if (rv == KOS_E_INTEGRITY)
			return kos_error_set(rv, "envelope for %s version %u failed authentication "
						 "(wrong key or context, or tampered)",
					     info.key_name, info.key_version);
		return kos_error_set(rv, "AES-256-GCM decryption failed");
	}
	*pt = out;
	*len = info.plaintext_len;
	return KOS_OK;
}
