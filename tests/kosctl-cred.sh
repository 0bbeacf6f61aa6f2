#!/bin/sh
# kosctl ca, client, credential and threat on a development installation:
# the CA key, enrollment and its replay, issuance, refresh, verification and
# its refusals, revocation, rotation, the threat level, and verification
# without any token.
. "${srcdir:-.}/tests/lib.sh"
set -e

K=${KOSCTL:-./kosctl}
P=${KOS_POLICY_DIR:-${srcdir:-.}/policy}
d="$kos_tmp/inst"
unset KOS_CONF

softhsm_leaks_ignored

# claim NAME: the value of "NAME" in the JSON of the last command
claim() { sed -n "s/^  \"$1\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" "$out"; }

# --- usage ---
for g in ca client credential threat; do
	expect 2 "$g without a subcommand" "$K" "$g"
	expect 0 "$g --help" "$K" "$g" --help
done
grep_out "check" "threat --help lists check"
expect 0 "ca --help" "$K" ca --help
grep_out "jwks" "ca --help lists jwks"
for s in init rotate jwks list; do expect 0 "ca $s --help" "$K" ca "$s" --help; done
for s in add secret list show disable enable; do
	expect 0 "client $s --help" "$K" client "$s" --help
done
for s in enroll issue refresh verify revoke revocations prune; do
	expect 0 "credential $s --help" "$K" credential "$s" --help
done
grep_out "usage: kosctl credential prune" "prune --help prints the usage"
for s in set show check; do expect 0 "threat $s --help" "$K" threat "$s" --help; done
expect 0 "help credential" "$K" help credential
grep_out "revoke" "help credential lists revoke"

setup "init" "$K" init --dir "$d" --policy "$P/default.policy"
export KOS_CONF="$d/kos.conf"

expect 2 "client add without --scope" "$K" client add web
grep_err "scope is required" "the missing scope is named"
expect 2 "client add with a bad name" "$K" client add -- -web --scope "decrypt:x"
expect 2 "client add with a bad scope" "$K" client add web --scope "decrypt"
expect 2 "revoke without what" "$K" credential revoke
expect 2 "revoke with two kinds" "$K" credential revoke --jti x --client y
grep_err "exactly one" "the conflict is explained"
expect 2 "revoke --before a bad time" "$K" credential revoke --before yesterday
grep_err "2026-12-07T10:00:00Z" "the refusal shows the ISO 8601 form"
expect 2 "revoke --before month 13" "$K" credential revoke --before 2026-13-01T00:00:00Z
expect 2 "revoke --before without the T and seconds" "$K" credential revoke --before "2026-12-07 10:00"
expect 2 "revoke --before with text after the Z" \
	"$K" credential revoke --before 2026-12-07T10:00:00Zjunk
expect 2 "revoke --before before 1970" "$K" credential revoke --before 1969-12-31T23:59:59Z
expect 0 "credential revoke --help" "$K" credential revoke --help
grep_out "2026-12-07T10:00:00Z" "revoke --help shows the ISO 8601 form"
expect 2 "threat set to an unknown level" "$K" threat set severe
expect 2 "an unknown option" "$K" credential verify --bogus x
expect 2 "verify without a credential" "$K" credential verify

# --- the CA key ---
expect 1 "jwks before the CA has a key" "$K" ca jwks
grep_err "kosctl ca init" "the refusal says what to do"
expect 0 "ca init" "$K" ca init
kid1=$(cat "$out")
check "ca init prints a 22-character kid" test "${#kid1}" -eq 22
expect 1 "ca init again" "$K" ca init
grep_err "rotate" "the refusal points to rotate"
expect 0 "ca jwks" "$K" ca jwks
grep_out "\"kid\": \"$kid1\"" "the JWKS lists the kid"
grep_out '"crv": "P-256"' "the JWKS key is P-256"
grep_out '"alg": "ES256"' "the JWKS key is for ES256"
expect 0 "ca list" "$K" ca list
grep_out "^$kid1 *current" "the key is current"

# --- enrollment ---
expect 0 "client add" "$K" client add web --scope "decrypt:payments/* sign:ca-2026"
secret=$(cat "$out")
check "the secret is 43 base64url characters" \
	sh -c "printf '%s' '$secret' | grep -Eq '^[A-Za-z0-9_-]{43}\$'"
grep_err "shown once" "the secret comes with its note on stderr"
check "the secret is not in the state store" \
	sh -c "test -s '$d/state.db' && ! cat '$d/state.db' '$d/state.db-wal' 2>/dev/null | grep -q -a '$secret'"
