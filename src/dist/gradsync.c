/* gradsync.c — see gradsync.h. */
#include "gradsync.h"

#include <string.h> // defines: memset

#include "sys.h"   // defines: sn_now
#include "trace.h" // defines: sn_trace_on, sn_trace_record

int sn_gradsync_init(struct sn_gradsync *g, struct sn_dist *d, struct sn_model *m,
                     size_t bucket_bytes, struct sn_err *err)
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
    return SN_OK;
}

void sn_gradsync_ready(void *user, int layer)
{
    struct sn_gradsync *g = user;
    if (g->d->world == 1 || g->failed)
        return;
    for (int b = 0; b < g->n_buckets; b++) {
        if (g->buckets[b].req >= 0) {
            int done = sn_dist_test(g->d, g->buckets[b].req); /* drive progress */
            if (__builtin_expect(sn_trace_on, 0) && done && !g->buckets[b].seen_done) {
                g->buckets[b].seen_done = 1;
                sn_trace_record(SN_TRACE_ALLREDUCE, "allreduce", NULL, b, g->buckets[b].t_start,
                                sn_now());
            }
        } else if (g->buckets[b].first_layer == layer) {
            g->buckets[b].t_start = sn_trace_clock();
            g->buckets[b].seen_done = 0;
            if (sn_dist_iallreduce_sum(g->d, g->m->grads + g->buckets[b].off, g->buckets[b].len,
                                       &g->buckets[b].req, &g->err) != SN_OK)
                g->failed = 1;
        }
    }
}

int sn_gradsync_finish(struct sn_gradsync *g, struct sn_err *err)
{
    if (g->d->world == 1)
        return SN_OK;
    double t0 = sn_now();
    int rc = SN_OK;
    if (g->failed) {
        *err = g->err;
        rc = err->code;
    }
    /* Buckets backward did not start (a rank whose slice of the batch was empty ran no backward;
       a layer the callback never saw) start now, non-blocking and in bucket order: MPI matches
       collectives by order, and a blocking allreduce never matches another rank's non-blocking
       one, so every rank must start the same buckets the same way in the same order. */
    for (int b = 0; b < g->n_buckets && rc == SN_OK; b++)
        if (g->buckets[b].req < 0) {
            g->buckets[b].t_start = sn_trace_clock();
            g->buckets[b].seen_done = 0;
            rc = sn_dist_iallreduce_sum(g->d, g->m->grads + g->buckets[b].off, g->buckets[b].len,
                                        &g->buckets[b].req, err);
        }
    for (int b = 0; b < g->n_buckets; b++) {
        if (g->buckets[b].req < 0)
            continue;
        int wrc = sn_dist_wait(g->d, g->buckets[b].req, rc == SN_OK ? err : NULL);
        if (rc == SN_OK)
            rc = wrc;
        g->buckets[b].req = -1;
        if (__builtin_expect(sn_trace_on, 0) && !g->buckets[b].seen_done)
            sn_trace_record(SN_TRACE_ALLREDUCE, "allreduce", NULL, b, g->buckets[b].t_start,
                            sn_now());
    }
    g->failed = 0;
    g->t_wait += sn_now() - t0;
    return rc;
}

int sn_gradsync_blocking(struct sn_gradsync *g, struct sn_err *err)
{
    for (int b = 0; b < g->n_buckets && g->d->world > 1; b++) {
        double t0 = sn_trace_clock();
        SN_FORWARD(sn_dist_allreduce_sum(g->d, g->m->grads + g->buckets[b].off, g->buckets[b].len,
                                         err));
        sn_trace_end(SN_TRACE_ALLREDUCE, "allreduce (blocking)", b, t0);
    }
    return SN_OK;
}
