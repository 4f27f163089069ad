/* Placeholder until the GGUF tokenizer lands: refuses with one line. */
#include "model/gguf_vocab.h"

#include "base/errmsg.h"

Tokenizer *gguf_tokenizer(const Gguf *g, char *err, size_t errlen) {
    (void)g;
    errorf(err, errlen, "GGUF tokenizer metadata is not supported yet");
    return NULL;
}
