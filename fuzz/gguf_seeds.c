/* Writes the seed corpus of fuzz_gguf into the folder given: small valid GGUFs from
 * tests/gguf_write.h (every value type, nested arrays, tensors of every block type phi
 * dequantizes), a deeply nested array, and tiny llama / gpt2 tokenizer vocabularies. */
#include <stdio.h>

#include "tests/gguf_vocab_write.h"

static int put(const char *dir, const char *name, const GwBuf *b) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b->b, 1, b->n, f) != b->n || fclose(f)) {
        perror(path);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: gguf_seeds DIR\n");
        return 2;
    }
    GwBuf b = {0};
    GwPos p;
    int rc = 0;
    gw_small(&b, &p, 0, 1);
    rc |= put(argv[1], "small.gguf", &b);
    gw_small(&b, &p, 1, 2);
    rc |= put(argv[1], "all-types.gguf", &b);
    gw_nested(&b, 4);
    rc |= put(argv[1], "nested.gguf", &b);
    gv_tiny_llama(&b, GV_OK);
    rc |= put(argv[1], "vocab-llama.gguf", &b);
    gv_tiny_gpt2(&b, GV_OK);
    rc |= put(argv[1], "vocab-gpt2.gguf", &b);
    free(b.b);
    return rc;
}
