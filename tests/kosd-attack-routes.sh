#!/bin/sh
# kosd's routes attacked as an attacker would, over the Unix socket: every
# admin area called with a credential holding another admin area; the
# service routes with another service's credential and token; a grant for
# one share used for another share and another version; credentials that
# expired, are not yet valid, were revoked, re-signed with a wrong EC key,
# with alg HS256 keyed with the CA public key's PEM, with alg none, edited
# under their old signature, signed by a retired CA key past its
# verification window, and a certificate-bound (cnf) credential without its
# certificate. Each refusal is checked by its status and its JSON error
# code, and the state it would have changed is read back with an admin:*
# credential.
. "${srcdir:-.}/tests/lib.sh"
# no set -e: a refusal that fails to come must not stop the remaining checks

kosd_env
F=${top_builddir:-.}/tests/jwt-forge
SOFTHSM=/usr/lib/softhsm/libsofthsm2.so

# refused STATUS CODE DESCRIPTION: the last answer is a JSON refusal with
# this status and error code
refused() {
	want "$1" "$3"
	grep_out "\"error\":\"$2\"" "$3: $2"
}

# claim NAME TOKEN: a number claim of a credential's payload (unverified)
claim() {
	_p=$(printf '%s' "$2" | cut -d. -f2 | tr '_-' '/+')
	while [ $((${#_p} % 4)) -ne 0 ]; do _p="$_p="; done
	printf '%s' "$_p" | base64 -d 2>/dev/null | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"
}

# --- the installation: trust is the integrity factor alone, starting at
# 90 (so that the refusals below, which are observations of their callers,
# move no caller to another tier); a leeway of 1 s; at threat level
# critical a credential lives 1/100 of its tier's lifetime (a few seconds),
# so an expired credential is one kosd issued and time passed ---
sed -e 's/prior = 60.0;/prior = 90.0;/' \
	-e 's/^    latency = 1.0;/    latency = 0.0;/' -e 's/^    usage = 1.0;/    usage = 0.0;/' \
	-e 's/^    anomaly = 2.0;/    anomaly = 0.0;/' -e 's/^    reputation = 1.0;/    reputation = 0.0;/' \
	-e 's/recovery = 1.0; };/recovery = 0.0; };/' -e 's/leeway = "30s";/leeway = "1s";/' \
	-e 's/lifetime_factor = 0.25;/lifetime_factor = 0.01;/' \
	"$P/default.policy" > "$kos_tmp/test.policy"
setup "the test policy is valid" "$K" policy check "$kos_tmp/test.policy"
setup "init" "$K" init --dir "$d" --policy "$kos_tmp/test.policy"
export KOS_CONF="$d/kos.conf"
setup "ca init" "$K" ca init
setup "admin client" "$K" client add admin --scope "*:*"
cp "$out" "$kos_tmp/admin.secret"
setup "a service" "$K" service register billing --ops charge,refund
setup "another service" "$K" service register ship --ops send
setup "a data key" "$K" key create payments

check "kosd starts" start_kosd
run ks admin credential enroll - < "$kos_tmp/admin.secret"
setup "enroll admin" test "$status" -eq 0
ADM=$(cat "$kos_tmp/admin.cred" 2>/dev/null || true)
# the administrator's credential narrowed to administration alone
setup "an admin:* credential" "$K" credential issue admin --scope "admin:*"
ADMONLY=$(cat "$out")

areas="clients credentials keys threat policy trust kms services ca"
for a in $areas; do
	setup "client add adm-$a" ks admin client add "adm-$a" --scope "admin:$a"
	cp "$out" "$kos_tmp/adm-$a.secret"
done
setup "client add sb" ks admin client add sb --scope "service:billing"
cp "$out" "$kos_tmp/sb.secret"
setup "client add ss" ks admin client add ss --scope "service:ship"
cp "$out" "$kos_tmp/ss.secret"
setup "client add user" ks admin client add user@example --scope "decrypt:payments key:payments"
cp "$out" "$kos_tmp/user.secret"
for c in sb ss user; do
	run ks "$c" credential enroll - < "$kos_tmp/$c.secret"
	setup "enroll $c" test "$status" -eq 0
done
for a in $areas; do
	run ks "adm-$a" credential enroll - < "$kos_tmp/adm-$a.secret"
	setup "enroll adm-$a" test "$status" -eq 0
done
USR=$(cat "$kos_tmp/user.cred" 2>/dev/null || true)

# --- each admin area with a credential of another area ---

# state AREA: what the area's routes could change, read with admin:*, into
# $kos_tmp/state (times and counters that move on every read left out)
state() {
	: > "$kos_tmp/state"
	case $1 in
	clients) set -- /v1/admin/clients /v1/admin/clients/mallory ;;
	credentials) set -- /v1/admin/revocations ;;
	keys) set -- /v1/admin/keys/payments /v1/admin/keys/stolen ;;
	threat) set -- /v1/admin/threat ;;
	trust) set -- /v1/admin/trust/user@example ;;
	services) set -- /v1/admin/services /v1/admin/services/billing /v1/admin/services/evil ;;
	ca) set -- /v1/admin/ca ;;
	*) set -- ;;
	esac
	for p in "$@"; do
		api GET "$p" "$ADM"
		{ echo "$p $code"; sed -e 's/"last_activity":[^,}]*//g' -e 's/"score":[^,}]*//g' \
			-e 's/"factors":{[^}]*}//g' "$out"; echo; } >> "$kos_tmp/state"
	done
	# a reload is logged
	{ printf 'reloads '; grep -c "policy reloaded" "$log" || true; } >> "$kos_tmp/state"
}

