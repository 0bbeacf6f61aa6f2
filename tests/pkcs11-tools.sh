#!/bin/sh
# libkos-pkcs11.so through the PKCS#11 consumers people actually use, on a
# real kosd with SoftHSM tokens in a temporary directory: pkcs11-tool
# (opensc), p11tool (gnutls), python3-pykcs11, ssh-keygen / ssh-agent,
# NSS's modutil and certutil, OpenSSL through libengine-pkcs11-openssl and
# p11-kit's module registry. Every signature is checked by the openssl CLI
# against the public key kosctl gets from kosd, never against what the
# module says. The attacker's cases are the ones these tools can express:
# reading a key's value, as a high and as a low client.
. "${srcdir:-.}/tests/lib.sh"
set -e

kosd_env
t="$kos_tmp"

# The module as libtool leaves it in the build tree.
M=""
for m in "${KOS_PKCS11_MODULE:-}" "${top_builddir:-.}/.libs/libkos-pkcs11.so" \
	"${top_builddir:-.}/pkcs11/.libs/libkos-pkcs11.so"; do
	[ -n "$m" ] && [ -f "$m" ] && { M=$(readlink -f "$m"); break; }
done
if [ -z "$M" ]; then
	fail "libkos-pkcs11.so is not built"
	finish pkcs11-tools
	exit 1
fi
# Debian's python3: a python3 earlier on PATH (pyenv) may lack PyKCS11
PY=/usr/bin/python3

# A module built with --enable-sanitizers needs the sanitizers' runtimes
# loaded first in every consumer that loads it: preloaded below, once the
# installation is made, with leak reports off (the consumers' leaks are
# not kos's; test-pkcs11 looks for the module's own)
san=""
for _l in $(readelf -d "$M" 2>/dev/null | sed -n 's/.*NEEDED.*\[\(lib[a-z]*san\.so[.0-9]*\)\]/\1/p'); do
	_p=$(ldconfig -p | awk -v l="$_l" '$1 == l { print $NF; exit }')
	[ -n "$_p" ] && san="$san${san:+ }$_p"
done

# need TOOL...: the Debian packages of scripts/quickstart are installed;
# a missing one is a failure, not a silent skip
need() {
	for _n in "$@"; do
		command -v "$_n" >/dev/null 2>&1 || { fail "$_n is not installed (scripts/quickstart installs it)"; return 1; }
	done
}

# --- an installation; trust = the integrity factor alone, starting at 90 ---
# SHA-1 signatures allowed: pkcs11-tool --test signs a SHA-1 DigestInfo
# with CKM_RSA_PKCS (the default policy's refusal is checked below)
sed -e 's/prior = 60.0;/prior = 90.0;/' \
	-e 's/allow_sha1 = false;/allow_sha1 = true;/' \
	-e 's/^    latency = 1.0;/    latency = 0.0;/' -e 's/^    usage = 1.0;/    usage = 0.0;/' \
	-e 's/^    anomaly = 2.0;/    anomaly = 0.0;/' -e 's/^    reputation = 1.0;/    reputation = 0.0;/' \
	-e 's/recovery = 1.0; };/recovery = 0.0; };/' "$P/default.policy" > "$t/test.policy"
setup "init" "$K" init --dir "$d" --policy "$t/test.policy"
export KOS_CONF="$d/kos.conf"
setup "ca init" "$K" ca init
setup "the first admin" "$K" client add admin --scope "*:*"
cp "$out" "$t/admin.secret"
setup "a P-256 key" "$K" key create p256 --type ec-p256
setup "an Ed25519 key" "$K" key create ed --type ed25519
setup "an RSA key" "$K" key create rsa --type rsa-2048
setup "a data key" "$K" key create dek
check "kosd starts" start_kosd
run ks admin credential enroll - < "$t/admin.secret"
setup "enroll admin" test "$status" -eq 0

# app: a high-tier application; low: the same scope, at low trust;
# den: at deny
scope="sign:p256 sign:ed sign:rsa pubkey:* encrypt:dek decrypt:dek key:dek"
# eng: the keys libp11 0.4.12 knows; it gives up on a token at the first
# private key of a type it does not (Ed25519), so the engine's client has
# no Ed25519 key in its scope
for c in app low den gone eng; do
	sc=$scope
	[ "$c" = eng ] && sc="sign:p256 sign:rsa pubkey:p256 pubkey:rsa"
	setup "client add $c" ks admin client add "$c" --scope "$sc"
	cp "$out" "$t/$c.secret"
	run ks "$c" credential enroll - < "$t/$c.secret"
	setup "enroll $c" test "$status" -eq 0
done
run "$K" trust observe low integrity
run "$K" trust observe low integrity
for i in 1 2 3 4; do run "$K" trust observe den integrity; done
setup "revoke gone's credentials" ks admin credential revoke --client gone

for k in p256 ed rsa; do
	setup "$k's public key" ks admin key pubkey "$k"
	cp "$out" "$t/$k.pem"
done

# A certificate for p256, issued by a throwaway CA over kosd's public key.
setup "a CA key" openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$t/ca.key"
setup "p256's certificate" openssl x509 -new -subj "/CN=p256 kos test" -key "$t/ca.key" \
	-force_pubkey "$t/p256.pem" -days 2 -out "$t/p256.crt"
expect 0 "kosctl key cert set p256 (through kosd)" ks admin key cert set p256 "$t/p256.crt"

