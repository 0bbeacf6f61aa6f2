/* In-memory state store ("memory:"): nothing persists. For tests and for
 * single-process use where a trust decision must cost well under a
 * microsecond: a get is one lock, one hash, a short probe and a copy; it
 * never allocates.
 *
 * Layout: open addressing with linear probing over slots that hold the
 * states themselves (no pointer chase); deletion shifts the following run
 * back, so no tombstones build up. Load factor stays at or below 1/2. */
#include "config.h"

#include "kos/store_backend.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct mem_slot {
	uint64_t hash; /* 0: empty */
	struct kos_trust_state st;
};

struct mem_store {
	struct kos_store base;
	pthread_mutex_t lock;
	struct mem_slot *slots;
	size_t cap; /* a power of two, or 0 */
	size_t count;
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

static const struct kos_store_ops mem_ops = {
    .name = "memory",
    .free = mem_free,
    .schema_version = mem_schema_version,
    .trust_get = mem_trust_get,
    .trust_update = mem_trust_update,
    .trust_list = mem_trust_list,
    .trust_delete = mem_trust_delete,
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
