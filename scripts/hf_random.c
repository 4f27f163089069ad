/* hf_random: writes a Hugging Face Phi-3 folder with random BF16 weights, the benchmark input of
 * quant (scripts/bench-quant.sh). Not part of phi's binaries: no project code, libc + pthreads.
 *
 *   hf_random [--layers N] [--seed N] [--threads N] TOKENIZER_DIR OUT_DIR
 *
 * OUT_DIR (created; must not exist yet) gets config.json, the two tokenizer files copied from
 * TOKENIZER_DIR, model.safetensors.index.json and two shards model-0000{1,2}-of-00002.safetensors
 * split where the real Phi-3-mini-4k-instruct splits them (the first shard ends after layer 21's
 * mlp; 3.82 B parameters, 7.64 GB at 32 layers). Shape: Phi-3-mini (vocab 32064, dim 3072, 32
 * heads, ffn 8192).
 *
 * Values: matrices are roughly normal with std 0.02 (the sum of four uniforms, a bell with
 * bounded tails) and one value in 1024 multiplied by 4..12, so blocks of 32 have the occasional
 * outlier the scale search must handle, as trained weights do; norm weights are 1 +- 0.2. Each
 * 1 Mi-element chunk of a tensor has its own stream (seed, tensor, chunk), so the files do not
 * depend on the thread count. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { VOCAB = 32064, DIM = 3072, FFN = 8192, MAX_T = 1024 };
#define CHUNK (1u << 20)

typedef struct {
    char name[96];
    uint64_t rows, cols; /* cols 0: a vector of rows values */
    int shard;
    uint64_t off; /* in the shard's data area */
} Tensor;

static Tensor tensors[MAX_T];
static int n_tensors;

static void add(const char *name, uint64_t rows, uint64_t cols, int shard) {
    Tensor *t = &tensors[n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->rows = rows, t->cols = cols, t->shard = shard;
}

static uint64_t numel(const Tensor *t) { return t->rows * (t->cols ? t->cols : 1); }

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint16_t bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7FFF + ((u >> 16) & 1); /* round to nearest even (no NaNs here) */
    return (uint16_t)(u >> 16);
}

static void fill(const Tensor *t, int ti, uint64_t chunk, uint64_t seed, uint16_t *buf, size_t n) {
    uint64_t s = seed * 0x100000001B3ull ^ ((uint64_t)ti << 40) ^ chunk;
    for (size_t i = 0; i < n; i++) {
        uint64_t r = splitmix(&s);
        if (!t->cols) {
            buf[i] = bf16(1.0f + 0.2f * ((float)(r >> 40) / 8388608.0f - 1.0f));
            continue;
        }
        /* four 16-bit uniforms: mean 2, variance 4/12 */
        float u = (float)(r & 0xFFFF) + (float)((r >> 16) & 0xFFFF) + (float)((r >> 32) & 0xFFFF) +
                  (float)(r >> 48);
        float v = (u / 65536.0f - 2.0f) * (0.02f / 0.57735f);
        if ((r & 0x3FF) == 0x155) v *= 4.0f + (float)((r >> 10) & 7); /* outlier */
        buf[i] = bf16(v);
    }
}

typedef struct {
    int fd[2];
    uint64_t data_start[2];
    uint64_t seed;
    int ith, nth;
    int failed;
} Job;

static void *worker(void *arg) {
    Job *j = arg;
    uint16_t *buf = malloc(CHUNK * sizeof *buf);
    if (!buf) { j->failed = 1; return NULL; }
    uint64_t k = 0; /* chunks over all tensors, dealt round-robin */
    for (int ti = 0; ti < n_tensors && !j->failed; ti++) {
        const Tensor *t = &tensors[ti];
        uint64_t n = numel(t);
        for (uint64_t c = 0; c * CHUNK < n; c++, k++) {
            if ((int)(k % (uint64_t)j->nth) != j->ith) continue;
            size_t m = n - c * CHUNK < CHUNK ? (size_t)(n - c * CHUNK) : CHUNK;
            fill(t, ti, c, j->seed, buf, m);
            size_t want = m * 2, done = 0;
            uint64_t off = j->data_start[t->shard] + t->off + c * CHUNK * 2;
            while (done < want) {
                ssize_t w = pwrite(j->fd[t->shard], (char *)buf + done, want - done, (off_t)(off + done));
                if (w < 0 && errno == EINTR) continue;
                if (w <= 0) { perror("hf_random: write"); j->failed = 1; break; }
                done += (size_t)w;
            }
            if (j->failed) break;
        }
    }
    free(buf);
    return NULL;
}

