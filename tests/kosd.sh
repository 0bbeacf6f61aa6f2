#!/bin/sh
# kosd on a development installation, driven with curl over its Unix socket:
# start and refusal of a second instance, the KMS role's start-up refusals,
# health, authentication and its refusals, admin routes, encrypt/decrypt,
# the tier-dependent key request for high, medium, low and deny clients
# (trust moved by kosctl in another process), signing, refresh, revocation
# (by route and by kosctl), bad input, metrics, SIGHUP with a broken policy,
# SIGTERM with the trust observations flushed, and a stale socket left by a
# killed kosd.
. "${srcdir:-.}/tests/lib.sh"
set -e

kosd_env

num() { sed -n "s/.*\"$1\":\([0-9][0-9]*\).*/\1/p" "$out"; }

observations() { "$K" trust show "$1" | sed -n 's/^observations: *//p'; }

# --- usage ---
expect 0 "--help" "$D" --help
grep_out "usage: kosd" "--help prints the usage"
expect 0 "--version" "$D" --version
grep_out "^kosd " "--version names kosd"
expect 2 "an unknown option" "$D" --bogus
expect 2 "a stray argument" "$D" stray
expect 1 "a missing configuration" "$D" --config "$kos_tmp/none.conf"
grep_err "cannot load the configuration" "the failure is explained"

# --- an installation; trust = the integrity factor alone, starting at 90,
# so that integrity failures place clients in chosen tiers ---
sed -e 's/prior = 60.0;/prior = 90.0;/' \
	-e 's/^    latency = 1.0;/    latency = 0.0;/' -e 's/^    usage = 1.0;/    usage = 0.0;/' \
	-e 's/^    anomaly = 2.0;/    anomaly = 0.0;/' -e 's/^    reputation = 1.0;/    reputation = 0.0;/' \
	-e 's/recovery = 1.0; };/recovery = 0.0; };/' "$P/default.policy" > "$kos_tmp/test.policy"
setup "the test policy is valid" "$K" policy check "$kos_tmp/test.policy"
setup "init" "$K" init --dir "$d" --policy "$kos_tmp/test.policy"
check "kos.conf names the socket" grep -q '^listen = { unix = "kosd.sock"' "$d/kos.conf"
sed -i 's/^listen = .*/listen = { unix = "kosd.sock"; unix_mode = "0600"; max_body = 65536; max_data_body = 1048576; timeout = "5s"; max_connections = 64; };/' "$d/kos.conf"
export KOS_CONF="$d/kos.conf"
setup "ca init" "$K" ca init
setup "admin client" "$K" client add admin --scope "*:*"
asec=$(cat "$out")
setup "enroll the admin" "$K" credential enroll "$asec"
ADM=$(cat "$out")
check "the admin credential" test -n "$ADM"

# --- the KMS role's start-up refusals (it serves in test-client) ---
expect 2 "--role of another name" "$D" --role boss --config "$d/kos.conf"
expect 1 "--role kms without a kms group" "$D" --role kms --config "$d/kos.conf"
grep_err "needs kms = { jwks" "the KMS role asks for the CA's public keys"
sed -e '/^store = /d' -e 's/^listen = .*/listen = { unix = "kms.sock"; };/' "$d/kos.conf" > "$d/kms.conf"
echo 'kms = { jwks = "ca.jwks"; };' >> "$d/kms.conf"
echo '{"keys": []}' > "$d/ca.jwks"
expect 1 "--role kms with a JWKS without keys" "$D" --role kms --config "$d/kms.conf"
grep_err "kms: jwks .*ca.jwks: not a JWKS" "the JWKS file is named"
check "no KMS socket is left behind" test ! -e "$d/kms.sock"

# --- start ---
check "kosd starts and answers health" start_kosd
grep_out '"status":"ok"' "health says ok"
check "the socket has the configured mode" sh -c "stat -c %a '$S' | grep -qx 600"
expect 1 "a second kosd on the same socket" "$D" --config "$d/kos.conf"
grep_err "another kosd answers" "the second kosd says why"
api GET /v1/health
want 200 "the first kosd still serves"

# --- authentication ---
api GET /v1/keys
want 401 "no credential"
grep_out '"error":"invalid_credential"' "the refusal is a JSON error"
api GET /v1/keys "not.a.credential"
want 401 "a malformed credential"
# a real forgery: the admin's credential with one bit of its signature
# flipped (valid form, a signature that does not verify)
run "${top_builddir:-.}/tests/jwt-forge" -f "$ADM"
forged=$(cat "$out")
check "the forgery is a well-formed JWS" sh -c "test '$forged' != '$ADM' && echo '$forged' | grep -q '^ey[A-Za-z0-9_-]*\.ey[A-Za-z0-9_-]*\.[A-Za-z0-9_-]\{86\}$'"
api GET /v1/keys "$forged"
want 401 "a forged credential"
grep_out '"message":"invalid credential"' "a forged credential: invalid credential, not a missing one"

