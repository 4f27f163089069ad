/* Matrices of the super-block types (kernels/kquant.h): the portable kernel and the loop nest
 * that unpacks 16-row panels for the SIMD tiles.
 *
 * The loop nest is kernels/tiled.c's with one step added: outermost, groups of panels; then
 * chunks of super-blocks whose activations for one tile stay in L1; the group's panels are
 * unpacked for the chunk into a per-thread buffer (u bytes in panel order plus two float
 * vectors per block of 32, KPANEL_BYTES); then every activation tile runs against every panel
 * of the group from that buffer. The unpacking is paid once per call and row, whatever the
 * number of tokens; while the tiles run, the rows of the next chunk are prefetched. The
 * activations' side records (kernels/kquant.h) come with the packed activations (act_pack, once
 * per matrix call, shared by all row chunks and threads). */
#include <stdlib.h>
#include <string.h>

#include "kernels/kquant.h"

void kmat_scalar(const MatView *w, const void *act, int t0, int nt, float *y, int ldy, int r0,
                 int r1) {
    const ActBuf *a = act;
    const TypeTraits *ty = &type_table[w->type];
    int nsb = w->cols / QK_K;
    for (int t = t0; t < t0 + nt; t++)
        for (int r = r0; r < r1; r++) y[(size_t)t * ldy + r] = 0;
    for (int r = r0; r < r1; r++) {
        for (int sb = 0; sb < nsb; sb++) {
            uint8_t u[QK_K], tmp[BLOCK_BYTES_MAX];
            float s[16], m[16];
            ty->unpack(matview_kblock(w, r, sb, tmp), u, s, m);
            for (int t = t0; t < t0 + nt; t++) {
                float acc = 0;
                for (int j = 0; j < 8; j++) {
                    const int8_t *q = act_q(a, t, sb * 8 + j);
                    const uint8_t *uj = u + 32 * j;
                    int32_t i0 = 0, i1 = 0, h0 = 0, h1 = 0;
                    for (int i = 0; i < 16; i++) {
                        i0 += uj[i] * q[i], h0 += q[i];
                        i1 += uj[i + 16] * q[i + 16], h1 += q[i + 16];
                    }
                    float v = (s[2 * j] * (float)i0 - m[2 * j] * (float)h0) +
                              (s[2 * j + 1] * (float)i1 - m[2 * j + 1] * (float)h1);
                    acc += act_d(a, t, sb * 8 + j) * v;
                }
                y[(size_t)t * ldy + r] += acc;
            }
        }
    }
}

/* Super-blocks [sb0, sb0 + n) of rows [16 p, 16 p + 16) into n * 8 panel records at out;
 * rows past the matrix are zeros. */
static void unpack_panel(const MatView *w, int p, int sb0, int n, uint8_t *out) {
    const TypeTraits *ty = &type_table[w->type];
    int mode = ty->kmode;
    if (ty->kpanel) { /* stored in panels: every lane is there (padding rows are zeros) */
        kq_unpack_kp(w, p, sb0, n, out);
        return;
    }
    for (int l = 0; l < QR; l++) {
        int r = p * QR + l;
        for (int sb = 0; sb < n; sb++) {
            uint8_t u[QK_K], tmp[BLOCK_BYTES_MAX];
            float s[16], m[16];
            if (r < w->rows) ty->unpack(matview_kblock(w, r, sb0 + sb, tmp), u, s, m);
            else memset(u, 0, sizeof u), memset(s, 0, sizeof s), memset(m, 0, sizeof m);
            for (int j = 0; j < 8; j++) {
                uint8_t *rec = out + (size_t)(sb * 8 + j) * KPANEL_BYTES;
                for (int k = 0; k < QK / 4; k++) memcpy(rec + (k * QR + l) * 4, u + 32 * j + 4 * k, 4);
                float f2 = mode == KMODE_MIN ? m[2 * j] : s[2 * j + 1];
                memcpy(rec + QR * QK + 4 * l, &s[2 * j], 4);
                memcpy(rec + QR * QK + 4 * QR + 4 * l, &f2, 4);
            }
        }
    }
}

