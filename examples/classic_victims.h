/* classic_victims.h: victims for eval_mnist that are not networks, each behind the same three calls
   (fit on a training set, predict a batch of 784-pixel images in [0,1], release). Learn2confuse's
   poison is taught by networks; these show whether it also fools learners that share nothing with
   them. Include after learn2confuse.h (it uses l2c_gemm and l2c_rng). */
#include <stdlib.h>
#include <string.h>

typedef struct classic_victim {
    void *(*fit)(const l2c_dataset *train, uint64_t seed);   /* NULL when out of memory */
    int (*predict)(const void *model, const float *x, int n, uint8_t *pred);   /* 0, or -1: out of memory */
    void (*release)(void *model);
    int seeded;   /* whether fit depends on its seed (else one fit stands for every seed) */
} classic_victim;

/* ---- 1-nearest neighbour, squared L2 distance over pixels ---------------------------------------
   |q - x|^2 = |q|^2 - 2 q.x + |x|^2, where |q|^2 ranks nothing, so one matrix product per chunk of
   queries does the work. Fitting keeps the set's pixels and each image's |x|^2 (and its labels by
   pointer: the set must outlive the model). */
typedef struct knn_model { float *x, *norm; const uint8_t *labels; int n; } knn_model;
enum { KNN_CHUNK = 256 };

static void knn_release(void *model)
{
    knn_model *m = (knn_model *)model;
    if (m) { free(m->x); free(m->norm); free(m); }
}

static void *knn_fit(const l2c_dataset *train, uint64_t seed)
{
    knn_model *m = (knn_model *)calloc(1, sizeof *m);
    size_t j, k;
    (void)seed;   /* nothing random */
    if (!m || !(m->x = (float *)malloc((size_t)train->n * 784 * sizeof(float))) ||
        !(m->norm = (float *)calloc((size_t)train->n, sizeof(float)))) { knn_release(m); return NULL; }
    m->labels = train->labels;
    m->n = train->n;
    for (j = 0; j < (size_t)m->n; j++)
        for (k = 0; k < 784; k++) {
            float v = m->x[j * 784 + k] = train->images[j * 784 + k] / 255.0f;
            m->norm[j] += v * v;
        }
    return m;
}

static int knn_predict(const void *model, const float *q, int count, uint8_t *pred)
{
    const knn_model *m = (const knn_model *)model;
    float *dist = (float *)malloc((size_t)KNN_CHUNK * m->n * sizeof(float));
    int i, j, k;
    if (!dist) return -1;
    for (i = 0; i < count; i += KNN_CHUNK) {
        int rows = count - i < KNN_CHUNK ? count - i : KNN_CHUNK;
        l2c_gemm(0, 1, rows, m->n, 784, -2.0f, q + (size_t)i * 784, 784, m->x, 784, 0.0f, dist, m->n);
        for (k = 0; k < rows; k++) {
            const float *d = dist + (size_t)k * m->n;
            int best = 0;
            for (j = 1; j < m->n; j++) if (d[j] + m->norm[j] < d[best] + m->norm[best]) best = j;
            pred[i + k] = m->labels[best];
        }
    }
    free(dist);
    return 0;
}

static const classic_victim KNN = { knn_fit, knn_predict, knn_release, 0 };

/* ---- random forest (Breiman 2001) ---------------------------------------------------------------
   FOREST_TREES trees, each grown on a bootstrap sample of the set; a node splits on the best Gini
   split among FOREST_TRY random pixels (about sqrt(784), the usual choice), thresholds between grey
   levels. No pruning: a leaf is pure, a single image, or at depth FOREST_DEPTH. The trees vote. */
enum { FOREST_TREES = 32, FOREST_TRY = 28, FOREST_LEVELS = 256, FOREST_DEPTH = 64 };

typedef struct tree_node { int pixel, left, right; float cut; uint8_t label; } tree_node;   /* left < 0: a leaf */
typedef struct forest_tree { tree_node *nodes; int count, room; } forest_tree;
typedef struct forest_model { forest_tree trees[FOREST_TREES]; } forest_model;

/* Appends a node (a leaf until told otherwise); returns its index, or -1 when out of memory. */
static int tree_add(forest_tree *t)
{
    if (t->count == t->room) {
        int room = t->room ? 2 * t->room : 1024;
        tree_node *grown = (tree_node *)realloc(t->nodes, (size_t)room * sizeof *grown);
        if (!grown) return -1;
        t->nodes = grown;
        t->room = room;
    }
    memset(&t->nodes[t->count], 0, sizeof *t->nodes);
    t->nodes[t->count].left = -1;
    return t->count++;
}

static uint8_t majority(const uint8_t *labels, const int *idx, int n)
{
    int counts[10] = { 0 }, i, best = 0;
    for (i = 0; i < n; i++) counts[labels[idx[i]]]++;
    for (i = 1; i < 10; i++) if (counts[i] > counts[best]) best = i;
    return (uint8_t)best;
}

