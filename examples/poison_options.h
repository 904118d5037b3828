/* poison_options.h: poison_mnist's command line. The usage text (what --help prints) and the
   options, read into the attack's settings (l2c_attack_config) and the program's own, and checked
   before anything is loaded. Include after learn2confuse.h and cli_args.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What --help prints: the options and what each does. */
static const char *const usage[] = {
    "usage: poison_mnist [--data DIR] [--out DIR] [--checkpoint FILE] [--eps E] [--trials T]",
    "                    [--steps S] [--gen-lr LR] [--victim-lr LR] [--batch B] [--seed S]",
    "                    [--targeted] [--label-shift K] [--fraction F] [--generator mnist|autoencoder] [--gen-width W]",
    "                    [--fresh] [--new-settings] [--boost B] [--runs N] [--combine sum|mean]",
    "                    [--victims K] [--lifetime STEPS] [--victim-width PERCENT] [--threads T]",
    "                    [--warmup STEPS] [--ref-epochs E] [--references LIST] [--anchor W]",
    "                    [--pairing next|nearest|reachable|W0,...,W9]",
    "                    [--lr-schedule constant|cosine] [--shift PIXELS] [--victim-shift PIXELS] [--shortcut W]",
    "                    [--trial-victims LIST] [--victim-momentum M] [--objective lookahead|align]",
    "                    [--victim-optimizer sgd|adam|alternate] [--victim-adam-lr LR] [--clamp-inward]",
    "                    [--untargeted-loss xent|complement] [--noise-weight W] [--soft-targets T]",
    "",
    "Defaults (make run's): --data build/mnist (MNIST's train-* files), --out out/poisoned,",
    "--checkpoint out/attack.ckpt, --eps 0.3, --warmup 1250, --trials 32, --steps 25, --batch 256,",
    "--gen-lr 1e-3, --victim-lr 0.04, --seed 1, --generator autoencoder, --references",
    "softmax,mlp,lenet, --anchor 1 (2 with --targeted), --boost 0, --threads 0 (all cores).",
    "",
    "--targeted: label-specific, y -> y+1 mod 10; --label-shift K: label-specific with y -> y+K mod 10",
    "(K in 1..9; implies --targeted);",
    "--runs N: train N generators, the k-th with seed S+k-1 and its own checkpoint (FILE for the first,",
    "FILE.runK for the K-th), and release their perturbations combined per pixel within eps",
    "(l2c_poison_combine; default 1; two or three runs beat each of their members, README);",
    "--combine sum|mean: how --runs combines them: added, clamped to eps (default: better with three",
    "runs, 2.05 against 2.54, README), or averaged;",
    "--fresh: start over, ignoring (and then replacing) the checkpoint; --new-settings: resume a",
    "checkpoint made under other settings, continuing under those given now (a checkpoint records",
    "them, and is otherwise refused where they differ; --trials may always change);",
    "--boost: the release adds B times each class's mean perturbation to the class's poisoned images,",
    "within eps (l2c_poison_boost_class_mean; 0: the generator's release as it is; -1 removes that",
    "shared part, which leaves no poison; 1 won on one seed of three and lost on two, README);",
    "--gen-width: channels of the autoencoder's first layer (default 16, the paper's; 8 is faster, README);",
    "--ref-epochs: epochs of clean training of the reference classifiers (default 1);",
    "--references: classifiers (names of l2c_mnist_classifier, comma-separated, or \"none\") that join the",
    "imaginary victim in the warm-up's reference ensemble; --anchor: weight of the warm-up objective",
    "kept during the trials (0: the paper's objective alone; default 1, and 2 with --targeted, the",
    "best measured for each mode, README); --pairing: which class's features the",
    "warm-up paints into each class (next: y+1; nearest: the most confusable pairing; reachable: the",
    "pairing that eps-bounded perturbations reach most easily; W0,...,W9: w(y) for y = 0..9, a",
    "derangement, e.g. 9,2,3,4,5,6,7,8,1,0 gives the 1s a source, README); --lr-schedule:",
    "the generator's learning rate, constant or decayed to 0 along a cosine (warm-up and trials each);",
    "--shift: the reference classifiers see poisons randomly translated by up to PIXELS (input",
    "diversity, for transfer; default 0; 1 was the default of v0.15.0, README);",
    "--victim-shift: the trials' imaginary victim trains with random shifts, as an augmenting defender;",
    "--victim-momentum: momentum of the imaginary victim's SGD (0: the paper's plain SGD);",
    "--victim-optimizer: how the trials' imaginary victim trains (sgd: the paper's; adam: Adam at",
    "--victim-adam-lr, default 1e-3, as many defenders train; alternate: SGD and Adam trial by trial);",
    "--clamp-inward: the generator learns through the clamp to [0, 1] also at clamped pixels whose",
    "step would bring them back into range (a straight-through estimate; default: the exact derivative);",
    "--untargeted-loss: the clean loss the non-targeted trials work on (xent: raise the cross-entropy,",
    "the paper's; complement: lower -log(1 - p_y), which pulls hardest on images still classified right);",
    "--objective: what the trials optimise (lookahead: the paper's look-ahead loss; align: the",
    "cosine between the victim's poisoned-batch gradient and the clean-loss gradient);",
    "--shortcut: weight of an error-minimising term in the trials (victims learn the noise faster);",
    "--noise-weight: weight of a term in the warm-up and the anchor that makes the references read the",
    "noise alone as w(y) too (a class pattern victims take for the label; default 0, README);",
    "--soft-targets: the warm-up and the anchor pull each poisoned image towards a reference's",
    "output, softened at temperature T, on a random clean image of class w(y) instead of towards the",
    "one-hot w(y) (0: one-hot, the default; README);",
    "--trial-victims: classifiers (as for --references) whose architectures the trials' imaginary",
    "victims take in turn after the reference CNN's.",
    "",
    "Writes DIR/train-images-idx3-ubyte and DIR/train-labels-idx1-ubyte (MNIST's own names, so any",
    "MNIST loader takes DIR as a drop-in replacement) and DIR/generator.l2c. The attack state is saved",
    "to the checkpoint after every trial; run the same command again to resume after Ctrl-C. Both places",
    "are checked for writing before any training starts.",
    NULL
};

