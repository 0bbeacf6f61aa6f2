/* Cryptographic functions: signing in kosd's HSMs (a digest computed here
 * for the hashing mechanisms, so multi-part signing sends 32 to 64 bytes),
 * verification locally with OpenSSL on the key's public key, AES-GCM and
 * kos envelopes through the client library (which decrypts locally for
 * high and medium tiers and asks kosd for low ones), digests and random
 * bytes with OpenSSL. Output lengths are known before kosd is asked, so a
 * length query or a short buffer never costs a request and never loses a
 * result. */
#include "config.h"

#include "pkcs11/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ecdsa.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

enum family { FAM_EC, FAM_ED, FAM_RSA, FAM_DEK, FAM_NONE };

static const struct sigmech {
	CK_MECHANISM_TYPE mech;
	enum family fam;
	kos_sig_alg alg;
	const char *md; /* hashed here; NULL: the input is the digest or the message */
	bool pss;
} kosp11_sigmechs[] = {
	{ CKM_ECDSA, FAM_EC, KOS_SIG_ECDSA_RAW, NULL, false },
	{ CKM_ECDSA_SHA256, FAM_EC, KOS_SIG_ECDSA_RAW, "SHA256", false },
	{ CKM_ECDSA_SHA384, FAM_EC, KOS_SIG_ECDSA_RAW, "SHA384", false },
	{ CKM_ECDSA_SHA512, FAM_EC, KOS_SIG_ECDSA_RAW, "SHA512", false },
	{ CKM_EDDSA, FAM_ED, KOS_SIG_ED25519, NULL, false },
	{ CKM_RSA_PKCS, FAM_RSA, KOS_SIG_RSA_PKCS1, NULL, false },
	{ CKM_SHA256_RSA_PKCS, FAM_RSA, KOS_SIG_RSA_PKCS1, "SHA256", false },
	{ CKM_SHA384_RSA_PKCS, FAM_RSA, KOS_SIG_RSA_PKCS1, "SHA384", false },
	{ CKM_SHA512_RSA_PKCS, FAM_RSA, KOS_SIG_RSA_PKCS1, "SHA512", false },
	{ CKM_RSA_PKCS_PSS, FAM_RSA, KOS_SIG_RSA_PSS, NULL, true },
	{ CKM_SHA256_RSA_PKCS_PSS, FAM_RSA, KOS_SIG_RSA_PSS, "SHA256", true },
	{ CKM_SHA384_RSA_PKCS_PSS, FAM_RSA, KOS_SIG_RSA_PSS, "SHA384", true },
	{ CKM_SHA512_RSA_PKCS_PSS, FAM_RSA, KOS_SIG_RSA_PSS, "SHA512", true },
};

/* DigestInfo prefixes (RFC 8017, 9.2 note 1) CKM_RSA_PKCS input starts with.
 * SHA-1 is recognised so that kosd, not the module, decides on it: its
 * policy refuses SHA-1 signatures unless signing.allow_sha1 is set. */
static const struct digest_info {
	kos_hash hash;
	size_t prefix_len;
	uint8_t prefix[19];
} kosp11_digest_infos[] = {
	{ KOS_HASH_SHA256, 19, { 0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65,
			     0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20 } },
	{ KOS_HASH_SHA384, 19, { 0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65,
			     0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30 } },
	{ KOS_HASH_SHA512, 19, { 0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65,
			     0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40 } },
	{ KOS_HASH_SHA1, 15, { 0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a,
			       0x05, 0x00, 0x04, 0x14 } },
};

static enum family family_of(kos_key_type t)
{
	switch (t) {
	case KOS_KEY_EC_P256:
		return FAM_EC;
	case KOS_KEY_ED25519:
		return FAM_ED;
	case KOS_KEY_RSA_2048:
	case KOS_KEY_RSA_3072:
		return FAM_RSA;
	case KOS_KEY_DEK:
		return FAM_DEK;
	default:
		return FAM_NONE;
	}
}

static const struct sigmech *sigmech_of(CK_MECHANISM_TYPE m)
{
	for (size_t i = 0; i < sizeof(kosp11_sigmechs) / sizeof(kosp11_sigmechs[0]); i++)
		if (kosp11_sigmechs[i].mech == m)
			return &kosp11_sigmechs[i];
	return NULL;
}

static bool hash_of_md(const char *md, kos_hash *h)
{
	if (md == NULL)
		return false;
	*h = strcmp(md, "SHA256") == 0 ? KOS_HASH_SHA256 :
	     strcmp(md, "SHA384") == 0 ? KOS_HASH_SHA384 :
					 KOS_HASH_SHA512;
	return true;
}

static bool hash_of_mech(CK_MECHANISM_TYPE m, CK_RSA_PKCS_MGF_TYPE *mgf, kos_hash *h)
{
	switch (m) {
	case CKM_SHA256:
		*h = KOS_HASH_SHA256, *mgf = CKG_MGF1_SHA256;
		return true;
	case CKM_SHA384:
		*h = KOS_HASH_SHA384, *mgf = CKG_MGF1_SHA384;
		return true;
	case CKM_SHA512:
		*h = KOS_HASH_SHA512, *mgf = CKG_MGF1_SHA512;
		return true;
	default:
		return false;
	}
}

static const char *md_name(kos_hash h)
{
	switch (h) {
	case KOS_HASH_SHA256:
		return "SHA256";
	case KOS_HASH_SHA384:
		return "SHA384";
	case KOS_HASH_SHA1:
		return "SHA1";
	default:
		return "SHA512";
	}
}