# conf FILE CLIENT: a module configuration of one slot "kos" on this kosd,
# with CLIENT's credential file (none when CLIENT is -)
conf() {
	if [ "$2" = - ]; then
		printf '{"slots": [{"label": "kos", "server": "unix:%s"}]}\n' "$S" > "$1"
	else
		printf '{"slots": [{"label": "kos", "server": "unix:%s", "credential_file": "%s"}]}\n' \
			"$S" "$t/$2.cred" > "$1"
	fi
}
for c in app low den admin eng -; do
	conf "$t/p11-$c.json" "$c"
done
mv "$t/p11--.json" "$t/p11-nocred.json"
KOS_PKCS11_CONF="$t/p11-app.json"
export KOS_PKCS11_CONF

printf 'a message to sign' > "$t/msg"
openssl dgst -sha256 -binary "$t/msg" > "$t/msg.sha256"

# from here on every command may load the module
if [ -n "$san" ]; then
	LD_PRELOAD="$san"
	ASAN_OPTIONS="detect_leaks=0:${ASAN_OPTIONS:-}"
	export LD_PRELOAD ASAN_OPTIONS
fi

# ==================================================================== pkcs11-tool
if need pkcs11-tool; then
	pt() { pkcs11-tool --module "$M" "$@"; }

	expect 0 "pkcs11-tool --show-info" pt --show-info
	grep_out "Cryptoki version 2\.40" "the module speaks PKCS#11 2.40"
	expect 0 "pkcs11-tool --list-slots" pt --list-slots
	grep_out "token label *: kos$" "the slot holds the token kos"
	grep_out "PIN pad\|protected auth" "a configured credential file: protected authentication path"
	expect 0 "pkcs11-tool --list-mechanisms" pt --list-mechanisms
	for m in ECDSA ECDSA-SHA256 ECDSA-SHA384 ECDSA-SHA512 EDDSA RSA-PKCS RSA-PKCS-PSS \
		SHA256-RSA-PKCS-PSS AES-GCM SHA256 SHA512; do
		grep_out "^ *$m[ ,]" "the mechanism list holds $m"
	done

	expect 0 "pkcs11-tool --list-objects --login" pt --login --list-objects
	grep_out "Private Key Object; EC" "an EC private key"
	grep_out "Public Key Object; EC" "an EC public key"
	grep_out "Private Key Object; RSA" "an RSA private key"
	grep_out "Secret Key Object; AES" "the data key as an AES secret key"
	grep_out "Certificate Object" "p256's certificate"
	grep_out "label: *p256" "labelled with the key's name"
	grep_out "label: *dek" "the data key's label"
	cp "$out" "$t/objects"
	# p11id LABEL [LISTING]: the hex CKA_ID pkcs11-tool listed for LABEL; OpenSC 0.23
	# picks the key of --sign by --id alone, never by --label
	p11id() {
		awk -v l="$1" '$1 == "label:" { cur = $2 } $1 == "ID:" && cur == l { print $2; exit }' \
			"${2:-$t/objects}"
	}
	for k in p256 ed rsa dek; do
		check "$k has a CKA_ID" test -n "$(p11id "$k")"
	done
	check "the private keys are sensitive, always sensitive and never extractable" sh -c \
		"grep -A 4 '^Private Key Object' '$t/objects' | grep 'Access:' |
		grep -v 'sensitive, always sensitive, never extractable' | { ! grep -q .; }"
	check "no object is marked extractable" sh -c \
		"grep 'Access:' '$t/objects' | sed 's/never extractable//g' | { ! grep -q extractable; }"

	# with no credential in the configuration the PIN is one
	expect 0 "login with the PIN file:PATH" env KOS_PKCS11_CONF="$t/p11-nocred.json" \
		pkcs11-tool --module "$M" --login --pin "file:$t/app.cred" --list-objects --type privkey
	grep_out "label: *p256" "file:PATH logs in as the credential's client"
	expect 0 "login with the credential itself as the PIN" env KOS_PKCS11_CONF="$t/p11-nocred.json" \
		pkcs11-tool --module "$M" --login --pin "$(cat "$t/app.cred")" --list-objects --type privkey
	run env KOS_PKCS11_CONF="$t/p11-nocred.json" \
		pkcs11-tool --module "$M" --login --pin "not-a-credential" --list-objects
	check "a PIN that is no credential is refused" test "$status" -ne 0
	grep_err "C_Login.*CKR_PIN_INCORRECT\|C_Login.*CKR_PIN_INVALID" "as CKR_PIN_INCORRECT or CKR_PIN_INVALID"
	run env KOS_PKCS11_CONF="$t/p11-nocred.json" \
		pkcs11-tool --module "$M" --login --pin "file:$t/gone.cred" --list-objects
	check "a revoked credential does not log in" test "$status" -ne 0
	grep_err "C_Login.*CKR_PIN_INCORRECT" "as CKR_PIN_INCORRECT"
	run env KOS_PKCS11_CONF="$t/p11-nocred.json" \
		pkcs11-tool --module "$M" --login --pin "file:$t/none.cred" --list-objects
	check "a PIN naming a missing file does not log in" test "$status" -ne 0

	check "the installation's policy allows SHA-1" grep -q "allow_sha1 = true;" "$d/kos.policy"
	run pt --login --test
	check "pkcs11-tool --test --login" test "$status" -eq 0
	grep_out "No errors" "pkcs11-tool --test finds no errors"

	# --- SHA-1: signed only while the policy allows it ---
	openssl dgst -sha1 -binary "$t/msg" > "$t/msg.sha1"
	{ printf '\060\041\060\011\006\005\053\016\003\002\032\005\000\004\024'
	  cat "$t/msg.sha1"; } > "$t/msg.sha1-di"
	expect 0 "sign CKM_RSA_PKCS over a SHA-1 DigestInfo (allowed)" pt --login --sign -m RSA-PKCS \
		--id "$(p11id rsa)" -i "$t/msg.sha1-di" -o "$t/sha1.sig"
	expect 0 "openssl verifies the SHA-1 PKCS#1 v1.5 signature" openssl pkeyutl -verify -pubin \
		-inkey "$t/rsa.pem" -pkeyopt digest:sha1 -in "$t/msg.sha1" -sigfile "$t/sha1.sig"
	run ks admin key sign rsa --hash sha1 < "$t/msg"
	cp "$out" "$t/sha1-kosctl.sig"
	check "kosctl key sign --hash sha1 (allowed)" test "$status" -eq 0
	expect 0 "openssl verifies kosctl's SHA-1 signature" openssl pkeyutl -verify -pubin \
		-inkey "$t/rsa.pem" -pkeyopt digest:sha1 -in "$t/msg.sha1" -sigfile "$t/sha1-kosctl.sig"
	sed 's/allow_sha1 = true;/allow_sha1 = false;/' "$d/kos.policy" > "$t/nosha1.policy"
	cp "$d/kos.policy" "$t/sha1.policy"
	cp "$t/nosha1.policy" "$d/kos.policy"
	setup "reload the default signing.allow_sha1" ks admin policy reload
	run pt --login --sign -m RSA-PKCS --id "$(p11id rsa)" -i "$t/msg.sha1-di" -o "$t/sha1.no"
	check "with the default policy the SHA-1 signature is refused" test "$status" -ne 0
	# OpenSC 0.23 names CKR_FUNCTION_REJECTED by its value
	grep_err "CKR_FUNCTION_REJECTED\|rv = .*(0x200)" "as CKR_FUNCTION_REJECTED"
	run pt --login --test
	check "with the default policy pkcs11-tool --test fails" test "$status" -ne 0
	check "on its SHA-1 signature" grep -q "CKR_FUNCTION_REJECTED\|(0x200)" "$out" "$err"
	expect 1 "kosctl key sign --hash sha1 is refused by default" ks admin key sign rsa --hash sha1 \
		< "$t/msg"
	grep_err "SHA-1 signatures are disabled by the policy (signing.allow_sha1)" \
		"kosd names the policy setting"
	expect 0 "a SHA-256 DigestInfo is still signed" pt --login --sign -m SHA256-RSA-PKCS \
		--id "$(p11id rsa)" -i "$t/msg" -o "$t/sha256.sig"
	cp "$t/sha1.policy" "$d/kos.policy"
	setup "reload signing.allow_sha1 = true" ks admin policy reload
	run pt --test-threads IN --test-threads ILGISLT0 -L
	check "pkcs11-tool --test-threads (C_Initialize in threads)" test "$status" -eq 0
	run pt --test-fork
	check "pkcs11-tool --test-fork (C_Initialize in a child)" test "$status" -eq 0

	# --- public keys read through the module are kosd's ---
	# OpenSC 0.23's --read-object of an EC public key reads the group name
	# after freeing it (valgrind: EVP_PKEY_export's parameters, freed, then
	# used by EVP_PKEY_fromdata): it fails or not by the heap's layout,
	# whatever the module, so P-256 is read by p11tool below
	for k in rsa ed; do
		# OpenSC 0.23 writes SubjectPublicKeyInfo as DER, an EdDSA key as PEM
		run pt --read-object --type pubkey --label "$k" -o "$t/$k.p11.der"
		if [ "$status" -eq 0 ] && { openssl pkey -pubin -inform DER -in "$t/$k.p11.der" \
			-out "$t/$k.p11.pem" 2>/dev/null || openssl pkey -pubin -in "$t/$k.p11.der" \
			-out "$t/$k.p11.pem" 2>"$err"; } && cmp -s "$t/$k.p11.pem" "$t/$k.pem"; then
			pass "--read-object --type pubkey $k is kosd's public key"
		else
			fail "--read-object --type pubkey $k is kosd's public key"
		fi
	done

	# --- signatures, each checked by openssl on kosctl's public key ---
	expect 0 "sign CKM_ECDSA over a SHA-256 digest" pt --login --sign -m ECDSA --id "$(p11id p256)" \
		--signature-format openssl -i "$t/msg.sha256" -o "$t/ecdsa.sig"
	expect 0 "openssl verifies the ECDSA signature" openssl pkeyutl -verify -pubin \
		-inkey "$t/p256.pem" -in "$t/msg.sha256" -sigfile "$t/ecdsa.sig"
	expect 0 "sign CKM_ECDSA_SHA256 over the message" pt --login --sign -m ECDSA-SHA256 \
		--id "$(p11id p256)" --signature-format openssl -i "$t/msg" -o "$t/ecdsa256.sig"
	expect 0 "openssl verifies the ECDSA-SHA256 signature" openssl dgst -sha256 \
		-verify "$t/p256.pem" -signature "$t/ecdsa256.sig" "$t/msg"
	expect 0 "sign CKM_EDDSA" pt --login --sign -m EDDSA --id "$(p11id ed)" -i "$t/msg" -o "$t/ed.sig"
	expect 0 "openssl verifies the Ed25519 signature" openssl pkeyutl -verify -pubin \
		-inkey "$t/ed.pem" -rawin -in "$t/msg" -sigfile "$t/ed.sig"
	expect 0 "sign CKM_SHA256_RSA_PKCS_PSS" pt --login --sign -m SHA256-RSA-PKCS-PSS --id "$(p11id rsa)" \
		-i "$t/msg" -o "$t/pss.sig"
	expect 0 "openssl verifies the PSS signature" openssl dgst -sha256 -verify "$t/rsa.pem" \
		-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest -signature "$t/pss.sig" "$t/msg"
	expect 0 "sign CKM_RSA_PKCS_PSS over a digest" pt --login --sign -m RSA-PKCS-PSS --id "$(p11id rsa)" \
		--hash-algorithm SHA256 --mgf MGF1-SHA256 --salt-len 32 -i "$t/msg.sha256" -o "$t/pss2.sig"
	expect 0 "openssl verifies the PSS signature over the digest" openssl pkeyutl -verify -pubin \
		-inkey "$t/rsa.pem" -in "$t/msg.sha256" -sigfile "$t/pss2.sig" -pkeyopt digest:sha256 \
		-pkeyopt rsa_padding_mode:pss -pkeyopt rsa_pss_saltlen:32 -pkeyopt rsa_mgf1_md:sha256
	expect 0 "sign CKM_SHA256_RSA_PKCS" pt --login --sign -m SHA256-RSA-PKCS --id "$(p11id rsa)" \
		-i "$t/msg" -o "$t/pkcs1.sig"
	expect 0 "openssl verifies the PKCS#1 v1.5 signature" openssl dgst -sha256 -verify "$t/rsa.pem" \
		-signature "$t/pkcs1.sig" "$t/msg"
	# pkcs11-tool --verify exits 0 either way: what it prints is the verdict
	expect 0 "C_Verify through the module" pt --login --verify -m ECDSA-SHA256 --id "$(p11id p256)" \
		--signature-format openssl -i "$t/msg" --signature-file "$t/ecdsa256.sig"
	grep_out "Signature is valid" "C_Verify accepts the signature"
	printf 'another message' > "$t/msg2"
	run pt --login --verify -m ECDSA-SHA256 --id "$(p11id p256)" --signature-format openssl \
		-i "$t/msg2" --signature-file "$t/ecdsa256.sig"
	grep_out "Invalid signature" "C_Verify refuses it for another message"
	expect 0 "C_Verify of an Ed25519 signature" pt --login --verify -m EDDSA --id "$(p11id ed)" \
		-i "$t/msg" --signature-file "$t/ed.sig"
	grep_out "Signature is valid" "C_Verify accepts the Ed25519 signature"
	expect 0 "pkcs11-tool --generate-random" pt --generate-random 32 -o "$t/rand"
	check "32 random bytes" test "$(wc -c < "$t/rand")" -eq 32
	expect 0 "pkcs11-tool --hash (C_Digest SHA-256)" pt --hash -m SHA256 -i "$t/msg" -o "$t/msg.p11sha"
	check "the digest is SHA-256's" cmp -s "$t/msg.p11sha" "$t/msg.sha256"

	# --- tiers and refusals ---
	expect 0 "a low-tier client signs (signing keys stay in the HSM)" \
		env KOS_PKCS11_CONF="$t/p11-low.json" pkcs11-tool --module "$M" --login \
		--sign -m ECDSA --id "$(p11id p256)" --signature-format openssl -i "$t/msg.sha256" -o "$t/low.sig"
	expect 0 "openssl verifies the low client's signature" openssl pkeyutl -verify -pubin \
		-inkey "$t/p256.pem" -in "$t/msg.sha256" -sigfile "$t/low.sig"
	run env KOS_PKCS11_CONF="$t/p11-den.json" pkcs11-tool --module "$M" --login \
		--sign -m ECDSA --id "$(p11id p256)" -i "$t/msg.sha256" -o "$t/den.sig"
	check "a deny client cannot sign" test "$status" -ne 0
	grep_err "CKR_FUNCTION_REJECTED\|CKR_PIN_LOCKED" \
		"as CKR_PIN_LOCKED at login or CKR_FUNCTION_REJECTED"
	run env KOS_PKCS11_CONF="$t/p11-app.json" pkcs11-tool --module "$M" --login \
		--keypairgen --key-type EC:prime256v1 --label app-made
	check "a client without admin:keys cannot generate a key pair" test "$status" -ne 0

	# --- keys made through the module are kosd's keys ---
	expect 0 "pkcs11-tool --keypairgen EC:prime256v1 (admin)" env KOS_PKCS11_CONF="$t/p11-admin.json" \
		pkcs11-tool --module "$M" --login --keypairgen --key-type EC:prime256v1 --label gen-ec
	expect 0 "pkcs11-tool --keypairgen EC:ed25519 (admin)" env KOS_PKCS11_CONF="$t/p11-admin.json" \
		pkcs11-tool --module "$M" --login --keypairgen --key-type EC:edwards25519 --label gen-ed
	expect 0 "pkcs11-tool --keypairgen rsa:2048 (admin)" env KOS_PKCS11_CONF="$t/p11-admin.json" \
		pkcs11-tool --module "$M" --login --keypairgen --key-type rsa:2048 --label gen-rsa
	# pkcs11-tool asks for CKA_SENSITIVE and CKA_PRIVATE false unless told
	run env KOS_PKCS11_CONF="$t/p11-admin.json" \
		pkcs11-tool --module "$M" --login --keygen --key-type AES:32 --label gen-dek
	check "--keygen of a non-sensitive, public secret key is refused" test "$status" -ne 0
	grep_err "C_GenerateKey.*CKR_ATTRIBUTE_VALUE_INVALID\|C_GenerateKey.*CKR_TEMPLATE_INCONSISTENT" \
		"as an invalid template"
	expect 0 "pkcs11-tool --keygen AES:32 --sensitive --private (admin)" \
		env KOS_PKCS11_CONF="$t/p11-admin.json" pkcs11-tool --module "$M" --login \
		--keygen --key-type AES:32 --sensitive --private --label gen-dek
	expect 0 "kosctl key list" ks admin key list
	grep_out "^gen-ec " "kosd holds gen-ec"
	grep_out "^gen-ed " "kosd holds gen-ed"
	grep_out "^gen-rsa " "kosd holds gen-rsa"
	grep_out "^gen-dek " "kosd holds gen-dek"
	setup "gen-ec's public key" ks admin key pubkey gen-ec
	cp "$out" "$t/gen-ec.pem"
	run env KOS_PKCS11_CONF="$t/p11-admin.json" pkcs11-tool --module "$M" --login \
		--list-objects --type privkey
	cp "$out" "$t/objects-admin"
	expect 0 "sign with the generated key" env KOS_PKCS11_CONF="$t/p11-admin.json" \
		pkcs11-tool --module "$M" --login --sign -m ECDSA-SHA256 --id "$(p11id gen-ec "$t/objects-admin")" \
		--signature-format openssl -i "$t/msg" -o "$t/gen.sig"
	expect 0 "openssl verifies it with kosctl's public key" openssl dgst -sha256 \
		-verify "$t/gen-ec.pem" -signature "$t/gen.sig" "$t/msg"

	# --- the attacker's cases the CLI can express ---
	for c in app low; do
		run env KOS_PKCS11_CONF="$t/p11-$c.json" pkcs11-tool --module "$M" --login \
			--read-object --type secrkey --label dek -o "$t/dek.$c"
		check "$c cannot read the data key's CKA_VALUE" test "$status" -ne 0
		check "and nothing is written" test ! -s "$t/dek.$c"
		# OpenSC 0.23 does not even ask for a private key's value (it
		# says "not (yet) supported"); the pykcs11 script below asks
		run env KOS_PKCS11_CONF="$t/p11-$c.json" pkcs11-tool --module "$M" --login \
			--read-object --type privkey --label p256 -o "$t/priv.$c"
		check "$c: --read-object of the private key writes nothing" test ! -s "$t/priv.$c"
	done
	# C_WrapKey of the data key with itself, the only wrapping key there is
	dek_id=$(p11id dek)
	for c in app low; do
		run env KOS_PKCS11_CONF="$t/p11-$c.json" pkcs11-tool --module "$M" --login \
			--wrap -m AES-KEY-WRAP --id "$dek_id" --application-id "$dek_id" -o "$t/wrapped.$c"
		check "$c cannot wrap the data key out" test "$status" -ne 0 -a ! -s "$t/wrapped.$c"
	done
