/* The sampler on crafted logits; every expected value is worked out by hand in the comments.
 * Order and semantics are llama.cpp's (model/sampler.c): penalties -> top-k -> top-p -> min-p ->
 * temperature. Distributions are checked by drawing N times with a fixed seed: the observed
 * share of each id must be within 0.015 of the hand-computed probability (about 4 standard
 * deviations at N = 20000). */
#include <math.h>
#include <string.h>

#include "model/sampler.h"
#include "tests/harness.h"

#define N_DRAWS 20000

/* share of each of the 4 ids over N_DRAWS draws */
static void shares(Sampler *s, const float *logits, double *out) {
    int cnt[4] = {0};
    for (int i = 0; i < N_DRAWS; i++) {
        int id = sampler_sample(s, logits);
        if (id >= 0 && id < 4) cnt[id]++;
    }
    for (int i = 0; i < 4; i++) out[i] = (double)cnt[i] / N_DRAWS;
}

static void check_shares(const char *name, const double *got, const double *want) {
    int ok = 1;
    for (int i = 0; i < 4; i++) ok &= fabs(got[i] - want[i]) <= 0.015;
    t_check(ok, name, "got %.4f %.4f %.4f %.4f, want %.4f %.4f %.4f %.4f", got[0], got[1], got[2], got[3],
            want[0], want[1], want[2], want[3]);
}

