/* step.c — see step.h. */
#include "step.h"

#include <math.h>   // defines: isfinite, isnan
#include <stdlib.h> // defines: calloc, free
#include <string.h> // defines: memset

#include "sys.h"   // defines: sn_now
#include "trace.h" // defines: sn_trace_clock, sn_trace_end

int sn_step_init(struct sn_step *s, struct sn_dist *d, struct sn_model *m, struct sn_optim *opt,
                 int max_rows, struct sn_err *err)
{
    memset(s, 0, sizeof *s);
    s->d = d;
    s->m = m;
    s->opt = opt;
    s->max_rows = max_rows;
    s->dlogits = calloc((size_t)max_rows * m->n_outputs + 1, sizeof(float));
    SN_RETURN_IF(s->dlogits == NULL, err, SN_ENOMEM, "out of memory");
    return sn_gradsync_init(&s->sync, d, m, 0, err);
}

void sn_step_free(struct sn_step *s)
{
    free(s->dlogits);
    s->dlogits = NULL;
}

int sn_step_run(struct sn_step *s, const struct sn_step_in *in, enum sn_step_sync mode,
                struct sn_step_out *out, struct sn_err *err)
{
    struct sn_model *m = s->m;
    struct sn_dist *d = s->d;
    SN_RETURN_IF(in->n > s->max_rows, err, SN_EINVAL, "step: %d rows, room for %d", in->n,
                 s->max_rows);
    double t_step = sn_trace_clock();
    int64_t step = (int64_t)in->step;
    struct sn_step_ctx ctx = {.ops = m->ops, .scratch = m->scratch, .training = 1,
                              .seed = in->seed, .step = in->step, .sample_ids = in->ids};
    sn_model_zero_grads(m);
    long long correct = 0;
    double stats[4] = {0, 0, 0, in->stop ? 1 : 0};
    if (in->n > 0) {
        const float *logits = sn_model_forward(m, in->x, in->n, &ctx);
        /* the bad rows of other ranks are not known here: scale by the global batch, which
           keeps 1 rank and N ranks identical when no file is bad */
        stats[0] = sn_loss(m->loss, logits, in->y, in->ok, in->n, m->n_outputs,
                           1.0f / (float)in->global_n, s->dlogits, &correct);
        sn_model_backward(m, in->x, s->dlogits, in->n, &ctx,
                          mode == SN_SYNC_OVERLAP ? sn_gradsync_ready : NULL, &s->sync);
        stats[1] = (double)correct;
        for (int i = 0; i < in->n; i++)
            stats[2] += in->ok ? in->ok[i] != 0 : 1;
    }
    int rc = SN_OK;
    s->t_backward = sn_now();
    double t_sync = sn_trace_clock();
    int collective = mode != SN_SYNC_NONE && d->world > 1;
    if (collective && mode == SN_SYNC_BLOCKING)
        rc = sn_dist_barrier(d, err);
    s->t_arrived = sn_now();
    if (rc == SN_OK && collective)
        rc = mode == SN_SYNC_BLOCKING ? sn_gradsync_blocking(&s->sync, err)
                                      : sn_gradsync_finish(&s->sync, err);
    s->t_exchanged = sn_now();
    if (rc == SN_OK && collective)
        rc = sn_dist_allreduce_sum_f64(d, stats, 4, err);
    sn_trace_end(SN_TRACE_SYNC, "gradient sync", step, t_sync);
    SN_FORWARD(rc);
    *out = (struct sn_step_out){.loss = stats[0], .correct = stats[1], .samples = stats[2],
                                .stop = stats[3] > 0};
    if (!isfinite(stats[0])) {
        sn_err_set(err, SN_ENUM,
                   "the loss became %s at epoch %d, step %llu\n---> HINT: lower learning_rate, "
                   "check the data (a Rescaling layer?)",
                   isnan(stats[0]) ? "NaN" : "infinite", in->epoch + 1,
                   (unsigned long long)in->step);
        err->collective = 1; /* every rank saw the same sum */
        sn_trace_end(SN_TRACE_STEP, "step", step, t_step);
        return SN_ENUM;
    }
    double t_opt = sn_trace_clock();
    sn_optim_step(s->opt, m);
    sn_trace_end(SN_TRACE_OPTIMIZER, "optimizer", step, t_opt);
    sn_trace_end(SN_TRACE_STEP, "step", step, t_step);
    return SN_OK;
}
