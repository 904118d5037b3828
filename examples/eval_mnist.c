/* eval_mnist: how useful is a training set? Trains several victims from scratch, each with its own
   ordinary recipe, on the given (clean or poisoned) MNIST training set and reports, on the clean
   test set: final and peak accuracy, the share predicted as y+K (the label-specific attack's
   success; K = 1 unless --label-shift K), accuracy when fed only the noise (with --generator), and the confusion matrix.
   Its options: `usage` below, which --help prints. */
#define L2C_IMPLEMENTATION
#include "learn2confuse.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "classic_victims.h"
#include "cli_args.h"

/* What --help prints: the options and what each does. */
static const char *const usage[] = {
    "usage: eval_mnist [--train DIR] [--test DIR] [--baseline DIR] [--epochs N] [--victims a,b,...]",
    "                  [--seed S] [--generator FILE --eps E [--noise generator|released]] [--confusion-dir DIR]",
    "                  [--label-shift K] [--json] [--optimizer sgd|adam [--lr LR]] [--batch B] [--augment P]",
    "                  [--repeats R]",
    "",
    "Defaults: --train and --test build/mnist (MNIST's train-* and t10k-* files), --epochs 2, --seed 7,",
    "--eps 0.3 (the generator's, for noise only), --label-shift 1, every victim its own recipe.",
    "",
    "--noise: what \"noise only\" feeds each victim: generator (default), the paper's eps*g(x) of the",
    "clean test images (l2c_generator_noise); released, what of it survives in the release (the",
    "clamped, quantised poison minus the clean image; the README's figures before 2026-12-05).",
    "--optimizer trains every network victim with one recipe instead of its own: SGD with momentum",
    "0.9 (lr 0.01 unless --lr) or Adam (lr 1e-3 unless --lr); --batch sets every network's",
    "mini-batch size (default 64, the victims' own); --augment P moves each of every network's",
    "training images by its own random offset of up to P pixels (0..4; 0: no augmentation, not even",
    "cnn3x3-aug's) -- recipes the attack never saw.",
    "--repeats R trains each victim R times, from seeds S, S+1, ..., S+R-1 (S: --seed, default 7),",
    "and reports the mean of each figure and the range of the final accuracy: a victim's own seed",
    "(its initial weights and the order of its batches) moves single figures by several points.",
    "knn does not depend on the seed and is fitted once; the confusion matrices are seed S's.",
    "--baseline DIR also trains every victim on the (clean) set in DIR, for a clean -> poisoned table",
    "in the shape of the paper's Table 1.",
    "victims: softmax, mlp, lenet, cnn-small, cnn, cnn-large, cnn3x3, mlp-wide, cnn3x3-aug (cnn3x3 trained",
    "with random shifts, a defender's augmentation), cnn-pt (the PyTorch MNIST example's network; not in",
    "the default list: it costs about as much as the other nine networks together) (built by",
    "l2c_mnist_classifier); and two that are not networks (examples/classic_victims.h): knn",
    "(1-nearest neighbour over pixels) and forest (a random forest of 32 trees)",
    "(default: all but cnn-pt)",
    NULL
};

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

static int load_set(l2c_dataset *ds, const char *dir, const char *prefix)
{
    char im[1024], lb[1024];
    snprintf(im, sizeof im, "%s/%s-images-idx3-ubyte", dir, prefix);
    snprintf(lb, sizeof lb, "%s/%s-labels-idx1-ubyte", dir, prefix);
    if (l2c_dataset_load(ds, im, lb, 10)) { fprintf(stderr, "eval_mnist: %s\n", l2c_error()); return -1; }
    if (ds->c != 1 || ds->h != 28 || ds->w != 28) {
        fprintf(stderr, "eval_mnist: %s holds %dx%dx%d images; the victims take 28x28 grey ones\n", im, ds->c, ds->h, ds->w);
        return -1;
    }
    return 0;
}

/* The noise alone on the clean test images: the paper's eps*g(x) (released 0), or what survives in
   the release, the quantised poison minus the clean image (released 1). */
static float *noise_only(const char *gen_path, const l2c_dataset *test, const float *xtest, float eps, int released)
{
    l2c_model *g = l2c_model_read(gen_path);   /* whatever generator it holds */
    float *noise = (float *)malloc((size_t)test->n * 784 * sizeof(float));
    l2c_dataset pt;
    int i, rc = g && noise ? 0 : -1;
    if (!rc && !released) rc = l2c_generator_noise(g, xtest, test->n, eps, noise);
    if (!rc && released && !(rc = l2c_poison_dataset(g, test, eps, 1.0f, &pt))) {
        for (i = 0; i < test->n * 784; i++) noise[i] = pt.images[i] / 255.0f - xtest[i];
        l2c_dataset_free(&pt);
    }
    if (rc) { fprintf(stderr, "eval_mnist: %s: %s\n", gen_path, g && !noise ? "out of memory" : l2c_error()); free(noise); noise = NULL; }
    l2c_model_free(g);
    return noise;
}

