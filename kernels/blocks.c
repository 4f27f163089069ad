/* Tensor type traits and the reference (de)quantizers. */
#include "kernels/blocks.h"
#include "kernels/kquant.h" /* the K-quant rows' functions */
#include "kernels/kquant_lanes.h" /* the SIMD level of the scale searches */

#include <math.h>
#include <string.h>

const TypeTraits *type_traits(uint32_t type) {
    return type < TENSOR_TYPE_COUNT ? &type_table[type] : NULL;
}

int type_from_name(const char *name) {
    for (int i = 0; i < TENSOR_TYPE_COUNT; i++)
        if (strcmp(name, type_table[i].name) == 0) return i;
    return -1;
}

uint64_t type_row_bytes(uint32_t type, uint64_t cols) {
    const TypeTraits *t = type_traits(type);
    if (!t || cols == 0 || cols % (uint64_t)t->block) return 0;
    return cols / (uint64_t)t->block * (uint64_t)t->block_bytes;
}

uint64_t type_stored_rows(uint32_t type, uint64_t rows) {
    const TypeTraits *t = type_traits(type);
    return t && (t->has_scales || t->kpanel) ? (rows + QR - 1) / QR * QR : rows;
}

uint64_t type_scales_offset(uint32_t type, uint64_t rows, uint64_t cols) {
    return align64(type_stored_rows(type, rows) * type_row_bytes(type, cols));
}

uint64_t type_tensor_bytes(uint32_t type, uint64_t rows, uint64_t cols) {
    uint64_t rb = type_row_bytes(type, cols);
    /* Shapes are bounded (rows, cols < 2^31) so that these products cannot overflow. */
    if (rb == 0 || rows == 0 || rows >= (1ull << 31) || cols >= (1ull << 31)) return 0;
    uint64_t sr = type_stored_rows(type, rows), n = sr * rb;
    if (type_table[type].has_scales) n = align64(n) + sr * (cols / QK) * 2;
    return n;
}

double type_bits_per_weight(uint32_t type) {
    const TypeTraits *t = type_traits(type);
    if (!t) return 0;
    return 8.0 * t->block_bytes / t->block + (t->has_scales ? 16.0 / t->block : 0.0);
}

MatView matview(uint32_t type, const void *data, int rows, int cols) {
    MatView m = {type, rows, cols, (const uint8_t *)data, NULL};
    if (type_table[type].has_scales)
        m.d = (const uint16_t *)(m.q + type_scales_offset(type, (uint64_t)rows, (uint64_t)cols));
    return m;
}

/* Block b of row r gathered from its panel (blocks.h). */
void matview_get_block(const MatView *m, int r, int b, uint8_t *q, uint16_t *d) {
    const uint8_t *src = matview_panel_q(m, r / QR, b) + (size_t)(r % QR) * 4; /* then QR * 4 apart */
    for (int k = 0; k < type_table[m->type].block_bytes / 4; k++) memcpy(q + 4 * k, src + (size_t)k * QR * 4, 4);
    if (type_table[m->type].has_scales) *d = matview_panel_d(m, r / QR, b)[r % QR];
}

const uint8_t *matview_kblock(const MatView *m, int r, int b, uint8_t *tmp) {
    const TypeTraits *t = &type_table[m->type];
    if (!t->kpanel) return matview_row(m, r) + (size_t)b * (size_t)t->block_bytes;
    matview_get_block(m, r, b, tmp, NULL);
    return tmp;
}

/* Rows stored one after another: the float types and the row-by-row K-quants. */
static int row_major(const TypeTraits *t) { return !t->has_scales && !t->kpanel; }

void matview_get_row(const MatView *m, int r, void *q, uint16_t *d) {
    const TypeTraits *t = &type_table[m->type];
    if (row_major(t)) {
        memcpy(q, matview_row(m, r), type_row_bytes(m->type, (uint64_t)m->cols));
        return;
    }
    int bb = t->block_bytes;
    for (int b = 0; b < m->cols / t->block; b++)
        matview_get_block(m, r, b, (uint8_t *)q + (size_t)b * bb, t->has_scales ? d + b : NULL);
}

void matview_put_row(const MatView *m, int r, const void *q, const uint16_t *d) {
    const TypeTraits *t = &type_table[m->type];
    if (row_major(t)) {
        memcpy((uint8_t *)matview_row(m, r), q, type_row_bytes(m->type, (uint64_t)m->cols));
        return;
    }
    /* the panel's base once per row: its 4-byte groups lie QR * 4 bytes apart from there
     * (an offset computed per group made loading a Q4_0 GGUF spend 40 % of its time here) */
    int bb = t->block_bytes, nb = m->cols / t->block, p = r / QR, l = r % QR;
    const uint8_t *src = q;
    uint8_t *dst = (uint8_t *)matview_panel_q(m, p, 0) + (size_t)l * 4;
    uint16_t *ds = t->has_scales ? (uint16_t *)matview_panel_d(m, p, 0) + l : NULL;
    for (int b = 0; b < nb; b++, src += bb, dst += (size_t)QR * (size_t)bb) {
        for (int k = 0; k < bb / 4; k++) memcpy(dst + (size_t)k * QR * 4, src + 4 * k, 4);
        if (ds) ds[(size_t)b * QR] = d[b];
    }
}

