/* Optimisers against PyTorch's update formulas, determinism, the random number generator, the
   mini-batch order, and a small end-to-end training run. */

/* A 2 -> 2 dense model: 4 weights and 2 biases, set by hand. */
static const float opt_p0[6] = { 1.0f, -2.0f, 0.5f, 3.0f, -0.25f, 0.0f };

static l2c_model *opt_model(void)
{
    l2c_model *m = l2c_model_new(1, 1, 2);
    if (!m || l2c_model_dense(m, 2)) { l2c_model_free(m); return NULL; }
    l2c_model_init(m, 1);
    memcpy(m->params, opt_p0, sizeof opt_p0);
    return m;
}

static const float opt_grads[3][6] = {
    { 0.5f, -1.0f, 0.25f, 2.0f, -0.1f, 0.0f },
    { 0.5f, 0.3f, -0.75f, 0.01f, -0.1f, 1.0f },
    { -0.2f, -1.0f, 0.6f, -2.0f, 0.4f, 0.0f },
};

static void test_sgd_momentum_weight_decay_matches_pytorch(void)
{
    int variant;
    /* hand-computed, parameter 0 (p = 1, g = 0.5, lr 0.1, momentum 0.9, weight decay 0.01):
       step 1: d = 0.5 + 0.01 = 0.51, v = 0.51, p = 1 - 0.051 = 0.949
       step 2: d = 0.5 + 0.00949 = 0.50949, v = 0.9 * 0.51 + 0.50949 = 0.96849, p = 0.949 - 0.096849 = 0.852151 */
    l2c_model *m = opt_model();
    l2c_sgd opt;
    REQUIRE(m, "model");
    REQUIRE(l2c_sgd_init(&opt, m, 0.1f, 0.9f, 0.01f) == 0, "sgd init: %s", l2c_error());
    memcpy(m->grads, opt_grads[0], sizeof opt_grads[0]);
    l2c_sgd_step(&opt, m);
    CHECK_NEAR(m->params[0], 0.949, 1e-6);
    memcpy(m->grads, opt_grads[1], sizeof opt_grads[1]);
    l2c_sgd_step(&opt, m);
    CHECK_NEAR(m->params[0], 0.852151, 1e-6);
    l2c_sgd_free(&opt);
    CHECK(opt.velocity == NULL, "l2c_sgd_free left the velocity pointer");
    l2c_model_free(m);

    /* all parameters, three steps, against PyTorch's rule in double; with and without momentum / decay */
    for (variant = 0; variant < 3; variant++) {
        float lr = 0.05f, mu = variant == 0 ? 0.9f : variant == 1 ? 0.0f : 0.5f, wd = variant == 2 ? 0.0f : 0.02f;
        double p[6], v[6] = { 0 };
        int s, i;
        m = opt_model();
        REQUIRE(m, "model");
        for (i = 0; i < 6; i++) p[i] = m->params[i];
        REQUIRE(l2c_sgd_init(&opt, m, lr, mu, wd) == 0, "sgd init: %s", l2c_error());
        CHECK((opt.velocity != NULL) == (mu > 0), "velocity allocated: %d with momentum %g", opt.velocity != NULL, (double)mu);
        for (s = 0; s < 3; s++) {
            memcpy(m->grads, opt_grads[s], sizeof opt_grads[s]);
            l2c_sgd_step(&opt, m);
            for (i = 0; i < 6; i++) {
                double d = opt_grads[s][i] + (double)wd * p[i];
                if (mu > 0) { v[i] = (s == 0) ? d : mu * v[i] + d; d = v[i]; }
                p[i] -= lr * d;
                CHECK(fabs(m->params[i] - p[i]) <= 1e-6 * (1 + fabs(p[i])), "SGD (mu %g wd %g) step %d param %d: %.8g, want %.8g",
                      (double)mu, (double)wd, s + 1, i, (double)m->params[i], p[i]);
            }
        }
        l2c_sgd_free(&opt);
        l2c_model_free(m);
    }
}

