/* row-fields: prints the cost row's field table (common/row_fields.c) as JSON,
 * so tests/test_schema.py can hold it against the live cost_rows columns.
 * A test tool, not part of the product. */
#include <stdio.h>

#include "buf.h"
#include "row_fields.h"

int main(void)
{
	struct buf out;
	int rc;

	buf_init(&out, 0);
	if (!row_fields_json(&out)) {
		fprintf(stderr, "row-fields: out of memory\n");
		return 1;
	}
	rc = fwrite(out.data, 1, out.len, stdout) == out.len ? 0 : 1;
	buf_release(&out);
	return rc;
}
