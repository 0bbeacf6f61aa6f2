/* The Credential Authority: short-lived scoped credentials (JWS compact JWTs,
 * ES256) signed by a CA key inside an HSM token; enrollment with one-time
 * secrets, refresh, revocation, the threat level. Formats: kos-credential(5).
 * Thread safety: a kos_ca may be used from several threads; several
 * processes may share one store (a revocation made by one is seen by the
 * others at their next verification, see kos_ca_set_revocation_check()); a
 * handle does not cross fork(): the child opens its own, as for the store. */
#ifndef KOS_CRED_H
#define KOS_CRED_H

#include <kos/backend.h>
#include <kos/common.h>
#include <kos/policy.h>
#include <kos/store.h>
#include <kos/trust.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kos_ca kos_ca;

#define KOS_CA_KID_LEN	    22	 /* a kid: 128 random bits, base64url */
#define KOS_CRED_JTI_LEN    22	 /* a jti: 128 random bits, base64url */
#define KOS_CRED_X5T_LEN    43	 /* x5t#S256: SHA-256 of a DER certificate, base64url */
#define KOS_CRED_SECRET_LEN 43	 /* an enrollment secret: 256 random bits, base64url */
#define KOS_CRED_NAME_MAX   255	 /* iss and aud (policy credentials.issuer/audience) */

/* Why a credential was refused (kos_cred_reason_name() gives the words a
 * client and the ledger see). */
typedef enum kos_cred_reason {
	KOS_CRED_VALID = 0,
	KOS_CRED_MALFORMED,	 /* "invalid credential": size, base64url, JSON, claims */
	KOS_CRED_BAD_ALG,	 /* "invalid credential": alg is not ES256 */
	KOS_CRED_UNKNOWN_KID,	 /* "invalid credential": no such CA key (or it expired) */
	KOS_CRED_BAD_SIGNATURE,	 /* "invalid credential": the signature does not verify */
	KOS_CRED_EXPIRED,	 /* "expired" */
	KOS_CRED_NOT_YET_VALID,	 /* "not yet valid": nbf or iat in the future */
	KOS_CRED_WRONG_ISSUER,	 /* "wrong issuer" */
	KOS_CRED_WRONG_AUDIENCE, /* "wrong audience" */
	KOS_CRED_REVOKED,	 /* "revoked" */
	KOS_CRED_WRONG_CERT,	 /* "certificate mismatch": cnf binding not met */
	KOS_CRED_ERROR,		 /* not judged: a store or memory failure */
} kos_cred_reason;

/* What a verified token is (its "kos_kind" claim, kos-credential(5)): a
 * credential, or a grant for one share that only kos_cred_issue_grant()
 * makes and only the share route (POST /v1/shares/fetch) accepts. */
typedef enum kos_cred_kind {
	KOS_CRED_KIND_CREDENTIAL = 0, /* no "kos_kind" claim */
	KOS_CRED_KIND_GRANT,	      /* "kos_kind": "grant" */
} kos_cred_kind;

/* What a valid credential says. Times are microseconds since the epoch
 * (whole seconds in the token). */
typedef struct kos_cred_claims {
	char iss[KOS_CRED_NAME_MAX + 1];
	char aud[KOS_CRED_NAME_MAX + 1];
	char sub[65]; /* the client */
	char jti[KOS_CRED_JTI_LEN + 1];
	char kid[KOS_CA_KID_LEN + 1];	/* the CA key that signed it */
	char scope[4097];		/* KOS_SCOPE_MAX + 1 */
	char x5t[KOS_CRED_X5T_LEN + 1]; /* cnf x5t#S256, "" for a bearer credential */
	kos_usec iat, nbf, exp;
	kos_usec auth_time; /* first issuance of the refresh chain */
	kos_cred_kind kind; /* a grant is never accepted as a credential */
} kos_cred_claims;

/* A CA key as listed by kos_ca_list(). */
typedef struct kos_ca_key_info {
	char kid[KOS_CA_KID_LEN + 1];
	char token[33];	 /* the ca token holding the key pair */
	char label[129]; /* its CKA_LABEL */
	kos_usec created;
	kos_usec retired; /* 0: the current key */
	kos_usec expires; /* retired keys: verification ends then; 0 for the current */
} kos_ca_key_info;

typedef struct kos_ca_client_info {
	char name[65];
	char scope[4097];
	kos_usec created;
	int disabled;		 /* no credential is issued or refreshed */
	kos_usec secret_expires; /* the unused enrollment secret's expiry; 0: none pending */
} kos_ca_client_info;

typedef struct kos_revocation_info {
	char kind[8];	 /* "jti", "client" or "before" */
	char value[65];	 /* the jti or the client; "" for "before" */
	kos_usec before; /* client, before: credentials issued in this second or earlier */
	kos_usec created;
	kos_usec expires; /* pruned after this: every credential it covers has expired */
} kos_revocation_info;