static void adam_reference(double *p, double *m, double *v, double *vmax, const float *g, int n, int t, double lr,
                           double b1, double b2, double eps, int amsgrad)
{
    int i;
    double bc1 = 1.0 - pow(b1, t), bc2 = 1.0 - pow(b2, t);
    for (i = 0; i < n; i++) {
        double denom;
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * (double)g[i] * g[i];
        if (amsgrad) { if (v[i] > vmax[i]) vmax[i] = v[i]; denom = sqrt(vmax[i]) / sqrt(bc2) + eps; }
        else denom = sqrt(v[i]) / sqrt(bc2) + eps;
        p[i] -= lr / bc1 * m[i] / denom;
    }
}

static void test_adam_and_amsgrad_match_pytorch(void)
{
    /* Large gradients first, then small ones, with beta2 = 0.9 so that v shrinks quickly: AMSGrad's
       max(v) then differs from v. */
    static const float g[4][6] = {
        { 1.0f, -2.0f, 0.5f, 3.0f, -1.0f, 0.2f },
        { 0.01f, -0.02f, 0.01f, 0.03f, -0.01f, 0.002f },
        { 0.01f, 0.02f, -0.01f, 0.03f, 0.01f, -0.002f },
        { 0.5f, -0.02f, 0.01f, -0.3f, 0.01f, 0.0f },
    };
    int ams;
    double result[2][6];
    for (ams = 0; ams < 2; ams++) {
        l2c_model *m = opt_model();
        l2c_adam opt;
        double p[6], mm[6] = { 0 }, vv[6] = { 0 }, vmax[6] = { 0 };
        int s, i;
        REQUIRE(m, "model");
        for (i = 0; i < 6; i++) p[i] = m->params[i];
        REQUIRE(l2c_adam_init(&opt, m, 0.1f, 0.8f, 0.9f, 1e-8f, ams) == 0, "adam init: %s", l2c_error());
        CHECK(opt.step == 0 && (opt.vmax != NULL) == ams, "fresh state: step %ld vmax %p", opt.step, (void *)opt.vmax);
        for (s = 0; s < 4; s++) {
            memcpy(m->grads, g[s], sizeof g[s]);
            l2c_adam_step(&opt, m);
            adam_reference(p, mm, vv, vmax, g[s], 6, s + 1, 0.1, 0.8, 0.9, 1e-8, ams);
            if (s == 0)   /* hand check: the first step moves every parameter by lr * sign(g) */
                for (i = 0; i < 6; i++) CHECK_NEAR(m->params[i], opt_p0[i] - 0.1 * (g[0][i] > 0 ? 1 : -1), 1e-6);
            for (i = 0; i < 6; i++)
                CHECK(fabs(m->params[i] - p[i]) <= 2e-6 * (1 + fabs(p[i])), "%s step %d param %d: %.8g, want %.8g",
                      ams ? "AMSGrad" : "Adam", s + 1, i, (double)m->params[i], p[i]);
        }
        CHECK(opt.step == 4, "step counter %ld", opt.step);
        for (i = 0; i < 6; i++) result[ams][i] = m->params[i];
        l2c_adam_free(&opt);
        CHECK(opt.m == NULL && opt.v == NULL && opt.vmax == NULL, "l2c_adam_free left pointers");
        l2c_model_free(m);
    }
    CHECK(fabs(result[0][0] - result[1][0]) > 1e-3, "AMSGrad and Adam agree (%g vs %g): the test does not tell them apart",
          result[0][0], result[1][0]);
    {   /* zero gradients from the start: nothing moves */
        l2c_model *m = opt_model();
        l2c_adam opt;
        int i;
        REQUIRE(m && l2c_adam_init(&opt, m, 0.1f, 0.9f, 0.999f, 1e-8f, 0) == 0, "init");
        memset(m->grads, 0, 6 * sizeof(float));
        l2c_adam_step(&opt, m);
        for (i = 0; i < 6; i++) CHECK(m->params[i] == opt_p0[i], "param %d moved with a zero gradient", i);
        l2c_adam_free(&opt);
        l2c_model_free(m);
    }
}

/* After a reset the optimiser steps exactly as a fresh one: SGD's velocity, Adam's moments (AMSGrad's
   max too) and step count are forgotten. Two steps of history first, so that a reset that missed any
   of them would change the next step. */
