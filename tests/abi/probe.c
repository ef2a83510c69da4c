/* A worker as a program built against an older or newer vgsink.h would be:
 * compiled with -include of that header (tests/abi/vgsink_0.1.0.h is the first
 * one, as released), linked to today's libvgsink.so.0. Each struct it hands
 * over sits at the very end of a page whose next page is unmapped, so a
 * library that read or wrote past the caller's struct would crash here.
 * Usage: probe URL KEY ROWS [SET_NEWER_FIELD]; prints the stats as JSON. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Room for one object of size bytes that ends where a PROT_NONE page begins. */
static void *probe_guarded(size_t size)
{
	long page = sysconf(_SC_PAGESIZE);
	char *p = mmap(NULL, 2 * (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);

	if (p == MAP_FAILED || mprotect(p + page, (size_t)page, PROT_NONE) != 0) {
		perror("mmap");
		exit(2);
	}
	memset(p, 0xA5, (size_t)page); /* garbage before the struct, never read */
	return p + page - size;
}

int main(int argc, char **argv)
{
	vgsink_config *cfg = probe_guarded(sizeof(*cfg));
	vgsink_stats *st = probe_guarded(sizeof(*st));
	char err[512] = "";
	vgsink *s;
	int rows;

	if (argc < 4) {
		fprintf(stderr, "usage: probe URL KEY ROWS [SET_NEWER_FIELD]\n");
		return 2;
	}
	rows = atoi(argv[3]);
	vgsink_config_init(cfg);
	cfg->url = argv[1];
	cfg->api_key = argv[2];
	cfg->flush_interval_ms = 50;
#ifdef PROBE_NEWER
	cfg->probe_newer_field = argc > 4 ? atoi(argv[4]) : 0;
#endif
	s = vgsink_open(cfg, err, sizeof(err));
	if (!s) {
		printf("{\"open_error\": \"%s\"}\n", err);
		return 1;
	}
	for (int i = 0; i < rows; i++) {
		vgsink_row *row = probe_guarded(sizeof(*row));

		memset(row, 0, sizeof(*row));
		row->modality = "llm";
		row->model_id = "openai/gpt-4o-mini";
		row->provider = "openai";
		row->session_id = "abi-probe";
		row->cost_usd = 0.25;
		row->ttfb_ms = row->total_latency_ms = NAN;
		row->turn_index = i;
		if (vgsink_record(s, row) != 0) {
			printf("{\"record_error\": \"%s\"}\n", vgsink_errstr(s));
			return 1;
		}
	}
	if (vgsink_flush(s, 30000) != 0)
		fprintf(stderr, "flush: %s\n", vgsink_errstr(s));
	vgsink_stats_get(s, st);
	printf("{\"recorded\": %llu, \"sent\": %llu, \"dropped\": %llu, \"config_size\": %zu}\n",
	       (unsigned long long)st->recorded, (unsigned long long)st->sent,
	       (unsigned long long)st->dropped, sizeof(*cfg));
	return vgsink_close(s, 10000) == 0 ? 0 : 1;
}
