/* What the AVX-512 VNNI kernel files share (x86_avx512.c: int8 Q4/Q8, float and attention;
 * x86_avx512_k.c: the K-quant types as stored in ggml's rows and the tiles every super-block type
 * runs on; x86_avx512_kp.c: the K panel types): the target attribute, the embedded-broadcast
 * vpdpbusd, prefetching, and the K entry points the kernel table names. x86-64 only. */
#ifndef PHI_KERNELS_X86_ZMM_H
#define PHI_KERNELS_X86_ZMM_H
#if defined(__x86_64__)

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/isa.h"
#include "kernels/kquant.h"

/* tests/zmm_emu.h (make zmm-emu-test) defines ZTGT, ZKEEP and PHI_ZMM_EMU first: these files then
 * run on an AVX2 machine with every zmm intrinsic emulated, to test their logic where the CPU
 * has no AVX-512. */
#ifndef ZTGT
#define ZTGT __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#endif
/* an empty asm that makes GCC keep zmm values in registers as they are (its reasons where used) */
#ifndef ZKEEP
#define ZKEEP(a) __asm__("" : "+v"(a))
#define ZKEEP2(a, b) __asm__("" : "+v"(a), "+v"(b))
#endif
#define ZINL static inline __attribute__((always_inline)) ZTGT
#define KROW_TT 2 /* tokens the K row kernels take at once (kq_zmm says why) */
#ifndef PF_AHEAD
#define PF_AHEAD 2048 /* bytes of quants prefetched ahead in generation (scales: an eighth) */
#endif

typedef int32_t i32_ua __attribute__((aligned(1), may_alias));

/* 4 bytes at p in every lane. Read as one aliasing int32 so that the compiler folds it into the
 * consuming vpdpbusd as an embedded broadcast (m32{1to16}): one uop instead of a separate
 * vpbroadcastd. */
ZINL __m512i bcast32(const uint8_t *p) { return _mm512_set1_epi32(*(const i32_ua *)(const void *)p); }

/* acc + dpbusd(w, the 4 bytes at p in every lane), with the broadcast embedded in the instruction
 * (m32{1to16}): GCC does not fold a broadcast into vpdpbusd by itself, and the separate
 * vpbroadcastd doubles the uops of the int8 tiles. */
ZINL __m512i dpbusd_b(__m512i acc, __m512i w, const uint8_t *p) {
#ifdef PHI_ZMM_EMU
    return _mm512_dpbusd_epi32(acc, w, bcast32(p));
#else
    __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(w), "m"(*(const i32_ua *)(const void *)p));
    return acc;
#endif
}

/* The sums of a two-panel tile's token half h (f0: the first panel's 16 rows, f1: the next
 * nr1) to y, or added to it (acc), for its tokens below n. */
ZINL void pair_store(const __m512 *f0, const __m512 *f1, int h, int n, float *y, int ldy, int nr1, int acc) {
    __mmask16 m1 = (__mmask16)((1u << nr1) - 1);
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        if (4 * h + i >= n) break;
        float *yi = y + (size_t)(4 * h + i) * ldy;
        _mm512_storeu_ps(yi, acc ? _mm512_add_ps(f0[i], _mm512_loadu_ps(yi)) : f0[i]);
        _mm512_mask_storeu_ps(yi + QR, m1, acc ? _mm512_add_ps(f1[i], _mm512_maskz_loadu_ps(m1, yi + QR)) : f1[i]);
    }
}

/* A prefetch hint for the address p + ahead, which may lie past the end of the object: formed
 * as an integer, since pointer arithmetic beyond an object is undefined. */
ZINL void prefetch_ahead(const void *p, size_t ahead) {
    _mm_prefetch((const char *)(uintptr_t)((uintptr_t)p + ahead), _MM_HINT_T0);
}
/* The same into L2 only (the K decoders' next super-block, x86_avx512_kp.c says why). */
ZINL void prefetch_l2(const void *p, size_t ahead) {
    _mm_prefetch((const char *)(uintptr_t)((uintptr_t)p + ahead), _MM_HINT_T1);
}

/* NT tokens (1 or 2) of a row kernel: each token's sums run in the order they run alone, so a
 * token's outputs do not depend on the batch it came in. */
#define KROW_SWITCH(CALL)                                                                         \
    if (nt == 1) {                                                                             \
        const int NT_ = 1;                                                                     \
        CALL;                                                                                  \
    } else {                                                                                   \
        const int NT_ = 2;                                                                     \
        CALL;                                                                                  \
    }

/* The unpacked panel records pk (kernels/kquant.h) against tt tokens: kmat_tiled's tile for every
 * super-block type (x86_avx512_k.c). */
void ktile_zmm(const uint8_t *pk, const uint8_t *ar, const uint8_t *side, int tt, int n, int nblocks, float *y,
               int ldy, int nr, int acc, int kmode);
/* Two such panels against a full tile (KTilePairFn, x86_avx512_k.c). */
void kpair_zmm(const uint8_t *pk0, const uint8_t *pk1, const uint8_t *ar, const uint8_t *side, int n, int nblocks,
               float *y, int ldy, int nr1, int acc, int kmode);
/* MatKernel for Q4_K, Q5_K, Q6_K (x86_avx512_k.c) and for Q4_KP, Q5_KP, Q6_KP, IQ4_XS (x86_avx512_kp.c). */
void kq_mat_zmm(const MatView *w, const void *act, int t0, int nt, float *y, int ldy, int r0, int r1);
void kp_mat_zmm(const MatView *w, const void *act, int t0, int nt, float *y, int ldy, int r0, int r1);
/* The Q8 and Q4 entries of the AVX-512 VNNI table (x86_avx512.c), and of the AMX table
 * (x86_amx.c), which hands them calls of at most ACT_TT tokens. */
void q8_zmm(const MatView *w, const void *act, int t0, int nt, float *y, int ldy, int r0, int r1);
void q4_zmm(const MatView *w, const void *act, int t0, int nt, float *y, int ldy, int r0, int r1);
void q8_amx(const MatView *w, const void *act, int t0, int nt, float *y, int ldy, int r0, int r1);
void q4_amx(const MatView *w, const void *act, int t0, int nt, float *y, int ldy, int r0, int r1);
void kp_amx(const MatView *w, const void *act, int t0, int nt, float *y, int ldy, int r0, int r1);
/* x86_avx512_kp.c's unpacking of a K panel type's panels into records (kernels/kquant.h). */
KUnpackFn kp_unpack_zmm(uint32_t type);

#endif
#endif
