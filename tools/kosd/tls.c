/* kosd's TCP listener: TLS 1.3 only, with a client certificate that must
 * chain to the configured client CA (DESIGN.md 3, step 1). The presented
 * certificate's x5t#S256 is what a credential's cnf claim is checked
 * against (step 2). TLS itself is OpenSSL through libevent's OpenSSL
 * bufferevents; evhttp never sees plaintext from the network. */
#include "config.h"

#include "tools/kosd/kosd.h"
#include "tools/common/x5t.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* The newest OpenSSL error as text, and the queue cleared. */
static const char *ssl_why(char *buf, size_t len)
{
	unsigned long e = ERR_peek_last_error();

	if (e == 0)
		snprintf(buf, len, "unknown error");
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return buf;
}

/* A file that cannot be opened is named with errno's words, before
 * OpenSSL's less direct "system library" error. */
static int readable(struct kosd *d, const char *what, const char *path)
{
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		kosd_log(d, "listen: tls: %s %s: cannot read: %s", what, path, strerror(errno));
		return -1;
	}
	fclose(f);
	return 0;
}

/* A server context from listen.tls's files, or NULL after logging why. */
static SSL_CTX *tls_ctx_new(struct kosd *d)
{
	const kos_listen_config *l = &d->listen;
	STACK_OF(X509_NAME) *names = NULL;
	SSL_CTX *ctx;
	char why[256];

	if (readable(d, "cert", l->tls_cert) != 0 || readable(d, "key", l->tls_key) != 0 ||
	    readable(d, "client_ca", l->tls_client_ca) != 0)
		return NULL;
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		kosd_log(d, "listen: tls: %s", ssl_why(why, sizeof(why)));
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
		kosd_log(d, "listen: tls: this OpenSSL has no TLS 1.3: %s",
			 ssl_why(why, sizeof(why)));
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, l->tls_cert) != 1) {
		kosd_log(d, "listen: tls: cert %s: not a PEM certificate chain: %s", l->tls_cert,
			 ssl_why(why, sizeof(why)));
		goto fail;
	}
	/* OpenSSL 3 compares the key with the certificate as it loads it */
	if (SSL_CTX_use_PrivateKey_file(ctx, l->tls_key, SSL_FILETYPE_PEM) != 1) {
		if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH)
			kosd_log(d, "listen: tls: key %s does not match the certificate %s",
				 l->tls_key, l->tls_cert);
		else
			kosd_log(d, "listen: tls: key %s: not an unencrypted PEM private key: %s",
				 l->tls_key, ssl_why(why, sizeof(why)));
		ERR_clear_error();
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		kosd_log(d, "listen: tls: key %s does not match the certificate %s", l->tls_key,
			 l->tls_cert);
		ERR_clear_error();
		goto fail;
	}
	/* the CA is both what verifies client certificates and, as names,
	 * what the server asks for, so clients with several pick the right one */
	names = SSL_load_client_CA_file(l->tls_client_ca);
	if (names == NULL || SSL_CTX_load_verify_locations(ctx, l->tls_client_ca, NULL) != 1) {
		kosd_log(d, "listen: tls: client_ca %s: holds no PEM CA certificate: %s",
			 l->tls_client_ca, ssl_why(why, sizeof(why)));
		sk_X509_NAME_pop_free(names, X509_NAME_free);
		goto fail;
	}
	SSL_CTX_set_client_CA_list(ctx, names);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	/* a certificate issued for a server only is no client's */
	if (SSL_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT) != 1) {
		kosd_log(d, "listen: tls: %s", ssl_why(why, sizeof(why)));
		goto fail;
	}
	/* kosd is a service, not a browser's peer: no compression, and no
	 * resumption, so every connection shows its certificate afresh and
	 * no ticket key lives longer than the connection */
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_TICKET);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

int kosd_tls_init(struct kosd *d)
{
	d->tls_ctx = tls_ctx_new(d);
	return d->tls_ctx != NULL ? 0 : -1;
}

