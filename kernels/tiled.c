/* The cache-blocked loop nest shared by the x86 int8 kernels (grouped activation layout).
 *
 * Outermost first: slabs of TS tokens (the partial-sum buffer); column super-chunks whose
 * activations for the whole slab fit in tiled_l2_bytes, so they stay in L2 while every row streams
 * by; blocks of RB rows; column chunks whose activations for one tile fit in tiled_l1_bytes; tiles of
 * k->tt tokens; rows. Each tile call unpacks one row's weights once per group and reuses them
 * from registers for all its tokens; the RB rows of a block reuse the tile's activations from
 * L1. Partial sums go to a small row-major buffer, written out token-major so every line of y is
 * written whole, once (row order would revisit tn lines 4 KB apart, which alias in L1). */
#include <unistd.h>

#include "kernels/isa.h"

#ifndef TILED_RB
#define TILED_RB 16 /* rows per block */
#endif
#define TS 128 /* tokens per slab */
/* Defaults for a 48 KB L1D / 1 MB L2 core; tiled_detect_caches adapts them. */
size_t tiled_l1_bytes = 20 * 1024, tiled_l2_bytes = 768 * 1024;

void tiled_detect_caches(void) {
#if defined(_SC_LEVEL1_DCACHE_SIZE) && defined(_SC_LEVEL2_CACHE_SIZE)
    long l1 = sysconf(_SC_LEVEL1_DCACHE_SIZE), l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
    /* A tile's activations take ~40% of L1 (its weights and partial sums need the rest); a
     * super-chunk's activations 3/4 of L2 (measured best on a 1 MB L2). */
    if (l1 >= 16 * 1024 && l1 <= 1024 * 1024) tiled_l1_bytes = (size_t)l1 * 5 / 12;
    if (l2 >= 128 * 1024 && l2 <= 64 * 1024 * 1024) tiled_l2_bytes = (size_t)l2 * 3 / 4;
#endif
}

/* Splits n into ceil(n / max) nearly equal chunks; returns their size (at least 1). */
static int balanced_chunk(int n, int max) {
    if (max < 1) max = 1;
    if (n <= max) return n > 0 ? n : 1;
    int k = (n + max - 1) / max;
    return (n + k - 1) / k;
}

/* Lines [a, b) of the weights of groups [g0, g1) of row r (quants, then scales), into cache
 * ahead of use: row panels are strided, which hardware prefetchers follow poorly, and spreading
 * a panel's prefetches over the tiles of the current one keeps few misses in flight at once. */
static inline void prefetch_lines(const MatView *w, size_t rbytes, size_t gbytes, int gb, int r,
                                  int g0, size_t qlines, size_t a, size_t b) {
    const uint8_t *q = w->q + (size_t)r * rbytes + (size_t)g0 * gbytes;
    const uint8_t *d = (const uint8_t *)(w->d + (size_t)r * (size_t)(w->cols / QK) + (size_t)g0 * gb);
    for (size_t i = a; i < b; i++) __builtin_prefetch(i < qlines ? q + 64 * i : d + 64 * (i - qlines), 0, 2);
}

