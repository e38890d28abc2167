/* restore.h — a model's weights from checkpoints: a checkpoint of the same network (a resume,
 * `train --init`, evaluate, predict, extract), or a [base] checkpoint holding a convolutional
 * base's weights for the prefix of the model's. */
#ifndef SN_RESTORE_H
#define SN_RESTORE_H

#include "checkpoint.h"
#include "err.h"
#include "model.h"
#include "optim.h"

/* The model's parameters and state (and the optimizer's moments when opt != NULL) from the
 * checkpoint at path, which must have been made for this network (its structure hash); meta
 * receives its header. Values the network cannot run on (a NaN or an infinity, a negative moving
 * variance, a non-finite moment: values.h) are an error naming the layer and the element; the
 * model's contents are then unspecified. */
int sn_restore_checkpoint(struct sn_model *m, struct sn_optim *opt, const char *path,
                          struct sn_ckpt_meta *meta, struct sn_err *err);

/* [base] checkpoint: the base's weights into the prefix of params and state, for a run that
 * starts fresh (a resume has them in its own checkpoint). The file must hold the base alone: as
 * many parameters and statistics as the base's layers, values it can run on (as above; the
 * model is unchanged on error). Nothing to do without a [base] checkpoint. */
int sn_restore_base(struct sn_model *m, struct sn_err *err);

#endif