static void test_optimiser_reset_is_a_fresh_start(void)
{
    int kind;
    for (kind = 0; kind < 3; kind++) {   /* SGD with momentum, Adam, AMSGrad */
        l2c_model *m = opt_model(), *ref = opt_model();
        l2c_sgd sgd, sgd_ref;
        l2c_adam adam, adam_ref;
        int s, i;
        REQUIRE(m && ref, "model");
        REQUIRE(kind ? l2c_adam_init(&adam, m, 0.1f, 0.8f, 0.9f, 1e-8f, kind == 2) == 0 && l2c_adam_init(&adam_ref, ref, 0.1f, 0.8f, 0.9f, 1e-8f, kind == 2) == 0
                     : l2c_sgd_init(&sgd, m, 0.1f, 0.9f, 0.0f) == 0 && l2c_sgd_init(&sgd_ref, ref, 0.1f, 0.9f, 0.0f) == 0, "init: %s", l2c_error());
        for (s = 0; s < 2; s++) {   /* history: large gradients */
            memcpy(m->grads, opt_grads[s], sizeof opt_grads[s]);
            for (i = 0; i < 6; i++) m->grads[i] *= 10.0f;
            if (kind) l2c_adam_step(&adam, m); else l2c_sgd_step(&sgd, m);
        }
        if (kind) l2c_adam_reset(&adam); else l2c_sgd_reset(&sgd);
        memcpy(m->params, ref->params, 6 * sizeof(float));
        memcpy(m->grads, opt_grads[2], sizeof opt_grads[2]);
        memcpy(ref->grads, opt_grads[2], sizeof opt_grads[2]);
        if (kind) { l2c_adam_step(&adam, m); l2c_adam_step(&adam_ref, ref); }
        else { l2c_sgd_step(&sgd, m); l2c_sgd_step(&sgd_ref, ref); }
        for (i = 0; i < 6; i++)
            CHECK(m->params[i] == ref->params[i], "%s after reset, param %d: %.8g, a fresh optimiser gives %.8g",
                  kind == 0 ? "SGD" : kind == 1 ? "Adam" : "AMSGrad", i, (double)m->params[i], (double)ref->params[i]);
        if (kind) { CHECK(adam.step == 1, "step counter after reset and one step: %ld", adam.step); l2c_adam_free(&adam); l2c_adam_free(&adam_ref); }
        else { l2c_sgd_free(&sgd); l2c_sgd_free(&sgd_ref); }
        l2c_model_free(m); l2c_model_free(ref);
    }
}

/* ---------------------------------------------------------------- determinism ------------------ */

static l2c_model *small_cnn(uint64_t seed)
{
    l2c_model *m = l2c_model_new(1, 10, 10);
    int rc = 0;
    if (!m) return NULL;
    rc |= l2c_model_conv(m, 4, 3, 1, 1);
    rc |= l2c_model_batchnorm(m);
    rc |= l2c_model_relu(m);
    rc |= l2c_model_maxpool(m, 2, 2);
    rc |= l2c_model_conv(m, 6, 3, 2, 1);
    rc |= l2c_model_avgpool(m, 3, 3);
    rc |= l2c_model_flatten(m);
    rc |= l2c_model_dense(m, 3);
    if (rc) { l2c_model_free(m); return NULL; }
    l2c_model_init(m, seed);
    return m;
}

/* Trains on random data from l2c_rng; returns the model (caller frees) or NULL. */
static l2c_model *train_small_cnn(uint64_t seed, int steps)
{
    l2c_model *m = small_cnn(seed);
    l2c_tape *t = l2c_tape_new();
    l2c_sgd opt;
    l2c_rng r;
    float x[8 * 100];
    uint8_t labels[8];
    int s, i;
    if (!m || !t || l2c_sgd_init(&opt, m, 0.05f, 0.9f, 1e-4f)) { l2c_model_free(m); l2c_tape_free(t); return NULL; }
    l2c_rng_seed(&r, seed + 1000);
    for (s = 0; s < steps; s++) {
        l2c_tensor *xi, *y;
        fill_uniform(&r, x, sizeof x / sizeof x[0], 0, 1);
        for (i = 0; i < 8; i++) labels[i] = (uint8_t)l2c_rng_below(&r, 3);
        l2c_tape_reset(t);
        l2c_model_zero_grad(m);
        xi = l2c_tape_input(t, 8, 1, 10, 10, x, 0);
        y = l2c_model_forward(t, m, xi, L2C_TRAIN);
        y = y ? l2c_softmax_xent(t, y, labels, NULL) : NULL;
        if (!y || l2c_backward(t, y)) { l2c_model_free(m); m = NULL; break; }
        l2c_sgd_step(&opt, m);
    }
    l2c_sgd_free(&opt);
    l2c_tape_free(t);
    return m;
}

