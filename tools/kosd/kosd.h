/* kosd: shared declarations of the service. kosd maps HTTP routes to libkos
 * calls and nothing more (DESIGN.md 1); the HTTP API is kos-api(7).
 * Thread safety: one libevent loop owns every connection, and a pool of
 * worker threads runs the handlers (work.c says how a request moves between
 * them). What the loop alone touches (connections, gate, listeners, the
 * request log, the request metrics) takes no lock; what the workers share
 * says how it is guarded where it is declared. A handler uses only its
 * struct kosd_req, the kosd_reply_* and kosd_body_* calls and libkos (every
 * libkos handle is thread-safe), never an evhttp connection. */
#ifndef KOSD_H
#define KOSD_H

#include <kos/server.h>

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <jansson.h>

/* Exit status. */
enum { KOSD_OK = 0, KOSD_FAIL = 1, KOSD_USAGE = 2 };

struct kosd_req;

/* What a route is and takes (table.c). */
enum kosd_route_flag {
	KOSD_RF_CRED = 1 << 0,		      /* needs a bearer credential */
	KOSD_RF_GRANT = 1 << 1,		      /* takes a grant, the only route that does */
	KOSD_RF_BODY = 1 << 2,		      /* a JSON body of at most listen.max_body */
	KOSD_RF_DATA = KOSD_RF_BODY | 1 << 3, /* ... of at most listen.max_data_body */
	KOSD_RF_KMS = 1 << 4,		      /* served by a KMS front too */
	KOSD_RF_UNLEDGERED = 1 << 5,	      /* public and read-only: no decision to record */
};

/* One route: METHOD PATH, where PATH is exact or holds one {key},
 * {client} or {service} (kos_key_name_valid, kos_principal_name_valid,
 * kos_service_name_valid), which the request finds in its name. */
struct kosd_route {
	enum evhttp_cmd_type method;
	const char *path;
	void (*handler)(struct kosd_req *r);
	const char *name; /* in metrics, the log and the ledger */
	unsigned flags;	  /* enum kosd_route_flag */
};

/* The routes; a row's index is its id and row 0 is the unknown route (no
 * path, no handler), so kosd_routes[0].name is "unknown". */
extern const struct kosd_route kosd_routes[];
extern const size_t kosd_n_routes;
#define KOSD_ROUTE_UNKNOWN (&kosd_routes[0])

struct kosd_conn;
struct kosd_refusal;
struct bufferevent;
struct kosd_obs;
struct kosd_ledger;
struct kosd_metrics;
struct kosd_work;
struct ssl_ctx_st; /* OpenSSL's SSL_CTX */

struct kosd {
	const char *config_path;
	bool use_syslog;
	bool check_only; /* kosd -t: messages plain on stderr, nothing started */
	/* --role kms: a KMS front that serves shares of its own tokens and
	 * verifies grants with the CA's public keys (kos.conf kms.jwks); it
	 * has no store, trust, keys or access (all NULL) and ca is a JWKS
	 * verifier */
	bool kms_role;
	kos_config *conf;
	kos_listen_config listen;
	/* replaced by a reload (kosd_reload_policy, under reload_lock) while
	 * workers read it: a replaced policy (and a KMS front's CA) is kept in
	 * retired until exit, as a handler may still be using it */
	kos_policy *_Atomic policy;
	pthread_mutex_t reload_lock;
	void **retired, **retired_cas;
	size_t n_retired, n_retired_cas;
	kos_store *store;
	kos_trust *trust;
	kos_hsm *hsm;
	kos_keys *keys;	    /* borrows policy, store, hsm */
	kos_access *access; /* borrows keys, trust */
	kos_ca *_Atomic ca; /* borrows policy, store, hsm, trust */
	kos_services *services; /* borrows store, hsm */
	kos_pipeline *pipeline; /* borrows trust; its ledger is the batch queue */

