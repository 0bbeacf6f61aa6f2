#!/bin/sh
# The OpenSSL 3 provider kos.so through the openssl CLI, on a real kosd
# with SoftHSM tokens in a temporary directory: keys by kos: URI and by
# key-URI PEM file, every signature form checked by the default provider
# against the public key kosctl gets from kosd (never against what the
# provider says), certificates and CSRs verified by openssl, CMS signed and
# decrypted, TLS 1.3 with the server's and the client's keys in kosd, and
# the refusals an application sees as OpenSSL errors: low and deny trust,
# out of scope, revoked, a public URI, malformed URIs.
. "${srcdir:-.}/tests/lib.sh"
set -e

kosd_env
t="$kos_tmp"
c="$t"

. "${srcdir:-.}/tests/provider-lib.sh"
prov_module provider-openssl

# --- an installation (tests/provider-lib.sh): app at high trust, low and
# den at the low and deny tiers, gone to be revoked
prov_install p256:ec-p256 ed:ed25519 rsa:rsa-2048 rsa3:rsa-3072 cli:ec-p256 other:ec-p256

# dec: may only decrypt with rsa (its public half comes with that)
setup "client add dec" ks admin client add dec --scope "decrypt:rsa"
cp "$out" "$t/dec.secret"
run ks dec credential enroll - < "$t/dec.secret"
setup "enroll dec" test "$status" -eq 0

printf 'a message to sign through kos\n' > "$t/msg"
openssl dgst -sha256 -binary "$t/msg" > "$t/msg.sha256"
openssl dgst -sha384 -binary "$t/msg" > "$t/msg.sha384"

prov_preload

# ==================================================================== loading
expect 0 "openssl list -providers loads kos" o app list -providers
grep_out "kos" "kos is listed"
grep_out "status: active" "and active"
expect 0 "the store scheme kos is offered" o app list -store-loaders
grep_out "kos" "the store loader kos is listed"
expect 0 "the signature algorithms" o app list -signature-algorithms
grep_out "ECDSA @ kos" "ECDSA from kos"
grep_out "ED25519.* @ kos" "Ed25519 from kos"
check "nothing but signatures, keys, RSA decryption, the store, the decoder and the encoder" \
	sh -c "env KOS_SERVER=unix:$S OPENSSL_MODULES=$(dirname "$PROV") openssl list \
		-provider kos -provider default -digest-algorithms -cipher-algorithms -mac-algorithms \
		-kdf-algorithms -key-exchange-algorithms 2>&1 | { ! grep -q '@ kos'; }"

# ==================================================================== public halves
for k in p256 ed rsa rsa3; do
	expect 0 "pkey -in kos:$k -pubout" o app pkey -in "kos:$k" -pubout -out "$t/$k.out.pub"
	check "kos:$k -pubout is kosd's public key" same "$t/$k.out.pub" "$t/$k.pub"
	expect 0 "pkey -in kos:$k;type=public -pubin" o app pkey -pubin -in "kos:$k;type=public" \
		-pubout -out "$t/$k.out2.pub"
	check "type=public gives the same key" same "$t/$k.out2.pub" "$t/$k.pub"
done
expect 0 "pkey -text -noout of kos:p256" o app pkey -in kos:p256 -text -noout
grep_out "kos key p256, version 1" "names the key and its version"
grep_out "ASN1 OID: prime256v1" "prints the curve"
expect 0 "pkey -text -noout of kos:rsa3" o app pkey -in kos:rsa3 -text -noout
grep_out "3072 bit" "prints the modulus size"
expect 0 "storeutl lists the key" o app storeutl -keys kos:p256
grep_out "Pkey" "as a private key"

# ==================================================================== signatures
# vsig KEY DIGEST SIG [OPTS]: the default provider verifies with kosd's key
vsig() {
	_k=$1 _h=$2 _s=$3
	shift 3
	openssl dgst "-$_h" -verify "$t/$_k.pub" -signature "$_s" "$@" "$t/msg" >/dev/null 2>&1
}
for h in sha256 sha384 sha512; do
	expect 0 "dgst -$h -sign kos:p256" o app dgst "-$h" -sign kos:p256 -out "$t/s" "$t/msg"
	check "the ECDSA $h signature verifies" vsig p256 "$h" "$t/s"
	for k in rsa rsa3; do
		expect 0 "dgst -$h -sign kos:$k (PKCS#1 v1.5)" o app dgst "-$h" -sign "kos:$k" \
			-out "$t/s" "$t/msg"
		check "the $k PKCS#1 v1.5 $h signature verifies" vsig "$k" "$h" "$t/s"
		for sl in digest max auto 20; do
			expect 0 "dgst -$h -sign kos:$k PSS saltlen $sl" o app dgst "-$h" -sign "kos:$k" \
				-sigopt rsa_padding_mode:pss -sigopt "rsa_pss_saltlen:$sl" -out "$t/s" "$t/msg"
			vs=$sl
			[ "$sl" = max ] || [ "$sl" = auto ] && vs=auto
			check "the $k PSS $h saltlen $sl signature verifies" vsig "$k" "$h" "$t/s" \
				-sigopt rsa_padding_mode:pss -sigopt "rsa_pss_saltlen:$vs"
		done
	done