static void test_same_seed_gives_bit_identical_training(void)
{
    l2c_model *a, *b, *c;
    int threads = l2c_set_threads(1);
    CHECK(threads == 1, "l2c_set_threads(1) returned %d", threads);
    CHECK(l2c_get_threads() == 1, "l2c_get_threads() = %d after l2c_set_threads(1)", l2c_get_threads());
    a = train_small_cnn(5, 4);
    b = train_small_cnn(5, 4);
    c = train_small_cnn(6, 4);
    REQUIRE(a && b && c, "training failed: %s", l2c_error());
    CHECK(memcmp(a->params, b->params, a->nparams * sizeof(float)) == 0, "same seed, different parameters");
    CHECK(memcmp(a->buffers, b->buffers, a->nbuffers * sizeof(float)) == 0, "same seed, different running statistics");
    CHECK(memcmp(a->params, c->params, a->nparams * sizeof(float)) != 0, "different seeds, same parameters");
    l2c_model_free(a); l2c_model_free(b); l2c_model_free(c);
}

static void test_training_reduces_the_loss(void)
{
    /* Three classes told apart by where the bright square is: a few SGD steps must learn it. */
    l2c_model *m = l2c_model_new(1, 10, 10);
    l2c_tape *t = l2c_tape_new();
    l2c_sgd opt;
    l2c_rng r;
    float x[16 * 100], first = 0.0f, last = 0.0f;
    uint8_t labels[16];
    int s, i, j;
    REQUIRE(m && t, "setup");
    REQUIRE(l2c_model_conv(m, 4, 3, 1, 1) == 0 && l2c_model_batchnorm(m) == 0 && l2c_model_relu(m) == 0 &&
            l2c_model_maxpool(m, 2, 2) == 0 && l2c_model_flatten(m) == 0 && l2c_model_dense(m, 3) == 0, "%s", l2c_error());
    l2c_model_init(m, 8);
    REQUIRE(l2c_sgd_init(&opt, m, 0.05f, 0.9f, 0.0f) == 0, "setup: %s", l2c_error());
    l2c_rng_seed(&r, 700);
    for (s = 0; s < 60; s++) {
        l2c_tensor *xi, *y;
        for (i = 0; i < 16; i++) {
            int cls = (int)l2c_rng_below(&r, 3), oy = cls == 1 ? 5 : 1, ox = cls == 2 ? 5 : 1;
            labels[i] = (uint8_t)cls;
            for (j = 0; j < 100; j++) x[i * 100 + j] = 0.1f * l2c_rng_uniform(&r);
            for (j = 0; j < 16; j++) x[i * 100 + (oy + j / 4) * 10 + ox + j % 4] += 1.0f;
        }
        l2c_tape_reset(t);
        l2c_model_zero_grad(m);
        xi = l2c_tape_input(t, 16, 1, 10, 10, x, 0);
        y = l2c_model_forward(t, m, xi, L2C_TRAIN);
        y = y ? l2c_softmax_xent(t, y, labels, NULL) : NULL;
        REQUIRE(y && l2c_backward(t, y) == 0, "step %d: %s", s, l2c_error());
        if (s < 5) first += y->data[0] / 5;
        if (s >= 55) last += y->data[0] / 5;
        l2c_sgd_step(&opt, m);
    }
    CHECK(last < 0.5f * first && last < 0.3f, "loss went from %.4f to %.4f", (double)first, (double)last);
    l2c_sgd_free(&opt);
    l2c_tape_free(t);
    l2c_model_free(m);
}

/* ---------------------------------------------------------------- random numbers --------------- */

