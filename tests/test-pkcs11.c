/* The PKCS#11 module as an application loads it (dlopen of
 * .libs/libkos-pkcs11.so and C_GetFunctionList) against a real kosd on a
 * development installation with SoftHSM tokens in a temporary directory:
 * every function group, the buffer and argument conventions, the tiers
 * (kosd's ledger shows whether a request reached it),
 * revocation mid-session, 8 threads signing, fork, and what an attacker
 * tries to get a DEK out through PKCS#11. Signatures are checked with
 * OpenSSL on public keys built from the module's attributes. */
#include "config.h"

#include "kos/internal.h"
#include "tests/kos-test.h"

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

/* SoftHSM 2.6.1 leaks in C_SignInit (see tests/test-signer.c). */
const char *__lsan_default_suppressions(void) __attribute__((visibility("default"), used));
const char *__lsan_default_suppressions(void)
{
	return "leak:libsofthsm2.so\n";
}

#define CKM_KOS_ENVELOPE (CKM_VENDOR_DEFINED | 0x4b4f5301UL)

static char inst[512], sock[600], conf_json[600];
static kos_config *conf;
static kos_policy *pol;
static kos_store *st;
static kos_trust *tr;
static kos_ca *ca;
static pid_t kosd_pid = -1;
static void *module;
static CK_FUNCTION_LIST *p11;

/* clients: the scope each is registered with */
static const struct {
	const char *name, *scope;
} clients[] = {
	{ "hi", "sign:ec-1 sign:ed-1 sign:rsa-1 sign:made-* encrypt:payments decrypt:payments "
		 "decrypt:made-* admin:keys certify:ec-1 certify:rsa-1" },
	{ "mid", "encrypt:payments decrypt:payments" },
	{ "lo", "encrypt:payments decrypt:payments sign:ec-1" },
	{ "den", "encrypt:payments decrypt:payments sign:ec-1" },
	{ "rev", "sign:ec-1 decrypt:payments" },
	{ "thr", "sign:ec-1" },
	{ "frk", "sign:ec-1" },
	{ "att", "encrypt:payments decrypt:payments" },
};
#define NCLIENTS (sizeof(clients) / sizeof(clients[0]))
static char secrets[NCLIENTS][KOS_CRED_SECRET_LEN + 1];

static kos_rv integrity_failures(const char *client, int n)
{
	kos_observation obs = { .event = KOS_EVENT_INTEGRITY };
	kos_rv rv = KOS_OK;

	for (int i = 0; i < n && rv == KOS_OK; i++)
		rv = kos_trust_observe(tr, client, &obs, NULL);
	return rv;
}

static kos_tier tier_of(const char *client)
{
	kos_trust_info info;

	return kos_trust_get(tr, client, &info) == KOS_OK ? info.tier : KOS_TIER_DENY;
}

/* kosd's ledger entries of client (of action, when not NULL): every
 * request it answers makes one, though they land in the store a little
 * after the answer (group commit), so the count is read once it has
 * stopped moving. */
static int ledgered(const char *client, const char *action)
{
	const char *store = kos_config_get0_store(conf);
	char sql[256];
	int a, b;

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM ledger WHERE client = '%s'%s%s%s", client,
		 action != NULL ? " AND action = '" : "", action != NULL ? action : "",
		 action != NULL ? "'" : "");
	b = kos_test_sql_int(store, sql);
	do {
		a = b;
		usleep(300000);
		b = kos_test_sql_int(store, sql);
	} while (a != b);
	return b;
}

static int enroll_all(void)
{
	for (size_t i = 0; i < NCLIENTS; i++)
		if (kos_test_enroll(sock, clients[i].name, secrets[i]) != 0)
			return -1;
	return 0;
}

static int suite_init(void)
{
	const char *top = getenv("top_builddir");
	char path[700], log[700], json[2048];
	kos_hsm *hsm = NULL;
	kos_keys *keys = NULL;
	kos_ca *admin = NULL;
	CK_RV (*get)(CK_FUNCTION_LIST_PTR_PTR);

	snprintf(inst, sizeof(inst), "%s/inst", kos_test_tmpdir());
	snprintf(sock, sizeof(sock), "%s/kosd.sock", inst);
	snprintf(path, sizeof(path), "%s/test.policy", kos_test_tmpdir());
	/* as tests/test-client.c: trust of the integrity factor alone */
	if (kos_test_write_integrity_policy(path, NULL, 0) != 0 ||
	    kos_devinit(inst, 0, path, NULL) != KOS_OK)
		goto fail;
	snprintf(path, sizeof(path), "%s/kos.conf", inst);
	if (kos_config_load(path, &conf, NULL) != KOS_OK ||
	    kos_policy_load(kos_config_get0_policy(conf), &pol, NULL) != KOS_OK ||
	    kos_store_open(kos_config_get0_store(conf), &st) != KOS_OK ||
	    kos_trust_new(pol, st, &tr) != KOS_OK)
		goto fail;
	if (kos_hsm_open(conf, 0, &hsm) != KOS_OK || kos_keys_new(pol, st, hsm, &keys) != KOS_OK ||
	    kos_ca_new(pol, st, hsm, tr, &admin) != KOS_OK || kos_ca_init(admin, NULL) != KOS_OK ||
	    kos_key_create(keys, "payments", KOS_KEY_DEK) != KOS_OK ||
	    kos_key_create(keys, "other", KOS_KEY_DEK) != KOS_OK ||
	    kos_key_create(keys, "ec-1", KOS_KEY_EC_P256) != KOS_OK ||
	    kos_key_create(keys, "ed-1", KOS_KEY_ED25519) != KOS_OK ||
	    kos_key_create(keys, "rsa-1", KOS_KEY_RSA_2048) != KOS_OK)
		goto fail;
	for (size_t i = 0; i < NCLIENTS; i++)
		if (kos_ca_client_add(admin, clients[i].name, clients[i].scope, secrets[i]) != KOS_OK)
			goto fail;
	/* tiers before enrollment: hi, thr, frk high; mid medium; lo low */
	if (kos_trust_observe(tr, "hi", &(kos_observation){ .event = KOS_EVENT_SUCCESS }, NULL) !=
		    KOS_OK ||
	    integrity_failures("mid", 1) != KOS_OK || integrity_failures("lo", 2) != KOS_OK ||
	    integrity_failures("att", 2) != KOS_OK)
		goto fail;
	kos_ca_free(admin);
	admin = NULL;
	kos_keys_free(keys);
	keys = NULL;
	kos_hsm_free(hsm);
	hsm = NULL;
	if (kos_ca_new(pol, st, NULL, tr, &ca) != KOS_OK)
		goto fail;
	snprintf(path, sizeof(path), "%s/kos.conf", inst);
	snprintf(log, sizeof(log), "%s/kosd.log", kos_test_tmpdir());
	if (kos_test_kosd_start(path, NULL, log, sock, &kosd_pid) != 0) {
		fprintf(stderr, "set-up: kosd did not start (see %s/kosd.log)\n", kos_test_tmpdir());
		return 1;
	}
	if (enroll_all() != 0)
		goto fail;
	/* slot 0: a PIN is needed; slot 1: hi's credential file */
	snprintf(json, sizeof(json),
		 "{\"slots\": [{\"label\": \"kos\", \"server\": \"unix:%s\"},\n"
		 " {\"label\": \"kos-auto\", \"server\": \"%s\", \"credential_file\": \"%s\"}]}\n",
		 sock, sock, kos_test_cred_path("hi"));
	snprintf(conf_json, sizeof(conf_json), "%s/pkcs11.json", kos_test_tmpdir());
	if (kos_test_write_text(conf_json, json) != 0)
		goto fail;
	setenv("KOS_PKCS11_CONF", conf_json, 1);
	snprintf(path, sizeof(path), "%s/.libs/libkos-pkcs11.so", top != NULL ? top : ".");
	if ((module = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		fprintf(stderr, "set-up: %s\n", dlerror());
		return 1;
	}
	*(void **)&get = dlsym(module, "C_GetFunctionList");
	if (get == NULL || get(&p11) != CKR_OK || p11 == NULL) {
		fprintf(stderr, "set-up: no C_GetFunctionList\n");
		return 1;
	}
	return 0;
fail:
	fprintf(stderr, "set-up: %s\n", kos_last_error());
	kos_ca_free(admin);
	kos_keys_free(keys);
	kos_hsm_free(hsm);
	return 1;
}

static int suite_cleanup(void)
{
	if (p11 != NULL)
		p11->C_Finalize(NULL);
	kos_test_kosd_stop(&kosd_pid);
	/* the module stays loaded: libcurl and OpenSSL keep state past a
	 * dlclose() */
	kos_ca_free(ca);
	kos_trust_free(tr);
	kos_store_free(st);
	kos_policy_free(pol);
	kos_config_free(conf);
	return 0;
}

/* --- helpers ---------------------------------------------------------------- */

static CK_C_INITIALIZE_ARGS os_locking = { .flags = CKF_OS_LOCKING_OK };

static void init_ok(void)
{
	CU_ASSERT_EQUAL_FATAL(p11->C_Initialize(&os_locking), CKR_OK);
}

static void fini(void)
{
	CU_ASSERT_EQUAL(p11->C_Finalize(NULL), CKR_OK);
}

static char *read_cred(const char *client)
{
	char *t = NULL;
	size_t n = 0;

	if (kos_read_file(kos_test_cred_path(client), 65536, &t, &n) != KOS_OK)
		return NULL;
	t[strcspn(t, "\r\n")] = '\0';
	return t;
}

/* A session on slot, logged in as client with "file:" of its credential. */
static CK_SESSION_HANDLE login_as(CK_SLOT_ID slot, const char *client)
{
	CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
	char pin[800];

	CU_ASSERT_EQUAL_FATAL(p11->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
						 NULL, &h),
			      CKR_OK);
	snprintf(pin, sizeof(pin), "file:%s", kos_test_cred_path(client));
	CU_ASSERT_EQUAL_FATAL(p11->C_Login(h, CKU_USER, (CK_UTF8CHAR *)pin, strlen(pin)), CKR_OK);
	return h;
}

/* The objects of class cls labelled label (cls 0: any). */
static CK_ULONG find(CK_SESSION_HANDLE h, CK_OBJECT_CLASS cls, const char *label,
		     CK_OBJECT_HANDLE *out, CK_ULONG max)
{
	CK_ATTRIBUTE t[2];
	CK_ULONG n = 0, got = 0;

	if (cls != 0) {
		t[n].type = CKA_CLASS;
		t[n].pValue = &cls;
		t[n++].ulValueLen = sizeof(cls);
	}
	if (label != NULL) {
		t[n].type = CKA_LABEL;
		t[n].pValue = (void *)label;
		t[n++].ulValueLen = strlen(label);
	}
	CU_ASSERT_EQUAL(p11->C_FindObjectsInit(h, t, n), CKR_OK);
	CU_ASSERT_EQUAL(p11->C_FindObjects(h, out, max, &got), CKR_OK);
	CU_ASSERT_EQUAL(p11->C_FindObjectsFinal(h), CKR_OK);
	return got;
}

static CK_OBJECT_HANDLE find_one(CK_SESSION_HANDLE h, CK_OBJECT_CLASS cls, const char *label)
{
	CK_OBJECT_HANDLE o[4] = { 0 };
	CK_ULONG n = find(h, cls, label, o, 4);

	CU_ASSERT_EQUAL(n, 1);
	return n >= 1 ? o[0] : CK_INVALID_HANDLE;
}

static CK_RV get_attr(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type,
		      uint8_t *buf, CK_ULONG *len)
{
	CK_ATTRIBUTE a = { type, buf, *len };
	CK_RV rv = p11->C_GetAttributeValue(h, o, &a, 1);

	*len = a.ulValueLen;
	return rv;
}

