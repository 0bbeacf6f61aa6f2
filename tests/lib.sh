# Helpers for the shell tests. Each check is one counted case; the test ends
# with the "kos-tests: NAME passed=P failed=F" line the test command totals.
set -u

kos_passed=0
kos_failed=0
kos_tmp=$(mktemp -d "${TMPDIR:-/tmp}/kos-sh.XXXXXX")
kpid="" # a kosd a test started: killed at exit if still running
kos_cleanup() {
	[ -n "$kpid" ] && kill -KILL "$kpid" 2>/dev/null
	rm -rf "$kos_tmp"
}
trap kos_cleanup EXIT
out="$kos_tmp/out"
err="$kos_tmp/err"

pass() { kos_passed=$((kos_passed + 1)); echo "ok - $1"; }
fail() {
	kos_failed=$((kos_failed + 1))
	echo "FAIL - $1"
	[ -s "$out" ] && head -n 20 "$out" | sed 's/^/  out| /'
	[ -s "$err" ] && head -n 20 "$err" | sed 's/^/  err| /'
	return 0
}

# run CMD...: runs CMD with stdin from /dev/null unless redirected by the
# caller, output to $out and $err; sets $status. The caller's set -e is
# kept as it was.
run() {
	case $- in *e*) _run_e=1 ;; *) _run_e=0 ;; esac
	set +e
	"$@" >"$out" 2>"$err"
	status=$?
	[ "$_run_e" -eq 0 ] || set -e
}

# expect STATUS DESCRIPTION CMD...: runs CMD and checks its exit status.
expect() {
	want=$1
	desc=$2
	shift 2
	run "$@"
	if [ "$status" -eq "$want" ]; then
		pass "$desc"
	else
		fail "$desc (exit $status, expected $want)"
	fi
}

# grep_out/grep_err PATTERN DESCRIPTION: the last command's output matches.
grep_out() { if grep -q -e "$1" "$out"; then pass "$2"; else fail "$2 (no '$1' in output)"; fi; }
grep_err() { if grep -q -e "$1" "$err"; then pass "$2"; else fail "$2 (no '$1' in errors)"; fi; }
check() {
	desc=$1
	shift
	if "$@"; then pass "$desc"; else fail "$desc"; fi
}

# flip_byte FILE OFFSET: the byte at OFFSET (from 0) of FILE with its lowest
# bit inverted, so that it changes whatever it was (writing a fixed byte
# leaves it as it was when it already held that byte: one run in 256).
flip_byte() {
	_b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	# shellcheck disable=SC2059
	printf "$(printf '\\%03o' $((_b ^ 1)))" | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}

# setup DESCRIPTION CMD...: a step that prepares a test (an installation, a
# client, an enrollment), not a claim about the product: nothing is counted
# when it works; when it fails, why is printed and one failure counted, so a
# broken setup still fails the test. Output in $out and $err, as run.
setup() {
	desc=$1
	shift
	run "$@"
	[ "$status" -eq 0 ] || fail "setup: $desc (exit $status)"
}

# wait_for SECONDS CMD...: runs CMD every 50 ms until it succeeds (true) or
# SECONDS have passed (false): a condition awaited with a deadline, never a
# fixed sleep.
wait_for() {
	_wf_end=$(($(date +%s) + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -le "$_wf_end" ] || return 1
		sleep 0.05
	done
}

# softhsm_leaks_ignored: LeakSanitizer skips SoftHSM 2.6.1's own leaks (in
# C_SignInit, see tests/test-signer.c); leaks of kos are still reported.
softhsm_leaks_ignored() {
	printf 'leak:libsofthsm2.so\n' >"$kos_tmp/lsan.supp"
	LSAN_OPTIONS="suppressions=$kos_tmp/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
	ASAN_OPTIONS="fast_unwind_on_malloc=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
	export LSAN_OPTIONS ASAN_OPTIONS
}

# --- kosd over its Unix socket $S (kosd binary $D, installation $d, log $log)

# kosd_env: the names a test of kosd uses: K (kosctl), D (kosd), P (the
# policies), d (the installation), S (kosd's socket in it), log (kosd's
# standard error); no client setting of the caller's environment applies,
# and SoftHSM's own leaks are not reported.
kosd_env() {
	K=${KOSCTL:-./kosctl}
	D=${KOSD:-./kosd}
	P=${KOS_POLICY_DIR:-${srcdir:-.}/policy}
	d="$kos_tmp/inst"
	S="$d/kosd.sock"
	log="$kos_tmp/kosd.log"
	unset KOS_CONF KOS_SERVER KOS_CREDENTIAL KOS_CREDENTIAL_FILE
	softhsm_leaks_ignored
}

# --- a throwaway PKI in $c (set c before use) ---
ossl() { openssl "$@" >>"$kos_tmp/openssl.log" 2>&1; }
# mkca NAME: a CA certificate $c/NAME.pem and its key
mkca() {
	ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
		-subj "/O=kos test/CN=$1" -keyout "$c/$1.key" -out "$c/$1.pem" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign"
}
# mkcert CA NAME EXTENSIONS: $c/NAME.pem signed by CA, with the extensions
mkcert() {
	printf '%s\n' "$3" > "$c/$2.ext"
	ossl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-subj "/O=kos test/CN=$2" -keyout "$c/$2.key" -out "$c/$2.csr"
	ossl x509 -req -in "$c/$2.csr" -CA "$c/$1.pem" -CAkey "$c/$1.key" -CAcreateserial \
		-days 1 -extfile "$c/$2.ext" -out "$c/$2.pem"
}

# ks CLIENT ARGS...: kosctl through kosd with the credential file
# $kos_tmp/CLIENT.cred
ks() {
	_c=$1
	shift
	"$K" --server "unix:$S" --credential-file "$kos_tmp/$_c.cred" "$@"
}

# api METHOD PATH [TOKEN [BODY]]: the answer in $out, the status in $code.
# A BODY starting with @ names a file.
api() {
	_m=$1 _p=$2 _t=${3:-} _b=${4:-}
	set -- -s -o "$out" -w '%{http_code}' --max-time 20 --unix-socket "$S" -X "$_m"
	[ -n "$_t" ] && set -- "$@" -H "Authorization: Bearer $_t"
	[ -n "$_b" ] && set -- "$@" -H 'Content-Type: application/json' --data-binary "$_b"
	code=$(curl "$@" "http://kos$_p" 2>"$err") || true
	[ -n "$code" ] || code=000
}
# want CODE DESCRIPTION: the last answer's status
want() { if [ "$code" = "$1" ]; then pass "$2"; else fail "$2 (status $code, expected $1)"; fi; }
# field NAME: a string member of the last (compact JSON) answer
field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" "$out"; }

# start_kosd: starts kosd on $d/kos.conf (pid in $kpid); true once its
# health route answers (the answer left in $out), false when it exits or
# stays silent for 10 s.
start_kosd() {
	"$D" --config "$d/kos.conf" 2>>"$log" &
	kpid=$!
	i=0
	while [ $i -lt 200 ]; do
		api GET /v1/health
		[ "$code" = 200 ] && return 0
		kill -0 "$kpid" 2>/dev/null || return 1
		sleep 0.05
		i=$((i + 1))
	done
	return 1
}

# stop_kosd: SIGTERM to the kosd start_kosd started, waited for: its exit
# status in $st, $kpid cleared.
stop_kosd() {
	kill -TERM "$kpid"
	set +e
	wait "$kpid"
	st=$?
	set -e
	kpid=""
}

finish() {
	echo "kos-tests: $1 passed=$kos_passed failed=$kos_failed"
	[ "$kos_failed" -eq 0 ]
}
