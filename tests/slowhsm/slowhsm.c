/* slowhsm.so: a PKCS#11 module for tests and benchmarks that stands for a
 * network HSM (a few milliseconds per operation) or a failing token. It
 * forwards every C_* call to a real module through that module's function
 * list, after a configured delay, and can answer chosen calls with an
 * error instead.
 *
 * Configuration: three environment variables, read by every C_Initialize
 * (kos.conf's environment group can set them for kosd and kosctl).
 *
 *   KOS_SLOWHSM_MODULE  the module to forward to (default: SoftHSMv2,
 *                       KOS_SOFTHSM_MODULE of kos/devinit.h). Loaded once
 *                       and never unloaded.
 *   KOS_SLOWHSM_DELAY   NAME=USEC[,NAME=USEC...]: microseconds (0 to
 *                       60000000) to wait before each call of the function
 *                       NAME (C_Sign, C_Decrypt, ...); NAME "*" gives the
 *                       delay of every function not named.
 *                       Example: C_Sign=2000,C_Decrypt=2000,*=0
 *   KOS_SLOWHSM_FAIL    NAME=CKR_X@N[,...]: every Nth call (N >= 1) of NAME
 *                       since the module was loaded answers CKR_X; "*" as
 *                       above. CKR_X is one of CKR_DEVICE_ERROR,
 *                       CKR_DEVICE_REMOVED, CKR_DEVICE_MEMORY,
 *                       CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED,
 *                       CKR_SESSION_COUNT, CKR_TOKEN_NOT_PRESENT,
 *                       CKR_USER_NOT_LOGGED_IN, CKR_GENERAL_ERROR,
 *                       CKR_FUNCTION_FAILED, CKR_HOST_MEMORY.
 *                       Example: C_Sign=CKR_DEVICE_ERROR@5 (one in five),
 *                       C_Sign=CKR_DEVICE_REMOVED@1 (every call)
 *
 * Names are the PKCS#11 2.40 functions but C_GetFunctionList, which runs
 * before any configuration is read. An empty or unset variable configures
 * nothing. A bad value (an unknown name, a name given twice, a number out
 * of range, a module that does not load) makes C_Initialize answer
 * CKR_ARGUMENTS_BAD after one line "slowhsm: why" on standard error.
 *
 * What a call sees:
 * - The delay is a nanosleep in the calling thread, holding no lock:
 *   concurrent callers wait their own delays at once, as a network HSM
 *   serves several sessions in parallel. Call counters are atomics.
 * - An injected error comes after the delay. A call that creates, changes
 *   or starts something (C_OpenSession, C_Login, C_GenerateKeyPair,
 *   C_SignInit, ...) is not forwarded. A call that continues or ends an
 *   operation (C_Sign, C_DecryptUpdate, C_VerifyFinal, ...) is forwarded
 *   and the operation is then ended in the real module, as the standard
 *   says an error ends it: the session can start the next operation. The
 *   token itself stays as it was: after CKR_DEVICE_REMOVED its sessions
 *   still work.
 * - C_Initialize and C_Finalize take a lock (they must not run at once;
 *   SoftHSM crashes when they do), so their own delays are serialised.
 *   C_Finalize with an injected error finalises all the same.
 * - When the real module is already initialised in the process (kosd
 *   loading SoftHSM directly for some tokens and through slowhsm for
 *   others), slowhsm shares it and leaves C_Finalize of the real module to
 *   whoever initialised it. A forked child's C_Initialize starts afresh.
 *
 * Built for the tests only (tests/Makefile.am), exporting C_GetFunctionList
 * alone (tests/slowhsm/slowhsm.map). */
#include "config.h"

#include "kos/devinit.h" /* KOS_SOFTHSM_MODULE */

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <p11-kit/pkcs11.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SLOW_EXPORT    __attribute__((visibility("default")))
#define SLOW_DELAY_MAX 60000000UL /* microseconds: a minute */
#define SLOW_EVERY_MAX 1000000000UL

/* Every function of the 2.40 list but C_GetFunctionList, in list order. */
/* clang-format off */
#define SLOW_FUNCTIONS(X)                                                                          \
	X(C_Initialize) X(C_Finalize) X(C_GetInfo) X(C_GetSlotList) X(C_GetSlotInfo)               \
	X(C_GetTokenInfo) X(C_GetMechanismList) X(C_GetMechanismInfo) X(C_InitToken)               \
	X(C_InitPIN) X(C_SetPIN) X(C_OpenSession) X(C_CloseSession) X(C_CloseAllSessions)          \
	X(C_GetSessionInfo) X(C_GetOperationState) X(C_SetOperationState) X(C_Login)               \
	X(C_Logout) X(C_CreateObject) X(C_CopyObject) X(C_DestroyObject) X(C_GetObjectSize)        \
	X(C_GetAttributeValue) X(C_SetAttributeValue) X(C_FindObjectsInit) X(C_FindObjects)        \
	X(C_FindObjectsFinal) X(C_EncryptInit) X(C_Encrypt) X(C_EncryptUpdate)                     \
	X(C_EncryptFinal) X(C_DecryptInit) X(C_Decrypt) X(C_DecryptUpdate) X(C_DecryptFinal)       \
	X(C_DigestInit) X(C_Digest) X(C_DigestUpdate) X(C_DigestKey) X(C_DigestFinal)              \
	X(C_SignInit) X(C_Sign) X(C_SignUpdate) X(C_SignFinal) X(C_SignRecoverInit)                \
	X(C_SignRecover) X(C_VerifyInit) X(C_Verify) X(C_VerifyUpdate) X(C_VerifyFinal)            \
	X(C_VerifyRecoverInit) X(C_VerifyRecover) X(C_DigestEncryptUpdate)                         \
	X(C_DecryptDigestUpdate) X(C_SignEncryptUpdate) X(C_DecryptVerifyUpdate)                   \
	X(C_GenerateKey) X(C_GenerateKeyPair) X(C_WrapKey) X(C_UnwrapKey) X(C_DeriveKey)           \
	X(C_SeedRandom) X(C_GenerateRandom) X(C_GetFunctionStatus) X(C_CancelFunction)             \
	X(C_WaitForSlotEvent)

