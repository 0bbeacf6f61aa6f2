/* The signing core the signature files share: the digest is computed here,
 * in the application's process, with the application's digest provider;
 * kosd signs the digest inside its HSM (one request per signature). The
 * parameters OpenSSL asks back (the AlgorithmIdentifier of X.509 and CMS)
 * come from a verification context of the public half, so kos writes no
 * DER by hand. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>
#include <openssl/rsa.h>

#include "provider/prov.h"

kosprov_sig_ctx *kosprov_sig_newctx(kosprov_ctx *p, kos_sig_alg alg, kos_key_type type,
				    OSSL_FUNC_signature_set_ctx_params_fn *set_params)
{
	kosprov_sig_ctx *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->prov = p;
	s->alg = alg;
	s->type = type;
	s->set_params = set_params;
	s->pss_saltlen_param = RSA_PSS_SALTLEN_AUTO;
	return s;
}

void kosprov_sig_freectx(void *ctx)
{
	kosprov_sig_ctx *s = ctx;

	if (s == NULL)
		return;
	kosprov_key_free(s->key);
	EVP_MD_CTX_free(s->md_ctx);
	EVP_MD_free(s->md);
	EVP_MD_free(s->mgf1);
	free(s);
}

void *kosprov_sig_dupctx(void *ctx)
{
	const kosprov_sig_ctx *s = ctx;
	kosprov_sig_ctx *d = kosprov_sig_newctx(s->prov, s->alg, s->type, s->set_params);

	if (d == NULL)
		return NULL;
	d->key = kosprov_key_ref(s->key);
	d->pss_saltlen_param = s->pss_saltlen_param;
	if ((s->md != NULL && (!EVP_MD_up_ref(s->md) || (d->md = s->md) == NULL)) ||
	    (s->mgf1 != NULL && (!EVP_MD_up_ref(s->mgf1) || (d->mgf1 = s->mgf1) == NULL)))
		goto err;
	if (s->md_ctx != NULL &&
	    ((d->md_ctx = EVP_MD_CTX_new()) == NULL || !EVP_MD_CTX_copy_ex(d->md_ctx, s->md_ctx)))
		goto err;
	return d;
err:
	kosprov_sig_freectx(d);
	return NULL;
}

static bool is_rsa(kos_key_type t)
{
	return t == KOS_KEY_RSA_2048 || t == KOS_KEY_RSA_3072;
}

int kosprov_sig_set_key(kosprov_sig_ctx *s, kosprov_key *key, bool verify)
{
	if (key == NULL || key->pub == NULL)
		return kosprov_raise(s->prov, KOSPROV_R_INVALID_ARGUMENT, "no key");
	if (is_rsa(s->type) ? !is_rsa(key->type) : key->type != s->type)
		return kosprov_raise(s->prov, KOSPROV_R_INVALID_ARGUMENT,
				     "a %s key for a %s signature",
				     kosprov_key_type_name(key->type), kosprov_key_type_name(s->type));
	/* defence in depth: OpenSSL itself moves a public-only key's signing
	 * to the default provider (kos exports public halves), which refuses
	 * it there, so no public interface reaches this refusal */
	if (!verify && !key->priv && !key->local)
		return kosprov_raise(s->prov, KOSPROV_R_NO_PRIVATE_KEY,
				     "%s is a public key (a URI of type=public, or a "
				     "certificate's): kos signs with a private key's URI",
				     key->name[0] != '\0' ? key->name : "the key");
	kosprov_key_free(s->key);
	s->key = kosprov_key_ref(key);
	return 1;
}

int kosprov_md_hash(const kosprov_ctx *p, const EVP_MD *md, kos_hash *h)
{
	if (EVP_MD_is_a(md, "SHA2-256"))
		*h = KOS_HASH_SHA256;
	else if (EVP_MD_is_a(md, "SHA2-384"))
		*h = KOS_HASH_SHA384;
	else if (EVP_MD_is_a(md, "SHA2-512"))
		*h = KOS_HASH_SHA512;
	else if (EVP_MD_is_a(md, "SHA1"))
		*h = KOS_HASH_SHA1; /* kosd signs it only where its policy allows */
	else
		return kosprov_raise(p, KOSPROV_R_UNSUPPORTED,
				     "kos uses SHA-256, SHA-384, SHA-512 (and SHA-1 where kosd's "
				     "policy allows it), not %s",
				     EVP_MD_get0_name(md));
	return 1;
}

