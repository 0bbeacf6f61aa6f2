#!/bin/sh
# kosctl through a real kosd (--server, KOS_SERVER, kos.conf's server) on a
# development installation: every command that moved to kosd (key create,
# list, rotate, retire, encrypt, decrypt by tier, sign, pubkey; client add;
# credential enroll, refresh, revoke; threat set; policy reload), their
# refusals (revoked, out of scope, trust too low, forged, a used secret),
# what cannot go through kosd, the credential file and the environment, and
# --local. Trust is moved by kosctl on the store, as kosd.sh does.
. "${srcdir:-.}/tests/lib.sh"
set -e

kosd_env

# --- an installation; trust = the integrity factor alone, starting at 90 ---
sed -e 's/prior = 60.0;/prior = 90.0;/' \
	-e 's/^    latency = 1.0;/    latency = 0.0;/' -e 's/^    usage = 1.0;/    usage = 0.0;/' \
	-e 's/^    anomaly = 2.0;/    anomaly = 0.0;/' -e 's/^    reputation = 1.0;/    reputation = 0.0;/' \
	-e 's/recovery = 1.0; };/recovery = 0.0; };/' "$P/default.policy" > "$kos_tmp/test.policy"
setup "init" "$K" init --dir "$d" --policy "$kos_tmp/test.policy"
export KOS_CONF="$d/kos.conf"
setup "ca init" "$K" ca init
setup "the first admin is added on the store" "$K" client add admin --scope "*:*"
cp "$out" "$kos_tmp/admin.secret"

# --- without kosd ---
expect 2 "--local with --server" "$K" --local --server "unix:$S" key list
expect 2 "policy reload needs a server" "$K" policy reload
grep_err "asks a running kosd" "policy reload says why"

check "kosd starts" start_kosd

# --- enrollment through kosd ---
run ks admin credential enroll - < "$kos_tmp/admin.secret"
check "enroll the admin through kosd" test "$status" -eq 0
grep_err "the credential is in" "enroll says where the credential went"
check "the credential file is 0600" sh -c "stat -c %a '$kos_tmp/admin.cred' | grep -qx 600"
run ks admin2 credential enroll - < "$kos_tmp/admin.secret"
check "a used secret is refused" test "$status" -eq 1
grep_err "(invalid_secret)" "kosd's reason is shown"
run "$K" --server "unix:$S" credential enroll - < "$kos_tmp/admin.secret"
check "enroll through kosd wants a credential file" test "$status" -eq 2

expect 1 "an unreachable server" "$K" --server "unix:$kos_tmp/none.sock" \
	--credential-file "$kos_tmp/admin.cred" key list
grep_err "cannot reach kosd" "the failure is explained"
expect 1 "a missing credential file" ks nobody key list
grep_err "nobody.cred" "the file is named"

# --- admin routes ---
expect 0 "key create through kosd" ks admin key create payments
grep_out "created payments (dek), version 1" "create prints the key"
expect 0 "a signing key through kosd" ks admin key create sig --type ec-p256
expect 1 "the same key again" ks admin key create payments
grep_err "(conflict)" "conflict is named"
for c in hi med low den; do
	expect 0 "client add $c through kosd" ks admin client add "$c" \
		--scope "encrypt:payments decrypt:payments sign:sig"
	cp "$out" "$kos_tmp/$c.secret"
	run ks "$c" credential enroll - < "$kos_tmp/$c.secret"
	setup "enroll $c" test "$status" -eq 0
done
expect 0 "client add narrow" ks admin client add narrow --scope "decrypt:other"
cp "$out" "$kos_tmp/narrow.secret"
run ks narrow credential enroll - < "$kos_tmp/narrow.secret"
setup "enroll narrow" test "$status" -eq 0
expect 0 "client add with --json" ks admin --json client add j --scope "decrypt:x"
grep_out '"secret"' "the secret is in the JSON"
expect 1 "a client cannot create keys" ks hi key create other
grep_err "(out_of_scope)" "out of scope is named"
expect 1 "a client cannot add clients" ks hi client add x --scope "decrypt:x"

# --- data plane ---
printf 'attack at dawn' > "$kos_tmp/plain"
run ks hi key encrypt payments --context c1 < "$kos_tmp/plain"
check "encrypt through kosd" test "$status" -eq 0
cp "$out" "$kos_tmp/env1"
expect 0 "the envelope opens locally too" sh -c "'$K' --local key decrypt --context c1 < '$kos_tmp/env1' | grep -qx 'attack at dawn'"
run ks narrow key encrypt payments < "$kos_tmp/plain"
check "encrypt out of scope is refused" test "$status" -eq 1
grep_err "(out_of_scope)" "encrypt: out of scope"
run ks narrow key decrypt --context c1 < "$kos_tmp/env1"
check "decrypt out of scope is refused" test "$status" -eq 1
grep_err "(out_of_scope)" "decrypt: out of scope"
run ks hi key decrypt --context c2 < "$kos_tmp/env1"
check "a wrong context fails" test "$status" -eq 1
check "and writes nothing" test ! -s "$out"

