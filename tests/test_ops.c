/* Forward values of the operations against hand-computed numbers and naive loops, batch-norm
   behaviour, initialisation bounds, the gemm kernel, and bad arguments. */

/* ---------------------------------------------------------------- naive references ------------ */

/* PyTorch Conv2d: y[n][o][i][j] = b[o] + sum x[n][c][i*s-p+a][j*s-p+b'] W[o][c][a][b']. */
static void naive_conv(const float *x, int n, int ic, int h, int w, const float *W, const float *b, int oc, int k,
                       int s, int p, float *y, int oh, int ow)
{
    int in, o, i, j, c, a, bb;
    for (in = 0; in < n; in++)
        for (o = 0; o < oc; o++)
            for (i = 0; i < oh; i++)
                for (j = 0; j < ow; j++) {
                    double acc = b ? b[o] : 0.0;
                    for (c = 0; c < ic; c++)
                        for (a = 0; a < k; a++)
                            for (bb = 0; bb < k; bb++) {
                                int yy = i * s - p + a, xx = j * s - p + bb;
                                if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
                                acc += (double)x[((size_t)(in * ic + c) * h + yy) * w + xx] * W[((size_t)(o * ic + c) * k + a) * k + bb];
                            }
                    y[((size_t)(in * oc + o) * oh + i) * ow + j] = (float)acc;
                }
}

/* PyTorch ConvTranspose2d (W: IN x OUT x K x K): every input pixel scatters x * W into the output
   at (i*s - p + a, j*s - p + b'). */
static void naive_deconv(const float *x, int n, int ic, int h, int w, const float *W, const float *b, int oc, int k,
                         int s, int p, float *y, int oh, int ow)
{
    int in, o, i, j, c, a, bb;
    double *acc = (double *)calloc((size_t)n * oc * oh * ow, sizeof(double));
    size_t q;
    for (in = 0; in < n; in++)
        for (c = 0; c < ic; c++)
            for (i = 0; i < h; i++)
                for (j = 0; j < w; j++)
                    for (o = 0; o < oc; o++)
                        for (a = 0; a < k; a++)
                            for (bb = 0; bb < k; bb++) {
                                int yy = i * s - p + a, xx = j * s - p + bb;
                                if (yy < 0 || yy >= oh || xx < 0 || xx >= ow) continue;
                                acc[((size_t)(in * oc + o) * oh + yy) * ow + xx] +=
                                    (double)x[((size_t)(in * ic + c) * h + i) * w + j] * W[((size_t)(c * oc + o) * k + a) * k + bb];
                            }
    for (q = 0; q < (size_t)n * oc * oh * ow; q++) y[q] = (float)(acc[q] + (b ? b[(q / ((size_t)oh * ow)) % (size_t)oc] : 0.0f));
    free(acc);
}

static l2c_tensor view_tensor(int n, int c, int h, int w, float *data)
{
    l2c_tensor t;
    t.n = n; t.c = c; t.h = h; t.w = w; t.data = data; t.grad = NULL;
    return t;
}

/* ---------------------------------------------------------------- conv / deconv forward -------- */

static void test_conv2d_hand_computed_values(void)
{
    l2c_tape *t = l2c_tape_new();
    float x[16], ones[9], w19[9], shift[9] = { 0, 0, 0, 0, 0, 1, 0, 0, 0 }, bias = 0.5f;
    l2c_tensor X, W, B, *y;
    int i;
    REQUIRE(t, "tape");
    for (i = 0; i < 16; i++) x[i] = (float)(i + 1);
    for (i = 0; i < 9; i++) { ones[i] = 1.0f; w19[i] = (float)(i + 1); }
    X = view_tensor(1, 1, 4, 4, x);
    B = view_tensor(1, 1, 1, 1, &bias);

    W = view_tensor(1, 1, 3, 3, ones);   /* stride 2, pad 1: 2x2 sums of the clipped windows, + 0.5 */
    y = l2c_conv2d(t, &X, &W, &B, 2, 1);
    REQUIRE(y, "conv failed: %s", l2c_error());
    CHECK(y->n == 1 && y->c == 1 && y->h == 2 && y->w == 2, "shape %dx%dx%dx%d", y->n, y->c, y->h, y->w);
    CHECK_NEAR(y->data[0], 14.5, 1e-5);
    CHECK_NEAR(y->data[1], 30.5, 1e-5);
    CHECK_NEAR(y->data[2], 57.5, 1e-5);
    CHECK_NEAR(y->data[3], 99.5, 1e-5);

    W = view_tensor(1, 1, 3, 3, w19);    /* no padding, stride 1 */
    y = l2c_conv2d(t, &X, &W, NULL, 1, 0);
    REQUIRE(y && y->h == 2 && y->w == 2, "conv failed: %s", l2c_error());
    CHECK_NEAR(y->data[0], 348, 1e-4);
    CHECK_NEAR(y->data[1], 393, 1e-4);
    CHECK_NEAR(y->data[2], 528, 1e-4);
    CHECK_NEAR(y->data[3], 573, 1e-4);

    W = view_tensor(1, 1, 3, 3, shift);  /* cross-correlation: y[i][j] = x[i][j+1] (0 past the edge) */
    y = l2c_conv2d(t, &X, &W, NULL, 1, 1);
    REQUIRE(y && y->h == 4 && y->w == 4, "conv failed: %s", l2c_error());
    for (i = 0; i < 16; i++) CHECK_NEAR(y->data[i], i % 4 == 3 ? 0.0f : x[i + 1], 0);
    l2c_tape_free(t);
}

/* One shape of conv2d or deconv2d (transposed) checked against the naive loops above. */
typedef struct conv_case { int n, ic, h, w, oc, k, s, p; } conv_case;

static void check_conv_against_naive(const conv_case *cs, size_t ncases, int transposed, uint64_t seed)
{
    const char *op = transposed ? "deconv" : "conv";
    size_t i;
    l2c_tape *t = l2c_tape_new();
    REQUIRE(t, "tape");
    for (i = 0; i < ncases; i++) {
        int n = cs[i].n, ic = cs[i].ic, h = cs[i].h, w = cs[i].w, oc = cs[i].oc, k = cs[i].k, s = cs[i].s, p = cs[i].p;
        int oh = transposed ? (h - 1) * s - 2 * p + k : (h + 2 * p - k) / s + 1;
        int ow = transposed ? (w - 1) * s - 2 * p + k : (w + 2 * p - k) / s + 1;
        size_t nx = (size_t)n * ic * h * w, nw = (size_t)oc * ic * k * k, ny = (size_t)n * oc * oh * ow;
        float *x = (float *)malloc(nx * sizeof(float)), *W = (float *)malloc(nw * sizeof(float));
        float *b = (float *)malloc((size_t)oc * sizeof(float)), *ref = (float *)malloc(ny * sizeof(float));
        l2c_tensor X = view_tensor(n, ic, h, w, x), Bt = view_tensor(oc, 1, 1, 1, b), *y;
        l2c_tensor Wt = transposed ? view_tensor(ic, oc, k, k, W) : view_tensor(oc, ic, k, k, W);
        l2c_rng r;
        l2c_rng_seed(&r, seed + i);
        fill_uniform(&r, x, nx, -1, 1);
        fill_uniform(&r, W, nw, -1, 1);
        fill_uniform(&r, b, (size_t)oc, -1, 1);
        if (transposed) naive_deconv(x, n, ic, h, w, W, b, oc, k, s, p, ref, oh, ow);
        else naive_conv(x, n, ic, h, w, W, b, oc, k, s, p, ref, oh, ow);
        l2c_tape_reset(t);
        y = transposed ? l2c_deconv2d(t, &X, &Wt, &Bt, s, p) : l2c_conv2d(t, &X, &Wt, &Bt, s, p);
        CHECK(y && y->n == n && y->c == oc && y->h == oh && y->w == ow, "case %lu: %s failed or wrong shape: %s",
              (unsigned long)i, op, l2c_error());
        if (y) CHECK(max_abs_diff(y->data, ref, ny) <= 1e-4f, "case %lu (k%d s%d p%d): max difference %g from the naive %s",
                     (unsigned long)i, k, s, p, (double)max_abs_diff(y->data, ref, ny), op);
        free(x); free(W); free(b); free(ref);
    }
    l2c_tape_free(t);
}

static void test_conv2d_matches_naive_loops(void)
{
    static const conv_case cases[] = {
        { 3, 2, 7, 6, 4, 3, 1, 1 }, { 2, 3, 9, 9, 2, 5, 2, 2 }, { 2, 1, 28, 28, 4, 3, 3, 1 }, { 1, 4, 5, 5, 3, 1, 1, 0 },
        { 2, 2, 8, 7, 3, 4, 2, 1 }, { 4, 3, 6, 6, 5, 3, 2, 0 }, { 1, 2, 11, 10, 2, 5, 3, 1 },
        { 9, 2, 5, 5, 3, 3, 2, 1 },   /* 3x3 maps: groups of 7 images side by side, then 2 */
        { 2, 2, 11, 20, 3, 3, 1, 1 }, /* rows of 20: 8-float pieces, a tail, padding */
    };
    check_conv_against_naive(cases, sizeof cases / sizeof cases[0], 0, 200);
}

