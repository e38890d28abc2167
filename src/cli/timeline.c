/* timeline.c — see timeline.h. The trace is parsed with jansson (a JSON file of any producer,
 * errors with line and column), the step's window found on every rank, the events in it laid
 * out in rows (compute events nested by time, one row per allreduce bucket, one for data) and
 * drawn with cairo into a PNG written atomically.
 *
 * This is the only file that includes <cairo.h> and <jansson.h>. */
#include "timeline.h"

#include <cairo.h>   // defines: cairo_image_surface_create, cairo_rectangle, cairo_show_text
#include <jansson.h> // defines: json_loadfd, json_object_get, json_array_get
#include <math.h>    // defines: floor, log10, pow, fmax, fmin
#include <stdio.h>   // defines: snprintf, fwrite
#include <stdlib.h>  // defines: calloc, realloc, free, qsort
#include <string.h>  // defines: strcmp
#include <unistd.h>  // defines: close

#include "sys.h" // defines: sn_atomic_open, sn_atomic_commit

/* A complete event ("ph":"X"); strings are views into the parsed document. */
struct tev {
    int pid;
    long long tid, step; /* step: args.step, -1 if none */
    double ts, dur;      /* microseconds */
    const char *name, *cat;
    int row;             /* row inside its rank's band (layout) */
};

struct rank_band {
    int pid;
    const char *label;   /* process_name, or NULL */
    int compute_rows;    /* nesting depth of compute events in the window */
    long long buckets[64];
    int n_buckets;
    double y0;           /* top of the band */
};

static int cmp_tev(const void *a, const void *b)
{
    const struct tev *x = a, *y = b;
    if (x->pid != y->pid)
        return x->pid < y->pid ? -1 : 1;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return (x->dur < y->dur) - (x->dur > y->dur); /* the parent first */
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

static int is_cat(const struct tev *e, const char *cat) { return strcmp(e->cat, cat) == 0; }

/* The lane kinds of the picture. */
enum lane { LANE_COMPUTE, LANE_ALLREDUCE, LANE_DATA };

static enum lane lane_of(const struct tev *e)
{
    return is_cat(e, "allreduce") ? LANE_ALLREDUCE : is_cat(e, "data") ? LANE_DATA : LANE_COMPUTE;
}

static const struct {
    const char *cat;
    double r, g, b;
} colors[] = {
    {"step", 0.80, 0.80, 0.80},      {"forward", 0.30, 0.52, 0.84},
    {"backward", 0.94, 0.58, 0.22},  {"sync", 0.84, 0.30, 0.30},
    {"optimizer", 0.30, 0.68, 0.35}, {"allreduce", 0.58, 0.40, 0.78},
    {"data", 0.20, 0.66, 0.68},      {"checkpoint", 0.55, 0.42, 0.28},
    {"validation", 0.72, 0.70, 0.28},
};
#define N_COLORS (sizeof colors / sizeof colors[0])

static void set_color(cairo_t *cr, const char *cat, double lighten)
{
    double r = 0.6, g = 0.6, b = 0.6;
    for (size_t i = 0; i < N_COLORS; i++)
        if (strcmp(colors[i].cat, cat) == 0)
            r = colors[i].r, g = colors[i].g, b = colors[i].b;
    cairo_set_source_rgb(cr, r + (1 - r) * lighten, g + (1 - g) * lighten, b + (1 - b) * lighten);
}

/* ---- reading ------------------------------------------------------------------------------ */

struct trace {
    json_t *doc;         /* owned */
    struct tev *ev;      /* owned, (n) */
    size_t n;
    const char *proc_name[256]; /* process_name per pid < 256 (views) */
};

static int read_trace(struct trace *t, const char *path, struct sn_err *err)
{
    json_error_t je;
    int fd;
    SN_FORWARD(sn_open_regular(path, "trace file", &fd, err));
    t->doc = json_loadfd(fd, 0, &je);
    close(fd);
    SN_RETURN_IF(!t->doc && je.line < 1, err, SN_EIO, "%s: cannot read: %s", path, je.text);
    SN_RETURN_IF(!t->doc, err, SN_EFORMAT, "%s:%d:%d: not a trace file: %s", path, je.line,
                 je.column, je.text);
    json_t *arr = json_is_array(t->doc) ? t->doc : json_object_get(t->doc, "traceEvents");
    SN_RETURN_IF(!json_is_array(arr), err, SN_EFORMAT,
                 "%s: not a trace file: no \"traceEvents\" array (Trace Event JSON, as "
                 "--trace writes it)",
                 path);
    size_t n = json_array_size(arr);
    t->ev = calloc(n + 1, sizeof *t->ev);
    SN_RETURN_IF(!t->ev, err, SN_ENOMEM, "out of memory for %zu events", n);
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i);
        const char *ph = json_string_value(json_object_get(o, "ph"));
        SN_RETURN_IF(!json_is_object(o) || !ph, err, SN_EFORMAT,
                     "%s: traceEvents[%zu] is not an event (an object with \"ph\")", path, i);
        json_t *pid = json_object_get(o, "pid"), *args = json_object_get(o, "args");
        if (strcmp(ph, "M") == 0) {
            const char *what = json_string_value(json_object_get(o, "name"));
            const char *name = json_string_value(json_object_get(args, "name"));
            json_int_t p = json_integer_value(pid);
            if (what && name && strcmp(what, "process_name") == 0 && p >= 0 && p < 256)
                t->proc_name[p] = name;
            continue;
        }
        if (strcmp(ph, "X") != 0)
            continue;
        json_t *tid = json_object_get(o, "tid"), *ts = json_object_get(o, "ts");
        json_t *dur = json_object_get(o, "dur"), *step = json_object_get(args, "step");
        const char *name = json_string_value(json_object_get(o, "name"));
        const char *cat = json_string_value(json_object_get(o, "cat"));
        SN_RETURN_IF(!json_is_integer(pid) || json_integer_value(pid) < 0 ||
                         json_integer_value(pid) > 65535 || !json_is_integer(tid) ||
                         !json_is_number(ts) || !name || (dur && !json_is_number(dur)) ||
                         (dur && json_number_value(dur) < 0),
                     err, SN_EFORMAT,
                     "%s: traceEvents[%zu], a complete event, lacks an integer pid (0..65535) "
                     "and tid, a numeric ts, a name, or has a negative dur",
                     path, i);
        t->ev[t->n++] = (struct tev){.pid = (int)json_integer_value(pid),
                                     .tid = json_integer_value(tid),
                                     .ts = json_number_value(ts),
                                     .dur = dur ? json_number_value(dur) : 0,
                                     .name = name,
                                     .cat = cat ? cat : "",
                                     .step = json_is_integer(step) ? json_integer_value(step) : -1};
    }
    qsort(t->ev, t->n, sizeof *t->ev, cmp_tev);
    return SN_OK;
}