/* Appends to the op's collected data (multi-part into a one-shot call). */
static CK_RV op_append(struct kosp11_op *op, const uint8_t *p, size_t len)
{
	if (len == 0)
		return CKR_OK;
	if (p == NULL)
		return CKR_ARGUMENTS_BAD;
	if (op->md != NULL)
		return EVP_DigestUpdate(op->md, p, len) == 1 ? CKR_OK : CKR_FUNCTION_FAILED;
	if (len > KOSP11_DATA_MAX - op->len)
		return CKR_DATA_LEN_RANGE;
	if (op->len + len > op->cap) {
		size_t cap = op->cap ? op->cap : 256;
		uint8_t *n;

		while (cap < op->len + len)
			cap *= 2;
		if ((n = malloc(cap)) == NULL)
			return CKR_HOST_MEMORY;
		if (op->data != NULL) {
			memcpy(n, op->data, op->len);
			op->data_secret ? kos_secret_free(op->data, op->cap) : free(op->data);
		}
		op->data = n;
		op->cap = cap;
	}
	memcpy(op->data + op->len, p, len);
	op->len += len;
	return CKR_OK;
}

/* C_SignUpdate, C_VerifyUpdate and C_DigestUpdate: the part joins the
 * session's active operation of that kind; a failure ends it, as PKCS#11
 * says of every error but CKR_BUFFER_TOO_SMALL. */
static CK_RV op_update(CK_SESSION_HANDLE hSession, int kind, CK_BYTE_PTR pPart,
		       CK_ULONG ulPartLen)
{
	struct kosp11_session *s;
	struct kosp11_op *op;
	CK_RV rv;

	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	op = &s->op[kind];
	if (!op->active)
		rv = CKR_OPERATION_NOT_INITIALIZED;
	else if ((rv = op_append(op, pPart, ulPartLen)) != CKR_OK)
		kosp11_op_reset(op);
	kosp11_session_put(s);
	return rv;
}

/* With the session busy: the key behind h for an operation, copied into
 * op; want is the object kind the operation needs. */
static CK_RV op_key(const struct kosp11_session *s, CK_OBJECT_HANDLE h, enum kosp11_kind want,
		    CK_ATTRIBUTE_TYPE usage, struct kosp11_op *op)
{
	struct kosp11_object *o;
	CK_RV rv = CKR_OK;

	pthread_mutex_lock(&kosp11_lock);
	o = kosp11_object_get(h);
	if (o == NULL || o->slot != s->slot || o->kind == KOSP11_CERT) {
		rv = CKR_KEY_HANDLE_INVALID;
	} else if ((o->kind == KOSP11_PRIV || o->kind == KOSP11_SECRET) &&
		   !kosp11_logged_in(s->slot)) {
		rv = CKR_USER_NOT_LOGGED_IN;
	} else if (o->kind != want) {
		rv = CKR_KEY_FUNCTION_NOT_PERMITTED;
	} else if (usage == CKA_ENCRYPT && o->current != 0 && o->version != o->current) {
		/* an older DEK version only decrypts */
		rv = CKR_KEY_FUNCTION_NOT_PERMITTED;
	} else {
		op->key = h;
		snprintf(op->name, sizeof(op->name), "%s", o->name);
		op->type = o->type;
		op->version = o->version;
	}
	pthread_mutex_unlock(&kosp11_lock);
	return rv;
}

/* Init shared by sign and verify. */
static CK_RV sig_init(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
		      CK_OBJECT_HANDLE hKey, enum kosp11_op_kind kind)
{
	const struct sigmech *sm;
	struct kosp11_session *s;
	struct kosp11_op *op;
	CK_RV rv;

	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	op = &s->op[kind];
	if (pMechanism == NULL) {
		rv = CKR_ARGUMENTS_BAD;
		goto out;
	}
	if (op->active) {
		rv = CKR_OPERATION_ACTIVE;
		goto out;
	}
	if ((sm = sigmech_of(pMechanism->mechanism)) == NULL) {
		rv = CKR_MECHANISM_INVALID;
		goto out;
	}
	rv = op_key(s, hKey, kind == KOSP11_OP_SIGN ? KOSP11_PRIV : KOSP11_PUB,
		    kind == KOSP11_OP_SIGN ? CKA_SIGN : CKA_VERIFY, op);
	if (rv != CKR_OK)
		goto fail;
	if (family_of(op->type) != sm->fam) {
		rv = CKR_KEY_TYPE_INCONSISTENT;
		goto fail;
	}
	if (sm->pss) {
		CK_RSA_PKCS_PSS_PARAMS p;
		CK_RSA_PKCS_MGF_TYPE mgf;
		kos_hash h, mh;

		if (pMechanism->pParameter == NULL ||
		    pMechanism->ulParameterLen != sizeof(CK_RSA_PKCS_PSS_PARAMS)) {
			rv = CKR_MECHANISM_PARAM_INVALID;
			goto fail;
		}
		memcpy(&p, pMechanism->pParameter, sizeof(p));
		/* one hash for the digest and MGF1, as kosd signs */
		if (!hash_of_mech(p.hashAlg, &mgf, &h) || p.mgf != mgf ||
		    (sm->md != NULL && (hash_of_md(sm->md, &mh), mh != h)) ||
		    p.sLen > (op->type == KOS_KEY_RSA_2048 ? 256 : 384) - kos_hash_len(h) - 2) {
			rv = CKR_MECHANISM_PARAM_INVALID;
			goto fail;
		}
		op->pss = p;
	} else if (pMechanism->pParameter != NULL || pMechanism->ulParameterLen != 0) {
		rv = CKR_MECHANISM_PARAM_INVALID;
		goto fail;
	}
	if (sm->md != NULL) {
		op->md_type = EVP_get_digestbyname(sm->md);
		if ((op->md = EVP_MD_CTX_new()) == NULL ||
		    EVP_DigestInit_ex(op->md, op->md_type, NULL) != 1) {
			rv = CKR_HOST_MEMORY;
			goto fail;
		}
	}
	op->mech = pMechanism->mechanism;
	op->active = true;
	goto out;
fail:
	kosp11_op_reset(op);
out:
	kosp11_session_put(s);
	return rv;
}