void matview_dequant_row(const MatView *m, int r, float *y) {
    const TypeTraits *t = &type_table[m->type];
    if (row_major(t)) {
        dequantize_row(m->type, matview_row(m, r), NULL, y, m->cols);
        return;
    }
    uint8_t q[BLOCK_BYTES_MAX];
    uint16_t d = 0;
    for (int b = 0; b < m->cols / t->block; b++) {
        matview_get_block(m, r, b, q, &d);
        t->to_float(q, &d, y + (size_t)b * t->block, t->block);
    }
}

static void quantize_row_q8(const float *x, int8_t *q, uint16_t *d, int n) {
    for (int b = 0; b < n / QK; b++) {
        const float *xb = x + b * QK;
        float amax = 0;
        /* fmaxf and roundf without their libm calls (a third of the time here), same values:
         * a NaN never wins the max, and v is rounded half away from zero as roundf does (|v| is
         * below 2^23 whenever the scale is finite and nonzero; otherwise roundf itself) */
        for (int i = 0; i < QK; i++) {
            float a = fabsf(xb[i]);
            amax = a > amax ? a : amax;
        }
        d[b] = f32_to_fp16(amax / 127.0f);
        float ds = fp16_to_f32(d[b]);
        float id = ds > 0 ? 1.0f / ds : 0.0f;
        for (int i = 0; i < QK; i++) {
            float v = xb[i] * id, r;
            if (fabsf(v) < 8388608.0f) {
                r = (float)(int32_t)v; /* truncated; v - r is exact */
                r += copysignf(fabsf(v - r) >= 0.5f ? 1.0f : 0.0f, v);
            } else {
                r = roundf(v);
            }
            q[b * QK + i] = (int8_t)(r > 127 ? 127 : r < -127 ? -127 : r);
        }
    }
}

/* Q4 quantization: each block's scale is searched to minimise the (weighted) squared error of
 * the block, sum w (x - d q)^2 with q = round(x / d) clamped to -8..7.
 *
 * For a fixed set of q the best scale is the least-squares fit d = sum wxq / sum wqq, with error
 * sum wxx - (sum wxq)^2 / sum wqq, so a candidate inverse scale s costs one pass: quantize with s,
 * then score the refitted scale. Candidates put the block's largest magnitude at 6.25 .. 11 steps
 * (on the -8 side or the +7 side; past 8.5 steps it is clamped, which pays when it carries
 * little weight). The best is refined by alternating requantize / refit, then rounded to f16,
 * trying the two neighbouring halves too. The plain rule d = v / -8 (v the value of largest
 * magnitude; llama.cpp's Q4_0) is always a candidate, so no block is ever worse than with it.
 * On phi3-trained-tiny the squared error is 11.5 % below that rule's; on random blocks within
 * 0.04 % (0.11 % with importances) of the exact optimum (tests/test_blocks.c sweeps every
 * breakpoint). */

/* No fused multiply-adds in what follows, so the search rounds the same on every machine (gcc
 * contracts nothing in ISO C mode, -std=c11; clang would without this). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* The candidates, sign * (largest magnitude / |d|) in the search's order. Without importances
 * (no --calib): on the -8 side 6.25 and 6.75 .. 8.75 steps, on the +7 side 7.75 .. 9 (the
 * largest value clamped to 7, which pays when the rest of the block fits the grid better): 16,
 * one vector of lanes. With importances, clamping an element of little weight pays further out:
 * on the -8 side 6.25 .. 9 in quarters and 9.5 .. 11 in halves, on the +7 side 7.5 .. 10.5 in
 * quarters and 11: 30, in 32 lanes. Until 2026-12 both were 6 .. 11 in quarters on both signs
 * (42), 98 % of whose winners on random blocks lie in the 16. Against the exact optimum
 * (tests/test_blocks.c q4_scale_search_*): 1.0004 x (was 1.0003) without importances, 1.0011 x
 * (unchanged) with; q4 of phi3-trained-tiny, KL against f32 (scripts/quant-report.sh): 0.0029026,
 * was 0.0028942 (other sets of 16 to 24 candidates move it by up to 0.3 % either way). The
 * search takes half the time it took (kernels only: 275 -> 144 ns a block on AVX-512). */
#define Q4_N_UNIT 16
#define Q4_N_W 32
static const float q4_cands_unit[Q4_N_UNIT] = {-6.25, -6.75, -7, -7.25, -7.5, -7.75, -8, -8.25,
                                               -8.5,  -8.75, 7.75, 8, 8.25, 8.5, 8.75, 9};
static const float q4_cands_w[Q4_N_W] = {-6.25, -6.5, -6.75, -7, -7.25, -7.5, -7.75, -8, -8.25, -8.5, -8.75,
                                         -9, -9.5, -10, -10.5, -11, 7.5, 7.75, 8, 8.25, 8.5, 8.75, 9, 9.25,
                                         9.5, 9.75, 10, 10.25, 10.5, 11, 11, 11};
/* (the last two of q4_cands_w repeat 11 to fill a vector; the search skips them) */
#define Q4_N_W_USED 30

/* Nearest of -8..7 (halves round up): the same rounding everywhere, so errors are exact. */
static inline float q4_round(float v) {
    v = v < -8.0f ? -8.0f : v > 7.0f ? 7.0f : v;
    return (float)(int)(v + 8.5f) - 8.0f;
}

