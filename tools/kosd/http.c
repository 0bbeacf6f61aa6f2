/* kosd's HTTP server: the Unix listener, limits, routing, authentication,
 * JSON bodies and answers, and the request log. HTTP itself is libevent's
 * evhttp; nothing here parses HTTP. */
#include "config.h"

#include "tools/kosd/kosd.h"

#include "common/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

/* --- JSON memory: request bodies and answers carry secrets -------------- */

/* jansson frees without a size, and libkos, sharing jansson's process-wide
 * allocator, releases some of its blocks (json_dumps() text) with free():
 * so blocks stay plain malloc() ones and are wiped over their usable size. */
void *kosd_json_alloc(size_t n)
{
	return malloc(n);
}

void kosd_json_release(void *ptr)
{
	if (ptr == NULL)
		return;
	OPENSSL_cleanse(ptr, malloc_usable_size(ptr));
	free(ptr);
}

/* --- answers ------------------------------------------------------------ */

static double mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void wipe_free(const void *data, size_t len, void *arg)
{
	(void)len;
	(void)arg;
	kosd_json_release((void *)data);
}

/* "tls:ADDRESS:PORT" of a TLS request's client. */
static void tls_peer_name(struct kosd_req *r, char *buf, size_t len)
{
	struct evhttp_connection *c = evhttp_request_get_connection(r->req);
	char *addr = NULL;
	ev_uint16_t port = 0;

	if (c != NULL)
		evhttp_connection_get_peer(c, &addr, &port);
	snprintf(buf, len, "tls:%s:%u", addr != NULL ? addr : "?", (unsigned)port);
}

/* One line per request. Every field is escaped (kosd_log_escape): the
 * path, the client's names and the certificate's subject come from outside,
 * and a CR, LF or space in them must not forge a field or a record. */
static void log_request(struct kosd_req *r, double secs)
{
	char raw[64] = "-", peer[4 * sizeof(raw)], path[4 * 200 + 1], client[4 * 64 + 1];
	char jti[4 * 32 + 1], cert[4 * sizeof(r->subject)];
	const char *uri = r->logged_uri != NULL ? r->logged_uri : evhttp_request_get_uri(r->req);
	const char *q, *sub = r->authed ? r->claims.sub : "-";
	size_t ulen;

	if (r->have_peer)
		snprintf(raw, sizeof(raw), "pid=%ld,uid=%ld", (long)r->pid, (long)r->uid);
	else if (r->have_cert)
		tls_peer_name(r, raw, sizeof(raw));
	kosd_log_escape(peer, sizeof(peer), raw, strlen(raw), KOSD_ESC_BARE);
	/* the query string is never logged; paths hold only route and key names */
	if (uri == NULL)
		uri = "-";
	q = strchr(uri, '?');
	ulen = q != NULL ? (size_t)(q - uri) : strlen(uri);
	if (ulen > 200)
		ulen = 200;
	kosd_log_escape(path, sizeof(path), uri, ulen, KOSD_ESC_BARE);
	kosd_log_escape(client, sizeof(client), sub, strlen(sub), KOSD_ESC_BARE);
	kosd_log_escape(jti, sizeof(jti), r->authed ? r->claims.jti : "-",
			strlen(r->authed ? r->claims.jti : "-"), KOSD_ESC_BARE);
	kosd_log_escape(cert, sizeof(cert), r->subject, r->have_cert ? strlen(r->subject) : 0,
			KOSD_ESC_QUOTED);
	kosd_log(r->d,
		 "peer=%s client=%s route=%s path=%s status=%d tier=%s latency_ms=%.3f jti=%s%s%s%s",
		 peer, client, r->route->name, path, r->status,
		 r->tier != NULL ? r->tier : "-", secs * 1000.0, jti, r->have_cert ? " cert=\"" : "",
		 cert, r->have_cert ? "\"" : "");
}

static const char *reason_phrase(int status);

/* Whether a route's answers are decisions the ledger records: everything
 * but the public, read-only routes (health, metrics, the CA's JWKS) and
 * what no route took. A KMS front keeps no ledger. */
static bool recorded(const struct kosd_req *r)
{
	return r->d->ledger != NULL && (r->route->flags & KOSD_RF_UNLEDGERED) == 0;
}

void kosd_req_source(const struct kosd_req *r, char *buf, size_t len)
{
	struct evhttp_connection *c;
	char *addr = NULL;
	ev_uint16_t port = 0;

	if (r->have_peer) {
		snprintf(buf, len, "uid:%ld", (long)r->uid);
		return;
	}
	/* a worker has no business with the connection: serve() took it */
	if (r->source[0] != '\0') {
		snprintf(buf, len, "%s", r->source);
		return;
	}
	c = evhttp_request_get_connection(r->req);
	if (c != NULL)
		evhttp_connection_get_peer(c, &addr, &port);
	snprintf(buf, len, "tls:%s", addr != NULL ? addr : "?");
}

/* Step 7 of the pipeline: the decision as a ledger entry (names, tier,
 * outcome and the error code as the reason; never a secret). A decision
 * nobody authenticated is counted against its source instead, and the
 * ledger gets one entry per source and window (sources.c). */