/* The best Gini split of images idx[0..n) among FOREST_TRY random pixels: *pixel, and *level (grey
   levels <= level go left). Returns 0 when none of the pixels tried separates anything. */
static int best_split(const l2c_dataset *d, const int *idx, int n, l2c_rng *rng, int *pixel, int *level)
{
    int hist[FOREST_LEVELS][10], total[10] = { 0 }, i, k, c, found = 0;
    double best = -1.0;
    for (i = 0; i < n; i++) total[d->labels[idx[i]]]++;
    for (k = 0; k < FOREST_TRY; k++) {
        int p = (int)l2c_rng_below(rng, 784), left[10] = { 0 }, nl = 0, v;
        memset(hist, 0, sizeof hist);
        for (i = 0; i < n; i++) hist[d->images[(size_t)idx[i] * 784 + p]][d->labels[idx[i]]]++;
        for (v = 0; v < FOREST_LEVELS - 1; v++) {
            double sl = 0.0, sr = 0.0, score;
            int moved = 0;
            for (c = 0; c < 10; c++) { left[c] += hist[v][c]; nl += hist[v][c]; moved |= hist[v][c]; }
            if (!moved || nl == n) continue;   /* same split as the level before, or nothing right */
            for (c = 0; c < 10; c++) {
                sl += (double)left[c] * left[c];
                sr += (double)(total[c] - left[c]) * (total[c] - left[c]);
            }
            score = sl / nl + sr / (n - nl);   /* n minus this is n times the weighted Gini impurity */
            if (score > best) { best = score; *pixel = p; *level = v; found = 1; }
        }
    }
    return found;
}

/* Grows the subtree of images idx[0..n) (reordered in place); returns its root, or -1. */
static int grow(forest_tree *t, const l2c_dataset *d, int *idx, int n, int depth, l2c_rng *rng)
{
    int node = tree_add(t), pixel = 0, level = 0, i, j;
    if (node < 0) return -1;
    for (i = 1; i < n && d->labels[idx[i]] == d->labels[idx[0]]; i++) {}
    if (i == n || depth == FOREST_DEPTH || !best_split(d, idx, n, rng, &pixel, &level)) {
        t->nodes[node].label = majority(d->labels, idx, n);
        return node;
    }
    for (i = 0, j = n - 1; i <= j;) {   /* partition: grey level <= level to the front */
        if (d->images[(size_t)idx[i] * 784 + pixel] <= level) i++;
        else { int s = idx[i]; idx[i] = idx[j]; idx[j--] = s; }
    }
    t->nodes[node].pixel = pixel;
    t->nodes[node].cut = (level + 0.5f) / 255.0f;   /* between grey levels, for inputs in [0,1] */
    if ((j = grow(t, d, idx, i, depth + 1, rng)) < 0) return -1;
    t->nodes[node].left = j;   /* t->nodes may have moved: index it afresh */
    if ((j = grow(t, d, idx + i, n - i, depth + 1, rng)) < 0) return -1;
    t->nodes[node].right = j;
    return node;
}

static void forest_release(void *model)
{
    forest_model *m = (forest_model *)model;
    int k;
    if (!m) return;
    for (k = 0; k < FOREST_TREES; k++) free(m->trees[k].nodes);
    free(m);
}

static void *forest_fit(const l2c_dataset *train, uint64_t seed)
{
    forest_model *m = (forest_model *)calloc(1, sizeof *m);
    int *idx = (int *)malloc((size_t)train->n * sizeof(int)), k, i, ok = m && idx;
    l2c_rng rng;
    l2c_rng_seed(&rng, seed);
    for (k = 0; ok && k < FOREST_TREES; k++) {
        for (i = 0; i < train->n; i++) idx[i] = (int)l2c_rng_below(&rng, (uint32_t)train->n);   /* bootstrap */
        ok = grow(&m->trees[k], train, idx, train->n, 0, &rng) >= 0;
    }
    free(idx);
    if (!ok) { forest_release(m); return NULL; }
    return m;
}

static int forest_predict(const void *model, const float *x, int count, uint8_t *pred)
{
    const forest_model *m = (const forest_model *)model;
    int i, k, c;
    for (i = 0; i < count; i++) {
        const float *img = x + (size_t)i * 784;
        int votes[10] = { 0 }, best = 0;
        for (k = 0; k < FOREST_TREES; k++) {
            const tree_node *nodes = m->trees[k].nodes, *nd = nodes;
            while (nd->left >= 0) nd = &nodes[img[nd->pixel] <= nd->cut ? nd->left : nd->right];
            votes[nd->label]++;
        }
        for (c = 1; c < 10; c++) if (votes[c] > votes[best]) best = c;
        pred[i] = (uint8_t)best;
    }
    return 0;
}

static const classic_victim FOREST = { forest_fit, forest_predict, forest_release, 1 };
