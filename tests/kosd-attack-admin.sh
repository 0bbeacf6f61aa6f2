#!/bin/sh
# Attacks on kosd's trust boundary through its service and administrative
# routes and through kosctl's local commands, each performed with real
# requests by a client that should not succeed; every check passes only
# because the attack fails (and what it aimed at is unchanged):
# - a deny-tier client asks for service tokens and validates them;
# - a deny-tier administrator forgets its own trust; a trusted one
#   administers itself;
# - delegated administration gives away more than it holds, or resets
#   another administrator's secret;
# - a signer, a deny-tier administrator and a certifier destroy a key, and a
#   signer removes a certificate;
# - an unauthenticated sender replays a used enrollment secret to lower its
#   client's trust, and floods the ledger with probes;
# - a low client asks for a version that does not exist;
# - the local administrator decrypts at tier deny.
. "${srcdir:-.}/tests/lib.sh"
set -e

kosd_env

# code_is CODE DESCRIPTION: the last answer's JSON error code
code_is() { grep_out "\"error\":\"$1\"" "$2: $1"; }
# add NAME SCOPE: registers NAME through kosd and enrolls it (credential in
# $kos_tmp/NAME.cred, its value in the variable named by NAME's upper case)
add() {
	api POST /v1/admin/clients "$ADM" "{\"name\":\"$1\",\"scope\":\"$2\"}"
	sec=$(field secret)
	api POST /v1/credentials/enroll "" "{\"secret\":\"$sec\"}"
	field credential > "$kos_tmp/$1.cred"
	test -s "$kos_tmp/$1.cred"
}
cred() { cat "$kos_tmp/$1.cred"; }
# observe NAME EVENT [VALUE] COUNT: COUNT observations of NAME by the admin
observe() {
	_n=$1 _e=$2 _v=$3 _i=0
	while [ $_i -lt "$4" ]; do
		if [ -n "$_v" ]; then
			api POST "/v1/admin/trust/$_n/observe" "$ADM" "{\"event\":\"$_e\",\"value\":$_v}"
		else
			api POST "/v1/admin/trust/$_n/observe" "$ADM" "{\"event\":\"$_e\"}"
		fi
		_i=$((_i + 1))
	done
}
# tier NAME: NAME's tier now, through kosd
tier() {
	api GET "/v1/admin/trust/$1" "$ADM"
	field tier
}
# observations NAME: how many observations NAME has (0 for none)
observations() {
	api GET "/v1/admin/trust/$1" "$ADM"
	sed -n 's/.*"observations":\([0-9]*\).*/\1/p' "$out" | grep . || echo 0
}
# to_deny NAME: drives NAME to tier deny by observations an admin records
to_deny() {
	observe "$1" integrity "" 4
	observe "$1" scope "" 8
	observe "$1" reputation 0 10
	observe "$1" latency 100000 10
	test "$(tier "$1")" = deny
}

expect 0 "init" "$K" init --dir "$d" --policy "$P/default.policy"
export KOS_CONF="$d/kos.conf"
expect 0 "ca init" "$K" ca init
expect 0 "admin client" "$K" client add admin --scope "*:*"
asec=$(cat "$out")
expect 0 "a data key" "$K" key create payments
expect 0 "a service" "$K" service register billing --ops charge
check "kosd starts" start_kosd
api POST /v1/credentials/enroll "" "{\"secret\":\"$asec\"}"
ADM=$(field credential)
check "the admin enrolls" test -n "$ADM"

# --- 4: deny is enforced on the service routes ---
check "client svc" add svc "service:billing validate:services"
api POST /v1/services/billing/token "$(cred svc)" '{"op":"charge"}'
want 200 "a trusted client gets a service token"
tok=$(field token)
check "client den" add den "service:billing validate:services admin:trust"
check "den is driven to deny" to_deny den
api POST /v1/services/billing/token "$(cred den)" '{"op":"charge","window":86400}'
want 403 "deny: no service token"
code_is trust_too_low "deny: no service token"
check "and no token in the answer" sh -c "! grep -q '\"token\"' '$out'"
api POST /v1/services/validate "$(cred den)" "{\"token\":\"$tok\"}"
want 403 "deny: no validation"
code_is trust_too_low "deny: no validation"
api POST /v1/services/validate "$(cred den)" "{\"token\":\"$tok\",\"service\":\"billing\"}"
want 403 "deny: no validation naming the service"
code_is trust_too_low "deny: no validation naming the service"

