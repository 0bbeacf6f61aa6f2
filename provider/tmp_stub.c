#include "config.h"
#include "provider/prov.h"
kos_rv kos_client_rsa_decrypt(kos_client *c, const char *name, const kos_client_rsa_opts *opts, const uint8_t *ct, size_t len, uint8_t **pt, size_t *pt_len);
kos_rv kos_client_rsa_decrypt(kos_client *c, const char *name, const kos_client_rsa_opts *opts, const uint8_t *ct, size_t len, uint8_t **pt, size_t *pt_len)
{ (void)c;(void)name;(void)opts;(void)ct;(void)len;(void)pt;(void)pt_len; return KOS_E_INVALID; }
