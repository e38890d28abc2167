/* inference.h — a trained network run forward: `evaluate` (loss and accuracy on a split),
 * `predict` (the most probable classes of images) and `extract` (a convolutional base's
 * outputs over every split, for a top trained on them), and the evaluation of a loader that
 * validation shares with them.
 *
 * The network is the config's, its weights and class names the checkpoint's; labels of a split
 * come from the checkpoint's class names, never from the folder's order. */
#ifndef SN_INFERENCE_H
#define SN_INFERENCE_H

#include <stdio.h>

#include "config.h"
#include "dist.h"
#include "err.h"
#include "loader.h"
#include "model.h"

struct sn_eval_result {
    long long n;          /* samples evaluated */
    long long skipped;    /* files that did not decode */
    double loss, accuracy;
};

/* What one micro-batch of an evaluation adds up to. */
struct sn_eval_sums {
    double loss;          /* the sum of its samples' losses, in their order */
    double correct;       /* samples classified right */
    double samples;       /* samples with a decoded image */
    double skipped;       /* files that did not decode */
};

/* The micro-batches of one evaluation on this rank, in their order (grown as needed). */
struct sn_eval_list {
    struct sn_eval_sums *v; /* owned, n of cap */
    size_t n, cap;
};
void sn_eval_list_free(struct sn_eval_list *l);

/* Runs m over a whole epoch of ld (no augmentation, in order), each of this rank's slices in
 * micro-batches of `micro` samples (the loader's), and appends each micro-batch's sums to
 * list: the same micro-batches, the same bits, on any number of ranks. ac's test_time (ac may
 * be NULL) scores the mean of the logits over the images and their mirrors. */
int  sn_evaluate_loader(struct sn_model *m, struct sn_loader *ld,
                        const struct sn_augment_conf *ac, int micro, struct sn_eval_list *list,
                        struct sn_err *err);

/* Loss and accuracy of micro-batch sums taken in order (the order fixes the bits): the loss
 * their mean (NaN for none). */
void sn_eval_result(const struct sn_eval_sums *v, size_t n, struct sn_eval_result *res);

/* `shardnet evaluate`: loss and accuracy of a checkpoint on a split (default test) in one
 * process, labels by the checkpoint's class names. data_dir (may be NULL) replaces [data]: a data
 * root holding the split's folder, or the split's folder itself (class folders inside). Notes (a
 * changed config, classes the split lacks, Keras's "Found N files") go to notes, reports of
 * skipped files to errs. */
int sn_evaluate(const struct sn_config *cfg, const char *ckpt, const char *data_dir, int split,
                FILE *notes, FILE *errs, struct sn_eval_result *res, struct sn_err *err);

/* `shardnet predict`: for each image, its `top` most probable classes by the checkpoint's
 * class names ("IMAGE 7_Sneaker 0.960", probabilities with `digits` decimals), one line each,
 * on out. */
int sn_predict(const struct sn_config *cfg, const char *ckpt, char **images, int n_images, int top,
               int digits, FILE *out, FILE *notes, struct sn_err *err);

/* `shardnet extract`: the network of cfg (a convolutional base) with the weights of ckpt, run
 * in inference mode over the train, val and test splits of [data] (or data_dir, a root with
 * those folders); each rank takes its shard, rank 0 writes one feature file (featfile.h) with
 * the labels and class names. A missing val or test folder is left out with a note on out;
 * skipped files are reported on errs. */
int sn_extract(const struct sn_config *cfg, const char *ckpt, const char *data_dir,
               const char *out_path, struct sn_dist *d, FILE *out, FILE *errs,
               struct sn_err *err);

#endif
