#!/bin/sh
# The provider's link graph: kos.so is loaded into every OpenSSL
# application that activates it (nginx, curl, Python), so it needs none of
# the server's libraries and exports OSSL_provider_init alone; the client
# library is linked in, its symbols local.
. "${srcdir:-.}/tests/lib.sh"

top=${top_builddir:-.}
so="$top/.libs/kos.so"

check "kos.so is built" test -f "$so"
readelf -d "$so" > "$kos_tmp/needed" 2>&1 || true
for lib in libcrypto libcurl libjansson; do
	check "kos.so needs $lib" grep -q -e "NEEDED.*\[$lib\." "$kos_tmp/needed"
done
for lib in libssl libsqlite3 libconfig libevent libjwt libp11-kit libkos-client libcunit; do
	if grep -q -e "NEEDED.*\[$lib" "$kos_tmp/needed"; then
		fail "kos.so does not need $lib"
	else
		pass "kos.so does not need $lib"
	fi
done
nm -D --defined-only "$so" | awk '$2 ~ /^[TDBRVWi]$/ { sub(/@.*/, "", $3); print $3 }' |
	sort -u > "$kos_tmp/exported"
check "it exports OSSL_provider_init and nothing else ($(tr '\n' ' ' < "$kos_tmp/exported"))" \
	test "$(cat "$kos_tmp/exported")" = "OSSL_provider_init"
nm "$so" > "$kos_tmp/all" 2>/dev/null || true
check "the client library is linked in" grep -q -e ' kos_client_sign_ex$' "$kos_tmp/all"
check "no symbol of the server library" sh -c "! grep -q -e ' kos_store_\| kos_hsm_\| kos_ledger_' '$kos_tmp/all'"
finish provider-link
