/* gradsync.c — see gradsync.h. */
#include "gradsync.h"

#include <stdlib.h> // defines: malloc, free
#include <string.h> // defines: memset, memcpy

#include "fixed.h" // defines: sn_fixed_magnitude, sn_fixed_scale, sn_fixed_add
#include "sys.h"   // defines: sn_now
#include "trace.h" // defines: sn_trace_on, sn_trace_record

int sn_gradsync_init(struct sn_gradsync *g, struct sn_dist *d, struct sn_model *m,
                     size_t bucket_bytes, int max_micro, struct sn_err *err)
{
    memset(g, 0, sizeof *g);
    g->d = d;
    g->m = m;
    size_t cap = (bucket_bytes ? bucket_bytes : (size_t)256 << 10) / sizeof(float);
    for (int i = m->n_layers - 1; i >= 0; i--) {
        const struct sn_layer *l = &m->layers[i];
        if (!l->trainable || l->n_params == 0)
            continue;
        int nb = g->n_buckets;
        /* grow the open bucket downwards when this layer's params sit right below it */
        if (nb > 0 && g->buckets[nb - 1].off == l->param_off + l->n_params &&
            g->buckets[nb - 1].len + l->n_params <= cap) {
            g->buckets[nb - 1].off = l->param_off;
            g->buckets[nb - 1].len += l->n_params;
            g->buckets[nb - 1].first_layer = i;
            continue;
        }
        SN_RETURN_IF(nb == SN_MAX_BUCKETS, err, SN_EINVAL,
                     "gradient exchange: more than %d buckets", SN_MAX_BUCKETS);
        g->buckets[nb].off = l->param_off;
        g->buckets[nb].len = l->n_params;
        g->buckets[nb].first_layer = i;
        g->buckets[nb].req = -1;
        g->n_buckets++;
    }
    for (int b = 0; b < g->n_buckets; b++) {
        g->buckets[b].at = g->n_sync;
        g->n_sync += g->buckets[b].len;
    }
    g->max_kept = max_micro > 1 ? max_micro - 1 : 0;
    g->kept = g->max_kept ? malloc((size_t)g->max_kept * g->n_sync * sizeof *g->kept) : NULL;
    g->acc = malloc((g->n_sync + 1) * sizeof *g->acc);
    if ((g->max_kept && !g->kept) || !g->acc) {
        sn_gradsync_free(g);
        return sn_err_set(err, SN_ENOMEM, "out of memory for the gradient exchange (%zu MB)",
                          ((size_t)g->max_kept * 4 + 8) * g->n_sync >> 20);
    }
    return SN_OK;
}

void sn_gradsync_free(struct sn_gradsync *g)
{
    free(g->kept);
    free(g->acc);
    g->kept = NULL;
    g->acc = NULL;
}

void sn_gradsync_begin(struct sn_gradsync *g, int terms, int local)
{
    g->terms = terms;
    g->local = local;
    g->n_kept = 0;
    g->next = 0;
    g->failed = 0;
    for (int b = 0; b < g->n_buckets; b++) {
        g->buckets[b].req = -1;
        g->buckets[b].phase = 0;
    }
}

void sn_gradsync_keep(struct sn_gradsync *g)
{
    if (g->n_kept >= g->max_kept)
        return; /* the step never keeps more than it planned: step.c checks the count */
    float *row = g->kept + (size_t)g->n_kept * g->n_sync;
    for (int b = 0; b < g->n_buckets; b++)
        memcpy(row + g->buckets[b].at, g->m->grads + g->buckets[b].off,
               g->buckets[b].len * sizeof *row);
    g->n_kept++;
}

/* The largest magnitude of this rank's terms in bucket b: its kept micro-batches', and the
 * last one's, still in grads. */
static int local_magnitude(const struct sn_gradsync *g, int b)
{
    int e = SN_FIXED_ZERO;
    for (int j = 0; j < g->n_kept; j++) {
        int ej = sn_fixed_magnitude(g->kept + (size_t)j * g->n_sync + g->buckets[b].at,
                                    g->buckets[b].len);
        e = ej > e ? ej : e;
    }
    if (g->local > 0) {
        int el = sn_fixed_magnitude(g->m->grads + g->buckets[b].off, g->buckets[b].len);
        e = el > e ? el : e;
    }
    return e;
}

/* Whether this step's sums cross ranks (not on one rank, nor for bench's rank 0 alone). */
static int collective(const struct sn_gradsync *g) { return g->d->world > 1 && !g->alone; }

/* The MAX of bucket b: this rank's magnitude, then every rank's. */
static void start_max(struct sn_gradsync *g, int b)
{
    g->buckets[b].t_start = sn_trace_clock();
    g->buckets[b].seen_done = 0;
    g->buckets[b].e = local_magnitude(g, b);
    g->buckets[b].phase = 1;
    if (collective(g) && !g->failed &&
        sn_dist_iallreduce_max_int(g->d, &g->buckets[b].e, 1, &g->buckets[b].req, &g->err) !=
            SN_OK)
        g->failed = 1;
}

