/* Multi-threaded target: NT workers write known pages of their own buffers per phase, one
 * busy thread writes a noise buffer without pause, one thread sleeps in nanosleep loops.
 * stdin: "phase K" -> workers write, main prints "written ADDR..." and "done K"; "sum" ->
 * "checksum X" (workers' buffers) and exit. The main thread blocks in read(2) between.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define NT 4
#define PAGES 32
#define NOISE_PAGES 8

static long page;
static unsigned char *bufs[NT];
static unsigned char *noise;
static volatile int stop_all;
static pthread_barrier_t start_b, end_b;
static int cur_phase;
static unsigned long written[NT][PAGES];
static int n_written[NT];

static void *worker(void *arg) {
    int t = (int)(long)arg;
    for (;;) {
        pthread_barrier_wait(&start_b);
        if (stop_all) return NULL;
        uint32_t s = 31u * (uint32_t)cur_phase + 17u * (uint32_t)t + 3u;
        n_written[t] = 0;
        for (int i = 0; i < PAGES; i++) {
            s = s * 1103515245u + 12345u;
            if ((s >> 8) % 4 == 0) {
                unsigned char *p = bufs[t] + (long)i * page;
                p[(cur_phase * 13) % 251] += (unsigned char)(t + cur_phase + 1);
                written[t][n_written[t]++] = (unsigned long)p;
            }
        }
        pthread_barrier_wait(&end_b);
    }
}

static void *busy(void *arg) {
    (void)arg;
    unsigned long i = 0;
    while (!stop_all) { noise[(i * 4099) % (NOISE_PAGES * page)]++; i++; }
    return NULL;
}

static void *sleeper(void *arg) {
    (void)arg;
    while (!stop_all) {
        struct timespec req = {0, 20 * 1000 * 1000};
        if (nanosleep(&req, NULL) != 0) { printf("error nanosleep\n"); fflush(stdout); exit(3); }
    }
    return NULL;
}

int main(void) {
    page = sysconf(_SC_PAGESIZE);
    for (int t = 0; t < NT; t++) {
        bufs[t] = mmap(NULL, PAGES * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (bufs[t] == MAP_FAILED) return 2;
        printf("buf %lx %d\n", (unsigned long)bufs[t], PAGES);
    }
    noise = mmap(NULL, NOISE_PAGES * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("noise %lx %d\n", (unsigned long)noise, NOISE_PAGES);
    fflush(stdout);
    pthread_barrier_init(&start_b, NULL, NT + 1);
    pthread_barrier_init(&end_b, NULL, NT + 1);
    pthread_t th[NT + 2];
    for (long t = 0; t < NT; t++) pthread_create(&th[t], NULL, worker, (void *)t);
    pthread_create(&th[NT], NULL, busy, NULL);
    pthread_create(&th[NT + 1], NULL, sleeper, NULL);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "phase ", 6) == 0) {
            cur_phase = atoi(line + 6);
            pthread_barrier_wait(&start_b);
            pthread_barrier_wait(&end_b);
            printf("written");
            for (int t = 0; t < NT; t++)
                for (int i = 0; i < n_written[t]; i++) printf(" %lx", written[t][i]);
            printf("\ndone %d\n", cur_phase);
            fflush(stdout);
        } else if (strncmp(line, "sum", 3) == 0) {
            stop_all = 1;
            pthread_barrier_wait(&start_b);
            for (int t = 0; t < NT + 2; t++) pthread_join(th[t], NULL);
            uint64_t sum = 0;
            for (int t = 0; t < NT; t++)
                for (long i = 0; i < PAGES * page; i++) sum = sum * 31 + bufs[t][i];
            printf("checksum %llx\n", (unsigned long long)sum);
            fflush(stdout);
            return 0;
        }
    }
    return 0;
}
