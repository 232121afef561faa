/* A program with a known, changing written set, driven phase by phase through stdin.
 *
 * Commands (one per line on stdin; the program blocks in read(2) between them):
 *   phase K   write a pseudo-random page set of BUF (K-dependent); every even K also map
 *             new memory ("map ADDR NPAGES") and write part of it; print "written ADDR..."
 *             (page addresses, hex), then "done K"
 *   sleep     nanosleep 300 ms (restartable via restart_syscall), print "slept ok|bad"
 *   sum       print "checksum X" over every buffer, then exit 0
 * Every syscall result is checked: a broken restart after injection shows up as "error".
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define BUF_PAGES 64
#define NEW_PAGES 16
#define MAX_MAPS 8

static long page;
static unsigned char *buf;
static unsigned char *maps[MAX_MAPS];
static int n_maps;

static int read_line(char *out, size_t cap) {
    size_t n = 0;
    while (n + 1 < cap) {
        char c;
        ssize_t r = read(0, &c, 1);
        if (r == 0) return -1;
        if (r < 0) {
            /* EINTR would mean an injected stop leaked out as an error: report it. */
            printf("error read %s\n", strerror(errno));
            fflush(stdout);
            exit(3);
        }
        if (c == '\n') break;
        out[n++] = c;
    }
    out[n] = 0;
    return (int)n;
}

static uint32_t next(uint32_t *s) { *s = *s * 1103515245u + 12345u; return *s >> 8; }

static void touch(unsigned char *p, int k) {
    p[k % 97] += (unsigned char)(k + 1);
    printf(" %lx", (unsigned long)p);
}

static void phase(int k) {
    uint32_t s = 7919u * (uint32_t)k + 1;
    unsigned char *fresh = NULL;
    if (k % 2 == 0 && n_maps < MAX_MAPS) {
        fresh = mmap(NULL, NEW_PAGES * page, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (fresh == MAP_FAILED) { printf("error mmap\n"); exit(3); }
        printf("map %lx %d\n", (unsigned long)fresh, NEW_PAGES);
    }
    printf("written");
    for (int i = 0; i < BUF_PAGES; i++)
        if (next(&s) % 3 == 0) touch(buf + (long)i * page, k);
    if (fresh) /* new memory in this phase, part of it written */
        for (int i = 0; i < NEW_PAGES; i++)
            if (next(&s) % 2 == 0) touch(fresh + (long)i * page, k);
    if (fresh) maps[n_maps++] = fresh;
    for (int j = 0; j < n_maps - (fresh != NULL); j++)  /* older new memory: a changing subset */
        for (int i = 0; i < NEW_PAGES; i++)
            if (next(&s) % 5 == 0) touch(maps[j] + (long)i * page, k);
    printf("\ndone %d\n", k);
    fflush(stdout);
}

int main(void) {
    page = sysconf(_SC_PAGESIZE);
    buf = mmap(NULL, BUF_PAGES * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) return 2;
    printf("buf %lx %d\n", (unsigned long)buf, BUF_PAGES);
    fflush(stdout);
    char line[64];
    while (read_line(line, sizeof line) >= 0) {
        if (strncmp(line, "phase ", 6) == 0) {
            phase(atoi(line + 6));
        } else if (strcmp(line, "sleep") == 0) {
            struct timespec t0, t1, req = {0, 300 * 1000 * 1000};
            clock_gettime(CLOCK_MONOTONIC, &t0);
            int rc = nanosleep(&req, NULL);
            clock_gettime(CLOCK_MONOTONIC, &t1);
            double dt = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
            printf("slept %s\n", rc == 0 && dt >= 0.3 ? "ok" : "bad");
            fflush(stdout);
        } else if (strcmp(line, "sum") == 0) {
            uint64_t sum = 0;
            for (long i = 0; i < BUF_PAGES * page; i++) sum = sum * 31 + buf[i];
            for (int j = 0; j < n_maps; j++)
                for (long i = 0; i < NEW_PAGES * page; i++) sum = sum * 31 + maps[j][i];
            printf("checksum %llx\n", (unsigned long long)sum);
            fflush(stdout);
            return 0;
        }
    }
    return 0;
}
