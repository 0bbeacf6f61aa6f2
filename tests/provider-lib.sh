# What the provider's tests share (tests/provider-openssl.sh,
# tests/provider-apps.sh), sourced after tests/lib.sh: the provider kos.so
# as libtool leaves it in the build tree, the sanitizers' runtimes it needs
# in the programs that load it, an installation whose clients sit at high,
# low and deny trust, a test CA and certificates for kosd's keys.

# prov_module TEST: $PROV, kos.so's path, and $san, the sanitizers'
# runtimes it was linked with; a kos.so not built ends TEST as a failure.
prov_module() {
	PROV=""
	for _m in "${KOS_PROVIDER_MODULE:-}" "${top_builddir:-.}/.libs/kos.so"; do
		[ -n "$_m" ] && [ -f "$_m" ] && { PROV=$(readlink -f "$_m"); break; }
	done
	if [ -z "$PROV" ]; then
		fail "kos.so is not built"
		finish "$1"
		exit 1
	fi
	# a provider built with --enable-sanitizers needs their runtimes
	# loaded first into the programs (prov_preload)
	san=""
	for _l in $(readelf -d "$PROV" 2>/dev/null | sed -n 's/.*NEEDED.*\[\(lib[a-z]*san\.so[.0-9]*\)\]/\1/p'); do
		_p=$(ldconfig -p | awk -v l="$_l" '$1 == l { print $NF; exit }')
		[ -n "$_p" ] && san="$san${san:+ }$_p"
	done
}

# prov_preload: every program from here on loads $san first, with leak
# reports off (openssl's, nginx's and curl's leaks are not kos's;
# test-provider looks for the provider's own)
prov_preload() {
	if [ -n "$san" ]; then
		LD_PRELOAD="$san"
		ASAN_OPTIONS="detect_leaks=0:${ASAN_OPTIONS:-}"
		export LD_PRELOAD ASAN_OPTIONS
	fi
}

# prov_install NAME:TYPE...: an installation in $d with kosd running on it
# (one counted check: "kosd starts"), the signing keys named, their public
# keys in $t/NAME.pub, the first admin "admin" and the clients
# $prov_clients, each with the scope $prov_scope and a credential in
# $t/CLIENT.cred. Trust is the integrity factor alone, starting at 90;
# signing and RSA decryption need the medium tier (signing.min_tier, set
# whether the shipped policy names it or not); a client named "low" is put
# at the low tier, one named "den" at deny.
prov_clients=${prov_clients:-"app low den gone"}
prov_scope=${prov_scope:-"sign:p256 sign:ed sign:rsa sign:rsa3 sign:cli decrypt:rsa decrypt:rsa3 pubkey:*"}
prov_install() {
	sed -e 's/prior = 60.0;/prior = 90.0;/' \
		-e 's/^    latency = 1.0;/    latency = 0.0;/' -e 's/^    usage = 1.0;/    usage = 0.0;/' \
		-e 's/^    anomaly = 2.0;/    anomaly = 0.0;/' -e 's/^    reputation = 1.0;/    reputation = 0.0;/' \
		-e 's/recovery = 1.0; };/recovery = 0.0; };/' \
		-e '/min_tier/!s/allow_sha1 = false;/allow_sha1 = false; min_tier = "medium";/' \
		-e 's/min_tier = "[a-z]*";/min_tier = "medium";/' \
		"$P/default.policy" > "$t/test.policy"
	setup "init" "$K" init --dir "$d" --policy "$t/test.policy"
	KOS_CONF="$d/kos.conf"
	export KOS_CONF
	setup "ca init" "$K" ca init
	setup "the first admin" "$K" client add admin --scope "*:*"
	cp "$out" "$t/admin.secret"
	for _kt in "$@"; do
		setup "the key ${_kt%%:*}" "$K" key create "${_kt%%:*}" --type "${_kt#*:}"
	done
	check "kosd starts" start_kosd
	run ks admin credential enroll - < "$t/admin.secret"
	setup "enroll admin" test "$status" -eq 0
	for _cl in $prov_clients; do
		setup "client add $_cl" ks admin client add "$_cl" --scope "$prov_scope"
		cp "$out" "$t/$_cl.secret"
		run ks "$_cl" credential enroll - < "$t/$_cl.secret"
		setup "enroll $_cl" test "$status" -eq 0
		case $_cl in
		low) _n=2 ;;
		den) _n=4 ;;
		*) _n=0 ;;
		esac
		while [ "$_n" -gt 0 ]; do
			run "$K" trust observe "$_cl" integrity
			_n=$((_n - 1))
		done
	done
	for _kt in "$@"; do
		setup "${_kt%%:*}'s public key" ks admin key pubkey "${_kt%%:*}"
		cp "$out" "$t/${_kt%%:*}.pub"
	done
}

# with_prov CMD...: CMD, a program that loads kos.so, with a sanitizer
# build's runtimes preloaded (nothing else needs them)
with_prov() {
	if [ -n "$san" ]; then
		env LD_PRELOAD="$san" ASAN_OPTIONS="detect_leaks=0:${ASAN_OPTIONS:-}" "$@"
	else
		"$@"
	fi
}
# o CLIENT ARGS...: openssl with the provider, as CLIENT
o() {
	_cl=$1 _cmd=$2
	shift 2
	with_prov env KOS_SERVER="unix:$S" KOS_CREDENTIAL_FILE="$t/$_cl.cred" \
		OPENSSL_MODULES="$(dirname "$PROV")" openssl "$_cmd" -provider kos -provider default "$@"
}
# same A B: both files hold the same, and something
same() { test -s "$1" && cmp -s "$1" "$2"; }

# prov_ca: a test CA, $t/ca.pem and its key $t/ca.key
prov_ca() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
		-subj "/CN=kos test CA" -keyout "$t/ca.key" -out "$t/ca.pem" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign"
}
# issue NAME CN EXT: $t/NAME.crt, the test CA's certificate for kosd's key
# NAME from its CSR (made by the provider, as admin)
issue() {
	o admin req -new -key "kos:$1" -subj "/CN=$2" -out "$t/$1.tls.csr" >/dev/null 2>&1 &&
		printf '%s\n' "$3" > "$t/$1.ext" &&
		openssl x509 -req -in "$t/$1.tls.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial \
			-days 1 -extfile "$t/$1.ext" -out "$t/$1.crt" >/dev/null 2>&1
}
