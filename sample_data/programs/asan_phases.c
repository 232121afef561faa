/*
 * asan_phases.c - a heap workload in phases, built with -fsanitize=address.
 *
 * AddressSanitizer reserves its shadow (1/8 of the address space: ~16 TiB of
 * HighShadow plus LowShadow and the PROT_NONE ShadowGap, ~20 TiB in all) with
 * MAP_NORESERVE at start-up; a shadow page only materialises when ASan writes
 * the shadow of some application memory (poisoning redzones on malloc, or
 * marking freed memory). Each phase below is separated by a pause so that a
 * recorder sampling every 50-100 ms sees it as its own snapshot group:
 *
 *   1. many small objects   64 B .. 4 KiB, ~24 MiB in all (dense shadow
 *                           for the allocator's size-class regions)
 *   2. free every other one (shadow poisoned as "freed"; quarantine holds it)
 *   3. a few big buffers    4 x 8 MiB, only the first quarter touched
 *                           (ASan mmaps these separately: the shadow of the
 *                           untouched part is written too - by poisoning)
 *   4. free everything      (quarantine, then release)
 *
 * The program writes "phase N" to stdout as it enters a phase and exits 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define N_SMALL 12000
#define N_BIG 4
#define BIG_SIZE (8u << 20)

static void pause_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static void phase(int n, const char *what)
{
	printf("phase %d: %s\n", n, what);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	long gap = argc > 1 ? atol(argv[1]) : 400;
	static char *small[N_SMALL];
	static char *big[N_BIG];
	unsigned seed = 12345;

	phase(0, "start");
	pause_ms(gap);

	phase(1, "allocate small objects");
	for (int i = 0; i < N_SMALL; i++) {
		seed = seed * 1103515245u + 12345u;
		size_t size = 64u << ((seed >> 16) % 7); /* 64 B .. 4 KiB */
		small[i] = malloc(size);
		memset(small[i], i & 0xff, size);
	}
	pause_ms(gap);

	phase(2, "free every other small object");
	for (int i = 0; i < N_SMALL; i += 2) {
		free(small[i]);
		small[i] = NULL;
	}
	pause_ms(gap);

	phase(3, "allocate big buffers, touch a quarter");
	for (int i = 0; i < N_BIG; i++) {
		big[i] = malloc(BIG_SIZE);
		memset(big[i], 0x5a, BIG_SIZE / 4);
	}
	pause_ms(gap);

	phase(4, "free everything");
	for (int i = 0; i < N_SMALL; i++)
		free(small[i]);
	for (int i = 0; i < N_BIG; i++)
		free(big[i]);
	pause_ms(gap);

	phase(5, "exit");
	return 0;
}