/* Any digest the other providers have: a local key or a verification
 * may use it; kosd's keys refuse one kos does not sign when signing. */
int kosprov_sig_set_md(kosprov_sig_ctx *s, const char *mdname)
{
	EVP_MD *md;

	if (mdname == NULL || mdname[0] == '\0')
		return 1;
	md = EVP_MD_fetch(s->prov->libctx, mdname, KOSPROV_PROPQ);
	if (md == NULL)
		return kosprov_raise(s->prov, KOSPROV_R_UNSUPPORTED, "no digest %.40s", mdname);
	EVP_MD_free(s->md);
	s->md = md;
	return 1;
}

int kosprov_md_param(const kosprov_ctx *p, const OSSL_PARAM *param, EVP_MD **dst)
{
	const char *name = NULL;
	EVP_MD *md;

	if (!OSSL_PARAM_get_utf8_string_ptr(param, &name))
		return kosprov_raise(p, KOSPROV_R_INVALID_ARGUMENT, "%s is no digest name",
				     param->key);
	md = EVP_MD_fetch(p->libctx, name, KOSPROV_PROPQ);
	if (md == NULL)
		return kosprov_raise(p, KOSPROV_R_UNSUPPORTED, "no digest %.40s", name);
	EVP_MD_free(*dst);
	*dst = md;
	return 1;
}

int kosprov_pad_param(const OSSL_PARAM *param, int *pad)
{
	static const struct {
		const char *name;
		int pad;
	} names[] = {
		{ OSSL_PKEY_RSA_PAD_MODE_PKCSV15, RSA_PKCS1_PADDING },
		{ OSSL_PKEY_RSA_PAD_MODE_PSS, RSA_PKCS1_PSS_PADDING },
		{ OSSL_PKEY_RSA_PAD_MODE_OAEP, RSA_PKCS1_OAEP_PADDING },
		{ OSSL_PKEY_RSA_PAD_MODE_NONE, RSA_NO_PADDING },
		{ OSSL_PKEY_RSA_PAD_MODE_X931, RSA_X931_PADDING },
	};
	const char *name = NULL;

	if (param->data_type == OSSL_PARAM_INTEGER)
		return OSSL_PARAM_get_int(param, pad);
	if (!OSSL_PARAM_get_utf8_string_ptr(param, &name))
		return 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(name, names[i].name) == 0) {
			*pad = names[i].pad;
			return 1;
		}
	return 0;
}

/* The hash of a digest given without one: by its length. */
static int hash_of_len(const kosprov_sig_ctx *s, size_t len, kos_hash *h)
{
	switch (len) {
	case 32:
		*h = KOS_HASH_SHA256;
		return 1;
	case 48:
		*h = KOS_HASH_SHA384;
		return 1;
	case 64:
		*h = KOS_HASH_SHA512;
		return 1;
	case 20:
		*h = KOS_HASH_SHA1;
		return 1;
	default:
		return kosprov_raise(s->prov, KOSPROV_R_INVALID_ARGUMENT,
				     "a digest of %zu bytes: kos signs digests of 32, 48 or 64 "
				     "bytes, or 20 where SHA-1 is allowed (set the digest)",
				     len);
	}
}

/* The salt kosd is asked for: OpenSSL's special lengths resolved for the
 * key (RFC 8017: emLen - hLen - 2 at most). */
static int pss_salt(const kosprov_sig_ctx *s, kos_hash h, int *salt)
{
	int hlen = (int)kos_hash_len(h);
	int em = (EVP_PKEY_get_bits(s->key->pub) - 1 + 7) / 8;
	int max = em - hlen - 2;

	switch (s->pss_saltlen_param) {
	case RSA_PSS_SALTLEN_DIGEST:
		*salt = KOS_SIG_SALT_DEFAULT;
		return 1;
	case RSA_PSS_SALTLEN_AUTO:
	case RSA_PSS_SALTLEN_MAX:
		*salt = max;
		return 1;
	default:
		if (s->pss_saltlen_param < 0 || s->pss_saltlen_param > max)
			return kosprov_raise(s->prov, KOSPROV_R_INVALID_ARGUMENT,
					     "a PSS salt of %d bytes (at most %d for this key "
					     "and hash)",
					     s->pss_saltlen_param, max);
		*salt = s->pss_saltlen_param;
		return 1;
	}
}

