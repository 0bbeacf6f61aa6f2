/* General-purpose, slot and token functions of the module, its function
 * list (the only exported symbol is C_GetFunctionList) and the mechanism
 * table C_GetMechanismList/Info answer from.
 * Threads: every entry point takes kosp11_lock for the state it reads and
 * drops it before any call to kosd (CKF_OS_LOCKING_OK; the application's
 * mutex callbacks are not needed: the module has its own). Fork: the
 * process id at C_Initialize is kept; in a child every function answers
 * CKR_CRYPTOKI_NOT_INITIALIZED until the child calls C_Initialize, which
 * forgets the parent's state without closing its connections. */
#include "config.h"

#include "pkcs11/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

pthread_mutex_t kosp11_lock = PTHREAD_MUTEX_INITIALIZER;
bool kosp11_initialized;
pid_t kosp11_pid;
struct kosp11_slot *kosp11_slots;
size_t kosp11_nslots;

/* What a forked child forgot, kept reachable rather than freed (freeing
 * would close the parent's connections; leak checkers see no leak). */
static struct kosp11_orphan {
	struct kosp11_slot *slots;
	struct kosp11_orphan *next;
} *kosp11_orphans;

static pthread_once_t kosp11_atfork_once = PTHREAD_ONCE_INIT;

/* A fork while another thread holds the lock would leave it locked in the
 * child forever: the handlers take it around fork(). */
static void atfork_prepare(void)
{
	pthread_mutex_lock(&kosp11_lock);
}

static void atfork_release(void)
{
	pthread_mutex_unlock(&kosp11_lock);
}

static void atfork_register(void)
{
	pthread_atfork(atfork_prepare, atfork_release, atfork_release);
}

CK_RV kosp11_check_locked(void)
{
	if (!kosp11_initialized || kosp11_pid != getpid())
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	return CKR_OK;
}

CK_RV kosp11_enter(void)
{
	CK_RV rv;

	pthread_mutex_lock(&kosp11_lock);
	rv = kosp11_check_locked();
	if (rv != CKR_OK)
		pthread_mutex_unlock(&kosp11_lock);
	return rv;
}

void kosp11_leave(void)
{
	pthread_mutex_unlock(&kosp11_lock);
}

static void pad(CK_UTF8CHAR *dst, size_t len, const char *src)
{
	size_t n = strlen(src);

	memset(dst, ' ', len);
	memcpy(dst, src, n < len ? n : len);
}

/* --- mechanisms ------------------------------------------------------------ */

#define SIGNING (CKF_SIGN | CKF_VERIFY | CKF_HW)
#define EC_FLAGS (CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS)

/* Key sizes in bits, AES in bytes (as PKCS#11 counts them). CKF_HW: the
 * private and secret keys are in kosd's HSMs; verification is local. */
static const struct kosp11_mech {
	CK_MECHANISM_TYPE type;
	CK_MECHANISM_INFO info;
} kosp11_mechs[] = {
	{ CKM_ECDSA, { 256, 256, SIGNING | EC_FLAGS } },
	{ CKM_ECDSA_SHA256, { 256, 256, SIGNING | EC_FLAGS } },
	{ CKM_ECDSA_SHA384, { 256, 256, SIGNING | EC_FLAGS } },
	{ CKM_ECDSA_SHA512, { 256, 256, SIGNING | EC_FLAGS } },
	{ CKM_EDDSA, { 255, 255, SIGNING } },
	{ CKM_RSA_PKCS, { 2048, 3072, SIGNING } },
	{ CKM_SHA256_RSA_PKCS, { 2048, 3072, SIGNING } },
	{ CKM_SHA384_RSA_PKCS, { 2048, 3072, SIGNING } },
	{ CKM_SHA512_RSA_PKCS, { 2048, 3072, SIGNING } },
	{ CKM_RSA_PKCS_PSS, { 2048, 3072, SIGNING } },
	{ CKM_SHA256_RSA_PKCS_PSS, { 2048, 3072, SIGNING } },
	{ CKM_SHA384_RSA_PKCS_PSS, { 2048, 3072, SIGNING } },
	{ CKM_SHA512_RSA_PKCS_PSS, { 2048, 3072, SIGNING } },
	{ CKM_AES_GCM, { 32, 32, CKF_ENCRYPT | CKF_DECRYPT | CKF_HW } },
	{ CKM_KOS_ENVELOPE, { 32, 32, CKF_ENCRYPT | CKF_DECRYPT | CKF_HW } },
	{ CKM_SHA256, { 0, 0, CKF_DIGEST } },
	{ CKM_SHA384, { 0, 0, CKF_DIGEST } },
	{ CKM_SHA512, { 0, 0, CKF_DIGEST } },
	{ CKM_EC_KEY_PAIR_GEN, { 256, 256, CKF_GENERATE_KEY_PAIR | CKF_HW | EC_FLAGS } },
	{ CKM_EC_EDWARDS_KEY_PAIR_GEN, { 255, 255, CKF_GENERATE_KEY_PAIR | CKF_HW } },
	{ CKM_RSA_PKCS_KEY_PAIR_GEN, { 2048, 3072, CKF_GENERATE_KEY_PAIR | CKF_HW } },
	{ CKM_AES_KEY_GEN, { 32, 32, CKF_GENERATE | CKF_HW } },
};

