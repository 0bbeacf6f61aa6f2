/* kosd's route table: one row per route, and everything that depends on a
 * route read from its row (matching, the {name}'s kind, the body cap, the
 * credential, the KMS front, the ledger, the handler, the name in metrics,
 * the log and the ledger). Adding a route is one row and one handler.
 *
 * A row's index is its id (metrics count by it); row 0 is the request no
 * route took. The order of the rows is the order of /metrics; matching does
 * not depend on it, as kosd_routes_check() lets no path match two rows of
 * one method. */
#include "config.h"

#include "tools/kosd/kosd.h"

#include <stdio.h>
#include <string.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define GET  EVHTTP_REQ_GET
#define POST EVHTTP_REQ_POST
#define CRED KOSD_RF_CRED
#define BODY KOSD_RF_BODY
#define DATA KOSD_RF_DATA

/* a row a line, so that the table reads as one (and tests/kosd-table.sh
 * reads it) */
/* clang-format off */
const struct kosd_route kosd_routes[] = {
	{ 0,    NULL,                               NULL,                          "unknown",                KOSD_RF_UNLEDGERED },
	{ GET,  "/v1/health",                       kosd_route_health,             "health",                 KOSD_RF_UNLEDGERED | KOSD_RF_KMS },
	{ GET,  "/metrics",                         kosd_route_metrics,            "metrics",                KOSD_RF_UNLEDGERED | KOSD_RF_KMS },
	{ POST, "/v1/credentials/enroll",           kosd_route_enroll,             "enroll",                 BODY },
	{ POST, "/v1/credentials/refresh",          kosd_route_refresh,            "refresh",                CRED | BODY },
	{ GET,  "/v1/keys",                         kosd_route_keys,               "keys",                   CRED },
	{ GET,  "/v1/keys/{key}/pubkey",            kosd_route_pubkey,             "pubkey",                 CRED },
	{ POST, "/v1/keys/{key}/encrypt",           kosd_route_encrypt,            "encrypt",                CRED | DATA },
	{ POST, "/v1/decrypt",                      kosd_route_decrypt,            "decrypt",                CRED | DATA },
	{ POST, "/v1/keys/{key}/request",           kosd_route_request,            "request",                CRED | BODY },
	{ POST, "/v1/keys/{key}/sign",              kosd_route_sign,               "sign",                   CRED | DATA },
	{ POST, "/v1/admin/clients",                kosd_admin_clients,            "admin_clients",          CRED | BODY },
	{ POST, "/v1/admin/revoke",                 kosd_admin_revoke,             "admin_revoke",           CRED | BODY },
	{ POST, "/v1/admin/keys",                   kosd_admin_keys,               "admin_keys",             CRED | BODY },
	{ POST, "/v1/admin/keys/{key}/rotate",      kosd_admin_rotate,             "admin_rotate",           CRED | BODY },
	{ POST, "/v1/admin/keys/{key}/retire",      kosd_admin_retire,             "admin_retire",           CRED | BODY },
	{ POST, "/v1/admin/threat",                 kosd_admin_threat,             "admin_threat",           CRED | BODY },
	{ POST, "/v1/admin/policy/reload",          kosd_admin_reload,             "admin_reload",           CRED | BODY },
	{ POST, "/v1/shares/fetch",                 kosd_route_share_fetch,        "share_fetch",            CRED | BODY | KOSD_RF_GRANT | KOSD_RF_KMS },
	{ POST, "/v1/services/{service}/token",     kosd_route_service_token,      "service_token",          CRED | BODY },
	{ POST, "/v1/services/validate",            kosd_route_service_validate,   "service_validate",       CRED | BODY },
	{ GET,  "/v1/ca/jwks",                      kosd_route_jwks,               "ca_jwks",                KOSD_RF_UNLEDGERED },
	{ GET,  "/v1/admin/clients",                kosd_admin_client_list,        "admin_client_list",      CRED },
	{ GET,  "/v1/admin/trust",                  kosd_admin_trust_list,         "admin_trust_list",       CRED },
	{ GET,  "/v1/admin/trust/{client}",         kosd_admin_trust_get,          "admin_trust_get",        CRED },
	{ POST, "/v1/admin/trust/{client}/observe", kosd_admin_trust_observe,      "admin_trust_observe",    CRED | BODY },
	{ GET,  "/v1/admin/keys/{key}",             kosd_admin_key_show,           "admin_key_show",         CRED },
	{ GET,  "/v1/admin/threat",                 kosd_admin_threat_get,         "admin_threat_get",       CRED },
	{ GET,  "/v1/admin/kms",                    kosd_admin_kms,                "admin_kms",              CRED },
	{ POST, "/v1/admin/services",               kosd_admin_service_register,   "admin_service_register", CRED | BODY },
	{ POST, "/v1/admin/services/{service}/rotate", kosd_admin_service_rotate,  "admin_service_rotate",   CRED | BODY },
	{ POST, "/v1/admin/keys/rotate-due",        kosd_admin_rotate_due,         "admin_rotate_due",       CRED | BODY },
	{ POST, "/v1/admin/trust/{client}/forget",  kosd_admin_trust_forget,       "admin_trust_forget",     CRED | BODY },
	{ POST, "/v1/admin/credentials",            kosd_admin_cred_issue,         "admin_credential_issue", CRED | BODY },
	{ GET,  "/v1/admin/revocations",            kosd_admin_revocations,        "admin_revocations",      CRED },
	{ POST, "/v1/admin/revocations/prune",      kosd_admin_prune,              "admin_prune",            CRED | BODY },
	{ POST, "/v1/admin/clients/{client}/disable", kosd_admin_client_disable,   "admin_client_disable",   CRED | BODY },
	{ POST, "/v1/admin/clients/{client}/enable", kosd_admin_client_enable,     "admin_client_enable",    CRED | BODY },
	{ POST, "/v1/admin/ca/rotate",              kosd_admin_ca_rotate,          "admin_ca_rotate",        CRED | BODY },
	{ GET,  "/v1/admin/ca",                     kosd_admin_ca_list,            "admin_ca_list",          CRED },
	{ POST, "/v1/admin/threat/check",           kosd_admin_threat_check,       "admin_threat_check",     CRED | BODY },
	{ GET,  "/v1/admin/services",               kosd_admin_service_list,       "admin_service_list",     CRED },
	{ GET,  "/v1/admin/services/{service}",     kosd_admin_service_show,       "admin_service_show",     CRED },
	{ POST, "/v1/admin/services/{service}/ops", kosd_admin_service_ops,        "admin_service_ops",      CRED | BODY },
	{ POST, "/v1/admin/services/{service}/remove", kosd_admin_service_remove,  "admin_service_remove",   CRED | BODY },
	{ GET,  "/v1/admin/clients/{client}",       kosd_admin_client_show,        "admin_client_show",      CRED },
	{ POST, "/v1/admin/clients/{client}/secret", kosd_admin_client_secret,     "admin_client_secret",    CRED | BODY },
	{ POST, "/v1/keys/{key}/gcm/encrypt",       kosd_route_gcm_encrypt,        "gcm_encrypt",            CRED | DATA },
	{ POST, "/v1/keys/{key}/gcm/decrypt",       kosd_route_gcm_decrypt,        "gcm_decrypt",            CRED | DATA },
	{ POST, "/v1/keys/{key}/certificate",       kosd_route_cert_set,           "cert_set",               CRED | BODY },
	{ GET,  "/v1/keys/{key}/certificate",       kosd_route_cert_get,           "cert_get",               CRED },
	{ POST, "/v1/admin/keys/{key}/destroy",     kosd_admin_destroy,            "admin_destroy",          CRED | BODY },
	{ POST, "/v1/keys/{key}/certificate/remove", kosd_route_cert_remove,       "cert_remove",            CRED | BODY },
	{ POST, "/v1/keys/{key}/rsa/decrypt",       kosd_route_rsa_decrypt,        "rsa_decrypt",            CRED | DATA },
	{ POST, "/v1/keys/{key}/rewrap",            kosd_route_rewrap,             "rewrap",                 CRED | DATA },
};
/* clang-format on */

