/*
 * The command round trip's MQTT side for examples/bench_rtt.py, in C through libmosquitto, so that the requester
 * and the baseline's echo cost tens of µs per command, not the 400-850 µs of the Python (paho) ones they replace,
 * and add no interpreter's pauses to the p99 they measure.
 *
 *   bench_rtt request PORT REQUEST_TOPIC RESPONSE_TOPIC
 *       Connects (MQTT 5, TCP_NODELAY), subscribes to RESPONSE_TOPIC, prints "ready". Then for each line N read
 *       from stdin: N requests one at a time ({"id","params","timeout_ms"} at QoS 1 on REQUEST_TOPIC), each timed
 *       from just before its publish to the arrival of the response carrying its id; prints the N round trips in
 *       ms on one line. Ends at the end of stdin.
 *   bench_rtt echo PORT FILTER
 *       Answers every request on FILTER (<base>/<dev>/request/<cmd>) on <base>/<dev>/response/<cmd> with
 *       {"id":<its id>,"status":"ok","data":{}} at QoS 1, until stdin closes.
 *
 * Single-threaded: the requester drives libmosquitto's loop itself while it waits.
 */
#define _GNU_SOURCE  /* memmem */
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <poll.h>
#include <unistd.h>

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static struct mosquitto *connect_to(int port) {
    struct mosquitto *mosq = mosquitto_new(NULL, true, NULL);
    if (!mosq) { perror("mosquitto_new"); exit(1); }
    mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_int_option(mosq, MOSQ_OPT_TCP_NODELAY, 1);
    if (mosquitto_connect(mosq, "127.0.0.1", port, 60) != MOSQ_ERR_SUCCESS) { fprintf(stderr, "cannot connect\n"); exit(1); }
    return mosq;
}

/* The request whose answer is awaited: its quoted id, and when the answer came. */
static char awaited[96];
static double answered_at;
static int subscribed;

static void on_subscribed(struct mosquitto *mosq, void *obj, int mid, int count, const int *granted, const mosquitto_property *props) {
    subscribed = 1;
}

static void on_response(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg, const mosquitto_property *props) {
    if (answered_at == 0 && msg->payloadlen > 0 && memmem(msg->payload, msg->payloadlen, awaited, strlen(awaited)))
        answered_at = now_ms();
}

static int request(int port, const char *request_topic, const char *response_topic) {
    struct mosquitto *mosq = connect_to(port);
    mosquitto_message_v5_callback_set(mosq, on_response);
    mosquitto_subscribe_v5_callback_set(mosq, on_subscribed);
    mosquitto_subscribe_v5(mosq, NULL, response_topic, 1, 0, NULL);
    /* The CONNACK, then the SUBACK: only then can no answer be missed. */
    while (!subscribed) {
        int rc = mosquitto_loop(mosq, 1000, 1);
        if (rc != MOSQ_ERR_SUCCESS) { fprintf(stderr, "loop: %s\n", mosquitto_strerror(rc)); return 1; }
    }
    printf("ready\n");
    fflush(stdout);
    char line[64];
    unsigned long serial = 0;
    while (fgets(line, sizeof line, stdin)) {
        int n = atoi(line);
        for (int i = 0; i < n; i++, serial++) {
            char id[64], payload[160];
            snprintf(id, sizeof id, "r-%lu-%d", serial, getpid());
            snprintf(awaited, sizeof awaited, "\"%s\"", id);
            int length = snprintf(payload, sizeof payload, "{\"id\":\"%s\",\"params\":{\"n\":%d},\"timeout_ms\":5000}", id, i);
            answered_at = 0;
            double start = now_ms();
            mosquitto_publish_v5(mosq, NULL, request_topic, length, payload, 1, false, NULL);
            while (answered_at == 0) {
                int rc = mosquitto_loop(mosq, 1000, 1);
                if (rc != MOSQ_ERR_SUCCESS) { fprintf(stderr, "loop: %s\n", mosquitto_strerror(rc)); return 1; }
                if (now_ms() - start > 10000) { fprintf(stderr, "no answer to %s\n", id); return 1; }
            }
            printf(i ? " %.4f" : "%.4f", answered_at - start);
        }
        printf("\n");
        fflush(stdout);
    }
    mosquitto_disconnect(mosq);
    mosquitto_destroy(mosq);
    return 0;
}

static void on_request(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg, const mosquitto_property *props) {
    const char *marker = strstr(msg->topic, "/request/");
    const char *id = msg->payloadlen > 0 ? strstr((const char *)msg->payload, "\"id\":\"") : NULL;
    if (!marker || !id) return;
    id += 6;
    const char *end = strchr(id, '"');
    if (!end) return;
    char topic[256], payload[160];
    snprintf(topic, sizeof topic, "%.*s/response/%s", (int)(marker - msg->topic), msg->topic, marker + 9);
    int length = snprintf(payload, sizeof payload, "{\"id\":\"%.*s\",\"status\":\"ok\",\"data\":{}}", (int)(end - id), id);
    mosquitto_publish_v5(mosq, NULL, topic, length, payload, 1, false, NULL);
}

static int echo(int port, const char *filter) {
    struct mosquitto *mosq = connect_to(port);
    mosquitto_message_v5_callback_set(mosq, on_request);
    mosquitto_subscribe_v5(mosq, NULL, filter, 1, 0, NULL);
    struct pollfd in = { .fd = 0, .events = POLLIN };
    char buffer[64];
    while (1) {
        int rc = mosquitto_loop(mosq, 100, 1);
        if (rc != MOSQ_ERR_SUCCESS) { fprintf(stderr, "loop: %s\n", mosquitto_strerror(rc)); return 1; }
        /* stdin closed (read returns 0): the benchmark is done. */
        if (poll(&in, 1, 0) > 0 && read(0, buffer, sizeof buffer) <= 0) break;
    }
    mosquitto_disconnect(mosq);
    mosquitto_destroy(mosq);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOFBF, 1 << 20);
    mosquitto_lib_init();
    if (argc == 5 && strcmp(argv[1], "request") == 0) return request(atoi(argv[2]), argv[3], argv[4]);
    if (argc == 4 && strcmp(argv[1], "echo") == 0) return echo(atoi(argv[2]), argv[3]);
    fprintf(stderr, "usage: bench_rtt request PORT REQUEST_TOPIC RESPONSE_TOPIC | bench_rtt echo PORT FILTER\n");
    return 2;
}
