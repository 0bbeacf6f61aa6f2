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

/* Runs argv with standard output and error appended to log; the pid, or
 * -1. */
pid_t bench_spawn(char *const argv[], const char *log);
/* Waits up to 10 s for a socket at path: 0, or -1 when pid exits first or
 * it does not appear. */
int bench_wait_socket(pid_t pid, const char *path);
/* SIGTERM to *pid (if > 0) and waits; *pid becomes -1. */
void bench_stop(pid_t *pid);

/* The policy src to dst without the usage quota (a benchmark sends more
 * requests an hour than a client is meant to and must not measure its own
 * trust falling) and with a prior of 90, so a new client is high-tier. */
int bench_write_policy(const char *src, const char *dst);

#endif