# The admin routes: AREA METHOD PATH BODY, one a line. The bodies would
# change something (add, disable, rotate, forget...), were they accepted.
cat > "$kos_tmp/routes" <<'EOF'
clients POST /v1/admin/clients {"name":"mallory","scope":"admin:*"}
clients GET /v1/admin/clients -
clients GET /v1/admin/clients/adm-keys -
clients POST /v1/admin/clients/user@example/disable {}
clients POST /v1/admin/clients/admin/secret {}
credentials POST /v1/admin/credentials {"client":"admin","scope":"admin:*"}
credentials POST /v1/admin/revoke {"client":"user@example"}
credentials GET /v1/admin/revocations -
credentials POST /v1/admin/revocations/prune {}
keys POST /v1/admin/keys {"name":"stolen"}
keys GET /v1/admin/keys/payments -
keys POST /v1/admin/keys/payments/rotate {}
keys POST /v1/admin/keys/payments/retire {"version":1}
keys POST /v1/admin/keys/rotate-due {}
threat POST /v1/admin/threat {"level":"critical","reason":"attack"}
threat GET /v1/admin/threat -
threat POST /v1/admin/threat/check {}
policy POST /v1/admin/policy/reload {}
trust GET /v1/admin/trust -
trust GET /v1/admin/trust/user@example -
trust POST /v1/admin/trust/user@example/observe {"event":"reputation","value":0}
trust POST /v1/admin/trust/user@example/forget {}
kms GET /v1/admin/kms -
services POST /v1/admin/services {"name":"evil","ops":"steal"}
services GET /v1/admin/services -
services GET /v1/admin/services/billing -
services POST /v1/admin/services/billing/rotate {"breach":true}
services POST /v1/admin/services/billing/ops {"ops":"steal"}
services POST /v1/admin/services/billing/remove {}
ca GET /v1/admin/ca -
ca POST /v1/admin/ca/rotate {}
EOF
# a user: first every trust read, so that "forget" follows the observation
api POST /v1/admin/trust/user@example/observe "$ADM" '{"event":"success"}'
setup "user@example has a trust record" test "$code" = 200
# shellcheck disable=SC2034
while read -r area method path body; do
	[ "$body" = - ] && body=""
	state "$area"
	cp "$kos_tmp/state" "$kos_tmp/state.before"
	for a in $areas; do
		[ "$a" = "$area" ] && continue
		api "$method" "$path" "$(cat "$kos_tmp/adm-$a.cred")" "$body"
		refused 403 out_of_scope "$method $path with admin:$a"
	done
	state "$area"
	if cmp -s "$kos_tmp/state.before" "$kos_tmp/state"; then
		pass "$method $path: nothing changed"
	else
		fail "$method $path: nothing changed"
		diff "$kos_tmp/state.before" "$kos_tmp/state" | head -n 10 | sed 's/^/  diff| /'
	fi
	# the control: the area's own credential reads (a write would change
	# what the next rows rely on)
	if [ "$method" = GET ]; then
		api GET "$path" "$(cat "$kos_tmp/adm-$area.cred")"
		want 200 "the control: $path with admin:$area"
	fi