int kosd_tls_reload(struct kosd *d)
{
	SSL_CTX *ctx;

	if (d->tls_ctx == NULL)
		return 0;
	ctx = tls_ctx_new(d);
	if (ctx == NULL) {
		kosd_log(d, "TLS files not reloaded; keeping the certificate, key and client CA "
			    "loaded before");
		return -1;
	}
	/* connections made so far hold a reference to the old context */
	SSL_CTX_free(d->tls_ctx);
	d->tls_ctx = ctx;
	kosd_log(d, "TLS certificate %s, key and client CA %s reloaded", d->listen.tls_cert,
		 d->listen.tls_client_ca);
	return 0;
}

/* evhttp's bevcb: each accepted connection is wrapped in TLS. evhttp
 * falls back to a plain socket bufferevent when this returns NULL; the
 * TLS server's request handler refuses such a connection (kosd_tls_peer
 * finds no certificate), so a failure here fails closed. */
static struct bufferevent *new_tls_bev(struct event_base *base, void *arg)
{
	struct kosd *d = arg;
	struct bufferevent *bev;
	SSL *ssl;

	ssl = SSL_new(d->tls_ctx);
	if (ssl == NULL) {
		ERR_clear_error();
		return NULL;
	}
	/* the bufferevent owns ssl (BEV_OPT_CLOSE_ON_FREE); when making it
	 * fails, libevent 2.1 has freed ssl or not depending on the step that
	 * failed, so an out-of-memory here leaks rather than risk a double free */
	bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
					     BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		return NULL;
	/* clients often close without close_notify; HTTP framing says where
	 * an answer ends, so a truncation cannot go unnoticed */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return kosd_conn_accepted(d, bev);
}

int kosd_tls_listen(struct kosd *d, struct evhttp *http)
{
	const kos_listen_config *l = &d->listen;
	struct evhttp_bound_socket *bound;

	evhttp_set_bevcb(http, new_tls_bev, d);
	bound = evhttp_bind_socket_with_handle(http, l->tcp_host, (ev_uint16_t)l->tcp_port);
	if (bound == NULL) {
		kosd_log(d, "listen: cannot bind %s port %u: %s", l->tcp_host, l->tcp_port,
			 errno != 0 ? strerror(errno) : "unknown error");
		return -1;
	}
	d->tls_lev = evhttp_bound_socket_get_listener(bound);
	return 0;
}

void kosd_tls_free(struct kosd *d)
{
	SSL_CTX_free(d->tls_ctx);
	d->tls_ctx = NULL;
}

bool kosd_tls_peer(struct kosd_req *r)
{
	struct evhttp_connection *c = evhttp_request_get_connection(r->req);
	/* the TLS bufferevent sits under kosd_gate's filter */
	struct bufferevent *bev =
		c != NULL ? kosd_gate_transport(evhttp_connection_get_bufferevent(c)) : NULL;
	SSL *ssl = bev != NULL ? bufferevent_openssl_get_ssl(bev) : NULL;
	X509 *cert;
	BIO *mem;
	int n;

	r->have_cert = false;
	if (ssl == NULL)
		return false;
	cert = SSL_get0_peer_certificate(ssl);
	/* the handshake refused anything else; checked again as the binding
	 * of a credential rests on it */
	if (cert == NULL || SSL_get_verify_result(ssl) != X509_V_OK ||
	    SSL_version(ssl) != TLS1_3_VERSION)
		return false;
	if (tools_x5t_of_cert(cert, r->x5t) != 0)
		return false;
	/* RFC 2253 escapes control and non-ASCII characters: the subject,
	 * chosen by whoever the CA certified, cannot forge log fields */
	r->subject[0] = '\0';
	mem = BIO_new(BIO_s_mem());
	if (mem != NULL &&
	    X509_NAME_print_ex(mem, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0) {
		n = BIO_read(mem, r->subject, (int)sizeof(r->subject) - 1);
		r->subject[n > 0 ? n : 0] = '\0';
	}
	BIO_free(mem);
	ERR_clear_error();
	r->have_cert = true;
	return true;
}