# --- 5: administration takes trust; nobody administers itself ---
api POST /v1/admin/trust/den/forget "$(cred den)" '{}'
want 403 "deny: forgetting its own trust"
code_is trust_too_low "deny: forgetting its own trust"
check "den is still deny" test "$(tier den)" = deny
api POST /v1/admin/trust/den/observe "$(cred den)" '{"event":"success"}'
want 403 "deny: observing itself"
check "client selfish (admin:trust admin:clients admin:credentials)" \
	add selfish "admin:trust admin:clients admin:credentials decrypt:payments"
observe selfish integrity "" 1
n=$(observations selfish)
t=$(tier selfish)
api POST /v1/admin/trust/selfish/forget "$(cred selfish)" '{}'
want 403 "a trusted admin forgetting its own trust"
code_is self_administration "forget itself"
api POST /v1/admin/trust/selfish/observe "$(cred selfish)" '{"event":"reputation","value":100}'
want 403 "a trusted admin raising its own trust"
code_is self_administration "observe itself"
api POST /v1/admin/clients/selfish/secret "$(cred selfish)" '{}'
want 403 "a new enrollment secret for itself"
code_is self_administration "its own secret"
check "and no secret in the answer" sh -c "! grep -q '\"secret\"' '$out'"
api POST /v1/admin/credentials "$(cred selfish)" '{"client":"selfish"}'
want 403 "a credential for itself"
code_is self_administration "its own credential"
api POST /v1/admin/clients/selfish/enable "$(cred selfish)" '{}'
want 403 "enabling itself"
check "its observations are its five refusals only ($n + 5)" test "$(observations selfish)" -eq $((n + 5))
check "its tier did not rise ($t)" sh -c "[ '$(tier selfish)' = '$t' ] || [ '$(tier selfish)' = low ]"
api POST /v1/admin/trust/den/forget "$(cred selfish)" '{}'
want 403 "forgetting a client that holds more than it (service:billing)"
code_is beyond_scope "a client beyond its scope"
check "client plain" add plain "decrypt:payments"
observe plain success "" 1
api POST /v1/admin/trust/plain/forget "$(cred selfish)" '{}'
want 200 "administering a client within its scope is its job"
api GET /v1/admin/trust/selfish "$(cred selfish)"
want 200 "reading its own trust changes nothing and is allowed"

# --- 6: delegation lies within the granter's scope ---
check "client deleg (admin:clients only)" add deleg "admin:clients"
api POST /v1/admin/clients "$(cred deleg)" '{"name":"evil","scope":"admin:* key:* decrypt:*"}'
want 403 "admin:clients registers admin:* key:* decrypt:*"
code_is beyond_scope "a wider client"
api GET /v1/admin/clients/evil "$ADM"
want 404 "no client evil"
api POST /v1/admin/clients "$(cred deleg)" '{"name":"evil","scope":"admin:clients decrypt:payments"}'
want 403 "admin:clients registers admin:clients decrypt:payments"
api POST /v1/admin/clients/admin/secret "$(cred deleg)" '{}'
want 403 "admin:clients resets the admin's secret"
code_is beyond_scope "another admin's secret"
api GET /v1/admin/clients/admin "$ADM"
grep_out '"secret_expires":null\|"secret_expires":"-"' "the admin has no new secret pending"
api POST /v1/admin/clients/admin/disable "$(cred deleg)" '{}'
want 403 "admin:clients disables the admin"
api GET /v1/admin/clients "$ADM"
want 200 "the admin still works"
api POST /v1/admin/clients "$(cred deleg)" '{"name":"peer","scope":"admin:clients"}'
want 200 "admin:clients registers a client within its scope"
check "client issuer (admin:credentials decrypt:payments)" add issuer "admin:credentials decrypt:payments"
api POST /v1/admin/credentials "$(cred issuer)" '{"client":"admin"}'
want 403 "admin:credentials issues a credential for the admin"
code_is beyond_scope "a credential beyond its scope"
check "and no credential in the answer" sh -c "! grep -q '\"credential\"' '$out'"
api POST /v1/admin/credentials "$(cred issuer)" '{"client":"selfish","scope":"admin:trust"}'
want 403 "admin:credentials issues admin:trust for another"
api POST /v1/admin/credentials "$(cred issuer)" '{"client":"selfish","scope":"decrypt:payments"}'
want 200 "a credential within its scope"
api POST /v1/admin/revoke "$(cred issuer)" '{"client":"admin"}'
want 403 "admin:credentials revokes the admin's credentials"
api GET /v1/admin/clients "$ADM"
want 200 "the admin's credential still works"

