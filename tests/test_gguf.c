/* GGUF reader and GGML dequantizers: every block type of a llama.cpp file dequantized bit for bit
 * like the reference, key facts of every fixture GGUF, and a corpus of corrupt files (truncated,
 * flipped, hand-crafted) that must each be rejected with one line or parsed sanely. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "base/json.h"
#include "kernels/ggml_types.h"
#include "model/gguf.h"
#include "tests/gguf_write.h"
#include "tests/harness.h"
#include "tests/sha256.h"

static int one_line(const char *s) { return s[0] && !strchr(s, '\n'); }

typedef struct {
    long cases, rejected, accepted, bad_msg;
    char first_bad[300];
} Stats;

/* Uses what a parse accepted: every string of every string array, the first row of every tensor
 * phi can dequantize. */
static void walk(const Gguf *g) {
    static float row[1 << 16];
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const GgufKV *kv = &g->kv[i];
        if (kv->type == GGUF_TYPE_ARRAY)
            for (uint64_t j = 0; j < kv->arr_count && j < 100000; j++) {
                const char *s;
                uint64_t len;
                int64_t v;
                float f;
                if (gguf_arr_str(kv, j, &s, &len) == 0 && len) (void)*(volatile const char *)(s + len - 1);
                (void)gguf_arr_int(kv, j, &v);
                (void)gguf_arr_f32(kv, j, &f);
            }
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const GgufTensor *t = &g->tensors[i];
        if (t->ne[0] <= (1 << 16)) (void)ggml_dequantize_row(t->type, t->data, row, (int64_t)t->ne[0], NULL, 0);
    }
}

/* Parses a private copy of exactly n bytes (so that any over-read is outside the allocation). */
static int try_parse(const uint8_t *b, size_t n, Stats *st, char *err, size_t errlen) {
    uint8_t *c = malloc(n ? n : 1);
    memcpy(c, b, n);
    Gguf g;
    err[0] = 0;
    int rc = gguf_parse(c, n, &g, err, errlen);
    st->cases++;
    if (rc == 0) {
        st->accepted++;
        walk(&g);
        gguf_free(&g);
    } else {
        st->rejected++;
        if (!one_line(err) && !st->bad_msg++) snprintf(st->first_bad, sizeof st->first_bad, "%.280s", err);
    }
    free(c);
    return rc;
}

/* A crafted corruption that must be rejected with a message containing `want`. */
static void crafted(Stats *st, long *crafted_ok, const char *what, const GwBuf *base, size_t at, uint64_t v, int width,
                    const char *want) {
    uint8_t *c = malloc(base->n);
    memcpy(c, base->b, base->n);
    for (int i = 0; i < width; i++) c[at + i] = (uint8_t)(v >> (8 * i));
    char err[512];
    int rc = try_parse(c, base->n, st, err, sizeof err);
    if (rc == 0 || !strstr(err, want))
        t_check(0, "gguf crafted", "%s: %s (want '%s')", what, rc == 0 ? "accepted" : err, want);
    else
        (*crafted_ok)++;
    free(c);
}

