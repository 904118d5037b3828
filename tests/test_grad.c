/* Finite-difference gradient checks of every differentiable operation, of a whole model, and of the
   tape's gradient plumbing (l2c_backward_from, l2c_tape_param_grads, accumulation).

   Method: a loss L = sum(out * R) with a fixed random R (softmax_xent: the loss itself); analytic
   gradients from the tape; numeric ones by central differences of L computed in double, over all
   elements or a random sample; |a - n| <= tol * max(floor, |a|, |n|) must hold for each. */

/* ---------------------------------------------------------------- the checker ----------------- */

#define GC_MAXARGS 4

typedef struct gc_arg {
    const char *name;
    int n, c, h, w;
    int is_input;          /* 1: a tape input (l2c_tape_input); 0: a parameter living outside the tape */
    int check;             /* compare its gradient */
    int external;          /* data/grad belong to someone else (a model) */
    float floor;           /* overrides the case's floor when > 0 */
    float *data, *grad;
    size_t size;
    l2c_tensor param;      /* header used for parameters */
} gc_arg;

typedef struct gc {
    const char *label;
    int nargs;
    gc_arg a[GC_MAXARGS];
    l2c_tensor *(*build)(l2c_tape *t, l2c_tensor **x, void *ctx);
    void *ctx;
    void (*reset)(void *ctx);   /* restores state a forward pass changes (running stats) */
    int scalar;                       /* the output is the loss itself */
    float h, tol, floor;
    int max_samples;
    int retry_h;     /* an element that disagrees is tried again at h/3 and h/10 (kinks vs rounding) */
    float *R;
    size_t nR;
} gc;

static void gc_setup(gc *g, const char *label, l2c_tensor *(*build)(l2c_tape *, l2c_tensor **, void *),
                     void *ctx)
{
    memset(g, 0, sizeof *g);
    g->label = label;
    g->build = build;
    g->ctx = ctx;
    g->h = 1e-2f;
    g->tol = 1e-2f;
    g->floor = 1.0f;
    g->max_samples = 60;
}

static gc_arg *gc_add(gc *g, const char *name, int n, int c, int h, int w, int is_input, int check)
{
    gc_arg *a = &g->a[g->nargs++];
    a->name = name;
    a->n = n; a->c = c; a->h = h; a->w = w;
    a->is_input = is_input;
    a->check = check;
    a->size = (size_t)n * c * h * w;
    a->data = (float *)calloc(a->size, sizeof(float));
    a->grad = (float *)calloc(a->size, sizeof(float));
    return a;
}

/* An argument viewing someone else's arrays (a model's params and grads). */
static gc_arg *gc_add_external(gc *g, const char *name, float *data, float *grad, size_t size)
{
    gc_arg *a = &g->a[g->nargs++];
    a->name = name;
    a->n = (int)size; a->c = a->h = a->w = 1;
    a->check = 1;
    a->external = 1;
    a->size = size;
    a->data = data;
    a->grad = grad;
    return a;
}

static void gc_free(gc *g)
{
    int i;
    for (i = 0; i < g->nargs; i++)
        if (!g->a[i].external) { free(g->a[i].data); free(g->a[i].grad); }
    free(g->R);
}

/* One forward pass; returns the loss (NAN on failure). With `grads`, also back-propagates. */
static double gc_forward(gc *g, l2c_tape *t, int grads)
{
    l2c_tensor *x[GC_MAXARGS] = { NULL, NULL, NULL, NULL }, *out;
    double loss = 0.0;
    size_t i, n;
    int k;
    l2c_tape_reset(t);
    if (g->reset) g->reset(g->ctx);
    for (k = 0; k < g->nargs; k++) {
        gc_arg *a = &g->a[k];
        if (a->is_input) {
            x[k] = l2c_tape_input(t, a->n, a->c, a->h, a->w, a->data, grads && a->check);
            if (!x[k]) return NAN;
        } else {
            a->param.n = a->n; a->param.c = a->c; a->param.h = a->h; a->param.w = a->w;
            a->param.data = a->data;
            a->param.grad = grads && a->check ? a->grad : NULL;
            x[k] = &a->param;
        }
    }
    out = g->build(t, x, g->ctx);
    if (!out) return NAN;
    n = l2c_tensor_size(out);
    if (g->scalar) {
        if (n != 1) return NAN;
        loss = out->data[0];
    } else {
        if (!g->R) {
            l2c_rng r;
            l2c_rng_seed(&r, 1234);
            g->R = (float *)malloc(n * sizeof(float));
            g->nR = n;
            fill_uniform(&r, g->R, n, -1.0f, 1.0f);
        }
        if (n != g->nR) return NAN;
        for (i = 0; i < n; i++) loss += (double)out->data[i] * g->R[i];
    }
    if (grads) {
        int rc = g->scalar ? l2c_backward(t, out) : l2c_backward_from(t, out, g->R);
        if (rc) return NAN;
        for (k = 0; k < g->nargs; k++)
            if (g->a[k].is_input && g->a[k].check) memcpy(g->a[k].grad, x[k]->grad, g->a[k].size * sizeof(float));
    }
    return loss;
}

typedef struct gc_result { int bad, checked; size_t worst; double worst_ratio, ana, num, max_num; } gc_result;

/* Compares analytic and numeric gradients of argument k at the elements idx[0..m). */
static gc_result gc_compare(gc *g, l2c_tape *t, int k, const size_t *idx, size_t m)
{
    gc_arg *a = &g->a[k];
    gc_result r;
    size_t s;
    memset(&r, 0, sizeof r);
    for (s = 0; s < m; s++) {
        size_t e = idx[s];
        float v = a->data[e], vp = v + g->h, vm = v - g->h;
        double lp, lm, num, ana = a->grad[e], err, lim;
        a->data[e] = vp; lp = gc_forward(g, t, 0);
        a->data[e] = vm; lm = gc_forward(g, t, 0);
        a->data[e] = v;
        num = (lp - lm) / ((double)vp - (double)vm);
        err = fabs(ana - num);
        lim = g->tol * fmax(a->floor > 0 ? a->floor : g->floor, fmax(fabs(ana), fabs(num)));
        if (g->retry_h && !(err <= lim)) {
            /* A step that straddles a relu kink gives a wrong central difference. Away from a kink
               the gradient equals both one-sided derivatives, so a kink on one side leaves the
               other side's difference (or a smaller central one) right; a wrong analytic gradient
               disagrees with all of them. */
            static const float div[3] = { 1.0f, 3.0f, 10.0f };
            double l0 = gc_forward(g, t, 0);
            int q, side;
            for (q = 0; q < 3 && !(err <= lim); q++)
                for (side = -1; side <= 1 && !(err <= lim); side++) {
                    float hq = g->h / div[q];
                    double n2, e2, l2;
                    if (q == 0 && side == 0) continue;   /* the central difference at h, done */
                    if (q == 2 && side != 0) continue;   /* one-sided at h/10: too noisy */
                    vp = side >= 0 ? v + hq : v;
                    vm = side <= 0 ? v - hq : v;
                    a->data[e] = vp; lp = side >= 0 ? gc_forward(g, t, 0) : l0;
                    a->data[e] = vm; lm = side <= 0 ? gc_forward(g, t, 0) : l0;
                    a->data[e] = v;
                    n2 = (lp - lm) / ((double)vp - (double)vm);
                    e2 = fabs(ana - n2);
                    l2 = g->tol * fmax(a->floor > 0 ? a->floor : g->floor, fmax(fabs(ana), fabs(n2)));
                    if (e2 / l2 < err / lim) { num = n2; err = e2; lim = l2; }
                }
        }
        r.checked++;
        if (!(err <= lim)) r.bad++;
        if (!(err / lim <= r.worst_ratio)) { r.worst_ratio = err / lim; r.worst = e; r.ana = ana; r.num = num; }
        if (fabs(num) > r.max_num) r.max_num = fabs(num);
    }
    return r;
}

