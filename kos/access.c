/* Tiered delivery (DESIGN.md sections 3 and 4): every request is checked
 * against the scope the client holds and its current trust, performs what
 * the tier allows and nothing more, and is then observed, so the decision
 * feeds the score the next decision reads. */
#include "config.h"

#include "kos/internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

struct kos_access {
	kos_keys *keys;
	kos_trust *tr;
	kos_pipeline *pl; /* steps 3, 4 and 6 */
};

kos_rv kos_access_new(kos_keys *keys, kos_trust *tr, kos_access **out)
{
	struct kos_access *acc;

	if (out == NULL)
		return kos_error_set(KOS_E_INVALID, "no output for the access handle");
	*out = NULL;
	if (keys == NULL || tr == NULL)
		return kos_error_set(KOS_E_INVALID, "access needs the key service and the trust engine");
	acc = calloc(1, sizeof(*acc));
	if (acc == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	acc->keys = keys;
	acc->tr = tr;
	if (kos_pipeline_new(tr, &acc->pl) != KOS_OK) {
		free(acc);
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	}
	*out = acc;
	return KOS_OK;
}

void kos_access_free(kos_access *acc)
{
	if (acc == NULL)
		return;
	kos_pipeline_free(acc->pl);
	free(acc);
}

void kos_access_result_clear(kos_access_result *res)
{
	if (res == NULL)
		return;
	if (res->data != NULL)
		kos_secret_free(res->data, res->data_len);
	OPENSSL_cleanse(res, sizeof(*res));
	memset(res, 0, sizeof(*res));
}

static kos_usec monotonic_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (kos_usec)ts.tv_sec * KOS_USEC_PER_SEC + ts.tv_nsec / 1000;
}

/* Step 6: the outcome of an operation as observations: its latency, and
 * success, failure or an integrity failure. */
static void observe_outcome(kos_access *acc, const char *client, kos_usec start, kos_rv rv)
{
	kos_pipeline_observe(acc->pl, client, monotonic_usec() - start, rv);
}

static void refuse(kos_access_result *res, const char *reason)
{
	res->delivery = KOS_DELIVER_REFUSED;
	res->reason = reason;
}

/* Steps 3 and 4 of the pipeline (kos_pipeline_admit) after the arguments,
 * for tiers from min_tier up (KOS_TIER_DENY: every tier but deny).
 * Returns KOS_OK with *go false and res->reason set for a refusal, or *go
 * true and res->tier set to go on. */
static kos_rv admit_from(kos_access *acc, const char *client, const char *scope,
			 const char *action, const char *name, kos_tier min_tier,
			 kos_access_result *res, bool *go)
{
	kos_request rq = { .client = client, .scope = scope, .action = action, .resource = name,
			   .min_tier = min_tier };
	kos_decision d;
	kos_rv rv;

	*go = false;
	memset(res, 0, sizeof(*res));
	if (!kos_principal_name_valid(client))
		return kos_error_set(KOS_E_INVALID, "invalid client name");
	if (name != NULL && !kos_key_name_valid(name))
		return kos_error_set(KOS_E_INVALID, "invalid key name");
	rv = kos_pipeline_admit(acc->pl, &rq, &d);
	if (rv != KOS_OK)
		return rv;
	res->score = d.score;
	res->tier = d.tier;
	if (!d.allowed) {
		refuse(res, d.reason);
		return KOS_OK;
	}
	*go = true;
	return KOS_OK;
}

static kos_rv admit(kos_access *acc, const char *client, const char *scope, const char *action,
		    const char *name, kos_access_result *res, bool *go)
{
	return admit_from(acc, client, scope, action, name, KOS_TIER_DENY, res, go);
}

/* The lowest tier a private key serves (signing.min_tier of the policy the
 * trust engine uses now, so a reload takes effect at once). */
static kos_tier private_key_tier(kos_access *acc)
{
	return kos_trust_get0_policy(acc->tr)->signing.min_tier;
}

/* Whether version (0: the current one) of key name exists and may be
 * used: between its minimum version and its current one, and not retired.
 * The error says which of the two it is not. */
struct version_arg {
	uint32_t version;
	bool found, retired;
};

