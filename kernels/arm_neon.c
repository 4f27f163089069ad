/* ARM NEON kernels: "neon" (baseline ASIMD, ARMv8.0; on 32-bit ARM, ARMv7-A NEON with VFPv4)
 * and "dotprod" (ARMv8.2 sdot, AArch64 only), picked at runtime from HWCAP.
 *
 * 32-bit ARM: the Makefile compiles this file alone with -mfpu=neon-vfpv4 (the rest of the
 * program stays at the target's baseline, e.g. Debian armhf's VFPv3-D16 without NEON) and
 * dispatch.c offers "neon" only where HWCAP says NEON and VFPv4 (Cortex-A5/A7/A15/A17, ARMv8
 * cores in 32-bit mode); kernels/neon_compat.h supplies the AArch64-only intrinsics.
 *
 * Int8 matrices (weight panels: kernels/blocks.h; activation tiles: kernels/isa.h): the 16
 * bytes at wq + 64 k + 16 g of a panel block are bytes [4k, 4k + 4) of rows 4g..4g+3, i.e. 4
 * rows x 4 weights that all meet the same 4 activation bytes (dword k of the token's block).
 * A tile is one panel x up to 8 tokens (kernels/tiled.c runs the loop nest): per block and
 * group of 4 rows, the group's 8 weight vectors are loaded (Q4: unpacked) once and reused from
 * registers for every token; each token gives an int32x4 of the 4 rows' block sums, which the
 * float sums take times d_w * d_x lane by lane. The products:
 *   dotprod: sdot by element (weight vector k against dword k of the token), 8 per group;
 *   neon, one token: smull/smlal of 2 rows x 4 bytes against dword k broadcast;
 *   neon, more tokens: the group transposed to a vector per row and half block, against the
 *     token's quants as they are; then pairwise adds fold each row to one lane.
 *   Without sdot an int16 lane may sum only 2 Q8 products (2 * 127 * 127 < 2^15) before
 *   sadalp widens them; Q4 nibbles (0..15) allow 8.
 * Q8 weights are used signed (k_q8 = 0, so c = 0 and is not read); Q4 nibbles as stored, q + 8
 * (k_q4 = 8: the sums start from c = -8 * sum(x), which removes the offset). */
#if defined(__arm__) && !defined(__aarch64__) && !defined(__ARM_NEON)
#error "32-bit ARM: build kernels/arm_neon.c with -mfpu=neon-vfpv4 (the Makefile does)"
#endif
#if defined(__aarch64__) || defined(__arm__)

#include <math.h>
#include <string.h>

#include "kernels/isa.h"
#include "kernels/kquant.h"
#include "kernels/neon_compat.h"
#include "kernels/ref.h"

#define INL static inline __attribute__((always_inline))

/* The dotprod tiles carry a target attribute (the file builds for baseline ARMv8); sdot itself
 * is written in assembly because some compilers only declare the intrinsic when the whole
 * translation unit targets +dotprod. The lane must be a literal, hence a macro. */
#if defined(__aarch64__)
#if defined(__clang__)
#define DOTPROD __attribute__((target("dotprod")))
#else
#define DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))
#endif
#define SDOT(s, w, x, lane) \
    __asm__ volatile("sdot %0.4s, %1.16b, %2.4b[" #lane "]" : "+w"(s) : "w"(w), "w"(x))
#endif

INL float32x4_t load_f16x4(const uint16_t *p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }

/* The 8 weight vectors of rows 4g..4g+3 of a panel block; w[j] meets the token's activation
 * bytes [4j, 4j + 4) (Q4: low nibbles are elements 0..15, high nibbles 16..31). */
INL void load_group(const uint8_t *wq, int g, int8x16_t w[8], const int q4) {
    if (q4) {
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            uint8x16_t v = vld1q_u8(wq + 64 * k + 16 * g);
            w[k] = vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(15)));
            w[k + 4] = vreinterpretq_s8_u8(vshrq_n_u8(v, 4));
        }
    } else {
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) w[j] = vld1q_s8((const int8_t *)wq + 64 * j + 16 * g);
    }
}

/* dotprod: s[i] += block sums of the group's 4 rows with token i of the tile at ar. k outer,
 * so that the tokens' chains interleave (the asm is volatile to keep that order: the compiler
 * knows nothing of sdot's latency); a single token alternates two chains. */
#if defined(__aarch64__)
INL void sdot_tile(const int8x16_t w[8], const uint8_t *ar, int32x4_t s[], const int NT) {
    int32x4_t t[1] = {vdupq_n_s32(0)}, *u = NT == 1 ? t : s;
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        int8x16_t x[ACT_TT];
#pragma GCC unroll 8
        for (int i = 0; i < NT; i++) x[i] = vld1q_s8((const int8_t *)ar + QK * i + 16 * h);
#pragma GCC unroll 8
        for (int i = 0; i < NT; i++) SDOT(s[i], w[4 * h], x[i], 0);
#pragma GCC unroll 8
        for (int i = 0; i < NT; i++) SDOT(u[i], w[4 * h + 1], x[i], 1);
#pragma GCC unroll 8
        for (int i = 0; i < NT; i++) SDOT(s[i], w[4 * h + 2], x[i], 2);
#pragma GCC unroll 8
        for (int i = 0; i < NT; i++) SDOT(u[i], w[4 * h + 3], x[i], 3);
    }
    if (NT == 1) s[0] = vaddq_s32(s[0], t[0]);
}
#else
/* 32-bit ARM has no sdot: only the dp = 0 tiles are built, which never call these. */
INL void sdot_tile(const int8x16_t w[8], const uint8_t *ar, int32x4_t s[], const int NT) {
    (void)w, (void)ar, (void)s, (void)NT;
    __builtin_trap();
}
#endif

