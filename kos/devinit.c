/* Development installations: SoftHSM tokens initialised through PKCS#11, random
 * PINs in owner-only files, kos.conf, policy and state store in one directory.
 *
 * Token initialisation runs in a forked child because SoftHSM reads
 * SOFTHSM2_CONF once, in C_Initialize: a process that already has SoftHSM
 * loaded (a test, kosctl with another installation) cannot point it at a new
 * token directory without finalizing it under its other users. The child
 * talks to the module directly (dlopen, not p11-kit): p11-kit's bookkeeping,
 * inherited from the parent, would take the module for initialised and never
 * let the child finalize and re-initialise it. */
#include "config.h"

#include "kos/internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <p11-kit/pkcs11.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PIN_BYTES 16                  /* random bytes; the PIN is their hex */
#define CHILD_TIMEOUT_MS (120 * 1000) /* token initialisation, all tokens */

struct dev_token {
	char name[16];
	char label[32];
	kos_token_role role;
	char pin[2 * PIN_BYTES + 1];
	char so_pin[2 * PIN_BYTES + 1];
};

/* What the installation holds, relative to its directory, in creation order;
 * rollback removes them in reverse. */
enum { F_SOFTHSM_CONF, F_TOKENS, F_PINS, F_POLICY, F_STATE, F_CONF_TMP, F_CONF, F_COUNT };
static const char *const entry_names[F_COUNT] = {
	"softhsm2.conf", "tokens", "pins", "kos.policy", "state.db", ".kos.conf.tmp", "kos.conf",
};

struct devinit {
	char dir[PATH_MAX];
	char path[F_COUNT][PATH_MAX];
	bool created[F_COUNT];
	bool created_dir;
	struct dev_token *tokens;
	size_t n_tokens;
};

/* --- files ------------------------------------------------------------------ */

static kos_rv write_new_file(const char *path, mode_t mode, const void *data, size_t len)
{
	const char *p = data;
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return kos_error_set(errno == EEXIST ? KOS_E_EXISTS : KOS_E_IO, "%s: %s", path,
				     strerror(errno));
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			kos_rv rv = kos_error_set(KOS_E_IO, "%s: %s", path, strerror(errno));

			close(fd);
			return rv;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) != 0 || close(fd) != 0)
		return kos_error_set(KOS_E_IO, "%s: %s", path, strerror(errno));
	return KOS_OK;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if (flag == FTW_DP || flag == FTW_D)
		return rmdir(path) == 0 || errno == ENOENT ? 0 : -1;
	return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
}

