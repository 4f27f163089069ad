/* Phi-3 models from GGUF (model/gguf_model.c): llama.cpp's files of ../shared/data/phi3-gguf run
 * against llama.cpp's references, the converted blocks dequantize to exactly the GGUF's values,
 * the F16 GGUFs equal the Hugging Face folders converted with quant -q f16, tokenization equals
 * the folder's tokenizer.json, and bad files at model level are refused with one line. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "base/json.h"
#include "convert/convert.h"
#include "kernels/blocks.h"
#include "kernels/ggml_types.h"
#include "model/gguf.h"
#include "model/gguf_model.h"
#include "model/model.h"
#include "tests/gguf_write.h"
#include "tests/harness.h"
#include "tokenizer/tokenizer.h"

static char data[512];

/* ---- re-writing a GGUF with one change (the bad files and the type cases) ---- */

typedef struct {
    const char *drop_key;          /* leave this key out */
    const char *set_key;           /* give this key a new value ... */
    uint32_t set_type;             /* ... of this GGUF type (UINT32, FLOAT32 or STRING) */
    uint32_t set_u32;
    float set_f32;
    const char *set_str;
    const char *drop_tensor;       /* leave this tensor out */
    const char *rename_from, *rename_to;
    const char *replace;           /* this tensor's type, shape and bytes become ... */
    uint32_t rep_type;
    uint64_t rep_ne0, rep_ne1;
    const uint8_t *rep_data;       /* ... these (NULL: zeros) */
} Edit;

static void put_kv_value(GwBuf *b, const GgufKV *kv) {
    static const int size[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (kv->type == GGUF_TYPE_STRING) {
        gw_u64(b, kv->str_len);
        gw_bytes(b, kv->str, (size_t)kv->str_len);
    } else if (kv->type == GGUF_TYPE_ARRAY) {
        gw_u32(b, kv->arr_type);
        gw_u64(b, kv->arr_count);
        gw_bytes(b, kv->arr_data, (size_t)kv->arr_bytes);
    } else if (kv->type == GGUF_TYPE_FLOAT32) {
        gw_f32(b, (float)kv->v.f);
    } else if (kv->type == GGUF_TYPE_FLOAT64) {
        double d = kv->v.f;
        uint64_t u;
        memcpy(&u, &d, 8);
        gw_u64(b, u);
    } else {
        gw_le(b, kv->v.u, size[kv->type]);
    }
}

static int rewrite(const Gguf *g, const Edit *e, GwBuf *b) {
    b->n = 0;
    uint64_t n_kv = 0, n_t = 0;
    for (uint64_t i = 0; i < g->n_kv; i++) n_kv += !(e->drop_key && !strcmp(g->kv[i].key, e->drop_key));
    for (uint64_t i = 0; i < g->n_tensors; i++)
        n_t += !(e->drop_tensor && !strcmp(g->tensors[i].name, e->drop_tensor));
    int add_key = e->set_key && !gguf_find_key(g, e->set_key);
    gw_bytes(b, "GGUF", 4);
    gw_u32(b, 3);
    gw_u64(b, n_t);
    gw_u64(b, n_kv + (uint64_t)add_key);
    for (uint64_t i = 0; i < g->n_kv + (uint64_t)add_key; i++) {
        const GgufKV *kv = i < g->n_kv ? &g->kv[i] : NULL;
        const char *key = kv ? kv->key : e->set_key;
        if (e->drop_key && !strcmp(key, e->drop_key)) continue;
        gw_str(b, key);
        if (e->set_key && !strcmp(key, e->set_key)) {
            gw_u32(b, e->set_type);
            if (e->set_type == GGUF_TYPE_UINT32) gw_u32(b, e->set_u32);
            else if (e->set_type == GGUF_TYPE_FLOAT32) gw_f32(b, e->set_f32);
            else gw_str(b, e->set_str);
            continue;
        }
        gw_u32(b, kv->type);
        put_kv_value(b, kv);
    }
    uint64_t off = 0;
    uint64_t *offs = calloc(g->n_tensors + 1, sizeof *offs), *sizes = calloc(g->n_tensors + 1, sizeof *sizes);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const GgufTensor *t = &g->tensors[i];
        if (e->drop_tensor && !strcmp(t->name, e->drop_tensor)) continue;
        int rep = e->replace && !strcmp(t->name, e->replace);
        gw_str(b, e->rename_from && !strcmp(t->name, e->rename_from) ? e->rename_to : t->name);
        uint64_t ne[4] = {t->ne[0], t->ne[1], t->ne[2], t->ne[3]};
        uint32_t nd = t->n_dims, type = t->type;
        uint64_t bytes = t->n_bytes;
        if (rep) {
            char err[128];
            ne[0] = e->rep_ne0, ne[1] = e->rep_ne1, nd = e->rep_ne1 > 1 ? 2 : 1, type = e->rep_type;
            if (ggml_row_bytes(type, ne[0], &bytes, err, sizeof err)) return -1;
            bytes *= ne[1];
        }
        gw_u32(b, nd);
        for (uint32_t d = 0; d < nd; d++) gw_u64(b, ne[d]);
        gw_u32(b, type);
        gw_u64(b, off);
        offs[i] = off, sizes[i] = bytes;
        off += (bytes + 31) / 32 * 32;
    }
    while (b->n % 32) gw_le(b, 0, 1);
    size_t data0 = b->n;
    uint8_t *zero = calloc(1, off + 1);
    gw_bytes(b, zero, (size_t)off);
    free(zero);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const GgufTensor *t = &g->tensors[i];
        if (e->drop_tensor && !strcmp(t->name, e->drop_tensor)) continue;
        int rep = e->replace && !strcmp(t->name, e->replace);
        const uint8_t *src = rep ? e->rep_data : t->data;
        if (src) memcpy(b->b + data0 + offs[i], src, (size_t)sizes[i]);
    }
    free(offs);
    free(sizes);
    return 0;
}

