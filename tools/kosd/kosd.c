/* kosd: the kos service (kosd(8)). Opens what kos.conf names, serves the
 * HTTP API of kos-api(7) on its Unix socket and, when configured, over TCP
 * with TLS 1.3 and client certificates (tls.c), reloads the policy on SIGHUP
 * and stops cleanly on SIGTERM or SIGINT. */
#include "config.h"

#include "tools/kosd/kosd.h"

#include "common/internal.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sys/prctl.h>
#include <time.h>

#include <event2/event.h>
#include <event2/thread.h>

/* After SIGTERM, how often to look whether every answer has left: the
 * requests still with the workers, and the bytes still queued. */
#define KOSD_DRAIN_POLL_MS 10
#define KOSD_FLUSH_MS 100
/* kos_ca_new_from_jwks() takes up to 64 KiB */
#define KOSD_JWKS_MAX 65536

size_t kosd_log_escape(char *out, size_t cap, const char *in, size_t len, enum kosd_esc how)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0;

	if (cap == 0)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		bool esc = c < 0x20 || c >= 0x7f;

		if (how != KOSD_ESC_LINE)
			esc = esc || c == '\\' || c == '"';
		if (how == KOSD_ESC_BARE)
			esc = esc || c == ' ';
		if (o + (esc ? 4 : 1) >= cap)
			break;
		if (esc) {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
	return o;
}

/* Every line passes through kosd_log_escape: whatever a message carries
 * from outside (a path, a name in an error's detail), it cannot end the
 * line, forge another record or reach a terminal as an escape sequence.
 * Callers escape their fields as well (KOSD_ESC_BARE or _QUOTED), so a
 * field cannot forge another field within the line either. */
