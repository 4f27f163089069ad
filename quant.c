/* quant: converts a Hugging Face Phi-3 folder to a phi file, or writes a random-weight model. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cpu.h"
#include "base/errmsg.h"
#include "convert/calib.h"
#include "convert/convert.h"
#include "kernels/blocks.h"
#include "model/format.h"
#include "model/gguf_model.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: quant [-q TYPE] MODEL_DIR OUTPUT      convert a Hugging Face Phi-3 folder\n"
            "       quant FILE.gguf OUTPUT                 convert a GGUF file (no value changes)\n"
            "       quant [-q TYPE] --random SHAPE OUTPUT  write a model with random weights\n"
            "\n"
            "  -q, --type TYPE   weight type of the matrices (default q8): f32, f16, q8, q4 (4.5 bits\n"
            "                    per weight), or llama.cpp's K-quants q4_k (4.5), q5_k (5.5), q6_k\n"
            "                    (6.625), the mix q4_k_m (llama.cpp's Q4_K_M: the fused qkv q5_k,\n"
            "                    ffn_down q6_k in the first and last eighth of the layers and every\n"
            "                    third between, the rest q4_k), or llama.cpp's iq4_xs (4.25, a\n"
            "                    non-uniform 4-bit grid). Norms stay f32; with q4 the embedding and\n"
            "                    LM head are q8, with q4_k, q5_k, q4_k_m, iq4_xs q6_k (their errors weigh\n"
            "                    most). A matrix whose rows are not whole blocks (32; 256 for the\n"
            "                    K-quants) is stored q8 (K-quants, rows of whole 32-blocks) or f16.\n"
            "  -t, --threads N   threads of the conversion (default: the physical cores); the output\n"
            "                    is the same bytes for every N (llama-quantize takes it as its last\n"
            "                    positional argument, nthreads)\n"
            "  --random SHAPE    %s\n"
            "  --layers N        with --random: use N layers instead of the shape's\n"
            "  --seed N          with --random: seed of the weights (default 1)\n"
            "  --calib TEXT      q4, K-quants: weight each block's scale search by the mean square of the\n"
            "                    activations each column sees when a q8 copy of the model runs over\n"
            "                    TEXT (a temporary file next to OUTPUT; every token of TEXT is run)\n"
            "  --lora DIR        merge a LoRA adapter (a PEFT folder: adapter_config.json and\n"
            "                    adapter_model.safetensors, or a GGUF adapter file) into the weights\n"
            "                    before quantizing: W + (alpha / r) B A, in F32; repeatable, the\n"
            "                    adapters add up\n"
            "  --lora-scaled DIR S  the same with user scale S: W + S (alpha / r) B A (llama.cpp's\n"
            "                    flags; phi applies the same adapters unmerged with phi --lora)\n"
            "  --no-progress     no progress bar (it is drawn only on a terminal anyway)\n"
            "  -v, --verbose     with a GGUF: also note the defaults taken for missing keys\n"
            "  -h, --help        this text\n"
            "\n"
            "MODEL_DIR holds config.json, model.safetensors (or model-*-of-*.safetensors with\n"
            "model.safetensors.index.json), tokenizer.json and optionally tokenizer_config.json and\n"
            "generation_config.json, as downloaded from Hugging Face. Tensors may be BF16, F16 or F32.\n"
            "OUTPUT is written whole or not at all: to a new temporary file next to it, renamed to\n"
            "OUTPUT at the end. An existing OUTPUT is replaced only when it is a regular file that\n"
            "is none of the inputs; a symbolic link, folder, device or FIFO is refused, never\n"
            "written through.\n"
            "\n"
            "A GGUF input (llama.cpp's phi3 architecture) keeps every weight value: F32, F16, Q8_0\n"
            "and Q4_0 tensors keep their type (q8, q4: the same blocks in phi's layout), Q5_0 becomes\n"
            "q8 with the same scales, K-quants stay K-quants where phi has the type, and the rest\n"
            "(BF16, Q4_1, Q5_1, ...) become f32, each noted on stderr. -q is refused with a GGUF\n"
            "input (requantizing would change the values; convert the Hugging Face folder instead).\n",
            convert_shape_names());
}

/* 0 when out (checked by phi_output_check: absent or a regular file) is none of the input files:
 * the files of the model folder (config, tokenizer, safetensors shards, through links too) and
 * the calibration text. Hard links and other names of an input are caught by the inode. */