static void remove_tree(const char *path)
{
	(void)nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Removes what this run created, newest first, keeping the thread's error. */
static void rollback(struct devinit *d)
{
	char keep[512];
	char side[PATH_MAX + 8];
	int i;

	snprintf(keep, sizeof(keep), "%s", kos_last_error());
	for (i = F_COUNT - 1; i >= 0; i--) {
		if (!d->created[i])
			continue;
		if (i == F_TOKENS || i == F_PINS) {
			remove_tree(d->path[i]);
		} else {
			unlink(d->path[i]);
			if (i == F_STATE) {
				static const char *const sfx[] = { "-wal", "-shm", "-journal" };
				size_t k;

				for (k = 0; k < KOS_ARRAY_SIZE(sfx); k++) {
					snprintf(side, sizeof(side), "%s%s", d->path[i], sfx[k]);
					unlink(side);
				}
			}
		}
	}
	if (d->created_dir)
		rmdir(d->dir);
	kos_error_set(KOS_E_IO, "%s", keep);
}

/* kos.conf and softhsm2.conf quote paths; keep the directory name to what
 * both formats take without escapes. */
static bool dir_name_ok(const char *dir)
{
	const unsigned char *p;

	for (p = (const unsigned char *)dir; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f || *p == '"' || *p == '\\' || *p == '#')
			return false;
	return true;
}

/* Creates (or accepts) dir and checks that none of the installation's files
 * is there yet. */
static kos_rv prepare_dir(struct devinit *d, const char *dir)
{
	struct stat sb;
	int i;

	if (!dir_name_ok(dir))
		return kos_error_set(KOS_E_INVALID,
				     "%s: a directory name with quotes, backslashes, '#' or control "
				     "characters is not supported",
				     dir);
	if (mkdir(dir, 0700) == 0)
		d->created_dir = true;
	else if (errno != EEXIST)
		return kos_error_set(KOS_E_IO, "%s: %s", dir, strerror(errno));
	if (realpath(dir, d->dir) == NULL) {
		kos_rv rv = kos_error_set(KOS_E_IO, "%s: %s", dir, strerror(errno));

		if (d->created_dir)
			rmdir(dir);
		d->created_dir = false;
		return rv;
	}
	if (stat(d->dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
		return kos_error_set(KOS_E_IO, "%s: not a directory", dir);
	for (i = 0; i < F_COUNT; i++) {
		/* joined by hand rather than snprintf("%s/%s", d->dir, ...):
		 * gcc cannot tell d->dir and d->path[i] apart and warns of an
		 * overlap */
		size_t dl = strlen(d->dir), el = strlen(entry_names[i]);

		if (dl + 1 + el >= sizeof(d->path[i]) - 32)
			return kos_error_set(KOS_E_INVALID, "%s: path too long", dir);
		memcpy(d->path[i], d->dir, dl);
		d->path[i][dl] = '/';
		memcpy(d->path[i] + dl + 1, entry_names[i], el + 1);
	}
	if (lstat(d->path[F_CONF], &sb) == 0)
		return kos_error_set(KOS_E_EXISTS,
				     "%s exists: %s already holds a kos installation (not "
				     "overwritten)",
				     d->path[F_CONF], d->dir);
	for (i = 0; i < F_COUNT; i++)
		if (lstat(d->path[i], &sb) == 0)
			return kos_error_set(KOS_E_EXISTS,
					     "%s exists: kos_devinit fills only a new or empty place",
					     d->path[i]);
	return KOS_OK;
}

/* --- tokens and PINs ---------------------------------------------------------- */

static kos_rv make_tokens(struct devinit *d, unsigned n_kms)
{
	uint8_t rnd[PIN_BYTES];
	size_t i, n = n_kms + 2 + KOS_DEVINIT_TRUSTNODES;
	kos_rv rv = KOS_OK;

	d->tokens = calloc(n, sizeof(*d->tokens));
	if (d->tokens == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	d->n_tokens = n;
	for (i = 0; i < n; i++) {
		struct dev_token *t = &d->tokens[i];

		if (i < n_kms) {
			snprintf(t->name, sizeof(t->name), "kms%u", (unsigned)(i + 1));
			t->role = KOS_TOKEN_ROLE_KMS;
		} else if (i == n_kms) {
			snprintf(t->name, sizeof(t->name), "signer");
			t->role = KOS_TOKEN_ROLE_SIGNER;
		} else if (i == n_kms + 1) {
			snprintf(t->name, sizeof(t->name), "ca");
			t->role = KOS_TOKEN_ROLE_CA;
		} else {
			snprintf(t->name, sizeof(t->name), "trust%u", (unsigned)(i - n_kms - 1));
			t->role = KOS_TOKEN_ROLE_TRUSTNODE;
		}
		snprintf(t->label, sizeof(t->label), "kos-%s", t->name);
		if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
			rv = kos_error_set(KOS_E_CRYPTO, "no random bytes for the PINs");
			break;
		}
		kos_hex_encode(rnd, sizeof(rnd), t->pin);
		if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
			rv = kos_error_set(KOS_E_CRYPTO, "no random bytes for the PINs");
			break;
		}
		kos_hex_encode(rnd, sizeof(rnd), t->so_pin);
	}
	OPENSSL_cleanse(rnd, sizeof(rnd));
	return rv;
}

static kos_rv write_pins(struct devinit *d)
{
	char path[PATH_MAX + 32], line[2 * PIN_BYTES + 2];
	size_t i;
	kos_rv rv = KOS_OK;

	if (mkdir(d->path[F_PINS], 0700) != 0)
		return kos_error_set(KOS_E_IO, "%s: %s", d->path[F_PINS], strerror(errno));
	d->created[F_PINS] = true;
	for (i = 0; i < d->n_tokens && rv == KOS_OK; i++) {
		const struct dev_token *t = &d->tokens[i];

		snprintf(path, sizeof(path), "%s/%s.pin", d->path[F_PINS], t->name);
		snprintf(line, sizeof(line), "%s\n", t->pin);
		rv = write_new_file(path, 0600, line, strlen(line));
		if (rv != KOS_OK)
			break;
		snprintf(path, sizeof(path), "%s/%s.so-pin", d->path[F_PINS], t->name);
		snprintf(line, sizeof(line), "%s\n", t->so_pin);
		rv = write_new_file(path, 0600, line, strlen(line));
	}
	OPENSSL_cleanse(line, sizeof(line));
	return rv;
}

/* The child's side: initialise every token through the module's own function
 * list. Errors go to the thread's detail, which the child sends up. */
static kos_rv child_init(const struct devinit *d, const char *module)
{
	CK_C_INITIALIZE_ARGS args = { .flags = CKF_OS_LOCKING_OK };
	CK_C_GetFunctionList get_list;
	CK_FUNCTION_LIST *f = NULL;
	CK_SLOT_ID *slots = NULL;
	CK_ULONG n, i;
	CK_SESSION_HANDLE h;
	CK_RV crv;
	const char *func = "";
	void *lib;
	size_t k;
	kos_rv rv;

	if (setenv("SOFTHSM2_CONF", d->path[F_SOFTHSM_CONF], 1) != 0)
		return kos_error_set(KOS_E_NOMEM, "cannot set SOFTHSM2_CONF");
	lib = dlopen(module, RTLD_NOW | RTLD_LOCAL);
	if (lib == NULL)
		return kos_error_set(KOS_E_IO, "module %s: %s", module, dlerror());
	*(void **)&get_list = dlsym(lib, "C_GetFunctionList");
	if (get_list == NULL || get_list(&f) != CKR_OK || f == NULL)
		return kos_error_set(KOS_E_IO, "module %s: no C_GetFunctionList", module);
	crv = f->C_Initialize(&args);
	if (crv == CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		/* Inherited from the parent with its configuration: start over
		 * with ours. */
		f->C_Finalize(NULL);
		crv = f->C_Initialize(&args);
	}
	if (crv != CKR_OK) {
		func = "C_Initialize";
		goto ckfail;
	}
	for (k = 0; k < d->n_tokens; k++) {
		const struct dev_token *t = &d->tokens[k];
		CK_UTF8CHAR label[32];
		CK_SLOT_ID slot = 0;
		bool found = false;
		int pass;

		/* SoftHSM offers one free slot, made at C_Initialize: when it is
		 * used up, start the module again to get the next. */
		for (pass = 0; pass < 2 && !found; pass++) {
			if (pass == 1) {
				f->C_Finalize(NULL);
				crv = f->C_Initialize(&args);
				if (crv != CKR_OK) {
					func = "C_Initialize";
					goto ckfail;
				}
			}
			crv = f->C_GetSlotList(CK_TRUE, NULL, &n);
			if (crv == CKR_OK) {
				free(slots);
				slots = calloc(n ? n : 1, sizeof(*slots));
				if (slots == NULL) {
					rv = kos_error_set(KOS_E_NOMEM, "out of memory");
					goto out;
				}
				crv = f->C_GetSlotList(CK_TRUE, slots, &n);
			}
			if (crv != CKR_OK) {
				func = "C_GetSlotList";
				goto ckfail;
			}
			for (i = 0; i < n && !found; i++) {
				CK_TOKEN_INFO ti;

				if (f->C_GetTokenInfo(slots[i], &ti) == CKR_OK &&
				    !(ti.flags & CKF_TOKEN_INITIALIZED)) {
					slot = slots[i];
					found = true;
				}
			}
		}
		if (!found) {
			rv = kos_error_set(KOS_E_IO, "module %s offers no free slot for %s", module,
					   t->label);
			goto out;
		}
		memset(label, ' ', sizeof(label));
		memcpy(label, t->label, strlen(t->label));
		crv = f->C_InitToken(slot, (CK_UTF8CHAR_PTR)t->so_pin, strlen(t->so_pin), label);
		if (crv != CKR_OK) {
			func = "C_InitToken";
			goto ckfail;
		}
		crv = f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &h);
		if (crv != CKR_OK) {
			func = "C_OpenSession";
			goto ckfail;
		}
		crv = f->C_Login(h, CKU_SO, (CK_UTF8CHAR_PTR)t->so_pin, strlen(t->so_pin));
		if (crv == CKR_OK) {
			crv = f->C_InitPIN(h, (CK_UTF8CHAR_PTR)t->pin, strlen(t->pin));
			if (crv != CKR_OK)
				func = "C_InitPIN";
			f->C_Logout(h);
		} else {
			func = "C_Login (SO)";
		}
		f->C_CloseSession(h);
		if (crv != CKR_OK)
			goto ckfail;
	}
	/* Check the result as kos will use it: each label once, the user PIN
	 * accepted. A fresh start makes SoftHSM read back what it wrote. */
	f->C_Finalize(NULL);
	crv = f->C_Initialize(&args);
	if (crv != CKR_OK) {
		func = "C_Initialize";
		goto ckfail;
	}
	free(slots);
	slots = NULL;
	crv = f->C_GetSlotList(CK_TRUE, NULL, &n);
	if (crv == CKR_OK) {
		slots = calloc(n ? n : 1, sizeof(*slots));
		if (slots == NULL) {
			rv = kos_error_set(KOS_E_NOMEM, "out of memory");
			goto out;
		}
		crv = f->C_GetSlotList(CK_TRUE, slots, &n);
	}
	if (crv != CKR_OK) {
		func = "C_GetSlotList";
		goto ckfail;
	}
	for (k = 0; k < d->n_tokens; k++) {
		const struct dev_token *t = &d->tokens[k];
		CK_ULONG hits = 0;

		for (i = 0; i < n; i++) {
			CK_TOKEN_INFO ti;
			size_t ll = strlen(t->label);

			if (f->C_GetTokenInfo(slots[i], &ti) != CKR_OK ||
			    memcmp(ti.label, t->label, ll) != 0 ||
			    (ll < sizeof(ti.label) && ti.label[ll] != ' '))
				continue;
			if (hits++ > 0)
				break;
			crv = f->C_OpenSession(slots[i], CKF_SERIAL_SESSION, NULL, NULL, &h);
			if (crv != CKR_OK) {
				func = "C_OpenSession";
				goto ckfail;
			}
			crv = f->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR)t->pin, strlen(t->pin));
			f->C_CloseSession(h);
			if (crv != CKR_OK) {
				func = "C_Login (user)";
				goto ckfail;
			}
		}
		if (hits != 1) {
			rv = kos_error_set(KOS_E_CRYPTO, "token %s: found %lu times after initialisation",
					   t->label, (unsigned long)hits);
			goto out;
		}
	}
	f->C_Finalize(NULL);
	free(slots);
	return KOS_OK;
