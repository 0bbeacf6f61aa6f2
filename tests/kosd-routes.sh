#!/bin/sh
# kosd's service-token, trust, key, client, credential, CA, threat, kms,
# service-admin and JWKS routes, with curl over the Unix socket and with
# kosctl --server: each route's success,
# its scope refusal (403 out_of_scope for a credential without the admin or
# service scope), and bad input (an unknown client, a bad event). kosctl
# through kosd prints the same --json shapes as on the store.
. "${srcdir:-.}/tests/lib.sh"
set -e

kosd_env

# same DESCRIPTION LOCAL REMOTE: two files hold the same JSON, once the
# times that moved between the runs (and the trust ceilings, which rise
# with time, and the scores they cap: a slow build reads them a thousandth
# apart) are left out
same() {
	if sed -e '/"last_activity"/d' -e '/"calls"/d' -e '/"latency_/d' -e '/"sessions_opened"/d' \
		-e '/"logins"/d' -e '/"ceiling"/d' -e '/"score"/d' "$2" > "$2.n" &&
		sed -e '/"last_activity"/d' -e '/"calls"/d' -e '/"latency_/d' \
			-e '/"sessions_opened"/d' -e '/"logins"/d' -e '/"ceiling"/d' \
			-e '/"score"/d' "$3" > "$3.n" &&
		cmp -s "$2.n" "$3.n"; then
		pass "$1"
	else
		fail "$1"
		diff "$2.n" "$3.n" | head -n 20 | sed 's/^/  diff| /'
	fi
}

setup "init" "$K" init --dir "$d" --policy "$P/default.policy"
export KOS_CONF="$d/kos.conf"
setup "ca init" "$K" ca init
setup "admin client" "$K" client add admin --scope "*:*"
cp "$out" "$kos_tmp/admin.secret"
setup "a service" "$K" service register billing --ops charge,refund
setup "a data key" "$K" key create payments
setup "a signing key" "$K" key create sig --type ec-p256
setup "its second version" "$K" key rotate sig
setup "a TLS key" "$K" key create tls --type ec-p256
setup "an RSA key" "$K" key create rsa --type rsa-2048
setup "its second version" "$K" key rotate tls

check "kosd starts" start_kosd
for c in admin; do
	run ks "$c" credential enroll - < "$kos_tmp/$c.secret"
	setup "enroll $c" test "$status" -eq 0
done
ADM=$(cat "$kos_tmp/admin.cred")
expect 0 "client add svc" ks admin client add svc --scope "service:billing"
cp "$out" "$kos_tmp/svc.secret"
expect 0 "client add val" ks admin client add val --scope "validate:services"
cp "$out" "$kos_tmp/val.secret"
expect 0 "client add user" ks admin client add user@example --scope "decrypt:payments"
cp "$out" "$kos_tmp/user.secret"
expect 0 "client add pk" ks admin client add pk --scope "pubkey:sig"
cp "$out" "$kos_tmp/pk.secret"
# administrators of one area each: refused in every other
setup "client add adk" ks admin client add adk --scope "admin:keys"
cp "$out" "$kos_tmp/adk.secret"
setup "client add adcl" ks admin client add adcl --scope "admin:clients"
cp "$out" "$kos_tmp/adcl.secret"
for c in svc val user pk adk adcl; do
	run ks "$c" credential enroll - < "$kos_tmp/$c.secret"
	setup "enroll $c" test "$status" -eq 0
done
SVC=$(cat "$kos_tmp/svc.cred")
VAL=$(cat "$kos_tmp/val.cred")
USR=$(cat "$kos_tmp/user.cred")
PK=$(cat "$kos_tmp/pk.cred")
OTH_K=$(cat "$kos_tmp/adk.cred")
OTH_C=$(cat "$kos_tmp/adcl.cred")

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
want 404 "issue for a service that does not exist"
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
api POST /v1/admin/services "$OTH_K" '{"name":"y","ops":"a"}'
want 403 "register with admin:keys only"
grep_out '"error":"out_of_scope"' "register with admin:keys only: out_of_scope"
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
api POST /v1/admin/services/billing/rotate "$OTH_K" '{}'
want 403 "rotate with admin:keys only"
grep_out '"error":"out_of_scope"' "rotate with admin:keys only: out_of_scope"

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
api POST /v1/admin/trust/user@example/observe "$OTH_K" '{"event":"success"}'
want 403 "observe with admin:keys only"
grep_out '"error":"out_of_scope"' "observe with admin:keys only: out_of_scope"
api POST /v1/admin/trust/.bad/observe "$ADM" '{"event":"success"}'
want 400 "observe: a bad client name"
api GET /v1/admin/trust/user@example "$ADM"
want 200 "trust of one client"
grep_out '"factors"' "with its factors"
api GET /v1/admin/trust/nobody "$ADM"
want 404 "trust of an unknown client"
api GET /v1/admin/trust/user@example "$USR"
want 403 "trust without admin:trust"
api GET /v1/admin/trust/user@example "$OTH_K"
want 403 "trust with admin:keys only"
grep_out '"error":"out_of_scope"' "trust with admin:keys only: out_of_scope"
api GET /v1/admin/trust "$ADM"
want 200 "trust list"
grep_out '"clients":\[' "a list of clients"
grep_out '"client":"user@example"' "the list holds the client"
api GET /v1/admin/trust "$SVC"
want 403 "trust list without admin:trust"
api GET /v1/admin/trust "$OTH_K"
want 403 "trust list with admin:keys only"
grep_out '"error":"out_of_scope"' "trust list with admin:keys only: out_of_scope"
api DELETE /v1/admin/trust/user@example "$ADM"
want 405 "DELETE on a client's trust"
api POST /v1/admin/trust/nobody/forget "$ADM" '{}'
want 404 "forget an unknown client"
api POST /v1/admin/trust/user@example/forget "$USR" '{}'
want 403 "forget without admin:trust"
grep_out '"error":"out_of_scope"' "forget: out_of_scope"
api POST /v1/admin/trust/user@example/forget "$OTH_K" '{}'
want 403 "forget with admin:keys only"
grep_out '"error":"out_of_scope"' "forget with admin:keys only: out_of_scope"
api GET /v1/admin/trust/user@example/forget "$ADM"
want 405 "GET on a client's forget route"