/* The SUM of bucket b, once its MAX is complete: every term on the agreed grid, into acc. */
static void start_sum(struct sn_gradsync *g, int b)
{
    if (g->buckets[b].req >= 0) {
        if (sn_dist_wait(g->d, g->buckets[b].req, g->failed ? NULL : &g->err) != SN_OK)
            g->failed = 1;
        g->buckets[b].req = -1;
    }
    g->buckets[b].phase = 2;
    int e = g->buckets[b].e;
    if (e == SN_FIXED_NONFINITE || g->failed) {
        g->buckets[b].phase = 3; /* every rank sees the same e: none sums this bucket */
        return;
    }
    int s = sn_fixed_scale(e, g->terms);
    int64_t *acc = g->acc + g->buckets[b].at;
    size_t len = g->buckets[b].len;
    memset(acc, 0, len * sizeof *acc);
    for (int j = 0; j < g->n_kept; j++)
        sn_fixed_add(acc, g->kept + (size_t)j * g->n_sync + g->buckets[b].at, len, s);
    if (g->local > 0)
        sn_fixed_add(acc, g->m->grads + g->buckets[b].off, len, s);
    if (collective(g) &&
        sn_dist_iallreduce_sum_i64(g->d, acc, len, &g->buckets[b].req, &g->err) != SN_OK)
        g->failed = 1;
}

/* Starts, in the one order every rank follows, everything up to the MAX of bucket b: at each
 * bucket k the SUM of k - 1, then the MAX of k. */
static void advance_to(struct sn_gradsync *g, int b)
{
    for (; g->next <= b && g->next < g->n_buckets; g->next++) {
        if (g->next >= 1)
            start_sum(g, g->next - 1);
        start_max(g, g->next);
    }
}

/* Drives MPI's progress on the SUMs in flight (Open MPI does not progress a non-blocking
 * collective on its own), and marks in the trace those seen complete. */
static void poll(struct sn_gradsync *g)
{
    for (int b = 0; b < g->n_buckets; b++) {
        if (g->buckets[b].req < 0)
            continue;
        int done = sn_dist_test(g->d, g->buckets[b].req);
        if (__builtin_expect(sn_trace_on, 0) && done && g->buckets[b].phase == 2 &&
            !g->buckets[b].seen_done) {
            g->buckets[b].seen_done = 1;
            sn_trace_record(SN_TRACE_ALLREDUCE, "allreduce", NULL, b, g->buckets[b].t_start,
                            sn_now());
        }
    }
}

void sn_gradsync_ready(void *user, int layer)
{
    struct sn_gradsync *g = user;
    if (collective(g))
        poll(g);
    for (int b = g->next; b < g->n_buckets; b++)
        if (g->buckets[b].first_layer == layer)
            advance_to(g, b);
}

/* Waits for the SUMs and writes every bucket's sum into grads. */
static int complete(struct sn_gradsync *g, struct sn_err *err)
{
    int rc = SN_OK, nonfinite = 0;
    if (g->failed) {
        *err = g->err;
        rc = err->code;
    }
    for (int b = 0; b < g->n_buckets; b++) {
        if (g->buckets[b].req >= 0) {
            int wrc = sn_dist_wait(g->d, g->buckets[b].req, rc == SN_OK ? err : NULL);
            if (rc == SN_OK)
                rc = wrc;
            g->buckets[b].req = -1;
        }
        if (__builtin_expect(sn_trace_on, 0) && !g->buckets[b].seen_done)
            sn_trace_record(SN_TRACE_ALLREDUCE, "allreduce", NULL, b, g->buckets[b].t_start,
                            sn_now());
        if (g->buckets[b].e == SN_FIXED_NONFINITE)
            nonfinite = 1;
        if (rc == SN_OK && g->buckets[b].phase == 2)
            sn_fixed_to_float(g->acc + g->buckets[b].at, g->m->grads + g->buckets[b].off,
                              g->buckets[b].len, sn_fixed_scale(g->buckets[b].e, g->terms));
        g->buckets[b].phase = 3;
    }
    if (rc == SN_OK && nonfinite) {
        rc = sn_err_set(err, SN_ENUM, "a gradient became NaN or infinite");
        err->collective = 1; /* every rank agreed on the same magnitudes */
    }
    return rc;
}

int sn_gradsync_finish(struct sn_gradsync *g, struct sn_err *err)
{
    double t0 = sn_now();
    /* what backward did not start (a rank without micro-batches ran none) starts now, in the
       same order as everywhere: MPI matches collectives by the order they are started in */
    advance_to(g, g->n_buckets - 1);
    if (g->n_buckets > 0 && g->buckets[g->n_buckets - 1].phase == 1)
        start_sum(g, g->n_buckets - 1);
    int rc = complete(g, err);
    g->t_wait += sn_now() - t0;
    return rc;
}

int sn_gradsync_blocking(struct sn_gradsync *g, int alone, struct sn_err *err)
{
    g->alone = alone;
    for (int b = 0; b < g->n_buckets; b++) {
        double t0 = sn_trace_clock();
        start_max(g, b);
        start_sum(g, b);
        if (g->buckets[b].req >= 0) {
            if (sn_dist_wait(g->d, g->buckets[b].req, g->failed ? NULL : &g->err) != SN_OK)
                g->failed = 1;
            g->buckets[b].req = -1;
        }
        sn_trace_end(SN_TRACE_ALLREDUCE, "allreduce (blocking)", b, t0);
        g->buckets[b].seen_done = 1;
    }
    g->next = g->n_buckets;
    int rc = complete(g, err);
    g->alone = 0;
    return rc;
}
