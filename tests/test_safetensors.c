/* Safetensors reader: exact BF16/F16/F32 conversion, header validation, real checkpoint. */
#include "convert/safetensors.h"
#include "tests/harness.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

static char err[512];

static int one_line(const char *s) { return s[0] && !strchr(s, '\n'); }

/* Builds a file image: 8-byte length, header, data. */
static uint8_t *make_image(const char *header, const void *data, size_t dlen, size_t *len) {
    size_t h = strlen(header);
    uint8_t *b = malloc(8 + h + dlen + 1);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)h >> (8 * i));
    memcpy(b + 8, header, h);
    if (dlen) memcpy(b + 8 + h, data, dlen);
    *len = 8 + h + dlen;
    return b;
}

static int write_file(const char *path, const void *buf, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(buf, 1, len, f);
    return fclose(f) == 0 && w == len ? 0 : -1;
}

static uint32_t f32_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

static int same_float(float a, float b) { return f32_bits(a) == f32_bits(b) || (isnan(a) && isnan(b)); }

/* IEEE half to float by arithmetic (independent of the bit manipulation under test). */
static float half_ref(uint16_t h) {
    int sign = h >> 15, e = h >> 10 & 31, m = h & 1023;
    double v;
    if (e == 31) v = m ? NAN : INFINITY;
    else if (e == 0) v = ldexp(m, -24);
    else v = ldexp(1024 + m, e - 25);
    return (float)(sign ? -v : v);
}

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }

static void test_values(void) {
    /* data: bf16[2][3] @0, f16[65536] @12, f32[2][2] @131084, i8[4] @131100, scalar f32 @131104,
     * empty f32[0][3] @131108 */
    enum { BF = 0, F16 = 12, F32 = 12 + 131072, I8 = F32 + 16, SC = I8 + 4, END = SC + 4 };
    uint8_t *data = calloc(1, END);
    float bf_vals[6];
    t_seed(7);
    for (int i = 0; i < 6; i++) {
        bf_vals[i] = t_randf() * 100;
        uint32_t u = f32_bits(bf_vals[i]) & 0xFFFF0000u;
        memcpy(&bf_vals[i], &u, 4);
        put16(data + BF + 2 * i, (uint16_t)(u >> 16));
    }
    for (uint32_t i = 0; i < 65536; i++) put16(data + F16 + 2 * i, (uint16_t)i);
    float f32_vals[4] = {1.5f, -0.0f, 3.4028235e38f, 1e-45f};
    for (int i = 0; i < 4; i++) put32(data + F32 + 4 * i, f32_bits(f32_vals[i]));
    put32(data + SC, f32_bits(42.0f));
    char header[1024];
    snprintf(header, sizeof header,
             "{\"__metadata__\":{\"format\":\"pt\"},"
             "\"w.bf16\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[%d,%d]},"
             "\"w.f16\":{\"dtype\":\"F16\",\"shape\":[65536],\"data_offsets\":[%d,%d]},"
             "\"w.f32\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[%d,%d]},"
             "\"w.i8\":{\"dtype\":\"I8\",\"shape\":[4],\"data_offsets\":[%d,%d]},"
             "\"scalar\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[%d,%d]},"
             "\"empty\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[%d,%d]}}    ",
             BF, F16, F16, F32, F32, I8, I8, SC, SC, END, END, END);
    size_t len;
    uint8_t *img = make_image(header, data, END, &len);
    char path[512];
    snprintf(path, sizeof path, "%s/st_values.safetensors", t_tmp_dir());
    StFile f;
    err[0] = 0;
    if (!t_check(write_file(path, img, len) == 0 && st_open(path, &f, err, sizeof err) == 0,
                 "st_open_valid", "%s", err))
        return;
    t_check(f.n == 6 && st_find(&f, "__metadata__") == NULL && st_find(&f, "nope") == NULL &&
                f.data_start == 8 + strlen(header) && f.file_size == len,
            "st_header_fields", "%d tensors, metadata ignored", f.n);

    const StTensor *t = st_find(&f, "w.bf16");
    float out[65536];
    int ok = t && t->dtype == ST_BF16 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 &&
             st_numel(t) == 6 && st_read_f32(&f, t, 0, 6, out, err, sizeof err) == 0;
    for (int i = 0; ok && i < 6; i++) ok = same_float(out[i], bf_vals[i]);
    t_check(ok, "st_bf16_exact", "%s", err);
    ok = t && st_read_f32(&f, t, 2, 3, out, err, sizeof err) == 0 && same_float(out[0], bf_vals[2]) &&
         same_float(out[2], bf_vals[4]);
    t_check(ok, "st_partial_read", "elements [2, 5)");

    t = st_find(&f, "w.f16");
    ok = t && t->dtype == ST_F16 && st_read_f32(&f, t, 0, 65536, out, err, sizeof err) == 0;
    int bad = -1;
    for (uint32_t i = 0; ok && i < 65536; i++)
        if (!same_float(out[i], half_ref((uint16_t)i)) || (isnan(out[i]) != isnan(half_ref((uint16_t)i)))) {
            ok = 0;
            bad = (int)i;
        }
    t_check(ok, "st_f16_all_values", "65536 halves incl. subnormals, +-0, inf, nan%s",
            bad >= 0 ? " (first mismatch printed below)" : "");
    if (bad >= 0) printf("  half 0x%04x -> %g, want %g\n", bad, out[bad], half_ref((uint16_t)bad));
    t_check(ok && out[1] == ldexpf(1, -24) && out[0x3C00] == 1.0f && out[0x7BFF] == 65504.0f &&
                isinf(out[0x7C00]) && isnan(out[0x7E00]) && signbit(out[0x8000]),
            "st_f16_landmarks", "");

    t = st_find(&f, "w.f32");
    ok = t && t->dtype == ST_F32 && st_read_f32(&f, t, 0, 4, out, err, sizeof err) == 0;
    for (int i = 0; ok && i < 4; i++) ok = same_float(out[i], f32_vals[i]);
    t_check(ok, "st_f32_exact", "incl. -0, FLT_MAX, denormal");

    t = st_find(&f, "scalar");
    t_check(t && t->ndim == 0 && st_numel(t) == 1 && st_read_f32(&f, t, 0, 1, out, err, sizeof err) == 0 &&
                out[0] == 42.0f,
            "st_scalar", "");
    t = st_find(&f, "empty");
    t_check(t && st_numel(t) == 0 && st_read_f32(&f, t, 0, 0, out, err, sizeof err) == 0, "st_empty_tensor", "");

    t = st_find(&f, "w.i8");
    err[0] = 0;
    t_check(t && t->dtype == ST_OTHER && strcmp(t->dtype_name, "I8") == 0 &&
                st_read_f32(&f, t, 0, 4, out, err, sizeof err) == -1 &&
                strstr(err, "tensor w.i8 has unsupported dtype I8") && strstr(err, path) && one_line(err),
            "st_unsupported_dtype", "%s", err);
    t = st_find(&f, "w.f32");
    err[0] = 0;
    t_check(st_read_f32(&f, t, 3, 2, out, err, sizeof err) == -1 && one_line(err) &&
                st_read_f32(&f, t, 5, 0, out, err, sizeof err) == -1 &&
                st_read_f32(&f, t, 1, UINT64_MAX, out, err, sizeof err) == -1,
            "st_read_out_of_range", "%s", err);
    st_close(&f);
    free(img);
    free(data);
}

