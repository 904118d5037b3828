/* Tests of section 9: the hypergradient against a finite difference of the unrolled objective,
   poison release bounds, checkpoint/resume and refusal of bad settings. Included by test_main.c. */

/* A tiny attack problem: 4x4 grey images, 3 classes. */
#define TA_N 8
#define TA_SIDE 4

static l2c_model *ta_generator(void)
{
    l2c_model *g = l2c_model_new(1, TA_SIDE, TA_SIDE);
    if (!g || l2c_model_conv(g, 3, 3, 1, 1) || l2c_model_batchnorm(g) || l2c_model_tanh(g) ||
        l2c_model_conv(g, 1, 3, 1, 1) || l2c_model_tanh(g)) { l2c_model_free(g); return NULL; }
    l2c_model_init(g, 11);
    return g;
}

static l2c_model *ta_victim(void)
{
    l2c_model *v = l2c_model_new(1, TA_SIDE, TA_SIDE);
    if (!v || l2c_model_conv(v, 2, 3, 1, 0) || l2c_model_batchnorm(v) || l2c_model_tanh(v) ||
        l2c_model_flatten(v) || l2c_model_dense(v, 3)) { l2c_model_free(v); return NULL; }
    l2c_model_init(v, 12);
    return v;
}

/* A linear classifier of the tiny images: a second, different member of the reference ensemble. */
static l2c_model *ta_linear(void)
{
    l2c_model *m = l2c_model_new(1, TA_SIDE, TA_SIDE);
    if (!m || l2c_model_flatten(m) || l2c_model_dense(m, 3)) { l2c_model_free(m); return NULL; }
    l2c_model_init(m, 13);
    return m;
}

/* Pixels in [0.3, 0.7] so that x + eps*g never reaches the clamp (a kink) with eps = 0.1. */
static void ta_dataset(l2c_dataset *d, float *x)
{
    l2c_rng r;
    int i;
    d->n = TA_N; d->c = 1; d->h = TA_SIDE; d->w = TA_SIDE; d->nclasses = 3;
    d->images = (uint8_t *)malloc(TA_N * TA_SIDE * TA_SIDE);
    d->labels = (uint8_t *)malloc(TA_N);
    l2c_rng_seed(&r, 5);
    for (i = 0; i < TA_N * TA_SIDE * TA_SIDE; i++) {
        d->images[i] = (uint8_t)(77 + l2c_rng_below(&r, 102));
        x[i] = d->images[i] / 255.0f;
    }
    for (i = 0; i < TA_N; i++) d->labels[i] = (uint8_t)(i % 3);
}

/* J(xi') = L(f_theta'(x), target), theta' = theta - alpha grad_theta L(f_theta(x'(xi')), y):
   the whole unrolled objective, computed directly with the public API (L the cross-entropy, or
   with `complement` -log(1 - p_y)). How the look-ahead trains, and J's loss: */
typedef struct ta_look {
    float alpha;
    const int *shifts;   /* or NULL: (dx, dy) per sample, x' translated by them (victim_shift) */
    const float *vel;    /* or NULL: the velocity, a momentum step theta - alpha (mu vel + grad) */
    float mu;
    const l2c_adam *adam;   /* or NULL: the victim's Adam state, the look-ahead is Adam's next step */
    int complement;         /* J is l2c_softmax_complement on the clean batch */
} ta_look;

/* How far the look-ahead moves parameter i, given its gradient g. Adam's step is written out here
   from its definition (bias-corrected m-hat / (sqrt(v-hat) + eps)), in double. */
static double ta_step(const ta_look *lk, size_t i, float g)
{
    const l2c_adam *o = lk->adam;
    double t, m, v;
    if (!o) return lk->alpha * ((lk->vel ? lk->mu * lk->vel[i] : 0.0f) + g);
    t = (double)o->step + 1.0;
    m = (o->beta1 * o->m[i] + (1.0 - o->beta1) * g) / (1.0 - pow(o->beta1, t));
    v = (o->beta2 * o->v[i] + (1.0 - o->beta2) * (double)g * g) / (1.0 - pow(o->beta2, t));
    return o->lr * m / (sqrt(v) + o->eps);
}

static double ta_objective(l2c_model *g, l2c_model *victim, const float *x, const uint8_t *y,
                           const int *map, float eps, const ta_look *lk)
{
    const int *shifts = lk->shifts;
    l2c_tape *t = l2c_tape_new();
    l2c_model *look = l2c_model_clone(victim);
    l2c_tensor *in, *xp, *loss;
    float view[TA_N * TA_SIDE * TA_SIDE];
    double J;
    size_t i;
    int k;
    in = l2c_tape_input(t, TA_N, 1, TA_SIDE, TA_SIDE, x, 0);
    xp = l2c_clamp(t, l2c_add(t, in, l2c_scale(t, l2c_model_forward(t, g, in, L2C_TRAIN_FROZEN_STATS), eps)), 0, 1);
    memcpy(view, xp->data, sizeof view);
    for (k = 0; shifts && k < TA_N; k++)
        l2c_translate(xp->data + k * TA_SIDE * TA_SIDE, view + k * TA_SIDE * TA_SIDE, 1, TA_SIDE, TA_SIDE, shifts[2 * k], shifts[2 * k + 1]);
    loss = l2c_softmax_xent(t, l2c_model_forward(t, look, l2c_tape_input(t, TA_N, 1, TA_SIDE, TA_SIDE, view, 0),
                                                 L2C_TRAIN_FROZEN_STATS), y, NULL);
    l2c_model_zero_grad(look);
    l2c_backward(t, loss);
    for (i = 0; i < look->nparams; i++) look->params[i] = (float)(look->params[i] - ta_step(lk, i, look->grads[i]));
    l2c_tape_reset(t);
    in = l2c_tape_input(t, TA_N, 1, TA_SIDE, TA_SIDE, x, 0);
    loss = (lk->complement ? l2c_softmax_complement : l2c_softmax_xent)(t, l2c_model_forward(t, look, in, L2C_TRAIN_FROZEN_STATS), y, map);
    J = loss->data[0];
    l2c_tape_free(t);
    l2c_model_free(look);
    return J;
}

/* The attack's generator gradient `got` against a central difference `want`, over the whole vector:
   relative error < 5 %, cosine > 0.998 (and the objective must depend on the generator at all). */
static void ta_expect_close(const char *what, const float *got, const double *want, size_t n)
{
    double dot = 0, na = 0, nn = 0, diff = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        dot += want[i] * got[i]; na += (double)got[i] * got[i]; nn += want[i] * want[i];
        diff += (want[i] - got[i]) * (want[i] - got[i]);
    }
    CHECK(nn > 1e-8, "%s: the objective does not depend on the generator (|grad|^2 = %g)", what, nn);
    CHECK(sqrt(diff / nn) < 0.05, "%s: relative error %.4f (want < 0.05)", what, sqrt(diff / nn));
    CHECK(dot / sqrt(na * nn) > 0.998, "%s: cosine %.5f (want > 0.998)", what, dot / sqrt(na * nn));
}

/* Compares the attack's generator gradient with a central difference of +-J in every generator
   parameter; the tolerance is on the whole vector (relative error and cosine). With victim_shift the
   objective translates each sample by the draw the attack's first step uses; with momentum the
   victim carries a (random) velocity from earlier steps; with adam the victim trains by Adam and
   carries a (random) Adam state, three steps old; with complement the objective lowers
   -log(1 - p_y) (untargeted_loss). */
static void ta_check_hypergradient(int targeted, int victim_shift, float momentum, int adam, int complement)
{
    l2c_dataset d;
    float x[TA_N * TA_SIDE * TA_SIDE];
    l2c_model *g = ta_generator(), *v = ta_victim(), *gt;
    l2c_attack_config cfg;
    l2c_attack *a;
    double *num;
    const float h = 1e-2f, alpha = 1.0f;
    size_t i;
    int shifts[2 * TA_N], k, moved = 0;
    ta_look lk;
    REQUIRE(g && v, "setup failed");
    ta_dataset(&d, x);
    l2c_attack_defaults(&cfg, 3);
    cfg.eps = 0.1f; cfg.victim_lr = alpha; cfg.batch = TA_N; cfg.targeted = targeted;
    cfg.anchor = 0.0f;   /* the paper's objective alone (the anchor has a test of its own) */
    cfg.victim_shift = victim_shift; cfg.victim_momentum = momentum;
    cfg.victim_optimizer = adam ? L2C_VICTIM_ADAM : L2C_VICTIM_SGD; cfg.victim_adam_lr = 0.2f;
    cfg.untargeted_loss = complement ? L2C_UNTARGETED_COMPLEMENT : L2C_UNTARGETED_XENT;
    a = l2c_attack_new(&cfg, g, v, &d);
    REQUIRE(a, "attack setup failed: %s", l2c_error());
    REQUIRE((momentum > 0.0f) == (a->sgd.velocity != NULL), "victim_momentum %g: velocity %p", momentum, (void *)a->sgd.velocity);
    if (a->sgd.velocity) {
        l2c_rng r;
        l2c_rng_seed(&r, 21);
        for (i = 0; i < v->nparams; i++) a->sgd.velocity[i] = l2c_rng_uniform(&r) - 0.5f;
    }
    REQUIRE(!adam == !l2c__victim_on_adam(a), "victim_optimizer: the victim %s Adam", adam ? "is not on" : "is on");
    if (adam) {   /* small second moments, so that the current gradient moves Adam's denominator too */
        l2c_rng r;
        l2c_rng_seed(&r, 22);
        a->victim_adam.step = 3;
        for (i = 0; i < v->nparams; i++) {
            a->victim_adam.m[i] = 0.1f * (l2c_rng_uniform(&r) - 0.5f);
            a->victim_adam.v[i] = 1e-5f * (l2c_rng_uniform(&r) + 0.1f);
        }
    }
    for (k = 0; k < TA_N; k++) {
        l2c__sample_shift(a, L2C__DRAW_LOOKAHEAD, k, &shifts[2 * k], &shifts[2 * k + 1]);
        moved += shifts[2 * k] || shifts[2 * k + 1];
    }
    REQUIRE(!victim_shift || moved > 1, "only %d of %d samples are translated", moved, TA_N);
    lk.alpha = alpha; lk.shifts = victim_shift ? shifts : NULL; lk.vel = a->sgd.velocity; lk.mu = momentum;
    lk.adam = adam ? &a->victim_adam : NULL;
    lk.complement = complement;
    l2c_model_copy(l2c_attack_victim(a), v);
    REQUIRE(l2c_attack_generator_grad(a, x, d.labels, TA_N, NULL) == 0, "generator grad failed: %s", l2c_error());
    gt = l2c_attack_trainable(a);
    num = (double *)malloc(g->nparams * sizeof(double));
    REQUIRE(num, "out of memory");
    for (i = 0; i < g->nparams; i++) {
        float keep = g->params[i];
        double jp, jm;
        g->params[i] = keep + h;
        jp = ta_objective(g, v, x, d.labels, targeted ? cfg.label_map : NULL, cfg.eps, &lk);
        g->params[i] = keep - h;
        jm = ta_objective(g, v, x, d.labels, targeted ? cfg.label_map : NULL, cfg.eps, &lk);
        g->params[i] = keep;
        num[i] = (targeted || complement ? 1.0 : -1.0) * (jp - jm) / (2.0 * h);   /* Adam minimises -J, or +J_eta, +J_complement */
    }
    ta_expect_close("hypergradient", gt->grads, num, g->nparams);
    free(num);
    l2c_attack_free(a); l2c_model_free(g); l2c_model_free(v); l2c_dataset_free(&d);
}

static void test_hypergradient_matches_unrolled_objective(void) { ta_check_hypergradient(0, 0, 0.0f, 0, 0); }
static void test_hypergradient_matches_unrolled_objective_targeted(void) { ta_check_hypergradient(1, 0, 0.0f, 0, 0); }
/* victim_shift: the imaginary victim trains on translated poisons; the gradient goes back through. */
static void test_hypergradient_matches_unrolled_objective_shifted_victim(void) { ta_check_hypergradient(0, 1, 0.0f, 0, 0); }
/* victim_momentum: the look-ahead is the momentum step from the victim's velocity. */
static void test_hypergradient_matches_unrolled_objective_momentum_victim(void) { ta_check_hypergradient(0, 0, 0.9f, 0, 0); }
/* victim_optimizer Adam: the look-ahead is Adam's step, its denominator moved by the gradient too. */
static void test_hypergradient_matches_unrolled_objective_adam_victim(void) { ta_check_hypergradient(0, 0, 0.0f, 1, 0); }
static void test_hypergradient_matches_unrolled_objective_adam_victim_targeted(void) { ta_check_hypergradient(1, 0, 0.0f, 1, 0); }
/* untargeted_loss complement: J is -log(1 - p_y) on the clean batch, lowered. */
static void test_hypergradient_matches_unrolled_objective_complement(void) { ta_check_hypergradient(0, 0, 0.0f, 0, 1); }

/* grad_theta L(f_victim(x or its poison by g), labels mapped by map) into out (victim->nparams). */
static void ta_param_grad(l2c_model *g, l2c_model *victim, const float *x, const uint8_t *y, const int *map,
                          float eps, double *out)
{
    l2c_tape *t = l2c_tape_new();
    l2c_tensor *in = l2c_tape_input(t, TA_N, 1, TA_SIDE, TA_SIDE, x, 0), *loss;
    size_t i;
    if (g) in = l2c_clamp(t, l2c_add(t, in, l2c_scale(t, l2c_model_forward(t, g, in, L2C_TRAIN_FROZEN_STATS), eps)), 0, 1);
    loss = l2c_softmax_xent(t, l2c_model_forward(t, victim, in, L2C_TRAIN_FROZEN_STATS), y, map);
    l2c_model_zero_grad(victim);
    l2c_backward(t, loss);
    for (i = 0; i < victim->nparams; i++) out[i] = victim->grads[i];
    l2c_tape_free(t);
}

static double ta_cosine(const double *a, const double *b, size_t n)
{
    double ab = 0, aa = 0, bb = 0;
    size_t i;
    for (i = 0; i < n; i++) ab += a[i] * b[i], aa += a[i] * a[i], bb += b[i] * b[i];
    return ab / sqrt(aa * bb);
}

/* L2C_OBJ_ALIGN: the generator gradient against a central difference of C(xi') = cos(g(xi'), v), g the
   victim's gradient on the poisoned batch, v the look-ahead victim's clean-loss gradient (held fixed,
   as the attack holds it). Non-targeted steps lower C, targeted ones raise it. */
