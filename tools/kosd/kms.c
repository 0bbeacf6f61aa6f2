/* kosd's KMS front (DESIGN.md 2): POST /v1/shares/fetch serves one Shamir
 * share to the holder of a grant for exactly that share — a token of kind
 * grant ("kos_kind": "grant", which only kos_cred_issue_grant() writes)
 * signed by the CA whose scope is "share:SHARE_ID", issued with the share
 * references of a medium-tier key request (routes.c). http.c has
 * verified it (signature, expiry with no leeway, revocation, the
 * certificate its cnf names) and refused any other kind; this file checks
 * again that it is a grant, and that it names this share and nothing more.
 *
 * The same route is all a KMS front serves (kosd --role kms): a kosd on the
 * host of some KMS tokens, with the CA's public keys (a JWKS) and no state
 * store. Its grant check lacks revocation, which lives in the store: a grant
 * lives seconds (KOSD_GRANT_LIFETIME), so a revocation of its client is
 * late by that much at most there. */
#include "config.h"

#include "tools/kosd/kosd.h"

#include <stdio.h>
#include <string.h>

void kosd_route_share_fetch(struct kosd_req *r)
{
	char want[160];
	const char *id;
	kos_share share;
	char *line = NULL;
	bool failed;
	kos_rv rv;

	memset(&share, 0, sizeof(share));
	id = kosd_body_string(r, "share_id", true, &failed);
	if (id == NULL)
		return;
	/* exactly this share: a wildcard or a wider credential is no grant.
	 * The grant's scope writes the id's ':' as '/' (kos_cred_issue_grant),
	 * so an id with '/' of its own can match none. */
	if ((size_t)snprintf(want, sizeof(want), "share:%s", id) >= sizeof(want) ||
	    strchr(id, '/') != NULL) {
		kosd_reply_error(r, 403, "out_of_scope",
				 "out of scope: a grant for exactly this share is needed");
		return;
	}
	for (char *p = want + 6; *p != '\0'; p++)
		if (*p == ':')
			*p = '/';
	if (r->claims.kind != KOS_CRED_KIND_GRANT || strcmp(r->claims.scope, want) != 0) {
		kosd_reply_error(r, 403, "out_of_scope",
				 "out of scope: a grant for exactly this share is needed");
		return;
	}
	/* the main kosd finds the share through the store's locations; a KMS
	 * front (no store) by its label on its own tokens */
	if (r->d->keys != NULL)
		rv = kos_key_share_get(r->d->keys, id, &share);
	else
		rv = kos_key_share_read(r->d->hsm, id, &share);
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, "share");
		return;
	}
	rv = kos_share_format(&share, &line);
	kos_shares_clear(&share, 1);
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, "share");
		return;
	}
	/* the answer is wiped once sent (kosd_reply_json) */
	kosd_reply_json(r, 200, json_pack("{s:s, s:s}", "share_id", id, "share", line));
	kos_secret_free(line, strlen(line));
}
