/* Internal to the fast kernels: the per-ISA kernel table and the packed activation buffer that
 * matvec/matmul hand to the int8 kernels.
 *
 * Packed activations: tokens in tiles of tt = min(n_tok, ACT_TT, or the table's act_tt) (the last tile padded with
 * copies of the last token, whose results are never stored), and for tile j and block b one record of rec = tt * 40 bytes at
 * base + (j * nb + b) * rec:
 *   q int8[tt][32]  token i's quants of block b (quantize_act_q8's values, natural order);
 *   d f32[tt]       their scales;
 *   c int32[tt]     -K * (sum of the token's q in block b), where K is the offset the ISA's
 *                   kernels add to the weights to make them unsigned for their instructions
 *                   (8 for Q4 nibbles used as stored, 128 for Q8 with x86 VNNI, 0 if none):
 *                   integer sums start from c, which removes the offset.
 * A kernel walks a tile's blocks with one pointer and constant offsets, and with the weight
 * panels (kernels/blocks.h) a lane per row: the activations are broadcast 4 bytes at a time.
 * For the super-block weight types a side area follows (side, NULL otherwise): per tile j, block
 * b and token i, 8 bytes at side + ((j * nb + b) * tt + i) * 8 (kernels/kquant.h says what),
 * written by act_pack with the records, once per matrix call: the row chunks and threads of a
 * call all read it (made per row chunk instead, it cost 1 ms of a 23 ms 3072 x 8192 Q4_K matmul
 * of 128 tokens, and 8 of 90 at 512). */
#ifndef PHI_ISA_H
#define PHI_ISA_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/blocks.h"
#include "kernels/kernels.h"

#define ACT_TT 8 /* tokens per activation tile */
#define AMX_TT 16 /* the AMX table's (an AMX tile's rows) */

typedef struct {
    int cols, nb, n_tok;
    int tt, ntiles; /* tokens per tile, tiles */
    size_t rec;     /* bytes of a (tile, block) record: tt * 40 */
    uint8_t *base;
    size_t side_off; /* offset of the side area from base; 0: none */
    uint8_t *side;   /* the side area (NULL: none) */
} ActBuf;

static inline const uint8_t *act_rec(const ActBuf *a, int tile, int b) {
    return a->base + ((size_t)tile * (size_t)a->nb + (size_t)b) * a->rec;
}
/* Token t's quants, scale and offset sum in block b. */
static inline const int8_t *act_q(const ActBuf *a, int t, int b) {
    return (const int8_t *)act_rec(a, t / a->tt, b) + (t % a->tt) * QK;
}
static inline float act_d(const ActBuf *a, int t, int b) {
    return ((const float *)(act_rec(a, t / a->tt, b) + (size_t)a->tt * QK))[t % a->tt];
}
static inline int32_t act_c(const ActBuf *a, int t, int b) {
    return ((const int32_t *)(act_rec(a, t / a->tt, b) + (size_t)a->tt * (QK + 4)))[t % a->tt];
}

/* Quantizes nblocks blocks of 32: q, d as quantize_act_q8, s[b] = sum of block b's q. */
typedef void (*QuantBlocksFn)(const float *x, int8_t *q, float *d, int32_t *s, int nblocks);
/* y[t * ldy + r] = row r of W . token t, for t in [t0, t0 + nt), r in [r0, r1). act is what the
 * weight type's act format says (kernels/blocks.h): for ACT_Q8 the packed activations (const
 * ActBuf *), for ACT_F32 the float activations x[n_tok][cols] (const float *). */
typedef void (*MatFn)(const MatView *w, const void *act, int t0, int nt, float *y, int ldy,
                      int r0, int r1);