static int listed(const char *list, const char *name)
{
    size_t len = strlen(name);
    const char *hit = strstr(list, name);
    while (hit && ((hit != list && hit[-1] != ',') || (hit[len] && hit[len] != ','))) hit = strstr(hit + 1, name);
    return hit != NULL;
}

/* The first name in a comma-separated list that is not a victim, or NULL. */
static const char *unknown_victim(const char *list)
{
    static char names[512];
    char *name;
    int v;
    snprintf(names, sizeof names, "%s", list);
    for (name = strtok(names, ","); name; name = strtok(NULL, ",")) {
        for (v = 0; v < NVICTIMS && strcmp(name, VICTIMS[v].name); v++) {}
        if (v == NVICTIMS) return name;
    }
    return NULL;
}

/* The command line's recipe in words, or "" when every victim keeps its own. */
static void describe_recipe(char *buf, size_t size)
{
    char optimiser[48], shift[40] = "";
    if (chosen.adam < 0 && chosen.batch == OWN_BATCH && chosen.shift < 0) { buf[0] = 0; return; }
    if (chosen.adam < 0) strcpy(optimiser, "its own optimiser and lr");
    else sprintf(optimiser, "%s lr %g", chosen.adam ? "Adam" : "SGD momentum 0.9", chosen.lr);
    if (chosen.shift == 0) strcpy(shift, ", no augmentation");
    else if (chosen.shift > 0) sprintf(shift, ", random shifts of +-%d px", chosen.shift);
    snprintf(buf, size, "%s, batch %d%s", optimiser, chosen.batch, shift);
}

static void pct(char *buf, double v) { if (v < 0) strcpy(buf, "-"); else sprintf(buf, "%.2f", 100 * v); }

