/* optim.h — optimizers and learning-rate schedules, with Keras's defaults and update rules.
 *
 * An optimizer is a flat loop over the model's trainable ranges of params/grads; its moments live
 * in one buffer (n_slots floats per parameter) that checkpoints save whole.
 *
 * Weight decay (Keras 3's `weight_decay`, every optimizer) is decoupled: before its own update
 * the optimizer shrinks each decayed parameter, p -= lr_t * weight_decay * p, with lr_t the
 * update's scheduled rate. Which parameters are decayed is a per-variable choice (Keras's
 * exclude_from_weight_decay(var_names=...)): the model knows which ranges of its flat params are
 * which layer's kernel, bias, gamma or beta (values.h: sn_layer_arrays), so the optimizer takes
 * the decayed ranges from it once, at creation: every trainable variable whose name
 * "<layer>/<array>" contains none of weight_decay_exclude's words. Frozen layers are not trained,
 * so not decayed either. */
#ifndef SN_OPTIM_H
#define SN_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "model.h"

enum sn_opt_kind { SN_OPT_SGD = 0, SN_OPT_RMSPROP, SN_OPT_ADAM, SN_OPT_ADAMW };
enum sn_sched_kind {
    SN_SCHED_CONSTANT = 0,
    SN_SCHED_STEP,
    SN_SCHED_EXPONENTIAL,
    SN_SCHED_COSINE,
    SN_SCHED_LINEAR,
};

#define SN_DECAY_EXCLUDE_MAX 1024

struct sn_optim_conf {
    enum sn_opt_kind kind;
    double lr;                 /* learning_rate (Keras: sgd 0.01, rmsprop, adam, adamw 0.001) */
    double momentum;           /* sgd momentum (0) */
    int nesterov;              /* sgd nesterov (false) */
    double rho;                /* rmsprop rho (0.9) */
    double beta_1, beta_2;     /* adam, adamw (0.9, 0.999) */
    double epsilon;            /* rmsprop/adam/adamw epsilon (1e-7) */
    double weight_decay;       /* decoupled decay, every optimizer (0; adamw 0.004) */
    char decay_exclude[SN_DECAY_EXCLUDE_MAX]; /* weight_decay_exclude: words separated by
                                  commas, "" for none */
    enum sn_sched_kind sched;  /* lr_schedule */
    int decay_steps;           /* step: drop every decay_steps; exponential period; cosine and
                                  linear: length of the decay. 0 while `auto` is unresolved */
    int decay_auto;            /* decay_steps = auto: sn_optim_resolve_auto sets decay_steps */
    double decay_rate;         /* step/exponential factor */
    double alpha;              /* cosine/linear floor, as a fraction of the peak */
    int warmup_steps;          /* linear warmup over this many updates, then the schedule
                                  counted from its end */
    int has_warmup_target;     /* warmup_target given (cosine, linear) */
    double warmup_target;      /* Keras 3 CosineDecay's: the warmup rises from lr to it, the
                                  decay starts from it. Without it the warmup rises from 0 to lr
                                  (Keras: lr * t / warmup_steps) */
};

/* Reads optimizer, learning_rate, weight decay and the schedule keys from [train]. A key the
 * chosen optimizer or schedule does not use is an error naming its line. */
int sn_optim_conf_parse(struct sn_optim_conf *oc, const struct sn_config *cfg, struct sn_err *err);

/* The settings against the network they train: every word of weight_decay_exclude must be
 * part of the name of some variable of m ("<layer>/kernel", "<layer>/bias", "<bn>/gamma",
 * "<bn>/beta"; frozen layers' count), so that a typo cannot leave every variable decayed.
 * @return SN_OK, or SN_EINVAL naming the config line, the word and the variables. */
int sn_optim_check_model(const struct sn_optim_conf *oc, const struct sn_model *m,
                         const struct sn_config *cfg, struct sn_err *err);

/* decay_steps = auto: the decay ends with the last of `updates` updates (training's), so
 * decay_steps = updates - warmup_steps. `how` says how updates was counted, for the message
 * ("3 epochs x 50 updates"). Nothing to do without auto.
 * @return SN_OK, or SN_EINVAL naming the config line when the warmup takes every update. */
int sn_optim_resolve_auto(struct sn_optim_conf *oc, int64_t updates, const char *how,
                          const struct sn_config *cfg, struct sn_err *err);

struct sn_optim {
    struct sn_optim_conf conf;
    int n_slots;             /* moments per parameter: 0, 1 or 2 */
    size_t n_params;
    float *moments;          /* owned, (n_slots, n_params) */
    int64_t t;               /* updates done */
    double lr_scale;         /* ReduceLROnPlateau multiplies this */
    struct sn_range *decay;  /* owned, (n_decay): the parameters weight decay applies to, in
                                order, adjacent ones merged (none when weight_decay is 0) */
    int n_decay;
};

/* An optimizer of oc for the parameters of m (its n_params; the decayed ranges from its
 * layers, as the header says). */
int  sn_optim_create(struct sn_optim **out, const struct sn_optim_conf *oc,
                     const struct sn_model *m, struct sn_err *err);
/* Moments per parameter the optimizer of oc keeps: adam, adamw 2, rmsprop 1, sgd 1 with
 * momentum. */
int  sn_optim_slots(const struct sn_optim_conf *oc);
void sn_optim_free(struct sn_optim *o);

/* The learning rate of update number t (from 0), times lr_scale. A decay_steps = auto not yet
 * resolved (a command that does not know training's length: bench) holds the schedule at its
 * start. */
double sn_optim_lr(const struct sn_optim *o, int64_t t);

/* One update of the model's trainable ranges with its grads (already averaged over the batch):
 * the weight decay of the decayed ranges, then the optimizer's rule. */
void sn_optim_step(struct sn_optim *o, struct sn_model *m);

#endif
