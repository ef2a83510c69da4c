/* rollup-shape: prints the rollup tables' shape (collector/rollup_shape.c) as
 * JSON, so the tests build their checks from it and tests/test_schema.py holds
 * it against the live rollup tables. A test tool, not part of the product. */
#include <stdio.h>

#include "buf.h"
#include "rollup_shape.h"

int main(void)
{
	struct buf out;
	int rc;

	buf_init(&out, 0);
	if (!rollup_shape_json(&out)) {
		fprintf(stderr, "rollup-shape: out of memory\n");
		return 1;
	}
	rc = fwrite(out.data, 1, out.len, stdout) == out.len ? 0 : 1;
	buf_release(&out);
	return rc;
}
