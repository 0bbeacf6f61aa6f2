#!/bin/sh
# The link graph (the p11-kit way: small libraries, each with only its own
# dependencies): libkos-client.so, what the PKCS#11 module and the provider
# load into every application, needs no server library (SQLite, libconfig,
# libevent, libjwt, p11-kit) and exports the installed API only, every
# function of it; libkos-common calls nothing above it, the client nothing
# of the server; a program built with include/ alone and linked with the
# shared library alone works against a real kosd.
. "${srcdir:-.}/tests/lib.sh"
set -e

top=${top_builddir:-.}
so="$top/.libs/libkos-client.so"
abi="$top/tests/client-abi"
kosd_env

check "libkos-client.so is built" test -f "$so"
readelf -d "$so" > "$kos_tmp/needed" 2>&1 || true
for lib in libcrypto libcurl libjansson; do
	check "libkos-client.so needs $lib" grep -q -e "NEEDED.*\[$lib\." "$kos_tmp/needed"
done
for lib in libsqlite3 libconfig libevent libjwt libp11-kit libssl libcunit; do
	if grep -q -e "NEEDED.*\[$lib" "$kos_tmp/needed"; then
		fail "libkos-client.so does not need $lib"
	else
		pass "libkos-client.so does not need $lib"
	fi
done

# exported: the names the export list allows, nothing else
nm -D --defined-only "$so" | awk '$2 ~ /^[TDBRVW]$/ { sub(/@.*/, "", $3); print $3 }' |
	sort -u > "$kos_tmp/exported"
grep -v -e '^kos_client_' -e '^KOS_CLIENT_' "$kos_tmp/exported" > "$kos_tmp/extra" || true
tr '\n' ' ' < "$kos_tmp/extra" > "$kos_tmp/extra1"
check "exports beyond kos_client_* are the common API's ($(cat "$kos_tmp/extra1"))" \
	sh -c '! grep -v -x -e kos_strerror -e kos_last_error -e kos_free -e kos_secret_free \
		-e kos_b64_decode -e kos_now -e kos_duration_parse -e kos_duration_format \
		-e kos_key_type_name -e kos_key_type_parse -e kos_sig_alg_name -e kos_sig_alg_parse \
		-e kos_key_name_valid -e kos_principal_name_valid -e kos_hash_name \
		-e kos_hash_parse -e kos_hash_len "$1"' - "$kos_tmp/extra"
for f in kos_shamir_combine kos_envelope_open kos_error_set kos_keys_new kos_store_open; do
	if grep -q -x -e "$f" "$kos_tmp/exported"; then
		fail "$f stays inside"
	else
		pass "$f stays inside"
	fi
done
# declared in the installed headers: every KOS_API function is exported
sed -n 's/^KOS_API[^(]*[ *]\(kos_[a-z0-9_]*\)(.*/\1/p' "$srcdir"/include/kos/*.h | sort -u > "$kos_tmp/declared"
check "the installed headers declare functions ($(wc -l < "$kos_tmp/declared"))" \
	test "$(wc -l < "$kos_tmp/declared")" -ge 30
comm -23 "$kos_tmp/declared" "$kos_tmp/exported" > "$kos_tmp/missing"
check "every declared function is exported ($(tr '\n' ' ' < "$kos_tmp/missing"))" \
	test ! -s "$kos_tmp/missing"

# layering: what each static library leaves undefined among kos_* names
undef_kos() { nm -u "$1" | awk '$2 ~ /^kos_/ { print $2 }' | sort -u; }
def_kos() { nm --defined-only "$1" | awk '$2 ~ /^[TDBR]$/ && $3 ~ /^kos_/ { print $3 }' | sort -u; }
def_kos "$top/.libs/libkos-common.a" > "$kos_tmp/common.def"
undef_kos "$top/.libs/libkos-common.a" | comm -23 - "$kos_tmp/common.def" > "$kos_tmp/up"
check "libkos-common calls nothing above it ($(tr '\n' ' ' < "$kos_tmp/up"))" test ! -s "$kos_tmp/up"
undef_kos "$top/.libs/libkos-client-internal.a" | comm -23 - "$kos_tmp/common.def" > "$kos_tmp/up"
check "the client calls nothing of the server ($(tr '\n' ' ' < "$kos_tmp/up"))" test ! -s "$kos_tmp/up"
check "libkos-common depends on libcrypto only" \
	grep -q -x -e "dependency_libs=' *-lcrypto *\( -lm\)\{0,1\} *'" "$top/libkos-common.la"

# what an application's build asks pkg-config for
if command -v pkg-config >/dev/null 2>&1; then
	run env PKG_CONFIG_PATH="$top" pkg-config --libs kos-client
	grep_out "lkos-client" "pkg-config --libs kos-client names the library"
	run env PKG_CONFIG_PATH="$top" pkg-config --static --libs kos-client
	grep_out "lcurl" "its static link names libcurl"
	check "and no server library" sh -c '! grep -q -e "-l\(sqlite3\|config\|event\|p11-kit\)" "$1"' - "$out"
fi

# a program of the installed API alone
bin="$top/tests/.libs/client-abi"
[ -f "$bin" ] || bin="$abi"
readelf -d "$bin" > "$kos_tmp/abi-needed" 2>&1 || true
check "client-abi is linked with libkos-client.so" \
	grep -q -e 'NEEDED.*\[libkos-client\.so\.0\]' "$kos_tmp/abi-needed"
check "client-abi needs no server library" \
	sh -c '! grep -q -e "NEEDED.*\[lib\(sqlite3\|config\|event\|jwt\|p11-kit\)" "$1"' - "$kos_tmp/abi-needed"
expect 0 "client-abi's offline checks pass" "$abi" offline
grep_out "ok - an absent kosd is an I/O error" "it says so"

setup "init" "$K" init --dir "$d" --policy "$P/default.policy"
export KOS_CONF="$d/kos.conf"
setup "ca init" "$K" ca init
setup "a data key" "$K" key create payments
setup "a client" "$K" client add app --scope "encrypt:payments decrypt:payments"
cp "$out" "$kos_tmp/app.secret"
check "kosd starts" start_kosd
run ks app credential enroll - < "$kos_tmp/app.secret"
setup "enroll app" test "$status" -eq 0
expect 0 "an encryption and a decryption through the shared library" \
	env KOS_SERVER="unix:$S" KOS_CREDENTIAL_FILE="$kos_tmp/app.cred" "$abi" roundtrip payments
grep_out "ok - the plaintext comes back" "the plaintext comes back"
expect 1 "a key out of the credential's scope is refused" \
	env KOS_SERVER="unix:$S" KOS_CREDENTIAL_FILE="$kos_tmp/app.cred" "$abi" roundtrip other
grep_out "FAIL - encrypt" "at the encryption"

kill "$kpid" && wait "$kpid" || true
kpid=""
finish link-graph
