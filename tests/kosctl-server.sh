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
kill -TERM "$kpid"
set +e
wait "$kpid"
st=$?
set -e
kpid=""
check "SIGTERM: exit 0" test "$st" -eq 0
check "no credential in kosd's log" sh -c "! grep -q -e \"\$(cat '$kos_tmp/med.cred')\" '$log'"

finish kosctl-server