void kosd_log(struct kosd *d, const char *fmt, ...)
{
	char raw[4096], msg[4 * sizeof(raw)], ts[KOS_TIME_LEN];
	struct timespec now;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	kosd_log_escape(msg, sizeof(msg), raw, strlen(raw), KOSD_ESC_LINE);
	if (d != NULL && d->check_only) {
		fprintf(stderr, "kosd: %s\n", msg);
		return;
	}
	if (d != NULL && d->use_syslog) {
		syslog(LOG_INFO, "%s", msg);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	if (kos_time_format((kos_usec)now.tv_sec * KOS_USEC_PER_SEC, ts, sizeof(ts)) != KOS_OK)
		snprintf(ts, sizeof(ts), "@%lld", (long long)now.tv_sec);
	/* milliseconds go before the Z */
	ts[strcspn(ts, "Z")] = '\0';
	fprintf(stderr, "%s.%03ldZ kosd[%ld]: %s\n", ts, now.tv_nsec / 1000000L, (long)getpid(),
		msg);
}

static void log_diag(struct kosd *d, const char *diag)
{
	const char *p = diag, *nl;

	/* kosd -t prints FILE:LINE: first, as a compiler does, for editors */
	if (d->check_only) {
		fputs(diag, stderr);
		return;
	}
	while (p != NULL && *p != '\0') {
		nl = strchr(p, '\n');
		kosd_log(d, "%.*s", nl != NULL ? (int)(nl - p) : (int)strlen(p), p);
		p = nl != NULL ? nl + 1 : NULL;
	}
}

const char *kosd_role_name(const struct kosd *d)
{
	return d->kms_role ? "kms" : "main";
}

/* A KMS front's verifier: the CA's public keys from kms.jwks, with pol's
 * issuer, audience and leeway. -1 after logging why. */
static int jwks_ca(struct kosd *d, const kos_policy *pol, kos_ca **out)
{
	const char *path = kos_config_get0_kms_jwks(d->conf);
	char *text = NULL;
	size_t n = 0;
	FILE *f;
	kos_rv rv;
	int rc = -1;

	*out = NULL;
	if (path == NULL) {
		kosd_log(d, "%s: --role kms needs kms = { jwks = \"ca.jwks\"; } (the output of "
			    "kosctl ca jwks)",
			 kos_config_get0_path(d->conf));
		return -1;
	}
	f = fopen(path, "re");
	text = malloc(KOSD_JWKS_MAX + 2);
	if (f == NULL || text == NULL) {
		kosd_log(d, "kms: jwks %s: cannot read: %s", path,
			 f == NULL ? strerror(errno) : "out of memory");
		goto out;
	}
	n = fread(text, 1, KOSD_JWKS_MAX + 1, f);
	if (ferror(f) || n > KOSD_JWKS_MAX) {
		kosd_log(d, "kms: jwks %s: unreadable or larger than %d bytes", path, KOSD_JWKS_MAX);
		goto out;
	}
	text[n] = '\0';
	rv = kos_ca_new_from_jwks(pol, text, out);
	if (rv != KOS_OK) {
		kosd_log(d, "kms: jwks %s: %s", path, kos_last_error());
		goto out;
	}
	rc = 0;
out:
	if (f != NULL)
		fclose(f);
	free(text);
	return rc;
}

/* Keeps p (a policy, or a KMS front's CA) just replaced until exit: a
 * worker may still be using it. reload_lock held. */
static void retire(void ***list, size_t *n, void *p)
{
	void **nl = realloc(*list, (*n + 1) * sizeof(*nl));

	/* out of memory: kept reachable nowhere, never freed, never reused */
	if (nl == NULL)
		return;
	*list = nl;
	nl[(*n)++] = p;
}

static kos_rv reload_locked(struct kosd *d, char *why, size_t why_len);

/* SIGHUP on the loop and the reload route on a worker may meet: one at a
 * time. */
kos_rv kosd_reload_policy(struct kosd *d, char *why, size_t why_len)
{
	kos_rv rv;

	pthread_mutex_lock(&d->reload_lock);
	rv = reload_locked(d, why, why_len);
	pthread_mutex_unlock(&d->reload_lock);
	return rv;
}

static kos_rv reload_locked(struct kosd *d, char *why, size_t why_len)
{
	kos_policy *pol = NULL, *old = d->policy;
	kos_ca *ca = NULL, *old_ca;
	char *diag = NULL;
	kos_rv rv;

	rv = kos_policy_load(kos_config_get0_policy(d->conf), &pol, &diag);
	if (rv != KOS_OK) {
		kosd_log(d, "policy reload refused; keeping %s", kos_policy_get0_path(old));
		if (diag != NULL)
			log_diag(d, diag);
		else
			kosd_log(d, "%s", kos_last_error());
		if (why != NULL)
			snprintf(why, why_len, "%.*s", (int)strcspn(diag ? diag : kos_last_error(), "\n"),
				 diag ? diag : kos_last_error());
		kos_free(diag);
		return rv;
	}
	if (d->kms_role) {
		/* the CA's keys change with its rotations: a KMS front reads them
		 * again with the policy, and keeps both old ones when either fails */
		if (jwks_ca(d, pol, &ca) != 0) {
			kosd_log(d, "reload refused; keeping the CA keys and %s",
				 kos_policy_get0_path(old));
			if (why != NULL)
				snprintf(why, why_len, "the CA's JWKS could not be read");
			kos_policy_free(pol);
			return KOS_E_PARSE;
		}
		old_ca = d->ca;
		d->ca = ca;
		d->policy = pol;
		/* a worker may still hold either: kept until exit (the policy
		 * first, as the old CA borrows it) */
		retire(&d->retired, &d->n_retired, old);
		retire(&d->retired_cas, &d->n_retired_cas, old_ca);
		kosd_log(d, "policy reloaded from %s, CA keys from %s", kos_policy_get0_path(pol),
			 kos_config_get0_kms_jwks(d->conf));
		return KOS_OK;
	}
	/* queued observations are applied under the new policy, as they would
	 * be by a write that happened after the reload */
	kos_trust_set_policy(d->trust, pol);
	kos_keys_set_policy(d->keys, pol);
	kos_ca_set_policy(d->ca, pol);
	d->policy = pol;
	/* a worker may still be deciding under the old one */
	retire(&d->retired, &d->n_retired, old);
	kosd_log(d, "policy reloaded from %s", kos_policy_get0_path(pol));
	return KOS_OK;
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	kosd_reload_policy(arg, NULL, 0);
	kosd_tls_reload(arg);
}

static double mono_secs(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* After SIGTERM: the loop ends once every answer made has left, or when
 * listen.timeout has passed (a client that stopped reading). */
static void on_drain(evutil_socket_t fd, short what, void *arg)
{
	struct kosd *d = arg;

	(void)fd;
	(void)what;
	if ((d->inflight == 0 && !kosd_http_sending(d)) || mono_secs() >= d->drain_until) {
		if (d->inflight > 0 || kosd_http_sending(d))
			kosd_log(d, "stopping with answers not yet read by their clients");
		event_base_loopexit(d->base, NULL);
	}
}

static void on_term(evutil_socket_t sig, short what, void *arg)
{
	struct kosd *d = arg;
	struct timeval tv = { 0, KOSD_DRAIN_POLL_MS * 1000 };

	(void)what;
	if (d->stopping)
		return;
	kosd_log(d, "signal %d: stopping", (int)sig);
	/* no new connection, not even a refused one; what is in flight are
	 * requests with the workers and answers still leaving */
	kosd_http_close_listeners(d);
	d->drain_until = mono_secs() + (double)d->listen.timeout / KOS_USEC_PER_SEC;
	d->ev_drain = event_new(d->base, -1, EV_PERSIST, on_drain, d);
	if (d->ev_drain == NULL || event_add(d->ev_drain, &tv) != 0)
		event_base_loopexit(d->base, NULL);
}

/* The batch queues and the sources' windows are written by a worker: a
 * store transaction never runs on the loop. */
static void on_flush(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	kosd_work_flush(arg);
}

/* A KMS front: its tokens and the CA's public keys, nothing else. */
static int open_kms(struct kosd *d)
{
	size_t i, n_kms = 0;
	kos_ca *ca = NULL;

	if (kos_hsm_open(d->conf, 0, &d->hsm) != KOS_OK) {
		kosd_log(d, "backend tokens: %s", kos_last_error());
		return -1;
	}
	for (i = 0; i < kos_hsm_token_count(d->hsm); i++)
		if (kos_hsm_token_role(d->hsm, i) == KOS_TOKEN_ROLE_KMS)
			n_kms++;
	if (n_kms == 0) {
		kosd_log(d, "%s: --role kms: no token with role kms to serve shares from",
			 kos_config_get0_path(d->conf));
		return -1;
	}
	if (jwks_ca(d, d->policy, &ca) != 0)
		return -1;
	d->ca = ca;
	if ((d->metrics = kosd_metrics_new()) == NULL) {
		kosd_log(d, "out of memory");
		return -1;
	}
	kosd_log(d, "KMS front for %zu KMS token%s; CA keys from %s", n_kms, n_kms == 1 ? "" : "s",
		 kos_config_get0_kms_jwks(d->conf));
	return 0;
}

static kos_rv ledger_sink(void *arg, const kos_ledger_entry *e)
{
	struct kosd *d = arg;
	struct kosd_req *r = kosd_work_durable(d) ? kosd_work_current() : NULL;

	/* a worker's request commits its entry before answering (work.c) */
	if (r != NULL)
		return kosd_req_keep_entry(r, e);
	return kosd_ledger_add(d->ledger, e);
}

/* The configuration and the policy it names: loaded at start, and all
 * that kosd -t checks with the CA's JWKS of a KMS front. */
static int load_files(struct kosd *d)
{
	char *diag = NULL;
	kos_policy *pol = NULL;
	kos_rv rv;

	/* kosd -t also names every file it would fail to read at start */
	rv = kos_config_load_ex(d->config_path, d->check_only ? KOS_CONFIG_CHECK_FILES : 0,
				&d->conf, &diag);
	if (rv != KOS_OK) {
		if (diag != NULL)
			log_diag(d, diag);
		else
			kosd_log(d, "%s", kos_last_error()); /* names the file */
		kos_free(diag);
		kosd_log(d, "cannot load the configuration (use --config FILE or KOS_CONF)");
		return -1;
	}
	kos_config_get_listen(d->conf, &d->listen);
	rv = kos_policy_load(kos_config_get0_policy(d->conf), &pol, &diag);
	d->policy = pol;
	if (rv != KOS_OK) {
		if (diag != NULL)
			log_diag(d, diag);
		else
			kosd_log(d, "policy: %s", kos_last_error());
		kos_free(diag);
		return -1;
	}
	return 0;
}

/* kosd -t: loads and checks what start-up would read from files, and
 * opens no token, store or socket. */
static int check_files(struct kosd *d)
{
	if (load_files(d) != 0)
		return KOSD_FAIL;
	if (d->kms_role) {
		kos_ca *ca = NULL;
		int rc = jwks_ca(d, d->policy, &ca);

		d->ca = ca;
		if (rc != 0)
			return KOSD_FAIL;
	}
	printf("kosd: configuration %s ok\n", d->config_path);
	return KOSD_OK;
}

static int open_all(struct kosd *d)
{
	kos_ca *ca = NULL;
	kos_rv rv;

	if (load_files(d) != 0)
		return -1;
	if (d->kms_role)
		return open_kms(d);
	if ((rv = kos_store_open(kos_config_get0_store(d->conf), &d->store)) != KOS_OK) {
		kosd_log(d, "state store: %s", kos_last_error());
		return -1;
	}
	if (d->listen.ledger_synced && (kos_store_set_synced(d->store, true) != KOS_OK ||
					kos_store_synced(d->store, &d->synced) != KOS_OK)) {
		kosd_log(d, "listen.ledger \"synced\": %s", kos_last_error());
		return -1;
	}
	if ((rv = kos_trust_new(d->policy, d->store, &d->trust)) != KOS_OK) {
		kosd_log(d, "trust engine: %s", kos_last_error());
		return -1;
	}
	/* a token that cannot be used is kept, marked unavailable: one KMS
	 * token down must not stop the service */
	if ((rv = kos_hsm_open(d->conf, 0, &d->hsm)) != KOS_OK) {
		kosd_log(d, "backend tokens: %s", kos_last_error());
		return -1;
	}
	if ((rv = kos_keys_new(d->policy, d->store, d->hsm, &d->keys)) != KOS_OK ||
	    (rv = kos_access_new(d->keys, d->trust, &d->access)) != KOS_OK ||
	    (rv = kos_ca_new(d->policy, d->store, d->hsm, d->trust, &ca)) != KOS_OK ||
	    (rv = kos_services_new(d->store, d->hsm, &d->services)) != KOS_OK) {
		d->ca = ca;
		kosd_log(d, "key service: %s", kos_last_error());
		return -1;
	}
	d->ca = ca;
	/* the flush timer evaluates the threat level (work.c), not an issuance */
	kos_ca_set_threat_on_issue(ca, false);
	if (kosd_obs_new(d->trust, kosd_work_durable(d), &d->obs) != KOS_OK ||
	    kosd_ledger_new(d->store, &d->ledger) != KOS_OK ||
	    kos_pipeline_new(d->trust, &d->pipeline) != KOS_OK ||
	    (d->metrics = kosd_metrics_new()) == NULL) {
		kosd_log(d, "out of memory");
		return -1;
	}
	/* step 7 goes through the batch queue */
	kos_pipeline_set_ledger(d->pipeline, d->store, ledger_sink, d);
	return 0;
}

/* Flushes the observation queue at shutdown; a store briefly busy (another
 * process's transaction) gets a few tries. */
static int final_flush(struct kosd *d)
{
	struct timespec pause = { 0, 100 * 1000000L };
	int i;

	kosd_sources_flush(d, true);
	for (i = 0; i < 20; i++) {
		if (kosd_obs_flush(d->obs, true) == KOS_OK && kosd_ledger_flush(d->ledger, true) == KOS_OK)
			return 0;
		nanosleep(&pause, NULL);
	}
	if (kosd_obs_pending(d->obs) > 0)
		kosd_log(d, "%zu trust observations could not be written: %s",
			 kosd_obs_pending(d->obs), kos_last_error());
	if (kosd_ledger_pending(d->ledger) > 0)
		kosd_log(d, "%zu ledger entries could not be written: %s",
			 kosd_ledger_pending(d->ledger), kos_last_error());
	return -1;
}

static void close_all(struct kosd *d)
{
	kosd_http_stop(d);
	if (d->ev_flush != NULL)
		event_free(d->ev_flush);
	if (d->ev_drain != NULL)
		event_free(d->ev_drain);
	if (d->ev_hup != NULL)
		event_free(d->ev_hup);
	if (d->ev_term != NULL)
		event_free(d->ev_term);
	if (d->ev_int != NULL)
		event_free(d->ev_int);
	kosd_obs_free(d->obs);
	kos_pipeline_free(d->pipeline);
	kosd_ledger_free(d->ledger);
	kosd_metrics_free(d->metrics);
	/* the reverse of open_all: kos_keys_free wipes the DEK cache */
	kos_services_free(d->services);
	kos_ca_free(d->ca);
	kos_access_free(d->access);
	kos_keys_free(d->keys);
	kos_hsm_free(d->hsm);
	kos_trust_free(d->trust);
	kos_store_free(d->store);
	kos_policy_free(d->policy);
	/* retired CAs (a KMS front's) borrow retired policies: CAs first */
	for (size_t i = 0; i < d->n_retired_cas; i++)
		kos_ca_free(d->retired_cas[i]);
	for (size_t i = 0; i < d->n_retired; i++)
		kos_policy_free(d->retired[i]);
	free(d->retired_cas);
	free(d->retired);
	kos_config_free(d->conf);
	if (d->base != NULL)
		event_base_free(d->base);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: kosd [--config FILE] [--role main|kms] [--foreground] [--syslog]\n"
		   "       kosd -t [--config FILE] [--role main|kms]\n"
		   "\n"
		   "The kos service: serves the HTTP API of kos-api(7) on the Unix socket\n"
		   "kos.conf names (listen = { unix = \"kosd.sock\"; }) and, with tcp and tls\n"
		   "there, over TLS 1.3 with client certificates. SIGHUP reloads the policy;\n"
		   "SIGTERM stops after the answers in flight.\n"
		   "\n"
		   "options:\n"
		   "  -c, --config FILE  kos.conf (default $KOS_CONF, else %s)\n"
		   "  -r, --role ROLE    main (default): the whole service; kms: a KMS front\n"
		   "                     serving POST /v1/shares/fetch for the KMS tokens of\n"
		   "                     kos.conf, verifying grants with kms.jwks alone\n"
		   "  -f, --foreground   stay in the foreground (the only mode for now)\n"
		   "      --syslog       log to syslog instead of standard error\n"
		   "  -t, --test         check kos.conf and the policy it names (for a KMS\n"
		   "                     front also kms.jwks), and that every file they\n"
		   "                     name for reading (modules, PIN and TLS files) is\n"
		   "                     readable, and exit: 0 with \"kosd: configuration\n"
		   "                     FILE ok\", else 1 with each problem as\n"
		   "                     FILE:LINE: message; starts nothing, opens no\n"
		   "                     token, store or socket\n"
		   "  -h, --help         show this help\n"
		   "  -V, --version      show the version\n",
		   KOS_SYSCONFDIR "/kos/kos.conf");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "role", required_argument, NULL, 'r' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "syslog", no_argument, NULL, 's' },
		{ "test", no_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct kosd d = { .sock_fd = -1,
			  .reload_lock = PTHREAD_MUTEX_INITIALIZER,
			  .sources_lock = PTHREAD_MUTEX_INITIALIZER };
	struct timeval flush_tv = { 0, KOSD_FLUSH_MS * 1000 };
	int opt, rc = KOSD_FAIL;

	/* kosd holds PINs, shares, DEKs and credentials: no core dump and no
	 * ptrace by other users of the machine, before any of them is read */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
		fprintf(stderr, "kosd: cannot make the process non-dumpable: %s\n",
			strerror(errno));
		return KOSD_FAIL;
	}

	while ((opt = getopt_long(argc, argv, "c:r:fthV", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			d.config_path = optarg;
			break;
		case 'r':
			if (strcmp(optarg, "kms") == 0) {
				d.kms_role = true;
			} else if (strcmp(optarg, "main") != 0) {
				fprintf(stderr, "kosd: --role takes main or kms, not '%s'\n", optarg);
				usage(stderr);
				return KOSD_USAGE;
			}
			break;
		case 'f':
			break;
		case 's':
			d.use_syslog = true;
			break;
		case 't':
			d.check_only = true;
			break;
		case 'h':
			usage(stdout);
			return KOSD_OK;
		case 'V':
			printf("kosd %s\n", PACKAGE_VERSION);
			return KOSD_OK;
		default:
			usage(stderr);
			return KOSD_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "kosd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return KOSD_USAGE;
	}
	if (d.config_path == NULL)
		d.config_path = kos_config_default_path();
	if (d.check_only) {
		/* answers the administrator at the terminal, not the log */
		d.use_syslog = false;
		rc = check_files(&d);
		close_all(&d);
		return rc;
	}
	if (d.use_syslog)
		openlog("kosd", LOG_PID, LOG_DAEMON);
	/* before any JSON exists, libkos's included */
	json_set_alloc_funcs(kosd_json_alloc, kosd_json_release);
	signal(SIGPIPE, SIG_IGN);

	/* the workers hand answers back to the loop (event_active) */
	if (evthread_use_pthreads() != 0) {
		kosd_log(&d, "cannot make the event loop thread-safe");
		goto out;
	}
	if (open_all(&d) != 0)
		goto out;
	d.base = event_base_new();
	if (d.base == NULL) {
		kosd_log(&d, "cannot create the event loop");
		goto out;
	}
	d.ev_hup = evsignal_new(d.base, SIGHUP, on_hup, &d);
	d.ev_term = evsignal_new(d.base, SIGTERM, on_term, &d);
	d.ev_int = evsignal_new(d.base, SIGINT, on_term, &d);
	d.ev_flush = event_new(d.base, -1, EV_PERSIST, on_flush, &d);
	if (d.ev_hup == NULL || d.ev_term == NULL || d.ev_int == NULL || d.ev_flush == NULL ||
	    evsignal_add(d.ev_hup, NULL) != 0 || evsignal_add(d.ev_term, NULL) != 0 ||
	    evsignal_add(d.ev_int, NULL) != 0 || event_add(d.ev_flush, &flush_tv) != 0) {
		kosd_log(&d, "cannot watch signals");
		goto out;
	}
	if (kosd_work_start(&d) != 0 || kosd_http_start(&d) != 0)
		goto out;
	if (d.listen.unix_path != NULL)
		kosd_log(&d, "listening on %s (role %s, policy %s)", d.listen.unix_path,
			 kosd_role_name(&d), kos_policy_get0_path(d.policy));
	if (d.listen.tcp_host != NULL)
		kosd_log(&d, "listening on %s port %u, TLS 1.3 with client certificates of %s",
			 d.listen.tcp_host, d.listen.tcp_port, d.listen.tls_client_ca);
	if (event_base_dispatch(d.base) < 0) {
		kosd_log(&d, "the event loop failed");
		goto out;
	}
	rc = KOSD_OK;
out:
	/* the workers first (they answer what they hold), then the
	 * connections: no request may observe after the last flush */
	kosd_work_stop(&d);
	kosd_http_stop(&d);
	if (d.obs != NULL && final_flush(&d) != 0)
		rc = KOSD_FAIL;
	if (rc == KOSD_OK)
		kosd_log(&d, "stopped");
	close_all(&d);
	if (d.use_syslog)
		closelog();
	return rc;
}