typedef struct kos_threat_info {
	kos_threat level;
	kos_usec since;	  /* when it was set; 0: never set (normal) */
	int automatic;	  /* 1 when raised by kos_threat_evaluate() */
	char reason[256]; /* why; "" when never set */
} kos_threat_info;

/* --- the authority ------------------------------------------------------ */

/* Opens the authority over borrowed pol, st, hsm and tr (they must outlive
 * it). hsm may be NULL for a verifier that never signs (front-ends): then
 * every call that signs or makes keys returns KOS_E_INVALID. Nothing is
 * read until the first call. Errors: KOS_E_INVALID, KOS_E_NOMEM. */
KOS_API kos_rv kos_ca_new(const kos_policy *pol, kos_store *st, kos_hsm *hsm, kos_trust *tr,
			  kos_ca **out);
/* A verify-only authority for a KMS front on another machine: the CA's
 * public keys come from jwks, the JWKS document kos_ca_jwks() writes (EC
 * P-256 ES256 keys with kos kids; at most 64 KiB and 64 keys); pol (borrowed,
 * must outlive it) gives iss, aud and leeway. kos_cred_verify() then checks
 * everything but revocation, which lives in the store it does not have: use
 * it for credentials that live seconds (grants). Every other call returns
 * KOS_E_INVALID. Errors: KOS_E_PARSE (naming the bad key), KOS_E_RANGE,
 * KOS_E_INVALID, KOS_E_NOMEM. */
KOS_API kos_rv kos_ca_new_from_jwks(const kos_policy *pol, const char *jwks, kos_ca **out);
/* Frees the authority and its verification cache; NULL-safe. */
KOS_API void kos_ca_free(kos_ca *ca);
/* Replaces the clock (default kos_now; fn NULL restores it). Not to be called
 * while other threads use the handle. */
KOS_API void kos_ca_set_clock(kos_ca *ca, kos_clock_fn fn, void *arg);
/* Swaps the policy (borrowed), e.g. on reload; empties the cache. */
KOS_API void kos_ca_set_policy(kos_ca *ca, const kos_policy *pol);
/* How often verification re-reads the store's revision even when nothing
 * signalled a change (default 1 s; 0: at every verification). A revocation
 * or CA key change made through libkos on this machine is signalled at once
 * (a shared counter next to the store, kos-credential(5)), so this interval
 * only bounds how late a change is seen whose signal was lost (the writer
 * died between its commit and the signal, or could not open the counter). */
KOS_API void kos_ca_set_revocation_check(kos_ca *ca, kos_usec interval);

/* Makes the first CA key (EC P-256) inside the ca token; *kid (may be NULL)
 * receives its kid. Errors: KOS_E_EXISTS when a CA key exists already,
 * KOS_E_NOTFOUND (no token with role ca), token and store errors. */
KOS_API kos_rv kos_ca_init(kos_ca *ca, char kid[KOS_CA_KID_LEN + 1]);
/* Makes a new current CA key; the previous one signs no more but verifies
 * until every credential it can have signed has expired (now + the longest
 * lifetime of the policy + leeway). Retired keys past that are destroyed on
 * the token and forgotten. Errors: KOS_E_NOTFOUND (no CA key yet: use
 * kos_ca_init), token and store errors. */
KOS_API kos_rv kos_ca_rotate(kos_ca *ca, char kid[KOS_CA_KID_LEN + 1]);
/* The public keys that verify credentials now, as a JWKS document (RFC
 * 7517: kty EC, crv P-256, x, y, kid, use sig, alg ES256); free with
 * kos_free(). Errors: KOS_E_NOTFOUND (no CA key), KOS_E_STORE, KOS_E_NOMEM. */
KOS_API kos_rv kos_ca_jwks(kos_ca *ca, char **json);
/* Calls fn for every CA key (expired retired ones included until a rotation
 * prunes them), oldest first; a non-zero return of fn stops and is returned. */
KOS_API kos_rv kos_ca_list(kos_ca *ca, int (*fn)(const kos_ca_key_info *key, void *arg), void *arg);

/* --- clients and enrollment ---------------------------------------------
 * A client is registered with the widest scope it may ever hold, and gets a
 * one-time enrollment secret (256 random bits, base64url, KOS_CRED_SECRET_LEN
 * characters) that expires after the policy's credentials.enrollment. Only
 * its SHA-256 is stored. Callers wipe the secret buffer after use. */

/* Registers client name with scope and writes its first secret into secret.
 * Errors: KOS_E_INVALID (name, scope), KOS_E_EXISTS, KOS_E_STORE. */
