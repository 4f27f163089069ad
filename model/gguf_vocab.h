/* The tokenizer of a GGUF file, from its metadata (tokenizer.ggml.*: model "llama" or "gpt2",
 * tokens, scores, token_type, merges, pre, special ids, add_bos/add_eos, chat_template). It
 * tokenizes exactly as the same model's tokenizer.json does (tokenizer/tokenizer.h). */
#ifndef PHI_GGUF_VOCAB_H
#define PHI_GGUF_VOCAB_H

#include <stddef.h>

#include "model/gguf.h"
#include "tokenizer/tokenizer.h"

/* NULL with one line in err when the metadata is missing, malformed or of an unsupported kind. */
Tokenizer *gguf_tokenizer(const Gguf *g, char *err, size_t errlen);

#endif
