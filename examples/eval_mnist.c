/* eval_mnist: how useful is a training set? Trains several victims from scratch, each with its own
   ordinary recipe, on the given (clean or poisoned) MNIST training set and reports, on the clean
   test set: final and peak accuracy, the share predicted as y+K (the label-specific attack's
   success; K = 1 unless --label-shift K), accuracy when fed only the noise (with --generator), and the confusion matrix.
   With --defence class-mean the victims train on the set after l2c_defend_class_mean instead.
   The victims and their recipes: eval_victims.h; the options: eval_options.h (the usage text there
   is what --help prints). */
#define L2C_IMPLEMENTATION
#include "learn2confuse.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "classic_victims.h"
#include "cli_args.h"
#include "eval_victims.h"
#include "eval_options.h"

/* The set's pixels as floats in [0, 1]. */
static float *to_floats(const l2c_dataset *ds)
{
    size_t i, n = (size_t)ds->n * ds->c * ds->h * ds->w;
    float *x = (float *)malloc(n * sizeof(float));
    for (i = 0; x && i < n; i++) x[i] = ds->images[i] / 255.0f;
    return x;
}

/* The confusion matrix (rows: true class, columns: predicted) as DIR/confusion-NAME.txt. */
static void write_confusion(const char *dir, const char *name, const uint8_t *pred, const uint8_t *labels, int n)
{
    static int counts[10][10];
    char path[CLI_PATH_SIZE], text[2048];
    int i, j, len;
    memset(counts, 0, sizeof counts);
    for (i = 0; i < n; i++) counts[labels[i]][pred[i]]++;
    len = snprintf(text, sizeof text, "10\n");
    for (i = 0; i < 10; i++)
        for (j = 0; j < 10; j++) len += snprintf(text + len, sizeof text - (size_t)len, "%d%c", counts[i][j], j == 9 ? '\n' : ' ');
    snprintf(path, sizeof path, "%s/confusion-%s.txt", dir, name);
    if (l2c_write_file_atomic(path, text, (size_t)len)) fprintf(stderr, "eval_mnist: %s\n", l2c_error());
}

static int load_set(l2c_dataset *ds, const char *dir, const char *prefix)
{
    char im[CLI_PATH_SIZE], lb[CLI_PATH_SIZE];
    cli_idx_paths(dir, prefix, im, lb);
    if (l2c_dataset_load(ds, im, lb, 10)) { fprintf(stderr, "eval_mnist: %s\n", l2c_error()); return -1; }
    if (ds->c != 1 || ds->h != 28 || ds->w != 28) {
        fprintf(stderr, "eval_mnist: %s holds %dx%dx%d images; the victims take 28x28 grey ones\n", im, ds->c, ds->h, ds->w);
        return -1;
    }
    return 0;
}

/* --defence class-mean: each class's shared perturbation, estimated against the first per_class
   images per class of the clean sample and shrunk by noise_z standard errors, is subtracted from
   the training set (and the baseline). */
static int defend(const eval_options *o, l2c_dataset *train, l2c_dataset *base)
{
    l2c_dataset sample;
    int rc;
    if (load_set(&sample, o->clean_sample, "train")) return -1;
    rc = l2c_defend_class_mean(train, &sample, o->per_class, o->noise_z);
    if (!rc && base) rc = l2c_defend_class_mean(base, &sample, o->per_class, o->noise_z);
    if (rc) fprintf(stderr, "eval_mnist: %s\n", l2c_error());
    l2c_dataset_free(&sample);
    return rc;
}

/* One generator's noise on the clean test images: eps*g(x) (released 0), or what survives in its
   release, the quantised poison minus the clean image (released 1; the release kept in *release). */
static int generator_noise(const char *gen_path, const l2c_dataset *test, const float *xtest, float eps, int released,
                           float *noise, l2c_dataset *release)
{
    l2c_model *g = l2c_model_read(gen_path);   /* whatever generator it holds */
    int rc = !g ? -1 : released ? l2c_poison_dataset(g, test, eps, 1.0f, release) : l2c_generator_noise(g, xtest, test->n, eps, noise);
    if (rc) fprintf(stderr, "eval_mnist: %s: %s\n", gen_path, l2c_error());
    l2c_model_free(g);
    return rc;
}

