/* Object management and key management: the objects are views of the keys
 * the credential's scope reaches (kos_client_keys_find), found with kosd's
 * name and type filter so that one key among thousands costs one request.
 * A signing key is a private key, a public key and, when kosd stores one,
 * a certificate, all with CKA_ID and CKA_LABEL the key's name; a DEK is
 * one secret key per version kosd still decrypts with: the current
 * version labelled NAME, each older one NAME@VERSION (a name kos never
 * gives a key), which only decrypts. Nothing here makes key material
 * readable: CKA_VALUE of a key is sensitive, objects are neither modifiable,
 * copyable nor destroyable, and no key is wrapped or derived, whatever the
 * caller's tier. */
#include "config.h"

#include "pkcs11/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

struct kosp11_object **kosp11_objects;
size_t kosp11_nobjects;
static size_t kosp11_objects_cap;

/* DER of the curves' identifiers (CKA_EC_PARAMS): prime256v1, and for
 * Ed25519 the RFC 8410 OID 1.3.101.112, the form OpenSSL and OpenSC 0.23
 * read; generation also takes PKCS#11 3.0's PrintableString "edwards25519"
 * and the older 1.3.6.1.4.1.11591.15.1. */
static const uint8_t kosp11_p256_oid[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
					   0x3d, 0x03, 0x01, 0x07 };
static const uint8_t kosp11_ed25519_oid[] = { 0x06, 0x03, 0x2b, 0x65, 0x70 };
static const uint8_t kosp11_ed25519_str[] = { 0x13, 0x0c, 'e', 'd', 'w', 'a', 'r', 'd', 's',
					      '2', '5', '5', '1', '9' };
static const uint8_t kosp11_ed25519_gnu[] = { 0x06, 0x09, 0x2b, 0x06, 0x01, 0x04, 0x01,
					      0xda, 0x47, 0x0f, 0x01 };

void kosp11_objects_free(bool forget)
{
	(void)forget; /* objects hold no connection */
	for (size_t i = 0; i < kosp11_nobjects; i++) {
		free(kosp11_objects[i]->spki);
		free(kosp11_objects[i]->cert);
		free(kosp11_objects[i]);
	}
	free(kosp11_objects);
	kosp11_objects = NULL;
	kosp11_nobjects = kosp11_objects_cap = 0;
}

struct kosp11_object *kosp11_object_get(CK_OBJECT_HANDLE h)
{
	if (h == CK_INVALID_HANDLE || h > kosp11_nobjects)
		return NULL;
	return kosp11_objects[h - 1];
}

CK_OBJECT_HANDLE kosp11_object_handle(const struct kosp11_object *o)
{
	for (size_t i = 0; i < kosp11_nobjects; i++)
		if (kosp11_objects[i] == o)
			return i + 1;
	return CK_INVALID_HANDLE;
}

size_t kosp11_sig_len(kos_key_type t)
{
	switch (t) {
	case KOS_KEY_EC_P256:
	case KOS_KEY_ED25519:
		return 64;
	case KOS_KEY_RSA_2048:
		return 256;
	case KOS_KEY_RSA_3072:
		return 384;
	default:
		return 0;
	}
}

static bool is_private_kind(enum kosp11_kind k)
{
	return k == KOSP11_PRIV || k == KOSP11_SECRET;
}

/* With the lock held: the object of (slot, kind, name, version), made when
 * new; NULL when out of memory. */
static struct kosp11_object *object_upsert(size_t slot, enum kosp11_kind kind, const char *name,
					   kos_key_type type, uint32_t version)
{
	struct kosp11_object *o;

	for (size_t i = 0; i < kosp11_nobjects; i++) {
		o = kosp11_objects[i];
		if (o->slot == slot && o->kind == kind && o->version == version &&
		    strcmp(o->name, name) == 0) {
			o->type = type;
			return o;
		}
	}
	if (kosp11_nobjects == kosp11_objects_cap) {
		size_t cap = kosp11_objects_cap ? kosp11_objects_cap * 2 : 64;
		struct kosp11_object **n = realloc(kosp11_objects, cap * sizeof(*n));

		if (n == NULL)
			return NULL;
		kosp11_objects = n;
		kosp11_objects_cap = cap;
	}
	if ((o = calloc(1, sizeof(*o))) == NULL)
		return NULL;
	o->slot = slot;
	o->kind = kind;
	o->type = type;
	o->version = version;
	snprintf(o->name, sizeof(o->name), "%s", name);
	kosp11_objects[kosp11_nobjects++] = o;
	return o;
}

/* --- attributes ------------------------------------------------------------ */

struct attr_val {
	const void *p;
	size_t len;
	CK_BBOOL b;
	CK_ULONG ul;
	uint8_t buf[1100];
	CK_MECHANISM_TYPE mechs[12];
};

static void set_bool(struct attr_val *v, bool b)
{
	v->b = b ? CK_TRUE : CK_FALSE;
	v->p = &v->b;
	v->len = sizeof(v->b);
}

static void set_ulong(struct attr_val *v, CK_ULONG ul)
{
	v->ul = ul;
	v->p = &v->ul;
	v->len = sizeof(v->ul);
}

static void set_bytes(struct attr_val *v, const void *p, size_t len)
{
	v->p = p;
	v->len = len;
}

static void set_copy(struct attr_val *v, const void *p, size_t len)
{
	if (len > sizeof(v->buf))
		len = 0;
	memcpy(v->buf, p, len);
	v->p = v->buf;
	v->len = len;
}

/* The object's label and CKA_ID: the name, NAME@VERSION for a DEK's older
 * version. */
static size_t object_label(const struct kosp11_object *o, char *out, size_t len)
{
	if (o->kind == KOSP11_SECRET && o->version != o->current && o->current != 0)
		return (size_t)snprintf(out, len, "%s@%u", o->name, o->version);
	return (size_t)snprintf(out, len, "%s", o->name);
}

static CK_KEY_TYPE ck_key_type(kos_key_type t)
{
	switch (t) {
	case KOS_KEY_EC_P256:
		return CKK_EC;
	case KOS_KEY_ED25519:
		return CKK_EC_EDWARDS;
	case KOS_KEY_RSA_2048:
	case KOS_KEY_RSA_3072:
		return CKK_RSA;
	default:
		return CKK_AES;
	}
}

static size_t allowed_mechs(kos_key_type t, CK_MECHANISM_TYPE *m)
{
	static const CK_MECHANISM_TYPE ec[] = { CKM_ECDSA, CKM_ECDSA_SHA256, CKM_ECDSA_SHA384,
						CKM_ECDSA_SHA512 };
	static const CK_MECHANISM_TYPE ed[] = { CKM_EDDSA };
	static const CK_MECHANISM_TYPE rsa[] = { CKM_RSA_PKCS,		  CKM_SHA256_RSA_PKCS,
						 CKM_SHA384_RSA_PKCS,	  CKM_SHA512_RSA_PKCS,
						 CKM_RSA_PKCS_PSS,	  CKM_SHA256_RSA_PKCS_PSS,
						 CKM_SHA384_RSA_PKCS_PSS, CKM_SHA512_RSA_PKCS_PSS };
	static const CK_MECHANISM_TYPE dek[] = { CKM_AES_GCM, CKM_KOS_ENVELOPE };
	const CK_MECHANISM_TYPE *src = dek;
	size_t n = 2;

	switch (t) {
	case KOS_KEY_EC_P256:
		src = ec, n = 4;
		break;
	case KOS_KEY_ED25519:
		src = ed, n = 1;
		break;
	case KOS_KEY_RSA_2048:
	case KOS_KEY_RSA_3072:
		src = rsa, n = 8;
		break;
	default:
		break;
	}
	memcpy(m, src, n * sizeof(*m));
	return n;
}

