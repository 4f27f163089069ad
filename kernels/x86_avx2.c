/* x86-64 ymm kernels: AVX2 (+FMA, F16C) and AVX-VNNI tables. Every function carries its own
 * target attribute, so this file builds with plain -O2 and only runs where CPUID allows. */
#if defined(__x86_64__)

#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/isa.h"
#include "kernels/kquant.h"
#include "kernels/ref.h"
#include "kernels/x86_ymm.h"

INL float hmax8(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* ---- activation quantization (bit-identical to quantize_act_q8_ref) ---- */

TGT void quant_blocks_avx2(const float *x, int8_t *q, float *d, int32_t *s, int nblocks) {
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int b = 0; b < nblocks; b++, x += QK, q += QK) {
        __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
        __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
        __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(v0, absmask), _mm256_and_ps(v1, absmask)),
                                 _mm256_max_ps(_mm256_and_ps(v2, absmask), _mm256_and_ps(v3, absmask)));
        float amax = hmax8(m);
        if (!(amax > 0)) {
            d[b] = 0;
            _mm256_storeu_si256((__m256i *)q, _mm256_setzero_si256());
            s[b] = 0;
            continue;
        }
        d[b] = amax / 127.0f;
        __m256 id = _mm256_set1_ps(127.0f / amax);
        /* cvtps rounds half to even (default MXCSR), like the reference. */
        __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, id));
        __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, id));
        __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, id));
        __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, id));
        __m256i sum = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
        s[b] = _mm_cvtsi128_si32(s4);
        /* packs work per 128-bit lane: the permute restores element order. */
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
        _mm256_storeu_si256((__m256i *)q, _mm256_permutevar8x32_epi32(p, perm));
    }
}

/* ---- float weights (F32, F16): tiles of NR rows x NT tokens, 8 columns per step ---- */

INL __m256 load_w8(const uint8_t *row, int i, const int f16) {
    return f16 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 2 * (size_t)i)))
               : _mm256_loadu_ps((const float *)row + i);
}
INL float load_w1(const uint8_t *row, int i, const int f16) {
    return f16 ? fp16_to_f32(((const uint16_t *)row)[i]) : ((const float *)row)[i];
}

INL void ftile(const uint8_t *w0, size_t rstride, const float *x, size_t xstride, int n,
               float *y, int ldy, int accumulate, const int f16, const int NR, const int NT) {
    __m256 acc[4][2];
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++)
#pragma GCC unroll 2
        for (int t = 0; t < NT; t++) acc[r][t] = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 wv[4];
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) wv[r] = load_w8(w0 + r * rstride, i, f16);
#pragma GCC unroll 2
        for (int t = 0; t < NT; t++) {
            __m256 xv = _mm256_loadu_ps(x + t * xstride + i);
#pragma GCC unroll 4
            for (int r = 0; r < NR; r++) acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++)
#pragma GCC unroll 2
        for (int t = 0; t < NT; t++) {
            float s = hsum8(acc[r][t]);
            for (int k = i; k < n; k++) s += load_w1(w0 + r * rstride, k, f16) * x[t * xstride + k];
            y[(size_t)t * ldy + r] = s + (accumulate ? y[(size_t)t * ldy + r] : 0.0f);
        }
}

/* Any nr <= 4 rows x nt <= 2 tokens. */
#define FTILE_AVX2(NAME, F16)                                                                  \
    static TGT void NAME(const uint8_t *w0, size_t rs, int nr, const float *x, size_t xs,     \
                         int nt, int cols, float *y, int ldy, int acc) {                                \
        for (; nr >= 4; nr -= 4, w0 += 4 * rs, y += 4) {                                       \
            if (nt == 2) ftile(w0, rs, x, xs, cols, y, ldy, acc, F16, 4, 2);                        \
            else ftile(w0, rs, x, xs, cols, y, ldy, acc, F16, 4, 1);                                \
        }                                                                                      \
        for (; nr >= 1; nr -= 1, w0 += rs, y += 1) {                                           \
            if (nt == 2) ftile(w0, rs, x, xs, cols, y, ldy, acc, F16, 1, 2);                        \
            else ftile(w0, rs, x, xs, cols, y, ldy, acc, F16, 1, 1);                                \
        }                                                                                      \
    }
FTILE_AVX2(ftile_f16_avx2, 1)
FTILE_AVX2(ftile_f32_avx2, 0)
static const FTileKernel ftk_f16_avx2 = {4, 2, ftile_f16_avx2};
static const FTileKernel ftk_f32_avx2 = {4, 2, ftile_f32_avx2};

static void fmat_f32_avx2(const MatView *w, const void *x, int t0, int nt, float *y, int ldy,
                          int r0, int r1) {
    tiled_fmat(w, x, t0, nt, y, ldy, r0, r1, &ftk_f32_avx2);
}

static void fmat_f16_avx2(const MatView *w, const void *x, int t0, int nt, float *y, int ldy,
                          int r0, int r1) {
    tiled_fmat(w, x, t0, nt, y, ldy, r0, r1, &ftk_f16_avx2);
}

/* ---- elementwise ---- */

