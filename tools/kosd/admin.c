/* kosd's administrative routes: each needs the scope item admin:AREA
 * (admin:* for all): clients, credentials (issue, revocation), keys, threat,
 * policy, trust, kms (the backend tokens), services, ca (the CA keys). */
#include "config.h"

#include "tools/kosd/kosd.h"
#include "tools/common/kosjson.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

/* Steps 3 and 4 of the pipeline for administration (kos_pipeline_admit):
 * admin:AREA in scope, trust above deny, no client administering itself
 * (target, when the request mutates), and nothing given away or acted upon
 * beyond the administrator's own scope (grant_scope). target, when given,
 * is the ledger's resource. */
static bool admit_admin(struct kosd_req *r, const char *area, const char *target,
			const char *grant_scope, bool mutates)
{
	kos_request rq = { .action = "admin",
			   .resource = area,
			   .target = target,
			   .grant_scope = grant_scope,
			   .mutates = mutates };

	if (target != NULL)
		snprintf(r->target, sizeof(r->target), "%s", target);
	return kosd_admit(r, &rq, NULL);
}

static bool need_admin(struct kosd_req *r, const char *area)
{
	return admit_admin(r, area, NULL, NULL, false);
}

/* The registered scope of client name into buf, or NULL when it is not
 * registered (a client only the trust engine knows). */
static const char *registered_scope(struct kosd_req *r, const char *name, char *buf, size_t len)
{
	kos_ca_client_info info;

	if (!kos_principal_name_valid(name) || kos_ca_client_get(r->d->ca, name, &info) != KOS_OK)
		return NULL;
	snprintf(buf, len, "%s", info.scope);
	return buf;
}

/* Administration of client name: a change (mutates) needs an administrator
 * that holds every scope the client holds (so admin:clients cannot reset an
 * admin:* client's secret) and is not the client itself; reading the
 * client's record or trust needs the area only. */
static bool need_admin_of(struct kosd_req *r, const char *area, const char *name, bool mutates)
{
	char scope[KOS_SCOPE_MAX + 1];

	return admit_admin(r, area, name,
			   mutates ? registered_scope(r, name, scope, sizeof(scope)) : NULL,
			   mutates);
}

/* A scope an administrator gives away (a client's, a credential's) must be
 * valid and hold no grant item: shares are reached only through the grants
 * key requests issue (DESIGN.md 4). Checked before admission, so the answer
 * names what is wrong with the request whoever makes it. */
static bool given_scope_ok(struct kosd_req *r, const char *scope, const char *what)
{
	if (kos_scope_validate(scope) != KOS_OK) {
		kosd_reply_rv(r, KOS_E_INVALID, what);
		return false;
	}
	if (kos_scope_has_grant_item(scope)) {
		kosd_reply_error(r, 400, "bad_request",
				 "%s: a scope given holds no \"share:\" item; shares are fetched "
				 "with the grants key requests issue",
				 what);
		return false;
	}
	return true;
}

void kosd_admin_clients(struct kosd_req *r)
{
	char secret[KOS_CRED_SECRET_LEN + 1];
	const char *name, *scope;
	bool failed;
	kos_rv rv;

	if ((name = kosd_body_string(r, "name", true, &failed)) == NULL ||
	    (scope = kosd_body_string(r, "scope", true, &failed)) == NULL)
		return;
	if (!given_scope_ok(r, scope, "client add"))
		return;
	if (!admit_admin(r, "clients", name, scope, true))
		return;
	rv = kos_ca_client_add(r->d->ca, name, scope, secret);
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, "client add");
		return;
	}
	kosd_reply_json(r, 200, json_pack("{s:s, s:s}", "name", name, "secret", secret));
	OPENSSL_cleanse(secret, sizeof(secret));
}

