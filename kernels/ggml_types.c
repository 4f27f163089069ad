/* GGML block layouts and scalar dequantizers (see ggml_types.h).
 *
 * Each product or sum below is its own statement or a plain left-to-right expression of two
 * operands at a time, so that a compiler allowed to contract (clang's default -ffp-contract=on)
 * has no a*b+c within one expression to fuse: the results must equal the reference bit for bit. */
#include "kernels/ggml_types.h"

#include <string.h>

#include "base/errmsg.h"
#include "base/half.h"

typedef uint16_t ggml_half;

typedef struct { ggml_half d; uint8_t qs[16]; } BlockQ4_0;
typedef struct { ggml_half d, m; uint8_t qs[16]; } BlockQ4_1;
typedef struct { ggml_half d; uint8_t qh[4]; uint8_t qs[16]; } BlockQ5_0;
typedef struct { ggml_half d, m; uint8_t qh[4]; uint8_t qs[16]; } BlockQ5_1;
typedef struct { ggml_half d; int8_t qs[32]; } BlockQ8_0;
typedef struct { ggml_half d, s; int8_t qs[32]; } BlockQ8_1;
typedef struct { uint8_t scales[16]; uint8_t qs[64]; ggml_half d, dmin; } BlockQ2_K;
typedef struct { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; ggml_half d; } BlockQ3_K;
typedef struct { ggml_half d, dmin; uint8_t scales[12]; uint8_t qs[128]; } BlockQ4_K;
typedef struct { ggml_half d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; } BlockQ5_K;
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; ggml_half d; } BlockQ6_K;
typedef struct { float d; int8_t qs[256]; int16_t bsums[16]; } BlockQ8_K;
typedef struct { ggml_half d; uint8_t qs[16]; } BlockIQ4_NL;
typedef struct { ggml_half d; uint16_t scales_h; uint8_t scales_l[4]; uint8_t qs[128]; } BlockIQ4_XS;

_Static_assert(sizeof(BlockQ4_0) == 18, "Q4_0 block");
_Static_assert(sizeof(BlockQ4_1) == 20, "Q4_1 block");
_Static_assert(sizeof(BlockQ5_0) == 22, "Q5_0 block");
_Static_assert(sizeof(BlockQ5_1) == 24, "Q5_1 block");
_Static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 block");
_Static_assert(sizeof(BlockQ8_1) == 36, "Q8_1 block");
_Static_assert(sizeof(BlockQ2_K) == 84, "Q2_K block");
_Static_assert(sizeof(BlockQ3_K) == 110, "Q3_K block");
_Static_assert(sizeof(BlockQ4_K) == 144, "Q4_K block");
_Static_assert(sizeof(BlockQ5_K) == 176, "Q5_K block");
_Static_assert(sizeof(BlockQ6_K) == 210, "Q6_K block");
_Static_assert(sizeof(BlockQ8_K) == 292, "Q8_K block");
_Static_assert(sizeof(BlockIQ4_NL) == 18, "IQ4_NL block");
_Static_assert(sizeof(BlockIQ4_XS) == 136, "IQ4_XS block");

/* Blocks are read through memcpy into a local struct: a tensor's blocks need not be aligned
 * (a block of 18 bytes starts at any even offset; GGUF only aligns the tensor). The fields are
 * little-endian, as is every machine phi builds for. */

/* The 16 levels of IQ4_NL / IQ4_XS. */
static const int8_t kvalues_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                         1,    13,   25,  38,  53,  69,  89,  113};

static float h2f(ggml_half h) { return fp16_to_f32(h); }

static void deq_f32(const void *src, float *y, int64_t n) { memcpy(y, src, (size_t)n * sizeof(float)); }

static void deq_f16(const void *src, float *y, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) y[i] = fp16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
}

static void deq_bf16(const void *src, float *y, int64_t n) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) y[i] = bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
}

static void deq_q4_0(const void *src, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, y += 32) {
        BlockQ4_0 x;
        memcpy(&x, (const uint8_t *)src + b * sizeof x, sizeof x);
        float d = h2f(x.d);
        for (int j = 0; j < 16; j++) {
            int lo = (x.qs[j] & 0x0F) - 8, hi = (x.qs[j] >> 4) - 8;
            y[j] = (float)lo * d;
            y[j + 16] = (float)hi * d;
        }
    }
}