fi

# ==================================================================== p11tool
if need p11tool; then
	expect 0 "p11tool --list-tokens" p11tool --provider "$M" --list-tokens
	grep_out "Label: kos" "p11tool sees the token"
	expect 0 "p11tool --list-all --login" p11tool --provider "$M" --login --batch --list-all \
		"pkcs11:token=kos"
	grep_out "object=p256" "p11tool lists p256"
	grep_out "Type: Private key" "and private keys"
	grep_out "Type: X.509 Certificate" "and the certificate"
	expect 0 "p11tool --list-all-certs" p11tool --provider "$M" --batch --list-all-certs \
		"pkcs11:token=kos"
	grep_out "object=p256" "the certificate is p256's"
	expect 0 "p11tool --export the certificate" p11tool --provider "$M" --batch \
		--export "pkcs11:token=kos;object=p256;type=cert" --outfile "$t/p256.p11tool.crt"
	check "the same certificate as kosctl stored" sh -c \
		"openssl x509 -in '$t/p256.p11tool.crt' -outform DER | cmp -s - \
		\$(openssl x509 -in '$t/p256.crt' -outform DER -out '$t/p256.crt.der'; echo '$t/p256.crt.der')"
	for k in p256 ed rsa; do
		run p11tool --provider "$M" --batch --export-pubkey "pkcs11:token=kos;object=$k;type=public" \
			--outfile "$t/$k.gnutls.pem"
		if [ "$status" -eq 0 ] && openssl pkey -pubin -in "$t/$k.gnutls.pem" -out "$t/$k.gnutls.n" \
			2>"$err" && cmp -s "$t/$k.gnutls.n" "$t/$k.pem"; then
			pass "p11tool --export-pubkey $k is kosd's public key"
		else
			fail "p11tool --export-pubkey $k is kosd's public key"
		fi
	done
	# GnuTLS 3.7.9's --test-sign has no Ed25519 ("No supported signature
	# algorithm for EdDSA (Ed25519) and SHA256"): pkcs11-tool signs with it
	for k in p256 rsa; do
		expect 0 "p11tool --test-sign $k" p11tool --provider "$M" --login --batch \
			--test-sign "pkcs11:token=kos;object=$k;type=private"
		grep_err "Verifying against public key in the token... ok" "p11tool verifies $k's signature"
	done