void kosd_admin_revoke(struct kosd_req *r)
{
	const char *jti, *client;
	json_t *before = json_object_get(r->body, "before");
	bool f1, f2;
	int kinds;
	kos_rv rv;

	jti = kosd_body_string(r, "jti", false, &f1);
	if (f1)
		return;
	client = kosd_body_string(r, "client", false, &f2);
	if (f2)
		return;
	/* a client's credentials are administered by whoever holds its scope,
	 * and not by the client itself */
	if (client != NULL ? !need_admin_of(r, "credentials", client, true)
			   : !need_admin(r, "credentials"))
		return;
	if (jti != NULL)
		snprintf(r->target, sizeof(r->target), "jti:%s", jti);
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

static void client_set_disabled(struct kosd_req *r, int disabled)
{
	kos_rv rv;

	if (!need_admin_of(r, "clients", r->name, true))
		return;
	rv = kos_ca_client_set_disabled(r->d->ca, r->name, disabled);
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, disabled ? "client disable" : "client enable");
		return;
	}
	kosd_reply_json(r, 200, json_pack("{s:s, s:b}", "client", r->name, "disabled", disabled));
}

void kosd_admin_client_disable(struct kosd_req *r)
{
	client_set_disabled(r, 1);
}

void kosd_admin_client_enable(struct kosd_req *r)
{
	client_set_disabled(r, 0);
}

void kosd_admin_client_show(struct kosd_req *r)
{
	kos_ca_client_info info;
	kos_rv rv;

	if (!need_admin_of(r, "clients", r->name, false))
		return;
	rv = kos_ca_client_get(r->d->ca, r->name, &info);
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, "client show");
		return;
	}
	kosd_reply_json(r, 200, kosj_client_info(&info));
}

/* A new one-time enrollment secret; an unused earlier one stops working. */
void kosd_admin_client_secret(struct kosd_req *r)
{
	char secret[KOS_CRED_SECRET_LEN + 1];
	kos_ca_client_info info;
	json_t *c = NULL;
	kos_rv rv;

	if (!need_admin_of(r, "clients", r->name, true))
		return;
	rv = kos_ca_client_secret(r->d->ca, r->name, secret);
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, "client secret");
		return;
	}
	if (kos_ca_client_get(r->d->ca, r->name, &info) == KOS_OK)
		c = kosj_client_info(&info);
	kosd_reply_json(r, 200,
			json_pack("{s:s, s:s, s:s}", "client", r->name, "secret", secret, "expires",
				  c != NULL ? json_string_value(json_object_get(c, "secret_expires"))
					    : "?"));
	json_decref(c);
	OPENSSL_cleanse(secret, sizeof(secret));
}

/* The new key signs from now on; the old one verifies until the
 * credentials it signed expire (kos_ca_rotate()). */
void kosd_admin_ca_rotate(struct kosd_req *r)
{
	char kid[KOS_CA_KID_LEN + 1];
	kos_rv rv;

	if (!need_admin(r, "ca"))
		return;
	rv = kos_ca_rotate(r->d->ca, kid);
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, "ca rotate");
		return;
	}
	kosd_reply_json(r, 200, json_pack("{s:s}", "kid", kid));
}

struct ca_arg {
	kos_usec now;
	json_t *arr;
};

static int ca_one(const kos_ca_key_info *k, void *varg)
{
	struct ca_arg *a = varg;

	return json_array_append_new(a->arr, kosj_ca_key(k, a->now)) == 0 ? 0 : KOS_E_NOMEM;
}

void kosd_admin_ca_list(struct kosd_req *r)
{
	struct ca_arg a = { kos_now(), NULL };
	kos_rv rv;

	if (!need_admin(r, "ca"))
		return;
	if ((a.arr = json_array()) == NULL) {
		kosd_reply_error(r, 503, "unavailable", "out of memory");
		return;
	}
	rv = kos_ca_list(r->d->ca, ca_one, &a);
	if (rv != KOS_OK) {
		json_decref(a.arr);
		kosd_reply_rv(r, rv, "ca list");
		return;
	}
	kosd_reply_json(r, 200, json_pack("{s:o}", "keys", a.arr));
}

/* A credential for a registered client, as kosctl credential issue makes
 * on the store: the administrator hands it over out of band. */
