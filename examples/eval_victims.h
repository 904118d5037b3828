/* eval_victims.h: eval_mnist's victims — the networks and classic learners it trains on a training
   set, each with its own ordinary recipe (or one given on the command line), and how each is
   trained from scratch and measured on the clean test set. Include after learn2confuse.h and
   classic_victims.h. */
#include <stdlib.h>
#include <string.h>

/* name, architecture (l2c_mnist_classifier), recipe, Adam (else SGD momentum 0.9), lr, and the
   largest random translation of each training image in pixels (data augmentation; 0: none). */
typedef struct victim {
    const char *name, *arch, *recipe;
    int adam;
    float lr;
    int shift;
    const classic_victim *classic;   /* not a network (arch NULL): classic_victims.h */
} victim;
static const victim VICTIMS[] = {
    { "softmax", "softmax", "softmax regression, Adam 1e-3, batch 64", 1, 1e-3f, 0, NULL },
    { "mlp", "mlp", "784-512-512-10 ReLU MLP, Adam 1e-3, batch 64", 1, 1e-3f, 0, NULL },
    { "lenet", "lenet", "LeNet (maxpool, no BN), Adam 1e-3, batch 64", 1, 1e-3f, 0, NULL },
    { "cnn-small", "cnn-small", "paper's small CNN, SGD 0.01 momentum 0.9", 0, 0.01f, 0, NULL },
    { "cnn", "cnn", "paper's reference CNN, SGD 0.01 momentum 0.9", 0, 0.01f, 0, NULL },
    { "cnn-large", "cnn-large", "paper's large CNN, SGD 0.01 momentum 0.9", 0, 0.01f, 0, NULL },
    { "cnn3x3", "cnn3x3", "3x3-conv CNN (16/32, maxpool, dense 128), Adam 1e-3", 1, 1e-3f, 0, NULL },
    { "mlp-wide", "mlp-wide", "784-1024-10 ReLU MLP, SGD 0.05 momentum 0.9", 0, 0.05f, 0, NULL },
    { "cnn3x3-aug", "cnn3x3", "cnn3x3, Adam 1e-3, random shifts of +-2 pixels", 1, 1e-3f, 2, NULL },
    { "cnn-pt", "cnn-pt", "PyTorch example CNN (3x3 32/64, maxpool, 128), SGD 0.01 m. 0.9", 0, 0.01f, 0, NULL },
    { "knn", NULL, "1-NN, L2 distance over pixels, no training", 0, 0.0f, 0, &KNN },
    { "forest", NULL, "random forest, 32 trees, 28 pixels per split", 0, 0.0f, 0, &FOREST },
};
#define NVICTIMS (int)(sizeof VICTIMS / sizeof VICTIMS[0])

/* How a network victim trains: its own optimiser, lr and augmentation, or those given on the
   command line. */
typedef struct recipe { int adam; float lr; int batch, shift; } recipe;
enum { OWN_BATCH = 64, MAX_AUGMENT = 4 };   /* every victim's own mini-batch size; the largest --augment */
static recipe chosen = { -1, 0.0f, OWN_BATCH, -1 };   /* adam, shift -1: each victim's own */

static recipe recipe_of(const victim *v)
{
    recipe r = chosen;
    if (r.adam < 0) { r.adam = v->adam; r.lr = v->lr; }
    if (r.shift < 0) r.shift = v->shift;
    return r;
}

/* Share of predictions equal to want[i] (want = labels, or shifted labels). */
static double share(const uint8_t *pred, const uint8_t *labels, int n, int shift)
{
    int i, hits = 0;
    for (i = 0; i < n; i++) hits += pred[i] == (labels[i] + shift) % 10;
    return (double)hits / n;
}

/* Moves each of the n images in x by its own random offset of at most `shift` pixels. */
static void augment(float *x, float *tmp, int n, int shift, l2c_rng *rng)
{
    int i;
    for (i = 0; i < n; i++) {
        int dx = (int)l2c_rng_below(rng, 2 * shift + 1) - shift, dy = (int)l2c_rng_below(rng, 2 * shift + 1) - shift;
        l2c_translate(x + i * 784, tmp, 1, 28, 28, dx, dy);
        memcpy(x + i * 784, tmp, 784 * sizeof(float));
    }
}

/* One epoch of a victim's recipe over the training set. */
static int train_epoch(l2c_model *m, l2c_tape *t, const recipe *rec, l2c_sgd *sgd, l2c_adam *adam,
                       const l2c_dataset *train, l2c_batcher *order, float *x, uint8_t *y)
{
    float tmp[784];
    const int *idx;
    int n;
    while ((n = l2c_batcher_next(order, &idx)) > 0) {
        l2c_tensor *in, *out, *loss;
        if (n < 2) continue;   /* batch norm needs two samples */
        l2c_dataset_gather(train, idx, n, x, y);
        if (rec->shift) augment(x, tmp, n, rec->shift, &order->rng);   /* the batcher's generator: seeded */
        l2c_tape_reset(t);
        in = l2c_tape_input(t, n, 1, 28, 28, x, 0);
        out = in ? l2c_model_forward(t, m, in, L2C_TRAIN) : NULL;
        loss = out ? l2c_softmax_xent(t, out, y, NULL) : NULL;
        if (!loss) return -1;
        l2c_model_zero_grad(m);
        l2c_backward(t, loss);
        if (rec->adam) l2c_adam_step(adam, m); else l2c_sgd_step(sgd, m);
    }
    return 0;
}