done < "$kos_tmp/routes"

# --- service routes with another service's credential and token ---
api POST /v1/services/billing/token "$(cat "$kos_tmp/sb.cred")" '{"op":"charge"}'
btok=$(field token)
setup "a billing token" test "$code" = 200 -a -n "$btok"
api POST /v1/services/ship/token "$(cat "$kos_tmp/ss.cred")" '{"op":"send"}'
stok=$(field token)
setup "a ship token" test "$code" = 200 -a -n "$stok"
api POST /v1/services/ship/token "$(cat "$kos_tmp/sb.cred")" '{"op":"send"}'
refused 403 out_of_scope "service:billing issues for ship"
api POST /v1/services/billing/token "$(cat "$kos_tmp/ss.cred")" '{"op":"charge"}'
refused 403 out_of_scope "service:ship issues for billing"
api POST /v1/services/billing/token "$ADMONLY" '{"op":"charge"}'
refused 403 out_of_scope "an admin:* credential issues for billing"
api POST /v1/services/validate "$(cat "$kos_tmp/ss.cred")" "{\"token\":\"$btok\",\"service\":\"ship\"}"
refused 422 invalid_token "billing's token validated as ship's"
check "the refusal names no claim of billing's token" sh -c "! grep -q '\"op\":\"charge\"' '$out'"
api POST /v1/services/validate "$(cat "$kos_tmp/sb.cred")" "{\"token\":\"$stok\",\"service\":\"billing\",\"op\":\"send\"}"
refused 422 invalid_token "ship's token validated as billing's"
api POST /v1/services/validate "$(cat "$kos_tmp/ss.cred")" "{\"token\":\"$btok\",\"service\":\"billing\"}"
refused 403 out_of_scope "service:ship validates naming billing"
api POST /v1/services/validate "$(cat "$kos_tmp/ss.cred")" "{\"token\":\"$btok\"}"
refused 403 out_of_scope "service:ship validates naming no service"
api POST /v1/services/validate "$(cat "$kos_tmp/sb.cred")" "{\"token\":\"$btok\",\"service\":\"billing\"}"
want 200 "the control: billing validates its own token"
grep_out '"valid":true' "the control: valid"
setup "a token of two days ago" "$K" --local service token billing --op charge --at -2d
cp "$out" "$kos_tmp/old.tok"
setup "a token two days ahead" "$K" --local service token billing --op charge --at +2d
cp "$out" "$kos_tmp/future.tok"
api POST /v1/services/validate "$(cat "$kos_tmp/sb.cred")" "{\"token\":\"$(cat "$kos_tmp/old.tok")\",\"service\":\"billing\"}"
refused 422 invalid_token "an expired service token"
api POST /v1/services/validate "$(cat "$kos_tmp/sb.cred")" "{\"token\":\"$(cat "$kos_tmp/future.tok")\",\"service\":\"billing\"}"
refused 422 invalid_token "a service token not yet valid"