static void test_deconv2d_output_sizes(void)
{
    static const struct { int h, k, s, p, want; } cases[] = {
        { 2, 3, 2, 0, 5 }, { 5, 5, 3, 1, 15 }, { 15, 2, 2, 1, 28 }, { 7, 4, 2, 1, 14 },
        { 3, 3, 2, 0, 7 }, { 3, 5, 3, 1, 9 }, { 4, 2, 2, 1, 6 }, { 5, 4, 2, 1, 10 }, { 1, 3, 1, 1, 1 },
    };
    size_t i;
    l2c_tape *t = l2c_tape_new();
    REQUIRE(t, "tape");
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        l2c_tensor *x = l2c_tape_input(t, 2, 3, cases[i].h, cases[i].h + 1, NULL, 0), *y;
        l2c_tensor *W = l2c_tape_input(t, 3, 2, cases[i].k, cases[i].k, NULL, 0);
        l2c_model *m = l2c_model_new(3, cases[i].h, cases[i].h + 1);
        int c = 0, h = 0, w = 0;
        REQUIRE(x && W && m, "setup");
        memset(x->data, 0, l2c_tensor_size(x) * sizeof(float));
        memset(W->data, 0, l2c_tensor_size(W) * sizeof(float));
        y = l2c_deconv2d(t, x, W, NULL, cases[i].s, cases[i].p);
        CHECK(y && y->n == 2 && y->c == 2 && y->h == cases[i].want && y->w == cases[i].want + cases[i].s,
              "deconv k%d s%d p%d on %d: got %dx%d, want %dx%d (%s)", cases[i].k, cases[i].s, cases[i].p, cases[i].h,
              y ? y->h : -1, y ? y->w : -1, cases[i].want, cases[i].want + cases[i].s, l2c_error());
        CHECK(l2c_model_deconv(m, 2, cases[i].k, cases[i].s, cases[i].p) == 0, "l2c_model_deconv: %s", l2c_error());
        l2c_model_output_shape(m, &c, &h, &w);
        CHECK(c == 2 && h == cases[i].want && w == cases[i].want + cases[i].s, "model deconv output %dx%dx%d", c, h, w);
        l2c_model_free(m);
    }
    l2c_tape_free(t);
}

static void test_generator_shapes_map_28_to_28(void)
{
    /* The paper's generator: conv3 s3 p1, maxpool2, conv3 s2 p1, maxpool2 s1, deconv k3 s2, deconv k5 s3 p1,
       deconv k2 s2 p1: 28 -> 10 -> 5 -> 3 -> 2 -> 5 -> 15 -> 28. */
    static const int want[] = { 10, 5, 3, 2, 5, 15, 28 };
    l2c_model *m = l2c_model_new(1, 28, 28);
    int c, h, w, i = 0;
    REQUIRE(m, "model");
    CHECK(l2c_model_conv(m, 4, 3, 3, 1) == 0, "%s", l2c_error());    l2c_model_output_shape(m, &c, &h, &w); CHECK(h == want[i] && w == want[i], "layer %d: %dx%d", i, h, w); i++;
    CHECK(l2c_model_maxpool(m, 2, 2) == 0, "%s", l2c_error());       l2c_model_output_shape(m, &c, &h, &w); CHECK(h == want[i] && w == want[i], "layer %d: %dx%d", i, h, w); i++;
    CHECK(l2c_model_conv(m, 4, 3, 2, 1) == 0, "%s", l2c_error());    l2c_model_output_shape(m, &c, &h, &w); CHECK(h == want[i] && w == want[i], "layer %d: %dx%d", i, h, w); i++;
    CHECK(l2c_model_maxpool(m, 2, 1) == 0, "%s", l2c_error());       l2c_model_output_shape(m, &c, &h, &w); CHECK(h == want[i] && w == want[i], "layer %d: %dx%d", i, h, w); i++;
    CHECK(l2c_model_deconv(m, 4, 3, 2, 0) == 0, "%s", l2c_error());  l2c_model_output_shape(m, &c, &h, &w); CHECK(h == want[i] && w == want[i], "layer %d: %dx%d", i, h, w); i++;
    CHECK(l2c_model_deconv(m, 4, 5, 3, 1) == 0, "%s", l2c_error());  l2c_model_output_shape(m, &c, &h, &w); CHECK(h == want[i] && w == want[i], "layer %d: %dx%d", i, h, w); i++;
    CHECK(l2c_model_deconv(m, 1, 2, 2, 1) == 0, "%s", l2c_error());  l2c_model_output_shape(m, &c, &h, &w); CHECK(c == 1 && h == want[i] && w == want[i], "layer %d: %dx%dx%d", i, c, h, w);
    l2c_model_free(m);
}

static void test_deconv2d_hand_computed_values(void)
{
    static const float s2[16] = { 1, 10, 2, 20, 100, 1000, 200, 2000, 3, 30, 4, 40, 300, 3000, 400, 4000 };
    static const float s1[9] = { 1, 12, 20, 103, 1234, 2040, 300, 3400, 4000 };
    static const float s2p1[4] = { 1000, 200, 30, 4 };
    float x[4] = { 1, 2, 3, 4 }, w[4] = { 1, 10, 100, 1000 }, bias = 0.25f;
    l2c_tensor X = view_tensor(1, 1, 2, 2, x), W = view_tensor(1, 1, 2, 2, w), B = view_tensor(1, 1, 1, 1, &bias), *y;
    l2c_tape *t = l2c_tape_new();
    int i;
    REQUIRE(t, "tape");
    y = l2c_deconv2d(t, &X, &W, NULL, 2, 0);   /* non-overlapping: each pixel stamps x * W */
    REQUIRE(y && y->h == 4 && y->w == 4, "deconv s2 failed: %s", l2c_error());
    for (i = 0; i < 16; i++) CHECK_NEAR(y->data[i], s2[i], 0);
    y = l2c_deconv2d(t, &X, &W, &B, 1, 0);     /* overlapping stamps, plus bias */
    REQUIRE(y && y->h == 3 && y->w == 3, "deconv s1 failed: %s", l2c_error());
    for (i = 0; i < 9; i++) CHECK_NEAR(y->data[i], s1[i] + 0.25f, 1e-3);
    y = l2c_deconv2d(t, &X, &W, NULL, 2, 1);   /* padding crops one pixel each side of the s2 result */
    REQUIRE(y && y->h == 2 && y->w == 2, "deconv s2 p1 failed: %s", l2c_error());
    for (i = 0; i < 4; i++) CHECK_NEAR(y->data[i], s2p1[i], 0);
    l2c_tape_free(t);
}

static void test_deconv2d_matches_naive_loops(void)
{
    static const conv_case cases[] = {
        { 2, 3, 3, 3, 2, 3, 2, 0 }, { 2, 2, 5, 5, 3, 5, 3, 1 }, { 3, 4, 4, 5, 2, 2, 2, 1 }, { 2, 2, 7, 7, 3, 4, 2, 1 },
        { 1, 5, 2, 2, 4, 3, 2, 0 }, { 2, 3, 4, 4, 5, 3, 1, 1 }, { 1, 1, 3, 2, 1, 1, 1, 0 },
        { 11, 3, 2, 2, 4, 3, 2, 0 },  /* 2x2 maps: groups of 8 images side by side, then 3 */
    };
    check_conv_against_naive(cases, sizeof cases / sizeof cases[0], 1, 300);
}

