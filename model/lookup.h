/* Prompt-lookup drafting (speculative decoding without a second model): the tokens that followed
 * an earlier occurrence of the sequence's last n-gram are proposed as the next ones, and one
 * batched forward pass verifies them (model/generate.c's gen_loop_ex). llama.cpp has this as the
 * separate program llama-lookup; phi's is part of generation (--lookup, --draft-max). */
#ifndef PHI_LOOKUP_H
#define PHI_LOOKUP_H

/* n-gram sizes searched, longest first (llama.cpp's lookup uses 1..4 too). */
enum { LOOKUP_NGRAM_MIN = 1, LOOKUP_NGRAM_MAX = 4 };
/* Drafts per pass: the verification batch [last token, drafts] must stay within one activation
 * tile (8 rows) for its logits to be those of one-token decoding bit for bit
 * (kernels/kernels.h, matmul_batch_exact). */
enum { LOOKUP_DRAFT_MAX = 7, LOOKUP_DRAFT_DEFAULT = 5 };

/* The longest suffix of hist[0..n) of LOOKUP_NGRAM_MAX..LOOKUP_NGRAM_MIN tokens that occurred
 * earlier (the latest such occurrence): up to max tokens that followed it go to out. Returns
 * their number (0: no match). */
int lookup_draft(const int *hist, int n, int *out, int max);

/* The adaptive draft length: drafting costs a wider pass when nothing is accepted, so the
 * length starts at 1, doubles (up to max) after a pass that accepted every draft, becomes the
 * accepted count + 1 after one that accepted some, and after passes that accepted nothing it is 1
 * again and drafting pauses for 1, 3, 7, ... up to LOOKUP_PAUSE_MAX steps (the cost of a wasted
 * pass spread over them). */
enum { LOOKUP_PAUSE_MAX = 32 };
typedef struct {
    int max;   /* the user's --draft-max (0: lookup off) */
    int cur;   /* drafts to propose next time, 1..max */
    int pause; /* steps left without drafting */
    int miss;  /* passes in a row that accepted nothing */
} LookupCtl;

void lookup_ctl_init(LookupCtl *c, int draft_max);
/* How many drafts to ask for this step (0: none). */
int lookup_ctl_want(LookupCtl *c);
/* After a pass that verified k drafts, of which a were accepted. */
void lookup_ctl_update(LookupCtl *c, int k, int a);

#endif
