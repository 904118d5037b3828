/* learn2confuse.h - v0.20.0 - training-time adversarial data (DeepConfuse) in one C99 header.

   A dependency-free library that learns an auto-encoder g whose bounded output (|g(x)|inf <= eps),
   added to each training image, makes classifiers trained on the perturbed set fail on clean data
   (Feng, Cai, Zhou, "Learning to Confuse", NeurIPS 2019). It carries its own small deep-learning
   engine: tensors, reverse-mode autograd, conv / dense / transposed-conv layers, batch norm, pooling,
   SGD and Adam, IDX (MNIST) file I/O and model checkpoints. Only libc and libm; OpenMP optional.

   USAGE
       Do this in *one* C file:
           #define L2C_IMPLEMENTATION
           #include "learn2confuse.h"
       Every other file just includes the header. Compile with -O3 (and -march=native for speed);
       add -fopenmp to use several cores. Link with -lm.

   OPTIONS (define before including)
       L2C_STATIC          give every function internal linkage (private copy per C file)
       L2C_MALLOC(n)       allocator (default malloc); L2C_REALLOC(p,n), L2C_FREE(p) likewise:
                           define all three or none (a partial set is a compile error)
       L2C_ASSERT(x)       internal invariant check (default assert)

   CONTENTS
       1. Errors and threads       l2c_error, l2c_set_threads
       2. Random numbers           l2c_rng
       3. Tensors and the tape     l2c_tensor, l2c_tape, l2c_backward
       4. Operations               l2c_dense, l2c_conv2d, l2c_deconv2d, l2c_batchnorm, l2c_relu, ...
       5. Models                   sequential layer lists, init, copy, save / load
       6. Optimisers               SGD (momentum, weight decay), Adam (AMSGrad)
       7. Data                     IDX files, data sets, mini-batches
       8. Kernels                  l2c_gemm, im2col / col2im (the only heavy arithmetic)
       9. The attack               DeepConfuse generator-victim training, poison release

   ERRORS
       Functions that can fail return an int status (0 = success, negative = L2C_E* code) or NULL,
       and leave a human-readable message in l2c_error(). Nothing aborts on bad input.

   REVISION HISTORY
       0.20.0 l2c_poison_combine: the releases of several independently trained poisons of one
              set, their perturbations averaged or added within eps (tools/combine_idx); two runs
              of the defaults averaged beat either alone on three pairs (README: study of
              2026-12-06, evening, last). The attack and the release are unchanged
       0.19.0 l2c_defend_class_mean: a defence that subtracts each class's shared perturbation,
              estimated against a small clean labelled sample and shrunk by noise_z standard
              errors so that an unpoisoned set keeps its accuracy (eval_mnist --defence
              class-mean, tools/defend_idx); it undoes this library's poison (README: study of
              2026-12-06, evening). The attack and the release are unchanged: results are
              0.18.0's bit for bit
       0.18.0 l2c_poison_boost_class_mean: adds boost times each class's mean perturbation to the
              released images of the class, within eps; with boost -1 (the shared part removed)
              the poison is gone, so victims learn that part (README: study of 2026-12-06,
              later). Not a default (boost 1 lost on two seeds of three); the attack and
              l2c_poison_dataset are unchanged: results are 0.17.0's bit for bit
       0.17.0 attack pairing L2C_PAIR_GIVEN: the non-targeted warm-up targets w(y) = label_map[y],
              a derangement the caller chose (checked), with tests; the defaults are unchanged
              (README: study of 2026-12-05, late). Bad input refused rather than misread:
              l2c_attack_new and l2c_poison_dataset check a data set built by hand as
              l2c_dataset_load checks files (labels below nclasses, a positive shape; the attack
              also needs two classes), and refuse a generator whose last layer is not tanh (the
              eps bound rests on it), as l2c_generator_noise does. Results of runs valid before
              are 0.16.0's bit for bit
       0.16.0 attack default warmup_shift back to 0: over five seeds the mean of nine victims is
              3.26 % at 0 against 3.60 % at 1 (a fifth seed gave 4.25 against 7.25), so the
              knob no longer wins (README: study of v0.15.0); results are 0.14.0's bit for bit.
              l2c_attack_targeted_defaults: the label-specific defaults (anchor 2) in the
              library, not in poison_mnist
       0.15.0 attack default warmup_shift 1 (the reference ensemble sees each poisoned batch
              translated by up to one pixel in the warm-up and the anchor): the mean of nine
              victims fell on three seeds of four, 25 of 36 networks lower (README: study of
              v0.15.0); poison_mnist keeps 0 for --targeted, measured worse there; 0 reproduces
              0.14.0's results bit for bit
       0.14.0 attack checkpoints (format version 2) record the attack's settings: l2c_attack_load
              refuses one made under another batch, learning rate, seed, label map or other knob
              (trials may differ), naming the setting, unless loaded with the new
              l2c_attack_load_under_new_settings; version 1 checkpoints (0.2.0-0.13.0) are refused
              with a message rather than resumed under settings they did not record
       0.13.0 attack defaults: batch 256 with victim_lr 0.04 (the paper's lr per image), a 1,250-step
              warm-up and 32 trials of 25 steps - the same images and work as before, a quarter
              of the steps; the mean of nine victims fell on three seeds of three, as it did at
              batch 128 (README: study of 2026-12-05, afternoon). Batch 64, victim_lr 0.01,
              warmup_steps 5000, 100 steps per trial give 0.12.0's results bit for bit
       0.12.0 l2c_generator_noise (eps * g(x) before the clamp: the paper's "noise only" input),
              with tests; soft warm-up targets computed once per step for the image and noise
              terms (results unchanged) (README: study of 2026-12-05)
       0.11.0 l2c_softmax_kl (T^2 KL(q || softmax(z / T)) against target distributions); attack
              knob warmup_temperature (soft warm-up targets: each member's softened output on a
              random clean image of class w(y)), with finite-difference tests; the defaults are
              unchanged (README: study of 2026-12-04, night)
       0.10.0 attack knob noise_weight (the warm-up and the anchor also make the references read
              the noise alone as w(y)), with a finite-difference test; l2c_mnist_classifier
              "cnn-pt" (the PyTorch MNIST example's network, a held-out victim); the defaults are
              unchanged (README: the v0.10.0 study)
       0.9.0  l2c_softmax_complement (-log(1 - p_t)); attack knobs untargeted_loss (the trials
              lower the look-ahead victim's complement loss) and pairing L2C_PAIR_REACHABLE (warm-up
              targets that eps-bounded perturbations reach), with tests; l2c_sgd_reset,
              l2c_adam_reset; the defaults are unchanged (README: the v0.9.0 study)
       0.8.0  attack knob clamp_inward (a straight-through gradient at clamped poison pixels), with
              tests; the defaults are unchanged (README: the v0.8.0 study)
       0.7.0  attack knob victim_optimizer (an Adam-trained imaginary victim, or SGD and Adam trial by
              trial; the hypergradient goes through Adam's step exactly), with finite-difference
              tests; the defaults are unchanged (README: the v0.7.0 study)
       0.6.0  attack objective L2C_OBJ_ALIGN (l2c_attack_config.objective: the cosine between the
              victim's poisoned-batch gradient and its clean-loss gradient), with finite-difference
              tests; the defaults are unchanged (README: the v0.6.0 study, none of its changes kept)
       0.5.2  the library is unchanged; eval_mnist gains a random-forest victim
              (examples/classic_victims.h); README: the v0.5.2 study (four objectives and schedules
              measured at full scale, none kept)
       0.5.1  a partial set of the allocator macros (L2C_MALLOC / L2C_REALLOC / L2C_FREE) is a
              compile error with a message; the attack is unchanged (README: the v0.5.1 study,
              the nearest-neighbour victim)
       0.5.0  faster unfolding of small feature maps (im2col / col2im through a zero-bordered copy;
              the autoencoder's attack step 1.10-1.12x, its forward pass 1.23x), results bit for bit
              unchanged; README: the v0.5.0 studies (anchor 0.7, targeted anchor 3, the poison
              along one run, proxy selection)
       0.4.0  attack knobs victim_shift (a shift-augmented imaginary victim) and victim_momentum,
              both with finite-difference tests of the hypergradient; the defaults are unchanged
              (README: v0.4.0 study); results shown not to depend on the thread count
       0.3.0  l2c_autoencoder (any input size and width), l2c_model_read (a model rebuilt from its
              checkpoint), l2c_translate; attack knobs studied in the README: warmup_shift,
              shortcut, l2c_attack_add_victim, fractional warmup_epochs; l2c_poison_dataset
              refuses a model whose output is not an image
       0.2.0  the warm-up's reference ensemble (l2c_attack_add_reference), the anchor, nearest
              pairing, l2c_mnist_classifier; faster-poisoning defaults (README); attack
              checkpoints record the ensemble (0.1.0 attack checkpoints are refused, not misread)
       0.1.0  first release: engine, DeepConfuse attack with warm-up, IDX I/O, checkpoints

   LICENSE: MIT or public domain, your choice; see the end of the file.
*/
#ifndef L2C_INCLUDE_LEARN2CONFUSE_H
#define L2C_INCLUDE_LEARN2CONFUSE_H

#define L2C_VERSION_MAJOR 0
#define L2C_VERSION_MINOR 20
#define L2C_VERSION_PATCH 0
#define L2C_VERSION "0.20.0"

#include <stddef.h>
#include <stdint.h>

#ifdef L2C_STATIC
#define L2C_API static
#else
#define L2C_API extern
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ================================================================================================
   1. ERRORS AND THREADS
   ================================================================================================ */

enum {
    L2C_OK = 0,
    L2C_EINVAL = -1,   /* an impossible argument or shape */
    L2C_ENOMEM = -2,   /* allocation failed */
    L2C_EIO = -3,      /* a file could not be opened, read or written */
    L2C_EFORMAT = -4,  /* a file's contents are malformed, truncated or do not match */
    L2C_ENAN = -5      /* a NaN or infinity appeared where a finite number is required */
};

/* The message of the most recent failure (never NULL; "" when none). Not thread-safe: one
   process-wide buffer, meant for the thread that drives training. */
L2C_API const char *l2c_error(void);
/* Clears the message. */
L2C_API void l2c_clear_error(void);
/* Uses n threads for the kernels when compiled with OpenMP (n <= 0: the OpenMP default, which
   follows OMP_NUM_THREADS). Without OpenMP this does nothing. Returns the count now in effect. */
L2C_API int l2c_set_threads(int n);
L2C_API int l2c_get_threads(void);
/* Seconds on a monotonic clock, for timing: omp_get_wtime() under OpenMP, else clock(), which for a
   single-threaded process is wall time (C99 has no portable wall clock finer than a second). */
L2C_API double l2c_seconds(void);

/* ================================================================================================
   2. RANDOM NUMBERS
   A portable generator (splitmix64 seeding a xoshiro128+-style state): the same seed gives the same
   numbers on every platform and compiler.
   ================================================================================================ */

typedef struct l2c_rng { uint64_t s[2]; } l2c_rng;

L2C_API void     l2c_rng_seed(l2c_rng *rng, uint64_t seed);
L2C_API uint32_t l2c_rng_u32(l2c_rng *rng);
/* Uniform in [0, 1) with 24 random bits. */
L2C_API float    l2c_rng_uniform(l2c_rng *rng);
/* Uniform integer in [0, n) without modulo bias (n >= 1). */
L2C_API uint32_t l2c_rng_below(l2c_rng *rng, uint32_t n);

/* ================================================================================================
   3. TENSORS AND THE TAPE
   A tensor is a float32 array of shape N x C x H x W (row-major, W fastest); lower-rank tensors set
   the trailing sizes to 1 (a batch of vectors is N x C x 1 x 1). `grad`, when not NULL, receives
   gradients: backward passes *accumulate* into it.

   A tape records operations as they run and replays them in reverse in l2c_backward. Every tensor an
   operation returns lives in the tape's arena until l2c_tape_reset, which forgets the operations but
   keeps the memory: after the first training step a tape allocates nothing more. The grad of an
   operation's output is zeroed when a backward pass first reaches it: read it after l2c_backward.
   ================================================================================================ */

typedef struct l2c_tensor {
    int n, c, h, w;
    float *data;
    float *grad;   /* NULL: no gradient wanted for this tensor */
} l2c_tensor;

typedef struct l2c_tape l2c_tape;

/* Number of elements n*c*h*w. */
L2C_API size_t l2c_tensor_size(const l2c_tensor *t);
/* A heap tensor owning its data (zeroed) and, if with_grad, a zeroed grad. NULL on failure. */
L2C_API l2c_tensor *l2c_tensor_new(int n, int c, int h, int w, int with_grad);
L2C_API void l2c_tensor_free(l2c_tensor *t);

L2C_API l2c_tape *l2c_tape_new(void);
L2C_API void l2c_tape_free(l2c_tape *tape);
/* Forgets every recorded operation and tensor; the arena memory is kept for reuse. */
L2C_API void l2c_tape_reset(l2c_tape *tape);
/* Bytes the tape's arena holds (grows during the first steps, then stays put). */
L2C_API size_t l2c_tape_bytes(const l2c_tape *tape);
/* A tensor in the tape's arena (data uninitialised unless `data` is given, copied in). With
   with_grad it gets a zeroed gradient, so l2c_backward will leave d(loss)/d(tensor) there: this is
   how input gradients are obtained. NULL on failure (message in l2c_error). */
L2C_API l2c_tensor *l2c_tape_input(l2c_tape *tape, int n, int c, int h, int w, const float *data,
                                   int with_grad);
/* Back-propagates from a scalar (1x1x1x1) tensor: d(out)/d(out) = 1. */
L2C_API int l2c_backward(l2c_tape *tape, l2c_tensor *out);
/* Back-propagates from any tensor with a given seed gradient d(objective)/d(out) (same size as out).
   Used by the attack to push a hypergradient through the generator. */
L2C_API int l2c_backward_from(l2c_tape *tape, l2c_tensor *out, const float *seed);
/* Makes l2c_model_forward calls from now on (until l2c_tape_reset) skip the gradients of the model's
   parameters; input gradients still flow. Saves a third of the work when only d/d(input) is
   wanted. Tensors you pass to operations yourself are unaffected: give them grad = NULL instead. */
L2C_API void l2c_tape_param_grads(l2c_tape *tape, int enabled);

/* ================================================================================================
   4. OPERATIONS
   Each records itself on the tape and returns its output (in the tape arena), or NULL with a
   message on a shape mismatch or an impossible argument. Inputs may be parameters (owned by a model)
   or earlier outputs. Gradients flow to every input whose grad is not NULL.
   ================================================================================================ */

/* y = x W^T + b. x: N x IN (any C,H,W flattened), W: OUT x IN (n=OUT, c=IN), b: OUT (or NULL). */
L2C_API l2c_tensor *l2c_dense(l2c_tape *t, l2c_tensor *x, l2c_tensor *W, l2c_tensor *b);
/* 2-D convolution (cross-correlation, as PyTorch). W: OUT x IN x K x K, b: OUT (or NULL).
   Output H = (H + 2*pad - K) / stride + 1. */
L2C_API l2c_tensor *l2c_conv2d(l2c_tape *t, l2c_tensor *x, l2c_tensor *W, l2c_tensor *b,
                               int stride, int pad);
/* Transposed convolution (PyTorch ConvTranspose2d). W: IN x OUT x K x K, b: OUT (or NULL).
   Output H = (H - 1) * stride - 2*pad + K. */
L2C_API l2c_tensor *l2c_deconv2d(l2c_tape *t, l2c_tensor *x, l2c_tensor *W, l2c_tensor *b,
                                 int stride, int pad);
/* Batch normalisation over N (and H, W) per channel. mode L2C_TRAIN normalises with the batch
   statistics and updates running_mean/var (momentum, unbiased variance, as PyTorch);
   L2C_TRAIN_FROZEN_STATS uses batch statistics without touching the running ones (a look-ahead);
   L2C_EVAL uses the running statistics. gamma, beta: C (affine). */
enum { L2C_EVAL = 0, L2C_TRAIN = 1, L2C_TRAIN_FROZEN_STATS = 2 };
L2C_API l2c_tensor *l2c_batchnorm(l2c_tape *t, l2c_tensor *x, l2c_tensor *gamma, l2c_tensor *beta,
                                  float *running_mean, float *running_var, int mode,
                                  float momentum, float eps);
L2C_API l2c_tensor *l2c_relu(l2c_tape *t, l2c_tensor *x);
L2C_API l2c_tensor *l2c_tanh(l2c_tape *t, l2c_tensor *x);
/* Max / average pooling with a k x k window and the given stride, no padding (floor division). */
L2C_API l2c_tensor *l2c_maxpool(l2c_tape *t, l2c_tensor *x, int k, int stride);
L2C_API l2c_tensor *l2c_avgpool(l2c_tape *t, l2c_tensor *x, int k, int stride);
/* Same data, new shape (element counts must agree). Flatten is reshape to N x (C*H*W) x 1 x 1. */
L2C_API l2c_tensor *l2c_reshape(l2c_tape *t, l2c_tensor *x, int n, int c, int h, int w);
L2C_API l2c_tensor *l2c_flatten(l2c_tape *t, l2c_tensor *x);
/* Element-wise a + b (same shape) and s * x. */
L2C_API l2c_tensor *l2c_add(l2c_tape *t, l2c_tensor *a, l2c_tensor *b);
L2C_API l2c_tensor *l2c_scale(l2c_tape *t, l2c_tensor *x, float s);
/* min(max(x, lo), hi); the gradient passes where lo < x < hi. */
L2C_API l2c_tensor *l2c_clamp(l2c_tape *t, l2c_tensor *x, float lo, float hi);
/* Mean softmax cross-entropy over the batch: logits N x K, labels[i] in [0, K). With label_map
   (K entries, or NULL for identity) sample i is scored against label_map[labels[i]]. Returns a
   1x1x1x1 tensor. */
L2C_API l2c_tensor *l2c_softmax_xent(l2c_tape *t, l2c_tensor *logits, const uint8_t *labels,
                                     const int *label_map);
/* Mean over the batch of -log(1 - p_t), p = softmax(logits), t the label (mapped as above): the
   loss of *not* predicting t, which an attacker lowers to make t improbable. Lowering it pushes
   z_t down with force p_t, which fades once a sample is wrong, where raising the cross-entropy
   keeps pushing samples that are already wrong just as hard. Needs K >= 2. Returns 1x1x1x1. */
L2C_API l2c_tensor *l2c_softmax_complement(l2c_tape *t, l2c_tensor *logits, const uint8_t *labels,
                                           const int *label_map);
/* Mean over the batch of T^2 KL(q_i || softmax(z_i / T)): how far the softened output on sample i
   is from a target distribution q_i (targets: N x K probabilities, each row non-negative and
   summing to 1 within 1e-3), at temperature T > 0 (distillation's loss; T = 1 and one-hot rows
   give the cross-entropy). d/dz_i = T (softmax(z_i / T) - q_i) / N. Returns 1x1x1x1. */
L2C_API l2c_tensor *l2c_softmax_kl(l2c_tape *t, l2c_tensor *logits, const float *targets, float temperature);

/* ================================================================================================
   5. MODELS
   A model is a sequential list of layers over a fixed input shape. All parameters live in one
   contiguous array (and their gradients in another), batch-norm running statistics in a third, so
   copying a model, an optimiser step and a checkpoint are each one flat loop.
   ================================================================================================ */

enum {
    L2C_LAYER_DENSE, L2C_LAYER_CONV, L2C_LAYER_DECONV, L2C_LAYER_BATCHNORM, L2C_LAYER_RELU,
    L2C_LAYER_TANH, L2C_LAYER_MAXPOOL, L2C_LAYER_AVGPOOL, L2C_LAYER_FLATTEN
};

typedef struct l2c_layer {
    int type;
    int k, stride, pad;           /* conv / deconv / pooling */
    int in_c, in_h, in_w;         /* input shape of one sample */
    int out_c, out_h, out_w;      /* output shape of one sample */
    size_t weight, bias;          /* offsets into params (bias: (size_t)-1 if none) */
    size_t weight_size;
    size_t running;               /* batch norm: offset of running mean (var follows) in buffers */
} l2c_layer;

#define L2C_MAX_LAYERS 64

typedef struct l2c_model {
    int in_c, in_h, in_w;
    int nlayers;
    l2c_layer layers[L2C_MAX_LAYERS];
    size_t nparams, nbuffers;
    float *params;   /* all weights and biases, layer by layer */
    float *grads;    /* same layout as params; accumulated by l2c_backward */
    float *buffers;  /* batch-norm running mean and variance */
    float bn_momentum, bn_eps;   /* 0.1, 1e-5 */
} l2c_model;

/* A model taking samples of shape c x h x w. Add layers, then call l2c_model_init. */
L2C_API l2c_model *l2c_model_new(int c, int h, int w);
L2C_API void l2c_model_free(l2c_model *m);
/* Each appends a layer fed by the previous one's output; return 0 or a negative code (bad shape). */
L2C_API int l2c_model_dense(l2c_model *m, int out);
L2C_API int l2c_model_conv(l2c_model *m, int out_c, int k, int stride, int pad);
L2C_API int l2c_model_deconv(l2c_model *m, int out_c, int k, int stride, int pad);
L2C_API int l2c_model_batchnorm(l2c_model *m);
L2C_API int l2c_model_relu(l2c_model *m);
L2C_API int l2c_model_tanh(l2c_model *m);
L2C_API int l2c_model_maxpool(l2c_model *m, int k, int stride);
L2C_API int l2c_model_avgpool(l2c_model *m, int k, int stride);
L2C_API int l2c_model_flatten(l2c_model *m);
/* PyTorch-default initialisation from `seed`: weights Kaiming-uniform (a = sqrt 5, i.e.
   U(+-1/sqrt(fan_in))), biases U(+-1/sqrt(fan_in)), BN gamma 1, beta 0, running mean 0, var 1.
   Zeroes the gradients. */
L2C_API void l2c_model_init(l2c_model *m, uint64_t seed);
/* Output shape of one sample. */
L2C_API void l2c_model_output_shape(const l2c_model *m, int *c, int *h, int *w);
/* Runs the layers on x (N x in_c x in_h x in_w) in mode L2C_EVAL, L2C_TRAIN or
   L2C_TRAIN_FROZEN_STATS (batch norm only differs). NULL on a shape mismatch. */
L2C_API l2c_tensor *l2c_model_forward(l2c_tape *t, l2c_model *m, l2c_tensor *x, int mode);
L2C_API void l2c_model_zero_grad(l2c_model *m);
/* Class predictions (argmax of the outputs, eval mode) for n samples x (n x C x H x W floats),
   computed in batches of `batch` on the given tape (reset before and after). */
L2C_API int l2c_model_predict(l2c_model *m, l2c_tape *t, const float *x, int n, int batch,
                              uint8_t *pred);
/* Copies parameters and buffers of src into dst (same architecture, else L2C_EINVAL). */
L2C_API int l2c_model_copy(l2c_model *dst, const l2c_model *src);
/* A new model with the same layers and state as src (NULL on failure). */
L2C_API l2c_model *l2c_model_clone(const l2c_model *src);
/* Whether a and b have the same layers and shapes. */
L2C_API int l2c_model_same_arch(const l2c_model *a, const l2c_model *b);
/* Checkpoint: magic, version, architecture, parameters, buffers and a checksum, written atomically
   (temporary file + rename). Load refuses a file of another architecture, a truncated or corrupted
   one, leaving the model untouched. */
L2C_API int l2c_model_save(const l2c_model *m, const char *path);
L2C_API int l2c_model_load(l2c_model *m, const char *path);
/* A new model built from a checkpoint's own architecture record and loaded from it: for a file
   whose constructor the caller does not know (a generator of any width, say). NULL with a message
   for a file that is not a model checkpoint, or is truncated or corrupted. */
L2C_API l2c_model *l2c_model_read(const char *path);

/* ================================================================================================
   6. OPTIMISERS
   Both update model->params from model->grads (one flat loop) and own their state.
   ================================================================================================ */

typedef struct l2c_sgd {
    float lr, momentum, weight_decay;
    size_t n;
    float *velocity;   /* NULL until momentum is used */
} l2c_sgd;

typedef struct l2c_adam {
    float lr, beta1, beta2, eps, weight_decay;
    int amsgrad;
    long step;
    size_t n;
    float *m, *v, *vmax;
} l2c_adam;

L2C_API int  l2c_sgd_init(l2c_sgd *opt, const l2c_model *m, float lr, float momentum,
                          float weight_decay);
L2C_API void l2c_sgd_step(l2c_sgd *opt, l2c_model *m);
/* Forgets the velocity, as for a model re-initialised in place (the settings are kept). */
L2C_API void l2c_sgd_reset(l2c_sgd *opt);
L2C_API void l2c_sgd_free(l2c_sgd *opt);
/* Adam with PyTorch's update rule (bias-corrected); amsgrad keeps the running max of v. */
L2C_API int  l2c_adam_init(l2c_adam *opt, const l2c_model *m, float lr, float beta1, float beta2,
                           float eps, int amsgrad);
L2C_API void l2c_adam_step(l2c_adam *opt, l2c_model *m);
/* Forgets the moments and the step count: the next step is a fresh optimiser's first. */
L2C_API void l2c_adam_reset(l2c_adam *opt);
L2C_API void l2c_adam_free(l2c_adam *opt);
/* Optimiser state to and from a file (atomic; checked like a model checkpoint). */
L2C_API int  l2c_adam_save(const l2c_adam *opt, const char *path);
L2C_API int  l2c_adam_load(l2c_adam *opt, const char *path);

/* ================================================================================================
   7. DATA
   IDX is MNIST's format: big-endian magic 0x0000TTDD (TT = 0x08 for uint8, DD = number of
   dimensions), DD big-endian uint32 sizes, then the data. Only uint8 files are supported.
   ================================================================================================ */

typedef struct l2c_idx {
    int ndim;          /* 1 to 4 */
    int dims[4];
    size_t count;      /* product of dims */
    uint8_t *data;
} l2c_idx;

/* Reads a whole uint8 IDX file, checking the magic, the dimensions and the file length against the
   header (a header that claims more data than the file holds is refused before any allocation). */
L2C_API int  l2c_idx_read(const char *path, l2c_idx *out);
/* Writes atomically (temporary file + rename). */
L2C_API int  l2c_idx_write(const char *path, const l2c_idx *idx);
L2C_API void l2c_idx_free(l2c_idx *idx);
/* Writes n bytes to path atomically: a temporary file beside it, flushed, then renamed over it. */
L2C_API int  l2c_write_file_atomic(const char *path, const void *data, size_t n);

/* Images (N x C x H x W uint8) and labels paired and checked. */
typedef struct l2c_dataset {
    int n, c, h, w;
    int nclasses;
    uint8_t *images;
    uint8_t *labels;
} l2c_dataset;

/* Loads an image IDX file (N x H x W, or N x C x H x W) and a label file (N), checking that the
   counts agree and every label is below nclasses. */
L2C_API int  l2c_dataset_load(l2c_dataset *ds, const char *images_path, const char *labels_path,
                              int nclasses);
/* Writes the images and labels as two IDX files (atomically, images first). */
L2C_API int  l2c_dataset_save(const l2c_dataset *ds, const char *images_path,
                              const char *labels_path);
L2C_API void l2c_dataset_free(l2c_dataset *ds);
/* Copies samples idx[0..count) into x (count x C x H x W floats scaled to [0,1]) and labels. */
L2C_API void l2c_dataset_gather(const l2c_dataset *ds, const int *idx, int count, float *x,
                                uint8_t *labels);

/* Mini-batch order: a permutation of 0..n-1, reshuffled (Fisher-Yates, seeded) every epoch. */
typedef struct l2c_batcher {
    int n, batch, pos;
    int *order;
    l2c_rng rng;
    int shuffle;
} l2c_batcher;

L2C_API int  l2c_batcher_init(l2c_batcher *b, int n, int batch, int shuffle, uint64_t seed);
/* Next batch of indices: *idx points into the order, returns its size (the last batch of an
   epoch may be smaller), or 0 at the end of an epoch (the next call starts a new, reshuffled one). */
L2C_API int  l2c_batcher_next(l2c_batcher *b, const int **idx);
/* Restarts at the beginning of a new epoch whose order depends only on `seed`. */
L2C_API void l2c_batcher_reseed(l2c_batcher *b, uint64_t seed);
L2C_API void l2c_batcher_free(l2c_batcher *b);

/* Translation (data augmentation): out(y, x) = in(y - dy, x - dx) on each of `planes` h x w planes,
   zero where the source falls outside. in and out must not overlap. L2C_EINVAL for NULL or
   overlapping buffers, non-positive sizes. */
L2C_API int  l2c_translate(const float *in, float *out, int planes, int h, int w, int dx, int dy);

/* ================================================================================================
   8. KERNELS
   All heavy arithmetic goes through these; they know nothing of tensors or autograd.
   ================================================================================================ */

/* C[MxN] = alpha * op(A) * op(B) + beta * C, row-major; op(A) is A (M x K, row stride lda) or,
   with transA, the transpose of A stored K x M. Likewise B. beta == 0 overwrites C. */
L2C_API void l2c_gemm(int transA, int transB, int M, int N, int K, float alpha,
                      const float *A, int lda, const float *B, int ldb,
                      float beta, float *C, int ldc);
/* Unfolds a C x H x W image into a (C*K*K) x (OH*OW) column matrix for a K x K window.
   Row r of the matrix starts at col + r * ldcol (ldcol >= OH*OW), so the columns of a whole batch
   can sit side by side. */
L2C_API void l2c_im2col(const float *im, int c, int h, int w, int k, int stride, int pad,
                        float *col, size_t ldcol);
/* Adds a column matrix back into an image (the adjoint of im2col). `im` is accumulated into. */
L2C_API void l2c_col2im(const float *col, size_t ldcol, int c, int h, int w, int k, int stride,
                        int pad, float *im);

/* ================================================================================================
   9. THE ATTACK (DeepConfuse)
   Two generator copies: `frozen` (xi) makes the data the victim really trains on, `trainable` (xi')
   learns. A fresh victim every trial; each step (a) takes a look-ahead SGD step of the victim on
   x' = clamp(x + eps*g_xi'(x)), (b) moves xi' by Adam to raise (non-targeted) or lower (targeted,
   against label_map[y]) the look-ahead victim's loss on the clean batch, with the hypergradient
   obtained by a central difference of input gradients along v = grad of that loss (no double
   back-propagation), and (c) takes the real victim step on data from the frozen generator. At the
   end of a trial xi <- xi'.
   Before the trials, a warm-up (this library's head start) teaches the generator to make a
   reference ensemble of clean-trained classifiers read images of class y as class w(y); during the
   trials an `anchor` keeps that objective alongside the paper's, so that the poison keeps
   transferring to architectures other than the imaginary victim (README: the schedule study).
   ================================================================================================ */

#define L2C_MAX_CLASSES 256
enum { L2C_PAIR_NEXT = 0, L2C_PAIR_NEAREST = 1, L2C_PAIR_REACHABLE = 2, L2C_PAIR_GIVEN = 3 };
/* Generator learning-rate schedules (l2c_attack_config.lr_schedule). */
enum { L2C_LR_CONSTANT = 0, L2C_LR_COSINE = 1 };
/* What the trials' hypergradient optimises (l2c_attack_config.objective). */
enum { L2C_OBJ_LOOKAHEAD = 0, L2C_OBJ_ALIGN = 1 };
/* l2c_attack_config.victim_optimizer: how the trials' imaginary victim trains. */
enum { L2C_VICTIM_SGD = 0, L2C_VICTIM_ADAM = 1, L2C_VICTIM_ALTERNATE = 2 };
/* l2c_attack_config.untargeted_loss: which clean loss the non-targeted trials work on. */
enum { L2C_UNTARGETED_XENT = 0, L2C_UNTARGETED_COMPLEMENT = 1 };

typedef struct l2c_attack_progress {
    int trial, trials;        /* 1-based trial (0: the warm-up), total */
    int step, steps;          /* 1-based step within the trial, steps per trial */
    float victim_loss;        /* the real victim's loss on its poisoned batch */
    float clean_loss;         /* the look-ahead victim's loss on the clean batch (targeted: vs eta);
                                 in the warm-up the classifiers' loss against the warm-up targets
                                 (with noise_weight, plus that weight times the noise-only loss) */
    double seconds;           /* wall time since l2c_attack_run started */
} l2c_attack_progress;

typedef struct l2c_attack_config {
    float eps;             /* L-inf bound of the perturbation, in (0, 1]           default 0.3 */
    float victim_lr;       /* SGD learning rate of the victim (alpha); also the reference
                              classifiers' lr. Scale it with batch (the paper: 0.01 at 64)  default 0.04 */
    float gen_lr;          /* Adam learning rate of the generator                  default 1e-3 */
    int batch;             /* mini-batch size (the paper: 64)                      default 256 */
    int trials;            /* number of trials                                     default 32 */
    int steps_per_trial;   /* steps per trial (xi <- xi' after each); 0 = one epoch default 25 */
    int victims;           /* victims trained in turn, one step each (a pool)      default 1 */
    int victim_lifetime;   /* a victim's own steps before it is replaced; 0 =
                              steps_per_trial (the paper: a fresh victim per trial)  default 0 */
    int targeted;          /* 0: non-targeted; 1: label-specific with label_map     default 0 */
    int label_map[L2C_MAX_CLASSES]; /* eta(y) for the targeted mode; w(y) for the non-targeted one
                              with pairing L2C_PAIR_GIVEN                     default y+1 mod K */
    float fd_radius;       /* finite-difference radius r * |v|                     default 0.01 */
    int warmup_steps;      /* head start: generator steps against a classifier trained on clean
                              data, before trial 1 (0: none, the paper's start)   default 1250 */
    float warmup_epochs;   /* epochs of clean training of the reference classifiers (a fraction
                              is a share of one epoch's batches; at least one batch) default 1 */
    int pairing;           /* non-targeted warm-up targets w(y): L2C_PAIR_NEXT (y+1),
                              L2C_PAIR_NEAREST (the derangement the reference classifiers find
                              easiest: most confusable classes paired), or L2C_PAIR_REACHABLE (the
                              derangement whose targets eps-bounded perturbations of each class
                              reach most easily, measured against the references by a short
                              signed-gradient search), or L2C_PAIR_GIVEN (w(y) = label_map[y], a
                              derangement the caller chose: every class some other class's target,
                              none its own; README: study of 2026-12-05, late)  default L2C_PAIR_NEXT */
    float anchor;          /* weight of the warm-up objective kept during the trials, relative to
                              the hypergradient (0: the paper's pure objective)     default 1 */
    float shortcut;        /* weight of an error-minimising term in the trials, relative to the
                              hypergradient: xi' also lowers the current victim's loss on its own
                              poisoned batch (true labels), so that victims learn the noise, not the
                              image, as the label (0: the paper's objective)        default 0 */
    float noise_weight;    /* weight of a noise term in the warm-up and the anchor: the reference
                              ensemble should also read the noise alone, x' - x, as w(y) (the
                              objective adds noise_weight times that loss), so that the noise is a
                              class pattern a victim can take for the label: a shortcut ("noise
                              only" accuracy) at some cost in how far below chance the victims
                              fall (README: the v0.10.0 study) (0: off)               default 0 */
    float warmup_temperature; /* soft warm-up targets: 0, the warm-up and the anchor push each
                              member towards the one-hot class w(y) (cross-entropy); T > 0, towards
                              that member's own output, softened at temperature T, on a clean
                              training image of class w(y) drawn at random per image and step
                              (l2c_softmax_kl): the poison then carries what a real w(y) looks like
                              to the member, not only its label (README: study of 2026-12-04,
                              night)                                                   default 0 */
    int warmup_shift;      /* input diversity: each reference member sees the poisoned batch
                              translated by a random (dx, dy) in [-shift, shift] pixels (zero fill),
                              drawn anew per member and step, in the warm-up and the anchor, so
                              that the noise need not rest on exact pixel positions (0: off; 1 was
                              the default in 0.15.0 and lost to 0 over five seeds: README, study
                              of v0.15.0)                                              default 0 */
    float victim_momentum; /* momentum of the imaginary victim's SGD, in [0, 1): a victim trained like
                              the paper's CNN recipes (SGD 0.01, momentum 0.9) gets further in a
                              trial; the look-ahead then takes the full momentum step. Needs
                              victims = 1, victim_lifetime 0 (a fresh victim, and velocity, each
                              trial: a checkpoint holds no velocity) and no added victim
                              architectures (0: the paper's plain SGD)               default 0 */
    int victim_shift;      /* the imaginary victim's augmentation: in the trials it trains (look-ahead
                              and real step) on poisoned images each translated by its own random
                              (dx, dy) in [-shift, shift] pixels (zero fill), as a defender who
                              augments with shifts would; the hypergradient goes back through the
                              translation (0: off, the paper's victim)                default 0 */
    int lr_schedule;       /* generator lr: L2C_LR_CONSTANT, or L2C_LR_COSINE (gen_lr decayed to 0
                              along a half cosine over the warm-up, and again over all the trials'
                              steps; a run resumed with more trials follows the longer
                              curve from where it stands)                     default L2C_LR_CONSTANT */
    int objective;         /* the trials' objective: L2C_OBJ_LOOKAHEAD, the paper's look-ahead loss
                              (first order: raise -v.g, v the clean-loss gradient after the look-ahead,
                              g the victim's gradient on the poisoned batch), or L2C_OBJ_ALIGN,
                              the cosine between g and -v (targeted: +v), as in gradient-matching
                              poisons: only g's direction counts, not its size
                                                                      default L2C_OBJ_LOOKAHEAD */
    int victim_optimizer;  /* the trials' imaginary victim: L2C_VICTIM_SGD (victim_lr, victim_momentum;
                              the paper), L2C_VICTIM_ADAM (Adam at victim_adam_lr, betas 0.9 / 0.999,
                              as many defenders train: the look-ahead takes Adam's step, and the
                              hypergradient goes through it exactly), or L2C_VICTIM_ALTERNATE (SGD in
                              odd trials, Adam in even ones). Adam needs victims = 1, victim_lifetime
                              0, victim_momentum 0, the look-ahead objective and no added victim
                              architectures                                   default L2C_VICTIM_SGD */
    float victim_adam_lr;  /* the Adam victim's learning rate (also its look-ahead step)   default 1e-3 */
    int clamp_inward;      /* the generator's gradient through the poison's clamp to [0, 1]: 0, the
                              exact derivative, which is zero at every clamped pixel, so a pixel the
                              generator pushed out of range (a background pixel below 0, say) no
                              longer learns; 1, a straight-through estimate that also passes a
                              clamped pixel's gradient when the generator's step would move it back
                              into range (warm-up and trials)                          default 0 */
    int untargeted_loss;   /* non-targeted trials: L2C_UNTARGETED_XENT raises the look-ahead victim's
                              clean cross-entropy (the paper); L2C_UNTARGETED_COMPLEMENT lowers its
                              -log(1 - p_y) (l2c_softmax_complement), whose pull fades on images the
                              victim already gets wrong and so falls on those it still gets right.
                              Needs the look-ahead objective        default L2C_UNTARGETED_XENT */
    uint64_t seed;         /* victim initialisation and batch order                default 1 */
    /* Called after every step (may be NULL); a non-zero return stops the attack after that step. */
    int (*progress)(const l2c_attack_progress *p, void *user);
    void *user;
} l2c_attack_config;

typedef struct l2c_attack l2c_attack;

/* The paper's eps (0.3) and victim lr per image (0.01 at batch 64: here 0.04 at batch 256), with
   this library's faster schedule (README): generator Adam lr 1e-3, a 1,250-step warm-up, then 32
   trials of 25 steps with anchor 1 and w(y) = y+1. Add reference classifiers with
   l2c_attack_add_reference. */
L2C_API void l2c_attack_defaults(l2c_attack_config *cfg, int nclasses);
/* The defaults for a label-specific attack: those of l2c_attack_defaults with targeted = 1 (label
   map y -> y+1 mod nclasses) and anchor 2, measured best for this mode (README: the label-specific
   table). Change label_map afterwards for another map. */
L2C_API void l2c_attack_targeted_defaults(l2c_attack_config *cfg, int nclasses);
/* Prepares an attack on `train` (kept by pointer; must outlive the attack). The generator is copied
   (frozen and trainable copies); the victim model is used as a template for fresh victims. Checks
   that the generator maps the data's shape onto itself and ends in a tanh layer (the bound
   |eps g(x)| <= eps rests on it), that the victim emits nclasses logits, and the data set itself
   (at least two classes, every label below nclasses). */
L2C_API l2c_attack *l2c_attack_new(const l2c_attack_config *cfg, const l2c_model *generator,
                                   const l2c_model *victim, const l2c_dataset *train);
L2C_API void l2c_attack_free(l2c_attack *a);
/* One step (a)-(c) on a batch x (n x C x H x W in [0,1]) with labels. */
L2C_API int l2c_attack_step(l2c_attack *a, const float *x, const uint8_t *labels, int n);
/* Runs trials until cfg.trials are complete (or the progress callback asks to stop). A trial in
   progress when stopped is not counted: resume from l2c_attack_save. */
L2C_API int l2c_attack_run(l2c_attack *a);
/* Runs the next phase: the warm-up while it is pending (see below), else exactly one trial (a fresh
   victim, steps_per_trial steps, then xi <- xi'). Returns 1 if the progress callback stopped it
   (the phase is then not counted), 0 when complete, <0 on error.
   The warm-up (a head start; cfg.warmup_steps > 0) trains the reference ensemble (the victim's
   architecture and any added with l2c_attack_add_reference) on clean data for cfg.warmup_epochs
   epochs (SGD, momentum 0.9), then takes warmup_steps Adam steps of the trainable generator to make
   every member read each poisoned image of class y as class w(y): w(y) = y+1 mod K, the nearest or
   reachable pairing or label_map[y] (non-targeted, cfg.pairing), or the class that label_map sends
   to y (targeted). A victim
   trained on such images learns "features of w(y) mean y", the association that the trials then
   sharpen (with cfg.anchor, the trials keep this objective too). Ends with xi <- xi'. */
L2C_API int l2c_attack_run_trial(l2c_attack *a);
/* Adds a classifier architecture to the reference ensemble of the warm-up (and of the anchor): the
   warm-up makes every member read poisoned images of class y as w(y), with equal weight. The
   victim's architecture is always the first member; up to L2C_MAX_REFERENCES in all. The model is
   copied and re-initialised from the seed, then trained on clean data with the victim's recipe
   (SGD, momentum 0.9, victim_lr) before its first use; a resumed attack retrains them to the same
   weights (the checkpoint does not hold them: add the same members again before resuming). Call
   before the warm-up runs. Diverse members
   (a linear model, an MLP, a max-pooling CNN) make the poison transfer to victims of other
   architectures (README). */
#define L2C_MAX_REFERENCES 8
L2C_API int l2c_attack_add_reference(l2c_attack *a, const l2c_model *classifier);
/* Adds an architecture of imaginary victim: the trials then take the architectures in turn (trial t
   trains a fresh victim of architecture t mod (1 + added), the victim template first), so that the
   hypergradient learns to mislead several kinds of learner, not one. Each is trained like the
   template (plain SGD, victim_lr). Needs cfg.victims = 1; up to L2C_MAX_REFERENCES in all. The
   model is copied; a checkpoint resumes only with the same added victims. */
L2C_API int l2c_attack_add_victim(l2c_attack *a, const l2c_model *classifier);
/* Copies the warm-up targets w(y) (nclasses entries) into w once they are set (the reference
   classifiers are trained at the start of the warm-up, or of the first anchored trial); else
   L2C_EINVAL. A victim of the poison tends to read clean images of class w(y) as y. */
L2C_API int l2c_attack_warmup_targets(const l2c_attack *a, int *w);
/* Whether the warm-up is complete (or not asked for). */
L2C_API int l2c_attack_warmed_up(const l2c_attack *a);
/* Steps (a)-(b) without the updates: leaves the gradient of the generator objective (what Adam
   minimises: -L(f_theta'(x), y), or +L(f_theta'(x), eta(y)) when targeted) in the trainable
   generator's grads, and the look-ahead victim's clean loss in *clean_loss. Changes neither model's
   weights (the trainable generator's BN running statistics do move, as in a training step). For
   tests and custom schedules. */
L2C_API int l2c_attack_generator_grad(l2c_attack *a, const float *x, const uint8_t *labels, int n,
                                      float *clean_loss);
/* The trainable generator (xi') and the current victim (theta). */
L2C_API l2c_model *l2c_attack_trainable(l2c_attack *a);
L2C_API l2c_model *l2c_attack_victim(l2c_attack *a);
/* Completed trials so far. */
L2C_API int l2c_attack_trials_done(const l2c_attack *a);
/* The frozen generator (the one to release poisons with). */
L2C_API const l2c_model *l2c_attack_generator(const l2c_attack *a);
/* Saves / restores everything needed to resume after the last completed trial: both generators,
   the Adam state and the trial counter (one atomic file). The file also records the attack's
   settings (every l2c_attack_config field but trials and the callback), the generator's and
   victims' architectures and the reference ensemble: l2c_attack_load refuses a checkpoint made
   under others, with a message naming the first difference, and leaves the attack untouched.
   trials may differ (a finished run can be extended). */
L2C_API int l2c_attack_save(const l2c_attack *a, const char *path);
L2C_API int l2c_attack_load(l2c_attack *a, const char *path);
/* l2c_attack_load for a checkpoint made under other settings, which the attack then continues under
   its own (a study that changes the trials' knobs after a shared warm-up, say). Architectures,
   reference ensemble and file are checked as by l2c_attack_load. */
L2C_API int l2c_attack_load_under_new_settings(l2c_attack *a, const char *path);

/* Poison release: out = quantised clamp(x + eps * g(x), 0, 1) with g in eval mode, same labels;
   g must map the images' shape onto itself and end in tanh.
   |out - clean| <= eps (+ one grey level from rounding). `out` is allocated (free with
   l2c_dataset_free; it is zeroed first, so freeing it after a failure is safe too). `fraction` in
   [0, 1] poisons only the first fraction*n samples. */
L2C_API int l2c_poison_dataset(const l2c_model *generator, const l2c_dataset *clean, float eps,
                               float fraction, l2c_dataset *out);
/* Scales the part of a released poison that all images of a class share: for each class c,
   m_c is the mean of (poisoned - clean) over the images of class c that differ from their clean
   original; each of those gets boost * m_c added, rounded, and is clamped to [0, 255] and to the
   integer budget floor(eps * 255) around its clean image, so |poisoned - clean| <= eps still holds.
   Images identical to their clean originals (the unpoisoned part when fraction < 1) stay so. The
   victims learn the class-shared part: boost -1 removes it and leaves them at 85-88 % clean
   accuracy (an analysis); boost 1 fooled them further on one poison seed of three and less on the
   other two, and scatters the label-specific mode's answers (README: study of 2026-12-06, later);
   boost 0 changes nothing. `poisoned` must hold clean's images, shape and labels
   in the same order (l2c_poison_dataset's output); boost must be finite and >= -1. */
L2C_API int l2c_poison_boost_class_mean(const l2c_dataset *clean, l2c_dataset *poisoned, float eps, float boost);
/* Combines `count` releases of the same clean set (l2c_poison_dataset outputs of independently
   trained generators: same images, shape and labels in the same order): per pixel, the released
   perturbations (release - clean) are averaged (add 0) or added (add 1), added to the clean pixel,
   rounded, and clamped to [0, 255] and to the integer budget floor(eps * 255) around it, so the
   result stays within eps. Two runs of the defaults combined beat either alone (README: study of
   2026-12-06, evening, last). `out` (not clean, not a release) is allocated (free with
   l2c_dataset_free; it is zeroed first, so freeing it after a failure is safe); count in [1, 64]. */
L2C_API int l2c_poison_combine(const l2c_dataset *clean, const l2c_dataset *releases, int count, float eps,
                               int add, l2c_dataset *out);
/* A defence against poisons whose images of a class share a perturbation (this library's own, in
   both modes: README, "Broken by a simple defence"). For each class c and pixel k it estimates the
   shared part as s = mean(train images of c) - mean(the first per_class images of c in
   clean_sample, a small trusted labelled sample), shrinks it towards zero by noise_z standard
   errors of that sample mean (soft threshold: what sampling noise alone could explain is not
   subtracted), and subtracts it from every training image of class c (rounded, clamped to
   [0, 255]), in place. noise_z 0 subtracts the raw estimate, which on an unpoisoned set is a
   class-wise noise pattern that victims learn as a shortcut (100 per class: the reference CNN
   99.0 -> 80.8 % clean accuracy); 3 leaves a clean set almost as it was and still undoes this
   library's poison (README: study of 2026-12-06, evening). clean_sample must have train's image
   shape and classes and at least one image of every class train holds (with one, nothing is
   shrunk: no spread to measure); per_class >= 1 (fewer are used when the sample has fewer);
   noise_z in [0, 100]. On bad input train is left as it was. */
L2C_API int l2c_defend_class_mean(l2c_dataset *train, const l2c_dataset *clean_sample, int per_class, float noise_z);
/* The generator's perturbation alone, before the clamp and the quantisation: noise = eps * g(x)
   for n images x (n * c * h * w floats, the generator's input shape), g in eval mode; noise has room
   for as many floats. What the paper feeds a poisoned victim for its "noise only" accuracy
   (ALGORITHM.md section 5); l2c_poison_dataset's release keeps only the part that survives the
   clamp. Fails with a message on NULL arguments, n < 1, eps outside (0, 1], a non-finite input or
   a model whose output is not the image's shape (a classifier). */
L2C_API int l2c_generator_noise(const l2c_model *generator, const float *x, int n, float eps, float *noise);

/* Reference MNIST models of the paper's code (1 x 28 x 28 input):
   victim: conv5 1->20 BN ReLU avgpool2, conv5 20->50 BN ReLU avgpool2, dense 800->500 BN ReLU,
   dense 500->10 BN; width_percent 50 / 100 / 200 gives the small / reference / large CNN.
   generator: conv3 s3 p1 1->16 BN ReLU maxpool2, conv3 s2 p1 16->64 BN ReLU maxpool2 s1,
   deconv k3 s2 64->128 BN ReLU, deconv k5 s3 p1 128->64 BN ReLU, deconv k2 s2 p1 64->1 BN tanh.
   autoencoder: the paper's encoder-decoder: four 4x4 conv layers of 16/32/64/128 channels
   (28 -> 14 -> 7 -> 6 -> 5) and four 4x4 transposed convs back (64/32/16/1), BN + ReLU between,
   BN + tanh at the end.
   All are initialised from `seed`. NULL on allocation failure (or width_percent < 1). */
L2C_API l2c_model *l2c_mnist_victim(int width_percent, uint64_t seed);
L2C_API l2c_model *l2c_mnist_generator(uint64_t seed);
L2C_API l2c_model *l2c_mnist_autoencoder(uint64_t seed);
/* The same encoder-decoder for any channels x height x width input (height and width multiples of
   4, at least 12), with base / 2*base / 4*base / 8*base channels (the paper: base 16). A smaller
   base is a cheaper generator (README: the generator's width). NULL with a message otherwise. */
L2C_API l2c_model *l2c_autoencoder(int channels, int height, int width, int base, uint64_t seed);
/* Common MNIST classifiers by name, initialised from `seed`: "softmax" (linear), "mlp" (784-512-512-10
   ReLU), "mlp-wide" (784-1024-10), "lenet" (conv5 20, maxpool, conv5 50, maxpool, dense 500, ReLU,
   no BN), "cnn3x3" (conv3 16, maxpool, conv3 32, maxpool, dense 128), "cnn-pt" (the PyTorch MNIST
   example's network without dropout: conv3 32, ReLU, conv3 64, ReLU, maxpool, dense 128, ReLU),
   "cnn-small", "cnn", "cnn-large" (l2c_mnist_victim at 50 / 100 / 200 %). NULL with a message for an
   unknown name. */
L2C_API l2c_model *l2c_mnist_classifier(const char *name, uint64_t seed);

#ifdef __cplusplus
}
#endif
#endif /* L2C_INCLUDE_LEARN2CONFUSE_H */

/* ================================================================================================
   ================================================================================================
   IMPLEMENTATION
   ================================================================================================
   ================================================================================================ */
#ifdef L2C_IMPLEMENTATION

#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <stdarg.h>
#include <math.h>
#include <time.h>
#include <assert.h>
#ifdef _OPENMP
#include <omp.h>
#define L2C_OMP(x) _Pragma(#x)
#else
#define L2C_OMP(x)
#endif

/* The three allocator macros come as a set: a custom malloc paired with the C library's free would
   corrupt the heap, so defining only some of them is an error. */
#if defined(L2C_MALLOC) && defined(L2C_REALLOC) && defined(L2C_FREE)
#elif !defined(L2C_MALLOC) && !defined(L2C_REALLOC) && !defined(L2C_FREE)
#define L2C_MALLOC(n) malloc(n)
#define L2C_REALLOC(p, n) realloc(p, n)
#define L2C_FREE(p) free(p)
#else
#error "learn2confuse.h: define all or none of L2C_MALLOC, L2C_REALLOC and L2C_FREE"
#endif
#ifndef L2C_ASSERT
#define L2C_ASSERT(x) assert(x)
#endif

/* Parallel loops below this many elements are not worth waking a second thread for. */
#define L2C__PAR_MIN 32768

/* ---------------------------------------------------------------- 1. errors and threads -------- */

static char l2c__errbuf[512];

L2C_API const char *l2c_error(void) { return l2c__errbuf; }
L2C_API void l2c_clear_error(void) { l2c__errbuf[0] = 0; }

/* Records a message and returns `code`, so failures read `return l2c__fail(L2C_EINVAL, ...)`. */
static int l2c__fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l2c__errbuf, sizeof l2c__errbuf, fmt, ap);
    va_end(ap);
    return code;
}

static void *l2c__fail_null(int code, const char *fmt, const char *what)
{
    (void)l2c__fail(code, fmt, what);
    return NULL;
}

static void *l2c__calloc(size_t n)
{
    void *p = L2C_MALLOC(n ? n : 1);
    if (p) memset(p, 0, n);
    else (void)l2c__fail(L2C_ENOMEM, "out of memory (%lu bytes)", (unsigned long)n);
    return p;
}

L2C_API int l2c_set_threads(int n)
{
#ifdef _OPENMP
    static int default_threads = 0;   /* what OMP_NUM_THREADS (or the runtime) chose at start */
    if (!default_threads) default_threads = omp_get_max_threads();
    if (n <= 0) n = default_threads;
    omp_set_num_threads(n);
    return n;
#else
    (void)n;
    return 1;
#endif
}

L2C_API int l2c_get_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

L2C_API double l2c_seconds(void)
{
#ifdef _OPENMP
    return omp_get_wtime();
#else
    return (double)clock() / CLOCKS_PER_SEC;
#endif
}

/* ---------------------------------------------------------------- 2. random numbers ------------ */

static uint64_t l2c__splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

L2C_API void l2c_rng_seed(l2c_rng *rng, uint64_t seed)
{
    rng->s[0] = l2c__splitmix64(&seed);
    rng->s[1] = l2c__splitmix64(&seed);
    if (!(rng->s[0] | rng->s[1])) rng->s[1] = 1;
}

/* xorshift128+; the high 32 bits are the well-mixed ones. */
L2C_API uint32_t l2c_rng_u32(l2c_rng *rng)
{
    uint64_t s1 = rng->s[0];
    const uint64_t s0 = rng->s[1];
    rng->s[0] = s0;
    s1 ^= s1 << 23;
    rng->s[1] = s1 ^ s0 ^ (s1 >> 18) ^ (s0 >> 5);
    return (uint32_t)((rng->s[1] + s0) >> 32);
}

L2C_API float l2c_rng_uniform(l2c_rng *rng)
{
    return (float)(l2c_rng_u32(rng) >> 8) * (1.0f / 16777216.0f);
}

L2C_API uint32_t l2c_rng_below(l2c_rng *rng, uint32_t n)
{
    uint32_t limit = (uint32_t)(0xFFFFFFFFu - (0xFFFFFFFFu % n));   /* reject the biased tail */
    uint32_t r;
    do r = l2c_rng_u32(rng); while (r >= limit);
    return r % n;
}

/* ---------------------------------------------------------------- 3. tensors and the tape ------ */

L2C_API size_t l2c_tensor_size(const l2c_tensor *t)
{
    return (size_t)t->n * (size_t)t->c * (size_t)t->h * (size_t)t->w;
}

static int l2c__shape_ok(int n, int c, int h, int w)
{
    return n > 0 && c > 0 && h > 0 && w > 0 &&
           (double)n * c * h * w < 2147483647.0;
}

L2C_API l2c_tensor *l2c_tensor_new(int n, int c, int h, int w, int with_grad)
{
    l2c_tensor *t;
    size_t size;
    if (!l2c__shape_ok(n, c, h, w))
        return (l2c_tensor *)l2c__fail_null(L2C_EINVAL, "%s: impossible tensor shape", "l2c_tensor_new");
    size = (size_t)n * c * h * w;
    t = (l2c_tensor *)l2c__calloc(sizeof *t);
    if (!t) return NULL;
    t->n = n; t->c = c; t->h = h; t->w = w;
    t->data = (float *)l2c__calloc(size * sizeof(float));
    t->grad = with_grad ? (float *)l2c__calloc(size * sizeof(float)) : NULL;
    if (!t->data || (with_grad && !t->grad)) { l2c_tensor_free(t); return NULL; }
    return t;
}

L2C_API void l2c_tensor_free(l2c_tensor *t)
{
    if (!t) return;
    L2C_FREE(t->data);
    L2C_FREE(t->grad);
    L2C_FREE(t);
}

/* A recorded operation. `backward` reads out->grad and accumulates into the inputs' grads.
   The grad of a node's output is zeroed lazily, by l2c__run_backward just before the first gradient
   lands in it (the backward of its last consumer): a forward-only pass (eval, releasing a poison)
   never zeroes anything, and the zeroing happens while the buffer is about to be used. For that a
   node knows which earlier node produced each input (src) and whether its own out->grad holds
   values yet (live). Tensors made outside the tape's nodes (l2c_tape_input, parameters, heap
   tensors) are zeroed eagerly or by their owner, as before. */
typedef struct l2c__node l2c__node;
struct l2c__node {
    void (*backward)(l2c__node *nd);
    l2c_tape *tape;     /* for scratch memory during backward */
    l2c_tensor *in[3];
    l2c_tensor *out;
    int ip[4];          /* integer settings: stride, pad, kernel, ... */
    float fp[2];        /* float settings */
    void *save[2];      /* saved forward state (in the arena) */
    const void *extra;  /* labels, label map */
    int src[3];         /* index of the node whose output is in[k], or -1 */
    int live;           /* out->grad has been zeroed (and may hold gradient) */
    int may_overwrite;  /* backward can write in[0]->grad whole instead of adding to it ... */
    int fresh;          /* ... and is to, this time: nothing is in it yet (not even zeros) */
};

/* Arena: a list of chunks; on reset they are merged into one big enough for the whole step, so the
   steady state is a single bump allocator that never calls malloc. */
typedef struct l2c__chunk { struct l2c__chunk *next; size_t size, used; } l2c__chunk;

struct l2c_tape {
    l2c__chunk *chunks;      /* newest first */
    size_t total;            /* bytes held by all chunks */
    l2c__node *nodes;
    int nnodes, cap_nodes;
    int param_grads;
    int out_of_memory;       /* an arena allocation failed since the last backward began */
};

#define L2C__ALIGN 64

L2C_API l2c_tape *l2c_tape_new(void)
{
    l2c_tape *t = (l2c_tape *)l2c__calloc(sizeof *t);
    if (t) t->param_grads = 1;
    return t;
}

static void l2c__free_chunks(l2c_tape *t)
{
    while (t->chunks) {
        l2c__chunk *next = t->chunks->next;
        L2C_FREE(t->chunks);
        t->chunks = next;
    }
    t->total = 0;
}

L2C_API void l2c_tape_free(l2c_tape *t)
{
    if (!t) return;
    l2c__free_chunks(t);
    L2C_FREE(t->nodes);
    L2C_FREE(t);
}

static l2c__chunk *l2c__chunk_new(size_t size)
{
    l2c__chunk *c = (l2c__chunk *)L2C_MALLOC(sizeof(l2c__chunk) + L2C__ALIGN + size);
    if (!c) return NULL;
    c->next = NULL; c->size = size; c->used = 0;
    return c;
}

L2C_API void l2c_tape_reset(l2c_tape *t)
{
    t->nnodes = 0;
    t->param_grads = 1;
    if (t->chunks && t->chunks->next) {   /* several chunks: merge into one for next time */
        size_t total = t->total;
        l2c__free_chunks(t);
        t->chunks = l2c__chunk_new(total);
        if (t->chunks) t->total = total;
    }
    if (t->chunks) t->chunks->used = 0;
}

L2C_API size_t l2c_tape_bytes(const l2c_tape *t) { return t->total; }

L2C_API void l2c_tape_param_grads(l2c_tape *t, int enabled) { t->param_grads = enabled; }

/* Bump allocation of `size` bytes, 64-byte aligned (SIMD loads, no false sharing). */
static void *l2c__alloc(l2c_tape *t, size_t size)
{
    l2c__chunk *c = t->chunks;
    uintptr_t base, at;
    size = (size + L2C__ALIGN - 1) & ~(size_t)(L2C__ALIGN - 1);
    if (!c || c->used + size > c->size) {
        size_t want = size > ((size_t)1 << 20) ? size : ((size_t)1 << 20);
        if (c && want < c->size) want = c->size;
        c = l2c__chunk_new(want);
        if (!c) {
            t->out_of_memory = 1;   /* backward kernels cannot return codes: l2c__run_backward reports it */
            (void)l2c__fail(L2C_ENOMEM, "tape: out of memory (%lu bytes)", (unsigned long)want);
            return NULL;
        }
        c->next = t->chunks;
        t->chunks = c;
        t->total += want;
    }
    base = ((uintptr_t)(c + 1) + L2C__ALIGN - 1) & ~(uintptr_t)(L2C__ALIGN - 1);
    at = base + c->used;
    c->used += size;
    return (void *)at;
}

static float *l2c__alloc_floats(l2c_tape *t, size_t n) { return (float *)l2c__alloc(t, n * sizeof(float)); }

static float *l2c__alloc_zeros(l2c_tape *t, size_t n)
{
    float *p = l2c__alloc_floats(t, n);
    if (p) memset(p, 0, n * sizeof(float));
    return p;
}

/* A tensor header in the arena with fresh data (uninitialised) and, if asked, a grad: zeroed, or
   left for l2c__run_backward to zero when zero_grad is 0 (node outputs). */
static l2c_tensor *l2c__tensor_ex(l2c_tape *t, int n, int c, int h, int w, int with_grad, int zero_grad)
{
    l2c_tensor *x;
    size_t size;
    if (!l2c__shape_ok(n, c, h, w)) { (void)l2c__fail(L2C_EINVAL, "impossible tensor shape %dx%dx%dx%d", n, c, h, w); return NULL; }
    size = (size_t)n * c * h * w;
    x = (l2c_tensor *)l2c__alloc(t, sizeof *x);
    if (!x) return NULL;
    x->n = n; x->c = c; x->h = h; x->w = w;
    x->data = l2c__alloc_floats(t, size);
    x->grad = !with_grad ? NULL : zero_grad ? l2c__alloc_zeros(t, size) : l2c__alloc_floats(t, size);
    if (!x->data || (with_grad && !x->grad)) return NULL;
    return x;
}

static l2c_tensor *l2c__tensor(l2c_tape *t, int n, int c, int h, int w, int with_grad)
{
    return l2c__tensor_ex(t, n, c, h, w, with_grad, 1);
}

/* Index of the node that produced x, or -1 (an input, a parameter, a heap tensor). A backward
   search: the producer is usually one of the last nodes; parameters cost a full scan, which for
   tapes of tens of nodes is noise next to any operation. */
static int l2c__producer(const l2c_tape *t, const l2c_tensor *x)
{
    int i;
    if (!x || !x->grad) return -1;
    for (i = t->nnodes - 1; i >= 0; i--)
        if (t->nodes[i].out == x) return i;
    return -1;
}

L2C_API l2c_tensor *l2c_tape_input(l2c_tape *t, int n, int c, int h, int w, const float *data,
                                   int with_grad)
{
    l2c_tensor *x = l2c__tensor(t, n, c, h, w, with_grad);
    if (x && data) memcpy(x->data, data, l2c_tensor_size(x) * sizeof(float));
    return x;
}

/* Appends a node whose output is a new tensor of the given shape; the output wants a gradient when
   any input has one. Returns NULL (message set) on failure. */
static l2c__node *l2c__record(l2c_tape *t, void (*backward)(l2c__node *), l2c_tensor *a,
                              l2c_tensor *b, l2c_tensor *c, int n, int ch, int h, int w)
{
    l2c__node *nd;
    int wants = (a && a->grad) || (b && b->grad) || (c && c->grad);
    if (t->nnodes == t->cap_nodes) {
        int cap = t->cap_nodes ? 2 * t->cap_nodes : 64;
        l2c__node *nodes = (l2c__node *)L2C_REALLOC(t->nodes, (size_t)cap * sizeof *nodes);
        if (!nodes) { (void)l2c__fail(L2C_ENOMEM, "tape: out of memory"); return NULL; }
        t->nodes = nodes;
        t->cap_nodes = cap;
    }
    nd = &t->nodes[t->nnodes];
    memset(nd, 0, sizeof *nd);
    nd->backward = backward;
    nd->tape = t;
    nd->in[0] = a; nd->in[1] = b; nd->in[2] = c;
    nd->src[0] = l2c__producer(t, a); nd->src[1] = l2c__producer(t, b); nd->src[2] = l2c__producer(t, c);
    nd->out = l2c__tensor_ex(t, n, ch, h, w, wants, 0);
    if (!nd->out) return NULL;
    t->nnodes++;
    return nd;
}

/* Zeroes the grad of node i's output unless that was done already. */
static void l2c__make_live(l2c_tape *t, int i)
{
    l2c__node *nd = &t->nodes[i];
    if (nd->live) return;
    memset(nd->out->grad, 0, l2c_tensor_size(nd->out) * sizeof(float));
    nd->live = 1;
}

/* Makes the gradient of `out` ready to be seeded: zeroed if a node produced it and nothing has. */
static void l2c__seed_ready(l2c_tape *t, const l2c_tensor *out)
{
    int i = l2c__producer(t, out);
    if (i >= 0) l2c__make_live(t, i);
}

/* Readies the input grads of node nd before its backward: zeroed, unless it is the first to write
   in[0]->grad and can write it whole (may_overwrite), which saves a pass over the buffer. */
static void l2c__ready_inputs(l2c_tape *t, l2c__node *nd)
{
    int k;
    nd->fresh = 0;
    for (k = 0; k < 3; k++) {
        const int j = nd->src[k];
        if (j < 0 || t->nodes[j].live) continue;
        if (k == 0 && nd->may_overwrite && nd->in[1] != nd->in[0] && nd->in[2] != nd->in[0]) {
            t->nodes[j].live = 1;
            nd->fresh = 1;
        } else {
            l2c__make_live(t, j);
        }
    }
}

/* Replays the nodes in reverse. A node whose output gradient was never reached (it does not lead
   to the seeded output) contributes nothing, so it is skipped; its grad is zeroed for anyone who
   reads it. */
static int l2c__run_backward(l2c_tape *t)
{
    int i;
    t->out_of_memory = 0;
    for (i = t->nnodes - 1; i >= 0; i--) {
        l2c__node *nd = &t->nodes[i];
        if (!nd->out->grad) continue;
        if (!nd->live) { l2c__make_live(t, i); continue; }
        l2c__ready_inputs(t, nd);
        nd->backward(nd);
        nd->fresh = 0;
    }
    /* a kernel that could not get its workspace skipped its work: the gradients are incomplete */
    return t->out_of_memory ? L2C_ENOMEM : L2C_OK;
}

L2C_API int l2c_backward(l2c_tape *t, l2c_tensor *out)
{
    if (!out || l2c_tensor_size(out) != 1)
        return l2c__fail(L2C_EINVAL, "l2c_backward: needs a scalar (1x1x1x1) output");
    if (!out->grad)
        return l2c__fail(L2C_EINVAL, "l2c_backward: the output depends on nothing that wants a gradient");
    l2c__seed_ready(t, out);
    out->grad[0] += 1.0f;
    return l2c__run_backward(t);
}

L2C_API int l2c_backward_from(l2c_tape *t, l2c_tensor *out, const float *seed)
{
    size_t i, n;
    if (!out || !seed) return l2c__fail(L2C_EINVAL, "l2c_backward_from: NULL argument");
    if (!out->grad)
        return l2c__fail(L2C_EINVAL, "l2c_backward_from: the output depends on nothing that wants a gradient");
    n = l2c_tensor_size(out);
    l2c__seed_ready(t, out);
    for (i = 0; i < n; i++) out->grad[i] += seed[i];
    return l2c__run_backward(t);
}

/* ---------------------------------------------------------------- 8. kernels ------------------- */

/* -- matrix multiply: blocked and packed (Goto-style), OpenMP over the outer blocks */
/* ---- l2c_gemm: single-precision matrix multiply (Goto/BLIS-style) -------
   Expects L2C_OMP(x), L2C_MALLOC(sz) and L2C_FREE(p) to be defined already.

   Structure: C is split into at most one tile per thread; each tile runs the
   classic five loops (N by NC, K by KC, M by MC, then NR-column by 6-row
   micro-tiles).  op(B) is packed into NR-wide column panels and op(A) into
   6-row panels, so the micro-kernel reads both with unit stride, and it keeps
   a 6x32 block of C in 12 AVX-512 registers (6x16 with AVX2, 6x8 SSE).

   Determinism: an element's summation order depends only on K (K-block
   boundaries, then k in increasing order inside a block), never on the
   tiling or the thread count, so results are bit-identical across repeats
   and thread counts for a given binary.  (Only the unpacked fallback, used
   if the workspace cannot be allocated, sums K in one block.) */

/* Register block: 6 rows x NR columns, NR = 2 vector registers' worth, so
   the accumulators take 12 registers plus 2 for B and 1 broadcast: it fits
   the 16 vector registers of SSE/AVX2 and the 32 of AVX-512, and 12
   independent FMA chains cover FMA latency x ports.  (A 6x32 block on AVX2
   would need 24 accumulators and spill.) */
#define L2C__GEMM_MR 6
#if defined(__AVX512F__)
#define L2C__GEMM_NR 32
#elif defined(__AVX__)
#define L2C__GEMM_NR 16
#else
#define L2C__GEMM_NR 8
#endif
/* KC: a B micro-panel is KC*NR*4 bytes = 32 KiB at 256 with AVX-512, which
   stays in a 48 KiB L1d while 6-row A panels stream past it. */
#ifndef L2C__GEMM_KC
#define L2C__GEMM_KC 256
#endif
/* MC: an MC x KC packed A block (192 KiB) stays resident in L2. */
#ifndef L2C__GEMM_MC
#define L2C__GEMM_MC 192
#endif
/* NC: a KC x NC packed B block (2 MiB) lives in L2/L3; it is reused by every
   MC block of the tile, so larger NC means fewer re-packs of A. */
#ifndef L2C__GEMM_NC
#define L2C__GEMM_NC 2048
#endif
/* Rough multiply-add cost of an OpenMP fork/join, used to decide whether a
   product is worth splitting across threads. */
#define L2C__GEMM_FORK_FMAS 1000000.0

/* Fused multiply-add when the target has it: one rounding, and it lets gcc
   emit vfmadd even under -std=c99 (where it does not contract a*b+c). */
#if defined(FP_FAST_FMAF) || defined(__FMA__)
#define L2C__GEMM_FMA(a, b, c) fmaf((a), (b), (c))
#else
#define L2C__GEMM_FMA(a, b, c) ((a) * (b) + (c))
#endif

/* gcc and clang prefer 256-bit vectors on AVX-512 CPUs (e.g. -march=native
   on Ice Lake / Sapphire Rapids), which halves the kernel's peak.  Ask for
   512-bit vectors on the hot functions only; both attributes only change
   tuning, never the instruction set, so they are safe wherever AVX-512F is
   already enabled.  noinline: once inlined into a caller, the caller's
   tuning (256-bit) would apply again. */
#if defined(__AVX512F__) && defined(__clang__) && !defined(__apple_build_version__) && __clang_major__ >= 12
#define L2C__GEMM_HOT __attribute__((noinline, target("tune=x86-64")))
#elif defined(__AVX512F__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 8
#define L2C__GEMM_HOT __attribute__((noinline, target("prefer-vector-width=512")))
#else
#define L2C__GEMM_HOT
#endif

/* gcc: unroll the 6-row loop early.  Otherwise, when the j-loop is short
   enough to be unrolled first (NR=16, AVX2), gcc's loop interchange swaps
   the row loop with the k loop and c[][] ends up in memory (~4x slower). */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 8
#define L2C__GEMM_UNROLL_MR _Pragma("GCC unroll 6")
#else
#define L2C__GEMM_UNROLL_MR
#endif

/* Cache prefetch hint where the compiler has one; otherwise nothing. */
#if defined(__GNUC__) && !defined(__TINYC__)
#define L2C__GEMM_PREFETCH(p) __builtin_prefetch(p)
#else
#define L2C__GEMM_PREFETCH(p) ((void)0)
#endif

typedef struct {
    int M, N, K;
    float alpha, beta;
    const float *A;
    const float *B;
    float *C;
    int ldc;
    /* op(A)(i,p) = A[i*ars + p*acs], op(B)(p,j) = B[p*brs + j*bcs] */
    int ars, acs, brs, bcs;
} l2c__gemm_args;

typedef struct {
    void *raw;     /* what L2C_MALLOC returned */
    float *a;      /* MC x KC packed A block, 64-byte aligned */
    float *b;      /* KC x NC packed B block, 64-byte aligned */
} l2c__gemm_buf;

/* Grow-only per-thread packing buffers, allocated on first use. */
static l2c__gemm_buf *l2c__gemm_ws = NULL;
static int l2c__gemm_ws_n = 0;

static int l2c__gemm_min(int a, int b) { return a < b ? a : b; }

/* Start of part t of n when `units` units of size `unit` are split evenly
   (64-bit intermediate: units * t can exceed INT_MAX). */
static int l2c__gemm_split(int units, int t, int n, int unit)
{
    return (int)((long long)units * t / n) * unit;
}

/* Frees the packing workspace (safe to call at any time outside l2c_gemm). */
void l2c__gemm_release(void)
{
    int t;
    for (t = 0; t < l2c__gemm_ws_n; t++) L2C_FREE(l2c__gemm_ws[t].raw);
    L2C_FREE(l2c__gemm_ws);
    l2c__gemm_ws = NULL;
    l2c__gemm_ws_n = 0;
}

static float *l2c__gemm_align64(void *p)
{
    return (float *)(((uintptr_t)p + 63u) & ~(uintptr_t)63u);
}

/* Ensures buffers for up to `want` threads; returns how many exist (may be
   fewer than wanted, or 0, if allocation fails). */
static int l2c__gemm_reserve(int want)
{
    const size_t na = (size_t)L2C__GEMM_MC * L2C__GEMM_KC;
    const size_t nb = (size_t)L2C__GEMM_KC * L2C__GEMM_NC;
    l2c__gemm_buf *ws;
    int t;
    if (want <= l2c__gemm_ws_n) return want;
    ws = (l2c__gemm_buf *)L2C_MALLOC((size_t)want * sizeof *ws);
    if (!ws) return l2c__gemm_ws_n;
    for (t = 0; t < l2c__gemm_ws_n; t++) ws[t] = l2c__gemm_ws[t];
    for (; t < want; t++) {
        void *raw = L2C_MALLOC((na + nb) * sizeof(float) + 128);
        if (!raw) break;
        ws[t].raw = raw;
        ws[t].a = l2c__gemm_align64(raw);
        ws[t].b = l2c__gemm_align64(ws[t].a + na);
    }
    L2C_FREE(l2c__gemm_ws);
    l2c__gemm_ws = ws;
    l2c__gemm_ws_n = t;
    return t;
}

/* Writes an mr x nr block: C = alpha*acc + beta*C.  beta == 0 never reads C
   so NaN/garbage there cannot leak into the result. */
static void l2c__gemm_store(const float *acc, int accld, float *C, int ldc,
                            int mr, int nr, float alpha, float beta)
{
    int i, j;
    for (i = 0; i < mr; i++) {
        const float *s = acc + (size_t)i * accld;
        float *d = C + (size_t)i * ldc;
        if (beta == 0.0f)
            for (j = 0; j < nr; j++) d[j] = alpha * s[j];
        else if (beta == 1.0f)
            for (j = 0; j < nr; j++) d[j] += alpha * s[j];
        else
            for (j = 0; j < nr; j++) d[j] = alpha * s[j] + beta * d[j];
    }
}

/* The micro-kernel: a 6xNR block of C from kc steps of a packed 6-row A
   panel and a packed NR-column B panel.  Constant trip counts let gcc and
   clang unroll i/j fully and keep c[][] in registers.  The C tile is
   prefetched first: it is usually a cache miss (C is revisited once per
   K block) and the loads would otherwise stall the write-back. */
L2C__GEMM_HOT
static void l2c__gemm_micro(int kc, const float *restrict a,
                            const float *restrict b, float *C, int ldc,
                            int mr, int nr, float alpha, float beta)
{
    float c[L2C__GEMM_MR][L2C__GEMM_NR];
    int i, j, p;
    for (i = 0; i < mr; i++) {
        L2C__GEMM_PREFETCH(C + (size_t)i * ldc);
        L2C__GEMM_PREFETCH(C + (size_t)i * ldc + nr - 1);
    }
    for (i = 0; i < L2C__GEMM_MR; i++)
        for (j = 0; j < L2C__GEMM_NR; j++) c[i][j] = 0.0f;
    for (p = 0; p < kc; p++) {
        L2C__GEMM_UNROLL_MR
        for (i = 0; i < L2C__GEMM_MR; i++) {
            const float ai = a[i];
            for (j = 0; j < L2C__GEMM_NR; j++)
                c[i][j] = L2C__GEMM_FMA(ai, b[j], c[i][j]);
        }
        a += L2C__GEMM_MR;
        b += L2C__GEMM_NR;
    }
    if (mr == L2C__GEMM_MR && nr == L2C__GEMM_NR) {
        /* full tile: constant bounds, so c[][] never leaves registers */
        for (i = 0; i < L2C__GEMM_MR; i++) {
            float *d = C + (size_t)i * ldc;
            if (beta == 0.0f)
                for (j = 0; j < L2C__GEMM_NR; j++) d[j] = alpha * c[i][j];
            else if (beta == 1.0f)
                for (j = 0; j < L2C__GEMM_NR; j++) d[j] += alpha * c[i][j];
            else
                for (j = 0; j < L2C__GEMM_NR; j++) d[j] = alpha * c[i][j] + beta * d[j];
        }
    } else {
        l2c__gemm_store(&c[0][0], L2C__GEMM_NR, C, ldc, mr, nr, alpha, beta);
    }
}

/* Packs op(A)[m0:m0+mc, p0:p0+kc] as 6-row panels, p-major inside a panel;
   rows past mc are zero so the kernel never needs a row tail.  Full panels
   get constant-trip loops so the 6-element transpose is fully unrolled. */
static void l2c__gemm_pack_a(const l2c__gemm_args *g, int m0, int mc, int p0,
                             int kc, float *dst)
{
    const size_t rs = (size_t)g->ars, cs = (size_t)g->acs;
    int ir, i, p;
    for (ir = 0; ir < mc; ir += L2C__GEMM_MR) {
        const int mr = l2c__gemm_min(L2C__GEMM_MR, mc - ir);
        const float *src = g->A + (size_t)(m0 + ir) * rs + (size_t)p0 * cs;
        if (mr == L2C__GEMM_MR) {
            for (p = 0; p < kc; p++, dst += L2C__GEMM_MR)
                for (i = 0; i < L2C__GEMM_MR; i++) dst[i] = src[i * rs + p * cs];
        } else {
            for (p = 0; p < kc; p++, dst += L2C__GEMM_MR) {
                for (i = 0; i < mr; i++) dst[i] = src[i * rs + p * cs];
                for (; i < L2C__GEMM_MR; i++) dst[i] = 0.0f;
            }
        }
    }
}

/* Packs op(B)[p0:p0+kc, n0:n0+nc] as NR-column panels (panel jr starts at
   dst + jr*kc), p-major inside a panel; columns past nc are zero.  Plain B
   is copied row by row.  B^T is written the same way, one packed row of NR
   at a time read across NR source rows: the compiler vectorises that loop
   with gathers, which measured ~15% faster overall than walking each source
   row with scalar stores scattered down a panel. */
static void l2c__gemm_pack_b(const l2c__gemm_args *g, int p0, int kc, int n0,
                             int nc, float *dst)
{
    const size_t rs = (size_t)g->brs, cs = (size_t)g->bcs;
    const float *src = g->B + (size_t)p0 * rs + (size_t)n0 * cs;
    const int full = nc / L2C__GEMM_NR * L2C__GEMM_NR;
    int jr, j, p;
    if (cs == 1) {
        for (p = 0; p < kc; p++) {
            const float *s = src + (size_t)p * rs;
            for (jr = 0; jr < full; jr += L2C__GEMM_NR) {
                float *d = dst + (size_t)jr * kc + (size_t)p * L2C__GEMM_NR;
                for (j = 0; j < L2C__GEMM_NR; j++) d[j] = s[jr + j];
            }
        }
    } else {
        for (jr = 0; jr < full; jr += L2C__GEMM_NR) {
            const float *s = src + (size_t)jr * cs;
            float *d = dst + (size_t)jr * kc;
            for (p = 0; p < kc; p++)
                for (j = 0; j < L2C__GEMM_NR; j++) d[(size_t)p * L2C__GEMM_NR + j] = s[(size_t)j * cs + p];
        }
    }
    if (full < nc) {   /* last, partial panel: copy what exists, zero the rest */
        const float *s = src + (size_t)full * cs;
        float *d = dst + (size_t)full * kc;
        const int nr = nc - full;
        for (p = 0; p < kc; p++, d += L2C__GEMM_NR) {
            if (cs == 1) for (j = 0; j < nr; j++) d[j] = s[(size_t)p * rs + j];
            else for (j = 0; j < nr; j++) d[j] = s[(size_t)j * cs + p];
            for (j = nr; j < L2C__GEMM_NR; j++) d[j] = 0.0f;
        }
    }
}

/* Runs the micro-kernel over a packed mc x kc A block and kc x nc B block.
   jr outside ir keeps one B micro-panel in L1 while A panels stream from L2. */
static void l2c__gemm_macro(int mc, int nc, int kc, const float *Ap,
                            const float *Bp, float *C, int ldc,
                            float alpha, float beta)
{
    int ir, jr;
    for (jr = 0; jr < nc; jr += L2C__GEMM_NR) {
        const int nr = l2c__gemm_min(L2C__GEMM_NR, nc - jr);
        for (ir = 0; ir < mc; ir += L2C__GEMM_MR)
            l2c__gemm_micro(kc, Ap + (size_t)ir * kc, Bp + (size_t)jr * kc,
                            C + (size_t)ir * ldc + jr, ldc,
                            l2c__gemm_min(L2C__GEMM_MR, mc - ir), nr, alpha, beta);
    }
}

/* K-block length: K split into equal blocks of at most KC (e.g. 300 ->
   150+150 rather than 256+44).  Depends on K only, which is what keeps the
   summation order independent of the tiling. */
static int l2c__gemm_kstep(int K)
{
    const int nblk = (K + L2C__GEMM_KC - 1) / L2C__GEMM_KC;
    return (K + nblk - 1) / nblk;
}

/* Computes C[m0:m1, n0:n1] with the packed algorithm. */
static void l2c__gemm_tile(const l2c__gemm_args *g, int m0, int m1, int n0,
                           int n1, const l2c__gemm_buf *buf)
{
    const int ks = l2c__gemm_kstep(g->K);
    int jc, pc, ic;
    for (jc = n0; jc < n1; jc += L2C__GEMM_NC) {
        const int nc = l2c__gemm_min(L2C__GEMM_NC, n1 - jc);
        for (pc = 0; pc < g->K; pc += ks) {
            const int kc = l2c__gemm_min(ks, g->K - pc);
            /* beta applies once, with the first K block; later blocks add */
            const float beta = pc == 0 ? g->beta : 1.0f;
            l2c__gemm_pack_b(g, pc, kc, jc, nc, buf->b);
            for (ic = m0; ic < m1; ic += L2C__GEMM_MC) {
                const int mc = l2c__gemm_min(L2C__GEMM_MC, m1 - ic);
                l2c__gemm_pack_a(g, ic, mc, pc, kc, buf->a);
                l2c__gemm_macro(mc, nc, kc, buf->a, buf->b,
                                g->C + (size_t)ic * g->ldc + jc, g->ldc,
                                g->alpha, beta);
            }
        }
    }
}

/* Unpacked path for tiny products and for when the workspace cannot be
   allocated: C[m0:m1, n0:n1], one row and NR columns at a time, k in order. */
L2C__GEMM_HOT
static void l2c__gemm_direct(const l2c__gemm_args *g, int m0, int m1,
                             int n0, int n1)
{
    float acc[L2C__GEMM_NR];
    int i, j0, j, p;
    for (i = m0; i < m1; i++) {
        const float *a = g->A + (size_t)i * g->ars;
        for (j0 = n0; j0 < n1; j0 += L2C__GEMM_NR) {
            const int nr = l2c__gemm_min(L2C__GEMM_NR, n1 - j0);
            const float *b = g->B + (size_t)j0 * g->bcs;
            for (j = 0; j < L2C__GEMM_NR; j++) acc[j] = 0.0f;
            if (nr == L2C__GEMM_NR && g->bcs == 1) {
                /* common case: constant bounds keep acc[] in registers */
                for (p = 0; p < g->K; p++) {
                    const float ap = a[(size_t)p * g->acs];
                    const float *bp = b + (size_t)p * g->brs;
                    for (j = 0; j < L2C__GEMM_NR; j++) acc[j] = L2C__GEMM_FMA(ap, bp[j], acc[j]);
                }
            } else {
                for (p = 0; p < g->K; p++) {
                    const float ap = a[(size_t)p * g->acs];
                    const float *bp = b + (size_t)p * g->brs;
                    for (j = 0; j < nr; j++)
                        acc[j] = L2C__GEMM_FMA(ap, bp[(size_t)j * g->bcs], acc[j]);
                }
            }
            l2c__gemm_store(acc, 0, g->C + (size_t)i * g->ldc + j0, g->ldc,
                            1, nr, g->alpha, g->beta);
        }
    }
}

/* Picks a tm x tn grid of tiles (tm*tn <= maxt threads, one tile each) that
   minimises the estimated time of the slowest tile: its multiply-adds plus
   the packing it does, plus a fork/join cost if more than one thread.
   Tile edges fall on 6-row / NR-column boundaries. */
static void l2c__gemm_grid(int M, int N, int K, int maxt, int *tm, int *tn)
{
    const int mu = (M + L2C__GEMM_MR - 1) / L2C__GEMM_MR;
    const int nu = (N + L2C__GEMM_NR - 1) / L2C__GEMM_NR;
    double best = -1.0;
    int t, a;
    *tm = *tn = 1;
    for (t = 1; t <= maxt; t++) {
        for (a = 1; a <= t; a++) {
            const int b = t / a;
            double rows, cols, cost;
            if (a * b != t || a > mu || b > nu) continue;
            rows = (double)((mu + a - 1) / a) * L2C__GEMM_MR;
            cols = (double)((nu + b - 1) / b) * L2C__GEMM_NR;
            /* packing one element costs about as much as ~16 FMAs */
            cost = (double)K * (rows * cols + 16.0 * (rows + cols));
            if (t > 1) cost += L2C__GEMM_FORK_FMAS;
            if (best < 0.0 || cost < best) { best = cost; *tm = a; *tn = b; }
        }
    }
}

/* Scales C by beta (beta == 0: zero it without reading) for K == 0 or
   alpha == 0, where no products contribute. */
static void l2c__gemm_scale(int M, int N, float beta, float *C, int ldc)
{
    int i, j;
    for (i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        if (beta == 0.0f)
            for (j = 0; j < N; j++) c[j] = 0.0f;
        else if (beta != 1.0f)
            for (j = 0; j < N; j++) c[j] *= beta;
    }
}

static int l2c__gemm_max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static int l2c__gemm_thread_num(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* Unpacked path over all of C, on several threads if the product is big
   enough: split over rows, or over NR-column groups when M is tiny. */
static void l2c__gemm_direct_par(const l2c__gemm_args *g)
{
    const int nu = (g->N + L2C__GEMM_NR - 1) / L2C__GEMM_NR;
    const int byrow = g->M >= l2c__gemm_max_threads() || g->M >= nu;
    int nt = (double)g->M * g->N * g->K > 4.0 * L2C__GEMM_FORK_FMAS
                 ? l2c__gemm_max_threads() : 1;
    int t;
    nt = l2c__gemm_min(nt, byrow ? g->M : nu);
    if (nt <= 1) { l2c__gemm_direct(g, 0, g->M, 0, g->N); return; }
    L2C_OMP(omp parallel for num_threads(nt) schedule(static))
    for (t = 0; t < nt; t++) {
        if (byrow)
            l2c__gemm_direct(g, l2c__gemm_split(g->M, t, nt, 1),
                             l2c__gemm_split(g->M, t + 1, nt, 1), 0, g->N);
        else
            l2c__gemm_direct(g, 0, g->M, l2c__gemm_split(nu, t, nt, L2C__GEMM_NR),
                             l2c__gemm_min(g->N, l2c__gemm_split(nu, t + 1, nt, L2C__GEMM_NR)));
    }
}

/* Runs the packed algorithm on a tm x tn grid of tiles, one per thread. */
static void l2c__gemm_packed(const l2c__gemm_args *g, int tm, int tn)
{
    const int mu = (g->M + L2C__GEMM_MR - 1) / L2C__GEMM_MR;
    const int nu = (g->N + L2C__GEMM_NR - 1) / L2C__GEMM_NR;
    const int nt = tm * tn;
    int t;
    if (nt == 1) { l2c__gemm_tile(g, 0, g->M, 0, g->N, &l2c__gemm_ws[0]); return; }
    /* a "for" rather than one tile per thread id, so a team smaller than
       requested still covers every tile; the buffer follows the thread. */
    L2C_OMP(omp parallel for num_threads(nt) schedule(static))
    for (t = 0; t < nt; t++) {
        const int r = t / tn, s = t % tn;
        const int m0 = l2c__gemm_split(mu, r, tm, L2C__GEMM_MR);
        const int m1 = l2c__gemm_split(mu, r + 1, tm, L2C__GEMM_MR);
        const int n0 = l2c__gemm_split(nu, s, tn, L2C__GEMM_NR);
        const int n1 = l2c__gemm_split(nu, s + 1, tn, L2C__GEMM_NR);
        l2c__gemm_tile(g, m0, l2c__gemm_min(m1, g->M), n0, l2c__gemm_min(n1, g->N),
                       &l2c__gemm_ws[l2c__gemm_thread_num()]);
    }
}

/* C[MxN] = alpha * op(A)[MxK] * op(B)[KxN] + beta * C; all row-major.
   op(A) = A stored MxK with row stride lda (lda >= K), or, when transA != 0,
   A^T where A is stored KxM (lda >= M).  op(B) likewise (B stored KxN,
   ldb >= N; or transB: stored NxK, ldb >= K).  beta == 0 means C is
   overwritten without being read.  Not reentrant (shared static workspace):
   call from one thread at a time, outside OpenMP parallel regions. */
void l2c_gemm(int transA, int transB, int M, int N, int K, float alpha,
              const float *A, int lda, const float *B, int ldb,
              float beta, float *C, int ldc)
{
    l2c__gemm_args g;
    int tm, tn, have;
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.0f) { l2c__gemm_scale(M, N, beta, C, ldc); return; }
    g.M = M; g.N = N; g.K = K; g.alpha = alpha; g.beta = beta;
    g.A = A; g.B = B; g.C = C; g.ldc = ldc;
    g.ars = transA ? 1 : lda;  g.acs = transA ? lda : 1;
    g.brs = transB ? 1 : ldb;  g.bcs = transB ? ldb : 1;
    l2c__gemm_grid(M, N, K, l2c__gemm_max_threads(), &tm, &tn);
    have = l2c__gemm_reserve(tm * tn);
    if (have < tm * tn) l2c__gemm_grid(M, N, K, have, &tm, &tn);
    if (have == 0) { l2c__gemm_direct_par(&g); return; }
    l2c__gemm_packed(&g, tm, tn);
}
/* ---- end l2c_gemm ------------------------------------------------------- */

/* ---- per-image products --------------------------------------------------------------------
   Convolutions multiply one weight matrix by a matrix per image: C_i = op(A) * B_i. Doing that
   image by image keeps B_i and C_i in cache and lets B_i / C_i be slices of NCHW tensors, so no
   batch-sized column matrix or channel-major transpose is needed. op(A) is packed once (into
   arena memory) and shared by all threads; each thread packs B_i into its own gemm workspace.
   Every element is summed over K in the same blocks and order as l2c_gemm, whatever the thread
   count, so results are bit-identical across thread counts. */

typedef struct l2c__img_gemm {
    l2c__gemm_args g;          /* M, K, alpha, beta, A and strides; N and ldc are per image */
    const float *B;            /* B_i = B + i * bstep (row stride ldb) */
    size_t bstep;
    float *bscratch;           /* or, when not NULL, B_i is made by pre in a per-thread slot of
                                  bstep floats here (group slots per thread) */
    int group;                 /* images per product (l2c__img_gemm_group), set by run */
    float *C;                  /* C_i = C + i * cstep, or per-thread scratch when cstep == 0 */
    size_t cstep;
    float *apack;              /* packed op(A): K blocks of roundup(M, MR) x kc */
    void (*pre)(void *ctx, int i, float *b, int ldb);       /* before image i's product: may write
                                                               B_i at b (may be NULL) */
    void (*post)(void *ctx, int i, const float *c, int ldc); /* after it, with C_i (may be NULL) */
    void *ctx;
} l2c__img_gemm;

static size_t l2c__img_gemm_apack_size(int M, int K)
{
    return (size_t)((M + L2C__GEMM_MR - 1) / L2C__GEMM_MR * L2C__GEMM_MR) * (size_t)K;
}

static int l2c__round_nr(int n) { return (n + L2C__GEMM_NR - 1) / L2C__GEMM_NR * L2C__GEMM_NR; }

/* Packs all of op(A), K block after K block (block pc starts at apack + Mr * pc). */
static void l2c__img_gemm_pack_a(const l2c__img_gemm *ig)
{
    const int ks = l2c__gemm_kstep(ig->g.K);
    const size_t mr = l2c__img_gemm_apack_size(ig->g.M, 1);
    int pc;
    for (pc = 0; pc < ig->g.K; pc += ks)
        l2c__gemm_pack_a(&ig->g, 0, ig->g.M, pc, l2c__gemm_min(ks, ig->g.K - pc), ig->apack + mr * pc);
}

/* l2c__gemm_macro over all M rows of the shared packed A, MC rows at a time: with a tall A (a
   deconvolution's 1600 x 128) the block in use stays in L2 while every B panel passes over it. */
static void l2c__img_gemm_macro(int M, int nc, int kc, const float *Ap, const float *Bp, float *C,
                                int ldc, float alpha, float beta)
{
    const int mc = L2C__GEMM_MC / L2C__GEMM_MR * L2C__GEMM_MR;   /* whole panels of A */
    int ic;
    for (ic = 0; ic < M; ic += mc)
        l2c__gemm_macro(l2c__gemm_min(mc, M - ic), nc, kc, Ap + (size_t)ic * kc, Bp,
                        C + (size_t)ic * ldc, ldc, alpha, beta);
}

/* Where B_i is: in the batch matrix, or in slot `slot` of thread tid's scratch. */
static float *l2c__img_gemm_b(const l2c__img_gemm *ig, int i, int tid, int slot)
{
    if (ig->bscratch) return ig->bscratch + ((size_t)tid * ig->group + slot) * ig->bstep;
    return (float *)ig->B + (size_t)i * ig->bstep;
}

/* C_i = op(A) b for one image, on the calling thread, with packing buffer bbuf (KC x NC). */
static void l2c__img_gemm_one(const l2c__img_gemm *ig, const float *b, float *c, float *bbuf)
{
    l2c__gemm_args g = ig->g;
    const int ks = l2c__gemm_kstep(g.K);
    const size_t mr = l2c__img_gemm_apack_size(g.M, 1);
    int jc, pc;
    g.B = b;
    for (jc = 0; jc < g.N; jc += L2C__GEMM_NC) {
        const int nc = l2c__gemm_min(L2C__GEMM_NC, g.N - jc);
        for (pc = 0; pc < g.K; pc += ks) {
            const int kc = l2c__gemm_min(ks, g.K - pc);
            l2c__gemm_pack_b(&g, pc, kc, jc, nc, bbuf);
            l2c__img_gemm_macro(g.M, nc, kc, ig->apack + mr * pc, bbuf, c + jc, g.ldc, g.alpha,
                                pc == 0 ? g.beta : 1.0f);
        }
    }
}

/* Images per product. A map narrower than a register block wastes most of it (a 2x2 map fills 4 of
   32 columns), so the columns of g images go side by side into one product: g minimises the padded
   columns per image, within 8 register blocks and what the gemm workspace can hold (its B block
   holds the packed panels and the M x g*N result). 1 = image by image. */
static int l2c__img_gemm_group(int M, int N)
{
    const size_t room = (size_t)L2C__GEMM_KC * L2C__GEMM_NC;
    int g, best = 1;
    for (g = 2; g * N <= 8 * L2C__GEMM_NR; g++) {
        const size_t need = (size_t)L2C__GEMM_KC * l2c__round_nr(g * N) + (size_t)M * g * N;
        if (need <= room && (double)l2c__round_nr(g * N) / g < (double)l2c__round_nr(best * N) / best - 1e-9)
            best = g;
    }
    return best;
}

/* Scratch floats for B_i slots when B_i are made per thread (bscratch). */
static size_t l2c__img_gemm_bscratch_size(int M, int N, int K, int threads)
{
    return (size_t)threads * l2c__img_gemm_group(M, N) * (size_t)K * N;
}

/* Packs rows p0..p0+kc of [B_i0 | B_i0+1 | ... ] (gn images side by side) as NR-column panels,
   like l2c__gemm_pack_b; columns past the last image are zero. */
static void l2c__img_gemm_pack_group(const l2c__img_gemm *ig, int i0, int gn, int tid, int p0, int kc,
                                     float *dst)
{
    const int N = ig->g.N;
    int p, i, j;
    for (p = 0; p < kc; p++) {
        float *d = dst + (size_t)p * L2C__GEMM_NR;
        int off = 0;
        for (i = 0; i < gn; i++) {
            const float *s = l2c__img_gemm_b(ig, i0 + i, tid, i) + (size_t)(p0 + p) * ig->g.brs;
            for (j = 0; j < N;) {   /* in runs up to the panel's edge: no test per float */
                const int run = l2c__gemm_min(N - j, L2C__GEMM_NR - off);
                int t;
                for (t = 0; t < run; t++) d[off + t] = s[j + t];
                j += run, off += run;
                if (off == L2C__GEMM_NR) { off = 0; d += (size_t)L2C__GEMM_NR * kc; }
            }
        }
        while (off > 0 && off < L2C__GEMM_NR) d[off++] = 0.0f;
    }
}

/* C = s + beta C for an M x N block (beta == 0: C is not read). */
static void l2c__img_gemm_put(const float *s, int lds, float *C, int ldc, int M, int N, float beta)
{
    int r, j;
    for (r = 0; r < M; r++, s += lds, C += ldc) {
        if (beta == 0.0f) memcpy(C, s, (size_t)N * sizeof(float));
        else for (j = 0; j < N; j++) C[j] = s[j] + beta * C[j];
    }
}

/* Images i0..i0+gn-1 as one product into ws (the thread's gemm B block): packed panels first, then
   the M x gn*N result, which is copied out to each C_i (cstep != 0) and handed to post. Each element
   is summed over K in the same blocks and order as image by image. */
static void l2c__img_gemm_several(const l2c__img_gemm *ig, int i0, int gn, int tid, float *ws)
{
    const int M = ig->g.M, N = ig->g.N, cols = gn * N, ks = l2c__gemm_kstep(ig->g.K);
    const size_t mr = l2c__img_gemm_apack_size(M, 1);
    float *c = ws + (size_t)L2C__GEMM_KC * l2c__round_nr(cols);
    int pc, i;
    if (ig->pre) for (i = 0; i < gn; i++) ig->pre(ig->ctx, i0 + i, l2c__img_gemm_b(ig, i0 + i, tid, i), ig->g.brs);
    for (pc = 0; pc < ig->g.K; pc += ks) {
        const int kc = l2c__gemm_min(ks, ig->g.K - pc);
        l2c__img_gemm_pack_group(ig, i0, gn, tid, pc, kc, ws);
        l2c__img_gemm_macro(M, cols, kc, ig->apack + mr * pc, ws, c, cols, ig->g.alpha, pc == 0 ? 0.0f : 1.0f);
    }
    for (i = 0; i < gn; i++) {
        float *ci = ig->cstep ? ig->C + (size_t)(i0 + i) * ig->cstep : NULL;
        if (ig->cstep) l2c__img_gemm_put(c + (size_t)i * N, cols, ci, ig->g.ldc, M, N, ig->g.beta);
        if (ig->post) {
            if (ig->cstep) ig->post(ig->ctx, i0 + i, ci, ig->g.ldc);
            else ig->post(ig->ctx, i0 + i, c + (size_t)i * N, cols);
        }
    }
}

/* Runs pre / product / post for images 0..n-1, in parallel over images (or groups of images, see
   l2c__img_gemm_group) when worthwhile. scratch: when cstep == 0, nthreads blocks of cscratch floats
   for C_i. Returns 0, or -1 if the gemm workspace could not be had (nothing done; the caller then
   fails the op). */
static int l2c__img_gemm_run(l2c__img_gemm *ig, int n, float *scratch, size_t cscratch)
{
    const double work = (double)ig->g.M * ig->g.N * ig->g.K * n;
    const int g = l2c__img_gemm_group(ig->g.M, ig->g.N), groups = (n + g - 1) / g;
    int nt = work > 4.0 * L2C__GEMM_FORK_FMAS ? l2c__gemm_max_threads() : 1, q;
    ig->group = g;
    if (nt > groups) nt = groups;
    nt = l2c__gemm_reserve(nt);
    if (nt < 1) return -1;
    l2c__img_gemm_pack_a(ig);
    L2C_OMP(omp parallel for num_threads(nt) schedule(static) if(nt > 1))
    for (q = 0; q < groups; q++) {
        const int tid = l2c__gemm_thread_num();
        float *c, *b;
        if (g > 1) { l2c__img_gemm_several(ig, q * g, l2c__gemm_min(g, n - q * g), tid, l2c__gemm_ws[tid].b); continue; }
        b = l2c__img_gemm_b(ig, q, tid, 0);
        c = ig->cstep ? ig->C + (size_t)q * ig->cstep : scratch + (size_t)tid * cscratch;
        if (ig->pre) ig->pre(ig->ctx, q, b, ig->g.brs);
        l2c__img_gemm_one(ig, b, c, l2c__gemm_ws[tid].b);
        if (ig->post) ig->post(ig->ctx, q, c, ig->g.ldc);
    }
    return 0;
}

/* Fills in the operands of a per-image product C_i[M x N] = alpha op(A) B_i + beta C_i where
   B_i is K x N with row stride ldb (never transposed) and C_i has row stride ldc. */
static void l2c__img_gemm_init(l2c__img_gemm *ig, int transA, int M, int N, int K, const float *A,
                               int lda, const float *B, int ldb, size_t bstep, float beta,
                               float *C, int ldc, size_t cstep)
{
    memset(ig, 0, sizeof *ig);
    ig->g.M = M; ig->g.N = N; ig->g.K = K; ig->g.alpha = 1.0f; ig->g.beta = beta;
    ig->g.A = A; ig->g.ldc = ldc;
    ig->g.ars = transA ? 1 : lda;  ig->g.acs = transA ? lda : 1;
    ig->g.brs = ldb; ig->g.bcs = 1;
    ig->B = B; ig->bstep = bstep; ig->C = C; ig->cstep = cstep;
}

/* The range of output positions o for which o*stride - pad + ki lands inside [0, size). */
static void l2c__valid_range(int size, int out, int k_off, int stride, int pad, int *lo, int *hi)
{
    int a = pad - k_off, b;
    *lo = a <= 0 ? 0 : (a + stride - 1) / stride;
    b = size - 1 + pad - k_off;                 /* last o with o*stride <= b */
    *hi = b < 0 ? 0 : b / stride + 1;
    if (*hi > out) *hi = out;
    if (*lo > *hi) *lo = *hi;
}

/* The window rows of one (channel, ki, kj) of a stride-1 im2col: row oy of dst (row stride ow),
   for oy in [ylo, yhi), is row oy + dy of src (row stride w) shifted by dx at columns [xlo, xhi);
   the rest of the row is zero. The copy goes 8 floats at a time across all rows, each piece one struct assignment (one
   vector move): for the short rows of small maps (8 floats in the victim's second layer) a
   memcpy call per row cost 2.4x more. Row by row, gcc would turn the pieces back into memcpy
   calls; across rows the strides differ, so it cannot. (Reading floats through a struct of floats
   is allowed by C99 6.5p7.) */
#define L2C__PIECE 8
typedef struct { float v[L2C__PIECE]; } l2c__piece;
static void l2c__im2col_rows_s1(const float *src, int w, int dy, int dx, float *dst, int ow,
                                int ylo, int yhi, int xlo, int xhi)
{
    int oy, x;
    for (oy = ylo; oy < yhi; oy++) {
        for (x = 0; x < xlo; x++) dst[(size_t)oy * ow + x] = 0.0f;
        for (x = xhi; x < ow; x++) dst[(size_t)oy * ow + x] = 0.0f;
    }
    for (x = xlo; x + L2C__PIECE <= xhi; x += L2C__PIECE)
        for (oy = ylo; oy < yhi; oy++)
            *(l2c__piece *)(dst + (size_t)oy * ow + x) =
                *(const l2c__piece *)(src + (size_t)(oy + dy) * w + x + dx);
    for (oy = ylo; oy < yhi; oy++) {
        int t;
        for (t = x; t < xhi; t++) dst[(size_t)oy * ow + t] = src[(size_t)(oy + dy) * w + t + dx];
    }
}

/* The adjoint: src rows [ylo, yhi) (row stride ow), columns [xlo, xhi), added into dst (row
   stride w), in the same pieces (through local copies, so the compiler need not prove that dst
   and src do not overlap). */
static void l2c__col2im_rows_s1(const float *src, int ow, float *dst, int w, int dy, int dx,
                                int ylo, int yhi, int xlo, int xhi)
{
    int oy, x, k;
    for (x = xlo; x + L2C__PIECE <= xhi; x += L2C__PIECE)
        for (oy = ylo; oy < yhi; oy++) {
            float *d = dst + (size_t)(oy + dy) * w + x + dx;
            l2c__piece a = *(const l2c__piece *)d;
            const l2c__piece b = *(const l2c__piece *)(src + (size_t)oy * ow + x);
            for (k = 0; k < L2C__PIECE; k++) a.v[k] += b.v[k];
            *(l2c__piece *)d = a;
        }
    for (oy = ylo; oy < yhi; oy++) {
        int t;
        for (t = x; t < xhi; t++) dst[(size_t)(oy + dy) * w + t + dx] += src[(size_t)oy * ow + t];
    }
}

/* One row of a strided im2col: output row oy of the window offset (ki, kj) of one channel plane.
   Positions outside the image are zero. */
static void l2c__im2col_row(const float *src, int ow, int stride, int pad, int kj, int xlo,
                            int xhi, float *dst)
{
    int ox;
    for (ox = 0; ox < xlo; ox++) dst[ox] = 0.0f;
    for (ox = xlo; ox < xhi; ox++) dst[ox] = src[ox * stride - pad + kj];
    for (ox = xhi; ox < ow; ox++) dst[ox] = 0.0f;
}

/* Planes of up to this many floats, padding included, are unfolded through a zero-bordered copy on
   the stack: the loops then need no bounds tests, which for the small maps of the generator (rows
   of 5 to 14 outputs) cost more than the copying — im2col 1.6-1.9x faster on its 4x4 layers, col2im
   1.4x at stride 1. Larger planes, stride-1 rows long enough for 8-float pieces, and a strided
   col2im (measured slower through the copy) take the bounded path. */
#define L2C__PADDED_PLANE 4096
static int l2c__use_padded_plane(int h, int w, int stride, int pad, int ow, int adjoint)
{
    if ((size_t)(h + 2 * pad) * (size_t)(w + 2 * pad) > L2C__PADDED_PLANE) return 0;
    return adjoint ? stride == 1 && ow < L2C__PIECE : stride > 1 || ow < L2C__PIECE;
}

/* dst ((h + 2 pad) x (w + 2 pad)) = src (h x w) with a zero border of width pad. */
static void l2c__pad_plane(const float *src, int h, int w, int pad, float *dst)
{
    const int wp = w + 2 * pad;
    int y, x;
    for (x = 0; x < pad * wp; x++) dst[x] = 0.0f, dst[(size_t)(h + pad) * wp + x] = 0.0f;
    for (y = 0; y < h; y++) {
        float *d = dst + (size_t)(y + pad) * wp;
        for (x = 0; x < pad; x++) d[x] = 0.0f, d[pad + w + x] = 0.0f;
        for (x = 0; x < w; x++) d[pad + x] = src[(size_t)y * w + x];
    }
}

/* One channel's K*K rows of the column matrix from its padded plane P (row stride wp). */
static void l2c__im2col_padded(const float *P, int wp, int k, int stride, int oh, int ow, float *col, size_t ldcol)
{
    int ki, kj, oy, ox;
    for (ki = 0; ki < k; ki++)
        for (kj = 0; kj < k; kj++) {
            float *row = col + (size_t)(ki * k + kj) * ldcol;
            for (oy = 0; oy < oh; oy++) {
                const float *s = P + (size_t)(oy * stride + ki) * wp + kj;
                float *d = row + (size_t)oy * ow;
                for (ox = 0; ox < ow; ox++) d[ox] = s[ox * stride];
            }
        }
}

/* The adjoint into P: contributions land in the same (ki, kj) order as on the bounded path, and P's
   interior starts as the image, so every sum is rounded exactly as there. */
static void l2c__col2im_padded(const float *col, size_t ldcol, int k, int stride, int oh, int ow, float *P, int wp)
{
    int ki, kj, oy, ox;
    for (ki = 0; ki < k; ki++)
        for (kj = 0; kj < k; kj++) {
            const float *row = col + (size_t)(ki * k + kj) * ldcol;
            for (oy = 0; oy < oh; oy++) {
                const float *s = row + (size_t)oy * ow;
                float *d = P + (size_t)(oy * stride + ki) * wp + kj;
                for (ox = 0; ox < ow; ox++) d[ox * stride] += s[ox];
            }
        }
}

/* One channel of im2col on the bounded path: positions outside the image are written as zero. */
static void l2c__im2col_bounded(const float *src, int h, int w, int k, int stride, int pad, int oh, int ow,
                                float *col, size_t ldcol)
{
    int ki, kj, oy, ox;
    for (ki = 0; ki < k; ki++) {
        int ylo, yhi;
        l2c__valid_range(h, oh, ki, stride, pad, &ylo, &yhi);
        for (kj = 0; kj < k; kj++) {
            float *row = col + (size_t)(ki * k + kj) * ldcol;
            int xlo, xhi;
            l2c__valid_range(w, ow, kj, stride, pad, &xlo, &xhi);
            for (oy = 0; oy < ylo; oy++)
                for (ox = 0; ox < ow; ox++) row[(size_t)oy * ow + ox] = 0.0f;
            if (stride == 1)
                l2c__im2col_rows_s1(src, w, ki - pad, kj - pad, row, ow, ylo, yhi, xlo, xhi);
            else
                for (oy = ylo; oy < yhi; oy++)
                    l2c__im2col_row(src + (size_t)(oy * stride - pad + ki) * w, ow, stride, pad, kj,
                                    xlo, xhi, row + (size_t)oy * ow);
            for (oy = yhi; oy < oh; oy++)
                for (ox = 0; ox < ow; ox++) row[(size_t)oy * ow + ox] = 0.0f;
        }
    }
}

/* One channel of col2im on the bounded path. */
static void l2c__col2im_bounded(const float *col, size_t ldcol, int h, int w, int k, int stride, int pad,
                                int oh, int ow, float *dst)
{
    int ki, kj, oy, ox;
    for (ki = 0; ki < k; ki++) {
        int ylo, yhi;
        l2c__valid_range(h, oh, ki, stride, pad, &ylo, &yhi);
        for (kj = 0; kj < k; kj++) {
            const float *row = col + (size_t)(ki * k + kj) * ldcol;
            int xlo, xhi;
            l2c__valid_range(w, ow, kj, stride, pad, &xlo, &xhi);
            if (stride == 1) {
                l2c__col2im_rows_s1(row, ow, dst, w, ki - pad, kj - pad, ylo, yhi, xlo, xhi);
                continue;
            }
            for (oy = ylo; oy < yhi; oy++) {
                const float *s = row + (size_t)oy * ow;
                float *d = dst + (size_t)(oy * stride - pad + ki) * w;
                for (ox = xlo; ox < xhi; ox++) d[ox * stride - pad + kj] += s[ox];
            }
        }
    }
}

L2C_API void l2c_im2col(const float *im, int c, int h, int w, int k, int stride, int pad,
                        float *col, size_t ldcol)
{
    const int oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1;
    const int padded = l2c__use_padded_plane(h, w, stride, pad, ow, 0);
    float P[L2C__PADDED_PLANE];
    int ch;
    for (ch = 0; ch < c; ch++) {
        const float *src = im + (size_t)ch * h * w;
        float *rows = col + (size_t)ch * k * k * ldcol;
        if (!padded) { l2c__im2col_bounded(src, h, w, k, stride, pad, oh, ow, rows, ldcol); continue; }
        l2c__pad_plane(src, h, w, pad, P);
        l2c__im2col_padded(P, w + 2 * pad, k, stride, oh, ow, rows, ldcol);
    }
}

L2C_API void l2c_col2im(const float *col, size_t ldcol, int c, int h, int w, int k, int stride,
                        int pad, float *im)
{
    const int oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1, wp = w + 2 * pad;
    const int padded = l2c__use_padded_plane(h, w, stride, pad, ow, 1);
    float P[L2C__PADDED_PLANE];
    int ch, y, x;
    for (ch = 0; ch < c; ch++) {
        const float *rows = col + (size_t)ch * k * k * ldcol;
        float *dst = im + (size_t)ch * h * w;
        if (!padded) { l2c__col2im_bounded(rows, ldcol, h, w, k, stride, pad, oh, ow, dst); continue; }
        l2c__pad_plane(dst, h, w, pad, P);
        l2c__col2im_padded(rows, ldcol, k, stride, oh, ow, P, wp);
        for (y = 0; y < h; y++)
            for (x = 0; x < w; x++) dst[(size_t)y * w + x] = P[(size_t)(y + pad) * wp + pad + x];
    }
}

/* ---------------------------------------------------------------- 4. operations ---------------- */

/* Reductions with 16 independent partial sums: the compiler vectorises them without -ffast-math,
   and the summation order is fixed, so results are deterministic. */
#define L2C__LANES 16
static float l2c__sum(const float *a, size_t n)
{
    float acc[L2C__LANES] = { 0 }, total = 0.0f;
    size_t i, k, body = n - n % L2C__LANES;
    for (i = 0; i < body; i += L2C__LANES)
        for (k = 0; k < L2C__LANES; k++) acc[k] += a[i + k];
    for (k = 0; k < L2C__LANES; k++) total += acc[k];
    for (i = body; i < n; i++) total += a[i];
    return total;
}

/* Sum of squared deviations from mu. */
static float l2c__sqdev(const float *a, float mu, size_t n)
{
    float acc[L2C__LANES] = { 0 }, total = 0.0f, d;
    size_t i, k, body = n - n % L2C__LANES;
    for (i = 0; i < body; i += L2C__LANES)
        for (k = 0; k < L2C__LANES; k++) { d = a[i + k] - mu; acc[k] += d * d; }
    for (k = 0; k < L2C__LANES; k++) total += acc[k];
    for (i = body; i < n; i++) { d = a[i] - mu; total += d * d; }
    return total;
}

static size_t l2c__plane(const l2c_tensor *x) { return (size_t)x->h * x->w; }
static size_t l2c__sample(const l2c_tensor *x) { return (size_t)x->c * x->h * x->w; }

static int l2c__check_inputs(const char *op, const l2c_tape *t, const l2c_tensor *x)
{
    if (!t || !x) return l2c__fail(L2C_EINVAL, "%s: NULL tape or input", op);
    return L2C_OK;
}

/* N x C x P  ->  C x (N*P): channel-major, so a whole batch is one matrix product. */
static void l2c__to_channel_major(const float *x, int n, int c, size_t p, float *out)
{
    int i;
    L2C_OMP(omp parallel for if((size_t)n * c * p > L2C__PAR_MIN))
    for (i = 0; i < n; i++) {
        int ch;
        for (ch = 0; ch < c; ch++)
            memcpy(out + (size_t)ch * n * p + (size_t)i * p, x + ((size_t)i * c + ch) * p, p * sizeof(float));
    }
}

/* Bias gradient of a dense layer (g is N x C): column sums, taken a block of channels at a time
   so the inner loop runs along memory and vectorises; same order of additions as a per-channel
   loop. */
#define L2C__COLS 64
static void l2c__bias_grad_rows(const float *g, int n, int c, float *db)
{
    int c0;
    for (c0 = 0; c0 < c; c0 += L2C__COLS) {
        double acc[L2C__COLS];
        int i, j, nc = c - c0 < L2C__COLS ? c - c0 : L2C__COLS;
        for (j = 0; j < nc; j++) acc[j] = 0.0;
        for (i = 0; i < n; i++) {
            const float *row = g + (size_t)i * c + c0;
            for (j = 0; j < nc; j++) acc[j] += row[j];
        }
        for (j = 0; j < nc; j++) db[c0 + j] += (float)acc[j];
    }
}

/* Per-channel sum of g (N x C x P) accumulated into db. Rows are summed with the lane-parallel
   l2c__sum (a serial double sum runs at one add per FP latency); the row totals are added in
   double, in image order, so the result does not depend on the thread count. */
static void l2c__bias_grad(const float *g, int n, int c, size_t p, float *db)
{
    int ch;
    if (p == 1) { l2c__bias_grad_rows(g, n, c, db); return; }
    L2C_OMP(omp parallel for if((size_t)n * c * p > L2C__PAR_MIN))
    for (ch = 0; ch < c; ch++) {
        double sum = 0.0;
        int i;
        for (i = 0; i < n; i++) sum += l2c__sum(g + ((size_t)i * c + ch) * p, p);
        db[ch] += (float)sum;
    }
}

/* -- dense */

static void l2c__dense_backward(l2c__node *nd)
{
    l2c_tensor *x = nd->in[0], *W = nd->in[1], *b = nd->in[2], *y = nd->out;
    int n = x->n, in = (int)l2c__sample(x), out = W->n;
    if (W->grad) l2c_gemm(1, 0, out, in, n, 1.0f, y->grad, out, x->data, in, 1.0f, W->grad, in);
    if (b && b->grad) l2c__bias_grad(y->grad, n, out, 1, b->grad);
    if (x->grad) l2c_gemm(0, 0, n, in, out, 1.0f, y->grad, out, W->data, in, 1.0f, x->grad, in);
}

L2C_API l2c_tensor *l2c_dense(l2c_tape *t, l2c_tensor *x, l2c_tensor *W, l2c_tensor *b)
{
    l2c__node *nd;
    int in, out, i;
    if (l2c__check_inputs("l2c_dense", t, x) || !W) { (void)l2c__fail(L2C_EINVAL, "l2c_dense: NULL argument"); return NULL; }
    in = (int)l2c__sample(x);
    out = W->n;
    if ((size_t)W->c * W->h * W->w != (size_t)in || (b && (int)l2c_tensor_size(b) != out)) {
        (void)l2c__fail(L2C_EINVAL, "l2c_dense: input has %d features per sample, weight is %dx%d, bias %d",
                        in, W->n, W->c * W->h * W->w, b ? (int)l2c_tensor_size(b) : 0);
        return NULL;
    }
    nd = l2c__record(t, l2c__dense_backward, x, W, b, x->n, out, 1, 1);
    if (!nd) return NULL;
    l2c_gemm(0, 1, x->n, out, in, 1.0f, x->data, in, W->data, in, 0.0f, nd->out->data, out);
    if (b) for (i = 0; i < x->n; i++) {
        int j;
        for (j = 0; j < out; j++) nd->out->data[(size_t)i * out + j] += b->data[j];
    }
    return nd->out;
}

/* -- conv2d: im2col of each image into a per-thread buffer that stays in cache, and the output
   computed image by image straight into NCHW. The column matrix is not kept for the weight
   gradient: a batch of them (8 MB for the victim's second layer) would go out to memory and back,
   which measured slower than unfolding again, a few images at a time, in the backward pass. */

typedef struct l2c__conv_ctx {
    const l2c_tensor *x, *W, *b;
    l2c_tensor *y;
    float *grad_x;       /* backward: x->grad */
    int stride, pad;
} l2c__conv_ctx;

/* Unfolds image i into col (row stride ld). */
static void l2c__conv_im2col(void *ctx, int i, float *col, int ld)
{
    const l2c__conv_ctx *c = (const l2c__conv_ctx *)ctx;
    const l2c_tensor *x = c->x;
    l2c_im2col(x->data + (size_t)i * l2c__sample(x), x->c, x->h, x->w, c->W->h, c->stride, c->pad,
               col, (size_t)ld);
}

/* Adds the bias to image i's output planes while they are in cache. */
static void l2c__conv_bias(void *ctx, int i, const float *yi, int ld)
{
    const l2c__conv_ctx *c = (const l2c__conv_ctx *)ctx;
    size_t p = l2c__plane(c->y), j;
    int ch;
    float *d = (float *)yi;
    (void)i;
    if (!c->b) return;
    for (ch = 0; ch < c->y->c; ch++, d += ld) {
        const float bv = c->b->data[ch];
        for (j = 0; j < p; j++) d[j] += bv;
    }
}

/* Folds image i's column gradient back into x->grad. */
static void l2c__conv_col2im(void *ctx, int i, const float *dcol, int ld)
{
    const l2c__conv_ctx *c = (const l2c__conv_ctx *)ctx;
    const l2c_tensor *x = c->x;
    l2c_col2im(dcol, (size_t)ld, x->c, x->h, x->w, c->W->h, c->stride, c->pad,
               c->grad_x + (size_t)i * l2c__sample(x));
}

/* dW += dy (channel-major) col^T, a group of images at a time: their columns are unfolded again
   side by side (kk x G*P, about 512 KiB, so it stays in cache) with the matching dy columns next
   to it. The batch is cut into a fixed number of image ranges, each summed into its own partial
   dW by one thread, then the partials are added in order: the products are too small to split
   well inside (each thread would pack all of B), and a fixed cut keeps the result the same
   whatever the thread count. */
#define L2C__CONV_COLS 131072   /* floats of unfolded columns per weight-gradient group (512 KiB) */
#define L2C__CONV_WG_PARTS 8    /* image ranges of the weight gradient (a multiple of 2 and 4) */

typedef struct l2c__conv_wg {
    l2c__conv_ctx cx;
    int oc, kk, p, G;
    float *col, *dy;     /* per-thread unfolding buffers: kk x G*P and oc x G*P */
    float *part;         /* per-range partial dW, oc x kk each */
} l2c__conv_wg;

/* part = sum over images [i0, i1) of dy_i col_i^T, G images per product, on the calling thread. */
static void l2c__conv_wg_range(const l2c__conv_wg *w, int i0, int i1, float *col, float *dy,
                               float *part, const l2c__gemm_buf *buf)
{
    const l2c_tensor *y = w->cx.y;
    int i;
    for (i = i0; i < i1; i += w->G) {
        const int gn = l2c__gemm_min(w->G, i1 - i), cols = gn * w->p;
        l2c__gemm_args g;
        int j, ch;
        for (j = 0; j < gn; j++) {
            l2c__conv_im2col((void *)&w->cx, i + j, col + (size_t)j * w->p, cols);
            for (ch = 0; ch < w->oc; ch++)
                memcpy(dy + (size_t)ch * cols + (size_t)j * w->p, y->grad + ((size_t)(i + j) * w->oc + ch) * w->p,
                       (size_t)w->p * sizeof(float));
        }
        /* part (+)= dy [oc x cols] * col^T (col stored kk x cols) */
        g.M = w->oc; g.N = w->kk; g.K = cols; g.alpha = 1.0f; g.beta = i == i0 ? 0.0f : 1.0f;
        g.A = dy; g.B = col; g.C = part; g.ldc = w->kk;
        g.ars = cols; g.acs = 1; g.brs = 1; g.bcs = cols;
        l2c__gemm_tile(&g, 0, w->oc, 0, w->kk, buf);
    }
}

/* W->grad += the partials, in range order, element-wise (so in parallel without changing sums). */
static void l2c__conv_wg_reduce(const l2c__conv_wg *w, int parts, float *dW)
{
    const int m = w->oc * w->kk;
    int j;
    L2C_OMP(omp parallel for if((size_t)m * parts > L2C__PAR_MIN))
    for (j = 0; j < m; j++) {
        float s = dW[j];
        int q;
        for (q = 0; q < parts; q++) s += w->part[(size_t)q * m + j];
        dW[j] = s;
    }
}

static void l2c__conv_weight_grad(l2c__node *nd)
{
    const l2c_tensor *x = nd->in[0], *W = nd->in[1];
    const int parts = l2c__gemm_min(L2C__CONV_WG_PARTS, x->n), per = (x->n + parts - 1) / parts;
    l2c__conv_wg w;
    int fit, nt, q;
    memset(&w, 0, sizeof w);
    w.cx.x = x; w.cx.W = W; w.cx.y = nd->out; w.cx.stride = nd->ip[0]; w.cx.pad = nd->ip[1];
    w.oc = nd->out->c; w.kk = x->c * W->h * W->w; w.p = (int)l2c__plane(nd->out);
    fit = (int)(L2C__CONV_COLS / ((size_t)w.kk * w.p));
    fit = fit > 1 ? fit : 1;
    w.G = (per + (per + fit - 1) / fit - 1) / ((per + fit - 1) / fit);   /* even groups of <= fit */
    nt = (double)w.oc * w.kk * w.p * x->n > 4.0 * L2C__GEMM_FORK_FMAS ? l2c__gemm_max_threads() : 1;
    nt = l2c__gemm_reserve(l2c__gemm_min(nt, parts));
    w.col = l2c__alloc_floats(nd->tape, (size_t)w.kk * w.G * w.p * (nt > 0 ? nt : 1));
    w.dy = l2c__alloc_floats(nd->tape, (size_t)w.oc * w.G * w.p * (nt > 0 ? nt : 1));
    w.part = l2c__alloc_floats(nd->tape, (size_t)w.oc * w.kk * parts);
    if (nt < 1 || !w.col || !w.dy || !w.part) return;
    L2C_OMP(omp parallel for num_threads(nt) schedule(static) if(nt > 1))
    for (q = 0; q < parts; q++) {
        const int tid = l2c__gemm_thread_num();
        l2c__conv_wg_range(&w, l2c__gemm_split(x->n, q, parts, 1), l2c__gemm_split(x->n, q + 1, parts, 1),
                           w.col + (size_t)tid * w.kk * w.G * w.p, w.dy + (size_t)tid * w.oc * w.G * w.p,
                           w.part + (size_t)q * w.oc * w.kk, &l2c__gemm_ws[tid]);
    }
    l2c__conv_wg_reduce(&w, parts, W->grad);
}

static void l2c__conv_backward(l2c__node *nd)
{
    l2c_tensor *x = nd->in[0], *W = nd->in[1], *b = nd->in[2], *y = nd->out;
    int k = W->h, oc = y->c, kk = x->c * k * k;
    size_t p = l2c__plane(y);
    l2c__conv_ctx cx;
    l2c__img_gemm ig;
    float *scratch;
    if (W->grad) l2c__conv_weight_grad(nd);
    if (b && b->grad) l2c__bias_grad(y->grad, y->n, oc, p, b->grad);
    if (!x->grad) return;
    /* dcol_i = W^T dy_i, folded into dx_i image by image */
    memset(&cx, 0, sizeof cx);
    cx.x = x; cx.W = W; cx.y = y; cx.grad_x = x->grad; cx.stride = nd->ip[0]; cx.pad = nd->ip[1];
    l2c__img_gemm_init(&ig, 1, kk, (int)p, oc, W->data, kk, y->grad, (int)p, (size_t)oc * p, 0.0f,
                       NULL, (int)p, 0);
    ig.post = l2c__conv_col2im; ig.ctx = &cx;
    ig.apack = l2c__alloc_floats(nd->tape, l2c__img_gemm_apack_size(kk, oc));
    scratch = l2c__alloc_floats(nd->tape, (size_t)kk * p * l2c__gemm_max_threads());
    if (ig.apack && scratch) (void)l2c__img_gemm_run(&ig, x->n, scratch, (size_t)kk * p);
}

static int l2c__conv_shape_ok(const char *op, const l2c_tensor *x, int k, int stride, int pad)
{
    if (k < 1 || stride < 1 || pad < 0 || pad >= k)
        return l2c__fail(L2C_EINVAL, "%s: impossible kernel %d / stride %d / padding %d", op, k, stride, pad);
    if (x->h + 2 * pad < k || x->w + 2 * pad < k)
        return l2c__fail(L2C_EINVAL, "%s: a %dx%d input (padding %d) is smaller than the %dx%d kernel",
                         op, x->h, x->w, pad, k, k);
    return L2C_OK;
}

L2C_API l2c_tensor *l2c_conv2d(l2c_tape *t, l2c_tensor *x, l2c_tensor *W, l2c_tensor *b,
                               int stride, int pad)
{
    l2c__node *nd;
    int k, oh, ow, kk;
    size_t p;
    l2c__conv_ctx cx;
    l2c__img_gemm ig;
    if (l2c__check_inputs("l2c_conv2d", t, x) || !W) { (void)l2c__fail(L2C_EINVAL, "l2c_conv2d: NULL argument"); return NULL; }
    k = W->h;
    if (W->w != k || W->c != x->c || (b && (int)l2c_tensor_size(b) != W->n)) {
        (void)l2c__fail(L2C_EINVAL, "l2c_conv2d: weight %dx%dx%dx%d does not fit a %d-channel input (bias %d)",
                        W->n, W->c, W->h, W->w, x->c, b ? (int)l2c_tensor_size(b) : 0);
        return NULL;
    }
    if (l2c__conv_shape_ok("l2c_conv2d", x, k, stride, pad)) return NULL;
    oh = (x->h + 2 * pad - k) / stride + 1;
    ow = (x->w + 2 * pad - k) / stride + 1;
    nd = l2c__record(t, l2c__conv_backward, x, W, b, x->n, W->n, oh, ow);
    if (!nd) return NULL;
    nd->ip[0] = stride; nd->ip[1] = pad;
    kk = x->c * k * k;
    p = (size_t)oh * ow;
    memset(&cx, 0, sizeof cx);
    cx.x = x; cx.W = W; cx.b = b; cx.y = nd->out; cx.stride = stride; cx.pad = pad;
    /* y_i = W col_i, written straight into image i's output */
    l2c__img_gemm_init(&ig, 0, W->n, (int)p, kk, W->data, kk, NULL, (int)p, (size_t)kk * p, 0.0f,
                       nd->out->data, (int)p, (size_t)W->n * p);
    ig.pre = l2c__conv_im2col; ig.post = l2c__conv_bias; ig.ctx = &cx;
    ig.bscratch = l2c__alloc_floats(t, l2c__img_gemm_bscratch_size(W->n, (int)p, kk, l2c__gemm_max_threads()));
    ig.apack = l2c__alloc_floats(t, l2c__img_gemm_apack_size(W->n, kk));
    if (!ig.bscratch || !ig.apack) return NULL;
    if (l2c__img_gemm_run(&ig, x->n, NULL, 0)) { (void)l2c__fail(L2C_ENOMEM, "l2c_conv2d: out of memory"); return NULL; }
    return nd->out;
}

/* -- transposed conv2d: the adjoint of conv2d; forward is col2im of W^T x, backward is im2col. */

typedef struct l2c__deconv_ctx {
    const l2c_tensor *x, *W, *b;
    l2c_tensor *y;
    const float *dy;     /* backward: y->grad */
    float *dcol;         /* backward: im2col of dy, okk x (N*P) */
    int stride, pad;
} l2c__deconv_ctx;

/* Image i's output: bias, then its column matrix folded in (col2im). */
static void l2c__deconv_col2im(void *ctx, int i, const float *col, int ld)
{
    const l2c__deconv_ctx *c = (const l2c__deconv_ctx *)ctx;
    const l2c_tensor *y = c->y;
    float *yi = y->data + (size_t)i * l2c__sample(y);
    size_t op = l2c__plane(y), j;
    int ch;
    for (ch = 0; ch < y->c; ch++) {
        float bv = c->b ? c->b->data[ch] : 0.0f;
        for (j = 0; j < op; j++) yi[(size_t)ch * op + j] = bv;
    }
    l2c_col2im(col, (size_t)ld, y->c, y->h, y->w, c->W->h, c->stride, c->pad, yi);
}

/* Unfolds image i of dy into dcol (its slice of the batch column matrix, row stride ld). */
static void l2c__deconv_im2col(void *ctx, int i, float *dcol, int ld)
{
    const l2c__deconv_ctx *c = (const l2c__deconv_ctx *)ctx;
    const l2c_tensor *y = c->y;
    l2c_im2col(c->dy + (size_t)i * l2c__sample(y), y->c, y->h, y->w, c->W->h, c->stride, c->pad,
               dcol, (size_t)ld);
}

static void l2c__deconv_backward(l2c__node *nd)
{
    l2c_tensor *x = nd->in[0], *W = nd->in[1], *b = nd->in[2], *y = nd->out;
    int k = W->h, oc = W->c, ic = x->c, okk = oc * k * k, i;
    size_t p = l2c__plane(x), np = (size_t)x->n * p;
    l2c__deconv_ctx cx;
    l2c__img_gemm ig;
    memset(&cx, 0, sizeof cx);
    cx.x = x; cx.W = W; cx.y = y; cx.dy = y->grad; cx.stride = nd->ip[0]; cx.pad = nd->ip[1];
    cx.dcol = l2c__alloc_floats(nd->tape, (size_t)okk * np);
    if (!cx.dcol) return;
    if (x->grad) {   /* dx_i += W dcol_i, unfolding dcol_i first */
        l2c__img_gemm_init(&ig, 0, ic, (int)p, okk, W->data, okk, cx.dcol, (int)np, p, 1.0f,
                           x->grad, (int)p, (size_t)ic * p);
        ig.pre = l2c__deconv_im2col; ig.ctx = &cx;
        ig.apack = l2c__alloc_floats(nd->tape, l2c__img_gemm_apack_size(ic, okk));
        if (!ig.apack || l2c__img_gemm_run(&ig, x->n, NULL, 0)) return;
    } else {
        L2C_OMP(omp parallel for if(x->n > 1 && np * k * k * oc > L2C__PAR_MIN))
        for (i = 0; i < x->n; i++) l2c__deconv_im2col(&cx, i, cx.dcol + (size_t)i * p, (int)np);
    }
    if (W->grad) {   /* dW = x (channel-major) * dcol^T over the whole batch */
        float *xc = l2c__alloc_floats(nd->tape, (size_t)ic * np);
        if (!xc) return;
        l2c__to_channel_major(x->data, x->n, ic, p, xc);
        l2c_gemm(0, 1, ic, okk, (int)np, 1.0f, xc, (int)np, cx.dcol, (int)np, 1.0f, W->grad, okk);
    }
    if (b && b->grad) l2c__bias_grad(y->grad, y->n, oc, l2c__plane(y), b->grad);
}

L2C_API l2c_tensor *l2c_deconv2d(l2c_tape *t, l2c_tensor *x, l2c_tensor *W, l2c_tensor *b,
                                 int stride, int pad)
{
    l2c__node *nd;
    int k, oh, ow, okk;
    size_t p;
    float *scratch;
    l2c__deconv_ctx cx;
    l2c__img_gemm ig;
    if (l2c__check_inputs("l2c_deconv2d", t, x) || !W) { (void)l2c__fail(L2C_EINVAL, "l2c_deconv2d: NULL argument"); return NULL; }
    k = W->h;
    if (W->w != k || W->n != x->c || (b && (int)l2c_tensor_size(b) != W->c)) {
        (void)l2c__fail(L2C_EINVAL, "l2c_deconv2d: weight %dx%dx%dx%d does not fit a %d-channel input (bias %d)",
                        W->n, W->c, W->h, W->w, x->c, b ? (int)l2c_tensor_size(b) : 0);
        return NULL;
    }
    if (k < 1 || stride < 1 || pad < 0 || pad >= k) {
        (void)l2c__fail(L2C_EINVAL, "l2c_deconv2d: impossible kernel %d / stride %d / padding %d", k, stride, pad);
        return NULL;
    }
    oh = (x->h - 1) * stride - 2 * pad + k;
    ow = (x->w - 1) * stride - 2 * pad + k;
    if (oh < 1 || ow < 1) {
        (void)l2c__fail(L2C_EINVAL, "l2c_deconv2d: a %dx%d input gives an empty output", x->h, x->w);
        return NULL;
    }
    nd = l2c__record(t, l2c__deconv_backward, x, W, b, x->n, W->c, oh, ow);
    if (!nd) return NULL;
    nd->ip[0] = stride; nd->ip[1] = pad;
    okk = W->c * k * k;
    p = l2c__plane(x);
    memset(&cx, 0, sizeof cx);
    cx.x = x; cx.W = W; cx.b = b; cx.y = nd->out; cx.stride = stride; cx.pad = pad;
    /* col_i = W^T x_i (x_i read in place from NCHW), folded into y_i while in cache */
    l2c__img_gemm_init(&ig, 1, okk, (int)p, x->c, W->data, okk, x->data, (int)p, (size_t)x->c * p,
                       0.0f, NULL, (int)p, 0);
    ig.post = l2c__deconv_col2im; ig.ctx = &cx;
    ig.apack = l2c__alloc_floats(t, l2c__img_gemm_apack_size(okk, x->c));
    scratch = l2c__alloc_floats(t, (size_t)okk * p * l2c__gemm_max_threads());
    if (!ig.apack || !scratch) return NULL;
    if (l2c__img_gemm_run(&ig, x->n, scratch, (size_t)okk * p)) { (void)l2c__fail(L2C_ENOMEM, "l2c_deconv2d: out of memory"); return NULL; }
    return nd->out;
}

/* -- batch normalisation */

/* Batch norm of an N x C matrix (dense layers, P == 1): the per-channel loops below would stride
   through memory one float at a time, so these walk rows and keep a block of channels' sums in
   arrays. The additions happen in the same order as in the per-channel code (identical results). */
static void l2c__bn_rows_forward(const float *x, int n, int c, int c0, int nc, int mode,
                                 const float *g, const float *bt, float *rmean, float *rvar,
                                 float momentum, float eps, float *xhat, float *y, float *invstd)
{
    double s[L2C__COLS], ss[L2C__COLS];
    float mu[L2C__COLS];
    int i, j;
    for (j = 0; j < nc; j++) { s[j] = 0.0; ss[j] = 0.0; }
    if (mode != L2C_EVAL) {
        for (i = 0; i < n; i++) for (j = 0; j < nc; j++) s[j] += x[(size_t)i * c + c0 + j];
        for (j = 0; j < nc; j++) mu[j] = (float)(s[j] / n);
        for (i = 0; i < n; i++) for (j = 0; j < nc; j++) {
            float d = x[(size_t)i * c + c0 + j] - mu[j];
            ss[j] += d * d;
        }
    }
    for (j = 0; j < nc; j++) {
        const int ch = c0 + j;
        double mean = mode == L2C_EVAL ? rmean[ch] : s[j] / n, var = mode == L2C_EVAL ? rvar[ch] : ss[j] / n;
        if (mode == L2C_TRAIN) {
            rmean[ch] = (float)((1.0 - momentum) * rmean[ch] + momentum * mean);
            rvar[ch] = (float)((1.0 - momentum) * rvar[ch] + momentum * var * n / (n - 1));
        }
        mu[j] = (float)mean;
        invstd[ch] = (float)(1.0 / sqrt(var + eps));
    }
    for (i = 0; i < n; i++) for (j = 0; j < nc; j++) {
        const size_t at = (size_t)i * c + c0 + j;
        const float xh = (x[at] - mu[j]) * invstd[c0 + j];
        xhat[at] = xh;
        y[at] = g[c0 + j] * xh + bt[c0 + j];
    }
}

static void l2c__bn_rows_backward(const float *dy, const float *xhat, const float *invstd, int n,
                                  int c, int c0, int nc, int batch_stats, const float *g,
                                  float *dg, float *db, float *dx, int overwrite)
{
    double sdy[L2C__COLS], sdyx[L2C__COLS];
    float a[L2C__COLS], mdy[L2C__COLS], mdyx[L2C__COLS];
    int i, j;
    for (j = 0; j < nc; j++) { sdy[j] = 0.0; sdyx[j] = 0.0; }
    for (i = 0; i < n; i++) for (j = 0; j < nc; j++) {
        const size_t at = (size_t)i * c + c0 + j;
        sdy[j] += dy[at];
        sdyx[j] += dy[at] * xhat[at];
    }
    for (j = 0; j < nc; j++) {
        if (dg) dg[c0 + j] += (float)sdyx[j];
        if (db) db[c0 + j] += (float)sdy[j];
        a[j] = g[c0 + j] * invstd[c0 + j];
        mdy[j] = batch_stats ? (float)(sdy[j] / n) : 0.0f;
        mdyx[j] = batch_stats ? (float)(sdyx[j] / n) : 0.0f;
    }
    if (dx) for (i = 0; i < n; i++) for (j = 0; j < nc; j++) {
        const size_t at = (size_t)i * c + c0 + j;
        const float v = a[j] * (dy[at] - mdy[j] - xhat[at] * mdyx[j]);
        dx[at] = overwrite ? v : dx[at] + v;
    }
}

/* Sum of d[j] * (x[j] - mu) * is, i.e. dy . xhat with xhat recomputed from x (the forward pass
   keeps only mean and 1/std, saving a full-size write and read); lanes as in l2c__sum. */
static float l2c__dot_xhat(const float *d, const float *x, float mu, float is, size_t n)
{
    float acc[L2C__LANES] = { 0 }, total = 0.0f;
    size_t i, k, body = n - n % L2C__LANES;
    for (i = 0; i < body; i += L2C__LANES)
        for (k = 0; k < L2C__LANES; k++) acc[k] += d[i + k] * ((x[i + k] - mu) * is);
    for (k = 0; k < L2C__LANES; k++) total += acc[k];
    for (i = body; i < n; i++) total += d[i] * ((x[i] - mu) * is);
    return total;
}

/* Sums of dy and of dy * xhat over one channel, in image order (deterministic). */
static void l2c__bn_channel_sums(const float *dy, const float *x, int n, int c, int ch, size_t p,
                                 float mu, float is, double *sum_dy, double *sum_dyx)
{
    int i;
    *sum_dy = 0.0; *sum_dyx = 0.0;
    for (i = 0; i < n; i++) {
        const size_t off = ((size_t)i * c + ch) * p;
        *sum_dy += l2c__sum(dy + off, p);
        *sum_dyx += l2c__dot_xhat(dy + off, x + off, mu, is, p);
    }
}

/* dx += a * (dy - mean_dy - xhat * mean_dyx) over one channel, xhat recomputed from x. */
static void l2c__bn_channel_dx(const float *dy, const float *x, float *dx, int n, int c, int ch,
                               size_t p, float mu, float is, float a, float mdy, float mdyx,
                               int overwrite)
{
    int i;
    for (i = 0; i < n; i++) {
        const size_t off = ((size_t)i * c + ch) * p;
        const float *d = dy + off, *xs = x + off;
        float *o = dx + off;
        size_t j;
        if (overwrite) for (j = 0; j < p; j++) o[j] = a * (d[j] - mdy - ((xs[j] - mu) * is) * mdyx);
        else for (j = 0; j < p; j++) o[j] += a * (d[j] - mdy - ((xs[j] - mu) * is) * mdyx);
    }
}

static void l2c__bn_backward(l2c__node *nd)
{
    l2c_tensor *x = nd->in[0], *gamma = nd->in[1], *beta = nd->in[2], *y = nd->out;
    const float *invstd = (const float *)nd->save[1];
    int c = x->c, n = x->n, ch, batch_stats = nd->ip[0] != L2C_EVAL;
    size_t p = l2c__plane(x);
    double m = (double)n * p;
    if (p == 1) {
        const float *xhat = (const float *)nd->save[0];
        for (ch = 0; ch < c; ch += L2C__COLS)
            l2c__bn_rows_backward(y->grad, xhat, invstd, n, c, ch, c - ch < L2C__COLS ? c - ch : L2C__COLS,
                                  batch_stats, gamma->data, gamma->grad, beta->grad, x->grad, nd->fresh);
        return;
    }
    L2C_OMP(omp parallel for if((size_t)n * c * p > L2C__PAR_MIN))
    for (ch = 0; ch < c; ch++) {
        const float mu = invstd[c + ch], is = invstd[ch];   /* means are stored after the 1/stds */
        double sum_dy, sum_dyx;
        l2c__bn_channel_sums(y->grad, x->data, n, c, ch, p, mu, is, &sum_dy, &sum_dyx);
        if (gamma->grad) gamma->grad[ch] += (float)sum_dyx;
        if (beta->grad) beta->grad[ch] += (float)sum_dy;
        if (x->grad)
            l2c__bn_channel_dx(y->grad, x->data, x->grad, n, c, ch, p, mu, is, gamma->data[ch] * is,
                               batch_stats ? (float)(sum_dy / m) : 0.0f,
                               batch_stats ? (float)(sum_dyx / m) : 0.0f, nd->fresh);
    }
}

/* Mean and biased variance of one channel (two passes: stable for large means). */
static void l2c__channel_stats(const float *x, int n, int c, int ch, size_t p, double *mean, double *var)
{
    double s = 0.0, ss = 0.0;
    float mu;
    int i;
    for (i = 0; i < n; i++) s += l2c__sum(x + ((size_t)i * c + ch) * p, p);
    *mean = s / ((double)n * p);
    mu = (float)*mean;
    for (i = 0; i < n; i++) ss += l2c__sqdev(x + ((size_t)i * c + ch) * p, mu, p);
    *var = ss / ((double)n * p);
}

/* y = g * (x - mu) * is + bt over one channel; local pointers so the loop vectorises. */
static void l2c__bn_channel_apply(const float *x, float *y, int n, int c, int ch, size_t p, float mu,
                                  float is, float g, float bt)
{
    int i;
    for (i = 0; i < n; i++) {
        const size_t off = ((size_t)i * c + ch) * p;
        const float *xs = x + off;
        float *o = y + off;
        size_t j;
        for (j = 0; j < p; j++) o[j] = g * ((xs[j] - mu) * is) + bt;
    }
}

/* y = gamma xhat + beta with the statistics in stats (1/std first, then the means). Image by
   image, in memory order: one stream the prefetcher follows, where a channel at a time hops
   between the images' planes (2.3x faster on the generator's 5x5 maps at batch 256; on large
   planes just after the statistics pass, a channel at a time is faster: they are in cache). */
#define L2C__BN_BY_IMAGE 256   /* plane size below which training mode applies image by image */
static void l2c__bn_apply(const l2c_tensor *x, const float *stats, const float *g, const float *bt,
                          float *y)
{
    const int n = x->n, c = x->c;
    const size_t p = l2c__plane(x);
    int i;
    L2C_OMP(omp parallel for if(l2c_tensor_size(x) > L2C__PAR_MIN))
    for (i = 0; i < n; i++) {
        int ch;
        for (ch = 0; ch < c; ch++) {
            const size_t off = ((size_t)i * c + ch) * p;
            const float *xs = x->data + off;
            const float mu = stats[c + ch], is = stats[ch], gc = g[ch], bc = bt[ch];
            float *o = y + off;
            size_t j;
            for (j = 0; j < p; j++) o[j] = gc * ((xs[j] - mu) * is) + bc;
        }
    }
}

L2C_API l2c_tensor *l2c_batchnorm(l2c_tape *t, l2c_tensor *x, l2c_tensor *gamma, l2c_tensor *beta,
                                  float *running_mean, float *running_var, int mode,
                                  float momentum, float eps)
{
    l2c__node *nd;
    int c, n, ch, by_image;
    size_t p, m;
    float *xhat, *invstd;
    if (l2c__check_inputs("l2c_batchnorm", t, x) || !gamma || !beta || !running_mean || !running_var) {
        (void)l2c__fail(L2C_EINVAL, "l2c_batchnorm: NULL argument"); return NULL;
    }
    c = x->c; n = x->n; p = l2c__plane(x); m = (size_t)n * p;
    if ((int)l2c_tensor_size(gamma) != c || (int)l2c_tensor_size(beta) != c) {
        (void)l2c__fail(L2C_EINVAL, "l2c_batchnorm: %d channels but gamma/beta have %d/%d", c,
                        (int)l2c_tensor_size(gamma), (int)l2c_tensor_size(beta));
        return NULL;
    }
    if (mode != L2C_EVAL && mode != L2C_TRAIN && mode != L2C_TRAIN_FROZEN_STATS) {
        (void)l2c__fail(L2C_EINVAL, "l2c_batchnorm: unknown mode %d", mode); return NULL;
    }
    if (mode != L2C_EVAL && m < 2) {
        (void)l2c__fail(L2C_EINVAL, "l2c_batchnorm: batch statistics need more than one value per channel"); return NULL;
    }
    if (!(eps > 0.0f) || !(momentum >= 0.0f && momentum <= 1.0f)) {
        (void)l2c__fail(L2C_EINVAL, "l2c_batchnorm: eps must be > 0 and momentum in [0, 1]"); return NULL;
    }
    nd = l2c__record(t, l2c__bn_backward, x, gamma, beta, n, c, x->h, x->w);
    if (!nd) return NULL;
    nd->may_overwrite = 1;
    nd->ip[0] = mode;
    if (p == 1) {   /* dense: rows of channels, xhat kept for the backward pass */
        xhat = l2c__alloc_floats(t, m * c);
        invstd = l2c__alloc_floats(t, (size_t)c);
        if (!xhat || !invstd) return NULL;
        nd->save[0] = xhat;
        nd->save[1] = invstd;
        for (ch = 0; ch < c; ch += L2C__COLS)
            l2c__bn_rows_forward(x->data, n, c, ch, c - ch < L2C__COLS ? c - ch : L2C__COLS, mode,
                                 gamma->data, beta->data, running_mean, running_var, momentum, eps,
                                 xhat, nd->out->data, invstd);
        return nd->out;
    }
    /* planes: keep only 1/std (first c floats) and the mean (next c); the backward pass recomputes
       xhat from x, which is cheaper than writing and re-reading a full-size copy */
    invstd = l2c__alloc_floats(t, 2 * (size_t)c);
    if (!invstd) return NULL;
    nd->save[1] = invstd;
    by_image = mode == L2C_EVAL || p < L2C__BN_BY_IMAGE;
    L2C_OMP(omp parallel for if(m * c > L2C__PAR_MIN))
    for (ch = 0; ch < c; ch++) {
        double mean, var;
        if (mode == L2C_EVAL) { mean = running_mean[ch]; var = running_var[ch]; }
        else l2c__channel_stats(x->data, n, c, ch, p, &mean, &var);
        if (mode == L2C_TRAIN) {
            running_mean[ch] = (float)((1.0 - momentum) * running_mean[ch] + momentum * mean);
            running_var[ch] = (float)((1.0 - momentum) * running_var[ch] + momentum * var * m / (m - 1));
        }
        invstd[c + ch] = (float)mean;
        invstd[ch] = (float)(1.0 / sqrt(var + eps));
        if (!by_image)   /* the channel's planes are still in cache from the statistics */
            l2c__bn_channel_apply(x->data, nd->out->data, n, c, ch, p, invstd[c + ch], invstd[ch],
                                  gamma->data[ch], beta->data[ch]);
    }
    if (by_image) l2c__bn_apply(x, invstd, gamma->data, beta->data, nd->out->data);
    return nd->out;
}

/* -- element-wise operations */

/* dx += dy (no-op when dx is NULL): gradient pass-through of add, reshape, ... */
static void l2c__acc(float *dx, const float *dy, size_t size)
{
    long i, n = (long)size;
    if (!dx) return;
    L2C_OMP(omp parallel for if(n > L2C__PAR_MIN))
    for (i = 0; i < n; i++) dx[i] += dy[i];
}

static void l2c__relu_backward(l2c__node *nd)
{
    size_t n = l2c_tensor_size(nd->out);
    const float *y = nd->out->data, *dy = nd->out->grad;
    float *dx = nd->in[0]->grad;
    long j;
    if (!dx) return;
    /* element-wise: threads split the range, results do not depend on the split; a select
       instead of a branch vectorises and does not mispredict on random signs */
    if (nd->fresh) {
        L2C_OMP(omp parallel for if(n > L2C__PAR_MIN))
        for (j = 0; j < (long)n; j++) dx[j] = y[j] > 0.0f ? dy[j] : 0.0f;
    } else {
        L2C_OMP(omp parallel for if(n > L2C__PAR_MIN))
        for (j = 0; j < (long)n; j++) dx[j] += y[j] > 0.0f ? dy[j] : 0.0f;
    }
}

L2C_API l2c_tensor *l2c_relu(l2c_tape *t, l2c_tensor *x)
{
    l2c__node *nd;
    size_t n;
    if (l2c__check_inputs("l2c_relu", t, x)) return NULL;
    nd = l2c__record(t, l2c__relu_backward, x, NULL, NULL, x->n, x->c, x->h, x->w);
    if (!nd) return NULL;
    nd->may_overwrite = 1;
    n = l2c_tensor_size(x);
    {
        const float *src = x->data;
        float *dst = nd->out->data;
        long j;
        L2C_OMP(omp parallel for if(n > L2C__PAR_MIN))
        for (j = 0; j < (long)n; j++) dst[j] = src[j] > 0.0f ? src[j] : 0.0f;
    }
    return nd->out;
}

static void l2c__tanh_backward(l2c__node *nd)
{
    size_t n = l2c_tensor_size(nd->out);
    const float *y = nd->out->data, *dy = nd->out->grad;
    float *dx = nd->in[0]->grad;
    long i;
    if (!dx) return;
    L2C_OMP(omp parallel for if(n > L2C__PAR_MIN))
    for (i = 0; i < (long)n; i++) dx[i] += dy[i] * (1.0f - y[i] * y[i]);
}

L2C_API l2c_tensor *l2c_tanh(l2c_tape *t, l2c_tensor *x)
{
    l2c__node *nd;
    const float *src;
    float *dst;
    long i, n;
    if (l2c__check_inputs("l2c_tanh", t, x)) return NULL;
    nd = l2c__record(t, l2c__tanh_backward, x, NULL, NULL, x->n, x->c, x->h, x->w);
    if (!nd) return NULL;
    n = (long)l2c_tensor_size(x);
    src = x->data; dst = nd->out->data;
    /* tanhf costs tens of cycles: worth threads well below the usual threshold */
    L2C_OMP(omp parallel for if(n > L2C__PAR_MIN / 8))
    for (i = 0; i < n; i++) dst[i] = tanhf(src[i]);
    return nd->out;
}

static void l2c__add_backward(l2c__node *nd)
{
    size_t n = l2c_tensor_size(nd->out);
    const float *dy = nd->out->grad;
    int k;
    for (k = 0; k < 2; k++) l2c__acc(nd->in[k]->grad, dy, n);
}

L2C_API l2c_tensor *l2c_add(l2c_tape *t, l2c_tensor *a, l2c_tensor *b)
{
    l2c__node *nd;
    const float *pa, *pb;
    float *dst;
    long i, n;
    if (l2c__check_inputs("l2c_add", t, a) || !b) { (void)l2c__fail(L2C_EINVAL, "l2c_add: NULL argument"); return NULL; }
    if (a->n != b->n || a->c != b->c || a->h != b->h || a->w != b->w) {
        (void)l2c__fail(L2C_EINVAL, "l2c_add: shapes %dx%dx%dx%d and %dx%dx%dx%d differ",
                        a->n, a->c, a->h, a->w, b->n, b->c, b->h, b->w);
        return NULL;
    }
    nd = l2c__record(t, l2c__add_backward, a, b, NULL, a->n, a->c, a->h, a->w);
    if (!nd) return NULL;
    n = (long)l2c_tensor_size(a);
    pa = a->data; pb = b->data; dst = nd->out->data;
    L2C_OMP(omp parallel for if(n > L2C__PAR_MIN))
    for (i = 0; i < n; i++) dst[i] = pa[i] + pb[i];
    return nd->out;
}

static void l2c__scale_backward(l2c__node *nd)
{
    long i, n = (long)l2c_tensor_size(nd->out);
    const float *dy = nd->out->grad;
    float s = nd->fp[0], *dx = nd->in[0]->grad;
    if (!dx) return;
    L2C_OMP(omp parallel for if(n > L2C__PAR_MIN))
    for (i = 0; i < n; i++) dx[i] += s * dy[i];
}

L2C_API l2c_tensor *l2c_scale(l2c_tape *t, l2c_tensor *x, float s)
{
    l2c__node *nd;
    const float *src;
    float *dst;
    long i, n;
    if (l2c__check_inputs("l2c_scale", t, x)) return NULL;
    if (!isfinite(s)) { (void)l2c__fail(L2C_ENAN, "l2c_scale: factor is not finite"); return NULL; }
    nd = l2c__record(t, l2c__scale_backward, x, NULL, NULL, x->n, x->c, x->h, x->w);
    if (!nd) return NULL;
    nd->fp[0] = s;
    n = (long)l2c_tensor_size(x);
    src = x->data; dst = nd->out->data;
    L2C_OMP(omp parallel for if(n > L2C__PAR_MIN))
    for (i = 0; i < n; i++) dst[i] = s * src[i];
    return nd->out;
}

static void l2c__clamp_backward(l2c__node *nd)
{
    long i, n = (long)l2c_tensor_size(nd->out);
    const float *x = nd->in[0]->data, *dy = nd->out->grad;
    float lo = nd->fp[0], hi = nd->fp[1], *dx = nd->in[0]->grad;
    if (!dx) return;
    L2C_OMP(omp parallel for if(n > L2C__PAR_MIN))
    for (i = 0; i < n; i++) dx[i] += (x[i] > lo && x[i] < hi) ? dy[i] : 0.0f;
}

L2C_API l2c_tensor *l2c_clamp(l2c_tape *t, l2c_tensor *x, float lo, float hi)
{
    l2c__node *nd;
    const float *src;
    float *dst;
    long i, n;
    if (l2c__check_inputs("l2c_clamp", t, x)) return NULL;
    if (!(lo <= hi)) { (void)l2c__fail(L2C_EINVAL, "l2c_clamp: lower bound above upper bound (or NaN)"); return NULL; }
    nd = l2c__record(t, l2c__clamp_backward, x, NULL, NULL, x->n, x->c, x->h, x->w);
    if (!nd) return NULL;
    nd->fp[0] = lo; nd->fp[1] = hi;
    n = (long)l2c_tensor_size(x);
    src = x->data; dst = nd->out->data;
    L2C_OMP(omp parallel for if(n > L2C__PAR_MIN))
    for (i = 0; i < n; i++) dst[i] = src[i] < lo ? lo : (src[i] > hi ? hi : src[i]);
    return nd->out;
}

static void l2c__copy_backward(l2c__node *nd)
{
    l2c__acc(nd->in[0]->grad, nd->out->grad, l2c_tensor_size(nd->out));
}

L2C_API l2c_tensor *l2c_reshape(l2c_tape *t, l2c_tensor *x, int n, int c, int h, int w)
{
    l2c__node *nd;
    if (l2c__check_inputs("l2c_reshape", t, x)) return NULL;
    if (!l2c__shape_ok(n, c, h, w) || (size_t)n * c * h * w != l2c_tensor_size(x)) {
        (void)l2c__fail(L2C_EINVAL, "l2c_reshape: cannot view %dx%dx%dx%d as %dx%dx%dx%d",
                        x->n, x->c, x->h, x->w, n, c, h, w);
        return NULL;
    }
    nd = l2c__record(t, l2c__copy_backward, x, NULL, NULL, n, c, h, w);
    if (!nd) return NULL;
    memcpy(nd->out->data, x->data, l2c_tensor_size(x) * sizeof(float));
    return nd->out;
}

L2C_API l2c_tensor *l2c_flatten(l2c_tape *t, l2c_tensor *x)
{
    if (l2c__check_inputs("l2c_flatten", t, x)) return NULL;
    return l2c_reshape(t, x, x->n, (int)l2c__sample(x), 1, 1);
}

/* -- pooling */

static void l2c__maxpool_backward(l2c__node *nd)
{
    const int *arg = (const int *)nd->save[0];
    l2c_tensor *x = nd->in[0], *y = nd->out;
    size_t planes = (size_t)y->n * y->c, op = l2c__plane(y), ip = l2c__plane(x), q;
    if (!x->grad) return;
    for (q = 0; q < planes; q++) {
        size_t j;
        for (j = 0; j < op; j++) x->grad[q * ip + (size_t)arg[q * op + j]] += y->grad[q * op + j];
    }
}

/* Average-pool backward of one plane for the common 2x2 window with stride 2: each output's
   gradient goes to its four inputs; the loops run along rows so they vectorise. */
static void l2c__avgpool2_backward_plane(const float *dy, int oh, int ow, int w, float *dx, int overwrite)
{
    int oy, ox;
    for (oy = 0; oy < oh; oy++) {
        const float *g = dy + (size_t)oy * ow;
        float *r0 = dx + (size_t)(2 * oy) * w, *r1 = r0 + w;
        if (overwrite) {
            for (ox = 0; ox < ow; ox++) {
                const float v = g[ox] * 0.25f;
                r0[2 * ox] = v; r0[2 * ox + 1] = v;
                r1[2 * ox] = v; r1[2 * ox + 1] = v;
            }
        } else {
            for (ox = 0; ox < ow; ox++) {
                const float v = g[ox] * 0.25f;
                r0[2 * ox] += v; r0[2 * ox + 1] += v;
                r1[2 * ox] += v; r1[2 * ox + 1] += v;
            }
        }
    }
}

static void l2c__avgpool_backward(l2c__node *nd)
{
    l2c_tensor *x = nd->in[0], *y = nd->out;
    int k = nd->ip[0], s = nd->ip[1], oy, ox, a, b;
    size_t planes = (size_t)y->n * y->c, q;
    float inv = 1.0f / (float)(k * k);
    long qq;
    if (!x->grad) return;
    if (k == 2 && s == 2) {
        L2C_OMP(omp parallel for if(l2c_tensor_size(x) > L2C__PAR_MIN))
        for (qq = 0; qq < (long)planes; qq++)
            l2c__avgpool2_backward_plane(y->grad + (size_t)qq * l2c__plane(y), y->h, y->w, x->w,
                                         x->grad + (size_t)qq * l2c__plane(x), nd->fresh);
        return;
    }
    for (q = 0; q < planes; q++) {
        float *dx = x->grad + q * l2c__plane(x);
        const float *dy = y->grad + q * l2c__plane(y);
        for (oy = 0; oy < y->h; oy++)
            for (ox = 0; ox < y->w; ox++) {
                float g = dy[oy * y->w + ox] * inv;
                for (a = 0; a < k; a++)
                    for (b = 0; b < k; b++) dx[(oy * s + a) * x->w + ox * s + b] += g;
            }
    }
}

/* 2x2 window, stride 2, on one plane: the generic loop unrolled, with the same comparisons and the
   same order of additions, so results are identical to it. */
static void l2c__pool2_plane(const float *src, int w, int oh, int ow, int is_max, float *dst, int *arg)
{
    int oy, ox;
    for (oy = 0; oy < oh; oy++) {
        const float *r0 = src + (size_t)(2 * oy) * w, *r1 = r0 + w;
        for (ox = 0; ox < ow; ox++) {
            const float a = r0[2 * ox], b = r0[2 * ox + 1], c = r1[2 * ox], d = r1[2 * ox + 1];
            if (is_max) {
                int best = 2 * oy * w + 2 * ox;
                float m = a;
                if (b > m) { m = b; best = 2 * oy * w + 2 * ox + 1; }
                if (c > m) { m = c; best = (2 * oy + 1) * w + 2 * ox; }
                if (d > m) { m = d; best = (2 * oy + 1) * w + 2 * ox + 1; }
                dst[oy * ow + ox] = m;
                arg[oy * ow + ox] = best;
            } else {
                dst[oy * ow + ox] = (0.0f + a + b + c + d) / 4.0f;
            }
        }
    }
}

/* Shared by both poolings: is_max selects max (recording argmax) or average. */
static l2c_tensor *l2c__pool(l2c_tape *t, l2c_tensor *x, int k, int s, int is_max)
{
    const char *op = is_max ? "l2c_maxpool" : "l2c_avgpool";
    l2c__node *nd;
    int *arg = NULL, oh, ow;
    size_t planes, q;
    if (l2c__check_inputs(op, t, x)) return NULL;
    if (k < 1 || s < 1 || k > x->h || k > x->w) {
        (void)l2c__fail(L2C_EINVAL, "%s: window %d / stride %d impossible on %dx%d", op, k, s, x->h, x->w);
        return NULL;
    }
    oh = (x->h - k) / s + 1;
    ow = (x->w - k) / s + 1;
    nd = l2c__record(t, is_max ? l2c__maxpool_backward : l2c__avgpool_backward, x, NULL, NULL, x->n, x->c, oh, ow);
    if (!nd) return NULL;
    nd->ip[0] = k; nd->ip[1] = s;
    /* 2x2 windows tiling an even map cover every input once: the backward can write dx whole */
    nd->may_overwrite = !is_max && k == 2 && s == 2 && x->h == 2 * oh && x->w == 2 * ow;
    planes = (size_t)x->n * x->c;
    if (is_max && !(arg = (int *)l2c__alloc(t, planes * oh * ow * sizeof(int)))) return NULL;
    nd->save[0] = arg;
    if (k == 2 && s == 2) {
        long qq;
        L2C_OMP(omp parallel for if(l2c_tensor_size(x) > L2C__PAR_MIN))
        for (qq = 0; qq < (long)planes; qq++)
            l2c__pool2_plane(x->data + (size_t)qq * l2c__plane(x), x->w, oh, ow, is_max,
                             nd->out->data + (size_t)qq * oh * ow, arg ? arg + (size_t)qq * oh * ow : NULL);
        return nd->out;
    }
    for (q = 0; q < planes; q++) {
        const float *src = x->data + q * l2c__plane(x);
        float *dst = nd->out->data + q * (size_t)oh * ow;
        int oy, ox, a, b;
        for (oy = 0; oy < oh; oy++)
            for (ox = 0; ox < ow; ox++) {
                int best = (oy * s) * x->w + ox * s;
                float acc = 0.0f;
                for (a = 0; a < k; a++)
                    for (b = 0; b < k; b++) {
                        int at = (oy * s + a) * x->w + ox * s + b;
                        if (src[at] > src[best]) best = at;
                        acc += src[at];
                    }
                dst[oy * ow + ox] = is_max ? src[best] : acc / (float)(k * k);
                if (is_max) arg[q * (size_t)oh * ow + (size_t)(oy * ow + ox)] = best;
            }
    }
    nd->save[0] = arg;
    return nd->out;
}

L2C_API l2c_tensor *l2c_maxpool(l2c_tape *t, l2c_tensor *x, int k, int stride) { return l2c__pool(t, x, k, stride, 1); }
L2C_API l2c_tensor *l2c_avgpool(l2c_tape *t, l2c_tensor *x, int k, int stride) { return l2c__pool(t, x, k, stride, 0); }

/* -- softmax cross-entropy and its complement */

/* The softmax losses save d loss_i / d z_i per sample at the forward pass; the backward scales by 1/n. */
static void l2c__softmax_loss_backward(l2c__node *nd)
{
    l2c_tensor *z = nd->in[0];
    const float *dz = (const float *)nd->save[0];
    size_t i, size = l2c_tensor_size(z);
    float g = nd->out->grad[0] / (float)z->n;
    if (!z->grad) return;
    for (i = 0; i < size; i++) z->grad[i] += g * dz[i];
}

/* The largest of the k logits but index `skip` (-1: none), and the sum of exp(z_j - that max). */
static double l2c__exp_sum(const float *z, int k, int skip, double *zmax)
{
    double m = -HUGE_VAL, sum = 0.0;
    int j;
    for (j = 0; j < k; j++) if (j != skip && z[j] > m) m = z[j];
    for (j = 0; j < k; j++) if (j != skip) sum += exp((double)z[j] - m);
    *zmax = m;
    return sum;
}

/* One sample's loss and d loss / d z (into dz): cross-entropy -log p_t, or with complement
   -log(1 - p_t) = LSE(z) - LSE_{j != t}(z), whose derivative is p_j - q_j, q the softmax over j != t. */
static double l2c__softmax_sample_loss(const float *z, int k, int t, int complement, float *dz)
{
    double zmax, sum = l2c__exp_sum(z, k, -1, &zmax), rmax = 0.0, rsum = complement ? l2c__exp_sum(z, k, t, &rmax) : 1.0;
    int j;
    for (j = 0; j < k; j++) {
        float p = (float)(exp((double)z[j] - zmax) / sum);
        if (complement) dz[j] = j == t ? p : p - (float)(exp((double)z[j] - rmax) / rsum);
        else dz[j] = p - (j == t ? 1.0f : 0.0f);
    }
    return complement ? log(sum) + zmax - (log(rsum) + rmax) : log(sum) + zmax - z[t];
}

/* Records a softmax loss on logits with its per-sample gradient buffer dz (saved for the backward);
   the caller fills dz and the mean loss. */
static l2c__node *l2c__softmax_loss_node(l2c_tape *t, l2c_tensor *logits, float **dz)
{
    l2c__node *nd = l2c__record(t, l2c__softmax_loss_backward, logits, NULL, NULL, 1, 1, 1, 1);
    *dz = nd ? l2c__alloc_floats(t, (size_t)logits->n * l2c__sample(logits)) : NULL;
    if (!*dz) return NULL;
    nd->save[0] = *dz;
    return nd;
}

static l2c_tensor *l2c__softmax_loss(const char *name, l2c_tape *t, l2c_tensor *logits, const uint8_t *labels,
                                     const int *label_map, int complement)
{
    l2c__node *nd;
    int n, k, i;
    float *dz;
    double loss = 0.0;
    if (l2c__check_inputs(name, t, logits) || !labels) { (void)l2c__fail(L2C_EINVAL, "%s: NULL argument", name); return NULL; }
    n = logits->n;
    k = (int)l2c__sample(logits);
    if (complement && k < 2) { (void)l2c__fail(L2C_EINVAL, "%s: needs at least 2 classes, got %d", name, k); return NULL; }
    for (i = 0; i < n; i++) {
        int y = labels[i];
        if (y >= k || (label_map && (label_map[y] < 0 || label_map[y] >= k))) {
            (void)l2c__fail(L2C_EINVAL, "%s: label %d of sample %d (mapped: %d) is outside the %d classes",
                            name, y, i, label_map && y < k ? label_map[y] : y, k);
            return NULL;
        }
    }
    if (!(nd = l2c__softmax_loss_node(t, logits, &dz))) return NULL;
    for (i = 0; i < n; i++)
        loss += l2c__softmax_sample_loss(logits->data + (size_t)i * k, k, label_map ? label_map[labels[i]] : labels[i],
                                         complement, dz + (size_t)i * k);
    nd->out->data[0] = (float)(loss / n);
    return nd->out;
}

L2C_API l2c_tensor *l2c_softmax_xent(l2c_tape *t, l2c_tensor *logits, const uint8_t *labels,
                                     const int *label_map)
{
    return l2c__softmax_loss("l2c_softmax_xent", t, logits, labels, label_map, 0);
}

L2C_API l2c_tensor *l2c_softmax_complement(l2c_tape *t, l2c_tensor *logits, const uint8_t *labels,
                                           const int *label_map)
{
    return l2c__softmax_loss("l2c_softmax_complement", t, logits, labels, label_map, 1);
}

/* Whether row q of k entries is a probability distribution (non-negative, sums to 1 within 1e-3). */
static int l2c__is_distribution(const float *q, int k)
{
    double sum = 0.0;
    int j;
    for (j = 0; j < k; j++) {
        if (!(q[j] >= 0.0f && q[j] <= 1.0f)) return 0;
        sum += q[j];
    }
    return fabs(sum - 1.0) <= 1e-3;
}

/* The largest of z_j / T over k logits, and the sum of exp(z_j / T - that max). */
static double l2c__softened_exp_sum(const float *z, int k, float T, double *zmax)
{
    double m = -HUGE_VAL, sum = 0.0;
    int j;
    for (j = 0; j < k; j++) if (z[j] / T > m) m = z[j] / T;
    for (j = 0; j < k; j++) sum += exp(z[j] / T - m);
    *zmax = m;
    return sum;
}

/* One sample's T^2 KL(q || p), p = softmax(z / T), and d/dz = T (p - q) into dz. */
static double l2c__kl_sample_loss(const float *z, const float *q, int k, float T, float *dz)
{
    double zmax, sum = l2c__softened_exp_sum(z, k, T, &zmax), loss = 0.0;
    int j;
    for (j = 0; j < k; j++) {
        double logp = z[j] / T - zmax - log(sum);
        dz[j] = (float)(T * (exp(logp) - q[j]));
        if (q[j] > 0.0f) loss += q[j] * (log(q[j]) - logp);
    }
    return (double)T * T * loss;
}

L2C_API l2c_tensor *l2c_softmax_kl(l2c_tape *t, l2c_tensor *logits, const float *targets, float temperature)
{
    l2c__node *nd;
    int n, k, i;
    float *dz;
    double loss = 0.0;
    if (l2c__check_inputs("l2c_softmax_kl", t, logits) || !targets) { (void)l2c__fail(L2C_EINVAL, "l2c_softmax_kl: NULL argument"); return NULL; }
    if (!(temperature > 0.0f && temperature <= 1e6f)) { (void)l2c__fail(L2C_EINVAL, "l2c_softmax_kl: temperature %g must be in (0, 1e6]", temperature); return NULL; }
    n = logits->n;
    k = (int)l2c__sample(logits);
    for (i = 0; i < n; i++)
        if (!l2c__is_distribution(targets + (size_t)i * k, k)) {
            (void)l2c__fail(L2C_EINVAL, "l2c_softmax_kl: target row %d is not a probability distribution over %d classes", i, k);
            return NULL;
        }
    if (!(nd = l2c__softmax_loss_node(t, logits, &dz))) return NULL;
    for (i = 0; i < n; i++)
        loss += l2c__kl_sample_loss(logits->data + (size_t)i * k, targets + (size_t)i * k, k, temperature, dz + (size_t)i * k);
    nd->out->data[0] = (float)(loss / n);
    return nd->out;
}

/* ---------------------------------------------------------------- 5. models -------------------- */

L2C_API l2c_model *l2c_model_new(int c, int h, int w)
{
    l2c_model *m;
    if (!l2c__shape_ok(1, c, h, w)) return (l2c_model *)l2c__fail_null(L2C_EINVAL, "%s: impossible input shape", "l2c_model_new");
    m = (l2c_model *)l2c__calloc(sizeof *m);
    if (!m) return NULL;
    m->in_c = c; m->in_h = h; m->in_w = w;
    m->bn_momentum = 0.1f;
    m->bn_eps = 1e-5f;
    return m;
}

L2C_API void l2c_model_free(l2c_model *m)
{
    if (!m) return;
    L2C_FREE(m->params);
    L2C_FREE(m->grads);
    L2C_FREE(m->buffers);
    L2C_FREE(m);
}

/* Grows params/grads by np and buffers by nb floats (zeroed); offsets of the new space returned. */
static int l2c__model_grow(l2c_model *m, size_t np, size_t nb, size_t *p_off, size_t *b_off)
{
    float *p = (float *)L2C_REALLOC(m->params, (m->nparams + np + 1) * sizeof(float));
    if (p) m->params = p;
    {
        float *g = p ? (float *)L2C_REALLOC(m->grads, (m->nparams + np + 1) * sizeof(float)) : NULL;
        float *b = g ? (m->grads = g, (float *)L2C_REALLOC(m->buffers, (m->nbuffers + nb + 1) * sizeof(float))) : NULL;
        if (!b) return l2c__fail(L2C_ENOMEM, "model: out of memory");
        m->buffers = b;
    }
    memset(m->params + m->nparams, 0, np * sizeof(float));
    memset(m->grads + m->nparams, 0, np * sizeof(float));
    memset(m->buffers + m->nbuffers, 0, nb * sizeof(float));
    *p_off = m->nparams;
    *b_off = m->nbuffers;
    m->nparams += np;
    m->nbuffers += nb;
    return L2C_OK;
}

/* Appends a layer of the given type and output shape with np parameters (first weight_size of them
   the weight, the rest the bias) and nb buffer floats. */
static int l2c__model_push(l2c_model *m, l2c_layer L, int oc, int oh, int ow, size_t weight_size,
                           size_t bias_size, size_t nb)
{
    size_t p_off, b_off;
    const char *name = "layer";
    int rc;
    if (!m) return l2c__fail(L2C_EINVAL, "model: NULL model");
    if (m->nlayers == L2C_MAX_LAYERS) return l2c__fail(L2C_EINVAL, "model: more than %d layers", L2C_MAX_LAYERS);
    if (!l2c__shape_ok(1, oc, oh, ow)) return l2c__fail(L2C_EINVAL, "model: %s gives an impossible output %dx%dx%d", name, oc, oh, ow);
    rc = l2c__model_grow(m, weight_size + bias_size, nb, &p_off, &b_off);
    if (rc) return rc;
    L.out_c = oc; L.out_h = oh; L.out_w = ow;
    L.weight = p_off;
    L.weight_size = weight_size;
    L.bias = bias_size ? p_off + weight_size : (size_t)-1;
    L.running = b_off;
    m->layers[m->nlayers++] = L;
    return L2C_OK;
}

/* A layer fed by the current output of the model. */
static l2c_layer l2c__next_layer(const l2c_model *m, int type)
{
    l2c_layer L;
    memset(&L, 0, sizeof L);
    L.type = type;
    if (m->nlayers) { const l2c_layer *p = &m->layers[m->nlayers - 1]; L.in_c = p->out_c; L.in_h = p->out_h; L.in_w = p->out_w; }
    else { L.in_c = m->in_c; L.in_h = m->in_h; L.in_w = m->in_w; }
    return L;
}

L2C_API int l2c_model_dense(l2c_model *m, int out)
{
    l2c_layer L;
    size_t in;
    if (!m || out < 1) return l2c__fail(L2C_EINVAL, "l2c_model_dense: need a model and out >= 1");
    L = l2c__next_layer(m, L2C_LAYER_DENSE);
    in = (size_t)L.in_c * L.in_h * L.in_w;
    return l2c__model_push(m, L, out, 1, 1, in * out, (size_t)out, 0);
}

static int l2c__model_conv_like(l2c_model *m, int type, int oc, int k, int s, int pad)
{
    l2c_layer L;
    int oh, ow;
    const char *op = type == L2C_LAYER_CONV ? "l2c_model_conv" : "l2c_model_deconv";
    if (!m || oc < 1 || k < 1 || s < 1 || pad < 0 || pad >= k)
        return l2c__fail(L2C_EINVAL, "%s: impossible channels %d / kernel %d / stride %d / padding %d", op, oc, k, s, pad);
    L = l2c__next_layer(m, type);
    L.k = k; L.stride = s; L.pad = pad;
    if (type == L2C_LAYER_CONV) {
        if (L.in_h + 2 * pad < k || L.in_w + 2 * pad < k)
            return l2c__fail(L2C_EINVAL, "%s: a %dx%d input is smaller than the kernel %d", op, L.in_h, L.in_w, k);
        oh = (L.in_h + 2 * pad - k) / s + 1;
        ow = (L.in_w + 2 * pad - k) / s + 1;
    } else {
        oh = (L.in_h - 1) * s - 2 * pad + k;
        ow = (L.in_w - 1) * s - 2 * pad + k;
    }
    return l2c__model_push(m, L, oc, oh, ow, (size_t)oc * L.in_c * k * k, (size_t)oc, 0);
}

L2C_API int l2c_model_conv(l2c_model *m, int oc, int k, int s, int pad) { return l2c__model_conv_like(m, L2C_LAYER_CONV, oc, k, s, pad); }
L2C_API int l2c_model_deconv(l2c_model *m, int oc, int k, int s, int pad) { return l2c__model_conv_like(m, L2C_LAYER_DECONV, oc, k, s, pad); }

L2C_API int l2c_model_batchnorm(l2c_model *m)
{
    l2c_layer L;
    if (!m) return l2c__fail(L2C_EINVAL, "l2c_model_batchnorm: NULL model");
    L = l2c__next_layer(m, L2C_LAYER_BATCHNORM);
    return l2c__model_push(m, L, L.in_c, L.in_h, L.in_w, (size_t)L.in_c, (size_t)L.in_c, 2 * (size_t)L.in_c);
}

static int l2c__model_same_shape(l2c_model *m, int type)
{
    l2c_layer L;
    if (!m) return l2c__fail(L2C_EINVAL, "model: NULL model");
    L = l2c__next_layer(m, type);
    return l2c__model_push(m, L, L.in_c, L.in_h, L.in_w, 0, 0, 0);
}

L2C_API int l2c_model_relu(l2c_model *m) { return l2c__model_same_shape(m, L2C_LAYER_RELU); }
L2C_API int l2c_model_tanh(l2c_model *m) { return l2c__model_same_shape(m, L2C_LAYER_TANH); }

L2C_API int l2c_model_flatten(l2c_model *m)
{
    l2c_layer L;
    if (!m) return l2c__fail(L2C_EINVAL, "l2c_model_flatten: NULL model");
    L = l2c__next_layer(m, L2C_LAYER_FLATTEN);
    return l2c__model_push(m, L, L.in_c * L.in_h * L.in_w, 1, 1, 0, 0, 0);
}

static int l2c__model_pool(l2c_model *m, int type, int k, int s)
{
    l2c_layer L;
    if (!m || k < 1 || s < 1) return l2c__fail(L2C_EINVAL, "model pooling: impossible window %d / stride %d", k, s);
    L = l2c__next_layer(m, type);
    if (k > L.in_h || k > L.in_w) return l2c__fail(L2C_EINVAL, "model pooling: window %d larger than the %dx%d input", k, L.in_h, L.in_w);
    L.k = k; L.stride = s;
    return l2c__model_push(m, L, L.in_c, (L.in_h - k) / s + 1, (L.in_w - k) / s + 1, 0, 0, 0);
}

L2C_API int l2c_model_maxpool(l2c_model *m, int k, int s) { return l2c__model_pool(m, L2C_LAYER_MAXPOOL, k, s); }
L2C_API int l2c_model_avgpool(l2c_model *m, int k, int s) { return l2c__model_pool(m, L2C_LAYER_AVGPOOL, k, s); }

/* PyTorch's fan_in: weight dimension 1 times the kernel area; for a transposed conv (weight
   IN x OUT x K x K) that is OUT*K*K. */
static int l2c__fan_in(const l2c_layer *L)
{
    switch (L->type) {
    case L2C_LAYER_DENSE: return L->in_c * L->in_h * L->in_w;
    case L2C_LAYER_CONV: return L->in_c * L->k * L->k;
    case L2C_LAYER_DECONV: return L->out_c * L->k * L->k;
    default: return 1;
    }
}

static void l2c__uniform_fill(l2c_rng *rng, float *p, size_t n, float bound)
{
    size_t i;
    for (i = 0; i < n; i++) p[i] = (2.0f * l2c_rng_uniform(rng) - 1.0f) * bound;
}

L2C_API void l2c_model_init(l2c_model *m, uint64_t seed)
{
    l2c_rng rng;
    int i;
    l2c_rng_seed(&rng, seed);
    for (i = 0; i < m->nlayers; i++) {
        const l2c_layer *L = &m->layers[i];
        size_t j;
        if (L->type == L2C_LAYER_BATCHNORM) {
            for (j = 0; j < (size_t)L->in_c; j++) {
                m->params[L->weight + j] = 1.0f;
                m->params[L->bias + j] = 0.0f;
                m->buffers[L->running + j] = 0.0f;
                m->buffers[L->running + L->in_c + j] = 1.0f;
            }
        } else if (L->weight_size) {
            float bound = 1.0f / sqrtf((float)l2c__fan_in(L));
            l2c__uniform_fill(&rng, m->params + L->weight, L->weight_size, bound);
            if (L->bias != (size_t)-1) l2c__uniform_fill(&rng, m->params + L->bias, (size_t)L->out_c, bound);
        }
    }
    l2c_model_zero_grad(m);
}

L2C_API void l2c_model_output_shape(const l2c_model *m, int *c, int *h, int *w)
{
    const l2c_layer *L = m->nlayers ? &m->layers[m->nlayers - 1] : NULL;
    *c = L ? L->out_c : m->in_c;
    *h = L ? L->out_h : m->in_h;
    *w = L ? L->out_w : m->in_w;
}

/* A tape tensor viewing model parameters [off, off + n*c*h*w). */
static l2c_tensor *l2c__param_view(l2c_tape *t, l2c_model *m, size_t off, int n, int c, int h, int w)
{
    l2c_tensor *v = (l2c_tensor *)l2c__alloc(t, sizeof *v);
    if (!v) return NULL;
    v->n = n; v->c = c; v->h = h; v->w = w;
    v->data = m->params + off;
    v->grad = t->param_grads ? m->grads + off : NULL;
    return v;
}

static l2c_tensor *l2c__layer_forward(l2c_tape *t, l2c_model *m, const l2c_layer *L, l2c_tensor *x, int mode)
{
    l2c_tensor *W = NULL, *b = NULL;
    int k = L->k;
    switch (L->type) {
    case L2C_LAYER_DENSE:
        W = l2c__param_view(t, m, L->weight, L->out_c, L->in_c * L->in_h * L->in_w, 1, 1);
        b = l2c__param_view(t, m, L->bias, L->out_c, 1, 1, 1);
        return W && b ? l2c_dense(t, x, W, b) : NULL;
    case L2C_LAYER_CONV:
        W = l2c__param_view(t, m, L->weight, L->out_c, L->in_c, k, k);
        b = l2c__param_view(t, m, L->bias, L->out_c, 1, 1, 1);
        return W && b ? l2c_conv2d(t, x, W, b, L->stride, L->pad) : NULL;
    case L2C_LAYER_DECONV:
        W = l2c__param_view(t, m, L->weight, L->in_c, L->out_c, k, k);
        b = l2c__param_view(t, m, L->bias, L->out_c, 1, 1, 1);
        return W && b ? l2c_deconv2d(t, x, W, b, L->stride, L->pad) : NULL;
    case L2C_LAYER_BATCHNORM:
        W = l2c__param_view(t, m, L->weight, L->in_c, 1, 1, 1);
        b = l2c__param_view(t, m, L->bias, L->in_c, 1, 1, 1);
        return W && b ? l2c_batchnorm(t, x, W, b, m->buffers + L->running, m->buffers + L->running + L->in_c,
                                      mode, m->bn_momentum, m->bn_eps) : NULL;
    case L2C_LAYER_RELU: return l2c_relu(t, x);
    case L2C_LAYER_TANH: return l2c_tanh(t, x);
    case L2C_LAYER_MAXPOOL: return l2c_maxpool(t, x, k, L->stride);
    case L2C_LAYER_AVGPOOL: return l2c_avgpool(t, x, k, L->stride);
    case L2C_LAYER_FLATTEN: return l2c_flatten(t, x);
    default: (void)l2c__fail(L2C_EINVAL, "model: unknown layer type %d", L->type); return NULL;
    }
}

L2C_API l2c_tensor *l2c_model_forward(l2c_tape *t, l2c_model *m, l2c_tensor *x, int mode)
{
    int i;
    if (!t || !m || !x) { (void)l2c__fail(L2C_EINVAL, "l2c_model_forward: NULL argument"); return NULL; }
    if (x->c != m->in_c || x->h != m->in_h || x->w != m->in_w) {
        (void)l2c__fail(L2C_EINVAL, "l2c_model_forward: the model takes %dx%dx%d samples, got %dx%dx%d",
                        m->in_c, m->in_h, m->in_w, x->c, x->h, x->w);
        return NULL;
    }
    for (i = 0; i < m->nlayers && x; i++) x = l2c__layer_forward(t, m, &m->layers[i], x, mode);
    return x;
}

L2C_API void l2c_model_zero_grad(l2c_model *m)
{
    if (m->nparams) memset(m->grads, 0, m->nparams * sizeof(float));
}

static int l2c__argmax(const float *z, int k)
{
    int j, best = 0;
    for (j = 1; j < k; j++) if (z[j] > z[best]) best = j;
    return best;
}

L2C_API int l2c_model_predict(l2c_model *m, l2c_tape *t, const float *x, int n, int batch, uint8_t *pred)
{
    size_t per;
    int i;
    if (!m || !t || !x || !pred || n < 0 || batch < 1) return l2c__fail(L2C_EINVAL, "l2c_model_predict: bad argument");
    per = (size_t)m->in_c * m->in_h * m->in_w;
    for (i = 0; i < n; i += batch) {
        int b = n - i < batch ? n - i : batch, j, k;
        l2c_tensor *in, *out;
        l2c_tape_reset(t);
        in = l2c_tape_input(t, b, m->in_c, m->in_h, m->in_w, x + (size_t)i * per, 0);
        out = in ? l2c_model_forward(t, m, in, L2C_EVAL) : NULL;
        if (!out) return L2C_EINVAL;
        k = (int)l2c__sample(out);
        if (k > 256) return l2c__fail(L2C_EINVAL, "l2c_model_predict: %d outputs; at most 256 classes", k);
        for (j = 0; j < b; j++) pred[i + j] = (uint8_t)l2c__argmax(out->data + (size_t)j * k, k);
    }
    l2c_tape_reset(t);
    return L2C_OK;
}

L2C_API int l2c_model_same_arch(const l2c_model *a, const l2c_model *b)
{
    int i;
    if (!a || !b || a->nlayers != b->nlayers || a->in_c != b->in_c || a->in_h != b->in_h || a->in_w != b->in_w ||
        a->nparams != b->nparams || a->nbuffers != b->nbuffers) return 0;
    for (i = 0; i < a->nlayers; i++) {
        const l2c_layer *p = &a->layers[i], *q = &b->layers[i];
        if (p->type != q->type || p->k != q->k || p->stride != q->stride || p->pad != q->pad ||
            p->out_c != q->out_c || p->out_h != q->out_h || p->out_w != q->out_w) return 0;
    }
    return 1;
}

L2C_API int l2c_model_copy(l2c_model *dst, const l2c_model *src)
{
    if (!l2c_model_same_arch(dst, src)) return l2c__fail(L2C_EINVAL, "l2c_model_copy: the models differ in architecture");
    if (dst == src) return L2C_OK;
    memcpy(dst->params, src->params, src->nparams * sizeof(float));
    memcpy(dst->buffers, src->buffers, src->nbuffers * sizeof(float));
    dst->bn_momentum = src->bn_momentum;
    dst->bn_eps = src->bn_eps;
    return L2C_OK;
}

L2C_API l2c_model *l2c_model_clone(const l2c_model *src)
{
    l2c_model *m;
    size_t p_off, b_off;
    if (!src) return (l2c_model *)l2c__fail_null(L2C_EINVAL, "%s: NULL model", "l2c_model_clone");
    m = l2c_model_new(src->in_c, src->in_h, src->in_w);
    if (!m) return NULL;
    if (l2c__model_grow(m, src->nparams, src->nbuffers, &p_off, &b_off)) { l2c_model_free(m); return NULL; }
    memcpy(m->layers, src->layers, sizeof src->layers);
    m->nlayers = src->nlayers;
    (void)l2c_model_copy(m, src);
    return m;
}

/* -- serialisation helpers: explicit little-endian fields, so files move between machines */

typedef struct l2c__buf { uint8_t *p; size_t len, cap; int failed; } l2c__buf;

static void l2c__put(l2c__buf *b, const void *src, size_t n)
{
    if (b->failed) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        uint8_t *p;
        while (cap < b->len + n) cap *= 2;
        p = (uint8_t *)L2C_REALLOC(b->p, cap);
        if (!p) { b->failed = 1; return; }
        b->p = p; b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void l2c__put_u32(l2c__buf *b, uint32_t v)
{
    uint8_t s[4];
    s[0] = (uint8_t)v; s[1] = (uint8_t)(v >> 8); s[2] = (uint8_t)(v >> 16); s[3] = (uint8_t)(v >> 24);
    l2c__put(b, s, 4);
}

static void l2c__put_u64(l2c__buf *b, uint64_t v) { l2c__put_u32(b, (uint32_t)v); l2c__put_u32(b, (uint32_t)(v >> 32)); }

static void l2c__put_floats(l2c__buf *b, const float *f, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) { uint32_t u; memcpy(&u, &f[i], 4); l2c__put_u32(b, u); }
}

static uint32_t l2c__get_u32(const uint8_t *s) { return (uint32_t)s[0] | (uint32_t)s[1] << 8 | (uint32_t)s[2] << 16 | (uint32_t)s[3] << 24; }
static uint64_t l2c__get_u64(const uint8_t *s) { return l2c__get_u32(s) | (uint64_t)l2c__get_u32(s + 4) << 32; }

static void l2c__get_floats(const uint8_t *s, float *f, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) { uint32_t u = l2c__get_u32(s + 4 * i); memcpy(&f[i], &u, 4); }
}

/* FNV-1a, 32 bits: catches corruption, not tampering. */
static uint32_t l2c__checksum(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    size_t i;
    for (i = 0; i < n; i++) { h ^= p[i]; h *= 16777619u; }
    return h;
}

/* Appends the checksum of everything so far, writes atomically and frees the buffer. */
static int l2c__buf_commit(l2c__buf *b, const char *path)
{
    int rc;
    if (!b->failed) l2c__put_u32(b, l2c__checksum(b->p, b->len));
    rc = b->failed ? l2c__fail(L2C_ENOMEM, "%s: out of memory while serialising", path)
                   : l2c_write_file_atomic(path, b->p, b->len);
    L2C_FREE(b->p);
    return rc;
}

/* Reads a whole file of at most max_len bytes. */
static int l2c__read_file(const char *path, uint8_t **data, size_t *len, size_t max_len)
{
    FILE *f;
    long size;
    *data = NULL; *len = 0;
    if (!path) return l2c__fail(L2C_EINVAL, "NULL path");
    f = fopen(path, "rb");
    if (!f) return l2c__fail(L2C_EIO, "%s: cannot open for reading", path);
    if (fseek(f, 0, SEEK_END) || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
        fclose(f);
        return l2c__fail(L2C_EIO, "%s: cannot determine the file size", path);
    }
    if ((unsigned long)size > max_len) {
        fclose(f);
        return l2c__fail(L2C_EFORMAT, "%s: %ld bytes where %lu are expected: a file of another kind or architecture",
                         path, size, (unsigned long)max_len);
    }
    *data = (uint8_t *)L2C_MALLOC((size_t)size + 1);
    if (!*data) { fclose(f); return l2c__fail(L2C_ENOMEM, "%s: out of memory", path); }
    if (fread(*data, 1, (size_t)size, f) != (size_t)size) {
        fclose(f); L2C_FREE(*data); *data = NULL;
        return l2c__fail(L2C_EIO, "%s: read error", path);
    }
    fclose(f);
    *len = (size_t)size;
    return L2C_OK;
}

/* Checks magic, format version, length and trailing checksum of a file image made by
   l2c__buf_commit. */
static int l2c__verify_version(const char *path, const uint8_t *p, size_t len, size_t expected, const char *magic,
                               uint32_t version)
{
    if (len < 8 || memcmp(p, magic, 4) != 0) return l2c__fail(L2C_EFORMAT, "%s: not a %s file (bad magic)", path, magic);
    if (l2c__get_u32(p + 4) != version) return l2c__fail(L2C_EFORMAT, "%s: unsupported format version %u", path, (unsigned)l2c__get_u32(p + 4));
    if (len != expected)
        return l2c__fail(L2C_EFORMAT, "%s: %lu bytes where this model/state needs %lu: another architecture, or truncated",
                         path, (unsigned long)len, (unsigned long)expected);
    if (l2c__checksum(p, len - 4) != l2c__get_u32(p + len - 4)) return l2c__fail(L2C_EFORMAT, "%s: checksum mismatch (corrupted file)", path);
    return L2C_OK;
}

/* Models and optimiser states are at format version 1. */
static int l2c__verify(const char *path, const uint8_t *p, size_t len, size_t expected, const char *magic)
{
    return l2c__verify_version(path, p, len, expected, magic, 1);
}

static void l2c__put_arch(l2c__buf *b, const l2c_model *m)
{
    int i;
    l2c__put_u32(b, (uint32_t)m->in_c); l2c__put_u32(b, (uint32_t)m->in_h); l2c__put_u32(b, (uint32_t)m->in_w);
    l2c__put_u32(b, (uint32_t)m->nlayers);
    for (i = 0; i < m->nlayers; i++) {
        const l2c_layer *L = &m->layers[i];
        l2c__put_u32(b, (uint32_t)L->type); l2c__put_u32(b, (uint32_t)L->k);
        l2c__put_u32(b, (uint32_t)L->stride); l2c__put_u32(b, (uint32_t)L->pad);
        l2c__put_u32(b, (uint32_t)L->out_c); l2c__put_u32(b, (uint32_t)L->out_h); l2c__put_u32(b, (uint32_t)L->out_w);
    }
    l2c__put_u64(b, m->nparams);
    l2c__put_u64(b, m->nbuffers);
}

static void l2c__put_state(l2c__buf *b, const l2c_model *m)
{
    l2c__put_floats(b, m->params, m->nparams);
    l2c__put_floats(b, m->buffers, m->nbuffers);
}

static size_t l2c__arch_bytes(const l2c_model *m) { return 16 + 28 * (size_t)m->nlayers + 16; }
static size_t l2c__state_bytes(const l2c_model *m) { return 4 * (m->nparams + m->nbuffers); }

/* Compares the architecture record at p with m's. */
static int l2c__check_arch(const char *path, const uint8_t *p, const l2c_model *m)
{
    l2c__buf b;
    int same;
    memset(&b, 0, sizeof b);
    l2c__put_arch(&b, m);
    if (b.failed) return l2c__fail(L2C_ENOMEM, "out of memory");
    same = memcmp(b.p, p, b.len) == 0;
    L2C_FREE(b.p);
    return same ? L2C_OK : l2c__fail(L2C_EFORMAT, "%s: the checkpoint is of another architecture", path);
}

L2C_API int l2c_model_save(const l2c_model *m, const char *path)
{
    l2c__buf b;
    if (!m || !path) return l2c__fail(L2C_EINVAL, "l2c_model_save: NULL argument");
    memset(&b, 0, sizeof b);
    l2c__put(&b, "L2CM", 4);
    l2c__put_u32(&b, 1);
    l2c__put_arch(&b, m);
    l2c__put_state(&b, m);
    return l2c__buf_commit(&b, path);
}

L2C_API int l2c_model_load(l2c_model *m, const char *path)
{
    uint8_t *p;
    size_t len, expected;
    int rc;
    if (!m || !path) return l2c__fail(L2C_EINVAL, "l2c_model_load: NULL argument");
    expected = 8 + l2c__arch_bytes(m) + l2c__state_bytes(m) + 4;
    rc = l2c__read_file(path, &p, &len, expected);
    if (rc) return rc;
    rc = l2c__verify(path, p, len, expected, "L2CM");
    if (!rc) rc = l2c__check_arch(path, p + 8, m);
    if (!rc) {
        const uint8_t *s = p + 8 + l2c__arch_bytes(m);
        l2c__get_floats(s, m->params, m->nparams);
        l2c__get_floats(s + 4 * m->nparams, m->buffers, m->nbuffers);
    }
    L2C_FREE(p);
    return rc;
}

/* Appends one layer described by an architecture record (type, k, stride, pad, out_c, out_h, out_w). */
static int l2c__add_recorded_layer(l2c_model *m, const uint8_t *r)
{
    int type = (int)l2c__get_u32(r), k = (int)l2c__get_u32(r + 4), stride = (int)l2c__get_u32(r + 8);
    int pad = (int)l2c__get_u32(r + 12), out_c = (int)l2c__get_u32(r + 16);
    long out = (long)out_c * (long)l2c__get_u32(r + 20) * (long)l2c__get_u32(r + 24);
    switch (type) {
    case L2C_LAYER_DENSE: return out > 0 && out <= (1L << 24) ? l2c_model_dense(m, (int)out) : L2C_EFORMAT;
    case L2C_LAYER_CONV: return l2c_model_conv(m, out_c, k, stride, pad);
    case L2C_LAYER_DECONV: return l2c_model_deconv(m, out_c, k, stride, pad);
    case L2C_LAYER_BATCHNORM: return l2c_model_batchnorm(m);
    case L2C_LAYER_RELU: return l2c_model_relu(m);
    case L2C_LAYER_TANH: return l2c_model_tanh(m);
    case L2C_LAYER_MAXPOOL: return l2c_model_maxpool(m, k, stride);
    case L2C_LAYER_AVGPOOL: return l2c_model_avgpool(m, k, stride);
    case L2C_LAYER_FLATTEN: return l2c_model_flatten(m);
    default: return L2C_EFORMAT;
    }
}

L2C_API l2c_model *l2c_model_read(const char *path)
{
    uint8_t *p;
    size_t len;
    int i, nlayers, rc = l2c__read_file(path, &p, &len, (size_t)1 << 31);
    l2c_model *m = NULL;
    if (rc) return NULL;
    nlayers = len >= 24 ? (int)l2c__get_u32(p + 20) : -1;
    if (len < 24 || memcmp(p, "L2CM", 4) != 0 || nlayers < 0 || nlayers > L2C_MAX_LAYERS || len < 40 + 28 * (size_t)nlayers)
        rc = l2c__fail(L2C_EFORMAT, "%s: not a model checkpoint (bad magic or architecture record)", path);
    else {   /* the sizes the record claims must account for the file exactly, before anything is built */
        const uint8_t *sizes = p + 24 + 28 * (size_t)nlayers;
        uint64_t np = l2c__get_u64(sizes), nb = l2c__get_u64(sizes + 8);
        if (np > len || nb > len || 8 + 32 + 28 * (uint64_t)nlayers + 4 * (np + nb) + 4 != len)
            rc = l2c__fail(L2C_EFORMAT, "%s: the architecture record does not match the file's length (truncated?)", path);
    }
    if (!rc && !(m = l2c_model_new((int)l2c__get_u32(p + 8), (int)l2c__get_u32(p + 12), (int)l2c__get_u32(p + 16))))
        rc = L2C_EFORMAT;
    for (i = 0; !rc && i < nlayers; i++)
        if (l2c__add_recorded_layer(m, p + 24 + 28 * (size_t)i))
            rc = l2c__fail(L2C_EFORMAT, "%s: layer %d of the architecture record cannot be built", path, i + 1);
    L2C_FREE(p);
    if (!rc) rc = l2c_model_load(m, path);   /* checks the whole record, the length and the checksum */
    if (rc) { l2c_model_free(m); return NULL; }
    return m;
}

/* ---------------------------------------------------------------- 6. optimisers --------------- */

L2C_API int l2c_sgd_init(l2c_sgd *opt, const l2c_model *m, float lr, float momentum, float weight_decay)
{
    if (!opt || !m) return l2c__fail(L2C_EINVAL, "l2c_sgd_init: NULL argument");
    memset(opt, 0, sizeof *opt);
    if (!(lr > 0.0f) || !(momentum >= 0.0f && momentum < 1.0f) || !(weight_decay >= 0.0f))
        return l2c__fail(L2C_EINVAL, "l2c_sgd_init: need lr > 0, momentum in [0, 1), weight decay >= 0");
    memset(opt, 0, sizeof *opt);
    opt->lr = lr; opt->momentum = momentum; opt->weight_decay = weight_decay;
    opt->n = m->nparams;
    if (momentum > 0.0f && !(opt->velocity = (float *)l2c__calloc(m->nparams * sizeof(float)))) return L2C_ENOMEM;
    return L2C_OK;
}

/* PyTorch's rule: g += wd*p; v = mu*v + g; p -= lr*v. */
L2C_API void l2c_sgd_step(l2c_sgd *opt, l2c_model *m)
{
    size_t i, n = opt->n < m->nparams ? opt->n : m->nparams;
    float lr = opt->lr, mu = opt->momentum, wd = opt->weight_decay;
    float *p = m->params, *g = m->grads, *v = opt->velocity;
    L2C_OMP(omp parallel for if(n > L2C__PAR_MIN))
    for (i = 0; i < n; i++) {
        float d = g[i] + wd * p[i];
        if (v) d = v[i] = mu * v[i] + d;
        p[i] -= lr * d;
    }
}

L2C_API void l2c_sgd_reset(l2c_sgd *opt) { if (opt && opt->velocity) memset(opt->velocity, 0, opt->n * sizeof(float)); }

L2C_API void l2c_sgd_free(l2c_sgd *opt) { if (opt) { L2C_FREE(opt->velocity); opt->velocity = NULL; } }

L2C_API int l2c_adam_init(l2c_adam *opt, const l2c_model *m, float lr, float beta1, float beta2,
                          float eps, int amsgrad)
{
    size_t bytes;
    if (!opt || !m) return l2c__fail(L2C_EINVAL, "l2c_adam_init: NULL argument");
    memset(opt, 0, sizeof *opt);
    if (!(lr > 0.0f) || !(beta1 >= 0.0f && beta1 < 1.0f) || !(beta2 >= 0.0f && beta2 < 1.0f) || !(eps > 0.0f))
        return l2c__fail(L2C_EINVAL, "l2c_adam_init: need lr > 0, betas in [0, 1), eps > 0");
    memset(opt, 0, sizeof *opt);
    opt->lr = lr; opt->beta1 = beta1; opt->beta2 = beta2; opt->eps = eps; opt->amsgrad = amsgrad;
    opt->n = m->nparams;
    bytes = m->nparams * sizeof(float);
    opt->m = (float *)l2c__calloc(bytes);
    opt->v = (float *)l2c__calloc(bytes);
    opt->vmax = amsgrad ? (float *)l2c__calloc(bytes) : NULL;
    if (!opt->m || !opt->v || (amsgrad && !opt->vmax)) { l2c_adam_free(opt); return L2C_ENOMEM; }
    return L2C_OK;
}

/* Adam's bias corrections at step t (1-based): the step size lr / (1 - b1^t) and 1 / sqrt(1 - b2^t). */
static void l2c__adam_scales(const l2c_adam *opt, long t, float *step_size, float *inv_sqrt_bc2)
{
    *step_size = (float)(opt->lr / (1.0 - pow(opt->beta1, (double)t)));
    *inv_sqrt_bc2 = (float)(1.0 / sqrt(1.0 - pow(opt->beta2, (double)t)));
}

L2C_API void l2c_adam_step(l2c_adam *opt, l2c_model *m)
{
    size_t i, n = opt->n < m->nparams ? opt->n : m->nparams;
    float b1 = opt->beta1, b2 = opt->beta2, eps = opt->eps, wd = opt->weight_decay;
    float *p = m->params, *g = m->grads, *mm = opt->m, *vv = opt->v, *vmax = opt->vmax;
    float step_size, inv_sqrt_bc2;
    l2c__adam_scales(opt, ++opt->step, &step_size, &inv_sqrt_bc2);
    L2C_OMP(omp parallel for if(n > L2C__PAR_MIN))
    for (i = 0; i < n; i++) {
        float gi = g[i] + wd * p[i], vi;
        mm[i] = b1 * mm[i] + (1.0f - b1) * gi;
        vv[i] = b2 * vv[i] + (1.0f - b2) * gi * gi;
        vi = vv[i];
        if (vmax) { if (vi > vmax[i]) vmax[i] = vi; vi = vmax[i]; }
        p[i] -= step_size * mm[i] / (sqrtf(vi) * inv_sqrt_bc2 + eps);
    }
}

L2C_API void l2c_adam_reset(l2c_adam *opt)
{
    if (!opt || !opt->m) return;
    memset(opt->m, 0, opt->n * sizeof(float));
    memset(opt->v, 0, opt->n * sizeof(float));
    if (opt->vmax) memset(opt->vmax, 0, opt->n * sizeof(float));
    opt->step = 0;
}

L2C_API void l2c_adam_free(l2c_adam *opt)
{
    if (!opt) return;
    L2C_FREE(opt->m); L2C_FREE(opt->v); L2C_FREE(opt->vmax);
    opt->m = opt->v = opt->vmax = NULL;
}

static void l2c__put_adam(l2c__buf *b, const l2c_adam *opt)
{
    l2c__put_u64(b, opt->n);
    l2c__put_u64(b, (uint64_t)opt->step);
    l2c__put_u32(b, (uint32_t)(opt->vmax != NULL));
    l2c__put_floats(b, opt->m, opt->n);
    l2c__put_floats(b, opt->v, opt->n);
    if (opt->vmax) l2c__put_floats(b, opt->vmax, opt->n);
}

static size_t l2c__adam_bytes(const l2c_adam *opt) { return 20 + 4 * opt->n * (opt->vmax ? 3 : 2); }

/* Reads what l2c__put_adam wrote, after checking it matches opt's size and kind. */
static int l2c__get_adam(const char *path, const uint8_t *s, l2c_adam *opt)
{
    uint64_t n = l2c__get_u32(s) | (uint64_t)l2c__get_u32(s + 4) << 32;
    if (n != opt->n || (l2c__get_u32(s + 16) != 0) != (opt->vmax != NULL))
        return l2c__fail(L2C_EFORMAT, "%s: optimiser state of another size or kind", path);
    opt->step = (long)(l2c__get_u32(s + 8) | (uint64_t)l2c__get_u32(s + 12) << 32);
    s += 20;
    l2c__get_floats(s, opt->m, opt->n);
    l2c__get_floats(s + 4 * opt->n, opt->v, opt->n);
    if (opt->vmax) l2c__get_floats(s + 8 * opt->n, opt->vmax, opt->n);
    return L2C_OK;
}

L2C_API int l2c_adam_save(const l2c_adam *opt, const char *path)
{
    l2c__buf b;
    if (!opt || !path) return l2c__fail(L2C_EINVAL, "l2c_adam_save: NULL argument");
    memset(&b, 0, sizeof b);
    l2c__put(&b, "L2CO", 4);
    l2c__put_u32(&b, 1);
    l2c__put_adam(&b, opt);
    return l2c__buf_commit(&b, path);
}

L2C_API int l2c_adam_load(l2c_adam *opt, const char *path)
{
    uint8_t *p;
    size_t len, expected;
    int rc;
    if (!opt || !path) return l2c__fail(L2C_EINVAL, "l2c_adam_load: NULL argument");
    expected = 8 + l2c__adam_bytes(opt) + 4;
    rc = l2c__read_file(path, &p, &len, expected);
    if (rc) return rc;
    rc = l2c__verify(path, p, len, expected, "L2CO");
    if (!rc) rc = l2c__get_adam(path, p + 8, opt);
    L2C_FREE(p);
    return rc;
}

/* ---------------------------------------------------------------- 7. data ---------------------- */

L2C_API int l2c_write_file_atomic(const char *path, const void *data, size_t n)
{
    char *tmp;
    size_t plen;
    FILE *f;
    int ok;
    if (!path || (!data && n)) return l2c__fail(L2C_EINVAL, "l2c_write_file_atomic: NULL argument");
    plen = strlen(path);
    tmp = (char *)L2C_MALLOC(plen + 16);
    if (!tmp) return l2c__fail(L2C_ENOMEM, "%s: out of memory", path);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".l2c-tmp", 9);
    f = fopen(tmp, "wb");
    if (!f) { L2C_FREE(tmp); return l2c__fail(L2C_EIO, "%s: cannot create the file (directory missing or not writable?)", path); }
    ok = n == 0 || fwrite(data, 1, n, f) == n;
    ok = (fflush(f) == 0) && ok;
    ok = (fclose(f) == 0) && ok;
    if (ok && rename(tmp, path) == 0) { L2C_FREE(tmp); return L2C_OK; }
    remove(tmp);
    L2C_FREE(tmp);
    return l2c__fail(L2C_EIO, "%s: write failed (disk full or not writable); the old file, if any, is untouched", path);
}

static uint32_t l2c__get_be32(const uint8_t *s) { return (uint32_t)s[0] << 24 | (uint32_t)s[1] << 16 | (uint32_t)s[2] << 8 | s[3]; }

/* Reads and checks the IDX header: magic, rank, and sizes against the real file length. */
static int l2c__idx_header(FILE *f, const char *path, long file_len, l2c_idx *out)
{
    uint8_t h[20];
    double count = 1.0;
    int i;
    if (file_len < 4 || fread(h, 1, 4, f) != 4) return l2c__fail(L2C_EFORMAT, "%s: too short for an IDX header", path);
    if (h[0] != 0 || h[1] != 0) return l2c__fail(L2C_EFORMAT, "%s: bad IDX magic %02x%02x%02x%02x", path, h[0], h[1], h[2], h[3]);
    if (h[2] != 0x08) return l2c__fail(L2C_EFORMAT, "%s: IDX data type 0x%02x; only unsigned bytes (0x08) are supported", path, h[2]);
    if (h[3] < 1 || h[3] > 4) return l2c__fail(L2C_EFORMAT, "%s: IDX rank %d; 1 to 4 supported", path, h[3]);
    out->ndim = h[3];
    if (file_len < 4 + 4L * out->ndim || fread(h + 4, 4, (size_t)out->ndim, f) != (size_t)out->ndim)
        return l2c__fail(L2C_EFORMAT, "%s: truncated IDX header", path);
    for (i = 0; i < out->ndim; i++) {
        uint32_t d = l2c__get_be32(h + 4 + 4 * i);
        if (d == 0 || d > 0x7FFFFFFFu) return l2c__fail(L2C_EFORMAT, "%s: IDX dimension %d is %lu", path, i, (unsigned long)d);
        out->dims[i] = (int)d;
        count *= (double)d;
    }
    if (count != (double)(file_len - 4 - 4L * out->ndim))
        return l2c__fail(L2C_EFORMAT, "%s: the header promises %.0f bytes of data but the file holds %ld (truncated or lying header)",
                         path, count, file_len - 4 - 4L * out->ndim);
    out->count = (size_t)count;
    return L2C_OK;
}

L2C_API int l2c_idx_read(const char *path, l2c_idx *out)
{
    FILE *f;
    long len;
    int rc;
    if (!path || !out) return l2c__fail(L2C_EINVAL, "l2c_idx_read: NULL argument");
    memset(out, 0, sizeof *out);
    f = fopen(path, "rb");
    if (!f) return l2c__fail(L2C_EIO, "%s: cannot open for reading", path);
    if (fseek(f, 0, SEEK_END) || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) { fclose(f); return l2c__fail(L2C_EIO, "%s: cannot seek", path); }
    rc = l2c__idx_header(f, path, len, out);
    if (!rc && !(out->data = (uint8_t *)L2C_MALLOC(out->count))) rc = l2c__fail(L2C_ENOMEM, "%s: out of memory", path);
    if (!rc && fread(out->data, 1, out->count, f) != out->count) rc = l2c__fail(L2C_EIO, "%s: read error", path);
    fclose(f);
    if (rc) l2c_idx_free(out);
    return rc;
}

L2C_API int l2c_idx_write(const char *path, const l2c_idx *idx)
{
    uint8_t *buf;
    size_t head, i, count = 1;
    int rc, d;
    if (!path || !idx || !idx->data) return l2c__fail(L2C_EINVAL, "l2c_idx_write: NULL argument");
    if (idx->ndim < 1 || idx->ndim > 4) return l2c__fail(L2C_EINVAL, "l2c_idx_write: rank %d; 1 to 4 supported", idx->ndim);
    for (d = 0; d < idx->ndim; d++) {
        if (idx->dims[d] < 1) return l2c__fail(L2C_EINVAL, "l2c_idx_write: dimension %d is %d", d, idx->dims[d]);
        count *= (size_t)idx->dims[d];
    }
    if (count != idx->count) return l2c__fail(L2C_EINVAL, "l2c_idx_write: dimensions give %lu items, count says %lu",
                                              (unsigned long)count, (unsigned long)idx->count);
    head = 4 + 4 * (size_t)idx->ndim;
    buf = (uint8_t *)L2C_MALLOC(head + count);
    if (!buf) return l2c__fail(L2C_ENOMEM, "%s: out of memory", path);
    buf[0] = 0; buf[1] = 0; buf[2] = 0x08; buf[3] = (uint8_t)idx->ndim;
    for (d = 0; d < idx->ndim; d++)
        for (i = 0; i < 4; i++) buf[4 + 4 * d + i] = (uint8_t)((uint32_t)idx->dims[d] >> (24 - 8 * i));
    memcpy(buf + head, idx->data, count);
    rc = l2c_write_file_atomic(path, buf, head + count);
    L2C_FREE(buf);
    return rc;
}

L2C_API void l2c_idx_free(l2c_idx *idx)
{
    if (!idx) return;
    L2C_FREE(idx->data);
    idx->data = NULL;
    idx->count = 0;
}

L2C_API int l2c_dataset_load(l2c_dataset *ds, const char *images_path, const char *labels_path, int nclasses)
{
    l2c_idx im, lb;
    size_t i;
    int rc;
    if (!ds) return l2c__fail(L2C_EINVAL, "l2c_dataset_load: NULL argument");
    memset(ds, 0, sizeof *ds);
    if (nclasses < 1 || nclasses > 256) return l2c__fail(L2C_EINVAL, "l2c_dataset_load: %d classes; 1 to 256 supported", nclasses);
    if ((rc = l2c_idx_read(images_path, &im))) return rc;
    if ((rc = l2c_idx_read(labels_path, &lb))) { l2c_idx_free(&im); return rc; }
    if (im.ndim != 3 && im.ndim != 4) rc = l2c__fail(L2C_EFORMAT, "%s: images must be N x H x W or N x C x H x W, not rank %d", images_path, im.ndim);
    else if (lb.ndim != 1) rc = l2c__fail(L2C_EFORMAT, "%s: labels must be a rank-1 IDX file, not rank %d", labels_path, lb.ndim);
    else if (lb.dims[0] != im.dims[0]) rc = l2c__fail(L2C_EFORMAT, "%d images in %s but %d labels in %s", im.dims[0], images_path, lb.dims[0], labels_path);
    for (i = 0; !rc && i < lb.count; i++)
        if (lb.data[i] >= nclasses) rc = l2c__fail(L2C_EFORMAT, "%s: label %d of sample %lu is not below %d", labels_path, lb.data[i], (unsigned long)i, nclasses);
    if (rc) { l2c_idx_free(&im); l2c_idx_free(&lb); return rc; }
    ds->n = im.dims[0];
    ds->c = im.ndim == 4 ? im.dims[1] : 1;
    ds->h = im.dims[im.ndim - 2];
    ds->w = im.dims[im.ndim - 1];
    ds->nclasses = nclasses;
    ds->images = im.data;
    ds->labels = lb.data;
    return L2C_OK;
}

L2C_API int l2c_dataset_save(const l2c_dataset *ds, const char *images_path, const char *labels_path)
{
    l2c_idx im, lb;
    int rc;
    if (!ds || !ds->images || !ds->labels) return l2c__fail(L2C_EINVAL, "l2c_dataset_save: empty data set");
    memset(&im, 0, sizeof im);
    memset(&lb, 0, sizeof lb);
    im.ndim = ds->c == 1 ? 3 : 4;
    im.dims[0] = ds->n;
    if (ds->c == 1) { im.dims[1] = ds->h; im.dims[2] = ds->w; }
    else { im.dims[1] = ds->c; im.dims[2] = ds->h; im.dims[3] = ds->w; }
    im.count = (size_t)ds->n * ds->c * ds->h * ds->w;
    im.data = ds->images;
    lb.ndim = 1; lb.dims[0] = ds->n; lb.count = (size_t)ds->n; lb.data = ds->labels;
    rc = l2c_idx_write(images_path, &im);
    return rc ? rc : l2c_idx_write(labels_path, &lb);
}

/* A data set built by hand is checked as l2c_dataset_load checks a file: images and labels present,
   a positive shape, and every label below nclasses (the attack indexes per-class tables by it). */
static int l2c__check_dataset(const l2c_dataset *d, const char *caller)
{
    int i;
    if (!d || !d->images || !d->labels) return l2c__fail(L2C_EINVAL, "%s: the data set is NULL or has no images or labels", caller);
    if (d->n < 1 || d->c < 1 || d->h < 1 || d->w < 1)
        return l2c__fail(L2C_EINVAL, "%s: the data set's shape %d x %d x %d x %d is not positive", caller, d->n, d->c, d->h, d->w);
    if (d->nclasses < 1 || d->nclasses > L2C_MAX_CLASSES)
        return l2c__fail(L2C_EINVAL, "%s: the data set has %d classes; 1 to %d supported", caller, d->nclasses, L2C_MAX_CLASSES);
    for (i = 0; i < d->n; i++)
        if (d->labels[i] >= d->nclasses)
            return l2c__fail(L2C_EINVAL, "%s: label %d of sample %d is not below the data set's %d classes", caller, d->labels[i], i, d->nclasses);
    return L2C_OK;
}

L2C_API void l2c_dataset_free(l2c_dataset *ds)
{
    if (!ds) return;
    L2C_FREE(ds->images);
    L2C_FREE(ds->labels);
    ds->images = ds->labels = NULL;
    ds->n = 0;
}

L2C_API void l2c_dataset_gather(const l2c_dataset *ds, const int *idx, int count, float *x, uint8_t *labels)
{
    size_t per = (size_t)ds->c * ds->h * ds->w, j;
    int i;
    for (i = 0; i < count; i++) {
        const uint8_t *src = ds->images + (size_t)idx[i] * per;
        for (j = 0; j < per; j++) x[(size_t)i * per + j] = (float)src[j] * (1.0f / 255.0f);
        if (labels) labels[i] = ds->labels[idx[i]];
    }
}

static void l2c__shuffle(l2c_batcher *b)
{
    int i;
    for (i = b->n - 1; i > 0; i--) {
        int j = (int)l2c_rng_below(&b->rng, (uint32_t)i + 1), t = b->order[i];
        b->order[i] = b->order[j];
        b->order[j] = t;
    }
}

L2C_API void l2c_batcher_reseed(l2c_batcher *b, uint64_t seed)
{
    int i;
    l2c_rng_seed(&b->rng, seed);
    for (i = 0; i < b->n; i++) b->order[i] = i;
    if (b->shuffle) l2c__shuffle(b);
    b->pos = 0;
}

L2C_API int l2c_batcher_init(l2c_batcher *b, int n, int batch, int shuffle, uint64_t seed)
{
    if (b) memset(b, 0, sizeof *b);
    if (!b || n < 1 || batch < 1) return l2c__fail(L2C_EINVAL, "l2c_batcher_init: need n >= 1 and batch >= 1");
    b->order = (int *)l2c__calloc((size_t)n * sizeof(int));
    if (!b->order) return L2C_ENOMEM;
    b->n = n; b->batch = batch; b->shuffle = shuffle;
    l2c_batcher_reseed(b, seed);
    return L2C_OK;
}

L2C_API int l2c_batcher_next(l2c_batcher *b, const int **idx)
{
    int count;
    if (b->pos >= b->n) {
        b->pos = 0;
        if (b->shuffle) l2c__shuffle(b);
        return 0;
    }
    count = b->n - b->pos < b->batch ? b->n - b->pos : b->batch;
    *idx = b->order + b->pos;
    b->pos += count;
    return count;
}

L2C_API void l2c_batcher_free(l2c_batcher *b) { if (b) { L2C_FREE(b->order); b->order = NULL; } }

/* Translates n planes of h x w by (dx, dy) pixels, filling with zeros: out(y, x) = in(y - dy, x - dx). */
static void l2c__shift_planes(const float *in, float *out, int planes, int h, int w, int dx, int dy)
{
    int p, y, x;
    for (p = 0; p < planes; p++) {
        const float *src = in + (size_t)p * h * w;
        float *dst = out + (size_t)p * h * w;
        for (y = 0; y < h; y++)
            for (x = 0; x < w; x++) {
                int sy = y - dy, sx = x - dx;
                dst[y * w + x] = sy >= 0 && sy < h && sx >= 0 && sx < w ? src[sy * w + sx] : 0.0f;
            }
    }
}

/* The adjoint of l2c__shift_planes(dx, dy), scaled and accumulated: out(y, x) += in(y + dy, x + dx) /
   divisor where that lies inside the plane. An unshifted gradient (the default) is one pass. */
static void l2c__unshift_add(const float *in, float *out, int planes, int h, int w, int dx, int dy,
                             float divisor)
{
    size_t i, n = (size_t)planes * h * w;
    int p, y, x;
    if (!dx && !dy) {
        for (i = 0; i < n; i++) out[i] += in[i] / divisor;
        return;
    }
    for (p = 0; p < planes; p++) {
        const float *src = in + (size_t)p * h * w;
        float *dst = out + (size_t)p * h * w;
        for (y = 0; y < h; y++)
            for (x = 0; x < w; x++) {
                int sy = y + dy, sx = x + dx;
                if (sy >= 0 && sy < h && sx >= 0 && sx < w) dst[y * w + x] += src[sy * w + sx] / divisor;
            }
    }
}

L2C_API int l2c_translate(const float *in, float *out, int planes, int h, int w, int dx, int dy)
{
    size_t n;
    if (!in || !out || planes < 1 || h < 1 || w < 1) return l2c__fail(L2C_EINVAL, "l2c_translate: NULL buffer or a size below 1");
    n = (size_t)planes * h * w;
    if (in < out + n && out < in + n) return l2c__fail(L2C_EINVAL, "l2c_translate: in and out overlap");
    l2c__shift_planes(in, out, planes, h, w, dx, dy);
    return L2C_OK;
}

/* ---------------------------------------------------------------- 9. the attack --------------- */

/* Reference models. Each builder step returns 0 on success, so a chain of them is one `||`. */
static l2c_model *l2c__finish_model(l2c_model *m, int failed, uint64_t seed)
{
    if (failed) { l2c_model_free(m); return NULL; }
    l2c_model_init(m, seed);
    return m;
}

L2C_API l2c_model *l2c_mnist_victim(int width_percent, uint64_t seed)
{
    int c1 = 20 * width_percent / 100, c2 = 50 * width_percent / 100, h = 500 * width_percent / 100;
    l2c_model *m;
    if (c1 < 1 || c2 < 1 || h < 1) return (l2c_model *)l2c__fail_null(L2C_EINVAL, "%s: width_percent too small", "l2c_mnist_victim");
    m = l2c_model_new(1, 28, 28);
    if (!m) return NULL;
    return l2c__finish_model(m,
        l2c_model_conv(m, c1, 5, 1, 0) || l2c_model_batchnorm(m) || l2c_model_relu(m) || l2c_model_avgpool(m, 2, 2) ||
        l2c_model_conv(m, c2, 5, 1, 0) || l2c_model_batchnorm(m) || l2c_model_relu(m) || l2c_model_avgpool(m, 2, 2) ||
        l2c_model_flatten(m) || l2c_model_dense(m, h) || l2c_model_batchnorm(m) || l2c_model_relu(m) ||
        l2c_model_dense(m, 10) || l2c_model_batchnorm(m), seed);
}

L2C_API l2c_model *l2c_mnist_generator(uint64_t seed)
{
    l2c_model *m = l2c_model_new(1, 28, 28);
    if (!m) return NULL;
    return l2c__finish_model(m,
        l2c_model_conv(m, 16, 3, 3, 1) || l2c_model_batchnorm(m) || l2c_model_relu(m) || l2c_model_maxpool(m, 2, 2) ||
        l2c_model_conv(m, 64, 3, 2, 1) || l2c_model_batchnorm(m) || l2c_model_relu(m) || l2c_model_maxpool(m, 2, 1) ||
        l2c_model_deconv(m, 128, 3, 2, 0) || l2c_model_batchnorm(m) || l2c_model_relu(m) ||
        l2c_model_deconv(m, 64, 5, 3, 1) || l2c_model_batchnorm(m) || l2c_model_relu(m) ||
        l2c_model_deconv(m, 1, 2, 2, 1) || l2c_model_batchnorm(m) || l2c_model_tanh(m), seed);
}

L2C_API l2c_model *l2c_autoencoder(int channels, int height, int width, int base, uint64_t seed)
{
    l2c_model *m;
    if (channels < 1 || height < 12 || width < 12 || height % 4 || width % 4 || base < 1 || base > 4096) {
        l2c__fail(L2C_EINVAL, "l2c_autoencoder: need channels >= 1, height and width multiples of 4 and at least 12, "
                  "base in [1, 4096] (got %d x %d x %d, base %d)", channels, height, width, base);
        return NULL;
    }
    if (!(m = l2c_model_new(channels, height, width))) return NULL;
    return l2c__finish_model(m,   /* sizes for MNIST: */
        l2c_model_conv(m, base, 4, 2, 1) || l2c_model_batchnorm(m) || l2c_model_relu(m) ||          /* 28 -> 14 */
        l2c_model_conv(m, 2 * base, 4, 2, 1) || l2c_model_batchnorm(m) || l2c_model_relu(m) ||      /* 14 -> 7 */
        l2c_model_conv(m, 4 * base, 4, 1, 1) || l2c_model_batchnorm(m) || l2c_model_relu(m) ||      /* 7 -> 6 */
        l2c_model_conv(m, 8 * base, 4, 1, 1) || l2c_model_batchnorm(m) || l2c_model_relu(m) ||      /* 6 -> 5 */
        l2c_model_deconv(m, 4 * base, 4, 1, 1) || l2c_model_batchnorm(m) || l2c_model_relu(m) ||    /* 5 -> 6 */
        l2c_model_deconv(m, 2 * base, 4, 1, 1) || l2c_model_batchnorm(m) || l2c_model_relu(m) ||    /* 6 -> 7 */
        l2c_model_deconv(m, base, 4, 2, 1) || l2c_model_batchnorm(m) || l2c_model_relu(m) ||        /* 7 -> 14 */
        l2c_model_deconv(m, channels, 4, 2, 1) || l2c_model_batchnorm(m) || l2c_model_tanh(m), seed); /* 14 -> 28 */
}

L2C_API l2c_model *l2c_mnist_autoencoder(uint64_t seed) { return l2c_autoencoder(1, 28, 28, 16, seed); }

L2C_API l2c_model *l2c_mnist_classifier(const char *name, uint64_t seed)
{
    l2c_model *m;
    int bad;
    if (!name) return (l2c_model *)l2c__fail_null(L2C_EINVAL, "%s: NULL name", "l2c_mnist_classifier");
    if (!strcmp(name, "cnn-small")) return l2c_mnist_victim(50, seed);
    if (!strcmp(name, "cnn")) return l2c_mnist_victim(100, seed);
    if (!strcmp(name, "cnn-large")) return l2c_mnist_victim(200, seed);
    if (!(m = l2c_model_new(1, 28, 28))) return NULL;
    if (!strcmp(name, "softmax")) bad = l2c_model_flatten(m) || l2c_model_dense(m, 10);
    else if (!strcmp(name, "mlp"))
        bad = l2c_model_flatten(m) || l2c_model_dense(m, 512) || l2c_model_relu(m) || l2c_model_dense(m, 512) ||
              l2c_model_relu(m) || l2c_model_dense(m, 10);
    else if (!strcmp(name, "mlp-wide"))
        bad = l2c_model_flatten(m) || l2c_model_dense(m, 1024) || l2c_model_relu(m) || l2c_model_dense(m, 10);
    else if (!strcmp(name, "lenet"))
        bad = l2c_model_conv(m, 20, 5, 1, 0) || l2c_model_maxpool(m, 2, 2) || l2c_model_relu(m) ||
              l2c_model_conv(m, 50, 5, 1, 0) || l2c_model_maxpool(m, 2, 2) || l2c_model_relu(m) ||
              l2c_model_flatten(m) || l2c_model_dense(m, 500) || l2c_model_relu(m) || l2c_model_dense(m, 10);
    else if (!strcmp(name, "cnn3x3"))
        bad = l2c_model_conv(m, 16, 3, 1, 0) || l2c_model_relu(m) || l2c_model_maxpool(m, 2, 2) ||
              l2c_model_conv(m, 32, 3, 1, 0) || l2c_model_relu(m) || l2c_model_maxpool(m, 2, 2) ||
              l2c_model_flatten(m) || l2c_model_dense(m, 128) || l2c_model_relu(m) || l2c_model_dense(m, 10);
    else if (!strcmp(name, "cnn-pt"))
        bad = l2c_model_conv(m, 32, 3, 1, 0) || l2c_model_relu(m) || l2c_model_conv(m, 64, 3, 1, 0) ||
              l2c_model_relu(m) || l2c_model_maxpool(m, 2, 2) ||
              l2c_model_flatten(m) || l2c_model_dense(m, 128) || l2c_model_relu(m) || l2c_model_dense(m, 10);
    else {
        l2c_model_free(m);
        return (l2c_model *)l2c__fail_null(L2C_EINVAL, "l2c_mnist_classifier: unknown classifier \"%s\"", name);
    }
    return l2c__finish_model(m, bad, seed);
}

/* -- the attack */

struct l2c_attack {
    l2c_attack_config cfg;
    const l2c_dataset *train;
    l2c_model *frozen, *trainable;   /* generator copies xi and xi' */
    l2c_model *victim, *probe;       /* the current theta, and a scratch victim for theta' and theta +- r v */
    l2c_model **pool;                /* cfg.victims victims, trained in turn */
    int *age;                        /* each victim's own steps since it was (re)initialised */
    long steps_done;                 /* attack steps over all trials */
    long reinits;                    /* victims initialised so far: seeds the next one */
    l2c_adam adam;
    l2c_sgd sgd;
    l2c_adam victim_adam;            /* the imaginary victim's Adam (victim_optimizer; unused with SGD) */
    float *adam_jacobian;            /* the Adam look-ahead's d theta'_i / d g_i (victim-sized) */
    l2c_tape *gen_tape, *vic_tape;
    float *x, *seed_grad, *grad_plus;   /* batch-sized buffers */
    uint8_t *y;
    l2c_batcher order;
    l2c_model *refs[L2C_MAX_REFERENCES];   /* the warm-up's reference classifiers; refs[0] has the victim's architecture */
    int nrefs, refs_trained;
    l2c_model *archs[L2C_MAX_REFERENCES];  /* imaginary-victim architectures, taken in turn by the
                                             trials: archs[0] is pool[0], the rest are added */
    l2c_model *arch_probes[L2C_MAX_REFERENCES];   /* a scratch victim of each (arch_probes[0]: probe) */
    int narchs;
    int w[L2C_MAX_CLASSES];          /* the warm-up targets w(y), set when the references are trained */
    float *ref_grad;                 /* batch-sized: their mean input gradient */
    float *shifted;                  /* batch-sized: a member's translated view (warmup_shift) */
    float *victim_view;              /* batch-sized: the victim's augmented view (victim_shift) */
    float *victim_xgrad;             /* batch-sized: the victim's input gradient on x' (shortcut) */
    float *noise, *image_grad;       /* batch-sized: x' - x, and the image term's gradient (noise_weight) */
    int *by_class, *class_start;     /* warmup_temperature: training indices sorted by class (stable),
                                        class c at by_class[class_start[c] .. class_start[c + 1]) */
    int *target_idx;                 /* batch-sized: the drawn images' indices (warmup_temperature) */
    float *target_x, *target_q;      /* batch-sized: the drawn clean images of w(y), and each member's
                                        softened output on them, member k at k * batch * classes
                                        (warmup_temperature) */
    int trials_done;
    int warmed_up;
    double started;
};

L2C_API void l2c_attack_defaults(l2c_attack_config *cfg, int nclasses)
{
    int k;
    memset(cfg, 0, sizeof *cfg);
    cfg->eps = 0.3f;
    cfg->victim_lr = 0.04f;
    cfg->gen_lr = 1e-3f;
    cfg->batch = 256;
    cfg->trials = 32;
    cfg->steps_per_trial = 25;
    cfg->victims = 1;
    cfg->victim_lifetime = 0;
    cfg->fd_radius = 0.01f;
    cfg->warmup_steps = 1250;
    cfg->warmup_epochs = 1;
    cfg->anchor = 1.0f;
    cfg->warmup_shift = 0;
    cfg->victim_adam_lr = 1e-3f;
    cfg->seed = 1;
    if (nclasses < 1 || nclasses > L2C_MAX_CLASSES) nclasses = 10;
    for (k = 0; k < nclasses; k++) cfg->label_map[k] = (k + 1) % nclasses;
}

L2C_API void l2c_attack_targeted_defaults(l2c_attack_config *cfg, int nclasses)
{
    l2c_attack_defaults(cfg, nclasses);
    cfg->targeted = 1;
    cfg->anchor = 2.0f;
}

/* A generator for c x h x w images takes them and makes perturbations of the same shape, bounded
   by a final tanh. */
static int l2c__check_generator(const l2c_model *g, int c, int h, int w, const char *caller)
{
    int oc, oh, ow;
    if (g->in_c != c || g->in_h != h || g->in_w != w)
        return l2c__fail(L2C_EINVAL, "%s: the generator takes %dx%dx%d images; the data is %dx%dx%d",
                         caller, g->in_c, g->in_h, g->in_w, c, h, w);
    l2c_model_output_shape(g, &oc, &oh, &ow);
    if (oc != c || oh != h || ow != w)
        return l2c__fail(L2C_EINVAL, "%s: the generator makes %dx%dx%d outputs, not %dx%dx%d images (a classifier?)",
                         caller, oc, oh, ow, c, h, w);
    if (g->nlayers < 1 || g->layers[g->nlayers - 1].type != L2C_LAYER_TANH)   /* |g| <= 1: |eps g| <= eps */
        return l2c__fail(L2C_EINVAL, "%s: the generator's last layer must be tanh, which bounds the perturbation by eps", caller);
    return L2C_OK;
}

/* L2C_PAIR_GIVEN: w must send every class to another and be a permutation, so that every class is
   some class's target (a class nobody's poison carries keeps its clean meaning for the victims). */
static int l2c__check_derangement(const int *w, int K)
{
    int seen[L2C_MAX_CLASSES], y;
    memset(seen, 0, sizeof seen);
    for (y = 0; y < K; y++) {
        if (w[y] < 0 || w[y] >= K) return l2c__fail(L2C_EINVAL, "attack: given pairing: label_map[%d] = %d is not a class", y, w[y]);
        if (w[y] == y) return l2c__fail(L2C_EINVAL, "attack: given pairing: label_map[%d] = %d sends a class to itself", y, y);
        if (seen[w[y]]++) return l2c__fail(L2C_EINVAL, "attack: given pairing: class %d is the target of two classes (a derangement needs each once)", w[y]);
    }
    return L2C_OK;
}

static int l2c__attack_check(const l2c_attack_config *cfg, const l2c_model *g, const l2c_model *v, const l2c_dataset *d)
{
    int c, h, w, k;
    if (!cfg || !g || !v) return l2c__fail(L2C_EINVAL, "l2c_attack_new: NULL argument");
    if (l2c__check_dataset(d, "l2c_attack_new")) return L2C_EINVAL;
    if (d->nclasses < 2) return l2c__fail(L2C_EINVAL, "l2c_attack_new: the data set has one class; an attack needs at least 2");
    if (!(cfg->eps > 0.0f && cfg->eps <= 1.0f)) return l2c__fail(L2C_EINVAL, "attack: eps %g is outside (0, 1]", cfg->eps);
    if (!(cfg->victim_lr > 0.0f) || !(cfg->gen_lr > 0.0f) || !(cfg->fd_radius > 0.0f))
        return l2c__fail(L2C_EINVAL, "attack: learning rates and fd_radius must be positive");
    if (cfg->batch < 2 || cfg->batch > d->n) return l2c__fail(L2C_EINVAL, "attack: batch %d must be in [2, %d samples]", cfg->batch, d->n);
    if (cfg->trials < 1 || cfg->steps_per_trial < 0) return l2c__fail(L2C_EINVAL, "attack: need trials >= 1 and steps_per_trial >= 0");
    if (cfg->pairing < L2C_PAIR_NEXT || cfg->pairing > L2C_PAIR_GIVEN)
        return l2c__fail(L2C_EINVAL, "attack: pairing %d is not L2C_PAIR_NEXT, L2C_PAIR_NEAREST, L2C_PAIR_REACHABLE or L2C_PAIR_GIVEN", cfg->pairing);
    if (cfg->lr_schedule != L2C_LR_CONSTANT && cfg->lr_schedule != L2C_LR_COSINE) return l2c__fail(L2C_EINVAL, "attack: lr_schedule %d is not L2C_LR_CONSTANT or L2C_LR_COSINE", cfg->lr_schedule);
    if (cfg->objective != L2C_OBJ_LOOKAHEAD && cfg->objective != L2C_OBJ_ALIGN) return l2c__fail(L2C_EINVAL, "attack: objective %d is not L2C_OBJ_LOOKAHEAD or L2C_OBJ_ALIGN", cfg->objective);
    if (!(cfg->anchor >= 0.0f && cfg->anchor <= 1e6f)) return l2c__fail(L2C_EINVAL, "attack: anchor %g must be in [0, 1e6]", cfg->anchor);
    if (!(cfg->shortcut >= 0.0f && cfg->shortcut <= 1e6f)) return l2c__fail(L2C_EINVAL, "attack: shortcut %g must be in [0, 1e6]", cfg->shortcut);
    if (!(cfg->noise_weight >= 0.0f && cfg->noise_weight <= 1e6f)) return l2c__fail(L2C_EINVAL, "attack: noise_weight %g must be in [0, 1e6]", cfg->noise_weight);
    if (!(cfg->warmup_temperature >= 0.0f && cfg->warmup_temperature <= 1e6f))
        return l2c__fail(L2C_EINVAL, "attack: warmup_temperature %g must be in [0, 1e6] (0: one-hot targets)", cfg->warmup_temperature);
    if (cfg->warmup_steps < 0 || !(cfg->warmup_epochs >= 0.0f && cfg->warmup_epochs <= 1e4f) ||
        ((cfg->warmup_steps > 0 || cfg->anchor > 0.0f) && !(cfg->warmup_epochs > 0.0f)))
        return l2c__fail(L2C_EINVAL, "attack: need warmup_steps >= 0, and warmup_epochs in (0, 1e4] when warming up or anchoring (%g)", cfg->warmup_epochs);
    if (cfg->warmup_shift < 0 || cfg->warmup_shift >= d->h || cfg->warmup_shift >= d->w)
        return l2c__fail(L2C_EINVAL, "attack: warmup_shift %d must be in [0, %d) for %dx%d images", cfg->warmup_shift,
                         d->h < d->w ? d->h : d->w, d->h, d->w);
    if (cfg->victim_shift < 0 || cfg->victim_shift >= d->h || cfg->victim_shift >= d->w)
        return l2c__fail(L2C_EINVAL, "attack: victim_shift %d must be in [0, %d) for %dx%d images", cfg->victim_shift,
                         d->h < d->w ? d->h : d->w, d->h, d->w);
    if (cfg->victims < 1 || cfg->victims > 64 || cfg->victim_lifetime < 0)
        return l2c__fail(L2C_EINVAL, "attack: need 1 <= victims <= 64 and victim_lifetime >= 0");
    if (!(cfg->victim_momentum >= 0.0f && cfg->victim_momentum < 1.0f) ||
        (cfg->victim_momentum > 0.0f && (cfg->victims != 1 || cfg->victim_lifetime != 0)))
        return l2c__fail(L2C_EINVAL, "attack: victim_momentum %g must be in [0, 1), and needs victims = 1 (%d) and victim_lifetime 0 (%d)",
                         cfg->victim_momentum, cfg->victims, cfg->victim_lifetime);
    if (cfg->clamp_inward != 0 && cfg->clamp_inward != 1) return l2c__fail(L2C_EINVAL, "attack: clamp_inward %d is not 0 or 1", cfg->clamp_inward);
    if (cfg->untargeted_loss != L2C_UNTARGETED_XENT && cfg->untargeted_loss != L2C_UNTARGETED_COMPLEMENT)
        return l2c__fail(L2C_EINVAL, "attack: untargeted_loss %d is not L2C_UNTARGETED_XENT or L2C_UNTARGETED_COMPLEMENT", cfg->untargeted_loss);
    if (cfg->untargeted_loss == L2C_UNTARGETED_COMPLEMENT && (cfg->targeted || cfg->objective != L2C_OBJ_LOOKAHEAD))
        return l2c__fail(L2C_EINVAL, "attack: untargeted_loss L2C_UNTARGETED_COMPLEMENT is for the non-targeted look-ahead objective");
    if (cfg->victim_optimizer != L2C_VICTIM_SGD && cfg->victim_optimizer != L2C_VICTIM_ADAM && cfg->victim_optimizer != L2C_VICTIM_ALTERNATE)
        return l2c__fail(L2C_EINVAL, "attack: victim_optimizer %d is not L2C_VICTIM_SGD, L2C_VICTIM_ADAM or L2C_VICTIM_ALTERNATE", cfg->victim_optimizer);
    if (cfg->victim_optimizer != L2C_VICTIM_SGD &&
        (!(cfg->victim_adam_lr > 0.0f && cfg->victim_adam_lr <= 1.0f) || cfg->victims != 1 || cfg->victim_lifetime != 0 ||
         cfg->victim_momentum > 0.0f || cfg->objective != L2C_OBJ_LOOKAHEAD))
        return l2c__fail(L2C_EINVAL, "attack: an Adam victim needs victim_adam_lr in (0, 1] (%g), victims = 1 (%d), victim_lifetime 0 (%d), "
                         "victim_momentum 0 (%g) and the look-ahead objective", cfg->victim_adam_lr, cfg->victims, cfg->victim_lifetime, cfg->victim_momentum);
    if (l2c__check_generator(g, d->c, d->h, d->w, "l2c_attack_new")) return L2C_EINVAL;
    if (v->in_c != d->c || v->in_h != d->h || v->in_w != d->w)
        return l2c__fail(L2C_EINVAL, "attack: the victim takes %dx%dx%d samples; the data is %dx%dx%d", v->in_c, v->in_h, v->in_w, d->c, d->h, d->w);
    l2c_model_output_shape(v, &c, &h, &w);
    if (c * h * w != d->nclasses) return l2c__fail(L2C_EINVAL, "attack: the victim has %d outputs for %d classes", c * h * w, d->nclasses);
    for (k = 0; cfg->targeted && k < d->nclasses; k++)
        if (cfg->label_map[k] < 0 || cfg->label_map[k] >= d->nclasses)
            return l2c__fail(L2C_EINVAL, "attack: label_map[%d] = %d is not a class", k, cfg->label_map[k]);
    if (!cfg->targeted && cfg->pairing == L2C_PAIR_GIVEN) return l2c__check_derangement(cfg->label_map, d->nclasses);
    return L2C_OK;
}

/* warmup_temperature: the training indices sorted by class (a stable counting sort) and the soft
   targets' batch buffers. */
static int l2c__index_classes(l2c_attack *a)
{
    const l2c_dataset *d = a->train;
    int K = d->nclasses, B = a->cfg.batch, next[L2C_MAX_CLASSES], i, c;
    a->by_class = (int *)l2c__calloc((size_t)d->n * sizeof(int));
    a->class_start = (int *)l2c__calloc((size_t)(K + 1) * sizeof(int));
    a->target_idx = (int *)l2c__calloc((size_t)B * sizeof(int));
    a->target_x = (float *)l2c__calloc((size_t)B * d->c * d->h * d->w * sizeof(float));
    a->target_q = (float *)l2c__calloc((size_t)L2C_MAX_REFERENCES * B * K * sizeof(float));
    if (!a->by_class || !a->class_start || !a->target_idx || !a->target_x || !a->target_q) return L2C_ENOMEM;
    for (i = 0; i < d->n; i++) a->class_start[d->labels[i] + 1]++;
    for (c = 0; c < K; c++) a->class_start[c + 1] += a->class_start[c];
    for (c = 0; c < K; c++) next[c] = a->class_start[c];
    for (i = 0; i < d->n; i++) a->by_class[next[d->labels[i]]++] = i;
    return L2C_OK;
}

L2C_API l2c_attack *l2c_attack_new(const l2c_attack_config *cfg, const l2c_model *generator,
                                   const l2c_model *victim, const l2c_dataset *train)
{
    l2c_attack *a;
    size_t per;
    int k = 0;
    if (l2c__attack_check(cfg, generator, victim, train)) return NULL;
    a = (l2c_attack *)l2c__calloc(sizeof *a);
    if (!a) return NULL;
    a->cfg = *cfg;
    a->train = train;
    a->warmed_up = cfg->warmup_steps == 0;
    per = (size_t)train->c * train->h * train->w * cfg->batch;
    a->frozen = l2c_model_clone(generator);
    a->trainable = l2c_model_clone(generator);
    a->probe = l2c_model_clone(victim);
    a->pool = (l2c_model **)l2c__calloc((size_t)cfg->victims * sizeof *a->pool);
    a->age = (int *)l2c__calloc((size_t)cfg->victims * sizeof *a->age);
    for (k = 0; a->pool && a->age && k < cfg->victims; k++) {
        if (!(a->pool[k] = l2c_model_clone(victim))) break;
        a->age[k] = -1;   /* not yet initialised */
    }
    a->victim = a->pool && k == cfg->victims ? a->pool[0] : NULL;
    a->gen_tape = l2c_tape_new();
    a->vic_tape = l2c_tape_new();
    a->x = (float *)l2c__calloc(per * sizeof(float));
    a->seed_grad = (float *)l2c__calloc(per * sizeof(float));
    a->grad_plus = (float *)l2c__calloc(per * sizeof(float));
    a->y = (uint8_t *)l2c__calloc((size_t)cfg->batch);
    a->ref_grad = (float *)l2c__calloc(per * sizeof(float));
    a->shifted = (float *)l2c__calloc(per * sizeof(float));
    a->victim_view = (float *)l2c__calloc(per * sizeof(float));
    a->victim_xgrad = (float *)l2c__calloc(per * sizeof(float));
    a->noise = (float *)l2c__calloc(per * sizeof(float));
    a->image_grad = (float *)l2c__calloc(per * sizeof(float));
    a->refs[0] = l2c_model_clone(victim);
    a->nrefs = 1;
    a->archs[0] = a->victim;
    a->arch_probes[0] = a->probe;
    a->narchs = 1;
    if (!a->ref_grad || !a->shifted || !a->victim_view || !a->victim_xgrad || !a->noise || !a->image_grad || !a->refs[0] || !a->frozen || !a->trainable || !a->victim || !a->probe || !a->gen_tape || !a->vic_tape || !a->x ||
        !a->seed_grad || !a->grad_plus || !a->y ||
        l2c_adam_init(&a->adam, a->trainable, cfg->gen_lr, 0.9f, 0.999f, 1e-8f, 0) ||
        l2c_sgd_init(&a->sgd, a->victim, cfg->victim_lr, cfg->victim_momentum, 0.0f) ||
        (cfg->victim_optimizer != L2C_VICTIM_SGD &&
         (l2c_adam_init(&a->victim_adam, a->victim, cfg->victim_adam_lr, 0.9f, 0.999f, 1e-8f, 0) ||
          !(a->adam_jacobian = (float *)l2c__calloc(a->victim->nparams * sizeof(float))))) ||
        l2c_batcher_init(&a->order, train->n, cfg->batch, 1, cfg->seed) ||
        (cfg->warmup_temperature > 0.0f && l2c__index_classes(a))) {
        l2c_attack_free(a);
        return NULL;
    }
    return a;
}

L2C_API void l2c_attack_free(l2c_attack *a)
{
    if (!a) return;
    { int k; for (k = 1; k < a->narchs; k++) l2c_model_free(a->archs[k]), l2c_model_free(a->arch_probes[k]); }
    if (a->narchs > 1) a->probe = a->arch_probes[0];
    l2c_model_free(a->frozen); l2c_model_free(a->trainable);
    if (a->pool) { int k; for (k = 0; k < a->cfg.victims; k++) l2c_model_free(a->pool[k]); }
    L2C_FREE(a->pool); L2C_FREE(a->age);
    l2c_model_free(a->probe);
    l2c_adam_free(&a->adam); l2c_sgd_free(&a->sgd); l2c_adam_free(&a->victim_adam); L2C_FREE(a->adam_jacobian);
    l2c_tape_free(a->gen_tape); l2c_tape_free(a->vic_tape);
    L2C_FREE(a->x); L2C_FREE(a->seed_grad); L2C_FREE(a->grad_plus); L2C_FREE(a->y);
    { int k; for (k = 0; k < a->nrefs; k++) l2c_model_free(a->refs[k]); }
    L2C_FREE(a->ref_grad); L2C_FREE(a->shifted); L2C_FREE(a->victim_view); L2C_FREE(a->victim_xgrad);
    L2C_FREE(a->noise); L2C_FREE(a->image_grad);
    L2C_FREE(a->by_class); L2C_FREE(a->class_start); L2C_FREE(a->target_idx); L2C_FREE(a->target_x); L2C_FREE(a->target_q);
    l2c_batcher_free(&a->order);
    L2C_FREE(a);
}

/* Draw numbers of the random translations of attack step s: the anchor's reference views
   (cfg.warmup_shift; warm-up step s uses draw s) and the victim's look-ahead and real step
   (cfg.victim_shift). */
#define L2C__DRAW_ANCHOR ((uint64_t)1 << 40)
#define L2C__DRAW_LOOKAHEAD ((uint64_t)2 << 40)
#define L2C__DRAW_VICTIM ((uint64_t)3 << 40)

/* A random translation (dx, dy) in [-shift, shift]^2 drawn from `state`. The attack's draws are
   functions of the seed and a draw number only, so that a resumed attack draws what an
   uninterrupted one does. */
static void l2c__draw_shift(uint64_t state, int shift, int *dx, int *dy)
{
    uint64_t r = l2c__splitmix64(&state);
    uint32_t span = (uint32_t)(2 * shift + 1);
    *dx = (int)((uint32_t)r % span) - shift;
    *dy = (int)((uint32_t)(r >> 32) % span) - shift;
}

/* The translation of sample i in draw `draw` (cfg.victim_shift). */
static void l2c__sample_shift(const l2c_attack *a, uint64_t draw, int i, int *dx, int *dy)
{
    l2c__draw_shift((a->cfg.seed * 0x9E3779B97F4A7C15ull) ^ (draw * 0xBF58476D1CE4E5B9ull) ^ ((uint64_t)i << 20),
                    a->cfg.victim_shift, dx, dy);
}

/* The victim's view of a batch of n poisoned images: xp itself, or with cfg.victim_shift each
   sample translated by its own draw (into a->victim_view). */
static const float *l2c__augment(l2c_attack *a, const float *xp, int n, uint64_t draw)
{
    int i, dx, dy, c = a->train->c, h = a->train->h, w = a->train->w;
    size_t per = (size_t)c * h * w;
    if (!a->cfg.victim_shift) return xp;
    for (i = 0; i < n; i++) {
        l2c__sample_shift(a, draw, i, &dx, &dy);
        l2c__shift_planes(xp + i * per, a->victim_view + i * per, c, h, w, dx, dy);
    }
    return a->victim_view;
}

/* out = the adjoint of l2c__augment applied to a gradient g with respect to the view. */
static void l2c__deaugment(const l2c_attack *a, const float *g, float *out, int n, uint64_t draw)
{
    int i, dx, dy, c = a->train->c, h = a->train->h, w = a->train->w;
    size_t per = (size_t)c * h * w;
    if (!a->cfg.victim_shift) { memcpy(out, g, (size_t)n * per * sizeof(float)); return; }
    memset(out, 0, (size_t)n * per * sizeof(float));
    for (i = 0; i < n; i++) {
        l2c__sample_shift(a, draw, i, &dx, &dy);
        l2c__unshift_add(g + i * per, out + i * per, c, h, w, dx, dy, 1.0f);
    }
}

/* clamp(x + eps * g(x), 0, 1) recorded on `t`; x gets no gradient. The unclamped sum goes to
   *unclamped when that is not NULL (for l2c__backward_poison). */
static l2c_tensor *l2c__poisoned(l2c_tape *t, l2c_model *g, const float *x, int n, float eps, int mode,
                                 l2c_tensor **unclamped)
{
    l2c_tensor *in = l2c_tape_input(t, n, g->in_c, g->in_h, g->in_w, x, 0);
    l2c_tensor *noise = in ? l2c_model_forward(t, g, in, mode) : NULL;
    l2c_tensor *scaled = noise ? l2c_scale(t, noise, eps) : NULL;
    l2c_tensor *sum = scaled ? l2c_add(t, in, scaled) : NULL;
    if (unclamped) *unclamped = sum;
    return sum ? l2c_clamp(t, sum, 0.0f, 1.0f) : NULL;
}

/* Zeroes the seed (d objective / d poison, which the generator descends) at the clamped pixels
   whose descent step would push them further out of [0, 1]; the others pass (cfg.clamp_inward). */
static void l2c__keep_inward(const float *unclamped, float *seed, size_t size)
{
    size_t i;
    for (i = 0; i < size; i++)
        if ((unclamped[i] < 0.0f && seed[i] > 0.0f) || (unclamped[i] > 1.0f && seed[i] < 0.0f)) seed[i] = 0.0f;
}

/* Back-propagates seed from the poison xp into the generator's gradients: through the clamp's
   exact derivative, or (cfg.clamp_inward) from the unclamped sum with the inward part of seed,
   which is then overwritten. */
static int l2c__backward_poison(const l2c_attack *a, l2c_tensor *xp, l2c_tensor *unclamped, float *seed)
{
    if (!a->cfg.clamp_inward) return l2c_backward_from(a->gen_tape, xp, seed);
    l2c__keep_inward(unclamped->data, seed, l2c_tensor_size(unclamped));
    return l2c_backward_from(a->gen_tape, unclamped, seed);
}

/* The victim's logits on data (n samples); a non-NULL `input` receives the input tensor, which then
   takes a gradient. Resets and reuses the victim tape. */
static l2c_tensor *l2c__victim_logits(l2c_attack *a, l2c_model *v, const float *data, int n, int mode,
                                      l2c_tensor **input, int param_grads)
{
    l2c_model *g = a->frozen;
    l2c_tensor *in;
    l2c_tape_reset(a->vic_tape);
    l2c_tape_param_grads(a->vic_tape, param_grads);
    in = l2c_tape_input(a->vic_tape, n, g->in_c, g->in_h, g->in_w, data, input != NULL);
    if (input) *input = in;
    return in ? l2c_model_forward(a->vic_tape, v, in, mode) : NULL;
}

/* The victim's loss on data against the batch's labels mapped by map (or NULL). */
static l2c_tensor *l2c__victim_loss(l2c_attack *a, l2c_model *v, const float *data, int n, const int *map,
                                    int mode, l2c_tensor **input, int param_grads)
{
    l2c_tensor *logits = l2c__victim_logits(a, v, data, n, mode, input, param_grads);
    return logits ? l2c_softmax_xent(a->vic_tape, logits, a->y, map) : NULL;
}

/* The look-ahead victim's loss on the clean batch, which the trials' objective raises or lowers:
   the cross-entropy (targeted: against eta), or its complement (cfg.untargeted_loss). */
static l2c_tensor *l2c__clean_loss(l2c_attack *a, int n)
{
    const int *map = a->cfg.targeted ? a->cfg.label_map : NULL;
    l2c_tensor *logits;
    if (a->cfg.untargeted_loss != L2C_UNTARGETED_COMPLEMENT)
        return l2c__victim_loss(a, a->probe, a->x, n, map, L2C_TRAIN_FROZEN_STATS, NULL, 1);
    logits = l2c__victim_logits(a, a->probe, a->x, n, L2C_TRAIN_FROZEN_STATS, NULL, 1);
    return logits ? l2c_softmax_complement(a->vic_tape, logits, a->y, NULL) : NULL;
}

/* Input gradient of the victim's loss on data at parameters theta + r * v, into out. */
static int l2c__probe_input_grad(l2c_attack *a, const float *data, int n, const float *dir, float r, float *out)
{
    l2c_model *p = a->probe, *v = a->victim;
    l2c_tensor *in, *loss;
    size_t i;
    for (i = 0; i < p->nparams; i++) p->params[i] = v->params[i] + r * dir[i];
    loss = l2c__victim_loss(a, p, data, n, NULL, L2C_TRAIN_FROZEN_STATS, &in, 0);
    if (!loss || l2c_backward(a->vic_tape, loss)) return L2C_EINVAL;
    memcpy(out, in->grad, l2c_tensor_size(in) * sizeof(float));
    return L2C_OK;
}

/* Whether the current trial's victim trains by Adam (victim_optimizer; L2C_VICTIM_ALTERNATE: the
   even trials, counting from 1). */
static int l2c__victim_on_adam(const l2c_attack *a)
{
    return a->cfg.victim_optimizer == L2C_VICTIM_ADAM ||
           (a->cfg.victim_optimizer == L2C_VICTIM_ALTERNATE && a->trials_done % 2 == 1);
}

/* The Adam victim's look-ahead into a->probe: theta' = theta - lr m'/(sqrt(v') + eps), bias-corrected,
   the step l2c_adam_step will take; and the step's derivative in each gradient coordinate into
   a->adam_jacobian (Adam treats every coordinate alone, so its Jacobian is diagonal). */
static void l2c__adam_look_ahead(l2c_attack *a)
{
    const l2c_adam *o = &a->victim_adam;
    const l2c_model *v = a->victim;
    const float b1 = o->beta1, b2 = o->beta2;
    float step_size, inv_sqrt_bc2, *theta = a->probe->params, *jac = a->adam_jacobian;
    size_t i;
    l2c__adam_scales(o, o->step + 1, &step_size, &inv_sqrt_bc2);
    for (i = 0; i < v->nparams; i++) {
        float g = v->grads[i], m = b1 * o->m[i] + (1.0f - b1) * g, root = sqrtf(b2 * o->v[i] + (1.0f - b2) * g * g);
        float den = root * inv_sqrt_bc2 + o->eps;
        theta[i] = v->params[i] - step_size * m / den;
        /* d/dg of m / den. A coordinate whose gradient has always been exactly 0 (root = 0) takes a
           sign step, flat except within eps of 0: taken as flat. */
        jac[i] = root > 0.0f ? step_size * ((1.0f - b1) / den - m * inv_sqrt_bc2 * (1.0f - b2) * g / (root * den * den)) : 0.0f;
    }
}

/* theta' = theta - alpha * grad_theta L(f_theta(view), y), the look-ahead, into a->probe (with
   victim_momentum the full momentum step, as l2c_sgd_step will take it; an Adam victim's Adam step).
   With cfg.shortcut the pass also leaves grad_x' L(f_theta(x'), y) in a->victim_xgrad (back through
   the view's translation). */
static int l2c__look_ahead(l2c_attack *a, const float *view, int n, uint64_t draw)
{
    l2c_model *v = a->victim, *p = a->probe;
    l2c_tensor *in = NULL, *loss;
    const float alpha = a->cfg.victim_lr, mu = a->sgd.momentum, *vel = a->sgd.velocity;
    size_t i;
    loss = l2c__victim_loss(a, v, view, n, NULL, L2C_TRAIN_FROZEN_STATS, a->cfg.shortcut > 0.0f ? &in : NULL, 1);
    l2c_model_zero_grad(v);
    if (!loss || l2c_backward(a->vic_tape, loss)) return L2C_EINVAL;
    if (in) l2c__deaugment(a, in->grad, a->victim_xgrad, n, draw);
    memcpy(p->buffers, v->buffers, v->nbuffers * sizeof(float));
    if (l2c__victim_on_adam(a))
        l2c__adam_look_ahead(a);
    else if (vel)
        for (i = 0; i < p->nparams; i++) p->params[i] = v->params[i] - alpha * (mu * vel[i] + v->grads[i]);
    else
        for (i = 0; i < p->nparams; i++) p->params[i] = v->params[i] - alpha * v->grads[i];
    return L2C_OK;
}

/* L2C_OBJ_ALIGN: the derivative of cos(g, v) in x' is M(d) / (|g| |v|), with g = a->victim->grads
   (the poisoned-batch gradient of the look-ahead), M(d) the mixed derivative d/dx' [d . g(x')] and
   d = v - (v.g / |g|^2) g, the part of v orthogonal to g. Turns dir (holding v) into d in place;
   *norm holds |v|^2 on entry and |d|^2 on return. Returns 1 / (|g| |v|), or 0 when d vanishes
   (g parallel to v: the cosine is at an extreme). */
static float l2c__align_direction(const l2c_attack *a, float *dir, double *norm)
{
    const float *g = a->victim->grads;
    double vg = 0.0, gg = 0.0, dd = 0.0, vv = *norm, c;
    size_t i, n = a->probe->nparams;
    for (i = 0; i < n; i++) vg += (double)dir[i] * g[i], gg += (double)g[i] * g[i];
    if (!(gg > 0.0)) return 0.0f;
    c = vg / gg;
    for (i = 0; i < n; i++) dir[i] -= (float)(c * g[i]), dd += (double)dir[i] * dir[i];
    *norm = dd;
    return dd > 1e-12 * vv ? (float)(1.0 / sqrt(gg * vv)) : 0.0f;
}

/* The hypergradient of the generator objective with respect to x' (into a->seed_grad):
   +alpha*u to raise the clean loss (non-targeted), -alpha*u to lower the eta loss (targeted) or
   the complement loss (untargeted_loss),
   with u = [grad_x' L(theta + r v, x') - grad_x' L(theta - r v, x')] / 2r. With cfg.victim_shift
   the victim sees the translated view of x' throughout, and u goes back through the translation.
   L2C_OBJ_ALIGN takes the difference along d instead (l2c__align_direction) and scales it to the
   cosine's derivative. An Adam victim's step moves theta' by J_i = d theta'_i / d g_i per unit of
   gradient instead of alpha: the difference is taken along (J_i v_i). */
static int l2c__hypergrad(l2c_attack *a, const float *xp, int n, float *clean_loss)
{
    l2c_model *p = a->probe;
    l2c_tensor *loss;
    size_t i, size = (size_t)n * p->in_c * p->in_h * p->in_w;
    double norm = 0.0;
    float r, scale, factor = a->cfg.victim_lr, *dir = p->grads, *u = a->cfg.victim_shift ? a->grad_plus : a->seed_grad;
    uint64_t draw = L2C__DRAW_LOOKAHEAD + (uint64_t)a->steps_done;
    const float *view = l2c__augment(a, xp, n, draw);
    if (l2c__look_ahead(a, view, n, draw)) return L2C_EINVAL;
    /* v = grad_theta' of the look-ahead victim's loss on the clean batch */
    loss = l2c__clean_loss(a, n);
    l2c_model_zero_grad(p);
    if (!loss || l2c_backward(a->vic_tape, loss)) return L2C_EINVAL;
    *clean_loss = loss->data[0];
    if (l2c__victim_on_adam(a)) {
        for (i = 0; i < p->nparams; i++) dir[i] *= a->adam_jacobian[i];
        factor = 1.0f;
    }
    for (i = 0; i < p->nparams; i++) norm += (double)dir[i] * dir[i];
    if (!(norm > 0.0) || !isfinite(norm)) return l2c__fail(L2C_ENAN, "attack: the clean-loss gradient is zero or not finite");
    if (a->cfg.objective == L2C_OBJ_ALIGN && !((factor = l2c__align_direction(a, dir, &norm)) > 0.0f)) {
        memset(a->seed_grad, 0, size * sizeof(float));
        return L2C_OK;
    }
    r = (float)(a->cfg.fd_radius / sqrt(norm));
    /* probe_input_grad overwrites p->params but reads dir = p->grads, which it does not touch */
    if (l2c__probe_input_grad(a, view, n, dir, r, a->grad_plus) ||
        l2c__probe_input_grad(a, view, n, dir, -r, a->seed_grad)) return L2C_EINVAL;
    scale = (a->cfg.targeted || a->cfg.untargeted_loss == L2C_UNTARGETED_COMPLEMENT ? -1.0f : 1.0f) * factor / (2.0f * r);
    for (i = 0; i < size; i++) u[i] = scale * (a->grad_plus[i] - a->seed_grad[i]);
    if (a->cfg.victim_shift) l2c__deaugment(a, u, a->seed_grad, n, draw);
    return L2C_OK;
}

/* The real victim step on data from the frozen generator; returns the loss (NaN on failure). */
static float l2c__victim_step(l2c_attack *a, int n)
{
    l2c_tensor *xp, *loss;
    float value;
    l2c_tape_reset(a->gen_tape);
    xp = l2c__poisoned(a->gen_tape, a->frozen, a->x, n, a->cfg.eps, L2C_EVAL, NULL);
    loss = xp ? l2c__victim_loss(a, a->victim, l2c__augment(a, xp->data, n, L2C__DRAW_VICTIM + (uint64_t)a->steps_done), n, NULL,
                                 L2C_TRAIN, NULL, 1) : NULL;
    if (!loss) return (float)NAN;
    l2c_model_zero_grad(a->victim);
    if (l2c_backward(a->vic_tape, loss)) return (float)NAN;
    value = loss->data[0];
    if (!isfinite(value)) return value;
    if (l2c__victim_on_adam(a)) l2c_adam_step(&a->victim_adam, a->victim);
    else l2c_sgd_step(&a->sgd, a->victim);
    return value;
}

/* Next batch of the endless shuffled stream; batches smaller than 2 (BN needs 2) are skipped. */
static int l2c__next_batch(l2c_attack *a)
{
    const int *idx;
    int n;
    do {
        n = l2c_batcher_next(&a->order, &idx);
    } while (n < 2);
    l2c_dataset_gather(a->train, idx, n, a->x, a->y);
    return n;
}

/* -- the reference ensemble (the warm-up's classifiers, also used by the anchor) */

/* w(y): the class whose features the warm-up paints into images of class y (see run_trial). */
static void l2c__warmup_targets(const l2c_attack *a, int *w)
{
    int K = a->train->nclasses, y, c;
    for (y = 0; y < K; y++) {
        if (!a->cfg.targeted) {
            w[y] = a->cfg.pairing == L2C_PAIR_GIVEN ? a->cfg.label_map[y] : (y + 1) % K;
            continue;
        }
        w[y] = y;   /* targeted: the class that label_map sends to y (y itself if none) */
        for (c = 0; c < K; c++)
            if (a->cfg.label_map[c] == y && c != y) { w[y] = c; break; }
    }
}

/* Minimum-cost assignment (Hungarian algorithm, O(K^3)): row i gets column match[i]. cost is K x K. */
static int l2c__assign(const double *cost, int K, int *match)
{
    double *u = (double *)l2c__calloc((size_t)(K + 1) * 3 * sizeof(double)), *v = u ? u + K + 1 : NULL, *minv = v ? v + K + 1 : NULL;
    int *p = (int *)l2c__calloc((size_t)(K + 1) * 3 * sizeof(int)), *way = p ? p + K + 1 : NULL, *used = way ? way + K + 1 : NULL;
    int i, j;
    if (!u || !p) { L2C_FREE(u); L2C_FREE(p); return L2C_ENOMEM; }
    for (i = 1; i <= K; i++) {   /* add row i, then follow the augmenting path (1-based, column 0 is a sentinel) */
        int j0 = 0;
        p[0] = i;
        for (j = 0; j <= K; j++) minv[j] = HUGE_VAL, used[j] = 0;
        do {
            int i0 = p[j0], j1 = 0;
            double delta = HUGE_VAL;
            used[j0] = 1;
            for (j = 1; j <= K; j++) {
                double cur;
                if (used[j]) continue;
                cur = cost[(size_t)(i0 - 1) * K + (j - 1)] - u[i0] - v[j];
                if (cur < minv[j]) minv[j] = cur, way[j] = j0;
                if (minv[j] < delta) delta = minv[j], j1 = j;
            }
            for (j = 0; j <= K; j++)
                if (used[j]) u[p[j]] += delta, v[j] -= delta;
                else minv[j] -= delta;
            j0 = j1;
        } while (p[j0] != 0);
        do { int j1 = way[j0]; p[j0] = p[j1]; j0 = j1; } while (j0);
    }
    for (j = 1; j <= K; j++) match[p[j] - 1] = j - 1;
    L2C_FREE(u); L2C_FREE(p);
    return L2C_OK;
}

/* L2C_PAIR_NEAREST: w is the derangement maximising the reference ensemble's mean log-probability
   of w(y) on clean images of class y (the first 2,048 training images): each class is painted
   with the features of the class it is most easily mistaken for, and every class is some other
   class's target, so that a victim can lose every class. */
static int l2c__nearest_targets(l2c_attack *a, int *w)
{
    int K = a->train->nclasses, y, c, k, i, n, idx[64], count[L2C_MAX_CLASSES];
    int total = a->train->n < 2048 ? a->train->n : 2048, rc;
    double *score = (double *)l2c__calloc((size_t)K * K * sizeof(double));
    if (!score) return L2C_ENOMEM;
    memset(count, 0, sizeof count);
    for (i = 0; i < total; i += n) {   /* a->x holds one batch */
        n = total - i < a->cfg.batch ? total - i : a->cfg.batch;
        if (n > 64) n = 64;
        for (k = 0; k < n; k++) idx[k] = i + k;
        l2c_dataset_gather(a->train, idx, n, a->x, a->y);
        for (k = 0; k < n; k++) count[a->y[k]]++;
        for (k = 0; k < a->nrefs; k++) {
            l2c_tensor *logits;
            l2c_tape_reset(a->vic_tape);
            logits = l2c_model_forward(a->vic_tape, a->refs[k], l2c_tape_input(a->vic_tape, n, a->train->c, a->train->h, a->train->w, a->x, 0), L2C_EVAL);
            if (!logits) { L2C_FREE(score); return L2C_EINVAL; }
            for (y = 0; y < n; y++) {   /* log-softmax of sample y */
                const float *z = logits->data + (size_t)y * K;
                double mx = z[0], sum = 0.0;
                for (c = 1; c < K; c++) if (z[c] > mx) mx = z[c];
                for (c = 0; c < K; c++) sum += exp(z[c] - mx);
                for (c = 0; c < K; c++) score[(size_t)a->y[y] * K + c] += z[c] - mx - log(sum);
            }
        }
    }
    for (y = 0; y < K; y++)   /* cost: minus the mean log-probability; the diagonal is forbidden */
        for (c = 0; c < K; c++)
            score[(size_t)y * K + c] = c == y ? 1e30 : -score[(size_t)y * K + c] / ((double)a->nrefs * (count[y] ? count[y] : 1));
    rc = l2c__assign(score, K, w);   /* one class: w(0) = 0, the only assignment */
    L2C_FREE(score);
    return rc;
}

/* Whether a classifier fits the attack's data: its input shape, and one output per class. */
static int l2c__check_classifier(const l2c_attack *a, const l2c_model *classifier, const char *who)
{
    int c, h, w;
    l2c_model_output_shape(classifier, &c, &h, &w);
    if (classifier->in_c != a->train->c || classifier->in_h != a->train->h || classifier->in_w != a->train->w ||
        c * h * w != a->train->nclasses)
        return l2c__fail(L2C_EINVAL, "%s: the classifier maps %dx%dx%d to %d outputs; the data is %dx%dx%d with %d classes", who,
                         classifier->in_c, classifier->in_h, classifier->in_w, c * h * w, a->train->c, a->train->h, a->train->w, a->train->nclasses);
    return L2C_OK;
}

L2C_API int l2c_attack_add_reference(l2c_attack *a, const l2c_model *classifier)
{
    if (!a || !classifier) return l2c__fail(L2C_EINVAL, "l2c_attack_add_reference: NULL argument");
    if (a->refs_trained) return l2c__fail(L2C_EINVAL, "l2c_attack_add_reference: the reference classifiers are already trained");
    if (a->nrefs >= L2C_MAX_REFERENCES) return l2c__fail(L2C_EINVAL, "l2c_attack_add_reference: at most %d reference classifiers", L2C_MAX_REFERENCES);
    if (l2c__check_classifier(a, classifier, "l2c_attack_add_reference")) return L2C_EINVAL;
    if (!(a->refs[a->nrefs] = l2c_model_clone(classifier))) return L2C_ENOMEM;
    a->nrefs++;
    return L2C_OK;
}

L2C_API int l2c_attack_add_victim(l2c_attack *a, const l2c_model *classifier)
{
    int k = a ? a->narchs : 0;
    if (!a || !classifier) return l2c__fail(L2C_EINVAL, "l2c_attack_add_victim: NULL argument");
    if (a->cfg.victims != 1) return l2c__fail(L2C_EINVAL, "l2c_attack_add_victim: needs cfg.victims = 1 (a pool of %d victims is set)", a->cfg.victims);
    if (a->cfg.victim_momentum > 0.0f || a->cfg.victim_optimizer != L2C_VICTIM_SGD)
        return l2c__fail(L2C_EINVAL, "l2c_attack_add_victim: not with victim_momentum or an Adam victim (one optimiser state per architecture is not kept)");
    if (a->narchs >= L2C_MAX_REFERENCES) return l2c__fail(L2C_EINVAL, "l2c_attack_add_victim: at most %d victim architectures", L2C_MAX_REFERENCES);
    if (l2c__check_classifier(a, classifier, "l2c_attack_add_victim")) return L2C_EINVAL;
    a->archs[k] = l2c_model_clone(classifier);
    a->arch_probes[k] = l2c_model_clone(classifier);
    if (!a->archs[k] || !a->arch_probes[k]) {
        l2c_model_free(a->archs[k]); l2c_model_free(a->arch_probes[k]);
        return L2C_ENOMEM;
    }
    a->narchs++;
    return L2C_OK;
}

/* A fresh imaginary victim: new weights from the seed, no velocity (victim_momentum), a new Adam
   state (victim_optimizer). */
static void l2c__fresh_victim(l2c_attack *a, l2c_model *v)
{
    l2c_model_init(v, a->cfg.seed * 1000003u + (uint64_t)a->reinits++);
    l2c_sgd_reset(&a->sgd);
    l2c_adam_reset(&a->victim_adam);
}

/* With several victim architectures, trial t trains a fresh victim of architecture t mod narchs. */
static void l2c__next_architecture(l2c_attack *a)
{
    int k = a->trials_done % a->narchs;
    a->victim = a->archs[k];
    a->probe = a->arch_probes[k];
    a->sgd.n = a->victim->nparams;
    l2c__fresh_victim(a, a->victim);
}

/* SGD steps of a reference classifier's training: warmup_epochs passes over the batches, a fraction
   rounded up (so any positive fraction trains at least one batch). */
static long l2c__reference_steps(const l2c_attack *a)
{
    long batches = ((long)a->train->n + a->cfg.batch - 1) / a->cfg.batch;
    return (long)ceil((double)a->cfg.warmup_epochs * (double)batches);
}

/* Trains reference classifier k on clean data (SGD, momentum 0.9, the victim's lr). */
static int l2c__train_reference(l2c_attack *a, int k)
{
    l2c_model *f = a->refs[k];
    l2c_sgd sgd;
    long s, steps = l2c__reference_steps(a);
    int rc;
    memset(&sgd, 0, sizeof sgd);   /* gcc cannot see that l2c_sgd_init always sets it */
    l2c_model_init(f, a->cfg.seed * 1000003u + 0x5eedu + (uint64_t)k);
    rc = l2c_sgd_init(&sgd, f, a->cfg.victim_lr, 0.9f, 0.0f);
    l2c_batcher_reseed(&a->order, a->cfg.seed * 7919u + 0x9e3779b9u + (uint64_t)k);
    for (s = 0; s < steps && !rc; s++) {
        int n = l2c__next_batch(a);
        l2c_tensor *loss = l2c__victim_loss(a, f, a->x, n, NULL, L2C_TRAIN, NULL, 1);
        l2c_model_zero_grad(f);
        if (!loss || l2c_backward(a->vic_tape, loss)) rc = L2C_EINVAL;
        else if (!isfinite(loss->data[0])) rc = l2c__fail(L2C_ENAN, "attack warm-up: a reference classifier's loss is not finite");
        else l2c_sgd_step(&sgd, f);
    }
    l2c_sgd_free(&sgd);
    return rc;
}

static int l2c__reachable_targets(l2c_attack *a, int *w);

/* Trains the whole ensemble once (deterministic: a resumed attack retrains the same classifiers). */
static int l2c__train_references(l2c_attack *a)
{
    int k, rc = L2C_OK;
    if (a->refs_trained) return L2C_OK;
    for (k = 0; k < a->nrefs && !rc; k++) rc = l2c__train_reference(a, k);
    if (!rc && !a->cfg.targeted && a->cfg.pairing == L2C_PAIR_NEAREST) rc = l2c__nearest_targets(a, a->w);
    else if (!rc && !a->cfg.targeted && a->cfg.pairing == L2C_PAIR_REACHABLE) rc = l2c__reachable_targets(a, a->w);
    else if (!rc) l2c__warmup_targets(a, a->w);
    if (!rc) a->refs_trained = 1;
    return rc;
}

/* The random translation of member k at draw `draw` (cfg.warmup_shift). */
static void l2c__member_shift(const l2c_attack *a, uint64_t draw, int k, int *dx, int *dy)
{
    l2c__draw_shift(a->cfg.seed * 0x2545F4914F6CDD1Dull + draw * L2C_MAX_REFERENCES + (uint64_t)k, a->cfg.warmup_shift, dx, dy);
}

/* Member k's soft targets in a->target_q (warmup_temperature). */
static float *l2c__member_targets(const l2c_attack *a, int k)
{
    return a->target_q + (size_t)k * a->cfg.batch * a->train->nclasses;
}

/* warmup_temperature: for each image i of the batch, a clean training image of class map[y_i],
   drawn at random (draw numbers the step), into a->target_x, and each member's output on them,
   softened at cfg.warmup_temperature, into a->target_q: the targets of the step's image and noise
   terms alike, computed once. */
static int l2c__draw_targets(l2c_attack *a, int n, uint64_t draw, const int *map)
{
    const float T = a->cfg.warmup_temperature;
    const int K = a->train->nclasses;
    l2c_rng rng;
    int i, j, k;
    l2c_rng_seed(&rng, a->cfg.seed * 0x9E3779B97F4A7C15ull + draw * 31u + 7u);
    for (i = 0; i < n; i++) {
        int t = map[a->y[i]], first = a->class_start[t], count = a->class_start[t + 1] - first;
        if (count == 0) return l2c__fail(L2C_EINVAL, "attack: warmup_temperature needs training images of class %d, the target of class %d; there are none", t, a->y[i]);
        a->target_idx[i] = a->by_class[first + (int)l2c_rng_below(&rng, (uint32_t)count)];
    }
    l2c_dataset_gather(a->train, a->target_idx, n, a->target_x, NULL);
    for (k = 0; k < a->nrefs; k++) {
        l2c_tensor *z = l2c__victim_logits(a, a->refs[k], a->target_x, n, L2C_EVAL, NULL, 0);
        if (!z) return L2C_EINVAL;
        for (i = 0; i < n; i++) {   /* softmax(z_i / T) */
            const float *zi = z->data + (size_t)i * K;
            float *q = l2c__member_targets(a, k) + (size_t)i * K;
            double zmax, sum = l2c__softened_exp_sum(zi, K, T, &zmax);
            for (j = 0; j < K; j++) q[j] = (float)(exp(zi[j] / T - zmax) / sum);
        }
    }
    return L2C_OK;
}

/* Member k's loss on view against its soft targets, drawn for the step by l2c__draw_targets. */
static l2c_tensor *l2c__soft_target_loss(l2c_attack *a, int k, const float *view, int n, l2c_tensor **input)
{
    l2c_tensor *z = l2c__victim_logits(a, a->refs[k], view, n, L2C_EVAL, input, 0);
    return z ? l2c_softmax_kl(a->vic_tape, z, l2c__member_targets(a, k), a->cfg.warmup_temperature) : NULL;
}

/* The warm-up objective on poisoned images xp: the ensemble's mean loss against w(y) (soft: against
   the soft targets of the step, l2c__draw_targets), and its gradient with respect to xp in
   a->ref_grad. With cfg.warmup_shift each member sees its own translated view of xp (draw numbers
   the step). */
static int l2c__reference_grad(l2c_attack *a, const float *xp, int n, uint64_t draw, const int *map, int soft, float *loss_out)
{
    int k, c = a->train->c, h = a->train->h, w = a->train->w;
    size_t size = (size_t)n * c * h * w;
    double total = 0.0;
    memset(a->ref_grad, 0, size * sizeof(float));
    for (k = 0; k < a->nrefs; k++) {
        int dx = 0, dy = 0;
        const float *view = xp;
        l2c_tensor *in, *loss;
        if (a->cfg.warmup_shift > 0) {
            l2c__member_shift(a, draw, k, &dx, &dy);
            l2c__shift_planes(xp, a->shifted, n * c, h, w, dx, dy);
            view = a->shifted;
        }
        loss = soft ? l2c__soft_target_loss(a, k, view, n, &in) : l2c__victim_loss(a, a->refs[k], view, n, map, L2C_EVAL, &in, 0);
        if (!loss || l2c_backward(a->vic_tape, loss)) return L2C_EINVAL;
        if (!isfinite(loss->data[0])) return l2c__fail(L2C_ENAN, "attack warm-up: the loss is not finite");
        total += loss->data[0];
        l2c__unshift_add(in->grad, a->ref_grad, n * c, h, w, dx, dy, (float)a->nrefs);
    }
    *loss_out = (float)(total / a->nrefs);
    return L2C_OK;
}

/* The objective of the warm-up and the anchor on poisoned images xp of the clean batch in a->x:
   the ensemble's loss against w(y) (l2c__reference_grad), plus cfg.noise_weight times its loss on
   the noise alone, xp - x. The gradient with respect to xp goes to a->ref_grad (the noise's
   gradient is xp's: x is fixed). */
static int l2c__warmup_objective(l2c_attack *a, const float *xp, int n, uint64_t draw, float *loss_out)
{
    size_t i, size = (size_t)n * a->train->c * a->train->h * a->train->w;
    const float weight = a->cfg.noise_weight;
    float noise_loss;
    const int soft = a->cfg.warmup_temperature > 0.0f;
    if (soft && l2c__draw_targets(a, n, draw, a->w)) return L2C_EINVAL;
    if (l2c__reference_grad(a, xp, n, draw, a->w, soft, loss_out)) return L2C_EINVAL;
    if (!(weight > 0.0f)) return L2C_OK;
    memcpy(a->image_grad, a->ref_grad, size * sizeof(float));
    for (i = 0; i < size; i++) a->noise[i] = xp[i] - a->x[i];
    if (l2c__reference_grad(a, a->noise, n, draw, a->w, soft, &noise_loss)) return L2C_EINVAL;
    for (i = 0; i < size; i++) a->ref_grad[i] = a->image_grad[i] + weight * a->ref_grad[i];
    *loss_out += weight * noise_loss;
    return L2C_OK;
}

/* The first (up to) a->cfg.batch training images of class y into x; returns how many. */
static int l2c__class_images(const l2c_attack *a, int y, float *x, int *idx)
{
    int i, n = 0;
    for (i = 0; i < a->train->n && n < a->cfg.batch; i++)
        if (a->train->labels[i] == y) idx[n++] = i;
    if (n) l2c_dataset_gather(a->train, idx, n, x, a->y);
    return n;
}

#define L2C__REACH_STEPS 10
/* The ensemble's mean loss against class c after L2C__REACH_STEPS signed-gradient steps of size
   eps / 4 from the n images x0 towards c, kept within eps of x0 and in [0, 1] (a->x is the work
   buffer). */
static int l2c__reach_cost(l2c_attack *a, const float *x0, int n, int c, double *cost)
{
    size_t i, size = (size_t)n * a->train->c * a->train->h * a->train->w;
    const float eps = a->cfg.eps, step = 0.25f * eps;
    float loss = 0.0f;
    int s;
    memcpy(a->x, x0, size * sizeof(float));
    memset(a->y, c, (size_t)n);
    for (s = 0; ; s++) {
        if (l2c__reference_grad(a, a->x, n, 0, NULL, 0, &loss)) return L2C_EINVAL;
        if (s == L2C__REACH_STEPS) break;   /* the loss after the last step is the cost */
        for (i = 0; i < size; i++) {
            float g = a->ref_grad[i], v = a->x[i] - (g > 0.0f ? step : g < 0.0f ? -step : 0.0f);
            v = v < x0[i] - eps ? x0[i] - eps : v > x0[i] + eps ? x0[i] + eps : v;
            a->x[i] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
        }
    }
    *cost = loss;
    return L2C_OK;
}

/* L2C_PAIR_REACHABLE: w is the derangement of least total cost, cost(y, c) being how hard it is for
   eps-bounded perturbations of class-y images (the first batch of them) to make the reference
   ensemble read class c (l2c__reach_cost). Every class is then some class's target, painted into a
   class it can actually be reached from: on MNIST, at eps 0.3, hardly any perturbation of a 0 reads
   as a thin 1, which y + 1 asks for. */
static int l2c__reachable_targets(l2c_attack *a, int *w)
{
    int K = a->train->nclasses, y, c, n, rc = L2C_OK;
    size_t per = (size_t)a->train->c * a->train->h * a->train->w;
    double *cost = (double *)l2c__calloc((size_t)K * K * sizeof(double));
    float *x0 = (float *)l2c__calloc((size_t)a->cfg.batch * per * sizeof(float));
    int *idx = (int *)l2c__calloc((size_t)a->cfg.batch * sizeof(int));
    if (!cost || !x0 || !idx) rc = L2C_ENOMEM;
    for (y = 0; y < K && !rc; y++) {
        n = l2c__class_images(a, y, x0, idx);
        for (c = 0; c < K && !rc; c++)
            if (c == y) cost[(size_t)y * K + c] = 1e30;   /* a derangement: no class keeps its own features */
            else if (n) rc = l2c__reach_cost(a, x0, n, c, &cost[(size_t)y * K + c]);
    }
    if (!rc) rc = l2c__assign(cost, K, w);
    L2C_FREE(cost); L2C_FREE(x0); L2C_FREE(idx);
    return rc;
}

static double l2c__norm2(const float *v, size_t size)
{
    double sum = 0.0;
    size_t i;
    for (i = 0; i < size; i++) sum += (double)v[i] * v[i];
    return sum;
}

/* seed += weight * sqrt(hyper2 / |g|^2) * g: a second objective's gradient at a weight relative to
   the hypergradient (|hypergradient|^2 = hyper2), whatever the scales of the two objectives. */
static void l2c__add_relative(float *seed, const float *g, size_t size, float weight, double hyper2)
{
    double g2 = l2c__norm2(g, size);
    float scale;
    size_t i;
    if (!(g2 > 0.0)) return;   /* that objective is already met: nothing to add */
    scale = (float)(weight * sqrt(hyper2 / g2));
    for (i = 0; i < size; i++) seed[i] += scale * g[i];
}

/* Gradient of the generator objective for the batch in a->x, a->y, into trainable->grads: the
   hypergradient, plus the anchor (the warm-up objective) and the shortcut when asked for. */
static int l2c__generator_grad(l2c_attack *a, int n, float *clean_loss)
{
    size_t size = (size_t)n * a->train->c * a->train->h * a->train->w;
    l2c_tensor *xp, *unclamped;
    double hyper2;
    float loss;
    l2c_tape_reset(a->gen_tape);
    xp = l2c__poisoned(a->gen_tape, a->trainable, a->x, n, a->cfg.eps, L2C_TRAIN, &unclamped);
    if (!xp || l2c__hypergrad(a, xp->data, n, clean_loss)) return L2C_EINVAL;
    hyper2 = l2c__norm2(a->seed_grad, size);
    if (a->cfg.anchor > 0.0f) {
        if (l2c__warmup_objective(a, xp->data, n, L2C__DRAW_ANCHOR + (uint64_t)a->steps_done, &loss)) return L2C_EINVAL;
        l2c__add_relative(a->seed_grad, a->ref_grad, size, a->cfg.anchor, hyper2);
    }
    if (a->cfg.shortcut > 0.0f) l2c__add_relative(a->seed_grad, a->victim_xgrad, size, a->cfg.shortcut, hyper2);
    l2c_model_zero_grad(a->trainable);
    return l2c__backward_poison(a, xp, unclamped, a->seed_grad) ? L2C_EINVAL : L2C_OK;
}

static int l2c__attack_step(l2c_attack *a, int n, float *victim_loss, float *clean_loss)
{
    if (l2c__generator_grad(a, n, clean_loss)) return L2C_EINVAL;
    l2c_adam_step(&a->adam, a->trainable);
    *victim_loss = l2c__victim_step(a, n);
    if (!isfinite(*victim_loss) || !isfinite(*clean_loss))
        return l2c__fail(L2C_ENAN, "attack: a loss became NaN or infinite (learning rate too high?)");
    return L2C_OK;
}

/* Copies a caller's batch in, checking it. */
static int l2c__load_batch(l2c_attack *a, const float *x, const uint8_t *labels, int n)
{
    int i;
    if (!a || !x || !labels || n < 2 || n > a->cfg.batch) return l2c__fail(L2C_EINVAL, "attack: bad batch (n must be in [2, batch])");
    for (i = 0; i < n; i++)
        if (labels[i] >= a->train->nclasses) return l2c__fail(L2C_EINVAL, "attack: label %d is not below %d", labels[i], a->train->nclasses);
    memcpy(a->x, x, (size_t)n * a->frozen->in_c * a->frozen->in_h * a->frozen->in_w * sizeof(float));
    memcpy(a->y, labels, (size_t)n);
    return L2C_OK;
}

L2C_API int l2c_attack_step(l2c_attack *a, const float *x, const uint8_t *labels, int n)
{
    float vl, cl;
    int rc = a && a->cfg.anchor > 0.0f ? l2c__train_references(a) : L2C_OK;   /* before the batch: it uses a->x */
    if (!rc) rc = l2c__load_batch(a, x, labels, n);
    return rc ? rc : l2c__attack_step(a, n, &vl, &cl);
}

L2C_API int l2c_attack_generator_grad(l2c_attack *a, const float *x, const uint8_t *labels, int n, float *clean_loss)
{
    float cl = 0.0f;
    int rc = a && a->cfg.anchor > 0.0f ? l2c__train_references(a) : L2C_OK;
    if (!rc) rc = l2c__load_batch(a, x, labels, n);
    if (!rc) rc = l2c__generator_grad(a, n, &cl);
    if (clean_loss) *clean_loss = cl;
    return rc;
}

L2C_API l2c_model *l2c_attack_trainable(l2c_attack *a) { return a ? a->trainable : NULL; }
L2C_API l2c_model *l2c_attack_victim(l2c_attack *a) { return a ? a->victim : NULL; }

/* Makes a->victim the pool member whose turn it is, replacing it with a fresh one when its life is
   over. The first generation is staggered (victim k lives (K-k)/K of a life), so that afterwards
   the pool always holds victims of every age. The paper's schedule is one victim living one trial. */
static void l2c__pick_victim(l2c_attack *a, int steps_per_trial)
{
    int K = a->cfg.victims, k = (int)(a->steps_done % K);
    int life = a->cfg.victim_lifetime ? a->cfg.victim_lifetime : steps_per_trial;
    if (a->age[k] < 0) a->age[k] = (int)((long)k * life / K);   /* staggered first generation */
    else if (a->age[k] < life) { a->victim = a->pool[k]; return; }
    else a->age[k] = 0;
    a->victim = a->pool[k];
    l2c__fresh_victim(a, a->victim);
}

/* The generator's learning rate after `done` of a phase's `total` steps (cfg.lr_schedule). */
static float l2c__scheduled_lr(const l2c_attack *a, long done, long total)
{
    if (a->cfg.lr_schedule != L2C_LR_COSINE || total <= 0) return a->cfg.gen_lr;
    if (done > total) done = total;
    return (float)(0.5 * a->cfg.gen_lr * (1.0 + cos(3.14159265358979323846 * (double)done / (double)total)));
}

/* -- the warm-up (head start) */

/* One warm-up step: Adam on the trainable generator to lower the ensemble's loss against w(y). */
static int l2c__warmup_step(l2c_attack *a, l2c_adam *adam, int step, float *loss_out)
{
    int n = l2c__next_batch(a);
    l2c_tensor *xp, *unclamped;
    l2c_tape_reset(a->gen_tape);
    xp = l2c__poisoned(a->gen_tape, a->trainable, a->x, n, a->cfg.eps, L2C_TRAIN, &unclamped);
    if (!xp || l2c__warmup_objective(a, xp->data, n, (uint64_t)step, loss_out)) return L2C_EINVAL;
    l2c_model_zero_grad(a->trainable);
    if (l2c__backward_poison(a, xp, unclamped, a->ref_grad)) return L2C_EINVAL;
    l2c_adam_step(adam, a->trainable);
    return L2C_OK;
}

static int l2c__attack_warmup(l2c_attack *a)
{
    int s, rc;
    l2c_adam adam;
    l2c_attack_progress pr;
    memset(&adam, 0, sizeof adam);   /* gcc cannot see that l2c_adam_init always sets it */
    rc = l2c_adam_init(&adam, a->trainable, a->cfg.gen_lr, 0.9f, 0.999f, 1e-8f, 0);
    if (!rc) rc = l2c__train_references(a);
    memset(&pr, 0, sizeof pr);
    pr.trials = a->cfg.trials; pr.steps = a->cfg.warmup_steps;
    for (s = 1; s <= a->cfg.warmup_steps && !rc; s++) {
        adam.lr = l2c__scheduled_lr(a, s - 1, a->cfg.warmup_steps);
        rc = l2c__warmup_step(a, &adam, s, &pr.clean_loss);
        pr.step = s;
        pr.seconds = l2c_seconds() - a->started;
        if (!rc && a->cfg.progress && a->cfg.progress(&pr, a->cfg.user)) rc = 1;
    }
    l2c_adam_free(&adam);
    if (rc) return rc;
    l2c_model_copy(a->frozen, a->trainable);
    a->warmed_up = 1;
    return L2C_OK;
}

L2C_API int l2c_attack_warmup_targets(const l2c_attack *a, int *w)
{
    if (!a || !w) return l2c__fail(L2C_EINVAL, "l2c_attack_warmup_targets: NULL argument");
    if (!a->refs_trained) return l2c__fail(L2C_EINVAL, "l2c_attack_warmup_targets: not set before the reference classifiers are trained");
    memcpy(w, a->w, (size_t)a->train->nclasses * sizeof *w);
    return L2C_OK;
}

L2C_API int l2c_attack_warmed_up(const l2c_attack *a) { return a ? a->warmed_up : 0; }

L2C_API int l2c_attack_run_trial(l2c_attack *a)
{
    int steps, s, rc;
    l2c_attack_progress pr;
    if (!a) return l2c__fail(L2C_EINVAL, "l2c_attack_run_trial: NULL attack");
    steps = a->cfg.steps_per_trial ? a->cfg.steps_per_trial : (a->train->n + a->cfg.batch - 1) / a->cfg.batch;
    if (a->started == 0.0) a->started = l2c_seconds();
    if (!a->warmed_up) return l2c__attack_warmup(a);
    if (a->cfg.anchor > 0.0f && (rc = l2c__train_references(a))) return rc;
    /* The batch order depends only on (seed, trial): resuming from a checkpoint repeats exactly
       what an uninterrupted run does. */
    l2c_batcher_reseed(&a->order, a->cfg.seed * 7919u + (uint64_t)a->trials_done);
    if (a->narchs > 1) l2c__next_architecture(a);
    for (s = 1; s <= steps; s++) {
        int n = l2c__next_batch(a);
        if (a->narchs == 1) l2c__pick_victim(a, steps);
        a->adam.lr = l2c__scheduled_lr(a, a->steps_done, (long)a->cfg.trials * steps);
        if ((rc = l2c__attack_step(a, n, &pr.victim_loss, &pr.clean_loss))) return rc;
        a->age[a->steps_done % a->cfg.victims]++;
        a->steps_done++;
        pr.trial = a->trials_done + 1; pr.trials = a->cfg.trials;
        pr.step = s; pr.steps = steps;
        pr.seconds = l2c_seconds() - a->started;
        if (a->cfg.progress && a->cfg.progress(&pr, a->cfg.user)) return 1;
    }
    l2c_model_copy(a->frozen, a->trainable);   /* xi <- xi': weights and BN statistics */
    a->trials_done++;
    return 0;
}

L2C_API int l2c_attack_run(l2c_attack *a)
{
    if (!a) return l2c__fail(L2C_EINVAL, "l2c_attack_run: NULL attack");
    while (a->trials_done < a->cfg.trials) {
        int rc = l2c_attack_run_trial(a);
        if (rc) return rc < 0 ? rc : L2C_OK;
    }
    return L2C_OK;
}

L2C_API int l2c_attack_trials_done(const l2c_attack *a) { return a ? a->trials_done : 0; }
L2C_API const l2c_model *l2c_attack_generator(const l2c_attack *a) { return a ? a->frozen : NULL; }

/* A checksum of the reference ensemble's architectures: a checkpoint resumes only with the same
   members (they are retrained, not stored). */
static int l2c__ensemble_signature(const l2c_attack *a, uint32_t *sig)
{
    l2c__buf b;
    int k;
    memset(&b, 0, sizeof b);
    l2c__put_u32(&b, (uint32_t)a->nrefs);
    for (k = 0; k < a->nrefs; k++) l2c__put_arch(&b, a->refs[k]);
    for (k = 1; k < a->narchs; k++) l2c__put_arch(&b, a->archs[k]);   /* absent without added victims */
    if (b.failed) { L2C_FREE(b.p); return l2c__fail(L2C_ENOMEM, "attack checkpoint: out of memory"); }
    *sig = l2c__checksum(b.p, b.len);
    L2C_FREE(b.p);
    return L2C_OK;
}

/* The settings an attack checkpoint records. Resuming under other values would splice two
   schedules into one generator (a batch of 256 on a run begun at 64, say), so l2c_attack_load
   refuses them and names the first that differs. trials is not among them: a finished run may be
   extended. The label map follows them, entry by entry. A new l2c_attack_config field belongs here. */
typedef struct { const char *name; size_t offset; char kind; } l2c__setting;   /* kind: f float, i int, u uint64 */
#define L2C__SETTING(field, kind) { #field, offsetof(l2c_attack_config, field), kind }
static const l2c__setting l2c__attack_settings[] = {
    L2C__SETTING(eps, 'f'), L2C__SETTING(victim_lr, 'f'), L2C__SETTING(gen_lr, 'f'),
    L2C__SETTING(batch, 'i'), L2C__SETTING(steps_per_trial, 'i'), L2C__SETTING(victims, 'i'),
    L2C__SETTING(victim_lifetime, 'i'), L2C__SETTING(targeted, 'i'), L2C__SETTING(fd_radius, 'f'),
    L2C__SETTING(warmup_steps, 'i'), L2C__SETTING(warmup_epochs, 'f'), L2C__SETTING(pairing, 'i'),
    L2C__SETTING(anchor, 'f'), L2C__SETTING(shortcut, 'f'), L2C__SETTING(noise_weight, 'f'),
    L2C__SETTING(warmup_temperature, 'f'), L2C__SETTING(warmup_shift, 'i'),
    L2C__SETTING(victim_momentum, 'f'), L2C__SETTING(victim_shift, 'i'), L2C__SETTING(lr_schedule, 'i'),
    L2C__SETTING(objective, 'i'), L2C__SETTING(victim_optimizer, 'i'), L2C__SETTING(victim_adam_lr, 'f'),
    L2C__SETTING(clamp_inward, 'i'), L2C__SETTING(untargeted_loss, 'i'), L2C__SETTING(seed, 'u')
};
#undef L2C__SETTING
#define L2C__NSETTINGS ((int)(sizeof l2c__attack_settings / sizeof l2c__attack_settings[0]))
#define L2C__SETTINGS_BYTES (8 * (size_t)L2C__NSETTINGS + 4 * (size_t)L2C_MAX_CLASSES)   /* the settings, the label map */

/* One setting's value as 64 bits (a float by its bit pattern, so that equal means identical). */
static uint64_t l2c__setting_bits(const l2c_attack_config *cfg, const l2c__setting *s)
{
    const char *field = (const char *)cfg + s->offset;
    float f;
    int i;
    uint32_t u;
    uint64_t v;
    if (s->kind == 'f') { memcpy(&f, field, sizeof f); memcpy(&u, &f, sizeof u); return u; }
    if (s->kind == 'i') { memcpy(&i, field, sizeof i); return (uint64_t)(uint32_t)i; }
    memcpy(&v, field, sizeof v);
    return v;
}

static void l2c__put_settings(l2c__buf *b, const l2c_attack_config *cfg)
{
    int k;
    for (k = 0; k < L2C__NSETTINGS; k++) l2c__put_u64(b, l2c__setting_bits(cfg, &l2c__attack_settings[k]));
    for (k = 0; k < L2C_MAX_CLASSES; k++) l2c__put_u32(b, (uint32_t)cfg->label_map[k]);
}

/* Formats a recorded setting for a message. */
static void l2c__format_setting(char *out, size_t size, const l2c__setting *s, uint64_t bits)
{
    float f;
    uint32_t u = (uint32_t)bits;
    if (s->kind == 'f') { memcpy(&f, &u, sizeof f); snprintf(out, size, "%g", f); }
    else if (s->kind == 'i') snprintf(out, size, "%d", (int)(int32_t)u);
    else snprintf(out, size, "%llu", (unsigned long long)bits);
}

/* Compares the settings recorded at p with the attack's own. */
static int l2c__check_settings(const char *path, const uint8_t *p, const l2c_attack_config *cfg)
{
    int k;
    for (k = 0; k < L2C__NSETTINGS; k++) {
        const l2c__setting *s = &l2c__attack_settings[k];
        uint64_t saved = l2c__get_u64(p + 8 * k), now = l2c__setting_bits(cfg, s);
        if (saved != now) {
            char a[32], b[32];
            l2c__format_setting(a, sizeof a, s, saved);
            l2c__format_setting(b, sizeof b, s, now);
            return l2c__fail(L2C_EFORMAT, "%s: made with %s = %s; this attack has %s = %s (resume with the checkpoint's settings)",
                             path, s->name, a, s->name, b);
        }
    }
    for (k = 0; k < L2C_MAX_CLASSES; k++) {
        int saved = (int)l2c__get_u32(p + 8 * L2C__NSETTINGS + 4 * k);
        if (saved != cfg->label_map[k])
            return l2c__fail(L2C_EFORMAT, "%s: made with label map %d -> %d; this attack has %d -> %d (resume with the checkpoint's settings)",
                             path, k, saved, k, cfg->label_map[k]);
    }
    return L2C_OK;
}

/* Checkpoint layout: "L2CA", version 2, trials done, warm-up done, steps done, victims initialised,
   the reference ensemble's signature, the settings, the victims' ages, the generator architecture,
   frozen and trainable generator states, every victim's state, the Adam state, checksum. (Version 1,
   0.2.0-0.13.0, did not record the settings.) */
L2C_API int l2c_attack_save(const l2c_attack *a, const char *path)
{
    l2c__buf b;
    int k;
    uint32_t sig;
    if (!a || !path) return l2c__fail(L2C_EINVAL, "l2c_attack_save: NULL argument");
    if (l2c__ensemble_signature(a, &sig)) return L2C_ENOMEM;
    memset(&b, 0, sizeof b);
    l2c__put(&b, "L2CA", 4);
    l2c__put_u32(&b, 2);
    l2c__put_u32(&b, (uint32_t)a->trials_done);
    l2c__put_u32(&b, (uint32_t)a->warmed_up);
    l2c__put_u64(&b, (uint64_t)a->steps_done);
    l2c__put_u64(&b, (uint64_t)a->reinits);
    l2c__put_u32(&b, sig);
    l2c__put_settings(&b, &a->cfg);
    for (k = 0; k < a->cfg.victims; k++) l2c__put_u32(&b, (uint32_t)a->age[k]);
    l2c__put_arch(&b, a->frozen);
    l2c__put_state(&b, a->frozen);
    l2c__put_state(&b, a->trainable);
    for (k = 0; k < a->cfg.victims; k++) l2c__put_state(&b, a->pool[k]);
    l2c__put_adam(&b, &a->adam);
    return l2c__buf_commit(&b, path);
}

static void l2c__get_state(const uint8_t *s, l2c_model *m)
{
    l2c__get_floats(s, m->params, m->nparams);
    l2c__get_floats(s + 4 * m->nparams, m->buffers, m->nbuffers);
}

/* Loads an attack checkpoint; with check_settings, only one made under the attack's settings. */
static int l2c__attack_load(l2c_attack *a, const char *path, int check_settings)
{
    uint8_t *p;
    const uint8_t *s;
    size_t len, expected, gen_state, vic_state, head;
    int rc, k, K;
    uint32_t sig;
    if (l2c__ensemble_signature(a, &sig)) return L2C_ENOMEM;
    K = a->cfg.victims;
    gen_state = l2c__state_bytes(a->frozen);
    vic_state = l2c__state_bytes(a->pool[0]);
    head = 36 + L2C__SETTINGS_BYTES + 4 * (size_t)K;
    expected = head + l2c__arch_bytes(a->frozen) + 2 * gen_state + K * vic_state + l2c__adam_bytes(&a->adam) + 4;
    rc = l2c__read_file(path, &p, &len, expected);
    if (rc) return rc;
    if (len >= 8 && memcmp(p, "L2CA", 4) == 0 && l2c__get_u32(p + 4) == 1)
        rc = l2c__fail(L2C_EFORMAT, "%s: an attack checkpoint of learn2confuse 0.13.0 or earlier, which did not record the attack's settings; start a new attack",
                       path);
    else
        rc = l2c__verify_version(path, p, len, expected, "L2CA", 2);
    if (!rc) rc = l2c__check_arch(path, p + head, a->frozen);
    if (!rc && l2c__get_u32(p + 32) != sig)
        rc = l2c__fail(L2C_EFORMAT, "%s: made with another reference ensemble or other victim architectures (add the same reference classifiers, %d now, and victims, %d now)",
                       path, a->nrefs, a->narchs);
    if (!rc && check_settings) rc = l2c__check_settings(path, p + 36, &a->cfg);
    s = p + head + l2c__arch_bytes(a->frozen);
    if (!rc) rc = l2c__get_adam(path, s + 2 * gen_state + K * vic_state, &a->adam);
    if (!rc) {
        a->trials_done = (int)l2c__get_u32(p + 8);
        a->warmed_up = l2c__get_u32(p + 12) != 0 || a->cfg.warmup_steps == 0;
        a->steps_done = (long)l2c__get_u64(p + 16);
        a->reinits = (long)l2c__get_u64(p + 24);
        for (k = 0; k < K; k++) a->age[k] = (int)l2c__get_u32(p + 36 + L2C__SETTINGS_BYTES + 4 * k);
        l2c__get_state(s, a->frozen);
        l2c__get_state(s + gen_state, a->trainable);
        for (k = 0; k < K; k++) l2c__get_state(s + 2 * gen_state + k * vic_state, a->pool[k]);
    }
    L2C_FREE(p);
    return rc;
}

L2C_API int l2c_attack_load(l2c_attack *a, const char *path)
{
    if (!a || !path) return l2c__fail(L2C_EINVAL, "l2c_attack_load: NULL argument");
    return l2c__attack_load(a, path, 1);
}

L2C_API int l2c_attack_load_under_new_settings(l2c_attack *a, const char *path)
{
    if (!a || !path) return l2c__fail(L2C_EINVAL, "l2c_attack_load_under_new_settings: NULL argument");
    return l2c__attack_load(a, path, 0);
}

/* eps in grey levels, rounded down: the integer budget of a released pixel around its clean one. */
static int l2c__grey_budget(float eps) { return (int)floorf(eps * 255.0f + 1e-4f); }

/* A released grey level q kept within the budget of the clean one and in [0, 255], so that the
   released image never leaves the eps ball, rounding included. */
static uint8_t l2c__within_budget(int q, uint8_t clean, int budget)
{
    if (q < clean - budget) q = clean - budget;
    if (q > clean + budget) q = clean + budget;
    return (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
}

/* Quantises one poisoned pixel v in [0, 1] (l2c__within_budget). */
static uint8_t l2c__quantise(float v, uint8_t clean, int budget)
{
    return l2c__within_budget((int)floorf(v * 255.0f + 0.5f), clean, budget);
}

L2C_API int l2c_poison_dataset(const l2c_model *generator, const l2c_dataset *clean, float eps,
                               float fraction, l2c_dataset *out)
{
    l2c_model *g;
    l2c_tape *t;
    float *x;
    int *idx, i, npoison, budget, rc = L2C_OK, chunk = 256;
    size_t per;
    if (out && out == clean) return l2c__fail(L2C_EINVAL, "l2c_poison_dataset: out must not be the clean data set");
    if (out) memset(out, 0, sizeof *out);   /* safe to l2c_dataset_free whatever happens */
    if (!generator || !out) return l2c__fail(L2C_EINVAL, "l2c_poison_dataset: NULL argument");
    if (l2c__check_dataset(clean, "l2c_poison_dataset")) return L2C_EINVAL;
    if (!(eps > 0.0f && eps <= 1.0f)) return l2c__fail(L2C_EINVAL, "l2c_poison_dataset: eps %g is outside (0, 1]", eps);
    if (!(fraction >= 0.0f && fraction <= 1.0f)) return l2c__fail(L2C_EINVAL, "l2c_poison_dataset: fraction %g is outside [0, 1]", fraction);
    if (l2c__check_generator(generator, clean->c, clean->h, clean->w, "l2c_poison_dataset")) return L2C_EINVAL;
    per = (size_t)clean->c * clean->h * clean->w;
    memset(out, 0, sizeof *out);
    *out = *clean;
    out->images = (uint8_t *)L2C_MALLOC((size_t)clean->n * per);
    out->labels = (uint8_t *)L2C_MALLOC((size_t)clean->n);
    g = l2c_model_clone(generator);
    t = l2c_tape_new();
    x = (float *)L2C_MALLOC((size_t)chunk * per * sizeof(float));
    idx = (int *)L2C_MALLOC((size_t)chunk * sizeof(int));
    if (!out->images || !out->labels || !g || !t || !x || !idx) rc = l2c__fail(L2C_ENOMEM, "l2c_poison_dataset: out of memory");
    if (!rc) {
        memcpy(out->images, clean->images, (size_t)clean->n * per);
        memcpy(out->labels, clean->labels, (size_t)clean->n);
    }
    npoison = (int)floor((double)fraction * clean->n + 1e-9);
    budget = l2c__grey_budget(eps);
    for (i = 0; !rc && i < npoison; i += chunk) {
        int n = npoison - i < chunk ? npoison - i : chunk, j;
        size_t k;
        l2c_tensor *xp;
        for (j = 0; j < n; j++) idx[j] = i + j;
        l2c_dataset_gather(clean, idx, n, x, NULL);
        l2c_tape_reset(t);
        xp = l2c__poisoned(t, g, x, n, eps, L2C_EVAL, NULL);
        if (!xp) { rc = L2C_EINVAL; break; }
        for (k = 0; k < (size_t)n * per; k++)
            out->images[(size_t)i * per + k] = l2c__quantise(xp->data[k], clean->images[(size_t)i * per + k], budget);
    }
    l2c_model_free(g); l2c_tape_free(t); L2C_FREE(x); L2C_FREE(idx);
    if (rc) l2c_dataset_free(out);
    return rc;
}

/* Checks that `poisoned` can be a release of `clean`: same count, shape and labels. */
static int l2c__check_release(const l2c_dataset *clean, const l2c_dataset *poisoned, const char *caller)
{
    if (l2c__check_dataset(clean, caller) || l2c__check_dataset(poisoned, caller)) return L2C_EINVAL;
    if (clean->n != poisoned->n || clean->c != poisoned->c || clean->h != poisoned->h || clean->w != poisoned->w)
        return l2c__fail(L2C_EINVAL, "%s: the poisoned set (%d x %dx%dx%d) is not the clean one's shape (%d x %dx%dx%d)", caller,
                         poisoned->n, poisoned->c, poisoned->h, poisoned->w, clean->n, clean->c, clean->h, clean->w);
    if (memcmp(clean->labels, poisoned->labels, (size_t)clean->n))
        return l2c__fail(L2C_EINVAL, "%s: the poisoned set's labels are not the clean one's", caller);
    return L2C_OK;
}

/* mean[c * per + k] = mean perturbation of pixel k over the changed images of class c (0 for a
   class with none; count is per-class scratch); changed[i] whether image i differs from its clean
   original. */
static void l2c__class_perturbation_means(const l2c_dataset *clean, const l2c_dataset *poisoned, size_t per,
                                          double *mean, int *count, uint8_t *changed)
{
    int i, c;
    size_t k;
    for (i = 0; i < clean->n; i++) {
        const uint8_t *x = clean->images + (size_t)i * per, *p = poisoned->images + (size_t)i * per;
        double *m = mean + (size_t)clean->labels[i] * per;
        changed[i] = memcmp(x, p, per) != 0;
        if (!changed[i]) continue;
        count[clean->labels[i]]++;
        for (k = 0; k < per; k++) m[k] += (double)p[k] - (double)x[k];
    }
    for (c = 0; c < clean->nclasses; c++)
        for (k = 0; count[c] && k < per; k++) mean[(size_t)c * per + k] /= count[c];
}

L2C_API int l2c_poison_boost_class_mean(const l2c_dataset *clean, l2c_dataset *poisoned, float eps, float boost)
{
    const char *caller = "l2c_poison_boost_class_mean";
    size_t per, k;
    double *mean;
    int *count, i, budget;
    uint8_t *changed;
    if (l2c__check_release(clean, poisoned, caller)) return L2C_EINVAL;
    if (!(eps > 0.0f && eps <= 1.0f)) return l2c__fail(L2C_EINVAL, "%s: eps %g is outside (0, 1]", caller, eps);
    if (!(boost >= -1.0f) || !isfinite(boost)) return l2c__fail(L2C_EINVAL, "%s: boost %g is not a finite number >= -1", caller, boost);
    per = (size_t)clean->c * clean->h * clean->w;
    mean = (double *)l2c__calloc((size_t)clean->nclasses * per * sizeof(double));
    count = (int *)l2c__calloc((size_t)clean->nclasses * sizeof(int));
    changed = (uint8_t *)l2c__calloc((size_t)clean->n);
    if (!mean || !count || !changed) {
        L2C_FREE(mean); L2C_FREE(count); L2C_FREE(changed);
        return l2c__fail(L2C_ENOMEM, "%s: out of memory", caller);
    }
    l2c__class_perturbation_means(clean, poisoned, per, mean, count, changed);
    budget = l2c__grey_budget(eps);
    for (i = 0; i < clean->n; i++) {
        const double *m = mean + (size_t)clean->labels[i] * per;
        const uint8_t *x = clean->images + (size_t)i * per;
        uint8_t *p = poisoned->images + (size_t)i * per;
        if (!changed[i]) continue;
        for (k = 0; k < per; k++) p[k] = l2c__within_budget((int)floor((double)p[k] + boost * m[k] + 0.5), x[k], budget);
    }
    L2C_FREE(mean); L2C_FREE(count); L2C_FREE(changed);
    return L2C_OK;
}

L2C_API int l2c_poison_combine(const l2c_dataset *clean, const l2c_dataset *releases, int count, float eps,
                               int add, l2c_dataset *out)
{
    const char *caller = "l2c_poison_combine";
    size_t per, i;
    int k, budget;
    int aliased = out && out == clean;
    for (k = 0; out && releases && k < count && k < 64; k++) aliased |= out == &releases[k];
    if (out && !aliased) memset(out, 0, sizeof *out);   /* safe to l2c_dataset_free whatever happens */
    if (!clean || !releases || !out) return l2c__fail(L2C_EINVAL, "%s: NULL argument", caller);
    if (aliased) return l2c__fail(L2C_EINVAL, "%s: out must not be the clean set or a release", caller);
    if (count < 1 || count > 64) return l2c__fail(L2C_EINVAL, "%s: count %d is outside [1, 64]", caller, count);
    if (!(eps > 0.0f && eps <= 1.0f)) return l2c__fail(L2C_EINVAL, "%s: eps %g is outside (0, 1]", caller, eps);
    for (k = 0; k < count; k++)
        if (l2c__check_release(clean, &releases[k], caller)) return L2C_EINVAL;
    per = (size_t)clean->c * clean->h * clean->w;
    *out = *clean;
    out->images = (uint8_t *)L2C_MALLOC((size_t)clean->n * per);
    out->labels = (uint8_t *)L2C_MALLOC((size_t)clean->n);
    if (!out->images || !out->labels) {
        l2c_dataset_free(out);
        return l2c__fail(L2C_ENOMEM, "%s: out of memory", caller);
    }
    memcpy(out->labels, clean->labels, (size_t)clean->n);
    budget = l2c__grey_budget(eps);
    for (i = 0; i < (size_t)clean->n * per; i++) {
        double delta = 0.0;
        for (k = 0; k < count; k++) delta += (double)releases[k].images[i] - (double)clean->images[i];
        if (!add) delta /= count;
        out->images[i] = l2c__within_budget((int)floor((double)clean->images[i] + delta + 0.5), clean->images[i], budget);
    }
    return L2C_OK;
}

/* Per-class pixel statistics of a data set: sum[c * per + k] and sq[c * per + k] (if sq is not
   NULL) add up pixel k and its square over the images of class c, at most limit per class (the
   first ones); count[c] counts them. */
static void l2c__class_pixel_sums(const l2c_dataset *d, size_t per, int limit, double *sum, double *sq, int *count)
{
    int i;
    size_t k;
    for (i = 0; i < d->n; i++) {
        const uint8_t *x = d->images + (size_t)i * per;
        double *s = sum + (size_t)d->labels[i] * per, *q = sq ? sq + (size_t)d->labels[i] * per : NULL;
        if (count[d->labels[i]] >= limit) continue;
        count[d->labels[i]]++;
        for (k = 0; k < per; k++) s[k] += x[k];
        for (k = 0; q && k < per; k++) q[k] += (double)x[k] * x[k];
    }
}

static int l2c__check_defence(const l2c_dataset *train, const l2c_dataset *sample, int per_class, float noise_z, const char *caller)
{
    if (l2c__check_dataset(train, caller) || l2c__check_dataset(sample, caller)) return L2C_EINVAL;
    if (train == sample || train->images == sample->images)
        return l2c__fail(L2C_EINVAL, "%s: the clean sample must be another data set than the one defended", caller);
    if (train->c != sample->c || train->h != sample->h || train->w != sample->w || train->nclasses != sample->nclasses)
        return l2c__fail(L2C_EINVAL, "%s: the clean sample (%dx%dx%d, %d classes) is not the training set's shape (%dx%dx%d, %d classes)", caller,
                         sample->c, sample->h, sample->w, sample->nclasses, train->c, train->h, train->w, train->nclasses);
    if (per_class < 1) return l2c__fail(L2C_EINVAL, "%s: per_class %d; need at least 1 clean image per class", caller, per_class);
    if (!(noise_z >= 0.0f && noise_z <= 100.0f)) return l2c__fail(L2C_EINVAL, "%s: noise_z %g is outside [0, 100]", caller, noise_z);
    return L2C_OK;
}

/* The shared perturbation of one pixel of a class: train mean minus sample mean, shrunk towards 0
   by noise_z standard errors of the sample mean (n sample images, sum and sq their pixel sums). */
static double l2c__shared_estimate(double train_mean, double sum, double sq, int n, float noise_z)
{
    double mean = sum / n, var = n > 1 ? (sq - n * mean * mean) / (n - 1) : 0.0;
    double d = train_mean - mean, shrunk = fabs(d) - noise_z * sqrt((var > 0.0 ? var : 0.0) / n);
    return shrunk > 0.0 ? (d > 0.0 ? shrunk : -shrunk) : 0.0;
}

/* Subtracts shared[label * per + k] from every training image, rounded and clamped to [0, 255]
   (the release's clamp with a budget of 255 grey levels, which never binds). */
static void l2c__subtract_shared(l2c_dataset *train, size_t per, const double *shared)
{
    int i;
    size_t k;
    for (i = 0; i < train->n; i++) {
        const double *s = shared + (size_t)train->labels[i] * per;
        uint8_t *x = train->images + (size_t)i * per;
        for (k = 0; k < per; k++) x[k] = l2c__within_budget((int)floor((double)x[k] - s[k] + 0.5), x[k], 255);
    }
}

L2C_API int l2c_defend_class_mean(l2c_dataset *train, const l2c_dataset *clean_sample, int per_class, float noise_z)
{
    const char *caller = "l2c_defend_class_mean";
    size_t per, k, cells;
    double *train_sum, *sample_sum, *sample_sq;
    int *train_count, *sample_count, c, rc = L2C_OK;
    if (!train || !clean_sample) return l2c__fail(L2C_EINVAL, "%s: NULL argument", caller);
    if (l2c__check_defence(train, clean_sample, per_class, noise_z, caller)) return L2C_EINVAL;
    per = (size_t)train->c * train->h * train->w;
    cells = (size_t)train->nclasses * per;
    train_sum = (double *)l2c__calloc(3 * cells * sizeof(double));
    train_count = (int *)l2c__calloc(2 * (size_t)train->nclasses * sizeof(int));
    if (!train_sum || !train_count) {
        L2C_FREE(train_sum); L2C_FREE(train_count);
        return l2c__fail(L2C_ENOMEM, "%s: out of memory", caller);
    }
    sample_sum = train_sum + cells, sample_sq = train_sum + 2 * cells;
    sample_count = train_count + train->nclasses;
    l2c__class_pixel_sums(train, per, train->n, train_sum, NULL, train_count);
    l2c__class_pixel_sums(clean_sample, per, per_class, sample_sum, sample_sq, sample_count);
    for (c = 0; c < train->nclasses && !rc; c++)
        if (train_count[c] && !sample_count[c])
            rc = l2c__fail(L2C_EINVAL, "%s: the clean sample has no image of class %d, which the training set holds", caller, c);
    for (c = 0; c < train->nclasses && !rc; c++)   /* train_sum becomes the shared estimate */
        for (k = (size_t)c * per; train_count[c] && k < (size_t)(c + 1) * per; k++)
            train_sum[k] = l2c__shared_estimate(train_sum[k] / train_count[c], sample_sum[k], sample_sq[k], sample_count[c], noise_z);
    if (!rc) l2c__subtract_shared(train, per, train_sum);
    L2C_FREE(train_sum); L2C_FREE(train_count);
    return rc;
}

L2C_API int l2c_generator_noise(const l2c_model *generator, const float *x, int n, float eps, float *noise)
{
    const int chunk = 256;
    l2c_model *g;
    l2c_tape *t;
    size_t per, k;
    int i, rc = L2C_OK;
    if (!generator || !x || !noise) return l2c__fail(L2C_EINVAL, "l2c_generator_noise: NULL argument");
    if (n < 1) return l2c__fail(L2C_EINVAL, "l2c_generator_noise: n = %d images; need at least 1", n);
    if (!(eps > 0.0f && eps <= 1.0f)) return l2c__fail(L2C_EINVAL, "l2c_generator_noise: eps %g is outside (0, 1]", eps);
    if (l2c__check_generator(generator, generator->in_c, generator->in_h, generator->in_w, "l2c_generator_noise")) return L2C_EINVAL;
    per = (size_t)generator->in_c * generator->in_h * generator->in_w;
    for (k = 0; k < (size_t)n * per; k++)
        if (!isfinite(x[k])) return l2c__fail(L2C_ENAN, "l2c_generator_noise: input value %lu (image %lu) is not finite", (unsigned long)k, (unsigned long)(k / per));
    g = l2c_model_clone(generator);   /* the forward pass takes a mutable model */
    t = l2c_tape_new();
    if (!g || !t) rc = l2c__fail(L2C_ENOMEM, "l2c_generator_noise: out of memory");
    for (i = 0; !rc && i < n; i += chunk) {
        int m = n - i < chunk ? n - i : chunk;
        l2c_tensor *in, *out;
        l2c_tape_reset(t);
        in = l2c_tape_input(t, m, g->in_c, g->in_h, g->in_w, x + (size_t)i * per, 0);
        out = in ? l2c_model_forward(t, g, in, L2C_EVAL) : NULL;
        if (!out) { rc = L2C_EINVAL; break; }
        for (k = 0; k < (size_t)m * per; k++) noise[(size_t)i * per + k] = eps * out->data[k];
    }
    l2c_model_free(g); l2c_tape_free(t);
    return rc;
}

#endif /* L2C_IMPLEMENTATION */

/*
------------------------------------------------------------------------------
This software is available under 2 licenses -- choose whichever you prefer.
------------------------------------------------------------------------------
ALTERNATIVE A - MIT License
Copyright (c) 2026 the learn2confuse authors
Permission is hereby granted, free of charge, to any person obtaining a copy of
this software and associated documentation files (the "Software"), to deal in
the Software without restriction, including without limitation the rights to
use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies
of the Software, and to permit persons to whom the Software is furnished to do
so, subject to the following conditions:
The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.
THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
------------------------------------------------------------------------------
ALTERNATIVE B - Public Domain (www.unlicense.org)
This is free and unencumbered software released into the public domain.
Anyone is free to copy, modify, publish, use, compile, sell, or distribute this
software, either in source code form or as a compiled binary, for any purpose,
commercial or non-commercial, and by any means.
------------------------------------------------------------------------------
*/
