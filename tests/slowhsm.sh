#!/bin/sh
# slowhsm.so (tests/slowhsm/slowhsm.c), the PKCS#11 module that stands for a
# network HSM or a failing token in front of SoftHSM: through pkcs11-tool
# and PyKCS11 on a SoftHSM token made here, its delay (a lower bound only:
# no test asserts how fast anything is), that concurrent callers wait at
# once, injected errors and the session after them, refused configurations;
# then kosd with its signer token behind slowhsm: signatures checked by
# openssl, and with C_Sign failing an error answer while kosd keeps serving.
. "${srcdir:-.}/tests/lib.sh"
set -e

kosd_env
t="$kos_tmp"

SLOW=""
for m in "${KOS_SLOWHSM:-}" "${top_builddir:-.}/tests/slowhsm/.libs/slowhsm.so"; do
	[ -n "$m" ] && [ -f "$m" ] && { SLOW=$(readlink -f "$m"); break; }
done
if [ -z "$SLOW" ]; then
	fail "slowhsm.so is not built (make check builds it)"
	finish slowhsm
	exit 1
fi
# Debian's python3 (PyKCS11): a python3 earlier on PATH (pyenv) may lack it
PY=/usr/bin/python3
SOFTHSM=/usr/lib/softhsm/libsofthsm2.so # slowhsm's default (kos/devinit.h)
for n in pkcs11-tool softhsm2-util openssl "$PY"; do
	command -v "$n" >/dev/null 2>&1 || fail "$n is not installed (scripts/quickstart installs it)"
done
[ "$kos_failed" -eq 0 ] || { finish slowhsm; exit 1; }

# A module built with --enable-sanitizers needs their runtimes loaded first
# in the programs that load it and are not built so (pkcs11-tool, python3),
# with leak reports off: their leaks are not slowhsm's. kosd and kosctl are
# built with them and load it as they are.
san=""
for _l in $(readelf -d "$SLOW" 2>/dev/null | sed -n 's/.*NEEDED.*\[\(lib[a-z]*san\.so[.0-9]*\)\]/\1/p'); do
	_p=$(ldconfig -p | awk -v l="$_l" '$1 == l { print $NF; exit }')
	[ -n "$_p" ] && san="$san${san:+ }$_p"