static bool needs_spki(CK_ATTRIBUTE_TYPE t)
{
	return t == CKA_EC_POINT || t == CKA_MODULUS || t == CKA_PUBLIC_EXPONENT ||
	       t == CKA_PUBLIC_KEY_INFO;
}

static bool needs_cert(CK_ATTRIBUTE_TYPE t)
{
	return t == CKA_VALUE || t == CKA_SUBJECT || t == CKA_ISSUER || t == CKA_SERIAL_NUMBER ||
	       t == CKA_CHECK_VALUE;
}

/* Attributes computed from the public key. */
static CK_RV spki_attr(const struct kosp11_object *o, CK_ATTRIBUTE_TYPE t, struct attr_val *v)
{
	const uint8_t *p = o->spki;
	EVP_PKEY *pk;
	CK_RV rv = CKR_ATTRIBUTE_TYPE_INVALID;

	if (o->spki == NULL)
		return CKR_DEVICE_ERROR;
	if (t == CKA_PUBLIC_KEY_INFO) {
		set_bytes(v, o->spki, o->spki_len);
		return CKR_OK;
	}
	if ((pk = d2i_PUBKEY(NULL, &p, (long)o->spki_len)) == NULL)
		return CKR_DEVICE_ERROR;
	if (t == CKA_EC_POINT && (o->type == KOS_KEY_EC_P256 || o->type == KOS_KEY_ED25519)) {
		uint8_t pt[133];
		size_t n = 0;
		int ok;

		if (o->type == KOS_KEY_EC_P256) {
			ok = EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_PUB_KEY, pt,
							     sizeof(pt), &n);
		} else {
			n = sizeof(pt);
			ok = EVP_PKEY_get_raw_public_key(pk, pt, &n);
		}
		/* a DER OCTET STRING holding the point (X9.62 uncompressed, or
		 * the 32 bytes of an Ed25519 key) */
		if (ok == 1 && n < 128) {
			v->buf[0] = 0x04;
			v->buf[1] = (uint8_t)n;
			memcpy(v->buf + 2, pt, n);
			set_bytes(v, v->buf, n + 2);
			rv = CKR_OK;
		} else {
			rv = CKR_DEVICE_ERROR;
		}
	} else if ((t == CKA_MODULUS || t == CKA_PUBLIC_EXPONENT) &&
		   ck_key_type(o->type) == CKK_RSA) {
		BIGNUM *bn = NULL;

		if (EVP_PKEY_get_bn_param(pk, t == CKA_MODULUS ? OSSL_PKEY_PARAM_RSA_N :
								  OSSL_PKEY_PARAM_RSA_E,
					  &bn) == 1 &&
		    BN_num_bytes(bn) <= (int)sizeof(v->buf)) {
			set_bytes(v, v->buf, (size_t)BN_bn2bin(bn, v->buf));
			rv = CKR_OK;
		} else {
			rv = CKR_DEVICE_ERROR;
		}
		BN_free(bn);
	}
	EVP_PKEY_free(pk);
	return rv;
}

static CK_RV cert_attr(const struct kosp11_object *o, CK_ATTRIBUTE_TYPE t, struct attr_val *v)
{
	const uint8_t *p = o->cert;
	X509 *x;
	uint8_t *der = NULL;
	int n = -1;

	if (t == CKA_VALUE) {
		set_bytes(v, o->cert, o->cert_len);
		return CKR_OK;
	}
	if (t == CKA_CHECK_VALUE) {
		uint8_t md[SHA_DIGEST_LENGTH];

		SHA1(o->cert, o->cert_len, md);
		set_copy(v, md, 3);
		return CKR_OK;
	}
	if ((x = d2i_X509(NULL, &p, (long)o->cert_len)) == NULL)
		return CKR_DEVICE_ERROR;
	if (t == CKA_SUBJECT)
		n = i2d_X509_NAME(X509_get_subject_name(x), &der);
	else if (t == CKA_ISSUER)
		n = i2d_X509_NAME(X509_get_issuer_name(x), &der);
	else if (t == CKA_SERIAL_NUMBER)
		n = i2d_ASN1_INTEGER(X509_get0_serialNumber(x), &der);
	X509_free(x);
	if (n < 0 || (size_t)n > sizeof(v->buf)) {
		OPENSSL_free(der);
		return CKR_DEVICE_ERROR;
	}
	set_copy(v, der, (size_t)n);
	OPENSSL_free(der);
	return CKR_OK;
}

