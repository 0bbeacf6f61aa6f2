#!/bin/sh
# kosctl key and kosctl fsck on a development installation: data keys
# through encrypt/decrypt, rotation and retirement, a lost KMS token,
# signatures checked by the openssl CLI, and fsck after a retirement that a
# token was down for.
. "${srcdir:-.}/tests/lib.sh"
set -e

K=${KOSCTL:-./kosctl}
P=${KOS_POLICY_DIR:-${srcdir:-.}/policy}
d="$kos_tmp/inst"
t="$kos_tmp/t"
mkdir "$t"
unset KOS_CONF

softhsm_leaks_ignored

# tokdir NAME: the SoftHSM directory of the token labelled kos-NAME
tokdir() { dirname "$(grep -l -a "kos-$1 " "$d"/tokens/*/token.object)"; }
# lose NAME...: moves the tokens out of SoftHSM's sight; found NAME... brings them back
lose() { for n in "$@"; do mv "$(tokdir "$n")" "$d/lost-$n"; done; }
found() { for n in "$@"; do mv "$d/lost-$n" "$d/tokens/back-$n"; done; }

# --- usage ---
expect 0 "key --help" "$K" key --help
grep_out "encrypt" "key --help lists the subcommands"
expect 2 "key without a subcommand" "$K" key
expect 0 "key create --help" "$K" key create --help
grep_out "usage: kosctl key create NAME" "create --help prints the usage"
for sub in list show rotate retire destroy encrypt decrypt sign pubkey pem gcm-encrypt gcm-decrypt; do
	expect 0 "key $sub --help" "$K" key "$sub" --help
done
expect 0 "fsck --help" "$K" fsck --help
grep_out "usage: kosctl fsck \[--repair\]" "fsck --help prints the usage"
expect 0 "help fsck" "$K" help fsck

setup "init" "$K" init --dir "$d" --policy "$P/default.policy"
export KOS_CONF="$d/kos.conf"

expect 2 "create without a name" "$K" key create
expect 2 "create with a bad name" "$K" key create .hidden
grep_err "invalid key name" "the bad name is explained"
expect 2 "create with an unknown type" "$K" key create x --type aes-128
grep_err "unknown key type" "the bad type is named"
expect 2 "create with a stray argument" "$K" key create a b
expect 2 "retire without --version" "$K" key retire payments
expect 2 "retire --version 0" "$K" key retire payments --version 0
expect 2 "rotate with NAME and --due" "$K" key rotate payments --due
expect 2 "an unknown option" "$K" key list --bogus

# --- a data key ---
expect 0 "create a data key" "$K" key create payments
grep_out "created payments (dek), version 1" "create says what it made"
expect 1 "create it again" "$K" key create payments
grep_err "already exists" "the second create is refused"
expect 0 "list" "$K" key list
grep_out "^payments  *dek  *1  *1  *1 " "list shows the key at version 1"
expect 0 "list --json" "$K" --json key list
grep_out '"name": "payments"' "JSON names the key"
expect 0 "show" "$K" key show payments
grep_out "^version 1: active, created .*, kcv [0-9a-f]\{16\}$" "show gives the version and its KCV"
grep_out "set narrow: 2 of 3: kms[0-9] (x=1), kms[0-9] (x=2), kms[0-9] (x=3)$" \
	"show gives the narrow set and its tokens"
grep_out "set wide: 3 of 5: " "show gives the wide set"
narrow_tokens=$(sed -n 's/^  set narrow: 2 of 3: //p' "$out" | sed 's/ (x=[0-9]*)//g; s/,//g')
check "the narrow shares are on three distinct tokens" \
	test "$(echo "$narrow_tokens" | tr ' ' '\n' | sort -u | wc -l)" -eq 3
expect 0 "show --json" "$K" --json key show payments
grep_out '"label": "kos-share:payments:1:wide:5"' "JSON gives each share's label"
expect 1 "show an unknown key" "$K" key show nokey
grep_err "unknown key 'nokey'" "the unknown key is named"

head -c 3000 /dev/urandom > "$t/plain"
run "$K" key encrypt payments --context order-1 < "$t/plain"
check "encrypt" test "$status" -eq 0
cp "$out" "$t/env1"
check "the envelope starts with KOSE" test "$(head -c 4 "$t/env1")" = KOSE
check "the envelope is plaintext + header + tag" \
	test "$(wc -c < "$t/env1")" -eq $((3000 + 22 + 8 + 16))