	struct event_base *base;
	struct evhttp *http;
	struct evconnlistener *lev;
	/* the TCP listener (tls.c): its own evhttp, as evhttp's bevcb,
	 * which wraps every connection in TLS, is per server */
	struct evhttp *https;
	struct evconnlistener *tls_lev; /* owned by https */
	struct ssl_ctx_st *tls_ctx;
	struct event *ev_hup, *ev_term, *ev_int, *ev_flush;
	struct event *ev_drain; /* after SIGTERM, until drain_until */
	double drain_until;	/* monotonic seconds */
	int sock_fd;	  /* owned by lev once it exists */
	bool sock_made;	  /* we bound listen.unix_path: unlink it at exit */
	struct kosd_obs *obs;
	struct kosd_ledger *ledger; /* NULL on a KMS front */
	struct kosd_metrics *metrics;

	/* the connection cap (http.c): every connection either server
	 * accepted, counted from evhttp's accept until evhttp frees it; while
	 * listen.max_connections are open the *_full listeners, on the same
	 * sockets, take new connections and refuse them */
	struct kosd_conn *conns;
	size_t n_conns;
	struct evconnlistener *lev_full, *tls_lev_full;
	struct kosd_refusal *refusals;
	size_t n_refusing;
	bool full;
	struct event *ev_adopt;
	uint64_t conns_refused, conns_expired; /* for /metrics */
	/* unauthenticated senders (sources.c), under sources_lock */
	pthread_mutex_t sources_lock;
	struct kosd_source *sources;
	size_t n_sources;
	bool stopping;
	/* the worker pool and the group commit (work.c) */
	struct kosd_work *work;
	unsigned workers; /* threads running */
	bool synced;	  /* the store's commits fsync, as the store says */
	size_t inflight;  /* requests handed to the pool and not yet answered (loop) */
};

/* What the gate decided about the request evhttp hands serve() next. */
struct kosd_verdict {
	int status;	    /* 0: admitted; else refused unread, answer code */
	char code[32];	    /* the refusal's error code */
	char message[128];  /* and its message */
	bool withheld;	    /* its body was over cap and not read: 413 at the body step */
	bool close;	    /* the answer must close the connection */
	bool anon;	    /* it came without an Authorization: Bearer credential */
	bool substituted;   /* evhttp got a stand-in: target is what the client sent */
	uint64_t declared;  /* its Content-Length */
	size_t cap;	    /* the body it may have */
	char target[201];   /* the request target as sent (at most 200 bytes) */
};

/* One request being served. */
struct kosd_req {
	struct kosd *d;
	struct evhttp_request *req;
	const struct kosd_route *route; /* KOSD_ROUTE_UNKNOWN until matched */
	/* the {name} of the path (a key, client or service name), "" when none */
	char name[KOS_KEY_NAME_MAX + 1];
	json_t *body;			 /* the request's JSON object, NULL before parsing */
	bool authed;
	kos_cred_claims claims;
	bool have_peer;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	/* the TLS client certificate (verified against the client CA) */
	bool have_cert;
	char x5t[KOS_CRED_X5T_LEN + 1]; /* its x5t#S256, for cnf-bound credentials */
	char subject[256];		/* its subject, RFC 2253, for the log */
	int status;
	char code[32];	  /* the error code answered, "" for none */
	bool unrecorded;  /* refused because the ledger cannot take it */
	/* the client a decision concerns when none authenticated (enrollment) */
	char who[KOS_LEDGER_CLIENT_MAX + 1];
	/* what a decision acted on when the path does not name it (a client
	 * registered, a credential issued or revoked): the ledger's resource */
	char target[KOS_LEDGER_RESOURCE_MAX + 1];
	const char *tier; /* static, for the log; NULL when no decision */
	double start;	  /* monotonic seconds */
	/* the request line's target as the client sent it, for the log, when
	 * kosd_gate gave evhttp another one (a request refused unread) */
	const char *logged_uri;

	/* --- served by a worker (work.c) --- */
	bool deferred;		     /* the answer waits here for the loop to send it */
	bool answered;		     /* a kosd_reply_* made the answer */
	struct kosd_verdict verdict;  /* the gate's, for the body step */
	struct kosd_conn *conn;	     /* kept while the request is out (http.c) */
	char source[64];	     /* kosd_req_source(), taken on the loop */
	char ctype[64];
	char *text; /* the answer's body, len bytes: secret ones from kosd_json_alloc */
	size_t len;
	bool secret;
	/* what the answer waits for (durable ledger): the request's ledger
	 * entries and trust observations, committed before it leaves */
	kos_ledger_entry *entries;
	size_t n_entries, cap_entries;
	kos_observation_rec *obs;
	size_t n_obs, cap_obs;
	struct kosd_req *next; /* in one of work.c's queues */
};

