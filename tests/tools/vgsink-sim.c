/* vgsink-sim: simulates a fleet worker. N threads record realistic cost rows
 * through libvgsink, then the sink is closed and its stats, with the exact
 * sum of the recorded costs, are printed as JSON (and, on request, sampled
 * while it runs). Tests and benchmarks use it. */
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "simrow.h"
#include "vgsink.h"

struct sim {
	vgsink *sink;
	long long rows; /* per thread */
	double rate;	/* rows/s per thread; 0: as fast as possible */
	int agents, tenants;
	int pad_bytes; /* random text added to each row's error_message */
	_Atomic long long cost_micro, failed;
	_Atomic bool done;
	int stats_every_ms;
};

struct sim_thread {
	struct sim *sim;
	int index;
};

static const char usage[] =
	"usage: vgsink-sim --url URL --key KEY --threads N --rows N [--rate R] [--agents A]\n"
	"                  [--tenants T] [--spool DIR] [--ca-file F] [--batch-rows N]\n"
	"                  [--queue-max-rows N] [--close-timeout-ms MS] [--verbose]\n"
	"                  [--spool-max-bytes N] [--pad-bytes N] [--flush-interval-ms MS]\n"
	"                  [--retry-initial-ms MS] [--retry-max-ms MS] [--stats-every-ms MS]\n"
	"                  [--agent-id ID] [--heartbeat-interval-ms MS] [--linger-ms MS]\n"
	"Each of N threads records --rows rows (at --rate rows/s per thread, default as\n"
	"fast as possible), then the sink is flushed (up to --close-timeout-ms, default\n"
	"60000) and closed. Prints the sink's stats as JSON with cost_usd_recorded, the\n"
	"exact sum of the costs recorded. Exit 0 when everything was answered, 1 when\n"
	"rows were left in the spool or lost. Without --queue-max-rows the queue is made\n"
	"big enough that no row can be dropped. --pad-bytes adds N random characters\n"
	"(1-4096) to each row's error_message, so batches barely compress.\n"
	"--stats-every-ms prints the sink's stats as one JSON line to stderr every MS\n"
	"while it runs (until the final stats are read).\n"
	"--agent-id turns on the sink's heartbeat (every --heartbeat-interval-ms, default\n"
	"15000), saying busy with N sessions while threads record and idle after;\n"
	"--linger-ms keeps the sink open that long after the flush so beats carry the\n"
	"final counters.\n";

/* Prints st as one JSON object (no newline). */
static void sim_print_stats(FILE *f, const vgsink_stats *st)
{
	fprintf(f,
		"{\"recorded\":%llu,\"sent\":%llu,\"duplicates\":%llu,\"rejected\":%llu,"
		"\"retries\":%llu,\"spooled\":%llu,\"dropped\":%llu,\"queued\":%llu,"
		"\"spooled_rows\":%llu,\"spool_bytes\":%llu,\"adopted\":%llu,"
		"\"rejected_bytes\":%llu,\"rejected_discarded\":%llu",
		(unsigned long long)st->recorded, (unsigned long long)st->sent,
		(unsigned long long)st->duplicates, (unsigned long long)st->rejected,
		(unsigned long long)st->retries, (unsigned long long)st->spooled,
		(unsigned long long)st->dropped, (unsigned long long)st->queued,
		(unsigned long long)st->spooled_rows, (unsigned long long)st->spool_bytes,
		(unsigned long long)st->adopted, (unsigned long long)st->rejected_bytes,
		(unsigned long long)st->rejected_discarded);
}

/* The sampler thread: one stats line to stderr every stats_every_ms. */
static void *sim_sample(void *arg)
{
	struct sim *sim = arg;
	vgsink_stats st;

	while (!atomic_load(&sim->done)) {
		vgsink_stats_get(sim->sink, &st);
		flockfile(stderr);
		sim_print_stats(stderr, &st);
		fputs("}\n", stderr);
		funlockfile(stderr);
		usleep((useconds_t)sim->stats_every_ms * 1000);
	}
	return NULL;
}

