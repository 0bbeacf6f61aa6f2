/* kosd's client routes: health, metrics, credentials, and the key
 * operations, each steps 3-6 of the pipeline through kos_access (DESIGN.md
 * 3) after http.c authenticated the caller (steps 1-2). */
#include "config.h"

#include "tools/kosd/kosd.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sys/queue.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

/* Above any salt an RSA key of kos's takes (the key's size sets the real
 * bound, which kos_key_sign_with() checks); caps what is read here. */
#define SALT_LEN_MAX 4096

void kosd_route_health(struct kosd_req *r)
{
	kosd_reply_json(r, 200,
			json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "status", "ok", "version",
				  PACKAGE_VERSION, "role", kosd_role_name(r->d), "policy",
				  kos_policy_get0_path(r->d->policy), "pending_observations",
				  (json_int_t)kosd_obs_pending(r->d->obs), "pending_ledger",
				  (json_int_t)kosd_ledger_pending(r->d->ledger)));
}

void kosd_route_metrics(struct kosd_req *r)
{
	char *text = kosd_metrics_render(r->d);

	if (text == NULL) {
		kosd_reply_error(r, 503, "unavailable", "out of memory");
		return;
	}
	kosd_reply_text(r, 200, "text/plain; version=0.0.4", text);
	free(text);
}

/* {"credential", "client", "expires"} for a credential just issued. */
static void reply_credential(struct kosd_req *r, char *token)
{
	kos_cred_claims c;
	json_t *o;
	kos_rv rv;

	/* a refreshed credential keeps its cnf: it verifies with the
	 * certificate of the connection it was asked for on */
	rv = kos_cred_verify(r->d->ca, token, kosd_req_x5t(r), &c, NULL);
	if (rv != KOS_OK) {
		kos_cred_free(token);
		kosd_reply_rv(r, rv, "credential");
		return;
	}
	if (!r->authed)
		snprintf(r->who, sizeof(r->who), "%s", c.sub);
	o = json_pack("{s:s, s:s, s:I, s:s}", "credential", token, "client", c.sub, "expires",
		      (json_int_t)(c.exp / KOS_USEC_PER_SEC), "scope", c.scope);
	kos_cred_free(token);
	kosd_reply_json(r, 200, o);
}

void kosd_route_enroll(struct kosd_req *r)
{
	const char *secret;
	char *token = NULL;
	bool failed;
	kos_rv rv;

	char source[64];

	/* a sender that failed too often proves nothing more this window */
	kosd_req_source(r, source, sizeof(source));
	if (kosd_source_blocked(r->d, source)) {
		kosd_reply_error(r, 429, "too_many_failures",
				 "too many failed attempts from this sender: try again later");
		return;
	}
	secret = kosd_body_string(r, "secret", true, &failed);
	if (secret == NULL)
		return;
	/* over TLS the credential is bound to the certificate presented */
	rv = kos_cred_enroll_bound(r->d->ca, secret, kosd_req_x5t(r), &token);
	if (rv == KOS_E_INTEGRITY) {
		kosd_reply_error(r, 401, "invalid_secret",
				 "unknown, expired or already used enrollment secret");
		return;
	}
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, "enroll");
		return;
	}
	reply_credential(r, token);
}

void kosd_route_refresh(struct kosd_req *r)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(r->req), "Authorization");
	kos_cred_reason reason = KOS_CRED_ERROR;
	const char *scope;
	char *token = NULL;
	bool failed;
	kos_rv rv;

	scope = kosd_body_string(r, "scope", false, &failed);
	if (failed)
		return;
	/* authenticate() checked the header's form */
	rv = kos_cred_refresh(r->d->ca, h + 7, kosd_req_x5t(r), scope, &token, &reason);
	if (rv == KOS_E_INTEGRITY) {
		kosd_reply_error(r, 401, reason == KOS_CRED_REVOKED ? "revoked" : "invalid_credential",
				 "%s", kos_cred_reason_name(reason));
		return;
	}
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, "refresh");
		return;
	}
	reply_credential(r, token);
}

