/* GGUF reader: every count, length, dimension and offset is checked against the bytes that
 * remain before it is used, and nothing is allocated by a count that was not first bounded by
 * the size of the image. See docs/GGUF.md. */
#include "model/gguf.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/errmsg.h"
#include "kernels/ggml_types.h"

typedef struct {
    const uint8_t *b;
    uint64_t size, pos;
    char *err;
    size_t errlen;
} Rd;

/* Smallest encodings: a KV is a key of >= 1 byte (8 + 1), a type (4) and a value (>= 1); a
 * tensor info is a name (8 + 1), n_dims (4), one dim (8), a type (4) and an offset (8). */
#define MIN_KV_BYTES 14u
#define MIN_TENSOR_BYTES 33u

static uint64_t rem(const Rd *r) { return r->size - r->pos; }

static uint64_t get_le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static int rd_u32(Rd *r, uint32_t *v, const char *what) {
    if (rem(r) < 4)
        return errorf(r->err, r->errlen, "gguf: file ends at byte %llu inside %s", (unsigned long long)r->size, what);
    *v = (uint32_t)get_le(r->b + r->pos, 4);
    r->pos += 4;
    return 0;
}

static int rd_u64(Rd *r, uint64_t *v, const char *what) {
    if (rem(r) < 8)
        return errorf(r->err, r->errlen, "gguf: file ends at byte %llu inside %s", (unsigned long long)r->size, what);
    *v = get_le(r->b + r->pos, 8);
    r->pos += 8;
    return 0;
}

/* A string: u64 length then bytes; returns its start and length. */
static int rd_str(Rd *r, const uint8_t **s, uint64_t *len, const char *what) {
    uint64_t at = r->pos;
    if (rd_u64(r, len, what)) return -1;
    if (*len > rem(r))
        return errorf(r->err, r->errlen, "gguf: %s at byte %llu: length %llu exceeds the %llu bytes left", what,
                      (unsigned long long)at, (unsigned long long)*len, (unsigned long long)rem(r));
    *s = r->b + r->pos;
    r->pos += *len;
    return 0;
}

static const char *const TYPE_NAMES[GGUF_TYPE_COUNT] = {"UINT8", "INT8",   "UINT16", "INT16",  "UINT32",
                                                        "INT32", "FLOAT32", "BOOL",  "STRING", "ARRAY",
                                                        "UINT64", "INT64", "FLOAT64"};

const char *gguf_type_name(uint32_t type) { return type < GGUF_TYPE_COUNT ? TYPE_NAMES[type] : "?"; }

