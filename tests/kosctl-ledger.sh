#!/bin/sh
# kosctl ledger show, verify and head on a development installation: an
# empty ledger, one filled by tests/ledger-seed through kos_ledger_append(),
# offline even with a server set, and ledgers tampered with the sqlite3 CLI
# (changed, re-hashed, deleted, swapped and forged rows), each bad entry
# named.
. "${srcdir:-.}/tests/lib.sh"
set -e

K=${KOSCTL:-./kosctl}
P=${KOS_POLICY_DIR:-${srcdir:-.}/policy}
SEED=${LEDGER_SEED:-${top_builddir:-.}/tests/ledger-seed}
d="$kos_tmp/inst"
db="$d/state.db"
unset KOS_CONF KOS_SERVER KOS_CREDENTIAL KOS_CREDENTIAL_FILE

softhsm_leaks_ignored

zeros=0000000000000000000000000000000000000000000000000000000000000000

# --- usage ---
expect 0 "ledger --help" "$K" ledger --help
grep_out "verify" "ledger --help lists the subcommands"
expect 2 "ledger without a subcommand" "$K" ledger
expect 2 "ledger with an unknown subcommand" "$K" ledger frob
grep_err "unknown subcommand 'frob'" "the unknown subcommand is named"
expect 0 "help ledger" "$K" help ledger
for sub in show verify head; do
	expect 0 "ledger $sub --help" "$K" ledger "$sub" --help
	grep_out "usage: kosctl ledger $sub" "ledger $sub --help prints its usage"
done
grep_out "server" "head --help says it works on the store even with a server"
expect 0 "kosctl --help lists ledger" "$K" --help
grep_out "^  ledger " "the command table has ledger"

expect 2 "show --from 0" "$K" ledger show --from 0
grep_err "--from wants an entry number (1 or more), not '0'" "--from 0 is explained"
expect 2 "show --from abc" "$K" ledger show --from abc
grep_err "not 'abc'" "the bad --from value is quoted"
expect 2 "show --from -3" "$K" ledger show --from -3
expect 2 "show --limit 0" "$K" ledger show --limit 0
grep_err "--limit wants a number of entries" "--limit 0 is explained"
expect 2 "show --limit 12x" "$K" ledger show --limit 12x
expect 2 "show --limit 99999999999999999999" "$K" ledger show --limit 99999999999999999999
expect 2 "show --limit without a value" "$K" ledger show --limit
grep_err "needs a value" "the missing value is named"
expect 2 "show --bogus" "$K" ledger show --bogus
grep_err "unknown option '--bogus'" "the unknown option is named"
expect 2 "show with a stray argument" "$K" ledger show 5
grep_err "unexpected argument '5'" "the stray argument is named"
expect 2 "verify --from (show's option only)" "$K" ledger verify --from 1
expect 2 "head with a stray argument" "$K" ledger head now
expect 2 "verify --head without a hash" "$K" ledger verify --head 5
grep_err "wants SEQ:HASH" "the form is named"
expect 2 "verify --head with a short hash" "$K" ledger verify --head 5:abcd
expect 2 "verify --head with entry 0" "$K" ledger verify --head "0:$(printf '%064d' 0)"
expect 2 "verify --head with a non-hex hash" "$K" ledger verify --head "5:$(printf '%064d' 0 | tr 0 g)"
expect 2 "show --head (verify's option only)" "$K" ledger show --head "5:$(printf '%064d' 0)"

# --- an empty ledger ---
setup "init" "$K" init --dir "$d" --policy "$P/default.policy"
export KOS_CONF="$d/kos.conf"
expect 0 "verify an empty ledger" "$K" ledger verify
grep_out "^ledger: 0 entries, chain intact, head 0 $zeros$" "an empty ledger is intact"
expect 0 "head of an empty ledger" "$K" ledger head
grep_out "^0 $zeros$" "the empty head is 0 and zeros"
expect 0 "show an empty ledger" "$K" ledger show
check "an empty ledger shows no entry" test "$(wc -l <"$out")" -le 1
expect 0 "show --json an empty ledger" "$K" ledger show --json
check "an empty ledger is an empty JSON array" test "$(cat "$out")" = "[]"

