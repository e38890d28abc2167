/* layout.h — where activations (and their gradients) stay in oneDNN's blocked layout between
 * layers instead of NHWC, decided once the backends are chosen. */
#ifndef SN_LAYOUT_H
#define SN_LAYOUT_H

#include <stddef.h>

#include "model.h"

/* Decides, once the backends are chosen, where activations (and their gradients) stay in
 * oneDNN's blocked layout between layers: inside each run of consecutive convolutions and max
 * poolings whose every part that runs (the backward ones too, when training) is on a oneDNN
 * backend, whose channels come in 16s, and which holds a Winograd or bf16 convolution (they
 * take reordered data only: NHWC costs each a reorder in and out); on CPUs where that layout is
 * oneDNN's native one (AVX-512) and unless m->keep_blocked is 0. A run begins and ends with a
 * convolution, which reorders from and to NHWC at those ends; everything outside stays NHWC
 * (Flatten's order, Keras's). Clears every earlier decision first. Returns the number of
 * layer-to-layer boundaries kept blocked. */
int sn_model_plan_layouts(struct sn_model *m, int training);

/* What the last plan decided, read from the layers: writes a line naming the runs ("conv2d_1 to
 * conv2d_4 (7 layers)", or "none") into desc (desc_size > 0) and returns the number of
 * boundaries kept blocked. */
int sn_model_layout_runs(const struct sn_model *m, char *desc, size_t desc_size);

#endif
