#!/bin/sh
# The provider kos.so under the applications it is for, each reading a
# key-URI PEM file (kosctl key pem) as an ordinary key file, with the
# provider activated by an openssl.cnf (OPENSSL_CONF) whose kos section
# names kosd and the credential: Debian's nginx serving HTTPS with kosd's
# P-256 key, its workers forked after the master loaded the key; mutual TLS
# with curl's and Python's client key in kosd; kosd's ledger holding every
# signature nginx made; and what an attacker or an unlucky admin meets: a
# low-trust credential, a credential revoked under a running nginx.
. "${srcdir:-.}/tests/lib.sh"
set -e

kosd_env
unset OPENSSL_CONF # each program below is given its own, or none
t="$kos_tmp"
. "${srcdir:-.}/tests/provider-lib.sh"
prov_module provider-apps

NGINX=${NGINX:-/usr/sbin/nginx}
PY=/usr/bin/python3 # Debian's (a pyenv python3 earlier on PATH has its own OpenSSL)
for _p in "$NGINX" "$PY" "$(command -v curl || echo curl)"; do
	if ! [ -x "$_p" ]; then
		fail "$_p is not installed (scripts/quickstart installs it)"
		finish provider-apps
		exit 1
	fi
done

# every nginx this test starts is stopped at its end, however it ends
nginx_pids=""
nginx_stop_all() {
	for _np in $nginx_pids; do
		kill -TERM "$_np" 2>/dev/null || continue
		_i=0
		while kill -0 "$_np" 2>/dev/null && [ $_i -lt 100 ]; do
			sleep 0.05
			_i=$((_i + 1))
		done
		kill -KILL "$_np" 2>/dev/null || true
	done
	nginx_pids=""
}
trap 'nginx_stop_all; kos_cleanup' EXIT
trap 'exit 1' HUP INT TERM

# --- an installation (tests/provider-lib.sh): web is nginx's client, app
# the TLS clients', low at the low tier (the policy signs from medium up)
prov_clients="web app low"
prov_scope="sign:p256 sign:cli pubkey:*"
prov_install p256:ec-p256 cli:ec-p256
setup "a CA" prov_ca
setup "the server's certificate (p256)" issue p256 localhost \
	"subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth"
setup "the client's certificate (cli)" issue cli app "extendedKeyUsage=clientAuth"

# keypem NAME FILE: a key-URI PEM file for kosd's key NAME; kosctl's own
# when it has "key pem"
keypem() {
	if "$K" key help 2>&1 | grep -q '^  pem '; then
		ks admin key pem "$1" -o "$2"
	else
		printf -- '-----BEGIN KOS KEY URI-----\n%s\n-----END KOS KEY URI-----\n' \
			"$(printf 'kos:%s' "$1" | openssl base64 -A)" > "$2"
	fi
}
setup "web.key.pem names p256" keypem p256 "$t/web.key.pem"
setup "client.key.pem names cli" keypem cli "$t/client.key.pem"
# uri FILE: the URI a key-URI file carries
uri() { sed '1d;$d' "$1" | openssl base64 -d -A; }
check "web.key.pem carries kos:p256" test "$(uri "$t/web.key.pem")" = kos:p256

# cnf FILE CLIENT: an openssl.cnf activating the default provider, then
# kos with kosd's address and CLIENT's credential as section parameters
cnf() {
	cat > "$1" <<EOF
openssl_conf = openssl_init

[openssl_init]
providers = provider_sect

[provider_sect]
default = default_sect
kos = kos_sect

[default_sect]
activate = 1

[kos_sect]
module = $PROV
kos-server = unix:$S
kos-credential-file = $t/$2.cred
activate = 1
EOF
}
cnf "$t/app.cnf" app