/* The public key from the module's attributes of public key object o. */
static EVP_PKEY *pubkey_of(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o)
{
	uint8_t buf[1024], e[16];
	CK_ULONG len = sizeof(buf), elen = sizeof(e);
	CK_KEY_TYPE kt = 0;
	CK_ATTRIBUTE a = { CKA_KEY_TYPE, &kt, sizeof(kt) };
	EVP_PKEY *pk = NULL;

	if (p11->C_GetAttributeValue(h, o, &a, 1) != CKR_OK)
		return NULL;
	if (kt == CKK_EC_EDWARDS) {
		if (get_attr(h, o, CKA_EC_POINT, buf, &len) != CKR_OK || len != 34 ||
		    buf[0] != 0x04 || buf[1] != 32)
			return NULL;
		return EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, buf + 2, 32);
	}
	{
		OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
		OSSL_PARAM *params = NULL;
		EVP_PKEY_CTX *pc = NULL;
		BIGNUM *n = NULL, *ebn = NULL;

		if (kt == CKK_EC) {
			if (get_attr(h, o, CKA_EC_POINT, buf, &len) != CKR_OK || len != 67 ||
			    buf[0] != 0x04 || buf[1] != 65)
				goto done;
			OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
							"prime256v1", 0);
			OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, buf + 2, 65);
			pc = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
		} else {
			if (get_attr(h, o, CKA_MODULUS, buf, &len) != CKR_OK ||
			    get_attr(h, o, CKA_PUBLIC_EXPONENT, e, &elen) != CKR_OK)
				goto done;
			n = BN_bin2bn(buf, (int)len, NULL);
			ebn = BN_bin2bn(e, (int)elen, NULL);
			OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n);
			OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, ebn);
			pc = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
		}
		params = OSSL_PARAM_BLD_to_param(bld);
		if (pc != NULL && params != NULL && EVP_PKEY_fromdata_init(pc) == 1)
			EVP_PKEY_fromdata(pc, &pk, EVP_PKEY_PUBLIC_KEY, params);
	done:
		EVP_PKEY_CTX_free(pc);
		OSSL_PARAM_free(params);
		OSSL_PARAM_BLD_free(bld);
		BN_free(n);
		BN_free(ebn);
	}
	return pk;
}

/* OpenSSL's EVP_PKEY_verify of sig over tbs (a digest; for Ed25519 the
 * message) with the key; pss: salt length, -2 for PKCS#1 v1.5. */
static int ossl_verify(EVP_PKEY *pk, const char *md, int pss, const uint8_t *sig, size_t sig_len,
		       const uint8_t *tbs, size_t tbs_len)
{
	EVP_PKEY_CTX *pc = NULL;
	uint8_t *der = NULL;
	int ok = 0, der_len;

	if (pk == NULL)
		return 0;
	if (EVP_PKEY_get_id(pk) == EVP_PKEY_ED25519) {
		EVP_MD_CTX *mc = EVP_MD_CTX_new();

		ok = EVP_DigestVerifyInit(mc, NULL, NULL, NULL, pk) == 1 &&
		     EVP_DigestVerify(mc, sig, sig_len, tbs, tbs_len) == 1;
		EVP_MD_CTX_free(mc);
		return ok;
	}
	pc = EVP_PKEY_CTX_new(pk, NULL);
	if (pc == NULL || EVP_PKEY_verify_init(pc) != 1)
		goto out;
	if (EVP_PKEY_get_id(pk) == EVP_PKEY_EC) {
		ECDSA_SIG *es = ECDSA_SIG_new();

		ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
		der_len = i2d_ECDSA_SIG(es, &der);
		ECDSA_SIG_free(es);
		ok = der_len > 0 && EVP_PKEY_verify(pc, der, (size_t)der_len, tbs, tbs_len) == 1;
		goto out;
	}
	if (EVP_PKEY_CTX_set_signature_md(pc, EVP_get_digestbyname(md)) != 1)
		goto out;
	if (pss != -2 && (EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) != 1 ||
			  EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, pss) != 1))
		goto out;
	ok = EVP_PKEY_verify(pc, sig, sig_len, tbs, tbs_len) == 1;
out:
	OPENSSL_free(der);
	EVP_PKEY_CTX_free(pc);
	return ok;
}

static void sha(const char *md, const void *p, size_t len, uint8_t *out, unsigned *out_len)
{
	EVP_Digest(p, len, out, out_len, EVP_get_digestbyname(md), NULL);
}

/* --- cases ------------------------------------------------------------------ */

static CK_RV bad_create(void **m)
{
	(void)m;
	return CKR_OK;
}

static CK_RV bad_mutex(void *m)
{
	(void)m;
	return CKR_OK;
}

static void test_general_functions(void)
{
	CK_C_INITIALIZE_ARGS partial = { .CreateMutex = bad_create };
	CK_C_INITIALIZE_ARGS app = { bad_create, bad_mutex, bad_mutex, bad_mutex, 0, NULL };
	CK_C_INITIALIZE_ARGS both = { bad_create, bad_mutex, bad_mutex, bad_mutex,
				      CKF_OS_LOCKING_OK | CKF_LIBRARY_CANT_CREATE_OS_THREADS,
				      NULL };
	CK_FUNCTION_LIST *fl = NULL;
	CK_SLOT_ID slots[4];
	CK_ULONG n = 0;
	CK_INFO info;

	CU_ASSERT_EQUAL(p11->C_GetFunctionList(NULL), CKR_ARGUMENTS_BAD);
	CU_ASSERT_EQUAL(p11->C_GetFunctionList(&fl), CKR_OK);
	CU_ASSERT_PTR_EQUAL(fl, p11);
	/* nothing works before C_Initialize */
	CU_ASSERT_EQUAL(p11->C_GetInfo(&info), CKR_CRYPTOKI_NOT_INITIALIZED);
	CU_ASSERT_EQUAL(p11->C_GetSlotList(CK_FALSE, NULL, &n), CKR_CRYPTOKI_NOT_INITIALIZED);
	CU_ASSERT_EQUAL(p11->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);
	CU_ASSERT_EQUAL(p11->C_Initialize(&partial), CKR_ARGUMENTS_BAD);
	CU_ASSERT_EQUAL(p11->C_Initialize(&app), CKR_CANT_LOCK);
	CU_ASSERT_EQUAL(p11->C_Initialize(&both), CKR_OK);
	CU_ASSERT_EQUAL(p11->C_Initialize(NULL), CKR_CRYPTOKI_ALREADY_INITIALIZED);
	CU_ASSERT_EQUAL(p11->C_GetInfo(NULL), CKR_ARGUMENTS_BAD);
	CU_ASSERT_EQUAL(p11->C_GetInfo(&info), CKR_OK);
	CU_ASSERT_EQUAL(info.cryptokiVersion.major, 2);
	CU_ASSERT_EQUAL(info.cryptokiVersion.minor, 40);
	CU_ASSERT_EQUAL(memcmp(info.manufacturerID, "kos ", 4), 0);
	/* slot list: count, short buffer, the list */
	CU_ASSERT_EQUAL(p11->C_GetSlotList(CK_TRUE, NULL, NULL), CKR_ARGUMENTS_BAD);
	CU_ASSERT_EQUAL(p11->C_GetSlotList(CK_TRUE, NULL, &n), CKR_OK);
	CU_ASSERT_EQUAL(n, 2);
	n = 1;
	CU_ASSERT_EQUAL(p11->C_GetSlotList(CK_TRUE, slots, &n), CKR_BUFFER_TOO_SMALL);
	CU_ASSERT_EQUAL(n, 2);
	n = 4;
	CU_ASSERT_EQUAL(p11->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);
	CU_ASSERT(n == 2 && slots[0] == 0 && slots[1] == 1);
	CU_ASSERT_EQUAL(p11->C_Finalize((void *)&n), CKR_ARGUMENTS_BAD);
	fini();
}

static void test_slots_tokens_mechanisms(void)
{
	CK_MECHANISM_TYPE mechs[64];
	CK_MECHANISM_INFO mi;
	CK_SLOT_INFO si;
	CK_TOKEN_INFO ti;
	CK_ULONG n = 0;
	int seen = 0;

	init_ok();
	CU_ASSERT_EQUAL(p11->C_GetSlotInfo(7, &si), CKR_SLOT_ID_INVALID);
	CU_ASSERT_EQUAL(p11->C_GetSlotInfo(0, NULL), CKR_ARGUMENTS_BAD);
	CU_ASSERT_EQUAL(p11->C_GetSlotInfo(0, &si), CKR_OK);
	CU_ASSERT(si.flags & CKF_TOKEN_PRESENT);
	CU_ASSERT_EQUAL(p11->C_GetTokenInfo(7, &ti), CKR_SLOT_ID_INVALID);
	CU_ASSERT_EQUAL(p11->C_GetTokenInfo(0, &ti), CKR_OK);
	CU_ASSERT_EQUAL(memcmp(ti.label, "kos                             ", 32), 0);
	CU_ASSERT(ti.flags & CKF_LOGIN_REQUIRED && ti.flags & CKF_TOKEN_INITIALIZED &&
		  ti.flags & CKF_USER_PIN_INITIALIZED && ti.flags & CKF_RNG);
	CU_ASSERT(ti.flags & CKF_WRITE_PROTECTED);
	CU_ASSERT_FALSE(ti.flags & CKF_PROTECTED_AUTHENTICATION_PATH);
	CU_ASSERT_EQUAL(p11->C_GetTokenInfo(1, &ti), CKR_OK);
	CU_ASSERT_EQUAL(memcmp(ti.label, "kos-auto ", 9), 0);
	CU_ASSERT(ti.flags & CKF_PROTECTED_AUTHENTICATION_PATH);

	CU_ASSERT_EQUAL(p11->C_GetMechanismList(0, NULL, &n), CKR_OK);
	CU_ASSERT(n >= 20 && n < 64);
	n = 2;
	CU_ASSERT_EQUAL(p11->C_GetMechanismList(0, mechs, &n), CKR_BUFFER_TOO_SMALL);
	CU_ASSERT(n > 2);
	CU_ASSERT_EQUAL(p11->C_GetMechanismList(0, mechs, &n), CKR_OK);
	for (CK_ULONG i = 0; i < n; i++)
		seen += mechs[i] == CKM_ECDSA || mechs[i] == CKM_EDDSA ||
			mechs[i] == CKM_RSA_PKCS_PSS || mechs[i] == CKM_AES_GCM ||
			mechs[i] == CKM_KOS_ENVELOPE || mechs[i] == CKM_SHA384;
	CU_ASSERT_EQUAL(seen, 6);
	CU_ASSERT_EQUAL(p11->C_GetMechanismInfo(0, CKM_ECDSA, &mi), CKR_OK);
	CU_ASSERT(mi.ulMinKeySize == 256 && mi.ulMaxKeySize == 256);
	CU_ASSERT((mi.flags & (CKF_SIGN | CKF_VERIFY)) == (CKF_SIGN | CKF_VERIFY));
	CU_ASSERT_FALSE(mi.flags & CKF_ENCRYPT);
	CU_ASSERT_EQUAL(p11->C_GetMechanismInfo(0, CKM_SHA256_RSA_PKCS_PSS, &mi), CKR_OK);
	CU_ASSERT(mi.ulMinKeySize == 2048 && mi.ulMaxKeySize == 3072);
	CU_ASSERT_EQUAL(p11->C_GetMechanismInfo(0, CKM_AES_GCM, &mi), CKR_OK);
	CU_ASSERT(mi.ulMinKeySize == 32 && (mi.flags & CKF_DECRYPT));
	CU_ASSERT_EQUAL(p11->C_GetMechanismInfo(0, CKM_SHA256, &mi), CKR_OK);
	CU_ASSERT(mi.flags & CKF_DIGEST);
	CU_ASSERT_EQUAL(p11->C_GetMechanismInfo(0, CKM_DES3_CBC, &mi), CKR_MECHANISM_INVALID);
	CU_ASSERT_EQUAL(p11->C_GetMechanismInfo(9, CKM_ECDSA, &mi), CKR_SLOT_ID_INVALID);
	CU_ASSERT_EQUAL(p11->C_InitToken(0, NULL, 0, NULL), CKR_FUNCTION_NOT_SUPPORTED);
	fini();
}

