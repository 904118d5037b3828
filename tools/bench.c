/* bench: speed figures of learn2confuse, one line per figure and thread count:
       bench=NAME threads=T KEY=VALUE ... ref_KEY=VALUE (the reference, measured in the same run)
   gemm_*:            GFLOP/s of l2c_gemm against a naive triple loop in this binary
   victim_train:      reference victim CNN, images/s of forward + backward + SGD step, batch 64
   victim_train_colour: the same for a CIFAR-shaped CNN (3 x 32 x 32), shapes no MNIST network has
   generator_forward: reference generator, eval mode, clamp and uint8 quantisation, images/s
   attack_step:       one whole attack step (look-ahead, hypergradient, generator step, victim step,
                      anchor), reference generator
   *_ae:              the same with the paper's autoencoder (poison_mnist's default generator)
   The reference of the network figures is the same run on one thread.
   usage: bench [--quick] [--only NAME] */
#define L2C_IMPLEMENTATION
#include "learn2confuse.h"
#include "examples/cli_args.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float *random_floats(size_t n, uint64_t seed)
{
    float *p = (float *)malloc(n * sizeof(float));
    l2c_rng r;
    size_t i;
    l2c_rng_seed(&r, seed);
    for (i = 0; p && i < n; i++) p[i] = l2c_rng_uniform(&r);
    return p;
}

static void naive_gemm(int M, int N, int K, const float *A, const float *B, float *C)
{
    int i, j, k;
    for (i = 0; i < M; i++)
        for (j = 0; j < N; j++) {
            float s = 0.0f;
            for (k = 0; k < K; k++) s += A[(size_t)i * K + k] * B[(size_t)k * N + j];
            C[(size_t)i * N + j] = s;
        }
}

/* Best-of-reps time of a gemm (ta, tb) of the given shape. */
static double time_gemm(int naive, int ta, int tb, int M, int N, int K, int reps)
{
    float *A = random_floats((size_t)M * K, 1), *B = random_floats((size_t)K * N, 2), *C = random_floats((size_t)M * N, 3);
    double best = 1e30;
    int r;
    for (r = 0; r < reps; r++) {
        double t0 = l2c_seconds(), t;
        if (naive) naive_gemm(M, N, K, A, B, C);
        else l2c_gemm(ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, 0.0f, C, N);
        t = l2c_seconds() - t0;
        if (t < best) best = t;
    }
    free(A); free(B); free(C);
    return best;
}

static void bench_gemm(const char *name, int ta, int tb, int M, int N, int K, int threads, double ref_gflops)
{
    double flop = 2.0 * M * N * K, t;
    int reps = flop > 1e9 ? 5 : 30;
    l2c_set_threads(threads);
    time_gemm(0, ta, tb, M, N, K, 1);   /* warm up the workspace */
    t = time_gemm(0, ta, tb, M, N, K, reps);
    printf("bench=%s threads=%d gflops=%.1f ref_naive_gflops=%.2f shape=%dx%dx%d\n", name, threads, flop / t * 1e-9,
           ref_gflops, M, N, K);
    fflush(stdout);
}

static l2c_dataset fake_mnist(int n)
{
    l2c_dataset d;
    l2c_rng r;
    int i;
    memset(&d, 0, sizeof d);
    d.n = n; d.c = 1; d.h = 28; d.w = 28; d.nclasses = 10;
    d.images = (uint8_t *)malloc((size_t)n * 784);
    d.labels = (uint8_t *)malloc((size_t)n);
    l2c_rng_seed(&r, 9);
    for (i = 0; i < n * 784; i++) d.images[i] = (uint8_t)l2c_rng_below(&r, 256);
    for (i = 0; i < n; i++) d.labels[i] = (uint8_t)l2c_rng_below(&r, 10);
    return d;
}

/* A CIFAR-shaped classifier (3 x 32 x 32, 10 classes; 3x3 convs, BN, max-pooling): no layer of it
   has an MNIST network's shape, so its figure shows the engine's speed off the MNIST shapes. */