enum slow_fn {
#define SLOW_ENUM(name) F_##name,
	SLOW_FUNCTIONS(SLOW_ENUM)
#undef SLOW_ENUM
	F_COUNT
};

static const char *const slow_fn_names[F_COUNT] = {
#define SLOW_NAME(name) #name,
	SLOW_FUNCTIONS(SLOW_NAME)
#undef SLOW_NAME
};
/* clang-format on */

/* The errors a test may inject: those a failing or vanishing token gives. */
/* clang-format off */
static const struct {
	const char *name;
	CK_RV rv;
} slow_rvs[] = {
#define SLOW_RV(rv) { #rv, rv }
	SLOW_RV(CKR_DEVICE_ERROR),
	SLOW_RV(CKR_DEVICE_REMOVED),
	SLOW_RV(CKR_DEVICE_MEMORY),
	SLOW_RV(CKR_SESSION_HANDLE_INVALID),
	SLOW_RV(CKR_SESSION_CLOSED),
	SLOW_RV(CKR_SESSION_COUNT),
	SLOW_RV(CKR_TOKEN_NOT_PRESENT),
	SLOW_RV(CKR_USER_NOT_LOGGED_IN),
	SLOW_RV(CKR_GENERAL_ERROR),
	SLOW_RV(CKR_FUNCTION_FAILED),
	SLOW_RV(CKR_HOST_MEMORY),
#undef SLOW_RV
};
/* clang-format on */

struct slow_config {
	unsigned long delay_us[F_COUNT];
	CK_RV fail_rv[F_COUNT]; /* CKR_OK: no injection */
	unsigned long fail_every[F_COUNT];
};

/* Written by C_Initialize under slow_init_lock while slow_ready is false,
 * read by the calls once they see slow_ready true (release/acquire). */
static struct slow_config slow_cfg;
static CK_FUNCTION_LIST *slow_real;
static atomic_bool slow_ready;
static bool slow_owner; /* slowhsm initialised the real module */
static pid_t slow_pid;	/* the process that initialised slowhsm */
static pthread_mutex_t slow_init_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_ulong slow_calls[F_COUNT]; /* since the module was loaded */

static CK_FUNCTION_LIST slow_function_list;

/* --- configuration ---------------------------------------------------------- */