/* The 4 bytes at p in every 32-bit lane. */
INL int8x16_t bcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return vreinterpretq_s8_s32(vdupq_n_s32(v));
}

/* Without sdot, one token (generation): lo collects rows 4g, 4g+1 and hi rows 4g+2, 4g+3 (an
 * int16 lane per row and byte position) against the token's dwords broadcast, which the
 * compiler keeps in registers for all 4 row groups. Q8 widens every 2 products, Q4 after 8. */
INL int32x4_t dot_bcast(const int8x16_t w[8], const int8_t *x, int32x4_t s, const int q4) {
    int32x4_t al = vdupq_n_s32(0), ah = al;
    int16x8_t lo = vdupq_n_s16(0), hi = lo;
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++) {
        int8x16_t xb = bcast4(x + 4 * j);
        if (j == 0 || (!q4 && !(j & 1))) {
            lo = vmull_s8(vget_low_s8(w[j]), vget_low_s8(xb));
            hi = vmull_high_s8(w[j], xb);
        } else {
            lo = vmlal_s8(lo, vget_low_s8(w[j]), vget_low_s8(xb));
            hi = vmlal_high_s8(hi, w[j], xb);
        }
        if (q4 ? j == 7 : (j & 1)) {
            int first = j == (q4 ? 7 : 1);
            al = first ? vpaddlq_s16(lo) : vpadalq_s16(al, lo);
            ah = first ? vpaddlq_s16(hi) : vpadalq_s16(ah, hi);
        }
    }
    return vaddq_s32(vpaddq_s32(al, ah), s); /* lanes: rows 4g..4g+3 */
}

/* Several tokens: broadcasting each token's dwords for every row group would cost as much as
 * the widening, so the group is transposed once instead (two 4 x 4 transposes of dwords) into
 * rw[2r + h] = row 4g + r, elements 16h..16h+15, which meet the token's quants as loaded. */
INL void transpose_group(const int8x16_t w[8], int8x16_t rw[8]) {
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        int32x4_t a = vreinterpretq_s32_s8(w[4 * h]), b = vreinterpretq_s32_s8(w[4 * h + 1]);
        int32x4_t c = vreinterpretq_s32_s8(w[4 * h + 2]), d = vreinterpretq_s32_s8(w[4 * h + 3]);
        /* t0 = rows 0, 2 of vectors a, b; t1 rows 1, 3; t2, t3 the same of c, d */
        int64x2_t t0 = vreinterpretq_s64_s32(vtrn1q_s32(a, b));
        int64x2_t t1 = vreinterpretq_s64_s32(vtrn2q_s32(a, b));
        int64x2_t t2 = vreinterpretq_s64_s32(vtrn1q_s32(c, d));
        int64x2_t t3 = vreinterpretq_s64_s32(vtrn2q_s32(c, d));
        rw[h] = vreinterpretq_s8_s64(vtrn1q_s64(t0, t2));
        rw[2 + h] = vreinterpretq_s8_s64(vtrn1q_s64(t1, t3));
        rw[4 + h] = vreinterpretq_s8_s64(vtrn2q_s64(t0, t2));
        rw[6 + h] = vreinterpretq_s8_s64(vtrn2q_s64(t1, t3));
    }
}

/* Rows (transposed) . token: an int16 lane sums 2 Q8 products or 4 Q4 ones (0..15: 4 * 15 *
 * 127 < 2^15), then pairwise adds fold each row to one lane. */
INL int32x4_t dot_rows(const int8x16_t rw[8], const int8_t *x, int32x4_t s, const int q4) {
    int8x16_t x0 = vld1q_s8(x), x1 = vld1q_s8(x + 16);
    int32x4_t a[4];
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++) {
        int8x16_t r0 = rw[2 * r], r1 = rw[2 * r + 1];
        int16x8_t p = vmlal_high_s8(vmull_s8(vget_low_s8(r0), vget_low_s8(x0)), r0, x0);
        if (q4) {
            p = vmlal_high_s8(vmlal_s8(p, vget_low_s8(r1), vget_low_s8(x1)), r1, x1);
            a[r] = vpaddlq_s16(p);
        } else {
            int16x8_t p1 = vmlal_high_s8(vmull_s8(vget_low_s8(r1), vget_low_s8(x1)), r1, x1);
            a[r] = vpadalq_s16(vpaddlq_s16(p), p1);
        }
    }
    return vaddq_s32(vpaddq_s32(vpaddq_s32(a[0], a[1]), vpaddq_s32(a[2], a[3])), s);
}

/* The panel (wq, wd) against the first NT tokens of a tile of tt (records tt * 40 bytes). The
 * float sums (4 vectors per token) stay in registers for one token; for more they would crowd
 * out the weights, so they live in y itself (in a local tile if y has fewer than QR rows),
 * loaded and stored once per block and row group. Those stores also keep the compiler from
 * holding every token's activations in registers across the row groups. */
