/* The quantizers' candidate scales on SIMD lanes (kernels/kquant_lanes.h). Element i is broadcast
 * to every lane, rounded and clamped per lane as kquant.c's nearest / clampi do (v + (v >= 0 ? 0.5 :
 * -0.5) in float, truncated; the same instruction the scalar cast compiles to), and each lane's sums
 * are built with the same multiplications and additions in the same order as the one-candidate fit
 * (no FMA: -std=c11 contracts nothing), so each lane holds exactly that fit's sums, whatever the
 * machine: tests/test_ktypes.c "search lanes" compares the blocks with the scalar search's.
 * quant --random phi3-mini --layers 2 -q q4_k_m -t 1: 26.9 -> 9.3 user s with the AVX-512 lanes. */
#include "kernels/kquant_lanes.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

/* The CPU's (AVX-512F, AVX2), lowered as $PHI_ISA lowers the kernels (scalar: 0; avx2, avxvnni: 1),
 * so that PHI_ISA=avx2 quant ... converts as an AVX2-only machine does. Read once. */
int kq_lanes_level(void) {
    static int level = -1; /* converter threads may race here: every one computes the same */
    int l = __atomic_load_n(&level, __ATOMIC_RELAXED);
    if (l < 0) {
        __builtin_cpu_init();
        l = __builtin_cpu_supports("avx512f") ? 2 : __builtin_cpu_supports("avx2") ? 1 : 0;
        const char *isa = getenv("PHI_ISA");
        if (isa && !strcmp(isa, "scalar")) l = 0;
        if (isa && (!strcmp(isa, "avx2") || !strcmp(isa, "avxvnni")) && l > 1) l = 1;
        __atomic_store_n(&level, l, __ATOMIC_RELAXED);
    }
    return l;
}

#define ZL __attribute__((target("avx512f")))
#define YL __attribute__((target("avx2")))

/* ---- AVX-512F: 16 floats, 8 doubles a vector ---- */

ZL static inline __m512i round_clamp_zmm(__m512 v, int lo, int hi) {
    __mmask16 ge = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GE_OQ);
    __m512 h = _mm512_mask_blend_ps(ge, _mm512_set1_ps(-0.5f), _mm512_set1_ps(0.5f));
    __m512i q = _mm512_cvttps_epi32(_mm512_add_ps(v, h));
    return _mm512_min_epi32(_mm512_max_epi32(q, _mm512_set1_epi32(lo)), _mm512_set1_epi32(hi));
}

ZL static void sym_zmm(const float *x, const float *w, int n, int nmax, const float *is, double *sqq, double *sqx) {
    __m512 is0 = _mm512_loadu_ps(is), is1 = _mm512_loadu_ps(is + 16);
    __m512d aq[3], ax[3];
    for (int k = 0; k < 3; k++) aq[k] = ax[k] = _mm512_setzero_pd();
    for (int i = 0; i < n; i++) {
        __m512 xi = _mm512_set1_ps(x[i]);
        __m512i q0 = round_clamp_zmm(_mm512_mul_ps(xi, is0), -nmax - 1, nmax);
        __m512i q1 = round_clamp_zmm(_mm512_mul_ps(xi, is1), -nmax - 1, nmax);
        __m256i qs[3] = {_mm512_castsi512_si256(q0), _mm512_extracti64x4_epi64(q0, 1), _mm512_castsi512_si256(q1)};
        __m512d wd = _mm512_set1_pd((double)w[i]), xd = _mm512_set1_pd((double)x[i]);
        for (int k = 0; k < 3; k++) {
            __m512d q = _mm512_cvtepi32_pd(qs[k]), wq = _mm512_mul_pd(wd, q);
            aq[k] = _mm512_add_pd(aq[k], _mm512_mul_pd(wq, q));
            ax[k] = _mm512_add_pd(ax[k], _mm512_mul_pd(wq, xd));
        }
    }
    for (int k = 0; k < 3; k++) _mm512_storeu_pd(sqq + 8 * k, aq[k]), _mm512_storeu_pd(sqx + 8 * k, ax[k]);
}

ZL static void affine_zmm(const float *x, const float *w, int n, int nmax, float lo, const float *is, double *sq,
                          double *sqq, double *sqx) {
    __m512 vis = _mm512_loadu_ps(is);
    __m512d a1[2], aq[2], ax[2];
    for (int k = 0; k < 2; k++) a1[k] = aq[k] = ax[k] = _mm512_setzero_pd();
    for (int i = 0; i < n; i++) {
        __m512i q = round_clamp_zmm(_mm512_mul_ps(_mm512_set1_ps(x[i] - lo), vis), 0, nmax);
        __m256i qs[2] = {_mm512_castsi512_si256(q), _mm512_extracti64x4_epi64(q, 1)};
        __m512d wd = _mm512_set1_pd((double)w[i]), xd = _mm512_set1_pd((double)x[i]);
        for (int k = 0; k < 2; k++) {
            __m512d qd = _mm512_cvtepi32_pd(qs[k]), wq = _mm512_mul_pd(wd, qd);
            a1[k] = _mm512_add_pd(a1[k], wq);
            aq[k] = _mm512_add_pd(aq[k], _mm512_mul_pd(wq, qd));
            ax[k] = _mm512_add_pd(ax[k], _mm512_mul_pd(wq, xd));
        }
    }
    for (int k = 0; k < 2; k++)
        _mm512_storeu_pd(sq + 8 * k, a1[k]), _mm512_storeu_pd(sqq + 8 * k, aq[k]), _mm512_storeu_pd(sqx + 8 * k, ax[k]);
}

