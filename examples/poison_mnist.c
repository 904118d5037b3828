/* poison_mnist: learns a DeepConfuse generator on MNIST and releases the poisoned training set.
   Its options: poison_options.h (the usage text there is what --help prints). */
#define L2C_IMPLEMENTATION
#include "learn2confuse.h"
#include "cli_args.h"
#include "poison_options.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int main(int argc, char **argv)
{
    poison_options o;
    l2c_attack_config *cfg = &o.cfg;
    char path[1024], path2[1024], mode[64] = "non-targeted";
    int rc, trials_left;
    l2c_dataset train, poisoned;
    l2c_model *gen, *victim;
    l2c_attack *attack;

    cli_program = "poison_mnist";
    cli_help(argc, argv, usage);
    read_poison_options(argc, argv, &o);
    if (o.threads > 0) l2c_set_threads(o.threads);

    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", o.data);
    snprintf(path2, sizeof path2, "%s/train-labels-idx1-ubyte", o.data);
    if (l2c_dataset_load(&train, path, path2, 10)) return fail("loading the training set");
    if (train.c != 1 || train.h != 28 || train.w != 28) {
        fprintf(stderr, "poison_mnist: the MNIST networks need 28x28 grey images; %s holds %dx%dx%d\n", path, train.c, train.h, train.w);
        return 1;
    }
    if (!can_create(o.out, "/.poison_mnist-probe") || !can_create(o.checkpoint, ".probe")) {
        fprintf(stderr, "poison_mnist: cannot create files in %s or beside %s (directories that exist and are writable "
                "are needed); nothing was trained\n", o.out, o.checkpoint);
        return 1;
    }
    gen = strcmp(o.generator, "mnist") ? l2c_autoencoder(1, 28, 28, o.gen_width, cfg->seed) : l2c_mnist_generator(cfg->seed);
    victim = l2c_mnist_victim(o.victim_width, cfg->seed);   /* the imaginary victim (surrogate) */
    cfg->progress = progress;
    cfg->user = &cfg->trials;
    attack = gen && victim ? l2c_attack_new(cfg, gen, victim, &train) : NULL;
    if (!attack) return fail("setting up the attack");
    if (add_classifiers(attack, o.references, cfg->seed, l2c_attack_add_reference)) return fail("--references");
    if (add_classifiers(attack, o.trial_victims, cfg->seed, l2c_attack_add_victim)) return fail("--trial-victims");

    /* Resume when a checkpoint exists; refuse (rather than overwrite) one that does not fit. */
    rc = 0;
    if (!o.fresh) rc = o.new_settings ? l2c_attack_load_under_new_settings(attack, o.checkpoint) : l2c_attack_load(attack, o.checkpoint);
    if (rc != 0) {
        if (rc != L2C_EIO) return fail("the checkpoint exists but cannot be used (pass --fresh to start over, or --new-settings to resume under these settings)");
        l2c_clear_error();
    }
    trials_left = cfg->trials - l2c_attack_trials_done(attack);
    if (cfg->targeted) snprintf(mode, sizeof mode, "label-specific y -> y+%d", o.label_shift);
    printf("DeepConfuse on %d images: %s generator, eps %.3g, %s, %d warm-up step(s) then %d trial(s) to go (%d done), %d threads\n",
           train.n, o.generator, cfg->eps, mode,
           l2c_attack_warmed_up(attack) ? 0 : cfg->warmup_steps, trials_left > 0 ? trials_left : 0,
           l2c_attack_trials_done(attack), l2c_get_threads());
    signal(SIGINT, on_sigint);
    while (!l2c_attack_warmed_up(attack) || l2c_attack_trials_done(attack) < cfg->trials) {
        rc = l2c_attack_run_trial(attack);
        if (rc < 0) return fail("attack");
        if (rc > 0) { printf("interrupted: the last completed phase is in %s; run again to resume\n", o.checkpoint); return 130; }
        if (l2c_attack_save(attack, o.checkpoint)) return fail("saving the checkpoint");
    }
    print_targets(attack);

    if (l2c_poison_dataset(l2c_attack_generator(attack), &train, cfg->eps, o.fraction, &poisoned)) return fail("poisoning");
    if (l2c_poison_boost_class_mean(&train, &poisoned, cfg->eps, o.boost)) return fail("boosting the release");
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", o.out);
    snprintf(path2, sizeof path2, "%s/train-labels-idx1-ubyte", o.out);
    if (l2c_dataset_save(&poisoned, path, path2)) return fail("writing the poisoned set");
    snprintf(path, sizeof path, "%s/generator.l2c", o.out);
    if (l2c_model_save(l2c_attack_generator(attack), path)) return fail("writing the generator");
    printf("wrote %s/train-{images-idx3,labels-idx1}-ubyte (%.0f%% poisoned, boost %g) and %s\n", o.out, 100.0 * o.fraction, o.boost, path);

    l2c_dataset_free(&poisoned); l2c_dataset_free(&train);
    l2c_attack_free(attack); l2c_model_free(gen); l2c_model_free(victim);
    return 0;
}
