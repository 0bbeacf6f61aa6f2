/* Shared timing for the benchmarks. */
#include "config.h"

#include "tests/bench/bench.h"

#include <kos/common.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double bench_rate(int (*fn)(void *), void *arg, unsigned long batch)
{
	unsigned long n = 0;
	double start = bench_now(), el;

	do {
		for (unsigned long i = 0; i < batch; i++)
			if (fn(arg) != 0) {
				fprintf(stderr, "bench: operation failed: %s\n", kos_last_error());
				exit(1);
			}
		n += batch;
		if (batch < 65536)
			batch *= 2;
		el = bench_now() - start;
	} while (el < BENCH_SECONDS);
	return (double)n / el;
}
