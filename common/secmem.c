/* Locked, undumpable memory for secrets that live long (PINs, DEK caches),
 * after libsodium's sodium_malloc: each allocation is a mapping of its own,
 *
 *   [guard page] | header ... data | [guard page]
 *
 * with the data against the end of the writable pages, so that with guards
 * an overrun faults at once, and the header just before the data, so that
 * kos_secmem_free() needs only the pointer. */
#include "config.h"

#include "common/internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/crypto.h>

#define SECMEM_ALIGN 16
#define SECMEM_MAGIC UINT64_C(0x6b6f732d7365636d) /* "kos-secm" */

struct secmem_hdr {
	void *base;	/* the whole mapping, guards included */
	size_t map_len;
	void *rw;	/* the writable pages */
	size_t rw_len;
	size_t len;	/* what the caller asked for */
	uint64_t magic; /* last: the word an underrun reaches first */
};

/* sizeof rounded up, so the data after it stays aligned */
#define HDR_SIZE ((sizeof(struct secmem_hdr) + SECMEM_ALIGN - 1) / SECMEM_ALIGN * SECMEM_ALIGN)

static size_t page_size(void)
{
	long page = sysconf(_SC_PAGESIZE);

	return page > 0 ? (size_t)page : 4096;
}

void *kos_secmem_alloc(size_t len, unsigned flags)
{
	size_t pg = page_size(), guard, data_len, rw_len, map_len;
	struct secmem_hdr *h;
	uint8_t *base, *rw, *data;

	if (len == 0 || (flags & ~KOS_SECMEM_GUARD) != 0)
		return NULL;
	guard = (flags & KOS_SECMEM_GUARD) ? pg : 0;
	if (len > SIZE_MAX / 2 - HDR_SIZE - 2 * pg)
		return NULL;
	data_len = (len + SECMEM_ALIGN - 1) / SECMEM_ALIGN * SECMEM_ALIGN;
	rw_len = (HDR_SIZE + data_len + pg - 1) / pg * pg;
	map_len = rw_len + 2 * guard;
	base = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		return NULL;
	rw = base + guard;
	if (guard != 0 && (mprotect(base, guard, PROT_NONE) != 0 ||
			   mprotect(rw + rw_len, guard, PROT_NONE) != 0)) {
		munmap(base, map_len);
		return NULL;
	}
	/* Best effort: RLIMIT_MEMLOCK may be small; the wipe still happens. */
	(void)mlock(rw, rw_len);
#ifdef MADV_DONTDUMP
	(void)madvise(base, map_len, MADV_DONTDUMP);
#endif
	data = rw + rw_len - data_len;
	h = (struct secmem_hdr *)(void *)(data - HDR_SIZE);
	h->base = base;
	h->map_len = map_len;
	h->rw = rw;
	h->rw_len = rw_len;
	h->len = len;
	h->magic = SECMEM_MAGIC;
	return data;
}

void kos_secmem_free(void *p)
{
	struct secmem_hdr *h, hdr;

	if (p == NULL)
		return;
	h = (struct secmem_hdr *)(void *)((uint8_t *)p - HDR_SIZE);
	if (h->magic != SECMEM_MAGIC)
		abort();
	/* the wipe takes the header with it */
	hdr = *h;
	OPENSSL_cleanse(hdr.rw, hdr.rw_len);
	(void)munlock(hdr.rw, hdr.rw_len);
	munmap(hdr.base, hdr.map_len);
}
