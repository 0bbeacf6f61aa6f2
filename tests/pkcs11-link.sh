#!/bin/sh
# The PKCS#11 module's link graph: libkos-pkcs11.so is loaded into every
# application that uses PKCS#11, so it needs none of the server's
# libraries (nor libp11-kit: <p11-kit/pkcs11.h> is a header only) and
# exports C_GetFunctionList alone; the client library is linked in.
. "${srcdir:-.}/tests/lib.sh"

top=${top_builddir:-.}
so="$top/.libs/libkos-pkcs11.so"

check "libkos-pkcs11.so is built" test -f "$so"
readelf -d "$so" > "$kos_tmp/needed" 2>&1 || true
for lib in libcrypto libcurl libjansson; do
	check "libkos-pkcs11.so needs $lib" grep -q -e "NEEDED.*\[$lib\." "$kos_tmp/needed"
done
for lib in libsqlite3 libconfig libevent libjwt libp11-kit libkos-client libcunit; do
	if grep -q -e "NEEDED.*\[$lib" "$kos_tmp/needed"; then
		fail "libkos-pkcs11.so does not need $lib"
	else
		pass "libkos-pkcs11.so does not need $lib"
	fi
done
nm -D --defined-only "$so" | awk '$2 ~ /^[TDBRVWi]$/ { sub(/@.*/, "", $3); print $3 }' |
	sort -u > "$kos_tmp/exported"
check "it exports C_GetFunctionList and nothing else ($(tr '\n' ' ' < "$kos_tmp/exported"))" \
	test "$(cat "$kos_tmp/exported")" = "C_GetFunctionList"
# the client is inside, its symbols local
nm "$so" > "$kos_tmp/all" 2>/dev/null || true
check "the client library is linked in" grep -q -e ' kos_client_sign_digest$' "$kos_tmp/all"
check "the module's kos.module names it" \
	grep -q -e '^module: .*/pkcs11/libkos-pkcs11\.so$' "$top/pkcs11/kos.module"
finish pkcs11-link
