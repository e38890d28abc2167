/* weights.h — Keras weight files (HDF5): how pretrained bases are published.
 *
 * Layouts read:
 *   Keras 2, save_weights or the "model_weights" group of a whole-model file: the attribute
 *     layer_names lists the layers in order; each layer's group has the attribute weight_names,
 *     the paths of its arrays in order under that group ("block1_conv1/kernel:0", or in the
 *     file the book downloads for VGG16, "block1_conv1_W_1:0"); the names are followed as they
 *     are, never guessed;
 *   Keras 3, .weights.h5: layers/NAME/vars/0, 1, ... in the layer's order.
 * Arrays are Keras's own layouts, which are shardnet's: a Conv2D kernel (KH,KW,C,OC) then its
 * bias, a Dense kernel (IN,UNITS) then its bias, BatchNormalization's gamma, beta, moving mean
 * and moving variance. Layers match by name; every array's shape is checked. Writing produces the
 * Keras 2 layout, which Keras 2 and 3 both load.
 * Only weights.c includes <hdf5.h>. */
#ifndef SN_WEIGHTS_H
#define SN_WEIGHTS_H

#include "err.h"
#include "model.h"

/* Fills m's params and state from the Keras weight file at path. Errors name the file and, as
 * the case may be, the layer and both shapes: not an HDF5 file, a truncated one, neither
 * layout, a layer of the model with no weights in the file, a layer in the file with weights
 * the model does not have (unless by_name: Keras's load_weights(by_name=True), which takes the
 * layers of the model from a file of a larger network, e.g. a base from a whole model), an
 * array count or shape that differs, a value the network cannot run on (a NaN or an infinity,
 * a negative moving variance: values.h, naming the layer and the element). m is unchanged on
 * error. */
int sn_weights_import_keras(struct sn_model *m, const char *path, int by_name, struct sn_err *err);

/* Writes m's params and state as a Keras 2 weight file (save_weights layout: layer_names,
 * weight_names "NAME/kernel:0", ...), which Keras's model.load_weights reads for the same
 * network. Atomic: written to PATH.tmp.<pid>, then renamed over path. */
int sn_weights_export_keras(const struct sn_model *m, const char *path, struct sn_err *err);

#endif
