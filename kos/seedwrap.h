/* Service seeds at rest: encrypted and decrypted inside the first ca-role
 * token by an AES-256 key that never leaves it (KOS_SERVICE_WRAP_LABEL).
 * Internal to libkos; kos/service.c builds on it. Thread safety: a
 * kos_seedwrap may be used from several threads (pooled sessions per token
 * as kos/hsm.h; the key-handle cache has its own lock, never held across a
 * module call).
 *
 * The wrapped form, as the store keeps it (kos-service(7)):
 *   format (1 byte, 1) | the wrapping key's CKA_ID (16) | IV (12) |
 *   ciphertext (32) | tag (16)
 * CKM_AES_GCM with "kos-service-seed-v1|NAME|VERSION" as the additional
 * data, so a wrapped seed moved to another service or version fails its tag.
 * Each wrapping key gets a random CKA_ID: two processes creating the key at
 * once leave two keys, and every wrapped seed still names the one it used. */
#ifndef KOS_SEEDWRAP_H
#define KOS_SEEDWRAP_H

#include "kos/hsm.h"
#include "kos/internal.h"

#define KOS_SEEDWRAP_LEN 77

typedef struct kos_seedwrap kos_seedwrap;

/* Over borrowed hsm. Errors: KOS_E_NOMEM. */
kos_rv kos_seedwrap_new(kos_hsm *hsm, kos_seedwrap **out);
/* NULL-safe. */
void kos_seedwrap_free(kos_seedwrap *sw);

/* Encrypts seed for name/version into wrapped (KOS_SEEDWRAP_LEN bytes),
 * generating the wrapping key first when the token has none. Errors:
 * KOS_E_NOTFOUND (no ca-role token), KOS_E_INTEGRITY (a key under the label
 * that is not a kos wrapping key), KOS_E_CRYPTO, token errors naming it. */
kos_rv kos_seedwrap_seal(kos_seedwrap *sw, const char *name, uint32_t version,
			 const uint8_t seed[KOS_SERVICE_SEED_LEN],
			 uint8_t wrapped[KOS_SEEDWRAP_LEN]);

/* Decrypts a wrapped seed of name/version; the caller wipes seed. Never
 * makes a key. Errors: KOS_E_INTEGRITY (unknown format, tag check failed:
 * damaged, or moved from another service or version), KOS_E_NOTFOUND (the
 * key that wrapped it is not on the token, or no ca-role token), token
 * errors naming it. */
kos_rv kos_seedwrap_open(kos_seedwrap *sw, const char *name, uint32_t version,
			 const uint8_t *wrapped, size_t wrapped_len,
			 uint8_t seed[KOS_SERVICE_SEED_LEN]);

#endif
