/* Safetensors reader. The header is validated in full against the file size before anything
 * is read; tensors are kept sorted by name so lookups are a binary search and duplicate
 * names show up as neighbours. */
#include "base/errmsg.h"
#include "base/half.h"
#include "convert/safetensors.h"

#include "base/json.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER (100u * 1024 * 1024)

typedef struct {
    const char *name;
    StDtype dtype;
    unsigned bytes; /* per element */
} DtypeInfo;

static const DtypeInfo dtypes[] = {
    {"F32", ST_F32, 4},       {"F16", ST_F16, 2},      {"BF16", ST_BF16, 2},
    {"F64", ST_OTHER, 8},     {"I64", ST_OTHER, 8},    {"U64", ST_OTHER, 8},
    {"I32", ST_OTHER, 4},     {"U32", ST_OTHER, 4},    {"I16", ST_OTHER, 2},
    {"U16", ST_OTHER, 2},     {"I8", ST_OTHER, 1},     {"U8", ST_OTHER, 1},
    {"BOOL", ST_OTHER, 1},    {"F8_E4M3", ST_OTHER, 1}, {"F8_E5M2", ST_OTHER, 1},
    {"F8_E8M0", ST_OTHER, 1},
};

/* 0 for a dtype this reader does not know the size of (its byte count is not checked) */
static unsigned dtype_lookup(const char *name, StDtype *dt) {
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (strcmp(dtypes[i].name, name) == 0) {
            *dt = dtypes[i].dtype;
            return dtypes[i].bytes;
        }
    *dt = ST_OTHER;
    return 0;
}

static int mul_overflows(uint64_t a, uint64_t b, uint64_t *out) {
    if (a && b > UINT64_MAX / a) return 1;
    *out = a * b;
    return 0;
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp(((const StTensor *)a)->name, ((const StTensor *)b)->name);
}

static void free_tensors(StFile *f) {
    for (int i = 0; i < f->n; i++) free(f->tensors[i].name);
    free(f->tensors);
    f->tensors = NULL;
    f->n = 0;
}

/* Fills t from one header entry; data_size bounds the offsets. */
static int parse_entry(const char *name, const JsonValue *e, uint64_t data_start,
                       uint64_t data_size, StTensor *t, char *err, size_t errlen) {
    char pn[96];
    const char *shown = err_printable(name, strlen(name), pn, sizeof pn);
    if (json_type(e) != JSON_OBJECT) {
        errorf(err, errlen, "tensor '%s': entry is not an object", shown);
        return -1;
    }
    size_t dlen;
    const char *dtype = json_str(json_get(e, "dtype"), &dlen);
    if (!dtype) {
        errorf(err, errlen, "tensor '%s': missing or non-string 'dtype'", shown);
        return -1;
    }
    if (dlen == 0 || dlen >= sizeof t->dtype_name || memchr(dtype, '\0', dlen)) {
        char pd[40];
        errorf(err, errlen, "tensor '%s': invalid dtype '%s'", shown,
                err_printable(dtype, dlen, pd, sizeof pd));
        return -1;
    }
    memcpy(t->dtype_name, dtype, dlen + 1);
    unsigned esize = dtype_lookup(dtype, &t->dtype);

    const JsonValue *shape = json_get(e, "shape");
    if (json_type(shape) != JSON_ARRAY) {
        errorf(err, errlen, "tensor '%s': missing or non-array 'shape'", shown);
        return -1;
    }
    size_t nd = json_count(shape);
    if (nd > ST_MAX_DIMS) {
        errorf(err, errlen, "tensor '%s': %zu dimensions (at most %d)", shown, nd, ST_MAX_DIMS);
        return -1;
    }
    t->ndim = (int)nd;
    uint64_t numel = 1;
    int overflow = 0;
    for (size_t i = 0; i < nd; i++) {
        long long d;
        if (json_int(json_at(shape, i), &d) || d < 0) {
            errorf(err, errlen, "tensor '%s': shape[%zu] is not a non-negative integer", shown, i);
            return -1;
        }
        t->shape[i] = (uint64_t)d;
        if (mul_overflows(numel, (uint64_t)d, &numel)) overflow = 1;
    }
    /* a zero dimension makes a later overflow harmless, so check the product at the end */
    for (size_t i = 0; i < nd; i++)
        if (t->shape[i] == 0) overflow = 0, numel = 0;

    const JsonValue *offs = json_get(e, "data_offsets");
    long long b, en;
    if (json_type(offs) != JSON_ARRAY || json_count(offs) != 2 || json_int(json_at(offs, 0), &b) ||
        json_int(json_at(offs, 1), &en) || b < 0 || en < 0) {
        errorf(err, errlen, "tensor '%s': 'data_offsets' must be [begin, end] of non-negative integers",
                shown);
        return -1;
    }
    if (en < b) {
        errorf(err, errlen, "tensor '%s': data_offsets end %lld before begin %lld", shown, en, b);
        return -1;
    }
    if ((uint64_t)en > data_size) {
        errorf(err, errlen, "tensor '%s': data_offsets end %lld beyond the data (%llu bytes)", shown,
                en, (unsigned long long)data_size);
        return -1;
    }
    uint64_t bytes;
    if (overflow || (esize && mul_overflows(numel, esize, &bytes))) {
        errorf(err, errlen, "tensor '%s': shape is too large", shown);
        return -1;
    }
    if (esize && bytes != (uint64_t)(en - b)) {
        errorf(err, errlen, "tensor '%s': %s shape needs %llu bytes but data_offsets span %llu",
                shown, t->dtype_name, (unsigned long long)bytes, (unsigned long long)(en - b));
        return -1;
    }
    t->begin = data_start + (uint64_t)b;
    t->end = data_start + (uint64_t)en;
    return 0;
}

