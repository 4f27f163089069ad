/* phi: runs a Phi-3 model from a phi file. Flags -> options -> one mode (app/run.c). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/cpu.h"
#include "app/run.h"
#include "model/model.h"
#include "kernels/kernels.h"
#include "model/lookup.h"

/* The bundled demo model (models/README.md: the trained tiny Phi-3 at q4), -m's default. */
#define DEMO_MODEL "phi3-trained-tiny-q4.phi"

static void usage(FILE *f) {
    fprintf(f,
            "usage: phi [-m MODEL] [options]\n"
            "\n"
            "Flags follow llama.cpp's spelling and meaning where llama.cpp has them.\n"
            "\n"
            "  -m, --model FILE   phi model file (made by quant), or a GGUF file of a Phi-3 model\n"
            "                     (llama.cpp's phi3 architecture), converted in memory at load\n"
            "                     (default: the bundled demo model " DEMO_MODEL " in models/ beside\n"
            "                     phi, or in ../share/phi/ beside an installed phi; stderr names it)\n"
            "  -p, --prompt TEXT  prompt text\n"
            "  -f, --file FILE    read the prompt from FILE\n"
            "  --ids LIST         prompt as comma-separated token ids (no BOS added); the generated\n"
            "                     ids are printed as one comma-separated line instead of text\n"
            "  -n, --n-predict N  tokens to generate (default 256; -1: until a stop token or the\n"
            "                     context is full); per reply in chat mode\n"
            "  -c, --ctx-size N   context size in tokens (default: the model's, at most 4096)\n"
            "  -t, --threads N    threads (default: the number of physical cores)\n"
            "  --temp F           temperature (default 0.8; 0 = greedy)\n"
            "  --top-k N          sample from the N most likely tokens (default 40; 0 = all)\n"
            "  --top-p F          nucleus sampling threshold (default 0.95; 1 = off)\n"
            "  --min-p F          drop tokens less likely than F times the most likely one\n"
            "                     (default 0.05; 0 = off)\n"
            "  --repeat-penalty F divide positive logits (multiply negative ones) of tokens seen in\n"
            "                     the last --repeat-last-n tokens by F (default 1.0 = off)\n"
            "  --repeat-last-n N  tokens the penalties look back over, prompt included (default 64;\n"
            "                     0 = off, -1 = the context size)\n"
            "  --presence-penalty F   subtract F from the logits of tokens seen (default 0.0 = off)\n"
            "  --frequency-penalty F  subtract F x (times seen) (default 0.0 = off)\n"
            "                     Order, as llama.cpp's default chain: penalties, top-k, top-p,\n"
            "                     min-p, temperature (top-k/p and min-p see temperature-1 odds)\n"
            "  -s, --seed N       random seed (default: from the clock, printed on stderr)\n"
            "  --verbose-prompt   print the prompt's tokens (id and piece) on stderr first\n"
            "  -sp, --special     print special tokens (<|end|>, <s>, ...) as text in the output and\n"
            "                     in --detokenize (llama.cpp's flag; default: they print nothing)\n"
            "  --perf             a stats line per chat reply on stderr: prompt tokens evaluated and\n"
            "                     tok/s, generated tokens and tok/s (llama.cpp's flag)\n"
            "  --no-perf          no stats line after a one-shot generation (llama.cpp's flag)\n"
            "  --prompt-cache FILE  save the KV cache of the prompt to FILE; a later run whose prompt\n"
            "                     starts with the saved tokens (same model file, KV type, -c) loads it\n"
            "                     and evaluates only the rest (llama.cpp's flag; in chat: the first prompt,\n"
            "                     system prompt included)\n"
            "  --prompt-cache-ro  use the --prompt-cache FILE but never write it (llama.cpp's flag)\n"
            "  --lookup           prompt-lookup speculative decoding: tokens that followed an earlier\n"
            "                     occurrence of the last 1-4 tokens (in the prompt or the reply) are\n"
            "                     checked in one pass with the next token, several tokens per read of\n"
            "                     the weights when the reply repeats its input (summaries, rewrites,\n"
            "                     code edits); the output is the same as without. Greedy only (--temp\n"
            "                     0); llama.cpp has this as the separate program llama-lookup\n"
            "  --draft-max N, --draft N  drafts per pass with --lookup, 1..7 (default 5; implies\n"
            "                     --lookup; llama.cpp's flag). The length adapts: it follows what was\n"
            "                     accepted and pauses after misses, so a reply with nothing to look up\n"
            "                     costs at most a few percent\n"
            "  --ignore-eos       do not stop at the model's stop tokens\n"
            "  --bos, --no-bos    add BOS to a text prompt or not (default: the model's\n"
            "                     add_bos_token; --tokenize adds none unless --bos)\n"
            "  --logits FILE      write the logits of every prompt position, float32 LE [n][vocab]\n"
            "  --ref              use the scalar reference kernels and an F32 KV cache (the\n"
            "                     correctness oracle)\n"
            "  --kv-f32           keep keys and values in F32 (default F16: half the memory)\n"
            "  -ctk, --cache-type-k T  KV cache type of the keys: f16 (default), f32 or q8_0 (blocks\n"
            "                     of 32 int8 with an f16 scale: 8.5 bits, about half of f16's memory\n"
            "                     and reads at a long context; llama.cpp's flag and names)\n"
            "  -ctv, --cache-type-v T  the same for the values (unlike llama.cpp, a q8_0 value cache\n"
            "                     needs no flash attention: phi dequantizes it as it sums)\n"
            "  --lora DIR         apply a LoRA adapter (a PEFT folder: adapter_config.json and\n"
            "                     adapter_model.safetensors; or a llama.cpp GGUF adapter file) at run\n"
            "                     time, unmerged; repeatable, the adapters add up (llama.cpp's flag)\n"
            "  --lora-scaled DIR S  the same with user scale S (llama.cpp's flag): each adapted\n"
            "                     matrix computes W x + S (alpha / r) B A x. In -i chat, /lora DIR [S]\n"
            "                     attaches another adapter and /lora off detaches them all\n"
            "  --no-mmap, --mmap  read the weights into (huge-page) memory, or map the file in\n"
            "                     place; default: read when the model fits in available memory\n"
            "                     (streams the weights faster), map otherwise\n"
            "\n"
            "Chat:\n"
            "  --chat, -cnv       wrap the prompt in the model's chat template and answer it\n"
            "  --system TEXT      system message (chat)\n"
            "  -i, --interactive  chat in turns: read user messages from standard input, one per\n"
            "                     line, until end of input; the KV cache is kept between turns. On a\n"
            "                     terminal a line editor: left/right, home/end (Ctrl-A/E), backspace,\n"
            "                     delete, up/down history; Ctrl-D on an empty line ends the chat\n"
            "\n"
            "Tokenizer:\n"
            "  --tokenize         print the ids of the prompt (-p, -f or standard input) as one\n"
            "                     comma-separated line\n"
            "  --detokenize       read comma-separated ids (-p, -f or standard input), print text\n"
            "\n"
            "Speed:\n"
            "  --bench            measure speed instead of generating text: prompt processing of\n"
            "                     --pp N tokens (default 128) and generation of --tg N tokens\n"
            "                     (default 32) after --depth N tokens of context (default 0),\n"
            "                     --reps N times (default 3); prints a table and the weight bytes/s\n"
            "                     against this machine's measured memory bandwidth\n"
            "  --parallel, -np N  with --bench: also decode with N streams at once (one batched\n"
            "                     forward pass per step, as llama.cpp's -np slots), e.g. 1,2,4,8\n"
            "                     (up to 8 values of at most 64); prints aggregate tok/s\n"
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
            "  -v, --verbose      more notes on stderr (a GGUF's defaults for missing keys)\n"
            "  --version          version, build flags and the kernels this CPU gets\n"
            "  -h, --help         this text\n"
            "\n"
            "Text prompts get BOS when the model's tokenizer_config.json asks for it. A stats line\n"
            "goes to stderr: load time, prompt and generation tokens and tokens/s. Generation\n"
            "stops at the model's stop tokens (generation_config.json), which are never printed.\n"
            "Perplexity prints 'perplexity: P +/- E' (E: standard error from the per-token NLL\n"
            "variance), 'mean NLL: ...' and the KL lines to stdout; NLL = -ln softmax (in double).\n");
}

