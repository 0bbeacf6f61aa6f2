/* Result codes and the per-thread error detail. */
#include "config.h"

#include "common/internal.h"

#include <stdio.h>
#include <string.h>

static _Thread_local char kos_error_detail[512];

const char *kos_strerror(kos_rv rv)
{
	switch (rv) {
	case KOS_OK: return "success";
	case KOS_E_INVALID: return "invalid argument";
	case KOS_E_NOMEM: return "out of memory";
	case KOS_E_IO: return "input/output error";
	case KOS_E_PARSE: return "malformed input";
	case KOS_E_POLICY: return "policy or configuration refused";
	case KOS_E_NOTFOUND: return "not found";
	case KOS_E_EXISTS: return "already exists";
	case KOS_E_STORE: return "state store failure";
	case KOS_E_BUSY: return "busy";
	case KOS_E_CRYPTO: return "cryptographic failure";
	case KOS_E_INTEGRITY: return "integrity check failed";
	case KOS_E_RANGE: return "out of range";
	case KOS_E_INTERNAL: return "internal error";
	}
	return "unknown error";
}

const char *kos_last_error(void)
{
	return kos_error_detail;
}

/* Formatted apart first: an argument may be kos_last_error() itself (a
 * detail prefixed with context), which vsnprintf must not write over
 * while it reads it. */
kos_rv kos_error_vset(kos_rv rv, const char *fmt, va_list ap)
{
	char buf[sizeof(kos_error_detail)];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	memcpy(kos_error_detail, buf, strlen(buf) + 1);
	return rv;
}

kos_rv kos_error_set(kos_rv rv, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	kos_error_vset(rv, fmt, ap);
	va_end(ap);
	return rv;
}

void kos_error_clear(void)
{
	kos_error_detail[0] = '\0';
}
