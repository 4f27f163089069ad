/* Tensor types and their memory layout: the one place that says how a type is stored.
 *
 * Float tensors (F32, F16) [rows][cols] are stored row after row.
 *
 * Quantized tensors (Q8, Q4) hold blocks of QK consecutive elements of a row, each with an f16
 * scale, and store their rows in panels of QR rows (the last panel padded with zero rows) so
 * that one 64-byte load gives the same 4 bytes of 16 rows: a SIMD lane per row, an activation
 * broadcast to all lanes, and no horizontal sums. Two areas:
 *   quants: panel p, block b occupies QR * bb bytes (bb = bytes of a block's quants) at
 *           (p * nb + b) * QR * bb; within it, for k < bb / 4 and lane l < QR, the 4 bytes
 *           [4k, 4k + 4) of row p * QR + l's block b are at (k * QR + l) * 4;
 *   scales: at align64(quants size): f16 of row p * QR + l, block b at index (p * nb + b) * QR + l.
 * A panel's quants and scales are each contiguous, so a thread streams its panels linearly.
 *
 * A block's quants ("natural" order, as quantize_row writes one row):
 * Q8: one int8 per element, x = d * q.
 * Q4: 4 bits per element; byte j (0..15) holds element j in its low nibble and element j + 16
 *     in its high nibble, each stored as q + 8 (q in -8..7); x = d * q. 4.5 bits per weight.
 *
 * Super-block types (llama.cpp's K-quants Q4_K, Q5_K, Q6_K; TypeTraits.unpack set): blocks of 256
 * elements that hold their own scales, stored exactly as ggml stores them (144, 176, 210 bytes;
 * docs/FORMAT.md gives every byte), one row's blocks after another, rows consecutive: no panels
 * and no scales area (has_scales 0). Their kernels take the int8 activations (ACT_Q8, blocks of
 * QK) and unpack 16-row panels on the fly (kernels/kquant.h).
 *
 * K panel types (Q4_KP, Q5_KP, Q6_KP; TypeTraits.kpanel set): a K-quant's blocks, every byte
 * kept (Q6_KP pads each to 212 bytes), stored in panels of QR rows by the Q8/Q4 rule with the
 * whole block as "quants": panel p, super-block b at (p * nb + b) * QR * bb (nb = cols / 256,
 * bb = 144, 176, 212), bytes [4k, 4k + 4) of lane l's block at
 * (k * QR + l) * 4; no scales area. For Q4_KP that puts d/dmin of 16 rows in the first 64-byte
 * line, their 12 scale bytes in the next three and the 128 nibble bytes in the last 32: the
 * decode kernel reads each super-block's scales for 16 rows with three loads and its nibbles a
 * lane per row, as the Q4 kernels do (kernels/x86_avx512.c), where ggml's row order costs a
 * scalar scale decode and a cross-lane scale shuffle per row and super-block.
 *
 * IQ4_XS (kpanel set, KMODE_OFF128): llama.cpp's 136-byte blocks of 256 (f16 d, 16 bits of
 * scales_h, 4 bytes of scales_l, 128 nibble bytes; 4.25 bits per weight), in panels by the same
 * rule (bb = 136): line 0 d and scales_h of 16 rows, line 1 scales_l, lines 2-33 the nibbles, each
 * an index into 16 non-uniform levels (kernels/kquant.c). It has no row-by-row form. */
#ifndef PHI_BLOCKS_H
#define PHI_BLOCKS_H

#include <stddef.h>
#include <stdint.h>

#include "base/half.h" /* scales are IEEE half */

#define QK 32 /* elements per quantization block */
#define QR 16 /* rows per panel of a quantized tensor */

