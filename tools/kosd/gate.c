/* kosd's gate: a bufferevent filter between each connection's transport (a
 * socket, or TLS) and evhttp, so that no body is held before kosd knows
 * whether it may be.
 *
 * libevent 2.1.12's evhttp reads a whole body into memory before it calls
 * kosd, and caps bodies with one size for every route (evhttp_set_max_body_size,
 * so listen.max_data_body): four clients without a credential could make
 * kosd hold four bodies of 96 MiB, and a full connection table tens of GiB.
 * 2.1.12 gives a server no hook between the headers and the body.
 *
 * So the gate reads each request's line and header block first (at most
 * KOSD_GATE_HEAD_MAX bytes) and hands it to evhttp only once it knows the
 * request's framing and admits its body:
 *  - the body may be at most the route's cap (0 for a route without a body,
 *    listen.max_body, listen.max_data_body for the data routes) and, without
 *    an Authorization: Bearer credential, at most listen.max_anon_body;
 *  - a body over its cap is never read: evhttp gets the header block with
 *    "Content-Length: 0", serve() answers 413 (after the route and the
 *    credential, in their usual order) with Connection: close, and the gate
 *    discards whatever the client still sends;
 *  - framing evhttp would read otherwise than the gate, or not at all, is
 *    refused before evhttp sees it (serve() answers the gate's JSON error
 *    for a stand-in request): a malformed request line, an unknown method,
 *    header lines that are folded (obs-fold), have no name or hold control
 *    characters, a Content-Length twice or not all digits ("+2"), any
 *    Transfer-Encoding, a POST without Content-Length that asks to stay open,
 *    an Expect other than 100-continue, a header block over the cap.
 * The gate only recognises where a request's header block and body end;
 * evhttp still parses every request kosd serves. Admitted bytes pass
 * unchanged, exactly one request at a time: after a request's header block
 * and Content-Length bytes of body the gate waits until serve() has taken
 * its verdict, so pipelined bytes wait in the transport (whose read stops at
 * KOSD_GATE_READ_HIGH) rather than in evhttp's buffers. */
#include "config.h"

#include "tools/kosd/kosd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <openssl/crypto.h>

/* as evhttp_set_max_headers_size: a credential and room for the rest */
#define KOSD_GATE_HEAD_MAX (KOS_CRED_MAX + 8192)
/* the transport stops reading while this much waits for the gate */
#define KOSD_GATE_READ_HIGH (KOSD_GATE_HEAD_MAX + 16384)

enum gate_state {
	GATE_HEAD,   /* reading a request line and header block */
	GATE_BODY,   /* passing an admitted body */
	GATE_WAIT,   /* the request is evhttp's: until serve() takes the verdict */
	GATE_CLOSED, /* a refusal was handed over: the rest is discarded */
};

struct kosd_gate {
	struct kosd *d;
	struct bufferevent *bev;   /* the filter, evhttp's */
	struct bufferevent *under; /* the transport */
	struct evhttp_connection *evcon;
	struct event *resume;
	struct evbuffer_cb_entry *sent_cb;
	enum gate_state state;
	uint64_t body_left;
	size_t scanned; /* bytes of a header block already searched for its end */
	bool pending; /* a verdict waits for serve() */
	bool inject;  /* a refusal's stand-in request is still to be handed over */
	bool close_after; /* the client asked to close after this request */
	bool closing;	  /* the answer being sent is the connection's last */
	bool shut;	  /* and it has left: our side is shut down */
	struct kosd_verdict v;
};

/* What evhttp reads for a refused request: serve() answers the verdict. */
static const char stand_in[] = "GET / HTTP/1.1\r\nHost: kosd\r\n\r\n";

static bool tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* evhttp's methods (the others it parses as unknown); *body for the ones
 * whose body it reads (POST, PUT, PATCH: evhttp_method_may_have_body). */
static bool method_of(const char *m, size_t n, enum evhttp_cmd_type *type, bool *body)
{
	static const struct {
		const char *name;
		enum evhttp_cmd_type type;
		bool body;
	} methods[] = {
		{ "GET", EVHTTP_REQ_GET, false },	  { "POST", EVHTTP_REQ_POST, true },
		{ "HEAD", EVHTTP_REQ_HEAD, false },	  { "PUT", EVHTTP_REQ_PUT, true },
		{ "DELETE", EVHTTP_REQ_DELETE, false },	  { "OPTIONS", EVHTTP_REQ_OPTIONS, false },
		{ "TRACE", EVHTTP_REQ_TRACE, false },	  { "CONNECT", EVHTTP_REQ_CONNECT, false },
		{ "PATCH", EVHTTP_REQ_PATCH, true },
	};
	size_t i;

	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		if (strlen(methods[i].name) == n && memcmp(methods[i].name, m, n) == 0) {
			*type = methods[i].type;
			*body = methods[i].body;
			return true;
		}
	}
	return false;
}

