/* phi: runs a Phi-3 model from a phi file. Flags -> one generation run. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/bench.h"
#include "engine/cpu.h"
#include "engine/generate.h"
#include "engine/model.h"
#include "engine/perplexity.h"
#include "engine/sampler.h"
#include "kernels/fast.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: phi -m MODEL [options]\n"
            "\n"
            "  -m, --model FILE   phi model file (made by quant)\n"
            "  -p, --prompt TEXT  prompt text\n"
            "  -f, --file FILE    read the prompt from FILE\n"
            "  --ids LIST         prompt as comma-separated token ids (no BOS added); the generated\n"
            "                     ids are printed as one comma-separated line instead of text\n"
            "  -n N               tokens to generate (default 256; -1: until a stop token or the\n"
            "                     context is full)\n"
            "  -c N               context size in tokens (default: the model's, at most 4096)\n"
            "  -t N               threads (default: the number of physical cores)\n"
            "  --temp F           temperature (default 0.8; 0 = greedy)\n"
            "  --top-k N          sample from the N most likely tokens (default 40; 0 = all)\n"
            "  --top-p F          nucleus sampling threshold (default 0.95; 1 = off)\n"
            "  --seed N           random seed (default: from the clock)\n"
            "  --ignore-eos       do not stop at the model's stop tokens\n"
            "  --logits FILE      write the logits of every prompt position, float32 LE [n][vocab]\n"
            "  --ref              use the scalar reference kernels (the correctness oracle)\n"
            "  --bench            measure speed instead of generating text: prompt processing of\n"
            "                     --pp N tokens (default 128) and generation of --tg N tokens\n"
            "                     (default 32) after --depth N tokens of context (default 0),\n"
            "                     --reps N times (default 3); prints a table and the weight bytes/s\n"
            "                     against this machine's measured memory bandwidth\n"

            "\n"
            "Perplexity (instead of generating):\n"
            "  --perplexity FILE  perplexity of the model over the text in FILE, in windows of -c\n"
            "                     tokens (default 512, at most the model's). As llama.cpp's\n"
            "                     llama-perplexity: tokens = [BOS] + the text's ids, cut into chunks\n"
            "                     of c; each chunk's first token becomes BOS; positions c/2 .. c-2\n"
            "                     are scored, each predicting the next token\n"
            "  --ppl-all          score every token instead: windows of c text tokens, each run as\n"
            "                     [BOS] + the window, every token of the window predicted\n"
            "  --chunks N         only the first N chunks (windows)\n"
            "  --save-logits FILE save the scored positions' logits (run on the f32 model)\n"
            "  --kl-base FILE     compare with logits saved by --save-logits on the same text, -c and\n"
            "                     method: KL(base || this model) per position (mean, median, 99th\n"
            "                     percentile, max), top-1 agreement, mean and max |logit difference|\n"
            "  -h, --help         this text\n"
            "\n"
            "Text prompts get BOS when the model's tokenizer_config.json asks for it. A stats line\n"
            "goes to stderr: load time, prompt and generation tokens and tokens/s.\n"
            "Perplexity prints 'perplexity: P +/- E' (E: standard error from the per-token NLL\n"
            "variance), 'mean NLL: ...' and the KL lines to stdout; NLL = -ln softmax (in double).\n");
}

static int die(const char *fmt, const char *arg) {
    fprintf(stderr, "phi: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    return 1;
}

static int parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int parse_float(const char *s, float lo, float hi, float *out) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) return -1;
    *out = v;
    return 0;
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t k = fread(buf + n, 1, cap - n, f);
        n += k;
        if (n < cap) break;
        char *nb = realloc(buf, 2 * cap + 1);
        if (!nb) { free(buf); buf = NULL; break; }
        buf = nb;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad) { free(buf); return NULL; }
    buf[n] = 0;
    *len = n;
    return buf;
}

/* "1,2,3" -> ids; -1 on anything else. */
static int parse_ids(const char *s, int **ids, int *n) {
    int cap = 16, k = 0;
    int *v = malloc(cap * sizeof *v);
    const char *p = s;
    while (v) {
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno || x < 0 || x > INT_MAX) break;
        if (k == cap) {
            int *nv = realloc(v, 2 * cap * sizeof *v);
            if (!nv) break;
            v = nv;
            cap *= 2;
        }
        v[k++] = (int)x;
        if (*end == 0) { *ids = v; *n = k; return 0; }
        if (*end != ',') break;
        p = end + 1;
    }
    free(v);
    return -1;
}