static bool scope_covers_key(const char *scope, const char *name)
{
	static const char *const actions[] = { "encrypt", "decrypt", "rewrap", "key",
					       "sign",    "pubkey",  "certify" };
	size_t i;

	for (i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
		if (kos_scope_allows(scope, actions[i], name))
			return true;
	return false;
}

struct list_arg {
	const char *scope;
	json_t *arr;
	bool oom;
};

static int list_one(const kos_key_info *k, void *varg)
{
	struct list_arg *a = varg;
	json_t *o;

	if (!scope_covers_key(a->scope, k->name))
		return 0;
	o = json_pack("{s:s, s:s, s:I, s:I, s:I}", "name", k->name, "type",
		      kos_key_type_name(k->type), "current", (json_int_t)k->current,
		      "min_version", (json_int_t)k->min_version, "versions",
		      (json_int_t)k->versions);
	if (o == NULL || json_array_append_new(a->arr, o) != 0) {
		a->oom = true;
		return 1;
	}
	return 0;
}

/* Steps 3 and 4 of the pipeline for a route kos_access does not serve:
 * action:resource in scope (action NULL: a listing that filters by scope
 * itself) and trust above deny. False after replying. */
static bool admit(struct kosd_req *r, const char *action, const char *resource)
{
	kos_request rq = { .action = action, .resource = resource };

	return kosd_admit(r, &rq, NULL);
}

/* ?name=NAME&type=TYPE of a key listing, both optional (*type -1: any);
 * false after replying 400 to an unreadable query, a parameter of another
 * name, or a bad value. name points into params, which the caller clears
 * (evhttp_clear_headers) whatever this returns. */
static bool query_filter(struct kosd_req *r, struct evkeyvalq *params, const char **name,
			 int *type)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(r->req);
	const char *q = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
	const struct evkeyval *kv;
	const char *t;
	kos_key_type kt;

	*name = NULL;
	*type = -1;
	TAILQ_INIT(params);
	if (q == NULL || q[0] == '\0')
		return true;
	if (evhttp_parse_query_str(q, params) != 0) {
		kosd_reply_error(r, 400, "bad_request", "unreadable query string");
		return false;
	}
	/* a misspelt filter must not widen the answer to every key */
	TAILQ_FOREACH(kv, params, next) {
		if (strcmp(kv->key, "name") != 0 && strcmp(kv->key, "type") != 0) {
			kosd_reply_error(r, 400, "bad_request",
					 "a key listing filters by name and type only");
			return false;
		}
	}
	*name = evhttp_find_header(params, "name");
	if (*name != NULL && !kos_key_name_valid(*name)) {
		kosd_reply_error(r, 400, "bad_request", "name is not a key name");
		return false;
	}
	t = evhttp_find_header(params, "type");
	if (t != NULL) {
		if (kos_key_type_parse(t, &kt) != KOS_OK) {
			kosd_reply_error(r, 400, "bad_request",
					 "type must be one of dek, ec-p256, ed25519, rsa-2048, "
					 "rsa-3072");
			return false;
		}
		*type = (int)kt;
	}
	return true;
}

void kosd_route_keys(struct kosd_req *r)
{
	struct list_arg a = { r->claims.scope, NULL, false };
	struct evkeyvalq params;
	const char *name;
	int type;
	kos_rv rv;

	if (!admit(r, NULL, NULL))
		return;
	if (!query_filter(r, &params, &name, &type))
		goto out;
	a.arr = json_array();
	if (a.arr == NULL) {
		kosd_reply_error(r, 503, "unavailable", "out of memory");
		goto out;
	}
	/* a name out of the caller's scope lists nothing, as it would unfiltered */
	rv = kos_key_list_filter(r->d->keys, name, type, list_one, &a);
	if (a.oom || (rv != KOS_OK && rv != 1)) {
		json_decref(a.arr);
		if (a.oom)
			kosd_reply_error(r, 503, "unavailable", "out of memory");
		else
			kosd_reply_rv(r, rv, "keys");
		goto out;
	}
	kosd_reply_json(r, 200, json_pack("{s:o}", "keys", a.arr));
out:
	evhttp_clear_headers(&params);
}

/* ?version=V of the request (0 when absent: the current version); false
 * after replying 400 to anything but a decimal 1..UINT32_MAX. */