expect 1 "client add again" "$K" client add web --scope "decrypt:x"
grep_err "exists" "the duplicate is named"
run sh -c "printf '%s\n' '$secret' | '$K' credential enroll -"
check "enroll through standard input" test "$status" -eq 0
tok=$(cat "$out")
expect 0 "verify the enrolled credential" "$K" credential verify "$tok"
grep_out '"sub": "web"' "the claims name the client"
grep_out '"scope": "decrypt:payments/\* sign:ca-2026"' "the claims carry the whole scope"
grep_out '"iss": "kos"' "the claims carry the issuer"
check "five minutes at the prior (tier medium)" \
	test "$(($(claim exp) - $(claim iat)))" -eq 300
jti1=$(claim jti)
expect 1 "the secret a second time" "$K" credential enroll "$secret"
grep_err "already used" "the replay is named"
# the sender of a used secret proved nothing: web's trust is not touched
expect 1 "trust show web" "$K" trust show web
grep_err "unknown client 'web'" "the replay is no observation of web"
expect 1 "an unknown secret" "$K" credential enroll AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
grep_err "unknown enrollment secret" "the unknown secret is refused"
expect 0 "client show" "$K" client show web
grep_out "secret expires: *-" "no secret pending after enrollment"
expect 0 "client secret" "$K" client secret web
secret2=$(cat "$out")
expect 0 "client list" "$K" client list
grep_out "^web *enabled" "client list shows web enabled"

# --- issuance, refresh, verification ---
expect 0 "issue a narrower scope" "$K" credential issue web --scope "decrypt:payments/eu"
tok_eu=$(cat "$out")
expect 0 "verify it" "$K" credential verify "$tok_eu"
grep_out '"scope": "decrypt:payments/eu"' "the narrower scope is kept"
expect 1 "issue a wider scope" "$K" credential issue web --scope "decrypt:*"
grep_err "out of scope" "the wider scope is refused"
expect 1 "issue for an unknown client" "$K" credential issue nobody
expect 0 "refresh to a narrower scope" "$K" credential refresh "$tok" --scope "sign:ca-2026"
tok_sign=$(cat "$out")
expect 0 "verify the refreshed credential" "$K" credential verify "$tok_sign"
grep_out '"scope": "sign:ca-2026"' "the refresh narrowed the scope"
expect 1 "refresh to a wider scope" "$K" credential refresh "$tok_sign" --scope "decrypt:*"
grep_err "out of scope" "a refresh never widens"
run sh -c "printf '%s\n' '$tok' | '$K' credential verify -"
check "verify through standard input" test "$status" -eq 0
tampered=$(printf '%s' "$tok" | sed 's/\.\(.\)/.X\1/')
expect 1 "a tampered credential" "$K" credential verify "$tampered"
grep_err "invalid credential" "the tampered credential is invalid"
expect 1 "garbage" "$K" credential verify "not.a.credential"
grep_err "invalid credential" "garbage is an invalid credential"
expect 1 "a refusal with --json" "$K" --json credential verify "$tampered"
grep_out '"valid": false' "the JSON says not valid"
grep_out '"reason": "invalid credential"' "the JSON gives the reason"
x5t=$(printf 'a certificate' | openssl dgst -sha256 -binary | openssl base64 -A | tr '+/' '-_' | tr -d '=')
expect 0 "issue a bound credential" "$K" credential issue web --cnf "$x5t"
tok_bound=$(cat "$out")
expect 1 "a bound credential without its certificate" "$K" credential verify "$tok_bound"
grep_err "certificate mismatch" "the binding is enforced"
expect 0 "a bound credential with its certificate" "$K" credential verify "$tok_bound" --cnf "$x5t"
grep_out '"x5t#S256": "'"$x5t"'"' "the claims show the binding"
expect 2 "a malformed thumbprint" "$K" credential verify "$tok_bound" --cnf short

# --- revocation ---
expect 0 "revoke by jti" "$K" credential revoke --jti "$jti1"
expect 1 "the revoked credential" "$K" credential verify "$tok"
grep_err "revoked" "it is refused as revoked"
expect 0 "others stay valid" "$K" credential verify "$tok_eu"
expect 1 "refresh a revoked credential" "$K" credential refresh "$tok"
expect 0 "a second client" "$K" client add api --scope "encrypt:*"
secret_api=$(cat "$out")
run sh -c "printf '%s\n' '$secret_api' | '$K' credential enroll -"
tok_api=$(cat "$out")
expect 0 "its credential verifies" "$K" credential verify "$tok_api"
expect 0 "revoke by client" "$K" credential revoke --client api
expect 1 "the client's credential is revoked" "$K" credential verify "$tok_api"
grep_err "revoked" "it is refused as revoked"
expect 0 "web's credentials stay valid" "$K" credential verify "$tok_eu"
expect 1 "revoke an unknown client" "$K" credential revoke --client nobody
expect 0 "revoke by time, two minutes back" "$K" credential revoke --before -2m
expect 0 "newer credentials stay valid" "$K" credential verify "$tok_eu"
expect 2 "revoke by a time in the future" "$K" credential revoke --before +1h
expect 0 "credential revocations" "$K" credential revocations
grep_out "^jti *$jti1" "the jti revocation is listed"
grep_out "^client *api" "the client revocation is listed"
grep_out "^before" "the time revocation is listed"
# the time as kosctl printed it, given back: ISO 8601 is taken as @EPOCH is
iso=$(sed -n 's/^before  *-  *\([0-9T:Z-]*\) .*/\1/p' "$out" | head -n 1)
check "the time revocation is printed in ISO 8601 ($iso)" \
	sh -c "echo '$iso' | grep -q '^[0-9]\{4\}-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]Z\$'"