static float sum8(const float *a) {
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

/* The two loops the scale search spends its time in. Both keep eight partial sums (element i
 * goes to sum i % 8) added in a fixed order, so the SSE2 and scalar versions give bit-identical
 * results: the output never depends on the machine. */
#if defined(__SSE2__)
#include <emmintrin.h>

static inline __m128 q4_round4(__m128 v) {
    v = _mm_min_ps(_mm_max_ps(v, _mm_set1_ps(-8.0f)), _mm_set1_ps(7.0f));
    __m128i t = _mm_cvttps_epi32(_mm_add_ps(v, _mm_set1_ps(8.5f)));
    return _mm_sub_ps(_mm_cvtepi32_ps(t), _mm_set1_ps(8.0f));
}

/* Sum of w x q and of w q q with q quantized at inverse scale s. */
static void q4_sums(const float *x, const float *w, float s, float *sxq, float *sqq) {
    __m128 a[2] = {_mm_setzero_ps(), _mm_setzero_ps()}, b[2] = {a[0], a[0]}, vs = _mm_set1_ps(s);
    for (int i = 0; i < QK; i += 4) {
        __m128 xv = _mm_loadu_ps(x + i), wv = _mm_loadu_ps(w + i);
        __m128 q = q4_round4(_mm_mul_ps(xv, vs));
        a[i / 4 % 2] = _mm_add_ps(a[i / 4 % 2], _mm_mul_ps(_mm_mul_ps(wv, xv), q));
        b[i / 4 % 2] = _mm_add_ps(b[i / 4 % 2], _mm_mul_ps(_mm_mul_ps(wv, q), q));
    }
    float fa[8], fb[8];
    _mm_storeu_ps(fa, a[0]), _mm_storeu_ps(fa + 4, a[1]);
    _mm_storeu_ps(fb, b[0]), _mm_storeu_ps(fb + 4, b[1]);
    *sxq = sum8(fa);
    *sqq = sum8(fb);
}

/* Weighted squared error of the block stored with scale d. */
static float q4_error(const float *x, const float *w, float d) {
    __m128 e[2] = {_mm_setzero_ps(), _mm_setzero_ps()}, vd = _mm_set1_ps(d);
    __m128 vid = _mm_set1_ps(d != 0 ? 1.0f / d : 0.0f);
    for (int i = 0; i < QK; i += 4) {
        __m128 xv = _mm_loadu_ps(x + i), wv = _mm_loadu_ps(w + i);
        __m128 r = _mm_sub_ps(xv, _mm_mul_ps(vd, q4_round4(_mm_mul_ps(xv, vid))));
        e[i / 4 % 2] = _mm_add_ps(e[i / 4 % 2], _mm_mul_ps(_mm_mul_ps(wv, r), r));
    }
    float fe[8];
    _mm_storeu_ps(fe, e[0]), _mm_storeu_ps(fe + 4, e[1]);
    return sum8(fe);
}
#else
static void q4_sums(const float *x, const float *w, float s, float *sxq, float *sqq) {
    float a[8] = {0}, b[8] = {0};
    for (int i = 0; i < QK; i++) {
        float q = q4_round(x[i] * s);
        a[i % 8] += w[i] * x[i] * q;
        b[i % 8] += w[i] * q * q;
    }
    *sxq = sum8(a);
    *sqq = sum8(b);
}

static float q4_error(const float *x, const float *w, float d) {
    float id = d != 0 ? 1.0f / d : 0.0f, e[8] = {0};
    for (int i = 0; i < QK; i++) {
        float r = x[i] - d * q4_round(x[i] * id);
        e[i % 8] += w[i] * r * r;
    }
    return sum8(e);
}
#endif

/* The candidates' sums all at once, a vector lane per candidate (16: one zmm, two ymm): element
 * i is broadcast to every lane and added to partial sum i % 8 of each lane, and the partial sums
 * are added in sum8's order, so each lane computes exactly what q4_sums computes for its
 * candidate (the same multiplications, roundings and additions, in the same order): the same
 * bits. fit[k] = sxx - sxq^2 / sqq and sqq[k] as the search compares them; the pick, as the
 * reference's scan picks (the first candidate of the smallest valid error), by lane masks. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define Q4_HAVE_SIMD 1
#define Q4_Z __attribute__((target("avx512f")))
#define Q4_Y __attribute__((target("avx2")))

/* q = round(x s) as q4_round4 computes it: clamp, + 8.5, truncate (a floor: the sum is >= 0.5),
 * - 8. With unit weights (w all 1: no --calib) w q q = q q exactly, so one multiply goes. */
#define Q4_CANDS_BODY(V, PS, SET1, FLOOR)                                                          \
    for (int g = 0; g < n_cand; g += (int)(sizeof(V) / 4)) {                                    \
        V s = PS(div)(PS(loadu)(cand + g), SET1(amax));                                            \
        V a[8], b[8];                                                                              \
        for (int p = 0; p < 8; p++) a[p] = b[p] = PS(setzero)();                                   \
        for (int i0 = 0; i0 < QK; i0 += 8) {                                                       \
            _Pragma("GCC unroll 8") for (int p = 0; p < 8; p++) { /* a[p], b[p] in registers */   \
                int i = i0 + p;                                                                    \
                V v = PS(min)(PS(max)(PS(mul)(SET1(x[i]), s), SET1(-8.0f)), SET1(7.0f));           \
                V q = PS(sub)(FLOOR(PS(add)(v, SET1(8.5f))), SET1(8.0f));                          \
                a[p] = PS(add)(a[p], PS(mul)(SET1(wx[i]), q));                                     \
                b[p] = PS(add)(b[p], unit ? PS(mul)(q, q) : PS(mul)(PS(mul)(SET1(w[i]), q), q));   \
            }                                                                                      \
        }                                                                                          \
        V sxq = PS(add)(PS(add)(PS(add)(a[0], a[1]), PS(add)(a[2], a[3])),                         \
                        PS(add)(PS(add)(a[4], a[5]), PS(add)(a[6], a[7])));                        \
        V sqq = PS(add)(PS(add)(PS(add)(b[0], b[1]), PS(add)(b[2], b[3])),                         \
                        PS(add)(PS(add)(b[4], b[5]), PS(add)(b[6], b[7])));                        \
        PS(storeu)(fit + g, PS(sub)(SET1(sxx), PS(div)(PS(mul)(sxq, sxq), sqq)));                  \
        PS(storeu)(sqq_out + g, sqq);                                                              \
        PS(storeu)(sxq_out + g, sxq);                                                              \
    }

#define Q4_PS512(op) _mm512_##op##_ps
#define Q4_PS256(op) _mm256_##op##_ps
#define Q4_FLOOR512(v) _mm512_roundscale_ps(v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC)
#define Q4_FLOOR256(v) _mm256_round_ps(v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC)

Q4_Z static inline __attribute__((always_inline)) void q4_cands_z(const float *x, const float *w, const float *wx,
                                                                  int unit, const float *cand, int n_cand,
                                                                  float amax, float sxx, float *fit,
                                                                  float *sqq_out, float *sxq_out) {
    Q4_CANDS_BODY(__m512, Q4_PS512, _mm512_set1_ps, Q4_FLOOR512)
}

Q4_Y static inline __attribute__((always_inline)) void q4_cands_y(const float *x, const float *w, const float *wx,
                                                                  int unit, const float *cand, int n_cand,
                                                                  float amax, float sxx, float *fit,
                                                                  float *sqq_out, float *sxq_out) {
    Q4_CANDS_BODY(__m256, Q4_PS256, _mm256_set1_ps, Q4_FLOOR256)
}

/* The refitted scale of the winner, or 0 when no candidate is valid (sqq > 0, a finite error):
 * the mask of valid lanes, their smallest error (a min is exact), its first lane. */
Q4_Z static float q4_search_avx512(const float *x, const float *w, int unit, float amax, float sxx) {
    float wx[QK], fit[Q4_N_W], sq[Q4_N_W], sx[Q4_N_W];
    for (int i = 0; i < QK; i++) wx[i] = w[i] * x[i];
    if (unit) q4_cands_z(x, w, wx, 1, q4_cands_unit, Q4_N_UNIT, amax, sxx, fit, sq, sx);
    else q4_cands_z(x, w, wx, 0, q4_cands_w, Q4_N_W, amax, sxx, fit, sq, sx);
    __m512 inf = _mm512_set1_ps(INFINITY), f[2], m = inf;
    uint32_t ok = 0;
    for (int h = 0; h < (unit ? 1 : 2); h++) {
        f[h] = _mm512_loadu_ps(fit + 16 * h);
        __mmask16 v = _mm512_cmp_ps_mask(_mm512_loadu_ps(sq + 16 * h), _mm512_setzero_ps(), _CMP_GT_OQ) &
                      _mm512_cmp_ps_mask(f[h], inf, _CMP_LT_OQ);
        if (h) v &= (1u << (Q4_N_W_USED - 16)) - 1;
        ok |= (uint32_t)v << (16 * h);
        m = _mm512_min_ps(m, _mm512_mask_blend_ps(v, inf, f[h]));
    }
    if (!ok) return 0;
    m = _mm512_min_ps(m, _mm512_shuffle_f32x4(m, m, 0x4E));
    m = _mm512_min_ps(m, _mm512_shuffle_f32x4(m, m, 0xB1));
    m = _mm512_min_ps(m, _mm512_permute_ps(m, 0x4E));
    m = _mm512_min_ps(m, _mm512_permute_ps(m, 0xB1)); /* the smallest, in every lane */
    uint32_t hit = _mm512_cmp_ps_mask(f[0], m, _CMP_EQ_OQ);
    if (!unit) hit |= (uint32_t)_mm512_cmp_ps_mask(f[1], m, _CMP_EQ_OQ) << 16;
    int k = __builtin_ctz(ok & hit);
    return sx[k] / sq[k];
}

Q4_Y static float q4_search_avx2(const float *x, const float *w, int unit, float amax, float sxx) {
    float wx[QK], fit[Q4_N_W], sq[Q4_N_W], sx[Q4_N_W];
    for (int i = 0; i < QK; i++) wx[i] = w[i] * x[i];
    if (unit) q4_cands_y(x, w, wx, 1, q4_cands_unit, Q4_N_UNIT, amax, sxx, fit, sq, sx);
    else q4_cands_y(x, w, wx, 0, q4_cands_w, Q4_N_W, amax, sxx, fit, sq, sx);
    __m256 inf = _mm256_set1_ps(INFINITY), f[4], m = inf;
    uint32_t ok = 0, hit = 0;
    int nv = unit ? 2 : 4;
    for (int h = 0; h < nv; h++) {
        f[h] = _mm256_loadu_ps(fit + 8 * h);
        __m256 v = _mm256_and_ps(_mm256_cmp_ps(_mm256_loadu_ps(sq + 8 * h), _mm256_setzero_ps(), _CMP_GT_OQ),
                                 _mm256_cmp_ps(f[h], inf, _CMP_LT_OQ));
        ok |= (uint32_t)_mm256_movemask_ps(v) << (8 * h);
        m = _mm256_min_ps(m, _mm256_blendv_ps(inf, f[h], v));
    }
    if (!unit) ok &= (1u << Q4_N_W_USED) - 1;
    /* the unused lanes repeat a used candidate: their error is never smaller than its */
    if (!ok) return 0;
    m = _mm256_min_ps(m, _mm256_permute2f128_ps(m, m, 1));
    m = _mm256_min_ps(m, _mm256_permute_ps(m, 0x4E));
    m = _mm256_min_ps(m, _mm256_permute_ps(m, 0xB1)); /* the smallest, in every lane */
    for (int h = 0; h < nv; h++) hit |= (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(f[h], m, _CMP_EQ_OQ)) << (8 * h);
    int k = __builtin_ctz(ok & hit);
    return sx[k] / sq[k];
}

/* 2: AVX-512F, 1: AVX2, 0: neither (the per-candidate passes): the K searches' level
 * (kernels/kquant_lanes.c: the CPU's, lowered by $PHI_ISA). */
static int q4_simd_level(void) { return kq_lanes_level(); }
#else
#define Q4_HAVE_SIMD 0
static int q4_simd_level(void) { return 0; }
#endif

/* The search, one pass of q4_sums per candidate: the reference of the SIMD search. */
static uint16_t q4_block_scale(const float *x, const float *w) {
    float amax = 0, vmax = 0, sxx = 0;
    for (int i = 0; i < QK; i++) {
        if (fabsf(x[i]) > amax) { amax = fabsf(x[i]); vmax = x[i]; }
        sxx += w[i] * x[i] * x[i];
    }
    if (amax == 0) return 0;
    uint16_t best = f32_to_fp16(vmax / -8.0f);
    float best_err = q4_error(x, w, fp16_to_f32(best));
    float fit_err = INFINITY, d = 0, sxq, sqq;
    int unit = 1;
    for (int i = 0; i < QK; i++) unit &= w[i] == 1.0f;
    const float *cand = unit ? q4_cands_unit : q4_cands_w;
    for (int k = 0; k < (unit ? Q4_N_UNIT : Q4_N_W_USED); k++) {
        q4_sums(x, w, cand[k] / amax, &sxq, &sqq);
        if (sqq > 0 && sxx - sxq * sxq / sqq < fit_err) {
            fit_err = sxx - sxq * sxq / sqq;
            d = sxq / sqq;
        }
    }
    for (int it = 0; it < 2 && d != 0; it++) {
        q4_sums(x, w, 1.0f / d, &sxq, &sqq);
        if (sqq > 0 && sxq != 0) d = sxq / sqq;
    }
    if (d == 0) return best;
    uint16_t h = f32_to_fp16(d);
    for (int k = -1; k <= 1; k++) {
        uint16_t hk = (uint16_t)(h + k);
        if ((hk ^ h) & 0x8000 || (hk & 0x7c00) == 0x7c00) continue; /* sign flip, inf or nan */
        float e = q4_error(x, w, fp16_to_f32(hk));
        if (e < best_err) { best_err = e; best = hk; }
    }
    return best;
}


#if Q4_HAVE_SIMD
/* The rest of the search in AVX2, the same arithmetic as the SSE2 q4_sums / q4_error: lane l of
 * one ymm accumulator takes elements l, l + 8, l + 16, l + 24 in that order, as partial sum l % 8
 * does there, and q4_hsum8 adds the eight in sum8's order. */
Q4_Y static inline float q4_hsum8(__m256 a) {
    __m256 t = _mm256_add_ps(a, _mm256_permute_ps(a, 0xB1)); /* a0+a1, a2+a3, a4+a5, a6+a7 */
    __m256 u = _mm256_add_ps(t, _mm256_permute_ps(t, 0x4E)); /* (a0+a1)+(a2+a3), (a4+a5)+(a6+a7) */
    return _mm_cvtss_f32(_mm256_castps256_ps128(u)) + _mm_cvtss_f32(_mm256_extractf128_ps(u, 1));
}

Q4_Y static inline __m256 q4_round8(__m256 v) {
    v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(-8.0f)), _mm256_set1_ps(7.0f));
    __m256i t = _mm256_cvttps_epi32(_mm256_add_ps(v, _mm256_set1_ps(8.5f)));
    return _mm256_sub_ps(_mm256_cvtepi32_ps(t), _mm256_set1_ps(8.0f));
}