static void test_rng_is_reproducible_and_portable(void)
{
    /* Recorded once (gcc, clang and tcc on x86-64 agree); a change here breaks every seeded result. */
    static const uint32_t seed42[8] = { 0xb058533fu, 0xb9ce3f99u, 0xe388dbc5u, 0xf13f58b2u,
                                        0x28abf8ccu, 0x7af7d9a8u, 0xe936886bu, 0xc42f554eu };
    static const uint32_t seed0[4] = { 0x020ee24bu, 0x5fb8e9cdu, 0x757fca8du, 0x3f798d0fu };
    l2c_rng a, b;
    int i, differ = 0;
    l2c_rng_seed(&a, 42);
    for (i = 0; i < 8; i++) {
        uint32_t v = l2c_rng_u32(&a);
        CHECK(v == seed42[i], "seed 42, number %d: 0x%08lx, want 0x%08lx", i, (unsigned long)v, (unsigned long)seed42[i]);
    }
    l2c_rng_seed(&a, 0);
    for (i = 0; i < 4; i++) {
        uint32_t v = l2c_rng_u32(&a);
        CHECK(v == seed0[i], "seed 0, number %d: 0x%08lx, want 0x%08lx", i, (unsigned long)v, (unsigned long)seed0[i]);
    }
    l2c_rng_seed(&a, 42);
    CHECK_NEAR(l2c_rng_uniform(&a), (double)(0xb058533fu >> 8) / 16777216.0, 0);
    l2c_rng_seed(&a, 123456789);
    l2c_rng_seed(&b, 123456789);
    for (i = 0; i < 1000; i++) if (l2c_rng_u32(&a) != l2c_rng_u32(&b)) differ++;
    CHECK(differ == 0, "same seed, %d different numbers", differ);
    l2c_rng_seed(&a, 1);
    l2c_rng_seed(&b, 2);
    for (differ = 0, i = 0; i < 100; i++) if (l2c_rng_u32(&a) != l2c_rng_u32(&b)) differ++;
    CHECK(differ > 95, "seeds 1 and 2 agree on %d of 100 numbers", 100 - differ);
}

static void test_rng_uniform_and_below_ranges(void)
{
    l2c_rng r;
    int i, counts[10] = { 0 }, bad = 0;
    double sum = 0.0, chi2 = 0.0;
    l2c_rng_seed(&r, 7);
    for (i = 0; i < 100000; i++) {
        float u = l2c_rng_uniform(&r);
        if (!(u >= 0.0f && u < 1.0f)) bad++;
        sum += u;
    }
    CHECK(bad == 0, "%d uniforms outside [0, 1)", bad);
    CHECK_NEAR(sum / 100000, 0.5, 0.01);
    for (i = 0; i < 100000; i++) {
        uint32_t k = l2c_rng_below(&r, 10);
        if (k >= 10) bad++;
        else counts[k]++;
    }
    CHECK(bad == 0, "%d values of l2c_rng_below(10) out of range", bad);
    for (i = 0; i < 10; i++) chi2 += (counts[i] - 10000.0) * (counts[i] - 10000.0) / 10000.0;
    CHECK(chi2 < 40.0, "l2c_rng_below(10) counts far from uniform: chi2 %.1f (9 d.o.f.)", chi2);
    for (i = 0; i < 100; i++) if (l2c_rng_below(&r, 1) != 0) bad++;
    CHECK(bad == 0, "l2c_rng_below(1) is not always 0");
    for (i = 0; i < 1000; i++) if (l2c_rng_below(&r, 0x80000001u) > 0x80000000u) bad++;
    CHECK(bad == 0, "l2c_rng_below(2^31 + 1) out of range");
}

/* ---------------------------------------------------------------- batcher ---------------------- */

/* Runs one epoch, checking sizes; fills order[] with the indices seen. Returns how many. */
static int batcher_epoch(l2c_batcher *b, int *order, int *sizes, int *nbatches)
{
    const int *idx = NULL;
    int k, seen = 0, count;
    *nbatches = 0;
    while ((count = l2c_batcher_next(b, &idx)) > 0) {
        if (seen + count > b->n) return -1;
        for (k = 0; k < count; k++) order[seen + k] = idx[k];
        sizes[(*nbatches)++] = count;
        seen += count;
        if (*nbatches > b->n + 1) return -1;
    }
    return seen;
}

