/* step.c — see step.h. */
#include "step.h"

#include <math.h>   // defines: isfinite, isnan
#include <stdlib.h> // defines: calloc, free
#include <string.h> // defines: memset, memcpy

#include "loader.h" // defines: sn_shard_slice
#include "sys.h"    // defines: sn_now
#include "trace.h"  // defines: sn_trace_clock, sn_trace_end

int sn_step_init(struct sn_step *s, struct sn_dist *d, struct sn_model *m, struct sn_optim *opt,
                 int micro, int max_rows, struct sn_err *err)
{
    memset(s, 0, sizeof *s);
    s->d = d;
    s->m = m;
    s->opt = opt;
    s->micro = micro > 0 ? micro : 1;
    SN_RETURN_IF(s->micro > m->max_batch, err, SN_EINVAL,
                 "step: micro-batches of %d samples, the network holds %d", s->micro,
                 m->max_batch);
    s->max_local = (max_rows + s->micro - 1) / s->micro;
    if (s->max_local < 1)
        s->max_local = 1;
    size_t world = (size_t)d->world, rec = (size_t)s->max_local * 3 + 1;
    size_t block = (size_t)s->max_local * m->n_state;
    s->dlogits = calloc((size_t)s->micro * m->n_outputs + 1, sizeof(float));
    s->mine = calloc(rec, sizeof *s->mine);
    s->sums = calloc(world * rec, sizeof *s->sums);
    s->counts = calloc(world, sizeof *s->counts);
    if (m->n_state > 0) {
        s->bmine = calloc(block, sizeof *s->bmine);
        s->bstate = calloc(world * block, sizeof *s->bstate);
    }
    SN_RETURN_IF(!s->dlogits || !s->mine || !s->sums || !s->counts ||
                     (m->n_state > 0 && (!s->bmine || !s->bstate)),
                 err, SN_ENOMEM, "out of memory for the step");
    return sn_gradsync_init(&s->sync, d, m, 0, s->max_local, err);
}

void sn_step_free(struct sn_step *s)
{
    sn_gradsync_free(&s->sync);
    free(s->dlogits);
    free(s->mine);
    free(s->sums);
    free(s->counts);
    free(s->bmine);
    free(s->bstate);
    memset(s, 0, sizeof *s);
}

/* This rank's micro-batches: forward, loss, backward, each one's gradients kept but the last's,
 * whose backward starts the exchange (overlap). Their sums go to this rank's record of sums. */
static void run_micro_batches(struct sn_step *s, const struct sn_step_in *in, int local,
                              int overlap, double *mine)
{
    struct sn_model *m = s->m;
    const size_t sample = sn_shape_size(m->input);
    struct sn_step_ctx ctx = {.ops = m->ops, .scratch = m->scratch, .training = 1,
                              .seed = in->seed, .step = in->step};
    for (int j = 0; j < local; j++) {
        int row = j * s->micro, rows = in->n - row < s->micro ? in->n - row : s->micro;
        sn_model_zero_grads(m);
        ctx.sample_ids = in->ids + row;
        ctx.batch_state = s->bmine ? s->bmine + (size_t)j * m->n_state : NULL;
        const float *x = in->x + (size_t)row * sample;
        const uint8_t *ok = in->ok ? in->ok + row : NULL;
        const float *logits = sn_model_forward(m, x, rows, &ctx);
        long long correct = 0;
        /* the bad rows of other ranks are not known here: scale by the global batch, which
           keeps 1 rank and N ranks identical when no file is bad */
        mine[3 * j] = sn_loss(m->loss, m->label_smoothing, logits, in->y + row, ok, rows,
                              m->n_outputs, 1.0f / (float)in->global_n, s->dlogits, &correct);
        mine[3 * j + 1] = (double)correct;
        for (int i = 0; i < rows; i++)
            mine[3 * j + 2] += ok ? ok[i] != 0 : 1;
        int last = j == local - 1;
        sn_model_backward(m, x, s->dlogits, rows, &ctx,
                          last && overlap ? sn_gradsync_ready : NULL, &s->sync);
        if (!last)
            sn_gradsync_keep(&s->sync);
    }
}

/* Every micro-batch's sums and statistics, taken in micro-batch order: ranks hold contiguous
 * runs in rank order, so rank 0's records, then rank 1's, ... are the micro-batches in order. */
