/* In-memory state store ("memory:"): nothing persists. For tests and for
 * single-process use where a trust decision must cost well under a
 * microsecond: a get is one lock, one hash, a short probe and a copy; it
 * never allocates.
 *
 * Layout: open addressing with linear probing over slots that hold the
 * states themselves (no pointer chase); deletion shifts the following run
 * back, so no tombstones build up. Load factor stays at or below 1/2.
 *
 * Keys are few and change rarely: an array sorted by name, each key with
 * its versions in ascending order. Every change is prepared on copies
 * before anything is modified, so a failure leaves the store as it was.
 *
 * The ledger is an array in seq order: entry seq sits at index seq - 1. */
#include "config.h"

#include "kos/store_backend.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

struct mem_slot {
	uint64_t hash; /* 0: empty */
	struct kos_trust_state st;
};

struct mem_key {
	struct kos_store_key key;
	struct kos_store_version *v; /* ascending versions; shares owned */
	size_t n_v, cap_v;
};

struct mem_store {
	struct kos_store base;
	pthread_mutex_t lock;
	struct mem_slot *slots;
	size_t cap; /* a power of two, or 0 */
	size_t count;
	struct mem_key *keys; /* sorted by name */
	size_t n_keys, cap_keys;
	struct kos_service_row *services; /* sorted by name */
	size_t n_services, cap_services;
	struct kos_store_ca_key *ca_keys; /* oldest first */
	size_t n_ca, cap_ca;
	struct kos_store_cred_client *clients; /* sorted by name */
	size_t n_clients, cap_clients;
	struct kos_store_enrollment *enrollments;
	size_t n_enroll, cap_enroll;
	struct kos_store_revocation *revocations;
	size_t n_rev, cap_rev;
	struct mem_meta {
		char *key, *value;
	} * meta;
	size_t n_meta, cap_meta;
	/* the credential revision; its own hint (one process shares it) */
	_Atomic uint64_t revision;
	kos_ledger_entry *ledger;
	size_t n_ledger, cap_ledger;
	struct mem_cert {
		char name[KOS_KEY_NAME_MAX + 1];
		uint32_t version;
		uint8_t *der;
		size_t len;
	} *certs;
	size_t n_certs, cap_certs;
};

/* FNV-1a; the top bit is forced so that 0 can mark an empty slot. */
static uint64_t name_hash(const char *s)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	while (*s != '\0') {
		h ^= (unsigned char)*s++;
		h *= UINT64_C(0x100000001b3);
	}
	return h | (UINT64_C(1) << 63);
}

static struct mem_store *mem_of(kos_store *st)
{
	return (struct mem_store *)st;
}

/* The slot holding client, or NULL. Caller holds the lock. */
static struct mem_slot *find(struct mem_store *m, const char *client, uint64_t h)
{
	size_t mask, i;

	if (m->cap == 0)
		return NULL;
	mask = m->cap - 1;
	for (i = (size_t)h & mask; m->slots[i].hash != 0; i = (i + 1) & mask) {
		if (m->slots[i].hash == h && strcmp(m->slots[i].st.client, client) == 0)
			return &m->slots[i];
	}
	return NULL;
}

/* Puts a state known to be absent into a table with room. */
static void place(struct mem_slot *slots, size_t cap, uint64_t h, const struct kos_trust_state *st)
{
	size_t mask = cap - 1, i = (size_t)h & mask;

	while (slots[i].hash != 0)
		i = (i + 1) & mask;
	slots[i].hash = h;
	slots[i].st = *st;
}

/* Makes room for one more entry. Caller holds the lock. */
static kos_rv reserve(struct mem_store *m)
{
	struct mem_slot *ns;
	size_t ncap, i;

	if ((m->count + 1) * 2 <= m->cap)
		return KOS_OK;
	ncap = m->cap ? m->cap * 2 : 64;
	if (ncap > SIZE_MAX / sizeof(*ns))
		return kos_error_set(KOS_E_NOMEM, "memory store: too many clients");
	ns = calloc(ncap, sizeof(*ns));
	if (ns == NULL)
		return kos_error_set(KOS_E_NOMEM, "memory store: out of memory");
	for (i = 0; i < m->cap; i++)
		if (m->slots[i].hash != 0)
			place(ns, ncap, m->slots[i].hash, &m->slots[i].st);
	free(m->slots);
	m->slots = ns;
	m->cap = ncap;
	return KOS_OK;
}

static void mem_free(kos_store *st)
{
	struct mem_store *m = mem_of(st);
	size_t i;

	for (i = 0; i < m->n_keys; i++)
		kos_store_versions_free(m->keys[i].v, m->keys[i].n_v);
	free(m->keys);
	for (i = 0; i < m->n_certs; i++)
		free(m->certs[i].der);
	free(m->certs);
	if (m->services != NULL)
		OPENSSL_cleanse(m->services, m->cap_services * sizeof(*m->services));
	free(m->services);
	free(m->ca_keys);
	free(m->clients);
	free(m->enrollments);
	free(m->revocations);
	for (i = 0; i < m->n_meta; i++) {
		free(m->meta[i].key);
		free(m->meta[i].value);
	}
	free(m->meta);
	free(m->ledger);
	pthread_mutex_destroy(&m->lock);
	free(m->slots);
	free(m);
}

static int mem_schema_version(kos_store *st)
{
	(void)st;
	return KOS_STORE_SCHEMA_VERSION;
}

static kos_rv mem_trust_get(kos_store *st, const char *client, struct kos_trust_state *out)
{
	struct mem_store *m = mem_of(st);
	uint64_t h = name_hash(client);
	struct mem_slot *s;

	pthread_mutex_lock(&m->lock);
	s = find(m, client, h);
	if (s != NULL)
		*out = s->st;
	pthread_mutex_unlock(&m->lock);
	if (s == NULL)
		return kos_error_set(KOS_E_NOTFOUND, "unknown client '%s'", client);
	return KOS_OK;
}

/* One update with m->lock held. */
static kos_rv mem_update_locked(struct mem_store *m, const char *client, kos_trust_update_fn fn,
				void *arg)
{
	uint64_t h = name_hash(client);
	struct kos_trust_state work;
	struct mem_slot *s;
	kos_rv rv;

	s = find(m, client, h);
	if (s != NULL) {
		work = s->st;
	} else {
		memset(&work, 0, sizeof(work));
		memcpy(work.client, client, strnlen(client, sizeof(work.client) - 1));
	}
	/* fn works on a copy so that a refusal leaves the stored state whole */
	rv = fn(&work, s == NULL, arg);
	if (rv != KOS_OK)
		goto out;
	if (s != NULL) {
		s->st = work;
	} else {
		rv = reserve(m);
		if (rv != KOS_OK)
			goto out;
		place(m->slots, m->cap, h, &work);
		m->count++;
	}
out:
	return rv;
}