static void test_small(void) {
    GwBuf b = {0};
    GwPos p;
    gw_small(&b, &p, 1, 7);
    Gguf g;
    char err[512];
    int rc = gguf_parse(b.b, b.n, &g, err, sizeof err);
    if (!t_check(rc == 0, "gguf small parse", "%s", rc ? err : "v3, 18 keys of every value type, 17 tensors of 17 types")) return;
    uint32_t u32;
    int32_t i32;
    uint64_t u64;
    float f;
    int bo;
    const char *s;
    uint64_t len;
    const GgufKV *kv;
    uint64_t cnt;
    int ok = g.version == 3 && g.n_kv == 18 && g.n_tensors == (uint64_t)p.n_tensor && g.alignment == 32;
    ok &= gguf_get_str(&g, "general.architecture", &s, &len, err, sizeof err) == 0 && len == 4 && !memcmp(s, "phi3", 4);
    ok &= gguf_get_u32(&g, "test.u8", &u32, err, sizeof err) == 0 && u32 == 7;
    ok &= gguf_get_i32(&g, "test.i8", &i32, err, sizeof err) == 0 && i32 == -7;
    ok &= gguf_get_u32(&g, "test.i8", &u32, err, sizeof err) == -1 && one_line(err); /* negative */
    ok &= gguf_get_i32(&g, "test.i16", &i32, err, sizeof err) == 0 && i32 == -300;
    ok &= gguf_get_u32(&g, "test.u32", &u32, err, sizeof err) == 0 && u32 == 4000000000u;
    ok &= gguf_get_i32(&g, "test.u32", &i32, err, sizeof err) == -1; /* does not fit */
    ok &= gguf_get_i32(&g, "test.i32", &i32, err, sizeof err) == 0 && i32 == -5;
    ok &= gguf_get_u64(&g, "test.u64", &u64, err, sizeof err) == 0 && u64 == 1ull << 40;
    ok &= gguf_get_u32(&g, "test.u64", &u32, err, sizeof err) == -1;
    ok &= gguf_get_f32(&g, "test.f32", &f, err, sizeof err) == 0 && f == 1.5f;
    ok &= gguf_get_f32(&g, "test.f64", &f, err, sizeof err) == 0 && f == (float)3.14159265358979323846;
    ok &= gguf_get_bool(&g, "test.bool", &bo, err, sizeof err) == 0 && bo == 1;
    ok &= gguf_get_u32(&g, "no.such.key", &u32, err, sizeof err) == -1 && strstr(err, "missing") != NULL;
    ok &= gguf_get_str(&g, "test.u8", &s, &len, err, sizeof err) == -1 && strstr(err, "not a string") != NULL;
    ok &= gguf_get_arr(&g, "test.arr_u32", GGUF_TYPE_UINT32, &kv, &cnt, err, sizeof err) == 0 && cnt == 3;
    int64_t iv;
    ok &= gguf_arr_int(kv, 2, &iv) == 0 && iv == 3 && gguf_arr_int(kv, 3, &iv) == -1;
    ok &= gguf_get_arr(&g, "test.arr_str", GGUF_TYPE_STRING, &kv, &cnt, err, sizeof err) == 0 && cnt == 3;
    ok &= gguf_arr_str(kv, 1, &s, &len) == 0 && len == 2 && !memcmp(s, "bc", 2);
    ok &= gguf_arr_str(kv, 2, &s, &len) == 0 && len == 0;
    ok &= gguf_get_arr(&g, "test.nested", GGUF_TYPE_ARRAY, &kv, &cnt, err, sizeof err) == 0 && cnt == 2 && kv->arr_bytes == 2 * 12 + 12;
    ok &= gguf_get_arr(&g, "test.arr_str", GGUF_TYPE_UINT32, &kv, &cnt, err, sizeof err) == -1;
    ok &= gguf_get_arr(&g, "test.empty", GGUF_TYPE_FLOAT32, &kv, &cnt, err, sizeof err) == 0 && cnt == 0;
    t_check(ok, "gguf small keys", "every value type, tolerant integer getters, arrays, nested arrays");

    const GgufTensor *t0 = gguf_find_tensor(&g, "t0"), *t2 = gguf_find_tensor(&g, "t2");
    float row[256];
    ok = t0 && t2 && !gguf_find_tensor(&g, "t9") && t0->n_dims == 2 && t0->ne[0] == 8 && t0->ne[1] == 2 &&
         t0->n_rows == 2 && t0->data == b.b + p.data && t2->type == GGML_TYPE_Q4_K && t2->n_bytes == 144 &&
         ((t2->data - b.b) % 32) == 0;
    ok &= ggml_dequantize_row(t0->type, t0->data + t0->row_bytes, row, 8, err, sizeof err) == 0 && row[0] == 0.0f && row[7] == 1.75f;
    t_check(ok, "gguf small tensors", "dims, offsets, data pointers, F32 row");
    gguf_free(&g);

    /* unsupported and unknown types in the dequantizer */
    ok = ggml_dequantize_row(GGML_TYPE_IQ2_XXS, b.b, row, 256, err, sizeof err) == -1 && !strcmp(err, "unsupported type IQ2_XXS");
    ok &= ggml_dequantize_row(77, b.b, row, 256, err, sizeof err) == -1 && strstr(err, "unknown type 77");
    ok &= ggml_dequantize_row(GGML_TYPE_Q4_0, b.b, row, 31, err, sizeof err) == -1;
    /* Q8_1 and Q8_K (no fixture has them): hand-made blocks */
    {
        uint8_t q81[36], q8k[292];
        float y[256];
        q81[0] = 0x00, q81[1] = 0x3C, q81[2] = 0x55, q81[3] = 0x55; /* d = 1, s ignored */
        for (int j = 0; j < 32; j++) q81[4 + j] = (uint8_t)(int8_t)(j - 16);
        float half = 0.5f;
        memcpy(q8k, &half, 4);
        for (int j = 0; j < 256; j++) q8k[4 + j] = (uint8_t)(int8_t)(j - 128);
        memset(q8k + 260, 0x7F, 32);
        int k8 = ggml_dequantize_row(GGML_TYPE_Q8_1, q81, y, 32, err, sizeof err) == 0;
        for (int j = 0; j < 32; j++) k8 &= y[j] == (float)(j - 16);
        k8 &= ggml_dequantize_row(GGML_TYPE_Q8_K, q8k, y, 256, err, sizeof err) == 0;
        for (int j = 0; j < 256; j++) k8 &= y[j] == 0.5f * (float)(j - 128);
        t_check(k8, "ggml Q8_1 Q8_K", "hand-made blocks dequantize to d * q");
    }
    t_check(ok, "ggml unsupported types", "IQ2_XXS: '%s'", "unsupported type IQ2_XXS");
    free(b.b);
}