/* The ranks (pids) in order, and the steps every one of them recorded (sorted). */
static int find_steps(const struct trace *t, int *pids, int *n_pids, long long **common,
                      size_t *n_common, struct sn_err *err)
{
    *n_pids = 0;
    for (size_t i = 0; i < t->n; i++)
        if (*n_pids == 0 || pids[*n_pids - 1] != t->ev[i].pid) {
            SN_RETURN_IF(*n_pids == 256, err, SN_EINVAL, "more than 256 ranks: too many to draw");
            pids[(*n_pids)++] = t->ev[i].pid;
        }
    /* steps of the first rank, kept when every other rank has them */
    *n_common = 0;
    *common = calloc(t->n + 1, sizeof **common);
    long long *theirs = calloc(t->n + 1, sizeof *theirs);
    if (!*common || !theirs) {
        free(theirs);
        return sn_err_set(err, SN_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < t->n && *n_pids > 0; i++)
        if (t->ev[i].pid == pids[0] && is_cat(&t->ev[i], "step") && t->ev[i].step >= 0)
            (*common)[(*n_common)++] = t->ev[i].step;
    qsort(*common, *n_common, sizeof **common, cmp_ll);
    for (int p = 1; p < *n_pids; p++) {
        size_t n = 0, k = 0;
        for (size_t i = 0; i < t->n; i++)
            if (t->ev[i].pid == pids[p] && is_cat(&t->ev[i], "step") && t->ev[i].step >= 0)
                theirs[n++] = t->ev[i].step;
        qsort(theirs, n, sizeof *theirs, cmp_ll);
        for (size_t c = 0; c < *n_common; c++)
            if (bsearch(&(*common)[c], theirs, n, sizeof *theirs, cmp_ll))
                (*common)[k++] = (*common)[c];
        *n_common = k;
    }
    free(theirs);
    size_t k = 0;
    for (size_t c = 0; c < *n_common; c++)
        if (k == 0 || (*common)[k - 1] != (*common)[c])
            (*common)[k++] = (*common)[c];
    *n_common = k;
    return SN_OK;
}

/* ---- drawing ------------------------------------------------------------------------------ */

#define WIDTH 1600
#define LEFT 170.0
#define RIGHT 20.0
#define TOP 78.0
#define ROW_COMPUTE 22.0
#define ROW_BUCKET 13.0
#define ROW_DATA 15.0
#define BAND_HEAD 20.0
#define BAND_GAP 12.0
#define LEGEND 40.0

static double band_height(const struct rank_band *b)
{
    return BAND_HEAD + b->compute_rows * ROW_COMPUTE + (b->n_buckets ? b->n_buckets : 1) * ROW_BUCKET +
           ROW_DATA + 6;
}

/* A label inside [x0, x1] if it fits, else nothing. */
static void label(cairo_t *cr, const char *s, double x0, double x1, double ymid)
{
    cairo_text_extents_t te;
    cairo_text_extents(cr, s, &te);
    if (te.x_advance + 4 > x1 - x0)
        return;
    cairo_move_to(cr, x0 + (x1 - x0 - te.x_advance) / 2, ymid + te.height / 2 - 1);
    cairo_show_text(cr, s);
}

static double nice_step(double span)
{
    double raw = span / 10, p = pow(10, floor(log10(raw)));
    double f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

static cairo_status_t write_png(void *closure, const unsigned char *data, unsigned int len)
{
    return fwrite(data, 1, len, closure) == len ? CAIRO_STATUS_SUCCESS : CAIRO_STATUS_WRITE_ERROR;
}

static int draw(const struct trace *t, struct rank_band *bands, int n_bands, long long step,
                double lo, double hi, const char *trace_path, const char *png_path,
                struct sn_err *err)
{
    double height = TOP + LEGEND + 10;
    for (int k = 0; k < n_bands; k++) {
        bands[k].y0 = height - LEGEND - 10;
        height += band_height(&bands[k]) + BAND_GAP;
    }
    cairo_surface_t *sf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, WIDTH, (int)height);
    cairo_t *cr = cairo_create(sf);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    double plot_w = WIDTH - LEFT - RIGHT, span = hi - lo;
#define X(us) (LEFT + ((us)-lo) / span * plot_w)

    /* title and time axis */
    char s[512];
    const char *base = strrchr(trace_path, '/');
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    cairo_set_font_size(cr, 16);
    snprintf(s, sizeof s, "step %lld of %s: %d rank%s, %.2f ms shown", step,
             base ? base + 1 : trace_path, n_bands, n_bands > 1 ? "s" : "", span / 1e3);
    cairo_move_to(cr, 12, 24);
    cairo_show_text(cr, s);
    cairo_set_font_size(cr, 11);
    double tick = nice_step(span / 1e3);
    double y_axis = TOP - 12, y_end = height - LEGEND - 4;
    for (double ms = 0; ms <= span / 1e3 + 1e-9; ms += tick) {
        double x = LEFT + ms * 1e3 / span * plot_w;
        cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
        cairo_set_line_width(cr, 1);
        cairo_move_to(cr, floor(x) + 0.5, y_axis);
        cairo_line_to(cr, floor(x) + 0.5, y_end);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        snprintf(s, sizeof s, tick < 0.1 ? "%.2f" : tick < 1 ? "%.1f" : "%.0f", ms);
        cairo_text_extents_t te;
        cairo_text_extents(cr, s, &te);
        cairo_move_to(cr, x - te.x_advance / 2, y_axis - 4);
        cairo_show_text(cr, s);
    }
    cairo_move_to(cr, 12, y_axis - 4);
    cairo_show_text(cr, "time (ms)");
    cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
    cairo_move_to(cr, 12, 44);
    cairo_show_text(cr, "ranks' clocks aligned at the start of the run; time from the first rank's "
                        "start of the step (its data wait included)");

    for (int k = 0; k < n_bands; k++) {
        const struct rank_band *b = &bands[k];
        double y = b->y0;
        cairo_set_source_rgb(cr, k % 2 ? 0.965 : 0.985, k % 2 ? 0.965 : 0.985,
                             k % 2 ? 0.975 : 0.99);
        cairo_rectangle(cr, 0, y, WIDTH, band_height(b));
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        cairo_set_font_size(cr, 13);
        if (b->label)
            snprintf(s, sizeof s, "%s", b->label);
        else
            snprintf(s, sizeof s, "process %d", b->pid);
        cairo_move_to(cr, 8, y + 15);
        cairo_show_text(cr, s);
        cairo_set_font_size(cr, 11);
        cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
        double yc = y + BAND_HEAD, ya = yc + b->compute_rows * ROW_COMPUTE;
        double yd = ya + (b->n_buckets ? b->n_buckets : 1) * ROW_BUCKET;
        cairo_move_to(cr, 20, yc + 15);
        cairo_show_text(cr, "compute");
        for (int j = 0; j < b->n_buckets; j++) {
            snprintf(s, sizeof s, "allreduce bucket %d", j);
            cairo_set_font_size(cr, 9);
            cairo_move_to(cr, 20, ya + j * ROW_BUCKET + 10);
            cairo_show_text(cr, s);
        }
        if (!b->n_buckets) {
            cairo_set_font_size(cr, 9);
            cairo_move_to(cr, 20, ya + 10);
            cairo_show_text(cr, "allreduce (none)");
        }
        cairo_set_font_size(cr, 11);
        cairo_move_to(cr, 20, yd + 12);
        cairo_show_text(cr, "data");

        for (size_t i = 0; i < t->n; i++) {
            const struct tev *e = &t->ev[i];
            if (e->pid != b->pid || e->row < 0)
                continue;
            double x0 = fmax(X(e->ts), LEFT), x1 = fmin(X(e->ts + e->dur), WIDTH - RIGHT);
            if (x1 - x0 < 1)
                x1 = x0 + 1;
            double ry, rh;
            enum lane ln = lane_of(e);
            if (ln == LANE_COMPUTE)
                ry = yc + e->row * ROW_COMPUTE + 1, rh = ROW_COMPUTE - 2;
            else if (ln == LANE_ALLREDUCE)
                ry = ya + e->row * ROW_BUCKET + 1, rh = ROW_BUCKET - 2;
            else
                ry = yd + 1, rh = ROW_DATA - 2;
            /* neighbouring layers alternate in shade */
            set_color(cr, e->cat, ln == LANE_COMPUTE && e->row >= 2 && (i % 2) ? 0.35 : 0);
            cairo_rectangle(cr, x0, ry, x1 - x0, rh);
            cairo_fill(cr);
            cairo_set_source_rgb(cr, 0.05, 0.05, 0.05);
            cairo_set_font_size(cr, ln == LANE_COMPUTE ? 11 : 9);
            if (is_cat(e, "step") && e->step >= 0) {
                snprintf(s, sizeof s, "step %lld", e->step);
                label(cr, s, x0, x1, ry + rh / 2);
            } else {
                label(cr, e->name, x0, x1, ry + rh / 2);
            }
        }
    }
    /* legend */
    double lx = LEFT, ly = height - LEGEND + 8;
    cairo_set_font_size(cr, 12);
    for (size_t c = 0; c < N_COLORS; c++) {
        cairo_text_extents_t te;
        cairo_text_extents(cr, colors[c].cat, &te);
        set_color(cr, colors[c].cat, 0);
        cairo_rectangle(cr, lx, ly, 14, 14);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
        cairo_move_to(cr, lx + 19, ly + 12);
        cairo_show_text(cr, colors[c].cat);
        lx += 19 + te.x_advance + 22;
    }
#undef X
    cairo_destroy(cr);
    int rc = SN_OK;
    struct sn_atomic_file af;
    if (cairo_surface_status(sf) != CAIRO_STATUS_SUCCESS)
        rc = sn_err_set(err, SN_ENOMEM, "%s: cannot draw: %s", png_path,
                        cairo_status_to_string(cairo_surface_status(sf)));
    if (rc == SN_OK)
        rc = sn_atomic_open(&af, png_path, err);
    if (rc == SN_OK) {
        cairo_status_t st = cairo_surface_write_to_png_stream(sf, write_png, af.f);
        if (st != CAIRO_STATUS_SUCCESS) {
            sn_atomic_abort(&af);
            rc = sn_err_set(err, SN_EIO, "%s: cannot write the PNG: %s", png_path,
                            cairo_status_to_string(st));
        } else {
            rc = sn_atomic_commit(&af, err);
        }
    }
    cairo_surface_destroy(sf);
    return rc;
}

/* ---- layout ------------------------------------------------------------------------------- */

/* Rows of the events in [lo, hi] (row -1: not drawn); fills each band's row counts. */
static void lay_out(struct trace *t, struct rank_band *bands, int n_bands, double lo, double hi)
{
    for (int k = 0; k < n_bands; k++) {
        struct rank_band *b = &bands[k];
        double stack[64];
        int depth = 0;
        b->compute_rows = 1;
        for (size_t i = 0; i < t->n; i++) {
            struct tev *e = &t->ev[i];
            if (e->pid != b->pid)
                continue;
            e->row = -1;
            /* epochs span every step: the band itself says which rank; events outside: not drawn */
            if (is_cat(e, "epoch") || e->ts + e->dur < lo || e->ts > hi)
                continue;
            enum lane ln = lane_of(e);
            if (ln == LANE_DATA) {
                e->row = 0;
            } else if (ln == LANE_ALLREDUCE) {
                int j = 0;
                while (j < b->n_buckets && b->buckets[j] != e->tid)
                    j++;
                if (j == b->n_buckets && j < 64)
                    b->buckets[b->n_buckets++] = e->tid;
                e->row = j < 64 ? j : -1;
            } else {
                /* events sorted by start, parents first: the open ones ending after this start
                   are its ancestors (a small tolerance for the rounding of ts and dur) */
                while (depth > 0 && stack[depth - 1] <= e->ts + 0.01)
                    depth--;
                e->row = depth;
                if (depth < 64)
                    stack[depth++] = e->ts + e->dur;
                if (depth > b->compute_rows)
                    b->compute_rows = depth;
            }
        }
        qsort(b->buckets, (size_t)b->n_buckets, sizeof b->buckets[0], cmp_ll);
        for (size_t i = 0; i < t->n; i++) { /* bucket rows in the order of their lanes */
            struct tev *e = &t->ev[i];
            if (e->pid == b->pid && e->row >= 0 && lane_of(e) == LANE_ALLREDUCE)
                for (int j = 0; j < b->n_buckets; j++)
                    if (b->buckets[j] == e->tid)
                        e->row = j;
        }
    }
}

int sn_timeline_render(const char *trace_path, const char *png_path, long long step,
                       struct sn_timeline_info *info, struct sn_err *err)
{
    struct trace t = {0};
    int pids[256], n_pids = 0;
    long long *common = NULL;
    size_t n_common = 0;
    struct rank_band *bands = NULL;
    int rc = read_trace(&t, trace_path, err);
    if (rc == SN_OK)
        rc = find_steps(&t, pids, &n_pids, &common, &n_common, err);
    if (rc == SN_OK && n_common == 0)
        rc = sn_err_set(err, SN_EFORMAT,
                        "%s holds no training step that every rank recorded (events of cat "
                        "\"step\" with args.step)",
                        trace_path);
    if (rc == SN_OK && step < 0)
        step = common[n_common / 2];
    int found = 0;
    for (size_t c = 0; rc == SN_OK && c < n_common; c++)
        found |= common[c] == step;
    if (rc == SN_OK && !found)
        rc = sn_err_set(err, SN_EINVAL,
                        "--step %lld: %s has no such step on every rank (steps %lld to %lld "
                        "recorded by all %d)",
                        step, trace_path, common[0], common[n_common - 1], n_pids);
    double lo = 1e300, hi = -1e300;
    for (size_t i = 0; rc == SN_OK && i < t.n; i++) {
        const struct tev *e = &t.ev[i];
        if ((is_cat(e, "step") || is_cat(e, "data")) && e->step == step) {
            lo = fmin(lo, e->ts);
            hi = fmax(hi, e->ts + e->dur);
        }
    }
    if (rc == SN_OK) {
        double pad = fmax(0.02 * (hi - lo), 1);
        lo -= pad, hi += pad;
        bands = calloc((size_t)n_pids, sizeof *bands);
        if (!bands)
            rc = sn_err_set(err, SN_ENOMEM, "out of memory");
    }
    if (rc == SN_OK) {
        for (int k = 0; k < n_pids; k++) {
            bands[k].pid = pids[k];
            bands[k].label = pids[k] < 256 ? t.proc_name[pids[k]] : NULL;
        }
        lay_out(&t, bands, n_pids, lo, hi);
        rc = draw(&t, bands, n_pids, step, lo, hi, trace_path, png_path, err);
    }
    if (rc == SN_OK) {
        info->step = step;
        info->ranks = n_pids;
        info->ms = (hi - lo) / 1e3;
    }
    free(bands);
    free(common);
    free(t.ev);
    json_decref(t.doc);
    return rc;
}