static void slow_why(char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void slow_why(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
}

/* A decimal number 0..max, digits only. */
static bool slow_number(const char *s, size_t len, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;
	size_t i;

	if (len == 0)
		return false;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		if (v > (max - (unsigned long)(s[i] - '0')) / 10)
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	*out = v;
	return true;
}

/* The function NAME (len bytes) names: its index, F_COUNT for "*", -1 for
 * none. */
static int slow_fn_lookup(const char *name, size_t len)
{
	int i;

	if (len == 1 && name[0] == '*')
		return F_COUNT;
	for (i = 0; i < F_COUNT; i++)
		if (strlen(slow_fn_names[i]) == len && memcmp(slow_fn_names[i], name, len) == 0)
			return i;
	return -1;
}

typedef bool slow_value_fn(struct slow_config *cfg, int fn, const char *value, size_t len,
			   char *why, size_t why_len);

static bool slow_delay_value(struct slow_config *cfg, int fn, const char *value, size_t len,
			     char *why, size_t why_len)
{
	unsigned long us;
	int i;

	if (!slow_number(value, len, SLOW_DELAY_MAX, &us)) {
		slow_why(why, why_len, "'%.*s' is not a delay in microseconds (0 to %lu)", (int)len,
			 value, SLOW_DELAY_MAX);
		return false;
	}
	if (fn < F_COUNT) {
		cfg->delay_us[fn] = us;
		return true;
	}
	for (i = 0; i < F_COUNT; i++)
		cfg->delay_us[i] = us;
	return true;
}

static bool slow_fail_value(struct slow_config *cfg, int fn, const char *value, size_t len,
			    char *why, size_t why_len)
{
	const char *at = memchr(value, '@', len);
	unsigned long every;
	size_t i, name_len;
	CK_RV rv = CKR_OK;

	if (at == NULL) {
		slow_why(why, why_len, "'%.*s' is not CKR_NAME@N", (int)len, value);
		return false;
	}
	name_len = (size_t)(at - value);
	for (i = 0; i < sizeof(slow_rvs) / sizeof(slow_rvs[0]); i++)
		if (strlen(slow_rvs[i].name) == name_len &&
		    memcmp(slow_rvs[i].name, value, name_len) == 0)
			rv = slow_rvs[i].rv;
	if (rv == CKR_OK) {
		slow_why(why, why_len, "'%.*s' is not an error slowhsm injects", (int)name_len,
			 value);
		return false;
	}
	if (!slow_number(at + 1, len - name_len - 1, SLOW_EVERY_MAX, &every) || every == 0) {
		slow_why(why, why_len, "'%.*s' is not a count of calls (1 to %lu)",
			 (int)(len - name_len - 1), at + 1, SLOW_EVERY_MAX);
		return false;
	}
	if (fn < F_COUNT) {
		cfg->fail_rv[fn] = rv;
		cfg->fail_every[fn] = every;
		return true;
	}
	for (i = 0; i < F_COUNT; i++) {
		cfg->fail_rv[i] = rv;
		cfg->fail_every[i] = every;
	}
	return true;
}

/* Parses VAR's NAME=VALUE list into cfg. "*" is applied first, whatever
 * its place, so that named functions override it. */
static bool slow_parse_list(struct slow_config *cfg, const char *var, slow_value_fn *value_fn,
			    char *why, size_t why_len)
{
	const char *text = getenv(var), *p, *end, *eq;
	bool named[F_COUNT + 1] = {false};
	char detail[160];
	size_t name_len;
	int pass, fn;

	if (text == NULL || *text == '\0')
		return true;
	for (pass = 0; pass < 2; pass++) {
		for (p = text;; p = end + 1) {
			end = strchr(p, ',');
			if (end == NULL)
				end = p + strlen(p);
			if (end == p) {
				slow_why(why, why_len, "%s: an empty entry", var);
				return false;
			}
			eq = memchr(p, '=', (size_t)(end - p));
			if (eq == NULL) {
				slow_why(why, why_len, "%s: '%.*s' is not NAME=VALUE", var,
					 (int)(end - p), p);
				return false;
			}
			name_len = (size_t)(eq - p);
			fn = slow_fn_lookup(p, name_len);
			if (fn < 0 && name_len == strlen("C_GetFunctionList") &&
			    memcmp(p, "C_GetFunctionList", name_len) == 0) {
				slow_why(
				    why, why_len,
				    "%s: C_GetFunctionList runs before the configuration is read",
				    var);
				return false;
			}
			if (fn < 0) {
				slow_why(why, why_len, "%s: '%.*s' is not a PKCS#11 function", var,
					 (int)name_len, p);
				return false;
			}
			if ((pass == 0) == (fn == F_COUNT)) {
				if (named[fn]) {
					slow_why(why, why_len, "%s: %s is given twice", var,
						 fn == F_COUNT ? "*" : slow_fn_names[fn]);
					return false;
				}
				named[fn] = true;
				if (!value_fn(cfg, fn, eq + 1, (size_t)(end - eq - 1), detail,
					      sizeof(detail))) {
					slow_why(why, why_len, "%s: %s", var, detail);
					return false;
				}
			}
			if (*end == '\0')
				break;
		}
	}
	return true;
}

/* Loads the real module (kept loaded for good: a leak checker at exit must
 * still see the library its suppressions name, and a late caller of a
 * C++ module must not find its code gone). */
static bool slow_load(CK_FUNCTION_LIST **real, char *why, size_t why_len)
{
	const char *path = getenv("KOS_SLOWHSM_MODULE");
	CK_C_GetFunctionList get_list;
	void *lib;
	CK_RV rv;

	if (path == NULL)
		path = KOS_SOFTHSM_MODULE;
	if (*path == '\0') {
		slow_why(why, why_len, "KOS_SLOWHSM_MODULE is empty");
		return false;
	}
	lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (lib == NULL) {
		slow_why(why, why_len, "KOS_SLOWHSM_MODULE: %s", dlerror());
		return false;
	}
	*(void **)&get_list = dlsym(lib, "C_GetFunctionList");
	if (get_list == NULL) {
		slow_why(why, why_len, "KOS_SLOWHSM_MODULE: %s has no C_GetFunctionList", path);
		return false;
	}
	rv = get_list(real);
	if (rv != CKR_OK || *real == NULL) {
		slow_why(why, why_len, "KOS_SLOWHSM_MODULE: %s: C_GetFunctionList failed (0x%lx)",
			 path, (unsigned long)rv);
		return false;
	}
	if (*real == &slow_function_list) {
		slow_why(why, why_len, "KOS_SLOWHSM_MODULE: %s is slowhsm itself", path);
		return false;
	}
	return true;
}

/* --- every call --------------------------------------------------------------- */

static void slow_sleep(unsigned long us)
{
	struct timespec ts = {.tv_sec = (time_t)(us / 1000000),
			      .tv_nsec = (long)(us % 1000000) * 1000};
	int saved = errno;

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
	errno = saved;
}

/* Counts the call, waits its delay and answers the error to inject
 * (CKR_OK: none); CKR_CRYPTOKI_NOT_INITIALIZED before C_Initialize, which
 * no test can inject, so the wrappers tell the two apart. */
static CK_RV slow_enter(enum slow_fn fn)
{
	unsigned long n;

	if (!atomic_load_explicit(&slow_ready, memory_order_acquire))
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	n = atomic_fetch_add_explicit(&slow_calls[fn], 1, memory_order_relaxed) + 1;
	if (slow_cfg.delay_us[fn] > 0)
		slow_sleep(slow_cfg.delay_us[fn]);
	if (slow_cfg.fail_rv[fn] != CKR_OK && n % slow_cfg.fail_every[fn] == 0)
		return slow_cfg.fail_rv[fn];
	return CKR_OK;
}

/* Not forwarded when an error is injected. */
#define SLOW_PLAIN(fn)                                                                             \
	do {                                                                                       \
		CK_RV enter_rv_ = slow_enter(F_##fn);                                              \
		if (enter_rv_ != CKR_OK)                                                           \
			return enter_rv_;                                                          \
	} while (0)

/* Forwarded, and the operation ended, when an error is injected: fault is
 * the error, rv what the real module answered. */
#define SLOW_OP_ENTER(fn, fault)                                                                   \
	do {                                                                                       \
		(fault) = slow_enter(F_##fn);                                                      \
		if ((fault) == CKR_CRYPTOKI_NOT_INITIALIZED)                                       \
			return (fault);                                                            \
	} while (0)

typedef CK_RV slow_one_part_fn(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR);
typedef CK_RV slow_final_fn(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG_PTR);

/* A length query (no buffer) or a buffer too small leaves the operation
 * running: did the call that answered rv end it? */
static bool slow_still_running(CK_RV rv, CK_BYTE_PTR out)
{
	return (rv == CKR_OK && out == NULL) || rv == CKR_BUFFER_TOO_SMALL;
}

/* A buffer for output nobody reads (it may be plaintext: wiped). */
static CK_BYTE_PTR slow_scratch(CK_ULONG len)
{
	return calloc(len ? len : 1, 1);
}

static void slow_scratch_free(CK_BYTE_PTR p, CK_ULONG len)
{
	if (p != NULL)
		explicit_bzero(p, len ? len : 1);
	free(p);
}

/* Ends a one-part operation (C_Sign, C_Decrypt, ...) that the forwarded call
 * left running, by calling it again with room for the whole output. */
static void slow_end_one_part(slow_one_part_fn *f, CK_SESSION_HANDLE h, CK_BYTE_PTR in,
			      CK_ULONG in_len, CK_BYTE_PTR out, CK_ULONG_PTR out_len, CK_RV rv)
{
	CK_ULONG len = out_len != NULL ? *out_len : 0;
	CK_BYTE_PTR buf;

	if (!slow_still_running(rv, out) || (buf = slow_scratch(len)) == NULL)
		return;
	f(h, in, in_len, buf, &len);
	slow_scratch_free(buf, len);
}

/* Ends a multi-part operation with its final function: asks the length,
 * then takes the output. An operation that is not running answers
 * CKR_OPERATION_NOT_INITIALIZED, which is fine. */
static void slow_end_final(slow_final_fn *f, CK_SESSION_HANDLE h)
{
	CK_ULONG len = 0;
	CK_BYTE_PTR buf;

	if (f(h, NULL, &len) != CKR_OK || (buf = slow_scratch(len)) == NULL)
		return;
	f(h, buf, &len);
	slow_scratch_free(buf, len);
}

/* A verification ends at C_VerifyFinal whatever the signature; SoftHSM
 * ends it too when the length is wrong (CKR_SIGNATURE_LEN_RANGE). */
static void slow_end_verify(CK_SESSION_HANDLE h)
{
	CK_BYTE sig[1] = {0};

	slow_real->C_VerifyFinal(h, sig, 0);
}

/* --- the general functions ------------------------------------------------------ */

static CK_RV slow_C_Initialize(CK_VOID_PTR init_args)
{
	struct slow_config cfg;
	CK_FUNCTION_LIST *real = NULL;
	char why[256];
	unsigned long n;
	CK_RV rv;

	pthread_mutex_lock(&slow_init_lock);
	if (atomic_load(&slow_ready) && slow_pid == getpid()) {
		rv = CKR_CRYPTOKI_ALREADY_INITIALIZED;
		goto out;
	}
	/* a forked child: the parent's state is not ours */
	atomic_store(&slow_ready, false);
	memset(&cfg, 0, sizeof(cfg));
	if (!slow_parse_list(&cfg, "KOS_SLOWHSM_DELAY", slow_delay_value, why, sizeof(why)) ||
	    !slow_parse_list(&cfg, "KOS_SLOWHSM_FAIL", slow_fail_value, why, sizeof(why)) ||
	    !slow_load(&real, why, sizeof(why))) {
		fprintf(stderr, "slowhsm: %s\n", why);
		rv = CKR_ARGUMENTS_BAD;
		goto out;
	}
	slow_cfg = cfg;
	slow_real = real;

	/* C_Initialize's own delay and error: slow_enter would see the module
	 * not initialised yet */
	n = atomic_fetch_add(&slow_calls[F_C_Initialize], 1) + 1;
	if (cfg.delay_us[F_C_Initialize] > 0)
		slow_sleep(cfg.delay_us[F_C_Initialize]);
	if (cfg.fail_rv[F_C_Initialize] != CKR_OK && n % cfg.fail_every[F_C_Initialize] == 0) {
		rv = cfg.fail_rv[F_C_Initialize];
		goto out;
	}

	rv = real->C_Initialize(init_args);
	if (rv == CKR_OK) {
		slow_owner = true;
	} else if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		slow_owner = false;
		rv = CKR_OK;
	} else {
		goto out;
	}
	slow_pid = getpid();
	atomic_store_explicit(&slow_ready, true, memory_order_release);
out:
	pthread_mutex_unlock(&slow_init_lock);
	return rv;
}

static CK_RV slow_C_Finalize(CK_VOID_PTR reserved)
{
	CK_RV fault, rv = CKR_OK;

	if (reserved != NULL)
		return CKR_ARGUMENTS_BAD;
	pthread_mutex_lock(&slow_init_lock);
	fault = slow_enter(F_C_Finalize);
	if (fault == CKR_CRYPTOKI_NOT_INITIALIZED) {
		pthread_mutex_unlock(&slow_init_lock);
		return fault;
	}
	atomic_store(&slow_ready, false);
	if (slow_owner)
		rv = slow_real->C_Finalize(NULL);
	slow_owner = false;
	pthread_mutex_unlock(&slow_init_lock);
	return fault != CKR_OK ? fault : rv;
}

static CK_RV slow_C_GetInfo(CK_INFO_PTR info)
{
	SLOW_PLAIN(C_GetInfo);
	return slow_real->C_GetInfo(info);
}

static CK_RV slow_C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
	if (list == NULL)
		return CKR_ARGUMENTS_BAD;
	*list = &slow_function_list;
	return CKR_OK;
}

/* --- slots and tokens ------------------------------------------------------------ */

static CK_RV slow_C_GetSlotList(CK_BBOOL present, CK_SLOT_ID_PTR slots, CK_ULONG_PTR count)
{
	SLOW_PLAIN(C_GetSlotList);
	return slow_real->C_GetSlotList(present, slots, count);
}

static CK_RV slow_C_GetSlotInfo(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info)
{
	SLOW_PLAIN(C_GetSlotInfo);
	return slow_real->C_GetSlotInfo(slot, info);
}

static CK_RV slow_C_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info)
{
	SLOW_PLAIN(C_GetTokenInfo);
	return slow_real->C_GetTokenInfo(slot, info);
}

