/* Signing key pairs inside PKCS#11 tokens: generated on the token and never
 * extractable, signatures made with a cached private-key handle, public keys
 * read back as DER SubjectPublicKeyInfo. */
#include "config.h"

#include "kos/signer.h"
#include "common/jws.h"
#include "kos/rsa_oaep.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_ID_LEN    16
#define SPKI_MAX      16384 /* far above any supported key; caps kos_spki_to_pem() */
#define ATTR_MAX      512   /* EC parameters, points, RSA-3072 moduli fit */
#define CACHE_BUCKETS 256
#define CACHE_MAX     4096  /* entries; past it the cache starts afresh */
#define TEXT_(x)       #x
#define TEXT(x)        TEXT_(x)
#define LABEL_MAX_TEXT TEXT(KOS_RSA_LABEL_MAX)

static const CK_BYTE oid_p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
/* id-Ed25519 (RFC 8410); PKCS#11 3.0 also allows the curve's name, which
 * other tools put on the token, so both are recognised when reading. */
static const CK_BYTE oid_ed25519[] = { 0x06, 0x03, 0x2b, 0x65, 0x70 };
static const CK_BYTE name_ed25519[] = { 0x13, 0x0c, 'e', 'd', 'w', 'a', 'r',
					'd',  's',  '2', '5', '5', '1', '9' };
static const CK_BYTE rsa_f4[] = { 0x01, 0x00, 0x01 };

/* What a key on a token is, as far as kos is concerned. */
struct key_kind {
	kos_key_type type;
	const char *name;
	CK_KEY_TYPE ckk;
	CK_ULONG bits;    /* RSA modulus size; 0 for the others */
	CK_ULONG sig_len; /* bytes C_Sign returns */
};

static const struct key_kind kinds[] = {
	{ KOS_KEY_EC_P256, "EC P-256", CKK_EC, 0, 64 },
	{ KOS_KEY_ED25519, "Ed25519", CKK_EC_EDWARDS, 0, 64 },
	{ KOS_KEY_RSA_2048, "RSA-2048", CKK_RSA, 2048, 256 },
	{ KOS_KEY_RSA_3072, "RSA-3072", CKK_RSA, 3072, 384 },
};

static const char *alg_name(kos_sig_alg alg)
{
	switch (alg) {
	case KOS_SIG_DEFAULT:
		return "the default";
	case KOS_SIG_ECDSA_RAW:
		return "ECDSA (r||s)";
	case KOS_SIG_ECDSA_DER:
		return "ECDSA (DER)";
	case KOS_SIG_ED25519:
		return "Ed25519";
	case KOS_SIG_RSA_PKCS1:
		return "RSA PKCS#1 v1.5";
	case KOS_SIG_RSA_PSS:
		return "RSA-PSS";
	}
	return "an unknown algorithm";
}

static const struct key_kind *kind_of(kos_key_type type)
{
	size_t i;

	for (i = 0; i < KOS_ARRAY_SIZE(kinds); i++)
		if (kinds[i].type == type)
			return &kinds[i];
	return NULL;
}

/* --- errors ----------------------------------------------------------------- */

/* Checks the arguments every entry point shares. */
static kos_rv check_args(kos_hsm *hsm, size_t tok, const char *label)
{
	size_t i, n;

	if (hsm == NULL || tok >= kos_hsm_token_count(hsm))
		return kos_error_set(KOS_E_RANGE, "no backend token #%zu", tok);
	n = label != NULL ? strlen(label) : 0;
	if (n == 0 || n > KOS_HSM_LABEL_MAX)
		return kos_hsm_error(hsm, tok, KOS_E_INVALID, "a key label is 1 to %d bytes",
				     KOS_HSM_LABEL_MAX);
	for (i = 0; i < n; i++)
		if (label[i] < 0x20 || label[i] > 0x7e)
			return kos_hsm_error(hsm, tok, KOS_E_INVALID,
					     "a key label is printable ASCII");
	return KOS_OK;
}

/* --- digests ---------------------------------------------------------------
 * Fetched once: EVP_sha256() would make OpenSSL 3 look the implementation up
 * again on every signature. */

static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static EVP_MD *mds[KOS_HASH_COUNT];
static const char *const md_names[KOS_HASH_COUNT] = {
	[KOS_HASH_SHA256] = "SHA2-256",
	[KOS_HASH_SHA384] = "SHA2-384",
	[KOS_HASH_SHA512] = "SHA2-512",
	[KOS_HASH_SHA1] = "SHA1",
};

static void md_init(void)
{
	size_t i;

	for (i = 0; i < KOS_HASH_COUNT; i++)
		mds[i] = EVP_MD_fetch(NULL, md_names[i], NULL);
}

/* out holds kos_hash_len(hash) bytes. */
static bool digest_of(kos_hash hash, const void *data, size_t len, uint8_t *out)
{
	pthread_once(&md_once, md_init);
	return (unsigned)hash < KOS_HASH_COUNT && mds[hash] != NULL &&
	       EVP_Digest(data, len, out, NULL, mds[hash], NULL) == 1;
}

static bool sha256(const void *data, size_t len, uint8_t out[32])
{
	return digest_of(KOS_HASH_SHA256, data, len, out);
}

/* CKA_ID of a kos key pair: the first 16 bytes of SHA-256(label). */
static bool key_id(const char *label, uint8_t id[KEY_ID_LEN])
{
	uint8_t md[32];

	if (!sha256(label, strlen(label), md))
		return false;
	memcpy(id, md, KEY_ID_LEN);
	return true;
}

/* --- the private-key handle cache ------------------------------------------
 * A C_FindObjects costs as much as a third of a P-256 signature on SoftHSM,
 * so the handle of each private key is kept per (handle, token, label).
 * An entry is only trusted for the session generation it was found in: the
 * backend layer bumps the generation when it drops a token's sessions
 * (device errors, lost login), after which handles may name other objects.
 * Handles that die otherwise (another process destroyed the key) show up as
 * CKR_KEY_HANDLE_INVALID at C_SignInit and are looked up once more.
 * cache_lock is never held across a module call. Destroy and generate bump
 * cache_epoch, and a lookup that raced with them does not store its handle. */