fi

# ==================================================================== python3-pykcs11
if [ -x "$PY" ] && "$PY" -c 'import PyKCS11' 2>/dev/null; then
	# writes sig.der (ECDSA, raw r||s) and reports each step as "ok NAME"
	# or "FAIL NAME: why"; the shell counts them
	cat > "$t/p11.py" <<'EOF'
import sys
import PyKCS11
from PyKCS11.LowLevel import CKA_VALUE, CKR_ATTRIBUTE_SENSITIVE

module, credfile, outdir, lowcred = sys.argv[1:5]
lib = PyKCS11.PyKCS11Lib()
lib.load(module)

def step(name, fn):
    try:
        r = fn()
        print("ok " + name)
        return r
    except Exception as e:
        print("FAIL %s: %s" % (name, e))
        return None

slot = lib.getSlotList(tokenPresent=True)[0]
s = lib.openSession(slot, PyKCS11.CKF_SERIAL_SESSION | PyKCS11.CKF_RW_SESSION)
step("login with file:PATH", lambda: s.login("file:" + credfile))

def one(cls, label):
    objs = s.findObjects([(PyKCS11.CKA_CLASS, cls), (PyKCS11.CKA_LABEL, label)])
    if len(objs) != 1:
        raise Exception("%d objects labelled %s" % (len(objs), label))
    return objs[0]