void kact_side_rec(const int8_t *q, float d, int32_t s, int kmode, uint8_t *out) {
    if (kmode == KMODE_MIN) {
        float v = d * (float)s;
        memcpy(out, &v, 4);
        memset(out + 4, 0, 4);
    } else {
        int32_t h0 = 0;
        for (int k = 0; k < 16; k++) h0 += q[k];
        int32_t off = kmode == KMODE_OFF128 ? 128 : 32, c[2] = {-off * h0, -off * (s - h0)};
        memcpy(out, c, 8);
    }
}

/* The side records of tiles [j0, j1) (kernels/kquant.h): per tile, block and token 8 bytes. */
static void fill_side(const ActBuf *a, int mode, int j0, int j1, uint8_t *side) {
    int nb = a->nb, tt = a->tt;
    for (int j = j0; j < j1; j++)
        for (int b = 0; b < nb; b++) {
            uint8_t *sr = side + ((size_t)(j - j0) * nb + b) * tt * 8;
            for (int i = 0; i < tt; i++) {
                const int8_t *q = act_q(a, j * tt + i, b);
                int32_t s = 0;
                for (int k = 0; k < QK; k++) s += q[k];
                kact_side_rec(q, act_d(a, j * tt + i, b), s, mode, sr + 8 * i);
            }
        }
}

const uint8_t *kact_side(const ActBuf *a, int kmode, int j0, int j1) {
    if (a->side) return a->side + (size_t)j0 * (size_t)a->nb * (size_t)a->tt * 8;
    uint8_t *side = tiled_scratch((size_t)(j1 - j0) * (size_t)a->nb * (size_t)a->tt * 8);
    fill_side(a, kmode, j0, j1, side);
    return side;
}

/* The weights that the next unpacking will read, prefetched into L2 while the tiles run on the
 * current chunk: the rows of panels [p0, p1) (inside the matrix), super-blocks [sb0, sb0 + n).
 * The unpacking reads 16 rows rs bytes apart, streams the hardware prefetchers do not follow;
 * without this it waited on memory: perf on a Q4_K Phi-3-mini pp128 (1 thread) gave the
 * unpacking 14 % of the time against the tiles' 58 %, with it 9 % against 66 %; a 16384 x 3072
 * Q4_K matmul of 8 tokens 6.7 -> 5.5 ms. Lines [i0, i1) of the chunk's rows x lines: the caller
 * spreads them over its tile calls. */
typedef struct {
    const uint8_t *base; /* row p0 * QR, byte sb0 * bb */
    size_t rs;
    int lpr;   /* lines per row */
    long n;    /* lines in all */
} KPrefetch;

static KPrefetch kprefetch_plan(const MatView *w, int p0, int p1, int sb0, int n) {
    KPrefetch k = {NULL, 0, 0, 0};
    int rows = p1 * QR < w->rows ? p1 * QR : w->rows;
    if (p0 >= p1 || p0 * QR >= rows || n <= 0) return k;
    size_t bb = (size_t)type_table[w->type].block_bytes;
    if (type_table[w->type].kpanel) { /* a K panel type: each panel's run is one "row" here */
        k.base = matview_panel_q(w, p0, sb0);
        k.rs = (size_t)(w->cols / QK_K) * QR * bb;
        k.lpr = (int)(((size_t)n * QR * bb + 63) / 64);
        k.n = (long)(p1 - p0) * k.lpr;
        return k;
    }
    k.base = matview_row(w, p0 * QR) + (size_t)sb0 * bb;
    k.rs = type_row_bytes(w->type, (uint64_t)w->cols);
    k.lpr = (int)(((size_t)n * bb + 63) / 64) + 1;
    k.n = (long)(rows - p0 * QR) * k.lpr;
    return k;
}

