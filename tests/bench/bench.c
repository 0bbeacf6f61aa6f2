/* Shared timing and processes for the benchmarks. */
#include "config.h"

#include "tests/bench/bench.h"

#include <dirent.h>
#include <errno.h>
#include <kos/common.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double bench_rate_for(int (*fn)(void *), void *arg, unsigned long batch, double seconds)
{
	unsigned long n = 0;
	double start = bench_now(), el, t0;

	do {
		t0 = bench_now();
		for (unsigned long i = 0; i < batch; i++)
			if (fn(arg) != 0) {
				fprintf(stderr, "bench: operation failed: %s\n", kos_last_error());
				exit(1);
			}
		n += batch;
		el = bench_now() - start;
		if (batch < 65536 && bench_now() - t0 < seconds / 20)
			batch *= 2;
	} while (el < seconds);
	return (double)n / el;
}

double bench_rate(int (*fn)(void *), void *arg, unsigned long batch)
{
	return bench_rate_for(fn, arg, batch, BENCH_SECONDS);
}

static void cpu_set_of(int cpu, cpu_set_t *set)
{
	CPU_ZERO(set);
	if (cpu >= 0)
		CPU_SET(cpu, set);
	else
		for (int i = 0; i < CPU_SETSIZE; i++)
			CPU_SET(i, set);
}

void bench_pin(int cpu)
{
	cpu_set_t set;

	cpu_set_of(cpu, &set);
	(void)sched_setaffinity(0, sizeof(set), &set);
}

void bench_pin_pid(pid_t pid, int cpu)
{
	char path[64];
	struct dirent *e;
	cpu_set_t set;
	DIR *d;

	cpu_set_of(cpu, &set);
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (d == NULL) {
		(void)sched_setaffinity(pid, sizeof(set), &set);
		return;
	}
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			(void)sched_setaffinity((pid_t)atoi(e->d_name), sizeof(set), &set);
	closedir(d);
}

pid_t bench_spawn_on(char *const argv[], const char *log, int cpu)
{
	pid_t pid;

	/* or the child's freopen() prints what this process has buffered */
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid == 0) {
		if (freopen(log, "a", stderr) == NULL || freopen(log, "a", stdout) == NULL)
			_exit(127);
		if (cpu >= 0)
			bench_pin(cpu);
		execvp(argv[0], argv);
		fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

pid_t bench_spawn(char *const argv[], const char *log)
{
	return bench_spawn_on(argv, log, -1);
}

int bench_wait(pid_t pid, int (*ready)(const void *arg), const void *arg)
{
	for (int i = 0; i < 200; i++) {
		if (ready(arg))
			return 0;
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return -1;
		usleep(50000);
	}
	return -1;
}

static int socket_ready(const void *arg)
{
	struct stat sb;

	return stat(arg, &sb) == 0 && S_ISSOCK(sb.st_mode);
}

int bench_wait_socket(pid_t pid, const char *path)
{
	return bench_wait(pid, socket_ready, path);
}

void bench_stop(pid_t *pid)
{
	if (*pid <= 0)
		return;
	kill(*pid, SIGTERM);
	waitpid(*pid, NULL, 0);
	*pid = -1;
}

/* --- /proc ---------------------------------------------------------------- */

double bench_proc_cpu(pid_t pid, double *user, double *sys)
{
	double tick = (double)sysconf(_SC_CLK_TCK);
	char path[64], buf[2048], *p;
	unsigned long long utime, stime;
	size_t n;
	FILE *f;
	int i;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* the command's name may hold spaces and parentheses: the fields
	 * start after the last ')', with field 3 (the state) */
	p = strrchr(buf, ')');
	if (p == NULL)
		return -1;
	p++;
	/* skip fields 3 to 13; utime and stime are 14 and 15 */
	for (i = 3; i <= 13; i++) {
		p += strspn(p, " ");
		p += strcspn(p, " ");
	}
	if (sscanf(p, " %llu %llu", &utime, &stime) != 2)
		return -1;
	if (user != NULL)
		*user = (double)utime / tick;
	if (sys != NULL)
		*sys = (double)stime / tick;
	return (double)(utime + stime) / tick;
}

int bench_proc_mem(pid_t pid, long *rss_kib, long *hwm_kib)
{
	char path[64], line[256];
	int found = 0;
	FILE *f;

	*rss_kib = *hwm_kib = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "VmRSS: %ld kB", rss_kib) == 1)
			found++;
		else if (sscanf(line, "VmHWM: %ld kB", hwm_kib) == 1)
			found++;
	}
	fclose(f);
	return found == 2 ? 0 : -1;
}

/* --- files ---------------------------------------------------------------- */

/* The file at path as a string (malloc'd), or NULL. */
static char *read_text(const char *path)
{
	char *text = NULL, *np;
	size_t len = 0, cap = 0, got;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return NULL;
	do {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 65536;
			np = realloc(text, cap);
			if (np == NULL) {
				free(text);
				fclose(f);
				return NULL;
			}
			text = np;
		}
		got = fread(text + len, 1, cap - len - 1, f);
		len += got;
	} while (got > 0);
	fclose(f);
	text[len] = '\0';
	return text;
}

int bench_file_has(const char *path, const char *text)
{
	char *all = read_text(path);
	int has = all != NULL && strstr(all, text) != NULL;

	free(all);
	return has;
}

/* text with the first occurrence of from replaced by to (text is freed);
 * text itself when from is missing, NULL when out of memory */
static char *replace(char *text, const char *from, const char *to, int *found)
{
	char *at = strstr(text, from), *out;
	size_t pre, fl = strlen(from), tl = strlen(to);

	*found = at != NULL;
	if (at == NULL)
		return text;
	pre = (size_t)(at - text);
	out = malloc(strlen(text) - fl + tl + 1);
	if (out != NULL) {
		memcpy(out, text, pre);
		memcpy(out + pre, to, tl);
		strcpy(out + pre + tl, at + fl);
	}
	free(text);
	return out;
}

/* bench_edit_file(); strict: a missing text is an error, else skipped */
static int edit_file(const char *src, const char *dst, const char *const edits[][2], size_t n,
		     int strict)
{
	char *text = read_text(src);
	FILE *f;
	int found, rc;

	if (text == NULL) {
		fprintf(stderr, "bench: cannot read %s\n", src);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		text = replace(text, edits[i][0], edits[i][1], &found);
		if (text == NULL)
			return -1;
		if (!found && strict) {
			fprintf(stderr, "bench: %s holds no \"%s\" to replace\n", src, edits[i][0]);
			free(text);
			return -1;
		}
	}
	f = fopen(dst, "w");
	if (f == NULL) {
		fprintf(stderr, "bench: cannot write %s: %s\n", dst, strerror(errno));
		free(text);
		return -1;
	}
	fputs(text, f);
	free(text);
	rc = fclose(f) == 0 ? 0 : -1;
	if (rc != 0)
		fprintf(stderr, "bench: cannot write %s\n", dst);
	return rc;
}

int bench_edit_file(const char *src, const char *dst, const char *const edits[][2], size_t n)
{
	return edit_file(src, dst, edits, n, 1);
}

int bench_write_policy(const char *src, const char *dst)
{
	static const char *const edits[][2] = {
		{ "ops = 10000;", "ops = 0;" },
		{ "prior = 60.0;", "prior = 90.0;" },
	};

	/* a policy without them already has what they set, or chose otherwise */
	return edit_file(src, dst, edits, sizeof(edits) / sizeof(edits[0]), 0);
}

const char *bench_verdict(int met)
{
	return met ? "ok" : "MISSED";
}