static kos_rv mem_trust_update(kos_store *st, const char *client, kos_trust_update_fn fn, void *arg)
{
	struct mem_store *m = mem_of(st);
	kos_rv rv;

	pthread_mutex_lock(&m->lock);
	rv = mem_update_locked(m, client, fn, arg);
	pthread_mutex_unlock(&m->lock);
	return rv;
}

static kos_rv mem_trust_update_batch(kos_store *st, size_t n, const char *const *clients,
				     kos_trust_update_fn fn, void *const *args)
{
	struct mem_store *m = mem_of(st);
	kos_rv rv = KOS_OK;
	size_t i;

	pthread_mutex_lock(&m->lock);
	for (i = 0; i < n && rv == KOS_OK; i++)
		rv = mem_update_locked(m, clients[i], fn, args[i]);
	pthread_mutex_unlock(&m->lock);
	return rv;
}

static int state_cmp(const void *a, const void *b)
{
	const struct kos_trust_state *x = a, *y = b;

	return strcmp(x->client, y->client);
}

/* The clients after `after`, sorted, cut to max (a memory store is small:
 * each page sorts what follows it). */
static kos_rv mem_trust_page(kos_store *st, const char *after, size_t max,
			     struct kos_trust_state **out, size_t *n)
{
	struct mem_store *m = mem_of(st);
	struct kos_trust_state *arr = NULL;
	size_t i, k = 0;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&m->lock);
	if (m->count > 0) {
		arr = malloc(m->count * sizeof(*arr));
		if (arr == NULL) {
			pthread_mutex_unlock(&m->lock);
			return kos_error_set(KOS_E_NOMEM, "memory store: out of memory");
		}
		for (i = 0; i < m->cap; i++)
			if (m->slots[i].hash != 0 && strcmp(m->slots[i].st.client, after) > 0)
				arr[k++] = m->slots[i].st;
	}
	pthread_mutex_unlock(&m->lock);
	if (k > 1)
		qsort(arr, k, sizeof(*arr), state_cmp);
	if (k > max)
		k = max;
	if (k == 0) {
		free(arr);
		arr = NULL;
	}
	*out = arr;
	*n = k;
	return KOS_OK;
}

static kos_rv mem_trust_delete(kos_store *st, const char *client)
{
	struct mem_store *m = mem_of(st);
	struct mem_slot *s;
	size_t mask, i, j;

	pthread_mutex_lock(&m->lock);
	s = find(m, client, name_hash(client));
	if (s == NULL) {
		pthread_mutex_unlock(&m->lock);
		return kos_error_set(KOS_E_NOTFOUND, "unknown client '%s'", client);
	}
	/* Backward-shift deletion: every entry after the hole, up to the next
	 * empty slot, moves into the hole when its home slot does not lie
	 * cyclically in (hole, its position]; then it is reachable again. */
	mask = m->cap - 1;
	i = (size_t)(s - m->slots);
	for (j = (i + 1) & mask; m->slots[j].hash != 0; j = (j + 1) & mask) {
		size_t home = (size_t)m->slots[j].hash & mask;
		bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);

		if (!stays) {
			m->slots[i] = m->slots[j];
			i = j;
		}
	}
	memset(&m->slots[i], 0, sizeof(m->slots[i]));
	m->count--;
	pthread_mutex_unlock(&m->lock);
	return KOS_OK;
}

/* --- keys ------------------------------------------------------------------- */