static void expect_init_fails(const char *text)
{
	char path[700];

	snprintf(path, sizeof(path), "%s/bad.json", kos_test_tmpdir());
	CU_ASSERT_EQUAL_FATAL(kos_test_write_text(path, text), 0);
	setenv("KOS_PKCS11_CONF", path, 1);
	CU_ASSERT_EQUAL(p11->C_Initialize(NULL), CKR_GENERAL_ERROR);
	setenv("KOS_PKCS11_CONF", conf_json, 1);
}

static void test_configuration(void)
{
	CK_ULONG n = 9;
	CK_TOKEN_INFO ti;

	expect_init_fails("{\"slots\": [{\"server\": \"unix:/x\", \"colour\": \"red\"}]}");
	expect_init_fails("{\"slots\": [{\"server\": 5}]}");
	expect_init_fails("{\"slots\": [{\"label\": \"x\"}]}");
	expect_init_fails("{\"slots\": {}}");
	expect_init_fails("{\"slots\": [], \"extra\": 1}");
	expect_init_fails("{\"slots\": [{\"server\": \"unix:/x\", \"tls\": {\"cert\": 1}}]}");
	expect_init_fails("{\"slots\": [{\"server\": \"unix:/x\", "
			  "\"label\": \"a label that is longer than 32 bytes\"}]}");
	expect_init_fails("not json");
	/* a file named that is not there */
	setenv("KOS_PKCS11_CONF", "/nonexistent/pkcs11.json", 1);
	CU_ASSERT_EQUAL(p11->C_Initialize(NULL), CKR_GENERAL_ERROR);
	/* no file at all: the client library's environment (the default
	 * path under the build's sysconfdir is not installed here) */
	unsetenv("KOS_PKCS11_CONF");
	if (access(KOS_SYSCONFDIR "/kos/pkcs11.json", F_OK) != 0) {
		setenv(KOS_CLIENT_ENV_SERVER, sock, 1);
		CU_ASSERT_EQUAL(p11->C_Initialize(NULL), CKR_OK);
		CU_ASSERT_EQUAL(p11->C_GetSlotList(CK_FALSE, NULL, &n), CKR_OK);
		CU_ASSERT_EQUAL(n, 1);
		CU_ASSERT_EQUAL(p11->C_GetTokenInfo(0, &ti), CKR_OK);
		CU_ASSERT_EQUAL(memcmp(ti.label, "kos ", 4), 0);
		fini();
		unsetenv(KOS_CLIENT_ENV_SERVER);
		CU_ASSERT_EQUAL(p11->C_Initialize(NULL), CKR_OK);
		CU_ASSERT_EQUAL(p11->C_GetSlotList(CK_FALSE, NULL, &n), CKR_OK);
		CU_ASSERT_EQUAL(n, 0);
		fini();
	}
	setenv("KOS_PKCS11_CONF", conf_json, 1);
}

static void test_sessions_and_login(void)
{
	CK_SESSION_HANDLE h = 0, h2 = 0;
	CK_SESSION_INFO si;
	CK_TOKEN_INFO ti;
	char *jwt = read_cred("hi"), pin[800];
	CK_OBJECT_HANDLE o[8];

	CU_ASSERT_PTR_NOT_NULL_FATAL(jwt);
	init_ok();
	CU_ASSERT_EQUAL(p11->C_OpenSession(5, CKF_SERIAL_SESSION, NULL, NULL, &h),
			CKR_SLOT_ID_INVALID);
	CU_ASSERT_EQUAL(p11->C_OpenSession(0, 0, NULL, NULL, &h),
			CKR_SESSION_PARALLEL_NOT_SUPPORTED);
	CU_ASSERT_EQUAL(p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, NULL),
			CKR_ARGUMENTS_BAD);
	CU_ASSERT_EQUAL_FATAL(p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &h), CKR_OK);
	CU_ASSERT_EQUAL(p11->C_GetSessionInfo(h + 1000, &si), CKR_SESSION_HANDLE_INVALID);
	CU_ASSERT_EQUAL(p11->C_GetSessionInfo(h, NULL), CKR_ARGUMENTS_BAD);
	CU_ASSERT_EQUAL(p11->C_GetSessionInfo(h, &si), CKR_OK);
	CU_ASSERT_EQUAL(si.state, CKS_RO_PUBLIC_SESSION);
	/* before login: no object */
	CU_ASSERT_EQUAL(find(h, 0, NULL, o, 8), 0);
	CU_ASSERT_EQUAL(p11->C_Login(h + 1000, CKU_USER, NULL, 0), CKR_SESSION_HANDLE_INVALID);
	CU_ASSERT_EQUAL(p11->C_Login(h, CKU_SO, (CK_UTF8CHAR *)"x", 1), CKR_USER_TYPE_INVALID);
	/* slot 0 has no credential file: a PIN is needed */
	CU_ASSERT_EQUAL(p11->C_Login(h, CKU_USER, NULL, 0), CKR_ARGUMENTS_BAD);
	CU_ASSERT_EQUAL(p11->C_Login(h, CKU_USER, (CK_UTF8CHAR *)"garbage", 7), CKR_PIN_INVALID);
	/* a well-formed credential kosd refuses: its signature changed */
	{
		char *forged = strdup(jwt);
		size_t l = strlen(forged);

		forged[l - 2] = forged[l - 2] == 'A' ? 'B' : 'A';
		CU_ASSERT_EQUAL(p11->C_Login(h, CKU_USER, (CK_UTF8CHAR *)forged, l),
				CKR_PIN_INCORRECT);
		free(forged);
	}
	CU_ASSERT_EQUAL(p11->C_Login(h, CKU_USER, (CK_UTF8CHAR *)"file:/nonexistent", 17),
			CKR_PIN_INCORRECT);
	CU_ASSERT_EQUAL(p11->C_Logout(h), CKR_USER_NOT_LOGGED_IN);
	/* the credential itself as the PIN */
	CU_ASSERT_EQUAL(p11->C_Login(h, CKU_USER, (CK_UTF8CHAR *)jwt, strlen(jwt)), CKR_OK);
	CU_ASSERT_EQUAL(p11->C_Login(h, CKU_USER, (CK_UTF8CHAR *)jwt, strlen(jwt)),
			CKR_USER_ALREADY_LOGGED_IN);
	CU_ASSERT_EQUAL(p11->C_GetSessionInfo(h, &si), CKR_OK);
	CU_ASSERT_EQUAL(si.state, CKS_RO_USER_FUNCTIONS);
	/* admin:keys in the scope: the token is writable */
	CU_ASSERT_EQUAL(p11->C_GetTokenInfo(0, &ti), CKR_OK);
	CU_ASSERT_FALSE(ti.flags & CKF_WRITE_PROTECTED);
	CU_ASSERT(find(h, 0, NULL, o, 8) >= 7);
	/* a second session shares the login */
	CU_ASSERT_EQUAL(p11->C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL,
					   &h2),
			CKR_OK);
	CU_ASSERT_EQUAL(p11->C_GetSessionInfo(h2, &si), CKR_OK);
	CU_ASSERT_EQUAL(si.state, CKS_RW_USER_FUNCTIONS);
	CU_ASSERT_EQUAL(p11->C_Logout(h), CKR_OK);
	CU_ASSERT_EQUAL(p11->C_GetSessionInfo(h2, &si), CKR_OK);
	CU_ASSERT_EQUAL(si.state, CKS_RW_PUBLIC_SESSION);
	CU_ASSERT_EQUAL(find(h2, CKO_SECRET_KEY, NULL, o, 8), 0);
	/* "file:PATH" */
	snprintf(pin, sizeof(pin), "file:%s", kos_test_cred_path("mid"));
	CU_ASSERT_EQUAL(p11->C_Login(h2, CKU_USER, (CK_UTF8CHAR *)pin, strlen(pin)), CKR_OK);
	CU_ASSERT_EQUAL(p11->C_GetTokenInfo(0, &ti), CKR_OK);
	CU_ASSERT(ti.flags & CKF_WRITE_PROTECTED);
	CU_ASSERT_EQUAL(find(h2, CKO_SECRET_KEY, NULL, o, 8), 1);
	CU_ASSERT_EQUAL(p11->C_CloseSession(h), CKR_OK);
	CU_ASSERT_EQUAL(p11->C_CloseSession(h), CKR_SESSION_HANDLE_INVALID);
	CU_ASSERT_EQUAL(p11->C_CloseAllSessions(0), CKR_OK);
	CU_ASSERT_EQUAL(p11->C_GetSessionInfo(h2, &si), CKR_SESSION_HANDLE_INVALID);
	/* slot 1: the configured credential file, a NULL PIN; its public
	 * objects are visible before login */
	CU_ASSERT_EQUAL_FATAL(p11->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, &h), CKR_OK);
	CU_ASSERT_EQUAL(find(h, CKO_PUBLIC_KEY, "ec-1", o, 8), 1);
	CU_ASSERT_EQUAL(find(h, CKO_PRIVATE_KEY, "ec-1", o, 8), 0);
	CU_ASSERT_EQUAL(p11->C_Login(h, CKU_USER, NULL, 0), CKR_OK);
	CU_ASSERT_EQUAL(find(h, CKO_PRIVATE_KEY, "ec-1", o, 8), 1);
	CU_ASSERT_EQUAL(p11->C_CloseSession(h), CKR_OK);
	kos_secret_free(jwt, strlen(jwt));
	fini();
}

