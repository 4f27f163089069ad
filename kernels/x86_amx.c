/* x86-64 AMX-INT8 kernels (Sapphire Rapids and later Xeons): the Q8, Q4, Q4_KP, Q5_KP and IQ4_XS
 * matrices of prompts as tile products. The table (isa_amx, x86_avx512.c) is the AVX-512 VNNI one
 * but for these five entries, which hand calls of one tile of at most ACT_TT tokens (generation,
 * draft batches: the bits matmul_batch_exact and k_exact promise) to the VNNI kernels. Q6_KP (a
 * scale per 16) keeps the VNNI tiles.
 *
 * One tdpbssd multiplies a tile of tokens (A: tt <= 16 rows of a block's 32 int8 quants, the
 * activation record as act_pack writes it, rows 32 bytes apart) by a panel's block (B: 8 rows of
 * 64 bytes, each the 4 bytes [4k, 4k + 4) of the block's 16 weight rows: kernels/blocks.h's panel
 * layout is AMX's "VNNI" layout of B as stored) into C: tt x 16 int32 sums, exact. Every block has
 * its own scales, so each block's C goes to memory and is scaled into the float sums of the
 * token's row as the VNNI tile does, fma(cvt(s), d_w * d_x, f): the same bits for the same block
 * chunks. The AVX-512 tile issues 8 vpdpbusd a block and token; here a block of 16 tokens is one
 * tile op, a tile store and 48 float ops (cvt, mul, FMA per token), which now bound the tile.
 * Q8's panels are read as they are (signed bytes); Q4's are unpacked once per group chunk
 * (tiled_matmul_unpacked) to signed bytes q = nibble - 8, so that no offset sum is needed; the K
 * panel types' records (kernels/kquant.h: unsigned u in the same layout) go to tdpbsud, and their
 * mins to the float step as in the VNNI K tile.
 *
 * Measured (Xeon with AMX, 2.6 GHz VM, 8 Dec 2026): tdpbssd 16 x 16 x 64 every 4.6 ns, with K = 32
 * (one block) the same time; a tile store ~8.5 ns, whatever its rows. */
#include "kernels/x86_zmm.h"
#if defined(__x86_64__)

#ifdef PHI_ZMM_EMU /* tests/zmm_emu.h: the tile instructions in C */
#define ATGT ZTGT
#define T_CONFIG(cfg) amx_emu_config(cfg)
#define T_RELEASE() amx_emu_release()
#define T_LOAD(t, p, stride) amx_emu_load(t, p, stride)
#define T_STORE(t, p, stride) amx_emu_store(t, p, stride)
#define T_ZERO(t) amx_emu_zero(t)
#define T_DPBSSD(c, a, b) amx_emu_dpbssd(c, a, b)
#define T_DPBSUD(c, a, b) amx_emu_dpbsud(c, a, b)
#else
#define ATGT __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c,amx-tile,amx-int8")))
/* GCC 12's _tile_loadconfig names only the first 8 bytes of the configuration as its memory
 * operand, and the stores of the rest were dropped as dead (the tile load then faulted). */
#define T_CONFIG(cfg) __asm__ volatile("ldtilecfg %0" ::"m"(*(cfg)))
#define T_RELEASE() _tile_release()
#define T_LOAD(t, p, stride) _tile_loadd(t, p, stride)
#define T_STORE(t, p, stride) _tile_stored(t, p, stride)
#define T_ZERO(t) _tile_zero(t)
#define T_DPBSSD(c, a, b) _tile_dpbssd(c, a, b)
#define T_DPBSUD(c, a, b) _tile_dpbsud(c, a, b)
#endif
#define AINL static inline __attribute__((always_inline)) ATGT

/* The tile configuration (palette 1): per tile its bytes per row and rows. */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} AmxConfig;

/* Tiles 0, 1: activations (tt rows of 32 bytes); 2, 3: weights (8 rows of 64 bytes); 4, 5: sums
 * (tt rows of 16 int32). Two of each so that consecutive blocks do not wait on one another. */
