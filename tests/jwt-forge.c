/* jwt-forge: makes the forgeries an attacker would try from a real kos
 * credential (a JWS compact JWT), for the shell tests.
 *
 *   jwt-forge [EDITS] [SIGNING] TOKEN        prints the new token
 *   jwt-forge --pem JWKS KID                 prints the CA key KID as PEM
 *
 * EDITS change the header or the payload; a part left unedited keeps its
 * original bytes:
 *   -s NAME=TEXT   set a string member of the payload
 *   -n NAME=N      set a number member; N may be +S or -S: now plus or
 *                  minus S seconds
 *   -d NAME        delete a member of the payload
 *   -H NAME=TEXT   set a string member of the header ("alg", "kid", ...)
 * SIGNING (one at most; none: the original signature stays):
 *   -e PEMFILE     ES256 with an EC P-256 private key (alg set to ES256)
 *   -h KEYFILE     HS256 keyed with the file's bytes (alg set to HS256): the
 *                  classic confusion, keyed with the CA public key's PEM
 *   -0             alg "none" and an empty signature
 *   -p MODULE:TOKENLABEL:PINFILE:KEYLABEL
 *                  ES256 with a private key inside a PKCS#11 token (as a
 *                  thief of a retired CA key would sign)
 *   -f             flip one bit of the signature (form kept, signature wrong)
 *
 * Exit status 0, or 1 with a message on stderr. A test tool: inputs come
 * from the test itself, so a bad one just stops it. */
#include "config.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <p11-kit/pkcs11.h>

/* The format stays a literal, so the compiler checks it. */
#define die(...)                                                  \
	do {                                                      \
		fprintf(stderr, "jwt-forge: " __VA_ARGS__);       \
		fputc('\n', stderr);                              \
		exit(1);                                          \
	} while (0)

static char *b64url(const unsigned char *data, size_t len)
{
	size_t cap = 4 * ((len + 2) / 3) + 1, i, j;
	char *s = malloc(cap);

	if (s == NULL)
		die("%s", "out of memory");
	EVP_EncodeBlock((unsigned char *)s, data, (int)len);
	for (i = 0, j = 0; s[i] != '\0'; i++) {
		if (s[i] == '=')
			break;
		s[j++] = s[i] == '+' ? '-' : s[i] == '/' ? '_' : s[i];
	}
	s[j] = '\0';
	return s;
}

/* Decodes base64url (no padding) into a fresh buffer; *len its size. */
static unsigned char *unb64url(const char *s, size_t n, size_t *len)
{
	size_t padded = n + (4 - n % 4) % 4, i;
	char *t = malloc(padded + 1);
	unsigned char *out = malloc(padded + 1);
	int m;

	if (t == NULL || out == NULL)
		die("%s", "out of memory");
	for (i = 0; i < n; i++)
		t[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
	for (; i < padded; i++)
		t[i] = '=';
	t[padded] = '\0';
	m = EVP_DecodeBlock(out, (unsigned char *)t, (int)padded);
	if (m < 0)
		die("%s", "a part of the token is not base64url");
	*len = (size_t)m - (padded - n);
	free(t);
	return out;
}

static json_t *part_json(const char *s, size_t n)
{
	size_t len;
	unsigned char *raw = unb64url(s, n, &len);
	json_error_t e;
	json_t *j = json_loadb((const char *)raw, len, 0, &e);

	if (j == NULL || !json_is_object(j))
		die("a part of the token is not a JSON object: %s", e.text);
	free(raw);
	return j;
}

static char *part_text(json_t *j)
{
	char *txt = json_dumps(j, JSON_COMPACT);
	char *s;

	if (txt == NULL)
		die("%s", "cannot write JSON");
	s = b64url((unsigned char *)txt, strlen(txt));
	free(txt);
	return s;
}

/* NAME=VALUE: splits at '='; returns VALUE. */
static char *split(char *arg)
{
	char *eq = strchr(arg, '=');

	if (eq == NULL)
		die("expected NAME=VALUE, got %s", arg);
	*eq = '\0';
	return eq + 1;
}

/* An ECDSA DER signature as the JWS form r||s (32 bytes each). */
static void der_to_raw(const unsigned char *der, size_t len, unsigned char raw[64])
{
	const unsigned char *p = der;
	ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
	const BIGNUM *r, *s;

	if (sig == NULL)
		die("%s", "not a DER ECDSA signature");
	ECDSA_SIG_get0(sig, &r, &s);
	if (BN_bn2binpad(r, raw, 32) != 32 || BN_bn2binpad(s, raw + 32, 32) != 32)
		die("%s", "not a P-256 signature");
	ECDSA_SIG_free(sig);
}

static void sign_es256_pem(const char *file, const char *input, unsigned char raw[64])
{
	FILE *f = fopen(file, "r");
	EVP_PKEY *pkey;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char der[80];
	size_t len = sizeof(der);

	if (f == NULL)
		die("cannot open %s", file);
	pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (pkey == NULL || md == NULL ||
	    EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey) != 1 ||
	    EVP_DigestSign(md, der, &len, (const unsigned char *)input, strlen(input)) != 1)
		die("cannot sign with %s", file);
	der_to_raw(der, len, raw);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pkey);
}

