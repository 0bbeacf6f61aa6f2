/* Development installations: a directory with SoftHSM tokens, their PINs,
 * kos.conf, a policy and the state store, ready for kosctl and kosd.
 * Thread safety: kos_devinit() forks a child to initialise the tokens; call
 * it while no other thread of the process is inside the SoftHSM module. */
#ifndef KOS_DEVINIT_H
#define KOS_DEVINIT_H

#include <kos/common.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KOS_DEVINIT_KMS_DEFAULT 5
#define KOS_DEVINIT_KMS_MIN 2
/* As many as a Shamir share set can use. SoftHSM scans every token of its
 * directory at start-up, so time grows with the square of the count:
 * 11 tokens take ~0.1 s, 261 (255 KMS) ~2 s. */
#define KOS_DEVINIT_KMS_MAX 255
#define KOS_DEVINIT_TRUSTNODES 4
#define KOS_SOFTHSM_MODULE "/usr/lib/softhsm/libsofthsm2.so"

/* Makes a development installation in dir (created 0700 when missing):
 *   softhsm2.conf       SoftHSM configuration (token directory dir/tokens)
 *   tokens/             the SoftHSM tokens: kms1..kmsN, signer, ca,
 *                       trust1..trust4, labelled "kos-NAME"
 *   pins/NAME.pin       random user PINs, pins/NAME.so-pin SO PINs (0600,
 *                       in a 0700 directory)
 *   kos.policy          a copy of policy_src (checked with kos_policy_load())
 *   state.db            the state store
 *   kos.conf            names all of the above with absolute paths, and
 *                       kosd's socket dir/kosd.sock (when the path fits)
 * n_kms: 0 for KOS_DEVINIT_KMS_DEFAULT, else KOS_DEVINIT_KMS_MIN..MAX.
 * module: a SoftHSMv2 module, NULL for KOS_SOFTHSM_MODULE.
 *
 * The tokens are initialised through PKCS#11 in a child process, which sets
 * SOFTHSM2_CONF for itself only: the caller may already have SoftHSM loaded
 * with another configuration, and its own environment is left untouched (a
 * later kos_hsm_open() on the new kos.conf sets SOFTHSM2_CONF from its
 * environment group, provided no module is loaded in the process then).
 *
 * Errors: KOS_E_EXISTS when dir/kos.conf (or any file it would make) already
 * exists; KOS_E_INVALID, KOS_E_RANGE (n_kms) for bad arguments;
 * KOS_E_POLICY for a bad policy; KOS_E_IO, KOS_E_CRYPTO, KOS_E_STORE,
 * KOS_E_NOMEM. On failure everything it created is removed again. */
KOS_API kos_rv kos_devinit(const char *dir, unsigned n_kms, const char *policy_src,
			   const char *module);

#ifdef __cplusplus
}
#endif
#endif
