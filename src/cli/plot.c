/* plot.c — see plot.h. Three parts: reading the CSV columns a figure needs (by header name),
 * drawing panels (axes with nice ticks, series as dots, lines or dashes, clipped to the plot
 * area) and a legend strip under them, and writing the surface as PNG or SVG, atomically. */
#include "plot.h"

#include <cairo-svg.h> // defines: cairo_svg_surface_create_for_stream
#include <cairo.h>     // defines: cairo_t, cairo_image_surface_create, cairo_show_text
#include <errno.h>     // defines: errno
#include <fontconfig/fontconfig.h> // defines: FcFini
#include <limits.h>    // defines: PATH_MAX
#include <math.h>      // defines: isfinite, floor, ceil, log10, pow, fabs, fmin, fmax, NAN, M_PI
#include <stdio.h>     // defines: FILE, fopen, getline, snprintf
#include <stdlib.h>    // defines: malloc, realloc, free, strtod, realpath
#include <string.h>    // defines: strcmp, strchr, strrchr, strerror, strspn, memchr, memcmp
#include <strings.h>   // defines: strcasecmp

#include "sys.h"

/* ---------------------------------------------------------------- the CSV columns */

#define PLOT_MAX_COLS 8

/* The columns a figure needs from one CSV: each n values, NaN for an empty cell. */
struct table {
    char name[128];                /* the run's legend name */
    int n;                         /* rows */
    double *col[PLOT_MAX_COLS];    /* owned, n values each, in the order asked */
};

static void table_free(struct table *t)
{
    for (int k = 0; k < PLOT_MAX_COLS; k++)
        free(t->col[k]);
    memset(t, 0, sizeof *t);
}

/* Strips spaces, tabs, \r and \n from both ends of s, in place. */
static char *trim(char *s)
{
    s += strspn(s, " \t\r\n");
    size_t len = strlen(s);
    while (len > 0 && strchr(" \t\r\n", s[len - 1]))
        s[--len] = '\0';
    return s;
}

/* Splits line at commas in place: cells[i] point into it. @return the number of cells */
static int split_cells(char *line, char **cells, int max)
{
    int n = 0;
    for (char *p = line; p && n < max;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        cells[n++] = trim(p);
        p = comma ? comma + 1 : NULL;
    }
    return n;
}

#define PLOT_MAX_CELLS 64

/* Reads the columns want[0..n_want) of the CSV at path into t. kind says what the file should
 * be ("a history.csv of `shardnet train`"), for the messages. */
