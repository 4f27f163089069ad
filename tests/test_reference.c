/* End to end against independent references: convert the Hugging Face checkpoints of
 * ../shared/data with every weight type, run them, and compare every prompt position's logits and
 * the greedy continuation with llama.cpp's (phi3-tiny-ref) and PyTorch's (phi3-trained-tiny). */
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "convert/convert.h"
#include "base/json.h"
#include "model/model.h"
#include "model/sampler.h"
#include "tests/harness.h"

/* Bounds per weight type, set from measurement (ref and fast paths, all five variants, on
 * 2026-11-22): max relative error (max |d| / max |ref| over a position), the share of positions
 * whose top-1 id agrees, and the greedy ids that must match. Measured: f32 <= 1.4e-6 rel with
 * every greedy id equal; f16 <= 1.1e-6 (these BF16 weights are exact in f16); q8 <= 6.9e-2 rel,
 * top-1 >= 0.875; q4 <= 0.60 rel, top-1 >= 0.167 (embedding and LM head at q8). Random weights in
 * 64-wide layers are the worst case for quantization (no averaging); the trained model below is
 * the realistic one. Their q4 top-1 moves by a few of the 24 positions with any change of the
 * scale search (tiny_mha: 0.250 with the 42-candidate search of 2026-11, 0.167 with the 16 and
 * with 30 candidates of 2026-12, whose squared errors are within 0.03 % of it), so its bound
 * only catches a broken path (that gives ~0). */
typedef struct {
    double max_rel;
    double min_top1;
    int min_greedy;
} Bound;
static const Bound tiny_bounds[TENSOR_TYPE_COUNT] = {
    [TENSOR_F32] = {1e-5, 1.0, 32},
    [TENSOR_F16] = {1e-4, 1.0, 32},
    [TENSOR_Q8] = {1e-1, 0.8, 0},
    [TENSOR_Q4] = {0.9, 0.125, 0},
    /* K-quants: the matrices whose rows are not whole 256-blocks fall back to q8; measured
     * q4_k <= 0.15 rel, top-1 >= 0.875 */
    [TENSOR_Q4_K] = {0.3, 0.6, 0},
    [TENSOR_Q5_K] = {0.2, 0.7, 0},
    [TENSOR_Q6_K] = {0.2, 0.7, 0},
};

static float *read_f32(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    float *v = malloc((size_t)bytes);
    *n = fread(v, 1, (size_t)bytes, f) / sizeof(float);
    fclose(f);
    return v;
}

static int *json_ids(const JsonValue *arr, int *n) {
    *n = (int)json_count(arr);
    int *ids = malloc((size_t)(*n ? *n : 1) * sizeof *ids);
    for (int i = 0; i < *n; i++) {
        long long v = -1;
        json_int(json_at(arr, (size_t)i), &v);
        ids[i] = (int)v;
    }
    return ids;
}

/* Compare logits [n][vocab]; returns max relative error, and the top-1 agreement in *top1. */
static double compare_logits(const float *got, const float *ref, int n, int vocab, double *top1,
                             double *max_abs) {
    double worst = 0;
    int agree = 0;
    *max_abs = 0;
    for (int p = 0; p < n; p++) {
        const float *g = got + (size_t)p * vocab, *r = ref + (size_t)p * vocab;
        double md = 0, mr = 0;
        for (int i = 0; i < vocab; i++) {
            md = fmax(md, fabs((double)g[i] - r[i]));
            mr = fmax(mr, fabs((double)r[i]));
        }
        worst = fmax(worst, md / mr);
        *max_abs = fmax(*max_abs, md);
        agree += sampler_argmax(g, vocab) == sampler_argmax(r, vocab);
    }
    *top1 = (double)agree / n;
    return worst;
}

/* Greedy continuation of n_gen ids after the prompt already in the state. Also records the
 * top-1/top-2 margin at every step. */
