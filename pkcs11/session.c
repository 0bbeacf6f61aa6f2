/* Session management: sessions, login and logout, and the pool of client
 * handles each slot keeps. A kos_client is single-threaded, so a call
 * checks a handle out under the lock, talks to kosd without it and checks
 * it back in; a login or logout changes the slot's generation, and a
 * handle of an older generation is freed instead of pooled, so no handle
 * outlives the credential it was made with. */
#include "config.h"

#include "pkcs11/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

static struct kosp11_session **kosp11_sessions;
static size_t kosp11_nsessions, kosp11_sessions_cap;
static CK_SESSION_HANDLE kosp11_next_session = 1;
/* signalled when a session stops being busy */
static pthread_cond_t kosp11_idle = PTHREAD_COND_INITIALIZER;

void kosp11_op_reset(struct kosp11_op *op)
{
	EVP_MD_CTX_free(op->md);
	if (op->data != NULL)
		op->data_secret ? kos_secret_free(op->data, op->cap) : free(op->data);
	if (op->result != NULL)
		op->result_secret ? kos_secret_free(op->result, op->result_len) :
				    free(op->result);
	free(op->aad);
	free(op->context);
	memset(op, 0, sizeof(*op));
}

static void session_free(struct kosp11_session *s)
{
	for (size_t i = 0; i < KOSP11_OP_COUNT; i++)
		kosp11_op_reset(&s->op[i]);
	free(s->found);
	free(s);
}

static struct kosp11_session *session_find(CK_SESSION_HANDLE h, size_t *at)
{
	for (size_t i = 0; i < kosp11_nsessions; i++)
		if (kosp11_sessions[i]->handle == h) {
			if (at != NULL)
				*at = i;
			return kosp11_sessions[i];
		}
	return NULL;
}

void kosp11_session_count(size_t slot, CK_ULONG *all, CK_ULONG *rw)
{
	*all = *rw = 0;
	for (size_t i = 0; i < kosp11_nsessions; i++)
		if (kosp11_sessions[i]->slot == slot) {
			(*all)++;
			if (kosp11_sessions[i]->flags & CKF_RW_SESSION)
				(*rw)++;
		}
}

void kosp11_sessions_drop(bool forget)
{
	(void)forget; /* sessions hold no connection: freed either way */
	for (size_t i = 0; i < kosp11_nsessions; i++)
		session_free(kosp11_sessions[i]);
	free(kosp11_sessions);
	kosp11_sessions = NULL;
	kosp11_nsessions = kosp11_sessions_cap = 0;
	pthread_cond_broadcast(&kosp11_idle);
}

/* With the lock held: waits until session h is idle and marks it busy. */
static CK_RV session_acquire_locked(CK_SESSION_HANDLE h, struct kosp11_session **out)
{
	struct kosp11_session *s;

	for (;;) {
		CK_RV rv = kosp11_check_locked();

		if (rv != CKR_OK)
			return rv;
		if ((s = session_find(h, NULL)) == NULL)
			return CKR_SESSION_HANDLE_INVALID;
		if (!s->busy)
			break;
		pthread_cond_wait(&kosp11_idle, &kosp11_lock);
	}
	s->busy = true;
	*out = s;
	return CKR_OK;
}

CK_RV kosp11_session_get(CK_SESSION_HANDLE h, struct kosp11_session **out)
{
	CK_RV rv;

	pthread_mutex_lock(&kosp11_lock);
	rv = session_acquire_locked(h, out);
	pthread_mutex_unlock(&kosp11_lock);
	return rv;
}

void kosp11_session_put(struct kosp11_session *s)
{
	pthread_mutex_lock(&kosp11_lock);
	s->busy = false;
	pthread_cond_broadcast(&kosp11_idle);
	pthread_mutex_unlock(&kosp11_lock);
}

bool kosp11_logged_in(size_t slot)
{
	return slot < kosp11_nslots && kosp11_slots[slot].logged_in;
}

/* --- the handle pool ------------------------------------------------------- */

struct handle_spec {
	char *server, *cert, *key, *ca;
	char *cred;	 /* a credential (secret) */
	char *cred_file; /* or a file holding it */
};