# --- 14: a low client asks for a version that does not exist ---
check "client low" add low "decrypt:payments key:payments"
observe low integrity "" 1
check "low is low" test "$(tier low)" = low
api POST /v1/keys/payments/request "$(cred low)" '{"version":4294967295}'
want 404 "a version that does not exist"
code_is not_found "no such version"
api POST /v1/keys/payments/request "$(cred low)" '{"version":2}'
want 404 "the next version, not made yet"
api POST /v1/keys/payments/request "$(cred low)" '{}'
want 200 "the current version, server-side"
grep_out '"delivery":"server"' "server-side only"

# --- 13: the ledger names what administration acted on ---
check "client registration names the client" sh -c \
	"'$K' ledger show | grep -E -q ' admin +admin_clients +selfish +[a-z]+ +allowed '"
check "a refused secret reset names its target" sh -c \
	"'$K' ledger show | grep -E -q ' deleg +admin_client_secret +admin +[a-z]+ +refused .*beyond scope$'"

# --- the local administrator takes the pipeline too ---
printf 'secret data' | "$K" --local key encrypt payments > "$kos_tmp/env"
check "a local encryption" test -s "$kos_tmp/env"
me=$(id -un)@local
expect 0 "the local administrator's trust is kept" "$K" trust show "$me"
for i in 1 2 3 4; do "$K" trust observe "$me" integrity >/dev/null; done
for i in 1 2 3 4 5 6 7 8; do "$K" trust observe "$me" scope >/dev/null; done
for i in 1 2 3 4 5 6 7 8 9 10; do
	"$K" trust observe "$me" reputation 0 >/dev/null
	"$K" trust observe "$me" latency 100000 >/dev/null
done
expect 0 "trust show $me" "$K" trust show "$me"
grep_out "^tier: *deny" "the local administrator is at deny"
run "$K" --local key decrypt < "$kos_tmp/env"
check "a local decryption at deny is refused" test "$status" -eq 1
grep_err "refused: trust too low" "refused for trust"
check "and writes nothing" test ! -s "$out"
check "the refusal is in the ledger" sh -c \
	"'$K' ledger show | grep -E -q ' $me +local_key_decrypt +- +deny +refused .*trust too low$'"
expect 0 "forget it" "$K" trust forget "$me"
run "$K" --local key decrypt < "$kos_tmp/env"
check "at the prior it decrypts" sh -c "[ '$status' -eq 0 ] && [ \"\$(cat '$out')\" = 'secret data' ]"

# --- 8: a replayed enrollment secret lowers nobody's trust ---
api POST /v1/admin/clients "$ADM" '{"name":"victim","scope":"decrypt:payments"}'
vsec=$(field secret)
api POST /v1/credentials/enroll "" "{\"secret\":\"$vsec\"}"
want 200 "victim enrolls"
observe victim success "" 1
vn=$(observations victim)
vt=$(tier victim)
for i in 1 2 3 4; do
	api POST /v1/credentials/enroll "" "{\"secret\":\"$vsec\"}"
	want 401 "replay $i is refused"