expect 0 "key list through kosd" ks hi key list
grep_out "^payments " "the list holds payments"
grep_out "^sig " "the list holds sig"
expect 0 "key list --json through kosd" ks hi --json key list
grep_out '"name": "payments"' "JSON names payments"
expect 0 "narrow's list" ks narrow key list
check "narrow sees neither key" sh -c "! grep -q -e '^payments ' -e '^sig ' '$out'"

printf 'release 1' > "$kos_tmp/rel"
run ks hi key sign sig --alg ecdsa-der < "$kos_tmp/rel"
check "sign through kosd" test "$status" -eq 0
cp "$out" "$kos_tmp/rel.sig"
expect 0 "pubkey through kosd" ks hi key pubkey sig
cp "$out" "$kos_tmp/sig.pem"
grep_out "BEGIN PUBLIC KEY" "the public key is PEM"
expect 0 "openssl verifies kosd's signature" openssl dgst -sha256 -verify "$kos_tmp/sig.pem" \
	-signature "$kos_tmp/rel.sig" "$kos_tmp/rel"

# --- digests and hashes through kosd, checked by the openssl CLI ---
expect 0 "an RSA key through kosd" ks admin key create rsig --type rsa-2048
expect 0 "an Ed25519 key through kosd" ks admin key create esig --type ed25519
expect 0 "the RSA public key" ks admin key pubkey rsig
cp "$out" "$kos_tmp/rsig.pem"
for h in sha256 sha384 sha512; do
	openssl dgst "-$h" -binary "$kos_tmp/rel" > "$kos_tmp/rel.$h"
	run ks hi key sign sig --digest --hash "$h" --alg ecdsa-der < "$kos_tmp/rel.$h"
	check "sign a $h digest with P-256" test "$status" -eq 0
	cp "$out" "$kos_tmp/d.sig"
	expect 0 "openssl verifies the P-256 signature of the $h digest" openssl pkeyutl -verify \
		-pubin -inkey "$kos_tmp/sig.pem" -in "$kos_tmp/rel.$h" -sigfile "$kos_tmp/d.sig"
	run ks admin key sign rsig --digest --hash "$h" < "$kos_tmp/rel.$h"
	cp "$out" "$kos_tmp/d.sig"
	expect 0 "openssl verifies the PKCS#1 v1.5 signature of the $h digest" openssl pkeyutl \
		-verify -pubin -inkey "$kos_tmp/rsig.pem" -in "$kos_tmp/rel.$h" \
		-sigfile "$kos_tmp/d.sig" -pkeyopt "digest:$h"
	for salt in 32 64; do
		run ks admin key sign rsig --alg rsa-pss --digest --hash "$h" --salt-len "$salt" \
			< "$kos_tmp/rel.$h"
		cp "$out" "$kos_tmp/d.sig"
		expect 0 "openssl verifies the PSS signature of the $h digest, salt $salt" \
			openssl pkeyutl -verify -pubin -inkey "$kos_tmp/rsig.pem" \
			-in "$kos_tmp/rel.$h" -sigfile "$kos_tmp/d.sig" -pkeyopt "digest:$h" \
			-pkeyopt rsa_padding_mode:pss -pkeyopt "rsa_pss_saltlen:$salt" \
			-pkeyopt "rsa_mgf1_md:$h"
	done
	run ks admin key sign rsig --alg rsa-pss --hash "$h" < "$kos_tmp/rel"
	cp "$out" "$kos_tmp/d.sig"
	expect 0 "openssl verifies PSS over the data by $h (salt: the hash's length)" \
		openssl dgst "-$h" -verify "$kos_tmp/rsig.pem" -sigopt rsa_padding_mode:pss \
		-sigopt rsa_pss_saltlen:digest -signature "$kos_tmp/d.sig" "$kos_tmp/rel"
