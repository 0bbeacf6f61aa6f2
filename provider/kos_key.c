/* Key objects and kos key URIs. A key object names a signing key of kosd
 * and one of its versions, pinned when loaded: a certificate is for one
 * version, so the key keeps signing with it after a rotation until it is
 * loaded again. The public half is an ordinary key of the child library
 * context, which answers every question about parameters. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>

#include "provider/prov.h"

#define KOSPROV_URI_MAX 256

const char *kosprov_key_type_name(kos_key_type t)
{
	switch (t) {
	case KOS_KEY_EC_P256:
		return "EC";
	case KOS_KEY_ED25519:
		return "ED25519";
	case KOS_KEY_RSA_2048:
	case KOS_KEY_RSA_3072:
		return "RSA";
	default:
		return "unknown";
	}
}

/* One ";attr=value" of a kos URI; *next past it. */
static int uri_attr(const char *s, const char **next, char *attr, size_t attr_len, char *val,
		    size_t val_len)
{
	const char *eq = strchr(s, '='), *end = strchr(s, ';');

	if (end == NULL)
		end = s + strlen(s);
	if (eq == NULL || eq > end || eq == s || end == eq + 1 || (size_t)(eq - s) >= attr_len ||
	    (size_t)(end - eq - 1) >= val_len)
		return 0;
	memcpy(attr, s, (size_t)(eq - s));
	attr[eq - s] = '\0';
	memcpy(val, eq + 1, (size_t)(end - eq - 1));
	val[end - eq - 1] = '\0';
	*next = *end == ';' ? end + 1 : end;
	return 1;
}

int kosprov_uri_parse(const char *uri, char name[KOS_KEY_NAME_MAX + 1], uint32_t *version,
		      bool *public_only, const char **why)
{
	const char *s, *end;
	char attr[16], val[32];
	bool seen_version = false, seen_type = false;

	*version = 0;
	*public_only = false;
	if (why != NULL)
		*why = "not a kos URI";
	if (uri == NULL || strncmp(uri, "kos:", 4) != 0)
		return 0;
	if (strlen(uri) > KOSPROV_URI_MAX) {
		if (why != NULL)
			*why = "longer than 256 characters";
		return 0;
	}
	s = uri + 4;
	end = strchr(s, ';');
	if (end == NULL)
		end = s + strlen(s);
	if (end == s || (size_t)(end - s) > KOS_KEY_NAME_MAX) {
		if (why != NULL)
			*why = "no key name, or a name over 64 characters";
		return 0;
	}
	memcpy(name, s, (size_t)(end - s));
	name[end - s] = '\0';
	if (!kos_key_name_valid(name)) {
		if (why != NULL)
			*why = "not a key name (1 to 64 of A-Z a-z 0-9 . _ -)";
		return 0;
	}
	s = *end == ';' ? end + 1 : end;
	while (*s != '\0') {
		if (!uri_attr(s, &s, attr, sizeof(attr), val, sizeof(val))) {
			if (why != NULL)
				*why = "an attribute that is not name=value";
			return 0;
		}
		if (strcmp(attr, "version") == 0 && !seen_version) {
			char *e;
			unsigned long v;

			errno = 0;
			v = strtoul(val, &e, 10);
			if (val[0] < '1' || val[0] > '9' || *e != '\0' || errno != 0 ||
			    v > UINT32_MAX) {
				if (why != NULL)
					*why = "version is not a number from 1";
				return 0;
			}
			*version = (uint32_t)v;
			seen_version = true;
		} else if (strcmp(attr, "type") == 0 && !seen_type) {
			if (strcmp(val, "public") == 0)
				*public_only = true;
			else if (strcmp(val, "private") != 0) {
				if (why != NULL)
					*why = "type is neither private nor public";
				return 0;
			}
			seen_type = true;
		} else {
			if (why != NULL)
				*why = "an unknown or repeated attribute (version, type)";
			return 0;
		}
	}
	return 1;
}

