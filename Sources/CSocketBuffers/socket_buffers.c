#include "socket_buffers.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct socket_buffers {
    int fd;                /* the socket served, -1 for none */
    unsigned char *input;
    size_t input_capacity, input_start, input_end;
    bool input_read;       /* since begin, the socket was read: a pass reads it once */
    unsigned char *output;
    size_t output_capacity, output_length;
    int failure;           /* errno of a write(2) that failed for good, 0 for none */
    int close_wait_ms;     /* how long a close waits for a socket that does not take what is held */
};

/* The buffers of the socket this thread serves, between begin and end. */
static __thread socket_buffers *current;

/* Whether socketpair() fails on this thread. */
static __thread bool refusing_socket_pairs;

#if defined(__GLIBC__)
/* The C library's own functions, under the other names glibc exports them by. Elsewhere nothing is interposed:
   the buffers are never used, and the socket is read and written directly. */
extern ssize_t __read(int fd, void *buffer, size_t count);
extern ssize_t __write(int fd, const void *buffer, size_t count);
extern int __close(int fd);
#define libc_read __read
#define libc_write __write
#define libc_close __close
#define INTERPOSING 1
#else
#define libc_write write
#define INTERPOSING 0
#endif

socket_buffers *socket_buffers_create(size_t input_capacity, size_t output_capacity, int close_wait_ms) {
    socket_buffers *buffers = calloc(1, sizeof *buffers);
    if (buffers == NULL) return NULL;
    buffers->input = malloc(input_capacity);
    buffers->output = malloc(output_capacity);
    if (buffers->input == NULL || buffers->output == NULL) {
        socket_buffers_destroy(buffers);
        return NULL;
    }
    buffers->fd = -1;
    buffers->input_capacity = input_capacity;
    buffers->output_capacity = output_capacity;
    buffers->close_wait_ms = close_wait_ms;
    return buffers;
}

void socket_buffers_destroy(socket_buffers *buffers) {
    if (buffers == NULL) return;
    free(buffers->input);
    free(buffers->output);
    free(buffers);
}

void socket_buffers_reset(socket_buffers *buffers) {
    buffers->fd = -1;
    buffers->input_start = buffers->input_end = 0;
    buffers->output_length = 0;
    buffers->failure = 0;
}

void socket_buffers_begin(socket_buffers *buffers, int fd) {
    if (buffers->fd != fd) {
        socket_buffers_reset(buffers);
        buffers->fd = fd;
    }
    buffers->input_read = false;
    current = buffers;
}

void socket_buffers_end(void) {
    current = NULL;
}

void socket_buffers_refuse_socket_pairs(bool refuse) {
    refusing_socket_pairs = refuse;
}

bool socket_buffers_has_input(const socket_buffers *buffers) {
    return buffers->input_start < buffers->input_end || buffers->failure != 0;
}

size_t socket_buffers_input_length(const socket_buffers *buffers) {
    return buffers->input_end - buffers->input_start;
}

bool socket_buffers_has_output(const socket_buffers *buffers) {
    return buffers->output_length > 0;
}

int socket_buffers_flush(socket_buffers *buffers) {
    size_t written = 0;
    while (written < buffers->output_length && buffers->failure == 0) {
        ssize_t n = libc_write(buffers->fd, buffers->output + written, buffers->output_length - written);
        if (n > 0) {
            written += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            buffers->failure = n < 0 ? errno : EPIPE;
        }
    }
    if (buffers->failure != 0) {
        buffers->output_length = 0;
        return buffers->failure;
    }
    memmove(buffers->output, buffers->output + written, buffers->output_length - written);
    buffers->output_length -= written;
    return 0;
}

#if INTERPOSING
static ssize_t buffered_read(socket_buffers *buffers, void *destination, size_t count) {
    if (buffers->failure != 0) {
        errno = buffers->failure;
        return -1;
    }
    if (count == 0) return 0;
    if (buffers->input_start == buffers->input_end) {
        if (buffers->input_read) {
            errno = EAGAIN;
            return -1;
        }
        buffers->input_read = true;
        /* A large read (a big incoming message's body) goes straight to its destination. */
        if (count >= buffers->input_capacity) return libc_read(buffers->fd, destination, count);
        ssize_t n = libc_read(buffers->fd, buffers->input, buffers->input_capacity);
        if (n <= 0) return n;
        buffers->input_start = 0;
        buffers->input_end = (size_t)n;
    }
    size_t available = buffers->input_end - buffers->input_start;
    size_t taken = count < available ? count : available;
    memcpy(destination, buffers->input + buffers->input_start, taken);
    buffers->input_start += taken;
    return (ssize_t)taken;
}

