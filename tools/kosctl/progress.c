/* kosctl's progress bar (progress.h). One drawing thread per operation
 * wakes ten times a second and redraws the line from the counters the
 * operation's steps move; the operation's own thread never draws, so a
 * step costs a lock and an addition, and one long call (a key pair made in
 * a token) still shows its time. The state is kosctl's one operation at a
 * time, hence file-scope. */
#include "config.h"

#include "tools/kosctl/progress.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TICK_NS (100 * 1000 * 1000L) /* at most ten lines a second */
#define DELAY_S 1.0		     /* a faster operation draws nothing */
#define BAR_WIDTH 20

static struct {
	enum kosctl_progress_mode mode;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool cond_ready;
	bool running; /* an operation started and not done */
	bool stop;    /* done() asks the thread to end */
	bool thread;  /* the thread was started */
	bool drawn;   /* a line is on the screen */
	pthread_t tid;
	char what[32];
	uint64_t total, count;
	double start;
	size_t last_len; /* the line drawn before, to blank what is left of it */
} pg = { .lock = PTHREAD_MUTEX_INITIALIZER };

static double mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void kosctl_progress_set_mode(enum kosctl_progress_mode mode)
{
	pg.mode = mode;
}

int kosctl_progress_parse_mode(const char *s)
{
	if (strcmp(s, "auto") == 0)
		return KOSCTL_PROGRESS_AUTO;
	if (strcmp(s, "always") == 0)
		return KOSCTL_PROGRESS_ALWAYS;
	if (strcmp(s, "never") == 0)
		return KOSCTL_PROGRESS_NEVER;
	return -1;
}

/* "M:SS" or "H:MM:SS" of secs. */
static void fmt_time(char *buf, size_t len, double secs)
{
	unsigned long s = secs > 0 && secs < 360000.0 ? (unsigned long)(secs + 0.5) : 0;

	if (s >= 3600)
		snprintf(buf, len, "%lu:%02lu:%02lu", s / 3600, s / 60 % 60, s % 60);
	else
		snprintf(buf, len, "%lu:%02lu", s / 60, s % 60);
}

static void fmt_rate(char *buf, size_t len, double rate)
{
	if (rate >= 100.0)
		snprintf(buf, len, "%.0f/s", rate);
	else
		snprintf(buf, len, "%.1f/s", rate);
}

/* The line for the counters now (final: the last one, with the time it
 * took instead of the time left); pg.lock held. */
static size_t render(char *line, size_t cap, bool final)
{
	double el = mono_now() - pg.start, rate = el > 0 ? (double)pg.count / el : 0;
	char t[32], r[32], bar[BAR_WIDTH + 1];
	uint64_t done = pg.count;
	int n;

	fmt_rate(r, sizeof(r), rate);
	if (pg.total != 0) {
		unsigned pct, fill;
		double left;

		if (done > pg.total)
			done = pg.total;
		pct = (unsigned)(done * 100 / pg.total);
		fill = (unsigned)(done * BAR_WIDTH / pg.total);
		memset(bar, '#', fill);
		memset(bar + fill, '.', BAR_WIDTH - fill);
		bar[BAR_WIDTH] = '\0';
		if (final) {
			fmt_time(t, sizeof(t), el);
			n = snprintf(line, cap, "%s  %llu/%llu  %u%%  [%s]  %s  in %s", pg.what,
				     (unsigned long long)done, (unsigned long long)pg.total, pct,
				     bar, r, t);
		} else if (done == 0 || rate <= 0) {
			n = snprintf(line, cap, "%s  %llu/%llu  %u%%  [%s]", pg.what,
				     (unsigned long long)done, (unsigned long long)pg.total, pct,
				     bar);
		} else {
			left = (double)(pg.total - done) / rate;
			fmt_time(t, sizeof(t), left);
			n = snprintf(line, cap, "%s  %llu/%llu  %u%%  [%s]  %s  %s left", pg.what,
				     (unsigned long long)done, (unsigned long long)pg.total, pct,
				     bar, r, t);
		}
	} else {
		fmt_time(t, sizeof(t), el);
		if (pg.count == 0)
			/* one long call: only its time */
			n = snprintf(line, cap, "%s  %s%s", pg.what, final ? "done in " : "", t);
		else
			n = snprintf(line, cap, "%s  %llu  %s  %s%s", pg.what,
				     (unsigned long long)pg.count, r, final ? "in " : "", t);
	}
	return n < 0 ? 0 : (size_t)n >= cap ? cap - 1 : (size_t)n;
}

