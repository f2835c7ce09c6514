/*
 * Load generator for the benchmark suite: many WebSocket clients in one process, epoll and raw sockets.
 * Built and driven by examples/bench_common.py (ClientFleet); not meant to be run by hand.
 *
 *   bench_clients MODE PORT REQUESTS INFLIGHT RESPOND MAX_SECONDS [MESSAGES WINDOW QOS [RATE]]
 *
 * MODE gateway: Gatehouse's /v1/connect; connected = the `welcome` text frame arrived.
 * MODE mqttws:  mosquitto's WebSocket listener (subprotocol mqtt), an MQTT 3.1.1 CONNECT (clean session,
 *               keepalive 0); connected = CONNACK accepted.
 * MODE gateway-tls, mqttws-tls: the same over TLS (OpenSSL, the server's certificate not verified).
 * MODE mqtt:    plain MQTT 3.1.1 over TCP straight to mosquitto (the same CONNECT), for telemetry only: with
 *               MESSAGES, each client publishes to bench/ID/telemetry what the gateway would publish for a device,
 *               at most WINDOW unanswered at QoS 1 (a PUBACK answers one) and WINDOW per write at QoS 0 (counted as
 *               answered once written; after the last one a PINGREQ, whose PINGRESP says the broker has read them
 *               all, ends the client's run): the devices' flow without the gateway, for its reference.
 * REQUESTS is a file with one complete HTTP upgrade request per line ("\r\n" escaped as "|"), minted by Python.
 * At most INFLIGHT handshakes are in progress at a time; a failed one is tried again up to twice.
 * Every client answers pings with pongs; with RESPOND 1 a gateway client answers each `command` frame with
 * {"type":"response","id":…,"status":"ok"}. Otherwise the clients stay idle.
 *
 * With MESSAGES > 0 (gateway mode), a "send" line on stdin makes every connected device send MESSAGES telemetry
 * messages with `seq` and `qos` QOS, at most WINDOW unanswered at a time: the refills that a batch of acks allows
 * go out in one write, as an asynchronous client library would send them. {"event":"sent",...} reports the acks
 * and nacks once every message is answered. With RATE > 0 each device sends at most RATE messages per second
 * (paced every millisecond), as background load: device j of N starts j/N of a period (1/RATE) late, so the devices
 * send in turn as independent devices would, not all in the same millisecond (BENCH_PHASE_LOCKED=1 in the
 * environment: all at once, a burst of N messages every period).
 *
 * Protocol on stdio (one JSON line each): {"event":"ready"}; waits for "go"; connects;
 * {"event":"connected",...}; holds the connections until stdin closes or MAX_SECONDS pass; {"event":"closed",...}.
 * C rather than Python so that the load generator costs the box far less CPU per connection than the servers
 * it measures.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <openssl/ssl.h>

enum { CONNECTING, HANDSHAKING, UPGRADING, WAITING, OPEN, DONE };
#define BUF 8192

struct conn {
    int fd, state, attempts, len;
    char *request, id[64];
    unsigned char buf[BUF];
    /* telemetry: messages sent and answered, and frames not yet written */
    int sent, answered, outlen, outoff;
    int unflushed;  /* mqtt mode at QoS 0: messages in `out` that count as answered once written */
    unsigned char *out;
    SSL *ssl;  /* with TLS */
};

static int mqtt, raw_mqtt, respond, port, active, opened, failed, lost, count;
static int messages, window, qos, sending, finished_devices;
static double rate;
static int phase_locked;
static long acked, nacked;
static double send_started;
static int epfd;
static SSL_CTX *tls;
static struct conn *conns;
static char last_error[128] = "";

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

/* read(2) and write(2), or their TLS counterparts with the same errno conventions (EAGAIN: try again later). */
static ssize_t io_write(struct conn *c, const void *buf, size_t n) {
    if (!c->ssl) return write(c->fd, buf, n);
    int r = SSL_write(c->ssl, buf, (int)n);
    if (r > 0) return r;
    int e = SSL_get_error(c->ssl, r);
    errno = (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) ? EAGAIN : EPIPE;
    return -1;
}

