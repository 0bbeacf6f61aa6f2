/* The HSM backend layer: PKCS#11 modules loaded once per process through
 * p11-kit, tokens found by URI, PINs in locked memory, pooled logged-in
 * sessions, per-token call statistics, and the data-object helpers. */
#include "config.h"

#include "kos/hsm.h"
#include "kos/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <p11-kit/p11-kit.h>
#include <p11-kit/uri.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define POOL_MAX 16                       /* idle sessions kept per token */
#define PIN_MAX 256                       /* bytes; SoftHSM allows 255 */
#define LOOKUP_BACKOFF KOS_USEC_PER_SEC   /* between lookups of a missing token */
#define EWMA_SHIFT 3                      /* latency EWMA weight 1/8 */

/* --- process-wide module registry ---------------------------------------
 * A module is loaded and initialised once per process however many tokens
 * and handles use it, and finalized when the last handle lets go. The lock
 * is held across p11_kit_module_initialize() on purpose: it is what keeps
 * two threads from initialising a module at once. */

struct hsm_module {
	struct hsm_module *next;
	char *path;
	CK_FUNCTION_LIST *funcs;
	unsigned refs;
};

static pthread_mutex_t modules_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hsm_module *modules;

struct hsm_token {
	char *name;
	kos_token_role role;
	P11KitUri *uri;
	char *uri_text;
	char *module_path;
	struct hsm_module *mod;    /* NULL when the module could not be loaded */
	unsigned char *pin;        /* in the handle's PIN region; NULL: none */
	size_t pin_len;

	bool lock_ready;
	pthread_mutex_t lock;      /* guards everything below */
	bool unusable;             /* never retried: bad setup or PIN refused */
	bool found;
	CK_SLOT_ID slot;
	bool login_required;
	CK_ULONG max_sessions;     /* the token's ulMaxSessionCount; 0: no limit known */
	kos_usec next_lookup;      /* monotonic */
	kos_rv reason_rv;          /* why unusable or not found */
	char reason[256];
	uint64_t generation;       /* bumped when the pool is flushed */
	CK_SESSION_HANDLE idle[POOL_MAX];
	size_t n_idle;
	struct kos_hsm_stats st;
};

struct kos_hsm {
	struct hsm_token *tokens;
	size_t n_tokens;
	unsigned char *pins;       /* the PIN region (kos_secmem_alloc) */
	struct hsm_module **mods;  /* one reference each */
	size_t n_mods;
};

static kos_usec mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (kos_usec)ts.tv_sec * KOS_USEC_PER_SEC + ts.tv_nsec / 1000;
}

/* --- CK_RV names and mapping ----------------------------------------------- */

#define CKR_NAME(x) { x, #x }
static const struct {
	CK_RV rv;
	const char *name;
} ckr_names[] = {
	CKR_NAME(CKR_OK),
	CKR_NAME(CKR_CANCEL),
	CKR_NAME(CKR_HOST_MEMORY),
	CKR_NAME(CKR_SLOT_ID_INVALID),
	CKR_NAME(CKR_GENERAL_ERROR),
	CKR_NAME(CKR_FUNCTION_FAILED),
	CKR_NAME(CKR_ARGUMENTS_BAD),
	CKR_NAME(CKR_CANT_LOCK),
	CKR_NAME(CKR_ATTRIBUTE_READ_ONLY),
	CKR_NAME(CKR_ATTRIBUTE_SENSITIVE),
	CKR_NAME(CKR_ATTRIBUTE_TYPE_INVALID),
	CKR_NAME(CKR_ATTRIBUTE_VALUE_INVALID),
	CKR_NAME(CKR_DATA_INVALID),
	CKR_NAME(CKR_DATA_LEN_RANGE),
	CKR_NAME(CKR_DEVICE_ERROR),
	CKR_NAME(CKR_DEVICE_MEMORY),
	CKR_NAME(CKR_DEVICE_REMOVED),
	CKR_NAME(CKR_ENCRYPTED_DATA_INVALID),
	CKR_NAME(CKR_ENCRYPTED_DATA_LEN_RANGE),
	CKR_NAME(CKR_FUNCTION_CANCELED),
	CKR_NAME(CKR_FUNCTION_NOT_SUPPORTED),
	CKR_NAME(CKR_KEY_HANDLE_INVALID),
	CKR_NAME(CKR_KEY_SIZE_RANGE),
	CKR_NAME(CKR_KEY_TYPE_INCONSISTENT),
	CKR_NAME(CKR_KEY_FUNCTION_NOT_PERMITTED),
	CKR_NAME(CKR_MECHANISM_INVALID),
	CKR_NAME(CKR_MECHANISM_PARAM_INVALID),
	CKR_NAME(CKR_OBJECT_HANDLE_INVALID),
	CKR_NAME(CKR_OPERATION_ACTIVE),
	CKR_NAME(CKR_OPERATION_NOT_INITIALIZED),
	CKR_NAME(CKR_PIN_INCORRECT),
	CKR_NAME(CKR_PIN_INVALID),
	CKR_NAME(CKR_PIN_LEN_RANGE),
	CKR_NAME(CKR_PIN_EXPIRED),
	CKR_NAME(CKR_PIN_LOCKED),
	CKR_NAME(CKR_SESSION_CLOSED),
	CKR_NAME(CKR_SESSION_COUNT),
	CKR_NAME(CKR_SESSION_HANDLE_INVALID),
	CKR_NAME(CKR_SESSION_READ_ONLY),
	CKR_NAME(CKR_SESSION_EXISTS),
	CKR_NAME(CKR_SIGNATURE_INVALID),
	CKR_NAME(CKR_SIGNATURE_LEN_RANGE),
	CKR_NAME(CKR_TEMPLATE_INCOMPLETE),
	CKR_NAME(CKR_TEMPLATE_INCONSISTENT),
	CKR_NAME(CKR_TOKEN_NOT_PRESENT),
	CKR_NAME(CKR_TOKEN_NOT_RECOGNIZED),
	CKR_NAME(CKR_TOKEN_WRITE_PROTECTED),
	CKR_NAME(CKR_USER_ALREADY_LOGGED_IN),
	CKR_NAME(CKR_USER_NOT_LOGGED_IN),
	CKR_NAME(CKR_USER_PIN_NOT_INITIALIZED),
	CKR_NAME(CKR_USER_TYPE_INVALID),
	CKR_NAME(CKR_USER_ANOTHER_ALREADY_LOGGED_IN),
	CKR_NAME(CKR_USER_TOO_MANY_TYPES),
	CKR_NAME(CKR_WRAPPED_KEY_INVALID),
	CKR_NAME(CKR_WRAPPING_KEY_HANDLE_INVALID),
	CKR_NAME(CKR_RANDOM_NO_RNG),
	CKR_NAME(CKR_DOMAIN_PARAMS_INVALID),
	CKR_NAME(CKR_CURVE_NOT_SUPPORTED),
	CKR_NAME(CKR_BUFFER_TOO_SMALL),
	CKR_NAME(CKR_CRYPTOKI_NOT_INITIALIZED),
	CKR_NAME(CKR_CRYPTOKI_ALREADY_INITIALIZED),
	CKR_NAME(CKR_FUNCTION_REJECTED),
};