static bool query_version(struct kosd_req *r, uint32_t *out)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(r->req);
	const char *q = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
	struct evkeyvalq params;
	const char *v;
	unsigned long long n;
	char *end;
	bool ok = true;

	*out = 0;
	if (q == NULL || q[0] == '\0')
		return true;
	/* evhttp_parse_query_str initialises params and clears them on failure */
	if (evhttp_parse_query_str(q, &params) != 0) {
		kosd_reply_error(r, 400, "bad_request", "unreadable query string");
		return false;
	}
	v = evhttp_find_header(&params, "version");
	if (v != NULL) {
		errno = 0;
		n = strtoull(v, &end, 10);
		if (v[0] < '0' || v[0] > '9' || *end != '\0' || errno != 0 || n < 1 ||
		    n > UINT32_MAX) {
			kosd_reply_error(r, 400, "wrong_type", "version must be an integer >= 1");
			ok = false;
		} else {
			*out = (uint32_t)n;
		}
	}
	evhttp_clear_headers(&params);
	return ok;
}

void kosd_route_pubkey(struct kosd_req *r)
{
	uint32_t version, got = 0;
	char *pem = NULL;
	kos_rv rv;
	/* the public half belongs to whoever may use the private one: to
	 * sign, or (an RSA key) to decrypt, besides pubkey:NAME itself */
	const char *action = kos_scope_allows(r->claims.scope, "pubkey", r->name) ? "pubkey"
			     : kos_scope_allows(r->claims.scope, "sign", r->name)  ? "sign"
			     : kos_scope_allows(r->claims.scope, "decrypt", r->name) ? "decrypt"
										 : NULL;

	if (action == NULL) {
		/* admitted as a pubkey request, so the violation is observed */
		(void)admit(r, "pubkey", r->name);
		return;
	}
	if (!admit(r, action, r->name))
		return;
	if (!query_version(r, &version))
		return;
	rv = kos_key_pubkey_pem_at(r->d->keys, r->name, version, &pem, &got);
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, "pubkey");
		return;
	}
	/* the version always: a caller of the current key learns which it is */
	kosd_reply_json(r, 200, json_pack("{s:s, s:I, s:s}", "name", r->name, "version",
					  (json_int_t)got, "pem", pem));
	kos_free(pem);
}

/* A refusal of the access module: 403 with its reason. */
static void reply_refused(struct kosd_req *r, const kos_access_result *res)
{
	const char *reason = res->reason != NULL ? res->reason : "refused";
	const char *code = strcmp(reason, "out of scope") == 0	  ? "out_of_scope"
			   : strcmp(reason, "trust too low") == 0 ? "trust_too_low"
								  : "refused";

	kosd_reply_error(r, 403, code, "%s", reason);
}

/* Records the decision; true when the operation went ahead. */
static bool decided(struct kosd_req *r, kos_rv rv, const kos_access_result *res, const char *what)
{
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, what);
		return false;
	}
	r->tier = kos_tier_name(res->tier);
	kosd_metrics_decision(r->d->metrics, res->tier, res->delivery);
	if (res->delivery == KOS_DELIVER_REFUSED) {
		reply_refused(r, res);
		return false;
	}
	return true;
}

void kosd_route_encrypt(struct kosd_req *r)
{
	kos_access_result res;
	const char *context;
	uint8_t *pt = NULL;
	size_t len = 0;
	bool failed;
	kos_rv rv;

	memset(&res, 0, sizeof(res));
	context = kosd_body_string(r, "context", false, &failed);
	if (failed || !kosd_body_b64(r, "plaintext", &pt, &len))
		goto out;
	rv = kos_access_encrypt(r->d->access, r->claims.sub, r->claims.scope, r->name, context, pt,
				len, &res);
	if (!decided(r, rv, &res, "encrypt"))
		goto out;
	kosd_reply_json(r, 200,
			json_pack("{s:o, s:s, s:I}", "envelope", kosd_b64_json(res.data, res.data_len),
				  "key", r->name, "version", (json_int_t)res.version));
out:
	kos_access_result_clear(&res);
	kos_secret_free(pt, len);
}

