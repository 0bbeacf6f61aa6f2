/* The JSON documents shared by kosd and kosctl (kosjson.h). */
#include "config.h"

#include "tools/common/kosjson.h"

#include "common/internal.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

void kosj_iso_time(kos_usec t, char *buf, size_t len, bool dash_zero)
{
	if (dash_zero && t == 0)
		snprintf(buf, len, "-");
	else if (kos_time_format(t, buf, len) != KOS_OK)
		snprintf(buf, len, "@%lld", (long long)(t / KOS_USEC_PER_SEC));
}

/* Three decimals are plenty, and keep JSON free of binary-fraction noise. */
static double round3(double v)
{
	return round(v * 1000.0) / 1000.0;
}

json_t *kosj_trust_info(const kos_trust_info *info)
{
	char created[32], last[32], since[32];

	kosj_iso_time(info->created, created, sizeof(created), false);
	kosj_iso_time(info->last_activity, last, sizeof(last), false);
	/* "-" while no penalty set a ceiling (it is 100 then) */
	kosj_iso_time(info->ceiling_since, since, sizeof(since), true);
	return json_pack(
	    "{s:s, s:f, s:s, s:{s:f, s:f, s:f, s:f, s:f}, s:s, s:s, s:I, s:I, s:I, s:b, s:f, s:s}",
	    "client",
	    info->client, "score", round3(info->score), "tier", kos_tier_name(info->tier),
	    "factors", kos_factor_name(KOS_FACTOR_LATENCY),
	    round3(info->factor[KOS_FACTOR_LATENCY]), kos_factor_name(KOS_FACTOR_INTEGRITY),
	    round3(info->factor[KOS_FACTOR_INTEGRITY]), kos_factor_name(KOS_FACTOR_USAGE),
	    round3(info->factor[KOS_FACTOR_USAGE]), kos_factor_name(KOS_FACTOR_ANOMALY),
	    round3(info->factor[KOS_FACTOR_ANOMALY]), kos_factor_name(KOS_FACTOR_REPUTATION),
	    round3(info->factor[KOS_FACTOR_REPUTATION]), "created", created, "last_activity", last,
	    "observations", (json_int_t)info->observations, "integrity_failures",
	    (json_int_t)info->integrity_failures, "scope_violations",
	    (json_int_t)info->scope_violations, "anomalous", info->anomalous ? 1 : 0, "ceiling",
	    round3(info->ceiling), "ceiling_since", since);
}

json_t *kosj_client_info(const kos_ca_client_info *c)
{
	char created[32], pending[32];

	kosj_iso_time(c->created, created, sizeof(created), true);
	kosj_iso_time(c->secret_expires, pending, sizeof(pending), true);
	return json_pack("{s:s, s:s, s:s, s:b, s:s}", "client", c->name, "scope", c->scope,
			 "created", created, "disabled", c->disabled, "secret_expires", pending);
}

json_t *kosj_ca_key(const kos_ca_key_info *k, kos_usec now)
{
	char created[32], retired[32], until[32];
	const char *state = k->retired == 0 ? "current" : k->expires > now ? "retired" : "expired";

	kosj_iso_time(k->created, created, sizeof(created), true);
	kosj_iso_time(k->retired, retired, sizeof(retired), true);
	kosj_iso_time(k->expires, until, sizeof(until), true);
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "kid", k->kid, "state", state,
			 "created", created, "retired", retired, "verifies_until", until, "token",
			 k->token, "label", k->label);
}

json_t *kosj_revocation_info(const kos_revocation_info *r)
{
	char upto[32], made[32], until[32];

	kosj_iso_time(r->before, upto, sizeof(upto), true);
	kosj_iso_time(r->created, made, sizeof(made), true);
	kosj_iso_time(r->expires, until, sizeof(until), true);
	return json_pack("{s:s, s:s, s:s, s:s, s:s}", "kind", r->kind, "value", r->value,
			 "issued_up_to", upto, "created", made, "expires", until);
}

json_t *kosj_threat_info(const kos_threat_info *t)
{
	char since[32];

	kosj_iso_time(t->since, since, sizeof(since), true);
	return json_pack("{s:s, s:s, s:s, s:s}", "level", kos_threat_name(t->level), "since", since,
			 "set_by",
			 t->since == 0	? "-"
			 : t->automatic ? "automatic"
					: "administrator",
			 "reason", t->reason);
}