/* Runs the whole check; the failures name the case, the argument and the worst element. */
static void gc_run(gc *g)
{
    l2c_tape *t = l2c_tape_new();
    l2c_rng r;
    double loss;
    int k;
    REQUIRE(t != NULL, "l2c_tape_new failed");
    l2c_rng_seed(&r, 99);
    for (k = 0; k < g->nargs; k++) if (!g->a[k].is_input && g->a[k].check) memset(g->a[k].grad, 0, g->a[k].size * sizeof(float));
    loss = gc_forward(g, t, 1);
    if (!(loss == loss)) {
        CHECK(0, "%s: forward/backward failed: %s", g->label, l2c_error());
        l2c_tape_free(t);
        return;
    }
    for (k = 0; k < g->nargs; k++) {
        gc_arg *a = &g->a[k];
        size_t *idx, m, i;
        gc_result res;
        int finite = 1;
        if (!a->check) continue;
        for (i = 0; i < a->size; i++) if (!isfinite(a->grad[i])) finite = 0;
        CHECK(finite, "%s: d/d%s has non-finite entries", g->label, a->name);
        idx = (size_t *)malloc(a->size * sizeof(size_t));
        for (i = 0; i < a->size; i++) idx[i] = i;
        m = a->size;
        if (m > (size_t)g->max_samples) {   /* a random sample, always with the first and last element */
            for (i = 1; i + 1 < (size_t)g->max_samples; i++) {
                size_t j = i + l2c_rng_below(&r, (uint32_t)(a->size - 1 - i));
                size_t tmp = idx[i]; idx[i] = idx[j]; idx[j] = tmp;
            }
            idx[g->max_samples - 1] = a->size - 1;
            m = (size_t)g->max_samples;
        }
        res = gc_compare(g, t, k, idx, m);
        CHECK(res.bad == 0, "%s: d/d%s: %d of %d elements off; worst element %lu (of %lu): analytic %.7g, numeric %.7g",
              g->label, a->name, res.bad, res.checked, (unsigned long)res.worst, (unsigned long)a->size, res.ana, res.num);
        CHECK(res.max_num > 0.1 * (a->floor > 0 ? a->floor : g->floor), "%s: d/d%s: gradients all tiny (max %.3g): the check would be vacuous",
              g->label, a->name, res.max_num);
        if (getenv("L2CT_VERBOSE"))
            printf("      %s d/d%s: %d checked, worst ratio %.3f (a %.6g n %.6g), max |n| %.3g\n", g->label, a->name,
                   res.checked, res.worst_ratio, res.ana, res.num, res.max_num);
        free(idx);
    }
    l2c_tape_free(t);
}

/* Input fillers. */
static void gc_fill(gc_arg *a, l2c_rng *r, float lo, float hi) { fill_uniform(r, a->data, a->size, lo, hi); }

/* Values with |x| in [0.1, 1]: far from relu's kink. */
static void gc_fill_away_from_zero(gc_arg *a, l2c_rng *r)
{
    size_t i;
    for (i = 0; i < a->size; i++) {
        float v = 0.1f + 0.9f * l2c_rng_uniform(r);
        a->data[i] = l2c_rng_u32(r) & 1 ? v : -v;
    }
}

/* A shuffled arithmetic progression: every pair at least `gap` apart (no max-pool ties). */
static void gc_fill_distinct(gc_arg *a, l2c_rng *r, float gap)
{
    size_t i;
    for (i = 0; i < a->size; i++) a->data[i] = ((float)i - (float)a->size / 2) * gap;
    for (i = a->size - 1; i > 0; i--) {
        size_t j = l2c_rng_below(r, (uint32_t)i + 1);
        float tmp = a->data[i]; a->data[i] = a->data[j]; a->data[j] = tmp;
    }
}

/* ---------------------------------------------------------------- builders -------------------- */

typedef struct gc_conv_ctx { int stride, pad; } gc_conv_ctx;

static l2c_tensor *gc_build_dense(l2c_tape *t, l2c_tensor **x, void *ctx)
{
    (void)ctx;
    return l2c_dense(t, x[0], x[1], x[2]);
}

static l2c_tensor *gc_build_conv(l2c_tape *t, l2c_tensor **x, void *ctx)
{
    const gc_conv_ctx *c = (const gc_conv_ctx *)ctx;
    return l2c_conv2d(t, x[0], x[1], x[2], c->stride, c->pad);
}

static l2c_tensor *gc_build_deconv(l2c_tape *t, l2c_tensor **x, void *ctx)
{
    const gc_conv_ctx *c = (const gc_conv_ctx *)ctx;
    return l2c_deconv2d(t, x[0], x[1], x[2], c->stride, c->pad);
}

typedef struct gc_bn_ctx {
    int mode;
    float rm[8], rv[8], rm0[8], rv0[8];
    int c;
} gc_bn_ctx;

static void gc_bn_reset(void *ctx)
{
    gc_bn_ctx *b = (gc_bn_ctx *)ctx;   /* the running stats are scratch state */
    memcpy(b->rm, b->rm0, sizeof b->rm);
    memcpy(b->rv, b->rv0, sizeof b->rv);
}

static l2c_tensor *gc_build_bn(l2c_tape *t, l2c_tensor **x, void *ctx)
{
    gc_bn_ctx *b = (gc_bn_ctx *)ctx;
    return l2c_batchnorm(t, x[0], x[1], x[2], b->rm, b->rv, b->mode, 0.1f, 1e-5f);
}

static l2c_tensor *gc_build_relu(l2c_tape *t, l2c_tensor **x, void *ctx) { (void)ctx; return l2c_relu(t, x[0]); }
static l2c_tensor *gc_build_tanh(l2c_tape *t, l2c_tensor **x, void *ctx) { (void)ctx; return l2c_tanh(t, x[0]); }

typedef struct gc_pool_ctx { int k, s, is_max; } gc_pool_ctx;