/* With the lock held: attribute t of object o. */
static CK_RV attr_of(const struct kosp11_object *o, CK_ATTRIBUTE_TYPE t, struct attr_val *v)
{
	static const CK_OBJECT_CLASS classes[] = { CKO_PRIVATE_KEY, CKO_PUBLIC_KEY,
						   CKO_CERTIFICATE, CKO_SECRET_KEY };
	bool key = o->kind != KOSP11_CERT, priv = is_private_kind(o->kind);
	bool ec = o->type == KOS_KEY_EC_P256, ed = o->type == KOS_KEY_ED25519;
	bool rsa = ck_key_type(o->type) == CKK_RSA, secret = o->kind == KOSP11_SECRET;
	bool pub = o->kind == KOSP11_PUB, signing = o->kind == KOSP11_PRIV;
	char label[KOS_KEY_NAME_MAX + 16];
	size_t n;

	memset(v, 0, offsetof(struct attr_val, buf));
	switch (t) {
	case CKA_CLASS:
		set_ulong(v, classes[o->kind]);
		return CKR_OK;
	case CKA_TOKEN:
		set_bool(v, true);
		return CKR_OK;
	case CKA_PRIVATE:
		set_bool(v, priv);
		return CKR_OK;
	case CKA_MODIFIABLE:
	case CKA_COPYABLE:
	case CKA_DESTROYABLE:
		set_bool(v, false);
		return CKR_OK;
	case CKA_LABEL:
	case CKA_ID:
		n = object_label(o, label, sizeof(label));
		set_copy(v, label, n);
		return CKR_OK;
	default:
		break;
	}
	if (o->kind == KOSP11_CERT) {
		switch (t) {
		case CKA_CERTIFICATE_TYPE:
			set_ulong(v, CKC_X_509);
			return CKR_OK;
		case CKA_TRUSTED:
			set_bool(v, false);
			return CKR_OK;
		case CKA_CERTIFICATE_CATEGORY:
			set_ulong(v, 0); /* unspecified */
			return CKR_OK;
		case CKA_JAVA_MIDP_SECURITY_DOMAIN:
			set_ulong(v, 0);
			return CKR_OK;
		case CKA_START_DATE:
		case CKA_END_DATE:
		case CKA_URL:
		case CKA_HASH_OF_SUBJECT_PUBLIC_KEY:
		case CKA_HASH_OF_ISSUER_PUBLIC_KEY:
			set_bytes(v, "", 0);
			return CKR_OK;
		default:
			if (needs_cert(t))
				return o->cert != NULL ? cert_attr(o, t, v) : CKR_DEVICE_ERROR;
			return CKR_ATTRIBUTE_TYPE_INVALID;
		}
	}
	(void)key;
	switch (t) {
	case CKA_KEY_TYPE:
		set_ulong(v, ck_key_type(o->type));
		return CKR_OK;
	case CKA_START_DATE:
	case CKA_END_DATE:
		set_bytes(v, "", 0);
		return CKR_OK;
	case CKA_DERIVE:
	case CKA_WRAP:
	case CKA_UNWRAP:
	case CKA_SIGN_RECOVER:
	case CKA_VERIFY_RECOVER:
	case CKA_TRUSTED:
	case CKA_WRAP_WITH_TRUSTED:
	case CKA_ALWAYS_AUTHENTICATE:
		if ((t == CKA_SIGN_RECOVER || t == CKA_ALWAYS_AUTHENTICATE ||
		     t == CKA_WRAP_WITH_TRUSTED) && pub)
			return CKR_ATTRIBUTE_TYPE_INVALID;
		if ((t == CKA_VERIFY_RECOVER || t == CKA_TRUSTED) && signing)
			return CKR_ATTRIBUTE_TYPE_INVALID;
		set_bool(v, false);
		return CKR_OK;
	case CKA_LOCAL:
		set_bool(v, true); /* made inside kosd's HSMs, never imported */
		return CKR_OK;
	case CKA_KEY_GEN_MECHANISM:
		set_ulong(v, secret ? CKM_AES_KEY_GEN :
			     ec	    ? CKM_EC_KEY_PAIR_GEN :
			     ed	    ? CKM_EC_EDWARDS_KEY_PAIR_GEN :
				      CKM_RSA_PKCS_KEY_PAIR_GEN);
		return CKR_OK;
	case CKA_ALLOWED_MECHANISMS:
		n = allowed_mechs(o->type, v->mechs);
		set_bytes(v, v->mechs, n * sizeof(v->mechs[0]));
		return CKR_OK;
	case CKA_SIGN:
		set_bool(v, signing);
		return CKR_OK;
	case CKA_VERIFY:
		set_bool(v, pub);
		return CKR_OK;
	case CKA_ENCRYPT:
		/* an older DEK version only decrypts: kos encrypts with the
		 * current one */
		set_bool(v, secret && (o->version == o->current || o->current == 0));
		return CKR_OK;
	case CKA_DECRYPT:
		set_bool(v, secret);
		return CKR_OK;
	case CKA_SUBJECT:
		if (secret)
			return CKR_ATTRIBUTE_TYPE_INVALID;
		set_bytes(v, "", 0);
		return CKR_OK;
	default:
		break;
	}
	if (priv) {
		switch (t) {
		case CKA_SENSITIVE:
		case CKA_ALWAYS_SENSITIVE:
		case CKA_NEVER_EXTRACTABLE:
			set_bool(v, true);
			return CKR_OK;
		case CKA_EXTRACTABLE:
			set_bool(v, false);
			return CKR_OK;
		default:
			break;
		}
	}
	if (secret) {
		switch (t) {
		case CKA_VALUE_LEN:
			set_ulong(v, KOS_DEK_LEN);
			return CKR_OK;
		case CKA_KOS_KEY_VERSION:
			set_ulong(v, o->version);
			return CKR_OK;
		case CKA_VALUE:
			return CKR_ATTRIBUTE_SENSITIVE;
		default:
			return CKR_ATTRIBUTE_TYPE_INVALID;
		}
	}
	/* signing keys, both halves */
	if ((ec || ed) && t == CKA_EC_PARAMS) {
		if (ec)
			set_bytes(v, kosp11_p256_oid, sizeof(kosp11_p256_oid));
		else
			set_bytes(v, kosp11_ed25519_oid, sizeof(kosp11_ed25519_oid));
		return CKR_OK;
	}
	if (rsa && t == CKA_MODULUS_BITS) {
		set_ulong(v, o->type == KOS_KEY_RSA_2048 ? 2048 : 3072);
		return CKR_OK;
	}
	if (needs_spki(t)) {
		if (t == CKA_EC_POINT && !(ec || ed))
			return CKR_ATTRIBUTE_TYPE_INVALID;
		if ((t == CKA_MODULUS || t == CKA_PUBLIC_EXPONENT) && !rsa)
			return CKR_ATTRIBUTE_TYPE_INVALID;
		return spki_attr(o, t, v);
	}
	if (signing && (t == CKA_VALUE || t == CKA_PRIVATE_EXPONENT || t == CKA_PRIME_1 ||
			t == CKA_PRIME_2 || t == CKA_EXPONENT_1 || t == CKA_EXPONENT_2 ||
			t == CKA_COEFFICIENT))
		return (t == CKA_VALUE) == !rsa ? CKR_ATTRIBUTE_SENSITIVE :
						  CKR_ATTRIBUTE_TYPE_INVALID;
	return CKR_ATTRIBUTE_TYPE_INVALID;
}

/* With the lock held: the session's object h, visible to it. */
static CK_RV visible_object(const struct kosp11_session *s, CK_OBJECT_HANDLE h,
			    struct kosp11_object **out)
{
	struct kosp11_object *o = kosp11_object_get(h);

	if (o == NULL || o->slot != s->slot)
		return CKR_OBJECT_HANDLE_INVALID;
	if (is_private_kind(o->kind) && !kosp11_logged_in(s->slot))
		return CKR_OBJECT_HANDLE_INVALID;
	*out = o;
	return CKR_OK;
}

static CK_RV fetch_spki(kos_client *c, const char *name, uint8_t **der, size_t *len,
			enum kosp11_ctx ctx)
{
	char *pem = NULL;
	BIO *b;
	EVP_PKEY *pk = NULL;
	kos_rv krv;
	int n;

	*der = NULL;
	krv = kos_client_pubkey(c, name, &pem);
	if (krv != KOS_OK)
		return kosp11_client_rv(c, krv, ctx);
	b = BIO_new_mem_buf(pem, -1);
	if (b != NULL)
		pk = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
	BIO_free(b);
	kos_free(pem);
	if (pk == NULL)
		return CKR_DEVICE_ERROR;
	n = i2d_PUBKEY(pk, der);
	EVP_PKEY_free(pk);
	if (n <= 0)
		return CKR_HOST_MEMORY;
	*len = (size_t)n;
	return CKR_OK;
}

/* Without the lock: makes sure object h knows its public key. */
static CK_RV ensure_spki(CK_OBJECT_HANDLE h, enum kosp11_ctx ctx)
{
	struct kosp11_object *o;
	char name[KOS_KEY_NAME_MAX + 1];
	uint32_t current;
	size_t slot, len = 0;
	uint8_t *der = NULL;
	kos_client *c = NULL;
	uint64_t gen = 0;
	CK_RV rv;

	if ((rv = kosp11_enter()) != CKR_OK)
		return rv;
	if ((o = kosp11_object_get(h)) == NULL || o->kind == KOSP11_CERT ||
	    o->kind == KOSP11_SECRET) {
		kosp11_leave();
		return CKR_KEY_HANDLE_INVALID;
	}
	if (o->spki != NULL && o->spki_version == o->current) {
		kosp11_leave();
		return CKR_OK;
	}
	snprintf(name, sizeof(name), "%s", o->name);
	current = o->current;
	slot = o->slot;
	kosp11_leave();
	if ((rv = kosp11_pool_get(slot, true, &c, &gen)) != CKR_OK)
		return rv;
	rv = fetch_spki(c, name, &der, &len, ctx);
	kosp11_pool_put(slot, c, gen);
	if (rv != CKR_OK)
		return rv;
	pthread_mutex_lock(&kosp11_lock);
	if (kosp11_check_locked() == CKR_OK && (o = kosp11_object_get(h)) != NULL) {
		free(o->spki);
		o->spki = der;
		o->spki_len = len;
		o->spki_version = current;
		der = NULL;
	}
	pthread_mutex_unlock(&kosp11_lock);
	OPENSSL_free(der);
	return CKR_OK;
}