static CK_RV slow_C_GetMechanismList(CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR mechs,
				     CK_ULONG_PTR count)
{
	SLOW_PLAIN(C_GetMechanismList);
	return slow_real->C_GetMechanismList(slot, mechs, count);
}

static CK_RV slow_C_GetMechanismInfo(CK_SLOT_ID slot, CK_MECHANISM_TYPE type,
				     CK_MECHANISM_INFO_PTR info)
{
	SLOW_PLAIN(C_GetMechanismInfo);
	return slow_real->C_GetMechanismInfo(slot, type, info);
}

static CK_RV slow_C_InitToken(CK_SLOT_ID slot, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len,
			      CK_UTF8CHAR_PTR label)
{
	SLOW_PLAIN(C_InitToken);
	return slow_real->C_InitToken(slot, pin, pin_len, label);
}

static CK_RV slow_C_InitPIN(CK_SESSION_HANDLE h, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len)
{
	SLOW_PLAIN(C_InitPIN);
	return slow_real->C_InitPIN(h, pin, pin_len);
}

static CK_RV slow_C_SetPIN(CK_SESSION_HANDLE h, CK_UTF8CHAR_PTR old_pin, CK_ULONG old_len,
			   CK_UTF8CHAR_PTR new_pin, CK_ULONG new_len)
{
	SLOW_PLAIN(C_SetPIN);
	return slow_real->C_SetPIN(h, old_pin, old_len, new_pin, new_len);
}