static void deq_q4_1(const void *src, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, y += 32) {
        BlockQ4_1 x;
        memcpy(&x, (const uint8_t *)src + b * sizeof x, sizeof x);
        float d = h2f(x.d), m = h2f(x.m);
        for (int j = 0; j < 16; j++) {
            float lo = (float)(x.qs[j] & 0x0F) * d, hi = (float)(x.qs[j] >> 4) * d;
            y[j] = lo + m;
            y[j + 16] = hi + m;
        }
    }
}

/* Q5_0 / Q5_1: the fifth bit of element j is bit j of the 32-bit qh. */
static void deq_q5_0(const void *src, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, y += 32) {
        BlockQ5_0 x;
        memcpy(&x, (const uint8_t *)src + b * sizeof x, sizeof x);
        float d = h2f(x.d);
        uint32_t qh = (uint32_t)x.qh[0] | (uint32_t)x.qh[1] << 8 | (uint32_t)x.qh[2] << 16 | (uint32_t)x.qh[3] << 24;
        for (int j = 0; j < 16; j++) {
            int lo = (int)((x.qs[j] & 0x0F) | (((qh >> j) & 1) << 4)) - 16;
            int hi = (int)((x.qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16;
            y[j] = (float)lo * d;
            y[j + 16] = (float)hi * d;
        }
    }
}

static void deq_q5_1(const void *src, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, y += 32) {
        BlockQ5_1 x;
        memcpy(&x, (const uint8_t *)src + b * sizeof x, sizeof x);
        float d = h2f(x.d), m = h2f(x.m);
        uint32_t qh = (uint32_t)x.qh[0] | (uint32_t)x.qh[1] << 8 | (uint32_t)x.qh[2] << 16 | (uint32_t)x.qh[3] << 24;
        for (int j = 0; j < 16; j++) {
            unsigned lo = (x.qs[j] & 0x0Fu) | (((qh >> j) & 1u) << 4);
            unsigned hi = (x.qs[j] >> 4u) | (((qh >> (j + 16)) & 1u) << 4);
            float a = (float)lo * d, c = (float)hi * d;
            y[j] = a + m;
            y[j + 16] = c + m;
        }
    }
}

static void deq_q8_0(const void *src, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, y += 32) {
        BlockQ8_0 x;
        memcpy(&x, (const uint8_t *)src + b * sizeof x, sizeof x);
        float d = h2f(x.d);
        for (int j = 0; j < 32; j++) y[j] = (float)x.qs[j] * d;
    }
}

static void deq_q8_1(const void *src, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, y += 32) {
        BlockQ8_1 x;
        memcpy(&x, (const uint8_t *)src + b * sizeof x, sizeof x);
        float d = h2f(x.d);
        for (int j = 0; j < 32; j++) y[j] = (float)x.qs[j] * d;
    }
}

static void deq_q8_k(const void *src, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 256; b++, y += 256) {
        BlockQ8_K x;
        memcpy(&x, (const uint8_t *)src + b * sizeof x, sizeof x);
        for (int j = 0; j < 256; j++) y[j] = x.d * (float)x.qs[j];
    }
}

/* Q2_K: 16 groups of 16; group g has a 4-bit scale (low nibble of scales[g]) and a 4-bit min
 * (high nibble). Each 128-element half uses 32 bytes of qs; element 32*s + l (s = 0..3 the
 * 2-bit plane) of the half is bits 2s..2s+1 of qs[l] (l < 32). */
static void deq_q2_k(const void *src, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 256; b++) {
        BlockQ2_K x;
        memcpy(&x, (const uint8_t *)src + b * sizeof x, sizeof x);
        float d = h2f(x.d), dmin = h2f(x.dmin);
        int g = 0;
        for (int half = 0; half < 2; half++) {
            const uint8_t *q = x.qs + 32 * half;
            for (int s = 0; s < 4; s++) {
                for (int part = 0; part < 2; part++, g++) {
                    float dl = d * (float)(x.scales[g] & 0xF);
                    float ml = dmin * (float)(x.scales[g] >> 4);
                    for (int l = 0; l < 16; l++) {
                        float v = dl * (float)((q[16 * part + l] >> (2 * s)) & 3);
                        *y++ = v - ml;
                    }
                }
            }
        }
    }
}