CK_RV kosp11_object_pubkey(CK_OBJECT_HANDLE h, enum kosp11_ctx ctx, EVP_PKEY **pk)
{
	struct kosp11_object *o;
	const uint8_t *p;
	CK_RV rv;

	*pk = NULL;
	if ((rv = ensure_spki(h, ctx)) != CKR_OK)
		return rv;
	if ((rv = kosp11_enter()) != CKR_OK)
		return rv;
	o = kosp11_object_get(h);
	if (o != NULL && o->spki != NULL) {
		p = o->spki;
		*pk = d2i_PUBKEY(NULL, &p, (long)o->spki_len);
	}
	kosp11_leave();
	return *pk != NULL ? CKR_OK : CKR_DEVICE_ERROR;
}

/* --- finding --------------------------------------------------------------- */

struct key_list {
	kos_client_key *k;
	size_t n, cap;
	bool oom;
};

static int collect_key(const kos_client_key *k, void *arg)
{
	struct key_list *l = arg;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		kos_client_key *n = realloc(l->k, cap * sizeof(*n));

		if (n == NULL) {
			l->oom = true;
			return 1;
		}
		l->k = n;
		l->cap = cap;
	}
	l->k[l->n++] = *k;
	return 0;
}

/* What a template says about the keys that can match it. */
struct find_hint {
	bool none;	 /* nothing can match: ask nobody */
	char name[KOS_KEY_NAME_MAX + 1];
	const char *type; /* kosd's type filter, NULL: any */
	bool rsa_only;
	bool want_cert, want_spki;
	CK_OBJECT_CLASS cls;
	bool has_cls;
};

static void hint_name(struct find_hint *h, const void *p, CK_ULONG len)
{
	char buf[KOS_KEY_NAME_MAX + 16], *at;

	if (p == NULL || len == 0 || len >= sizeof(buf)) {
		h->none = true;
		return;
	}
	memcpy(buf, p, len);
	buf[len] = '\0';
	if ((at = strchr(buf, '@')) != NULL)
		*at = '\0';
	if (!kos_key_name_valid(buf) || (h->name[0] != '\0' && strcmp(h->name, buf) != 0)) {
		h->none = true;
		return;
	}
	memcpy(h->name, buf, strlen(buf) + 1); /* a valid name fits */
}

static CK_RV template_hint(const CK_ATTRIBUTE *t, CK_ULONG n, struct find_hint *h)
{
	bool key_type = false;

	memset(h, 0, sizeof(*h));
	for (CK_ULONG i = 0; i < n; i++) {
		if (t[i].pValue == NULL && t[i].ulValueLen != 0)
			return CKR_ARGUMENTS_BAD;
		if (needs_spki(t[i].type))
			h->want_spki = true;
		switch (t[i].type) {
		case CKA_LABEL:
		case CKA_ID:
			hint_name(h, t[i].pValue, t[i].ulValueLen);
			break;
		case CKA_CLASS:
			if (t[i].ulValueLen != sizeof(CK_OBJECT_CLASS))
				return CKR_ATTRIBUTE_VALUE_INVALID;
			memcpy(&h->cls, t[i].pValue, sizeof(h->cls));
			h->has_cls = true;
			if (h->cls == CKO_SECRET_KEY)
				h->type = "dek";
			else if (h->cls != CKO_PRIVATE_KEY && h->cls != CKO_PUBLIC_KEY &&
				 h->cls != CKO_CERTIFICATE)
				h->none = true;
			break;
		case CKA_KEY_TYPE: {
			CK_KEY_TYPE kt;
			const char *ty = NULL;

			if (t[i].ulValueLen != sizeof(kt))
				return CKR_ATTRIBUTE_VALUE_INVALID;
			memcpy(&kt, t[i].pValue, sizeof(kt));
			key_type = true;
			if (kt == CKK_EC)
				ty = "ec-p256";
			else if (kt == CKK_EC_EDWARDS)
				ty = "ed25519";
			else if (kt == CKK_AES)
				ty = "dek";
			else if (kt == CKK_RSA)
				h->rsa_only = true;
			else
				h->none = true;
			if (ty != NULL) {
				if (h->type != NULL && strcmp(h->type, ty) != 0)
					h->none = true;
				h->type = ty;
			}
			break;
		}
		default:
			break;
		}
	}
	if (h->type != NULL && h->rsa_only)
		h->none = true;
	/* certificates have no CKA_KEY_TYPE */
	h->want_cert = !key_type && (!h->has_cls || h->cls == CKO_CERTIFICATE);
	return CKR_OK;
}

/* With the lock held: whether o matches every attribute of the template. */
static bool object_matches(const struct kosp11_object *o, const CK_ATTRIBUTE *t, CK_ULONG n)
{
	struct attr_val v;

	for (CK_ULONG i = 0; i < n; i++) {
		if (attr_of(o, t[i].type, &v) != CKR_OK || v.len != t[i].ulValueLen ||
		    (v.len > 0 && memcmp(v.p, t[i].pValue, v.len) != 0))
			return false;
	}
	return true;
}

struct cert_fetch {
	uint8_t *der;
	size_t len;
	bool present;
};

