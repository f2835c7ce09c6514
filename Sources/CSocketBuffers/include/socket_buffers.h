#ifndef GATEHOUSE_SOCKET_BUFFERS_H
#define GATEHOUSE_SOCKET_BUFFERS_H
#include <stdbool.h>
#include <stddef.h>

/* User-space buffers for one socket that a C library reads and writes with plain read(2), write(2) and close(2):
   libmosquitto, on the MQTT client's network thread (Sources/Mosquitto/NetworkLoop.swift says why).

   With glibc, this target defines read, write and close (and socketpair, below), which take the C library's place
   for the whole process (libmosquitto's calls included: an executable's definitions come first). They pass every
   call straight through to glibc's own (`__read`, `__write`, `__close`), except on a thread between
   socket_buffers_begin and socket_buffers_end, and there only for the socket the buffers were begun with:
   - read() is served from an input buffer that one read(2) of up to its size fills, once between a begin and
     its end: then read() says EAGAIN, even if more has arrived since. The caller polls the socket before its next
     begin, and the poll sees it; meanwhile a flood of input cannot hold the caller in its reads, and the read(2)
     that would only say EAGAIN is saved. A read as large as the buffer goes straight to its destination.
   - write() appends to an output buffer; socket_buffers_flush writes it with one write(2). A full buffer is
     flushed first; if the socket takes none of it, write() says EAGAIN, as the socket would. A write as large as
     the buffer goes straight to the socket when nothing is held.
   - close() first sends what is held (a DISCONNECT written just before the close still leaves), waiting a while
     for a socket that does not take it at once; then, within the same while, shuts down its sending side and reads
     and drops what arrives until the peer closes too (input unread at the close would make the kernel reset the
     connection and drop what it had not sent yet). It forgets the socket, so nothing is ever written to a later
     file with the same number.
   A write(2) that fails for good (the connection was reset) is reported by the next buffered read(): the library
   then ends the connection as it would after a failed read of its own.

   It also defines socketpair, which fails (EMFILE) on a thread between socket_buffers_refuse_socket_pairs(true)
   and (false), and otherwise makes the system call: libmosquitto, created and connected so, goes without the
   socket pair it would write a byte to for every packet queued (NetworkLoop.swift never reads it).

   Without glibc nothing is interposed, and the buffers stay empty. */

typedef struct socket_buffers socket_buffers;

/* `close_wait_ms`: how long a close waits for a socket that does not take what is held at once. */
socket_buffers *socket_buffers_create(size_t input_capacity, size_t output_capacity, int close_wait_ms);
void socket_buffers_destroy(socket_buffers *buffers);

/* The calling thread's reads and writes of `fd` go through `buffers` until socket_buffers_end. Buffers begun with
   another socket (the connection was replaced) first drop what they held. */
void socket_buffers_begin(socket_buffers *buffers, int fd);
void socket_buffers_end(void);

/* Makes socketpair() fail on the calling thread (true) or work again (false). */
void socket_buffers_refuse_socket_pairs(bool refuse);

/* Drops what the buffers hold and forgets their socket: the connection ended. */
void socket_buffers_reset(socket_buffers *buffers);

/* Writes the output buffer to the socket, as much as it takes. Returns 0, or the errno of a write that failed for
   good (which the next buffered read() reports too). */
int socket_buffers_flush(socket_buffers *buffers);

/* Input read from the socket that the library has not taken yet (or a failed write to report): read again
   before waiting for the socket. */
bool socket_buffers_has_input(const socket_buffers *buffers);

/* Bytes of input the library has not taken yet. */
size_t socket_buffers_input_length(const socket_buffers *buffers);

/* Output the socket has not taken yet: wait until it is writable, then flush. */
bool socket_buffers_has_output(const socket_buffers *buffers);

#endif
