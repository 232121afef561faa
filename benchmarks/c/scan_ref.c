/*
 * Reference PAGEMAP_SCAN loop in C, the baseline pmviz is measured against.
 *
 * usage: scan_ref PID START END ITERATIONS [MODE]
 *   MODE "scan"  (default): full scan of [START, END) with return_mask = every category and no
 *                filter, into one reused, pre-faulted vector, resuming after a full vector from
 *                the end of the last region (never from walk_end, spec §3.4).
 *   MODE "page": a 1-page scan at START (fixed per-call cost).
 * Prints: n_regions n_pages best_ns median_ns cpu_best_ns cpu_median_ns (per scan; wall
 * clock, then this thread's CPU time, which a busy shared machine disturbs less).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

/* The uapi structs (spec §1.2-§1.3), spelled out: distro headers may predate Linux 6.7. */
struct page_region {
	uint64_t start, end, categories;
};

struct pm_scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};

#define PAGEMAP_SCAN 0xC0606610 /* _IOWR('f', 16, struct pm_scan_arg) */

#define CAP (1u << 20) /* regions; 24 MiB, pre-faulted once */

static uint64_t now_ns(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static long scan(int fd, struct page_region *vec, uint64_t start, uint64_t end, uint64_t *pages)
{
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = start,
		.end = end,
		.return_mask = 0x1ff,
	};
	long n = 0;
	for (;;) {
		arg.vec = (uint64_t)(uintptr_t)(vec + n);
		arg.vec_len = CAP - n;
		long rc = ioctl(fd, PAGEMAP_SCAN, &arg);
		if (rc < 0) {
			perror("PAGEMAP_SCAN");
			exit(1);
		}
		n += rc;
		if ((uint64_t)rc < arg.vec_len || n == 0)
			break;
		arg.start = vec[n - 1].end;
		if (arg.start >= end || n == CAP)
			break;
	}
	*pages = 0;
	for (long i = 0; i < n; i++)
		*pages += (vec[i].end - vec[i].start) / 4096;
	return n;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: %s PID START END ITERATIONS [scan|page]\n", argv[0]);
		return 2;
	}
	char path[64];
	snprintf(path, sizeof(path), "/proc/%s/pagemap", argv[1]);
	uint64_t start = strtoull(argv[2], NULL, 0), end = strtoull(argv[3], NULL, 0);
	int iters = atoi(argv[4]);
	int page_mode = argc > 5 && strcmp(argv[5], "page") == 0;
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		perror(path);
		return 1;
	}
	struct page_region *vec = malloc(CAP * sizeof(*vec));
	memset(vec, 0, CAP * sizeof(*vec)); /* pre-fault: the reference pays no page faults */
	uint64_t *t = malloc(iters * sizeof(*t));
	uint64_t *c = malloc(iters * sizeof(*c));
	long n = 0;
	uint64_t pages = 0;
	if (page_mode)
		end = start + 4096;
	for (int i = 0; i < iters; i++) {
		uint64_t c0 = now_ns(CLOCK_THREAD_CPUTIME_ID), t0 = now_ns(CLOCK_MONOTONIC);
		n = scan(fd, vec, start, end, &pages);
		t[i] = now_ns(CLOCK_MONOTONIC) - t0;
		c[i] = now_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
	}
	qsort(t, iters, sizeof(*t), cmp_u64);
	qsort(c, iters, sizeof(*c), cmp_u64);
	printf("%ld %llu %llu %llu %llu %llu\n", n, (unsigned long long)pages,
	       (unsigned long long)t[0], (unsigned long long)t[iters / 2], (unsigned long long)c[0],
	       (unsigned long long)c[iters / 2]);
	return 0;
}
