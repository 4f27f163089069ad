/* Internal to the fast kernels: the per-ISA kernel table and the packed activation buffer that
 * matvec/matmul hand to the int8 kernels.
 *
 * Packed activations (one record per token, `stride` bytes apart, 64-byte aligned):
 *   q    int8[cols]: natural order, or (x86 SIMD) "grouped": the first ng = nb / 8 groups of
 *        8 blocks (256 values) are stored as 4 vectors of 64 bytes, vector j holding, as its
 *        qword k, values [8j, 8j + 8) of block order[k] of the group; the nb % 8 tail blocks
 *        follow in natural order. This matches how the SIMD kernels rearrange the weights, so
 *        each int32 lane of a dot product only ever sums values of one block.
 *   d    f32[nb]: block scales; s int32[nb]: sum of the block's q (weight offset correction).
 *   dxv  f32[ng][16] (grouped only): lane 2k and 2k+1 hold d of block order[k];
 *   cv   int32[ng][16] (grouped only): lane 2k holds -K * s of block order[k], lane 2k+1 zero,
 *        where K is the offset the kernel adds to the weights to make them unsigned (8 for Q4,
 *        128 for Q8 with VNNI, 0 when the kernel needs none). */
#ifndef PHI_ISA_H
#define PHI_ISA_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/blocks.h"

#define GROUP_BLOCKS 8
#define GROUP_BYTES (GROUP_BLOCKS * QK)

typedef struct {
    int cols, nb, ng, ntail; /* blocks, full groups, tail blocks */
    int grouped;
    size_t stride, off_d, off_s, off_dxv, off_cv;
    uint8_t *base;
} ActBuf;

static inline const int8_t *act_q(const ActBuf *a, int t) {
    return (const int8_t *)(a->base + (size_t)t * a->stride);
}
static inline const float *act_d(const ActBuf *a, int t) {
    return (const float *)(a->base + (size_t)t * a->stride + a->off_d);
}
static inline const int32_t *act_s(const ActBuf *a, int t) {
    return (const int32_t *)(a->base + (size_t)t * a->stride + a->off_s);
}
static inline const float *act_dxv(const ActBuf *a, int t) {
    return (const float *)(a->base + (size_t)t * a->stride + a->off_dxv);
}
static inline const int32_t *act_cv(const ActBuf *a, int t) {
    return (const int32_t *)(a->base + (size_t)t * a->stride + a->off_cv);
}

/* Quantizes nblocks blocks of 32: q, d as quantize_act_q8, s[b] = sum of block b's q. */
typedef void (*QuantBlocksFn)(const float *x, int8_t *q, float *d, int32_t *s, int nblocks);
/* y[t * ldy + r] = row r of W . token t, for t in [t0, t0 + nt), r in [r0, r1). */
typedef void (*QMatFn)(const MatView *w, const ActBuf *a, int t0, int nt, float *y, int ldy,
                       int r0, int r1);
typedef void (*FMatFn)(const MatView *w, const float *x, int t0, int nt, float *y, int ldy,
                       int r0, int r1);

typedef struct {
    const char *name;
    int (*available)(void);
    const uint8_t *order; /* block order within a group (grouped layout), NULL: natural */
    int k_q8, k_q4;       /* weight offsets K for the cv vectors (see above) */
    QuantBlocksFn quant;
    QMatFn q8, q4;
    FMatFn f32, f16;
    void (*rmsnorm)(float *out, const float *x, const float *weight, int n, float eps);
    void (*softmax)(float *x, int n);
    void (*silu_mul)(float *gate, const float *up, int n);
} IsaKernels;

/* The tables (defined by the architecture's files; NULL entries fall back to scalar). */
extern const IsaKernels isa_scalar;
#if defined(__x86_64__)
extern const IsaKernels isa_avx2, isa_avxvnni, isa_avx512vnni;
#endif
#if defined(__aarch64__)
extern const IsaKernels isa_neon, isa_dotprod;
#endif

/* CPU feature probes (dispatch.c). */
#if defined(__x86_64__)
int cpu_has_avx2(void);      /* AVX2 + FMA + F16C, OS saves ymm */
int cpu_has_avxvnni(void);   /* and AVX-VNNI */
int cpu_has_avx512vnni(void); /* AVX-512 F/BW/VL/VNNI, OS saves zmm */
#endif
#if defined(__aarch64__)
int cpu_has_dotprod(void);
#endif

#if defined(__x86_64__)
/* AVX2 pieces the other x86 tables reuse (x86_avx2.c). */
void quant_blocks_avx2(const float *x, int8_t *q, float *d, int32_t *s, int nblocks);
void fmat_avx2(const MatView *w, const float *x, int t0, int nt, float *y, int ldy, int r0,
               int r1);
void rmsnorm_avx2(float *out, const float *x, const float *weight, int n, float eps);
void softmax_avx2(float *x, int n);
void silu_mul_avx2(float *gate, const float *up, int n);
#endif

/* Scalar pieces shared by the SIMD files. */
void quant_blocks_scalar(const float *x, int8_t *q, float *d, int32_t *s, int nblocks);
/* Integer dot product of one weight block with one activation block (natural order). */
int32_t dot_block_q8(const int8_t *w, const int8_t *x);
int32_t dot_block_q4(const uint8_t *w, const int8_t *x);
/* Adds the tail blocks (natural order, from block a->ng * 8) of weight row r for token t. */
float tail_dot(const MatView *w, const ActBuf *a, int t, int r);

/* Packs n_tok tokens of x ([n_tok][cols]) for kernel table k and weight type wtype into a:
 * tokens [t0, t1) only (so threads can share the work). a's geometry is set by act_layout. */
void act_layout(ActBuf *a, const IsaKernels *k, int cols);
void act_pack(const ActBuf *a, const IsaKernels *k, uint32_t wtype, const float *x, int t0,
              int t1);

static inline float half_to_float(uint16_t h) { return fp16_to_f32(h); }

#endif