# --- a grant for one share fetches no other share, of no other version ---
# the prior is high: integrity failures bring user@example to medium
i=0
while [ $i -lt 6 ]; do
	api POST /v1/keys/payments/request "$USR" '{}'
	grep -q '"delivery":"shares"' "$out" && break
	api POST /v1/admin/trust/user@example/observe "$ADM" '{"event":"integrity"}'
	i=$((i + 1))
done
grep_out '"delivery":"shares"' "a medium client receives share references"
sed 's/},{/}\n{/g' "$out" | sed -n 's/.*"share_id":"\([^"]*\)".*"grant":"\([^"]*\)".*/\1 \2/p' > "$kos_tmp/refs"
check "two references at least" test "$(wc -l < "$kos_tmp/refs")" -ge 2
id1=$(sed -n '1s/ .*//p' "$kos_tmp/refs")
g1=$(sed -n '1s/.* //p' "$kos_tmp/refs")
id2=$(sed -n '2s/ .*//p' "$kos_tmp/refs")
g2=$(sed -n '2s/.* //p' "$kos_tmp/refs")
api POST /v1/shares/fetch "$g1" "{\"share_id\":\"$id2\"}"
refused 403 out_of_scope "the grant of one share for another"
check "no share in the refusal" sh -c "! grep -q '\"share\"' '$out'"
api POST /v1/shares/fetch "$g2" "{\"share_id\":\"$id1\"}"
refused 403 out_of_scope "the grant of the second share for the first"
api POST /v1/shares/fetch "$USR" "{\"share_id\":\"$id1\"}"
refused 403 out_of_scope "the client's credential is no grant"
api POST /v1/shares/fetch "$ADM" "{\"share_id\":\"$id1\"}"
refused 403 out_of_scope "an administrator of every scope (*:*) is no grant"
api POST /v1/shares/fetch "$g1" "{\"share_id\":\"$id1\"}"
want 200 "the control: the grant fetches its own share"
grep_out "\"share_id\":\"$id1\"" "the control: that share"
# another version: the grants of version 2 fetch none of version 1's shares
api POST /v1/admin/keys/payments/rotate "$ADM" '{}'
setup "a second version of payments" test "$code" = 200
api POST /v1/keys/payments/request "$USR" '{}'
grep_out '"version":2' "the request answers version 2"
sed 's/},{/}\n{/g' "$out" | sed -n 's/.*"share_id":"\([^"]*\)".*"grant":"\([^"]*\)".*/\1 \2/p' > "$kos_tmp/refs2"
id3=$(sed -n '1s/ .*//p' "$kos_tmp/refs2")
g3=$(sed -n '1s/.* //p' "$kos_tmp/refs2")
check "version 2 has shares of its own" test -n "$id3" -a "$id3" != "$id1" -a "$id3" != "$id2"
api POST /v1/shares/fetch "$g3" "{\"share_id\":\"$id1\"}"
refused 403 out_of_scope "a grant of version 2 for a share of version 1"
api POST /v1/shares/fetch "$g1" "{\"share_id\":\"$id3\"}"
refused 403 out_of_scope "a grant of version 1 for a share of version 2"
api POST /v1/shares/fetch "$g3" "{\"share_id\":\"$id3\"}"
want 200 "the control: version 2's grant fetches its share"

# --- credentials that expired, are not yet valid, or were revoked ---
api POST /v1/admin/threat "$ADM" '{"level":"critical","reason":"short credentials"}'
setup "threat level critical" test "$code" = 200
api POST /v1/admin/credentials "$ADM" '{"client":"user@example","scope":"decrypt:payments"}'
SHORT=$(field credential)
setup "a credential issued at critical" test "$code" = 200 -a -n "$SHORT"
api GET /v1/keys "$SHORT"
want 200 "the control: valid before its expiry"
api POST /v1/admin/threat "$ADM" '{"level":"normal"}'
setup "threat level normal" test "$code" = 200
short_exp=$(claim exp "$SHORT")
check "it lives a few seconds" test -n "$short_exp" -a "$((${short_exp:-0} - $(claim iat "$SHORT")))" -le 5
# past exp and the leeway of 1 s
check "its expiry and the leeway pass" wait_for 20 sh -c "test \$(date +%s) -gt $((short_exp + 1))"
api GET /v1/keys "$SHORT"
refused 401 expired "an expired credential"