static ssize_t buffered_write(socket_buffers *buffers, const void *source, size_t count) {
    if (buffers->failure != 0) {
        errno = buffers->failure;
        return -1;
    }
    if (buffers->output_length == buffers->output_capacity) {
        int saved = errno;
        int failure = socket_buffers_flush(buffers);
        if (failure != 0) {
            errno = failure;
            return -1;
        }
        if (buffers->output_length == buffers->output_capacity) {
            errno = EAGAIN;
            return -1;
        }
        /* The flush's EAGAIN (it took only part) is not this write's: a caller may read errno after a success. */
        errno = saved;
    }
    /* A large write (a big message) goes straight to the socket when nothing waits before it. */
    if (buffers->output_length == 0 && count >= buffers->output_capacity) return libc_write(buffers->fd, source, count);
    size_t room = buffers->output_capacity - buffers->output_length;
    size_t taken = count < room ? count : room;
    memcpy(buffers->output + buffers->output_length, source, taken);
    buffers->output_length += taken;
    return (ssize_t)taken;
}

ssize_t read(int fd, void *buffer, size_t count) {
    socket_buffers *buffers = current;
    if (buffers != NULL && fd == buffers->fd) return buffered_read(buffers, buffer, count);
    return libc_read(fd, buffer, count);
}

ssize_t write(int fd, const void *buffer, size_t count) {
    socket_buffers *buffers = current;
    if (buffers != NULL && fd == buffers->fd) return buffered_write(buffers, buffer, count);
    return libc_write(fd, buffer, count);
}

/* Now on CLOCK_MONOTONIC, in nanoseconds. */
static long long monotonic_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec * 1000000000LL + now.tv_nsec;
}

/* Milliseconds left until `deadline` (monotonic_ns), rounded up, 0 once it passed. */
static int milliseconds_until(long long deadline) {
    long long left = deadline - monotonic_ns();
    return left > 0 ? (int)((left + 999999) / 1000000) : 0;
}

/* Reads and drops what arrives on `fd` until its end (the peer closed too), an error or `deadline`. */
static void drop_input_until_end(int fd, long long deadline) {
    unsigned char sink[4096];
    for (;;) {
        ssize_t n = libc_read(fd, sink, sizeof sink);
        int left = milliseconds_until(deadline);  /* also for a peer that keeps sending */
        if (n == 0 || left == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return;
        if (n > 0 || errno == EINTR) continue;
        struct pollfd readable = {.fd = fd, .events = POLLIN};
        if (poll(&readable, 1, left) < 0 && errno != EINTR) return;
    }
}

int close(int fd) {
    socket_buffers *buffers = current;
    if (buffers != NULL && fd == buffers->fd) {
        int saved = errno;
        long long deadline = monotonic_ns() + buffers->close_wait_ms * 1000000LL;
        bool held = buffers->output_length > 0;
        /* A broker reading slowly may not take it at once: wait for it until the deadline (however often the socket
           takes a little). */
        int left;
        while (socket_buffers_flush(buffers) == 0 && buffers->output_length > 0 && (left = milliseconds_until(deadline)) > 0) {
            struct pollfd writable = {.fd = fd, .events = POLLOUT};
            if (poll(&writable, 1, left) < 0 && errno != EINTR) break;
        }
        if (held && buffers->output_length == 0 && buffers->failure == 0) {
            /* Closed with input unread (or arriving after), the socket is reset, and the kernel drops what it has not
               sent yet, the DISCONNECT among it: the broker is told our end instead, and what it sends until it closes
               too is read and dropped, within the same deadline. */
            shutdown(fd, SHUT_WR);
            drop_input_until_end(fd, deadline);
        }
        socket_buffers_reset(buffers);
        errno = saved;
    }
    return libc_close(fd);
}
int socketpair(int domain, int type, int protocol, int pair[2]) {
    if (refusing_socket_pairs) {
        errno = EMFILE;
        return -1;
    }
    return (int)syscall(SYS_socketpair, domain, type, protocol, pair);
}
#endif