/* The pad mode of kos's RSA forms, as OpenSSL numbers them. */
static int pad_mode(kos_sig_alg alg)
{
	return alg == KOS_SIG_RSA_PSS ? RSA_PKCS1_PSS_PADDING : RSA_PKCS1_PADDING;
}

/* s's parameters for a context of the other providers on the public half
 * (or a local key): pad mode, salt length, MGF1 digest; set has room for
 * 4, *pad and *salt hold the values. */
static int shadow_params(kosprov_sig_ctx *s, OSSL_PARAM set[4], int *pad, int *salt)
{
	size_t n = 0;
	kos_hash h;

	if (s->alg == KOS_SIG_RSA_PKCS1 || s->alg == KOS_SIG_RSA_PSS) {
		*pad = pad_mode(s->alg);
		set[n++] = OSSL_PARAM_construct_int(OSSL_SIGNATURE_PARAM_PAD_MODE, pad);
		if (s->alg == KOS_SIG_RSA_PSS) {
			if (s->key->local || s->md == NULL) {
				*salt = s->pss_saltlen_param;
			} else {
				if (!kosprov_md_hash(s->prov, s->md, &h) || !pss_salt(s, h, salt))
					return 0;
				if (*salt == KOS_SIG_SALT_DEFAULT)
					*salt = (int)kos_hash_len(h);
			}
			set[n++] = OSSL_PARAM_construct_int(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, salt);
			if (s->mgf1 != NULL)
				set[n++] = OSSL_PARAM_construct_utf8_string(
					OSSL_SIGNATURE_PARAM_MGF1_DIGEST,
					(char *)EVP_MD_get0_name(s->mgf1), 0);
		}
	}
	set[n] = OSSL_PARAM_construct_end();
	return 1;
}

/* A context of the other providers for s's key, initialised to sign
 * (local keys) or verify with s's digest and parameters. */
static EVP_PKEY_CTX *shadow_ctx(kosprov_sig_ctx *s, bool sign)
{
	EVP_PKEY_CTX *pctx;
	OSSL_PARAM set[4];
	int pad = 0, salt = 0;

	if (s->key == NULL || s->key->pub == NULL || !shadow_params(s, set, &pad, &salt))
		return NULL;
	pctx = EVP_PKEY_CTX_new_from_pkey(s->prov->libctx, s->key->pub, KOSPROV_PROPQ);
	if (pctx == NULL ||
	    (sign ? EVP_PKEY_sign_init_ex(pctx, set) : EVP_PKEY_verify_init_ex(pctx, set)) <= 0 ||
	    (s->md != NULL && EVP_PKEY_CTX_set_signature_md(pctx, s->md) <= 0)) {
		EVP_PKEY_CTX_free(pctx);
		return NULL;
	}
	return pctx;
}

/* EVP_PKEY_sign of a local key, by the provider that holds it. */
static int local_sign(kosprov_sig_ctx *s, unsigned char *sig, size_t *siglen, size_t sigsize,
		      const unsigned char *tbs, size_t tbslen)
{
	EVP_PKEY_CTX *pctx = shadow_ctx(s, true);
	size_t len = sigsize;
	int ok = pctx != NULL && EVP_PKEY_sign(pctx, sig, &len, tbs, tbslen) > 0;

	EVP_PKEY_CTX_free(pctx);
	if (ok)
		*siglen = len;
	return ok;
}

int kosprov_sig_verify(void *ctx, const unsigned char *sig, size_t siglen,
		       const unsigned char *tbs, size_t tbslen)
{
	kosprov_sig_ctx *s = ctx;
	EVP_PKEY_CTX *pctx = shadow_ctx(s, false);
	int ok = pctx != NULL && EVP_PKEY_verify(pctx, sig, siglen, tbs, tbslen) > 0;

	EVP_PKEY_CTX_free(pctx);
	return ok;
}