done
code_is invalid_secret "the replay"
check "victim's observations are untouched ($vn)" test "$(observations victim)" -eq "$vn"
check "victim's tier is untouched ($vt)" test "$(tier victim)" = "$vt"

# --- 14: destroying a key and removing a certificate take their scopes ---
api POST /v1/admin/keys "$ADM" '{"name":"doomed"}'
want 200 "a data key to destroy"
api POST /v1/admin/keys "$ADM" '{"name":"doomed-sig","type":"ec-p256"}'
want 200 "a signing key to destroy"
api POST /v1/keys/doomed/encrypt "$ADM" '{"plaintext":"c2VjcmV0","context":"c1"}'
want 200 "an envelope of doomed"
denv=$(field envelope)
api GET /v1/keys/doomed-sig/pubkey "$ADM"
want 200 "the signing key's public key"
sed -n 's/.*"pem":"\([^"]*\)".*/\1/p' "$out" | sed 's/\\n/\n/g' > "$kos_tmp/dsig.pub"
setup "a CA key" openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
	-out "$kos_tmp/dca.key"
setup "a certificate for doomed-sig" openssl x509 -new -subj /CN=doomed-sig \
	-key "$kos_tmp/dca.key" -force_pubkey "$kos_tmp/dsig.pub" -days 2 -outform DER \
	-out "$kos_tmp/dsig.der"
# (a broken earlier step leaves no file: counted above, the tally still comes)
dcert=$(base64 -w0 < "$kos_tmp/dsig.der" 2>/dev/null || true)
check "client dsigner (sign:doomed-sig sign:doomed)" add dsigner "sign:doomed-sig sign:doomed"
check "client dcert (certify:doomed-sig)" add dcert "certify:doomed-sig"
check "client dkeys (admin:keys), to be denied" add dkeys "admin:keys"
api POST /v1/keys/doomed-sig/certificate "$(cred dcert)" "{\"der\":\"$dcert\"}"
want 200 "certify:doomed-sig stores a certificate"
# still_there: doomed and doomed-sig, their envelope and certificate, as made
still_there() {
	api GET /v1/keys "$ADM"
	grep -q '"name":"doomed"' "$out" && grep -q '"name":"doomed-sig"' "$out" || return 1
	api POST /v1/decrypt "$ADM" "{\"envelope\":\"$denv\",\"context\":\"c1\"}"
	[ "$code" = 200 ] && [ "$(field plaintext)" = c2VjcmV0 ] || return 1
	api GET /v1/keys/doomed-sig/certificate "$ADM"
	[ "$code" = 200 ] && [ "$(field der)" = "$dcert" ]
}
api POST /v1/admin/keys/doomed/destroy "$(cred dsigner)" '{}'
want 403 "sign:doomed cannot destroy doomed"
code_is out_of_scope "destroy with sign:doomed"
api POST /v1/admin/keys/doomed-sig/destroy "$(cred dcert)" '{}'
want 403 "certify:doomed-sig cannot destroy doomed-sig"
code_is out_of_scope "destroy with certify:doomed-sig"
api POST /v1/keys/doomed-sig/certificate/remove "$(cred dsigner)" '{}'
want 403 "sign:doomed-sig cannot remove the certificate"
code_is out_of_scope "certificate/remove with sign:doomed-sig"
api POST /v1/admin/keys/doomed/destroy "" '{}'
want 401 "no credential cannot destroy"
check "dkeys is driven to deny" to_deny dkeys
api POST /v1/admin/keys/doomed/destroy "$(cred dkeys)" '{}'
want 403 "deny: admin:keys cannot destroy"
code_is trust_too_low "deny: destroy"
check "after the refusals both keys, the envelope and the certificate are intact" still_there
api POST /v1/admin/keys/nosuch/destroy "$ADM" '{}'
want 404 "destroy of an unknown key"
code_is not_found "destroy of an unknown key"
api POST /v1/keys/nosuch/certificate/remove "$ADM" '{}'
want 404 "certificate/remove of an unknown key"
check "after the 404s everything is intact" still_there

