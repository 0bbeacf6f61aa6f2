/* kosd-conn: opens connections to a Unix socket and holds them, for
 * tests/kosd-limits.sh (a fresh Debian has no socat or python3).
 *
 *   kosd-conn SOCKET N WAIT [DATA [TRICKLE_MS]]
 *
 * Opens N connections (exit 2 if one is refused by the kernel), writes DATA
 * to each (\r, \n, \e and \xHH written as escapes), then, every TRICKLE_MS
 * when given, one byte more. It prints "open N" once connected, and when the
 * server has closed all N or WAIT seconds have passed, "closed K of N after
 * S s" and "first: LINE" with the first line the first connection received;
 * with KOSD_CONN_OUT=FILE in the environment, FILE gets all it received. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 256

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* DATA with \r, \n, \e and \xHH turned into CR, LF, ESC and the byte,
 * in place. */
static size_t unescape(char *s)
{
	size_t i, o = 0;
	unsigned v;

	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] == '\\' && (s[i + 1] == 'r' || s[i + 1] == 'n' || s[i + 1] == 'e')) {
			s[o++] = s[i + 1] == 'r' ? '\r' : s[i + 1] == 'n' ? '\n' : '\033';
			i++;
		} else if (s[i] == '\\' && s[i + 1] == 'x' && s[i + 2] != '\0' && s[i + 3] != '\0' &&
			   sscanf(s + i + 2, "%2x", &v) == 1) {
			s[o++] = (char)v;
			i += 3;
		} else {
			s[o++] = s[i];
		}
	}
	s[o] = '\0';
	return o;
}

int main(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct pollfd pfd[MAX_CONNS];
	char first[256] = "", buf[4096];
	size_t first_len = 0, dlen = 0;
	int n, i, open_n, trickle = 0;
	double wait, start, next_byte;
	char *data = NULL;
	const char *dump = getenv("KOSD_CONN_OUT");
	FILE *all = NULL;

	if (argc < 4 || argc > 6) {
		fprintf(stderr, "usage: kosd-conn SOCKET N WAIT [DATA [TRICKLE_MS]]\n");
		return 2;
	}
	n = atoi(argv[2]);
	wait = atof(argv[3]);
	if (argc >= 5) {
		data = argv[4];
		dlen = unescape(data);
	}
	if (argc == 6)
		trickle = atoi(argv[5]);
	if (n < 1 || n > MAX_CONNS || strlen(argv[1]) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "kosd-conn: bad arguments\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (dump != NULL && (all = fopen(dump, "w")) == NULL) {
		fprintf(stderr, "kosd-conn: %s: %s\n", dump, strerror(errno));
		return 2;
	}
	memcpy(sa.sun_path, argv[1], strlen(argv[1]) + 1);
	for (i = 0; i < n; i++) {
		pfd[i].fd = socket(AF_UNIX, SOCK_STREAM, 0);
		pfd[i].events = POLLIN;
		if (pfd[i].fd < 0 || connect(pfd[i].fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
			fprintf(stderr, "kosd-conn: connection %d: %s\n", i + 1, strerror(errno));
			return 2;
		}
		if (dlen > 0 && write(pfd[i].fd, data, dlen) != (ssize_t)dlen) {
			fprintf(stderr, "kosd-conn: write: %s\n", strerror(errno));
			return 2;
		}
	}
	printf("open %d\n", n);
	fflush(stdout);
	start = now();
	next_byte = start + trickle / 1000.0;
	open_n = n;
	while (open_n > 0 && now() - start < wait) {
		if (poll(pfd, (nfds_t)n, 50) < 0 && errno != EINTR)
			break;
		for (i = 0; i < n; i++) {
			ssize_t got;

			if (pfd[i].fd < 0 || pfd[i].revents == 0)
				continue;
			got = read(pfd[i].fd, buf, sizeof(buf));
			if (got > 0 && i == 0 && all != NULL)
				fwrite(buf, 1, (size_t)got, all);
			if (got > 0 && i == 0 && first_len < sizeof(first) - 1) {
				size_t take = (size_t)got;

				if (take > sizeof(first) - 1 - first_len)
					take = sizeof(first) - 1 - first_len;
				memcpy(first + first_len, buf, take);
				first_len += take;
				first[first_len] = '\0';
			}
			if (got <= 0) {
				close(pfd[i].fd);
				pfd[i].fd = -1;
				open_n--;
			}
		}
		if (trickle > 0 && now() >= next_byte) {
			for (i = 0; i < n; i++)
				if (pfd[i].fd >= 0)
					(void)!write(pfd[i].fd, "a", 1);
			next_byte += trickle / 1000.0;
		}
	}
	if (all != NULL)
		fclose(all);
	first[strcspn(first, "\r\n")] = '\0';
	printf("closed %d of %d after %.1f s\nfirst: %s\n", n - open_n, n, now() - start, first);
	return 0;
}
