/* eval_options.h: eval_mnist's command line. The usage text (what --help prints) and the options,
   read and checked; a recipe given on the command line goes to eval_victims.h's `chosen`. Include
   after eval_victims.h and cli_args.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What --help prints: the options and what each does. */
static const char *const usage[] = {
    "usage: eval_mnist [--train DIR] [--test DIR] [--baseline DIR] [--epochs N] [--victims a,b,...]",
    "                  [--seed S] [--generator FILE[,FILE...] --eps E [--noise generator|released] [--combine sum|mean]]",
    "                  [--confusion-dir DIR]",
    "                  [--label-shift K] [--json] [--optimizer sgd|adam [--lr LR]] [--batch B] [--augment P]",
    "                  [--repeats R] [--defence class-mean [--clean-sample DIR] [--per-class N] [--noise-z Z]]",
    "",
    "Defaults: --train and --test build/mnist (MNIST's train-* and t10k-* files), --epochs 2, --seed 7,",
    "--eps 0.3 (the generator's, for noise only), --label-shift 1, every victim its own recipe.",
    "",
    "--noise: what \"noise only\" feeds each victim: generator (default), the paper's eps*g(x) of the",
    "clean test images (l2c_generator_noise); released, what of it survives in the release (the",
    "clamped, quantised poison minus the clean image; the README's figures before 2026-12-05).",
    "Several generators (poison_mnist --runs: DIR/generator.l2c,DIR/generator-run2.l2c,...): their",
    "noises combined as poison_mnist --runs combines its releases: added and clamped to eps (--combine",
    "sum, the default) or averaged (--combine mean); released: their releases so combined (l2c_poison_combine).",
    "--json prints one JSON object instead of the table: the settings (noise_only: none, generator or",
    "released, and noise_mean_abs, the mean absolute value of the noise fed), then per victim its",
    "figures as fractions (final, peak, label map, noise only, and the final's range over --repeats).",
    "--optimizer trains every network victim with one recipe instead of its own: SGD with momentum",
    "0.9 (lr 0.01 unless --lr) or Adam (lr 1e-3 unless --lr); --batch sets every network's",
    "mini-batch size (default 64, the victims' own); --augment P moves each of every network's",
    "training images by its own random offset of up to P pixels (0..4; 0: no augmentation, not even",
    "cnn3x3-aug's) -- recipes the attack never saw.",
    "--repeats R trains each victim R times, from seeds S, S+1, ..., S+R-1 (S: --seed, default 7),",
    "and reports the mean of each figure and the range of the final accuracy: a victim's own seed",
    "(its initial weights and the order of its batches) moves single figures by several points.",
    "knn does not depend on the seed and is fitted once; the confusion matrices are seed S's.",
    "--defence class-mean trains every victim on the set after l2c_defend_class_mean: each class's",
    "shared perturbation, estimated from the first N (default 100) images per class of the clean",
    "set DIR/train-* (--clean-sample, default build/mnist), is subtracted (also from --baseline's set),",
    "shrunk by Z (default 3) standard errors of the sample's mean: 0 subtracts the raw estimate.",
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

/* What the command line asks for. */
typedef struct eval_options {
    const char *train_dir, *test_dir, *base_dir;   /* base_dir: --baseline, or NULL */
    const char *victims;                           /* comma-separated names */
    const char *generator, *confusion_dir;         /* or NULL */
    const char *clean_sample;                      /* the defence's trusted sample (train-* files) */
    int defend, per_class;                         /* --defence class-mean, and its sample size */
    float noise_z;                                 /* and its shrinkage (l2c_defend_class_mean) */
    int epochs, repeats, label_shift, json, released_noise;
    int combine_mean;                              /* --combine mean: several generators' noises averaged */
    unsigned long seed;
    float eps;
} eval_options;

/* Whether name is one of the entries of a comma-separated list (whole entries only: "cnn" is not
   listed by "cnn-small"). */
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
    static char names[CLI_PATH_SIZE];
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

/* Reads the command line into o (and a recipe override into `chosen`). A bad option or value
   stops the program with a message and exit status 2. */
static void read_eval_options(int argc, char **argv, eval_options *o)
{
    static const char *const noises[] = { "generator", "released", NULL }, *const optimizers[] = { "sgd", "adam", NULL };
    static const char *const combinations[] = { "sum", "mean", NULL };
    static const char *const defences[] = { "none", "class-mean", NULL };
    int i, lr_given = 0, augment_given = 0;
    memset(o, 0, sizeof *o);
    o->train_dir = o->test_dir = o->clean_sample = "build/mnist";
    o->per_class = 100, o->noise_z = 3.0f;
    o->victims = "softmax,mlp,lenet,cnn-small,cnn,cnn-large,cnn3x3,mlp-wide,cnn3x3-aug,knn,forest";
    o->epochs = 2, o->repeats = 1, o->label_shift = 1, o->seed = 7, o->eps = 0.3f;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json")) o->json = 1;
        else if (!strcmp(a, "--train")) o->train_dir = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--test")) o->test_dir = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--baseline")) o->base_dir = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--epochs")) o->epochs = cli_int(argc, argv, &i);
        else if (!strcmp(a, "--repeats")) o->repeats = cli_int(argc, argv, &i);
        else if (!strcmp(a, "--victims")) o->victims = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--seed")) o->seed = cli_seed(argc, argv, &i);
        else if (!strcmp(a, "--generator")) o->generator = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--eps")) o->eps = cli_float(argc, argv, &i);
        else if (!strcmp(a, "--noise")) o->released_noise = cli_choice(argc, argv, &i, noises);
        else if (!strcmp(a, "--combine")) o->combine_mean = cli_choice(argc, argv, &i, combinations);
        else if (!strcmp(a, "--defence")) o->defend = cli_choice(argc, argv, &i, defences);
        else if (!strcmp(a, "--clean-sample")) o->clean_sample = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--per-class")) o->per_class = cli_int(argc, argv, &i);
        else if (!strcmp(a, "--noise-z")) o->noise_z = cli_float(argc, argv, &i);
        else if (!strcmp(a, "--confusion-dir")) o->confusion_dir = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--label-shift")) o->label_shift = cli_int(argc, argv, &i);
        else if (!strcmp(a, "--optimizer")) chosen.adam = cli_choice(argc, argv, &i, optimizers);
        else if (!strcmp(a, "--lr")) { chosen.lr = cli_float(argc, argv, &i); lr_given = 1; }
        else if (!strcmp(a, "--batch")) chosen.batch = cli_int(argc, argv, &i);
        else if (!strcmp(a, "--augment")) { chosen.shift = cli_int(argc, argv, &i); augment_given = 1; }
        else { fprintf(stderr, "eval_mnist: unknown option %s (--help lists the options)\n", a); exit(2); }
    }
    if (unknown_victim(o->victims)) { fprintf(stderr, "eval_mnist: unknown victim %s (--help lists the victims)\n", unknown_victim(o->victims)); exit(2); }
    if (o->epochs < 1 || o->repeats < 1 || o->repeats > 100 || !(o->eps > 0.0f && o->eps <= 1.0f) || o->label_shift < 1 || o->label_shift > 9) {
        fprintf(stderr, "eval_mnist: need --epochs >= 1, --repeats in 1..100, --eps in (0, 1] and --label-shift in 1..9\n");
        exit(2);
    }
    if (o->per_class < 1 || !(o->noise_z >= 0.0f && o->noise_z <= 100.0f)) {
        fprintf(stderr, "eval_mnist: need --per-class >= 1 clean images per class (not %d) and --noise-z in [0, 100]\n", o->per_class);
        exit(2);
    }
    if (chosen.batch < 2 || chosen.batch > 4096 || (lr_given && (chosen.adam < 0 || !(chosen.lr > 0.0f && chosen.lr <= 10.0f)))) {
        fprintf(stderr, "eval_mnist: need --batch in [2, 4096], and --lr in (0, 10] only with --optimizer\n");
        exit(2);
    }
    if (augment_given && (chosen.shift < 0 || chosen.shift > MAX_AUGMENT)) {
        fprintf(stderr, "eval_mnist: need --augment in 0..%d pixels, not %d\n", MAX_AUGMENT, chosen.shift);
        exit(2);
    }
    if (chosen.adam >= 0 && !lr_given) chosen.lr = chosen.adam ? 1e-3f : 0.01f;
}