# the certifier removes the certificate; the key stays
api POST /v1/keys/doomed-sig/certificate/remove "$(cred dcert)" '{}'
want 200 "certify:doomed-sig removes the certificate"
grep_out '"removed":true' "the removal is confirmed"
api GET /v1/keys/doomed-sig/certificate "$ADM"
want 404 "the certificate is gone"
api GET /v1/keys/doomed-sig/pubkey "$ADM"
want 200 "the key stays"
api POST /v1/keys/doomed-sig/certificate/remove "$(cred dcert)" '{}'
want 404 "a second removal"

# the administrator destroys both
api POST /v1/admin/keys/doomed/destroy "$ADM" '{}'
want 200 "admin:keys destroys doomed"
grep_out '"destroyed":true' "the destruction is confirmed"
check "and with no warning" sh -c "! grep -q warning '$out'"
api POST /v1/admin/keys/doomed-sig/destroy "$ADM" '{}'
want 200 "admin:keys destroys doomed-sig"
api GET /v1/keys "$ADM"
check "GET /v1/keys names neither" sh -c "! grep -q '\"name\":\"doomed' '$out'"
api GET /v1/keys/doomed-sig/pubkey "$ADM"
want 404 "the destroyed key's public key"
api POST /v1/keys/doomed-sig/sign "$(cred dsigner)" '{"data":"eA=="}'
want 404 "the destroyed key signs nothing"
api POST /v1/decrypt "$ADM" "{\"envelope\":\"$denv\",\"context\":\"c1\"}"
check "the old envelope no longer decrypts ($code)" test "$code" != 200
check "and gives no plaintext" sh -c "! grep -q plaintext '$out'"
api POST /v1/admin/keys/doomed/destroy "$ADM" '{}'
want 404 "a second destruction"
expect 0 "fsck: no share or key pair of them is left on the tokens" "$K" fsck
grep_out "fsck: clean" "fsck is clean"
expect 0 "kms list" "$K" kms list
check "the ledger records the destruction" sh -c \
	"'$K' ledger show | grep -E -q 'admin_destroy +doomed '"
api POST /v1/admin/keys "$ADM" '{"name":"doomed"}'
want 200 "the name can be used again"

# --- 13: probes from nobody do not grow the ledger per request ---
kill -TERM "$kpid"
wait "$kpid" || true
kpid=""
h0=$("$K" ledger head | cut -d' ' -f1)
check "kosd starts again" start_kosd
i=0
while [ $i -lt 200 ]; do
	printf '{"secret":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA%d"}\n' $i
	i=$((i + 1))
done > "$kos_tmp/probes"
n401=0
n429=0
while read -r body; do
	api POST /v1/credentials/enroll "" "$body"
	case $code in 401) n401=$((n401 + 1)) ;; 429) n429=$((n429 + 1)) ;; esac
done < "$kos_tmp/probes"
check "the first probes are refused ($n401)" test "$n401" -ge 1 -a "$n401" -le 32
check "then the sender is turned away ($n429)" test "$n429" -ge 168
code_is too_many_failures "the sender"
api GET /v1/keys "$ADM"
want 200 "an authenticated client of the same sender is still served"
kill -TERM "$kpid"
wait "$kpid" || true
kpid=""
h1=$("$K" ledger head | cut -d' ' -f1)
# the admin's key listing, and one entry for the 200 probes
check "200 probes made at most 2 ledger entries ($h0 -> $h1)" test $((h1 - h0)) -le 3
check "the aggregate names the sender and the count" sh -c \
	"'$K' ledger show | grep -E -q ' - +unauthenticated +uid:[0-9]+ +- +refused +[0-9a-f]+ +200 refused'"
expect 0 "the ledger verifies" "$K" ledger verify

finish kosd-attack-admin