const char *kos_hsm_ckr_name(CK_RV rv)
{
	static _Thread_local char other[32];
	size_t i;

	for (i = 0; i < KOS_ARRAY_SIZE(ckr_names); i++)
		if (ckr_names[i].rv == rv)
			return ckr_names[i].name;
	snprintf(other, sizeof(other), "CKR_0x%lx", (unsigned long)rv);
	return other;
}

kos_rv kos_hsm_rv(CK_RV rv)
{
	switch (rv) {
	case CKR_OK:
		return KOS_OK;
	case CKR_HOST_MEMORY:
	case CKR_DEVICE_MEMORY:
		return KOS_E_NOMEM;
	case CKR_PIN_INCORRECT:
	case CKR_PIN_INVALID:
	case CKR_PIN_LEN_RANGE:
	case CKR_PIN_EXPIRED:
	case CKR_PIN_LOCKED:
	case CKR_USER_PIN_NOT_INITIALIZED:
	case CKR_SIGNATURE_INVALID:
	case CKR_ENCRYPTED_DATA_INVALID:
	case CKR_WRAPPED_KEY_INVALID:
		return KOS_E_INTEGRITY;
	case CKR_SLOT_ID_INVALID:
	case CKR_DEVICE_ERROR:
	case CKR_DEVICE_REMOVED:
	case CKR_TOKEN_NOT_PRESENT:
	case CKR_TOKEN_NOT_RECOGNIZED:
	case CKR_SESSION_CLOSED:
	case CKR_SESSION_HANDLE_INVALID:
	case CKR_USER_NOT_LOGGED_IN:
	case CKR_CRYPTOKI_NOT_INITIALIZED:
		return KOS_E_IO;
	case CKR_ARGUMENTS_BAD:
	case CKR_ATTRIBUTE_READ_ONLY:
	case CKR_ATTRIBUTE_TYPE_INVALID:
	case CKR_ATTRIBUTE_VALUE_INVALID:
	case CKR_DATA_INVALID:
	case CKR_DATA_LEN_RANGE:
	case CKR_KEY_HANDLE_INVALID:
	case CKR_KEY_SIZE_RANGE:
	case CKR_KEY_TYPE_INCONSISTENT:
	case CKR_MECHANISM_INVALID:
	case CKR_MECHANISM_PARAM_INVALID:
	case CKR_OBJECT_HANDLE_INVALID:
	case CKR_TEMPLATE_INCOMPLETE:
	case CKR_TEMPLATE_INCONSISTENT:
	case CKR_CURVE_NOT_SUPPORTED:
	case CKR_DOMAIN_PARAMS_INVALID:
		return KOS_E_INVALID;
	case CKR_BUFFER_TOO_SMALL:
	case CKR_SIGNATURE_LEN_RANGE:
	case CKR_ENCRYPTED_DATA_LEN_RANGE:
		return KOS_E_RANGE;
	case CKR_SESSION_COUNT:
	case CKR_CANT_LOCK:
	case CKR_FUNCTION_CANCELED:
		return KOS_E_BUSY;
	default:
		return KOS_E_CRYPTO;
	}
}

int kos_hsm_rv_session_failed(CK_RV rv)
{
	switch (rv) {
	case CKR_SESSION_HANDLE_INVALID:
	case CKR_SESSION_CLOSED:
	case CKR_DEVICE_REMOVED:
	case CKR_TOKEN_NOT_PRESENT:
	case CKR_DEVICE_ERROR:
	case CKR_USER_NOT_LOGGED_IN:
	case CKR_TOKEN_NOT_RECOGNIZED:
	case CKR_SLOT_ID_INVALID:
	case CKR_CRYPTOKI_NOT_INITIALIZED:
	/* a caller left an operation running: the session is no use to the next */
	case CKR_OPERATION_ACTIVE:
		return 1;
	default:
		return 0;
	}
}

/* The token itself is gone or broken: every pooled session is dead and the
 * slot must be looked up again. */
static bool rv_device_failed(CK_RV rv)
{
	return rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT || rv == CKR_DEVICE_ERROR ||
	       rv == CKR_TOKEN_NOT_RECOGNIZED || rv == CKR_SLOT_ID_INVALID ||
	       rv == CKR_CRYPTOKI_NOT_INITIALIZED;
}

static bool rv_pin_refused(CK_RV rv)
{
	return rv == CKR_PIN_INCORRECT || rv == CKR_PIN_INVALID || rv == CKR_PIN_LEN_RANGE ||
	       rv == CKR_PIN_EXPIRED || rv == CKR_PIN_LOCKED || rv == CKR_USER_PIN_NOT_INITIALIZED;
}

/* --- per-token errors and statistics -------------------------------------- */

static struct hsm_token *token_at(kos_hsm *hsm, size_t tok)
{
	if (hsm == NULL || tok >= hsm->n_tokens) {
		kos_error_set(KOS_E_RANGE, "no backend token #%zu", tok);
		return NULL;
	}
	return &hsm->tokens[tok];
}

static kos_rv token_verror(const char *name, kos_rv rv, const char *fmt, va_list ap)
	KOS_PRINTF(3, 0);
static kos_rv token_verror(const char *name, kos_rv rv, const char *fmt, va_list ap)
{
	char msg[384];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	return kos_error_set(rv, "token %s: %s", name, msg);
}

/* Sets the thread's detail to "token NAME: ..." and returns rv. */
static kos_rv token_error(const struct hsm_token *t, kos_rv rv, const char *fmt, ...)
	KOS_PRINTF(3, 4);
static kos_rv token_error(const struct hsm_token *t, kos_rv rv, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	rv = token_verror(t->name, rv, fmt, ap);
	va_end(ap);
	return rv;
}

kos_rv kos_hsm_error(const kos_hsm *hsm, size_t tok, kos_rv rv, const char *fmt, ...)
{
	const char *name = kos_hsm_token_get0_name(hsm, tok);
	va_list ap;

	va_start(ap, fmt);
	rv = token_verror(name != NULL ? name : "?", rv, fmt, ap);
	va_end(ap);
	return rv;
}

static kos_rv ckr_error(const struct hsm_token *t, const char *func, CK_RV crv)
{
	return token_error(t, kos_hsm_rv(crv), "%s: %s (%s)", func ? func : "PKCS#11 call",
			   kos_hsm_ckr_name(crv), p11_kit_strerror(crv));
}

kos_rv kos_hsm_fail(kos_hsm *hsm, size_t tok, const char *func, CK_RV rv)
{
	struct hsm_token *t = token_at(hsm, tok);

	if (t == NULL)
		return KOS_E_RANGE;
	return ckr_error(t, func, rv);
}

/* Under t->lock: counts one call that started at start (monotonic). */
static void count_call_locked(struct hsm_token *t, kos_usec start, bool ok, const char *error)
{
	kos_usec lat = mono_now() - start;

	if (lat < 0)
		lat = 0;
	t->st.calls++;
	t->st.latency_total += lat;
	if (t->st.calls == 1)
		t->st.latency_ewma = lat;
	else
		t->st.latency_ewma += (lat - t->st.latency_ewma) / (1 << EWMA_SHIFT);
	t->st.last_call = kos_now();
	if (!ok) {
		t->st.failures++;
		t->st.last_failure = t->st.last_call;
		snprintf(t->st.last_error, sizeof(t->st.last_error), "%s", error);
	}
}