void kosd_route_decrypt(struct kosd_req *r)
{
	kos_access_result res;
	const char *context;
	uint8_t *env = NULL;
	size_t len = 0;
	bool failed;
	kos_rv rv;

	memset(&res, 0, sizeof(res));
	context = kosd_body_string(r, "context", false, &failed);
	if (failed || !kosd_body_b64(r, "envelope", &env, &len))
		goto out;
	rv = kos_access_decrypt(r->d->access, r->claims.sub, r->claims.scope, context, env, len,
				&res);
	if (!decided(r, rv, &res, "decrypt"))
		goto out;
	kosd_reply_json(r, 200,
			json_pack("{s:o, s:I}", "plaintext", kosd_b64_json(res.data, res.data_len),
				  "version", (json_int_t)res.version));
out:
	kos_access_result_clear(&res);
	kos_secret_free(env, len);
}

/* An optional non-negative integer member up to max; false after replying. */
static bool body_uint(struct kosd_req *r, const char *key, json_int_t max, uint32_t *out)
{
	json_t *v = json_object_get(r->body, key);

	*out = 0;
	if (v == NULL || json_is_null(v))
		return true;
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max) {
		kosd_reply_error(r, 400, "wrong_type", "\"%s\" must be an integer 0..%lld", key,
				 (long long)max);
		return false;
	}
	*out = (uint32_t)json_integer_value(v);
	return true;
}

/* Each reference with its grant: a credential of the caller for exactly
 * that share, valid for seconds, and where to fetch it: the KMS front that
 * kos.conf's kms_fronts names for its token, or (no "kms") this kosd
 * (kms.c serves it). NULL after replying. */
static json_t *refs_json(struct kosd_req *r, const kos_access_result *res)
{
	json_t *arr = json_array();
	size_t i;

	if (arr == NULL) {
		kosd_reply_error(r, 503, "unavailable", "out of memory");
		return NULL;
	}
	for (i = 0; i < res->n_refs; i++) {
		char *grant = NULL;
		json_t *o;
		kos_rv rv;

		rv = kos_cred_issue_grant(r->d->ca, r->claims.sub, res->refs[i].share_id,
					  r->claims.x5t, KOSD_GRANT_LIFETIME, &grant);
		if (rv != KOS_OK) {
			json_decref(arr);
			kosd_reply_rv(r, rv, "grant");
			return NULL;
		}
		const char *kms = kos_config_kms_front(r->d->conf, res->refs[i].kms_token);

		o = json_pack("{s:s, s:s, s:i, s:s}", "kms_token", res->refs[i].kms_token, "share_id",
			      res->refs[i].share_id, "x", (int)res->refs[i].x, "grant", grant);
		kos_cred_free(grant);
		if (o != NULL && kms != NULL && json_object_set_new(o, "kms", json_string(kms)) != 0) {
			json_decref(o);
			o = NULL;
		}
		if (o == NULL || json_array_append_new(arr, o) != 0) {
			json_decref(arr);
			kosd_reply_error(r, 503, "unavailable", "out of memory");
			return NULL;
		}
	}
	return arr;
}

struct kcv_arg {
	uint32_t version;
	char hex[2 * KOS_KCV_LEN + 1];
};

static int kcv_of(const kos_key_version_info *v, void *varg)
{
	struct kcv_arg *a = varg;

	if (v->version != a->version)
		return 0;
	for (size_t i = 0; i < KOS_KCV_LEN; i++)
		snprintf(a->hex + 2 * i, 3, "%02x", v->kcv[i]);
	return 1;
}