INL void panel_tile(const uint8_t *wq, const uint16_t *wd, const uint8_t *ar, int tt,
                    int nblocks, float *y, int ldy, int nr, int acc, const int q4, const int dp,
                    const int NT) {
    const int in_regs = NT == 1;
    const size_t rec = (size_t)tt * (QK + 8), wstep = q4 ? QR * QK / 2 : QR * QK;
    float tile[ACT_TT * QR], *fa = nr == QR ? y : tile;
    size_t lda = nr == QR ? (size_t)ldy : QR;
    float32x4_t f[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};
    if (!in_regs && (!acc || fa == tile))
#pragma GCC unroll 8
        for (int i = 0; i < NT; i++)
#pragma GCC unroll 4
            for (int g = 0; g < 4; g++) vst1q_f32(fa + i * lda + 4 * g, f[0]);
    for (int b = 0; b < nblocks; b++, wq += wstep, wd += QR, ar += rec) {
        const float *xd = (const float *)(const void *)(ar + (size_t)tt * QK);
        const int32_t *xc = (const int32_t *)(const void *)(ar + (size_t)tt * (QK + 4));
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++) {
            int8x16_t w[8], rw[8];
            load_group(wq, g, w, q4);
            if (!dp && NT > 1) transpose_group(w, rw);
            float32x4_t dw = load_f16x4(wd + 4 * g);
            /* Tokens innermost: their sums are independent chains. */
            int32x4_t s[ACT_TT];
#pragma GCC unroll 8
            for (int i = 0; i < NT; i++) s[i] = vdupq_n_s32(q4 ? xc[i] : 0);
            if (dp) sdot_tile(w, ar, s, NT);
#pragma GCC unroll 8
            for (int i = 0; i < NT; i++) {
                const int8_t *x = (const int8_t *)ar + QK * i;
                if (!dp) s[i] = NT == 1 ? dot_bcast(w, x, s[i], q4) : dot_rows(rw, x, s[i], q4);
                float32x4_t sf = vcvtq_f32_s32(s[i]), scale = vmulq_n_f32(dw, xd[i]);
                if (in_regs) {
                    f[g] = vfmaq_f32(f[g], sf, scale);
                } else {
                    float *p = fa + i * lda + 4 * g;
                    vst1q_f32(p, vfmaq_f32(vld1q_f32(p), sf, scale));
                }
            }
        }
    }
    if (in_regs)
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++)
            vst1q_f32(fa + 4 * g, acc && fa == y ? vaddq_f32(vld1q_f32(fa + 4 * g), f[g]) : f[g]);
    if (fa == tile)
        for (int i = 0; i < NT; i++) {
            float *yi = y + (size_t)i * ldy;
            for (int l = 0; l < nr; l++) yi[l] = (acc ? yi[l] : 0.0f) + tile[i * QR + l];
        }
}

/* TileFns: a constant token count n (compute only the tile's real tokens). */
#define QTILE(NAME, Q4, DP, ATTR)                                                              \
    static ATTR void NAME(const uint8_t *wq, const uint16_t *wd, const uint8_t *ar, int tt,   \
                          int n, int nblocks, float *y, int ldy, int nr, int acc) {            \
        switch (n) {                                                                           \
        case 1: panel_tile(wq, wd, ar, tt, nblocks, y, ldy, nr, acc, Q4, DP, 1); break;        \
        case 2: panel_tile(wq, wd, ar, tt, nblocks, y, ldy, nr, acc, Q4, DP, 2); break;        \
        case 3: panel_tile(wq, wd, ar, tt, nblocks, y, ldy, nr, acc, Q4, DP, 3); break;        \
        case 4: panel_tile(wq, wd, ar, tt, nblocks, y, ldy, nr, acc, Q4, DP, 4); break;        \
        case 5: panel_tile(wq, wd, ar, tt, nblocks, y, ldy, nr, acc, Q4, DP, 5); break;        \
        case 6: panel_tile(wq, wd, ar, tt, nblocks, y, ldy, nr, acc, Q4, DP, 6); break;        \
        case 7: panel_tile(wq, wd, ar, tt, nblocks, y, ldy, nr, acc, Q4, DP, 7); break;        \
        default: panel_tile(wq, wd, ar, tt, nblocks, y, ldy, nr, acc, Q4, DP, 8); break;       \
        }                                                                                      \
    }                                                                                          \
    static void NAME##_mat(const MatView *w, const void *a, int t0, int nt, float *y,        \
                           int ldy, int r0, int r1) {                                          \
        tiled_matmul(w, a, t0, nt, y, ldy, r0, r1, NAME);                                      \
    }
QTILE(q8_neon, 0, 0, )
QTILE(q4_neon, 1, 0, )
#if defined(__aarch64__)
QTILE(q8_dotprod, 0, 1, DOTPROD)
QTILE(q4_dotprod, 1, 1, DOTPROD)
#endif

/* ---- activation quantization (bit-identical to quantize_act_q8_ref) ---- */

static void quant_blocks_neon(const float *x, int8_t *q, float *d, int32_t *s, int nblocks) {
    for (int b = 0; b < nblocks; b++, x += QK, q += QK) {
        float32x4_t v[8];
#if defined(__aarch64__)
        float32x4_t m = vdupq_n_f32(0);
        #pragma GCC unroll 8
        for (int k = 0; k < 8; k++) {
            v[k] = vld1q_f32(x + 4 * k);
            m = vmaxq_f32(m, vabsq_f32(v[k]));
        }
        float amax = vmaxvq_f32(m);
#else
        /* ARMv7 NEON flushes denormals to zero, so the maximum is taken on the bits (|x| as
         * an unsigned integer orders like the float; a NaN is above +inf, as vmaxq_f32 makes
         * it win on AArch64). Below 2^-100 a flushed x would still count (x * 127 / amax >=
         * 0.5), so such blocks take the scalar path; above, a flushed x rounds to 0 anyway. */
        uint32x4_t m = vdupq_n_u32(0);
        #pragma GCC unroll 8
        for (int k = 0; k < 8; k++) {
            v[k] = vld1q_f32(x + 4 * k);
            m = vmaxq_u32(m, vandq_u32(vreinterpretq_u32_f32(v[k]), vdupq_n_u32(0x7fffffff)));
        }
        uint32x2_t m2 = vpmax_u32(vget_low_u32(m), vget_high_u32(m));
        uint32_t abits = vget_lane_u32(vpmax_u32(m2, m2), 0);
        float amax;
        memcpy(&amax, &abits, 4);
        if (amax > 0 && amax < 0x1p-100f) {
            quant_blocks_scalar(x, q, d + b, s + b, 1);
            continue;
        }
#endif
        if (!(amax > 0)) {
            d[b] = 0;
            vst1q_s8(q, vdupq_n_s8(0));
            vst1q_s8(q + 16, vdupq_n_s8(0));
            s[b] = 0;
            continue;
        }
        d[b] = amax / 127.0f;
        float32x4_t id = vdupq_n_f32(127.0f / amax);
        int32x4_t sum = vdupq_n_s32(0);
        int16x8_t h[4];
        #pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            /* fcvtns: round to nearest, ties to even, as the reference (ARMv7: the reference's
             * own 1.5 * 2^23 rounding, exact for these |v| <= 127, then an exact conversion). */
#if defined(__aarch64__)
            int32x4_t i0 = vcvtnq_s32_f32(vmulq_f32(v[2 * k], id));
            int32x4_t i1 = vcvtnq_s32_f32(vmulq_f32(v[2 * k + 1], id));
#else
            int32x4_t i0 = vcvtq_s32_f32(vrndnq_f32(vmulq_f32(v[2 * k], id)));
            int32x4_t i1 = vcvtq_s32_f32(vrndnq_f32(vmulq_f32(v[2 * k + 1], id)));
#endif
            sum = vaddq_s32(sum, vaddq_s32(i0, i1));
            h[k] = vcombine_s16(vqmovn_s32(i0), vqmovn_s32(i1));
        }
        vst1q_s8(q, vcombine_s8(vqmovn_s16(h[0]), vqmovn_s16(h[1])));
        vst1q_s8(q + 16, vcombine_s8(vqmovn_s16(h[2]), vqmovn_s16(h[3])));
        s[b] = vaddvq_s32(sum);
    }
}