run "$K" key decrypt --context order-1 < "$t/env1"
check "decrypt" test "$status" -eq 0
check "decrypt gives the plaintext back" cmp -s "$out" "$t/plain"
expect 1 "decrypt with the wrong context" "$K" key decrypt --context order-2 < "$t/env1"
grep_err "integrity check failed" "a wrong context is an integrity failure"
check "nothing is written on failure" test ! -s "$out"
head -c 100 "$t/env1" > "$t/truncated"
expect 1 "decrypt a truncated envelope" "$K" key decrypt --context order-1 < "$t/truncated"
expect 1 "decrypt garbage" "$K" key decrypt < "$t/plain"
grep_err "not a kos envelope" "garbage is not an envelope"
expect 1 "encrypt with an unknown key" "$K" key encrypt nokey < "$t/plain"
run sh -c "head -c 67108865 /dev/zero | '$K' key encrypt payments"
check "encrypt refuses more than 64 MiB" test "$status" -eq 1
grep_err "larger than 67108864 bytes" "the input cap is named"

# --- a lost KMS token: a new process has nothing cached ---
lose kms1
run "$K" key decrypt --context order-1 < "$t/env1"
check "decrypt with kms1 gone" test "$status" -eq 0
check "the plaintext is right with kms1 gone" cmp -s "$out" "$t/plain"
lose kms2 kms3
expect 1 "decrypt with three of five KMS tokens gone" "$K" key decrypt --context order-1 < "$t/env1"
grep_err "cannot rebuild" "the failure says why"
for n in kms1 kms2 kms3; do grep_err "$n" "the lost token $n is named"; done
found kms1 kms2 kms3
expect 0 "decrypt once the tokens are back" "$K" key decrypt --context order-1 < "$t/env1"
check "the plaintext is right once they are back" cmp -s "$out" "$t/plain"

# --- rotation and retirement ---
expect 0 "rotate" "$K" key rotate payments
grep_out "rotated payments: version 2" "rotate names the new version"
run "$K" key encrypt payments --context order-2 < "$t/plain"
cp "$out" "$t/env2"
check "the new envelope names version 2" \
	test "$(od -An -tx1 -j 14 -N 4 "$t/env2" | tr -d ' ')" = 00000002
expect 0 "the old envelope still decrypts" "$K" key decrypt --context order-1 < "$t/env1"
check "to the plaintext" cmp -s "$out" "$t/plain"
expect 0 "the new one decrypts" "$K" key decrypt --context order-2 < "$t/env2"
check "to the plaintext too" cmp -s "$out" "$t/plain"
expect 1 "the current version cannot be retired" "$K" key retire payments --version 2
grep_err "current version" "the refusal says why"
expect 0 "retire version 1" "$K" key retire payments --version 1
expect 1 "a retired version's envelope is refused" "$K" key decrypt --context order-1 < "$t/env1"
grep_err "retired" "the refusal says it is retired"
expect 0 "show after retirement" "$K" key show payments
grep_out "^version 1: retired" "version 1 shows as retired"
grep_out "(shares destroyed)" "its shares are gone"
expect 0 "rotate --due with nothing due" "$K" key rotate --due
grep_out "nothing is due" "rotate --due says so"

# --- fsck: a retirement while a token was down leaves an orphan ---
expect 0 "fsck on a clean installation" "$K" fsck
grep_out "fsck: clean" "fsck says clean"
expect 0 "rotate to version 3" "$K" key rotate payments
lose kms4
expect 1 "retire with kms4 down" "$K" key retire payments --version 2
grep_err "kms4" "the unreachable token is named"
grep_err "fsck --repair" "the retirement points at fsck"
found kms4
expect 1 "fsck finds the orphan" "$K" fsck
grep_out "token kms4: share object 'kos-share:payments:2:" "the orphan share is named"
grep_err "run 'kosctl fsck --repair'" "fsck says how to repair"
expect 0 "fsck --repair" "$K" fsck --repair
grep_out "repaired: destroyed" "the repair is reported"
expect 0 "fsck afterwards" "$K" fsck
grep_out "fsck: clean" "clean after the repair"
expect 0 "version 3 still decrypts" sh -c \
	"'$K' key encrypt payments < '$t/plain' | '$K' key decrypt | cmp -s - '$t/plain'"

