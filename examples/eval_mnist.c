/* eval_mnist: how useful is a training set? Trains several victims from scratch, each with its own
   ordinary recipe, on the given (clean or poisoned) MNIST training set and reports, on the clean
   test set: final and peak accuracy, the share predicted as y+1 (the label-specific attack's
   success), accuracy when fed only the noise (with --generator), and the confusion matrix.

   usage: eval_mnist [--train DIR] [--test DIR] [--epochs N] [--victims a,b,...] [--seed S]
                     [--generator FILE --eps E] [--confusion-dir DIR] [--json]
   victims: softmax, mlp, lenet, cnn-small, cnn, cnn-large (default: all) */
#define L2C_IMPLEMENTATION
#include "learn2confuse.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct victim { const char *name, *recipe; int adam; float lr; } victim;
static const victim VICTIMS[] = {
    { "softmax", "softmax regression, Adam 1e-3, batch 64", 1, 1e-3f },
    { "mlp", "784-512-512-10 ReLU MLP, Adam 1e-3, batch 64", 1, 1e-3f },
    { "lenet", "LeNet (maxpool, no BN), Adam 1e-3, batch 64", 1, 1e-3f },
    { "cnn-small", "paper's small CNN, SGD 0.01 momentum 0.9", 0, 0.01f },
    { "cnn", "paper's reference CNN, SGD 0.01 momentum 0.9", 0, 0.01f },
    { "cnn-large", "paper's large CNN, SGD 0.01 momentum 0.9", 0, 0.01f },
};
#define NVICTIMS (int)(sizeof VICTIMS / sizeof VICTIMS[0])

static l2c_model *build(const char *name, uint64_t seed)
{
    l2c_model *m;
    int bad;
    if (!strcmp(name, "cnn-small")) return l2c_mnist_victim(50, seed);
    if (!strcmp(name, "cnn")) return l2c_mnist_victim(100, seed);
    if (!strcmp(name, "cnn-large")) return l2c_mnist_victim(200, seed);
    if (!(m = l2c_model_new(1, 28, 28))) return NULL;
    if (!strcmp(name, "softmax")) bad = l2c_model_flatten(m) || l2c_model_dense(m, 10);
    else if (!strcmp(name, "mlp"))
        bad = l2c_model_flatten(m) || l2c_model_dense(m, 512) || l2c_model_relu(m) || l2c_model_dense(m, 512) ||
              l2c_model_relu(m) || l2c_model_dense(m, 10);
    else
        bad = l2c_model_conv(m, 20, 5, 1, 0) || l2c_model_maxpool(m, 2, 2) || l2c_model_relu(m) ||
              l2c_model_conv(m, 50, 5, 1, 0) || l2c_model_maxpool(m, 2, 2) || l2c_model_relu(m) ||
              l2c_model_flatten(m) || l2c_model_dense(m, 500) || l2c_model_relu(m) || l2c_model_dense(m, 10);
    if (bad) { l2c_model_free(m); return NULL; }
    l2c_model_init(m, seed);
    return m;
}

static float *to_floats(const l2c_dataset *ds)
{
    size_t i, n = (size_t)ds->n * ds->c * ds->h * ds->w;
    float *x = (float *)malloc(n * sizeof(float));
    for (i = 0; x && i < n; i++) x[i] = ds->images[i] / 255.0f;
    return x;
}

/* Share of predictions equal to want[i] (want = labels, or shifted labels). */
static double share(const uint8_t *pred, const uint8_t *labels, int n, int shift)
{
    int i, hits = 0;
    for (i = 0; i < n; i++) hits += pred[i] == (labels[i] + shift) % 10;
    return (double)hits / n;
}