static void record(struct kosd_req *r)
{
	char reason[sizeof(r->code)], source[64];
	const char *outcome, *client, *resource;
	size_t i;

	if (!recorded(r) || r->unrecorded)
		return;
	if (r->status >= 200 && r->status < 300)
		outcome = "allowed";
	else if (r->status == 401 || r->status == 403 || r->status == 429)
		outcome = "refused";
	else
		outcome = "failed";
	/* "trust_too_low" is recorded as DESIGN.md's "trust too low" */
	for (i = 0; r->code[i] != '\0'; i++)
		reason[i] = r->code[i] == '_' ? ' ' : r->code[i];
	reason[i] = '\0';
	if (!r->authed && r->who[0] == '\0') {
		kosd_req_source(r, source, sizeof(source));
		kosd_source_failed(r->d, source, r->route->name, reason);
		return;
	}
	client = r->authed ? r->claims.sub : r->who;
	resource = r->target[0] != '\0' ? r->target : r->name[0] != '\0' ? r->name : "-";
	/* serve() refused the request had the queue been full */
	if (kos_pipeline_record(r->d->pipeline, client, r->route->name, resource,
				r->tier != NULL ? r->tier : "-", outcome, reason,
				r->authed ? r->claims.jti : "-") != KOS_OK)
		kosd_log(r->d, "ledger: could not queue the decision on %s",
			 r->route->name);
}

/* Sends r's answer: text (len bytes) is the body; a secret one was made by
 * kosd_json_alloc and goes back to kosd_json_release, which wipes it, once
 * libevent has sent it; another is copied and stays the caller's. The
 * metrics and the log line come first: a request whose connection is gone
 * is freed by evhttp_send_reply itself. On the loop only. */
static void send_now(struct kosd_req *r, const char *ctype, char *text, size_t len, bool secret)
{
	struct evbuffer *out = evhttp_request_get_output_buffer(r->req);
	struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
	double secs = mono_now() - r->start;

	evhttp_add_header(h, "Content-Type", ctype);
	evhttp_add_header(h, "Cache-Control", "no-store");
	if (text != NULL && secret) {
		if (evbuffer_add_reference(out, text, len, wipe_free, NULL) != 0)
			kosd_json_release(text);
		else
			evbuffer_add(out, "\n", 1);
	} else if (text != NULL) {
		evbuffer_add(out, text, len);
	}
	kosd_metrics_request(r->d->metrics, r->route, r->status, secs);
	log_request(r, secs);
	evhttp_send_reply(r->req, r->status, reason_phrase(r->status), NULL);
	r->req = NULL;
}

/* Ends the request. On the loop the answer leaves at once; on a worker
 * (r->deferred) it is kept in r until its decision is committed, and the
 * loop sends it (kosd_http_answer). Either way the decision is recorded
 * here (record(): on a worker the ledger sink keeps the entry with r). */
static void finish(struct kosd_req *r, int status, const char *ctype, char *text, size_t len,
		   bool secret)
{
	/* one answer a request: a second would be a handler's mistake */
	if (r->answered) {
		if (text != NULL && secret)
			kosd_json_release(text);
		kosd_log(r->d, "route %s answered twice; the second answer (%d) dropped",
			 r->route->name, status);
		return;
	}
	r->answered = true;
	r->status = status;
	if (!r->deferred) {
		send_now(r, ctype, text, len, secret);
		record(r);
		return;
	}
	snprintf(r->ctype, sizeof(r->ctype), "%s", ctype);
	r->len = text != NULL ? len : 0;
	r->secret = text != NULL && secret;
	if (text != NULL && !secret) {
		r->text = malloc(len + 1);
		if (r->text != NULL)
			memcpy(r->text, text, len);
		else
			r->len = 0;
	} else {
		r->text = text;
	}
	record(r);
}

void kosd_reply_text(struct kosd_req *r, int status, const char *ctype, const char *text)
{
	finish(r, status, ctype, (char *)text, strlen(text), false);
}

static const char *reason_phrase(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 417: return "Expectation Failed";
	case 431: return "Request Header Fields Too Large";
	case 501: return "Not Implemented";
	case 422: return "Unprocessable Entity";
	case 429: return "Too Many Requests";
	case 503: return "Service Unavailable";
	default: return "Internal Server Error";
	}
}

void kosd_reply_json(struct kosd_req *r, int status, json_t *obj)
{
	char *text = NULL;

	if (obj != NULL)
		text = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);
	if (text == NULL) {
		kosd_reply_error(r, 500, "internal", "out of memory");
		return;
	}
	finish(r, status, "application/json", text, strlen(text), true);
}

void kosd_reply_error(struct kosd_req *r, int status, const char *code, const char *fmt, ...)
{
	char msg[512];
	json_t *o;
	char *text = NULL;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(r->code, sizeof(r->code), "%s", code);
	o = json_pack("{s:s, s:s}", "error", code, "message", msg);
	if (o != NULL)
		text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	finish(r, status, "application/json", text, text != NULL ? strlen(text) : 0, true);
}

void kosd_reply_rv(struct kosd_req *r, kos_rv rv, const char *what)
{
	const char *detail = kos_last_error();

	if (detail == NULL || detail[0] == '\0')
		detail = kos_strerror(rv);
	switch (rv) {
	case KOS_E_INVALID:
	case KOS_E_PARSE:
	case KOS_E_RANGE:
		kosd_reply_error(r, 400, "bad_request", "%s: %s", what, detail);
		break;
	case KOS_E_NOTFOUND:
		kosd_reply_error(r, 404, "not_found", "%s: %s", what, detail);
		break;
	case KOS_E_EXISTS:
		kosd_reply_error(r, 409, "conflict", "%s: %s", what, detail);
		break;
	case KOS_E_INTEGRITY:
		kosd_reply_error(r, 422, "integrity", "%s: %s", what, detail);
		break;
	case KOS_E_POLICY:
		kosd_reply_error(r, 403, "refused", "%s: %s", what, detail);
		break;
	case KOS_E_IO:
	case KOS_E_STORE:
	case KOS_E_BUSY:
		kosd_reply_error(r, 503, "unavailable", "%s: %s", what, detail);
		break;
	default:
		kosd_reply_error(r, 500, "internal", "%s: %s", what, detail);
		break;
	}
}

/* --- bodies ------------------------------------------------------------- */

