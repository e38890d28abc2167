/* test_trace.c — the trace recorder in one process: nothing recorded while off, events sorted by
 * lane and start with parents first, names escaped, details copied, a full buffer stopping the
 * recording and marking the file; the path probe; and `timeline` drawing a recorded step and
 * refusing a step the trace lacks or a file that is not a trace. */
#include <setjmp.h> // defines: jmp_buf (needed by cmocka.h)
#include <stdarg.h> // defines: va_list (needed by cmocka.h)
#include <stddef.h> // defines: size_t (needed by cmocka.h)
#include <stdint.h> // defines: uint64_t

#include <cmocka.h> // defines: cmocka_unit_test, assert_*

#include <stdio.h>  // defines: fopen, fread, snprintf
#include <stdlib.h> // defines: malloc, free
#include <string.h> // defines: strstr, strcpy

#include "testutil.h"
#include "timeline.h"
#include "trace.h"
#include "trace_gather.h"

/* The whole file (malloc'ed, NUL-terminated), or NULL. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *s = malloc(1 << 20);
    size_t n = s ? fread(s, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (s)
        s[n] = '\0';
    return s;
}

static int count(const char *s, const char *what)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, what)) != NULL; p++)
        n++;
    return n;
}

static void test_off_records_nothing(void **state)
{
    (void)state;
    assert_int_equal(sn_trace_on, 0);
    assert_true(sn_trace_clock() == 0);
    sn_trace_record(SN_TRACE_STEP, "step", NULL, 0, 1, 2); /* no buffer: must not crash */
    sn_trace_end(SN_TRACE_STEP, "step", 0, 0);
}

static void test_events_sorted_escaped(void **state)
{
    (void)state;
    char path[600];
    snprintf(path, sizeof path, "%s/t.json", sn_test_dir("trace_sorted"));
    struct sn_err err = {0};
    assert_int_equal(sn_trace_start(NULL, 16, &err), SN_OK);
    double t = sn_now();
    char detail[64];
    strcpy(detail, "run/x-last.ckpt");
    /* children end first, so they are recorded before their parent */
    sn_trace_record(SN_TRACE_FORWARD, "conv\"2d\\", NULL, 1, t + 0.001, t + 0.002);
    sn_trace_record(SN_TRACE_FORWARD, "forward", NULL, -1, t + 0.001, t + 0.003);
    sn_trace_record(SN_TRACE_STEP, "step", NULL, 7, t, t + 0.004);
    sn_trace_record(SN_TRACE_ALLREDUCE, "allreduce", NULL, 1, t + 0.002, t + 0.0035);
    sn_trace_record(SN_TRACE_CHECKPOINT, "checkpoint", detail, 7, t + 0.005, t + 0.006);
    strcpy(detail, "overwritten");
    assert_int_equal(sn_trace_finish(NULL, path, NULL, &err), SN_OK);
    assert_int_equal(sn_trace_on, 0);
    char *s = slurp(path);
    assert_non_null(s);
    assert_int_equal(count(s, "\"ph\":\"X\""), 5);
    assert_non_null(strstr(s, "\"name\":\"conv\\\"2d\\\\\""));
    assert_non_null(strstr(s, "\"detail\":\"run/x-last.ckpt\""));
    assert_non_null(strstr(s, "\"truncated\":false"));
    assert_non_null(strstr(s, "\"name\":\"allreduce bucket 1\""));
    /* the step, then its forward pass, then the layer: parents before children */
    char *step = strstr(s, "\"cat\":\"step\""), *fwd = strstr(s, "\"name\":\"forward\"");
    char *layer = strstr(s, "\"name\":\"conv");
    assert_true(step && fwd && layer && step < fwd && fwd < layer);
    assert_non_null(strstr(s, "\"args\":{\"step\":7}"));
    free(s);
}

static void test_full_buffer(void **state)
{
    (void)state;
    char path[600];
    snprintf(path, sizeof path, "%s/t.json", sn_test_dir("trace_full"));
    struct sn_err err = {0};
    assert_int_equal(sn_trace_start(NULL, 3, &err), SN_OK);
    double t = sn_now();
    for (int i = 0; i < 10; i++)
        sn_trace_record(SN_TRACE_DATA, "data wait", NULL, i, t + i * 1e-3, t + i * 1e-3 + 1e-4);
    assert_int_equal(sn_trace_finish(NULL, path, NULL, &err), SN_OK);
    char *s = slurp(path);
    assert_non_null(s);
    assert_int_equal(count(s, "\"ph\":\"X\""), 3);
    assert_non_null(strstr(s, "\"name\":\"trace buffer full\""));
    assert_non_null(strstr(s, "\"dropped\":7"));
    assert_non_null(strstr(s, "\"truncated\":true"));
    free(s);
}

