/* vgsink-forktest: the documented fork behaviour, end to end. The parent
 * opens a sink and records; it forks while its sender thread is busy. The
 * child's calls on the parent's sink must fail with the fork message (and not
 * deadlock); the child then opens its own sink and delivers its rows. Both
 * flush. Prints one JSON line; exit 0 when everything behaved. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "simrow.h"
#include "vgsink.h"

static int forktest_record(vgsink *s, int who, int n)
{
	unsigned long long rnd = 0x1234567ULL + (unsigned long long)who;
	struct simrow r;

	for (int i = 0; i < n; i++) {
		simrow_make(&r, who, i, 5, 3, &rnd);
		if (vgsink_record(s, &r.row) != 0)
			return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	vgsink_config cfg;
	vgsink *s;
	char err[512];
	int rows = argc > 1 ? atoi(argv[1]) : 1000, status = 0;
	pid_t pid;

	vgsink_config_init(&cfg);
	cfg.batch_rows = 50;
	cfg.flush_interval_ms = 10;
	s = vgsink_open(&cfg, err, sizeof(err));
	if (!s) {
		fprintf(stderr, "forktest: %s\n", err);
		return 2;
	}
	forktest_record(s, 0, rows);
	pid = fork();
	if (pid == 0) {
		vgsink *mine;
		const char *msg;
		int rc = vgsink_record(s, &(vgsink_row){ .modality = "llm" });

		msg = vgsink_errstr(s);
		if (rc != -1 || !strstr(msg, "forked") || vgsink_flush(s, 100) != -1 ||
		    vgsink_close(s, 100) != -1) {
			fprintf(stderr, "child: the parent's sink did not refuse: %s\n", msg);
			_exit(3);
		}
		mine = vgsink_open(&cfg, err, sizeof(err));
		if (!mine || forktest_record(mine, 1, rows) != 0 ||
		    vgsink_close(mine, 30000) != 0) {
			fprintf(stderr, "child: own sink failed: %s\n",
				mine ? vgsink_errstr(mine) : err);
			_exit(4);
		}
		_exit(0);
	}
	if (pid < 0 || forktest_record(s, 2, rows) != 0)
		return 5;
	waitpid(pid, &status, 0);
	if (vgsink_close(s, 30000) != 0) {
		fprintf(stderr, "parent: %s\n", vgsink_errstr(s));
		return 6;
	}
	printf("{\"child_exit\":%d,\"rows_expected\":%d}\n",
	       WIFEXITED(status) ? WEXITSTATUS(status) : -1, 3 * rows);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
