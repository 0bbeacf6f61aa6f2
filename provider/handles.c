/* The provider's handles on kosd: a kos_client serves one thread at a
 * time, so threads take one from a pool and give it back. A forked child
 * must not use its parent's connections (a TLS session or an HTTP exchange
 * would interleave on one socket): it drops the pool, without freeing it,
 * and opens its own. */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "provider/prov.h"

/* Pools a forked child forgot, kept reachable rather than freed: freeing
 * would close (and, for TLS, shut down) the parent's connections. */
static struct kosprov_orphan {
	kos_client *pool[KOSPROV_POOL_MAX];
	struct kosprov_orphan *next;
} *kosprov_orphans;

/* One lock for every provider context's pool (and the orphans): the fork
 * handlers take it around fork(), so a child never starts with it held by
 * a thread it does not have. It is held for pointer moves only. */
static pthread_mutex_t kosprov_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t kosprov_atfork_once = PTHREAD_ONCE_INIT;

static void atfork_prepare(void)
{
	pthread_mutex_lock(&kosprov_lock);
}

static void atfork_release(void)
{
	pthread_mutex_unlock(&kosprov_lock);
}

static void atfork_register(void)
{
	(void)pthread_atfork(atfork_prepare, atfork_release, atfork_release);
}

kos_rv kosprov_handles_init(kosprov_ctx *p)
{
	pthread_once(&kosprov_atfork_once, atfork_register);
	p->pid = getpid();
	return KOS_OK;
}

void kosprov_handles_uninit(kosprov_ctx *p)
{
	if (p->pid == 0)
		return;
	/* in a forked child the handles are the parent's: left alone */
	if (p->pid == getpid())
		for (size_t i = 0; i < p->pooled; i++)
			kos_client_free(p->pool[i]);
	p->pooled = 0;
	p->pid = 0;
}

/* With kosprov_lock held: in a process other than the one that filled the pool,
 * forget the pool. */
static void forget_after_fork(kosprov_ctx *p)
{
	struct kosprov_orphan *o;
	pid_t pid = getpid();

	if (p->pid == pid)
		return;
	if (p->pooled > 0 && (o = calloc(1, sizeof(*o))) != NULL) {
		memcpy(o->pool, p->pool, p->pooled * sizeof(p->pool[0]));
		o->next = kosprov_orphans;
		kosprov_orphans = o;
	}
	p->pooled = 0;
	p->pid = pid;
}

static kos_client *handle_new(kosprov_ctx *p)
{
	kos_client *c = NULL;
	kos_rv rv;

	/* the configuration was read once, at load (kos_prov.c): the
	 * environment is not read again here, so it cannot override the
	 * openssl.cnf section */
	if (p->server == NULL) {
		kosprov_raise(p, KOSPROV_R_CONFIG,
			      "no kosd address: set kos-server in the provider's openssl.cnf "
			      "section, or KOS_SERVER");
		return NULL;
	}
	rv = kos_client_new_ex(p->server, KOS_CLIENT_NEW_NO_ENV, &c);
	if (rv == KOS_OK && p->cred_file != NULL)
		rv = kos_client_set_credential_file(c, p->cred_file);
	else if (rv == KOS_OK && p->credential != NULL)
		rv = kos_client_set_credential(c, p->credential);
	if (rv == KOS_OK && p->tls_cert != NULL)
		/* the key defaults to the certificate's file, as kos-client(3)'s
		 * KOS_TLS_KEY does */
		rv = kos_client_set_tls(c, p->tls_cert, p->tls_key != NULL ? p->tls_key : p->tls_cert,
					p->tls_ca);
	if (rv != KOS_OK) {
		kosprov_raise(p, KOSPROV_R_CONFIG, "kos: %s", kos_last_error());
		kos_client_free(c);
		return NULL;
	}
	return c;
}

kos_client *kosprov_handle_get(kosprov_ctx *p)
{
	kos_client *c = NULL;

	pthread_mutex_lock(&kosprov_lock);
	forget_after_fork(p);
	if (p->pooled > 0)
		c = p->pool[--p->pooled];
	pthread_mutex_unlock(&kosprov_lock);
	/* kosd is called without the lock, so threads sign in parallel */
	return c != NULL ? c : handle_new(p);
}

void kosprov_handle_put(kosprov_ctx *p, kos_client *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&kosprov_lock);
	forget_after_fork(p);
	if (p->pooled < KOSPROV_POOL_MAX) {
		p->pool[p->pooled++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&kosprov_lock);
	kos_client_free(c);
}
