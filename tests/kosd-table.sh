#!/bin/sh
# kosd's route table (tools/kosd/table.c) against the HTTP API it serves:
# the table holds exactly the routes below, under the names metrics, the
# log and the ledger know them by; every route of the table answers under
# its name and counts in /metrics under it; another method on its path is a
# 405, a path no route has a 404 (route "unknown"); a KMS front serves its
# rows of the table and answers 404 to every other.
. "${srcdir:-.}/tests/lib.sh"
set -e

kosd_env

# METHOD PATH NAME KMS: the routes, as kos-api(7) documents them
cat > "$kos_tmp/api" <<'EOF'
GET /v1/health health kms
GET /metrics metrics kms
POST /v1/credentials/enroll enroll -
POST /v1/credentials/refresh refresh -
GET /v1/keys keys -
GET /v1/keys/{key}/pubkey pubkey -
POST /v1/keys/{key}/encrypt encrypt -
POST /v1/decrypt decrypt -
POST /v1/keys/{key}/request request -
POST /v1/keys/{key}/sign sign -
POST /v1/admin/clients admin_clients -
POST /v1/admin/revoke admin_revoke -
POST /v1/admin/keys admin_keys -
POST /v1/admin/keys/{key}/rotate admin_rotate -
POST /v1/admin/keys/{key}/retire admin_retire -
POST /v1/admin/threat admin_threat -
POST /v1/admin/policy/reload admin_reload -
POST /v1/shares/fetch share_fetch kms
POST /v1/services/{service}/token service_token -
POST /v1/services/validate service_validate -
GET /v1/ca/jwks ca_jwks -
GET /v1/admin/clients admin_client_list -
GET /v1/admin/trust admin_trust_list -
GET /v1/admin/trust/{client} admin_trust_get -
POST /v1/admin/trust/{client}/observe admin_trust_observe -
GET /v1/admin/keys/{key} admin_key_show -
GET /v1/admin/threat admin_threat_get -
GET /v1/admin/kms admin_kms -
POST /v1/admin/services admin_service_register -
POST /v1/admin/services/{service}/rotate admin_service_rotate -
POST /v1/admin/keys/rotate-due admin_rotate_due -
POST /v1/admin/trust/{client}/forget admin_trust_forget -
POST /v1/admin/credentials admin_credential_issue -
GET /v1/admin/revocations admin_revocations -
POST /v1/admin/revocations/prune admin_prune -
POST /v1/admin/clients/{client}/disable admin_client_disable -
POST /v1/admin/clients/{client}/enable admin_client_enable -
POST /v1/admin/ca/rotate admin_ca_rotate -
GET /v1/admin/ca admin_ca_list -
POST /v1/admin/threat/check admin_threat_check -
GET /v1/admin/services admin_service_list -
GET /v1/admin/services/{service} admin_service_show -
POST /v1/admin/services/{service}/ops admin_service_ops -
POST /v1/admin/services/{service}/remove admin_service_remove -
GET /v1/admin/clients/{client} admin_client_show -
POST /v1/admin/clients/{client}/secret admin_client_secret -
POST /v1/keys/{key}/gcm/encrypt gcm_encrypt -
POST /v1/keys/{key}/gcm/decrypt gcm_decrypt -
POST /v1/keys/{key}/certificate cert_set -
GET /v1/keys/{key}/certificate cert_get -
POST /v1/admin/keys/{key}/destroy admin_destroy -
POST /v1/keys/{key}/certificate/remove cert_remove -
POST /v1/keys/{key}/rsa/decrypt rsa_decrypt -
POST /v1/keys/{key}/rewrap rewrap -
EOF

# the table's rows, one a line: { METHOD, "PATH", HANDLER, "NAME", FLAGS },
sed -n 's/^\t{ \(GET\|POST\), *"\([^"]*\)", *[a-z_]*, *"\([a-z_]*\)", *\(.*\) },$/\1 \2 \3 \4/p' \
	"${srcdir:-.}/tools/kosd/table.c" |
	while read -r m p n f; do
		case $f in *KOSD_RF_KMS*) k=kms ;; *) k=- ;; esac
		echo "$m $p $n $k"
	done > "$kos_tmp/table"
check "the table holds the routes of the API" cmp -s "$kos_tmp/api" "$kos_tmp/table"
diff "$kos_tmp/api" "$kos_tmp/table" | sed 's/^/  diff| /' || true
check "the table's names are unique" sh -c "test -z \"\$(cut -d' ' -f3 '$kos_tmp/api' | sort | uniq -d)\""