/* Q3_K: 16 groups of 16 with 6-bit signed scales (stored + 32) packed in 12 bytes: low 4 bits
 * of scale i in the nibble i / 8 of scales[i % 8], high 2 bits in bits 2 * (i / 4) of
 * scales[8 + i % 4]. Low 2 bits of a quant as in Q2_K, the third bit in hmask; the value is
 * q - 4 when that bit is clear. */
static void deq_q3_k(const void *src, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 256; b++) {
        BlockQ3_K x;
        memcpy(&x, (const uint8_t *)src + b * sizeof x, sizeof x);
        float d = h2f(x.d);
        int sc[16];
        for (int i = 0; i < 16; i++) {
            int lo = i < 8 ? (x.scales[i] & 0xF) : (x.scales[i - 8] >> 4);
            int hi = (x.scales[8 + i % 4] >> (2 * (i / 4))) & 3;
            sc[i] = (lo | hi << 4) - 32;
        }
        int g = 0;
        uint8_t m = 1;
        for (int half = 0; half < 2; half++) {
            const uint8_t *q = x.qs + 32 * half;
            for (int s = 0; s < 4; s++, m = (uint8_t)(m << 1)) {
                for (int part = 0; part < 2; part++, g++) {
                    float dl = d * (float)sc[g];
                    for (int l = 0; l < 16; l++) {
                        int k = 16 * part + l;
                        int v = ((q[k] >> (2 * s)) & 3) - ((x.hmask[k] & m) ? 0 : 4);
                        *y++ = dl * (float)v;
                    }
                }
            }
        }
    }
}

/* Q4_K / Q5_K: 8 groups of 32 with 6-bit scale and min packed in 12 bytes. */
static void scale_min_k4(int j, const uint8_t *q, int *sc, int *mn) {
    if (j < 4) {
        *sc = q[j] & 63;
        *mn = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

static void deq_q4_k(const void *src, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 256; b++) {
        BlockQ4_K x;
        memcpy(&x, (const uint8_t *)src + b * sizeof x, sizeof x);
        float d = h2f(x.d), dmin = h2f(x.dmin);
        for (int c = 0; c < 4; c++) { /* 64 elements: low nibbles of 32 bytes, then high */
            const uint8_t *q = x.qs + 32 * c;
            for (int part = 0; part < 2; part++) {
                int sc, mn;
                scale_min_k4(2 * c + part, x.scales, &sc, &mn);
                float d1 = d * (float)sc, m1 = dmin * (float)mn;
                for (int l = 0; l < 32; l++) {
                    float v = d1 * (float)(part ? q[l] >> 4 : q[l] & 0xF);
                    *y++ = v - m1;
                }
            }
        }
    }
}

static void deq_q5_k(const void *src, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 256; b++) {
        BlockQ5_K x;
        memcpy(&x, (const uint8_t *)src + b * sizeof x, sizeof x);
        float d = h2f(x.d), dmin = h2f(x.dmin);
        for (int c = 0; c < 4; c++) {
            const uint8_t *q = x.qs + 32 * c;
            for (int part = 0; part < 2; part++) {
                int sc, mn;
                scale_min_k4(2 * c + part, x.scales, &sc, &mn);
                float d1 = d * (float)sc, m1 = dmin * (float)mn;
                uint8_t bit = (uint8_t)(1u << (2 * c + part));
                for (int l = 0; l < 32; l++) {
                    int v = (part ? q[l] >> 4 : q[l] & 0xF) + ((x.qh[l] & bit) ? 16 : 0);
                    float t = d1 * (float)v;
                    *y++ = t - m1;
                }
            }
        }
    }
}