static ssize_t io_read(struct conn *c, void *buf, size_t n) {
    if (!c->ssl) return read(c->fd, buf, n);
    int r = SSL_read(c->ssl, buf, (int)n);
    if (r > 0) return r;
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_ZERO_RETURN) return 0;
    errno = (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) ? EAGAIN : ECONNRESET;
    return -1;
}

static void answered(struct conn *c, int ok);

static void close_conn(struct conn *c) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    if (c->ssl) { SSL_free(c->ssl); c->ssl = NULL; }
    close(c->fd);
}

static void send_frame(struct conn *c, int opcode, const unsigned char *payload, size_t n) {
    unsigned char out[BUF + 14];
    size_t h = 0;
    if (n > BUF) return;
    out[h++] = 0x80 | opcode;
    if (n < 126) out[h++] = 0x80 | n;
    else { out[h++] = 0x80 | 126; out[h++] = n >> 8; out[h++] = n & 0xff; }
    memset(out + h, 0, 4);  /* a zero masking key: masked, bytes unchanged */
    h += 4;
    memcpy(out + h, payload, n);
    if (io_write(c, out, h + n) < 0) { /* the peer is gone: noticed on read */ }
}

static void start(struct conn *c) {
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(port) };
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    c->state = CONNECTING;
    c->len = 0;
    c->attempts++;
    active++;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&to, sizeof to) < 0 && errno != EINPROGRESS)
        snprintf(last_error, sizeof last_error, "connect: %s", strerror(errno));
    struct epoll_event ev = { .events = EPOLLOUT | EPOLLIN, .data.ptr = c };
    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
}

static void finish(struct conn *c, int ok) {
    active--;
    if (ok) { c->state = OPEN; opened++; return; }
    close_conn(c);
    if (c->attempts < 3) { start(c); return; }
    c->state = DONE;
    failed++;
}

#define FRAME_MAX 192

static void flush_out(struct conn *c) {
    while (c->outoff < c->outlen) {
        ssize_t w = io_write(c, c->out + c->outoff, c->outlen - c->outoff);
        if (w < 0) {
            if (errno == EAGAIN) {  /* the rest when the socket is writable again */
                struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
                epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
            }
            return;
        }
        c->outoff += w;
    }
    c->outoff = c->outlen = 0;
    for (; c->unflushed > 0; c->unflushed--) answered(c, 1);
}

/* Appends one message to `out`: a masked telemetry text frame for the gateway, or (mqtt) a PUBLISH of what the
   gateway would publish for it. */
static void append_message(struct conn *c) {
    char json[160];
    unsigned char *f = c->out + c->outlen;
    if (!raw_mqtt) {
        int n = snprintf(json, sizeof json, "{\"type\":\"telemetry\",\"seq\":%d,\"qos\":%d,\"data\":{\"temperature\":21.5,"
                         "\"setpoint\":21.0,\"heating\":true,\"mode\":\"auto\"}}", c->sent + 1, qos);
        f[0] = 0x81;
        f[1] = 0x80 | n;
        memset(f + 2, 0, 4);  /* a zero masking key */
        memcpy(f + 6, json, n);
        c->outlen += 6 + n;
        return;
    }
    char topic[96];
    int t = snprintf(topic, sizeof topic, "bench/%s/telemetry", c->id);
    int n = snprintf(json, sizeof json, "{\"ts\":1764979200000,\"seq\":%d,\"data\":{\"temperature\":21.5,\"setpoint\":21.0,"
                     "\"heating\":true,\"mode\":\"auto\"}}", c->sent + 1);
    int id = c->sent % 65535 + 1, length = 2 + t + (qos ? 2 : 0) + n, h = 0;
    f[h++] = 0x30 | (qos << 1);
    f[h++] = length < 128 ? length : 0x80 | (length & 0x7f);
    if (length >= 128) f[h++] = length >> 7;
    f[h++] = t >> 8;
    f[h++] = t & 0xff;
    memcpy(f + h, topic, t);
    h += t;
    if (qos) { f[h++] = id >> 8; f[h++] = id & 0xff; }
    memcpy(f + h, json, n);
    c->outlen += h + n;
}

/* Queues as many telemetry messages as the window allows and writes them at once; in mqtt mode at QoS 0, which has
   no answers, again once they are written. */