static void test_pooling_hand_computed_values(void)
{
    static const float max22[4] = { 6, 8, 14, 16 }, avg22[4] = { 3.5f, 5.5f, 11.5f, 13.5f };
    static const float max32[4] = { 13, 15, 23, 25 }, avg32[4] = { 7, 9, 17, 19 };
    static const float max21[4] = { 5, 6, 8, 9 }, avg21[4] = { 3, 4, 6, 7 };
    float a16[16], a25[25], a9[9], neg[4] = { -3, -1, -2, -4 };
    l2c_tensor X16, X25, X9, XN, *y;
    l2c_tape *t = l2c_tape_new();
    int i;
    REQUIRE(t, "tape");
    for (i = 0; i < 25; i++) { a25[i] = (float)(i + 1); if (i < 16) a16[i] = (float)(i + 1); if (i < 9) a9[i] = (float)(i + 1); }
    X16 = view_tensor(1, 1, 4, 4, a16); X25 = view_tensor(1, 1, 5, 5, a25); X9 = view_tensor(1, 1, 3, 3, a9);
    XN = view_tensor(1, 1, 2, 2, neg);
    y = l2c_maxpool(t, &X16, 2, 2); REQUIRE(y && y->h == 2 && y->w == 2, "maxpool k2 s2: %s", l2c_error());
    for (i = 0; i < 4; i++) CHECK_NEAR(y->data[i], max22[i], 0);
    y = l2c_avgpool(t, &X16, 2, 2); REQUIRE(y && y->h == 2 && y->w == 2, "avgpool k2 s2: %s", l2c_error());
    for (i = 0; i < 4; i++) CHECK_NEAR(y->data[i], avg22[i], 1e-6);
    y = l2c_maxpool(t, &X25, 3, 2); REQUIRE(y && y->h == 2 && y->w == 2, "maxpool k3 s2: %s", l2c_error());
    for (i = 0; i < 4; i++) CHECK_NEAR(y->data[i], max32[i], 0);
    y = l2c_avgpool(t, &X25, 3, 2); REQUIRE(y && y->h == 2 && y->w == 2, "avgpool k3 s2: %s", l2c_error());
    for (i = 0; i < 4; i++) CHECK_NEAR(y->data[i], avg32[i], 1e-5);
    y = l2c_maxpool(t, &X9, 2, 1); REQUIRE(y && y->h == 2 && y->w == 2, "maxpool k2 s1: %s", l2c_error());
    for (i = 0; i < 4; i++) CHECK_NEAR(y->data[i], max21[i], 0);
    y = l2c_avgpool(t, &X9, 2, 1); REQUIRE(y && y->h == 2 && y->w == 2, "avgpool k2 s1: %s", l2c_error());
    for (i = 0; i < 4; i++) CHECK_NEAR(y->data[i], avg21[i], 1e-6);
    y = l2c_maxpool(t, &X25, 2, 2);   /* odd size: the last row and column are dropped (floor) */
    REQUIRE(y && y->h == 2 && y->w == 2, "maxpool k2 s2 on 5x5: %s", l2c_error());
    CHECK(y->data[0] == 7 && y->data[1] == 9 && y->data[2] == 17 && y->data[3] == 19, "got %g %g %g %g",
          (double)y->data[0], (double)y->data[1], (double)y->data[2], (double)y->data[3]);
    y = l2c_maxpool(t, &XN, 2, 2);    /* all negative */
    REQUIRE(y, "maxpool of negatives: %s", l2c_error());
    CHECK(y->data[0] == -1.0f, "max of {-3,-1,-2,-4} = %g", (double)y->data[0]);
    l2c_tape_free(t);
}

static void test_elementwise_values(void)
{
    float a[6] = { -2, -0.5f, 0, 0.25f, 1, 3 }, b[6] = { 1, 2, 3, 4, 5, 6 };
    l2c_tensor A = view_tensor(1, 6, 1, 1, a), B = view_tensor(1, 6, 1, 1, b), *y;
    l2c_tape *t = l2c_tape_new();
    int i;
    REQUIRE(t, "tape");
    y = l2c_relu(t, &A); REQUIRE(y, "relu: %s", l2c_error());
    for (i = 0; i < 6; i++) CHECK_NEAR(y->data[i], a[i] > 0 ? a[i] : 0.0f, 0);
    y = l2c_tanh(t, &A); REQUIRE(y, "tanh: %s", l2c_error());
    for (i = 0; i < 6; i++) CHECK_NEAR(y->data[i], tanh(a[i]), 1e-6);
    y = l2c_clamp(t, &A, -1.0f, 0.5f); REQUIRE(y, "clamp: %s", l2c_error());
    for (i = 0; i < 6; i++) CHECK_NEAR(y->data[i], a[i] < -1 ? -1.0f : a[i] > 0.5f ? 0.5f : a[i], 0);
    y = l2c_scale(t, &A, -3.0f); REQUIRE(y, "scale: %s", l2c_error());
    for (i = 0; i < 6; i++) CHECK_NEAR(y->data[i], -3.0f * a[i], 0);
    y = l2c_add(t, &A, &B); REQUIRE(y, "add: %s", l2c_error());
    for (i = 0; i < 6; i++) CHECK_NEAR(y->data[i], a[i] + b[i], 0);
    y = l2c_reshape(t, &B, 2, 1, 3, 1); REQUIRE(y && y->n == 2 && y->h == 3, "reshape: %s", l2c_error());
    for (i = 0; i < 6; i++) CHECK_NEAR(y->data[i], b[i], 0);
    y = l2c_flatten(t, y); REQUIRE(y && y->n == 2 && y->c == 3 && y->h == 1 && y->w == 1, "flatten: %s", l2c_error());
    l2c_tape_free(t);
}

static void test_dense_values(void)
{
    float x[2 * 3] = { 1, 2, 3, -1, 0, 2 }, W[2 * 3] = { 1, 0, -1, 0.5f, 0.5f, 0.5f }, b[2] = { 10, -10 };
    l2c_tensor X = view_tensor(2, 3, 1, 1, x), Wt = view_tensor(2, 3, 1, 1, W), Bt = view_tensor(2, 1, 1, 1, b), *y;
    l2c_tape *t = l2c_tape_new();
    REQUIRE(t, "tape");
    y = l2c_dense(t, &X, &Wt, &Bt);
    REQUIRE(y && y->n == 2 && y->c == 2 && y->h == 1 && y->w == 1, "dense: %s", l2c_error());
    CHECK_NEAR(y->data[0], 1 - 3 + 10, 1e-6);
    CHECK_NEAR(y->data[1], 3 - 10, 1e-6);
    CHECK_NEAR(y->data[2], -1 - 2 + 10, 1e-6);
    CHECK_NEAR(y->data[3], 0.5 - 10, 1e-6);
    l2c_tape_free(t);
}

/* Both softmax losses on the same logits, against values worked out from their definitions: the
   cross-entropy -log p_t and the complement -log(1 - p_t). Logits of 1000 must not overflow. */
static void test_softmax_loss_values(void)
{
    typedef l2c_tensor *(*loss_fn)(l2c_tape *, l2c_tensor *, const uint8_t *, const int *);
    static const loss_fn losses[2] = { l2c_softmax_xent, l2c_softmax_complement };
    static const char *names[2] = { "xent", "complement" };
    float z[3 * 3] = { 1, 2, 3, 0, 0, 0, 1000, 0, -1000 };
    static const uint8_t lab[3] = { 2, 1, 0 }, lab_big[1] = { 1 };
    static const int map[3] = { 1, 2, 0 };   /* sends labels 2, 1, 0 to 0, 2, 1 */
    l2c_tensor Z = view_tensor(3, 3, 1, 1, z), Z1 = view_tensor(1, 3, 1, 1, z + 6), *y[3];
    l2c_tape *t = l2c_tape_new();
    const double e = exp(1.0) + exp(2.0) + exp(3.0);
    /* columns: the labels as given, through the map, the huge logits against class 1 */
    const double want[2][3] = {
        { (log(e) - 3.0 + log(3.0) + 0.0) / 3.0, ((log(e) - 1.0) + log(3.0) + 1000.0) / 3.0, 1000.0 },
        { (-log((exp(1.0) + exp(2.0)) / e) - log(2.0 / 3.0) + 1000.0) / 3.0, (-log((exp(2.0) + exp(3.0)) / e) - log(2.0 / 3.0) + 0.0) / 3.0, 0.0 },
    };
    const double tol[2][3] = { { 1e-5, 1e-3, 1e-3 }, { 1e-3, 1e-5, 1e-6 } };
    int k, j;
    REQUIRE(t, "tape");
    for (k = 0; k < 2; k++) {
        y[0] = losses[k](t, &Z, lab, NULL);
        y[1] = losses[k](t, &Z, lab, map);
        y[2] = losses[k](t, &Z1, lab_big, NULL);
        for (j = 0; j < 3; j++) {
            REQUIRE(y[j] && l2c_tensor_size(y[j]) == 1, "%s, case %d: %s", names[k], j, l2c_error());
            CHECK(fabs(y[j]->data[0] - want[k][j]) <= tol[k][j], "%s, case %d: %.8g, want %.8g", names[k], j, y[j]->data[0], want[k][j]);
        }
    }
    l2c_tape_free(t);
}

/* softmax_kl: one-hot targets at T = 1 give the cross-entropy; targets equal to the softened output
   give 0; and a value worked out from the definition at T = 2. */