static void spec_free(struct handle_spec *sp)
{
	free(sp->server);
	free(sp->cert);
	free(sp->key);
	free(sp->ca);
	if (sp->cred != NULL)
		kos_secret_free(sp->cred, strlen(sp->cred));
	free(sp->cred_file);
	memset(sp, 0, sizeof(*sp));
}

static int dup_into(char **dst, const char *src)
{
	*dst = NULL;
	if (src == NULL)
		return 0;
	*dst = strdup(src);
	return *dst != NULL ? 0 : -1;
}

/* With the lock held: what a new handle of slot s needs, copied. */
static CK_RV spec_of(const struct kosp11_slot *s, struct handle_spec *sp)
{
	const char *file = s->logged_in ? s->pin_file : s->cred_file;

	memset(sp, 0, sizeof(*sp));
	if (dup_into(&sp->server, s->server) != 0 || dup_into(&sp->cert, s->tls_cert) != 0 ||
	    dup_into(&sp->key, s->tls_key) != 0 || dup_into(&sp->ca, s->tls_ca) != 0 ||
	    dup_into(&sp->cred, s->logged_in ? s->pin_cred : NULL) != 0 ||
	    dup_into(&sp->cred_file, file) != 0) {
		spec_free(sp);
		return CKR_HOST_MEMORY;
	}
	return CKR_OK;
}

/* A new handle; the credential's problems are the caller's ctx. */
static CK_RV handle_open(const struct handle_spec *sp, enum kosp11_ctx ctx, kos_client **out)
{
	kos_client *c = NULL;
	kos_rv rv;

	*out = NULL;
	rv = kos_client_new(sp->server, &c);
	if (rv != KOS_OK)
		return rv == KOS_E_NOMEM ? CKR_HOST_MEMORY : CKR_DEVICE_ERROR;
	if (sp->cert != NULL && (rv = kos_client_set_tls(c, sp->cert, sp->key, sp->ca)) != KOS_OK) {
		kos_client_free(c);
		return rv == KOS_E_NOMEM ? CKR_HOST_MEMORY : CKR_DEVICE_ERROR;
	}
	if (sp->cred != NULL)
		rv = kos_client_set_credential(c, sp->cred);
	else if (sp->cred_file != NULL)
		rv = kos_client_set_credential_file(c, sp->cred_file);
	if (rv != KOS_OK) {
		kos_client_free(c);
		return kosp11_rv(rv, KOS_CLIENT_REFUSAL_NONE, ctx);
	}
	*out = c;
	return CKR_OK;
}

CK_RV kosp11_pool_get(size_t slot, bool public_ok, kos_client **out, uint64_t *gen)
{
	struct handle_spec sp;
	struct kosp11_slot *s;
	CK_RV rv;

	*out = NULL;
	if ((rv = kosp11_enter()) != CKR_OK)
		return rv;
	if (slot >= kosp11_nslots) {
		kosp11_leave();
		return CKR_SESSION_HANDLE_INVALID;
	}
	s = &kosp11_slots[slot];
	if (!s->logged_in && !(public_ok && s->cred_file != NULL)) {
		kosp11_leave();
		return CKR_USER_NOT_LOGGED_IN;
	}
	*gen = s->gen;
	if (s->pooled > 0) {
		*out = s->pool[--s->pooled];
		kosp11_leave();
		return CKR_OK;
	}
	rv = spec_of(s, &sp);
	kosp11_leave();
	if (rv != CKR_OK)
		return rv;
	/* a credential file that cannot be read now is a device problem:
	 * the user logged in with it before */
	rv = handle_open(&sp, KOSP11_CTX_SIGN, out);
	spec_free(&sp);
	return rv;
}

void kosp11_pool_put(size_t slot, kos_client *c, uint64_t gen)
{
	struct kosp11_slot *s;

	if (c == NULL)
		return;
	pthread_mutex_lock(&kosp11_lock);
	if (kosp11_check_locked() == CKR_OK && slot < kosp11_nslots) {
		s = &kosp11_slots[slot];
		if (s->gen == gen && s->pooled < KOSP11_POOL_MAX) {
			s->pool[s->pooled++] = c;
			c = NULL;
		}
	}
	pthread_mutex_unlock(&kosp11_lock);
	/* a handle of another login, or one too many: closed outside the lock */
	kos_client_free(c);
}

