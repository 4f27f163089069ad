/* Tensor type traits, float16 conversion and the reference (de)quantizers. */
#include "kernels/blocks.h"

#include <math.h>
#include <string.h>

static const TypeTraits traits[TENSOR_TYPE_COUNT] = {
    [TENSOR_F32] = {"f32", 1, 4, 0},
    [TENSOR_F16] = {"f16", 1, 2, 0},
    [TENSOR_Q8] = {"q8", QK, QK, 1},
    [TENSOR_Q4] = {"q4", QK, QK / 2, 1},
};

const TypeTraits *type_traits(uint32_t type) {
    return type < TENSOR_TYPE_COUNT ? &traits[type] : NULL;
}

int type_from_name(const char *name) {
    for (int i = 0; i < TENSOR_TYPE_COUNT; i++)
        if (strcmp(name, traits[i].name) == 0) return i;
    return -1;
}

uint64_t type_row_bytes(uint32_t type, uint64_t cols) {
    const TypeTraits *t = type_traits(type);
    if (!t || cols == 0 || cols % (uint64_t)t->block) return 0;
    return cols / (uint64_t)t->block * (uint64_t)t->block_bytes;
}

static uint64_t align64(uint64_t x) { return (x + 63) & ~(uint64_t)63; }

uint64_t type_scales_offset(uint32_t type, uint64_t rows, uint64_t cols) {
    return align64(rows * type_row_bytes(type, cols));
}

uint64_t type_tensor_bytes(uint32_t type, uint64_t rows, uint64_t cols) {
    uint64_t rb = type_row_bytes(type, cols);
    /* Shapes are bounded (rows, cols < 2^31) so that these products cannot overflow. */
    if (rb == 0 || rows == 0 || rows >= (1ull << 31) || cols >= (1ull << 31)) return 0;
    uint64_t n = rows * rb;
    if (traits[type].has_scales) n = align64(n) + rows * (cols / QK) * 2;
    return n;
}

double type_bits_per_weight(uint32_t type) {
    const TypeTraits *t = type_traits(type);
    if (!t) return 0;
    return 8.0 * t->block_bytes / t->block + (t->has_scales ? 16.0 / t->block : 0.0);
}

MatView matview(uint32_t type, const void *data, int rows, int cols) {
    MatView m = {type, rows, cols, (const uint8_t *)data, NULL};
    if (traits[type].has_scales)
        m.d = (const uint16_t *)(m.q + type_scales_offset(type, (uint64_t)rows, (uint64_t)cols));
    return m;
}

float fp16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13); /* inf / nan */
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else { /* subnormal: normalize */
        int e = -1;
        do { man <<= 1; e++; } while (!(man & 0x400));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
    }
    union { uint32_t u; float f; } v = {bits};
    return v.f;
}

uint16_t f32_to_fp16(float f) {
    union { float f; uint32_t u; } v = {f};
    uint32_t u = v.u, sign = (u >> 16) & 0x8000;
    uint32_t abs = u & 0x7fffffffu;
    if (abs >= 0x7f800000u) /* inf or nan (keep nan quiet) */
        return (uint16_t)(sign | 0x7c00 | (abs > 0x7f800000u ? 0x200 : 0));
    if (abs >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* rounds to >= 65520: inf */
    if (abs < 0x38800000u) { /* result is subnormal or zero */
        if (abs < 0x33000000u) return (uint16_t)sign; /* below half the smallest subnormal */
        uint32_t e = abs >> 23, man = (abs & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t q = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t q = ((abs - 0x38000000u) >> 13), rem = abs & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (q & 1))) q++;
    return (uint16_t)(sign | q);
}

static void quantize_row_q8(const float *x, int8_t *q, uint16_t *d, int n) {
    for (int b = 0; b < n / QK; b++) {
        const float *xb = x + b * QK;
        float amax = 0;
        for (int i = 0; i < QK; i++) amax = fmaxf(amax, fabsf(xb[i]));
        d[b] = f32_to_fp16(amax / 127.0f);
        float ds = fp16_to_f32(d[b]);
        float id = ds > 0 ? 1.0f / ds : 0.0f;
        for (int i = 0; i < QK; i++) {
            float v = roundf(xb[i] * id);
            q[b * QK + i] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
        }
    }
}

/* The block's scale maps its largest-magnitude value to -8, so that value is exact and the
 * asymmetric range -8..7 is fully used. */
static void quantize_row_q4(const float *x, uint8_t *q, uint16_t *d, int n) {
    for (int b = 0; b < n / QK; b++) {
        const float *xb = x + b * QK;
        float amax = 0, vmax = 0;
        for (int i = 0; i < QK; i++)
            if (fabsf(xb[i]) > amax) { amax = fabsf(xb[i]); vmax = xb[i]; }
        d[b] = f32_to_fp16(vmax / -8.0f);
        float ds = fp16_to_f32(d[b]);
        float id = ds != 0 ? 1.0f / ds : 0.0f;
        uint8_t *qb = q + b * (QK / 2);
        for (int i = 0; i < QK / 2; i++) {
            int lo = (int)roundf(xb[i] * id), hi = (int)roundf(xb[i + QK / 2] * id);
            lo = lo < -8 ? -8 : lo > 7 ? 7 : lo;
            hi = hi < -8 ? -8 : hi > 7 ? 7 : hi;
            qb[i] = (uint8_t)((lo + 8) | ((hi + 8) << 4));
        }
    }
}

void quantize_row(uint32_t type, const float *x, void *q, uint16_t *d, int n) {
    switch (type) {
    case TENSOR_F32: memcpy(q, x, (size_t)n * sizeof(float)); break;
    case TENSOR_F16:
        for (int i = 0; i < n; i++) ((uint16_t *)q)[i] = f32_to_fp16(x[i]);
        break;
    case TENSOR_Q8: quantize_row_q8(x, (int8_t *)q, d, n); break;
    case TENSOR_Q4: quantize_row_q4(x, (uint8_t *)q, d, n); break;
    }
}

void dequantize_row(uint32_t type, const void *q, const uint16_t *d, float *y, int n) {
    switch (type) {
    case TENSOR_F32: memcpy(y, q, (size_t)n * sizeof(float)); break;
    case TENSOR_F16:
        for (int i = 0; i < n; i++) y[i] = fp16_to_f32(((const uint16_t *)q)[i]);
        break;
    case TENSOR_Q8:
        for (int b = 0; b < n / QK; b++) {
            float s = fp16_to_f32(d[b]);
            for (int i = 0; i < QK; i++) y[b * QK + i] = s * ((const int8_t *)q)[b * QK + i];
        }
        break;
    case TENSOR_Q4:
        for (int b = 0; b < n / QK; b++) {
            float s = fp16_to_f32(d[b]);
            const uint8_t *qb = (const uint8_t *)q + b * (QK / 2);
            for (int i = 0; i < QK / 2; i++) {
                y[b * QK + i] = s * (float)((qb[i] & 15) - 8);
                y[b * QK + i + QK / 2] = s * (float)((qb[i] >> 4) - 8);
            }
        }
        break;
    }
}
