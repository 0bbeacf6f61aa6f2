#!/bin/sh
# kosd's service-token, trust, key, client, threat, kms and JWKS routes, with
# curl over the Unix socket and with kosctl --server: each route's success,
# its scope refusal (403 out_of_scope for a credential without the admin or
# service scope), and bad input (an unknown client, a bad event). kosctl
# through kosd prints the same --json shapes as on the store.
. "${srcdir:-.}/tests/lib.sh"
set -e

K=${KOSCTL:-./kosctl}
D=${KOSD:-./kosd}
P=${KOS_POLICY_DIR:-${srcdir:-.}/policy}
d="$kos_tmp/inst"
S="$d/kosd.sock"
log="$kos_tmp/kosd.log"
unset KOS_CONF KOS_SERVER KOS_CREDENTIAL KOS_CREDENTIAL_FILE

# SoftHSM 2.6.1 leaks in C_SignInit (see tests/test-signer.c).
printf 'leak:libsofthsm2.so\n' > "$kos_tmp/lsan.supp"
LSAN_OPTIONS="suppressions=$kos_tmp/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
ASAN_OPTIONS="fast_unwind_on_malloc=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export LSAN_OPTIONS ASAN_OPTIONS

kpid=""
cleanup() {
	[ -n "$kpid" ] && kill -KILL "$kpid" 2>/dev/null
	rm -rf "$kos_tmp"
}
trap cleanup EXIT

# api METHOD PATH [TOKEN [BODY]]: the answer in $out, the status in $code.
api() {
	_m=$1 _p=$2 _t=${3:-} _b=${4:-}
	set -- -s -o "$out" -w '%{http_code}' --max-time 20 --unix-socket "$S" -X "$_m"
	[ -n "$_t" ] && set -- "$@" -H "Authorization: Bearer $_t"
	[ -n "$_b" ] && set -- "$@" -H 'Content-Type: application/json' --data-binary "$_b"
	code=$(curl "$@" "http://kos$_p" 2>"$err") || true
	[ -n "$code" ] || code=000
}
want() { if [ "$code" = "$1" ]; then pass "$2"; else fail "$2 (status $code, expected $1)"; fi; }
field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" "$out"; }

start_kosd() {
	"$D" --config "$d/kos.conf" 2>>"$log" &
	kpid=$!
	i=0
	while [ $i -lt 200 ]; do
		api GET /v1/health
		[ "$code" = 200 ] && return 0
		kill -0 "$kpid" 2>/dev/null || return 1
		sleep 0.05
		i=$((i + 1))
	done
	return 1
}

# ks CRED ARGS...: kosctl through kosd with the credential file CRED.
ks() {
	_c=$1
	shift
	"$K" --server "unix:$S" --credential-file "$kos_tmp/$_c.cred" "$@"
}

# same DESCRIPTION LOCAL REMOTE: two files hold the same JSON, once the
# times that moved between the runs are left out
same() {
	if sed -e '/"last_activity"/d' -e '/"calls"/d' -e '/"latency_/d' -e '/"sessions_opened"/d' \
		-e '/"logins"/d' "$2" > "$2.n" &&
		sed -e '/"last_activity"/d' -e '/"calls"/d' -e '/"latency_/d' \
			-e '/"sessions_opened"/d' -e '/"logins"/d' "$3" > "$3.n" &&
		cmp -s "$2.n" "$3.n"; then
		pass "$1"
	else
		fail "$1"
		diff "$2.n" "$3.n" | head -n 20 | sed 's/^/  diff| /'
	fi
}

expect 0 "init" "$K" init --dir "$d" --policy "$P/default.policy"
export KOS_CONF="$d/kos.conf"
expect 0 "ca init" "$K" ca init
expect 0 "admin client" "$K" client add admin --scope "admin:*"
cp "$out" "$kos_tmp/admin.secret"
expect 0 "a service" "$K" service register billing --ops charge,refund
expect 0 "a data key" "$K" key create payments

check "kosd starts" start_kosd
for c in admin; do
	run ks "$c" credential enroll - < "$kos_tmp/$c.secret"
	check "enroll $c" test "$status" -eq 0