done
run ks hi key sign sig --digest --hash sha512 < "$kos_tmp/rel.sha384"
check "a digest of the wrong length is refused" test "$status" -eq 1
grep_err "a sha512 digest is 64 bytes" "the lengths are named"
expect 2 "an unknown hash" ks hi key sign sig --digest --hash md5
run ks admin key sign esig --digest < "$kos_tmp/rel.sha256"
check "Ed25519 refuses a digest" test "$status" -eq 1
grep_err "signs the message itself, not a digest" "Ed25519: the reason is named"
run ks narrow key sign sig --digest < "$kos_tmp/rel.sha256"
check "a digest out of scope is refused" test "$status" -eq 1
grep_err "(out_of_scope)" "digest: out of scope"
api POST /v1/keys/sig/sign "$(cat "$kos_tmp/hi.cred")" '{"digest":"AAAA","hash":"sha256"}'
want 400 "kosd refuses a digest of the wrong length"
api POST /v1/keys/sig/sign "$(cat "$kos_tmp/hi.cred")" '{"digest":"AAAA","hash":"sha1"}'
want 400 "kosd refuses an unknown hash"

# --- key listings filtered by kosd ---
expect 0 "key list --name through kosd" ks admin key list --name rsig
check "only rsig is listed" test "$(grep -c -v '^NAME ' "$out")" -eq 1 -a \
	"$(sed -n '2s/ .*//p' "$out")" = rsig
expect 0 "key list --type through kosd" ks admin key list --type ec-p256
check "only EC keys are listed" sh -c "! grep -v -e '^NAME ' -e ' ec-p256 ' '$out'"
grep_out "^sig " "sig is of them"
expect 0 "key list --name of no key" ks admin key list --name nosuch
check "lists nothing" test "$(grep -c -v '^NAME ' "$out")" -eq 0
expect 0 "key list --name out of scope" ks narrow key list --name sig
check "a key out of scope is not listed" test "$(grep -c -v '^NAME ' "$out")" -eq 0
expect 2 "key list --type of no type" ks admin key list --type aes
api GET "/v1/keys?type=aes" "$(cat "$kos_tmp/hi.cred")"
want 400 "kosd refuses an unknown type"
api GET "/v1/keys?name=sig&type=ec-p256" "$(cat "$kos_tmp/hi.cred")"
want 200 "kosd lists by name and type"
grep_out '"keys":\[{"name":"sig"' "the answer is sig's"
expect 0 "pubkey --version through kosd" ks hi key pubkey sig --version 1
check "the current version's public key" cmp -s "$out" "$kos_tmp/sig.pem"
expect 2 "pubkey --version 0" ks hi key pubkey sig --version 0
expect 0 "key rotate --due through kosd" ks admin key rotate --due
grep_out "^nothing is due" "nothing is due"
expect 0 "key show through kosd" ks admin key show payments
grep_out "^current: 1" "key show shows the current version"

# --- tiers: each client decrypts the same envelope by its own path ---
run "$K" trust observe med integrity
run "$K" trust observe low integrity
run "$K" trust observe low integrity
for i in 1 2 3 4; do run "$K" trust observe den integrity; done
for pair in hi:dek med:shares low:server; do
	c=${pair%%:*}
	run ks "$c" --verbose key decrypt --context c1 < "$kos_tmp/env1"
	check "$c decrypts through kosd" test "$status" -eq 0
	check "$c gets the plaintext" grep -qx 'attack at dawn' "$out"
	grep_err "path: ${pair#*:} " "$c takes the ${pair#*:} path"
done
run ks low key decrypt --context c1 < "$kos_tmp/env1"
check "without --verbose no note" sh -c "! grep -q 'path:' '$err'"
run ks den --verbose key decrypt --context c1 < "$kos_tmp/env1"
check "deny is refused" test "$status" -eq 1
grep_err "(trust_too_low)" "the reason is trust too low"
check "and no plaintext" test ! -s "$out"
run ks den key encrypt payments < "$kos_tmp/plain"
check "deny cannot encrypt" test "$status" -eq 1
run ks den key sign sig --digest --hash sha384 < "$kos_tmp/rel.sha384"
check "deny cannot sign a digest" test "$status" -eq 1
grep_err "(trust_too_low)" "digest: the reason is trust too low"
run ks low key sign sig --digest --hash sha384 --alg ecdsa-der < "$kos_tmp/rel.sha384"
check "low signs a digest inside the HSM" test "$status" -eq 0
cp "$out" "$kos_tmp/d.sig"
expect 0 "openssl verifies low's signature" openssl pkeyutl -verify -pubin \
	-inkey "$kos_tmp/sig.pem" -in "$kos_tmp/rel.sha384" -sigfile "$kos_tmp/d.sig"

