/* common/b64url.c: RFC 4648's test vectors in the URL alphabet, the refusals,
 * and API keys made with it. One named case per row. */
#include <string.h>

#include "auth.h"
#include "b64url.h"
#include "unit.h"

/* name, bytes, their length, base64url without padding */
// clang-format off
#define B64URL_VECTORS(X) \
	X(b64url_encodes_nothing_as_nothing, "", 0, "") \
	X(b64url_encodes_one_byte_in_two_characters, "f", 1, "Zg") \
	X(b64url_encodes_two_bytes_in_three_characters, "fo", 2, "Zm8") \
	X(b64url_encodes_three_bytes_in_four_characters, "foo", 3, "Zm9v") \
	X(b64url_encodes_foob, "foob", 4, "Zm9vYg") \
	X(b64url_encodes_fooba, "fooba", 5, "Zm9vYmE") \
	X(b64url_encodes_foobar, "foobar", 6, "Zm9vYmFy") \
	X(b64url_uses_dash_and_underscore, "\xfb\xff\xbf", 3, "-_-_") \
	X(b64url_encodes_nul_bytes, "\0\0", 2, "AAA")
// clang-format on

static void b64url_case(int *unit_failed_, const char *bytes, size_t len, const char *want)
{
	char enc[64];
	unsigned char dec[64];
	size_t n = 0;

	CHECK(b64url_encoded_len(len) == strlen(want));
	CHECK_MSG(b64url_encode(bytes, len, enc, sizeof(enc)) && strcmp(enc, want) == 0,
		  "encoded \"%s\", want \"%s\"", enc, want);
	CHECK(!b64url_encode(bytes, len, enc, strlen(want))); /* no room for the NUL */
	CHECK_MSG(b64url_decode(want, dec, sizeof(dec), &n) && n == len &&
			  memcmp(dec, bytes, len) == 0,
		  "%s does not decode back", want);
}

#define B64URL_CASE(name, bytes, len, want)                                                        \
	UNIT_TEST(name)                                                                            \
	{                                                                                          \
		b64url_case(unit_failed_, bytes, len, want);                                       \
	}
B64URL_VECTORS(B64URL_CASE)

UNIT_TEST(b64url_decode_refuses_padding_and_the_standard_alphabet)
{
	unsigned char dec[16];
	size_t n;

	CHECK(!b64url_decode("Zg==", dec, sizeof(dec), &n));
	CHECK(!b64url_decode("+/+/", dec, sizeof(dec), &n));
	CHECK(!b64url_decode("Zm9v Zg", dec, sizeof(dec), &n));
}

UNIT_TEST(b64url_decode_refuses_more_bytes_than_room)
{
	unsigned char dec[2];
	size_t n;

	CHECK(!b64url_decode("Zm9v", dec, sizeof(dec), &n));
	CHECK(b64url_decode("Zm8", dec, sizeof(dec), &n) && n == 2);
}

UNIT_TEST(auth_keys_are_the_prefix_and_43_base64url_characters)
{
	char key[AUTH_KEY_LEN + 1];
	unsigned char raw[40];
	size_t plen = strlen(AUTH_KEY_PREFIX), n = 0;

	CHECK(auth_key_generate(key));
	CHECK(strlen(key) == AUTH_KEY_LEN && strncmp(key, AUTH_KEY_PREFIX, plen) == 0);
	CHECK(strlen(key + plen) == 43);
	CHECK(b64url_decode(key + plen, raw, sizeof(raw), &n) && n == 32);
}