static void test_objects_and_attributes(void)
{
	static const uint8_t p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
	static const uint8_t ed[] = { 0x06, 0x03, 0x2b, 0x65, 0x70 };
	CK_SESSION_HANDLE h;
	CK_OBJECT_HANDLE o[16], priv, pub, dek;
	uint8_t buf[600];
	CK_ULONG len, n = 0, cnt;
	CK_BBOOL b;
	CK_KEY_TYPE kt = CKK_EC;
	CK_ATTRIBUTE by_type[] = { { CKA_KEY_TYPE, &kt, sizeof(kt) } };

	init_ok();
	h = login_as(0, "hi");
	/* one key by label: its two halves */
	CU_ASSERT_EQUAL(find(h, 0, "ec-1", o, 16), 2);
	CU_ASSERT_EQUAL(find(h, 0, "no-such-key", o, 16), 0);
	CU_ASSERT_EQUAL(find(h, 0, "../bad", o, 16), 0);
	priv = find_one(h, CKO_PRIVATE_KEY, "ec-1");
	pub = find_one(h, CKO_PUBLIC_KEY, "ec-1");
	dek = find_one(h, CKO_SECRET_KEY, "payments");
	CU_ASSERT(priv != pub && priv != CK_INVALID_HANDLE);
	/* the same handle on the next search */
	CU_ASSERT_EQUAL(find_one(h, CKO_PRIVATE_KEY, "ec-1"), priv);
	/* by key type, filtered in kosd */
	CU_ASSERT_EQUAL(p11->C_FindObjectsInit(h, by_type, 1), CKR_OK);
	CU_ASSERT_EQUAL(p11->C_FindObjectsInit(h, by_type, 1), CKR_OPERATION_ACTIVE);
	CU_ASSERT_EQUAL(p11->C_FindObjects(h, NULL, 16, &n), CKR_ARGUMENTS_BAD);
	CU_ASSERT_EQUAL(p11->C_FindObjects(h, o, 1, &n), CKR_OK);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_EQUAL(p11->C_FindObjects(h, o, 16, &n), CKR_OK);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_EQUAL(p11->C_FindObjects(h, o, 16, &n), CKR_OK);
	CU_ASSERT_EQUAL(n, 0);
	CU_ASSERT_EQUAL(p11->C_FindObjectsFinal(h), CKR_OK);
	CU_ASSERT_EQUAL(p11->C_FindObjectsFinal(h), CKR_OPERATION_NOT_INITIALIZED);
	CU_ASSERT_EQUAL(p11->C_FindObjects(h, o, 16, &n), CKR_OPERATION_NOT_INITIALIZED);
	CU_ASSERT_EQUAL(p11->C_FindObjectsInit(h, NULL, 1), CKR_ARGUMENTS_BAD);
	/* everything: 3 signing keys (2 objects each) and payments; "other"
	 * is out of the scope */
	cnt = find(h, 0, NULL, o, 16);
	CU_ASSERT_EQUAL(cnt, 7);
	CU_ASSERT_EQUAL(find(h, CKO_SECRET_KEY, "other", o, 16), 0);

	/* attributes */
	len = sizeof(buf);
	CU_ASSERT_EQUAL(get_attr(h, priv, CKA_ID, buf, &len), CKR_OK);
	CU_ASSERT(len == 4 && memcmp(buf, "ec-1", 4) == 0);
	len = sizeof(buf);
	CU_ASSERT_EQUAL(get_attr(h, pub, CKA_ID, buf, &len), CKR_OK);
	CU_ASSERT(len == 4 && memcmp(buf, "ec-1", 4) == 0);
	len = sizeof(buf);
	CU_ASSERT_EQUAL(get_attr(h, pub, CKA_EC_PARAMS, buf, &len), CKR_OK);
	CU_ASSERT(len == sizeof(p256) && memcmp(buf, p256, len) == 0);
	len = 0;
	CU_ASSERT_EQUAL(get_attr(h, pub, CKA_EC_POINT, NULL, &len), CKR_OK);
	CU_ASSERT_EQUAL(len, 67);
	len = 10;
	CU_ASSERT_EQUAL(get_attr(h, pub, CKA_EC_POINT, buf, &len), CKR_BUFFER_TOO_SMALL);
	CU_ASSERT_EQUAL(len, CK_UNAVAILABLE_INFORMATION);
	len = sizeof(buf);
	CU_ASSERT_EQUAL(get_attr(h, pub, CKA_EC_POINT, buf, &len), CKR_OK);
	CU_ASSERT(len == 67 && buf[0] == 0x04 && buf[1] == 65 && buf[2] == 0x04);
	len = sizeof(b);
	CU_ASSERT_EQUAL(get_attr(h, priv, CKA_SENSITIVE, &b, &len), CKR_OK);
	CU_ASSERT_EQUAL(b, CK_TRUE);
	CU_ASSERT_EQUAL(get_attr(h, priv, CKA_ALWAYS_SENSITIVE, &b, &len), CKR_OK);
	CU_ASSERT_EQUAL(b, CK_TRUE);
	CU_ASSERT_EQUAL(get_attr(h, priv, CKA_EXTRACTABLE, &b, &len), CKR_OK);
	CU_ASSERT_EQUAL(b, CK_FALSE);
	CU_ASSERT_EQUAL(get_attr(h, priv, CKA_NEVER_EXTRACTABLE, &b, &len), CKR_OK);
	CU_ASSERT_EQUAL(b, CK_TRUE);
	CU_ASSERT_EQUAL(get_attr(h, priv, CKA_SIGN, &b, &len), CKR_OK);
	CU_ASSERT_EQUAL(b, CK_TRUE);
	CU_ASSERT_EQUAL(get_attr(h, pub, CKA_VERIFY, &b, &len), CKR_OK);
	CU_ASSERT_EQUAL(b, CK_TRUE);
	CU_ASSERT_EQUAL(get_attr(h, priv, CKA_TOKEN, &b, &len), CKR_OK);
	CU_ASSERT_EQUAL(b, CK_TRUE);
	CU_ASSERT_EQUAL(get_attr(h, priv, CKA_PRIVATE, &b, &len), CKR_OK);
	CU_ASSERT_EQUAL(b, CK_TRUE);
	CU_ASSERT_EQUAL(get_attr(h, priv, CKA_LOCAL, &b, &len), CKR_OK);
	CU_ASSERT_EQUAL(b, CK_TRUE);
	len = sizeof(buf);
	CU_ASSERT_EQUAL(get_attr(h, priv, CKA_ALLOWED_MECHANISMS, buf, &len), CKR_OK);
	CU_ASSERT_EQUAL(len, 4 * sizeof(CK_MECHANISM_TYPE));
	/* a private key's value is sensitive; an attribute it lacks is invalid */
	len = sizeof(buf);
	CU_ASSERT_EQUAL(get_attr(h, priv, CKA_VALUE, buf, &len), CKR_ATTRIBUTE_SENSITIVE);
	CU_ASSERT_EQUAL(len, CK_UNAVAILABLE_INFORMATION);
	len = sizeof(buf);
	CU_ASSERT_EQUAL(get_attr(h, pub, CKA_MODULUS, buf, &len), CKR_ATTRIBUTE_TYPE_INVALID);
	CU_ASSERT_EQUAL(len, CK_UNAVAILABLE_INFORMATION);
	{
		/* several at once: each answered, the sensitive one flagged */
		CK_ULONG vl = 0;
		CK_ATTRIBUTE t[] = { { CKA_VALUE_LEN, &vl, sizeof(vl) },
				     { CKA_VALUE, buf, sizeof(buf) },
				     { CKA_LABEL, buf + 100, 100 } };

		CU_ASSERT_EQUAL(p11->C_GetAttributeValue(h, dek, t, 3), CKR_ATTRIBUTE_SENSITIVE);
		CU_ASSERT_EQUAL(vl, 32);
		CU_ASSERT_EQUAL(t[1].ulValueLen, CK_UNAVAILABLE_INFORMATION);
		CU_ASSERT(t[2].ulValueLen == 8 && memcmp(buf + 100, "payments", 8) == 0);
	}
	CU_ASSERT_EQUAL(get_attr(h, 99999, CKA_LABEL, buf, &len), CKR_OBJECT_HANDLE_INVALID);
	CU_ASSERT_EQUAL(p11->C_GetAttributeValue(h + 999, priv, NULL, 0),
			CKR_SESSION_HANDLE_INVALID);
	/* RSA and Ed25519 */
	{
		CK_OBJECT_HANDLE rp = find_one(h, CKO_PUBLIC_KEY, "rsa-1");
		CK_OBJECT_HANDLE ep = find_one(h, CKO_PUBLIC_KEY, "ed-1");
		CK_ULONG bits = 0;

		len = sizeof(buf);
		CU_ASSERT_EQUAL(get_attr(h, rp, CKA_MODULUS, buf, &len), CKR_OK);
		CU_ASSERT_EQUAL(len, 256);
		len = sizeof(bits);
		CU_ASSERT_EQUAL(get_attr(h, rp, CKA_MODULUS_BITS, (uint8_t *)&bits, &len), CKR_OK);
		CU_ASSERT_EQUAL(bits, 2048);
		len = sizeof(buf);
		CU_ASSERT_EQUAL(get_attr(h, rp, CKA_PUBLIC_EXPONENT, buf, &len), CKR_OK);
		CU_ASSERT(len == 3 && memcmp(buf, "\x01\x00\x01", 3) == 0);
		len = sizeof(buf);
		CU_ASSERT_EQUAL(get_attr(h, ep, CKA_EC_PARAMS, buf, &len), CKR_OK);
		CU_ASSERT(len == sizeof(ed) && memcmp(buf, ed, len) == 0);
		len = sizeof(buf);
		CU_ASSERT_EQUAL(get_attr(h, ep, CKA_EC_POINT, buf, &len), CKR_OK);
		CU_ASSERT(len == 34 && buf[0] == 0x04 && buf[1] == 32);
	}
	/* finding by an attribute of the public key: the EC_POINT itself */
	{
		uint8_t pt[67];
		CK_ULONG pl = sizeof(pt), got = 0;
		CK_ATTRIBUTE t[] = { { CKA_EC_POINT, pt, 0 } };

		CU_ASSERT_EQUAL(get_attr(h, pub, CKA_EC_POINT, pt, &pl), CKR_OK);
		t[0].ulValueLen = pl;
		CU_ASSERT_EQUAL(p11->C_FindObjectsInit(h, t, 1), CKR_OK);
		CU_ASSERT_EQUAL(p11->C_FindObjects(h, o, 16, &got), CKR_OK);
		CU_ASSERT_EQUAL(got, 2); /* both halves of ec-1 */
		CU_ASSERT_EQUAL(p11->C_FindObjectsFinal(h), CKR_OK);
	}
	CU_ASSERT_EQUAL(p11->C_GetObjectSize(h, priv, &len), CKR_OK);
	CU_ASSERT_EQUAL(p11->C_DestroyObject(h, 424242), CKR_OBJECT_HANDLE_INVALID);
	CU_ASSERT_EQUAL(p11->C_CloseSession(h), CKR_OK);
	fini();
}

static CK_RV sign(CK_SESSION_HANDLE h, CK_MECHANISM *m, CK_OBJECT_HANDLE k, const void *data,
		  size_t len, uint8_t *sig, CK_ULONG *sig_len)
{
	CK_RV rv = p11->C_SignInit(h, m, k);

	if (rv != CKR_OK)
		return rv;
	return p11->C_Sign(h, (CK_BYTE_PTR)data, len, sig, sig_len);
}

static CK_RV verify(CK_SESSION_HANDLE h, CK_MECHANISM *m, CK_OBJECT_HANDLE k, const void *data,
		    size_t len, uint8_t *sig, CK_ULONG sig_len)
{
	CK_RV rv = p11->C_VerifyInit(h, m, k);

	if (rv != CKR_OK)
		return rv;
	return p11->C_Verify(h, (CK_BYTE_PTR)data, len, sig, sig_len);
}