struct cache_entry {
	struct cache_entry *next;
	const kos_hsm *hsm;
	size_t tok;
	uint64_t generation;
	CK_OBJECT_HANDLE key;
	const struct key_kind *kind; /* what the key on the token is; NULL: unsupported */
	uint32_t hash;
	char label[KOS_HSM_LABEL_MAX + 1];
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cache_entry *cache[CACHE_BUCKETS];
static size_t cache_count;
static uint64_t cache_epoch;
static atomic_uint_fast64_t lookup_count;

static uint32_t cache_hash(const kos_hsm *hsm, size_t tok, const char *label)
{
	uint64_t h = 14695981039346656037u; /* FNV-1a */
	const unsigned char *p;

	for (p = (const unsigned char *)label; *p != '\0'; p++)
		h = (h ^ *p) * 1099511628211u;
	h ^= (uint64_t)(uintptr_t)hsm + tok;
	h *= 1099511628211u;
	return (uint32_t)(h ^ (h >> 32));
}

static bool entry_is(const struct cache_entry *e, const kos_hsm *hsm, size_t tok,
		     const char *label, uint32_t hash)
{
	return e->hash == hash && e->hsm == hsm && e->tok == tok && strcmp(e->label, label) == 0;
}

/* Under cache_lock. */
static void cache_unlink_locked(struct cache_entry **pp)
{
	struct cache_entry *e = *pp;

	*pp = e->next;
	free(e);
	cache_count--;
}

/* Under cache_lock: forgets every entry of hsm (NULL: all). */
static void cache_clear_locked(const kos_hsm *hsm)
{
	struct cache_entry **pp;
	size_t b;

	for (b = 0; b < CACHE_BUCKETS; b++) {
		pp = &cache[b];
		while (*pp != NULL) {
			if (hsm == NULL || (*pp)->hsm == hsm)
				cache_unlink_locked(pp);
			else
				pp = &(*pp)->next;
		}
	}
	cache_epoch++;
}

/* The cached handle for label, valid in sessions of generation; *epoch
 * receives the epoch to hand to cache_put() after a lookup. */
static bool cache_get(const kos_hsm *hsm, size_t tok, const char *label, uint32_t hash,
		      uint64_t generation, CK_OBJECT_HANDLE *key, const struct key_kind **kind,
		      uint64_t *epoch)
{
	struct cache_entry **pp;
	bool hit = false;

	pthread_mutex_lock(&cache_lock);
	*epoch = cache_epoch;
	for (pp = &cache[hash % CACHE_BUCKETS]; *pp != NULL; pp = &(*pp)->next) {
		if (!entry_is(*pp, hsm, tok, label, hash))
			continue;
		if ((*pp)->generation != generation) {
			cache_unlink_locked(pp);
			break;
		}
		*key = (*pp)->key;
		*kind = (*pp)->kind;
		hit = true;
		break;
	}
	pthread_mutex_unlock(&cache_lock);
	return hit;
}

/* Remembers a handle found by a lookup that started at epoch. Out of memory
 * only costs the next signature a lookup. */
static void cache_put(const kos_hsm *hsm, size_t tok, const char *label, uint32_t hash,
		      uint64_t generation, CK_OBJECT_HANDLE key, const struct key_kind *kind,
		      uint64_t epoch)
{
	struct cache_entry *e, *fresh = calloc(1, sizeof(*fresh));

	if (fresh != NULL) {
		fresh->hsm = hsm;
		fresh->tok = tok;
		fresh->generation = generation;
		fresh->key = key;
		fresh->kind = kind;
		fresh->hash = hash;
		snprintf(fresh->label, sizeof(fresh->label), "%s", label);
	}
	pthread_mutex_lock(&cache_lock);
	if (epoch != cache_epoch)
		goto out;
	for (e = cache[hash % CACHE_BUCKETS]; e != NULL; e = e->next) {
		if (entry_is(e, hsm, tok, label, hash)) {
			e->generation = generation;
			e->key = key;
			e->kind = kind;
			goto out;
		}
	}
	if (fresh == NULL)
		goto out;
	if (cache_count >= CACHE_MAX)
		cache_clear_locked(NULL);
	fresh->next = cache[hash % CACHE_BUCKETS];
	cache[hash % CACHE_BUCKETS] = fresh;
	cache_count++;
	fresh = NULL;
out:
	pthread_mutex_unlock(&cache_lock);
	free(fresh);
}

/* Forgets label's entry; bumps the epoch so a lookup in flight does not put
 * back what it found before the change. Returns the new epoch. */
static uint64_t cache_drop(const kos_hsm *hsm, size_t tok, const char *label)
{
	uint32_t hash = cache_hash(hsm, tok, label);
	struct cache_entry **pp;
	uint64_t epoch;

	pthread_mutex_lock(&cache_lock);
	for (pp = &cache[hash % CACHE_BUCKETS]; *pp != NULL; pp = &(*pp)->next) {
		if (entry_is(*pp, hsm, tok, label, hash)) {
			cache_unlink_locked(pp);
			break;
		}
	}
	epoch = ++cache_epoch;
	pthread_mutex_unlock(&cache_lock);
	return epoch;
}

void kos_signer_forget(const kos_hsm *hsm)
{
	pthread_mutex_lock(&cache_lock);
	cache_clear_locked(hsm);
	pthread_mutex_unlock(&cache_lock);
}

uint64_t kos_signer_lookup_count(void)
{
	return atomic_load(&lookup_count);
}

/* --- token helpers ---------------------------------------------------------- */

/* Fills t with the template of kos's key objects of class *cls labelled
 * label, with kos's CKA_ID id for the label. */
static void key_template(CK_ATTRIBUTE t[3], const CK_OBJECT_CLASS *cls, const char *label,
			 const uint8_t id[KEY_ID_LEN])
{
	t[0] = (CK_ATTRIBUTE){ CKA_CLASS, (void *)cls, sizeof(*cls) };
	t[1] = (CK_ATTRIBUTE){ CKA_LABEL, (void *)label, strlen(label) };
	t[2] = (CK_ATTRIBUTE){ CKA_ID, (void *)id, KEY_ID_LEN };
}

/* Reads one attribute into buf (cap bytes); *len receives its length.
 * CKR_ATTRIBUTE_TYPE_INVALID when the object has no such attribute. */
static CK_RV get_attr(kos_hsm_session *s, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_TYPE type,
		      void *buf, CK_ULONG cap, CK_ULONG *len)
{
	CK_ATTRIBUTE a = { type, buf, cap };
	CK_RV crv = s->f->C_GetAttributeValue(s->h, obj, &a, 1);

	if (crv != CKR_OK) {
		s->func = "C_GetAttributeValue";
		return crv;
	}
	if (len != NULL)
		*len = a.ulValueLen;
	return CKR_OK;
}

static bool bytes_eq(const CK_BYTE *a, CK_ULONG alen, const CK_BYTE *b, size_t blen)
{
	return alen == blen && memcmp(a, b, blen) == 0;
}

/* Which supported kind the key obj (either half) is; *kind NULL when none. */
static CK_RV key_kind_of(kos_hsm_session *s, CK_OBJECT_HANDLE obj, const struct key_kind **kind)
{
	CK_BYTE buf[ATTR_MAX];
	CK_KEY_TYPE ckk;
	CK_ULONG len;
	CK_RV crv;

	*kind = NULL;
	crv = get_attr(s, obj, CKA_KEY_TYPE, &ckk, sizeof(ckk), &len);
	if (crv != CKR_OK)
		return crv;
	if (ckk == CKK_EC || ckk == CKK_EC_EDWARDS) {
		crv = get_attr(s, obj, CKA_EC_PARAMS, buf, sizeof(buf), &len);
		if (crv == CKR_BUFFER_TOO_SMALL || crv == CKR_ATTRIBUTE_TYPE_INVALID)
			return CKR_OK;
		if (crv != CKR_OK)
			return crv;
		if (ckk == CKK_EC && bytes_eq(buf, len, oid_p256, sizeof(oid_p256)))
			*kind = kind_of(KOS_KEY_EC_P256);
		else if (ckk == CKK_EC_EDWARDS &&
			 (bytes_eq(buf, len, oid_ed25519, sizeof(oid_ed25519)) ||
			  bytes_eq(buf, len, name_ed25519, sizeof(name_ed25519))))
			*kind = kind_of(KOS_KEY_ED25519);
	} else if (ckk == CKK_RSA) {
		/* the modulus is public on both halves; only its length matters */
		crv = get_attr(s, obj, CKA_MODULUS, NULL, 0, &len);
		if (crv != CKR_OK)
			return crv;
		if (len == 256)
			*kind = kind_of(KOS_KEY_RSA_2048);
		else if (len == 384)
			*kind = kind_of(KOS_KEY_RSA_3072);
	}
	return CKR_OK;
}

/* The public half as the token holds it. */
struct pub_attrs {
	const struct key_kind *kind;
	CK_BYTE a[ATTR_MAX]; /* EC point, or RSA modulus */
	CK_ULONG a_len;
	CK_BYTE b[16];       /* RSA public exponent */
	CK_ULONG b_len;
};

static CK_RV read_public(kos_hsm_session *s, CK_OBJECT_HANDLE pub, struct pub_attrs *pa)
{
	CK_RV crv;

	memset(pa, 0, sizeof(*pa));
	crv = key_kind_of(s, pub, &pa->kind);
	if (crv != CKR_OK || pa->kind == NULL)
		return crv;
	if (pa->kind->ckk == CKK_RSA) {
		CK_ATTRIBUTE t[] = {
			{ CKA_MODULUS, pa->a, sizeof(pa->a) },
			{ CKA_PUBLIC_EXPONENT, pa->b, sizeof(pa->b) },
		};

		crv = s->f->C_GetAttributeValue(s->h, pub, t, KOS_ARRAY_SIZE(t));
		pa->a_len = t[0].ulValueLen;
		pa->b_len = t[1].ulValueLen;
	} else {
		CK_ATTRIBUTE t = { CKA_EC_POINT, pa->a, sizeof(pa->a) };

		crv = s->f->C_GetAttributeValue(s->h, pub, &t, 1);
		pa->a_len = t.ulValueLen;
	}
	if (crv != CKR_OK)
		s->func = "C_GetAttributeValue";
	return crv;
}

/* CKA_EC_POINT is a DER OCTET STRING around the point (PKCS#11 2.40); some
 * tokens hand out the bare point. Sets *p, *n to the point of want bytes. */
static bool ec_point(const CK_BYTE *a, CK_ULONG len, size_t want, const CK_BYTE **p, size_t *n)
{
	if (want < 128 && len == want + 2 && a[0] == 0x04 && a[1] == want) {
		*p = a + 2;
		*n = want;
		return true;
	}
	if (want >= 128 && want < 256 && len == want + 3 && a[0] == 0x04 && a[1] == 0x81 &&
	    a[2] == want) {
		*p = a + 3;
		*n = want;
		return true;
	}
	if (len == want) {
		*p = a;
		*n = want;
		return true;
	}
	return false;
}

static EVP_PKEY *pkey_p256(const CK_BYTE *pt, size_t n)
{
	char group[] = "prime256v1";
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
		OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)pt, n),
		OSSL_PARAM_construct_end(),
	};
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *pkey = NULL;

	/* import decodes the point and refuses one that is not on the curve */
	if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
		pkey = NULL;
	EVP_PKEY_CTX_free(ctx);
	return pkey;
}