void kosd_route_request(struct kosd_req *r)
{
	kos_access_result res;
	uint32_t version;
	json_t *o = NULL;
	kos_rv rv;

	memset(&res, 0, sizeof(res));
	if (!body_uint(r, "version", UINT32_MAX, &version))
		return;
	rv = kos_access_key(r->d->access, r->claims.sub, r->claims.scope, r->name, version, &res);
	if (!decided(r, rv, &res, "request"))
		goto out;
	switch (res.delivery) {
	case KOS_DELIVER_DEK:
		o = json_pack("{s:s, s:s, s:o, s:I, s:I}", "delivery", "dek", "tier", "high", "dek",
			      kosd_b64_json(res.dek, sizeof(res.dek)), "version",
			      (json_int_t)res.version, "cache_seconds",
			      (json_int_t)(kos_policy_key_cache(r->d->policy) / KOS_USEC_PER_SEC));
		break;
	case KOS_DELIVER_SHARES: {
		/* the key check value lets the client check its reconstruction */
		struct kcv_arg ka = { .version = res.version, .hex = "" };
		json_t *refs;

		rv = kos_key_versions(r->d->keys, r->name, kcv_of, &ka);
		if (rv != 1 || ka.hex[0] == '\0') {
			kosd_reply_rv(r, rv == KOS_OK ? KOS_E_NOTFOUND : rv, "key check value");
			goto out;
		}
		refs = refs_json(r, &res);
		if (refs == NULL)
			goto out;
		o = json_pack("{s:s, s:s, s:s, s:i, s:I, s:s, s:o}", "delivery", "shares", "tier",
			      "medium", "set", res.share_set, "k", (int)res.k, "version",
			      (json_int_t)res.version, "kcv", ka.hex, "refs", refs);
		break;
	}
	default:
		o = json_pack("{s:s, s:s, s:I, s:s}", "delivery", "server", "tier",
			      kos_tier_name(res.tier), "version", (json_int_t)res.version, "message",
			      "server-side only: use /v1/decrypt");
		break;
	}
	kosd_reply_json(r, 200, o);
out:
	kos_access_result_clear(&res);
}

/* What a sign request asks for: {"data"} or {"digest", "hash"}, and
 * optionally "alg", "hash" for data, "salt_len" (RSA-PSS) and "version"
 * (0 or absent: the current one). A malformed request is refused before
 * admission, as a bad "alg" always was. False after replying 400. */
static bool sign_opts(struct kosd_req *r, kos_sign_opts *o, bool *named_hash)
{
	const char *alg_s, *hash_s;
	bool has_data = json_object_get(r->body, "data") != NULL;
	bool failed;
	uint32_t salt;

	o->digest = json_object_get(r->body, "digest") != NULL;
	if (has_data == (bool)o->digest) {
		kosd_reply_error(r, 400, "bad_request",
				 "give exactly one of \"data\" and \"digest\"");
		return false;
	}
	alg_s = kosd_body_string(r, "alg", false, &failed);
	if (failed)
		return false;
	if (alg_s != NULL && kos_sig_alg_parse(alg_s, &o->alg) != KOS_OK) {
		kosd_reply_error(r, 400, "bad_request", "unknown signature algorithm");
		return false;
	}
	/* a digest is of the hash its caller names: kos cannot tell */
	hash_s = kosd_body_string(r, "hash", o->digest, &failed);
	if (failed)
		return false;
	*named_hash = hash_s != NULL;
	if (hash_s != NULL && kos_hash_parse(hash_s, &o->hash) != KOS_OK) {
		kosd_reply_error(r, 400, "bad_request",
				 "unknown hash (sha256, sha384, sha512 or sha1)");
		return false;
	}
	if (json_object_get(r->body, "salt_len") != NULL &&
	    !json_is_null(json_object_get(r->body, "salt_len"))) {
		if (!body_uint(r, "salt_len", SALT_LEN_MAX, &salt))
			return false;
		o->salt_len = (int)salt;
	}
	return body_uint(r, "version", UINT32_MAX, &o->version);
}

static int retired_of(const kos_key_version_info *v, void *varg)
{
	const uint32_t *version = varg;

	if (v->version != *version)
		return 0;
	return v->retired ? 1 : 2;
}

/* Whether version of key name is one it had and retired: asked only once
 * a version was not found, so a signature costs no more store queries.
 * A retired version is 409 "retired", one never made 404 not_found
 * (kos-api(7)). */
static bool version_retired(struct kosd_req *r, uint32_t version)
{
	return version != 0 && kos_key_versions(r->d->keys, r->name, retired_of, &version) == 1;
}

/* 409 retired for a version the key had and retired; false otherwise,
 * without replying. */