static void print_note(void *ctx, const char *line) {
    (void)ctx;
    fprintf(stderr, "quant: %s\n", line);
}

static int output_is_not_an_input(const char *out, const char *dir, const char *calib, char *err,
                                  size_t errlen) {
    struct stat so, si;
    if (stat(out, &so) != 0) return 0; /* a new file */
    if (dir && stat(dir, &si) == 0 && S_ISREG(si.st_mode) && si.st_dev == so.st_dev && si.st_ino == so.st_ino)
        return errorf(err, errlen, "output %s is the input file %s", out, dir); /* a GGUF */
    if (calib && stat(calib, &si) == 0 && si.st_dev == so.st_dev && si.st_ino == so.st_ino)
        return errorf(err, errlen, "output %s is the calibration text %s", out, calib);
    if (!dir) return 0;
    DIR *d = opendir(dir);
    if (!d) return 0; /* reading the model reports it */
    int rc = 0;
    size_t dl = strlen(dir);
    for (struct dirent *e; !rc && (e = readdir(d));) {
        size_t n = dl + strlen(e->d_name) + 2;
        char *p = malloc(n);
        if (!p) {
            rc = errorf(err, errlen, "out of memory");
            break;
        }
        snprintf(p, n, "%s/%s", dir, e->d_name);
        if (stat(p, &si) == 0 && S_ISREG(si.st_mode) && si.st_dev == so.st_dev && si.st_ino == so.st_ino)
            rc = errorf(err, errlen, "output %s is the input file %s", out, p);
        free(p);
    }
    closedir(d);
    return rc;
}