CK_RV kosp11_C_SignInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
			CK_OBJECT_HANDLE hKey)
{
	return sig_init(hSession, pMechanism, hKey, KOSP11_OP_SIGN);
}

CK_RV kosp11_C_VerifyInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
			  CK_OBJECT_HANDLE hKey)
{
	return sig_init(hSession, pMechanism, hKey, KOSP11_OP_VERIFY);
}

/* The digest to sign or verify and its hash, from the op's input. */
static CK_RV op_digest(struct kosp11_op *op, const struct sigmech *sm, uint8_t *dg, size_t *len,
		       kos_hash *h)
{
	unsigned int n = 0;

	if (sm->md != NULL) {
		if (EVP_DigestFinal_ex(op->md, dg, &n) != 1)
			return CKR_FUNCTION_FAILED;
		*len = n;
		hash_of_md(sm->md, h);
		return CKR_OK;
	}
	if (sm->fam == FAM_EC) {
		/* ECDSA uses the digest's leftmost 256 bits for P-256, as an
		 * integer: a shorter digest is that integer zero-padded, a
		 * longer one its first 32 bytes (the same signature) */
		if (op->len < 20 || op->len > 64)
			return CKR_DATA_LEN_RANGE;
		if (op->len == 48 || op->len == 64) {
			*h = op->len == 48 ? KOS_HASH_SHA384 : KOS_HASH_SHA512;
			memcpy(dg, op->data, op->len);
			*len = op->len;
		} else {
			*h = KOS_HASH_SHA256;
			memset(dg, 0, 32);
			if (op->len < 32)
				memcpy(dg + 32 - op->len, op->data, op->len);
			else
				memcpy(dg, op->data, 32);
			*len = 32;
		}
		return CKR_OK;
	}
	if (sm->pss) {
		CK_RSA_PKCS_MGF_TYPE mgf;

		hash_of_mech(op->pss.hashAlg, &mgf, h);
		if (op->len != kos_hash_len(*h))
			return CKR_DATA_LEN_RANGE;
		memcpy(dg, op->data, op->len);
		*len = op->len;
		return CKR_OK;
	}
	/* CKM_RSA_PKCS: a DigestInfo of SHA-256, -384, -512 or SHA-1 */
	for (size_t i = 0; i < sizeof(kosp11_digest_infos) / sizeof(kosp11_digest_infos[0]); i++) {
		const struct digest_info *di = &kosp11_digest_infos[i];
		size_t dl = kos_hash_len(di->hash);

		if (op->len == di->prefix_len + dl &&
		    memcmp(op->data, di->prefix, di->prefix_len) == 0) {
			memcpy(dg, op->data + di->prefix_len, dl);
			*len = dl;
			*h = di->hash;
			return CKR_OK;
		}
	}
	return CKR_DATA_INVALID;
}

/* Signs what the op collected; *sig (sig_len bytes) freed with kos_free(). */
static CK_RV sign_now(struct kosp11_session *s, struct kosp11_op *op, uint8_t **sig,
		      size_t *sig_len)
{
	const struct sigmech *sm = sigmech_of(op->mech);
	uint8_t dg[KOS_HASH_MAX_LEN];
	size_t dl = 0;
	kos_hash h = KOS_HASH_SHA256;
	kos_client *c = NULL;
	uint64_t gen = 0;
	kos_rv krv;
	CK_RV rv;

	if (sm->fam != FAM_ED && (rv = op_digest(op, sm, dg, &dl, &h)) != CKR_OK)
		return rv;
	if ((rv = kosp11_pool_get(s->slot, false, &c, &gen)) != CKR_OK)
		return rv;
	if (sm->fam == FAM_ED)
		krv = kos_client_sign(c, op->name, KOS_SIG_ED25519, op->data, op->len, sig,
				      sig_len);
	else
		krv = kos_client_sign_digest(c, op->name, sm->alg, h,
					     sm->pss ? (int)op->pss.sLen : KOS_SIG_SALT_DEFAULT,
					     dg, dl, sig, sig_len);
	rv = kosp11_client_rv(c, krv, KOSP11_CTX_SIGN);
	kosp11_pool_put(s->slot, c, gen);
	return rv;
}

/* Writes a result of known length per the buffer conventions: NULL asks
 * the length, a short buffer keeps the operation. *done says whether the
 * operation may now run. */
static CK_RV want_room(CK_BYTE_PTR out, CK_ULONG_PTR out_len, size_t need, bool *go)
{
	*go = false;
	if (out_len == NULL)
		return CKR_ARGUMENTS_BAD;
	if (out == NULL) {
		*out_len = need;
		return CKR_OK;
	}
	if (*out_len < need) {
		*out_len = need;
		return CKR_BUFFER_TOO_SMALL;
	}
	*go = true;
	return CKR_OK;
}