# The CA key signs through the token, as a CA host with a wrong clock
# would: a credential of the CA whose times lie elsewhere.
kid=$("$K" --local ca list | awk 'NR == 2 { print $1 }')
export SOFTHSM2_CONF="$d/softhsm2.conf"
casign="$SOFTHSM:kos-ca:$d/pins/ca.pin:kos-ca:$kid"
run "$F" -p "$casign" -n exp=+300 "$USR"
resigned=$(cat "$out")
setup "the CA re-signs a credential" test -n "$resigned"
api GET /v1/keys "$resigned"
want 200 "the control: a credential the CA key signs is accepted"
run "$F" -p "$casign" -n iat=+120 -n nbf=+120 -n exp=+420 "$USR"
api GET /v1/keys "$(cat "$out")"
refused 401 invalid_credential "a credential not yet valid"
grep_out "not yet valid" "the reason is not yet valid"
run "$F" -p "$casign" -n auth_time=-200 -n iat=-200 -n nbf=-200 -n exp=-60 "$USR"
api GET /v1/keys "$(cat "$out")"
refused 401 expired "a CA-signed credential past exp and leeway"

api POST /v1/admin/credentials "$ADM" '{"client":"user@example","scope":"decrypt:payments"}'
REV=$(field credential)
setup "a credential to revoke" test "$code" = 200 -a -n "$REV"
api GET /v1/keys "$REV"
want 200 "the control: before the revocation"
jti=$("$K" --local --json credential verify "$REV" | sed -n 's/.*"jti": *"\([^"]*\)".*/\1/p')
api POST /v1/admin/revoke "$ADM" "{\"jti\":\"$jti\"}"
setup "revoke it" test "$code" = 200
api GET /v1/keys "$REV"
refused 401 revoked "a revoked credential (verified and cached before)"
api POST /v1/credentials/refresh "$REV" '{}'
refused 401 revoked "a revoked credential cannot refresh"

# --- re-signed and edited credentials, each made an admin:* one and used
# to add a client: the client list must not change ---
api GET /v1/admin/clients "$ADM"
cp "$out" "$kos_tmp/clients.before"
setup "another EC key" openssl ecparam -name prime256v1 -genkey -noout -out "$kos_tmp/wrong.pem"
api GET /v1/ca/jwks
cp "$out" "$kos_tmp/jwks"
setup "the CA public key as PEM" "$F" --pem "$kos_tmp/jwks" "$kid"
cp "$out" "$kos_tmp/ca.pub.pem"
forged() { # DESCRIPTION FORGE-ARGS...
	_desc=$1
	shift
	run "$F" -s scope="admin:*" "$@" "$USR"
	if [ "$status" -ne 0 ]; then
		fail "$_desc: jwt-forge made no token"
		return 0
	fi
	tok=$(cat "$out")
	api POST /v1/admin/clients "$tok" '{"name":"mallory","scope":"admin:*"}'
	refused 401 invalid_credential "$_desc"
	api GET /v1/admin/clients "$ADM"
	check "$_desc: the client list is unchanged" cmp -s "$out" "$kos_tmp/clients.before"
}
forged "the scope edited under the old signature"
forged "a flipped signature bit" -f
forged "re-signed with another EC key" -e "$kos_tmp/wrong.pem"
forged "alg HS256 keyed with the CA public key's PEM" -h "$kos_tmp/ca.pub.pem"
forged "alg none" -0
forged "alg none with the old signature kept" -H alg=none
forged "another EC key under an unknown kid" -H kid=AAAAAAAAAAAAAAAAAAAAAA -e "$kos_tmp/wrong.pem"
forged "the CA key's PEM as HS256 under another alg name" -H alg=HS256