priv = step("find p256's private key", lambda: one(PyKCS11.CKO_PRIVATE_KEY, "p256"))
dek = step("find the data key", lambda: one(PyKCS11.CKO_SECRET_KEY, "dek"))
digest = open(outdir + "/msg.sha256", "rb").read()
if priv is not None:
    def sign():
        sig = bytes(s.sign(priv, digest, PyKCS11.Mechanism(PyKCS11.CKM_ECDSA, None)))
        if len(sig) != 64:
            raise Exception("an ECDSA P-256 signature of %d bytes" % len(sig))
        open(outdir + "/py.sig", "wb").write(sig)
    step("C_Sign CKM_ECDSA", sign)
    def attrs():
        a = s.getAttributeValue(priv, [PyKCS11.CKA_SENSITIVE, PyKCS11.CKA_EXTRACTABLE,
                                       PyKCS11.CKA_ALWAYS_SENSITIVE,
                                       PyKCS11.CKA_NEVER_EXTRACTABLE])
        if list(a) != [True, False, True, True]:
            raise Exception("sensitive/extractable/always/never = %s" % a)
    step("the private key is sensitive, never extractable", attrs)
    def priv_value():
        t = PyKCS11.LowLevel.ckattrlist(1)
        t[0].SetType(CKA_VALUE)
        rv = lib.lib.C_GetAttributeValue(s.session, priv, t)
        if rv != CKR_ATTRIBUTE_SENSITIVE:
            raise Exception("C_GetAttributeValue(CKA_VALUE) returned 0x%x" % rv)
    step("CKA_VALUE of the private key is CKR_ATTRIBUTE_SENSITIVE", priv_value)