/* The verdict for a request refused before evhttp sees it. */
static void refuse(struct kosd_gate *g, int status, const char *code, const char *msg)
{
	g->v.status = status;
	snprintf(g->v.code, sizeof(g->v.code), "%s", code);
	snprintf(g->v.message, sizeof(g->v.message), "%s", msg);
	g->v.close = true;
	g->pending = true;
	g->inject = true;
	g->state = GATE_CLOSED;
}

/* A header's value without the whitespace around it. */
static void value_of(const char *p, const char *end, const char **v, size_t *n)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*v = p;
	*n = (size_t)(end - p);
}

static bool value_is(const char *v, size_t n, const char *want)
{
	return strlen(want) == n && strncasecmp(v, want, n) == 0;
}

/* Judges the header block head[0..len) (its last line is the empty one).
 * Returns true when the request is admitted; otherwise the verdict says why
 * (v.withheld: a body over its cap, the request goes to evhttp without). */
static bool judge(struct kosd_gate *g, const char *head, size_t len)
{
	const struct kosd *d = g->d;
	const char *p = head, *end = head + len, *eol, *sp1, *sp2, *path;
	const char *conn = NULL, *v;
	size_t n, conn_len = 0, tlen;
	uint64_t declared = 0;
	bool has_cl = false, has_body, credential = false, auth_seen = false;
	enum evhttp_cmd_type type;
	struct evhttp_uri *uri;
	size_t cap;

	eol = memchr(p, '\n', (size_t)(end - p));
	n = (size_t)(eol - p);
	if (n > 0 && p[n - 1] == '\r')
		n--;
	/* the target as sent, for the log (escaped there) */
	sp1 = memchr(p, ' ', n);
	tlen = n;
	if (sp1 != NULL) {
		sp2 = memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - p));
		tlen = (size_t)((sp2 != NULL ? sp2 : p + n) - (sp1 + 1));
		if (tlen >= sizeof(g->v.target))
			tlen = sizeof(g->v.target) - 1;
		memcpy(g->v.target, sp1 + 1, tlen);
	} else {
		if (tlen >= sizeof(g->v.target))
			tlen = sizeof(g->v.target) - 1;
		memcpy(g->v.target, p, tlen);
	}
	g->v.target[tlen] = '\0';
	g->v.substituted = true;

	/* METHOD SP TARGET SP HTTP/1.x, one space each, nothing else */
	sp2 = sp1 != NULL ? memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - p)) : NULL;
	if (sp1 == NULL || sp1 == p || sp2 == NULL || sp2 == sp1 + 1 ||
	    (size_t)(p + n - (sp2 + 1)) != 8 ||
	    (memcmp(sp2 + 1, "HTTP/1.1", 8) != 0 && memcmp(sp2 + 1, "HTTP/1.0", 8) != 0)) {
		refuse(g, 400, "bad_request", "malformed request line (METHOD TARGET HTTP/1.1)");
		return false;
	}
	for (v = p; v < sp1; v++) {
		if (!tchar((unsigned char)*v)) {
			refuse(g, 400, "bad_request", "malformed request method");
			return false;
		}
	}
	for (v = sp1 + 1; v < sp2; v++) {
		if ((unsigned char)*v <= 0x20 || (unsigned char)*v >= 0x7f) {
			refuse(g, 400, "bad_request",
			       "the request target holds a space, control or non-ASCII byte "
			       "(percent-encode it)");
			return false;
		}
	}
	if (!method_of(p, (size_t)(sp1 - p), &type, &has_body)) {
		refuse(g, 501, "not_implemented", "this method is not implemented");
		return false;
	}
	/* the route, as serve() will find it: evhttp's own URI parser */
	tlen = (size_t)(sp2 - (sp1 + 1));
	{
		char *t = malloc(tlen + 1);

		if (t == NULL) {
			refuse(g, 503, "unavailable", "out of memory");
			return false;
		}
		memcpy(t, sp1 + 1, tlen);
		t[tlen] = '\0';
		uri = evhttp_uri_parse_with_flags(t, EVHTTP_URI_NONCONFORMANT);
		free(t);
	}
	if (uri == NULL) {
		refuse(g, 400, "bad_request", "malformed request target");
		return false;
	}
	path = evhttp_uri_get_path(uri);

	/* header lines: NAME ":" VALUE, nothing folded, no control byte */
	for (p = eol + 1; p < end; p = eol + 1) {
		const char *colon, *q;

		eol = memchr(p, '\n', (size_t)(end - p));
		n = (size_t)(eol - p);
		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (n == 0)
			break;
		if (p[0] == ' ' || p[0] == '\t') {
			refuse(g, 400, "bad_request",
			       "folded header lines (obs-fold) are not accepted");
			goto refused;
		}
		colon = memchr(p, ':', n);
		for (q = p; colon != NULL && q < colon && tchar((unsigned char)*q); q++)
			;
		if (colon == NULL || colon == p || q != colon) {
			refuse(g, 400, "bad_request", "malformed header line");
			goto refused;
		}
		for (q = colon + 1; q < p + n; q++) {
			unsigned char c = (unsigned char)*q;

			if ((c < 0x20 && c != '\t') || c == 0x7f) {
				refuse(g, 400, "bad_request", "a header value holds a control byte");
				goto refused;
			}
		}
		value_of(colon + 1, p + n, &v, &tlen);
#define NAME_IS(s) ((size_t)(colon - p) == strlen(s) && strncasecmp(p, s, strlen(s)) == 0)
		if (NAME_IS("Content-Length")) {
			size_t i;

			if (has_cl) {
				refuse(g, 400, "bad_request", "Content-Length is given twice");
				goto refused;
			}
			has_cl = true;
			if (tlen == 0 || tlen > 15) {
				refuse(g, 400, "bad_request", "Content-Length must be 1 to 15 digits");
				goto refused;
			}
			for (i = 0; i < tlen; i++) {
				if (v[i] < '0' || v[i] > '9') {
					refuse(g, 400, "bad_request", "Content-Length must be digits only");
					goto refused;
				}
				declared = declared * 10 + (uint64_t)(v[i] - '0');
			}
		} else if (NAME_IS("Transfer-Encoding")) {
			refuse(g, 501, "not_implemented",
			       "Transfer-Encoding is not accepted: send the body with Content-Length");
			goto refused;
		} else if (NAME_IS("Expect")) {
			if (!value_is(v, tlen, "100-continue")) {
				refuse(g, 417, "expectation_failed", "only Expect: 100-continue is known");
				goto refused;
			}
		} else if (NAME_IS("Connection")) {
			if (conn == NULL) {
				conn = v;
				conn_len = tlen;
			}
		} else if (NAME_IS("Authorization")) {
			/* evhttp_find_header, and so authenticate(), takes the first */
			if (!auth_seen)
				credential = tlen > 7 && strncasecmp(v, "Bearer ", 7) == 0;
			auth_seen = true;
		}
#undef NAME_IS
	}
	/* evhttp never sees Connection (emit() drops it): the gate closes the
	 * connection itself once the answer has left, which evhttp, freeing the
	 * connection as soon as the answer is handed to the gate, cannot */
	if (memcmp(sp2 + 1, "HTTP/1.0", 8) == 0)
		g->close_after = conn == NULL || !value_is(conn, conn_len, "keep-alive");
	else
		g->close_after = conn != NULL && value_is(conn, conn_len, "close");
	cap = kosd_body_cap(d, type, path != NULL && path[0] != '\0' ? path : "/");
	g->v.anon = !credential;
	if (!credential && cap > d->listen.max_anon_body)
		cap = d->listen.max_anon_body;
	if (!credential && cap > d->listen.max_body)
		cap = d->listen.max_body;
	evhttp_uri_free(uri);
	g->v.cap = cap;
	g->v.declared = declared;
	g->v.substituted = false;
	g->v.status = 0;
	g->pending = true;
	/* a method whose body evhttp does not read must declare none: the
	 * bytes would be read as the next request */
	if (declared > cap || (!has_body && declared > 0)) {
		g->v.withheld = true;
		g->v.close = true;
		g->state = GATE_CLOSED;
		return false;
	}
	g->body_left = has_body ? declared : 0;
	g->state = g->body_left > 0 ? GATE_BODY : GATE_WAIT;
	/* a second fence: evhttp itself refuses more than the gate admitted */
	if (g->evcon != NULL)
		evhttp_connection_set_max_body_size(g->evcon, (ev_ssize_t)cap);
	return true;
