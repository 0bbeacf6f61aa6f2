/* x5t#S256 thumbprints of certificates (see x5t.h). */
#include "config.h"

#include "tools/common/x5t.h"

#include "common/internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

int tools_x5t_of_cert(X509 *cert, char out[KOS_CRED_X5T_LEN + 1])
{
	unsigned char md[32];
	unsigned char *der = NULL;
	unsigned int mdlen = 0;
	int len, i;

	len = i2d_X509(cert, &der);
	if (len <= 0)
		return -1;
	i = EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL);
	OPENSSL_free(der);
	if (i != 1 || mdlen != sizeof(md))
		return -1;
	/* 32 bytes are 43 characters of base64url */
	if (kos_b64url_len(sizeof(md)) != KOS_CRED_X5T_LEN ||
	    kos_b64url_encode(md, sizeof(md), out, KOS_CRED_X5T_LEN + 1) != KOS_OK)
		return -1;
	return 0;
}

int tools_x5t_of_file(const char *path, char out[KOS_CRED_X5T_LEN + 1], char *why, size_t why_len)
{
	FILE *f;
	X509 *cert;
	int rc;

	f = fopen(path, "r");
	if (f == NULL) {
		snprintf(why, why_len, "%s: %s", path, strerror(errno));
		return -1;
	}
	cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (cert == NULL) {
		snprintf(why, why_len, "%s: no PEM certificate in it", path);
		return -1;
	}
	rc = tools_x5t_of_cert(cert, out);
	X509_free(cert);
	if (rc != 0)
		snprintf(why, why_len, "%s: cannot encode the certificate", path);
	return rc;
}