# --- admin routes ---
api POST /v1/admin/keys "$ADM" '{"name":"payments"}'
want 200 "create a data key"
api POST /v1/admin/keys "$ADM" '{"name":"sig","type":"ec-p256"}'
want 200 "create a signing key"
api POST /v1/admin/keys "$ADM" '{"name":"payments"}'
want 409 "the same key again"
for c in hi med low den; do
	api POST /v1/admin/clients "$ADM" \
		"{\"name\":\"$c\",\"scope\":\"encrypt:payments decrypt:payments key:payments sign:sig\"}"
	want 200 "add client $c"
	sec=$(field secret)
	api POST /v1/credentials/enroll "" "{\"secret\":\"$sec\"}"
	want 200 "enroll $c"
	eval "T_$c=\$(field credential)"
done
api POST /v1/credentials/enroll "" "{\"secret\":\"$sec\"}"
want 401 "a used secret is refused"
api POST /v1/admin/clients "$T_hi" '{"name":"x","scope":"decrypt:x"}'
want 403 "a client without admin scope"
grep_out '"error":"out_of_scope"' "the refusal is out of scope"

# --- encrypt and decrypt (hello world) ---
api POST /v1/keys/payments/encrypt "$T_hi" '{"plaintext":"aGVsbG8gd29ybGQ=","context":"c1"}'
want 200 "encrypt"
envl=$(field envelope)
check "an envelope comes back" test -n "$envl"
api POST /v1/decrypt "$T_hi" "{\"envelope\":\"$envl\",\"context\":\"c1\"}"
want 200 "decrypt"
check "the plaintext round-trips" test "$(field plaintext)" = "aGVsbG8gd29ybGQ="
# an integrity failure costs trust: den's, which is driven to deny anyway
api POST /v1/decrypt "$T_den" "{\"envelope\":\"$envl\",\"context\":\"c2\"}"
want 422 "decrypt with the wrong context"
api POST /v1/keys/other/encrypt "$T_hi" '{"plaintext":"aGk="}'
want 403 "a key outside the scope"
grep_out '"error":"out_of_scope"' "out of scope is named"
api GET /v1/keys "$T_hi"
want 200 "list keys"
grep_out '"name":"payments"' "the list holds payments"
grep_out '"name":"sig"' "the list holds sig"

# --- signing ---
api POST /v1/keys/sig/sign "$T_hi" '{"data":"aGVsbG8="}'
want 200 "sign"
check "a signature comes back" test -n "$(field signature)"
api GET /v1/keys/sig/pubkey "$T_hi"
want 200 "the public key"
grep_out "BEGIN PUBLIC KEY" "it is PEM"

# --- tiers, moved by kosctl in another process ---
run "$K" trust observe med integrity
run "$K" trust observe low integrity
run "$K" trust observe low integrity
for i in 1 2 3 4; do run "$K" trust observe den integrity; done
api POST /v1/keys/payments/request "$T_hi" '{}'
want 200 "high: request"
grep_out '"delivery":"dek"' "high receives the DEK"
check "the DEK is 32 bytes" test "$(field dek | wc -c)" -eq 45
api POST /v1/keys/payments/request "$T_med" '{}'
want 200 "medium: request"
grep_out '"delivery":"shares"' "medium receives share references"
check "k references of set narrow" sh -c "grep -q '\"set\":\"narrow\"' '$out' && test \$(grep -o '\"share_id\"' '$out' | wc -l) -eq \$(sed -n 's/.*\"k\":\([0-9]*\).*/\1/p' '$out')"
api POST /v1/keys/payments/request "$T_low" '{}'
want 200 "low: request"
grep_out '"delivery":"server"' "low is refused the DEK: server-side only"
check "low gets no key material" sh -c "! grep -q -e '\"dek\"' -e share_id '$out'"
api POST /v1/decrypt "$T_low" "{\"envelope\":\"$envl\",\"context\":\"c1\"}"
want 200 "low decrypts server-side"
for r in "/v1/keys/payments/request {}" "/v1/keys/payments/encrypt {\"plaintext\":\"aGk=\"}" \
	"/v1/decrypt {\"envelope\":\"$envl\",\"context\":\"c1\"}" "/v1/keys/sig/sign {\"data\":\"aGk=\"}"; do
	api POST "${r%% *}" "$T_den" "${r#* }"
	want 403 "deny is refused ${r%% *}"
	grep_out '"error":"trust_too_low"' "the reason is trust too low"