/* ---- float weights: tiles of 4 rows x NR tokens, 4 columns per step ---- */

INL float32x4_t load_w4(const uint8_t *row, int i, const int f16) {
    return f16 ? load_f16x4((const uint16_t *)row + i) : vld1q_f32((const float *)row + i);
}
INL float load_w1(const uint8_t *row, int i, const int f16) {
    return f16 ? fp16_to_f32(((const uint16_t *)row)[i]) : ((const float *)row)[i];
}

INL void ftile(const uint8_t *w0, size_t rs, const float *x, size_t xs, int n, float *y, int ldy,
               int accumulate, const int f16, const int NR, const int NTT) {
    float32x4_t acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++)
#pragma GCC unroll 4
        for (int t = 0; t < NTT; t++) acc[r][t] = vdupq_n_f32(0);
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        float32x4_t wv[4];
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) wv[r] = load_w4(w0 + r * rs, i, f16);
#pragma GCC unroll 4
        for (int t = 0; t < NTT; t++) {
            float32x4_t xv = vld1q_f32(x + t * xs + i);
#pragma GCC unroll 4
            for (int r = 0; r < NR; r++) acc[r][t] = vfmaq_f32(acc[r][t], wv[r], xv);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++)
#pragma GCC unroll 4
        for (int t = 0; t < NTT; t++) {
            float s = vaddvq_f32(acc[r][t]);
            for (int k = i; k < n; k++) s += load_w1(w0 + r * rs, k, f16) * x[t * xs + k];
            y[(size_t)t * ldy + r] = s + (accumulate ? y[(size_t)t * ldy + r] : 0.0f);
        }
}

/* Any nr <= 4 rows x nt <= 4 tokens. */
#define FTILE_NEON(NAME, F16)                                                                  \
    static void NAME(const uint8_t *w0, size_t rs, int nr, const float *x, size_t xs, int nt, \
                     int n, float *y, int ldy, int acc) {                                      \
        for (; nr >= 4; nr -= 4, w0 += 4 * rs, y += 4) {                                       \
            int t = 0;                                                                         \
            if (nt == 4) ftile(w0, rs, x, xs, n, y, ldy, acc, F16, 4, 4), t = 4;               \
            for (; t < nt; t++) ftile(w0, rs, x + t * xs, xs, n, y + (size_t)t * ldy, ldy, acc, F16, 4, 1); \
        }                                                                                      \
        for (; nr >= 1; nr -= 1, w0 += rs, y += 1) {                                           \
            int t = 0;                                                                         \
            if (nt == 4) ftile(w0, rs, x, xs, n, y, ldy, acc, F16, 1, 4), t = 4;               \
            for (; t < nt; t++) ftile(w0, rs, x + t * xs, xs, n, y + (size_t)t * ldy, ldy, acc, F16, 1, 1); \
        }                                                                                      \
    }
FTILE_NEON(ftile_f16_neon, 1)
FTILE_NEON(ftile_f32_neon, 0)
static const FTileKernel ftk_f16_neon = {4, 4, ftile_f16_neon};
static const FTileKernel ftk_f32_neon = {4, 4, ftile_f32_neon};

static void fmat_f32_neon(const MatView *w, const void *x, int t0, int nt, float *y, int ldy,
                          int r0, int r1) {
    tiled_fmat(w, x, t0, nt, y, ldy, r0, r1, &ftk_f32_neon);
}

static void fmat_f16_neon(const MatView *w, const void *x, int t0, int nt, float *y, int ldy,
                          int r0, int r1) {
    tiled_fmat(w, x, t0, nt, y, ldy, r0, r1, &ftk_f16_neon);
}

/* ---- elementwise ---- */

/* e^x as in x86_avx2.c: x = k ln2 + r, degree-7 polynomial, 2^k in the exponent; 0 below -87.3. */
INL float32x4_t exp4(float32x4_t x) {
    x = vminq_f32(x, vdupq_n_f32(88.7f));
    float32x4_t k = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(1.44269504f)));
    float32x4_t r = vfmsq_f32(x, k, vdupq_n_f32(0.693145752f));
    r = vfmsq_f32(r, k, vdupq_n_f32(1.42860677e-6f));
    float32x4_t p = vdupq_n_f32(1.0f / 5040);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 720), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 120), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 24), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 6), p, r);
    p = vfmaq_f32(vdupq_n_f32(0.5f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
    int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(k), vdupq_n_s32(127)), 23);
    float32x4_t res = vmulq_f32(p, vreinterpretq_f32_s32(e));
    uint32x4_t ok = vcgeq_f32(x, vdupq_n_f32(-87.3f));
    return vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(res), ok));
}