/* Bytes of a fixed-size value type, 0 for STRING and ARRAY. */
static uint32_t fixed_size(uint32_t t) {
    static const uint8_t sz[GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return sz[t];
}

static int is_int_type(uint32_t t) {
    return t <= GGUF_TYPE_INT32 || t == GGUF_TYPE_UINT64 || t == GGUF_TYPE_INT64;
}
static int is_signed_type(uint32_t t) {
    return t == GGUF_TYPE_INT8 || t == GGUF_TYPE_INT16 || t == GGUF_TYPE_INT32 || t == GGUF_TYPE_INT64;
}

/* Printable ASCII without space: what keys and tensor names may hold. */
static int valid_name(const uint8_t *s, uint64_t n) {
    for (uint64_t i = 0; i < n; i++)
        if (s[i] < 0x21 || s[i] > 0x7E) return 0;
    return 1;
}

static char *dup_name(const uint8_t *s, uint64_t n) {
    char *c = malloc((size_t)n + 1);
    if (c) {
        memcpy(c, s, (size_t)n);
        c[n] = '\0';
    }
    return c;
}

/* Walks one array body (element type already read, count read) at depth (1 = a KV's array);
 * offs (may be NULL) receives the offset of each string element. */
static int skip_array(Rd *r, const char *key, uint32_t et, uint64_t count, int depth, uint64_t *offs, uint64_t offs_base);

static int array_header(Rd *r, const char *key, int depth, uint32_t *et, uint64_t *count) {
    if (depth > GGUF_MAX_DEPTH)
        return errorf(r->err, r->errlen, "gguf: key '%s': arrays nested deeper than %d", key, GGUF_MAX_DEPTH);
    if (rd_u32(r, et, "an array element type") || rd_u64(r, count, "an array length")) return -1;
    if (*et >= GGUF_TYPE_COUNT)
        return errorf(r->err, r->errlen, "gguf: key '%s': unknown array element type %u", key, *et);
    uint64_t min = fixed_size(*et);
    if (*et == GGUF_TYPE_STRING) min = 8;
    if (*et == GGUF_TYPE_ARRAY) min = 12;
    if (*count > rem(r) / min)
        return errorf(r->err, r->errlen, "gguf: key '%s': array of %llu %s needs more than the %llu bytes left", key,
                      (unsigned long long)*count, gguf_type_name(*et), (unsigned long long)rem(r));
    return 0;
}

static int skip_array(Rd *r, const char *key, uint32_t et, uint64_t count, int depth, uint64_t *offs, uint64_t offs_base) {
    uint32_t fs = fixed_size(et);
    if (fs) {
        const uint8_t *p = r->b + r->pos;
        if (et == GGUF_TYPE_BOOL)
            for (uint64_t i = 0; i < count; i++)
                if (p[i] > 1)
                    return errorf(r->err, r->errlen, "gguf: key '%s': bool element %llu is %u (must be 0 or 1)", key,
                                  (unsigned long long)i, p[i]);
        r->pos += count * fs; /* bounded by array_header */
        return 0;
    }
    for (uint64_t i = 0; i < count; i++) {
        if (et == GGUF_TYPE_STRING) {
            const uint8_t *s;
            uint64_t len;
            if (offs) offs[i] = r->pos - offs_base;
            if (rd_str(r, &s, &len, "a string element")) return -1;
        } else {
            uint32_t et2;
            uint64_t n2;
            if (array_header(r, key, depth + 1, &et2, &n2) || skip_array(r, key, et2, n2, depth + 1, NULL, 0)) return -1;
        }
    }
    return 0;
}

static int parse_kv(Rd *r, GgufKV *kv, uint64_t idx) {
    const uint8_t *k;
    uint64_t klen;
    uint64_t at = r->pos;
    if (rd_str(r, &k, &klen, "a key")) return -1;
    char pk[96];
    if (klen == 0 || klen > GGUF_MAX_KEY || !valid_name(k, klen))
        return errorf(r->err, r->errlen, "gguf: kv %llu at byte %llu: invalid key '%s' (%llu bytes; keys are 1..%u bytes of printable ASCII)",
                      (unsigned long long)idx, (unsigned long long)at, err_printable((const char *)k, klen, pk, sizeof pk),
                      (unsigned long long)klen, GGUF_MAX_KEY);
    if (!(kv->key = dup_name(k, klen))) return errorf(r->err, r->errlen, "gguf: out of memory");
    const char *key = err_printable(kv->key, klen, pk, sizeof pk);
    if (rd_u32(r, &kv->type, "a value type")) return -1;
    if (kv->type >= GGUF_TYPE_COUNT) return errorf(r->err, r->errlen, "gguf: key '%s': unknown value type %u", key, kv->type);
    uint32_t t = kv->type, fs = fixed_size(t);
    if (fs) {
        if (rem(r) < fs) return errorf(r->err, r->errlen, "gguf: key '%s': file ends inside its value", key);
        uint64_t u = get_le(r->b + r->pos, (int)fs);
        r->pos += fs;
        if (t == GGUF_TYPE_FLOAT32) {
            union { uint32_t u; float f; } c = {(uint32_t)u};
            kv->v.f = c.f;
        } else if (t == GGUF_TYPE_FLOAT64) {
            union { uint64_t u; double f; } c = {u};
            kv->v.f = c.f;
        } else if (is_signed_type(t)) {
            int sh = 64 - 8 * (int)fs;
            kv->v.i = sh ? (int64_t)(u << sh) >> sh : (int64_t)u;
        } else {
            if (t == GGUF_TYPE_BOOL && u > 1)
                return errorf(r->err, r->errlen, "gguf: key '%s': bool value %u (must be 0 or 1)", key, (unsigned)u);
            kv->v.u = u;
        }
        return 0;
    }
    if (t == GGUF_TYPE_STRING) {
        const uint8_t *s;
        if (rd_str(r, &s, &kv->str_len, "a string value")) return -1;
        kv->str = (const char *)s;
        return 0;
    }
    if (array_header(r, key, 1, &kv->arr_type, &kv->arr_count)) return -1;
    kv->arr_data = r->b + r->pos;
    uint64_t start = r->pos;
    if (kv->arr_type == GGUF_TYPE_STRING && kv->arr_count) {
        /* count <= bytes left / 8: the table is at most the size of the image */
        if (!(kv->arr_str_off = malloc((size_t)kv->arr_count * sizeof(uint64_t))))
            return errorf(r->err, r->errlen, "gguf: out of memory");
    }
    if (skip_array(r, key, kv->arr_type, kv->arr_count, 1, kv->arr_str_off, start)) return -1;
    kv->arr_bytes = r->pos - start;
    return 0;
}

static int mul_ok(uint64_t a, uint64_t b, uint64_t *out) {
    if (a && b > UINT64_MAX / a) return 0;
    *out = a * b;
    return 1;
}

static int parse_tensor(Rd *r, GgufTensor *t, uint64_t idx, uint64_t n) {
    const uint8_t *s;
    uint64_t len, at = r->pos;
    char pn[96], e2[160];
    if (rd_str(r, &s, &len, "a tensor name")) return -1;
    if (len == 0 || len > GGUF_MAX_NAME || !valid_name(s, len))
        return errorf(r->err, r->errlen,
                      "gguf: tensor %llu of %llu at byte %llu: invalid name '%s' (%llu bytes; names are 1..%d bytes of printable ASCII)",
                      (unsigned long long)idx, (unsigned long long)n, (unsigned long long)at,
                      err_printable((const char *)s, len, pn, sizeof pn), (unsigned long long)len, GGUF_MAX_NAME);
    if (!(t->name = dup_name(s, len))) return errorf(r->err, r->errlen, "gguf: out of memory");
    if (rd_u32(r, &t->n_dims, "a tensor's n_dims")) return -1;
    if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
        return errorf(r->err, r->errlen, "gguf: tensor '%s': n_dims %u (must be 1..%d)", t->name, t->n_dims, GGUF_MAX_DIMS);
    uint64_t prod = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        if (rd_u64(r, &t->ne[d], "a tensor dimension")) return -1;
        if (t->ne[d] == 0) return errorf(r->err, r->errlen, "gguf: tensor '%s': dimension %u is 0", t->name, d);
        if (!mul_ok(prod, t->ne[d], &prod) || prod > (uint64_t)INT64_MAX)
            return errorf(r->err, r->errlen, "gguf: tensor '%s': the product of its dimensions overflows", t->name);
    }
    t->n_elems = prod;
    t->n_rows = t->ne[1] * t->ne[2] * t->ne[3];
    if (rd_u32(r, &t->type, "a tensor type")) return -1;
    const GgmlTypeInfo *ti = ggml_type_info(t->type);
    if (!ti) return errorf(r->err, r->errlen, "gguf: tensor '%s': unknown type %u", t->name, t->type);
    if (ggml_row_bytes(t->type, t->ne[0], &t->row_bytes, e2, sizeof e2))
        return errorf(r->err, r->errlen, "gguf: tensor '%s': %s", t->name, e2);
    if (!mul_ok(t->row_bytes, t->n_rows, &t->n_bytes))
        return errorf(r->err, r->errlen, "gguf: tensor '%s': its size in bytes overflows", t->name);
    if (rd_u64(r, &t->offset, "a tensor offset")) return -1;
    return 0;
}