static int table_read(struct table *t, const char *path, const char *const *want, int n_want,
                      const char *kind, struct sn_err *err)
{
    memset(t, 0, sizeof *t);
    FILE *f;
    int orc = sn_fopen_regular(path, "r", "CSV file", &f, err);
    SN_RETURN_IF(orc == SN_EIO, err, SN_EIO, "%s: cannot open: %s", path, strerror(errno));
    SN_FORWARD(orc);
    char *line = NULL, *cells[PLOT_MAX_CELLS];
    size_t cap = 0;
    int idx[PLOT_MAX_COLS], n_header = 0, lineno = 0, rc = SN_OK, cap_rows = 0;
    char expected[256] = "";
    for (int k = 0; k < n_want; k++)
        snprintf(expected + strlen(expected), sizeof expected - strlen(expected), "%s%s",
                 k ? "," : "", want[k]);
    /* the header: the first line that is not blank */
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        if (*trim(line) == '\0')
            continue;
        n_header = split_cells(line, cells, PLOT_MAX_CELLS);
        break;
    }
    if (ferror(f)) {
        rc = sn_err_set(err, SN_EIO, "%s: cannot read: %s", path, strerror(errno));
        goto done;
    }
    if (n_header == 0) {
        rc = sn_err_set(err, SN_EFORMAT, "%s: empty file; expected %s, with a header line "
                                         "naming the columns %s",
                        path, kind, expected);
        goto done;
    }
    for (int k = 0; k < n_want; k++) {
        idx[k] = -1;
        for (int c = 0; c < n_header; c++)
            if (strcmp(cells[c], want[k]) == 0)
                idx[k] = c;
        if (idx[k] < 0) {
            rc = sn_err_set(err, SN_EFORMAT, "%s:%d: no column '%s' in the header; expected %s, "
                                             "whose header names the columns %s",
                            path, lineno, want[k], kind, expected);
            goto done;
        }
    }
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        char *s = trim(line);
        if (*s == '\0')
            continue;
        int n_cells = split_cells(s, cells, PLOT_MAX_CELLS);
        if (t->n == cap_rows) {
            cap_rows = cap_rows ? 2 * cap_rows : 64;
            for (int k = 0; k < n_want; k++) {
                double *grown = realloc(t->col[k], (size_t)cap_rows * sizeof(double));
                if (!grown) {
                    rc = sn_err_set(err, SN_ENOMEM, "%s: out of memory", path);
                    goto done;
                }
                t->col[k] = grown;
            }
        }
        for (int k = 0; k < n_want; k++) {
            if (idx[k] >= n_cells) {
                rc = sn_err_set(err, SN_EFORMAT, "%s:%d: %d cells, but column '%s' is cell %d "
                                                 "of the header",
                                path, lineno, n_cells, want[k], idx[k] + 1);
                goto done;
            }
            const char *cell = cells[idx[k]];
            char *end;
            double v = *cell ? strtod(cell, &end) : NAN;
            if (*cell && (end == cell || *end != '\0')) {
                rc = sn_err_set(err, SN_EFORMAT, "%s:%d: column '%s': '%s' is not a number", path,
                                lineno, want[k], cell);
                goto done;
            }
            t->col[k][t->n] = v;
        }
        t->n++;
    }
    if (ferror(f))
        rc = sn_err_set(err, SN_EIO, "%s: read error: %s", path, strerror(errno));
    else if (t->n == 0)
        rc = sn_err_set(err, SN_EFORMAT, "%s: a header but no rows; expected %s (one row per %s)",
                        path, kind, strcmp(want[0], "epoch") == 0 ? "epoch" : "rank count");
done:
    free(line);
    fclose(f);
    if (rc != SN_OK)
        table_free(t);
    return rc;
}

void sn_plot_run_name(const char *path, char *name, size_t size)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    char *slash = strrchr(buf, '/');
    char *base = slash ? slash + 1 : buf;
    if (strcmp(base, "history.csv") == 0 || strcmp(base, "scaling.csv") == 0) {
        /* the run directory's name, also for "history.csv" or "./history.csv" */
        char real[PATH_MAX];
        if (realpath(path, real)) {
            char *end = strrchr(real, '/');
            if (end && end != real) {
                *end = '\0';
                snprintf(name, size, "%s", strrchr(real, '/') + 1);
                return;
            }
        } else if (slash && slash != buf) {
            *slash = '\0';
            char *parent = strrchr(buf, '/');
            snprintf(name, size, "%s", parent ? parent + 1 : buf);
            return;
        }
    }
    char *dot = strrchr(base, '.');
    if (dot && dot != base)
        *dot = '\0';
    snprintf(name, size, "%s", base);
}

/* Reads every CSV and names its run; a name met twice gets " (2)", " (3)"... */
static int read_runs(struct table *t, const char *const *csv, int n, const char *const *want,
                     int n_want, const char *kind, struct sn_err *err)
{
    for (int i = 0; i < n; i++) {
        int rc = table_read(&t[i], csv[i], want, n_want, kind, err);
        if (rc != SN_OK) {
            while (i-- > 0)
                table_free(&t[i]);
            return rc;
        }
        sn_plot_run_name(csv[i], t[i].name, sizeof t[i].name - 16);
        int same = 1;
        for (int j = 0; j < i; j++) {
            char other[sizeof t[j].name];
            sn_plot_run_name(csv[j], other, sizeof other - 16);
            same += strcmp(other, t[i].name) == 0;
        }
        if (same > 1)
            snprintf(t[i].name + strlen(t[i].name), 16, " (%d)", same);
    }
    return SN_OK;
}