static void rmsnorm_neon(float *out, const float *x, const float *weight, int n, float eps) {
    float32x4_t a0 = vdupq_n_f32(0), a1 = vdupq_n_f32(0);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        float32x4_t v0 = vld1q_f32(x + i), v1 = vld1q_f32(x + i + 4);
        a0 = vfmaq_f32(a0, v0, v0);
        a1 = vfmaq_f32(a1, v1, v1);
    }
    double ss = vaddvq_f32(vaddq_f32(a0, a1));
    for (; i < n; i++) ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / n + eps));
    for (i = 0; i + 4 <= n; i += 4)
        vst1q_f32(out + i, vmulq_f32(vld1q_f32(weight + i), vmulq_n_f32(vld1q_f32(x + i), scale)));
    for (; i < n; i++) out[i] = weight[i] * (x[i] * scale);
}

static void softmax_neon(float *x, int n) {
    float max = x[0];
    int i = 0;
    if (n >= 4) {
        float32x4_t mv = vld1q_f32(x);
        for (i = 4; i + 4 <= n; i += 4) mv = vmaxq_f32(mv, vld1q_f32(x + i));
        max = vmaxvq_f32(mv);
    }
    for (; i < n; i++) max = x[i] > max ? x[i] : max;
    float32x4_t m = vdupq_n_f32(max), sum = vdupq_n_f32(0);
    for (i = 0; i + 4 <= n; i += 4) {
        float32x4_t e = exp4(vsubq_f32(vld1q_f32(x + i), m));
        vst1q_f32(x + i, e);
        sum = vaddq_f32(sum, e);
    }
    double s = vaddvq_f32(sum);
    for (; i < n; i++) {
        x[i] = expf(x[i] - max);
        s += x[i];
    }
    float inv = (float)(1.0 / s);
    for (i = 0; i + 4 <= n; i += 4) vst1q_f32(x + i, vmulq_n_f32(vld1q_f32(x + i), inv));
    for (; i < n; i++) x[i] *= inv;
}

static void silu_mul_neon(float *gate, const float *up, int n) {
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        float32x4_t g = vld1q_f32(gate + i);
        float32x4_t sg = vdivq_f32(g, vaddq_f32(vdupq_n_f32(1.0f), exp4(vnegq_f32(g))));
        vst1q_f32(gate + i, vmulq_f32(sg, vld1q_f32(up + i)));
    }
    for (; i < n; i++) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

/* ---- attention (AttnKernels; float16 conversion is part of the base architecture) ---- */

static float dot_f16_neon(const uint16_t *k, const float *q, int n) {
    float32x4_t acc0 = vdupq_n_f32(0), acc1 = vdupq_n_f32(0);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(k + i));
        acc0 = vfmaq_f32(acc0, vcvt_f32_f16(vget_low_f16(h)), vld1q_f32(q + i));
        acc1 = vfmaq_f32(acc1, vcvt_high_f32_f16(h), vld1q_f32(q + i + 4));
    }
    float s = vaddvq_f32(vaddq_f32(acc0, acc1));
    for (; i < n; i++) s += fp16_to_f32(k[i]) * q[i];
    return s;
}

static void axpy_f16_neon(float *y, float a, const uint16_t *v, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(v + i));
        vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vcvt_f32_f16(vget_low_f16(h)), a));
        vst1q_f32(y + i + 4, vfmaq_n_f32(vld1q_f32(y + i + 4), vcvt_high_f32_f16(h), a));
    }
    for (; i < n; i++) y[i] += a * fp16_to_f32(v[i]);
}

static float dot_f32_neon(const float *k, const float *q, int n) {
    float32x4_t acc0 = vdupq_n_f32(0), acc1 = vdupq_n_f32(0);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        acc0 = vfmaq_f32(acc0, vld1q_f32(k + i), vld1q_f32(q + i));
        acc1 = vfmaq_f32(acc1, vld1q_f32(k + i + 4), vld1q_f32(q + i + 4));
    }
    float s = vaddvq_f32(vaddq_f32(acc0, acc1));
    for (; i < n; i++) s += k[i] * q[i];
    return s;
}

static void axpy_f32_neon(float *y, float a, const float *v, int n) {
    int i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vld1q_f32(v + i), a));
    for (; i < n; i++) y[i] += a * v[i];
}

static void to_f16_neon(const float *x, uint16_t *y, int n) {
    int i = 0;
    for (; i + 4 <= n; i += 4) vst1_u16(y + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(x + i))));
    for (; i < n; i++) y[i] = f32_to_fp16(x[i]);
}

/* ---- super-block types (kernels/kquant.h): unpacked panels, 4 rows per int32x4 ---- */

/* The 16 bytes at w + 64 k + 16 g are bytes [4k, 4k + 4) of rows 4g..4g+3 (the Q8 panel order);
 * u <= 63 fits a signed byte, so sdot and smull take it as it is. */
#if defined(__aarch64__)
#define KSTEP_DP(s, w, x, k) SDOT(s, w[k], x, k)
DOTPROD static void kgroup_dp(const int8x16_t *w, const int8_t *xq, int32x4_t *s0, int32x4_t *s1) {
    int8x16_t x0 = vld1q_s8(xq), x1 = vld1q_s8(xq + 16);
    int32x4_t a = *s0, b = *s1;
    const int8x16_t *v = w + 4;
    KSTEP_DP(a, w, x0, 0);
    KSTEP_DP(a, w, x0, 1);
    KSTEP_DP(a, w, x0, 2);
    KSTEP_DP(a, w, x0, 3);
    KSTEP_DP(b, v, x1, 0);
    KSTEP_DP(b, v, x1, 1);
    KSTEP_DP(b, v, x1, 2);
    KSTEP_DP(b, v, x1, 3);
    *s0 = a, *s1 = b;
}
#else
INL void kgroup_dp(const int8x16_t *w, const int8_t *xq, int32x4_t *s0, int32x4_t *s1) {
    (void)w, (void)xq, (void)s0, (void)s1;
    __builtin_trap();
}
#endif