static void test_sign_and_verify(void)
{
	static const char msg[] = "signed through PKCS#11";
	CK_SESSION_HANDLE h;
	CK_OBJECT_HANDLE ec, ecp, ed, edp, rsa, rsap;
	CK_MECHANISM m = { CKM_ECDSA, NULL, 0 };
	uint8_t dg[64], sig[512], di[19 + 32];
	unsigned dl = 0;
	CK_ULONG sl;
	EVP_PKEY *pk;

	init_ok();
	h = login_as(0, "hi");
	ec = find_one(h, CKO_PRIVATE_KEY, "ec-1");
	ecp = find_one(h, CKO_PUBLIC_KEY, "ec-1");
	ed = find_one(h, CKO_PRIVATE_KEY, "ed-1");
	edp = find_one(h, CKO_PUBLIC_KEY, "ed-1");
	rsa = find_one(h, CKO_PRIVATE_KEY, "rsa-1");
	rsap = find_one(h, CKO_PUBLIC_KEY, "rsa-1");
	sha("SHA256", msg, strlen(msg), dg, &dl);

	/* CKM_ECDSA over a digest: length query, short buffer, then the
	 * signature, checked by OpenSSL and by C_Verify */
	CU_ASSERT_EQUAL(p11->C_Sign(h, dg, 32, sig, &sl), CKR_OPERATION_NOT_INITIALIZED);
	CU_ASSERT_EQUAL(p11->C_SignInit(h, NULL, ec), CKR_ARGUMENTS_BAD);
	CU_ASSERT_EQUAL(p11->C_SignInit(h, &m, 77777), CKR_KEY_HANDLE_INVALID);
	CU_ASSERT_EQUAL(p11->C_SignInit(h, &m, ecp), CKR_KEY_FUNCTION_NOT_PERMITTED);
	CU_ASSERT_EQUAL(p11->C_SignInit(h, &m, rsa), CKR_KEY_TYPE_INCONSISTENT);
	CU_ASSERT_EQUAL_FATAL(p11->C_SignInit(h, &m, ec), CKR_OK);
	CU_ASSERT_EQUAL(p11->C_SignInit(h, &m, ec), CKR_OPERATION_ACTIVE);
	CU_ASSERT_EQUAL(p11->C_Sign(h, dg, 32, NULL, NULL), CKR_ARGUMENTS_BAD);
	CU_ASSERT_EQUAL_FATAL(p11->C_SignInit(h, &m, ec), CKR_OK);
	sl = 0;
	CU_ASSERT_EQUAL(p11->C_Sign(h, dg, 32, NULL, &sl), CKR_OK);
	CU_ASSERT_EQUAL(sl, 64);
	sl = 10;
	CU_ASSERT_EQUAL(p11->C_Sign(h, dg, 32, sig, &sl), CKR_BUFFER_TOO_SMALL);
	CU_ASSERT_EQUAL(sl, 64);
	sl = sizeof(sig);
	CU_ASSERT_EQUAL(p11->C_Sign(h, dg, 32, sig, &sl), CKR_OK);
	CU_ASSERT_EQUAL(sl, 64);
	CU_ASSERT_EQUAL(p11->C_Sign(h, dg, 32, sig, &sl), CKR_OPERATION_NOT_INITIALIZED);
	pk = pubkey_of(h, ecp);
	CU_ASSERT(ossl_verify(pk, NULL, 0, sig, 64, dg, 32));
	CU_ASSERT_EQUAL(verify(h, &m, ecp, dg, 32, sig, 64), CKR_OK);
	sig[5] ^= 1;
	CU_ASSERT_EQUAL(verify(h, &m, ecp, dg, 32, sig, 64), CKR_SIGNATURE_INVALID);
	CU_ASSERT_EQUAL(verify(h, &m, ecp, dg, 32, sig, 63), CKR_SIGNATURE_LEN_RANGE);
	/* a digest of the wrong size */
	sl = sizeof(sig);
	CU_ASSERT_EQUAL(sign(h, &m, ec, dg, 10, sig, &sl), CKR_DATA_LEN_RANGE);
	/* SHA-1-sized digest: zero-padded, still a valid ECDSA signature */
	sl = sizeof(sig);
	CU_ASSERT_EQUAL(sign(h, &m, ec, dg, 20, sig, &sl), CKR_OK);
	CU_ASSERT(ossl_verify(pk, NULL, 0, sig, 64, dg, 20));

	/* CKM_ECDSA_SHA384, multi-part */
	m.mechanism = CKM_ECDSA_SHA384;
	CU_ASSERT_EQUAL_FATAL(p11->C_SignInit(h, &m, ec), CKR_OK);
	CU_ASSERT_EQUAL(p11->C_SignUpdate(h, (CK_BYTE_PTR)msg, 5), CKR_OK);
	CU_ASSERT_EQUAL(p11->C_SignUpdate(h, (CK_BYTE_PTR)msg + 5, strlen(msg) - 5), CKR_OK);
	sl = sizeof(sig);
	CU_ASSERT_EQUAL(p11->C_SignFinal(h, sig, &sl), CKR_OK);
	sha("SHA384", msg, strlen(msg), dg, &dl);
	CU_ASSERT(ossl_verify(pk, NULL, 0, sig, 64, dg, 48));
	CU_ASSERT_EQUAL(verify(h, &m, ecp, msg, strlen(msg), sig, 64), CKR_OK);
	EVP_PKEY_free(pk);

	/* CKM_EDDSA */
	m.mechanism = CKM_EDDSA;
	sl = sizeof(sig);
	CU_ASSERT_EQUAL(sign(h, &m, ed, msg, strlen(msg), sig, &sl), CKR_OK);
	CU_ASSERT_EQUAL(sl, 64);
	pk = pubkey_of(h, edp);
	CU_ASSERT(ossl_verify(pk, NULL, 0, sig, 64, (const uint8_t *)msg, strlen(msg)));
	EVP_PKEY_free(pk);
	CU_ASSERT_EQUAL(verify(h, &m, edp, msg, strlen(msg), sig, 64), CKR_OK);
	CU_ASSERT_EQUAL(verify(h, &m, edp, msg, 3, sig, 64), CKR_SIGNATURE_INVALID);

	/* CKM_RSA_PKCS over a DigestInfo; other input refused */
	pk = pubkey_of(h, rsap);
	sha("SHA256", msg, strlen(msg), dg, &dl);
	memcpy(di, "\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20",
	       19);
	memcpy(di + 19, dg, 32);
	m.mechanism = CKM_RSA_PKCS;
	sl = 0;
	CU_ASSERT_EQUAL(sign(h, &m, rsa, di, sizeof(di), NULL, &sl), CKR_OK);
	CU_ASSERT_EQUAL(sl, 256);
	CU_ASSERT_EQUAL(p11->C_Sign(h, di, sizeof(di), sig, &sl), CKR_OK);
	CU_ASSERT(ossl_verify(pk, "SHA256", -2, sig, sl, dg, 32));
	CU_ASSERT_EQUAL(verify(h, &m, rsap, di, sizeof(di), sig, sl), CKR_OK);
	sl = sizeof(sig);
	CU_ASSERT_EQUAL(sign(h, &m, rsa, dg, 32, sig, &sl), CKR_DATA_INVALID);
	/* a SHA-1 DigestInfo (pkcs11-tool --test's) reaches kosd, whose default
	 * policy refuses SHA-1 (signing.allow_sha1) */
	{
		uint8_t di1[35];

		memcpy(di1, "\x30\x21\x30\x09\x06\x05\x2b\x0e\x03\x02\x1a\x05\x00\x04\x14",
		       15);
		memcpy(di1 + 15, dg, 20);
		sl = sizeof(sig);
		CU_ASSERT_EQUAL(sign(h, &m, rsa, di1, sizeof(di1), sig, &sl),
				CKR_FUNCTION_REJECTED);
		/* one byte short of it is no DigestInfo at all */
		sl = sizeof(sig);
		CU_ASSERT_EQUAL(sign(h, &m, rsa, di1, sizeof(di1) - 1, sig, &sl),
				CKR_DATA_INVALID);
	}
	/* CKM_SHA512_RSA_PKCS */
	m.mechanism = CKM_SHA512_RSA_PKCS;
	sl = sizeof(sig);
	CU_ASSERT_EQUAL(sign(h, &m, rsa, msg, strlen(msg), sig, &sl), CKR_OK);
	sha("SHA512", msg, strlen(msg), dg, &dl);
	CU_ASSERT(ossl_verify(pk, "SHA512", -2, sig, sl, dg, 64));
	/* RSA-PSS: the digest, parameters checked */
	{
		CK_RSA_PKCS_PSS_PARAMS pp = { CKM_SHA256, CKG_MGF1_SHA256, 32 };

		m.mechanism = CKM_RSA_PKCS_PSS;
		m.pParameter = NULL;
		m.ulParameterLen = 0;
		CU_ASSERT_EQUAL(p11->C_SignInit(h, &m, rsa), CKR_MECHANISM_PARAM_INVALID);
		m.pParameter = &pp;
		m.ulParameterLen = sizeof(pp);
		pp.mgf = CKG_MGF1_SHA384;
		CU_ASSERT_EQUAL(p11->C_SignInit(h, &m, rsa), CKR_MECHANISM_PARAM_INVALID);
		pp.mgf = CKG_MGF1_SHA256;
		sha("SHA256", msg, strlen(msg), dg, &dl);
		sl = sizeof(sig);
		CU_ASSERT_EQUAL(sign(h, &m, rsa, dg, 32, sig, &sl), CKR_OK);
		CU_ASSERT(ossl_verify(pk, "SHA256", 32, sig, sl, dg, 32));
		CU_ASSERT_EQUAL(verify(h, &m, rsap, dg, 32, sig, sl), CKR_OK);
		sl = sizeof(sig);
		CU_ASSERT_EQUAL(sign(h, &m, rsa, dg, 31, sig, &sl), CKR_DATA_LEN_RANGE);
		/* CKM_SHA384_RSA_PKCS_PSS, multi-part, salt 20 */
		pp.hashAlg = CKM_SHA384;
		pp.mgf = CKG_MGF1_SHA384;
		pp.sLen = 20;
		m.mechanism = CKM_SHA384_RSA_PKCS_PSS;
		CU_ASSERT_EQUAL_FATAL(p11->C_SignInit(h, &m, rsa), CKR_OK);
		CU_ASSERT_EQUAL(p11->C_SignUpdate(h, (CK_BYTE_PTR)msg, 4), CKR_OK);
		CU_ASSERT_EQUAL(p11->C_SignUpdate(h, (CK_BYTE_PTR)msg + 4, strlen(msg) - 4),
				CKR_OK);
		sl = sizeof(sig);
		CU_ASSERT_EQUAL(p11->C_SignFinal(h, sig, &sl), CKR_OK);
		sha("SHA384", msg, strlen(msg), dg, &dl);
		CU_ASSERT(ossl_verify(pk, "SHA384", 20, sig, sl, dg, 48));
		pp.hashAlg = CKM_SHA256;
		CU_ASSERT_EQUAL(p11->C_SignInit(h, &m, rsa), CKR_MECHANISM_PARAM_INVALID);
	}
	EVP_PKEY_free(pk);
	CU_ASSERT_EQUAL(p11->C_CloseSession(h), CKR_OK);
	fini();
}

static void test_digest_and_random(void)
{
	static const char msg[] = "digest me";
	CK_SESSION_HANDLE h;
	CK_MECHANISM m = { CKM_SHA384, NULL, 0 };
	uint8_t out[64], ref[64], rnd[32] = { 0 }, zero[32] = { 0 };
	unsigned rl = 0;
	CK_ULONG len;

	init_ok();
	CU_ASSERT_EQUAL_FATAL(p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &h), CKR_OK);
	sha("SHA384", msg, strlen(msg), ref, &rl);
	CU_ASSERT_EQUAL(p11->C_DigestUpdate(h, (CK_BYTE_PTR)msg, 1), CKR_OPERATION_NOT_INITIALIZED);
	CU_ASSERT_EQUAL(p11->C_DigestInit(h, &m), CKR_OK);
	CU_ASSERT_EQUAL(p11->C_DigestInit(h, &m), CKR_OPERATION_ACTIVE);
	len = 0;
	CU_ASSERT_EQUAL(p11->C_Digest(h, (CK_BYTE_PTR)msg, strlen(msg), NULL, &len), CKR_OK);
	CU_ASSERT_EQUAL(len, 48);
	len = 47;
	CU_ASSERT_EQUAL(p11->C_Digest(h, (CK_BYTE_PTR)msg, strlen(msg), out, &len),
			CKR_BUFFER_TOO_SMALL);
	len = sizeof(out);
	CU_ASSERT_EQUAL(p11->C_Digest(h, (CK_BYTE_PTR)msg, strlen(msg), out, &len), CKR_OK);
	CU_ASSERT(len == 48 && memcmp(out, ref, 48) == 0);
	/* multi-part */
	m.mechanism = CKM_SHA256;
	sha("SHA256", msg, strlen(msg), ref, &rl);
	CU_ASSERT_EQUAL(p11->C_DigestInit(h, &m), CKR_OK);
	CU_ASSERT_EQUAL(p11->C_DigestUpdate(h, (CK_BYTE_PTR)msg, 3), CKR_OK);
	CU_ASSERT_EQUAL(p11->C_DigestUpdate(h, (CK_BYTE_PTR)msg + 3, strlen(msg) - 3), CKR_OK);
	len = sizeof(out);
	CU_ASSERT_EQUAL(p11->C_DigestFinal(h, out, &len), CKR_OK);
	CU_ASSERT(len == 32 && memcmp(out, ref, 32) == 0);
	m.mechanism = CKM_MD5;
	CU_ASSERT_EQUAL(p11->C_DigestInit(h, &m), CKR_MECHANISM_INVALID);
	CU_ASSERT_EQUAL(p11->C_GenerateRandom(h, NULL, 4), CKR_ARGUMENTS_BAD);
	CU_ASSERT_EQUAL(p11->C_GenerateRandom(h, rnd, sizeof(rnd)), CKR_OK);
	CU_ASSERT(memcmp(rnd, zero, sizeof(rnd)) != 0);
	CU_ASSERT_EQUAL(p11->C_GenerateRandom(h + 99, rnd, 4), CKR_SESSION_HANDLE_INVALID);
	CU_ASSERT_EQUAL(p11->C_SeedRandom(h, rnd, 4), CKR_RANDOM_SEED_NOT_SUPPORTED);
	CU_ASSERT_EQUAL(p11->C_CloseSession(h), CKR_OK);
	fini();
}