static CK_RV slow_C_WaitForSlotEvent(CK_FLAGS flags, CK_SLOT_ID_PTR slot, CK_VOID_PTR reserved)
{
	SLOW_PLAIN(C_WaitForSlotEvent);
	return slow_real->C_WaitForSlotEvent(flags, slot, reserved);
}

/* --- sessions ------------------------------------------------------------------ */

static CK_RV slow_C_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app, CK_NOTIFY notify,
				CK_SESSION_HANDLE_PTR h)
{
	SLOW_PLAIN(C_OpenSession);
	return slow_real->C_OpenSession(slot, flags, app, notify, h);
}

static CK_RV slow_C_CloseSession(CK_SESSION_HANDLE h)
{
	SLOW_PLAIN(C_CloseSession);
	return slow_real->C_CloseSession(h);
}

static CK_RV slow_C_CloseAllSessions(CK_SLOT_ID slot)
{
	SLOW_PLAIN(C_CloseAllSessions);
	return slow_real->C_CloseAllSessions(slot);
}

static CK_RV slow_C_GetSessionInfo(CK_SESSION_HANDLE h, CK_SESSION_INFO_PTR info)
{
	SLOW_PLAIN(C_GetSessionInfo);
	return slow_real->C_GetSessionInfo(h, info);
}

static CK_RV slow_C_GetOperationState(CK_SESSION_HANDLE h, CK_BYTE_PTR state, CK_ULONG_PTR len)
{
	SLOW_PLAIN(C_GetOperationState);
	return slow_real->C_GetOperationState(h, state, len);
}

static CK_RV slow_C_SetOperationState(CK_SESSION_HANDLE h, CK_BYTE_PTR state, CK_ULONG len,
				      CK_OBJECT_HANDLE enc_key, CK_OBJECT_HANDLE auth_key)
{
	SLOW_PLAIN(C_SetOperationState);
	return slow_real->C_SetOperationState(h, state, len, enc_key, auth_key);
}

static CK_RV slow_C_Login(CK_SESSION_HANDLE h, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin,
			  CK_ULONG pin_len)
{
	SLOW_PLAIN(C_Login);
	return slow_real->C_Login(h, user, pin, pin_len);
}

static CK_RV slow_C_Logout(CK_SESSION_HANDLE h)
{
	SLOW_PLAIN(C_Logout);
	return slow_real->C_Logout(h);
}

/* --- objects --------------------------------------------------------------------- */

static CK_RV slow_C_CreateObject(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR tmpl, CK_ULONG count,
				 CK_OBJECT_HANDLE_PTR obj)
{
	SLOW_PLAIN(C_CreateObject);
	return slow_real->C_CreateObject(h, tmpl, count, obj);
}