/* Writes "\r" and the line, blanking what a longer line before left;
 * pg.lock held. A failed write is no failure of the operation. */
static void draw(bool final)
{
	char line[256], out[400];
	size_t n, len, pad;
	ssize_t w;

	len = render(line, sizeof(line), final);
	pad = pg.last_len > len ? pg.last_len - len : 0;
	n = (size_t)snprintf(out, sizeof(out), "\r%s%*s%s", line, (int)pad, "", final ? "\n" : "");
	if (n >= sizeof(out))
		n = sizeof(out) - 1;
	for (len = 0; len < n; len += (size_t)w) {
		w = write(STDERR_FILENO, out + len, n - len);
		if (w < 0 && errno == EINTR) {
			w = 0;
			continue;
		}
		if (w <= 0)
			break;
	}
	pg.last_len = final ? 0 : strlen(line);
	pg.drawn = !final;
}

static void *ticker(void *arg)
{
	struct timespec at;

	(void)arg;
	pthread_mutex_lock(&pg.lock);
	while (!pg.stop) {
		clock_gettime(CLOCK_MONOTONIC, &at);
		at.tv_nsec += TICK_NS;
		if (at.tv_nsec >= 1000000000L) {
			at.tv_sec++;
			at.tv_nsec -= 1000000000L;
		}
		while (!pg.stop && pthread_cond_timedwait(&pg.wake, &pg.lock, &at) != ETIMEDOUT)
			;
		if (pg.stop)
			break;
		if (pg.mode == KOSCTL_PROGRESS_ALWAYS || mono_now() - pg.start >= DELAY_S)
			draw(false);
	}
	pthread_mutex_unlock(&pg.lock);
	return NULL;
}

static bool cond_init(void)
{
	pthread_condattr_t a;
	bool ok;

	if (pg.cond_ready)
		return true;
	if (pthread_condattr_init(&a) != 0)
		return false;
	ok = pthread_condattr_setclock(&a, CLOCK_MONOTONIC) == 0 &&
	     pthread_cond_init(&pg.wake, &a) == 0;
	pthread_condattr_destroy(&a);
	pg.cond_ready = ok;
	return ok;
}

void kosctl_progress_start(uint64_t total, const char *what)
{
	kosctl_progress_done();
	if (pg.mode == KOSCTL_PROGRESS_NEVER ||
	    (pg.mode == KOSCTL_PROGRESS_AUTO && !isatty(STDERR_FILENO)))
		return;
	pthread_mutex_lock(&pg.lock);
	snprintf(pg.what, sizeof(pg.what), "%s", what != NULL ? what : "");
	pg.total = total;
	pg.count = 0;
	pg.start = mono_now();
	pg.stop = false;
	pg.drawn = false;
	pg.last_len = 0;
	pg.running = true;
	pg.thread = cond_init() && pthread_create(&pg.tid, NULL, ticker, NULL) == 0;
	pthread_mutex_unlock(&pg.lock);
}

void kosctl_progress_step(uint64_t n)
{
	if (!pg.running)
		return;
	pthread_mutex_lock(&pg.lock);
	pg.count += n;
	pthread_mutex_unlock(&pg.lock);
}

void kosctl_progress_clear(void)
{
	char blank[260];
	size_t n;

	if (!pg.running)
		return;
	fflush(stdout);
	pthread_mutex_lock(&pg.lock);
	if (pg.drawn) {
		n = pg.last_len < sizeof(blank) - 2 ? pg.last_len : sizeof(blank) - 2;
		blank[0] = '\r';
		memset(blank + 1, ' ', n);
		blank[n + 1] = '\r';
		if (write(STDERR_FILENO, blank, n + 2) < 0) {
			/* a bar that cannot be blanked is no failure either */
		}
		pg.drawn = false;
		pg.last_len = 0;
	}
	pthread_mutex_unlock(&pg.lock);
}

void kosctl_progress_done(void)
{
	if (!pg.running)
		return;
	pthread_mutex_lock(&pg.lock);
	pg.stop = true;
	if (pg.thread)
		pthread_cond_signal(&pg.wake);
	pthread_mutex_unlock(&pg.lock);
	if (pg.thread)
		pthread_join(pg.tid, NULL);
	pthread_mutex_lock(&pg.lock);
	/* the final line where a bar was drawn, and always when asked to */
	if (pg.drawn || pg.mode == KOSCTL_PROGRESS_ALWAYS)
		draw(true);
	pg.running = false;
	pg.thread = false;
	pthread_mutex_unlock(&pg.lock);
}