static unsigned char *read_file(const char *file, size_t *len)
{
	FILE *f = fopen(file, "rb");
	unsigned char *buf = malloc(65536);

	if (f == NULL || buf == NULL)
		die("cannot open %s", file);
	*len = fread(buf, 1, 65536, f);
	fclose(f);
	return buf;
}

static void p11_check(CK_RV rv, const char *what)
{
	if (rv != CKR_OK)
		die("PKCS#11 %s failed", what);
}

/* MODULE:TOKENLABEL:PINFILE:KEYLABEL */
static void sign_es256_p11(char *spec, const char *input, unsigned char raw[64])
{
	char *module = spec, *label, *pinfile, *keylabel;
	CK_RV (*get_list)(CK_FUNCTION_LIST_PTR_PTR);
	CK_FUNCTION_LIST_PTR f;
	CK_SLOT_ID slots[64];
	CK_ULONG nslots = 64, n, i, siglen = 64;
	CK_SESSION_HANDLE sess = CK_INVALID_HANDLE;
	CK_OBJECT_HANDLE key;
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_MECHANISM mech = { CKM_ECDSA, NULL, 0 };
	CK_ATTRIBUTE tmpl[2];
	unsigned char digest[32];
	unsigned char *pin;
	size_t pinlen;
	void *dl;

	if ((label = strchr(module, ':')) == NULL || (pinfile = strchr(label + 1, ':')) == NULL ||
	    (keylabel = strchr(pinfile + 1, ':')) == NULL)
		die("-p wants MODULE:TOKENLABEL:PINFILE:KEYLABEL, got %s", spec);
	*label++ = '\0';
	*pinfile++ = '\0';
	*keylabel++ = '\0';
	pin = read_file(pinfile, &pinlen);
	while (pinlen > 0 && (pin[pinlen - 1] == '\n' || pin[pinlen - 1] == '\r'))
		pinlen--;
	if ((dl = dlopen(module, RTLD_NOW)) == NULL)
		die("cannot load %s", module);
	*(void **)&get_list = dlsym(dl, "C_GetFunctionList");
	if (get_list == NULL)
		die("%s has no C_GetFunctionList", module);
	p11_check(get_list(&f), "C_GetFunctionList");
	p11_check(f->C_Initialize(NULL), "C_Initialize");
	p11_check(f->C_GetSlotList(CK_TRUE, slots, &nslots), "C_GetSlotList");
	for (i = 0; i < nslots && sess == CK_INVALID_HANDLE; i++) {
		CK_TOKEN_INFO ti;
		size_t l = strlen(label);

		if (f->C_GetTokenInfo(slots[i], &ti) != CKR_OK || l > sizeof(ti.label) ||
		    memcmp(ti.label, label, l) != 0 ||
		    (l < sizeof(ti.label) && ti.label[l] != ' '))
			continue;
		p11_check(f->C_OpenSession(slots[i], CKF_SERIAL_SESSION, NULL, NULL, &sess),
			  "C_OpenSession");
	}
	if (sess == CK_INVALID_HANDLE)
		die("no token labelled %s", label);
	p11_check(f->C_Login(sess, CKU_USER, pin, (CK_ULONG)pinlen), "C_Login");
	tmpl[0] = (CK_ATTRIBUTE){ CKA_CLASS, &cls, sizeof(cls) };
	tmpl[1] = (CK_ATTRIBUTE){ CKA_LABEL, keylabel, strlen(keylabel) };
	p11_check(f->C_FindObjectsInit(sess, tmpl, 2), "C_FindObjectsInit");
	p11_check(f->C_FindObjects(sess, &key, 1, &n), "C_FindObjects");
	(void)f->C_FindObjectsFinal(sess);
	if (n != 1)
		die("no private key labelled %s", keylabel);
	SHA256((const unsigned char *)input, strlen(input), digest);
	p11_check(f->C_SignInit(sess, &mech, key), "C_SignInit");
	/* raw r||s already: the JWS form */
	p11_check(f->C_Sign(sess, digest, sizeof(digest), raw, &siglen), "C_Sign");
	if (siglen != 64)
		die("%s", "the token's signature is not 64 bytes");
	(void)f->C_Logout(sess);
	(void)f->C_CloseSession(sess);
	(void)f->C_Finalize(NULL);
	free(pin);
}