static void pump(struct conn *c) {
    while (sending && c->state == OPEN && !c->outlen) {
        double phase = phase_locked ? 0 : (double)(c - conns) / count;
        long due = rate > 0 ? (long)(rate * (now() - send_started) + 1 - phase) : messages;
        int batch = 0;
        for (; c->sent < messages && c->sent - c->answered < window && c->sent < due; c->sent++, batch++) append_message(c);
        if (!batch) return;
        c->unflushed = raw_mqtt && qos == 0 ? batch : 0;
        flush_out(c);
        if (!c->unflushed && !(raw_mqtt && qos == 0)) return;
    }
}

/* A client's messages are all answered (mqtt at QoS 0: the broker has read them). */
static void finished(void) {
    if (++finished_devices == opened) {
        printf("{\"event\":\"sent\",\"acked\":%ld,\"nacked\":%ld,\"seconds\":%.3f}\n", acked, nacked, now() - send_started);
        fflush(stdout);
    }
}

static void answered(struct conn *c, int ok) {
    c->answered++;
    if (ok) acked++; else nacked++;
    if (c->answered < messages) return;
    if (raw_mqtt && qos == 0) {
        /* Written is not read: the broker answers a PINGREQ after everything the connection sent before it. */
        static const unsigned char pingreq[] = { 0xc0, 0 };
        if (io_write(c, pingreq, sizeof pingreq) < 0) { /* the peer is gone: noticed on read */ }
        return;
    }
    finished();
}

static void handle_frame(struct conn *c, int opcode, unsigned char *p, size_t n) {
    if (opcode == 9) { send_frame(c, 10, p, n); return; }
    if (c->state == WAITING) {
        int ok = mqtt ? (opcode == 2 && n >= 4 && p[0] == 0x20 && p[3] == 0)
                      : (opcode == 1 && memmem(p, n, "\"welcome\"", 9) != NULL);
        if (!ok) snprintf(last_error, sizeof last_error, "unexpected first frame (%zu bytes)", n);
        finish(c, ok);
        return;
    }
    if (sending && opcode == 1 && n > 12 && memcmp(p, "{\"type\":\"", 9) == 0 && (p[9] == 'a' || p[9] == 'n')) {
        answered(c, p[9] == 'a');  /* {"type":"ack"... or {"type":"nack"... */
        return;
    }
    if (respond && opcode == 1 && memmem(p, n, "\"command\"", 9)) {
        unsigned char *id = memmem(p, n, "\"id\":\"", 6), *end;
        if (!id) return;
        id += 6;
        end = memchr(id, '"', p + n - id);
        if (!end) return;
        char reply[512];
        int r = snprintf(reply, sizeof reply, "{\"type\":\"response\",\"id\":\"%.*s\",\"status\":\"ok\",\"data\":{}}", (int)(end - id), id);
        send_frame(c, 1, (unsigned char *)reply, r);
    }
}

/* An MQTT 3.1.1 CONNECT: clean session, keepalive 0, the client's ID. */
static int connect_packet(struct conn *c, unsigned char *pkt) {
    int idlen = strlen(c->id), rem = 12 + idlen;
    unsigned char head[] = { 0x10, rem, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 0, 0, idlen };
    memcpy(pkt, head, sizeof head);
    memcpy(pkt + sizeof head, c->id, idlen);
    return sizeof head + idlen;
}

/* Sends the HTTP upgrade request (mqtt: the CONNECT) once the connection (and TLS) is up. */
static void upgrade(struct conn *c) {
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    if (raw_mqtt) {
        unsigned char pkt[96];
        c->state = WAITING;
        if (io_write(c, pkt, connect_packet(c, pkt)) < 0) finish(c, 0);
        return;
    }
    c->state = UPGRADING;
    if (io_write(c, c->request, strlen(c->request)) < 0) finish(c, 0);
}