/* Truncations, flips and crafted fields over small images; nesting depth. */
static void test_small_corpus(void) {
    Stats st = {0};
    long crafted_ok = 0, ncrafted = 0;
    char err[512];
    GwBuf b = {0};
    GwPos p;
    gw_small(&b, &p, 0, 3);

    /* every truncation point */
    long trunc_acc = 0, trunc_bad = 0;
    size_t need = p.data + 128 + 144; /* the last tensor ends there; the padding after it is optional */
    for (size_t n = 0; n < b.n; n++) {
        int acc = try_parse(b.b, n, &st, err, sizeof err) == 0;
        trunc_acc += acc;
        trunc_bad += acc != (n >= need);
    }
    t_check(trunc_bad == 0, "gguf small truncations",
            "%zu lengths: every one shorter than the end of the last tensor rejected, %ld accepted (trailing padding)", b.n,
            trunc_acc);

    /* every single-byte flip (two patterns) of header and directory */
    for (size_t i = 0; i < p.data; i++)
        for (int k = 0; k < 2; k++) {
            uint8_t old = b.b[i];
            b.b[i] ^= k ? 0xFF : 0x01;
            try_parse(b.b, b.n, &st, err, sizeof err);
            b.b[i] = old;
        }

    /* crafted fields */
#define C(what, at, v, w, want) (ncrafted++, crafted(&st, &crafted_ok, what, &b, at, v, w, want))
    C("version 1", 4, 1, 4, "version 1");
    C("version 4", 4, 4, 4, "version 4");
    C("big-endian", 4, 0x03000000u, 4, "big-endian");
    C("bad magic", 0, 'G' | 'G' << 8 | 'M' << 16 | 'L' << 24, 4, "magic");
    C("huge tensor count", p.n_tensors, 1ull << 62, 8, "more than");
    C("huge kv count", p.n_kv, ~0ull, 8, "more than");
    C("kv count + 1", p.n_kv, 19, 8, "");
    C("huge string length", p.arch_len, 1ull << 60, 8, "exceeds");
    C("string length -1", p.arch_len, ~0ull, 8, "exceeds");
    C("huge key length", p.align_key, 1ull << 40, 8, "exceeds");
    C("empty key", p.align_key, 0, 8, "");
    C("unknown value type", p.u8_type, 13, 4, "unknown value type");
    C("bool 2", p.bool_val, 2, 1, "bool");
    C("bool array element 5", p.abool_val, 5, 1, "bool");
    C("huge array length", p.arr_count, 1ull << 61, 8, "array of");
    C("array element type 99", p.arr_type, 99, 4, "element type");
    C("huge string array", p.sarr_count, 1ull << 59, 8, "array of");
    C("string element length", p.sarr_len1, 1ull << 50, 8, "exceeds");
    C("nested element type", p.nest_type, 77, 4, "element type");
    C("nested count", p.nest_count, 1ull << 58, 8, "array of");
    C("duplicate key", p.key_i8 + 8 + 5, 'u', 1, "duplicate key");
    C("key with a space", p.key_u8 + 8 + 4, ' ', 1, "invalid key");
    C("key with NUL", p.key_u8 + 8 + 4, 0, 1, "invalid key");
    C("alignment 0", p.align_val, 0, 4, "power of two");
    C("alignment 3", p.align_val, 3, 4, "power of two");
    C("alignment 48", p.align_val, 48, 4, "power of two");
    C("alignment 256", p.align_val, 256, 4, "not a multiple");
    C("n_dims 0", p.n_dims[0], 0, 4, "n_dims");
    C("n_dims 5", p.n_dims[1], 5, 4, "n_dims");
    C("dim 0", p.dim[1] + 8, 0, 8, "is 0");
    C("dim 2^63", p.dim[0] + 8, 1ull << 63, 8, "overflows");
    C("dims 2^40 * 2^40", p.dim[2] + 8, 1ull << 40, 8, "");
    C("row not a block multiple", p.dim[1], 33, 8, "multiple of");
    C("huge row", p.dim[2], 1ull << 62, 8, "");
    C("unknown type", p.type[0], 99, 4, "unknown type 99");
    C("removed type", p.type[1], 4, 4, "unsupported type Q4_2");
    C("type 40", p.type[2], 40, 4, "unknown type 40");
    C("offset outside", p.offset[2], 1ull << 20, 8, "outside");
    C("offset 2^64-32", p.offset[2], ~0ull - 31, 8, "outside");
    C("misaligned offset", p.offset[1], 80, 8, "not a multiple");
    C("overlap", p.offset[1], 32, 8, "overlap");
    C("overlap same offset", p.offset[2], 64, 8, "overlap");
    C("duplicate tensor name", p.name[1] + 1, '0', 1, "duplicate tensor");
    C("empty tensor name", p.name_len[0], 0, 8, "");
    C("long tensor name", p.name_len[0], 64, 8, "");
#undef C
    /* "kv count + 1", "empty key" etc. only need a rejection: want "" matches any message */

    /* version 2 has the same layout as 3 */
    b.b[4] = 2;
    t_check(try_parse(b.b, b.n, &st, err, sizeof err) == 0, "gguf version 2", "parses like version 3%s%s", err[0] ? ": " : "", err);
    b.b[4] = 3;

    /* nesting depth: GGUF_MAX_DEPTH parses, one more does not */
    GwBuf nb = {0};
    gw_nested(&nb, GGUF_MAX_DEPTH);
    int deep_ok = try_parse(nb.b, nb.n, &st, err, sizeof err) == 0;
    gw_nested(&nb, GGUF_MAX_DEPTH + 1);
    deep_ok &= try_parse(nb.b, nb.n, &st, err, sizeof err) == -1 && strstr(err, "nested") != NULL;
    gw_nested(&nb, 1000);
    deep_ok &= try_parse(nb.b, nb.n, &st, err, sizeof err) == -1;
    t_check(deep_ok, "gguf nesting depth", "%d levels parse, %d and 1000 are rejected (%s)", GGUF_MAX_DEPTH,
            GGUF_MAX_DEPTH + 1, err);
    free(nb.b);

    /* a file with every type phi dequantizes: truncations */
    gw_small(&b, &p, 1, 11);
    for (size_t n = 0; n < b.n; n += 7) try_parse(b.b, n, &st, err, sizeof err);
    try_parse(b.b, b.n, &st, err, sizeof err);

    t_check(crafted_ok == ncrafted, "gguf crafted fields", "%ld of %ld rejected with the expected message", crafted_ok,
            ncrafted);
    t_check(st.bad_msg == 0, "gguf small corpus",
            "%ld images (truncations, %zu x 2 byte flips, %ld crafted, nesting): %ld rejected with one line, %ld parsed %s",
            st.cases, p.data, ncrafted, st.rejected, st.accepted, st.bad_msg ? st.first_bad : "");
    free(b.b);
}