/* Baseline: per step, 2 rows x 4 bytes against the dword broadcast (smull, products <= 8001),
 * pairwise-added into int32; the pairs are folded to one lane per row at the end. */
INL void kgroup_neon(const int8x16_t *w, const int8_t *xq, int32x4_t *s0, int32x4_t *s1) {
    int32x4_t lo[2] = {vdupq_n_s32(0), vdupq_n_s32(0)}, hi[2] = {lo[0], lo[0]};
    for (int k = 0; k < 8; k++) {
        int32_t d;
        memcpy(&d, xq + 4 * k, 4);
        int8x8_t x = vreinterpret_s8_s32(vdup_n_s32(d));
        lo[k / 4] = vpadalq_s16(lo[k / 4], vmull_s8(vget_low_s8(w[k]), x));
        hi[k / 4] = vpadalq_s16(hi[k / 4], vmull_s8(vget_high_s8(w[k]), x));
    }
    *s0 = vaddq_s32(*s0, vpaddq_s32(lo[0], hi[0]));
    *s1 = vaddq_s32(*s1, vpaddq_s32(lo[1], hi[1]));
}

INL void ktile_neon_any(const uint8_t *pk, const uint8_t *ar, const uint8_t *side, int tt, int n,
                        int nblocks, float *y, int ldy, int nr, int acc, int kmode, const int dp) {
    const size_t rec = (size_t)tt * (QK + 8);
    for (int i = 0; i < n; i++) {
        float32x4_t f[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};
        const uint8_t *p = pk, *a = ar, *sd = side;
        for (int b = 0; b < nblocks; b++, p += KPANEL_BYTES, a += rec, sd += (size_t)tt * 8) {
            const int8_t *xq = (const int8_t *)(a + QK * i);
            float dx = ((const float *)(const void *)(a + (size_t)tt * QK))[i], xs;
            int32_t c[2];
            memcpy(c, sd + 8 * i, 8);
            memcpy(&xs, sd + 8 * i, 4);
            for (int g = 0; g < 4; g++) {
                int8x16_t w[8];
                for (int k = 0; k < 8; k++) w[k] = vld1q_s8((const int8_t *)(p + 64 * k + 16 * g));
                int32x4_t s0 = vdupq_n_s32(kmode ? c[0] : 0), s1 = vdupq_n_s32(kmode ? c[1] : 0);
                if (kmode == KMODE_OFF128) { /* u up to 241 is no int8: the level u ^ 0x80, sums from 0 (kernels/kquant.h) */
                    for (int k = 0; k < 8; k++) w[k] = veorq_s8(w[k], vdupq_n_s8(-128));
                    s0 = s1 = vdupq_n_s32(0);
                }
                if (dp) kgroup_dp(w, xq, &s0, &s1);
                else kgroup_neon(w, xq, &s0, &s1);
                float32x4_t f1 = vld1q_f32((const float *)(const void *)(p + QR * QK) + 4 * g);
                float32x4_t f2 = vld1q_f32((const float *)(const void *)(p + QR * QK + 64) + 4 * g);
                float32x4_t t;
                if (kmode) {
                    t = vfmaq_f32(vmulq_f32(vcvtq_f32_s32(s0), f1), vcvtq_f32_s32(s1), f2);
                    f[g] = vfmaq_n_f32(f[g], t, dx);
                } else {
                    t = vmulq_f32(vcvtq_f32_s32(vaddq_s32(s0, s1)), f1);
                    f[g] = vfmaq_n_f32(f[g], t, dx);
                    f[g] = vfmsq_n_f32(f[g], f2, xs);
                }
            }
        }
        float out[16];
        for (int g = 0; g < 4; g++) vst1q_f32(out + 4 * g, f[g]);
        float *yi = y + (size_t)i * ldy;
        for (int l = 0; l < nr; l++) yi[l] = acc ? yi[l] + out[l] : out[l];
    }
}

static void ktile_neon(const uint8_t *pk, const uint8_t *ar, const uint8_t *side, int tt, int n,
                       int nblocks, float *y, int ldy, int nr, int acc, int kmode) {
    ktile_neon_any(pk, ar, side, tt, n, nblocks, y, ldy, nr, acc, kmode, 0);
}
/* IQ4_XS panels into panel records: each nibble's level + 128 by one table lookup per 16 bytes
 * (kquant.c's portable unpacking looks up byte by byte), the scales as it computes them. */
static void kpunpack_iq4_neon(const MatView *w, int p, int sb0, int n, uint8_t *out) {
    static const uint8_t lv[16] = {1, 24, 45, 63, 79, 93, 106, 118, 129, 141, 153, 166, 181, 197, 217, 241};
    const uint8x16_t tab = vld1q_u8(lv), m4 = vdupq_n_u8(15);
    for (int sb = 0; sb < n; sb++) {
        const uint8_t *src = matview_panel_q(w, p, sb0 + sb);
        float sc[QR][8];
        kq_iq4_xs_scales(src, sc);
        for (int j = 0; j < 8; j++) {
            uint8_t *rec = out + (size_t)(sb * 8 + j) * KPANEL_BYTES;
            const uint8_t *nib = src + (size_t)(2 + 4 * j) * 64;
            for (int i = 0; i < 256; i += 16) {
                uint8x16_t v = vld1q_u8(nib + i);
                vst1q_u8(rec + i, vqtbl1q_u8(tab, vandq_u8(v, m4)));
                vst1q_u8(rec + 256 + i, vqtbl1q_u8(tab, vshrq_n_u8(v, 4)));
            }
            float *f1 = (float *)(void *)(rec + QR * QK), *f2 = f1 + QR;
            for (int l = 0; l < QR; l++) f1[l] = f2[l] = sc[l][j];
        }
    }
}
/* Q4_KP / Q5_KP panels into panel records (kquant.c's kq_unpack_kp, 16 bytes at a time): sub-block
 * j's bytes the low or high nibbles of its nibble lines, Q5_KP's bit j of the qh lines moved to
 * bit 4 (one variable shift per 16 bytes: 4 - j, right for j > 4), the scales as kq_unpack_kp's. */