static ATGT void amx_begin(int tt) {
    AmxConfig c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int i = 0; i < 2; i++) {
        c.rows[i] = (uint8_t)tt, c.colsb[i] = QK;
        c.rows[2 + i] = QK / 4, c.colsb[2 + i] = 64;
        c.rows[4 + i] = (uint8_t)tt, c.colsb[4 + i] = 64;
    }
    T_CONFIG(&c);
}

/* The block loop of both tiles: block bb's tile ops (TOPS(TA, TB, TC, bb): activations, weights,
 * sums, into cs[bb & 3]) two blocks ahead of its float work (FOPS(bb)), through tiles 0, 2, 4
 * and 1, 3, 5 in turn (amx_tile says why). */
#define AMX_SKEWED(TOPS, FOPS, nblocks)                                                            \
    do {                                                                                           \
        if ((nblocks) > 0) TOPS(0, 2, 4, 0);                                                       \
        if ((nblocks) > 1) TOPS(1, 3, 5, 1);                                                       \
        for (int b_ = 0; b_ < (nblocks); b_ += 2) {                                                \
            if (b_ + 2 < (nblocks)) TOPS(0, 2, 4, b_ + 2);                                         \
            FOPS(b_);                                                                              \
            if (b_ + 1 < (nblocks)) {                                                              \
                if (b_ + 3 < (nblocks)) TOPS(1, 3, 5, b_ + 3);                                     \
                FOPS(b_ + 1);                                                                      \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* The sums of tokens i < n (rows l < nr) to y, or added to it (acc). */
AINL void amx_store(const __m512 *f, int n, float *y, int ldy, int nr, int acc) {
    __mmask16 m = (__mmask16)((1u << nr) - 1);
#pragma GCC unroll 16
    for (int i = 0; i < AMX_TT; i++) {
        if (i >= n) break;
        float *yi = y + (size_t)i * ldy;
        _mm512_mask_storeu_ps(yi, m, acc ? _mm512_add_ps(f[i], _mm512_maskz_loadu_ps(m, yi)) : f[i]);
    }
}

/* Block sums c (tt rows of 16 int32, 64 bytes apart) scaled into f, the VNNI tile's way. */
AINL void amx_scale(const int32_t *c, const uint16_t *wd, const float *xd, __m512 *f, int tt) {
    __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)wd));
#pragma GCC unroll 16
    for (int i = 0; i < AMX_TT; i++)
        if (i < tt)
            f[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512((const void *)(c + 16 * i))),
                                   _mm512_mul_ps(dw, _mm512_set1_ps(xd[i])), f[i]);
}

/* Q4 block (4 lines of nibbles) to the signed bytes of a B tile: line k's low nibbles are
 * elements 4k.. of the 16 rows (B row k), its high nibbles elements 16 + 4k.. (B row 4 + k). */
AINL void amx_unpack_block(const uint8_t *wq, uint8_t *out) {
    const __m512i m4 = _mm512_set1_epi8(15), eight = _mm512_set1_epi8(8);
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        __m512i v = _mm512_loadu_si512((const void *)(wq + 64 * k));
        _mm512_store_si512((void *)(out + 64 * k), _mm512_sub_epi8(_mm512_and_si512(v, m4), eight));
        _mm512_store_si512((void *)(out + 256 + 64 * k),
                           _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(v, 4), m4), eight));
    }
}

/* A group's chunk of one panel. (Prefetching it ahead, as the VNNI tiles prefetch their first tile's
 * panel, made no difference: four alternated rounds of pp128, median 134.3 / 133.9 tok/s.) */
static ATGT void amx_unpack_q4(const uint8_t *wq, int n, uint8_t *out) {
    for (int b = 0; b < n; b++, wq += QR * QK / 2, out += QR * QK) amx_unpack_block(wq, out);
}

