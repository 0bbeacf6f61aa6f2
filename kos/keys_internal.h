/* The key service's handle and what kos/keys.c, kos/keys_info.c,
 * kos/keys_shares.c and kos/keys_fsck.c share; the comment at the top of
 * kos/keys.c describes the service and its locking. Internal to libkos;
 * never installed. */
#ifndef KOS_KEYS_INTERNAL_H
#define KOS_KEYS_INTERNAL_H

#include "kos/internal.h"
#include "kos/store_backend.h"

#include <pthread.h>
#include <stdint.h>

#define SHARE_PREFIX "kos-share:"
#define SIGN_PREFIX  "kos-sign:"

#define SIGN_META_ENTRIES 16

struct sign_meta {
	uint64_t hash; /* 0: empty */
	kos_usec expires;
	char name[KOS_KEY_NAME_MAX + 1];
	kos_key_type type;
	uint32_t asked;   /* the version asked for; 0: the current one */
	uint32_t version; /* the version it is */
	size_t tok;
	char label[KOS_STORE_LABEL_MAX + 1];
};

struct kos_keys {
	kos_store *st;
	kos_hsm *hsm;
	kos_clock_fn clock;
	void *clock_arg;
	pthread_mutex_t lock;
	const kos_policy *pol;
	struct cache_entry *cache; /* CACHE_ENTRIES in a locked mapping */
	size_t cache_bytes;
	struct sign_meta meta[SIGN_META_ENTRIES];
	char creator[KOS_STORE_CREATOR_MAX + 1];
	unsigned inject_after;
	int inject_mode;
};

struct share_id {
	char name[KOS_KEY_NAME_MAX + 1];
	uint32_t version;
	char set[KOS_STORE_SET_NAME_MAX + 1];
	uint8_t x;
};

/* --- keys.c --- */

/* KOS_OK for a valid key name, else KOS_E_INVALID with a message. */
kos_rv kos_keys_check_name(const char *name);
uint64_t kos_keys_name_hash(const char *s);
bool kos_keys_parse_share_label(const char *label, struct share_id *id);
bool kos_keys_parse_sign_label(const char *label, char *name, uint32_t *version);
bool kos_keys_kcv_matches(const uint8_t *dek, const uint8_t kcv[KOS_KCV_LEN]);
kos_usec kos_keys_now(kos_keys *keys);
/* The DEK cache; both take keys->lock. */
bool kos_keys_cache_get(kos_keys *keys, const char *name, uint64_t h, uint32_t version,
			uint8_t dek[KOS_DEK_LEN], uint32_t *version_out);
void kos_keys_cache_put(kos_keys *keys, const char *name, uint32_t version, bool current,
			const uint8_t dek[KOS_DEK_LEN]);

/* --- keys_info.c --- */

/* The caller clears *v with kos_store_version_clear() on success. */
kos_rv kos_keys_dek_version(kos_keys *keys, const char *name, uint32_t version,
			    struct kos_store_version *v);

#endif
