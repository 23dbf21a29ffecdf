/* The libzmq side of benches/zmq_throughput.rs, in C as libzmq's own perf tools
 * (local_thr, remote_thr, local_lat, remote_lat) are: no interpreter in the way.
 *
 *   zmq_peer ROLE ENDPOINT SIZE COUNT
 *
 * Receiving and answering roles bind ENDPOINT (tcp://127.0.0.1:0 picks a port) and
 * print the port bound on the first line; sending and asking roles connect.
 *   pull / router  receive COUNT messages of SIZE bytes; print the microseconds from
 *                  the first message to the last.
 *   push / dealer  send COUNT messages of SIZE bytes, then linger until delivered.
 *   rep            answer COUNT requests with the request itself.
 *   req            ask COUNT times, waiting for each reply; print the microseconds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <zmq.h>

static long long now_us(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000000 + tv.tv_usec;
}

static void die(const char *what) {
    fprintf(stderr, "zmq_peer: %s: %s\n", what, zmq_strerror(zmq_errno()));
    exit(1);
}

static void bind_and_print(void *s, const char *endpoint) {
    char last[256];
    size_t len = sizeof last;
    if (zmq_bind(s, endpoint) != 0) die("bind");
    if (zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, last, &len) != 0) die("last endpoint");
    const char *colon = strrchr(last, ':');
    printf("%s\n", colon ? colon + 1 : last);
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: zmq_peer ROLE ENDPOINT SIZE COUNT\n");
        return 2;
    }
    const char *role = argv[1], *endpoint = argv[2];
    size_t size = (size_t)atol(argv[3]);
    long count = atol(argv[4]);
    void *ctx = zmq_ctx_new();
    int type = !strcmp(role, "pull") ? ZMQ_PULL : !strcmp(role, "push") ? ZMQ_PUSH
        : !strcmp(role, "router") ? ZMQ_ROUTER : !strcmp(role, "dealer") ? ZMQ_DEALER
        : !strcmp(role, "rep") ? ZMQ_REP : !strcmp(role, "req") ? ZMQ_REQ : -1;
    if (type < 0) {
        fprintf(stderr, "zmq_peer: unknown role %s\n", role);
        return 2;
    }
    void *s = zmq_socket(ctx, type);
    if (!s) die("socket");
    zmq_msg_t msg;
    if (type == ZMQ_PULL || type == ZMQ_ROUTER) {
        bind_and_print(s, endpoint);
        long long start = 0;
        for (long i = 0; i < count; i++) {
            if (type == ZMQ_ROUTER) {
                /* The identity frame first. */
                zmq_msg_init(&msg);
                if (zmq_msg_recv(&msg, s, 0) < 0) die("recv");
                zmq_msg_close(&msg);
            }
            zmq_msg_init(&msg);
            if (zmq_msg_recv(&msg, s, 0) < 0) die("recv");
            if (zmq_msg_size(&msg) != size) {
                fprintf(stderr, "zmq_peer: a message of %zu bytes, not %zu\n", zmq_msg_size(&msg), size);
                return 1;
            }
            zmq_msg_close(&msg);
            if (i == 0) start = now_us();
        }
        printf("%lld\n", now_us() - start);
    } else if (type == ZMQ_PUSH || type == ZMQ_DEALER) {
        if (zmq_connect(s, endpoint) != 0) die("connect");
        for (long i = 0; i < count; i++) {
            zmq_msg_init_size(&msg, size);
            memset(zmq_msg_data(&msg), 0, size);
            if (zmq_msg_send(&msg, s, 0) < 0) die("send");
        }
    } else if (type == ZMQ_REP) {
        bind_and_print(s, endpoint);
        for (long i = 0; i < count; i++) {
            zmq_msg_init(&msg);
            if (zmq_msg_recv(&msg, s, 0) < 0) die("recv");
            if (zmq_msg_send(&msg, s, 0) < 0) die("send");
        }
    } else {
        if (zmq_connect(s, endpoint) != 0) die("connect");
        long long start = now_us();
        for (long i = 0; i < count; i++) {
            zmq_msg_init_size(&msg, size);
            memset(zmq_msg_data(&msg), 0, size);
            if (zmq_msg_send(&msg, s, 0) < 0) die("send");
            zmq_msg_init(&msg);
            if (zmq_msg_recv(&msg, s, 0) < 0) die("recv");
            zmq_msg_close(&msg);
        }
        printf("%lld\n", now_us() - start);
    }
    fflush(stdout);
    zmq_close(s); /* lingers (ZMQ_LINGER -1) until everything is sent */
    zmq_ctx_term(ctx);
    return 0;
}
