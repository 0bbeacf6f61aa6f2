/* kos.conf: where the state store and the policy are, which backend HSM
 * tokens exist and the environment their modules need (see kos.conf(5)).
 * Thread safety: a loaded configuration is immutable. */
#ifndef KOS_KOSCONF_H
#define KOS_KOSCONF_H

#include <kos/common.h>

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kos_config kos_config;

/* Loads and validates path; like kos_policy_load(), every problem goes to
 * *diag as "FILE:LINE: message\n" lines. Relative paths inside the file are
 * taken relative to the file's directory. Errors: KOS_E_IO, KOS_E_POLICY. */
KOS_API kos_rv kos_config_load(const char *path, kos_config **conf, char **diag);
/* kos_config_load() with flags: KOS_CONFIG_CHECK_FILES also reports every
 * file the configuration names for reading (token modules, PIN files, TLS
 * files, the policy, the JWKS) that is missing, unreadable by this process
 * or not a regular file, as kosd -t and kosctl config check want. */
#define KOS_CONFIG_CHECK_FILES 1u
KOS_API kos_rv kos_config_load_ex(const char *path, unsigned flags, kos_config **conf, char **diag);
KOS_API void kos_config_free(kos_config *conf);

/* The default location: $KOS_CONF, else SYSCONFDIR/kos/kos.conf. */
KOS_API const char *kos_config_default_path(void);

KOS_API const char *kos_config_get0_path(const kos_config *conf);
/* Store location as kos_store_open() takes it. */
KOS_API const char *kos_config_get0_store(const kos_config *conf);
/* Policy file path. */
KOS_API const char *kos_config_get0_policy(const kos_config *conf);
/* The kosd kosctl talks to ("server"): "unix:/ABSOLUTE-PATH" or
 * "https://HOST:PORT"; NULL when kos.conf names none. */
KOS_API const char *kos_config_get0_server(const kos_config *conf);

/* --- listeners ("listen" group, kosd) --- */

/* Where and how kosd listens; defaults for every setting left out. */
#define KOS_LISTEN_MAX_WORKERS 256

typedef struct kos_listen_config {
	const char *unix_path;	  /* absolute; NULL when kos.conf names no Unix socket */
	unsigned unix_mode;	  /* the socket file's mode; default 0660 */
	unsigned max_connections; /* default 256 */
	kos_usec timeout;	  /* a request's read and write timeout; default 30 s */
	size_t max_body;	  /* request body cap; default 1 MiB */
	size_t max_data_body;	  /* cap for encrypt and decrypt bodies; default 96 MiB */
	/* cap for the body of a request without a credential (no
	 * Authorization: Bearer), whatever its route; default 16 KiB (kosd
	 * applies at most max_body) */
	size_t max_anon_body;
	/* connections one peer (a Unix uid, a TCP address) may hold; default
	 * three quarters of max_connections, at least 1 */
	unsigned max_connections_per_peer;
	/* kosd's worker threads (token calls, store transactions); 0, the
	 * default, is one per CPU; kosd takes no more than its tokens'
	 * sessions allow (at most KOS_LISTEN_MAX_WORKERS) */
	unsigned workers;
	/* false, the default ("durable"): an answer leaves kosd only after its
	 * ledger entry and trust observations are committed; true
	 * ("batched"): they are written every 100 ms, and a crash loses them */
	bool ledger_batched;
	/* "synced": as "durable", and each commit is on disk before the
	 * answer leaves (the store fsyncs it), so a power loss loses none */
	bool ledger_synced;
	/* TCP, always with TLS 1.3 and a required client certificate: the
	 * address (an IPv6 one without brackets) and port; NULL and 0 when
	 * kos.conf names no tcp listener. */
	const char *tcp_host;
	unsigned tcp_port;
	/* The tls group's files, absolute; all three are set when tcp_host is. */
	const char *tls_cert;	   /* the server's certificate chain, PEM */
	const char *tls_key;	   /* its private key, PEM */
	const char *tls_client_ca; /* CA certificates client certificates must chain to */
} kos_listen_config;