static CK_RV sign_final(struct kosp11_session *s, CK_BYTE_PTR pSig, CK_ULONG_PTR pulSigLen)
{
	struct kosp11_op *op = &s->op[KOSP11_OP_SIGN];
	uint8_t *sig = NULL;
	size_t sig_len = 0;
	bool go;
	CK_RV rv;

	rv = want_room(pSig, pulSigLen, kosp11_sig_len(op->type), &go);
	if (!go) {
		if (rv == CKR_ARGUMENTS_BAD)
			kosp11_op_reset(op);
		return rv;
	}
	rv = sign_now(s, op, &sig, &sig_len);
	if (rv == CKR_OK) {
		if (sig_len > *pulSigLen) {
			rv = CKR_DEVICE_ERROR; /* kosd's signature is not the key's size */
		} else {
			memcpy(pSig, sig, sig_len);
			*pulSigLen = sig_len;
		}
	}
	kos_free(sig);
	kosp11_op_reset(op);
	return rv;
}

CK_RV kosp11_C_Sign(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
		    CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen)
{
	struct kosp11_session *s;
	struct kosp11_op *op;
	CK_RV rv;

	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	op = &s->op[KOSP11_OP_SIGN];
	if (!op->active) {
		rv = CKR_OPERATION_NOT_INITIALIZED;
		goto out;
	}
	if ((pData == NULL && ulDataLen > 0) || pulSignatureLen == NULL) {
		kosp11_op_reset(op);
		rv = CKR_ARGUMENTS_BAD;
		goto out;
	}
	/* a length query comes back with the same data: collect it once */
	if (pSignature != NULL || op->len == 0) {
		if (op->md != NULL) {
			/* the digest restarts: C_Sign is the whole input */
			if (EVP_DigestInit_ex(op->md, op->md_type, NULL) != 1) {
				kosp11_op_reset(op);
				rv = CKR_FUNCTION_FAILED;
				goto out;
			}
		}
		op->len = 0;
		if ((rv = op_append(op, pData, ulDataLen)) != CKR_OK) {
			kosp11_op_reset(op);
			goto out;
		}
	}
	rv = sign_final(s, pSignature, pulSignatureLen);
out:
	kosp11_session_put(s);
	return rv;
}

CK_RV kosp11_C_SignUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen)
{
	return op_update(hSession, KOSP11_OP_SIGN, pPart, ulPartLen);
}

CK_RV kosp11_C_SignFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature,
			 CK_ULONG_PTR pulSignatureLen)
{
	struct kosp11_session *s;
	CK_RV rv;

	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	if (!s->op[KOSP11_OP_SIGN].active)
		rv = CKR_OPERATION_NOT_INITIALIZED;
	else
		rv = sign_final(s, pSignature, pulSignatureLen);
	kosp11_session_put(s);
	return rv;
}

CK_RV kosp11_C_SignRecoverInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
			       CK_OBJECT_HANDLE hKey)
{
	struct kosp11_session *s;
	CK_RV rv;

	(void)hKey;
	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	kosp11_session_put(s);
	return pMechanism == NULL ? CKR_ARGUMENTS_BAD : CKR_MECHANISM_INVALID;
}

CK_RV kosp11_C_SignRecover(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
			   CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen)
{
	struct kosp11_session *s;
	CK_RV rv;

	(void)pData;
	(void)ulDataLen;
	(void)pSignature;
	(void)pulSignatureLen;
	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	kosp11_session_put(s);
	return CKR_OPERATION_NOT_INITIALIZED;
}

/* --- verification, local ---------------------------------------------------- */

static CK_RV verify_now(struct kosp11_op *op, EVP_PKEY *pk, const uint8_t *sig, size_t sig_len)
{
	const struct sigmech *sm = sigmech_of(op->mech);
	uint8_t dg[KOS_HASH_MAX_LEN], *der = NULL;
	size_t dl = 0;
	kos_hash h = KOS_HASH_SHA256;
	EVP_PKEY_CTX *pc = NULL;
	EVP_MD_CTX *mc = NULL;
	int ok = 0, der_len = 0;
	CK_RV rv;

	if (sig_len != kosp11_sig_len(op->type))
		return CKR_SIGNATURE_LEN_RANGE;
	if (sm->fam == FAM_ED) {
		if ((mc = EVP_MD_CTX_new()) == NULL)
			return CKR_HOST_MEMORY;
		ok = EVP_DigestVerifyInit(mc, NULL, NULL, NULL, pk) == 1 &&
		     EVP_DigestVerify(mc, sig, sig_len, op->data, op->len) == 1;
		EVP_MD_CTX_free(mc);
		return ok ? CKR_OK : CKR_SIGNATURE_INVALID;
	}
	/* CKM_RSA_PKCS compares the recovered DigestInfo with the input as it is */
	if (!(sm->fam == FAM_RSA && !sm->pss && sm->md == NULL) &&
	    (rv = op_digest(op, sm, dg, &dl, &h)) != CKR_OK)
		return rv;
	if ((pc = EVP_PKEY_CTX_new(pk, NULL)) == NULL || EVP_PKEY_verify_init(pc) != 1) {
		EVP_PKEY_CTX_free(pc);
		return CKR_HOST_MEMORY;
	}
	if (sm->fam == FAM_EC) {
		ECDSA_SIG *es = ECDSA_SIG_new();
		BIGNUM *r = BN_bin2bn(sig, 32, NULL), *sv = BN_bin2bn(sig + 32, 32, NULL);

		if (es != NULL && r != NULL && sv != NULL && ECDSA_SIG_set0(es, r, sv) == 1) {
			r = sv = NULL;
			der_len = i2d_ECDSA_SIG(es, &der);
		}
		BN_free(r);
		BN_free(sv);
		ECDSA_SIG_free(es);
		ok = der_len > 0 && EVP_PKEY_verify(pc, der, (size_t)der_len, dg, dl) == 1;
		OPENSSL_free(der);
	} else if (!sm->pss && sm->md == NULL) {
		ok = EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) == 1 &&
		     EVP_PKEY_verify(pc, sig, sig_len, op->data, op->len) == 1;
	} else {
		const EVP_MD *md = EVP_get_digestbyname(md_name(h));

		ok = EVP_PKEY_CTX_set_signature_md(pc, md) == 1;
		if (ok && sm->pss)
			ok = EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) == 1 &&
			     EVP_PKEY_CTX_set_rsa_mgf1_md(pc, md) == 1 &&
			     EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, (int)op->pss.sLen) == 1;
		else if (ok)
			ok = EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) == 1;
		ok = ok && EVP_PKEY_verify(pc, sig, sig_len, dg, dl) == 1;
	}
	EVP_PKEY_CTX_free(pc);
	return ok ? CKR_OK : CKR_SIGNATURE_INVALID;
}

