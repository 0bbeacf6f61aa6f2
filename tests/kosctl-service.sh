#!/bin/sh
# kosctl service on a development installation: register, issue a token,
# validate it (exit 0 and the claims), refuse it once expired, tampered, for
# another or a removed operation, after rotation and after a breach.
. "${srcdir:-.}/tests/lib.sh"
set -e

K=${KOSCTL:-./kosctl}
P=${KOS_POLICY_DIR:-${srcdir:-.}/policy}
d="$kos_tmp/inst"
unset KOS_CONF

# --- usage ---
expect 0 "service --help" "$K" service --help
grep_out "validate" "service --help lists the subcommands"
expect 2 "service without a subcommand" "$K" service
expect 0 "help service" "$K" help service
for sub in register ops token validate rotate list show remove; do
	expect 0 "service $sub --help" "$K" service "$sub" --help
	grep_out "usage: kosctl.* service $sub" "service $sub --help prints its usage"
done
expect 2 "register without --ops" "$K" service register payments
grep_err "ops is required" "the missing --ops is named"
expect 2 "register with a bad name" "$K" service register .hidden --ops read
expect 2 "register with a bad operation list" "$K" service register payments --ops "a,,b"
expect 2 "register with a space in the list" "$K" service register payments --ops "a, b"
expect 2 "token without --op" "$K" service token payments
expect 2 "token with a bad window" "$K" service token payments --op read --window 1500ms
expect 2 "validate without a token" "$K" service validate
expect 2 "rotate --due with a name" "$K" service rotate payments --due
expect 2 "rotate --at without --due" "$K" service rotate payments --at +1d
expect 2 "an unknown option" "$K" service list --bogus
expect 2 "an unknown subcommand" "$K" service frobnicate

setup "init" "$K" init --dir "$d" --policy "$P/default.policy"
export KOS_CONF="$d/kos.conf"

# --- register, token, validate ---
expect 0 "register" "$K" service register payments --ops decrypt,sign
grep_out "seed version 1" "registered at seed version 1"
expect 1 "register twice" "$K" service register payments --ops decrypt
grep_err "already exists" "the second register is refused"
expect 0 "token" "$K" service token payments --op decrypt
grep_out "^kos-svc-v1\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]\{43\}$" "the token has the documented form"
tok=$(cat "$out")
expect 0 "validate" "$K" service validate "$tok"
grep_out '"valid": true' "validate prints the claims"
grep_out '"service": "payments"' "the claims name the service"
grep_out '"op": "decrypt"' "the claims name the operation"
grep_out '"seed_version": 1' "the claims carry the seed version"
grep_out '"window_seconds": 300' "the default window is five minutes"
run sh -c "printf '%s\n' '$tok' | '$K' service validate -"
check "validate reads the token from standard input" test "$status" -eq 0
expect 0 "validate for its operation" "$K" service validate "$tok" --op decrypt
expect 1 "validate for another operation" "$K" service validate "$tok" --op sign
grep_err "not 'sign'" "the other operation is the reason"
payload=$(echo "$tok" | cut -d. -f2)
check "a refusal never quotes the token" sh -c "! grep -q -F '$payload' '$err'"
expect 0 "valid a minute later" "$K" service validate "$tok" --at +1m
expect 1 "expired in ten minutes" "$K" service validate "$tok" --at +10m
grep_err "expired" "expiry is the reason"
expect 1 "not yet valid an hour ago" "$K" service validate "$tok" --at -1h
grep_err "window" "the window is the reason"

# --at in ISO 8601, the form kosctl prints, names the instant @EPOCH does
# (2030-01-01T00:00:00Z is @1893456000; windows are five minutes)
expect 0 "token issued at an ISO 8601 time" \
	"$K" service token payments --op decrypt --at 2030-01-01T00:02:00Z
tok_iso=$(cat "$out")
expect 0 "valid a minute later, in ISO 8601" \
	"$K" service validate "$tok_iso" --at 2030-01-01T00:03:00Z
