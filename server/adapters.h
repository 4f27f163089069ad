/* The server's LoRA adapters: the list preloaded with --lora / --lora-scaled (ids 0..n-1 in
 * flag order, as llama-server numbers them), the global scales (POST /lora-adapters), and the
 * adapter sets the slots run with. A set is a vector of one scale per preloaded adapter; equal
 * vectors share one LoraSet, so the scheduler tells sets apart by pointer: a slot's KV cache is
 * reused only under the very set it was computed with, and one batched decode pass holds slots
 * of one set (model/forward.c requires it). The all-zero vector is the base model: NULL.
 * Sets are reference counted (a task holds one while it runs, a slot one for its cached KV) and
 * freed when unused. Thread-safe. */
#ifndef PHI_SERVER_ADAPTERS_H
#define PHI_SERVER_ADAPTERS_H

#include <stddef.h>

#include "model/lora.h"
#include "phi.h"
#include "server/sbuf.h"

#define ADAPTERS_MAX 64 /* preloaded adapters at most */

typedef struct Adapters Adapters;

Adapters *adapters_new(const phi_model *pm);
void adapters_free(Adapters *A); /* every set must have been released */
/* Preload (at start): an adapter with its global scale. 0, or -1 with one line. */
int adapters_load(Adapters *A, const char *path, float scale, char *err, size_t errlen);
int adapters_count(const Adapters *A);
/* The global scales (adapters_count floats) / set them (POST /lora-adapters). */
void adapters_get_scales(Adapters *A, float *scales);
void adapters_set_scales(Adapters *A, const float *scales);
/* [{"id":0,"path":"...","scale":1.0}, ...] (GET /lora-adapters). */
void adapters_json(Adapters *A, Sb *b);
/* The set for these scales, with one reference taken (*out NULL: the base). 0, or -1 (out of
 * memory). */
int adapters_acquire(Adapters *A, const float *scales, const LoraSet **out);
/* Another reference to a set already held (NULL: nothing). */
void adapters_ref(Adapters *A, const LoraSet *set);
void adapters_release(Adapters *A, const LoraSet *set);

#endif