/* The index where name is, or where it would go; *found says which. */
static size_t key_find(const struct mem_store *m, const char *name, bool *found)
{
	size_t lo = 0, hi = m->n_keys;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(m->keys[mid].key.name, name);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

static struct mem_key *key_get(struct mem_store *m, const char *name)
{
	bool found;
	size_t i = key_find(m, name, &found);

	return found ? &m->keys[i] : NULL;
}

static struct kos_store_version *version_of(struct mem_key *k, uint32_t version)
{
	size_t i;

	for (i = 0; i < k->n_v; i++)
		if (k->v[i].version == version)
			return &k->v[i];
	return NULL;
}

static uint32_t current_of(const struct mem_key *k)
{
	size_t i;

	for (i = k->n_v; i-- > 0;)
		if (k->v[i].state == KOS_KEY_STATE_ACTIVE)
			return k->v[i].version;
	return 0;
}

/* Deep copy of src into dst (dst's old shares are not freed). */
static kos_rv version_copy(struct kos_store_version *dst, const struct kos_store_version *src)
{
	struct kos_store_share *sh = NULL;

	if (src->n_shares > 0) {
		sh = malloc(src->n_shares * sizeof(*sh));
		if (sh == NULL)
			return kos_error_set(KOS_E_NOMEM, "memory store: out of memory");
		memcpy(sh, src->shares, src->n_shares * sizeof(*sh));
	}
	*dst = *src;
	dst->shares = sh;
	return KOS_OK;
}

static kos_rv mem_key_version_begin(kos_store *st, const struct kos_store_key *key,
				    const char *name, const struct kos_store_version *v,
				    uint32_t *version)
{
	struct mem_store *m = mem_of(st);
	struct kos_store_version nv;
	struct mem_key *k;
	bool found;
	size_t at;
	kos_rv rv = KOS_OK;

	*version = 0;
	memset(&nv, 0, sizeof(nv));
	memcpy(nv.name, name, strnlen(name, sizeof(nv.name) - 1));
	nv.state = KOS_KEY_STATE_CREATING;
	nv.created = v->created;
	nv.has_kcv = v->has_kcv;
	memcpy(nv.kcv, v->kcv, sizeof(nv.kcv));
	memcpy(nv.creator, v->creator, strnlen(v->creator, sizeof(nv.creator) - 1));

	pthread_mutex_lock(&m->lock);
	at = key_find(m, name, &found);
	if (key != NULL && found) {
		rv = kos_error_set(KOS_E_EXISTS, "key '%s' already exists", name);
		goto out;
	}
	if (key == NULL && !found) {
		rv = kos_error_set(KOS_E_NOTFOUND, "unknown key '%s'", name);
		goto out;
	}
	if (key != NULL) {
		if (m->n_keys == m->cap_keys) {
			size_t ncap = m->cap_keys ? m->cap_keys * 2 : 8;
			struct mem_key *nk = realloc(m->keys, ncap * sizeof(*nk));

			if (nk == NULL) {
				rv = kos_error_set(KOS_E_NOMEM, "memory store: out of memory");
				goto out;
			}
			m->keys = nk;
			m->cap_keys = ncap;
		}
		/* the version array first: nothing is inserted when it fails */
		k = &m->keys[m->n_keys];
		memset(k, 0, sizeof(*k));
		k->v = malloc(4 * sizeof(*k->v));
		if (k->v == NULL) {
			rv = kos_error_set(KOS_E_NOMEM, "memory store: out of memory");
			goto out;
		}
		k->cap_v = 4;
		k->key = *key;
		memset(k->key.name, 0, sizeof(k->key.name));
		memcpy(k->key.name, name, strnlen(name, sizeof(k->key.name) - 1));
		{
			struct mem_key tmp = *k;

			memmove(&m->keys[at + 1], &m->keys[at],
				(m->n_keys - at) * sizeof(*m->keys));
			m->keys[at] = tmp;
		}
		m->n_keys++;
	}
	k = &m->keys[at];
	if (k->n_v == k->cap_v) {
		size_t ncap = k->cap_v ? k->cap_v * 2 : 4;
		struct kos_store_version *na = realloc(k->v, ncap * sizeof(*na));

		if (na == NULL) {
			rv = kos_error_set(KOS_E_NOMEM, "memory store: out of memory");
			goto out;
		}
		k->v = na;
		k->cap_v = ncap;
	}
	nv.version = k->n_v > 0 ? k->v[k->n_v - 1].version + 1 : 1;
	if (nv.version == 0) {
		rv = kos_error_set(KOS_E_RANGE, "key '%s' has no version number left", name);
		goto out;
	}
	k->v[k->n_v++] = nv;
	*version = nv.version;
out:
	pthread_mutex_unlock(&m->lock);
	return rv;
}

static kos_rv mem_key_version_activate(kos_store *st, const struct kos_store_version *v)
{
	struct mem_store *m = mem_of(st);
	struct kos_store_version *cur, copy;
	struct mem_key *k;
	kos_rv rv;

	rv = version_copy(&copy, v);
	if (rv != KOS_OK)
		return rv;
	pthread_mutex_lock(&m->lock);
	k = key_get(m, v->name);
	cur = k != NULL ? version_of(k, v->version) : NULL;
	if (cur == NULL || cur->state != KOS_KEY_STATE_CREATING) {
		pthread_mutex_unlock(&m->lock);
		free(copy.shares);
		return kos_error_set(KOS_E_NOTFOUND,
				     "key '%s' version %u is no longer being created (removed by "
				     "fsck?)",
				     v->name, v->version);
	}
	/* what begin wrote stays; the rest comes from v */
	copy.state = KOS_KEY_STATE_ACTIVE;
	copy.created = cur->created;
	copy.has_kcv = cur->has_kcv;
	memcpy(copy.kcv, cur->kcv, sizeof(copy.kcv));
	memcpy(copy.creator, cur->creator, sizeof(copy.creator));
	free(cur->shares);
	*cur = copy;
	pthread_mutex_unlock(&m->lock);
	return KOS_OK;
}

static kos_rv mem_key_version_abort(kos_store *st, const char *name, uint32_t version)
{
	struct mem_store *m = mem_of(st);
	struct kos_store_version *cur;
	struct mem_key *k;
	size_t i;

	pthread_mutex_lock(&m->lock);
	k = key_get(m, name);
	cur = k != NULL ? version_of(k, version) : NULL;
	if (cur == NULL || cur->state != KOS_KEY_STATE_CREATING) {
		pthread_mutex_unlock(&m->lock);
		return kos_error_set(KOS_E_NOTFOUND, "key '%s' has no version %u being created",
				     name, version);
	}
	free(cur->shares);
	i = (size_t)(cur - k->v);
	memmove(&k->v[i], &k->v[i + 1], (k->n_v - i - 1) * sizeof(*k->v));
	k->n_v--;
	if (k->n_v == 0) {
		free(k->v);
		i = (size_t)(k - m->keys);
		memmove(&m->keys[i], &m->keys[i + 1], (m->n_keys - i - 1) * sizeof(*m->keys));
		m->n_keys--;
	}
	pthread_mutex_unlock(&m->lock);
	return KOS_OK;
}

static kos_rv mem_key_version_retire(kos_store *st, const char *name, uint32_t version)
{
	struct mem_store *m = mem_of(st);
	struct kos_store_version *cur;
	struct mem_key *k;
	kos_rv rv = KOS_OK;

	pthread_mutex_lock(&m->lock);
	k = key_get(m, name);
	cur = k != NULL ? version_of(k, version) : NULL;
	if (k == NULL)
		rv = kos_error_set(KOS_E_NOTFOUND, "unknown key '%s'", name);
	else if (cur == NULL || cur->state == KOS_KEY_STATE_CREATING)
		rv = kos_error_set(KOS_E_NOTFOUND, "key '%s' has no version %u", name, version);
	else if (cur->state == KOS_KEY_STATE_RETIRED)
		rv = kos_error_set(KOS_E_NOTFOUND, "key '%s' version %u is already retired", name,
				   version);
	else if (current_of(k) == version)
		rv = kos_error_set(KOS_E_INVALID,
				   "key '%s' version %u is the current version: rotate first", name,
				   version);
	if (rv == KOS_OK) {
		cur->state = KOS_KEY_STATE_RETIRED;
		free(cur->shares);
		cur->shares = NULL;
		cur->n_shares = 0;
	}
	pthread_mutex_unlock(&m->lock);
	return rv;
}

static kos_rv mem_key_get(kos_store *st, const char *name, struct kos_store_key *out)
{
	struct mem_store *m = mem_of(st);
	struct mem_key *k;

	pthread_mutex_lock(&m->lock);
	k = key_get(m, name);
	if (k != NULL)
		*out = k->key;
	pthread_mutex_unlock(&m->lock);
	if (k == NULL)
		return kos_error_set(KOS_E_NOTFOUND, "unknown key '%s'", name);
	return KOS_OK;
}

static kos_rv mem_key_list(kos_store *st, struct kos_store_key **out, size_t *n)
{
	struct mem_store *m = mem_of(st);
	struct kos_store_key *arr = NULL;
	size_t i;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&m->lock);
	if (m->n_keys > 0) {
		arr = malloc(m->n_keys * sizeof(*arr));
		if (arr == NULL) {
			pthread_mutex_unlock(&m->lock);
			return kos_error_set(KOS_E_NOMEM, "memory store: out of memory");
		}
		for (i = 0; i < m->n_keys; i++)
			arr[i] = m->keys[i].key;
		*n = m->n_keys;
	}
	pthread_mutex_unlock(&m->lock);
	*out = arr;
	return KOS_OK;
}