static void ta_check_alignment(int targeted)
{
    l2c_dataset d;
    float x[TA_N * TA_SIDE * TA_SIDE];
    l2c_model *g = ta_generator(), *v = ta_victim(), *gt, *look;
    l2c_attack_config cfg;
    l2c_attack *a;
    double *vclean, *gp, *num;
    const float h = 1e-2f, alpha = 1.0f;
    const int *map;
    size_t i;
    REQUIRE(g && v, "setup failed");
    ta_dataset(&d, x);
    l2c_attack_defaults(&cfg, 3);
    cfg.eps = 0.1f; cfg.victim_lr = alpha; cfg.batch = TA_N; cfg.targeted = targeted;
    cfg.anchor = 0.0f; cfg.objective = L2C_OBJ_ALIGN;
    map = targeted ? cfg.label_map : NULL;
    a = l2c_attack_new(&cfg, g, v, &d);
    REQUIRE(a, "attack setup failed: %s", l2c_error());
    l2c_model_copy(l2c_attack_victim(a), v);
    REQUIRE(l2c_attack_generator_grad(a, x, d.labels, TA_N, NULL) == 0, "generator grad failed: %s", l2c_error());
    gt = l2c_attack_trainable(a);
    vclean = (double *)malloc(v->nparams * sizeof(double));
    gp = (double *)malloc(v->nparams * sizeof(double));
    num = (double *)malloc(g->nparams * sizeof(double));
    REQUIRE(vclean && gp && num, "out of memory");
    look = l2c_model_clone(v);   /* v at theta' = theta - alpha g(xi') */
    ta_param_grad(g, look, x, d.labels, NULL, cfg.eps, gp);
    for (i = 0; i < look->nparams; i++) look->params[i] -= alpha * (float)gp[i];
    ta_param_grad(NULL, look, x, d.labels, map, cfg.eps, vclean);
    for (i = 0; i < g->nparams; i++) {
        float keep = g->params[i];
        double cp, cm;
        g->params[i] = keep + h;
        ta_param_grad(g, v, x, d.labels, NULL, cfg.eps, gp);
        cp = ta_cosine(gp, vclean, v->nparams);
        g->params[i] = keep - h;
        ta_param_grad(g, v, x, d.labels, NULL, cfg.eps, gp);
        cm = ta_cosine(gp, vclean, v->nparams);
        g->params[i] = keep;
        num[i] = (targeted ? -1.0 : 1.0) * (cp - cm) / (2.0 * h);
    }
    ta_expect_close("alignment gradient", gt->grads, num, g->nparams);
    free(vclean); free(gp); free(num);
    l2c_model_free(look); l2c_attack_free(a); l2c_model_free(g); l2c_model_free(v); l2c_dataset_free(&d);
}

static void test_alignment_gradient_matches_cosine(void) { ta_check_alignment(0); }
static void test_alignment_gradient_matches_cosine_targeted(void) { ta_check_alignment(1); }

static void test_poison_stays_within_eps(void)
{
    l2c_dataset d, p;
    float x[TA_N * TA_SIDE * TA_SIDE];
    l2c_model *g = ta_generator();
    int i, changed = 0, budget = (int)(0.1f * 255.0f), k;
    REQUIRE(g, "setup failed");
    ta_dataset(&d, x);
    for (k = 0; k < 2; k++) d.images[k] = (uint8_t)(k ? 255 : 0);   /* edge pixels: clamping */
    /* make the generator's output large so the bound is tested, not trivially met */
    for (i = 0; i < (int)g->nparams; i++) g->params[i] *= 20.0f;
    REQUIRE(l2c_poison_dataset(g, &d, 0.1f, 1.0f, &p) == 0, "poison failed: %s", l2c_error());
    for (i = 0; i < TA_N * TA_SIDE * TA_SIDE; i++) {
        int delta = abs((int)p.images[i] - (int)d.images[i]);
        CHECK(delta <= budget, "pixel %d moved by %d grey levels, budget %d", i, delta, budget);
        changed += delta > 0;
    }
    CHECK(changed > TA_N * TA_SIDE * TA_SIDE / 2, "only %d pixels changed", changed);
    CHECK(memcmp(p.labels, d.labels, TA_N) == 0, "labels changed");
    l2c_dataset_free(&p);
    REQUIRE(l2c_poison_dataset(g, &d, 0.1f, 0.5f, &p) == 0, "partial poison failed: %s", l2c_error());
    CHECK(memcmp(p.images + TA_N / 2 * 16, d.images + TA_N / 2 * 16, TA_N / 2 * 16) == 0, "the clean half was altered");
    CHECK(memcmp(p.images, d.images, TA_N / 2 * 16) != 0, "the poisoned half is unchanged");
    l2c_dataset_free(&p);
    CHECK_FAILS(l2c_poison_dataset(g, &d, 0.0f, 1.0f, &p));
    CHECK_FAILS(l2c_poison_dataset(g, &d, 1.5f, 1.0f, &p));
    CHECK_FAILS(l2c_poison_dataset(g, &d, (float)NAN, 1.0f, &p));
    CHECK_FAILS(l2c_poison_dataset(g, &d, 0.1f, 2.0f, &p));
    d.h = 5;   /* an image size the generator does not take */
    CHECK_FAILS(l2c_poison_dataset(g, &d, 0.1f, 1.0f, &p));
    d.h = TA_SIDE;
    CHECK(p.images == NULL && p.labels == NULL, "a failed release left memory in its output");
    l2c_dataset_free(&p);   /* safe after a failure */
    CHECK_FAILS(l2c_poison_dataset(NULL, &d, 0.1f, 1.0f, &p));
    CHECK(p.images == NULL, "a release without a generator left memory in its output");
    CHECK_FAILS(l2c_poison_dataset(g, &d, 0.1f, 1.0f, &d));   /* in place: refused, the clean set kept */
    CHECK(d.images != NULL && d.n == TA_N, "the clean set was destroyed by an in-place release");
    {   /* a classifier is not a generator: its 3 outputs are no image */
        l2c_model *v = ta_victim();
        REQUIRE(v, "setup failed");
        CHECK_FAILS(l2c_poison_dataset(v, &d, 0.1f, 1.0f, &p));
        CHECK(strstr(l2c_error(), "a classifier?") != NULL, "message: %s", l2c_error());
        l2c_model_free(v);
    }
    l2c_model_free(g); l2c_dataset_free(&d);
}

/* l2c_poison_boost_class_mean adds boost times each class's mean perturbation (over the changed
   images of the class) to those images, clamped to the eps budget and [0, 255]; an image identical
   to its clean original stays so. Four 1x1x2 images, eps 0.1 (a budget of 25 grey levels). */
static void test_boost_adds_the_class_mean_within_eps(void)
{
    uint8_t clean_img[8] = { 100, 100, 100, 100, 100, 100, 250, 100 }, labels[4] = { 0, 0, 1, 1 };
    uint8_t pois_img[8] = { 110, 96, 120, 94, 100, 100, 252, 124 }, labels2[4] = { 0, 0, 1, 1 };
    /* class 0 perturbations (+10, -4), (+20, -6): mean (+15, -5); class 1: image 2 unchanged,
       image 3 (+2, +24), mean over the changed ones (+2, +24) */
    const uint8_t want[8] = { 125, 91, 125, 89, 100, 100, 254, 125 };
    l2c_dataset clean = { 4, 1, 1, 2, 2, NULL, NULL }, pois = { 4, 1, 1, 2, 2, NULL, NULL };
    int i;
    clean.images = clean_img; clean.labels = labels;
    pois.images = pois_img; pois.labels = labels2;
    REQUIRE(l2c_poison_boost_class_mean(&clean, &pois, 0.1f, 0.0f) == 0, "boost 0 failed: %s", l2c_error());
    CHECK(pois_img[0] == 110 && pois_img[7] == 124, "boost 0 changed the release");
    REQUIRE(l2c_poison_boost_class_mean(&clean, &pois, 0.1f, 1.0f) == 0, "boost failed: %s", l2c_error());
    for (i = 0; i < 8; i++) CHECK(pois_img[i] == want[i], "pixel %d: %d, want %d", i, pois_img[i], want[i]);
    CHECK(memcmp(labels2, labels, 4) == 0, "labels changed");
    /* boost -1 removes the class mean: class 0 (125, 91), (125, 89) has mean (+25, -10) */
    REQUIRE(l2c_poison_boost_class_mean(&clean, &pois, 0.1f, -1.0f) == 0, "boost -1 failed: %s", l2c_error());
    CHECK(pois_img[0] == 100 && pois_img[1] == 101 && pois_img[2] == 100 && pois_img[3] == 99,
          "class 0 after removing its mean: %d %d %d %d, want 100 101 100 99", pois_img[0], pois_img[1], pois_img[2], pois_img[3]);
    CHECK(pois_img[4] == 100 && pois_img[5] == 100, "the unchanged image moved");
}

/* A large boost on a real release: every pixel stays within the budget, and the release moves. */
static void test_boost_keeps_a_release_within_eps(void)
{
    l2c_dataset d, p;
    float x[TA_N * TA_SIDE * TA_SIDE];
    uint8_t before[TA_N * TA_SIDE * TA_SIDE];
    l2c_model *g = ta_generator();
    int i, moved = 0, budget = (int)(0.1f * 255.0f);
    REQUIRE(g, "setup failed");
    ta_dataset(&d, x);
    REQUIRE(l2c_poison_dataset(g, &d, 0.1f, 1.0f, &p) == 0, "poison failed: %s", l2c_error());
    memcpy(before, p.images, sizeof before);
    REQUIRE(l2c_poison_boost_class_mean(&d, &p, 0.1f, 5.0f) == 0, "boost failed: %s", l2c_error());
    for (i = 0; i < TA_N * TA_SIDE * TA_SIDE; i++) {
        int delta = abs((int)p.images[i] - (int)d.images[i]);
        CHECK(delta <= budget, "pixel %d moved by %d grey levels, budget %d", i, delta, budget);
        moved += p.images[i] != before[i];
    }
    CHECK(moved > 0, "boost 5 left the release as it was");
    l2c_dataset_free(&p); l2c_model_free(g); l2c_dataset_free(&d);
}

/* Bad input to the boost: a clear error, and the poisoned set left as it was. */
static void test_boost_rejects_bad_input(void)
{
    l2c_dataset d, p;
    float x[TA_N * TA_SIDE * TA_SIDE];
    uint8_t before[TA_N * TA_SIDE * TA_SIDE];
    l2c_model *g = ta_generator();
    REQUIRE(g, "setup failed");
    ta_dataset(&d, x);
    REQUIRE(l2c_poison_dataset(g, &d, 0.1f, 1.0f, &p) == 0, "poison failed: %s", l2c_error());
    memcpy(before, p.images, sizeof before);
    CHECK_FAILS(l2c_poison_boost_class_mean(NULL, &p, 0.1f, 1.0f));
    CHECK_FAILS(l2c_poison_boost_class_mean(&d, NULL, 0.1f, 1.0f));
    CHECK_FAILS(l2c_poison_boost_class_mean(&d, &p, 0.0f, 1.0f));
    CHECK_FAILS(l2c_poison_boost_class_mean(&d, &p, 1.5f, 1.0f));
    CHECK_FAILS(l2c_poison_boost_class_mean(&d, &p, (float)NAN, 1.0f));
    CHECK_FAILS(l2c_poison_boost_class_mean(&d, &p, 0.1f, -1.5f));
    CHECK_FAILS(l2c_poison_boost_class_mean(&d, &p, 0.1f, (float)NAN));
    CHECK_FAILS(l2c_poison_boost_class_mean(&d, &p, 0.1f, (float)INFINITY));
    CHECK(strstr(l2c_error(), "boost") != NULL, "message: %s", l2c_error());
    p.n--;   /* another count */
    CHECK_FAILS(l2c_poison_boost_class_mean(&d, &p, 0.1f, 1.0f));
    CHECK(strstr(l2c_error(), "shape") != NULL, "message: %s", l2c_error());
    p.n++;
    p.labels[0] = (uint8_t)((p.labels[0] + 1) % 3);   /* another order of the images */
    CHECK_FAILS(l2c_poison_boost_class_mean(&d, &p, 0.1f, 1.0f));
    CHECK(strstr(l2c_error(), "labels") != NULL, "message: %s", l2c_error());
    p.labels[0] = d.labels[0];
    CHECK(memcmp(before, p.images, sizeof before) == 0, "a refused boost changed the release");
    l2c_dataset_free(&p); l2c_model_free(g); l2c_dataset_free(&d);
}

/* l2c_poison_combine averages (or adds) the releases' perturbations per pixel, rounds half up and
   keeps the result within the eps budget (25 grey levels at eps 0.1) and [0, 255]. */
static void test_combine_averages_or_adds_within_eps(void)
{
    uint8_t clean_img[6] = { 100, 250, 10, 100, 50, 50 }, labels[3] = { 0, 1, 0 };
    uint8_t a_img[6] = { 110, 252, 0, 120, 51, 60 }, b_img[6] = { 120, 240, 4, 90, 52, 40 };
    uint8_t a_lab[3] = { 0, 1, 0 }, b_lab[3] = { 0, 1, 0 };
    /* deltas A: +10 +2 -10 +20 +1 +10, B: +20 -10 -6 -10 +2 -10 */
    const uint8_t want_mean[6] = { 115, 246, 2, 105, 52, 50 }, want_sum[6] = { 125, 242, 0, 110, 53, 50 };
    l2c_dataset clean = { 3, 1, 1, 2, 2, NULL, NULL }, rel[2] = { { 3, 1, 1, 2, 2, NULL, NULL }, { 3, 1, 1, 2, 2, NULL, NULL } }, out;
    int i;
    clean.images = clean_img; clean.labels = labels;
    rel[0].images = a_img; rel[0].labels = a_lab;
    rel[1].images = b_img; rel[1].labels = b_lab;
    REQUIRE(l2c_poison_combine(&clean, rel, 2, 0.1f, 0, &out) == 0, "mean failed: %s", l2c_error());
    for (i = 0; i < 6; i++) CHECK(out.images[i] == want_mean[i], "mean, pixel %d: %d, want %d", i, out.images[i], want_mean[i]);
    CHECK(memcmp(out.labels, labels, 3) == 0, "labels changed");
    l2c_dataset_free(&out);
    REQUIRE(l2c_poison_combine(&clean, rel, 2, 0.1f, 1, &out) == 0, "sum failed: %s", l2c_error());
    for (i = 0; i < 6; i++) CHECK(out.images[i] == want_sum[i], "sum, pixel %d: %d, want %d", i, out.images[i], want_sum[i]);
    l2c_dataset_free(&out);
}