/* One ISA's kernels. NULL entries fall back to isa_scalar's. */
typedef struct {
    const char *name;
    int (*available)(void);
    QuantBlocksFn quant;
    MatFn mat[TENSOR_TYPE_COUNT];    /* by weight type */
    int k_off[TENSOR_TYPE_COUNT];    /* ACT_Q8 types: weight offset K for the c sums (above) */
    /* ACT_Q8 types: tokens per activation tile (at most AMX_TT; 0: ACT_TT); a table whose tiles
     * are wider than ACT_TT hands calls of at most ACT_TT tokens (one tile) to ACT_TT kernels */
    int act_tt[TENSOR_TYPE_COUNT];
    /* the K panel types (type_table kpanel: Q4_KP, Q5_KP, Q6_KP, IQ4_XS): batches of up to this
     * many tokens give each token the bits it gets alone (kernels.h matmul_batch_exact; checked by
     * tests/test_batch_exact.c); 0 where not claimed */
    int k_exact;
    int pairs; /* 1: prompts run two panels per call (TilePairFn, KTilePairFn; tiled_pairs chooses) */
    void (*rmsnorm)(float *out, const float *x, const float *weight, int n, float eps);
    void (*softmax)(float *x, int n);
    void (*silu_mul)(float *gate, const float *up, int n);
    AttnKernels attn; /* dot, axpy, to_f16 NULL: scalar's; scores, wsum NULL: see AttnKernels */
} IsaKernels;

/* The selected ISA's table (kernels_init; tests ask it what the ISA does). */
const IsaKernels *kernels_isa(void);

/* The tables (defined by the architecture's files; NULL entries fall back to scalar). */
extern const IsaKernels isa_scalar;
/* The scalar matrix kernels, by activation format: every type, through its type_table row. */
extern const MatFn scalar_mat[2];
#if defined(__x86_64__)
extern const IsaKernels isa_avx2, isa_avxvnni, isa_avx512vnni, isa_amx;
#endif
#if defined(__aarch64__)
extern const IsaKernels isa_neon, isa_dotprod;
#elif defined(__arm__)
extern const IsaKernels isa_neon; /* ARMv7 NEON + VFPv4 (kernels/arm_neon.c) */
#endif

/* One weight panel against one activation tile, over nblocks blocks: wq, wd point at the
 * panel's first block (advancing QR * block bytes and QR scales per block), ar at the tile's
 * record of that block (advancing rec = tt * 40 bytes). For tokens i < n (n <= tt) and lanes
 * l < nr (nr <= QR): y[i * ldy + l] = (acc ? y[i * ldy + l] : 0) + lane l . token i. */
typedef void (*TileFn)(const uint8_t *wq, const uint16_t *wd, const uint8_t *ar, int tt, int n,
                       int nblocks, float *y, int ldy, int nr, int acc);
/* Two adjacent panels (wq0/wd0: QR rows; wq1/wd1: the next nr1 rows, y + QR their outputs)
 * against one full tile (tt = ACT_TT), as two TileFn calls would compute them and with the same
 * bits: each activation broadcast feeds both panels, halving the loads that bound the int8 tile
 * (kernels/x86_avx512.c says by how much). */
typedef void (*TilePairFn)(const uint8_t *wq0, const uint16_t *wd0, const uint8_t *wq1, const uint16_t *wd1,
                           const uint8_t *ar, int n, int nblocks, float *y, int ldy, int nr1, int acc);
/* Cache budgets of the loop nest (bytes of activations kept in L1 / of weights and
 * activations kept in L2); tests shrink them to run every loop of the nest on small matrices. */
extern size_t tiled_l1_bytes, tiled_l2_bytes;
/* Sets them from the CPU's cache sizes where the C library reports them (once, at the first
 * kernels_init). */
void tiled_detect_caches(void);
/* Rows [r0, r1) (r0 a multiple of QR) for tokens [t0, t0 + nt) (t0 a multiple of a->tt). */
void tiled_matmul(const MatView *w, const ActBuf *a, int t0, int nt, float *y, int ldy, int r0,
                  int r1, TileFn tile);
/* The same with pairs of panels through `pair` wherever there are several tiles (prompts; the
 * weights then come from L2) and tiled_pairs is set (tests clear it to compare the two paths). */
void tiled_matmul_pairs(const MatView *w, const ActBuf *a, int t0, int nt, float *y, int ldy, int r0,
                        int r1, TileFn tile, TilePairFn pair);