expect 0 "valid at the same instant as @EPOCH" "$K" service validate "$tok_iso" --at @1893456180
expect 1 "expired twenty minutes later" "$K" service validate "$tok_iso" --at 2030-01-01T00:22:00Z
grep_err "expired" "expiry is the reason"
expect 1 "not yet valid a window before" "$K" service validate "$tok_iso" --at @1893455880
expect 1 "not valid now" "$K" service validate "$tok_iso"
expect 2 "--at with month 13" "$K" service validate "$tok_iso" --at 2026-13-01T00:00:00Z
grep_err "2026-12-07T10:00:00Z" "the refusal shows the ISO 8601 form"
expect 2 "--at without the T and seconds" "$K" service validate "$tok_iso" --at "2026-12-07 10:00"
expect 2 "--at with text after the Z" "$K" service validate "$tok_iso" --at 2030-01-01T00:03:00Zx
expect 2 "--at on February 30" "$K" service validate "$tok_iso" --at 2030-02-30T00:03:00Z
expect 2 "--at in year 10000" "$K" service validate "$tok_iso" --at 10000-01-01T00:00:00Z
for sub in token validate rotate; do
	expect 0 "service $sub --help" "$K" service "$sub" --help
	grep_out "2026-12-07T10:00:00Z" "service $sub --help shows the ISO 8601 form"
done

# tampered: the last MAC character, a payload character, garbage
last=$(printf '%s' "$tok" | tail -c 1)
if [ "$last" = A ]; then repl=Q; else repl=A; fi
bad="$(printf '%s' "$tok" | sed 's/.$//')$repl"
expect 1 "a tampered MAC" "$K" service validate "$bad"
bad=$(printf '%s' "$tok" | sed 's/^kos-svc-v1\.eyJ/kos-svc-v1.eyK/')
expect 1 "a tampered payload" "$K" service validate "$bad"
expect 1 "garbage" "$K" service validate "kos-svc-v1.!!!.???"
grep_err "base64url" "garbage is called malformed"
expect 1 "a truncated token" "$K" service validate "$(printf '%s' "$tok" | cut -c1-40)"

expect 1 "token for an unregistered operation" "$K" service token payments --op admin
grep_err "not registered" "the operation is the reason"
expect 1 "token for an unknown service" "$K" service token nosuch --op read
expect 0 "token with a window and a lifetime" \
	"$K" service token payments --op sign --window 1m --ttl 30s
tok_sign=$(cat "$out")
expect 0 "that token validates" "$K" service validate "$tok_sign" --op sign
grep_out '"window_seconds": 60' "its window is one minute"
expect 1 "a lifetime longer than the window" \
	"$K" service token payments --op sign --window 1m --ttl 2m

# --- list and show ---
expect 0 "register another" "$K" service register inventory --ops read
expect 0 "list" "$K" service list
grep_out "^payments *1 " "list shows payments at version 1"
grep_out "^inventory " "list shows inventory"
expect 0 "list --json" "$K" --json service list
grep_out '"name": "inventory"' "JSON names inventory"
grep_out '"sign"' "JSON lists the operations"
expect 0 "show" "$K" service show payments
grep_out "^operations: *decrypt,sign" "show names the operations"
expect 0 "show --json" "$K" --json service show payments
grep_out '"seed_version": 1' "show --json gives the version"
expect 1 "show an unknown service" "$K" service show nosuch

# --- rotation ---
expect 0 "rotate" "$K" service rotate payments
grep_out "seed version 2" "rotation makes version 2"
expect 1 "the old token after rotation" "$K" service validate "$tok"
grep_err "rotated" "rotation is the reason"
expect 1 "the other old token too" "$K" service validate "$tok_sign" --op sign
expect 0 "a new token" "$K" service token payments --op decrypt
tok2=$(cat "$out")
expect 0 "the new token validates" "$K" service validate "$tok2"
grep_out '"seed_version": 2' "the new token is of version 2"
expect 0 "rotate --breach" "$K" service rotate payments --breach
grep_out "seed version 3" "the breach rotation makes version 3"
expect 1 "the token of a moment ago after the breach" "$K" service validate "$tok2"
expect 0 "rotate --due: nothing due yet" "$K" service rotate --due
grep_out "^0 services rotated" "nothing was due"
expect 0 "rotate --due in eight days" "$K" service rotate --due --at +8d
grep_out "^2 services rotated" "both services were due"
expect 0 "show after --due" "$K" service show payments
grep_out "^seed version: *4" "payments is at version 4"

# --- operations taken away, service removed ---
expect 0 "a token for sign" "$K" service token payments --op sign
tok3=$(cat "$out")
expect 0 "ops" "$K" service ops payments --ops decrypt
expect 1 "the token of an operation taken away" "$K" service validate "$tok3"
grep_err "not registered" "the removed operation is the reason"
expect 0 "ops back" "$K" service ops payments --ops decrypt,sign
expect 0 "valid again" "$K" service validate "$tok3"
expect 0 "remove" "$K" service remove payments
expect 1 "a token of a removed service" "$K" service validate "$tok3"
grep_err "unknown service" "the unknown service is the reason"
expect 1 "remove twice" "$K" service remove payments

finish kosctl-service