const char *kosd_body_string(struct kosd_req *r, const char *key, bool required, bool *failed)
{
	json_t *v = r->body != NULL ? json_object_get(r->body, key) : NULL;

	*failed = false;
	if (v == NULL || json_is_null(v)) {
		if (required) {
			kosd_reply_error(r, 400, "missing_field", "\"%s\" is required", key);
			*failed = true;
		}
		return NULL;
	}
	if (!json_is_string(v)) {
		kosd_reply_error(r, 400, "wrong_type", "\"%s\" must be a string", key);
		*failed = true;
		return NULL;
	}
	if (strlen(json_string_value(v)) != json_string_length(v)) {
		kosd_reply_error(r, 400, "bad_request", "\"%s\" must not contain NUL", key);
		*failed = true;
		return NULL;
	}
	return json_string_value(v);
}

bool kosd_admit(struct kosd_req *r, kos_request *rq, const char *need)
{
	kos_decision dec;
	kos_rv rv;

	rq->client = r->claims.sub;
	rq->scope = r->claims.scope;
	rv = kos_pipeline_admit(r->d->pipeline, rq, &dec);
	if (rv != KOS_OK) {
		kosd_reply_rv(r, rv, "admission");
		return false;
	}
	r->tier = kos_tier_name(dec.tier);
	if (dec.allowed)
		return true;
	if (strcmp(dec.code, "out_of_scope") == 0 && (need != NULL || rq->action != NULL))
		kosd_reply_error(r, 403, dec.code, "out of scope: %s%s%s needed",
				 need != NULL ? need : rq->action, need != NULL ? "" : ":",
				 need != NULL ? "" : rq->resource != NULL ? rq->resource : "");
	else if (strcmp(dec.code, "beyond_scope") == 0)
		kosd_reply_error(r, 403, dec.code,
				 "beyond the granter's scope: a scope given or acted upon must lie "
				 "within the administrator's own");
	else if (strcmp(dec.code, "self_administration") == 0)
		kosd_reply_error(r, 403, dec.code, "a client does not administer itself");
	else
		kosd_reply_error(r, 403, dec.code, "%s", dec.reason);
	return false;
}

bool kosd_body_b64(struct kosd_req *r, const char *key, uint8_t **out, size_t *len)
{
	const char *s;
	size_t n, cap;
	uint8_t *buf;
	bool failed;

	*out = NULL;
	*len = 0;
	s = kosd_body_string(r, key, true, &failed);
	if (s == NULL)
		return false;
	n = strlen(s);
	/* canonical base64 only (kos_b64_decode): one byte string has one text,
	 * so nothing smuggles bytes past a check made on the text */
	cap = n / 4 * 3 + 1;
	buf = malloc(cap);
	if (buf == NULL) {
		kosd_reply_error(r, 503, "unavailable", "out of memory");
		return false;
	}
	*len = cap;
	if (kos_b64_decode(s, n, buf, len) != KOS_OK) {
		kos_secret_free(buf, cap);
		*len = 0;
		kosd_reply_error(r, 400, "bad_base64", "\"%s\" is not canonical base64", key);
		return false;
	}
	*out = buf;
	return true;
}

json_t *kosd_b64_json(const uint8_t *data, size_t len)
{
	size_t n = kos_b64_len(len);
	char *txt;
	json_t *j;

	if (n == SIZE_MAX)
		return NULL;
	/* a DEK or share: encoded in constant time, in memory that is wiped */
	txt = kosd_json_alloc(n + 1);
	if (txt == NULL)
		return NULL;
	if (kos_b64_encode(data, len, txt, n + 1) != KOS_OK) {
		kosd_json_release(txt);
		return NULL;
	}
	j = json_stringn(txt, n);
	kosd_json_release(txt);
	return j;
}

/* --- authentication ----------------------------------------------------- */

static bool authenticate(struct kosd_req *r)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(r->req), "Authorization");
	kos_cred_reason reason = KOS_CRED_ERROR;
	kos_rv rv;

	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0 || h[7] == '\0') {
		kosd_reply_error(r, 401, "invalid_credential",
				 "an Authorization: Bearer credential is required");
		return false;
	}
	h += 7;
	if (strlen(h) > KOS_CRED_MAX) {
		kosd_reply_error(r, 401, "invalid_credential", "invalid credential: too long");
		return false;
	}
	/* a cnf-bound credential needs the certificate it names, so it is
	 * refused on the Unix socket (no certificate, x5t NULL) */
	rv = kos_cred_verify(r->d->ca, h, kosd_req_x5t(r), &r->claims, &reason);
	/* a grant opens the share route and nothing else, and the share route
	 * takes nothing but a grant (DESIGN.md 4); the ledger names the holder */
	if (rv == KOS_OK && (r->claims.kind == KOS_CRED_KIND_GRANT) !=
				    ((r->route->flags & KOSD_RF_GRANT) != 0)) {
		r->authed = true;
		if ((r->route->flags & KOSD_RF_GRANT) != 0)
			kosd_reply_error(r, 403, "out_of_scope",
					 "out of scope: a share is fetched only with a grant");
		else
			kosd_reply_error(r, 401, "invalid_credential",
					 "invalid credential: a grant is accepted only by "
					 "POST /v1/shares/fetch");
		return false;
	}
	if (rv == KOS_OK) {
		r->authed = true;
		return true;
	}
	if (rv == KOS_E_INTEGRITY) {
		/* the reason's words only: the detail may describe the token */
		const char *code = reason == KOS_CRED_REVOKED	 ? "revoked"
				   : reason == KOS_CRED_EXPIRED	 ? "expired"
				   : reason == KOS_CRED_WRONG_CERT ? "certificate_mismatch"
								   : "invalid_credential";

		kosd_reply_error(r, 401, code, "%s", kos_cred_reason_name(reason));
		return false;
	}
	kosd_reply_rv(r, rv, "credential check");
	return false;
}

