/* Shared timing for the benchmarks: rates measured for a fixed time, so a
 * figure and its baseline come from the same run. */
#ifndef KOS_BENCH_H
#define KOS_BENCH_H

#define BENCH_SECONDS 0.5

/* Monotonic seconds. */
double bench_now(void);

/* Calls fn(arg) in growing batches (starting at batch) for BENCH_SECONDS;
 * returns calls per second. Exits with a message when fn returns non-zero. */
double bench_rate(int (*fn)(void *), void *arg, unsigned long batch);

#endif