static void kprefetch_lines(const KPrefetch *k, long i0, long i1) {
    if (i1 > k->n) i1 = k->n;
    for (long i = i0; i < i1; i++) {
        const uint8_t *p = k->base + (size_t)(i / k->lpr) * k->rs + (size_t)(i % k->lpr) * 64;
#if defined(__x86_64__) || defined(__i386__)
        __asm__ volatile("prefetcht1 %0" : : "m"(*p)); /* GCC drops __builtin_prefetch for the baseline x86-64 */
#else
        __builtin_prefetch(p, 0, 2);
#endif
    }
}

void kmat_tiled(const MatView *w, const ActBuf *a, int t0, int nt, float *y, int ldy, int r0,
                int r1, KTileFn tile, KUnpackFn unpack) {
    kmat_tiled_pairs(w, a, t0, nt, y, ldy, r0, r1, tile, NULL, unpack);
}

void kmat_tiled_pairs(const MatView *w, const ActBuf *a, int t0, int nt, float *y, int ldy, int r0,
                      int r1, KTileFn tile, KTilePairFn pair, KUnpackFn unpack) {
    int nb = a->nb, tt = a->tt, nsb = nb / 8, mode = type_table[w->type].kmode;
    int j0 = t0 / tt, j1 = (t0 + nt + tt - 1) / tt, ntl = j1 - j0;
    /* A chunk's activations for one tile in L1; a group's unpacked chunk in half of L2 (one
     * panel when there is only one tile to reuse it: the buffer then stays in L1). Sized for a
     * full tile whatever the tokens, so that a batch of up to ACT_TT tokens chunks its blocks as
     * one token does (a token's bits alone: isa.h k_exact where the K kernels run this nest). */
    /* Tiles wider than ACT_TT are AMX's (kernels/x86_amx.c): as tiled.c gives them, whole rows
     * up to an eighth of the L2 budget (Q4_K_M pp128, alternated: 102.5 -> 108.6 tok/s). */
    size_t l1 = tt > ACT_TT ? tiled_l2_bytes / 8 : tiled_l1_bytes;
    int bc = (int)(l1 / (8 * (size_t)ACT_TT * (QK + 8)));
    bc = bc < 1 ? 1 : bc > nsb ? nsb : bc;
    if (ntl == 1 && bc > 2) bc = 2;
    size_t pbytes = (size_t)bc * 8 * KPANEL_BYTES;
    int g = ntl == 1 ? 1 : (int)(tiled_l2_bytes / 2 / pbytes);
    g = g < 1 ? 1 : g;
    int p0 = r0 / QR, p1 = (r1 + QR - 1) / QR;
    if (g > p1 - p0) g = p1 - p0;
    if (pair && !tiled_pair_groups(ntl, tt, &g)) pair = NULL;
    size_t side_bytes = a->side ? 0 : (size_t)ntl * (size_t)nb * (size_t)tt * 8;
    uint8_t *buf = tiled_scratch(side_bytes + (size_t)g * pbytes);
    const uint8_t *side = buf;
    if (a->side) side = a->side + (size_t)j0 * (size_t)nb * (size_t)tt * 8;
    else fill_side(a, mode, j0, j1, buf);
    buf += side_bytes;
    for (int pg = p0; pg < p1; pg += g) {
        int pe = pg + g < p1 ? pg + g : p1;
        for (int sb0 = 0; sb0 < nsb; sb0 += bc) {
            int n = nsb - sb0 < bc ? nsb - sb0 : bc;
            for (int p = pg; p < pe; p++) {
                uint8_t *o = buf + (size_t)(p - pg) * pbytes;
                if (unpack && (p + 1) * QR <= w->rows) unpack(w, p, sb0, n, o);
                else unpack_panel(w, p, sb0, n, o);
            }
            /* the next chunk: the same panels' next super-blocks, else the next group's first */
            int nsb0 = sb0 + bc < nsb ? sb0 + bc : 0, npg = sb0 + bc < nsb ? pg : pe;
            int npe = npg + g < p1 ? npg + g : p1;
            KPrefetch pf = kprefetch_plan(w, npg, npe, nsb0, nsb - nsb0 < bc ? nsb - nsb0 : bc);
            long calls = (long)ntl * (pe - pg), per = (pf.n + calls - 1) / calls, done = 0;
            for (int j = j0; j < j1; j++) {
                int tb = j * tt, nj = t0 + nt - tb < tt ? t0 + nt - tb : tt;
                const uint8_t *ar = act_rec(a, j, sb0 * 8);
                const uint8_t *sr = side + ((size_t)(j - j0) * nb + (size_t)sb0 * 8) * tt * 8;
                for (int p = pg; p < pe; p++) {
                    kprefetch_lines(&pf, done, done + per);
                    done += per;
                    int nr = r1 - p * QR < QR ? r1 - p * QR : QR;
                    const uint8_t *pk = buf + (size_t)(p - pg) * pbytes;
                    float *yp = y + (size_t)tb * ldy + (size_t)p * QR;
                    if (pair && p + 1 < pe) {
                        kprefetch_lines(&pf, done, done + per); /* the second panel's share */
                        done += per;
                        int nr1 = r1 - (p + 1) * QR < QR ? r1 - (p + 1) * QR : QR;
                        pair(pk, pk + pbytes, ar, sr, nj, n * 8, yp, ldy, nr1, sb0 > 0, mode);
                        p++;
                        continue;
                    }
                    tile(pk, ar, sr, tt, nj, n * 8, yp, ldy, nr, sb0 > 0, mode);
                }
            }
        }
    }
}

