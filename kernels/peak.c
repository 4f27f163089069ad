/* The int8 multiply-add peak of this CPU, measured: each thread runs a loop of the instruction the
 * int8 tiles are built on, with enough independent accumulators to cover its latency and no
 * memory operands, so that --bench can state what fraction of it prompt processing reaches (as
 * generation states its fraction of the memory bandwidth). A product plus its add counts as 2
 * operations, as GOPS figures usually do.
 *   amx: tdpbssd on 16 x 16 x 64 tiles (16384 products each; the prompt tiles' blocks of 32 use
 *        half of each, so they can reach at most half of this peak);
 *   avx512vnni: vpdpbusd zmm (64 products each); avxvnni: vpdpbusd ymm (32);
 *   avx2: vpmaddubsw + vpaddw (32 products per pair into int16 sums), the densest form of the
 *         AVX2 tiles: the Q4 tiles widen once per block, so the triple with vpmaddwd that Q8 needs
 *         (one vpmaddwd per vpmaddubsw, both on the same two pipes of a Zen 3 core: half the rate)
 *         would make a peak that Q4 prompts reach (99 % of it on Zen 3) and say nothing;
 *   dotprod: sdot on 128-bit vectors (16); neon: smull + sadalp (8 products per pair).
 * The scalar kernels have no int8 vector peak (0). */
#include "kernels/peak.h"

#include <string.h>

#include "base/cpu.h"
#include "base/pool.h"
#include "kernels/isa.h"
#include "kernels/kernels.h"

#define PEAK_ITERS (1L << 22) /* about 10-40 ms a pass; the best of 5 passes counts */

#define ACC10(op)                                                                                     \
    for (long it = 0; it < PEAK_ITERS; it++) {                                                       \
        op(a0) op(a1) op(a2) op(a3) op(a4) op(a5) op(a6) op(a7) op(a8) op(a9)                                      \
    }

#if defined(__x86_64__)
#include <immintrin.h>


/* 4 tdpbssd an iteration, 1/16 of the iterations (a tdpbssd does 256 vpdpbusd's products) */
static int peak_amx(int seed) { return amx_peak(seed, PEAK_ITERS / 16); }

__attribute__((target("avx512f,avx512vnni"), noinline)) static int peak_zmm(int seed) {
    __m512i w = _mm512_set1_epi8((char)(seed | 1)), x = _mm512_set1_epi8(3);
    __m512i a0 = w, a1 = x, a2 = w, a3 = x, a4 = w, a5 = x, a6 = w, a7 = x, a8 = w, a9 = x;
#define OPZ(a) __asm__ volatile("vpdpbusd %1, %2, %0" : "+v"(a) : "v"(w), "v"(x));
    ACC10(OPZ)
    __m512i s = a0;
    s = _mm512_add_epi32(s, a1), s = _mm512_add_epi32(s, a2), s = _mm512_add_epi32(s, a3), s = _mm512_add_epi32(s, a4);
    s = _mm512_add_epi32(s, a5), s = _mm512_add_epi32(s, a6), s = _mm512_add_epi32(s, a7), s = _mm512_add_epi32(s, a8);
    s = _mm512_add_epi32(s, a9);
    return _mm_cvtsi128_si32(_mm512_castsi512_si128(s)); /* one lane: the sums wrap, by design */
}

__attribute__((target("avx2,avxvnni"), noinline)) static int peak_vnni_ymm(int seed) {
    __m256i w = _mm256_set1_epi8((char)(seed | 1)), x = _mm256_set1_epi8(3);
    __m256i a0 = w, a1 = x, a2 = w, a3 = x, a4 = w, a5 = x, a6 = w, a7 = x, a8 = w, a9 = x;
#define OPV(a) __asm__ volatile("%{vex%} vpdpbusd %1, %2, %0" : "+x"(a) : "x"(w), "x"(x));
    ACC10(OPV)
    __m256i s = a0;
    s = _mm256_add_epi32(s, a1), s = _mm256_add_epi32(s, a2), s = _mm256_add_epi32(s, a3), s = _mm256_add_epi32(s, a4);
    s = _mm256_add_epi32(s, a5), s = _mm256_add_epi32(s, a6), s = _mm256_add_epi32(s, a7), s = _mm256_add_epi32(s, a8);
    s = _mm256_add_epi32(s, a9);
    return _mm256_extract_epi32(s, 0);
}

__attribute__((target("avx2"), noinline)) static int peak_avx2(int seed) {
    __m256i w = _mm256_set1_epi8((char)(seed | 1)), x = _mm256_set1_epi8(3);
    __m256i a0 = w, a1 = x, a2 = w, a3 = x, a4 = w, a5 = x, a6 = w, a7 = x, a8 = w, a9 = x;
#define OPA(a)                                                                                       \
    {                                                                                                \
        __m256i p;                                                                                   \
        __asm__ volatile("vpmaddubsw %1, %2, %0" : "=x"(p) : "x"(w), "x"(x));                         \
        __asm__ volatile("vpaddw %1, %0, %0" : "+x"(a) : "x"(p));                                    \
    }
    ACC10(OPA)
    __m256i s = a0;
    s = _mm256_add_epi32(s, a1), s = _mm256_add_epi32(s, a2), s = _mm256_add_epi32(s, a3), s = _mm256_add_epi32(s, a4);
    s = _mm256_add_epi32(s, a5), s = _mm256_add_epi32(s, a6), s = _mm256_add_epi32(s, a7), s = _mm256_add_epi32(s, a8);
    s = _mm256_add_epi32(s, a9);
    return _mm256_extract_epi32(s, 0);
}
#endif

