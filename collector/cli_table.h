/* Cells for text tables on a terminal (vgcollector rollup, reconcile, agents):
 * exact decimal numbers with thousands separators, names with control
 * characters escaped, and the columns a cell takes. */
#ifndef VG_CLI_TABLE_H
#define VG_CLI_TABLE_H

#include <stdbool.h>
#include <stddef.h>

struct buf;

/* Writes the decimal s (an optional '-' first) into out with thousands
 * separators in its integer part and its fraction padded with zeros to at
 * least frac digits. Exact: only separators and zeros are added. */
void cli_table_number(const char *s, int frac, char *out, size_t outlen);

/* Appends name for a terminal: C0 controls and DEL as \xNN, C1 controls
 * (U+0080..U+009F) as \u00NN and a backslash as \\, so a name can neither
 * drive the terminal nor pass for an escaped one. */
void cli_table_escape(struct buf *out, const char *name);

/* Columns s takes on a terminal: one per UTF-8 character. */
int cli_table_width(const char *s);

/* Prints s padded to width columns, right-aligned or left, after two spaces
 * unless it is the row's first cell. */
void cli_table_cell(const char *s, int width, bool right, bool first);

/* Prints a line of width dashes: the rule above a totals line. */
void cli_table_rule(int width);

#endif