/* --- sessions -------------------------------------------------------------- */

CK_RV kosp11_C_OpenSession(CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR pApplication,
			   CK_NOTIFY Notify, CK_SESSION_HANDLE_PTR phSession)
{
	struct kosp11_session *s;
	CK_RV rv;

	(void)pApplication;
	(void)Notify; /* no callbacks: the module never blocks on the user */
	if ((rv = kosp11_enter()) != CKR_OK)
		return rv;
	if (slotID >= kosp11_nslots) {
		rv = CKR_SLOT_ID_INVALID;
		goto out;
	}
	if (!(flags & CKF_SERIAL_SESSION)) {
		rv = CKR_SESSION_PARALLEL_NOT_SUPPORTED;
		goto out;
	}
	if (phSession == NULL) {
		rv = CKR_ARGUMENTS_BAD;
		goto out;
	}
	if (kosp11_nsessions == kosp11_sessions_cap) {
		size_t cap = kosp11_sessions_cap ? kosp11_sessions_cap * 2 : 16;
		struct kosp11_session **n = realloc(kosp11_sessions, cap * sizeof(*n));

		if (n == NULL) {
			rv = CKR_HOST_MEMORY;
			goto out;
		}
		kosp11_sessions = n;
		kosp11_sessions_cap = cap;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		rv = CKR_HOST_MEMORY;
		goto out;
	}
	s->handle = kosp11_next_session++;
	s->slot = slotID;
	s->flags = flags & (CKF_SERIAL_SESSION | CKF_RW_SESSION);
	kosp11_sessions[kosp11_nsessions++] = s;
	*phSession = s->handle;
out:
	kosp11_leave();
	return rv;
}

/* With the lock held: removes session s (busy, ours) from the table. */
static void session_remove_locked(struct kosp11_session *s)
{
	size_t at;

	if (session_find(s->handle, &at) == s) {
		kosp11_sessions[at] = kosp11_sessions[--kosp11_nsessions];
		session_free(s);
	}
	pthread_cond_broadcast(&kosp11_idle);
}

/* With the lock held: after the last session of a slot closes, the
 * application is logged out of it (PKCS#11 2.40, 5.6). */
static void logout_locked(struct kosp11_slot *sl, kos_client **drop, size_t *ndrop);

static void slot_idle_locked(size_t slot, kos_client **drop, size_t *ndrop)
{
	CK_ULONG all, rw;

	kosp11_session_count(slot, &all, &rw);
	if (all == 0 && kosp11_slots[slot].logged_in)
		logout_locked(&kosp11_slots[slot], drop, ndrop);
}

CK_RV kosp11_C_CloseSession(CK_SESSION_HANDLE hSession)
{
	kos_client *drop[KOSP11_POOL_MAX];
	struct kosp11_session *s;
	size_t ndrop = 0, slot;
	CK_RV rv;

	pthread_mutex_lock(&kosp11_lock);
	rv = session_acquire_locked(hSession, &s);
	if (rv == CKR_OK) {
		slot = s->slot;
		session_remove_locked(s);
		slot_idle_locked(slot, drop, &ndrop);
	}
	pthread_mutex_unlock(&kosp11_lock);
	for (size_t i = 0; i < ndrop; i++)
		kos_client_free(drop[i]);
	return rv;
}

CK_RV kosp11_C_CloseAllSessions(CK_SLOT_ID slotID)
{
	kos_client *drop[KOSP11_POOL_MAX];
	size_t ndrop = 0;
	CK_RV rv;

	pthread_mutex_lock(&kosp11_lock);
	if ((rv = kosp11_check_locked()) != CKR_OK)
		goto out;
	if (slotID >= kosp11_nslots) {
		rv = CKR_SLOT_ID_INVALID;
		goto out;
	}
	for (;;) {
		struct kosp11_session *s = NULL;

		for (size_t i = 0; i < kosp11_nsessions && s == NULL; i++)
			if (kosp11_sessions[i]->slot == slotID)
				s = kosp11_sessions[i];
		if (s == NULL)
			break;
		if (session_acquire_locked(s->handle, &s) != CKR_OK)
			break;
		session_remove_locked(s);
	}
	slot_idle_locked(slotID, drop, &ndrop);
out:
	pthread_mutex_unlock(&kosp11_lock);
	for (size_t i = 0; i < ndrop; i++)
		kos_client_free(drop[i]);
	return rv;
}