static CK_RV gcm(CK_SESSION_HANDLE h, bool enc, CK_OBJECT_HANDLE k, uint8_t *iv,
		 CK_ULONG tag_bits, const uint8_t *in, size_t len, uint8_t *out, CK_ULONG *out_len)
{
	CK_GCM_PARAMS gp = { iv, 12, 96, (CK_BYTE_PTR) "aad", 3, tag_bits };
	CK_MECHANISM m = { CKM_AES_GCM, &gp, sizeof(gp) };
	CK_RV rv = enc ? p11->C_EncryptInit(h, &m, k) : p11->C_DecryptInit(h, &m, k);

	if (rv != CKR_OK)
		return rv;
	return enc ? p11->C_Encrypt(h, (CK_BYTE_PTR)in, len, out, out_len) :
		     p11->C_Decrypt(h, (CK_BYTE_PTR)in, len, out, out_len);
}

static CK_RV envelope(CK_SESSION_HANDLE h, bool enc, CK_OBJECT_HANDLE k, const char *ctx,
		      const uint8_t *in, size_t len, uint8_t *out, CK_ULONG *out_len)
{
	CK_MECHANISM m = { CKM_KOS_ENVELOPE, (void *)ctx, ctx != NULL ? strlen(ctx) : 0 };
	CK_RV rv = enc ? p11->C_EncryptInit(h, &m, k) : p11->C_DecryptInit(h, &m, k);

	if (rv != CKR_OK)
		return rv;
	return enc ? p11->C_Encrypt(h, (CK_BYTE_PTR)in, len, out, out_len) :
		     p11->C_Decrypt(h, (CK_BYTE_PTR)in, len, out, out_len);
}

/* Encrypts and decrypts with GCM and envelopes as client; where says
 * how the repeated decryption goes: 'h' with the cached DEK (no request
 * at all), 'm' with a DEK rebuilt here from shares (requests, but no
 * decryption in kosd), 'l' by kosd. */
static void roundtrip_as(const char *client, char where)
{
	static const char msg[] = "tiered decryption";
	uint8_t iv[12] = "iv-of-12-byt", ct[256], pt[256];
	CK_SESSION_HANDLE h;
	CK_OBJECT_HANDLE dek;
	CK_ULONG cl, pl;
	int before, in_kosd;

	h = login_as(0, client);
	dek = find_one(h, CKO_SECRET_KEY, "payments");
	cl = 0;
	CU_ASSERT_EQUAL(gcm(h, true, dek, iv, 128, (const uint8_t *)msg, strlen(msg), NULL, &cl),
			CKR_OK);
	CU_ASSERT_EQUAL(cl, strlen(msg) + 16);
	cl = 5;
	CU_ASSERT_EQUAL(p11->C_Encrypt(h, (CK_BYTE_PTR)msg, strlen(msg), ct, &cl),
			CKR_BUFFER_TOO_SMALL);
	cl = sizeof(ct);
	CU_ASSERT_EQUAL(p11->C_Encrypt(h, (CK_BYTE_PTR)msg, strlen(msg), ct, &cl), CKR_OK);
	pl = sizeof(pt);
	CU_ASSERT_EQUAL(gcm(h, false, dek, iv, 128, ct, cl, pt, &pl), CKR_OK);
	CU_ASSERT(pl == strlen(msg) && memcmp(pt, msg, pl) == 0);
	before = ledgered(client, NULL);
	in_kosd = ledgered(client, "gcm_decrypt");
	pl = sizeof(pt);
	CU_ASSERT_EQUAL(gcm(h, false, dek, iv, 128, ct, cl, pt, &pl), CKR_OK);
	CU_ASSERT(pl == strlen(msg) && memcmp(pt, msg, pl) == 0);
	if (where == 'h')
		CU_ASSERT_EQUAL(ledgered(client, NULL), before);
	if (where == 'm') {
		CU_ASSERT(ledgered(client, "share_fetch") > 0);
		CU_ASSERT_EQUAL(ledgered(client, "gcm_decrypt"), in_kosd);
	}
	if (where == 'l')
		CU_ASSERT(ledgered(client, "gcm_decrypt") > in_kosd);
	/* envelopes, with a context */
	cl = sizeof(ct);
	CU_ASSERT_EQUAL(envelope(h, true, dek, "order-7", (const uint8_t *)msg, strlen(msg), ct,
				 &cl),
			CKR_OK);
	CU_ASSERT_EQUAL(cl, 38 + 8 + strlen(msg));
	CU_ASSERT_EQUAL(memcmp(ct, "KOSE", 4), 0);
	pl = 0;
	CU_ASSERT_EQUAL(envelope(h, false, dek, "order-7", ct, cl, NULL, &pl), CKR_OK);
	CU_ASSERT_EQUAL(pl, strlen(msg));
	pl = sizeof(pt);
	CU_ASSERT_EQUAL(p11->C_Decrypt(h, ct, cl, pt, &pl), CKR_OK);
	CU_ASSERT(pl == strlen(msg) && memcmp(pt, msg, pl) == 0);
	/* a changed bit: the tag does not verify (last: kosd counts it as an
	 * integrity failure of the client at once, which may lower its tier) */
	cl = 0;
	CU_ASSERT_EQUAL(gcm(h, true, dek, iv, 128, (const uint8_t *)msg, strlen(msg), NULL, &cl),
			CKR_OK);
	cl = sizeof(ct);
	CU_ASSERT_EQUAL(p11->C_Encrypt(h, (CK_BYTE_PTR)msg, strlen(msg), ct, &cl), CKR_OK);
	ct[2] ^= 1;
	pl = sizeof(pt);
	CU_ASSERT_EQUAL(gcm(h, false, dek, iv, 128, ct, cl, pt, &pl), CKR_ENCRYPTED_DATA_INVALID);
	CU_ASSERT_EQUAL(p11->C_CloseSession(h), CKR_OK);
}

static void test_encryption_by_tier(void)
{
	CU_ASSERT_EQUAL(tier_of("hi"), KOS_TIER_HIGH);
	CU_ASSERT_EQUAL(tier_of("mid"), KOS_TIER_MEDIUM);
	CU_ASSERT_EQUAL(tier_of("lo"), KOS_TIER_LOW);
	init_ok();
	roundtrip_as("hi", 'h');
	roundtrip_as("mid", 'm');
	roundtrip_as("lo", 'l');
	fini();
}

static void test_envelope_interoperates(void)
{
	static const char msg[] = "from the client library";
	kos_client *c = NULL;
	uint8_t *env = NULL, pt[128], ct[128];
	size_t env_len = 0;
	CK_SESSION_HANDLE h;
	CK_OBJECT_HANDLE dek;
	CK_ULONG pl = sizeof(pt), cl = sizeof(ct);
	char *back = NULL;
	size_t back_len = 0;

	CU_ASSERT_EQUAL_FATAL(kos_client_new(sock, &c), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_client_set_credential_file(c, kos_test_cred_path("hi")), KOS_OK);
	CU_ASSERT_EQUAL_FATAL(kos_client_encrypt(c, "payments", "ctx", (const uint8_t *)msg,
						 strlen(msg), &env, &env_len),
			      KOS_OK);
	init_ok();
	h = login_as(0, "hi");
	dek = find_one(h, CKO_SECRET_KEY, "payments");
	CU_ASSERT_EQUAL(envelope(h, false, dek, "ctx", env, env_len, pt, &pl), CKR_OK);
	CU_ASSERT(pl == strlen(msg) && memcmp(pt, msg, pl) == 0);
	/* the wrong context */
	pl = sizeof(pt);
	CU_ASSERT_EQUAL(envelope(h, false, dek, "ctx2", env, env_len, pt, &pl),
			CKR_ENCRYPTED_DATA_INVALID);
	/* and the other way */
	CU_ASSERT_EQUAL(envelope(h, true, dek, NULL, (const uint8_t *)msg, strlen(msg), ct, &cl),
			CKR_OK);
	CU_ASSERT_EQUAL(kos_client_decrypt(c, NULL, ct, cl, (uint8_t **)&back, &back_len), KOS_OK);
	CU_ASSERT(back_len == strlen(msg) && back != NULL && memcmp(back, msg, back_len) == 0);
	kos_secret_free(back, back_len);
	/* bad parameters and buffer conventions */
	{
		uint8_t iv[12] = { 0 };
		CK_GCM_PARAMS gp = { iv, 8, 64, NULL, 0, 128 };
		CK_MECHANISM m = { CKM_AES_GCM, &gp, sizeof(gp) };

		CU_ASSERT_EQUAL(p11->C_EncryptInit(h, &m, dek), CKR_MECHANISM_PARAM_INVALID);
		gp.ulIvLen = 12;
		gp.ulIvBits = 96;
		gp.ulTagBits = 64;
		CU_ASSERT_EQUAL(p11->C_EncryptInit(h, &m, dek), CKR_MECHANISM_PARAM_INVALID);
		gp.ulTagBits = 96;
		CU_ASSERT_EQUAL(p11->C_EncryptInit(h, &m, find_one(h, CKO_PRIVATE_KEY, "ec-1")),
				CKR_KEY_TYPE_INCONSISTENT);
		CU_ASSERT_EQUAL(p11->C_Encrypt(h, pt, 1, ct, &cl), CKR_OPERATION_NOT_INITIALIZED);
		CU_ASSERT_EQUAL(p11->C_EncryptInit(h, &m, dek), CKR_OK);
		CU_ASSERT_EQUAL(p11->C_EncryptInit(h, &m, dek), CKR_OPERATION_ACTIVE);
		/* multi-part: collected, sealed at the end */
		cl = sizeof(ct);
		CU_ASSERT_EQUAL(p11->C_EncryptUpdate(h, (CK_BYTE_PTR)msg, 4, ct, &cl), CKR_OK);
		CU_ASSERT_EQUAL(cl, 0);
		cl = sizeof(ct);
		CU_ASSERT_EQUAL(p11->C_EncryptUpdate(h, (CK_BYTE_PTR)msg + 4, strlen(msg) - 4, ct,
						     &cl),
				CKR_OK);
		cl = sizeof(ct);
		CU_ASSERT_EQUAL(p11->C_EncryptFinal(h, ct, &cl), CKR_OK);
		CU_ASSERT_EQUAL(cl, strlen(msg) + 12);
		CU_ASSERT_EQUAL(p11->C_DecryptInit(h, &m, dek), CKR_OK);
		pl = sizeof(pt);
		CU_ASSERT_EQUAL(p11->C_Decrypt(h, ct, cl, pt, &pl), CKR_OK);
		CU_ASSERT(pl == strlen(msg) && memcmp(pt, msg, pl) == 0);
	}
	CU_ASSERT_EQUAL(p11->C_CloseSession(h), CKR_OK);
	fini();
	kos_free(env);
	kos_client_free(c);
}

/* What an attacker tries through PKCS#11 with a low-tier session to get
 * the DEK that kosd keeps to itself. */
