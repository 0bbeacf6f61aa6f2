/* Scope syntax and matching. */
#include "config.h"

#include "kos/internal.h"

#include <fnmatch.h>
#include <string.h>

static int action_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static int resource_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '?' && c != '[' && c != ']' && c != '\\';
}

/* Splits the item at s (not starting with a space) into its parts; returns
 * the item's length, or 0 when the item is malformed. */
static size_t item_parse(const char *s, size_t *action_len)
{
	size_t i = 0, colon;

	if (s[0] == '*') {
		i = 1;
	} else {
		while (action_char((unsigned char)s[i]))
			i++;
	}
	if (i == 0 || s[i] != ':')
		return 0;
	colon = i++;
	if (!resource_char((unsigned char)s[i]))
		return 0;
	while (s[i] != '\0' && s[i] != ' ') {
		if (!resource_char((unsigned char)s[i]) || s[i] == ':')
			return 0;
		i++;
	}
	if (i > KOS_SCOPE_ITEM_MAX)
		return 0;
	*action_len = colon;
	return i;
}

kos_rv kos_scope_validate(const char *scope)
{
	size_t len, pos = 0, alen, n, items = 0;

	if (scope == NULL)
		return kos_error_set(KOS_E_PARSE, "no scope");
	len = strnlen(scope, KOS_SCOPE_MAX + 1);
	if (len > KOS_SCOPE_MAX)
		return kos_error_set(KOS_E_PARSE, "scope longer than %d bytes", KOS_SCOPE_MAX);
	while (pos < len) {
		if (scope[pos] == ' ') {
			pos++;
			continue;
		}
		n = item_parse(scope + pos, &alen);
		if (n == 0)
			return kos_error_set(KOS_E_PARSE,
					     "scope item %zu (at byte %zu) is not ACTION:RESOURCE "
					     "(action [a-z0-9_-] or *, resource printable, * the only wildcard)",
					     items + 1, pos);
		items++;
		pos += n;
	}
	if (items == 0)
		return kos_error_set(KOS_E_PARSE, "empty scope");
	return KOS_OK;
}

/* Calls fn for every item of a valid scope until fn returns 1. */
static int scope_any(const char *scope, int (*fn)(const char *item, size_t alen, size_t len, void *arg),
		     void *arg)
{
	size_t pos = 0, alen, n;

	while (scope[pos] != '\0') {
		if (scope[pos] == ' ') {
			pos++;
			continue;
		}
		n = item_parse(scope + pos, &alen);
		if (n == 0)
			return 0;
		if (fn(scope + pos, alen, n, arg))
			return 1;
		pos += n;
	}
	return 0;
}

/* fnmatch() of a pattern that is not NUL-terminated where it ends. */
static int glob_match(const char *pat, size_t pat_len, const char *str)
{
	char buf[KOS_SCOPE_ITEM_MAX + 1];

	if (pat_len > KOS_SCOPE_ITEM_MAX)
		return 0;
	memcpy(buf, pat, pat_len);
	buf[pat_len] = '\0';
	/* no FNM_PATHNAME: '*' crosses '/'; the syntax check has already
	 * refused every other wildcard */
	return fnmatch(buf, str, FNM_NOESCAPE) == 0;
}

struct allows_arg {
	const char *action, *resource;
};

static int item_allows(const char *item, size_t alen, size_t len, void *varg)
{
	struct allows_arg *a = varg;
	int action_ok = (alen == 1 && item[0] == '*') ||
			(strlen(a->action) == alen && memcmp(item, a->action, alen) == 0);

	/* the grant action is matched by no wildcard, of action or resource:
	 * only "share:ID" itself (a grant's one item) allows share ID, so no
	 * "*:*" or "*:*payments*" can be turned into a grant (DESIGN.md 4) */
	if (strcmp(a->action, KOS_SCOPE_GRANT_ACTION) == 0)
		return alen == sizeof(KOS_SCOPE_GRANT_ACTION) - 1 &&
		       memcmp(item, KOS_SCOPE_GRANT_ACTION, alen) == 0 &&
		       memchr(item + alen + 1, '*', len - alen - 1) == NULL &&
		       strlen(a->resource) == len - alen - 1 &&
		       memcmp(item + alen + 1, a->resource, len - alen - 1) == 0;
	return action_ok && glob_match(item + alen + 1, len - alen - 1, a->resource);
}

int kos_scope_allows(const char *scope, const char *action, const char *resource)
{
	struct allows_arg a = { action, resource };

	if (action == NULL || resource == NULL || kos_scope_validate(scope) != KOS_OK)
		return 0;
	return scope_any(scope, item_allows, &a);
}

struct within_arg {
	const char *wide;
	char action[KOS_SCOPE_ITEM_MAX + 1];
	char resource[KOS_SCOPE_ITEM_MAX + 1];
};

static int narrow_item_outside(const char *item, size_t alen, size_t len, void *varg)
{
	struct within_arg *w = varg;

	memcpy(w->action, item, alen);
	w->action[alen] = '\0';
	memcpy(w->resource, item + alen + 1, len - alen - 1);
	w->resource[len - alen - 1] = '\0';
	/* A narrow pattern read literally matches a wide pattern only when each of
	 * its '*'s falls inside one of wide's: every string narrow matches is then
	 * matched by wide. A narrow action "*" needs a wide action "*". */
	return !kos_scope_allows(w->wide, w->action, w->resource);
}

int kos_scope_within(const char *narrow, const char *wide)
{
	struct within_arg w;

	if (kos_scope_validate(narrow) != KOS_OK || kos_scope_validate(wide) != KOS_OK)
		return 0;
	w.wide = wide;
	/* within when no narrow item falls outside */
	return !scope_any(narrow, narrow_item_outside, &w);
}

static int item_is_grant(const char *item, size_t alen, size_t len, void *varg)
{
	(void)len;
	(void)varg;
	return alen == sizeof(KOS_SCOPE_GRANT_ACTION) - 1 &&
	       memcmp(item, KOS_SCOPE_GRANT_ACTION, alen) == 0;
}

int kos_scope_has_grant_item(const char *scope)
{
	if (scope == NULL || kos_scope_validate(scope) != KOS_OK)
		return 0;
	return scope_any(scope, item_is_grant, NULL);
}
