/* The corrupt-input corpus: systematic corruptions of every format phi and quant read from
 * untrusted bytes, each through the parser's entry point. A case passes when the parser accepts
 * it (and what it accepted then works: a model runs two tokens on both paths, a tokenizer encodes
 * and decodes) or refuses it with -1 and one non-empty line; a crash or a hang (an alarm of 20 s
 * per case) fails the run, and under `make asan` so does any out-of-bounds access.
 *
 * Formats and fixtures (those from ../shared/data are skipped when absent):
 *   phi file          `quant --random tiny` q8 and f16 images, made here
 *   safetensors       phi3-tiny-ref/mha/model.safetensors (the header; the data are not read)
 *   the shard index   phi3-tiny-ref/gqa-sharded/model.safetensors.index.json, through hf_open on a
 *                     folder of links to the real shards (also: shard names that leave the folder)
 *   config.json       phi3-tiny-ref/{mha,longrope}/config.json, with generation_config.json
 *   tokenizer.json    tests/data/bytelevel/tokenizer.json (all cases), phi3-tiny-ref/mha's (a
 *                     sample: it is 1.8 MB); tokenizer_config.json (tests/data/bytelevel)
 *   tokenizer.model   tok512-tinystories/tok512.model (SentencePiece protobuf)
 *   GGUF              a small image with every value type and tensors (tests/gguf_write.h),
 *                     llamacpp-vocab/ggml-vocab-phi-3.gguf
 * Corruptions: truncation at every section boundary (header fields, sections, directory entries,
 * tensor data, key/value entries, protobuf fields, JSON tokens) and at random points; single-byte
 * changes at structural offsets and random ones over headers and directories; crafted counts,
 * lengths, offsets and dims (0, 1, 2^31, 2^32 - 1, 2^63, 2^64 - 1, the file size, another
 * tensor's offset: overlapping ranges); NaN and infinities in hyperparameters and tensor data;
 * in JSON: every number replaced by huge, negative, fractional and non-finite values, strings
 * emptied or made invalid UTF-8, deep nesting.
 *
 * `test_corrupt --write DIR` writes the phi-file corpus as files for tests/corrupt.sh, which runs
 * ./phi on each (one error line or a legitimate run, never a crash or hang). */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/json.h"
#include "convert/convert.h"
#include "convert/hf.h"
#include "convert/safetensors.h"
#include "kernels/ggml_types.h"
#include "model/gguf.h"
#include "model/model.h"
#include "tests/corrupt_lib.h"
#include "tests/gguf_write.h"
#include "tests/harness.h"
#include "tokenizer/tokenizer.h"

/* ---- phi files ---- */

static int parse_phi(const uint8_t *buf, size_t n, char *err, size_t errlen) {
    Model m;
    if (model_from_buffer(buf, n, &m, err, errlen)) return -1;
    if ((uint64_t)m.hp.dim * m.hp.n_layers < (1u << 20)) {
        for (int ref = 0; ref < 2; ref++) {
            State s;
            char e2[256];
            if (state_init(&s, &m, 2, 1, e2, sizeof e2) == 0) {
                s.use_ref = ref;
                int toks[2] = {0, (int)(m.hp.vocab_size - 1)};
                model_forward(&m, &s, toks, 2, 0, NULL);
                state_free(&s);
            }
        }
    }
    model_free(&m);
    return 0;
}