expect 0 "revoke by that ISO 8601 time" "$K" credential revoke --before "$iso"
expect 0 "newer credentials stay valid after it" "$K" credential verify "$tok_eu"
expect 0 "credential revocations after it" "$K" credential revocations
check "every time revocation is up to $iso" \
	sh -c "! grep '^before' '$out' | grep -v -q -e ' $iso '"
expect 2 "revoke --before an ISO 8601 time in the future" \
	"$K" credential revoke --before 9999-12-31T23:59:59Z
expect 0 "credential prune" "$K" credential prune
grep_out "^removed [0-9]" "prune says how many went"

# --- rotation ---
expect 0 "ca rotate" "$K" ca rotate
kid2=$(cat "$out")
check "a new kid" test "$kid2" != "$kid1"
expect 0 "the old key's credential still verifies" "$K" credential verify "$tok_eu"
grep_out "\"kid\": \"$kid1\"" "signed by the old key"
expect 0 "issue after the rotation" "$K" credential issue web
expect 0 "verify it" "$K" credential verify "$(cat "$out")"
grep_out "\"kid\": \"$kid2\"" "signed by the new key"
expect 0 "ca jwks" "$K" ca jwks
check "the JWKS holds both keys" test "$(grep -c '"kid"' "$out")" -eq 2
expect 0 "ca list" "$K" ca list
grep_out "^$kid1 *retired" "the old key is retired"
grep_out "^$kid2 *current" "the new key is current"

# --- threat level ---
# a client with no history stands at the prior
expect 0 "a client at the prior" "$K" client add fresh --scope "decrypt:x"
expect 0 "threat show" "$K" threat show
grep_out "level: *normal" "the level starts normal"
expect 0 "threat set elevated" "$K" threat set elevated --reason "incident 42"
expect 0 "threat show" "$K" threat show
grep_out "level: *elevated" "the level is elevated"
grep_out "reason: *incident 42" "the reason is kept"
grep_out "set by: *administrator" "by an administrator"
expect 0 "issue at elevated" "$K" credential issue fresh
expect 0 "verify it" "$K" credential verify "$(cat "$out")"
check "lifetimes halve at elevated" test "$(($(claim exp) - $(claim iat)))" -eq 150
expect 0 "threat --json show" "$K" --json threat show
grep_out '"level": "elevated"' "JSON names the level"
expect 0 "threat check" "$K" threat check
grep_out "level: *elevated" "too few clients: the check changes nothing"
expect 0 "threat set normal" "$K" threat set normal
expect 0 "issue at normal" "$K" credential issue fresh
expect 0 "verify it" "$K" credential verify "$(cat "$out")"
check "lifetimes are back" test "$(($(claim exp) - $(claim iat)))" -eq 300

# the automatic raise: a policy that judges from two clients on
sed -i 's/min_clients = 10;/min_clients = 2;/' "$d/kos.policy"
"$K" trust observe web success >/dev/null
for i in 1 2 3 4 5; do "$K" trust observe api scope >/dev/null; done
expect 0 "trust show api" "$K" trust show api
grep_out "anomalous: *yes" "api is flagged anomalous"
expect 0 "threat check" "$K" threat check
grep_err "raised to critical" "the check says it raised the level"
grep_out "level: *critical" "1 of 2 clients anomalous is critical"
grep_out "set by: *automatic" "the check set it"
grep_out "reason: *automatic: 1 of 2 clients (50%) flagged anomalous" "the reason is recorded"
expect 0 "threat set normal again" "$K" threat set normal --reason "reviewed"
grep_out "set by: *administrator" "an administrator lowers it"

# --- disabled clients ---
expect 0 "client disable" "$K" client disable web
expect 1 "no issuance for a disabled client" "$K" credential issue web
grep_err "disabled" "the refusal says why"
expect 1 "no enrollment either" "$K" credential enroll "$secret2"
expect 0 "client enable" "$K" client enable web
expect 0 "enrollment works again" "$K" credential enroll "$secret2"

# --- verification needs no token ---
chmod 0644 "$d/pins/ca.pin"
expect 0 "verify with the ca token unusable" "$K" credential verify "$tok_eu"
expect 1 "issuance needs the ca token" "$K" credential issue web
chmod 0600 "$d/pins/ca.pin"
expect 0 "issuance with the token back" "$K" credential issue web

finish kosctl-cred