# --- admin: keys, clients, threat, kms ---
api GET /v1/admin/keys/payments "$ADM"
want 200 "show a key"
grep_out '"kcv":"' "with the version's KCV"
grep_out '"shares":\[' "and its share locations"
api GET /v1/admin/keys/nosuch "$ADM"
want 404 "show an unknown key"
api GET /v1/admin/keys/payments "$USR"
want 403 "show without admin:keys"
api GET /v1/admin/keys/payments "$OTH_C"
want 403 "show with admin:clients only"
grep_out '"error":"out_of_scope"' "show with admin:clients only: out_of_scope"
api GET /v1/admin/keys/payments/rotate "$ADM"
want 405 "GET on a key's rotate route"
api POST /v1/admin/keys/rotate-due "$ADM" '{}'
want 200 "rotate what is due"
grep_out '"rotated":\[\]' "nothing is due on fresh keys"
api POST /v1/admin/keys/rotate-due "$USR" '{}'
want 403 "rotate-due without admin:keys"
grep_out '"error":"out_of_scope"' "rotate-due: out_of_scope"
api POST /v1/admin/keys/rotate-due "$OTH_C" '{}'
want 403 "rotate-due with admin:clients only"
grep_out '"error":"out_of_scope"' "rotate-due with admin:clients only: out_of_scope"
api GET "/v1/keys/sig/pubkey?version=1" "$PK"
want 200 "an old version's public key"
grep_out '"version":1' "the version asked for"
"$K" --local key pubkey sig --version 1 > "$kos_tmp/pk1.local"
"$K" --local key pubkey sig > "$kos_tmp/pk2.local"
check "two versions, two public keys" sh -c "! cmp -s '$kos_tmp/pk1.local' '$kos_tmp/pk2.local'"
api GET "/v1/keys/sig/pubkey?version=0" "$PK"
want 400 "version 0"
api GET "/v1/keys/sig/pubkey?version=9" "$PK"
want 404 "a version that does not exist"
api GET "/v1/keys/sig/pubkey?version=1" "$USR"
want 403 "an old public key without pubkey:sig"
grep_out '"error":"out_of_scope"' "old pubkey: out_of_scope"

# --- signing with a chosen version: a TLS server's certificate is for one ---
api GET /v1/keys/sig/pubkey "$PK"
want 200 "the current public key"
grep_out '"version":2' "it names the current version"
printf hello > "$kos_tmp/hello"
api POST /v1/keys/sig/sign "$ADM" '{"data":"aGVsbG8=","alg":"ecdsa-der","version":1}'
want 200 "sign with version 1 after a rotation"
grep_out '"version":1' "the answer names version 1"
field signature | base64 -d > "$kos_tmp/sig1.bin"
check "version 1's public key verifies it" openssl dgst -sha256 -verify "$kos_tmp/pk1.local" \
	-signature "$kos_tmp/sig1.bin" "$kos_tmp/hello"
check "the current public key does not" sh -c "! openssl dgst -sha256 -verify \
	'$kos_tmp/pk2.local' -signature '$kos_tmp/sig1.bin' '$kos_tmp/hello' >/dev/null 2>&1"
api POST /v1/keys/sig/sign "$ADM" '{"data":"aGVsbG8=","version":0}'
want 200 "version 0 is the current one"
grep_out '"version":2' "the current version signed"
api POST /v1/keys/sig/sign "$ADM" '{"data":"aGVsbG8=","version":9}'
want 404 "sign with a version the key never had"
grep_out '"error":"not_found"' "no such version: not_found"
api POST /v1/keys/sig/sign "$ADM" '{"data":"aGVsbG8=","version":"1"}'
want 400 "a version that is not a number"
grep_out '"error":"wrong_type"' "version: wrong_type"
api POST /v1/admin/keys/tls/retire "$ADM" '{"version":1}'
want 200 "retire tls version 1"
api POST /v1/keys/tls/sign "$ADM" '{"data":"aGVsbG8=","version":1}'
want 409 "sign with a retired version"
grep_out '"error":"retired"' "a retired version: retired"
grep_out 'version 1 is retired' "the message names the version"
api POST /v1/keys/tls/sign "$ADM" '{"data":"aGVsbG8=","version":2}'
want 200 "the active version signs"
api POST /v1/keys/tls/sign "$PK" '{"data":"aGVsbG8=","version":2}'
want 403 "sign with a version out of scope"
grep_out '"error":"out_of_scope"' "a version out of scope: out_of_scope"
expect 0 "key sign --version through kosd" ks admin key sign sig --alg ecdsa-der --version 1 \
	< "$kos_tmp/hello"
check "its signature verifies with version 1's key" openssl dgst -sha256 -verify \
	"$kos_tmp/pk1.local" -signature "$out" "$kos_tmp/hello"
expect 1 "key sign --version of a retired version through kosd" ks admin key sign tls \
	--version 1 < "$kos_tmp/hello"
grep_err "(retired)" "key sign: retired"
expect 1 "key sign --version of a retired version on the store" "$K" --local key sign tls \
	--version 1 < "$kos_tmp/hello"
grep_err "version 1 is retired" "the store says retired"
expect 0 "key pem through kosd" ks pk key pem sig --version 1
check "it names version 1" test "$(sed -n 2p "$out" | openssl base64 -d)" = "kos:sig;version=1"
expect 1 "key pem of a retired version through kosd" ks admin key pem tls --version 1
grep_err "version 1 is retired" "key pem through kosd: retired"
expect 0 "key pem --public of it through kosd" ks admin key pem tls --version 1 --public
expect 1 "key pem of a version never made through kosd" ks admin key pem tls --version 7
grep_err "(not_found)" "key pem through kosd: not_found"
expect 1 "key pem of a data key through kosd" ks admin key pem payments
grep_err "data key" "key pem through kosd: a data key"
expect 1 "key pem out of scope" ks val key pem sig
grep_err "(out_of_scope)" "key pem through kosd: out_of_scope"

