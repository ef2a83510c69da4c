/* CSV output: one RFC 4180 field at a time, with the formula-cell rule the
 * rollup and reconcile reports share. */
#include <string.h>

#include "buf.h"
#include "csv.h"

void csv_field(struct buf *out, const char *s, bool neutralise)
{
	bool formula = neutralise && s && s[0] && strchr("=+-@\t\r", s[0]);

	if (!s)
		return;
	if (!formula && !s[strcspn(s, ",\"\r\n")]) {
		buf_puts(out, s);
		return;
	}
	buf_putc(out, '"');
	if (formula)
		buf_putc(out, '\'');
	for (; *s; s++) {
		if (*s == '"')
			buf_putc(out, '"');
		buf_putc(out, *s);
	}
	buf_putc(out, '"');
}