/* (a) every tensor TYPE of gguf-types.gguf against TYPE.rows0-15 and the sha256 in the json */
static void test_types(const char *dir) {
    char path[600], err[512];
    snprintf(path, sizeof path, "%s/phi3-gguf/gguf-types.gguf", dir);
    uint64_t size;
    uint8_t *buf = t_read_all(path, &size);
    snprintf(path, sizeof path, "%s/phi3-gguf/gguf-types.json", dir);
    Json *js = json_parse_file(path, err, sizeof err);
    if (!buf || !js) {
        t_check(0, "gguf types", "cannot read gguf-types.gguf / .json: %s", err);
        free(buf);
        json_free(js);
        return;
    }
    Gguf g;
    if (gguf_parse(buf, size, &g, err, sizeof err)) {
        t_check(0, "gguf types parse", "%s", err);
        free(buf);
        json_free(js);
        return;
    }
    const JsonValue *arr = json_get(json_root(js), "tensors");
    size_t nt = json_count(arr);
    int n_ok = 0;
    char summary[1024] = "";
    for (size_t i = 0; i < nt; i++) {
        const JsonValue *e = json_at(arr, i);
        const char *type = json_str(json_get(e, "type"), NULL), *want = json_str(json_get(e, "sha256_f32"), NULL);
        long long rows = 0, cols = 0;
        json_int(json_get(e, "rows"), &rows);
        json_int(json_get(e, "cols"), &cols);
        char rname[64];
        snprintf(rname, sizeof rname, "%s.rows0-15", type ? type : "?");
        const GgufTensor *t = type ? gguf_find_tensor(&g, type) : NULL, *r = gguf_find_tensor(&g, rname);
        if (!t || !r || !want || (long long)t->ne[0] != cols || (long long)t->n_rows != rows || r->type != GGML_TYPE_F32 ||
            r->ne[0] != t->ne[0] || r->n_rows != 16) {
            t_check(0, "gguf type", "%s: tensors %s / %s missing or shaped unlike the json", type ? type : "?",
                    type ? type : "?", rname);
            continue;
        }
        float *y = malloc(t->n_elems * sizeof(float));
        int rc = 0;
        for (uint64_t row = 0; row < t->n_rows && !rc; row++)
            rc = ggml_dequantize_row(t->type, t->data + row * t->row_bytes, y + row * t->ne[0], (int64_t)t->ne[0], err,
                                     sizeof err);
        if (rc) {
            t_check(0, "gguf type", "%s: %s", type, err);
            free(y);
            continue;
        }
        /* bit for bit against the 16 reference rows */
        uint64_t n16 = 16 * t->ne[0], diff = 0, first = 0;
        for (uint64_t k = 0; k < n16; k++)
            if (memcmp(&y[k], r->data + 4 * k, 4) && !diff++) first = k;
        Sha256 sh;
        char hex[65];
        sha256_init(&sh);
        sha256_update(&sh, y, t->n_elems * sizeof(float)); /* little-endian machine */
        sha256_hex(&sh, hex);
        int ok = diff == 0 && !strcmp(hex, want);
        float refv;
        memcpy(&refv, r->data + 4 * first, 4);
        char fd[96] = "";
        if (diff) snprintf(fd, sizeof fd, " (first at %llu: %.9g, reference %.9g)", (unsigned long long)first, (double)y[first], (double)refv);
        t_check(ok, "gguf dequant bit-exact", "%s, %lld x %lld: %llu of %llu reference floats differ%s; sha256 of the whole tensor %s", type,
                rows, cols, (unsigned long long)diff, (unsigned long long)n16, fd, !strcmp(hex, want) ? "matches" : "DIFFERS");
        if (ok) {
            n_ok++;
            strncat(summary, type, sizeof summary - strlen(summary) - 2);
            strcat(summary, " ");
        }
        free(y);
    }
    t_check(nt >= 14 && n_ok == (int)nt, "gguf types", "%d of %zu types bit-exact: %s", n_ok, nt, summary);
    gguf_free(&g);
    json_free(js);
    free(buf);
}