Q4_Y static inline void q4_sums_y(const float *x, const float *w, float s, float *sxq, float *sqq) {
    __m256 a = _mm256_setzero_ps(), b = a, vs = _mm256_set1_ps(s);
    for (int i = 0; i < QK; i += 8) {
        __m256 xv = _mm256_loadu_ps(x + i), wv = _mm256_loadu_ps(w + i);
        __m256 q = q4_round8(_mm256_mul_ps(xv, vs));
        a = _mm256_add_ps(a, _mm256_mul_ps(_mm256_mul_ps(wv, xv), q));
        b = _mm256_add_ps(b, _mm256_mul_ps(_mm256_mul_ps(wv, q), q));
    }
    *sxq = q4_hsum8(a);
    *sqq = q4_hsum8(b);
}

Q4_Y static inline float q4_error_y(const float *x, const float *w, float d) {
    __m256 e = _mm256_setzero_ps(), vd = _mm256_set1_ps(d);
    __m256 vid = _mm256_set1_ps(d != 0 ? 1.0f / d : 0.0f);
    for (int i = 0; i < QK; i += 8) {
        __m256 xv = _mm256_loadu_ps(x + i), wv = _mm256_loadu_ps(w + i);
        __m256 r = _mm256_sub_ps(xv, _mm256_mul_ps(vd, q4_round8(_mm256_mul_ps(xv, vid))));
        e = _mm256_add_ps(e, _mm256_mul_ps(_mm256_mul_ps(wv, r), r));
    }
    return q4_hsum8(e);
}