/* Marks the token unusable (never retried) with the thread's current detail. */
static void mark_unusable(struct hsm_token *t, kos_rv rv)
{
	pthread_mutex_lock(&t->lock);
	t->unusable = true;
	t->reason_rv = rv;
	snprintf(t->reason, sizeof(t->reason), "%s", kos_last_error());
	pthread_mutex_unlock(&t->lock);
}

/* --- PINs ------------------------------------------------------------------
 * Kept for the handle's lifetime (a dropped session means logging in again),
 * so in one region per handle: locked out of swap, left out of core dumps,
 * wiped before release. Each token has a slot of PIN_SLOT bytes in it. */

#define PIN_SLOT (PIN_MAX + 8) /* room to read a PIN, its line end, and one more */

/* Reads the PIN named by source ("file:PATH" or "env:NAME") into buf, a
 * PIN_SLOT-byte slot of the PIN region, and points t->pin at it. A PIN file
 * must be a regular file nobody but its owner can read or write. */
static kos_rv read_pin(struct hsm_token *t, const char *source, unsigned char *buf)
{
	size_t len = 0;
	struct stat sb;
	int fd = -1;
	kos_rv rv;

	if (strncmp(source, "env:", 4) == 0) {
		const char *v = getenv(source + 4);

		if (v == NULL || v[0] == '\0') {
			rv = token_error(t, KOS_E_POLICY,
					 "PIN variable %s is not set in the environment", source + 4);
			goto out;
		}
		len = strlen(v);
		if (len > PIN_MAX) {
			rv = token_error(t, KOS_E_POLICY, "PIN variable %s is longer than %d bytes",
					 source + 4, PIN_MAX);
			goto out;
		}
		memcpy(buf, v, len);
	} else if (strncmp(source, "file:", 5) == 0) {
		const char *path = source + 5;
		ssize_t got;

		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (fd < 0) {
			rv = token_error(t, KOS_E_IO, "PIN file %s: %s", path, strerror(errno));
			goto out;
		}
		/* fstat of the opened file: no window to swap the file in between */
		if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
			rv = token_error(t, KOS_E_IO, "PIN file %s: not a regular file", path);
			goto out;
		}
		if ((sb.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
			rv = token_error(t, KOS_E_POLICY,
					 "PIN file %s is accessible by group or others (mode %04o); "
					 "refused: chmod 600 it",
					 path, (unsigned)(sb.st_mode & 07777));
			goto out;
		}
		/* One byte more than a PIN and its line end tells "too long". */
		while (len < PIN_MAX + 3) {
			got = read(fd, buf + len, PIN_MAX + 3 - len);
			if (got < 0 && errno == EINTR)
				continue;
			if (got < 0) {
				rv = token_error(t, KOS_E_IO, "PIN file %s: %s", path, strerror(errno));
				goto out;
			}
			if (got == 0)
				break;
			len += (size_t)got;
		}
		if (len > 0 && buf[len - 1] == '\n')
			len--;
		if (len > 0 && buf[len - 1] == '\r')
			len--;
		if (len > PIN_MAX) {
			rv = token_error(t, KOS_E_POLICY, "PIN file %s: longer than %d bytes", path,
					 PIN_MAX);
			goto out;
		}
		if (memchr(buf, '\n', len) != NULL) {
			rv = token_error(t, KOS_E_POLICY, "PIN file %s: more than one line", path);
			goto out;
		}
	} else {
		rv = token_error(t, KOS_E_POLICY, "unknown PIN source (file: or env:)");
		goto out;
	}
	if (len == 0) {
		rv = token_error(t, KOS_E_POLICY, "the PIN from %s is empty", source);
		goto out;
	}
	t->pin = buf;
	t->pin_len = len;
	rv = KOS_OK;
out:
	if (fd >= 0)
		close(fd);
	if (rv != KOS_OK)
		OPENSSL_cleanse(buf, PIN_SLOT);
	return rv;
}

/* --- modules --------------------------------------------------------------- */

/* Applies or checks conf's environment; modules_lock held. */
static kos_rv apply_env_locked(const kos_config *conf)
{
	size_t i;

	for (i = 0; i < kos_config_env_count(conf); i++) {
		const char *name = kos_config_env_get0_name(conf, i);
		const char *value = kos_config_env_get0_value(conf, i);
		const char *cur = getenv(name);

		if (cur != NULL && strcmp(cur, value) == 0)
			continue;
		if (modules != NULL)
			return kos_error_set(KOS_E_BUSY,
					     "environment: %s must be '%s' but PKCS#11 modules are "
					     "already loaded with '%s' (a module reads its environment "
					     "once; free every backend handle first)",
					     name, value, cur ? cur : "(unset)");
		if (setenv(name, value, 1) != 0)
			return kos_error_set(KOS_E_NOMEM, "environment: cannot set %s: %s", name,
					     strerror(errno));
	}
	return KOS_OK;
}

/* Takes a reference on the module at path, loading and initialising it when
 * this process has not; modules_lock held. On failure the detail says why. */
static kos_rv module_get_locked(const char *path, struct hsm_module **out)
{
	struct hsm_module *m;
	struct stat sb;
	CK_RV crv;
	kos_rv rv;

	for (m = modules; m != NULL; m = m->next) {
		if (strcmp(m->path, path) == 0) {
			m->refs++;
			*out = m;
			return KOS_OK;
		}
	}
	if (stat(path, &sb) != 0)
		return kos_error_set(KOS_E_IO, "module %s: %s", path, strerror(errno));
	m = calloc(1, sizeof(*m));
	if (m == NULL || (m->path = kos_strdup(path)) == NULL) {
		free(m);
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	}
	m->funcs = p11_kit_module_load(path, 0);
	if (m->funcs == NULL) {
		const char *why = p11_kit_message();

		rv = kos_error_set(KOS_E_IO, "module %s: cannot load: %s", path,
				   why ? why : "unknown reason");
		goto fail;
	}
	crv = p11_kit_module_initialize(m->funcs);
	if (crv != CKR_OK) {
		rv = kos_error_set(kos_hsm_rv(crv), "module %s: C_Initialize: %s (%s)", path,
				   kos_hsm_ckr_name(crv), p11_kit_strerror(crv));
		p11_kit_module_release(m->funcs);
		goto fail;
	}
	m->refs = 1;
	m->next = modules;
	modules = m;
	*out = m;
	return KOS_OK;
fail:
	free(m->path);
	free(m);
	return rv;
}

static void module_put_locked(struct hsm_module *m)
{
	struct hsm_module **pp;

	if (--m->refs > 0)
		return;
	for (pp = &modules; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == m) {
			*pp = m->next;
			break;
		}
	}
	p11_kit_module_finalize(m->funcs);
	p11_kit_module_release(m->funcs);
	free(m->path);
	free(m);
}

/* Loads every module conf names (once each) and points the tokens at them;
 * a module that fails makes its tokens unusable. Only an environment
 * conflict or memory fails the whole open. */