static int cmp_offset(const void *a, const void *b) {
    const GgufTensor *x = *(const GgufTensor *const *)a, *y = *(const GgufTensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}
static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* Sorted copies of the names: -1 with the first duplicate. */
static int check_unique(const char **names, uint64_t n, const char *what, Rd *r) {
    if (n < 2) return 0;
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (uint64_t i = 1; i < n; i++)
        if (!strcmp(names[i - 1], names[i]))
            return errorf(r->err, r->errlen, "gguf: duplicate %s '%s'", what, names[i]);
    return 0;
}

void gguf_free(Gguf *g) {
    if (!g) return;
    if (g->kv)
        for (uint64_t i = 0; i < g->n_kv; i++) {
            free((void *)g->kv[i].key);
            free(g->kv[i].arr_str_off);
        }
    if (g->tensors)
        for (uint64_t i = 0; i < g->n_tensors; i++) free((void *)g->tensors[i].name);
    free(g->kv);
    free(g->tensors);
    memset(g, 0, sizeof *g);
}

static int parse_all(Rd *r, Gguf *g) {
    if (r->size < 4 || memcmp(r->b, "GGUF", 4))
        return errorf(r->err, r->errlen, "gguf: not a GGUF file (no 'GGUF' magic in its first 4 bytes)");
    r->pos = 4;
    if (rd_u32(r, &g->version, "the header")) return -1;
    uint32_t v = g->version;
    if (v != 2 && v != 3) {
        uint32_t sw = (v >> 24) | ((v >> 8) & 0xFF00) | ((v << 8) & 0xFF0000) | (v << 24);
        if (sw >= 1 && sw <= 3) return errorf(r->err, r->errlen, "gguf: big-endian GGUF (version %u) is not supported", sw);
        return errorf(r->err, r->errlen, "gguf: unsupported GGUF version %u (phi reads versions 2 and 3)", v);
    }
    if (rd_u64(r, &g->n_tensors, "the header") || rd_u64(r, &g->n_kv, "the header")) return -1;
    if (g->n_kv > rem(r) / MIN_KV_BYTES || g->n_tensors > rem(r) / MIN_TENSOR_BYTES ||
        g->n_kv * MIN_KV_BYTES + g->n_tensors * MIN_TENSOR_BYTES > rem(r))
        return errorf(r->err, r->errlen, "gguf: header counts %llu keys and %llu tensors, more than its %llu bytes can hold",
                      (unsigned long long)g->n_kv, (unsigned long long)g->n_tensors, (unsigned long long)r->size);
    /* Bounded above: at most size / 14 keys and size / 33 tensors. */
    g->kv = calloc(g->n_kv ? (size_t)g->n_kv : 1, sizeof *g->kv);
    g->tensors = calloc(g->n_tensors ? (size_t)g->n_tensors : 1, sizeof *g->tensors);
    if (!g->kv || !g->tensors) return errorf(r->err, r->errlen, "gguf: out of memory");
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (parse_kv(r, &g->kv[i], i)) return -1;

    uint64_t nmax = g->n_kv > g->n_tensors ? g->n_kv : g->n_tensors;
    const char **names = malloc((nmax ? (size_t)nmax : 1) * sizeof *names);
    if (!names) return errorf(r->err, r->errlen, "gguf: out of memory");
    for (uint64_t i = 0; i < g->n_kv; i++) names[i] = g->kv[i].key;
    int rc = check_unique(names, g->n_kv, "key", r);
    free(names);
    if (rc) return -1;

    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const GgufKV *al = gguf_find_key(g, "general.alignment");
    if (al) {
        uint64_t a;
        if (!is_int_type(al->type) || (is_signed_type(al->type) && al->v.i < 0))
            return errorf(r->err, r->errlen, "gguf: general.alignment is %s, not an unsigned integer", gguf_type_name(al->type));
        a = al->v.u;
        if (a == 0 || a > UINT32_MAX || (a & (a - 1)))
            return errorf(r->err, r->errlen, "gguf: general.alignment %llu is not a power of two", (unsigned long long)a);
        g->alignment = (uint32_t)a;
    }

    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (parse_tensor(r, &g->tensors[i], i, g->n_tensors)) return -1;
    uint64_t end = r->pos, a = g->alignment;
    if (end > UINT64_MAX - (a - 1)) return errorf(r->err, r->errlen, "gguf: data offset overflows");
    g->data_offset = (end + a - 1) / a * a;
    if (g->n_tensors && g->data_offset > r->size)
        return errorf(r->err, r->errlen, "gguf: file ends at byte %llu before its data section (byte %llu)",
                      (unsigned long long)r->size, (unsigned long long)g->data_offset);
    uint64_t data_size = g->data_offset <= r->size ? r->size - g->data_offset : 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        GgufTensor *t = &g->tensors[i];
        if (t->offset % a)
            return errorf(r->err, r->errlen, "gguf: tensor '%s': offset %llu is not a multiple of the alignment %llu", t->name,
                          (unsigned long long)t->offset, (unsigned long long)a);
        if (t->offset > data_size || t->n_bytes > data_size - t->offset)
            return errorf(r->err, r->errlen, "gguf: tensor '%s': bytes [%llu, +%llu) of the data section lie outside the file (%llu data bytes)",
                          t->name, (unsigned long long)t->offset, (unsigned long long)t->n_bytes, (unsigned long long)data_size);
        t->data = r->b + g->data_offset + t->offset;
    }
    if (g->n_tensors > 1) {
        GgufTensor **by = malloc((size_t)g->n_tensors * sizeof *by);
        names = malloc((size_t)g->n_tensors * sizeof *names);
        if (!by || !names) {
            free(by);
            free(names);
            return errorf(r->err, r->errlen, "gguf: out of memory");
        }
        for (uint64_t i = 0; i < g->n_tensors; i++) {
            by[i] = &g->tensors[i];
            names[i] = g->tensors[i].name;
        }
        qsort(by, (size_t)g->n_tensors, sizeof *by, cmp_offset);
        rc = 0;
        for (uint64_t i = 1; i < g->n_tensors && !rc; i++)
            if (by[i - 1]->offset + by[i - 1]->n_bytes > by[i]->offset)
                rc = errorf(r->err, r->errlen, "gguf: tensors '%s' and '%s' overlap", by[i - 1]->name, by[i]->name);
        if (!rc) rc = check_unique(names, g->n_tensors, "tensor name", r);
        free(by);
        free(names);
        if (rc) return -1;
    }
    return 0;
}

