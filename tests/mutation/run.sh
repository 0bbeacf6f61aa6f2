#!/bin/sh
# The mutation check (make mutate): breaks kos's security decisions one at a
# time, as listed in tests/mutation/mutations.list (its header says how to
# add one), and runs the tests that must notice.
#
#   run.sh SRCDIR BUILDDIR LIST [NAME...]
#
# For each mutation (or only those NAMEd): the original text must occur
# exactly once in its file, else the mutation is "broken"; it is replaced in
# the source tree, the build dir is rebuilt incrementally (a mutant that does
# not build is "broken" too), its tests run with make check TESTS=..., and
# the file is restored (also on interrupt). A mutation is "killed" when a
# test fails a counted check (a "kos-tests: NAME passed=P failed=F" line with
# F > 0 in the test's log); tests that pass, or that fail only by crashing
# or without their tally line, leave it "survived". One line per mutation,
# then "N mutations: N killed, N survived"; exit 1 if any survived or broke.
set -u

if [ $# -lt 3 ]; then
	echo "usage: run.sh SRCDIR BUILDDIR LIST [NAME...]" >&2
	exit 2
fi
src=$(cd "$1" && pwd)
bld=$(cd "$2" && pwd)
list=$3
shift 3
only="$*"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kos-mutate.XXXXXX")
make=${MAKE:-make}
jobs=${MUTATE_JOBS:-2}

cur="" # the file being mutated, restored at exit
restore() {
	if [ -n "$cur" ]; then
		cp "$tmp/orig" "$src/$cur" && cur=""
	fi
}
trap 'restore; rm -rf "$tmp"' EXIT
trap 'restore; rm -rf "$tmp"; trap - EXIT; exit 130' INT TERM HUP

total=0 killed=0 survived=0 broken=0
: > "$tmp/results"
result() { # NAME VERDICT DETAIL
	printf '%-34s %-9s %s\n' "$1" "$2" "$3" >> "$tmp/results"
	printf 'mutate: %-34s %-9s %s\n' "$1" "$2" "$3" >&2
}

# count FILE: how often $FROM occurs in FILE (literally, per line)
count() {
	FROM=$from awk 'BEGIN { f = ENVIRON["FROM"]; n = 0 }
		{ s = $0; while ((i = index(s, f)) > 0) { n++; s = substr(s, i + length(f)) } }
		END { print n }' "$1"
}

# mutate FILE OUT: FILE with $FROM replaced by $TO (once), into OUT
mutate() {
	FROM=$from TO=$to awk 'BEGIN { f = ENVIRON["FROM"]; t = ENVIRON["TO"] }
		{ if ((i = index($0, f)) > 0) $0 = substr($0, 1, i - 1) t substr($0, i + length(f)); print }' \
		"$1" > "$2"
}

one() {
	total=$((total + 1))
	if [ -z "$file" ] || [ -z "$from" ] || [ -z "$tests" ]; then
		broken=$((broken + 1))
		result "$name" broken "needs file, from and tests"
		return
	fi
	if [ ! -f "$src/$file" ]; then
		broken=$((broken + 1))
		result "$name" broken "no file $file"
		return
	fi
	n=$(count "$src/$file")
	if [ "$n" -ne 1 ]; then
		broken=$((broken + 1))
		result "$name" broken "the original text occurs $n times in $file"
		return
	fi
	cp "$src/$file" "$tmp/orig"
	cur=$file
	mutate "$tmp/orig" "$src/$file"
	if ! (cd "$bld" && $make -s -j"$jobs" >"$tmp/build.log" 2>&1); then
		restore
		broken=$((broken + 1))
		result "$name" broken "the mutant does not build: $(grep -m1 'error' "$tmp/build.log")"
		return
	fi
	for t in $tests; do rm -f "$bld/${t%.sh}.log" "$bld/${t%.sh}.trs"; done
	(cd "$bld" && $make -s -j"$jobs" check TESTS="$tests" >"$tmp/check.log" 2>&1)
	rc=$?
	restore
	by=""
	for t in $tests; do
		if grep -q '^kos-tests: .* failed=[1-9][0-9]*$' "$bld/${t%.sh}.log" 2>/dev/null; then
			by="$by ${t#tests/}($(sed -n 's/^kos-tests: .* failed=\([0-9]*\)$/\1/p' \
				"$bld/${t%.sh}.log" | head -n 1))"
		fi
	done
	if [ -n "$by" ]; then
		killed=$((killed + 1))
		result "$name" killed "by$by"
	elif [ "$rc" -ne 0 ]; then
		survived=$((survived + 1))
		result "$name" survived "tests failed only by a crash or without a tally"
		tail -n 5 "$tmp/check.log" | sed 's/^/mutate:   | /' >&2
	else
		survived=$((survived + 1))
		result "$name" survived "$tests passed"
	fi
}

flush() {
	if [ -n "$name" ]; then
		case " $only " in
		"  " | *" $name "*) one ;;
		esac
	fi
	name="" file="" from="" to="" tests=""
}

name="" file="" from="" to="" tests=""
while IFS= read -r line || [ -n "$line" ]; do
	case $line in
	"#"*) continue ;;
	"") flush ;;
	name:*) name=$(printf '%s' "${line#name:}" | sed 's/^[[:space:]]*//') ;;
	file:*) file=$(printf '%s' "${line#file:}" | sed 's/^[[:space:]]*//') ;;
	from:*) from=$(printf '%s' "${line#from:}" | sed 's/^[[:space:]]*//') ;;
	to:*) to=$(printf '%s' "${line#to:}" | sed 's/^[[:space:]]*//') ;;
	tests:*) tests=$(printf '%s' "${line#tests:}" | sed 's/^[[:space:]]*//') ;;
	why:*) ;;
	*) echo "mutate: $list: cannot read: $line" >&2; exit 2 ;;
	esac
done < "$list"
flush

# the build matches the restored sources again
(cd "$bld" && $make -s -j"$jobs" >/dev/null 2>&1) || echo "mutate: the final rebuild failed" >&2

cat "$tmp/results"
echo "$total mutations: $killed killed, $survived survived${broken:+, $broken broken}" |
	sed 's/, 0 broken$//'
[ "$survived" -eq 0 ] && [ "$broken" -eq 0 ]
