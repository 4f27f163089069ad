/* The modes of the phi program, from parsed options: each loads the model, does one job and
 * returns the process exit status, having printed at most one error line. */
#ifndef PHI_RUN_H
#define PHI_RUN_H

#include <stdint.h>

typedef struct {
    const char *model_path;
    /* the prompt: text (-p), a file (-f), ids (--ids), or standard input */
    const char *prompt, *prompt_file, *ids;
    const char *system;      /* --system (chat) */
    const char *logits_path; /* --logits */
    int n_predict, n_ctx, n_threads, use_ref, ignore_eos;
    int kv_f32;  /* F32 KV cache instead of F16 (phi.c turns it into both cache types) */
    int cache_type_k, cache_type_v; /* KV_F16 (0, default), KV_F32, KV_Q8_0 (model/model.h) */
    int no_mmap; /* 1: read the weights into huge-page memory; 0: map the file; -1: decide */
    int chat, interactive, add_bos;
    float temp, top_p, min_p;
    int top_k;
    /* llama.cpp's penalties over the last repeat_last_n tokens (-1: the context; 0: off) */
    float repeat_penalty, presence_penalty, frequency_penalty;
    int repeat_last_n;
    uint64_t seed;
    int seed_from_clock; /* say the seed on stderr (with the stats line) so the run can be repeated */
    int verbose_prompt; /* print the prompt's tokens on stderr before generating */
    int special; /* --special: print special tokens (<|end|>, ...) as text in output and --detokenize */
    int perf;    /* --perf: a stats line per chat reply (1); --no-perf: none after one-shot generation (-1) */
    const char *prompt_cache; /* --prompt-cache FILE: the KV state of the prompt, saved and reused */
    int prompt_cache_ro;      /* --prompt-cache-ro: use FILE but never write it */
    int draft_max;            /* --lookup / --draft-max N: prompt-lookup drafts per pass (0: off) */
    /* perplexity */
    const char *ppl_path, *save_logits, *kl_base;
    int ppl_all, ppl_chunks;
    /* bench */
    int bench_pp, bench_tg, bench_depth, bench_reps;
    int bench_n_np, bench_np[8]; /* --parallel 1,2,4,8 */
    /* LoRA adapters (--lora DIR, --lora-scaled DIR S), attached in this order; they add up */
#define RUN_MAX_LORA 16
    const char *lora_path[RUN_MAX_LORA];
    float lora_scale[RUN_MAX_LORA];
    int n_lora;
} RunOptions;

int run_generate(const RunOptions *o);   /* prompt -> streamed continuation (or ids) */
int run_chat(const RunOptions *o);       /* --chat / -i */
int run_tokenize(const RunOptions *o);   /* --tokenize: text -> ids */
int run_detokenize(const RunOptions *o); /* --detokenize: ids -> text */
int run_perplexity(const RunOptions *o); /* --perplexity FILE */
int run_bench(const RunOptions *o);      /* --bench */

#endif
