/* LoRA adapters: PEFT folders read as saved, applied unmerged at run time (both paths) and
 * merged by the converter, against float64 references of the merged model
 * (../shared/data/phi3-lora/adapter-r8: W + S (alpha/r) B A at S = 1 and 0.5); the unfused
 * Llama-style names on adapters written here with known A and B; every bad folder one line. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/half.h"
#include "base/json.h"
#include "base/regex.h"
#include "convert/convert.h"
#include "convert/lora_load.h"
#include "kernels/kernels.h"
#include "kernels/ref.h"
#include "model/lora.h"
#include "model/model.h"
#include "model/sampler.h"
#include "tests/harness.h"
#include "tests/gguf_write.h"

#define VOCAB 32064

/* ---- writing adapters ---- */

typedef struct {
    char name[160];
    int rows, cols;
    const float *v;
} WT;

static uint16_t bf16_of(float x) { /* round to nearest even */
    uint32_t u;
    memcpy(&u, &x, 4);
    return (uint16_t)((u + 0x7fff + (u >> 16 & 1)) >> 16);
}

static void mm_ref(const MatView *w, const float *x, int n, float *y, Pool *pool) {
    (void)pool;
    for (int i = 0; i < n; i++) matvec_ref(w, x + (size_t)i * w->cols, y + (size_t)i * w->rows);
}

/* A safetensors file of F32 (dtype "F32"), F16 or BF16 tensors. */
static int write_st(const char *path, const WT *t, int n, const char *dtype) {
    int esz = strcmp(dtype, "F32") ? 2 : 4;
    size_t cap = 256 + (size_t)n * 256, len = 0, off = 0;
    char *h = malloc(cap);
    len += (size_t)snprintf(h + len, cap - len, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < n; i++) {
        size_t bytes = (size_t)t[i].rows * t[i].cols * esz;
        len += (size_t)snprintf(h + len, cap - len, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%d,%d],\"data_offsets\":[%zu,%zu]}",
                                t[i].name, dtype, t[i].rows, t[i].cols, off, off + bytes);
        off += bytes;
    }
    len += (size_t)snprintf(h + len, cap - len, "}");
    while (len % 8) h[len++] = ' ';
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    uint64_t hl = len;
    for (int b = 0; b < 8; b++) fputc((int)(hl >> (8 * b)) & 0xff, f);
    fwrite(h, 1, len, f);
    for (int i = 0; i < n; i++)
        for (size_t k = 0; k < (size_t)t[i].rows * t[i].cols; k++) {
            float x = t[i].v[k];
            if (esz == 4) fwrite(&x, 4, 1, f);
            else {
                uint16_t u = !strcmp(dtype, "F16") ? f32_to_fp16(x) : bf16_of(x);
                fwrite(&u, 2, 1, f);
            }
        }
    free(h);
    return fclose(f);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static char *folder(const char *name) {
    static char buf[4][512];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 512, "%s/lora_%s", t_tmp_dir(), name);
    mkdir(p, 0755);
    return p;
}

static const char *CFG_FMT =
    "{%s\"peft_type\": \"LORA\", \"r\": %d, \"lora_alpha\": %g, \"target_modules\": %s, \"bias\": \"none\","
    " \"use_dora\": false, \"use_rslora\": %s, \"modules_to_save\": null, \"fan_in_fan_out\": false,"
    " \"layers_to_transform\": %s}";

static void write_cfg(const char *dir, int r, double alpha, const char *targets, int rslora, const char *layers,
                      const char *extra) {
    char path[600], text[2048];
    /* extra (fields with a trailing comma) comes first: json_get takes the first of a repeated key */
    snprintf(text, sizeof text, CFG_FMT, extra, r, alpha, targets, rslora ? "true" : "false", layers);
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    write_text(path, text);
}

/* ---- helpers ---- */

static float *read_f32(const char *path, size_t n) {
    size_t len = 0;
    char err[256];
    char *b = read_file(path, &len, err, sizeof err);
    if (!b || len != n * sizeof(float)) {
        free(b);
        return NULL;
    }
    return (float *)b;
}

static int *read_ids(const char *path, int *n) {
    char err[256];
    Json *j = json_parse_file(path, err, sizeof err);
    if (!j) return NULL;
    const JsonValue *a = json_root(j);
    *n = (int)json_count(a);
    int *ids = malloc((size_t)(*n ? *n : 1) * sizeof *ids);
    for (int i = 0; i < *n; i++) ids[i] = (int)json_num(json_at(a, i), -1);
    json_free(j);
    return ids;
}

/* Logits of every position of ids, and 16 greedy ids after them. */
static float *run(const Model *m, int use_ref, const int *ids, int n, int *greedy) {
    State s;
    char err[256];
    if (state_init_ex(&s, m, n + 16, use_ref ? 1 : 2, STATE_KV_F32, err, sizeof err)) return NULL;
    s.use_ref = use_ref;
    float *logits = malloc((size_t)n * m->hp.vocab_size * sizeof *logits);
    model_forward(m, &s, ids, n, 0, logits);
    for (int i = 0, pos = n; greedy && i < 16; i++) {
        int best = sampler_argmax(s.logits, tok_vocab_size(m->tok));
        greedy[i] = best;
        if (i + 1 < 16) model_forward(m, &s, &best, 1, pos++, NULL);
    }
    state_free(&s);
    return logits;
}

typedef struct {
    double max_abs, sum_abs, max_ref;
    long n, top1, rows;
} Err;

static void err_add(Err *e, const float *got, const float *want, int rows, int vocab) {
    for (int r = 0; r < rows; r++) {
        int ag = 0, aw = 0;
        for (int k = 0; k < vocab; k++) {
            const float g = got[(size_t)r * vocab + k], w = want[(size_t)r * vocab + k];
            double d = fabs((double)g - w);
            if (d > e->max_abs) e->max_abs = d;
            if (fabs(w) > e->max_ref) e->max_ref = fabs(w);
            e->sum_abs += d;
            e->n++;
            if (g > got[(size_t)r * vocab + ag]) ag = k;
            if (w > want[(size_t)r * vocab + aw]) aw = k;
        }
        e->top1 += ag == aw;
        e->rows++;
    }
}