static CK_RV find_keys(struct kosp11_session *s, const CK_ATTRIBUTE *t, CK_ULONG n)
{
	struct key_list keys = { 0 };
	struct cert_fetch *certs = NULL;
	struct spki_fetch {
		uint8_t *der;
		size_t len;
	} *spkis = NULL;
	struct find_hint h;
	kos_client *c = NULL;
	uint64_t gen = 0;
	bool user;
	kos_rv krv;
	CK_RV rv;

	if ((rv = template_hint(t, n, &h)) != CKR_OK)
		return rv;
	if (h.none)
		return CKR_OK;
	rv = kosp11_pool_get(s->slot, true, &c, &gen);
	if (rv == CKR_USER_NOT_LOGGED_IN)
		return CKR_OK; /* no credential: no object is visible */
	if (rv != CKR_OK)
		return rv;
	pthread_mutex_lock(&kosp11_lock);
	user = kosp11_logged_in(s->slot);
	pthread_mutex_unlock(&kosp11_lock);
	krv = kos_client_keys_find(c, h.name[0] != '\0' ? h.name : NULL, h.type, collect_key,
				   &keys);
	if (keys.oom) {
		rv = CKR_HOST_MEMORY;
		goto out;
	}
	if (krv != KOS_OK) {
		rv = kosp11_client_rv(c, krv, KOSP11_CTX_FIND);
		goto out;
	}
	if (keys.n > 0 && ((certs = calloc(keys.n, sizeof(*certs))) == NULL ||
			   (spkis = calloc(keys.n, sizeof(*spkis))) == NULL)) {
		rv = CKR_HOST_MEMORY;
		goto out;
	}
	for (size_t i = 0; i < keys.n; i++) {
		kos_key_type kt;

		if (kos_key_type_parse(keys.k[i].type, &kt) != KOS_OK || kt == KOS_KEY_DEK)
			continue;
		if (h.want_cert) {
			krv = kos_client_cert_get(c, keys.k[i].name, 0, &certs[i].der,
						  &certs[i].len);
			if (krv == KOS_OK) {
				certs[i].present = true;
			} else if (kos_client_last_refusal(c) == KOS_CLIENT_REFUSAL_UNAVAILABLE) {
				rv = CKR_DEVICE_ERROR;
				goto out;
			}
		}
		if (h.want_spki) {
			rv = fetch_spki(c, keys.k[i].name, &spkis[i].der, &spkis[i].len,
					KOSP11_CTX_FIND);
			if (rv == CKR_DEVICE_ERROR || rv == CKR_HOST_MEMORY)
				goto out;
			rv = CKR_OK;
		}
	}
	pthread_mutex_lock(&kosp11_lock);
	if ((rv = kosp11_check_locked()) != CKR_OK)
		goto unlock;
	for (size_t i = 0; i < keys.n; i++) {
		const kos_client_key *k = &keys.k[i];
		struct kosp11_object *o[3] = { NULL, NULL, NULL };
		size_t no = 0;
		kos_key_type kt;

		if (kos_key_type_parse(k->type, &kt) != KOS_OK)
			continue;
		if (h.rsa_only && ck_key_type(kt) != CKK_RSA)
			continue;
		if (kt == KOS_KEY_DEK) {
			if (!user)
				continue;
			for (uint32_t v = k->current; v >= 1 && v >= k->min_version; v--) {
				struct kosp11_object *d = object_upsert(s->slot, KOSP11_SECRET,
									k->name, kt, v);

				if (d == NULL) {
					rv = CKR_HOST_MEMORY;
					goto unlock;
				}
				d->current = k->current;
				d->min_version = k->min_version;
				if (object_matches(d, t, n)) {
					CK_OBJECT_HANDLE *f = realloc(
						s->found, (s->nfound + 1) * sizeof(*f));

					if (f == NULL) {
						rv = CKR_HOST_MEMORY;
						goto unlock;
					}
					s->found = f;
					s->found[s->nfound++] = kosp11_object_handle(d);
				}
			}
			continue;
		}
		if (user)
			o[no++] = object_upsert(s->slot, KOSP11_PRIV, k->name, kt, 0);
		o[no++] = object_upsert(s->slot, KOSP11_PUB, k->name, kt, 0);
		if (certs != NULL && certs[i].present) {
			o[no] = object_upsert(s->slot, KOSP11_CERT, k->name, kt, 0);
			if (o[no] != NULL) {
				free(o[no]->cert);
				o[no]->cert = certs[i].der;
				o[no]->cert_len = certs[i].len;
				certs[i].der = NULL;
			}
			no++;
		}
		for (size_t j = 0; j < no; j++) {
			if (o[j] == NULL) {
				rv = CKR_HOST_MEMORY;
				goto unlock;
			}
			o[j]->current = k->current;
			o[j]->min_version = k->min_version;
			if (spkis != NULL && spkis[i].der != NULL && o[j]->kind != KOSP11_CERT) {
				uint8_t *copy = malloc(spkis[i].len);

				if (copy != NULL) {
					memcpy(copy, spkis[i].der, spkis[i].len);
					free(o[j]->spki);
					o[j]->spki = copy;
					o[j]->spki_len = spkis[i].len;
					o[j]->spki_version = k->current;
				}
			}
			if (o[j]->kind == KOSP11_CERT || !h.want_spki || o[j]->spki != NULL) {
				if (!object_matches(o[j], t, n))
					continue;
			} else {
				continue;
			}
			{
				CK_OBJECT_HANDLE *f =
					realloc(s->found, (s->nfound + 1) * sizeof(*f));

				if (f == NULL) {
					rv = CKR_HOST_MEMORY;
					goto unlock;
				}
				s->found = f;
				s->found[s->nfound++] = kosp11_object_handle(o[j]);
			}
		}
	}
unlock:
	pthread_mutex_unlock(&kosp11_lock);
out:
	kosp11_pool_put(s->slot, c, gen);
	for (size_t i = 0; certs != NULL && i < keys.n; i++)
		kos_free(certs[i].der);
	for (size_t i = 0; spkis != NULL && i < keys.n; i++)
		OPENSSL_free(spkis[i].der);
	free(certs);
	free(spkis);
	free(keys.k);
	return rv;
}

CK_RV kosp11_C_FindObjectsInit(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate,
			       CK_ULONG ulCount)
{
	struct kosp11_session *s;
	CK_RV rv;

	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	if (pTemplate == NULL && ulCount > 0) {
		rv = CKR_ARGUMENTS_BAD;
		goto out;
	}
	if (s->finding) {
		rv = CKR_OPERATION_ACTIVE;
		goto out;
	}
	free(s->found);
	s->found = NULL;
	s->nfound = s->next = 0;
	rv = find_keys(s, pTemplate, ulCount);
	if (rv == CKR_OK) {
		s->finding = true;
	} else {
		free(s->found);
		s->found = NULL;
		s->nfound = 0;
	}
out:
	kosp11_session_put(s);
	return rv;
}

CK_RV kosp11_C_FindObjects(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR phObject,
			   CK_ULONG ulMaxObjectCount, CK_ULONG_PTR pulObjectCount)
{
	struct kosp11_session *s;
	CK_RV rv;

	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	if (phObject == NULL || pulObjectCount == NULL) {
		rv = CKR_ARGUMENTS_BAD;
	} else if (!s->finding) {
		rv = CKR_OPERATION_NOT_INITIALIZED;
	} else {
		CK_ULONG k = 0;

		while (k < ulMaxObjectCount && s->next < s->nfound)
			phObject[k++] = s->found[s->next++];
		*pulObjectCount = k;
	}
	kosp11_session_put(s);
	return rv;
}

CK_RV kosp11_C_FindObjectsFinal(CK_SESSION_HANDLE hSession)
{
	struct kosp11_session *s;
	CK_RV rv;

	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	if (!s->finding) {
		rv = CKR_OPERATION_NOT_INITIALIZED;
	} else {
		s->finding = false;
		free(s->found);
		s->found = NULL;
		s->nfound = s->next = 0;
	}
	kosp11_session_put(s);
	return rv;
}

/* --- attributes through the API -------------------------------------------- */

CK_RV kosp11_C_GetAttributeValue(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
				 CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount)
{
	struct kosp11_session *s;
	struct kosp11_object *o;
	struct attr_val v;
	bool spki = false;
	CK_RV rv, one;

	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	if (pTemplate == NULL && ulCount > 0) {
		rv = CKR_ARGUMENTS_BAD;
		goto out;
	}
	pthread_mutex_lock(&kosp11_lock);
	rv = visible_object(s, hObject, &o);
	if (rv == CKR_OK && o->kind != KOSP11_CERT && o->kind != KOSP11_SECRET)
		for (CK_ULONG i = 0; i < ulCount; i++)
			if (needs_spki(pTemplate[i].type) &&
			    (o->spki == NULL || o->spki_version != o->current))
				spki = true;
	pthread_mutex_unlock(&kosp11_lock);
	if (rv != CKR_OK)
		goto out;
	if (spki && (rv = ensure_spki(hObject, KOSP11_CTX_FIND)) != CKR_OK) {
		if (rv == CKR_KEY_HANDLE_INVALID)
			rv = CKR_OBJECT_HANDLE_INVALID;
		goto out;
	}
	pthread_mutex_lock(&kosp11_lock);
	/* each attribute answered on its own; the call's result is the
	 * last problem met (PKCS#11 2.40, C_GetAttributeValue) */
	for (CK_ULONG i = 0; i < ulCount; i++) {
		CK_ATTRIBUTE *a = &pTemplate[i];

		one = attr_of(o, a->type, &v);
		if (one != CKR_OK) {
			a->ulValueLen = CK_UNAVAILABLE_INFORMATION;
			if (one == CKR_ATTRIBUTE_SENSITIVE || one == CKR_ATTRIBUTE_TYPE_INVALID)
				rv = one;
			else if (rv == CKR_OK)
				rv = one;
		} else if (a->pValue == NULL) {
			a->ulValueLen = v.len;
		} else if (a->ulValueLen < v.len) {
			a->ulValueLen = CK_UNAVAILABLE_INFORMATION;
			rv = CKR_BUFFER_TOO_SMALL;
		} else {
			memcpy(a->pValue, v.p, v.len);
			a->ulValueLen = v.len;
		}
	}
	OPENSSL_cleanse(&v, sizeof(v));
	pthread_mutex_unlock(&kosp11_lock);
out:
	kosp11_session_put(s);
	return rv;
}