CK_RV kosp11_C_GetSessionInfo(CK_SESSION_HANDLE hSession, CK_SESSION_INFO_PTR pInfo)
{
	struct kosp11_session *s;
	CK_RV rv;

	if ((rv = kosp11_enter()) != CKR_OK)
		return rv;
	if ((s = session_find(hSession, NULL)) == NULL) {
		rv = CKR_SESSION_HANDLE_INVALID;
	} else if (pInfo == NULL) {
		rv = CKR_ARGUMENTS_BAD;
	} else {
		bool user = kosp11_logged_in(s->slot), rw = s->flags & CKF_RW_SESSION;

		memset(pInfo, 0, sizeof(*pInfo));
		pInfo->slotID = s->slot;
		pInfo->flags = s->flags;
		pInfo->state = user ? (rw ? CKS_RW_USER_FUNCTIONS : CKS_RO_USER_FUNCTIONS) :
				      (rw ? CKS_RW_PUBLIC_SESSION : CKS_RO_PUBLIC_SESSION);
	}
	kosp11_leave();
	return rv;
}

/* Operation state lives partly in kosd (a signature being made there):
 * it cannot be saved. */
CK_RV kosp11_C_GetOperationState(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pState,
				 CK_ULONG_PTR pulLen)
{
	struct kosp11_session *s;
	CK_RV rv;

	(void)pState;
	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	rv = pulLen == NULL ? CKR_ARGUMENTS_BAD : CKR_FUNCTION_NOT_SUPPORTED;
	kosp11_session_put(s);
	return rv;
}

CK_RV kosp11_C_SetOperationState(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pState, CK_ULONG len,
				 CK_OBJECT_HANDLE hEnc, CK_OBJECT_HANDLE hAuth)
{
	struct kosp11_session *s;
	CK_RV rv;

	(void)len;
	(void)hEnc;
	(void)hAuth;
	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	rv = pState == NULL ? CKR_ARGUMENTS_BAD : CKR_SAVED_STATE_INVALID;
	kosp11_session_put(s);
	return rv;
}

/* No PIN to set: a credential is enrolled and refreshed (kosctl, the
 * client library), never chosen through PKCS#11. */
CK_RV kosp11_C_InitPIN(CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen)
{
	struct kosp11_session *s;
	CK_RV rv;

	(void)pPin;
	(void)ulPinLen;
	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	kosp11_session_put(s);
	return CKR_FUNCTION_NOT_SUPPORTED;
}

CK_RV kosp11_C_SetPIN(CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pOldPin, CK_ULONG ulOldLen,
		      CK_UTF8CHAR_PTR pNewPin, CK_ULONG ulNewLen)
{
	struct kosp11_session *s;
	CK_RV rv;

	(void)pOldPin;
	(void)ulOldLen;
	(void)pNewPin;
	(void)ulNewLen;
	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	kosp11_session_put(s);
	return CKR_FUNCTION_NOT_SUPPORTED;
}

CK_RV kosp11_C_GetFunctionStatus(CK_SESSION_HANDLE hSession)
{
	struct kosp11_session *s;
	CK_RV rv;

	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	kosp11_session_put(s);
	return CKR_FUNCTION_NOT_PARALLEL;
}

CK_RV kosp11_C_CancelFunction(CK_SESSION_HANDLE hSession)
{
	return kosp11_C_GetFunctionStatus(hSession);
}

/* --- login ----------------------------------------------------------------- */

/* Whether the credential's scope (its unverified payload: this decides a
 * token flag only, kosd decides every request) holds admin:keys or a
 * certify: item, the two things that write to the token. */
