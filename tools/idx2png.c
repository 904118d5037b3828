/* idx2png - renders IDX images as a PNG grid, or (with --poisoned) the DeepConfuse Figure-1 style
   comparison: a row of clean samples, a row of poisoned ones, and a row of amplified noise.
   Build: gcc -std=c99 -O2 -I. tools/idx2png.c -o idx2png -lm */
#define L2C_IMPLEMENTATION
#include "learn2confuse.h"
#include "png.h"
#include "examples/cli_args.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GAP 2      /* white pixels between tiles and around the border */
#define MAXN 10000 /* tiles per picture: anything more is surely a typo */

typedef struct { l2c_idx idx; int n, c, h, w; } images;

/* Prints the usage to f; returns the exit status of a bad command line. */
static int usage(FILE *f)
{
    fprintf(f,
        "usage: idx2png --clean F --out F.png [--cols N]                 (plain grid)\n"
        "       idx2png --clean F --poisoned F --out F.png [--eps E]     (clean/poisoned/noise)\n"
        "options: --count N     images to show (default 10)\n"
        "         --first K     start at sample K (default 0)\n"
        "         --labels F    IDX label file: show the first sample of each class 0..N-1\n"
        "         --scale S     pixel zoom (default 3)\n"
        "         --eps E       noise bound mapped to black..white (default 0.3)\n"
        "         --cols N      grid columns without --poisoned (default 10)\n");
    return 2;
}

/* Strict integer option: all of s must be a number in [lo, hi]. */
static int parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

/* Loads an image file: N x H x W (gray) or N x C x H x W with C = 1 or 3. */
static int load_images(const char *path, images *im)
{
    const int *d = im->idx.dims;
    if (l2c_idx_read(path, &im->idx) != 0) { /* the library's message names the file */
        fprintf(stderr, "idx2png: %s\n", l2c_error());
        return -1;
    }
    im->c = 0;
    if (im->idx.ndim == 3) {
        im->n = d[0]; im->c = 1; im->h = d[1]; im->w = d[2];
    } else if (im->idx.ndim == 4 && (d[1] == 1 || d[1] == 3)) {
        im->n = d[0]; im->c = d[1]; im->h = d[2]; im->w = d[3];
    }
    if (im->c == 0 || im->h < 1 || im->w < 1) {
        fprintf(stderr, "idx2png: %s: not an image file (N x H x W or N x {1,3} x H x W)\n", path);
        return -1;
    }
    return 0;
}

/* Copies sample i (planar C x H x W in the file) into tile as interleaved H x W x C. */
static void get_tile(const images *im, int i, uint8_t *tile)
{
    size_t plane = (size_t)im->h * (size_t)im->w, p;
    const uint8_t *src = im->idx.data + (size_t)i * plane * (size_t)im->c;
    int c;
    for (c = 0; c < im->c; c++)
        for (p = 0; p < plane; p++) tile[p * (size_t)im->c + (size_t)c] = src[(size_t)c * plane + p];
}

/* Pastes a tile into the canvas at tile position (col, row), each pixel an S x S square. */
static void blit(uint8_t *canvas, int cw, const images *im, const uint8_t *tile, int col, int row,
                 int s)
{
    int x0 = GAP + col * (im->w * s + GAP), y0 = GAP + row * (im->h * s + GAP), y, x, c;
    for (y = 0; y < im->h * s; y++)
        for (x = 0; x < im->w * s; x++)
            for (c = 0; c < im->c; c++)
                canvas[(((size_t)(y0 + y) * (size_t)cw) + (size_t)(x0 + x)) * (size_t)im->c + (size_t)c] =
                    tile[((size_t)(y / s) * (size_t)im->w + (size_t)(x / s)) * (size_t)im->c + (size_t)c];
}

/* Picks which samples to show: the first of each class 0..n-1 from `first` on, or first..first+n-1. */
static int pick(const char *labels_path, const images *im, int first, int n, int *sel)
{
    l2c_idx lab;
    int k, i;
    if (!labels_path) {
        if (n > im->n || first > im->n - n) { /* written so that nothing can overflow */
            fprintf(stderr, "idx2png: %d samples from %d on asked, the file has %d\n", n, first, im->n);
            return -1;
        }
        for (k = 0; k < n; k++) sel[k] = first + k;
        return 0;
    }
    if (l2c_idx_read(labels_path, &lab) != 0) {
        fprintf(stderr, "idx2png: %s\n", l2c_error());
        return -1;
    }
    if (lab.ndim != 1 || lab.dims[0] != im->n) {
        fprintf(stderr, "idx2png: %s: need %d labels in a 1-D file\n", labels_path, im->n);
        l2c_idx_free(&lab);
        return -1;
    }
    for (k = 0; k < n; k++) {
        for (i = first; i < im->n && lab.data[i] != k; i++) {}
        if (i >= im->n) { /* also when --first is past the end */
            fprintf(stderr, "idx2png: %s: no sample of class %d from %d on\n", labels_path, k, first);
            l2c_idx_free(&lab);
            return -1;
        }
        sel[k] = i;
    }
    l2c_idx_free(&lab);
    return 0;
}