/* The noise alone on the clean test images, for a comma-separated list of generators (up to 16),
   combined as poison_mnist --runs combines its releases: their eps*g(x) added and clamped to
   [-eps, eps], or averaged (mean 1) (released 0); or their releases so combined (l2c_poison_combine),
   minus the clean image (released 1). NULL (message printed) on failure. */
static float *noise_only(const char *gen_list, const l2c_dataset *test, const float *xtest, float eps, int released, int mean)
{
    char paths[CLI_PATH_SIZE], *path;
    size_t size = (size_t)test->n * 784;
    float *noise = (float *)calloc(size, sizeof(float));
    float *one = released ? NULL : (float *)malloc(size * sizeof(float));   /* one generator's eps*g(x) */
    l2c_dataset releases[16], combined;
    int count = 0, rc = noise && (released || one) ? 0 : -1;
    size_t i;
    if (rc) fprintf(stderr, "eval_mnist: out of memory\n");
    memset(releases, 0, sizeof releases), memset(&combined, 0, sizeof combined);
    snprintf(paths, sizeof paths, "%s", gen_list);
    for (path = strtok(paths, ","); path && !rc; path = strtok(NULL, ","), count++) {
        if (count == 16) { fprintf(stderr, "eval_mnist: --generator lists more than 16 files\n"); rc = -1; break; }
        rc = generator_noise(path, test, xtest, eps, released, one, &releases[count]);
        for (i = 0; !rc && !released && i < size; i++) noise[i] += one[i];
    }
    if (!rc && count == 0) fprintf(stderr, "eval_mnist: --generator names no file\n"), rc = -1;
    for (i = 0; !rc && !released && i < size; i++)
        noise[i] = mean ? noise[i] / (float)count : noise[i] > eps ? eps : noise[i] < -eps ? -eps : noise[i];
    if (!rc && released && (rc = l2c_poison_combine(test, releases, count, eps, !mean, &combined)))
        fprintf(stderr, "eval_mnist: combining the generators' releases: %s\n", l2c_error());
    for (i = 0; !rc && released && i < size; i++) noise[i] = combined.images[i] / 255.0f - xtest[i];
    while (count > 0) l2c_dataset_free(&releases[--count]);
    l2c_dataset_free(&combined);
    free(one);
    if (rc) free(noise), noise = NULL;
    return noise;
}

/* A share as a percentage with two decimals, or "-" for a figure not measured (negative). */
static void pct(char *buf, double v) { if (v < 0) strcpy(buf, "-"); else sprintf(buf, "%.2f", 100 * v); }

/* One victim's line of the report: a JSON object, or a row of the table. rb: on the --baseline
   set (final_acc -1 without one); lo, hi: the range of its final accuracy over the repeats. */
static void print_result(const eval_options *o, const char *name, const char *recipe_text, const result *rb,
                         const result *r, double lo, double hi, int first)
{
    char c0[32], c1[32], c2[32], c3[32], c4[32], range[48];
    if (o->json) {
        printf("%s\n  {\"name\": \"%s\", \"recipe\": \"%s\", \"clean_train_acc\": %.4f, \"final_acc\": %.4f, \"peak_acc\": %.4f, "
               "\"label_map_success\": %.4f, \"noise_only_acc\": %.4f, \"final_acc_min\": %.4f, \"final_acc_max\": %.4f}",
               first ? "" : ",", name, recipe_text, rb->final_acc, r->final_acc, r->peak_acc, r->shifted, r->noise_acc, lo, hi);
        return;
    }
    pct(c0, rb->final_acc); pct(c1, r->final_acc); pct(c2, r->peak_acc); pct(c3, r->shifted); pct(c4, r->noise_acc);
    snprintf(range, sizeof range, "  %.2f-%.2f", 100 * lo, 100 * hi);
    printf("%-10s %-46s %8s %8s %8s %8s %8s%s\n", name, recipe_text, o->base_dir ? c0 : "", c1, c2, c3, c4, o->repeats > 1 ? range : "");
}

/* The mean absolute value of the noise fed for "noise only" (0 without it): its size. */
static double mean_abs(const float *noise, size_t size)
{
    double sum = 0.0;
    size_t i;
    for (i = 0; noise && i < size; i++) sum += fabs((double)noise[i]);
    return size ? sum / (double)size : 0.0;
}

