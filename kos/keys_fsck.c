/* kos_keys_fsck(): objects on the tokens that no active version owns and
 * versions whose creation never finished, reported and with repair removed.
 * Part of the key service (kos/keys.c). */
#include "config.h"

#include "kos/hsm.h"
#include "kos/internal.h"
#include "kos/keys_internal.h"
#include "kos/signer.h"
#include "kos/store_backend.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A version still creating after this long is stale whoever made it. */
#define CREATE_STALE (10 * 60 * KOS_USEC_PER_SEC)

/* --- fsck ---------------------------------------------------------------------------- */

/* What the store says may be on tokens: every object of an active version,
 * and the versions still being made by a live process (left alone). */
struct owned {
	char token[KOS_TOKEN_NAME_MAX + 1];
	char label[KOS_STORE_LABEL_MAX + 1];
};

struct busy {
	char name[KOS_KEY_NAME_MAX + 1];
	uint32_t version;
};

struct fsck {
	kos_keys *keys;
	int repair;
	void (*fn)(const char *line, void *arg);
	void *arg;
	unsigned found;
	unsigned unrepaired;
	struct owned *owned;
	size_t n_owned, cap_owned;
	struct busy *busy;
	size_t n_busy, cap_busy;
	size_t tok; /* the token being walked */
	kos_rv first_error;
	char first_detail[512];
};

static void say(struct fsck *f, const char *fmt, ...) KOS_PRINTF(2, 3);

static void say(struct fsck *f, const char *fmt, ...)
{
	char line[640];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (f->fn != NULL)
		f->fn(line, f->arg);
}

static void repair_failed(struct fsck *f, kos_rv rv)
{
	f->unrepaired++;
	if (f->first_error == KOS_OK) {
		f->first_error = rv;
		snprintf(f->first_detail, sizeof(f->first_detail), "%s", kos_last_error());
	}
	say(f, "  not repaired: %s", kos_last_error());
}

static kos_rv own(struct fsck *f, const char *token, const char *label)
{
	if (f->n_owned == f->cap_owned) {
		size_t ncap = f->cap_owned ? f->cap_owned * 2 : 64;
		struct owned *no = realloc(f->owned, ncap * sizeof(*no));

		if (no == NULL)
			return kos_error_set(KOS_E_NOMEM, "out of memory");
		f->owned = no;
		f->cap_owned = ncap;
	}
	snprintf(f->owned[f->n_owned].token, sizeof(f->owned[0].token), "%s", token);
	snprintf(f->owned[f->n_owned].label, sizeof(f->owned[0].label), "%s", label);
	f->n_owned++;
	return KOS_OK;
}

static bool is_owned(const struct fsck *f, const char *token, const char *label)
{
	size_t i;

	for (i = 0; i < f->n_owned; i++)
		if (strcmp(f->owned[i].label, label) == 0 && strcmp(f->owned[i].token, token) == 0)
			return true;
	return false;
}

static bool is_busy(const struct fsck *f, const char *name, uint32_t version)
{
	size_t i;

	for (i = 0; i < f->n_busy; i++)
		if (f->busy[i].version == version && strcmp(f->busy[i].name, name) == 0)
			return true;
	return false;
}

/* A creating version is stale (its maker crashed) when the process that
 * wrote it, on this host, is gone, or when it is older than CREATE_STALE. */
