/* The PKCS#11 module's private declarations: slots, sessions, objects and
 * the handle pool, shared by general.c, session.c, object.c and crypto.c.
 * Thread safety: every field marked "lock" is read and written with
 * kosp11_lock held; a session's operation state belongs to the thread that
 * holds the session busy (kosp11_session_get()). Nothing here calls kosd
 * with the lock held. */
#ifndef KOSP11_INTERNAL_H
#define KOSP11_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <p11-kit/pkcs11.h>

#include <openssl/evp.h>

#include <kos/client.h>

#define KOSP11_EXPORT __attribute__((visibility("default")))

/* The vendor mechanism of kos envelopes (kos-envelope(5)); its parameter,
 * when given, is the context, bytes of text. */
#define CKM_KOS_ENVELOPE (CKM_VENDOR_DEFINED | 0x4b4f5301UL)
/* A DEK object's key version (CK_ULONG), readable on secret keys. */
#define CKA_KOS_KEY_VERSION (CKA_VENDOR_DEFINED | 0x4b4f5301UL)

#define KOSP11_POOL_MAX 8	     /* idle handles kept per slot */
#define KOSP11_DATA_MAX (64u << 20) /* bytes a multi-part operation collects */
#define KOSP11_CONTEXT_MAX 4096     /* an envelope's context */

/* What a kos call was made for: the error table's column. */
enum kosp11_ctx {
	KOSP11_CTX_LOGIN = 0,
	KOSP11_CTX_SIGN,    /* C_Sign, C_SignFinal */
	KOSP11_CTX_ENCRYPT, /* C_Encrypt, C_EncryptFinal */
	KOSP11_CTX_DECRYPT, /* C_Decrypt, C_DecryptFinal */
	KOSP11_CTX_FIND,    /* C_FindObjectsInit, C_GetAttributeValue */
	KOSP11_CTX_CREATE,  /* C_GenerateKey(Pair), C_CreateObject */
	KOSP11_CTX_DESTROY, /* C_DestroyObject */
	KOSP11_CTX_COUNT
};

enum kosp11_kind {
	KOSP11_PRIV = 0, /* a signing key's private half: CKO_PRIVATE_KEY */
	KOSP11_PUB,	 /* its public key: CKO_PUBLIC_KEY */
	KOSP11_CERT,	 /* the certificate stored beside it: CKO_CERTIFICATE */
	KOSP11_SECRET,	 /* one version of a DEK: CKO_SECRET_KEY */
};

/* An object: a view of one kos key. Objects are never freed before
 * C_Finalize, so a handle stays valid (and names the same key) for the
 * module's lifetime; its handle is its index in kosp11_objects plus one. */
struct kosp11_object {
	size_t slot;
	enum kosp11_kind kind;
	char name[KOS_KEY_NAME_MAX + 1];
	kos_key_type type;
	uint32_t version; /* SECRET: this object's version */
	uint32_t current; /* the key's current version when last listed (lock) */
	uint32_t min_version;
	uint8_t *spki;	  /* PUB, PRIV: SubjectPublicKeyInfo DER of spki_version (lock) */
	size_t spki_len;
	uint32_t spki_version;
	uint8_t *cert; /* CERT: the certificate DER (lock) */
	size_t cert_len;
	/* destroyed through the module (lock): its handle stays invalid, and a
	 * key made again under the name gets new handles */
	bool gone;
};

struct kosp11_slot {
	char label[33]; /* NUL-terminated, at most 32 characters */
	char *server;
	char *cred_file; /* configured: protected authentication path */
	char *tls_cert, *tls_key, *tls_ca;
	/* lock: */
	bool logged_in;
	char *pin_cred;	 /* the credential given as a PIN (secret) */
	char *pin_file;	 /* or the file a "file:" PIN named */
	bool can_manage; /* the credential's scope has admin:keys */
	uint64_t gen;	 /* changes at each login and logout: older handles are dropped */
	kos_client *pool[KOSP11_POOL_MAX];
	size_t pooled;
};