/* One release combined alone (averaged or summed) is itself; bad input is refused, with `out` left empty. */
static void test_combine_one_release_and_bad_input(void)
{
    l2c_dataset d, p, rel[2], out;
    float x[TA_N * TA_SIDE * TA_SIDE];
    l2c_model *g = ta_generator();
    REQUIRE(g, "setup failed");
    ta_dataset(&d, x);
    REQUIRE(l2c_poison_dataset(g, &d, 0.1f, 1.0f, &p) == 0, "poison failed: %s", l2c_error());
    REQUIRE(l2c_poison_combine(&d, &p, 1, 0.1f, 0, &out) == 0, "combine failed: %s", l2c_error());
    CHECK(memcmp(out.images, p.images, sizeof x / sizeof x[0]) == 0, "one release combined alone changed");
    l2c_dataset_free(&out);
    REQUIRE(l2c_poison_combine(&d, &p, 1, 0.1f, 1, &out) == 0, "sum failed: %s", l2c_error());
    CHECK(memcmp(out.images, p.images, sizeof x / sizeof x[0]) == 0, "one release summed alone changed");
    l2c_dataset_free(&out);
    rel[0] = p; rel[1] = p;
    CHECK_FAILS(l2c_poison_combine(&d, rel, 0, 0.1f, 0, &out));
    CHECK(strstr(l2c_error(), "count") != NULL && out.images == NULL, "message: %s", l2c_error());
    CHECK_FAILS(l2c_poison_combine(&d, rel, 65, 0.1f, 0, &out));
    CHECK_FAILS(l2c_poison_combine(&d, rel, 2, 0.0f, 0, &out));
    CHECK_FAILS(l2c_poison_combine(&d, rel, 2, (float)NAN, 0, &out));
    CHECK_FAILS(l2c_poison_combine(NULL, rel, 2, 0.1f, 0, &out));
    CHECK_FAILS(l2c_poison_combine(&d, rel, 2, 0.1f, 0, NULL));
    CHECK_FAILS(l2c_poison_combine(&d, rel, 2, 0.1f, 0, &d));
    CHECK(strstr(l2c_error(), "must not be") != NULL, "message: %s", l2c_error());
    CHECK_FAILS(l2c_poison_combine(&d, rel, 2, 0.1f, 0, &rel[1]));
    rel[1].n--;   /* a release of another set */
    CHECK_FAILS(l2c_poison_combine(&d, rel, 2, 0.1f, 0, &out));
    CHECK(strstr(l2c_error(), "shape") != NULL && out.images == NULL, "message: %s", l2c_error());
    l2c_dataset_free(&p); l2c_model_free(g); l2c_dataset_free(&d);
}

/* l2c_defend_class_mean subtracts mean(train of c) - mean(first per_class sample images of c):
   1x1x1 images; class 0 train {10, 20}, sample {12, 100} with per_class 1 (12 only): 15 - 12 = 3;
   class 1 train {250, 5}, sample {0}: 127.5, so 250 -> 122.5 -> 123 and 5 -> -122.5 -> 0. */
static void test_defence_subtracts_the_estimated_class_mean(void)
{
    uint8_t train_img[4] = { 10, 20, 250, 5 }, train_lab[4] = { 0, 0, 1, 1 };
    uint8_t sample_img[3] = { 12, 0, 100 }, sample_lab[3] = { 0, 1, 0 };
    const uint8_t want[4] = { 7, 17, 123, 0 };
    l2c_dataset train = { 4, 1, 1, 1, 2, NULL, NULL }, sample = { 3, 1, 1, 1, 2, NULL, NULL };
    int i;
    train.images = train_img; train.labels = train_lab;
    sample.images = sample_img; sample.labels = sample_lab;
    REQUIRE(l2c_defend_class_mean(&train, &sample, 1, 0.0f) == 0, "defence failed: %s", l2c_error());
    for (i = 0; i < 4; i++) CHECK(train_img[i] == want[i], "pixel %d: %d, want %d", i, train_img[i], want[i]);
    CHECK(sample_img[2] == 100 && train_lab[2] == 1, "the sample or the labels changed");
}

/* noise_z shrinks the estimate by that many standard errors of the sample mean: class 0 train
   {50, 50}, sample {10, 30} (mean 20, sd sqrt(200), standard error 10), estimate 30: z 1 subtracts
   20, z 3 nothing; class 1 has one sample image (no spread): its estimate 5 is subtracted whole. */
static void test_defence_shrinks_what_sampling_noise_explains(void)
{
    uint8_t train_img[3] = { 50, 50, 5 }, train_lab[3] = { 0, 0, 1 };
    uint8_t sample_img[3] = { 10, 30, 0 }, sample_lab[3] = { 0, 0, 1 };
    l2c_dataset train = { 3, 1, 1, 1, 2, NULL, NULL }, sample = { 3, 1, 1, 1, 2, NULL, NULL };
    train.images = train_img; train.labels = train_lab;
    sample.images = sample_img; sample.labels = sample_lab;
    REQUIRE(l2c_defend_class_mean(&train, &sample, 5, 3.0f) == 0, "defence failed: %s", l2c_error());
    CHECK(train_img[0] == 50 && train_img[1] == 50 && train_img[2] == 0, "z 3: %d %d %d, want 50 50 0", train_img[0], train_img[1], train_img[2]);
    train_img[2] = 5;
    REQUIRE(l2c_defend_class_mean(&train, &sample, 5, 1.0f) == 0, "defence failed: %s", l2c_error());
    CHECK(train_img[0] == 30 && train_img[1] == 30 && train_img[2] == 0, "z 1: %d %d %d, want 30 30 0", train_img[0], train_img[1], train_img[2]);
}

/* A perturbation that every image of a class shares is undone exactly when the clean sample is
   the clean set itself; and a clean set defended with itself is left as it was. */
static void test_defence_undoes_a_class_shared_perturbation(void)
{
    l2c_dataset d, p, copy;
    float x[TA_N * TA_SIDE * TA_SIDE];
    const int per = TA_SIDE * TA_SIDE;
    int i, k;
    ta_dataset(&d, x);   /* pixels in [77, 178]: a shift of up to 20 is never clamped */
    ta_dataset(&p, x);
    ta_dataset(&copy, x);
    for (i = 0; i < TA_N; i++)
        for (k = 0; k < per; k++) p.images[i * per + k] = (uint8_t)(p.images[i * per + k] + (p.labels[i] * 7 + k * 5) % 41 - 20);
    REQUIRE(l2c_defend_class_mean(&p, &d, TA_N, 0.0f) == 0, "defence failed: %s", l2c_error());
    CHECK(memcmp(p.images, d.images, TA_N * per) == 0, "the class-shared perturbation was not removed");
    REQUIRE(l2c_defend_class_mean(&copy, &d, TA_N, 0.0f) == 0, "defence failed: %s", l2c_error());
    CHECK(memcmp(copy.images, d.images, TA_N * per) == 0, "a clean set defended with itself changed");
    l2c_dataset_free(&d); l2c_dataset_free(&p); l2c_dataset_free(&copy);
}

/* Bad input to the defence: a clear error, and the training set left as it was. */
static void test_defence_rejects_bad_input(void)
{
    l2c_dataset d, s;
    float x[TA_N * TA_SIDE * TA_SIDE];
    uint8_t before[TA_N * TA_SIDE * TA_SIDE];
    int i;
    ta_dataset(&d, x);
    ta_dataset(&s, x);
    memcpy(before, d.images, sizeof before);
    CHECK_FAILS(l2c_defend_class_mean(NULL, &s, 10, 3.0f));
    CHECK_FAILS(l2c_defend_class_mean(&d, NULL, 10, 3.0f));
    CHECK_FAILS(l2c_defend_class_mean(&d, &d, 10, 3.0f));
    CHECK(strstr(l2c_error(), "another data set") != NULL, "message: %s", l2c_error());
    CHECK_FAILS(l2c_defend_class_mean(&d, &s, 0, 3.0f));
    CHECK(strstr(l2c_error(), "per_class") != NULL, "message: %s", l2c_error());
    CHECK_FAILS(l2c_defend_class_mean(&d, &s, 10, -1.0f));
    CHECK_FAILS(l2c_defend_class_mean(&d, &s, 10, (float)NAN));
    CHECK(strstr(l2c_error(), "noise_z") != NULL, "message: %s", l2c_error());
    s.w = 2; s.h = 8;   /* as many pixels, another shape */
    CHECK_FAILS(l2c_defend_class_mean(&d, &s, 10, 3.0f));
    CHECK(strstr(l2c_error(), "shape") != NULL, "message: %s", l2c_error());
    s.w = s.h = TA_SIDE; s.nclasses = 4;
    CHECK_FAILS(l2c_defend_class_mean(&d, &s, 10, 3.0f));
    CHECK(strstr(l2c_error(), "classes") != NULL, "message: %s", l2c_error());
    s.nclasses = 3;
    for (i = 0; i < TA_N; i++) if (s.labels[i] == 2) s.labels[i] = 1;   /* no image of class 2 */
    CHECK_FAILS(l2c_defend_class_mean(&d, &s, 10, 3.0f));
    CHECK(strstr(l2c_error(), "no image of class 2") != NULL, "message: %s", l2c_error());
    s.labels[0] = 7;   /* a label beyond the classes */
    CHECK_FAILS(l2c_defend_class_mean(&d, &s, 10, 3.0f));
    CHECK(memcmp(before, d.images, sizeof before) == 0, "a refused defence changed the training set");
    l2c_dataset_free(&d); l2c_dataset_free(&s);
}

/* l2c_generator_noise is the release before the clamp and the quantisation: where x + noise stays
   in [0, 1] the released pixel is its rounding, elsewhere the release sits at the bound. */
static void test_generator_noise_is_the_release_before_the_clamp(void)
{
    const int size = TA_N * TA_SIDE * TA_SIDE;
    l2c_dataset d, p;
    float x[TA_N * TA_SIDE * TA_SIDE], noise[TA_N * TA_SIDE * TA_SIDE];
    l2c_model *g = ta_generator();
    int i, inside = 0, clamped = 0;
    REQUIRE(g, "setup failed");
    ta_dataset(&d, x);
    for (i = 0; i < TA_N; i++) d.images[i * TA_SIDE * TA_SIDE] = (uint8_t)(i % 2 ? 255 : 0), x[i * TA_SIDE * TA_SIDE] = (float)(i % 2);
    for (i = 0; i < (int)g->nparams; i++) g->params[i] *= 20.0f;   /* large outputs: some pixels clamp */
    REQUIRE(l2c_generator_noise(g, x, TA_N, 0.1f, noise) == 0, "noise failed: %s", l2c_error());
    REQUIRE(l2c_poison_dataset(g, &d, 0.1f, 1.0f, &p) == 0, "poison failed: %s", l2c_error());
    for (i = 0; i < size; i++) {
        float sum = x[i] + noise[i];
        CHECK(fabsf(noise[i]) <= 0.1f + 1e-6f, "noise %g at %d exceeds eps", noise[i], i);
        if (sum > 0.002f && sum < 0.998f) {
            inside++;
            CHECK(fabsf(p.images[i] / 255.0f - sum) <= 0.5f / 255.0f + 1e-5f, "pixel %d released as %d, noise says %g", i, p.images[i], 255.0f * sum);
        } else if (sum <= 0.0f || sum >= 1.0f) {
            clamped++;
            CHECK(p.images[i] == (sum <= 0.0f ? 0 : 255), "pixel %d clamped to %d, noise says %g", i, p.images[i], 255.0f * sum);
        }
    }
    CHECK(inside > size / 2 && clamped > 0, "the test did not exercise both cases: %d inside, %d clamped", inside, clamped);
    l2c_dataset_free(&p); l2c_model_free(g); l2c_dataset_free(&d);
}

static void test_generator_noise_refuses_bad_input(void)
{
    l2c_dataset d;
    float x[TA_N * TA_SIDE * TA_SIDE], noise[TA_N * TA_SIDE * TA_SIDE];
    l2c_model *g = ta_generator(), *v = ta_victim();
    REQUIRE(g && v, "setup failed");
    ta_dataset(&d, x);
    CHECK_FAILS(l2c_generator_noise(NULL, x, TA_N, 0.1f, noise));
    CHECK_FAILS(l2c_generator_noise(g, NULL, TA_N, 0.1f, noise));
    CHECK_FAILS(l2c_generator_noise(g, x, TA_N, 0.1f, NULL));
    CHECK_FAILS(l2c_generator_noise(g, x, 0, 0.1f, noise));
    CHECK_FAILS(l2c_generator_noise(g, x, TA_N, 0.0f, noise));
    CHECK_FAILS(l2c_generator_noise(g, x, TA_N, 1.5f, noise));
    CHECK_FAILS(l2c_generator_noise(g, x, TA_N, (float)NAN, noise));
    CHECK_FAILS(l2c_generator_noise(v, x, TA_N, 0.1f, noise));   /* a classifier: 3 outputs, no image */
    CHECK(strstr(l2c_error(), "a classifier?") != NULL, "message: %s", l2c_error());
    x[5] = (float)NAN;
    CHECK_FAILS(l2c_generator_noise(g, x, TA_N, 0.1f, noise));
    CHECK(strstr(l2c_error(), "not finite") != NULL, "message: %s", l2c_error());
    l2c_model_free(g); l2c_model_free(v); l2c_dataset_free(&d);
}

/* The bound |eps g(x)| <= eps rests on the generator's final tanh: one without it is refused by
   the attack, the release and the noise alike. */