/* ---- against the float64 references ---- */

/* Every prompt of reference-s<S> against the model (with its adapters): logits of the last 8
 * positions and the 16 greedy ids. */
static void check_reference(const char *name, const Model *m, const char *ref, int use_ref, double bound,
                            int want_greedy) {
    Err e = {0};
    int greedy_ok = 0, prompts = 0;
    for (int p = 0; p < 3; p++) {
        char path[1024];
        int n, ng;
        snprintf(path, sizeof path, "%s/p%d/ids.json", ref, p);
        int *ids = read_ids(path, &n);
        snprintf(path, sizeof path, "%s/p%d/greedy.json", ref, p);
        int *want = read_ids(path, &ng);
        snprintf(path, sizeof path, "%s/p%d/logits-last8.f32", ref, p);
        float *wl = read_f32(path, 8 * (size_t)VOCAB);
        if (!ids || !want || !wl || n < 8 || ng != 16) {
            t_check(0, name, "cannot read %s", path);
            free(ids), free(want), free(wl);
            return;
        }
        int got[16];
        float *l = run(m, use_ref, ids, n, got);
        err_add(&e, l + (size_t)(n - 8) * VOCAB, wl, 8, VOCAB);
        greedy_ok += !memcmp(got, want, sizeof got);
        prompts++;
        free(l), free(ids), free(want), free(wl);
    }
    double rel = e.max_abs / e.max_ref;
    if (want_greedy)
        t_check(rel < bound && greedy_ok == prompts, name,
                "max abs %.2e, mean abs %.2e, max rel %.2e (bound %.0e), top-1 %ld/%ld, greedy 16/16 equal in %d/%d prompts",
                e.max_abs, e.sum_abs / e.n, rel, bound, e.top1, e.rows, greedy_ok, prompts);
    else
        t_check(rel < bound, name, "max abs %.2e, mean abs %.2e, max rel %.2e (bound %.0e), top-1 %ld/%ld, greedy equal %d/%d",
                e.max_abs, e.sum_abs / e.n, rel, bound, e.top1, e.rows, greedy_ok, prompts);
}

static int convert_with(const char *dir, const char *out, int type, const char *lora, float s) {
    ConvertOptions opt = {.type = type};
    if (lora) {
        opt.lora_path[0] = lora;
        opt.lora_scale[0] = s;
        opt.n_lora = 1;
    }
    char err[1024];
    if (convert_hf(dir, out, &opt, err, sizeof err)) {
        t_check(0, "convert", "%s: %s", dir, err);
        return -1;
    }
    return 0;
}

static int same_bits(const float *a, const float *b, size_t n) { return !memcmp(a, b, n * sizeof *a); }

static void test_gguf(const Model *m, const LoraAdapter *ad, const char *ref1);