# --- RSA decryption inside the HSM: ciphertexts made by openssl pkeyutl ---
expect 0 "client add rd" ks admin client add rd --scope "decrypt:rsa decrypt:sig decrypt:payments"
cp "$out" "$kos_tmp/rd.secret"
run ks rd credential enroll - < "$kos_tmp/rd.secret"
setup "enroll rd" test "$status" -eq 0
RD=$(cat "$kos_tmp/rd.cred")
setup "the RSA key's public half" "$K" --local key pubkey rsa
cp "$out" "$kos_tmp/rsa.pub"
printf 'a premaster secret' > "$kos_tmp/rsa.pt"
R_PT=$(base64 -w0 < "$kos_tmp/rsa.pt")
# enc OPTS...: the plaintext encrypted to the key, base64
enc() { openssl pkeyutl -encrypt -pubin -inkey "$kos_tmp/rsa.pub" -in "$kos_tmp/rsa.pt" "$@" | base64 -w0; }
R_V15=$(enc)
R_OAEP=$(enc -pkeyopt rsa_padding_mode:oaep)
R_OAEP256=$(enc -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_oaep_label:6b6f73)
api POST /v1/keys/rsa/rsa/decrypt "$RD" "{\"ciphertext\":\"$R_V15\",\"padding\":\"pkcs1\"}"
want 200 "rsa/decrypt PKCS#1 v1.5"
check "the plaintext comes back" test "$(field plaintext)" = "$R_PT"
grep_out '"version":1' "rsa/decrypt names the version"
api POST /v1/keys/rsa/rsa/decrypt "$RD" "{\"ciphertext\":\"$R_OAEP\",\"padding\":\"oaep\"}"
want 200 "rsa/decrypt OAEP with its defaults (SHA-1)"
check "the OAEP plaintext comes back" test "$(field plaintext)" = "$R_PT"
api POST /v1/keys/rsa/rsa/decrypt "$RD" \
	"{\"ciphertext\":\"$R_OAEP256\",\"padding\":\"oaep\",\"hash\":\"sha256\",\"label\":\"a29z\",\"version\":1}"
want 200 "rsa/decrypt OAEP SHA-256 with a label"
check "the labelled plaintext comes back" test "$(field plaintext)" = "$R_PT"
api POST /v1/keys/rsa/rsa/decrypt "$RD" "{\"ciphertext\":\"$R_V15\"}"
want 400 "rsa/decrypt without padding"
grep_out '"error":"missing_field"' "no padding: missing_field"
api POST /v1/keys/rsa/rsa/decrypt "$RD" "{\"ciphertext\":\"$R_V15\",\"padding\":\"pss\"}"
want 400 "rsa/decrypt with another padding"
api POST /v1/keys/rsa/rsa/decrypt "$RD" "{\"ciphertext\":\"$R_V15\",\"padding\":\"pkcs1\",\"hash\":\"sha256\"}"
want 400 "rsa/decrypt pkcs1 with a hash"
api POST /v1/keys/rsa/rsa/decrypt "$RD" "{\"ciphertext\":\"$R_OAEP\",\"padding\":\"oaep\",\"hash\":\"md5\"}"
want 400 "rsa/decrypt with an unknown hash"
api POST /v1/keys/rsa/rsa/decrypt "$RD" "{\"ciphertext\":\"AAAA\",\"padding\":\"pkcs1\"}"
want 400 "rsa/decrypt of a ciphertext shorter than the modulus"
grep_out 'a ciphertext is 256 bytes' "the length is named"
api POST /v1/keys/sig/rsa/decrypt "$RD" "{\"ciphertext\":\"$R_V15\",\"padding\":\"pkcs1\"}"
want 400 "rsa/decrypt with an EC key"
grep_out 'only RSA keys decrypt' "an EC key: only RSA keys"
api POST /v1/keys/payments/rsa/decrypt "$RD" "{\"ciphertext\":\"$R_V15\",\"padding\":\"pkcs1\"}"
want 400 "rsa/decrypt with a data key"
api POST /v1/keys/rsa/rsa/decrypt "$RD" "{\"ciphertext\":\"$R_V15\",\"padding\":\"pkcs1\",\"version\":9}"
want 404 "rsa/decrypt with a version the key never had"
api POST /v1/keys/rsa/rsa/decrypt "$PK" "{\"ciphertext\":\"$R_V15\",\"padding\":\"pkcs1\"}"
want 403 "rsa/decrypt without decrypt:rsa"
grep_out '"error":"out_of_scope"' "rsa/decrypt: out_of_scope"
api GET /v1/keys/rsa/rsa/decrypt "$RD"
want 405 "GET rsa/decrypt"
# last for rd: failures cost its trust; each is one and the same answer
printf %s "$R_V15" | base64 -d > "$kos_tmp/bad.ct"
cp "$kos_tmp/bad.ct" "$kos_tmp/good.ct"
printf '\377\377' | dd of="$kos_tmp/bad.ct" bs=1 seek=10 conv=notrunc 2>/dev/null
cmp -s "$kos_tmp/bad.ct" "$kos_tmp/good.ct" &&
	printf '\0\0' | dd of="$kos_tmp/bad.ct" bs=1 seek=10 conv=notrunc 2>/dev/null
R_BAD=$(base64 -w0 < "$kos_tmp/bad.ct")
api POST /v1/keys/rsa/rsa/decrypt "$RD" "{\"ciphertext\":\"$R_BAD\",\"padding\":\"pkcs1\"}"
want 400 "rsa/decrypt of a changed PKCS#1 v1.5 ciphertext"
grep_out '"error":"decrypt_failed"' "a changed ciphertext: decrypt_failed"
cp "$out" "$kos_tmp/fail1.json"
api POST /v1/keys/rsa/rsa/decrypt "$RD" \
	"{\"ciphertext\":\"$R_OAEP256\",\"padding\":\"oaep\",\"hash\":\"sha256\",\"label\":\"eA==\"}"