static CK_RV verify_final(struct kosp11_session *s, const uint8_t *sig, CK_ULONG sig_len)
{
	struct kosp11_op *op = &s->op[KOSP11_OP_VERIFY];
	EVP_PKEY *pk = NULL;
	CK_RV rv;

	(void)s;
	if (sig == NULL) {
		kosp11_op_reset(op);
		return CKR_ARGUMENTS_BAD;
	}
	rv = kosp11_object_pubkey(op->key, KOSP11_CTX_SIGN, &pk);
	if (rv == CKR_OK)
		rv = verify_now(op, pk, sig, sig_len);
	EVP_PKEY_free(pk);
	kosp11_op_reset(op);
	return rv;
}

CK_RV kosp11_C_Verify(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
		      CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen)
{
	struct kosp11_session *s;
	struct kosp11_op *op;
	CK_RV rv;

	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	op = &s->op[KOSP11_OP_VERIFY];
	if (!op->active) {
		rv = CKR_OPERATION_NOT_INITIALIZED;
	} else if ((rv = op_append(op, pData, ulDataLen)) != CKR_OK) {
		kosp11_op_reset(op);
	} else {
		rv = verify_final(s, pSignature, ulSignatureLen);
	}
	kosp11_session_put(s);
	return rv;
}

CK_RV kosp11_C_VerifyUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen)
{
	return op_update(hSession, KOSP11_OP_VERIFY, pPart, ulPartLen);
}

CK_RV kosp11_C_VerifyFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature,
			   CK_ULONG ulSignatureLen)
{
	struct kosp11_session *s;
	CK_RV rv;

	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	if (!s->op[KOSP11_OP_VERIFY].active)
		rv = CKR_OPERATION_NOT_INITIALIZED;
	else
		rv = verify_final(s, pSignature, ulSignatureLen);
	kosp11_session_put(s);
	return rv;
}

CK_RV kosp11_C_VerifyRecoverInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
				 CK_OBJECT_HANDLE hKey)
{
	return kosp11_C_SignRecoverInit(hSession, pMechanism, hKey);
}

CK_RV kosp11_C_VerifyRecover(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature,
			     CK_ULONG ulSignatureLen, CK_BYTE_PTR pData, CK_ULONG_PTR pulDataLen)
{
	return kosp11_C_SignRecover(hSession, pSignature, ulSignatureLen, pData, pulDataLen);
}

/* --- encryption and decryption ---------------------------------------------- */

static CK_RV cipher_init(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
			 CK_OBJECT_HANDLE hKey, enum kosp11_op_kind kind)
{
	struct kosp11_session *s;
	struct kosp11_op *op;
	CK_RV rv;

	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	op = &s->op[kind];
	if (pMechanism == NULL) {
		rv = CKR_ARGUMENTS_BAD;
		goto out;
	}
	if (op->active) {
		rv = CKR_OPERATION_ACTIVE;
		goto out;
	}
	if (pMechanism->mechanism != CKM_AES_GCM && pMechanism->mechanism != CKM_KOS_ENVELOPE) {
		rv = CKR_MECHANISM_INVALID;
		goto out;
	}
	if ((rv = op_key(s, hKey, KOSP11_SECRET, kind == KOSP11_OP_ENCRYPT ? CKA_ENCRYPT : CKA_DECRYPT,
			 op)) != CKR_OK) {
		/* a signing key given to a cipher is the wrong type */
		if (rv == CKR_KEY_FUNCTION_NOT_PERMITTED) {
			pthread_mutex_lock(&kosp11_lock);
			struct kosp11_object *o = kosp11_object_get(hKey);

			if (o != NULL && o->kind != KOSP11_SECRET)
				rv = CKR_KEY_TYPE_INCONSISTENT;
			pthread_mutex_unlock(&kosp11_lock);
		}
		goto fail;
	}
	op->data_secret = kind == KOSP11_OP_ENCRYPT;
	if (pMechanism->mechanism == CKM_AES_GCM) {
		CK_GCM_PARAMS p;

		if (pMechanism->pParameter == NULL ||
		    pMechanism->ulParameterLen != sizeof(CK_GCM_PARAMS)) {
			rv = CKR_MECHANISM_PARAM_INVALID;
			goto fail;
		}
		memcpy(&p, pMechanism->pParameter, sizeof(p));
		if (p.pIv == NULL || p.ulIvLen != KOS_GCM_IV_LEN ||
		    (p.ulIvBits != 0 && p.ulIvBits != 8 * KOS_GCM_IV_LEN) || p.ulTagBits % 8 != 0 ||
		    p.ulTagBits < 8 * KOS_GCM_TAG_MIN || p.ulTagBits > 8 * KOS_GCM_TAG_MAX ||
		    p.ulAADLen > KOS_GCM_AAD_MAX || (p.pAAD == NULL && p.ulAADLen > 0)) {
			rv = CKR_MECHANISM_PARAM_INVALID;
			goto fail;
		}
		memcpy(op->iv, p.pIv, KOS_GCM_IV_LEN);
		op->iv_len = KOS_GCM_IV_LEN;
		op->tag_len = p.ulTagBits / 8;
		if (p.ulAADLen > 0) {
			if ((op->aad = malloc(p.ulAADLen)) == NULL) {
				rv = CKR_HOST_MEMORY;
				goto fail;
			}
			memcpy(op->aad, p.pAAD, p.ulAADLen);
			op->aad_len = p.ulAADLen;
		}
	} else if (pMechanism->ulParameterLen > 0) {
		if (pMechanism->pParameter == NULL ||
		    pMechanism->ulParameterLen > KOSP11_CONTEXT_MAX ||
		    memchr(pMechanism->pParameter, '\0', pMechanism->ulParameterLen) != NULL) {
			rv = CKR_MECHANISM_PARAM_INVALID;
			goto fail;
		}
		if ((op->context = malloc(pMechanism->ulParameterLen + 1)) == NULL) {
			rv = CKR_HOST_MEMORY;
			goto fail;
		}
		memcpy(op->context, pMechanism->pParameter, pMechanism->ulParameterLen);
		op->context[pMechanism->ulParameterLen] = '\0';
	}
	op->mech = pMechanism->mechanism;
	op->active = true;
	goto out;
fail:
	kosp11_op_reset(op);
out:
	kosp11_session_put(s);
	return rv;
}