done
ADM=$(cat "$kos_tmp/admin.cred")
expect 0 "client add svc" ks admin client add svc --scope "service:billing"
cp "$out" "$kos_tmp/svc.secret"
expect 0 "client add val" ks admin client add val --scope "validate:services"
cp "$out" "$kos_tmp/val.secret"
expect 0 "client add user" ks admin client add user@example --scope "decrypt:payments"
cp "$out" "$kos_tmp/user.secret"
for c in svc val user; do
	run ks "$c" credential enroll - < "$kos_tmp/$c.secret"
	check "enroll $c" test "$status" -eq 0
done
SVC=$(cat "$kos_tmp/svc.cred")
VAL=$(cat "$kos_tmp/val.cred")
USR=$(cat "$kos_tmp/user.cred")

# --- the CA's public keys: no credential ---
api GET /v1/ca/jwks
want 200 "GET /v1/ca/jwks without a credential"
grep_out '"kty"' "the JWKS holds keys"
"$K" --local ca jwks > "$kos_tmp/jwks.local"
check "the JWKS is the store's" sh -c "{ cat '$out'; echo; } | cmp -s - '$kos_tmp/jwks.local'"
api POST /v1/ca/jwks "" '{}'
want 405 "POST /v1/ca/jwks"

# --- service tokens ---
api POST /v1/services/billing/token "$SVC" '{"op":"charge"}'
want 200 "issue a token with service:billing"
tok=$(field token)
check "a token comes back" test -n "$tok"
api POST /v1/services/billing/token "$SVC" '{"op":"charge","window":60,"ttl":30}'
want 200 "issue with window and ttl"
api POST /v1/services/billing/token "$USR" '{"op":"charge"}'
want 403 "issue without the service's scope"
grep_out '"error":"out_of_scope"' "issue: out_of_scope"
api POST /v1/services/billing/token "$SVC" '{"op":"bad op"}'
want 400 "issue: an invalid operation"
api POST /v1/services/billing/token "$SVC" '{"op":"charge","window":0}'
want 400 "issue: a zero window"
api POST /v1/services/billing/token "$SVC" '{"op":"delete"}'
want 403 "issue: an operation not registered"
api POST /v1/services/billing/token "$SVC" '{}'
want 400 "issue: no op"
api POST /v1/services/none/token "$ADM" '{"op":"charge"}'
want 403 "issue for another service (admin:* is no service scope)"
api POST /v1/services/-bad/token "$SVC" '{"op":"charge"}'
want 400 "issue: a bad service name"
api POST /v1/services/validate "$VAL" "{\"token\":\"$tok\"}"
want 200 "validate with validate:services"
grep_out '"valid":true' "valid"
grep_out '"service":"billing"' "the claims name the service"
api POST /v1/services/validate "$SVC" "{\"token\":\"$tok\",\"service\":\"billing\",\"op\":\"charge\"}"
want 200 "validate with service:billing naming the service"
api POST /v1/services/validate "$SVC" "{\"token\":\"$tok\"}"
want 403 "validate with service:billing without naming it"
grep_out '"error":"out_of_scope"' "validate: out_of_scope"
api POST /v1/services/validate "$USR" "{\"token\":\"$tok\"}"
want 403 "validate without a service scope"
api POST /v1/services/validate "$VAL" "{\"token\":\"$tok\",\"op\":\"refund\"}"
want 422 "validate: a token for another operation"
grep_out '"error":"invalid_token"' "invalid_token"
api POST /v1/services/validate "$VAL" "{\"token\":\"${tok}x\"}"
want 422 "validate: a forged token"
check "the refusal does not quote the token" sh -c "! grep -qF '$tok' '$out'"
api POST /v1/services/validate "$VAL" '{"token":5}'
want 400 "validate: a token of the wrong type"

