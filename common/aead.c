/* AES-256-GCM, 96-bit IVs and 128-bit tags, for envelopes, service channels
 * and the server's cached decryption; tags of 96 to 128 bits for GCM with
 * the caller's parameters (see common/internal.h). */
#include "config.h"

#include "common/internal.h"

#include <limits.h>
#include <pthread.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

/* Fetched once: an implicit fetch per EVP_CIPHER use costs a lock and a
 * lookup per operation in OpenSSL 3. */
static EVP_CIPHER *gcm_cipher;
static pthread_once_t gcm_once = PTHREAD_ONCE_INIT;

static void gcm_fetch(void)
{
	gcm_cipher = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
}

static const EVP_CIPHER *gcm(void)
{
	pthread_once(&gcm_once, gcm_fetch);
	return gcm_cipher;
}

EVP_CIPHER_CTX *kos_aead_ctx_new(const uint8_t *key)
{
	const EVP_CIPHER *c = gcm();
	EVP_CIPHER_CTX *ctx;

	if (c == NULL)
		return NULL;
	ctx = EVP_CIPHER_CTX_new();
	/* The cipher is set here once: an init with a cipher frees and
	 * allocates the provider's context every time; with NULL it only
	 * sets the key and the IV. */
	if (ctx != NULL && EVP_CipherInit_ex(ctx, c, NULL, key, NULL, 1) != 1) {
		EVP_CIPHER_CTX_free(ctx);
		ctx = NULL;
	}
	return ctx;
}

/* EVP takes int lengths: larger inputs go in pieces. */
static int update(EVP_CIPHER_CTX *ctx, uint8_t *out, const uint8_t *in, size_t len)
{
	int n;

	while (len > 0) {
		int chunk = len > (size_t)(INT_MAX / 2) ? INT_MAX / 2 : (int)len;

		if (EVP_CipherUpdate(ctx, out, &n, in, chunk) != 1)
			return 0;
		in += chunk;
		if (out != NULL)
			out += chunk;
		len -= (size_t)chunk;
	}
	return 1;
}

static kos_rv run(int enc, EVP_CIPHER_CTX *ctx, const uint8_t *key, const uint8_t *iv,
		  const uint8_t *aad, size_t aad_len, const uint8_t *aad2, size_t aad2_len,
		  const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag, size_t taglen)
{
	static const uint8_t scrub_key[KOS_AEAD_KEY_LEN];
	EVP_CIPHER_CTX *own = NULL;
	kos_rv rv = KOS_E_CRYPTO;
	int n;

	if (ctx == NULL) {
		if (key == NULL)
			return KOS_E_CRYPTO;
		ctx = own = kos_aead_ctx_new(NULL);
		if (ctx == NULL)
			return KOS_E_CRYPTO;
	}
	if (EVP_CipherInit_ex(ctx, NULL, NULL, key, iv, enc) != 1)
		goto out;
	if (!update(ctx, NULL, aad, aad_len) || !update(ctx, NULL, aad2, aad2_len) ||
	    !update(ctx, out, in, len))
		goto out;
	if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, (int)taglen, tag) != 1)
		goto out;
	if (EVP_CipherFinal_ex(ctx, out + len, &n) != 1) {
		rv = enc ? KOS_E_CRYPTO : KOS_E_INTEGRITY;
		goto out;
	}
	if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, (int)taglen, tag) != 1)
		goto out;
	rv = KOS_OK;
out:
	if (!enc && rv != KOS_OK && len > 0)
		OPENSSL_cleanse(out, len);
	if (own != NULL)
		EVP_CIPHER_CTX_free(own); /* cleanses the key schedule */
	else if (key != NULL)
		/* the caller's context outlives the call: leave no key schedule
		 * of this key in it */
		(void)EVP_CipherInit_ex(ctx, NULL, NULL, scrub_key, NULL, -1);
	return rv;
}

kos_rv kos_aead_seal(EVP_CIPHER_CTX *ctx, const uint8_t *key, const uint8_t *iv,
		     const uint8_t *aad, size_t aad_len, const uint8_t *aad2, size_t aad2_len,
		     const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag)
{
	return run(1, ctx, key, iv, aad, aad_len, aad2, aad2_len, in, len, out, tag,
		   KOS_AEAD_TAG_LEN);
}

kos_rv kos_aead_open(EVP_CIPHER_CTX *ctx, const uint8_t *key, const uint8_t *iv,
		     const uint8_t *aad, size_t aad_len, const uint8_t *aad2, size_t aad2_len,
		     const uint8_t *in, size_t len, const uint8_t *tag, uint8_t *out)
{
	/* EVP's SET_TAG takes a non-const pointer; it only reads */
	return run(0, ctx, key, iv, aad, aad_len, aad2, aad2_len, in, len, out, (uint8_t *)tag,
		   KOS_AEAD_TAG_LEN);
}

kos_rv kos_aead_seal_tag(EVP_CIPHER_CTX *ctx, const uint8_t *key, const uint8_t *iv,
			 const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
			 uint8_t *out, uint8_t *tag, size_t taglen)
{
	if (taglen < KOS_GCM_TAG_MIN || taglen > KOS_GCM_TAG_MAX)
		return KOS_E_CRYPTO;
	return run(1, ctx, key, iv, aad, aad_len, NULL, 0, in, len, out, tag, taglen);
}

kos_rv kos_aead_open_tag(EVP_CIPHER_CTX *ctx, const uint8_t *key, const uint8_t *iv,
			 const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
			 const uint8_t *tag, size_t taglen, uint8_t *out)
{
	/* OpenSSL would take a tag of any length from 1 byte: a short one
	 * must never reach it */
	if (taglen < KOS_GCM_TAG_MIN || taglen > KOS_GCM_TAG_MAX)
		return KOS_E_INTEGRITY;
	return run(0, ctx, key, iv, aad, aad_len, NULL, 0, in, len, out, (uint8_t *)tag, taglen);
}

kos_rv kos_aead_gcm_check(size_t iv_len, size_t aad_len, size_t tag_len, size_t in_len,
			  bool decrypt)
{
	if (iv_len != KOS_GCM_IV_LEN)
		return kos_error_set(KOS_E_INVALID, "the IV must be %d bytes (96 bits), not %zu",
				     KOS_GCM_IV_LEN, iv_len);
	if (tag_len < KOS_GCM_TAG_MIN || tag_len > KOS_GCM_TAG_MAX)
		return kos_error_set(KOS_E_INVALID,
				     "the tag length must be %d to %d bytes (96 to 128 bits), not %zu",
				     KOS_GCM_TAG_MIN, KOS_GCM_TAG_MAX, tag_len);
	if (aad_len > KOS_GCM_AAD_MAX)
		return kos_error_set(KOS_E_INVALID, "additional data longer than %d bytes",
				     KOS_GCM_AAD_MAX);
	if (decrypt && in_len < tag_len)
		return kos_error_set(KOS_E_INVALID,
				     "ciphertext of %zu bytes is shorter than its %zu-byte tag",
				     in_len, tag_len);
	if (in_len - (decrypt ? tag_len : 0) > KOS_GCM_MAX_PLAINTEXT)
		return kos_error_set(KOS_E_INVALID, "%s larger than %u bytes",
				     decrypt ? "ciphertext" : "plaintext", KOS_GCM_MAX_PLAINTEXT);
	return KOS_OK;
}