static void test_attacker_cannot_get_a_dek(void)
{
	CK_SESSION_HANDLE h;
	CK_OBJECT_HANDLE dek, out = 0, wrap;
	CK_BBOOL yes = CK_TRUE;
	uint8_t buf[64];
	CK_ULONG len = sizeof(buf);
	CK_MECHANISM m = { CKM_AES_KEY_WRAP_PAD, NULL, 0 };
	CK_ATTRIBUTE loosen[] = { { CKA_EXTRACTABLE, &yes, sizeof(yes) } };
	CK_BBOOL no = CK_FALSE;
	CK_ATTRIBUTE unsense[] = { { CKA_SENSITIVE, &no, sizeof(no) } };
	CK_ULONG vlen = 32;
	CK_ATTRIBUTE gen[] = { { CKA_LABEL, "stolen", 6 },
			       { CKA_VALUE_LEN, &vlen, sizeof(vlen) },
			       { CKA_EXTRACTABLE, &yes, sizeof(yes) } };
	CK_MECHANISM kg = { CKM_AES_KEY_GEN, NULL, 0 };
	CK_MECHANISM dm = { CKM_SHA256_KEY_DERIVATION, NULL, 0 };

	CU_ASSERT_EQUAL(tier_of("att"), KOS_TIER_LOW);
	init_ok();
	h = login_as(0, "att");
	dek = find_one(h, CKO_SECRET_KEY, "payments");
	wrap = dek;
	CU_ASSERT_EQUAL(get_attr(h, dek, CKA_VALUE, buf, &len), CKR_ATTRIBUTE_SENSITIVE);
	CU_ASSERT_EQUAL(len, CK_UNAVAILABLE_INFORMATION);
	len = sizeof(buf);
	CU_ASSERT_EQUAL(p11->C_WrapKey(h, &m, wrap, dek, buf, &len), CKR_KEY_UNEXTRACTABLE);
	CU_ASSERT_EQUAL(p11->C_CopyObject(h, dek, loosen, 1, &out), CKR_ACTION_PROHIBITED);
	CU_ASSERT_EQUAL(p11->C_SetAttributeValue(h, dek, loosen, 1), CKR_ATTRIBUTE_READ_ONLY);
	CU_ASSERT_EQUAL(p11->C_SetAttributeValue(h, dek, unsense, 1), CKR_ATTRIBUTE_READ_ONLY);
	len = sizeof(buf);
	CU_ASSERT_EQUAL(get_attr(h, dek, CKA_VALUE, buf, &len), CKR_ATTRIBUTE_SENSITIVE);
	CU_ASSERT_EQUAL(p11->C_GenerateKey(h, &kg, gen, 3, &out), CKR_ATTRIBUTE_VALUE_INVALID);
	CU_ASSERT_EQUAL(p11->C_DeriveKey(h, &dm, dek, NULL, 0, &out), CKR_MECHANISM_INVALID);
	CU_ASSERT_EQUAL(p11->C_UnwrapKey(h, &m, dek, buf, 8, NULL, 0, &out),
			CKR_MECHANISM_INVALID);
	CU_ASSERT_EQUAL(p11->C_DigestInit(h, &(CK_MECHANISM){ CKM_SHA256, NULL, 0 }), CKR_OK);
	CU_ASSERT_EQUAL(p11->C_DigestKey(h, dek), CKR_KEY_INDIGESTIBLE);
	/* nor a key made for it: no admin:keys in its scope */
	gen[2].type = CKA_SENSITIVE;
	CU_ASSERT_EQUAL(p11->C_GenerateKey(h, &kg, gen, 2, &out), CKR_TOKEN_WRITE_PROTECTED);
	CU_ASSERT_EQUAL(p11->C_CloseSession(h), CKR_OK);
	fini();
}

static void test_key_management(void)
{
	static const uint8_t p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
	CK_SESSION_HANDLE h, ro;
	CK_OBJECT_HANDLE pub = 0, priv = 0, dek = 0, cert = 0;
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE pubt[] = { { CKA_EC_PARAMS, (void *)p256, sizeof(p256) },
				{ CKA_LABEL, "made-ec", 7 },
				{ CKA_VERIFY, &yes, sizeof(yes) } };
	CK_ATTRIBUTE privt[] = { { CKA_SIGN, &yes, sizeof(yes) },
				 { CKA_SENSITIVE, &yes, sizeof(yes) } };
	CK_ULONG vlen = 32;
	CK_ATTRIBUTE dekt[] = { { CKA_LABEL, "made-dek", 8 }, { CKA_VALUE_LEN, &vlen, sizeof(vlen) } };
	CK_MECHANISM ecg = { CKM_EC_KEY_PAIR_GEN, NULL, 0 }, kg = { CKM_AES_KEY_GEN, NULL, 0 };
	CK_MECHANISM edg = { CKM_EC_EDWARDS_KEY_PAIR_GEN, NULL, 0 };
	CK_ATTRIBUTE edt[] = { { CKA_LABEL, "made-ed", 7 } };

	init_ok();
	h = login_as(0, "hi");
	CU_ASSERT_EQUAL_FATAL(p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &ro), CKR_OK);
	CU_ASSERT_EQUAL(p11->C_GenerateKeyPair(ro, &ecg, pubt, 3, privt, 2, &pub, &priv),
			CKR_SESSION_READ_ONLY);
	CU_ASSERT_EQUAL(p11->C_GenerateKeyPair(h, &ecg, pubt, 1, privt, 2, &pub, &priv),
			CKR_TEMPLATE_INCOMPLETE);
	CU_ASSERT_EQUAL(p11->C_GenerateKeyPair(h, &ecg, pubt, 3, privt, 2, &pub, &priv), CKR_OK);
	CU_ASSERT(pub != 0 && priv != 0 && pub != priv);
	CU_ASSERT_EQUAL(find_one(h, CKO_PRIVATE_KEY, "made-ec"), priv);
	/* the same name again */
	CU_ASSERT_EQUAL(p11->C_GenerateKeyPair(h, &ecg, pubt, 3, privt, 2, &pub, &priv),
			CKR_TEMPLATE_INCONSISTENT);
	{
		uint8_t sig[64], dg[32] = { 1, 2, 3 };
		CK_ULONG sl = sizeof(sig);
		CK_MECHANISM m = { CKM_ECDSA, NULL, 0 };

		CU_ASSERT_EQUAL(sign(h, &m, priv, dg, 32, sig, &sl), CKR_OK);
		CU_ASSERT_EQUAL(verify(h, &m, pub, dg, 32, sig, sl), CKR_OK);
	}
	CU_ASSERT_EQUAL(p11->C_GenerateKeyPair(h, &edg, edt, 1, NULL, 0, &pub, &priv), CKR_OK);
	CU_ASSERT_EQUAL(p11->C_GenerateKey(h, &kg, dekt, 2, &dek), CKR_OK);
	CU_ASSERT_EQUAL(find_one(h, CKO_SECRET_KEY, "made-dek"), dek);
	vlen = 16;
	CU_ASSERT_EQUAL(p11->C_GenerateKey(h, &kg, dekt, 2, &dek), CKR_ATTRIBUTE_VALUE_INVALID);
	/* a certificate beside ec-1, which hi may certify */
	{
		CK_OBJECT_HANDLE ecp = find_one(h, CKO_PUBLIC_KEY, "ec-1");
		EVP_PKEY *pk = pubkey_of(h, ecp), *issuer = EVP_EC_gen("P-256");
		X509 *x = X509_new();
		uint8_t *der = NULL, buf[2048];
		int dl = -1;
		CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
		CK_CERTIFICATE_TYPE ct = CKC_X_509;
		CK_ULONG len = sizeof(buf);

		X509_set_version(x, 2);
		ASN1_INTEGER_set(X509_get_serialNumber(x), 4711);
		X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
					   (const unsigned char *)"ec-1", -1, -1, 0);
		X509_set_issuer_name(x, X509_get_subject_name(x));
		X509_gmtime_adj(X509_getm_notBefore(x), 0);
		X509_gmtime_adj(X509_getm_notAfter(x), 86400);
		X509_set_pubkey(x, pk);
		if (X509_sign(x, issuer, EVP_sha256()) > 0)
			dl = i2d_X509(x, &der);
		CU_ASSERT_FATAL(dl > 0);
		{
			CK_ATTRIBUTE t[] = { { CKA_CLASS, &cls, sizeof(cls) },
					     { CKA_CERTIFICATE_TYPE, &ct, sizeof(ct) },
					     { CKA_LABEL, "ec-1", 4 },
					     { CKA_VALUE, der, (CK_ULONG)dl } };

			CU_ASSERT_EQUAL(p11->C_CreateObject(h, t, 4, &cert), CKR_OK);
			t[2].pValue = "rsa-1";
			t[2].ulValueLen = 5;
			CU_ASSERT_EQUAL(p11->C_CreateObject(h, t, 4, &cert),
					CKR_ATTRIBUTE_VALUE_INVALID);
		}
		CU_ASSERT_EQUAL(find_one(h, CKO_CERTIFICATE, "ec-1"), cert);
		CU_ASSERT_EQUAL(get_attr(h, cert, CKA_VALUE, buf, &len), CKR_OK);
		CU_ASSERT(len == (CK_ULONG)dl && memcmp(buf, der, len) == 0);
		len = sizeof(buf);
		CU_ASSERT_EQUAL(get_attr(h, cert, CKA_SERIAL_NUMBER, buf, &len), CKR_OK);
		CU_ASSERT(len == 4 && buf[0] == 0x02 && buf[1] == 2);
		len = sizeof(buf);
		CU_ASSERT_EQUAL(get_attr(h, cert, CKA_SUBJECT, buf, &len), CKR_OK);
		CU_ASSERT(len > 10 && buf[0] == 0x30);
		len = sizeof(buf);
		CU_ASSERT_EQUAL(get_attr(h, cert, CKA_ID, buf, &len), CKR_OK);
		CU_ASSERT(len == 4 && memcmp(buf, "ec-1", 4) == 0);
		/* destroyed: the certificate goes, the key stays */
		CU_ASSERT_EQUAL(p11->C_DestroyObject(h, cert), CKR_OK);
		len = sizeof(buf);
		CU_ASSERT_EQUAL(get_attr(h, cert, CKA_VALUE, buf, &len), CKR_OBJECT_HANDLE_INVALID);
		{
			CK_OBJECT_HANDLE any[4];

			CU_ASSERT_EQUAL(find(h, CKO_CERTIFICATE, "ec-1", any, 4), 0);
		}
		CU_ASSERT_EQUAL(find_one(h, CKO_PRIVATE_KEY, "ec-1") != CK_INVALID_HANDLE, 1);
		CU_ASSERT_EQUAL(p11->C_DestroyObject(h, cert), CKR_OBJECT_HANDLE_INVALID);
		OPENSSL_free(der);
		X509_free(x);
		EVP_PKEY_free(pk);
		EVP_PKEY_free(issuer);
	}
	/* no key import */
	{
		CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
		CK_ATTRIBUTE t[] = { { CKA_CLASS, &cls, sizeof(cls) }, { CKA_VALUE, "k", 1 } };

		CU_ASSERT_EQUAL(p11->C_CreateObject(h, t, 2, &dek), CKR_TEMPLATE_INCONSISTENT);
	}
	CU_ASSERT_EQUAL(p11->C_CloseAllSessions(0), CKR_OK);
	fini();
}

/* C_DestroyObject on keys: a key pair or a DEK made with C_Generate* and
 * destroyed is gone from kosd (every object of the key, every handle); a
 * session whose scope lacks admin:keys is refused and the key stays. */