static void phi_corpus(Format *f, uint8_t *b, size_t n) {
    uint64_t hp_off = rd_le(b + 24, 8), tok_off = rd_le(b + 40, 8), tok_size = rd_le(b + 48, 8);
    uint64_t dir_off = rd_le(b + 56, 8), nt = rd_le(b + 64, 8), data_off = rd_le(b + 72, 8);
    char where[96];
    /* truncation at every section boundary */
    for (size_t at = 0; at <= 128; at += 4) truncate_at(f, b, n, at, "header field");
    truncate_at(f, b, n, hp_off + 128, "inside the hyperparameters");
    truncate_at(f, b, n, tok_off, "tokenizer section");
    truncate_at(f, b, n, tok_off + tok_size / 2, "inside the tokenizer section");
    truncate_at(f, b, n, dir_off, "directory");
    for (uint64_t i = 0; i < nt; i++) {
        const uint8_t *e = b + dir_off + i * 128;
        truncate_at(f, b, n, dir_off + i * 128 + 64, "directory entry");
        truncate_at(f, b, n, rd_le(e + 88, 8), "tensor data");
        truncate_at(f, b, n, rd_le(e + 88, 8) + rd_le(e + 96, 8) / 2, "inside tensor data");
    }
    truncate_at(f, b, n, data_off, "data section");
    truncate_at(f, b, n, n - 1, "last byte");
    /* the header's fields: crafted values, other sections' offsets (overlaps) */
    uint64_t offs[] = {0, 64, hp_off, tok_off, dir_off, data_off, data_off - 64, n - 64};
    static const int hdr_w[] = {4, 4, 8, 8, 8, 8, 8, 8, 8, 8, 4};
    static const int hdr_at[] = {8, 12, 16, 24, 32, 40, 48, 56, 64, 72, 80};
    for (int k = 0; k < 11; k++) craft_field(f, b, n, (size_t)hdr_at[k], hdr_w[k], "header field", offs, 8);
    for (size_t i = 0; i < 8; i++) flip_byte(f, b, n, i, "magic");
    /* every hyperparameter slot: zero, huge, sign bit, NaN, infinities */
    for (int k = 0; k < 64; k++) {
        snprintf(where, sizeof where, "hyperparameter slot %d", k);
        craft_field(f, b, n, hp_off + 4 * (size_t)k, 4, where, NULL, 0);
    }
    /* every directory entry: type, dims, shape, offset (another tensor's: overlap), size, name */
    for (uint64_t i = 0; i < nt; i++) {
        size_t e = dir_off + i * 128;
        uint64_t other[3] = {rd_le(b + dir_off + ((i + 1) % nt) * 128 + 88, 8), data_off - 64, tok_off};
        snprintf(where, sizeof where, "tensor %llu", (unsigned long long)i);
        craft_field(f, b, n, e + 64, 4, where, NULL, 0);
        craft_field(f, b, n, e + 68, 4, where, NULL, 0);
        craft_field(f, b, n, e + 72, 8, where, NULL, 0);
        craft_field(f, b, n, e + 80, 8, where, NULL, 0);
        craft_field(f, b, n, e + 88, 8, where, other, 3);
        craft_field(f, b, n, e + 96, 8, where, NULL, 0);
        flip_byte(f, b, n, e, where);
        flip_byte(f, b, n, e + 63, where);
        /* NaN and infinities in the tensor's first values, and a whole tensor of 0xff bytes
         * (F16 scales and F32 values NaN) */
        size_t d = rd_le(b + e + 88, 8), sz = rd_le(b + e + 96, 8);
        if (d + sz <= n && sz >= 4) {
            static const uint32_t bad[] = {0x7fc00000u, 0x7f800000u, 0x7e007e00u};
            uint32_t keep = (uint32_t)rd_le(b + d, 4);
            for (int v = 0; v < 3; v++) {
                wr_le(b + d, bad[v], 4);
                snprintf(where, sizeof where, "tensor %llu data = 0x%08x", (unsigned long long)i, bad[v]);
                run_case(f, b, n, where);
            }
            wr_le(b + d, keep, 4);
            uint8_t *save = malloc(sz);
            if (!save) abort();
            memcpy(save, b + d, sz);
            memset(b + d, 0xff, sz);
            snprintf(where, sizeof where, "tensor %llu all 0xff", (unsigned long long)i);
            run_case(f, b, n, where);
            memcpy(b + d, save, sz);
            free(save);
        }
    }
    /* the tokenizer section and the rest of the metadata: random damage */
    random_damage(f, b, n, tok_off, tok_off + tok_size, 48, 1);
    random_damage(f, b, n, 0, data_off, 48, 2);
}

static uint8_t *make_phi(const char *type, size_t *n) {
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/corrupt-tiny-%s.phi", t_tmp_dir(), type);
    ConvertOptions o = {.type = strcmp(type, "q8") ? TENSOR_F16 : TENSOR_Q8, .seed = 1};
    if (convert_random("tiny", path, &o, err, sizeof err)) {
        t_check(0, "corrupt_fixture_phi", "%s", err);
        return NULL;
    }
    uint8_t *b = (uint8_t *)read_file(path, n, err, sizeof err);
    remove(path);
    return b;
}