/* ---------------------------------------------------------------- drawing */

struct rgb {
    double r, g, b;
};

/* matplotlib's default cycle (tab10): the book's figures' colours, distinct in print */
static const struct rgb palette[] = {
    {0.122, 0.467, 0.706}, {1.000, 0.498, 0.055}, {0.173, 0.627, 0.173}, {0.839, 0.153, 0.157},
    {0.580, 0.404, 0.741}, {0.549, 0.337, 0.294}, {0.890, 0.467, 0.761}, {0.498, 0.498, 0.498},
    {0.737, 0.741, 0.133}, {0.090, 0.745, 0.812},
};
#define PALETTE_N (int)(sizeof palette / sizeof palette[0])

enum { STYLE_DOTS = 1, STYLE_LINE = 2, STYLE_DASHED = 4 };

struct series {
    const double *x, *y; /* views, n points; a non-finite y is a gap */
    int n;
    double y_scale;      /* y values drawn times this (efficiency as %) */
    struct rgb c;
    int style;
};

struct panel {
    const char *title, *xlabel, *ylabel;
    int y_from_zero;      /* the y axis starts at 0 (rates, efficiencies) */
    const struct series *s;
    int n_s;
};

struct legend_item {
    char label[160];
    struct rgb c;
    int style;
};

#define FIG_W 1100.0
#define PANEL_H 420.0
#define LEGEND_ROW 24.0
#define FONT "DejaVu Sans"

/* Text at (x, y) anchored by ax (0 left, 0.5 centre, 1 right) and ay (0 top, 0.5 middle,
   1 bottom of the ink). */
static void text_at(cairo_t *cr, double x, double y, const char *s, double ax, double ay)
{
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    cairo_move_to(cr, x - ax * e.x_advance, y - e.y_bearing - ay * e.height);
    cairo_show_text(cr, s);
}