/* ---- helpers ---- */

typedef struct {
    uint8_t *buf;
    uint64_t size;
    Gguf g;
} Src;

static int src_open(Src *s, const char *name) {
    char path[700];
    snprintf(path, sizeof path, "%s/phi3-gguf/%s", data, name);
    char err[300];
    s->buf = t_read_all(path, &s->size);
    if (!s->buf || gguf_parse(s->buf, s->size, &s->g, err, sizeof err)) {
        t_check(0, "gguf_open", "%s: %s", path, s->buf ? err : "cannot read");
        free(s->buf);
        return -1;
    }
    return 0;
}

static void src_close(Src *s) {
    gguf_free(&s->g);
    free(s->buf);
}

/* A model from a GGUF image in memory (the image is kept in *img for the caller to munmap). */
static int model_from_gguf(const uint8_t *buf, uint64_t size, Model *m, uint8_t **img, uint64_t *img_size,
                           char *err, size_t errlen) {
    Gguf g;
    if (gguf_parse(buf, size, &g, err, errlen)) return -1;
    int rc = gguf_model_image(&g, NULL, img, img_size, err, errlen);
    gguf_free(&g);
    if (rc) return -1;
    if (model_from_buffer(*img, *img_size, m, err, errlen)) {
        munmap(*img, (size_t)*img_size);
        return -1;
    }
    return 0;
}