done

# --- refresh and revocation ---
api POST /v1/credentials/refresh "$T_hi" '{"scope":"decrypt:payments"}'
want 200 "refresh to a narrower scope"
T_hi2=$(field credential)
api POST /v1/keys/payments/encrypt "$T_hi2" '{"plaintext":"aGk="}'
want 403 "the narrower credential cannot encrypt"
api POST /v1/credentials/refresh "$T_hi" '{"scope":"admin:*"}'
want 403 "refresh to a wider scope"
api POST /v1/admin/revoke "$ADM" '{"client":"hi"}'
want 200 "revoke hi's credentials"
api POST /v1/keys/payments/request "$T_hi" '{}'
want 401 "a revoked credential"
grep_out '"error":"revoked"' "the reason is revoked"
api POST /v1/admin/revoke "$ADM" '{"client":"hi","jti":"x"}'
want 400 "revoke wants one kind"
expect 0 "kosctl revokes low" "$K" credential revoke --client low
api POST /v1/decrypt "$T_low" "{\"envelope\":\"$envl\",\"context\":\"c1\"}"
want 401 "kosd sees another process's revocation"

# --- bad input ---
head -c 100000 /dev/zero | tr '\0' a | sed 's/^/{"secret":"/; s/$/"}/' > "$kos_tmp/big.json"
api POST /v1/credentials/enroll "" "@$kos_tmp/big.json"
want 413 "an oversized body"
grep_out '"error":"too_large"' "the refusal is JSON"
head -c 1500000 /dev/zero | tr '\0' A | sed 's/^/{"plaintext":"/; s/$/"}/' > "$kos_tmp/huge.json"
api POST /v1/keys/payments/encrypt "$T_med" "@$kos_tmp/huge.json"
want 413 "a body over the data limit"
run curl -s -o /dev/null -w '%{http_code}' --max-time 1 --unix-socket "$S" -X POST \
	-H 'Content-Length: 100' --data-binary '{"a"' http://kos/v1/credentials/enroll
check "a truncated body gets no answer" sh -c "! grep -q '^[2-5]' '$out'"
api POST /v1/credentials/enroll "" '{"secret": "ab'
want 400 "truncated JSON"
grep_out '"error":"invalid_json"' "invalid JSON is named"
api POST /v1/credentials/enroll "" 'not json'
want 400 "invalid JSON"
api POST /v1/credentials/enroll "" '{"secret":5}'
want 400 "a number for a string"
grep_out '"error":"wrong_type"' "the wrong type is named"
api POST /v1/credentials/enroll "" '[1,2]'
want 400 "an array for the body"
api POST /v1/keys/payments/encrypt "$T_med" '{"plaintext":5}'
want 400 "a number for the plaintext"
api POST /v1/keys/payments/encrypt "$T_med" '{}'
want 400 "a missing plaintext"
grep_out '"error":"missing_field"' "the missing field is named"
api POST /v1/keys/payments/encrypt "$T_med" '{"plaintext":"!!!!"}'
want 400 "bad base64"
api POST /v1/keys/payments/request "$T_med" '{"version":"x"}'
want 400 "a string for the version"
api POST /v1/credentials/enroll "" '{"secret":"a","secret":"b"}'
want 400 "a duplicate member"
api GET /v1/nothing
want 404 "an unknown route"
grep_out '"error":"not_found"' "not found is JSON"
api GET /v1/credentials/enroll
want 405 "the wrong method"
run curl -s -o "$kos_tmp/dots" --path-as-is --unix-socket "$S" -X POST \
	-H "Authorization: Bearer $T_med" --data-binary '{}' http://kos/v1/keys/../request
check "a name '..'" grep -q '"error":"invalid_name"' "$kos_tmp/dots"
api POST /v1/keys/pay/ments/request "$T_med" '{}'
want 400 "a name with /"
api POST /v1/keys/pay%2Fments/request "$T_med" '{}'
want 400 "a name with an escaped /"
api GET /v1/health
want 200 "health after all of them"