/* Objects are views of kosd's keys: nothing on them changes through
 * PKCS#11, least of all what keeps a key inside (CKA_EXTRACTABLE,
 * CKA_SENSITIVE). */
CK_RV kosp11_C_SetAttributeValue(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
				 CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount)
{
	struct kosp11_session *s;
	struct kosp11_object *o;
	CK_RV rv;

	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	pthread_mutex_lock(&kosp11_lock);
	rv = visible_object(s, hObject, &o);
	pthread_mutex_unlock(&kosp11_lock);
	if (rv == CKR_OK)
		rv = pTemplate == NULL && ulCount > 0 ? CKR_ARGUMENTS_BAD : CKR_ATTRIBUTE_READ_ONLY;
	kosp11_session_put(s);
	return rv;
}

CK_RV kosp11_C_GetObjectSize(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
			     CK_ULONG_PTR pulSize)
{
	struct kosp11_session *s;
	struct kosp11_object *o;
	CK_RV rv;

	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	pthread_mutex_lock(&kosp11_lock);
	rv = visible_object(s, hObject, &o);
	pthread_mutex_unlock(&kosp11_lock);
	if (rv == CKR_OK && pulSize == NULL)
		rv = CKR_ARGUMENTS_BAD;
	else if (rv == CKR_OK)
		*pulSize = CK_UNAVAILABLE_INFORMATION;
	kosp11_session_put(s);
	return rv;
}

CK_RV kosp11_C_CopyObject(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
			  CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phNew)
{
	struct kosp11_session *s;
	struct kosp11_object *o;
	CK_RV rv;

	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	pthread_mutex_lock(&kosp11_lock);
	rv = visible_object(s, hObject, &o);
	pthread_mutex_unlock(&kosp11_lock);
	if (rv == CKR_OK && (phNew == NULL || (pTemplate == NULL && ulCount > 0)))
		rv = CKR_ARGUMENTS_BAD;
	else if (rv == CKR_OK)
		rv = CKR_ACTION_PROHIBITED; /* CKA_COPYABLE is false */
	kosp11_session_put(s);
	return rv;
}

/* kosd has no route that deletes a key or a certificate (keys are
 * retired version by version with kosctl): refused. */
CK_RV kosp11_C_DestroyObject(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject)
{
	struct kosp11_session *s;
	struct kosp11_object *o;
	CK_RV rv;

	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	pthread_mutex_lock(&kosp11_lock);
	rv = visible_object(s, hObject, &o);
	pthread_mutex_unlock(&kosp11_lock);
	if (rv == CKR_OK)
		rv = CKR_ACTION_PROHIBITED;
	kosp11_session_put(s);
	return rv;
}

/* --- creating -------------------------------------------------------------- */

static const CK_ATTRIBUTE *find_attr(const CK_ATTRIBUTE *t, CK_ULONG n, CK_ATTRIBUTE_TYPE type)
{
	for (CK_ULONG i = 0; i < n; i++)
		if (t[i].type == type)
			return &t[i];
	return NULL;
}

static bool attr_bool(const CK_ATTRIBUTE *a, bool *out)
{
	if (a == NULL || a->pValue == NULL || a->ulValueLen != sizeof(CK_BBOOL))
		return false;
	*out = *(const CK_BBOOL *)a->pValue != CK_FALSE;
	return true;
}

/* The key name a template gives in CKA_LABEL and/or CKA_ID (which must
 * agree: a kos key's CKA_ID is its name). */
static CK_RV template_name(const CK_ATTRIBUTE *t, CK_ULONG n, char *name, bool *given)
{
	const CK_ATTRIBUTE *l = find_attr(t, n, CKA_LABEL), *id = find_attr(t, n, CKA_ID);
	char buf[KOS_KEY_NAME_MAX + 1];

	for (int i = 0; i < 2; i++) {
		const CK_ATTRIBUTE *a = i == 0 ? l : id;

		if (a == NULL)
			continue;
		if (a->pValue == NULL || a->ulValueLen == 0 || a->ulValueLen > KOS_KEY_NAME_MAX)
			return CKR_ATTRIBUTE_VALUE_INVALID;
		memcpy(buf, a->pValue, a->ulValueLen);
		buf[a->ulValueLen] = '\0';
		if (!kos_key_name_valid(buf))
			return CKR_ATTRIBUTE_VALUE_INVALID;
		if (*given && strcmp(buf, name) != 0)
			return CKR_TEMPLATE_INCONSISTENT;
		snprintf(name, KOS_KEY_NAME_MAX + 1, "%s", buf);
		*given = true;
	}
	return CKR_OK;
}

/* A key template may ask for nothing that loosens a kos key: no
 * extractable, non-sensitive, session or public private key. Capability
 * flags (CKA_DECRYPT, CKA_WRAP, ...) asked for and not offered are
 * ignored: the object then reports what the key does. */
static CK_RV template_safe(const CK_ATTRIBUTE *t, CK_ULONG n, bool priv)
{
	bool b;

	for (CK_ULONG i = 0; i < n; i++) {
		const CK_ATTRIBUTE *a = &t[i];

		if (a->pValue == NULL && a->ulValueLen != 0)
			return CKR_ARGUMENTS_BAD;
		switch (a->type) {
		case CKA_EXTRACTABLE:
			if (!attr_bool(a, &b) || b)
				return CKR_ATTRIBUTE_VALUE_INVALID;
			break;
		case CKA_SENSITIVE:
			if (!attr_bool(a, &b) || !b)
				return CKR_ATTRIBUTE_VALUE_INVALID;
			break;
		case CKA_TOKEN:
			if (!attr_bool(a, &b) || !b)
				return CKR_ATTRIBUTE_VALUE_INVALID;
			break;
		case CKA_PRIVATE:
			if (!attr_bool(a, &b) || (priv && !b))
				return CKR_ATTRIBUTE_VALUE_INVALID;
			break;
		case CKA_VALUE:
			/* importing key material: kos keys are made in kosd */
			return CKR_ATTRIBUTE_READ_ONLY;
		default:
			break;
		}
	}
	return CKR_OK;
}

static CK_RV check_params(const CK_ATTRIBUTE *a, const uint8_t *const *forms,
			  const size_t *lens, size_t n)
{
	if (a == NULL)
		return CKR_OK;
	for (size_t i = 0; i < n; i++)
		if (a->pValue != NULL && a->ulValueLen == lens[i] &&
		    memcmp(a->pValue, forms[i], lens[i]) == 0)
			return CKR_OK;
	return CKR_CURVE_NOT_SUPPORTED;
}