static int *read_ids(const char *path, int *n) {
    char err[300];
    Json *j = json_parse_file(path, err, sizeof err);
    if (!j) return NULL;
    const JsonValue *a = json_root(j);
    *n = (int)json_count(a);
    int *ids = malloc((size_t)(*n ? *n : 1) * sizeof *ids);
    for (int i = 0; i < *n; i++) {
        long long v = 0;
        json_int(json_at(a, (size_t)i), &v);
        ids[i] = (int)v;
    }
    json_free(j);
    return ids;
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

/* max over rows of max |a - b| / max |b| */
static double rel_dist(const float *a, const float *b, int rows, int cols) {
    double worst = 0;
    for (int r = 0; r < rows; r++) {
        double md = 0, mr = 0;
        for (int i = 0; i < cols; i++) {
            double d = fabs((double)a[r * cols + i] - b[r * cols + i]);
            if (d > md) md = d;
            if (fabs(b[r * cols + i]) > mr) mr = fabs(b[r * cols + i]);
        }
        if (mr > 0 && md / mr > worst) worst = md / mr;
    }
    return worst;
}

/* ---- llama.cpp's references ---- */

static void test_reference(const char *file, const char *type) {
    char path[800], err[512] = "";
    snprintf(path, sizeof path, "%s/phi3-gguf/%s", data, file);
    Model m;
    if (!t_check(model_load(path, &m, err, sizeof err) == 0, "gguf_load", "%s: %s", file, err)) return;
    int V = (int)m.hp.vocab_size;
    double worst_phi = 0, worst_llama = 0;
    int greedy_ok = 1, greedy_cmp = 0;
    for (int p = 0; p < 3; p++) {
        int n = 0, ng = 0, nq = 0, ne = 0;
        snprintf(path, sizeof path, "%s/phi3-gguf/reference/%s/p%d/ids.json", data, type, p);
        int *ids = read_ids(path, &n);
        snprintf(path, sizeof path, "%s/phi3-gguf/reference/%s/p%d/greedy.json", data, type, p);
        int *gq = read_ids(path, &nq);
        snprintf(path, sizeof path, "%s/phi3-gguf/reference/%s/exact/p%d/greedy.json", data, type, p);
        int *gx = read_ids(path, &ne);
        uint64_t sz_l = 0, sz_x = 0;
        snprintf(path, sizeof path, "%s/phi3-gguf/reference/%s/p%d/logits-last4.f32", data, type, p);
        float *ll = (float *)t_read_all(path, &sz_l);
        snprintf(path, sizeof path, "%s/phi3-gguf/reference/%s/exact/p%d/logits-last4.f32", data, type, p);
        float *lx = (float *)t_read_all(path, &sz_x);
        State st;
        if (!ids || !gq || !gx || !ll || !lx || sz_l != 4ull * V * 4 || sz_x != sz_l || n < 4 ||
            state_init_ex(&st, &m, n + 40, 1, STATE_KV_F32, err, sizeof err)) {
            t_check(0, "gguf_reference_data", "%s p%d: missing or bad reference files", type, p);
            free(ids), free(gq), free(gx), free(ll), free(lx);
            continue;
        }
        float *lg = malloc((size_t)n * V * sizeof *lg);
        model_forward(&m, &st, ids, n, 0, lg);
        double dp = rel_dist(lg + (size_t)(n - 4) * V, lx, 4, V), dl = rel_dist(ll, lx, 4, V);
        if (dp > worst_phi) worst_phi = dp;
        if (dl > worst_llama) worst_llama = dl;
        /* greedy ids, compared where llama.cpp's exact and quantized runs agree */
        int agree = 0;
        while (agree < nq && agree < ne && gq[agree] == gx[agree]) agree++;
        int tok = argmax(st.logits, V);
        for (int i = 0; i < agree && i < 32; i++) {
            greedy_cmp++;
            if (tok != gq[i]) {
                greedy_ok = 0;
                printf("  %s p%d: greedy id %d is %d, llama.cpp %d\n", type, p, i, tok, gq[i]);
                break;
            }
            if (i + 1 < agree) {
                model_forward(&m, &st, &tok, 1, n + i, NULL);
                tok = argmax(st.logits, V);
            }
        }
        (void)ng;
        free(lg), free(ids), free(gq), free(gx), free(ll), free(lx);
        state_free(&st);
    }
    t_check(worst_phi <= 2 * worst_llama + 1e-4, "gguf_reference_logits",
            "%s: phi %.3g vs llama.cpp %.3g from exact/ (max |diff| / max |ref|, last 4 positions, 3 prompts)",
            type, worst_phi, worst_llama);
    t_check(greedy_ok && greedy_cmp > 0, "gguf_reference_greedy", "%s: %d greedy ids equal to llama.cpp's", type,
            greedy_cmp);
    model_free(&m);
}

/* ---- F16 GGUFs against their Hugging Face folders converted with -q f16 ---- */

static void test_folder(const char *file, const char *folder, int n) {
    char path[800], dir[800], out[800], err[512] = "";
    snprintf(path, sizeof path, "%s/phi3-gguf/%s", data, file);
    snprintf(dir, sizeof dir, "%s/phi3-tiny-ref/%s", data, folder);
    snprintf(out, sizeof out, "%s/gguf_model_%s.phi", t_tmp_dir(), folder);
    ConvertOptions co = {.type = TENSOR_F16};
    Model a, b;
    if (!t_check(convert_hf(dir, out, &co, err, sizeof err) == 0, "gguf_folder_convert", "%s", err)) return;
    if (!t_check(model_load(path, &a, err, sizeof err) == 0, "gguf_folder_load", "%s", err)) return;
    if (!t_check(model_load(out, &b, err, sizeof err) == 0, "gguf_folder_load", "%s", err)) {
        model_free(&a);
        return;
    }
    int hp_same = memcmp(&a.hp, &b.hp, offsetof(PhiHParams, stop_ids)) == 0 && a.hp.rope_theta == b.hp.rope_theta &&
                  a.hp.rms_eps == b.hp.rms_eps && a.hp.rope_attn_factor == b.hp.rope_attn_factor &&
                  a.hp.partial_rotary_factor == b.hp.partial_rotary_factor;
    t_check(hp_same, "gguf_folder_hparams", "%s: hyperparameters equal config.json's (%u layers, rope %u of %u, tied %u, longrope %u)",
            file, a.hp.n_layers, a.hp.rope_dims, a.hp.head_dim, a.hp.tie_embeddings, a.hp.rope_scaling);
    int V = (int)a.hp.vocab_size, *ids = malloc((size_t)n * sizeof *ids);
    t_seed(7);
    for (int i = 0; i < n; i++) ids[i] = (int)((t_randf() + 1.0f) * 0.5f * 31999) + 1;
    float *la = malloc((size_t)n * V * 4), *lb = malloc((size_t)n * V * 4);
    State sa, sb;
    if (!state_init_ex(&sa, &a, n, 1, STATE_KV_F32, err, sizeof err) &&
        !state_init_ex(&sb, &b, n, 1, STATE_KV_F32, err, sizeof err)) {
        model_forward(&a, &sa, ids, n, 0, la);
        model_forward(&b, &sb, ids, n, 0, lb);
        t_check(memcmp(la, lb, (size_t)n * V * 4) == 0, "gguf_folder_logits",
                "%s: logits of %d positions bit-identical to the folder's (quant -q f16), max diff %.3g", file, n,
                rel_dist(la, lb, n, V));
        state_free(&sa);
        state_free(&sb);
    }
    free(la), free(lb), free(ids);
    model_free(&a);
    model_free(&b);
}

/* ---- tokenization equals the Hugging Face folder's ---- */

static void test_tokenizer(void) {
    char path[800], dir[800], err[512] = "";
    snprintf(path, sizeof path, "%s/phi3-gguf/trained-tiny-Q8_0.gguf", data);
    snprintf(dir, sizeof dir, "%s/phi3-trained-tiny", data);
    Model m;
    Tokenizer *hf = tok_from_hf_dir(dir, err, sizeof err);
    if (!t_check(hf != NULL, "gguf_tok_hf", "%s", err)) return;
    if (!t_check(model_load(path, &m, err, sizeof err) == 0, "gguf_tok_load", "%s", err)) {
        tok_free(hf);
        return;
    }
    snprintf(path, sizeof path, "%s/phi3-trained-tiny/reference/prompts.json", data);
    Json *j = json_parse_file(path, err, sizeof err);
    const JsonValue *pr = json_get(json_root(j), "prompts");
    static const char *extra[] = {"Hello world", "  two  spaces\n\nnewlines\ttab", "<|user|>\nHi<|end|>\n<|assistant|>",
                                  "caf\xc3\xa9 \xe2\x82\xac 123456 \xf0\x9f\x98\x80", ""};
    int n_texts = (int)json_count(pr) + 5, same = 0, total = 0;
    for (int i = 0; i < n_texts; i++) {
        size_t len;
        const char *text = i < (int)json_count(pr) ? json_str(json_get(json_at(pr, (size_t)i), "text"), &len)
                                                   : (len = strlen(extra[i - (int)json_count(pr)]),
                                                      extra[i - (int)json_count(pr)]);
        if (!text) continue;
        int a[512], b[512];
        int na = tok_encode(m.tok, text, len, 1, a, 512, err, sizeof err);
        int nb = tok_encode(hf, text, len, 1, b, 512, err, sizeof err);
        total++;
        same += na == nb && na >= 0 && !memcmp(a, b, (size_t)na * sizeof *a);
    }
    t_check(same == total && total >= 5, "gguf_tok_hf_equal", "%d of %d texts tokenize as tokenizer.json does", same,
            total);
    t_check(m.hp.bos_id == 1 && m.hp.eos_id == 32000 && m.hp.n_stop_ids == 3 && m.hp.stop_ids[0] == 32000 &&
                m.hp.stop_ids[1] == 32001 && m.hp.stop_ids[2] == 32007,
            "gguf_stop_ids", "bos %u eos %u, stop ids %u: %u %u %u (generation_config.json: 32000 32001 32007)",
            m.hp.bos_id, m.hp.eos_id, m.hp.n_stop_ids, m.hp.stop_ids[0], m.hp.stop_ids[1], m.hp.stop_ids[2]);
    json_free(j);
    model_free(&m);
    tok_free(hf);
}

/* ---- block exactness: each GGUF type of gguf-types.gguf as blk.3.ffn_down ---- */

static void test_types(void) {
    Src base, types;
    if (src_open(&base, "trained-tiny-Q8_0.gguf")) return;
    if (src_open(&types, "gguf-types.gguf")) {
        src_close(&base);
        return;
    }
    static const struct { const char *name; const char *phi; } cases[] = {
        {"F16", "f16"}, {"BF16", "f32"}, {"Q8_0", "q8"}, {"Q4_0", "q4"}, {"Q4_1", "f32"}, {"Q5_0", "q8"},
        {"Q5_1", "f32"}, {"Q2_K", "f32"}, {"Q3_K", "q6_kp"}, {"Q4_K", "q4_kp"}, {"Q5_K", "q5_kp"}, {"Q6_K", "q6_kp"},
        {"IQ4_NL", "q8"}, {"IQ4_XS", NULL},
    };
    GwBuf b = {0};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const GgufTensor *t = gguf_find_tensor(&types.g, cases[c].name);
        char rname[32], err[512];
        snprintf(rname, sizeof rname, "%s.rows0-15", cases[c].name);
        const GgufTensor *ref = gguf_find_tensor(&types.g, rname);
        /* blk.3.ffn_down (256 x 768) of the trained model, or for Q2_K / Q3_K the first 256 rows of
         * its embedding (256 x 256), which take blk.3.attn_output's place */
        int sq = t && t->ne[0] == 256;
        int64_t cols = sq ? 256 : 768;
        if (!t || !ref || t->ne[0] != (uint64_t)cols || t->ne[1] != 256) {
            t_check(0, "gguf_type_fixture", "%s: no 768 x 256 or 256 x 256 tensor", cases[c].name);
            continue;
        }
        Edit e = {.replace = sq ? "blk.3.attn_output.weight" : "blk.3.ffn_down.weight", .rep_type = t->type,
                  .rep_ne0 = (uint64_t)cols, .rep_ne1 = 256, .rep_data = t->data};
        Model m;
        uint8_t *img;
        uint64_t isz;
        if (rewrite(&base.g, &e, &b) || model_from_gguf(b.b, b.n, &m, &img, &isz, err, sizeof err)) {
            t_check(0, "gguf_type_model", "%s: %s", cases[c].name, err);
            continue;
        }
        const MatView *w = sq ? &m.layers[3].wo : &m.layers[3].w_down;
        const char *want = cases[c].phi;
        int k = -1;
        char lower[16]; /* outlives the block: want may point to it */
        if (!want) { /* K types: phi's own where the build has them, else f32 */
            size_t i = 0;
            for (; cases[c].name[i] && i < 15; i++) lower[i] = (char)tolower((unsigned char)cases[c].name[i]);
            lower[i] = 0;
            k = type_from_name(lower);
            want = k >= 0 ? lower : "f32";
        }
        int type_ok = !strcmp(type_traits(w->type)->name, want);
        float *y = malloc(768 * 4), *x = malloc(768 * 4);
        int exact = 1, ref_ok = 1;
        for (int r = 0; r < 256; r++) {
            matview_dequant_row(w, r, y);
            ggml_dequantize_row(t->type, t->data + (uint64_t)r * t->row_bytes, x, cols, err, sizeof err);
            exact &= memcmp(x, y, (size_t)cols * 4) == 0;
            if (r < 16) ref_ok &= memcmp(ref->data + (uint64_t)r * (uint64_t)cols * 4, y, (size_t)cols * 4) == 0;
        }
        t_check(type_ok && exact && ref_ok, "gguf_type_exact",
                "%s -> phi %s (want %s): 256 x %d values equal ggml's dequantization%s, rows 0-15 the reference's%s",
                cases[c].name, type_traits(w->type)->name, want, (int)cols, exact ? "" : " (NOT)", ref_ok ? "" : " (NOT)");
        free(x), free(y);
        model_free(&m);
        munmap(img, (size_t)isz);
    }
    free(b.b);
    src_close(&types);
    src_close(&base);
}