/* Up to Q4_GROUP blocks (consecutive in x, w and qb), q4_block_scale's search and
 * quantize_row_q4's packing with simd >= 1: each block's arithmetic is the reference's, but the
 * blocks go through each stage together. A block alone is a chain of dependent steps (the
 * candidates, the pick, two refits, the f16 neighbours: ~1100 cycles, mostly waiting);
 * side by side, one block's steps fill the waits of the others. w is the blocks' importances
 * (unit: all 1). */
#define Q4_GROUP 8
Q4_Y static void q4_blocks_simd(const float *x, const float *w, int unit, int simd, int nb, uint8_t *qb,
                                uint16_t *out) {
    float amax[Q4_GROUP], sxx[Q4_GROUP], best_err[Q4_GROUP], d[Q4_GROUP];
    uint16_t best[Q4_GROUP];
    for (int b = 0; b < nb; b++) {
        const float *xb = x + b * QK, *wb = w + b * QK;
        __m256 xa[4], am = _mm256_setzero_ps(), sign = _mm256_set1_ps(-0.0f);
        float p[QK];
        for (int k = 0; k < 4; k++) {
            __m256 xv = _mm256_loadu_ps(xb + 8 * k);
            xa[k] = _mm256_andnot_ps(sign, xv);
            am = _mm256_max_ps(am, xa[k]);
            _mm256_storeu_ps(p + 8 * k, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(wb + 8 * k), xv), xv));
        }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(am), _mm256_extractf128_ps(am, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        amax[b] = _mm_cvtss_f32(_mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1)));
        float sx = 0;
        for (int i = 0; i < QK; i++) sx += p[i]; /* in order, as the reference adds them */
        sxx[b] = sx;
        best[b] = 0;
        d[b] = 0;
        if (amax[b] == 0) continue;
        __m256 va = _mm256_set1_ps(amax[b]);
        uint32_t hit = 0;
        for (int k = 0; k < 4; k++) hit |= (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(xa[k], va, _CMP_EQ_OQ)) << (8 * k);
        float vmax = xb[__builtin_ctz(hit)]; /* the first of largest magnitude */
        best[b] = f32_to_fp16(vmax / -8.0f);
        best_err[b] = q4_error_y(xb, wb, fp16_to_f32(best[b]));
    }
    for (int b = 0; b < nb; b++) {
        if (amax[b] == 0) continue;
        int u = 1; /* a row with importances can have a block of all 1: the reference's rule */
        for (int i = 0; i < QK && !unit; i++) u &= w[b * QK + i] == 1.0f;
        d[b] = simd >= 2 ? q4_search_avx512(x + b * QK, w + b * QK, u, amax[b], sxx[b])
                         : q4_search_avx2(x + b * QK, w + b * QK, u, amax[b], sxx[b]);
    }
    for (int it = 0; it < 2; it++)
        for (int b = 0; b < nb; b++) {
            if (d[b] == 0) continue;
            float sxq, sqq;
            q4_sums_y(x + b * QK, w + b * QK, 1.0f / d[b], &sxq, &sqq);
            if (sqq > 0 && sxq != 0) d[b] = sxq / sqq;
        }
    for (int b = 0; b < nb; b++) {
        if (d[b] == 0) continue;
        uint16_t h = f32_to_fp16(d[b]);
        for (int k = -1; k <= 1; k++) {
            uint16_t hk = (uint16_t)(h + k);
            if ((hk ^ h) & 0x8000 || (hk & 0x7c00) == 0x7c00) continue; /* sign flip, inf or nan */
            float e = q4_error_y(x + b * QK, w + b * QK, fp16_to_f32(hk));
            if (e < best_err[b]) { best_err[b] = e; best[b] = hk; }
        }
    }
    for (int b = 0; b < nb; b++) {
        const float *xb = x + b * QK;
        float ds = fp16_to_f32(best[b]);
        __m256 vid = _mm256_set1_ps(ds != 0 ? 1.0f / ds : 0.0f), e8 = _mm256_set1_ps(8.0f);
        for (int k = 0; k < 2; k++) { /* nibbles: element j low, j + 16 high, each q + 8 */
            __m256i lo = _mm256_cvtps_epi32(_mm256_add_ps(q4_round8(_mm256_mul_ps(_mm256_loadu_ps(xb + 8 * k), vid)), e8));
            __m256i hi = _mm256_cvtps_epi32(_mm256_add_ps(q4_round8(_mm256_mul_ps(_mm256_loadu_ps(xb + 16 + 8 * k), vid)), e8));
            int32_t v[8];
            _mm256_storeu_si256((__m256i *)(void *)v, _mm256_or_si256(lo, _mm256_slli_epi32(hi, 4)));
            for (int i = 0; i < 8; i++) qb[b * (QK / 2) + 8 * k + i] = (uint8_t)v[i];
        }
        out[b] = best[b];
    }
}
#endif