static l2c_tensor *gc_build_pool(l2c_tape *t, l2c_tensor **x, void *ctx)
{
    const gc_pool_ctx *p = (const gc_pool_ctx *)ctx;
    return p->is_max ? l2c_maxpool(t, x[0], p->k, p->s) : l2c_avgpool(t, x[0], p->k, p->s);
}

typedef struct gc_shape_ctx { int n, c, h, w; } gc_shape_ctx;

/* Reshape, then a conv so the new shape matters to the loss. */
static l2c_tensor *gc_build_reshape(l2c_tape *t, l2c_tensor **x, void *ctx)
{
    const gc_shape_ctx *s = (const gc_shape_ctx *)ctx;
    l2c_tensor *y = l2c_reshape(t, x[0], s->n, s->c, s->h, s->w);
    return y ? l2c_conv2d(t, y, x[1], NULL, 1, 0) : NULL;
}

/* Flatten, then a dense layer. */
static l2c_tensor *gc_build_flatten(l2c_tape *t, l2c_tensor **x, void *ctx)
{
    l2c_tensor *y = l2c_flatten(t, x[0]);
    (void)ctx;
    return y ? l2c_dense(t, y, x[1], NULL) : NULL;
}

static l2c_tensor *gc_build_add(l2c_tape *t, l2c_tensor **x, void *ctx) { (void)ctx; return l2c_add(t, x[0], x[1]); }
static l2c_tensor *gc_build_add_self(l2c_tape *t, l2c_tensor **x, void *ctx) { (void)ctx; return l2c_add(t, x[0], x[0]); }
static l2c_tensor *gc_build_scale(l2c_tape *t, l2c_tensor **x, void *ctx) { return l2c_scale(t, x[0], *(const float *)ctx); }

static l2c_tensor *gc_build_clamp(l2c_tape *t, l2c_tensor **x, void *ctx)
{
    const float *lh = (const float *)ctx;
    return l2c_clamp(t, x[0], lh[0], lh[1]);
}

typedef struct gc_xent_ctx { const uint8_t *labels; const int *map; int complement; } gc_xent_ctx;

static l2c_tensor *gc_build_xent(l2c_tape *t, l2c_tensor **x, void *ctx)
{
    const gc_xent_ctx *c = (const gc_xent_ctx *)ctx;
    return c->complement ? l2c_softmax_complement(t, x[0], c->labels, c->map) : l2c_softmax_xent(t, x[0], c->labels, c->map);
}

typedef struct gc_kl_ctx { const float *targets; float temperature; } gc_kl_ctx;

static l2c_tensor *gc_build_kl(l2c_tape *t, l2c_tensor **x, void *ctx)
{
    const gc_kl_ctx *c = (const gc_kl_ctx *)ctx;
    return l2c_softmax_kl(t, x[0], c->targets, c->temperature);
}

/* A chain through several operations: conv -> bn -> tanh -> avgpool -> flatten -> dense -> xent. */
typedef struct gc_chain_ctx { gc_bn_ctx bn; const uint8_t *labels; } gc_chain_ctx;

static l2c_tensor *gc_build_chain(l2c_tape *t, l2c_tensor **x, void *ctx)
{
    gc_chain_ctx *c = (gc_chain_ctx *)ctx;
    l2c_tensor *y = l2c_conv2d(t, x[0], x[1], NULL, 1, 1);
    if (y) y = l2c_batchnorm(t, y, x[2], x[3], c->bn.rm, c->bn.rv, L2C_TRAIN, 0.1f, 1e-5f);
    if (y) y = l2c_tanh(t, y);
    if (y) y = l2c_avgpool(t, y, 2, 2);
    if (y) y = l2c_flatten(t, y);
    if (y) y = l2c_scale(t, y, 3.0f);
    return y;
}

/* ---------------------------------------------------------------- op checks ------------------- */

static void test_gradcheck_detects_a_wrong_gradient(void)
{
    /* The checker itself must be able to fail: corrupt one analytic entry by 5% and compare. */
    gc g;
    l2c_tape *t = l2c_tape_new();
    gc_conv_ctx cc = { 1, 1 };
    l2c_rng r;
    size_t idx[1] = { 7 };
    gc_result res;
    l2c_rng_seed(&r, 5);
    gc_setup(&g, "self-test", gc_build_conv, &cc);
    gc_fill(gc_add(&g, "x", 1, 2, 4, 4, 1, 1), &r, -1, 1);
    gc_fill(gc_add(&g, "W", 2, 2, 3, 3, 0, 1), &r, -1, 1);
    CHECK(t != NULL && gc_forward(&g, t, 1) == gc_forward(&g, t, 0), "tape failed or forward passes differ");
    res = gc_compare(&g, t, 0, idx, 1);
    CHECK(res.bad == 0, "the correct gradient is rejected: analytic %g numeric %g", res.ana, res.num);
    g.a[0].grad[7] = g.a[0].grad[7] * 1.05f + (g.a[0].grad[7] >= 0 ? 0.05f : -0.05f);
    res = gc_compare(&g, t, 0, idx, 1);
    CHECK(res.bad == 1, "a gradient 5%% off passes: analytic %g numeric %g", res.ana, res.num);
    l2c_tape_free(t);
    gc_free(&g);
}

static void test_grad_dense(void)
{
    static const struct { int n, c, h, w, out, bias, wshape4; } cases[] = {
        { 3, 8, 1, 1, 5, 1, 0 }, { 4, 2, 3, 2, 3, 1, 1 }, { 2, 5, 1, 1, 1, 0, 0 }, { 1, 3, 2, 2, 7, 1, 0 },
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gc g;
        l2c_rng r;
        int in = cases[i].c * cases[i].h * cases[i].w;
        char label[96];
        snprintf(label, sizeof label, "dense %dx%dx%dx%d -> %d%s", cases[i].n, cases[i].c, cases[i].h, cases[i].w,
                 cases[i].out, cases[i].bias ? "" : " (no bias)");
        l2c_rng_seed(&r, 10 + i);
        gc_setup(&g, label, gc_build_dense, NULL);
        gc_fill(gc_add(&g, "x", cases[i].n, cases[i].c, cases[i].h, cases[i].w, 1, 1), &r, -1, 1);
        if (cases[i].wshape4) gc_fill(gc_add(&g, "W", cases[i].out, cases[i].c, cases[i].h, cases[i].w, 0, 1), &r, -1, 1);
        else gc_fill(gc_add(&g, "W", cases[i].out, in, 1, 1, 0, 1), &r, -1, 1);
        if (cases[i].bias) gc_fill(gc_add(&g, "b", cases[i].out, 1, 1, 1, 0, 1), &r, -1, 1);
        gc_run(&g);
        gc_free(&g);
    }
}

/* Gradient checks of conv2d or (transposed) deconv2d over a list of shapes. */
typedef struct gc_conv_case { int n, ic, h, w, oc, k, s, p, bias; } gc_conv_case;