static void test_softmax_kl_values(void)
{
    float z[2 * 3] = { 1, 2, 3, 0, 1000, -1000 }, q[2 * 3], onehot[2 * 3] = { 0, 0, 1, 0, 1, 0 };
    static const uint8_t lab[2] = { 2, 1 };
    l2c_tensor Z = view_tensor(2, 3, 1, 1, z), *kl, *xent;
    l2c_tape *t = l2c_tape_new();
    double e2 = exp(0.5) + exp(1.0) + exp(1.5), want = 0.0;
    int j;
    REQUIRE(t, "tape");
    kl = l2c_softmax_kl(t, &Z, onehot, 1.0f);
    xent = l2c_softmax_xent(t, &Z, lab, NULL);
    REQUIRE(kl && xent, "%s", l2c_error());
    CHECK(fabs(kl->data[0] - xent->data[0]) < 1e-5, "one-hot at T = 1: %.8g, cross-entropy %.8g", kl->data[0], xent->data[0]);
    for (j = 0; j < 3; j++) q[j] = (float)(exp(0.5 * (j + 1)) / e2);   /* softmax(z_0 / 2) */
    q[3] = 0.0f; q[4] = 1.0f; q[5] = 0.0f;                             /* softmax(z_1 / 2), to float precision */
    kl = l2c_softmax_kl(t, &Z, q, 2.0f);
    REQUIRE(kl, "%s", l2c_error());
    CHECK(fabs(kl->data[0]) < 1e-5, "targets equal to the softened output: %.8g, want 0", kl->data[0]);
    q[0] = 0.5f; q[1] = 0.5f; q[2] = 0.0f;                             /* sample 0 against (1/2, 1/2, 0) */
    for (j = 0; j < 2; j++) want += 0.5 * (log(0.5) - (0.5 * (j + 1) - log(e2)));
    want = 4.0 * want / 2.0;                                           /* T^2, mean over 2 samples */
    kl = l2c_softmax_kl(t, &Z, q, 2.0f);
    REQUIRE(kl, "%s", l2c_error());
    CHECK(fabs(kl->data[0] - want) < 1e-5, "T = 2: %.8g, want %.8g", kl->data[0], want);
    l2c_tape_free(t);
}

/* ---------------------------------------------------------------- batch norm ------------------- */

static void test_batchnorm_train_normalises_with_batch_statistics(void)
{
    enum { N = 4, C = 3, H = 5, W = 5 };
    float x[N * C * H * W], gamma[C] = { 1, 2, 0.5f }, beta[C] = { 0, 3, -1 }, rm[C] = { 0, 0, 0 }, rv[C] = { 1, 1, 1 };
    l2c_tensor X = view_tensor(N, C, H, W, x), G = view_tensor(C, 1, 1, 1, gamma), B = view_tensor(C, 1, 1, 1, beta), *y;
    l2c_tape *t = l2c_tape_new();
    l2c_rng r;
    int n, c, j;
    REQUIRE(t, "tape");
    l2c_rng_seed(&r, 400);
    for (n = 0; n < N; n++)
        for (c = 0; c < C; c++)
            for (j = 0; j < H * W; j++) x[(n * C + c) * H * W + j] = 5.0f * (float)c - 2.0f + (1.0f + (float)c) * 3.0f * l2c_rng_uniform(&r);
    y = l2c_batchnorm(t, &X, &G, &B, rm, rv, L2C_TRAIN, 0.1f, 1e-5f);
    REQUIRE(y, "batchnorm: %s", l2c_error());
    for (c = 0; c < C; c++) {
        double s = 0, ss = 0, mean, var;
        for (n = 0; n < N; n++) for (j = 0; j < H * W; j++) s += y->data[(n * C + c) * H * W + j];
        mean = s / (N * H * W);
        for (n = 0; n < N; n++) for (j = 0; j < H * W; j++) { double d = y->data[(n * C + c) * H * W + j] - mean; ss += d * d; }
        var = ss / (N * H * W);
        CHECK_NEAR(mean, beta[c], 1e-4);
        CHECK_NEAR(var, (double)gamma[c] * gamma[c], 1e-3 * gamma[c] * gamma[c]);
    }
    l2c_tape_free(t);
}

static void test_batchnorm_running_stats_momentum_and_unbiased_variance(void)
{
    /* One channel, values 1, 2, 3, 4 (two samples of 1x2): mean 2.5, biased var 1.25, unbiased 5/3. */
    float x[4] = { 1, 2, 3, 4 }, gamma = 1.0f, beta = 0.0f, rm = 0.0f, rv = 1.0f;
    float x2[2 * 2 * 1 * 1] = { 1, 10, 3, 20 }, g2[2] = { 1, 1 }, b2[2] = { 0, 0 }, rm2[2] = { 1, -1 }, rv2[2] = { 2, 0.5f };
    l2c_tensor X = view_tensor(2, 1, 1, 2, x), G = view_tensor(1, 1, 1, 1, &gamma), B = view_tensor(1, 1, 1, 1, &beta), *y;
    l2c_tensor X2 = view_tensor(2, 2, 1, 1, x2), G2 = view_tensor(2, 1, 1, 1, g2), B2 = view_tensor(2, 1, 1, 1, b2);
    l2c_tape *t = l2c_tape_new();
    double is = 1.0 / sqrt(1.25 + 1e-5);
    REQUIRE(t, "tape");
    y = l2c_batchnorm(t, &X, &G, &B, &rm, &rv, L2C_TRAIN, 0.1f, 1e-5f);
    REQUIRE(y, "batchnorm: %s", l2c_error());
    CHECK_NEAR(rm, 0.9 * 0.0 + 0.1 * 2.5, 1e-6);
    CHECK_NEAR(rv, 0.9 * 1.0 + 0.1 * (5.0 / 3.0), 1e-6);
    CHECK_NEAR(y->data[0], -1.5 * is, 1e-5);
    CHECK_NEAR(y->data[3], 1.5 * is, 1e-5);
    /* a second step moves them again */
    y = l2c_batchnorm(t, &X, &G, &B, &rm, &rv, L2C_TRAIN, 0.1f, 1e-5f);
    REQUIRE(y, "batchnorm: %s", l2c_error());
    CHECK_NEAR(rm, 0.9 * 0.25 + 0.1 * 2.5, 1e-6);
    CHECK_NEAR(rv, 0.9 * (0.9 + 0.1 * (5.0 / 3.0)) + 0.1 * (5.0 / 3.0), 1e-6);
    /* 2-D input, two channels, other momentum: channel 0 {1, 3}: mean 2, unbiased var 2; channel 1 {10, 20}: 15, 50 */
    y = l2c_batchnorm(t, &X2, &G2, &B2, rm2, rv2, L2C_TRAIN, 0.25f, 1e-5f);
    REQUIRE(y, "batchnorm 2-D: %s", l2c_error());
    CHECK_NEAR(rm2[0], 0.75 * 1 + 0.25 * 2, 1e-6);
    CHECK_NEAR(rv2[0], 0.75 * 2 + 0.25 * 2, 1e-6);
    CHECK_NEAR(rm2[1], 0.75 * -1 + 0.25 * 15, 1e-5);
    CHECK_NEAR(rv2[1], 0.75 * 0.5 + 0.25 * 50, 1e-5);
    CHECK_NEAR(y->data[0], -1.0 / sqrt(1.0 + 1e-5), 1e-5);   /* (1 - 2) / sqrt(biased var 1) */
    CHECK_NEAR(y->data[3], 5.0 / sqrt(25.0 + 1e-5), 1e-5);
    l2c_tape_free(t);
}

static void test_batchnorm_frozen_stats_leaves_running_stats_alone(void)
{
    float x[2 * 2 * 2 * 2] = { 1, 2, 3, 4, -1, 0, 5, 2, 2, 2, 7, 1, 0, 3, -2, 4 };
    float gamma[2] = { 1.5f, 0.5f }, beta[2] = { 0.1f, -0.2f }, rm[2] = { 0.3f, -0.7f }, rv[2] = { 2.0f, 0.25f };
    float rm_t[2], rv_t[2];
    l2c_tensor X = view_tensor(2, 2, 2, 2, x), G = view_tensor(2, 1, 1, 1, gamma), B = view_tensor(2, 1, 1, 1, beta), *yf, *yt;
    l2c_tape *t = l2c_tape_new();
    REQUIRE(t, "tape");
    memcpy(rm_t, rm, sizeof rm); memcpy(rv_t, rv, sizeof rv);
    yf = l2c_batchnorm(t, &X, &G, &B, rm, rv, L2C_TRAIN_FROZEN_STATS, 0.1f, 1e-5f);
    REQUIRE(yf, "frozen: %s", l2c_error());
    CHECK(rm[0] == 0.3f && rm[1] == -0.7f && rv[0] == 2.0f && rv[1] == 0.25f, "running stats changed: %g %g %g %g",
          (double)rm[0], (double)rm[1], (double)rv[0], (double)rv[1]);
    yt = l2c_batchnorm(t, &X, &G, &B, rm_t, rv_t, L2C_TRAIN, 0.1f, 1e-5f);
    REQUIRE(yt, "train: %s", l2c_error());
    CHECK(max_abs_diff(yf->data, yt->data, 16) == 0.0f, "frozen-stats output differs from train output by %g",
          (double)max_abs_diff(yf->data, yt->data, 16));
    CHECK(rm_t[0] != 0.3f && rv_t[1] != 0.25f, "TRAIN did not update the running stats");
    l2c_tape_free(t);
}