static void test_destroy_objects(void)
{
	static const uint8_t p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
	CK_SESSION_HANDLE h, ro;
	CK_OBJECT_HANDLE pub = 0, priv = 0, dek = 0, pub2 = 0, priv2 = 0, any[8], k;
	CK_ATTRIBUTE pubt[] = { { CKA_EC_PARAMS, (void *)p256, sizeof(p256) },
				{ CKA_LABEL, "made-del", 8 } };
	CK_ULONG vlen = 32, len;
	CK_ATTRIBUTE dekt[] = { { CKA_LABEL, "made-deldek", 11 },
				{ CKA_VALUE_LEN, &vlen, sizeof(vlen) } };
	CK_MECHANISM ecg = { CKM_EC_KEY_PAIR_GEN, NULL, 0 }, kg = { CKM_AES_KEY_GEN, NULL, 0 };
	CK_MECHANISM m = { CKM_ECDSA, NULL, 0 };
	uint8_t sig[64], dg[32] = { 9, 8, 7 }, buf[128];
	CK_ULONG sl = sizeof(sig);
	int before;

	/* thr (sign:ec-1, no admin:keys) may not destroy ec-1 */
	init_ok();
	h = login_as(0, "thr");
	k = find_one(h, CKO_PRIVATE_KEY, "ec-1");
	before = ledgered("thr", "admin_destroy");
	CU_ASSERT_EQUAL(p11->C_DestroyObject(h, k), CKR_ACTION_PROHIBITED);
	CU_ASSERT_EQUAL(ledgered("thr", "admin_destroy"), before + 1);
	CU_ASSERT_EQUAL(find_one(h, CKO_PRIVATE_KEY, "ec-1"), k);
	CU_ASSERT_EQUAL(sign(h, &m, k, dg, 32, sig, &sl), CKR_OK);
	CU_ASSERT_EQUAL(p11->C_CloseAllSessions(0), CKR_OK);
	fini();

	init_ok();
	h = login_as(0, "hi");
	CU_ASSERT_EQUAL_FATAL(p11->C_GenerateKeyPair(h, &ecg, pubt, 2, NULL, 0, &pub, &priv), CKR_OK);
	CU_ASSERT_EQUAL_FATAL(p11->C_GenerateKey(h, &kg, dekt, 2, &dek), CKR_OK);
	sl = sizeof(sig);
	CU_ASSERT_EQUAL(sign(h, &m, priv, dg, 32, sig, &sl), CKR_OK);
	/* a read-only session writes nothing */
	CU_ASSERT_EQUAL_FATAL(p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &ro), CKR_OK);
	CU_ASSERT_EQUAL(p11->C_DestroyObject(ro, priv), CKR_SESSION_READ_ONLY);
	CU_ASSERT_EQUAL(find_one(h, CKO_PRIVATE_KEY, "made-del"), priv);

	/* the private key destroys the key: the public key goes with it */
	CU_ASSERT_EQUAL(p11->C_DestroyObject(h, priv), CKR_OK);
	CU_ASSERT_EQUAL(ledgered("hi", "admin_destroy") >= 1, 1);
	CU_ASSERT_EQUAL(find(h, 0, "made-del", any, 8), 0);
	len = sizeof(buf);
	CU_ASSERT_EQUAL(get_attr(h, priv, CKA_LABEL, buf, &len), CKR_OBJECT_HANDLE_INVALID);
	len = sizeof(buf);
	CU_ASSERT_EQUAL(get_attr(h, pub, CKA_LABEL, buf, &len), CKR_OBJECT_HANDLE_INVALID);
	CU_ASSERT_EQUAL(p11->C_SignInit(h, &m, priv), CKR_KEY_HANDLE_INVALID);
	CU_ASSERT_EQUAL(p11->C_DestroyObject(h, pub), CKR_OBJECT_HANDLE_INVALID);
	CU_ASSERT_EQUAL(p11->C_DestroyObject(h, priv), CKR_OBJECT_HANDLE_INVALID);

	/* a DEK through its secret key object */
	CU_ASSERT_EQUAL(find_one(h, CKO_SECRET_KEY, "made-deldek"), dek);
	CU_ASSERT_EQUAL(p11->C_DestroyObject(h, dek), CKR_OK);
	CU_ASSERT_EQUAL(find(h, 0, "made-deldek", any, 8), 0);
	len = sizeof(buf);
	CU_ASSERT_EQUAL(get_attr(h, dek, CKA_LABEL, buf, &len), CKR_OBJECT_HANDLE_INVALID);

	/* the name made again is a new key with new handles; the old stay dead */
	CU_ASSERT_EQUAL_FATAL(p11->C_GenerateKeyPair(h, &ecg, pubt, 2, NULL, 0, &pub2, &priv2),
			      CKR_OK);
	CU_ASSERT(pub2 != pub && priv2 != priv);
	CU_ASSERT_EQUAL(find_one(h, CKO_PRIVATE_KEY, "made-del"), priv2);
	len = sizeof(buf);
	CU_ASSERT_EQUAL(get_attr(h, priv, CKA_LABEL, buf, &len), CKR_OBJECT_HANDLE_INVALID);
	CU_ASSERT_EQUAL(p11->C_DestroyObject(h, pub2), CKR_OK);
	CU_ASSERT_EQUAL(find(h, 0, "made-del", any, 8), 0);
	CU_ASSERT_EQUAL(p11->C_CloseAllSessions(0), CKR_OK);
	fini();
}

/* 8 threads, each with its own session, signing at once. */
static CK_OBJECT_HANDLE thr_key, thr_pub;

static void *signer(void *arg)
{
	CK_SESSION_HANDLE h = 0;
	CK_MECHANISM m = { CKM_ECDSA_SHA256, NULL, 0 };
	uintptr_t ok = 0;

	(void)arg;
	if (p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &h) != CKR_OK)
		return (void *)0;
	for (int i = 0; i < 10; i++) {
		char msg[32];
		uint8_t sig[64];
		CK_ULONG sl = sizeof(sig);

		snprintf(msg, sizeof(msg), "message %d", i);
		if (p11->C_SignInit(h, &m, thr_key) == CKR_OK &&
		    p11->C_Sign(h, (CK_BYTE_PTR)msg, strlen(msg), sig, &sl) == CKR_OK &&
		    p11->C_VerifyInit(h, &m, thr_pub) == CKR_OK &&
		    p11->C_Verify(h, (CK_BYTE_PTR)msg, strlen(msg), sig, sl) == CKR_OK)
			ok++;
	}
	p11->C_CloseSession(h);
	return (void *)ok;
}

static void test_threads_sign_at_once(void)
{
	pthread_t t[8];
	CK_SESSION_HANDLE h;
	uintptr_t total = 0;

	init_ok();
	h = login_as(0, "thr");
	thr_key = find_one(h, CKO_PRIVATE_KEY, "ec-1");
	thr_pub = find_one(h, CKO_PUBLIC_KEY, "ec-1");
	for (int i = 0; i < 8; i++)
		CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, signer, NULL), 0);
	for (int i = 0; i < 8; i++) {
		void *r = NULL;

		pthread_join(t[i], &r);
		total += (uintptr_t)r;
	}
	CU_ASSERT_EQUAL(total, 80);
	CU_ASSERT_EQUAL(p11->C_CloseSession(h), CKR_OK);
	fini();
}

static void test_fork(void)
{
	CK_SESSION_HANDLE h;
	CK_OBJECT_HANDLE k;
	int status = -1;
	pid_t pid;

	init_ok();
	h = login_as(0, "frk");
	k = find_one(h, CKO_PRIVATE_KEY, "ec-1");
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		CK_SESSION_HANDLE ch = 0;
		CK_ULONG n = 0, sl = 64;
		CK_MECHANISM m = { CKM_ECDSA_SHA256, NULL, 0 };
		uint8_t sig[64];
		char pin[800];
		int fails = 0;

		/* the parent's state is not the child's */
		fails += p11->C_GetSlotList(CK_FALSE, NULL, &n) != CKR_CRYPTOKI_NOT_INITIALIZED;
		fails += p11->C_SignInit(h, &m, k) != CKR_CRYPTOKI_NOT_INITIALIZED;
		fails += p11->C_Finalize(NULL) != CKR_CRYPTOKI_NOT_INITIALIZED;
		fails += p11->C_Initialize(&os_locking) != CKR_OK;
		fails += p11->C_GetSessionInfo(h, &(CK_SESSION_INFO){ 0 }) !=
			 CKR_SESSION_HANDLE_INVALID;
		fails += p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &ch) != CKR_OK;
		snprintf(pin, sizeof(pin), "file:%s", kos_test_cred_path("frk"));
		fails += p11->C_Login(ch, CKU_USER, (CK_UTF8CHAR *)pin, strlen(pin)) != CKR_OK;
		k = find_one(ch, CKO_PRIVATE_KEY, "ec-1");
		fails += p11->C_SignInit(ch, &m, k) != CKR_OK;
		fails += p11->C_Sign(ch, (CK_BYTE_PTR)"x", 1, sig, &sl) != CKR_OK;
		fails += p11->C_Finalize(NULL) != CKR_OK;
		_exit(fails == 0 ? 0 : 10 + fails);
	}
	waitpid(pid, &status, 0);
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* the parent goes on with its own connections */
	{
		CK_MECHANISM m = { CKM_ECDSA_SHA256, NULL, 0 };
		uint8_t sig[64];
		CK_ULONG sl = sizeof(sig);

		CU_ASSERT_EQUAL(sign(h, &m, k, "y", 1, sig, &sl), CKR_OK);
	}
	fini();
}

static void test_revocation_and_falling_trust(void)
{
	CK_SESSION_HANDLE h, d;
	CK_OBJECT_HANDLE k, dek;
	CK_MECHANISM m = { CKM_ECDSA_SHA256, NULL, 0 };
	uint8_t sig[64], ct[128], pt[128], iv[12] = "another-iv12";
	CK_ULONG sl, cl = sizeof(ct), pl;
	CK_RV rv = CKR_OK;

	init_ok();
	h = login_as(0, "rev");
	k = find_one(h, CKO_PRIVATE_KEY, "ec-1");
	sl = sizeof(sig);
	CU_ASSERT_EQUAL(sign(h, &m, k, "a", 1, sig, &sl), CKR_OK);
	CU_ASSERT_EQUAL_FATAL(kos_cred_revoke_client(ca, "rev"), KOS_OK);
	for (int i = 0; i < 20; i++) {
		sl = sizeof(sig);
		rv = sign(h, &m, k, "a", 1, sig, &sl);
		if (rv != CKR_OK)
			break;
		usleep(100000);
	}
	CU_ASSERT_EQUAL(rv, CKR_USER_NOT_LOGGED_IN);
	CU_ASSERT_EQUAL(p11->C_CloseSession(h), CKR_OK);

	/* den falls from high to deny while its session is open */
	d = login_as(0, "den");
	dek = find_one(d, CKO_SECRET_KEY, "payments");
	k = find_one(d, CKO_PRIVATE_KEY, "ec-1");
	CU_ASSERT_EQUAL(gcm(d, true, dek, iv, 128, (const uint8_t *)"x", 1, ct, &cl), CKR_OK);
	CU_ASSERT_EQUAL(integrity_failures("den", 3), KOS_OK);
	CU_ASSERT_EQUAL(tier_of("den"), KOS_TIER_DENY);
	sl = sizeof(sig);
	CU_ASSERT_EQUAL(sign(d, &m, k, "a", 1, sig, &sl), CKR_FUNCTION_REJECTED);
	pl = sizeof(pt);
	CU_ASSERT_EQUAL(envelope(d, true, dek, NULL, (const uint8_t *)"x", 1, ct, &pl),
			CKR_FUNCTION_REJECTED);
	CU_ASSERT_EQUAL(p11->C_CloseSession(d), CKR_OK);
	fini();
}

int main(void)
{
	static const struct kos_test_case cases[] = {
		KOS_TEST(test_general_functions),
		KOS_TEST(test_slots_tokens_mechanisms),
		KOS_TEST(test_configuration),
		KOS_TEST(test_sessions_and_login),
		KOS_TEST(test_objects_and_attributes),
		KOS_TEST(test_sign_and_verify),
		KOS_TEST(test_digest_and_random),
		KOS_TEST(test_encryption_by_tier),
		KOS_TEST(test_envelope_interoperates),
		KOS_TEST(test_attacker_cannot_get_a_dek),
		KOS_TEST(test_key_management),
		KOS_TEST(test_destroy_objects),
		KOS_TEST(test_threads_sign_at_once),
		KOS_TEST(test_fork),
		KOS_TEST(test_revocation_and_falling_trust),
	};

	return kos_test_run("pkcs11", suite_init, suite_cleanup, cases,
			    sizeof(cases) / sizeof(cases[0]));
}