static EVP_PKEY *pkey_rsa(const CK_BYTE *n, size_t n_len, const CK_BYTE *e, size_t e_len)
{
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	BIGNUM *bn_n = BN_bin2bn(n, (int)n_len, NULL), *bn_e = BN_bin2bn(e, (int)e_len, NULL);
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;

	if (bld == NULL || bn_n == NULL || bn_e == NULL ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) != 1 ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) != 1)
		goto out;
	params = OSSL_PARAM_BLD_to_param(bld);
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
		pkey = NULL;
out:
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn_n);
	BN_free(bn_e);
	return pkey;
}

/* DER SubjectPublicKeyInfo of pkey into a buffer freed with free(). */
static kos_rv pkey_to_spki(EVP_PKEY *pkey, uint8_t **spki, size_t *spki_len)
{
	unsigned char *p;
	uint8_t *buf;
	int n;

	n = i2d_PUBKEY(pkey, NULL);
	if (n <= 0)
		return KOS_E_CRYPTO;
	buf = malloc((size_t)n);
	if (buf == NULL)
		return KOS_E_NOMEM;
	p = buf;
	if (i2d_PUBKEY(pkey, &p) != n) {
		free(buf);
		return KOS_E_CRYPTO;
	}
	*spki = buf;
	*spki_len = (size_t)n;
	return KOS_OK;
}

/* Builds the SPKI of what read_public() read; errors name the token and label. */
static kos_rv spki_from_attrs(kos_hsm *hsm, size_t tok, const char *label,
			      const struct pub_attrs *pa, uint8_t **spki, size_t *spki_len)
{
	EVP_PKEY *pkey = NULL;
	const CK_BYTE *pt;
	size_t n;
	kos_rv rv;

	if (pa->kind == NULL)
		return kos_hsm_error(hsm, tok, KOS_E_INVALID,
				     "public key '%s' is of a type kos does not use", label);
	switch (pa->kind->ckk) {
	case CKK_EC:
		if (ec_point(pa->a, pa->a_len, 65, &pt, &n) && pt[0] == 0x04)
			pkey = pkey_p256(pt, n);
		break;
	case CKK_EC_EDWARDS:
		if (ec_point(pa->a, pa->a_len, 32, &pt, &n))
			pkey = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, pt, n);
		break;
	default:
		if (pa->b_len > 0 && pa->b_len <= sizeof(pa->b))
			pkey = pkey_rsa(pa->a, pa->a_len, pa->b, pa->b_len);
		if (pkey != NULL && (CK_ULONG)EVP_PKEY_get_bits(pkey) != pa->kind->bits) {
			EVP_PKEY_free(pkey);
			pkey = NULL;
		}
		break;
	}
	if (pkey == NULL)
		return kos_hsm_error(hsm, tok, KOS_E_CRYPTO,
				     "public key '%s': the token's %s key does not decode", label,
				     pa->kind->name);
	rv = pkey_to_spki(pkey, spki, spki_len);
	EVP_PKEY_free(pkey);
	if (rv != KOS_OK)
		return kos_hsm_error(hsm, tok, rv, "public key '%s': cannot encode it", label);
	return KOS_OK;
}

/* --- generate ---------------------------------------------------------------- */

struct gen_op {
	const struct key_kind *kind;
	const char *label;
	uint8_t id[KEY_ID_LEN];
	bool exists;
	bool generated;
	CK_OBJECT_HANDLE pub, priv;
	struct pub_attrs pa;
};

static void add_attr(CK_ATTRIBUTE *t, CK_ULONG *n, CK_ATTRIBUTE_TYPE type, const void *value,
		     CK_ULONG len)
{
	t[*n].type = type;
	t[*n].pValue = (void *)value;
	t[*n].ulValueLen = len;
	(*n)++;
}