static void test_trained(const char *data) {
    char base_dir[400], ad_dir[500], ref1[600], ref05[600], path[1024], err[1024];
    snprintf(base_dir, sizeof base_dir, "%s/phi3-trained-tiny", data);
    snprintf(ad_dir, sizeof ad_dir, "%s/phi3-lora/adapter-r8", data);
    snprintf(ref1, sizeof ref1, "%s/reference-s1", ad_dir);
    snprintf(ref05, sizeof ref05, "%s/reference-s0.5", ad_dir);
    struct stat st;
    if (stat(ad_dir, &st) || stat(base_dir, &st)) {
        t_skip("lora_trained", "%s or %s not present", ad_dir, base_dir);
        return;
    }
    const char *tmp = t_tmp_dir();
    snprintf(path, sizeof path, "%s/lora_base_f32.phi", tmp);
    if (convert_with(base_dir, path, TENSOR_F32, NULL, 0)) return;
    Model m;
    if (model_load(path, &m, err, sizeof err)) {
        t_check(0, "lora_load_base", "%s", err);
        return;
    }
    LoraAdapter *ad = lora_load(ad_dir, &m.hp, err, sizeof err);
    if (!t_check(ad != NULL, "lora_peft_read", "%s: %d pieces, %.1f KiB", ad ? "" : err, ad ? ad->n : 0,
                 ad ? lora_adapter_bytes(ad) / 1024.0 : 0)) {
        model_free(&m);
        return;
    }
    /* Base logits of prompt 0 (to compare the scale-0 and detach cases bit for bit). */
    int n0;
    snprintf(path, sizeof path, "%s/p0/ids.json", ref1);
    int *ids0 = read_ids(path, &n0);
    float *base_fast = run(&m, 0, ids0, n0, NULL), *base_ref = run(&m, 1, ids0, n0, NULL);

    /* Measured on x86-64 AVX-512 (2026-12-05): f32 fast 3e-6 abs (2.6e-7 rel), the issue asks 1e-3. */
    lora_attach(&m, ad, 1.0f, err, sizeof err);
    check_reference("lora_runtime_s1_fast", &m, ref1, 0, 1e-3, 1);
    check_reference("lora_runtime_s1_ref", &m, ref1, 1, 1e-3, 1);
    lora_detach_all(&m);
    float *l = run(&m, 0, ids0, n0, NULL);
    t_check(same_bits(l, base_fast, (size_t)n0 * VOCAB), "lora_detach_gives_base", "fast path logits bit for bit");
    free(l);
    lora_attach(&m, ad, 0.5f, err, sizeof err);
    check_reference("lora_runtime_s0.5_fast", &m, ref05, 0, 1e-3, 1);
    check_reference("lora_runtime_s0.5_ref", &m, ref05, 1, 1e-3, 1);
    /* two adapters add up: 0.5 + 0.5 = the reference at scale 1 */
    lora_attach(&m, ad, 0.5f, err, sizeof err);
    t_check(lora_set_count(m.lora) == 2, "lora_two_attached", "%d", lora_set_count(m.lora));
    check_reference("lora_two_adapters_sum", &m, ref1, 0, 1e-3, 1);
    lora_detach_all(&m);
    lora_attach(&m, ad, 0.0f, err, sizeof err);
    l = run(&m, 0, ids0, n0, NULL);
    float *lr = run(&m, 1, ids0, n0, NULL);
    t_check(same_bits(l, base_fast, (size_t)n0 * VOCAB) && same_bits(lr, base_ref, (size_t)n0 * VOCAB),
            "lora_scale0_is_base", "fast and reference logits bit for bit");
    free(l), free(lr);
    lora_detach_all(&m);
    /* A state's own set overrides the model's (the server's per-request choice). */
    LoraSet *set = lora_set_new(&m.hp);
    lora_set_add(set, ad, 1.0f, err, sizeof err);
    {
        State s;
        state_init_ex(&s, &m, n0, 2, STATE_KV_F32, err, sizeof err);
        s.lora = set;
        float *lg = malloc((size_t)n0 * VOCAB * sizeof *lg), *wl;
        model_forward(&m, &s, ids0, n0, 0, lg);
        snprintf(path, sizeof path, "%s/p0/logits-last8.f32", ref1);
        wl = read_f32(path, 8 * (size_t)VOCAB);
        Err e = {0};
        if (wl) err_add(&e, lg + (size_t)(n0 - 8) * VOCAB, wl, 8, VOCAB);
        t_check(wl && e.max_abs / e.max_ref < 1e-3, "lora_state_set", "max rel %.2e with the model's set empty",
                e.max_abs / e.max_ref);
        free(lg), free(wl);
        state_free(&s);
    }
    lora_set_free(set);

    /* Merged by quant --lora: f32 against the reference; q8 and q4 merged against the same type
     * unmerged (both are the quantized base plus the adapter, the merged one quantizes the sum). */
    snprintf(path, sizeof path, "%s/lora_merged_f32.phi", tmp);
    Model mm;
    if (!convert_with(base_dir, path, TENSOR_F32, ad_dir, 1.0f) && !model_load(path, &mm, err, sizeof err)) {
        check_reference("lora_merged_f32_s1", &mm, ref1, 0, 1e-3, 1);
        model_free(&mm);
    }
    snprintf(path, sizeof path, "%s/lora_merged_f32_s05.phi", tmp);
    if (!convert_with(base_dir, path, TENSOR_F32, ad_dir, 0.5f) && !model_load(path, &mm, err, sizeof err)) {
        check_reference("lora_merged_f32_s0.5", &mm, ref05, 0, 1e-3, 1);
        model_free(&mm);
    }
    /* q8 / q4: the usual quantization bounds of test_reference (trained tiny, fast path, F32 KV:
     * q8 3e-2, q4 8e-2 max rel), and top-1 agreement reported. */
    for (int q = 0; q < 2; q++) {
        int type = q ? TENSOR_Q4 : TENSOR_Q8;
        const char *tn = q ? "q4" : "q8";
        double bound = q ? 8e-2 : 3e-2;
        char name[64];
        snprintf(path, sizeof path, "%s/lora_base_%s.phi", tmp, tn);
        Model mq;
        if (!convert_with(base_dir, path, type, NULL, 0) && !model_load(path, &mq, err, sizeof err)) {
            lora_attach(&mq, ad, 1.0f, err, sizeof err);
            snprintf(name, sizeof name, "lora_runtime_%s", tn);
            check_reference(name, &mq, ref1, 0, bound, 0);
            model_free(&mq);
        }
        snprintf(path, sizeof path, "%s/lora_merged_%s.phi", tmp, tn);
        if (!convert_with(base_dir, path, type, ad_dir, 1.0f) && !model_load(path, &mq, err, sizeof err)) {
            snprintf(name, sizeof name, "lora_merged_%s", tn);
            check_reference(name, &mq, ref1, 0, bound, 0);
            model_free(&mq);
        }
    }
    test_gguf(&m, ad, ref1);
    free(base_fast), free(base_ref), free(ids0);
    lora_adapter_free(ad);
    model_free(&m);
}

/* ---- GGUF adapters (llama.cpp's convert_lora_to_gguf.py layout) ---- */

/* The pieces of ad as a GGUF adapter: blk.N.<name>.weight.lora_a (ne [in, r]) and .lora_b
 * (ne [r, out]), F32 or F16, with general.type and adapter.lora.alpha. */