static kos_rv mem_key_version_get(kos_store *st, const char *name, uint32_t version,
				  struct kos_store_version *out)
{
	struct mem_store *m = mem_of(st);
	struct kos_store_version *cur = NULL;
	struct mem_key *k;
	kos_rv rv;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&m->lock);
	k = key_get(m, name);
	if (k == NULL) {
		rv = kos_error_set(KOS_E_NOTFOUND, "unknown key '%s'", name);
	} else {
		if (version == 0)
			version = current_of(k);
		cur = version != 0 ? version_of(k, version) : NULL;
		if (cur != NULL)
			rv = version_copy(out, cur);
		else if (version == 0)
			rv = kos_error_set(KOS_E_NOTFOUND, "key '%s' has no active version", name);
		else
			rv = kos_error_set(KOS_E_NOTFOUND, "key '%s' has no version %u", name,
					   version);
	}
	pthread_mutex_unlock(&m->lock);
	return rv;
}

static kos_rv mem_key_versions(kos_store *st, const char *name, struct kos_store_version **out,
			       size_t *n)
{
	struct mem_store *m = mem_of(st);
	struct kos_store_version *arr = NULL;
	struct mem_key *k;
	kos_rv rv = KOS_OK;
	size_t i = 0, count = 0;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&m->lock);
	k = key_get(m, name);
	if (k == NULL) {
		rv = kos_error_set(KOS_E_NOTFOUND, "unknown key '%s'", name);
	} else if (k->n_v > 0) {
		count = k->n_v;
		arr = calloc(k->n_v, sizeof(*arr));
		if (arr == NULL)
			rv = kos_error_set(KOS_E_NOMEM, "memory store: out of memory");
		for (i = 0; rv == KOS_OK && i < k->n_v; i++)
			rv = version_copy(&arr[i], &k->v[i]);
	}
	pthread_mutex_unlock(&m->lock);
	if (rv != KOS_OK) {
		kos_store_versions_free(arr, i);
		return rv;
	}
	*out = arr;
	*n = count;
	return KOS_OK;
}

static kos_rv mem_share_counts(kos_store *st, void (*fn)(const char *token, uint64_t n, void *arg),
			       void *arg)
{
	struct mem_store *m = mem_of(st);
	struct {
		char token[KOS_TOKEN_NAME_MAX + 1];
		uint64_t n;
	} rows[64];
	size_t k = 0, i, j, s;

	/* fn is called outside the lock, as in the SQLite backend */
	pthread_mutex_lock(&m->lock);
	for (i = 0; i < m->n_keys; i++) {
		for (j = 0; j < m->keys[i].n_v; j++) {
			const struct kos_store_version *v = &m->keys[i].v[j];

			for (s = 0; s < v->n_shares; s++) {
				size_t r;

				for (r = 0; r < k; r++)
					if (strcmp(rows[r].token, v->shares[s].token) == 0)
						break;
				if (r == k) {
					if (k == KOS_ARRAY_SIZE(rows))
						continue;
					memcpy(rows[k].token, v->shares[s].token,
					       sizeof(rows[k].token));
					rows[k].n = 0;
					k++;
				}
				rows[r].n++;
			}
		}
	}
	pthread_mutex_unlock(&m->lock);
	for (i = 0; i < k; i++)
		fn(rows[i].token, rows[i].n, arg);
	return KOS_OK;
}

/* --- services and credentials ----------------------------------------------- */

/* Room for one more element of size sz in *arr (capacity *cap, n used). */
static kos_rv vec_reserve(void **arr, size_t *cap, size_t n, size_t sz)
{
	size_t ncap;
	void *na;

	if (n < *cap)
		return KOS_OK;
	ncap = *cap ? *cap * 2 : 8;
	if (ncap > SIZE_MAX / sz)
		return kos_error_set(KOS_E_NOMEM, "memory store: too many rows");
	na = realloc(*arr, ncap * sz);
	if (na == NULL)
		return kos_error_set(KOS_E_NOMEM, "memory store: out of memory");
	*arr = na;
	*cap = ncap;
	return KOS_OK;
}

/* A copy of n elements of size sz (NULL for none). */
static kos_rv vec_copy(const void *arr, size_t n, size_t sz, void **out)
{
	*out = NULL;
	if (n == 0)
		return KOS_OK;
	*out = malloc(n * sz);
	if (*out == NULL)
		return kos_error_set(KOS_E_NOMEM, "memory store: out of memory");
	memcpy(*out, arr, n * sz);
	return KOS_OK;
}

