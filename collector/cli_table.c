/* Cells for text tables on a terminal: numbers with separators, escaped names
 * and their widths, shared by the CLI commands that print tables. */
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "cli_table.h"

void cli_table_number(const char *s, int frac, char *out, size_t outlen)
{
	const char *dot = strchr(s, '.');
	size_t pos = 0, sign = s[0] == '-';
	size_t ilen = (dot ? (size_t)(dot - s) : strlen(s)) - sign;
	int have = dot ? (int)strlen(dot + 1) : 0;

	if (sign && pos + 1 < outlen)
		out[pos++] = '-';
	for (size_t i = 0; i < ilen && pos + 2 < outlen; i++) {
		if (i > 0 && (ilen - i) % 3 == 0)
			out[pos++] = ',';
		out[pos++] = s[sign + i];
	}
	if ((dot || frac > 0) && pos + 1 < outlen)
		out[pos++] = '.';
	for (int i = 0; i < have && pos + 1 < outlen; i++)
		out[pos++] = dot[1 + i];
	for (int i = have; i < frac && pos + 1 < outlen; i++)
		out[pos++] = '0';
	out[pos] = '\0';
}

void cli_table_escape(struct buf *out, const char *name)
{
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		if (*p == '\\')
			buf_puts(out, "\\\\");
		else if (*p < 0x20 || *p == 0x7F)
			buf_printf(out, "\\x%02x", *p);
		else if (*p == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F)
			buf_printf(out, "\\u%04x", *++p);
		else
			buf_putc(out, (char)*p);
	}
}

int cli_table_width(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += ((unsigned char)*s & 0xC0) != 0x80;
	return n;
}

void cli_table_cell(const char *s, int width, bool right, bool first)
{
	/* Padded by characters, not bytes: names may be UTF-8. */
	int pad = width - cli_table_width(s);

	printf("%s%*s%s%*s", first ? "" : "  ", right ? pad : 0, "", s, right ? 0 : pad, "");
}

void cli_table_rule(int width)
{
	for (int i = 0; i < width; i++)
		putchar('-');
	putchar('\n');
}
