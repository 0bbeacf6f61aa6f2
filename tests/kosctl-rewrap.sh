#!/bin/sh
# Rewrap through a real kosd: kosctl key rewrap moves envelope files of an
# old version to the current one without the plaintext leaving kosd
# (files already current untouched, a tampered file or a wrong context
# failing alone, each file replaced atomically with its mode), after which
# the old version is retired and everything still decrypts; the scope
# rewrap:NAME rewraps and does not decrypt, decrypt does not rewrap, deny is
# refused; kosd's route refuses a batch over its cap and answers each
# malformed item with its own error; the progress bar forced on and off.
. "${srcdir:-.}/tests/lib.sh"
set -e

kosd_env

# version FILE: the key version an envelope of key "archive" names (bytes
# 13 to 16: "KOSE", format, name length, 7 bytes of name)
version() { od -An -tu1 -j 13 -N 4 "$1" | awk '{ print $1 * 16777216 + $2 * 65536 + $3 * 256 + $4 }'; }
# inode FILE: its inode and modification time, which a rename changes
inode() { stat -c '%i %y' "$1"; }
code_is() { grep_out "\"error\":\"$1\"" "$2: $1"; }

# --- an installation; trust = the integrity factor alone, starting at 90 ---
sed -e 's/prior = 60.0;/prior = 90.0;/' \
	-e 's/^    latency = 1.0;/    latency = 0.0;/' -e 's/^    usage = 1.0;/    usage = 0.0;/' \
	-e 's/^    anomaly = 2.0;/    anomaly = 0.0;/' -e 's/^    reputation = 1.0;/    reputation = 0.0;/' \
	-e 's/recovery = 1.0; };/recovery = 0.0; };/' "$P/default.policy" > "$kos_tmp/test.policy"
setup "init" "$K" init --dir "$d" --policy "$kos_tmp/test.policy"
export KOS_CONF="$d/kos.conf"
setup "ca init" "$K" ca init
setup "admin client" "$K" client add admin --scope "*:*"
cp "$out" "$kos_tmp/admin.secret"
setup "a data key" "$K" key create archive
setup "another data key" "$K" key create other
setup "a signing key" "$K" key create sig --type ec-p256
check "kosd starts" start_kosd
run ks admin credential enroll - < "$kos_tmp/admin.secret"
setup "enroll admin" test "$status" -eq 0
# rw rewraps only (rh and rm too, for the route: every integrity failure
# costs trust); app encrypts and decrypts; den is driven to deny
for c in rw:rewrap:archive "app:encrypt:archive decrypt:archive encrypt:other" \
	den:rewrap:archive rh:rewrap:archive rm:rewrap:archive; do
	setup "client add ${c%%:*}" ks admin client add "${c%%:*}" --scope "${c#*:}"
	cp "$out" "$kos_tmp/${c%%:*}.secret"
	run ks "${c%%:*}" credential enroll - < "$kos_tmp/${c%%:*}.secret"
	setup "enroll ${c%%:*}" test "$status" -eq 0
done
RH=$(cat "$kos_tmp/rh.cred")
RM=$(cat "$kos_tmp/rm.cred")
APP=$(cat "$kos_tmp/app.cred")

# --- usage ---
expect 0 "key rewrap --help" "$K" key rewrap --help
grep_out "usage: kosctl key rewrap NAME" "rewrap --help prints the usage"
expect 2 "rewrap without a file" ks rw key rewrap archive
grep_err "FILE missing" "the missing file is named"
expect 2 "rewrap --batch 0" ks rw key rewrap archive --batch 0 f
expect 2 "rewrap --batch over the cap" ks rw key rewrap archive --batch 1001 f
grep_err "1 to 1000" "the cap is named"
expect 2 "'-' among other files" ks rw key rewrap archive - f
expect 2 "a bad KOSCTL_PROGRESS" env KOSCTL_PROGRESS=sometimes "$K" key rewrap --help
grep_err "KOSCTL_PROGRESS" "the variable is named"

# --- envelopes under version 1, then a rotation ---
w="$kos_tmp/w"
mkdir "$w"
for i in 1 2 3 4 5; do
	head -c $((i * 300)) /dev/urandom > "$w/p$i"
	setup "encrypt p$i" ks app key encrypt archive --context ctx-1 < "$w/p$i"
	cp "$out" "$w/e$i"