static void greedy(const Model *m, State *s, int pos, int n_gen, int *out, float *margins) {
    int n_valid = tok_vocab_size(m->tok);
    for (int i = 0; i < n_gen; i++) {
        int best = sampler_argmax(s->logits, n_valid);
        float second = -INFINITY;
        for (int k = 0; k < n_valid; k++)
            if (k != best && s->logits[k] > second) second = s->logits[k];
        if (margins) margins[i] = s->logits[best] - second;
        out[i] = best;
        if (i + 1 < n_gen) model_forward(m, s, &best, 1, pos++, NULL);
    }
}

static int convert(const char *dir, const char *out, int type) {
    ConvertOptions opt = {.type = type};
    char err[1024];
    if (convert_hf(dir, out, &opt, err, sizeof err)) {
        t_check(0, "convert", "%s: %s", dir, err);
        return -1;
    }
    return 0;
}

static void check_tiny_ref(const char *data, const char *variant, const char *ref, int type,
                           const char *model_path, int use_ref, int kv_f32) {
    char path[1024], name[128], err[1024];
    snprintf(name, sizeof name, "tiny_%s_%s_%s_%s", variant, ref, type_traits((uint32_t)type)->name,
             use_ref ? "ref" : kv_f32 ? "fast_kvf32" : "fast_kvf16");
    snprintf(path, sizeof path, "%s/phi3-tiny-ref/%s/%s/meta.json", data, variant, ref);
    Json *meta = json_parse_file(path, err, sizeof err);
    snprintf(path, sizeof path, "%s/phi3-tiny-ref/%s/%s/ids.json", data, variant, ref);
    Json *jids = json_parse_file(path, err, sizeof err);
    snprintf(path, sizeof path, "%s/phi3-tiny-ref/%s/%s/greedy.json", data, variant, ref);
    Json *jgreedy = json_parse_file(path, err, sizeof err);
    snprintf(path, sizeof path, "%s/phi3-tiny-ref/%s/%s/logits.f32", data, variant, ref);
    size_t n_ref = 0;
    float *ref_logits = read_f32(path, &n_ref);
    Model m;
    if (!meta || !jids || !jgreedy || !ref_logits) {
        t_check(0, name, "cannot read the reference files");
        goto out;
    }
    if (model_load(model_path, &m, err, sizeof err)) {
        t_check(0, name, "%s", err);
        goto out;
    }
    long long n_ctx = 0;
    json_int(json_get(json_root(meta), "n_ctx"), &n_ctx);
    int n_ids, n_greedy;
    int *ids = json_ids(json_root(jids), &n_ids), *want = json_ids(json_root(jgreedy), &n_greedy);
    int vocab = (int)m.hp.vocab_size;
    float *logits = malloc((size_t)n_ids * vocab * sizeof(float));
    State s;
    if (state_init_ex(&s, &m, (int)n_ctx, use_ref ? 1 : 2, kv_f32 ? STATE_KV_F32 : 0, err, sizeof err) == 0 &&
        (s.use_ref = use_ref, 1) && n_ref == (size_t)n_ids * vocab && model_forward(&m, &s, ids, n_ids, 0, logits) == 0) {
        double top1, max_abs;
        double rel = compare_logits(logits, ref_logits, n_ids, vocab, &top1, &max_abs);
        int got[64], match = 0;
        greedy(&m, &s, n_ids, n_greedy, got, NULL);
        while (match < n_greedy && got[match] == want[match]) match++;
        Bound b = tiny_bounds[type];
        /* An F16 KV cache rounds every key and value: measured <= 9.0e-4 rel on these models
         * (llama.cpp's own F16 path moves them by 1.0e-3 to 1.4e-3), greedy ids unchanged. */
        if (!kv_f32 && b.max_rel < 2e-3) b.max_rel = 2e-3;
        t_check(rel <= b.max_rel && top1 >= b.min_top1 && match >= b.min_greedy, name,
                "max rel %.2e (bound %.0e), max abs %.2e, top-1 %.3f, greedy %d/%d match", rel,
                b.max_rel, max_abs, top1, match, n_greedy);
    } else {
        t_check(0, name, "forward failed (%zu reference logits for %d ids)", n_ref, n_ids);
    }
    state_free(&s);
    free(logits);
    free(ids);
    free(want);
    model_free(&m);
out:
    free(ref_logits);
    json_free(meta);
    json_free(jids);
    json_free(jgreedy);
}