# --- metrics ---
api GET /metrics
want 200 "metrics"
grep_out '^kosd_requests_total{route="encrypt",status="200"} ' "requests by route and status"
grep_out '^kosd_request_duration_seconds_bucket{le="+Inf"} ' "a latency histogram"
grep_out '^kosd_decisions_total{tier="high",delivery="dek"} 1$' "decisions by tier"
grep_out '^kosd_decisions_total{tier="low",delivery="server"} 2$' "low's server-side decisions"
q=$(sed -n 's/^kosd_observations_queued_total //p' "$out")
b=$(sed -n 's/^kosd_observation_batches_total //p' "$out")
check "observations are batched ($q in $b transactions)" test "$b" -lt "$q"
w=$(sed -n 's/^kosd_workers //p' "$out")
check "kosd serves with worker threads ($w)" test "${w:-0}" -ge 1
g=$(sed -n 's/^kosd_group_commits_total //p' "$out")
gr=$(sed -n 's/^kosd_group_commit_requests_total //p' "$out")
check "decisions were committed before their answers ($gr requests in $g commits)" \
	test "${g:-0}" -ge 1 -a "${gr:-0}" -ge "${g:-0}"

# --- SIGHUP ---
cp "$d/kos.policy" "$kos_tmp/good.policy"
printf 'version = 1;\ntiers = { high = "x"; };\n' > "$d/kos.policy"
kill -HUP "$kpid"
wait_for 10 grep -q "kos.policy:2:" "$log" || true
api GET /v1/health
want 200 "a broken policy on SIGHUP: still serving"
check "the refusal is logged with FILE:LINE" grep -q "kos.policy:2:" "$log"
api POST /v1/keys/payments/request "$T_med" '{}'
grep_out '"delivery":"shares"' "the old policy still decides"
api POST /v1/admin/policy/reload "$ADM" '{}'
want 422 "reload by route refuses it too"
cp "$kos_tmp/good.policy" "$d/kos.policy"
reloads=$(grep -c "policy reloaded" "$log" || true)
kill -HUP "$kpid"
check "a good policy is reloaded" wait_for 10 sh -c "test \$(grep -c 'policy reloaded' '$log') -gt $reloads"

# --- SIGTERM lets an answer being read leave, and flushes the observations ---
head -c 600000 /dev/urandom | base64 -w0 > "$kos_tmp/big.b64"
{ printf '{"plaintext":"'; cat "$kos_tmp/big.b64"; printf '","context":"big"}'; } > "$kos_tmp/bigenc.json"
api POST /v1/keys/payments/encrypt "$ADM" "@$kos_tmp/bigenc.json"
want 200 "encrypt 600 KB"
{ printf '{"envelope":"'; field envelope | tr -d '\n'; printf '","context":"big"}'; } > "$kos_tmp/bigdec.json"
# the 800 KB answer is still leaving when SIGTERM comes: its reader waits
# 2 s before it reads past what the pipe and the socket hold
decrypts() {
	api GET /metrics
	sed -n 's/^kosd_requests_total{route="decrypt",status="200"} //p' "$out"
}
dec0=$(decrypts)
decrypt_answered() { test "$(decrypts)" -gt "${dec0:-0}"; }
{
	curl -s --max-time 30 --unix-socket "$S" -H "Authorization: Bearer $ADM" \
		-H 'Content-Type: application/json' --data-binary "@$kos_tmp/bigdec.json" \
		http://kos/v1/decrypt
	echo $? > "$kos_tmp/bigdec.rc"
} | { sleep 2; cat > "$kos_tmp/bigdec.out"; } &
cpid=$!
check "the big decrypt is answered" wait_for 10 decrypt_answered
before=$(observations med)
for i in 1 2 3; do api POST /v1/keys/payments/request "$T_med" '{}'; done
kill -TERM "$kpid"
set +e
wait "$kpid"
st=$?
wait "$cpid"
cst=$(cat "$kos_tmp/bigdec.rc")
set -e
kpid=""
check "SIGTERM: exit 0" test "$st" -eq 0
check "the slow reader got its whole answer (curl exit $cst)" test "$cst" -eq 0
check "and it is the plaintext" sh -c "sed -n 's/.*\"plaintext\":\"\([^\"]*\)\".*/\1/p' '$kos_tmp/bigdec.out' | tr -d '\n' | cmp -s - '$kos_tmp/big.b64'"
check "every observation is written ($before + 6)" test "$(observations med)" -eq $((before + 6))
check "the socket is removed" test ! -e "$S"
check "no secret in the log" sh -c "! grep -q -e '$ADM' -e '$sec' '$log'"
check "one log line per request" grep -q "client=med route=request .*status=200 tier=medium" "$log"