/* --perplexity: tokenize the whole file (no BOS: the method adds it) and score it. */
static int run_perplexity(Model *m, const char *path, PplOptions *po, int threads, int use_ref,
                          double load_s) {
    char err[1024];
    size_t len = 0;
    char *text = read_file(path, &len);
    if (!text) {
        fprintf(stderr, "phi: cannot read %s: %s\n", path, strerror(errno));
        return 1;
    }
    int rc = 1, n = 0, *ids = NULL;
    State st = {0};
    long max_ctx = m->hp.max_seq_len;
    if (po->n_ctx == 0) po->n_ctx = max_ctx < 512 ? (int)max_ctx : 512;
    if (po->n_ctx > max_ctx) {
        fprintf(stderr, "phi: -c %d is more than the model's %ld positions\n", po->n_ctx, max_ctx);
        goto done;
    }
    if (len > 0) n = tok_encode(m->tok, text, len, 0, NULL, 0, err, sizeof err);
    if (n < 0) { fprintf(stderr, "phi: %s: %s\n", path, err); goto done; }
    if (n == 0) { fprintf(stderr, "phi: %s: the text is empty\n", path); goto done; }
    ids = malloc((size_t)n * sizeof *ids);
    if (!ids) { die("%s", "out of memory"); goto done; }
    tok_encode(m->tok, text, len, 0, ids, n, err, sizeof err);
    if (state_init(&st, m, po->n_ctx, use_ref ? 1 : threads, err, sizeof err)) { die("%s", err); goto done; }
    st.use_ref = use_ref;
    PplResult r;
    if (perplexity_run(m, &st, ids, n, po, &r, err, sizeof err)) { die("%s", err); goto done; }
    uint64_t n_weights = 0;
    for (uint32_t i = 0; i < m->file.n_tensors; i++)
        n_weights += m->file.tensors[i].ne[0] * (m->file.tensors[i].ndim == 2 ? m->file.tensors[i].ne[1] : 1);
    printf("model: %llu weights, %llu bytes, %.3f bits per weight (whole file)\n",
           (unsigned long long)n_weights, (unsigned long long)m->map_size,
           n_weights ? 8.0 * (double)m->map_size / (double)n_weights : 0.0);
    perplexity_print(stdout, po, &r);
    fprintf(stderr, "phi: %s x%d | load %.0f ms | perplexity %ld tok in %.2f s, %.2f tok/s\n",
            use_ref ? "reference" : kernels_isa_name(), st.n_threads, load_s * 1e3, r.n_evaluated,
            r.seconds, r.seconds > 0 ? r.n_evaluated / r.seconds : 0);
    rc = 0;
done:
    state_free(&st);
    free(ids);
    free(text);
    return rc;
}

