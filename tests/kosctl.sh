#!/bin/sh
# kosctl driven as an administrator would: usage, configuration, policy
# checks, Shamir split and combine, trust observations over several processes.
. "${srcdir:-.}/tests/lib.sh"
set -e

K=${KOSCTL:-./kosctl}
P=${KOS_POLICY_DIR:-${srcdir:-.}/policy}
d="$kos_tmp"
cp "$P/default.policy" "$d/default.policy"
printf 'store = "state.db";\npolicy = "default.policy";\n' >"$d/kos.conf"
KOS_CONF="$d/kos.conf"
export KOS_CONF

# --- usage and help ---
expect 0 "kosctl --help" "$K" --help
grep_out "usage: kosctl" "--help prints the usage"
expect 2 "no command is a usage error" "$K"
expect 2 "unknown command is a usage error" "$K" frobnicate
grep_err "unknown command" "unknown command is named"
expect 2 "unknown global option" "$K" --bogus trust list
expect 0 "kosctl help trust" "$K" help trust
grep_out "observe" "help trust lists its subcommands"
expect 0 "kosctl trust observe --help" "$K" trust observe --help
expect 0 "kosctl shamir split --help" "$K" shamir split --help
expect 0 "kosctl policy check --help" "$K" policy check --help
expect 2 "unknown subcommand" "$K" trust frob
expect 0 "kosctl version" "$K" version
grep_out "kosctl [0-9]" "version printed"

# --- configuration ---
expect 1 "missing configuration file" "$K" --config "$d/nope.conf" trust list
grep_err "nope.conf" "the missing file is named"
printf 'store = 5;\nwhat = "x";\n' >"$d/bad.conf"
expect 1 "bad configuration refused" "$K" --config "$d/bad.conf" trust list
grep_err "bad.conf:1: " "configuration error with its line"
grep_err "bad.conf:2: " "every configuration error reported"

# --- policy ---
expect 0 "default policy passes" "$K" policy check "$P/default.policy"
grep_out "default.policy: ok" "ok printed"
expect 0 "strict policy passes" "$K" policy check "$P/strict.policy"
printf 'version = 1;\ntiers = { high = 40.0; medium = 50.0; request = 20.0; };\nbogus = 1;\n' >"$d/bad.policy"
expect 1 "bad policy refused" "$K" policy check "$d/bad.policy"
grep_err "bad.policy:2: " "threshold problem with its line"
grep_err "bad.policy:3: " "unknown key with its line"
expect 1 "one bad file among good ones fails" "$K" policy check "$P/default.policy" "$d/bad.policy"
expect 2 "policy check without a file" "$K" policy check
expect 0 "policy show" "$K" policy show
grep_out "^tiers\.high: 80$" "policy show prints the high threshold"

# --- shamir ---
head -c 32 /dev/urandom >"$d/secret"
expect 0 "split 3-of-5" sh -c "'$K' shamir split -k 3 -n 5 <'$d/secret' >'$d/shares'"
check "five share lines" test "$(wc -l <"$d/shares")" -eq 5
check "share lines in the kos-share-v1 format" \
	sh -c "grep -c '^kos-share-v1:[0-9]*:[0-9a-f]*\$' '$d/shares' | grep -qx 5"
for pick in "1p;2p;3p" "1p;3p;5p" "5p;4p;2p" "1p;2p;3p;4p;5p"; do
	expect 0 "combine lines $pick" sh -c "sed -n '$pick' '$d/shares' | '$K' shamir combine >'$d/back'"
	check "lines $pick give the secret back" cmp -s "$d/secret" "$d/back"
done
# two shares make a 2-of-n polynomial: combine answers (it cannot know k),
# with 32 bytes that are not the secret
expect 0 "two of a 3-of-5 combine without a crash" sh -c "sed -n '1p;2p' '$d/shares' | '$K' shamir combine >'$d/two'"
check "two of a 3-of-5 do not give the secret" \
	sh -c "test \$(wc -c <'$d/two') -eq 32 && ! cmp -s '$d/secret' '$d/two'"
printf '\000\001\000\377' >"$d/nul"
expect 0 "binary secret with NUL bytes" sh -c "'$K' shamir split -k 2 -n 2 <'$d/nul' | '$K' shamir combine >'$d/nulback'"
check "binary secret round trip" cmp -s "$d/nul" "$d/nulback"
head -c 65536 /dev/urandom >"$d/big"
expect 0 "64 KiB secret" sh -c "'$K' shamir split -k 2 -n 3 <'$d/big' | tail -n 2 | '$K' shamir combine >'$d/bigback'"
check "64 KiB round trip" cmp -s "$d/big" "$d/bigback"
head -c 65537 /dev/urandom >"$d/huge"
expect 1 "65537-byte secret refused" sh -c "'$K' shamir split -k 2 -n 3 <'$d/huge'"
expect 1 "empty secret refused" sh -c "'$K' shamir split -k 2 -n 3 </dev/null"
expect 2 "k < 2 is a usage error" sh -c "'$K' shamir split -k 1 -n 3 <'$d/secret'"
expect 2 "k > n is a usage error" sh -c "'$K' shamir split -k 4 -n 3 <'$d/secret'"
expect 2 "n > 255 is a usage error" sh -c "'$K' shamir split -k 2 -n 256 <'$d/secret'"
expect 2 "missing -k" sh -c "'$K' shamir split -n 3 <'$d/secret'"
expect 2 "non-numeric -n" sh -c "'$K' shamir split -k 2 -n three <'$d/secret'"
{ sed -n 1p "$d/shares"; echo "kos-share-v1:9:zz"; } >"$d/badshares"
expect 1 "malformed share line refused" sh -c "'$K' shamir combine <'$d/badshares'"
grep_err "line 2: malformed share" "the bad line is named"
check "no share bytes in the error" sh -c "! grep -q '$(sed -n '1s/.*:\(........\).*/\1/p' "$d/shares")' '$err'"
{ sed -n 1p "$d/shares"; sed -n 1p "$d/shares"; } >"$d/dupshares"
expect 1 "duplicate shares refused" sh -c "'$K' shamir combine <'$d/dupshares'"
expect 1 "a single share refused" sh -c "sed -n 1p '$d/shares' | '$K' shamir combine"

