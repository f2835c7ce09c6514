#include "thread_number.h"

__thread __attribute__((tls_model("initial-exec"))) unsigned gatehouse_thread_number_plus_one;

static unsigned numbered;

unsigned gatehouse_assign_thread_number(void) {
    unsigned number = __atomic_fetch_add(&numbered, 1, __ATOMIC_RELAXED);
    gatehouse_thread_number_plus_one = number + 1;
    return number;
}