want 400 "rsa/decrypt OAEP with another label"
check "every failure is the same answer" cmp -s "$out" "$kos_tmp/fail1.json"
grep_out '"message":"decryption failed"' "decryption failed, and nothing else"
# the ledger is written every 100 ms
check "the ledger records the decisions" wait_for 5 sh -c \
	"'$K' --local ledger show 2>/dev/null | grep -q 'rd .*rsa_decrypt .*rsa .*decrypt failed'"
api GET /v1/admin/clients "$ADM"
want 200 "list clients"
grep_out '"client":"svc"' "the list holds svc"
check "the list holds no secret" sh -c "! grep -q '\"secret\"' '$out'"
api GET /v1/admin/clients "$SVC"
want 403 "list clients without admin:clients"
api GET /v1/admin/clients "$OTH_K"
want 403 "list clients with admin:keys only"
grep_out '"error":"out_of_scope"' "list clients with admin:keys only: out_of_scope"
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
api GET /v1/admin/threat "$OTH_K"
want 403 "threat with admin:keys only"
grep_out '"error":"out_of_scope"' "threat with admin:keys only: out_of_scope"
api GET /v1/admin/kms "$ADM"
want 200 "the backend tokens"
grep_out '"health":"ok"' "healthy"
grep_out '"reachable":true' "reachable tokens"
api GET /v1/admin/kms "$USR"
want 403 "kms without admin:kms"
api GET /v1/admin/kms "$OTH_K"
want 403 "kms with admin:keys only"
grep_out '"error":"out_of_scope"' "kms with admin:keys only: out_of_scope"
api POST /v1/admin/credentials "$ADM" '{"client":"user@example","scope":"decrypt:payments"}'
want 200 "issue a credential"
grep_out '"credential":"' "the credential comes back"
api POST /v1/admin/credentials "$ADM" '{"client":"nobody"}'
want 404 "issue for an unknown client"
api POST /v1/admin/credentials "$ADM" '{"scope":"decrypt:payments"}'
want 400 "issue without a client"
api POST /v1/admin/credentials "$USR" '{"client":"user@example"}'
want 403 "issue without admin:credentials"
grep_out '"error":"out_of_scope"' "credential issue: out_of_scope"
api POST /v1/admin/credentials "$OTH_K" '{"client":"user@example"}'
want 403 "issue with admin:keys only"
grep_out '"error":"out_of_scope"' "issue with admin:keys only: out_of_scope"
api GET /v1/admin/revocations "$ADM"
want 200 "the revocations in force"
grep_out '"revocations":\[' "a list"
api GET /v1/admin/revocations "$USR"
want 403 "revocations without admin:credentials"
grep_out '"error":"out_of_scope"' "revocations: out_of_scope"
api GET /v1/admin/revocations "$OTH_K"
want 403 "revocations with admin:keys only"
grep_out '"error":"out_of_scope"' "revocations with admin:keys only: out_of_scope"
api POST /v1/admin/revocations/prune "$ADM" '{}'
want 200 "prune"
grep_out '"removed":' "how many went"
api POST /v1/admin/revocations/prune "$USR" '{}'
want 403 "prune without admin:credentials"
grep_out '"error":"out_of_scope"' "prune: out_of_scope"
api POST /v1/admin/revocations/prune "$OTH_K" '{}'
want 403 "prune with admin:keys only"
grep_out '"error":"out_of_scope"' "prune with admin:keys only: out_of_scope"
api POST /v1/admin/clients/svc/disable "$ADM" '{}'
want 200 "disable a client"
grep_out '"disabled":true' "disabled"
api POST /v1/admin/clients/svc/enable "$ADM" '{}'
want 200 "enable it again"
grep_out '"disabled":false' "enabled"
api POST /v1/admin/clients/nobody/disable "$ADM" '{}'
want 404 "disable an unknown client"
api POST /v1/admin/clients/svc/disable "$USR" '{}'
want 403 "disable without admin:clients"
grep_out '"error":"out_of_scope"' "disable: out_of_scope"
api POST /v1/admin/clients/svc/disable "$OTH_K" '{}'
want 403 "disable with admin:keys only"
grep_out '"error":"out_of_scope"' "disable with admin:keys only: out_of_scope"
api GET /v1/admin/clients/svc "$ADM"
want 200 "show a client"
grep_out '"client":"svc"' "the client"
check "no secret in it" sh -c "! grep -q '\"secret\"' '$out'"
api GET /v1/admin/clients/nobody "$ADM"
want 404 "show an unknown client"
api GET /v1/admin/clients/svc "$USR"
want 403 "show a client without admin:clients"
grep_out '"error":"out_of_scope"' "client show: out_of_scope"
api GET /v1/admin/clients/svc "$OTH_K"
want 403 "show a client with admin:keys only"
grep_out '"error":"out_of_scope"' "show a client with admin:keys only: out_of_scope"
api POST /v1/admin/clients/val/secret "$USR" '{}'
want 403 "a new secret without admin:clients"
grep_out '"error":"out_of_scope"' "client secret: out_of_scope"
api POST /v1/admin/clients/val/secret "$OTH_K" '{}'
want 403 "a new secret with admin:keys only"
grep_out '"error":"out_of_scope"' "a new secret with admin:keys only: out_of_scope"
api POST /v1/admin/clients/nobody/secret "$ADM" '{}'
want 404 "a new secret for an unknown client"
api GET /v1/admin/ca "$ADM"
want 200 "the CA keys"
grep_out '"state":"current"' "a current key"
api GET /v1/admin/ca "$USR"
want 403 "CA keys without admin:ca"
grep_out '"error":"out_of_scope"' "ca list: out_of_scope"
api GET /v1/admin/ca "$OTH_K"
want 403 "CA keys with admin:keys only"
grep_out '"error":"out_of_scope"' "CA keys with admin:keys only: out_of_scope"
api POST /v1/admin/ca/rotate "$USR" '{}'
want 403 "CA rotate without admin:ca"
grep_out '"error":"out_of_scope"' "ca rotate: out_of_scope"
api POST /v1/admin/ca/rotate "$OTH_K" '{}'
want 403 "CA rotate with admin:keys only"
grep_out '"error":"out_of_scope"' "CA rotate with admin:keys only: out_of_scope"
api POST /v1/admin/threat/check "$ADM" '{}'
want 200 "check the threat level"
grep_out '"raised":' "whether it was raised"
api POST /v1/admin/threat/check "$USR" '{}'
want 403 "threat check without admin:threat"
grep_out '"error":"out_of_scope"' "threat check: out_of_scope"
api POST /v1/admin/threat/check "$OTH_K" '{}'
want 403 "threat check with admin:keys only"
grep_out '"error":"out_of_scope"' "threat check with admin:keys only: out_of_scope"
api GET /v1/admin/services "$ADM"
want 200 "list the services"
grep_out '"name":"billing"' "billing is listed"
api GET /v1/admin/services "$USR"
want 403 "services without admin:services"
grep_out '"error":"out_of_scope"' "service list: out_of_scope"
api GET /v1/admin/services "$OTH_K"
want 403 "services with admin:keys only"
grep_out '"error":"out_of_scope"' "services with admin:keys only: out_of_scope"
api GET /v1/admin/services/billing "$ADM"
want 200 "show a service"
grep_out '"ops":\["charge","refund"\]' "its operations"
api GET /v1/admin/services/nosuch "$ADM"
want 404 "show an unknown service"
api GET /v1/admin/services/billing "$USR"
want 403 "show without admin:services"
api GET /v1/admin/services/billing "$OTH_K"
want 403 "show with admin:keys only"
grep_out '"error":"out_of_scope"' "show with admin:keys only: out_of_scope"
api POST /v1/admin/services/billing/ops "$ADM" '{"ops":"bad op"}'
want 400 "a bad operation list"
api POST /v1/admin/services/billing/ops "$USR" '{"ops":"charge"}'
want 403 "ops without admin:services"
grep_out '"error":"out_of_scope"' "service ops: out_of_scope"
api POST /v1/admin/services/billing/ops "$OTH_K" '{"ops":"charge"}'
want 403 "ops with admin:keys only"
grep_out '"error":"out_of_scope"' "ops with admin:keys only: out_of_scope"
api POST /v1/admin/services/billing/remove "$USR" '{}'
want 403 "remove without admin:services"
grep_out '"error":"out_of_scope"' "service remove: out_of_scope"
api POST /v1/admin/services/billing/remove "$OTH_K" '{}'
want 403 "remove with admin:keys only"
grep_out '"error":"out_of_scope"' "remove with admin:keys only: out_of_scope"
api POST /v1/admin/services/nosuch/remove "$ADM" '{}'
want 404 "remove an unknown service"