static l2c_model *colour_cnn(void)
{
    l2c_model *m = l2c_model_new(3, 32, 32);
    if (!m || l2c_model_conv(m, 32, 3, 1, 1) || l2c_model_batchnorm(m) || l2c_model_relu(m) || l2c_model_maxpool(m, 2, 2) ||
        l2c_model_conv(m, 64, 3, 1, 1) || l2c_model_batchnorm(m) || l2c_model_relu(m) || l2c_model_maxpool(m, 2, 2) ||
        l2c_model_flatten(m) || l2c_model_dense(m, 256) || l2c_model_relu(m) || l2c_model_dense(m, 10)) {
        fprintf(stderr, "bench: %s\n", l2c_error());
        exit(1);
    }
    l2c_model_init(m, 1);
    return m;
}

/* Images/s of training steps of classifier m (freed here) at batch 64. */
static double victim_train(l2c_model *m, int steps)
{
    l2c_tape *t = l2c_tape_new();
    l2c_sgd sgd;
    float *x = m ? random_floats((size_t)64 * m->in_c * m->in_h * m->in_w, 4) : NULL;
    uint8_t y[64];
    double t0 = 0;
    int s, i;
    for (i = 0; i < 64; i++) y[i] = (uint8_t)(i % 10);
    if (!m || !t || !x || l2c_sgd_init(&sgd, m, 0.01f, 0.9f, 0.0f)) { fprintf(stderr, "bench: %s\n", l2c_error()); exit(1); }
    for (s = -3; s < steps; s++) {   /* 3 warm-up steps fill the tape's arena */
        l2c_tensor *loss;
        if (s == 0) t0 = l2c_seconds();
        l2c_tape_reset(t);
        loss = l2c_softmax_xent(t, l2c_model_forward(t, m, l2c_tape_input(t, 64, m->in_c, m->in_h, m->in_w, x, 0), L2C_TRAIN), y, NULL);
        l2c_model_zero_grad(m);
        l2c_backward(t, loss);
        l2c_sgd_step(&sgd, m);
    }
    t0 = l2c_seconds() - t0;
    l2c_sgd_free(&sgd); l2c_tape_free(t); l2c_model_free(m); free(x);
    return 64.0 * steps / t0;
}

/* The paper's autoencoder (poison_mnist's default generator) or the reference MNIST generator. */
static l2c_model *bench_generator(int autoencoder)
{
    return autoencoder ? l2c_autoencoder(1, 28, 28, 16, 1) : l2c_mnist_generator(1);
}

static double generator_forward(int n, int autoencoder)
{
    l2c_dataset d = fake_mnist(n), out;
    l2c_model *g = bench_generator(autoencoder);
    double t0;
    l2c_poison_dataset(g, &d, 0.3f, 1.0f, &out);   /* warm-up */
    l2c_dataset_free(&out);
    t0 = l2c_seconds();
    l2c_poison_dataset(g, &d, 0.3f, 1.0f, &out);
    t0 = l2c_seconds() - t0;
    l2c_dataset_free(&out); l2c_dataset_free(&d); l2c_model_free(g);
    return n / t0;
}

static double attack_step_ms(int steps, int autoencoder)
{
    l2c_dataset d = fake_mnist(256);
    l2c_model *g = bench_generator(autoencoder), *v = l2c_mnist_victim(100, 1);
    l2c_attack_config cfg;
    l2c_attack *a;
    float *x = random_floats(64 * 784, 5);
    double t0 = 0;
    int s;
    l2c_attack_defaults(&cfg, 10);
    cfg.batch = 64;   /* the README's figures are per 64-image step (the defaults' batch before 0.13.0) */
    a = l2c_attack_new(&cfg, g, v, &d);
    for (s = -2; s < steps; s++) {
        if (s == 0) t0 = l2c_seconds();
        l2c_attack_step(a, x, d.labels, 64);
    }
    t0 = l2c_seconds() - t0;
    l2c_attack_free(a); l2c_model_free(g); l2c_model_free(v); l2c_dataset_free(&d); free(x);
    return 1000.0 * t0 / steps;
}

static const char *const figures[] = { "gemm", "victim_train", "victim_train_colour", "generator_forward",
                                        "attack_step", "generator_forward_ae", "attack_step_ae", NULL };