int kosprov_sig_digest_verify_final(void *ctx, const unsigned char *sig, size_t siglen)
{
	kosprov_sig_ctx *s = ctx;
	unsigned char dgst[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;

	if (s->md_ctx == NULL || !EVP_DigestFinal_ex(s->md_ctx, dgst, &dlen))
		return 0;
	return kosprov_sig_verify(s, sig, siglen, dgst, dlen);
}

/* Ed25519 (one-shot, no digest) by the other providers. */
static int message_op(kosprov_sig_ctx *s, bool sign, unsigned char *sig, size_t *siglen,
		      size_t sigsize, const unsigned char *msg, size_t msglen)
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	size_t len = sigsize;
	int ok = 0;

	if (m == NULL)
		return 0;
	if (sign)
		ok = EVP_DigestSignInit_ex(m, NULL, NULL, s->prov->libctx, KOSPROV_PROPQ,
					   s->key->pub, NULL) > 0 &&
		     EVP_DigestSign(m, sig, &len, msg, msglen) > 0;
	else
		ok = EVP_DigestVerifyInit_ex(m, NULL, NULL, s->prov->libctx, KOSPROV_PROPQ,
					     s->key->pub, NULL) > 0 &&
		     EVP_DigestVerify(m, sig, *siglen, msg, msglen) > 0;
	if (ok && sign)
		*siglen = len;
	EVP_MD_CTX_free(m);
	return ok;
}

int kosprov_sig_verify_message(kosprov_sig_ctx *s, const unsigned char *sig, size_t siglen,
			       const unsigned char *msg, size_t msglen)
{
	if (s->key == NULL)
		return 0;
	return message_op(s, false, (unsigned char *)sig, &siglen, 0, msg, msglen);
}

int kosprov_sig_sign(kosprov_sig_ctx *s, unsigned char *sig, size_t *siglen, size_t sigsize,
		     const unsigned char *tbs, size_t tbslen, int digest)
{
	kos_client_sign_opts o = KOS_CLIENT_SIGN_OPTS_INIT;
	size_t max;
	kos_client *c = NULL;
	uint8_t *out = NULL;
	size_t out_len = 0;
	kos_rv rv;
	int ok = 0;

	if (s->key == NULL)
		return kosprov_raise(s->prov, KOSPROV_R_INVALID_ARGUMENT, "no key");
	max = (size_t)EVP_PKEY_get_size(s->key->pub);
	if (sig == NULL) {
		*siglen = max;
		return 1;
	}
	if (s->key->local)
		return digest ? local_sign(s, sig, siglen, sigsize, tbs, tbslen)
			      : message_op(s, true, sig, siglen, sigsize, tbs, tbslen);
	o.alg = s->alg;
	o.version = s->key->version;
	o.digest = digest;
	if (digest) {
		if (s->md != NULL) {
			if (!kosprov_md_hash(s->prov, s->md, &o.hash))
				return 0;
			if (tbslen != (size_t)EVP_MD_get_size(s->md))
				return kosprov_raise(s->prov, KOSPROV_R_INVALID_ARGUMENT,
						     "a %s digest is %d bytes, not %zu",
						     EVP_MD_get0_name(s->md),
						     EVP_MD_get_size(s->md), tbslen);
		} else if (!hash_of_len(s, tbslen, &o.hash)) {
			return 0;
		}
		if (s->mgf1 != NULL && s->alg == KOS_SIG_RSA_PSS) {
			kos_hash m;

			if (!kosprov_md_hash(s->prov, s->mgf1, &m))
				return 0;
			if (m != o.hash)
				return kosprov_raise(s->prov, KOSPROV_R_UNSUPPORTED,
						     "kos signs PSS with MGF1 of the message's "
						     "hash");
		}
		if (s->alg == KOS_SIG_RSA_PSS && !pss_salt(s, o.hash, &o.salt_len))
			return 0;
	}
	c = kosprov_handle_get(s->prov);
	if (c == NULL)
		return 0;
	rv = kos_client_sign_ex(c, s->key->name, &o, tbs, tbslen, &out, &out_len, NULL);
	if (rv != KOS_OK) {
		kosprov_raise_client(s->prov, c, rv, s->key->name);
		goto out;
	}
	if (out_len > sigsize || out_len > max) {
		kosprov_raise(s->prov, KOSPROV_R_INTERNAL,
			      "a signature of %zu bytes for a buffer of %zu", out_len, sigsize);
		goto out;
	}
	memcpy(sig, out, out_len);
	*siglen = out_len;
	ok = 1;
out:
	kos_free(out);
	kosprov_handle_put(s->prov, c);
	return ok;
}