/* the cell index c >= 0 ? (c < 511 ? (int)c : 511) : c < 0 ? 0 : 256 (NaN), then a gather */
ZL static void iq4_zmm(const float *x, const float *w, int n, const float *is, const float *cell_level, float *sqq,
                       float *sqx) {
    for (int h = 0; h < 2; h++) {
        __m512 vis = _mm512_loadu_ps(is + 16 * h), aq = _mm512_setzero_ps(), ax = _mm512_setzero_ps();
        for (int i = 0; i < n; i++) {
            __m512 xi = _mm512_set1_ps(x[i]);
            __m512 c = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(2.0f), _mm512_mul_ps(xi, vis)), _mm512_set1_ps(256.0f));
            __mmask16 ge0 = _mm512_cmp_ps_mask(c, _mm512_setzero_ps(), _CMP_GE_OQ);
            __mmask16 lt0 = _mm512_cmp_ps_mask(c, _mm512_setzero_ps(), _CMP_LT_OQ);
            __mmask16 in = ge0 & _mm512_cmp_ps_mask(c, _mm512_set1_ps(511.0f), _CMP_LT_OQ);
            __m512i idx = _mm512_mask_mov_epi32(_mm512_set1_epi32(256), lt0, _mm512_setzero_si512());
            idx = _mm512_mask_mov_epi32(idx, ge0, _mm512_set1_epi32(511));
            idx = _mm512_mask_mov_epi32(idx, in, _mm512_cvttps_epi32(c));
            __m512 q = _mm512_i32gather_ps(idx, cell_level, 4);
            __m512 wq = _mm512_mul_ps(_mm512_set1_ps(w[i]), q);
            aq = _mm512_add_ps(aq, _mm512_mul_ps(wq, q));
            ax = _mm512_add_ps(ax, _mm512_mul_ps(wq, xi));
        }
        _mm512_storeu_ps(sqq + 16 * h, aq);
        _mm512_storeu_ps(sqx + 16 * h, ax);
    }
}

/* ---- AVX2: 8 floats, 4 doubles a vector (the same steps) ---- */

YL static inline __m256i round_clamp_ymm(__m256 v, int lo, int hi) {
    __m256 ge = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GE_OQ);
    __m256 h = _mm256_blendv_ps(_mm256_set1_ps(-0.5f), _mm256_set1_ps(0.5f), ge);
    __m256i q = _mm256_cvttps_epi32(_mm256_add_ps(v, h));
    return _mm256_min_epi32(_mm256_max_epi32(q, _mm256_set1_epi32(lo)), _mm256_set1_epi32(hi));
}

/* sums of NQ groups of 4 candidates (2 per float vector) */
YL static inline void acc4_ymm(__m256i q, __m256d wd, __m256d xd, __m256d *a1, __m256d *aq, __m256d *ax) {
    for (int k = 0; k < 2; k++) {
        __m256d qd = _mm256_cvtepi32_pd(k ? _mm256_extracti128_si256(q, 1) : _mm256_castsi256_si128(q));
        __m256d wq = _mm256_mul_pd(wd, qd);
        if (a1) a1[k] = _mm256_add_pd(a1[k], wq);
        aq[k] = _mm256_add_pd(aq[k], _mm256_mul_pd(wq, qd));
        ax[k] = _mm256_add_pd(ax[k], _mm256_mul_pd(wq, xd));
    }
}

YL static void sym_ymm(const float *x, const float *w, int n, int nmax, const float *is, double *sqq, double *sqx) {
    __m256d aq[6], ax[6];
    for (int k = 0; k < 6; k++) aq[k] = ax[k] = _mm256_setzero_pd();
    for (int i = 0; i < n; i++) {
        __m256 xi = _mm256_set1_ps(x[i]);
        __m256d wd = _mm256_set1_pd((double)w[i]), xd = _mm256_set1_pd((double)x[i]);
        for (int v = 0; v < 3; v++) {
            __m256i q = round_clamp_ymm(_mm256_mul_ps(xi, _mm256_loadu_ps(is + 8 * v)), -nmax - 1, nmax);
            acc4_ymm(q, wd, xd, NULL, aq + 2 * v, ax + 2 * v);
        }
    }
    for (int k = 0; k < 6; k++) _mm256_storeu_pd(sqq + 4 * k, aq[k]), _mm256_storeu_pd(sqx + 4 * k, ax[k]);
}

