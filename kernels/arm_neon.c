/* AArch64 NEON kernels: "neon" (baseline ASIMD: int8 products via smull/smlal + sadalp) and
 * "dotprod" (ARMv8.2 sdot), picked at runtime from HWCAP. Activations use the natural packed
 * layout (kernels/isa.h).
 *
 * int8 matrices: a tile is one weight row x NT tokens. Per 4 blocks the row's quants are loaded
 * once (Q4 nibbles widened to q in -8..7) and reused for every token of the tile; each block
 * gives an int32x4 partial that two pairwise adds fold into one lane per block, scaled by
 * d_w * d_x lane by lane. Rows go in blocks of RB that all token tiles sweep, so the block's
 * weights come from cache after the first tile. */
#if defined(__aarch64__)

#include <arm_neon.h>
#include <math.h>

#include "kernels/isa.h"
#include "kernels/kernels.h"

#define NT 4  /* tokens per tile */
#define RB 16 /* rows per block */
#define INL static inline __attribute__((always_inline))

/* The dotprod entry points carry a target attribute (the file builds for baseline ARMv8);
 * sdot itself is written in assembly because some compilers only declare the intrinsic when
 * the whole translation unit targets +dotprod. */
#if defined(__clang__)
#define DOTPROD __attribute__((target("dotprod")))
#else
#define DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))
#endif

INL int32x4_t dot16_sdot(int32x4_t acc, int8x16_t a, int8x16_t b) {
    __asm__("sdot %0.4s, %1.16b, %2.16b" : "+w"(acc) : "w"(a), "w"(b));
    return acc;
}

/* Baseline: 16 products; each int16 lane sums two (|q| <= 128, |x| <= 127: below 2^15). */
INL int32x4_t dot16_mull(int32x4_t acc, int8x16_t a, int8x16_t b) {
    int16x8_t p = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    p = vmlal_high_s8(p, a, b);
    return vpadalq_s16(acc, p);
}

INL int32x4_t dot16(int32x4_t acc, int8x16_t a, int8x16_t b, const int dp) {
    return dp ? dot16_sdot(acc, a, b) : dot16_mull(acc, a, b);
}

/* The two halves of a block's weights as int8 (Q4: q = nibble - 8). */
INL void load_block(const uint8_t *wq, int b, int8x16_t *lo, int8x16_t *hi, const int q4) {
    if (q4) {
        uint8x16_t v = vld1q_u8(wq + (size_t)b * (QK / 2));
        const int8x16_t eight = vdupq_n_s8(8);
        *lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(15))), eight);
        *hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), eight);
    } else {
        const int8_t *p = (const int8_t *)wq + (size_t)b * QK;
        *lo = vld1q_s8(p);
        *hi = vld1q_s8(p + 16);
    }
}

INL float32x4_t load_f16x4(const uint16_t *p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }

/* out[i] = row (wq, wd) . token t + i, i < n (a constant). */
INL void qtile(const uint8_t *wq, const uint16_t *wd, const ActBuf *a, int t, float *out,
               const int n, const int q4, const int dp) {
    float32x4_t acc[NT];
    const int8_t *xq[NT];
    const float *xd[NT];
    #pragma GCC unroll 4
    for (int i = 0; i < n; i++) {
        acc[i] = vdupq_n_f32(0);
        xq[i] = act_q(a, t + i);
        xd[i] = act_d(a, t + i);
    }
    int nb = a->nb, b = 0;
    const int32x4_t zero = vdupq_n_s32(0);
    for (; b + 4 <= nb; b += 4) {
        int8x16_t lo[4], hi[4];
        #pragma GCC unroll 4
        for (int k = 0; k < 4; k++) load_block(wq, b + k, &lo[k], &hi[k], q4);
        float32x4_t dw = load_f16x4(wd + b);
        #pragma GCC unroll 4
        for (int i = 0; i < n; i++) {
            int32x4_t s[4];
            #pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                const int8_t *x = xq[i] + (size_t)(b + k) * QK;
                s[k] = dot16(dot16(zero, lo[k], vld1q_s8(x), dp), hi[k], vld1q_s8(x + 16), dp);
            }
            int32x4_t sb = vpaddq_s32(vpaddq_s32(s[0], s[1]), vpaddq_s32(s[2], s[3]));
            acc[i] = vfmaq_f32(acc[i], vcvtq_f32_s32(sb), vmulq_f32(dw, vld1q_f32(xd[i] + b)));
        }
    }
    #pragma GCC unroll 4
    for (int i = 0; i < n; i++) out[i] = vaddvq_f32(acc[i]);
    for (; b < nb; b++) {
        int8x16_t lo, hi;
        load_block(wq, b, &lo, &hi, q4);
        float dw = half_to_float(wd[b]);
        #pragma GCC unroll 4
        for (int i = 0; i < n; i++) {
            const int8_t *x = xq[i] + (size_t)b * QK;
            int32x4_t s = dot16(dot16(zero, lo, vld1q_s8(x), dp), hi, vld1q_s8(x + 16), dp);
            out[i] += dw * xd[i][b] * (float)vaddvq_s32(s);
        }
    }
}

