/* console.c — a run's progress lines and skipped-file reports (console.h). */
#include "console.h"

#include <stdarg.h> // defines: va_list, va_start, va_end
#include <string.h> // defines: memset, strcmp
#include <unistd.h> // defines: isatty, fileno

#include "sys.h" // defines: sn_now

#define PROGRESS_LINE_SECONDS 60.0

void sn_console_init(struct sn_console *c, FILE *out, FILE *errs, int quiet, int launched)
{
    memset(c, 0, sizeof *c);
    c->out = out;
    c->errs = errs;
    c->quiet = quiet;
    c->bar = !quiet && isatty(fileno(out)) && !launched;
    pthread_mutex_init(&c->mu, NULL);
}

void sn_console_free(struct sn_console *c) { pthread_mutex_destroy(&c->mu); }

/* Ends a bar's line (lock held). */
static void console_break(struct sn_console *c)
{
    if (c->open) {
        fputc('\n', c->out);
        c->open = 0;
    }
}

void sn_console_say(struct sn_console *c, const char *fmt, ...)
{
    if (c->quiet)
        return;
    pthread_mutex_lock(&c->mu);
    console_break(c);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(c->out, fmt, ap);
    va_end(ap);
    fflush(c->out);
    pthread_mutex_unlock(&c->mu);
}

void sn_console_report(void *user, const char *msg)
{
    struct sn_console *c = user;
    pthread_mutex_lock(&c->mu);
    console_break(c);
    fflush(c->out);
    fprintf(c->errs, "shardnet: skipping %s\n", msg);
    fflush(c->errs);
    pthread_mutex_unlock(&c->mu);
}

void sn_console_report_file(void *user, const char *msg)
{
    fprintf(user, "shardnet: skipping %s\n", msg);
    fflush(user);
}

void sn_console_dataset_note(FILE *errs, const struct sn_dataset *ds,
                             const struct sn_dataset *said)
{
    if (ds && ds->note[0] && !(said && strcmp(said->note, ds->note) == 0)) {
        fprintf(errs, "shardnet: note: %s\n", ds->note);
        fflush(errs);
    }
}

void sn_console_epoch(struct sn_console *c, int steps, double seconds_before)
{
    c->steps = steps;
    c->t0 = sn_now() - seconds_before;
    c->last = sn_now();
}

void sn_console_progress(struct sn_console *c, int done, double loss, double acc)
{
    double t = sn_now();
    if (c->quiet || t - c->last < (c->bar ? 0.2 : PROGRESS_LINE_SECONDS))
        return;
    c->last = t;
    pthread_mutex_lock(&c->mu);
    double el = t - c->t0;
    if (c->bar) {
        char bar[40];
        int width = 30, fill = c->steps ? (int)((long long)done * width / c->steps) : width;
        for (int i = 0; i < width; i++)
            bar[i] = i < fill - 1 ? '=' : i == fill - 1 ? '>' : '.';
        bar[width] = '\0';
        fprintf(c->out, "\r%5d/%d [%s] - ETA: %.0fs - loss: %.4f - accuracy: %.4f", done,
                c->steps, bar, done ? el / done * (c->steps - done) : 0.0, loss, acc);
        c->open = 1;
    } else {
        fprintf(c->out, "%7d/%d - %.0fs - loss: %.4f - accuracy: %.4f\n", done, c->steps, el,
                loss, acc);
    }
    fflush(c->out);
    pthread_mutex_unlock(&c->mu);
}

void sn_console_epoch_line(struct sn_console *c, int done, double seconds, double train_seconds,
                           double loss, double acc, double val_loss, double val_acc)
{
    if (c->quiet)
        return;
    pthread_mutex_lock(&c->mu);
    if (c->bar)
        fprintf(c->out, "\r%5d/%d [==============================]", done, c->steps);
    else
        fprintf(c->out, "%7d/%d", done, c->steps);
    fprintf(c->out,
            " - %.0fs %.0fms/step - loss: %.4f - accuracy: %.4f - val_loss: %.4f - "
            "val_accuracy: %.4f\n",
            seconds, done ? 1e3 * train_seconds / done : 0.0, loss, acc, val_loss, val_acc);
    c->open = 0;
    fflush(c->out);
    pthread_mutex_unlock(&c->mu);
}
