/* The JSON documents kosd answers and kosctl --json prints, built in one
 * place so the remote and the local commands print the same shapes.
 * Thread safety: as the handles passed in; nothing here keeps state. */
#ifndef KOSJSON_H
#define KOSJSON_H

#include <kos/server.h>

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* Each returns a new object (the caller json_decref()s it), NULL when out
 * of memory. Times are ISO 8601 UTC text, as kosctl prints them. */
json_t *kosj_trust_info(const kos_trust_info *info);
json_t *kosj_client_info(const kos_ca_client_info *c);
json_t *kosj_threat_info(const kos_threat_info *t);
/* {kid, state, created, retired, verifies_until, token, label} of a CA key;
 * state (current, retired, expired) as of now. */
json_t *kosj_ca_key(const kos_ca_key_info *k, kos_usec now);
/* {kind, value, issued_up_to, created, expires} of a revocation in force. */
json_t *kosj_revocation_info(const kos_revocation_info *r);
/* {name, ops: [OP, ...], seed_version, created, rotated} of a service. */
json_t *kosj_service_info(const kos_service_info *info);
/* {"valid": true, service, op, window, window_seconds, seed_version, issued,
 * expires, iat, exp} of a service token that validated. */
json_t *kosj_service_claims(const kos_service_claims *c);

/* Key name and every version (state, created, KCV and share sets with the
 * token of each share for a data key; token and label of the key pair for
 * a signing key) into *out. Errors: as kos_key_get_info(),
 * kos_key_versions(), kos_key_shares(); KOS_E_NOMEM. */
kos_rv kosj_key_show(kos_keys *keys, const char *name, json_t **out);

/* ISO 8601 in UTC, to the second ("@SECONDS" when it cannot be); zero as
 * "-" when dash_zero. */
void kosj_iso_time(kos_usec t, char *buf, size_t len, bool dash_zero);
/* Lowercase hex of p[0..n) into out (2n+1 bytes). */
void kosj_hex(const uint8_t *p, size_t n, char *out);

/* {seq, at, at_usec, client, action, resource, tier, outcome, reason, jti,
 * prev, hash} of a ledger entry, as stored; at_usec is the exact time the
 * hash covers, the hashes are lowercase hex. */
json_t *kosj_ledger_entry(const kos_ledger_entry *e);

/* Probes backend token i (reachable, logged in, kos objects) and returns
 * its row with the handle's call statistics; *reachable (may be NULL) is
 * set. */
json_t *kosj_token(kos_hsm *hsm, size_t i, int *reachable);

#endif