/* Every q8 matrix of the Q8_0 file holds the GGUF's values exactly, and the direct image equals
 * the file quant writes. */
static void test_q8_file(void) {
    Src s;
    if (src_open(&s, "trained-tiny-Q8_0.gguf")) return;
    char err[512] = "", out[800];
    Model m;
    uint8_t *img;
    uint64_t isz;
    if (!t_check(model_from_gguf(s.buf, s.size, &m, &img, &isz, err, sizeof err) == 0, "gguf_q8_model", "%s", err)) {
        src_close(&s);
        return;
    }
    int n_mat = 0, exact = 1;
    float *x = malloc(32064 * 4), *y = malloc(32064 * 4);
    for (uint32_t i = 0; i < m.file.n_tensors; i++) {
        const PhiTensorInfo *pt = &m.file.tensors[i];
        if (pt->ndim != 2) continue;
        /* the GGUF tensor of the same matrix, by the schema name's position */
        const char *gn = NULL;
        char buf[80];
        unsigned l;
        if (!strcmp(pt->name, "model.embed_tokens.weight")) gn = "token_embd.weight";
        else if (!strcmp(pt->name, "lm_head.weight")) gn = "output.weight";
        else if (sscanf(pt->name, "model.layers.%u.", &l) == 1) {
            const char *suf = strstr(pt->name, "qkv_proj") ? "attn_qkv" : strstr(pt->name, "o_proj") ? "attn_output"
                            : strstr(pt->name, "gate_up") ? "ffn_up" : "ffn_down";
            snprintf(buf, sizeof buf, "blk.%u.%s.weight", l, suf);
            gn = buf;
        }
        const GgufTensor *gt = gn ? gguf_find_tensor(&s.g, gn) : NULL;
        if (!gt || pt->type != TENSOR_Q8) {
            exact = 0;
            continue;
        }
        MatView w = matview(pt->type, pt->data, (int)pt->ne[0], (int)pt->ne[1]);
        for (uint64_t r = 0; r < pt->ne[0]; r++) {
            matview_dequant_row(&w, (int)r, y);
            ggml_dequantize_row(gt->type, gt->data + r * gt->row_bytes, x, (int64_t)pt->ne[1], err, sizeof err);
            exact &= memcmp(x, y, pt->ne[1] * 4) == 0;
        }
        n_mat++;
    }
    t_check(exact && n_mat == 18, "gguf_q8_exact", "%d Q8_0 matrices -> q8, every value equal to ggml's", n_mat);
    free(x), free(y);
    snprintf(out, sizeof out, "%s/gguf_model_q8.phi", t_tmp_dir());
    uint64_t fsz = 0;
    uint8_t *f = NULL;
    if (t_check(gguf_model_write(&s.g, out, NULL, err, sizeof err) == 0, "gguf_q8_write", "%s", err)) {
        f = t_read_all(out, &fsz);
        t_check(f && fsz == isz && !memcmp(f, img, (size_t)isz), "gguf_q8_file_equals_image",
                "quant's file (%llu bytes) equals the in-memory image", (unsigned long long)fsz);
    }
    free(f);
    model_free(&m);
    munmap(img, (size_t)isz);
    src_close(&s);
}