void tiled_matmul(const MatView *w, const ActBuf *a, int t0, int nt, float *y, int ldy, int r0,
                  int r1, const TileKernel *k) {
    size_t rbytes = (size_t)type_row_bytes(w->type, (uint64_t)w->cols);
    size_t gbytes = (size_t)a->gb * (w->type == TENSOR_Q4 ? QK / 2 : QK);
    int nb = w->cols / QK, ng = a->ng, tt = k->tt;
    float ybuf[TILED_RB * TS];
    for (int ts = t0; ts < t0 + nt; ts += TS) {
        int tn = t0 + nt - ts < TS ? t0 + nt - ts : TS;
        int sg = balanced_chunk(ng, (int)(tiled_l2_bytes / ((size_t)tn * a->rec)));
        int gchunk = tn >= tt ? balanced_chunk(sg, (int)(tiled_l1_bytes / ((size_t)tt * a->rec))) : sg;
        for (int s0 = 0; s0 < ng || s0 == 0; s0 += sg) {
            int s1 = s0 + sg < ng ? s0 + sg : ng;
            for (int rb = r0; rb < r1; rb += TILED_RB) {
                int re = rb + TILED_RB < r1 ? rb + TILED_RB : r1;
                for (int i = 0; i < (re - rb) * TS; i++) ybuf[i] = 0;
                for (int g0 = s0; g0 < s1; g0 += gchunk) {
                    int g1 = g0 + gchunk < s1 ? g0 + gchunk : s1;
                    /* The panel read next: same rows and the next chunk, or the next rows. */
                    int pr = g1 < s1 ? rb : re, pg0 = g1 < s1 ? g1 : s0;
                    int pg1 = pg0 + gchunk < s1 ? pg0 + gchunk : s1;
                    size_t ntiles = (size_t)(tn + tt - 1) / tt;
                    size_t qlines = ((size_t)(pg1 - pg0) * gbytes + 63) / 64;
                    size_t lines = qlines + ((size_t)(pg1 - pg0) * a->gb * 2 + 63) / 64;
                    for (int t = ts; t < ts + tn; t += tt) {
                        int n = ts + tn - t < tt ? ts + tn - t : tt;
                        size_t ti = (size_t)(t - ts) / tt;
                        size_t la = lines * ti / ntiles, lb = lines * (ti + 1) / ntiles;
                        for (int r = rb; r < re; r++) {
                            if (pr + (r - rb) < r1)
                                prefetch_lines(w, rbytes, gbytes, a->gb, pr + (r - rb), pg0, qlines, la, lb);
                            k->tile(w->q + (size_t)r * rbytes, w->d + (size_t)r * nb, a, t, n, g0, g1,
                                    ybuf + (r - rb) * TS + (t - ts));
                        }
                    }
                }
                if (s1 == ng && a->ntail)
                    for (int r = rb; r < re; r++)
                        for (int t = ts; t < ts + tn; t++)
                            ybuf[(r - rb) * TS + (t - ts)] += tail_dot(w, a, t, r);
                for (int t = ts; t < ts + tn; t++) {
                    float *yt = y + (size_t)t * ldy;
                    for (int r = rb; r < re; r++)
                        yt[r] = ybuf[(r - rb) * TS + (t - ts)] + (s0 > 0 ? yt[r] : 0.0f);
                }
            }
            if (ng == 0) break;
        }
    }
}

/* Float weights: slabs of tokens whose activations fit in L2 (read from cache for every row
 * block), row blocks of k->rows rows, column chunks whose weights and tile activations fit in
 * L1 (reused by every token tile), token tiles of k->toks. */
void tiled_fmat(const MatView *w, const float *x, int t0, int nt, float *y, int ldy, int r0,
                int r1, const FTileKernel *k) {
    int f16 = w->type == TENSOR_F16, cols = w->cols;
    size_t xs = (size_t)cols, es = f16 ? 2 : 4, rs = xs * es;
    int slab = (int)(tiled_l2_bytes * 3 / 4 / (xs * sizeof(float)));
    slab = slab < k->toks ? k->toks : slab - slab % k->toks;
    int kc = (int)(tiled_l1_bytes / ((size_t)k->rows * es + (size_t)k->toks * sizeof(float)));
    kc = nt <= k->toks ? cols : kc < 16 ? 16 : kc - kc % 16; /* one tile: nothing to reuse */
    for (int ts = t0; ts < t0 + nt; ts += slab) {
        int te = ts + slab < t0 + nt ? ts + slab : t0 + nt;
        for (int r = r0; r < r1; r += k->rows) {
            int nr = r1 - r < k->rows ? r1 - r : k->rows;
            for (int c0 = 0; c0 < cols; c0 += kc) {
                int n = cols - c0 < kc ? cols - c0 : kc;
                for (int t = ts; t < te; t += k->toks) {
                    int m = te - t < k->toks ? te - t : k->toks;
                    k->tile(w->q + (size_t)r * rs + (size_t)c0 * es, rs, nr, x + (size_t)t * xs + c0, xs,
                            m, n, y + (size_t)t * ldy + r, ldy, c0 > 0);
                }
            }
        }
    }
}