/* Tensors bigger than one read chunk. */
static void test_large(void) {
    const uint32_t n = 700000; /* 1.4 MB of BF16, 2.8 MB of F32 */
    size_t dlen = (size_t)n * 2 + (size_t)n * 4;
    uint8_t *data = malloc(dlen);
    for (uint32_t i = 0; i < n; i++) {
        float x = (float)i * 0.25f;
        put16(data + 2 * (size_t)i, (uint16_t)(f32_bits((float)(i % 256)) >> 16));
        put32(data + 2 * (size_t)n + 4 * (size_t)i, f32_bits(x));
    }
    char header[256];
    snprintf(header, sizeof header,
             "{\"a\":{\"dtype\":\"BF16\",\"shape\":[%u],\"data_offsets\":[0,%u]},"
             "\"b\":{\"dtype\":\"F32\",\"shape\":[%u,1],\"data_offsets\":[%u,%zu]}}",
             n, 2 * n, n, 2 * n, dlen);
    size_t len;
    uint8_t *img = make_image(header, data, dlen, &len);
    char path[512];
    snprintf(path, sizeof path, "%s/st_large.safetensors", t_tmp_dir());
    StFile f;
    float *out = malloc((size_t)n * sizeof *out);
    int ok = write_file(path, img, len) == 0 && st_open(path, &f, err, sizeof err) == 0;
    if (ok) {
        ok = st_read_f32(&f, st_find(&f, "a"), 0, n, out, err, sizeof err) == 0;
        for (uint32_t i = 0; ok && i < n; i++) ok = out[i] == (float)(i % 256);
        int ok2 = st_read_f32(&f, st_find(&f, "b"), 1, n - 1, out, err, sizeof err) == 0;
        for (uint32_t i = 0; ok2 && i < n - 1; i++) ok2 = out[i] == (float)(i + 1) * 0.25f;
        ok = ok && ok2;
        st_close(&f);
    }
    t_check(ok, "st_multi_chunk_read", "%u elements BF16 and F32 across chunk borders %s", n, err);
    /* the file shrinks after opening: reads past its end fail cleanly */
    ok = st_open(path, &f, err, sizeof err) == 0 && truncate(path, (off_t)(len - 100)) == 0;
    err[0] = 0;
    t_check(ok && st_read_f32(&f, st_find(&f, "b"), 0, n, out, err, sizeof err) == -1 && one_line(err),
            "st_short_read", "%s", err);
    if (ok) st_close(&f);
    free(out);
    free(img);
    free(data);
}