static int version_of(const kos_key_version_info *v, void *varg)
{
	struct version_arg *a = varg;

	if (v->version != a->version)
		return 0;
	a->found = true;
	a->retired = v->retired;
	return 1;
}

static kos_rv usable_version(kos_access *acc, const kos_key_info *info, uint32_t version,
			     uint32_t *out)
{
	struct version_arg a = { version != 0 ? version : info->current, false, false };
	kos_rv rv;

	if (a.version > info->current || a.version == 0)
		return kos_error_set(KOS_E_NOTFOUND, "key %s has no version %u", info->name,
				     (unsigned)a.version);
	if (a.version < info->min_version)
		a.found = a.retired = true;
	else if ((rv = kos_key_versions(acc->keys, info->name, version_of, &a)) != KOS_OK &&
		 rv != 1)
		return rv;
	if (!a.found)
		return kos_error_set(KOS_E_NOTFOUND, "key %s has no version %u", info->name,
				     (unsigned)a.version);
	if (a.retired)
		return kos_error_set(KOS_E_NOTFOUND, "key %s version %u is retired", info->name,
				     (unsigned)a.version);
	*out = a.version;
	return KOS_OK;
}

/* The share set the policy assigns to score: ranges are [min, max), the top
 * one closed at 100. A score no range covers gets the set with the largest
 * threshold: when in doubt, ask for more shares. */
static const struct kos_share_set_rule *share_set_for(const struct kos_policy *pol, double score)
{
	const struct kos_share_set_rule *best = NULL;
	size_t i;

	for (i = 0; i < pol->n_share_sets; i++) {
		const struct kos_share_set_rule *r = &pol->share_sets[i];

		if (score >= r->min_score &&
		    (score < r->max_score || (r->max_score >= 100.0 && score >= 100.0)))
			return r;
	}
	for (i = 0; i < pol->n_share_sets; i++)
		if (best == NULL || pol->share_sets[i].k > best->k)
			best = &pol->share_sets[i];
	return best;
}

/* What the key service knows of name, KOS_E_INVALID when it is a signing
 * key and not a data key. */
static kos_rv dek_info(kos_access *acc, const char *name, kos_key_info *info)
{
	kos_rv rv = kos_key_get_info(acc->keys, name, info);

	if (rv == KOS_OK && info->type != KOS_KEY_DEK)
		rv = kos_error_set(KOS_E_INVALID, "key %s is a signing key, not a data key", name);
	return rv;
}

kos_rv kos_access_key(kos_access *acc, const char *client, const char *scope, const char *name,
		      uint32_t version, kos_access_result *res)
{
	const struct kos_share_set_rule *set;
	kos_key_info info;
	kos_usec start = monotonic_usec();
	bool go;
	kos_rv rv;

	if (acc == NULL || res == NULL)
		return kos_error_set(KOS_E_INVALID, "no access handle or result");
	/* the DEK is what decrypt:NAME protects; key:NAME asks for it alone */
	rv = admit(acc, client, scope, kos_scope_allows(scope, "key", name) ? "key" : "decrypt", name,
		   res, &go);
	if (rv != KOS_OK || !go)
		return rv;
	rv = dek_info(acc, name, &info);
	if (rv != KOS_OK)
		goto out;
	switch (res->tier) {
	case KOS_TIER_HIGH:
		rv = kos_key_dek(acc->keys, name, version, res->dek, &res->version);
		if (rv == KOS_OK)
			res->delivery = KOS_DELIVER_DEK;
		break;
	case KOS_TIER_MEDIUM:
		set = share_set_for(kos_trust_get0_policy(acc->tr), res->score);
		if (set == NULL) {
			rv = kos_error_set(KOS_E_POLICY, "the policy has no share set");
			break;
		}
		snprintf(res->share_set, sizeof(res->share_set), "%s", set->name);
		rv = kos_key_share_refs(acc->keys, name, version, set->name, res->refs, &res->n_refs,
					&res->k, &res->version);
		if (rv == KOS_OK)
			res->delivery = KOS_DELIVER_SHARES;
		break;
	default:
		/* low: the DEK never leaves kosd; the client asks for
		 * server-side decryption instead */
		rv = usable_version(acc, &info, version, &res->version);
		if (rv == KOS_OK) {
			res->delivery = KOS_DELIVER_SERVER;
			res->reason = "server-side only";
		}
		break;
	}
out:
	observe_outcome(acc, client, start, rv);
	if (rv != KOS_OK)
		kos_access_result_clear(res);
	return rv;
}