# --- kosctl through kosd: the same JSON as on the store ---
# a trust read through kosd writes its queued observations first, so the
# store read locally below holds them too
run ks admin trust show user@example
for cmd in "trust show user@example" "trust list" "key show payments" "client list" \
	"threat show" "kms list" "ca jwks" "credential revocations" "ca list" "service list" "service show billing" "client show svc"; do
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
# its refusals above (out of scope on 23 routes, twice before that on the
# service routes) are its observations, as is its one success
grep_out "^observations: *26" "kosd's observations are counted"
expect 0 "trust observe through kosd" ks admin trust observe user@example reputation 80
grep_out "^user@example: score [0-9.]*, tier " "the new score and tier"
expect 0 "trust observe usage through kosd" ks admin --json trust observe user@example usage 5 4096
grep_out '"observations": 28' "the observation is recorded"
expect 2 "a bad event is refused before kosd" ks admin trust observe user@example bogus
expect 1 "trust show of an unknown client" ks admin trust show nobody
grep_err "(not_found)" "not_found is named"
expect 1 "trust list without admin:trust" ks user trust list
grep_err "(out_of_scope)" "out_of_scope is named"
expect 1 "trust list with admin:keys only" ks adk trust list
grep_err "(out_of_scope)" "trust list with admin:keys only: out_of_scope"
expect 0 "trust list --at stays on the store" ks user trust list --at +1d
grep_out "^user@example " "the store's list"
expect 0 "key show through kosd, as text" ks admin key show payments
grep_out "^current: 1" "the current version"
grep_out "^  set " "the share set"
expect 1 "key show without admin:keys" ks user key show payments
expect 1 "key show with admin:clients only" ks adcl key show payments
grep_err "(out_of_scope)" "key show with admin:clients only: out_of_scope"
expect 0 "client list through kosd, as text" ks admin client list
grep_out "^CLIENT" "the heading"
grep_out "^user@example " "the client"
expect 1 "client list without admin:clients" ks user client list
expect 1 "client list with admin:keys only" ks adk client list
grep_err "(out_of_scope)" "client list with admin:keys only: out_of_scope"
expect 0 "threat show through kosd" ks admin threat show
grep_out "^level: *normal" "the level"
expect 1 "threat show without admin:threat" ks svc threat show
expect 1 "threat show with admin:keys only" ks adk threat show
grep_err "(out_of_scope)" "threat show with admin:keys only: out_of_scope"
expect 0 "kms list through kosd" ks admin kms list
grep_out "^NAME " "the heading"
expect 1 "kms list without admin:kms" ks user kms list
grep_err "(out_of_scope)" "kms: out_of_scope"
expect 1 "kms list with admin:keys only" ks adk kms list
grep_err "(out_of_scope)" "kms list with admin:keys only: out_of_scope"
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
expect 1 "service register with admin:keys only" ks adk service register m2 --ops send
grep_err "(out_of_scope)" "service register with admin:keys only: out_of_scope"
expect 0 "service rotate through kosd" ks admin service rotate billing --breach
grep_out "seed version 4" "the seed version"
expect 1 "the old token is refused" ks val service validate - < "$kos_tmp/svc.tok"