static bool creation_stale(kos_keys *keys, const struct kos_store_version *v, kos_usec now)
{
	const char *colon = strrchr(v->creator, ':');
	size_t host_len;
	char *end;
	long pid;

	if (now - v->created >= CREATE_STALE)
		return true;
	if (colon == NULL)
		return false;
	host_len = (size_t)(colon - v->creator);
	if (strncmp(v->creator, keys->creator, host_len) != 0 || keys->creator[host_len] != ':')
		return false; /* another host: only age tells */
	pid = strtol(colon + 1, &end, 10);
	if (*end != '\0' || pid <= 0)
		return false;
	if (pid == (long)getpid())
		return false; /* another thread of this process may be making it */
	return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

static void format_time(kos_usec t, char *buf, size_t len)
{
	if (kos_time_format(t, buf, len) != KOS_OK)
		snprintf(buf, len, "@%lld", (long long)(t / KOS_USEC_PER_SEC));
}

/* Walks the store: owned objects, busy and stale versions (reported, and
 * with repair removed once their objects are gone: see the end of kos_keys_fsck). */
static kos_rv fsck_store(struct fsck *f, struct busy **stale, size_t *n_stale)
{
	struct kos_store_key *all = NULL;
	kos_usec now = kos_keys_now(f->keys);
	size_t n = 0, i, j, s;
	kos_rv rv;

	*stale = NULL;
	*n_stale = 0;
	rv = kos_store_key_list(f->keys->st, &all, &n);
	for (i = 0; rv == KOS_OK && i < n; i++) {
		struct kos_store_version *v = NULL;
		size_t nv = 0;

		rv = kos_store_key_versions(f->keys->st, all[i].name, &v, &nv);
		if (rv == KOS_E_NOTFOUND) {
			rv = KOS_OK;
			continue;
		}
		for (j = 0; rv == KOS_OK && j < nv; j++) {
			if (v[j].state == KOS_KEY_STATE_ACTIVE) {
				if (v[j].label[0] != '\0')
					rv = own(f, v[j].token, v[j].label);
				for (s = 0; rv == KOS_OK && s < v[j].n_shares; s++)
					rv = own(f, v[j].shares[s].token, v[j].shares[s].label);
			} else if (v[j].state == KOS_KEY_STATE_CREATING) {
				char when[40];

				format_time(v[j].created, when, sizeof(when));
				if (!creation_stale(f->keys, &v[j], now)) {
					struct busy *nb;

					say(f,
					    "key %s version %" PRIu32 ": being created by %s "
					    "since %s; left alone",
					    all[i].name, v[j].version, v[j].creator, when);
					nb = realloc(f->busy, (f->n_busy + 1) * sizeof(*nb));
					if (nb == NULL) {
						rv = kos_error_set(KOS_E_NOMEM, "out of memory");
						break;
					}
					f->busy = nb;
					snprintf(nb[f->n_busy].name, sizeof(nb[0].name), "%s",
						 all[i].name);
					nb[f->n_busy].version = v[j].version;
					f->n_busy++;
					continue;
				}
				f->found++;
				say(f,
				    "key %s version %" PRIu32 ": incomplete (creation by %s "
				    "since %s never finished)",
				    all[i].name, v[j].version, v[j].creator, when);
				{
					struct busy *ns =
					    realloc(*stale, (*n_stale + 1) * sizeof(*ns));

					if (ns == NULL) {
						rv = kos_error_set(KOS_E_NOMEM, "out of memory");
						break;
					}
					*stale = ns;
					snprintf(ns[*n_stale].name, sizeof(ns[0].name), "%s",
						 all[i].name);
					ns[*n_stale].version = v[j].version;
					(*n_stale)++;
				}
			}
		}
		kos_store_versions_free(v, nv);
	}
	free(all);
	return rv;
}

/* An object's label names a version; one of a busy version is left alone. */
static bool label_busy(const struct fsck *f, const char *label)
{
	struct share_id id;
	char name[KOS_KEY_NAME_MAX + 1];
	uint32_t version;

	if (kos_keys_parse_share_label(label, &id))
		return is_busy(f, id.name, id.version);
	if (kos_keys_parse_sign_label(label, name, &version))
		return is_busy(f, name, version);
	return false;
}

/* An object that looked unowned is checked against the store again before
 * it is reported: another process may have begun (or completed) its
 * version since the store was walked; rows are written before objects. */
static bool still_orphan(struct fsck *f, const char *token, const char *label)
{
	struct kos_store_version v;
	struct share_id id;
	char name[KOS_KEY_NAME_MAX + 1];
	uint32_t version;
	bool orphan = true;
	size_t i;

	if (kos_keys_parse_share_label(label, &id)) {
		snprintf(name, sizeof(name), "%s", id.name);
		version = id.version;
	} else if (!kos_keys_parse_sign_label(label, name, &version)) {
		return true; /* not a label kos writes for a version */
	}
	if (kos_store_key_version_get(f->keys->st, name, version, &v) != KOS_OK)
		return true;
	if (v.state == KOS_KEY_STATE_CREATING) {
		orphan = creation_stale(f->keys, &v, kos_keys_now(f->keys));
	} else if (v.state == KOS_KEY_STATE_ACTIVE) {
		if (strcmp(v.token, token) == 0 && strcmp(v.label, label) == 0)
			orphan = false;
		for (i = 0; i < v.n_shares; i++)
			if (strcmp(v.shares[i].token, token) == 0 &&
			    strcmp(v.shares[i].label, label) == 0)
				orphan = false;
	}
	kos_store_version_clear(&v);
	return orphan;
}

static kos_rv fsck_share_object(const char *label, void *arg)
{
	struct fsck *f = arg;
	const char *token = kos_hsm_token_get0_name(f->keys->hsm, f->tok);
	kos_rv rv;

	if (is_owned(f, token, label) || label_busy(f, label) || !still_orphan(f, token, label))
		return KOS_OK;
	f->found++;
	say(f, "token %s: share object '%s' belongs to no active version", token, label);
	if (!f->repair)
		return KOS_OK;
	rv = kos_hsm_data_destroy(f->keys->hsm, f->tok, label);
	if (rv == KOS_OK || rv == KOS_E_NOTFOUND)
		say(f, "  repaired: destroyed");
	else
		repair_failed(f, rv);
	return KOS_OK;
}

static kos_rv fsck_key_pair(const char *label, void *arg)
{
	struct fsck *f = arg;
	const char *token = kos_hsm_token_get0_name(f->keys->hsm, f->tok);
	kos_rv rv;

	if (is_owned(f, token, label) || label_busy(f, label) || !still_orphan(f, token, label))
		return KOS_OK;
	f->found++;
	say(f, "token %s: key pair '%s' belongs to no active version", token, label);
	if (!f->repair)
		return KOS_OK;
	rv = kos_signer_destroy(f->keys->hsm, f->tok, label);
	if (rv == KOS_OK || rv == KOS_E_NOTFOUND)
		say(f, "  repaired: destroyed");
	else
		repair_failed(f, rv);
	return KOS_OK;
}

kos_rv kos_keys_fsck(kos_keys *keys, int repair, void (*fn)(const char *line, void *arg), void *arg,
		     unsigned *found)
{
	struct busy *stale = NULL;
	char unchecked[256] = "";
	struct fsck f;
	size_t n_stale = 0, i, count;
	kos_rv rv;

	if (found != NULL)
		*found = 0;
	if (keys == NULL)
		return kos_error_set(KOS_E_INVALID, "no key service");
	memset(&f, 0, sizeof(f));
	f.keys = keys;
	f.repair = repair;
	f.fn = fn;
	f.arg = arg;
	rv = fsck_store(&f, &stale, &n_stale);
	if (rv != KOS_OK)
		goto out;
	/* Objects no active version owns: shares on any token (only kos
	 * writes "kos-share:" objects), key pairs on signer tokens. */
	count = kos_hsm_token_count(keys->hsm);
	for (i = 0; i < count; i++) {
		f.tok = i;
		rv = kos_hsm_data_list(keys->hsm, i, SHARE_PREFIX, fsck_share_object, &f);
		if (rv == KOS_OK && kos_hsm_token_role(keys->hsm, i) == KOS_TOKEN_ROLE_SIGNER)
			rv = kos_signer_list(keys->hsm, i, SIGN_PREFIX, fsck_key_pair, &f);
		if (rv == KOS_E_NOMEM)
			goto out;
		if (rv != KOS_OK) {
			size_t used = strlen(unchecked);

			say(&f, "warning: token %s not checked: %s",
			    kos_hsm_token_get0_name(keys->hsm, i), kos_last_error());
			snprintf(unchecked + used, sizeof(unchecked) - used, "%s%s",
				 used ? ", " : "", kos_hsm_token_get0_name(keys->hsm, i));
		}
	}
	/* the rows last: an object whose row is gone is still an orphan */
	for (i = 0; repair && i < n_stale; i++) {
		rv = kos_store_key_version_abort(keys->st, stale[i].name, stale[i].version);
		if (rv == KOS_OK || rv == KOS_E_NOTFOUND)
			say(&f, "key %s version %" PRIu32 ": repaired: incomplete version removed",
			    stale[i].name, stale[i].version);
		else
			repair_failed(&f, rv);
	}
	rv = KOS_OK;
	if (f.first_error != KOS_OK)
		rv = kos_error_set(f.first_error, "fsck: %u of %u findings not repaired; first: %s",
				   f.unrepaired, f.found, f.first_detail);
	else if (unchecked[0] != '\0')
		rv = kos_error_set(KOS_E_IO, "fsck: incomplete: token%s %s could not be checked",
				   strchr(unchecked, ',') != NULL ? "s" : "", unchecked);
out:
	free(stale);
	free(f.owned);
	free(f.busy);
	if (found != NULL)
		*found = f.found;
	return rv;
}