/* Starts the digest the application's data is hashed with, here. */
static int digest_init(kosprov_sig_ctx *s, const char *mdname)
{
	if (mdname == NULL || mdname[0] == '\0')
		mdname = "SHA2-256";
	if (!kosprov_sig_set_md(s, mdname))
		return 0;
	if (s->md_ctx == NULL && (s->md_ctx = EVP_MD_CTX_new()) == NULL)
		return kosprov_raise(s->prov, KOSPROV_R_INTERNAL, "out of memory");
	if (!EVP_DigestInit_ex2(s->md_ctx, s->md, NULL))
		return kosprov_raise(s->prov, KOSPROV_R_INTERNAL, "digest %s",
				     EVP_MD_get0_name(s->md));
	return 1;
}

int kosprov_sig_sign_init(void *ctx, void *provkey, const OSSL_PARAM params[])
{
	kosprov_sig_ctx *s = ctx;

	return kosprov_sig_set_key(s, provkey, false) && s->set_params(s, params);
}

int kosprov_sig_sign_digest(void *ctx, unsigned char *sig, size_t *siglen, size_t sigsize,
			    const unsigned char *tbs, size_t tbslen)
{
	return kosprov_sig_sign(ctx, sig, siglen, sigsize, tbs, tbslen, 1);
}

int kosprov_sig_digest_sign_init(void *ctx, const char *mdname, void *provkey,
				 const OSSL_PARAM params[])
{
	kosprov_sig_ctx *s = ctx;

	return kosprov_sig_set_key(s, provkey, false) && s->set_params(s, params) &&
	       digest_init(s, mdname);
}

int kosprov_sig_digest_update(void *ctx, const unsigned char *data, size_t len)
{
	kosprov_sig_ctx *s = ctx;

	if (s->md_ctx == NULL)
		return kosprov_raise(s->prov, KOSPROV_R_INVALID_ARGUMENT, "not initialised");
	return EVP_DigestUpdate(s->md_ctx, data, len);
}

int kosprov_sig_digest_sign_final(void *ctx, unsigned char *sig, size_t *siglen, size_t sigsize)
{
	kosprov_sig_ctx *s = ctx;
	unsigned char dgst[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;

	if (s->md_ctx == NULL || s->key == NULL)
		return kosprov_raise(s->prov, KOSPROV_R_INVALID_ARGUMENT, "not initialised");
	/* a size query leaves the digest running */
	if (sig == NULL)
		return kosprov_sig_sign(s, NULL, siglen, sigsize, NULL, 0, 1);
	if (!EVP_DigestFinal_ex(s->md_ctx, dgst, &dlen))
		return kosprov_raise(s->prov, KOSPROV_R_INTERNAL, "digest");
	return kosprov_sig_sign(s, sig, siglen, sigsize, dgst, dlen, 1);
}

int kosprov_sig_verify_init(void *ctx, void *provkey, const OSSL_PARAM params[])
{
	kosprov_sig_ctx *s = ctx;

	return kosprov_sig_set_key(s, provkey, true) && s->set_params(s, params);
}

int kosprov_sig_digest_verify_init(void *ctx, const char *mdname, void *provkey,
				   const OSSL_PARAM params[])
{
	kosprov_sig_ctx *s = ctx;

	return kosprov_sig_set_key(s, provkey, true) && s->set_params(s, params) &&
	       digest_init(s, mdname);
}

int kosprov_sig_get_algorithm_id(kosprov_sig_ctx *s, OSSL_PARAM *p)
{
	EVP_MD_CTX *vctx = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	OSSL_PARAM set[4], get[2];
	unsigned char aid[256];
	int pad = 0, salt = 0, ok = 0;

	if (s->key == NULL || s->key->pub == NULL || !shadow_params(s, set, &pad, &salt))
		return 0;
	vctx = EVP_MD_CTX_new();
	if (vctx == NULL ||
	    EVP_DigestVerifyInit_ex(vctx, &pctx,
				    s->md != NULL && s->alg != KOS_SIG_ED25519
					    ? EVP_MD_get0_name(s->md)
					    : NULL,
				    s->prov->libctx, KOSPROV_PROPQ, s->key->pub, set) <= 0)
		goto out;
	get[0] = OSSL_PARAM_construct_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, aid,
						   sizeof(aid));
	get[1] = OSSL_PARAM_construct_end();
	if (EVP_PKEY_CTX_get_params(pctx, get) <= 0 || !OSSL_PARAM_modified(&get[0]))
		goto out;
	ok = OSSL_PARAM_set_octet_string(p, aid, get[0].return_size);
out:
	EVP_MD_CTX_free(vctx);
	return ok;
}