static CK_RV gen_op(kos_hsm_session *s, void *arg)
{
	struct gen_op *o = arg;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ULONG bits = o->kind->bits, np = 0, nk = 0, n;
	CK_ATTRIBUTE pub[16], priv[16];
	CK_ATTRIBUTE in_use = { CKA_LABEL, (void *)o->label, strlen(o->label) };
	CK_MECHANISM mech = { CKM_EC_KEY_PAIR_GEN, NULL, 0 };
	bool rsa = o->kind->ckk == CKK_RSA;
	CK_OBJECT_HANDLE obj;
	CK_RV crv;

	/* A retry after the session broke keeps the pair already made. */
	if (o->generated)
		return read_public(s, o->pub, &o->pa);

	/* Any object with the label counts: two objects answering to one label
	 * would make lookups ambiguous. */
	crv = kos_hsm_find(s, &in_use, 1, &obj, 1, &n);
	if (crv != CKR_OK)
		return crv;
	if (n > 0) {
		o->exists = true;
		return CKR_OK;
	}

	add_attr(pub, &np, CKA_TOKEN, &yes, sizeof(yes));
	add_attr(pub, &np, CKA_PRIVATE, &no, sizeof(no));
	add_attr(pub, &np, CKA_VERIFY, &yes, sizeof(yes));
	add_attr(pub, &np, CKA_ENCRYPT, rsa ? &yes : &no, sizeof(yes));
	add_attr(pub, &np, CKA_WRAP, &no, sizeof(no));
	add_attr(pub, &np, CKA_VERIFY_RECOVER, &no, sizeof(no));
	add_attr(pub, &np, CKA_DERIVE, &no, sizeof(no));
	add_attr(pub, &np, CKA_LABEL, o->label, strlen(o->label));
	add_attr(pub, &np, CKA_ID, o->id, KEY_ID_LEN);

	/* Sign, and for RSA decrypt (TLS 1.2's RSA key exchange, CMS, JOSE
	 * need it: kos_signer_rsa_decrypt() is the only caller, with PKCS#1
	 * v1.5, OAEP or, to decode OAEP itself, raw RSA). Never unwrap or
	 * derive: the token would hand what it unwraps to whoever holds a
	 * session, not through kos's decisions. */
	add_attr(priv, &nk, CKA_TOKEN, &yes, sizeof(yes));
	add_attr(priv, &nk, CKA_PRIVATE, &yes, sizeof(yes));
	add_attr(priv, &nk, CKA_SENSITIVE, &yes, sizeof(yes));
	add_attr(priv, &nk, CKA_EXTRACTABLE, &no, sizeof(no));
	add_attr(priv, &nk, CKA_SIGN, &yes, sizeof(yes));
	add_attr(priv, &nk, CKA_SIGN_RECOVER, &no, sizeof(no));
	add_attr(priv, &nk, CKA_DECRYPT, rsa ? &yes : &no, sizeof(yes));
	add_attr(priv, &nk, CKA_UNWRAP, &no, sizeof(no));
	add_attr(priv, &nk, CKA_DERIVE, &no, sizeof(no));
	add_attr(priv, &nk, CKA_LABEL, o->label, strlen(o->label));
	add_attr(priv, &nk, CKA_ID, o->id, KEY_ID_LEN);

	switch (o->kind->type) {
	case KOS_KEY_EC_P256:
		add_attr(pub, &np, CKA_EC_PARAMS, oid_p256, sizeof(oid_p256));
		break;
	case KOS_KEY_ED25519:
		mech.mechanism = CKM_EC_EDWARDS_KEY_PAIR_GEN;
		add_attr(pub, &np, CKA_EC_PARAMS, oid_ed25519, sizeof(oid_ed25519));
		break;
	default:
		mech.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
		add_attr(pub, &np, CKA_MODULUS_BITS, &bits, sizeof(bits));
		add_attr(pub, &np, CKA_PUBLIC_EXPONENT, rsa_f4, sizeof(rsa_f4));
		break;
	}
	crv = s->f->C_GenerateKeyPair(s->h, &mech, pub, np, priv, nk, &o->pub, &o->priv);
	if (crv != CKR_OK) {
		s->func = "C_GenerateKeyPair";
		return crv;
	}
	o->generated = true;
	return read_public(s, o->pub, &o->pa);
}

struct destroy_pair_op {
	CK_OBJECT_HANDLE objs[2];
};

static CK_RV destroy_pair_op(kos_hsm_session *s, void *arg)
{
	struct destroy_pair_op *o = arg;
	CK_RV crv;
	size_t i;

	for (i = 0; i < KOS_ARRAY_SIZE(o->objs); i++) {
		if (o->objs[i] == CK_INVALID_HANDLE)
			continue;
		crv = s->f->C_DestroyObject(s->h, o->objs[i]);
		/* gone already, e.g. on a retry */
		if (crv != CKR_OK && crv != CKR_OBJECT_HANDLE_INVALID) {
			s->func = "C_DestroyObject";
			return crv;
		}
		o->objs[i] = CK_INVALID_HANDLE;
	}
	return CKR_OK;
}

