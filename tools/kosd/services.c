/* kosd's service-token routes (kos-service(7)) and the CA's public keys.
 * Issuing needs the scope item service:NAME; validating needs
 * validate:services, or service:NAME for a token the body says is NAME's. */
#include "config.h"

#include "tools/kosd/kosd.h"
#include "tools/common/kosjson.h"

#include <string.h>
#include <time.h>

static kos_usec mono_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (kos_usec)ts.tv_sec * KOS_USEC_PER_SEC + ts.tv_nsec / 1000;
}

/* Steps 3 and 4 of the pipeline: action:resource in scope and trust above
 * deny. False after replying 403 with the reason (or an error). */
static bool admit(struct kosd_req *r, const char *action, const char *resource, const char *need)
{
	kos_request rq = { .action = action, .resource = resource };

	return kosd_admit(r, &rq, need);
}

/* A whole number of seconds from a member, as microseconds; 0 when absent.
 * False after replying 400. */
static bool body_seconds(struct kosd_req *r, const char *key, kos_usec max, kos_usec *out)
{
	json_t *v = json_object_get(r->body, key);

	*out = 0;
	if (v == NULL)
		return true;
	if (!json_is_integer(v) || json_integer_value(v) < 1 ||
	    json_integer_value(v) > max / KOS_USEC_PER_SEC) {
		kosd_reply_error(r, 400, "wrong_type", "\"%s\" must be whole seconds, 1 to %lld", key,
				 (long long)(max / KOS_USEC_PER_SEC));
		return false;
	}
	*out = (kos_usec)json_integer_value(v) * KOS_USEC_PER_SEC;
	return true;
}

void kosd_route_service_token(struct kosd_req *r)
{
	kos_usec window, ttl;
	char *token = NULL;
	const char *op;
	bool failed;
	json_t *o;
	kos_rv rv;

	kos_usec start = mono_usec();
	char need[80];

	snprintf(need, sizeof(need), "service:%s", r->name);
	if (!admit(r, "service", r->name, need))
		return;
	if ((op = kosd_body_string(r, "op", true, &failed)) == NULL)
		return;
	if (!kos_service_op_valid(op)) {
		kosd_reply_error(r, 400, "bad_request", "invalid operation name");
		return;
	}
	if (!body_seconds(r, "window", KOS_SERVICE_WINDOW_MAX, &window) ||
	    !body_seconds(r, "ttl", KOS_SERVICE_WINDOW_MAX, &ttl))
		return;
	rv = kos_service_token_issue(r->d->services, r->name, op, window, ttl, &token);
	kos_pipeline_observe(r->d->pipeline, r->claims.sub, mono_usec() - start, rv);
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, "service token");
		return;
	}
	o = json_pack("{s:s, s:s, s:s}", "token", token, "service", r->name, "op", op);
	kos_secret_free(token, strlen(token));
	/* the answer holds a bearer token: kosd_reply_json wipes it once sent */
	kosd_reply_json(r, 200, o);
}

void kosd_route_service_validate(struct kosd_req *r)
{
	const char *token, *op, *service;
	kos_service_claims c;
	bool f1, f2, f3;
	kos_rv rv;

	token = kosd_body_string(r, "token", true, &f1);
	if (token == NULL)
		return;
	op = kosd_body_string(r, "op", false, &f2);
	if (f2)
		return;
	service = kosd_body_string(r, "service", false, &f3);
	if (f3)
		return;
	/* a caller scoped to one service learns nothing of other services'
	 * tokens: it names its service, and a token of another is refused */
	if (service != NULL && strlen(service) <= KOS_KEY_NAME_MAX)
		snprintf(r->target, sizeof(r->target), "%s", service);
	if (kos_scope_allows(r->claims.scope, "validate", "services") || service == NULL) {
		if (!admit(r, "validate", "services",
			   "validate:services, or service:NAME with \"service\" NAME,"))
			return;
	} else if (!admit(r, "service", service,
			  "validate:services, or service:NAME with \"service\" NAME,")) {
		return;
	}
	if (op != NULL && !kos_service_op_valid(op)) {
		kosd_reply_error(r, 400, "bad_request", "invalid operation name");
		return;
	}
	rv = kos_service_token_validate(r->d->services, token, op, &c);
	if (rv == KOS_OK && service != NULL && strcmp(c.service, service) != 0) {
		kosd_reply_error(r, 422, "invalid_token", "the token is not one of %s's", service);
		return;
	}
	switch (rv) {
	case KOS_OK: kosd_reply_json(r, 200, kosj_service_claims(&c)); break;
	case KOS_E_PARSE:
	case KOS_E_NOTFOUND:
	case KOS_E_INTEGRITY:
	case KOS_E_RANGE:
	case KOS_E_POLICY:
		/* the reason never quotes the token (kos_service_token_validate) */
		kosd_reply_error(r, 422, "invalid_token", "%s", kos_last_error());
		break;
	default: kosd_reply_rv(r, rv, "service validate"); break;
	}
}

void kosd_route_jwks(struct kosd_req *r)
{
	char *json = NULL;
	kos_rv rv;

	rv = kos_ca_jwks(r->d->ca, &json);
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, "ca jwks");
		return;
	}
	kosd_reply_text(r, 200, "application/json", json);
	kos_free(json);
}