static void test_batchnorm_eval_uses_running_stats(void)
{
    float x[2 * 2] = { 3, -1, 0, 5 }, gamma[2] = { 2, 0.5f }, beta[2] = { 0.5f, 1 }, rm[2] = { 1, -3 }, rv[2] = { 4, 0.25f };
    l2c_tensor X = view_tensor(2, 2, 1, 1, x), G = view_tensor(2, 1, 1, 1, gamma), B = view_tensor(2, 1, 1, 1, beta), *y;
    l2c_tape *t = l2c_tape_new();
    REQUIRE(t, "tape");
    y = l2c_batchnorm(t, &X, &G, &B, rm, rv, L2C_EVAL, 0.1f, 1e-5f);
    REQUIRE(y, "eval: %s", l2c_error());
    CHECK_NEAR(y->data[0], (3 - 1) / sqrt(4 + 1e-5) * 2 + 0.5, 1e-5);        /* 2.5 */
    CHECK_NEAR(y->data[1], (-1 + 3) / sqrt(0.25 + 1e-5) * 0.5 + 1, 1e-5);    /* 3.0 */
    CHECK_NEAR(y->data[2], (0 - 1) / sqrt(4 + 1e-5) * 2 + 0.5, 1e-5);        /* -0.5 */
    CHECK_NEAR(y->data[3], (5 + 3) / sqrt(0.25 + 1e-5) * 0.5 + 1, 1e-4);     /* 9.0 */
    CHECK(rm[0] == 1 && rm[1] == -3 && rv[0] == 4 && rv[1] == 0.25f, "eval changed the running stats");
    /* a single sample is fine in eval mode */
    X = view_tensor(1, 2, 1, 1, x);
    y = l2c_batchnorm(t, &X, &G, &B, rm, rv, L2C_EVAL, 0.1f, 1e-5f);
    CHECK(y != NULL, "eval on one sample failed: %s", l2c_error());
    l2c_tape_free(t);
}

static void test_model_batchnorm_updates_buffers_only_in_train_mode(void)
{
    l2c_model *m = l2c_model_new(2, 3, 3);
    l2c_tape *t = l2c_tape_new();
    float x[4 * 2 * 3 * 3], *before;
    l2c_rng r;
    int mode;
    REQUIRE(m && t, "setup");
    CHECK(l2c_model_conv(m, 3, 3, 1, 1) == 0 && l2c_model_batchnorm(m) == 0 && l2c_model_relu(m) == 0, "%s", l2c_error());
    l2c_model_init(m, 7);
    CHECK(m->nbuffers == 6, "nbuffers %lu, want 6 (mean and var of 3 channels)", (unsigned long)m->nbuffers);
    CHECK(m->buffers[0] == 0 && m->buffers[2] == 0 && m->buffers[3] == 1 && m->buffers[5] == 1, "running stats not 0 / 1 after init");
    CHECK(m->bn_momentum == 0.1f && m->bn_eps == 1e-5f, "bn momentum %g eps %g", (double)m->bn_momentum, (double)m->bn_eps);
    before = (float *)malloc(m->nbuffers * sizeof(float));
    l2c_rng_seed(&r, 401);
    fill_uniform(&r, x, sizeof x / sizeof x[0], 0, 1);
    for (mode = 0; mode < 3; mode++) {
        l2c_tensor *xi, *y;
        memcpy(before, m->buffers, m->nbuffers * sizeof(float));
        l2c_tape_reset(t);
        xi = l2c_tape_input(t, 4, 2, 3, 3, x, 0);
        y = l2c_model_forward(t, m, xi, mode);
        REQUIRE(y && y->n == 4 && y->c == 3 && y->h == 3 && y->w == 3, "forward mode %d: %s", mode, l2c_error());
        if (mode == L2C_TRAIN) CHECK(memcmp(before, m->buffers, m->nbuffers * sizeof(float)) != 0, "TRAIN left the buffers alone");
        else CHECK(memcmp(before, m->buffers, m->nbuffers * sizeof(float)) == 0, "mode %d changed the buffers", mode);
    }
    free(before);
    l2c_tape_free(t);
    l2c_model_free(m);
}

/* ---------------------------------------------------------------- init ------------------------- */

static void test_init_follows_pytorch_bounds(void)
{
    l2c_model *m = l2c_model_new(3, 8, 8);
    int i;
    REQUIRE(m, "model");
    CHECK(l2c_model_conv(m, 6, 3, 1, 1) == 0, "%s", l2c_error());      /* fan_in 3*9 = 27 */
    CHECK(l2c_model_batchnorm(m) == 0, "%s", l2c_error());
    CHECK(l2c_model_deconv(m, 2, 5, 1, 2) == 0, "%s", l2c_error());    /* W 6x2x5x5: fan_in 2*25 = 50 (not 150) */
    CHECK(l2c_model_avgpool(m, 2, 2) == 0, "%s", l2c_error());         /* 2x4x4 */
    CHECK(l2c_model_flatten(m) == 0, "%s", l2c_error());
    CHECK(l2c_model_dense(m, 40) == 0, "%s", l2c_error());             /* fan_in 32 */
    CHECK(m->nlayers == 6, "%d layers", m->nlayers);
    CHECK(m->nparams == 6 * 27 + 6 + 6 + 6 + 6 * 50 + 2 + 32 * 40 + 40, "nparams %lu", (unsigned long)m->nparams);
    l2c_model_init(m, 11);
    for (i = 0; i < m->nlayers; i++) {
        const l2c_layer *L = &m->layers[i];
        double fan = L->type == L2C_LAYER_CONV ? 27 : L->type == L2C_LAYER_DECONV ? 50 : 32, bound = 1.0 / sqrt(fan);
        size_t j, nb;
        float mx = 0.0f, mxb = 0.0f;
        if (L->type == L2C_LAYER_BATCHNORM) {
            for (j = 0; j < 6; j++) {
                CHECK(m->params[L->weight + j] == 1.0f && m->params[L->bias + j] == 0.0f, "BN gamma/beta not 1/0");
                CHECK(m->buffers[L->running + j] == 0.0f && m->buffers[L->running + 6 + j] == 1.0f, "BN running stats not 0/1");
            }
            continue;
        }
        if (!L->weight_size) continue;
        for (j = 0; j < L->weight_size; j++) if (fabsf(m->params[L->weight + j]) > mx) mx = fabsf(m->params[L->weight + j]);
        nb = (size_t)L->out_c;
        for (j = 0; j < nb; j++) if (fabsf(m->params[L->bias + j]) > mxb) mxb = fabsf(m->params[L->bias + j]);
        CHECK(mx <= bound, "layer %d (type %d): weight %g outside +-%g", i, L->type, (double)mx, bound);
        CHECK(mx >= 0.9 * bound, "layer %d (type %d): largest weight %g, expected close to the bound %g (wrong fan_in?)",
              i, L->type, (double)mx, bound);
        CHECK(mxb <= bound, "layer %d: bias %g outside +-%g", i, (double)mxb, bound);
        CHECK(mxb > 0.0f, "layer %d: all biases zero", i);
    }
    {   /* same seed, same numbers; another seed, others */
        l2c_model *c = l2c_model_clone(m);
        REQUIRE(c, "clone: %s", l2c_error());
        l2c_model_init(c, 11);
        CHECK(memcmp(c->params, m->params, m->nparams * sizeof(float)) == 0, "init with the same seed differs");
        l2c_model_init(c, 12);
        CHECK(memcmp(c->params, m->params, m->nparams * sizeof(float)) != 0, "init with another seed is the same");
        l2c_model_free(c);
    }
    l2c_model_free(m);
}

/* ---------------------------------------------------------------- gemm ------------------------- */

