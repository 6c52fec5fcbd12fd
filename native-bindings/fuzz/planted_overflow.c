/*
 * planted_overflow.c: a fuzz target with a planted heap overread, built only
 * as a replay binary: the test that the corpus replay can fail (a crashing
 * input must end the replay non-zero and be named) runs it.  Never a product
 * decoder.
 */
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
volatile uint8_t planted_sink;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* "PLANTED" then a length byte that is trusted: reads past the input. */
	if (size >= 8 && memcmp(data, "PLANTED", 7) == 0)
		planted_sink = data[8 + data[7]];
	return (0);
}