/* The report's first lines: the recipe override and the repeats (table), or the JSON header. */
static void print_header(const eval_options *o, const char *override_text, double noise_size)
{
    char map_col[16];
    if (o->json) {
        printf("{\"train\": \"%s\", \"epochs\": %d, \"repeats\": %d, \"label_shift\": %d, \"recipe_override\": \"%s\", \"noise_only\": \"%s\", "
               "\"noise_mean_abs\": %.6f, \"defence\": \"%s\", \"defence_per_class\": %d, \"defence_noise_z\": %g, \"victims\": [",
               o->train_dir, o->epochs, o->repeats, o->label_shift, override_text, !o->generator ? "none" : o->released_noise ? "released" : "generator",
               noise_size, o->defend ? "class-mean" : "none", o->defend ? o->per_class : 0, o->defend ? o->noise_z : 0.0);
        return;
    }
    if (o->defend)
        printf("defence: class means subtracted, estimated with the first %d clean images per class of %s, shrunk by %g standard errors\n",
               o->per_class, o->clean_sample, o->noise_z);
    if (override_text[0]) printf("recipe override: every network victim trains with %s\n", override_text);
    if (o->repeats > 1) printf("each figure the mean of %d victims (seeds %lu..%lu); range: their lowest and highest final%%\n", o->repeats, o->seed, o->seed + (unsigned long)o->repeats - 1);
    snprintf(map_col, sizeof map_col, "y+%d %%", o->label_shift);
    printf("%-10s %-46s %8s %8s %8s %8s %8s%s\n", "victim", "recipe (2 epochs unless --epochs)", o->base_dir ? "clean%" : "",
           "final%", "peak%", map_col, "noise%", o->repeats > 1 ? "  range" : "");
}

int main(int argc, char **argv)
{
    eval_options o;
    int v, first = 1;
    char override_text[96];
    float *xtest, *noise = NULL;
    uint8_t *pred, *scratch;
    l2c_dataset train, test, base;
    l2c_tape *tape;

    cli_program = "eval_mnist";
    cli_help(argc, argv, usage);
    read_eval_options(argc, argv, &o);
    if (load_set(&train, o.train_dir, "train") || load_set(&test, o.test_dir, "t10k") ||
        (o.base_dir && load_set(&base, o.base_dir, "train"))) return 1;
    if (o.defend && defend(&o, &train, o.base_dir ? &base : NULL)) return 1;
    xtest = to_floats(&test);
    pred = (uint8_t *)malloc((size_t)test.n);
    scratch = (uint8_t *)malloc((size_t)test.n);
    tape = l2c_tape_new();
    if (!xtest || !pred || !scratch || !tape) { fprintf(stderr, "eval_mnist: out of memory\n"); return 1; }
    if (o.generator && !(noise = noise_only(o.generator, &test, xtest, o.eps, o.released_noise, o.combine_mean))) return 1;
    describe_recipe(override_text, sizeof override_text);
    print_header(&o, override_text, mean_abs(noise, (size_t)test.n * 784));

    for (v = 0; v < NVICTIMS; v++) {
        const victim *vi = &VICTIMS[v];
        result r, rb;
        double lo = 0, hi = 0, blo, bhi;
        if (!listed(o.victims, vi->name)) continue;
        rb.final_acc = -1;
        l2c_clear_error();
        if ((o.base_dir && evaluate_repeats(vi, &base, &test, xtest, NULL, o.epochs, o.label_shift, o.seed, o.repeats, tape, pred, scratch, &rb, &blo, &bhi)) ||
            evaluate_repeats(vi, &train, &test, xtest, noise, o.epochs, o.label_shift, o.seed, o.repeats, tape, pred, scratch, &r, &lo, &hi)) {
            if (l2c_error()[0]) fprintf(stderr, "eval_mnist: %s: %s\n", vi->name, l2c_error());   /* else said above */
            return 1;
        }
        if (o.confusion_dir) write_confusion(o.confusion_dir, vi->name, pred, test.labels, test.n);
        print_result(&o, vi->name, override_text[0] && !vi->classic ? override_text : vi->recipe, &rb, &r, lo, hi, first);
        fflush(stdout);
        first = 0;
    }
    if (o.json) printf("\n]}\n");
    free(xtest); free(noise); free(pred); free(scratch); l2c_tape_free(tape);
    l2c_dataset_free(&train); l2c_dataset_free(&test);
    if (o.base_dir) l2c_dataset_free(&base);
    return 0;
}
