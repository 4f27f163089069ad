/* Tensor types and their memory layout: the one place that says how a type is stored.
 *
 * A 2-D tensor [rows][cols] is stored as two areas:
 *   quants: rows * row_bytes(type, cols) bytes, row after row;
 *   scales: (quantized types only) starting at align64(quants size): rows * cols/QK float16
 *           scales, row after row, one per block of QK consecutive elements of a row.
 * Keeping a row's quants contiguous lets SIMD kernels stream them with full-width loads.
 *
 * Q8: one int8 per element, x = d * q.
 * Q4: 4 bits per element; within a block of 32, byte j (0..15) holds element j in its low nibble
 *     and element j + 16 in its high nibble, each stored as q + 8 (q in -8..7); x = d * q.
 *     4.5 bits per weight with its f16 scale. */
#ifndef PHI_BLOCKS_H
#define PHI_BLOCKS_H

#include <stddef.h>
#include <stdint.h>

#define QK 32 /* elements per quantization block */

typedef enum {
    TENSOR_F32 = 0,
    TENSOR_F16 = 1,
    TENSOR_Q8 = 2,
    TENSOR_Q4 = 3,
    TENSOR_TYPE_COUNT
} TensorType;

typedef struct {
    const char *name;      /* "f32", "f16", "q8", "q4" */
    int block;             /* elements per block (1 for float types) */
    int block_bytes;       /* bytes of quants per block */
    int has_scales;        /* f16 scale per block in the scales area */
} TypeTraits;

const TypeTraits *type_traits(uint32_t type); /* NULL for an unknown type */
int type_from_name(const char *name);         /* -1 if unknown */

/* Bytes of one row's quants; 0 if cols is not a multiple of the block. */
uint64_t type_row_bytes(uint32_t type, uint64_t cols);
/* Offset of the scales area (quants area rounded up to 64 bytes). */
uint64_t type_scales_offset(uint32_t type, uint64_t rows, uint64_t cols);
/* Total bytes of a tensor; 0 when the shape is invalid for the type or overflows. */
uint64_t type_tensor_bytes(uint32_t type, uint64_t rows, uint64_t cols);
/* Bits per weight including scales. */
double type_bits_per_weight(uint32_t type);

/* A matrix in place: pointers to the row quants and scales areas. */
typedef struct {
    uint32_t type;
    int rows, cols;
    const uint8_t *q;  /* quants area */
    const uint16_t *d; /* scales area (NULL for float types) */
} MatView;

MatView matview(uint32_t type, const void *data, int rows, int cols);
static inline const uint8_t *matview_row(const MatView *m, int r) {
    return m->q + (uint64_t)r * type_row_bytes(m->type, (uint64_t)m->cols);
}
static inline const uint16_t *matview_row_scales(const MatView *m, int r) {
    return m->d ? m->d + (uint64_t)r * (uint64_t)(m->cols / QK) : NULL;
}

/* Half and bfloat16 conversions (round to nearest even). */
float fp16_to_f32(uint16_t h);
uint16_t f32_to_fp16(float f);
static inline float bf16_to_f32(uint16_t h) {
    union { uint32_t u; float f; } v = { (uint32_t)h << 16 };
    return v.f;
}

/* Quantize one row of n floats (n a multiple of the block for Q types) into quants q and
 * scales d (d unused for float types). */
void quantize_row(uint32_t type, const float *x, void *q, uint16_t *d, int n);
/* The same with an importance w[i] >= 0 per element (NULL: all equal): Q4 chooses each block's
 * scale to minimise sum w (x - y)^2 (see blocks.c); the other types ignore w. */
void quantize_row_weighted(uint32_t type, const float *x, void *q, uint16_t *d, int n,
                           const float *w);
/* Dequantize one row. */
void dequantize_row(uint32_t type, const void *q, const uint16_t *d, float *y, int n);

#endif
