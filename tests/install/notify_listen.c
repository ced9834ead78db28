/*
 * tests/install/notify_listen.c -- stands in for systemd's notification
 * socket: binds an AF_UNIX datagram socket (a path, or "@name" for the
 * abstract namespace), then prints each datagram it receives on one line
 * (newlines inside shown as ';') until it has printed COUNT of them or
 * TIMEOUT seconds pass.  Exit 0 if it got COUNT, 1 otherwise.
 *
 * notify_listen SOCKET COUNT TIMEOUT
 */
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: notify_listen SOCKET COUNT TIMEOUT\n");
        return 2;
    }
    const char *path = argv[1];
    int want = atoi(argv[2]);
    int timeout_s = atoi(argv[3]);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof sa.sun_path) {
        fprintf(stderr, "notify_listen: SOCKET must be 1-%zu bytes\n", sizeof sa.sun_path - 1);
        return 2;
    }
    memcpy(sa.sun_path, path, n);
    int abstract = path[0] == '@';
    if (abstract)
        sa.sun_path[0] = '\0';
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (abstract ? 0 : 1));
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (const struct sockaddr *)&sa, len) != 0) {
        fprintf(stderr, "notify_listen: bind %s: %s\n", path, strerror(errno));
        return 2;
    }
    /* Bound: whoever waits for this line may start the notifier now. */
    printf("LISTENING\n");
    fflush(stdout);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int got = 0;
    while (got < want) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long left = (long)timeout_s * 1000 - ((now.tv_sec - t0.tv_sec) * 1000 +
                                              (now.tv_nsec - t0.tv_nsec) / 1000000);
        if (left <= 0)
            break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        char buf[4096];
        ssize_t r = recv(fd, buf, sizeof buf - 1, 0);
        if (r < 0)
            continue;
        buf[r] = '\0';
        for (ssize_t i = 0; i < r; i++)
            if (buf[i] == '\n')
                buf[i] = ';';
        printf("%s\n", buf);
        fflush(stdout);
        got++;
    }
    close(fd);
    if (!abstract)
        unlink(path);
    return got >= want ? 0 : 1;
}
