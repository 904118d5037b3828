/* Out-of-memory tests: the library built with an allocator that fails on demand (L2C_MALLOC), so
   that an allocation failure inside a backward pass (or the class-mean defence) is reported, not
   silently skipped. A separate program because the allocator is chosen when the implementation
   is compiled.
   Prints one line per check and "N passed, N failed" last. */
#include <stdlib.h>
static int fail_allocations;   /* while set, every L2C_MALLOC returns NULL */
static void *failing_malloc(size_t n) { return fail_allocations ? NULL : malloc(n); }
#define L2C_MALLOC(n) failing_malloc(n)
#define L2C_REALLOC(p, n) realloc(p, n)
#define L2C_FREE(p) free(p)
#define L2C_IMPLEMENTATION
#include "../learn2confuse.h"
#include <stdio.h>

static int passed, failed;
static void check(int ok, const char *what)
{
    if (ok) passed++; else failed++;
    printf("%s %s (%s)\n", ok ? "ok  " : "FAIL", what, l2c_error());
}

/* The class-mean defence without memory for its statistics: L2C_ENOMEM, the set as it was. */
static void check_defence(void)
{
    uint8_t img[2] = { 50, 60 }, lab[2] = { 0, 1 }, simg[2] = { 40, 60 }, slab[2] = { 0, 1 };
    l2c_dataset train = { 2, 1, 1, 1, 2, NULL, NULL }, sample = { 2, 1, 1, 1, 2, NULL, NULL };
    train.images = img; train.labels = lab;
    sample.images = simg; sample.labels = slab;
    fail_allocations = 1;
    check(l2c_defend_class_mean(&train, &sample, 10, 0.0f) == L2C_ENOMEM && img[0] == 50 && strstr(l2c_error(), "out of memory"),
          "the defence without memory returns L2C_ENOMEM and leaves the set as it was");
    fail_allocations = 0;
    l2c_clear_error();
    check(l2c_defend_class_mean(&train, &sample, 10, 0.0f) == L2C_OK && img[0] == 40 && img[1] == 60,
          "the same defence succeeds once memory is available");
}

int main(void)
{
    static float x[64 * 28 * 28];
    uint8_t y[64] = { 0 };
    l2c_model *v = l2c_mnist_victim(100, 1);
    l2c_tape *t = l2c_tape_new();
    l2c_tensor *loss;
    if (!v || !t) { printf("setup failed\n0 passed, 1 failed\n"); return 1; }
    loss = l2c_softmax_xent(t, l2c_model_forward(t, v, l2c_tape_input(t, 64, 1, 28, 28, x, 0), L2C_TRAIN), y, NULL);
    if (!loss) { printf("forward failed\n0 passed, 1 failed\n"); return 1; }
    /* the first backward of a tape grows the arena for the kernels' workspaces */
    fail_allocations = 1;
    check(l2c_backward(t, loss) == L2C_ENOMEM && strstr(l2c_error(), "out of memory"),
          "a backward pass whose workspace cannot be allocated returns L2C_ENOMEM");
    fail_allocations = 0;
    l2c_clear_error();
    l2c_model_zero_grad(v);
    check(l2c_backward(t, loss) == L2C_OK, "the same backward succeeds once memory is available");
    l2c_tape_free(t);
    l2c_model_free(v);
    check_defence();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