refused:
	evhttp_uri_free(uri);
	return false;
}

/* Hands evhttp the header block head[0..len) as HTTP/1.1, without its
 * Connection lines, and with "Content-Length: 0" for a withheld body. */
static void emit(struct evbuffer *dst, const char *head, size_t len, bool zero_length)
{
	const char *p = head, *end = head + len, *eol, *colon;
	size_t n;

	eol = memchr(p, '\n', len);
	n = (size_t)(eol - p);
	if (n > 0 && p[n - 1] == '\r')
		n--;
	evbuffer_add(dst, p, n - 8);
	evbuffer_add(dst, "HTTP/1.1\r\n", 10);
	for (p = eol + 1; p < end; p = eol + 1) {
		eol = memchr(p, '\n', (size_t)(end - p));
		n = (size_t)(eol - p);
		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (n == 0)
			break;
		colon = memchr(p, ':', n);
		if ((size_t)(colon - p) == 10 && strncasecmp(p, "Connection", 10) == 0)
			continue;
		if (zero_length && (size_t)(colon - p) == 14 &&
		    strncasecmp(p, "Content-Length", 14) == 0) {
			evbuffer_add(dst, "Content-Length: 0\r\n", 19);
			continue;
		}
		evbuffer_add(dst, p, n);
		evbuffer_add(dst, "\r\n", 2);
	}
	evbuffer_add(dst, "\r\n", 2);
}

