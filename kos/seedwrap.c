/* Service seeds at rest inside the first ca-role token (kos/seedwrap.h,
 * kos-service(7)): the AES-256 wrapping key is generated there, sensitive
 * and never extractable, and every seed is encrypted and decrypted by the
 * token with CKM_AES_GCM. */
#include "config.h"

#include "kos/seedwrap.h"

#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WRAP_FORMAT   1
#define WRAP_ID_LEN   16
#define WRAP_IV_LEN   12
#define WRAP_TAG_LEN  16
#define WRAP_CT_LEN   (KOS_SERVICE_SEED_LEN + WRAP_TAG_LEN)
#define WRAP_FIND_MAX 8 /* wrapping keys considered on one token */

_Static_assert(1 + WRAP_ID_LEN + WRAP_IV_LEN + WRAP_CT_LEN == KOS_SEEDWRAP_LEN,
	       "the wrapped form's length");

struct kos_seedwrap {
	kos_hsm *hsm;

	/* The handle of the wrapping key last used to decrypt, trusted only in
	 * sessions of the generation it was found in (see kos/signer.c). */
	pthread_mutex_t lock;
	bool cached;
	size_t cache_tok;
	uint64_t cache_generation;
	uint8_t cache_id[WRAP_ID_LEN];
	CK_OBJECT_HANDLE cache_key;
};