static void font(cairo_t *cr, double size, int bold)
{
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

/* A tick step of 1, 2 or 5 times a power of ten giving about `target` ticks over span; at least
   1 on an integer axis (epochs, ranks). */
static double tick_step(double span, int target, int integer)
{
    double raw = span / target, mag = pow(10, floor(log10(raw))), f = raw / mag;
    double step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
    return integer && step < 1 ? 1 : step;
}

/* The axis limits around the data [lo, hi]: 5% of the span each side, as matplotlib pads. */
static void axis_limits(double lo, double hi, int from_zero, double *a, double *b)
{
    if (!(lo <= hi)) /* no finite value at all */
        lo = 0, hi = 1;
    if (from_zero && lo > 0)
        lo = 0;
    double span = hi - lo;
    if (span <= 0)
        span = lo != 0 ? fabs(lo) * 0.2 : 1;
    *a = from_zero && lo >= 0 ? 0 : lo - 0.05 * span;
    *b = hi + 0.05 * span;
    if (hi == lo)
        *a = lo - span / 2, *b = hi + span / 2;
}

static void draw_glyph(cairo_t *cr, double x0, double x1, double y, struct rgb c, int style)
{
    cairo_set_source_rgb(cr, c.r, c.g, c.b);
    if (style & (STYLE_LINE | STYLE_DASHED)) {
        if (style & STYLE_DASHED)
            cairo_set_dash(cr, (const double[]){6, 4}, 2, 0);
        cairo_set_line_width(cr, 2);
        cairo_move_to(cr, x0, y);
        cairo_line_to(cr, x1, y);
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
    }
    if (style & STYLE_DOTS) {
        cairo_arc(cr, (x0 + x1) / 2, y, 3.6, 0, 2 * M_PI);
        cairo_fill(cr);
    }
}

static int finite_at(const struct series *s, int i)
{
    return i >= 0 && i < s->n && isfinite(s->x[i]) && isfinite(s->y[i]);
}

static void draw_panel(cairo_t *cr, double px, double py, double pw, double ph,
                       const struct panel *p)
{
    double L = px + 78, R = px + pw - 22, T = py + 40, B = py + ph - 56;
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (int k = 0; k < p->n_s; k++)
        for (int i = 0; i < p->s[k].n; i++) {
            double x = p->s[k].x[i], y = p->s[k].y[i] * p->s[k].y_scale;
            if (!isfinite(x) || !isfinite(y))
                continue;
            xlo = fmin(xlo, x), xhi = fmax(xhi, x), ylo = fmin(ylo, y), yhi = fmax(yhi, y);
        }
    double x0, x1, y0, y1;
    axis_limits(xlo, xhi, 0, &x0, &x1);
    axis_limits(ylo, yhi, p->y_from_zero, &y0, &y1);
#define SX(v) (L + ((v) - x0) / (x1 - x0) * (R - L))
#define SY(v) (B - ((v) - y0) / (y1 - y0) * (B - T))
    /* title */
    cairo_set_source_rgb(cr, 0, 0, 0);
    font(cr, 16, 1);
    text_at(cr, (L + R) / 2, py + 12, p->title, 0.5, 0);
    /* grid, ticks and their labels */
    font(cr, 12, 0);
    cairo_set_line_width(cr, 1);
    for (int axis = 0; axis < 2; axis++) {
        double lo = axis ? y0 : x0, hi = axis ? y1 : x1;
        double step = tick_step(hi - lo, axis ? 6 : 8, !axis);
        int decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
        for (double v = ceil(lo / step - 1e-9) * step; v <= hi + 1e-9 * step; v += step) {
            double at = axis ? SY(v) : SX(v);
            char label[32];
            snprintf(label, sizeof label, "%.*f", decimals, fabs(v) < step * 1e-6 ? 0.0 : v);
            cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
            if (axis)
                cairo_move_to(cr, L, floor(at) + 0.5), cairo_line_to(cr, R, floor(at) + 0.5);
            else
                cairo_move_to(cr, floor(at) + 0.5, T), cairo_line_to(cr, floor(at) + 0.5, B);
            cairo_stroke(cr);
            cairo_set_source_rgb(cr, 0, 0, 0);
            if (axis) {
                cairo_move_to(cr, L - 5, floor(at) + 0.5), cairo_line_to(cr, L, floor(at) + 0.5);
                cairo_stroke(cr);
                text_at(cr, L - 9, at, label, 1, 0.5);
            } else {
                cairo_move_to(cr, floor(at) + 0.5, B), cairo_line_to(cr, floor(at) + 0.5, B + 5);
                cairo_stroke(cr);
                text_at(cr, at, B + 9, label, 0.5, 0);
            }
        }
    }
    /* the frame and the axis labels */
    cairo_rectangle(cr, floor(L) + 0.5, floor(T) + 0.5, floor(R) - floor(L), floor(B) - floor(T));
    cairo_stroke(cr);
    font(cr, 13, 0);
    text_at(cr, (L + R) / 2, B + 32, p->xlabel, 0.5, 0);
    cairo_save(cr);
    cairo_translate(cr, px + 14, (T + B) / 2);
    cairo_rotate(cr, -M_PI / 2);
    text_at(cr, 0, 0, p->ylabel, 0.5, 0);
    cairo_restore(cr);
    /* the series, inside the frame */
    cairo_save(cr);
    cairo_rectangle(cr, L, T, R - L, B - T);
    cairo_clip(cr);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    for (int k = 0; k < p->n_s; k++) {
        const struct series *s = &p->s[k];
        cairo_set_source_rgb(cr, s->c.r, s->c.g, s->c.b);
        if (s->style & (STYLE_LINE | STYLE_DASHED)) {
            cairo_set_line_width(cr, 2);
            if (s->style & STYLE_DASHED)
                cairo_set_dash(cr, (const double[]){6, 4}, 2, 0);
            int pen = 0;
            for (int i = 0; i < s->n; i++) {
                double x = s->x[i], y = s->y[i] * s->y_scale;
                if (!isfinite(x) || !isfinite(y)) {
                    pen = 0;
                    continue;
                }
                (pen ? cairo_line_to : cairo_move_to)(cr, SX(x), SY(y));
                pen = 1;
            }
            cairo_stroke(cr);
            cairo_set_dash(cr, NULL, 0, 0);
            /* a point with no finite neighbour makes no segment (a one-epoch run): a small dot */
            for (int i = 0; i < s->n && !(s->style & STYLE_DOTS); i++) {
                double x = s->x[i], y = s->y[i] * s->y_scale;
                if (isfinite(x) && isfinite(y) && !finite_at(s, i - 1) && !finite_at(s, i + 1)) {
                    cairo_arc(cr, SX(x), SY(y), 2.2, 0, 2 * M_PI);
                    cairo_fill(cr);
                }
            }
        }
        if (s->style & STYLE_DOTS)
            for (int i = 0; i < s->n; i++) {
                double x = s->x[i], y = s->y[i] * s->y_scale;
                if (!isfinite(x) || !isfinite(y))
                    continue;
                cairo_arc(cr, SX(x), SY(y), 3.6, 0, 2 * M_PI);
                cairo_fill(cr);
            }
    }
    cairo_restore(cr);
#undef SX
#undef SY
}

/* The legend's layout: columns of equal width across the figure; a run's two items side by
   side when the columns are even. */
struct legend_layout {
    int cols, rows;
    double col_w;
};

static struct legend_layout legend_layout(cairo_t *cr, const struct legend_item *it, int n)
{
    struct legend_layout lay = {1, 0, 0};
    font(cr, 13, 0);
    for (int i = 0; i < n; i++) {
        cairo_text_extents_t e;
        cairo_text_extents(cr, it[i].label, &e);
        lay.col_w = fmax(lay.col_w, 30 + 8 + e.x_advance + 28);
    }
    lay.cols = (int)((FIG_W - 40) / fmax(lay.col_w, 1));
    if (lay.cols > 1 && lay.cols % 2)
        lay.cols--;
    lay.cols = lay.cols < 1 ? 1 : lay.cols > n ? n : lay.cols;
    lay.rows = (n + lay.cols - 1) / lay.cols;
    return lay;
}

static void draw_legend(cairo_t *cr, double top, const struct legend_item *it, int n,
                        struct legend_layout lay)
{
    double left = (FIG_W - lay.cols * lay.col_w) / 2;
    font(cr, 13, 0);
    for (int i = 0; i < n; i++) {
        double x = left + (i % lay.cols) * lay.col_w, y = top + (i / lay.cols + 0.5) * LEGEND_ROW;
        draw_glyph(cr, x, x + 30, y, it[i].c, it[i].style);
        cairo_set_source_rgb(cr, 0, 0, 0);
        text_at(cr, x + 38, y, it[i].label, 0, 0.5);
    }
}

/* ---------------------------------------------------------------- output */

enum format { FORMAT_PNG, FORMAT_SVG };

static int output_format(const char *out, enum format *fmt, struct sn_err *err)
{
    const char *slash = strrchr(out, '/'), *dot = strrchr(out, '.');
    if (dot && (!slash || dot > slash) && strcasecmp(dot, ".png") == 0)
        *fmt = FORMAT_PNG;
    else if (dot && (!slash || dot > slash) && strcasecmp(dot, ".svg") == 0)
        *fmt = FORMAT_SVG;
    else
        return sn_err_set(err, SN_EINVAL, "%s: unknown image type %s%s%s; the output's extension "
                                          "chooses it: .png or .svg",
                          out, dot && (!slash || dot > slash) ? "'" : "(no extension)",
                          dot && (!slash || dot > slash) ? dot : "",
                          dot && (!slash || dot > slash) ? "'" : "");
    return SN_OK;
}

/* A growing buffer that cairo's SVG surface writes into. */
struct membuf {
    unsigned char *p;
    size_t n, cap;
    int failed;
};

static cairo_status_t write_mem(void *closure, const unsigned char *data, unsigned int len)
{
    struct membuf *b = closure;
    if (b->n + len > b->cap) {
        size_t cap = b->cap ? b->cap : 1 << 16;
        while (cap < b->n + len)
            cap *= 2;
        unsigned char *grown = realloc(b->p, cap);
        if (!grown) {
            b->failed = 1;
            return CAIRO_STATUS_NO_MEMORY;
        }
        b->p = grown, b->cap = cap;
    }
    memcpy(b->p + b->n, data, len);
    b->n += len;
    return CAIRO_STATUS_SUCCESS;
}

static cairo_status_t write_file(void *closure, const unsigned char *data, unsigned int len)
{
    return fwrite(data, 1, len, closure) == len ? CAIRO_STATUS_SUCCESS : CAIRO_STATUS_WRITE_ERROR;
}

static void xml_escaped(FILE *f, const char *s)
{
    for (; *s; s++)
        if (*s == '&')
            fputs("&amp;", f);
        else if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '>')
            fputs("&gt;", f);
        else if (*s == '"')
            fputs("&quot;", f);
        else
            fputc(*s, f);
}

