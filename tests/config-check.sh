#!/bin/sh
# kosd -t and kosctl config check, as an administrator runs them before a
# restart: a good configuration passes, each bad one (or a bad policy it
# names) fails with its FILE:LINE problems, and nothing is started or created.
. "${srcdir:-.}/tests/lib.sh"
set -e

K=${KOSCTL:-./kosctl}
D=${KOSD:-./kosd}
P=${KOS_POLICY_DIR:-${srcdir:-.}/policy}
d="$kos_tmp"
cp "$P/default.policy" "$d/default.policy"
# a socket, a store and tokens that must stay untouched by a check
cat >"$d/good.conf" <<CONF
store = "state.db";
policy = "default.policy";
listen = { unix = "kosd.sock"; max_connections = 100; };
tokens = ( { name = "kms1"; role = "kms"; module = "$d/module.so";
             uri = "pkcs11:token=kos-kms1"; pin = "file:kms1.pin"; } );
CONF
# files a check only needs to find readable: their contents are start-up's
: >"$d/module.so"
echo 1234 >"$d/kms1.pin"

# --- a good configuration ---
expect 0 "kosd -t passes a good configuration" "$D" -t --config "$d/good.conf"
grep_out "^kosd: configuration $d/good.conf ok$" "kosd -t says the configuration is ok"
check "kosd -t prints nothing else" test ! -s "$err"
check "kosd -t opened no store and no socket" test ! -e "$d/state.db" -a ! -e "$d/kosd.sock"
expect 0 "kosd --test is -t" "$D" --test -c "$d/good.conf"
expect 0 "kosctl config check passes it" "$K" config check "$d/good.conf"
grep_out "^$d/good.conf: ok$" "kosctl says FILE: ok"
check "kosctl opened no store" test ! -e "$d/state.db"
expect 0 "kosd -t reads \$KOS_CONF" env KOS_CONF="$d/good.conf" "$D" -t
grep_out "configuration $d/good.conf ok" "the file checked is named"

# --- bad configurations: message and exit status from both ---
bad() { # NAME LINE MESSAGE TEXT: both tools refuse TEXT with FILE:LINE: MESSAGE
	printf '%b' "$4" >"$d/$1.conf"
	expect 1 "kosd -t refuses $1" "$D" -t --config "$d/$1.conf"
	grep_err "^$d/$1.conf:$2: $3" "kosd -t: $1 reported at its line"
	check "kosd -t: $1 is not called ok" test ! -s "$out"
	expect 1 "kosctl config check refuses $1" "$K" config check "$d/$1.conf"
	grep_err "^$d/$1.conf:$2: $3" "kosctl: $1 reported at its line"
}
H='store = "state.db";\npolicy = "default.policy";\n'
bad overflow 3 "integer 4294967396 does not fit in 32 bits; write 4294967396L" \
	"${H}listen = { max_connections = 4294967396; };\n"
bad range 4 "listen: max_connections: must be <= 65536 (got 70000)" \
	"${H}listen = {\n  max_connections = 70000;\n};\n"
bad include 3 "@include is not allowed in kos.conf: keep kos.conf in one file" \
	"${H}@include \"/etc/passwd\"\n"
bad unknown 3 "stroe: unknown setting (known here: store, policy," "${H}stroe = 1;\n"
bad unknown-in-group 3 "listen: tls: crl: unknown setting (known here: cert, key, client_ca)" \
	"${H}listen = { tcp = \"127.0.0.1:1\"; tls = { cert = \"c\"; key = \"k\"; client_ca = \"a\"; crl = \"x\"; }; };\n"
bad type 1 "store: must be a string" 'store = 5;\npolicy = "default.policy";\n'
bad syntax 3 "syntax error" "${H}listen = { unix = ; };\n"
bad no-policy 1 "policy: missing (the policy file)" 'store = "state.db";\n'

# files the configuration names for reading must be there
T='tokens = ( { name = "t1"; role = "kms"; module = "'
bad no-module 3 "token t1: module: $d/gone.so: No such file or directory" \
	"${H}${T}$d/gone.so\";\n uri = \"pkcs11:token=t1\"; pin = \"file:kms1.pin\"; } );\n"
