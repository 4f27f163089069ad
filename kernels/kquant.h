/* Super-block tensor types: llama.cpp's K-quants Q4_K, Q5_K, Q6_K as phi types (their bytes are
 * ggml's, verbatim: kernels/blocks.h, docs/FORMAT.md), their quantizers, and the machinery their
 * int8 kernels share.
 *
 * Every such type unpacks a block of 256 weights to one form, x_i = s[i/16] * u_i - m[i/16] with
 * u_i unsigned (Q4_K 0..15, Q5_K 0..31, Q6_K 0..63), which is all the kernels need:
 *   KMODE_MIN   (Q4_K, Q5_K): one scale and one min per 32 (s, m equal on both 16-halves);
 *               against an activation block (dx, q[32]): dx * (s * sum u q - m * sum q);
 *   KMODE_OFF32 (Q6_K): a scale per 16 and m = 32 s, i.e. x = s * (u - 32):
 *               dx * (s0 * (sum_h0 u q - 32 sum_h0 q) + s1 * (sum_h1 u q - 32 sum_h1 q)).
 *
 * The fast kernels unpack 16 rows at a time into a panel (KPANEL_BYTES per block of 32: the u
 * bytes in the Q8 panel order of kernels/blocks.h, lane l = row l, then 16 floats f1 and 16
 * floats f2: KMODE_MIN s and m, KMODE_OFF32 s of the first and of the second 16) and run an
 * ISA's KTileFn over panels x activation tiles; the activations get a side record per token and
 * block (KMODE_MIN: float dx * sum q; KMODE_OFF32: int32 -32 sum_h0 q, -32 sum_h1 q), written
 * by act_pack into the ActBuf's side area (kernels/isa.h). */
#ifndef PHI_KQUANT_H
#define PHI_KQUANT_H

#include <stdint.h>
#include <string.h>

#include "kernels/isa.h"

#define QK_K 256
/* KMODE_OFF128 (IQ4_XS): u = level + 128, s per 32 (on both 16s), m = 128 s: the KMODE_OFF32
 * form with side records of -128 sum_h q; a kernel whose products must stay in 16 bits (vpmaddubsw,
 * NEON's smull) flips u back to the signed level (u ^ 0x80) and starts its sums from 0 instead. */
enum { KMODE_MIN = 0, KMODE_OFF32 = 1, KMODE_OFF128 = 2 };
#define KPANEL_BYTES (QR * QK + 2 * QR * 4) /* 640: u bytes, f1[16], f2[16] */

/* The type rows' functions (kernels/blocks.c's type_table). */
void kq_to_float_q4_k(const void *q, const uint16_t *d, float *y, int n);
void kq_to_float_q5_k(const void *q, const uint16_t *d, float *y, int n);
void kq_to_float_q6_k(const void *q, const uint16_t *d, float *y, int n);
void kq_from_float_q4_k(const float *x, void *q, uint16_t *d, int n);
void kq_from_float_q5_k(const float *x, void *q, uint16_t *d, int n);
void kq_from_float_q6_k(const float *x, void *q, uint16_t *d, int n);
void kq_from_float_q4_k_w(const float *x, void *q, uint16_t *d, int n, const float *w);
void kq_from_float_q5_k_w(const float *x, void *q, uint16_t *d, int n, const float *w);
void kq_from_float_q6_k_w(const float *x, void *q, uint16_t *d, int n, const float *w);
double kq_dot_ref_q4_k(const void *q, const float *x, int n);
double kq_dot_ref_q5_k(const void *q, const float *x, int n);
double kq_dot_ref_q6_k(const void *q, const float *x, int n);
void kq_unpack_q4_k(const uint8_t *blk, uint8_t *u, float *s, float *m);
void kq_unpack_q5_k(const uint8_t *blk, uint8_t *u, float *s, float *m);
void kq_unpack_q6_k(const uint8_t *blk, uint8_t *u, float *s, float *m);
/* Q6_KP rows: Q6_K blocks each padded with 2 zero bytes to 212 (kernels/blocks.h). */
void kq_to_float_q6_kp(const void *q, const uint16_t *d, float *y, int n);
void kq_from_float_q6_kp(const float *x, void *q, uint16_t *d, int n);
void kq_from_float_q6_kp_w(const float *x, void *q, uint16_t *d, int n, const float *w);
double kq_dot_ref_q6_kp(const void *q, const float *x, int n);
/* IQ4_XS (stored in panels only, kernels/blocks.h). */
void kq_to_float_iq4_xs(const void *q, const uint16_t *d, float *y, int n);
void kq_from_float_iq4_xs(const float *x, void *q, uint16_t *d, int n);
void kq_from_float_iq4_xs_w(const float *x, void *q, uint16_t *d, int n, const float *w);
double kq_dot_ref_iq4_xs(const void *q, const float *x, int n);
void kq_unpack_iq4_xs(const uint8_t *blk, uint8_t *u, float *s, float *m);
/* One block of 256 values of type (TENSOR_Q4_K, Q5_K, Q6_K, IQ4_XS) with importances w (NULL:
 * all 1), the scale search on one fit per candidate (simd 0: the reference) or on SIMD lanes up
 * to AVX2 (1) or AVX-512 (2, what the kq_from_float_* use) where the CPU has them: the same bytes
 * at every level.
 * Returns the block's bytes (0: not one of these types). For tests. */
