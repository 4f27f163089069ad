/* The cache-blocked loop nest shared by the int8 kernels (weight panels x activation tiles).
 *
 * Outermost first: groups of panels whose weights for one block chunk stay in L2 (with the
 * activations of every tile for that chunk); block chunks whose activations for one tile fit in
 * tiled_l1_bytes; activation tiles; panels. Each tile call unpacks a panel's block once and
 * reuses it from registers for all the tile's tokens (or, tiled_matmul_unpacked, the group's
 * chunk is unpacked once into a buffer that every tile reads); the panels of a group reuse the
 * tile's activations from L1, and the tiles reuse the group's weights from L2. Partial sums are
 * accumulated in y itself (16 floats per token and panel). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "kernels/isa.h"

/* Defaults for a 48 KB L1D / 1 MB L2 core; tiled_detect_caches adapts them. */
size_t tiled_l1_bytes = 20 * 1024, tiled_l2_bytes = 768 * 1024;

void tiled_detect_caches(void) {
#if defined(_SC_LEVEL1_DCACHE_SIZE) && defined(_SC_LEVEL2_CACHE_SIZE)
    long l1 = sysconf(_SC_LEVEL1_DCACHE_SIZE), l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
    /* A tile's activations take ~40% of L1 (the weights streaming through need the rest); the
     * group's weights and activations 3/4 of L2. */
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

int tiled_pairs = 1;

int tiled_pair_groups(int ntl, int tt, int *group) {
    if (ntl == 1 || tt != ACT_TT || !tiled_pairs) return 0;
    if (*group > 2) *group &= ~1;
    return 1;
}

void tiled_matmul(const MatView *w, const ActBuf *a, int t0, int nt, float *y, int ldy, int r0,
                  int r1, TileFn tile) {
    tiled_matmul_pairs(w, a, t0, nt, y, ldy, r0, r1, tile, NULL);
}

/* Per-thread buffers of the loop nests (the unpacked panels here and in kmat.c, kmat.c's side
 * records). Pool workers that end free theirs through the key's destructor; a thread's own buffer
 * also goes with kernels_free_scratch (tiled_free_scratch). */
static _Thread_local uint8_t *tbuf;
static _Thread_local size_t tcap;
static pthread_key_t tbuf_key;
static pthread_once_t tbuf_once = PTHREAD_ONCE_INIT;

static void tbuf_key_init(void) { pthread_key_create(&tbuf_key, free); }

uint8_t *scratch_grow(uint8_t **buf, size_t *cap, size_t n, const char *what) {
    if (n > *cap) {
        size_t c = (n + n / 4 + 63) & ~(size_t)63;
        uint8_t *p = aligned_alloc(64, c);
        if (!p) {
            fprintf(stderr, "phi: out of memory (%zu bytes of %s)\n", c, what);
            abort();
        }
        free(*buf);
        *buf = p;
        *cap = c;
    }
    return *buf;
}

uint8_t *tiled_scratch(size_t n) {
    if (n > tcap) {
        pthread_once(&tbuf_once, tbuf_key_init);
        scratch_grow(&tbuf, &tcap, n, "kernel scratch");
        pthread_setspecific(tbuf_key, tbuf);
    }
    return tbuf;
}

void tiled_free_scratch(void) {
    if (!tbuf) return;
    pthread_setspecific(tbuf_key, NULL);
    free(tbuf);
    tbuf = NULL;
    tcap = 0;
}

static void tiled_nest(const MatView *w, const ActBuf *a, int t0, int nt, float *y, int ldy, int r0, int r1,
                       TileFn tile, TilePairFn pair, TileUnpackFn unpack, size_t ubytes);

void tiled_matmul_pairs(const MatView *w, const ActBuf *a, int t0, int nt, float *y, int ldy, int r0,
                        int r1, TileFn tile, TilePairFn pair) {
    tiled_nest(w, a, t0, nt, y, ldy, r0, r1, tile, pair, NULL, 0);
}

void tiled_matmul_unpacked(const MatView *w, const ActBuf *a, int t0, int nt, float *y, int ldy, int r0,
                           int r1, TileFn tile, TileFn utile, TileUnpackFn unpack, size_t ubytes) {
    int ntl = (t0 + nt + a->tt - 1) / a->tt - t0 / a->tt; /* one tile: nothing would reuse an unpacked panel */
    if (ntl == 1) tiled_nest(w, a, t0, nt, y, ldy, r0, r1, tile, NULL, NULL, 0);
    else tiled_nest(w, a, t0, nt, y, ldy, r0, r1, utile, NULL, unpack, ubytes);
}

static void tiled_nest(const MatView *w, const ActBuf *a, int t0, int nt, float *y, int ldy, int r0, int r1,
                       TileFn tile, TilePairFn pair, TileUnpackFn unpack, size_t ubytes) {
    int nb = a->nb, tt = a->tt;
    size_t pbytes = (unpack ? ubytes : (size_t)QR * (size_t)type_table[w->type].block_bytes) + QR * 2; /* per panel-block */
    int j0 = t0 / tt, j1 = (t0 + nt + tt - 1) / tt;
    /* One tile (at most ACT_TT tokens: decoding, a draft verification, a few parallel streams):
     * every block in one chunk, so that a token's sums run block by block in one chain whatever
     * the tile width, and a token of such a batch gets the bits it gets alone (matmul_batch_exact).
     * Its activations (tt * 40 bytes a block) then come from L2 for wide rows: cheap beside the
     * weights, which stream from memory once per call. */
    /* Tiles wider than ACT_TT are AMX's (x86_amx.c), whose tile loads take the activations from L2
     * as readily as from L1: whole rows in one chunk, up to an eighth of the L2 budget for one
     * tile's (fewer tile calls, longer runs of each panel in the unpack's stream). Phi-3-mini q4, 2
     * threads: pp128 medians 112.8 -> 118.9 tok/s in three alternated rounds; pp512 104.5 ->
     * 114.4 in runs one after the other (the budget set from the environment in a /tmp build). */
    size_t l1 = tt > ACT_TT ? tiled_l2_bytes / 8 : tiled_l1_bytes;
    int bc = a->ntiles == 1 ? nb : balanced_chunk(nb, (int)(l1 / a->rec));
    size_t acts = (size_t)(j1 - j0) * (size_t)bc * a->rec, l2 = tiled_l2_bytes;
    int pg = (int)((l2 > acts + bc * pbytes ? l2 - acts : bc * pbytes) / ((size_t)bc * pbytes));
    int p0 = r0 / QR, p1 = (r1 + QR - 1) / QR;
    if (pair && !tiled_pair_groups(j1 - j0, tt, &pg)) pair = NULL;
    uint8_t *ubuf = unpack ? tiled_scratch((size_t)(pg < p1 - p0 ? pg : p1 - p0) * (size_t)bc * ubytes) : NULL;
    for (int pb = p0; pb < p1; pb += pg) {
        int pe = pb + pg < p1 ? pb + pg : p1;
        for (int b0 = 0; b0 < nb; b0 += bc) {
            int n = nb - b0 < bc ? nb - b0 : bc;
            if (unpack)
                for (int p = pb; p < pe; p++) unpack(matview_panel_q(w, p, b0), n, ubuf + (size_t)(p - pb) * (size_t)bc * ubytes);
            for (int j = j0; j < j1; j++) {
                int tb = j * tt, nj = t0 + nt - tb < tt ? t0 + nt - tb : tt;
                const uint8_t *ar = act_rec(a, j, b0);
                for (int p = pb; p < pe; p++) {
                    int nr = r1 - p * QR < QR ? r1 - p * QR : QR;
                    float *yp = y + (size_t)tb * ldy + (size_t)p * QR;
                    if (pair && p + 1 < pe) {
                        int nr1 = r1 - (p + 1) * QR < QR ? r1 - (p + 1) * QR : QR;
                        pair(matview_panel_q(w, p, b0), matview_panel_d(w, p, b0), matview_panel_q(w, p + 1, b0),
                             matview_panel_d(w, p + 1, b0), ar, nj, n, yp, ldy, nr1, b0 > 0);
                        p++;
                        continue;
                    }
                    const uint8_t *wq = unpack ? ubuf + (size_t)(p - pb) * (size_t)bc * ubytes : matview_panel_q(w, p, b0);
                    tile(wq, matview_panel_d(w, p, b0), ar, tt, nj, n, yp, ldy, nr, b0 > 0);
                }
            }
        }
    }
}

/* Float weights: slabs of tokens whose activations fit in L2 (read from cache for every row
 * block), row blocks of k->rows rows, column chunks whose weights and tile activations fit in
 * L1 (reused by every token tile), token tiles of k->toks. */
void tiled_fmat(const MatView *w, const float *x, int t0, int nt, float *y, int ldy, int r0,
                int r1, const FTileKernel *k) {
    int cols = w->cols;
    size_t xs = (size_t)cols, es = (size_t)type_table[w->type].block_bytes, rs = xs * es; /* block 1 */
    int slab = (int)(tiled_l2_bytes * 3 / 4 / (xs * sizeof(float)));
    slab = slab < k->toks ? k->toks : slab - slab % k->toks;
    int kc = (int)(tiled_l1_bytes / ((size_t)k->rows * es + (size_t)k->toks * sizeof(float)));
    /* Up to ACT_TT tokens: whole rows, so that each (row, token) sum runs in one chain whatever
     * the token count (matmul_batch_exact); past that, chunks reused by every token tile. */
    kc = nt <= ACT_TT ? cols : kc < 16 ? 16 : kc - kc % 16;
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