/* One block by the reference: q4_block_scale, then every value rounded with that scale. */
static uint16_t q4_block_ref(const float *xb, const float *w, uint8_t *qb) {
    uint16_t d = q4_block_scale(xb, w);
    float ds = fp16_to_f32(d);
    float id = ds != 0 ? 1.0f / ds : 0.0f;
    for (int i = 0; i < QK / 2; i++) {
        int lo = (int)q4_round(xb[i] * id), hi = (int)q4_round(xb[i + QK / 2] * id);
        qb[i] = (uint8_t)((lo + 8) | ((hi + 8) << 4));
    }
    return d;
}

uint16_t q4_quantize_block_level(const float *x, const float *w, int simd, uint8_t *qb) {
#if Q4_HAVE_SIMD
    int top = q4_simd_level();
    if (simd > 0 && top > 0) {
        int unit = 1;
        for (int i = 0; i < QK; i++) unit &= w[i] == 1.0f;
        uint16_t d;
        q4_blocks_simd(x, w, unit, simd < top ? simd : top, 1, qb, &d);
        return d;
    }
#endif
    (void)simd;
    return q4_block_ref(x, w, qb);
}

int q4_search_simd_level(void) { return q4_simd_level(); }

/* w: importance of each element (NULL: all equal). */
static void quantize_row_q4(const float *x, uint8_t *q, uint16_t *d, int n, const float *w) {
    float ones[QK];
    for (int i = 0; i < QK; i++) ones[i] = 1.0f;
    int simd = q4_simd_level(), nb = n / QK;
    (void)simd;
#if Q4_HAVE_SIMD
    if (simd > 0 && w) {
        for (int b = 0; b < nb; b += Q4_GROUP)
            q4_blocks_simd(x + b * QK, w + b * QK, 0, simd, nb - b < Q4_GROUP ? nb - b : Q4_GROUP, q + b * (QK / 2), d + b);
        return;
    }
    if (simd > 0) { /* all importances 1: a group's worth of ones */
        float ones_g[Q4_GROUP * QK];
        for (int i = 0; i < Q4_GROUP * QK; i++) ones_g[i] = 1.0f;
        for (int b = 0; b < nb; b += Q4_GROUP)
            q4_blocks_simd(x + b * QK, ones_g, 1, simd, nb - b < Q4_GROUP ? nb - b : Q4_GROUP, q + b * (QK / 2), d + b);
        return;
    }
#endif
    for (int b = 0; b < nb; b++) d[b] = q4_block_ref(x + b * QK, w ? w + b * QK : ones, q + b * (QK / 2));
}