if dek is not None:
    pt = b"the order of the day" * 50
    iv = bytes(range(12))
    aad = b"order:42"
    gcm = PyKCS11.AES_GCM_Mechanism(iv, aad, 128)
    ct = step("C_Encrypt CKM_AES_GCM", lambda: bytes(s.encrypt(dek, pt, gcm)))
    if ct is not None:
        if len(ct) != len(pt) + 16:
            print("FAIL the GCM ciphertext is %d bytes, not %d" % (len(ct), len(pt) + 16))
        else:
            print("ok the GCM ciphertext carries a 16-byte tag")
        open(outdir + "/py.gcm", "wb").write(ct)
        def dec():
            back = bytes(s.decrypt(dek, ct, PyKCS11.AES_GCM_Mechanism(iv, aad, 128)))
            if back != pt:
                raise Exception("another plaintext")
        step("C_Decrypt CKM_AES_GCM gives the plaintext back", dec)
        def bad():
            bad_ct = bytearray(ct)
            bad_ct[3] ^= 1
            try:
                s.decrypt(dek, bytes(bad_ct), PyKCS11.AES_GCM_Mechanism(iv, aad, 128))
            except PyKCS11.PyKCS11Error as e:
                if e.value != PyKCS11.CKR_ENCRYPTED_DATA_INVALID:
                    raise Exception("refused with %s" % e)
                return
            raise Exception("a changed ciphertext decrypted")
        step("a changed byte is CKR_ENCRYPTED_DATA_INVALID", bad)
    # the wrapper hides C_GetAttributeValue's return code: the low-level call
    def value():
        t = PyKCS11.LowLevel.ckattrlist(1)
        t[0].SetType(CKA_VALUE)
        rv = lib.lib.C_GetAttributeValue(s.session, dek, t)
        if rv != CKR_ATTRIBUTE_SENSITIVE:
            raise Exception("C_GetAttributeValue(CKA_VALUE) returned 0x%x" % rv)
    step("CKA_VALUE of the data key is CKR_ATTRIBUTE_SENSITIVE", value)
s.logout()
s.closeSession()

# a low-tier client: GCM runs in kosd, the key still never shows
s = lib.openSession(slot, PyKCS11.CKF_SERIAL_SESSION)
step("login as the low client", lambda: s.login("file:" + lowcred))
dek = step("low finds the data key", lambda: one(PyKCS11.CKO_SECRET_KEY, "dek"))
if dek is not None:
    ct = open(outdir + "/py.gcm", "rb").read()
    def dec_low():
        back = bytes(s.decrypt(dek, ct, PyKCS11.AES_GCM_Mechanism(bytes(range(12)), b"order:42", 128)))
        if back != b"the order of the day" * 50:
            raise Exception("another plaintext")
    step("low decrypts the GCM ciphertext (in kosd)", dec_low)
    def value_low():
        t = PyKCS11.LowLevel.ckattrlist(1)
        t[0].SetType(CKA_VALUE)
        rv = lib.lib.C_GetAttributeValue(s.session, dek, t)
        if rv != CKR_ATTRIBUTE_SENSITIVE:
            raise Exception("C_GetAttributeValue(CKA_VALUE) returned 0x%x" % rv)
    step("low: CKA_VALUE of the data key is CKR_ATTRIBUTE_SENSITIVE", value_low)
    def extractable_low():
        try:
            s.setAttributeValue(dek, [(PyKCS11.CKA_EXTRACTABLE, True)])
        except PyKCS11.PyKCS11Error:
            return
        raise Exception("CKA_EXTRACTABLE was set")
    step("low cannot make the data key extractable", extractable_low)