int kq_quantize_block(uint32_t type, const float *x, const float *w, int simd, uint8_t *blk);
/* The scales d (ls_j - 32) of sub-block j of the 16 rows of one IQ4_XS panel unit at src. */
void kq_iq4_xs_scales(const uint8_t *src, float sc[QR][8]);
/* GGUF blocks of types phi has no layout for, re-coded losslessly (every value the same):
 * one IQ4_NL block (18 bytes) as a q8 block (q[32], d), one Q3_K block (110 bytes) as Q6_K (210). */
void kq_q8_from_iq4_nl(const uint8_t *blk, int8_t *q, uint16_t *d);
void kq_q6_k_from_q3_k(const uint8_t *q3, uint8_t *q6);

/* The 6-bit scales (byte j of *sc: sub-block j) and mins (*mn) of one Q4_K / Q5_K super-block at
 * blk (d, dmin, then 12 bytes): sub-blocks 0..3 are the low 6 bits of bytes 0..3 (scales) and
 * 4..7 (mins); 4..7 the low (scales) / high (mins) nibbles of bytes 8..11, bits 4-5 from the top
 * of bytes 0..7. Little-endian words (the x86 row kernels). */
static inline void kq_k4_scale_words(const uint8_t *blk, uint64_t *sc, uint64_t *mn) {
    uint32_t A, B, C;
    memcpy(&A, blk + 4, 4), memcpy(&B, blk + 8, 4), memcpy(&C, blk + 12, 4);
    *sc = (A & 0x3f3f3f3fu) | (uint64_t)((C & 0x0f0f0f0fu) | ((A >> 2) & 0x30303030u)) << 32;
    *mn = (B & 0x3f3f3f3fu) | (uint64_t)(((C >> 4) & 0x0f0f0f0fu) | ((B >> 2) & 0x30303030u)) << 32;
}

/* The scales s and offsets m of one block (as unpack gives them), without its weights. */
void kq_block_scales(uint32_t type, const uint8_t *blk, float *s, float *m);
/* Writes the unpacked panel records of super-blocks [sb0, sb0 + n) of panel p (rows 16p ..
 * 16p + 15, all inside the matrix) to out: an ISA's faster equivalent of the portable
 * unpacking for the matrix's type (a K panel type's or a row type's), or NULL. */
typedef void (*KUnpackFn)(const MatView *w, int p, int sb0, int n, uint8_t *out);
/* Q4_KP, Q5_KP, Q6_KP, IQ4_XS (the K panel types, kernels/blocks.h): their panels straight into the records
 * with whole-word masks and shifts (the portable unpacking of any of their panels). */
void kq_unpack_kp(const MatView *w, int p, int sb0, int n, uint8_t *out);
/* The record scales (f[j][0] = f1, f[j][1] = f2, a lane per row) of sub-blocks 0..7 of one Q4_KP,
 * Q5_KP or Q6_KP panel unit src, as kq_unpack_kp writes them (for an ISA's unpacking). */
void kq_kp_record_scales(uint32_t type, const uint8_t *src, float f[8][2][QR]);

/* One unpacked panel (pk: nblocks records of KPANEL_BYTES) against one activation tile (ar: its
 * records, as TileFn; side: tt side records of 8 bytes per block), over nblocks blocks of 32:
 * y[i * ldy + l] = (acc ? y[i * ldy + l] : 0) + lane l . token i for i < n, l < nr. */