typedef enum {
    TENSOR_F32 = 0,
    TENSOR_F16 = 1,
    TENSOR_Q8 = 2,
    TENSOR_Q4 = 3,
    TENSOR_Q4_K = 4, /* ggml's K-quants: super-blocks of 256, stored verbatim (below) */
    TENSOR_Q5_K = 5,
    TENSOR_Q6_K = 6,
    TENSOR_Q4_KP = 7, /* the K-quants blocks in 16-row panels (below): what the kernels stream fastest */
    TENSOR_Q5_KP = 8,
    TENSOR_Q6_KP = 9, /* Q6_K blocks padded to 212 bytes, in panels */
    TENSOR_IQ4_XS = 10, /* llama.cpp's IQ4_XS blocks (4.25 bits per weight), in panels */
    TENSOR_TYPE_COUNT
} TensorType;

/* What a type's matrices are multiplied with (kernels/kernels.h: matvec, matmul). */
typedef enum {
    ACT_F32 = 0, /* the float activations, float FMA */
    ACT_Q8 = 1,  /* activations quantized to int8 per block of QK (quantize_act_q8), integer
                  * block dots (the type's block must be QK) */
} ActFormat;

/* Everything the code asks about a tensor type: one row per type in type_table (blocks.c).
 * Adding a type is a row here plus its kernels (docs/HACKING.md). */
typedef struct {
    const char *name;   /* "f32", "f16", "q8", "q4": file format and command lines */
    int block;          /* elements per block (1 for float types) */
    int block_bytes;    /* bytes of quants per block */
    int has_scales;     /* an f16 scale per block, rows stored in panels of QR (see above) */
    ActFormat act;      /* the activations its matrices take */
    /* One row of n elements (n a multiple of block) to and from floats; d: one scale per block
     * (unused without scales). */
    void (*to_float)(const void *q, const uint16_t *d, float *y, int n);
    void (*from_float)(const float *x, void *q, uint16_t *d, int n);
    /* The same with an importance w[i] >= 0 per element (NULL: all equal); NULL for a type
     * whose quantization has no use for importances (from_float stands in). */
    void (*from_float_w)(const float *x, void *q, uint16_t *d, int n, const float *w);
    /* Reference dot product with floats, in double: a float type's row of n elements, or a
     * quantized block (n = block) without its scale. The oracle (matvec_ref). */
    double (*dot_ref)(const void *q, const float *x, int n);
    /* ACT_Q8 types: integer dot of one block (natural order) with one block of int8
     * activations; the scalar kernel, and what the SIMD kernels' int32 sums must equal. */
    int32_t (*dot_q8)(const uint8_t *w, const int8_t *x);
    /* Super-block types (NULL otherwise): one block of `block` = 256 elements as unsigned
     * integers u and a scale s and offset m per 16 elements, x_i = s[i/16] * u_i - m[i/16]
     * (kernels/kquant.h); kmode says which structure the kernels exploit. dot_q8 is NULL and
     * dot_ref takes a whole row. */
    void (*unpack)(const uint8_t *blk, uint8_t *u, float *s, float *m);
    int kmode; /* KMODE_MIN or KMODE_OFF32 (kernels/kquant.h) */
    /* A super-block type whose rows are stored in panels of QR (a "K panel" type, above); 0 for
     * the row-by-row K-quants. The functions above see its blocks in ggml's natural order. */
    int kpanel;
} TypeTraits;

/* Indexed by TensorType; check a type read from a file with type_traits first. */
extern const TypeTraits type_table[TENSOR_TYPE_COUNT];
#define BLOCK_BYTES_MAX 256 /* the most bytes of a block: Q8 32, K-quants up to 212 */

const TypeTraits *type_traits(uint32_t type); /* NULL for an unknown type */
int type_from_name(const char *name);         /* -1 if unknown */

static inline uint64_t align64(uint64_t x) { return (x + 63) & ~(uint64_t)63; }