KOS_API kos_rv kos_ca_client_add(kos_ca *ca, const char *name, const char *scope,
			      char secret[KOS_CRED_SECRET_LEN + 1]);
/* A new enrollment secret for an existing client (an unused earlier one
 * stops working). Errors: KOS_E_NOTFOUND, KOS_E_INVALID, KOS_E_STORE. */
KOS_API kos_rv kos_ca_client_secret(kos_ca *ca, const char *name,
				 char secret[KOS_CRED_SECRET_LEN + 1]);
/* KOS_E_NOTFOUND for an unknown client. */
KOS_API kos_rv kos_ca_client_get(kos_ca *ca, const char *name, kos_ca_client_info *info);
/* Every client in name order; a non-zero return of fn stops and is returned. */
KOS_API kos_rv kos_ca_client_list(kos_ca *ca, int (*fn)(const kos_ca_client_info *info, void *arg),
			       void *arg);
/* Disables (1) or enables (0) issuance and refresh for a client; credentials
 * already issued stay valid (revoke them). KOS_E_NOTFOUND for an unknown one. */
KOS_API kos_rv kos_ca_client_set_disabled(kos_ca *ca, const char *name, int disabled);

/* --- credentials --------------------------------------------------------
 * A credential returned in *token is NUL-terminated; release it with
 * kos_cred_free() (it is wiped). Lifetime: the policy's
 * credentials.lifetime for the client's tier now (a client never observed
 * stands at the prior) times the threat level's lifetime_factor. Issuance is
 * refused with KOS_E_POLICY and kos_last_error() "trust too low" for tier
 * deny, "client disabled", or "out of scope". */

/* Exchanges a one-time enrollment secret for the client's first credential
 * with its whole registered scope. A secret used a second time is refused
 * with KOS_E_INTEGRITY and is not an observation of its client (the sender
 * proved nothing; the caller counts it against the channel);
 * an unknown or expired secret is refused with KOS_E_INTEGRITY. */
KOS_API kos_rv kos_cred_enroll(kos_ca *ca, const char *secret, char **token);
/* kos_cred_enroll() for a client that enrolls over TLS: x5t (the presented
 * certificate's x5t#S256, NULL or "" for none) binds the credential to that
 * certificate (cnf). An x5t that is not 43 base64url characters is
 * KOS_E_INVALID and leaves the secret unused. */
KOS_API kos_rv kos_cred_enroll_bound(kos_ca *ca, const char *secret, const char *x5t,
				     char **token);
/* Issues a credential for a registered client directly (administrators):
 * scope NULL for the registered scope, else one within it; x5t (may be NULL)
 * binds it to the TLS client certificate with that SHA-256 thumbprint
 * (base64url). A scope with a "share:" item is refused (KOS_E_INVALID: only
 * grants carry one). Errors: KOS_E_NOTFOUND (client, CA key), KOS_E_INVALID,
 * KOS_E_POLICY, token and store errors. */
KOS_API kos_rv kos_cred_issue(kos_ca *ca, const char *client, const char *scope, const char *x5t,
			      char **token);
/* A grant for a KMS front (DESIGN.md 2, 4): a token of kind
 * KOS_CRED_KIND_GRANT for client whose scope is exactly "share:SHARE_ID"
 * with each ':' of SHARE_ID written as '/' (a scope resource holds no ':';
 * a SHARE_ID with '/' is refused), expiring after lifetime (whole seconds,
 * at least 1; never later than the client's own credential would) with no
 * verification leeway. x5t (NULL or "" for none) is the cnf of the
 * credential the key request came with: the grant is bound to that
 * certificate as the requester's credential is. The client must be
 * registered and usable; its registered scope need not name the share
 * (kosd decided the delivery). Nothing else issues a "share:" item.
 * Errors: KOS_E_INVALID (arguments, a share id that makes no scope, an x5t
 * not of 43 base64url characters), as kos_cred_issue() otherwise. */
KOS_API kos_rv kos_cred_issue_grant(kos_ca *ca, const char *client, const char *share_id,
				    const char *x5t, kos_usec lifetime, char **token);
/* A valid credential buys a fresh one for the same client with the same or
 * (scope not NULL) a narrower scope and the same certificate binding (x5t:
 * the certificate presented, as for kos_cred_verify()). The chain that
 * started at the first issuance (auth_time) never outlives the policy's
 * credentials.max_chain: past it, refresh is refused and the client enrolls
 * again. Refused (KOS_E_INTEGRITY, reason set) for an invalid, expired or
 * revoked credential; KOS_E_POLICY for a wider scope, a scope with a
 * "share:" item, a grant (never refreshed), a chain too old, a disabled
 * client or tier deny. reason may be NULL. */