done
chmod 640 "$w/e1"
chmod 600 "$w/e2"
printf 'other context' > "$w/pc"
setup "encrypt under another context" ks app key encrypt archive --context ctx-2 < "$w/pc"
cp "$out" "$w/ectx"
setup "encrypt p6 to tamper with" ks app key encrypt archive --context ctx-1 < "$w/p1"
cp "$out" "$w/bad"
flip_byte "$w/bad" 40
cp "$w/bad" "$w/bad.orig"
cp "$w/e1" "$w/keep1"
printf 'other key' > "$w/po"
setup "encrypt with another key" ks app key encrypt other --context ctx-1 < "$w/po"
cp "$out" "$w/eother"
check "the envelopes are of version 1" test "$(version "$w/e1")" -eq 1
expect 0 "rotate" ks admin key rotate archive
printf 'already current' > "$w/pcur"
setup "encrypt under version 2" ks app key encrypt archive --context ctx-1 < "$w/pcur"
cp "$out" "$w/cur"
check "the new envelope is of version 2" test "$(version "$w/cur")" -eq 2
cur_before=$(inode "$w/cur")
e3_before=$(inode "$w/e3")

# --- rewrap ---
run ks rw key rewrap archive --context ctx-1 --batch 2 \
	"$w/e1" "$w/e2" "$w/e3" "$w/cur" "$w/bad" "$w/e4" "$w/e5" "$w/eother" "$w/none"
check "a rewrap with failures exits 1" test "$status" -eq 1
grep_out "^rewrapped 5, already current 1, failed 3$" "the counts are reported"
grep_err "key rewrap: $w/bad: .*failed authentication.*(integrity)" \
	"the tampered file is named with the reason"
grep_err "key rewrap: $w/eother: the envelope is of key other, not archive (wrong_key)" \
	"another key's envelope is named"
grep_err "key rewrap: $w/none: No such file" "a missing file is named"
for i in 1 2 3 4 5; do
	check "e$i is now of version 2" test "$(version "$w/e$i")" -eq 2
	run ks app key decrypt --context ctx-1 < "$w/e$i"
	check "e$i decrypts to its plaintext" cmp -s "$out" "$w/p$i"
done
check "a file rewrapped is a new file (renamed over it)" test "$(inode "$w/e3")" != "$e3_before"
check "its mode is kept (640)" test "$(stat -c %a "$w/e1")" = 640
check "its mode is kept (600)" test "$(stat -c %a "$w/e2")" = 600
check "the file already current is untouched" test "$(inode "$w/cur")" = "$cur_before"
check "the tampered file is untouched" cmp -s "$w/bad" "$w/bad.orig"
check "no temporary file is left" sh -c "! ls -a '$w' | grep -q rewrap-"
run ks app key decrypt --context ctx-1 < "$w/cur"
check "the current one still decrypts" cmp -s "$out" "$w/pcur"

# --- a wrong context, the scope, the tier ---
ectx_before=$(inode "$w/ectx")
expect 1 "a wrong context fails" ks rw key rewrap archive --context ctx-1 "$w/ectx"
grep_err "failed authentication.*(integrity)" "a wrong context is an integrity failure"
grep_out "^rewrapped 0, already current 0, failed 1$" "and counted"
check "the file is untouched" test "$(inode "$w/ectx")" = "$ectx_before"
expect 1 "encrypt and decrypt scope cannot rewrap" ks app key rewrap archive --context ctx-2 "$w/ectx"
grep_err "(out_of_scope)" "out of scope is named"
grep_err "rewrap:archive needed" "the scope needed is named"
check "the file is still untouched" test "$(inode "$w/ectx")" = "$ectx_before"
expect 1 "rewrap scope cannot decrypt" ks rw key decrypt --context ctx-1 < "$w/e1"
grep_err "(out_of_scope)" "decryption is out of its scope"
check "and no plaintext" test ! -s "$out"
for i in 1 2 3 4; do run "$K" trust observe den integrity; done
expect 1 "deny cannot rewrap" ks den key rewrap archive --context ctx-2 "$w/ectx"
grep_err "(trust_too_low)" "the reason is trust too low"
check "the file is untouched by deny" test "$(inode "$w/ectx")" = "$ectx_before"
expect 0 "the right context rewraps" ks rw key rewrap archive --context ctx-2 "$w/ectx"
grep_out "^rewrapped 1, already current 0, failed 0$" "one rewrapped"

# --- standard input to standard output ---
run sh -c "'$K' --server 'unix:$S' --credential-file '$kos_tmp/rw.cred' key rewrap archive \
	--context ctx-1 - < '$w/keep1' > '$w/piped'"
check "rewrap - succeeds" test "$status" -eq 0
grep_err "rewrapped 1, already current 0, failed 0" "rewrap - reports on standard error"
check "rewrap - writes a version 2 envelope" test "$(version "$w/piped")" -eq 2
run ks app key decrypt --context ctx-1 < "$w/piped"
check "which decrypts" cmp -s "$out" "$w/p1"
run ks rw key rewrap archive --context ctx-1 - < "$w/cur"
check "rewrap - of a current envelope gives it back" cmp -s "$out" "$w/cur"