expect 0 "credential issue through kosd" ks admin credential issue user@example --scope decrypt:payments
expect 0 "the store verifies it" "$K" --local credential verify "$(cat "$out")"
grep_out "decrypt:payments" "with the scope asked for"
expect 1 "credential issue without admin:credentials" ks user credential issue user@example
grep_err "(out_of_scope)" "credential issue: out_of_scope"
expect 1 "credential issue with admin:keys only" ks adk credential issue user@example
grep_err "(out_of_scope)" "credential issue with admin:keys only: out_of_scope"
expect 0 "credential revocations through kosd" ks admin credential revocations
grep_out "^KIND " "the heading"
expect 1 "credential revocations without admin:credentials" ks user credential revocations
grep_err "(out_of_scope)" "revocations: out_of_scope"
expect 1 "credential revocations with admin:keys only" ks adk credential revocations
grep_err "(out_of_scope)" "credential revocations with admin:keys only: out_of_scope"
expect 0 "credential prune through kosd" ks admin credential prune
grep_out "^removed " "how many went"
expect 1 "credential prune without admin:credentials" ks user credential prune
grep_err "(out_of_scope)" "prune: out_of_scope"
expect 1 "credential prune with admin:keys only" ks adk credential prune
grep_err "(out_of_scope)" "credential prune with admin:keys only: out_of_scope"
expect 0 "client show through kosd, as text" ks admin client show svc
grep_out "^state: *enabled" "the state"
expect 1 "client show without admin:clients" ks user client show svc
grep_err "(out_of_scope)" "client show: out_of_scope"
expect 1 "client show with admin:keys only" ks adk client show svc
grep_err "(out_of_scope)" "client show with admin:keys only: out_of_scope"
expect 0 "client secret through kosd" ks admin client secret pk
cp "$out" "$kos_tmp/pk.secret"
expect 0 "the new secret enrolls" ks pk credential enroll - < "$kos_tmp/pk.secret"
expect 1 "client secret without admin:clients" ks user client secret pk
grep_err "(out_of_scope)" "client secret: out_of_scope"
expect 1 "client secret with admin:keys only" ks adk client secret pk
grep_err "(out_of_scope)" "client secret with admin:keys only: out_of_scope"
expect 0 "client disable through kosd" ks admin client disable svc
expect 0 "the store has it disabled" "$K" --local --json client show svc
grep_out '"disabled": true' "disabled on the store"
expect 0 "client enable through kosd" ks admin client enable svc
expect 0 "the store has it enabled" "$K" --local --json client show svc
grep_out '"disabled": false' "enabled on the store"
expect 1 "client disable without admin:clients" ks user client disable svc
grep_err "(out_of_scope)" "client disable: out_of_scope"
expect 1 "client disable with admin:keys only" ks adk client disable svc
grep_err "(out_of_scope)" "client disable with admin:keys only: out_of_scope"
expect 0 "ca rotate through kosd" ks admin ca rotate
kid=$(cat "$out")
expect 0 "ca list through kosd" ks admin ca list
grep_out "^$kid  current " "the new key is current"
grep_out " retired " "the old one is retired"
expect 0 "the store's list agrees" "$K" --local ca list
grep_out "^$kid  current " "the store's current key"
expect 0 "credentials signed before still work" ks admin key show payments
api GET /v1/ca/jwks
grep_out "\"$kid\"" "kosd's JWKS holds the new key"
expect 1 "ca rotate without admin:ca" ks user ca rotate
grep_err "(out_of_scope)" "ca rotate: out_of_scope"
expect 1 "ca rotate with admin:keys only" ks adk ca rotate
grep_err "(out_of_scope)" "ca rotate with admin:keys only: out_of_scope"
expect 1 "ca list without admin:ca" ks user ca list
grep_err "(out_of_scope)" "ca list: out_of_scope"
expect 1 "ca list with admin:keys only" ks adk ca list
grep_err "(out_of_scope)" "ca list with admin:keys only: out_of_scope"
expect 0 "threat check through kosd" ks admin threat check
grep_out "^level: *normal" "the level"
expect 1 "threat check without admin:threat" ks user threat check
grep_err "(out_of_scope)" "threat check: out_of_scope"
expect 1 "threat check with admin:keys only" ks adk threat check
grep_err "(out_of_scope)" "threat check with admin:keys only: out_of_scope"
expect 0 "key rotate --due through kosd" ks admin key rotate --due
grep_out "^nothing is due" "nothing is due"
expect 1 "key rotate --due without admin:keys" ks user key rotate --due
grep_err "(out_of_scope)" "rotate --due: out_of_scope"
expect 1 "key rotate --due with admin:clients only" ks adcl key rotate --due
grep_err "(out_of_scope)" "key rotate --due with admin:clients only: out_of_scope"
expect 0 "key pubkey --version through kosd" ks pk key pubkey sig --version 1
check "the store's old public key" cmp -s "$out" "$kos_tmp/pk1.local"
expect 1 "key pubkey --version without pubkey:sig" ks user key pubkey sig --version 1
grep_err "(out_of_scope)" "pubkey --version: out_of_scope"
expect 1 "trust forget without admin:trust" ks user trust forget user@example
grep_err "(out_of_scope)" "trust forget: out_of_scope"
expect 1 "trust forget with admin:keys only" ks adk trust forget user@example
grep_err "(out_of_scope)" "trust forget with admin:keys only: out_of_scope"
expect 0 "trust forget through kosd" ks admin trust forget user@example
expect 1 "the store has forgotten it" "$K" --local trust show user@example
expect 1 "trust forget of an unknown client" ks admin trust forget nobody
grep_err "(not_found)" "not_found is named"