static void test_batcher_covers_every_index_once_per_epoch(void)
{
    enum { N = 10, B = 3 };
    l2c_batcher b, b2;
    int e1[N], e2[N], e3[N], sizes[N + 2], nb, i, seen[N], same12 = 1;
    REQUIRE(l2c_batcher_init(&b, N, B, 1, 77) == 0, "init: %s", l2c_error());
    CHECK(batcher_epoch(&b, e1, sizes, &nb) == N, "first epoch does not cover %d indices", N);
    CHECK(nb == 4 && sizes[0] == 3 && sizes[1] == 3 && sizes[2] == 3 && sizes[3] == 1, "batch sizes: %d batches, last %d",
          nb, nb ? sizes[nb - 1] : -1);
    memset(seen, 0, sizeof seen);
    for (i = 0; i < N; i++) if (e1[i] >= 0 && e1[i] < N) seen[e1[i]]++;
    for (i = 0; i < N; i++) CHECK(seen[i] == 1, "index %d seen %d times in epoch 1", i, seen[i]);
    CHECK(batcher_epoch(&b, e2, sizes, &nb) == N, "second epoch does not cover %d indices", N);
    memset(seen, 0, sizeof seen);
    for (i = 0; i < N; i++) if (e2[i] >= 0 && e2[i] < N) seen[e2[i]]++;
    for (i = 0; i < N; i++) CHECK(seen[i] == 1, "index %d seen %d times in epoch 2", i, seen[i]);
    for (i = 0; i < N; i++) if (e1[i] != e2[i]) same12 = 0;
    CHECK(!same12, "epoch 2 has the same order as epoch 1 (not reshuffled)");
    /* same seed, same orders */
    REQUIRE(l2c_batcher_init(&b2, N, B, 1, 77) == 0, "init: %s", l2c_error());
    CHECK(batcher_epoch(&b2, e3, sizes, &nb) == N && memcmp(e1, e3, sizeof e1) == 0, "same seed, different first epoch");
    CHECK(batcher_epoch(&b2, e3, sizes, &nb) == N && memcmp(e2, e3, sizeof e2) == 0, "same seed, different second epoch");
    l2c_batcher_free(&b2);
    /* another seed, another order */
    REQUIRE(l2c_batcher_init(&b2, N, B, 1, 78) == 0, "init");
    CHECK(batcher_epoch(&b2, e3, sizes, &nb) == N && memcmp(e1, e3, sizeof e1) != 0, "seeds 77 and 78 give the same order");
    l2c_batcher_free(&b2);
    /* no shuffle: 0..n-1 every epoch */
    REQUIRE(l2c_batcher_init(&b2, N, 4, 0, 1) == 0, "init");
    for (nb = 0; nb < 2; nb++) {
        int n2;
        CHECK(batcher_epoch(&b2, e3, sizes, &n2) == N, "unshuffled epoch");
        for (i = 0; i < N; i++) CHECK(e3[i] == i, "unshuffled order[%d] = %d", i, e3[i]);
        CHECK(n2 == 3 && sizes[2] == 2, "unshuffled: %d batches", n2);
    }
    l2c_batcher_free(&b2);
    /* batch larger than the data: one batch of n */
    REQUIRE(l2c_batcher_init(&b2, 5, 64, 1, 3) == 0, "init");
    CHECK(batcher_epoch(&b2, e3, sizes, &nb) == 5 && nb == 1 && sizes[0] == 5, "batch > n: %d batches", nb);
    l2c_batcher_free(&b2);
    /* a batch that divides n: no empty batch */
    REQUIRE(l2c_batcher_init(&b2, 9, 3, 1, 3) == 0, "init");
    CHECK(batcher_epoch(&b2, e3, sizes, &nb) == 9 && nb == 3, "9 / 3: %d batches", nb);
    l2c_batcher_free(&b2);
    l2c_batcher_free(&b);
    CHECK(b.order == NULL, "l2c_batcher_free left the pointer");
}

/* "n <= 0: the OpenMP default, which follows OMP_NUM_THREADS". Only meaningful in an OpenMP build
   run with OMP_NUM_THREADS set; otherwise it checks the single-threaded answer. */
static void test_set_threads_default_follows_omp_num_threads(void)
{
    const char *env = getenv("OMP_NUM_THREADS");
    int want = env ? atoi(env) : 0, got = l2c_set_threads(0);
#ifdef _OPENMP
    if (want > 0) CHECK(got == want && l2c_get_threads() == want, "OMP_NUM_THREADS=%d but l2c_set_threads(0) gives %d (get: %d)",
                        want, got, l2c_get_threads());
    else CHECK(got >= 1, "l2c_set_threads(0) returned %d", got);
    CHECK(l2c_set_threads(2) == 2 && l2c_get_threads() == 2, "l2c_set_threads(2) not in effect");
#else
    (void)want;
    CHECK(got == 1 && l2c_get_threads() == 1 && l2c_set_threads(4) == 1, "without OpenMP the count must be 1");
#endif
}

