/* POST /v1/keys/{key}/rewrap: envelopes of a data key re-encrypted under
 * its current version inside kosd (kos_access_rewrap()), in batches, so
 * that data sealed before a rotation moves forward and old versions can be
 * retired without the plaintext leaving kosd (kos-api(7)).
 *
 * One request is one decision: one admission (rewrap:NAME), one trust
 * observation and one ledger entry, whose reason carries the counts
 * (nothing secret); each envelope then succeeds or fails on its own, in
 * the order given. */
#include "config.h"

#include "tools/kosd/kosd.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What one item of the body became: an envelope handed to kos_access_rewrap()
 * (item >= 0), or refused here as malformed with code and message. */
struct slot {
	long item;
	const char *code;
	char message[128];
	uint8_t *env; /* decoded, kos_secret_free(env, cap) */
	size_t cap;
};

static void slot_refuse(struct slot *s, size_t i, const char *code, const char *why)
{
	s->item = -1;
	s->code = code;
	snprintf(s->message, sizeof(s->message), "envelope %zu: %s", i, why);
}

/* Item i of "envelopes": {"envelope": B64, "context": S?}, the names of
 * POST /v1/decrypt. False (s refused) when it is not one. */
static bool slot_parse(struct slot *s, size_t i, json_t *o, kos_rewrap_item *it)
{
	json_t *e = json_object_get(o, "envelope"), *c = json_object_get(o, "context");
	const char *txt, *context = NULL;
	size_t n, len;

	if (!json_is_object(o)) {
		slot_refuse(s, i, "wrong_type", "an item must be an object");
		return false;
	}
	if (e == NULL || json_is_null(e)) {
		slot_refuse(s, i, "missing_field", "\"envelope\" is required");
		return false;
	}
	if (!json_is_string(e)) {
		slot_refuse(s, i, "wrong_type", "\"envelope\" must be a string");
		return false;
	}
	if (c != NULL && !json_is_null(c)) {
		if (!json_is_string(c)) {
			slot_refuse(s, i, "wrong_type", "\"context\" must be a string");
			return false;
		}
		if (strlen(json_string_value(c)) != json_string_length(c)) {
			slot_refuse(s, i, "bad_request", "\"context\" must not contain NUL");
			return false;
		}
		context = json_string_value(c);
	}
	txt = json_string_value(e);
	n = json_string_length(e);
	/* canonical base64 only, as kosd_body_b64() takes it */
	s->cap = n / 4 * 3 + 1;
	s->env = malloc(s->cap);
	if (s->env == NULL) {
		slot_refuse(s, i, "unavailable", "out of memory");
		return false;
	}
	len = s->cap;
	if (kos_b64_decode(txt, n, s->env, &len) != KOS_OK) {
		slot_refuse(s, i, "bad_base64", "\"envelope\" is not canonical base64");
		return false;
	}
	it->env = s->env;
	it->env_len = len;
	it->context = context;
	return true;
}

/* {"envelope": B64, "version": V, "rewrapped": true}, {"version": V,
 * "rewrapped": false} (the caller's envelope is current already), or
 * {"error": CODE, "message": TEXT}. */
static json_t *result_json(const struct slot *s, const kos_rewrap_item *it)
{
	if (it == NULL)
		return json_pack("{s:s, s:s}", "error", s->code, "message", s->message);
	if (it->rv != KOS_OK)
		return json_pack("{s:s, s:s}", "error", it->code != NULL ? it->code : "internal",
				 "message", it->message);
	if (it->rewrapped)
		return json_pack("{s:o, s:I, s:b}", "envelope", kosd_b64_json(it->out, it->out_len),
				 "version", (json_int_t)it->version, "rewrapped", 1);
	return json_pack("{s:I, s:b}", "version", (json_int_t)it->version, "rewrapped", 0);
}

/* A refusal of kos_access_rewrap(): 403 with its code, and for scope the
 * item that is needed. */
static void reply_refused(struct kosd_req *r, const kos_access_result *res)
{
	const char *reason = res->reason != NULL ? res->reason : "refused";

	if (strcmp(reason, "out of scope") == 0)
		kosd_reply_error(r, 403, "out_of_scope", "out of scope: rewrap:%s needed", r->name);
	else if (strcmp(reason, "trust too low") == 0)
		kosd_reply_error(r, 403, "trust_too_low", "%s", reason);
	else
		kosd_reply_error(r, 403, "refused", "%s", reason);
}

void kosd_route_rewrap(struct kosd_req *r)
{
	json_t *arr = json_object_get(r->body, "envelopes"), *results = NULL, *v;
	kos_rewrap_item *items = NULL;
	struct slot *slots = NULL;
	kos_access_result res;
	size_t n, m = 0, i, done = 0, failed = 0;
	kos_rv rv;

	memset(&res, 0, sizeof(res));
	if (arr == NULL || json_is_null(arr)) {
		kosd_reply_error(r, 400, "missing_field", "\"envelopes\" is required");
		return;
	}
	if (!json_is_array(arr)) {
		kosd_reply_error(r, 400, "wrong_type", "\"envelopes\" must be an array");
		return;
	}
	n = json_array_size(arr);
	if (n > KOS_REWRAP_MAX) {
		kosd_reply_error(r, 413, "too_large",
				 "at most %d envelopes per rewrap request, not %zu: send them in "
				 "batches",
				 KOS_REWRAP_MAX, n);
		return;
	}
	if (n == 0) {
		kosd_reply_error(r, 400, "bad_request", "\"envelopes\" holds no envelope");
		return;
	}
	slots = calloc(n, sizeof(*slots));
	items = calloc(n, sizeof(*items));
	if (slots == NULL || items == NULL) {
		kosd_reply_error(r, 503, "unavailable", "out of memory");
		goto out;
	}
	/* the well-formed items go to kos_access_rewrap() in order, the others
	 * keep their place in the answer with their error */
	json_array_foreach (arr, i, v) {
		if (slot_parse(&slots[i], i, v, &items[m]))
			slots[i].item = (long)m++;
	}
	rv = kos_access_rewrap(r->d->access, r->claims.sub, r->claims.scope, r->name, items, m,
			       &res);
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, "rewrap");
		goto out;
	}
	r->tier = kos_tier_name(res.tier);
	kosd_metrics_decision(r->d->metrics, res.tier, res.delivery);
	if (res.delivery == KOS_DELIVER_REFUSED) {
		reply_refused(r, &res);
		goto out;
	}
	results = json_array();
	for (i = 0; results != NULL && i < n; i++) {
		const kos_rewrap_item *it = slots[i].item >= 0 ? &items[slots[i].item] : NULL;

		if (it != NULL && it->rv == KOS_OK)
			done += it->rewrapped != 0;
		else
			failed++;
		if (json_array_append_new(results, result_json(&slots[i], it)) != 0) {
			json_decref(results);
			results = NULL;
		}
	}
	if (results == NULL) {
		kosd_reply_error(r, 503, "unavailable", "out of memory");
		goto out;
	}
	/* the ledger's reason: the counts, never an envelope */
	snprintf(r->code, sizeof(r->code), "rewrapped %zu/%zu failed %zu", done, n, failed);
	kosd_reply_json(r, 200, json_pack("{s:o, s:s, s:I}", "results", results, "key", r->name,
					  "version", (json_int_t)res.version));
out:
	if (items != NULL)
		kos_rewrap_items_clear(items, m);
	for (i = 0; slots != NULL && i < n; i++)
		kos_secret_free(slots[i].env, slots[i].cap);
	free(items);
	free(slots);
	kos_access_result_clear(&res);
}
