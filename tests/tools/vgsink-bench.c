/* vgsink-bench: the cost of one vgsink_record call (median and p99, in ns)
 * with 1, 4 and 8 recording threads while batches go to a real collector,
 * over a few pooled rounds, and the memory of 1,000,000 queued rows (heap
 * bytes from mallinfo2, and resident memory). For `make bench-sink`. */
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "simrow.h"
#include "vgsink.h"

struct bench_thread {
	vgsink *sink;
	int index;
	long rows;
	unsigned *ns; /* one per call */
};

static unsigned long long bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec;
}

static void *bench_run(void *arg)
{
	struct bench_thread *bt = arg;
	unsigned long long rnd = 0x2545f4914f6cdd1dULL * (unsigned long long)(bt->index + 1);
	struct simrow r;

	for (long n = 0; n < bt->rows; n++) {
		unsigned long long t0;
		simrow_make(&r, bt->index, n, 50, 20, &rnd);
		t0 = bench_now_ns();
		if (vgsink_record(bt->sink, &r.row) != 0) {
			fprintf(stderr, "record: %s\n", vgsink_errstr(bt->sink));
			exit(1);
		}
		bt->ns[n] = (unsigned)(bench_now_ns() - t0);
	}
	return NULL;
}

static int bench_cmp(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;

	return x < y ? -1 : x > y;
}

static long bench_rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

static vgsink *bench_open(const char *url, const char *key, size_t queue_max)
{
	vgsink_config cfg;
	char err[512];
	vgsink *s;

	vgsink_config_init(&cfg);
	cfg.url = url;
	cfg.api_key = key;
	cfg.queue_max_rows = queue_max;
	s = vgsink_open(&cfg, err, sizeof(err));
	if (!s) {
		fprintf(stderr, "vgsink_open: %s\n", err);
		exit(1);
	}
	return s;
}

/* The machine's own speed just before a round: the cost of one clock read
 * (every call time includes one) and of a fixed run of integer arithmetic.
 * In a VM both can change by half for seconds at a time; printed beside the
 * rounds, they tell a slow machine from a slow record call. */
struct bench_calib {
	double clock_ns, work_ns;
};

static struct bench_calib bench_calibrate(void)
{
	volatile unsigned long long x = 1;
	unsigned long long t0 = bench_now_ns(), t1, t2;
	struct bench_calib c;

	for (int i = 0; i < 100000; i++)
		(void)bench_now_ns();
	t1 = bench_now_ns();
	for (int i = 0; i < 1000000; i++)
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
	t2 = bench_now_ns();
	c.clock_ns = (double)(t1 - t0) / 100000;
	c.work_ns = (double)(t2 - t1) / 1000000;
	return c;
}

/* One round: nthreads record `rows` rows each into a fresh sink; their call
 * times go to all + *n. Returns the round's median; the sink is closed (every
 * row answered) before the next round starts. */
static unsigned bench_round(const char *url, const char *key, int nthreads, long rows,
			    unsigned *all, size_t *n, uint64_t *sent, struct bench_calib *calib)
{
	vgsink *s = bench_open(url, key, (size_t)nthreads * (size_t)rows + 1);
	struct bench_thread *bt = calloc((size_t)nthreads, sizeof(*bt));
	pthread_t *tid = calloc((size_t)nthreads, sizeof(*tid));
	size_t first = *n;
	vgsink_stats st;
	unsigned median;

	*calib = bench_calibrate();
	for (int i = 0; i < nthreads; i++) {
		bt[i] = (struct bench_thread){ s, i, rows,
					       malloc(sizeof(unsigned) * (size_t)rows) };
		pthread_create(&tid[i], NULL, bench_run, &bt[i]);
	}
	for (int i = 0; i < nthreads; i++) {
		pthread_join(tid[i], NULL);
		memcpy(all + *n, bt[i].ns, sizeof(unsigned) * (size_t)rows);
		*n += (size_t)rows;
		free(bt[i].ns);
	}
	vgsink_stats_get(s, &st);
	*sent += st.sent;
	if (vgsink_close(s, 120000) != 0)
		fprintf(stderr, "close: %s\n", vgsink_errstr(s));
	qsort(all + first, *n - first, sizeof(*all), bench_cmp);
	median = all[first + (*n - first) / 2];
	free(bt);
	free(tid);
	return median;
}

