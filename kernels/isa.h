/* Internal to the fast kernels: the per-ISA kernel table and the packed activation buffer that
 * matvec/matmul hand to the int8 kernels.
 *
 * Packed activations, two areas (64-byte aligned):
 *  - natural, one record per token (`stride` bytes apart) at `nat`:
 *      q int8[cols] (quantize_act_q8's order), d f32[nb] block scales, s int32[nb] sums of q;
 *    the scalar and NEON kernels read only this; the x86 kernels use it for the tail blocks
 *    (the nb % gb blocks after the last whole group).
 *  - grouped (x86 SIMD only, gb = 8 or 16 blocks per group), at `base`: group-major, one
 *    `rec`-byte record per (group g, token t) at base + (g * n_tok + t) * rec, so the tokens of a
 *    tile are adjacent and a kernel reaches them with constant displacements:
 *      8 vectors of gb * 4 bytes: vector m holds, as its int32 lane p, values [4m, 4m + 4) of
 *        block order[p] of the group. This is the order in which the kernels' register
 *        transposes leave the weights, so every lane of vpdpbusd sums one block only and the
 *        per-block scaling needs no horizontal reduction;
 *      dxv f32[gb]: lane p = d of block order[p];
 *      cv int32[gb]: lane p = -K * s of block order[p], where K is the offset the kernel adds
 *        to the weights to make them unsigned (8 for Q4, 128 for Q8 with VNNI, 0 if none);
 *        the integer sums start from cv, which removes the offset. */
#ifndef PHI_ISA_H
#define PHI_ISA_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/blocks.h"

typedef struct {
    int cols, nb, n_tok;
    int gb, ng, ntail;  /* blocks per group (0: natural only), whole groups, tail blocks */
    size_t rec;         /* bytes of a grouped record: gb * 32 + gb * 8 */
    size_t stride;      /* bytes of a natural record */
    size_t off_d, off_s; /* within a natural record */
    uint8_t *base, *nat;
} ActBuf;

static inline const int8_t *act_q(const ActBuf *a, int t) {
    return (const int8_t *)(a->nat + (size_t)t * a->stride);
}
static inline const float *act_d(const ActBuf *a, int t) {
    return (const float *)(a->nat + (size_t)t * a->stride + a->off_d);
}
static inline const int32_t *act_s(const ActBuf *a, int t) {
    return (const int32_t *)(a->nat + (size_t)t * a->stride + a->off_s);
}
/* Grouped record of group g, token t. */
static inline const uint8_t *act_rec(const ActBuf *a, int g, int t) {
    return a->base + ((size_t)g * a->n_tok + t) * a->rec;
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
    int gb;               /* blocks per group of the grouped layout, 0: natural only */
    const uint8_t *order_q8, *order_q4; /* block order of a group's lanes, per weight type */
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

/* One weight row against n <= tt tokens: ys[i] += row (wq, wd) . token t + i over groups
 * [g0, g1) of the grouped layout. tiled_matmul calls it inside its cache-blocked loop nest and
 * adds the tail blocks. */
typedef void (*TileFn)(const uint8_t *wq, const uint16_t *wd, const ActBuf *a, int t, int n,
                       int g0, int g1, float *ys);
typedef struct {
    int tt;
    TileFn tile;
} TileKernel;
/* Cache budgets of the loop nest (bytes of activations kept in L1 / L2); tests shrink them to
 * run every loop of the nest on small matrices. */
extern size_t tiled_l1_bytes, tiled_l2_bytes;
/* Sets them from the CPU's cache sizes where the C library reports them (once, at the first
 * kernels_init). */
void tiled_detect_caches(void);
void tiled_matmul(const MatView *w, const ActBuf *a, int t0, int nt, float *y, int ldy, int r0,
                  int r1, const TileKernel *k);

/* Float weights: y[t * ldy + i] (+)= row i . token t for i < nr <= rows, t < nt <= toks, rows
 * starting at w0 (rs bytes apart), tokens at x (xs floats apart), over n columns; adds to y
 * when acc is set (column chunks after the first). */
typedef void (*FTileFn)(const uint8_t *w0, size_t rs, int nr, const float *x, size_t xs, int nt,
                        int n, float *y, int ldy, int acc);
typedef struct {
    int rows, toks;
    FTileFn tile;
} FTileKernel;
void tiled_fmat(const MatView *w, const float *x, int t0, int nt, float *y, int ldy, int r0,
                int r1, const FTileKernel *k);

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

/* Geometry of the packed activations of n_tok tokens for kernel table k; returns the bytes
 * they need. */
size_t act_layout(ActBuf *a, const IsaKernels *k, int cols, int n_tok);
/* Points a at buf (act_layout bytes, 64-byte aligned). */
void act_attach(ActBuf *a, uint8_t *buf);
/* Packs tokens [t0, t1) of x ([n_tok][cols]) for table k and weight type wtype (so threads can
 * share the work). */
void act_pack(const ActBuf *a, const IsaKernels *k, uint32_t wtype, const float *x, int t0,
              int t1);

static inline float half_to_float(uint16_t h) { return fp16_to_f32(h); }

#endif
