/* cmd_files.c — the commands that make or draw files, without a network: dataset (an image
 * folder from Fashion-MNIST or synthetic shapes), plot (training curves, scaling) and timeline
 * (one step of a trace). */
#include "cli_internal.h"

#include <stdio.h>  // defines: printf
#include <string.h> // defines: strcmp

#include "datasets.h"
#include "plot.h"
#include "timeline.h"

int cmd_dataset(struct cli_args *a, int *argc, char ***argv)
{
    const char *kind = a->n_positional == 3 ? a->positional[1] : "";
    int fashion = strcmp(kind, "fashion-mnist") == 0, shapes = strcmp(kind, "shapes") == 0;
    if (!fashion && !shapes)
        return cli_usage_error("%s",
                               "usage: shardnet dataset fashion-mnist|shapes OUTDIR [--limit N]");
    struct sn_err err = {0};
    const char *out = a->positional[2];
    int already = 0;
    int rc = shapes ? sn_dataset_shapes(out, a->limit, &already, &err)
                    : sn_dataset_fashion_mnist(a->source ? a->source
                                                         : "/usr/share/datasets/fashion-mnist",
                                               out, a->limit, &already, &err);
    if (rc != SN_OK)
        return cli_report(&err);
    if (already)
        printf("shardnet: %s already holds %s; nothing to do\n", out,
               shapes ? "the shapes dataset" : "Fashion-MNIST");
    printf("%s holds %s/train, %s/%s and %s/test\n", out, out, out, shapes ? "validation" : "val",
           out);
    return 0;
}

/* `plot CSV... -o FIGURE`: training curves, or with --scaling the scaling figure. */
int cmd_plot(struct cli_args *a, int *argc, char ***argv)
{
    if (!a->output)
        return cli_usage_error("%s", "plot needs -o FIGURE.png or -o FIGURE.svg");
    if (a->n_positional < 2)
        return cli_usage_error("%s", "plot needs at least one CSV file");
    struct sn_err err = {0};
    const char *const *csv = (const char *const *)a->positional + 1;
    int n = a->n_positional - 1;
    int rc = a->scaling ? sn_plot_scaling(csv, n, a->output, &err)
                        : sn_plot_curves(csv, n, a->output, &err);
    if (rc != SN_OK)
        return cli_report(&err);
    printf("%s: %s of %d run%s\n", a->output,
           a->scaling ? "images/s and efficiency against ranks" : "accuracy and loss curves", n,
           n > 1 ? "s" : "");
    return 0;
}

/* `timeline TRACE -o PNG [--step N]` */
int cmd_timeline(struct cli_args *a, int *argc, char ***argv)
{
    if (!a->output)
        return cli_usage_error("%s", "timeline needs -o FILE.png");
    struct sn_err err = {0};
    struct sn_timeline_info info;
    int rc = sn_timeline_render(a->config, a->output, a->step, &info, &err);
    if (rc != SN_OK)
        return cli_report(&err);
    printf("%s: step %lld of %d rank%s, %.3f ms, from %s\n", a->output, info.step, info.ranks,
           info.ranks > 1 ? "s" : "", info.ms, a->config);
    return 0;
}