void kosd_admin_cred_issue(struct kosd_req *r)
{
	const char *client, *scope, *cnf;
	char *token = NULL;
	bool f1, f2, f3;
	json_t *o;
	kos_rv rv;

	char reg[KOS_SCOPE_MAX + 1];

	if ((client = kosd_body_string(r, "client", true, &f1)) == NULL)
		return;
	scope = kosd_body_string(r, "scope", false, &f2);
	if (f2)
		return;
	cnf = kosd_body_string(r, "cnf", false, &f3);
	if (f3)
		return;
	if (!kos_principal_name_valid(client)) {
		kosd_reply_error(r, 400, "invalid_name", "invalid client name");
		return;
	}
	if (scope != NULL && !given_scope_ok(r, scope, "credential issue"))
		return;
	/* the credential's scope (the registered one when none is asked) is
	 * given away: it must lie within the administrator's */
	if (!admit_admin(r, "credentials", client,
			 scope != NULL ? scope : registered_scope(r, client, reg, sizeof(reg)), true))
		return;
	rv = kos_cred_issue(r->d->ca, client, scope, cnf, &token);
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, "credential issue");
		return;
	}
	o = json_pack("{s:s}", "credential", token);
	kos_cred_free(token);
	/* the answer holds a credential: kosd_reply_json wipes it once sent */
	kosd_reply_json(r, 200, o);
}

static int revocation_one(const kos_revocation_info *info, void *arg)
{
	return json_array_append_new(arg, kosj_revocation_info(info)) == 0 ? 0 : KOS_E_NOMEM;
}

void kosd_admin_revocations(struct kosd_req *r)
{
	json_t *arr;
	kos_rv rv;

	if (!need_admin(r, "credentials"))
		return;
	if ((arr = json_array()) == NULL) {
		kosd_reply_error(r, 503, "unavailable", "out of memory");
		return;
	}
	rv = kos_cred_revocations(r->d->ca, revocation_one, arr);
	if (rv != KOS_OK) {
		json_decref(arr);
		kosd_reply_rv(r, rv, "credential revocations");
		return;
	}
	kosd_reply_json(r, 200, json_pack("{s:o}", "revocations", arr));
}

void kosd_admin_prune(struct kosd_req *r)
{
	uint64_t removed = 0;
	kos_rv rv;

	if (!need_admin(r, "credentials"))
		return;
	rv = kos_cred_prune(r->d->ca, &removed);
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, "credential prune");
		return;
	}
	kosd_reply_json(r, 200, json_pack("{s:I}", "removed", (json_int_t)removed));
}

void kosd_admin_keys(struct kosd_req *r)
{
	kos_key_type type = KOS_KEY_DEK;
	const char *name, *type_s;
	bool failed;
	kos_rv rv;

	if ((name = kosd_body_string(r, "name", true, &failed)) == NULL)
		return;
	snprintf(r->target, sizeof(r->target), "%s", name);
	if (!need_admin(r, "keys"))
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

void kosd_admin_rotate(struct kosd_req *r)
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

struct due_arg {
	json_t *arr;
	bool oom;
};

static void due_one(const char *name, uint32_t version, void *varg)
{
	struct due_arg *a = varg;

	if (json_array_append_new(a->arr, json_pack("{s:s, s:I}", "name", name, "version",
						     (json_int_t)version)) != 0)
		a->oom = true;
}

/* Rotations already made stay made when a later one fails: the answer
 * names them even then, so the operator sees which keys moved. */
void kosd_admin_rotate_due(struct kosd_req *r)
{
	struct due_arg a = { NULL, false };
	kos_rv rv;

	if (!need_admin(r, "keys"))
		return;
	if ((a.arr = json_array()) == NULL) {
		kosd_reply_error(r, 503, "unavailable", "out of memory");
		return;
	}
	rv = kos_keys_rotate_due(r->d->keys, due_one, &a);
	if (rv != KOS_OK) {
		kosd_log(r->d, "key rotate-due: %zu rotated before a failure",
			 json_array_size(a.arr));
		json_decref(a.arr);
		kosd_reply_rv(r, rv, "key rotate --due");
		return;
	}
	if (a.oom) {
		json_decref(a.arr);
		kosd_reply_error(r, 503, "unavailable", "out of memory");
		return;
	}
	kosd_reply_json(r, 200, json_pack("{s:o}", "rotated", a.arr));
}

void kosd_admin_retire(struct kosd_req *r)
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

/* Irreversible: every version's DEK or key pair goes, and with it every
 * envelope made with the key. When a token keeps an object the key is
 * still gone (the store is changed first), so the answer is a success
 * with the warning, and fsck --repair removes the object later. */
void kosd_admin_destroy(struct kosd_req *r)
{
	kos_rv rv;

	if (!need_admin(r, "keys"))
		return;
	rv = kos_key_destroy(r->d->keys, r->name);
	if (rv == KOS_E_IO) {
		kosd_log(r->d, "key destroy: %s", kos_last_error());
		kosd_reply_json(r, 200, json_pack("{s:s, s:b, s:s}", "name", r->name, "destroyed",
						  1, "warning", kos_last_error()));
		return;
	}
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, "key destroy");
		return;
	}
	kosd_reply_json(r, 200, json_pack("{s:s, s:b}", "name", r->name, "destroyed", 1));
}

