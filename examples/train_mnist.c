/* train_mnist: trains the reference CNN of the DeepConfuse code on clean MNIST and reports, per
   epoch, loss, train accuracy, clean test accuracy and speed. Shows the engine's basic loop:
   tape -> forward -> loss -> backward -> optimiser step.
   Its options: `usage` below, which --help prints. */
#define L2C_IMPLEMENTATION
#include "learn2confuse.h"
#include "cli_args.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What --help prints: the options and what each does. */
static const char *const usage[] = {
    "usage: train_mnist [--data DIR] [--epochs N] [--lr LR] [--seed S] [--threads T]",
    "Defaults: --data build/mnist, --epochs 2, --lr 0.01 (SGD, momentum 0.9, batch 64), --seed 1,",
    "--threads 0 (all cores).",
    NULL
};

static int load(l2c_dataset *ds, const char *dir, const char *prefix)
{
    char im[CLI_PATH_SIZE], lb[CLI_PATH_SIZE];
    cli_idx_paths(dir, prefix, im, lb);
    if (l2c_dataset_load(ds, im, lb, 10) == 0) return 0;
    fprintf(stderr, "train_mnist: %s\n", l2c_error());
    return 1;
}

/* Share of samples of ds the model classifies correctly. */
static double accuracy(l2c_model *m, l2c_tape *t, const l2c_dataset *ds)
{
    size_t per = (size_t)ds->c * ds->h * ds->w;
    float *x = (float *)malloc((size_t)ds->n * per * sizeof(float));
    uint8_t *pred = (uint8_t *)malloc((size_t)ds->n);
    int *all = (int *)malloc((size_t)ds->n * sizeof(int)), i, hits = 0;
    for (i = 0; i < ds->n; i++) all[i] = i;
    l2c_dataset_gather(ds, all, ds->n, x, NULL);
    if (l2c_model_predict(m, t, x, ds->n, 500, pred) == 0)
        for (i = 0; i < ds->n; i++) hits += pred[i] == ds->labels[i];
    free(x); free(pred); free(all);
    return (double)hits / ds->n;
}

int main(int argc, char **argv)
{
    const char *dir = "build/mnist";
    int epochs = 2, threads = 0, i, epoch, batch = 64;
    float lr = 0.01f;
    unsigned long seed = 1;
    l2c_dataset train, test;
    l2c_model *net;
    l2c_tape *tape;
    l2c_sgd sgd;
    l2c_batcher order;
    float *x = (float *)malloc((size_t)batch * 784 * sizeof(float));
    uint8_t y[64];

    cli_program = "train_mnist";
    cli_help(argc, argv, usage);
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--data")) dir = cli_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--epochs")) epochs = cli_int(argc, argv, &i);
        else if (!strcmp(argv[i], "--lr")) lr = cli_float(argc, argv, &i);
        else if (!strcmp(argv[i], "--seed")) seed = cli_seed(argc, argv, &i);
        else if (!strcmp(argv[i], "--threads")) threads = cli_int(argc, argv, &i);
        else { fprintf(stderr, "train_mnist: unknown option %s (--help lists the options)\n", argv[i]); return 2; }
    }
    if (epochs < 1 || !(lr > 0) || threads < 0) {
        fprintf(stderr, "train_mnist: need --epochs >= 1, --lr > 0 and --threads >= 0\n");
        return 2;
    }
    if (load(&train, dir, "train") || load(&test, dir, "t10k")) return 1;
    if (threads > 0) l2c_set_threads(threads);

    net = l2c_mnist_victim(100, seed);
    tape = l2c_tape_new();
    if (!net || !tape || !x || l2c_sgd_init(&sgd, net, lr, 0.9f, 0.0f) ||
        l2c_batcher_init(&order, train.n, batch, 1, seed)) { fprintf(stderr, "train_mnist: %s\n", l2c_error()); return 1; }
    printf("reference CNN, %lu parameters, SGD lr %g momentum 0.9, batch %d, %d threads\n",
           (unsigned long)net->nparams, lr, batch, l2c_get_threads());

    for (epoch = 1; epoch <= epochs; epoch++) {
        const int *idx;
        int n, seen = 0, hits = 0, j;
        double loss_sum = 0.0, t0 = l2c_seconds(), secs;
        while ((n = l2c_batcher_next(&order, &idx)) > 0) {
            l2c_tensor *in, *logits, *loss;
            l2c_dataset_gather(&train, idx, n, x, y);
            l2c_tape_reset(tape);
            in = l2c_tape_input(tape, n, 1, 28, 28, x, 0);
            logits = l2c_model_forward(tape, net, in, L2C_TRAIN);
            loss = logits ? l2c_softmax_xent(tape, logits, y, NULL) : NULL;
            if (!loss) { fprintf(stderr, "train_mnist: %s\n", l2c_error()); return 1; }
            l2c_model_zero_grad(net);
            l2c_backward(tape, loss);
            l2c_sgd_step(&sgd, net);
            for (j = 0; j < n; j++) {
                const float *z = logits->data + j * 10;
                int k, best = 0;
                for (k = 1; k < 10; k++) if (z[k] > z[best]) best = k;
                hits += best == y[j];
            }
            loss_sum += loss->data[0] * n;
            seen += n;
        }
        secs = l2c_seconds() - t0;
        printf("epoch %d  loss %.4f  train acc %.2f%%  test acc %.2f%%  %.0f images/s\n", epoch,
               loss_sum / seen, 100.0 * hits / seen, 100.0 * accuracy(net, tape, &test), seen / secs);
        fflush(stdout);
    }
    l2c_batcher_free(&order); l2c_sgd_free(&sgd); l2c_tape_free(tape); l2c_model_free(net);
    l2c_dataset_free(&train); l2c_dataset_free(&test); free(x);
    return 0;
}