static kos_rv load_modules(kos_hsm *hsm, const kos_config *conf)
{
	size_t i, j;
	kos_rv rv;

	hsm->mods = calloc(hsm->n_tokens ? hsm->n_tokens : 1, sizeof(*hsm->mods));
	if (hsm->mods == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	pthread_mutex_lock(&modules_lock);
	rv = apply_env_locked(conf);
	if (rv != KOS_OK)
		goto out;
	for (i = 0; i < hsm->n_tokens; i++) {
		struct hsm_token *t = &hsm->tokens[i];
		struct hsm_module *m = NULL;

		for (j = 0; j < hsm->n_mods; j++)
			if (strcmp(hsm->mods[j]->path, t->module_path) == 0)
				m = hsm->mods[j];
		if (m == NULL) {
			rv = module_get_locked(t->module_path, &m);
			if (rv == KOS_E_NOMEM)
				goto out;
			if (rv != KOS_OK) {
				mark_unusable(t, token_error(t, rv, "%s", kos_last_error()));
				rv = KOS_OK;
				continue;
			}
			hsm->mods[hsm->n_mods++] = m;
		}
		t->mod = m;
	}
out:
	pthread_mutex_unlock(&modules_lock);
	return rv;
}

/* --- finding tokens -------------------------------------------------------- */

/* The tokens present in a module at one moment. */
struct slot_scan {
	CK_SLOT_ID *slots;
	CK_TOKEN_INFO *info;
	bool *ok;                  /* C_GetTokenInfo answered for that slot */
	CK_ULONG n;
};

static void scan_free(struct slot_scan *sc)
{
	free(sc->slots);
	free(sc->info);
	free(sc->ok);
	memset(sc, 0, sizeof(*sc));
}

/* Lists the module's present tokens. Failures name token t. */
static kos_rv scan_slots(const struct hsm_token *t, CK_FUNCTION_LIST *f, struct slot_scan *sc)
{
	CK_ULONG n = 0, i;
	CK_RV crv;
	int tries;

	memset(sc, 0, sizeof(*sc));
	for (tries = 0;; tries++) {
		crv = f->C_GetSlotList(CK_TRUE, NULL, &n);
		if (crv != CKR_OK)
			return ckr_error(t, "C_GetSlotList", crv);
		scan_free(sc);
		sc->slots = calloc(n ? n : 1, sizeof(*sc->slots));
		if (sc->slots == NULL)
			return token_error(t, KOS_E_NOMEM, "out of memory");
		crv = f->C_GetSlotList(CK_TRUE, sc->slots, &n);
		if (crv == CKR_OK)
			break;
		/* a token arrived between the two calls */
		if (crv != CKR_BUFFER_TOO_SMALL || tries == 3) {
			scan_free(sc);
			return ckr_error(t, "C_GetSlotList", crv);
		}
	}
	sc->n = n;
	sc->info = calloc(n ? n : 1, sizeof(*sc->info));
	sc->ok = calloc(n ? n : 1, sizeof(*sc->ok));
	if (sc->info == NULL || sc->ok == NULL) {
		scan_free(sc);
		return token_error(t, KOS_E_NOMEM, "out of memory");
	}
	/* a slot emptied since the list was made is simply skipped */
	for (i = 0; i < n; i++)
		sc->ok[i] = f->C_GetTokenInfo(sc->slots[i], &sc->info[i]) == CKR_OK;
	return KOS_OK;
}

/* Finds t's slot by matching its URI against every present token, in scan
 * (NULL: scan now). Called without t->lock; records the result under it. */
static kos_rv lookup_token(struct hsm_token *t, const struct slot_scan *scan)
{
	struct slot_scan own = { 0 };
	const struct slot_scan *sc = scan;
	CK_SLOT_ID slot = 0;
	CK_ULONG i, matches = 0;
	CK_FLAGS flags = 0;
	CK_ULONG max_sessions = 0;
	kos_rv rv;

	if (sc == NULL) {
		rv = scan_slots(t, t->mod->funcs, &own);
		if (rv != KOS_OK)
			goto out;
		sc = &own;
	}
	for (i = 0; i < sc->n; i++) {
		if (!sc->ok[i] || !(sc->info[i].flags & CKF_TOKEN_INITIALIZED))
			continue;
		if (p11_kit_uri_match_token_info(t->uri, &sc->info[i])) {
			if (matches++ == 0) {
				slot = sc->slots[i];
				flags = sc->info[i].flags;
				/* CK_EFFECTIVELY_INFINITE is 0 and CK_UNAVAILABLE_INFORMATION
				 * all ones: neither is a limit */
				max_sessions = sc->info[i].ulMaxSessionCount;
				if (max_sessions == CK_UNAVAILABLE_INFORMATION)
					max_sessions = 0;
			}
		}
	}
	if (matches == 0) {
		rv = token_error(t, KOS_E_NOTFOUND, "not found: no token matches %s in module %s",
				 t->uri_text, t->module_path);
		goto out;
	}
	if (matches > 1) {
		rv = token_error(t, KOS_E_POLICY,
				 "%lu tokens match %s in module %s: make the URI name one "
				 "(add serial=)",
				 (unsigned long)matches, t->uri_text, t->module_path);
		goto out;
	}
	if ((flags & CKF_LOGIN_REQUIRED) && !(flags & CKF_USER_PIN_INITIALIZED)) {
		rv = token_error(t, KOS_E_POLICY, "its user PIN is not initialised");
		goto out;
	}
	rv = KOS_OK;
out:
	scan_free(&own);
	pthread_mutex_lock(&t->lock);
	if (rv == KOS_OK) {
		t->found = true;
		t->slot = slot;
		t->login_required = (flags & CKF_LOGIN_REQUIRED) != 0;
		t->max_sessions = max_sessions;
	} else {
		t->found = false;
		t->reason_rv = rv;
		snprintf(t->reason, sizeof(t->reason), "%s", kos_last_error());
		t->next_lookup = mono_now() + LOOKUP_BACKOFF;
	}
	pthread_mutex_unlock(&t->lock);
	return rv;
}

/* --- sessions ------------------------------------------------------------ */

/* A get that failed: counted as a failed call; returns rv. */
static kos_rv get_failed(struct hsm_token *t, kos_hsm_session *s, kos_rv rv, bool was_busy)
{
	pthread_mutex_lock(&t->lock);
	if (was_busy)
		t->st.sessions_busy--;
	count_call_locked(t, s->start, false, kos_last_error());
	pthread_mutex_unlock(&t->lock);
	s->h = CK_INVALID_HANDLE;
	return rv;
}

kos_rv kos_hsm_session_get(kos_hsm *hsm, size_t tok, kos_hsm_session *s)
{
	struct hsm_token *t = token_at(hsm, tok);
	CK_FUNCTION_LIST *f;
	CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
	CK_SESSION_INFO info;
	CK_SLOT_ID slot;
	bool login;
	uint64_t gen;
	CK_RV crv;
	kos_rv rv;

	memset(s, 0, sizeof(*s));
	if (t == NULL)
		return KOS_E_RANGE;
	s->tok = tok;
	s->h = CK_INVALID_HANDLE;
	s->start = mono_now();
	pthread_mutex_lock(&t->lock);
	if (t->unusable || (!t->found && s->start < t->next_lookup)) {
		rv = kos_error_set(t->reason_rv, "%s", t->reason);
		pthread_mutex_unlock(&t->lock);
		return get_failed(t, s, rv, false);
	}
	if (!t->found) {
		pthread_mutex_unlock(&t->lock);
		rv = lookup_token(t, NULL);
		if (rv != KOS_OK)
			return get_failed(t, s, rv, false);
		pthread_mutex_lock(&t->lock);
	}
	f = t->mod->funcs;
	s->f = f;
	t->st.sessions_busy++;
	if (t->n_idle > 0) {
		s->h = t->idle[--t->n_idle];
		s->generation = t->generation;
		t->st.sessions_idle = (uint32_t)t->n_idle;
		pthread_mutex_unlock(&t->lock);
		return KOS_OK;
	}
	slot = t->slot;
	login = t->login_required;
	gen = t->generation;
	pthread_mutex_unlock(&t->lock);

	crv = f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &h);
	if (crv != CKR_OK) {
		rv = ckr_error(t, "C_OpenSession", crv);
		if (rv_device_failed(crv)) {
			pthread_mutex_lock(&t->lock);
			t->found = false;
			t->generation++;
			pthread_mutex_unlock(&t->lock);
		}
		return get_failed(t, s, rv, true);
	}
	pthread_mutex_lock(&t->lock);
	t->st.sessions_opened++;
	pthread_mutex_unlock(&t->lock);
	if (login) {
		/* Login state belongs to the token, not the session: a new session
		 * beside logged-in ones is already in the user state. */
		crv = f->C_GetSessionInfo(h, &info);
		if (crv != CKR_OK) {
			rv = ckr_error(t, "C_GetSessionInfo", crv);
			goto fail;
		}
		if (info.state != CKS_RO_USER_FUNCTIONS && info.state != CKS_RW_USER_FUNCTIONS) {
			crv = f->C_Login(h, CKU_USER, t->pin, (CK_ULONG)t->pin_len);
			if (crv == CKR_OK) {
				pthread_mutex_lock(&t->lock);
				t->st.logins++;
				pthread_mutex_unlock(&t->lock);
			} else if (crv != CKR_USER_ALREADY_LOGGED_IN) {
				rv = ckr_error(t, "C_Login", crv);
				if (rv_pin_refused(crv)) {
					/* Trying a wrong PIN again and again locks real tokens. */
					token_error(t, rv, "C_Login: %s (%s); not retried until the "
						    "backend is reopened",
						    kos_hsm_ckr_name(crv), p11_kit_strerror(crv));
					mark_unusable(t, rv);
				}
				goto fail;
			}
		}
	}
	s->h = h;
	s->generation = gen;
	return KOS_OK;
fail:
	f->C_CloseSession(h);
	return get_failed(t, s, rv, true);
}