# --- a ledger written through kos_ledger_append() ---
run "$SEED" "$db" 300 64
check "ledger-seed appends 300 entries" test "$status" -eq 0
seeded=$(cat "$out")
check "ledger-seed's head is entry 300" test "${seeded%% *}" = 300
head_hash=${seeded#* }
expect 0 "verify" "$K" ledger verify
grep_out "^ledger: 300 entries, chain intact, head 300 $head_hash$" \
	"verify counts the entries and gives the head"
expect 0 "head" "$K" ledger head
grep_out "^300 $head_hash$" "head prints seq and hash"
check "the head hash is the stored one" \
	test "$(sqlite3 "$db" 'SELECT lower(hex(hash)) FROM ledger WHERE seq = 300')" = "$head_hash"
expect 0 "head --json" "$K" ledger head --json
grep_out "\"hash\": \"$head_hash\"" "head --json gives the hash"
grep_out '"seq": 300' "head --json gives the seq"

expect 0 "show" "$K" ledger show
check "show prints a header and 300 lines" test "$(wc -l <"$out")" -eq 301
grep_out "^ *SEQ  *TIME  *CLIENT  *ACTION  *RESOURCE  *TIER  *OUTCOME  *HASH  *REASON$" \
	"show prints a header"
h2=$(sqlite3 "$db" 'SELECT substr(lower(hex(hash)), 1, 16) FROM ledger WHERE seq = 2')
grep_out "^ *2 2026-01-01T00:00:01Z client-1  *sign  *key-1  *medium refused $h2 trust too low$" \
	"show gives every field of a refusal"
grep_out "^ *1 2026-01-01T00:00:00Z client-0  *decrypt  *key-0  *high  *allowed [0-9a-f]\{16\}$" \
	"an allowed decision has no reason"
expect 0 "show --from 299" "$K" ledger show --from 299
check "--from 299 shows entries 299 and 300" \
	test "$(awk 'NR > 1 { print $1 }' "$out" | tr '\n' ' ')" = "299 300 "
expect 0 "show --from 10 --limit 3" "$K" ledger show --from 10 --limit 3
check "--limit 3 shows entries 10 to 12" \
	test "$(awk 'NR > 1 { print $1 }' "$out" | tr '\n' ' ')" = "10 11 12 "
expect 0 "show --from past the end" "$K" ledger show --from 301
check "past the end shows nothing" test "$(awk 'NR > 1' "$out" | wc -l)" -eq 0
expect 0 "show --json --from 300" "$K" ledger show --json --from 300
grep_out '"seq": 300' "JSON gives the seq"
grep_out '"at": "2026-01-01T00:04:59Z"' "JSON gives the time"
grep_out '"at_usec": 1767225899000000' "JSON gives the exact time"
grep_out '"jti": "jti-299"' "JSON gives the jti"
grep_out "\"hash\": \"$head_hash\"" "JSON gives the whole hash"
check "JSON is one array" test "$(head -n 1 "$out")" = "[" -a "$(tail -n 1 "$out")" = "]"
expect 0 "global --json show --limit 2" "$K" --json ledger show --limit 2
check "global --json: two objects" test "$(grep -c '"seq"' "$out")" -eq 2
check "two objects are separated by a comma" test "$(grep -c '^  },$' "$out")" -eq 1

# offline: a server that does not exist changes nothing
expect 0 "verify with KOS_SERVER set" env KOS_SERVER="$kos_tmp/no-such.sock" "$K" ledger verify
grep_out "^ledger: 300 entries, chain intact" "verify reads the store with a server set"
expect 0 "show with --server" "$K" --server "$kos_tmp/no-such.sock" ledger show --limit 1
expect 0 "head with --server" "$K" --server "$kos_tmp/no-such.sock" ledger head

# a second run continues the chain
run "$SEED" "$db" 20 7
check "ledger-seed appends 20 more" test "$status" -eq 0
expect 0 "verify 320 entries" "$K" ledger verify
grep_out "^ledger: 320 entries, chain intact, head 320 " "the chain goes on"
expect 0 "show --from 300 --limit 2" "$K" ledger show --from 300 --limit 2
grep_out "^ *301 2026-01-01T00:00:00Z client-0 " "the second run's first entry is 301"

# --- tampering, on copies of the intact store ---
if ! command -v sqlite3 >/dev/null 2>&1; then
	fail "the sqlite3 CLI is missing (scripts/quickstart installs it)"
	finish kosctl-ledger
	exit 1
fi
sqlite3 "$db" ".backup '$kos_tmp/intact.db'"
h300=$(sqlite3 "$db" 'SELECT lower(hex(hash)) FROM ledger WHERE seq = 300')
expect 0 "verify --head of an earlier head" "$K" ledger verify --head "300:$h300"
grep_out "^ledger: 320 entries, chain intact" "an earlier head is found in the chain"
expect 0 "verify --head as 'ledger head' prints it" "$K" ledger verify --head "$("$K" ledger head)"
h299=$(sqlite3 "$db" 'SELECT lower(hex(hash)) FROM ledger WHERE seq = 299')
expect 1 "verify --head with another hash" "$K" ledger verify --head "300:$h299"
grep_err "entry 300 is bad: its hash is not the head given" "a rewritten head is named"

# tamper DESCRIPTION SQL: the intact store, changed with SQL after the
# append-only triggers are dropped (as an intruder would)
tamper() {
	rm -f "$db" "$db-wal" "$db-shm"
	cp "$kos_tmp/intact.db" "$db"
	sqlite3 "$db" "DROP TRIGGER ledger_no_update; DROP TRIGGER ledger_no_delete; $2" ||
		fail "$1: the SQL failed"
}

tamper "change" "UPDATE ledger SET outcome = 'allowed', reason = '' WHERE seq = 150"
expect 1 "verify a changed entry" "$K" ledger verify
grep_err "ledger: entry 150 is bad: hash does not match (entries 1 to 149 intact" \
	"the changed entry is named"
check "nothing on standard output" test ! -s "$out"
expect 1 "verify --json a changed entry" "$K" ledger verify --json
grep_out '"intact": false' "JSON says not intact"
grep_out '"first_bad": 150' "JSON names the entry"
grep_out '"entries": 149' "JSON counts the intact entries"
grep_out '"why": "hash does not match"' "JSON says why"
expect 0 "show still lists a tampered ledger" "$K" ledger show --from 150 --limit 1
grep_out "^ *150 .* allowed " "show prints what is stored"

tamper "rehash" "UPDATE ledger SET hash = randomblob(32) WHERE seq = 40"
expect 1 "verify a replaced hash" "$K" ledger verify
grep_err "entry 40 is bad: hash does not match" "the entry with the replaced hash is named"

tamper "prev" "UPDATE ledger SET prev = zeroblob(32) WHERE seq = 41"
expect 1 "verify a replaced prev" "$K" ledger verify
grep_err "entry 41 is bad: prev does not match entry 40" "a broken link is named"

tamper "delete" "DELETE FROM ledger WHERE seq = 200"
expect 1 "verify a deleted entry" "$K" ledger verify
grep_err "entry 200 is bad: missing entry 200" "the missing entry is named"

# cut short: the chain alone cannot tell, a head recorded earlier can
tamper "cut" "DELETE FROM ledger WHERE seq > 300"
expect 0 "verify a ledger cut short" "$K" ledger verify
expect 1 "verify --head a ledger cut short" "$K" ledger verify --head "320:$(sqlite3 "$kos_tmp/intact.db" 'SELECT lower(hex(hash)) FROM ledger WHERE seq = 320')"
grep_err "entry 320 is bad: missing: the ledger ends at entry 300" "the cut is named"
expect 1 "verify --head --json a ledger cut short" "$K" ledger verify --json --head "320:$h299"
grep_out '"first_bad": 320' "JSON names the missing head"

tamper "delete first" "DELETE FROM ledger WHERE seq = 1"
expect 1 "verify without entry 1" "$K" ledger verify
grep_err "entry 1 is bad: missing entry 1 (no entry before it is intact)" \
	"a missing first entry is named"

tamper "swap" "UPDATE ledger SET seq = 100000 WHERE seq = 17;
	UPDATE ledger SET seq = 17 WHERE seq = 18; UPDATE ledger SET seq = 18 WHERE seq = 100000"
expect 1 "verify swapped entries" "$K" ledger verify
grep_err "entry 17 is bad: prev does not match entry 16" "the first swapped entry is named"

# forged rows appended by another program, with made-up hashes
tamper "forge" "INSERT INTO ledger VALUES (321, 1767225600000000, 'mallory', 'decrypt',
	'payments', 'high', 'allowed', '', '-', randomblob(32), randomblob(32))"
