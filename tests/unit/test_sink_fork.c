/* fork() parks the sink's sender thread between callbacks for the moment of
 * the fork (sink_fork.c): the child's copy of the sink shows it parked, and
 * the parent's sender runs on afterwards. */
#include <sys/wait.h>
#include <unistd.h>

#include "sink_int.h"
#include "sinkrow.h"
#include "unit.h"

UNIT_TEST(sink_fork_parks_the_sender_and_releases_it_in_the_parent)
{
	vgsink_config cfg;
	vgsink_row row;
	vgsink_stats before, st;
	char err[512];
	int status = -1;
	vgsink *s;
	pid_t pid;

	sinkrow_refused_config(&cfg);
	s = vgsink_open(&cfg, err, sizeof(err));
	CHECK_MSG(s != NULL, "%s", err);
	if (!s)
		return;
	row = sinkrow_minimal();
	CHECK(vgsink_record(s, &row) == 0);
	usleep(20 * 1000);
	vgsink_stats_get(s, &before);
	pid = fork();
	if (pid == 0)
		_exit(s->fork_paused ? 0 : 1); /* the state the fork copied */
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
	CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "the sender was not parked at the fork (status %d)", status);
	/* Released: the sender goes on retrying, and recording still works. */
	CHECK(vgsink_record(s, &row) == 0);
	for (int i = 0; i < 200; i++) {
		vgsink_stats_get(s, &st);
		if (st.retries > before.retries)
			break;
		usleep(10 * 1000);
	}
	CHECK_MSG(st.recorded == 2 && st.retries > before.retries,
		  "recorded %llu, retries %llu then %llu", (unsigned long long)st.recorded,
		  (unsigned long long)before.retries, (unsigned long long)st.retries);
	pthread_mutex_lock(&s->lock);
	CHECK(!s->fork_pause && !s->fork_paused);
	pthread_mutex_unlock(&s->lock);
	vgsink_close(s, 0);
}