#define KOSP11_NMECHS (sizeof(kosp11_mechs) / sizeof(kosp11_mechs[0]))

CK_RV kosp11_mechanism_info(CK_MECHANISM_TYPE mech, CK_MECHANISM_INFO *info)
{
	for (size_t i = 0; i < KOSP11_NMECHS; i++)
		if (kosp11_mechs[i].type == mech) {
			if (info != NULL)
				*info = kosp11_mechs[i].info;
			return CKR_OK;
		}
	return CKR_MECHANISM_INVALID;
}

/* --- general-purpose functions --------------------------------------------- */

static CK_RV init_args_check(CK_C_INITIALIZE_ARGS *a)
{
	int given;

	if (a == NULL)
		return CKR_OK;
	given = (a->CreateMutex != NULL) + (a->DestroyMutex != NULL) + (a->LockMutex != NULL) +
		(a->UnlockMutex != NULL);
	if (given != 0 && given != 4)
		return CKR_ARGUMENTS_BAD;
	/* the application's own mutexes only: the module cannot use them for
	 * the pthread locks libcurl and OpenSSL take anyway */
	if (given == 4 && !(a->flags & CKF_OS_LOCKING_OK))
		return CKR_CANT_LOCK;
	/* pReserved is where p11-kit passes x-init-reserved: not an error */
	return CKR_OK;
}

static CK_RV kosp11_C_Initialize(CK_VOID_PTR pInitArgs)
{
	struct kosp11_slot *slots = NULL;
	size_t n = 0;
	CK_RV rv;

	rv = init_args_check(pInitArgs);
	if (rv != CKR_OK)
		return rv;
	pthread_once(&kosp11_atfork_once, atfork_register);
	pthread_mutex_lock(&kosp11_lock);
	if (kosp11_initialized && kosp11_pid == getpid()) {
		pthread_mutex_unlock(&kosp11_lock);
		return CKR_CRYPTOKI_ALREADY_INITIALIZED;
	}
	if (kosp11_initialized) {
		/* a forked child: the parent's handles and sessions are
		 * forgotten, never closed */
		struct kosp11_orphan *o = calloc(1, sizeof(*o));

		kosp11_sessions_drop(true);
		kosp11_objects_free(true);
		kosp11_slots_free(kosp11_slots, kosp11_nslots, true);
		if (o != NULL) {
			o->slots = kosp11_slots;
			o->next = kosp11_orphans;
			kosp11_orphans = o;
		}
		kosp11_slots = NULL;
		kosp11_nslots = 0;
		kosp11_initialized = false;
	}
	/* the configuration is read with the lock held: it is local files
	 * only, and two threads initialising at once must not both do it */
	rv = kosp11_config_load(&slots, &n);
	if (rv == CKR_OK) {
		kosp11_slots = slots;
		kosp11_nslots = n;
		kosp11_pid = getpid();
		kosp11_initialized = true;
	}
	pthread_mutex_unlock(&kosp11_lock);
	return rv;
}

static CK_RV kosp11_C_Finalize(CK_VOID_PTR pReserved)
{
	struct kosp11_slot *slots;
	size_t n;
	CK_RV rv;

	if (pReserved != NULL)
		return CKR_ARGUMENTS_BAD;
	if ((rv = kosp11_enter()) != CKR_OK)
		return rv;
	kosp11_sessions_drop(false);
	kosp11_objects_free(false);
	slots = kosp11_slots;
	n = kosp11_nslots;
	kosp11_slots = NULL;
	kosp11_nslots = 0;
	kosp11_initialized = false;
	kosp11_leave();
	/* closing the handles may talk to kosd (connection shutdown): after
	 * the lock is released */
	kosp11_slots_free(slots, n, false);
	return CKR_OK;
}

