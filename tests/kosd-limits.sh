#!/bin/sh
# kosd's limits against slow and abusive clients, with a small cap and
# timeout (4 connections, 2 s): idle connections fill the cap, a further
# one is refused with a JSON 503 and the count comes down as they close;
# clients trickling headers or a body, or sending nothing, are closed at the
# deadline while others are served; oversized and truncated bodies.
. "${srcdir:-.}/tests/lib.sh"
set -e

kosd_env
C=${KOSD_CONN:-${top_builddir:-.}/tests/kosd-conn}

# api METHOD PATH [BODY]: the answer in $out, the status in $code.
api() {
	_m=$1 _p=$2 _b=${3:-}
	set -- -s -o "$out" -w '%{http_code}' --max-time 1 --unix-socket "$S" -X "$_m"
	[ -n "$_b" ] && set -- "$@" -H 'Content-Type: application/json' --data-binary "$_b"
	code=$(curl "$@" "http://kos$_p" 2>"$err") || true
	[ -n "$code" ] || code=000
}
metric() { api GET /metrics; sed -n "s/^$1 //p" "$out"; }

# conn NAME ARGS...: kosd-conn in the background, its report in $kos_tmp/NAME;
# returns once its connections are open.
conn() {
	_n=$1
	shift
	"$C" "$S" "$@" > "$kos_tmp/$_n" &
	i=0
	while ! grep -q '^open' "$kos_tmp/$_n" 2>/dev/null; do
		[ $i -lt 100 ] || return 1
		sleep 0.02
		i=$((i + 1))
	done
}
# closed_within NAME MIN MAX: all its connections were closed by kosd, after
# MIN to MAX seconds.
closed_within() {
	_s=$(sed -n 's/^closed \([0-9]*\) of \1 after \([0-9.]*\) s$/\2/p' "$kos_tmp/$1")
	[ -n "$_s" ] && awk -v s="$_s" -v lo="$2" -v hi="$3" 'BEGIN { exit !(s >= lo && s <= hi) }'
}

check "the connection helper is built" test -x "$C"
setup "init" "$K" init --dir "$d"
sed -i 's/^listen = .*/listen = { unix = "kosd.sock"; unix_mode = "0600"; max_body = 1024; max_data_body = 2048; timeout = "2s"; max_connections = 4; max_connections_per_peer = 4; };/' "$d/kos.conf"
"$D" --config "$d/kos.conf" 2>>"$log" &
kpid=$!
i=0
while [ $i -lt 100 ]; do
	api GET /v1/health
	[ "$code" = 200 ] && break
	sleep 0.05
	i=$((i + 1))
done
want 200 "kosd serves"

# --- the cap: idle connections fill it ---
check "4 idle connections" conn idle 4 6
api GET /v1/health
want 503 "a fifth connection is refused at once"
grep_out '"error":"too_many_connections"' "with a JSON error"
grep_out 'limit (4)' "naming the limit"
api GET /v1/health
want 503 "and the next one too"
wait $!
check "the idle connections are closed after the 2 s timeout" closed_within idle 1.5 4
api GET /v1/health
want 200 "health answers once they are gone"
check "the count came down to this one connection" test "$(metric kosd_connections)" = 1
check "the refusals are counted" test "$(metric kosd_connections_refused_total)" -ge 2

# --- slow clients: closed at the deadline, others served meanwhile ---
expired0=$(metric kosd_connections_expired_total)
check "a client trickling its headers" \
	conn hdr 1 6 'GET /v1/health HTTP/1.1\r\nHost: kos\r\nX-Slow: ' 250
p1=$!
check "a client trickling its body" \
	conn body 1 6 'POST /v1/credentials/enroll HTTP/1.1\r\nHost: kos\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{"secret":"' 250
p2=$!
check "a client sending nothing" conn mute 1 6
p3=$!
ok=0
for n in 1 2 3 4 5 6 7 8; do
	api GET /v1/health
	[ "$code" = 200 ] && ok=$((ok + 1))
	sleep 0.1
done
check "meanwhile others are served (8 of 8 within 1 s each)" test "$ok" -eq 8
wait $p1 $p2 $p3
check "the header trickler is closed at the 2 s deadline" closed_within hdr 1.5 4
check "the body trickler is closed at the 2 s deadline" closed_within body 1.5 4
check "the silent client is closed after 2 s" closed_within mute 1.5 4
# the deadline closes all three (evhttp's own timeout comes only at twice
# the timeout), and counts each
expired=$(metric kosd_connections_expired_total)
check "the three deadline closings are counted (${expired0:-?} -> $expired)" \
	test "$expired" -eq "$((${expired0:-0} + 3))"
check "none is left counted" test "$(metric kosd_connections)" = 1

# --- bodies ---
big=$(head -c 1500 /dev/zero | tr '\0' 'a')
api POST /v1/credentials/enroll "{\"secret\":\"$big\"}"
want 413 "a body over max_body"
grep_out '"error":"too_large"' "is a JSON error"
huge=$(head -c 4096 /dev/zero | tr '\0' 'a')
api POST /v1/decrypt "{\"envelope\":\"$huge\"}"
# unread: the route asks for its credential before its body
want 401 "a body over max_data_body without a credential"
check "a truncated body, then the client leaves" \
	conn trunc 1 0.3 'POST /v1/credentials/enroll HTTP/1.1\r\nHost: kos\r\nContent-Length: 100\r\n\r\n{"se'
wait $!
api POST /v1/credentials/enroll '{"secret":'
want 400 "invalid JSON"
api GET /v1/health
want 200 "kosd still serves"
check "and counts no connection left behind" test "$(metric kosd_connections)" = 1

stop_kosd
check "SIGTERM: exit 0" test "$st" -eq 0

finish kosd-limits
