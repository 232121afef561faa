/* Signal storm: SIGALRM every 200 us (handler without SA_RESTART, so blocking reads return
 * EINTR and are retried by hand) while stdin is checksummed byte by byte. Prints
 * "checksum X signals N" at EOF; any unexpected error prints "error ..." and exits 3.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static volatile sig_atomic_t n_signals;

static void on_alarm(int sig) { (void)sig; n_signals++; }

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;  /* no SA_RESTART */
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 200}, {0, 200}};
    setitimer(ITIMER_REAL, &it, NULL);
    uint64_t sum = 0;
    unsigned char buf[64];
    for (;;) {
        ssize_t r = read(0, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) { printf("error read %s\n", strerror(errno)); return 3; }
        if (r == 0) break;
        for (ssize_t i = 0; i < r; i++) sum = sum * 131 + buf[i];
    }
    printf("checksum %llx signals %s\n", (unsigned long long)sum, n_signals > 0 ? "yes" : "no");
    return 0;
}