static CK_RV kosp11_C_GetInfo(CK_INFO_PTR pInfo)
{
	CK_RV rv;

	if ((rv = kosp11_enter()) != CKR_OK)
		return rv;
	kosp11_leave();
	if (pInfo == NULL)
		return CKR_ARGUMENTS_BAD;
	memset(pInfo, 0, sizeof(*pInfo));
	pInfo->cryptokiVersion.major = 2;
	pInfo->cryptokiVersion.minor = 40;
	pad(pInfo->manufacturerID, sizeof(pInfo->manufacturerID), "kos");
	pad(pInfo->libraryDescription, sizeof(pInfo->libraryDescription),
	    "kos PKCS#11 module (kosd client)");
	pInfo->libraryVersion.major = 0;
	pInfo->libraryVersion.minor = 1;
	return CKR_OK;
}

/* --- slot and token management --------------------------------------------- */

static CK_RV kosp11_C_GetSlotList(CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList,
				  CK_ULONG_PTR pulCount)
{
	CK_RV rv;

	(void)tokenPresent; /* every slot has its token */
	if ((rv = kosp11_enter()) != CKR_OK)
		return rv;
	if (pulCount == NULL) {
		rv = CKR_ARGUMENTS_BAD;
	} else if (pSlotList == NULL) {
		*pulCount = kosp11_nslots;
	} else if (*pulCount < kosp11_nslots) {
		*pulCount = kosp11_nslots;
		rv = CKR_BUFFER_TOO_SMALL;
	} else {
		for (size_t i = 0; i < kosp11_nslots; i++)
			pSlotList[i] = i;
		*pulCount = kosp11_nslots;
	}
	kosp11_leave();
	return rv;
}

static CK_RV kosp11_C_GetSlotInfo(CK_SLOT_ID slotID, CK_SLOT_INFO_PTR pInfo)
{
	char desc[80];
	CK_RV rv;

	if ((rv = kosp11_enter()) != CKR_OK)
		return rv;
	if (slotID >= kosp11_nslots) {
		rv = CKR_SLOT_ID_INVALID;
	} else if (pInfo == NULL) {
		rv = CKR_ARGUMENTS_BAD;
	} else {
		memset(pInfo, 0, sizeof(*pInfo));
		snprintf(desc, sizeof(desc), "kosd %s", kosp11_slots[slotID].server);
		pad(pInfo->slotDescription, sizeof(pInfo->slotDescription), desc);
		pad(pInfo->manufacturerID, sizeof(pInfo->manufacturerID), "kos");
		pInfo->flags = CKF_TOKEN_PRESENT;
		pInfo->hardwareVersion.minor = 1;
		pInfo->firmwareVersion.minor = 1;
	}
	kosp11_leave();
	return rv;
}

static CK_RV kosp11_C_GetTokenInfo(CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo)
{
	struct kosp11_slot *s;
	char serial[32];
	CK_RV rv;

	if ((rv = kosp11_enter()) != CKR_OK)
		return rv;
	if (slotID >= kosp11_nslots) {
		rv = CKR_SLOT_ID_INVALID;
		goto out;
	}
	if (pInfo == NULL) {
		rv = CKR_ARGUMENTS_BAD;
		goto out;
	}
	s = &kosp11_slots[slotID];
	memset(pInfo, 0, sizeof(*pInfo));
	pad(pInfo->label, sizeof(pInfo->label), s->label);
	pad(pInfo->manufacturerID, sizeof(pInfo->manufacturerID), "kos");
	pad(pInfo->model, sizeof(pInfo->model), "kosd");
	snprintf(serial, sizeof(serial), "kos-%lu", (unsigned long)slotID);
	pad(pInfo->serialNumber, sizeof(pInfo->serialNumber), serial);
	pInfo->flags = CKF_RNG | CKF_LOGIN_REQUIRED | CKF_USER_PIN_INITIALIZED |
		       CKF_TOKEN_INITIALIZED;
	if (s->cred_file != NULL)
		pInfo->flags |= CKF_PROTECTED_AUTHENTICATION_PATH;
	/* keys are made and certificates stored only with a scope for it,
	 * known once a credential is in hand */
	if (!(s->logged_in && s->can_manage))
		pInfo->flags |= CKF_WRITE_PROTECTED;
	pInfo->ulMaxSessionCount = CK_EFFECTIVELY_INFINITE;
	pInfo->ulMaxRwSessionCount = CK_EFFECTIVELY_INFINITE;
	kosp11_session_count(slotID, &pInfo->ulSessionCount, &pInfo->ulRwSessionCount);
	pInfo->ulMaxPinLen = KOS_CRED_MAX + 5; /* "file:" and a path, or a credential */
	pInfo->ulMinPinLen = 1;
	pInfo->ulTotalPublicMemory = CK_UNAVAILABLE_INFORMATION;
	pInfo->ulFreePublicMemory = CK_UNAVAILABLE_INFORMATION;
	pInfo->ulTotalPrivateMemory = CK_UNAVAILABLE_INFORMATION;
	pInfo->ulFreePrivateMemory = CK_UNAVAILABLE_INFORMATION;
	pInfo->hardwareVersion.minor = 1;
	pInfo->firmwareVersion.minor = 1;
	memset(pInfo->utcTime, ' ', sizeof(pInfo->utcTime));
out:
	kosp11_leave();
	return rv;
}