# nginx_start NAME CLIENT: nginx in $t/NAME as kosd's client CLIENT, its
# master's pid in $npid, the port of HTTPS in $port and of mutual TLS in
# $mport, its error log $t/NAME/error.log; true once it listens
nginx_start() {
	_nd="$t/$1"
	mkdir -p "$_nd"
	cnf "$_nd/openssl.cnf" "$2"
	# two free ports, asked of the kernel
	set -- $("$PY" -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
	port=$1 mport=$2
	_user=""
	[ "$(id -u)" -ne 0 ] || _user="user root;"
	cat > "$_nd/nginx.conf" <<EOF
$_user
daemon off;
master_process on;
worker_processes 2;
pid $_nd/nginx.pid;
lock_file $_nd/nginx.lock;
error_log stderr info;
events { worker_connections 64; }
http {
	log_format kos "\$pid \$status";
	access_log $_nd/access.log kos;
	client_body_temp_path $_nd/body;
	proxy_temp_path $_nd/proxy;
	fastcgi_temp_path $_nd/fastcgi;
	uwsgi_temp_path $_nd/uwsgi;
	scgi_temp_path $_nd/scgi;
	default_type text/plain;
	ssl_protocols TLSv1.3;
	ssl_certificate $t/p256.crt;
	ssl_certificate_key $t/web.key.pem;
	server {
		listen 127.0.0.1:$port ssl reuseport;
		location / { return 200 "served by nginx with kosd's key\n"; }
	}
	server {
		listen 127.0.0.1:$mport ssl;
		ssl_verify_client on;
		ssl_client_certificate $t/ca.pem;
		location / { return 200 "\$ssl_client_s_dn\n"; }
	}
}
EOF
	if [ -n "$san" ]; then
		env LD_PRELOAD="$san" ASAN_OPTIONS="detect_leaks=0:${ASAN_OPTIONS:-}" \
			OPENSSL_CONF="$_nd/openssl.cnf" "$NGINX" -p "$_nd" -c "$_nd/nginx.conf" -e stderr \
			> "$_nd/error.log" 2>&1 &
	else
		OPENSSL_CONF="$_nd/openssl.cnf" "$NGINX" -p "$_nd" -c "$_nd/nginx.conf" -e stderr \
			> "$_nd/error.log" 2>&1 &
	fi
	npid=$!
	nginx_pids="$nginx_pids $npid"
	# the pid file is written once the sockets listen
	_i=0
	while ! test -s "$_nd/nginx.pid"; do
		if ! kill -0 "$npid" 2>/dev/null || [ $_i -ge 200 ]; then
			head -n 20 "$_nd/error.log" | sed 's/^/  nginx| /'
			return 1
		fi
		sleep 0.05
		_i=$((_i + 1))
	done
}
# get PORT [CURL ARGS]: curl, without the provider (no OPENSSL_CONF),
# fetches https://127.0.0.1:PORT/
get() {
	_gp=$1
	shift
	curl -sS --max-time 10 --cacert "$t/ca.pem" "$@" "https://127.0.0.1:$_gp/"
}
# signs CLIENT KEY: the signatures with KEY kosd's ledger allowed CLIENT;
# signed CLIENT KEY N: at least N (kosd writes its ledger every 100 ms:
# tools/kosd/obs.c)
signs() { "$K" ledger show | grep -E -c " $1 +sign +$2 +[a-z]+ +allowed " || true; }
signed() { test "$(signs "$1" "$2")" -ge "$3"; }
# alive: nginx's master runs and no worker died of a signal
alive() {
	kill -0 "$npid" 2>/dev/null && ! grep -q "exited on signal\|AddressSanitizer" "$_nd/error.log"
}

# ==================================================================== HTTPS
if check "nginx starts with ssl_certificate_key a key-URI file" nginx_start web web; then
	before=$(signs web p256)
	ok=0
	for i in 1 2 3 4 5 6 7 8 9 10; do
		run get "$port"
		[ "$status" -eq 0 ] && grep -qx "served by nginx with kosd's key" "$out" && ok=$((ok + 1))
	done
	# (which worker takes a connection is the kernel's choice: how many
	# did is said, not checked)
	check "curl gets the page 10 times of 10, from $(cut -d' ' -f1 "$t/web/access.log" | sort -u | wc -l) forked workers" \
		test "$ok" -eq 10
	wait_for 5 signed web p256 $((before + 10)) || true
	after=$(signs web p256)
	check "kosd's ledger has nginx's 10 signatures ($before, then $after)" \
		test "$((after - before))" -eq 10
	expect 0 "curl -v" get "$port" -v
	grep_err "SSL connection using TLSv1.3" "TLS 1.3"
	run get "$port" --tls-max 1.2
	check "TLS 1.2 is refused (ssl_protocols TLSv1.3)" test "$status" -ne 0

	# ============================================================ mutual TLS
	# curl 7.88 deadlocks in setlocale() at its start with the sanitizers'
	# runtimes preloaded, so a sanitizer build cannot run it with kos.so
	if [ -z "$san" ]; then
		expect 0 "curl with the provider: --key client.key.pem" env OPENSSL_CONF="$t/app.cnf" \
			curl -sS --max-time 10 --cacert "$t/ca.pem" --cert "$t/cli.crt" \
			--key "$t/client.key.pem" "https://127.0.0.1:$mport/"
		check "nginx verified the client certificate: CN=app" grep -qx "CN=app" "$out"
		check "with cli, as app (ledger)" wait_for 5 signed app cli 1
	else
		echo "skip - curl with the provider: curl deadlocks under a preloaded ASan runtime"
	fi
	run get "$mport"
	check "without a client certificate nginx refuses" \
		sh -c "test $status -ne 0 || grep -q '400 No required SSL certificate' '$out'"

	# ============================================================ Python
	expect 0 "Python ssl: load_cert_chain(cli.crt, client.key.pem)" with_prov \
		env OPENSSL_CONF="$t/app.cnf" "$PY" -c 'import socket, ssl, sys
ca, crt, key, port = sys.argv[1:]
ctx = ssl.create_default_context(cafile=ca)
ctx.load_cert_chain(crt, key)
with socket.create_connection(("127.0.0.1", int(port)), timeout=10) as raw:
    with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
        print(s.version())
        s.sendall(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
sys.stdout.write(data.decode())' "$t/ca.pem" "$t/cli.crt" "$t/client.key.pem" "$mport"
	grep_out "^TLSv1.3$" "over TLS 1.3"
	grep_out "HTTP/1.1 200" "the page"
	grep_out "^CN=app$" "with the client's DN"

	# ============================================================ reload
	# (nginx -s reload: the master reads its configuration and the key file
	# again and forks new workers)
	kill -HUP "$npid"
	check "nginx reloads: two new workers" wait_for 10 \
		sh -c "test \$(grep -c 'start worker process' '$t/web/error.log') -ge 4"
	expect 0 "curl gets the page from the new workers" get "$port"
	grep_out "served by nginx with kosd's key" "the page"

	# ============================================================ revoked
	setup "revoke web" ks admin credential revoke --client web
	run get "$port"
	check "once nginx's credential is revoked the handshake fails" test "$status" -ne 0
	check "nginx's log: credential revoked" wait_for 5 grep -q "credential revoked" "$t/web/error.log"
	check "nginx did not crash" alive
fi

# ==================================================================== low trust
if check "nginx starts with a low-tier client's credential" nginx_start low low; then
	run get "$port"
	check "the handshake fails (low tier, policy min_tier medium)" test "$status" -ne 0
	check "nginx's log: trust too low" wait_for 5 grep -q "trust too low" "$t/low/error.log"
	check "nginx did not crash" alive
fi

for cl in web low; do
	check "no credential of $cl in nginx's logs" sh -c \
		"! grep -q \"\$(cut -c1-40 '$t/$cl.cred')\" '$t/web/error.log' '$t/low/error.log'"
done
nginx_stop_all
kill "$kpid" 2>/dev/null || true
wait "$kpid" 2>/dev/null || true
kpid=""
finish provider-apps