/* Asks kosd for a new key: POST /v1/admin/keys (admin:keys). */
static CK_RV create_key(struct kosp11_session *s, const char *name, kos_key_type type,
			CK_OBJECT_HANDLE *h1, CK_OBJECT_HANDLE *h2)
{
	kos_client *c = NULL;
	char *body = NULL, *answer = NULL;
	json_t *j;
	uint64_t gen = 0;
	kos_rv krv;
	CK_RV rv;

	if ((rv = kosp11_pool_get(s->slot, false, &c, &gen)) != CKR_OK)
		return rv;
	j = json_pack("{s:s, s:s}", "name", name, "type", kos_key_type_name(type));
	body = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (body == NULL) {
		kosp11_pool_put(s->slot, c, gen);
		return CKR_HOST_MEMORY;
	}
	krv = kos_client_call(c, "POST", "/v1/admin/keys", body, &answer);
	rv = kosp11_client_rv(c, krv, KOSP11_CTX_CREATE);
	kosp11_pool_put(s->slot, c, gen);
	free(body);
	if (answer != NULL)
		kos_secret_free(answer, strlen(answer));
	if (rv != CKR_OK)
		return rv;
	pthread_mutex_lock(&kosp11_lock);
	if ((rv = kosp11_check_locked()) == CKR_OK) {
		struct kosp11_object *a, *b = NULL;

		a = object_upsert(s->slot, type == KOS_KEY_DEK ? KOSP11_SECRET : KOSP11_PRIV,
				  name, type, type == KOS_KEY_DEK ? 1 : 0);
		if (type != KOS_KEY_DEK)
			b = object_upsert(s->slot, KOSP11_PUB, name, type, 0);
		if (a == NULL || (type != KOS_KEY_DEK && b == NULL)) {
			rv = CKR_HOST_MEMORY;
		} else {
			a->current = 1;
			a->min_version = 1;
			*h1 = kosp11_object_handle(a);
			if (b != NULL) {
				b->current = 1;
				b->min_version = 1;
				*h2 = kosp11_object_handle(b);
			}
		}
	}
	pthread_mutex_unlock(&kosp11_lock);
	return rv;
}

/* With the session busy: checks shared by the functions that write. */
static CK_RV writable(const struct kosp11_session *s)
{
	bool user;

	pthread_mutex_lock(&kosp11_lock);
	user = kosp11_logged_in(s->slot);
	pthread_mutex_unlock(&kosp11_lock);
	if (!(s->flags & CKF_RW_SESSION))
		return CKR_SESSION_READ_ONLY;
	return user ? CKR_OK : CKR_USER_NOT_LOGGED_IN;
}

CK_RV kosp11_C_GenerateKeyPair(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
			       CK_ATTRIBUTE_PTR pPub, CK_ULONG ulPub, CK_ATTRIBUTE_PTR pPriv,
			       CK_ULONG ulPriv, CK_OBJECT_HANDLE_PTR phPub,
			       CK_OBJECT_HANDLE_PTR phPriv)
{
	static const uint8_t *const p256[] = { kosp11_p256_oid };
	static const size_t p256_len[] = { sizeof(kosp11_p256_oid) };
	static const uint8_t *const ed[] = { kosp11_ed25519_oid, kosp11_ed25519_str,
					     kosp11_ed25519_gnu };
	static const size_t ed_len[] = { sizeof(kosp11_ed25519_oid), sizeof(kosp11_ed25519_str),
					 sizeof(kosp11_ed25519_gnu) };
	char name[KOS_KEY_NAME_MAX + 1] = "";
	struct kosp11_session *s;
	kos_key_type type;
	const CK_ATTRIBUTE *a;
	bool given = false;
	CK_RV rv;

	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	if (pMechanism == NULL || phPub == NULL || phPriv == NULL ||
	    (pPub == NULL && ulPub > 0) || (pPriv == NULL && ulPriv > 0)) {
		rv = CKR_ARGUMENTS_BAD;
		goto out;
	}
	if ((rv = template_safe(pPub, ulPub, false)) != CKR_OK ||
	    (rv = template_safe(pPriv, ulPriv, true)) != CKR_OK)
		goto out;
	a = find_attr(pPub, ulPub, CKA_EC_PARAMS);
	switch (pMechanism->mechanism) {
	case CKM_EC_KEY_PAIR_GEN:
		type = KOS_KEY_EC_P256;
		if (a == NULL)
			rv = CKR_TEMPLATE_INCOMPLETE;
		else
			rv = check_params(a, p256, p256_len, 1);
		break;
	case CKM_EC_EDWARDS_KEY_PAIR_GEN:
		type = KOS_KEY_ED25519;
		rv = check_params(a, ed, ed_len, 3);
		break;
	case CKM_RSA_PKCS_KEY_PAIR_GEN: {
		const CK_ATTRIBUTE *bits = find_attr(pPub, ulPub, CKA_MODULUS_BITS);
		const CK_ATTRIBUTE *e = find_attr(pPub, ulPub, CKA_PUBLIC_EXPONENT);
		CK_ULONG nb = 0;

		if (bits == NULL) {
			rv = CKR_TEMPLATE_INCOMPLETE;
			break;
		}
		if (bits->pValue == NULL || bits->ulValueLen != sizeof(nb)) {
			rv = CKR_ATTRIBUTE_VALUE_INVALID;
			break;
		}
		memcpy(&nb, bits->pValue, sizeof(nb));
		type = nb == 3072 ? KOS_KEY_RSA_3072 : KOS_KEY_RSA_2048;
		if (nb != 2048 && nb != 3072)
			rv = CKR_ATTRIBUTE_VALUE_INVALID;
		/* kosd's RSA keys have e = 65537 */
		else if (e != NULL && !(e->pValue != NULL &&
					((e->ulValueLen == 3 &&
					  memcmp(e->pValue, "\x01\x00\x01", 3) == 0) ||
					 (e->ulValueLen == 4 &&
					  memcmp(e->pValue, "\x00\x01\x00\x01", 4) == 0))))
			rv = CKR_ATTRIBUTE_VALUE_INVALID;
		break;
	}
	default:
		rv = CKR_MECHANISM_INVALID;
		break;
	}
	if (rv != CKR_OK)
		goto out;
	if (pMechanism->pParameter != NULL || pMechanism->ulParameterLen != 0) {
		rv = CKR_MECHANISM_PARAM_INVALID;
		goto out;
	}
	if ((rv = template_name(pPub, ulPub, name, &given)) != CKR_OK ||
	    (rv = template_name(pPriv, ulPriv, name, &given)) != CKR_OK)
		goto out;
	if (!given) {
		rv = CKR_TEMPLATE_INCOMPLETE; /* the key's name: CKA_LABEL */
		goto out;
	}
	if ((rv = writable(s)) != CKR_OK)
		goto out;
	rv = create_key(s, name, type, phPriv, phPub);
out:
	kosp11_session_put(s);
	return rv;
}

CK_RV kosp11_C_GenerateKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
			   CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phKey)
{
	char name[KOS_KEY_NAME_MAX + 1] = "";
	struct kosp11_session *s;
	const CK_ATTRIBUTE *a;
	bool given = false;
	CK_RV rv;

	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	if (pMechanism == NULL || phKey == NULL || (pTemplate == NULL && ulCount > 0)) {
		rv = CKR_ARGUMENTS_BAD;
		goto out;
	}
	if (pMechanism->mechanism != CKM_AES_KEY_GEN) {
		rv = CKR_MECHANISM_INVALID;
		goto out;
	}
	if ((rv = template_safe(pTemplate, ulCount, true)) != CKR_OK)
		goto out;
	if ((a = find_attr(pTemplate, ulCount, CKA_VALUE_LEN)) != NULL) {
		CK_ULONG len = 0;

		if (a->pValue == NULL || a->ulValueLen != sizeof(len) ||
		    (memcpy(&len, a->pValue, sizeof(len)), len != KOS_DEK_LEN)) {
			rv = CKR_ATTRIBUTE_VALUE_INVALID; /* DEKs are AES-256 */
			goto out;
		}
	}
	if ((a = find_attr(pTemplate, ulCount, CKA_CLASS)) != NULL &&
	    (a->pValue == NULL || a->ulValueLen != sizeof(CK_OBJECT_CLASS) ||
	     *(const CK_OBJECT_CLASS *)a->pValue != CKO_SECRET_KEY)) {
		rv = CKR_TEMPLATE_INCONSISTENT;
		goto out;
	}
	if ((a = find_attr(pTemplate, ulCount, CKA_KEY_TYPE)) != NULL &&
	    (a->pValue == NULL || a->ulValueLen != sizeof(CK_KEY_TYPE) ||
	     *(const CK_KEY_TYPE *)a->pValue != CKK_AES)) {
		rv = CKR_TEMPLATE_INCONSISTENT;
		goto out;
	}
	if ((rv = template_name(pTemplate, ulCount, name, &given)) != CKR_OK)
		goto out;
	if (!given) {
		rv = CKR_TEMPLATE_INCOMPLETE;
		goto out;
	}
	if ((rv = writable(s)) != CKR_OK)
		goto out;
	rv = create_key(s, name, KOS_KEY_DEK, phKey, NULL);
out:
	kosp11_session_put(s);
	return rv;
}