int main(int argc, char **argv)
{
    const char *train_dir = "build/mnist", *test_dir = "build/mnist", *base_dir = NULL;
    const char *list = "softmax,mlp,lenet,cnn-small,cnn,cnn-large,cnn3x3,mlp-wide,cnn3x3-aug,knn,forest", *gen_path = NULL, *conf_dir = NULL;
    int epochs = 2, repeats = 1, label_shift = 1, json = 0, lr_given = 0, augment_given = 0, released_noise = 0, i, v, first = 1;
    char map_col[16], override_text[96], range_col[32];
    unsigned long seed = 7;
    float eps = 0.3f, *xtest, *noise = NULL;
    uint8_t *pred, *scratch;
    l2c_dataset train, test, base;
    l2c_tape *tape;

    cli_program = "eval_mnist";
    cli_help(argc, argv, usage);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *val;
        if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--train")) train_dir = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--test")) test_dir = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--baseline")) base_dir = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--epochs")) epochs = cli_int(argc, argv, &i);
        else if (!strcmp(a, "--repeats")) repeats = cli_int(argc, argv, &i);
        else if (!strcmp(a, "--victims")) list = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--seed")) seed = cli_seed(argc, argv, &i);
        else if (!strcmp(a, "--generator")) gen_path = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--eps")) eps = cli_float(argc, argv, &i);
        else if (!strcmp(a, "--noise")) {
            val = cli_value(argc, argv, &i);
            if (strcmp(val, "generator") && strcmp(val, "released")) { fprintf(stderr, "eval_mnist: --noise is generator or released\n"); return 2; }
            released_noise = !strcmp(val, "released");
        }
        else if (!strcmp(a, "--confusion-dir")) conf_dir = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--label-shift")) label_shift = cli_int(argc, argv, &i);
        else if (!strcmp(a, "--optimizer")) {
            val = cli_value(argc, argv, &i);
            if (strcmp(val, "sgd") && strcmp(val, "adam")) { fprintf(stderr, "eval_mnist: --optimizer is sgd or adam\n"); return 2; }
            chosen.adam = !strcmp(val, "adam");
        }
        else if (!strcmp(a, "--lr")) { chosen.lr = cli_float(argc, argv, &i); lr_given = 1; }
        else if (!strcmp(a, "--batch")) chosen.batch = cli_int(argc, argv, &i);
        else if (!strcmp(a, "--augment")) { chosen.shift = cli_int(argc, argv, &i); augment_given = 1; }
        else { fprintf(stderr, "eval_mnist: unknown option %s (--help lists the options)\n", a); return 2; }
    }
    if (unknown_victim(list)) { fprintf(stderr, "eval_mnist: unknown victim %s (--help lists the victims)\n", unknown_victim(list)); return 2; }
    if (epochs < 1 || repeats < 1 || repeats > 100 || !(eps > 0.0f && eps <= 1.0f) || label_shift < 1 || label_shift > 9) {
        fprintf(stderr, "eval_mnist: need --epochs >= 1, --repeats in 1..100, --eps in (0, 1] and --label-shift in 1..9\n");
        return 2;
    }
    if (chosen.batch < 2 || chosen.batch > 4096 || (lr_given && (chosen.adam < 0 || !(chosen.lr > 0.0f && chosen.lr <= 10.0f)))) {
        fprintf(stderr, "eval_mnist: need --batch in [2, 4096], and --lr in (0, 10] only with --optimizer\n");
        return 2;
    }
    if (augment_given && (chosen.shift < 0 || chosen.shift > MAX_AUGMENT)) {
        fprintf(stderr, "eval_mnist: need --augment in 0..%d pixels, not %d\n", MAX_AUGMENT, chosen.shift);
        return 2;
    }
    if (chosen.adam >= 0 && !lr_given) chosen.lr = chosen.adam ? 1e-3f : 0.01f;
    snprintf(map_col, sizeof map_col, "y+%d %%", label_shift);
    if (load_set(&train, train_dir, "train") || load_set(&test, test_dir, "t10k") ||
        (base_dir && load_set(&base, base_dir, "train"))) return 1;
    xtest = to_floats(&test);
    pred = (uint8_t *)malloc((size_t)test.n);
    scratch = (uint8_t *)malloc((size_t)test.n);
    tape = l2c_tape_new();
    if (!xtest || !pred || !scratch || !tape) { fprintf(stderr, "eval_mnist: out of memory\n"); return 1; }
    if (gen_path && !(noise = noise_only(gen_path, &test, xtest, eps, released_noise))) return 1;
    describe_recipe(override_text, sizeof override_text);
    if (json) printf("{\"train\": \"%s\", \"epochs\": %d, \"repeats\": %d, \"label_shift\": %d, \"recipe_override\": \"%s\", \"noise_only\": \"%s\", \"victims\": [",
                     train_dir, epochs, repeats, label_shift, override_text, !gen_path ? "none" : released_noise ? "released" : "generator");
    else if (override_text[0]) printf("recipe override: every network victim trains with %s\n", override_text);
    if (!json && repeats > 1) printf("each figure the mean of %d victims (seeds %lu..%lu); range: their lowest and highest final%%\n", repeats, seed, seed + (unsigned long)repeats - 1);
    if (!json) printf("%-10s %-46s %8s %8s %8s %8s %8s%s\n", "victim", "recipe (2 epochs unless --epochs)", base_dir ? "clean%" : "",
                "final%", "peak%", map_col, "noise%", repeats > 1 ? "  range" : "");

    for (v = 0; v < NVICTIMS; v++) {
        const victim *vi = &VICTIMS[v];
        result r, rb;
        double lo = 0, hi = 0, blo, bhi;
        char c0[32], c1[32], c2[32], c3[32], c4[32];
        const char *recipe_text = override_text[0] && !vi->classic ? override_text : vi->recipe;
        if (!listed(list, vi->name)) continue;
        rb.final_acc = -1;
        l2c_clear_error();
        if ((base_dir && evaluate_repeats(vi, &base, &test, xtest, NULL, epochs, label_shift, seed, repeats, tape, pred, scratch, &rb, &blo, &bhi)) ||
            evaluate_repeats(vi, &train, &test, xtest, noise, epochs, label_shift, seed, repeats, tape, pred, scratch, &r, &lo, &hi)) {
            if (l2c_error()[0]) fprintf(stderr, "eval_mnist: %s: %s\n", vi->name, l2c_error());   /* else said above */
            return 1;
        }
        if (conf_dir) write_confusion(conf_dir, vi->name, pred, test.labels, test.n);
        if (json)
            printf("%s\n  {\"name\": \"%s\", \"recipe\": \"%s\", \"clean_train_acc\": %.4f, \"final_acc\": %.4f, \"peak_acc\": %.4f, "
                   "\"label_map_success\": %.4f, \"noise_only_acc\": %.4f, \"final_acc_min\": %.4f, \"final_acc_max\": %.4f}",
                   first ? "" : ",", vi->name, recipe_text, rb.final_acc, r.final_acc, r.peak_acc, r.shifted, r.noise_acc, lo, hi);
        else {
            pct(c0, rb.final_acc); pct(c1, r.final_acc); pct(c2, r.peak_acc); pct(c3, r.shifted); pct(c4, r.noise_acc);
            snprintf(range_col, sizeof range_col, "  %.2f-%.2f", 100 * lo, 100 * hi);
            printf("%-10s %-46s %8s %8s %8s %8s %8s%s\n", vi->name, recipe_text, base_dir ? c0 : "", c1, c2, c3, c4,
                   repeats > 1 ? range_col : "");
        }
        fflush(stdout);
        first = 0;
    }
    if (json) printf("\n]}\n");
    free(xtest); free(noise); free(pred); free(scratch); l2c_tape_free(tape);
    l2c_dataset_free(&train); l2c_dataset_free(&test);
    if (base_dir) l2c_dataset_free(&base);
    return 0;
}
