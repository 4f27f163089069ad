/* A phi model image from a GGUF file of architecture "phi3" (llama.cpp's naming): the
 * hyperparameters from the phi3.* keys, the tensors mapped by name onto the schema
 * (model/schema.h), the tokenizer from tokenizer.ggml.* (model/gguf_vocab.h). No weight value
 * changes: each GGUF tensor type goes to the phi type that holds the same values (docs/GGUF.md,
 * "Running a GGUF"): F32 and F16 as they are, Q8_0 and Q4_0 re-laid into phi's q8/q4 panels,
 * Q5_0 into q8 with the same scales, K-quants verbatim into phi's K types where the build has
 * them, everything else (BF16, Q4_1, Q5_1, ...) dequantized exactly to f32.
 *
 * The same plan writes a phi file (quant file.gguf out.phi) or an image in memory (phi -m
 * file.gguf, model/model.c). */
#ifndef PHI_GGUF_MODEL_H
#define PHI_GGUF_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "model/format.h"
#include "model/gguf.h"

/* Notes for the user (one line each, without a trailing newline): which tensor types were
 * converted how, and with verbose the defaults taken for keys the file lacks. NULL: none. */
typedef void (*GgufNoteFn)(void *ctx, const char *line);
typedef struct {
    GgufNoteFn note;
    void *note_ctx;
    int verbose;
} GgufModelOptions;

/* The hyperparameters alone (validated by phi_hparams_check; stop ids not included). */
int gguf_model_hparams(const Gguf *g, const GgufModelOptions *o, PhiHParams *hp, char *err,
                       size_t errlen);
/* Writes the phi file out_path (PhiWriter: checked output, temporary file, rename). */
int gguf_model_write(const Gguf *g, const char *out_path, const GgufModelOptions *o, char *err,
                     size_t errlen);
/* Builds the phi image in anonymous memory (*image, *size; munmap to release). */
int gguf_model_image(const Gguf *g, const GgufModelOptions *o, uint8_t **image, uint64_t *size,
                     char *err, size_t errlen);

/* The GGUF magic at the start of a file image of size bytes; of the regular file path. */
int gguf_is_gguf(const void *buf, uint64_t size);
int gguf_path_is_gguf(const char *path);
/* quant file.gguf out.phi: maps the GGUF, parses it and writes out_path (gguf_model_write). */
int gguf_model_convert(const char *gguf_path, const char *out_path, const GgufModelOptions *o,
                       char *err, size_t errlen);

#endif
