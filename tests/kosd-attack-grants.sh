#!/bin/sh
# Attacks on grants (DESIGN.md 4), each made through a running kosd with real
# requests: a client whose scope has a wildcard action refreshes to a share's
# scope; an administrator issues one, or registers a client with one; a
# credential whose scope is literally a share's (signed with the CA's own key,
# as one minted before grants were a kind would be) fetches a share; a grant
# opens another route, or fetches another share; a grant issued over TLS to a
# certificate-bound client is used on the Unix socket or with another
# certificate; a grant is used after its lifetime (no leeway); and kosd can be
# neither dumped nor traced by another user.
. "${srcdir:-.}/tests/lib.sh"
set -e

kosd_env
c="$kos_tmp/pki"

# --- a throwaway PKI (as tests/kosd-tls.sh): a client CA, the server's
# certificate and two clients ---
mkdir -p "$c"
check "a client CA" mkca clients-ca
check "the server's certificate" mkcert clients-ca server \
	"$(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth')"
check "client alice" mkcert clients-ca alice 'extendedKeyUsage=clientAuth'
check "client bob" mkcert clients-ca bob 'extendedKeyUsage=clientAuth'

# --- an installation where every client stands at medium (trust is the
# integrity factor alone, starting at 70) and a medium credential lives 5 s:
# a grant lives no longer than its client's credential would, so grants
# here expire after 5 s, while the leeway stays 30 s. Each grant is used
# right after the key request that issued it. ---
sed -e 's/prior = 60.0;/prior = 70.0;/' \
	-e 's/^    latency = 1.0;/    latency = 0.0;/' -e 's/^    usage = 1.0;/    usage = 0.0;/' \
	-e 's/^    anomaly = 2.0;/    anomaly = 0.0;/' -e 's/^    reputation = 1.0;/    reputation = 0.0;/' \
	-e 's/recovery = 1.0; };/recovery = 0.0; };/' \
	-e 's/medium = "5m"; low = "1m";/medium = "5s"; low = "5s";/' \
	"$P/default.policy" > "$kos_tmp/test.policy"
check "the test policy shortens medium lifetimes" grep -q 'medium = "5s"' "$kos_tmp/test.policy"
check "and keeps a 30 s leeway" grep -q 'leeway = "30s"' "$kos_tmp/test.policy"
expect 0 "the test policy is valid" "$K" policy check "$kos_tmp/test.policy"
expect 0 "init" "$K" init --dir "$d" --policy "$kos_tmp/test.policy"
export KOS_CONF="$d/kos.conf"
expect 0 "ca init" "$K" ca init
kid=$(cat "$out")
expect 0 "a data key" "$K" key create payments
# clients: two attackers with wildcard actions, a medium client, a client
# bound to alice's certificate, an administrator
expect 0 "client wild (*:*)" "$K" client add wild --scope '*:*'
cp "$out" "$kos_tmp/wild.secret"
expect 0 "client wildp (*:*payments*)" "$K" client add wildp --scope '*:*payments*'
cp "$out" "$kos_tmp/wildp.secret"
for who in med med2 med3; do
	expect 0 "client $who" "$K" client add "$who" --scope "key:payments decrypt:payments"
	cp "$out" "$kos_tmp/$who.secret"
done
expect 0 "client alice" "$K" client add alice --scope "key:payments decrypt:payments"
expect 0 "client admin" "$K" client add admin --scope "*:*"
cp "$out" "$kos_tmp/admin.secret"

cp "$c/server.pem" "$c/server.key" "$c/clients-ca.pem" "$d/"
listen_conf() {
	sed -i "s|^listen = .*|listen = { unix = \"kosd.sock\"; unix_mode = \"0600\"; tcp = \"127.0.0.1:$1\"; tls = { cert = \"server.pem\"; key = \"server.key\"; client_ca = \"clients-ca.pem\"; }; };|" "$d/kos.conf"
}

# tls WHO METHOD PATH [TOKEN [BODY]]: a request over TLS with WHO's
# certificate; the answer in $out, the status in $code.
tls() {
	_who=$1 _m=$2 _p=$3 _t=${4:-} _b=${5:-}
	set -- -s -o "$out" -w '%{http_code}' --max-time 10 --cacert "$c/clients-ca.pem" --tlsv1.3 \
		--cert "$c/$_who.pem" --key "$c/$_who.key" -X "$_m"
	[ -n "$_t" ] && set -- "$@" -H "Authorization: Bearer $_t"
	[ -n "$_b" ] && set -- "$@" -H 'Content-Type: application/json' --data-binary "$_b"
	code=$(curl "$@" "https://127.0.0.1:$port$_p" 2>"$err") || true
	[ -n "$code" ] || code=000
}