/* (b) key facts of each fixture */
static void test_facts(const char *dir) {
    static const struct {
        const char *file;
        uint32_t blocks, embd;
        uint64_t n_tensors; /* 0: any */
        int vocab_only;
    } F[] = {
        {"phi3-gguf/trained-tiny-Q4_K_M.gguf", 4, 256, 27, 0}, {"phi3-gguf/trained-tiny-Q8_0.gguf", 4, 256, 27, 0},
        {"phi3-gguf/longrope-f16.gguf", 2, 64, 17, 0},        {"phi3-gguf/phi4ish-f16.gguf", 2, 128, 14, 0},
        {"llamacpp-vocab/ggml-vocab-phi-3.gguf", 32, 3072, 0, 1},
        {"llamacpp-vocab/ggml-vocab-llama-spm.gguf", 0, 0, 0, 2},
    };
    char path[600], err[512];
    for (size_t i = 0; i < sizeof F / sizeof F[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, F[i].file);
        uint64_t size;
        uint8_t *buf = t_read_all(path, &size);
        if (!buf) {
            t_check(0, "gguf facts", "%s: cannot read", F[i].file);
            continue;
        }
        Gguf g;
        if (gguf_parse(buf, size, &g, err, sizeof err)) {
            t_check(0, "gguf parse", "%s: %s", F[i].file, err);
            free(buf);
            continue;
        }
        const char *arch;
        uint64_t alen, ntok = 0;
        uint32_t blocks = 0, embd = 0, ctx = 0, heads = 0;
        const GgufKV *tok = NULL, *scores = NULL, *ttypes = NULL;
        int ok = gguf_get_str(&g, "general.architecture", &arch, &alen, err, sizeof err) == 0;
        char archs[32] = "";
        if (ok) snprintf(archs, sizeof archs, "%.*s", (int)(alen < 31 ? alen : 31), arch);
        int spm = F[i].vocab_only == 2;
        char key[96];
        if (ok && !spm) {
            ok &= !strcmp(archs, "phi3");
            ok &= gguf_get_u32(&g, "phi3.block_count", &blocks, err, sizeof err) == 0;
            ok &= gguf_get_u32(&g, "phi3.embedding_length", &embd, err, sizeof err) == 0;
            ok &= gguf_get_u32(&g, "phi3.context_length", &ctx, err, sizeof err) == 0;
            ok &= gguf_get_u32(&g, "phi3.attention.head_count", &heads, err, sizeof err) == 0;
        }
        uint64_t nsc = 0, ntt = 0;
        ok &= gguf_get_arr(&g, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &tok, &ntok, err, sizeof err) == 0;
        ok &= gguf_get_arr(&g, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, &scores, &nsc, err, sizeof err) == 0 && nsc == ntok;
        ok &= gguf_get_arr(&g, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, &ttypes, &ntt, err, sizeof err) == 0 && ntt == ntok;
        const char *s;
        uint64_t len;
        if (ok) ok &= gguf_arr_str(tok, 1, &s, &len) == 0 && len == 3 && !memcmp(s, "<s>", 3);
        if (F[i].blocks) ok &= blocks == F[i].blocks && embd == F[i].embd;
        if (F[i].vocab_only) {
            ok &= g.n_tensors == 0;
            if (!spm) {
                uint32_t bos = 0, eos = 0;
                int add_bos = 0;
                ok &= ntok == 32064 && gguf_get_u32(&g, "tokenizer.ggml.bos_token_id", &bos, err, sizeof err) == 0 && bos == 1;
                ok &= gguf_get_u32(&g, "tokenizer.ggml.eos_token_id", &eos, err, sizeof err) == 0 && eos == 32000;
                ok &= gguf_get_bool(&g, "tokenizer.ggml.add_bos_token", &add_bos, err, sizeof err) == 0 && add_bos == 1;
            }
            else ok &= ntok == 32000;
        } else if (ok) {
            /* a model: the tensors llama.cpp's phi3 layout names, shaped by the hyperparameters */
            const char *need[] = {"token_embd.weight", "output_norm.weight", "blk.0.attn_norm.weight", "blk.0.attn_qkv.weight",
                                  "blk.0.attn_output.weight", "blk.0.ffn_norm.weight", "blk.0.ffn_up.weight",
                                  "blk.0.ffn_down.weight"};
            for (size_t k = 0; k < sizeof need / sizeof need[0]; k++) {
                const GgufTensor *t = gguf_find_tensor(&g, need[k]);
                if (!t) {
                    ok = 0;
                    snprintf(err, sizeof err, "tensor %s missing", need[k]);
                }
            }
            snprintf(key, sizeof key, "blk.%u.ffn_down.weight", blocks - 1);
            const GgufTensor *te = gguf_find_tensor(&g, "token_embd.weight");
            ok &= gguf_find_tensor(&g, key) != NULL;
            snprintf(key, sizeof key, "blk.%u.ffn_down.weight", blocks);
            ok &= gguf_find_tensor(&g, key) == NULL;
            ok &= te && te->ne[0] == embd && te->ne[1] == ntok;
            /* per block 6 tensors (+ output, norms, rope factors): at least 9 * blocks / 1.5 */
            ok &= g.n_tensors == F[i].n_tensors;
            /* phi4ish ties its embeddings without an output.weight; the others have one */
            ok &= (gguf_find_tensor(&g, "output.weight") != NULL) == (strstr(F[i].file, "phi4ish") == NULL);
            if (strstr(F[i].file, "longrope"))
                ok &= gguf_find_tensor(&g, "rope_factors_long.weight") && gguf_find_tensor(&g, "rope_factors_short.weight");
        }
        t_check(ok, "gguf facts", "%s: v%u arch %s, %u blocks, embd %u, ctx %u, heads %u, %llu keys, %llu tensors, %llu tokens%s%s",
                F[i].file, g.version, archs, blocks, embd, ctx, heads, (unsigned long long)g.n_kv,
                (unsigned long long)g.n_tensors, (unsigned long long)ntok, ok ? "" : " -- ", ok ? "" : err);
        gguf_free(&g);
        free(buf);
    }
}

