/* datasets.h — the image folders `shardnet dataset` writes (datasets.c), in the layout the
 * listing reads (dataset.h): Fashion-MNIST from Debian's IDX files, and a synthetic two-class
 * RGB set. Each is built in a temporary folder and renamed at the end: a reader never sees half
 * of one. An OUTDIR that already holds the same conversion (its marker file says so) is left as
 * it is and *already (may be NULL) is set to 1; one that holds anything else is an error. */
#ifndef SN_DATASETS_H
#define SN_DATASETS_H

#include "err.h"

/* `shardnet dataset fashion-mnist OUTDIR`: turns the IDX files in idx_dir into OUTDIR/train
 * (first 50,000), OUTDIR/val (last 10,000 of the training set), OUTDIR/test (10,000), one JPEG per
 * image in folders named after the 10 classes. limit > 0 keeps only the first `limit` images of
 * each split (for tests). Writes into a temporary folder and renames it at the end. */
int  sn_dataset_fashion_mnist(const char *idx_dir, const char *outdir, int limit, int *already,
                              struct sn_err *err);

/* `shardnet dataset shapes OUTDIR`: a synthetic two-class RGB set shaped like the book's
 * cats_vs_dogs_small — OUTDIR/{train,validation,test}/{circle,square}/NNNNN.jpg, 2,000 / 1,000 /
 * 1,000 images of 400x300 to 500x375 pixels, the same files on every run. limit > 0 keeps the
 * first `limit` of each split. Built atomically like the Fashion-MNIST converter. */
int  sn_dataset_shapes(const char *outdir, int limit, int *already, struct sn_err *err);

#endif