static bool scope_can_manage(const char *jwt)
{
	const char *p = strchr(jwt, '.'), *e;
	size_t n, i, pad;
	unsigned char *b64 = NULL, *raw = NULL;
	json_t *claims = NULL;
	const char *scope;
	bool yes = false;
	int len;

	if (p == NULL || (e = strchr(p + 1, '.')) == NULL)
		return false;
	n = (size_t)(e - p - 1);
	if (n == 0 || n > KOS_CRED_MAX)
		return false;
	pad = (4 - n % 4) % 4;
	if ((b64 = malloc(n + pad + 1)) == NULL || (raw = malloc(n + pad + 1)) == NULL)
		goto out;
	for (i = 0; i < n; i++) {
		char ch = p[1 + i];

		b64[i] = ch == '-' ? '+' : ch == '_' ? '/' : (unsigned char)ch;
	}
	memset(b64 + n, '=', pad);
	b64[n + pad] = '\0';
	len = EVP_DecodeBlock(raw, b64, (int)(n + pad));
	if (len < 0 || (size_t)len < pad)
		goto out;
	claims = json_loadb((const char *)raw, (size_t)len - pad, 0, NULL);
	scope = json_string_value(json_object_get(claims, "scope"));
	if (scope != NULL) {
		char *copy = strdup(scope), *save = NULL;

		for (char *t = copy != NULL ? strtok_r(copy, " ", &save) : NULL; t != NULL;
		     t = strtok_r(NULL, " ", &save))
			if (strcmp(t, "admin:keys") == 0 || strncmp(t, "certify:", 8) == 0)
				yes = true;
		free(copy);
	}
out:
	json_decref(claims);
	if (raw != NULL)
		kos_secret_free(raw, n + pad + 1);
	if (b64 != NULL)
		kos_secret_free(b64, n + pad + 1);
	return yes;
}

static bool file_can_manage(const char *path)
{
	char buf[KOS_CRED_MAX + 2];
	size_t n;
	bool yes = false;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	yes = scope_can_manage(buf);
	OPENSSL_cleanse(buf, sizeof(buf));
	return yes;
}

static int no_key(const kos_client_key *k, void *arg)
{
	(void)k;
	(void)arg;
	return 0;
}

static void logout_locked(struct kosp11_slot *sl, kos_client **drop, size_t *ndrop)
{
	sl->logged_in = false;
	sl->can_manage = false;
	sl->gen++;
	if (sl->pin_cred != NULL)
		kos_secret_free(sl->pin_cred, strlen(sl->pin_cred));
	sl->pin_cred = NULL;
	free(sl->pin_file);
	sl->pin_file = NULL;
	for (size_t i = 0; i < sl->pooled; i++)
		drop[(*ndrop)++] = sl->pool[i];
	sl->pooled = 0;
	/* operations on private keys end with the login */
	for (size_t i = 0; i < kosp11_nsessions; i++) {
		struct kosp11_session *s = kosp11_sessions[i];

		if (&kosp11_slots[s->slot] != sl || s->busy)
			continue;
		for (size_t j = 0; j < KOSP11_OP_COUNT; j++)
			if (j != KOSP11_OP_DIGEST && j != KOSP11_OP_VERIFY)
				kosp11_op_reset(&s->op[j]);
	}
}

