/* Envelope encryption: the versioned ciphertext format of kos (kos-envelope(5)).
 * Thread safety: all functions are thread-safe. */
#ifndef KOS_ENVELOPE_H
#define KOS_ENVELOPE_H

#include <kos/common.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KOS_ENVELOPE_VERSION 1
#define KOS_ENVELOPE_KEY_LEN 32            /* AES-256 */
#define KOS_ENVELOPE_NONCE_LEN 12
#define KOS_ENVELOPE_TAG_LEN 16
#define KOS_ENVELOPE_NAME_MAX 64
#define KOS_ENVELOPE_MAX_PLAINTEXT (64u * 1024 * 1024)
#define KOS_ENVELOPE_CONTEXT_MAX 4096

/* What an envelope says about itself, readable without the key. */
typedef struct kos_envelope_info {
	char key_name[KOS_ENVELOPE_NAME_MAX + 1];
	uint32_t key_version;
	size_t plaintext_len;
} kos_envelope_info;

/* Encrypts len bytes with AES-256-GCM under key, naming key_name/version;
 * context (may be NULL: empty) is authenticated, not stored. *env is freed
 * with kos_free(). Errors: KOS_E_INVALID (name, version 0, sizes), KOS_E_CRYPTO,
 * KOS_E_NOMEM. */
KOS_API kos_rv kos_envelope_seal(const uint8_t key[KOS_ENVELOPE_KEY_LEN], const char *key_name,
				 uint32_t key_version, const char *context, const uint8_t *pt,
				 size_t len, uint8_t **env, size_t *env_len);

/* Parses the header: magic, format version, key name and version, sizes.
 * Errors: KOS_E_PARSE (truncated, bad magic, unknown format version, bad
 * name, oversized). */
KOS_API kos_rv kos_envelope_parse(const uint8_t *env, size_t env_len, kos_envelope_info *info);

/* Decrypts an envelope with key and the same context it was sealed with.
 * *pt (info.plaintext_len bytes; a 1-byte allocation when empty) is freed
 * with kos_secret_free(). Errors: KOS_E_PARSE (malformed), KOS_E_INTEGRITY
 * (wrong key, wrong context, tampered), KOS_E_NOMEM, KOS_E_CRYPTO. */
KOS_API kos_rv kos_envelope_open(const uint8_t key[KOS_ENVELOPE_KEY_LEN], const uint8_t *env,
				 size_t env_len, const char *context, uint8_t **pt, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
