/* libFuzzer target for the ingest body decoder: gunzip, then the framing scan,
 * then JSON and row validation and key scope per element, exactly as a worker
 * runs it, and the same body through the turns decoder (both must agree on
 * the framing). The first input byte picks gzip or plain and a key scope; the
 * rest is the body. It also checks that whatever the sink's jsoncheck accepts
 * as metadata, cJSON (the collector) parses as an object. */
#include <cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ingest_json.h"
#include "ingest_turns.h"
#include "jsoncheck.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ingest_limits lim;
	struct ingest_scope scopes[3] = { { NULL, NULL }, { "proj", NULL }, { NULL, "acme" } };
	struct ingest_batch batch;
	char err[512];
	struct buf inflated;
	cJSON *turns = NULL;
	int status, turns_status;
	bool nul;

	if (size < 1)
		return 0;
	lim.max_inflated_bytes = 1 << 20;
	lim.max_batch_rows = 500;
	lim.max_element_values = 4096;
	lim.max_reject_raw_bytes = 256;
	row_limits_default(&lim.row);
	status = ingest_decode((const char *)data + 1, size - 1, data[0] & 1, &lim,
			       &scopes[(data[0] >> 1) % 3], 1.8e9, &batch, err, sizeof(err));
	if (status == 200 && batch.nrows + batch.nrejects + batch.duplicates != batch.total)
		__builtin_trap(); /* every element is stored, rejected or a duplicate */
	for (int i = 0; status == 200 && i < batch.nrejects; i++)
		if (strlen(batch.rejects[i].raw) > lim.max_reject_raw_bytes + 64)
			__builtin_trap(); /* a reject's raw text is cut at the cap */

	buf_init(&inflated, lim.max_inflated_bytes);
	turns_status = ingest_parse_array((const char *)data + 1, size - 1, data[0] & 1, &lim,
					  &inflated, &turns, err, sizeof(err));
	/* Turns parse every element rows parse (rows also skip those too big to
	 * be a row), so a body rows call malformed is malformed for turns too. */
	if ((status == 400 && turns_status != 400) ||
	    (status == 200 && turns_status == 200 && cJSON_GetArraySize(turns) != batch.total))
		__builtin_trap();
	cJSON_Delete(turns);
	buf_release(&inflated);
	ingest_batch_release(&batch);

	if (jsoncheck_object((const char *)data + 1, size - 1, &nul)) {
		cJSON *j = cJSON_ParseWithLength((const char *)data + 1, size - 1);
		if (!cJSON_IsObject(j))
			__builtin_trap(); /* the sink would send metadata the collector refuses */
		cJSON_Delete(j);
	}
	return 0;
}