void quantize_row(uint32_t type, const float *x, void *q, uint16_t *d, int n) {
    type_table[type].from_float(x, q, d, n);
}

void quantize_row_weighted(uint32_t type, const float *x, void *q, uint16_t *d, int n,
                           const float *w) {
    const TypeTraits *t = &type_table[type];
    if (t->from_float_w) t->from_float_w(x, q, d, n, w);
    else t->from_float(x, q, d, n);
}

void dequantize_row(uint32_t type, const void *q, const uint16_t *d, float *y, int n) {
    type_table[type].to_float(q, d, y, n);
}

/* ---- F32 ---- */

static void to_float_f32(const void *q, const uint16_t *d, float *y, int n) {
    (void)d;
    memcpy(y, q, (size_t)n * sizeof(float));
}

static void from_float_f32(const float *x, void *q, uint16_t *d, int n) {
    (void)d;
    memcpy(q, x, (size_t)n * sizeof(float));
}

static double dot_ref_f32(const void *q, const float *x, int n) {
    double sum = 0;
    for (int i = 0; i < n; i++) sum += (double)((const float *)q)[i] * x[i];
    return sum;
}

/* ---- F16 ---- */

static void to_float_f16(const void *q, const uint16_t *d, float *y, int n) {
    (void)d;
    for (int i = 0; i < n; i++) y[i] = fp16_to_f32(((const uint16_t *)q)[i]);
}

static void from_float_f16(const float *x, void *q, uint16_t *d, int n) {
    (void)d;
    for (int i = 0; i < n; i++) ((uint16_t *)q)[i] = f32_to_fp16(x[i]);
}

static double dot_ref_f16(const void *q, const float *x, int n) {
    double sum = 0;
    for (int i = 0; i < n; i++) sum += (double)fp16_to_f32(((const uint16_t *)q)[i]) * x[i];
    return sum;
}

/* ---- Q8 ---- */

static void to_float_q8(const void *q, const uint16_t *d, float *y, int n) {
    for (int b = 0; b < n / QK; b++) {
        float s = fp16_to_f32(d[b]);
        for (int i = 0; i < QK; i++) y[b * QK + i] = s * ((const int8_t *)q)[b * QK + i];
    }
}

