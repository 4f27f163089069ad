/* A tiny GGUF writer for tests and fuzz seeds: builds small, valid GGUF v3 images in memory and
 * records where each field went, so that a test can corrupt exactly one field. */
#ifndef PHI_GGUF_WRITE_H
#define PHI_GGUF_WRITE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t *b;
    size_t n, cap;
} GwBuf;

static void gw_bytes(GwBuf *g, const void *p, size_t n) {
    if (g->n + n > g->cap) {
        g->cap = (g->n + n) * 2 + 64;
        g->b = realloc(g->b, g->cap);
        if (!g->b) abort();
    }
    memcpy(g->b + g->n, p, n);
    g->n += n;
}
static void gw_le(GwBuf *g, uint64_t v, int n) {
    uint8_t t[8];
    for (int i = 0; i < n; i++) t[i] = (uint8_t)(v >> (8 * i));
    gw_bytes(g, t, (size_t)n);
}
static void gw_u32(GwBuf *g, uint32_t v) { gw_le(g, v, 4); }
static void gw_u64(GwBuf *g, uint64_t v) { gw_le(g, v, 8); }
static void gw_str(GwBuf *g, const char *s) {
    gw_u64(g, strlen(s));
    gw_bytes(g, s, strlen(s));
}
static void gw_f32(GwBuf *g, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    gw_u32(g, u);
}

/* Where the fields of gw_small's image lie. */
typedef struct {
    size_t n_tensors, n_kv;            /* header counts */
    size_t arch_len;                   /* general.architecture's string length */
    size_t align_key, align_val;       /* general.alignment: its key's length field and value */
    size_t key_u8, key_i8;             /* lengths of the same-length keys test.u8 / test.i8 */
    size_t u8_type;                    /* value type of test.u8 */
    size_t bool_val;                   /* test.bool's byte */
    size_t arr_type, arr_count;        /* test.arr_u32 element type and count */
    size_t sarr_count, sarr_len1;      /* test.arr_str count and its 2nd string's length */
    size_t nest_type, nest_count;      /* test.nested's inner element type and first inner count */
    size_t abool_val;                  /* test.arr_bool's 2nd element */
    size_t name_len[3], name[3], n_dims[3], dim[3], type[3], offset[3];
    size_t data;                       /* start of the data section */
    int n_tensor;
} GwPos;

/* Tensors of gw_small's image: F32 [8,2], Q4_0 [32,2], Q4_K [256,1]; with all_types, one
 * tensor [256,1] of each further type phi dequantizes, filled with random bytes. */
static const uint32_t GW_EXTRA_TYPES[] = {1, 30, 8, 3, 6, 7, 9, 10, 11, 13, 14, 15, 20, 23};