# --- lifecycle through kosd ---
expect 0 "key rotate through kosd" ks admin key rotate payments
grep_out "rotated payments: version 2" "rotate prints the version"
run ks hi key encrypt payments --context c1 < "$kos_tmp/plain"
cp "$out" "$kos_tmp/env2"
expect 0 "version 1 still decrypts" ks hi key decrypt --context c1 < "$kos_tmp/env1"
expect 0 "key retire through kosd" ks admin key retire payments --version 1
grep_out "retired payments version 1" "retire prints the version"
run ks low key decrypt --context c1 < "$kos_tmp/env1"
check "a retired version no longer decrypts" test "$status" -eq 1
grep_err "(not_found).*version 1 is retired" "the reason: the version is retired"
check "and no plaintext" test ! -s "$out"
api POST /v1/keys/payments/request "$(cat "$kos_tmp/low.cred")" '{"version":1}'
want 404 "a low key request for the retired version is refused"
grep_out '"error":"not_found".*version 1 is retired' "the refusal says the version is retired"
run ks low key decrypt --context c1 < "$kos_tmp/env2"
check "version 2 decrypts" test "$status" -eq 0
expect 1 "retire the current version" ks admin key retire payments --version 2

# --- destroying a key and removing a certificate through kosd ---
expect 0 "a key to destroy through kosd" ks admin key create doomed
run ks admin key encrypt doomed --context c1 < "$kos_tmp/plain"
cp "$out" "$kos_tmp/doomed.env"
expect 2 "key destroy without --yes" ks admin key destroy doomed
grep_err "cannot be undone" "without --yes it says why"
expect 0 "the key is still there" ks admin key show doomed
expect 1 "a client without admin:keys cannot destroy" ks hi key destroy doomed --yes
grep_err "out_of_scope" "the refusal says out of scope"
expect 0 "the key is still there after the refusal" ks admin key show doomed
expect 1 "key destroy of no such key through kosd" ks admin key destroy nosuch --yes
grep_err "not_found" "an unknown key is not_found"
expect 0 "key destroy through kosd" ks admin key destroy doomed --yes
grep_out "destroyed doomed" "destroy prints the name"
expect 1 "key show after the destruction" ks admin key show doomed
expect 1 "the old envelope no longer decrypts" ks admin key decrypt --context c1 < "$kos_tmp/doomed.env"
expect 0 "fsck: nothing of it is left on the tokens" "$K" fsck
grep_out "fsck: clean" "fsck is clean"
expect 0 "a signing key for a certificate" ks admin key create certsig --type ec-p256
run ks admin key pubkey certsig
cp "$out" "$kos_tmp/certsig.pub"
setup "a CA key" openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
	-out "$kos_tmp/dca.key"
setup "a certificate for certsig" openssl x509 -new -subj /CN=certsig -key "$kos_tmp/dca.key" \
	-force_pubkey "$kos_tmp/certsig.pub" -days 2 -out "$kos_tmp/certsig.pem"
expect 0 "key cert set through kosd" ks admin key cert set certsig "$kos_tmp/certsig.pem"
expect 1 "a client without certify:certsig cannot remove it" ks hi key cert remove certsig
expect 0 "the certificate is still there" ks admin key cert show certsig
expect 0 "key cert remove through kosd" ks admin key cert remove certsig
grep_out "certificate removed from certsig" "cert remove says so"
expect 1 "the certificate is gone" ks admin key cert show certsig
expect 0 "the key stays" ks admin key pubkey certsig
expect 1 "a second removal" ks admin key cert remove certsig --version 1

# --- threat level and policy ---
expect 0 "threat set through kosd" ks admin threat set elevated --reason "a test"
grep_out "elevated" "threat set prints the level"
expect 0 "the store holds it" "$K" threat show
grep_out "elevated" "threat show (local) sees kosd's change"
expect 0 "back to normal" ks admin threat set normal
expect 1 "a client cannot set the threat level" ks hi threat set critical
expect 0 "policy reload through kosd" ks admin policy reload
grep_out "reloaded .*kos.policy" "reload names the policy"
cp "$d/kos.policy" "$kos_tmp/good.policy"
printf 'version = 1;\ntiers = { high = "x"; };\n' > "$d/kos.policy"
expect 1 "a broken policy is refused" ks admin policy reload
grep_err "(policy_invalid)" "the refusal is named"
cp "$kos_tmp/good.policy" "$d/kos.policy"