/* --- kosd.c --- */
/* Logs one line; control and non-ASCII bytes in it are written as \xHH. */
void kosd_log(struct kosd *d, const char *fmt, ...) KOS_PRINTF(2, 3);
/* How kosd_log_escape writes a byte as \xHH: LINE escapes control and
 * non-ASCII bytes; QUOTED (a field inside "...") also backslash and '"';
 * BARE (a field ended by a space) also space. */
enum kosd_esc { KOSD_ESC_LINE, KOSD_ESC_QUOTED, KOSD_ESC_BARE };
/* Escapes len bytes of in into out (cap bytes, always NUL-terminated; a
 * longer text is cut at a whole character); returns the length written.
 * The one escaping of outside input that reaches the log. */
size_t kosd_log_escape(char *out, size_t cap, const char *in, size_t len, enum kosd_esc how);
/* Loads the policy again and hands it to every module; a bad one is refused
 * (logged, and its first problem in *why, may be NULL) and the old one kept. */
kos_rv kosd_reload_policy(struct kosd *d, char *why, size_t why_len);
/* The role's name for logs and health: "main" or "kms". */
const char *kosd_role_name(const struct kosd *d);

/* --- http.c --- */
/* jansson's allocator for the whole process (set before any JSON exists):
 * every block is wiped when freed, as bodies and answers carry secrets. */
void *kosd_json_alloc(size_t n);
void kosd_json_release(void *p);
/* Creates the HTTP server on d->base with the Unix listener; 0 or -1 after
 * logging why. */
int kosd_http_start(struct kosd *d);
void kosd_http_stop(struct kosd *d);
/* evhttp's bevcb tail for both servers: counts the connection being
 * accepted against the cap and arms its deadline; returns bev. */
struct bufferevent *kosd_conn_accepted(struct kosd *d, struct bufferevent *bev);
/* Stops taking connections (SIGTERM): every listener disabled. */
void kosd_http_close_listeners(struct kosd *d);
/* True while some connection still has answer bytes to send. */
bool kosd_http_sending(const struct kosd *d);

/* Replies (and ends the request): JSON answer with status, taking obj; an
 * answer holding a secret is wiped once sent. */
void kosd_reply_json(struct kosd_req *r, int status, json_t *obj);
/* Replies with a non-secret text body (copied) of type ctype. */
void kosd_reply_text(struct kosd_req *r, int status, const char *ctype, const char *text);
/* Replies {"error": code, "message": msg}; msg never holds a secret. */
void kosd_reply_error(struct kosd_req *r, int status, const char *code, const char *fmt, ...)
    KOS_PRINTF(4, 5);
/* Maps a libkos failure to a status and error code and replies. */
void kosd_reply_rv(struct kosd_req *r, kos_rv rv, const char *what);
/* Steps 3 and 4 of the pipeline (kos_pipeline_admit) for r's credential:
 * rq's client and scope are set from its claims, the rest is the caller's.
 * True when allowed; else false after replying 403 with the refusal's code
 * (out_of_scope naming need, or rq's action:resource when need is NULL)
 * or an error. Sets r->tier for the log. */
bool kosd_admit(struct kosd_req *r, kos_request *rq, const char *need);

/* Body access: a string member (NULL after replying 400 when required and
 * missing or of the wrong type), optional when !required (NULL when absent). */
const char *kosd_body_string(struct kosd_req *r, const char *key, bool required, bool *failed);
/* A base64 member decoded into *out (free with kos_secret_free(*out, *len));
 * false after replying 400. */
bool kosd_body_b64(struct kosd_req *r, const char *key, uint8_t **out, size_t *len);
/* base64 text of len bytes as a JSON string (secret buffers wiped). */
json_t *kosd_b64_json(const uint8_t *data, size_t len);

/* The thumbprint of the certificate the request came with (for
 * kos_cred_verify() and kos_cred_refresh()), NULL on the Unix socket. */
