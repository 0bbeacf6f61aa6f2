#!/bin/sh
# kosctl init makes a development installation with SoftHSM tokens, and
# kosctl kms list sees every token of it.
. "${srcdir:-.}/tests/lib.sh"
set -e

K=${KOSCTL:-./kosctl}
P=${KOS_POLICY_DIR:-${srcdir:-.}/policy}
d="$kos_tmp/inst"
unset KOS_CONF

# --- usage ---
expect 0 "kosctl init --help" "$K" init --help
grep_out "usage: kosctl init --dir DIR" "init --help prints the usage"
expect 2 "init without --dir is a usage error" "$K" init
grep_err "dir" "the missing option is named"
expect 2 "init --kms 1 is a usage error" "$K" init --dir "$d" --kms 1
expect 2 "init --kms 256 is a usage error" "$K" init --dir "$d" --kms 256
expect 2 "init --kms x is a usage error" "$K" init --dir "$d" --kms x
expect 2 "init with a stray argument" "$K" init --dir "$d" extra
check "usage errors made nothing" test ! -e "$d"
expect 0 "kosctl kms list --help" "$K" kms list --help
expect 0 "kosctl help kms" "$K" help kms
grep_out "list" "help kms lists its subcommands"

# --- init ---
expect 0 "init makes an installation" "$K" init --dir "$d" --policy "$P/default.policy"
grep_out "export KOS_CONF=$d/kos.conf" "init prints the export line"
grep_out "trust4" "init names the tokens"
check "kos.conf written" test -f "$d/kos.conf"
check "softhsm2.conf written" test -f "$d/softhsm2.conf"
check "state store created" test -f "$d/state.db"
check "policy copied" cmp -s "$P/default.policy" "$d/kos.policy"
check "eleven user PIN files" test "$(ls "$d/pins" | grep -c '\.pin$')" -eq 11
check "eleven SO PIN files" test "$(ls "$d/pins" | grep -c '\.so-pin$')" -eq 11
bad_modes=$(find "$d/pins" -type f ! -perm 0600 | wc -l)
check "every PIN file is mode 0600" test "$bad_modes" -eq 0
check "the PIN directory is mode 0700" test "$(stat -c %a "$d/pins")" = 700
check "kos.conf holds no PIN" sh -c "! grep -q -f '$d/pins/kms1.pin' '$d/kos.conf'"
check "PINs differ between tokens" sh -c "! cmp -s '$d/pins/kms1.pin' '$d/pins/kms2.pin'"
D=${KOSD:-./kosd}
expect 0 "kosd -t passes the installation init made" "$D" -t -c "$d/kos.conf"
mv "$d/pins/kms2.pin" "$kos_tmp/kms2.pin"
expect 1 "kosd -t fails when a PIN file is gone" "$D" -t -c "$d/kos.conf"
grep_err "token kms2: pin: $d/pins/kms2.pin: No such file or directory" "and names it"
mv "$kos_tmp/kms2.pin" "$d/pins/kms2.pin"

# --- kms list ---
expect 0 "kms list" "$K" --config "$d/kos.conf" kms list
check "kms list shows 11 reachable tokens" \
	test "$(awk 'NR > 1 && $3 == "yes" && $4 == "yes"' "$out" | wc -l)" -eq 11
grep_out "^kms5 *kms " "kms5 listed with its role"
grep_out "^ca *ca " "the ca token listed"
grep_out "^trust4 *trustnode " "trust4 listed with its role"
expect 0 "kms list through KOS_CONF" env KOS_CONF="$d/kos.conf" "$K" kms list
expect 0 "kms list --json" "$K" --config "$d/kos.conf" --json kms list
check "JSON: 11 reachable tokens" test "$(grep -c '"reachable": true' "$out")" -eq 11
grep_out '"name": "signer"' "JSON names the signer"
expect 2 "kms list with an argument" "$K" --config "$d/kos.conf" kms list extra

# --- refusals ---
cp "$d/pins/kms1.pin" "$kos_tmp/kms1.pin.before"
expect 1 "init refuses an existing installation" "$K" init --dir "$d" --policy "$P/default.policy"
grep_err "exists" "the refusal says it exists"
check "the existing PINs are untouched" cmp -s "$d/pins/kms1.pin" "$kos_tmp/kms1.pin.before"
expect 0 "the existing installation still works" "$K" --config "$d/kos.conf" kms list

# A readable PIN file is refused, naming the token; the rest stay reachable.
chmod 0644 "$d/pins/kms2.pin"
expect 1 "kms list fails when a token is unusable" "$K" --config "$d/kos.conf" kms list
grep_out "token kms2: PIN file" "the token and its PIN file are named"
grep_err "1 of 11 tokens unreachable" "the count of unreachable tokens"
check "the other ten are reachable" \
	test "$(awk 'NR > 1 && $3 == "yes"' "$out" | wc -l)" -eq 10
chmod 0600 "$d/pins/kms2.pin"

expect 1 "init with a missing policy" "$K" init --dir "$kos_tmp/other" --policy "$kos_tmp/nope.policy"
check "a failed init leaves nothing" test ! -e "$kos_tmp/other"
expect 1 "kms list without a configuration" "$K" --config "$kos_tmp/nope.conf" kms list

finish kosctl-init