static bool reply_retired(struct kosd_req *r, kos_rv rv, uint32_t version, const char *what)
{
	if (rv != KOS_E_NOTFOUND || !version_retired(r, version))
		return false;
	kosd_reply_error(r, 409, "retired",
			 "%s: key %s version %" PRIu32 " is retired: its private key is destroyed",
			 what, r->name, version);
	return true;
}

void kosd_route_sign(struct kosd_req *r)
{
	kos_sign_opts opts = KOS_SIGN_OPTS_INIT;
	kos_access_result res;
	bool named_hash = false;
	uint8_t *in = NULL;
	size_t len = 0;
	json_t *o;
	kos_rv rv;

	memset(&res, 0, sizeof(res));
	if (!sign_opts(r, &opts, &named_hash))
		goto out;
	if (!kosd_body_b64(r, opts.digest ? "digest" : "data", &in, &len))
		goto out;
	if (opts.digest && len != kos_hash_len(opts.hash)) {
		kosd_reply_error(r, 400, "bad_request", "a %s digest is %zu bytes, not %zu",
				 kos_hash_name(opts.hash), kos_hash_len(opts.hash), len);
		goto out;
	}
	rv = kos_access_sign_with(r->d->access, r->claims.sub, r->claims.scope, r->name, &opts,
				  in, len, &res);
	/* its own code: a site setting refused the request, not the client's
	 * trust, so a caller can tell an administrator what to change */
	if (rv == KOS_E_POLICY) {
		kosd_reply_error(r, 403, "policy", "sign: %s", kos_last_error());
		goto out;
	}
	if (reply_retired(r, rv, opts.version, "sign"))
		goto out;
	if (!decided(r, rv, &res, "sign"))
		goto out;
	o = json_pack("{s:o, s:s, s:I}", "signature", kosd_b64_json(res.data, res.data_len), "alg",
		      kos_sig_alg_name(opts.alg), "version", (json_int_t)res.version);
	if (o != NULL && named_hash &&
	    json_object_set_new(o, "hash", json_string(kos_hash_name(opts.hash))) != 0) {
		json_decref(o);
		o = NULL;
	}
	kosd_reply_json(r, 200, o);
out:
	kos_access_result_clear(&res);
	kos_secret_free(in, len);
}

/* --- RSA decryption inside the HSM ------------------------------------------------- */

/* An optional hash member (sha1, sha256, sha384, sha512) into *h; false
 * after replying 400. */
static bool body_hash(struct kosd_req *r, const char *key, kos_hash *h, bool *named)
{
	const char *s;
	bool failed;

	s = kosd_body_string(r, key, false, &failed);
	*named = s != NULL;
	if (failed)
		return false;
	if (s != NULL && kos_hash_parse(s, h) != KOS_OK) {
		kosd_reply_error(r, 400, "bad_request",
				 "\"%s\": unknown hash (sha1, sha256, sha384 or sha512)", key);
		return false;
	}
	return true;
}

/* What an RSA decryption asks for: "padding" (pkcs1 or oaep, required),
 * for OAEP "hash" (default sha1, as RFC 8017 and OpenSSL), "mgf1"
 * (default: the OAEP hash) and "label" (base64, default none), and
 * "version" (0 or absent: the current one). The label's buffer goes to
 * *label (kos_free). Refused before admission, as a bad sign request is;
 * false after replying 400. SHA-1 is taken: in OAEP it is no signature. */
static bool rsa_opts(struct kosd_req *r, kos_rsa_decrypt_opts *o, uint8_t **label)
{
	json_t *lab = json_object_get(r->body, "label");
	bool failed, named_hash, named_mgf;
	const char *pad;
	size_t n = 0;

	*label = NULL;
	pad = kosd_body_string(r, "padding", true, &failed);
	if (failed)
		return false;
	if (strcmp(pad, "pkcs1") == 0) {
		o->padding = KOS_RSA_PAD_PKCS1;
	} else if (strcmp(pad, "oaep") == 0) {
		o->padding = KOS_RSA_PAD_OAEP;
	} else {
		kosd_reply_error(r, 400, "bad_request", "\"padding\" must be pkcs1 or oaep");
		return false;
	}
	if (!body_hash(r, "hash", &o->hash, &named_hash))
		return false;
	o->mgf1 = o->hash;
	if (!body_hash(r, "mgf1", &o->mgf1, &named_mgf))
		return false;
	if (o->padding == KOS_RSA_PAD_PKCS1 &&
	    (named_hash || named_mgf || (lab != NULL && !json_is_null(lab)))) {
		kosd_reply_error(r, 400, "bad_request",
				 "\"hash\", \"mgf1\" and \"label\" are OAEP's: pkcs1 takes none");
		return false;
	}
	if (lab != NULL && !json_is_null(lab)) {
		if (!kosd_body_b64(r, "label", label, &n))
			return false;
		o->label = *label;
		o->label_len = n;
	}
	return body_uint(r, "version", UINT32_MAX, &o->version);
}

