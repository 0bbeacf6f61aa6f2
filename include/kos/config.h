/* kos.conf: where the state store and the policy are (see kos.conf(5)).
 * Thread safety: a loaded configuration is immutable. */
#ifndef KOS_CONFIG_H
#define KOS_CONFIG_H

#include <kos/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kos_config kos_config;

/* Loads and validates path; like kos_policy_load(), every problem goes to
 * *diag as "FILE:LINE: message\n" lines. Relative paths inside the file are
 * taken relative to the file's directory. Errors: KOS_E_IO, KOS_E_POLICY. */
KOS_API kos_rv kos_config_load(const char *path, kos_config **conf, char **diag);
KOS_API void kos_config_free(kos_config *conf);

/* The default location: $KOS_CONF, else SYSCONFDIR/kos/kos.conf. */
KOS_API const char *kos_config_default_path(void);

KOS_API const char *kos_config_get0_path(const kos_config *conf);
/* Store location as kos_store_open() takes it. */
KOS_API const char *kos_config_get0_store(const kos_config *conf);
/* Policy file path. */
KOS_API const char *kos_config_get0_policy(const kos_config *conf);

#ifdef __cplusplus
}
#endif
#endif