s.logout()
s.closeSession()
EOF
	run env KOS_PKCS11_CONF="$t/p11-nocred.json" "$PY" "$t/p11.py" "$M" "$t/app.cred" "$t" "$t/low.cred"
	[ "$status" -eq 0 ] || fail "the pykcs11 script exits with status $status"
	cp "$out" "$t/py.out"
	while IFS= read -r l; do
		case $l in
		"ok "*) pass "pykcs11: ${l#ok }" ;;
		"FAIL "*) : > "$out"; : > "$err"; fail "pykcs11: ${l#FAIL }" ;;
		esac
	done < "$t/py.out"
	check "pykcs11 ran every step" test "$(grep -c '^ok \|^FAIL ' "$t/py.out")" -ge 16
	# raw r||s to DER for the openssl CLI
	if [ -s "$t/py.sig" ]; then
		"$PY" - "$t/py.sig" "$t/py.der" <<'EOF'
import sys
raw = open(sys.argv[1], "rb").read()
def integer(b):
    b = b.lstrip(b"\0") or b"\0"
    if b[0] & 0x80:
        b = b"\0" + b
    return b"\x02" + bytes([len(b)]) + b
body = integer(raw[:32]) + integer(raw[32:])
open(sys.argv[2], "wb").write(b"\x30" + bytes([len(body)]) + body)
EOF
		expect 0 "openssl verifies pykcs11's ECDSA signature" openssl pkeyutl -verify -pubin \
			-inkey "$t/p256.pem" -in "$t/msg.sha256" -sigfile "$t/py.der"
	fi
else
	fail "python3-pykcs11 is not installed for $PY (scripts/quickstart installs it)"
fi

# ==================================================================== ssh
if need ssh-keygen ssh-agent ssh-add; then
	expect 0 "ssh-keygen -D lists the module's public keys" ssh-keygen -D "$M"
	cp "$out" "$t/ssh-D"
	# blob FILE: the base64 key of an OpenSSH public key line, "none" if
	# there is none (so an empty pattern never matches everything)
	blob() { _b=$(cut -d' ' -f2 "$1" 2>/dev/null); echo "${_b:-none}"; }
	ssh-keygen -i -m PKCS8 -f "$t/p256.pem" > "$t/p256.ssh" 2>"$err"
	check "ssh-keygen -D shows p256 as kosctl's key" grep -q "$(blob "$t/p256.ssh")" "$t/ssh-D"
	ssh-keygen -i -m PKCS8 -f "$t/rsa.pem" > "$t/rsa.ssh" 2>"$err"
	check "ssh-keygen -D shows the RSA key as kosctl's" grep -q "$(blob "$t/rsa.ssh")" "$t/ssh-D"

	# ssh-agent is set-group-ID: the loader drops LD_PRELOAD, so its
	# helper cannot load a sanitizer build's module
	if [ -n "$san" ] && [ -g "$(command -v ssh-agent)" ]; then
		echo "skip - ssh-agent and ssh-add -s: ssh-agent is setgid and drops LD_PRELOAD (sanitizer build)"
	else
	# the agent loads the module (its real path) and asks for the PIN
	# through SSH_ASKPASS: the PIN names the credential file
	printf '#!/bin/sh\necho "file:%s"\n' "$t/app.cred" > "$t/askpass"
	chmod 700 "$t/askpass"
	# the agent's helper loads the module: the configuration without a
	# credential file is the agent's, and the PIN is really used
	run env KOS_PKCS11_CONF="$t/p11-nocred.json" ssh-agent -s -a "$t/agent.sock" -P "$M"
	apid=$(sed -n 's/^SSH_AGENT_PID=\([0-9]*\);.*/\1/p' "$out")
	if [ -n "$apid" ]; then
		expect 0 "ssh-add -s adds the module's keys to ssh-agent" env SSH_AUTH_SOCK="$t/agent.sock" \
			SSH_ASKPASS="$t/askpass" SSH_ASKPASS_REQUIRE=force DISPLAY=:0 ssh-add -s "$M"
		expect 0 "ssh-add -L" env SSH_AUTH_SOCK="$t/agent.sock" ssh-add -L
		check "the agent holds p256" grep -q "$(blob "$t/p256.ssh")" "$out"
		cp "$t/p256.ssh" "$t/p256.pub"
		printf 'a message to sign\n' > "$t/ssh-msg"
		expect 0 "ssh-keygen -Y sign through the agent" env SSH_AUTH_SOCK="$t/agent.sock" \
			ssh-keygen -Y sign -f "$t/p256.pub" -n file "$t/ssh-msg"
		printf 'app %s\n' "$(cat "$t/p256.ssh")" > "$t/allowed"
		expect 0 "ssh-keygen -Y verify accepts it" sh -c "ssh-keygen -Y verify -f '$t/allowed' \
			-I app -n file -s '$t/ssh-msg.sig' < '$t/ssh-msg'"
		printf 'another message\n' > "$t/ssh-msg2"
		expect 255 "and refuses it for another message" sh -c "ssh-keygen -Y verify \
			-f '$t/allowed' -I app -n file -s '$t/ssh-msg.sig' < '$t/ssh-msg2'"
		kill "$apid" 2>/dev/null || true
	else
		fail "ssh-agent did not start"
	fi
	fi