/* Where a header block ends in buf[0..len): the offset after its empty
 * line, or 0 when it has not all arrived. The search starts at from (the
 * bytes before it were searched when they arrived: a trickling client
 * costs each byte once). */
static size_t head_end(const unsigned char *buf, size_t len, size_t from)
{
	size_t i;

	for (i = from; i < len; i++) {
		if (buf[i] != '\n' || i == 0)
			continue;
		if (buf[i - 1] == '\n')
			return i + 1;
		if (buf[i - 1] == '\r' && i >= 2 && buf[i - 2] == '\n')
			return i + 1;
	}
	return 0;
}

/* Moves what may go from src (the transport's input) to dst (evhttp's);
 * true when anything was handed to evhttp. */
static bool run(struct kosd_gate *g, struct evbuffer *src, struct evbuffer *dst)
{
	bool moved = false;

	for (;;) {
		size_t have = evbuffer_get_length(src), n, end;
		unsigned char *buf;

		if (g->inject) {
			g->inject = false;
			evbuffer_add(dst, stand_in, sizeof(stand_in) - 1);
			moved = true;
		}
		switch (g->state) {
		case GATE_CLOSED:
			evbuffer_drain(src, have);
			return moved;
		case GATE_WAIT:
			return moved;
		case GATE_BODY:
			if (have == 0)
				return moved;
			n = have < g->body_left ? have : (size_t)g->body_left;
			evbuffer_remove_buffer(src, dst, n);
			g->body_left -= n;
			moved = true;
			if (g->body_left == 0)
				g->state = GATE_WAIT;
			continue;
		case GATE_HEAD:
			break;
		}
		if (have == 0)
			return moved;
		n = have < KOSD_GATE_HEAD_MAX ? have : KOSD_GATE_HEAD_MAX;
		buf = evbuffer_pullup(src, (ev_ssize_t)n);
		if (buf == NULL) {
			refuse(g, 503, "unavailable", "out of memory");
			continue;
		}
		end = head_end(buf, n, g->scanned);
		if (end == 0) {
			g->scanned = n;
			if (have < KOSD_GATE_HEAD_MAX)
				return moved;
			snprintf(g->v.target, sizeof(g->v.target), "-");
			g->v.substituted = true;
			refuse(g, 431, "headers_too_large", "the request line and headers are too large");
			continue;
		}
		g->scanned = 0;
		if (buf[0] == '\r' || buf[0] == '\n') {
			snprintf(g->v.target, sizeof(g->v.target), "-");
			g->v.substituted = true;
			refuse(g, 400, "bad_request", "malformed request line (METHOD TARGET HTTP/1.1)");
			continue;
		}
		if (judge(g, (const char *)buf, end)) {
			emit(dst, (const char *)buf, end, false);
			evbuffer_drain(src, end);
			moved = true;
			continue;
		}
		/* a body over its cap: the header block without it */
		if (g->v.withheld) {
			emit(dst, (const char *)buf, end, true);
			moved = true;
		}
		/* the rest, and the refused block itself, go unread */
		evbuffer_drain(src, evbuffer_get_length(src));
	}
}