void kos_hsm_session_put(kos_hsm *hsm, kos_hsm_session *s, CK_RV rv)
{
	struct hsm_token *t = token_at(hsm, s->tok);
	CK_SESSION_HANDLE flush[POOL_MAX];
	size_t n_flush = 0, i;
	bool close_it = false;
	char err[256] = "";

	if (t == NULL || s->h == CK_INVALID_HANDLE)
		return;
	if (rv != CKR_OK)
		snprintf(err, sizeof(err), "token %s: %s: %s (%s)", t->name,
			 s->func ? s->func : "PKCS#11 call", kos_hsm_ckr_name(rv),
			 p11_kit_strerror(rv));
	pthread_mutex_lock(&t->lock);
	count_call_locked(t, s->start, rv == CKR_OK, err);
	t->st.sessions_busy--;
	if (kos_hsm_rv_session_failed(rv)) {
		close_it = true;
		t->st.sessions_dropped++;
		/* Device errors kill every session; a lost login affects them all. */
		if (rv_device_failed(rv) || rv == CKR_USER_NOT_LOGGED_IN) {
			memcpy(flush, t->idle, t->n_idle * sizeof(flush[0]));
			n_flush = t->n_idle;
			t->n_idle = 0;
			t->generation++;
			t->st.sessions_dropped += n_flush;
			if (rv_device_failed(rv)) {
				t->found = false;
				t->next_lookup = 0;
			}
		}
	} else if (s->generation == t->generation && t->n_idle < POOL_MAX) {
		t->idle[t->n_idle++] = s->h;
	} else {
		close_it = true;
	}
	t->st.sessions_idle = (uint32_t)t->n_idle;
	pthread_mutex_unlock(&t->lock);
	/* Closing a dead session fails harmlessly; the handle is gone either way. */
	if (close_it)
		s->f->C_CloseSession(s->h);
	for (i = 0; i < n_flush; i++)
		s->f->C_CloseSession(flush[i]);
	s->h = CK_INVALID_HANDLE;
}

kos_rv kos_hsm_run(kos_hsm *hsm, size_t tok, kos_hsm_op_fn *fn, void *arg)
{
	kos_hsm_session s;
	const char *func;
	int attempt;
	CK_RV crv;
	kos_rv rv;

	for (attempt = 0;; attempt++) {
		rv = kos_hsm_session_get(hsm, tok, &s);
		if (rv != KOS_OK)
			return rv;
		crv = fn(&s, arg);
		func = s.func;
		kos_hsm_session_put(hsm, &s, crv);
		if (crv == CKR_OK)
			return KOS_OK;
		if (attempt == 1 || !kos_hsm_rv_session_failed(crv))
			return kos_hsm_fail(hsm, tok, func, crv);
	}
}

CK_FUNCTION_LIST *kos_hsm_get0_funcs(kos_hsm *hsm, size_t tok)
{
	struct hsm_token *t = token_at(hsm, tok);

	return t != NULL && t->mod != NULL ? t->mod->funcs : NULL;
}

/* --- open and free ----------------------------------------------------------- */

static void token_uninit(struct hsm_token *t)
{
	size_t i;

	if (t->mod != NULL)
		for (i = 0; i < t->n_idle; i++)
			t->mod->funcs->C_CloseSession(t->idle[i]);
	t->n_idle = 0;
	t->pin = NULL; /* wiped with the region */
	if (t->uri != NULL)
		p11_kit_uri_free(t->uri);
	free(t->name);
	free(t->uri_text);
	free(t->module_path);
	if (t->lock_ready)
		pthread_mutex_destroy(&t->lock);
}

void kos_hsm_free(kos_hsm *hsm)
{
	size_t i;

	if (hsm == NULL)
		return;
	for (i = 0; i < hsm->n_tokens; i++)
		token_uninit(&hsm->tokens[i]);
	free(hsm->tokens);
	kos_secmem_free(hsm->pins);
	pthread_mutex_lock(&modules_lock);
	for (i = 0; i < hsm->n_mods; i++)
		module_put_locked(hsm->mods[i]);
	pthread_mutex_unlock(&modules_lock);
	free(hsm->mods);
	free(hsm);
}

/* Generations never repeat within a process: a cache keyed by a token and
 * a generation (signer.c's key handles) cannot mistake a new handle, or a
 * module initialised afresh, for one it saw before. */
static _Atomic uint64_t generation_base;

