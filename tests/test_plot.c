/* test_plot.c — the legend's run names (a run directory for history.csv and scaling.csv, the
 * stem otherwise), the checks made before anything is drawn (extension, file count), and a
 * figure written from a CSV with gaps, in both formats, with no temporary file left. */
#include <setjmp.h> // defines: jmp_buf (needed by cmocka.h)
#include <stdarg.h> // defines: va_list (needed by cmocka.h)
#include <stddef.h> // defines: size_t (needed by cmocka.h)
#include <stdint.h> // defines: uint64_t

#include <cmocka.h> // defines: cmocka_unit_test, assert_*

#include <stdio.h>    // defines: snprintf, fopen
#include <string.h>   // defines: strstr
#include <sys/stat.h> // defines: stat, mkdir
#include <unistd.h>   // defines: access

#include "plot.h"
#include "testutil.h"

static void test_run_names(void **state)
{
    (void)state;
    char name[128];
    sn_plot_run_name("runs/mnist_convnet/history.csv", name, sizeof name);
    assert_string_equal(name, "mnist_convnet");
    sn_plot_run_name("/abs/path/weak/scaling.csv", name, sizeof name);
    assert_string_equal(name, "weak");
    sn_plot_run_name("baseline.csv", name, sizeof name);
    assert_string_equal(name, "baseline");
    sn_plot_run_name("dir.with.dots/run.v2.csv", name, sizeof name);
    assert_string_equal(name, "run.v2");
    sn_plot_run_name("noext", name, sizeof name);
    assert_string_equal(name, "noext");
    sn_plot_run_name(".hidden", name, sizeof name);
    assert_string_equal(name, ".hidden");
    /* an existing history.csv in the current directory: the directory's real name */
    const char *dir = sn_test_dir("plot_names");
    char path[1024];
    snprintf(path, sizeof path, "%s/history.csv", dir);
    assert_int_equal(sn_test_write_file(path, "epoch\n"), 0);
    sn_plot_run_name(path, name, sizeof name);
    assert_string_equal(name, "plot_names");
    /* a name longer than the buffer is cut, terminated */
    char small[5];
    sn_plot_run_name("abcdefghij.csv", small, sizeof small);
    assert_string_equal(small, "abcd");
}

static void test_checks_before_reading(void **state)
{
    (void)state;
    struct sn_err err = {0};
    const char *csv[] = {"does-not-exist.csv"};
    /* the extension is checked first: no file is read for a figure that cannot be written */
    assert_int_equal(sn_plot_curves(csv, 1, "out.gif", &err), SN_EINVAL);
    assert_non_null(strstr(err.msg, "out.gif: unknown image type '.gif'"));
    assert_int_equal(sn_plot_curves(csv, 1, "dir.png/out", &err), SN_EINVAL);
    assert_non_null(strstr(err.msg, "(no extension)"));
    assert_int_equal(sn_plot_curves(csv, 0, "out.png", &err), SN_EINVAL);
    assert_non_null(strstr(err.msg, "no CSV file"));
    assert_int_equal(sn_plot_scaling(csv, 1, "out.svg", &err), SN_EIO);
    assert_non_null(strstr(err.msg, "does-not-exist.csv: cannot open"));
}

static void test_figure_with_gaps(void **state)
{
    (void)state;
    const char *dir = sn_test_dir("plot_figure");
    char csv[1024], png[1024], svg[1024], tmp[1100];
    snprintf(csv, sizeof csv, "%s/run.csv", dir);
    /* an empty cell and a NaN: gaps, not errors */
    assert_int_equal(sn_test_write_file(csv, "epoch,loss,accuracy,val_loss,val_accuracy\n"
                                             "1,1.0,0.5,,0.4\n2,0.8,0.6,nan,nan\n"
                                             "3,0.6,0.7,0.7,0.65\n"),
                     0);
    snprintf(png, sizeof png, "%s/f.png", dir);
    snprintf(svg, sizeof svg, "%s/f.svg", dir);
    struct sn_err err = {0};
    const char *runs[] = {csv};
    assert_int_equal(sn_plot_curves(runs, 1, png, &err), SN_OK);
    assert_int_equal(sn_plot_curves(runs, 1, svg, &err), SN_OK);
    FILE *f = fopen(png, "rb");
    assert_non_null(f);
    unsigned char sig[8];
    assert_int_equal(fread(sig, 1, 8, f), 8);
    fclose(f);
    assert_memory_equal(sig, "\x89PNG\r\n\x1a\n", 8);
    char text[4096] = "";
    f = fopen(svg, "r");
    assert_non_null(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    assert_non_null(strstr(text, "<desc>run: training; run: validation</desc>"));
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", png, (long)getpid());
    assert_int_not_equal(access(tmp, F_OK), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_names),
        cmocka_unit_test(test_checks_before_reading),
        cmocka_unit_test(test_figure_with_gaps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