/* (c) the real fixtures truncated and flipped */
static void test_real_corpus(const char *dir) {
    char path[600], err[512];
    Stats st = {0};
    long trunc_acc = 0, ntrunc = 0, nflip = 0;
    const char *files[] = {"phi3-gguf/trained-tiny-Q4_K_M.gguf", "llamacpp-vocab/ggml-vocab-phi-3.gguf"};
    for (int fi = 0; fi < 2; fi++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[fi]);
        uint64_t size;
        uint8_t *buf = t_read_all(path, &size);
        Gguf g;
        if (!buf || gguf_parse(buf, size, &g, err, sizeof err)) {
            t_check(0, "gguf real corpus", "%s: cannot read or parse", files[fi]);
            free(buf);
            continue;
        }
        uint64_t dir_end = g.n_tensors ? g.data_offset : size;
        /* section boundaries: header, around each key (its string pointers), tensor directory end,
         * data start, each tensor's end; then 300 points spread over the directory */
        uint64_t pts[4096];
        int np = 0;
        pts[np++] = 0, pts[np++] = 4, pts[np++] = 8, pts[np++] = 16, pts[np++] = 23, pts[np++] = 24;
        for (uint64_t k = 0; k < g.n_kv && np < 2000; k++) {
            const GgufKV *kv = &g.kv[k];
            if (kv->type == GGUF_TYPE_STRING) pts[np++] = (uint64_t)((const uint8_t *)kv->str - buf) + kv->str_len;
            if (kv->type == GGUF_TYPE_ARRAY) {
                uint64_t a = (uint64_t)(kv->arr_data - buf);
                pts[np++] = a - 1, pts[np++] = a, pts[np++] = a + kv->arr_bytes / 2, pts[np++] = a + kv->arr_bytes - 1,
                pts[np++] = a + kv->arr_bytes;
            }
        }
        if (g.n_tensors) {
            pts[np++] = g.data_offset - 1;
            for (uint64_t k = 0; k < g.n_tensors && np < 3500; k += 1 + g.n_tensors / 40)
                pts[np++] = g.data_offset + g.tensors[k].offset + g.tensors[k].n_bytes - 1;
            pts[np++] = size - 1;
        }
        for (int k = 0; k < 300; k++) pts[np++] = dir_end * (uint64_t)k / 300;
        gguf_free(&g);
        for (int k = 0; k < np; k++) {
            if (pts[k] >= size) continue;
            ntrunc++;
            trunc_acc += try_parse(buf, pts[k], &st, err, sizeof err) == 0;
        }
        /* single-byte flips: every byte of the header and the first KVs, then random ones of the directory */
        uint8_t *c = malloc(size);
        memcpy(c, buf, size);
        t_seed(99 + (unsigned)fi);
        for (int k = 0; k < 1500; k++) {
            uint64_t at = k < 600 ? (uint64_t)k : (uint64_t)((t_randf() + 1.0f) * 0.5f * (float)(dir_end - 1));
            if (at >= size) continue;
            uint8_t old = c[at];
            c[at] ^= (uint8_t)(k & 1 ? 0xFF : 1u << (k % 8));
            Gguf h;
            err[0] = 0;
            int rc = gguf_parse(c, size, &h, err, sizeof err);
            st.cases++, nflip++;
            if (rc == 0) st.accepted++, walk(&h), gguf_free(&h);
            else if (st.rejected++, !one_line(err) && !st.bad_msg++)
                snprintf(st.first_bad, sizeof st.first_bad, "%.280s", err);
            c[at] = old;
        }
        free(c);
        free(buf);
    }
    t_check(trunc_acc == 0 && st.bad_msg == 0, "gguf real corpus",
            "%ld images (%ld truncations at section boundaries and spread points, %ld single-byte flips): %ld rejected with one line, %ld parsed%s%s",
            st.cases, ntrunc, nflip, st.rejected, st.accepted, st.bad_msg ? ": bad message: " : "", st.first_bad);
}

int main(void) {
    Sha256 sh;
    char hex[65];
    sha256_init(&sh);
    sha256_update(&sh, "abc", 3);
    sha256_hex(&sh, hex);
    t_check(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), "sha256 abc", "%s", hex);

    test_small();
    test_small_corpus();
    const char *dir = t_data_dir();
    if (!dir) {
        t_skip("gguf fixtures", "no ../shared/data (set PHI_DATA)");
        return t_done();
    }
    test_types(dir);
    test_facts(dir);
    test_real_corpus(dir);
    return t_done();
}
