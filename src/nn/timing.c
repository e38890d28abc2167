/* timing.c — one part of one layer run on a backend, timed or once to prepare it (model.h:
 * sn_model_time_layer, sn_model_prepare_layer), in the model's own buffers, the layer left as it
 * was. */
#include "model.h"

#include <string.h> // defines: memset

#include "sys.h" // defines: sn_now

int sn_layer_has_backend_choice(const struct sn_layer *l)
{
    return l->type == &sn_layer_conv2d || l->type == &sn_layer_maxpooling2d ||
           l->type == &sn_layer_dense || l->type == &sn_layer_globalaveragepooling2d;
}

static double time_layer(struct sn_model *m, int i, int n, enum sn_time_part part,
                         const struct sn_ops *ops, int min_reps);

double sn_model_time_layer(struct sn_model *m, int i, int n, enum sn_time_part part,
                           const struct sn_ops *ops)
{
    return time_layer(m, i, n, part, ops, 5);
}

void sn_model_prepare_layer(struct sn_model *m, int i, int n, enum sn_time_part part,
                            const struct sn_ops *ops)
{
    (void)time_layer(m, i, n, part, ops, 1);
}

static double time_layer(struct sn_model *m, int i, int n, enum sn_time_part part,
                         const struct sn_ops *ops, int min_reps)
{
    struct sn_layer *l = &m->layers[i];
    if (n > m->max_batch)
        n = m->max_batch;
    int first = sn_model_first_needed(m);
    if (part == SN_TIME_BWD_DATA && i <= first)
        return 0; /* backward computes no input gradient here */
    if (part == SN_TIME_BWD_WEIGHTS && (!l->trainable || l->n_params == 0))
        return 0;
    if (part == SN_TIME_FORWARD_BACKWARD && i < first)
        part = SN_TIME_FORWARD;
    /* random inputs and output gradients, in the buffers a step uses: dbuf[0] is dout, dbuf[1]
       din (or, for the first layer, whose input acts[0] is the caller's, the input) */
    struct sn_rng rng;
    sn_rng_seed(&rng, 12345 + (uint64_t)i);
    float *x = i == 0 ? m->dbuf[1] : m->acts[i];
    for (size_t k = 0; k < sn_shape_size(l->in) * (size_t)n; k++)
        x[k] = sn_rng_uniform(&rng);
    for (size_t k = 0; part != SN_TIME_FORWARD && k < sn_shape_size(l->out) * (size_t)n; k++)
        m->dbuf[0][k] = 2 * sn_rng_uniform(&rng) - 1; /* i >= first: dbuf has its size */
    float *din = part != SN_TIME_BWD_WEIGHTS && i > first ? m->dbuf[1] : NULL;
    /* every part on ops; a timing compares backends on NHWC, which all of them take, a
       preparation makes what the step will run, in the layouts planned */
    struct sn_step_ctx ctx = {.ops = ops, .ops_bwd_data = ops, .ops_bwd_weights = ops,
                              .nhwc = min_reps > 1, .no_weight_grads = part == SN_TIME_BWD_DATA,
                              .scratch = m->scratch, .training = 1};
    if (part != SN_TIME_FORWARD && part != SN_TIME_FORWARD_BACKWARD)
        l->type->forward(l, x, m->acts[i + 1], n, &ctx); /* the output backward reads */
    double best = 1e30, spent = 0;
    /* the best of at least 4 runs and 20 ms, after a first one (which creates oneDNN's
       primitives and faults the buffers in) */
    for (int rep = 0; rep < 13 && (rep < min_reps || (min_reps > 1 && spent < 0.02)); rep++) {
        double t0 = sn_now();
        if (part == SN_TIME_FORWARD || part == SN_TIME_FORWARD_BACKWARD)
            l->type->forward(l, x, m->acts[i + 1], n, &ctx);
        if (part != SN_TIME_FORWARD)
            l->type->backward(l, x, m->acts[i + 1], m->dbuf[0], din, n, &ctx);
        double t = sn_now() - t0;
        if (rep > 0) {
            best = t < best ? t : best;
            spent += t;
        }
    }
    /* what the runs accumulated is not a gradient (a frozen layer's were never touched, and
       stay untouched: its part of grads is never paged in) */
    if (l->n_params > 0 && l->g && l->trainable)
        memset(l->g, 0, l->n_params * sizeof(float));
    return best;
}