static void test_gemm_matches_naive_for_all_transposes(void)
{
    static const struct { int M, N, K; } sizes[] = { { 1, 1, 1 }, { 3, 5, 7 }, { 17, 1, 9 }, { 1, 33, 4 }, { 70, 65, 130 }, { 64, 64, 64 }, { 5, 130, 1 } };
    static const float betas[3] = { 0.0f, 1.0f, -0.5f };
    size_t si;
    int ta, tb, bi;
    l2c_rng r;
    l2c_rng_seed(&r, 500);
    for (si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (ta = 0; ta < 2; ta++)
            for (tb = 0; tb < 2; tb++)
                for (bi = 0; bi < 3; bi++) {
                    int M = sizes[si].M, N = sizes[si].N, K = sizes[si].K;
                    int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
                    int lda = ac + 3, ldb = bc + 1, ldc = N + 2, i, j, k;
                    float *A = (float *)malloc((size_t)ar * lda * sizeof(float));
                    float *B = (float *)malloc((size_t)br * ldb * sizeof(float));
                    float *C = (float *)malloc((size_t)M * ldc * sizeof(float));
                    float *C0 = (float *)malloc((size_t)M * ldc * sizeof(float));
                    float alpha = 1.5f, beta = betas[bi], worst = 0.0f;
                    int pad_ok = 1;
                    /* padding between rows is NaN: reading it would poison the result */
                    for (i = 0; i < ar * lda; i++) A[i] = (i % lda) < ac ? 2.0f * l2c_rng_uniform(&r) - 1.0f : NAN;
                    for (i = 0; i < br * ldb; i++) B[i] = (i % ldb) < bc ? 2.0f * l2c_rng_uniform(&r) - 1.0f : NAN;
                    for (i = 0; i < M * ldc; i++) C[i] = (i % ldc) < N ? (beta == 0.0f ? NAN : 2.0f * l2c_rng_uniform(&r) - 1.0f) : 12345.0f;
                    memcpy(C0, C, (size_t)M * ldc * sizeof(float));
                    l2c_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
                    for (i = 0; i < M; i++) {
                        for (j = 0; j < N; j++) {
                            double acc = 0.0, want, err;
                            for (k = 0; k < K; k++)
                                acc += (double)(ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]) *
                                       (double)(tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]);
                            want = alpha * acc + (beta == 0.0f ? 0.0 : beta * (double)C0[(size_t)i * ldc + j]);
                            err = fabs((double)C[(size_t)i * ldc + j] - want);
                            if (!(err <= worst)) worst = (float)err;
                        }
                        for (j = N; j < ldc; j++) if (C[(size_t)i * ldc + j] != 12345.0f) pad_ok = 0;
                    }
                    CHECK(worst <= 1e-5f * (float)K + 1e-6f, "gemm %s%s M%d N%d K%d beta %g: max error %g",
                          ta ? "T" : "N", tb ? "T" : "N", M, N, K, (double)beta, (double)worst);
                    CHECK(pad_ok, "gemm %s%s M%d N%d K%d: wrote outside the N columns of C (ldc %d)", ta ? "T" : "N", tb ? "T" : "N", M, N, K, ldc);
                    free(A); free(B); free(C); free(C0);
                }
}

static void test_im2col_col2im_are_adjoint(void)
{
    /* <im2col(x), c> == <x, col2im(c)> for random x, c */
    static const struct { int c, h, w, k, s, p; } cases[] = { { 2, 5, 6, 3, 1, 1 }, { 1, 7, 7, 5, 3, 2 }, { 3, 4, 4, 2, 2, 1 }, { 2, 6, 5, 3, 2, 0 },
                                                               { 2, 9, 21, 3, 1, 2 } /* rows of 23: 8-float pieces, tail, padding */ };
    size_t i;
    l2c_rng r;
    l2c_rng_seed(&r, 501);
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int c = cases[i].c, h = cases[i].h, w = cases[i].w, k = cases[i].k, s = cases[i].s, p = cases[i].p;
        int oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1;
        size_t nim = (size_t)c * h * w, ld = (size_t)oh * ow + 3, ncol = (size_t)c * k * k * ld, j;
        float *x = (float *)malloc(nim * sizeof(float)), *col = (float *)malloc(ncol * sizeof(float));
        float *cv = (float *)malloc(ncol * sizeof(float)), *back = (float *)calloc(nim, sizeof(float));
        double lhs = 0, rhs = 0;
        fill_uniform(&r, x, nim, -1, 1);
        fill_uniform(&r, cv, ncol, -1, 1);
        for (j = 0; j < ncol; j++) if (j % ld >= (size_t)oh * ow) cv[j] = 0.0f;   /* the gap columns carry nothing */
        for (j = 0; j < ncol; j++) col[j] = 7.0f;
        l2c_im2col(x, c, h, w, k, s, p, col, ld);
        for (j = 0; j < ncol; j++) if (j % ld >= (size_t)oh * ow) CHECK(col[j] == 7.0f, "im2col wrote into the gap at %lu", (unsigned long)j);
        l2c_col2im(cv, ld, c, h, w, k, s, p, back);
        for (j = 0; j < ncol; j++) if (j % ld < (size_t)oh * ow) lhs += (double)col[j] * cv[j];
        for (j = 0; j < nim; j++) rhs += (double)x[j] * back[j];
        CHECK_NEAR(lhs, rhs, 1e-4 * (1 + fabs(lhs)));
        free(x); free(col); free(cv); free(back);
    }
}

static void test_im2col_col2im_match_naive_loops_exactly(void)
{
    /* Both unfolding paths (small planes through a zero-bordered copy, large ones bounds-tested)
       against the definition, bit for bit; col2im adds onto a non-zero image, one contribution
       per window offset in (ki, kj) order, so its sums are rounded the same way. */
    static const struct { int c, h, w, k, s, p; } cases[] = {
        { 2, 7, 7, 4, 1, 1 }, { 3, 14, 14, 4, 2, 1 }, { 1, 28, 28, 4, 2, 1 }, { 2, 6, 5, 3, 2, 0 },  /* small planes */
        { 1, 70, 66, 4, 2, 1 }, { 1, 66, 70, 3, 1, 1 }, { 2, 9, 21, 3, 1, 2 }, { 1, 80, 9, 5, 3, 2 } /* bounded path */ };
    size_t i;
    l2c_rng r;
    l2c_rng_seed(&r, 503);
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int c = cases[i].c, h = cases[i].h, w = cases[i].w, k = cases[i].k, s = cases[i].s, p = cases[i].p;
        const int oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1;
        const size_t nim = (size_t)c * h * w, ld = (size_t)oh * ow, ncol = (size_t)c * k * k * ld;
        float *x = (float *)malloc(nim * sizeof(float)), *col = (float *)malloc(ncol * sizeof(float));
        float *im = (float *)malloc(nim * sizeof(float)), *want = (float *)malloc(nim * sizeof(float));
        size_t bad_col = 0, bad_im = 0, j;
        int ch, ki, kj, oy, ox;
        REQUIRE(x && col && im && want, "buffers");
        fill_uniform(&r, x, nim, -1, 1);
        l2c_im2col(x, c, h, w, k, s, p, col, ld);
        memcpy(im, x, nim * sizeof(float));
        memcpy(want, x, nim * sizeof(float));
        l2c_col2im(col, ld, c, h, w, k, s, p, im);
        for (ch = 0; ch < c; ch++)
            for (ki = 0; ki < k; ki++)
                for (kj = 0; kj < k; kj++)
                    for (oy = 0; oy < oh; oy++)
                        for (ox = 0; ox < ow; ox++) {
                            const int y = oy * s - p + ki, xx = ox * s - p + kj;
                            const int inside = y >= 0 && y < h && xx >= 0 && xx < w;
                            const size_t at = (size_t)ch * h * w + (size_t)(inside ? y : 0) * w + (inside ? xx : 0);
                            const float v = col[((size_t)(ch * k + ki) * k + kj) * ld + (size_t)oy * ow + ox];
                            bad_col += v != (inside ? x[at] : 0.0f);
                            if (inside) want[at] += v;
                        }
        for (j = 0; j < nim; j++) bad_im += im[j] != want[j];
        CHECK(bad_col == 0 && bad_im == 0, "case %lu (%dx%dx%d k%d s%d p%d): %lu im2col and %lu col2im values differ",
              (unsigned long)i, c, h, w, k, s, p, (unsigned long)bad_col, (unsigned long)bad_im);
        free(x); free(col); free(im); free(want);
    }
}

/* ---------------------------------------------------------------- bad arguments ---------------- */