const char *kosd_req_x5t(const struct kosd_req *r);

/* The source of a request for what nobody authenticated: "uid:N" on the
 * Unix socket, "tls:ADDRESS" on TCP. */
void kosd_req_source(const struct kosd_req *r, char *buf, size_t len);
/* --- gate.c: request framing and body caps before evhttp reads --- */
struct kosd_gate;
/* Wraps a connection's transport (a socket or TLS bufferevent) in the gate;
 * the result is the bufferevent evhttp uses and owns (freeing it frees
 * under and the gate). NULL when out of memory. */
struct bufferevent *kosd_gate_new(struct kosd *d, struct bufferevent *under,
				  struct kosd_gate **out);
/* The connection evhttp made around the gate's bufferevent. */
void kosd_gate_set_evcon(struct kosd_gate *g, struct evhttp_connection *evcon);
/* Refuses the connection's first request with status, code and msg (static
 * strings), and everything after it. */
void kosd_gate_refuse(struct kosd_gate *g, int status, const char *code, const char *msg);
/* serve()'s step 0: the verdict on the request being served, into *v; the
 * gate then reads the connection's next request. False when the gate has
 * none (the request did not come through it). */
bool kosd_gate_take(struct kosd_gate *g, struct kosd_verdict *v);
/* The transport under a gate's bufferevent (bev itself for another). */
struct bufferevent *kosd_gate_transport(struct bufferevent *bev);
/* table.c: the body a route allows (0 for none, no route or the wrong
 * method), before the credential's cap. */
size_t kosd_body_cap(const struct kosd *d, enum evhttp_cmd_type method, const char *path);

/* --- table.c: the routes --- */
/* The route of METHOD path, its {name} copied to name (KOS_KEY_NAME_MAX + 1
 * bytes). NULL when none: *bad_name when a {name} route's name is not valid
 * there (a '/', "..", an escape), *path_known when another method's route
 * has the path (a 405). */
const struct kosd_route *kosd_route_match(const char *path, enum evhttp_cmd_type method,
					  char *name, bool *bad_name, bool *path_known);
/* The body route s allows, before the credential's cap. */
size_t kosd_route_body_cap(const struct kosd *d, const struct kosd_route *s);
/* Checks the table: names unique and short enough for the ledger, paths
 * of known kinds, handlers, flags that agree, and no path two routes of
 * one method take. -1 after logging each row that is wrong. */
int kosd_routes_check(struct kosd *d);

/* --- tls.c: the TCP listener, TLS 1.3 with client certificates --- */
/* Loads listen.tls's certificate, key and client CA into d->tls_ctx; -1
 * after logging which file is wrong. */
int kosd_tls_init(struct kosd *d);
/* Loads the same files again into a new context for the connections to
 * come (SIGHUP); when they fail (logged) the old context stays: -1. */
int kosd_tls_reload(struct kosd *d);
/* Binds listen.tcp and makes http wrap each connection in TLS; -1 after
 * logging why. */
int kosd_tls_listen(struct kosd *d, struct evhttp *http);
/* Frees d->tls_ctx (after the connections using it are gone). */
void kosd_tls_free(struct kosd *d);
/* Fills r's certificate fields from its connection. False when the
 * connection is not TLS or carries no verified certificate. */
bool kosd_tls_peer(struct kosd_req *r);