setup "init" "$K" init --dir "$d" --policy "$P/default.policy"
export KOS_CONF="$d/kos.conf"
setup "ca init" "$K" ca init
# kosd checks its table before it listens (kosd_routes_check): a row that
# is wrong is logged and kosd does not start
if start_kosd; then
	pass "kosd starts"
else
	fail "kosd starts"
	sed -n 's/.* routes: /  log| /p' "$log"
	finish kosd-table || exit 1
fi
check "kosd has no complaint about its routes" sh -c "! grep -q ' routes: ' '$log'"

# a path of the route: its {name} a name of its kind
concrete() { echo "$1" | sed -e 's/{key}/k1/' -e 's/{client}/c1/' -e 's/{service}/s1/'; }
other() { if [ "$1" = GET ]; then echo POST; else echo GET; fi; }
# takes METHOD PATH: the name of the route of METHOD that takes PATH, if any
takes() {
	while read -r _m _p _n _k; do
		[ "$_m" = "$1" ] || continue
		if echo "$2" | grep -qx "$(echo "$_p" | sed 's/{[a-z]*}/[^\/]*/')"; then
			echo "$_n"
		fi
	done < "$kos_tmp/api"
}
# send METHOD PATH: without a credential; a POST with an empty object, as a
# POST without a length is refused before routing
send() { if [ "$1" = POST ]; then api POST "$2" "" '{}'; else api "$1" "$2"; fi; }
# logged NAME PATH: the last request's log line names the route
logged() { grep " route=$1 path=$2 " "$log" | tail -n 1 | grep -q "status=$code "; }

while read -r m p n k; do
	c=$(concrete "$p")
	send "$m" "$c"
	check "$m $p answers as $n ($code)" logged "$n" "$c"
	[ "$code" != 404 ] || ! grep -q '"no such route"' "$out" || fail "$m $p is a route"
	o=$(other "$m")
	send "$o" "$c"
	t=$(takes "$o" "$c")
	if [ -n "$t" ]; then
		check "$o $c answers as $t" logged "$t" "$c"
	else
		want 405 "$o $c"
		check "$o $c is logged as unknown" logged unknown "$c"
	fi
done < "$kos_tmp/api"

for p in / /v1 /v1/nothing /v1/keys/k1/nothing /v1/keys/k1 /v1/admin/nothing /v1/health/x \
	/metricsx /v1/shares; do
	api GET "$p"
	want 404 "GET $p"
	grep_out '"error":"not_found"' "GET $p is not_found"
	check "GET $p is logged as unknown" logged unknown "$p"
done
send POST /v1/keys/.k1/sign
want 400 "a {key} that is no key name"
grep_out '"error":"invalid_name"' "the name is refused as a name"

api GET /metrics
cp "$out" "$kos_tmp/metrics"
while read -r m p n k; do
	check "/metrics counts $n" grep -q "^kosd_requests_total{route=\"$n\"," "$kos_tmp/metrics"
done < "$kos_tmp/api"
check "/metrics counts unknown" grep -q '^kosd_requests_total{route="unknown",status="404"}' \
	"$kos_tmp/metrics"

kill -TERM "$kpid"
wait "$kpid" || true
kpid=""

# --- a KMS front: its rows and nothing else ---
sed -e '/^store = /d' -e 's/^listen = .*/listen = { unix = "kms.sock"; };/' "$d/kos.conf" \
	> "$d/kms.conf"
echo 'kms = { jwks = "ca.jwks"; };' >> "$d/kms.conf"
"$K" --local ca jwks > "$d/ca.jwks"
"$D" --role kms --config "$d/kms.conf" 2>>"$log" &
kpid=$!
S="$d/kms.sock"
i=0
code=000
while [ $i -lt 200 ] && [ "$code" != 200 ]; do
	sleep 0.05
	api GET /v1/health
	i=$((i + 1))
done
check "the KMS front starts" test "$code" = 200
while read -r m p n k; do
	c=$(concrete "$p")
	send "$m" "$c"
	if [ "$k" = kms ]; then
		check "KMS front: $m $p answers as $n ($code)" logged "$n" "$c"
	else
		want 404 "KMS front: $m $p"
		grep_out 'no such route on a KMS front' "KMS front: $m $p is not served there"
	fi
done < "$kos_tmp/api"
kill -TERM "$kpid"
wait "$kpid" || true
kpid=""
finish kosd-table