static CK_RV kosp11_C_GetMechanismList(CK_SLOT_ID slotID, CK_MECHANISM_TYPE_PTR pMechanismList,
				       CK_ULONG_PTR pulCount)
{
	CK_RV rv;

	if ((rv = kosp11_enter()) != CKR_OK)
		return rv;
	if (slotID >= kosp11_nslots) {
		rv = CKR_SLOT_ID_INVALID;
	} else if (pulCount == NULL) {
		rv = CKR_ARGUMENTS_BAD;
	} else if (pMechanismList == NULL) {
		*pulCount = KOSP11_NMECHS;
	} else if (*pulCount < KOSP11_NMECHS) {
		*pulCount = KOSP11_NMECHS;
		rv = CKR_BUFFER_TOO_SMALL;
	} else {
		for (size_t i = 0; i < KOSP11_NMECHS; i++)
			pMechanismList[i] = kosp11_mechs[i].type;
		*pulCount = KOSP11_NMECHS;
	}
	kosp11_leave();
	return rv;
}

static CK_RV kosp11_C_GetMechanismInfo(CK_SLOT_ID slotID, CK_MECHANISM_TYPE type,
				       CK_MECHANISM_INFO_PTR pInfo)
{
	CK_RV rv;

	if ((rv = kosp11_enter()) != CKR_OK)
		return rv;
	if (slotID >= kosp11_nslots)
		rv = CKR_SLOT_ID_INVALID;
	else if (pInfo == NULL)
		rv = CKR_ARGUMENTS_BAD;
	else
		rv = kosp11_mechanism_info(type, pInfo);
	kosp11_leave();
	return rv;
}

/* Tokens are kosd's: initialised and provisioned with kosctl, never
 * through PKCS#11; there is no SO and no PIN to set (a credential is
 * enrolled or refreshed, kos-credential(5)). */
static CK_RV kosp11_C_InitToken(CK_SLOT_ID slotID, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen,
				CK_UTF8CHAR_PTR pLabel)
{
	CK_RV rv;

	(void)pPin;
	(void)ulPinLen;
	(void)pLabel;
	if ((rv = kosp11_enter()) != CKR_OK)
		return rv;
	rv = slotID >= kosp11_nslots ? CKR_SLOT_ID_INVALID : CKR_FUNCTION_NOT_SUPPORTED;
	kosp11_leave();
	return rv;
}

static CK_RV kosp11_C_WaitForSlotEvent(CK_FLAGS flags, CK_SLOT_ID_PTR pSlot, CK_VOID_PTR pRes)
{
	CK_RV rv;

	(void)flags;
	(void)pSlot;
	(void)pRes;
	if ((rv = kosp11_enter()) != CKR_OK)
		return rv;
	kosp11_leave();
	return CKR_FUNCTION_NOT_SUPPORTED;
}

/* --- the function list ----------------------------------------------------- */

static CK_RV kosp11_C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ppFunctionList);