static CK_RV slow_C_CopyObject(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_PTR tmpl,
			       CK_ULONG count, CK_OBJECT_HANDLE_PTR new_obj)
{
	SLOW_PLAIN(C_CopyObject);
	return slow_real->C_CopyObject(h, obj, tmpl, count, new_obj);
}

static CK_RV slow_C_DestroyObject(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj)
{
	SLOW_PLAIN(C_DestroyObject);
	return slow_real->C_DestroyObject(h, obj);
}

static CK_RV slow_C_GetObjectSize(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj, CK_ULONG_PTR size)
{
	SLOW_PLAIN(C_GetObjectSize);
	return slow_real->C_GetObjectSize(h, obj, size);
}

static CK_RV slow_C_GetAttributeValue(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj,
				      CK_ATTRIBUTE_PTR tmpl, CK_ULONG count)
{
	SLOW_PLAIN(C_GetAttributeValue);
	return slow_real->C_GetAttributeValue(h, obj, tmpl, count);
}

static CK_RV slow_C_SetAttributeValue(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj,
				      CK_ATTRIBUTE_PTR tmpl, CK_ULONG count)
{
	SLOW_PLAIN(C_SetAttributeValue);
	return slow_real->C_SetAttributeValue(h, obj, tmpl, count);
}

/* A failed C_FindObjects leaves the search open: the caller still calls
 * C_FindObjectsFinal, so nothing is ended here. */
static CK_RV slow_C_FindObjectsInit(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR tmpl, CK_ULONG count)
{
	SLOW_PLAIN(C_FindObjectsInit);
	return slow_real->C_FindObjectsInit(h, tmpl, count);
}

static CK_RV slow_C_FindObjects(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE_PTR objs, CK_ULONG max,
				CK_ULONG_PTR count)
{
	SLOW_PLAIN(C_FindObjects);
	return slow_real->C_FindObjects(h, objs, max, count);
}

static CK_RV slow_C_FindObjectsFinal(CK_SESSION_HANDLE h)
{
	SLOW_PLAIN(C_FindObjectsFinal);
	return slow_real->C_FindObjectsFinal(h);
}

/* --- cryptographic operations ----------------------------------------------------
 * Init functions are plain; the others are forwarded even when they fail,
 * and what they leave running is ended (see the header comment). */

static CK_RV slow_C_EncryptInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key)
{
	SLOW_PLAIN(C_EncryptInit);
	return slow_real->C_EncryptInit(h, mech, key);
}

static CK_RV slow_C_Encrypt(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out,
			    CK_ULONG_PTR out_len)
{
	CK_RV fault, rv;

	SLOW_OP_ENTER(C_Encrypt, fault);
	rv = slow_real->C_Encrypt(h, in, in_len, out, out_len);
	if (fault == CKR_OK)
		return rv;
	slow_end_one_part(slow_real->C_Encrypt, h, in, in_len, out, out_len, rv);
	return fault;
}

static CK_RV slow_C_EncryptUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len,
				  CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	CK_RV fault, rv;

	SLOW_OP_ENTER(C_EncryptUpdate, fault);
	rv = slow_real->C_EncryptUpdate(h, in, in_len, out, out_len);
	if (fault == CKR_OK)
		return rv;
	slow_end_final(slow_real->C_EncryptFinal, h);
	return fault;
}

static CK_RV slow_C_EncryptFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	CK_RV fault, rv;

	SLOW_OP_ENTER(C_EncryptFinal, fault);
	rv = slow_real->C_EncryptFinal(h, out, out_len);
	if (fault == CKR_OK)
		return rv;
	if (slow_still_running(rv, out))
		slow_end_final(slow_real->C_EncryptFinal, h);
	return fault;
}

static CK_RV slow_C_DecryptInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key)
{
	SLOW_PLAIN(C_DecryptInit);
	return slow_real->C_DecryptInit(h, mech, key);
}

static CK_RV slow_C_Decrypt(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out,
			    CK_ULONG_PTR out_len)
{
	CK_RV fault, rv;

	SLOW_OP_ENTER(C_Decrypt, fault);
	rv = slow_real->C_Decrypt(h, in, in_len, out, out_len);
	if (fault == CKR_OK)
		return rv;
	slow_end_one_part(slow_real->C_Decrypt, h, in, in_len, out, out_len, rv);
	return fault;
}

static CK_RV slow_C_DecryptUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len,
				  CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	CK_RV fault, rv;

	SLOW_OP_ENTER(C_DecryptUpdate, fault);
	rv = slow_real->C_DecryptUpdate(h, in, in_len, out, out_len);
	if (fault == CKR_OK)
		return rv;
	slow_end_final(slow_real->C_DecryptFinal, h);
	return fault;
}

static CK_RV slow_C_DecryptFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	CK_RV fault, rv;

	SLOW_OP_ENTER(C_DecryptFinal, fault);
	rv = slow_real->C_DecryptFinal(h, out, out_len);
	if (fault == CKR_OK)
		return rv;
	if (slow_still_running(rv, out))
		slow_end_final(slow_real->C_DecryptFinal, h);
	return fault;
}

static CK_RV slow_C_DigestInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech)
{
	SLOW_PLAIN(C_DigestInit);
	return slow_real->C_DigestInit(h, mech);
}