#if defined(__aarch64__)
#include <arm_neon.h>
#if defined(__clang__)
#define PEAK_DOTPROD __attribute__((target("dotprod"), noinline))
#else
#define PEAK_DOTPROD __attribute__((target("arch=armv8.2-a+dotprod"), noinline))
#endif

PEAK_DOTPROD static int peak_sdot(int seed) {
    int8x16_t w = vdupq_n_s8((int8_t)(seed | 1)), x = vdupq_n_s8(3);
    int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0;
#define OPD(a) __asm__ volatile("sdot %0.4s, %1.16b, %2.16b" : "+w"(a) : "w"(w), "w"(x));
    ACC10(OPD)
    int32x4_t s = vaddq_s32(vaddq_s32(vaddq_s32(a0, a1), vaddq_s32(a2, a3)), vaddq_s32(vaddq_s32(a4, a5), vaddq_s32(a6, a7)));
    s = vaddq_s32(s, vaddq_s32(a8, a9));
    return vgetq_lane_s32(s, 0); /* one lane: the sums wrap, by design */
}

__attribute__((noinline)) static int peak_neon(int seed) {
    int8x8_t w = vdup_n_s8((int8_t)(seed | 1)), x = vdup_n_s8(3);
    int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0;
#define OPN(a)                                                                                       \
    {                                                                                                \
        int16x8_t p;                                                                                 \
        __asm__ volatile("smull %0.8h, %1.8b, %2.8b" : "=w"(p) : "w"(w), "w"(x));                    \
        __asm__ volatile("sadalp %0.4s, %1.8h" : "+w"(a) : "w"(p));                                  \
    }
    ACC10(OPN)
    int32x4_t s = vaddq_s32(vaddq_s32(vaddq_s32(a0, a1), vaddq_s32(a2, a3)), vaddq_s32(vaddq_s32(a4, a5), vaddq_s32(a6, a7)));
    s = vaddq_s32(s, vaddq_s32(a8, a9));
    return vgetq_lane_s32(s, 0); /* one lane: the sums wrap, by design */
}
#endif

typedef struct {
    int (*fn)(int);
    volatile int sink[64];
} PeakJob;

static void peak_job(void *arg, int ith, int nth) {
    (void)nth;
    PeakJob *j = arg;
    j->sink[ith & 63] = j->fn(ith);
}

double int8_peak_ops(Pool *pool, int n_threads, uint32_t wtype, const char **how) {
    const char *isa = kernels_isa_name();
    (void)isa; /* no int8 vector kernels on this architecture */
    int (*fn)(int) = NULL;
    double per_iter = 0; /* products per loop iteration (10 instructions or pairs) */
    *how = "none";
#if defined(__x86_64__)
#ifdef PHI_ZMM_EMU /* make zmm-emu-test: no vpdpbusd runs here, and no peak means anything */
    if (!strcmp(isa, "avx512vnni") || !strcmp(isa, "avxvnni") || !strcmp(isa, "amx")) return 0;
#endif
    /* the amx table's types with tiles of more than ACT_TT tokens (act_tt: Q4, Q8, Q4_KP,
     * Q5_KP, IQ4_XS) run AMX tiles; its other types the AVX-512 VNNI kernels */
    int amx = !strcmp(isa, "amx") && wtype < TENSOR_TYPE_COUNT && kernels_isa()->act_tt[wtype] > ACT_TT;
    if (amx) fn = peak_amx, per_iter = 4.0 * 16 * 16 * 64 / 16, *how = "tdpbssd (AMX)";
    else if (!strcmp(isa, "avx512vnni") || !strcmp(isa, "amx")) fn = peak_zmm, per_iter = 10 * 64, *how = "vpdpbusd zmm";
    else if (!strcmp(isa, "avxvnni")) fn = peak_vnni_ymm, per_iter = 10 * 32, *how = "vpdpbusd ymm";
    else if (!strcmp(isa, "avx2")) fn = peak_avx2, per_iter = 10 * 32, *how = "vpmaddubsw+vpaddw ymm";
#elif defined(__aarch64__)
    if (!strcmp(isa, "dotprod")) fn = peak_sdot, per_iter = 10 * 16, *how = "sdot";
    else if (!strcmp(isa, "neon")) fn = peak_neon, per_iter = 10 * 8, *how = "smull+sadalp";
#endif
    if (!fn) return 0;
    PeakJob j;
    memset(&j, 0, sizeof j);
    j.fn = fn;
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now_seconds();
        pool_run(pool, peak_job, &j);
        double dt = now_seconds() - t0, ops = 2.0 * per_iter * PEAK_ITERS * (pool ? n_threads : 1) / dt;
        if (ops > best) best = ops;
    }
    return best;
}