void kosd_admin_threat(struct kosd_req *r)
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

void kosd_admin_reload(struct kosd_req *r)
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

/* --- read-only views, in kosctl --json's shapes (tools/common/kosjson.c) --- */

static int client_one(const kos_ca_client_info *c, void *arg)
{
	return json_array_append_new(arg, kosj_client_info(c)) == 0 ? 0 : KOS_E_NOMEM;
}

void kosd_admin_client_list(struct kosd_req *r)
{
	json_t *arr;
	kos_rv rv;

	if (!need_admin(r, "clients"))
		return;
	if ((arr = json_array()) == NULL) {
		kosd_reply_error(r, 503, "unavailable", "out of memory");
		return;
	}
	rv = kos_ca_client_list(r->d->ca, client_one, arr);
	if (rv != KOS_OK) {
		json_decref(arr);
		kosd_reply_rv(r, rv, "client list");
		return;
	}
	kosd_reply_json(r, 200, json_pack("{s:o}", "clients", arr));
}

/* Reads of trust see every observation kosd has taken: the batch queue is
 * written first (on failure it stays queued and the read is a little old). */
static void flush_observations(struct kosd_req *r)
{
	if (kosd_obs_pending(r->d->obs) > 0 && kosd_obs_flush(r->d->obs, true) != KOS_OK)
		kosd_log(r->d, "trust: queued observations not written yet: %s", kos_last_error());
}

static int trust_one(const kos_trust_info *info, void *arg)
{
	return json_array_append_new(arg, kosj_trust_info(info)) == 0 ? 0 : KOS_E_NOMEM;
}

void kosd_admin_trust_list(struct kosd_req *r)
{
	json_t *arr;
	kos_rv rv;

	if (!need_admin(r, "trust"))
		return;
	flush_observations(r);
	if ((arr = json_array()) == NULL) {
		kosd_reply_error(r, 503, "unavailable", "out of memory");
		return;
	}
	rv = kos_trust_list(r->d->trust, trust_one, arr);
	if (rv != KOS_OK) {
		json_decref(arr);
		kosd_reply_rv(r, rv, "trust list");
		return;
	}
	kosd_reply_json(r, 200, json_pack("{s:o}", "clients", arr));
}

void kosd_admin_trust_get(struct kosd_req *r)
{
	kos_trust_info info;
	kos_rv rv;

	if (!need_admin_of(r, "trust", r->name, false))
		return;
	flush_observations(r);
	rv = kos_trust_get(r->d->trust, r->name, &info);
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, "trust");
		return;
	}
	kosd_reply_json(r, 200, kosj_trust_info(&info));
}

/* A non-negative whole number member, 0 when absent; false after replying. */
static bool body_u64(struct kosd_req *r, const char *key, uint64_t *out)
{
	json_t *v = json_object_get(r->body, key);

	*out = 0;
	if (v == NULL)
		return true;
	if (!json_is_integer(v) || json_integer_value(v) < 0) {
		kosd_reply_error(r, 400, "wrong_type", "\"%s\" must be a whole number >= 0", key);
		return false;
	}
	*out = (uint64_t)json_integer_value(v);
	return true;
}

