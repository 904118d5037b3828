/* poison_mnist: learns a DeepConfuse generator on MNIST and releases the poisoned training set.
   Its options: `usage` below, which --help prints. */
#define L2C_IMPLEMENTATION
#include "learn2confuse.h"
#include "cli_args.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What --help prints: the options and what each does. */
static const char *const usage[] = {
    "usage: poison_mnist [--data DIR] [--out DIR] [--checkpoint FILE] [--eps E] [--trials T]",
    "                    [--steps S] [--gen-lr LR] [--victim-lr LR] [--batch B] [--seed S]",
    "                    [--targeted] [--label-shift K] [--fraction F] [--generator mnist|autoencoder] [--gen-width W]",
    "                    [--fresh] [--new-settings]",
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
    "softmax,mlp,lenet, --anchor 1 (2 with --targeted), --threads 0 (all cores).",
    "",
    "--targeted: label-specific, y -> y+1 mod 10; --label-shift K: label-specific with y -> y+K mod 10",
    "(K in 1..9; implies --targeted);",
    "--fresh: start over, ignoring (and then replacing) the checkpoint; --new-settings: resume a",
    "checkpoint made under other settings, continuing under those given now (a checkpoint records",
    "them, and is otherwise refused where they differ; --trials may always change);",
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

static volatile sig_atomic_t interrupted = 0;
static void on_sigint(int sig) { (void)sig; interrupted = 1; }

/* Prints a progress line every 50 steps (warm-up: every 250) with an estimate of the time left;
   stops the attack on Ctrl-C. */
static int progress(const l2c_attack_progress *p, void *user)
{
    static double first_trial_step = -1.0;   /* when this process's first trial step ended */
    static int steps_before = 0;             /* trial steps already done then */
    int done = (p->trial - 1) * p->steps + p->step, total = *(int *)user * p->steps;
    if (p->trial == 0) {
        if (p->step % 250 == 0 || p->step == p->steps)
            printf("warm-up step %4d/%d  loss against the warm-up targets %.3f  %5.0fs elapsed\n",
                   p->step, p->steps, p->clean_loss, p->seconds), fflush(stdout);
        return interrupted;
    }
    if (first_trial_step < 0.0) first_trial_step = p->seconds, steps_before = done;
    if (p->step % 50 == 0 || p->step == p->steps)
        printf("trial %d/%d  step %4d/%d  victim loss %.3f  clean loss %.3f  %5.0fs elapsed  ~%.0fs left\n",
               p->trial, p->trials, p->step, p->steps, p->victim_loss, p->clean_loss, p->seconds,
               done > steps_before ? (p->seconds - first_trial_step) / (done - steps_before) * (total - done) : 0.0),
               fflush(stdout);
    return interrupted;
}

static int fail(const char *what) { fprintf(stderr, "poison_mnist: %s: %s\n", what, l2c_error()); return 1; }

/* Adds each classifier of a comma-separated list of names with add (l2c_attack_add_reference: to
   the warm-up's reference ensemble; l2c_attack_add_victim: to the trials' victim architectures). */
static int add_classifiers(l2c_attack *attack, const char *list, uint64_t seed,
                           int (*add)(l2c_attack *, const l2c_model *))
{
    char names[256], *name;
    if (!strcmp(list, "none")) return 0;
    snprintf(names, sizeof names, "%s", list);
    for (name = strtok(names, ","); name; name = strtok(NULL, ",")) {
        l2c_model *m = l2c_mnist_classifier(name, seed);
        int rc = m ? add(attack, m) : -1;
        l2c_model_free(m);
        if (rc) return rc;
    }
    return 0;
}

/* Where the warm-up sent each class (known when the reference classifiers were trained in this run). */
static void print_targets(const l2c_attack *attack)
{
    int w[10], y;
    if (l2c_attack_warmup_targets(attack, w)) { l2c_clear_error(); return; }
    printf("warm-up targets (images of class y carry features of w(y)):");
    for (y = 0; y < 10; y++) printf(" %d->%d", y, w[y]);
    printf("\n");
}

/* Whether a file can be created at prefix + suffix (tried and removed): the outputs are checked
   before the attack rather than after it. */
static int can_create(const char *prefix, const char *suffix)
{
    char path[1100];
    FILE *f;
    snprintf(path, sizeof path, "%s%s", prefix, suffix);
    if (!(f = fopen(path, "wb"))) return 0;
    fclose(f);
    remove(path);
    return 1;
}

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

int main(int argc, char **argv)
{
    const char *data = "build/mnist", *out = "out/poisoned", *ckpt = "out/attack.ckpt";
    const char *arch = "autoencoder";   /* learnt ~2-5x more per step than the reference generator (README) */
    const char *references = "softmax,mlp,lenet";   /* diverse architectures: the poison transfers (README) */
    const char *trial_victims = "none";             /* further imaginary-victim architectures */
    char path[1024], path2[1024], mode[64] = "non-targeted";
    float fraction = 1.0f;
    int given_pairing[10], label_shift = 1, fresh = 0, new_settings = 0, threads = 0, width = 100, gen_width = 16, i, rc, trials_left;
    l2c_attack_config cfg;
    l2c_dataset train, poisoned;
    l2c_model *gen, *victim;
    l2c_attack *attack;

    cli_program = "poison_mnist";
    cli_help(argc, argv, usage);
    if (wants_label_specific(argc, argv)) l2c_attack_targeted_defaults(&cfg, 10);
    else l2c_attack_defaults(&cfg, 10);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--data")) data = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--out")) out = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--checkpoint")) ckpt = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--eps")) cfg.eps = cli_float(argc, argv, &i);
        else if (!strcmp(a, "--trials")) cfg.trials = cli_int(argc, argv, &i);
        else if (!strcmp(a, "--steps")) cfg.steps_per_trial = cli_int(argc, argv, &i);
        else if (!strcmp(a, "--gen-lr")) cfg.gen_lr = cli_float(argc, argv, &i);
        else if (!strcmp(a, "--victim-lr")) cfg.victim_lr = cli_float(argc, argv, &i);
        else if (!strcmp(a, "--batch")) cfg.batch = cli_int(argc, argv, &i);
        else if (!strcmp(a, "--seed")) cfg.seed = cli_seed(argc, argv, &i);
        else if (!strcmp(a, "--fraction")) fraction = cli_float(argc, argv, &i);
        else if (!strcmp(a, "--generator")) arch = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--gen-width")) gen_width = cli_int(argc, argv, &i);
        else if (!strcmp(a, "--threads")) threads = cli_int(argc, argv, &i);
        else if (!strcmp(a, "--victim-width")) width = cli_int(argc, argv, &i);
        else if (!strcmp(a, "--victims")) cfg.victims = cli_int(argc, argv, &i);
        else if (!strcmp(a, "--lifetime")) cfg.victim_lifetime = cli_int(argc, argv, &i);
        else if (!strcmp(a, "--warmup")) cfg.warmup_steps = cli_int(argc, argv, &i);
        else if (!strcmp(a, "--ref-epochs")) cfg.warmup_epochs = cli_float(argc, argv, &i);
        else if (!strcmp(a, "--references")) references = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--trial-victims")) trial_victims = cli_value(argc, argv, &i);
        else if (!strcmp(a, "--pairing")) {
            const char *v = cli_value(argc, argv, &i);
            if (!strcmp(v, "next")) cfg.pairing = L2C_PAIR_NEXT;
            else if (!strcmp(v, "nearest")) cfg.pairing = L2C_PAIR_NEAREST;
            else if (!strcmp(v, "reachable")) cfg.pairing = L2C_PAIR_REACHABLE;
            else if (read_pairing(v, given_pairing)) cfg.pairing = L2C_PAIR_GIVEN;
            else { fprintf(stderr, "poison_mnist: --pairing is next, nearest, reachable or ten classes w(0),...,w(9), not \"%s\"\n", v); return 2; }
        }
        else if (!strcmp(a, "--lr-schedule")) {
            const char *v = cli_value(argc, argv, &i);
            if (strcmp(v, "constant") && strcmp(v, "cosine")) { fprintf(stderr, "poison_mnist: --lr-schedule is constant or cosine\n"); return 2; }
            cfg.lr_schedule = strcmp(v, "constant") ? L2C_LR_COSINE : L2C_LR_CONSTANT;
        }
        else if (!strcmp(a, "--objective")) {
            const char *v = cli_value(argc, argv, &i);
            if (strcmp(v, "lookahead") && strcmp(v, "align")) { fprintf(stderr, "poison_mnist: --objective is lookahead or align\n"); return 2; }
            cfg.objective = strcmp(v, "lookahead") ? L2C_OBJ_ALIGN : L2C_OBJ_LOOKAHEAD;
        }
        else if (!strcmp(a, "--untargeted-loss")) {
            const char *v = cli_value(argc, argv, &i);
            if (strcmp(v, "xent") && strcmp(v, "complement")) { fprintf(stderr, "poison_mnist: --untargeted-loss is xent or complement\n"); return 2; }
            cfg.untargeted_loss = strcmp(v, "xent") ? L2C_UNTARGETED_COMPLEMENT : L2C_UNTARGETED_XENT;
        }
        else if (!strcmp(a, "--victim-optimizer")) {
            const char *v = cli_value(argc, argv, &i);
            if (strcmp(v, "sgd") && strcmp(v, "adam") && strcmp(v, "alternate")) {
                fprintf(stderr, "poison_mnist: --victim-optimizer is sgd, adam or alternate\n"); return 2;
            }
            cfg.victim_optimizer = !strcmp(v, "sgd") ? L2C_VICTIM_SGD : !strcmp(v, "adam") ? L2C_VICTIM_ADAM : L2C_VICTIM_ALTERNATE;
        }
        else if (!strcmp(a, "--victim-adam-lr")) cfg.victim_adam_lr = cli_float(argc, argv, &i);
        else if (!strcmp(a, "--shortcut")) cfg.shortcut = cli_float(argc, argv, &i);
        else if (!strcmp(a, "--noise-weight")) cfg.noise_weight = cli_float(argc, argv, &i);
        else if (!strcmp(a, "--soft-targets")) cfg.warmup_temperature = cli_float(argc, argv, &i);
        else if (!strcmp(a, "--shift")) cfg.warmup_shift = cli_int(argc, argv, &i);
        else if (!strcmp(a, "--victim-shift")) cfg.victim_shift = cli_int(argc, argv, &i);
        else if (!strcmp(a, "--victim-momentum")) cfg.victim_momentum = cli_float(argc, argv, &i);
        else if (!strcmp(a, "--anchor")) cfg.anchor = cli_float(argc, argv, &i);
        else if (!strcmp(a, "--targeted")) continue;   /* chose the defaults above */
        else if (!strcmp(a, "--label-shift")) label_shift = cli_int(argc, argv, &i);
        else if (!strcmp(a, "--clamp-inward")) cfg.clamp_inward = 1;
        else if (!strcmp(a, "--fresh")) fresh = 1;
        else if (!strcmp(a, "--new-settings")) new_settings = 1;
        else { fprintf(stderr, "poison_mnist: unknown option %s (--help lists the options)\n", a); return 2; }
    }
    if (label_shift < 1 || label_shift > 9) { fprintf(stderr, "poison_mnist: --label-shift must be in 1..9\n"); return 2; }
    for (i = 0; i < 10; i++) cfg.label_map[i] = (i + label_shift) % 10;
    if (cfg.pairing == L2C_PAIR_GIVEN) {   /* the library keeps a given pairing in label_map */
        if (cfg.targeted) { fprintf(stderr, "poison_mnist: a given --pairing is for the non-targeted mode\n"); return 2; }
        memcpy(cfg.label_map, given_pairing, sizeof given_pairing);
    }
    if (!(cfg.eps > 0.0f && cfg.eps <= 1.0f)) { fprintf(stderr, "poison_mnist: --eps must be in (0, 1]\n"); return 2; }
    if (!(fraction >= 0.0f && fraction <= 1.0f)) { fprintf(stderr, "poison_mnist: --fraction must be in [0, 1]\n"); return 2; }
    if (strcmp(arch, "mnist") && strcmp(arch, "autoencoder")) { fprintf(stderr, "poison_mnist: --generator is mnist or autoencoder\n"); return 2; }
    if (threads < 0) { fprintf(stderr, "poison_mnist: --threads must be >= 1 (or 0: all cores)\n"); return 2; }
    if (threads > 0) l2c_set_threads(threads);

    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", data);
    snprintf(path2, sizeof path2, "%s/train-labels-idx1-ubyte", data);
    if (l2c_dataset_load(&train, path, path2, 10)) return fail("loading the training set");
    if (train.c != 1 || train.h != 28 || train.w != 28) {
        fprintf(stderr, "poison_mnist: the MNIST networks need 28x28 grey images; %s holds %dx%dx%d\n", path, train.c, train.h, train.w);
        return 1;
    }
    if (!can_create(out, "/.poison_mnist-probe") || !can_create(ckpt, ".probe")) {
        fprintf(stderr, "poison_mnist: cannot create files in %s or beside %s (directories that exist and are writable "
                "are needed); nothing was trained\n", out, ckpt);
        return 1;
    }
    gen = strcmp(arch, "mnist") ? l2c_autoencoder(1, 28, 28, gen_width, cfg.seed) : l2c_mnist_generator(cfg.seed);
    victim = l2c_mnist_victim(width, cfg.seed);   /* the imaginary victim (surrogate) */
    cfg.progress = progress;
    cfg.user = &cfg.trials;
    attack = gen && victim ? l2c_attack_new(&cfg, gen, victim, &train) : NULL;
    if (!attack) return fail("setting up the attack");
    if (add_classifiers(attack, references, cfg.seed, l2c_attack_add_reference)) return fail("--references");
    if (add_classifiers(attack, trial_victims, cfg.seed, l2c_attack_add_victim)) return fail("--trial-victims");

    /* Resume when a checkpoint exists; refuse (rather than overwrite) one that does not fit. */
    rc = 0;
    if (!fresh) rc = new_settings ? l2c_attack_load_under_new_settings(attack, ckpt) : l2c_attack_load(attack, ckpt);
    if (rc != 0) {
        if (rc != L2C_EIO) return fail("the checkpoint exists but cannot be used (pass --fresh to start over, or --new-settings to resume under these settings)");
        l2c_clear_error();
    }
    trials_left = cfg.trials - l2c_attack_trials_done(attack);
    if (cfg.targeted) snprintf(mode, sizeof mode, "label-specific y -> y+%d", label_shift);
    printf("DeepConfuse on %d images: %s generator, eps %.3g, %s, %d warm-up step(s) then %d trial(s) to go (%d done), %d threads\n",
           train.n, arch, cfg.eps, mode,
           l2c_attack_warmed_up(attack) ? 0 : cfg.warmup_steps, trials_left > 0 ? trials_left : 0,
           l2c_attack_trials_done(attack), l2c_get_threads());
    signal(SIGINT, on_sigint);
    while (!l2c_attack_warmed_up(attack) || l2c_attack_trials_done(attack) < cfg.trials) {
        rc = l2c_attack_run_trial(attack);
        if (rc < 0) return fail("attack");
        if (rc > 0) { printf("interrupted: the last completed phase is in %s; run again to resume\n", ckpt); return 130; }
        if (l2c_attack_save(attack, ckpt)) return fail("saving the checkpoint");
    }
    print_targets(attack);

    if (l2c_poison_dataset(l2c_attack_generator(attack), &train, cfg.eps, fraction, &poisoned)) return fail("poisoning");
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", out);
    snprintf(path2, sizeof path2, "%s/train-labels-idx1-ubyte", out);
    if (l2c_dataset_save(&poisoned, path, path2)) return fail("writing the poisoned set");
    snprintf(path, sizeof path, "%s/generator.l2c", out);
    if (l2c_model_save(l2c_attack_generator(attack), path)) return fail("writing the generator");
    printf("wrote %s/train-{images-idx3,labels-idx1}-ubyte (%.0f%% poisoned) and %s\n", out, 100.0 * fraction, path);

    l2c_dataset_free(&poisoned); l2c_dataset_free(&train);
    l2c_attack_free(attack); l2c_model_free(gen); l2c_model_free(victim);
    return 0;
}