done
# consumer CMD...: CMD with the sanitizers' runtimes when slowhsm has them
consumer() {
	if [ -n "$san" ]; then
		env LD_PRELOAD="$san" ASAN_OPTIONS="detect_leaks=0:${ASAN_OPTIONS:-}" "$@"
	else
		"$@"
	fi
}
pt() { consumer pkcs11-tool --module "$SLOW" "$@"; }
# slowpy MODE ARGS...: $t/slow.py (below) on slowhsm
slowpy() { consumer "$PY" "$t/slow.py" "$SLOW" "$@"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
unset KOS_SLOWHSM_MODULE KOS_SLOWHSM_DELAY KOS_SLOWHSM_FAIL

# ==================================================== a SoftHSM token of our own
mkdir "$t/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
	"$t/tokens" > "$t/softhsm2.conf"
SOFTHSM2_CONF="$t/softhsm2.conf"
export SOFTHSM2_CONF
PIN=87654321
setup "a SoftHSM token" softhsm2-util --init-token --free --label slow1 --so-pin 12345678 \
	--pin "$PIN"
printf 'a message for a slow HSM' > "$t/msg"
openssl dgst -sha256 -binary "$t/msg" > "$t/msg.sha256"

# sign OUT: a P-256 signature (DER, as openssl wants it) of msg's digest
sign() {
	pt --login --pin "$PIN" --sign -m ECDSA --id 01 --signature-format openssl \
		-i "$t/msg.sha256" -o "$1"
}

# The PyKCS11 half: "sign N" signs msg's digest N times in one session and
# prints "ok" or the error's name for each, then "ms=" the time the N
# signatures took; "threads" calls C_GetInfo in one thread and, 0.3 s
# later, C_GetSlotList in a second (ctypes releases the GIL in foreign
# calls) and prints the order in which they returned.
cat > "$t/slow.py" <<'EOF'
import ctypes, sys, threading, time
import PyKCS11

mod, mode = sys.argv[1], sys.argv[2]
if mode == "sign":
    n, pin, digest = int(sys.argv[3]), sys.argv[4], open(sys.argv[5], "rb").read()
    lib = PyKCS11.PyKCS11Lib()
    lib.load(mod)
    s = lib.openSession(lib.getSlotList(tokenPresent=True)[0])
    s.login(pin)
    key = s.findObjects([(PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY)])[0]
    mech = PyKCS11.Mechanism(PyKCS11.CKM_ECDSA, None)
    start = time.monotonic()
    for i in range(n):
        try:
            s.sign(key, digest, mech)
            print("ok")
        except PyKCS11.PyKCS11Error as e:
            print(PyKCS11.CKR.get(e.value, hex(e.value)))
    print("ms=%d" % ((time.monotonic() - start) * 1000))
elif mode == "threads":
    so = ctypes.CDLL(mod)
    fl = ctypes.POINTER(ctypes.c_void_p)()
    so.C_GetFunctionList(ctypes.byref(fl))
    # CK_FUNCTION_LIST: the version, then C_Initialize, C_Finalize,
    # C_GetInfo, C_GetFunctionList, C_GetSlotList, ... (pointer-aligned)
    rv_fn = lambda i, *args: ctypes.CFUNCTYPE(ctypes.c_ulong, *args)(fl[i])
    c_init, c_fini = rv_fn(1, ctypes.c_void_p), rv_fn(2, ctypes.c_void_p)
    c_info = rv_fn(3, ctypes.c_void_p)
    c_slots = rv_fn(5, ctypes.c_ubyte, ctypes.c_void_p, ctypes.POINTER(ctypes.c_ulong))
    if c_init(None) != 0:
        sys.exit("C_Initialize failed")
    order, info, count = [], ctypes.create_string_buffer(256), ctypes.c_ulong(0)
    def a():
        order.append("C_GetInfo=%d" % c_info(info))
    def b():
        time.sleep(0.3)
        order.append("C_GetSlotList=%d" % c_slots(1, None, ctypes.byref(count)))
    ts = [threading.Thread(target=a), threading.Thread(target=b)]
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    c_fini(None)
    print(" ".join(order))
EOF

# ==================================================== through slowhsm
setup "a P-256 key through slowhsm" pt --login --pin "$PIN" --keypairgen \
	--key-type EC:prime256v1 --id 01 --label sig
expect 0 "pkcs11-tool lists the slots through slowhsm" pt -L
grep_out "token label *: slow1" "the token is listed"
# the public key from SoftHSM itself, so that the signature is checked
# against what the real token holds (and pkcs11-tool 0.23 reads an EC
# public key after freeing it, which AddressSanitizer stops when preloaded)
setup "the public key" pkcs11-tool --module "$SOFTHSM" --read-object --type pubkey --id 01 \
	-o "$t/pub.der"
expect 0 "pkcs11-tool signs through slowhsm" sign "$t/msg.sig"
expect 0 "openssl verifies the signature" openssl pkeyutl -verify -pubin -keyform DER \
	-inkey "$t/pub.der" -in "$t/msg.sha256" -sigfile "$t/msg.sig"

# --- the delay ---
KOS_SLOWHSM_DELAY=C_Sign=20000,*=0
export KOS_SLOWHSM_DELAY
t0=$(now_ms)
n=0
for i in 1 2 3 4 5 6 7 8 9 10; do
	run sign "$t/sig.$i"
	[ "$status" -eq 0 ] && n=$((n + 1))
done
ms=$(($(now_ms) - t0))
check "10 signatures with C_Sign at 20 ms ($n made)" test "$n" -eq 10
# pkcs11-tool's own start-up may take most of it; the one-process count
# below is what shows the delay itself
check "they took at least 200 ms ($ms ms)" test "$ms" -ge 200
run slowpy sign 10 "$PIN" "$t/msg.sha256"
check "10 signatures in one PyKCS11 session" test "$status" -eq 0 -a "$(grep -c '^ok$' "$out")" -eq 10
ms=$(sed -n 's/^ms=//p' "$out")
check "took at least 200 ms in C_Sign alone (${ms:-?} ms; PyKCS11 calls it twice per signature)" \
	test "${ms:-0}" -ge 200

# A network HSM serves several sessions at once: a caller is not held
# behind another's delay. C_GetSlotList (0.2 s) starts 0.3 s into
# C_GetInfo (1.5 s): it returns first unless one call waits for the other.
KOS_SLOWHSM_DELAY=C_GetInfo=1500000,C_GetSlotList=200000
run slowpy threads
check "two threads wait their delays at once" test "$status" -eq 0
grep_out "^C_GetSlotList=0 C_GetInfo=0$" "the shorter call returned first"
unset KOS_SLOWHSM_DELAY

# --- injected errors ---
# pkcs11-tool retries a failed C_Sign with C_SignUpdate (which SoftHSM
# refuses for CKM_ECDSA): both fail as a broken token's would
KOS_SLOWHSM_FAIL=C_Sign=CKR_DEVICE_ERROR@1,C_SignUpdate=CKR_DEVICE_ERROR@1
export KOS_SLOWHSM_FAIL
run sign "$t/fail.sig"
check "with C_Sign failing, pkcs11-tool's signature fails" test "$status" -ne 0
grep_err "CKR_DEVICE_ERROR" "with CKR_DEVICE_ERROR"
expect 0 "the other functions still work" pt -L
# PyKCS11 asks C_Sign for the length first: every third call fails, so
# every second signature fails at its length query, which leaves the
# operation running in SoftHSM; slowhsm ends it, as the standard says an
# error does, and the next C_SignInit on the session succeeds
KOS_SLOWHSM_FAIL=C_Sign=CKR_FUNCTION_FAILED@3
run slowpy sign 4 "$PIN" "$t/msg.sha256"
check "every third C_Sign fails in one session" test "$status" -eq 0
check "signatures alternate: made, refused, made, refused" \
	test "$(grep -v '^ms=' "$out" | tr '\n' ' ')" = "ok CKR_FUNCTION_FAILED ok CKR_FUNCTION_FAILED "
KOS_SLOWHSM_FAIL="*=CKR_TOKEN_NOT_PRESENT@1"
run pt -L
check "'*' fails every function, C_Initialize too" test "$status" -ne 0
grep_err "CKR_TOKEN_NOT_PRESENT" "with the error named"
unset KOS_SLOWHSM_FAIL

# --- refused configurations: C_Initialize answers CKR_ARGUMENTS_BAD after
# one line "slowhsm: why" ---
# bad VAR VALUE WHY: VAR=VALUE is refused and the line says WHY
bad() {
	run consumer env "$1=$2" pkcs11-tool --module "$SLOW" -L
	check "$1='$2' is refused" test "$status" -ne 0
	grep_err "CKR_ARGUMENTS_BAD" "$1='$2': C_Initialize says CKR_ARGUMENTS_BAD"
	check "$1='$2': one line says why ($3)" \
		test "$(grep -c '^slowhsm: ' "$err")" -eq 1 -a -n "$(grep "^slowhsm: $1: .*$3" "$err")"
}
bad KOS_SLOWHSM_DELAY "C_Sign=fast" "'fast' is not a delay"
bad KOS_SLOWHSM_DELAY "C_Sign=-1" "'-1' is not a delay"
bad KOS_SLOWHSM_DELAY "C_Sign=60000001" "not a delay"
bad KOS_SLOWHSM_DELAY "C_Sing=2000" "'C_Sing' is not a PKCS#11 function"
bad KOS_SLOWHSM_DELAY "C_Sign=2000,C_Sign=3000" "C_Sign is given twice"
bad KOS_SLOWHSM_DELAY "C_Sign=2000," "an empty entry"
bad KOS_SLOWHSM_DELAY "C_Sign" "is not NAME=VALUE"
bad KOS_SLOWHSM_DELAY "C_GetFunctionList=10" "runs before the configuration"
bad KOS_SLOWHSM_FAIL "C_Sign=CKR_DEVICE_ERROR" "is not CKR_NAME@N"
bad KOS_SLOWHSM_FAIL "C_Sign=CKR_OK@1" "'CKR_OK' is not an error"
bad KOS_SLOWHSM_FAIL "C_Sign=CKR_DEVICE_ERROR@0" "'0' is not a count"
bad KOS_SLOWHSM_MODULE "$t/none.so" "none.so"
bad KOS_SLOWHSM_MODULE "$SLOW" "is slowhsm itself"

# ==================================================== kosd on slowhsm
# trust = the integrity factor alone, starting at 90: a slow token must not
# move the client's trust while this test looks at the token
sed -e 's/prior = 60.0;/prior = 90.0;/' \
	-e 's/^    latency = 1.0;/    latency = 0.0;/' -e 's/^    usage = 1.0;/    usage = 0.0;/' \
	-e 's/^    anomaly = 2.0;/    anomaly = 0.0;/' -e 's/^    reputation = 1.0;/    reputation = 0.0;/' \
	-e 's/recovery = 1.0; };/recovery = 0.0; };/' "$P/default.policy" > "$t/test.policy"
unset SOFTHSM2_CONF # kos.conf's environment names the installation's
setup "init" "$K" init --dir "$d" --policy "$t/test.policy"
# the signer token's module: slowhsm (forwarding to SoftHSM, which kosd
# also loads directly for every other token)
sed -i "s|{ name = \"signer\"; role = \"signer\"; module = \"[^\"]*\";|{ name = \"signer\"; role = \"signer\"; module = \"$SLOW\";|" \
	"$d/kos.conf"
check "kos.conf names slowhsm for the signer token" grep -q "name = \"signer\".*module = \"$SLOW\"" "$d/kos.conf"
export KOS_CONF="$d/kos.conf"
setup "ca init" "$K" ca init
setup "the first admin" "$K" client add admin --scope "*:*"
cp "$out" "$t/admin.secret"
expect 0 "kosctl makes a signing key through slowhsm" "$K" key create sig --type ec-p256

KOS_SLOWHSM_DELAY=C_Sign=300000
export KOS_SLOWHSM_DELAY
check "kosd starts with a 300 ms C_Sign" start_kosd
run ks admin credential enroll - < "$t/admin.secret"
setup "enroll admin" test "$status" -eq 0
t0=$(now_ms)
run ks admin key sign sig --alg ecdsa-der < "$t/msg"
ms=$(($(now_ms) - t0))
check "kosd signs through slowhsm" test "$status" -eq 0
cp "$out" "$t/kosd.sig"
check "the signature took the token's 300 ms at least ($ms ms)" test "$ms" -ge 300
expect 0 "the public key through kosd" ks admin key pubkey sig
cp "$out" "$t/sig.pem"
expect 0 "openssl verifies kosd's signature" openssl dgst -sha256 -verify "$t/sig.pem" \
	-signature "$t/kosd.sig" "$t/msg"
stop_kosd
check "kosd stops cleanly (exit $st)" test "$st" -eq 0

# --- a slow signature holds up nothing else ---
# the signature goes to a worker thread: while the token takes 3 s over
# it, the loop answers health at once (a single loop would answer only
# after the signature, by when the signing kosctl would have finished)
KOS_SLOWHSM_DELAY=C_Sign=3000000
export KOS_SLOWHSM_DELAY
check "kosd starts with a 3 s C_Sign" start_kosd
ks admin key sign sig --alg ecdsa-der < "$t/msg" > "$t/slow.sig" 2> "$t/slow.err" &
spid=$!
sleep 1
api GET /v1/health
want 200 "health while a signature waits for the token"
check "health was answered while the signature was still being made" kill -0 "$spid"
set +e
wait "$spid"
st=$?
set -e
check "the slow signature is made all the same (exit $st)" test "$st" -eq 0 -a -s "$t/slow.sig"
stop_kosd
check "kosd stops cleanly again (exit $st)" test "$st" -eq 0
unset KOS_SLOWHSM_DELAY

# --- the signer token failing ---
KOS_SLOWHSM_FAIL=C_Sign=CKR_DEVICE_ERROR@1
export KOS_SLOWHSM_FAIL
check "kosd starts with C_Sign failing" start_kosd
for i in 1 2; do
	run ks admin key sign sig --alg ecdsa-der < "$t/msg"
	check "signature $i: kosd answers an error" test "$status" -eq 1
	check "signature $i: no signature is printed" test ! -s "$out"
	grep_err "(unavailable).*token signer: C_Sign: CKR_DEVICE_ERROR" \
		"signature $i: the token and its error are named"
done
check "kosd still runs" kill -0 "$kpid"
api GET /v1/health
want 200 "kosd still answers /v1/health"
expect 0 "and other requests (the public key)" ks admin key pubkey sig
cmp -s "$out" "$t/sig.pem" && pass "the same public key" || fail "the same public key"
check "kosd logs both refusals as 503" test "$(grep -c ' route=sign .* status=503 ' "$log")" -eq 2
stop_kosd
check "kosd stops cleanly after the failures (exit $st)" test "$st" -eq 0
unset KOS_SLOWHSM_FAIL

finish slowhsm