kosprov_key *kosprov_key_new(kosprov_ctx *p, kos_key_type type)
{
	kosprov_key *k = calloc(1, sizeof(*k));

	if (k == NULL)
		return NULL;
	k->refs = 1;
	k->prov = p;
	k->type = type;
	return k;
}

kosprov_key *kosprov_key_ref(kosprov_key *k)
{
	if (k != NULL)
		__atomic_add_fetch(&k->refs, 1, __ATOMIC_RELAXED);
	return k;
}

void kosprov_key_free(kosprov_key *k)
{
	if (k == NULL || __atomic_sub_fetch(&k->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	EVP_PKEY_free(k->pub);
	free(k);
}

/* The kos key type of a public key kos makes; 0 after raising for others. */
static int pub_type(const kosprov_ctx *p, EVP_PKEY *pub, kos_key_type *t)
{
	char group[32];

	if (EVP_PKEY_is_a(pub, "EC")) {
		if (!EVP_PKEY_get_utf8_string_param(pub, OSSL_PKEY_PARAM_GROUP_NAME, group,
						    sizeof(group), NULL) ||
		    strcmp(group, "prime256v1") != 0)
			return kosprov_raise(p, KOSPROV_R_UNSUPPORTED, "an EC key not on P-256");
		*t = KOS_KEY_EC_P256;
		return 1;
	}
	if (EVP_PKEY_is_a(pub, "ED25519")) {
		*t = KOS_KEY_ED25519;
		return 1;
	}
	if (EVP_PKEY_is_a(pub, "RSA")) {
		switch (EVP_PKEY_get_bits(pub)) {
		case 2048:
			*t = KOS_KEY_RSA_2048;
			return 1;
		case 3072:
			*t = KOS_KEY_RSA_3072;
			return 1;
		default:
			return kosprov_raise(p, KOSPROV_R_UNSUPPORTED,
					     "an RSA key of %d bits (kos has 2048 and 3072)",
					     EVP_PKEY_get_bits(pub));
		}
	}
	return kosprov_raise(p, KOSPROV_R_UNSUPPORTED, "a key type kos does not make");
}

kosprov_key *kosprov_key_load_uri(kosprov_ctx *p, const char *uri)
{
	char name[KOS_KEY_NAME_MAX + 1];
	const char *why;
	uint32_t version, got = 0;
	bool public_only;
	kos_client *c = NULL;
	char *pem = NULL;
	BIO *bio = NULL;
	EVP_PKEY *pub = NULL;
	kosprov_key *k = NULL;
	kos_key_type type = KOS_KEY_DEK;
	kos_rv rv;

	if (!kosprov_uri_parse(uri, name, &version, &public_only, &why)) {
		kosprov_raise(p, KOSPROV_R_BAD_URI, "%.64s: %s", uri != NULL ? uri : "", why);
		return NULL;
	}
	c = kosprov_handle_get(p);
	if (c == NULL)
		return NULL;
	rv = kos_client_pubkey_at(c, name, version, &pem, &got);
	if (rv != KOS_OK) {
		kosprov_raise_client(p, c, rv, name);
		goto out;
	}
	bio = BIO_new_mem_buf(pem, -1);
	if (bio == NULL ||
	    (pub = PEM_read_bio_PUBKEY_ex(bio, NULL, NULL, NULL, p->libctx, KOSPROV_PROPQ)) == NULL) {
		kosprov_raise(p, KOSPROV_R_INTERNAL, "%s: kosd's public key does not parse", name);
		goto out;
	}
	if (!pub_type(p, pub, &type))
		goto out;
	k = kosprov_key_new(p, type);
	if (k == NULL) {
		kosprov_raise(p, KOSPROV_R_INTERNAL, "out of memory");
		goto out;
	}
	strcpy(k->name, name);
	k->version = version != 0 ? version : got;
	k->priv = !public_only;
	k->pub = pub;
	pub = NULL;
out:
	EVP_PKEY_free(pub);
	BIO_free(bio);
	kos_free(pem);
	kosprov_handle_put(p, c);
	return k;
}
