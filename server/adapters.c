#include "server/adapters.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/phi_internal.h"

typedef struct {
    float *scales; /* [n] */
    LoraSet *set;
    int refs;
} Entry;

struct Adapters {
    const phi_model *pm;
    phi_lora *a[ADAPTERS_MAX];
    float global[ADAPTERS_MAX];
    int n;
    Entry *e;
    int n_e, cap_e;
    pthread_mutex_t mu;
};

Adapters *adapters_new(const phi_model *pm) {
    Adapters *A = calloc(1, sizeof *A);
    if (!A) return NULL;
    A->pm = pm;
    pthread_mutex_init(&A->mu, NULL);
    return A;
}

void adapters_free(Adapters *A) {
    if (!A) return;
    for (int i = 0; i < A->n_e; i++) {
        lora_set_free(A->e[i].set);
        free(A->e[i].scales);
    }
    free(A->e);
    for (int i = 0; i < A->n; i++) phi_lora_free(A->a[i]);
    pthread_mutex_destroy(&A->mu);
    free(A);
}

int adapters_load(Adapters *A, const char *path, float scale, char *err, size_t errlen) {
    if (A->n == ADAPTERS_MAX) return snprintf(err, errlen, "more than %d LoRA adapters", ADAPTERS_MAX), -1;
    if (!isfinite(scale)) return snprintf(err, errlen, "%s: the scale is not a finite number", path), -1;
    if (phi_lora_load(A->pm, path, &A->a[A->n])) return snprintf(err, errlen, "%s", phi_last_error()), -1;
    A->global[A->n++] = scale;
    return 0;
}

int adapters_count(const Adapters *A) { return A ? A->n : 0; }

void adapters_get_scales(Adapters *A, float *scales) {
    pthread_mutex_lock(&A->mu);
    memcpy(scales, A->global, (size_t)A->n * sizeof *scales);
    pthread_mutex_unlock(&A->mu);
}

void adapters_set_scales(Adapters *A, const float *scales) {
    pthread_mutex_lock(&A->mu);
    memcpy(A->global, scales, (size_t)A->n * sizeof *scales);
    pthread_mutex_unlock(&A->mu);
}

void adapters_json(Adapters *A, Sb *b) {
    pthread_mutex_lock(&A->mu);
    sb_puts(b, "[");
    for (int i = 0; i < A->n; i++) {
        const char *p = phi_lora_path(A->a[i]);
        sb_printf(b, "%s{\"id\":%d,\"path\":", i ? "," : "", i);
        sb_json_str(b, p, strlen(p));
        sb_printf(b, ",\"scale\":%.9g}", (double)A->global[i]);
    }
    sb_puts(b, "]");
    pthread_mutex_unlock(&A->mu);
}

int adapters_acquire(Adapters *A, const float *scales, const LoraSet **out) {
    *out = NULL;
    int any = 0;
    for (int i = 0; i < A->n; i++) any |= scales[i] != 0;
    if (!any) return 0; /* the base model */
    pthread_mutex_lock(&A->mu);
    for (int i = 0; i < A->n_e; i++)
        if (!memcmp(A->e[i].scales, scales, (size_t)A->n * sizeof *scales)) {
            A->e[i].refs++;
            *out = A->e[i].set;
            pthread_mutex_unlock(&A->mu);
            return 0;
        }
    int rc = -1;
    char err[256];
    LoraSet *set = lora_set_new(&phi_model_get(A->pm)->hp);
    float *sc = malloc((size_t)A->n * sizeof *sc);
    if (A->n_e == A->cap_e) {
        int cap = A->cap_e ? 2 * A->cap_e : 8;
        Entry *e = realloc(A->e, (size_t)cap * sizeof *e);
        if (e) A->e = e, A->cap_e = cap;
    }
    if (set && sc && A->n_e < A->cap_e) {
        rc = 0;
        /* adapters in id order, each at its scale (0 adds nothing): the order the scales add in
         * is fixed, so equal vectors give equal logits */
        for (int i = 0; i < A->n && !rc; i++)
            rc = lora_set_add(set, phi_lora_adapter(A->a[i]), scales[i], err, sizeof err);
    }
    if (rc) {
        lora_set_free(set);
        free(sc);
    } else {
        memcpy(sc, scales, (size_t)A->n * sizeof *sc);
        A->e[A->n_e++] = (Entry){sc, set, 1};
        *out = set;
    }
    pthread_mutex_unlock(&A->mu);
    return rc;
}

void adapters_ref(Adapters *A, const LoraSet *set) {
    if (!set) return;
    pthread_mutex_lock(&A->mu);
    for (int i = 0; i < A->n_e; i++)
        if (A->e[i].set == set) A->e[i].refs++;
    pthread_mutex_unlock(&A->mu);
}

void adapters_release(Adapters *A, const LoraSet *set) {
    if (!set) return;
    pthread_mutex_lock(&A->mu);
    for (int i = 0; i < A->n_e; i++) {
        if (A->e[i].set != set) continue;
        if (--A->e[i].refs == 0) {
            lora_set_free(A->e[i].set);
            free(A->e[i].scales);
            A->e[i] = A->e[--A->n_e];
        }
        break;
    }
    pthread_mutex_unlock(&A->mu);
}