/* Draws the panels side by side and the legend under them into out (.png or .svg). cairo draws
   an SVG's text as glyph outlines; a <title> (what the figure is) and a <desc> (the legend's
   labels) put after the <svg> tag keep its words readable to search and screen readers. */
static int render(const char *out, const struct panel *panels, int n_panels,
                  const struct legend_item *items, int n_items, const char *title,
                  struct sn_err *err)
{
    enum format fmt;
    SN_FORWARD(output_format(out, &fmt, err));
    /* the legend's size needs a context to measure text: a scratch one */
    cairo_surface_t *scratch = cairo_image_surface_create(CAIRO_FORMAT_RGB24, 1, 1);
    cairo_t *cr = cairo_create(scratch);
    struct legend_layout lay = legend_layout(cr, items, n_items);
    cairo_destroy(cr);
    cairo_surface_destroy(scratch);
    double height = PANEL_H + lay.rows * LEGEND_ROW + 16;

    struct membuf svg = {0};
    cairo_surface_t *surface =
        fmt == FORMAT_PNG
            ? cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)FIG_W, (int)height)
            : cairo_svg_surface_create_for_stream(write_mem, &svg, FIG_W, height);
    cr = cairo_create(surface);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    double pw = FIG_W / n_panels;
    for (int i = 0; i < n_panels; i++)
        draw_panel(cr, i * pw, 0, pw, PANEL_H, &panels[i]);
    draw_legend(cr, PANEL_H + 4, items, n_items, lay);
    cairo_status_t st = cairo_status(cr);
    cairo_destroy(cr);
    int rc = SN_OK;
    struct sn_atomic_file af = {0};
    if (st != CAIRO_STATUS_SUCCESS)
        rc = sn_err_set(err, SN_EIO, "%s: drawing failed: %s", out, cairo_status_to_string(st));
    if (rc == SN_OK)
        rc = sn_atomic_open(&af, out, err);
    if (rc == SN_OK && fmt == FORMAT_PNG) {
        st = cairo_surface_write_to_png_stream(surface, write_file, af.f);
    } else if (rc == SN_OK) {
        cairo_surface_finish(surface); /* flushes the SVG into svg */
        st = svg.failed ? CAIRO_STATUS_NO_MEMORY : cairo_surface_status(surface);
        const unsigned char *tag = NULL;
        for (size_t i = 0; st == CAIRO_STATUS_SUCCESS && i + 4 < svg.n && !tag; i++)
            if (memcmp(svg.p + i, "<svg", 4) == 0)
                tag = memchr(svg.p + i, '>', svg.n - i);
        if (st == CAIRO_STATUS_SUCCESS && !tag)
            st = CAIRO_STATUS_WRITE_ERROR;
        if (st == CAIRO_STATUS_SUCCESS) {
            size_t head = (size_t)(tag + 1 - svg.p);
            fwrite(svg.p, 1, head, af.f);
            fputs("\n<title>", af.f);
            xml_escaped(af.f, title);
            fputs("</title>\n<desc>", af.f);
            for (int i = 0; i < n_items; i++) {
                fputs(i ? "; " : "", af.f);
                xml_escaped(af.f, items[i].label);
            }
            fputs("</desc>", af.f);
            fwrite(svg.p + head, 1, svg.n - head, af.f);
        }
    }
    if (rc == SN_OK && st != CAIRO_STATUS_SUCCESS) {
        sn_atomic_abort(&af);
        rc = sn_err_set(err, SN_EIO, "%s: cannot write the %s: %s", out,
                        fmt == FORMAT_PNG ? "PNG" : "SVG", cairo_status_to_string(st));
    } else if (rc == SN_OK) {
        rc = sn_atomic_commit(&af, err);
    }
    cairo_surface_destroy(surface);
    free(svg.p);
    /* no cairo object is left: cairo's font caches go, then fontconfig's configuration (cairo
       1.16 resolves its toy fonts into a pattern only FcFini frees), so that a process that drew
       figures ends with nothing for a leak checker to find; fontconfig starts again if needed */
    cairo_debug_reset_static_data();
    FcFini();
    return rc;
}