static int cmp_begin(const void *a, const void *b) {
    const StTensor *x = *(const StTensor *const *)a, *y = *(const StTensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* No two tensors share a byte of data (empty ones take none): the format says so, and a tensor
 * read through another's bytes would convert to garbage. ts: n parsed tensors, names set. */
static int check_overlap(const StTensor *ts, int n, uint64_t data_start, char *err, size_t errlen) {
    const StTensor **v = malloc((n ? (size_t)n : 1) * sizeof *v);
    if (!v) return errorf(err, errlen, "out of memory");
    int m = 0, rc = 0;
    for (int i = 0; i < n; i++)
        if (ts[i].end > ts[i].begin) v[m++] = &ts[i];
    qsort(v, (size_t)m, sizeof *v, cmp_begin);
    for (int i = 1; i < m && !rc; i++) {
        const StTensor *a = v[i - 1], *b = v[i];
        if (a->end <= b->begin) continue;
        char pa[96], pb[96];
        rc = errorf(err, errlen, "tensors '%s' [%llu, %llu) and '%s' [%llu, %llu) overlap in data_offsets",
                    err_printable(a->name, strlen(a->name), pa, sizeof pa),
                    (unsigned long long)(a->begin - data_start), (unsigned long long)(a->end - data_start),
                    err_printable(b->name, strlen(b->name), pb, sizeof pb),
                    (unsigned long long)(b->begin - data_start), (unsigned long long)(b->end - data_start));
    }
    free(v);
    return rc;
}

int st_parse_header(const uint8_t *buf, size_t buflen, uint64_t file_size, StFile *f,
                    char *err, size_t errlen) {
    f->n = 0;
    f->tensors = NULL;
    if (buflen < 8 || file_size < 8) {
        errorf(err, errlen, "file too small for a safetensors header (%llu bytes)",
                (unsigned long long)file_size);
        return -1;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | buf[i];
    if (hlen > file_size - 8) {
        errorf(err, errlen, "header length %llu exceeds the file size %llu",
                (unsigned long long)hlen, (unsigned long long)file_size);
        return -1;
    }
    if (hlen > ST_MAX_HEADER) {
        errorf(err, errlen, "header length %llu exceeds the %u byte limit", (unsigned long long)hlen,
                ST_MAX_HEADER);
        return -1;
    }
    if (buflen - 8 < hlen) {
        errorf(err, errlen, "header truncated (%zu of %llu bytes)", buflen - 8,
                (unsigned long long)hlen);
        return -1;
    }
    char jerr[200];
    Json *doc = json_parse((const char *)buf + 8, (size_t)hlen, jerr, sizeof jerr);
    if (!doc) {
        errorf(err, errlen, "header: %s", jerr);
        return -1;
    }
    const JsonValue *root = json_root(doc);
    if (json_type(root) != JSON_OBJECT) {
        errorf(err, errlen, "header is not a JSON object");
        json_free(doc);
        return -1;
    }
    uint64_t data_start = 8 + hlen, data_size = file_size - data_start;
    size_t count = json_count(root);
    StTensor *ts = calloc(count ? count : 1, sizeof *ts);
    int n = 0;
    if (!ts) {
        errorf(err, errlen, "out of memory");
        json_free(doc);
        return -1;
    }
    f->tensors = ts;
    for (size_t i = 0; i < count; i++) {
        size_t klen;
        const char *key = json_key_at(root, i, &klen);
        if (klen == 12 && memcmp(key, "__metadata__", 12) == 0) continue;
        char pn[96];
        if (klen == 0 || memchr(key, '\0', klen)) {
            errorf(err, errlen, "invalid tensor name '%s'", err_printable(key, klen, pn, sizeof pn));
            goto fail;
        }
        if (n == INT32_MAX) {
            errorf(err, errlen, "too many tensors");
            goto fail;
        }
        StTensor *t = &ts[n];
        if (parse_entry(key, json_value_at(root, i), data_start, data_size, t, err, errlen)) goto fail;
        if (!(t->name = strdup(key))) {
            errorf(err, errlen, "out of memory");
            goto fail;
        }
        f->n = ++n;
    }
    json_free(doc);
    doc = NULL;
    qsort(ts, (size_t)n, sizeof *ts, cmp_tensor_name);
    for (int i = 1; i < n; i++)
        if (strcmp(ts[i - 1].name, ts[i].name) == 0) {
            char pn[96];
            errorf(err, errlen, "duplicate tensor name '%s'",
                    err_printable(ts[i].name, strlen(ts[i].name), pn, sizeof pn));
            goto fail;
        }
    if (check_overlap(ts, n, data_start, err, errlen)) goto fail;
    f->file_size = file_size;
    f->data_start = data_start;
    return 0;
fail:
    json_free(doc);
    free_tensors(f);
    return -1;
}

int st_open(const char *path, StFile *f, char *err, size_t errlen) {
    memset(f, 0, sizeof *f);
    f->fd = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        errorf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        errorf(err, errlen, "%s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        errorf(err, errlen, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    uint64_t size = (uint64_t)st.st_size;
    uint8_t head[8];
    size_t want = 8;
    uint8_t *buf = NULL;
    char msg[256];
    if (size >= 8 && pread(fd, head, 8, 0) == 8) {
        uint64_t hlen = 0;
        for (int i = 7; i >= 0; i--) hlen = hlen << 8 | head[i];
        /* read the header only when it is plausible; otherwise parse reports why not */
        if (hlen <= size - 8 && hlen <= ST_MAX_HEADER) want = 8 + (size_t)hlen;
    }
    size_t got = 0;
    if (size >= 8) {
        if (!(buf = malloc(want))) {
            errorf(err, errlen, "%s: out of memory", path);
            close(fd);
            return -1;
        }
        while (got < want) {
            ssize_t r = pread(fd, buf + got, want - got, (off_t)got);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) break;
            got += (size_t)r;
        }
    }
    if (st_parse_header(buf ? buf : head, got, size, f, msg, sizeof msg)) {
        errorf(err, errlen, "%s: %s", path, msg);
        free(buf);
        close(fd);
        return -1;
    }
    free(buf);
    if (!(f->path = strdup(path))) {
        errorf(err, errlen, "%s: out of memory", path);
        free_tensors(f);
        close(fd);
        return -1;
    }
    f->fd = fd;
    return 0;
}

void st_close(StFile *f) {
    if (!f) return;
    if (f->fd >= 0) close(f->fd);
    free_tensors(f);
    free(f->path);
    memset(f, 0, sizeof *f);
    f->fd = -1;
}

const StTensor *st_find(const StFile *f, const char *name) {
    if (!f || !f->n || !name) return NULL;
    StTensor key;
    key.name = (char *)name;
    return bsearch(&key, f->tensors, (size_t)f->n, sizeof key, cmp_tensor_name);
}

uint64_t st_numel(const StTensor *t) {
    uint64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i]; /* validated: no overflow */
    return n;
}

/* Converts n elements of esize bytes at the start of out to float32 in place; runs from the
 * last element down so that no source bytes are overwritten before they are read. BF16, the
 * checkpoints' usual type, goes 16 at a time (each group read whole before it is written: its
 * output lies at or above its input), which the compiler turns into vector shifts; it was 6 % of
 * a conversion's CPU time one at a time. Hosts are little-endian (docs/FORMAT.md). */
static void convert_in_place(float *out, size_t n, StDtype dt) {
    unsigned char *b = (unsigned char *)out;
    size_t i = n;
    if (dt == ST_BF16)
        for (; i >= 16; i -= 16) {
            uint16_t h[16];
            uint32_t u[16];
            memcpy(h, b + 2 * (i - 16), sizeof h);
            for (int k = 0; k < 16; k++) u[k] = (uint32_t)h[k] << 16;
            memcpy(b + 4 * (i - 16), u, sizeof u);
        }
    while (i-- > 0) {
        float x;
        if (dt == ST_F32) {
            const unsigned char *s = b + 4 * i;
            x = phi_bits_to_f32((uint32_t)s[0] | (uint32_t)s[1] << 8 | (uint32_t)s[2] << 16 |
                            (uint32_t)s[3] << 24);
        } else {
            const unsigned char *s = b + 2 * i;
            uint16_t h = (uint16_t)(s[0] | s[1] << 8);
            x = dt == ST_BF16 ? bf16_to_f32(h) : fp16_to_f32(h);
        }
        memcpy(b + 4 * i, &x, 4);
    }
}

int st_read_f32(const StFile *f, const StTensor *t, uint64_t start, uint64_t count, float *out,
                char *err, size_t errlen) {
    char pn[96];
    const char *shown = err_printable(t->name, strlen(t->name), pn, sizeof pn);
    const char *path = f->path ? f->path : "safetensors";
    if (t->dtype == ST_OTHER) {
        errorf(err, errlen, "%s: tensor %s has unsupported dtype %s", path, shown, t->dtype_name);
        return -1;
    }
    uint64_t numel = st_numel(t);
    if (start > numel || count > numel - start) {
        errorf(err, errlen, "%s: tensor %s: elements [%llu, +%llu) out of range (%llu)", path, shown,
                (unsigned long long)start, (unsigned long long)count, (unsigned long long)numel);
        return -1;
    }
    unsigned esize = t->dtype == ST_F32 ? 4 : 2;
    const size_t chunk = (1u << 20) / 4; /* elements per pread */
    uint64_t done = 0;
    while (done < count) {
        size_t n = count - done < chunk ? (size_t)(count - done) : chunk;
        unsigned char *dst = (unsigned char *)(out + done);
        uint64_t off = t->begin + (start + done) * esize;
        size_t want = n * esize, got = 0;
        while (got < want) {
            ssize_t r = pread(f->fd, dst + got, want - got, (off_t)(off + got));
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) {
                errorf(err, errlen, "%s: tensor %s: %s", path, shown,
                        r < 0 ? strerror(errno) : "unexpected end of file");
                return -1;
            }
            got += (size_t)r;
        }
        convert_in_place(out + done, n, t->dtype);
        done += n;
    }
    return 0;
}