done
printf 'x' | cat "$t/msg" - > "$t/msg.changed"
check "the signature does not verify another message (the check can fail)" sh -c \
	"! openssl dgst -sha512 -verify '$t/rsa3.pub' -signature '$t/s' -sigopt rsa_padding_mode:pss \
	-sigopt rsa_pss_saltlen:20 '$t/msg.changed' >/dev/null 2>&1"
expect 0 "pkeyutl -sign -rawin with kos:ed (Ed25519)" o app pkeyutl -sign -rawin -inkey kos:ed \
	-in "$t/msg" -out "$t/s"
check "the Ed25519 signature verifies" openssl pkeyutl -verify -rawin -pubin -inkey "$t/ed.pub" \
	-in "$t/msg" -sigfile "$t/s"
# precomputed digests: pkeyutl -sign
expect 0 "pkeyutl -sign of a SHA-256 digest with kos:p256" o app pkeyutl -sign -inkey kos:p256 \
	-in "$t/msg.sha256" -out "$t/s"
check "verifies" openssl pkeyutl -verify -pubin -inkey "$t/p256.pub" -in "$t/msg.sha256" -sigfile "$t/s"
expect 0 "pkeyutl -sign of a SHA-384 digest with kos:rsa, digest:sha384" o app pkeyutl -sign \
	-inkey kos:rsa -pkeyopt digest:sha384 -in "$t/msg.sha384" -out "$t/s"
check "verifies" openssl pkeyutl -verify -pubin -inkey "$t/rsa.pub" -pkeyopt digest:sha384 \
	-in "$t/msg.sha384" -sigfile "$t/s"
expect 0 "pkeyutl -sign PSS of a SHA-256 digest with kos:rsa3" o app pkeyutl -sign -inkey kos:rsa3 \
	-pkeyopt digest:sha256 -pkeyopt rsa_padding_mode:pss -pkeyopt rsa_pss_saltlen:digest \
	-in "$t/msg.sha256" -out "$t/s"
check "verifies" openssl pkeyutl -verify -pubin -inkey "$t/rsa3.pub" -pkeyopt digest:sha256 \
	-pkeyopt rsa_padding_mode:pss -pkeyopt rsa_pss_saltlen:digest -in "$t/msg.sha256" -sigfile "$t/s"
run o app pkeyutl -sign -inkey kos:p256 -in "$t/msg" -out "$t/s"
check "a digest of no known length is refused" test "$status" -ne 0
grep_err "kos" "the refusal is the provider's"

# ==================================================================== certificates
for k in p256 ed rsa; do
	expect 0 "req -new -x509 -key kos:$k" o app req -new -x509 -key "kos:$k" -subj "/CN=kos $k" \
		-days 2 -out "$t/$k.self.pem"
	check "the self-signed $k certificate verifies" openssl verify -CAfile "$t/$k.self.pem" "$t/$k.self.pem"
	check "and carries kosd's key" sh -c "openssl x509 -in '$t/$k.self.pem' -pubkey -noout | cmp -s - '$t/$k.pub'"
	expect 0 "req -new -key kos:$k (a CSR)" o app req -new -key "kos:$k" -subj "/CN=csr $k" -out "$t/$k.csr"
	check "req -verify of the $k CSR" openssl req -verify -noout -in "$t/$k.csr"
done
expect 0 "req -x509 with RSA-PSS" o app req -new -x509 -key kos:rsa3 -subj "/CN=pss" -days 2 \
	-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest -sha384 -out "$t/pss.pem"
check "the RSA-PSS certificate verifies" openssl verify -CAfile "$t/pss.pem" "$t/pss.pem"
check "its signature algorithm is rsassaPss" sh -c "openssl x509 -in '$t/pss.pem' -text -noout | grep -q rsassaPss"
expect 0 "x509 -req -signkey kos:p256" o app x509 -req -in "$t/p256.csr" -signkey kos:p256 -days 2 \
	-out "$t/p256.x.pem"