const char *kosd_req_x5t(const struct kosd_req *r)
{
	return r->have_cert ? r->x5t : NULL;
}

static void peer_of(struct kosd_req *r)
{
	struct evhttp_connection *c = evhttp_request_get_connection(r->req);
	struct bufferevent *bev = c != NULL ? evhttp_connection_get_bufferevent(c) : NULL;
	struct ucred uc;
	socklen_t len = sizeof(uc);
	evutil_socket_t fd = bev != NULL ? bufferevent_getfd(bev) : -1;

	if (fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) == 0) {
		r->have_peer = true;
		r->pid = uc.pid;
		r->uid = uc.uid;
		r->gid = uc.gid;
	}
}

/* --- the connection cap ------------------------------------------------- */

/* libevent 2.1 has no connection limit and tells nobody when evhttp accepts
 * a connection, except through the bevcb that makes its bufferevent. So a
 * connection is counted there, at accept, before it can send a byte; once
 * evhttp has wrapped the bufferevent in its evhttp_connection (right after
 * the bevcb returns), ev_adopt finds that connection and asks evhttp to say
 * when it closes. At the cap, evhttp's listeners are disabled and the *_full
 * ones, on the same sockets, refuse what arrives; below it again, evhttp's
 * take over. A flood of idle connections thus holds at most max_connections
 * evhttp connections and KOSD_REFUSING_MAX refusals. */
struct kosd_conn {
	struct kosd *d;
	struct bufferevent *bev; /* referenced until adopted */
	struct evhttp_connection *evcon; /* NULL until adopted */
	/* A whole request must arrive, and its answer leave, within
	 * listen.timeout: evhttp's own timeouts restart with every byte, so a
	 * client trickling a byte a second would hold its connection for ever */
	struct event *deadline;
	struct kosd_gate *gate; /* NULL when it could not be made: served nothing */
	/* the peer, for listen.max_connections_per_peer: a Unix uid or a TCP
	 * address (without the port); budgeted once counted against it */
	bool budgeted;
	int family;
	uid_t uid;
	unsigned char addr[16];
	/* requests of it out with a worker: while there are, the record
	 * stays (gone once evhttp closed the connection) and the deadline
	 * does not close it */
	unsigned busy;
	bool gone;
	struct kosd_conn *prev, *next;
};

/* A refused connection: it gets its 503 and, so that a client still sending
 * its request reads the answer rather than a reset, is drained until it
 * closes or KOSD_REFUSAL_SECS pass. */
struct kosd_refusal {
	struct kosd *d;
	struct bufferevent *bev;
	struct kosd_refusal *prev, *next;
};

#define KOSD_REFUSING_MAX 64
#define KOSD_REFUSAL_SECS 2

#define LIST_LINK(head, e)                                                                         \
	do {                                                                                       \
		(e)->prev = NULL;                                                                  \
		(e)->next = (head);                                                                \
		if ((head) != NULL)                                                                \
			(head)->prev = (e);                                                        \
		(head) = (e);                                                                      \
	} while (0)
#define LIST_UNLINK(head, e)                                                                       \
	do {                                                                                       \
		if ((e)->prev != NULL)                                                             \
			(e)->prev->next = (e)->next;                                               \
		else                                                                               \
			(head) = (e)->next;                                                        \
		if ((e)->next != NULL)                                                             \
			(e)->next->prev = (e)->prev;                                               \
	} while (0)

static void listener_set(struct evconnlistener *lev, bool on)
{
	if (lev == NULL)
		return;
	if (on)
		evconnlistener_enable(lev);
	else
		evconnlistener_disable(lev);
}

/* Points new connections at evhttp, or at the refusal while full. */
static void gate(struct kosd *d)
{
	bool full = d->n_conns >= d->listen.max_connections;

	if (d->stopping || full == d->full)
		return;
	d->full = full;
	listener_set(d->lev, !full);
	listener_set(d->tls_lev, !full);
	listener_set(d->lev_full, full);
	listener_set(d->tls_lev_full, full);
}

void kosd_http_close_listeners(struct kosd *d)
{
	d->stopping = true;
	listener_set(d->lev, false);
	listener_set(d->tls_lev, false);
	listener_set(d->lev_full, false);
	listener_set(d->tls_lev_full, false);
}

bool kosd_http_sending(const struct kosd *d)
{
	const struct kosd_conn *c;
	struct bufferevent *bev;

	for (c = d->conns; c != NULL; c = c->next) {
		bev = c->evcon != NULL ? evhttp_connection_get_bufferevent(c->evcon) : NULL;
		/* the gate passes answers on to its transport at once */
		if (bev != NULL && (evbuffer_get_length(bufferevent_get_output(bev)) > 0 ||
				    evbuffer_get_length(bufferevent_get_output(
					kosd_gate_transport(bev))) > 0))
			return true;
	}
	return false;
}

static void conn_free(struct kosd_conn *c)
{
	event_free(c->deadline);
	free(c);
}

static void conn_forget(struct kosd_conn *c)
{
	struct kosd *d = c->d;

	LIST_UNLINK(d->conns, c);
	d->n_conns--;
	if (c->evcon == NULL && c->bev != NULL)
		bufferevent_decref(c->bev);
	c->evcon = NULL;
	c->bev = NULL;
	/* a worker's request still names it: kosd_http_answer frees it */
	if (c->busy > 0) {
		c->gone = true;
		event_del(c->deadline);
	} else {
		conn_free(c);
	}
	gate(d);
}

static void conn_closed(struct evhttp_connection *evcon, void *arg)
{
	(void)evcon;
	conn_forget(arg);
}