/* Every failure of the decryption itself gets one answer, status, code and
 * message alike, whatever failed (the token's padding check, kos's OAEP
 * decoding), so the answer is no padding oracle by content; the failure
 * is the caller's integrity failure (kos_access_rsa_decrypt()). */
void kosd_route_rsa_decrypt(struct kosd_req *r)
{
	kos_rsa_decrypt_opts opts = KOS_RSA_DECRYPT_OPTS_INIT;
	kos_access_result res;
	uint8_t *ct = NULL, *label = NULL;
	size_t len = 0;
	kos_rv rv;

	memset(&res, 0, sizeof(res));
	if (!rsa_opts(r, &opts, &label) || !kosd_body_b64(r, "ciphertext", &ct, &len))
		goto out;
	rv = kos_access_rsa_decrypt(r->d->access, r->claims.sub, r->claims.scope, r->name, &opts,
				    ct, len, &res);
	if (rv == KOS_E_INTEGRITY) {
		kosd_reply_error(r, 400, "decrypt_failed", "decryption failed");
		goto out;
	}
	if (reply_retired(r, rv, opts.version, "rsa decrypt"))
		goto out;
	if (!decided(r, rv, &res, "rsa decrypt"))
		goto out;
	kosd_reply_json(r, 200,
			json_pack("{s:o, s:I}", "plaintext", kosd_b64_json(res.data, res.data_len),
				  "version", (json_int_t)res.version));
out:
	kos_access_result_clear(&res);
	kos_free(ct);
	kos_free(label);
}

/* --- AES-256-GCM with the caller's parameters (CKM_AES_GCM) ------------------------ */

/* The body's "iv", "aad" (optional) and "tag_len" (optional: 16) into p,
 * the buffers in *iv and *aad (kos_secret_free with their lengths); false
 * after replying. Sizes are kos_key_gcm_*'s to check: one message for
 * every layer. */
static bool gcm_params(struct kosd_req *r, kos_gcm_params *p, uint8_t **iv, uint8_t **aad,
		       size_t *aad_cap)
{
	uint32_t tag_len;

	memset(p, 0, sizeof(*p));
	*iv = *aad = NULL;
	*aad_cap = 0;
	if (!body_uint(r, "tag_len", 255, &tag_len) || !kosd_body_b64(r, "iv", iv, &p->iv_len))
		return false;
	p->iv = *iv;
	p->tag_len = json_object_get(r->body, "tag_len") != NULL ? tag_len : KOS_GCM_TAG_MAX;
	if (json_object_get(r->body, "aad") != NULL) {
		if (!kosd_body_b64(r, "aad", aad, aad_cap))
			return false;
		p->aad = *aad;
		p->aad_len = *aad_cap;
	}
	return true;
}

