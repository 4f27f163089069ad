#include "model/generate.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "base/errmsg.h"

int is_stop_id(const PhiHParams *hp, int id) {
    for (uint32_t i = 0; i < hp->n_stop_ids; i++)
        if ((int)hp->stop_ids[i] == id) return 1;
    return 0;
}

static int write_logits(const char *path, const float *logits, size_t n, char *err, size_t errlen) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    /* float32 little-endian: the in-memory layout on the little-endian hosts phi runs on */
    size_t w = fwrite(logits, sizeof(float), n, f);
    if (fclose(f) || w != n) {
        snprintf(err, errlen, "cannot write %s", path);
        return -1;
    }
    return 0;
}

int check_fits_context(const char *what, int n, int reserve, int n_ctx, char *err, size_t errlen) {
    if ((long)n + reserve <= n_ctx) return 0;
    return errorf(err, errlen, "%s has %d tokens but the context holds %d (raise -c)", what, n, n_ctx);
}

int generate_tokens(const Model *m, State *s, Sampler *smp, int pos, const GenOptions *opt,
                    GenStats *st, int *ids, int cap) {
    TokDecoder dec;
    tok_decoder_init(&dec, m->tok);
    char text[256];
    double t0 = now_seconds();
    st->n_gen = 0;
    st->stopped_by = 0;
    while (opt->n_predict < 0 || st->n_gen < opt->n_predict) {
        if (opt->stop && *opt->stop) break; /* Ctrl-C in chat */
        int next = sampler_sample(smp, s->logits);
        if (!opt->ignore_stop && is_stop_id(&m->hp, next)) {
            st->stopped_by = 1;
            break;
        }
        sampler_accept(smp, next); /* the penalties' history */
        if (ids && st->n_gen < cap) ids[st->n_gen] = next;
        st->n_gen++;
        if (opt->print_ids) fprintf(opt->out, st->n_gen > 1 ? ",%d" : "%d", next);
        else if (tok_decoder_push(&dec, next, text, sizeof text)) fputs(text, opt->out);
        fflush(opt->out);
        if (opt->n_predict >= 0 && st->n_gen >= opt->n_predict) break;
        if (pos >= s->n_ctx) {
            st->stopped_by = 2;
            break;
        }
        model_forward(m, s, &next, 1, pos++, NULL);
    }
    if (!opt->print_ids && tok_decoder_flush(&dec, text, sizeof text)) fputs(text, opt->out);
    fflush(opt->out);
    st->gen_s = now_seconds() - t0;
    return pos;
}

int generate(const Model *m, State *s, Sampler *smp, const int *prompt, int n_prompt,
             const GenOptions *opt, GenStats *st, char *err, size_t errlen) {
    const PhiHParams *hp = &m->hp;
    memset(st, 0, sizeof *st);
    if (n_prompt < 1) {
        snprintf(err, errlen, "the prompt is empty");
        return -1;
    }
    if (check_fits_context("the prompt", n_prompt, 0, s->n_ctx, err, errlen)) return -1;
    float *all = NULL;
    if (opt->logits_path) {
        all = malloc((size_t)n_prompt * hp->vocab_size * sizeof(float));
        if (!all) {
            snprintf(err, errlen, "out of memory for %d x %u logits", n_prompt, hp->vocab_size);
            return -1;
        }
    }
    double t0 = now_seconds();
    if (model_forward(m, s, prompt, n_prompt, 0, all)) {
        free(all);
        snprintf(err, errlen, "a prompt token is outside the vocabulary (0..%u)", hp->vocab_size - 1);
        return -1;
    }
    st->n_prompt = n_prompt;
    st->prompt_s = now_seconds() - t0;
    if (all) {
        int rc = write_logits(opt->logits_path, all, (size_t)n_prompt * hp->vocab_size, err, errlen);
        free(all);
        if (rc) return -1;
    }
    generate_tokens(m, s, smp, n_prompt, opt, st, NULL, 0);
    fputc('\n', opt->out);
    fflush(opt->out);
    return 0;
}