/* Notes of the model loader (a GGUF file converted in memory), on stderr. */
static void print_note(void *ctx, const char *line) {
    (void)ctx;
    fprintf(stderr, "phi: %s\n", line);
}

#ifndef PHI_GIT_VERSION
#define PHI_GIT_VERSION "unknown" /* the Makefile passes `git describe`; a tarball has no git */
#endif
#ifndef PHI_CFLAGS
#define PHI_CFLAGS "unknown"
#endif

static void version(void) {
    printf("phi %s\n", PHI_GIT_VERSION);
    printf("built with %s %s, flags: %s\n",
#if defined(__clang__)
           "clang",
#elif defined(__GNUC__)
           "gcc",
#else
           "cc",
#endif
           __VERSION__, PHI_CFLAGS);
    printf("kernels on this CPU: %s (PHI_ISA overrides)\n", kernels_init(NULL) ? "none (PHI_ISA names kernels the CPU lacks)" : kernels_isa_name());
}

static int die(const char *fmt, const char *arg) {
    fprintf(stderr, "phi: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    return 1;
}

/* -m's default, looked for in exactly two places, both relative to this executable (found through
 * /proc/self/exe, else argv[0] when it names a path): models/ beside it (the source tree's ./phi)
 * and ../share/phi/ (make install puts phi in $PREFIX/bin and the model in $PREFIX/share/phi).
 * Writes the resolved path into out (PATH_MAX bytes); 0 when found, -1 otherwise. */
static int demo_model(const char *argv0, char *out) {
    char exe[PATH_MAX], cand[PATH_MAX + 64];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) exe[n] = 0;
    else if (strchr(argv0, '/') && strlen(argv0) < sizeof exe) strcpy(exe, argv0);
    else return -1;
    int dir = (int)(strrchr(exe, '/') - exe);
    static const char *const where[] = {"/models/", "/../share/phi/"};
    for (int i = 0; i < 2; i++) {
        snprintf(cand, sizeof cand, "%.*s%s%s", dir, exe, where[i], DEMO_MODEL);
        if (access(cand, R_OK) == 0 && realpath(cand, out)) return 0;
    }
    return -1;
}