/* One epoch of the victim's recipe over the training set. */
static int train_epoch(l2c_model *m, l2c_tape *t, const victim *v, l2c_sgd *sgd, l2c_adam *adam,
                       const l2c_dataset *train, l2c_batcher *order, float *x, uint8_t *y)
{
    const int *idx;
    int n;
    while ((n = l2c_batcher_next(order, &idx)) > 0) {
        l2c_tensor *in, *out, *loss;
        if (n < 2) continue;   /* batch norm needs two samples */
        l2c_dataset_gather(train, idx, n, x, y);
        l2c_tape_reset(t);
        in = l2c_tape_input(t, n, 1, 28, 28, x, 0);
        out = in ? l2c_model_forward(t, m, in, L2C_TRAIN) : NULL;
        loss = out ? l2c_softmax_xent(t, out, y, NULL) : NULL;
        if (!loss) return -1;
        l2c_model_zero_grad(m);
        l2c_backward(t, loss);
        if (v->adam) l2c_adam_step(adam, m); else l2c_sgd_step(sgd, m);
    }
    return 0;
}

static void write_confusion(const char *dir, const char *name, const uint8_t *pred, const uint8_t *labels, int n)
{
    static int counts[10][10];
    char path[1024], text[2048];
    int i, j, len;
    memset(counts, 0, sizeof counts);
    for (i = 0; i < n; i++) counts[labels[i]][pred[i]]++;
    len = snprintf(text, sizeof text, "10\n");
    for (i = 0; i < 10; i++)
        for (j = 0; j < 10; j++) len += snprintf(text + len, sizeof text - (size_t)len, "%d%c", counts[i][j], j == 9 ? '\n' : ' ');
    snprintf(path, sizeof path, "%s/confusion-%s.txt", dir, name);
    if (l2c_write_file_atomic(path, text, (size_t)len)) fprintf(stderr, "eval_mnist: %s\n", l2c_error());
}

