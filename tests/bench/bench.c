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

pid_t bench_spawn(char *const argv[], const char *log)
{
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid == 0) {
		if (freopen(log, "a", stderr) == NULL || freopen(log, "a", stdout) == NULL)
			_exit(127);
		execvp(argv[0], argv);
		fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

int bench_wait_socket(pid_t pid, const char *path)
{
	struct stat sb;

	for (int i = 0; i < 200; i++) {
		if (stat(path, &sb) == 0 && S_ISSOCK(sb.st_mode))
			return 0;
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return -1;
		usleep(50000);
	}
	return -1;
}

void bench_stop(pid_t *pid)
{
	if (*pid <= 0)
		return;
	kill(*pid, SIGTERM);
	waitpid(*pid, NULL, 0);
	*pid = -1;
}

int bench_write_policy(const char *src, const char *dst)
{
	static const char *const edits[][2] = {
		{ "ops = 10000;", "ops = 0;" },
		{ "prior = 60.0;", "prior = 90.0;" },
	};
	char *text = malloc(1 << 20);
	size_t len;
	FILE *f = fopen(src, "r");
	int rc = -1;

	if (text == NULL || f == NULL) {
		if (f != NULL)
			fclose(f);
		free(text);
		return -1;
	}
	len = fread(text, 1, (1 << 20) - 1, f);
	fclose(f);
	text[len] = '\0';
	for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
		char *at = strstr(text, edits[i][0]);

		/* the replacement is no longer than the original */
		if (at != NULL) {
			size_t ol = strlen(edits[i][0]), nl = strlen(edits[i][1]);

			memcpy(at, edits[i][1], nl);
			memmove(at + nl, at + ol, strlen(at + ol) + 1);
		}
	}
	f = fopen(dst, "w");
	if (f == NULL)
		goto out;
	fputs(text, f);
	rc = fclose(f) == 0 ? 0 : -1;
out:
	free(text);
	return rc;
}