check "x509 -signkey's certificate verifies" openssl verify -CAfile "$t/p256.x.pem" "$t/p256.x.pem"

# ==================================================================== CMS
expect 0 "cms -sign -inkey kos:p256" o app cms -sign -in "$t/msg" -signer "$t/p256.self.pem" \
	-inkey kos:p256 -binary -outform PEM -out "$t/msg.p7s"
check "cms -verify (default provider)" openssl cms -verify -binary -in "$t/msg.p7s" -inform PEM \
	-CAfile "$t/p256.self.pem" -content "$t/msg" -out /dev/null
expect 0 "cms -sign -inkey kos:rsa" o app cms -sign -in "$t/msg" -signer "$t/rsa.self.pem" \
	-inkey kos:rsa -binary -outform PEM -out "$t/msg.rsa.p7s"
check "cms -verify of the RSA signature" openssl cms -verify -binary -in "$t/msg.rsa.p7s" -inform PEM \
	-CAfile "$t/rsa.self.pem" -content "$t/msg" -out /dev/null
setup "cms -encrypt to rsa (PKCS#1 v1.5)" openssl cms -encrypt -aes256 -in "$t/msg" -binary \
	-out "$t/msg.p7m" "$t/rsa.self.pem"
expect 0 "cms -decrypt -inkey kos:rsa" o app cms -decrypt -in "$t/msg.p7m" -recip "$t/rsa.self.pem" \
	-inkey kos:rsa -binary -out "$t/msg.dec"
check "the message comes back" same "$t/msg" "$t/msg.dec"
setup "cms -encrypt to rsa (OAEP)" openssl cms -encrypt -aes256 -in "$t/msg" -binary \
	-recip "$t/rsa.self.pem" -keyopt rsa_padding_mode:oaep -out "$t/msg.oaep.p7m"
expect 0 "cms -decrypt of OAEP -inkey kos:rsa" o app cms -decrypt -in "$t/msg.oaep.p7m" \
	-recip "$t/rsa.self.pem" -inkey kos:rsa -binary -out "$t/msg.dec2"
check "the message comes back" same "$t/msg" "$t/msg.dec2"
for h in sha1 sha256 sha512; do
	setup "pkeyutl -encrypt OAEP $h" openssl pkeyutl -encrypt -pubin -inkey "$t/rsa3.pub" \
		-pkeyopt rsa_padding_mode:oaep -pkeyopt "rsa_oaep_md:$h" -in "$t/msg" -out "$t/ct"
	expect 0 "pkeyutl -decrypt OAEP $h with kos:rsa3" o app pkeyutl -decrypt -inkey kos:rsa3 \
		-pkeyopt rsa_padding_mode:oaep -pkeyopt "rsa_oaep_md:$h" -in "$t/ct" -out "$t/pt"
	check "OAEP $h: the plaintext" same "$t/msg" "$t/pt"
done
setup "pkeyutl -encrypt OAEP with a label" openssl pkeyutl -encrypt -pubin -inkey "$t/rsa.pub" \
	-pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_oaep_label:6b6f73 \
	-in "$t/msg" -out "$t/ct"
expect 0 "pkeyutl -decrypt OAEP with the label" o app pkeyutl -decrypt -inkey kos:rsa \
	-pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_oaep_label:6b6f73 \
	-in "$t/ct" -out "$t/pt"
check "the plaintext" same "$t/msg" "$t/pt"
setup "pkeyutl -encrypt OAEP to rsa" openssl pkeyutl -encrypt -pubin -inkey "$t/rsa.pub" \
	-pkeyopt rsa_padding_mode:oaep -in "$t/msg" -out "$t/ct.dec"
expect 0 "a credential of decrypt:rsa alone loads and decrypts with kos:rsa" o dec pkeyutl \
	-decrypt -inkey kos:rsa -pkeyopt rsa_padding_mode:oaep -in "$t/ct.dec" -out "$t/pt.dec"
check "the plaintext" same "$t/msg" "$t/pt.dec"
run o dec dgst -sha256 -sign kos:rsa -out "$t/s" "$t/msg"
check "but cannot sign with it" test "$status" -ne 0
grep_err "out of scope" "out of scope"
run o app pkeyutl -decrypt -inkey kos:rsa -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 \
	-pkeyopt rsa_oaep_label:6b6f74 -in "$t/ct" -out "$t/pt"
check "another label fails" test "$status" -ne 0
grep_err "decryption failed" "as a decryption failure"

