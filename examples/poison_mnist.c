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

/* The progress line's clock, per run: when this process's first trial step of the run ended. */
typedef struct progress_clock {
    int trials;             /* of the run */
    double first_step_at;   /* seconds; < 0 until then */
    int steps_before;       /* trial steps already done then (resumed from the checkpoint) */
} progress_clock;

/* Prints a progress line every 50 steps (warm-up: every 250) with an estimate of the time left;
   stops the attack on Ctrl-C. */
static int progress(const l2c_attack_progress *p, void *user)
{
    progress_clock *timer = (progress_clock *)user;
    int done = (p->trial - 1) * p->steps + p->step, total = timer->trials * p->steps;
    if (p->trial == 0) {
        if (p->step % 250 == 0 || p->step == p->steps)
            printf("warm-up step %4d/%d  loss against the warm-up targets %.3f  %5.0fs elapsed\n",
                   p->step, p->steps, p->clean_loss, p->seconds), fflush(stdout);
        return interrupted;
    }
    if (timer->first_step_at < 0.0) timer->first_step_at = p->seconds, timer->steps_before = done;
    if (p->step % 50 == 0 || p->step == p->steps)
        printf("trial %d/%d  step %4d/%d  victim loss %.3f  clean loss %.3f  %5.0fs elapsed  ~%.0fs left\n",
               p->trial, p->trials, p->step, p->steps, p->victim_loss, p->clean_loss, p->seconds,
               done > timer->steps_before ? (p->seconds - timer->first_step_at) / (done - timer->steps_before) * (total - done) : 0.0),
               fflush(stdout);
    return interrupted;
}

static int fail(const char *what) { fprintf(stderr, "poison_mnist: %s: %s\n", what, l2c_error()); return 1; }

/* Adds each classifier of a comma-separated list of names with add (l2c_attack_add_reference: to
   the warm-up's reference ensemble; l2c_attack_add_victim: to the trials' victim architectures). */
static int add_classifiers(l2c_attack *attack, const char *list, uint64_t seed,
                           int (*add)(l2c_attack *, const l2c_model *))
{
    char names[CLI_PATH_SIZE], *name;
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
    char path[CLI_PATH_SIZE];
    FILE *f;
    snprintf(path, sizeof path, "%s%s", prefix, suffix);
    if (!(f = fopen(path, "wb"))) return 0;
    fclose(f);
    remove(path);
    return 1;
}

/* The k-th run's file beside a path (k = 1: the path itself): FILE.runK, or for the generator
   DIR/generator-runK.l2c. */
static void run_checkpoint(char *path, size_t size, const char *checkpoint, int run)
{
    if (run == 1) snprintf(path, size, "%s", checkpoint);
    else snprintf(path, size, "%s.run%d", checkpoint, run);
}
static void run_generator(char *path, size_t size, const char *out, int run)
{
    if (run == 1) snprintf(path, size, "%s/generator.l2c", out);
    else snprintf(path, size, "%s/generator-run%d.l2c", out, run);
}

/* Sets up the attack of one run (its seed: --seed + run - 1) and resumes it from its checkpoint
   when there is one; NULL (message printed) when that fails. */
static l2c_attack *start_run(poison_options *o, const l2c_dataset *train, int run, const char *checkpoint,
                             progress_clock *timer, l2c_model **gen, l2c_model **victim)
{
    l2c_attack_config cfg = o->cfg;
    l2c_attack *attack;
    int rc = 0;
    cfg.seed = o->cfg.seed + (uint64_t)(run - 1);
    *gen = strcmp(o->generator, "mnist") ? l2c_autoencoder(1, 28, 28, o->gen_width, cfg.seed) : l2c_mnist_generator(cfg.seed);
    *victim = l2c_mnist_victim(o->victim_width, cfg.seed);   /* the imaginary victim (surrogate) */
    timer->trials = cfg.trials, timer->first_step_at = -1.0, timer->steps_before = 0;
    cfg.progress = progress;
    cfg.user = timer;
    attack = *gen && *victim ? l2c_attack_new(&cfg, *gen, *victim, train) : NULL;
    if (!attack) { fail("setting up the attack"); return NULL; }
    if (add_classifiers(attack, o->references, cfg.seed, l2c_attack_add_reference)) rc = fail("--references");
    else if (add_classifiers(attack, o->trial_victims, cfg.seed, l2c_attack_add_victim)) rc = fail("--trial-victims");
    else if (!o->fresh) {   /* resume when a checkpoint exists; refuse (rather than overwrite) one that does not fit */
        rc = o->new_settings ? l2c_attack_load_under_new_settings(attack, checkpoint) : l2c_attack_load(attack, checkpoint);
        if (rc == L2C_EIO) l2c_clear_error(), rc = 0;
        else if (rc) rc = fail("the checkpoint exists but cannot be used (pass --fresh to start over, or --new-settings to resume under these settings)");
    }
    if (rc) { l2c_attack_free(attack); return NULL; }
    return attack;
}

