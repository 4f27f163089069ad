/* quant --calib: weight the Q4 scale search by how much each input column of a matrix matters.
 *
 * The error a matrix adds to its output y = W a is sum_j (W_ij - Q_ij) a_j; over many inputs its
 * expected square is about sum_j (W_ij - Q_ij)^2 E[a_j^2] when the columns are uncorrelated. So
 * each block's squared error is weighted by the mean square of its columns' activations, measured
 * by running the model over a calibration text (the idea of llama.cpp's importance matrix). */
#ifndef PHI_CALIB_H
#define PHI_CALIB_H

#include <stddef.h>
#include <stdint.h>

#include "convert/convert.h"
#include "model/format.h"

typedef struct {
    PhiHParams hp;
    float *imp; /* per layer: [dim] wqkv, [n_heads head_dim] wo, [dim] w_gate_up, [hidden] w_down */
    long rows;  /* positions the statistics come from */
    int n_windows;
} Calib;

/* Run the model in model_path over the text in text_path, windows of n_ctx positions ([BOS] +
 * n_ctx - 1 tokens; n_ctx <= 0: min(512, the model's)), and keep each column's mean square input,
 * plus a small floor so that no column counts for nothing. 0, or -1 with a one-line message. */
int calib_collect(const char *model_path, const char *text_path, int n_ctx, int n_threads,
                  int progress, Calib *c, char *err, size_t errlen);
void calib_free(Calib *c);

/* ConvertOptions.importance: the weights of a layer matrix by its Hugging Face name, or NULL
 * (embedding, LM head, unknown names, a column count that does not match). */
const float *calib_importance(void *calib, const char *name, uint64_t cols);

/* quant --calib: convert dir to a temporary q8 file next to out_path, collect the statistics
 * from it over text_path, remove it, then convert dir to out_path with them. */
int convert_hf_calibrated(const char *dir, const char *out_path, const ConvertOptions *opt,
                          const char *text_path, char *err, size_t errlen);

#endif