kos_rv kos_seedwrap_new(kos_hsm *hsm, kos_seedwrap **out)
{
	kos_seedwrap *sw;

	*out = NULL;
	sw = calloc(1, sizeof(*sw));
	if (sw == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	if (pthread_mutex_init(&sw->lock, NULL) != 0) {
		free(sw);
		return kos_error_set(KOS_E_NOMEM, "cannot create a lock");
	}
	sw->hsm = hsm;
	*out = sw;
	return KOS_OK;
}

void kos_seedwrap_free(kos_seedwrap *sw)
{
	if (sw == NULL)
		return;
	pthread_mutex_destroy(&sw->lock);
	free(sw);
}

/* The token that holds the wrapping key: the first of role ca. */
static kos_rv wrap_token(kos_seedwrap *sw, size_t *tok)
{
	size_t i, n = kos_hsm_token_count(sw->hsm);

	for (i = 0; i < n; i++) {
		if (kos_hsm_token_role(sw->hsm, i) == KOS_TOKEN_ROLE_CA) {
			*tok = i;
			return KOS_OK;
		}
	}
	return kos_error_set(KOS_E_NOTFOUND, "no token of role ca holds the service wrapping key "
					     "(kos.conf names none)");
}

/* The additional data that binds a wrapped seed to its service and version. */
static kos_rv seed_aad(const char *name, uint32_t version, char *aad, size_t cap, size_t *len)
{
	int n = snprintf(aad, cap, "kos-service-seed-v1|%s|%" PRIu32, name, version);

	if (n <= 0 || (size_t)n >= cap)
		return kos_error_set(KOS_E_INVALID, "service name too long for a seed");
	*len = (size_t)n;
	return KOS_OK;
}

/* One seal or open on the token. err is kos's own refusal (its detail set),
 * for which the op returns CKR_OK so the session goes back to the pool. */
struct wrap_op {
	kos_seedwrap *sw;
	size_t tok;
	kos_rv err;
	/* seal: create the key when there is none; open: the key's id */
	bool create;
	uint8_t id[WRAP_ID_LEN];
	/* what was made on a previous attempt (a retry keeps it) */
	bool generated;
	uint8_t new_id[WRAP_ID_LEN];
	/* GCM */
	CK_GCM_PARAMS gcm;
	const uint8_t *in;
	CK_ULONG in_len;
	uint8_t *out;
	CK_ULONG out_cap, out_len;
	bool tag_failed;
};

static const CK_OBJECT_CLASS wrap_class = CKO_SECRET_KEY;
static const CK_KEY_TYPE wrap_type = CKK_AES;

/* Fills t with the template of kos wrapping keys: all of them, or (id not
 * NULL) the one with that CKA_ID; returns its length. */
static CK_ULONG wrap_template(CK_ATTRIBUTE t[4], const uint8_t *id)
{
	t[0] = (CK_ATTRIBUTE){CKA_CLASS, (void *)&wrap_class, sizeof(wrap_class)};
	t[1] = (CK_ATTRIBUTE){CKA_KEY_TYPE, (void *)&wrap_type, sizeof(wrap_type)};
	t[2] = (CK_ATTRIBUTE){CKA_LABEL, (void *)KOS_SERVICE_WRAP_LABEL,
			      sizeof(KOS_SERVICE_WRAP_LABEL) - 1};
	if (id == NULL)
		return 3;
	t[3] = (CK_ATTRIBUTE){CKA_ID, (void *)id, WRAP_ID_LEN};
	return 4;
}

/* Reads key's CKA_ID and checks it is a kos wrapping key: AES-256,
 * sensitive, not extractable, and never able to wrap, unwrap or derive. A
 * key under kos's label that is not one is refused, not skipped: someone
 * put it there. */
static CK_RV check_wrap_key(kos_hsm_session *s, struct wrap_op *o, CK_OBJECT_HANDLE key,
			    uint8_t id[WRAP_ID_LEN])
{
	CK_BBOOL sensitive = CK_FALSE, extractable = CK_TRUE, wrap = CK_TRUE, unwrap = CK_TRUE,
		 derive = CK_TRUE;
	CK_ULONG value_len = 0;
	CK_ATTRIBUTE t[] = {
	    {CKA_ID, id, WRAP_ID_LEN},
	    {CKA_VALUE_LEN, &value_len, sizeof(value_len)},
	    {CKA_SENSITIVE, &sensitive, sizeof(sensitive)},
	    {CKA_EXTRACTABLE, &extractable, sizeof(extractable)},
	    {CKA_WRAP, &wrap, sizeof(wrap)},
	    {CKA_UNWRAP, &unwrap, sizeof(unwrap)},
	    {CKA_DERIVE, &derive, sizeof(derive)},
	};
	CK_RV crv = s->f->C_GetAttributeValue(s->h, key, t, KOS_ARRAY_SIZE(t));

	if (crv == CKR_ATTRIBUTE_TYPE_INVALID || crv == CKR_BUFFER_TOO_SMALL ||
	    (crv == CKR_OK && (t[0].ulValueLen != WRAP_ID_LEN || value_len != 32 || !sensitive ||
			       extractable || wrap || unwrap || derive))) {
		o->err = kos_hsm_error(o->sw->hsm, o->tok, KOS_E_INTEGRITY,
				       "the key labelled '%s' is not a kos wrapping key (it must "
				       "be AES-256, sensitive, not extractable, encrypt/decrypt "
				       "only)",
				       KOS_SERVICE_WRAP_LABEL);
		return CKR_OK;
	}
	if (crv != CKR_OK)
		s->func = "C_GetAttributeValue";
	return crv;
}

static CK_RV generate_wrap_key(kos_hsm_session *s, struct wrap_op *o, CK_OBJECT_HANDLE *key)
{
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE type = CKK_AES;
	CK_ULONG value_len = 32;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ATTRIBUTE t[] = {
	    {CKA_CLASS, &cls, sizeof(cls)},
	    {CKA_KEY_TYPE, &type, sizeof(type)},
	    {CKA_VALUE_LEN, &value_len, sizeof(value_len)},
	    {CKA_TOKEN, &yes, sizeof(yes)},
	    {CKA_PRIVATE, &yes, sizeof(yes)},
	    {CKA_SENSITIVE, &yes, sizeof(yes)},
	    {CKA_EXTRACTABLE, &no, sizeof(no)},
	    {CKA_ENCRYPT, &yes, sizeof(yes)},
	    {CKA_DECRYPT, &yes, sizeof(yes)},
	    /* not a key-wrapping key: wrapping other keys out would make it
	     * an export path */
	    {CKA_WRAP, &no, sizeof(no)},
	    {CKA_UNWRAP, &no, sizeof(no)},
	    {CKA_SIGN, &no, sizeof(no)},
	    {CKA_VERIFY, &no, sizeof(no)},
	    {CKA_DERIVE, &no, sizeof(no)},
	    {CKA_MODIFIABLE, &no, sizeof(no)},
	    {CKA_LABEL, (void *)KOS_SERVICE_WRAP_LABEL, sizeof(KOS_SERVICE_WRAP_LABEL) - 1},
	    {CKA_ID, o->new_id, WRAP_ID_LEN},
	};
	CK_MECHANISM mech = {CKM_AES_KEY_GEN, NULL, 0};
	CK_RV crv;

	crv = s->f->C_GenerateKey(s->h, &mech, t, KOS_ARRAY_SIZE(t), key);
	if (crv != CKR_OK)
		s->func = "C_GenerateKey";
	return crv;
}

/* Finds (or with o->create makes) the wrapping key to encrypt with: of
 * several, the one with the lowest CKA_ID, so every process picks the same. */
static CK_RV pick_wrap_key(kos_hsm_session *s, struct wrap_op *o, CK_OBJECT_HANDLE *key)
{
	CK_OBJECT_HANDLE objs[WRAP_FIND_MAX];
	CK_ATTRIBUTE tmpl[4];
	uint8_t id[WRAP_ID_LEN];
	bool have = false;
	CK_ULONG n, i;
	CK_RV crv;

	crv = kos_hsm_find(s, tmpl, wrap_template(tmpl, NULL), objs, WRAP_FIND_MAX, &n);
	if (crv != CKR_OK)
		return crv;
	if (n == 0) {
		if (!o->create) {
			o->err = kos_hsm_error(o->sw->hsm, o->tok, KOS_E_NOTFOUND,
					       "no key labelled '%s'", KOS_SERVICE_WRAP_LABEL);
			return CKR_OK;
		}
		/* a retry after a broken session finds the key it made */
		if (o->generated) {
			o->err = kos_hsm_error(o->sw->hsm, o->tok, KOS_E_NOTFOUND,
					       "the wrapping key made a moment ago is gone");
			return CKR_OK;
		}
		crv = generate_wrap_key(s, o, &objs[0]);
		if (crv != CKR_OK)
			return crv;
		o->generated = true;
		n = 1;
	}
	for (i = 0; i < n; i++) {
		crv = check_wrap_key(s, o, objs[i], id);
		if (crv != CKR_OK || o->err != KOS_OK)
			return crv;
		if (!have || memcmp(id, o->id, WRAP_ID_LEN) < 0) {
			memcpy(o->id, id, WRAP_ID_LEN);
			*key = objs[i];
			have = true;
		}
	}
	return CKR_OK;
}

static CK_RV seal_op(kos_hsm_session *s, void *arg)
{
	struct wrap_op *o = arg;
	CK_MECHANISM mech = {CKM_AES_GCM, &o->gcm, sizeof(o->gcm)};
	CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
	CK_RV crv;

	o->err = KOS_OK;
	crv = pick_wrap_key(s, o, &key);
	if (crv != CKR_OK || o->err != KOS_OK)
		return crv;
	crv = s->f->C_EncryptInit(s->h, &mech, key);
	if (crv != CKR_OK) {
		s->func = "C_EncryptInit";
		return crv;
	}
	o->out_len = o->out_cap;
	crv = s->f->C_Encrypt(s->h, (CK_BYTE_PTR)o->in, o->in_len, o->out, &o->out_len);
	if (crv == CKR_BUFFER_TOO_SMALL) {
		/* still active: CKR_OPERATION_ACTIVE keeps the session out of the pool */
		s->func = "C_Encrypt (output longer than GCM's)";
		return CKR_OPERATION_ACTIVE;
	}
	if (crv != CKR_OK)
		s->func = "C_Encrypt";
	return crv;
}

/* Under sw->lock: the cached handle for the key o->id, if any. */
static bool cache_lookup(kos_seedwrap *sw, size_t tok, uint64_t generation, const uint8_t *id,
			 CK_OBJECT_HANDLE *key)
{
	bool hit;

	pthread_mutex_lock(&sw->lock);
	hit = sw->cached && sw->cache_tok == tok && sw->cache_generation == generation &&
	      memcmp(sw->cache_id, id, WRAP_ID_LEN) == 0;
	if (hit)
		*key = sw->cache_key;
	pthread_mutex_unlock(&sw->lock);
	return hit;
}

static void cache_store(kos_seedwrap *sw, size_t tok, uint64_t generation, const uint8_t *id,
			CK_OBJECT_HANDLE key)
{
	pthread_mutex_lock(&sw->lock);
	sw->cached = key != CK_INVALID_HANDLE;
	sw->cache_tok = tok;
	sw->cache_generation = generation;
	memcpy(sw->cache_id, id, WRAP_ID_LEN);
	sw->cache_key = key;
	pthread_mutex_unlock(&sw->lock);
}

/* A failed GCM tag: SoftHSM says CKR_GENERAL_ERROR, the standard
 * CKR_ENCRYPTED_DATA_INVALID. */
static bool tag_failure(CK_RV crv)
{
	return crv == CKR_ENCRYPTED_DATA_INVALID || crv == CKR_GENERAL_ERROR ||
	       crv == CKR_ENCRYPTED_DATA_LEN_RANGE;
}

static CK_RV open_op(kos_hsm_session *s, void *arg)
{
	struct wrap_op *o = arg;
	CK_MECHANISM mech = {CKM_AES_GCM, &o->gcm, sizeof(o->gcm)};
	CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
	CK_ATTRIBUTE tmpl[4];
	uint8_t id[WRAP_ID_LEN];
	bool cached, decrypting;
	CK_ULONG n;
	CK_RV crv;

	o->err = KOS_OK;
	o->tag_failed = false;
	cached = cache_lookup(o->sw, o->tok, s->generation, o->id, &key);
	for (;;) {
		if (!cached) {
			crv = kos_hsm_find_one(s, tmpl, wrap_template(tmpl, o->id), &key, &n);
			if (crv != CKR_OK)
				return crv;
			if (n != 1) {
				o->err = kos_hsm_error(
				    o->sw->hsm, o->tok, n == 0 ? KOS_E_NOTFOUND : KOS_E_INTEGRITY,
				    n == 0 ? "the key that wrapped this seed ('%s') "
					     "is not on the token"
					   : "two keys '%s' with one CKA_ID",
				    KOS_SERVICE_WRAP_LABEL);
				return CKR_OK;
			}
			crv = check_wrap_key(s, o, key, id);
			if (crv != CKR_OK || o->err != KOS_OK)
				return crv;
			cache_store(o->sw, o->tok, s->generation, o->id, key);
		}
		decrypting = false;
		crv = s->f->C_DecryptInit(s->h, &mech, key);
		if (crv == CKR_OK) {
			o->out_len = o->out_cap;
			crv = s->f->C_Decrypt(s->h, (CK_BYTE_PTR)o->in, o->in_len, o->out,
					      &o->out_len);
			if (crv == CKR_BUFFER_TOO_SMALL) {
				s->func = "C_Decrypt (output longer than GCM's)";
				return CKR_OPERATION_ACTIVE;
			}
			if (crv == CKR_OK)
				return CKR_OK;
			decrypting = true;
			s->func = "C_Decrypt";
		} else {
			s->func = "C_DecryptInit";
		}
		/* A cached handle may have died or, after the key was destroyed,
		 * been given to another object: look the key up once more. */
		if (cached) {
			cache_store(o->sw, o->tok, 0, o->id, CK_INVALID_HANDLE);
			cached = false;
			continue;
		}
		/* the data's fault, not the token's: no failure counted */
		if (decrypting && tag_failure(crv)) {
			o->tag_failed = true;
			return CKR_OK;
		}
		return crv;
	}
}

kos_rv kos_seedwrap_seal(kos_seedwrap *sw, const char *name, uint32_t version,
			 const uint8_t seed[KOS_SERVICE_SEED_LEN],
			 uint8_t wrapped[KOS_SEEDWRAP_LEN])
{
	uint8_t ct[WRAP_CT_LEN + 16];
	char aad[128];
	size_t aad_len = 0, tok = 0;
	struct wrap_op o;
	kos_rv rv;

	rv = wrap_token(sw, &tok);
	if (rv == KOS_OK)
		rv = seed_aad(name, version, aad, sizeof(aad), &aad_len);
	if (rv != KOS_OK)
		return rv;
	memset(&o, 0, sizeof(o));
	o.sw = sw;
	o.tok = tok;
	o.create = true;
	wrapped[0] = WRAP_FORMAT;
	if (RAND_bytes(wrapped + 1 + WRAP_ID_LEN, WRAP_IV_LEN) != 1 ||
	    RAND_bytes(o.new_id, WRAP_ID_LEN) != 1)
		return kos_error_set(KOS_E_CRYPTO, "no random bytes from OpenSSL");
	o.gcm.pIv = wrapped + 1 + WRAP_ID_LEN;
	o.gcm.ulIvLen = WRAP_IV_LEN;
	o.gcm.ulIvBits = WRAP_IV_LEN * 8;
	o.gcm.pAAD = (CK_BYTE_PTR)aad;
	o.gcm.ulAADLen = aad_len;
	o.gcm.ulTagBits = WRAP_TAG_LEN * 8;
	o.in = seed;
	o.in_len = KOS_SERVICE_SEED_LEN;
	/* SoftHSM wants room for more than GCM makes */
	o.out = ct;
	o.out_cap = sizeof(ct);
	rv = kos_hsm_run(sw->hsm, tok, seal_op, &o);
	if (rv == KOS_OK)
		rv = o.err;
	if (rv == KOS_OK && o.out_len != WRAP_CT_LEN)
		rv = kos_hsm_error(sw->hsm, tok, KOS_E_CRYPTO,
				   "C_Encrypt returned %lu bytes, not %d", (unsigned long)o.out_len,
				   WRAP_CT_LEN);
	if (rv == KOS_OK) {
		memcpy(wrapped + 1, o.id, WRAP_ID_LEN);
		memcpy(wrapped + 1 + WRAP_ID_LEN + WRAP_IV_LEN, ct, WRAP_CT_LEN);
	}
	OPENSSL_cleanse(ct, sizeof(ct));
	return rv;
}

kos_rv kos_seedwrap_open(kos_seedwrap *sw, const char *name, uint32_t version,
			 const uint8_t *wrapped, size_t wrapped_len,
			 uint8_t seed[KOS_SERVICE_SEED_LEN])
{
	uint8_t pt[WRAP_CT_LEN];
	char aad[128];
	size_t aad_len = 0, tok = 0;
	struct wrap_op o;
	kos_rv rv;

	if (wrapped_len != KOS_SEEDWRAP_LEN || wrapped[0] != WRAP_FORMAT)
		return kos_error_set(KOS_E_INTEGRITY,
				     "service %s: the stored seed is not in a "
				     "form this kos knows",
				     name);
	rv = wrap_token(sw, &tok);
	if (rv == KOS_OK)
		rv = seed_aad(name, version, aad, sizeof(aad), &aad_len);
	if (rv != KOS_OK)
		return rv;
	memset(&o, 0, sizeof(o));
	o.sw = sw;
	o.tok = tok;
	memcpy(o.id, wrapped + 1, WRAP_ID_LEN);
	o.gcm.pIv = (CK_BYTE_PTR)wrapped + 1 + WRAP_ID_LEN;
	o.gcm.ulIvLen = WRAP_IV_LEN;
	o.gcm.ulIvBits = WRAP_IV_LEN * 8;
	o.gcm.pAAD = (CK_BYTE_PTR)aad;
	o.gcm.ulAADLen = aad_len;
	o.gcm.ulTagBits = WRAP_TAG_LEN * 8;
	o.in = wrapped + 1 + WRAP_ID_LEN + WRAP_IV_LEN;
	o.in_len = WRAP_CT_LEN;
	/* SoftHSM wants room for the whole ciphertext, tag included */
	o.out = pt;
	o.out_cap = sizeof(pt);
	rv = kos_hsm_run(sw->hsm, tok, open_op, &o);
	if (rv == KOS_OK)
		rv = o.err;
	if (rv == KOS_OK && o.tag_failed)
		rv = kos_hsm_error(sw->hsm, tok, KOS_E_INTEGRITY,
				   "service %s: the wrapped seed (version %" PRIu32 ") fails "
				   "its check",
				   name, version);
	if (rv == KOS_OK && o.out_len != KOS_SERVICE_SEED_LEN)
		rv = kos_hsm_error(sw->hsm, tok, KOS_E_CRYPTO,
				   "C_Decrypt returned %lu bytes, not %d", (unsigned long)o.out_len,
				   KOS_SERVICE_SEED_LEN);
	if (rv == KOS_OK)
		memcpy(seed, pt, KOS_SERVICE_SEED_LEN);
	OPENSSL_cleanse(pt, sizeof(pt));
	return rv;
}