/* What the command line asks for: the attack's settings, and the program's own. */
typedef struct poison_options {
    l2c_attack_config cfg;
    const char *data, *out, *checkpoint;
    const char *generator;       /* autoencoder or mnist */
    const char *references;      /* --references: the warm-up's reference ensemble */
    const char *trial_victims;   /* --trial-victims: further imaginary-victim architectures */
    float fraction;              /* of the training set poisoned */
    float boost;                 /* --boost: l2c_poison_boost_class_mean's boost at release */
    int label_shift, fresh, new_settings, threads, victim_width, gen_width;
    int runs;                    /* --runs: generators trained (seeds seed, seed+1, ...) and combined */
    int combine_mean;            /* --combine mean: their perturbations averaged, not added */
} poison_options;

/* --pairing w(0),...,w(9): ten whole numbers separated by commas (the library checks that they are
   a derangement of the classes). */
static int read_pairing(const char *text, int *w)
{
    int y;
    for (y = 0; y < 10; y++) {
        char *end;
        long c = strtol(text, &end, 10);
        if (end == text || c < 0 || c > 9 || *end != (y < 9 ? ',' : '\0')) return 0;
        w[y] = (int)c;
        text = end + 1;
    }
    return 1;
}

/* --targeted or --label-shift: the run starts from the label-specific defaults, which the other
   options then change, whatever their order. */