kos_rv kos_access_decrypt(kos_access *acc, const char *client, const char *scope,
			  const char *context, const uint8_t *env, size_t env_len,
			  kos_access_result *res)
{
	kos_envelope_info info;
	kos_usec start = monotonic_usec();
	bool go;
	kos_rv rv;

	if (acc == NULL || res == NULL)
		return kos_error_set(KOS_E_INVALID, "no access handle or result");
	memset(res, 0, sizeof(*res));
	if (!kos_principal_name_valid(client))
		return kos_error_set(KOS_E_INVALID, "invalid client name");
	rv = kos_envelope_parse(env, env_len, &info);
	if (rv != KOS_OK) {
		/* a malformed envelope is the client's integrity failure */
		observe_outcome(acc, client, start, KOS_E_INTEGRITY);
		return rv;
	}
	rv = admit(acc, client, scope, "decrypt", info.key_name, res, &go);
	if (rv != KOS_OK || !go)
		return rv;
	rv = kos_key_decrypt(acc->keys, context, env, env_len, &res->data, &res->data_len);
	if (rv == KOS_OK) {
		res->delivery = KOS_DELIVER_SERVER;
		res->version = info.key_version;
	}
	observe_outcome(acc, client, start, rv);
	if (rv != KOS_OK)
		kos_access_result_clear(res);
	return rv;
}

kos_rv kos_access_encrypt(kos_access *acc, const char *client, const char *scope,
			  const char *name, const char *context, const uint8_t *pt, size_t len,
			  kos_access_result *res)
{
	kos_envelope_info info;
	kos_usec start = monotonic_usec();
	bool go;
	kos_rv rv;

	if (acc == NULL || res == NULL)
		return kos_error_set(KOS_E_INVALID, "no access handle or result");
	rv = admit(acc, client, scope, "encrypt", name, res, &go);
	if (rv != KOS_OK || !go)
		return rv;
	rv = kos_key_encrypt(acc->keys, name, context, pt, len, &res->data, &res->data_len);
	if (rv == KOS_OK && kos_envelope_parse(res->data, res->data_len, &info) == KOS_OK) {
		res->delivery = KOS_DELIVER_SERVER;
		res->version = info.key_version;
	}
	observe_outcome(acc, client, start, rv);
	if (rv != KOS_OK)
		kos_access_result_clear(res);
	return rv;
}

/* --- rewrap ------------------------------------------------------------------------ */

void kos_rewrap_items_clear(kos_rewrap_item *items, size_t n)
{
	size_t i;

	if (items == NULL)
		return;
	for (i = 0; i < n; i++) {
		kos_free(items[i].out);
		items[i].out = NULL;
		items[i].out_len = 0;
		items[i].rv = KOS_OK;
		items[i].code = NULL;
		items[i].message[0] = '\0';
		items[i].rewrapped = 0;
		items[i].version = 0;
	}
}

/* How much an item's outcome weighs in the request's one observation: an
 * integrity failure above all (a forged or mismatched envelope), then the
 * client's other failures; the service's own failures are not the
 * client's (kos_pipeline_observe()). */
static int outcome_rank(kos_rv rv)
{
	switch (rv) {
	case KOS_OK:
		return 0;
	case KOS_E_NOMEM:
	case KOS_E_IO:
	case KOS_E_STORE:
	case KOS_E_BUSY:
		return 1;
	case KOS_E_INTEGRITY:
		return 3;
	default:
		return 2;
	}
}

