#!/bin/sh
# kosd's TCP listener, driven with curl: TLS 1.3 with a client certificate
# from the configured CA serves health and authenticated routes; no client
# certificate, TLS 1.2 and a certificate from another CA are refused at the
# handshake; a credential bound (cnf) to one certificate works with it only,
# and not over the Unix socket; enrollment over TLS binds the credential;
# SIGHUP reloads the TLS files (and keeps the old ones when the new fail);
# the subject is logged; start-up refuses a key that does not match its
# certificate and an unreadable file.
. "${srcdir:-.}/tests/lib.sh"
set -e

kosd_env
c="$kos_tmp/pki"

# --- a throwaway PKI: a client CA, the server's certificate, two clients
# of that CA and one of another CA ---
mkdir -p "$c"
client_ext='extendedKeyUsage=clientAuth'
check "a client CA" mkca clients-ca
check "another CA" mkca other-ca
check "the server's certificate" mkcert clients-ca server \
	"$(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth')"
check "client alice" mkcert clients-ca alice "$client_ext"
check "client bob" mkcert clients-ca bob "$client_ext"
check "client eve, of the other CA" mkcert other-ca eve "$client_ext"
check "the server's next certificate" mkcert clients-ca server-next \
	"$(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth')"

# --- an installation with both listeners ---
setup "init" "$K" init --dir "$d" --policy "$P/default.policy"
export KOS_CONF="$d/kos.conf"
setup "ca init" "$K" ca init
setup "admin client" "$K" client add admin --scope "*:*"
setup "enroll the admin" "$K" credential enroll "$(cat "$out")"
ADM=$(cat "$out")
expect 0 "client alice" "$K" client add alice --scope "key:*"
expect 0 "client carol, to enroll over TLS" "$K" client add carol --scope "key:*"
carol_secret=$(cat "$out")
expect 0 "a credential bound to alice's certificate" \
	"$K" credential issue alice --cert "$c/alice.pem"
T_bound=$(cat "$out")
expect 0 "kosctl verifies it with the certificate" "$K" credential verify "$T_bound" --cert "$c/alice.pem"
grep_out '"x5t#S256"' "the credential carries cnf"
expect 1 "and refuses it with another" "$K" credential verify "$T_bound" --cert "$c/bob.pem"
grep_err "certificate mismatch" "the reason is the certificate"
expect 2 "--cnf and --cert together" "$K" credential issue alice --cnf x --cert "$c/alice.pem"
expect 1 "--cert of a missing file" "$K" credential issue alice --cert "$c/none.pem"
grep_err "none.pem" "the file is named"

cp "$c/server.pem" "$c/server.key" "$c/clients-ca.pem" "$d/"
# listen_conf PORT [CERT KEY CA]: the listen line of kos.conf
listen_conf() {
	sed -i "s|^listen = .*|listen = { unix = \"kosd.sock\"; unix_mode = \"0600\"; tcp = \"127.0.0.1:$1\"; tls = { cert = \"${2:-server.pem}\"; key = \"${3:-server.key}\"; client_ca = \"${4:-clients-ca.pem}\"; }; };|" "$d/kos.conf"
}

# tls WHO [CURL-OPTIONS...] PATH [TOKEN]: GET over TLS with WHO's certificate
# ("-" for none); the answer in $out, the status in $code, curl's exit in $cst.
tls() {
	_who=$1
	shift
	_p=$1 _t=${2:-}
	set -- -s -o "$out" -w '%{http_code}' --max-time 10 --cacert "$c/clients-ca.pem" --tlsv1.3
	[ "$_who" != - ] && set -- "$@" --cert "$c/$_who.pem" --key "$c/$_who.key"
	[ -n "$_t" ] && set -- "$@" -H "Authorization: Bearer $_t"
	set +e
	code=$(curl "$@" ${tls_opts:-} "https://127.0.0.1:$port$_p" 2>"$err")
	cst=$?
	set -e
	[ -n "$code" ] || code=000
}
unix_get() {
	code=$(curl -s -o "$out" -w '%{http_code}' --max-time 10 --unix-socket "$S" \
		${2:+-H "Authorization: Bearer $2"} "http://kos$1" 2>"$err") || true
}

# Starts kosd on a free port (a few tries); ready when health answers over TLS.
start_kosd() {
	for try in 1 2 3 4 5; do
		port=$((20000 + ($$ * 7 + try * 977) % 40000))
		listen_conf "$port"
		: > "$log"
		"$D" --config "$d/kos.conf" 2>>"$log" &
		kpid=$!
		i=0
		while [ $i -lt 100 ]; do
			tls alice /v1/health
			[ "$code" = 200 ] && return 0
			kill -0 "$kpid" 2>/dev/null || break
			sleep 0.05
			i=$((i + 1))
		done
		wait "$kpid" 2>/dev/null || true
		kpid=""
		grep -q "cannot bind" "$log" || return 1
	done
	return 1
}

# --- serving ---
check "kosd starts with both listeners" start_kosd
grep_out '"status":"ok"' "health over TLS 1.3 with a client certificate"
check "the TLS listener is logged" grep -q "listening on 127.0.0.1 port $port, TLS 1.3" "$log"
unix_get /v1/health
want 200 "the Unix socket serves alongside"
tls alice /v1/keys "$ADM"
want 200 "an authenticated route over TLS (a bearer credential, any certificate)"
tls alice /v1/keys
want 401 "no credential over TLS"

