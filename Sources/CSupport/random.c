// Random-looking 64-bit values for trace and span ids: the SplitMix64 finaliser of a process-wide counter offset by a
// seed from the system (getrandom). The finaliser is a bijection, so no value repeats within a process; the seed makes
// processes differ. Each thread takes the counter in blocks of 65,536 with one atomic add, so the ids of a span cost no
// shared cache line. A forked child takes a new seed, so it never repeats its parent's ids.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "tf_support.h"

#define TF_RANDOM_BLOCK 65536u

static uint64_t tf_random_seed_value;
static uint64_t tf_random_next_block;
static pthread_once_t tf_random_once = PTHREAD_ONCE_INIT;
static _Thread_local uint64_t tf_random_next;
static _Thread_local uint64_t tf_random_end;

static uint64_t tf_random_system_seed(void) {
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, 0) == (ssize_t)sizeof seed) return seed;
    // No entropy source (a sandbox without the system call): the clock and the process.
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^ ((uint64_t)getpid() << 40);
}

// After fork() only the forking thread exists in the child: a new seed, and that thread's block given up.
static void tf_random_after_fork_in_child(void) {
    __atomic_store_n(&tf_random_seed_value, tf_random_system_seed(), __ATOMIC_RELAXED);
    tf_random_next = tf_random_end = 0;
}

static void tf_random_start(void) {
    __atomic_store_n(&tf_random_seed_value, tf_random_system_seed(), __ATOMIC_RELAXED);
    pthread_atfork(NULL, NULL, tf_random_after_fork_in_child);
}

uint64_t tf_random64(void) {
    if (__builtin_expect(tf_random_next == tf_random_end, 0)) {
        pthread_once(&tf_random_once, tf_random_start);
        tf_random_next = __atomic_fetch_add(&tf_random_next_block, TF_RANDOM_BLOCK, __ATOMIC_RELAXED);
        tf_random_end = tf_random_next + TF_RANDOM_BLOCK;
    }
    uint64_t z = __atomic_load_n(&tf_random_seed_value, __ATOMIC_RELAXED) + tf_random_next++ * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