static void test_generator_must_end_in_tanh(void)
{
    l2c_dataset d, p;
    float x[TA_N * TA_SIDE * TA_SIDE], noise[TA_N * TA_SIDE * TA_SIDE];
    l2c_model *g = l2c_model_new(1, TA_SIDE, TA_SIDE), *v = ta_victim();
    l2c_attack_config cfg;
    REQUIRE(g && v && l2c_model_conv(g, 1, 3, 1, 1) == 0, "setup failed");
    l2c_model_init(g, 3);
    ta_dataset(&d, x);
    l2c_attack_defaults(&cfg, 3);
    cfg.batch = 4;
    CHECK(l2c_attack_new(&cfg, g, v, &d) == NULL && strstr(l2c_error(), "last layer must be tanh"), "attack: %s", l2c_error());
    CHECK(l2c_poison_dataset(g, &d, 0.1f, 1.0f, &p) < 0 && strstr(l2c_error(), "last layer must be tanh"), "release: %s", l2c_error());
    CHECK(l2c_generator_noise(g, x, TA_N, 0.1f, noise) < 0 && strstr(l2c_error(), "last layer must be tanh"), "noise: %s", l2c_error());
    REQUIRE(l2c_model_tanh(g) == 0, "tanh failed");
    CHECK(l2c_poison_dataset(g, &d, 0.1f, 1.0f, &p) == 0, "with the tanh, the release failed: %s", l2c_error());
    l2c_dataset_free(&p); l2c_model_free(g); l2c_model_free(v); l2c_dataset_free(&d);
}

