/* The learn2confuse test runner.

   Build (from the repository root):
       cc -std=c99 -Wall -Wextra -Wpedantic -Werror -O2 -I. tests/test_main.c -o test_main -lm
   Run all tests, or those whose name contains a word:
       ./test_main            ./test_main conv
   The last line of output is always "N passed, N failed"; the exit status is non-zero on failure.
   Scratch files go to a fresh directory under $TMPDIR (or /tmp), removed at the end.
   L2CT_VERBOSE=1 prints the worst element of every gradient check.
   tests/run_matrix.sh builds and runs gcc / clang (with and without OpenMP and sanitizers) and tcc. */
#define _POSIX_C_SOURCE 200809L   /* mkdtemp, rmdir, opendir */
#define L2C_IMPLEMENTATION
#include "learn2confuse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <sys/stat.h>

#include "check.h"

typedef struct l2ct_case { const char *name; void (*fn)(void); } l2ct_case;
#define L2CT(fn) { #fn, fn }

/* ---------------------------------------------------------------- shared helpers --------------- */

static char l2ct_dir[512];

/* A path inside the scratch directory (rotating static buffers: up to 8 live at once). */
static const char *tmp_path(const char *name)
{
    static char bufs[8][640];
    static int next;
    char *b = bufs[next++ & 7];
    snprintf(b, sizeof bufs[0], "%s/%s", l2ct_dir, name);
    return b;
}

static int write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    int ok;
    if (!f) return -1;
    ok = fwrite(data, 1, n, f) == n;
    ok = fclose(f) == 0 && ok;
    return ok ? 0 : -1;
}

/* Reads a whole file into a malloc'ed buffer (NULL if it cannot). */
static unsigned char *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    unsigned char *p = NULL;
    long len;
    *n = 0;
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        p = (unsigned char *)malloc((size_t)len + 1);
        if (p && fread(p, 1, (size_t)len, f) == (size_t)len) *n = (size_t)len;
        else { free(p); p = NULL; }
    }
    fclose(f);
    return p;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void fill_uniform(l2c_rng *r, float *p, size_t n, float lo, float hi)
{
    size_t i;
    for (i = 0; i < n; i++) p[i] = lo + (hi - lo) * l2c_rng_uniform(r);
}

static float max_abs_diff(const float *a, const float *b, size_t n)
{
    float m = 0.0f;
    size_t i;
    for (i = 0; i < n; i++) {
        float d = fabsf(a[i] - b[i]);
        if (!(d <= m)) m = d;   /* NaN propagates */
    }
    return m;
}

#include "test_grad.c"
#include "test_ops.c"
#include "test_io.c"
#include "test_train.c"
#include "test_attack.c"

/* ---------------------------------------------------------------- runner ---------------------- */

static void remove_scratch_dir(void)
{
    DIR *d = opendir(l2ct_dir);
    struct dirent *e;
    char path[1024];
    if (d) {
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(path, sizeof path, "%s/%s", l2ct_dir, e->d_name);
            if (remove(path) != 0) {   /* a directory made by a test: one level deep is enough */
                DIR *d2 = opendir(path);
                struct dirent *e2;
                char p2[1536];
                if (d2) {
                    while ((e2 = readdir(d2)) != NULL) {
                        if (!strcmp(e2->d_name, ".") || !strcmp(e2->d_name, "..")) continue;
                        snprintf(p2, sizeof p2, "%s/%s", path, e2->d_name);
                        remove(p2);
                    }
                    closedir(d2);
                }
                rmdir(path);
            }
        }
        closedir(d);
    }
    rmdir(l2ct_dir);
}

int main(int argc, char **argv)
{
    static const l2ct_case *const suites[] = { l2ct_grad_cases, l2ct_ops_cases, l2ct_io_cases, l2ct_train_cases,
                                                    l2ct_attack_cases };
    const char *filter = argc > 1 ? argv[1] : NULL;
    const char *tmpdir = getenv("TMPDIR");
    int passed = 0, failed = 0, threads = l2c_get_threads();
    size_t s;
    clock_t start = clock();

    snprintf(l2ct_dir, sizeof l2ct_dir, "%s/l2c-tests-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    if (!mkdtemp(l2ct_dir)) {
        printf("cannot create a scratch directory under %s\n", tmpdir && *tmpdir ? tmpdir : "/tmp");
        printf("0 passed, 1 failed\n");
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (s = 0; s < sizeof suites / sizeof suites[0]; s++) {
        const l2ct_case *c;
        for (c = suites[s]; c->name; c++) {
            clock_t t0;
            if (filter && !strstr(c->name, filter)) continue;
            l2ct_failures = 0;
            l2ct_test_name = c->name;
            l2c_clear_error();
            t0 = clock();
            c->fn();
            l2c_set_threads(threads);   /* a test may have changed it */
            if (l2ct_failures) { failed++; printf("FAIL %s (%d failed checks)\n", c->name, l2ct_failures); }
            else {
                passed++;
                printf("ok   %s (%.2fs)\n", c->name, (double)(clock() - t0) / CLOCKS_PER_SEC);
            }
        }
    }
    remove_scratch_dir();
    printf("cpu time %.2fs\n", (double)(clock() - start) / CLOCKS_PER_SEC);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
