/* libFuzzer harness: a whole GGUF image through gguf_parse; whatever is accepted is then used
 * the way a loader would: every key through the getter of its type, every array element, and
 * the first rows of every tensor of a type phi dequantizes — all without touching memory
 * outside the image; then the tokenizer is built from its metadata (gguf_tokenizer) and, when that
 * succeeds, it encodes, decodes and round-trips through its phi section. Last the phi model image
 * (model/gguf_model.c) is built and loaded: a refusal is one line; what is built must load.
 * Seed corpus: small GGUFs written by fuzz/gguf_seeds.c (every value type, every dequantizable
 * block type, tiny llama and gpt2 vocabularies), plus the fixture GGUFs of ../shared/data when
 * present (see `make fuzz`). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/ggml_types.h"
#include "model/gguf.h"
#include "model/gguf_model.h"
#include "model/gguf_vocab.h"
#include "model/model.h"
#include <sys/mman.h>

static float row[1 << 16];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* an exact-size copy: any read past the image is a heap overflow */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    Gguf g;
    char err[512];
    if (gguf_parse(buf, size, &g, err, sizeof err) == 0) {
        volatile uint64_t sink = 0;
        for (uint64_t i = 0; i < g.n_kv; i++) {
            const GgufKV *kv = &g.kv[i];
            const char *k = kv->key, *s;
            uint32_t u32;
            int32_t i32;
            uint64_t u64, len, cnt;
            float f;
            int b;
            const GgufKV *a;
            if (gguf_find_key(&g, k) != kv) abort(); /* keys are unique */
            if (gguf_get_u32(&g, k, &u32, err, sizeof err) == 0) sink += u32;
            if (gguf_get_i32(&g, k, &i32, err, sizeof err) == 0) sink += (uint64_t)i32;
            if (gguf_get_u64(&g, k, &u64, err, sizeof err) == 0) sink += u64;
            if (gguf_get_f32(&g, k, &f, err, sizeof err) == 0) sink += (uint64_t)(f == f);
            if (gguf_get_bool(&g, k, &b, err, sizeof err) == 0) sink += (uint64_t)b;
            if (gguf_get_str(&g, k, &s, &len, err, sizeof err) == 0 && len) sink += (uint8_t)s[len - 1];
            if (gguf_get_arr(&g, k, GGUF_TYPE_COUNT, &a, &cnt, err, sizeof err) == 0)
                for (uint64_t j = 0; j < cnt; j++) {
                    int64_t v;
                    if (gguf_arr_int(a, j, &v) == 0) sink += (uint64_t)v;
                    if (gguf_arr_f32(a, j, &f) == 0) sink += (uint64_t)(f == f);
                    if (gguf_arr_str(a, j, &s, &len) == 0 && len) sink += (uint8_t)s[len - 1];
                }
        }
        for (uint64_t i = 0; i < g.n_tensors; i++) {
            const GgufTensor *t = &g.tensors[i];
            if (gguf_find_tensor(&g, t->name) != t) abort(); /* names are unique */
            if (t->data < buf || t->n_bytes > size || t->data + t->n_bytes > buf + size) abort();
            if (t->ne[0] > (1 << 16)) continue;
            for (uint64_t r = 0; r < t->n_rows && r < 4; r++)
                if (ggml_dequantize_row(t->type, t->data + r * t->row_bytes, row, (int64_t)t->ne[0], err, sizeof err) == 0)
                    sink += (uint64_t)(row[0] == row[0]);
        }
        Tokenizer *t = gguf_tokenizer(&g, err, sizeof err);
        if (!t && (!err[0] || strchr(err, '\n'))) abort(); /* a refusal is one line */
        if (t) {
            static const char text[] = "Hello world <|end|>\n<s> \xC3\xA9t\xC3\xA9 12345 ab abc";
            int ids[256];
            int n = tok_encode(t, text, sizeof text - 1, 1, ids, 256, err, sizeof err);
            if (n < 0 || n > 256) abort(); /* valid UTF-8 always encodes; at most one id per byte + BOS */
            TokDecoder d;
            char out[4096];
            tok_decoder_init(&d, t);
            for (int i = 0; i < n; i++) {
                if (ids[i] < 0 || ids[i] >= tok_vocab_size(t)) abort();
                tok_decoder_push(&d, ids[i], out, sizeof out);
            }
            tok_decoder_flush(&d, out, sizeof out);
            uint8_t *blob;
            uint64_t blen;
            if (tok_serialize(t, &blob, &blen, err, sizeof err)) abort();
            Tokenizer *l = tok_load(blob, blen, err, sizeof err);
            if (!l) abort(); /* what was built must reload */
            int ids2[256];
            if (tok_encode(l, text, sizeof text - 1, 1, ids2, 256, err, sizeof err) != n ||
                memcmp(ids, ids2, sizeof(int) * (size_t)n))
                abort();
            tok_free(l);
            free(blob);
            tok_free(t);
        }
        uint8_t *img;
        uint64_t isz;
        if (gguf_model_image(&g, NULL, &img, &isz, err, sizeof err) == 0) {
            Model m;
            if (model_from_buffer(img, isz, &m, err, sizeof err)) abort(); /* what was built must load */
            model_free(&m);
            munmap(img, (size_t)isz);
        } else if (!err[0] || strchr(err, '\n')) {
            abort();
        }
        (void)sink;
        gguf_free(&g);
    }
    free(buf);
    return 0;
}