/* Runs the attack of one run to its end (saving the checkpoint after every phase) and releases its
   poison into *release; writes the run's generator. 0, 130 when interrupted (resumable), 1 on failure. */
static int train_run(poison_options *o, const l2c_dataset *train, int run, l2c_dataset *release)
{
    char checkpoint[CLI_PATH_SIZE], path[CLI_PATH_SIZE], mode[64] = "non-targeted";
    progress_clock timer;
    l2c_model *gen = NULL, *victim = NULL;
    l2c_attack *attack;
    int rc = 0, trials_left;

    run_checkpoint(checkpoint, sizeof checkpoint, o->checkpoint, run);
    attack = start_run(o, train, run, checkpoint, &timer, &gen, &victim);
    if (!attack) { l2c_model_free(gen); l2c_model_free(victim); return 1; }
    trials_left = o->cfg.trials - l2c_attack_trials_done(attack);
    if (o->cfg.targeted) snprintf(mode, sizeof mode, "label-specific y -> y+%d", o->label_shift);
    if (o->runs > 1) printf("run %d/%d (seed %llu, checkpoint %s)\n", run, o->runs, (unsigned long long)(o->cfg.seed + (uint64_t)(run - 1)), checkpoint);
    printf("DeepConfuse on %d images: %s generator, eps %.3g, %s, %d warm-up step(s) then %d trial(s) to go (%d done), %d threads\n",
           train->n, o->generator, o->cfg.eps, mode,
           l2c_attack_warmed_up(attack) ? 0 : o->cfg.warmup_steps, trials_left > 0 ? trials_left : 0,
           l2c_attack_trials_done(attack), l2c_get_threads());
    while (!rc && (!l2c_attack_warmed_up(attack) || l2c_attack_trials_done(attack) < o->cfg.trials)) {
        rc = l2c_attack_run_trial(attack);
        if (rc < 0) rc = fail("attack");
        else if (rc > 0) printf("interrupted: the last completed phase is in %s; run again to resume\n", checkpoint), rc = 130;
        else if (l2c_attack_save(attack, checkpoint)) rc = fail("saving the checkpoint");
    }
    if (!rc) {
        print_targets(attack);
        run_generator(path, sizeof path, o->out, run);
        if (l2c_poison_dataset(l2c_attack_generator(attack), train, o->cfg.eps, o->fraction, release)) rc = fail("poisoning");
        else if (l2c_poison_boost_class_mean(train, release, o->cfg.eps, o->boost)) rc = fail("boosting the release");
        else if (l2c_model_save(l2c_attack_generator(attack), path)) rc = fail("writing the generator");
        else printf("wrote %s\n", path);
    }
    l2c_attack_free(attack); l2c_model_free(gen); l2c_model_free(victim);
    return rc;
}

int main(int argc, char **argv)
{
    poison_options o;
    char path[CLI_PATH_SIZE], path2[CLI_PATH_SIZE];
    int rc = 0, run;
    l2c_dataset train, poisoned, releases[16];

    cli_program = "poison_mnist";
    cli_help(argc, argv, usage);
    read_poison_options(argc, argv, &o);
    if (o.threads > 0) l2c_set_threads(o.threads);

    cli_idx_paths(o.data, "train", path, path2);
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
    signal(SIGINT, on_sigint);
    memset(releases, 0, sizeof releases), memset(&poisoned, 0, sizeof poisoned);
    for (run = 1; run <= o.runs && !rc; run++) rc = train_run(&o, &train, run, &releases[run - 1]);

    /* the runs' perturbations added within eps, or averaged (one run's release is itself) */
    if (!rc && l2c_poison_combine(&train, releases, o.runs, o.cfg.eps, !o.combine_mean, &poisoned)) rc = fail("combining the runs' releases");
    cli_idx_paths(o.out, "train", path, path2);
    if (!rc && l2c_dataset_save(&poisoned, path, path2)) rc = fail("writing the poisoned set");
    if (!rc) printf("wrote %s/train-{images-idx3,labels-idx1}-ubyte (%.0f%% poisoned, boost %g%s)\n", o.out, 100.0 * o.fraction, o.boost,
                    o.runs == 1 ? "" : o.combine_mean ? ", the runs' perturbations averaged" : ", the runs' perturbations added within eps");
    l2c_dataset_free(&poisoned);
    for (run = 0; run < o.runs; run++) l2c_dataset_free(&releases[run]);
    l2c_dataset_free(&train);
    return rc;
}
