/* The x5t#S256 thumbprint of an X.509 certificate (RFC 8705 3.1): the
 * base64url, unpadded, of SHA-256 over its DER, which a credential's cnf
 * claim names. Shared by kosd (the presented certificate) and kosctl
 * (credential issue --cert). Thread-safe. */
#ifndef KOS_TOOLS_X5T_H
#define KOS_TOOLS_X5T_H

#include <kos/cred.h>

#include <openssl/x509.h>

/* Writes cert's thumbprint into out (KOS_CRED_X5T_LEN + 1 bytes). 0, or -1
 * when the certificate cannot be encoded. */
int tools_x5t_of_cert(X509 *cert, char out[KOS_CRED_X5T_LEN + 1]);
/* The thumbprint of the first certificate of the PEM file path; -1 with a
 * reason in why (why_len bytes) when it cannot be read or holds none. */
int tools_x5t_of_file(const char *path, char out[KOS_CRED_X5T_LEN + 1], char *why, size_t why_len);

#endif
