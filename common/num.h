/* Exact decimal text for JSON numbers. The wire carries money as JSON numbers
 * (Python floats); we store the shortest decimal that reads back as the same
 * double, which is exactly what Python's repr() printed. */
#ifndef VG_NUM_H
#define VG_NUM_H

#include <stddef.h>

/* Writes the shortest round-trip decimal of a finite d into out (>= 32 bytes);
 * returns its length. Never uses an exponent PostgreSQL numeric cannot read. */
size_t num_format(double d, char *out, size_t outlen);

#endif
