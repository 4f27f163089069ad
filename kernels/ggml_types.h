/* GGML tensor types (the numbering GGUF files use), their block layouts and scalar dequantizers.
 *
 * A GGML tensor row of n elements is n / blck consecutive blocks of `bytes` bytes each; rows are
 * stored one after another. Every multi-byte field is little-endian; fp16 fields are IEEE binary16.
 * The dequantizers reproduce the reference semantics (ggml's dequantize_row_* / gguf-py) bit for
 * bit: same integer decoding, same float operations in the same order, no fused multiply-add.
 *
 * Imports nothing above kernels/. */
#ifndef PHI_GGML_TYPES_H
#define PHI_GGML_TYPES_H

#include <stddef.h>
#include <stdint.h>

enum {
    GGML_TYPE_F32 = 0,
    GGML_TYPE_F16 = 1,
    GGML_TYPE_Q4_0 = 2,
    GGML_TYPE_Q4_1 = 3,
    GGML_TYPE_Q4_2 = 4, /* removed from ggml */
    GGML_TYPE_Q4_3 = 5, /* removed from ggml */
    GGML_TYPE_Q5_0 = 6,
    GGML_TYPE_Q5_1 = 7,
    GGML_TYPE_Q8_0 = 8,
    GGML_TYPE_Q8_1 = 9,
    GGML_TYPE_Q2_K = 10,
    GGML_TYPE_Q3_K = 11,
    GGML_TYPE_Q4_K = 12,
    GGML_TYPE_Q5_K = 13,
    GGML_TYPE_Q6_K = 14,
    GGML_TYPE_Q8_K = 15,
    GGML_TYPE_IQ2_XXS = 16,
    GGML_TYPE_IQ2_XS = 17,
    GGML_TYPE_IQ3_XXS = 18,
    GGML_TYPE_IQ1_S = 19,
    GGML_TYPE_IQ4_NL = 20,
    GGML_TYPE_IQ3_S = 21,
    GGML_TYPE_IQ2_S = 22,
    GGML_TYPE_IQ4_XS = 23,
    GGML_TYPE_I8 = 24,
    GGML_TYPE_I16 = 25,
    GGML_TYPE_I32 = 26,
    GGML_TYPE_I64 = 27,
    GGML_TYPE_F64 = 28,
    GGML_TYPE_IQ1_M = 29,
    GGML_TYPE_BF16 = 30,
    GGML_TYPE_Q4_0_4_4 = 31, /* removed (repacked at load time now) */
    GGML_TYPE_Q4_0_4_8 = 32, /* removed */
    GGML_TYPE_Q4_0_8_8 = 33, /* removed */
    GGML_TYPE_TQ1_0 = 34,
    GGML_TYPE_TQ2_0 = 35,
    GGML_TYPE_IQ4_NL_4_4 = 36, /* removed */
    GGML_TYPE_IQ4_NL_4_8 = 37, /* removed */
    GGML_TYPE_IQ4_NL_8_8 = 38, /* removed */
    GGML_TYPE_MXFP4 = 39,
    GGML_TYPE_COUNT = 40
};

#define GGML_QK_K 256 /* elements of a K-quant / IQ super-block */

/* Dequantizes n elements (a multiple of the type's block) from blocks at src into y. */
typedef void (*GgmlDequantFn)(const void *src, float *y, int64_t n);

typedef struct {
    const char *name;      /* "Q4_K" */
    uint32_t blck;         /* elements per block; 0: layout unknown (a type removed from ggml) */
    uint32_t bytes;        /* bytes per block */
    GgmlDequantFn dequant; /* NULL: phi cannot dequantize this type */
} GgmlTypeInfo;

/* The table entry of a known type number, or NULL for a number ggml never assigned. */
const GgmlTypeInfo *ggml_type_info(uint32_t type);
/* "Q4_K", or "unknown" for a number ggml never assigned. */
const char *ggml_type_name(uint32_t type);
/* Bytes of a row of n elements: 0 and an error when the type has no known layout, n is not a
 * multiple of its block, or the size overflows. */
int ggml_row_bytes(uint32_t type, uint64_t n, uint64_t *bytes, char *err, size_t errlen);
/* Dequantizes one row of n elements; -1 with "unsupported type NAME" (or "unknown type N")
 * when phi has no dequantizer for the type, or when n is not a multiple of its block. */
int ggml_dequantize_row(uint32_t type, const void *src, float *y, int64_t n, char *err, size_t errlen);

#endif