int main(int argc, char **argv) {
    const char *model_path = NULL, *prompt = NULL, *prompt_file = NULL, *ids_arg = NULL;
    const char *logits_path = NULL;
    const char *ppl_path = NULL, *save_logits = NULL, *kl_base = NULL;
    long ppl_all = 0, ppl_chunks = 0;
    long n_predict = 256, n_ctx = 0, threads = 0, top_k = 40, use_ref = 0, ignore_eos = 0;
    long bench = 0, bench_pp = 128, bench_tg = 32, bench_depth = 0, bench_reps = 3;
    unsigned long long seed = (unsigned long long)time(NULL);
    float temp = 0.8f, top_p = 0.95f;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
#define IS(x) (strcmp(a, x) == 0)
        if (IS("-h") || IS("--help")) { usage(stdout); return 0; }
        else if (IS("--ref")) { use_ref = 1; continue; }
        else if (IS("--ignore-eos")) { ignore_eos = 1; continue; }
        else if (IS("--bench")) { bench = 1; continue; }
        else if (IS("--ppl-all")) { ppl_all = 1; continue; }
        else if (!v) return die("option '%s' is unknown or needs a value (see --help)", a);
        else if (IS("-m") || IS("--model")) model_path = v;
        else if (IS("-p") || IS("--prompt")) prompt = v;
        else if (IS("-f") || IS("--file")) prompt_file = v;
        else if (IS("--ids")) ids_arg = v;
        else if (IS("--logits")) logits_path = v;
        else if (IS("--perplexity")) ppl_path = v;
        else if (IS("--save-logits")) save_logits = v;
        else if (IS("--kl-base")) kl_base = v;
        else if (IS("--chunks")) bad = parse_long(v, 1, INT_MAX, &ppl_chunks);
        else if (IS("-n")) bad = parse_long(v, -1, INT_MAX, &n_predict);
        else if (IS("-c")) bad = parse_long(v, 1, 1 << 24, &n_ctx);
        else if (IS("-t")) bad = parse_long(v, 1, 1024, &threads);
        else if (IS("--top-k")) bad = parse_long(v, 0, INT_MAX, &top_k);
        else if (IS("--pp")) bad = parse_long(v, 0, 1 << 20, &bench_pp);
        else if (IS("--tg")) bad = parse_long(v, 0, 1 << 20, &bench_tg);
        else if (IS("--depth")) bad = parse_long(v, 0, 1 << 24, &bench_depth);
        else if (IS("--reps")) bad = parse_long(v, 1, 1000, &bench_reps);
        else if (IS("--temp")) bad = parse_float(v, 0, 100, &temp);
        else if (IS("--top-p")) bad = parse_float(v, 0, 1, &top_p);
        else if (IS("--seed")) {
            char *end;
            errno = 0;
            seed = strtoull(v, &end, 10);
            bad = errno || end == v || *end;
        } else return die("unknown option '%s' (see --help)", a);
#undef IS
        if (bad) {
            fprintf(stderr, "phi: invalid value '%s' for %s\n", v, a);
            return 1;
        }
        i++;
    }
    if (!model_path) return die("%s", "no model given (-m FILE; see --help)");
    if (threads == 0) threads = cpu_physical_cores();
    if (bench) {
        char berr[512];
        Model bm;
        if (!use_ref && kernels_init(NULL)) return 1;
        if (model_load(model_path, &bm, berr, sizeof berr)) return die("%s", berr);
        BenchOptions bo = {(int)bench_pp, (int)bench_tg, (int)bench_depth, (int)bench_reps,
                           (int)threads, (int)use_ref};
        int brc = bench_run(model_path, &bm, &bo, stdout, berr, sizeof berr);
        model_free(&bm);
        return brc ? die("%s", berr) : 0;
    }
    if (!!prompt + !!prompt_file + !!ids_arg + !!ppl_path > 1)
        return die("%s", "give only one of -p, -f, --ids and --perplexity");
    if (!prompt && !prompt_file && !ids_arg && !ppl_path)
        return die("%s", "no prompt given (-p, -f or --ids)");
    if (!ppl_path && (ppl_all || ppl_chunks || save_logits || kl_base))
        return die("%s", "--ppl-all, --chunks, --save-logits and --kl-base go with --perplexity FILE");

    if (!use_ref && kernels_init(NULL)) return 1; /* $PHI_ISA names kernels this CPU lacks */
    char err[1024];
    double t0 = now_seconds();
    Model m;
    if (model_load(model_path, &m, err, sizeof err)) return die("%s", err);
    double load_s = now_seconds() - t0;
    if (ppl_path) {
        PplOptions po = {ppl_all ? PPL_ALL : PPL_LLAMA, (int)n_ctx, (int)ppl_chunks, save_logits,
                         kl_base, isatty(2)};
        int prc = run_perplexity(&m, ppl_path, &po, (int)threads, (int)use_ref, load_s);
        model_free(&m);
        return prc;
    }

    int *ids = NULL, n_ids = 0, rc = 1;
    char *text = NULL;
    size_t text_len = 0;
    State st = {0};
    Sampler smp = {0};
    if (ids_arg) {
        if (parse_ids(ids_arg, &ids, &n_ids)) {
            die("--ids wants comma-separated non-negative integers, got '%s'", ids_arg);
            goto done;
        }
    } else {
        if (prompt_file) {
            text = read_file(prompt_file, &text_len);
            if (!text) {
                fprintf(stderr, "phi: cannot read %s: %s\n", prompt_file, strerror(errno));
                goto done;
            }
        } else {
            text_len = strlen(prompt);
        }
        const char *src = text ? text : prompt;
        if (text_len == 0) { die("%s", "the prompt is empty"); goto done; }
        int need = tok_encode(m.tok, src, text_len, tok_add_bos(m.tok), NULL, 0, err, sizeof err);
        if (need < 0) { die("prompt: %s", err); goto done; }
        ids = malloc((size_t)(need > 0 ? need : 1) * sizeof *ids);
        if (!ids) { die("%s", "out of memory"); goto done; }
        n_ids = tok_encode(m.tok, src, text_len, tok_add_bos(m.tok), ids, need, err, sizeof err);
    }
    if (n_ids == 0) { die("%s", "the prompt is empty"); goto done; }
    for (int i = 0; i < n_ids; i++)
        if (ids[i] >= (int)m.hp.vocab_size) {
            fprintf(stderr, "phi: token id %d is outside the vocabulary (0..%u)\n", ids[i],
                    m.hp.vocab_size - 1);
            goto done;
        }

    long max_ctx = m.hp.max_seq_len;
    if (n_ctx > max_ctx) {
        fprintf(stderr, "phi: -c %ld is more than the model's %ld positions\n", n_ctx, max_ctx);
        goto done;
    }
    if (n_ctx == 0) n_ctx = max_ctx < 4096 ? max_ctx : 4096;
    if (n_ids > n_ctx) {
        fprintf(stderr, "phi: the prompt has %d tokens but the context holds %ld (raise -c)\n",
                n_ids, n_ctx);
        goto done;
    }
    /* The KV cache only needs room for the positions this run can reach. */
    long need_ctx = n_predict < 0 ? n_ctx : n_ids + n_predict;
    if (need_ctx > n_ctx) need_ctx = n_ctx;
    if (state_init(&st, &m, (int)need_ctx, use_ref ? 1 : (int)threads, err, sizeof err)) {
        die("%s", err);
        goto done;
    }
    st.use_ref = (int)use_ref;
    /* Ids the vocabulary does not name (padding rows of the embedding) are never sampled. */
    int n_valid = tok_vocab_size(m.tok);
    if (n_valid < 1 || n_valid > (int)m.hp.vocab_size) n_valid = (int)m.hp.vocab_size;
    if (sampler_init(&smp, n_valid, temp, (int)top_k, top_p, seed)) { die("%s", "out of memory"); goto done; }

    GenOptions go = {(int)n_predict, (int)ignore_eos, ids_arg != NULL, stdout, logits_path};
    GenStats gs;
    if (generate(&m, &st, &smp, ids, n_ids, &go, &gs, err, sizeof err)) { die("%s", err); goto done; }
    fprintf(stderr, "phi: %s x%d | load %.0f ms | prompt %d tok, %.2f tok/s | gen %d tok, %.2f tok/s%s\n",
            use_ref ? "reference" : kernels_isa_name(), st.n_threads, load_s * 1e3, gs.n_prompt, gs.prompt_s > 0 ? gs.n_prompt / gs.prompt_s : 0, gs.n_gen,
            gs.gen_s > 0 ? gs.n_gen / gs.gen_s : 0,
            gs.stopped_by == 2 ? " | stopped: context full" : "");
    rc = 0;
done:
    sampler_free(&smp);
    state_free(&st);
    free(ids);
    free(text);
    model_free(&m);
    return rc;
}