int main(int argc, char **argv)
{
    const char *train_dir = "build/mnist", *test_dir = "build/mnist", *list = "softmax,mlp,lenet,cnn-small,cnn,cnn-large";
    const char *gen_path = NULL, *conf_dir = NULL;
    char p1[1024], p2[1024];
    int epochs = 2, json = 0, i, v, first = 1;
    unsigned long seed = 7;
    float eps = 0.3f, *xtest, *noise = NULL, *x = (float *)malloc(64 * 784 * sizeof(float));
    uint8_t y[64], *pred;
    l2c_dataset train, test;
    l2c_tape *tape = l2c_tape_new();

    for (i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *val = argv[i + 1];
        if (!strcmp(a, "--train")) train_dir = val;
        else if (!strcmp(a, "--test")) test_dir = val;
        else if (!strcmp(a, "--epochs")) epochs = atoi(val);
        else if (!strcmp(a, "--victims")) list = val;
        else if (!strcmp(a, "--seed")) seed = strtoul(val, NULL, 10);
        else if (!strcmp(a, "--generator")) gen_path = val;
        else if (!strcmp(a, "--eps")) eps = (float)atof(val);
        else if (!strcmp(a, "--confusion-dir")) conf_dir = val;
        else if (!strcmp(a, "--json")) { json = 1; i--; }
        else { fprintf(stderr, "eval_mnist: unknown option %s (see examples/eval_mnist.c)\n", a); return 2; }
    }
    if (i == argc - 1 && !strcmp(argv[i], "--json")) json = 1;
    else if (i != argc) { fprintf(stderr, "eval_mnist: %s needs a value\n", argv[i]); return 2; }
    if (epochs < 1 || !(eps > 0.0f && eps <= 1.0f)) { fprintf(stderr, "eval_mnist: need --epochs >= 1 and --eps in (0, 1]\n"); return 2; }

    snprintf(p1, sizeof p1, "%s/train-images-idx3-ubyte", train_dir);
    snprintf(p2, sizeof p2, "%s/train-labels-idx1-ubyte", train_dir);
    if (l2c_dataset_load(&train, p1, p2, 10)) { fprintf(stderr, "eval_mnist: %s\n", l2c_error()); return 1; }
    snprintf(p1, sizeof p1, "%s/t10k-images-idx3-ubyte", test_dir);
    snprintf(p2, sizeof p2, "%s/t10k-labels-idx1-ubyte", test_dir);
    if (l2c_dataset_load(&test, p1, p2, 10)) { fprintf(stderr, "eval_mnist: %s\n", l2c_error()); return 1; }
    if (train.c != 1 || train.h != 28 || train.w != 28 || test.c != 1 || test.h != 28 || test.w != 28) {
        fprintf(stderr, "eval_mnist: the victims take 28x28 grey images\n"); return 1;
    }
    xtest = to_floats(&test);
    pred = (uint8_t *)malloc((size_t)test.n);
    if (gen_path) {   /* noise only: what eps*g(x) of clean test images alone is classified as */
        l2c_model *g = l2c_mnist_generator(0);
        l2c_dataset pt;
        if (l2c_model_load(g, gen_path) || l2c_poison_dataset(g, &test, eps, 1.0f, &pt)) { fprintf(stderr, "eval_mnist: %s\n", l2c_error()); return 1; }
        noise = to_floats(&pt);
        for (i = 0; i < test.n * 784; i++) noise[i] -= xtest[i];
        l2c_dataset_free(&pt); l2c_model_free(g);
    }
    if (json) printf("{\"train\": \"%s\", \"epochs\": %d, \"victims\": [", train_dir, epochs);
    else printf("%-10s %-46s %8s %8s %8s %8s\n", "victim", "recipe", "final%", "peak%", "y+1 %", "noise%");

    for (v = 0; v < NVICTIMS; v++) {
        const victim *vi = &VICTIMS[v];
        l2c_model *m;
        l2c_sgd sgd;
        l2c_adam adam;
        l2c_batcher order;
        double acc = 0, peak = 0, shift1, noise_acc = -1;
        int e;
        size_t len = strlen(vi->name);
        const char *hit = strstr(list, vi->name);
        while (hit && ((hit != list && hit[-1] != ',') || (hit[len] && hit[len] != ','))) hit = strstr(hit + 1, vi->name);
        if (!hit) continue;
        m = build(vi->name, seed);
        if (!m || (vi->adam ? l2c_adam_init(&adam, m, vi->lr, 0.9f, 0.999f, 1e-8f, 0) : l2c_sgd_init(&sgd, m, vi->lr, 0.9f, 0.0f)) ||
            l2c_batcher_init(&order, train.n, 64, 1, seed)) { fprintf(stderr, "eval_mnist: %s\n", l2c_error()); return 1; }
        for (e = 0; e < epochs; e++) {
            if (train_epoch(m, tape, vi, &sgd, &adam, &train, &order, x, y) ||
                l2c_model_predict(m, tape, xtest, test.n, 500, pred)) { fprintf(stderr, "eval_mnist: %s\n", l2c_error()); return 1; }
            acc = share(pred, test.labels, test.n, 0);
            if (acc > peak) peak = acc;
        }
        shift1 = share(pred, test.labels, test.n, 1);
        if (conf_dir) write_confusion(conf_dir, vi->name, pred, test.labels, test.n);
        if (noise && l2c_model_predict(m, tape, noise, test.n, 500, pred) == 0) noise_acc = share(pred, test.labels, test.n, 0);
        if (json)
            printf("%s\n  {\"name\": \"%s\", \"recipe\": \"%s\", \"final_acc\": %.4f, \"peak_acc\": %.4f, \"label_map_success\": %.4f, \"noise_only_acc\": %.4f}",
                   first ? "" : ",", vi->name, vi->recipe, acc, peak, shift1, noise_acc);
        else
            printf("%-10s %-46s %8.2f %8.2f %8.2f %8s\n", vi->name, vi->recipe, 100 * acc, 100 * peak, 100 * shift1,
                   noise_acc < 0 ? "-" : (snprintf(p1, sizeof p1, "%.2f", 100 * noise_acc), p1));
        fflush(stdout);
        first = 0;
        if (vi->adam) l2c_adam_free(&adam); else l2c_sgd_free(&sgd);
        l2c_batcher_free(&order); l2c_model_free(m);
    }
    if (json) printf("\n]}\n");
    free(x); free(xtest); free(noise); free(pred); l2c_tape_free(tape);
    l2c_dataset_free(&train); l2c_dataset_free(&test);
    return 0;
}
