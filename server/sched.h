/* The slot scheduler: N slots, each one sequence with its own KV cache (State) on one shared
 * thread pool, advanced by one scheduler thread. Each step evaluates one prompt chunk of at
 * most SCHED_CHUNK tokens for one slot that is prefilling (round robin) and then one decode
 * step for every decoding slot together (model_forward_spans; with --lookup, greedy slots add
 * prompt-lookup drafts to the pass's spare rows), so a new prompt never freezes the streams
 * already running. A slot keeps its KV cache after its request: a request goes to
 * the free slot whose cached tokens share the longest prefix with its prompt and evaluates only
 * the rest; a cache computed under another LoRA adapter set counts as empty. Slots with different
 * adapter sets decode in separate passes of the same step (one pass per set).
 * Tasks wait in a bounded queue when every slot is busy. */
#ifndef PHI_SERVER_SCHED_H
#define PHI_SERVER_SCHED_H

#include <pthread.h>
#include <stdint.h>

#include "model/model.h"
#include "server/adapters.h"
#include "server/sbuf.h"

#define SCHED_CHUNK 64 /* prompt tokens per step: one fast-path batch (model/forward.c MAX_BATCH) */

/* FINISH_ERROR: the model produced non-finite logits; FINISH_ABORT: a failed forward pass or a
 * shutdown. Both end a request with a server error, never as a normal "length". */
enum { FINISH_NONE = 0, FINISH_STOP, FINISH_LENGTH, FINISH_ABORT, FINISH_ERROR };

typedef struct {
    /* input: set before sched_submit, read-only afterwards */
    const int *ids;
    int n_ids;
    int n_predict;          /* at most this many tokens (fits in the slot's context) */
    float temperature, top_p, min_p, presence_penalty, frequency_penalty, repeat_penalty;
    int top_k, ignore_eos;
    uint64_t seed;
    char *const *stop;      /* stop strings: generation ends before the first occurrence */
    int n_stop;
    const LoraSet *lora;    /* the adapter set (server/adapters.h; NULL: the base), a reference the
                             * submitter holds until the task is done */
    /* output, under the scheduler's lock (sched_lock) */
    Sb text;                /* generated text not yet taken by the connection */
    int done, finish;       /* FINISH_*; final once done */
    int n_gen, n_reused;    /* tokens generated; prompt tokens found in the slot's cache */
    int n_drafted, n_accepted; /* prompt-lookup drafts checked and kept */
    double t_first;         /* when the prompt was evaluated (now_seconds) */
    int slot;
    /* bookkeeping */
    int queued, cancelled, released;
    pthread_cond_t cv;      /* signalled on new text and when done */
} Task;

typedef struct Sched Sched;

/* n_ctx: positions per slot; ad: the adapters the tasks' sets come from (may be NULL without
 * adapters). NULL with err on failure. */
/* state_flags: the slots' KV cache types (model.h STATE_CACHE_K / STATE_CACHE_V; 0: F16). draft_max:
 * prompt-lookup drafts per pass for greedy requests (0: off; model/lookup.h). */
Sched *sched_create(const Model *m, Adapters *ad, int n_slots, int n_ctx, int n_threads, int queue_cap, int state_flags,
                    int draft_max, char *err, size_t errlen);
/* Stops the thread; tasks still running end with FINISH_ABORT (their connections must have
 * released them before sched_free). */
void sched_stop(Sched *s);
void sched_free(Sched *s);
int sched_n_ctx(const Sched *s);
int sched_n_slots(const Sched *s);

/* Task lifecycle (init/destroy the cv with task_init/task_destroy). */
void task_init(Task *t);
void task_destroy(Task *t);
/* Queue a task: 0, or -1 when the queue is full (or the scheduler has stopped). */
int sched_submit(Sched *s, Task *t);
/* The caller gives the task up (client gone): returns once the scheduler no longer uses it. */
void sched_cancel(Sched *s, Task *t);

void sched_lock(Sched *s);
void sched_unlock(Sched *s);
/* With the lock held: wait for the task's signal or ms milliseconds. */
void sched_wait(Sched *s, Task *t, int ms);
/* Wait up to seconds for every slot and the queue to be empty; 1 if they are. */
int sched_drain(Sched *s, double seconds);

#endif