/* Several rounds pooled: one round is only ~50 ms of recording, so a burst of
 * other work on the machine (autovacuum after the last round's rows, say)
 * can move its median. The pooled figures are printed with the rounds'
 * medians beside them, so the spread is in plain sight. */
static void bench_threads(const char *url, const char *key, int nthreads, long rows, int rounds)
{
	unsigned *all = malloc(sizeof(unsigned) * (size_t)nthreads * (size_t)rows * (size_t)rounds);
	unsigned lo = ~0u, hi = 0;
	struct bench_calib clo = { 1e9, 1e9 }, chi = { 0, 0 };
	uint64_t sent = 0;
	size_t n = 0;

	for (int k = 0; k < rounds; k++) {
		struct bench_calib c;
		unsigned m = bench_round(url, key, nthreads, rows, all, &n, &sent, &c);

		lo = m < lo ? m : lo;
		hi = m > hi ? m : hi;
		clo.clock_ns = c.clock_ns < clo.clock_ns ? c.clock_ns : clo.clock_ns;
		chi.clock_ns = c.clock_ns > chi.clock_ns ? c.clock_ns : chi.clock_ns;
		clo.work_ns = c.work_ns < clo.work_ns ? c.work_ns : clo.work_ns;
		chi.work_ns = c.work_ns > chi.work_ns ? c.work_ns : chi.work_ns;
	}
	qsort(all, n, sizeof(*all), bench_cmp);
	printf("vgsink_record, %d thread%s: %zu calls in %d rounds, median %u ns, p99 %u ns, "
	       "max %u ns (round medians %u to %u ns; %llu rows sent while recording;"
	       " before the rounds a clock read took %.1f to %.1f ns and a fixed step of"
	       " arithmetic %.2f to %.2f ns)\n",
	       nthreads, nthreads > 1 ? "s" : " ", n, rounds, all[n / 2], all[n * 99 / 100],
	       all[n - 1], lo, hi, (unsigned long long)sent, clo.clock_ns, chi.clock_ns,
	       clo.work_ns, chi.work_ns);
	free(all);
}

int main(int argc, char **argv)
{
	const char *url, *key, *dead_url = "http://127.0.0.1:9";
	long rows = 200000, rss_rows = 1000000;
	int rounds = 3;
	vgsink *s;
	long before, after;
	struct mallinfo2 m0, m1;
	unsigned long long rnd = 42;
	struct simrow r;

	if (argc < 3) {
		fprintf(stderr,
			"usage: vgsink-bench URL KEY [CALLS_PER_ROUND] [RSS_ROWS] [ROUNDS]\n");
		return 2;
	}
	url = argv[1];
	key = argv[2];
	if (argc > 3)
		rows = atol(argv[3]);
	if (argc > 4)
		rss_rows = atol(argv[4]);
	if (argc > 5)
		rounds = atoi(argv[5]);
	if (rows < 8 || rss_rows < 1 || rounds < 1) {
		fprintf(stderr,
			"vgsink-bench: need CALLS_PER_ROUND >= 8, RSS_ROWS >= 1, ROUNDS >= 1\n");
		return 2;
	}
	bench_threads(url, key, 1, rows, rounds);
	bench_threads(url, key, 4, rows / 4, rounds);
	bench_threads(url, key, 8, rows / 8, rounds);

	/* Memory: nothing can be sent (port 9 is closed), so every row stays queued. */
	s = bench_open(dead_url, key, (size_t)rss_rows + 1);
	before = bench_rss_kib();
	m0 = mallinfo2();
	for (long n = 0; n < rss_rows; n++) {
		simrow_make(&r, 0, n, 50, 20, &rnd);
		vgsink_record(s, &r.row);
	}
	m1 = mallinfo2();
	after = bench_rss_kib();
	printf("memory per queued row: %.0f bytes (heap in use, mallinfo2, over %ld queued rows; "
	       "target <= 183, half of 367)\n",
	       ((double)(m1.uordblks + m1.hblkhd) - (double)(m0.uordblks + m0.hblkhd)) /
		       (double)rss_rows,
	       rss_rows);
	printf("RSS for %ld queued rows: %.1f MiB (%.0f bytes per row; process total %.1f MiB)\n",
	       rss_rows, (double)(after - before) / 1024.0,
	       (double)(after - before) * 1024.0 / (double)rss_rows, (double)after / 1024.0);
	vgsink_close(s, 0);
	return 0;
}