static void gc_check_convs(const gc_conv_case *cs, size_t ncases, int transposed, uint64_t seed)
{
    size_t i;
    for (i = 0; i < ncases; i++) {
        const gc_conv_case *c = &cs[i];
        gc g;
        l2c_rng r;
        gc_conv_ctx cc;
        char label[96];
        cc.stride = c->s; cc.pad = c->p;
        snprintf(label, sizeof label, "%s n%d %dx%dx%d -> %d k%d s%d p%d%s", transposed ? "deconv2d" : "conv2d", c->n,
                 c->ic, c->h, c->w, c->oc, c->k, c->s, c->p, c->bias ? "" : " (no bias)");
        l2c_rng_seed(&r, seed + i);
        gc_setup(&g, label, transposed ? gc_build_deconv : gc_build_conv, &cc);
        gc_fill(gc_add(&g, "x", c->n, c->ic, c->h, c->w, 1, 1), &r, -1, 1);
        if (transposed) gc_fill(gc_add(&g, "W", c->ic, c->oc, c->k, c->k, 0, 1), &r, -1, 1);
        else gc_fill(gc_add(&g, "W", c->oc, c->ic, c->k, c->k, 0, 1), &r, -1, 1);
        if (c->bias) gc_fill(gc_add(&g, "b", c->oc, 1, 1, 1, 0, 1), &r, -1, 1);
        gc_run(&g);
        gc_free(&g);
    }
}

static void test_grad_conv2d(void)
{
    static const gc_conv_case cases[] = {
        { 2, 3, 5, 5, 4, 1, 1, 0, 1 },
        { 2, 2, 6, 6, 3, 3, 1, 1, 1 },
        { 2, 3, 7, 7, 2, 3, 2, 0, 1 },
        { 2, 2, 6, 6, 2, 5, 1, 2, 1 },
        { 3, 1, 9, 8, 3, 5, 3, 2, 1 },
        { 2, 2, 8, 8, 4, 3, 3, 1, 1 },
        { 1, 1, 5, 5, 1, 3, 2, 2, 1 },
        { 2, 4, 5, 6, 3, 3, 1, 0, 0 },
        { 2, 1, 7, 6, 2, 5, 2, 1, 1 },
        { 2, 3, 4, 4, 2, 1, 2, 0, 1 },
        { 9, 1, 5, 5, 2, 3, 2, 1, 1 },   /* 3x3 maps: products over groups of images, the last partial */
    };
    gc_check_convs(cases, sizeof cases / sizeof cases[0], 0, 20);
}

static void test_grad_deconv2d(void)
{
    static const gc_conv_case cases[] = {
        { 2, 2, 3, 3, 3, 3, 2, 0, 1 },   /* k3 s2 p0 */
        { 10, 2, 2, 2, 2, 3, 2, 0, 1 },  /* 2x2 maps: products over groups of images, the last partial */
        { 2, 2, 3, 3, 2, 5, 3, 1, 1 },   /* k5 s3 p1 */
        { 2, 3, 4, 4, 2, 2, 2, 1, 1 },   /* k2 s2 p1 */
        { 2, 2, 3, 4, 2, 4, 2, 1, 1 },   /* k4 s2 p1 */
        { 3, 4, 4, 4, 5, 3, 1, 1, 1 },   /* multi-channel batch */
        { 2, 3, 3, 2, 2, 1, 1, 0, 0 },   /* k1, no bias */
        { 1, 1, 2, 3, 1, 3, 3, 0, 1 },   /* stride = kernel */
    };
    gc_check_convs(cases, sizeof cases / sizeof cases[0], 1, 40);
}

static void test_grad_batchnorm(void)
{
    static const struct { int n, c, h, w, mode; } cases[] = {
        { 3, 2, 4, 3, L2C_TRAIN }, { 3, 2, 4, 3, L2C_EVAL }, { 3, 2, 4, 3, L2C_TRAIN_FROZEN_STATS },
        { 5, 4, 1, 1, L2C_TRAIN }, { 5, 4, 1, 1, L2C_EVAL }, { 5, 4, 1, 1, L2C_TRAIN_FROZEN_STATS },
        { 1, 3, 2, 2, L2C_TRAIN },  /* batch of one image: statistics over H, W */
    };
    static const char *names[] = { "EVAL", "TRAIN", "TRAIN_FROZEN_STATS" };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gc g;
        l2c_rng r;
        gc_bn_ctx bc;
        int ch;
        char label[96];
        snprintf(label, sizeof label, "batchnorm %s %dx%dx%dx%d", names[cases[i].mode], cases[i].n, cases[i].c,
                 cases[i].h, cases[i].w);
        memset(&bc, 0, sizeof bc);
        bc.mode = cases[i].mode;
        bc.c = cases[i].c;
        for (ch = 0; ch < 8; ch++) { bc.rm0[ch] = 0.3f - 0.2f * ch; bc.rv0[ch] = 0.5f + 0.7f * ch; }
        l2c_rng_seed(&r, 60 + i);
        gc_setup(&g, label, gc_build_bn, &bc);
        g.reset = gc_bn_reset;
        gc_fill(gc_add(&g, "x", cases[i].n, cases[i].c, cases[i].h, cases[i].w, 1, 1), &r, -1.5f, 2.0f);
        gc_fill(gc_add(&g, "gamma", cases[i].c, 1, 1, 1, 0, 1), &r, 0.5f, 1.5f);
        gc_fill(gc_add(&g, "beta", cases[i].c, 1, 1, 1, 0, 1), &r, -1, 1);
        g.h = 1e-2f;
        gc_run(&g);
        gc_free(&g);
    }
}

static void test_grad_relu(void)
{
    gc g;
    l2c_rng r;
    l2c_rng_seed(&r, 70);
    gc_setup(&g, "relu 2x3x4x5", gc_build_relu, NULL);
    gc_fill_away_from_zero(gc_add(&g, "x", 2, 3, 4, 5, 1, 1), &r);
    g.h = 1e-3f;
    gc_run(&g);
    gc_free(&g);
    /* as a parameter (not a tape input) */
    gc_setup(&g, "relu of a parameter 4x2", gc_build_relu, NULL);
    gc_fill_away_from_zero(gc_add(&g, "p", 4, 2, 1, 1, 0, 1), &r);
    g.h = 1e-3f;
    gc_run(&g);
    gc_free(&g);
}

static void test_grad_tanh(void)
{
    gc g;
    l2c_rng r;
    l2c_rng_seed(&r, 71);
    gc_setup(&g, "tanh 2x3x4x4", gc_build_tanh, NULL);
    gc_fill(gc_add(&g, "x", 2, 3, 4, 4, 1, 1), &r, -2.0f, 2.0f);
    gc_run(&g);
    gc_free(&g);
}