enum kosp11_op_kind { KOSP11_OP_NONE = 0, KOSP11_OP_SIGN, KOSP11_OP_VERIFY, KOSP11_OP_ENCRYPT,
		      KOSP11_OP_DECRYPT, KOSP11_OP_DIGEST, KOSP11_OP_COUNT };

/* One active cryptographic operation. */
struct kosp11_op {
	bool active;
	CK_MECHANISM_TYPE mech;
	CK_OBJECT_HANDLE key;
	char name[KOS_KEY_NAME_MAX + 1]; /* the key's, copied at the Init */
	kos_key_type type;
	uint32_t version;
	EVP_MD_CTX *md;	    /* the mechanism's hash, computed here */
	const EVP_MD *md_type;
	uint8_t *data;	    /* data collected for a one-shot kosd call */
	size_t len, cap;
	bool data_secret;   /* data is plaintext: wiped when freed */
	uint8_t *result;    /* a result kept for a second call with a larger buffer */
	size_t result_len;
	bool result_secret;
	/* parameters */
	CK_RSA_PKCS_PSS_PARAMS pss;
	uint8_t iv[16];
	size_t iv_len;
	uint8_t *aad;
	size_t aad_len, tag_len;
	char *context;	    /* envelope context */
};

struct kosp11_session {
	CK_SESSION_HANDLE handle;
	size_t slot;
	CK_FLAGS flags;
	bool busy; /* lock: held by the thread inside a call on it */
	struct kosp11_op op[KOSP11_OP_COUNT];
	/* C_FindObjects* */
	bool finding;
	CK_OBJECT_HANDLE *found;
	size_t nfound, next;
};

/* Global state (lock). */
extern pthread_mutex_t kosp11_lock;
extern bool kosp11_initialized;
extern pid_t kosp11_pid;
extern struct kosp11_slot *kosp11_slots;
extern size_t kosp11_nslots;
extern struct kosp11_object **kosp11_objects;
extern size_t kosp11_nobjects;

/* general.c */
/* CKR_OK when initialised in this process; with the lock held. */
CK_RV kosp11_check_locked(void);
/* CKR_OK after taking the lock in an initialised process, else the lock
 * is not held. */
CK_RV kosp11_enter(void);
void kosp11_leave(void);
const CK_MECHANISM_TYPE *kosp11_mechanisms(size_t *n);
/* CKR_OK when mech is one of the module's and usable with op (CKF_SIGN,
 * ...); info (may be NULL) receives its CK_MECHANISM_INFO. */
CK_RV kosp11_mechanism_info(CK_MECHANISM_TYPE mech, CK_MECHANISM_INFO *info);

/* config.c */
/* Reads the configuration into a new slot array; prints
 * "kos-pkcs11: FILE: why" once on failure. */
CK_RV kosp11_config_load(struct kosp11_slot **slots, size_t *n);
void kosp11_slots_free(struct kosp11_slot *slots, size_t n, bool forget_handles);

/* errors.c: the one table from kos_rv and kosd's refusal to CK_RV */
CK_RV kosp11_rv(kos_rv rv, kos_client_refusal refusal, enum kosp11_ctx ctx);
CK_RV kosp11_client_rv(const kos_client *c, kos_rv rv, enum kosp11_ctx ctx);

/* session.c */
/* Looks session h up and marks it busy (waiting while another thread has
 * it): the lock is not held on return. */
CK_RV kosp11_session_get(CK_SESSION_HANDLE h, struct kosp11_session **out);
void kosp11_session_put(struct kosp11_session *s);
void kosp11_op_reset(struct kosp11_op *op);
void kosp11_sessions_drop(bool forget);
/* A handle on slot's kosd with the slot's credential: the logged-in user's,
 * or, with public_ok, the configured credential file's before login.
 * CKR_USER_NOT_LOGGED_IN without either. Called without the lock. */
CK_RV kosp11_pool_get(size_t slot, bool public_ok, kos_client **out, uint64_t *gen);
void kosp11_pool_put(size_t slot, kos_client *c, uint64_t gen);
/* with the lock held: slot's logged-in state */
bool kosp11_logged_in(size_t slot);

