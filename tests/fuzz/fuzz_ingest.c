/* libFuzzer target for the ingest body decoder: gunzip, then JSON, then row
 * validation and key scope, exactly as a worker runs it. The first input byte
 * picks gzip or plain and a key scope; the rest is the body. It also checks
 * that whatever the sink's jsoncheck accepts as metadata, cJSON (the
 * collector) parses as an object. */
#include <cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "ingest_decode.h"
#include "jsoncheck.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ingest_limits lim;
	struct ingest_scope scopes[3] = { { NULL, NULL }, { "proj", NULL }, { NULL, "acme" } };
	struct ingest_batch batch;
	char err[512];
	int status;
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
	ingest_batch_release(&batch);

	if (jsoncheck_object((const char *)data + 1, size - 1, &nul)) {
		cJSON *j = cJSON_ParseWithLength((const char *)data + 1, size - 1);
		if (!cJSON_IsObject(j))
			__builtin_trap(); /* the sink would send metadata the collector refuses */
		cJSON_Delete(j);
	}
	return 0;
}
