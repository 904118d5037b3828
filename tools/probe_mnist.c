/* probe_mnist - what a poison carries, seen by classifiers trained on clean MNIST.

   usage: probe_mnist [--data DIR] [--victims LIST] --poisoned DIR     (how the poison reads)
          probe_mnist [--data DIR] [--victims LIST] --reach [--eps E]  (which classes can be reached)

   Both modes first train each classifier of LIST (names of l2c_mnist_classifier, comma-separated;
   default "mlp") for one epoch on clean MNIST (Adam 1e-3, batch 64, seed 5).
   --poisoned: for each class y, how the classifiers read the poisoned training images of class y
   (counts by predicted class, a row per classifier): a non-targeted poison that paints the
   features of w(y) into class y should be read as w(y).
   --reach: for each source class s and target c, the share of the first 64 training images of s
   that 20 signed-gradient steps (size eps / 10, within eps and [0, 1]) make *every* classifier read
   as c: the per-image upper bound of what a generator can paint into class s.
   Build: gcc -std=c99 -O2 -I. tools/probe_mnist.c -o probe_mnist -lm */
#define L2C_IMPLEMENTATION
#include "learn2confuse.h"
#include "examples/cli_args.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MODELS 8
#define PER_CLASS 64
#define SIDE 784

/* Prints the usage to f (the comment above says more); returns the exit status of a bad command line. */
static int usage(FILE *f)
{
    fprintf(f, "usage: probe_mnist [--data DIR] [--victims LIST] --poisoned DIR\n"
                    "       probe_mnist [--data DIR] [--victims LIST] --reach [--eps E]\n");
    return 2;
}

static int load(l2c_dataset *d, const char *dir, const char *prefix)
{
    char images[CLI_PATH_SIZE], labels[CLI_PATH_SIZE];
    cli_idx_paths(dir, prefix, images, labels);
    if (l2c_dataset_load(d, images, labels, 10)) return -1;
    if (d->c != 1 || d->h != 28 || d->w != 28) {
        fprintf(stderr, "probe_mnist: %s holds %dx%dx%d images, not 28x28\n", images, d->c, d->h, d->w);
        l2c_dataset_free(d);
        return 1;
    }
    return 0;
}

/* One epoch of Adam on clean data; NULL (message printed) on failure. */
static l2c_model *train_clean(const char *name, const l2c_dataset *d, l2c_tape *t)
{
    static float x[64 * SIDE];
    static uint8_t y[64];
    l2c_model *m = l2c_mnist_classifier(name, 5);
    l2c_adam adam;
    l2c_batcher order;
    const int *idx;
    int n, rc;
    if (!m) { fprintf(stderr, "probe_mnist: %s\n", l2c_error()); return NULL; }
    memset(&adam, 0, sizeof adam);
    memset(&order, 0, sizeof order);
    rc = l2c_adam_init(&adam, m, 1e-3f, 0.9f, 0.999f, 1e-8f, 0) || l2c_batcher_init(&order, d->n, 64, 1, 5);
    while (!rc && (n = l2c_batcher_next(&order, &idx)) > 0) {
        l2c_tensor *in, *loss;
        if (n < 2) continue;
        l2c_dataset_gather(d, idx, n, x, y);
        l2c_tape_reset(t);
        in = l2c_tape_input(t, n, 1, 28, 28, x, 0);
        loss = in ? l2c_softmax_xent(t, l2c_model_forward(t, m, in, L2C_TRAIN), y, NULL) : NULL;
        l2c_model_zero_grad(m);
        rc = !loss || l2c_backward(t, loss);
        if (!rc) l2c_adam_step(&adam, m);
    }
    l2c_adam_free(&adam);
    l2c_batcher_free(&order);
    if (rc) { fprintf(stderr, "probe_mnist: training %s: %s\n", name, l2c_error()); l2c_model_free(m); return NULL; }
    return m;
}

static int read_poison(l2c_model **m, char **names, int nm, const char *dir, l2c_tape *t)
{
    l2c_dataset p;
    float *x;
    uint8_t *pred, *labels;
    int *all, i, k, y, c, rc;
    if ((rc = load(&p, dir, "train"))) { if (rc < 0) fprintf(stderr, "probe_mnist: %s\n", l2c_error()); return 1; }
    x = (float *)malloc((size_t)p.n * SIDE * sizeof(float));
    pred = (uint8_t *)malloc((size_t)p.n);
    all = (int *)malloc((size_t)p.n * sizeof(int));
    labels = (uint8_t *)malloc((size_t)p.n);
    if (!x || !pred || !all || !labels) { fprintf(stderr, "probe_mnist: out of memory\n"); rc = 1; goto done; }
    for (i = 0; i < p.n; i++) all[i] = i;
    l2c_dataset_gather(&p, all, p.n, x, labels);
    printf("how classifiers trained on clean MNIST read the poisoned training images of %s\n"
           "class  classifier   read as 0..9 (counts)\n", dir);
    for (k = 0; k < nm; k++) {
        if (l2c_model_predict(m[k], t, x, p.n, 256, pred)) { fprintf(stderr, "probe_mnist: %s\n", l2c_error()); rc = 1; goto done; }
        for (y = 0; y < 10; y++) {
            int counts[10] = { 0 };
            for (i = 0; i < p.n; i++) if (labels[i] == y) counts[pred[i]]++;
            printf("%-6d %-12s", y, names[k]);
            for (c = 0; c < 10; c++) printf(" %5d", counts[c]);
            printf("\n");
        }
    }
done:
    free(x); free(pred); free(all); free(labels);
    l2c_dataset_free(&p);
    return rc;
}