static void arm_deadline(struct kosd_conn *c)
{
	struct timeval tv;

	tv.tv_sec = (time_t)(c->d->listen.timeout / KOS_USEC_PER_SEC);
	tv.tv_usec = (suseconds_t)(c->d->listen.timeout % KOS_USEC_PER_SEC);
	evtimer_add(c->deadline, &tv);
}

static void conn_expired(evutil_socket_t fd, short what, void *arg)
{
	struct kosd_conn *c = arg;
	struct kosd *d = c->d;
	size_t before = d->n_conns;

	(void)fd;
	(void)what;
	/* evhttp would free the request a worker holds with the connection:
	 * the deadline waits for its answer (which arms it again) */
	if (c->evcon == NULL)
		return;
	if (c->busy > 0) {
		arm_deadline(c);
		return;
	}
	d->conns_expired++;
	/* evhttp calls conn_closed as it frees the connection; should it not,
	 * the count must still come down */
	evhttp_connection_free(c->evcon);
	if (d->n_conns == before)
		conn_forget(c);
}

/* Who is at the other end of c: the uid of a Unix peer, the address of a
 * TCP one. False when neither can be known (then no budget applies). */
static bool peer_key(struct kosd_conn *c)
{
	evutil_socket_t fd = bufferevent_getfd(c->bev);
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct ucred uc;
	socklen_t ulen = sizeof(uc);

	if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		return false;
	c->family = ss.ss_family;
	if (ss.ss_family == AF_UNIX) {
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &ulen) != 0)
			return false;
		c->uid = uc.uid;
		return true;
	}
	len = sizeof(ss);
	if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
		return false;
	if (ss.ss_family == AF_INET)
		memcpy(c->addr, &((struct sockaddr_in *)&ss)->sin_addr, 4);
	else if (ss.ss_family == AF_INET6)
		memcpy(c->addr, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
	else
		return false;
	c->family = ss.ss_family;
	return true;
}

/* listen.max_connections_per_peer: one peer may not hold every connection.
 * A connection past its peer's budget has its first request answered 503
 * in JSON and is closed (the gate discards what it sends). A walk of at
 * most max_connections records, as conn_served's. */
static void budget(struct kosd *d, struct kosd_conn *c)
{
	const struct kosd_conn *o;
	unsigned n = 0;

	if (!peer_key(c))
		return;
	for (o = d->conns; o != NULL; o = o->next) {
		if (o == c || !o->budgeted || o->family != c->family)
			continue;
		if (c->family == AF_UNIX ? o->uid == c->uid
					 : memcmp(o->addr, c->addr, sizeof(c->addr)) == 0)
			n++;
	}
	if (n < d->listen.max_connections_per_peer) {
		c->budgeted = true;
		return;
	}
	d->conns_refused++;
	kosd_gate_refuse(c->gate, 503, "too_many_connections",
			 "this peer holds as many connections as it may "
			 "(listen.max_connections_per_peer)");
}

/* Runs once the accepting callback has returned: evhttp has made the
 * evhttp_connection and set it as its bufferevent's callback argument
 * (libevent 2.0 to 2.2 all do; checked below through the public getter).
 * A bufferevent whose callbacks are gone was freed by evhttp already (it
 * failed to set the connection up): the count comes down at once. */
static void adopt(evutil_socket_t fd, short what, void *arg)
{
	struct kosd *d = arg;
	struct kosd_conn *c, *prev;
	void *cbarg;

	(void)fd;
	(void)what;
	/* oldest first (the list is newest first), so a peer's budget goes to
	 * its connections in the order they came */
	for (c = d->conns; c != NULL && c->next != NULL; c = c->next)
		;
	for (; c != NULL; c = prev) {
		prev = c->prev;
		if (c->evcon != NULL)
			continue;
		cbarg = NULL;
		bufferevent_getcb(c->bev, NULL, NULL, NULL, &cbarg);
		if (cbarg == NULL || evhttp_connection_get_bufferevent(cbarg) != c->bev) {
			conn_forget(c);
			continue;
		}
		c->evcon = cbarg;
		evhttp_connection_set_closecb(c->evcon, conn_closed, c);
		bufferevent_decref(c->bev);
		if (c->gate != NULL) {
			kosd_gate_set_evcon(c->gate, c->evcon);
			budget(d, c);
		}
	}
}

struct bufferevent *kosd_conn_accepted(struct kosd *d, struct bufferevent *bev)
{
	struct kosd_conn *c;

	/* without its bufferevent or record the connection goes uncounted
	 * (evhttp makes a plain bufferevent itself): only out of memory */
	if (bev == NULL)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return bev;
	c->d = d;
	c->deadline = evtimer_new(d->base, conn_expired, c);
	if (c->deadline == NULL) {
		free(c);
		return bev;
	}
	/* every request passes the gate; without one (out of memory) serve()
	 * refuses what arrives */
	c->bev = kosd_gate_new(d, bev, &c->gate);
	if (c->bev == NULL)
		c->bev = bev;
	bufferevent_incref(c->bev);
	LIST_LINK(d->conns, c);
	d->n_conns++;
	arm_deadline(c);
	event_active(d->ev_adopt, EV_TIMEOUT, 0);
	/* disabling the listener here also ends its accept loop */
	gate(d);
	return c->bev;
}

/* The connection of a request being served: its deadline starts again, for
 * the answer and the next request on it. A walk of at most max_connections
 * records: evhttp 2.1 keeps no user pointer on a connection. */
static struct kosd_conn *conn_served(struct kosd *d, struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct kosd_conn *c;

	for (c = d->conns; c != NULL && evcon != NULL; c = c->next) {
		if (c->evcon == evcon) {
			arm_deadline(c);
			return c;
		}
	}
	return NULL;
}

static struct bufferevent *plain_bev(struct event_base *base, void *arg)
{
	return kosd_conn_accepted(arg, bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE));
}