static void test_tiny_refs(const char *data) {
    static const struct { const char *variant, *refs[2]; } cases[] = {
        {"mha", {"reference", NULL}},
        {"gqa-sharded", {"reference", NULL}},
        {"swa", {"reference", NULL}},
        {"longrope", {"reference", "reference-long"}},
        {"phi4ish", {"reference", NULL}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (int type = 0; type < TENSOR_TYPE_COUNT; type++) {
            if (type_traits((uint32_t)type)->kpanel) continue; /* -q q4_k / q5_k / q6_k write them */
            char dir[1024], out[1024];
            snprintf(dir, sizeof dir, "%s/phi3-tiny-ref/%s", data, cases[c].variant);
            snprintf(out, sizeof out, "%s/tiny-%s-%s.phi", t_tmp_dir(), cases[c].variant,
                     type_traits((uint32_t)type)->name);
            if (convert(dir, out, type)) continue;
            for (int r = 0; r < 2 && cases[c].refs[r]; r++)
                for (int path = 0; path < 3; path++) /* ref (F32 KV), fast F32 KV, fast F16 KV */
                    check_tiny_ref(data, cases[c].variant, cases[c].refs[r], type, out, path == 0, path < 2);
            remove(out);
        }
    }
}

/* The trained model: PyTorch's last-position logits of 3 prompts, all positions of prompt 0, and
 * 48-id greedy continuations (no stop at EOS). */
static void test_trained(const char *data) {
    char dir[900], path[1024], err[1024];
    snprintf(dir, sizeof dir, "%s/phi3-trained-tiny", data);
    snprintf(path, sizeof path, "%s/reference/prompts.json", dir);
    Json *pj = json_parse_file(path, err, sizeof err);
    snprintf(path, sizeof path, "%s/reference/logits.f32", dir);
    size_t n_all = 0;
    float *all_ref = read_f32(path, &n_all);
    if (!pj || !all_ref) {
        t_check(0, "trained_reference_files", "%s", err);
        json_free(pj);
        free(all_ref);
        return;
    }
    const JsonValue *prompts = json_get(json_root(pj), "prompts");
    int f32_greedy[3][48];
    float f32_margin[3][48];
    for (int type = 0; type < TENSOR_TYPE_COUNT; type++) {
        if (type_traits((uint32_t)type)->kpanel) continue; /* -q q4_k / q5_k / q6_k write them */
        const char *tn = type_traits((uint32_t)type)->name;
        char out[1024], name[128];
        snprintf(out, sizeof out, "%s/trained-%s.phi", t_tmp_dir(), tn);
        if (convert(dir, out, type)) continue;
        Model m;
        if (model_load(out, &m, err, sizeof err)) {
            t_check(0, "trained_load", "%s", err);
            continue;
        }
        for (int use_ref = 1; use_ref >= 0; use_ref--) {
            int vocab = (int)m.hp.vocab_size;
            double worst_rel = 0, worst_abs = 0, top1_sum = 0;
            int first_div[3] = {0, 0, 0}, n_prompts = (int)json_count(prompts);
            float div_margin[3];
            for (int p = 0; p < n_prompts && p < 3; p++) {
                const JsonValue *pr = json_at(prompts, (size_t)p);
                int n_ids, n_want, n_last;
                int *ids = json_ids(json_get(pr, "ids"), &n_ids), *want = json_ids(json_get(pr, "greedy_ids"), &n_want);
                const JsonValue *jl = json_get(pr, "last_logits");
                n_last = (int)json_count(jl);
                float *last = malloc((size_t)vocab * sizeof(float));
                for (int i = 0; i < vocab && i < n_last; i++) last[i] = (float)json_num(json_at(jl, (size_t)i), 0);
                float *logits = malloc((size_t)n_ids * vocab * sizeof(float));
                State s;
                /* the reference path with an F32 KV cache; the fast path as phi runs it (F16) */
                state_init_ex(&s, &m, n_ids + 48, use_ref ? 1 : 2, use_ref ? STATE_KV_F32 : 0, err, sizeof err);
                s.use_ref = use_ref;
                model_forward(&m, &s, ids, n_ids, 0, logits);
                double top1, max_abs, rel;
                if (p == 0 && n_all == (size_t)n_ids * vocab)
                    rel = compare_logits(logits, all_ref, n_ids, vocab, &top1, &max_abs);
                else
                    rel = compare_logits(logits + (size_t)(n_ids - 1) * vocab, last, 1, vocab, &top1, &max_abs);
                worst_rel = fmax(worst_rel, rel);
                worst_abs = fmax(worst_abs, max_abs);
                top1_sum += top1;
                int got[48];
                float margins[48];
                greedy(&m, &s, n_ids, 48, got, margins);
                int k = 0;
                while (k < 48 && k < n_want && got[k] == want[k]) k++;
                first_div[p] = k;
                if (type == TENSOR_F32 && use_ref) {
                    memcpy(f32_greedy[p], got, sizeof got);
                    memcpy(f32_margin[p], margins, sizeof margins);
                }
                div_margin[p] = k < 48 ? f32_margin[p][k] : 0;
                state_free(&s);
                free(ids);
                free(want);
                free(last);
                free(logits);
            }
            snprintf(name, sizeof name, "trained_%s_%s", tn, use_ref ? "ref" : "fast_kvf16");
            /* the F16 KV cache adds up to 1.6e-4 rel here (measured) */
            double kv = use_ref ? 0 : 5e-4;
            if (type == TENSOR_F32) {
                t_check(worst_rel < 1e-5 + kv && first_div[0] == 48 && first_div[1] == 48 && first_div[2] == 48,
                        name, "max rel %.2e, max abs %.2e; greedy 48/48 identical for all 3 prompts: %d %d %d",
                        worst_rel, worst_abs, first_div[0], first_div[1], first_div[2]);
            } else {
                /* measured 1.4e-6, 1.75e-2, 5.4e-2 (q4 keeps its LM head at q8); q4 with searched
                 * block scales (2026-11-23): 5.8e-2 max rel here, but KL vs f32 7 % lower */
                double bound = (type == TENSOR_F16 ? 1e-4 : type == TENSOR_Q8 ? 3e-2 : type == TENSOR_Q4_K ? 1e-1 : 8e-2) + kv;
                t_check(worst_rel < bound, name,
                        "max rel %.2e (bound %.0e), max abs %.2e, top-1 %.2f; greedy first diverges at "
                        "%d, %d, %d of 48 (reference top-1/top-2 margin there: %.3f, %.3f, %.3f)",
                        worst_rel, bound, worst_abs, top1_sum / 3, first_div[0], first_div[1], first_div[2],
                        div_margin[0], div_margin[1], div_margin[2]);
            }
        }
        struct stat st;
        stat(out, &st);
        printf("  trained-tiny %s file: %lld bytes\n", tn, (long long)st.st_size);
        model_free(&m);
        remove(out);
    }
    json_free(pj);
    free(all_ref);
}

int main(void) {
    const char *data = t_data_dir();
    if (!data) {
        t_skip("tiny_references", "../shared/data is absent");
        t_skip("trained_tiny_reference", "../shared/data is absent");
        return 0;
    }
    test_tiny_refs(data);
    test_trained(data);
    return t_done();
}