int main(int argc, char **argv) {
    ConvertOptions opt = {.type = TENSOR_Q8, .progress = isatty(2), .seed = 1};
    const char *random_shape = NULL, *calib_text = NULL, *pos[2];
    int layers_given = 0, seed_given = 0; /* only --random uses them: refused otherwise */
    int npos = 0, type_given = 0, verbose = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            if (fflush(stdout) || ferror(stdout)) {
                fprintf(stderr, "quant: cannot write the help text: %s\n", strerror(errno));
                return 1;
            }
            return 0;
        } else if ((!strcmp(a, "-q") || !strcmp(a, "--type")) && has_value) {
            const char *tn = argv[++i];
            opt.mix = !strcmp(tn, "q4_k_m") ? CONVERT_MIX_Q4_K_M : CONVERT_MIX_NONE;
            opt.type = opt.mix ? TENSOR_Q4_K : type_from_name(tn);
            type_given = 1;
            if (opt.type < 0) {
                fprintf(stderr, "quant: unknown type '%s' (f32, f16, q8, q4, q4_k, q5_k, q6_k, q4_k_m, iq4_xs)\n", tn);
                return 1;
            }
        } else if ((!strcmp(a, "-t") || !strcmp(a, "--threads")) && has_value) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (end == argv[i] || *end || v < 1 || v > CONVERT_MAX_THREADS) {
                fprintf(stderr, "quant: -t wants a number of threads in 1..%d\n", CONVERT_MAX_THREADS);
                return 1;
            }
            opt.n_threads = (int)v;
        } else if (!strcmp(a, "--calib") && has_value) {
            calib_text = argv[++i];
        } else if (!strcmp(a, "--random") && has_value) {
            random_shape = argv[++i];
        } else if (!strcmp(a, "--layers") && has_value) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 1024) {
                fprintf(stderr, "quant: --layers wants a number in 1..1024\n");
                return 1;
            }
            opt.n_layers = (int)v;
            layers_given = 1;
        } else if (!strcmp(a, "--seed") && has_value) {
            char *end;
            opt.seed = strtoull(argv[++i], &end, 10);
            seed_given = 1;
            if (*end) {
                fprintf(stderr, "quant: --seed wants a number\n");
                return 1;
            }
        } else if ((!strcmp(a, "--lora") || !strcmp(a, "--lora-scaled")) && has_value) {
            if (opt.n_lora == CONVERT_MAX_LORA) {
                fprintf(stderr, "quant: at most %d LoRA adapters\n", CONVERT_MAX_LORA);
                return 1;
            }
            opt.lora_scale[opt.n_lora] = 1.0f;
            opt.lora_path[opt.n_lora] = argv[++i];
            if (!strcmp(a, "--lora-scaled")) {
                char *end;
                float s = i + 1 < argc ? strtof(argv[i + 1], &end) : 0;
                if (i + 1 >= argc || end == argv[i + 1] || *end || !(s > -1e6f && s < 1e6f)) {
                    fprintf(stderr, "quant: --lora-scaled wants a folder and a scale (--lora-scaled DIR S)\n");
                    return 1;
                }
                opt.lora_scale[opt.n_lora] = s;
                i++;
            }
            opt.n_lora++;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            verbose = 1;
        } else if (!strcmp(a, "--no-progress")) {
            opt.progress = 0;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "quant: unknown or incomplete option '%s' (see --help)\n", a);
            return 1;
        } else if (npos < 2) {
            pos[npos++] = a;
        } else {
            fprintf(stderr, "quant: too many arguments (see --help)\n");
            return 1;
        }
    }
    int want = random_shape ? 1 : 2;
    if (npos != want) {
        fprintf(stderr, "quant: expected %s (see --help)\n",
                random_shape ? "an OUTPUT file" : "MODEL_DIR and OUTPUT");
        return 1;
    }
    if ((layers_given || seed_given) && !random_shape) {
        fprintf(stderr, "quant: %s goes with --random\n", layers_given ? "--layers" : "--seed");
        return 1;
    }
    if (opt.n_lora && random_shape) {
        fprintf(stderr, "quant: --lora goes with a model folder, not --random\n");
        return 1;
    }
    int gguf = !random_shape && gguf_path_is_gguf(pos[0]);
    if (gguf && (type_given || calib_text || opt.n_lora)) {
        fprintf(stderr, "quant: %s is GGUF: it is converted without changing any value, so -q, "
                "--calib and --lora do not apply (see --help)\n", pos[0]);
        return 1;
    }
    if (calib_text && (random_shape || !type_traits((uint32_t)opt.type)->from_float_w)) {
        fprintf(stderr, "quant: --calib goes with -q q4 (or a K-quant) and a model folder\n");
        return 1;
    }
    char err[1024];
    double t0 = now_seconds();
    const char *out = pos[want - 1];
    /* The output is checked before any work (the writer checks it again). */
    if (phi_output_check(out, err, sizeof err) ||
        output_is_not_an_input(out, random_shape ? NULL : pos[0], calib_text, err, sizeof err)) {
        fprintf(stderr, "quant: %s\n", err);
        return 1;
    }
    for (int i = 0; i < opt.n_lora; i++) { /* nor an adapter file or a file of an adapter folder */
        struct stat sa, so;
        if (stat(opt.lora_path[i], &sa) == 0 && stat(out, &so) == 0 && sa.st_dev == so.st_dev && sa.st_ino == so.st_ino) {
            fprintf(stderr, "quant: output %s is the LoRA adapter %s\n", out, opt.lora_path[i]);
            return 1;
        }
        if (output_is_not_an_input(out, opt.lora_path[i], NULL, err, sizeof err)) {
            fprintf(stderr, "quant: %s\n", err);
            return 1;
        }
    }
    /* A signal removes the temporary output; past a file size limit, writes fail with EFBIG (an
     * error message) instead of SIGXFSZ killing us with the partial file left behind. */
    phi_cleanup_on_signals();
    signal(SIGXFSZ, SIG_IGN);
    GgufModelOptions gopt = {print_note, NULL, verbose};
    int rc = gguf ? gguf_model_convert(pos[0], out, &gopt, err, sizeof err)
             : random_shape ? convert_random(random_shape, out, &opt, err, sizeof err)
                 : calib_text ? convert_hf_calibrated(pos[0], out, &opt, calib_text, err, sizeof err)
                              : convert_hf(pos[0], out, &opt, err, sizeof err);
    if (rc) {
        fprintf(stderr, "quant: %s\n", err);
        return 1;
    }
    fprintf(stderr, "quant: wrote %s (%s) in %.2f s\n", out, gguf ? "from GGUF" : type_traits((uint32_t)opt.type)->name,
            now_seconds() - t0);
    return 0;
}
