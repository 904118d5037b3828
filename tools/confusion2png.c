/* confusion2png - renders a confusion matrix as a PNG heat map.
   Input text: a first line "K", then K lines of K non-negative integers (row = true label,
   column = predicted label). Each cell is coloured by its share of the row, white (0) to dark
   blue (1), so a victim fooled by poisoned training data shows up as a pale, scattered diagonal.
   Build: gcc -std=c99 -O2 -I. tools/confusion2png.c -o confusion2png -lm */
#define L2C_IMPLEMENTATION
#include "learn2confuse.h"
#include "png.h"
#include "examples/cli_args.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXK 1000
#define MAXFILE (64u << 20) /* a 1000 x 1000 matrix of 15-digit counts still fits */
#define VMAX 1000000000000000ull /* counts above this are surely not counts */

/* 3x5 digit glyphs, one octal digit per row (top row first, bit 2 = left column). */
static const unsigned short font[10] = {075557, 026227, 071747, 071717, 055711,
                                        074717, 074757, 071111, 075757, 075717};

typedef struct { const char *p, *end; int line; } cursor;

/* Prints the usage to f; returns the exit status of a bad command line. */
static int usage(FILE *f)
{
    fprintf(f, "usage: confusion2png --in MATRIX.txt --out F.png [--scale S]\n"
                    "--scale S:  cell size in pixels, 4..64 (default 24)\n"
                    "MATRIX.txt: a line \"K\", then K lines of K non-negative integers\n"
                    "            (row = true label, column = predicted label)\n");
    return 2;
}

static void skip_blanks(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\r')) c->p++;
}

/* One unsigned decimal number; anything else (sign, letter, overflow) is an error. */
static int read_uint(cursor *c, unsigned long long *v)
{
    skip_blanks(c);
    if (c->p == c->end || *c->p < '0' || *c->p > '9') return -1;
    for (*v = 0; c->p < c->end && *c->p >= '0' && *c->p <= '9'; c->p++) {
        *v = *v * 10 + (unsigned long long)(*c->p - '0');
        if (*v > VMAX) return -1;
    }
    return 0;
}

/* The line must end here (trailing blanks allowed; the last line may lack its newline). */
static int end_line(cursor *c)
{
    skip_blanks(c);
    if (c->p == c->end) return 0;
    if (*c->p != '\n') return -1;
    c->p++;
    c->line++;
    return 0;
}

/* Parses the whole text into *k and a malloc'd k*k matrix; prints what is wrong on failure. */
static unsigned long long *parse(const char *path, const char *text, size_t n, int *k)
{
    cursor c;
    unsigned long long v, *m = NULL;
    int i, j;
    c.p = text; c.end = text + n; c.line = 1;
    if (read_uint(&c, &v) != 0 || v < 1 || v > MAXK || end_line(&c) != 0) {
        fprintf(stderr, "confusion2png: %s:1: expected K (1..%d) alone on the first line\n", path, MAXK);
        return NULL;
    }
    *k = (int)v;
    m = (unsigned long long *)malloc((size_t)*k * (size_t)*k * sizeof *m);
    if (!m) { fprintf(stderr, "confusion2png: out of memory\n"); return NULL; }
    for (i = 0; i < *k; i++) {
        for (j = 0; j < *k; j++)
            if (read_uint(&c, &m[i * *k + j]) != 0) break;
        if (j < *k || end_line(&c) != 0) {
            fprintf(stderr, "confusion2png: %s:%d: expected exactly %d non-negative integers "
                    "(at most %llu each)\n", path, c.line, *k, VMAX);
            free(m);
            return NULL;
        }
    }
    while (c.p < c.end && (*c.p == ' ' || *c.p == '\t' || *c.p == '\r' || *c.p == '\n')) c.p++;
    if (c.p != c.end) {
        fprintf(stderr, "confusion2png: %s: unexpected text after the %d matrix rows\n", path, *k);
        free(m);
        return NULL;
    }
    return m;
}

/* Reads a whole file into a malloc'd buffer (not NUL-terminated: the parser uses the length).
   Grows as it reads, so pipes work too. */
static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL, *nb;
    size_t cap = 0, got = 1;
    const char *why = NULL;
    if (!f) { fprintf(stderr, "confusion2png: %s: cannot open\n", path); return NULL; }
    for (*n = 0; !why && got > 0; *n += got) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 4096;
            if (!(nb = (char *)realloc(buf, cap))) { why = "out of memory"; break; }
            buf = nb;
        }
        got = fread(buf + *n, 1, cap - *n, f);
        if (*n + got > MAXFILE) why = "file too large";
    }
    if (!why && ferror(f)) why = "read error";
    fclose(f);
    if (why) { fprintf(stderr, "confusion2png: %s: %s\n", path, why); free(buf); return NULL; }
    return buf;
}