/* Q6_K: low 4 bits in ql, high 2 bits in qh, 16 signed 8-bit scales of 16 elements. */
static void deq_q6_k(const void *src, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 256; b++) {
        BlockQ6_K x;
        memcpy(&x, (const uint8_t *)src + b * sizeof x, sizeof x);
        float d = h2f(x.d);
        for (int half = 0; half < 2; half++, y += 128) {
            const uint8_t *ql = x.ql + 64 * half, *qh = x.qh + 32 * half;
            const int8_t *sc = x.scales + 8 * half;
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                float s1 = d * (float)sc[is], s2 = d * (float)sc[is + 2];
                float s3 = d * (float)sc[is + 4], s4 = d * (float)sc[is + 6];
                y[l] = s1 * (float)q1;
                y[l + 32] = s2 * (float)q2;
                y[l + 64] = s3 * (float)q3;
                y[l + 96] = s4 * (float)q4;
            }
        }
    }
}

static void deq_iq4_nl(const void *src, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++, y += 32) {
        BlockIQ4_NL x;
        memcpy(&x, (const uint8_t *)src + b * sizeof x, sizeof x);
        float d = h2f(x.d);
        for (int j = 0; j < 16; j++) {
            y[j] = d * (float)kvalues_iq4nl[x.qs[j] & 0xF];
            y[j + 16] = d * (float)kvalues_iq4nl[x.qs[j] >> 4];
        }
    }
}

/* IQ4_XS: 8 groups of 32, 6-bit scales (stored + 32): low 4 bits in scales_l nibbles, high 2
 * bits in scales_h. */
static void deq_iq4_xs(const void *src, float *y, int64_t n) {
    for (int64_t b = 0; b < n / 256; b++) {
        BlockIQ4_XS x;
        memcpy(&x, (const uint8_t *)src + b * sizeof x, sizeof x);
        float d = h2f(x.d);
        for (int g = 0; g < 8; g++, y += 32) {
            int ls = ((x.scales_l[g / 2] >> (4 * (g % 2))) & 0xF) | (((x.scales_h >> (2 * g)) & 3) << 4);
            float dl = d * (float)(ls - 32);
            const uint8_t *q = x.qs + 16 * g;
            for (int j = 0; j < 16; j++) {
                y[j] = dl * (float)kvalues_iq4nl[q[j] & 0xF];
                y[j + 16] = dl * (float)kvalues_iq4nl[q[j] >> 4];
            }
        }
    }
}

