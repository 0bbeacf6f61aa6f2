/* The credential authority's handle, shared by kos/ca.c (CA keys, clients,
 * enrollment secrets, threat level) and kos/cred.c (credentials: issue,
 * verify, refresh, revoke, the verification cache). Internal to libkos.
 *
 * What each process keeps in memory is a copy of the store's credential
 * state (CA public keys, revocations), tagged with the store's credential
 * revision. kos_ca_sync() refreshes the copy when the store signals a change
 * (kos_store_cred_hint(), an atomic load) or when the check interval has
 * passed, so a verification touches the store only when something changed.
 *
 * Locking: ca->lock (rwlock) guards the copy and the cache; ca->sync_lock
 * serialises refreshes of the copy. Neither is held across a token call;
 * the store is read under sync_lock only. */
#ifndef KOS_CA_H
#define KOS_CA_H

#include "kos/internal.h"
#include "kos/store_backend.h"

#include <openssl/types.h>
#include <pthread.h>
#include <stdatomic.h>

#define KOS_CA_LABEL_PREFIX "kos-ca:"
/* Retired CA keys verify this long past the longest lifetime + leeway: an
 * issuance that read the current key just before a rotation may still sign. */
#define KOS_CA_RETIRE_MARGIN (60 * KOS_USEC_PER_SEC)
/* Issuance evaluates the automatic threat level at most this often. */
#define KOS_THREAT_EVAL_INTERVAL (60 * KOS_USEC_PER_SEC)
#define KOS_CA_CHECK_DEFAULT	 KOS_USEC_PER_SEC

/* DER SubjectPublicKeyInfo of a P-256 key: 91 bytes. */
#define KOS_CA_SPKI_MAX 128

/* A CA public key in memory, parsed once per kid: a new copy of the store's
 * keys takes the EVP_PKEY of the old one when kid and SPKI are the same
 * (kos_ca_sync), so only a rotation parses a key. The key is only read:
 * verifications take a reference under ca->lock and use it without. */
struct ca_pub {
	char kid[KOS_CA_KID_LEN + 1];
	char token[KOS_TOKEN_NAME_MAX + 1]; /* where the key pair is, for signing */
	uint8_t spki[KOS_CA_SPKI_MAX];	    /* as the store holds it */
	size_t spki_len;
	EVP_PKEY *pkey;	  /* a P-256 key (kos_es256_key) */
	kos_usec expires; /* 0: the current key */
};

/* The revocations in force, sorted for bsearch. */
struct ca_revoked {
	char (*jti)[KOS_CRED_JTI_LEN + 1];
	size_t n_jti;
	struct ca_revoked_client {
		char client[65];
		kos_usec before;
	} * clients;
	size_t n_clients;
	kos_usec before; /* every credential issued at or before; 0: none */
};

/* A verified credential in the cache. It holds a keyed digest of the text,
 * never the text: a core dump or a read of kosd's memory finds no bearer
 * credential here, and the digest (HMAC-SHA256 under a per-handle random
 * key, compared in full) covers every byte of the token. */
struct cache_entry {
	uint8_t digest[32]; /* HMAC-SHA256 of the whole text */
	bool used;	    /* false: empty slot */
	char *scope;
	char sub[65];
	char jti[KOS_CRED_JTI_LEN + 1];
	char kid[KOS_CA_KID_LEN + 1];
	char x5t[KOS_CRED_X5T_LEN + 1];
	kos_usec iat, nbf, exp, auth_time;
	kos_cred_kind kind;
};

struct kos_ca {
	const struct kos_policy *pol;
	kos_store *st;
	kos_hsm *hsm;
	kos_trust *tr;
	kos_clock_fn clock;
	void *clock_arg;

	pthread_mutex_t sync_lock;
	_Atomic uint64_t hint_seen; /* store hint when last synced */
	_Atomic int64_t last_poll;  /* monotonic usec of the last store read */
	_Atomic int64_t interval;   /* kos_ca_set_revocation_check() */
	_Atomic int loaded;	    /* the copy was read at least once */
	uint64_t revision;	    /* of the copy; under sync_lock */
	_Atomic int64_t last_eval;  /* monotonic usec of the last threat evaluation */
	_Atomic int threat_on_issue; /* kos_ca_set_threat_on_issue(), default 1 */

	pthread_rwlock_t lock;
	struct ca_pub *keys;
	size_t n_keys;
	struct ca_revoked revoked;
	/* HMAC-SHA256 (RFC 2104) keyed with 256 random bits: the SHA-256
	 * states after the key's inner and outer pads, never used themselves:
	 * each digest of the cache is made on copies (a copy costs far less
	 * than keying, and the originals are only read, by any thread) */
	EVP_MD_CTX *cache_inner, *cache_outer;
	struct cache_entry *slots; /* open addressing, power-of-two capacity */
	size_t cap, count, bytes;
};

/* A JWKS verifier (kos_ca_new_from_jwks) takes at most this much text and
 * this many keys. */
#define KOS_CA_JWKS_MAX	 65536
#define KOS_CA_JWKS_KEYS 64

kos_usec kos_ca_now(const kos_ca *ca);
/* KOS_E_INVALID, for what a JWKS verifier (no store) cannot do. */
kos_rv kos_ca_no_store(void);
/* Monotonic microseconds (for intervals, never for validity). */
int64_t kos_ca_mono(void);
/* Brings the in-memory copy up to the store when it changed (force: read
 * the revision in any case). Errors: store failures. */
kos_rv kos_ca_sync(kos_ca *ca, bool force);
/* The longest credential lifetime the policy allows at any tier and level. */
kos_usec kos_ca_max_lifetime(const struct kos_policy *pol);
/* The threat level from the store, applied to ca->tr. */
kos_rv kos_ca_threat_level(kos_ca *ca, kos_threat *level);
/* Issuance's kos_ca_threat_tick(), unless kos_ca_set_threat_on_issue()
 * turned it off. */
void kos_ca_threat_tick_on_issue(kos_ca *ca);

/* Cache (cred.c); callers hold ca->lock for writing. */
void kos_ca_cache_clear(kos_ca *ca);
/* Drops cached credentials the current revocations cover. */
void kos_ca_cache_recheck(kos_ca *ca);
void kos_ca_revoked_free(struct ca_revoked *r);

#endif
