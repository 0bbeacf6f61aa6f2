/* Shared timing for the benchmarks: rates measured for a fixed time, so a
 * figure and its baseline come from the same run; and the processes a
 * benchmark starts and places on CPUs. */
#ifndef KOS_BENCH_H
#define KOS_BENCH_H

#include <sys/types.h>

#define BENCH_SECONDS 0.5

/* Monotonic seconds. */
double bench_now(void);

/* Calls fn(arg) in growing batches (starting at batch) for BENCH_SECONDS;
 * returns calls per second. Exits with a message when fn returns non-zero. */
double bench_rate(int (*fn)(void *), void *arg, unsigned long batch);
/* bench_rate() for seconds; batches grow only while one takes less than a
 * twentieth of that, so the run ends close to it. */
double bench_rate_for(int (*fn)(void *), void *arg, unsigned long batch, double seconds);

/* Keeps the calling thread (and the threads and processes it starts later)
 * on one CPU; cpu < 0 lets it run anywhere. */
void bench_pin(int cpu);
/* bench_pin() for every thread of process pid (an affinity is a thread's:
 * a server's workers were started before the call). */
void bench_pin_pid(pid_t pid, int cpu);

/* Runs argv with standard output and error appended to log, on CPU cpu
 * (< 0: anywhere) from its first instruction, so every thread it starts
 * stays there; the pid, or -1. */
pid_t bench_spawn_on(char *const argv[], const char *log, int cpu);
/* bench_spawn_on() anywhere. */
pid_t bench_spawn(char *const argv[], const char *log);
/* Waits up to 10 s for ready(arg) to return non-zero: 0, or -1 when pid
 * exits first (it is reaped) or ready() never does. */
int bench_wait(pid_t pid, int (*ready)(const void *arg), const void *arg);
/* bench_wait() for a socket at path. */
int bench_wait_socket(pid_t pid, const char *path);
/* SIGTERM to *pid (if > 0) and waits; *pid becomes -1. */
void bench_stop(pid_t *pid);

/* CPU seconds (user + system, every thread) process pid has used, from
 * /proc/PID/stat, with the user and system parts in *user and *sys (each
 * may be NULL); -1 when it cannot be read. */
double bench_proc_cpu(pid_t pid, double *user, double *sys);
/* VmRSS and VmHWM of process pid in KiB, from /proc/PID/status; 0, or -1
 * when they cannot be read. */
int bench_proc_mem(pid_t pid, long *rss_kib, long *hwm_kib);

/* 1 when the file at path holds text, else 0. */
int bench_file_has(const char *path, const char *text);
/* src copied to dst with the first occurrence of each edits[i][0] replaced
 * by edits[i][1]; 0, or -1 (with a message) when a text to replace is
 * missing or a file cannot be read or written. */
int bench_edit_file(const char *src, const char *dst, const char *const edits[][2], size_t n);

/* "ok" when a goal is met, "MISSED" when not: every goal line ends so. */
const char *bench_verdict(int met);

/* The policy src to dst without the usage quota (a benchmark sends more
 * requests an hour than a client is meant to and must not measure its own
 * trust falling) and with a prior of 90, so a new client is high-tier. */
int bench_write_policy(const char *src, const char *dst);

#endif