# the old forgery of the suite, kept: a character appended
api GET /v1/keys "${USR}x"
refused 401 invalid_credential "a credential with a character appended"

# --- a certificate-bound credential without its certificate ---
setup "a client certificate" openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
	-nodes -days 1 -subj /CN=user -keyout "$kos_tmp/user.key" -out "$kos_tmp/user.crt"
x5t=$(openssl x509 -in "$kos_tmp/user.crt" -outform DER | openssl dgst -sha256 -binary |
	openssl base64 -A | tr '+/' '-_' | tr -d '=')
api POST /v1/admin/credentials "$ADM" "{\"client\":\"user@example\",\"scope\":\"decrypt:payments key:payments\",\"cnf\":\"$x5t\"}"
BOUND=$(field credential)
setup "a credential bound to a certificate" test "$code" = 200 -a -n "$BOUND"
check "it carries cnf" sh -c "'$K' --local --json credential verify '$BOUND' --cnf '$x5t' | grep -q -F -e '$x5t'"
api GET /v1/keys "$BOUND"
refused 401 certificate_mismatch "a bound credential on the Unix socket"
api POST /v1/keys/payments/request "$BOUND" '{}'
refused 401 certificate_mismatch "a bound credential asks for a key without its certificate"
api POST /v1/credentials/refresh "$BOUND" '{}'
refused 401 certificate_mismatch "a bound credential refreshes without its certificate"
run "$F" -d cnf "$BOUND"
api GET /v1/keys "$(cat "$out")"
refused 401 invalid_credential "cnf removed under the old signature"

# --- a CA key past its retirement: its own signature no longer counts ---
# (CA keys retire after the longest lifetime + leeway + 60 s: lifetimes
# of 3 s make that about a minute)
sed -e 's/lifetime = { high = "15m"; medium = "5m"; low = "1m"; };/lifetime = { high = "3s"; medium = "3s"; low = "3s"; };/' \
	-e 's/leeway = "1s";/leeway = "0s";/' "$kos_tmp/test.policy" > "$d/kos.policy"
api POST /v1/admin/policy/reload "$ADM" '{}'
setup "a policy of short lifetimes" test "$code" = 200
api POST /v1/admin/ca/rotate "$ADM" '{}'
setup "ca rotate" test "$code" = 200
old="$SOFTHSM:kos-ca:$d/pins/ca.pin:kos-ca:$kid"
run "$F" -p "$old" -n iat=-1 -n nbf=-1 -n exp=+3600 "$USR"
api GET /v1/keys "$(cat "$out")"
want 200 "the control: the retired key verifies within its window"
until=$("$K" --local --json ca list | tr -d '\n ' | sed -n "s/.*\"kid\":\"$kid\",[^}]*\"verifies_until\":\"\([^\"]*\)\".*/\1/p")
check "the retired key's window is known ($until)" test -n "$until"
until_s=$(date -d "$until" +%s 2>/dev/null || echo 0)
check "its window passes" wait_for 120 sh -c "test \$(date +%s) -gt $until_s"
run "$F" -p "$old" -n iat=-1 -n nbf=-1 -n exp=+3600 "$USR"
late=$(cat "$out")
setup "the retired key signs on its token" test -n "$late"
api GET /v1/keys "$late"
refused 401 invalid_credential "a credential signed by a CA key past its retirement"
run "$F" -p "$old" -n iat=-1 -n nbf=-1 -n exp=+3600 -s scope="admin:*" "$USR"
api POST /v1/admin/clients "$(cat "$out")" '{"name":"mallory","scope":"admin:*"}'
refused 401 invalid_credential "a retired key's admin:* credential adds no client"
"$K" --local client show mallory >/dev/null 2>&1 && st=0 || st=$?
check "there is no client mallory" test "$st" -eq 1

kill -TERM "$kpid"
wait "$kpid" || true
kpid=""
finish kosd-attack-routes