/* Counts slot's sessions, all and read-write (lock held). */
void kosp11_session_count(size_t slot, CK_ULONG *all, CK_ULONG *rw);

/* object.c */
/* The object behind h (lock held), NULL if none. */
struct kosp11_object *kosp11_object_get(CK_OBJECT_HANDLE h);
CK_OBJECT_HANDLE kosp11_object_handle(const struct kosp11_object *o);
/* The key's public key, fetched when not known for its current version;
 * *pk is freed with EVP_PKEY_free(). Called without the lock. */
CK_RV kosp11_object_pubkey(CK_OBJECT_HANDLE h, enum kosp11_ctx ctx, EVP_PKEY **pk);
void kosp11_objects_free(bool forget);
/* The kos signature length of a key type, 0 for a DEK. */
size_t kosp11_sig_len(kos_key_type t);

/* The entry points of session.c, object.c and crypto.c, in the
 * function list of general.c. */
#define KOSP11_DECLARE(name, args) CK_RV kosp11_##name args
KOSP11_DECLARE(C_InitPIN, (CK_SESSION_HANDLE, CK_UTF8CHAR_PTR, CK_ULONG));
KOSP11_DECLARE(C_SetPIN, (CK_SESSION_HANDLE, CK_UTF8CHAR_PTR, CK_ULONG, CK_UTF8CHAR_PTR,
			  CK_ULONG));
KOSP11_DECLARE(C_OpenSession, (CK_SLOT_ID, CK_FLAGS, CK_VOID_PTR, CK_NOTIFY,
			       CK_SESSION_HANDLE_PTR));
KOSP11_DECLARE(C_CloseSession, (CK_SESSION_HANDLE));
KOSP11_DECLARE(C_CloseAllSessions, (CK_SLOT_ID));
KOSP11_DECLARE(C_GetSessionInfo, (CK_SESSION_HANDLE, CK_SESSION_INFO_PTR));
KOSP11_DECLARE(C_GetOperationState, (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG_PTR));
KOSP11_DECLARE(C_SetOperationState, (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG,
				     CK_OBJECT_HANDLE, CK_OBJECT_HANDLE));
KOSP11_DECLARE(C_Login, (CK_SESSION_HANDLE, CK_USER_TYPE, CK_UTF8CHAR_PTR, CK_ULONG));
KOSP11_DECLARE(C_Logout, (CK_SESSION_HANDLE));
KOSP11_DECLARE(C_CreateObject, (CK_SESSION_HANDLE, CK_ATTRIBUTE_PTR, CK_ULONG,
				CK_OBJECT_HANDLE_PTR));
KOSP11_DECLARE(C_CopyObject, (CK_SESSION_HANDLE, CK_OBJECT_HANDLE, CK_ATTRIBUTE_PTR, CK_ULONG,
			      CK_OBJECT_HANDLE_PTR));
KOSP11_DECLARE(C_DestroyObject, (CK_SESSION_HANDLE, CK_OBJECT_HANDLE));
KOSP11_DECLARE(C_GetObjectSize, (CK_SESSION_HANDLE, CK_OBJECT_HANDLE, CK_ULONG_PTR));
KOSP11_DECLARE(C_GetAttributeValue, (CK_SESSION_HANDLE, CK_OBJECT_HANDLE, CK_ATTRIBUTE_PTR,
				     CK_ULONG));
KOSP11_DECLARE(C_SetAttributeValue, (CK_SESSION_HANDLE, CK_OBJECT_HANDLE, CK_ATTRIBUTE_PTR,
				     CK_ULONG));
KOSP11_DECLARE(C_FindObjectsInit, (CK_SESSION_HANDLE, CK_ATTRIBUTE_PTR, CK_ULONG));
KOSP11_DECLARE(C_FindObjects, (CK_SESSION_HANDLE, CK_OBJECT_HANDLE_PTR, CK_ULONG,
			       CK_ULONG_PTR));
