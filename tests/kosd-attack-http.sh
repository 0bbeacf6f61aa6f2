#!/bin/sh
# kosd's HTTP boundary as an attacker meets it: bodies without a credential
# are refused unread (JSON 413) and kosd's memory stays low under 90 MiB
# bodies; a credential's body is held to its route's cap; one peer cannot
# take every connection; a path with CR, LF or ESC cannot forge a log record;
# non-canonical base64 is refused; ambiguous framing (two Content-Length
# headers, "+2", folded headers, Transfer-Encoding) is refused in JSON, and
# so is an unknown method.
. "${srcdir:-.}/tests/lib.sh"
set -e

kosd_env
C=${KOSD_CONN:-${top_builddir:-.}/tests/kosd-conn}

rss() { ps -o rss= -p "$kpid" | tr -d ' '; }
# raw NAME DATA: one request written as it is (kosd-conn's escapes), the
# whole answer in $kos_tmp/NAME
raw() {
	KOSD_CONN_OUT="$kos_tmp/$1" "$C" "$S" 1 2 "$2" > "$kos_tmp/$1.report"
	cp "$kos_tmp/$1" "$out"
}
status_is() { head -n 1 "$out" | grep -q "^HTTP/1.1 $1 "; }
json_error() { grep -q "\"error\":\"$1\"" "$out"; }

check "the connection helper is built" test -x "$C"
# trust starts high, so the data routes answer
sed -e 's/prior = 60.0;/prior = 90.0;/' "$P/default.policy" > "$kos_tmp/test.policy"
expect 0 "init" "$K" init --dir "$d" --policy "$kos_tmp/test.policy"
# the default body caps (96 MiB for data, 1 MiB, 16 KiB without a credential)
sed -i 's/^listen = .*/listen = { unix = "kosd.sock"; unix_mode = "0600"; max_body = 65536; timeout = "10s"; max_connections = 16; max_connections_per_peer = 6; };/' "$d/kos.conf"
export KOS_CONF="$d/kos.conf"
expect 0 "ca init" "$K" ca init
expect 0 "a data key" "$K" key create payments
expect 0 "a client" "$K" client add app --scope "encrypt:payments decrypt:payments admin:*"
expect 0 "its credential" "$K" credential enroll "$(cat "$out")"
T=$(cat "$out")
check "kosd starts" start_kosd

# --- finding 7: bodies are refused before they are read ---
head -c 94371840 /dev/zero > "$kos_tmp/big"
before=$(rss)
i=0
pids=""
for r in /v1/credentials/enroll /v1/credentials/enroll /v1/health /v1/health; do
	i=$((i + 1))
	m=POST
	[ "$r" = /v1/health ] && m=GET
	# no Expect: the client sends its 90 MiB at once, as an attacker would
	curl -s -o "$kos_tmp/big$i.out" -w '%{http_code}' --max-time 30 --unix-socket "$S" \
		-X "$m" -H 'Expect:' --data-binary "@$kos_tmp/big" "http://kos$r" \
		> "$kos_tmp/big$i.code" 2>/dev/null &
	pids="$pids $!"
done
# shellcheck disable=SC2086
wait $pids
after=$(rss)
check "4 x 90 MiB without a credential: kosd grows under 100 MiB ($before -> $after KiB)" \
	test $((after - before)) -lt 102400