# --- refresh ---
cp "$kos_tmp/med.cred" "$kos_tmp/med.old"
expect 0 "refresh the credential file" ks med credential refresh
grep_err "refreshed; the credential is in" "refresh says where"
check "the file holds a new credential" sh -c "test -s '$kos_tmp/med.cred' && test -s '$kos_tmp/med.old' && ! cmp -s '$kos_tmp/med.cred' '$kos_tmp/med.old'"
expect 0 "the refreshed credential works" ks med key decrypt --context c1 < "$kos_tmp/env2"
expect 0 "refresh to a narrower scope prints it" ks med credential refresh --scope "decrypt:payments"
cp "$out" "$kos_tmp/narrowed.cred"
check "the file is untouched by a narrowed refresh" sh -c "test -s '$kos_tmp/med.cred' && grep -q '^ey' '$kos_tmp/narrowed.cred' && ! cmp -s '$kos_tmp/med.cred' '$kos_tmp/narrowed.cred'"
run ks narrowed key encrypt payments < "$kos_tmp/plain"
check "the narrowed credential cannot encrypt" test "$status" -eq 1
grep_err "(out_of_scope)" "the narrowed credential: out of scope"
expect 1 "refresh to a wider scope" ks med credential refresh --scope "admin:*"
expect 0 "refresh of a given token" "$K" --server "unix:$S" credential refresh - < "$kos_tmp/med.cred"
check "a credential is printed" grep -q '^ey' "$out"
expect 2 "--cnf through kosd" ks med credential refresh --cnf abc

# --- the environment and kos.conf ---
expect 0 "KOS_SERVER and KOS_CREDENTIAL_FILE" env KOS_SERVER="$S" \
	KOS_CREDENTIAL_FILE="$kos_tmp/hi.cred" "$K" key decrypt --context c1 < "$kos_tmp/env2"
expect 0 "KOS_CREDENTIAL" env KOS_SERVER="unix:$S" KOS_CREDENTIAL="$(cat "$kos_tmp/hi.cred")" \
	"$K" key list
grep_out "^payments " "the environment's credential lists keys"
cp "$d/kos.conf" "$d/srv.conf"
printf 'server = "kosd.sock";\n' >> "$d/srv.conf"
expect 0 "kos.conf's server" env KOS_CREDENTIAL_FILE="$kos_tmp/narrow.cred" "$K" --config "$d/srv.conf" key list
check "narrow's view: through kosd" sh -c "! grep -q '^payments ' '$out'"
expect 0 "--local ignores kos.conf's server" "$K" --local --config "$d/srv.conf" key list
grep_out "^payments " "the store's view"
cp "$d/kos.conf" "$d/bad.conf"
printf 'server = 5;\n' >> "$d/bad.conf"
expect 1 "a bad server in kos.conf" "$K" --config "$d/bad.conf" kms list
grep_err "bad.conf:[0-9]*: server: must be" "the problem is FILE:LINE"
cp "$d/kos.conf" "$d/bad2.conf"
printf 'server = "ftp://x";\n' >> "$d/bad2.conf"
expect 1 "a server of another scheme" "$K" --config "$d/bad2.conf" kms list
grep_err "bad2.conf:[0-9]*: server:" "the scheme is refused"

# --- forged and revoked credentials ---
# a real forgery: low's credential widened to admin:*, under its own
# signature (the form is valid; the signature no longer matches)
run "${top_builddir:-.}/tests/jwt-forge" -s scope="admin:*" "$(cat "$kos_tmp/low.cred")"
cp "$out" "$kos_tmp/forged.cred"
check "the forgery is a well-formed JWS" grep -q '^ey[A-Za-z0-9_-]*\.ey[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$' "$kos_tmp/forged.cred"
run ks forged key decrypt --context c1 < "$kos_tmp/env2"
check "a forged credential is refused" test "$status" -eq 1
grep_err "(invalid_credential)" "the reason is invalid credential"
expect 0 "credential revoke through kosd" ks admin credential revoke --client hi
run ks hi key decrypt --context c1 < "$kos_tmp/env2"
check "a revoked credential is refused" test "$status" -eq 1
grep_err "(revoked)" "the reason is revoked"
expect 1 "a revoked credential cannot refresh" ks hi credential refresh
expect 1 "a client cannot revoke" ks low credential revoke --client med
expect 0 "revoke by time through kosd" ks admin credential revoke --before now
run ks low key decrypt --context c1 < "$kos_tmp/env2"
check "revoked by time" test "$status" -eq 1
grep_err "(revoked)" "revoked by time: the reason is revoked"

# --- stop ---
stop_kosd
check "SIGTERM: exit 0" test "$st" -eq 0
check "no credential in kosd's log" sh -c "! grep -q -e \"\$(cat '$kos_tmp/med.cred')\" '$log'"

finish kosctl-server
