/* The HSM backend layer, PKCS#11 side: sessions and data objects on the
 * tokens of a kos_hsm handle (include/kos/backend.h opens and frees it).
 * Internal to libkos; never installed.
 *
 * Thread safety: every function may be called from several threads on one
 * handle. Each token keeps a pool of logged-in sessions behind its own mutex;
 * no lock is held while calling into a module, except that module
 * initialisation is serialised process-wide (SoftHSM corrupts its heap when
 * two threads run C_Initialize at once).
 *
 * Errors: every failure sets kos_last_error() to a text that starts with
 * "token NAME: " (the token's kos name) and names the PKCS#11 function and
 * CKR_ code; it is also recorded as the token's last error in its stats. */
#ifndef KOS_HSM_H
#define KOS_HSM_H

#include <kos/backend.h>

#include <p11-kit/pkcs11.h>
#include <stdint.h>

/* A session taken from a token's pool; the caller owns the struct (usually on
 * its stack), the module's session belongs to the pool. f and h are for
 * the caller's PKCS#11 calls; set func to the name of the function that
 * failed ("C_Sign") so the error and the stats can name it. */
typedef struct kos_hsm_session {
	CK_FUNCTION_LIST *f;
	CK_SESSION_HANDLE h;
	const char *func;
	/* private to hsm.c */
	size_t tok;
	uint64_t generation;
	kos_usec start;
} kos_hsm_session;

/* Takes a logged-in read/write session from token tok's pool, opening one and
 * logging in when the pool is empty (CKR_USER_ALREADY_LOGGED_IN counts as
 * success). The session is the pool's: never C_CloseSession, C_Logout or
 * C_Login it (login state is per token, shared by every session), and end any
 * operation you start before putting it back.
 * Every successful get must be matched by one kos_hsm_session_put(). On
 * failure nothing is to be put back and the failure is already counted.
 * Errors: KOS_E_RANGE (tok), KOS_E_NOTFOUND (token not present),
 * KOS_E_INTEGRITY (PIN refused: the token is then marked unusable so a wrong
 * PIN is never retried into a lockout), KOS_E_IO, KOS_E_BUSY, KOS_E_CRYPTO. */
kos_rv kos_hsm_session_get(kos_hsm *hsm, size_t tok, kos_hsm_session *s);

/* Puts a session back after use; rv is the outcome of the caller's PKCS#11
 * calls (CKR_OK, or the failure; pass CKR_OK for a failure that was the
 * caller's own, so it does not count against the token). The call is timed
 * and counted. A session whose rv says it is broken (handle invalid, closed,
 * device removed or in error, token absent, user not logged in, ...) is
 * closed instead of pooled; after device-level errors the whole pool is
 * dropped and the token looked up again on the next get. The caller must
 * have finished any operation it started (C_FindObjectsFinal, ...). */
void kos_hsm_session_put(kos_hsm *hsm, kos_hsm_session *s, CK_RV rv);

/* True when rv means the session, not the request, failed: such a call is
 * worth one retry on a fresh session. */
int kos_hsm_rv_session_failed(CK_RV rv);

/* One backend operation with retry: runs fn on a pooled session; when fn
 * fails because the session broke, drops it and runs fn once more on a fresh
 * session, so fn must be safe to repeat. fn returns its CK_RV and sets
 * s->func on failure. On failure the error detail is "token NAME: FUNC:
 * CKR_..." and the result is kos_hsm_rv() of the CK_RV. */
typedef CK_RV kos_hsm_op_fn(kos_hsm_session *s, void *arg);
kos_rv kos_hsm_run(kos_hsm *hsm, size_t tok, kos_hsm_op_fn *fn, void *arg);

/* The token's module function list (borrowed, valid until kos_hsm_free()),
 * or NULL when the module could not be loaded. */
CK_FUNCTION_LIST *kos_hsm_get0_funcs(kos_hsm *hsm, size_t tok);

/* The one CK_RV -> kos_rv table: PIN problems and bad signatures or tags
 * -> KOS_E_INTEGRITY, device and session problems -> KOS_E_IO, argument
 * and template problems -> KOS_E_INVALID, CKR_BUFFER_TOO_SMALL ->
 * KOS_E_RANGE, memory -> KOS_E_NOMEM, session count -> KOS_E_BUSY, anything
 * else -> KOS_E_CRYPTO. */
kos_rv kos_hsm_rv(CK_RV rv);
/* "CKR_PIN_INCORRECT", or "CKR_0x..." for a code without a name here (the
 * returned string is static or per thread). */
const char *kos_hsm_ckr_name(CK_RV rv);
/* Sets the detail "token NAME: FUNC: CKR_..." and returns kos_hsm_rv(rv);
 * for callers that use get/put themselves. */