# --- the progress bar: forced on, forced off, off without a terminal ---
cp "$w/keep1" "$w/g1"
cp "$w/keep1" "$w/g2"
run env KOSCTL_PROGRESS=always "$K" --server "unix:$S" --credential-file "$kos_tmp/rw.cred" \
	key rewrap archive --context ctx-1 --batch 1 "$w/g1" "$w/g2"
check "KOSCTL_PROGRESS=always: rewrapped" test "$status" -eq 0
grep_err "rewrap  2/2  100%  \[#*\]  [0-9.]*/s  in [0-9]*:[0-9][0-9]" \
	"the bar shows count, percent and rate on standard error"
check "KOSCTL_PROGRESS=always: the report stays on standard output" \
	grep -q "^rewrapped 2, already current 0, failed 0$" "$out"
cp "$w/keep1" "$w/g1"
run env KOSCTL_PROGRESS=always "$K" --no-progress --server "unix:$S" \
	--credential-file "$kos_tmp/rw.cred" key rewrap archive --context ctx-1 "$w/g1" "$w/g2"
check "--no-progress: rewrapped" test "$status" -eq 0
check "--no-progress wins over the environment: nothing on standard error" test ! -s "$err"
cp "$w/keep1" "$w/g1"
run ks rw key rewrap archive --context ctx-1 "$w/g1"
check "without a terminal nothing is drawn" test ! -s "$err"
cp "$w/keep1" "$w/g1"
run env KOSCTL_PROGRESS=never "$K" --progress --server "unix:$S" \
	--credential-file "$kos_tmp/rw.cred" key rewrap archive --context ctx-1 "$w/g1"
grep_err "rewrap  1/1  100%" "--progress wins over the environment"
run env KOSCTL_PROGRESS=always "$K" --server "unix:$S" --credential-file "$kos_tmp/admin.cred" \
	key create slow --type ec-p256
grep_err "key create  done in [0-9]*:[0-9][0-9]$" "one long call shows its time"
run ks admin key create quiet --type ec-p256
check "not forced: nothing on standard error" test ! -s "$err"
run env KOSCTL_PROGRESS=always "$K" ledger verify
grep_err "ledger verify  [0-9]*/[0-9]*  100%" "ledger verify draws its bar"
grep_out "chain intact" "and verifies"

# --- the old version retired: everything still decrypts ---
expect 0 "retire version 1" ks admin key retire archive --version 1
for i in 1 2 3 4 5; do
	run ks app key decrypt --context ctx-1 < "$w/e$i"
	check "e$i decrypts after the retirement" cmp -s "$out" "$w/p$i"
done
run ks app key decrypt --context ctx-2 < "$w/ectx"
check "the other context's file too" cmp -s "$out" "$w/pc"
cp "$w/keep1" "$w/late"
expect 1 "an envelope of the retired version cannot move" \
	ks rw key rewrap archive --context ctx-1 "$w/late"
grep_err "retired (retired)" "the retired version is named"
check "it is left as it was" cmp -s "$w/late" "$w/keep1"
expect 0 "rewrap on the store as the local administrator" \
	"$K" --local key rewrap archive --context ctx-1 "$w/e1" "$w/cur"
grep_out "^rewrapped 0, already current 2, failed 0$" "local: both already current"

# --- the route over HTTP ---
b64() { base64 -w0 "$1"; }
api POST /v1/keys/archive/rewrap "$RH" "{\"envelopes\":[{\"envelope\":\"$(b64 "$w/keep1")\",\"context\":\"ctx-1\"}]}"
want 200 "POST rewrap"
code_is retired "a retired version's envelope"
grep_out '"version":2' "the answer names the current version"
cp "$w/cur" "$w/cur2"
setup "rotate to 3" ks admin key rotate archive
api POST /v1/keys/archive/rewrap "$RM" "{\"envelopes\":[{\"envelope\":5},{\"context\":\"x\"},\"str\",{\"envelope\":\"!!!!\"},{\"envelope\":\"$(b64 "$w/cur2")\",\"context\":\"ctx-1\"},{\"envelope\":\"$(printf garbage | base64 -w0)\"},{\"envelope\":\"$(b64 "$w/eother")\",\"context\":\"ctx-1\"},{\"envelope\":\"$(b64 "$w/cur2")\",\"context\":7},{\"envelope\":\"$(b64 "$w/cur2")\",\"context\":\"ctx-9\"}]}"
want 200 "POST rewrap with malformed items"
check "nine results, in order" test "$(grep -o '{"envelope"\|{"error"\|{"version"' "$out" | tr -d '{"' | tr '\n' ' ')" = \
	"error error error error envelope error error error error "