/* mqtt mode: the CONNACK, then PUBACKs; other packets are skipped. False once the connection was given up. */
static int handle_packets(struct conn *c) {
    while (c->len >= 2) {
        int length = 0, shift = 0, off = 1, complete = 0;
        while (!complete && off < c->len && off < 5) {
            length |= (c->buf[off] & 0x7f) << shift;
            shift += 7;
            complete = !(c->buf[off++] & 0x80);
        }
        if (!complete || off + length > c->len) break;  /* the rest has not arrived */
        int type = c->buf[0] & 0xf0;
        if (c->state == WAITING) {
            int ok = type == 0x20 && length == 2 && c->buf[off + 1] == 0;
            if (!ok) snprintf(last_error, sizeof last_error, "no CONNACK accepting the connection");
            finish(c, ok);
            if (!ok) return 0;
        } else if (type == 0x40 && sending) {
            answered(c, 1);
        } else if (type == 0xd0 && sending) {
            finished();  /* the PINGRESP after a QoS 0 run */
        }
        memmove(c->buf, c->buf + off + length, c->len - off - length);
        c->len -= off + length;
    }
    return 1;
}

/* One step of the TLS handshake, waiting for whichever direction OpenSSL needs next. */
static void handshake(struct conn *c) {
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) { upgrade(c); return; }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        struct epoll_event ev = { .events = e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT, .data.ptr = c };
        epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
        return;
    }
    snprintf(last_error, sizeof last_error, "TLS handshake failed (%d)", e);
    finish(c, 0);
}

static void readable(struct conn *c) {
    for (;;) {
        ssize_t r = io_read(c, c->buf + c->len, BUF - c->len);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
            if (c->state == OPEN) { lost++; c->state = DONE; close_conn(c); }
            else if (c->state != DONE) { snprintf(last_error, sizeof last_error, "closed during the handshake"); finish(c, 0); }
            return;
        }
        if (r < 0) return;
        c->len += r;
        if (c->state == UPGRADING) {
            unsigned char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
            if (!end) continue;
            if (memcmp(c->buf, "HTTP/1.1 101", 12) != 0) {
                snprintf(last_error, sizeof last_error, "%.40s", (char *)c->buf);
                finish(c, 0);
                return;
            }
            int used = end + 4 - c->buf;
            memmove(c->buf, c->buf + used, c->len - used);
            c->len -= used;
            c->state = WAITING;
            if (mqtt) {
                unsigned char pkt[96];
                send_frame(c, 2, pkt, connect_packet(c, pkt));
            }
        }
        if (raw_mqtt) {
            if (!handle_packets(c)) return;
            pump(c);
            continue;
        }
        while (c->len >= 2 && (c->state == WAITING || c->state == OPEN)) {
            size_t n = c->buf[1] & 0x7f, off = 2;
            if (n == 126) { if (c->len < 4) break; n = (c->buf[2] << 8) | c->buf[3]; off = 4; }
            else if (n == 127) { snprintf(last_error, sizeof last_error, "frame too big"); c->len = 0; break; }
            if (off + n > BUF) { c->len = 0; break; }
            if (c->len < (int)(off + n)) break;
            handle_frame(c, c->buf[0] & 0x0f, c->buf + off, n);
            if (c->state == DONE || c->state == CONNECTING) return;
            memmove(c->buf, c->buf + off + n, c->len - off - n);
            c->len -= off + n;
        }
        pump(c);
    }
}