/* Bytes of one row's quants; 0 if cols is not a multiple of the block. */
uint64_t type_row_bytes(uint32_t type, uint64_t cols);
/* Rows as stored: rows rounded up to a whole panel for quantized types. */
uint64_t type_stored_rows(uint32_t type, uint64_t rows);
/* Offset of the scales area (quants area rounded up to 64 bytes). */
uint64_t type_scales_offset(uint32_t type, uint64_t rows, uint64_t cols);
/* Total bytes of a tensor; 0 when the shape is invalid for the type or overflows. */
uint64_t type_tensor_bytes(uint32_t type, uint64_t rows, uint64_t cols);
/* Bits per weight including scales (from the type's row). */
double type_bits_per_weight(uint32_t type);

/* A matrix in place: pointers to its quants area (rows or panels, above) and scales area. */
typedef struct {
    uint32_t type;
    int rows, cols;
    const uint8_t *q;  /* quants area */
    const uint16_t *d; /* scales area (NULL for float types) */
} MatView;

MatView matview(uint32_t type, const void *data, int rows, int cols);
/* Row r of a float matrix (F32, F16), in place. */
static inline const uint8_t *matview_row(const MatView *m, int r) {
    return m->q + (uint64_t)r * type_row_bytes(m->type, (uint64_t)m->cols);
}
/* Panel p, block b of a quantized matrix: its QR * block_bytes quants and QR scales. */
static inline const uint8_t *matview_panel_q(const MatView *m, int p, int b) {
    uint64_t bb = (uint64_t)type_table[m->type].block_bytes, nb = (uint64_t)(m->cols / type_table[m->type].block);
    return m->q + ((uint64_t)p * nb + (uint64_t)b) * (QR * bb);
}
static inline const uint16_t *matview_panel_d(const MatView *m, int p, int b) {
    return m->d + ((uint64_t)p * (uint64_t)(m->cols / QK) + (uint64_t)b) * QR;
}
/* Block b of row r of a quantized matrix, gathered from its panel: q gets the block's quants in
 * natural order (block_bytes of them), d its scale (not for a K panel type: d may be NULL). */
void matview_get_block(const MatView *m, int r, int b, uint8_t *q, uint16_t *d);
/* Row r of any matrix in natural order: q gets type_row_bytes bytes, d (quantized types) one
 * scale per block. */
void matview_get_row(const MatView *m, int r, void *q, uint16_t *d);
/* The inverse, into a matrix whose memory is writable (d unused for float types). */
void matview_put_row(const MatView *m, int r, const void *q, const uint16_t *d);
/* Super-block b of row r of a super-block type in natural (ggml) order: in place for the
 * row-by-row types, else gathered from its panel into tmp (block_bytes). */
const uint8_t *matview_kblock(const MatView *m, int r, int b, uint8_t *tmp);
/* Row r dequantized to floats (cols of them). */
void matview_dequant_row(const MatView *m, int r, float *y);

/* Quantize one row of n floats (n a multiple of the block for Q types) into quants q and
 * scales d (d unused for float types). */
void quantize_row(uint32_t type, const float *x, void *q, uint16_t *d, int n);
/* The same with an importance w[i] >= 0 per element (NULL: all equal): Q4 chooses each block's
 * scale to minimise sum w (x - y)^2 (see blocks.c); the other types ignore w. */
void quantize_row_weighted(uint32_t type, const float *x, void *q, uint16_t *d, int n,
                           const float *w);
/* Dequantize one row. */
void dequantize_row(uint32_t type, const void *q, const uint16_t *d, float *y, int n);
/* One Q4 block of QK values with importances w (all 1.0 for none): its scale (returned) and
 * nibbles qb, the scale search (blocks.c) evaluating its candidates at SIMD level `simd` (0: one
 * pass per candidate, the reference; 1: AVX2; 2: AVX-512F; capped at what the CPU has). Every
 * level gives the same bits; quantize_row uses q4_search_simd_level(). For tests. */
uint16_t q4_quantize_block_level(const float *x, const float *w, int simd, uint8_t *qb);
/* The level quantize_row uses on this CPU (0 off x86-64). */
int q4_search_simd_level(void);

#endif