# ==================================================================== key files
# a key-URI PEM file (kosctl key pem) read by the openssl CLI's file store;
# nginx, curl and Python read them in tests/provider-apps.sh
expect 0 "kosctl key pem p256" ks admin key pem p256 -o "$t/p256.key.pem"
check "a KOS KEY URI PEM file of kos:p256" sh -c \
	"sed -n 2p '$t/p256.key.pem' | openssl base64 -d -A | grep -qx 'kos:p256'"
expect 0 "openssl pkey reads the key-URI file" o app pkey -in "$t/p256.key.pem" -pubout \
	-out "$t/p256.f.pub"
check "it is kosd's key" same "$t/p256.f.pub" "$t/p256.pub"
expect 0 "dgst -sign with the key-URI file" o app dgst -sha256 -sign "$t/p256.key.pem" \
	-out "$t/s" "$t/msg"
check "verifies" vsig p256 sha256 "$t/s"
setup "an ordinary key file" openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
	-out "$t/file.key"
setup "its public key" openssl pkey -in "$t/file.key" -pubout -out "$t/file.pub"
expect 0 "an ordinary key file still signs with kos loaded" o app dgst -sha256 -sign "$t/file.key" \
	-out "$t/s" "$t/msg"
check "by the default provider: verifies" vsig file sha256 "$t/s"

# ==================================================================== TLS 1.3
setup "a CA" prov_ca
setup "the server's certificate (p256)" issue p256 localhost \
	"subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth"
setup "the client's certificate (cli)" issue cli app "extendedKeyUsage=clientAuth"
setup "rsa's server certificate" issue rsa localhost \
	"subjectAltName=IP:127.0.0.1
extendedKeyUsage=serverAuth"

# serve CLIENT KEY: s_server with kosd's key, one connection, mutual TLS;
# its port in $port once it listens
serve() {
	: > "$t/srv.out"
	o "$1" s_server -accept 127.0.0.1:0 -naccept 1 -tls1_3 -key "kos:$2" -cert "$t/$2.crt" \
		-CAfile "$t/ca.pem" -Verify 1 -www > "$t/srv.out" 2>&1 &
	spid=$!
	wait_for 10 grep -q "^ACCEPT" "$t/srv.out" || return 1
	port=$(sed -n 's/^ACCEPT .*:\([0-9]*\)$/\1/p' "$t/srv.out")
	test -n "$port"
}
# hello CLIENT: s_client with cli's key in kosd; sends a request
hello() {
	printf 'GET / HTTP/1.0\r\n\r\n' | o "$1" s_client -connect "127.0.0.1:$port" -tls1_3 \
		-CAfile "$t/ca.pem" -verify_return_error -cert "$t/cli.crt" -key kos:cli -ign_eof
}
for k in p256 rsa; do
	check "s_server with kos:$k listens" serve app "$k"
	expect 0 "a TLS 1.3 handshake, both keys in kosd ($k server)" hello app
	grep_out "Protocol *: TLSv1.3\|New, TLSv1.3" "TLS 1.3"
	grep_out "Verify return code: 0 (ok)" "the server's certificate verified"
	grep_out "s_server -accept\|Ciphers supported in s_server" "data came back over the connection"
	wait "$spid" 2>/dev/null || true
	check "the server saw the client's certificate" grep -q "CN *= *app\|Client certificate" "$t/srv.out"
done
# the certificate kept beside the key in kosd: -cert kos:p256
setup "store p256's certificate in kosd" ks admin key cert set p256 "$t/p256.crt"
expect 0 "storeutl -certs kos:p256 yields it" o app storeutl -certs -noout -text kos:p256
grep_out "Subject: CN *= *localhost" "the certificate kosd keeps"
: > "$t/srv.out"
o app s_server -accept 127.0.0.1:0 -naccept 1 -tls1_3 -key kos:p256 -cert kos:p256 \
	-CAfile "$t/ca.pem" -www > "$t/srv.out" 2>&1 &
spid=$!
check "s_server -key kos:p256 -cert kos:p256 listens" wait_for 10 grep -q "^ACCEPT" "$t/srv.out"
port=$(sed -n 's/^ACCEPT .*:\([0-9]*\)$/\1/p' "$t/srv.out")
run sh -c "printf 'GET / HTTP/1.0\r\n\r\n' | openssl s_client -connect 127.0.0.1:$port -tls1_3 \
	-CAfile '$t/ca.pem' -verify_return_error -ign_eof"