/* Amplified noise: poisoned - clean, with -eps..+eps spread over black..white (grey = none). */
static void noise_tile(const uint8_t *clean, const uint8_t *pois, uint8_t *out, size_t n, double eps)
{
    size_t i;
    for (i = 0; i < n; i++) {
        double v = ((double)pois[i] - (double)clean[i]) / 255.0 / eps; /* now -1..1 within bound */
        double g = (v + 1.0) * 127.5 + 0.5;
        out[i] = (uint8_t)(g < 0 ? 0 : g > 255 ? 255 : g);
    }
}

int main(int argc, char **argv)
{
    const char *clean_path = NULL, *pois_path = NULL, *out_path = NULL, *labels_path = NULL;
    int count = 10, first = 0, scale = 3, cols = 10, rows, cw, ch, k, ok = 1, rc = 1;
    double eps = 0.3;
    images cl, po;
    uint8_t *canvas = NULL, *t1 = NULL, *t2 = NULL, *t3 = NULL, *png = NULL;
    int *sel = NULL;
    size_t tile_len, png_len;

    if (cli_wants_help(argc, argv)) { usage(stdout); return 0; }
    for (k = 1; k < argc && ok; k += 2) {
        const char *o = argv[k], *v = k + 1 < argc ? argv[k + 1] : NULL;
        char *end;
        if (!v) ok = 0;
        else if (!strcmp(o, "--clean")) clean_path = v;
        else if (!strcmp(o, "--poisoned")) pois_path = v;
        else if (!strcmp(o, "--out")) out_path = v;
        else if (!strcmp(o, "--labels")) labels_path = v;
        else if (!strcmp(o, "--count")) ok = parse_int(v, 1, MAXN, &count) == 0;
        else if (!strcmp(o, "--first")) ok = parse_int(v, 0, 0x7fffffff, &first) == 0;
        else if (!strcmp(o, "--scale")) ok = parse_int(v, 1, 64, &scale) == 0;
        else if (!strcmp(o, "--cols")) ok = parse_int(v, 1, MAXN, &cols) == 0;
        else if (!strcmp(o, "--eps")) {
            eps = strtod(v, &end);
            ok = end != v && !*end && eps > 0 && eps <= 1; /* also refuses nan and inf */
        }
        else ok = 0;
        if (!ok) fprintf(stderr, "idx2png: bad option or value: %s %s\n", o, v ? v : "(missing)");
    }
    if (!ok || !clean_path || !out_path) return usage(stderr);

    memset(&cl, 0, sizeof cl); memset(&po, 0, sizeof po);
    if (load_images(clean_path, &cl) != 0 || (pois_path && load_images(pois_path, &po) != 0)) goto done;
    if (pois_path && (po.n != cl.n || po.c != cl.c || po.h != cl.h || po.w != cl.w)) {
        fprintf(stderr, "idx2png: %s is %dx%dx%dx%d but %s is %dx%dx%dx%d\n", clean_path, cl.n, cl.c,
                cl.h, cl.w, pois_path, po.n, po.c, po.h, po.w);
        goto done;
    }
    if (cols > count || pois_path) cols = count;
    rows = pois_path ? 3 : (count + cols - 1) / cols;
    /* size check in floating point first, so huge dimensions cannot overflow the ints below */
    if ((GAP + cols * ((double)cl.w * scale + GAP)) * (GAP + rows * ((double)cl.h * scale + GAP)) *
        cl.c > 1e9) {
        fprintf(stderr, "idx2png: the picture would be too large; lower --count or --scale\n");
        goto done;
    }
    cw = GAP + cols * (cl.w * scale + GAP);
    ch = GAP + rows * (cl.h * scale + GAP);
    tile_len = (size_t)cl.h * (size_t)cl.w * (size_t)cl.c;
    sel = (int *)malloc((size_t)count * sizeof *sel);
    canvas = (uint8_t *)malloc((size_t)cw * (size_t)ch * (size_t)cl.c);
    t1 = (uint8_t *)malloc(tile_len); t2 = (uint8_t *)malloc(tile_len); t3 = (uint8_t *)malloc(tile_len);
    if (!sel || !canvas || !t1 || !t2 || !t3) { fprintf(stderr, "idx2png: out of memory\n"); goto done; }
    if (pick(labels_path, &cl, first, count, sel) != 0) goto done;

    memset(canvas, 255, (size_t)cw * (size_t)ch * (size_t)cl.c);
    for (k = 0; k < count; k++) {
        get_tile(&cl, sel[k], t1);
        if (!pois_path) { blit(canvas, cw, &cl, t1, k % cols, k / cols, scale); continue; }
        get_tile(&po, sel[k], t2);
        noise_tile(t1, t2, t3, tile_len, eps);
        blit(canvas, cw, &cl, t1, k, 0, scale);
        blit(canvas, cw, &cl, t2, k, 1, scale);
        blit(canvas, cw, &cl, t3, k, 2, scale);
    }
    png = png_encode(canvas, cw, ch, cl.c, &png_len);
    if (!png) { fprintf(stderr, "idx2png: image too large (%d x %d) or out of memory\n", cw, ch); goto done; }
    if (l2c_write_file_atomic(out_path, png, png_len) != 0) {
        fprintf(stderr, "idx2png: %s\n", l2c_error());
        goto done;
    }
    rc = 0;
done:
    l2c_idx_free(&cl.idx); l2c_idx_free(&po.idx);
    free(sel); free(canvas); free(t1); free(t2); free(t3); free(png);
    return rc;
}