expect 0 "service list through kosd, as text" ks admin service list
grep_out "^billing " "billing is listed"
expect 1 "service list without admin:services" ks user service list
grep_err "(out_of_scope)" "service list: out_of_scope"
expect 1 "service list with admin:keys only" ks adk service list
grep_err "(out_of_scope)" "service list with admin:keys only: out_of_scope"
expect 0 "service ops through kosd" ks admin service ops mail --ops send,bounce
expect 0 "service show through kosd, as text" ks admin service show mail
grep_out "^operations: *send,bounce" "the new operations"
expect 1 "service ops without admin:services" ks svc service ops mail --ops send
grep_err "(out_of_scope)" "service ops: out_of_scope"
expect 1 "service ops with admin:keys only" ks adk service ops mail --ops send
grep_err "(out_of_scope)" "service ops with admin:keys only: out_of_scope"
expect 1 "service show without admin:services" ks svc service show mail
expect 1 "service show with admin:keys only" ks adk service show mail
grep_err "(out_of_scope)" "service show with admin:keys only: out_of_scope"
expect 1 "service remove without admin:services" ks svc service remove mail
grep_err "(out_of_scope)" "service remove: out_of_scope"
expect 1 "service remove with admin:keys only" ks adk service remove mail
grep_err "(out_of_scope)" "service remove with admin:keys only: out_of_scope"
expect 0 "service remove through kosd" ks admin service remove mail
expect 1 "the store has forgotten it" "$K" --local service show mail
expect 1 "service show of a removed service" ks admin service show mail
grep_err "(not_found)" "not_found is named"

# --- AES-256-GCM with the caller's IV, AAD and tag length (CKM_AES_GCM) ---
# IV 00..0b, AAD "header", plaintext "hello gcm"
G_IV=AAECAwQFBgcICQoL G_AAD=aGVhZGVy G_PT=aGVsbG8gZ2Nt
api POST /v1/keys/payments/gcm/encrypt "$ADM" \
	"{\"iv\":\"$G_IV\",\"aad\":\"$G_AAD\",\"tag_len\":16,\"plaintext\":\"$G_PT\"}"
want 200 "gcm/encrypt with encrypt:payments"
grep_out '"version":1' "gcm/encrypt names the version"
g_ct=$(field ciphertext)
check "the ciphertext carries the 16-byte tag" \
	test "$(printf %s "$g_ct" | base64 -d | wc -c)" -eq 25
api POST /v1/keys/payments/gcm/decrypt "$USR" \
	"{\"iv\":\"$G_IV\",\"aad\":\"$G_AAD\",\"tag_len\":16,\"ciphertext\":\"$g_ct\",\"version\":1}"
want 200 "gcm/decrypt with decrypt:payments"
check "gcm/decrypt gives the plaintext back" test "$(field plaintext)" = "$G_PT"
api POST /v1/keys/payments/gcm/encrypt "$ADM" \
	"{\"iv\":\"$G_IV\",\"aad\":\"$G_AAD\",\"tag_len\":12,\"plaintext\":\"$G_PT\"}"
want 200 "gcm/encrypt with a 12-byte tag"
check "the 12-byte tag is the 16-byte tag's start" \
	test "$(field ciphertext | base64 -d | od -An -tx1 | tr -d ' \n')" = \
	"$(printf %s "$g_ct" | base64 -d | head -c 21 | od -An -tx1 | tr -d ' \n')"
api POST /v1/keys/payments/gcm/encrypt "$USR" \
	"{\"iv\":\"$G_IV\",\"plaintext\":\"$G_PT\"}"
want 403 "gcm/encrypt with decrypt:payments only"
grep_out '"error":"out_of_scope"' "gcm/encrypt: out_of_scope"
api POST /v1/keys/payments/gcm/decrypt "$USR" \
	"{\"iv\":\"$G_IV\",\"aad\":\"$G_AAD\",\"ciphertext\":\"$g_ct\"}"
want 400 "gcm/decrypt without the version"
grep_out '"version\\" is required' "the version is named as missing"
api POST /v1/keys/payments/gcm/encrypt "$ADM" \
	"{\"iv\":\"AAECAwQFBgcICQoLDA0ODw==\",\"plaintext\":\"$G_PT\"}"
want 400 "gcm/encrypt with a 16-byte IV"
grep_out 'IV must be 12 bytes' "the IV length is named"
api POST /v1/keys/payments/gcm/encrypt "$ADM" \
	"{\"iv\":\"$G_IV\",\"tag_len\":8,\"plaintext\":\"$G_PT\"}"
want 400 "gcm/encrypt with an 8-byte tag"
grep_out 'tag length must be 12 to 16 bytes' "the tag length is named"
api POST /v1/keys/payments/gcm/encrypt "$ADM" \
	"{\"iv\":\"$G_IV\",\"plaintext\":\"$G_PT\",\"version\":2}"
want 400 "gcm/encrypt naming a version that is not current"
api POST /v1/keys/sig/gcm/encrypt "$ADM" "{\"iv\":\"$G_IV\",\"plaintext\":\"$G_PT\"}"
want 400 "gcm/encrypt with a signing key"
api POST /v1/keys/nokey/gcm/encrypt "$ADM" "{\"iv\":\"$G_IV\",\"plaintext\":\"$G_PT\"}"
want 404 "gcm/encrypt with no such key"
api GET /v1/keys/payments/gcm/encrypt "$ADM"
want 405 "GET gcm/encrypt"
# kosctl --server: the same bytes as the route; a wrong AAD writes nothing
printf 'hello gcm' > "$kos_tmp/g.pt"
expect 0 "key gcm-encrypt through kosd" ks admin key gcm-encrypt payments \
	--iv 000102030405060708090a0b --aad 686561646572 < "$kos_tmp/g.pt"
check "it wrote what the route did" \
	sh -c "printf %s '$g_ct' | base64 -d | cmp -s - '$out'"