/* The JWKS key KID as PEM, the bytes kos keys its verification with. */
static int print_pem(const char *jwks_file, const char *kid)
{
	json_error_t e;
	json_t *jwks = json_load_file(jwks_file, 0, &e), *keys, *k;
	unsigned char pub[65];
	size_t i, xl, yl;

	if (jwks == NULL || (keys = json_object_get(jwks, "keys")) == NULL)
		die("%s is no JWKS", jwks_file);
	json_array_foreach (keys, i, k) {
		const char *kk = json_string_value(json_object_get(k, "kid"));
		const char *x = json_string_value(json_object_get(k, "x"));
		const char *y = json_string_value(json_object_get(k, "y"));
		unsigned char *xb, *yb;
		OSSL_PARAM_BLD *b;
		OSSL_PARAM *params;
		EVP_PKEY_CTX *ctx;
		EVP_PKEY *pkey = NULL;

		if (kk == NULL || strcmp(kk, kid) != 0 || x == NULL || y == NULL)
			continue;
		xb = unb64url(x, strlen(x), &xl);
		yb = unb64url(y, strlen(y), &yl);
		if (xl != 32 || yl != 32)
			die("key %s is not P-256", kid);
		pub[0] = 4;
		memcpy(pub + 1, xb, 32);
		memcpy(pub + 33, yb, 32);
		b = OSSL_PARAM_BLD_new();
		OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
		OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub));
		params = OSSL_PARAM_BLD_to_param(b);
		ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
		if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
		    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1 ||
		    PEM_write_PUBKEY(stdout, pkey) != 1)
			die("cannot make a PEM of key %s", kid);
		EVP_PKEY_free(pkey);
		EVP_PKEY_CTX_free(ctx);
		OSSL_PARAM_free(params);
		OSSL_PARAM_BLD_free(b);
		free(xb);
		free(yb);
		json_decref(jwks);
		return 0;
	}
	die("no key %s in the JWKS", kid);
	return 1;
}