int main(int argc, char **argv) {
    if (argc != 7 && argc != 10 && argc != 11) {
        fprintf(stderr, "usage: bench_clients MODE PORT REQUESTS INFLIGHT RESPOND MAX_SECONDS [MESSAGES WINDOW QOS [RATE]]\n");
        return 2;
    }
    if (argc >= 10) { messages = atoi(argv[7]); window = atoi(argv[8]); qos = atoi(argv[9]); }
    if (argc == 11) rate = atof(argv[10]);
    phase_locked = getenv("BENCH_PHASE_LOCKED") != NULL;
    mqtt = strncmp(argv[1], "mqttws", 6) == 0;
    raw_mqtt = strcmp(argv[1], "mqtt") == 0;
    if (strstr(argv[1], "-tls")) {
        tls = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_verify(tls, SSL_VERIFY_NONE, NULL);
        SSL_CTX_set_mode(tls, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }
    port = atoi(argv[2]);
    int inflight = atoi(argv[4]);
    respond = atoi(argv[5]);
    double max_seconds = atof(argv[6]);

    FILE *f = fopen(argv[3], "r");
    if (!f) { perror(argv[3]); return 1; }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int allocated = 1024;
    conns = calloc(allocated, sizeof *conns);
    while ((n = getline(&line, &cap, f)) > 0) {
        if (count == allocated) { allocated *= 2; conns = realloc(conns, allocated * sizeof *conns); memset(conns + count, 0, (allocated - count) * sizeof *conns); }
        struct conn *c = &conns[count++];
        char *tab = strchr(line, '\t');  /* "ID\tREQUEST" with "|" for "\r\n" */
        *tab = 0;
        snprintf(c->id, sizeof c->id, "%s", line);
        c->request = strdup(tab + 1);
        size_t len = strlen(c->request);
        if (len && c->request[len - 1] == '\n') c->request[--len] = 0;
        char *expanded = malloc(len * 2 + 1), *o = expanded;
        for (char *s = c->request; *s; s++) { if (*s == '|') { *o++ = '\r'; *o++ = '\n'; } else *o++ = *s; }
        *o = 0;
        free(c->request);
        c->request = expanded;
        c->fd = -1;
        if (messages) c->out = malloc((size_t)window * FRAME_MAX);
    }
    fclose(f);

    epfd = epoll_create1(0);
    printf("{\"event\":\"ready\",\"pid\":%d}\n", getpid());
    fflush(stdout);
    char go[16];
    if (!fgets(go, sizeof go, stdin) || strncmp(go, "go", 2) != 0) return 0;
    struct epoll_event in = { .events = EPOLLIN, .data.ptr = NULL };
    epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &in);

    double t0 = now(), deadline = t0 + max_seconds;
    int next = 0, reported = 0, stdin_open = 1;
    struct epoll_event events[256];
    while (stdin_open && now() < deadline) {
        while (next < count && active < inflight) start(&conns[next++]);
        if (!reported && opened + failed == count) {
            printf("{\"event\":\"connected\",\"connected\":%d,\"failed\":%d,\"seconds\":%.3f,\"errors\":[\"%s\"]}\n",
                   opened, failed, now() - t0, failed ? last_error : "");
            fflush(stdout);
            reported = 1;
        }
        int paced = sending && rate > 0;
        if (paced)
            for (int j = 0; j < count; j++) pump(&conns[j]);
        int k = epoll_wait(epfd, events, 256, paced ? 1 : 200);
        for (int i = 0; i < k; i++) {
            struct conn *c = events[i].data.ptr;
            if (!c) {
                char line[256];
                ssize_t r = read(0, line, sizeof line - 1);
                if (r <= 0) { stdin_open = 0; continue; }
                line[r] = 0;
                if (messages && !sending && strstr(line, "send")) {
                    sending = 1;
                    send_started = now();
                    for (int j = 0; j < count; j++) pump(&conns[j]);
                }
                continue;
            }
            if (c->outlen && (events[i].events & EPOLLOUT)) {
                struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
                epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
                flush_out(c);
                pump(c);
            }
            if (c->state == CONNECTING && (events[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
                int err = 0;
                socklen_t l = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
                if (err) { snprintf(last_error, sizeof last_error, "connect: %s", strerror(err)); finish(c, 0); continue; }
                if (tls) {
                    c->ssl = SSL_new(tls);
                    SSL_set_fd(c->ssl, c->fd);
                    SSL_set_connect_state(c->ssl);
                    c->state = HANDSHAKING;
                } else {
                    upgrade(c);
                    continue;
                }
            }
            if (c->state == HANDSHAKING) {
                handshake(c);
                continue;
            }
            if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) readable(c);
        }
    }
    if (!reported) {
        printf("{\"event\":\"connected\",\"connected\":%d,\"failed\":%d,\"seconds\":%.3f,\"errors\":[\"gave up: %s\"]}\n",
               opened, count - opened, now() - t0, last_error);
        fflush(stdout);
    }
    int lost_idle = lost;
    for (int i = 0; i < count; i++)
        if (conns[i].state == OPEN) close_conn(&conns[i]);
    printf("{\"event\":\"closed\",\"lost_while_idle\":%d}\n", lost_idle);
    fflush(stdout);
    return 0;
}