# --- signing keys, checked by the openssl CLI ---
printf 'kos signs this\n' > "$t/data"
expect 0 "create a P-256 key" "$K" key create sig-ec --type ec-p256
run "$K" key pubkey sig-ec
cp "$out" "$t/ec.pem"
grep_out "BEGIN PUBLIC KEY" "pubkey prints PEM"
run "$K" key sign sig-ec --alg ecdsa-der < "$t/data"
cp "$out" "$t/ec.sig"
check "sign (ecdsa-der)" test "$status" -eq 0
expect 0 "openssl verifies the P-256 signature" \
	openssl dgst -sha256 -verify "$t/ec.pem" -signature "$t/ec.sig" "$t/data"
grep_out "Verified OK" "openssl says Verified OK"
printf 'other\n' > "$t/other"
expect 1 "the signature does not fit other data" \
	openssl dgst -sha256 -verify "$t/ec.pem" -signature "$t/ec.sig" "$t/other"
run "$K" key sign sig-ec < "$t/data"
check "the default P-256 signature is raw r||s" test "$status" -eq 0 -a "$(wc -c < "$out")" -eq 64

expect 0 "create an Ed25519 key" "$K" key create sig-ed --type ed25519
run "$K" key pubkey sig-ed
cp "$out" "$t/ed.pem"
run "$K" key sign sig-ed < "$t/data"
cp "$out" "$t/ed.sig"
check "sign (ed25519)" test "$status" -eq 0
check "an Ed25519 signature is 64 bytes" test "$(wc -c < "$t/ed.sig")" -eq 64
expect 0 "openssl verifies the Ed25519 signature" openssl pkeyutl -verify -pubin \
	-inkey "$t/ed.pem" -rawin -in "$t/data" -sigfile "$t/ed.sig"

expect 0 "create an RSA-2048 key" "$K" key create sig-rsa --type rsa-2048
run "$K" key pubkey sig-rsa
cp "$out" "$t/rsa.pem"
run "$K" key sign sig-rsa --alg rsa-pkcs1 < "$t/data"
cp "$out" "$t/rsa.sig"
check "sign (rsa-pkcs1)" test "$status" -eq 0
expect 0 "openssl verifies the RSA signature" \
	openssl dgst -sha256 -verify "$t/rsa.pem" -signature "$t/rsa.sig" "$t/data"

# digests signed here as kosd signs them (the same pipeline)
openssl dgst -sha512 -binary "$t/data" > "$t/data.sha512"
run "$K" key sign sig-rsa --alg rsa-pss --digest --hash sha512 --salt-len 64 < "$t/data.sha512"
cp "$out" "$t/pss.sig"
check "sign a sha512 digest (rsa-pss, salt 64)" test "$status" -eq 0
expect 0 "openssl verifies the PSS signature of the digest" openssl pkeyutl -verify -pubin \
	-inkey "$t/rsa.pem" -in "$t/data.sha512" -sigfile "$t/pss.sig" -pkeyopt digest:sha512 \
	-pkeyopt rsa_padding_mode:pss -pkeyopt rsa_pss_saltlen:64 -pkeyopt rsa_mgf1_md:sha512
expect 1 "the salt length is checked" openssl pkeyutl -verify -pubin -inkey "$t/rsa.pem" \
	-in "$t/data.sha512" -sigfile "$t/pss.sig" -pkeyopt digest:sha512 \
	-pkeyopt rsa_padding_mode:pss -pkeyopt rsa_pss_saltlen:32 -pkeyopt rsa_mgf1_md:sha512
run "$K" key sign sig-ec --alg ecdsa-der --hash sha384 < "$t/data"
cp "$out" "$t/ec384.sig"
expect 0 "openssl verifies P-256 over the data by sha384" \
	openssl dgst -sha384 -verify "$t/ec.pem" -signature "$t/ec384.sig" "$t/data"
expect 1 "a digest of the wrong length" "$K" key sign sig-ec --digest < "$t/data.sha512"
expect 1 "Ed25519 takes no digest" "$K" key sign sig-ed --digest --hash sha512 < "$t/data.sha512"
grep_err "not a digest" "Ed25519: the reason is named"
expect 0 "key list --name" "$K" key list --name sig-rsa
check "lists sig-rsa alone" test "$(grep -c -v '^NAME ' "$out")" -eq 1
expect 0 "key list --type ed25519" "$K" key list --type ed25519
check "lists the Ed25519 key alone" test "$(grep -c -v '^NAME ' "$out")" -eq 1 -a \
	"$(sed -n '2s/ .*//p' "$out")" = sig-ed
expect 0 "key list --name of no key" "$K" key list --name nosuch
check "lists nothing" test "$(grep -c -v '^NAME ' "$out")" -eq 0

