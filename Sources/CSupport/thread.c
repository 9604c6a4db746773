// Thread naming, slots and priority: pthread_setname_np and gettid are GNU extensions the Swift Glibc module
// does not export.
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "tf_support.h"

int tf_set_thread_name(const char *name) {
    char truncated[16];
    strncpy(truncated, name, sizeof truncated - 1);
    truncated[sizeof truncated - 1] = 0;
    return pthread_setname_np(pthread_self(), truncated);
}

static unsigned tf_next_thread_slot;
static _Thread_local unsigned tf_thread_slot_plus_one;

unsigned tf_thread_slot(void) {
    unsigned slot = tf_thread_slot_plus_one;
    if (__builtin_expect(slot == 0, 0)) {
        slot = __atomic_fetch_add(&tf_next_thread_slot, 1, __ATOMIC_RELAXED) + 1;
        if (slot == 0) slot = __atomic_fetch_add(&tf_next_thread_slot, 1, __ATOMIC_RELAXED) + 1;  // wrapped
        tf_thread_slot_plus_one = slot;
    }
    return slot - 1;
}

int tf_lower_thread_priority(int steps) {
    id_t tid = (id_t)syscall(SYS_gettid);
    errno = 0;
    int nice = getpriority(PRIO_PROCESS, tid);
    if (nice == -1 && errno != 0) return -1;
    nice += steps;
    return setpriority(PRIO_PROCESS, tid, nice > 19 ? 19 : nice);
}
