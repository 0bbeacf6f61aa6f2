/* Information on keys: what kos_key_get_info(), kos_key_list(_filter)(),
 * kos_key_versions() and kos_key_shares() report, read from the state store
 * alone (no token is asked). Part of the key service (kos/keys.c). */
#include "config.h"

#include "kos/internal.h"
#include "kos/keys_internal.h"
#include "kos/store_backend.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- information ---------------------------------------------------------------- */

static void info_fill(kos_key_info *info, const struct kos_store_key *key,
		      const struct kos_store_version *v, size_t n)
{
	size_t i;

	memset(info, 0, sizeof(*info));
	snprintf(info->name, sizeof(info->name), "%s", key->name);
	info->type = key->type;
	info->created = key->created;
	for (i = 0; i < n; i++) {
		if (v[i].state != KOS_KEY_STATE_ACTIVE)
			continue;
		if (info->min_version == 0)
			info->min_version = v[i].version;
		info->current = v[i].version;
		info->rotated = v[i].created;
		info->versions++;
	}
}

kos_rv kos_key_get_info(kos_keys *keys, const char *name, kos_key_info *info)
{
	struct kos_store_version *v = NULL;
	struct kos_store_key key;
	size_t n = 0;
	kos_rv rv;

	if (keys == NULL || info == NULL)
		return kos_error_set(KOS_E_INVALID,
				     "kos_key_get_info: no key service or no output");
	rv = kos_keys_check_name(name);
	if (rv == KOS_OK)
		rv = kos_store_key_get(keys->st, name, &key);
	if (rv == KOS_OK)
		rv = kos_store_key_versions(keys->st, name, &v, &n);
	if (rv != KOS_OK)
		return rv;
	info_fill(info, &key, v, n);
	kos_store_versions_free(v, n);
	return KOS_OK;
}

kos_rv kos_key_list_filter(kos_keys *keys, const char *name, int type,
			   int (*fn)(const kos_key_info *info, void *arg), void *arg)
{
	struct kos_store_key *all = NULL;
	kos_key_info info;
	size_t n = 0, i;
	kos_rv rv;

	if (keys == NULL || fn == NULL)
		return kos_error_set(KOS_E_INVALID,
				     "kos_key_list_filter: no key service or no callback");
	if (type >= KOS_KEY_TYPE_COUNT)
		return kos_error_set(KOS_E_INVALID, "unknown key type %d", type);
	if (name != NULL) {
		rv = kos_key_get_info(keys, name, &info);
		if (rv == KOS_E_NOTFOUND)
			return KOS_OK;
		if (rv != KOS_OK)
			return rv;
		return type < 0 || info.type == (kos_key_type)type ? fn(&info, arg) : KOS_OK;
	}
	rv = kos_store_key_list(keys->st, &all, &n);
	for (i = 0; rv == KOS_OK && i < n; i++) {
		struct kos_store_version *v = NULL;
		size_t nv = 0;

		/* before the versions are read: they cost a query per key */
		if (type >= 0 && all[i].type != (kos_key_type)type)
			continue;
		rv = kos_store_key_versions(keys->st, all[i].name, &v, &nv);
		if (rv == KOS_E_NOTFOUND) {
			rv = KOS_OK; /* removed since the list was read */
			continue;
		}
		if (rv != KOS_OK)
			break;
		info_fill(&info, &all[i], v, nv);
		kos_store_versions_free(v, nv);
		rv = fn(&info, arg);
	}
	free(all);
	return rv;
}

kos_rv kos_key_list(kos_keys *keys, int (*fn)(const kos_key_info *info, void *arg), void *arg)
{
	return kos_key_list_filter(keys, NULL, -1, fn, arg);
}

kos_rv kos_key_versions(kos_keys *keys, const char *name,
			int (*fn)(const kos_key_version_info *v, void *arg), void *arg)
{
	struct kos_store_version *v = NULL;
	size_t n = 0, i;
	kos_rv rv;

	if (keys == NULL || fn == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_key_versions: no key service or no "
						    "callback");
	rv = kos_keys_check_name(name);
	if (rv == KOS_OK)
		rv = kos_store_key_versions(keys->st, name, &v, &n);
	for (i = 0; rv == KOS_OK && i < n; i++) {
		kos_key_version_info info;
		unsigned s;

		/* an incomplete version is fsck's business, not a version */
		if (v[i].state == KOS_KEY_STATE_CREATING)
			continue;
		memset(&info, 0, sizeof(info));
		info.version = v[i].version;
		info.created = v[i].created;
		info.retired = v[i].state == KOS_KEY_STATE_RETIRED;
		if (v[i].has_kcv)
			memcpy(info.kcv, v[i].kcv, KOS_KCV_LEN);
		for (s = 0; s < v[i].n_sets && s < KOS_ARRAY_SIZE(info.sets); s++) {
			snprintf(info.sets[s].name, sizeof(info.sets[s].name), "%s",
				 v[i].sets[s].name);
			info.sets[s].n = v[i].sets[s].n;
			info.sets[s].k = v[i].sets[s].k;
		}
		info.n_sets = s;
		snprintf(info.token, sizeof(info.token), "%s", v[i].token);
		snprintf(info.label, sizeof(info.label), "%s", v[i].label);
		rv = fn(&info, arg);
	}
	kos_store_versions_free(v, n);
	return rv;
}

/* An active version of DEK name (0: current) with its shares. */
kos_rv kos_keys_dek_version(kos_keys *keys, const char *name, uint32_t version,
			    struct kos_store_version *v)
{
	struct kos_store_key key;
	kos_rv rv;

	memset(v, 0, sizeof(*v));
	rv = kos_keys_check_name(name);
	if (rv == KOS_OK)
		rv = kos_store_key_get(keys->st, name, &key);
	if (rv != KOS_OK)
		return rv;
	if (key.type != KOS_KEY_DEK)
		return kos_error_set(KOS_E_INVALID, "key %s is a %s signing key, not a data key",
				     name, kos_key_type_name(key.type));
	rv = kos_store_key_version_get(keys->st, name, version, v);
	if (rv == KOS_OK && v->state == KOS_KEY_STATE_CREATING) {
		kos_store_version_clear(v);
		rv = kos_error_set(KOS_E_NOTFOUND, "key %s has no version %" PRIu32, name, version);
	}
	return rv;
}

kos_rv kos_key_shares(kos_keys *keys, const char *name, uint32_t version,
		      int (*fn)(const kos_key_share_info *share, void *arg), void *arg)
{
	struct kos_store_version v;
	size_t i;
	kos_rv rv;

	if (keys == NULL || fn == NULL)
		return kos_error_set(KOS_E_INVALID,
				     "kos_key_shares: no key service or no callback");
	rv = kos_keys_dek_version(keys, name, version, &v);
	for (i = 0; rv == KOS_OK && i < v.n_shares; i++) {
		kos_key_share_info info;

		memset(&info, 0, sizeof(info));
		info.version = v.version;
		snprintf(info.set, sizeof(info.set), "%s", v.shares[i].set);
		info.x = v.shares[i].x;
		snprintf(info.token, sizeof(info.token), "%s", v.shares[i].token);
		snprintf(info.label, sizeof(info.label), "%s", v.shares[i].label);
		rv = fn(&info, arg);
	}
	kos_store_version_clear(&v);
	return rv;
}