/* 20 signed-gradient steps of the images x (from x0) towards class c against every model. */
static int search(l2c_model **m, int nm, const float *x0, float *x, float *g, int n, int c, float eps, l2c_tape *t)
{
    uint8_t target[PER_CLASS];
    int s, k, i;
    memset(target, c, sizeof target);
    memcpy(x, x0, (size_t)n * SIDE * sizeof(float));
    for (s = 0; s < 20; s++) {
        memset(g, 0, (size_t)n * SIDE * sizeof(float));
        for (k = 0; k < nm; k++) {
            l2c_tensor *in, *loss;
            l2c_tape_reset(t);
            in = l2c_tape_input(t, n, 1, 28, 28, x, 1);
            loss = in ? l2c_softmax_xent(t, l2c_model_forward(t, m[k], in, L2C_EVAL), target, NULL) : NULL;
            if (!loss || l2c_backward(t, loss)) return -1;
            for (i = 0; i < n * SIDE; i++) g[i] += in->grad[i];
        }
        for (i = 0; i < n * SIDE; i++) {
            float v = x[i] - 0.1f * eps * (g[i] > 0.0f ? 1.0f : g[i] < 0.0f ? -1.0f : 0.0f);
            v = v < x0[i] - eps ? x0[i] - eps : v > x0[i] + eps ? x0[i] + eps : v;
            x[i] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
        }
    }
    return 0;
}

static int reach(l2c_model **m, char **names, int nm, const l2c_dataset *d, float eps, l2c_tape *t)
{
    static float x0[PER_CLASS * SIDE], x[PER_CLASS * SIDE], g[PER_CLASS * SIDE];
    uint8_t labels[PER_CLASS], pred[PER_CLASS];
    int idx[PER_CLASS], s, c, k, i, n;
    printf("%% of the first %d training images of each class (rows) that eps = %g makes", PER_CLASS, eps);
    for (k = 0; k < nm; k++) printf(" %s", names[k]);
    printf(" read as each class (columns)\n");
    for (s = 0; s < 10; s++) {
        for (i = 0, n = 0; i < d->n && n < PER_CLASS; i++) if (d->labels[i] == s) idx[n++] = i;
        if (!n) { printf("%d: no images\n", s); continue; }
        l2c_dataset_gather(d, idx, n, x0, labels);
        printf("%d:", s);
        for (c = 0; c < 10; c++) {
            int fooled[PER_CLASS], count = 0;
            if (c == s) { printf("     -"); continue; }
            if (search(m, nm, x0, x, g, n, c, eps, t)) { fprintf(stderr, "probe_mnist: %s\n", l2c_error()); return 1; }
            for (i = 0; i < n; i++) fooled[i] = 1;
            for (k = 0; k < nm; k++) {
                if (l2c_model_predict(m[k], t, x, n, n, pred)) { fprintf(stderr, "probe_mnist: %s\n", l2c_error()); return 1; }
                for (i = 0; i < n; i++) fooled[i] &= pred[i] == c;
            }
            for (i = 0; i < n; i++) count += fooled[i];
            printf(" %5.0f", 100.0 * count / n);
        }
        printf("\n");
        fflush(stdout);
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *data = "build/mnist", *poisoned = NULL;
    char list[256] = "mlp", *names[MAX_MODELS], *tok;
    l2c_model *m[MAX_MODELS];
    l2c_dataset clean;
    l2c_tape *t;
    float eps = 0.3f;
    int i, nm = 0, do_reach = 0, rc;
    if (cli_wants_help(argc, argv)) { usage(stdout); return 0; }
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--reach")) { do_reach = 1; continue; }
        if (!v) return usage(stderr);
        if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--poisoned")) poisoned = v;
        else if (!strcmp(a, "--victims") && strlen(v) < sizeof list) strcpy(list, v);
        else if (!strcmp(a, "--eps")) {
            char *end;
            eps = strtof(v, &end);
            if (*end || !(eps > 0.0f && eps <= 1.0f)) { fprintf(stderr, "probe_mnist: --eps must be in (0, 1]\n"); return 2; }
        } else return usage(stderr);
        i++;
    }
    if (!do_reach == !poisoned) return usage(stderr);   /* exactly one mode */
    for (tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        l2c_model *probe;
        if (nm == MAX_MODELS) { fprintf(stderr, "probe_mnist: at most %d classifiers\n", MAX_MODELS); return 2; }
        if (!(probe = l2c_mnist_classifier(tok, 5))) { fprintf(stderr, "probe_mnist: %s\n", l2c_error()); return 2; }
        l2c_model_free(probe);
        names[nm++] = tok;
    }
    if (!nm) return usage(stderr);
    if ((rc = load(&clean, data, "train"))) { if (rc < 0) fprintf(stderr, "probe_mnist: %s\n", l2c_error()); return 1; }
    if (!(t = l2c_tape_new())) { fprintf(stderr, "probe_mnist: out of memory\n"); return 1; }
    for (i = 0, rc = 0; i < nm && !rc; i++) rc = !(m[i] = train_clean(names[i], &clean, t));
    if (!rc) rc = poisoned ? read_poison(m, names, nm, poisoned, t) : reach(m, names, nm, &clean, eps, t);
    while (i-- > 0) l2c_model_free(m[i]);
    l2c_tape_free(t);
    l2c_dataset_free(&clean);
    return rc;
}
