/* summary.h — what a model says of itself: Keras's summary table, and its FLOPs for `bench`. */
#ifndef SN_SUMMARY_H
#define SN_SUMMARY_H

#include "model.h"

/* Keras's summary table, written to f. */
/* With a [base], its layers are one row, "NAME (Functional)", as Keras shows a model used as a
 * layer; expand_nested lists them one by one, as Keras's summary(expand_nested=True) does. */
void sn_model_summary(const struct sn_model *m, const char *title, int expand_nested,
                      void *file);

/* Forward FLOPs per sample (multiply-adds counted as 2), for `bench`. */
double sn_model_flops_per_sample(const struct sn_model *m);
/* A training step's FLOPs per sample: forward, and the backward parts that run (no input
 * gradient below the first trainable layer, no weight gradient for a frozen one) — 3x forward
 * for a network trained whole, 1x for a frozen base. */
double sn_model_train_flops_per_sample(const struct sn_model *m);

#endif