/* ---- safetensors ---- */

/* The header cases pass the header alone, the data's length in g_st_data (the parser reads only
 * the header and checks the offsets against the file size): no 8 MB copy per case. */
static uint64_t g_st_data;

static int parse_st(const uint8_t *buf, size_t n, char *err, size_t errlen) {
    StFile f;
    memset(&f, 0, sizeof f);
    f.fd = -1;
    uint64_t size = n + g_st_data;
    if (st_parse_header(buf, n, size, &f, err, errlen)) return -1;
    for (int i = 0; i < f.n; i++)
        if (f.tensors[i].end > size || f.tensors[i].begin < f.data_start) abort(); /* the parser's promise */
    st_close(&f);
    return 0;
}

static size_t wrap_st(const char *text, size_t len, uint8_t **out, void *ctx) {
    (void)ctx;
    *out = malloc(8 + len);
    if (!*out) abort();
    wr_le(*out, len, 8);
    memcpy(*out + 8, text, len);
    return 8 + len;
}

static void st_corpus(Format *f, uint8_t *b, size_t n) {
    uint64_t hl = rd_le(b, 8);
    if (hl > n - 8) return;
    for (size_t at = 1; at <= 8; at++) truncate_at(f, b, n, at, "header length");
    truncate_at(f, b, n, 8 + hl, "data");
    truncate_at(f, b, n, 8 + hl / 2, "inside the header");
    uint64_t extra[] = {hl - 1, hl + 1, n - 8, n - 7};
    craft_field(f, b, n, 0, 8, "header length", extra, 4);
    random_damage(f, b, n, 0, 8 + hl, 48, 3);
    /* the JSON header, the data keeping their length */
    g_st_data = n - 8 - hl;
    json_mutations(f, wrap_st, NULL, (const char *)b + 8, hl, 240);
    g_st_data = 0;
}

/* ---- config.json (+ generation_config.json) ---- */

static const char *g_gen_text; /* generation_config.json for parse_config */

static int parse_config_with(const char *cfg, size_t n, const char *gen, size_t gn, char *err, size_t errlen) {
    Json *c = json_parse(cfg, n, err, errlen);
    if (!c) return -1;
    Json *g = NULL;
    if (gen && !(g = json_parse(gen, gn, err, errlen))) {
        json_free(c);
        return -1;
    }
    HfModel m;
    memset(&m, 0, sizeof m);
    int rc = hf_parse_config(json_root(c), g ? json_root(g) : NULL, &m, err, errlen);
    hf_close(&m); /* also after a failure: whatever was allocated */
    json_free(c);
    json_free(g);
    return rc ? -1 : 0;
}

static int parse_config(const uint8_t *buf, size_t n, char *err, size_t errlen) {
    return parse_config_with((const char *)buf, n, g_gen_text, g_gen_text ? strlen(g_gen_text) : 0, err, errlen);
}

static const char *g_config_text;
static int parse_gen_config(const uint8_t *buf, size_t n, char *err, size_t errlen) {
    return parse_config_with(g_config_text, strlen(g_config_text), (const char *)buf, n, err, errlen);
}

/* ---- tokenizer.json / tokenizer_config.json: through a folder, as quant reads them ---- */

static char g_tok_dir[512];
static const char *g_tok_file; /* which file of the folder the case replaces */

static int parse_tok_dir(const uint8_t *buf, size_t n, char *err, size_t errlen) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s", g_tok_dir, g_tok_file);
    FILE *o = fopen(path, "wb");
    if (!o || fwrite(buf, 1, n, o) != n || fclose(o)) abort();
    Tokenizer *t = tok_from_hf_dir(g_tok_dir, err, errlen);
    if (!t) return -1;
    int ids[64];
    char e2[256], piece[256];
    int k = tok_encode(t, "Hello world <|user|> 123 \xe2\x96\x81x", 28, 1, ids, 64, e2, sizeof e2);
    TokDecoder d;
    tok_decoder_init(&d, t);
    for (int i = 0; i < k && i < 64; i++) tok_decoder_push(&d, ids[i], piece, sizeof piece);
    tok_free(t);
    return 0;
}