static int usage(FILE *f)
{
    int i;
    fprintf(f, "usage: bench [--quick] [--only NAME]\n"
               "--quick: smaller sizes and fewer repetitions (a smoke run, not figures to quote)\n"
               "--only NAME: one figure:");
    for (i = 0; figures[i]; i++) fprintf(f, " %s", figures[i]);
    fprintf(f, "\n");
    return 2;
}

/* Whether name is one of the figures. */
static int known_figure(const char *name)
{
    int i;
    for (i = 0; figures[i]; i++) if (!strcmp(name, figures[i])) return 1;
    return 0;
}

int main(int argc, char **argv)
{
    int quick = 0, max_threads, th, ae, i;
    const char *only = NULL;
    double ref, one[6] = { 0, 0, 0, 0, 0, 0 };
    if (cli_wants_help(argc, argv)) { usage(stdout); return 0; }
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc && known_figure(argv[i + 1])) only = argv[++i];
        else { fprintf(stderr, "bench: bad option %s\n", argv[i]); return usage(stderr); }
    }
    max_threads = l2c_set_threads(0);
    if (!only || !strcmp(only, "gemm")) {
        double t = time_gemm(1, 0, 0, quick ? 256 : 1024, quick ? 256 : 1024, quick ? 256 : 1024, 1);
        ref = 2.0 * (quick ? 256.0 * 256 * 256 : 1024.0 * 1024 * 1024) / t * 1e-9;
        for (th = 1; th <= max_threads; th++) {
            bench_gemm("gemm_1024", 0, 0, 1024, 1024, 1024, th, ref);
            bench_gemm("gemm_conv2_fwd", 0, 0, 50, 4096, 500, th, ref);
            bench_gemm("gemm_conv2_wgrad", 0, 1, 50, 500, 4096, th, ref);
            bench_gemm("gemm_conv2_dgrad", 1, 0, 500, 4096, 50, th, ref);
            bench_gemm("gemm_dense1_fwd", 0, 1, 64, 500, 800, th, ref);
            bench_gemm("gemm_deconv2_fwd", 1, 0, 1600, 1600, 128, th, ref);
            bench_gemm("gemm_odd", 0, 0, 333, 1001, 97, th, ref);        /* no size a multiple of a block */
            bench_gemm("gemm_odd_tt", 1, 1, 257, 129, 515, th, ref);     /* both operands transposed */
        }
    }
    for (th = 1; th <= max_threads; th++) {
        double v;
        l2c_set_threads(th);
        if (!only || !strcmp(only, "victim_train")) {
            v = victim_train(l2c_mnist_victim(100, 1), quick ? 10 : 60);
            if (th == 1) one[0] = v;
            printf("bench=victim_train threads=%d img_per_s=%.0f ref_1thread_img_per_s=%.0f\n", th, v, one[0]);
        }
        if (!only || !strcmp(only, "victim_train_colour")) {
            v = victim_train(colour_cnn(), quick ? 5 : 30);
            if (th == 1) one[5] = v;
            printf("bench=victim_train_colour threads=%d img_per_s=%.0f ref_1thread_img_per_s=%.0f\n", th, v, one[5]);
        }
        for (ae = 0; ae < 2; ae++) {
            const char *gen_name = ae ? "generator_forward_ae" : "generator_forward";
            const char *step_name = ae ? "attack_step_ae" : "attack_step";
            if (!only || !strcmp(only, gen_name)) {
                v = generator_forward(quick ? 2000 : 20000, ae);
                if (th == 1) one[1 + 2 * ae] = v;
                printf("bench=%s threads=%d img_per_s=%.0f ref_1thread_img_per_s=%.0f\n", gen_name, th, v, one[1 + 2 * ae]);
            }
            if (!only || !strcmp(only, step_name)) {
                v = attack_step_ms(quick ? 5 : 30, ae);
                if (th == 1) one[2 + 2 * ae] = v;
                printf("bench=%s threads=%d ms_per_batch=%.1f ref_1thread_ms_per_batch=%.1f\n", step_name, th, v, one[2 + 2 * ae]);
            }
        }
        fflush(stdout);
    }
    return 0;
}