static CK_FUNCTION_LIST kosp11_function_list = {
	.version = { 2, 40 },
	.C_Initialize = kosp11_C_Initialize,
	.C_Finalize = kosp11_C_Finalize,
	.C_GetInfo = kosp11_C_GetInfo,
	.C_GetFunctionList = kosp11_C_GetFunctionList,
	.C_GetSlotList = kosp11_C_GetSlotList,
	.C_GetSlotInfo = kosp11_C_GetSlotInfo,
	.C_GetTokenInfo = kosp11_C_GetTokenInfo,
	.C_GetMechanismList = kosp11_C_GetMechanismList,
	.C_GetMechanismInfo = kosp11_C_GetMechanismInfo,
	.C_InitToken = kosp11_C_InitToken,
	.C_InitPIN = kosp11_C_InitPIN,
	.C_SetPIN = kosp11_C_SetPIN,
	.C_OpenSession = kosp11_C_OpenSession,
	.C_CloseSession = kosp11_C_CloseSession,
	.C_CloseAllSessions = kosp11_C_CloseAllSessions,
	.C_GetSessionInfo = kosp11_C_GetSessionInfo,
	.C_GetOperationState = kosp11_C_GetOperationState,
	.C_SetOperationState = kosp11_C_SetOperationState,
	.C_Login = kosp11_C_Login,
	.C_Logout = kosp11_C_Logout,
	.C_CreateObject = kosp11_C_CreateObject,
	.C_CopyObject = kosp11_C_CopyObject,
	.C_DestroyObject = kosp11_C_DestroyObject,
	.C_GetObjectSize = kosp11_C_GetObjectSize,
	.C_GetAttributeValue = kosp11_C_GetAttributeValue,
	.C_SetAttributeValue = kosp11_C_SetAttributeValue,
	.C_FindObjectsInit = kosp11_C_FindObjectsInit,
	.C_FindObjects = kosp11_C_FindObjects,
	.C_FindObjectsFinal = kosp11_C_FindObjectsFinal,
	.C_EncryptInit = kosp11_C_EncryptInit,
	.C_Encrypt = kosp11_C_Encrypt,
	.C_EncryptUpdate = kosp11_C_EncryptUpdate,
	.C_EncryptFinal = kosp11_C_EncryptFinal,
	.C_DecryptInit = kosp11_C_DecryptInit,
	.C_Decrypt = kosp11_C_Decrypt,
	.C_DecryptUpdate = kosp11_C_DecryptUpdate,
	.C_DecryptFinal = kosp11_C_DecryptFinal,
	.C_DigestInit = kosp11_C_DigestInit,
	.C_Digest = kosp11_C_Digest,
	.C_DigestUpdate = kosp11_C_DigestUpdate,
	.C_DigestKey = kosp11_C_DigestKey,
	.C_DigestFinal = kosp11_C_DigestFinal,
	.C_SignInit = kosp11_C_SignInit,
	.C_Sign = kosp11_C_Sign,
	.C_SignUpdate = kosp11_C_SignUpdate,
	.C_SignFinal = kosp11_C_SignFinal,
	.C_SignRecoverInit = kosp11_C_SignRecoverInit,
	.C_SignRecover = kosp11_C_SignRecover,
	.C_VerifyInit = kosp11_C_VerifyInit,
	.C_Verify = kosp11_C_Verify,
	.C_VerifyUpdate = kosp11_C_VerifyUpdate,
	.C_VerifyFinal = kosp11_C_VerifyFinal,
	.C_VerifyRecoverInit = kosp11_C_VerifyRecoverInit,
	.C_VerifyRecover = kosp11_C_VerifyRecover,
	.C_DigestEncryptUpdate = kosp11_C_DigestEncryptUpdate,
	.C_DecryptDigestUpdate = kosp11_C_DecryptDigestUpdate,
	.C_SignEncryptUpdate = kosp11_C_SignEncryptUpdate,
	.C_DecryptVerifyUpdate = kosp11_C_DecryptVerifyUpdate,
	.C_GenerateKey = kosp11_C_GenerateKey,
	.C_GenerateKeyPair = kosp11_C_GenerateKeyPair,
	.C_WrapKey = kosp11_C_WrapKey,
	.C_UnwrapKey = kosp11_C_UnwrapKey,
	.C_DeriveKey = kosp11_C_DeriveKey,
	.C_SeedRandom = kosp11_C_SeedRandom,
	.C_GenerateRandom = kosp11_C_GenerateRandom,
	.C_GetFunctionStatus = kosp11_C_GetFunctionStatus,
	.C_CancelFunction = kosp11_C_CancelFunction,
	.C_WaitForSlotEvent = kosp11_C_WaitForSlotEvent,
};

static CK_RV kosp11_C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ppFunctionList)
{
	if (ppFunctionList == NULL)
		return CKR_ARGUMENTS_BAD;
	*ppFunctionList = &kosp11_function_list;
	return CKR_OK;
}

/* The module's one export (pkcs11/kos-pkcs11.map). */
KOSP11_EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ppFunctionList);
KOSP11_EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ppFunctionList)
{
	return kosp11_C_GetFunctionList(ppFunctionList);
}