/* e^x for x <= 88.7: x = k ln2 + r, |r| <= ln2 / 2, degree-7 Taylor polynomial (relative
 * error ~1e-7 after rounding), times 2^k built in the exponent field; 0 below -87.3. */
INL __m256 exp8(__m256 x) {
    x = _mm256_min_ps(x, _mm256_set1_ps(88.7f));
    __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693145752f), x);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(1.42860677e-6f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    __m256 res = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    return _mm256_and_ps(res, _mm256_cmp_ps(x, _mm256_set1_ps(-87.3f), _CMP_GE_OQ));
}

TGT void rmsnorm_avx2(float *out, const float *x, const float *weight, int n, float eps) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
        a0 = _mm256_fmadd_ps(v0, v0, a0);
        a1 = _mm256_fmadd_ps(v1, v1, a1);
    }
    double ss = hsum8(_mm256_add_ps(a0, a1));
    for (; i < n; i++) ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / n + eps));
    __m256 sv = _mm256_set1_ps(scale);
    for (i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_loadu_ps(weight + i),
                                                _mm256_mul_ps(_mm256_loadu_ps(x + i), sv)));
    for (; i < n; i++) out[i] = weight[i] * (x[i] * scale);
}

TGT void softmax_avx2(float *x, int n) {
    __m256 mv = _mm256_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 8 <= n; i += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(x + i));
    float max = hmax8(mv);
    for (; i < n; i++) max = x[i] > max ? x[i] : max;
    __m256 m = _mm256_set1_ps(max), sum = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), m));
        _mm256_storeu_ps(x + i, e);
        sum = _mm256_add_ps(sum, e);
    }
    double s = hsum8(sum);
    for (; i < n; i++) {
        x[i] = expf(x[i] - max);
        s += x[i];
    }
    __m256 inv = _mm256_set1_ps((float)(1.0 / s));
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
    for (; i < n; i++) x[i] *= (float)(1.0 / s);
}

TGT void silu_mul_avx2(float *gate, const float *up, int n) {
    const __m256 one = _mm256_set1_ps(1.0f), neg = _mm256_set1_ps(-0.0f);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 g = _mm256_loadu_ps(gate + i);
        __m256 e = exp8(_mm256_xor_ps(g, neg));
        __m256 sg = _mm256_div_ps(g, _mm256_add_ps(one, e));
        _mm256_storeu_ps(gate + i, _mm256_mul_ps(sg, _mm256_loadu_ps(up + i)));
    }
    for (; i < n; i++) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

/* ---- attention (AttnKernels) ---- */

static TGT float dot_f16_avx2(const uint16_t *k, const float *q, int n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + i))),
                               _mm256_loadu_ps(q + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + i + 8))),
                               _mm256_loadu_ps(q + i + 8), acc1);
    }
    for (; i + 8 <= n; i += 8)
        acc0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + i))),
                               _mm256_loadu_ps(q + i), acc0);
    float s = hsum8(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) s += fp16_to_f32(k[i]) * q[i];
    return s;
}

static TGT void axpy_f16_avx2(float *y, float a, const uint16_t *v, int n) {
    __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v + i))),
                                                _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * fp16_to_f32(v[i]);
}

TGT float dot_f32_avx2(const float *k, const float *q, int n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(k + i), _mm256_loadu_ps(q + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(k + i + 8), _mm256_loadu_ps(q + i + 8), acc1);
    }
    for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(k + i), _mm256_loadu_ps(q + i), acc0);
    float s = hsum8(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) s += k[i] * q[i];
    return s;
}

