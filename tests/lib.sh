# Helpers for the shell tests. Each check is one counted case; the test ends
# with the "kos-tests: NAME passed=P failed=F" line the test command totals.
set -u

kos_passed=0
kos_failed=0
kos_tmp=$(mktemp -d "${TMPDIR:-/tmp}/kos-sh.XXXXXX")
trap 'rm -rf "$kos_tmp"' EXIT
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
# caller, output to $out and $err; sets $status.
run() {
	set +e
	"$@" >"$out" 2>"$err"
	status=$?
	set -e
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

finish() {
	echo "kos-tests: $1 passed=$kos_passed failed=$kos_failed"
	[ "$kos_failed" -eq 0 ]
}