# Starts kosd on a free port (a few tries); ready when health answers over TLS.
start_kosd_tls() {
	for try in 1 2 3 4 5; do
		port=$((20000 + ($$ * 11 + try * 1237) % 40000))
		listen_conf "$port"
		: > "$log"
		"$D" --config "$d/kos.conf" 2>>"$log" &
		kpid=$!
		i=0
		while [ $i -lt 200 ]; do
			tls alice GET /v1/health
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

# enroll NAME: a fresh credential of NAME over the Unix socket, into $T
enroll() {
	api POST /v1/credentials/enroll "" "{\"secret\":\"$(cat "$kos_tmp/$1.secret")\"}"
	want 200 "enroll $1"
	T=$(field credential)
}

# grants: the share ids and grants of the last key request's answer, one
# "ID GRANT" line each, in $kos_tmp/refs
grants() {
	tr '{' '\n' < "$out" | sed -n 's/.*"share_id":"\([^"]*\)".*"grant":"\([^"]*\)".*/\1 \2/p' \
		> "$kos_tmp/refs"
}
ref() { sed -n "${1}p" "$kos_tmp/refs" | cut -d' ' -f"$2"; }

# b64u: base64url without padding of stdin; payload TOKEN: its claims
b64u() { basenc --base64url -w0 | tr -d '='; }
payload() {
	_p=$(printf '%s' "$1" | cut -d. -f2)
	case $((${#_p} % 4)) in 2) _p="$_p==" ;; 3) _p="$_p=" ;; esac
	printf '%s' "$_p" | basenc --base64url -d
}

check "kosd starts with both listeners" start_kosd_tls

# --- the share ids are predictable: a medium request shows them ---
enroll med
MED=$T
api POST /v1/keys/payments/request "$MED" '{}'
want 200 "medium: a key request"
grep_out '"delivery":"shares"' "medium receives share references"
grants
check "two share references (set narrow, k = 2)" test "$(wc -l < "$kos_tmp/refs")" -ge 2
id1=$(ref 1 1) g1=$(ref 1 2)
check "share ids of payments version 1" sh -c "echo '$id1' | grep -q '^kos-share:payments:1:narrow:'"
scope1="share:$(printf '%s' "$id1" | tr ':' '/')"
payload "$g1" > "$kos_tmp/g1.json"
check "the grant is of kind grant" grep -q '"kos_kind":"grant"' "$kos_tmp/g1.json"
check "the grant's scope is its share" grep -q "\"scope\":\"$scope1\"" "$kos_tmp/g1.json"
check "a bearer client's grant is bearer" sh -c "! grep -q cnf '$kos_tmp/g1.json'"

# --- wildcard clients refresh to a share's scope ---
for who in wild wildp; do
	enroll "$who"
	api POST /v1/credentials/refresh "$T" "{\"scope\":\"$scope1\"}"
	want 403 "$who: a refresh to $scope1 is refused"
	grep_out '"error":"refused"' "$who: the error is refused"
	grep_out 'out of scope' "$who: the reason is out of scope"
	grep_out 'share:' "$who: the message names the share item"
	check "$who: no credential comes back" sh -c "! grep -q '\"credential\"' '$out'"
	api POST /v1/credentials/refresh "$T" "{\"scope\":\"key:payments $scope1\"}"
	want 403 "$who: a share item hidden among others is refused"
	# the wildcard credential itself opens no share
	api POST /v1/shares/fetch "$T" "{\"share_id\":\"$id1\"}"
	want 403 "$who: its own credential fetches no share"
	grep_out '"error":"out_of_scope"' "$who: out_of_scope"
	check "$who: no share comes back" sh -c "! grep -q '\"share\"' '$out'"
done

# --- administrative issue and registration ---
enroll admin
ADM=$T
api POST /v1/admin/credentials "$ADM" "{\"client\":\"wild\",\"scope\":\"$scope1\"}"
want 400 "admin issue of a share scope is refused"
grep_out '"error":"bad_request"' "admin issue: bad_request"
grep_out 'share:' "admin issue: the share item is named"
check "admin issue: no credential comes back" sh -c "! grep -q '\"credential\"' '$out'"
expect 2 "kosctl credential issue with a share scope" "$K" credential issue wild --scope "$scope1"
grep_err 'share:' "kosctl names the share item"
api POST /v1/admin/clients "$ADM" "{\"name\":\"sharer\",\"scope\":\"$scope1\"}"
want 400 "a client registered with a share scope is refused"
grep_out '"error":"bad_request"' "client add: bad_request"
api GET /v1/admin/clients/sharer "$ADM"
want 404 "and no such client exists"
expect 1 "kosctl client add with a share scope" "$K" client add sharer2 --scope "decrypt:x $scope1"

# --- a credential whose scope literally is a share's, signed by
# the CA key itself (what a refresh minted before the fix) ---
cat > "$kos_tmp/p11sign.py" <<'EOF'
# p11sign.py MODULE TOKEN PIN LABEL: stdin signed with CKM_ECDSA over its SHA-256
import ctypes, hashlib, sys
mod, tok, pin, label = sys.argv[1:5]
data = sys.stdin.buffer.read()
L = ctypes.CDLL(mod)
UL = ctypes.c_ulong
class Attr(ctypes.Structure):
    _fields_ = [("type", UL), ("p", ctypes.c_void_p), ("n", UL)]
class Mech(ctypes.Structure):
    _fields_ = [("m", UL), ("p", ctypes.c_void_p), ("n", UL)]
def ok(rv, what):
    if rv != 0:
        sys.exit("%s: CKR 0x%x" % (what, rv))
ok(L.C_Initialize(None), "C_Initialize")
n = UL(0)
ok(L.C_GetSlotList(ctypes.c_ubyte(1), None, ctypes.byref(n)), "C_GetSlotList")
slots = (UL * n.value)()
ok(L.C_GetSlotList(ctypes.c_ubyte(1), slots, ctypes.byref(n)), "C_GetSlotList")
slot = None
for s in slots[: n.value]:
    info = ctypes.create_string_buffer(512)
    ok(L.C_GetTokenInfo(UL(s), info), "C_GetTokenInfo")
    if info.raw[:32].decode().rstrip() == tok:
        slot = s
if slot is None:
    sys.exit("no token " + tok)
h = UL(0)
ok(L.C_OpenSession(UL(slot), UL(4), None, None, ctypes.byref(h)), "C_OpenSession")
ok(L.C_Login(h, UL(1), pin.encode(), UL(len(pin))), "C_Login")
lab = ctypes.create_string_buffer(label.encode(), len(label))
cls = UL(3)
tmpl = (Attr * 2)(Attr(0, ctypes.cast(ctypes.byref(cls), ctypes.c_void_p), ctypes.sizeof(cls)),
                  Attr(3, ctypes.cast(lab, ctypes.c_void_p), len(label)))
ok(L.C_FindObjectsInit(h, tmpl, UL(2)), "C_FindObjectsInit")
key, got = UL(0), UL(0)
ok(L.C_FindObjects(h, ctypes.byref(key), UL(1), ctypes.byref(got)), "C_FindObjects")
L.C_FindObjectsFinal(h)
if got.value != 1:
    sys.exit("no key " + label)
mech = Mech(0x1041, None, 0)
ok(L.C_SignInit(h, ctypes.byref(mech), key), "C_SignInit")
sig = ctypes.create_string_buffer(128)
sl = UL(128)
ok(L.C_Sign(h, hashlib.sha256(data).digest(), UL(32), sig, ctypes.byref(sl)), "C_Sign")
sys.stdout.buffer.write(sig.raw[: sl.value])
EOF
# forge SCOPE: a token of kos's form for wild with SCOPE, signed by the CA key
forge() {
	_now=$(date +%s)
	_h=$(printf '{"alg":"ES256","typ":"JWT","kid":"%s"}' "$kid" | b64u)
	_c=$(printf '{"iss":"kos","sub":"wild","aud":"kos","iat":%s,"nbf":%s,"exp":%s,"auth_time":%s,"jti":"FFFFFFFFFFFFFFFFFFFFF%s","scope":"%s"}' \
		"$_now" "$_now" $((_now + 300)) "$_now" "$2" "$1" | b64u)
	_s=$(printf '%s.%s' "$_h" "$_c" | SOFTHSM2_CONF="$d/softhsm2.conf" python3 "$kos_tmp/p11sign.py" \
		/usr/lib/softhsm/libsofthsm2.so kos-ca "$(cat "$d/pins/ca.pin")" "kos-ca:$kid" | b64u)
	[ -n "$_s" ] && printf '%s.%s.%s' "$_h" "$_c" "$_s"
}
if python3 -c 'import ctypes' 2>/dev/null && [ -r /usr/lib/softhsm/libsofthsm2.so ]; then
	# the forger's signature is good: a token of normal form is accepted
	F_ok=$(forge "key:payments" A) || F_ok=""
	check "a token signed with the CA key" test -n "$F_ok"
	api GET /v1/keys "$F_ok"
	want 200 "kosd takes a token of normal form so signed"
	F=$(forge "$scope1" B) || F=""
	api POST /v1/shares/fetch "$F" "{\"share_id\":\"$id1\"}"
	check "a share-scoped credential fetches no share (status $code)" \
		sh -c "test '$code' = 401 || test '$code' = 403"
	grep_out '"error":"invalid_credential"' "it is no valid credential"
	check "no share comes back" sh -c "! grep -q '\"share\"' '$out'"
else
	echo "# skipped: the forged credential needs python3 ctypes and SoftHSM"
fi

# --- a grant opens no other route, and no other share ---
enroll med2
api POST /v1/keys/payments/request "$T" '{}'
want 200 "medium: a key request for fresh grants"
grants
id1=$(ref 1 1) g1=$(ref 1 2) id2=$(ref 2 1)
api POST /v1/shares/fetch "$g1" "{\"share_id\":\"$id1\"}"
want 200 "a grant fetches its own share"
grep_out '"share":"' "the share comes back"
api POST /v1/shares/fetch "$g1" "{\"share_id\":\"$id2\"}"
want 403 "a grant for one share fetches no other"
grep_out '"error":"out_of_scope"' "another share: out_of_scope"
api GET /v1/keys "$g1"
want 401 "a grant on GET /v1/keys is refused"
grep_out '"error":"invalid_credential"' "a grant on another route: invalid_credential"
api POST /v1/keys/payments/request "$g1" '{}'
want 401 "a grant on a key request is refused"
check "no share references come back" sh -c "! grep -q share_id '$out'"
api POST /v1/credentials/refresh "$g1" '{}'
want 401 "a grant is not refreshed"
check "no credential comes back" sh -c "! grep -q '\"credential\"' '$out'"
api POST /v1/admin/credentials "$g1" '{"client":"med"}'
want 401 "a grant on an admin route is refused"

# --- a grant of a certificate-bound client keeps the binding ---
expect 0 "a credential bound to alice's certificate" \
	"$K" credential issue alice --cert "$c/alice.pem"
ALICE=$(cat "$out")
tls alice POST /v1/keys/payments/request "$ALICE" '{}'
want 200 "alice: a key request over TLS"
grep_out '"delivery":"shares"' "alice receives share references"
grants
ta1=$(ref 1 1) ga1=$(ref 1 2)
payload "$ga1" > "$kos_tmp/ga1.json"
check "alice's grant carries cnf" grep -q '"cnf":{"x5t#S256":' "$kos_tmp/ga1.json"
api POST /v1/shares/fetch "$ga1" "{\"share_id\":\"$ta1\"}"
want 401 "alice's grant on the Unix socket (no certificate) is refused"
grep_out '"error":"certificate_mismatch"' "Unix socket: certificate_mismatch"
check "no share comes back" sh -c "! grep -q '\"share\"' '$out'"
tls bob POST /v1/shares/fetch "$ga1" "{\"share_id\":\"$ta1\"}"
want 401 "alice's grant with bob's certificate is refused"
grep_out '"error":"certificate_mismatch"' "another certificate: certificate_mismatch"
tls alice POST /v1/shares/fetch "$ga1" "{\"share_id\":\"$ta1\"}"
want 200 "alice's grant with alice's certificate fetches the share"

# --- a grant is dead at its exp, with no leeway ---
enroll med3
MED=$T
api POST /v1/keys/payments/request "$MED" '{}'
want 200 "medium: another key request"
grants
te1=$(ref 1 1) ge1=$(ref 1 2)
payload "$ge1" > "$kos_tmp/ge1.json"
iat=$(sed -n 's/.*"iat":\([0-9]*\).*/\1/p' "$kos_tmp/ge1.json")
exp=$(sed -n 's/.*"exp":\([0-9]*\).*/\1/p' "$kos_tmp/ge1.json")
check "the grant lives 5 s (exp $exp, iat $iat)" test "$((exp - iat))" -eq 5
api POST /v1/shares/fetch "$ge1" "{\"share_id\":\"$te1\"}"
want 200 "the grant fetches its share before its exp"
while [ "$(date +%s)" -lt "$((exp + 1))" ]; do sleep 0.2; done
api GET /v1/keys "$MED"
want 200 "the client's credential, inside its leeway, still works"
api POST /v1/shares/fetch "$ge1" "{\"share_id\":\"$te1\"}"
want 401 "the grant after its exp is refused"
grep_out '"error":"expired"' "after exp: expired"
check "no share comes back" sh -c "! grep -q '\"share\"' '$out'"

# --- the ledger names each refusal ---
check "kosd is still running" kill -0 "$kpid"
kill -TERM "$kpid"
wait "$kpid" || true
kpid=""
expect 0 "the ledger verifies" "$K" ledger verify
expect 0 "the ledger" "$K" ledger show
cp "$out" "$kos_tmp/ledger.txt"
lg() { grep -E -q "$1" "$kos_tmp/ledger.txt"; }
check "the refresh to a share, refused" lg " wild +refresh +- +- +refused +[0-9a-f]+ +refused$"
check "a wildcard credential on the share route, refused" \
	lg " wild +share_fetch +- +- +refused +[0-9a-f]+ +out of scope$"
check "a grant on another route, refused, naming its holder" \
	lg " med2 +keys +- +- +refused +[0-9a-f]+ +invalid credential$"
check "a grant for another share, refused" lg " med2 +share_fetch +- +- +refused +[0-9a-f]+ +out of scope$"
# refusals of no authenticated client are counted per source, the last named
check "the bound grant with another certificate, refused (a TLS peer's refusals)" \
	lg " - +unauthenticated +tls:[0-9.]+ +- +refused +[0-9a-f]+ +[0-9]+ refused, last: certificate mismatch on share_fetch$"
check "the expired grant, refused (the last refusal on the Unix socket)" \
	lg " - +unauthenticated +uid:[0-9]+ +- +refused +[0-9a-f]+ +[0-9]+ refused, last: expired on share_fetch$"

# --- kosd is not dumpable. /proc/PID files of a non-dumpable
# process belong to root whatever its uid, so kosd runs as nobody here (as
# root) or as the caller (otherwise) ---
sed -i 's|^listen = .*|listen = { unix = "kosd.sock"; unix_mode = "0600"; };|' "$d/kos.conf"
as=""
if [ "$(id -u)" -eq 0 ]; then
	if command -v setpriv >/dev/null 2>&1 && getent passwd nobody >/dev/null; then
		chown -R nobody "$d"
		chmod 755 "$kos_tmp"
		as="setpriv --reuid=nobody --regid=$(id -g nobody) --clear-groups --inh-caps=-all"
	else
		as="none"
	fi
fi
if [ "$as" != none ]; then
	$as "$D" --config "$d/kos.conf" 2>>"$log" &
	kpid=$!
	i=0
	while [ $i -lt 200 ]; do
		api GET /v1/health
		[ "$code" = 200 ] && break
		sleep 0.05
		i=$((i + 1))
	done
	want 200 "kosd serves as an unprivileged user"
	[ "$code" = 200 ] || tail -n 5 "$log" | sed 's/^/  log| /'
	uid=$(sed -n 's/^Uid:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$kpid/status")
	check "kosd runs as uid $uid, not root" test "$uid" -ne 0
	check "kosd's /proc files belong to root: not dumpable, not traceable" \
		test "$(stat -c %u "/proc/$kpid/status")" -eq 0
	kill -TERM "$kpid"
	wait "$kpid" || true
	kpid=""
else
	echo "# skipped: the dumpable check needs setpriv and a nobody user"
fi

finish kosd-attack-grants
