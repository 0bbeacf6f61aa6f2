/* Names and kinds shared by kosd, its tools and its clients: key types,
 * signature forms, key and client names (see kos/keys.h). */
#include "config.h"

#include "common/internal.h"

#include <stdbool.h>
#include <string.h>

static const char *const type_names[] = {
    [KOS_KEY_DEK] = "dek",	     [KOS_KEY_EC_P256] = "ec-p256",   [KOS_KEY_ED25519] = "ed25519",
    [KOS_KEY_RSA_2048] = "rsa-2048", [KOS_KEY_RSA_3072] = "rsa-3072",
};

static const char *const alg_names[] = {
    [KOS_SIG_DEFAULT] = "default",     [KOS_SIG_ECDSA_RAW] = "ecdsa",
    [KOS_SIG_ECDSA_DER] = "ecdsa-der", [KOS_SIG_ED25519] = "ed25519",
    [KOS_SIG_RSA_PKCS1] = "rsa-pkcs1", [KOS_SIG_RSA_PSS] = "rsa-pss",
};

static const struct {
	const char *name;
	size_t len;
} hashes[] = {
    [KOS_HASH_SHA256] = { "sha256", 32 },
    [KOS_HASH_SHA384] = { "sha384", 48 },
    [KOS_HASH_SHA512] = { "sha512", 64 },
    [KOS_HASH_SHA1] = { "sha1", 20 },
};

_Static_assert(KOS_ARRAY_SIZE(type_names) == KOS_KEY_TYPE_COUNT, "a name per key type");
_Static_assert(KOS_ARRAY_SIZE(hashes) == KOS_HASH_COUNT, "a name per hash");
_Static_assert(KOS_ARRAY_SIZE(alg_names) == KOS_SIG_ALG_COUNT, "a name per signature form");

const char *kos_key_type_name(kos_key_type t)
{
	if ((unsigned)t < KOS_ARRAY_SIZE(type_names))
		return type_names[t];
	return "unknown";
}

kos_rv kos_key_type_parse(const char *s, kos_key_type *out)
{
	size_t i;

	for (i = 0; s != NULL && i < KOS_ARRAY_SIZE(type_names); i++) {
		if (strcmp(s, type_names[i]) == 0) {
			*out = (kos_key_type)i;
			return KOS_OK;
		}
	}
	return kos_error_set(KOS_E_INVALID,
			     "unknown key type '%.32s' (dek, ec-p256, ed25519, rsa-2048, rsa-3072)",
			     s != NULL ? s : "");
}

const char *kos_sig_alg_name(kos_sig_alg a)
{
	if ((unsigned)a < KOS_ARRAY_SIZE(alg_names))
		return alg_names[a];
	return "unknown";
}

kos_rv kos_sig_alg_parse(const char *s, kos_sig_alg *out)
{
	size_t i;

	for (i = 0; s != NULL && i < KOS_ARRAY_SIZE(alg_names); i++) {
		if (strcmp(s, alg_names[i]) == 0) {
			*out = (kos_sig_alg)i;
			return KOS_OK;
		}
	}
	return kos_error_set(KOS_E_INVALID,
			     "unknown signature algorithm '%.32s' (default, ecdsa, ecdsa-der, "
			     "ed25519, rsa-pkcs1, rsa-pss)",
			     s != NULL ? s : "");
}

const char *kos_hash_name(kos_hash h)
{
	if ((unsigned)h < KOS_ARRAY_SIZE(hashes))
		return hashes[h].name;
	return "unknown";
}

size_t kos_hash_len(kos_hash h)
{
	if ((unsigned)h < KOS_ARRAY_SIZE(hashes))
		return hashes[h].len;
	return 0;
}

kos_rv kos_hash_parse(const char *s, kos_hash *out)
{
	size_t i;

	for (i = 0; s != NULL && i < KOS_ARRAY_SIZE(hashes); i++) {
		if (strcmp(s, hashes[i].name) == 0) {
			*out = (kos_hash)i;
			return KOS_OK;
		}
	}
	return kos_error_set(KOS_E_INVALID, "unknown hash '%.32s' (sha256, sha384, sha512, sha1)",
			     s != NULL ? s : "");
}

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

int kos_key_name_valid(const char *name)
{
	size_t i;

	if (name == NULL || name[0] == '\0' || name[0] == '.' || name[0] == '-')
		return 0;
	for (i = 0; name[i] != '\0'; i++)
		if (i >= KOS_KEY_NAME_MAX || !name_char(name[i]))
			return 0;
	return 1;
}

int kos_principal_name_valid(const char *name)
{
	size_t i;

	if (name == NULL || name[0] == '\0' || name[0] == '.' || name[0] == '-')
		return 0;
	for (i = 0; name[i] != '\0'; i++) {
		char c = name[i];

		if (i >= KOS_PRINCIPAL_NAME_MAX)
			return 0;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '@' || c == '-'))
			return 0;
	}
	return 1;
}