static CK_RV slow_C_Digest(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out,
			   CK_ULONG_PTR out_len)
{
	CK_RV fault, rv;

	SLOW_OP_ENTER(C_Digest, fault);
	rv = slow_real->C_Digest(h, in, in_len, out, out_len);
	if (fault == CKR_OK)
		return rv;
	slow_end_one_part(slow_real->C_Digest, h, in, in_len, out, out_len, rv);
	return fault;
}

static CK_RV slow_C_DigestUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len)
{
	CK_RV fault, rv;

	SLOW_OP_ENTER(C_DigestUpdate, fault);
	rv = slow_real->C_DigestUpdate(h, in, in_len);
	if (fault == CKR_OK)
		return rv;
	slow_end_final(slow_real->C_DigestFinal, h);
	return fault;
}

static CK_RV slow_C_DigestKey(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE key)
{
	CK_RV fault, rv;

	SLOW_OP_ENTER(C_DigestKey, fault);
	rv = slow_real->C_DigestKey(h, key);
	if (fault == CKR_OK)
		return rv;
	slow_end_final(slow_real->C_DigestFinal, h);
	return fault;
}

static CK_RV slow_C_DigestFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	CK_RV fault, rv;

	SLOW_OP_ENTER(C_DigestFinal, fault);
	rv = slow_real->C_DigestFinal(h, out, out_len);
	if (fault == CKR_OK)
		return rv;
	if (slow_still_running(rv, out))
		slow_end_final(slow_real->C_DigestFinal, h);
	return fault;
}

static CK_RV slow_C_SignInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key)
{
	SLOW_PLAIN(C_SignInit);
	return slow_real->C_SignInit(h, mech, key);
}

static CK_RV slow_C_Sign(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR sig,
			 CK_ULONG_PTR sig_len)
{
	CK_RV fault, rv;

	SLOW_OP_ENTER(C_Sign, fault);
	rv = slow_real->C_Sign(h, in, in_len, sig, sig_len);
	if (fault == CKR_OK)
		return rv;
	slow_end_one_part(slow_real->C_Sign, h, in, in_len, sig, sig_len, rv);
	return fault;
}

static CK_RV slow_C_SignUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len)
{
	CK_RV fault, rv;

	SLOW_OP_ENTER(C_SignUpdate, fault);
	rv = slow_real->C_SignUpdate(h, in, in_len);
	if (fault == CKR_OK)
		return rv;
	slow_end_final(slow_real->C_SignFinal, h);
	return fault;
}

static CK_RV slow_C_SignFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len)
{
	CK_RV fault, rv;

	SLOW_OP_ENTER(C_SignFinal, fault);
	rv = slow_real->C_SignFinal(h, sig, sig_len);
	if (fault == CKR_OK)
		return rv;
	if (slow_still_running(rv, sig))
		slow_end_final(slow_real->C_SignFinal, h);
	return fault;
}

static CK_RV slow_C_SignRecoverInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech,
				    CK_OBJECT_HANDLE key)
{
	SLOW_PLAIN(C_SignRecoverInit);
	return slow_real->C_SignRecoverInit(h, mech, key);
}

static CK_RV slow_C_SignRecover(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len,
				CK_BYTE_PTR sig, CK_ULONG_PTR sig_len)
{
	CK_RV fault, rv;

	SLOW_OP_ENTER(C_SignRecover, fault);
	rv = slow_real->C_SignRecover(h, in, in_len, sig, sig_len);
	if (fault == CKR_OK)
		return rv;
	slow_end_one_part(slow_real->C_SignRecover, h, in, in_len, sig, sig_len, rv);
	return fault;
}

static CK_RV slow_C_VerifyInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key)
{
	SLOW_PLAIN(C_VerifyInit);
	return slow_real->C_VerifyInit(h, mech, key);
}

/* C_Verify and C_VerifyFinal end the operation whatever they answer. */
static CK_RV slow_C_Verify(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR sig,
			   CK_ULONG sig_len)
{
	CK_RV fault, rv;

	SLOW_OP_ENTER(C_Verify, fault);
	rv = slow_real->C_Verify(h, in, in_len, sig, sig_len);
	return fault != CKR_OK ? fault : rv;
}

static CK_RV slow_C_VerifyUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len)
{
	CK_RV fault, rv;

	SLOW_OP_ENTER(C_VerifyUpdate, fault);
	rv = slow_real->C_VerifyUpdate(h, in, in_len);
	if (fault == CKR_OK)
		return rv;
	if (rv == CKR_OK)
		slow_end_verify(h);
	return fault;
}

static CK_RV slow_C_VerifyFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR sig, CK_ULONG sig_len)
{
	CK_RV fault, rv;

	SLOW_OP_ENTER(C_VerifyFinal, fault);
	rv = slow_real->C_VerifyFinal(h, sig, sig_len);
	return fault != CKR_OK ? fault : rv;
}

static CK_RV slow_C_VerifyRecoverInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech,
				      CK_OBJECT_HANDLE key)
{
	SLOW_PLAIN(C_VerifyRecoverInit);
	return slow_real->C_VerifyRecoverInit(h, mech, key);
}

static CK_RV slow_C_VerifyRecover(CK_SESSION_HANDLE h, CK_BYTE_PTR sig, CK_ULONG sig_len,
				  CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	CK_RV fault, rv;

	SLOW_OP_ENTER(C_VerifyRecover, fault);
	rv = slow_real->C_VerifyRecover(h, sig, sig_len, out, out_len);
	if (fault == CKR_OK)
		return rv;
	slow_end_one_part(slow_real->C_VerifyRecover, h, sig, sig_len, out, out_len, rv);
	return fault;
}