void kmat_dec_groups(const MatView *w, const ActBuf *a, const uint8_t *side, int t0, int nt, float *y, int ldy,
                     int r0, int r1, int gmax, KDecFn dec) {
    const int ng = (nt + gmax - 1) / gmax, G = (nt + ng - 1) / ng;
    const int pb = ng == 1 ? r1 - r0 : QR; /* rows per step: all of them for one group */
    for (int ra = r0; ra < r1; ra += pb) {
        int rb = r1 - ra < pb ? r1 : ra + pb;
        for (int g = t0; g < t0 + nt; g += G)
            dec(w, a, side, g, t0 + nt - g < G ? t0 + nt - g : G, y + (size_t)g * (size_t)ldy, (size_t)ldy, ra, rb);
    }
}

KRowAct *krow_acts(const ActBuf *a, int t0, int nt, int nsb, int form) {
    int q6 = form == KROW_Q6;
    KRowAct *x = aligned_alloc(64, sizeof(KRowAct) * (size_t)(nsb > 0 ? nsb : 1) * (size_t)(nt > 0 ? nt : 1));
    if (!x) return NULL;
    for (int t = 0; t < nt; t++)
        for (int sb = 0; sb < nsb; sb++)
            for (int j = 0; j < 8; j++) {
                KRowAct *r = x + (size_t)t * (size_t)nsb + sb;
                const int8_t *q = act_q(a, t0 + t, sb * 8 + j);
                int32_t h = 0;
                for (int i = 0; i < QK; i++) h += q[i];
                for (int i = 0; i < QK / 4; i++)
                    r->c[8 * j + i] = -32 * (q[4 * i] + q[4 * i + 1] + q[4 * i + 2] + q[4 * i + 3]);
                /* KROW_PAIRED: sub-blocks in the order 0 2 1 3 4 6 5 7 */
                int pos = form == KROW_PAIRED ? (j & 4) | (j & 1) << 1 | (j >> 1 & 1) : j;
                memcpy(r->q + 32 * pos, q, QK);
                float dx = act_d(a, t0 + t, sb * 8 + j);
                if (q6) r->dx[2 * j] = r->dx[2 * j + 1] = dx;
                else r->dx[j] = dx, r->dxh[j] = dx * (float)h;
            }
    return x;
}

KRowAct *krow_act(const ActBuf *a, int nsb, int q6) { return krow_acts(a, 0, 1, nsb, q6 ? KROW_Q6 : KROW_K4); }