/* One panel against one tile of tt tokens (TileFn); wq: blocks of 512 signed bytes, from the
 * group's unpacked buffer (mode AMX_UNPACKED) or a Q8 panel in memory (AMX_Q8, prefetched), or
 * Q4 nibbles (AMX_Q4, unpacked block by block: one tile of tokens, nothing to reuse them). Block
 * b's tile ops run two blocks ahead of its float work, through a ring of four sum buffers: the
 * float loads of a block then find its tile store done. A /tmp microbenchmark of this loop (one
 * thread, 96 blocks of 16 x 16 x 32 in cache): 25.7 ns a block with the float work right after
 * the store, 19.6 with it two blocks behind (the tile ops alone 10.1, the float work alone 12.2:
 * the two do not overlap). */
enum { AMX_UNPACKED, AMX_Q8, AMX_Q4 };
AINL void amx_tile(const uint8_t *wq, const uint16_t *wd, const uint8_t *ar, int tt, int n, int nblocks,
                   float *y, int ldy, int nr, int acc, const int mode) {
    const int q4 = mode == AMX_Q4;
    const size_t rec = (size_t)tt * (QK + 8), wstep = q4 ? QR * QK / 2 : QR * QK;
    _Alignas(64) int32_t cs[4][AMX_TT * 16];
    _Alignas(64) uint8_t ub[2][QR * QK];
    __m512 f[AMX_TT];
#pragma GCC unroll 16
    for (int i = 0; i < AMX_TT; i++) f[i] = _mm512_setzero_ps();
#define AMX_TOPS(TA, TB, TC, bb)                                                                   \
    do {                                                                                           \
        const uint8_t *wb_ = wq + (size_t)(bb) * wstep;                                            \
        if (mode != AMX_UNPACKED)                                                                  \
            for (size_t k_ = 0; k_ < wstep; k_ += 64) prefetch_ahead(wb_, PF_AHEAD + k_);          \
        if (q4) amx_unpack_block(wb_, ub[(bb) & 1]), wb_ = ub[(bb) & 1];                           \
        T_LOAD(TA, ar + (size_t)(bb) * rec, QK);                                                   \
        T_LOAD(TB, wb_, 64);                                                                       \
        T_ZERO(TC);                                                                                \
        T_DPBSSD(TC, TA, TB);                                                                      \
        T_STORE(TC, cs[(bb) & 3], 64);                                                             \
    } while (0)
#define AMX_FOPS(bb) amx_scale(cs[(bb) & 3], wd + (size_t)(bb) * QR, \
                               (const float *)(const void *)(ar + (size_t)(bb) * rec + (size_t)tt * QK), f, tt)
    AMX_SKEWED(AMX_TOPS, AMX_FOPS, nblocks);
#undef AMX_TOPS
#undef AMX_FOPS
    amx_store(f, n, y, ldy, nr, acc);
}

/* Full tiles (16 tokens: every tile of a prompt but its last) get their own copy, whose float
 * work has no per-token tests. */
static ATGT void amx_tile_u(const uint8_t *wq, const uint16_t *wd, const uint8_t *ar, int tt, int n,
                            int nblocks, float *y, int ldy, int nr, int acc) {
    if (tt == AMX_TT) amx_tile(wq, wd, ar, AMX_TT, n, nblocks, y, ldy, nr, acc, AMX_UNPACKED);
    else amx_tile(wq, wd, ar, tt, n, nblocks, y, ldy, nr, acc, AMX_UNPACKED);
}

static ATGT void amx_tile_q8(const uint8_t *wq, const uint16_t *wd, const uint8_t *ar, int tt, int n,
                             int nblocks, float *y, int ldy, int nr, int acc) {
    if (tt == AMX_TT) amx_tile(wq, wd, ar, AMX_TT, n, nblocks, y, ldy, nr, acc, AMX_Q8);
    else amx_tile(wq, wd, ar, tt, n, nblocks, y, ldy, nr, acc, AMX_Q8);
}

static ATGT void amx_tile_q4(const uint8_t *wq, const uint16_t *wd, const uint8_t *ar, int tt, int n,
                             int nblocks, float *y, int ldy, int nr, int acc) {
    amx_tile(wq, wd, ar, tt, n, nblocks, y, ldy, nr, acc, AMX_Q4);
}