static void put(uint8_t *img, int w, int x, int y, const uint8_t rgb[3])
{
    memcpy(img + ((size_t)y * (size_t)w + (size_t)x) * 3, rgb, 3);
}

/* Draws number v at (x, y) (top left), each font pixel an fs x fs square, in black. */
static void draw_number(uint8_t *img, int w, int x, int y, int v, int fs)
{
    static const uint8_t black[3] = {0, 0, 0};
    char s[16];
    int i, r, col, dy, dx, len = sprintf(s, "%d", v);
    for (i = 0; i < len; i++)
        for (r = 0; r < 5; r++)
            for (col = 0; col < 3; col++)
                if ((font[s[i] - '0'] >> ((4 - r) * 3 + (2 - col))) & 1)
                    for (dy = 0; dy < fs; dy++)
                        for (dx = 0; dx < fs; dx++)
                            put(img, w, x + (i * 4 + col) * fs + dx, y + r * fs + dy, black);
}

int main(int argc, char **argv)
{
    static const uint8_t grid[3] = {190, 190, 190}, blue[3] = {8, 48, 107};
    const char *in = NULL, *out = NULL;
    char *text = NULL, *end;
    unsigned long long *m = NULL, sum;
    int s = 24, k = 0, i, j, x, y, c, nd, fs, tw, lm, tm, w, h, rc = 1;
    size_t n, png_len;
    uint8_t *img = NULL, *png = NULL, rgb[3];

    if (cli_wants_help(argc, argv)) { usage(stdout); return 0; }
    for (i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--in")) in = argv[i + 1];
        else if (!strcmp(argv[i], "--out")) out = argv[i + 1];
        else if (!strcmp(argv[i], "--scale")) {
            long v = strtol(argv[i + 1], &end, 10);
            if (end == argv[i + 1] || *end || v < 4 || v > 64) return usage(stderr);
            s = (int)v;
        } else return usage(stderr);
    }
    if (i != argc || !in || !out) return usage(stderr);
    if (!(text = slurp(in, &n)) || !(m = parse(in, text, n, &k))) goto done;

    /* label font: as large as fits in a cell (up to S/8), labels dropped if even 1x does not fit */
    nd = (k - 1 >= 100 ? 3 : k - 1 >= 10 ? 2 : 1);
    fs = (s - 3) / (4 * nd - 1); /* leave a few pixels between neighbouring labels */
    if (fs > s / 8) fs = s / 8;
    tw = (4 * nd - 1) * fs;
    lm = fs > 0 ? tw + 4 * fs : 0;
    tm = fs > 0 ? 5 * fs + 4 * fs : 0;
    w = lm + k * s + 1;
    h = tm + k * s + 1;
    if ((double)w * h * 3 > 1e9) { fprintf(stderr, "confusion2png: too large; lower --scale\n"); goto done; }
    if (!(img = (uint8_t *)malloc((size_t)w * (size_t)h * 3))) goto oom;
    memset(img, 255, (size_t)w * (size_t)h * 3);

    for (i = 0; i < k; i++) {
        for (sum = 0, j = 0; j < k; j++) sum += m[i * k + j]; /* <= 1000 * 1e15: no overflow */
        for (j = 0; j < k; j++) {
            double f = sum ? (double)m[i * k + j] / (double)sum : 0.0;
            for (c = 0; c < 3; c++) rgb[c] = (uint8_t)(255.0 + f * (blue[c] - 255.0) + 0.5);
            for (y = 0; y < s; y++)
                for (x = 0; x < s; x++) put(img, w, lm + j * s + x, tm + i * s + y, rgb);
        }
    }
    for (i = 0; i <= k; i++) /* grid lines on the cell borders, outer frame included */
        for (j = 0; j <= k * s; j++) {
            put(img, w, lm + i * s, tm + j, grid);
            put(img, w, lm + j, tm + i * s, grid);
        }
    for (i = 0; fs > 0 && i < k; i++) { /* labels: predicted along the top, true down the left */
        int dw = ((i >= 100 ? 3 : i >= 10 ? 2 : 1) * 4 - 1) * fs;
        draw_number(img, w, lm + i * s + (s - dw + 1) / 2, 2 * fs, i, fs);
        draw_number(img, w, lm - 2 * fs - dw, tm + i * s + (s - 5 * fs + 1) / 2, i, fs);
    }
    if (!(png = png_encode(img, w, h, 3, &png_len))) goto oom;
    if (l2c_write_file_atomic(out, png, png_len) != 0) {
        fprintf(stderr, "confusion2png: %s\n", l2c_error()); /* names the file */
        goto done;
    }
    rc = 0;
    goto done;
oom:
    fprintf(stderr, "confusion2png: out of memory\n");
done:
    free(text); free(m); free(img); free(png);
    return rc;
}