/* --- the handlers of the routes (table.c) --- */
/* routes.c */
void kosd_route_health(struct kosd_req *r);
void kosd_route_metrics(struct kosd_req *r);
void kosd_route_enroll(struct kosd_req *r);
void kosd_route_refresh(struct kosd_req *r);
void kosd_route_keys(struct kosd_req *r);
void kosd_route_pubkey(struct kosd_req *r);
void kosd_route_encrypt(struct kosd_req *r);
void kosd_route_decrypt(struct kosd_req *r);
void kosd_route_request(struct kosd_req *r);
void kosd_route_sign(struct kosd_req *r);
void kosd_route_rsa_decrypt(struct kosd_req *r);
void kosd_route_gcm_encrypt(struct kosd_req *r);
void kosd_route_gcm_decrypt(struct kosd_req *r);
void kosd_route_cert_set(struct kosd_req *r);
void kosd_route_cert_get(struct kosd_req *r);
void kosd_route_cert_remove(struct kosd_req *r);
/* rewrap.c: envelopes re-encrypted under the current version */
void kosd_route_rewrap(struct kosd_req *r);
/* services.c: service tokens (issue, validate) and the CA's JWKS */
void kosd_route_service_token(struct kosd_req *r);
void kosd_route_service_validate(struct kosd_req *r);
void kosd_route_jwks(struct kosd_req *r);
/* admin.c */
void kosd_admin_clients(struct kosd_req *r);
void kosd_admin_revoke(struct kosd_req *r);
void kosd_admin_client_disable(struct kosd_req *r);
void kosd_admin_client_enable(struct kosd_req *r);
void kosd_admin_client_show(struct kosd_req *r);
void kosd_admin_client_secret(struct kosd_req *r);
void kosd_admin_ca_rotate(struct kosd_req *r);
void kosd_admin_ca_list(struct kosd_req *r);
void kosd_admin_cred_issue(struct kosd_req *r);
void kosd_admin_revocations(struct kosd_req *r);
void kosd_admin_prune(struct kosd_req *r);
void kosd_admin_keys(struct kosd_req *r);
void kosd_admin_rotate(struct kosd_req *r);
void kosd_admin_rotate_due(struct kosd_req *r);
void kosd_admin_retire(struct kosd_req *r);
void kosd_admin_destroy(struct kosd_req *r);
void kosd_admin_threat(struct kosd_req *r);
void kosd_admin_reload(struct kosd_req *r);
void kosd_admin_client_list(struct kosd_req *r);
void kosd_admin_trust_list(struct kosd_req *r);
void kosd_admin_trust_get(struct kosd_req *r);
void kosd_admin_trust_observe(struct kosd_req *r);
void kosd_admin_trust_forget(struct kosd_req *r);
void kosd_admin_threat_check(struct kosd_req *r);
void kosd_admin_key_show(struct kosd_req *r);
void kosd_admin_threat_get(struct kosd_req *r);
void kosd_admin_kms(struct kosd_req *r);
void kosd_admin_service_register(struct kosd_req *r);
void kosd_admin_service_rotate(struct kosd_req *r);
void kosd_admin_service_list(struct kosd_req *r);
void kosd_admin_service_show(struct kosd_req *r);
void kosd_admin_service_ops(struct kosd_req *r);
void kosd_admin_service_remove(struct kosd_req *r);

/* --- kms.c: the KMS front --- */
/* How long a grant issued with share references is valid. */
#define KOSD_GRANT_LIFETIME (30 * KOS_USEC_PER_SEC)
void kosd_route_share_fetch(struct kosd_req *r);

/* --- obs.c: trust observations, batched --- */
/* Installs the queue as d->trust's sink; durable: what a worker's request
 * causes is kept with the request (kosd_req_keep_obs) for its group commit. */
kos_rv kosd_obs_new(kos_trust *tr, bool durable, struct kosd_obs **out);
/* Writes every queued observation in one store transaction; on failure
 * they stay queued. Unless forced, a store that refused a moment ago is
 * left alone (KOS_OK, nothing tried: obs.c's header). */
kos_rv kosd_obs_flush(struct kosd_obs *q, bool force);
size_t kosd_obs_pending(const struct kosd_obs *q);
/* Removes the sink; the queue must have been flushed. */
void kosd_obs_free(struct kosd_obs *q);
void kosd_obs_stats(const struct kosd_obs *q, uint64_t *queued, uint64_t *written,
		    uint64_t *batches);

/* --- obs.c: the ledger's queue --- */
kos_rv kosd_ledger_new(kos_store *st, struct kosd_ledger **out);
/* Queues one entry (written by the next flush): KOS_E_BUSY when full. */
kos_rv kosd_ledger_add(struct kosd_ledger *q, const kos_ledger_entry *e);
/* True while the queue cannot take another entry. */
bool kosd_ledger_full(const struct kosd_ledger *q);
/* Writes every queued entry in one store transaction; on failure they stay.
 * force as for kosd_obs_flush(). */