static void write_gguf_adapter(const char *path, const LoraAdapter *ad, float alpha, const char *gtype, int f16) {
    GwBuf g = {0};
    gw_bytes(&g, "GGUF", 4);
    gw_u32(&g, 3);
    gw_u64(&g, (uint64_t)ad->n * 2);
    gw_u64(&g, 4);
    gw_str(&g, "general.architecture"), gw_u32(&g, 8), gw_str(&g, "phi3");
    gw_str(&g, "general.type"), gw_u32(&g, 8), gw_str(&g, gtype);
    gw_str(&g, "adapter.type"), gw_u32(&g, 8), gw_str(&g, "lora");
    gw_str(&g, "adapter.lora.alpha"), gw_u32(&g, 6), gw_f32(&g, alpha);
    const char *names[4] = {"attn_qkv", "attn_output", "ffn_up", "ffn_down"};
    uint64_t off = 0;
    for (int i = 0; i < ad->n; i++)
        for (int half = 0; half < 2; half++) {
            const LoraPiece *p = &ad->p[i];
            int k = p->role == ROLE_QKV ? 0 : p->role == ROLE_O ? 1 : p->role == ROLE_GATE_UP ? 2 : 3;
            char name[96];
            snprintf(name, sizeof name, "blk.%d.%s.weight.lora_%c", p->layer, names[k], half ? 'b' : 'a');
            gw_str(&g, name);
            gw_u32(&g, 2);
            gw_u64(&g, (uint64_t)(half ? p->rank : p->cols));
            gw_u64(&g, (uint64_t)(half ? p->rows : p->rank));
            gw_u32(&g, f16 ? 1 : 0);
            gw_u64(&g, off);
            off += ((uint64_t)p->rank * (half ? p->rows : p->cols) * (f16 ? 2 : 4) + 31) / 32 * 32;
        }
    while (g.n % 32) gw_bytes(&g, "", 1);
    for (int i = 0; i < ad->n; i++)
        for (int half = 0; half < 2; half++) {
            const LoraPiece *p = &ad->p[i];
            size_t n = (size_t)p->rank * (half ? p->rows : p->cols);
            for (size_t k = 0; k < n; k++) {
                /* B goes out as [rows][rank] (ggml ne [r, out]); the adapter keeps it transposed */
                float vk = half ? p->bt[(k % (size_t)p->rank) * (size_t)p->rows + k / (size_t)p->rank] : p->a[k];
                if (f16) {
                    uint16_t u = f32_to_fp16(vk);
                    gw_bytes(&g, &u, 2);
                } else {
                    gw_f32(&g, vk);
                }
            }
            while (g.n % 32) gw_bytes(&g, "", 1);
        }
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(g.b, 1, g.n, f);
        fclose(f);
    }
    free(g.b);
}

static void test_gguf(const Model *m, const LoraAdapter *ad, const char *ref1) {
    (void)gw_small, (void)gw_nested; /* the writer's other helpers */
    char path[700], err[1024];
    snprintf(path, sizeof path, "%s/lora_adapter.gguf", t_tmp_dir());
    write_gguf_adapter(path, ad, 16.0f, "adapter", 0);
    LoraAdapter *ga = lora_load(path, &m->hp, err, sizeof err);
    if (t_check(ga && ga->n == ad->n, "lora_gguf_read", "%s", ga ? "16 pairs, F32" : err)) {
        Model *mm = (Model *)m;
        lora_attach(mm, ga, 1.0f, err, sizeof err);
        check_reference("lora_gguf_runtime_s1", mm, ref1, 0, 1e-3, 1);
        lora_detach_all(mm);
    }
    lora_adapter_free(ga);
    snprintf(path, sizeof path, "%s/lora_adapter_f16.gguf", t_tmp_dir());
    write_gguf_adapter(path, ad, 16.0f, "adapter", 1);
    ga = lora_load(path, &m->hp, err, sizeof err);
    double worst = 0;
    for (int i = 0; ga && i < ga->n; i++)
        for (int j = 0; j < ad->n; j++) /* the same (layer, matrix) */
            if (ad->p[j].layer == ga->p[i].layer && ad->p[j].role == ga->p[i].role)
                for (int k = 0; k < ga->p[i].rank * ga->p[i].cols; k++)
                    worst = fmax(worst, fabs(ga->p[i].a[k] - ad->p[j].a[k]));
    t_check(ga && worst < 1e-3 && ga->p[0].scale == 2.0f, "lora_gguf_f16", "%s max |A f16 - A| %.1e, c %g",
            ga ? "" : err, worst, ga ? (double)ga->p[0].scale : 0.0);
    lora_adapter_free(ga);
    snprintf(path, sizeof path, "%s/lora_model.gguf", t_tmp_dir());
    write_gguf_adapter(path, ad, 16.0f, "model", 0);
    ga = lora_load(path, &m->hp, err, sizeof err);
    t_check(!ga && strstr(err, "not a GGUF adapter") && !strchr(err, '\n'), "lora_gguf_not_adapter", "%s", ga ? "accepted" : err);
    lora_adapter_free(ga);
    /* truncated */
    size_t len;
    snprintf(path, sizeof path, "%s/lora_adapter.gguf", t_tmp_dir());
    char *b = read_file(path, &len, err, sizeof err);
    snprintf(path, sizeof path, "%s/lora_trunc.gguf", t_tmp_dir());
    FILE *f = fopen(path, "wb");
    if (b && f) fwrite(b, 1, len - 64, f);
    if (f) fclose(f);
    free(b);
    ga = lora_load(path, &m->hp, err, sizeof err);
    t_check(!ga && !strchr(err, '\n'), "lora_gguf_truncated", "%s", ga ? "accepted" : err);
    lora_adapter_free(ga);
}

/* ---- unfused names on a tiny random model, with known A and B ---- */

static void fill(float *x, size_t n, uint64_t *st, float a) {
    for (size_t i = 0; i < n; i++) x[i] = a * (2.0f * rng_float01(st) - 1.0f);
}