static int parse_int(const char *s, long lo, long hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

/* A comma-separated list of 1..max_n integers in [lo, hi]. */
static int parse_list(const char *s, long lo, long hi, int *out, int max_n, int *n) {
    char buf[128];
    if (strlen(s) >= sizeof buf) return -1;
    strcpy(buf, s);
    *n = 0;
    for (char *p = buf, *comma; p; p = comma ? comma + 1 : NULL) {
        comma = strchr(p, ',');
        if (comma) *comma = 0;
        if (*n == max_n || parse_int(p, lo, hi, &out[*n])) return -1;
        (*n)++;
    }
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

int main(int argc, char **argv) {
    RunOptions o = {.n_predict = 256, .temp = 0.8f, .top_p = 0.95f, .top_k = 40, .add_bos = -1, .no_mmap = -1,
                    .min_p = 0.05f, .repeat_penalty = 1.0f, .repeat_last_n = 64,
                    .seed = (uint64_t)time(NULL), .bench_pp = 128, .bench_tg = 32, .bench_reps = 3};
    int bench = 0, tokenize = 0, detokenize = 0, verbose = 0, seed_given = 0, ct_given = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
#define IS(x) (strcmp(a, x) == 0)
        /* flags without a value */
        if (IS("-h") || IS("--help")) { usage(stdout); return 0; }
        else if (IS("--version")) { version(); return 0; }
        else if (IS("--ref")) { o.use_ref = 1; continue; }
        else if (IS("--verbose-prompt")) { o.verbose_prompt = 1; continue; }
        else if (IS("--special") || IS("-sp")) { o.special = 1; continue; }
        else if (IS("--perf")) { o.perf = 1; continue; }
        else if (IS("--no-perf")) { o.perf = -1; continue; }
        else if (IS("--prompt-cache-ro")) { o.prompt_cache_ro = 1; continue; }
        else if (IS("--ignore-eos")) { o.ignore_eos = 1; continue; }
        else if (IS("--lookup")) { if (!o.draft_max) o.draft_max = LOOKUP_DRAFT_DEFAULT; continue; }
        else if (IS("--bench")) { bench = 1; continue; }
        else if (IS("--ppl-all")) { o.ppl_all = 1; continue; }
        else if (IS("--chat") || IS("-cnv")) { o.chat = 1; continue; }
        else if (IS("-i") || IS("--interactive")) { o.chat = o.interactive = 1; continue; }
        else if (IS("--tokenize")) { tokenize = 1; continue; }
        else if (IS("--detokenize")) { detokenize = 1; continue; }
        else if (IS("--bos")) { o.add_bos = 1; continue; }
        else if (IS("--no-bos")) { o.add_bos = 0; continue; }
        else if (IS("--no-mmap")) { o.no_mmap = 1; continue; }
        else if (IS("--mmap")) { o.no_mmap = 0; continue; }
        else if (IS("--kv-f32")) { o.kv_f32 = 1; continue; }
        else if (IS("-v") || IS("--verbose")) { verbose = 1; continue; }
        /* options with a value */
        else if (!v) return die("option '%s' is unknown or needs a value (see --help)", a);
        else if (IS("-m") || IS("--model")) o.model_path = v;
        else if (IS("-p") || IS("--prompt")) o.prompt = v;
        else if (IS("-f") || IS("--file")) o.prompt_file = v;
        else if (IS("--ids")) o.ids = v;
        else if (IS("--system")) o.system = v;
        else if (IS("--logits")) o.logits_path = v;
        else if (IS("--prompt-cache")) o.prompt_cache = v;
        else if (IS("--perplexity")) o.ppl_path = v;
        else if (IS("--save-logits")) o.save_logits = v;
        else if (IS("--kl-base")) o.kl_base = v;
        else if (IS("-ctk") || IS("--cache-type-k") || IS("-ctv") || IS("--cache-type-v")) {
            int t = kv_type_parse(v);
            if (t < 0) {
                fprintf(stderr, "phi: invalid value '%s' for %s (f32, f16 or q8_0)\n", v, a);
                return 1;
            }
            if (IS("-ctk") || IS("--cache-type-k")) o.cache_type_k = t;
            else o.cache_type_v = t;
            ct_given = 1;
        }
        else if (IS("--chunks")) bad = parse_int(v, 1, INT_MAX, &o.ppl_chunks);
        else if (IS("-n") || IS("--n-predict")) bad = parse_int(v, -1, INT_MAX, &o.n_predict);
        else if (IS("-c") || IS("--ctx-size")) bad = parse_int(v, 1, 1 << 24, &o.n_ctx);
        else if (IS("-t") || IS("--threads")) bad = parse_int(v, 1, 1024, &o.n_threads);
        else if (IS("--top-k")) bad = parse_int(v, 0, INT_MAX, &o.top_k);
        else if (IS("--draft-max") || IS("--draft")) bad = parse_int(v, 1, LOOKUP_DRAFT_MAX, &o.draft_max);
        else if (IS("--pp")) bad = parse_int(v, 0, 1 << 20, &o.bench_pp);
        else if (IS("--tg")) bad = parse_int(v, 0, 1 << 20, &o.bench_tg);
        else if (IS("--depth")) bad = parse_int(v, 0, 1 << 24, &o.bench_depth);
        else if (IS("--reps")) bad = parse_int(v, 1, 1000, &o.bench_reps);
        else if (IS("--parallel") || IS("-np")) bad = parse_list(v, 1, 64, o.bench_np, 8, &o.bench_n_np);
        else if (IS("--temp")) bad = parse_float(v, 0, 100, &o.temp);
        else if (IS("--top-p")) bad = parse_float(v, 0, 1, &o.top_p);
        else if (IS("--lora") || IS("--lora-scaled")) {
            if (o.n_lora == RUN_MAX_LORA) return die("at most %s LoRA adapters", "16");
            o.lora_path[o.n_lora] = v;
            o.lora_scale[o.n_lora] = 1.0f;
            if (IS("--lora-scaled")) {
                if (i + 2 >= argc) return die("%s", "--lora-scaled wants a folder and a scale (--lora-scaled DIR S)");
                if (parse_float(argv[i + 2], -1e6f, 1e6f, &o.lora_scale[o.n_lora]))
                    return die("invalid scale '%s' for --lora-scaled", argv[i + 2]);
                i++;
            }
            o.n_lora++;
        }
        else if (IS("--min-p")) bad = parse_float(v, 0, 1, &o.min_p);
        else if (IS("--repeat-penalty")) bad = parse_float(v, 0.0001f, 100, &o.repeat_penalty);
        else if (IS("--repeat-last-n")) bad = parse_int(v, -1, 1 << 24, &o.repeat_last_n);
        else if (IS("--presence-penalty")) bad = parse_float(v, -100, 100, &o.presence_penalty);
        else if (IS("--frequency-penalty")) bad = parse_float(v, -100, 100, &o.frequency_penalty);
        else if (IS("-s") || IS("--seed")) {
            seed_given = 1;
            char *end;
            errno = 0;
            o.seed = strtoull(v, &end, 10);
            bad = errno || end == v || *end || *v == '-';
        } else return die("unknown option '%s' (see --help)", a);
#undef IS
        if (bad) {
            fprintf(stderr, "phi: invalid value '%s' for %s\n", v, a);
            return 1;
        }
        i++;
    }
    /* --kv-f32 is both caches F32; --ref alone keeps the oracle's F32 cache */
    if (o.kv_f32 && ct_given) return die("%s", "--kv-f32 sets both cache types: give it or -ctk/-ctv, not both");
    if (o.kv_f32 || (o.use_ref && !ct_given)) o.cache_type_k = o.cache_type_v = KV_F32;
    model_set_notes(print_note, NULL, verbose);
    if (o.n_threads == 0) o.n_threads = cpu_physical_cores();
    int modes = bench + tokenize + detokenize + o.chat + !!o.ppl_path;
    if (modes > 1)
        return die("%s", "choose one of --bench, --tokenize, --detokenize, --chat/-i, --perplexity");
    if (!!o.prompt + !!o.prompt_file + !!o.ids > 1) return die("%s", "give only one of -p, -f and --ids");
    if (!o.ppl_path && (o.ppl_all || o.ppl_chunks || o.save_logits || o.kl_base))
        return die("%s", "--ppl-all, --chunks, --save-logits and --kl-base go with --perplexity FILE");
    if (o.ids && (modes || o.add_bos >= 0))
        return die("%s", "--ids is a prompt of token ids for plain generation");
    if (o.bench_n_np && !bench) return die("%s", "--parallel goes with --bench");
    if ((bench || tokenize || detokenize || o.ppl_path) && o.verbose_prompt)
        return die("%s", "--verbose-prompt goes with generation (-p, -f, --ids)");
    if (o.prompt_cache_ro && !o.prompt_cache) return die("%s", "--prompt-cache-ro goes with --prompt-cache FILE");
    if (o.prompt_cache && (modes - o.chat || o.logits_path))
        return die("%s", "--prompt-cache goes with generation or chat (-p, -f, --ids, --chat, -i) without --logits");
    if (o.draft_max && (bench || tokenize || detokenize || o.ppl_path))
        return die("%s", "--lookup and --draft-max go with generation (-p, -f, --ids, --chat)");
    if (o.draft_max && o.temp != 0)
        return die("%s", "--lookup needs greedy decoding (--temp 0): its drafts are checked against the "
                         "most likely token");
    if (!o.chat && o.system) return die("%s", "--system goes with --chat or -i");
    if (o.logits_path && (modes || tokenize))
        return die("%s", "--logits goes with plain generation (-p, -f, --ids)");
    if (o.chat && o.verbose_prompt) return die("%s", "--verbose-prompt goes with generation (-p, -f, --ids)");
    if (o.add_bos >= 0 && (bench || detokenize || o.chat || o.ppl_path))
        return die("%s", "--bos and --no-bos go with a text prompt (-p, -f) or --tokenize");
    if (o.ppl_path && (o.prompt || o.prompt_file)) return die("%s", "--perplexity reads its text from FILE, not -p/-f");
    int work = modes || o.prompt || o.prompt_file || o.ids;
    if (!o.model_path) {
        static char demo[PATH_MAX];
        if (!work) return die("%s", "no model given (-m FILE; see --help)");
        if (demo_model(argv[0], demo))
            return die("%s", "no model given (-m FILE), and no bundled demo model in models/ beside phi "
                             "or in ../share/phi/");
        fprintf(stderr, "phi: no -m given: using the bundled demo model %s\n", demo);
        o.model_path = demo;
    }
    if (bench) return run_bench(&o);
    if (o.ppl_path) return run_perplexity(&o);
    if (tokenize) return run_tokenize(&o);
    if (detokenize) return run_detokenize(&o);
    o.seed_from_clock = !seed_given && o.temp > 0; /* printed by the run, so it can be repeated */
    if (o.chat) return run_chat(&o);
    if (!work) return die("%s", "no prompt given (-p, -f or --ids)");
    return run_generate(&o);
}
