/* The K-quant quantizers' scale searches on SIMD lanes (kernels/kquant_lanes.c), for
 * kernels/kquant.c only: a lane per candidate scale, each lane's sums exactly those of the
 * one-candidate fit in kquant.c, so the lanes choose the same scales, byte for byte. */
#ifndef PHI_KERNELS_KQUANT_LANES_H
#define PHI_KERNELS_KQUANT_LANES_H

/* Lane levels: 0 none (the scalar fits), 1 AVX2, 2 AVX-512F, as far as the CPU has them and
 * $PHI_ISA allows (scalar: 0; avx2, avxvnni: at most 1). Also the q4 search's (kernels/blocks.c). */
int kq_lanes_level(void);

/* q = clamp(round-half-away(x_i is_m), -nmax - 1, nmax) for the candidates is[0..23] (is: 32 floats):
 * sqq[m] = sum w q q, sqx[m] = sum w q x, in double, i in order. */
void kq_sym_lanes(int level, const float *x, const float *w, int n, int nmax, const float *is, double *sqq,
                  double *sqx);
/* q = clamp(round-half-away((x_i - lo) is_m), 0, nmax) for is[0..15]: sq = sum w q, sqq, sqx. */
void kq_affine_lanes(int level, const float *x, const float *w, int n, int nmax, float lo, const float *is,
                     double *sq, double *sqq, double *sqx);
/* IQ4_XS: q = cell_level[cell(2 x_i is_m + 256)] (kquant.c's iq4_nearest) for is[0..23] (is, sqq,
 * sqx: 32 floats): in float, sqq = sum (w q) q, sqx = sum (w q) x. */
void kq_iq4_lanes(int level, const float *x, const float *w, int n, const float *is, const float *cell_level,
                  float *sqq, float *sqx);

#endif
