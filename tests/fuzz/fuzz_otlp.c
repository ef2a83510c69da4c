/* libFuzzer target for the OTLP trace decoders: the first input byte picks
 * binary protobuf or OTLP JSON and a key scope; the rest is the (inflated)
 * body, decoded exactly as a worker decodes it, then answered as the worker
 * answers (partialSuccess naming the rejects). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ingest_otlp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ingest_limits lim;
	struct ingest_scope scopes[3] = { { NULL, NULL }, { "proj", NULL }, { NULL, "acme" } };
	struct ingest_batch batch;
	struct buf answer;
	char err[512];
	bool proto;
	int status;

	if (size < 1)
		return 0;
	proto = data[0] & 1;
	lim.max_inflated_bytes = 1 << 20;
	lim.max_decoded_bytes = (size_t)1 << (20 + (data[0] >> 3) % 4); /* 1-8 MiB */
	lim.max_batch_rows = 500;
	lim.max_element_values = 4096;
	lim.max_reject_raw_bytes = 256;
	row_limits_default(&lim.row);
	memset(&batch, 0, sizeof(batch));
	status = (proto ? ingest_otlp_decode_proto : ingest_otlp_decode_json)(
		(const char *)data + 1, size - 1, &lim, &scopes[(data[0] >> 1) % 3], 1.8e9, &batch,
		err, sizeof(err));
	if (status != 200 && status != 400 && status != 413 && status != 503)
		__builtin_trap();
	/* Every GenAI span is stored, rejected or a duplicate; the others are
	 * ignored, so the three never pass the spans in the request. */
	if (status == 200 && batch.nrows + batch.nrejects + batch.duplicates > batch.total)
		__builtin_trap();
	for (int i = 0; status == 200 && i < batch.nrows; i++)
		if (!batch.rows[i].id || strlen(batch.rows[i].id) != 49 || !batch.rows[i].project)
			__builtin_trap(); /* ids are traceId-spanId in hex */
	for (int i = 0; status == 200 && i < batch.nrejects; i++)
		if (strlen(batch.rejects[i].raw) > lim.max_reject_raw_bytes + 64)
			__builtin_trap(); /* a reject's raw text is cut at the cap */
	buf_init(&answer, 0);
	if (status == 200 && batch.nrejects &&
	    !ingest_otlp_answer(proto, batch.nrejects, batch.rejects[0].reason, &answer))
		__builtin_trap();
	if (status != 200 && !ingest_otlp_status(proto, 3, err, &answer))
		__builtin_trap();
	buf_release(&answer);
	ingest_batch_release(&batch);
	return 0;
}