static json_t *ops_json(const char *ops)
{
	json_t *a = json_array();
	const char *p = ops, *end;

	while (a != NULL) {
		end = strchr(p, ',');
		if (end == NULL)
			end = p + strlen(p);
		if (json_array_append_new(a, json_stringn(p, (size_t)(end - p))) != 0) {
			json_decref(a);
			return NULL;
		}
		if (*end == '\0')
			break;
		p = end + 1;
	}
	return a;
}

json_t *kosj_service_info(const kos_service_info *info)
{
	char created[32], rotated[32];

	kosj_iso_time(info->created, created, sizeof(created), false);
	kosj_iso_time(info->rotated, rotated, sizeof(rotated), false);
	return json_pack("{s:s, s:o*, s:I, s:s, s:s}", "name", info->name, "ops",
			 ops_json(info->ops), "seed_version", (json_int_t)info->seed_version,
			 "created", created, "rotated", rotated);
}

json_t *kosj_service_claims(const kos_service_claims *c)
{
	char issued[32], expires[32];

	kosj_iso_time(c->issued, issued, sizeof(issued), false);
	kosj_iso_time(c->expires, expires, sizeof(expires), false);
	return json_pack("{s:b, s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:I, s:I}", "valid", 1,
			 "service", c->service, "op", c->op, "window", (json_int_t)c->window,
			 "window_seconds", (json_int_t)(c->window_len / KOS_USEC_PER_SEC),
			 "seed_version", (json_int_t)c->seed_version, "issued", issued, "expires",
			 expires, "iat", (json_int_t)(c->issued / KOS_USEC_PER_SEC), "exp",
			 (json_int_t)(c->expires / KOS_USEC_PER_SEC));
}

/* --- key show --- */

/* Keys print "-" for every time not set (negative included). */
static void key_time(kos_usec t, char *buf, size_t len)
{
	if (t <= 0)
		snprintf(buf, len, "-");
	else
		kosj_iso_time(t, buf, len, false);
}

