#include "socket_buffers.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct socket_buffers {
    int fd;                /* the socket served, -1 for none */
    unsigned char *input;
    size_t input_capacity, input_start, input_end;
    bool input_drained;    /* since begin, a read(2) came back short: the socket had no more */
    unsigned char *output;
    size_t output_capacity, output_length;
    int failure;           /* errno of a write(2) that failed for good, 0 for none */
};

/* The buffers of the socket this thread serves, between begin and end. */
static __thread socket_buffers *current;

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

socket_buffers *socket_buffers_create(size_t input_capacity, size_t output_capacity) {
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
    buffers->input_drained = false;
    current = buffers;
}

void socket_buffers_end(void) {
    current = NULL;
}

bool socket_buffers_has_input(const socket_buffers *buffers) {
    return buffers->input_start < buffers->input_end || buffers->failure != 0;
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
        if (buffers->input_drained) {
            errno = EAGAIN;
            return -1;
        }
        /* A large read (a big incoming message's body) goes straight to its destination. */
        if (count >= buffers->input_capacity) {
            ssize_t n = libc_read(buffers->fd, destination, count);
            if (n >= 0 && (size_t)n < count) buffers->input_drained = true;
            return n;
        }
        ssize_t n = libc_read(buffers->fd, buffers->input, buffers->input_capacity);
        if (n <= 0) return n;
        buffers->input_start = 0;
        buffers->input_end = (size_t)n;
        if ((size_t)n < buffers->input_capacity) buffers->input_drained = true;
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
        int failure = socket_buffers_flush(buffers);
        if (failure != 0) {
            errno = failure;
            return -1;
        }
        if (buffers->output_length == buffers->output_capacity) {
            errno = EAGAIN;
            return -1;
        }
    }
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

int close(int fd) {
    socket_buffers *buffers = current;
    if (buffers != NULL && fd == buffers->fd) {
        int saved = errno;
        (void)socket_buffers_flush(buffers);
        socket_buffers_reset(buffers);
        errno = saved;
    }
    return libc_close(fd);
}
#endif