# --- admin: services ---
api POST /v1/admin/services "$ADM" '{"name":"ship","ops":"send"}'
want 200 "register a service"
api POST /v1/admin/services "$ADM" '{"name":"ship","ops":"send"}'
want 409 "register it again"
api POST /v1/admin/services "$ADM" '{"name":"x","ops":"a b"}'
want 400 "register: bad operations"
api POST /v1/admin/services "$SVC" '{"name":"y","ops":"a"}'
want 403 "register without admin:services"
api POST /v1/admin/services/billing/rotate "$ADM" '{}'
want 200 "rotate a service"
grep_out '"seed_version":2' "the seed version moves on"
api POST /v1/services/validate "$VAL" "{\"token\":\"$tok\"}"
want 422 "a token of the old seed is refused"
api POST /v1/admin/services/billing/rotate "$ADM" '{"breach":true}'
want 200 "rotate with breach"
api POST /v1/admin/services/billing/rotate "$ADM" '{"breach":"yes"}'
want 400 "breach of the wrong type"
api POST /v1/admin/services/nosuch/rotate "$ADM" '{}'
want 404 "rotate an unknown service"
api POST /v1/admin/services/billing/rotate "$SVC" '{}'
want 403 "rotate without admin:services"

# --- admin: trust ---
api POST /v1/admin/trust/user@example/observe "$ADM" '{"event":"success"}'
want 200 "observe a success"
grep_out '"client":"user@example"' "observe answers the client's trust"
api POST /v1/admin/trust/user@example/observe "$ADM" '{"event":"latency","value":12.5}'
want 200 "observe a latency"
api POST /v1/admin/trust/user@example/observe "$ADM" '{"event":"usage","ops":3,"bytes":100}'
want 200 "observe usage"
api POST /v1/admin/trust/user@example/observe "$ADM" '{"event":"bogus"}'
want 400 "observe a bad event"
api POST /v1/admin/trust/user@example/observe "$ADM" '{"event":"latency"}'
want 400 "latency without a value"
api POST /v1/admin/trust/user@example/observe "$ADM" '{"event":"reputation","value":300}'
want 400 "reputation out of range"
api POST /v1/admin/trust/user@example/observe "$ADM" '{"event":"usage","ops":-1}'
want 400 "negative usage"
api POST /v1/admin/trust/user@example/observe "$USR" '{"event":"success"}'
want 403 "observe without admin:trust"
grep_out '"error":"out_of_scope"' "observe: out_of_scope"
api POST /v1/admin/trust/.bad/observe "$ADM" '{"event":"success"}'
want 400 "observe: a bad client name"
api GET /v1/admin/trust/user@example "$ADM"
want 200 "trust of one client"
grep_out '"factors"' "with its factors"
api GET /v1/admin/trust/nobody "$ADM"
want 404 "trust of an unknown client"
api GET /v1/admin/trust/user@example "$USR"
want 403 "trust without admin:trust"
api GET /v1/admin/trust "$ADM"
want 200 "trust list"
grep_out '"clients":\[' "a list of clients"
grep_out '"client":"user@example"' "the list holds the client"
api GET /v1/admin/trust "$SVC"
want 403 "trust list without admin:trust"
api DELETE /v1/admin/trust/user@example "$ADM"
want 405 "DELETE on a client's trust"

# --- admin: keys, clients, threat, kms ---
api GET /v1/admin/keys/payments "$ADM"
want 200 "show a key"
grep_out '"kcv":"' "with the version's KCV"
grep_out '"shares":\[' "and its share locations"
api GET /v1/admin/keys/nosuch "$ADM"
want 404 "show an unknown key"
api GET /v1/admin/keys/payments "$USR"
want 403 "show without admin:keys"
api GET /v1/admin/keys/payments/rotate "$ADM"
want 405 "GET on a key's rotate route"
api GET /v1/admin/clients "$ADM"
want 200 "list clients"
grep_out '"client":"svc"' "the list holds svc"
check "the list holds no secret" sh -c "! grep -q '\"secret\"' '$out'"
api GET /v1/admin/clients "$SVC"
want 403 "list clients without admin:clients"
api GET /v1/admin/threat "$ADM"
want 200 "the threat level"
grep_out '"level":"normal"' "normal"
api POST /v1/admin/threat "$ADM" '{"level":"elevated","reason":"drill"}'
want 200 "raise it"
api GET /v1/admin/threat "$ADM"
grep_out '"reason":"drill"' "the reason is shown"
api POST /v1/admin/threat "$ADM" '{"level":"normal"}'
api GET /v1/admin/threat "$USR"
want 403 "threat without admin:threat"
api GET /v1/admin/kms "$ADM"
want 200 "the backend tokens"
grep_out '"health":"ok"' "healthy"
grep_out '"reachable":true' "reachable tokens"
api GET /v1/admin/kms "$USR"
want 403 "kms without admin:kms"