static int copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = a ? fopen(to, "wb") : NULL;
    if (!a || !b) {
        fprintf(stderr, "hf_random: cannot copy %s to %s: %s\n", from, to, strerror(errno));
        if (a) fclose(a);
        return -1;
    }
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0) fwrite(buf, 1, n, b);
    int bad = ferror(a) | ferror(b);
    fclose(a);
    return fclose(b) || bad ? -1 : 0;
}

static int write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "w");
    if (!f || fputs(s, f) < 0 || fclose(f)) {
        fprintf(stderr, "hf_random: cannot write %s\n", path);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    int layers = 32, nth = (int)sysconf(_SC_NPROCESSORS_ONLN);
    uint64_t seed = 1;
    int i = 1;
    for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
        if (!strcmp(argv[i], "--layers")) layers = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seed")) seed = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--threads")) nth = atoi(argv[i + 1]);
        else break;
    }
    if (argc - i != 2 || layers < 1 || layers > 200 || nth < 1 || nth > 256) {
        fprintf(stderr, "usage: hf_random [--layers N] [--seed N] [--threads N] TOKENIZER_DIR OUT_DIR\n");
        return 1;
    }
    const char *tokdir = argv[i], *dir = argv[i + 1];
    if (mkdir(dir, 0777)) {
        fprintf(stderr, "hf_random: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    /* The real checkpoint's order and split: shard 1 holds the embedding and layers 0..20 plus
     * layer 21's attention, shard 2 the rest (for 32 layers; scaled for others). */
    int split = layers * 21 / 32;
    add("model.embed_tokens.weight", VOCAB, DIM, 0);
    char name[96];
    for (int l = 0; l < layers; l++) {
        int s = l > split ? 1 : 0, sm = l >= split ? 1 : 0;
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l), add(name, DIM, 0, s);
        snprintf(name, sizeof name, "model.layers.%d.self_attn.qkv_proj.weight", l), add(name, 3 * DIM, DIM, s);
        snprintf(name, sizeof name, "model.layers.%d.self_attn.o_proj.weight", l), add(name, DIM, DIM, s);
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l), add(name, DIM, 0, sm);
        snprintf(name, sizeof name, "model.layers.%d.mlp.gate_up_proj.weight", l), add(name, 2 * FFN, DIM, sm);
        snprintf(name, sizeof name, "model.layers.%d.mlp.down_proj.weight", l), add(name, DIM, FFN, sm);
    }
    add("model.norm.weight", DIM, 0, 1);
    add("lm_head.weight", VOCAB, DIM, 1);

    /* headers */
    char *hdr[2];
    size_t hlen[2], cap = 256 * (size_t)n_tensors + 64;
    uint64_t total = 0, pos[2] = {0, 0};
    for (int s = 0; s < 2; s++) {
        hdr[s] = malloc(cap);
        if (!hdr[s]) return 1;
        size_t n = (size_t)snprintf(hdr[s], cap, "{\"__metadata__\":{\"format\":\"pt\"}");
        for (int t = 0; t < n_tensors; t++) {
            Tensor *x = &tensors[t];
            if (x->shard != s) continue;
            x->off = pos[s];
            pos[s] += numel(x) * 2;
            char shape[64];
            if (x->cols) snprintf(shape, sizeof shape, "%llu,%llu", (unsigned long long)x->rows, (unsigned long long)x->cols);
            else snprintf(shape, sizeof shape, "%llu", (unsigned long long)x->rows);
            n += (size_t)snprintf(hdr[s] + n, cap - n, ",\"%s\":{\"dtype\":\"BF16\",\"shape\":[%s],\"data_offsets\":[%llu,%llu]}",
                                  x->name, shape, (unsigned long long)x->off, (unsigned long long)pos[s]);
        }
        n += (size_t)snprintf(hdr[s] + n, cap - n, "}");
        while (n % 8) hdr[s][n++] = ' ';
        hlen[s] = n;
        total += pos[s];
    }
    Job job = {{-1, -1}, {0, 0}, seed, 0, 1, 0};
    char path[4096];
    for (int s = 0; s < 2; s++) {
        snprintf(path, sizeof path, "%s/model-0000%d-of-00002.safetensors", dir, s + 1);
        job.fd[s] = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
        uint8_t len8[8];
        for (int b = 0; b < 8; b++) len8[b] = (uint8_t)((uint64_t)hlen[s] >> (8 * b));
        if (job.fd[s] < 0 || write(job.fd[s], len8, 8) != 8 || write(job.fd[s], hdr[s], hlen[s]) != (ssize_t)hlen[s] ||
            ftruncate(job.fd[s], (off_t)(8 + hlen[s] + pos[s]))) {
            fprintf(stderr, "hf_random: cannot write %s: %s\n", path, strerror(errno));
            return 1;
        }
        job.data_start[s] = 8 + hlen[s];
    }
    Job jobs[256];
    pthread_t th[256];
    for (int t = 0; t < nth; t++) {
        jobs[t] = job;
        jobs[t].ith = t, jobs[t].nth = nth;
        if (pthread_create(&th[t], NULL, worker, &jobs[t])) return 1;
    }
    int failed = 0;
    for (int t = 0; t < nth; t++) pthread_join(th[t], NULL), failed |= jobs[t].failed;
    if (failed || close(job.fd[0]) || close(job.fd[1])) return 1;

    /* index */
    size_t icap = 128 * (size_t)n_tensors + 256, n = 0;
    char *idx = malloc(icap);
    if (!idx) return 1;
    n += (size_t)snprintf(idx + n, icap - n, "{\n  \"metadata\": {\"total_size\": %llu},\n  \"weight_map\": {",
                          (unsigned long long)total);
    for (int t = 0; t < n_tensors; t++)
        n += (size_t)snprintf(idx + n, icap - n, "%s\n    \"%s\": \"model-0000%d-of-00002.safetensors\"",
                              t ? "," : "", tensors[t].name, tensors[t].shard + 1);
    snprintf(idx + n, icap - n, "\n  }\n}\n");
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (write_text(path, idx)) return 1;
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "{\n  \"architectures\": [\"Phi3ForCausalLM\"],\n  \"attention_bias\": false,\n"
             "  \"bos_token_id\": 1,\n  \"eos_token_id\": 32000,\n  \"hidden_act\": \"silu\",\n"
             "  \"hidden_size\": %d,\n  \"initializer_range\": 0.02,\n  \"intermediate_size\": %d,\n"
             "  \"max_position_embeddings\": 4096,\n  \"model_type\": \"phi3\",\n"
             "  \"num_attention_heads\": 32,\n  \"num_hidden_layers\": %d,\n  \"num_key_value_heads\": 32,\n"
             "  \"original_max_position_embeddings\": 4096,\n  \"pad_token_id\": 32000,\n"
             "  \"rms_norm_eps\": 1e-05,\n  \"rope_scaling\": null,\n  \"rope_theta\": 10000.0,\n"
             "  \"sliding_window\": 2047,\n  \"tie_word_embeddings\": false,\n  \"torch_dtype\": \"bfloat16\",\n"
             "  \"vocab_size\": %d\n}\n",
             DIM, FFN, layers, VOCAB);
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (write_text(path, cfg)) return 1;
    const char *tf[2] = {"tokenizer.json", "tokenizer_config.json"};
    for (int k = 0; k < 2; k++) {
        char from[4096];
        snprintf(from, sizeof from, "%s/%s", tokdir, tf[k]);
        snprintf(path, sizeof path, "%s/%s", dir, tf[k]);
        if (copy_file(from, path)) return 1;
    }
    fprintf(stderr, "hf_random: wrote %s: %d layers, %llu parameters, %.2f GB of BF16\n", dir, layers,
            (unsigned long long)(total / 2), total / 1e9);
    free(idx);
    free(hdr[0]);
    free(hdr[1]);
    return 0;
}