static void test_grad_pooling(void)
{
    static const struct { int n, c, h, w, k, s; } cases[] = {
        { 2, 2, 6, 6, 2, 2 }, { 2, 2, 4, 5, 2, 1 }, { 2, 2, 7, 7, 3, 2 }, { 1, 3, 5, 5, 2, 2 }, { 2, 1, 6, 7, 3, 2 },
    };
    size_t i;
    int is_max;
    for (is_max = 0; is_max < 2; is_max++)
        for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            gc g;
            l2c_rng r;
            gc_pool_ctx pc;
            char label[96];
            pc.k = cases[i].k; pc.s = cases[i].s; pc.is_max = is_max;
            snprintf(label, sizeof label, "%s %dx%dx%dx%d k%d s%d", is_max ? "maxpool" : "avgpool", cases[i].n,
                     cases[i].c, cases[i].h, cases[i].w, cases[i].k, cases[i].s);
            l2c_rng_seed(&r, 80 + i);
            gc_setup(&g, label, gc_build_pool, &pc);
            if (is_max) { gc_fill_distinct(gc_add(&g, "x", cases[i].n, cases[i].c, cases[i].h, cases[i].w, 1, 1), &r, 0.01f); g.h = 1e-3f; }
            else gc_fill(gc_add(&g, "x", cases[i].n, cases[i].c, cases[i].h, cases[i].w, 1, 1), &r, -1, 1);
            gc_run(&g);
            gc_free(&g);
        }
}

static void test_grad_reshape_flatten(void)
{
    gc g;
    l2c_rng r;
    gc_shape_ctx sc = { 3, 2, 5, 4 };   /* 2x3x4x5 (120) viewed as 3x2x5x4 */
    l2c_rng_seed(&r, 90);
    gc_setup(&g, "reshape 2x3x4x5 -> 3x2x5x4 then conv", gc_build_reshape, &sc);
    gc_fill(gc_add(&g, "x", 2, 3, 4, 5, 1, 1), &r, -1, 1);
    gc_fill(gc_add(&g, "W", 2, 2, 3, 3, 0, 1), &r, -1, 1);
    gc_run(&g);
    gc_free(&g);

    gc_setup(&g, "flatten 3x2x3x2 then dense", gc_build_flatten, NULL);
    gc_fill(gc_add(&g, "x", 3, 2, 3, 2, 1, 1), &r, -1, 1);
    gc_fill(gc_add(&g, "W", 4, 12, 1, 1, 0, 1), &r, -1, 1);
    gc_run(&g);
    gc_free(&g);
}

static void test_grad_add_scale_clamp(void)
{
    gc g;
    l2c_rng r;
    float s = -2.5f, lohi[2] = { -0.5f, 0.5f };
    size_t i;
    l2c_rng_seed(&r, 91);
    gc_setup(&g, "add input + parameter", gc_build_add, NULL);
    gc_fill(gc_add(&g, "a", 2, 3, 2, 2, 1, 1), &r, -1, 1);
    gc_fill(gc_add(&g, "b", 2, 3, 2, 2, 0, 1), &r, -1, 1);
    gc_run(&g);
    gc_free(&g);

    gc_setup(&g, "add x + x (same tensor twice)", gc_build_add_self, NULL);
    gc_fill(gc_add(&g, "x", 2, 2, 3, 1, 1, 1), &r, -1, 1);
    gc_run(&g);
    gc_free(&g);

    gc_setup(&g, "scale by -2.5", gc_build_scale, &s);
    gc_fill(gc_add(&g, "x", 2, 3, 3, 3, 1, 1), &r, -1, 1);
    gc_run(&g);
    gc_free(&g);

    gc_setup(&g, "clamp [-0.5, 0.5]", gc_build_clamp, lohi);
    {
        gc_arg *a = gc_add(&g, "x", 2, 3, 4, 4, 1, 1);
        gc_fill(a, &r, -1, 1);
        for (i = 0; i < a->size; i++)   /* keep 0.05 away from both bounds */
            if (fabsf(fabsf(a->data[i]) - 0.5f) < 0.05f) a->data[i] = a->data[i] > 0 ? 0.3f : -0.8f;
    }
    g.h = 1e-3f;
    gc_run(&g);
    gc_free(&g);
}

/* softmax_xent, or with complement softmax_complement (same arguments, same checks). */
static void gc_check_softmax_loss(int complement)
{
    static const uint8_t labels[6] = { 0, 4, 2, 2, 1, 3 };
    static const int map[5] = { 3, 0, 4, 1, 2 };
    gc_xent_ctx xc;
    int with_map;
    for (with_map = 0; with_map < 2; with_map++) {
        gc g;
        char name[64];
        l2c_rng r;
        l2c_rng_seed(&r, 92 + with_map + 10 * complement);
        xc.labels = labels;
        xc.map = with_map ? map : NULL;
        xc.complement = complement;
        snprintf(name, sizeof name, "%s 6x5%s", complement ? "softmax_complement" : "softmax_xent", with_map ? " with label_map" : "");
        gc_setup(&g, name, gc_build_xent, &xc);
        g.scalar = 1;
        g.floor = 0.1f;   /* d(mean loss)/d(logit) is at most 1/N */
        gc_fill(gc_add(&g, "logits", 6, 5, 1, 1, 1, 1), &r, -3, 3);
        gc_run(&g);
        gc_free(&g);
        /* logits of shape N x C x H x W are flattened to N x (C*H*W) classes */
        snprintf(name, sizeof name, "%s %s", complement ? "softmax_complement" : "softmax_xent",
                 with_map ? "6x1x5x1 with label_map" : "6x1x1x5");
        gc_setup(&g, name, gc_build_xent, &xc);
        g.scalar = 1;
        g.floor = 0.1f;
        gc_fill(gc_add(&g, "logits", 6, 1, with_map ? 5 : 1, with_map ? 1 : 5, 0, 1), &r, -3, 3);
        gc_run(&g);
        gc_free(&g);
    }
}

static void test_grad_softmax_xent(void) { gc_check_softmax_loss(0); }

/* softmax_kl against random target distributions (one of them one-hot) at temperatures 1 and 3. */
static void test_grad_softmax_kl(void)
{
    float targets[6 * 5];
    gc_kl_ctx kc;
    l2c_rng r;
    int i, j, pass;
    l2c_rng_seed(&r, 311);
    for (i = 0; i < 6; i++) {
        double sum = 0.0;
        for (j = 0; j < 5; j++) sum += targets[i * 5 + j] = i == 0 ? (j == 2) : 0.05f + l2c_rng_uniform(&r);
        for (j = 0; j < 5; j++) targets[i * 5 + j] = (float)(targets[i * 5 + j] / sum);
    }
    kc.targets = targets;
    for (pass = 0; pass < 2; pass++) {
        gc g;
        kc.temperature = pass ? 3.0f : 1.0f;
        gc_setup(&g, pass ? "softmax_kl 6x5 T=3" : "softmax_kl 6x5 T=1", gc_build_kl, &kc);
        g.scalar = 1;
        g.floor = 0.1f;
        gc_fill(gc_add(&g, "logits", 6, 5, 1, 1, 1, 1), &r, -3, 3);
        gc_run(&g);
        gc_free(&g);
    }
}
static void test_grad_softmax_complement(void) { gc_check_softmax_loss(1); }