#ifdef _OPENMP
/* A few SGD steps of the reference CNN and of the autoencoder (28x28, batch 32: big enough for every
   kernel's parallel path) with `threads` threads; the parameters after them, in one buffer. */
static float *train_mnist_nets(int threads, size_t *count)
{
    l2c_model *nets[2];
    l2c_tape *t = l2c_tape_new();
    float *x = (float *)malloc(2 * 32 * 784 * sizeof(float)), *seed = x ? x + 32 * 784 : NULL, *out = NULL;
    uint8_t labels[32];
    l2c_rng r;
    int k, s, i, failed = !t || !x;
    size_t total = 0;
    if (l2c_set_threads(threads) != threads) failed = 1;   /* the 2-thread run must really use two */
    nets[0] = l2c_mnist_victim(100, 3);
    nets[1] = l2c_autoencoder(1, 28, 28, 8, 4);
    l2c_rng_seed(&r, 77);
    for (k = 0; k < 2 && !failed; k++) {
        l2c_sgd opt;
        if (!nets[k] || l2c_sgd_init(&opt, nets[k], 0.05f, 0.9f, 0.0f)) { failed = 1; break; }
        for (s = 0; s < 3 && !failed; s++) {
            l2c_tensor *y;
            fill_uniform(&r, x, 32 * 784, 0, 1);
            for (i = 0; i < 32; i++) labels[i] = (uint8_t)l2c_rng_below(&r, 10);
            l2c_tape_reset(t);
            l2c_model_zero_grad(nets[k]);
            y = l2c_model_forward(t, nets[k], l2c_tape_input(t, 32, 1, 28, 28, x, 0), L2C_TRAIN);
            if (!y) failed = 1;
            else if (k == 1) {   /* the generator: a random output gradient, as the attack seeds it */
                fill_uniform(&r, seed, 32 * 784, -1, 1);
                failed = l2c_backward_from(t, y, seed) != 0;
            } else failed = l2c_backward(t, l2c_softmax_xent(t, y, labels, NULL)) != 0;
            if (!failed) l2c_sgd_step(&opt, nets[k]);
        }
        l2c_sgd_free(&opt);
        total += nets[k]->nparams;
    }
    if (!failed && (out = (float *)malloc(total * sizeof(float)))) {
        memcpy(out, nets[0]->params, nets[0]->nparams * sizeof(float));
        memcpy(out + nets[0]->nparams, nets[1]->params, nets[1]->nparams * sizeof(float));
        *count = total;
    }
    l2c_model_free(nets[0]); l2c_model_free(nets[1]); l2c_tape_free(t); free(x);
    return out;
}

/* The results do not depend on the thread count (README: fixed work splits, sums in fixed order). */
static void test_thread_count_does_not_change_training(void)
{
    size_t n1 = 0, n2 = 0;
    float *one = train_mnist_nets(1, &n1), *two = train_mnist_nets(2, &n2);
    REQUIRE(one && two && n1 == n2, "training failed: %s", l2c_error());
    CHECK(memcmp(one, two, n1 * sizeof(float)) == 0, "1 and 2 threads trained different parameters");
    free(one); free(two);
    l2c_set_threads(0);
}
#endif

static const l2ct_case l2ct_train_cases[] = {
#ifdef _OPENMP
    L2CT(test_thread_count_does_not_change_training),
#endif
    L2CT(test_set_threads_default_follows_omp_num_threads),
    L2CT(test_sgd_momentum_weight_decay_matches_pytorch),
    L2CT(test_adam_and_amsgrad_match_pytorch),
    L2CT(test_optimiser_reset_is_a_fresh_start),
    L2CT(test_same_seed_gives_bit_identical_training),
    L2CT(test_training_reduces_the_loss),
    L2CT(test_rng_is_reproducible_and_portable),
    L2CT(test_rng_uniform_and_below_ranges),
    L2CT(test_batcher_covers_every_index_once_per_epoch),
    { NULL, NULL }
};
