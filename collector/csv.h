/* CSV output (RFC 4180) for the API's and the CLI's CSV reports. */
#ifndef VG_CSV_H
#define VG_CSV_H

#include <stdbool.h>

struct buf;

/* Appends s as one RFC 4180 field: quoted when it holds a comma, quote, CR or
 * LF; nothing for NULL. With neutralise, a cell a spreadsheet would read as a
 * formula (=, +, -, @, tab, CR first) gets a ' in front and is quoted, as
 * OWASP advises. */
void csv_field(struct buf *out, const char *s, bool neutralise);

#endif