ATGT void q8_amx(const MatView *w, const void *act, int t0, int nt, float *y, int ldy, int r0, int r1) {
    const ActBuf *a = act;
    if (a->tt <= ACT_TT) {
        q8_zmm(w, act, t0, nt, y, ldy, r0, r1);
        return;
    }
    amx_begin(a->tt);
    tiled_matmul(w, a, t0, nt, y, ldy, r0, r1, amx_tile_q8);
    T_RELEASE();
}

ATGT void q4_amx(const MatView *w, const void *act, int t0, int nt, float *y, int ldy, int r0, int r1) {
    const ActBuf *a = act;
    if (a->tt <= ACT_TT) {
        q4_zmm(w, act, t0, nt, y, ldy, r0, r1);
        return;
    }
    amx_begin(a->tt);
    tiled_matmul_unpacked(w, a, t0, nt, y, ldy, r0, r1, amx_tile_q4, amx_tile_u, amx_unpack_q4, QR * QK);
    T_RELEASE();
}

/* ---- the K panel types of one scale per 32: Q4_KP, Q5_KP (KMODE_MIN), IQ4_XS (KMODE_OFF128) ---- */

/* Block sums c scaled into f as the VNNI K tile does (x86_avx512_k.c ktile_z): f += dx (s . sum) -
 * (dx sum q) m, s and m the record's f1 and f2 (a lane per row), dx sum q the side record's. */
AINL void amx_kscale(const int32_t *c, const uint8_t *pk, const float *xd, const float *xs, __m512 *f, int tt) {
    __m512 f1 = _mm512_load_ps((const void *)(pk + QR * QK)), f2 = _mm512_load_ps((const void *)(pk + QR * QK + 64));
#pragma GCC unroll 16
    for (int i = 0; i < AMX_TT; i++)
        if (i < tt) {
            __m512 t = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_load_si512((const void *)(c + 16 * i))), f1);
            f[i] = _mm512_fmadd_ps(t, _mm512_set1_ps(xd[i]), f[i]);
            f[i] = _mm512_fnmadd_ps(f2, _mm512_set1_ps(xs[2 * i]), f[i]);
        }
}

/* IQ4_XS: u = level + 128 and one scale s for the whole block (f1 = f2), so the block's sum with
 * the side record's offsets (-128 sum q of each half) is the levels' sum: f += dx s (sum + c0 + c1)
 * (the VNNI tile scales the two halves apart: the last bits may differ). */
AINL void amx_kscale_off(const int32_t *c, const uint8_t *pk, const float *xd, const int32_t *sd, __m512 *f, int tt) {
    __m512 f1 = _mm512_load_ps((const void *)(pk + QR * QK));
#pragma GCC unroll 16
    for (int i = 0; i < AMX_TT; i++)
        if (i < tt) {
            __m512i v = _mm512_add_epi32(_mm512_load_si512((const void *)(c + 16 * i)), _mm512_set1_epi32(sd[2 * i] + sd[2 * i + 1]));
            f[i] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(v), f1), _mm512_set1_ps(xd[i]), f[i]);
        }
}

/* One unpacked K panel (records of KPANEL_BYTES: u bytes in the B layout, unsigned, then f1 and
 * f2) against one tile of tt tokens (KTileFn for KMODE_MIN and, off set, KMODE_OFF128): tdpbsud
 * (signed activations, unsigned u) block by block, skewed as amx_tile. */