static void test_grad_chain_of_ops(void)
{
    gc g;
    l2c_rng r;
    gc_chain_ctx cc;
    memset(&cc, 0, sizeof cc);
    cc.bn.rv0[0] = cc.bn.rv0[1] = cc.bn.rv0[2] = 1.0f;
    l2c_rng_seed(&r, 93);
    gc_setup(&g, "conv -> bn -> tanh -> avgpool -> flatten -> scale", gc_build_chain, &cc);
    g.reset = gc_bn_reset;
    gc_fill(gc_add(&g, "x", 2, 2, 4, 4, 1, 1), &r, -1, 1);
    gc_fill(gc_add(&g, "W", 3, 2, 3, 3, 0, 1), &r, -0.5f, 0.5f);
    gc_fill(gc_add(&g, "gamma", 3, 1, 1, 1, 0, 1), &r, 0.5f, 1.0f);
    gc_fill(gc_add(&g, "beta", 3, 1, 1, 1, 0, 1), &r, -0.5f, 0.5f);
    gc_run(&g);
    gc_free(&g);
}

/* ---------------------------------------------------------------- whole model ----------------- */

typedef struct gc_model_ctx { l2c_model *m; const uint8_t *labels; int mode; float scale; float *buffers0; } gc_model_ctx;

static void gc_model_reset(void *ctx)
{
    const gc_model_ctx *c = (const gc_model_ctx *)ctx;
    memcpy(c->m->buffers, c->buffers0, c->m->nbuffers * sizeof(float));
}

static l2c_tensor *gc_build_model(l2c_tape *t, l2c_tensor **x, void *ctx)
{
    const gc_model_ctx *c = (const gc_model_ctx *)ctx;
    l2c_tensor *y = l2c_model_forward(t, c->m, x[0], c->mode);
    if (!c->labels) return y;   /* loss sum(logits * R), computed in double by the checker */
    if (y) y = l2c_softmax_xent(t, y, c->labels, NULL);
    return y ? l2c_scale(t, y, c->scale) : NULL;
}

/* conv, BN, relu, avgpool, deconv, BN, tanh, maxpool-free path to a dense classifier. */
static l2c_model *gc_small_model(void)
{
    l2c_model *m = l2c_model_new(2, 6, 6);
    int rc = 0;
    if (!m) return NULL;
    rc |= l2c_model_conv(m, 4, 3, 1, 1);     /* 4x6x6 */
    rc |= l2c_model_batchnorm(m);
    rc |= l2c_model_relu(m);
    rc |= l2c_model_avgpool(m, 2, 2);        /* 4x3x3 */
    rc |= l2c_model_deconv(m, 3, 3, 2, 1);   /* 3x5x5 */
    rc |= l2c_model_batchnorm(m);
    rc |= l2c_model_tanh(m);
    rc |= l2c_model_flatten(m);              /* 75 */
    rc |= l2c_model_dense(m, 4);
    if (rc) { l2c_model_free(m); return NULL; }
    l2c_model_init(m, 3);
    {   /* keep the relu inputs away from their kink: beta of the first batch norm +-2 */
        const l2c_layer *bn = &m->layers[1];
        int ch;
        for (ch = 0; ch < bn->in_c; ch++) m->params[bn->bias + (size_t)ch] = ch % 2 ? -2.0f : 2.0f;
    }
    return m;
}

/* Modes EVAL, TRAIN, TRAIN_FROZEN_STATS with L = sum(logits * R); then TRAIN with the scaled
   cross-entropy through l2c_backward (a float scalar loss: coarser step, looser floor). */
static void test_grad_whole_model(void)
{
    static const uint8_t labels[3] = { 1, 3, 0 };
    int variant;
    for (variant = 0; variant < 4; variant++) {
        gc g;
        gc_model_ctx mc;
        l2c_rng r;
        l2c_model *m = gc_small_model();
        char label[64];
        size_t i;
        REQUIRE(m != NULL, "model construction failed: %s", l2c_error());
        /* non-trivial running statistics for the EVAL pass; small variances so that gradients
           through the two eval-mode batch norms are not tiny */
        for (i = 0; i < (size_t)m->nlayers; i++) {
            const l2c_layer *L = &m->layers[i];
            int ch;
            if (L->type != L2C_LAYER_BATCHNORM) continue;
            for (ch = 0; ch < L->in_c; ch++) {
                m->buffers[L->running + (size_t)ch] = 0.1f * (float)ch - 0.1f;
                m->buffers[L->running + (size_t)(L->in_c + ch)] = 0.04f + 0.02f * (float)ch;
            }
        }
        mc.m = m;
        mc.mode = variant < 3 ? variant : L2C_TRAIN;
        mc.labels = variant < 3 ? NULL : labels;
        mc.scale = 8.0f;
        mc.buffers0 = (float *)malloc(m->nbuffers * sizeof(float));
        memcpy(mc.buffers0, m->buffers, m->nbuffers * sizeof(float));
        snprintf(label, sizeof label, "whole model, mode %d%s", mc.mode, variant < 3 ? "" : ", cross-entropy loss");
        l2c_rng_seed(&r, 94);
        gc_setup(&g, label, gc_build_model, &mc);
        g.reset = gc_model_reset;
        g.h = 1e-2f;
        g.retry_h = 1;
        g.max_samples = 150;
        gc_fill(gc_add(&g, "input", 3, 2, 6, 6, 1, 1), &r, 0, 1);
        g.a[0].floor = 0.1f;
        if (variant == 3) { g.scalar = 1; g.floor = 0.5f; g.a[0].floor = 0.5f; }
        gc_add_external(&g, "params", m->params, m->grads, m->nparams);
        gc_run(&g);
        gc_free(&g);
        free(mc.buffers0);
        l2c_model_free(m);
    }
}

/* ---------------------------------------------------------------- tape plumbing --------------- */