/* Fills out with the listen settings; strings are borrowed from conf. */
KOS_API void kos_config_get_listen(const kos_config *conf, kos_listen_config *out);

/* --- backend tokens ("tokens" list) --- */

/* What a backend token is for. */
typedef enum kos_token_role {
	KOS_TOKEN_ROLE_KMS = 0,       /* holds Shamir shares of data keys */
	KOS_TOKEN_ROLE_SIGNER = 1,    /* holds signing keys */
	KOS_TOKEN_ROLE_CA = 2,        /* holds the credential authority's key */
	KOS_TOKEN_ROLE_TRUSTNODE = 3, /* holds a trust node's cosigning key */
} kos_token_role;
#define KOS_TOKEN_ROLE_COUNT 4

/* A token's kos name: 1..KOS_TOKEN_NAME_MAX of [a-z0-9_-]. */
#define KOS_TOKEN_NAME_MAX 32

/* "kms", "signer", "ca", "trustnode"; "?" for a value out of range. */
KOS_API const char *kos_token_role_name(kos_token_role role);
/* KOS_E_PARSE for anything but the four names. */
KOS_API kos_rv kos_token_role_parse(const char *s, kos_token_role *out);

/* Number of tokens, in file order; 0 when the file names none. */
KOS_API size_t kos_config_token_count(const kos_config *conf);
/* The getters below take i < kos_config_token_count() and return NULL (or
 * KOS_E_RANGE) beyond it; strings are borrowed from conf. */
KOS_API const char *kos_config_token_get0_name(const kos_config *conf, size_t i);
/* Absolute path of the PKCS#11 module (its existence is checked at open). */
KOS_API const char *kos_config_token_get0_module(const kos_config *conf, size_t i);
/* The token's RFC 7512 URI as written (already checked to parse). */
KOS_API const char *kos_config_token_get0_uri(const kos_config *conf, size_t i);
/* The PIN source: "file:ABSOLUTE-PATH" (resolved against kos.conf's
 * directory) or "env:NAME". Never the PIN itself. */
KOS_API const char *kos_config_token_get0_pin(const kos_config *conf, size_t i);
KOS_API kos_rv kos_config_token_get_role(const kos_config *conf, size_t i, kos_token_role *role);
/* The index of the token called name; KOS_E_NOTFOUND when none is. */
KOS_API kos_rv kos_config_token_find(const kos_config *conf, const char *name, size_t *i);

/* --- the KMS role ("kms" group) and KMS fronts ("kms_fronts" list) --- */

/* kms.jwks, absolute: the CA's public keys (a JWKS document, "kosctl ca
 * jwks") a KMS front (kosd --role kms) verifies grants with; NULL when the
 * file has no kms group. A file with a kms group needs no store. */
KOS_API const char *kos_config_get0_kms_jwks(const kos_config *conf);
/* The address of the KMS front that serves the shares of KMS token token:
 * "unix:/ABSOLUTE-PATH" or "https://HOST:PORT", borrowed from conf; NULL
 * when kms_fronts names no front for it (the kosd reading this file serves
 * them itself). */
KOS_API const char *kos_config_kms_front(const kos_config *conf, const char *token);

/* --- module environment ("environment" group) --- */

/* Variables set before the first PKCS#11 module is loaded (e.g.
 * SOFTHSM2_CONF), in file order. A value starting with "./" or "../" has
 * been made absolute against kos.conf's directory; others are verbatim. */
KOS_API size_t kos_config_env_count(const kos_config *conf);
KOS_API const char *kos_config_env_get0_name(const kos_config *conf, size_t i);
KOS_API const char *kos_config_env_get0_value(const kos_config *conf, size_t i);

#ifdef __cplusplus
}
#endif
#endif