/* ---- bad files at model level: one line, -1 ---- */

static void test_bad(void) {
    Src s;
    if (src_open(&s, "phi4ish-f16.gguf")) return;
    static const uint8_t zeros[64 * 1024];
    const Edit cases[] = {
        {.set_key = "general.architecture", .set_type = GGUF_TYPE_STRING, .set_str = "llama"},
        {.drop_key = "general.architecture"},
        {.drop_key = "phi3.block_count"},
        {.drop_key = "phi3.embedding_length"},
        {.drop_key = "tokenizer.ggml.tokens"},
        {.set_key = "phi3.block_count", .set_type = GGUF_TYPE_UINT32, .set_u32 = 3},
        {.set_key = "phi3.block_count", .set_type = GGUF_TYPE_UINT32, .set_u32 = 0},
        {.set_key = "phi3.block_count", .set_type = GGUF_TYPE_UINT32, .set_u32 = 100000},
        {.set_key = "phi3.attention.head_count", .set_type = GGUF_TYPE_UINT32, .set_u32 = 3},
        {.set_key = "phi3.attention.head_count_kv", .set_type = GGUF_TYPE_UINT32, .set_u32 = 3},
        {.set_key = "phi3.attention.head_count_kv", .set_type = GGUF_TYPE_UINT32, .set_u32 = 0},
        {.set_key = "phi3.rope.dimension_count", .set_type = GGUF_TYPE_UINT32, .set_u32 = 33},
        {.set_key = "phi3.rope.dimension_count", .set_type = GGUF_TYPE_UINT32, .set_u32 = 7},
        {.set_key = "phi3.context_length", .set_type = GGUF_TYPE_UINT32, .set_u32 = 0},
        {.set_key = "phi3.context_length", .set_type = GGUF_TYPE_STRING, .set_str = "4096"},
        {.set_key = "phi3.attention.layer_norm_rms_epsilon", .set_type = GGUF_TYPE_FLOAT32, .set_f32 = -1},
        {.set_key = "phi3.attention.layer_norm_rms_epsilon", .set_type = GGUF_TYPE_FLOAT32, .set_f32 = NAN},
        {.set_key = "phi3.rope.freq_base", .set_type = GGUF_TYPE_FLOAT32, .set_f32 = INFINITY},
        {.set_key = "phi3.rope.scaling.attn_factor", .set_type = GGUF_TYPE_FLOAT32, .set_f32 = 0},
        {.drop_tensor = "blk.1.ffn_down.weight"},
        {.drop_tensor = "output_norm.weight"},
        {.drop_tensor = "token_embd.weight"},
        {.rename_from = "blk.0.attn_qkv.weight", .rename_to = "blk.0.attn_qkvx.weight"},
        {.replace = "blk.0.attn_qkv.weight", .rep_type = GGML_TYPE_F16, .rep_ne0 = 128, .rep_ne1 = 255},
        {.replace = "blk.0.ffn_up.weight", .rep_type = GGML_TYPE_F16, .rep_ne0 = 256, .rep_ne1 = 256},
        {.replace = "token_embd.weight", .rep_type = GGML_TYPE_F16, .rep_ne0 = 64, .rep_ne1 = 100},
        {.replace = "blk.0.attn_norm.weight", .rep_type = GGML_TYPE_Q8_0, .rep_ne0 = 128, .rep_ne1 = 1, .rep_data = zeros},
        {.replace = "blk.0.attn_norm.weight", .rep_type = GGML_TYPE_F32, .rep_ne0 = 127, .rep_ne1 = 1, .rep_data = zeros},
        {.replace = "blk.0.attn_output.weight", .rep_type = GGML_TYPE_I32, .rep_ne0 = 128, .rep_ne1 = 128, .rep_data = zeros},
        {.replace = "blk.0.attn_output.weight", .rep_type = GGML_TYPE_IQ2_XXS, .rep_ne0 = 256, .rep_ne1 = 64},
        {.replace = "rope_factors_long.weight"}, /* absent here: no change, the file is fine */
        {.rename_from = "blk.0.attn_norm.weight", .rename_to = "rope_factors_long.weight"},
    };
    GwBuf b = {0};
    int ok = 0, n = (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0; i < n; i++) {
        char err[512] = "";
        if (rewrite(&s.g, &cases[i], &b)) {
            t_check(0, "gguf_bad_craft", "case %d", i);
            continue;
        }
        Model m;
        uint8_t *img;
        uint64_t isz;
        int rc = model_from_gguf(b.b, b.n, &m, &img, &isz, err, sizeof err);
        int expect_ok = i == n - 2;
        if (!rc) {
            model_free(&m);
            munmap(img, (size_t)isz);
        }
        int good = expect_ok ? rc == 0 : rc == -1 && err[0] && !strchr(err, '\n');
        if (!good) printf("  case %d: rc %d: %s\n", i, rc, err);
        else if (!expect_ok) printf("  case %d: %s\n", i, err);
        ok += good;
    }
    t_check(ok == n, "gguf_bad_models", "%d of %d crafted files handled (refused with one line, or run)", ok, n);
    free(b.b);
    src_close(&s);
}