static void from_float_q8(const float *x, void *q, uint16_t *d, int n) {
    quantize_row_q8(x, (int8_t *)q, d, n);
}

static double dot_ref_q8(const void *q, const float *x, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)((const int8_t *)q)[i] * x[i];
    return s;
}

static int32_t dot_q8_q8(const uint8_t *w, const int8_t *x) {
    int32_t s = 0;
    for (int i = 0; i < QK; i++) s += (int32_t)(int8_t)w[i] * x[i];
    return s;
}

/* ---- Q4 ---- */

static void to_float_q4(const void *q, const uint16_t *d, float *y, int n) {
    for (int b = 0; b < n / QK; b++) {
        float s = fp16_to_f32(d[b]);
        const uint8_t *qb = (const uint8_t *)q + b * (QK / 2);
        for (int i = 0; i < QK / 2; i++) {
            y[b * QK + i] = s * (float)((qb[i] & 15) - 8);
            y[b * QK + i + QK / 2] = s * (float)((qb[i] >> 4) - 8);
        }
    }
}

static void from_float_q4_w(const float *x, void *q, uint16_t *d, int n, const float *w) {
    quantize_row_q4(x, (uint8_t *)q, d, n, w);
}

static void from_float_q4(const float *x, void *q, uint16_t *d, int n) {
    quantize_row_q4(x, (uint8_t *)q, d, n, NULL);
}

static double dot_ref_q4(const void *q, const float *x, int n) {
    const uint8_t *qb = q;
    double s = 0;
    for (int i = 0; i < n / 2; i++)
        s += (double)((qb[i] & 15) - 8) * x[i] + (double)((qb[i] >> 4) - 8) * x[i + n / 2];
    return s;
}

static int32_t dot_q8_q4(const uint8_t *w, const int8_t *x) {
    int32_t s = 0;
    for (int i = 0; i < QK / 2; i++)
        s += ((w[i] & 15) - 8) * (int32_t)x[i] + ((w[i] >> 4) - 8) * (int32_t)x[i + QK / 2];
    return s;
}

/* ---- the table ---- */

const TypeTraits type_table[TENSOR_TYPE_COUNT] = {
    [TENSOR_F32] = {"f32", 1, 4, 0, ACT_F32, to_float_f32, from_float_f32, NULL, dot_ref_f32, NULL,
                    NULL, 0, 0},
    [TENSOR_F16] = {"f16", 1, 2, 0, ACT_F32, to_float_f16, from_float_f16, NULL, dot_ref_f16, NULL,
                    NULL, 0, 0},
    [TENSOR_Q8] = {"q8", QK, QK, 1, ACT_Q8, to_float_q8, from_float_q8, NULL, dot_ref_q8, dot_q8_q8,
                   NULL, 0, 0},
    [TENSOR_Q4] = {"q4", QK, QK / 2, 1, ACT_Q8, to_float_q4, from_float_q4, from_float_q4_w,
                   dot_ref_q4, dot_q8_q4, NULL, 0, 0},
    [TENSOR_Q4_K] = {"q4_k", QK_K, 144, 0, ACT_Q8, kq_to_float_q4_k, kq_from_float_q4_k,
                     kq_from_float_q4_k_w, kq_dot_ref_q4_k, NULL, kq_unpack_q4_k, KMODE_MIN, 0},
    [TENSOR_Q5_K] = {"q5_k", QK_K, 176, 0, ACT_Q8, kq_to_float_q5_k, kq_from_float_q5_k,
                     kq_from_float_q5_k_w, kq_dot_ref_q5_k, NULL, kq_unpack_q5_k, KMODE_MIN, 0},
    [TENSOR_Q6_K] = {"q6_k", QK_K, 210, 0, ACT_Q8, kq_to_float_q6_k, kq_from_float_q6_k,
                     kq_from_float_q6_k_w, kq_dot_ref_q6_k, NULL, kq_unpack_q6_k, KMODE_OFF32, 0},
    [TENSOR_Q4_KP] = {"q4_kp", QK_K, 144, 0, ACT_Q8, kq_to_float_q4_k, kq_from_float_q4_k,
                      kq_from_float_q4_k_w, kq_dot_ref_q4_k, NULL, kq_unpack_q4_k, KMODE_MIN, 1},
    [TENSOR_Q5_KP] = {"q5_kp", QK_K, 176, 0, ACT_Q8, kq_to_float_q5_k, kq_from_float_q5_k,
                      kq_from_float_q5_k_w, kq_dot_ref_q5_k, NULL, kq_unpack_q5_k, KMODE_MIN, 1},
    [TENSOR_Q6_KP] = {"q6_kp", QK_K, 212, 0, ACT_Q8, kq_to_float_q6_kp, kq_from_float_q6_kp,
                      kq_from_float_q6_kp_w, kq_dot_ref_q6_kp, NULL, kq_unpack_q6_k, KMODE_OFF32, 1},
    [TENSOR_IQ4_XS] = {"iq4_xs", QK_K, 136, 0, ACT_Q8, kq_to_float_iq4_xs, kq_from_float_iq4_xs,
                       kq_from_float_iq4_xs_w, kq_dot_ref_iq4_xs, NULL, kq_unpack_iq4_xs, KMODE_OFF128, 1},
};