api POST /v1/credentials/enroll "" "@$kos_tmp/big"
want 413 "a 90 MiB enrollment body is refused"
grep_out '"error":"too_large"' "with a JSON error"
grep_out 'without a credential' "naming the credential"
api GET /v1/health "" "@$kos_tmp/big"
want 413 "a body on a route without one is refused"
grep_out 'takes no body' "saying so"
head -c 20000 /dev/zero | tr '\0' a | sed 's/^/{"secret":"/; s/$/"}/' > "$kos_tmp/20k.json"
api POST /v1/credentials/enroll "" "@$kos_tmp/20k.json"
want 413 "20 KiB without a credential is over max_anon_body"
api POST /v1/decrypt "" "@$kos_tmp/big"
want 401 "a data route without a credential refuses before the body"
head -c 100000 /dev/zero | tr '\0' a | sed 's/^/{"name":"x","scope":"/; s/$/"}/' > "$kos_tmp/100k.json"
api POST /v1/admin/clients "$T" "@$kos_tmp/100k.json"
want 413 "with a credential, a body over max_body on a small route"
grep_out '"error":"too_large"' "is a JSON error"
head -c 3000000 /dev/zero | tr '\0' A | sed 's/^/{"plaintext":"/; s/$/"}/' > "$kos_tmp/3m.json"
api POST /v1/keys/payments/encrypt "$T" "@$kos_tmp/3m.json"
want 200 "with a credential, a data route still takes 3 MiB"
raw overcap "POST /v1/decrypt HTTP/1.1\r\nHost: kos\r\nAuthorization: Bearer $T\r\nContent-Length: 200000000\r\n\r\n"
check "a Content-Length over max_data_body: 413 at once" status_is 413
check "in JSON" json_error too_large
api GET /v1/health
want 200 "kosd still serves"

# --- one peer cannot take every connection ---
"$C" "$S" 6 3 > "$kos_tmp/hold" &
hold=$!
i=0
while ! grep -q '^open' "$kos_tmp/hold" 2>/dev/null && [ $i -lt 100 ]; do
	sleep 0.02
	i=$((i + 1))
done
sleep 0.2 # kosd has accepted them
api GET /v1/health
want 503 "past max_connections_per_peer a connection is refused"
grep_out '"error":"too_many_connections"' "in JSON"
grep_out 'max_connections_per_peer' "naming the setting"
wait "$hold"
api GET /v1/health
want 200 "served again once the peer's connections are gone"

# --- finding 11: the log cannot be forged ---
forged='client=admin route=admin_revoke path=/v1/admin/revoke status=200'
api GET "/v1/x%0d%0a2026-01-01T00:00:00.000Z%20kosd%5b1%5d:%20peer=-%20client=admin%20route=admin_revoke%20path=/v1/admin/revoke%20status=200%1b%5b2J"
want 404 "a percent-encoded CR LF path"
raw crlf "GET /v1/y\r\n2026-01-01T00:00:00.000Z kosd[1]: peer=- $forged HTTP/1.1\r\nHost: kos\r\n\r\n"
check "a raw CR LF in the path is refused" status_is 400
# a bare CR stays inside evhttp's request line: on a terminal the forged
# record would overwrite the real one
raw cr "GET /v1/w\r2026-01-01T00:00:00.000Z\x09kosd[1]:\x09client=admin\x09route=admin_revoke\x09status=200 HTTP/1.1\r\nHost: kos\r\n\r\n"
check "a raw CR in the path is refused" status_is 400
raw esc "GET /v1/z\e[2J\e]0;owned\x07 HTTP/1.1\r\nHost: kos\r\n\r\n"
check "a raw ESC in the path is refused" status_is 400
raw quote "GET /v1/a\"b\\\\c HTTP/1.1\r\nHost: kos\r\n\r\n"
sleep 0.2
check "no forged record in the log" sh -c "! grep -q '^2026-01-01T00:00:00' '$log'"
check "no forged admin_revoke line" sh -c "! grep 'route=admin_revoke' '$log' | grep -qv 'route=unknown\|route=health'"
check "no ESC byte in the log" sh -c "! grep -q \"\$(printf '\\033')\" '$log'"
check "no CR in the log" sh -c "! grep -q \"\$(printf '\\r')\" '$log'"
check "the CR is logged escaped" grep -qF 'path=/v1/w\x0d2026-01-01T00:00:00.000Z\x09kosd[1]:\x09client' "$log"
check "the raw path is logged escaped" grep -qF 'path=/v1/z\x1b[2J\x1b]0;owned\x07 ' "$log"
check "the percent-encoded path stays one field" grep -q 'path=/v1/x%0d%0a2026' "$log"
check "quotes and backslashes are escaped" grep -qF 'path=/v1/a\x22b\x5c\x5cc ' "$log"