AINL void amx_ktile_t(const uint8_t *pk, const uint8_t *ar, const uint8_t *side, int tt, int n, int nblocks,
                      float *y, int ldy, int nr, int acc, const int off) {
    const size_t rec = (size_t)tt * (QK + 8), srec = (size_t)tt * 8;
    _Alignas(64) int32_t cs[4][AMX_TT * 16];
    __m512 f[AMX_TT];
#pragma GCC unroll 16
    for (int i = 0; i < AMX_TT; i++) f[i] = _mm512_setzero_ps();
#define AMX_KTOPS(TA, TB, TC, bb)                                                                  \
    do {                                                                                           \
        T_LOAD(TA, ar + (size_t)(bb) * rec, QK);                                                   \
        T_LOAD(TB, pk + (size_t)(bb) * KPANEL_BYTES, 64);                                          \
        T_ZERO(TC);                                                                                \
        T_DPBSUD(TC, TA, TB);                                                                      \
        T_STORE(TC, cs[(bb) & 3], 64);                                                             \
    } while (0)
#define AMX_KFOPS(bb)                                                                              \
    do {                                                                                           \
        const float *xd_ = (const float *)(const void *)(ar + (size_t)(bb) * rec + (size_t)tt * QK); \
        const void *sd_ = side + (size_t)(bb) * srec;                                              \
        if (off) amx_kscale_off(cs[(bb) & 3], pk + (size_t)(bb) * KPANEL_BYTES, xd_, sd_, f, tt);  \
        else amx_kscale(cs[(bb) & 3], pk + (size_t)(bb) * KPANEL_BYTES, xd_, sd_, f, tt);          \
    } while (0)
    AMX_SKEWED(AMX_KTOPS, AMX_KFOPS, nblocks);
#undef AMX_KTOPS
#undef AMX_KFOPS
    amx_store(f, n, y, ldy, nr, acc);
}

/* KMODE_MIN or KMODE_OFF128: the table gives wide tiles to Q4_KP, Q5_KP and IQ4_XS alone (Q6_KP's
 * scales per 16 would need two products of 16 bytes a block) */
static ATGT void amx_ktile(const uint8_t *pk, const uint8_t *ar, const uint8_t *side, int tt, int n, int nblocks,
                           float *y, int ldy, int nr, int acc, int kmode) {
    if (kmode == KMODE_OFF128) {
        if (tt == AMX_TT) amx_ktile_t(pk, ar, side, AMX_TT, n, nblocks, y, ldy, nr, acc, 1);
        else amx_ktile_t(pk, ar, side, tt, n, nblocks, y, ldy, nr, acc, 1);
    } else if (tt == AMX_TT) amx_ktile_t(pk, ar, side, AMX_TT, n, nblocks, y, ldy, nr, acc, 0);
    else amx_ktile_t(pk, ar, side, tt, n, nblocks, y, ldy, nr, acc, 0);
}

ATGT void kp_amx(const MatView *w, const void *act, int t0, int nt, float *y, int ldy, int r0, int r1) {
    const ActBuf *a = act;
    if (a->tt <= ACT_TT) {
        kp_mat_zmm(w, act, t0, nt, y, ldy, r0, r1);
        return;
    }
    amx_begin(a->tt);
    kmat_tiled(w, a, t0, nt, y, ldy, r0, r1, amx_ktile, kp_unpack_zmm(w->type));
    T_RELEASE();
}

/* kernels/peak.c: iters x 4 tdpbssd of 16 x 16 x 64 products into independent sums (their
 * throughput, not their latency), no memory operands but the first loads. */
ATGT int amx_peak(int seed, long iters) {
    _Alignas(64) int8_t src[1024];
    _Alignas(64) int32_t out[256];
    memset(src, seed | 1, sizeof src);
    AmxConfig c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int i = 0; i < 8; i++) c.rows[i] = 16, c.colsb[i] = 64;
    T_CONFIG(&c);
    T_LOAD(0, src, 64);
    T_LOAD(1, src, 64);
    T_LOAD(2, src, 64);
    T_LOAD(3, src, 64);
    T_ZERO(4);
    T_ZERO(5);
    T_ZERO(6);
    T_ZERO(7);
    for (long i = 0; i < iters; i++) {
        T_DPBSSD(4, 0, 2);
        T_DPBSSD(5, 0, 3);
        T_DPBSSD(6, 1, 2);
        T_DPBSSD(7, 1, 3);
    }
    T_STORE(4, out, 64);
    T_RELEASE();
    return out[0]; /* the sums wrap, by design */
}

#endif
