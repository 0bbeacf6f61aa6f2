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
 * before anything is modified, so a failure leaves the store as it was. */
#include "config.h"

#include "kos/store_backend.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

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

static kos_rv mem_trust_update(kos_store *st, const char *client, kos_trust_update_fn fn, void *arg)
{
	struct mem_store *m = mem_of(st);
	uint64_t h = name_hash(client);
	struct kos_trust_state work;
	struct mem_slot *s;
	kos_rv rv;

	pthread_mutex_lock(&m->lock);
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
	pthread_mutex_unlock(&m->lock);
	return rv;
}

static int state_cmp(const void *a, const void *b)
{
	const struct kos_trust_state *x = a, *y = b;

	return strcmp(x->client, y->client);
}

static kos_rv mem_trust_list(kos_store *st, struct kos_trust_state **out, size_t *n)
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
			if (m->slots[i].hash != 0)
				arr[k++] = m->slots[i].st;
	}
	pthread_mutex_unlock(&m->lock);
	if (k > 1)
		qsort(arr, k, sizeof(*arr), state_cmp);
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

static const struct kos_store_ops mem_ops = {
    .name = "memory",
    .free = mem_free,
    .schema_version = mem_schema_version,
    .trust_get = mem_trust_get,
    .trust_update = mem_trust_update,
    .trust_list = mem_trust_list,
    .trust_delete = mem_trust_delete,
    .key_version_begin = mem_key_version_begin,
    .key_version_activate = mem_key_version_activate,
    .key_version_abort = mem_key_version_abort,
    .key_version_retire = mem_key_version_retire,
    .key_get = mem_key_get,
    .key_list = mem_key_list,
    .key_version_get = mem_key_version_get,
    .key_versions = mem_key_versions,
    .share_counts = mem_share_counts,
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