static void gw_small(GwBuf *g, GwPos *p, int all_types, uint32_t seed) {
    memset(p, 0, sizeof *p);
    g->n = 0;
    int nt = 3 + (all_types ? (int)(sizeof GW_EXTRA_TYPES / sizeof GW_EXTRA_TYPES[0]) : 0);
    p->n_tensor = nt;
    gw_bytes(g, "GGUF", 4);
    gw_u32(g, 3);
    p->n_tensors = g->n;
    gw_u64(g, (uint64_t)nt);
    p->n_kv = g->n;
    gw_u64(g, 18);
    gw_str(g, "general.architecture"), gw_u32(g, 8), p->arch_len = g->n, gw_str(g, "phi3");
    p->align_key = g->n, gw_str(g, "general.alignment"), gw_u32(g, 4), p->align_val = g->n, gw_u32(g, 32);
    p->key_u8 = g->n, gw_str(g, "test.u8"), p->u8_type = g->n, gw_u32(g, 0), gw_le(g, 7, 1);
    p->key_i8 = g->n, gw_str(g, "test.i8"), gw_u32(g, 1), gw_le(g, (uint8_t)-7, 1);
    gw_str(g, "test.u16"), gw_u32(g, 2), gw_le(g, 65535, 2);
    gw_str(g, "test.i16"), gw_u32(g, 3), gw_le(g, (uint16_t)-300, 2);
    gw_str(g, "test.u32"), gw_u32(g, 4), gw_u32(g, 4000000000u);
    gw_str(g, "test.i32"), gw_u32(g, 5), gw_u32(g, (uint32_t)-5);
    gw_str(g, "test.f32"), gw_u32(g, 6), gw_f32(g, 1.5f);
    gw_str(g, "test.bool"), gw_u32(g, 7), p->bool_val = g->n, gw_le(g, 1, 1);
    gw_str(g, "test.u64"), gw_u32(g, 10), gw_u64(g, 1ull << 40);
    gw_str(g, "test.i64"), gw_u32(g, 11), gw_u64(g, (uint64_t)-(1ll << 40));
    gw_str(g, "test.f64"), gw_u32(g, 12), gw_u64(g, 0x400921FB54442D18ull); /* pi */
    gw_str(g, "test.arr_u32"), gw_u32(g, 9), p->arr_type = g->n, gw_u32(g, 4), p->arr_count = g->n, gw_u64(g, 3);
    gw_u32(g, 1), gw_u32(g, 2), gw_u32(g, 3);
    gw_str(g, "test.arr_str"), gw_u32(g, 9), gw_u32(g, 8), p->sarr_count = g->n, gw_u64(g, 3);
    gw_str(g, "a"), p->sarr_len1 = g->n, gw_str(g, "bc"), gw_str(g, "");
    gw_str(g, "test.nested"), gw_u32(g, 9), gw_u32(g, 9), gw_u64(g, 2);
    p->nest_type = g->n, gw_u32(g, 5), p->nest_count = g->n, gw_u64(g, 2), gw_u32(g, 1), gw_u32(g, 2);
    gw_u32(g, 5), gw_u64(g, 1), gw_u32(g, 3);
    gw_str(g, "test.arr_bool"), gw_u32(g, 9), gw_u32(g, 7), gw_u64(g, 2), gw_le(g, 0, 1), p->abool_val = g->n,
        gw_le(g, 1, 1);
    gw_str(g, "test.empty"), gw_u32(g, 9), gw_u32(g, 6), gw_u64(g, 0);
    /* tensor infos */
    uint64_t off = 0, sizes[32];
    for (int t = 0; t < nt; t++) {
        char name[16];
        uint64_t ne0, ne1;
        uint32_t type;
        uint64_t bytes;
        if (t == 0) ne0 = 8, ne1 = 2, type = 0, bytes = 64;
        else if (t == 1) ne0 = 32, ne1 = 2, type = 2, bytes = 36;
        else if (t == 2) ne0 = 256, ne1 = 1, type = 12, bytes = 144;
        else {
            static const uint32_t bb[] = {512, 512, 272, 160, 176, 192, 288, 84, 110, 176, 210, 292, 144, 136};
            type = GW_EXTRA_TYPES[t - 3], ne0 = 256, ne1 = 1, bytes = bb[t - 3];
        }
        if (t < 3) {
            name[0] = 't', name[1] = (char)('0' + t), name[2] = 0;
        } else {
            name[0] = 'x', name[1] = (char)('a' + t), name[2] = 0;
        }
        if (t < 3) p->name_len[t] = g->n, p->name[t] = g->n + 8;
        gw_str(g, name);
        if (t < 3) p->n_dims[t] = g->n;
        gw_u32(g, 2);
        if (t < 3) p->dim[t] = g->n;
        gw_u64(g, ne0), gw_u64(g, ne1);
        if (t < 3) p->type[t] = g->n;
        gw_u32(g, type);
        if (t < 3) p->offset[t] = g->n;
        gw_u64(g, off);
        sizes[t] = bytes;
        off += (bytes + 31) / 32 * 32;
    }
    while (g->n % 32) gw_le(g, 0, 1);
    p->data = g->n;
    uint32_t s = seed ? seed : 1;
    for (uint64_t i = 0; i < off; i++) {
        s = s * 1103515245u + 12345u;
        gw_le(g, s >> 24, 1);
    }
    /* F32 tensor: small exact values; Q4_0 / Q4_K scales: finite halves (1.0 = 0x3C00) */
    for (int i = 0; i < 16; i++) {
        float f = (float)(i - 8) * 0.25f;
        memcpy(g->b + p->data + 4 * i, &f, 4);
    }
    for (int b = 0; b < 2; b++) g->b[p->data + 64 + 18 * b] = 0x00, g->b[p->data + 64 + 18 * b + 1] = 0x3C;
    g->b[p->data + 128] = 0x00, g->b[p->data + 129] = 0x2C, g->b[p->data + 130] = 0x00, g->b[p->data + 131] = 0x2C;
    (void)sizes;
}

/* A GGUF whose one key holds arrays nested `depth` deep (1 = a plain array of u8). */
static void gw_nested(GwBuf *g, int depth) {
    g->n = 0;
    gw_bytes(g, "GGUF", 4);
    gw_u32(g, 3), gw_u64(g, 0), gw_u64(g, 1);
    gw_str(g, "test.deep"), gw_u32(g, 9);
    for (int d = 1; d < depth; d++) gw_u32(g, 9), gw_u64(g, 1);
    gw_u32(g, 0), gw_u64(g, 1), gw_le(g, 42, 1);
}

#endif