TGT void axpy_f32_avx2(float *y, float a, const float *v, int n) {
    __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(v + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * v[i];
}

TGT void to_f16_avx2(const float *x, uint16_t *y, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = f32_to_fp16(x[i]);
}

/* ---- int8 kernels: the ymm template, once per instruction set ---- */

#define YFN(name) name##_avx2
#define YTGT __attribute__((target("avx2,fma,f16c")))
#define YVNNI 0
#include "kernels/x86_ymm_int8.h"
#undef YFN
#undef YTGT
#undef YVNNI

#define YFN(name) name##_avxvnni
#ifdef PHI_ZMM_EMU /* make zmm-emu-test: vpdpbusd ymm emulated (tests/zmm_emu.h) */
#define YTGT __attribute__((target("avx2,fma,f16c")))
#else
#define YTGT __attribute__((target("avx2,fma,f16c,avxvnni")))
#endif
#define YVNNI 1
#include "kernels/x86_ymm_int8.h"
#undef YFN
#undef YTGT
#undef YVNNI

/* ---- the q8_0 KV cache (kernels.h): quants widened to f32 on the fly ---- */

INL __m256 yload_q8(const int8_t *p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
}

/* Per key, per block of 32: four products summed, times the block's scale. */
static TGT void scores_q8_avx2(const int8_t *k, const uint16_t *kd, int n, int hd, const float *q,
                               float scale, float *out) {
    int nb = hd / QK_KV;
    for (int j = 0; j < n; j++) {
        const int8_t *kj = k + (size_t)j * hd;
        __m256 acc = _mm256_setzero_ps();
        for (int b = 0; b < nb; b++) {
            const int8_t *kb = kj + b * QK_KV;
            const float *qb = q + b * QK_KV;
            __m256 t0 = _mm256_mul_ps(yload_q8(kb), _mm256_loadu_ps(qb));
            __m256 t1 = _mm256_mul_ps(yload_q8(kb + 8), _mm256_loadu_ps(qb + 8));
            t0 = _mm256_fmadd_ps(yload_q8(kb + 16), _mm256_loadu_ps(qb + 16), t0);
            t1 = _mm256_fmadd_ps(yload_q8(kb + 24), _mm256_loadu_ps(qb + 24), t1);
            acc = _mm256_fmadd_ps(_mm256_add_ps(t0, t1), _mm256_set1_ps(_cvtsh_ss(kd[(size_t)j * nb + b])), acc);
        }
        out[j] = scale * hsum8(acc);
    }
}

/* One block (4 vectors) of y at a time over all rows: the sums stay in registers. */
static TGT void wsum_q8_avx2(float *y, const float *a, const int8_t *v, const uint16_t *vd, int n,
                             int hd) {
    int nb = hd / QK_KV;
    for (int b = 0; b < nb; b++) {
        float *yb = y + b * QK_KV;
        __m256 a0 = _mm256_loadu_ps(yb), a1 = _mm256_loadu_ps(yb + 8), a2 = _mm256_loadu_ps(yb + 16),
               a3 = _mm256_loadu_ps(yb + 24);
        for (int j = 0; j < n; j++) {
            const int8_t *vb = v + (size_t)j * hd + b * QK_KV;
            __m256 c = _mm256_set1_ps(a[j] * _cvtsh_ss(vd[(size_t)j * nb + b]));
            a0 = _mm256_fmadd_ps(c, yload_q8(vb), a0);
            a1 = _mm256_fmadd_ps(c, yload_q8(vb + 8), a1);
            a2 = _mm256_fmadd_ps(c, yload_q8(vb + 16), a2);
            a3 = _mm256_fmadd_ps(c, yload_q8(vb + 24), a3);
        }
        _mm256_storeu_ps(yb, a0);
        _mm256_storeu_ps(yb + 8, a1);
        _mm256_storeu_ps(yb + 16, a2);
        _mm256_storeu_ps(yb + 24, a3);
    }
}

const IsaKernels isa_avx2 = {
    .name = "avx2",
    .available = cpu_has_avx2,
    .quant = quant_blocks_avx2,
    .mat = {[TENSOR_F32] = fmat_f32_avx2, [TENSOR_F16] = fmat_f16_avx2, [TENSOR_Q8] = q8_avx2,
            [TENSOR_Q4] = q4_avx2, [TENSOR_Q4_K] = kq_avx2, [TENSOR_Q5_K] = kq_avx2,
            [TENSOR_Q6_K] = kq_avx2, [TENSOR_Q4_KP] = kq_avx2, [TENSOR_Q5_KP] = kq_avx2,
            [TENSOR_Q6_KP] = kq_avx2, [TENSOR_IQ4_XS] = kq_avx2},
    .k_off = {[TENSOR_Q8] = 0, [TENSOR_Q4] = 8},
    .k_exact = ACT_TT, /* kq_avx2: up to ACT_TT tokens in the panel decoders, whose sums per token do not depend on the others */
    .rmsnorm = rmsnorm_avx2,
    .softmax = softmax_avx2,
    .silu_mul = silu_mul_avx2,
    .attn = {dot_f16_avx2, axpy_f16_avx2, dot_f32_avx2, axpy_f32_avx2, to_f16_avx2, NULL, NULL,
             NULL, scores_q8_avx2, wsum_q8_avx2},
};

const IsaKernels isa_avxvnni = {
    .name = "avxvnni",
    .available = cpu_has_avxvnni,
    .quant = quant_blocks_avx2,
    .mat = {[TENSOR_F32] = fmat_f32_avx2, [TENSOR_F16] = fmat_f16_avx2, [TENSOR_Q8] = q8_avxvnni,
            [TENSOR_Q4] = q4_avxvnni, [TENSOR_Q4_K] = kq_avx2, [TENSOR_Q5_K] = kq_avx2,
            [TENSOR_Q6_K] = kq_avx2, [TENSOR_Q4_KP] = kq_avx2, [TENSOR_Q5_KP] = kq_avx2,
            [TENSOR_Q6_KP] = kq_avx2, [TENSOR_IQ4_XS] = kq_avx2},
    .k_off = {[TENSOR_Q8] = 128, [TENSOR_Q4] = 8},
    .k_exact = ACT_TT,
    .rmsnorm = rmsnorm_avx2,
    .softmax = softmax_avx2,
    .silu_mul = silu_mul_avx2,
    .attn = {dot_f16_avx2, axpy_f16_avx2, dot_f32_avx2, axpy_f32_avx2, to_f16_avx2, NULL, NULL,
             NULL, scores_q8_avx2, wsum_q8_avx2},
};

#endif