CK_RV kosp11_C_EncryptInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
			   CK_OBJECT_HANDLE hKey)
{
	return cipher_init(hSession, pMechanism, hKey, KOSP11_OP_ENCRYPT);
}

CK_RV kosp11_C_DecryptInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
			   CK_OBJECT_HANDLE hKey)
{
	return cipher_init(hSession, pMechanism, hKey, KOSP11_OP_DECRYPT);
}

/* The output's length for the op's collected input; 0 with *rv set when
 * the input cannot be right. */
static size_t cipher_out_len(const struct kosp11_op *op, bool enc, CK_RV *rv)
{
	size_t nl = strlen(op->name);

	*rv = CKR_OK;
	if (op->mech == CKM_AES_GCM) {
		if (enc)
			return op->len + op->tag_len;
		if (op->len < op->tag_len) {
			*rv = CKR_ENCRYPTED_DATA_LEN_RANGE;
			return 0;
		}
		return op->len - op->tag_len;
	}
	/* kos-envelope(5): "KOSE", 1, L, name, version, nonce, data, tag */
	if (enc)
		return 4 + 1 + 1 + nl + 4 + 12 + op->len + 16;
	if (op->len < 6 + 4 + 12 + 16 || op->len < (size_t)6 + op->data[5] + 4 + 12 + 16) {
		*rv = CKR_ENCRYPTED_DATA_LEN_RANGE;
		return 0;
	}
	/* an envelope of another key does not open with this one */
	if (memcmp(op->data, "KOSE", 4) != 0 || op->data[5] != nl ||
	    memcmp(op->data + 6, op->name, nl) != 0) {
		*rv = CKR_ENCRYPTED_DATA_INVALID;
		return 0;
	}
	return op->len - (6 + nl + 4 + 12 + 16);
}

static CK_RV cipher_final(struct kosp11_session *s, enum kosp11_op_kind kind, CK_BYTE_PTR out,
			  CK_ULONG_PTR out_len)
{
	struct kosp11_op *op = &s->op[kind];
	bool enc = kind == KOSP11_OP_ENCRYPT, go;
	kos_client_gcm p = { op->iv, op->iv_len, op->aad, op->aad_len, op->tag_len };
	uint8_t *res = NULL;
	size_t need, res_len = 0;
	kos_client *c = NULL;
	uint64_t gen = 0;
	uint32_t version = 0;
	kos_rv krv;
	CK_RV rv;

	need = cipher_out_len(op, enc, &rv);
	if (rv != CKR_OK) {
		kosp11_op_reset(op);
		return rv;
	}
	rv = want_room(out, out_len, need, &go);
	if (!go) {
		if (rv == CKR_ARGUMENTS_BAD)
			kosp11_op_reset(op);
		return rv;
	}
	if ((rv = kosp11_pool_get(s->slot, false, &c, &gen)) != CKR_OK) {
		kosp11_op_reset(op);
		return rv;
	}
	if (op->mech == CKM_AES_GCM && enc)
		krv = kos_client_gcm_encrypt(c, op->name, &p, op->data, op->len, &res, &res_len,
					     &version);
	else if (op->mech == CKM_AES_GCM)
		krv = kos_client_gcm_decrypt(c, op->name, op->version, &p, op->data, op->len, &res,
					     &res_len);
	else if (enc)
		krv = kos_client_encrypt(c, op->name, op->context, op->data, op->len, &res,
					 &res_len);
	else
		krv = kos_client_decrypt(c, op->context, op->data, op->len, &res, &res_len);
	rv = kosp11_client_rv(c, krv, enc ? KOSP11_CTX_ENCRYPT : KOSP11_CTX_DECRYPT);
	kosp11_pool_put(s->slot, c, gen);
	if (rv == CKR_OK) {
		if (res_len > *out_len) {
			rv = CKR_DEVICE_ERROR;
		} else {
			if (res_len > 0)
				memcpy(out, res, res_len);
			*out_len = res_len;
		}
	}
	if (enc)
		kos_free(res);
	else
		kos_secret_free(res, res_len);
	kosp11_op_reset(op);
	return rv;
}

