/* combine_idx - combines the releases of several independently trained poisons of the same clean
   training set (l2c_poison_combine): per pixel their perturbations are averaged (or added with
   --add), within eps. Files use MNIST's names in each folder (train-images-idx3-ubyte,
   train-labels-idx1-ubyte).
   Build: gcc -std=c99 -O2 -I. tools/combine_idx.c -o combine_idx -lm */
#define L2C_IMPLEMENTATION
#include "learn2confuse.h"
#include "examples/cli_args.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RELEASES 8

static const char *const usage[] = {
    "usage: combine_idx --clean DIR --release DIR --release DIR [...] --out DIR [--add] [--eps E]",
    "",
    "Reads DIR/train-images-idx3-ubyte and DIR/train-labels-idx1-ubyte of the clean set and of each",
    "release (2 to 8; poison_mnist outputs of other seeds), and writes the combination to --out",
    "under the same names (each file atomically). The releases' perturbations are averaged per",
    "pixel (--add: added), rounded and kept within --eps (default 0.3) of the clean image.",
    "Two runs of the defaults beat either alone, three added beat three averaged (README: studies of",
    "2026-12-06, evening, last, and night); poison_mnist --runs N trains and combines them in one command.",
    NULL
};

typedef struct combine_options {
    const char *clean, *out, *releases[MAX_RELEASES];
    int count, add;
    float eps;
} combine_options;

static void read_options(int argc, char **argv, combine_options *o)
{
    int i;
    memset(o, 0, sizeof *o);
    o->eps = 0.3f;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--clean")) o->clean = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--out")) o->out = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--add")) o->add = 1;
        else if (!strcmp(a, "--eps")) o->eps = cli_float(argc, argv, &i);
        else if (!strcmp(a, "--release")) {
            if (o->count == MAX_RELEASES) { fprintf(stderr, "combine_idx: at most %d releases\n", MAX_RELEASES); exit(2); }
            o->releases[o->count++] = cli_value(argc, argv, &i);
        } else { fprintf(stderr, "combine_idx: unknown option %s (--help lists the options)\n", a); exit(2); }
    }
    if (!o->clean || !o->out || o->count < 2) { fprintf(stderr, "combine_idx: need --clean, --out and at least two --release\n"); exit(2); }
    for (i = 0; i < o->count; i++)
        if (!strcmp(o->releases[i], o->out)) { fprintf(stderr, "combine_idx: --out must be another folder than the releases (they are kept)\n"); exit(2); }
}

/* Loads DIR/train-*; 0 on success, else prints the library's message. */
static int load(l2c_dataset *d, const char *dir)
{
    char images[CLI_PATH_SIZE], labels[CLI_PATH_SIZE];
    cli_idx_paths(dir, "train", images, labels);
    if (!l2c_dataset_load(d, images, labels, 10)) return 0;
    fprintf(stderr, "combine_idx: %s\n", l2c_error());
    return -1;
}

int main(int argc, char **argv)
{
    combine_options o;
    l2c_dataset clean, releases[MAX_RELEASES], out;
    char images[CLI_PATH_SIZE], labels[CLI_PATH_SIZE];
    int k, loaded = 0, rc;
    cli_program = "combine_idx";
    cli_help(argc, argv, usage);
    read_options(argc, argv, &o);
    memset(&out, 0, sizeof out);
    if (load(&clean, o.clean)) return 1;
    for (rc = 0; !rc && loaded < o.count; loaded += !rc) rc = load(&releases[loaded], o.releases[loaded]);
    if (!rc) {
        cli_idx_paths(o.out, "train", images, labels);
        rc = l2c_poison_combine(&clean, releases, o.count, o.eps, o.add, &out) || l2c_dataset_save(&out, images, labels);
        if (rc) fprintf(stderr, "combine_idx: %s\n", l2c_error());
        else printf("wrote %s and %s (%d releases %s, eps %g)\n", images, labels, o.count, o.add ? "added" : "averaged", o.eps);
    }
    for (k = 0; k < loaded; k++) l2c_dataset_free(&releases[k]);
    l2c_dataset_free(&clean);
    l2c_dataset_free(&out);
    return rc ? 1 : 0;
}
