/* kosd's administrative routes: each needs the scope item admin:AREA
 * (admin:* for all): clients, credentials (revocation), keys, threat,
 * policy. Service-token routes come with the next slice. */
#include "config.h"

#include "tools/kosd.h"

#include <string.h>

#include <openssl/crypto.h>

static bool need_admin(struct kosd_req *r, const char *area)
{
	if (kos_scope_allows(r->claims.scope, "admin", area))
		return true;
	kosd_reply_error(r, 403, "out_of_scope", "out of scope: admin:%s needed", area);
	return false;
}

static void admin_clients(struct kosd_req *r)
{
	char secret[KOS_CRED_SECRET_LEN + 1];
	const char *name, *scope;
	bool failed;
	kos_rv rv;

	if (!need_admin(r, "clients"))
		return;
	if ((name = kosd_body_string(r, "name", true, &failed)) == NULL ||
	    (scope = kosd_body_string(r, "scope", true, &failed)) == NULL)
		return;
	rv = kos_client_add(r->d->ca, name, scope, secret);
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, "client add");
		return;
	}
	kosd_reply_json(r, 200, json_pack("{s:s, s:s}", "name", name, "secret", secret));
	OPENSSL_cleanse(secret, sizeof(secret));
}

static void admin_revoke(struct kosd_req *r)
{
	const char *jti, *client;
	json_t *before = json_object_get(r->body, "before");
	bool f1, f2;
	int kinds;
	kos_rv rv;

	if (!need_admin(r, "credentials"))
		return;
	jti = kosd_body_string(r, "jti", false, &f1);
	if (f1)
		return;
	client = kosd_body_string(r, "client", false, &f2);
	if (f2)
		return;
	kinds = (jti != NULL) + (client != NULL) + (before != NULL);
	if (kinds != 1) {
		kosd_reply_error(r, 400, "bad_request", "give exactly one of jti, client, before");
		return;
	}
	if (jti != NULL) {
		rv = kos_cred_revoke_jti(r->d->ca, jti);
	} else if (client != NULL) {
		rv = kos_cred_revoke_client(r->d->ca, client);
	} else {
		if (!json_is_integer(before) || json_integer_value(before) < 0 ||
		    json_integer_value(before) > INT64_MAX / KOS_USEC_PER_SEC) {
			kosd_reply_error(r, 400, "wrong_type",
					 "\"before\" must be seconds since the epoch");
			return;
		}
		rv = kos_cred_revoke_before(r->d->ca,
					    (kos_usec)json_integer_value(before) * KOS_USEC_PER_SEC);
	}
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, "revoke");
		return;
	}
	kosd_reply_json(r, 200,
			json_pack("{s:s}", "revoked",
				  jti != NULL ? "jti" : client != NULL ? "client" : "before"));
}

static void admin_keys(struct kosd_req *r)
{
	kos_key_type type = KOS_KEY_DEK;
	const char *name, *type_s;
	bool failed;
	kos_rv rv;

	if (!need_admin(r, "keys"))
		return;
	if ((name = kosd_body_string(r, "name", true, &failed)) == NULL)
		return;
	type_s = kosd_body_string(r, "type", false, &failed);
	if (failed)
		return;
	if (!kos_key_name_valid(name)) {
		kosd_reply_error(r, 400, "invalid_name", "invalid key name");
		return;
	}
	if (type_s != NULL && kos_key_type_parse(type_s, &type) != KOS_OK) {
		kosd_reply_error(r, 400, "bad_request", "unknown key type");
		return;
	}
	rv = kos_key_create(r->d->keys, name, type);
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, "key create");
		return;
	}
	kosd_reply_json(r, 200, json_pack("{s:s, s:s, s:i}", "name", name, "type",
					  kos_key_type_name(type), "version", 1));
}

static void admin_rotate(struct kosd_req *r)
{
	uint32_t v = 0;
	kos_rv rv;

	if (!need_admin(r, "keys"))
		return;
	rv = kos_key_rotate(r->d->keys, r->name, &v);
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, "key rotate");
		return;
	}
	kosd_reply_json(r, 200, json_pack("{s:s, s:I}", "name", r->name, "version", (json_int_t)v));
}

static void admin_retire(struct kosd_req *r)
{
	json_t *v;
	kos_rv rv;

	if (!need_admin(r, "keys"))
		return;
	v = json_object_get(r->body, "version");
	if (v == NULL) {
		kosd_reply_error(r, 400, "missing_field", "\"version\" is required");
		return;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 1 ||
	    json_integer_value(v) > (json_int_t)UINT32_MAX) {
		kosd_reply_error(r, 400, "wrong_type", "\"version\" must be an integer >= 1");
		return;
	}
	rv = kos_key_retire(r->d->keys, r->name, (uint32_t)json_integer_value(v));
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, "key retire");
		return;
	}
	kosd_reply_json(r, 200, json_pack("{s:s, s:I}", "name", r->name, "retired",
					  json_integer_value(v)));
}

static void admin_threat(struct kosd_req *r)
{
	const char *level_s, *reason;
	kos_threat level;
	bool failed;
	kos_rv rv;

	if (!need_admin(r, "threat"))
		return;
	if ((level_s = kosd_body_string(r, "level", true, &failed)) == NULL)
		return;
	reason = kosd_body_string(r, "reason", false, &failed);
	if (failed)
		return;
	if (kos_threat_parse(level_s, &level) != KOS_OK) {
		kosd_reply_error(r, 400, "bad_request", "level: normal, elevated or critical");
		return;
	}
	rv = kos_threat_set(r->d->ca, level, reason);
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, "threat");
		return;
	}
	kosd_reply_json(r, 200, json_pack("{s:s}", "level", kos_threat_name(level)));
}

static void admin_reload(struct kosd_req *r)
{
	char why[512];

	if (!need_admin(r, "policy"))
		return;
	if (kosd_reload_policy(r->d, why, sizeof(why)) != KOS_OK) {
		kosd_reply_error(r, 422, "policy_invalid", "policy refused, the old one is kept: %s",
				 why);
		return;
	}
	kosd_reply_json(r, 200, json_pack("{s:s}", "policy", kos_policy_get0_path(r->d->policy)));
}

void kosd_route_admin(struct kosd_req *r)
{
	switch (r->route) {
	case KOSD_R_ADMIN_CLIENTS: admin_clients(r); break;
	case KOSD_R_ADMIN_REVOKE: admin_revoke(r); break;
	case KOSD_R_ADMIN_KEYS: admin_keys(r); break;
	case KOSD_R_ADMIN_ROTATE: admin_rotate(r); break;
	case KOSD_R_ADMIN_RETIRE: admin_retire(r); break;
	case KOSD_R_ADMIN_THREAT: admin_threat(r); break;
	case KOSD_R_ADMIN_RELOAD: admin_reload(r); break;
	default: kosd_reply_error(r, 404, "not_found", "no such route"); break;
	}
}
