// CRC-32C (Castagnoli) with the CPU's CRC instructions; the Swift side falls back to slicing-by-8 tables.
#include "tf_support.h"

#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#include <wmmintrin.h>
#define TF_CRC_TARGET __attribute__((target("sse4.2")))
#define TF_CRC_WORD(crc, word) ((uint32_t)_mm_crc32_u64((crc), (word)))
#define TF_CRC_HALF(crc, half) _mm_crc32_u32((crc), (half))
#define TF_CRC_BYTE(crc, byte) _mm_crc32_u8((crc), (byte))

int tf_crc32c_hardware_available(void) { return __builtin_cpu_supports("sse4.2") ? 1 : 0; }

#elif defined(__aarch64__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#define TF_CRC_TARGET __attribute__((target("crc")))
#define TF_CRC_WORD(crc, word) __builtin_arm_crc32cd((crc), (word))
#define TF_CRC_HALF(crc, half) __builtin_arm_crc32cw((crc), (half))
#define TF_CRC_BYTE(crc, byte) __builtin_arm_crc32cb((crc), (byte))

int tf_crc32c_hardware_available(void) { return (getauxval(AT_HWCAP) & HWCAP_CRC32) ? 1 : 0; }

#endif

#if defined(TF_CRC_TARGET)

static inline uint64_t tf_load64(const unsigned char *p) {
    uint64_t word;
    memcpy(&word, p, 8);
    return word;
}

/// One CRC instruction takes 3 cycles but a new one can start every cycle, so a single chain leaves two
/// thirds of the unit idle. On x86-64 with PCLMULQDQ, runs of 24 bytes or more are split in three blocks
/// checksummed side by side, and the three registers are merged with carry-less multiplications by
/// x^(8n-33) mod P (n: bytes the register has to be moved forward), reduced by one more CRC instruction.
#if defined(__x86_64__)
#define TF_CRC_MAX_WORDS 64  // per block: up to 1,536 bytes per three-way round
static uint32_t tf_shift_constants[2 * TF_CRC_MAX_WORDS + 1];  // [w]: x^(64w-33) mod P, bit-reflected
static int tf_interleave = -1;  // -1 unknown, 0 no PCLMULQDQ, 1 ready

TF_CRC_TARGET
static void tf_crc32c_prepare(void) {
    if (!__builtin_cpu_supports("pclmul")) {
        __atomic_store_n(&tf_interleave, 0, __ATOMIC_RELEASE);
        return;
    }
    uint32_t k = 1;  // x^31 (bit 0 of a reflected register is the x^31 coefficient)
    tf_shift_constants[0] = 0;
    for (int w = 1; w <= 2 * TF_CRC_MAX_WORDS; w++) {
        tf_shift_constants[w] = k;
        k = (uint32_t)_mm_crc32_u64(k, 0);  // times x^64
    }
    __atomic_store_n(&tf_interleave, 1, __ATOMIC_RELEASE);
}

__attribute__((target("sse4.2,pclmul")))
static inline uint32_t tf_merge3(uint32_t a, uint32_t b, uint32_t c, size_t words) {
    __m128i ka = _mm_cvtsi32_si128((int)tf_shift_constants[2 * words]);
    __m128i kb = _mm_cvtsi32_si128((int)tf_shift_constants[words]);
    __m128i pa = _mm_clmulepi64_si128(_mm_cvtsi32_si128((int)a), ka, 0);
    __m128i pb = _mm_clmulepi64_si128(_mm_cvtsi32_si128((int)b), kb, 0);
    uint64_t moved = (uint64_t)_mm_cvtsi128_si64(_mm_xor_si128(pa, pb));
    return (uint32_t)_mm_crc32_u64(0, moved) ^ c;
}
#endif

TF_CRC_TARGET
uint32_t tf_crc32c_hardware(uint32_t crc, const void *bytes, size_t length) {
    const unsigned char *p = bytes;
    uint32_t c = ~crc;
#if defined(__x86_64__)
    if (length >= 24) {
        int ready = __atomic_load_n(&tf_interleave, __ATOMIC_ACQUIRE);
        if (ready < 0) {
            tf_crc32c_prepare();
            ready = __atomic_load_n(&tf_interleave, __ATOMIC_ACQUIRE);
        }
        while (ready && length >= 24) {
            size_t words = length / 24;
            if (words > TF_CRC_MAX_WORDS) words = TF_CRC_MAX_WORDS;
            size_t n = words * 8;
            uint32_t c1 = 0, c2 = 0;
            for (size_t i = 0; i < n; i += 8) {
                c = TF_CRC_WORD(c, tf_load64(p + i));
                c1 = TF_CRC_WORD(c1, tf_load64(p + n + i));
                c2 = TF_CRC_WORD(c2, tf_load64(p + 2 * n + i));
            }
            c = tf_merge3(c, c1, c2, words);
            p += 3 * n;
            length -= 3 * n;
        }
    }
#endif
    while (length >= 8) {
        c = TF_CRC_WORD(c, tf_load64(p));
        p += 8;
        length -= 8;
    }
    if (length >= 4) {
        uint32_t half;
        memcpy(&half, p, 4);
        c = TF_CRC_HALF(c, half);
        p += 4;
        length -= 4;
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