KOSP11_DECLARE(C_FindObjectsFinal, (CK_SESSION_HANDLE));
KOSP11_DECLARE(C_EncryptInit, (CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE));
KOSP11_DECLARE(C_Encrypt, (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR,
			   CK_ULONG_PTR));
KOSP11_DECLARE(C_EncryptUpdate, (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR,
				 CK_ULONG_PTR));
KOSP11_DECLARE(C_EncryptFinal, (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG_PTR));
KOSP11_DECLARE(C_DecryptInit, (CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE));
KOSP11_DECLARE(C_Decrypt, (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR,
			   CK_ULONG_PTR));
KOSP11_DECLARE(C_DecryptUpdate, (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR,
				 CK_ULONG_PTR));
KOSP11_DECLARE(C_DecryptFinal, (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG_PTR));
KOSP11_DECLARE(C_DigestInit, (CK_SESSION_HANDLE, CK_MECHANISM_PTR));
KOSP11_DECLARE(C_Digest, (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR));
KOSP11_DECLARE(C_DigestUpdate, (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG));
KOSP11_DECLARE(C_DigestKey, (CK_SESSION_HANDLE, CK_OBJECT_HANDLE));
KOSP11_DECLARE(C_DigestFinal, (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG_PTR));
KOSP11_DECLARE(C_SignInit, (CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE));
KOSP11_DECLARE(C_Sign, (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR));
KOSP11_DECLARE(C_SignUpdate, (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG));
KOSP11_DECLARE(C_SignFinal, (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG_PTR));
KOSP11_DECLARE(C_SignRecoverInit, (CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE));
KOSP11_DECLARE(C_SignRecover, (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR,
			       CK_ULONG_PTR));
KOSP11_DECLARE(C_VerifyInit, (CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE));
KOSP11_DECLARE(C_Verify, (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG));
KOSP11_DECLARE(C_VerifyUpdate, (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG));
KOSP11_DECLARE(C_VerifyFinal, (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG));
KOSP11_DECLARE(C_VerifyRecoverInit, (CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE));
KOSP11_DECLARE(C_VerifyRecover, (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR,
				 CK_ULONG_PTR));
KOSP11_DECLARE(C_DigestEncryptUpdate, (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR,
				       CK_ULONG_PTR));
KOSP11_DECLARE(C_DecryptDigestUpdate, (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR,
				       CK_ULONG_PTR));
KOSP11_DECLARE(C_SignEncryptUpdate, (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR,
				     CK_ULONG_PTR));
KOSP11_DECLARE(C_DecryptVerifyUpdate, (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR,
				       CK_ULONG_PTR));
KOSP11_DECLARE(C_GenerateKey, (CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_ATTRIBUTE_PTR, CK_ULONG,
			       CK_OBJECT_HANDLE_PTR));
KOSP11_DECLARE(C_GenerateKeyPair, (CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_ATTRIBUTE_PTR,
				   CK_ULONG, CK_ATTRIBUTE_PTR, CK_ULONG, CK_OBJECT_HANDLE_PTR,
				   CK_OBJECT_HANDLE_PTR));
KOSP11_DECLARE(C_WrapKey, (CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE,
			   CK_OBJECT_HANDLE, CK_BYTE_PTR, CK_ULONG_PTR));
KOSP11_DECLARE(C_UnwrapKey, (CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE, CK_BYTE_PTR,
			     CK_ULONG, CK_ATTRIBUTE_PTR, CK_ULONG, CK_OBJECT_HANDLE_PTR));
KOSP11_DECLARE(C_DeriveKey, (CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE,
			     CK_ATTRIBUTE_PTR, CK_ULONG, CK_OBJECT_HANDLE_PTR));
KOSP11_DECLARE(C_SeedRandom, (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG));
KOSP11_DECLARE(C_GenerateRandom, (CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG));
KOSP11_DECLARE(C_GetFunctionStatus, (CK_SESSION_HANDLE));
KOSP11_DECLARE(C_CancelFunction, (CK_SESSION_HANDLE));

#endif