fi

# ==================================================================== NSS
if need modutil certutil; then
	db="$t/nssdb"
	mkdir "$db"
	setup "an NSS database" certutil -N -d "sql:$db" --empty-password
	expect 0 "modutil -add kos" modutil -add kos -libfile "$M" -dbdir "sql:$db" -force
	expect 0 "modutil -list" modutil -list -dbdir "sql:$db"
	grep_out "kos" "NSS lists the module"
	grep_out "token: kos" "and its token"
	printf 'file:%s\n' "$t/app.cred" > "$t/nss.pin"
	expect 0 "certutil -L -h kos" env KOS_PKCS11_CONF="$t/p11-nocred.json" \
		certutil -L -d "sql:$db" -h kos -f "$t/nss.pin"
	grep_out "kos:p256" "NSS sees p256's certificate"
	expect 0 "certutil -L -n kos:p256 -a" env KOS_PKCS11_CONF="$t/p11-nocred.json" \
		certutil -L -d "sql:$db" -h kos -f "$t/nss.pin" -n kos:p256 -a
	openssl x509 -in "$t/p256.crt" > "$t/p256.norm" 2>/dev/null
	check "the same certificate" sh -c "openssl x509 -in '$out' 2>/dev/null | cmp -s - '$t/p256.norm'"
	expect 0 "certutil -K -h kos lists the private keys" env KOS_PKCS11_CONF="$t/p11-nocred.json" \
		certutil -K -d "sql:$db" -h kos -f "$t/nss.pin"
	grep_out "p256" "NSS sees p256's private key"
fi

# ==================================================================== OpenSSL engine
engine=$(openssl version -e 2>/dev/null | sed -n 's/^ENGINESDIR: "\(.*\)"/\1/p')/pkcs11.so
if [ -f "$engine" ]; then
	cat > "$t/openssl.cnf" <<EOF
openssl_conf = conf
[conf]
engines = engines
[engines]
pkcs11 = pkcs11
[pkcs11]
engine_id = pkcs11
dynamic_path = $engine
MODULE_PATH = $M
PIN = file:$t/eng.cred
init = 0
EOF
	ose() { env OPENSSL_CONF="$t/openssl.cnf" KOS_PKCS11_CONF="$t/p11-nocred.json" openssl "$@"; }
	expect 0 "openssl pkeyutl -engine pkcs11 -sign (P-256)" ose pkeyutl -engine pkcs11 \
		-keyform engine -inkey "pkcs11:token=kos;object=p256;type=private" -sign \
		-in "$t/msg.sha256" -out "$t/eng.sig"
	expect 0 "openssl verifies the engine's ECDSA signature" openssl pkeyutl -verify -pubin \
		-inkey "$t/p256.pem" -in "$t/msg.sha256" -sigfile "$t/eng.sig"
	expect 0 "openssl dgst -sha256 -engine pkcs11 -sign (RSA)" ose dgst -sha256 -engine pkcs11 \
		-keyform engine -sign "pkcs11:token=kos;object=rsa;type=private" -out "$t/eng-rsa.sig" \
		"$t/msg"
	expect 0 "openssl verifies the engine's RSA signature" openssl dgst -sha256 \
		-verify "$t/rsa.pem" -signature "$t/eng-rsa.sig" "$t/msg"
	expect 0 "openssl dgst -engine pkcs11 -sign (P-256)" ose dgst -sha256 -engine pkcs11 \
		-keyform engine -sign "pkcs11:token=kos;object=p256;type=private" -out "$t/eng-ec.sig" \
		"$t/msg"
	expect 0 "openssl verifies it" openssl dgst -sha256 -verify "$t/p256.pem" \
		-signature "$t/eng-ec.sig" "$t/msg"
else
	fail "libengine-pkcs11-openssl is not installed (no $engine)"
fi

# ==================================================================== p11-kit
if need p11-kit; then
	# p11-kit reads ~/.config/pkcs11/modules for users other than root:
	# as root, run it as nobody with HOME in a directory nobody can read
	home="$t/home"
	mkdir -p "$home/.config/pkcs11/modules"
	printf 'module: %s\n' "$M" > "$home/.config/pkcs11/modules/kos.module"
	conf "$home/p11.json" -
	as=""
	if [ "$(id -u)" -eq 0 ]; then
		as="setpriv --reuid=65534 --regid=65534 --clear-groups --"
		chmod 755 "$t" "$home" "$home/.config" "$home/.config/pkcs11" \
			"$home/.config/pkcs11/modules"
		chmod 644 "$home/p11.json" "$home/.config/pkcs11/modules/kos.module"
	fi
	expect 0 "p11-kit list-modules" $as env HOME="$home" KOS_PKCS11_CONF="$home/p11.json" \
		p11-kit list-modules
	grep_out "^kos: $M" "p11-kit lists kos.module"
	grep_out "token: kos" "and the module's token"
	proxy="$(pkg-config --variable=p11_module_path p11-kit-1 2>/dev/null)/../p11-kit-proxy.so"
	[ -f "$proxy" ] || proxy=/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so
	if [ -f "$proxy" ] && command -v pkcs11-tool >/dev/null; then
		expect 0 "the kos token through p11-kit-proxy.so" $as env HOME="$home" \
			KOS_PKCS11_CONF="$home/p11.json" pkcs11-tool --module "$proxy" --list-slots
		grep_out "token label *: kos$" "the proxy shows the kos token"
	fi
	chmod 700 "$t"
fi

finish pkcs11-tools