static void test_attack_refuses_bad_settings(void)
{
    l2c_dataset d;
    float x[TA_N * TA_SIDE * TA_SIDE];
    l2c_model *g = ta_generator(), *v = ta_victim(), *big = l2c_mnist_victim(50, 1);
    l2c_attack_config cfg;
    l2c_attack *a;
    REQUIRE(g && v && big, "setup failed");
    ta_dataset(&d, x);
#define TA_REFUSED(field, value) do { l2c_attack_defaults(&cfg, 3); cfg.batch = 4; cfg.field = value; \
        l2c_clear_error(); a = l2c_attack_new(&cfg, g, v, &d); \
        CHECK(a == NULL && l2c_error()[0], "attack accepted " #field " = " #value); l2c_attack_free(a); } while (0)
    TA_REFUSED(eps, 0.0f);
    TA_REFUSED(eps, 1.01f);
    TA_REFUSED(eps, (float)NAN);
    TA_REFUSED(victim_lr, -1.0f);
    TA_REFUSED(gen_lr, 0.0f);
    TA_REFUSED(batch, 1);
    TA_REFUSED(batch, TA_N + 1);
    TA_REFUSED(trials, 0);
    TA_REFUSED(steps_per_trial, -3);
    TA_REFUSED(victims, 0);
    TA_REFUSED(victim_lifetime, -1);
    TA_REFUSED(warmup_steps, -1);
    TA_REFUSED(warmup_epochs, 0);
    TA_REFUSED(warmup_epochs, -0.5f);
    TA_REFUSED(warmup_epochs, (float)NAN);
    TA_REFUSED(anchor, -1.0f);
    TA_REFUSED(anchor, (float)NAN);
    TA_REFUSED(lr_schedule, 2);
    TA_REFUSED(pairing, 4);
    TA_REFUSED(pairing, -1);
    TA_REFUSED(objective, 2);
    TA_REFUSED(shortcut, -0.5f);
    TA_REFUSED(shortcut, (float)NAN);
    TA_REFUSED(noise_weight, -0.5f);
    TA_REFUSED(noise_weight, (float)NAN);
    TA_REFUSED(noise_weight, 2e6f);
    TA_REFUSED(warmup_temperature, -1.0f);
    TA_REFUSED(warmup_temperature, (float)NAN);
    TA_REFUSED(warmup_shift, -1);
    TA_REFUSED(warmup_shift, TA_SIDE);
    TA_REFUSED(victim_shift, -2);
    TA_REFUSED(victim_shift, TA_SIDE);
    TA_REFUSED(victim_momentum, -0.1f);
    TA_REFUSED(victim_momentum, 1.0f);
    TA_REFUSED(victim_momentum, (float)NAN);
    TA_REFUSED(victim_optimizer, 3);
    TA_REFUSED(victim_optimizer, -1);
    TA_REFUSED(clamp_inward, 2);
    TA_REFUSED(clamp_inward, -1);
    TA_REFUSED(untargeted_loss, 2);
    TA_REFUSED(untargeted_loss, -1);
    l2c_attack_defaults(&cfg, 3);
    cfg.batch = 4; cfg.untargeted_loss = L2C_UNTARGETED_COMPLEMENT; cfg.targeted = 1;
    CHECK(l2c_attack_new(&cfg, g, v, &d) == NULL && strstr(l2c_error(), "untargeted_loss"), "complement, targeted: %s", l2c_error());
    cfg.targeted = 0; cfg.objective = L2C_OBJ_ALIGN;
    CHECK(l2c_attack_new(&cfg, g, v, &d) == NULL && strstr(l2c_error(), "untargeted_loss"), "complement with align: %s", l2c_error());
    l2c_attack_defaults(&cfg, 3);
    cfg.batch = 4; cfg.victim_optimizer = L2C_VICTIM_ADAM;
    cfg.victim_adam_lr = 0.0f;
    CHECK(l2c_attack_new(&cfg, g, v, &d) == NULL && strstr(l2c_error(), "victim_adam_lr"), "Adam lr 0: %s", l2c_error());
    cfg.victim_adam_lr = (float)NAN;
    CHECK(l2c_attack_new(&cfg, g, v, &d) == NULL && strstr(l2c_error(), "victim_adam_lr"), "Adam lr NaN: %s", l2c_error());
    cfg.victim_adam_lr = 1e-3f; cfg.victims = 2;   /* a pool would share one Adam state */
    CHECK(l2c_attack_new(&cfg, g, v, &d) == NULL && strstr(l2c_error(), "Adam victim"), "Adam with a pool: %s", l2c_error());
    cfg.victims = 1; cfg.victim_momentum = 0.9f;
    CHECK(l2c_attack_new(&cfg, g, v, &d) == NULL && strstr(l2c_error(), "Adam victim"), "Adam with momentum: %s", l2c_error());
    cfg.victim_momentum = 0.0f; cfg.objective = L2C_OBJ_ALIGN;
    CHECK(l2c_attack_new(&cfg, g, v, &d) == NULL && strstr(l2c_error(), "Adam victim"), "Adam with align: %s", l2c_error());
    cfg.objective = L2C_OBJ_LOOKAHEAD;
    a = l2c_attack_new(&cfg, g, v, &d);
    REQUIRE(a, "setup failed: %s", l2c_error());
    CHECK_FAILS(l2c_attack_add_victim(a, v));   /* one Adam state per architecture is not kept */
    l2c_attack_free(a);
    l2c_attack_defaults(&cfg, 3);
    cfg.batch = 4; cfg.victims = 2; cfg.victim_momentum = 0.5f;   /* a pool would share one velocity */
    CHECK(l2c_attack_new(&cfg, g, v, &d) == NULL && strstr(l2c_error(), "victim_momentum"), "momentum with a pool: %s", l2c_error());
    cfg.victims = 1; cfg.victim_lifetime = 250;   /* a victim living across trials: its velocity is not saved */
    CHECK(l2c_attack_new(&cfg, g, v, &d) == NULL && strstr(l2c_error(), "victim_lifetime"), "momentum with a lifetime: %s", l2c_error());
    cfg.victim_lifetime = 0;
    a = l2c_attack_new(&cfg, g, v, &d);
    REQUIRE(a, "setup failed: %s", l2c_error());
    CHECK_FAILS(l2c_attack_add_victim(a, v));   /* one velocity per architecture is not kept */
    l2c_attack_free(a);
    l2c_attack_defaults(&cfg, 3);
    cfg.batch = 4; cfg.targeted = 1; cfg.label_map[1] = 7;
    CHECK(l2c_attack_new(&cfg, g, v, &d) == NULL, "a label map outside the classes was accepted");
    l2c_attack_defaults(&cfg, 3);
    cfg.batch = 4;
    CHECK(l2c_attack_new(&cfg, g, big, &d) == NULL, "a 28x28 victim was accepted for 4x4 data");
    CHECK(l2c_attack_new(&cfg, big, v, &d) == NULL, "a mismatched generator was accepted");
    l2c_model_free(g); l2c_model_free(v); l2c_model_free(big); l2c_dataset_free(&d);
}

/* A data set built by hand, not read from files, is checked by the attack and the release as
   l2c_dataset_load checks files: a label beyond nclasses would index past per-class tables. */
static void ta_expect_refused(const l2c_dataset *d, l2c_model *g, l2c_model *v, const char *what, const char *message)
{
    l2c_attack_config cfg;
    l2c_attack *a;
    l2c_dataset p;
    l2c_attack_defaults(&cfg, 3);
    cfg.batch = 4;
    l2c_clear_error();
    a = l2c_attack_new(&cfg, g, v, d);
    CHECK(a == NULL && strstr(l2c_error(), message), "attack on %s: expected \"%s\", got \"%s\"", what, message, l2c_error());
    l2c_attack_free(a);
    if (d->nclasses == 1) return;   /* one class is enough to release a poison */
    l2c_clear_error();
    CHECK(l2c_poison_dataset(g, d, 0.1f, 1.0f, &p) < 0 && strstr(l2c_error(), message),
          "release of %s: expected \"%s\", got \"%s\"", what, message, l2c_error());
    l2c_dataset_free(&p);
}

static void test_hand_built_data_sets_are_checked(void)
{
    l2c_dataset d, p;
    float x[TA_N * TA_SIDE * TA_SIDE];
    uint8_t *labels;
    l2c_model *g = ta_generator(), *v = ta_victim();
    int i;
    REQUIRE(g && v, "setup failed");
    ta_dataset(&d, x);
    d.labels[5] = 3;
    ta_expect_refused(&d, g, v, "a label beyond nclasses", "label 3 of sample 5 is not below");
    d.labels[5] = 2;
    d.nclasses = L2C_MAX_CLASSES + 1;
    ta_expect_refused(&d, g, v, "too many classes", "classes; 1 to");
    d.nclasses = 3;
    d.n = 0;
    ta_expect_refused(&d, g, v, "no samples", "is not positive");
    d.n = TA_N;
    labels = d.labels; d.labels = NULL;
    ta_expect_refused(&d, g, v, "no labels", "no images or labels");
    d.labels = labels;
    for (i = 0; i < TA_N; i++) d.labels[i] = 0;
    d.nclasses = 1;
    ta_expect_refused(&d, g, v, "one class", "needs at least 2");
    REQUIRE(l2c_poison_dataset(g, &d, 0.1f, 1.0f, &p) == 0, "a one-class release failed: %s", l2c_error());
    l2c_dataset_free(&p); l2c_model_free(g); l2c_model_free(v); l2c_dataset_free(&d);
}

/* The label-specific defaults are the non-targeted ones but for the mode and the anchor. */
static void test_targeted_defaults_differ_only_where_documented(void)
{
    l2c_attack_config plain, targeted;
    int k;
    l2c_attack_defaults(&plain, 4);
    l2c_attack_targeted_defaults(&targeted, 4);
    CHECK(targeted.targeted == 1 && targeted.anchor == 2.0f, "targeted %d, anchor %g", targeted.targeted, targeted.anchor);
    for (k = 0; k < 4; k++) CHECK(targeted.label_map[k] == (k + 1) % 4, "label_map[%d] = %d", k, targeted.label_map[k]);
    targeted.targeted = plain.targeted; targeted.anchor = plain.anchor;
    CHECK(memcmp(&plain, &targeted, sizeof plain) == 0, "another setting differs");
}

static int ta_stop_after(const l2c_attack_progress *p, void *user) { return p->step >= *(int *)user; }

/* A new attack; with an anchor, the linear classifier joins its reference ensemble; with
   linear_victim, it is also a second imaginary-victim architecture. */
static l2c_attack *ta_new(const l2c_attack_config *cfg, l2c_model *g, l2c_model *v, const l2c_dataset *d, int linear_victim)
{
    l2c_model *lin = ta_linear();
    l2c_attack *a = lin ? l2c_attack_new(cfg, g, v, d) : NULL;
    if (a && ((cfg->anchor > 0.0f && l2c_attack_add_reference(a, lin)) || (linear_victim && l2c_attack_add_victim(a, lin)))) {
        l2c_attack_free(a);
        a = NULL;
    }
    l2c_model_free(lin);
    return a;
}

/* The resume tests' schedule: a 5-step warm-up, then 3 trials of 3 steps on batches of 4 (the paper's
   one fresh victim per trial, no anchor); each test changes the knobs it is about. */
static l2c_attack_config ta_resume_config(void)
{
    l2c_attack_config cfg;
    l2c_attack_defaults(&cfg, 3);
    cfg.batch = 4; cfg.trials = 3; cfg.steps_per_trial = 3; cfg.warmup_steps = 5; cfg.anchor = 0.0f;
    return cfg;
}

/* The checkpoint at path (made under cfg) resumes with more trials, but not under another batch,
   victim lr, seed or label map (saved after one trial): each refused with the setting named, the
   attack untouched, unless loaded with l2c_attack_load_under_new_settings. A
   checkpoint of format version 1 (0.13.0 and earlier, no settings recorded) is refused too. */
static void ta_check_settings_recorded(const l2c_attack_config *cfg, l2c_model *g, l2c_model *v,
                                       const l2c_dataset *d, int linear_victim, const char *path)
{
    static const char *const names[] = { "batch", "victim_lr", "seed", "label map" };
    const char *old_path = tmp_path("attack_v1.ckpt");
    static const unsigned char v1_head[12] = { 'L', '2', 'C', 'A', 1, 0, 0, 0, 0, 0, 0, 0 };
    l2c_attack_config other;
    l2c_attack *a;
    FILE *f;
    int k;
    for (k = 0; k < 5; k++) {
        other = *cfg;
        if (k == 1) other.batch = cfg->batch / 2;
        if (k == 2) other.victim_lr = cfg->victim_lr * 2.0f;
        if (k == 3) other.seed = cfg->seed + 1;
        if (k == 4) other.label_map[0] = 2;
        if (k == 0) other.trials = cfg->trials + 2;   /* extending a run is allowed */
        a = ta_new(&other, g, v, d, linear_victim);
        REQUIRE(a, "setup failed: %s", l2c_error());
        if (k == 0) {
            CHECK(l2c_attack_load(a, path) == 0 && l2c_attack_trials_done(a) == 1, "extending the run was refused: %s", l2c_error());
        } else {
            CHECK_FAILS(l2c_attack_load(a, path));
            CHECK(strstr(l2c_error(), names[k - 1]) != NULL, "message does not name %s: %s", names[k - 1], l2c_error());
            CHECK(l2c_attack_trials_done(a) == 0 && !l2c_attack_warmed_up(a), "a refused checkpoint was partly loaded");
            CHECK(l2c_attack_load_under_new_settings(a, path) == 0 && l2c_attack_trials_done(a) == 1,
                  "asked for, other settings were refused: %s", l2c_error());
        }
        l2c_attack_free(a);
    }
    f = fopen(old_path, "wb");
    REQUIRE(f && fwrite(v1_head, 1, sizeof v1_head, f) == sizeof v1_head && fclose(f) == 0, "cannot write %s", old_path);
    a = ta_new(cfg, g, v, d, linear_victim);
    REQUIRE(a, "setup failed: %s", l2c_error());
    CHECK_FAILS(l2c_attack_load(a, old_path));
    CHECK(strstr(l2c_error(), "did not record") != NULL, "message: %s", l2c_error());
    l2c_attack_free(a);
    remove(old_path);
}

/* Interrupting and resuming the attack `base` (in the warm-up, in a trial, from a checkpoint file in
   a new attack) ends at the uninterrupted run's generator, bit for bit. With an anchor the linear
   classifier joins the reference ensemble; with linear_victim it is also a second imaginary-victim
   architecture. */
static void ta_check_resume(const l2c_attack_config *base, int linear_victim)
{
    l2c_dataset d;
    float x[TA_N * TA_SIDE * TA_SIDE];
    l2c_model *g = ta_generator(), *v = ta_victim();
    l2c_attack_config cfg = *base;
    l2c_attack *a, *b, *c;
    int stop_at = 2;
    const char *path = tmp_path("attack.ckpt");
    REQUIRE(g && v, "setup failed");
    ta_dataset(&d, x);
    a = ta_new(&cfg, g, v, &d, linear_victim);                 /* uninterrupted: warm-up and 3 trials */
    REQUIRE(a && l2c_attack_run(a) == 0, "run failed: %s", l2c_error());
    CHECK(l2c_attack_trials_done(a) == 3 && l2c_attack_warmed_up(a), "trials done %d", l2c_attack_trials_done(a));
    cfg.progress = ta_stop_after; cfg.user = &stop_at;
    b = ta_new(&cfg, g, v, &d, linear_victim);                 /* interrupted in the warm-up */
    REQUIRE(b, "setup failed: %s", l2c_error());
    CHECK(l2c_attack_run_trial(b) == 1 && !l2c_attack_warmed_up(b), "the interrupted warm-up was counted");
    l2c_attack_free(b);
    cfg.progress = NULL;
    b = ta_new(&cfg, g, v, &d, linear_victim);                 /* warm-up, 1 trial, save, interrupted in trial 2 */
    REQUIRE(b && l2c_attack_run_trial(b) == 0 && l2c_attack_warmed_up(b) && l2c_attack_trials_done(b) == 0,
            "warm-up failed: %s", l2c_error());
    REQUIRE(l2c_attack_run_trial(b) == 0 && l2c_attack_save(b, path) == 0, "save failed: %s", l2c_error());
    cfg.progress = ta_stop_after; cfg.user = &stop_at;
    l2c_attack_free(b);
    b = ta_new(&cfg, g, v, &d, linear_victim);
    REQUIRE(b && l2c_attack_load(b, path) == 0, "load failed: %s", l2c_error());
    CHECK(l2c_attack_run_trial(b) == 1 && l2c_attack_trials_done(b) == 1, "the interrupted trial was counted");
    cfg.progress = NULL;
    c = ta_new(&cfg, g, v, &d, linear_victim);                 /* a new process resumes from the file */
    REQUIRE(c && l2c_attack_load(c, path) == 0 && l2c_attack_trials_done(c) == 1 && l2c_attack_warmed_up(c),
            "resume failed: %s", l2c_error());
    REQUIRE(l2c_attack_run(c) == 0, "resumed run failed: %s", l2c_error());
    CHECK(memcmp(l2c_attack_generator(a)->params, l2c_attack_generator(c)->params, g->nparams * sizeof(float)) == 0,
          "resumed generator differs from the uninterrupted one");
    ta_check_settings_recorded(&cfg, g, v, &d, linear_victim, path);
    if (cfg.anchor > 0.0f) {   /* resuming without the linear member is refused, the attack untouched */
        l2c_attack *plain;
        if (!linear_victim) cfg.anchor = 0.0f;   /* else: without the added victim architecture */
        plain = ta_new(&cfg, g, v, &d, 0);
        REQUIRE(plain, "setup failed: %s", l2c_error());
        CHECK_FAILS(l2c_attack_load(plain, path));
        CHECK(strstr(l2c_error(), "reference ensemble") != NULL, "message: %s", l2c_error());
        CHECK(l2c_attack_trials_done(plain) == 0, "a refused checkpoint was partly loaded");
        l2c_attack_free(plain);
    }
    CHECK(l2c_model_save(v, path) == 0, "saving a victim over the checkpoint");
    CHECK_FAILS(l2c_attack_load(c, path));              /* not an attack checkpoint */
    l2c_attack_free(a); l2c_attack_free(b); l2c_attack_free(c);
    l2c_model_free(g); l2c_model_free(v); l2c_dataset_free(&d);
}

static void test_attack_checkpoint_resumes_bit_identically(void)
{
    l2c_attack_config cfg = ta_resume_config();
    ta_check_resume(&cfg, 0);
}

static void test_attack_checkpoint_resumes_victim_pool(void)
{
    l2c_attack_config cfg = ta_resume_config();
    cfg.victims = 3; cfg.victim_lifetime = 5;   /* a pool living across trials */
    ta_check_resume(&cfg, 0);
}

static void test_attack_checkpoint_resumes_with_anchor(void)
{
    l2c_attack_config cfg = ta_resume_config();
    cfg.anchor = 0.5f;
    ta_check_resume(&cfg, 0);
}

static void test_attack_checkpoint_resumes_cosine_schedule(void)
{
    l2c_attack_config cfg = ta_resume_config();
    cfg.anchor = 0.5f; cfg.lr_schedule = L2C_LR_COSINE;
    ta_check_resume(&cfg, 0);
}

/* Trials alternate two victim architectures; references and the imaginary victim see shifted views. */
static void test_attack_checkpoint_resumes_victim_architectures(void)
{
    l2c_attack_config cfg = ta_resume_config();
    cfg.anchor = 0.5f; cfg.warmup_shift = 1; cfg.victim_shift = 1;
    ta_check_resume(&cfg, 1);
}

static void test_attack_checkpoint_resumes_momentum_victim(void)
{
    l2c_attack_config cfg = ta_resume_config();
    cfg.anchor = 0.5f; cfg.victim_momentum = 0.9f;
    ta_check_resume(&cfg, 0);
}

/* Trials 1 and 3 train an SGD victim, trial 2 an Adam one (a fresh Adam state: not in the checkpoint). */
static void test_attack_checkpoint_resumes_alternating_victim_optimizers(void)
{
    l2c_attack_config cfg = ta_resume_config();
    cfg.victim_optimizer = L2C_VICTIM_ALTERNATE; cfg.victim_adam_lr = 0.01f;
    ta_check_resume(&cfg, 0);
}

/* With victim_optimizer Adam a trial's real victim steps are Adam steps (its state counts them);
   SGD and ALTERNATE (whose first trial is an SGD one) take none. */
static void test_adam_victim_trains_by_adam(void)
{
    l2c_dataset d;
    float x[TA_N * TA_SIDE * TA_SIDE];
    l2c_model *g = ta_generator(), *v = ta_victim();
    l2c_attack_config cfg;
    l2c_attack *a;
    int optimizer;
    REQUIRE(g && v, "setup failed");
    ta_dataset(&d, x);
    for (optimizer = L2C_VICTIM_SGD; optimizer <= L2C_VICTIM_ALTERNATE; optimizer++) {
        l2c_attack_defaults(&cfg, 3);
        cfg.batch = 4; cfg.trials = 1; cfg.steps_per_trial = 2; cfg.warmup_steps = 0; cfg.anchor = 0.0f;
        cfg.victim_optimizer = optimizer; cfg.victim_adam_lr = 0.01f;
        a = l2c_attack_new(&cfg, g, v, &d);
        REQUIRE(a && l2c_attack_run(a) == 0, "run failed: %s", l2c_error());
        CHECK(a->victim_adam.step == (optimizer == L2C_VICTIM_ADAM ? 2 : 0), "optimizer %d: %ld Adam steps of the victim",
              optimizer, a->victim_adam.step);
        CHECK(optimizer == L2C_VICTIM_SGD || a->victim_adam.m != NULL, "optimizer %d: no Adam state", optimizer);
        l2c_attack_free(a);
    }
    l2c_model_free(g); l2c_model_free(v); l2c_dataset_free(&d);
}

/* l2c_attack_add_victim: trials take the architectures in turn, each victim fresh; bad ones refused. */
static void test_trials_take_the_victim_architectures_in_turn(void)
{
    l2c_dataset d;
    float x[TA_N * TA_SIDE * TA_SIDE];
    l2c_model *g = ta_generator(), *v = ta_victim(), *lin = ta_linear(), *big = l2c_mnist_victim(50, 1);
    l2c_attack_config cfg;
    l2c_attack *a;
    int t;
    REQUIRE(g && v && lin && big, "setup failed");
    ta_dataset(&d, x);
    l2c_attack_defaults(&cfg, 3);
    cfg.batch = 4; cfg.trials = 4; cfg.steps_per_trial = 2; cfg.warmup_steps = 0; cfg.anchor = 0.0f;
    a = l2c_attack_new(&cfg, g, v, &d);
    REQUIRE(a && l2c_attack_add_victim(a, lin) == 0, "add_victim failed: %s", l2c_error());
    CHECK_FAILS(l2c_attack_add_victim(a, big));   /* 28x28 input for 4x4 data */
    CHECK_FAILS(l2c_attack_add_victim(a, NULL));
    for (t = 0; t < 4; t++) {
        size_t want = t % 2 ? lin->nparams : v->nparams;
        REQUIRE(l2c_attack_run_trial(a) == 0, "trial %d failed: %s", t + 1, l2c_error());
        CHECK(l2c_attack_victim(a)->nparams == want, "trial %d trained a victim of %zu parameters, want %zu",
              t + 1, l2c_attack_victim(a)->nparams, want);
    }
    l2c_attack_free(a);
    cfg.victims = 2;
    a = l2c_attack_new(&cfg, g, v, &d);
    REQUIRE(a, "setup failed: %s", l2c_error());
    CHECK_FAILS(l2c_attack_add_victim(a, lin));   /* a pool and architectures do not mix */
    l2c_attack_free(a);
    l2c_model_free(g); l2c_model_free(v); l2c_model_free(lin); l2c_model_free(big); l2c_dataset_free(&d);
}

/* The tiny problem with the default settings at batch 4: what most attack tests start from. */
typedef struct ta_fixture {
    l2c_dataset d;
    float x[TA_N * TA_SIDE * TA_SIDE];
    l2c_model *g, *v;
    l2c_attack_config cfg;
} ta_fixture;

static int ta_setup(ta_fixture *f)
{
    f->g = ta_generator();
    f->v = ta_victim();
    ta_dataset(&f->d, f->x);
    l2c_attack_defaults(&f->cfg, 3);
    f->cfg.batch = 4;
    return f->g && f->v;
}

static void ta_teardown(ta_fixture *f)
{
    l2c_model_free(f->g); l2c_model_free(f->v); l2c_dataset_free(&f->d);
}

/* The generator gradient of an attack with the fixture's settings for the first four samples of x,
   into out; the linear classifier joins the reference ensemble when with_linear. */
static int ta_batch_grad(ta_fixture *f, const float *x, int with_linear, float *out)
{
    l2c_model *lin = ta_linear();
    l2c_attack *a = l2c_attack_new(&f->cfg, f->g, f->v, &f->d);
    int rc = !a || !lin || (with_linear && l2c_attack_add_reference(a, lin)) ||
             l2c_attack_generator_grad(a, x, f->d.labels, 4, NULL);
    if (!rc) memcpy(out, l2c_attack_trainable(a)->grads, f->g->nparams * sizeof(float));
    l2c_attack_free(a); l2c_model_free(lin);
    return rc;
}

/* The generator gradient (hypergradient only, no anchor) for the batch x, into out. */
static int ta_clamp_grad(ta_fixture *f, const float *x, int clamp_inward, float *out)
{
    f->cfg.anchor = 0.0f; f->cfg.clamp_inward = clamp_inward;
    return ta_batch_grad(f, x, 0, out);
}

/* clamp_inward passes a clamped pixel's gradient only when descent moves it back into range. */
static void test_clamp_inward_keeps_only_inward_gradients(void)
{
    const float unclamped[6] = { -0.2f, -0.2f, 0.5f, 0.5f, 1.3f, 1.3f };
    float seed[6] = { 1.0f, -1.0f, 1.0f, -1.0f, -1.0f, 1.0f };
    const float want[6] = { 0.0f, -1.0f, 1.0f, -1.0f, 0.0f, 1.0f };
    int i;
    l2c__keep_inward(unclamped, seed, 6);
    for (i = 0; i < 6; i++) CHECK(seed[i] == want[i], "pixel %d: %g, want %g", i, seed[i], want[i]);
}

/* Nothing clamped (pixels in [0.3, 0.7], eps 0.3): clamp_inward gives the exact gradient, bit for bit.
   Black images under a generator that paints below 0 everywhere: the exact gradient is zero (no pixel
   can learn), clamp_inward's is not. */
static void test_clamp_inward_revives_clamped_pixels(void)
{
    ta_fixture f;
    float exact[256], inward[256], black[TA_N * TA_SIDE * TA_SIDE] = { 0 };
    double n_exact = 0.0, n_inward = 0.0;
    size_t i;
    REQUIRE(ta_setup(&f) && f.g->nparams <= 256, "setup failed");
    REQUIRE(ta_clamp_grad(&f, f.x, 0, exact) == 0 && ta_clamp_grad(&f, f.x, 1, inward) == 0, "generator grad failed: %s", l2c_error());
    CHECK(memcmp(exact, inward, f.g->nparams * sizeof(float)) == 0, "clamp_inward changed a gradient with nothing clamped");
    f.g->params[f.g->nparams - 1] = -5.0f;   /* the last convolution's bias: tanh near -1, every pixel below 0 */
    REQUIRE(ta_clamp_grad(&f, black, 0, exact) == 0 && ta_clamp_grad(&f, black, 1, inward) == 0, "generator grad failed: %s", l2c_error());
    for (i = 0; i < f.g->nparams; i++) n_exact += (double)exact[i] * exact[i], n_inward += (double)inward[i] * inward[i];
    CHECK(n_exact == 0.0, "the exact derivative reached a clamped pixel (|grad|^2 %g)", n_exact);
    CHECK(n_inward > 0.0, "clamp_inward passed no gradient to the clamped pixels");
    ta_teardown(&f);
}

/* L2C_LR_COSINE: gen_lr at the start of a phase, half of it midway, 0 at the end, never rising;
   L2C_LR_CONSTANT: gen_lr throughout. */
static void test_cosine_schedule(void)
{
    ta_fixture f;
    l2c_attack *a;
    long t;
    float prev;
    REQUIRE(ta_setup(&f), "setup failed");
    f.cfg.gen_lr = 0.004f;
    a = l2c_attack_new(&f.cfg, f.g, f.v, &f.d);
    REQUIRE(a, "setup failed: %s", l2c_error());
    CHECK(l2c__scheduled_lr(a, 0, 10) == 0.004f && l2c__scheduled_lr(a, 9, 10) == 0.004f, "the constant schedule moved");
    a->cfg.lr_schedule = L2C_LR_COSINE;
    CHECK_NEAR(l2c__scheduled_lr(a, 0, 100), 0.004, 1e-9);
    CHECK_NEAR(l2c__scheduled_lr(a, 50, 100), 0.002, 1e-8);
    CHECK_NEAR(l2c__scheduled_lr(a, 100, 100), 0.0, 1e-9);
    CHECK_NEAR(l2c__scheduled_lr(a, 250, 100), 0.0, 1e-9);   /* past the end (more trials on resume) */
    for (prev = 1.0f, t = 0; t <= 100; prev = l2c__scheduled_lr(a, t, 100), t++)
        CHECK(l2c__scheduled_lr(a, t, 100) <= prev, "the cosine schedule rose at step %ld", t);
    l2c_attack_free(a);
    ta_teardown(&f);
}

static void test_attack_lowers_clean_accuracy_of_its_victim(void)
{
    /* Not a strength test (that is make run): the loop must move the generator and keep numbers finite. */
    ta_fixture f;
    l2c_attack *a;
    size_t i, moved = 0;
    REQUIRE(ta_setup(&f), "setup failed");
    f.cfg.trials = 2; f.cfg.steps_per_trial = 4; f.cfg.warmup_steps = 10;
    a = l2c_attack_new(&f.cfg, f.g, f.v, &f.d);
    REQUIRE(a && l2c_attack_run(a) == 0, "run failed: %s", l2c_error());
    for (i = 0; i < f.g->nparams; i++) {
        float p = l2c_attack_generator(a)->params[i];
        CHECK(isfinite(p), "parameter %lu is %g", (unsigned long)i, p);
        moved += p != f.g->params[i];
    }
    CHECK(moved > f.g->nparams / 2, "only %lu of %lu generator parameters moved", (unsigned long)moved, (unsigned long)f.g->nparams);
    l2c_attack_free(a); ta_teardown(&f);
}

/* Nothing in the attack is MNIST's: colour images of a size no MNIST network takes, four classes,
   the encoder-decoder built for them, a max-pooling reference besides the victim, the warm-up,
   trials, a checkpoint, and a release that stays within eps and survives a round trip through
   four-dimensional IDX files. */
static void test_attack_runs_on_colour_images_of_any_size(void)
{
    enum { N = 32, C = 3, H = 12, W = 16, K = 4 };
    l2c_dataset d, p, back;
    l2c_attack_config cfg;
    l2c_attack *a = NULL;
    l2c_model *g = l2c_autoencoder(C, H, W, 2, 5), *v = l2c_model_new(C, H, W), *r = l2c_model_new(C, H, W);
    l2c_rng rng;
    int i, budget, worst = 0;
    REQUIRE(g && v && r, "setup failed: %s", l2c_error());
    REQUIRE(l2c_model_conv(v, 4, 3, 1, 1) == 0 && l2c_model_batchnorm(v) == 0 && l2c_model_relu(v) == 0 &&
            l2c_model_avgpool(v, 2, 2) == 0 && l2c_model_flatten(v) == 0 && l2c_model_dense(v, K) == 0 &&
            l2c_model_conv(r, 4, 3, 1, 0) == 0 && l2c_model_relu(r) == 0 && l2c_model_maxpool(r, 2, 2) == 0 &&
            l2c_model_flatten(r) == 0 && l2c_model_dense(r, K) == 0, "layers failed: %s", l2c_error());
    l2c_model_init(v, 6); l2c_model_init(r, 7);
    d.n = N; d.c = C; d.h = H; d.w = W; d.nclasses = K;
    d.images = (uint8_t *)malloc((size_t)N * C * H * W); d.labels = (uint8_t *)malloc(N);
    REQUIRE(d.images && d.labels, "out of memory");
    l2c_rng_seed(&rng, 9);
    for (i = 0; i < N * C * H * W; i++) d.images[i] = (uint8_t)l2c_rng_below(&rng, 256);
    for (i = 0; i < N; i++) d.labels[i] = (uint8_t)(i % K);
    l2c_attack_defaults(&cfg, K);
    cfg.batch = 8; cfg.warmup_steps = 3; cfg.warmup_epochs = 0.5f; cfg.trials = 2; cfg.steps_per_trial = 3;
    a = l2c_attack_new(&cfg, g, v, &d);
    CHECK(a && l2c_attack_add_reference(a, r) == 0 && l2c_attack_run(a) == 0 && l2c_attack_trials_done(a) == 2,
          "the attack did not run: %s", l2c_error());
    CHECK(a && l2c_attack_save(a, tmp_path("colour.ckpt")) == 0 && l2c_attack_load(a, tmp_path("colour.ckpt")) == 0,
          "checkpoint round trip failed: %s", l2c_error());
    REQUIRE(a && l2c_poison_dataset(l2c_attack_generator(a), &d, cfg.eps, 1.0f, &p) == 0, "release failed: %s", l2c_error());
    budget = (int)(cfg.eps * 255.0f);
    for (i = 0; i < N * C * H * W; i++) {
        int delta = abs((int)p.images[i] - (int)d.images[i]);
        if (delta > worst) worst = delta;
    }
    CHECK(worst <= budget && worst > 0, "largest change %d grey levels, budget %d", worst, budget);
    CHECK(l2c_dataset_save(&p, tmp_path("colour-images"), tmp_path("colour-labels")) == 0 &&
          l2c_dataset_load(&back, tmp_path("colour-images"), tmp_path("colour-labels"), K) == 0,
          "IDX round trip failed: %s", l2c_error());
    CHECK(back.n == N && back.c == C && back.h == H && back.w == W &&
          memcmp(back.images, p.images, (size_t)N * C * H * W) == 0 && memcmp(back.labels, p.labels, N) == 0,
          "the reloaded set is %d x %d x %d x %d and differs", back.n, back.c, back.h, back.w);
    l2c_dataset_free(&back); l2c_dataset_free(&p); l2c_attack_free(a);
    l2c_model_free(g); l2c_model_free(v); l2c_model_free(r); l2c_dataset_free(&d);
}

/* Records the warm-up's loss at each step. */
static int ta_record_warmup(const l2c_attack_progress *p, void *user)
{
    if (p->trial == 0) ((float *)user)[p->step - 1] = p->clean_loss;
    return 0;
}

static void ta_check_warmup_loss(int ensemble)
{
    ta_fixture f;
    l2c_model *lin = ta_linear();
    float loss[300], first = 0, last = 0;
    l2c_attack *a;
    int i;
    REQUIRE(ta_setup(&f), "setup failed");
    f.cfg.trials = 1; f.cfg.steps_per_trial = 1; f.cfg.eps = 0.5f;
    f.cfg.warmup_steps = 300; f.cfg.warmup_epochs = 50; f.cfg.gen_lr = 0.01f;
    f.cfg.warmup_shift = 0;   /* the optimisation alone, whatever the default: a pixel of shift moves a quarter of a 4x4 image */
    f.cfg.progress = ta_record_warmup; f.cfg.user = loss;
    a = l2c_attack_new(&f.cfg, f.g, f.v, &f.d);
    REQUIRE(a && lin && (!ensemble || l2c_attack_add_reference(a, lin) == 0), "setup failed: %s", l2c_error());
    REQUIRE(l2c_attack_run_trial(a) == 0 && l2c_attack_warmed_up(a), "warm-up failed: %s", l2c_error());
    for (i = 0; i < 20; i++) first += loss[i] / 20, last += loss[280 + i] / 20;
    CHECK(last < 0.5f * first, "the warm-up loss went from %g to %g", first, last);
    CHECK(memcmp(l2c_attack_generator(a)->params, l2c_attack_trainable(a)->params, f.g->nparams * sizeof(float)) == 0,
          "the warm-up did not end with xi <- xi'");
    l2c_attack_free(a); l2c_model_free(lin); ta_teardown(&f);
}

/* warmup_epochs counts passes over the batches (8 images in batches of 3: 3 batches per epoch);
   a fraction is rounded up, so any positive one trains at least one batch. */
static void test_reference_epochs_count_batches(void)
{
    static const float epochs[] = { 1.0f, 0.5f, 0.01f, 2.5f, 2.0f };
    static const long steps[] = { 3, 2, 1, 8, 6 };
    ta_fixture f;
    l2c_attack *a;
    int i;
    REQUIRE(ta_setup(&f), "setup failed");
    f.cfg.batch = 3;
    for (i = 0; i < 5; i++) {
        f.cfg.warmup_epochs = epochs[i];
        a = l2c_attack_new(&f.cfg, f.g, f.v, &f.d);
        REQUIRE(a, "attack refused warmup_epochs %g: %s", epochs[i], l2c_error());
        CHECK(l2c__reference_steps(a) == steps[i], "%g epoch(s) of 3 batches gave %ld steps, want %ld",
              epochs[i], l2c__reference_steps(a), steps[i]);
        l2c_attack_free(a);
    }
    ta_teardown(&f);
}

static void test_warmup_lowers_its_loss(void) { ta_check_warmup_loss(0); }
static void test_warmup_lowers_the_loss_of_an_ensemble(void) { ta_check_warmup_loss(1); }

/* Every named MNIST classifier takes 1 x 28 x 28 images to 10 logits, and no two names share
   an architecture (a name that silently fell back to another network would). */
static void test_named_classifiers_are_distinct_mnist_networks(void)
{
    static const char *names[] = { "softmax", "mlp", "mlp-wide", "lenet", "cnn3x3", "cnn-pt", "cnn-small", "cnn", "cnn-large" };
    enum { N = (int)(sizeof names / sizeof names[0]) };
    l2c_model *m[N];
    int i, j, c, h, w;
    for (i = 0; i < N; i++) {
        m[i] = l2c_mnist_classifier(names[i], 3);
        REQUIRE(m[i], "%s: %s", names[i], l2c_error());
        l2c_model_output_shape(m[i], &c, &h, &w);
        CHECK(c * h * w == 10, "%s: %d x %d x %d outputs", names[i], c, h, w);
    }
    for (i = 0; i < N; i++)
        for (j = i + 1; j < N; j++) CHECK(!l2c_model_same_arch(m[i], m[j]), "%s and %s are one network", names[i], names[j]);
    for (i = 0; i < N; i++) l2c_model_free(m[i]);
}

static void test_add_reference_refuses_bad_classifiers(void)
{
    ta_fixture f;
    l2c_model *lin = ta_linear(), *big = l2c_mnist_classifier("softmax", 1), *four = l2c_model_new(1, TA_SIDE, TA_SIDE);
    l2c_attack *a;
    int k;
    REQUIRE(ta_setup(&f) && lin && big && four && l2c_model_flatten(four) == 0 && l2c_model_dense(four, 4) == 0,
            "setup failed");
    f.cfg.warmup_steps = 2;
    a = l2c_attack_new(&f.cfg, f.g, f.v, &f.d);
    REQUIRE(a, "attack setup failed: %s", l2c_error());
    CHECK_FAILS(l2c_attack_add_reference(a, NULL));
    CHECK_FAILS(l2c_attack_add_reference(NULL, lin));
    CHECK_FAILS(l2c_attack_add_reference(a, big));      /* 28x28 input for 4x4 data */
    CHECK_FAILS(l2c_attack_add_reference(a, four));     /* 4 outputs for 3 classes */
    for (k = 1; k < L2C_MAX_REFERENCES; k++) CHECK(l2c_attack_add_reference(a, lin) == 0, "member %d refused: %s", k, l2c_error());
    CHECK_FAILS(l2c_attack_add_reference(a, lin));      /* one too many */
    l2c_attack_free(a);
    a = l2c_attack_new(&f.cfg, f.g, f.v, &f.d);
    REQUIRE(a && l2c_attack_run_trial(a) == 0, "warm-up failed: %s", l2c_error());
    CHECK_FAILS(l2c_attack_add_reference(a, lin));      /* the ensemble is already trained */
    CHECK_NULL_ERR(l2c_mnist_classifier("no-such-net", 1));
    l2c_attack_free(a); l2c_model_free(lin); l2c_model_free(big); l2c_model_free(four); ta_teardown(&f);
}

/* The generator gradient with the given anchor, for the fixture's first batch, into out; the
   ensemble is the victim's architecture, plus the linear classifier when with_linear. */
static int ta_anchored_grad(ta_fixture *f, float anchor, int with_linear, float *out)
{
    f->cfg.anchor = anchor;
    return ta_batch_grad(f, f->x, with_linear, out);
}

/* The anchor adds a fixed multiple of the warm-up gradient: G(a) = G(0) + a * (G(1) - G(0)). */
static void test_anchor_adds_the_warmup_gradient_linearly(void)
{
    ta_fixture f;
    float g0[256], g1[256], g3[256];
    double diff = 0, err = 0, base = 0;
    size_t i;
    REQUIRE(ta_setup(&f) && f.g->nparams <= 256, "setup failed");
    REQUIRE(ta_anchored_grad(&f, 0.0f, 1, g0) == 0 && ta_anchored_grad(&f, 1.0f, 1, g1) == 0 &&
            ta_anchored_grad(&f, 3.0f, 1, g3) == 0, "generator grad failed: %s", l2c_error());
    for (i = 0; i < f.g->nparams; i++) {
        double d1 = g1[i] - g0[i], d3 = g3[i] - g0[i];
        diff += d1 * d1; err += (d3 - 3 * d1) * (d3 - 3 * d1); base += (double)g0[i] * g0[i];
    }
    CHECK(base > 0 && diff > 1e-4 * base, "the anchor changed nothing (|G(1) - G(0)|^2 %g, |G(0)|^2 %g)", diff, base);
    CHECK(sqrt(err / diff) < 1e-3, "anchor 3 is not three times anchor 1 (relative error %g)", sqrt(err / diff));
    ta_teardown(&f);
}

/* The warm-up objective (ensemble of the victim's architecture and the linear classifier) at
   poisoned images xp of the fixture's first batch: its loss, and its gradient in xp into grad. */
static float ta_warmup_objective(l2c_attack *a, const float *xp, float *grad)
{
    float loss = NAN;
    if (l2c__warmup_objective(a, xp, 4, 0, &loss)) return NAN;
    if (grad) memcpy(grad, a->ref_grad, 4 * TA_SIDE * TA_SIDE * sizeof(float));
    return loss;
}

/* The relative error of grad, the warm-up objective's gradient at xp, against its central difference
   in every element of xp (step h). */
static double ta_objective_fd_error(l2c_attack *a, float *xp, const float *grad, float h)
{
    double err = 0, norm = 0;
    int i;
    for (i = 0; i < 4 * TA_SIDE * TA_SIDE; i++) {
        const float keep = xp[i];
        double up, down, fd;
        xp[i] = keep + h; up = ta_warmup_objective(a, xp, NULL);
        xp[i] = keep - h; down = ta_warmup_objective(a, xp, NULL);
        xp[i] = keep;
        fd = (up - down) / (2.0 * h);
        err += (fd - grad[i]) * (fd - grad[i]); norm += (double)grad[i] * grad[i];
    }
    return norm > 0 ? sqrt(err / norm) : HUGE_VAL;
}

/* An attack with f's settings and the linear classifier as a second reference, trained, with the
   fixture's first batch loaded; xp gets poisoned images of that batch. NULL on failure. */
static l2c_attack *ta_warmup_attack(ta_fixture *f, l2c_model *lin, float *xp)
{
    l2c_attack *a = l2c_attack_new(&f->cfg, f->g, f->v, &f->d);
    int i;
    if (!a || l2c_attack_add_reference(a, lin) || l2c__train_references(a) || l2c__load_batch(a, f->x, f->d.labels, 4)) {
        l2c_attack_free(a);
        return NULL;
    }
    for (i = 0; i < 4 * TA_SIDE * TA_SIDE; i++) xp[i] = f->x[i] + 0.25f * sinf(1.7f * (float)i);
    return a;
}

/* Whether two gradients of SIZE floats differ by more than 1 % of the reference's squared norm
   (reports the figures when they do not): a knob that should change the objective did. */
static int ta_gradient_changed(const float *grad, const float *reference, int size, const char *what)
{
    double change = 0, norm = 0;
    int i;
    for (i = 0; i < size; i++)
        change += (double)(grad[i] - reference[i]) * (grad[i] - reference[i]), norm += (double)reference[i] * reference[i];
    if (change > 1e-2 * norm) return 1;
    printf("    %s changed the gradient by only %g of %g\n", what, change, norm);
    return 0;
}

/* noise_weight: the warm-up objective's gradient in x' matches a central difference of
   L(x') + w L(x' - x) (the clean x fixed), and the noise term changes it. */
static void test_noise_term_gradient_matches_finite_difference(void)
{
    enum { SIZE = 4 * TA_SIDE * TA_SIDE };
    const float h = 1e-2f;
    ta_fixture f;
    l2c_model *lin = ta_linear();
    l2c_attack *a;
    float xp[SIZE], grad[SIZE], plain[SIZE];
    double err;
    REQUIRE(ta_setup(&f) && lin, "setup failed");
    f.cfg.noise_weight = 0.7f;
    REQUIRE((a = ta_warmup_attack(&f, lin, xp)) != NULL, "setup failed: %s", l2c_error());
    REQUIRE(isfinite(ta_warmup_objective(a, xp, grad)), "objective failed: %s", l2c_error());
    err = ta_objective_fd_error(a, xp, grad, h);
    CHECK(err < 2e-3, "gradient vs central difference: relative error %g", err);
    a->cfg.noise_weight = 0.0f;
    REQUIRE(isfinite(ta_warmup_objective(a, xp, plain)), "objective failed: %s", l2c_error());
    CHECK(ta_gradient_changed(grad, plain, SIZE, "the noise term"), "the noise term left the gradient as it was");
    l2c_attack_free(a); l2c_model_free(lin); ta_teardown(&f);
}

/* warmup_temperature: with soft targets (drawn per step, the same draw on both sides) the warm-up
   objective's gradient in x' matches its central difference, with and without the noise term, and
   differs from the one-hot objective's. */
static void test_soft_targets_gradient_matches_finite_difference(void)
{
    enum { SIZE = 4 * TA_SIDE * TA_SIDE };
    const float h = 1e-2f;
    ta_fixture f;
    l2c_model *lin = ta_linear();
    l2c_attack *a;
    float xp[SIZE], grad[SIZE], plain[SIZE];
    int pass;
    REQUIRE(ta_setup(&f) && lin, "setup failed");
    f.cfg.warmup_temperature = 2.0f;
    REQUIRE((a = ta_warmup_attack(&f, lin, xp)) != NULL, "setup failed: %s", l2c_error());
    for (pass = 0; pass < 2; pass++) {
        double err;
        a->cfg.noise_weight = pass ? 0.7f : 0.0f;
        REQUIRE(isfinite(ta_warmup_objective(a, xp, grad)), "objective failed: %s", l2c_error());
        err = ta_objective_fd_error(a, xp, grad, h);
        CHECK(err < 2e-3, "noise weight %g: gradient vs central difference: relative error %g", a->cfg.noise_weight, err);
    }
    a->cfg.noise_weight = 0.0f;
    REQUIRE(isfinite(ta_warmup_objective(a, xp, grad)), "objective failed: %s", l2c_error());
    a->cfg.warmup_temperature = 0.0f;
    REQUIRE(isfinite(ta_warmup_objective(a, xp, plain)), "objective failed: %s", l2c_error());
    CHECK(ta_gradient_changed(grad, plain, SIZE, "soft targets"), "soft targets left the gradient as they were");
    l2c_attack_free(a); l2c_model_free(lin); ta_teardown(&f);
}

/* warmup_temperature with no training image of a target class: a clear error, not a draw from an
   empty list. */
static void test_soft_targets_need_images_of_every_target_class(void)
{
    ta_fixture f;
    l2c_attack *a;
    float xp[4 * TA_SIDE * TA_SIDE];
    int i;
    REQUIRE(ta_setup(&f), "setup failed");
    for (i = 0; i < f.d.n; i++) if (f.d.labels[i] == 1) f.d.labels[i] = 2;   /* no 1s: w(0) = 1 has no images */
    f.d.labels[0] = 0;
    f.cfg.warmup_temperature = 2.0f;
    a = l2c_attack_new(&f.cfg, f.g, f.v, &f.d);
    REQUIRE(a && l2c__train_references(a) == 0 && l2c__load_batch(a, f.x, f.d.labels, 4) == 0, "setup failed: %s", l2c_error());
    memcpy(xp, f.x, sizeof xp);
    CHECK(!isfinite(ta_warmup_objective(a, xp, NULL)), "the objective drew a target of an empty class");
    CHECK(strstr(l2c_error(), "class 1") != NULL, "unclear message: %s", l2c_error());
    l2c_attack_free(a); ta_teardown(&f);
}

/* Every member of the ensemble counts: adding the linear classifier turns the anchor's direction. */
static void test_every_reference_classifier_contributes(void)
{
    ta_fixture f;
    float g0[256], one[256], two[256];
    double dot = 0, n1 = 0, n2 = 0;
    size_t i;
    REQUIRE(ta_setup(&f) && f.g->nparams <= 256, "setup failed");
    REQUIRE(ta_anchored_grad(&f, 0.0f, 0, g0) == 0 && ta_anchored_grad(&f, 1.0f, 0, one) == 0 &&
            ta_anchored_grad(&f, 1.0f, 1, two) == 0, "generator grad failed: %s", l2c_error());
    for (i = 0; i < f.g->nparams; i++) {
        double a = one[i] - g0[i], b = two[i] - g0[i];
        dot += a * b; n1 += a * a; n2 += b * b;
    }
    REQUIRE(n1 > 0 && n2 > 0, "the anchor changed nothing");
    CHECK(dot / sqrt(n1 * n2) < 0.99, "the linear member did not change the anchor's direction (cosine %.5f)", dot / sqrt(n1 * n2));
    ta_teardown(&f);
}

/* The warm-up targets w(0..2) of an attack with the fixture's settings, packed as w0*100+w1*10+w2. */
static int ta_warmup_targets(ta_fixture *f)
{
    int w[L2C_MAX_CLASSES];
    l2c_attack *a = l2c_attack_new(&f->cfg, f->g, f->v, &f->d);
    if (!a) return -1;
    l2c__warmup_targets(a, w);
    l2c_attack_free(a);
    return w[0] * 100 + w[1] * 10 + w[2];
}

/* Non-targeted: w(y) = y+1; targeted: the class eta sends to y (y itself if none). */
static void test_warmup_targets(void)
{
    ta_fixture f;
    int w;
    REQUIRE(ta_setup(&f), "setup failed");
    CHECK((w = ta_warmup_targets(&f)) == 120, "non-targeted warm-up targets %03d, expected 120", w);
    f.cfg.targeted = 1;   /* eta = y+1: images of class y carry features of y-1 */
    CHECK((w = ta_warmup_targets(&f)) == 201, "targeted warm-up targets %03d, expected 201", w);
    f.cfg.label_map[0] = 1; f.cfg.label_map[1] = 1; f.cfg.label_map[2] = 1;   /* nothing is sent to 0 or 2 */
    CHECK((w = ta_warmup_targets(&f)) == 2, "warm-up targets of a non-permutation %03d, expected 002", w);
    ta_teardown(&f);
}

/* The cheapest assignment of random 6 x 6 costs with a forbidden diagonal, against all 720. */
static void test_assignment_finds_the_cheapest_derangement(void)
{
    double cost[36], best = HUGE_VAL, got = 0;
    int match[6], i, j, code;
    l2c_rng r;
    l2c_rng_seed(&r, 3);
    for (i = 0; i < 36; i++) cost[i] = i % 7 == 0 ? 1e30 : l2c_rng_uniform(&r);
    for (code = 0; code < 46656; code++) {   /* every map of 6 rows to 6 columns; keep the permutations */
        int used = 0, t = code;
        double sum = 0;
        for (j = 0; j < 6; j++, t /= 6) used |= 1 << (t % 6), sum += cost[j * 6 + t % 6];
        if (used == 63 && sum < best) best = sum;
    }
    REQUIRE(l2c__assign(cost, 6, match) == 0, "assignment failed");
    for (i = 0; i < 6; i++) {
        CHECK(match[i] != i, "row %d assigned to itself", i);
        for (j = 0; j < i; j++) CHECK(match[i] != match[j], "rows %d and %d share column %d", j, i, match[i]);
        got += cost[i * 6 + match[i]];
    }
    CHECK_NEAR(got, best, 1e-9);
    match[0] = -1;   /* one class: the pairing code relies on the only assignment, 0 -> 0 */
    CHECK(l2c__assign(cost, 1, match) == 0 && match[0] == 0, "1 x 1 assignment gave %d", match[0]);
}

/* L2C_PAIR_NEAREST gives every class another class, and every class is someone's target. */
static void test_nearest_pairing_is_a_derangement(void)
{
    ta_fixture f;
    l2c_attack *a;
    int w[3], y;
    REQUIRE(ta_setup(&f), "setup failed");
    f.cfg.pairing = L2C_PAIR_NEAREST; f.cfg.warmup_steps = 2;
    a = l2c_attack_new(&f.cfg, f.g, f.v, &f.d);
    REQUIRE(a, "setup failed: %s", l2c_error());
    CHECK_FAILS(l2c_attack_warmup_targets(a, w));   /* not yet chosen */
    REQUIRE(l2c_attack_run_trial(a) == 0 && l2c_attack_warmup_targets(a, w) == 0, "warm-up failed: %s", l2c_error());
    for (y = 0; y < 3; y++) CHECK(w[y] >= 0 && w[y] < 3 && w[y] != y, "w(%d) = %d", y, w[y]);
    CHECK(w[0] != w[1] && w[1] != w[2] && w[0] != w[2], "w = %d %d %d is not a permutation", w[0], w[1], w[2]);
    l2c_attack_free(a);
    f.cfg.pairing = 7;
    CHECK_NULL_ERR(l2c_attack_new(&f.cfg, f.g, f.v, &f.d));
    ta_teardown(&f);
}

/* L2C_PAIR_REACHABLE: the search towards each other class stays within eps of the images and in
   [0, 1] and lowers the ensemble's loss against that class; the pairing is the cheaper of the two
   derangements of three classes under the costs it finds. Returns the pairing (120 for y -> y+1,
   201 for y -> y-1), or -1. The fixture's labels i % 3 are first renamed by `rename`. */
static int ta_check_reachable_pairing(const int *rename)
{
    ta_fixture f;
    l2c_attack *a;
    float x0[4 * TA_SIDE * TA_SIDE], before;
    double cost[9], next, prev;
    int w[3], idx[4], y, c, n, got = -1;
    size_t i;
    if (!ta_setup(&f)) return -1;
    for (i = 0; i < TA_N; i++) f.d.labels[i] = (uint8_t)rename[f.d.labels[i]];
    f.cfg.pairing = L2C_PAIR_REACHABLE; f.cfg.warmup_steps = 2;
    a = l2c_attack_new(&f.cfg, f.g, f.v, &f.d);
    if (!a || l2c_attack_run_trial(a) || l2c_attack_warmup_targets(a, w)) { CHECK(0, "warm-up failed: %s", l2c_error()); goto done; }
    for (y = 0; y < 3; y++) {
        n = l2c__class_images(a, y, x0, idx);
        for (c = 0; c < 3; c++) {
            if (c == y) continue;
            memset(a->y, c, (size_t)n);
            if (l2c__reference_grad(a, x0, n, 0, NULL, 0, &before) || l2c__reach_cost(a, x0, n, c, &cost[y * 3 + c])) {
                CHECK(0, "%s", l2c_error()); goto done;
            }
            CHECK(cost[y * 3 + c] < before, "%d -> %d: the search did not lower the loss (%g, clean %g)", y, c, cost[y * 3 + c], before);
            for (i = 0; i < (size_t)n * TA_SIDE * TA_SIDE; i++)
                CHECK(fabsf(a->x[i] - x0[i]) <= f.cfg.eps * 1.0001f && a->x[i] >= 0.0f && a->x[i] <= 1.0f,
                      "%d -> %d, pixel %zu: %g from %g", y, c, i, a->x[i], x0[i]);
        }
    }
    next = cost[1] + cost[5] + cost[6];   /* 0->1, 1->2, 2->0 */
    prev = cost[2] + cost[3] + cost[7];   /* 0->2, 1->0, 2->1 */
    CHECK(fabs(next - prev) > 1e-6, "both derangements cost %g: the check cannot tell them apart", next);
    got = w[0] * 100 + w[1] * 10 + w[2];
    CHECK(got == (next < prev ? 120 : 201), "pairing %03d, costs %g (120) and %g (201)", got, next, prev);
done:
    l2c_attack_free(a);
    ta_teardown(&f);
    return got;
}

/* Over three namings of the classes; both derangements must turn up, so that a pairing fixed in
   advance cannot pass. */
static void test_reachable_pairing_takes_the_cheapest_derangement(void)
{
    static const int renames[3][3] = { { 0, 1, 2 }, { 0, 2, 1 }, { 1, 0, 2 } };
    int k, seen = 0;
    for (k = 0; k < 3; k++) {
        int got = ta_check_reachable_pairing(renames[k]);
        seen |= got == 120 ? 1 : got == 201 ? 2 : 0;
    }
    CHECK(seen == 3, "the renamings gave only %s", seen == 1 ? "120" : seen == 2 ? "201" : "failures");
}

/* L2C_PAIR_GIVEN: the warm-up paints label_map[y] into class y, and a map that is not a
   derangement (a class sent to itself, a class targeted twice, a class that does not exist) is
   refused before anything runs. */
static void test_given_pairing_is_the_warmup_targets(void)
{
    static const int bad[3][3] = { { 0, 2, 1 }, { 1, 0, 0 }, { 1, 2, 3 } };
    static const char *why[3] = { "to itself", "target of two", "not a class" };
    ta_fixture f;
    l2c_attack *a;
    int w[3], k;
    REQUIRE(ta_setup(&f), "setup failed");
    f.cfg.pairing = L2C_PAIR_GIVEN;
    f.cfg.label_map[0] = 2; f.cfg.label_map[1] = 0; f.cfg.label_map[2] = 1;   /* y+1 would be 1, 2, 0 */
    a = l2c_attack_new(&f.cfg, f.g, f.v, &f.d);
    REQUIRE(a && l2c__train_references(a) == 0 && l2c_attack_warmup_targets(a, w) == 0, "setup failed: %s", l2c_error());
    CHECK(w[0] == 2 && w[1] == 0 && w[2] == 1, "warm-up targets %d %d %d, given 2 0 1", w[0], w[1], w[2]);
    l2c_attack_free(a);
    for (k = 0; k < 3; k++) {
        memcpy(f.cfg.label_map, bad[k], sizeof bad[k]);
        l2c_clear_error();
        a = l2c_attack_new(&f.cfg, f.g, f.v, &f.d);
        CHECK(a == NULL && strstr(l2c_error(), why[k]), "pairing %d %d %d: expected \"%s\", got \"%s\"",
              bad[k][0], bad[k][1], bad[k][2], why[k], l2c_error());
        l2c_attack_free(a);
    }
    f.cfg.targeted = 1;   /* label-specific: label_map is eta, any map of classes, the pairing unused */
    a = l2c_attack_new(&f.cfg, f.g, f.v, &f.d);
    CHECK(a == NULL, "targeted: a label map naming class 3 of 3 was accepted");
    l2c_attack_free(a);
    memcpy(f.cfg.label_map, bad[1], sizeof bad[1]);
    a = l2c_attack_new(&f.cfg, f.g, f.v, &f.d);
    CHECK(a != NULL, "targeted: a label map that is not a derangement was refused: %s", l2c_error());
    l2c_attack_free(a); ta_teardown(&f);
}

/* warmup_shift: each member sees its own translated view of the poisoned batch, and the gradient
   the warm-up uses is that of the ensemble's loss over those views (central differences in single
   pixels, the translations held fixed by the draw number). */
static void test_shifted_reference_gradient_matches_finite_difference(void)
{
    ta_fixture f;
    l2c_model *lin = ta_linear();
    l2c_attack *a;
    float xp[4 * TA_SIDE * TA_SIDE], plain[4 * TA_SIDE * TA_SIDE], loss, lp, lm;
    const float h = 1e-2f;
    uint64_t draw;
    int i, k, dx, dy, moved = 0;
    double err = 0.0;
    l2c_rng r;
    REQUIRE(ta_setup(&f) && lin, "setup failed");
    f.cfg.warmup_shift = 1;
    a = l2c_attack_new(&f.cfg, f.g, f.v, &f.d);
    REQUIRE(a && l2c_attack_add_reference(a, lin) == 0 && l2c__train_references(a) == 0, "setup failed: %s", l2c_error());
    for (draw = 0; draw < 64 && !moved; draw++)   /* a draw in which some member is translated */
        for (k = 0; k < a->nrefs; k++) { l2c__member_shift(a, draw, k, &dx, &dy); moved |= dx || dy; }
    REQUIRE(moved, "no member was ever translated");
    draw--;
    l2c_rng_seed(&r, 9);
    for (i = 0; i < 4 * TA_SIDE * TA_SIDE; i++) xp[i] = 0.3f + 0.4f * l2c_rng_uniform(&r);
    a->cfg.warmup_shift = 0;
    REQUIRE(l2c__reference_grad(a, xp, 4, draw, a->w, 0, &loss) == 0, "%s", l2c_error());
    memcpy(plain, a->ref_grad, sizeof plain);
    a->cfg.warmup_shift = 1;
    REQUIRE(l2c__reference_grad(a, xp, 4, draw, a->w, 0, &loss) == 0, "%s", l2c_error());
    for (i = 0; i < 4 * TA_SIDE * TA_SIDE; i++) err += fabs(a->ref_grad[i] - plain[i]);
    CHECK(err > 1e-4, "the translated views gave the unshifted gradient (difference %g)", err);
    memcpy(plain, a->ref_grad, sizeof plain);   /* now the gradient with the translations */
    for (i = 0; i < 4 * TA_SIDE * TA_SIDE; i++) {
        float keep = xp[i], want;
        xp[i] = keep + h; l2c__reference_grad(a, xp, 4, draw, a->w, 0, &lp);
        xp[i] = keep - h; l2c__reference_grad(a, xp, 4, draw, a->w, 0, &lm);
        xp[i] = keep;
        want = (lp - lm) / (2 * h);
        CHECK(fabs(plain[i] - want) <= 1e-3 + 0.02 * fabs(want), "pixel %d: gradient %.6g, finite difference %.6g", i, plain[i], want);
    }
    l2c_attack_free(a); l2c_model_free(lin); ta_teardown(&f);
}

/* L(f_theta(x'(xi)), y): the current victim's loss on the generator's poisoned batch, true labels. */
static double ta_victim_loss_on_poison(l2c_model *g, l2c_model *victim, const float *x, const uint8_t *y, float eps)
{
    l2c_tape *t = l2c_tape_new();
    l2c_tensor *in = l2c_tape_input(t, TA_N, 1, TA_SIDE, TA_SIDE, x, 0);
    l2c_tensor *xp = l2c_clamp(t, l2c_add(t, in, l2c_scale(t, l2c_model_forward(t, g, in, L2C_TRAIN_FROZEN_STATS), eps)), 0, 1);
    double L = l2c_softmax_xent(t, l2c_model_forward(t, victim, xp, L2C_TRAIN_FROZEN_STATS), y, NULL)->data[0];
    l2c_tape_free(t);
    return L;
}

/* cfg.shortcut adds, at a weight relative to the hypergradient, the gradient of the victim's loss on
   its poisoned batch: G(s) - G(0) points along a central difference of that loss in every generator
   parameter, and grows linearly with s. */
static void test_shortcut_adds_the_victims_loss_gradient(void)
{
    l2c_dataset d;
    float x[TA_N * TA_SIDE * TA_SIDE], g0[256], g1[256], g3[256];
    l2c_model *g = ta_generator(), *v = ta_victim();
    l2c_attack_config cfg;
    const float h = 1e-2f;
    double dot = 0, na = 0, nn = 0, err = 0;
    float weights[3] = { 0.0f, 1.0f, 3.0f }, *out[3];
    size_t i;
    int k;
    REQUIRE(g && v && g->nparams <= 256, "setup failed");
    out[0] = g0; out[1] = g1; out[2] = g3;
    ta_dataset(&d, x);
    l2c_attack_defaults(&cfg, 3);
    cfg.eps = 0.1f; cfg.batch = TA_N; cfg.anchor = 0.0f;
    for (k = 0; k < 3; k++) {
        l2c_attack *a;
        cfg.shortcut = weights[k];
        a = l2c_attack_new(&cfg, g, v, &d);
        REQUIRE(a, "setup failed: %s", l2c_error());
        l2c_model_copy(l2c_attack_victim(a), v);
        REQUIRE(l2c_attack_generator_grad(a, x, d.labels, TA_N, NULL) == 0, "generator grad failed: %s", l2c_error());
        memcpy(out[k], l2c_attack_trainable(a)->grads, g->nparams * sizeof(float));
        l2c_attack_free(a);
    }
    for (i = 0; i < g->nparams; i++) {
        float keep = g->params[i];
        double lp, lm, num, d1 = g1[i] - g0[i], d3 = g3[i] - g0[i];
        g->params[i] = keep + h; lp = ta_victim_loss_on_poison(g, v, x, d.labels, cfg.eps);
        g->params[i] = keep - h; lm = ta_victim_loss_on_poison(g, v, x, d.labels, cfg.eps);
        g->params[i] = keep;
        num = (lp - lm) / (2.0 * h);
        dot += num * d1; na += d1 * d1; nn += num * num; err += (d3 - 3 * d1) * (d3 - 3 * d1);
    }
    REQUIRE(na > 0 && nn > 0, "the shortcut changed nothing (|G(1) - G(0)|^2 %g, |dL|^2 %g)", na, nn);
    CHECK(dot / sqrt(na * nn) > 0.99, "the shortcut's direction has cosine %.5f with the victim's loss gradient (want > 0.99)", dot / sqrt(na * nn));
    CHECK(sqrt(err / na) < 1e-3, "shortcut 3 is not three times shortcut 1 (relative error %g)", sqrt(err / na));
    l2c_model_free(g); l2c_model_free(v); l2c_dataset_free(&d);
}

static const l2ct_case l2ct_attack_cases[] = {
    L2CT(test_targeted_defaults_differ_only_where_documented),
    L2CT(test_shortcut_adds_the_victims_loss_gradient),
    L2CT(test_shifted_reference_gradient_matches_finite_difference),
    L2CT(test_assignment_finds_the_cheapest_derangement),
    L2CT(test_nearest_pairing_is_a_derangement),
    L2CT(test_reachable_pairing_takes_the_cheapest_derangement),
    L2CT(test_warmup_lowers_its_loss),
    L2CT(test_warmup_lowers_the_loss_of_an_ensemble),
    L2CT(test_reference_epochs_count_batches),
    L2CT(test_named_classifiers_are_distinct_mnist_networks),
    L2CT(test_add_reference_refuses_bad_classifiers),
    L2CT(test_anchor_adds_the_warmup_gradient_linearly),
    L2CT(test_noise_term_gradient_matches_finite_difference),
    L2CT(test_soft_targets_gradient_matches_finite_difference),
    L2CT(test_soft_targets_need_images_of_every_target_class),
    L2CT(test_every_reference_classifier_contributes),
    L2CT(test_attack_checkpoint_resumes_with_anchor),
    L2CT(test_attack_checkpoint_resumes_cosine_schedule),
    L2CT(test_attack_checkpoint_resumes_victim_architectures),
    L2CT(test_attack_checkpoint_resumes_momentum_victim),
    L2CT(test_trials_take_the_victim_architectures_in_turn),
    L2CT(test_cosine_schedule),
    L2CT(test_warmup_targets),
    L2CT(test_hypergradient_matches_unrolled_objective),
    L2CT(test_hypergradient_matches_unrolled_objective_targeted),
    L2CT(test_hypergradient_matches_unrolled_objective_complement),
    L2CT(test_hypergradient_matches_unrolled_objective_shifted_victim),
    L2CT(test_hypergradient_matches_unrolled_objective_momentum_victim),
    L2CT(test_hypergradient_matches_unrolled_objective_adam_victim),
    L2CT(test_hypergradient_matches_unrolled_objective_adam_victim_targeted),
    L2CT(test_attack_checkpoint_resumes_alternating_victim_optimizers),
    L2CT(test_adam_victim_trains_by_adam),
    L2CT(test_clamp_inward_keeps_only_inward_gradients),
    L2CT(test_clamp_inward_revives_clamped_pixels),
    L2CT(test_alignment_gradient_matches_cosine),
    L2CT(test_alignment_gradient_matches_cosine_targeted),
    L2CT(test_poison_stays_within_eps),
    L2CT(test_boost_adds_the_class_mean_within_eps),
    L2CT(test_boost_keeps_a_release_within_eps),
    L2CT(test_boost_rejects_bad_input),
    L2CT(test_combine_averages_or_adds_within_eps),
    L2CT(test_combine_one_release_and_bad_input),
    L2CT(test_defence_subtracts_the_estimated_class_mean),
    L2CT(test_defence_undoes_a_class_shared_perturbation),
    L2CT(test_defence_shrinks_what_sampling_noise_explains),
    L2CT(test_defence_rejects_bad_input),
    L2CT(test_generator_noise_is_the_release_before_the_clamp),
    L2CT(test_generator_noise_refuses_bad_input),
    L2CT(test_attack_refuses_bad_settings),
    L2CT(test_generator_must_end_in_tanh),
    L2CT(test_hand_built_data_sets_are_checked),
    L2CT(test_attack_checkpoint_resumes_bit_identically),
    L2CT(test_attack_checkpoint_resumes_victim_pool),
    L2CT(test_attack_lowers_clean_accuracy_of_its_victim),
    L2CT(test_attack_runs_on_colour_images_of_any_size),
    L2CT(test_given_pairing_is_the_warmup_targets),
    { NULL, NULL }
};
