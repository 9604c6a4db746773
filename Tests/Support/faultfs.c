// An LD_PRELOAD interposer that makes one chosen file-system call of a process fail, for the I/O fault tests.
//
// Only calls on files under FAULTFS_DIR count. FAULTFS_KIND names the kind of call (write: write, pwrite,
// writev; sync: fsync, fdatasync, msync; truncate: ftruncate; rename: rename, link, unlink; map: mmap; open:
// open of a file for writing), FAULTFS_NTH which call of that kind fails (1 = the first; 0 = none, only count),
// FAULTFS_ERRNO the errno it fails with, and FAULTFS_PERSIST=1 makes every later call of the kind fail too.
// At exit the number of calls of the kind seen is written to FAULTFS_COUNT_FILE when it is set.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static const char *dir;
static size_t dir_len;
static const char *kind = "";
static long nth;
static int fail_errno = EIO;
static int persist;
static atomic_long seen;
static atomic_int failed_once;

__attribute__((constructor)) static void faultfs_init(void) {
    dir = getenv("FAULTFS_DIR");
    dir_len = dir ? strlen(dir) : 0;
    const char *k = getenv("FAULTFS_KIND");
    if (k) kind = k;
    const char *n = getenv("FAULTFS_NTH");
    nth = n ? atol(n) : 0;
    const char *e = getenv("FAULTFS_ERRNO");
    if (e) fail_errno = atoi(e);
    const char *p = getenv("FAULTFS_PERSIST");
    persist = p && p[0] == '1';
}

__attribute__((destructor)) static void faultfs_done(void) {
    const char *path = getenv("FAULTFS_COUNT_FILE");
    if (!path) return;
    FILE *f = fopen(path, "w");
    if (!f) return;
    fprintf(f, "%ld\n", atomic_load(&seen));
    fclose(f);
}

static int under_dir(const char *path) {
    if (!dir || !path) return 0;
    if (path[0] == '/') return strncmp(path, dir, dir_len) == 0;
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) return 0;
    return strncmp(cwd, dir, dir_len) == 0;
}

static int fd_under_dir(int fd) {
    if (!dir || fd < 0) return 0;
    char link[64], target[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0) return 0;
    target[n] = 0;
    return strncmp(target, dir, dir_len) == 0;
}

// Whether this call (of kind `k`, on a file under the directory) must fail.
static int should_fail(const char *k) {
    if (strcmp(k, kind) != 0) return 0;
    long n = atomic_fetch_add(&seen, 1) + 1;
    if (nth <= 0) return 0;
    if (n == nth || (persist && n > nth)) {
        atomic_store(&failed_once, 1);
        return 1;
    }
    return 0;
}

#define REAL(name) static __typeof__(&name) real_##name; if (!real_##name) real_##name = (__typeof__(&name))dlsym(RTLD_NEXT, #name)

ssize_t write(int fd, const void *buf, size_t count) {
    REAL(write);
    if (fd > 2 && fd_under_dir(fd) && should_fail("write")) { errno = fail_errno; return -1; }
    return real_write(fd, buf, count);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
    REAL(pwrite);
    if (fd_under_dir(fd) && should_fail("write")) { errno = fail_errno; return -1; }
    return real_pwrite(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset) {
    REAL(pwrite64);
    if (fd_under_dir(fd) && should_fail("write")) { errno = fail_errno; return -1; }
    return real_pwrite64(fd, buf, count, offset);
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt) {
    REAL(writev);
    if (fd > 2 && fd_under_dir(fd) && should_fail("write")) { errno = fail_errno; return -1; }
    return real_writev(fd, iov, iovcnt);
}

int fsync(int fd) {
    REAL(fsync);
    if (fd_under_dir(fd) && should_fail("sync")) { errno = fail_errno; return -1; }
    return real_fsync(fd);
}

int fdatasync(int fd) {
    REAL(fdatasync);
    if (fd_under_dir(fd) && should_fail("sync")) { errno = fail_errno; return -1; }
    return real_fdatasync(fd);
}

int ftruncate(int fd, off_t length) {
    REAL(ftruncate);
    if (fd_under_dir(fd) && should_fail("truncate")) { errno = fail_errno; return -1; }
    return real_ftruncate(fd, length);
}

int ftruncate64(int fd, off_t length) {
    REAL(ftruncate64);
    if (fd_under_dir(fd) && should_fail("truncate")) { errno = fail_errno; return -1; }
    return real_ftruncate64(fd, length);
}

int rename(const char *from, const char *to) {
    REAL(rename);
    if ((under_dir(from) || under_dir(to)) && should_fail("rename")) { errno = fail_errno; return -1; }
    return real_rename(from, to);
}

int link(const char *from, const char *to) {
    REAL(link);
    if ((under_dir(from) || under_dir(to)) && should_fail("rename")) { errno = fail_errno; return -1; }
    return real_link(from, to);
}

int unlink(const char *path) {
    REAL(unlink);
    if (under_dir(path) && should_fail("rename")) { errno = fail_errno; return -1; }
    return real_unlink(path);
}

void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset) {
    REAL(mmap);
    if (fd >= 0 && fd_under_dir(fd) && should_fail("map")) { errno = fail_errno; return MAP_FAILED; }
    return real_mmap(addr, length, prot, flags, fd, offset);
}

void *mmap64(void *addr, size_t length, int prot, int flags, int fd, off_t offset) {
    REAL(mmap64);
    if (fd >= 0 && fd_under_dir(fd) && should_fail("map")) { errno = fail_errno; return MAP_FAILED; }
    return real_mmap64(addr, length, prot, flags, fd, offset);
}

static int open_common(const char *path, int flags) {
    return (flags & (O_WRONLY | O_RDWR | O_CREAT)) && under_dir(path) && should_fail("open");
}

int open(const char *path, int flags, ...) {
    REAL(open);
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) { va_list ap; va_start(ap, flags); mode = va_arg(ap, int); va_end(ap); }
    if (open_common(path, flags)) { errno = fail_errno; return -1; }
    return real_open(path, flags, mode);
}

int open64(const char *path, int flags, ...) {
    REAL(open64);
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) { va_list ap; va_start(ap, flags); mode = va_arg(ap, int); va_end(ap); }
    if (open_common(path, flags)) { errno = fail_errno; return -1; }
    return real_open64(path, flags, mode);
}
