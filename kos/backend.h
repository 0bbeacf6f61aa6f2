/* Backend HSM tokens: the PKCS#11 tokens kos.conf names, opened as one handle.
 * Thread safety: a kos_hsm handle may be used from several threads at once
 * (each token has its own lock and session pool); kos_hsm_open() applies
 * kos.conf's environment with setenv(3), so open the first handle before
 * starting threads that read the environment.
 *
 * This is the part of the backend layer kosd and kosctl need; the PKCS#11-level
 * calls (sessions, data objects) are internal to libkos (kos/hsm.h). */
#ifndef KOS_BACKEND_H
#define KOS_BACKEND_H

#include <kos/common.h>
#include <kos/kosconf.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kos_hsm kos_hsm;

/* kos_hsm_open() flags. */
/* Fail unless every token is found and accepts its PIN (a user login is done
 * at open). Without it, a token that cannot be used is kept, marked
 * unavailable with its reason, and each call to it fails with that reason:
 * one KMS token down must not stop the service. */
#define KOS_HSM_OPEN_STRICT 0x1u

/* Loads each configured module once (through p11-kit), finds each token by its
 * URI and reads its PIN. Before the first module of the process is loaded it
 * sets kos.conf's environment variables; while modules are loaded, a
 * configuration asking for other values is refused with KOS_E_BUSY (a module
 * reads its environment once, when initialised). The handle keeps no pointer
 * into conf. Free with kos_hsm_free().
 * Errors: KOS_E_BUSY (environment conflict), KOS_E_NOMEM; with
 * KOS_HSM_OPEN_STRICT also the first token's failure (KOS_E_NOTFOUND when no
 * token matches its URI, KOS_E_IO for a missing module or PIN file, KOS_E_POLICY
 * for a PIN file others can read, KOS_E_INTEGRITY for a wrong PIN); the
 * token's kos name is in kos_last_error(). */
KOS_API kos_rv kos_hsm_open(const kos_config *conf, unsigned flags, kos_hsm **out);

/* Closes pooled sessions, wipes the PINs and releases the modules (the last
 * handle using a module finalizes it). Every session must have been put back.
 * hsm may be NULL. */
KOS_API void kos_hsm_free(kos_hsm *hsm);

/* Tokens in kos.conf's order; tok below is an index < kos_hsm_token_count(). */
KOS_API size_t kos_hsm_token_count(const kos_hsm *hsm);
KOS_API const char *kos_hsm_token_get0_name(const kos_hsm *hsm, size_t tok);
/* KOS_TOKEN_ROLE_COUNT for an index out of range. */
KOS_API kos_token_role kos_hsm_token_role(const kos_hsm *hsm, size_t tok);
/* How many sessions token tok allows at once (its ulMaxSessionCount), 0
 * when it states no limit or has not been found. */
KOS_API unsigned long kos_hsm_token_max_sessions(kos_hsm *hsm, size_t tok);
/* KOS_E_NOTFOUND when no token has that name. */
KOS_API kos_rv kos_hsm_token_find(const kos_hsm *hsm, const char *name, size_t *tok);

/* Health check: takes a session from the token's pool (opening and logging in
 * when needed) and asks the module for its state. KOS_OK when the token is
 * reachable; *logged_in (may be NULL) is 1 when the session is in the user
 * state (0 for a token that needs no login). Errors as for any call. */
KOS_API kos_rv kos_hsm_token_check(kos_hsm *hsm, size_t tok, int *logged_in);

/* Number of kos data objects on the token (class CKO_DATA, application
 * "kos"). Keys made by other kos code are not counted. */
KOS_API kos_rv kos_hsm_token_count_objects(kos_hsm *hsm, size_t tok, size_t *n);

/* What a token's calls cost so far (since kos_hsm_open()). A call is one
 * backend operation: one helper (store, read, ...) or one session get/put pair,
 * timed from taking the session to putting it back, opening and logging in
 * included; a retry on a fresh session is a second call. */
struct kos_hsm_stats {
	uint64_t calls;
	uint64_t failures;          /* calls that did not end in CKR_OK */
	uint64_t sessions_opened;   /* successful C_OpenSession calls */
	uint64_t sessions_dropped;  /* sessions closed because they failed */
	uint64_t logins;            /* successful C_Login calls */
	uint32_t sessions_idle;     /* in the pool now */
	uint32_t sessions_busy;     /* taken and not yet put back */
	kos_usec latency_total;     /* sum over calls */
	kos_usec latency_ewma;      /* moving average, weight 1/8 per new call */
	kos_usec last_call;         /* wall-clock end of the last call; 0: none */
	kos_usec last_failure;      /* wall-clock time of the last failure; 0: none */
	int available;              /* 0 when the token is marked unusable */
	char last_error[256];       /* the last failure's detail, "" when none;
				       names functions and CKR_ codes, never a PIN */
};

/* Copies the token's counters. KOS_E_RANGE for an index out of range. */
KOS_API kos_rv kos_hsm_token_stats(kos_hsm *hsm, size_t tok, struct kos_hsm_stats *st);

#ifdef __cplusplus
}
#endif
#endif