typedef void (*KTileFn)(const uint8_t *pk, const uint8_t *ar, const uint8_t *side, int tt, int n,
                        int nblocks, float *y, int ldy, int nr, int acc, int kmode);
/* Two adjacent unpacked panels (pk0: QR rows, pk1: the next nr1, outputs at y + QR) against one
 * full tile (tt = ACT_TT): what two KTileFn calls give, with the same bits (as TilePairFn). */
typedef void (*KTilePairFn)(const uint8_t *pk0, const uint8_t *pk1, const uint8_t *ar, const uint8_t *side,
                            int n, int nblocks, float *y, int ldy, int nr1, int acc, int kmode);
/* The loop nest of a super-block type's matrix (a MatFn with the ISA's tile); the _pairs form
 * runs pairs of panels through `pair` where there are several tiles (and tiled_pairs is set). */
void kmat_tiled(const MatView *w, const ActBuf *a, int t0, int nt, float *y, int ldy, int r0,
                int r1, KTileFn tile, KUnpackFn unpack);
void kmat_tiled_pairs(const MatView *w, const ActBuf *a, int t0, int nt, float *y, int ldy, int r0,
                      int r1, KTileFn tile, KTilePairFn pair, KUnpackFn unpack);
/* One token's side record of one block (q its 32 quants, d their scale, s their sum) for kmode,
 * 8 bytes at out. act_pack writes them to the ActBuf's side area (kernels/isa.h). */
void kact_side_rec(const int8_t *q, float d, int32_t s, int kmode, uint8_t *out);
/* The side records of activation tiles [j0, j1) for kmode: the ActBuf's side area where it has
 * one, else made in the thread's scratch (tiled_scratch), which the next loop nest reuses. */
const uint8_t *kact_side(const ActBuf *a, int kmode, int j0, int j1);
/* A K panel type's decoder for a few tokens (generation, parallel streams, drafts): tokens
 * [t0, t0 + nt) of a, nt at most its group size, against rows [r0, r1), without unpacking to records;
 * side: the tokens' side records (kact_side, NULL where the type takes none); y[t * ldy + row]. */
typedef void (*KDecFn)(const MatView *w, const ActBuf *a, const uint8_t *side, int t0, int nt, float *y,
                       size_t ldy, int r0, int r1);
/* Tokens [t0, t0 + nt) through dec in groups of at most gmax, as even as they go (5 = 3 + 2: one
 * token alone runs at about half the rate of 3 or 4). With several groups, panel by panel: the later
 * groups read the panel (16 rows, 73 KB of Q4_KP at 8192 columns) from L2 while the first streamed
 * it from memory, where whole passes would read the matrix once per group. */
void kmat_dec_groups(const MatView *w, const ActBuf *a, const uint8_t *side, int t0, int nt, float *y, int ldy,
                     int r0, int r1, int gmax, KDecFn dec);
/* The portable kernel: row by row, block by block from the type's unpack (the scalar table's
 * kernel and the integer oracle of the tiles). */
void kmat_scalar(const MatView *w, const void *act, int t0, int nt, float *y, int ldy, int r0,
                 int r1);

/* Generation's row-by-row kernels: the one token's side of a super-block, made once per call. */
typedef struct {
    int8_t q[QK_K];
    int32_t c[QK_K / 4];  /* Q6_K: -32 * the sum of each 4 of q */
    float dx[16], dxh[8]; /* dx per 32 (Q6_K: per 16, each twice); Q4_K/Q5_K: dx * sum of the 32 q */
    float pad[8];
} KRowAct;
/* Token 0's records for nsb super-blocks (q6: the Q6_K form) in a 64-byte aligned buffer the
 * caller frees, or NULL when out of memory (the caller then takes its panel path). */
KRowAct *krow_act(const ActBuf *a, int nsb, int q6);
/* The same for tokens [t0, t0 + nt) in the form a kernel wants: token t's nsb records start at
 * x + (t - t0) * nsb. KROW_PAIRED is KROW_K4 with the 8 sub-blocks' quants in the order
 * 0 2 1 3 4 6 5 7, the order of the low and high nibbles of two 64-byte loads of Q4_K quants. */
enum { KROW_K4, KROW_Q6, KROW_PAIRED };
KRowAct *krow_acts(const ActBuf *a, int t0, int nt, int nsb, int form);

#endif