static void refusal_free(struct kosd_refusal *f)
{
	struct kosd *d = f->d;

	LIST_UNLINK(d->refusals, f);
	d->n_refusing--;
	bufferevent_free(f->bev);
	free(f);
}

static void refusal_read(struct bufferevent *bev, void *arg)
{
	(void)arg;
	evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
}

/* The answer has left: half-close, so the client sees its end. */
static void refusal_written(struct bufferevent *bev, void *arg)
{
	(void)arg;
	shutdown(bufferevent_getfd(bev), SHUT_WR);
}

static void refusal_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	refusal_free(arg);
}

/* The *_full listeners' callback: the cap is reached. On the Unix socket
 * the client is told so in JSON; a TLS client cannot be told anything
 * before a handshake the cap exists to avoid, so it is closed. */
static void refuse(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa, int salen,
		   void *arg)
{
	struct kosd *d = arg;
	struct timeval tv = { KOSD_REFUSAL_SECS, 0 };
	struct kosd_refusal *f = NULL;
	struct bufferevent *bev = NULL;
	char body[128];
	int n;

	(void)sa;
	(void)salen;
	d->conns_refused++;
	if (lev != d->lev_full || d->n_refusing >= KOSD_REFUSING_MAX)
		goto close;
	f = calloc(1, sizeof(*f));
	bev = bufferevent_socket_new(d->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (f == NULL || bev == NULL)
		goto close;
	n = snprintf(body, sizeof(body),
		     "{\"error\":\"too_many_connections\",\"message\":\"the connection limit (%u) "
		     "is reached\"}\n",
		     d->listen.max_connections);
	if (evbuffer_add_printf(bufferevent_get_output(bev),
				"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
				"Cache-Control: no-store\r\nConnection: close\r\n"
				"Content-Length: %d\r\n\r\n%s",
				n, body) < 0)
		goto close;
	f->d = d;
	f->bev = bev;
	LIST_LINK(d->refusals, f);
	d->n_refusing++;
	bufferevent_setcb(bev, refusal_read, refusal_written, refusal_event, f);
	bufferevent_set_timeouts(bev, &tv, &tv);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	return;
close:
	free(f);
	if (bev != NULL)
		bufferevent_free(bev);
	else
		evutil_closesocket(fd);
}

/* A listener sharing lev's socket that refuses, disabled until the cap. */
static struct evconnlistener *full_listener(struct kosd *d, struct evconnlistener *lev)
{
	return evconnlistener_new(d->base, refuse, d, LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_DISABLED, -1,
				  evconnlistener_get_fd(lev));
}

/* --- dispatch ----------------------------------------------------------- */

static bool parse_body(struct kosd_req *r, const struct kosd_verdict *v)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
	size_t len = evbuffer_get_length(in);
	bool body = (r->route->flags & KOSD_RF_BODY) != 0;
	/* a route without a body is held to listen.max_body, as every route
	 * but the data routes always was */
	size_t cap = (r->route->flags & KOSD_RF_DATA) == KOSD_RF_DATA ? r->d->listen.max_data_body
									: r->d->listen.max_body;
	json_error_t jerr;
	unsigned char *p;

	/* kosd_gate left it unread */
	if (v->withheld) {
		if (!body)
			kosd_reply_error(r, 413, "too_large", "this route takes no body");
		else if (v->anon && v->cap < cap)
			kosd_reply_error(r, 413, "too_large",
					 "without a credential the body may be at most %zu bytes",
					 v->cap);
		else
			kosd_reply_error(r, 413, "too_large", "the body is larger than %zu bytes",
					 v->cap);
		return false;
	}
	if (len > cap) {
		kosd_reply_error(r, 413, "too_large", "the body is larger than %zu bytes", cap);
		return false;
	}
	if (!body)
		return true;
	if (len == 0) {
		r->body = json_object();
		if (r->body == NULL) {
			kosd_reply_error(r, 503, "unavailable", "out of memory");
			return false;
		}
		return true;
	}
	p = evbuffer_pullup(in, -1);
	if (p == NULL) {
		kosd_reply_error(r, 503, "unavailable", "out of memory");
		return false;
	}
	r->body = json_loadb((const char *)p, len, JSON_REJECT_DUPLICATES, &jerr);
	/* the body may carry plaintext or a secret: wipe it in place */
	OPENSSL_cleanse(p, len);
	if (r->body == NULL) {
		kosd_reply_error(r, 400, "invalid_json", "invalid JSON at line %d column %d: %s",
				 jerr.line, jerr.column, jerr.text);
		return false;
	}
	if (!json_is_object(r->body)) {
		kosd_reply_error(r, 400, "wrong_type", "the body must be a JSON object");
		return false;
	}
	return true;
}

/* Drops the answer kept in r: a secret one is wiped. */
static void text_free(struct kosd_req *r)
{
	if (r->secret)
		kosd_json_release(r->text);
	else
		free(r->text);
	r->text = NULL;
	r->secret = false;
}

static void req_free(struct kosd_req *r)
{
	json_decref(r->body);
	text_free(r);
	free(r->entries);
	free(r->obs);
	OPENSSL_cleanse(&r->claims, sizeof(r->claims));
	free(r);
}

/* Steps 2 and on, on a worker: the credential, the body, the handler. */
void kosd_http_work(struct kosd_req *r)
{
	const struct kosd_route *s = r->route;

	if ((s->flags & KOSD_RF_CRED) != 0 && !authenticate(r))
		goto out;
	if (!parse_body(r, &r->verdict))
		goto out;
	s->handler(r);
	if (!r->answered)
		kosd_reply_error(r, 500, "internal", "the route made no answer");
out:
	/* the body may hold plaintext or a secret: gone before the commit */
	json_decref(r->body);
	r->body = NULL;
}

