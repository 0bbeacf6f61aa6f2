/* The state store: location parsing and dispatch to a backend. */
#include "config.h"

#include "kos/store_backend.h"

#include <inttypes.h>

#include <stdlib.h>
#include <string.h>

/* A location starts with a scheme when a word of [A-Za-z][A-Za-z0-9+.-]*
 * comes before the first ':' (so "./a:b" and "/x/a:b" are plain paths).
 * Returns the scheme's length, or 0 when there is none. */
static size_t scheme_length(const char *loc)
{
	size_t i;

	if (!((loc[0] >= 'a' && loc[0] <= 'z') || (loc[0] >= 'A' && loc[0] <= 'Z')))
		return 0;
	for (i = 1; loc[i] != '\0' && loc[i] != ':'; i++) {
		char c = loc[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '+' || c == '.' || c == '-'))
			return 0;
	}
	return loc[i] == ':' ? i : 0;
}

kos_rv kos_store_open(const char *location, kos_store **out)
{
	size_t slen;

	if (out == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_store_open: no output handle");
	*out = NULL;
	if (location == NULL || location[0] == '\0')
		return kos_error_set(KOS_E_INVALID, "empty state store location");
	slen = scheme_length(location);
	if (slen == 0)
		return kos_store_sqlite_open(location, out);
	if (slen == 6 && strncmp(location, "memory", 6) == 0) {
		if (location[7] != '\0')
			return kos_error_set(
			    KOS_E_INVALID, "state store '%.200s': memory: takes no path", location);
		return kos_store_mem_open(out);
	}
	if (slen == 6 && strncmp(location, "sqlite", 6) == 0) {
		if (location[7] == '\0')
			return kos_error_set(KOS_E_INVALID, "state store 'sqlite:' names no file");
		return kos_store_sqlite_open(location + 7, out);
	}
	return kos_error_set(KOS_E_INVALID,
			     "state store backend '%.*s' is not supported (use sqlite:PATH, a "
			     "plain PATH, or memory:)",
			     (int)(slen > 32 ? 32 : slen), location);
}

void kos_store_free(kos_store *st)
{
	if (st == NULL)
		return;
	st->ops->free(st);
}

int kos_store_schema_version(kos_store *st)
{
	return st->ops->schema_version(st);
}

const char *kos_store_backend(const kos_store *st)
{
	return st->ops->name;
}

kos_rv kos_store_set_synced(kos_store *st, bool on)
{
	if (st->ops->set_synced == NULL)
		return kos_error_set(KOS_E_INVALID,
				     "the %s state store has no disk to sync its commits to",
				     st->ops->name);
	return st->ops->set_synced(st, on);
}

kos_rv kos_store_synced(kos_store *st, bool *on)
{
	*on = false;
	return st->ops->synced != NULL ? st->ops->synced(st, on) : KOS_OK;
}

kos_rv kos_store_trust_get(kos_store *st, const char *client, struct kos_trust_state *out)
{
	return st->ops->trust_get(st, client, out);
}

kos_rv kos_store_trust_update(kos_store *st, const char *client, kos_trust_update_fn fn, void *arg)
{
	return st->ops->trust_update(st, client, fn, arg);
}

kos_rv kos_store_trust_update_batch(kos_store *st, size_t n, const char *const *clients,
				    kos_trust_update_fn fn, void *const *args)
{
	return st->ops->trust_update_batch(st, n, clients, fn, args);
}

kos_rv kos_store_trust_page(kos_store *st, const char *after, size_t max,
			    struct kos_trust_state **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (after == NULL || max == 0)
		return kos_error_set(KOS_E_INVALID, "kos_store_trust_page: missing argument");
	return st->ops->trust_page(st, after, max, out, n);
}

kos_rv kos_store_trust_each(kos_store *st, int (*fn)(const struct kos_trust_state *s, void *arg),
			    void *arg)
{
	struct kos_trust_state *page = NULL;
	char after[sizeof(page->client)] = "";
	size_t n = 0, i;
	kos_rv rv;

	do {
		rv = kos_store_trust_page(st, after, KOS_STORE_TRUST_PAGE, &page, &n);
		if (rv != KOS_OK)
			return rv;
		for (i = 0; i < n && rv == 0; i++)
			rv = fn(&page[i], arg);
		if (n > 0)
			memcpy(after, page[n - 1].client, sizeof(after));
		free(page);
		page = NULL;
	} while (rv == 0 && n == KOS_STORE_TRUST_PAGE);
	return rv;
}

struct trust_vec {
	struct kos_trust_state *v;
	size_t n, cap;
};

static int trust_collect(const struct kos_trust_state *s, void *arg)
{
	struct trust_vec *a = arg;

	if (a->n == a->cap) {
		size_t ncap = a->cap != 0 ? a->cap * 2 : KOS_STORE_TRUST_PAGE;
		struct kos_trust_state *nv = realloc(a->v, ncap * sizeof(*nv));

		if (nv == NULL)
			return kos_error_set(KOS_E_NOMEM, "out of memory");
		a->v = nv;
		a->cap = ncap;
	}
	a->v[a->n++] = *s;
	return KOS_OK;
}

kos_rv kos_store_trust_list(kos_store *st, struct kos_trust_state **out, size_t *n)
{
	struct trust_vec a = {NULL, 0, 0};
	kos_rv rv = kos_store_trust_each(st, trust_collect, &a);

	if (rv != KOS_OK) {
		free(a.v);
		a.v = NULL;
		a.n = 0;
	}
	*out = a.v;
	*n = a.n;
	return rv;
}

kos_rv kos_store_trust_delete(kos_store *st, const char *client)
{
	return st->ops->trust_delete(st, client);
}

kos_rv kos_store_key_version_begin(kos_store *st, const struct kos_store_key *key, const char *name,
				   const struct kos_store_version *v, uint32_t *version)
{
	return st->ops->key_version_begin(st, key, name, v, version);
}

kos_rv kos_store_key_version_activate(kos_store *st, const struct kos_store_version *v)
{
	return st->ops->key_version_activate(st, v);
}

kos_rv kos_store_key_version_abort(kos_store *st, const char *name, uint32_t version)
{
	return st->ops->key_version_abort(st, name, version);
}

kos_rv kos_store_key_version_retire(kos_store *st, const char *name, uint32_t version)
{
	return st->ops->key_version_retire(st, name, version);
}

kos_rv kos_store_key_delete(kos_store *st, const char *name)
{
	return st->ops->key_delete(st, name);
}

kos_rv kos_store_key_get(kos_store *st, const char *name, struct kos_store_key *out)
{
	return st->ops->key_get(st, name, out);
}

kos_rv kos_store_key_list(kos_store *st, struct kos_store_key **out, size_t *n)
{
	return st->ops->key_list(st, out, n);
}

kos_rv kos_store_key_version_get(kos_store *st, const char *name, uint32_t version,
				 struct kos_store_version *out)
{
	return st->ops->key_version_get(st, name, version, out);
}

kos_rv kos_store_key_versions(kos_store *st, const char *name, struct kos_store_version **out,
			      size_t *n)
{
	return st->ops->key_versions(st, name, out, n);
}

kos_rv kos_store_share_counts(kos_store *st, void (*fn)(const char *token, uint64_t n, void *arg),
			      void *arg)
{
	return st->ops->share_counts(st, fn, arg);
}

kos_rv kos_store_key_cert_put(kos_store *st, const char *name, uint32_t version,
			     const uint8_t *der, size_t len, kos_usec created)
{
	if (der == NULL || len == 0 || len > KOS_STORE_CERT_MAX || version == 0)
		return kos_error_set(KOS_E_INVALID, "state store: a certificate of %zu bytes "
						    "(1 to %d) for version %" PRIu32,
				     len, KOS_STORE_CERT_MAX, version);
	return st->ops->key_cert_put(st, name, version, der, len, created);
}

kos_rv kos_store_key_cert_get(kos_store *st, const char *name, uint32_t version, uint8_t **der,
			     size_t *len)
{
	*der = NULL;
	*len = 0;
	return st->ops->key_cert_get(st, name, version, der, len);
}

kos_rv kos_store_key_cert_delete(kos_store *st, const char *name, uint32_t version)
{
	if (version == 0)
		return kos_error_set(KOS_E_INVALID, "state store: a certificate of version 0");
	return st->ops->key_cert_delete(st, name, version);
}

kos_rv kos_store_service_put(kos_store *st, const struct kos_service_row *row)
{
	return st->ops->service_put(st, row);
}

kos_rv kos_store_service_get(kos_store *st, const char *name, struct kos_service_row *row)
{
	return st->ops->service_get(st, name, row);
}

kos_rv kos_store_service_list(kos_store *st,
			      int (*fn)(const struct kos_service_row *row, void *arg), void *arg)
{
	return st->ops->service_list(st, fn, arg);
}

kos_rv kos_store_service_delete(kos_store *st, const char *name)
{
	return st->ops->service_delete(st, name);
}

kos_rv kos_store_ca_key_install(kos_store *st, const struct kos_store_ca_key *key,
				kos_usec old_expires, bool first)
{
	return st->ops->ca_key_install(st, key, old_expires, first);
}

kos_rv kos_store_ca_key_list(kos_store *st, struct kos_store_ca_key **out, size_t *n)
{
	return st->ops->ca_key_list(st, out, n);
}

kos_rv kos_store_ca_key_current(kos_store *st, struct kos_store_ca_key *out)
{
	return st->ops->ca_key_current(st, out);
}

kos_rv kos_store_ca_key_delete(kos_store *st, const char *kid)
{
	return st->ops->ca_key_delete(st, kid);
}

kos_rv kos_store_cred_client_add(kos_store *st, const struct kos_store_cred_client *c,
				 const struct kos_store_enrollment *e)
{
	return st->ops->cred_client_add(st, c, e);
}

kos_rv kos_store_cred_client_get(kos_store *st, const char *name, struct kos_store_cred_client *out)
{
	return st->ops->cred_client_get(st, name, out);
}

kos_rv kos_store_cred_client_list(kos_store *st, struct kos_store_cred_client **out, size_t *n)
{
	return st->ops->cred_client_list(st, out, n);
}

kos_rv kos_store_cred_client_set_disabled(kos_store *st, const char *name, bool disabled)
{
	return st->ops->cred_client_set_disabled(st, name, disabled);
}

kos_rv kos_store_enrollment_add(kos_store *st, const struct kos_store_enrollment *e)
{
	return st->ops->enrollment_add(st, e);
}

kos_rv kos_store_enrollment_get(kos_store *st, const uint8_t *hash,
				struct kos_store_enrollment *out)
{
	return st->ops->enrollment_get(st, hash, out);
}

kos_rv kos_store_enrollment_use(kos_store *st, const uint8_t *hash, kos_usec now,
				struct kos_store_enrollment *out)
{
	return st->ops->enrollment_use(st, hash, now, out);
}

kos_rv kos_store_revocation_add(kos_store *st, const struct kos_store_revocation *r)
{
	return st->ops->revocation_add(st, r);
}

kos_rv kos_store_revocation_each(kos_store *st, kos_store_revocation_fn fn, void *arg)
{
	return st->ops->revocation_each(st, fn, arg);
}

struct revocation_vec {
	struct kos_store_revocation *v;
	size_t n, cap;
};

static kos_rv revocation_collect(const struct kos_store_revocation *r, void *arg)
{
	struct revocation_vec *a = arg;

	if (a->n == a->cap) {
		size_t ncap = a->cap != 0 ? a->cap * 2 : 16;
		struct kos_store_revocation *nv = realloc(a->v, ncap * sizeof(*nv));

		if (nv == NULL)
			return kos_error_set(KOS_E_NOMEM, "out of memory");
		a->v = nv;
		a->cap = ncap;
	}
	a->v[a->n++] = *r;
	return KOS_OK;
}

kos_rv kos_store_revocation_list(kos_store *st, struct kos_store_revocation **out, size_t *n)
{
	struct revocation_vec a = {NULL, 0, 0};
	kos_rv rv = st->ops->revocation_each(st, revocation_collect, &a);

	if (rv != KOS_OK) {
		free(a.v);
		a.v = NULL;
		a.n = 0;
	}
	*out = a.v;
	*n = a.n;
	return rv;
}

kos_rv kos_store_cred_prune(kos_store *st, kos_usec now, uint64_t *removed)
{
	return st->ops->cred_prune(st, now, removed);
}

kos_rv kos_store_cred_revision(kos_store *st, uint64_t *rev)
{
	return st->ops->cred_revision(st, rev);
}

uint64_t kos_store_cred_hint(kos_store *st)
{
	return st->ops->cred_hint(st);
}

kos_rv kos_store_meta_get(kos_store *st, const char *key, char **value)
{
	return st->ops->meta_get(st, key, value);
}

kos_rv kos_store_meta_put(kos_store *st, const char *key, const char *value)
{
	return st->ops->meta_put(st, key, value);
}

kos_rv kos_store_ledger_append(kos_store *st, kos_ledger_entry *e, size_t n)
{
	return st->ops->ledger_append(st, e, n);
}

kos_rv kos_store_decisions_commit(kos_store *st, size_t n, const char *const *clients,
				  kos_trust_update_fn fn, void *const *args, kos_ledger_entry *e,
				  size_t m)
{
	kos_rv rv;

	if (st->ops->decisions_commit != NULL)
		return st->ops->decisions_commit(st, n, clients, fn, args, e, m);
	/* a backend without it: two transactions */
	rv = n > 0 ? st->ops->trust_update_batch(st, n, clients, fn, args) : KOS_OK;
	if (rv == KOS_OK && m > 0)
		rv = st->ops->ledger_append(st, e, m);
	return rv;
}

kos_rv kos_store_ledger_head(kos_store *st, uint64_t *seq, uint8_t *hash)
{
	return st->ops->ledger_head(st, seq, hash);
}

kos_rv kos_store_ledger_read(kos_store *st, uint64_t from, struct kos_store_ledger_row *rows,
			     size_t max, size_t *n)
{
	return st->ops->ledger_read(st, from, rows, max, n);
}

const char *kos_revocation_kind_name(enum kos_revocation_kind k)
{
	switch (k) {
	case KOS_REVOKE_JTI:
		return "jti";
	case KOS_REVOKE_CLIENT:
		return "client";
	case KOS_REVOKE_BEFORE:
		return "before";
	}
	return NULL;
}

void kos_store_version_clear(struct kos_store_version *v)
{
	if (v == NULL)
		return;
	free(v->shares);
	memset(v, 0, sizeof(*v));
}

void kos_store_versions_free(struct kos_store_version *v, size_t n)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < n; i++)
		free(v[i].shares);
	free(v);
}

const char *kos_key_state_name(enum kos_key_state s)
{
	switch (s) {
	case KOS_KEY_STATE_CREATING:
		return "creating";
	case KOS_KEY_STATE_ACTIVE:
		return "active";
	case KOS_KEY_STATE_RETIRED:
		return "retired";
	}
	return NULL;
}