static kos_rv token_init(struct hsm_token *t, const kos_config *conf, size_t i)
{
	int r;

	t->generation = atomic_fetch_add(&generation_base, 1) << 32;

	if (pthread_mutex_init(&t->lock, NULL) != 0)
		return kos_error_set(KOS_E_NOMEM, "cannot create a mutex");
	t->lock_ready = true;
	t->name = kos_strdup(kos_config_token_get0_name(conf, i));
	t->uri_text = kos_strdup(kos_config_token_get0_uri(conf, i));
	t->module_path = kos_strdup(kos_config_token_get0_module(conf, i));
	t->uri = p11_kit_uri_new();
	if (t->name == NULL || t->uri_text == NULL || t->module_path == NULL || t->uri == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	kos_config_token_get_role(conf, i, &t->role);
	t->st.available = 1;
	/* kos_config_load() checked the URI; a failure here is a bug. */
	r = p11_kit_uri_parse(t->uri_text, P11_KIT_URI_FOR_TOKEN, t->uri);
	if (r != P11_KIT_URI_OK)
		return token_error(t, KOS_E_INTERNAL, "uri: %s", p11_kit_uri_message(r));
	return KOS_OK;
}

kos_rv kos_hsm_open(const kos_config *conf, unsigned flags, kos_hsm **out)
{
	kos_hsm *hsm;
	size_t i, j, n;
	kos_rv rv;

	*out = NULL;
	if (conf == NULL || (flags & ~KOS_HSM_OPEN_STRICT) != 0)
		return kos_error_set(KOS_E_INVALID, "kos_hsm_open: bad arguments");
	n = kos_config_token_count(conf);
	hsm = calloc(1, sizeof(*hsm));
	if (hsm == NULL || (hsm->tokens = calloc(n ? n : 1, sizeof(*hsm->tokens))) == NULL) {
		free(hsm);
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	}
	for (i = 0; i < n; i++) {
		hsm->n_tokens++;
		rv = token_init(&hsm->tokens[i], conf, i);
		if (rv != KOS_OK)
			goto fail;
	}
	rv = load_modules(hsm, conf);
	if (rv != KOS_OK)
		goto fail;
	hsm->pins = kos_secmem_alloc((n ? n : 1) * PIN_SLOT, KOS_SECMEM_GUARD);
	if (hsm->pins == NULL) {
		rv = kos_error_set(KOS_E_NOMEM, "no memory for the PINs");
		goto fail;
	}
	for (i = 0; i < n; i++) {
		struct hsm_token *t = &hsm->tokens[i];

		if (t->unusable)
			continue;
		rv = read_pin(t, kos_config_token_get0_pin(conf, i), hsm->pins + i * PIN_SLOT);
		if (rv != KOS_OK)
			mark_unusable(t, rv);
	}
	/* One scan per module, not one per token: start-up stays linear in the
	 * number of tokens. */
	for (j = 0; j < hsm->n_mods; j++) {
		struct slot_scan sc;
		kos_rv srv = KOS_E_INTERNAL;

		for (i = 0; i < n; i++) {
			struct hsm_token *t = &hsm->tokens[i];

			if (t->unusable || t->mod != hsm->mods[j])
				continue;
			if (srv == KOS_E_INTERNAL)
				srv = scan_slots(t, t->mod->funcs, &sc);
			if (srv == KOS_OK)
				(void)lookup_token(t, &sc);
			else
				(void)lookup_token(t, NULL); /* records its own failure */
		}
		if (srv == KOS_OK)
			scan_free(&sc);
	}
	/* Two names for one token would put two shares of a set on it. */
	for (i = 0; i < n; i++) {
		for (j = 0; j < i; j++) {
			struct hsm_token *a = &hsm->tokens[j], *b = &hsm->tokens[i];

			if (a->found && b->found && a->mod == b->mod && a->slot == b->slot &&
			    !a->unusable && !b->unusable) {
				rv = token_error(b, KOS_E_POLICY, "is the same token as %s (%s)",
						 a->name, b->uri_text);
				mark_unusable(b, rv);
			}
		}
	}
	for (i = 0; i < n; i++)
		hsm->tokens[i].st.available = !hsm->tokens[i].unusable;
	if (flags & KOS_HSM_OPEN_STRICT) {
		for (i = 0; i < n; i++) {
			kos_hsm_session s;

			rv = kos_hsm_session_get(hsm, i, &s);
			if (rv != KOS_OK)
				goto fail;
			kos_hsm_session_put(hsm, &s, CKR_OK);
		}
	}
	*out = hsm;
	return KOS_OK;
fail:
	{
		/* kos_hsm_free() must not overwrite the reason */
		char why[512];

		snprintf(why, sizeof(why), "%s", kos_last_error());
		kos_hsm_free(hsm);
		return kos_error_set(rv, "%s", why);
	}
}

size_t kos_hsm_token_count(const kos_hsm *hsm)
{
	return hsm != NULL ? hsm->n_tokens : 0;
}

const char *kos_hsm_token_get0_name(const kos_hsm *hsm, size_t tok)
{
	return hsm != NULL && tok < hsm->n_tokens ? hsm->tokens[tok].name : NULL;
}

kos_token_role kos_hsm_token_role(const kos_hsm *hsm, size_t tok)
{
	return hsm != NULL && tok < hsm->n_tokens ? hsm->tokens[tok].role
						  : (kos_token_role)KOS_TOKEN_ROLE_COUNT;
}

unsigned long kos_hsm_token_max_sessions(kos_hsm *hsm, size_t tok)
{
	struct hsm_token *t = token_at(hsm, tok);
	unsigned long n;

	if (t == NULL || !t->lock_ready)
		return 0;
	pthread_mutex_lock(&t->lock);
	n = t->found ? (unsigned long)t->max_sessions : 0;
	pthread_mutex_unlock(&t->lock);
	return n;
}

kos_rv kos_hsm_token_find(const kos_hsm *hsm, const char *name, size_t *tok)
{
	size_t i;

	for (i = 0; hsm != NULL && name != NULL && i < hsm->n_tokens; i++) {
		if (strcmp(hsm->tokens[i].name, name) == 0) {
			*tok = i;
			return KOS_OK;
		}
	}
	return kos_error_set(KOS_E_NOTFOUND, "no backend token called '%s'", name ? name : "");
}

kos_rv kos_hsm_token_stats(kos_hsm *hsm, size_t tok, struct kos_hsm_stats *st)
{
	struct hsm_token *t = token_at(hsm, tok);

	if (t == NULL)
		return KOS_E_RANGE;
	pthread_mutex_lock(&t->lock);
	*st = t->st;
	st->available = !t->unusable;
	pthread_mutex_unlock(&t->lock);
	return KOS_OK;
}

/* --- operations ------------------------------------------------------------ */

struct check_arg {
	int logged_in;
};

static CK_RV check_op(kos_hsm_session *s, void *arg)
{
	struct check_arg *a = arg;
	CK_SESSION_INFO info;
	CK_RV crv;

	crv = s->f->C_GetSessionInfo(s->h, &info);
	if (crv != CKR_OK) {
		s->func = "C_GetSessionInfo";
		return crv;
	}
	a->logged_in = info.state == CKS_RO_USER_FUNCTIONS || info.state == CKS_RW_USER_FUNCTIONS;
	return CKR_OK;
}

kos_rv kos_hsm_token_check(kos_hsm *hsm, size_t tok, int *logged_in)
{
	struct check_arg a = { 0 };
	kos_rv rv = kos_hsm_run(hsm, tok, check_op, &a);

	if (logged_in != NULL)
		*logged_in = rv == KOS_OK ? a.logged_in : 0;
	return rv;
}

/* --- finding and destroying objects ---------------------------------------- */

#define FIND_BATCH    64 /* handles asked for per C_FindObjects */
#define DESTROY_BATCH 16

/* Ends the find whatever happened in it; a failure of the find itself is
 * the one to report. */
static CK_RV find_end(kos_hsm_session *s, CK_RV crv)
{
	CK_RV fin = s->f->C_FindObjectsFinal(s->h);

	if (crv == CKR_OK && fin != CKR_OK) {
		s->func = "C_FindObjectsFinal";
		crv = fin;
	}
	return crv;
}

CK_RV kos_hsm_find(kos_hsm_session *s, CK_ATTRIBUTE *tmpl, CK_ULONG count, CK_OBJECT_HANDLE *objs,
		   CK_ULONG max, CK_ULONG *n)
{
	CK_RV crv;

	*n = 0;
	crv = s->f->C_FindObjectsInit(s->h, tmpl, count);
	if (crv != CKR_OK) {
		s->func = "C_FindObjectsInit";
		return crv;
	}
	crv = s->f->C_FindObjects(s->h, objs, max, n);
	if (crv != CKR_OK)
		s->func = "C_FindObjects";
	return find_end(s, crv);
}

CK_RV kos_hsm_find_one(kos_hsm_session *s, CK_ATTRIBUTE *tmpl, CK_ULONG count,
		       CK_OBJECT_HANDLE *obj, CK_ULONG *n)
{
	/* a second handle is all it takes to tell "one" from "several" */
	CK_OBJECT_HANDLE objs[2];
	CK_RV crv;

	crv = kos_hsm_find(s, tmpl, count, objs, KOS_ARRAY_SIZE(objs), n);
	if (crv == CKR_OK && *n == 1)
		*obj = objs[0];
	return crv;
}

CK_RV kos_hsm_find_each(kos_hsm_session *s, CK_ATTRIBUTE *tmpl, CK_ULONG count,
			kos_hsm_object_fn *each, void *arg)
{
	CK_OBJECT_HANDLE objs[FIND_BATCH];
	CK_ULONG n, i;
	CK_RV crv;

	crv = s->f->C_FindObjectsInit(s->h, tmpl, count);
	if (crv != CKR_OK) {
		s->func = "C_FindObjectsInit";
		return crv;
	}
	do {
		crv = s->f->C_FindObjects(s->h, objs, KOS_ARRAY_SIZE(objs), &n);
		if (crv != CKR_OK) {
			s->func = "C_FindObjects";
			break;
		}
		for (i = 0; i < n && crv == CKR_OK; i++)
			crv = each(s, objs[i], arg);
	} while (crv == CKR_OK && n > 0);
	return find_end(s, crv);
}

CK_RV kos_hsm_destroy(kos_hsm_session *s, CK_ATTRIBUTE *tmpl, CK_ULONG count,
		      unsigned long *destroyed)
{
	CK_OBJECT_HANDLE objs[DESTROY_BATCH];
	CK_ULONG n, i;
	CK_RV crv;

	/* Destroying inside a find is not allowed: find a batch, then destroy it. */
	do {
		crv = kos_hsm_find(s, tmpl, count, objs, KOS_ARRAY_SIZE(objs), &n);
		if (crv != CKR_OK)
			return crv;
		for (i = 0; i < n; i++) {
			crv = s->f->C_DestroyObject(s->h, objs[i]);
			if (crv != CKR_OK) {
				s->func = "C_DestroyObject";
				return crv;
			}
			(*destroyed)++;
		}
	} while (n == KOS_ARRAY_SIZE(objs));
	return CKR_OK;
}

/* --- data objects ------------------------------------------------------------ */

static kos_rv check_label(kos_hsm *hsm, size_t tok, const char *label)
{
	struct hsm_token *t = token_at(hsm, tok);
	size_t i, n;

	if (t == NULL)
		return KOS_E_RANGE;
	n = label != NULL ? strlen(label) : 0;
	if (n == 0 || n > KOS_HSM_LABEL_MAX)
		return token_error(t, KOS_E_INVALID, "a label is 1 to %d bytes", KOS_HSM_LABEL_MAX);
	for (i = 0; i < n; i++)
		if (label[i] < 0x20 || label[i] > 0x7e)
			return token_error(t, KOS_E_INVALID, "a label is printable ASCII");
	return KOS_OK;
}

static const CK_OBJECT_CLASS data_class = CKO_DATA;

/* Fills t with the template of kos data objects: all of them, or (label not
 * NULL) those labelled label; returns its length. */
static CK_ULONG data_template(CK_ATTRIBUTE t[3], const char *label)
{
	t[0] = (CK_ATTRIBUTE){ CKA_CLASS, (void *)&data_class, sizeof(data_class) };
	t[1] = (CK_ATTRIBUTE){ CKA_APPLICATION, (void *)KOS_HSM_APPLICATION,
			       sizeof(KOS_HSM_APPLICATION) - 1 };
	if (label == NULL)
		return 2;
	t[2] = (CK_ATTRIBUTE){ CKA_LABEL, (void *)label, strlen(label) };
	return 3;
}

/* Calls each(s, handle, arg) for every kos data object; stops at a failure. */
static CK_RV walk_objects(kos_hsm_session *s, kos_hsm_object_fn *each, void *arg)
{
	CK_ATTRIBUTE tmpl[3];

	return kos_hsm_find_each(s, tmpl, data_template(tmpl, NULL), each, arg);
}

struct put_arg {
	const char *label;
	const void *data;
	size_t len;
	bool exists;
};

static CK_RV put_op(kos_hsm_session *s, void *arg)
{
	struct put_arg *a = arg;
	CK_OBJECT_CLASS cls = CKO_DATA;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_MODIFIABLE, &no, sizeof(no) },
		{ CKA_APPLICATION, (void *)KOS_HSM_APPLICATION, sizeof(KOS_HSM_APPLICATION) - 1 },
		{ CKA_LABEL, (void *)a->label, strlen(a->label) },
		{ CKA_VALUE, (void *)a->data, a->len },
	};
	CK_ATTRIBUTE find[3];
	CK_OBJECT_HANDLE obj;
	CK_ULONG n;
	CK_RV crv;

	crv = kos_hsm_find(s, find, data_template(find, a->label), &obj, 1, &n);
	if (crv != CKR_OK)
		return crv;
	a->exists = n > 0;
	if (a->exists)
		return CKR_OK;
	crv = s->f->C_CreateObject(s->h, tmpl, KOS_ARRAY_SIZE(tmpl), &obj);
	if (crv != CKR_OK)
		s->func = "C_CreateObject";
	return crv;
}