# --- refused at the handshake ---
tls - /v1/health
check "no client certificate: the handshake fails (curl exit $cst)" test "$cst" -ne 0
check "and no answer" test "$code" = 000
tls_opts="--tlsv1.2 --tls-max 1.2"
tls alice /v1/health
tls_opts=""
check "TLS 1.2: refused (curl exit $cst)" test "$cst" -ne 0 -a "$code" = 000
tls eve /v1/health
check "a certificate of another CA: refused (curl exit $cst)" test "$cst" -ne 0 -a "$code" = 000
check "a plain HTTP request on the TLS port gets no answer" \
	sh -c "! curl -s --max-time 5 -o /dev/null -w '%{http_code}' http://127.0.0.1:$port/v1/health | grep -q '^[1-5]'"
tls alice /v1/health
want 200 "still serving after the refusals"

# --- the cnf binding ---
tls alice /v1/keys "$T_bound"
want 200 "a bound credential with its certificate"
tls bob /v1/keys "$T_bound"
want 401 "a bound credential with another client certificate"
grep_out '"error":"certificate_mismatch"' "the reason is the certificate"
unix_get /v1/keys "$T_bound"
want 401 "a bound credential over the Unix socket"
grep_out '"error":"certificate_mismatch"' "refused for want of the certificate"
unix_get /v1/keys "$ADM"
want 200 "a bearer credential over the Unix socket"
tls_opts="-H Content-Type:application/json --data-binary {}"
tls alice /v1/credentials/refresh "$T_bound"
want 200 "a bound credential refreshed over TLS with its certificate"
T_fresh=$(sed -n 's/.*"credential":"\([^"]*\)".*/\1/p' "$out")
tls bob /v1/credentials/refresh "$T_bound"
want 401 "but not with another certificate"
tls_opts=""
tls alice /v1/keys "$T_fresh"
want 200 "the fresh credential works with the certificate"
tls bob /v1/keys "$T_fresh"
want 401 "and keeps the binding"

# --- enrollment over TLS binds the credential to the certificate ---
tls_opts="-H Content-Type:application/json --data-binary {\"secret\":\"$carol_secret\"}"
tls alice /v1/credentials/enroll
tls_opts=""
want 200 "carol enrolls over TLS"
T_carol=$(sed -n 's/.*"credential":"\([^"]*\)".*/\1/p' "$out")
expect 0 "the enrolled credential is bound to the certificate it came over" \
	"$K" credential verify "$T_carol" --cert "$c/alice.pem"
grep_out '"x5t#S256"' "it carries cnf"
tls alice /v1/keys "$T_carol"
want 200 "it works with that certificate"
tls bob /v1/keys "$T_carol"
want 401 "not with another"
unix_get /v1/keys "$T_carol"
want 401 "nor over the Unix socket"

# --- SIGHUP reloads the TLS files; broken ones are refused, the old kept ---
# server_cn: the CN of the certificate kosd presents now
server_cn() {
	curl -sv -o /dev/null --max-time 10 --cacert "$c/clients-ca.pem" --tlsv1.3 \
		--cert "$c/alice.pem" --key "$c/alice.key" "https://127.0.0.1:$port/v1/health" 2>&1 |
		sed -n 's/^\*  *subject: .*CN *= *\([^,;]*\).*/\1/p' | head -n 1
}
check "kosd presents its certificate" test "$(server_cn)" = server
cp "$c/server-next.pem" "$d/server.pem"
cp "$c/server-next.key" "$d/server.key"
kill -HUP "$kpid"
check "the reload is logged" wait_for 10 grep -q "TLS certificate .*server.pem, key and client CA .* reloaded" "$log"
check "SIGHUP: the new certificate is presented" test "$(server_cn)" = server-next
tls alice /v1/keys "$ADM"
want 200 "requests go on with the new certificate"
printf 'not a certificate\n' > "$d/server.pem"
kill -HUP "$kpid"
check "a broken certificate on SIGHUP is refused" wait_for 10 grep -q "TLS files not reloaded" "$log"
check "and the one loaded before is still presented" test "$(server_cn)" = server-next
cp "$c/server-next.pem" "$d/server.pem"

# --- the log ---
check "the certificate subject is logged per request" \
	grep -q 'client=alice route=keys .*status=200 .*cert="CN=alice,O=kos test"' "$log"
check "the refused one names bob's certificate" \
	grep -q 'route=keys .*status=401 .*cert="CN=bob,O=kos test"' "$log"
check "the peer is the TCP address" grep -q 'peer=tls:127.0.0.1:' "$log"
check "no credential and no key in the log" \
	sh -c "! grep -q -e '$T_bound' -e '$ADM' -e '$carol_secret' -e 'PRIVATE' '$log'"

stop_kosd
check "SIGTERM: exit 0" test "$st" -eq 0

# --- start-up refusals, each naming the file ---
cp "$d/kos.conf" "$d/good.conf"
listen_conf "$port" server.pem alice.key
cp "$c/alice.key" "$d/"
expect 1 "a key that does not match the certificate" "$D" --config "$d/kos.conf"
grep_err "key .*alice.key does not match the certificate .*server.pem" "the mismatch is named"
listen_conf "$port" missing.pem
expect 1 "a missing certificate" "$D" --config "$d/kos.conf"
grep_err "cert .*missing.pem: cannot read" "the missing file is named"
printf 'not a certificate\n' > "$d/junk.pem"
listen_conf "$port" server.pem server.key junk.pem
expect 1 "a client CA file without a certificate" "$D" --config "$d/kos.conf"
grep_err "client_ca .*junk.pem" "the client CA file is named"
sed -i "s|^listen = .*|listen = { unix = \"kosd.sock\"; tcp = \"127.0.0.1:$port\"; };|" "$d/kos.conf"
expect 1 "TCP without TLS" "$D" --config "$d/kos.conf"
grep_err "kos.conf:[0-9]*: listen: tcp: needs a tls group" "is refused with FILE:LINE"
check "no socket is left behind" test ! -e "$S"

finish kosd-tls