int main(int argc, char **argv)
{
	json_t *header, *payload;
	char *hs, *ps, *ss, *input, *tok, *d1, *d2, *sig_text = NULL, *hs_new = NULL, *ps_new = NULL;
	char sign = 0, *sign_arg = NULL;
	int edited_h = 0, edited_p = 0, flip = 0, opt;
	unsigned char raw[64];

	if (argc == 4 && strcmp(argv[1], "--pem") == 0)
		return print_pem(argv[2], argv[3]);
	/* the token is the last argument: parse the edits after reading it */
	if (argc < 2)
		die("%s", "usage: jwt-forge [-s|-n|-d|-H EDIT]... [-e|-h|-p FILE|-0|-f] TOKEN");
	tok = strdup(argv[argc - 1]);
	if (tok == NULL || (d1 = strchr(tok, '.')) == NULL || (d2 = strchr(d1 + 1, '.')) == NULL)
		die("%s", "the token is not three dot-separated parts");
	*d1++ = '\0';
	*d2++ = '\0';
	header = part_json(tok, strlen(tok));
	payload = part_json(d1, strlen(d1));
	hs = tok;
	ps = d1;
	ss = d2;

	while ((opt = getopt(argc - 1, argv, "s:n:d:H:e:h:p:0f")) != -1) {
		char *v;

		switch (opt) {
		case 's':
			v = split(optarg);
			json_object_set_new(payload, optarg, json_string(v));
			edited_p = 1;
			break;
		case 'n': {
			long long n;

			v = split(optarg);
			n = strtoll(v, NULL, 10);
			if (v[0] == '+' || v[0] == '-')
				n += (long long)time(NULL);
			json_object_set_new(payload, optarg, json_integer(n));
			edited_p = 1;
			break;
		}
		case 'd':
			json_object_del(payload, optarg);
			edited_p = 1;
			break;
		case 'H':
			v = split(optarg);
			json_object_set_new(header, optarg, json_string(v));
			edited_h = 1;
			break;
		case 'e':
		case 'h':
		case 'p':
		case '0':
			if (sign != 0)
				die("%s", "one signing option at most");
			sign = (char)opt;
			sign_arg = optarg;
			break;
		case 'f': flip = 1; break;
		default: die("%s", "unknown option"); break;
		}
	}
	if (optind != argc - 1)
		die("%s", "the token must be the last argument");

	if (sign != 0) {
		json_object_set_new(header, "alg",
				    json_string(sign == 'h'	  ? "HS256"
						: sign == '0' ? "none"
							      : "ES256"));
		edited_h = 1;
	}
	if (edited_h)
		hs = hs_new = part_text(header);
	if (edited_p)
		ps = ps_new = part_text(payload);
	input = malloc(strlen(hs) + strlen(ps) + 2);
	if (input == NULL)
		die("%s", "out of memory");
	sprintf(input, "%s.%s", hs, ps);

	switch (sign) {
	case 'e':
		sign_es256_pem(sign_arg, input, raw);
		sig_text = b64url(raw, 64);
		break;
	case 'p':
		sign_es256_p11(sign_arg, input, raw);
		sig_text = b64url(raw, 64);
		break;
	case 'h': {
		size_t klen;
		unsigned char *key = read_file(sign_arg, &klen);
		unsigned int mlen = 32;

		if (HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)input, strlen(input),
			 raw, &mlen) == NULL)
			die("%s", "HMAC failed");
		sig_text = b64url(raw, mlen);
		free(key);
		break;
	}
	case '0': sig_text = strdup(""); break;
	default: sig_text = strdup(ss); break;
	}
	if (sig_text == NULL)
		die("%s", "out of memory");
	if (flip) {
		size_t len;
		unsigned char *s = unb64url(sig_text, strlen(sig_text), &len);

		if (len == 0)
			die("%s", "no signature to flip");
		s[len / 2] ^= 0x01;
		free(sig_text);
		sig_text = b64url(s, len);
		free(s);
	}
	printf("%s.%s\n", input, sig_text);
	json_decref(header);
	json_decref(payload);
	free(sig_text);
	free(input);
	free(hs_new);
	free(ps_new);
	free(tok);
	return 0;
}