/* A key older converters omit: the documented default, noted with verbose only. */
static int n_notes;
static char last_note[512];
static void count_note(void *ctx, const char *line) {
    (void)ctx;
    n_notes++;
    snprintf(last_note, sizeof last_note, "%s", line);
}

static void test_defaults(void) {
    Src s;
    if (src_open(&s, "trained-tiny-Q8_0.gguf")) return;
    GwBuf b = {0};
    Edit e = {.drop_key = "phi3.attention.sliding_window"};
    char err[512] = "";
    Gguf g;
    PhiHParams hp;
    rewrite(&s.g, &e, &b);
    if (t_check(gguf_parse(b.b, b.n, &g, err, sizeof err) == 0, "gguf_defaults_parse", "%s", err)) {
        GgufModelOptions quiet = {count_note, NULL, 0}, verbose = {count_note, NULL, 1};
        int rc = gguf_model_hparams(&g, &quiet, &hp, err, sizeof err);
        int quiet_notes = n_notes;
        rc |= gguf_model_hparams(&g, &verbose, &hp, err, sizeof err);
        t_check(rc == 0 && hp.sliding_window == 0 && quiet_notes == 0 && n_notes == 1 &&
                    strstr(last_note, "sliding_window"),
                "gguf_default_sliding_window", "no key: no window (%u), noted with verbose only: '%s'",
                hp.sliding_window, last_note);
        gguf_free(&g);
    }
    free(b.b);
    src_close(&s);
}

int main(void) {
    (void)gw_small, (void)gw_nested;
    const char *d = t_data_dir();
    char probe[700];
    snprintf(probe, sizeof probe, "%s/phi3-gguf/README.md", d ? d : ".");
    FILE *f = d ? fopen(probe, "r") : NULL;
    if (!f) {
        t_skip("gguf_model", "no ../shared/data/phi3-gguf");
        return 0;
    }
    fclose(f);
    snprintf(data, sizeof data, "%s", d);
    test_q8_file();
    test_types();
    test_bad();
    test_defaults();
    test_tokenizer();
    test_reference("trained-tiny-Q8_0.gguf", "Q8_0");
    test_reference("trained-tiny-Q4_K_M.gguf", "Q4_K_M");
    test_folder("longrope-f16.gguf", "longrope", 80);
    test_folder("phi4ish-f16.gguf", "phi4ish", 24);
    return t_done();
}