static void kpunpack_k4_neon(const MatView *w, int p, int sb0, int n, uint8_t *out) {
    const int q5 = w->type == TENSOR_Q5_KP;
    const uint8x16_t m4 = vdupq_n_u8(15), m10 = vdupq_n_u8(0x10);
    for (int sb = 0; sb < n; sb++) {
        const uint8_t *src = matview_panel_q(w, p, sb0 + sb);
        float f[8][2][QR];
        kq_kp_record_scales(w->type, src, f);
        for (int j = 0; j < 8; j++) {
            uint8_t *rec = out + (size_t)(sb * 8 + j) * KPANEL_BYTES;
            const uint8_t *nib = src + (size_t)((q5 ? 12 : 4) + 8 * (j / 2)) * 64, *qh = src + 4 * 64;
            const int8x16_t sh = vdupq_n_s8((int8_t)(4 - j));
            for (int i = 0; i < QR * QK; i += 16) {
                uint8x16_t v = vld1q_u8(nib + i);
                v = (j & 1) ? vshrq_n_u8(v, 4) : vandq_u8(v, m4);
                if (q5) v = vorrq_u8(v, vandq_u8(vshlq_u8(vld1q_u8(qh + i), sh), m10));
                vst1q_u8(rec + i, v);
            }
            memcpy(rec + QR * QK, f[j], sizeof f[j]);
        }
    }
}
/* Q6_KP (kquant.c's unpack_q6_kp, 16 bytes at a time): the low or high nibbles of the ql lines,
 * bits 2s, 2s + 1 of the qh lines above them (a variable shift by 4 - 2s, then the mask 0x30). */
static void kpunpack_q6_neon(const MatView *w, int p, int sb0, int n, uint8_t *out) {
    const uint8x16_t m4 = vdupq_n_u8(15), m30 = vdupq_n_u8(0x30);
    for (int sb = 0; sb < n; sb++) {
        const uint8_t *src = matview_panel_q(w, p, sb0 + sb);
        float f[8][2][QR];
        kq_kp_record_scales(TENSOR_Q6_KP, src, f);
        for (int j = 0; j < 8; j++) {
            int h = j >> 2, s = j & 3;
            uint8_t *rec = out + (size_t)(sb * 8 + j) * KPANEL_BYTES;
            const uint8_t *ql = src + (size_t)(16 * h + 8 * (s & 1)) * 64, *qh = src + (size_t)(32 + 8 * h) * 64;
            const int8x16_t sh = vdupq_n_s8((int8_t)(4 - 2 * s));
            for (int i = 0; i < QR * QK; i += 16) {
                uint8x16_t v = vld1q_u8(ql + i);
                v = (s >> 1) ? vshrq_n_u8(v, 4) : vandq_u8(v, m4);
                vst1q_u8(rec + i, vorrq_u8(v, vandq_u8(vshlq_u8(vld1q_u8(qh + i), sh), m30)));
            }
            memcpy(rec + QR * QK, f[j], sizeof f[j]);
        }
    }
}
static KUnpackFn kunpack_neon(const MatView *w) {
    switch (w->type) {
    case TENSOR_IQ4_XS: return kpunpack_iq4_neon;
    case TENSOR_Q4_KP:
    case TENSOR_Q5_KP: return kpunpack_k4_neon;
    case TENSOR_Q6_KP: return kpunpack_q6_neon;
    default: return NULL;
    }
}

static void kq_neon(const MatView *w, const void *a, int t0, int nt, float *y, int ldy, int r0, int r1) {
    kmat_tiled(w, a, t0, nt, y, ldy, r0, r1, ktile_neon, kunpack_neon(w));
}
#if defined(__aarch64__)
DOTPROD static void ktile_dotprod(const uint8_t *pk, const uint8_t *ar, const uint8_t *side, int tt, int n,
                                  int nblocks, float *y, int ldy, int nr, int acc, int kmode) {
    ktile_neon_any(pk, ar, side, tt, n, nblocks, y, ldy, nr, acc, kmode, 1);
}
static void kq_dotprod(const MatView *w, const void *a, int t0, int nt, float *y, int ldy, int r0, int r1) {
    kmat_tiled(w, a, t0, nt, y, ldy, r0, r1, ktile_dotprod, kunpack_neon(w));
}
#endif

#if defined(__aarch64__)
static int always(void) { return 1; } /* ASIMD is part of ARMv8-A */
#define NEON_AVAILABLE always
#else
#define NEON_AVAILABLE cpu_has_neon
#endif

/* ---- the q8_0 KV cache (kernels.h): quants widened to f32 on the fly ---- */