CK_RV kosp11_C_Login(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin,
		     CK_ULONG ulPinLen)
{
	kos_client *drop[KOSP11_POOL_MAX], *c = NULL;
	struct kosp11_session *s;
	struct kosp11_slot *sl;
	struct handle_spec sp;
	size_t ndrop = 0, slot;
	char *pin = NULL;
	bool manage = false;
	CK_RV rv;
	kos_rv krv;

	memset(&sp, 0, sizeof(sp));
	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	slot = s->slot;
	pthread_mutex_lock(&kosp11_lock);
	sl = &kosp11_slots[slot];
	if (userType == CKU_SO) {
		/* kosd's administrators use kosctl, with scopes of their own */
		rv = CKR_USER_TYPE_INVALID;
	} else if (userType == CKU_CONTEXT_SPECIFIC) {
		/* no key asks for CKA_ALWAYS_AUTHENTICATE */
		rv = sl->logged_in ? CKR_OPERATION_NOT_INITIALIZED : CKR_USER_NOT_LOGGED_IN;
	} else if (userType != CKU_USER) {
		rv = CKR_USER_TYPE_INVALID;
	} else if (sl->logged_in) {
		rv = CKR_USER_ALREADY_LOGGED_IN;
	} else if (pPin == NULL && sl->cred_file == NULL) {
		rv = CKR_ARGUMENTS_BAD;
	} else if (pPin != NULL && (ulPinLen == 0 || ulPinLen > KOS_CRED_MAX + 4096)) {
		rv = CKR_PIN_LEN_RANGE;
	} else {
		rv = spec_of(sl, &sp);
	}
	pthread_mutex_unlock(&kosp11_lock);
	if (rv != CKR_OK)
		goto out;
	/* the PIN: a credential, "file:PATH", or none with the configured file */
	free(sp.cred_file);
	sp.cred_file = NULL;
	if (pPin == NULL) {
		pthread_mutex_lock(&kosp11_lock);
		rv = dup_into(&sp.cred_file, sl->cred_file) == 0 ? CKR_OK : CKR_HOST_MEMORY;
		pthread_mutex_unlock(&kosp11_lock);
	} else {
		if ((pin = malloc(ulPinLen + 1)) == NULL) {
			rv = CKR_HOST_MEMORY;
			goto out;
		}
		memcpy(pin, pPin, ulPinLen);
		pin[ulPinLen] = '\0';
		if (strlen(pin) != ulPinLen) {
			rv = CKR_PIN_INVALID;
		} else if (strncmp(pin, "file:", 5) == 0) {
			rv = pin[5] != '\0' && dup_into(&sp.cred_file, pin + 5) == 0 ?
				     CKR_OK :
				     (pin[5] == '\0' ? CKR_PIN_INVALID : CKR_HOST_MEMORY);
		} else {
			sp.cred = pin;
			pin = NULL;
		}
	}
	if (rv != CKR_OK)
		goto out;
	if ((rv = handle_open(&sp, KOSP11_CTX_LOGIN, &c)) != CKR_OK)
		goto out;
	/* one cheap authenticated call: kosd checks the credential (a name
	 * no key has, so the answer is empty) */
	krv = kos_client_keys_find(c, "kos-pkcs11-login-probe", NULL, no_key, NULL);
	if (krv != KOS_OK) {
		rv = kosp11_client_rv(c, krv, KOSP11_CTX_LOGIN);
		goto out;
	}
	manage = sp.cred != NULL ? scope_can_manage(sp.cred) : file_can_manage(sp.cred_file);
	pthread_mutex_lock(&kosp11_lock);
	if ((rv = kosp11_check_locked()) == CKR_OK && sl->logged_in)
		rv = CKR_USER_ALREADY_LOGGED_IN;
	if (rv == CKR_OK) {
		for (size_t i = 0; i < sl->pooled; i++)
			drop[ndrop++] = sl->pool[i];
		sl->pooled = 0;
		sl->logged_in = true;
		sl->can_manage = manage;
		sl->gen++;
		sl->pin_cred = sp.cred;
		sl->pin_file = sp.cred_file;
		sp.cred = sp.cred_file = NULL;
		sl->pool[sl->pooled++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&kosp11_lock);
out:
	if (pin != NULL)
		kos_secret_free(pin, ulPinLen + 1);
	spec_free(&sp);
	kos_client_free(c);
	for (size_t i = 0; i < ndrop; i++)
		kos_client_free(drop[i]);
	kosp11_session_put(s);
	return rv;
}

CK_RV kosp11_C_Logout(CK_SESSION_HANDLE hSession)
{
	kos_client *drop[KOSP11_POOL_MAX];
	struct kosp11_session *s;
	size_t ndrop = 0;
	CK_RV rv;

	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	pthread_mutex_lock(&kosp11_lock);
	if (!kosp11_slots[s->slot].logged_in)
		rv = CKR_USER_NOT_LOGGED_IN;
	else
		logout_locked(&kosp11_slots[s->slot], drop, &ndrop);
	/* this session's own operations too */
	for (size_t j = 0; rv == CKR_OK && j < KOSP11_OP_COUNT; j++)
		if (j != KOSP11_OP_DIGEST && j != KOSP11_OP_VERIFY)
			kosp11_op_reset(&s->op[j]);
	s->busy = false;
	pthread_cond_broadcast(&kosp11_idle);
	pthread_mutex_unlock(&kosp11_lock);
	for (size_t i = 0; i < ndrop; i++)
		kos_client_free(drop[i]);
	return rv;
}