static CK_RV cipher_one(CK_SESSION_HANDLE hSession, enum kosp11_op_kind kind, CK_BYTE_PTR in,
			CK_ULONG in_len, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	struct kosp11_session *s;
	struct kosp11_op *op;
	CK_RV rv;

	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	op = &s->op[kind];
	if (!op->active) {
		rv = CKR_OPERATION_NOT_INITIALIZED;
		goto out;
	}
	if ((in == NULL && in_len > 0) || out_len == NULL) {
		kosp11_op_reset(op);
		rv = CKR_ARGUMENTS_BAD;
		goto out;
	}
	/* the input of a length query comes back with the real call */
	op->len = 0;
	if ((rv = op_append(op, in, in_len)) != CKR_OK) {
		kosp11_op_reset(op);
		goto out;
	}
	rv = cipher_final(s, kind, out, out_len);
out:
	kosp11_session_put(s);
	return rv;
}

/* Multi-part: the parts are collected and the whole is sealed or opened
 * at the final call (GCM's tag covers all of it; a part released before
 * the tag is checked would be unauthenticated plaintext). */
static CK_RV cipher_update(CK_SESSION_HANDLE hSession, enum kosp11_op_kind kind, CK_BYTE_PTR in,
			   CK_ULONG in_len, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	struct kosp11_session *s;
	struct kosp11_op *op;
	CK_RV rv;

	(void)out;
	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	op = &s->op[kind];
	if (!op->active) {
		rv = CKR_OPERATION_NOT_INITIALIZED;
	} else if (out_len == NULL) {
		kosp11_op_reset(op);
		rv = CKR_ARGUMENTS_BAD;
	} else if ((rv = op_append(op, in, in_len)) != CKR_OK) {
		kosp11_op_reset(op);
	} else {
		*out_len = 0;
	}
	kosp11_session_put(s);
	return rv;
}

static CK_RV cipher_last(CK_SESSION_HANDLE hSession, enum kosp11_op_kind kind, CK_BYTE_PTR out,
			 CK_ULONG_PTR out_len)
{
	struct kosp11_session *s;
	CK_RV rv;

	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	if (!s->op[kind].active)
		rv = CKR_OPERATION_NOT_INITIALIZED;
	else
		rv = cipher_final(s, kind, out, out_len);
	kosp11_session_put(s);
	return rv;
}

CK_RV kosp11_C_Encrypt(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
		       CK_BYTE_PTR pEncryptedData, CK_ULONG_PTR pulEncryptedDataLen)
{
	return cipher_one(hSession, KOSP11_OP_ENCRYPT, pData, ulDataLen, pEncryptedData,
			  pulEncryptedDataLen);
}

CK_RV kosp11_C_EncryptUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen,
			     CK_BYTE_PTR pEncryptedPart, CK_ULONG_PTR pulEncryptedPartLen)
{
	return cipher_update(hSession, KOSP11_OP_ENCRYPT, pPart, ulPartLen, pEncryptedPart,
			     pulEncryptedPartLen);
}

CK_RV kosp11_C_EncryptFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pLastEncryptedPart,
			    CK_ULONG_PTR pulLastEncryptedPartLen)
{
	return cipher_last(hSession, KOSP11_OP_ENCRYPT, pLastEncryptedPart,
			   pulLastEncryptedPartLen);
}

CK_RV kosp11_C_Decrypt(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedData,
		       CK_ULONG ulEncryptedDataLen, CK_BYTE_PTR pData, CK_ULONG_PTR pulDataLen)
{
	return cipher_one(hSession, KOSP11_OP_DECRYPT, pEncryptedData, ulEncryptedDataLen, pData,
			  pulDataLen);
}

CK_RV kosp11_C_DecryptUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart,
			     CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart, CK_ULONG_PTR pulPartLen)
{
	return cipher_update(hSession, KOSP11_OP_DECRYPT, pEncryptedPart, ulEncryptedPartLen,
			     pPart, pulPartLen);
}

CK_RV kosp11_C_DecryptFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pLastPart,
			    CK_ULONG_PTR pulLastPartLen)
{
	return cipher_last(hSession, KOSP11_OP_DECRYPT, pLastPart, pulLastPartLen);
}

/* --- digests ------------------------------------------------------------------ */

CK_RV kosp11_C_DigestInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism)
{
	struct kosp11_session *s;
	struct kosp11_op *op;
	CK_RSA_PKCS_MGF_TYPE mgf;
	kos_hash h;
	CK_RV rv;

	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	op = &s->op[KOSP11_OP_DIGEST];
	if (pMechanism == NULL) {
		rv = CKR_ARGUMENTS_BAD;
	} else if (op->active) {
		rv = CKR_OPERATION_ACTIVE;
	} else if (!hash_of_mech(pMechanism->mechanism, &mgf, &h)) {
		rv = CKR_MECHANISM_INVALID;
	} else if (pMechanism->pParameter != NULL || pMechanism->ulParameterLen != 0) {
		rv = CKR_MECHANISM_PARAM_INVALID;
	} else {
		op->md_type = EVP_get_digestbyname(md_name(h));
		if ((op->md = EVP_MD_CTX_new()) == NULL ||
		    EVP_DigestInit_ex(op->md, op->md_type, NULL) != 1) {
			kosp11_op_reset(op);
			rv = CKR_HOST_MEMORY;
		} else {
			op->mech = pMechanism->mechanism;
			op->active = true;
		}
	}
	kosp11_session_put(s);
	return rv;
}