# --- kosctl through kosd: the same JSON as on the store ---
for cmd in "trust show user@example" "trust list" "key show payments" "client list" \
	"threat show" "kms list" "ca jwks"; do
	# shellcheck disable=SC2086
	run "$K" --local --json $cmd
	cp "$out" "$kos_tmp/local.json"
	# shellcheck disable=SC2086
	run ks admin --json $cmd
	check "kosctl $cmd through kosd" test "$status" -eq 0
	same "kosctl --json $cmd: the store's shape" "$kos_tmp/local.json" "$out"
done
expect 0 "trust show through kosd, as text" ks admin trust show user@example
grep_out "^tier: " "the tier is shown"
grep_out "^observations: *3" "kosd's observations are counted"
expect 0 "trust observe through kosd" ks admin trust observe user@example reputation 80
grep_out "^user@example: score [0-9.]*, tier " "the new score and tier"
expect 0 "trust observe usage through kosd" ks admin --json trust observe user@example usage 5 4096
grep_out '"observations": 5' "the observation is recorded"
expect 2 "a bad event is refused before kosd" ks admin trust observe user@example bogus
expect 1 "trust show of an unknown client" ks admin trust show nobody
grep_err "(not_found)" "not_found is named"
expect 1 "trust list without admin:trust" ks user trust list
grep_err "(out_of_scope)" "out_of_scope is named"
expect 0 "trust list --at stays on the store" ks user trust list --at +1d
grep_out "^user@example " "the store's list"
expect 0 "key show through kosd, as text" ks admin key show payments
grep_out "^current: 1" "the current version"
grep_out "^  set " "the share set"
expect 1 "key show without admin:keys" ks user key show payments
expect 0 "client list through kosd, as text" ks admin client list
grep_out "^CLIENT" "the heading"
grep_out "^user@example " "the client"
expect 1 "client list without admin:clients" ks user client list
expect 0 "threat show through kosd" ks admin threat show
grep_out "^level: *normal" "the level"
expect 1 "threat show without admin:threat" ks svc threat show
expect 0 "kms list through kosd" ks admin kms list
grep_out "^NAME " "the heading"
expect 1 "kms list without admin:kms" ks user kms list
grep_err "(out_of_scope)" "kms: out_of_scope"
run ks svc service token billing --op charge
check "service token through kosd" test "$status" -eq 0
cp "$out" "$kos_tmp/svc.tok"
expect 0 "service validate through kosd" ks val service validate - < "$kos_tmp/svc.tok"
grep_out '"service": "billing"' "the claims"
expect 0 "the store validates kosd's token too" "$K" --local service validate - < "$kos_tmp/svc.tok"
expect 1 "service validate for another op" ks val service validate --op refund - < "$kos_tmp/svc.tok"
grep_err "(invalid_token)" "invalid_token is named"
check "the refusal does not quote the token" sh -c "! grep -qF \"\$(cat '$kos_tmp/svc.tok')\" '$err'"
expect 1 "service token without service:billing" ks user service token billing --op charge
grep_err "(out_of_scope)" "service token: out_of_scope"
expect 0 "service register through kosd" ks admin service register mail --ops send
expect 0 "the store knows it" "$K" --local service show mail
expect 1 "service register without admin:services" ks svc service register m2 --ops send
expect 0 "service rotate through kosd" ks admin service rotate billing --breach
grep_out "seed version 4" "the seed version"
expect 1 "the old token is refused" ks val service validate - < "$kos_tmp/svc.tok"

kill -TERM "$kpid"
wait "$kpid" || true
kpid=""
finish kosd-routes