static void test_bad_arguments_give_errors_not_crashes(void)
{
    l2c_tape *t = l2c_tape_new();
    float buf[4096];
    l2c_tensor x4 = view_tensor(2, 3, 5, 5, buf), W33 = view_tensor(4, 3, 3, 3, buf), W23 = view_tensor(4, 2, 3, 3, buf);
    l2c_tensor Wrect = view_tensor(4, 3, 3, 2, buf), b4 = view_tensor(4, 1, 1, 1, buf), b3 = view_tensor(3, 1, 1, 1, buf);
    l2c_tensor Wd = view_tensor(3, 2, 3, 3, buf), Wd_bad = view_tensor(2, 2, 3, 3, buf), W77 = view_tensor(4, 3, 7, 7, buf);
    l2c_tensor xv = view_tensor(2, 6, 1, 1, buf), Wv = view_tensor(5, 6, 1, 1, buf), Wv_bad = view_tensor(5, 7, 1, 1, buf);
    l2c_tensor g3 = view_tensor(3, 1, 1, 1, buf), g2 = view_tensor(2, 1, 1, 1, buf), one = view_tensor(1, 3, 1, 1, buf);
    l2c_tensor other = view_tensor(2, 3, 5, 4, buf), logits = view_tensor(2, 4, 1, 1, buf);
    float rm[8] = { 0 }, rv[8] = { 1, 1, 1, 1, 1, 1, 1, 1 };
    l2c_tensor one1 = view_tensor(2, 1, 1, 1, buf);
    uint8_t lab_ok[2] = { 1, 3 }, lab_bad[2] = { 1, 4 }, lab_zero[2] = { 0, 0 };
    int map_bad[4] = { 0, 1, 2, 4 }, map_neg[4] = { 0, -1, 2, 3 };
    size_t i;
    REQUIRE(t, "tape");
    for (i = 0; i < sizeof buf / sizeof buf[0]; i++) buf[i] = 0.01f * (float)(i % 100);

#define EXPECT_NULL(expr) do { l2c_clear_error(); CHECK_NULL_ERR(expr); } while (0)
#define EXPECT_FAIL(expr) do { l2c_clear_error(); CHECK_FAILS(expr); } while (0)
    /* dense */
    EXPECT_NULL(l2c_dense(t, &xv, &Wv_bad, NULL));
    EXPECT_NULL(l2c_dense(t, &xv, &Wv, &b4));
    EXPECT_NULL(l2c_dense(t, &xv, NULL, NULL));
    EXPECT_NULL(l2c_dense(NULL, &xv, &Wv, NULL));
    /* conv */
    EXPECT_NULL(l2c_conv2d(t, &x4, &W23, NULL, 1, 0));      /* channel mismatch */
    EXPECT_NULL(l2c_conv2d(t, &x4, &W33, &b3, 1, 0));       /* bias size */
    EXPECT_NULL(l2c_conv2d(t, &x4, &Wrect, NULL, 1, 0));    /* non-square kernel */
    EXPECT_NULL(l2c_conv2d(t, &x4, &W77, NULL, 1, 0));      /* kernel larger than the input */
    EXPECT_NULL(l2c_conv2d(t, &x4, &W33, NULL, 0, 0));      /* stride 0 */
    EXPECT_NULL(l2c_conv2d(t, &x4, &W33, NULL, -1, 0));
    EXPECT_NULL(l2c_conv2d(t, &x4, &W33, NULL, 1, -1));     /* negative padding */
    EXPECT_NULL(l2c_conv2d(t, &x4, &W33, NULL, 1, 3));      /* padding >= kernel */
    EXPECT_NULL(l2c_conv2d(t, NULL, &W33, NULL, 1, 0));
    /* deconv */
    EXPECT_NULL(l2c_deconv2d(t, &x4, &Wd_bad, NULL, 2, 0)); /* W->n must be the input channels */
    EXPECT_NULL(l2c_deconv2d(t, &x4, &Wd, &b3, 2, 0));      /* bias must have W->c entries */
    EXPECT_NULL(l2c_deconv2d(t, &x4, &Wd, NULL, 0, 0));
    EXPECT_NULL(l2c_deconv2d(t, &x4, &Wd, NULL, 2, 5));
    /* add */
    EXPECT_NULL(l2c_add(t, &x4, &other));
    EXPECT_NULL(l2c_add(t, &x4, NULL));
    /* batch norm */
    EXPECT_NULL(l2c_batchnorm(t, &x4, &g2, &g2, rm, rv, L2C_TRAIN, 0.1f, 1e-5f));     /* gamma size */
    EXPECT_NULL(l2c_batchnorm(t, &x4, &g3, &g2, rm, rv, L2C_TRAIN, 0.1f, 1e-5f));     /* beta size */
    EXPECT_NULL(l2c_batchnorm(t, &x4, &g3, &g3, rm, rv, 7, 0.1f, 1e-5f));             /* mode */
    EXPECT_NULL(l2c_batchnorm(t, &one, &g3, &g3, rm, rv, L2C_TRAIN, 0.1f, 1e-5f));    /* one value per channel */
    EXPECT_NULL(l2c_batchnorm(t, &x4, &g3, &g3, rm, rv, L2C_TRAIN, 0.1f, 0.0f));      /* eps 0 */
    EXPECT_NULL(l2c_batchnorm(t, &x4, &g3, &g3, rm, rv, L2C_TRAIN, 1.5f, 1e-5f));     /* momentum > 1 */
    EXPECT_NULL(l2c_batchnorm(t, &x4, &g3, &g3, NULL, rv, L2C_TRAIN, 0.1f, 1e-5f));
    /* softmax cross-entropy */
    EXPECT_NULL(l2c_softmax_xent(t, &logits, lab_bad, NULL));
    EXPECT_NULL(l2c_softmax_xent(t, &logits, lab_ok, map_bad));
    EXPECT_NULL(l2c_softmax_xent(t, &logits, lab_ok, map_neg));
    EXPECT_NULL(l2c_softmax_xent(t, &logits, NULL, NULL));
    EXPECT_NULL(l2c_softmax_complement(t, &logits, lab_bad, NULL));
    EXPECT_NULL(l2c_softmax_complement(t, &logits, lab_ok, map_bad));
    EXPECT_NULL(l2c_softmax_complement(t, &logits, NULL, NULL));
    EXPECT_NULL(l2c_softmax_complement(t, &one1, lab_zero, NULL));   /* one class: 1 - p_t is always 0 */
    {   /* softmax_kl: the logits above are 2 x 4 */
        static const float q_ok[8] = { 0.2f, 0.3f, 0.5f, 0, 1, 0, 0, 0 }, q_neg[8] = { 0.2f, 0.3f, 0.5f, 0, 1.2f, -0.2f, 0, 0 };
        static const float q_sum[8] = { 0.2f, 0.3f, 0.4f, 0, 1, 0, 0, 0 };
        float q_nan[8] = { 0.2f, 0.3f, 0.5f, 0, 1, 0, 0, 0 };
        q_nan[5] = (float)NAN;
        EXPECT_NULL(l2c_softmax_kl(t, &logits, NULL, 1.0f));
        EXPECT_NULL(l2c_softmax_kl(t, &logits, q_ok, 0.0f));
        EXPECT_NULL(l2c_softmax_kl(t, &logits, q_ok, -1.0f));
        EXPECT_NULL(l2c_softmax_kl(t, &logits, q_ok, (float)NAN));
        EXPECT_NULL(l2c_softmax_kl(t, &logits, q_neg, 1.0f));
        EXPECT_NULL(l2c_softmax_kl(t, &logits, q_sum, 1.0f));
        EXPECT_NULL(l2c_softmax_kl(t, &logits, q_nan, 1.0f));
        CHECK(l2c_softmax_kl(t, &logits, q_ok, 1.0f) != NULL, "valid targets refused: %s", l2c_error());
    }
    /* pooling, reshape, clamp, scale */
    EXPECT_NULL(l2c_maxpool(t, &x4, 6, 1));
    EXPECT_NULL(l2c_avgpool(t, &x4, 2, 0));
    EXPECT_NULL(l2c_maxpool(t, &x4, 0, 1));
    EXPECT_NULL(l2c_reshape(t, &x4, 2, 3, 5, 4));
    EXPECT_NULL(l2c_reshape(t, &x4, -2, -3, 5, 5));
    EXPECT_NULL(l2c_clamp(t, &x4, 1.0f, -1.0f));
    EXPECT_NULL(l2c_clamp(t, &x4, NAN, 1.0f));
    EXPECT_NULL(l2c_scale(t, &x4, NAN));
    EXPECT_NULL(l2c_scale(t, &x4, INFINITY));
    EXPECT_NULL(l2c_relu(t, NULL));
    EXPECT_NULL(l2c_tanh(NULL, &x4));
    /* tensors */
    EXPECT_NULL(l2c_tensor_new(0, 1, 1, 1, 0));
    EXPECT_NULL(l2c_tensor_new(1, -1, 1, 1, 1));
    EXPECT_NULL(l2c_tensor_new(65536, 65536, 2, 1, 0));   /* 2^33 elements */
    EXPECT_NULL(l2c_tape_input(t, 1, 0, 1, 1, NULL, 0));
    EXPECT_NULL(l2c_tape_input(t, 100000, 100000, 100, 1, NULL, 0));

    /* backward */
    {
        l2c_tensor *xi = l2c_tape_input(t, 2, 3, 1, 1, buf, 1), *y = xi ? l2c_relu(t, xi) : NULL, *nog;
        float seed[6] = { 1, 1, 1, 1, 1, 1 };
        REQUIRE(y, "relu: %s", l2c_error());
        EXPECT_FAIL(l2c_backward(t, y));                    /* not a scalar */
        EXPECT_FAIL(l2c_backward(t, NULL));
        EXPECT_FAIL(l2c_backward_from(t, y, NULL));
        EXPECT_FAIL(l2c_backward_from(t, NULL, seed));
        nog = l2c_softmax_xent(t, &logits, lab_ok, NULL);   /* depends on nothing with a gradient */
        REQUIRE(nog, "xent: %s", l2c_error());
        EXPECT_FAIL(l2c_backward(t, nog));
        /* the tape is still usable after all those failures */
        CHECK(l2c_backward_from(t, y, seed) == 0, "backward after failures: %s", l2c_error());
    }

    /* models */
    {
        l2c_model *m = l2c_model_new(1, 6, 6);
        l2c_tensor *xi;
        REQUIRE(m, "model");
        EXPECT_FAIL(l2c_model_conv(m, 2, 7, 1, 0));   /* kernel larger than the input */
        EXPECT_FAIL(l2c_model_conv(m, 0, 3, 1, 0));
        EXPECT_FAIL(l2c_model_conv(m, 2, 3, 0, 0));
        EXPECT_FAIL(l2c_model_conv(m, 2, 3, 1, 3));
        EXPECT_FAIL(l2c_model_deconv(m, 2, 3, 1, -1));
        EXPECT_FAIL(l2c_model_maxpool(m, 7, 1));
        EXPECT_FAIL(l2c_model_avgpool(m, 2, 0));
        EXPECT_FAIL(l2c_model_dense(m, 0));
        EXPECT_FAIL(l2c_model_dense(NULL, 3));
        CHECK(m->nlayers == 0 && m->nparams == 0, "failed layer additions changed the model (%d layers, %lu params)",
              m->nlayers, (unsigned long)m->nparams);
        CHECK(l2c_model_conv(m, 2, 3, 1, 0) == 0 && l2c_model_flatten(m) == 0 && l2c_model_dense(m, 3) == 0, "%s", l2c_error());
        l2c_model_init(m, 1);
        l2c_tape_reset(t);
        xi = l2c_tape_input(t, 2, 1, 6, 5, buf, 0);
        EXPECT_NULL(l2c_model_forward(t, m, xi, L2C_EVAL));   /* 1x6x5 into a 1x6x6 model */
        xi = l2c_tape_input(t, 2, 2, 6, 6, buf, 0);
        EXPECT_NULL(l2c_model_forward(t, m, xi, L2C_EVAL));   /* channels */
        EXPECT_NULL(l2c_model_forward(t, m, NULL, L2C_EVAL));
        EXPECT_NULL(l2c_model_new(0, 28, 28));
        EXPECT_NULL(l2c_model_new(1, -28, 28));
        EXPECT_NULL(l2c_model_clone(NULL));
        {
            l2c_model *big = l2c_model_new(1, 4, 4);
            int k, rc = 0;
            REQUIRE(big, "model");
            for (k = 0; k < L2C_MAX_LAYERS && !rc; k++) rc = l2c_model_relu(big);
            CHECK(rc == 0, "could not add %d layers: %s", L2C_MAX_LAYERS, l2c_error());
            EXPECT_FAIL(l2c_model_relu(big));   /* one too many */
            l2c_model_free(big);
        }
        l2c_model_free(m);
    }
    /* optimisers */
    {
        l2c_model *m = l2c_model_new(1, 1, 2);
        l2c_sgd sgd;
        l2c_adam adam;
        REQUIRE(m && l2c_model_dense(m, 2) == 0, "model");
        EXPECT_FAIL(l2c_sgd_init(&sgd, m, 0.0f, 0.9f, 0.0f));
        EXPECT_FAIL(l2c_sgd_init(&sgd, m, 0.1f, 1.0f, 0.0f));
        EXPECT_FAIL(l2c_sgd_init(&sgd, m, 0.1f, 0.9f, -1.0f));
        EXPECT_FAIL(l2c_sgd_init(&sgd, NULL, 0.1f, 0.9f, 0.0f));
        EXPECT_FAIL(l2c_adam_init(&adam, m, -1e-3f, 0.9f, 0.999f, 1e-8f, 0));
        EXPECT_FAIL(l2c_adam_init(&adam, m, 1e-3f, 1.0f, 0.999f, 1e-8f, 0));
        EXPECT_FAIL(l2c_adam_init(&adam, m, 1e-3f, 0.9f, 0.999f, 0.0f, 0));
        EXPECT_FAIL(l2c_adam_init(&adam, NULL, 1e-3f, 0.9f, 0.999f, 1e-8f, 0));
        l2c_model_free(m);
    }
    /* data */
    {
        l2c_batcher b;
        l2c_dataset ds;
        l2c_idx idx;
        EXPECT_FAIL(l2c_batcher_init(&b, 0, 4, 1, 1));
        EXPECT_FAIL(l2c_batcher_init(&b, 10, 0, 1, 1));
        EXPECT_FAIL(l2c_dataset_load(&ds, "a", "b", 0));
        EXPECT_FAIL(l2c_dataset_load(&ds, "a", "b", 257));
        EXPECT_FAIL(l2c_idx_read(NULL, &idx));
        EXPECT_FAIL(l2c_write_file_atomic(NULL, "x", 1));
    }
#undef EXPECT_NULL
#undef EXPECT_FAIL
    l2c_tape_free(t);
}