extern int tiled_pairs;
/* Unpacks n consecutive blocks of one panel (wq: the first's weights) to out, ubytes per block, in
 * the form a TileFn of the ISA reads (its wq then advances ubytes per block; wd is the panel's own). */
typedef void (*TileUnpackFn)(const uint8_t *wq, int n, uint8_t *out);
/* tiled_matmul where the call has several tiles to reuse the weights: each group's chunk of panels
 * unpacked once into a per-thread buffer (tiled_scratch), which the tiles read through utile
 * (x86_ymm_int8.h: AVX2 Q4's nibbles as bytes); one tile reads the panels through `tile`. */
void tiled_matmul_unpacked(const MatView *w, const ActBuf *a, int t0, int nt, float *y, int ldy, int r0,
                           int r1, TileFn tile, TileFn utile, TileUnpackFn unpack, size_t ubytes);
/* The calling thread's scratch of at least n bytes (64-aligned; reused by the next call: the loop
 * nests' unpacked panels and side records), and its release (kernels_free_scratch calls it). */
uint8_t *tiled_scratch(size_t n);
void tiled_free_scratch(void);
/* *buf (of *cap bytes) grown to at least n: 64-aligned, a quarter more than asked, the old contents
 * dropped. tiled_scratch's buffer and dispatch.c's activations (two buffers: a matmul reads its
 * activations while its nest fills the other) both grow through it. Out of memory ends the process
 * with a line that names `what`. */
uint8_t *scratch_grow(uint8_t **buf, size_t *cap, size_t n, const char *what);
/* Whether a matmul of ntl activation tiles of tt tokens runs its panels in pairs (several full tiles
 * to reuse the pair's L2-resident weights, and tiled_pairs set); if so, its group of *group panels
 * becomes whole pairs (a lone panel runs the slower one-panel tile). tiled.c and kmat.c ask it. */
int tiled_pair_groups(int ntl, int tt, int *group);

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
int cpu_has_amx(void);        /* and AMX-TILE + AMX-INT8, the OS lets this process use the tiles */
#endif
#if defined(__aarch64__)
int cpu_has_dotprod(void);
#elif defined(__arm__)
int cpu_has_neon(void); /* NEON, VFPv4 and the float16 conversions */
#endif

#if defined(__x86_64__)
/* kernels/peak.c's AMX loop (x86_amx.c): iters x 4 tdpbssd of 16 x 16 x 64 products. */
int amx_peak(int seed, long iters);
/* AVX2 pieces the other x86 tables reuse (x86_avx2.c). */
void quant_blocks_avx2(const float *x, int8_t *q, float *d, int32_t *s, int nblocks);
void rmsnorm_avx2(float *out, const float *x, const float *weight, int n, float eps);
void softmax_avx2(float *x, int n);
void silu_mul_avx2(float *gate, const float *up, int n);
float dot_f32_avx2(const float *k, const float *q, int n);
void axpy_f32_avx2(float *y, float a, const float *v, int n);
void to_f16_avx2(const float *x, uint16_t *y, int n);
#endif

/* Scalar pieces shared by the SIMD files. */
void quant_blocks_scalar(const float *x, int8_t *q, float *d, int32_t *s, int nblocks);

/* Geometry of the packed activations of n_tok tokens in tiles of at most tt_max tokens (the
 * table's act_tt for the weight type: only it and act_pack's K differ between tables), with a
 * side area when side is set (the super-block weight types); returns the bytes they need. */
size_t act_layout(ActBuf *a, int cols, int n_tok, int tt_max, int side);
/* Points a at buf (act_layout bytes, 64-byte aligned). */
void act_attach(ActBuf *a, uint8_t *buf);
/* Packs tokens [t0, t1) of x ([n_tok][cols]) for table k and weight type wtype (so threads can
 * share the work); t0 and t1 multiples of a->tt (or t1 = n_tok): a tile's padding tokens are
 * written with the tile's last token. */
void act_pack(const ActBuf *a, const IsaKernels *k, uint32_t wtype, const float *x, int t0,
              int t1);

#endif