/* Header text (and optional raw bytes) that must be refused. */
static void expect_bad_header(const char *name, const char *header, size_t data_len, const char *want) {
    size_t len;
    uint8_t *zeros = calloc(1, data_len + 1);
    uint8_t *img = make_image(header, zeros, data_len, &len);
    StFile f;
    memset(&f, 0, sizeof f);
    f.fd = -1;
    err[0] = 0;
    int rc = st_parse_header(img, len, len, &f, err, sizeof err);
    t_check(rc == -1 && one_line(err) && f.n == 0 && f.tensors == NULL && (!want || strstr(err, want)), name,
            "%s", rc ? err : "accepted");
    if (!rc) st_close(&f);
    free(img);
    free(zeros);
}

static void test_bad_headers(void) {
    StFile f;
    uint8_t small[8] = {0};
    int ok = 1;
    for (size_t n = 0; n < 8; n++) {
        err[0] = 0;
        ok &= st_parse_header(small, n, n, &f, err, sizeof err) == -1 && one_line(err);
    }
    t_check(ok, "st_bad_too_small", "files of 0..7 bytes");

    uint8_t hdr[16] = {0};
    hdr[0] = 0xE8, hdr[1] = 0x03; /* 1000 */
    err[0] = 0;
    t_check(st_parse_header(hdr, 16, 16, &f, err, sizeof err) == -1 && strstr(err, "exceeds the file"),
            "st_bad_header_beyond_file", "%s", err);
    memset(hdr, 0xFF, 8);
    err[0] = 0;
    t_check(st_parse_header(hdr, 16, 16, &f, err, sizeof err) == -1 && one_line(err),
            "st_bad_header_len_2^64", "%s", err);
    uint64_t big = 150ull << 20;
    for (int i = 0; i < 8; i++) hdr[i] = (uint8_t)(big >> (8 * i));
    err[0] = 0;
    t_check(st_parse_header(hdr, 16, 200ull << 20, &f, err, sizeof err) == -1 && strstr(err, "limit"),
            "st_bad_header_over_100MB", "%s", err);
    hdr[0] = 20, memset(hdr + 1, 0, 7);
    err[0] = 0;
    t_check(st_parse_header(hdr, 16, 100, &f, err, sizeof err) == -1 && strstr(err, "truncated"),
            "st_bad_buffer_truncated", "%s", err);

    static const struct { const char *name, *header, *want; size_t data; } bad[] = {
        {"not_json", "garbage", "json", 0},
        {"array", "[]", "not a JSON object", 0},
        {"entry_not_object", "{\"a\":5}", "not an object", 0},
        {"no_dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", "dtype", 4},
        {"dtype_number", "{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", "dtype", 4},
        {"dtype_long", "{\"a\":{\"dtype\":\"F32XXXXXXXXXXXXXXXX\",\"shape\":[1],\"data_offsets\":[0,4]}}", "dtype", 4},
        {"no_shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", "shape", 4},
        {"shape_string", "{\"a\":{\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]}}", "shape", 4},
        {"shape_negative", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", "shape", 4},
        {"shape_fraction", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", "shape", 4},
        {"shape_bool", "{\"a\":{\"dtype\":\"F32\",\"shape\":[true],\"data_offsets\":[0,4]}}", "shape", 4},
        {"shape_9_dims", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", "dimensions", 4},
        {"no_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", "data_offsets", 4},
        {"offsets_one", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4]}}", "data_offsets", 4},
        {"offsets_three", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,4]}}", "data_offsets", 4},
        {"offsets_negative", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", "data_offsets", 4},
        {"offsets_strings", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",\"4\"]}}", "data_offsets", 4},
        {"end_before_begin", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", "before begin", 4},
        {"end_beyond_data", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "beyond", 4},
        {"offset_huge", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,9223372036854775807]}}", "beyond", 4},
        {"size_mismatch", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", "needs 8 bytes", 8},
        {"bf16_size_mismatch", "{\"a\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[0,4]}}", "needs 6 bytes", 8},
        {"shape_overflow", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],\"data_offsets\":[0,0]}}", "too large", 4},
        {"bytes_overflow", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,0]}}", "too large", 4},
        {"duplicate_name", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                           "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "duplicate tensor name 'a'", 4},
        {"overlap_partly", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                           "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", "overlap", 12},
        {"overlap_same_bytes", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                               "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "'a' [0, 4) and 'b' [0, 4) overlap", 4},
        {"overlap_inside", "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},"
                           "\"a\":{\"dtype\":\"BF16\",\"shape\":[8],\"data_offsets\":[0,16]}}", "overlap", 16},
        {"empty_name", "{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "name", 4},
        {"nul_in_name", "{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "name", 4},
        {"newline_in_name", "{\"a\\nb\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", "a?b", 4},
    };
    char name[64];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(name, sizeof name, "st_bad_%s", bad[i].name);
        expect_bad_header(name, bad[i].header, bad[i].data, bad[i].want);
    }

    /* a zero dimension makes the product 0 even after a huge one; an unknown dtype is kept */
    const char *okh = "{\"z\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776,0],\"data_offsets\":[0,0]},"
                      "\"q\":{\"dtype\":\"Q4_FUTURE\",\"shape\":[3],\"data_offsets\":[0,1]}}";
    size_t len;
    uint8_t *img = make_image(okh, "x", 1, &len);
    memset(&f, 0, sizeof f);
    f.fd = -1;
    int rc = st_parse_header(img, len, len, &f, err, sizeof err);
    const StTensor *q = rc ? NULL : st_find(&f, "q");
    t_check(rc == 0 && st_numel(st_find(&f, "z")) == 0 && q && q->dtype == ST_OTHER &&
                strcmp(q->dtype_name, "Q4_FUTURE") == 0,
            "st_zero_dim_and_unknown_dtype", "%s", rc ? err : "");
    st_close(&f);
    free(img);

    /* every prefix of a valid file as the whole file: clean results, never a crash */
    const char *h = "{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]},"
                    "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}";
    img = make_image(h, "12345678", 8, &len);
    ok = 1;
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1);
        memcpy(copy, img, cut);
        err[0] = 0;
        memset(&f, 0, sizeof f);
        f.fd = -1;
        if (st_parse_header(copy, cut, cut, &f, err, sizeof err) == 0 || !one_line(err)) ok = 0;
        free(copy);
    }
    t_check(ok, "st_truncated_prefixes", "%zu truncated files refused", len);

    /* st_open failures name the file */
    char path[512];
    snprintf(path, sizeof path, "%s/st_short.safetensors", t_tmp_dir());
    write_file(path, img, len - 3);
    err[0] = 0;
    t_check(st_open(path, &f, err, sizeof err) == -1 && strstr(err, path) && one_line(err) && f.fd == -1,
            "st_open_truncated_file", "%s", err);
    write_file(path, img, 5);
    err[0] = 0;
    t_check(st_open(path, &f, err, sizeof err) == -1 && strstr(err, "too small"), "st_open_tiny_file", "%s", err);
    snprintf(path, sizeof path, "%s/does-not-exist.safetensors", t_tmp_dir());
    err[0] = 0;
    t_check(st_open(path, &f, err, sizeof err) == -1 &&
                strstr(err, "does-not-exist") && one_line(err),
            "st_open_missing", "%s", err);
    err[0] = 0;
    t_check(st_open(t_tmp_dir(), &f, err, sizeof err) == -1 && strstr(err, "not a regular file"),
            "st_open_directory", "%s", err);
    st_close(&f); /* harmless on a failed open */
    free(img);
}

