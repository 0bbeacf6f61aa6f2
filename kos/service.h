/* Service tokens for ephemeral microservices (kos-service(7)): a random seed
 * per service kept encrypted by a key inside an HSM token, HKDF-SHA256 keys
 * per service, operation and time window, HMAC-authenticated service tokens,
 * and a small AES-256-GCM record channel under the derived encryption key.
 * Thread safety: a kos_services handle may be used from several threads
 * (set the clock before they start); a kos_channel belongs to one thread at a
 * time; kos_hkdf_sha256() and the kos_service_*_from_seed() helpers are
 * thread-safe. */
#ifndef KOS_SERVICE_H
#define KOS_SERVICE_H

#include <kos/backend.h>
#include <kos/common.h>
#include <kos/store.h>
#include <kos/trust.h>

#ifdef __cplusplus
extern "C" {
#endif

/* --- HKDF (RFC 5869) ------------------------------------------------------ */

/* HKDF-SHA256 extract-and-expand through OpenSSL's EVP_KDF "HKDF": len
 * (1..8160) bytes of output keying material into out. salt may be empty
 * (RFC 5869 then uses 32 zero bytes), info 0..1024 bytes, ikm 1 byte or more.
 * Errors: KOS_E_INVALID (lengths), KOS_E_CRYPTO. */
KOS_API kos_rv kos_hkdf_sha256(const uint8_t *salt, size_t salt_len, const uint8_t *ikm,
			       size_t ikm_len, const uint8_t *info, size_t info_len, uint8_t *out,
			       size_t len);

/* --- services --------------------------------------------------------------- */

#define KOS_SERVICE_NAME_MAX  64  /* 1..64 of [A-Za-z0-9._-], not starting with . or - */
#define KOS_SERVICE_OP_MAX    64  /* an operation: 1..64 of [A-Za-z0-9._:-] */
#define KOS_SERVICE_OPS_MAX   511 /* the comma-separated list, at most 32 operations */
#define KOS_SERVICE_OPS_COUNT 32
#define KOS_SERVICE_SEED_LEN  32
#define KOS_SERVICE_KEY_LEN   32
#define KOS_SERVICE_TOKEN_MAX 1024 /* longer token texts are refused unread */
/* Window lengths are whole seconds in [MIN, MAX]. */
#define KOS_SERVICE_WINDOW_DEFAULT (300 * KOS_USEC_PER_SEC)
#define KOS_SERVICE_WINDOW_MIN	   KOS_USEC_PER_SEC
#define KOS_SERVICE_WINDOW_MAX	   (86400 * KOS_USEC_PER_SEC)
/* Seed age after which kos_services_rotate_due() rotates, by default. */
#define KOS_SERVICE_ROTATION_DEFAULT (7 * 86400 * KOS_USEC_PER_SEC)
/* The CKA_LABEL of the AES-256 key, on the first ca-role token, that
 * encrypts every service seed. */
#define KOS_SERVICE_WRAP_LABEL "kos-wrap:services"

typedef struct kos_services kos_services;

/* What the store holds about a service; never the seed. */
typedef struct kos_service_info {
	char name[KOS_SERVICE_NAME_MAX + 1];
	char ops[KOS_SERVICE_OPS_MAX + 1]; /* "op1,op2" */
	uint32_t seed_version;		   /* 1, then one more per rotation */
	kos_usec created;
	kos_usec rotated; /* when the current seed was made */
} kos_service_info;

/* The three keys of one service, operation and window. Secret: wipe with
 * kos_service_keys_clear(). */
typedef struct kos_service_keys {
	uint8_t auth[KOS_SERVICE_KEY_LEN];  /* HMAC-SHA256 key of service tokens */
	uint8_t authz[KOS_SERVICE_KEY_LEN]; /* for the service's own authorization proofs */
	uint8_t enc[KOS_SERVICE_KEY_LEN];   /* the channel key (kos_channel_new()) */
	uint32_t seed_version;
	uint64_t window; /* floor(time in seconds / window length) */
	kos_usec window_len;
} kos_service_keys;

/* What a valid service token says. Times are whole seconds as microseconds. */
typedef struct kos_service_claims {
	char service[KOS_SERVICE_NAME_MAX + 1];
	char op[KOS_SERVICE_OP_MAX + 1];
	uint64_t window;
	kos_usec window_len;
	uint32_t seed_version;
	kos_usec issued;
	kos_usec expires;
} kos_service_claims;

/* Opens the service orchestrator over borrowed st and hsm (both must outlive
 * it). The wrapping key lives on the first token of role ca; it is looked up
 * (and on the first register created) when needed, not here.
 * Errors: KOS_E_INVALID, KOS_E_NOMEM. */
KOS_API kos_rv kos_services_new(kos_store *st, kos_hsm *hsm, kos_services **out);
/* NULL-safe. */
KOS_API void kos_services_free(kos_services *svc);
/* Replaces the clock (NULL: kos_now); not while other threads use svc. */
KOS_API void kos_services_set_clock(kos_services *svc, kos_clock_fn fn, void *arg);

/* 1 when name is a valid service name; 1 when ops is a valid operation list
 * (1..32 distinct operations, comma-separated, no spaces); 1 when op is one
 * valid operation name. */
KOS_API int kos_service_name_valid(const char *name);
KOS_API int kos_service_ops_valid(const char *ops);
KOS_API int kos_service_op_valid(const char *op);

/* Registers name with operations ops and a fresh random seed (version 1),
 * encrypted inside the token; the wrapping key is generated there first when
 * it does not exist. Not atomic against a concurrent register of the same
 * name. Errors: KOS_E_INVALID (name, ops), KOS_E_EXISTS, KOS_E_NOTFOUND (no
 * ca-role token), token and store errors. */
KOS_API kos_rv kos_service_register(kos_services *svc, const char *name, const char *ops);
/* Replaces the operation list; tokens for a removed operation stop
 * validating at once. Errors: KOS_E_INVALID, KOS_E_NOTFOUND, store errors. */
KOS_API kos_rv kos_service_set_ops(kos_services *svc, const char *name, const char *ops);
/* Forgets a service and its wrapped seed. KOS_E_NOTFOUND when unknown. */
KOS_API kos_rv kos_service_remove(kos_services *svc, const char *name);

KOS_API kos_rv kos_service_get_info(kos_services *svc, const char *name, kos_service_info *info);
/* In the store's order; stops at the first non-zero return of fn and
 * returns it. */
KOS_API kos_rv kos_service_list(kos_services *svc,
				int (*fn)(const kos_service_info *info, void *arg), void *arg);

/* kos_service_rotate() flags. */
/* The seed is believed exposed: rotate whatever the seed's age, and do not
 * read the old seed at all (so a damaged wrapped seed cannot block it). */
#define KOS_SERVICE_ROTATE_BREACH 0x1u

/* Replaces the seed by a fresh one (version + 1); the old wrapped seed is
 * overwritten in the same store write, so every token and key of the old
 * version stops validating at once. *new_version (may be NULL) receives the
 * new version. Errors: KOS_E_NOTFOUND, token and store errors. */
KOS_API kos_rv kos_service_rotate(kos_services *svc, const char *name, unsigned flags,
				  uint32_t *new_version);
/* Rotates every service whose seed is at least interval old (0:
 * KOS_SERVICE_ROTATION_DEFAULT); fn (may be NULL) hears of each. Stops at
 * the first failure. */
KOS_API kos_rv kos_services_rotate_due(kos_services *svc, kos_usec interval,
				       void (*fn)(const char *name, uint32_t version, void *arg),
				       void *arg);

/* The window of time t: floor(t in whole seconds / window_len in seconds).
 * window_len must be valid (KOS_E_RANGE). */
KOS_API kos_rv kos_service_window(kos_usec t, kos_usec window_len, uint64_t *window);

/* The three keys of name, op (a registered operation) and window under the
 * current seed; the seed is decrypted inside the token for the call and
 * wiped after. window_len 0 means KOS_SERVICE_WINDOW_DEFAULT.
 * Errors: KOS_E_NOTFOUND, KOS_E_POLICY (op not registered), KOS_E_RANGE
 * (window_len), KOS_E_INTEGRITY (the wrapped seed fails its tag), token
 * errors. */
KOS_API kos_rv kos_service_derive(kos_services *svc, const char *name, const char *op,
				  uint64_t window, kos_usec window_len, kos_service_keys *keys);
/* The same derivation from a seed the caller holds (for other
 * implementations' tests and kos-service(7)'s example). */
KOS_API kos_rv kos_service_derive_from_seed(const uint8_t seed[KOS_SERVICE_SEED_LEN],
					    const char *name, const char *op, uint64_t window,
					    kos_usec window_len, kos_service_keys *keys);
KOS_API void kos_service_keys_clear(kos_service_keys *keys);

/* Issues a token for name and op (registered) in the current window:
 * valid for ttl (0: one window length; at most one window length), so it
 * outlives its window by at most one window. window_len 0:
 * KOS_SERVICE_WINDOW_DEFAULT. *token is NUL-terminated text, a bearer
 * credential: free it with kos_secret_free(*token, strlen(*token)).
 * Errors: as kos_service_derive(), KOS_E_RANGE (ttl). */
KOS_API kos_rv kos_service_token_issue(kos_services *svc, const char *name, const char *op,
				       kos_usec window_len, kos_usec ttl, char **token);

/* Checks a token: the form and size, the service is registered, the seed
 * version is the current one, the HMAC under the re-derived authentication
 * key (constant-time), the claims agree with each other, not expired, the
 * window is the current or the previous one, the operation is registered
 * and, when op is not NULL, is op. claims (may be NULL) receives the claims
 * of a valid token. The reason of a refusal is in kos_last_error(); the
 * token text is never put there.
 * Errors: KOS_E_PARSE (malformed), KOS_E_NOTFOUND (unknown service),
 * KOS_E_INTEGRITY (bad MAC or inconsistent claims), KOS_E_RANGE (expired,
 * window not current, seed rotated), KOS_E_POLICY (operation not registered
 * or not op), token and store errors. */
KOS_API kos_rv kos_service_token_validate(kos_services *svc, const char *token, const char *op,
					  kos_service_claims *claims);

/* --- the record channel ------------------------------------------------------
 * Two peers holding the same encryption key and channel id exchange records
 *   version (1 byte, 1) | direction (4, big endian) | counter (8, big endian) |
 *   length (4, big endian) | ciphertext (length bytes) | GCM tag (16)
 * sealed with AES-256-GCM under a per-channel key, nonce = direction ||
 * counter, the 17-byte header as additional data. Each direction counts
 * from 0; a receiver refuses a counter not above the last it accepted. */

#define KOS_CHANNEL_ID_LEN     16
#define KOS_CHANNEL_HEADER_LEN 17
#define KOS_CHANNEL_TAG_LEN    16
#define KOS_CHANNEL_RECORD_MAX (1u << 20) /* plaintext bytes per record */

typedef struct kos_channel kos_channel;

typedef enum kos_channel_role {
	KOS_CHANNEL_INITIATOR = 1, /* sends direction 1, receives direction 2 */
	KOS_CHANNEL_RESPONDER = 2, /* sends direction 2, receives direction 1 */
} kos_channel_role;

/* kos_channel_new() flags. */
/* Refuse gaps too: every record must carry exactly the next counter (for
 * reliable streams, where a missing record means one was deleted). Without
 * it counters need only increase (datagrams may be lost). */
#define KOS_CHANNEL_IN_ORDER 0x1u

/* A fresh random channel id; the initiator sends it to the responder. */
KOS_API kos_rv kos_channel_id_random(uint8_t id[KOS_CHANNEL_ID_LEN]);
/* Opens one end of the channel id under enc (kos_service_keys.enc). The
 * per-channel key is HKDF-SHA256(salt = id, ikm = enc,
 * info = "kos-service-v1|channel"), so two channels under one enc key never
 * share a nonce; never reuse an id with the same key. The key is not kept
 * outside OpenSSL's cipher contexts. Errors: KOS_E_INVALID, KOS_E_NOMEM,
 * KOS_E_CRYPTO. */
KOS_API kos_rv kos_channel_new(const uint8_t enc[KOS_SERVICE_KEY_LEN],
			       const uint8_t id[KOS_CHANNEL_ID_LEN], kos_channel_role role,
			       unsigned flags, kos_channel **out);
/* NULL-safe; wipes the keys. */
KOS_API void kos_channel_free(kos_channel *ch);
/* Seals len (0..KOS_CHANNEL_RECORD_MAX) bytes as the next record; *rec
 * (*rec_len bytes) is freed with kos_free(). Errors: KOS_E_INVALID,
 * KOS_E_RANGE (the counter is exhausted: open a new channel), KOS_E_NOMEM,
 * KOS_E_CRYPTO. */
KOS_API kos_rv kos_channel_seal(kos_channel *ch, const uint8_t *in, size_t len, uint8_t **rec,
				size_t *rec_len);
/* Opens one whole record from the peer; *out (*out_len bytes, possibly 0) is
 * freed with kos_secret_free(*out, *out_len). A refused record changes
 * nothing. Errors: KOS_E_PARSE (truncated, bad version, length mismatch),
 * KOS_E_INTEGRITY (from this end's own direction, replayed or reordered,
 * with IN_ORDER a gap, tag check failed), KOS_E_NOMEM, KOS_E_CRYPTO. */
KOS_API kos_rv kos_channel_open(kos_channel *ch, const uint8_t *rec, size_t rec_len, uint8_t **out,
				size_t *out_len);
/* For stream framing: the whole length of the record whose header is hdr.
 * Errors: KOS_E_PARSE (bad version, length over the maximum). */
KOS_API kos_rv kos_channel_record_len(const uint8_t hdr[KOS_CHANNEL_HEADER_LEN], size_t *len);

#ifdef __cplusplus
}
#endif
#endif
