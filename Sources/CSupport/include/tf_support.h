#ifndef TF_SUPPORT_H
#define TF_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

/// 1 when the CPU has CRC-32C instructions (x86-64 SSE 4.2, AArch64 CRC32), else 0.
int tf_crc32c_hardware_available(void);

/// CRC-32C of `length` bytes continuing from `crc` (0 to start), with the CPU's instructions. Call only when
/// tf_crc32c_hardware_available() returned 1.
uint32_t tf_crc32c_hardware(uint32_t crc, const void *bytes, size_t length);

/// Names the calling thread (the kernel keeps the first 15 bytes), as `top -H`, `perf` and
/// /proc/self/task/*/comm show it. Returns 0 or an errno value.
int tf_set_thread_name(const char *name);

/// A number for the calling thread, given out in turn to threads as they first ask (0, 1, 2, …): threads that
/// index per-thread slots with it modulo N do not share a slot while fewer than N of them ask.
unsigned tf_thread_slot(void);

/// Raises the calling thread's nice value by `steps` (at most to 19), lowering its share of the CPU against the
/// process's other threads (Linux schedules threads, not processes). Returns 0, or -1 with errno set.
int tf_lower_thread_priority(int steps);

/// A random-looking 64-bit value for trace and span ids (not for secrets): never the same twice within a process, and
/// different between processes (a seed from getrandom; a forked child takes a new one). No shared cache line per call.
uint64_t tf_random64(void);

#endif