/* Index of the service name, or where it would go. */
static size_t service_find(const struct mem_store *m, const char *name, bool *found)
{
	size_t lo = 0, hi = m->n_services;

	*found = false;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(m->services[mid].name, name);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static kos_rv mem_service_put(kos_store *st, const struct kos_service_row *row)
{
	struct mem_store *m = mem_of(st);
	kos_rv rv = KOS_OK;
	bool found;
	size_t i;

	if (row->wrapped_len == 0 || row->wrapped_len > sizeof(row->wrapped_seed))
		return kos_error_set(KOS_E_INVALID, "service '%s': wrapped seed of %zu bytes",
				     row->name, row->wrapped_len);
	pthread_mutex_lock(&m->lock);
	i = service_find(m, row->name, &found);
	if (!found) {
		rv = vec_reserve((void **)&m->services, &m->cap_services, m->n_services,
				 sizeof(*m->services));
		if (rv == KOS_OK) {
			memmove(&m->services[i + 1], &m->services[i],
				(m->n_services - i) * sizeof(*m->services));
			m->n_services++;
		}
	}
	if (rv == KOS_OK)
		m->services[i] = *row;
	pthread_mutex_unlock(&m->lock);
	return rv;
}

static kos_rv mem_service_get(kos_store *st, const char *name, struct kos_service_row *row)
{
	struct mem_store *m = mem_of(st);
	bool found;
	size_t i;

	pthread_mutex_lock(&m->lock);
	i = service_find(m, name, &found);
	if (found)
		*row = m->services[i];
	pthread_mutex_unlock(&m->lock);
	if (!found)
		return kos_error_set(KOS_E_NOTFOUND, "unknown service '%s'", name);
	return KOS_OK;
}

static kos_rv mem_service_list(kos_store *st,
			       int (*fn)(const struct kos_service_row *row, void *arg), void *arg)
{
	struct mem_store *m = mem_of(st);
	struct kos_service_row *rows;
	size_t n, i;
	kos_rv rv;

	/* fn runs outside the lock, on a copy: it may use the store */
	pthread_mutex_lock(&m->lock);
	n = m->n_services;
	rv = vec_copy(m->services, n, sizeof(*rows), (void **)&rows);
	pthread_mutex_unlock(&m->lock);
	for (i = 0; rv == KOS_OK && i < n; i++) {
		int r = fn(&rows[i], arg);

		if (r != 0)
			rv = r;
	}
	if (rows != NULL)
		OPENSSL_cleanse(rows, n * sizeof(*rows));
	free(rows);
	return rv;
}

static kos_rv mem_service_delete(kos_store *st, const char *name)
{
	struct mem_store *m = mem_of(st);
	bool found;
	size_t i;

	pthread_mutex_lock(&m->lock);
	i = service_find(m, name, &found);
	if (found) {
		OPENSSL_cleanse(&m->services[i], sizeof(m->services[i]));
		memmove(&m->services[i], &m->services[i + 1],
			(m->n_services - i - 1) * sizeof(*m->services));
		m->n_services--;
	}
	pthread_mutex_unlock(&m->lock);
	if (!found)
		return kos_error_set(KOS_E_NOTFOUND, "unknown service '%s'", name);
	return KOS_OK;
}

/* The current CA key's index, or n_ca. */
static size_t ca_current(const struct mem_store *m)
{
	size_t i;

	for (i = 0; i < m->n_ca; i++)
		if (m->ca_keys[i].retired == 0)
			return i;
	return m->n_ca;
}

static void revision_bump(struct mem_store *m)
{
	atomic_fetch_add_explicit(&m->revision, 1, memory_order_release);
}

static kos_rv mem_ca_key_install(kos_store *st, const struct kos_store_ca_key *key,
				 kos_usec old_expires, bool first)
{
	struct mem_store *m = mem_of(st);
	kos_rv rv;
	size_t cur, i;

	if (key->spki_len == 0 || key->spki_len > sizeof(key->spki))
		return kos_error_set(KOS_E_INVALID, "CA key %s: no public key", key->kid);
	pthread_mutex_lock(&m->lock);
	cur = ca_current(m);
	if (first && cur < m->n_ca) {
		rv = kos_error_set(KOS_E_EXISTS, "the CA has a key already (rotate it instead)");
		goto out;
	}
	if (!first && cur == m->n_ca) {
		rv = kos_error_set(KOS_E_NOTFOUND, "the CA has no key yet (initialise it first)");
		goto out;
	}
	for (i = 0; i < m->n_ca; i++) {
		if (strcmp(m->ca_keys[i].kid, key->kid) == 0) {
			rv = kos_error_set(KOS_E_EXISTS, "CA key %s exists already", key->kid);
			goto out;
		}
	}
	rv = vec_reserve((void **)&m->ca_keys, &m->cap_ca, m->n_ca, sizeof(*m->ca_keys));
	if (rv != KOS_OK)
		goto out;
	if (cur < m->n_ca) {
		m->ca_keys[cur].retired = key->created;
		m->ca_keys[cur].expires = old_expires;
	}
	m->ca_keys[m->n_ca] = *key;
	m->ca_keys[m->n_ca].retired = 0;
	m->ca_keys[m->n_ca].expires = 0;
	m->n_ca++;
	revision_bump(m);
out:
	pthread_mutex_unlock(&m->lock);
	return rv;
}

static kos_rv mem_ca_key_list(kos_store *st, struct kos_store_ca_key **out, size_t *n)
{
	struct mem_store *m = mem_of(st);
	kos_rv rv;

	pthread_mutex_lock(&m->lock);
	*n = m->n_ca;
	rv = vec_copy(m->ca_keys, m->n_ca, sizeof(**out), (void **)out);
	pthread_mutex_unlock(&m->lock);
	if (rv != KOS_OK)
		*n = 0;
	return rv;
}

static kos_rv mem_ca_key_current(kos_store *st, struct kos_store_ca_key *out)
{
	struct mem_store *m = mem_of(st);
	size_t cur;

	pthread_mutex_lock(&m->lock);
	cur = ca_current(m);
	if (cur < m->n_ca)
		*out = m->ca_keys[cur];
	pthread_mutex_unlock(&m->lock);
	if (cur == m->n_ca)
		return kos_error_set(KOS_E_NOTFOUND, "the CA has no key (kosctl ca init)");
	return KOS_OK;
}

static kos_rv mem_ca_key_delete(kos_store *st, const char *kid)
{
	struct mem_store *m = mem_of(st);
	bool found = false;
	size_t i;

	pthread_mutex_lock(&m->lock);
	for (i = 0; i < m->n_ca; i++) {
		if (m->ca_keys[i].retired != 0 && strcmp(m->ca_keys[i].kid, kid) == 0) {
			memmove(&m->ca_keys[i], &m->ca_keys[i + 1],
				(m->n_ca - i - 1) * sizeof(*m->ca_keys));
			m->n_ca--;
			revision_bump(m);
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&m->lock);
	if (!found)
		return kos_error_set(KOS_E_NOTFOUND, "no retired CA key %s", kid);
	return KOS_OK;
}

/* Index of client name, or where it would go. */
static size_t client_find(const struct mem_store *m, const char *name, bool *found)
{
	size_t lo = 0, hi = m->n_clients;

	*found = false;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(m->clients[mid].name, name);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The latest unused secret's expiry for client, 0 when none. */
static kos_usec secret_expires(const struct mem_store *m, const char *client)
{
	kos_usec best = 0;
	size_t i;

	for (i = 0; i < m->n_enroll; i++) {
		const struct kos_store_enrollment *e = &m->enrollments[i];

		if (e->used == 0 && strcmp(e->client, client) == 0 && e->expires > best)
			best = e->expires;
	}
	return best;
}

static kos_rv mem_cred_client_add(kos_store *st, const struct kos_store_cred_client *c,
				  const struct kos_store_enrollment *e)
{
	struct mem_store *m = mem_of(st);
	bool found;
	size_t i;
	kos_rv rv;

	pthread_mutex_lock(&m->lock);
	i = client_find(m, c->name, &found);
	if (found) {
		rv = kos_error_set(KOS_E_EXISTS, "client '%s' exists already", c->name);
		goto out;
	}
	/* both reservations first: a failure leaves the store as it was */
	rv = vec_reserve((void **)&m->clients, &m->cap_clients, m->n_clients, sizeof(*m->clients));
	if (rv == KOS_OK)
		rv = vec_reserve((void **)&m->enrollments, &m->cap_enroll, m->n_enroll,
				 sizeof(*m->enrollments));
	if (rv != KOS_OK)
		goto out;
	memmove(&m->clients[i + 1], &m->clients[i], (m->n_clients - i) * sizeof(*m->clients));
	m->clients[i] = *c;
	m->clients[i].secret_expires = 0;
	m->n_clients++;
	m->enrollments[m->n_enroll] = *e;
	m->enrollments[m->n_enroll].used = 0;
	m->n_enroll++;
out:
	pthread_mutex_unlock(&m->lock);
	return rv;
}

static kos_rv mem_cred_client_get(kos_store *st, const char *name,
				  struct kos_store_cred_client *out)
{
	struct mem_store *m = mem_of(st);
	bool found;
	size_t i;

	pthread_mutex_lock(&m->lock);
	i = client_find(m, name, &found);
	if (found) {
		*out = m->clients[i];
		out->secret_expires = secret_expires(m, name);
	}
	pthread_mutex_unlock(&m->lock);
	if (!found)
		return kos_error_set(KOS_E_NOTFOUND, "unknown client '%s' (kosctl client add)",
				     name);
	return KOS_OK;
}

static kos_rv mem_cred_client_list(kos_store *st, struct kos_store_cred_client **out, size_t *n)
{
	struct mem_store *m = mem_of(st);
	size_t i;
	kos_rv rv;

	pthread_mutex_lock(&m->lock);
	*n = m->n_clients;
	rv = vec_copy(m->clients, m->n_clients, sizeof(**out), (void **)out);
	for (i = 0; rv == KOS_OK && i < *n; i++)
		(*out)[i].secret_expires = secret_expires(m, (*out)[i].name);
	pthread_mutex_unlock(&m->lock);
	if (rv != KOS_OK)
		*n = 0;
	return rv;
}

static kos_rv mem_cred_client_set_disabled(kos_store *st, const char *name, bool disabled)
{
	struct mem_store *m = mem_of(st);
	bool found;
	size_t i;

	pthread_mutex_lock(&m->lock);
	i = client_find(m, name, &found);
	if (found)
		m->clients[i].disabled = disabled;
	pthread_mutex_unlock(&m->lock);
	if (!found)
		return kos_error_set(KOS_E_NOTFOUND, "unknown client '%s'", name);
	return KOS_OK;
}

/* Removes enrollment i (order is not kept). */
static void enroll_remove(struct mem_store *m, size_t i)
{
	m->enrollments[i] = m->enrollments[--m->n_enroll];
}

static kos_rv mem_enrollment_add(kos_store *st, const struct kos_store_enrollment *e)
{
	struct mem_store *m = mem_of(st);
	bool found;
	size_t i;
	kos_rv rv;

	pthread_mutex_lock(&m->lock);
	client_find(m, e->client, &found);
	if (!found) {
		rv = kos_error_set(KOS_E_NOTFOUND, "unknown client '%s'", e->client);
		goto out;
	}
	rv = vec_reserve((void **)&m->enrollments, &m->cap_enroll, m->n_enroll,
			 sizeof(*m->enrollments));
	if (rv != KOS_OK)
		goto out;
	for (i = m->n_enroll; i-- > 0;)
		if (m->enrollments[i].used == 0 && strcmp(m->enrollments[i].client, e->client) == 0)
			enroll_remove(m, i);
	m->enrollments[m->n_enroll] = *e;
	m->enrollments[m->n_enroll].used = 0;
	m->n_enroll++;
out:
	pthread_mutex_unlock(&m->lock);
	return rv;
}

static size_t enroll_find(const struct mem_store *m, const uint8_t *hash)
{
	size_t i;

	for (i = 0; i < m->n_enroll; i++)
		if (memcmp(m->enrollments[i].hash, hash, KOS_STORE_HASH_LEN) == 0)
			return i;
	return m->n_enroll;
}

static kos_rv mem_enrollment_get(kos_store *st, const uint8_t *hash,
				 struct kos_store_enrollment *out)
{
	struct mem_store *m = mem_of(st);
	size_t i;

	pthread_mutex_lock(&m->lock);
	i = enroll_find(m, hash);
	if (i < m->n_enroll)
		*out = m->enrollments[i];
	pthread_mutex_unlock(&m->lock);
	if (i == m->n_enroll)
		return kos_error_set(KOS_E_NOTFOUND, "unknown enrollment secret");
	return KOS_OK;
}

static kos_rv mem_enrollment_use(kos_store *st, const uint8_t *hash, kos_usec now,
				 struct kos_store_enrollment *out)
{
	struct mem_store *m = mem_of(st);
	kos_rv rv = KOS_OK;
	size_t i;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&m->lock);
	i = enroll_find(m, hash);
	if (i == m->n_enroll) {
		rv = kos_error_set(KOS_E_NOTFOUND, "unknown enrollment secret");
	} else {
		*out = m->enrollments[i];
		if (out->used != 0)
			rv = kos_error_set(KOS_E_EXISTS,
					   "enrollment secret of client '%s' already used",
					   out->client);
		else if (now >= out->expires)
			rv = kos_error_set(KOS_E_RANGE, "enrollment secret of client '%s' expired",
					   out->client);
		else
			m->enrollments[i].used = now > 0 ? now : 1;
	}
	pthread_mutex_unlock(&m->lock);
	return rv;
}

static kos_rv mem_revocation_add(kos_store *st, const struct kos_store_revocation *r)
{
	struct mem_store *m = mem_of(st);
	kos_rv rv = KOS_OK;
	size_t i;

	if (kos_revocation_kind_name(r->kind) == NULL)
		return kos_error_set(KOS_E_INVALID, "unknown kind of revocation");
	pthread_mutex_lock(&m->lock);
	for (i = 0; i < m->n_rev; i++)
		if (m->revocations[i].kind == r->kind &&
		    strcmp(m->revocations[i].value, r->value) == 0)
			break;
	if (i < m->n_rev) {
		struct kos_store_revocation *o = &m->revocations[i];

		if (r->before > o->before)
			o->before = r->before;
		if (r->expires > o->expires)
			o->expires = r->expires;
	} else {
		rv = vec_reserve((void **)&m->revocations, &m->cap_rev, m->n_rev,
				 sizeof(*m->revocations));
		if (rv == KOS_OK)
			m->revocations[m->n_rev++] = *r;
	}
	if (rv == KOS_OK)
		revision_bump(m);
	pthread_mutex_unlock(&m->lock);
	return rv;
}

/* The SQLite backend's order: kind names, then values. */
static int revocation_cmp(const void *a, const void *b)
{
	const struct kos_store_revocation *x = a, *y = b;
	int c = strcmp(kos_revocation_kind_name(x->kind), kos_revocation_kind_name(y->kind));

	return c != 0 ? c : strcmp(x->value, y->value);
}

/* A sorted copy, then fn for each row. */
static kos_rv mem_revocation_each(kos_store *st, kos_store_revocation_fn fn, void *arg)
{
	struct mem_store *m = mem_of(st);
	struct kos_store_revocation *copy = NULL;
	size_t n, i;
	kos_rv rv;

	pthread_mutex_lock(&m->lock);
	n = m->n_rev;
	rv = vec_copy(m->revocations, m->n_rev, sizeof(*copy), (void **)&copy);
	pthread_mutex_unlock(&m->lock);
	if (rv == KOS_OK && n > 1)
		qsort(copy, n, sizeof(*copy), revocation_cmp);
	for (i = 0; rv == KOS_OK && i < n; i++)
		rv = fn(&copy[i], arg);
	free(copy);
	return rv;
}

static kos_rv mem_cred_prune(kos_store *st, kos_usec now, uint64_t *removed)
{
	struct mem_store *m = mem_of(st);
	uint64_t count = 0;
	size_t i;

	pthread_mutex_lock(&m->lock);
	for (i = m->n_rev; i-- > 0;) {
		if (m->revocations[i].expires <= now) {
			m->revocations[i] = m->revocations[--m->n_rev];
			count++;
		}
	}
	for (i = m->n_enroll; i-- > 0;) {
		if (m->enrollments[i].used != 0 || m->enrollments[i].expires <= now) {
			enroll_remove(m, i);
			count++;
		}
	}
	pthread_mutex_unlock(&m->lock);
	if (removed != NULL)
		*removed = count;
	return KOS_OK;
}

static kos_rv mem_cred_revision(kos_store *st, uint64_t *rev)
{
	*rev = atomic_load_explicit(&mem_of(st)->revision, memory_order_acquire);
	return KOS_OK;
}

/* Caller holds the lock. */
static void certs_drop(struct mem_store *m, const char *name, uint32_t version)
{
	size_t i = 0;

	while (i < m->n_certs) {
		struct mem_cert *c = &m->certs[i];

		if (strcmp(c->name, name) != 0 || (version != 0 && c->version != version)) {
			i++;
			continue;
		}
		free(c->der);
		memmove(c, c + 1, (m->n_certs - i - 1) * sizeof(*c));
		m->n_certs--;
	}
}

static kos_rv mem_key_delete(kos_store *st, const char *name)
{
	struct mem_store *m = mem_of(st);
	struct mem_key *k;
	size_t i;

	pthread_mutex_lock(&m->lock);
	k = key_get(m, name);
	if (k == NULL) {
		pthread_mutex_unlock(&m->lock);
		return kos_error_set(KOS_E_NOTFOUND, "unknown key '%s'", name);
	}
	for (i = 0; i < k->n_v; i++)
		free(k->v[i].shares);
	free(k->v);
	i = (size_t)(k - m->keys);
	memmove(&m->keys[i], &m->keys[i + 1], (m->n_keys - i - 1) * sizeof(*m->keys));
	m->n_keys--;
	certs_drop(m, name, 0);
	pthread_mutex_unlock(&m->lock);
	return KOS_OK;
}

static uint64_t mem_cred_hint(kos_store *st)
{
	return atomic_load_explicit(&mem_of(st)->revision, memory_order_acquire);
}

/* The certificate slot of name/version, or NULL. Caller holds the lock. */
static struct mem_cert *cert_find(struct mem_store *m, const char *name, uint32_t version)
{
	for (size_t i = 0; i < m->n_certs; i++)
		if (m->certs[i].version == version && strcmp(m->certs[i].name, name) == 0)
			return &m->certs[i];
	return NULL;
}

static kos_rv mem_key_cert_put(kos_store *st, const char *name, uint32_t version,
			       const uint8_t *der, size_t len, kos_usec created)
{
	struct mem_store *m = mem_of(st);
	struct kos_store_version *v;
	struct mem_key *k;
	struct mem_cert *c;
	uint8_t *copy = malloc(len);
	kos_rv rv = KOS_OK;

	(void)created;
	if (copy == NULL)
		return kos_error_set(KOS_E_NOMEM, "memory store: out of memory");
	memcpy(copy, der, len);
	pthread_mutex_lock(&m->lock);
	k = key_get(m, name);
	v = k != NULL ? version_of(k, version) : NULL;
	if (v == NULL || v->state != KOS_KEY_STATE_ACTIVE) {
		rv = kos_error_set(KOS_E_NOTFOUND, "key %s has no active version %u", name,
				   (unsigned)version);
		goto out;
	}
	c = cert_find(m, name, version);
	if (c == NULL) {
		if (m->n_certs == m->cap_certs) {
			size_t ncap = m->cap_certs ? m->cap_certs * 2 : 8;
			struct mem_cert *nc = realloc(m->certs, ncap * sizeof(*nc));

			if (nc == NULL) {
				rv = kos_error_set(KOS_E_NOMEM, "memory store: out of memory");
				goto out;
			}
			m->certs = nc;
			m->cap_certs = ncap;
		}
		c = &m->certs[m->n_certs++];
		memset(c, 0, sizeof(*c));
		snprintf(c->name, sizeof(c->name), "%s", name);
		c->version = version;
	}
	free(c->der);
	c->der = copy;
	c->len = len;
	copy = NULL;
out:
	pthread_mutex_unlock(&m->lock);
	free(copy);
	return rv;
}

static kos_rv mem_key_cert_get(kos_store *st, const char *name, uint32_t version, uint8_t **der,
			       size_t *len)
{
	struct mem_store *m = mem_of(st);
	struct mem_cert *c;
	kos_rv rv = KOS_OK;

	pthread_mutex_lock(&m->lock);
	c = cert_find(m, name, version);
	if (c == NULL) {
		rv = kos_error_set(KOS_E_NOTFOUND, "key %s version %u has no certificate", name,
				   (unsigned)version);
	} else if ((*der = malloc(c->len)) == NULL) {
		rv = kos_error_set(KOS_E_NOMEM, "memory store: out of memory");
	} else {
		memcpy(*der, c->der, c->len);
		*len = c->len;
	}
	pthread_mutex_unlock(&m->lock);
	return rv;
}

static kos_rv mem_key_cert_delete(kos_store *st, const char *name, uint32_t version)
{
	struct mem_store *m = mem_of(st);
	kos_rv rv = KOS_OK;

	pthread_mutex_lock(&m->lock);
	if (cert_find(m, name, version) == NULL)
		rv = kos_error_set(KOS_E_NOTFOUND, "key %s version %u has no certificate", name,
				   (unsigned)version);
	else
		certs_drop(m, name, version);
	pthread_mutex_unlock(&m->lock);
	return rv;
}

static kos_rv mem_meta_get(kos_store *st, const char *key, char **value)
{
	struct mem_store *m = mem_of(st);
	kos_rv rv = KOS_OK;
	size_t i;

	*value = NULL;
	pthread_mutex_lock(&m->lock);
	for (i = 0; i < m->n_meta; i++)
		if (strcmp(m->meta[i].key, key) == 0)
			break;
	if (i == m->n_meta) {
		rv = kos_error_set(KOS_E_NOTFOUND, "state store: no '%s' setting", key);
	} else {
		*value = kos_strdup(m->meta[i].value);
		if (*value == NULL)
			rv = kos_error_set(KOS_E_NOMEM, "memory store: out of memory");
	}
	pthread_mutex_unlock(&m->lock);
	return rv;
}

static kos_rv mem_meta_put(kos_store *st, const char *key, const char *value)
{
	struct mem_store *m = mem_of(st);
	char *v = kos_strdup(value), *k = NULL;
	kos_rv rv = KOS_OK;
	size_t i;

	if (v == NULL)
		return kos_error_set(KOS_E_NOMEM, "memory store: out of memory");
	pthread_mutex_lock(&m->lock);
	for (i = 0; i < m->n_meta; i++)
		if (strcmp(m->meta[i].key, key) == 0)
			break;
	if (i < m->n_meta) {
		free(m->meta[i].value);
		m->meta[i].value = v;
		v = NULL;
	} else {
		k = kos_strdup(key);
		rv = k == NULL ? kos_error_set(KOS_E_NOMEM, "memory store: out of memory")
			       : vec_reserve((void **)&m->meta, &m->cap_meta, m->n_meta,
					     sizeof(*m->meta));
		if (rv == KOS_OK) {
			m->meta[m->n_meta].key = k;
			m->meta[m->n_meta].value = v;
			m->n_meta++;
			k = v = NULL;
		}
	}
	pthread_mutex_unlock(&m->lock);
	free(k);
	free(v);
	return rv;
}

/* --- the ledger ---------------------------------------------------------------- */

static void ledger_head_locked(const struct mem_store *m, uint64_t *seq, uint8_t *hash)
{
	*seq = m->n_ledger;
	if (m->n_ledger == 0)
		memset(hash, 0, KOS_LEDGER_HASH_LEN);
	else
		memcpy(hash, m->ledger[m->n_ledger - 1].hash, KOS_LEDGER_HASH_LEN);
}

static kos_rv mem_ledger_append(kos_store *st, kos_ledger_entry *e, size_t n)
{
	struct mem_store *m = mem_of(st);
	uint8_t head[KOS_LEDGER_HASH_LEN];
	uint64_t seq;
	kos_rv rv = KOS_OK;

	pthread_mutex_lock(&m->lock);
	/* room first, so that a failure writes nothing */
	if (n > m->cap_ledger - m->n_ledger) {
		size_t ncap = m->cap_ledger ? m->cap_ledger : 64;
		kos_ledger_entry *na;

		while (rv == KOS_OK && ncap - m->n_ledger < n) {
			if (ncap > SIZE_MAX / 2 / sizeof(*na))
				rv = kos_error_set(KOS_E_NOMEM, "memory store: ledger too long");
			else
				ncap *= 2;
		}
		if (rv == KOS_OK) {
			na = realloc(m->ledger, ncap * sizeof(*na));
			if (na == NULL) {
				rv = kos_error_set(KOS_E_NOMEM, "memory store: out of memory");
			} else {
				m->ledger = na;
				m->cap_ledger = ncap;
			}
		}
	}
	if (rv == KOS_OK) {
		ledger_head_locked(m, &seq, head);
		rv = kos_ledger_chain_link(e, n, seq, head);
	}
	if (rv == KOS_OK) {
		memcpy(m->ledger + m->n_ledger, e, n * sizeof(*e));
		m->n_ledger += n;
	}
	pthread_mutex_unlock(&m->lock);
	return rv;
}

static kos_rv mem_ledger_head(kos_store *st, uint64_t *seq, uint8_t *hash)
{
	struct mem_store *m = mem_of(st);

	pthread_mutex_lock(&m->lock);
	ledger_head_locked(m, seq, hash);
	pthread_mutex_unlock(&m->lock);
	return KOS_OK;
}

static kos_rv mem_ledger_read(kos_store *st, uint64_t from, struct kos_store_ledger_row *rows,
			      size_t max, size_t *n)
{
	struct mem_store *m = mem_of(st);
	size_t i, k = 0;

	pthread_mutex_lock(&m->lock);
	if (from == 0)
		from = 1;
	if (from - 1 < m->n_ledger) {
		for (i = (size_t)(from - 1); i < m->n_ledger && k < max; i++, k++) {
			rows[k].e = m->ledger[i];
			rows[k].malformed = false;
		}
	}
	pthread_mutex_unlock(&m->lock);
	*n = k;
	return KOS_OK;
}

static const struct kos_store_ops mem_ops = {
    .name = "memory",
    .free = mem_free,
    .schema_version = mem_schema_version,
    .trust_get = mem_trust_get,
    .trust_update = mem_trust_update,
    .trust_update_batch = mem_trust_update_batch,
    .trust_page = mem_trust_page,
    .trust_delete = mem_trust_delete,
    .key_version_begin = mem_key_version_begin,
    .key_version_activate = mem_key_version_activate,
    .key_version_abort = mem_key_version_abort,
    .key_version_retire = mem_key_version_retire,
    .key_delete = mem_key_delete,
    .key_get = mem_key_get,
    .key_list = mem_key_list,
    .key_version_get = mem_key_version_get,
    .key_versions = mem_key_versions,
    .share_counts = mem_share_counts,
    .service_put = mem_service_put,
    .service_get = mem_service_get,
    .service_list = mem_service_list,
    .service_delete = mem_service_delete,
    .ca_key_install = mem_ca_key_install,
    .ca_key_list = mem_ca_key_list,
    .ca_key_current = mem_ca_key_current,
    .ca_key_delete = mem_ca_key_delete,
    .cred_client_add = mem_cred_client_add,
    .cred_client_get = mem_cred_client_get,
    .cred_client_list = mem_cred_client_list,
    .cred_client_set_disabled = mem_cred_client_set_disabled,
    .enrollment_add = mem_enrollment_add,
    .enrollment_get = mem_enrollment_get,
    .enrollment_use = mem_enrollment_use,
    .revocation_add = mem_revocation_add,
    .revocation_each = mem_revocation_each,
    .cred_prune = mem_cred_prune,
    .cred_revision = mem_cred_revision,
    .cred_hint = mem_cred_hint,
    .key_cert_put = mem_key_cert_put,
    .key_cert_get = mem_key_cert_get,
    .key_cert_delete = mem_key_cert_delete,
    .meta_get = mem_meta_get,
    .meta_put = mem_meta_put,
    .ledger_append = mem_ledger_append,
    .ledger_head = mem_ledger_head,
    .ledger_read = mem_ledger_read,
};

kos_rv kos_store_mem_open(kos_store **out)
{
	struct mem_store *m;

	*out = NULL;
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return kos_error_set(KOS_E_NOMEM, "memory store: out of memory");
	if (pthread_mutex_init(&m->lock, NULL) != 0) {
		free(m);
		return kos_error_set(KOS_E_NOMEM, "memory store: cannot create a lock");
	}
	m->base.ops = &mem_ops;
	*out = &m->base;
	return KOS_OK;
}
