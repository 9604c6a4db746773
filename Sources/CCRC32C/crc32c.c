// CRC-32C (Castagnoli) with the CPU's CRC instructions; the Swift side falls back to slicing-by-8 tables.
#include "tf_crc32c.h"

#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#define TF_CRC_TARGET __attribute__((target("sse4.2")))
#define TF_CRC_WORD(crc, word) ((uint32_t)_mm_crc32_u64((crc), (word)))
#define TF_CRC_BYTE(crc, byte) _mm_crc32_u8((crc), (byte))

int tf_crc32c_hardware_available(void) { return __builtin_cpu_supports("sse4.2") ? 1 : 0; }

#elif defined(__aarch64__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#define TF_CRC_TARGET __attribute__((target("crc")))
#define TF_CRC_WORD(crc, word) __builtin_arm_crc32cd((crc), (word))
#define TF_CRC_BYTE(crc, byte) __builtin_arm_crc32cb((crc), (byte))

int tf_crc32c_hardware_available(void) { return (getauxval(AT_HWCAP) & HWCAP_CRC32) ? 1 : 0; }

#endif

#if defined(TF_CRC_TARGET)

TF_CRC_TARGET
uint32_t tf_crc32c_hardware(uint32_t crc, const void *bytes, size_t length) {
    const unsigned char *p = bytes;
    uint32_t c = ~crc;
    while (length >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        c = TF_CRC_WORD(c, word);
        p += 8;
        length -= 8;
    }
    while (length > 0) {
        c = TF_CRC_BYTE(c, *p++);
        length--;
    }
    return ~c;
}

#else

int tf_crc32c_hardware_available(void) { return 0; }

uint32_t tf_crc32c_hardware(uint32_t crc, const void *bytes, size_t length) {
    (void)bytes;
    (void)length;
    return crc;
}

#endif