/* ---------------------------------------------------------------- the figures */

#define PLOT_MAX_RUNS 64

static int check_runs(int n, const char *out, struct sn_err *err)
{
    SN_RETURN_IF(n < 1, err, SN_EINVAL, "%s: no CSV file to plot", out);
    SN_RETURN_IF(n > PLOT_MAX_RUNS, err, SN_EINVAL, "%s: %d CSV files, at most %d on one figure",
                 out, n, PLOT_MAX_RUNS);
    enum format fmt;
    return output_format(out, &fmt, err);
}

int sn_plot_curves(const char *const *csv, int n, const char *out, struct sn_err *err)
{
    SN_FORWARD(check_runs(n, out, err));
    static const char *const want[] = {"epoch", "loss", "accuracy", "val_loss", "val_accuracy"};
    struct table *t = calloc((size_t)n, sizeof *t);
    struct series *s = calloc(4 * (size_t)n, sizeof *s);
    struct legend_item *it = calloc(2 * (size_t)n, sizeof *it);
    int rc = t && s && it ? SN_OK : sn_err_set(err, SN_ENOMEM, "out of memory");
    if (rc == SN_OK)
        rc = read_runs(t, csv, n, want, 5, "a history.csv of `shardnet train`", err);
    if (rc == SN_OK) {
        /* s: accuracy series of every run, then loss series */
        for (int i = 0; i < n; i++) {
            struct rgb c = palette[i % PALETTE_N];
            for (int m = 0; m < 2; m++) { /* 0 accuracy, 1 loss */
                struct series *train = &s[m * 2 * n + 2 * i];
                *train = (struct series){t[i].col[0], t[i].col[m ? 1 : 2], t[i].n, 1, c,
                                         STYLE_DOTS};
                train[1] = (struct series){t[i].col[0], t[i].col[m ? 3 : 4], t[i].n, 1, c,
                                           STYLE_LINE};
            }
            snprintf(it[2 * i].label, sizeof it[0].label, "%s: training", t[i].name);
            snprintf(it[2 * i + 1].label, sizeof it[0].label, "%s: validation", t[i].name);
            it[2 * i].c = it[2 * i + 1].c = c;
            it[2 * i].style = STYLE_DOTS, it[2 * i + 1].style = STYLE_LINE;
        }
        const struct panel panels[2] = {
            {"Training and validation accuracy", "Epochs", "Accuracy", 0, s, 2 * n},
            {"Training and validation loss", "Epochs", "Loss", 0, s + 2 * n, 2 * n},
        };
        rc = render(out, panels, 2, it, 2 * n, "Training and validation accuracy and loss", err);
    }
    for (int i = 0; t && i < n; i++)
        table_free(&t[i]);
    free(t);
    free(s);
    free(it);
    return rc;
}