check "a handshake with key and certificate from kosd" test "$status" -eq 0
grep_out "Verify return code: 0 (ok)" "the stored certificate verified"
wait "$spid" 2>/dev/null || true

# the server's credential revoked while it runs: its next handshake fails
check "s_server (as gone) listens" serve gone p256
setup "revoke gone" ks admin credential revoke --client gone
run hello app
check "the handshake fails once the server's credential is revoked" test "$status" -ne 0
wait "$spid" 2>/dev/null || true
check "s_server's error queue says why" grep -q "credential revoked" "$t/srv.out"
check "s_server did not crash" sh -c "! grep -q 'Segmentation\|AddressSanitizer' '$t/srv.out'"

# ==================================================================== refusals
run o low dgst -sha256 -sign kos:p256 -out "$t/s" "$t/msg"
check "a low-tier client cannot sign (policy: medium and above)" test "$status" -ne 0
grep_err "trust too low" "the application sees: trust too low"
run o low pkeyutl -decrypt -inkey kos:rsa -in "$t/ct" -out "$t/pt"
check "nor decrypt with an RSA key" test "$status" -ne 0
grep_err "trust too low" "trust too low"
run o den dgst -sha256 -sign kos:p256 -out "$t/s" "$t/msg"
check "a deny-tier client cannot sign" test "$status" -ne 0
grep_err "trust too low\|refused by policy" "with kos's reason"
run o low pkey -in kos:p256 -pubout
check "a low-tier client still reads public keys" test "$status" -eq 0
run o app dgst -sha256 -sign kos:other -out "$t/s" "$t/msg"
check "a key out of the credential's scope" test "$status" -ne 0
grep_err "out of scope" "out of scope"
run o gone dgst -sha256 -sign kos:p256 -out "$t/s" "$t/msg"
check "a revoked credential" test "$status" -ne 0
grep_err "credential revoked" "credential revoked"
run o app dgst -sha256 -sign "kos:p256;type=public" -out "$t/s" "$t/msg"
check "a public URI cannot sign" test "$status" -ne 0
for u in "kos:" "kos:-x" "kos:p256;version=0" "kos:p256;version=x" "kos:p256;type=secret" \
	"kos:p256;color=red" "kos:p256;version=1;version=1" "kos:p256;;"; do
	run o app pkey -in "$u" -pubout
	check "the URI '$u' is refused" test "$status" -ne 0
	grep_err "bad kos key URI" "'$u': bad kos key URI"
done
run o app pkey -in "kos:nosuch" -pubout
check "a key kosd does not have" test "$status" -ne 0
grep_err "no such key\|out of scope" "no such key (or out of scope)"
run env KOS_SERVER="unix:$t/nowhere.sock" KOS_CREDENTIAL_FILE="$t/app.cred" \
	OPENSSL_MODULES="$(dirname "$PROV")" openssl pkey -provider kos -provider default -in kos:p256 -pubout
check "kosd unreachable" test "$status" -ne 0
grep_err "kosd unavailable" "kosd unavailable"
check "no crash in any refusal" sh -c "! grep -q 'Segmentation\|AddressSanitizer' '$err'"
check "no credential in any message" sh -c "! grep -q \"\$(cut -c1-40 '$t/app.cred')\" '$err' '$t/srv.out'"

# ==================================================================== versions
# a certificate is for one version: a key loaded as version 1 keeps signing
# with it after a rotation; the current version is the new one
expect 0 "kosctl key rotate p256" ks admin key rotate p256
setup "p256's new public key" ks admin key pubkey p256
cp "$out" "$t/p256.v2.pub"
check "the rotation made another key" sh -c "! cmp -s '$t/p256.pub' '$t/p256.v2.pub'"
expect 0 "dgst -sign kos:p256;version=1 after the rotation" o app dgst -sha256 \
	-sign "kos:p256;version=1" -out "$t/s" "$t/msg"
check "signed by version 1" vsig p256 sha256 "$t/s"
expect 0 "dgst -sign kos:p256 after the rotation" o app dgst -sha256 -sign kos:p256 -out "$t/s" "$t/msg"
check "signed by version 2, the current" vsig p256.v2 sha256 "$t/s"
expect 0 "pkey -text of kos:p256 names version 2" o app pkey -in kos:p256 -text -noout
grep_out "kos key p256, version 2" "version 2"
run o app pkey -in "kos:p256;version=9" -pubout
check "a version the key never had" test "$status" -ne 0
grep_err "no such key" "no such key"

kill "$kpid" 2>/dev/null || true
wait "$kpid" 2>/dev/null || true
kpid=""
finish provider-openssl