/* The dual functions run two operations: both are ended. */
static CK_RV slow_C_DigestEncryptUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len,
					CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	CK_RV fault, rv;

	SLOW_OP_ENTER(C_DigestEncryptUpdate, fault);
	rv = slow_real->C_DigestEncryptUpdate(h, in, in_len, out, out_len);
	if (fault == CKR_OK)
		return rv;
	slow_end_final(slow_real->C_DigestFinal, h);
	slow_end_final(slow_real->C_EncryptFinal, h);
	return fault;
}

static CK_RV slow_C_DecryptDigestUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len,
					CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	CK_RV fault, rv;

	SLOW_OP_ENTER(C_DecryptDigestUpdate, fault);
	rv = slow_real->C_DecryptDigestUpdate(h, in, in_len, out, out_len);
	if (fault == CKR_OK)
		return rv;
	slow_end_final(slow_real->C_DecryptFinal, h);
	slow_end_final(slow_real->C_DigestFinal, h);
	return fault;
}

static CK_RV slow_C_SignEncryptUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len,
				      CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	CK_RV fault, rv;

	SLOW_OP_ENTER(C_SignEncryptUpdate, fault);
	rv = slow_real->C_SignEncryptUpdate(h, in, in_len, out, out_len);
	if (fault == CKR_OK)
		return rv;
	slow_end_final(slow_real->C_SignFinal, h);
	slow_end_final(slow_real->C_EncryptFinal, h);
	return fault;
}

static CK_RV slow_C_DecryptVerifyUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len,
					CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	CK_RV fault, rv;

	SLOW_OP_ENTER(C_DecryptVerifyUpdate, fault);
	rv = slow_real->C_DecryptVerifyUpdate(h, in, in_len, out, out_len);
	if (fault == CKR_OK)
		return rv;
	slow_end_final(slow_real->C_DecryptFinal, h);
	slow_end_verify(h);
	return fault;
}

/* --- keys and random numbers ------------------------------------------------------- */

static CK_RV slow_C_GenerateKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech, CK_ATTRIBUTE_PTR tmpl,
				CK_ULONG count, CK_OBJECT_HANDLE_PTR key)
{
	SLOW_PLAIN(C_GenerateKey);
	return slow_real->C_GenerateKey(h, mech, tmpl, count, key);
}

static CK_RV slow_C_GenerateKeyPair(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech,
				    CK_ATTRIBUTE_PTR pub_tmpl, CK_ULONG pub_count,
				    CK_ATTRIBUTE_PTR priv_tmpl, CK_ULONG priv_count,
				    CK_OBJECT_HANDLE_PTR pub, CK_OBJECT_HANDLE_PTR priv)
{
	SLOW_PLAIN(C_GenerateKeyPair);
	return slow_real->C_GenerateKeyPair(h, mech, pub_tmpl, pub_count, priv_tmpl, priv_count,
					    pub, priv);
}

static CK_RV slow_C_WrapKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE wrapping,
			    CK_OBJECT_HANDLE key, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	SLOW_PLAIN(C_WrapKey);
	return slow_real->C_WrapKey(h, mech, wrapping, key, out, out_len);
}

static CK_RV slow_C_UnwrapKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech,
			      CK_OBJECT_HANDLE unwrapping, CK_BYTE_PTR wrapped,
			      CK_ULONG wrapped_len, CK_ATTRIBUTE_PTR tmpl, CK_ULONG count,
			      CK_OBJECT_HANDLE_PTR key)
{
	SLOW_PLAIN(C_UnwrapKey);
	return slow_real->C_UnwrapKey(h, mech, unwrapping, wrapped, wrapped_len, tmpl, count, key);
}

static CK_RV slow_C_DeriveKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE base,
			      CK_ATTRIBUTE_PTR tmpl, CK_ULONG count, CK_OBJECT_HANDLE_PTR key)
{
	SLOW_PLAIN(C_DeriveKey);
	return slow_real->C_DeriveKey(h, mech, base, tmpl, count, key);
}

static CK_RV slow_C_SeedRandom(CK_SESSION_HANDLE h, CK_BYTE_PTR seed, CK_ULONG len)
{
	SLOW_PLAIN(C_SeedRandom);
	return slow_real->C_SeedRandom(h, seed, len);
}

static CK_RV slow_C_GenerateRandom(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG len)
{
	SLOW_PLAIN(C_GenerateRandom);
	return slow_real->C_GenerateRandom(h, out, len);
}

static CK_RV slow_C_GetFunctionStatus(CK_SESSION_HANDLE h)
{
	SLOW_PLAIN(C_GetFunctionStatus);
	return slow_real->C_GetFunctionStatus(h);
}

static CK_RV slow_C_CancelFunction(CK_SESSION_HANDLE h)
{
	SLOW_PLAIN(C_CancelFunction);
	return slow_real->C_CancelFunction(h);
}

/* --- the function list ------------------------------------------------------------- */

/* clang-format off */
static CK_FUNCTION_LIST slow_function_list = {
	.version = { 2, 40 },
	.C_GetFunctionList = slow_C_GetFunctionList,
#define SLOW_ENTRY(name) .name = slow_##name,
	SLOW_FUNCTIONS(SLOW_ENTRY)
#undef SLOW_ENTRY
};
/* clang-format on */

/* The module's one export (tests/slowhsm/slowhsm.map). */
SLOW_EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
	return slow_C_GetFunctionList(list);
}
