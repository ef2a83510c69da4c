/* vgsink-replay, an operator's tool installed in PREFIX/bin: sends what a
 * spool dir holds (and, with --rejected, what the collector refused earlier)
 * and reports what happened, as JSON. Uses libvgsink's public API only. */
#include <dirent.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vgsink.h"

static const char usage[] =
	"usage: vgsink-replay SPOOL_DIR [--url URL --key KEY] [--rejected] [--ca-file F]\n"
	"                     [--timeout-ms MS] [--verbose]\n"
	"Sends SPOOL_DIR's pending batches to the collector (URL and KEY default to\n"
	"$VOICEGW_COLLECTOR_URL and $VOICEGW_API_KEY). --rejected first moves the batches\n"
	"in SPOOL_DIR/rejected/ back to pending, e.g. after a revoked key was replaced.\n"
	"Prints the sink's stats as JSON; exit 0 when every batch was answered.\n";

static void replay_log(int level, const char *msg, void *arg)
{
	(void)arg;
	fprintf(stderr, "vgsink[%d]: %s\n", level, msg);
}

/* Moves SPOOL/rejected/NAME.vgb back to SPOOL/NAME.vgb; returns how many. */
static int replay_unreject(const char *dir)
{
	char sub[4096], from[8192], to[8192];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(sub, sizeof(sub), "%s/rejected", dir);
	d = opendir(sub);
	if (!d)
		return 0;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		if (len < 5 || strcmp(de->d_name + len - 4, ".vgb") != 0)
			continue;
		snprintf(from, sizeof(from), "%s/%s", sub, de->d_name);
		snprintf(to, sizeof(to), "%s/%s", dir, de->d_name);
		if (rename(from, to) == 0)
			n++;
	}
	closedir(d);
	return n;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "key", required_argument, NULL, 'k' },
		{ "rejected", no_argument, NULL, 'r' },
		{ "ca-file", required_argument, NULL, 'c' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	vgsink_config cfg;
	vgsink_stats st;
	vgsink *s;
	char err[512];
	int opt, timeout = 60000, unrejected = 0, rc;
	int rejected = 0;

	vgsink_config_init(&cfg);
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'u': cfg.url = optarg; break;
		case 'k': cfg.api_key = optarg; break;
		case 'r': rejected = 1; break;
		case 'c': cfg.ca_file = optarg; break;
		case 't': timeout = atoi(optarg); break;
		case 'v': cfg.log = replay_log; break;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return 2;
		}
	}
	if (optind != argc - 1) {
		fputs(usage, stderr);
		return 2;
	}
	cfg.spool_dir = argv[optind];
	if (rejected)
		unrejected = replay_unreject(cfg.spool_dir);
	s = vgsink_open(&cfg, err, sizeof(err));
	if (!s) {
		fprintf(stderr, "vgsink-replay: %s\n", err);
		return 2;
	}
	rc = vgsink_flush(s, timeout);
	if (rc != 0)
		fprintf(stderr, "vgsink-replay: %s\n", vgsink_errstr(s));
	vgsink_stats_get(s, &st);
	if (vgsink_close(s, 0) != 0)
		rc = -1;
	printf("{\"unrejected_batches\":%d,\"recorded\":%llu,\"adopted\":%llu,\"sent\":%llu,"
	       "\"duplicates\":%llu,\"rejected\":%llu,\"retries\":%llu,\"dropped\":%llu,"
	       "\"queued\":%llu,\"spooled_rows\":%llu,\"spool_bytes\":%llu,"
	       "\"rejected_bytes\":%llu,\"rejected_discarded\":%llu,\"complete\":%s}\n",
	       unrejected, (unsigned long long)st.recorded, (unsigned long long)st.adopted,
	       (unsigned long long)st.sent, (unsigned long long)st.duplicates,
	       (unsigned long long)st.rejected, (unsigned long long)st.retries,
	       (unsigned long long)st.dropped, (unsigned long long)st.queued,
	       (unsigned long long)st.spooled_rows, (unsigned long long)st.spool_bytes,
	       (unsigned long long)st.rejected_bytes, (unsigned long long)st.rejected_discarded,
	       rc == 0 ? "true" : "false");
	return rc == 0 ? 0 : 1;
}
