/* Scopes: what a credential allows, as space-separated "action:resource"
 * items (e.g. "decrypt:payments-* sign:ca-2026"). See kosctl(1) and
 * kos-credential(5). The actions kos asks for: encrypt, decrypt, rewrap
 * (re-encryption under the current version, no decryption), key, sign,
 * pubkey and certify of a key; service and validate of service tokens;
 * admin of an administrative area; share of a grant (KOS_SCOPE_GRANT_ACTION).
 * Thread safety: all functions are thread-safe (no shared state). */
#ifndef KOS_SCOPE_H
#define KOS_SCOPE_H

#include <kos/common.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KOS_SCOPE_MAX 4096
#define KOS_SCOPE_ITEM_MAX 256

/* Checks a scope's syntax: 1..KOS_SCOPE_MAX bytes; items separated by single
 * or repeated spaces; each item ACTION:RESOURCE where ACTION is a word of
 * [a-z0-9_-] or "*", and RESOURCE is 1.. printable characters other than
 * space, with "*" as the only wildcard ("?", "[", "]" and "\" are refused).
 * Errors: KOS_E_PARSE with the offending item's position in kos_last_error(). */
KOS_API kos_rv kos_scope_validate(const char *scope);

/* The action of a grant's one item ("share:ID", kos_cred_issue_grant()):
 * no wildcard matches it, and only grants hold it. */
#define KOS_SCOPE_GRANT_ACTION "share"

/* 1 when scope holds an item whose action matches action (or is "*") and
 * whose resource pattern matches resource; "*" matches any run of
 * characters, '/' included. The grant action is the exception: only an item
 * "share:RESOURCE" naming resource literally (no "*") allows it. 0
 * otherwise, and for an invalid scope. */
KOS_API int kos_scope_allows(const char *scope, const char *action, const char *resource);

/* 1 when every item of narrow is allowed by some item of wide: narrow's
 * action is wide's or wide's is "*", and narrow's resource pattern, read
 * literally, matches wide's pattern (so "payments-db" and "payments-*" are
 * within "payments-*"). Used when a credential is refreshed to a narrower
 * scope. A grant item "share:ID" is within only a wide item naming the same
 * ID literally, never a wildcard. 0 for an invalid scope. */
KOS_API int kos_scope_within(const char *narrow, const char *wide);

/* 1 when a valid scope holds an item of the grant action ("share:..."),
 * which only a grant may carry; 0 otherwise and for an invalid scope. */
KOS_API int kos_scope_has_grant_item(const char *scope);

#ifdef __cplusplus
}
#endif
#endif
