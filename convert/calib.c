/* quant --calib: activation statistics over a calibration text, used as per-column importance by
 * the Q4 scale search. */
#include "base/fileio.h"
#include "convert/calib.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cpu.h"
#include "base/errmsg.h"
#include "model/generate.h"
#include "model/model.h"
#include "model/schema.h"

/* Every column keeps at least this share of its matrix's mean importance: a column the text
 * never exercised still matters a little on other inputs. */
#define CALIB_FLOOR 0.01

/* Where the statistics of a per-layer matrix start in the sums (model/schema.h), or -1. */
static long act_slice(const PhiHParams *hp, const SchemaItem *e) {
    if (e->layer < 0 || e->t->ndim != 2) return -1;
    long off = schema_act_offset(hp, e->t->role);
    return off < 0 ? -1 : (long)(e->layer * schema_act_stride(hp)) + off;
}

/* Mean square per column, then the floor, separately for each matrix's input slice. */
static void finish_importance(Calib *c, const double *sums) {
    SchemaIter it = schema_iter(&c->hp);
    while (schema_next(&it)) {
        long off = act_slice(&c->hp, &it.item);
        size_t width = it.item.cols;
        if (off < 0) continue;
        double mean = 0;
        for (size_t j = 0; j < width; j++) mean += sums[off + j] / (double)c->rows;
        mean /= (double)width;
        for (size_t j = 0; j < width; j++)
            c->imp[off + j] = (float)(sums[off + j] / (double)c->rows + CALIB_FLOOR * mean);
    }
}

int calib_collect(const char *model_path, const char *text_path, int n_ctx, int n_threads,
                  int progress, Calib *c, char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    Model m;
    if (model_load(model_path, &m, err, errlen)) return -1;
    size_t len = 0;
    char *text = read_file(text_path, &len, err, errlen);
    int *ids = NULL, *toks = NULL, n = 0, rc = -1;
    double *sums = NULL;
    State s = {0};
    if (!text) goto done;
    if (len) n = tok_encode(m.tok, text, len, 0, NULL, 0, err, errlen);
    if (n < 0) goto done;
    if (n == 0) {
        snprintf(err, errlen, "calibration text %s is empty", text_path);
        goto done;
    }
    if (n_ctx <= 0) n_ctx = m.hp.max_seq_len < 512 ? (int)m.hp.max_seq_len : 512;
    if (n_ctx < 2) n_ctx = 2;
    c->hp = m.hp;
    size_t n_sums = (size_t)m.hp.n_layers * schema_act_stride(&m.hp);
    ids = malloc((size_t)n * sizeof *ids);
    toks = malloc((size_t)n_ctx * sizeof *toks);
    sums = calloc(n_sums, sizeof *sums);
    c->imp = malloc(n_sums * sizeof *c->imp);
    if (!ids || !toks || !sums || !c->imp) {
        snprintf(err, errlen, "out of memory for the calibration statistics");
        goto done;
    }
    tok_encode(m.tok, text, len, 0, ids, n, err, errlen);
    if (state_init(&s, &m, n_ctx, n_threads > 0 ? n_threads : cpu_physical_cores(), err, errlen))
        goto done;
    s.act_sq = sums;
    /* Windows of [BOS] + n_ctx - 1 tokens, the last one partial: every token is seen once. */
    int per = n_ctx - 1, n_win = (n + per - 1) / per;
    double t0 = now_seconds();
    for (int w = 0; w < n_win; w++) {
        int k = w * per, len_w = n - k < per ? n - k : per;
        toks[0] = (int)m.hp.bos_id;
        memcpy(toks + 1, ids + k, (size_t)len_w * sizeof *toks);
        if (model_forward(&m, &s, toks, len_w + 1, 0, NULL)) {
            snprintf(err, errlen, "calibration text %s: a token is outside the vocabulary", text_path);
            goto done;
        }
        if (progress) {
            fprintf(stderr, "\rcalibration: window %d/%d, %.1f s", w + 1, n_win, now_seconds() - t0);
            if (w + 1 == n_win) fputc('\n', stderr);
            fflush(stderr);
        }
    }
    c->rows = s.act_rows;
    c->n_windows = n_win;
    finish_importance(c, sums);
    rc = 0;
done:
    state_free(&s);
    free(sums);
    free(toks);
    free(ids);
    free(text);
    model_free(&m);
    if (rc) calib_free(c);
    return rc;
}

void calib_free(Calib *c) {
    free(c->imp);
    c->imp = NULL;
}

const float *calib_importance(void *calib, const char *name, uint64_t cols) {
    const Calib *c = calib;
    SchemaItem e = {0};
    if (!c->imp || !(e.t = schema_lookup(&c->hp, name, &e.layer))) return NULL;
    long off = act_slice(&c->hp, &e);
    return off >= 0 && cols == schema_dim(&c->hp, e.t->cols) ? c->imp + off : NULL;
}

int convert_hf_calibrated(const char *dir, const char *out_path, const ConvertOptions *opt,
                          const char *text_path, char *err, size_t errlen) {
    FILE *f = fopen(text_path, "rb"); /* fail before the slow part */
    if (!f) {
        snprintf(err, errlen, "calibration text %s: %s", text_path, strerror(errno));
        return -1;
    }
    fclose(f);
    /* The q8 model goes to a new file next to the output, OUT.calib-q8.PID.N, created here with
     * O_EXCL (so no existing file is ever replaced, whatever its name) and removed on every way
     * out: each return below, and SIGINT/SIGTERM/SIGHUP through phi_cleanup_also. The writer then
     * replaces this empty regular file of ours by rename. */
    char tmp[4200];
    int fd = -1;
    for (unsigned k = 0; k < 1000 && fd < 0; k++) {
        snprintf(tmp, sizeof tmp, "%s.calib-q8.%ld.%u", out_path, (long)getpid(), k);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) return errorf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
    close(fd);
    phi_cleanup_also(tmp);
    ConvertOptions o = *opt;
    o.type = TENSOR_Q8; /* activations of a q8 model are as good as f32's for statistics */
    o.importance = NULL;
    Calib c;
    int rc = convert_hf(dir, tmp, &o, err, errlen);
    if (!rc) rc = calib_collect(tmp, text_path, 0, opt->n_threads, opt->progress, &c, err, errlen);
    unlink(tmp);
    phi_cleanup_also(NULL);
    if (rc) return -1;
    o = *opt;
    o.importance = calib_importance;
    o.importance_ctx = &c;
    rc = convert_hf(dir, out_path, &o, err, errlen);
    calib_free(&c);
    return rc;
}