/* The error code of an item's failure (kos-api(7)'s vocabulary). */
static const char *rewrap_code(kos_access *acc, const char *name, const kos_rewrap_item *it,
			       kos_rv rv)
{
	kos_envelope_info info;
	struct version_arg a = { 0, false, false };
	kos_rv vr;

	switch (rv) {
	case KOS_E_INTEGRITY:
		return "integrity";
	case KOS_E_NOTFOUND:
		/* one the key had and retired, or one it never had */
		if (kos_envelope_parse(it->env, it->env_len, &info) != KOS_OK)
			return "not_found";
		a.version = info.key_version;
		vr = kos_key_versions(acc->keys, name, version_of, &a);
		return (vr == KOS_OK || vr == 1) && a.found && a.retired ? "retired" : "not_found";
	case KOS_E_PARSE:
	case KOS_E_RANGE:
		return "bad_request";
	case KOS_E_INVALID:
		if (kos_envelope_parse(it->env, it->env_len, &info) == KOS_OK &&
		    strcmp(info.key_name, name) != 0)
			return "wrong_key";
		return "bad_request";
	case KOS_E_NOMEM:
	case KOS_E_IO:
	case KOS_E_STORE:
	case KOS_E_BUSY:
		return "unavailable";
	default:
		return "internal";
	}
}

static void rewrap_one(kos_access *acc, const char *name, kos_rewrap_item *it)
{
	kos_rv rv;

	it->out = NULL;
	it->out_len = 0;
	it->rewrapped = 0;
	it->message[0] = '\0';
	it->code = NULL;
	rv = kos_key_rewrap(acc->keys, name, it->context, it->env, it->env_len, &it->out,
			    &it->out_len, &it->version);
	it->rv = rv;
	if (rv != KOS_OK) {
		snprintf(it->message, sizeof(it->message), "%s",
			 kos_last_error()[0] != '\0' ? kos_last_error() : kos_strerror(rv));
		it->code = rewrap_code(acc, name, it, rv);
		it->version = 0;
		return;
	}
	it->rewrapped = it->out != NULL;
}

kos_rv kos_access_rewrap(kos_access *acc, const char *client, const char *scope,
			 const char *name, kos_rewrap_item *items, size_t n,
			 kos_access_result *res)
{
	kos_usec start = monotonic_usec();
	kos_rv rv, worst = KOS_OK;
	kos_key_info info;
	bool go;
	size_t i;

	if (acc == NULL || res == NULL || (items == NULL && n > 0))
		return kos_error_set(KOS_E_INVALID, "no access handle, items or result");
	if (n > KOS_REWRAP_MAX) {
		memset(res, 0, sizeof(*res));
		return kos_error_set(KOS_E_RANGE, "at most %d envelopes per rewrap request, not %zu",
				     KOS_REWRAP_MAX, n);
	}
	/* rewrap:NAME alone: neither plaintext nor DEK is handed out, so it
	 * is served at every tier but deny, as server-side decryption is */
	rv = admit(acc, client, scope, "rewrap", name, res, &go);
	if (rv != KOS_OK || !go)
		return rv;
	rv = dek_info(acc, name, &info);
	if (rv != KOS_OK)
		goto out;
	for (i = 0; i < n; i++) {
		rewrap_one(acc, name, &items[i]);
		if (outcome_rank(items[i].rv) > outcome_rank(worst))
			worst = items[i].rv;
	}
	res->delivery = KOS_DELIVER_SERVER;
	res->version = info.current;
	for (i = 0; i < n; i++)
		if (items[i].rv == KOS_OK && items[i].version > res->version)
			res->version = items[i].version;
out:
	observe_outcome(acc, client, start, rv != KOS_OK ? rv : worst);
	if (rv != KOS_OK)
		kos_access_result_clear(res);
	return rv;
}

kos_rv kos_access_sign_with(kos_access *acc, const char *client, const char *scope,
			    const char *name, const kos_sign_opts *opts, const uint8_t *in,
			    size_t len, kos_access_result *res)
{
	kos_usec start = monotonic_usec();
	bool go;
	kos_rv rv;

	if (acc == NULL || res == NULL || opts == NULL)
		return kos_error_set(KOS_E_INVALID, "no access handle, options or result");
	rv = admit_from(acc, client, scope, "sign", name, private_key_tier(acc), res, &go);
	if (rv != KOS_OK || !go)
		return rv;
	/* signing happens inside the HSM, for the tiers from signing.min_tier */
	rv = kos_key_sign_with(acc->keys, name, opts, in, len, &res->data, &res->data_len,
			       &res->version);
	if (rv == KOS_OK)
		res->delivery = KOS_DELIVER_SERVER;
	observe_outcome(acc, client, start, rv);
	if (rv != KOS_OK)
		kos_access_result_clear(res);
	return rv;
}