expect 0 "rotate the P-256 key" "$K" key rotate sig-ec
expect 0 "retire its version 1" "$K" key retire sig-ec --version 1
run "$K" key pubkey sig-ec --version 1
check "a retired version's public key stays" cmp -s "$out" "$t/ec.pem"

# --- key pem: a PEM file naming the key for the kos provider ---
# pem_of URI: the file key pem must write for URI, made with OpenSSL's base64
pem_of() {
	printf -- '-----BEGIN KOS KEY URI-----\n%s\n-----END KOS KEY URI-----\n' \
		"$(printf %s "$1" | openssl base64 -A)"
}
expect 0 "key pem" "$K" key pem sig-ec
pem_of "kos:sig-ec" > "$t/want.pem"
check "key pem writes the URI kos:sig-ec, nothing else" cmp -s "$out" "$t/want.pem"
check "its body decodes to the URI" \
	test "$(sed -n 2p "$out" | openssl base64 -d)" = "kos:sig-ec"
check "and it is three lines" test "$(wc -l < "$out")" -eq 3
expect 0 "key pem --version -o FILE" "$K" key pem sig-ec --version 2 -o "$t/sig-ec.kos"
check "-o writes nothing on standard output" test ! -s "$out"
pem_of "kos:sig-ec;version=2" > "$t/want.pem"
check "the file holds kos:sig-ec;version=2" cmp -s "$t/sig-ec.kos" "$t/want.pem"
expect 0 "key pem --public of a retired version" "$K" key pem sig-ec --version 1 --public
check "it decodes to kos:sig-ec;version=1;type=public" \
	test "$(sed -n 2p "$out" | openssl base64 -d)" = "kos:sig-ec;version=1;type=public"
expect 0 "key pem --public --output" "$K" key pem sig-ec --public --output "$t/pub.kos"
check "the file holds kos:sig-ec;type=public" \
	test "$(sed -n 2p "$t/pub.kos" | openssl base64 -d)" = "kos:sig-ec;type=public"
expect 1 "key pem of a retired version's private key" "$K" key pem sig-ec --version 1
grep_err "version 1 is retired" "key pem: retired"
check "a refused key pem writes nothing" test ! -s "$out"
expect 1 "key pem of a version the key never had" "$K" key pem sig-ec --version 9 -o "$t/no.kos"
grep_err "has no version 9" "key pem: no such version"
check "and makes no file" test ! -e "$t/no.kos"
expect 1 "key pem of a data key" "$K" key pem payments
grep_err "is a data key, not a signing key" "key pem: a data key is refused"
expect 1 "key pem of no such key" "$K" key pem nosuch
grep_err "unknown key" "key pem: unknown key"
expect 2 "key pem of a bad name" "$K" key pem ../x
grep_err "invalid key name" "key pem: the name is checked"
expect 2 "key pem --version 0" "$K" key pem sig-ec --version 0
expect 0 "key pem without a key store" env KOS_CONF="$t/none.conf" "$K" key pem any-key
grep_err "written unchecked" "without a store it says it did not check"
check "it still writes the URI" \
	test "$(sed -n 2p "$out" | openssl base64 -d)" = "kos:any-key"
expect 1 "sign with a data key" "$K" key sign payments < "$t/data"
grep_err "not a signing key" "the wrong type is named"
expect 1 "encrypt with a signing key" "$K" key encrypt sig-ec < "$t/data"
grep_err "not a data key" "the wrong type is named"
expect 1 "pubkey of a data key" "$K" key pubkey payments
expect 2 "sign with an unknown algorithm" "$K" key sign sig-ec --alg md5 < "$t/data"
expect 1 "sign with an algorithm of another type" "$K" key sign sig-ec --alg rsa-pss < "$t/data"
expect 0 "fsck after the signing keys" "$K" fsck
grep_out "fsck: clean" "the retired key pair left nothing behind"

# --- AES-256-GCM with the caller's IV, AAD and tag length ---
G_IV=cafebabefacedbaddecaf888
setup "a data key for GCM" "$K" key create gcmk
printf 'PKCS#11 plaintext' > "$t/g.pt"
expect 0 "gcm-encrypt" "$K" key gcm-encrypt gcmk --iv $G_IV --aad 0011 --tag-len 14 < "$t/g.pt"
cp "$out" "$t/g.ct"
check "the ciphertext carries the 14-byte tag" test "$(wc -c < "$t/g.ct")" -eq 31
grep_err "key gcmk version 1" "gcm-encrypt names the version"
expect 0 "gcm-decrypt" "$K" key gcm-decrypt gcmk -V 1 -i $G_IV -A 0011 -T 14 < "$t/g.ct"
check "gcm-decrypt gives the plaintext back" cmp -s "$out" "$t/g.pt"
expect 0 "gcm-encrypt again with the same parameters" \
	"$K" key gcm-encrypt gcmk --iv $G_IV --aad 0011 --tag-len 14 < "$t/g.pt"