static void test_probe(void **state)
{
    (void)state;
    char path[600];
    struct sn_err err = {0};
    snprintf(path, sizeof path, "%s/t.json", sn_test_dir("trace_probe"));
    assert_int_equal(sn_trace_probe(path, &err), SN_OK);
    snprintf(path, sizeof path, "%s/no/such/dir/t.json", sn_test_dir("trace_probe"));
    assert_int_equal(sn_trace_probe(path, &err), SN_EIO);
    assert_non_null(strstr(err.msg, "--trace"));
    assert_non_null(strstr(err.msg, "no/such/dir/t.json"));
}

/* Three steps of one rank, as train records them; drawn, then refused. */
static void test_timeline(void **state)
{
    (void)state;
    const char *dir = sn_test_dir("trace_timeline");
    char path[600], png[600];
    snprintf(path, sizeof path, "%s/t.json", dir);
    snprintf(png, sizeof png, "%s/step.png", dir);
    struct sn_err err = {0};
    assert_int_equal(sn_trace_start(NULL, 0, &err), SN_OK);
    double t = sn_now();
    for (int s = 0; s < 3; s++, t += 0.01) {
        sn_trace_record(SN_TRACE_DATA, "data wait", NULL, s, t, t + 0.001);
        sn_trace_record(SN_TRACE_FORWARD, "dense", NULL, 0, t + 0.001, t + 0.003);
        sn_trace_record(SN_TRACE_FORWARD, "forward", NULL, -1, t + 0.001, t + 0.003);
        sn_trace_record(SN_TRACE_BACKWARD, "dense", NULL, 0, t + 0.003, t + 0.006);
        sn_trace_record(SN_TRACE_BACKWARD, "backward", NULL, -1, t + 0.003, t + 0.006);
        sn_trace_record(SN_TRACE_ALLREDUCE, "allreduce", NULL, 0, t + 0.006, t + 0.007);
        sn_trace_record(SN_TRACE_OPTIMIZER, "optimizer", NULL, s, t + 0.007, t + 0.008);
        sn_trace_record(SN_TRACE_STEP, "step", NULL, s, t + 0.001, t + 0.008);
    }
    assert_int_equal(sn_trace_finish(NULL, path, NULL, &err), SN_OK);
    struct sn_timeline_info info;
    assert_int_equal(sn_timeline_render(path, png, -1, &info, &err), SN_OK);
    assert_int_equal(info.step, 1); /* the middle one */
    assert_int_equal(info.ranks, 1);
    assert_true(info.ms > 7 && info.ms < 9); /* the step and its data wait, and a margin */
    char *s = slurp(png);
    assert_non_null(s);
    assert_memory_equal(s, "\x89PNG\r\n\x1a\n", 8);
    free(s);
    assert_int_equal(sn_timeline_render(path, png, 5, &info, &err), SN_EINVAL);
    assert_non_null(strstr(err.msg, "steps 0 to 2"));
    char bad[600];
    snprintf(bad, sizeof bad, "%s/bad.json", dir);
    assert_int_equal(sn_test_write_file(bad, "{\"traceEvents\": 3}"), 0);
    assert_int_equal(sn_timeline_render(bad, png, -1, &info, &err), SN_EFORMAT);
    assert_non_null(strstr(err.msg, "no \"traceEvents\" array"));
}

/* LeakSanitizer's hook: fontconfig (through cairo's text) keeps its configuration for the
 * life of the process, by design; everything of ours is still checked. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libfontconfig.so\n"; }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_off_records_nothing),
        cmocka_unit_test(test_events_sorted_escaped),
        cmocka_unit_test(test_full_buffer),
        cmocka_unit_test(test_probe),
        cmocka_unit_test(test_timeline),
    };
    return cmocka_run_group_tests_name("trace", tests, NULL, NULL);
}