kos_rv kos_hsm_data_put(kos_hsm *hsm, size_t tok, const char *label, const void *data,
			size_t len)
{
	struct put_arg a = { label, data, len, false };
	kos_rv rv = check_label(hsm, tok, label);

	if (rv != KOS_OK)
		return rv;
	if (data == NULL || len == 0 || len > KOS_HSM_DATA_MAX)
		return token_error(&hsm->tokens[tok], KOS_E_INVALID,
				   "data object '%s': 1 to %d bytes", label, KOS_HSM_DATA_MAX);
	rv = kos_hsm_run(hsm, tok, put_op, &a);
	if (rv == KOS_OK && a.exists)
		return token_error(&hsm->tokens[tok], KOS_E_EXISTS,
				   "a kos data object labelled '%s' already exists", label);
	return rv;
}

struct get_arg {
	const char *label;
	uint8_t *buf;
	size_t len;
	CK_ULONG found;
	bool too_large;
};

static CK_RV get_op(kos_hsm_session *s, void *arg)
{
	struct get_arg *a = arg;
	CK_ATTRIBUTE attr = { CKA_VALUE, NULL, 0 }, find[3];
	CK_OBJECT_HANDLE obj;
	CK_RV crv;

	/* a retry starts afresh */
	kos_secret_free(a->buf, a->len);
	a->buf = NULL;
	a->len = 0;
	crv = kos_hsm_find_one(s, find, data_template(find, a->label), &obj, &a->found);
	if (crv != CKR_OK || a->found != 1)
		return crv;
	crv = s->f->C_GetAttributeValue(s->h, obj, &attr, 1);
	if (crv != CKR_OK) {
		s->func = "C_GetAttributeValue";
		return crv;
	}
	if (attr.ulValueLen == CK_UNAVAILABLE_INFORMATION || attr.ulValueLen > KOS_HSM_DATA_MAX) {
		a->too_large = true;
		return CKR_OK;
	}
	a->buf = malloc(attr.ulValueLen ? attr.ulValueLen : 1);
	if (a->buf == NULL)
		return CKR_HOST_MEMORY;
	a->len = attr.ulValueLen;
	attr.pValue = a->buf;
	crv = s->f->C_GetAttributeValue(s->h, obj, &attr, 1);
	if (crv != CKR_OK || attr.ulValueLen != a->len) {
		s->func = "C_GetAttributeValue";
		kos_secret_free(a->buf, a->len);
		a->buf = NULL;
		a->len = 0;
		return crv != CKR_OK ? crv : CKR_GENERAL_ERROR;
	}
	return CKR_OK;
}