check "one key, IV and AAD give one ciphertext" cmp -s "$out" "$t/g.ct"
expect 1 "gcm-decrypt with another AAD" "$K" key gcm-decrypt gcmk -V 1 -i $G_IV -A 0012 -T 14 < "$t/g.ct"
grep_err "integrity check failed" "another AAD: integrity check failed"
check "another AAD writes nothing" test ! -s "$out"
expect 1 "gcm-decrypt with another IV" "$K" key gcm-decrypt gcmk -V 1 -i cafebabefacedbaddecaf889 \
	-A 0011 -T 14 < "$t/g.ct"
head -c 30 "$t/g.ct" > "$t/g.cut"
expect 1 "gcm-decrypt with a cut tag" "$K" key gcm-decrypt gcmk -V 1 -i $G_IV -A 0011 -T 14 < "$t/g.cut"
cp "$t/g.ct" "$t/g.flip"
flip_byte "$t/g.flip" 2
expect 1 "gcm-decrypt with a changed byte" "$K" key gcm-decrypt gcmk -V 1 -i $G_IV -A 0011 -T 14 < "$t/g.flip"
expect 2 "gcm-decrypt without --version" "$K" key gcm-decrypt gcmk -i $G_IV < "$t/g.ct"
grep_err "version is required" "the missing version is named"
expect 2 "gcm-encrypt without --iv" "$K" key gcm-encrypt gcmk < "$t/g.pt"
expect 2 "gcm-encrypt with an 8-byte IV" "$K" key gcm-encrypt gcmk --iv 0011223344556677 < "$t/g.pt"
grep_err "IV must be 12 bytes" "the IV length is named"
expect 2 "gcm-encrypt with an 8-byte tag" "$K" key gcm-encrypt gcmk --iv $G_IV -T 8 < "$t/g.pt"
grep_err "tag length must be 12 to 16 bytes" "the tag length is named"
expect 2 "gcm-encrypt with an IV not hex" "$K" key gcm-encrypt gcmk --iv zz0102030405060708090a0b < "$t/g.pt"
expect 1 "gcm-encrypt with a signing key" "$K" key gcm-encrypt sig-ec --iv $G_IV < "$t/g.pt"
grep_err "not a data key" "the wrong type is named"
expect 0 "rotate the GCM key" "$K" key rotate gcmk
expect 1 "gcm-encrypt naming the old version" "$K" key gcm-encrypt gcmk -V 1 --iv $G_IV < "$t/g.pt"
grep_err "not current" "an old version does not encrypt"
expect 0 "the old version still decrypts" "$K" key gcm-decrypt gcmk -V 1 -i $G_IV -A 0011 -T 14 < "$t/g.ct"
expect 1 "the new version does not open it" "$K" key gcm-decrypt gcmk -V 2 -i $G_IV -A 0011 -T 14 < "$t/g.ct"

# --- certificates beside signing keys ---
expect 0 "key cert --help" "$K" key cert --help
grep_out "show" "key cert --help lists its subcommands"
expect 0 "key cert set --help" "$K" key cert set --help
expect 2 "key cert set without a file" "$K" key cert set sig-ec
grep_err "FILE missing" "the missing file is named"
run "$K" key pubkey sig-ec
cp "$out" "$t/sig-ec.pub"
setup "a CA key" openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$t/ca.key"
setup "a certificate for sig-ec" openssl x509 -new -subj /CN=sig-ec -key "$t/ca.key" \
	-force_pubkey "$t/sig-ec.pub" -days 2 -out "$t/sig-ec.pem"
