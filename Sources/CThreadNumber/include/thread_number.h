#ifndef GATEHOUSE_THREAD_NUMBER_H
#define GATEHOUSE_THREAD_NUMBER_H

/* A small number for the calling thread: 0, 1, 2, … in the order threads first ask, kept for the thread's life.
   Striped counters (Sources/Gatehouse/Observability/StripedCounts.swift) pick their stripe with it on every device
   message, so it must cost next to nothing: a thread-local read in the initial-exec model (one load off the thread
   pointer), where Swift has no thread-local storage of its own and pthread_getspecific is a call and a lookup. */

extern __thread __attribute__((tls_model("initial-exec"))) unsigned gatehouse_thread_number_plus_one;

/* Numbers the calling thread; only gatehouse_thread_number calls it, once per thread. */
unsigned gatehouse_assign_thread_number(void);

static inline unsigned gatehouse_thread_number(void) {
    unsigned number = gatehouse_thread_number_plus_one;
    return number != 0 ? number - 1 : gatehouse_assign_thread_number();
}

#endif
