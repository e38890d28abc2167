/* plot.h — figures from the CSV files shardnet writes, drawn with cairo to PNG or SVG (chosen
 * by the output's extension): training curves from `history.csv` (the two panels of Deep
 * Learning with Python, chapter 8: training and validation accuracy, training and validation
 * loss, against epochs; training as dots, validation as a line, several runs on one figure) and
 * scaling curves from `cluster/scaling`'s `scaling.csv` (images/s and efficiency against ranks,
 * with the ideal).
 *
 * A run's name in the legend is its CSV's parent folder when the file is named history.csv or
 * scaling.csv (the run directory), else the file's stem. Every input is read before anything is
 * drawn; the figure is written atomically (sys.h), so a failure leaves no output file. Only
 * plot.c includes <cairo.h> (and fontconfig's header, for its cleanup). */
#ifndef SN_PLOT_H
#define SN_PLOT_H

#include <stddef.h>

#include "err.h"

/* Training curves of n history CSVs (columns epoch, loss, accuracy, val_loss, val_accuracy, in
 * any order; others ignored; empty or non-finite values are gaps) into out (.png or .svg).
 * @return SN_OK, or an error naming the file: missing, empty, a column missing, a cell that is
 * not a number, an unknown extension. */
int sn_plot_curves(const char *const *csv, int n, const char *out, struct sn_err *err);

/* Scaling curves of n scaling CSVs (columns ranks, images_per_s, efficiency) into out. */
int sn_plot_scaling(const char *const *csv, int n, const char *out, struct sn_err *err);

/* The legend name of the run whose CSV is path (see above), into name. */
void sn_plot_run_name(const char *path, char *name, size_t size);

#endif
