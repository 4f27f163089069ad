#include "model/lookup.h"

int lookup_draft(const int *hist, int n, int *out, int max) {
    if (max < 1) return 0;
    for (int g = LOOKUP_NGRAM_MAX; g >= LOOKUP_NGRAM_MIN; g--) {
        if (g >= n) continue;
        const int *suf = hist + n - g;
        /* the latest earlier occurrence hist[j..j+g) with at least one token after it */
        for (int j = n - g - 1; j >= 0; j--) {
            int k = 0;
            while (k < g && hist[j + k] == suf[k]) k++;
            if (k < g) continue;
            int have = n - (j + g), m = have < max ? have : max;
            for (int i = 0; i < m; i++) out[i] = hist[j + g + i];
            return m;
        }
    }
    return 0;
}

void lookup_ctl_init(LookupCtl *c, int draft_max) {
    if (draft_max < 0) draft_max = 0;
    if (draft_max > LOOKUP_DRAFT_MAX) draft_max = LOOKUP_DRAFT_MAX;
    /* one draft first: a wasted pass of 2 rows costs little (x1.2 a step on the tiny model), one
     * of 8 up to x3; accepted drafts double the length on the next pass */
    *c = (LookupCtl){draft_max, draft_max ? 1 : 0, 0, 0};
}

int lookup_ctl_want(LookupCtl *c) {
    if (c->max < 1) return 0;
    if (c->pause > 0) {
        c->pause--;
        return 0;
    }
    return c->cur;
}

void lookup_ctl_update(LookupCtl *c, int k, int a) {
    if (k < 1) return;
    if (a == 0) {
        /* nothing accepted: one draft next time, after a pause that doubles with each miss */
        c->miss++;
        c->cur = 1;
        int p = (1 << (c->miss < 6 ? c->miss : 6)) - 1;
        c->pause = p < LOOKUP_PAUSE_MAX ? p : LOOKUP_PAUSE_MAX;
        return;
    }
    c->miss = 0;
    /* all accepted: longer drafts pay; some: as many as were accepted, and one more */
    c->cur = a == k ? 2 * k : a + 1;
    if (c->cur > c->max) c->cur = c->max;
}