YL static void affine_ymm(const float *x, const float *w, int n, int nmax, float lo, const float *is, double *sq,
                          double *sqq, double *sqx) {
    __m256d a1[4], aq[4], ax[4];
    for (int k = 0; k < 4; k++) a1[k] = aq[k] = ax[k] = _mm256_setzero_pd();
    for (int i = 0; i < n; i++) {
        __m256 xl = _mm256_set1_ps(x[i] - lo);
        __m256d wd = _mm256_set1_pd((double)w[i]), xd = _mm256_set1_pd((double)x[i]);
        for (int v = 0; v < 2; v++) {
            __m256i q = round_clamp_ymm(_mm256_mul_ps(xl, _mm256_loadu_ps(is + 8 * v)), 0, nmax);
            acc4_ymm(q, wd, xd, a1 + 2 * v, aq + 2 * v, ax + 2 * v);
        }
    }
    for (int k = 0; k < 4; k++)
        _mm256_storeu_pd(sq + 4 * k, a1[k]), _mm256_storeu_pd(sqq + 4 * k, aq[k]), _mm256_storeu_pd(sqx + 4 * k, ax[k]);
}

YL static void iq4_ymm(const float *x, const float *w, int n, const float *is, const float *cell_level, float *sqq,
                       float *sqx) {
    for (int h = 0; h < 3; h++) {
        __m256 vis = _mm256_loadu_ps(is + 8 * h), aq = _mm256_setzero_ps(), ax = _mm256_setzero_ps();
        for (int i = 0; i < n; i++) {
            __m256 xi = _mm256_set1_ps(x[i]);
            __m256 c = _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(2.0f), _mm256_mul_ps(xi, vis)), _mm256_set1_ps(256.0f));
            __m256i ge0 = _mm256_castps_si256(_mm256_cmp_ps(c, _mm256_setzero_ps(), _CMP_GE_OQ));
            __m256i lt0 = _mm256_castps_si256(_mm256_cmp_ps(c, _mm256_setzero_ps(), _CMP_LT_OQ));
            __m256i in = _mm256_and_si256(ge0, _mm256_castps_si256(_mm256_cmp_ps(c, _mm256_set1_ps(511.0f), _CMP_LT_OQ)));
            __m256i idx = _mm256_blendv_epi8(_mm256_set1_epi32(256), _mm256_setzero_si256(), lt0);
            idx = _mm256_blendv_epi8(idx, _mm256_set1_epi32(511), ge0);
            idx = _mm256_blendv_epi8(idx, _mm256_cvttps_epi32(c), in);
            __m256 q = _mm256_i32gather_ps(cell_level, idx, 4);
            __m256 wq = _mm256_mul_ps(_mm256_set1_ps(w[i]), q);
            aq = _mm256_add_ps(aq, _mm256_mul_ps(wq, q));
            ax = _mm256_add_ps(ax, _mm256_mul_ps(wq, xi));
        }
        _mm256_storeu_ps(sqq + 8 * h, aq);
        _mm256_storeu_ps(sqx + 8 * h, ax);
    }
}

void kq_sym_lanes(int level, const float *x, const float *w, int n, int nmax, const float *is, double *sqq,
                  double *sqx) {
    (level >= 2 ? sym_zmm : sym_ymm)(x, w, n, nmax, is, sqq, sqx);
}
void kq_affine_lanes(int level, const float *x, const float *w, int n, int nmax, float lo, const float *is,
                     double *sq, double *sqq, double *sqx) {
    (level >= 2 ? affine_zmm : affine_ymm)(x, w, n, nmax, lo, is, sq, sqq, sqx);
}
void kq_iq4_lanes(int level, const float *x, const float *w, int n, const float *is, const float *cell_level,
                  float *sqq, float *sqx) {
    (level >= 2 ? iq4_zmm : iq4_ymm)(x, w, n, is, cell_level, sqq, sqx);
}

#else /* no lanes: kquant.c never calls these (level 0) */
int kq_lanes_level(void) { return 0; }
void kq_sym_lanes(int level, const float *x, const float *w, int n, int nmax, const float *is, double *sqq,
                  double *sqx) {
    (void)level, (void)x, (void)w, (void)n, (void)nmax, (void)is, (void)sqq, (void)sqx;
}
void kq_affine_lanes(int level, const float *x, const float *w, int n, int nmax, float lo, const float *is,
                     double *sq, double *sqq, double *sqx) {
    (void)level, (void)x, (void)w, (void)n, (void)nmax, (void)lo, (void)is, (void)sq, (void)sqq, (void)sqx;
}
void kq_iq4_lanes(int level, const float *x, const float *w, int n, const float *is, const float *cell_level,
                  float *sqq, float *sqx) {
    (void)level, (void)x, (void)w, (void)n, (void)is, (void)cell_level, (void)sqq, (void)sqx;
}
#endif