void kosd_admin_trust_observe(struct kosd_req *r)
{
	kos_observation obs = { 0 };
	kos_trust_info info;
	const char *event;
	json_t *value;
	bool failed;
	kos_rv rv;

	if (!need_admin_of(r, "trust", r->name, true))
		return;
	if ((event = kosd_body_string(r, "event", true, &failed)) == NULL)
		return;
	if (kos_event_parse(event, &obs.event) != KOS_OK) {
		kosd_reply_error(r, 400, "bad_request",
				 "event: latency, success, failure, integrity, usage, scope or "
				 "reputation");
		return;
	}
	if (!body_u64(r, "ops", &obs.ops) || !body_u64(r, "bytes", &obs.bytes))
		return;
	value = json_object_get(r->body, "value");
	if (value != NULL && (!json_is_number(value) || !isfinite(json_number_value(value)))) {
		kosd_reply_error(r, 400, "wrong_type", "\"value\" must be a number");
		return;
	}
	if (obs.event == KOS_EVENT_USAGE) {
		if (json_object_get(r->body, "ops") == NULL) {
			kosd_reply_error(r, 400, "missing_field", "usage needs \"ops\"");
			return;
		}
		obs.value = (double)obs.ops;
	} else if (obs.event == KOS_EVENT_LATENCY || obs.event == KOS_EVENT_REPUTATION) {
		if (value == NULL) {
			kosd_reply_error(r, 400, "missing_field", "%s needs \"value\"", event);
			return;
		}
		obs.value = json_number_value(value);
	}
	/* the engine orders observations by time: the queue goes first */
	flush_observations(r);
	rv = kos_trust_observe(r->d->trust, r->name, &obs, &info);
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, "trust observe");
		return;
	}
	kosd_reply_json(r, 200, kosj_trust_info(&info));
}

void kosd_admin_trust_forget(struct kosd_req *r)
{
	kos_rv rv;

	if (!need_admin_of(r, "trust", r->name, true))
		return;
	/* a queued observation written after the forget would bring it back */
	flush_observations(r);
	rv = kos_trust_forget(r->d->trust, r->name);
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, "trust forget");
		return;
	}
	kosd_reply_json(r, 200, json_pack("{s:s}", "forgot", r->name));
}

/* The level as kosctl threat check prints it, plus "raised". The trust
 * state it counts includes every request kosd has served. */
void kosd_admin_threat_check(struct kosd_req *r)
{
	kos_threat_info info;
	int raised = 0;
	json_t *o;
	kos_rv rv;

	if (!need_admin(r, "threat"))
		return;
	flush_observations(r);
	rv = kos_threat_evaluate(r->d->ca, &info, &raised);
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, "threat check");
		return;
	}
	o = kosj_threat_info(&info);
	if (o == NULL || json_object_set_new(o, "raised", json_boolean(raised)) != 0) {
		json_decref(o);
		kosd_reply_error(r, 503, "unavailable", "out of memory");
		return;
	}
	kosd_reply_json(r, 200, o);
}

void kosd_admin_key_show(struct kosd_req *r)
{
	json_t *obj = NULL;
	kos_rv rv;

	if (!need_admin(r, "keys"))
		return;
	rv = kosj_key_show(r->d->keys, r->name, &obj);
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, "key show");
		return;
	}
	kosd_reply_json(r, 200, obj);
}

void kosd_admin_threat_get(struct kosd_req *r)
{
	kos_threat_info info;
	kos_rv rv;

	if (!need_admin(r, "threat"))
		return;
	rv = kos_threat_get(r->d->ca, &info);
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, "threat");
		return;
	}
	kosd_reply_json(r, 200, kosj_threat_info(&info));
}

/* The backend tokens as kosd's own handle sees them: the call statistics
 * are kosd's, which is what an operator watching it wants. */
void kosd_admin_kms(struct kosd_req *r)
{
	size_t i, n = kos_hsm_token_count(r->d->hsm), down = 0;
	json_int_t calls = 0, failures = 0;
	json_t *arr;

	if (!need_admin(r, "kms"))
		return;
	if ((arr = json_array()) == NULL) {
		kosd_reply_error(r, 503, "unavailable", "out of memory");
		return;
	}
	for (i = 0; i < n; i++) {
		json_t *row;
		int up = 0;

		row = kosj_token(r->d->hsm, i, &up);
		if (row == NULL || json_array_append_new(arr, row) != 0) {
			json_decref(arr);
			kosd_reply_error(r, 503, "unavailable", "out of memory");
			return;
		}
		down += !up;
		calls += json_integer_value(json_object_get(row, "calls"));
		failures += json_integer_value(json_object_get(row, "failures"));
	}
	kosd_reply_json(r, 200,
			json_pack("{s:o, s:s, s:{s:I, s:I, s:I, s:I}}", "tokens", arr, "health",
				  down == 0 ? "ok" : "degraded", "stats", "tokens", (json_int_t)n,
				  "unreachable", (json_int_t)down, "calls", calls, "failures",
				  failures));
}

