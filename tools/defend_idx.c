/* defend_idx - writes a training set after the class-mean defence (l2c_defend_class_mean), for
   training with any other tool: each class's shared perturbation, estimated against a small clean
   labelled sample and shrunk by Z standard errors of the sample's mean, is subtracted from every
   training image of the class. Files use MNIST's names in each folder (train-images-idx3-ubyte,
   train-labels-idx1-ubyte); any image shape works, the clean sample's must match.
   Build: gcc -std=c99 -O2 -I. tools/defend_idx.c -o defend_idx -lm */
#define L2C_IMPLEMENTATION
#include "learn2confuse.h"
#include "examples/cli_args.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const usage[] = {
    "usage: defend_idx --train DIR --clean-sample DIR --out DIR [--per-class N] [--noise-z Z] [--classes K]",
    "",
    "Reads DIR/train-images-idx3-ubyte and DIR/train-labels-idx1-ubyte of --train (the suspect set)",
    "and of --clean-sample (trusted clean labelled images), and writes the defended set to --out",
    "under the same names (each file atomically: a failure leaves it as it was). --out must not be --train.",
    "--per-class N: clean images per class used, the first ones (default 100); --noise-z Z: the",
    "estimate is shrunk by Z standard errors of the clean mean (default 3; 0: the raw estimate,",
    "which harms an unpoisoned set); --classes K: labels are below K (default 10).",
    NULL
};

typedef struct defend_options {
    const char *train, *sample, *out;
    int per_class, classes;
    float noise_z;
} defend_options;

static void read_options(int argc, char **argv, defend_options *o)
{
    int i;
    memset(o, 0, sizeof *o);
    o->per_class = 100, o->classes = 10, o->noise_z = 3.0f;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--train")) o->train = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--clean-sample")) o->sample = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--out")) o->out = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--per-class")) o->per_class = cli_int(argc, argv, &i);
        else if (!strcmp(a, "--noise-z")) o->noise_z = cli_float(argc, argv, &i);
        else if (!strcmp(a, "--classes")) o->classes = cli_int(argc, argv, &i);
        else { fprintf(stderr, "defend_idx: unknown option %s (--help lists the options)\n", a); exit(2); }
    }
    if (!o->train || !o->sample || !o->out) { fprintf(stderr, "defend_idx: need --train, --clean-sample and --out\n"); exit(2); }
    if (!strcmp(o->train, o->out)) { fprintf(stderr, "defend_idx: --out must be another folder than --train (the suspect set is kept)\n"); exit(2); }
    /* the range checks of per_class and noise_z are the library's */
}

int main(int argc, char **argv)
{
    defend_options o;
    l2c_dataset train, sample;
    char images[CLI_PATH_SIZE], labels[CLI_PATH_SIZE];
    int rc;
    cli_program = "defend_idx";
    cli_help(argc, argv, usage);
    read_options(argc, argv, &o);
    cli_idx_paths(o.train, "train", images, labels);
    if (l2c_dataset_load(&train, images, labels, o.classes)) { fprintf(stderr, "defend_idx: %s\n", l2c_error()); return 1; }
    cli_idx_paths(o.sample, "train", images, labels);
    if (l2c_dataset_load(&sample, images, labels, o.classes)) {
        fprintf(stderr, "defend_idx: %s\n", l2c_error());
        l2c_dataset_free(&train);
        return 1;
    }
    cli_idx_paths(o.out, "train", images, labels);
    rc = l2c_defend_class_mean(&train, &sample, o.per_class, o.noise_z) || l2c_dataset_save(&train, images, labels);
    if (rc) fprintf(stderr, "defend_idx: %s\n", l2c_error());
    else printf("wrote %s and %s (%d images, %d clean per class, noise_z %g)\n", images, labels, train.n, o.per_class, o.noise_z);
    l2c_dataset_free(&train); l2c_dataset_free(&sample);
    return rc ? 1 : 0;
}
