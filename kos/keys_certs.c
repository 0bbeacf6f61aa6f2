/* Certificates beside signing keys: an X.509 certificate (DER) stored with
 * a version of a signing key, so PKCS#11 clients that look for the
 * certificate of a private key on the token find it. A certificate is
 * public; what is checked is that it parses and carries the version's own
 * public key, so no certificate can claim a key kos does not hold. Part of
 * the key service (kos/keys.c). */
#include "config.h"

#include "kos/internal.h"
#include "kos/keys_internal.h"
#include "kos/store_backend.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

_Static_assert(KOS_KEY_CERT_MAX == KOS_STORE_CERT_MAX, "one certificate size limit");

/* The signing key version the caller names (0: current), active for a
 * write; its public key in *pub (EVP_PKEY_free()) when pub is not NULL. */
static kos_rv signing_version(kos_keys *keys, const char *name, uint32_t version, bool write,
			      uint32_t *out, EVP_PKEY **pub)
{
	struct kos_store_version v;
	struct kos_store_key key;
	const unsigned char *p;
	kos_rv rv;

	rv = kos_keys_check_name(name);
	if (rv == KOS_OK)
		rv = kos_store_key_get(keys->st, name, &key);
	if (rv != KOS_OK)
		return rv;
	if (key.type == KOS_KEY_DEK)
		return kos_error_set(KOS_E_INVALID,
				     "key %s is a data key: certificates go with signing keys", name);
	rv = kos_store_key_version_get(keys->st, name, version, &v);
	if (rv != KOS_OK)
		return rv;
	if (v.state == KOS_KEY_STATE_CREATING || v.spki_len == 0 ||
	    (write && v.state != KOS_KEY_STATE_ACTIVE)) {
		rv = kos_error_set(KOS_E_NOTFOUND, "key %s has no %sversion %" PRIu32, name,
				   write ? "active " : "", version != 0 ? version : v.version);
		goto out;
	}
	*out = v.version;
	if (pub != NULL) {
		p = v.spki;
		*pub = d2i_PUBKEY(NULL, &p, (long)v.spki_len);
		if (*pub == NULL)
			rv = kos_error_set(KOS_E_STORE, "key %s version %" PRIu32
							" has an unreadable public key in the store",
					   name, v.version);
	}
out:
	kos_store_version_clear(&v);
	return rv;
}

kos_rv kos_key_cert_set(kos_keys *keys, const char *name, uint32_t version, const uint8_t *der,
			size_t len, uint32_t *version_out)
{
	const unsigned char *p = der;
	EVP_PKEY *pub = NULL, *cert_pub;
	X509 *x = NULL;
	uint32_t got = 0;
	kos_rv rv;

	if (version_out != NULL)
		*version_out = 0;
	if (keys == NULL || (der == NULL && len > 0))
		return kos_error_set(KOS_E_INVALID, "no key service or no certificate");
	if (len == 0 || len > KOS_KEY_CERT_MAX)
		return kos_error_set(KOS_E_INVALID, "a certificate of %zu bytes (1 to %d)", len,
				     KOS_KEY_CERT_MAX);
	/* the whole input is one certificate: nothing rides along after it */
	x = d2i_X509(NULL, &p, (long)len);
	if (x == NULL || p != der + len) {
		rv = kos_error_set(KOS_E_INVALID, "not an X.509 certificate in DER%s",
				   x != NULL ? " (bytes after it)" : "");
		goto out;
	}
	rv = signing_version(keys, name, version, true, &got, &pub);
	if (rv != KOS_OK)
		goto out;
	cert_pub = X509_get0_pubkey(x);
	if (cert_pub == NULL || EVP_PKEY_eq(cert_pub, pub) != 1) {
		rv = kos_error_set(KOS_E_INVALID,
				   "the certificate's public key is not that of key %s version %" PRIu32,
				   name, got);
		goto out;
	}
	rv = kos_store_key_cert_put(keys->st, name, got, der, len, kos_keys_now(keys));
	if (rv == KOS_OK && version_out != NULL)
		*version_out = got;
out:
	EVP_PKEY_free(pub);
	X509_free(x);
	return rv;
}

kos_rv kos_key_cert_get(kos_keys *keys, const char *name, uint32_t version, uint8_t **der,
			size_t *len, uint32_t *version_out)
{
	uint32_t got = 0;
	kos_rv rv;

	if (der == NULL || len == NULL)
		return kos_error_set(KOS_E_INVALID, "no output for the certificate");
	*der = NULL;
	*len = 0;
	if (version_out != NULL)
		*version_out = 0;
	if (keys == NULL)
		return kos_error_set(KOS_E_INVALID, "no key service");
	rv = signing_version(keys, name, version, false, &got, NULL);
	if (rv == KOS_OK)
		rv = kos_store_key_cert_get(keys->st, name, got, der, len);
	if (rv == KOS_OK && version_out != NULL)
		*version_out = got;
	return rv;
}

kos_rv kos_key_cert_remove(kos_keys *keys, const char *name, uint32_t version)
{
	uint32_t got = 0;
	kos_rv rv;

	if (keys == NULL)
		return kos_error_set(KOS_E_INVALID, "no key service");
	rv = signing_version(keys, name, version, false, &got, NULL);
	if (rv == KOS_OK)
		rv = kos_store_key_cert_delete(keys->st, name, got);
	return rv;
}

kos_rv kos_key_cert_pem(const uint8_t *der, size_t len, char **pem)
{
	const unsigned char *p = der;
	BIO *bio = NULL;
	X509 *x = NULL;
	char *text;
	long n;
	kos_rv rv = KOS_OK;

	if (pem == NULL)
		return kos_error_set(KOS_E_INVALID, "no output for the PEM text");
	*pem = NULL;
	if (der == NULL || len == 0 || len > KOS_KEY_CERT_MAX)
		return kos_error_set(KOS_E_PARSE, "a certificate is 1 to %d bytes of DER",
				     KOS_KEY_CERT_MAX);
	x = d2i_X509(NULL, &p, (long)len);
	if (x == NULL || p != der + len) {
		rv = kos_error_set(KOS_E_PARSE, "not an X.509 certificate in DER");
		goto out;
	}
	bio = BIO_new(BIO_s_mem());
	if (bio == NULL || PEM_write_bio_X509(bio, x) != 1 ||
	    (n = BIO_get_mem_data(bio, &text)) <= 0 || (*pem = malloc((size_t)n + 1)) == NULL) {
		rv = kos_error_set(KOS_E_NOMEM, "cannot write the certificate as PEM");
		goto out;
	}
	memcpy(*pem, text, (size_t)n);
	(*pem)[n] = '\0';
out:
	BIO_free(bio);
	X509_free(x);
	return rv;
}