# --- trust ---
expect 1 "unknown client" "$K" trust show nobody
expect 0 "first observation creates the client" "$K" trust observe alice success
expect 0 "show alice" "$K" trust show alice
grep_out "score" "show prints the score"
grep_out "tier" "show prints the tier"
expect 2 "unknown event is a usage error" "$K" trust observe alice frobnicate
expect 2 "latency needs a value" "$K" trust observe alice latency
expect 2 "non-numeric latency" "$K" trust observe alice latency fast
expect 2 "bad client name refused" "$K" trust observe "../etc" success
score() { "$K" trust show "$@" | sed -n 's/^score: *\([0-9.]*\).*/\1/p'; }
before=$(score alice)
"$K" trust observe alice integrity >/dev/null
after=$(score alice)
check "an integrity failure lowers the score ($before -> $after)" \
	awk -v a="$before" -v b="$after" 'BEGIN { exit !(b < a) }'
later=$(score alice --at +30d)
check "idle decay moves the score back toward the prior ($after -> $later)" \
	awk -v a="$after" -v b="$later" 'BEGIN { exit !(b > a && b <= 60.0) }'
check "show --at does not write" test "$(score alice)" = "$after"
# iso SECONDS: the ISO 8601 UTC form of a time since the epoch (days to a
# civil date as in H. Hinnant's civil_from_days)
iso() {
	awk -v s="$1" 'BEGIN {
		z = int(s / 86400) + 719468; era = int(z / 146097); doe = z - era * 146097
		yoe = int((doe - int(doe / 1460) + int(doe / 36524) - int(doe / 146096)) / 365)
		doy = doe - (365 * yoe + int(yoe / 4) - int(yoe / 100)); mp = int((5 * doy + 2) / 153)
		d = doy - int((153 * mp + 2) / 5) + 1; m = mp < 10 ? mp + 3 : mp - 9
		y = yoe + era * 400 + (m <= 2); r = s % 86400
		printf "%04d-%02d-%02dT%02d:%02d:%02dZ\n", y, m, d, int(r / 3600), int(r / 60) % 60, r % 60
	}'
}
check "iso() itself is right" test "$(iso 1796637600)" = 2026-12-07T10:00:00Z
t=$(( $(date +%s) + 30 * 86400 ))
at_iso=$(score alice --at "$(iso "$t")")
at_epoch=$(score alice --at "@$t")
check "--at in ISO 8601 is the instant @EPOCH names ($at_iso, $at_epoch)" \
	test -n "$at_iso" -a "$at_iso" = "$at_epoch"
check "... thirty days on ($after -> $at_iso)" \
	awk -v a="$after" -v b="$at_iso" 'BEGIN { exit !(b > a) }'
expect 2 "--at with month 13" "$K" trust show alice --at 2026-13-01T00:00:00Z
grep_err "2026-12-07T10:00:00Z" "the refusal shows the ISO 8601 form"
expect 2 "--at with text after the Z" "$K" trust show alice --at "$(iso "$t")x"
expect 0 "trust show --help" "$K" trust show --help
grep_out "2026-12-07T10:00:00Z" "trust show --help shows the ISO 8601 form"
expect 0 "trust list" "$K" trust list
grep_out "alice" "list names alice"
expect 0 "trust list --json" "$K" --json trust list
grep_out '"client": *"alice"' "JSON list names alice"
# Two processes observing the same client at once lose no update.
n0=$("$K" --json trust show alice | sed -n 's/.*"observations": *\([0-9]*\).*/\1/p')
for p in 1 2; do
	( i=0; while [ $i -lt 50 ]; do "$K" trust observe alice latency 5 >/dev/null || exit 1; i=$((i + 1)); done ) &
done
wait
n1=$("$K" --json trust show alice | sed -n 's/.*"observations": *\([0-9]*\).*/\1/p')
check "100 concurrent observations all counted ($n0 -> $n1)" test "$((n1 - n0))" -eq 100
expect 0 "forget alice" "$K" trust forget alice
expect 1 "forgotten client is unknown" "$K" trust show alice

finish kosctl