/* A victim's figures on the clean test set, as shares in [0, 1]: accuracy after the last epoch and
   at the best epoch, the share predicted as y+K, and accuracy on the noise alone (-1: not measured). */
typedef struct result { double final_acc, peak_acc, shifted, noise_acc; } result;

/* A victim that is not a network: fit once, predict the test set (and the noise); final = peak. */
static int evaluate_classic(const victim *vi, const l2c_dataset *train, const l2c_dataset *test, const float *xtest,
                            const float *noise, int label_shift, uint64_t seed, uint8_t *pred, result *r)
{
    void *model = vi->classic->fit(train, seed);
    uint8_t *np = (uint8_t *)malloc((size_t)test->n);
    int ok = model && np && vi->classic->predict(model, xtest, test->n, pred) == 0;
    r->noise_acc = -1;
    if (ok) {
        r->final_acc = r->peak_acc = share(pred, test->labels, test->n, 0);
        r->shifted = share(pred, test->labels, test->n, label_shift);
    }
    if (ok && noise && (ok = vi->classic->predict(model, noise, test->n, np) == 0)) r->noise_acc = share(np, test->labels, test->n, 0);
    if (model) vi->classic->release(model);
    free(np);
    if (!ok) fprintf(stderr, "eval_mnist: %s: out of memory\n", vi->name);
    return ok ? 0 : -1;
}

/* Trains victim vi from scratch on `train` and measures it on the clean test set (predictions of
   the final model are left in pred). */
static int evaluate(const victim *vi, const l2c_dataset *train, const l2c_dataset *test, const float *xtest,
                    const float *noise, int epochs, int label_shift, uint64_t seed, l2c_tape *tape, uint8_t *pred, result *r)
{
    const recipe rec = recipe_of(vi);
    l2c_model *m;
    l2c_sgd sgd;
    l2c_adam adam;
    l2c_batcher order;
    float *x;
    uint8_t *y;
    int e, rc = -1, have_opt = 0, have_order = 0;
    memset(r, 0, sizeof *r);
    if (vi->classic) return evaluate_classic(vi, train, test, xtest, noise, label_shift, seed, pred, r);
    r->noise_acc = -1;
    m = l2c_mnist_classifier(vi->arch, seed);
    x = (float *)malloc((size_t)rec.batch * 784 * sizeof(float));
    y = (uint8_t *)malloc((size_t)rec.batch);
    if (!x || !y) fprintf(stderr, "eval_mnist: %s: out of memory\n", vi->name);
    else if (m) have_opt = !(rec.adam ? l2c_adam_init(&adam, m, rec.lr, 0.9f, 0.999f, 1e-8f, 0)
                                      : l2c_sgd_init(&sgd, m, rec.lr, 0.9f, 0.0f));
    if (have_opt) have_order = !l2c_batcher_init(&order, train->n, rec.batch, 1, seed);
    if (have_order) rc = 0;
    for (e = 0; e < epochs && !rc; e++) {
        rc = train_epoch(m, tape, &rec, &sgd, &adam, train, &order, x, y) ||
             l2c_model_predict(m, tape, xtest, test->n, 500, pred);
        r->final_acc = share(pred, test->labels, test->n, 0);
        if (r->final_acc > r->peak_acc) r->peak_acc = r->final_acc;
    }
    if (!rc) r->shifted = share(pred, test->labels, test->n, label_shift);
    if (!rc && noise) {
        uint8_t *np = (uint8_t *)malloc((size_t)test->n);
        if (!np) fprintf(stderr, "eval_mnist: %s: out of memory\n", vi->name);
        if (!np || l2c_model_predict(m, tape, noise, test->n, 500, np)) rc = -1;
        else r->noise_acc = share(np, test->labels, test->n, 0);
        free(np);
    }
    if (have_opt) { if (rec.adam) l2c_adam_free(&adam); else l2c_sgd_free(&sgd); }
    if (have_order) l2c_batcher_free(&order);
    l2c_model_free(m); free(x); free(y);
    return rc ? -1 : 0;
}

/* Victim vi trained `repeats` times, from seeds seed, seed+1, ...: the mean of each figure into r,
   the lowest and highest final accuracy into lo and hi; pred keeps the first run's predictions. */
static int evaluate_repeats(const victim *vi, const l2c_dataset *train, const l2c_dataset *test, const float *xtest,
                            const float *noise, int epochs, int label_shift, uint64_t seed, int repeats,
                            l2c_tape *tape, uint8_t *pred, uint8_t *scratch, result *r, double *lo, double *hi)
{
    int k, runs = vi->classic && !vi->classic->seeded ? 1 : repeats;
    result one;
    memset(r, 0, sizeof *r);
    for (k = 0; k < runs; k++) {
        if (evaluate(vi, train, test, xtest, noise, epochs, label_shift, seed + (uint64_t)k, tape, k ? scratch : pred, &one)) return -1;
        r->final_acc += one.final_acc / runs; r->peak_acc += one.peak_acc / runs;
        r->shifted += one.shifted / runs;     r->noise_acc += one.noise_acc / runs;
        if (!k || one.final_acc < *lo) *lo = one.final_acc;
        if (!k || one.final_acc > *hi) *hi = one.final_acc;
    }
    if (!noise) r->noise_acc = -1;   /* not measured: exactly -1, as from one run */
    return 0;
}