static void route_gcm(struct kosd_req *r, bool enc)
{
	const char *what = enc ? "gcm encrypt" : "gcm decrypt";
	kos_access_result res;
	kos_gcm_params p;
	uint8_t *iv = NULL, *aad = NULL, *in = NULL;
	size_t aad_len = 0, len = 0;
	uint32_t version;
	kos_rv rv;

	memset(&res, 0, sizeof(res));
	if (!body_uint(r, "version", UINT32_MAX, &version) ||
	    !gcm_params(r, &p, &iv, &aad, &aad_len) ||
	    !kosd_body_b64(r, enc ? "plaintext" : "ciphertext", &in, &len))
		goto out;
	if (!enc && version == 0) {
		/* no envelope names it: the module keeps it with its object */
		kosd_reply_error(r, 400, "missing_field", "\"version\" is required");
		goto out;
	}
	if (enc)
		rv = kos_access_gcm_encrypt(r->d->access, r->claims.sub, r->claims.scope, r->name,
					    version, &p, in, len, &res);
	else
		rv = kos_access_gcm_decrypt(r->d->access, r->claims.sub, r->claims.scope, r->name,
					    version, &p, in, len, &res);
	if (!decided(r, rv, &res, what))
		goto out;
	kosd_reply_json(r, 200,
			json_pack("{s:o, s:s, s:I}", enc ? "ciphertext" : "plaintext",
				  kosd_b64_json(res.data, res.data_len), "key", r->name, "version",
				  (json_int_t)res.version));
out:
	kos_access_result_clear(&res);
	kos_secret_free(in, len);
	kos_secret_free(aad, aad_len);
	kos_free(iv);
}

void kosd_route_gcm_encrypt(struct kosd_req *r)
{
	route_gcm(r, true);
}

void kosd_route_gcm_decrypt(struct kosd_req *r)
{
	route_gcm(r, false);
}

/* --- certificates beside signing keys ------------------------------------------------ */

/* Writing needs certify:NAME: a scope of its own, so the holder of a CA's
 * issuing workflow can attach certificates without signing or managing
 * keys. */
void kosd_route_cert_set(struct kosd_req *r)
{
	uint8_t *der = NULL;
	uint32_t version, got = 0;
	size_t len = 0;
	kos_rv rv;

	if (!admit(r, "certify", r->name))
		return;
	if (!body_uint(r, "version", UINT32_MAX, &version) || !kosd_body_b64(r, "der", &der, &len))
		goto out;
	rv = kos_key_cert_set(r->d->keys, r->name, version, der, len, &got);
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, "certificate");
		goto out;
	}
	kosd_reply_json(r, 200, json_pack("{s:s, s:I}", "name", r->name, "version", (json_int_t)got));
out:
	kos_free(der);
}

/* Reading: every scope that reaches the key, as a PKCS#11 client that
 * may use a key also sees its certificate. */
void kosd_route_cert_get(struct kosd_req *r)
{
	static const char *const actions[] = { "sign", "pubkey", "certify", "key", "encrypt",
					       "decrypt" };
	kos_request rq = { .action = "pubkey", .resource = r->name };
	uint32_t version, got = 0;
	uint8_t *der = NULL;
	char *pem = NULL;
	size_t len = 0, i;
	kos_rv rv;

	for (i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
		if (kos_scope_allows(r->claims.scope, actions[i], r->name)) {
			rq.action = actions[i];
			break;
		}
	/* none: admitted as a pubkey request, so the violation is observed */
	if (!kosd_admit(r, &rq, i < sizeof(actions) / sizeof(actions[0]) ? NULL
				: "a scope reaching the key (sign, pubkey or certify)"))
		return;
	if (!query_version(r, &version))
		return;
	rv = kos_key_cert_get(r->d->keys, r->name, version, &der, &len, &got);
	if (rv == KOS_OK)
		rv = kos_key_cert_pem(der, len, &pem);
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, "certificate");
		goto out;
	}
	kosd_reply_json(r, 200,
			json_pack("{s:s, s:I, s:o, s:s}", "name", r->name, "version",
				  (json_int_t)got, "der", kosd_b64_json(der, len), "pem", pem));
out:
	kos_free(pem);
	kos_free(der);
}

/* Removing takes the scope writing takes: certify:NAME. */
void kosd_route_cert_remove(struct kosd_req *r)
{
	uint32_t version;
	kos_rv rv;

	if (!admit(r, "certify", r->name))
		return;
	if (!body_uint(r, "version", UINT32_MAX, &version))
		return;
	rv = kos_key_cert_remove(r->d->keys, r->name, version);
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, "certificate");
		return;
	}
	kosd_reply_json(r, 200, json_pack("{s:s, s:I, s:b}", "name", r->name, "version",
					  (json_int_t)version, "removed", 1));
}