int sn_plot_scaling(const char *const *csv, int n, const char *out, struct sn_err *err)
{
    SN_FORWARD(check_runs(n, out, err));
    static const char *const want[] = {"ranks", "images_per_s", "efficiency"};
    struct table *t = calloc((size_t)n, sizeof *t);
    struct series *s = calloc(4 * (size_t)n, sizeof *s);
    struct legend_item *it = calloc(2 * (size_t)n, sizeof *it);
    /* the ideal: the first row's rate times the ranks over its ranks; 100% efficiency */
    double *ideal = calloc(2 * (size_t)n * 1024, sizeof *ideal);
    int rc = t && s && it && ideal ? SN_OK : sn_err_set(err, SN_ENOMEM, "out of memory");
    if (rc == SN_OK)
        rc = read_runs(t, csv, n, want, 3, "a scaling.csv of cluster/scaling", err);
    for (int i = 0; rc == SN_OK && i < n; i++)
        if (t[i].n > 1024 || !(t[i].col[0][0] > 0))
            rc = sn_err_set(err, SN_EFORMAT, "%s: %s", csv[i],
                            t[i].n > 1024 ? "more than 1024 rows"
                                          : "the first row's ranks is not a positive number");
    if (rc == SN_OK) {
        for (int i = 0; i < n; i++) {
            struct rgb c = palette[i % PALETTE_N];
            double *rate = ideal + 2 * (size_t)i * 1024, *eff = rate + 1024;
            for (int r = 0; r < t[i].n; r++) {
                rate[r] = t[i].col[1][0] * t[i].col[0][r] / t[i].col[0][0];
                eff[r] = 100;
            }
            s[2 * i] = (struct series){t[i].col[0], rate, t[i].n, 1, c, STYLE_DASHED};
            s[2 * i + 1] = (struct series){t[i].col[0], t[i].col[1], t[i].n, 1, c,
                                           STYLE_LINE | STYLE_DOTS};
            s[2 * n + 2 * i] = (struct series){t[i].col[0], eff, t[i].n, 1, c, STYLE_DASHED};
            s[2 * n + 2 * i + 1] = (struct series){t[i].col[0], t[i].col[2], t[i].n, 100, c,
                                                   STYLE_LINE | STYLE_DOTS};
            snprintf(it[2 * i].label, sizeof it[0].label, "%s: measured", t[i].name);
            snprintf(it[2 * i + 1].label, sizeof it[0].label, "%s: ideal (linear)", t[i].name);
            it[2 * i].c = it[2 * i + 1].c = c;
            it[2 * i].style = STYLE_LINE | STYLE_DOTS, it[2 * i + 1].style = STYLE_DASHED;
        }
        const struct panel panels[2] = {
            {"Throughput", "Ranks", "Images/s", 1, s, 2 * n},
            {"Scaling efficiency", "Ranks", "Efficiency (%)", 1, s + 2 * n, 2 * n},
        };
        rc = render(out, panels, 2, it, 2 * n, "Throughput and scaling efficiency against ranks",
                    err);
    }
    for (int i = 0; t && i < n; i++)
        table_free(&t[i]);
    free(t);
    free(s);
    free(it);
    free(ideal);
    return rc;
}