INL void qmat(const MatView *w, const ActBuf *a, int t0, int nt, float *y, int ldy, int r0,
              int r1, const int q4, const int dp) {
    size_t rbytes = (size_t)type_row_bytes(w->type, (uint64_t)w->cols);
    int nb = w->cols / QK;
    for (int rb = r0; rb < r1; rb += RB) {
        int re = rb + RB < r1 ? rb + RB : r1;
        for (int t = t0; t < t0 + nt;) {
            int n = t0 + nt - t >= NT ? NT : 1;
            for (int r = rb; r < re; r++) {
                float out[NT];
                const uint8_t *wq = w->q + (size_t)r * rbytes;
                const uint16_t *wd = w->d + (size_t)r * nb;
                if (n == NT) qtile(wq, wd, a, t, out, NT, q4, dp);
                else qtile(wq, wd, a, t, out, 1, q4, dp);
                #pragma GCC unroll 4
                for (int i = 0; i < n; i++) y[(size_t)(t + i) * ldy + r] = out[i];
            }
            t += n;
        }
    }
}

static void q8_neon(const MatView *w, const ActBuf *a, int t0, int nt, float *y, int ldy, int r0, int r1) {
    qmat(w, a, t0, nt, y, ldy, r0, r1, 0, 0);
}
static void q4_neon(const MatView *w, const ActBuf *a, int t0, int nt, float *y, int ldy, int r0, int r1) {
    qmat(w, a, t0, nt, y, ldy, r0, r1, 1, 0);
}
static DOTPROD void q8_dotprod(const MatView *w, const ActBuf *a, int t0, int nt, float *y, int ldy, int r0, int r1) {
    qmat(w, a, t0, nt, y, ldy, r0, r1, 0, 1);
}
static DOTPROD void q4_dotprod(const MatView *w, const ActBuf *a, int t0, int nt, float *y, int ldy, int r0, int r1) {
    qmat(w, a, t0, nt, y, ldy, r0, r1, 1, 1);
}

/* ---- activation quantization (bit-identical to quantize_act_q8_ref) ---- */

static void quant_blocks_neon(const float *x, int8_t *q, float *d, int32_t *s, int nblocks) {
    for (int b = 0; b < nblocks; b++, x += QK, q += QK) {
        float32x4_t v[8];
        float32x4_t m = vdupq_n_f32(0);
        #pragma GCC unroll 8
        for (int k = 0; k < 8; k++) {
            v[k] = vld1q_f32(x + 4 * k);
            m = vmaxq_f32(m, vabsq_f32(v[k]));
        }
        float amax = vmaxvq_f32(m);
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
            /* fcvtns: round to nearest, ties to even, as the reference. */
            int32x4_t i0 = vcvtnq_s32_f32(vmulq_f32(v[2 * k], id));
            int32x4_t i1 = vcvtnq_s32_f32(vmulq_f32(v[2 * k + 1], id));
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
    return f16 ? half_to_float(((const uint16_t *)row)[i]) : ((const float *)row)[i];
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

static void fmat_neon(const MatView *w, const float *x, int t0, int nt, float *y, int ldy, int r0,
                      int r1) {
    tiled_fmat(w, x, t0, nt, y, ldy, r0, r1, w->type == TENSOR_F16 ? &ftk_f16_neon : &ftk_f32_neon);
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

static int always(void) { return 1; }

const IsaKernels isa_neon = {
    .name = "neon",
    .available = always,
    .quant = quant_blocks_neon,
    .q8 = q8_neon,
    .q4 = q4_neon,
    .f32 = fmat_neon,
    .f16 = fmat_neon,
    .rmsnorm = rmsnorm_neon,
    .softmax = softmax_neon,
    .silu_mul = silu_mul_neon,
};

const IsaKernels isa_dotprod = {
    .name = "dotprod",
    .available = cpu_has_dotprod,
    .quant = quant_blocks_neon,
    .q8 = q8_dotprod,
    .q4 = q4_dotprod,
    .f32 = fmat_neon,
    .f16 = fmat_neon,
    .rmsnorm = rmsnorm_neon,
    .softmax = softmax_neon,
    .silu_mul = silu_mul_neon,
};

#endif