setup "its DER" openssl x509 -in "$t/sig-ec.pem" -outform DER -out "$t/sig-ec.der"
setup "another key's" openssl req -new -x509 -key "$t/ca.key" -subj /CN=x -days 2 -out "$t/x.pem"
expect 1 "key cert show before one is stored" "$K" key cert show sig-ec
grep_err "has no certificate" "no certificate is named"
expect 0 "key cert set (DER)" "$K" key cert set sig-ec "$t/sig-ec.der"
grep_out "version 2" "stored with the current version"
expect 0 "key cert show" "$K" key cert show sig-ec
check "key cert show writes the DER" cmp -s "$out" "$t/sig-ec.der"
expect 0 "key cert show --pem" "$K" key cert show sig-ec --pem
check "key cert show --pem writes the PEM" cmp -s "$out" "$t/sig-ec.pem"
expect 0 "key cert set (PEM from standard input)" "$K" key cert set sig-ec - < "$t/sig-ec.pem"
expect 1 "key cert set of another key's certificate" "$K" key cert set sig-ec "$t/x.pem"
grep_err "public key is not that of key sig-ec" "the mismatch is named"
expect 1 "key cert set of something else" "$K" key cert set sig-ec "$t/data"
grep_err "not an X.509 certificate" "bad DER is named"
expect 1 "key cert set on a data key" "$K" key cert set payments "$t/sig-ec.der"
expect 1 "key cert set on a retired version" "$K" key cert set sig-ec "$t/sig-ec.der" --version 1
expect 1 "key cert set of a missing file" "$K" key cert set sig-ec "$t/none.der"

# --- key cert remove ---
expect 0 "key cert remove --help" "$K" key cert remove --help
grep_out "usage: kosctl key cert remove NAME" "cert remove --help prints the usage"
expect 0 "key cert remove" "$K" key cert remove sig-ec
grep_out "certificate removed from sig-ec" "the removal is reported"
expect 1 "key cert show after the removal" "$K" key cert show sig-ec
grep_err "has no certificate" "the certificate is gone"
expect 0 "the key stays" "$K" key pubkey sig-ec
expect 1 "key cert remove again" "$K" key cert remove sig-ec
grep_err "has no certificate" "a second removal names what is missing"
expect 1 "key cert remove on a data key" "$K" key cert remove payments
expect 1 "key cert remove on no such key" "$K" key cert remove nokey

# --- key destroy ---
expect 0 "key destroy --help" "$K" key destroy --help
grep_out "usage: kosctl key destroy NAME --yes" "destroy --help prints the usage"
expect 0 "a key to destroy" "$K" key create doomed
run "$K" key encrypt doomed < "$t/plain"
cp "$out" "$t/doomed.env"
check "an envelope of it" test "$status" -eq 0 -a -s "$t/doomed.env"
expect 2 "key destroy without --yes" "$K" key destroy doomed
grep_err "cannot be undone" "destroy without --yes says why"
grep_err "add --yes" "and what to add"
expect 0 "the key is still there" sh -c "'$K' key decrypt < '$t/doomed.env' | cmp -s - '$t/plain'"
expect 1 "key destroy of no such key" "$K" key destroy nokey --yes
grep_err "nokey" "the unknown key is named"
expect 0 "key destroy --yes" "$K" key destroy doomed --yes
grep_out "destroyed doomed" "the destruction is reported"
expect 1 "key show after the destruction" "$K" key show doomed
expect 1 "the old envelope no longer decrypts" "$K" key decrypt < "$t/doomed.env"
run "$K" key list
check "key list does not name it" sh -c "! grep -q '^doomed ' '$out'"
expect 0 "fsck: nothing is left on the tokens" "$K" fsck
grep_out "fsck: clean" "fsck is clean after the destruction"
expect 0 "the name can be used again" "$K" key create doomed
expect 1 "the new key does not open the old envelope" "$K" key decrypt < "$t/doomed.env"
expect 0 "a signing key destroyed" "$K" key destroy sig-ed --yes
expect 1 "its public key is gone" "$K" key pubkey sig-ed
expect 0 "fsck after a signing key's destruction" "$K" fsck
grep_out "fsck: clean" "no key pair is left"

# a token down: the key is destroyed, the share left there is an orphan
run "$K" key show doomed
down=$(grep -o 'kms[0-9][0-9]*' "$out" | head -n 1)
setup "a token holding a share of doomed ($down)" test -n "$down"
lose "$down"
expect 0 "key destroy with $down down" "$K" key destroy doomed --yes
grep_err "$down" "the unreachable token is named"
grep_err "fsck --repair" "the destruction points at fsck"
expect 1 "the key is destroyed all the same" "$K" key show doomed
found "$down"
expect 1 "fsck finds the orphan" "$K" fsck
grep_out "token $down: share object 'kos-share:doomed:1:" "the orphan share is named"
expect 0 "fsck --repair" "$K" fsck --repair
expect 0 "fsck afterwards" "$K" fsck
grep_out "fsck: clean" "clean after the repair"

finish kosctl-keys
