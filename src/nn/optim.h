/* optim.h — optimizers and learning-rate schedules, with Keras's defaults and update rules.
 *
 * An optimizer is a flat loop over the model's trainable ranges of params/grads; its moments live
 * in one buffer (n_slots floats per parameter) that checkpoints save whole. */
#ifndef SN_OPTIM_H
#define SN_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "model.h"

enum sn_opt_kind { SN_OPT_SGD = 0, SN_OPT_RMSPROP, SN_OPT_ADAM };
enum sn_sched_kind { SN_SCHED_CONSTANT = 0, SN_SCHED_STEP, SN_SCHED_EXPONENTIAL, SN_SCHED_COSINE };

struct sn_optim_conf {
    enum sn_opt_kind kind;
    double lr;                 /* learning_rate (Keras: sgd 0.01, rmsprop 0.001, adam 0.001) */
    double momentum;           /* sgd momentum (0) */
    int nesterov;              /* sgd nesterov (false) */
    double rho;                /* rmsprop rho (0.9) */
    double beta_1, beta_2;     /* adam (0.9, 0.999) */
    double epsilon;            /* rmsprop/adam epsilon (1e-7) */
    enum sn_sched_kind sched;  /* lr_schedule */
    int decay_steps;           /* step: drop every decay_steps; exponential/cosine period */
    double decay_rate;         /* step/exponential factor */
    double alpha;              /* cosine floor, as a fraction of lr */
    int warmup_steps;          /* linear warmup from 0 (Keras: lr * t / warmup_steps), then the
                                  schedule counted from its end */
};

/* Reads optimizer, learning_rate and the schedule keys from [train]. */
int sn_optim_conf_parse(struct sn_optim_conf *oc, const struct sn_config *cfg, struct sn_err *err);

struct sn_optim {
    struct sn_optim_conf conf;
    int n_slots;             /* moments per parameter: 0, 1 or 2 */
    size_t n_params;
    float *moments;          /* owned, (n_slots, n_params) */
    int64_t t;               /* updates done */
    double lr_scale;         /* ReduceLROnPlateau multiplies this */
};

int  sn_optim_create(struct sn_optim **out, const struct sn_optim_conf *oc, size_t n_params,
                     struct sn_err *err);
/* Moments per parameter the optimizer of oc keeps: adam 2, rmsprop 1, sgd 1 with momentum. */
int  sn_optim_slots(const struct sn_optim_conf *oc);
void sn_optim_free(struct sn_optim *o);

/* The learning rate of update number t (from 0). */
double sn_optim_lr(const struct sn_optim *o, int64_t t);

/* One update of the model's trainable ranges with its grads (already averaged over the batch). */
void sn_optim_step(struct sn_optim *o, struct sn_model *m);

#endif