const size_t kosd_n_routes = ARRAY_SIZE(kosd_routes);

/* The kinds of {name} a path may hold: the name valid there. */
static const struct {
	const char *placeholder;
	int (*valid)(const char *name);
} kinds[] = {
	{ "{key}", kos_key_name_valid },
	{ "{client}", kos_principal_name_valid },
	{ "{service}", kos_service_name_valid },
};

/* A path pattern's parts: PREFIX{kind}SUFFIX, or an exact path (kind -1). */
struct pattern {
	size_t pre;
	const char *suf;
	int kind;
};

/* False when the pattern holds a '{' that opens no known kind. */
static bool split(const char *path, struct pattern *p)
{
	const char *open = strchr(path, '{');
	size_t i;

	p->pre = strlen(path);
	p->suf = "";
	p->kind = -1;
	if (open == NULL)
		return true;
	p->pre = (size_t)(open - path);
	for (i = 0; i < ARRAY_SIZE(kinds); i++) {
		size_t n = strlen(kinds[i].placeholder);

		if (strncmp(open, kinds[i].placeholder, n) == 0) {
			p->kind = (int)i;
			p->suf = open + n;
			return strchr(p->suf, '{') == NULL;
		}
	}
	return false;
}

/* Whether path is one of s's paths: 1, with its {name} in name; 0 when it
 * is not; -1 when it is but for a name not valid there (a '/', "..", an
 * escape, too long). */
static int match_one(const struct kosd_route *s, const char *path, char *name)
{
	struct pattern p;
	size_t plen = strlen(path), slen, nlen;

	if (!split(s->path, &p))
		return 0;
	if (p.kind < 0)
		return strcmp(path, s->path) == 0;
	slen = strlen(p.suf);
	if (plen < p.pre + slen || strncmp(path, s->path, p.pre) != 0 ||
	    strcmp(path + plen - slen, p.suf) != 0)
		return 0;
	nlen = plen - p.pre - slen;
	if (nlen == 0 || nlen > KOS_KEY_NAME_MAX)
		return -1;
	memcpy(name, path + p.pre, nlen);
	name[nlen] = '\0';
	return kinds[p.kind].valid(name) ? 1 : -1;
}

