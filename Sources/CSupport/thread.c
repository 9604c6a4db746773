// Thread naming: pthread_setname_np is a GNU extension the Swift Glibc module does not export.
#define _GNU_SOURCE
#include <pthread.h>
#include <string.h>
#include "tf_support.h"

int tf_set_thread_name(const char *name) {
    char truncated[16];
    strncpy(truncated, name, sizeof truncated - 1);
    truncated[sizeof truncated - 1] = 0;
    return pthread_setname_np(pthread_self(), truncated);
}