KOS_API kos_rv kos_cred_refresh(kos_ca *ca, const char *token, const char *x5t, const char *scope,
				char **new_token, kos_cred_reason *reason);
/* THE check every front-end makes: size (KOS_CRED_MAX), base64url and JSON
 * form, the header kos writes (alg ES256, typ JWT, a known kid: the
 * algorithm pinned here, never taken from the token), the signature (OpenSSL,
 * on the kid's key parsed once), iss and aud against the policy, exp, nbf
 * and iat with the policy's leeway (a grant's exp with none), revocation, the
 * kind's form (a grant has one "share:" item, a credential none), and the
 * certificate binding
 * (x5t: the presented certificate's thumbprint, NULL when there is none; a
 * bound credential needs the matching one, a bearer one accepts any). A
 * credential verified once is cached (by a keyed digest, HMAC-SHA256, of its
 * whole text: the text itself is not kept) until it expires: repeats cost
 * no signature check and no store access. claims->kind says which kind it
 * is; the caller refuses a grant where a credential is due and vice versa.
 * Returns KOS_OK and fills claims (may be NULL), or KOS_E_INTEGRITY with
 * *reason (may be NULL) and kos_last_error() "REASON: detail" (never the
 * credential); other errors are failures of the store or memory (reason
 * KOS_CRED_ERROR). Does not observe trust: a forged credential's sub is not
 * authenticated, so the caller who knows the channel's client observes. */
KOS_API kos_rv kos_cred_verify(kos_ca *ca, const char *token, const char *x5t,
			       kos_cred_claims *claims, kos_cred_reason *reason);
/* Wipes and frees a credential returned by libkos; NULL-safe. */
KOS_API void kos_cred_free(char *token);

/* Revocations take effect at the next verification in every process sharing
 * the store (see kos_ca_set_revocation_check()) and are pruned once every
 * credential they cover has expired. Errors: KOS_E_INVALID, KOS_E_STORE. */
KOS_API kos_rv kos_cred_revoke_jti(kos_ca *ca, const char *jti);
/* Every credential of client issued up to now (its later enrollments and
 * refreshes of newer credentials are not affected). */
KOS_API kos_rv kos_cred_revoke_client(kos_ca *ca, const char *client);
/* Every credential issued at or before time (not in the future). */
KOS_API kos_rv kos_cred_revoke_before(kos_ca *ca, kos_usec time);
/* Calls fn for every revocation in force; a non-zero return stops. */
KOS_API kos_rv kos_cred_revocations(kos_ca *ca, int (*fn)(const kos_revocation_info *r, void *arg),
				    void *arg);
/* Removes expired revocations and used or expired enrollment secrets;
 * *removed (may be NULL) receives how many rows went. */
KOS_API kos_rv kos_cred_prune(kos_ca *ca, uint64_t *removed);

/* "invalid credential", "expired", "not yet valid", "wrong issuer", "wrong
 * audience", "revoked", "certificate mismatch", "error" (static strings). */
KOS_API const char *kos_cred_reason_name(kos_cred_reason reason);

/* --- threat level -------------------------------------------------------
 * Kept in the store, so every process sees it; a kos_trust given to
 * kos_ca_new() follows it (tiers use the level's offset). */

/* Sets the level with a reason (may be NULL). Errors: KOS_E_INVALID, KOS_E_STORE. */
KOS_API kos_rv kos_threat_set(kos_ca *ca, kos_threat level, const char *reason);
KOS_API kos_rv kos_threat_get(kos_ca *ca, kos_threat_info *info);
/* Raises the level when the share of known clients flagged anomalous reaches
 * the policy's threat.elevated.anomalous_share or threat.critical
 * .anomalous_share (with at least threat.min_clients clients known); never
 * lowers it (an administrator does). *raised (may be NULL) is 1 when it
 * raised; info (may be NULL) receives the level after. Issuance runs it at
 * most once a minute per handle (see kos_ca_set_threat_on_issue). It reads
 * every client the store knows, a page at a time: about a second for a
 * million. */
KOS_API kos_rv kos_threat_evaluate(kos_ca *ca, kos_threat_info *info, int *raised);
/* Runs kos_threat_evaluate() when its last run on this handle (by issuance
 * or here) is a minute old or more, or has never been; one caller at a time
 * runs it, the others return at once. Its errors are cleared, not
 * reported: the next minute tries again. */
KOS_API void kos_ca_threat_tick(kos_ca *ca);
/* Whether issuance calls kos_ca_threat_tick() (on, the default). A server
 * that calls it from a timer of its own turns this off, so that no
 * issuance waits for a scan of every client. */
KOS_API void kos_ca_set_threat_on_issue(kos_ca *ca, bool on);

#ifdef __cplusplus
}
#endif
#endif
