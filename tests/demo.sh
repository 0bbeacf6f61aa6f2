#!/bin/sh
# scripts/demo, the README's main command, as a test: it exits 1 when any
# step does not behave (kosd, tiers, refusals, revocation, rewrap, PKCS#11, the provider,
# clean stop).
. "${srcdir:-.}/tests/lib.sh"

unset KOS_CONF KOS_SERVER KOS_CREDENTIAL KOS_CREDENTIAL_FILE
if sh "${srcdir:-.}/scripts/demo" "${top_builddir:-.}" >"$out" 2>"$err"; then
	pass "the demo runs to the end"
else
	fail "the demo failed"
	tail -n 30 "$out" | sed 's/^/  out| /'
fi
grep_out "path: dek " "the high client decrypts with the DEK"
grep_out "path: shares " "the medium client rebuilds it from shares"
grep_out "path: server " "the low client decrypts server-side"
grep_out "lo is still low: trust recovers with time" "the low client does not farm its trust back"
grep_out "^rewrapped 1, already current 0, failed 0$" "an old envelope is rewrapped through kosd"
grep_out "version 1 is retired" "the old version's envelope is refused once retired"
grep_out "the signature made through libkos-pkcs11.so verifies" \
	"an application signs through the PKCS#11 module"
grep_out "a TLS 1.3 handshake completed with the server's key in kosd" \
	"a TLS server keeps its key in kosd through the provider"
grep_out "kosd exited with status 0" "kosd stops cleanly"
finish demo