static void test_real(void) {
    const char *dir = t_data_dir();
    if (!dir) {
        t_skip("st_real_checkpoint", "no test data folder (PHI_DATA or ../shared/data)");
        return;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/phi3-tiny-ref/mha/model.safetensors", dir);
    StFile f;
    err[0] = 0;
    if (!t_check(st_open(path, &f, err, sizeof err) == 0, "st_real_open", "%s", err)) return;
    const StTensor *t = st_find(&f, "model.layers.0.self_attn.qkv_proj.weight");
    t_check(t && t->dtype == ST_BF16 && t->ndim == 2 && t->shape[0] == 192 && t->shape[1] == 64,
            "st_real_qkv_shape", "[192, 64] BF16");
    float row[64];
    int ok = t && st_read_f32(&f, t, 64 * 5, 64, row, err, sizeof err) == 0;
    float amax = 0;
    for (int i = 0; ok && i < 64; i++) {
        ok = isfinite(row[i]) && (f32_bits(row[i]) & 0xFFFF) == 0;
        if (fabsf(row[i]) > amax) amax = fabsf(row[i]);
    }
    t_check(ok && amax > 0.01f && amax < 10, "st_real_read_row", "row 5: finite BF16 values, max |x| %.3f", amax);
    const StTensor *e = st_find(&f, "model.embed_tokens.weight");
    t_check(e && e->shape[0] == 32064 && e->shape[1] == 64 && e->end <= f.file_size, "st_real_embed_shape",
            "%d tensors", f.n);
    st_close(&f);
}

int main(void) {
    test_values();
    test_large();
    test_bad_headers();
    test_real();
    return t_done();
}
