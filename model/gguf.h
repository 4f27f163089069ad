/* GGUF reader (versions 2 and 3, little-endian) over an image in memory (the caller maps the
 * file). gguf_parse validates the whole header, metadata and tensor directory before returning;
 * see docs/GGUF.md for the format and the rules. Strings in the image are not NUL-terminated:
 * keys and tensor names are copied (NUL-terminated) into the Gguf, string values stay in the
 * image as (pointer, length). The image must outlive the Gguf.
 *
 * Depends on base/ and on kernels/ggml_types.h (the block layout of each tensor type). */
#ifndef PHI_GGUF_H
#define PHI_GGUF_H

#include <stddef.h>
#include <stdint.h>

enum {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT = 13
};

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS 4
#define GGUF_MAX_NAME 63    /* bytes of a tensor name (ggml's 64 with the NUL) */
#define GGUF_MAX_KEY 65535  /* bytes of a key */
#define GGUF_MAX_DEPTH 4    /* nesting of arrays: an array of arrays of arrays of arrays */

typedef struct {
    const char *key;   /* NUL-terminated copy */
    uint32_t type;     /* GGUF_TYPE_* */
    /* Scalars: the value. Integers in i (signed types) or u (unsigned types and bool), floats
     * in f (FLOAT32 widened exactly). */
    union { uint64_t u; int64_t i; double f; } v;
    /* STRING: the bytes in the image. */
    const char *str;
    uint64_t str_len;
    /* ARRAY: element type, count, and where the elements start in the image (arr_bytes bytes). */
    uint32_t arr_type;
    uint64_t arr_count;
    const uint8_t *arr_data;
    uint64_t arr_bytes;
    uint64_t *arr_str_off; /* ARRAY of STRING: offset from arr_data of each element (its length) */
} GgufKV;

typedef struct {
    const char *name;     /* NUL-terminated copy */
    uint32_t n_dims;      /* 1..4 */
    uint64_t ne[GGUF_MAX_DIMS]; /* ne[0] = elements of a row (innermost); unused dims are 1 */
    uint32_t type;        /* GGML_TYPE_* (kernels/ggml_types.h) */
    uint64_t offset;      /* from the start of the data section */
    uint64_t n_elems;     /* product of ne */
    uint64_t n_rows;      /* ne[1] * ne[2] * ne[3] */
    uint64_t row_bytes;
    uint64_t n_bytes;
    const uint8_t *data;  /* in the image */
} GgufTensor;

typedef struct {
    const uint8_t *buf;
    uint64_t size;
    uint32_t version;
    uint64_t n_kv, n_tensors;
    GgufKV *kv;
    GgufTensor *tensors;
    uint32_t alignment;
    uint64_t data_offset; /* start of the data section in the image */
} Gguf;

/* Parses and validates; on error one line in err and -1 (nothing to free). */
int gguf_parse(const uint8_t *buf, uint64_t size, Gguf *g, char *err, size_t errlen);
void gguf_free(Gguf *g);

/* "UINT32", "ARRAY", ... ("?" when out of range). */
const char *gguf_type_name(uint32_t type);

const GgufKV *gguf_find_key(const Gguf *g, const char *key);
const GgufTensor *gguf_find_tensor(const Gguf *g, const char *name);

/* Typed getters: 0 and the value, or -1 and one line (missing key, wrong type, out of range).
 * The integer getters accept any integer type (llama.cpp writes counts as UINT32, INT32 or
 * UINT64) when the value fits; gguf_get_f32 accepts FLOAT32 and FLOAT64 (finite in float range
 * or inf/nan as they are). */
int gguf_get_u32(const Gguf *g, const char *key, uint32_t *out, char *err, size_t errlen);
int gguf_get_i32(const Gguf *g, const char *key, int32_t *out, char *err, size_t errlen);
int gguf_get_u64(const Gguf *g, const char *key, uint64_t *out, char *err, size_t errlen);
int gguf_get_f32(const Gguf *g, const char *key, float *out, char *err, size_t errlen);
int gguf_get_bool(const Gguf *g, const char *key, int *out, char *err, size_t errlen);
int gguf_get_str(const Gguf *g, const char *key, const char **s, uint64_t *len, char *err, size_t errlen);
/* An array: element type and count (elem_type GGUF_TYPE_COUNT accepts any). */
int gguf_get_arr(const Gguf *g, const char *key, uint32_t elem_type, const GgufKV **kv, uint64_t *count,
                 char *err, size_t errlen);

/* Elements of an array KV (i < arr_count; -1 when the element type does not fit). */
int gguf_arr_int(const GgufKV *kv, uint64_t i, int64_t *out);  /* any integer or bool type */
int gguf_arr_f32(const GgufKV *kv, uint64_t i, float *out);    /* FLOAT32 or FLOAT64 */
int gguf_arr_str(const GgufKV *kv, uint64_t i, const char **s, uint64_t *len); /* STRING */

#endif