int main(void) {
    Sampler s;
    /* probabilities 0.5, 0.3, 0.15, 0.05 at temperature 1 */
    const float pl[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    double got[4];

    /* penalties: logits 2, -2, 1, 0.5; history 0, 1, 0; repeat 2, frequency 0.5, presence 0.25.
     * id 0 (seen twice): 2 / 2 - 2 x 0.5 - 0.25 = -0.25; id 1 (once): -2 x 2 - 0.5 - 0.25 = -4.75;
     * ids 2 and 3 unchanged. */
    sampler_init(&s, 4, 1, 0, 1, 1);
    sampler_set_penalties(&s, 3, 2, 0.5f, 0.25f);
    sampler_accept(&s, 0), sampler_accept(&s, 1), sampler_accept(&s, 0);
    float l[4] = {2, -2, 1, 0.5f};
    sampler_apply_penalties(&s, l, 4);
    t_check(l[0] == -0.25f && l[1] == -4.75f && l[2] == 1 && l[3] == 0.5f, "penalties: repeat, frequency, presence",
            "%g %g %g %g", l[0], l[1], l[2], l[3]);
    /* last-n 2 keeps only the last two ids (1, 0): id 0 seen once: 2 / 2 - 0.5 - 0.25 = 0.25 */
    sampler_set_penalties(&s, 2, 2, 0.5f, 0.25f);
    sampler_accept(&s, 0), sampler_accept(&s, 1), sampler_accept(&s, 0);
    float l2[4] = {2, -2, 1, 0.5f};
    sampler_apply_penalties(&s, l2, 4);
    t_check(l2[0] == 0.25f && l2[1] == -4.75f, "penalties: only the last N ids", "%g %g", l2[0], l2[1]);
    /* reset forgets the history: nothing changes */
    sampler_reset(&s);
    float l3[4] = {2, -2, 1, 0.5f};
    sampler_apply_penalties(&s, l3, 4);
    t_check(l3[0] == 2 && l3[1] == -2, "penalties: reset", "%g %g", l3[0], l3[1]);
    sampler_free(&s);

    /* greedy after the penalty: logits 3, 2.9; id 0 seen, repeat 2: 3 / 2 = 1.5 < 2.9 -> id 1 */
    sampler_init(&s, 2, 0, 0, 1, 1);
    sampler_set_penalties(&s, 64, 2, 0, 0);
    float g[2] = {3, 2.9f};
    t_check(sampler_sample(&s, g) == 0, "greedy without history", "");
    sampler_accept(&s, 0);
    t_check(sampler_sample(&s, g) == 1, "greedy with the repeat penalty", "");
    t_check(g[0] == 3, "the caller's logits are left alone", "%g", g[0]);
    sampler_free(&s);

    /* ids at or above n_valid are never chosen: logit 100 at id 4 with n_valid 4 -> id 0 (2) */
    float big[5] = {2, 1, 0, -1, 100};
    sampler_init(&s, 4, 0, 0, 1, 1);
    t_check(sampler_sample(&s, big) == 0, "greedy: ids past n_valid excluded", "");
    s.temp = 1;
    int any4 = 0;
    for (int i = 0; i < 1000; i++) any4 |= sampler_sample(&s, big) == 4;
    t_check(!any4, "sampled: ids past n_valid excluded", "");
    sampler_free(&s);

    /* plain temperature 1: the probabilities themselves */
    sampler_init(&s, 4, 1, 0, 1, 7);
    shares(&s, pl, got);
    check_shares("temperature 1", got, (double[]){0.5, 0.3, 0.15, 0.05});
    sampler_free(&s);

    /* top-k 2: 0.5 / 0.8 = 0.625, 0.3 / 0.8 = 0.375 */
    sampler_init(&s, 4, 1, 2, 1, 7);
    shares(&s, pl, got);
    check_shares("top-k 2", got, (double[]){0.625, 0.375, 0, 0});
    sampler_free(&s);

    /* top-p 0.85: cumulative 0.5, 0.8, 0.95 -> three kept: 0.5/0.95, 0.3/0.95, 0.15/0.95 */
    sampler_init(&s, 4, 1, 0, 0.85f, 7);
    shares(&s, pl, got);
    check_shares("top-p 0.85", got, (double[]){0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0});
    sampler_free(&s);

    /* top-p 0 keeps the most likely token alone (llama.cpp; OpenAI clients send top_p 0) */
    sampler_init(&s, 4, 1, 0, 0, 7);
    shares(&s, pl, got);
    check_shares("top-p 0", got, (double[]){1, 0, 0, 0});
    sampler_free(&s);

    /* min-p 0.2: floor 0.2 x 0.5 = 0.1 -> 0.05 dropped: 0.5/0.95, 0.3/0.95, 0.15/0.95 */
    sampler_init(&s, 4, 1, 0, 1, 7);
    sampler_set_min_p(&s, 0.2f);
    shares(&s, pl, got);
    check_shares("min-p 0.2", got, (double[]){0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0});
    /* min-p 0.7: floor 0.35 -> only id 0 */
    sampler_set_min_p(&s, 0.7f);
    shares(&s, pl, got);
    check_shares("min-p 0.7", got, (double[]){1, 0, 0, 0});
    sampler_free(&s);

    /* order: min-p sees temperature-1 odds, temperature comes last. min-p 0.5, temp 0.5: floor
     * 0.25 keeps 0.5 and 0.3; temperature 0.5 squares them: 0.25 and 0.09 -> 0.25/0.34, 0.09/0.34.
     * (Temperature first would give 0.685, 0.247, ...: min-p would then keep only id 0.) */
    sampler_init(&s, 4, 0.5f, 0, 1, 7);
    sampler_set_min_p(&s, 0.5f);
    shares(&s, pl, got);
    check_shares("min-p before temperature", got, (double[]){0.25 / 0.34, 0.09 / 0.34, 0, 0});
    sampler_free(&s);

    /* top-k then top-p: top-k 3 renormalizes to 0.5/0.95 = 0.526, 0.316, 0.158; top-p 0.8:
     * cumulative 0.526, 0.842 -> two kept: 0.625, 0.375 */
    sampler_init(&s, 4, 1, 3, 0.8f, 7);
    shares(&s, pl, got);
    check_shares("top-k 3 then top-p 0.8", got, (double[]){0.625, 0.375, 0, 0});
    sampler_free(&s);

    /* presence penalty on sampling: presence ln(0.5/0.15) ~ 1.204 on id 0 makes ids 0 and 2
     * both 0.15: shares 0.15, 0.3, 0.15, 0.05 over 0.65 */
    sampler_init(&s, 4, 1, 0, 1, 7);
    sampler_set_penalties(&s, 8, 1, 0, logf(0.5f / 0.15f));
    sampler_accept(&s, 0);
    shares(&s, pl, got);
    check_shares("presence penalty", got, (double[]){0.15 / 0.65, 0.3 / 0.65, 0.15 / 0.65, 0.05 / 0.65});
    sampler_free(&s);

    /* the same seed draws the same ids */
    Sampler a, b;
    sampler_init(&a, 4, 1, 0, 1, 42);
    sampler_init(&b, 4, 1, 0, 1, 42);
    int same = 1;
    for (int i = 0; i < 100; i++) same &= sampler_sample(&a, pl) == sampler_sample(&b, pl);
    t_check(same, "same seed, same draws", "");
    sampler_free(&a);
    sampler_free(&b);
    return t_done();
}