static CK_RV digest_final(struct kosp11_op *op, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	unsigned int n = 0;
	bool go;
	CK_RV rv;

	rv = want_room(out, out_len, (size_t)EVP_MD_get_size(op->md_type), &go);
	if (!go) {
		if (rv == CKR_ARGUMENTS_BAD)
			kosp11_op_reset(op);
		return rv;
	}
	rv = EVP_DigestFinal_ex(op->md, out, &n) == 1 ? CKR_OK : CKR_FUNCTION_FAILED;
	*out_len = n;
	kosp11_op_reset(op);
	return rv;
}

CK_RV kosp11_C_Digest(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
		      CK_BYTE_PTR pDigest, CK_ULONG_PTR pulDigestLen)
{
	struct kosp11_session *s;
	struct kosp11_op *op;
	CK_RV rv;

	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	op = &s->op[KOSP11_OP_DIGEST];
	if (!op->active) {
		rv = CKR_OPERATION_NOT_INITIALIZED;
	} else if ((pData == NULL && ulDataLen > 0) || pulDigestLen == NULL) {
		kosp11_op_reset(op);
		rv = CKR_ARGUMENTS_BAD;
	} else if (pDigest == NULL) {
		*pulDigestLen = (CK_ULONG)EVP_MD_get_size(op->md_type);
	} else if (EVP_DigestInit_ex(op->md, op->md_type, NULL) != 1 ||
		   (ulDataLen > 0 && EVP_DigestUpdate(op->md, pData, ulDataLen) != 1)) {
		kosp11_op_reset(op);
		rv = CKR_FUNCTION_FAILED;
	} else {
		rv = digest_final(op, pDigest, pulDigestLen);
	}
	kosp11_session_put(s);
	return rv;
}

CK_RV kosp11_C_DigestUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen)
{
	return op_update(hSession, KOSP11_OP_DIGEST, pPart, ulPartLen);
}

/* A kos key's value never enters a digest here: that would reveal it to
 * anyone who can guess candidates. */
CK_RV kosp11_C_DigestKey(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hKey)
{
	struct kosp11_session *s;
	struct kosp11_object *o;
	CK_RV rv;

	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	pthread_mutex_lock(&kosp11_lock);
	o = kosp11_object_get(hKey);
	if (!s->op[KOSP11_OP_DIGEST].active)
		rv = CKR_OPERATION_NOT_INITIALIZED;
	else if (o == NULL || o->slot != s->slot || o->kind == KOSP11_CERT)
		rv = CKR_KEY_HANDLE_INVALID;
	else
		rv = CKR_KEY_INDIGESTIBLE;
	pthread_mutex_unlock(&kosp11_lock);
	kosp11_session_put(s);
	return rv;
}

CK_RV kosp11_C_DigestFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pDigest,
			   CK_ULONG_PTR pulDigestLen)
{
	struct kosp11_session *s;
	CK_RV rv;

	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	if (!s->op[KOSP11_OP_DIGEST].active)
		rv = CKR_OPERATION_NOT_INITIALIZED;
	else
		rv = digest_final(&s->op[KOSP11_OP_DIGEST], pDigest, pulDigestLen);
	kosp11_session_put(s);
	return rv;
}

/* --- dual-function operations: not offered ---------------------------------- */

static CK_RV dual(CK_SESSION_HANDLE hSession)
{
	struct kosp11_session *s;
	CK_RV rv;

	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	kosp11_session_put(s);
	return CKR_FUNCTION_NOT_SUPPORTED;
}

CK_RV kosp11_C_DigestEncryptUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR a, CK_ULONG b,
				   CK_BYTE_PTR c, CK_ULONG_PTR d)
{
	(void)a, (void)b, (void)c, (void)d;
	return dual(hSession);
}

CK_RV kosp11_C_DecryptDigestUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR a, CK_ULONG b,
				   CK_BYTE_PTR c, CK_ULONG_PTR d)
{
	(void)a, (void)b, (void)c, (void)d;
	return dual(hSession);
}

CK_RV kosp11_C_SignEncryptUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR a, CK_ULONG b,
				 CK_BYTE_PTR c, CK_ULONG_PTR d)
{
	(void)a, (void)b, (void)c, (void)d;
	return dual(hSession);
}

CK_RV kosp11_C_DecryptVerifyUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR a, CK_ULONG b,
				   CK_BYTE_PTR c, CK_ULONG_PTR d)
{
	(void)a, (void)b, (void)c, (void)d;
	return dual(hSession);
}

/* --- random numbers ------------------------------------------------------------ */

CK_RV kosp11_C_SeedRandom(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSeed, CK_ULONG ulSeedLen)
{
	struct kosp11_session *s;
	CK_RV rv;

	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	kosp11_session_put(s);
	if (pSeed == NULL && ulSeedLen > 0)
		return CKR_ARGUMENTS_BAD;
	/* OpenSSL's DRBG seeds itself from the kernel */
	return CKR_RANDOM_SEED_NOT_SUPPORTED;
}

CK_RV kosp11_C_GenerateRandom(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pRandomData,
			      CK_ULONG ulRandomLen)
{
	struct kosp11_session *s;
	CK_RV rv;

	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	if (pRandomData == NULL && ulRandomLen > 0)
		rv = CKR_ARGUMENTS_BAD;
	else if (ulRandomLen > INT32_MAX)
		rv = CKR_ARGUMENTS_BAD;
	else if (ulRandomLen > 0 && RAND_bytes(pRandomData, (int)ulRandomLen) != 1)
		rv = CKR_FUNCTION_FAILED;
	kosp11_session_put(s);
	return rv;
}