int gguf_parse(const uint8_t *buf, uint64_t size, Gguf *g, char *err, size_t errlen) {
    memset(g, 0, sizeof *g);
    g->buf = buf;
    g->size = size;
    Rd r = {buf, size, 0, err, errlen};
    if (parse_all(&r, g)) {
        gguf_free(g);
        return -1;
    }
    return 0;
}

const GgufKV *gguf_find_key(const Gguf *g, const char *key) {
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key && !strcmp(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

const GgufTensor *gguf_find_tensor(const Gguf *g, const char *name) {
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (g->tensors[i].name && !strcmp(g->tensors[i].name, name)) return &g->tensors[i];
    return NULL;
}

static const GgufKV *need(const Gguf *g, const char *key, char *err, size_t errlen) {
    const GgufKV *kv = gguf_find_key(g, key);
    if (!kv) errorf(err, errlen, "gguf: key '%s' is missing", key);
    return kv;
}

/* An integer KV as (signed?, value); -1 when not an integer. */
static int kv_int(const GgufKV *kv, int *neg, uint64_t *mag) {
    if (!is_int_type(kv->type)) return -1;
    *neg = is_signed_type(kv->type) && kv->v.i < 0;
    *mag = *neg ? (uint64_t)0 - (uint64_t)kv->v.i : kv->v.u;
    return 0;
}

static int get_int(const Gguf *g, const char *key, int64_t lo, uint64_t hi, uint64_t *out, char *err, size_t errlen) {
    const GgufKV *kv = need(g, key, err, errlen);
    if (!kv) return -1;
    int neg;
    uint64_t mag;
    if (kv_int(kv, &neg, &mag))
        return errorf(err, errlen, "gguf: key '%s' is %s, not an integer", key, gguf_type_name(kv->type));
    if ((neg && (lo >= 0 || mag > (uint64_t)0 - (uint64_t)lo)) || (!neg && mag > hi))
        return errorf(err, errlen, "gguf: key '%s': value %s%llu out of range", key, neg ? "-" : "", (unsigned long long)mag);
    *out = neg ? (uint64_t)0 - mag : mag;
    return 0;
}

int gguf_get_u32(const Gguf *g, const char *key, uint32_t *out, char *err, size_t errlen) {
    uint64_t v;
    if (get_int(g, key, 0, UINT32_MAX, &v, err, errlen)) return -1;
    *out = (uint32_t)v;
    return 0;
}

int gguf_get_i32(const Gguf *g, const char *key, int32_t *out, char *err, size_t errlen) {
    uint64_t v;
    if (get_int(g, key, INT32_MIN, INT32_MAX, &v, err, errlen)) return -1;
    *out = (int32_t)(int64_t)v;
    return 0;
}

int gguf_get_u64(const Gguf *g, const char *key, uint64_t *out, char *err, size_t errlen) {
    return get_int(g, key, 0, UINT64_MAX, out, err, errlen);
}

int gguf_get_f32(const Gguf *g, const char *key, float *out, char *err, size_t errlen) {
    const GgufKV *kv = need(g, key, err, errlen);
    if (!kv) return -1;
    if (kv->type != GGUF_TYPE_FLOAT32 && kv->type != GGUF_TYPE_FLOAT64)
        return errorf(err, errlen, "gguf: key '%s' is %s, not a float", key, gguf_type_name(kv->type));
    if (isfinite(kv->v.f) && fabs(kv->v.f) > FLT_MAX)
        return errorf(err, errlen, "gguf: key '%s': value %g out of float range", key, kv->v.f);
    *out = (float)kv->v.f;
    return 0;
}

int gguf_get_bool(const Gguf *g, const char *key, int *out, char *err, size_t errlen) {
    const GgufKV *kv = need(g, key, err, errlen);
    if (!kv) return -1;
    if (kv->type != GGUF_TYPE_BOOL) return errorf(err, errlen, "gguf: key '%s' is %s, not a bool", key, gguf_type_name(kv->type));
    *out = (int)kv->v.u;
    return 0;
}

int gguf_get_str(const Gguf *g, const char *key, const char **s, uint64_t *len, char *err, size_t errlen) {
    const GgufKV *kv = need(g, key, err, errlen);
    if (!kv) return -1;
    if (kv->type != GGUF_TYPE_STRING)
        return errorf(err, errlen, "gguf: key '%s' is %s, not a string", key, gguf_type_name(kv->type));
    *s = kv->str;
    *len = kv->str_len;
    return 0;
}

int gguf_get_arr(const Gguf *g, const char *key, uint32_t elem_type, const GgufKV **kvp, uint64_t *count, char *err,
                 size_t errlen) {
    const GgufKV *kv = need(g, key, err, errlen);
    if (!kv) return -1;
    if (kv->type != GGUF_TYPE_ARRAY)
        return errorf(err, errlen, "gguf: key '%s' is %s, not an array", key, gguf_type_name(kv->type));
    if (elem_type != GGUF_TYPE_COUNT && kv->arr_type != elem_type)
        return errorf(err, errlen, "gguf: key '%s' is an array of %s, not of %s", key, gguf_type_name(kv->arr_type),
                      gguf_type_name(elem_type));
    *kvp = kv;
    *count = kv->arr_count;
    return 0;
}

int gguf_arr_int(const GgufKV *kv, uint64_t i, int64_t *out) {
    if (kv->type != GGUF_TYPE_ARRAY || i >= kv->arr_count) return -1;
    uint32_t t = kv->arr_type, fs;
    if (!is_int_type(t) && t != GGUF_TYPE_BOOL) return -1;
    fs = fixed_size(t);
    uint64_t u = get_le(kv->arr_data + i * fs, (int)fs);
    if (is_signed_type(t)) {
        int sh = 64 - 8 * (int)fs;
        *out = sh ? (int64_t)(u << sh) >> sh : (int64_t)u;
    } else {
        if (u > (uint64_t)INT64_MAX) return -1;
        *out = (int64_t)u;
    }
    return 0;
}

int gguf_arr_f32(const GgufKV *kv, uint64_t i, float *out) {
    if (kv->type != GGUF_TYPE_ARRAY || i >= kv->arr_count) return -1;
    if (kv->arr_type == GGUF_TYPE_FLOAT32) {
        union { uint32_t u; float f; } c = {(uint32_t)get_le(kv->arr_data + 4 * i, 4)};
        *out = c.f;
        return 0;
    }
    if (kv->arr_type == GGUF_TYPE_FLOAT64) {
        union { uint64_t u; double f; } c = {get_le(kv->arr_data + 8 * i, 8)};
        *out = (float)c.f;
        return 0;
    }
    return -1;
}

int gguf_arr_str(const GgufKV *kv, uint64_t i, const char **s, uint64_t *len) {
    if (kv->type != GGUF_TYPE_ARRAY || kv->arr_type != GGUF_TYPE_STRING || i >= kv->arr_count || !kv->arr_str_off)
        return -1;
    /* The offset was checked by the parser: the length and bytes lie inside the image. */
    const uint8_t *p = kv->arr_data + kv->arr_str_off[i];
    *len = get_le(p, 8);
    *s = (const char *)p + 8;
    return 0;
}