res() { sed 's/},{/}\n{/g' "$out" | sed -n "${1}p"; }
check "item 1: envelope of the wrong type" sh -c "echo '$(res 1)' | grep -q '\"error\":\"wrong_type\".*envelope 0'"
check "item 2: no envelope" sh -c "echo '$(res 2)' | grep -q '\"error\":\"missing_field\"'"
check "item 3: not an object" sh -c "echo '$(res 3)' | grep -q '\"error\":\"wrong_type\"'"
check "item 4: bad base64" sh -c "echo '$(res 4)' | grep -q '\"error\":\"bad_base64\"'"
check "item 5: rewrapped to version 3" sh -c "echo '$(res 5)' | grep -q '\"rewrapped\":true' && echo '$(res 5)' | grep -q '\"version\":3'"
check "item 6: not an envelope" sh -c "echo '$(res 6)' | grep -q '\"error\":\"bad_request\".*not a kos envelope'"
check "item 7: another key's" sh -c "echo '$(res 7)' | grep -q '\"error\":\"wrong_key\"'"
check "item 8: a context of the wrong type" sh -c "echo '$(res 8)' | grep -q '\"error\":\"wrong_type\".*context'"
check "item 9: a wrong context" sh -c "echo '$(res 9)' | grep -q '\"error\":\"integrity\"'"
api POST /v1/keys/archive/rewrap "$RH" "{\"envelopes\":[{\"envelope\":\"$(b64 "$w/e3")\",\"context\":\"ctx-1\"}]}"
want 200 "POST rewrap of a version 2 envelope"
grep_out '"rewrapped":true' "moved to version 3"
sed -n 's/.*"envelope":"\([^"]*\)".*/\1/p' "$out" | base64 -d > "$w/e3v3"
check "the answer's envelope is of version 3" test "$(version "$w/e3v3")" -eq 3
run ks app key decrypt --context ctx-1 < "$w/e3v3"
check "and decrypts to e3's plaintext" cmp -s "$out" "$w/p3"
{
	printf '{"envelopes":['
	i=0
	while [ $i -lt 1001 ]; do
		[ $i -gt 0 ] && printf ','
		printf '{"envelope":"AAAA"}'
		i=$((i + 1))
	done
	printf ']}'
} > "$kos_tmp/big.json"
api POST /v1/keys/archive/rewrap "$RH" "@$kos_tmp/big.json"
want 413 "a batch of 1001 is refused"
code_is too_large "over the cap"
grep_out "at most 1000 envelopes" "the cap is in the message"
api POST /v1/keys/archive/rewrap "$RH" '{"envelopes":[]}'
want 400 "an empty batch"
api POST /v1/keys/archive/rewrap "$RH" '{"envelopes":{}}'
want 400 "envelopes not an array"
code_is wrong_type "envelopes not an array"
api POST /v1/keys/archive/rewrap "$RH" '{}'
want 400 "no envelopes"
code_is missing_field "no envelopes"
api POST /v1/keys/archive/rewrap "$APP" "{\"envelopes\":[{\"envelope\":\"$(b64 "$w/cur2")\",\"context\":\"ctx-1\"}]}"
want 403 "rewrap without rewrap:archive"
code_is out_of_scope "rewrap without rewrap:archive"
api POST /v1/keys/other/rewrap "$RH" "{\"envelopes\":[{\"envelope\":\"$(b64 "$w/eother")\",\"context\":\"ctx-1\"}]}"
want 403 "rewrap:archive does not reach another key"
api POST /v1/keys/nosuch/rewrap "$(cat "$kos_tmp/admin.cred")" '{"envelopes":[{"envelope":"AAAA"}]}'
want 404 "rewrap of no such key"
api POST /v1/keys/sig/rewrap "$(cat "$kos_tmp/admin.cred")" '{"envelopes":[{"envelope":"AAAA"}]}'
want 400 "rewrap of a signing key"
api GET /v1/keys "$RH"
grep_out '"name":"archive"' "rewrap:archive lists the key it reaches"

# --- one ledger entry per request, with the counts ---
check "each request is one decision with its counts" wait_for 10 sh -c \
	"'$K' ledger show | grep -E -q ' rm +rewrap +archive +[a-z]+ +allowed .*rewrapped 1/9 failed 8$'"
check "a refusal is one too" wait_for 10 sh -c \
	"'$K' ledger show | grep -E -q ' app +rewrap +archive +[a-z]+ +refused .*out of scope$'"

# --- stop: a clean exit, and nothing of the envelopes or credentials logged ---
stop_kosd
check "SIGTERM: exit 0" test "$st" -eq 0
piece=$(b64 "$w/cur2" | cut -c 41-80)
check "no envelope in kosd's log" sh -c "! grep -q -F -e '$piece' '$log'"
check "no credential in kosd's log" sh -c "! grep -q -e \"\$(cat '$kos_tmp/rw.cred')\" '$log'"

finish kosctl-rewrap