kos_rv kosd_ledger_flush(struct kosd_ledger *q, bool force);
size_t kosd_ledger_pending(const struct kosd_ledger *q);
void kosd_ledger_stats(const struct kosd_ledger *q, uint64_t *queued, uint64_t *written,
		       uint64_t *batches);
void kosd_ledger_free(struct kosd_ledger *q);

/* --- sources.c: what nobody authenticated counts against its source --- */
#define KOSD_SOURCE_WINDOW 60.0	     /* seconds */
#define KOSD_SOURCE_MAX_FAILURES 32 /* per window, then enrollment is refused */
#define KOSD_SOURCE_MAX 1024	     /* sources tracked; the rest share "other" */
/* True while source has used up its failures of the current window. */
bool kosd_source_blocked(struct kosd *d, const char *source);
/* Counts one unauthenticated refusal of source on route, for reason. */
void kosd_source_failed(struct kosd *d, const char *source, const char *route, const char *reason);
/* Writes the ledger entry of every window that ended (all: of every
 * window, at shutdown) and forgets those sources. */
void kosd_sources_flush(struct kosd *d, bool all);

/* --- work.c: the worker pool, the group commit, answers back to the loop --- */
/* Starts the pool: listen.workers threads (0: one per CPU), never more than
 * the tokens' sessions allow; -1 after logging why. Needs d->base. */
int kosd_work_start(struct kosd *d);
/* Lets the workers finish what is queued, joins them and sends the answers
 * they made (the loop has stopped; evhttp still exists). */
void kosd_work_stop(struct kosd *d);
/* Hands r (heap, owned by the pool from now) to a worker. */
void kosd_work_submit(struct kosd *d, struct kosd_req *r);
/* Asks a worker to write the batch queues and the ended source windows
 * (the flush timer: store transactions stay off the loop). */
void kosd_work_flush(struct kosd *d);
/* The request the calling worker is serving, NULL elsewhere: the trust
 * and ledger sinks keep what it causes with it. */
struct kosd_req *kosd_work_current(void);
/* Whether answers wait for their ledger entries (listen.ledger "durable"). */
bool kosd_work_durable(const struct kosd *d);
/* Makes room for need items of size bytes in *p (capacity *cap, doubled
 * from 64 as needed); false when out of memory (*p unchanged). */
bool kosd_grow(void **p, size_t *cap, size_t need, size_t size);
/* Keeps one ledger entry or observation with r: KOS_E_NOMEM. */
kos_rv kosd_req_keep_entry(struct kosd_req *r, const kos_ledger_entry *e);
kos_rv kosd_req_keep_obs(struct kosd_req *r, const char *client, const kos_observation *obs,
			 kos_usec at);
/* Group commits so far, and the requests they carried (for /metrics). */
void kosd_work_stats(const struct kosd *d, uint64_t *groups, uint64_t *requests);
/* http.c: a worker serves r (authentication, body, handler); the loop
 * sends r's answer and frees r; an answer whose decision could not be
 * committed is replaced by a 503 before it leaves. */
void kosd_http_work(struct kosd_req *r);
void kosd_http_answer(struct kosd_req *r);
void kosd_http_unrecorded(struct kosd_req *r);

/* --- obs.c: what the group commit could not write goes back to the queues --- */
void kosd_obs_requeue(struct kosd_obs *q, const kos_observation_rec *recs, size_t n);
/* False when out of memory: the entries are lost (the caller says so). */
bool kosd_ledger_requeue(struct kosd_ledger *q, const kos_ledger_entry *e, size_t n);
/* Counts n items a group commit wrote in one transaction. */
void kosd_obs_committed(struct kosd_obs *q, size_t n);
void kosd_ledger_committed(struct kosd_ledger *q, size_t n);

/* --- metrics.c --- */
struct kosd_metrics *kosd_metrics_new(void);
void kosd_metrics_free(struct kosd_metrics *m);
void kosd_metrics_request(struct kosd_metrics *m, const struct kosd_route *route, int status,
			  double seconds);
void kosd_metrics_decision(struct kosd_metrics *m, kos_tier tier, kos_delivery delivery);
/* The Prometheus text exposition; free(). NULL when out of memory. */
char *kosd_metrics_render(struct kosd *d);

#endif