static void take_in_order(struct sn_step *s, int ranks, struct sn_step_out *out)
{
    struct sn_model *m = s->m;
    size_t rec = (size_t)s->max_local * 3 + 1;
    *out = (struct sn_step_out){0};
    for (int r = 0; r < ranks; r++) {
        const double *sums = s->sums + (size_t)r * rec;
        for (int j = 0; j < s->counts[r]; j++) {
            out->loss += sums[3 * j];
            out->correct += sums[3 * j + 1];
            out->samples += sums[3 * j + 2];
            if (s->bstate)
                sn_model_move_state(m, s->bstate + ((size_t)r * s->max_local + j) *
                                                       m->n_state);
        }
        out->stop |= sums[rec - 1] != 0;
    }
}

int sn_step_run(struct sn_step *s, const struct sn_step_in *in, enum sn_step_sync mode,
                struct sn_step_out *out, struct sn_err *err)
{
    struct sn_model *m = s->m;
    struct sn_dist *d = s->d;
    int world = mode == SN_SYNC_NONE ? 1 : d->world;
    int terms = (in->global_n + s->micro - 1) / s->micro;
    int local = (in->n + s->micro - 1) / s->micro;
    SN_RETURN_IF(local > s->max_local, err, SN_EINVAL, "step: %d rows, room for %d micro-batches "
                 "of %d", in->n, s->max_local, s->micro);
    double t_step = sn_trace_clock();
    int64_t step = (int64_t)in->step;
    size_t rec = (size_t)s->max_local * 3 + 1, block = (size_t)s->max_local * m->n_state;
    double *mine = s->mine;
    memset(mine, 0, rec * sizeof *mine);
    mine[rec - 1] = in->stop ? 1 : 0;
    sn_gradsync_begin(&s->sync, mode == SN_SYNC_NONE ? local : terms, local);
    run_micro_batches(s, in, local, mode == SN_SYNC_OVERLAP, mine);
    int rc = SN_OK;
    s->t_backward = sn_now();
    double t_sync = sn_trace_clock();
    int collective = world > 1;
    if (collective && mode == SN_SYNC_BLOCKING)
        rc = sn_dist_barrier(d, err);
    s->t_arrived = sn_now();
    if (rc == SN_OK)
        rc = mode == SN_SYNC_OVERLAP ? sn_gradsync_finish(&s->sync, err)
                                     : sn_gradsync_blocking(&s->sync, !collective, err);
    s->t_exchanged = sn_now();
    /* every rank's records (gathered, or this rank's alone), and how many micro-batches each
       holds: all ranks take the same records in the same order */
    if (!collective) {
        s->counts[0] = local;
        memcpy(s->sums, mine, rec * sizeof *mine);
        if (s->bmine)
            memcpy(s->bstate, s->bmine, block * sizeof *s->bstate);
    } else if (rc == SN_OK || rc == SN_ENUM) {
        for (int r = 0; r < world; r++) {
            int first, rows;
            sn_shard_slice(in->global_n, s->micro, r, world, &first, &rows);
            s->counts[r] = (rows + s->micro - 1) / s->micro;
        }
        int grc = sn_dist_allgather(d, mine, s->sums, rec * sizeof *mine, err);
        if (grc == SN_OK && s->bmine)
            grc = sn_dist_allgather(d, s->bmine, s->bstate, block * sizeof *s->bstate, err);
        if (grc != SN_OK)
            rc = grc;
    }
    sn_trace_end(SN_TRACE_SYNC, "gradient sync", step, t_sync);
    if (rc != SN_OK && rc != SN_ENUM)
        return rc;
    take_in_order(s, world, out);
    if (rc == SN_ENUM || !isfinite(out->loss)) {
        /* the loss when it is the cause; else a gradient that overflowed with a finite loss */
        int loss = !isfinite(out->loss);
        sn_err_set(err, SN_ENUM,
                   "the %s became %s at epoch %d, step %llu\n---> HINT: lower learning_rate, "
                   "check the data (a Rescaling layer?)",
                   loss ? "loss" : "gradient",
                   !loss ? "NaN or infinite" : isnan(out->loss) ? "NaN" : "infinite",
                   in->epoch + 1, (unsigned long long)in->step);
        err->collective = 1; /* every rank saw the same sums */
        sn_trace_end(SN_TRACE_STEP, "step", step, t_step);
        return SN_ENUM;
    }
    double t_opt = sn_trace_clock();
    sn_optim_step(s->opt, m);
    sn_trace_end(SN_TRACE_OPTIMIZER, "optimizer", step, t_opt);
    sn_trace_end(SN_TRACE_STEP, "step", step, t_step);
    return SN_OK;
}
