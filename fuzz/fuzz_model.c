/* libFuzzer harness: a whole phi file image (header, hyperparameters, directory, tokenizer
 * section) through model_from_buffer; whatever is accepted must also run two tokens through both
 * forward paths without touching memory outside the image.
 * Seed corpus: a model written by `quant --random tiny` (see `make fuzz`). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* The image must be 64-byte aligned, as a mapping is. */
    uint8_t *buf = aligned_alloc(64, (size + 63) & ~(size_t)63);
    if (!buf) return 0;
    memcpy(buf, data, size);
    Model m;
    char err[512];
    if (model_from_buffer(buf, size, &m, err, sizeof err) == 0) {
        if ((uint64_t)m.hp.dim * m.hp.n_layers < (1u << 20)) {
            for (int ref = 0; ref < 2; ref++) {
                State s;
                if (state_init(&s, &m, 2, 1, err, sizeof err) == 0) {
                    s.use_ref = ref;
                    int toks[2] = {0, (int)(m.hp.vocab_size - 1)};
                    model_forward(&m, &s, toks, 2, 0, NULL);
                    state_free(&s);
                }
            }
        }
        model_free(&m);
    }
    free(buf);
    return 0;
}