/* Certificates only: kosd stores one beside a signing key (certify:NAME),
 * checking that it carries the key's public key. */
CK_RV kosp11_C_CreateObject(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate,
			    CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phObject)
{
	char name[KOS_KEY_NAME_MAX + 1] = "";
	struct kosp11_session *s;
	const CK_ATTRIBUTE *cls, *ct, *val;
	kos_client *c = NULL;
	uint8_t *der = NULL;
	bool given = false;
	uint64_t gen = 0;
	kos_rv krv;
	CK_RV rv;

	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	if (pTemplate == NULL || phObject == NULL) {
		rv = CKR_ARGUMENTS_BAD;
		goto out;
	}
	cls = find_attr(pTemplate, ulCount, CKA_CLASS);
	ct = find_attr(pTemplate, ulCount, CKA_CERTIFICATE_TYPE);
	val = find_attr(pTemplate, ulCount, CKA_VALUE);
	if (cls == NULL) {
		rv = CKR_TEMPLATE_INCOMPLETE;
		goto out;
	}
	if (cls->pValue == NULL || cls->ulValueLen != sizeof(CK_OBJECT_CLASS) ||
	    *(const CK_OBJECT_CLASS *)cls->pValue != CKO_CERTIFICATE ||
	    (ct != NULL && (ct->pValue == NULL || ct->ulValueLen != sizeof(CK_CERTIFICATE_TYPE) ||
			    *(const CK_CERTIFICATE_TYPE *)ct->pValue != CKC_X_509))) {
		/* keys are made inside kosd, never imported */
		rv = CKR_TEMPLATE_INCONSISTENT;
		goto out;
	}
	if (val == NULL || (rv = template_name(pTemplate, ulCount, name, &given)) != CKR_OK ||
	    !given) {
		rv = rv != CKR_OK ? rv : CKR_TEMPLATE_INCOMPLETE;
		goto out;
	}
	if (val->pValue == NULL || val->ulValueLen == 0 || val->ulValueLen > 16384) {
		rv = CKR_ATTRIBUTE_VALUE_INVALID;
		goto out;
	}
	if ((rv = writable(s)) != CKR_OK)
		goto out;
	if ((der = malloc(val->ulValueLen)) == NULL) {
		rv = CKR_HOST_MEMORY;
		goto out;
	}
	memcpy(der, val->pValue, val->ulValueLen);
	if ((rv = kosp11_pool_get(s->slot, false, &c, &gen)) != CKR_OK)
		goto out;
	krv = kos_client_cert_set(c, name, 0, der, val->ulValueLen);
	rv = krv == KOS_E_INVALID && kos_client_last_refusal(c) != KOS_CLIENT_REFUSAL_UNAVAILABLE ?
		     CKR_ATTRIBUTE_VALUE_INVALID :
		     kosp11_client_rv(c, krv, KOSP11_CTX_CREATE);
	kosp11_pool_put(s->slot, c, gen);
	if (rv != CKR_OK)
		goto out;
	pthread_mutex_lock(&kosp11_lock);
	if ((rv = kosp11_check_locked()) == CKR_OK) {
		struct kosp11_object *o;
		kos_key_type kt = KOS_KEY_EC_P256;

		/* the key's type, if this module has seen it */
		for (size_t i = 0; i < kosp11_nobjects; i++)
			if (kosp11_objects[i]->slot == s->slot &&
			    strcmp(kosp11_objects[i]->name, name) == 0)
				kt = kosp11_objects[i]->type;
		o = object_upsert(s->slot, KOSP11_CERT, name, kt, 0);
		if (o == NULL) {
			rv = CKR_HOST_MEMORY;
		} else {
			free(o->cert);
			o->cert = der;
			o->cert_len = val->ulValueLen;
			der = NULL;
			*phObject = kosp11_object_handle(o);
		}
	}
	pthread_mutex_unlock(&kosp11_lock);
out:
	free(der);
	kosp11_session_put(s);
	return rv;
}

/* --- wrapping and deriving: never for a kos key ---------------------------- */

static CK_RV key_handle(const struct kosp11_session *s, CK_OBJECT_HANDLE h, CK_RV invalid)
{
	struct kosp11_object *o;
	CK_RV rv;

	pthread_mutex_lock(&kosp11_lock);
	rv = visible_object(s, h, &o);
	if (rv == CKR_OK && o->kind == KOSP11_CERT)
		rv = CKR_OBJECT_HANDLE_INVALID;
	pthread_mutex_unlock(&kosp11_lock);
	return rv == CKR_OK ? CKR_OK : invalid;
}

CK_RV kosp11_C_WrapKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
		       CK_OBJECT_HANDLE hWrappingKey, CK_OBJECT_HANDLE hKey, CK_BYTE_PTR pWrapped,
		       CK_ULONG_PTR pulWrappedLen)
{
	struct kosp11_session *s;
	CK_RV rv;

	(void)pWrapped;
	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	if (pMechanism == NULL || pulWrappedLen == NULL)
		rv = CKR_ARGUMENTS_BAD;
	else if ((rv = key_handle(s, hKey, CKR_KEY_HANDLE_INVALID)) != CKR_OK)
		;
	else
		/* every kos key has CKA_EXTRACTABLE false, for every tier; the
		 * wrapping key does not matter */
		rv = CKR_KEY_UNEXTRACTABLE;
	(void)hWrappingKey;
	kosp11_session_put(s);
	return rv;
}

CK_RV kosp11_C_UnwrapKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
			 CK_OBJECT_HANDLE hUnwrappingKey, CK_BYTE_PTR pWrapped, CK_ULONG ulLen,
			 CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phKey)
{
	struct kosp11_session *s;
	CK_RV rv;

	(void)ulLen;
	(void)pTemplate;
	(void)ulCount;
	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	if (pMechanism == NULL || pWrapped == NULL || phKey == NULL)
		rv = CKR_ARGUMENTS_BAD;
	else if ((rv = key_handle(s, hUnwrappingKey, CKR_UNWRAPPING_KEY_HANDLE_INVALID)) != CKR_OK)
		;
	else
		rv = CKR_MECHANISM_INVALID; /* keys are made in kosd, not imported */
	kosp11_session_put(s);
	return rv;
}

CK_RV kosp11_C_DeriveKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
			 CK_OBJECT_HANDLE hBaseKey, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount,
			 CK_OBJECT_HANDLE_PTR phKey)
{
	struct kosp11_session *s;
	CK_RV rv;

	(void)pTemplate;
	(void)ulCount;
	if ((rv = kosp11_session_get(hSession, &s)) != CKR_OK)
		return rv;
	if (pMechanism == NULL || phKey == NULL)
		rv = CKR_ARGUMENTS_BAD;
	else if ((rv = key_handle(s, hBaseKey, CKR_KEY_HANDLE_INVALID)) != CKR_OK)
		;
	else
		/* no mechanism derives from a kos key: a derived key would be
		 * a way around CKA_SENSITIVE */
		rv = CKR_MECHANISM_INVALID;
	kosp11_session_put(s);
	return rv;
}