# --- the ledger: every decision, written at SIGTERM at the latest ---
expect 0 "the ledger verifies" "$K" ledger verify
grep_out "chain intact" "its chain is intact"
expect 0 "the ledger" "$K" ledger show
cp "$out" "$kos_tmp/ledger.txt"
lg() { grep -E -q "$1" "$kos_tmp/ledger.txt"; }
check "high's DEK, allowed" lg " hi +request +payments +high +allowed "
check "medium's share references, allowed" lg " med +request +payments +medium +allowed "
check "low's server-side answer, allowed" lg " low +request +payments +low +allowed "
check "deny, refused for trust too low" lg " den +sign +sig +deny +refused .*trust too low$"
# what nobody authenticated (no, a forged or a revoked credential, a used
# secret) is one entry per sender and minute, not one per request
check "unauthenticated refusals, aggregated" lg " - +unauthenticated +uid:[0-9]+ +- +refused +[0-9a-f]+ +[0-9]+ refused, last: "
check "out of scope, refused" lg " hi +admin_clients +[^ ]+ +[a-z]+ +refused .*out of scope$"
check "an enrollment names its client" lg " med +enroll +- +- +allowed "
check "a failed decryption" lg " den +decrypt +- +- +failed .*integrity$"
check "an admin's key creation names the key" lg " admin +admin_keys +payments +[a-z]+ +allowed "
# one entry per answered request of a recorded route by an authenticated
# client or a successful enrollment (the log has them all), plus one per
# sender and minute for the rest
nlog=$(grep ' route=' "$log" | grep -v -E ' route=(health|metrics|ca_jwks|unknown) ' |
	grep -c -E ' client=[^-]|route=enroll .*status=200 ')
nunauth=$(grep ' route=' "$log" | grep -v -E ' route=(health|metrics|ca_jwks|unknown) ' |
	grep -v -E ' client=[^-]|route=enroll .*status=200 ' | grep -c .)
nagg=$(grep -c " unauthenticated " "$kos_tmp/ledger.txt")
# and one per local command of the administrator on the store
nlocal=$(grep -c -E '^ *[0-9]+ [^ ]+ [^ ]+@local +local_' "$kos_tmp/ledger.txt")
nled=$("$K" ledger head | cut -d' ' -f1)
check "one entry per decision ($nled entries, $nlog requests, $nagg aggregates, $nlocal local)" \
	test "$nled" -eq $((nlog + nagg + nlocal)) -a "$nlocal" -ge 3
check "$nunauth unauthenticated requests in at most 3 entries ($nagg)" \
	test "$nunauth" -gt 3 -a "$nagg" -ge 1 -a "$nagg" -le 3
expect 0 "the ledger as JSON" "$K" ledger show --json
check "no credential or secret in the ledger" sh -c "! grep -q -e '$ADM' -e '$T_hi' -e '$sec' -e '$asec' '$out'"

# --- a stale socket ---
check "kosd starts again" start_kosd
kill -KILL "$kpid"
wait "$kpid" 2>/dev/null || true
kpid=""
check "a killed kosd leaves its socket" test -S "$S"
check "the next kosd removes the stale socket" start_kosd
check "and says so" grep -q "removed the stale socket" "$log"
stop_kosd
check "exit 0 again" test "$st" -eq 0

# --- listen.ledger = "synced": durable, and every commit on disk ---
cp "$d/kos.conf" "$kos_tmp/kos.conf.durable"
sed -i 's/^listen = { /listen = { ledger = "synced"; /' "$d/kos.conf"
grep -q 'ledger = "synced"' "$d/kos.conf" || fail "setup: the synced kos.conf"
nbefore=$("$K" ledger head | cut -d' ' -f1)
check "kosd starts synced" start_kosd
check "and says its answers wait for the disk" \
	grep -q "answers wait for their ledger entries on disk (group commit, synced)" "$log"
api POST /v1/keys/payments/encrypt "$ADM" '{"plaintext":"c3luY2Vk","context":"synced"}'
want 200 "an encryption, synced"
kill -KILL "$kpid"
wait "$kpid" 2>/dev/null || true
kpid=""
check "the answered decision is in the ledger after kill -9" \
	test "$("$K" ledger head | cut -d' ' -f1)" -gt "$nbefore"
expect 0 "the ledger verifies" "$K" ledger verify
# a store with no disk cannot be synced: kosd refuses to start, and says why
sed -i 's|^store = .*|store = "memory:";|' "$d/kos.conf"
set +e
"$D" --config "$d/kos.conf" >"$out" 2>"$err"
st=$?
set -e
check "kosd refuses \"synced\" on the memory store" test "$st" -ne 0
grep_err 'listen.ledger "synced": the memory state store has no disk' "the refusal says why"
cp "$kos_tmp/kos.conf.durable" "$d/kos.conf"

finish kosd