void kosd_http_unrecorded(struct kosd_req *r)
{
	static const char msg[] = "{\"error\":\"unavailable\",\"message\":\"the decision "
				  "could not be recorded in the ledger: try later\"}";

	text_free(r);
	r->text = malloc(sizeof(msg));
	r->len = r->text != NULL ? sizeof(msg) - 1 : 0;
	if (r->text != NULL)
		memcpy(r->text, msg, sizeof(msg));
	snprintf(r->ctype, sizeof(r->ctype), "application/json");
	snprintf(r->code, sizeof(r->code), "unavailable");
	r->status = 503;
}

/* What a worker made, sent on the loop. */
void kosd_http_answer(struct kosd_req *r)
{
	struct kosd *d = r->d;
	struct kosd_conn *c = r->conn;
	char *text = r->text;
	bool secret = r->secret;

	/* send_now takes a secret text; another it copies */
	r->text = NULL;
	r->secret = false;
	send_now(r, r->ctype, text, r->len, secret);
	if (!secret)
		free(text);
	/* the gate's filter moves an answer on only when it grows while
	 * writing is on, and evhttp enables writing after adding it: outside
	 * serve() nothing else pushes it (kosd_gate's resumed() does there) */
	if (c != NULL && !c->gone && c->evcon != NULL)
		bufferevent_flush(evhttp_connection_get_bufferevent(c->evcon), EV_WRITE,
				  BEV_NORMAL);
	d->inflight--;
	if (c != NULL) {
		c->busy--;
		if (c->gone && c->busy == 0)
			conn_free(c);
		else if (!c->gone)
			arm_deadline(c);
	}
	req_free(r);
}

static void serve(struct evhttp_request *req, struct kosd *d, bool tls)
{
	struct kosd_req *r = calloc(1, sizeof(*r));
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	const struct kosd_route *s;
	struct kosd_verdict *v;
	struct kosd_conn *c;
	bool bad_name, known;

	if (r == NULL) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
		evhttp_send_error(req, 503, "Service Unavailable");
		return;
	}
	r->d = d;
	r->req = req;
	r->route = KOSD_ROUTE_UNKNOWN;
	r->start = mono_now();
	if (!tls) {
		peer_of(r);
	} else if (!kosd_tls_peer(r)) {
		/* a TCP connection is served only with TLS and a verified client
		 * certificate; anything else (see tls.c) is closed unserved */
		evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
		kosd_reply_error(r, 403, "tls_required", "a TLS client certificate is required");
		goto out;
	}
	/* the TLS peer's address, while the connection is certainly there
	 * (a worker, or record() after the answer, may not touch it) */
	if (!r->have_peer)
		kosd_req_source(r, r->source, sizeof(r->source));
	c = conn_served(d, req);
	v = &r->verdict;
	/* step 0: what kosd_gate decided before evhttp read anything */
	if (c == NULL || c->gate == NULL || !kosd_gate_take(c->gate, v)) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
		kosd_reply_error(r, 503, "unavailable", "out of memory");
		goto out;
	}
	/* (kosd_gate closes the connection after a refusal's answer) */
	if (v->substituted)
		r->logged_uri = v->target;
	if (v->status != 0) {
		kosd_reply_error(r, v->status, v->code, "%s", v->message);
		goto out;
	}
	if (path == NULL || path[0] == '\0')
		path = "/";
	s = kosd_route_match(path, evhttp_request_get_command(req), r->name, &bad_name, &known);
	if (s == NULL) {
		if (bad_name)
			kosd_reply_error(r, 400, "invalid_name",
					 "a key or service name is 1 to %d of A-Z a-z 0-9 . _ - (a "
					 "client name may also hold @) and does not start with . or -",
					 KOS_KEY_NAME_MAX);
		else if (known)
			kosd_reply_error(r, 405, "method_not_allowed", "method not allowed here");
		else
			kosd_reply_error(r, 404, "not_found", "no such route");
		goto out;
	}
	/* a KMS front has no store, keys or trust: it knows its share route
	 * and its own health, and no other route exists there */
	if (d->kms_role && (s->flags & KOSD_RF_KMS) == 0) {
		kosd_reply_error(r, 404, "not_found", "no such route on a KMS front");
		goto out;
	}
	r->route = s;
	/* no decision that could not be recorded */
	if (recorded(r) && kosd_ledger_full(d->ledger)) {
		r->unrecorded = true;
		kosd_reply_error(r, 503, "unavailable", "the ledger cannot be written: try later");
		goto out;
	}
	/* the public read-only routes are answered here, so that nothing a
	 * token does can hold them up; the rest goes to a worker with what
	 * it needs of the connection (work.c) */
	if ((s->flags & KOSD_RF_UNLEDGERED) == 0 && d->work != NULL) {
		r->deferred = true;
		r->conn = c;
		c->busy++;
		d->inflight++;
		kosd_work_submit(d, r);
		return;
	}
	if ((s->flags & KOSD_RF_CRED) != 0 && !authenticate(r))
		goto out;
	if (!parse_body(r, v))
		goto out;
	s->handler(r);
out:
	req_free(r);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	serve(req, arg, false);
}

static void on_tls_request(struct evhttp_request *req, void *arg)
{
	serve(req, arg, true);
}

/* --- the listener ------------------------------------------------------- */

/* Binds the Unix socket: a stale file (nobody answers) is removed, a live
 * kosd is not disturbed. The socket is made owner-only and then given its
 * configured mode, so nobody else can connect in between. */
