/* A client of the installed API only: built with include/ alone and linked
 * with libkos-client.so alone (tests/link-graph.sh runs it), so a header
 * that needs a private one, or a function the export list forgets, fails
 * here and not in an application.
 *   client-abi offline           argument checks and refusals without a kosd
 *   client-abi roundtrip KEY     encrypts and decrypts through $KOS_SERVER
 *                                with $KOS_CREDENTIAL_FILE */
#define _POSIX_C_SOURCE 200809L /* unsetenv */

#include <kos/kos.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failed;

static void check(int ok, const char *what)
{
	printf("%s - %s\n", ok ? "ok" : "FAIL", what);
	if (!ok) {
		printf("  last error: %s\n", kos_last_error());
		failed = 1;
	}
}

static int offline(void)
{
	kos_client *c = NULL;
	char version[64];

	unsetenv(KOS_CLIENT_ENV_SERVER);
	check(kos_client_new(NULL, &c) == KOS_E_INVALID && c == NULL, "no server is refused");
	check(strstr(kos_last_error(), KOS_CLIENT_ENV_SERVER) != NULL, "the detail names $KOS_SERVER");
	check(kos_client_new("ftp://host", &c) == KOS_E_INVALID, "an address of another form is refused");
	check(kos_client_new("unix:/nonexistent/kosd.sock", &c) == KOS_OK && c != NULL,
	      "a Unix-socket handle opens without connecting");
	if (c != NULL) {
		check(kos_client_health(c, version, sizeof(version)) == KOS_E_IO,
		      "an absent kosd is an I/O error");
		check(kos_last_error()[0] != '\0', "with a detail");
		check(kos_client_encrypt(c, "k", NULL, (const uint8_t *)"x", 1, NULL, NULL) ==
			      KOS_E_INVALID,
		      "encrypt without an output is refused");
		{
			kos_client_sign_opts o = KOS_CLIENT_SIGN_OPTS_INIT;
			uint8_t *sig = NULL;
			size_t sig_len = 0;

			o.digest = 1;
			check(kos_client_sign_ex(c, "k", &o, (const uint8_t *)"x", 1, &sig,
						 &sig_len, NULL) == KOS_E_INVALID &&
				      sig == NULL,
			      "sign_ex: a digest of the wrong length is refused here");
			check(kos_client_sign_ex(c, "k", NULL, (const uint8_t *)"x", 1, &sig,
						 &sig_len, NULL) == KOS_E_INVALID,
			      "sign_ex without options is refused");
			check(kos_client_pubkey_at(c, "k", 1, NULL, NULL) == KOS_E_INVALID,
			      "pubkey_at without an output is refused");
		}
		{
			kos_client_rewrap_item it[1] = { { .env = (const uint8_t *)"x", .env_len = 1 } };

			check(kos_client_rewrap(c, "k", it, 0, NULL) == KOS_E_INVALID,
			      "rewrap of no envelope is refused");
			check(kos_client_rewrap(c, "k", it, KOS_CLIENT_REWRAP_MAX + 1, NULL) ==
				      KOS_E_RANGE,
			      "rewrap of more than KOS_CLIENT_REWRAP_MAX is refused here");
			check(kos_client_rewrap(c, "-k", it, 1, NULL) == KOS_E_INVALID,
			      "rewrap of a bad key name is refused");
			kos_client_rewrap_clear(it, 1);
			kos_client_rewrap_clear(NULL, 3);
		}
		{
			kos_client_rsa_opts o = KOS_CLIENT_RSA_OPTS_INIT;
			uint8_t ct[256] = { 0 }, *pt = NULL;
			size_t pt_len = 0;

			o.padding = KOS_RSA_PAD_OAEP;
			o.label_len = 1;
			check(kos_client_rsa_decrypt(c, "k", &o, ct, sizeof(ct), &pt, &pt_len) ==
				      KOS_E_INVALID,
			      "rsa_decrypt with a label length but no label is refused");
			check(kos_client_rsa_decrypt(c, "k", NULL, ct, sizeof(ct), &pt, &pt_len) ==
				      KOS_E_INVALID,
			      "rsa_decrypt without options is refused");
		}
	}
	kos_client_free(c);
	kos_client_free(NULL);
	check(strcmp(kos_strerror(KOS_E_IO), kos_strerror(KOS_E_PARSE)) != 0, "kos_strerror");
	check(kos_key_name_valid("web-tls") && !kos_key_name_valid("-x"), "key names");
	check(kos_principal_name_valid("user@example") && !kos_principal_name_valid(".x"),
	      "client names");
	check(strcmp(kos_key_type_name(KOS_KEY_EC_P256), "ec-p256") == 0, "key type names");
	return failed;
}

static int roundtrip(const char *key)
{
	static const char msg[] = "a message for the shared library";
	kos_client *c = NULL;
	kos_client_stats st;
	uint8_t *env = NULL, *pt = NULL;
	size_t env_len = 0, pt_len = 0;

	if (kos_client_new(NULL, &c) != KOS_OK) {
		check(0, "kos_client_new from the environment");
		return 1;
	}
	check(kos_client_health(c, NULL, 0) == KOS_OK, "kosd answers health");
	check(kos_client_encrypt(c, key, "abi", (const uint8_t *)msg, sizeof(msg), &env,
				 &env_len) == KOS_OK,
	      "encrypt");
	check(env != NULL && kos_client_decrypt(c, "abi", env, env_len, &pt, &pt_len) == KOS_OK,
	      "decrypt");
	check(pt != NULL && pt_len == sizeof(msg) && memcmp(pt, msg, pt_len) == 0,
	      "the plaintext comes back");
	kos_client_get_stats(c, &st);
	check(st.requests >= 3, "the handle counted its requests");
	kos_secret_free(pt, pt_len);
	kos_free(env);
	kos_client_free(c);
	return failed;
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "offline") == 0)
		return offline();
	if (argc == 3 && strcmp(argv[1], "roundtrip") == 0)
		return roundtrip(argv[2]);
	fprintf(stderr, "usage: client-abi offline | client-abi roundtrip KEY\n");
	return 2;
}