/* Fills out with n random characters (letters, digits, '-', '_') and a NUL. */
static void sim_pad(char *out, int n, unsigned long long *rnd)
{
	static const char abc[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned long long x = *rnd;

	for (int i = 0; i < n; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		out[i] = abc[(x >> 11) & 63];
	}
	out[n] = '\0';
	*rnd = x;
}

static void sim_log(int level, const char *msg, void *arg)
{
	(void)arg;
	fprintf(stderr, "vgsink[%d]: %s\n", level, msg);
}

static void *sim_run(void *arg)
{
	struct sim_thread *st = arg;
	struct sim *sim = st->sim;
	unsigned long long rnd = 0x9e3779b97f4a7c15ULL * (unsigned long long)(st->index + 1);
	struct simrow r;
	struct timespec start, now;
	char pad[4097];

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (long long n = 0; n < sim->rows; n++) {
		simrow_make(&r, st->index, n, sim->agents, sim->tenants, &rnd);
		if (sim->pad_bytes > 0) {
			sim_pad(pad, sim->pad_bytes, &rnd);
			r.row.error_message = pad;
		}
		if (vgsink_record(sim->sink, &r.row) != 0) {
			fprintf(stderr, "vgsink-sim: record: %s\n", vgsink_errstr(sim->sink));
			atomic_fetch_add(&sim->failed, 1);
			continue;
		}
		atomic_fetch_add(&sim->cost_micro, r.cost_micro);
		if (sim->rate > 0) {
			double due = (double)(n + 1) / sim->rate, el;
			clock_gettime(CLOCK_MONOTONIC, &now);
			el = (double)(now.tv_sec - start.tv_sec) +
			     (double)(now.tv_nsec - start.tv_nsec) / 1e9;
			if (due > el)
				usleep((useconds_t)((due - el) * 1e6));
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "key", required_argument, NULL, 'k' },
		{ "threads", required_argument, NULL, 't' },
		{ "rows", required_argument, NULL, 'r' },
		{ "rate", required_argument, NULL, 'R' },
		{ "agents", required_argument, NULL, 'a' },
		{ "tenants", required_argument, NULL, 'T' },
		{ "spool", required_argument, NULL, 's' },
		{ "ca-file", required_argument, NULL, 'c' },
		{ "batch-rows", required_argument, NULL, 'b' },
		{ "close-timeout-ms", required_argument, NULL, 'C' },
		{ "queue-max-rows", required_argument, NULL, 'Q' },
		{ "spool-max-bytes", required_argument, NULL, 'S' },
		{ "pad-bytes", required_argument, NULL, 'P' },
		{ "flush-interval-ms", required_argument, NULL, 'F' },
		{ "retry-initial-ms", required_argument, NULL, 'I' },
		{ "retry-max-ms", required_argument, NULL, 'M' },
		{ "stats-every-ms", required_argument, NULL, 'E' },
		{ "agent-id", required_argument, NULL, 'A' },
		{ "heartbeat-interval-ms", required_argument, NULL, 'H' },
		{ "linger-ms", required_argument, NULL, 'L' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sim sim = { .rows = 1000, .agents = 20, .tenants = 5 };
	vgsink_config cfg;
	int threads = 1, close_ms = 60000, linger_ms = 0, opt, rc;
	bool queue_set = false;
	pthread_t *tids, sampler;
	struct sim_thread *st;
	vgsink_stats stats;
	char err[512];
	long long cost;

	vgsink_config_init(&cfg);
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'u': cfg.url = optarg; break;
		case 'k': cfg.api_key = optarg; break;
		case 't': threads = atoi(optarg); break;
		case 'r': sim.rows = atoll(optarg); break;
		case 'R': sim.rate = atof(optarg); break;
		case 'a': sim.agents = atoi(optarg); break;
		case 'T': sim.tenants = atoi(optarg); break;
		case 's': cfg.spool_dir = optarg; break;
		case 'c': cfg.ca_file = optarg; break;
		case 'b': cfg.batch_rows = atoi(optarg); break;
		case 'C': close_ms = atoi(optarg); break;
		case 'Q':
			cfg.queue_max_rows = (size_t)atoll(optarg);
			queue_set = true;
			break;
		case 'S': cfg.spool_max_bytes = (size_t)atoll(optarg); break;
		case 'P': sim.pad_bytes = atoi(optarg); break;
		case 'F': cfg.flush_interval_ms = atoi(optarg); break;
		case 'I': cfg.retry_initial_ms = atoi(optarg); break;
		case 'M': cfg.retry_max_ms = atoi(optarg); break;
		case 'E': sim.stats_every_ms = atoi(optarg); break;
		case 'A': cfg.agent_id = optarg; break;
		case 'H': cfg.heartbeat_interval_ms = atoi(optarg); break;
		case 'L': linger_ms = atoi(optarg); break;
		case 'v': cfg.log = sim_log; break;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return 2;
		}
	}
	if (threads < 1 || sim.rows < 0 || sim.agents < 1 || sim.tenants < 1 || sim.pad_bytes < 0 ||
	    sim.pad_bytes > 4096 || sim.stats_every_ms < 0 || linger_ms < 0) {
		fputs(usage, stderr);
		return 2;
	}
	if (!queue_set && (size_t)threads * (size_t)sim.rows > cfg.queue_max_rows)
		cfg.queue_max_rows =
			(size_t)threads * (size_t)sim.rows; /* never drop in a simulation */
	sim.sink = vgsink_open(&cfg, err, sizeof(err));
	if (!sim.sink) {
		fprintf(stderr, "vgsink-sim: %s\n", err);
		return 2;
	}
	tids = calloc((size_t)threads, sizeof(*tids));
	st = calloc((size_t)threads, sizeof(*st));
	if (!tids || !st)
		return 2;
	if (sim.stats_every_ms > 0 && pthread_create(&sampler, NULL, sim_sample, &sim) != 0)
		return 2;
	if (vgsink_set_presence(sim.sink, "busy", threads) != 0)
		return 2;
	for (int i = 0; i < threads; i++) {
		st[i] = (struct sim_thread){ &sim, i };
		pthread_create(&tids[i], NULL, sim_run, &st[i]);
	}
	for (int i = 0; i < threads; i++)
		pthread_join(tids[i], NULL);
	/* Flush, read the final stats, then close (which spools anything left). */
	if (vgsink_set_presence(sim.sink, "idle", 0) != 0)
		return 2;
	rc = vgsink_flush(sim.sink, close_ms);
	if (rc != 0)
		fprintf(stderr, "vgsink-sim: %s\n", vgsink_errstr(sim.sink));
	if (linger_ms > 0)
		usleep((useconds_t)linger_ms * 1000);
	vgsink_stats_get(sim.sink, &stats);
	if (sim.stats_every_ms > 0) {
		atomic_store(&sim.done, true);
		pthread_join(sampler, NULL);
	}
	if (vgsink_close(sim.sink, 0) != 0)
		rc = -1;
	cost = atomic_load(&sim.cost_micro);
	sim_print_stats(stdout, &stats);
	printf(",\"record_failed\":%lld,\"delivered\":%s,\"cost_usd_recorded\":\"%lld.%06lld\"}\n",
	       (long long)atomic_load(&sim.failed), rc == 0 ? "true" : "false", cost / 1000000,
	       cost % 1000000);
	free(tids);
	free(st);
	return rc == 0 ? 0 : 1;
}