# --- finding 12: base64 and framing ---
for b in 'QQ==QQ==' '====' 'QR==' 'QUF=' 'Zm9v====' 'Zm 9v'; do
	api POST /v1/keys/payments/encrypt "$T" "{\"plaintext\":\"$b\"}"
	want 400 "plaintext $b is refused"
	grep_out '"error":"bad_base64"' "as bad_base64"
done
api POST /v1/keys/payments/encrypt "$T" '{"plaintext":"QQ=="}'
want 200 "canonical base64 is taken"
raw dupcl 'POST /v1/credentials/enroll HTTP/1.1\r\nHost: kos\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}'
check "two Content-Length headers: 400" status_is 400
check "in JSON" json_error bad_request
raw plus 'POST /v1/credentials/enroll HTTP/1.1\r\nHost: kos\r\nContent-Length: +2\r\n\r\n{}'
check "Content-Length: +2: 400" status_is 400
check "in JSON" json_error bad_request
raw fold 'POST /v1/credentials/enroll HTTP/1.1\r\nHost: kos\r\nX-A: a\r\n Content-Length: 40\r\nContent-Length: 2\r\n\r\n{}'
check "a folded header line: 400" status_is 400
check "in JSON" json_error bad_request
raw te 'POST /v1/credentials/enroll HTTP/1.1\r\nHost: kos\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n'
check "Transfer-Encoding: 501" status_is 501
check "in JSON" json_error not_implemented
raw method 'BREW /v1/health HTTP/1.1\r\nHost: kos\r\n\r\n'
check "an unknown method: 501" status_is 501
check "in JSON" json_error not_implemented
api DELETE /v1/health
want 405 "a known method the route lacks: 405"
grep_out '"error":"method_not_allowed"' "in JSON"
raw expect 'POST /v1/credentials/enroll HTTP/1.1\r\nHost: kos\r\nExpect: tea\r\nContent-Length: 2\r\n\r\n{}'
check "an unknown Expect: 417" status_is 417
check "in JSON" json_error expectation_failed
raw smuggle 'GET /v1/health HTTP/1.1\r\nHost: kos\r\nContent-Length: 40\r\n\r\nGET /v1/admin/clients HTTP/1.1\r\nHost: kos\r\n\r\n'
check "a GET declaring a body is refused (413)" status_is 413
check "and the bytes after it are not served" sh -c "test \$(grep -c '^HTTP/1.1' '$out') -eq 1"
raw pipe 'GET /v1/health HTTP/1.1\r\nHost: kos\r\n\r\nGET /v1/ca/jwks HTTP/1.1\r\nHost: kos\r\n\r\n'
check "two pipelined requests are both answered" sh -c "test \$(grep -c '^HTTP/1.1 200' '$out') -eq 2"
raw http10 'GET /v1/health HTTP/1.0\r\n\r\n'
check "HTTP/1.0 is answered and closed" sh -c "status_ok() { head -n 1 '$out' | grep -q '^HTTP/1.1 200'; }; status_ok && grep -q 'closed 1 of 1' '$kos_tmp/http10.report'"
check "no answer is HTML" sh -c "! grep -qi '<html' '$kos_tmp'/crlf '$kos_tmp'/esc '$kos_tmp'/dupcl '$kos_tmp'/plus '$kos_tmp'/fold '$kos_tmp'/te '$kos_tmp'/method '$kos_tmp'/expect '$kos_tmp'/smuggle"
api GET /v1/health
want 200 "kosd still serves"

stop_kosd
check "SIGTERM: exit 0" test "$st" -eq 0

finish kosd-attack-http