bad no-pin-file 5 "token t1: pin: $d/gone.pin: No such file or directory" \
	"${H}${T}$d/module.so\";\n uri = \"pkcs11:token=t1\";\n pin = \"file:gone.pin\"; } );\n"
bad module-directory 3 "token t1: module: $d: not a regular file" \
	"${H}${T}$d\";\n uri = \"pkcs11:token=t1\"; pin = \"file:kms1.pin\"; } );\n"
bad no-tls-key 4 "listen: tls: key: $d/gone.key: No such file or directory" \
	"${H}listen = { tcp = \"127.0.0.1:1\"; tls = { cert = \"kms1.pin\";\n key = \"gone.key\"; client_ca = \"kms1.pin\"; }; };\n"

# every problem of a file, in file order
printf '%b' "${H}colour = 1;\nlisten = { max_body = 10; };\n" >"$d/two.conf"
expect 1 "kosd -t refuses a file with two problems" "$D" -t -c "$d/two.conf"
check "both problems, in file order" \
	test "$(grep "^$d/two.conf:" "$err" | cut -d: -f2 | tr '\n' ' ')" = "3 4 "

# the policy the configuration names is checked too
sed 's/^tiers = { high = 80.0;/tiers = { high = 101.0;/' "$P/default.policy" >"$d/bad.policy"
printf 'store = "state.db";\npolicy = "bad.policy";\n' >"$d/badpol.conf"
expect 1 "kosd -t refuses a bad policy" "$D" -t -c "$d/badpol.conf"
grep_err "^$d/bad.policy:54: tiers.high: must be <= 100 (got 101)" "kosd -t: the policy's problem at its line"
expect 1 "kosctl config check refuses it" "$K" config check "$d/badpol.conf"
grep_err "^$d/bad.policy:54: tiers.high: must be <= 100 (got 101)" "kosctl: the policy's problem"
printf 'store = "state.db";\npolicy = "none.policy";\n' >"$d/nopol.conf"
expect 1 "kosd -t refuses a missing policy" "$D" -t -c "$d/nopol.conf"
grep_err "none.policy: No such file or directory" "the missing policy is named"

# a missing configuration file
expect 1 "kosd -t refuses a missing file" "$D" -t -c "$d/nope.conf"
grep_err "^kosd: $d/nope.conf: No such file or directory" "kosd names the missing file"
expect 1 "kosctl config check refuses a missing file" "$K" config check "$d/nope.conf"
grep_err "$d/nope.conf: No such file or directory" "kosctl names the missing file"

# several files: one bad one fails the command, the good ones are still ok
expect 1 "kosctl config check FILE FILE" "$K" config check "$d/good.conf" "$d/type.conf"
grep_out "^$d/good.conf: ok$" "the good file is ok"
grep_err "^$d/type.conf:1: " "the bad file is reported"

# a KMS front: the CA's JWKS is checked, no token opened
printf 'policy = "default.policy";\nkms = { jwks = "ca.jwks"; };\n' >"$d/kms.conf"
printf 'not json\n' >"$d/ca.jwks"
expect 1 "kosd -t --role kms refuses a bad JWKS" "$D" -t --role kms -c "$d/kms.conf"
grep_err "jwks" "the JWKS is named"
expect 0 "without --role kms the JWKS is not read" "$D" -t -c "$d/kms.conf"

# --- usage ---
expect 2 "kosd -t takes no argument" "$D" -t "$d/good.conf"
expect 0 "kosd --help" "$D" --help
grep_out "-t, --test" "kosd --help documents -t"
expect 2 "kosctl config check without FILE" "$K" config check
expect 0 "kosctl config check --help" "$K" config check --help
grep_out "usage: kosctl config check FILE" "its usage"
expect 0 "kosctl help config" "$K" help config
grep_out "check" "config lists check"
check "no store was made by any check" test ! -e "$d/state.db"

finish config-check