static int wants_label_specific(int argc, char **argv)
{
    int i;
    for (i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--targeted") || !strcmp(argv[i], "--label-shift")) return 1;
    return 0;
}

/* --pairing: a named pairing, or w(y) for every class (kept in given[]). */
static void read_pairing_option(int argc, char **argv, int *i, poison_options *o, int *given)
{
    const char *v = cli_value(argc, argv, i);
    if (!strcmp(v, "next")) o->cfg.pairing = L2C_PAIR_NEXT;
    else if (!strcmp(v, "nearest")) o->cfg.pairing = L2C_PAIR_NEAREST;
    else if (!strcmp(v, "reachable")) o->cfg.pairing = L2C_PAIR_REACHABLE;
    else if (read_pairing(v, given)) o->cfg.pairing = L2C_PAIR_GIVEN;
    else { fprintf(stderr, "poison_mnist: --pairing is next, nearest, reachable or ten classes w(0),...,w(9), not \"%s\"\n", v); exit(2); }
}

/* Option argv[*i] that sets one of the attack's knobs, read into cfg (advancing *i past its
   value); 0 if it is not one of them. */
static int read_attack_knob(int argc, char **argv, int *i, l2c_attack_config *cfg)
{
    static const char *const schedules[] = { "constant", "cosine", NULL }, *const objectives[] = { "lookahead", "align", NULL };
    static const char *const losses[] = { "xent", "complement", NULL }, *const optimizers[] = { "sgd", "adam", "alternate", NULL };
    static const int optimizer_of[] = { L2C_VICTIM_SGD, L2C_VICTIM_ADAM, L2C_VICTIM_ALTERNATE };
    const char *a = argv[*i];
    if (!strcmp(a, "--eps")) cfg->eps = cli_float(argc, argv, i);
    else if (!strcmp(a, "--trials")) cfg->trials = cli_int(argc, argv, i);
    else if (!strcmp(a, "--steps")) cfg->steps_per_trial = cli_int(argc, argv, i);
    else if (!strcmp(a, "--gen-lr")) cfg->gen_lr = cli_float(argc, argv, i);
    else if (!strcmp(a, "--victim-lr")) cfg->victim_lr = cli_float(argc, argv, i);
    else if (!strcmp(a, "--batch")) cfg->batch = cli_int(argc, argv, i);
    else if (!strcmp(a, "--seed")) cfg->seed = cli_seed(argc, argv, i);
    else if (!strcmp(a, "--victims")) cfg->victims = cli_int(argc, argv, i);
    else if (!strcmp(a, "--lifetime")) cfg->victim_lifetime = cli_int(argc, argv, i);
    else if (!strcmp(a, "--warmup")) cfg->warmup_steps = cli_int(argc, argv, i);
    else if (!strcmp(a, "--ref-epochs")) cfg->warmup_epochs = cli_float(argc, argv, i);
    else if (!strcmp(a, "--lr-schedule")) cfg->lr_schedule = cli_choice(argc, argv, i, schedules) ? L2C_LR_COSINE : L2C_LR_CONSTANT;
    else if (!strcmp(a, "--objective")) cfg->objective = cli_choice(argc, argv, i, objectives) ? L2C_OBJ_ALIGN : L2C_OBJ_LOOKAHEAD;
    else if (!strcmp(a, "--untargeted-loss"))
        cfg->untargeted_loss = cli_choice(argc, argv, i, losses) ? L2C_UNTARGETED_COMPLEMENT : L2C_UNTARGETED_XENT;
    else if (!strcmp(a, "--victim-optimizer")) cfg->victim_optimizer = optimizer_of[cli_choice(argc, argv, i, optimizers)];
    else if (!strcmp(a, "--victim-adam-lr")) cfg->victim_adam_lr = cli_float(argc, argv, i);
    else if (!strcmp(a, "--shortcut")) cfg->shortcut = cli_float(argc, argv, i);
    else if (!strcmp(a, "--noise-weight")) cfg->noise_weight = cli_float(argc, argv, i);
    else if (!strcmp(a, "--soft-targets")) cfg->warmup_temperature = cli_float(argc, argv, i);
    else if (!strcmp(a, "--shift")) cfg->warmup_shift = cli_int(argc, argv, i);
    else if (!strcmp(a, "--victim-shift")) cfg->victim_shift = cli_int(argc, argv, i);
    else if (!strcmp(a, "--victim-momentum")) cfg->victim_momentum = cli_float(argc, argv, i);
    else if (!strcmp(a, "--anchor")) cfg->anchor = cli_float(argc, argv, i);
    else if (!strcmp(a, "--clamp-inward")) cfg->clamp_inward = 1;
    else return 0;
    return 1;
}

/* Reads the command line into o: make run's defaults, changed by the options given. A bad option
   or value stops the program with a message and exit status 2 (the library checks the attack's
   settings, naming each, when the attack is set up). */
static void read_poison_options(int argc, char **argv, poison_options *o)
{
    static const char *const generators[] = { "autoencoder", "mnist", NULL }, *const combinations[] = { "sum", "mean", NULL };
    int given_pairing[10] = { 0 }, i;
    memset(o, 0, sizeof *o);
    if (wants_label_specific(argc, argv)) l2c_attack_targeted_defaults(&o->cfg, 10);
    else l2c_attack_defaults(&o->cfg, 10);
    o->data = "build/mnist", o->out = "out/poisoned", o->checkpoint = "out/attack.ckpt";
    o->generator = "autoencoder";        /* learnt ~2-5x more per step than the reference generator (README) */
    o->references = "softmax,mlp,lenet"; /* diverse architectures: the poison transfers (README) */
    o->trial_victims = "none";
    o->fraction = 1.0f, o->label_shift = 1, o->victim_width = 100, o->gen_width = 16, o->runs = 1;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (read_attack_knob(argc, argv, &i, &o->cfg)) continue;
        if (!strcmp(a, "--data")) o->data = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--out")) o->out = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--checkpoint")) o->checkpoint = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--fraction")) o->fraction = cli_float(argc, argv, &i);
        else if (!strcmp(a, "--boost")) o->boost = cli_float(argc, argv, &i);
        else if (!strcmp(a, "--runs")) o->runs = cli_int(argc, argv, &i);
        else if (!strcmp(a, "--combine")) o->combine_mean = cli_choice(argc, argv, &i, combinations);
        else if (!strcmp(a, "--generator")) o->generator = generators[cli_choice(argc, argv, &i, generators)];
        else if (!strcmp(a, "--gen-width")) o->gen_width = cli_int(argc, argv, &i);
        else if (!strcmp(a, "--threads")) o->threads = cli_int(argc, argv, &i);
        else if (!strcmp(a, "--victim-width")) o->victim_width = cli_int(argc, argv, &i);
        else if (!strcmp(a, "--references")) o->references = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--trial-victims")) o->trial_victims = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--pairing")) read_pairing_option(argc, argv, &i, o, given_pairing);
        else if (!strcmp(a, "--targeted")) continue;   /* chose the defaults above */
        else if (!strcmp(a, "--label-shift")) o->label_shift = cli_int(argc, argv, &i);
        else if (!strcmp(a, "--fresh")) o->fresh = 1;
        else if (!strcmp(a, "--new-settings")) o->new_settings = 1;
        else { fprintf(stderr, "poison_mnist: unknown option %s (--help lists the options)\n", a); exit(2); }
    }
    if (o->label_shift < 1 || o->label_shift > 9) { fprintf(stderr, "poison_mnist: --label-shift must be in 1..9\n"); exit(2); }
    for (i = 0; i < 10; i++) o->cfg.label_map[i] = (i + o->label_shift) % 10;
    if (o->cfg.pairing == L2C_PAIR_GIVEN) {   /* the library keeps a given pairing in label_map */
        if (o->cfg.targeted) { fprintf(stderr, "poison_mnist: a given --pairing is for the non-targeted mode\n"); exit(2); }
        memcpy(o->cfg.label_map, given_pairing, sizeof given_pairing);
    }
    if (!(o->cfg.eps > 0.0f && o->cfg.eps <= 1.0f)) { fprintf(stderr, "poison_mnist: --eps must be in (0, 1]\n"); exit(2); }
    if (!(o->fraction >= 0.0f && o->fraction <= 1.0f)) { fprintf(stderr, "poison_mnist: --fraction must be in [0, 1]\n"); exit(2); }
    if (!(o->boost >= -1.0f && o->boost <= 100.0f)) { fprintf(stderr, "poison_mnist: --boost must be in [-1, 100]\n"); exit(2); }
    if (o->runs < 1 || o->runs > 16) { fprintf(stderr, "poison_mnist: --runs must be in 1..16\n"); exit(2); }
    if (o->threads < 0) { fprintf(stderr, "poison_mnist: --threads must be >= 1 (or 0: all cores)\n"); exit(2); }
}