static int copy_file(const char *from, const char *to) {
    size_t n;
    char err[256];
    char *b = read_file(from, &n, err, sizeof err);
    if (!b) return -1;
    FILE *o = fopen(to, "wb");
    int rc = !o || fwrite(b, 1, n, o) != n;
    if (o && fclose(o)) rc = 1;
    free(b);
    return rc ? -1 : 0;
}

/* ---- model.safetensors.index.json: a sharded folder (links to the real shards) ---- */

static char g_idx_dir[512];

static int parse_index(const uint8_t *buf, size_t n, char *err, size_t errlen) {
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", g_idx_dir);
    FILE *o = fopen(path, "wb");
    if (!o || fwrite(buf, 1, n, o) != n || fclose(o)) abort();
    HfModel m;
    memset(&m, 0, sizeof m);
    int rc = hf_open(g_idx_dir, &m, err, errlen);
    if (rc == 0) hf_close(&m);
    return rc ? -1 : 0;
}

/* The index with each shard name replaced by names that must not open anything else. */
static void index_names(Format *f, const char *t, size_t len) {
    static const char *names[] = {"../gqa-sharded/model-00001-of-00002.safetensors", "/etc/passwd",
                                  "model-00003-of-00002.safetensors", ".", "config.json", "a\\b"};
    const char *key = "model-00001-of-00002.safetensors";
    const char *at = strstr(t, key);
    char what[160];
    for (size_t k = 0; at && k < sizeof names / sizeof *names; k++) {
        size_t a = (size_t)(at - t);
        snprintf(what, sizeof what, "shard name -> %s", names[k]);
        json_splice(f, wrap_plain, NULL, t, len, a, a + strlen(key), names[k], strlen(names[k]), what);
    }
}

/* ---- tokenizer.model (SentencePiece protobuf) ---- */

static int parse_spm(const uint8_t *buf, size_t n, char *err, size_t errlen) {
    Tokenizer *t = tok_from_spm(buf, n, err, errlen);
    if (!t) return -1;
    int ids[64];
    char e2[256];
    tok_encode(t, "Hello world 123", 15, 1, ids, 64, e2, sizeof e2);
    tok_free(t);
    return 0;
}

static int varint(const uint8_t *b, size_t n, size_t *off, uint64_t *v) {
    *v = 0;
    for (int s = 0; s < 64 && *off < n; s += 7) {
        uint8_t c = b[(*off)++];
        *v |= (uint64_t)(c & 0x7f) << s;
        if (!(c & 0x80)) return 0;
    }
    return -1;
}

static void spm_corpus(Format *f, uint8_t *b, size_t n) {
    size_t off = 0;
    int field = 0;
    char where[64];
    while (off < n) {
        size_t key_at = off;
        uint64_t key, len = 0;
        if (varint(b, n, &off, &key)) break;
        snprintf(where, sizeof where, "field %d key", field);
        if (field < 40 || field % 50 == 0) {
            truncate_at(f, b, n, key_at, where);
            flip_byte(f, b, n, key_at, where);
        }
        size_t len_at = off;
        switch (key & 7) {
        case 0: { uint64_t x; if (varint(b, n, &off, &x)) return; break; }
        case 1: off += 8; break;
        case 5: off += 4; break;
        case 2:
            if (varint(b, n, &off, &len)) return;
            if (field < 40 || field % 50 == 0) {
                /* the length: huge (10-byte varint), zero, one past the end */
                static const uint8_t huge[10] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
                static const uint8_t big[5] = {0xff, 0xff, 0xff, 0xff, 0x0f};
                const uint8_t *reps[3] = {huge, big, (const uint8_t *)"\0"};
                size_t rlen[3] = {10, 5, 1};
                for (int r = 0; r < 3; r++) {
                    size_t m = len_at + rlen[r] + (n - off);
                    uint8_t *c = malloc(m);
                    if (!c) abort();
                    memcpy(c, b, len_at);
                    memcpy(c + len_at, reps[r], rlen[r]);
                    memcpy(c + len_at + rlen[r], b + off, n - off);
                    snprintf(where, sizeof where, "field %d length -> variant %d", field, r);
                    run_case(f, c, m, where);
                    free(c);
                }
                snprintf(where, sizeof where, "field %d payload", field);
                truncate_at(f, b, n, off + len / 2, where);
                /* inside the payload (a piece: its string, score, type) */
                if (len > 2) flip_byte(f, b, n, off, where);
            }
            off += len;
            break;
        default: return;
        }
        field++;
    }
    random_damage(f, b, n, 0, n, 64, 4);
}