const struct kosd_route *kosd_route_match(const char *path, enum evhttp_cmd_type method, char *name,
					  bool *bad_name, bool *path_known)
{
	const struct kosd_route *found = NULL;
	size_t i;

	*bad_name = false;
	*path_known = false;
	name[0] = '\0';
	for (i = 1; i < ARRAY_SIZE(kosd_routes); i++) {
		const struct kosd_route *s = &kosd_routes[i];
		int m = match_one(s, path, name);

		if (m < 0)
			*bad_name = true;
		if (m <= 0)
			continue;
		*path_known = true;
		if (s->method == method) {
			found = s;
			break;
		}
	}
	/* a path some route knows is a 405 even when a wider {name} route
	 * could not take it as a name */
	if (found != NULL || *path_known)
		*bad_name = false;
	return found;
}

size_t kosd_body_cap(const struct kosd *d, enum evhttp_cmd_type method, const char *path)
{
	char name[KOS_KEY_NAME_MAX + 1];
	bool bad_name, known;
	const struct kosd_route *s = kosd_route_match(path, method, name, &bad_name, &known);

	return s != NULL ? kosd_route_body_cap(d, s) : 0;
}

size_t kosd_route_body_cap(const struct kosd *d, const struct kosd_route *s)
{
	if ((s->flags & KOSD_RF_DATA) == KOSD_RF_DATA)
		return d->listen.max_data_body;
	return (s->flags & KOSD_RF_BODY) != 0 ? d->listen.max_body : 0;
}

/* Whether one path could match both a and b (of one method): the same
 * exact path; an exact path that b's pattern takes with a valid name; or
 * two patterns of which one's prefix begins the other's, or of the same
 * prefix and suffix. Two patterns with one prefix and other suffixes never
 * overlap, as no name holds a '/'. */
static bool overlap(const struct kosd_route *a, const struct kosd_route *b)
{
	char name[KOS_KEY_NAME_MAX + 1];
	struct pattern pa, pb;

	split(a->path, &pa);
	split(b->path, &pb);
	if (pa.kind < 0)
		return match_one(b, a->path, name) == 1;
	if (pb.kind < 0)
		return match_one(a, b->path, name) == 1;
	if (pa.pre != pb.pre)
		return strncmp(a->path, b->path, pa.pre < pb.pre ? pa.pre : pb.pre) == 0;
	return strncmp(a->path, b->path, pa.pre) == 0 && strcmp(pa.suf, pb.suf) == 0;
}

int kosd_routes_check(struct kosd *d)
{
	const struct kosd_route *u = &kosd_routes[0];
	size_t i, j;
	int bad = 0;

	if (u->path != NULL || u->handler != NULL || (u->flags & KOSD_RF_UNLEDGERED) == 0) {
		kosd_log(d, "routes: row 0 is not the unknown route");
		bad = -1;
	}
	for (i = 1; i < ARRAY_SIZE(kosd_routes); i++) {
		const struct kosd_route *s = &kosd_routes[i];
		struct pattern p;
		const char *why = NULL;

		if (s->name == NULL || s->name[0] == '\0' ||
		    strlen(s->name) > KOS_LEDGER_ACTION_MAX)
			why = "no name, or one longer than a ledger action";
		else if (s->path == NULL || s->path[0] != '/' || !split(s->path, &p))
			why = "not a path, or a {name} of no known kind";
		else if (s->handler == NULL)
			why = "no handler";
		else if (s->method != EVHTTP_REQ_GET && s->method != EVHTTP_REQ_POST)
			why = "a method other than GET or POST";
		else if ((s->flags & KOSD_RF_BODY) != 0 && s->method != EVHTTP_REQ_POST)
			why = "a body on a GET";
		else if ((s->flags & KOSD_RF_GRANT) != 0 && (s->flags & KOSD_RF_CRED) == 0)
			why = "a grant route without a credential";
		else if ((s->flags & KOSD_RF_UNLEDGERED) != 0 &&
			 (s->flags & (KOSD_RF_CRED | KOSD_RF_BODY)) != 0)
			why = "a decision kept out of the ledger";
		for (j = 0; why == NULL && j < i; j++) {
			const struct kosd_route *o = &kosd_routes[j];

			if (j == 0 || o->path == NULL || o->name == NULL)
				continue;
			if (strcmp(o->name, s->name) == 0)
				why = "a name another route has";
			else if (o->method == s->method && overlap(o, s))
				why = "a path another route of its method takes";
		}
		if (why != NULL) {
			kosd_log(d, "routes: %s %s (%s): %s",
				 s->method == EVHTTP_REQ_GET ? "GET" : "POST",
				 s->path != NULL ? s->path : "-", s->name != NULL ? s->name : "-",
				 why);
			bad = -1;
		}
	}
	return bad;
}