static enum bufferevent_filter_result gate_in(struct evbuffer *src, struct evbuffer *dst,
					      ev_ssize_t limit, enum bufferevent_flush_mode mode,
					      void *arg)
{
	(void)limit;
	(void)mode;
	return run(arg, src, dst) ? BEV_OK : BEV_NEED_MORE;
}

/* After serve() took a verdict, or for a refusal made outside the filter:
 * bytes already waiting in the transport get no other read event. */
static void resumed(evutil_socket_t fd, short what, void *arg)
{
	struct kosd_gate *g = arg;

	(void)fd;
	(void)what;
	if (run(g, bufferevent_get_input(g->under), bufferevent_get_input(g->bev)))
		bufferevent_trigger(g->bev, EV_READ, 0);
	/* an answer made while evhttp had not yet enabled writing waits in
	 * the filter's output, as the filter moves output only when it grows */
	bufferevent_flush(g->bev, EV_WRITE, BEV_NORMAL);
}

/* The transport's output changed: once the last answer has wholly left
 * (nothing in the gate's output or the transport's), our side is shut
 * down; the client sees the end, and its close (or the connection's
 * deadline) frees the connection, while what it still sends is discarded. */
static void sent(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct kosd_gate *g = arg;

	(void)info;
	if (!g->closing || g->shut || evbuffer_get_length(buf) > 0 ||
	    evbuffer_get_length(bufferevent_get_output(g->bev)) > 0)
		return;
	g->shut = true;
	shutdown(bufferevent_getfd(g->under), SHUT_WR);
}

static void gate_free(void *arg)
{
	struct kosd_gate *g = arg;

	if (g->sent_cb != NULL)
		evbuffer_remove_cb_entry(bufferevent_get_output(g->under), g->sent_cb);
	if (g->resume != NULL)
		event_free(g->resume);
	free(g);
}

struct bufferevent *kosd_gate_new(struct kosd *d, struct bufferevent *under,
				  struct kosd_gate **out)
{
	struct kosd_gate *g = calloc(1, sizeof(*g));
	struct bufferevent *bev;

	*out = NULL;
	if (g == NULL)
		return NULL;
	g->d = d;
	g->under = under;
	g->resume = event_new(d->base, -1, 0, resumed, g);
	if (g->resume == NULL) {
		free(g);
		return NULL;
	}
	bev = bufferevent_filter_new(under, gate_in, NULL, BEV_OPT_CLOSE_ON_FREE, gate_free, g);
	if (bev == NULL) {
		gate_free(g);
		return NULL;
	}
	g->bev = bev;
	bufferevent_setwatermark(under, EV_READ, 0, KOSD_GATE_READ_HIGH);
	g->sent_cb = evbuffer_add_cb(bufferevent_get_output(under), sent, g);
	if (g->sent_cb == NULL) {
		bufferevent_free(bev);
		return NULL;
	}
	*out = g;
	return bev;
}

void kosd_gate_set_evcon(struct kosd_gate *g, struct evhttp_connection *evcon)
{
	g->evcon = evcon;
}

void kosd_gate_refuse(struct kosd_gate *g, int status, const char *code, const char *msg)
{
	if (g->state != GATE_HEAD || g->pending)
		return;
	snprintf(g->v.target, sizeof(g->v.target), "-");
	g->v.substituted = true;
	refuse(g, status, code, msg);
	event_active(g->resume, EV_TIMEOUT, 0);
}

bool kosd_gate_take(struct kosd_gate *g, struct kosd_verdict *v)
{
	if (!g->pending)
		return false;
	*v = g->v;
	memset(&g->v, 0, sizeof(g->v));
	g->pending = false;
	if (v->close || g->close_after) {
		/* the answer serve() is about to make is the last */
		g->closing = true;
		g->state = GATE_CLOSED;
	} else if (g->state == GATE_WAIT) {
		g->state = GATE_HEAD;
	}
	event_active(g->resume, EV_TIMEOUT, 0);
	return true;
}

struct bufferevent *kosd_gate_transport(struct bufferevent *bev)
{
	struct bufferevent *under = bev != NULL ? bufferevent_get_underlying(bev) : NULL;

	return under != NULL ? under : bev;
}
