/* kosctl's progress bar: what a long operation has done, on standard error,
 *
 *   rewrap  1200/5000  24%  [####................]  850/s  0:04 left
 *
 * or, when the total is not known, the count, the rate and the time spent.
 * Drawn only where a person reads it: standard error a terminal, the
 * operation running for a second already (a fast one draws nothing), at
 * most ten times a second, ending with a final line. KOSCTL_PROGRESS_ALWAYS
 * draws whatever standard error is, from the start (tests, logs);
 * KOSCTL_PROGRESS_NEVER never. Drawing happens on a thread of its own, so
 * an operation that is one long call (an RSA key pair made in a token)
 * still shows its time. One operation at a time; not for use from several
 * threads. */
#ifndef KOSCTL_PROGRESS_H
#define KOSCTL_PROGRESS_H

#include <stdint.h>

enum kosctl_progress_mode {
	KOSCTL_PROGRESS_AUTO = 0, /* a terminal, after a second */
	KOSCTL_PROGRESS_ALWAYS,
	KOSCTL_PROGRESS_NEVER,
};

/* Sets the mode (main: --progress, --no-progress, $KOSCTL_PROGRESS). */
void kosctl_progress_set_mode(enum kosctl_progress_mode mode);
/* Parses "always", "never" or "auto"; -1 for anything else. */
int kosctl_progress_parse_mode(const char *s);

/* Starts an operation of total items (0: not known) called what ("rewrap",
 * "ledger verify"; at most 31 bytes are shown). A start while another runs
 * ends that one first. */
void kosctl_progress_start(uint64_t total, const char *what);
/* n more items done. */
void kosctl_progress_step(uint64_t n);
/* Blanks the bar's line, if drawn, so that a line printed next (a result,
 * a message) starts clean; the bar comes back at the next redraw. Flushes
 * standard output first, which may share the terminal. */
void kosctl_progress_clear(void);
/* Ends the operation: the final line when the bar was drawn (always in
 * KOSCTL_PROGRESS_ALWAYS), nothing otherwise. Without a start, nothing.
 * Call it before writing other messages on standard error. */
void kosctl_progress_done(void);

#endif