expect 1 "verify a forged entry" "$K" ledger verify
grep_err "entry 321 is bad: prev does not match entry 320" "the forged entry is named"
prev320=$(sqlite3 "$kos_tmp/intact.db" "SELECT hex(hash) FROM ledger WHERE seq = 320")
tamper "forge linked" "INSERT INTO ledger VALUES (321, 1767225600000000, 'mallory',
	'decrypt', 'payments', 'high', 'allowed', '', '-', x'$prev320', zeroblob(32))"
expect 1 "verify a forged entry that links" "$K" ledger verify
grep_err "entry 321 is bad: hash does not match" "a forged hash is caught"

tamper "control" "UPDATE ledger SET client = 'evil' || char(27) || '[2J' WHERE seq = 3"
expect 1 "verify an entry with a control character" "$K" ledger verify
grep_err "entry 3 is bad: hash does not match" "the entry is named"
expect 0 "show it" "$K" ledger show --from 3 --limit 1
check "show prints no control character" sh -c "! grep -q \"\$(printf '\\033')\" '$out'"
grep_out "^ *3 .* evil?\[2J " "the control character shows as ?"

# with the triggers in place, SQL cannot change the ledger by mistake
rm -f "$db" "$db-wal" "$db-shm"
cp "$kos_tmp/intact.db" "$db"
run sqlite3 "$db" "UPDATE ledger SET client = 'x' WHERE seq = 5"
check "an UPDATE is refused" test "$status" -ne 0
grep_err "append-only" "the refusal says the ledger is append-only"
run sqlite3 "$db" "DELETE FROM ledger WHERE seq = 320"
check "a DELETE is refused" test "$status" -ne 0
expect 0 "the ledger is still intact" "$K" ledger verify
grep_out "^ledger: 320 entries, chain intact" "nothing changed"

finish kosctl-ledger