static int unix_listen(struct kosd *d)
{
	const char *path = d->listen.unix_path;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat sb;
	mode_t old;
	int fd, rc;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		kosd_log(d, "listen: %s: path too long for a socket", path);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (lstat(path, &sb) == 0) {
		if (!S_ISSOCK(sb.st_mode)) {
			kosd_log(d, "listen: %s exists and is not a socket: not touching it", path);
			return -1;
		}
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			kosd_log(d, "listen: socket: %s", strerror(errno));
			return -1;
		}
		rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
		close(fd);
		if (rc == 0) {
			kosd_log(d, "listen: another kosd answers on %s", path);
			return -1;
		}
		if (unlink(path) != 0 && errno != ENOENT) {
			kosd_log(d, "listen: cannot remove the stale socket %s: %s", path,
				 strerror(errno));
			return -1;
		}
		kosd_log(d, "listen: removed the stale socket %s", path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		kosd_log(d, "listen: socket: %s", strerror(errno));
		return -1;
	}
	old = umask(0177);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc != 0) {
		kosd_log(d, "listen: bind %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	d->sock_made = true;
	if (chmod(path, (mode_t)d->listen.unix_mode) != 0 || listen(fd, 128) != 0) {
		kosd_log(d, "listen: %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* The limits and handler both servers share. */
static void set_up(struct kosd *d, struct evhttp *http, void (*cb)(struct evhttp_request *, void *))
{
	struct timeval tv;

	/* kosd_gate admits each body within its route's cap and sets that cap
	 * on the connection; this is only the largest. conn_expired closes a
	 * connection whose request, answer or idle wait outlasts the timeout
	 * (and counts it); evhttp's own timeout, which sees no bytes that
	 * kosd_gate still holds, is only a backstop at twice that. */
	evhttp_set_max_body_size(http, (ev_ssize_t)d->listen.max_data_body);
	evhttp_set_max_headers_size(http, KOS_CRED_MAX + 8192);
	tv.tv_sec = (time_t)(2 * d->listen.timeout / KOS_USEC_PER_SEC);
	tv.tv_usec = (suseconds_t)(2 * d->listen.timeout % KOS_USEC_PER_SEC);
	evhttp_set_timeout_tv(http, &tv);
	/* every method evhttp knows reaches serve(), which answers 405 in
	 * JSON; kosd_gate refuses the others (501) */
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
						 EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
						 EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
						 EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_default_content_type(http, "application/json");
	evhttp_set_gencb(http, cb, d);
}

int kosd_http_start(struct kosd *d)
{
	int fd;

	/* a table that routes one path twice, or names two routes alike,
	 * would serve or count requests other than as written */
	if (kosd_routes_check(d) != 0)
		return -1;
	if (d->listen.unix_path == NULL && d->listen.tcp_host == NULL) {
		kosd_log(d, "%s: no listener: set listen = { unix = \"kosd.sock\"; }",
			 kos_config_get0_path(d->conf));
		return -1;
	}
	/* the TLS material first: a wrong file stops kosd before it binds */
	if (d->listen.tcp_host != NULL && kosd_tls_init(d) != 0)
		return -1;
	d->ev_adopt = event_new(d->base, -1, 0, adopt, d);
	d->http = evhttp_new(d->base);
	if (d->ev_adopt == NULL || d->http == NULL) {
		kosd_log(d, "out of memory");
		return -1;
	}
	set_up(d, d->http, on_request);
	evhttp_set_bevcb(d->http, plain_bev, d);
	if (d->listen.tcp_host != NULL) {
		d->https = evhttp_new(d->base);
		if (d->https == NULL) {
			kosd_log(d, "out of memory");
			return -1;
		}
		set_up(d, d->https, on_tls_request);
		if (kosd_tls_listen(d, d->https) != 0)
			return -1;
		d->tls_lev_full = full_listener(d, d->tls_lev);
		if (d->tls_lev_full == NULL) {
			kosd_log(d, "listen: cannot watch the TCP socket");
			return -1;
		}
	}
	if (d->listen.unix_path == NULL)
		return 0;
	fd = unix_listen(d);
	if (fd < 0)
		return -1;
	d->lev = evconnlistener_new(d->base, NULL, NULL,
				    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (d->lev == NULL) {
		close(fd);
		kosd_log(d, "listen: cannot watch the socket");
		return -1;
	}
	if (evhttp_bind_listener(d->http, d->lev) == NULL) {
		kosd_log(d, "listen: cannot serve the socket");
		return -1;
	}
	d->lev_full = full_listener(d, d->lev);
	if (d->lev_full == NULL) {
		kosd_log(d, "listen: cannot watch the socket");
		return -1;
	}
	return 0;
}

void kosd_http_stop(struct kosd *d)
{
	/* the listeners' sockets are still open: the refusing ones go first */
	d->stopping = true;
	if (d->lev_full != NULL)
		evconnlistener_free(d->lev_full);
	if (d->tls_lev_full != NULL)
		evconnlistener_free(d->tls_lev_full);
	d->lev_full = NULL;
	d->tls_lev_full = NULL;
	/* evhttp_free frees the listener (bound with evhttp_bind_listener) and
	 * every connection, calling conn_closed for each adopted one */
	if (d->http != NULL)
		evhttp_free(d->http);
	else if (d->lev != NULL)
		evconnlistener_free(d->lev);
	d->http = NULL;
	d->lev = NULL;
	if (d->https != NULL)
		evhttp_free(d->https);
	d->https = NULL;
	d->tls_lev = NULL;
	/* after the connections: each SSL holds a reference to it */
	kosd_tls_free(d);
	/* connections evhttp freed before they were adopted */
	while (d->conns != NULL)
		conn_forget(d->conns);
	while (d->refusals != NULL)
		refusal_free(d->refusals);
	if (d->ev_adopt != NULL)
		event_free(d->ev_adopt);
	d->ev_adopt = NULL;
	if (d->sock_made && d->listen.unix_path != NULL)
		unlink(d->listen.unix_path);
	d->sock_made = false;
}