ckfail:
	rv = kos_error_set(KOS_E_CRYPTO, "module %s: %s: CKR 0x%lx", module, func,
			   (unsigned long)crv);
out:
	if (f != NULL)
		f->C_Finalize(NULL);
	free(slots);
	return rv;
}

/* Runs child_init() in a child process and waits for it; the child's error
 * detail comes back through a pipe. */
static kos_rv init_tokens(const struct devinit *d, const char *module)
{
	char msg[512];
	size_t got = 0;
	int pfd[2], status, waited = 0;
	pid_t pid;
	kos_rv rv;

	if (pipe(pfd) != 0)
		return kos_error_set(KOS_E_IO, "pipe: %s", strerror(errno));
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return kos_error_set(KOS_E_IO, "fork: %s", strerror(errno));
	}
	if (pid == 0) {
		close(pfd[0]);
		rv = child_init(d, module);
		if (rv != KOS_OK) {
			const char *e = kos_last_error();
			ssize_t w = write(pfd[1], e, strlen(e));

			(void)w;
		}
		/* _exit: no atexit handlers or stdio flushing of the parent's state */
		_exit(rv == KOS_OK ? 0 : 1);
	}
	close(pfd[1]);
	for (;;) {
		struct pollfd p = { .fd = pfd[0], .events = POLLIN };
		int r = poll(&p, 1, CHILD_TIMEOUT_MS);
		ssize_t n;

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			kill(pid, SIGKILL);
			break;
		}
		n = read(pfd[0], msg + got, sizeof(msg) - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got == sizeof(msg) - 1)
			break;
	}
	msg[got] = '\0';
	close(pfd[0]);
	while ((waited = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
		;
	if (waited < 0)
		return kos_error_set(KOS_E_IO, "waitpid: %s", strerror(errno));
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return KOS_OK;
	if (got > 0)
		return kos_error_set(KOS_E_CRYPTO, "token initialisation: %s", msg);
	if (WIFSIGNALED(status))
		return kos_error_set(KOS_E_CRYPTO,
				     "token initialisation: child killed by signal %d%s",
				     WTERMSIG(status),
				     WTERMSIG(status) == SIGKILL ? " (timed out)" : "");
	return kos_error_set(KOS_E_CRYPTO, "token initialisation failed (exit %d)",
			     WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

/* --- configuration files ------------------------------------------------------ */

static kos_rv write_softhsm_conf(struct devinit *d)
{
	char buf[PATH_MAX + 256];
	int n;
	kos_rv rv;

	if (mkdir(d->path[F_TOKENS], 0700) != 0)
		return kos_error_set(KOS_E_IO, "%s: %s", d->path[F_TOKENS], strerror(errno));
	d->created[F_TOKENS] = true;
	n = snprintf(buf, sizeof(buf),
		     "# SoftHSMv2 configuration of a kos development installation.\n"
		     "directories.tokendir = %s\n"
		     "objectstore.backend = file\n"
		     "log.level = ERROR\n",
		     d->path[F_TOKENS]);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return kos_error_set(KOS_E_INVALID, "path too long");
	rv = write_new_file(d->path[F_SOFTHSM_CONF], 0600, buf, (size_t)n);
	if (rv == KOS_OK)
		d->created[F_SOFTHSM_CONF] = true;
	return rv;
}

/* kos.conf is a few lines per token; the bound only stops a runaway. */
#define CONF_TEXT_MAX ((size_t)1 << 20)

static kos_rv write_kos_conf(struct devinit *d, const char *module)
{
	kos_buf t;
	size_t i;
	kos_rv rv;

	kos_buf_init(&t, CONF_TEXT_MAX);
	kos_buf_printf(&t,
		       "# kos.conf of a development installation made by kos_devinit (kosctl init).\n"
		       "# SoftHSM tokens live in %s, their PINs in %s (owner only).\n"
		       "store = \"%s\";\n"
		       "policy = \"%s\";\n"
		       "\n"
		       "# Set before the PKCS#11 modules are loaded.\n"
		       "environment = {\n"
		       "  SOFTHSM2_CONF = \"%s\";\n"
		       "};\n"
		       "\n"
		       "tokens = (\n",
		       d->path[F_TOKENS], d->path[F_PINS], d->path[F_STATE], d->path[F_POLICY],
		       d->path[F_SOFTHSM_CONF]);
	for (i = 0; i < d->n_tokens; i++) {
		const struct dev_token *tk = &d->tokens[i];

		kos_buf_printf(&t,
			       "  { name = \"%s\"; role = \"%s\"; module = \"%s\";\n"
			       "    uri = \"pkcs11:token=%s\"; pin = \"file:%s/%s.pin\"; }%s\n",
			       tk->name, kos_token_role_name(tk->role), module, tk->label,
			       d->path[F_PINS], tk->name, i + 1 < d->n_tokens ? "," : "");
	}
	kos_buf_printf(&t, ");\n\n");
	/* A socket path must fit sockaddr_un (107 characters with the directory). */
	if (strlen(d->dir) + sizeof("/kosd.sock") - 1 <= 107)
		kos_buf_printf(&t,
			       "# kosd's socket, next to this file; only the owner and group may "
			       "connect.\n"
			       "listen = { unix = \"kosd.sock\"; unix_mode = \"0660\"; };\n");
	else
		kos_buf_printf(&t,
			       "# The directory's name is too long for a socket here: give kosd one "
			       "with\n"
			       "# listen = { unix = \"/SHORT/PATH/kosd.sock\"; };\n");
	if (t.err != KOS_OK) {
		kos_buf_uninit(&t);
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	}
	/* Written aside, then linked: kos.conf appears complete or not at all,
	 * and link() refuses to replace one that appeared meanwhile. */
	rv = write_new_file(d->path[F_CONF_TMP], 0644, t.p, t.len);
	kos_buf_uninit(&t);
	if (rv != KOS_OK)
		return rv;
	d->created[F_CONF_TMP] = true;
	if (link(d->path[F_CONF_TMP], d->path[F_CONF]) != 0)
		return kos_error_set(errno == EEXIST ? KOS_E_EXISTS : KOS_E_IO, "%s: %s",
				     d->path[F_CONF], strerror(errno));
	d->created[F_CONF] = true;
	unlink(d->path[F_CONF_TMP]);
	d->created[F_CONF_TMP] = false;
	return KOS_OK;
}

static kos_rv copy_policy(struct devinit *d, const char *src)
{
	kos_policy *pol = NULL;
	char *data = NULL, *diag = NULL;
	size_t len;
	kos_rv rv;

	rv = kos_policy_load(src, &pol, &diag);
	kos_free(diag);
	kos_policy_free(pol);
	if (rv != KOS_OK)
		return rv;
	rv = kos_read_file(src, 1024 * 1024, &data, &len);
	if (rv != KOS_OK)
		return rv;
	rv = write_new_file(d->path[F_POLICY], 0644, data, len);
	free(data);
	if (rv == KOS_OK)
		d->created[F_POLICY] = true;
	return rv;
}

static kos_rv create_store(struct devinit *d)
{
	kos_store *st = NULL;
	kos_rv rv;

	/* marked first: a store that fails half-way may leave a file behind */
	d->created[F_STATE] = true;
	rv = kos_store_open(d->path[F_STATE], &st);
	kos_store_free(st);
	return rv;
}

kos_rv kos_devinit(const char *dir, unsigned n_kms, const char *policy_src, const char *module)
{
	struct devinit *d;
	kos_rv rv;

	if (dir == NULL || dir[0] == '\0' || policy_src == NULL)
		return kos_error_set(KOS_E_INVALID, "kos_devinit: a directory and a policy are needed");
	if (n_kms == 0)
		n_kms = KOS_DEVINIT_KMS_DEFAULT;
	if (n_kms < KOS_DEVINIT_KMS_MIN || n_kms > KOS_DEVINIT_KMS_MAX)
		return kos_error_set(KOS_E_RANGE, "the number of KMS tokens must be %d to %d",
				     KOS_DEVINIT_KMS_MIN, KOS_DEVINIT_KMS_MAX);
	if (module == NULL)
		module = KOS_SOFTHSM_MODULE;
	if (module[0] != '/' || !dir_name_ok(module))
		return kos_error_set(KOS_E_INVALID, "module %s: must be an absolute path", module);
	if (access(module, R_OK) != 0)
		return kos_error_set(KOS_E_IO, "module %s: %s (is softhsm2 installed?)", module,
				     strerror(errno));
	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return kos_error_set(KOS_E_NOMEM, "out of memory");
	rv = prepare_dir(d, dir);
	if (rv == KOS_OK)
		rv = make_tokens(d, n_kms);
	if (rv == KOS_OK)
		rv = copy_policy(d, policy_src);
	if (rv == KOS_OK)
		rv = write_softhsm_conf(d);
	if (rv == KOS_OK)
		rv = write_pins(d);
	if (rv == KOS_OK)
		rv = init_tokens(d, module);
	if (rv == KOS_OK)
		rv = create_store(d);
	if (rv == KOS_OK)
		rv = write_kos_conf(d, module);
	if (rv != KOS_OK) {
		kos_rv keep = rv;

		rollback(d);
		rv = keep;
	}
	if (d->tokens != NULL)
		OPENSSL_cleanse(d->tokens, d->n_tokens * sizeof(*d->tokens));
	free(d->tokens);
	free(d);
	return rv;
}