kos_rv kos_hsm_data_get(kos_hsm *hsm, size_t tok, const char *label, uint8_t **data,
			size_t *len)
{
	struct get_arg a = { label, NULL, 0, 0, false };
	kos_rv rv;

	*data = NULL;
	*len = 0;
	rv = check_label(hsm, tok, label);
	if (rv != KOS_OK)
		return rv;
	rv = kos_hsm_run(hsm, tok, get_op, &a);
	if (rv != KOS_OK)
		goto fail;
	if (a.found == 0)
		rv = token_error(&hsm->tokens[tok], KOS_E_NOTFOUND, "no kos data object labelled '%s'",
				 label);
	else if (a.found > 1)
		rv = token_error(&hsm->tokens[tok], KOS_E_INTEGRITY,
				 "more than one kos data object labelled '%s'", label);
	else if (a.too_large)
		rv = token_error(&hsm->tokens[tok], KOS_E_RANGE,
				 "data object '%s' is larger than %d bytes", label, KOS_HSM_DATA_MAX);
	if (rv != KOS_OK)
		goto fail;
	*data = a.buf;
	*len = a.len;
	return KOS_OK;
fail:
	kos_secret_free(a.buf, a.len);
	return rv;
}

struct destroy_arg {
	const char *label;
	unsigned long destroyed;
};

static CK_RV destroy_op(kos_hsm_session *s, void *arg)
{
	struct destroy_arg *a = arg;
	CK_ATTRIBUTE tmpl[3];

	return kos_hsm_destroy(s, tmpl, data_template(tmpl, a->label), &a->destroyed);
}

kos_rv kos_hsm_data_destroy(kos_hsm *hsm, size_t tok, const char *label)
{
	struct destroy_arg a = { label, 0 };
	kos_rv rv = check_label(hsm, tok, label);

	if (rv != KOS_OK)
		return rv;
	rv = kos_hsm_run(hsm, tok, destroy_op, &a);
	if (rv == KOS_OK && a.destroyed == 0)
		return token_error(&hsm->tokens[tok], KOS_E_NOTFOUND,
				   "no kos data object labelled '%s'", label);
	return rv;
}

struct list_arg {
	const char *prefix;
	size_t prefix_len;
	char **labels;
	size_t n, cap;
	bool oom;
};

static void list_reset(struct list_arg *a)
{
	size_t i;

	for (i = 0; i < a->n; i++)
		free(a->labels[i]);
	free(a->labels);
	a->labels = NULL;
	a->n = a->cap = 0;
	a->oom = false;
}

static CK_RV list_each(kos_hsm_session *s, CK_OBJECT_HANDLE obj, void *arg)
{
	struct list_arg *a = arg;
	CK_ATTRIBUTE attr = { CKA_LABEL, NULL, 0 };
	char *label;
	CK_RV crv;

	crv = s->f->C_GetAttributeValue(s->h, obj, &attr, 1);
	if (crv != CKR_OK) {
		s->func = "C_GetAttributeValue";
		return crv;
	}
	if (attr.ulValueLen == CK_UNAVAILABLE_INFORMATION || attr.ulValueLen > KOS_HSM_LABEL_MAX ||
	    attr.ulValueLen < a->prefix_len)
		return CKR_OK;
	label = malloc(attr.ulValueLen + 1);
	if (label == NULL) {
		a->oom = true;
		return CKR_HOST_MEMORY;
	}
	attr.pValue = label;
	crv = s->f->C_GetAttributeValue(s->h, obj, &attr, 1);
	if (crv != CKR_OK) {
		free(label);
		s->func = "C_GetAttributeValue";
		return crv;
	}
	label[attr.ulValueLen] = '\0';
	/* a label with a NUL inside is not one kos wrote */
	if (strlen(label) != attr.ulValueLen || strncmp(label, a->prefix, a->prefix_len) != 0) {
		free(label);
		return CKR_OK;
	}
	if (a->n == a->cap) {
		size_t ncap = a->cap ? a->cap * 2 : 16;
		char **nl = realloc(a->labels, ncap * sizeof(*nl));

		if (nl == NULL) {
			free(label);
			a->oom = true;
			return CKR_HOST_MEMORY;
		}
		a->labels = nl;
		a->cap = ncap;
	}
	a->labels[a->n++] = label;
	return CKR_OK;
}

static CK_RV list_op(kos_hsm_session *s, void *arg)
{
	list_reset(arg);
	return walk_objects(s, list_each, arg);
}

kos_rv kos_hsm_data_list(kos_hsm *hsm, size_t tok, const char *prefix, kos_hsm_label_fn *fn,
			 void *arg)
{
	struct list_arg a = { 0 };
	size_t i;
	kos_rv rv;

	if (token_at(hsm, tok) == NULL)
		return KOS_E_RANGE;
	a.prefix = prefix != NULL ? prefix : "";
	a.prefix_len = strlen(a.prefix);
	rv = kos_hsm_run(hsm, tok, list_op, &a);
	for (i = 0; rv == KOS_OK && i < a.n; i++)
		rv = fn(a.labels[i], arg);
	list_reset(&a);
	return rv;
}

static CK_RV count_each(kos_hsm_session *s, CK_OBJECT_HANDLE obj, void *arg)
{
	(void)s;
	(void)obj;
	(*(size_t *)arg)++;
	return CKR_OK;
}

static CK_RV count_op(kos_hsm_session *s, void *arg)
{
	*(size_t *)arg = 0;
	return walk_objects(s, count_each, arg);
}

kos_rv kos_hsm_token_count_objects(kos_hsm *hsm, size_t tok, size_t *n)
{
	*n = 0;
	return kos_hsm_run(hsm, tok, count_op, n);
}