kos_rv kos_hsm_fail(kos_hsm *hsm, size_t tok, const char *func, CK_RV rv);
/* Sets the detail "token NAME: " and the formatted text ("?" for a token
 * that is not there) and returns rv: the callers' own refusals about a
 * token, worded as the layer words its own. */
kos_rv kos_hsm_error(const kos_hsm *hsm, size_t tok, kos_rv rv, const char *fmt, ...)
	KOS_PRINTF(4, 5);

/* --- finding and destroying objects -----------------------------------------
 * For the functions kos_hsm_run() runs. tmpl (count attributes) is a
 * C_FindObjectsInit template: an object matches when it has every attribute
 * with exactly that value. Each helper ends the find it starts, so the
 * session goes back to the pool clean, and sets s->func to the PKCS#11
 * function that failed. */

/* Finds up to max objects matching tmpl into objs; *n receives how many. */
CK_RV kos_hsm_find(kos_hsm_session *s, CK_ATTRIBUTE *tmpl, CK_ULONG count, CK_OBJECT_HANDLE *objs,
		   CK_ULONG max, CK_ULONG *n);

/* Looks for the one object matching tmpl: *n is 0 (none), 1 (*obj is it)
 * or 2 (more than one, *obj undefined), for callers that refuse an
 * ambiguous match. */
CK_RV kos_hsm_find_one(kos_hsm_session *s, CK_ATTRIBUTE *tmpl, CK_ULONG count,
		       CK_OBJECT_HANDLE *obj, CK_ULONG *n);

/* Calls each(s, obj, arg) for every object matching tmpl, in batches while
 * the find is active: each may read attributes, not create or destroy
 * objects. The first failure (of each or of the find) stops it and is
 * returned. */
typedef CK_RV kos_hsm_object_fn(kos_hsm_session *s, CK_OBJECT_HANDLE obj, void *arg);
CK_RV kos_hsm_find_each(kos_hsm_session *s, CK_ATTRIBUTE *tmpl, CK_ULONG count,
			kos_hsm_object_fn *each, void *arg);

/* Destroys every object matching tmpl and adds how many to *destroyed (so
 * a retry on a fresh session counts on from what went before). */
CK_RV kos_hsm_destroy(kos_hsm_session *s, CK_ATTRIBUTE *tmpl, CK_ULONG count,
		      unsigned long *destroyed);

/* --- data objects --------------------------------------------------------
 * kos keeps opaque bytes (shares, wrapped keys) as PKCS#11 data objects:
 * CKO_DATA, CKA_TOKEN, CKA_PRIVATE (readable only after login), not
 * modifiable (replace = destroy + put), CKA_APPLICATION "kos" (kos never
 * sees or touches another application's objects on a shared token), found
 * by CKA_LABEL. Labels: 1..KOS_HSM_LABEL_MAX printable ASCII bytes. */
#define KOS_HSM_LABEL_MAX 128
#define KOS_HSM_DATA_MAX 65536
#define KOS_HSM_APPLICATION "kos"

/* Stores len (1..KOS_HSM_DATA_MAX) bytes under label. Errors: KOS_E_EXISTS
 * when a kos object already has the label (checked first: not atomic against
 * a concurrent put of the same label, so callers serialise per label),
 * KOS_E_INVALID (label or length), and token errors. */
kos_rv kos_hsm_data_put(kos_hsm *hsm, size_t tok, const char *label, const void *data,
			size_t len);

/* Reads the object labelled label into a new buffer *data of *len bytes;
 * the caller releases it with kos_secret_free(*data, *len) (it is wiped).
 * Errors: KOS_E_NOTFOUND (no such label), KOS_E_INTEGRITY (two objects with
 * the label), KOS_E_RANGE (larger than KOS_HSM_DATA_MAX), token errors. */
kos_rv kos_hsm_data_get(kos_hsm *hsm, size_t tok, const char *label, uint8_t **data,
			size_t *len);

/* Destroys the object(s) labelled label. KOS_E_NOTFOUND when there is none. */
kos_rv kos_hsm_data_destroy(kos_hsm *hsm, size_t tok, const char *label);

/* Calls fn once per kos data object whose label starts with prefix ("" for
 * all), in no particular order, after the session is back in the pool (fn
 * may call the hsm layer). A non-KOS_OK return from fn stops the walk and is
 * returned. */
typedef kos_rv kos_hsm_label_fn(const char *label, void *arg);
kos_rv kos_hsm_data_list(kos_hsm *hsm, size_t tok, const char *prefix, kos_hsm_label_fn *fn,
			 void *arg);

#endif