grep_err "version 1" "gcm-encrypt names the version"
cp "$out" "$kos_tmp/g.ct"
expect 0 "key gcm-decrypt through kosd" ks user key gcm-decrypt payments --version 1 \
	--iv 000102030405060708090a0b --aad 686561646572 < "$kos_tmp/g.ct"
check "it gives the plaintext back" cmp -s "$out" "$kos_tmp/g.pt"
expect 1 "key gcm-decrypt with a wrong AAD" ks user key gcm-decrypt payments --version 1 \
	--iv 000102030405060708090a0b --aad 686561646573 < "$kos_tmp/g.ct"
grep_err "does not verify" "a wrong AAD: the tag does not verify"
check "a wrong AAD writes nothing" test ! -s "$out"
# last: a tampered ciphertext is the caller's integrity failure
g_bad=$(printf %s "$g_ct" | base64 -d | head -c 24 | base64)
api POST /v1/keys/payments/gcm/decrypt "$ADM" \
	"{\"iv\":\"$G_IV\",\"aad\":\"$G_AAD\",\"tag_len\":16,\"ciphertext\":\"$g_bad\",\"version\":1}"
want 422 "gcm/decrypt with a cut tag"
grep_out '"error":"integrity"' "a cut tag: integrity"
check "a cut tag gives no plaintext" sh -c "! grep -q plaintext '$out'"

# --- certificates beside signing keys ---
expect 0 "client add cer" ks admin client add cer --scope "certify:sig"
cp "$out" "$kos_tmp/cer.secret"
run ks cer credential enroll - < "$kos_tmp/cer.secret"
setup "enroll cer" test "$status" -eq 0
CER=$(cat "$kos_tmp/cer.cred")
expect 0 "the signing key's public key" ks pk key pubkey sig
cp "$out" "$kos_tmp/sig.pub"
setup "a CA key" openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$kos_tmp/ca.key"
setup "a certificate for sig" openssl x509 -new -subj /CN=sig -key "$kos_tmp/ca.key" \
	-force_pubkey "$kos_tmp/sig.pub" -days 2 -out "$kos_tmp/sig.pem"
setup "its DER" openssl x509 -in "$kos_tmp/sig.pem" -outform DER -out "$kos_tmp/sig.der"
setup "a certificate of another key" openssl req -new -x509 -key "$kos_tmp/ca.key" \
	-subj /CN=other -days 2 -outform DER -out "$kos_tmp/other.der"
C_SIG=$(base64 -w0 < "$kos_tmp/sig.der")
C_OTHER=$(base64 -w0 < "$kos_tmp/other.der")
api GET /v1/keys/sig/certificate "$PK"
want 404 "GET certificate before one is stored"
grep_out '"error":"not_found"' "no certificate: not_found"
api POST /v1/keys/sig/certificate "$PK" "{\"der\":\"$C_SIG\"}"
want 403 "POST certificate with pubkey:sig only"
grep_out 'certify:sig' "the refusal names certify:sig"
api POST /v1/keys/sig/certificate "$CER" "{\"der\":\"$C_OTHER\"}"
want 400 "POST a certificate of another key"
grep_out "public key is not that of key sig" "the mismatch is named"
api POST /v1/keys/sig/certificate "$CER" '{"der":"MAMCAQE="}'
want 400 "POST something that is not a certificate"
grep_out "not an X.509 certificate" "the bad DER is named"
api POST /v1/keys/sig/certificate "$CER" '{"der":"!!"}'
want 400 "POST a certificate that is not base64"
api POST /v1/keys/sig/certificate "$CER" "{\"der\":\"$C_SIG\"}"
want 200 "POST certificate with certify:sig"
grep_out '"version":2' "stored with the current version"
api GET /v1/keys/sig/certificate "$PK"
want 200 "GET certificate with pubkey:sig"
check "the certificate comes back as stored" test "$(field der)" = "$C_SIG"
grep_out 'BEGIN CERTIFICATE' "and as PEM"
api GET /v1/keys/sig/certificate "$CER"
want 200 "GET certificate with certify:sig"
api GET "/v1/keys/sig/certificate?version=1" "$PK"
want 404 "GET certificate of a version without one"
api GET /v1/keys/sig/certificate "$USR"
want 403 "GET certificate with a scope that does not reach the key"
grep_out '"error":"out_of_scope"' "GET certificate: out_of_scope"
api POST /v1/keys/payments/certificate "$ADM" "{\"der\":\"$C_SIG\"}"
want 400 "POST certificate for a data key"
api POST /v1/keys/nokey/certificate "$ADM" "{\"der\":\"$C_SIG\"}"
want 404 "POST certificate for no such key"
# kosctl --server: PEM in, DER and PEM out
expect 0 "key cert set through kosd (PEM)" ks cer key cert set sig "$kos_tmp/sig.pem"
expect 0 "key cert show through kosd" ks pk key cert show sig
check "key cert show writes the DER" cmp -s "$out" "$kos_tmp/sig.der"
expect 0 "key cert show --pem through kosd" ks pk key cert show sig --pem
check "key cert show --pem writes the PEM" cmp -s "$out" "$kos_tmp/sig.pem"
expect 1 "key cert set without certify:sig" ks pk key cert set sig "$kos_tmp/sig.der"
grep_err "(out_of_scope)" "key cert set: out_of_scope"
expect 1 "key cert set of another key's certificate" ks cer key cert set sig "$kos_tmp/other.der"
grep_err "public key is not" "key cert set: the mismatch is named"
expect 1 "key cert show of a version without one" ks pk key cert show sig --version 1
grep_err "(not_found)" "key cert show: not_found"
# the store keeps it across a restart
kill -TERM "$kpid"
wait "$kpid" || true
check "kosd starts again" start_kosd
api GET /v1/keys/sig/certificate "$PK"
want 200 "GET certificate after a restart"
check "the certificate survived the restart" test "$(field der)" = "$C_SIG"

kill -TERM "$kpid"
wait "$kpid" || true
kpid=""
finish kosd-routes