static void test_error_message_is_cleared_and_kept(void)
{
    l2c_tape *t = l2c_tape_new();
    float d[4] = { 1, 2, 3, 4 };
    l2c_tensor a = view_tensor(1, 4, 1, 1, d), b = view_tensor(1, 2, 1, 1, d);
    REQUIRE(t, "tape");
    l2c_clear_error();
    CHECK(l2c_error() != NULL && l2c_error()[0] == 0, "l2c_error() after clear: '%s'", l2c_error());
    CHECK(l2c_add(t, &a, &b) == NULL, "add of mismatched shapes succeeded");
    CHECK(strstr(l2c_error(), "l2c_add") != NULL, "message does not name the function: '%s'", l2c_error());
    CHECK(l2c_add(t, &a, &a) != NULL, "add failed");
    CHECK(strstr(l2c_error(), "l2c_add") != NULL, "a success cleared the message of the earlier failure: '%s'", l2c_error());
    l2c_tape_free(t);
}

static void test_tape_memory_is_reused_after_the_first_steps(void)
{
    static const uint8_t labels[8] = { 0, 1, 2, 0, 1, 2, 0, 1 };
    l2c_model *m = l2c_model_new(1, 12, 12);
    l2c_tape *t = l2c_tape_new();
    float x[8 * 144];
    size_t bytes[6];
    int step;
    l2c_rng r;
    REQUIRE(m && t, "setup");
    CHECK(l2c_model_conv(m, 8, 3, 1, 1) == 0 && l2c_model_batchnorm(m) == 0 && l2c_model_relu(m) == 0 &&
          l2c_model_maxpool(m, 2, 2) == 0 && l2c_model_conv(m, 16, 3, 1, 1) == 0 && l2c_model_flatten(m) == 0 &&
          l2c_model_dense(m, 3) == 0, "%s", l2c_error());
    l2c_model_init(m, 2);
    l2c_rng_seed(&r, 502);
    fill_uniform(&r, x, sizeof x / sizeof x[0], 0, 1);
    CHECK(l2c_tape_bytes(t) == 0, "a new tape holds %lu bytes", (unsigned long)l2c_tape_bytes(t));
    for (step = 0; step < 6; step++) {
        l2c_tensor *xi, *y;
        l2c_tape_reset(t);
        xi = l2c_tape_input(t, 8, 1, 12, 12, x, 0);
        y = l2c_model_forward(t, m, xi, L2C_TRAIN);
        y = y ? l2c_softmax_xent(t, y, labels, NULL) : NULL;
        REQUIRE(y && l2c_backward(t, y) == 0, "step %d: %s", step, l2c_error());
        bytes[step] = l2c_tape_bytes(t);
    }
    CHECK(bytes[0] > 0, "tape holds no memory after a step");
    CHECK(bytes[2] == bytes[3] && bytes[3] == bytes[5], "tape keeps growing: %lu %lu %lu %lu bytes",
          (unsigned long)bytes[1], (unsigned long)bytes[2], (unsigned long)bytes[3], (unsigned long)bytes[5]);
    l2c_tape_free(t);
    l2c_model_free(m);
}

static const l2ct_case l2ct_ops_cases[] = {
    L2CT(test_conv2d_hand_computed_values),
    L2CT(test_conv2d_matches_naive_loops),
    L2CT(test_deconv2d_output_sizes),
    L2CT(test_generator_shapes_map_28_to_28),
    L2CT(test_deconv2d_hand_computed_values),
    L2CT(test_deconv2d_matches_naive_loops),
    L2CT(test_pooling_hand_computed_values),
    L2CT(test_elementwise_values),
    L2CT(test_dense_values),
    L2CT(test_softmax_loss_values),
    L2CT(test_softmax_kl_values),
    L2CT(test_batchnorm_train_normalises_with_batch_statistics),
    L2CT(test_batchnorm_running_stats_momentum_and_unbiased_variance),
    L2CT(test_batchnorm_frozen_stats_leaves_running_stats_alone),
    L2CT(test_batchnorm_eval_uses_running_stats),
    L2CT(test_model_batchnorm_updates_buffers_only_in_train_mode),
    L2CT(test_init_follows_pytorch_bounds),
    L2CT(test_gemm_matches_naive_for_all_transposes),
    L2CT(test_im2col_col2im_are_adjoint),
    L2CT(test_im2col_col2im_match_naive_loops_exactly),
    L2CT(test_bad_arguments_give_errors_not_crashes),
    L2CT(test_error_message_is_cleared_and_kept),
    L2CT(test_tape_memory_is_reused_after_the_first_steps),
    { NULL, NULL }
};