kos_rv kos_access_sign(kos_access *acc, const char *client, const char *scope, const char *name,
		       kos_sig_alg alg, const uint8_t *data, size_t len, kos_access_result *res)
{
	kos_sign_opts opts = KOS_SIGN_OPTS_INIT;

	opts.alg = alg;
	return kos_access_sign_with(acc, client, scope, name, &opts, data, len, res);
}

/* RSA decryption inside the HSM: the scope item of data keys (decrypt:NAME),
 * the tiers from signing.min_tier, as signing. Any failure of the
 * decryption itself is the client's integrity failure, as a tampered
 * envelope is: a client probing for a padding oracle loses its trust long
 * before it learns anything (Bleichenbacher's attack needs thousands of
 * answers). */
kos_rv kos_access_rsa_decrypt(kos_access *acc, const char *client, const char *scope,
			      const char *name, const kos_rsa_decrypt_opts *opts,
			      const uint8_t *ct, size_t len, kos_access_result *res)
{
	kos_usec start = monotonic_usec();
	bool go;
	kos_rv rv;

	if (acc == NULL || res == NULL || opts == NULL)
		return kos_error_set(KOS_E_INVALID, "no access handle, options or result");
	rv = admit_from(acc, client, scope, "decrypt", name, private_key_tier(acc), res, &go);
	if (rv != KOS_OK || !go)
		return rv;
	rv = kos_key_rsa_decrypt(acc->keys, name, opts, ct, len, &res->data, &res->data_len,
				 &res->version);
	if (rv == KOS_OK)
		res->delivery = KOS_DELIVER_SERVER;
	observe_outcome(acc, client, start, rv);
	if (rv != KOS_OK)
		kos_access_result_clear(res);
	return rv;
}

/* AES-256-GCM with the caller's parameters, server-side, for every tier
 * that is not deny, as envelopes are: a low-tier caller's CKM_AES_GCM
 * runs here, a higher tier may run it locally with its DEK. A tag that
 * does not verify is the client's integrity failure, as a tampered
 * envelope is. */
static kos_rv gcm_run(kos_access *acc, bool enc, const char *client, const char *scope,
		      const char *name, uint32_t version, const kos_gcm_params *p,
		      const uint8_t *in, size_t len, kos_access_result *res)
{
	kos_usec start = monotonic_usec();
	bool go;
	kos_rv rv;

	if (acc == NULL || res == NULL)
		return kos_error_set(KOS_E_INVALID, "no access handle or result");
	rv = admit(acc, client, scope, enc ? "encrypt" : "decrypt", name, res, &go);
	if (rv != KOS_OK || !go)
		return rv;
	if (enc)
		rv = kos_key_gcm_encrypt(acc->keys, name, version, p, in, len, &res->data,
					 &res->data_len, &res->version);
	else
		rv = kos_key_gcm_decrypt(acc->keys, name, version, p, in, len, &res->data,
					 &res->data_len);
	if (rv == KOS_OK) {
		res->delivery = KOS_DELIVER_SERVER;
		if (!enc)
			res->version = version;
	}
	observe_outcome(acc, client, start, rv);
	if (rv != KOS_OK)
		kos_access_result_clear(res);
	return rv;
}

kos_rv kos_access_gcm_encrypt(kos_access *acc, const char *client, const char *scope,
			      const char *name, uint32_t version, const kos_gcm_params *p,
			      const uint8_t *pt, size_t len, kos_access_result *res)
{
	return gcm_run(acc, true, client, scope, name, version, p, pt, len, res);
}

kos_rv kos_access_gcm_decrypt(kos_access *acc, const char *client, const char *scope,
			      const char *name, uint32_t version, const kos_gcm_params *p,
			      const uint8_t *ct, size_t len, kos_access_result *res)
{
	return gcm_run(acc, false, client, scope, name, version, p, ct, len, res);
}