void kosj_hex(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

struct key_show {
	kos_keys *keys;
	const char *name;
	kos_key_type type;
	json_t *versions;
	kos_rv failed; /* a kos_key_shares() failure, reported as is */
};

struct share_arg {
	const char *set;
	json_t *arr;
};

static int share_one(const kos_key_share_info *s, void *arg)
{
	struct share_arg *l = arg;

	if (strcmp(s->set, l->set) != 0)
		return 0;
	return json_array_append_new(l->arr, json_pack("{s:i, s:s, s:s}", "x", (int)s->x, "token",
							s->token, "label", s->label)) == 0
		   ? 0
		   : KOS_E_NOMEM;
}

static int version_one(const kos_key_version_info *v, void *arg)
{
	struct key_show *sh = arg;
	char created[32], kcv[2 * KOS_KCV_LEN + 1];
	json_t *jv, *sets;
	unsigned i;

	key_time(v->created, created, sizeof(created));
	jv = json_pack("{s:I, s:s, s:s}", "version", (json_int_t)v->version, "state",
		       v->retired ? "retired" : "active", "created", created);
	if (jv == NULL || json_array_append_new(sh->versions, jv) != 0)
		return KOS_E_NOMEM;
	if (sh->type != KOS_KEY_DEK) {
		if (v->token[0] != '\0' && (json_object_set_new(jv, "token", json_string(v->token)) != 0 ||
					    json_object_set_new(jv, "label", json_string(v->label)) != 0))
			return KOS_E_NOMEM;
		return 0;
	}
	kosj_hex(v->kcv, KOS_KCV_LEN, kcv);
	sets = json_array();
	if (sets == NULL || json_object_set_new(jv, "kcv", json_string(kcv)) != 0 ||
	    json_object_set_new(jv, "sets", sets) != 0)
		return KOS_E_NOMEM;
	for (i = 0; i < v->n_sets; i++) {
		struct share_arg l = { .set = v->sets[i].name };
		json_t *js = json_pack("{s:s, s:i, s:i}", "name", v->sets[i].name, "n",
				       (int)v->sets[i].n, "k", (int)v->sets[i].k);
		kos_rv rv;

		l.arr = json_array();
		if (js == NULL || l.arr == NULL || json_object_set_new(js, "shares", l.arr) != 0 ||
		    json_array_append_new(sets, js) != 0) {
			json_decref(js);
			return KOS_E_NOMEM;
		}
		rv = kos_key_shares(sh->keys, sh->name, v->version, share_one, &l);
		if (rv != KOS_OK) {
			sh->failed = rv;
			return rv;
		}
	}
	return 0;
}

kos_rv kosj_key_show(kos_keys *keys, const char *name, json_t **out)
{
	struct key_show sh = { .keys = keys, .name = name };
	char created[32], rotated[32];
	kos_key_info info;
	json_t *obj;
	kos_rv rv;

	*out = NULL;
	rv = kos_key_get_info(keys, name, &info);
	if (rv != KOS_OK)
		return rv;
	sh.type = info.type;
	key_time(info.created, created, sizeof(created));
	key_time(info.rotated, rotated, sizeof(rotated));
	obj = json_pack("{s:s, s:s, s:I, s:I, s:I, s:s, s:s}", "name", info.name, "type",
			kos_key_type_name(info.type), "current", (json_int_t)info.current,
			"min_version", (json_int_t)info.min_version, "active_versions",
			(json_int_t)info.versions, "created", created, "rotated", rotated);
	sh.versions = json_array();
	if (obj == NULL || sh.versions == NULL ||
	    json_object_set_new(obj, "versions", sh.versions) != 0) {
		json_decref(obj);
		return KOS_E_NOMEM;
	}
	rv = kos_key_versions(keys, name, version_one, &sh);
	if (rv != KOS_OK) {
		json_decref(obj);
		return sh.failed != KOS_OK ? sh.failed : rv;
	}
	*out = obj;
	return KOS_OK;
}

/* --- backend tokens --- */

json_t *kosj_token(kos_hsm *hsm, size_t i, int *reachable)
{
	struct kos_hsm_stats st;
	int logged_in = 0, ok, have_count = 0;
	size_t objects = 0;
	char error[256] = "";
	json_t *v;
	kos_rv rv;

	rv = kos_hsm_token_check(hsm, i, &logged_in);
	ok = rv == KOS_OK;
	if (ok) {
		rv = kos_hsm_token_count_objects(hsm, i, &objects);
		have_count = rv == KOS_OK;
	}
	if (rv != KOS_OK)
		snprintf(error, sizeof(error), "%s", kos_last_error());
	memset(&st, 0, sizeof(st));
	kos_hsm_token_stats(hsm, i, &st);
	if (reachable != NULL)
		*reachable = ok;
	v = json_pack("{s:s, s:s, s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:I}", "name",
		      kos_hsm_token_get0_name(hsm, i), "role",
		      kos_token_role_name(kos_hsm_token_role(hsm, i)), "reachable", ok, "logged_in",
		      logged_in, "calls", (json_int_t)st.calls, "failures", (json_int_t)st.failures,
		      "sessions_opened", (json_int_t)st.sessions_opened, "logins",
		      (json_int_t)st.logins, "latency_ewma_us", (json_int_t)st.latency_ewma,
		      "latency_total_us", (json_int_t)st.latency_total);
	if (v == NULL)
		return NULL;
	if (json_object_set_new(v, "objects",
				have_count ? json_integer((json_int_t)objects) : json_null()) != 0 ||
	    json_object_set_new(v, "error", error[0] ? json_string(error) : json_null()) != 0) {
		json_decref(v);
		return NULL;
	}
	return v;
}

/* --- the ledger --- */

/* A stored text as printable ASCII: an entry kos wrote is unchanged; a
 * tampered one's other bytes show as '?' (and cannot make the JSON fail). */
static const char *printable(const char *in, char *buf, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len && in[i] != '\0'; i++)
		buf[i] = in[i] >= 0x20 && in[i] < 0x7f ? in[i] : '?';
	buf[i] = '\0';
	return buf;
}

json_t *kosj_ledger_entry(const kos_ledger_entry *e)
{
	char at[32], prev[2 * KOS_LEDGER_HASH_LEN + 1], hash[2 * KOS_LEDGER_HASH_LEN + 1];
	char t[7][KOS_LEDGER_RESOURCE_MAX + 1];

	kosj_iso_time(e->at, at, sizeof(at), false);
	kosj_hex(e->prev, sizeof(e->prev), prev);
	kosj_hex(e->hash, sizeof(e->hash), hash);
	return json_pack("{s:I, s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "seq",
			 (json_int_t)e->seq, "at", at, "at_usec", (json_int_t)e->at, "client",
			 printable(e->client, t[0], sizeof(t[0])), "action",
			 printable(e->action, t[1], sizeof(t[1])), "resource",
			 printable(e->resource, t[2], sizeof(t[2])), "tier",
			 printable(e->tier, t[3], sizeof(t[3])), "outcome",
			 printable(e->outcome, t[4], sizeof(t[4])), "reason",
			 printable(e->reason, t[5], sizeof(t[5])), "jti",
			 printable(e->jti, t[6], sizeof(t[6])), "prev", prev, "hash", hash);
}