static void test_unfused(void) {
    char path[700], err[1024];
    snprintf(path, sizeof path, "%s/lora_tiny_f32.phi", t_tmp_dir());
    ConvertOptions opt = {.type = TENSOR_F32, .seed = 7};
    if (convert_random("tiny", path, &opt, err, sizeof err)) {
        t_check(0, "lora_tiny_model", "%s", err);
        return;
    }
    Model m;
    if (model_load(path, &m, err, sizeof err)) {
        t_check(0, "lora_tiny_model", "%s", err);
        return;
    }
    const PhiHParams *hp = &m.hp;
    int dim = (int)hp->dim, q = (int)(hp->n_heads * hp->head_dim), kv = (int)(hp->n_kv_heads * hp->head_dim);
    int h = (int)hp->hidden_dim, r = 4;
    /* modules with their (role, first row, rows, cols) in phi's fused matrices */
    struct { const char *mod; SchemaRole role; int row0, rows, cols; } mods[] = {
        {"self_attn.q_proj", ROLE_QKV, 0, q, dim},          {"self_attn.k_proj", ROLE_QKV, q, kv, dim},
        {"self_attn.v_proj", ROLE_QKV, q + kv, kv, dim},    {"self_attn.o_proj", ROLE_O, 0, dim, q},
        {"mlp.gate_proj", ROLE_GATE_UP, 0, h, dim},         {"mlp.up_proj", ROLE_GATE_UP, h, h, dim},
        {"mlp.down_proj", ROLE_DOWN, 0, dim, h},
    };
    int nm = (int)(sizeof mods / sizeof mods[0]), nl = (int)hp->n_layers, nt = 0;
    WT *t = calloc((size_t)nl * nm * 2, sizeof *t);
    float **vals = calloc((size_t)nl * nm * 2, sizeof *vals);
    uint64_t st = 42;
    for (int l = 0; l < nl; l++)
        for (int k = 0; k < nm; k++)
            for (int half = 0; half < 2; half++) {
                WT *w = &t[nt];
                w->rows = half ? mods[k].rows : r;
                w->cols = half ? r : mods[k].cols;
                vals[nt] = malloc((size_t)w->rows * w->cols * sizeof(float));
                fill(vals[nt], (size_t)w->rows * w->cols, &st, 0.3f);
                w->v = vals[nt];
                snprintf(w->name, sizeof w->name, "base_model.model.model.layers.%d.%s.lora_%c.weight", l, mods[k].mod,
                         half ? 'B' : 'A');
                nt++;
            }
    const char *dir = folder("unfused");
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    write_st(path, t, nt, "F32");
    write_cfg(dir, r, 8.0, "[\"q_proj\", \"k_proj\", \"v_proj\", \"o_proj\", \"gate_proj\", \"up_proj\", \"down_proj\"]",
              0, "null", "");
    LoraAdapter *ad = lora_load(dir, hp, err, sizeof err);
    if (!t_check(ad != NULL, "lora_unfused_read", "%s", ad ? "7 modules x 2 layers" : err)) goto done;
    /* W + S c B A through the merge, and B (A x) through both paths' apply, against B A computed
     * here from the values written (c = 8 / 4 = 2, S = 1.5). */
    LoraSet *set = lora_set_new(hp);
    lora_set_add(set, ad, 1.5f, err, sizeof err);
    double worst_merge = 0, worst_apply = 0;
    for (int l = 0; l < nl; l++)
        for (int k = 0; k < nm; k++) {
            const float *A = vals[(l * nm + k) * 2], *B = vals[(l * nm + k) * 2 + 1];
            int rows_full = lora_role_rows(hp, mods[k].role), cols = mods[k].cols;
            float *w = calloc((size_t)rows_full * cols, sizeof *w);
            lora_merge_rows(set, l, mods[k].role, 0, rows_full, w);
            float *x = malloc((size_t)cols * sizeof *x), *y = calloc((size_t)rows_full * 2, sizeof *y);
            fill(x, (size_t)cols, &st, 1.0f);
            for (int p = 0; p < 2; p++) {
                /* path 0: the scalar reference matmul; path 1: the fast kernels */
                lora_apply(set, l, mods[k].role, x, 1, y + (size_t)p * rows_full, p ? matmul : mm_ref, NULL);
            }
            for (int row = 0; row < rows_full; row++) {
                int br = row - mods[k].row0;
                int others = 0; /* rows of a fused matrix another module updates */
                for (int o = 0; o < nm; o++)
                    if (o != k && mods[o].role == mods[k].role && row >= mods[o].row0 && row < mods[o].row0 + mods[o].rows)
                        others = 1;
                if (others) continue;
                double yx = 0;
                for (int c = 0; c < cols; c++) {
                    double want = 0;
                    if (br >= 0 && br < mods[k].rows)
                        for (int j = 0; j < r; j++) want += (double)B[(size_t)br * r + j] * A[(size_t)j * cols + c];
                    want *= 1.5 * 2.0;
                    double d = fabs(w[(size_t)row * cols + c] - want);
                    if (d > worst_merge) worst_merge = d;
                    yx += want * x[c];
                }
                for (int p = 0; p < 2; p++) {
                    double d = fabs(y[(size_t)p * rows_full + row] - yx);
                    if (d > worst_apply) worst_apply = d;
                }
            }
            free(w), free(x), free(y);
        }
    /* the merged rows are float sums of double products: 1e-5 is 40x their rounding */
    t_check(worst_merge < 1e-5, "lora_unfused_merge_rows", "max |W' - W - S c B A| %.2e over every row block", worst_merge);
    t_check(worst_apply < 1e-4, "lora_unfused_apply", "reference and fast path: max |y - S c B A x| %.2e", worst_apply);

    /* The same update as fused qkv_proj / gate_up_proj pieces (block-diagonal B, stacked A) must
     * give the same logits: the unfused mapping is the fused one. */
    WT *tf = calloc((size_t)nl * 4 * 2, sizeof *tf);
    float **fv = calloc((size_t)nl * 4 * 2, sizeof *fv);
    int nf = 0;
    for (int l = 0; l < nl; l++) {
        const char *fmods[4] = {"self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj"};
        SchemaRole froles[4] = {ROLE_QKV, ROLE_O, ROLE_GATE_UP, ROLE_DOWN};
        for (int f = 0; f < 4; f++) {
            int parts[3], np = 0;
            for (int k = 0; k < nm; k++)
                if (mods[k].role == froles[f]) parts[np++] = k;
            int rows = lora_role_rows(hp, froles[f]), cols = lora_role_cols(hp, froles[f]), R = r * np;
            float *A = calloc((size_t)R * cols, sizeof *A), *B = calloc((size_t)rows * R, sizeof *B);
            for (int p = 0; p < np; p++) {
                int k = parts[p];
                memcpy(A + (size_t)p * r * cols, vals[(l * nm + k) * 2], (size_t)r * cols * sizeof *A);
                for (int i = 0; i < mods[k].rows; i++)
                    for (int j = 0; j < r; j++)
                        B[(size_t)(mods[k].row0 + i) * R + p * r + j] = vals[(l * nm + k) * 2 + 1][(size_t)i * r + j];
            }
            /* alpha scales with the rank so that alpha / r stays 2 */
            fv[nf] = A, tf[nf] = (WT){"", R, cols, A};
            snprintf(tf[nf].name, sizeof tf[nf].name, "base_model.model.model.layers.%d.%s.lora_A.weight", l, fmods[f]);
            nf++;
            fv[nf] = B, tf[nf] = (WT){"", rows, R, B};
            snprintf(tf[nf].name, sizeof tf[nf].name, "base_model.model.model.layers.%d.%s.lora_B.weight", l, fmods[f]);
            nf++;
        }
    }
    /* qkv has rank 12, gate_up 8, o and down 4: one config r cannot describe that, so the fused
     * twin is attached as four adapters, one per matrix kind, each with its own r and alpha. */
    int ok = 1;
    int ranks[4] = {3 * r, r, 2 * r, r};
    const char *fnames[4] = {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"};
    LoraAdapter *twins[4] = {0};
    for (int f = 0; f < 4; f++) {
        char nm2[32], tg[64];
        snprintf(nm2, sizeof nm2, "fused%d", f);
        const char *d2 = folder(nm2);
        WT sel[16];
        int ns = 0;
        for (int i = 0; i < nf; i++)
            if (strstr(tf[i].name, fnames[f]) && !(f == 0 && 0)) sel[ns++] = tf[i];
        snprintf(path, sizeof path, "%s/adapter_model.safetensors", d2);
        write_st(path, sel, ns, "F32");
        snprintf(tg, sizeof tg, "[\"%s\"]", fnames[f]);
        write_cfg(d2, ranks[f], 2.0 * ranks[f], tg, 0, "null", "");
        twins[f] = lora_load(d2, hp, err, sizeof err);
        if (!twins[f]) {
            t_check(0, "lora_fused_twin_read", "%s", err);
            ok = 0;
        }
    }
    if (ok) {
        int ids[20];
        for (int i = 0; i < 20; i++) ids[i] = (i * 37 + 5) % 500;
        lora_attach(&m, ad, 1.5f, err, sizeof err);
        float *lu = run(&m, 1, ids, 20, NULL), *luf = run(&m, 0, ids, 20, NULL);
        lora_detach_all(&m);
        for (int f = 0; f < 4; f++) lora_attach(&m, twins[f], 1.5f, err, sizeof err);
        float *lf = run(&m, 1, ids, 20, NULL);
        lora_detach_all(&m);
        float *lb = run(&m, 1, ids, 20, NULL);
        double d = 0, moved = 0, fd = 0;
        for (size_t i = 0; i < (size_t)20 * hp->vocab_size; i++) {
            d = fmax(d, fabs(lu[i] - lf[i]));
            moved = fmax(moved, fabs(lu[i] - lb[i]));
            fd = fmax(fd, fabs(lu[i] - luf[i]));
        }
        t_check(d < 1e-4 && moved > 1e-2, "lora_unfused_equals_fused",
                "reference path: max |unfused - fused| %.2e (the adapter moves logits by up to %.2e)", d, moved);
        t_check(fd < 1e-3, "lora_unfused_fast_vs_ref", "max |fast - ref| %.2e", fd);
        free(lu), free(lf), free(lb), free(luf);
    }
    for (int f = 0; f < 4; f++) lora_adapter_free(twins[f]);
    for (int i = 0; i < nf; i++) free(fv[i]);
    free(fv), free(tf);
    lora_set_free(set);

    /* F16 and BF16 tensors read as their values */
    for (int dt = 0; dt < 2; dt++) {
        const char *dtype = dt ? "BF16" : "F16";
        char nm2[32];
        snprintf(nm2, sizeof nm2, "dtype_%s", dtype);
        const char *d2 = folder(nm2);
        snprintf(path, sizeof path, "%s/adapter_model.safetensors", d2);
        write_st(path, t, nt, dtype);
        write_cfg(d2, r, 8.0, "\"model\\\\.layers\\\\.\\\\d+\\\\.(self_attn|mlp)\\\\.(q|k|v|o|gate|up|down)_proj\"", 0, "null", "");
        LoraAdapter *a2 = lora_load(d2, hp, err, sizeof err);
        double worst = 0;
        for (int i = 0; a2 && i < a2->n && i < ad->n; i++)
            for (int k = 0; k < a2->p[i].rank * a2->p[i].cols; k++)
                worst = fmax(worst, fabs(a2->p[i].a[k] - ad->p[i].a[k]) / 0.3);
        snprintf(nm2, sizeof nm2, "lora_dtype_%s_regex_target", dtype);
        t_check(a2 && a2->n == ad->n && worst < (dt ? 4e-3 : 5e-4), nm2, "%s; max rel difference from F32 %.1e",
                a2 ? "read with target_modules as a regular expression" : err, worst);
        lora_adapter_free(a2);
    }
    lora_adapter_free(ad);

    /* rsLoRA: c = alpha / sqrt(r); layers_to_transform; full module paths */
    {
        const char *d2 = folder("rslora");
        WT sel[2] = {t[(1 * nm + 3) * 2], t[(1 * nm + 3) * 2 + 1]}; /* layer 1 o_proj */
        snprintf(path, sizeof path, "%s/adapter_model.safetensors", d2);
        write_st(path, sel, 2, "F32");
        write_cfg(d2, r, 8.0, "[\"model.layers.1.self_attn.o_proj\"]", 1, "[1]", "");
        LoraAdapter *a2 = lora_load(d2, hp, err, sizeof err);
        t_check(a2 && a2->n == 1 && a2->p[0].layer == 1 && fabsf(a2->p[0].scale - 4.0f) < 1e-6f, "lora_rslora_layers_paths",
                "%s scale %g (alpha 8 / sqrt(4) = 4)", a2 ? "" : err, a2 ? (double)a2->p[0].scale : 0.0);
        lora_adapter_free(a2);
    }
done:
    for (int i = 0; i < nt; i++) free(vals[i]);
    free(vals), free(t);
    model_free(&m);
}

/* ---- bad adapters: one line each ---- */

static void test_bad(void) {
    PhiHParams hp = {.vocab_size = 512, .dim = 64, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                     .head_dim = 16, .hidden_dim = 132};
    int r = 4;
    float *A = calloc(8 * 256, sizeof *A), *B = calloc(264 * 8, sizeof *B);
    for (int i = 0; i < 8 * 256; i++) A[i] = 0.01f * (i % 7);
    for (int i = 0; i < 264 * 8; i++) B[i] = 0.01f * (i % 5);
    const char *qa = "base_model.model.model.layers.0.self_attn.qkv_proj.lora_A.weight";
    const char *qb = "base_model.model.model.layers.0.self_attn.qkv_proj.lora_B.weight";
    const char *good_t = "[\"qkv_proj\"]";
    struct {
        const char *name, *targets, *layers, *extra, *expect;
        WT t[2];
        int nt, cfg_r;
        const char *dtype;
    } cases[] = {
        {"dora", good_t, "[0]", "\"use_dora\": true, ", "DoRA", {{"", r, 64, A}, {"", 128, r, B}}, 2, 4, "F32"},
        {"bias", good_t, "[0]", "\"bias\": \"lora_only\", ", "bias", {{"", r, 64, A}, {"", 128, r, B}}, 2, 4, "F32"},
        {"modules_to_save", good_t, "[0]", "\"modules_to_save\": [\"lm_head\"], ", "modules_to_save", {{"", r, 64, A}, {"", 128, r, B}}, 2, 4, "F32"},
        {"peft_type", good_t, "[0]", "\"peft_type\": \"IA3\", ", "peft_type", {{"", r, 64, A}, {"", 128, r, B}}, 2, 4, "F32"},
        {"rank_mismatch", good_t, "[0]", "", "rank", {{"", r, 64, A}, {"", 128, r, B}}, 2, 8, "F32"},
        {"shape_a", good_t, "[0]", "", "the model needs", {{"", r, 63, A}, {"", 128, r, B}}, 2, 4, "F32"},
        {"shape_b", good_t, "[0]", "", "the model needs", {{"", r, 64, A}, {"", 127, r, B}}, 2, 4, "F32"},
        {"missing_b", good_t, "[0]", "", "no lora_B", {{"", r, 64, A}}, 1, 4, "F32"},
        {"untargeted", "[\"o_proj\"]", "[0]", "", "does not target", {{"", r, 64, A}, {"", 128, r, B}}, 2, 4, "F32"},
        {"layers_to_transform", good_t, "[1]", "", "does not target", {{"", r, 64, A}, {"", 128, r, B}}, 2, 4, "F32"},
        {"layer_range", good_t, "[5]", "", "layers_to_transform", {{"", r, 64, A}, {"", 128, r, B}}, 2, 4, "F32"},
        {"lookahead", "\"^(?!.*vision).*qkv_proj\"", "[0]", "", "not supported", {{"", r, 64, A}, {"", 128, r, B}}, 2, 4, "F32"},
        {"bad_regex", "\"(qkv_proj\"", "[0]", "", "missing )", {{"", r, 64, A}, {"", 128, r, B}}, 2, 4, "F32"},
        {"missing_layer", good_t, "null", "", "no tensors", {{"", r, 64, A}, {"", 128, r, B}}, 2, 4, "F32"},
        {"dtype", good_t, "[0]", "", "dtype", {{"", r, 64, A}, {"", 128, r, B}}, 2, 4, "F64"},
        {"rank_pattern", good_t, "[0]", "\"rank_pattern\": {\"qkv_proj\": 4}, ", "rank", {{"", r, 64, A}, {"", 128, r, B}}, 2, 4, "F32"},
        {"unknown_module", good_t, "[0]", "", "unknown module", {{"", r, 64, A}, {"", 128, r, B}}, 2, 4, "F32"},
        {"nan", good_t, "[0]", "", "non-finite", {{"", r, 64, A}, {"", 128, r, B}}, 2, 4, "F32"},
        {"json", NULL, "[0]", "", "adapter_config.json", {{"", r, 64, A}, {"", 128, r, B}}, 2, 4, "F32"},
        {"truncated", good_t, "[0]", "", "beyond", {{"", r, 64, A}, {"", 128, r, B}}, 2, 4, "F32"},
    };
    int nc = (int)(sizeof cases / sizeof cases[0]);
    for (int c = 0; c < nc; c++) {
        char dirname[64], path[700], err[1024], name[96];
        snprintf(dirname, sizeof dirname, "bad%d", c); /* names without the words the messages are checked for */
        const char *dir = folder(dirname);
        WT t[2];
        memcpy(t, cases[c].t, sizeof t);
        snprintf(t[0].name, sizeof t[0].name, "%s", qa);
        snprintf(t[1].name, sizeof t[1].name, "%s", qb);
        if (!strcmp(cases[c].name, "missing_layer") || !strcmp(cases[c].name, "layers_to_transform")) {
            /* layer 0 only, though layer 1 is targeted (missing_layer) / only 1 is targeted */
        }
        if (!strcmp(cases[c].name, "unknown_module")) {
            snprintf(t[0].name, sizeof t[0].name, "base_model.model.model.layers.0.mlp.fc1.lora_A.weight");
            snprintf(t[1].name, sizeof t[1].name, "base_model.model.model.layers.0.mlp.fc1.lora_B.weight");
        }
        float *nanA = NULL;
        if (!strcmp(cases[c].name, "nan")) {
            nanA = malloc((size_t)r * 64 * sizeof *nanA);
            memcpy(nanA, A, (size_t)r * 64 * sizeof *nanA);
            nanA[17] = NAN;
            t[0].v = nanA;
        }
        snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
        if (!strcmp(cases[c].dtype, "F64")) {
            /* an F64 file: the header says F64, 8 bytes an element */
            WT t64[2] = {t[0], t[1]};
            float *a2 = calloc((size_t)r * 64 * 2, sizeof *a2), *b2 = calloc(128 * (size_t)r * 2, sizeof *b2);
            t64[0].v = a2, t64[0].cols = 128; /* twice the bytes as "F32" of 2x columns */
            t64[1].v = b2, t64[1].cols = 2 * r;
            write_st(path, t64, 2, "F32");
            /* rewrite the dtype and shapes in place: same header length */
            size_t len;
            char *b = read_file(path, &len, err, sizeof err);
            char *p;
            while ((p = strstr(b + 8, "\"F32\""))) memcpy(p, "\"F64\"", 5);
            if ((p = strstr(b + 8, "[4,128]"))) memcpy(p, "[4, 64]", 7);
            if ((p = strstr(b + 8, "[128,8]"))) memcpy(p, "[128,4]", 7);
            FILE *f = fopen(path, "wb");
            fwrite(b, 1, len, f);
            fclose(f);
            free(b), free(a2), free(b2);
        } else {
            write_st(path, t, cases[c].nt, cases[c].dtype);
        }
        if (!strcmp(cases[c].name, "truncated")) {
            size_t len;
            char *b = read_file(path, &len, err, sizeof err);
            FILE *f = fopen(path, "wb");
            fwrite(b, 1, len - 100, f);
            fclose(f);
            free(b);
        }
        if (cases[c].targets) {
            char layers[64];
            snprintf(layers, sizeof layers, "%s", cases[c].layers);
            write_cfg(dir, cases[c].cfg_r, 8, cases[c].targets, 0, layers, cases[c].extra);
            if (!strcmp(cases[c].name, "missing_layer")) write_cfg(dir, cases[c].cfg_r, 8, cases[c].targets, 0, "[0, 1]", "");
        } else {
            snprintf(path, sizeof path, "%s/adapter_config.json", dir);
            write_text(path, "{\"peft_type\": \"LORA\", \"r\": 4,");
        }
        LoraAdapter *ad = lora_load(dir, &hp, err, sizeof err);
        snprintf(name, sizeof name, "lora_bad_%s", cases[c].name);
        t_check(!ad && !strchr(err, '\n') && strstr(err, cases[c].expect), name, "%s", ad ? "accepted" : err);
        lora_adapter_free(ad);
        free(nanA);
    }
    char err[512];
    LoraAdapter *ad = lora_load("/nonexistent/adapter", &hp, err, sizeof err);
    t_check(!ad && strstr(err, "no such"), "lora_bad_path", "%s", err);
    free(A), free(B);
}

/* ---- the regular expressions of target_modules ---- */

static void test_regex(void) {
    struct { const char *re, *s; int want; } c[] = {
        {".*\\.(qkv_proj|o_proj)", "model.layers.3.self_attn.qkv_proj", 1},
        {".*\\.(qkv_proj|o_proj)", "model.layers.3.self_attn.qkv_projx", 0},
        {"model\\.layers\\.[0-9]+\\.mlp\\..*", "model.layers.12.mlp.down_proj", 1},
        {"model\\.layers\\.[0-9]+\\.mlp\\..*", "model.layers..mlp.down_proj", 0},
        {"model.layers.\\d{1,2}.self_attn.(q|k|v)_proj", "model.layers.31.self_attn.k_proj", 1},
        {"model.layers.\\d{1,2}.self_attn.(q|k|v)_proj", "model.layers.131.self_attn.k_proj", 0},
        {"^(?:a|b)*c?$", "ababc", 1},
        {"[^.]+", "abc.d", 0},
        {"(a*)*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0}, /* exponential for backtracking */
        {"x{0}y", "y", 1},
        {"a+?b", "aab", 1},
        {"", "", 1},
        {"a|", "", 1},
    };
    int ok = 1;
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char err[200];
        Regex *re = regex_compile(c[i].re, strlen(c[i].re), err, sizeof err);
        int got = re ? regex_fullmatch(re, c[i].s, strlen(c[i].s)) : -1;
        if (got != c[i].want) {
            printf("  regex %s on %s: %d, want %d (%s)\n", c[i].re, c[i].s, got, c[i].want, re ? "" : err);
            ok = 0;
        }
        regex_free(re);
    }
    t_check(ok, "lora_regex_match", "%zu patterns", sizeof c / sizeof c[0]);
    const char *bad[] = {"(?=a)", "a**", "(a", "a)", "[a-", "\\1", "\\b", "*a", "a{2,1}", "(?i)a", "((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((a))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))", "(a{100}){100}"};
    ok = 1;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[200] = "";
        Regex *re = regex_compile(bad[i], strlen(bad[i]), err, sizeof err);
        if (re || !*err || strchr(err, '\n')) {
            printf("  regex %s: %s\n", bad[i], re ? "accepted" : err);
            ok = 0;
        }
        regex_free(re);
    }
    t_check(ok, "lora_regex_refused", "%zu unsupported or invalid patterns, one line each", sizeof bad / sizeof bad[0]);
}

int main(void) {
    kernels_init(NULL);
    test_regex();
    test_bad();
    test_unfused();
    const char *data = t_data_dir();
    if (data) test_trained(data);
    else t_skip("lora_trained", "no ../shared/data");
    lora_free_scratch();
    kernels_free_scratch();
    return t_failed_count ? 1 : 0;
}