kos_rv kos_signer_generate(kos_hsm *hsm, size_t tok, kos_key_type type, const char *label,
			   uint8_t **spki, size_t *spki_len)
{
	struct gen_op o;
	kos_rv rv;

	if (spki == NULL || spki_len == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_signer_generate: bad arguments");
	*spki = NULL;
	*spki_len = 0;
	rv = check_args(hsm, tok, label);
	if (rv != KOS_OK)
		return rv;
	memset(&o, 0, sizeof(o));
	o.kind = kind_of(type);
	o.label = label;
	if (o.kind == NULL)
		return kos_hsm_error(hsm, tok, KOS_E_INVALID,
				     "key '%s': not a signing key type (%d)", label, (int)type);
	if (!key_id(label, o.id))
		return kos_error_set(KOS_E_CRYPTO, "SHA-256 failed");
	o.pub = o.priv = CK_INVALID_HANDLE;
	/* a handle cached under the label belongs to a key that is gone */
	cache_drop(hsm, tok, label);
	rv = kos_hsm_run(hsm, tok, gen_op, &o);
	if (rv == KOS_OK && o.exists)
		return kos_hsm_error(hsm, tok, KOS_E_EXISTS,
				     "an object labelled '%s' already exists", label);
	if (rv == KOS_OK)
		rv = spki_from_attrs(hsm, tok, label, &o.pa, spki, spki_len);
	if (rv != KOS_OK && o.generated) {
		struct destroy_pair_op d = { { o.priv, o.pub } };
		char why[512];

		/* keep the first failure as the detail */
		snprintf(why, sizeof(why), "%s", kos_last_error());
		if (kos_hsm_run(hsm, tok, destroy_pair_op, &d) != KOS_OK)
			return kos_error_set(rv, "%s; removing the new key pair failed too: %s",
					     why, kos_last_error());
		return kos_error_set(rv, "%s", why);
	}
	return rv;
}

/* --- sign ----------------------------------------------------------------------- */

/* The private key an operation uses, found by label through the handle
 * cache. */
struct key_ref {
	kos_hsm *hsm;
	size_t tok;
	const char *label;
	uint32_t hash;		     /* cache_hash() of the label */
	const struct key_kind *want; /* the kind the key must be */
	kos_rv err;		     /* kos's own refusal, detail set; the op returns CKR_OK */
};

struct sign_op {
	struct key_ref key;
	CK_MECHANISM mech;
	const uint8_t *in;
	CK_ULONG in_len;
	uint8_t *sig;      /* want->sig_len bytes */
	CK_ULONG sig_len;
};

/* Finds the private key of r->label; CKR_OK with r->err set when there is
 * none or more than one. */
static CK_RV lookup_key(kos_hsm_session *s, struct key_ref *r, CK_OBJECT_HANDLE *key,
			const struct key_kind **kind)
{
	static const CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	uint8_t id[KEY_ID_LEN];
	CK_ATTRIBUTE tmpl[3];
	CK_OBJECT_HANDLE obj;
	CK_ULONG n;
	CK_RV crv;

	atomic_fetch_add(&lookup_count, 1);
	if (!key_id(r->label, id))
		return CKR_FUNCTION_FAILED;
	key_template(tmpl, &cls, r->label, id);
	crv = kos_hsm_find_one(s, tmpl, KOS_ARRAY_SIZE(tmpl), &obj, &n);
	if (crv != CKR_OK)
		return crv;
	if (n == 0) {
		r->err = kos_hsm_error(r->hsm, r->tok, KOS_E_NOTFOUND,
				       "no private key labelled '%s'", r->label);
		return CKR_OK;
	}
	if (n > 1) {
		r->err = kos_hsm_error(r->hsm, r->tok, KOS_E_INTEGRITY,
				       "more than one private key labelled '%s'", r->label);
		return CKR_OK;
	}
	*key = obj;
	return key_kind_of(s, obj, kind);
}

typedef CK_RV key_init_fn(kos_hsm_session *s, CK_MECHANISM *mech, CK_OBJECT_HANDLE key);

static CK_RV sign_init(kos_hsm_session *s, CK_MECHANISM *mech, CK_OBJECT_HANDLE key)
{
	return s->f->C_SignInit(s->h, mech, key);
}

static CK_RV decrypt_init(kos_hsm_session *s, CK_MECHANISM *mech, CK_OBJECT_HANDLE key)
{
	return s->f->C_DecryptInit(s->h, mech, key);
}

/* Starts an operation with init (named func) and mech on the private key
 * of r: its cached handle, else the one looked up (and cached); a cached
 * handle the token calls invalid (the key was destroyed behind kos's back)
 * is looked up once more. Returns init's CK_RV, with s->func set when it
 * failed and *key the handle it was given; or CKR_OK with r->err set when
 * there is no such key or it is of another kind. */
static CK_RV key_init(kos_hsm_session *s, struct key_ref *r, key_init_fn *init, const char *func,
		      CK_MECHANISM *mech, CK_OBJECT_HANDLE *key)
{
	const struct key_kind *kind = NULL;
	uint64_t epoch;
	bool cached;
	CK_RV crv;

	r->err = KOS_OK;
	*key = CK_INVALID_HANDLE;
	cached = cache_get(r->hsm, r->tok, r->label, r->hash, s->generation, key, &kind, &epoch);
	for (;;) {
		if (!cached) {
			crv = lookup_key(s, r, key, &kind);
			if (crv != CKR_OK || r->err != KOS_OK)
				return crv;
			cache_put(r->hsm, r->tok, r->label, r->hash, s->generation, *key, kind,
				  epoch);
		}
		if (kind != r->want) {
			r->err = kos_hsm_error(
			    r->hsm, r->tok, KOS_E_INVALID, "key '%s' is %s, not %s", r->label,
			    kind != NULL ? kind->name : "of another type", r->want->name);
			return CKR_OK;
		}
		crv = init(s, mech, *key);
		if (cached && (crv == CKR_KEY_HANDLE_INVALID || crv == CKR_OBJECT_HANDLE_INVALID)) {
			epoch = cache_drop(r->hsm, r->tok, r->label);
			cached = false;
			continue;
		}
		if (crv != CKR_OK)
			s->func = func;
		return crv;
	}
}

static CK_RV sign_op(kos_hsm_session *s, void *arg)
{
	struct sign_op *o = arg;
	CK_OBJECT_HANDLE key;
	CK_RV crv;

	crv = key_init(s, &o->key, sign_init, "C_SignInit", &o->mech, &key);
	if (crv != CKR_OK || o->key.err != KOS_OK)
		return crv;
	o->sig_len = o->key.want->sig_len;
	crv = s->f->C_Sign(s->h, (CK_BYTE_PTR)o->in, o->in_len, o->sig, &o->sig_len);
	if (crv == CKR_BUFFER_TOO_SMALL) {
		/* The key was checked to be of the wanted size, so this is a token
		 * fault; the operation is still active and must not go back to the
		 * pool, which CKR_OPERATION_ACTIVE makes sure of. */
		s->func = "C_Sign (signature longer than the key type's)";
		return CKR_OPERATION_ACTIVE;
	}
	if (crv != CKR_OK) {
		s->func = "C_Sign";
		return crv;
	}
	return CKR_OK;
}

/* DER of DigestInfo up to the digest (RFC 8017 9.2 note 1), per hash:
 * 19 bytes for SHA-2, 15 for SHA-1's shorter OID. */
static const struct {
	CK_MECHANISM_TYPE ckm;
	CK_RSA_PKCS_MGF_TYPE mgf;
	uint8_t prefix_len;
	uint8_t prefix[19];
} hash_info[KOS_HASH_COUNT] = {
	[KOS_HASH_SHA256] = { CKM_SHA256, CKG_MGF1_SHA256, 19,
			      { 0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
				0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20 } },
	[KOS_HASH_SHA384] = { CKM_SHA384, CKG_MGF1_SHA384, 19,
			      { 0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
				0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30 } },
	[KOS_HASH_SHA512] = { CKM_SHA512, CKG_MGF1_SHA512, 19,
			      { 0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
				0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40 } },
	[KOS_HASH_SHA1] = { CKM_SHA_1, CKG_MGF1_SHA1, 15,
			    { 0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a,
			      0x05, 0x00, 0x04, 0x14 } },
};

/* What one signature sends to the token. */
struct sign_plan {
	CK_MECHANISM mech;
	CK_RSA_PKCS_PSS_PARAMS pss;
	uint8_t buf[sizeof(hash_info[0].prefix) + KOS_HASH_MAX_LEN]; /* digest or DigestInfo */
};

/* The mechanism o asks for on a key of kind (resolving KOS_SIG_DEFAULT in
 * *alg); NULL when it fits, else why not (for the caller's message). Every
 * form but Ed25519 signs a digest: kos hashes the data itself, since
 * SoftHSM and many HSMs offer raw ECDSA only, and one path for data and
 * digests gives both the same signatures. */
static const char *pick_mechanism(const struct key_kind *kind, const kos_sign_opts *o,
				  kos_sig_alg *alg, struct sign_plan *p)
{
	bool rsa = kind->type == KOS_KEY_RSA_2048 || kind->type == KOS_KEY_RSA_3072;

	memset(&p->mech, 0, sizeof(p->mech));
	*alg = o->alg;
	switch (kind->type) {
	case KOS_KEY_EC_P256:
		if (*alg == KOS_SIG_DEFAULT)
			*alg = KOS_SIG_ECDSA_RAW;
		if (*alg != KOS_SIG_ECDSA_RAW && *alg != KOS_SIG_ECDSA_DER)
			return "does not fit";
		p->mech.mechanism = CKM_ECDSA;
		break;
	case KOS_KEY_ED25519:
		if (*alg == KOS_SIG_DEFAULT)
			*alg = KOS_SIG_ED25519;
		if (*alg != KOS_SIG_ED25519)
			return "does not fit";
		/* a pure signature: Ed25519ph would be another algorithm */
		if (o->digest)
			return "signs the message itself, not a digest: give the data";
		if (o->hash != KOS_HASH_SHA256)
			return "signs the message itself and takes no hash";
		p->mech.mechanism = CKM_EDDSA;
		break;
	default:
		if (!rsa)
			return "does not fit";
		if (*alg == KOS_SIG_DEFAULT)
			*alg = KOS_SIG_RSA_PKCS1;
		if (*alg == KOS_SIG_RSA_PKCS1) {
			p->mech.mechanism = CKM_RSA_PKCS;
		} else if (*alg == KOS_SIG_RSA_PSS) {
			size_t hlen = kos_hash_len(o->hash);
			size_t em = kind->sig_len; /* RFC 8017 9.1.1: emLen for these sizes */

			if (o->salt_len != KOS_SIG_SALT_DEFAULT &&
			    (o->salt_len < 0 || (size_t)o->salt_len + hlen + 2 > em))
				return "takes a salt of at most the modulus' bytes less the hash's "
				       "and 2";
			/* modules only read the parameters */
			p->pss.hashAlg = hash_info[o->hash].ckm;
			p->pss.mgf = hash_info[o->hash].mgf;
			p->pss.sLen = o->salt_len == KOS_SIG_SALT_DEFAULT ? hlen
									  : (CK_ULONG)o->salt_len;
			p->mech.mechanism = CKM_RSA_PKCS_PSS;
			p->mech.pParameter = &p->pss;
			p->mech.ulParameterLen = sizeof(p->pss);
		} else {
			return "does not fit";
		}
		break;
	}
	if (*alg != KOS_SIG_RSA_PSS && o->salt_len != KOS_SIG_SALT_DEFAULT)
		return "takes no salt length (only rsa-pss does)";
	return NULL;
}

kos_rv kos_signer_sign_with(kos_hsm *hsm, size_t tok, kos_key_type type, const char *label,
			    const kos_sign_opts *opts, const uint8_t *in, size_t len,
			    uint8_t **sig, size_t *sig_len)
{
	static const uint8_t empty[1];
	struct sign_plan plan;
	kos_sig_alg alg;
	struct sign_op o;
	const char *why;
	size_t hlen;
	kos_rv rv;

	if (sig == NULL || sig_len == NULL || opts == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_signer_sign: bad arguments");
	*sig = NULL;
	*sig_len = 0;
	if (in == NULL && len > 0)
		return kos_error_set(KOS_E_INVALID, "kos_signer_sign: no data");
	rv = check_args(hsm, tok, label);
	if (rv != KOS_OK)
		return rv;
	if ((unsigned)opts->alg >= KOS_SIG_ALG_COUNT || (unsigned)opts->hash >= KOS_HASH_COUNT)
		return kos_hsm_error(hsm, tok, KOS_E_INVALID,
				     "key '%s': unknown signature algorithm or hash", label);
	o.key.want = kind_of(type);
	if (o.key.want == NULL)
		return kos_hsm_error(hsm, tok, KOS_E_INVALID,
				     "key '%s': not a signing key type (%d)", label, (int)type);
	why = pick_mechanism(o.key.want, opts, &alg, &plan);
	if (why != NULL)
		return kos_hsm_error(hsm, tok, KOS_E_INVALID, "key '%s': %s with a %s key %s",
				     label, alg_name(alg), o.key.want->name, why);
	hlen = kos_hash_len(opts->hash);
	if (opts->digest && len != hlen)
		return kos_hsm_error(hsm, tok, KOS_E_INVALID,
				     "key '%s': a %s digest is %zu bytes, not %zu", label,
				     kos_hash_name(opts->hash), hlen, len);
	if (len > KOS_SIGNER_DATA_MAX)
		return kos_hsm_error(hsm, tok, KOS_E_RANGE,
				     "key '%s': %zu bytes to sign; at most %u are accepted", label,
				     len, (unsigned)KOS_SIGNER_DATA_MAX);
	o.key.hsm = hsm;
	o.key.tok = tok;
	o.key.label = label;
	o.key.hash = cache_hash(hsm, tok, label);
	o.mech = plan.mech;
	o.in = len > 0 ? in : empty;
	o.in_len = len;
	if (o.mech.mechanism != CKM_EDDSA) {
		/* the digest, after a DigestInfo's prefix for PKCS#1 v1.5 */
		size_t pre =
		    o.mech.mechanism == CKM_RSA_PKCS ? hash_info[opts->hash].prefix_len : 0;

		if (pre > 0)
			memcpy(plan.buf, hash_info[opts->hash].prefix, pre);
		if (opts->digest)
			memcpy(plan.buf + pre, in, hlen);
		else if (!digest_of(opts->hash, o.in, len, plan.buf + pre))
			return kos_error_set(KOS_E_CRYPTO, "%s failed", kos_hash_name(opts->hash));
		o.in = plan.buf;
		o.in_len = pre + hlen;
	}
	o.sig = malloc(o.key.want->sig_len);
	if (o.sig == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	o.key.err = KOS_OK;
	rv = kos_hsm_run(hsm, tok, sign_op, &o);
	if (rv == KOS_OK)
		rv = o.key.err;
	if (rv == KOS_OK && o.sig_len != o.key.want->sig_len)
		rv = kos_hsm_error(hsm, tok, KOS_E_CRYPTO,
				   "C_Sign with '%s' returned %lu bytes, not %lu", label,
				   (unsigned long)o.sig_len, (unsigned long)o.key.want->sig_len);
	if (rv == KOS_OK && alg == KOS_SIG_ECDSA_DER) {
		rv = kos_ecdsa_raw_to_der(o.sig, o.sig_len, sig, sig_len);
		if (rv != KOS_OK)
			rv = kos_error_set(rv, "ECDSA signature to DER failed");
		free(o.sig);
		return rv;
	}
	if (rv != KOS_OK) {
		free(o.sig);
		return rv;
	}
	*sig = o.sig;
	*sig_len = o.sig_len;
	return KOS_OK;
}

kos_rv kos_signer_sign(kos_hsm *hsm, size_t tok, kos_key_type type, const char *label,
		       kos_sig_alg alg, const uint8_t *data, size_t len, uint8_t **sig,
		       size_t *sig_len)
{
	kos_sign_opts opts = KOS_SIGN_OPTS_INIT;

	opts.alg = alg;
	return kos_signer_sign_with(hsm, tok, type, label, &opts, data, len, sig, sig_len);
}

/* --- RSA decryption ------------------------------------------------------------ */

struct decrypt_op {
	struct key_ref key;
	CK_MECHANISM mech; /* CKM_RSA_PKCS, or CKM_RSA_PKCS_OAEP with oaep */
	CK_RSA_PKCS_OAEP_PARAMS oaep;
	const uint8_t *in;
	CK_ULONG in_len;
	uint8_t *out; /* want->sig_len bytes: the modulus' */
	CK_ULONG out_len;
	bool raw;     /* decrypted with CKM_RSA_X_509: kos decodes OAEP */
};

/* Whether C_DecryptInit refused CKM_RSA_PKCS_OAEP for its parameters (or
 * the mechanism), not for the key or the session. SoftHSM 2.6.1 answers
 * CKR_ARGUMENTS_BAD to any hash but SHA-1, another MGF or a label; the
 * standard says CKR_MECHANISM_PARAM_INVALID. */
static bool oaep_refused(CK_RV crv)
{
	return crv == CKR_MECHANISM_PARAM_INVALID || crv == CKR_ARGUMENTS_BAD ||
	       crv == CKR_MECHANISM_INVALID;
}

static CK_RV decrypt_op(kos_hsm_session *s, void *arg)
{
	static CK_MECHANISM raw = { CKM_RSA_X_509, NULL, 0 };
	struct decrypt_op *o = arg;
	CK_OBJECT_HANDLE key;
	CK_RV crv;

	o->raw = o->mech.mechanism == CKM_RSA_X_509;
	crv = key_init(s, &o->key, decrypt_init, "C_DecryptInit", &o->mech, &key);
	if (o->key.err != KOS_OK)
		return CKR_OK;
	/* Prefer the token's OAEP; where it refuses the parameters (SoftHSM
	 * 2.6.1: any hash or MGF1 but SHA-1) the token makes the private-key
	 * operation alone and kos decodes the result (kos/rsa_oaep.c). The
	 * parameters are the caller's, not secret. */
	if (o->mech.mechanism == CKM_RSA_PKCS_OAEP && key != CK_INVALID_HANDLE &&
	    oaep_refused(crv)) {
		o->raw = true;
		crv = s->f->C_DecryptInit(s->h, &raw, key);
		if (crv != CKR_OK)
			s->func = "C_DecryptInit (CKM_RSA_X_509)";
	}
	if (crv == CKR_KEY_FUNCTION_NOT_PERMITTED) {
		o->key.err =
		    kos_hsm_error(o->key.hsm, o->key.tok, KOS_E_POLICY,
				  "key pair '%s' was made without decryption", o->key.label);
		return CKR_OK;
	}
	if (crv != CKR_OK)
		return crv;
	o->out_len = o->key.want->sig_len;
	crv = s->f->C_Decrypt(s->h, (CK_BYTE_PTR)o->in, o->in_len, o->out, &o->out_len);
	if (crv == CKR_OK)
		return CKR_OK;
	if (crv == CKR_BUFFER_TOO_SMALL) {
		/* more than the modulus: a token fault, the operation still active */
		s->func = "C_Decrypt (a plaintext longer than the modulus)";
		return CKR_OPERATION_ACTIVE;
	}
	if (kos_hsm_rv_session_failed(crv) || crv == CKR_HOST_MEMORY || crv == CKR_DEVICE_MEMORY) {
		s->func = "C_Decrypt";
		return crv;
	}
	/* The token found the padding, or the ciphertext as a number, wrong:
	 * the caller's doing, not the token's (not counted against it), and
	 * one answer whatever the token said (CKR_ENCRYPTED_DATA_INVALID,
	 * SoftHSM's CKR_GENERAL_ERROR, ...), so the answer is no padding
	 * oracle by content. */
	o->key.err = kos_error_set(KOS_E_INTEGRITY, "decryption failed");
	return CKR_OK;
}

/* The mechanism for OAEP with opts, in o; NULL when they fit, else why not.
 * With a label the token only decrypts (CKM_RSA_X_509) and kos decodes:
 * SoftHSM 2.6.1 takes a label in CK_RSA_PKCS_OAEP_PARAMS and ignores it,
 * so a ciphertext made for no label, or for another one, would decrypt,
 * and kos cannot tell such a token from one that checks. */
static const char *oaep_plan(const kos_rsa_decrypt_opts *opts, size_t k, struct decrypt_op *o)
{
	static const CK_MECHANISM raw = { CKM_RSA_X_509, NULL, 0 };

	if ((unsigned)opts->hash >= KOS_HASH_COUNT || (unsigned)opts->mgf1 >= KOS_HASH_COUNT)
		return "an unknown OAEP hash";
	if (opts->label_len > KOS_RSA_LABEL_MAX)
		return "an OAEP label longer than " LABEL_MAX_TEXT " bytes";
	if (k < 2 * kos_hash_len(opts->hash) + 2)
		return "a hash too long for the modulus";
	if (opts->label_len > 0) {
		o->mech = raw;
		return NULL;
	}
	o->oaep.hashAlg = hash_info[opts->hash].ckm;
	o->oaep.mgf = hash_info[opts->mgf1].mgf;
	o->oaep.source = CKZ_DATA_SPECIFIED;
	o->oaep.pSourceData = NULL;
	o->oaep.ulSourceDataLen = 0;
	o->mech.mechanism = CKM_RSA_PKCS_OAEP;
	o->mech.pParameter = &o->oaep;
	o->mech.ulParameterLen = sizeof(o->oaep);
	return NULL;
}

kos_rv kos_signer_rsa_decrypt(kos_hsm *hsm, size_t tok, kos_key_type type, const char *label,
			      const kos_rsa_decrypt_opts *opts, const uint8_t *ct, size_t len,
			      uint8_t **pt, size_t *pt_len)
{
	struct decrypt_op o;
	const char *why = NULL;
	uint8_t *buf = NULL;
	size_t k, cap = 0, n = 0;
	kos_rv rv;

	if (pt == NULL || pt_len == NULL || opts == NULL || ct == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_signer_rsa_decrypt: bad arguments");
	*pt = NULL;
	*pt_len = 0;
	rv = check_args(hsm, tok, label);
	if (rv != KOS_OK)
		return rv;
	memset(&o, 0, sizeof(o));
	o.key.want = kind_of(type);
	if (o.key.want == NULL || o.key.want->ckk != CKK_RSA)
		return kos_hsm_error(hsm, tok, KOS_E_INVALID, "key '%s': only RSA keys decrypt",
				     label);
	k = o.key.want->sig_len;
	if (len != k)
		return kos_hsm_error(
		    hsm, tok, KOS_E_INVALID,
		    "key '%s': an %s ciphertext is %zu bytes (the modulus'), not %zu", label,
		    o.key.want->name, k, len);
	if (opts->label == NULL && opts->label_len > 0)
		why = "an OAEP label of no bytes";
	else if (opts->padding == KOS_RSA_PAD_PKCS1)
		o.mech.mechanism = CKM_RSA_PKCS;
	else if (opts->padding == KOS_RSA_PAD_OAEP)
		why = oaep_plan(opts, k, &o);
	else
		why = "an unknown padding";
	if (why != NULL)
		return kos_hsm_error(hsm, tok, KOS_E_INVALID, "key '%s': %s", label, why);
	pthread_once(&md_once, md_init);
	if (opts->padding == KOS_RSA_PAD_OAEP &&
	    (mds[opts->hash] == NULL || mds[opts->mgf1] == NULL))
		return kos_error_set(
		    KOS_E_CRYPTO, "%s is not available",
		    kos_hash_name(mds[opts->hash] == NULL ? opts->hash : opts->mgf1));
	o.key.hsm = hsm;
	o.key.tok = tok;
	o.key.label = label;
	o.key.hash = cache_hash(hsm, tok, label);
	o.in = ct;
	o.in_len = len;
	o.out = calloc(1, k);
	if (o.out == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	rv = kos_hsm_run(hsm, tok, decrypt_op, &o);
	if (rv == KOS_OK)
		rv = o.key.err;
	if (rv == KOS_OK && o.out_len > k)
		rv = kos_hsm_error(hsm, tok, KOS_E_CRYPTO,
				   "C_Decrypt with '%s' returned %lu bytes, more than the modulus",
				   label, (unsigned long)o.out_len);
	if (rv != KOS_OK)
		goto out;
	cap = o.raw ? k - 2 * kos_hash_len(opts->hash) - 2 : (size_t)o.out_len;
	buf = malloc(cap > 0 ? cap : 1);
	if (buf == NULL) {
		rv = kos_error_set(KOS_E_NOMEM, "out of memory");
		goto out;
	}
	if (o.raw) {
		/* a token may leave out the leading zeros, and how many is secret */
		kos_rsa_right_align(o.out, k, o.out_len);
		rv = kos_rsa_oaep_decode(mds[opts->hash], mds[opts->mgf1], opts->label,
					 opts->label_len, o.out, k, buf, &n);
	} else {
		memcpy(buf, o.out, o.out_len);
		n = o.out_len;
	}
	if (rv == KOS_OK) {
		*pt = buf;
		*pt_len = n;
		buf = NULL;
	}
out:
	kos_secret_free(buf, cap);
	kos_secret_free(o.out, k);
	return rv;
}

/* --- public key, destroy, list ------------------------------------------------- */

struct pub_op {
	const char *label;
	uint8_t id[KEY_ID_LEN];
	CK_ULONG found;
	struct pub_attrs pa;
};

static CK_RV pub_op(kos_hsm_session *s, void *arg)
{
	static const CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
	struct pub_op *o = arg;
	CK_ATTRIBUTE tmpl[3];
	CK_OBJECT_HANDLE obj;
	CK_RV crv;

	key_template(tmpl, &cls, o->label, o->id);
	crv = kos_hsm_find_one(s, tmpl, KOS_ARRAY_SIZE(tmpl), &obj, &o->found);
	if (crv != CKR_OK || o->found != 1)
		return crv;
	return read_public(s, obj, &o->pa);
}

kos_rv kos_signer_pubkey(kos_hsm *hsm, size_t tok, const char *label, uint8_t **spki,
			 size_t *spki_len)
{
	struct pub_op o;
	kos_rv rv;

	if (spki == NULL || spki_len == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_signer_pubkey: bad arguments");
	*spki = NULL;
	*spki_len = 0;
	rv = check_args(hsm, tok, label);
	if (rv != KOS_OK)
		return rv;
	memset(&o, 0, sizeof(o));
	o.label = label;
	if (!key_id(label, o.id))
		return kos_error_set(KOS_E_CRYPTO, "SHA-256 failed");
	rv = kos_hsm_run(hsm, tok, pub_op, &o);
	if (rv != KOS_OK)
		return rv;
	if (o.found == 0)
		return kos_hsm_error(hsm, tok, KOS_E_NOTFOUND, "no public key labelled '%s'",
				     label);
	if (o.found > 1)
		return kos_hsm_error(hsm, tok, KOS_E_INTEGRITY,
				     "more than one public key labelled '%s'", label);
	return spki_from_attrs(hsm, tok, label, &o.pa, spki, spki_len);
}

struct destroy_op {
	const char *label;
	uint8_t id[KEY_ID_LEN];
	unsigned long destroyed;
};

static CK_RV destroy_op(kos_hsm_session *s, void *arg)
{
	static const CK_OBJECT_CLASS classes[] = { CKO_PRIVATE_KEY, CKO_PUBLIC_KEY };
	struct destroy_op *o = arg;
	CK_ATTRIBUTE tmpl[3];
	size_t c;
	CK_RV crv;

	/* The private half goes first: a lone public key is harmless. */
	for (c = 0; c < KOS_ARRAY_SIZE(classes); c++) {
		key_template(tmpl, &classes[c], o->label, o->id);
		crv = kos_hsm_destroy(s, tmpl, KOS_ARRAY_SIZE(tmpl), &o->destroyed);
		if (crv != CKR_OK)
			return crv;
	}
	return CKR_OK;
}

kos_rv kos_signer_destroy(kos_hsm *hsm, size_t tok, const char *label)
{
	struct destroy_op o;
	kos_rv rv = check_args(hsm, tok, label);

	if (rv != KOS_OK)
		return rv;
	memset(&o, 0, sizeof(o));
	o.label = label;
	if (!key_id(label, o.id))
		return kos_error_set(KOS_E_CRYPTO, "SHA-256 failed");
	/* before and after: a signature looking the key up meanwhile must not
	 * leave its handle behind */
	cache_drop(hsm, tok, label);
	rv = kos_hsm_run(hsm, tok, destroy_op, &o);
	cache_drop(hsm, tok, label);
	if (rv == KOS_OK && o.destroyed == 0)
		return kos_hsm_error(hsm, tok, KOS_E_NOTFOUND, "no key pair labelled '%s'", label);
	return rv;
}

struct list_op {
	const char *prefix;
	size_t prefix_len;
	char **labels;
	size_t n, cap;
};

static void list_reset(struct list_op *o)
{
	size_t i;

	for (i = 0; i < o->n; i++)
		free(o->labels[i]);
	free(o->labels);
	o->labels = NULL;
	o->n = o->cap = 0;
}

/* Keeps obj's label when it has the prefix and kos's CKA_ID for it. */
static CK_RV list_each(kos_hsm_session *s, CK_OBJECT_HANDLE obj, void *arg)
{
	struct list_op *o = arg;
	char label[KOS_HSM_LABEL_MAX + 1];
	uint8_t id[KEY_ID_LEN], want[KEY_ID_LEN];
	CK_ATTRIBUTE t[] = {
		{ CKA_LABEL, label, KOS_HSM_LABEL_MAX },
		{ CKA_ID, id, sizeof(id) },
	};
	char *copy;
	CK_RV crv;

	crv = s->f->C_GetAttributeValue(s->h, obj, t, KOS_ARRAY_SIZE(t));
	/* too long a label or id: not a kos key */
	if (crv == CKR_BUFFER_TOO_SMALL || crv == CKR_ATTRIBUTE_TYPE_INVALID)
		return CKR_OK;
	if (crv != CKR_OK) {
		s->func = "C_GetAttributeValue";
		return crv;
	}
	if (t[1].ulValueLen != KEY_ID_LEN || t[0].ulValueLen < o->prefix_len)
		return CKR_OK;
	label[t[0].ulValueLen] = '\0';
	if (strlen(label) != t[0].ulValueLen || strncmp(label, o->prefix, o->prefix_len) != 0)
		return CKR_OK;
	if (!key_id(label, want))
		return CKR_FUNCTION_FAILED;
	if (memcmp(id, want, KEY_ID_LEN) != 0)
		return CKR_OK;
	if (o->n == o->cap) {
		size_t ncap = o->cap ? o->cap * 2 : 16;
		char **nl = realloc(o->labels, ncap * sizeof(*nl));

		if (nl == NULL)
			return CKR_HOST_MEMORY;
		o->labels = nl;
		o->cap = ncap;
	}
	copy = kos_strdup(label);
	if (copy == NULL)
		return CKR_HOST_MEMORY;
	o->labels[o->n++] = copy;
	return CKR_OK;
}

static CK_RV list_op(kos_hsm_session *s, void *arg)
{
	/* Public keys too: a pair half destroyed by a crash must show up for
	 * fsck to remove it. */
	static const CK_OBJECT_CLASS classes[] = { CKO_PRIVATE_KEY, CKO_PUBLIC_KEY };
	struct list_op *o = arg;
	CK_RV crv = CKR_OK;
	size_t c;

	list_reset(o);
	for (c = 0; c < KOS_ARRAY_SIZE(classes) && crv == CKR_OK; c++) {
		CK_ATTRIBUTE tmpl = { CKA_CLASS, (void *)&classes[c], sizeof(classes[c]) };

		crv = kos_hsm_find_each(s, &tmpl, 1, list_each, o);
	}
	return crv;
}

static int cmp_labels(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

kos_rv kos_signer_list(kos_hsm *hsm, size_t tok, const char *prefix, kos_hsm_label_fn *fn,
		       void *arg)
{
	struct list_op o = { 0 };
	size_t i;
	kos_rv rv;

	if (hsm == NULL || tok >= kos_hsm_token_count(hsm))
		return kos_error_set(KOS_E_RANGE, "no backend token #%zu", tok);
	if (fn == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_signer_list: bad arguments");
	o.prefix = prefix != NULL ? prefix : "";
	o.prefix_len = strlen(o.prefix);
	rv = kos_hsm_run(hsm, tok, list_op, &o);
	if (rv == KOS_OK && o.n > 1)
		qsort(o.labels, o.n, sizeof(*o.labels), cmp_labels);
	/* each pair once, in label order; fn runs with the session back in the pool */
	for (i = 0; rv == KOS_OK && i < o.n; i++)
		if (i == 0 || strcmp(o.labels[i], o.labels[i - 1]) != 0)
			rv = fn(o.labels[i], arg);
	list_reset(&o);
	return rv;
}

/* --- PEM ---------------------------------------------------------------------- */

kos_rv kos_spki_to_pem(const uint8_t *spki, size_t len, char **pem)
{
	const unsigned char *p = spki;
	EVP_PKEY *pkey = NULL;
	BIO *bio = NULL;
	char *text, *out = NULL;
	long n;
	kos_rv rv;

	if (pem == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_spki_to_pem: bad arguments");
	*pem = NULL;
	if (spki == NULL || len == 0 || len > SPKI_MAX)
		return kos_error_set(KOS_E_PARSE, "a public key is 1 to %d bytes of DER", SPKI_MAX);
	pkey = d2i_PUBKEY(NULL, &p, (long)len);
	if (pkey == NULL || (size_t)(p - spki) != len) {
		rv = kos_error_set(KOS_E_PARSE, "not a DER SubjectPublicKeyInfo");
		goto out;
	}
	bio = BIO_new(BIO_s_mem());
	if (bio == NULL || PEM_write_bio_PUBKEY(bio, pkey) != 1) {
		rv = kos_error_set(KOS_E_NOMEM, "cannot write the public key as PEM");
		goto out;
	}
	n = BIO_get_mem_data(bio, &text);
	if (n <= 0 || (out = malloc((size_t)n + 1)) == NULL) {
		rv = kos_error_set(KOS_E_NOMEM, "out of memory");
		goto out;
	}
	memcpy(out, text, (size_t)n);
	out[n] = '\0';
	*pem = out;
	rv = KOS_OK;
out:
	BIO_free(bio);
	EVP_PKEY_free(pkey);
	return rv;
}