/* q[0..32) . the 32 int8 at k, as 4 lanes of partial sums */
INL float32x4_t dot32_q8(const int8_t *k, const float *q) {
    int8x16_t x0 = vld1q_s8(k), x1 = vld1q_s8(k + 16);
    int16x8_t h0 = vmovl_s8(vget_low_s8(x0)), h1 = vmovl_high_s8(x0), h2 = vmovl_s8(vget_low_s8(x1)),
              h3 = vmovl_high_s8(x1);
    float32x4_t t0 = vmulq_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(h0))), vld1q_f32(q));
    float32x4_t t1 = vmulq_f32(vcvtq_f32_s32(vmovl_high_s16(h0)), vld1q_f32(q + 4));
    t0 = vfmaq_f32(t0, vcvtq_f32_s32(vmovl_s16(vget_low_s16(h1))), vld1q_f32(q + 8));
    t1 = vfmaq_f32(t1, vcvtq_f32_s32(vmovl_high_s16(h1)), vld1q_f32(q + 12));
    t0 = vfmaq_f32(t0, vcvtq_f32_s32(vmovl_s16(vget_low_s16(h2))), vld1q_f32(q + 16));
    t1 = vfmaq_f32(t1, vcvtq_f32_s32(vmovl_high_s16(h2)), vld1q_f32(q + 20));
    t0 = vfmaq_f32(t0, vcvtq_f32_s32(vmovl_s16(vget_low_s16(h3))), vld1q_f32(q + 24));
    t1 = vfmaq_f32(t1, vcvtq_f32_s32(vmovl_high_s16(h3)), vld1q_f32(q + 28));
    return vaddq_f32(t0, t1);
}

static void scores_q8_neon(const int8_t *k, const uint16_t *kd, int n, int hd, const float *q, float scale,
                           float *out) {
    int nb = hd / QK_KV;
    for (int j = 0; j < n; j++) {
        float32x4_t acc = vdupq_n_f32(0);
        for (int b = 0; b < nb; b++)
            acc = vfmaq_n_f32(acc, dot32_q8(k + (size_t)j * hd + b * QK_KV, q + b * QK_KV),
                              fp16_to_f32(kd[(size_t)j * nb + b]));
        out[j] = scale * vaddvq_f32(acc);
    }
}

static void wsum_q8_neon(float *y, const float *a, const int8_t *v, const uint16_t *vd, int n, int hd) {
    int nb = hd / QK_KV;
    for (int j = 0; j < n; j++)
        for (int b = 0; b < nb; b++) {
            const int8_t *vb = v + (size_t)j * hd + b * QK_KV;
            float c = a[j] * fp16_to_f32(vd[(size_t)j * nb + b]);
            float *yb = y + b * QK_KV;
            for (int h = 0; h < 2; h++) {
                int8x16_t x = vld1q_s8(vb + 16 * h);
                int16x8_t lo = vmovl_s8(vget_low_s8(x)), hi = vmovl_high_s8(x);
                float *yy = yb + 16 * h;
                vst1q_f32(yy, vfmaq_n_f32(vld1q_f32(yy), vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))), c));
                vst1q_f32(yy + 4, vfmaq_n_f32(vld1q_f32(yy + 4), vcvtq_f32_s32(vmovl_high_s16(lo)), c));
                vst1q_f32(yy + 8, vfmaq_n_f32(vld1q_f32(yy + 8), vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))), c));
                vst1q_f32(yy + 12, vfmaq_n_f32(vld1q_f32(yy + 12), vcvtq_f32_s32(vmovl_high_s16(hi)), c));
            }
        }
}

const IsaKernels isa_neon = {
    .name = "neon",
    .available = NEON_AVAILABLE,
    .quant = quant_blocks_neon,
    .mat = {[TENSOR_F32] = fmat_f32_neon, [TENSOR_F16] = fmat_f16_neon, [TENSOR_Q8] = q8_neon_mat,
            [TENSOR_Q4] = q4_neon_mat, [TENSOR_Q4_K] = kq_neon, [TENSOR_Q5_K] = kq_neon,
            [TENSOR_Q6_K] = kq_neon, [TENSOR_Q4_KP] = kq_neon, [TENSOR_Q5_KP] = kq_neon,
            [TENSOR_Q6_KP] = kq_neon, [TENSOR_IQ4_XS] = kq_neon},
    .k_off = {[TENSOR_Q8] = 0, [TENSOR_Q4] = 8},
    .k_exact = ACT_TT, /* kmat_tiled for every batch: one tile of up to 8 tokens, its chunks fixed */
    .rmsnorm = rmsnorm_neon,
    .softmax = softmax_neon,
    .silu_mul = silu_mul_neon,
    .attn = {dot_f16_neon, axpy_f16_neon, dot_f32_neon, axpy_f32_neon, to_f16_neon, NULL, NULL,
             NULL, scores_q8_neon, wsum_q8_neon},
};

#if defined(__aarch64__)
const IsaKernels isa_dotprod = {
    .name = "dotprod",
    .available = cpu_has_dotprod,
    .quant = quant_blocks_neon,
    .mat = {[TENSOR_F32] = fmat_f32_neon, [TENSOR_F16] = fmat_f16_neon,
            [TENSOR_Q8] = q8_dotprod_mat, [TENSOR_Q4] = q4_dotprod_mat,
            [TENSOR_Q4_K] = kq_dotprod, [TENSOR_Q5_K] = kq_dotprod, [TENSOR_Q6_K] = kq_dotprod,
            [TENSOR_Q4_KP] = kq_dotprod, [TENSOR_Q5_KP] = kq_dotprod, [TENSOR_Q6_KP] = kq_dotprod,
            [TENSOR_IQ4_XS] = kq_dotprod},
    .k_off = {[TENSOR_Q8] = 0, [TENSOR_Q4] = 8},
    .k_exact = ACT_TT,
    .rmsnorm = rmsnorm_neon,
    .softmax = softmax_neon,
    .silu_mul = silu_mul_neon,
    .attn = {dot_f16_neon, axpy_f16_neon, dot_f32_neon, axpy_f32_neon, to_f16_neon, NULL, NULL,
             NULL, scores_q8_neon, wsum_q8_neon},
};
#endif

#endif