/* ---- GGUF ---- */

static int parse_gguf(const uint8_t *buf, size_t n, char *err, size_t errlen) {
    Gguf g;
    if (gguf_parse(buf, n, &g, err, errlen)) return -1;
    static float row[1 << 12];
    char e2[256];
    for (uint64_t i = 0; i < g.n_kv; i++) {
        const GgufKV *a;
        uint64_t cnt, len;
        const char *s;
        if (gguf_get_arr(&g, g.kv[i].key, GGUF_TYPE_COUNT, &a, &cnt, e2, sizeof e2) == 0)
            for (uint64_t j = 0; j < cnt && j < 64; j++) gguf_arr_str(a, j, &s, &len);
    }
    for (uint64_t i = 0; i < g.n_tensors; i++) {
        const GgufTensor *t = &g.tensors[i];
        if (t->data < buf || t->data + t->n_bytes > buf + n) abort(); /* the parser's promise */
        if (t->ne[0] <= (1 << 12) && t->n_rows)
            ggml_dequantize_row(t->type, t->data, row, (int64_t)t->ne[0], e2, sizeof e2);
    }
    gguf_free(&g);
    return 0;
}

/* Walks the image as the format says and corrupts every count, length, type and offset field. */
static void gguf_corpus(Format *f, uint8_t *b, size_t n, int max_entries) {
    static const uint8_t scalar_size[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    char where[96];
    for (size_t at = 0; at <= 24; at += 4) truncate_at(f, b, n, at, "header");
    for (size_t i = 0; i < 4; i++) flip_byte(f, b, n, i, "magic");
    craft_field(f, b, n, 4, 4, "version", NULL, 0);
    craft_field(f, b, n, 8, 8, "tensor count", NULL, 0);
    craft_field(f, b, n, 16, 8, "key/value count", NULL, 0);
    uint64_t n_tensors = rd_le(b + 8, 8), n_kv = rd_le(b + 16, 8);
    size_t off = 24;
#define NEED(k) if (off + (k) > n) return
    for (uint64_t i = 0; i < n_kv; i++) {
        int craft = (int)i < max_entries;
        snprintf(where, sizeof where, "key/value %llu", (unsigned long long)i);
        NEED(8);
        if (craft) truncate_at(f, b, n, off, where), craft_field(f, b, n, off, 8, "key length", NULL, 0);
        off += 8 + rd_le(b + off, 8);
        NEED(4);
        uint32_t type = (uint32_t)rd_le(b + off, 4);
        if (craft) craft_field(f, b, n, off, 4, "value type", NULL, 0);
        off += 4;
        if (type < 13 && scalar_size[type]) {
            off += scalar_size[type];
        } else if (type == GGUF_TYPE_STRING) {
            NEED(8);
            if (craft) craft_field(f, b, n, off, 8, "string length", NULL, 0);
            off += 8 + rd_le(b + off, 8);
        } else if (type == GGUF_TYPE_ARRAY) {
            NEED(12);
            uint32_t at = (uint32_t)rd_le(b + off, 4);
            uint64_t cnt = rd_le(b + off + 4, 8);
            if (craft) {
                craft_field(f, b, n, off, 4, "array type", NULL, 0);
                craft_field(f, b, n, off + 4, 8, "array count", NULL, 0);
            }
            off += 12;
            if (at < 13 && scalar_size[at]) {
                off += cnt * scalar_size[at];
            } else if (at == GGUF_TYPE_STRING) {
                for (uint64_t j = 0; j < cnt; j++) {
                    NEED(8);
                    if (craft && j < 2) craft_field(f, b, n, off, 8, "array string length", NULL, 0);
                    off += 8 + rd_le(b + off, 8);
                }
            } else {
                return; /* nested arrays: the walk stops here (the fuzz target covers them) */
            }
        } else {
            return;
        }
    }
    for (uint64_t i = 0; i < n_tensors; i++) {
        snprintf(where, sizeof where, "tensor %llu", (unsigned long long)i);
        NEED(8);
        truncate_at(f, b, n, off, where);
        craft_field(f, b, n, off, 8, "tensor name length", NULL, 0);
        off += 8 + rd_le(b + off, 8);
        NEED(4);
        uint32_t nd = (uint32_t)rd_le(b + off, 4);
        craft_field(f, b, n, off, 4, "tensor dims", NULL, 0);
        off += 4;
        for (uint32_t d = 0; d < nd && d < 4; d++, off += 8) {
            NEED(8);
            uint64_t extra[] = {1ull << 31, 3ull << 40};
            craft_field(f, b, n, off, 8, "tensor dim", extra, 2);
        }
        NEED(12);
        craft_field(f, b, n, off, 4, "tensor type", NULL, 0);
        craft_field(f, b, n, off + 4, 8, "tensor offset", NULL, 0);
        off += 12;
    }
#undef NEED
    truncate_at(f, b, n, off, "end of the tensor directory");
    truncate_at(f, b, n, n - 1, "last byte");
    random_damage(f, b, n, 0, off < n ? off : n, 48, 5);
}

/* --nan DIR: tiny q8 models with one kind of bad weights each, for tests/hardening.sh:
 * nan-norm.phi (the final norm's first weight NaN), inf-norm.phi (+inf), nan-matrix.phi (layer 0's
 * attention matrix all 0xff bytes: its F16 scales NaN), nan-embed.phi (the embedding all 0xff);
 * nan-f16-matrix.phi: an F16 model whose layer 0 attention matrix starts with a NaN. */
static uint8_t *tensor_data(uint8_t *b, const char *name, size_t *size) {
    uint64_t dir_off = rd_le(b + 56, 8), nt = rd_le(b + 64, 8);
    for (uint64_t i = 0; i < nt; i++) {
        uint8_t *e = b + dir_off + i * 128;
        if (!strcmp((const char *)e, name)) {
            *size = rd_le(e + 96, 8);
            return b + rd_le(e + 88, 8);
        }
    }
    abort();
}

static int write_nan_models(const char *dir) {
    size_t n, sz;
    uint8_t *b;
    char path[512];
    for (int k = 0; k < 5; k++) {
        if (!(b = make_phi(k < 4 ? "q8" : "f16", &n))) return 1;
        static const char *names[] = {"nan-norm", "inf-norm", "nan-matrix", "nan-embed", "nan-f16-matrix"};
        uint8_t *d = tensor_data(b, k < 2 ? "model.norm.weight" : k == 3 ? "model.embed_tokens.weight"
                                                                      : "model.layers.0.self_attn.qkv_proj.weight", &sz);
        if (k < 2) wr_le(d, k ? 0x7f800000u : 0x7fc00000u, 4);
        else if (k < 4) memset(d, 0xff, sz);
        else wr_le(d, 0x7e00, 2); /* F16 NaN, the first weight of row 0 */
        snprintf(path, sizeof path, "%s/%s.phi", dir, names[k]);
        FILE *o = fopen(path, "wb");
        if (!o || fwrite(b, 1, n, o) != n || fclose(o)) return 1;
        free(b);
    }
    return 0;
}

/* --nan-k IN DIR: from phi file IN (a converted Q4_K_M model: q4_kp, q5_kp and q6_kp matrices; a
 * quant -q iq4_xs model: iq4_xs), nan-<type>.phi per K panel type found: one row's super-block d
 * set to +inf (0x7c00) in the first matrix of that type. Row 5 of panel 0, super-block 0: the d of
 * Q4_KP/Q5_KP/IQ4_XS is word 0 of the block, Q6_KP's word 52 (kernels/blocks.h), so lane 5 of line
 * 0 or of line 52 of the panel unit. */
static int write_nan_k_models(const char *in, const char *dir) {
    char err[512], path[512];
    size_t n;
    uint8_t *b = (uint8_t *)read_file(in, &n, err, sizeof err);
    if (!b) return fprintf(stderr, "%s\n", err), 1;
    uint64_t dir_off = rd_le(b + 56, 8), nt = rd_le(b + 64, 8);
    int made = 0;
    for (uint32_t type = 0; type < TENSOR_TYPE_COUNT; type++)
        for (uint64_t i = 0; type_table[type].kpanel && i < nt; i++) {
            uint8_t *e = b + dir_off + i * 128;
            if (rd_le(e + 64, 4) != type || rd_le(e + 68, 4) != 2) continue;
            uint8_t *d = b + rd_le(e + 88, 8) + (type == TENSOR_Q6_KP ? 52 * 64 : 0) + 5 * 4;
            uint8_t keep[2] = {d[0], d[1]};
            wr_le(d, 0x7c00, 2);
            snprintf(path, sizeof path, "%s/nan-%s.phi", dir, type_table[type].name);
            FILE *o = fopen(path, "wb");
            if (!o || fwrite(b, 1, n, o) != n || fclose(o)) return 1;
            d[0] = keep[0], d[1] = keep[1];
            made++;
            break;
        }
    free(b);
    return made ? 0 : (fprintf(stderr, "%s: no K panel matrix\n", in), 1);
}

/* ---- main ---- */


int main(int argc, char **argv) {
    signal(SIGALRM, on_alarm);
    size_t n;
    uint8_t *b;
    char *s;
    if (argc == 3 && !strcmp(argv[1], "--nan")) return write_nan_models(argv[2]);
    if (argc == 4 && !strcmp(argv[1], "--nan-k")) return write_nan_k_models(argv[2], argv[3]);
    if (argc >= 3 && !strcmp(argv[1], "--write")) {
        g_write_dir = argv[2];
        if (argc == 4) g_stride = atol(argv[3]) > 0 ? atol(argv[3]) : 1;
        Format f = {"corrupt_phi_files", parse_phi, 0, 0, 0, 0};
        if (!(b = make_phi("q8", &n))) return 1;
        run_case(&f, b, n, "intact");
        phi_corpus(&f, b, n);
        free(b);
        printf("%ld files written to %s\n", g_written, g_write_dir);
        return t_failed_count ? 1 : 0;
    }

    Format fp = {"corrupt_phi_file", parse_phi, 0, 0, 0, 0};
    for (int k = 0; k < 2; k++)
        if ((b = make_phi(k ? "f16" : "q8", &n))) {
            phi_corpus(&fp, b, n);
            free(b);
        }
    report(&fp);

    Format fst = {"corrupt_safetensors", parse_st, 0, 0, 0, 0};
    if ((b = (uint8_t *)read_data("phi3-tiny-ref/mha/model.safetensors", &n))) {
        st_corpus(&fst, b, n);
        free(b);
        report(&fst);
    } else {
        t_skip("corrupt_safetensors", "../shared/data/phi3-tiny-ref is absent");
    }

    Format fi = {"corrupt_safetensors_index_json", parse_index, 0, 0, 0, 0};
    const char *dd = t_data_dir();
    if ((s = read_data("phi3-tiny-ref/gqa-sharded/model.safetensors.index.json", &n))) {
        snprintf(g_idx_dir, sizeof g_idx_dir, "%s/corrupt-index", t_tmp_dir());
        mkdir(g_idx_dir, 0755);
        static const char *links[] = {"config.json", "generation_config.json", "model-00001-of-00002.safetensors",
                                      "model-00002-of-00002.safetensors"};
        for (int k = 0; k < 4; k++) {
            char from[600], to[600], abs_from[PATH_MAX];
            snprintf(from, sizeof from, "%s/phi3-tiny-ref/gqa-sharded/%s", dd, links[k]);
            snprintf(to, sizeof to, "%s/%s", g_idx_dir, links[k]);
            unlink(to);
            if (!realpath(from, abs_from) || symlink(abs_from, to)) t_check(0, "corrupt_index_fixture", "%s", to);
        }
        json_mutations(&fi, wrap_plain, NULL, s, n, 300);
        index_names(&fi, s, n);
        free(s);
        report(&fi);
    } else {
        t_skip("corrupt_safetensors_index_json", "../shared/data/phi3-tiny-ref is absent");
    }

    Format fc = {"corrupt_config_json", parse_config, 0, 0, 0, 0};
    Format fg = {"corrupt_generation_config_json", parse_gen_config, 0, 0, 0, 0};
    static const char *cfgs[] = {"phi3-tiny-ref/mha", "phi3-tiny-ref/longrope"};
    for (int k = 0; k < 2; k++) {
        char rel[128];
        size_t gn;
        snprintf(rel, sizeof rel, "%s/config.json", cfgs[k]);
        if (!(s = read_data(rel, &n))) continue;
        snprintf(rel, sizeof rel, "%s/generation_config.json", cfgs[k]);
        char *gen = read_data(rel, &gn);
        g_gen_text = gen;
        json_mutations(&fc, wrap_plain, NULL, s, n, 300);
        g_gen_text = NULL;
        if (gen) {
            g_config_text = s;
            json_mutations(&fg, wrap_plain, NULL, gen, gn, 300);
        }
        free(gen);
        free(s);
    }
    if (fc.cases) report(&fc), report(&fg);
    else t_skip("corrupt_config_json", "../shared/data/phi3-tiny-ref is absent");

    Format ft = {"corrupt_tokenizer_json", parse_tok_dir, 0, 0, 0, 0};
    Format ftc = {"corrupt_tokenizer_config_json", parse_tok_dir, 0, 0, 0, 0};
    snprintf(g_tok_dir, sizeof g_tok_dir, "%s/corrupt-tok", t_tmp_dir());
    mkdir(g_tok_dir, 0755);
    char tc[600], e[256];
    snprintf(tc, sizeof tc, "%s/tokenizer_config.json", g_tok_dir);
    if ((s = read_file("tests/data/bytelevel/tokenizer.json", &n, e, sizeof e)) &&
        copy_file("tests/data/bytelevel/tokenizer_config.json", tc) == 0) {
        g_tok_file = "tokenizer.json";
        json_mutations(&ft, wrap_plain, NULL, s, n, 300);
        size_t cn;
        char *cfg = read_file("tests/data/bytelevel/tokenizer_config.json", &cn, e, sizeof e);
        if (cfg) {
            /* the intact tokenizer.json back, then tokenizer_config.json mutated */
            FILE *o = fopen((snprintf(tc, sizeof tc, "%s/tokenizer.json", g_tok_dir), tc), "wb");
            if (o) fwrite(s, 1, n, o), fclose(o);
            g_tok_file = "tokenizer_config.json";
            json_mutations(&ftc, wrap_plain, NULL, cfg, cn, 300);
            free(cfg);
        }
        free(s);
        snprintf(tc, sizeof tc, "%s/tokenizer_config.json", g_tok_dir);
        if ((s = read_data("phi3-tiny-ref/mha/tokenizer.json", &n)) &&
            copy_file("../shared/data/phi3-tiny-ref/mha/tokenizer_config.json", tc) == 0) {
            g_tok_file = "tokenizer.json";
            json_mutations(&ft, wrap_plain, NULL, s, n, 24); /* 1.8 MB: a sample */
        }
        free(s);
        report(&ft);
        report(&ftc);
    } else {
        t_check(0, "corrupt_tokenizer_json", "cannot read tests/data/bytelevel");
    }

    Format fs = {"corrupt_tokenizer_model", parse_spm, 0, 0, 0, 0};
    if ((b = (uint8_t *)read_data("tok512-tinystories/tok512.model", &n))) {
        spm_corpus(&fs, b, n);
        free(b);
        report(&fs);
    } else {
        t_skip("corrupt_tokenizer_model", "../shared/data/tok512-tinystories is absent");
    }

    Format fgg = {"corrupt_gguf", parse_gguf, 0, 0, 0, 0};
    GwBuf gb = {0};
    GwPos gp;
    gw_small(&gb, &gp, 1, 7);
    gguf_corpus(&fgg, gb.b, gb.n, 1000);
    free(gb.b);
    GwBuf nb = {0};
    gw_nested(&nb, 1000); /* arrays nested 1000 deep */
    run_case(&fgg, nb.b, nb.n, "arrays nested 1000 deep");
    free(nb.b);
    if ((b = (uint8_t *)read_data("llamacpp-vocab/ggml-vocab-phi-3.gguf", &n))) {
        gguf_corpus(&fgg, b, n, 40);
        free(b);
    }
    report(&fgg);
    return t_failed_count ? 1 : 0;
}
