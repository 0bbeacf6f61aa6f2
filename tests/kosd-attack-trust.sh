#!/bin/sh
# An attack on the trust boundary through kosd, as an attacker runs it: a
# client that has fallen to the low tier tries to buy its way back to high
# with cheap successful requests. With its own credential it makes three
# integrity failures (server-side decryption of a tampered envelope), then
# sends 100 small encryptions as fast as it can and refreshes its
# credential as clients do, and asks for the data key. Trust recovers with
# time, not with traffic (kos-trust(7)): the answer must not carry the key
# nor share references, and the client must still be low.
. "${srcdir:-.}/tests/lib.sh"
set -e

kosd_env

# a number member of the last (compact JSON) answer
num() { sed -n "s/.*\"$1\":\([0-9.][0-9.]*\).*/\1/p" "$out"; }

# --- an installation with the shipped default policy, and kosd ---
expect 0 "init" "$K" init --dir "$d" --policy "$P/default.policy"
export KOS_CONF="$d/kos.conf"
expect 0 "ca init" "$K" ca init
expect 0 "admin client" "$K" client add admin --scope "*:*"
expect 0 "enroll the admin" "$K" credential enroll "$(cat "$out")"
ADM=$(cat "$out")
check "kosd starts" start_kosd

# --- the admin: a data key and the client ---
api POST /v1/admin/keys "$ADM" '{"name":"payments"}'
want 200 "the admin creates a data key"
api POST /v1/admin/clients "$ADM" \
	'{"name":"mallory","scope":"encrypt:payments decrypt:payments key:payments"}'
want 200 "the admin adds a client"
sec=$(field secret)
api POST /v1/credentials/enroll "" "{\"secret\":\"$sec\"}"
want 200 "the client enrolls"
T=$(field credential)
check "it holds a credential" test -n "$T"

# --- three integrity failures: tampered envelopes decrypted server-side ---
api POST /v1/keys/payments/encrypt "$T" '{"plaintext":"c2VjcmV0","context":"ctx"}'
want 200 "an encryption"
envl=$(field envelope)
check "an envelope" test -n "$envl"
# one base64 character of the ciphertext changed: the tag no longer holds
n=$((${#envl} - 10))
c=$(printf '%s' "$envl" | cut -c "$n")
if [ "$c" = A ]; then r=B; else r=A; fi
bad="$(printf '%s' "$envl" | cut -c "1-$((n - 1))")$r$(printf '%s' "$envl" | cut -c "$((n + 1))-")"
check "the tampered envelope differs in one character" test "${#bad}" -eq "${#envl}" -a "$bad" != "$envl"
for i in 1 2 3; do
	api POST /v1/decrypt "$T" "{\"envelope\":\"$bad\",\"context\":\"ctx\"}"
	want 422 "tampered envelope $i refused"
done
api GET /v1/admin/trust/mallory "$ADM"
want 200 "the admin reads the client's trust"
grep_out '"integrity_failures":3' "three integrity failures recorded"
grep_out '"tier":"low"' "the client is low"
s0=$(num score)
check "at about 35 ($s0)" awk -v s="$s0" 'BEGIN { exit !(s > 30 && s < 40) }'

# --- the attack: 100 cheap successes in a burst, then a refresh ---
ok=0
i=0
while [ $i -lt 100 ]; do
	api POST /v1/keys/payments/encrypt "$T" '{"plaintext":"aGk=","context":"burst"}'
	[ "$code" = 200 ] && ok=$((ok + 1))
	i=$((i + 1))
done
check "100 encryptions succeed ($ok)" test "$ok" -eq 100
api POST /v1/credentials/refresh "$T" '{}'
want 200 "the client refreshes its credential"
T2=$(field credential)
check "a new credential" test -n "$T2" -a "$T2" != "$T"

# --- the key request: no data key, no shares ---
api POST /v1/keys/payments/request "$T2" '{}'
want 200 "the key request is answered"
check "no data key is delivered" sh -c "! grep -q '\"delivery\":\"dek\"' '$out'"
check "no share references either" sh -c "! grep -q -e '\"delivery\":\"shares\"' -e share_id '$out'"
grep_out '"delivery":"server"' "server-side operations only"
check "no key material in the answer" sh -c "! grep -q '\"dek\"' '$out'"

# --- and the client is still low, under the ceiling of its penalties ---
api GET /v1/admin/trust/mallory "$ADM"
want 200 "the admin reads the client's trust again"
grep_out '"tier":"low"' "the client is still low"
s1=$(num score)
ceil=$(num ceiling)
check "its score ($s0 -> $s1) is below medium" awk -v s="$s1" 'BEGIN { exit !(s < 50) }'
check "and at most its ceiling ($ceil)" awk -v s="$s1" -v c="$ceil" 'BEGIN { exit !(s <= c + 0.001) }'
check "the ceiling is the failures' score, barely risen" \
	awk -v s="$s0" -v c="$ceil" 'BEGIN { exit !(c <= s + 0.5) }'
check "the penalty that set it is named" sh -c "! grep -q '\"ceiling_since\":\"-\"' '$out'"
check "the burst was judged: a young client's rate is limited" \
	awk -v a="$(sed -n 's/.*"anomaly":\([0-9.]*\).*/\1/p' "$out")" 'BEGIN { exit !(a < 50) }'
printf '%s\n' "$ADM" > "$kos_tmp/admin.cred"
expect 0 "kosctl trust show through kosd" \
	"$K" --server "unix:$S" --credential-file "$kos_tmp/admin.cred" trust show mallory
grep_out "^tier: *low" "kosctl shows the tier"
grep_out "^ceiling: *[0-9.]* (rising since the penalty at " "kosctl shows the ceiling"

stop_kosd
check "kosd stops cleanly" test "$st" -eq 0

# --- kosd judges the threat level by itself, once a minute from its first
# --- second: no issuance has to come (nor wait for a scan of every client)
sed -i 's/min_clients = 10;/min_clients = 2;/' "$d/kos.policy"
for i in 1 2 3 4 5; do "$K" trust observe api scope >/dev/null; done
expect 0 "trust show api" "$K" trust show api
grep_out "anomalous: *yes" "a client flagged anomalous"
expect 0 "threat show" "$K" threat show
grep_out "level: *normal" "the level is normal before kosd starts"
check "kosd starts again" start_kosd
i=0
while [ $i -lt 100 ]; do
	"$K" threat show >"$out" 2>"$err" || true
	grep -q "set by: *automatic" "$out" && break
	sleep 0.1
	i=$((i + 1))
done
grep_out "set by: *automatic" "kosd raised the level without an issuance"
grep_out "reason: *automatic: [0-9]* of [0-9]* clients" "with its reason"
stop_kosd
check "kosd stops cleanly again" test "$st" -eq 0
finish kosd-attack-trust