/* --- services --- */

void kosd_admin_service_register(struct kosd_req *r)
{
	const char *name, *ops;
	bool failed;
	kos_rv rv;

	if ((name = kosd_body_string(r, "name", true, &failed)) == NULL ||
	    (ops = kosd_body_string(r, "ops", true, &failed)) == NULL)
		return;
	snprintf(r->target, sizeof(r->target), "%s", name);
	if (!need_admin(r, "services"))
		return;
	if (!kos_service_name_valid(name) || !kos_service_ops_valid(ops)) {
		kosd_reply_error(r, 400, "bad_request", "invalid service name or operation list");
		return;
	}
	rv = kos_service_register(r->d->services, name, ops);
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, "service register");
		return;
	}
	kosd_reply_json(r, 200,
			json_pack("{s:s, s:s, s:i}", "name", name, "ops", ops, "seed_version", 1));
}

void kosd_admin_service_rotate(struct kosd_req *r)
{
	json_t *breach;
	uint32_t v = 0;
	kos_rv rv;

	if (!need_admin(r, "services"))
		return;
	breach = json_object_get(r->body, "breach");
	if (breach != NULL && !json_is_boolean(breach)) {
		kosd_reply_error(r, 400, "wrong_type", "\"breach\" must be true or false");
		return;
	}
	rv = kos_service_rotate(r->d->services, r->name,
				json_is_true(breach) ? KOS_SERVICE_ROTATE_BREACH : 0, &v);
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, "service rotate");
		return;
	}
	kosd_reply_json(r, 200, json_pack("{s:s, s:I, s:b}", "name", r->name, "seed_version",
					  (json_int_t)v, "breach", json_is_true(breach)));
}

static int service_one(const kos_service_info *info, void *arg)
{
	return json_array_append_new(arg, kosj_service_info(info)) == 0 ? 0 : KOS_E_NOMEM;
}

void kosd_admin_service_list(struct kosd_req *r)
{
	json_t *arr;
	kos_rv rv;

	if (!need_admin(r, "services"))
		return;
	if ((arr = json_array()) == NULL) {
		kosd_reply_error(r, 503, "unavailable", "out of memory");
		return;
	}
	rv = kos_service_list(r->d->services, service_one, arr);
	if (rv != KOS_OK) {
		json_decref(arr);
		kosd_reply_rv(r, rv, "service list");
		return;
	}
	kosd_reply_json(r, 200, json_pack("{s:o}", "services", arr));
}

void kosd_admin_service_show(struct kosd_req *r)
{
	kos_service_info info;
	kos_rv rv;

	if (!need_admin(r, "services"))
		return;
	rv = kos_service_get_info(r->d->services, r->name, &info);
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, "service show");
		return;
	}
	kosd_reply_json(r, 200, kosj_service_info(&info));
}

void kosd_admin_service_ops(struct kosd_req *r)
{
	const char *ops;
	bool failed;
	kos_rv rv;

	if (!need_admin(r, "services"))
		return;
	if ((ops = kosd_body_string(r, "ops", true, &failed)) == NULL)
		return;
	if (!kos_service_ops_valid(ops)) {
		kosd_reply_error(r, 400, "bad_request", "invalid operation list");
		return;
	}
	rv = kos_service_set_ops(r->d->services, r->name, ops);
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, "service ops");
		return;
	}
	kosd_reply_json(r, 200, json_pack("{s:s, s:s}", "name", r->name, "ops", ops));
}

/* Every token of the service stops validating: its seed is gone. */
void kosd_admin_service_remove(struct kosd_req *r)
{
	kos_rv rv;

	if (!need_admin(r, "services"))
		return;
	rv = kos_service_remove(r->d->services, r->name);
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, "service remove");
		return;
	}
	kosd_reply_json(r, 200, json_pack("{s:s}", "removed", r->name));
}