static const GgmlTypeInfo TYPES[GGML_TYPE_COUNT] = {
    [GGML_TYPE_F32] = {"F32", 1, 4, deq_f32},
    [GGML_TYPE_F16] = {"F16", 1, 2, deq_f16},
    [GGML_TYPE_Q4_0] = {"Q4_0", 32, 18, deq_q4_0},
    [GGML_TYPE_Q4_1] = {"Q4_1", 32, 20, deq_q4_1},
    [GGML_TYPE_Q4_2] = {"Q4_2", 0, 0, NULL},
    [GGML_TYPE_Q4_3] = {"Q4_3", 0, 0, NULL},
    [GGML_TYPE_Q5_0] = {"Q5_0", 32, 22, deq_q5_0},
    [GGML_TYPE_Q5_1] = {"Q5_1", 32, 24, deq_q5_1},
    [GGML_TYPE_Q8_0] = {"Q8_0", 32, 34, deq_q8_0},
    [GGML_TYPE_Q8_1] = {"Q8_1", 32, 36, deq_q8_1},
    [GGML_TYPE_Q2_K] = {"Q2_K", 256, 84, deq_q2_k},
    [GGML_TYPE_Q3_K] = {"Q3_K", 256, 110, deq_q3_k},
    [GGML_TYPE_Q4_K] = {"Q4_K", 256, 144, deq_q4_k},
    [GGML_TYPE_Q5_K] = {"Q5_K", 256, 176, deq_q5_k},
    [GGML_TYPE_Q6_K] = {"Q6_K", 256, 210, deq_q6_k},
    [GGML_TYPE_Q8_K] = {"Q8_K", 256, 292, deq_q8_k},
    [GGML_TYPE_IQ2_XXS] = {"IQ2_XXS", 256, 66, NULL},
    [GGML_TYPE_IQ2_XS] = {"IQ2_XS", 256, 74, NULL},
    [GGML_TYPE_IQ3_XXS] = {"IQ3_XXS", 256, 98, NULL},
    [GGML_TYPE_IQ1_S] = {"IQ1_S", 256, 50, NULL},
    [GGML_TYPE_IQ4_NL] = {"IQ4_NL", 32, 18, deq_iq4_nl},
    [GGML_TYPE_IQ3_S] = {"IQ3_S", 256, 110, NULL},
    [GGML_TYPE_IQ2_S] = {"IQ2_S", 256, 82, NULL},
    [GGML_TYPE_IQ4_XS] = {"IQ4_XS", 256, 136, deq_iq4_xs},
    [GGML_TYPE_I8] = {"I8", 1, 1, NULL},
    [GGML_TYPE_I16] = {"I16", 1, 2, NULL},
    [GGML_TYPE_I32] = {"I32", 1, 4, NULL},
    [GGML_TYPE_I64] = {"I64", 1, 8, NULL},
    [GGML_TYPE_F64] = {"F64", 1, 8, NULL},
    [GGML_TYPE_IQ1_M] = {"IQ1_M", 256, 56, NULL},
    [GGML_TYPE_BF16] = {"BF16", 1, 2, deq_bf16},
    [GGML_TYPE_Q4_0_4_4] = {"Q4_0_4_4", 0, 0, NULL},
    [GGML_TYPE_Q4_0_4_8] = {"Q4_0_4_8", 0, 0, NULL},
    [GGML_TYPE_Q4_0_8_8] = {"Q4_0_8_8", 0, 0, NULL},
    [GGML_TYPE_TQ1_0] = {"TQ1_0", 256, 54, NULL},
    [GGML_TYPE_TQ2_0] = {"TQ2_0", 256, 66, NULL},
    [GGML_TYPE_IQ4_NL_4_4] = {"IQ4_NL_4_4", 0, 0, NULL},
    [GGML_TYPE_IQ4_NL_4_8] = {"IQ4_NL_4_8", 0, 0, NULL},
    [GGML_TYPE_IQ4_NL_8_8] = {"IQ4_NL_8_8", 0, 0, NULL},
    [GGML_TYPE_MXFP4] = {"MXFP4", 32, 17, NULL},
};

const GgmlTypeInfo *ggml_type_info(uint32_t type) {
    return type < GGML_TYPE_COUNT && TYPES[type].name ? &TYPES[type] : NULL;
}

const char *ggml_type_name(uint32_t type) {
    const GgmlTypeInfo *t = ggml_type_info(type);
    return t ? t->name : "unknown";
}

int ggml_row_bytes(uint32_t type, uint64_t n, uint64_t *bytes, char *err, size_t errlen) {
    *bytes = 0;
    const GgmlTypeInfo *t = ggml_type_info(type);
    if (!t) return errorf(err, errlen, "unknown type %u", type);
    if (!t->blck) return errorf(err, errlen, "unsupported type %s (%u, removed from ggml)", t->name, type);
    if (n % t->blck)
        return errorf(err, errlen, "row of %llu elements is not a multiple of the %s block (%u)",
                      (unsigned long long)n, t->name, t->blck);
    uint64_t nb = n / t->blck;
    if (nb > UINT64_MAX / t->bytes) return errorf(err, errlen, "row of %llu %s elements overflows", (unsigned long long)n, t->name);
    *bytes = nb * t->bytes;
    return 0;
}

int ggml_dequantize_row(uint32_t type, const void *src, float *y, int64_t n, char *err, size_t errlen) {
    const GgmlTypeInfo *t = ggml_type_info(type);
    if (!t) return errorf(err, errlen, "unknown type %u", type);
    if (!t->dequant) return errorf(err, errlen, "unsupported type %s", t->name);
    if (n < 0 || n % t->blck)
        return errorf(err, errlen, "row of %lld elements is not a multiple of the %s block (%u)", (long long)n, t->name,
                      t->blck);
    t->dequant(src, y, n);
    return 0;
}
