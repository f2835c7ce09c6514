#ifndef GATEHOUSE_CMOSQUITTO_SHIM_H
#define GATEHOUSE_CMOSQUITTO_SHIM_H
#include <mosquitto.h>
#include <mqtt_protocol.h>

#ifdef __linux__
#include <pthread.h>
/* glibc declares it only with _GNU_SOURCE, which a module's headers cannot count on: the network
   thread (NetworkLoop.swift) names itself with it, so profiles and `top -H` tell it apart. */
extern int pthread_setname_np(pthread_t thread, const char *name);
#include <poll.h>
#include <signal.h>
#include <time.h>
/* Also _GNU_SOURCE's: the network thread's waits for PUBACKs are bounded in fractions of a millisecond
   (PubackCoalescing.swift), finer than poll's timeout. */
extern int ppoll(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout, const sigset_t *sigmask);
#endif
#endif