static void test_backward_from_equals_backward_of_weighted_sum(void)
{
    l2c_tape *t = l2c_tape_new();
    l2c_rng r;
    float x[2 * 2 * 5 * 5], W[3 * 2 * 3 * 3], seed[2 * 3 * 3 * 3];
    float gx1[sizeof x / sizeof x[0]], gW1[sizeof W / sizeof W[0]];
    l2c_tensor Wt = { 3, 2, 3, 3, NULL, NULL }, *xi, *y, *flat, *loss;
    l2c_tensor St = { 1, (int)(sizeof seed / sizeof seed[0]), 1, 1, NULL, NULL };
    float *gW = (float *)calloc(sizeof W / sizeof W[0], sizeof(float));
    REQUIRE(t && gW, "allocation failed");
    l2c_rng_seed(&r, 100);
    fill_uniform(&r, x, sizeof x / sizeof x[0], -1, 1);
    fill_uniform(&r, W, sizeof W / sizeof W[0], -1, 1);
    fill_uniform(&r, seed, sizeof seed / sizeof seed[0], -1, 1);
    Wt.data = W; Wt.grad = gW;
    St.data = seed;

    xi = l2c_tape_input(t, 2, 2, 5, 5, x, 1);
    y = l2c_conv2d(t, xi, &Wt, NULL, 2, 1);   /* 2x3x3x3 */
    REQUIRE(y && l2c_tensor_size(y) == sizeof seed / sizeof seed[0], "conv failed: %s", l2c_error());
    CHECK(l2c_backward_from(t, y, seed) == 0, "l2c_backward_from failed: %s", l2c_error());
    memcpy(gx1, xi->grad, sizeof gx1);
    memcpy(gW1, gW, sizeof gW1);

    memset(gW, 0, sizeof W);
    l2c_tape_reset(t);
    xi = l2c_tape_input(t, 2, 2, 5, 5, x, 1);
    y = l2c_conv2d(t, xi, &Wt, NULL, 2, 1);
    flat = y ? l2c_reshape(t, y, 1, (int)l2c_tensor_size(y), 1, 1) : NULL;
    loss = flat ? l2c_dense(t, flat, &St, NULL) : NULL;   /* sum(y * seed) */
    REQUIRE(loss && l2c_tensor_size(loss) == 1, "loss failed: %s", l2c_error());
    CHECK(l2c_backward(t, loss) == 0, "l2c_backward failed: %s", l2c_error());
    CHECK(max_abs_diff(gx1, xi->grad, sizeof gx1 / sizeof gx1[0]) <= 1e-5f, "input grads differ by %g",
          (double)max_abs_diff(gx1, xi->grad, sizeof gx1 / sizeof gx1[0]));
    CHECK(max_abs_diff(gW1, gW, sizeof gW1 / sizeof gW1[0]) <= 1e-5f, "weight grads differ by %g",
          (double)max_abs_diff(gW1, gW, sizeof gW1 / sizeof gW1[0]));
    free(gW);
    l2c_tape_free(t);
}

static void test_tape_param_grads_off_keeps_model_grads_zero(void)
{
    static const uint8_t labels[3] = { 0, 1, 2 };
    l2c_model *m = gc_small_model();
    l2c_tape *t = l2c_tape_new();
    l2c_rng r;
    float x[3 * 2 * 6 * 6], gx_ref[3 * 2 * 6 * 6];
    l2c_tensor *xi, *y;
    size_t i, nonzero = 0;
    REQUIRE(m && t, "setup failed");
    l2c_rng_seed(&r, 101);
    fill_uniform(&r, x, sizeof x / sizeof x[0], 0, 1);

    /* reference: with parameter gradients */
    xi = l2c_tape_input(t, 3, 2, 6, 6, x, 1);
    y = l2c_model_forward(t, m, xi, L2C_TRAIN_FROZEN_STATS);
    y = y ? l2c_softmax_xent(t, y, labels, NULL) : NULL;
    REQUIRE(y && l2c_backward(t, y) == 0, "reference pass failed: %s", l2c_error());
    memcpy(gx_ref, xi->grad, sizeof gx_ref);
    for (i = 0; i < m->nparams; i++) nonzero += m->grads[i] != 0.0f;
    CHECK(nonzero > m->nparams / 2, "only %lu of %lu parameter grads non-zero in the reference pass",
          (unsigned long)nonzero, (unsigned long)m->nparams);

    l2c_model_zero_grad(m);
    l2c_tape_reset(t);
    l2c_tape_param_grads(t, 0);
    xi = l2c_tape_input(t, 3, 2, 6, 6, x, 1);
    y = l2c_model_forward(t, m, xi, L2C_TRAIN_FROZEN_STATS);
    y = y ? l2c_softmax_xent(t, y, labels, NULL) : NULL;
    REQUIRE(y && l2c_backward(t, y) == 0, "pass without parameter grads failed: %s", l2c_error());
    for (nonzero = 0, i = 0; i < m->nparams; i++) nonzero += m->grads[i] != 0.0f;
    CHECK(nonzero == 0, "%lu model grads became non-zero with parameter gradients off", (unsigned long)nonzero);
    CHECK(max_abs_diff(gx_ref, xi->grad, sizeof gx_ref / sizeof gx_ref[0]) <= 1e-6f,
          "input grads differ from the reference by %g", (double)max_abs_diff(gx_ref, xi->grad, sizeof gx_ref / sizeof gx_ref[0]));
    CHECK(fabsf(xi->grad[0]) + fabsf(xi->grad[17]) + fabsf(xi->grad[100]) > 0.0f, "input grads are zero");
    l2c_tape_free(t);
    l2c_model_free(m);
}

/* The documentation says parameter gradients are skipped for "tensors not created by the tape",
   which includes heap tensors passed straight to an operation. */
static void test_tape_param_grads_off_leaves_heap_tensors_alone(void)
{
    l2c_tape *t = l2c_tape_new();
    l2c_tensor *W = l2c_tensor_new(3, 4, 1, 1, 1), *x, *y;
    float xs[2 * 4] = { 1, 2, 3, 4, 0.5f, -2, 1, 3 }, seed[2 * 3] = { 1, 1, 1, 1, 1, 1 };
    size_t i;
    REQUIRE(t && W, "setup failed");
    for (i = 0; i < 12; i++) W->data[i] = 0.1f * (float)i;
    l2c_tape_param_grads(t, 0);
    x = l2c_tape_input(t, 2, 4, 1, 1, xs, 1);
    y = l2c_dense(t, x, W, NULL);
    REQUIRE(y && l2c_backward_from(t, y, seed) == 0, "dense failed: %s", l2c_error());
    CHECK(x->grad[0] != 0.0f, "no input gradient");
    /* documented: the switch concerns model parameters only; a tensor of the caller's keeps its grad */
    for (i = 0; i < 12; i++)
        CHECK_NEAR(W->grad[i], xs[i % 4] + xs[4 + i % 4], 1e-5);
    l2c_tensor_free(W);
    l2c_tape_free(t);
}

static void test_backward_accumulates_into_grads(void)
{
    static const uint8_t labels[3] = { 2, 0, 1 };
    l2c_model *m = gc_small_model();
    l2c_tape *t = l2c_tape_new();
    l2c_rng r;
    float x[3 * 2 * 6 * 6], *g1;
    l2c_tensor *xi, *y;
    int pass;
    REQUIRE(m && t, "setup failed");
    g1 = (float *)malloc(m->nparams * sizeof(float));
    l2c_rng_seed(&r, 102);
    fill_uniform(&r, x, sizeof x / sizeof x[0], 0, 1);
    for (pass = 0; pass < 2; pass++) {
        l2c_tape_reset(t);
        xi = l2c_tape_input(t, 3, 2, 6, 6, x, 0);
        y = l2c_model_forward(t, m, xi, L2C_TRAIN_FROZEN_STATS);
        y = y ? l2c_softmax_xent(t, y, labels, NULL) : NULL;
        REQUIRE(y && l2c_backward(t, y) == 0, "pass failed: %s", l2c_error());
        if (pass == 0) memcpy(g1, m->grads, m->nparams * sizeof(float));
    }
    {
        size_t i, worst = 0;
        float err = 0.0f;
        for (i = 0; i < m->nparams; i++) {
            float e = fabsf(m->grads[i] - 2.0f * g1[i]);
            if (e > err) { err = e; worst = i; }
        }
        CHECK(err <= 1e-5f * (1.0f + fabsf(g1[worst])), "after two backward passes grad[%lu] = %g, expected 2 x %g",
              (unsigned long)worst, (double)m->grads[worst], (double)g1[worst]);
    }
    l2c_model_zero_grad(m);
    {
        size_t i, nz = 0;
        for (i = 0; i < m->nparams; i++) nz += m->grads[i] != 0.0f;
        CHECK(nz == 0, "l2c_model_zero_grad left %lu non-zero grads", (unsigned long)nz);
    }
    free(g1);
    l2c_tape_free(t);
    l2c_model_free(m);
}

/* Node outputs get their grads zeroed lazily, just before the first gradient lands in them. Checks
   what that must preserve, on a reused arena full of stale gradients: a tensor read by several
   nodes sums all their contributions; a branch that does not lead to the seeded output (recorded
   after it, too) contributes nothing and reads zero; a second backward pass on the same tape gives
   what it gave when all grads were zeroed up front. */
static void test_lazy_grad_zeroing_keeps_backward_semantics(void)
{
    l2c_tape *t = l2c_tape_new();
    float xs[6] = { -1.5f, -0.3f, 0.0f, 0.2f, 0.9f, 2.0f }, seed[6];
    int pass, i;
    REQUIRE(t, "tape");
    for (pass = 0; pass < 2; pass++) {
        l2c_tensor *x, *y, *a, *b, *dead, *dead2;
        l2c_tape_reset(t);
        x = l2c_tape_input(t, 1, 1, 2, 3, xs, 1);
        y = x ? l2c_tanh(t, x) : NULL;            /* read by a, b and dead */
        a = y ? l2c_scale(t, y, 2.0f) : NULL;
        b = a ? l2c_add(t, y, a) : NULL;          /* b = 3 tanh(x) */
        dead = b ? l2c_scale(t, y, 5.0f) : NULL;  /* recorded after b, not part of it */
        dead2 = dead ? l2c_relu(t, dead) : NULL;
        REQUIRE(dead2, "building the tape failed: %s", l2c_error());
        /* pass 0 leaves large stale gradients in the arena that pass 1 reuses */
        for (i = 0; i < 6; i++) seed[i] = pass == 0 ? 1000.0f : 1.0f;
        REQUIRE(l2c_backward_from(t, b, seed) == 0, "backward: %s", l2c_error());
        if (pass == 0) continue;
        for (i = 0; i < 6; i++) {
            float th = tanhf(xs[i]);
            CHECK_NEAR(y->grad[i], 3.0f, 1e-6);
            CHECK_NEAR(a->grad[i], 1.0f, 1e-6);
            CHECK_NEAR(x->grad[i], 3.0f * (1.0f - th * th), 1e-5);
            CHECK(dead->grad[i] == 0.0f && dead2->grad[i] == 0.0f, "dead branch grad [%d]: %g, %g, expected 0",
                  i, (double)dead->grad[i], (double)dead2->grad[i]);
        }
        /* a second pass replays every node on top of the grads of the first: b 2, a 1 + 2, y 3 + 2 +
           2 * 3 = 11, x (3 + 11) tanh' */
        REQUIRE(l2c_backward_from(t, b, seed) == 0, "second backward: %s", l2c_error());
        for (i = 0; i < 6; i++) {
            float th = tanhf(xs[i]);
            CHECK_NEAR(y->grad[i], 11.0f, 1e-5);
            CHECK_NEAR(x->grad[i], 14.0f * (1.0f - th * th), 1e-5);
            CHECK(dead->grad[i] == 0.0f, "dead branch grad after two passes [%d]: %g", i, (double)dead->grad[i]);
        }
    }
    l2c_tape_free(t);
}

/* The first backward to reach a gradient may write it whole instead of zeroing and adding (relu,
   batch norm, 2x2 average pooling). Here z feeds two relus: the later one (first in backward)
   writes z->grad, the earlier one must add to it; the arena is full of stale gradients first. */
static void test_overwriting_backward_is_followed_by_adding(void)
{
    l2c_tape *t = l2c_tape_new();
    float xs[8] = { -1.5f, -0.3f, 0.1f, 0.2f, 0.9f, 2.0f, -0.7f, 0.4f }, seed[8];
    int pass, i;
    REQUIRE(t, "tape");
    for (pass = 0; pass < 2; pass++) {
        l2c_tensor *x, *z, *r1, *r2, *p1, *b;
        l2c_tape_reset(t);
        x = l2c_tape_input(t, 1, 2, 2, 2, xs, 1);
        z = x ? l2c_tanh(t, x) : NULL;
        r1 = z ? l2c_relu(t, z) : NULL;
        r2 = r1 ? l2c_relu(t, z) : NULL;
        b = r2 ? l2c_add(t, r1, r2) : NULL;
        p1 = b ? l2c_avgpool(t, b, 2, 2) : NULL;   /* 2x2 map: one output per channel */
        REQUIRE(p1, "building the tape failed: %s", l2c_error());
        for (i = 0; i < 2; i++) seed[i] = pass == 0 ? 1000.0f : 4.0f;
        REQUIRE(l2c_backward_from(t, p1, seed) == 0, "backward: %s", l2c_error());
        if (pass == 0) continue;
        for (i = 0; i < 8; i++) {   /* d/dz = 4 * 1/4 * (1 + 1) where z > 0 */
            float th = tanhf(xs[i]), want = th > 0.0f ? 2.0f : 0.0f;
            CHECK_NEAR(z->grad[i], want, 1e-6);
            CHECK_NEAR(x->grad[i], want * (1.0f - th * th), 1e-6);
        }
    }
    l2c_tape_free(t);
}

static const l2ct_case l2ct_grad_cases[] = {
    L2CT(test_gradcheck_detects_a_wrong_gradient),
    L2CT(test_grad_dense),
    L2CT(test_grad_conv2d),
    L2CT(test_grad_deconv2d),
    L2CT(test_grad_batchnorm),
    L2CT(test_grad_relu),
    L2CT(test_grad_tanh),
    L2CT(test_grad_pooling),
    L2CT(test_grad_reshape_flatten),
    L2CT(test_grad_add_scale_clamp),
    L2CT(test_grad_softmax_xent),
    L2CT(test_grad_softmax_complement),
    L2CT(test_grad_softmax_kl),
    L2CT(test_grad_chain_of_ops),
    L2CT(test_grad_whole_model),
    L2CT(test_backward_from_equals_backward_of_weighted_sum),
    L2CT(test_tape_param_grads_off_keeps_model_grads_zero),
    L2CT(test_tape_param_grads_off_leaves_heap_tensors_alone),
    L2CT(test_backward_accumulates_into_grads),
    L2CT(test_lazy_grad_zeroing_keeps_backward_semantics),
    L2CT(test_overwriting_backward_is_followed_by_adding),
    { NULL, NULL }
};
