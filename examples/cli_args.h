/* cli_args.h: reading option values for the example programs. A value that is missing, or not
   wholly a number ("16x", "abc", "nan"), stops the program with a message naming the option and exit
   status 2, rather than being read as 0 or as its leading digits. Ranges are checked by the caller
   (or by the library, which names the setting). Set cli_program to the program's name first;
   cli_help answers --help; cli_choice reads one of a list of words; cli_idx_paths names a
   folder's MNIST files. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *cli_program = "example";

/* Option values (paths, lists of names) are at most CLI_VALUE_MAX characters, so that a file
   name built from one (a suffix of up to 30 characters added) fits CLI_PATH_SIZE and a list fits
   its buffer, never cut short. */
#define CLI_VALUE_MAX 990
#define CLI_PATH_SIZE 1024

/* Prints a program's usage text (lines, NULL-terminated) to f. */
static inline void cli_usage(FILE *f, const char *const *usage)
{
    for (; *usage; usage++) fprintf(f, "%s\n", *usage);
}

/* Whether --help or -h is among the arguments. */
static inline int cli_wants_help(int argc, char **argv)
{
    int i;
    for (i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
    return 0;
}

/* --help or -h among the arguments: prints the usage to stdout and exits with status 0. Called
   before the options are read, so that it works whatever else is on the command line. */
static inline void cli_help(int argc, char **argv, const char *const *usage)
{
    if (cli_wants_help(argc, argv)) { cli_usage(stdout, usage); exit(0); }
}

static inline void cli_refuse(const char *option, const char *value, const char *kind)
{
    fprintf(stderr, "%s: %s needs %s, not \"%s\"\n", cli_program, option, kind, value);
    exit(2);
}

/* The value after option argv[*i] (advancing *i past it). */
static inline const char *cli_value(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) { fprintf(stderr, "%s: %s needs a value\n", cli_program, argv[*i]); exit(2); }
    if (strlen(argv[*i + 1]) > CLI_VALUE_MAX) {
        fprintf(stderr, "%s: the value of %s is longer than %d characters\n", cli_program, argv[*i], CLI_VALUE_MAX);
        exit(2);
    }
    return argv[++*i];
}

/* The value after argv[*i] as a whole decimal number that fits an int. */
static inline int cli_int(int argc, char **argv, int *i)
{
    const char *option = argv[*i], *text = cli_value(argc, argv, i);
    char *end;
    long v;
    errno = 0;
    v = strtol(text, &end, 10);
    if (end == text || *end || errno == ERANGE || v < INT_MIN || v > INT_MAX) cli_refuse(option, text, "a whole number");
    return (int)v;
}

/* The value after argv[*i] as a non-negative whole number (a seed). */
static inline unsigned long cli_seed(int argc, char **argv, int *i)
{
    const char *option = argv[*i], *text = cli_value(argc, argv, i);
    char *end;
    unsigned long v;
    errno = 0;
    v = strtoul(text, &end, 10);
    if (end == text || *end || errno == ERANGE || text[strspn(text, " \t")] == '-')
        cli_refuse(option, text, "a non-negative whole number");
    return v;
}

/* The value after argv[*i] as a finite decimal number. */
static inline float cli_float(int argc, char **argv, int *i)
{
    const char *option = argv[*i], *text = cli_value(argc, argv, i);
    char *end;
    double v = strtod(text, &end);
    if (end == text || *end || !isfinite(v) || fabs(v) > 3.0e38) cli_refuse(option, text, "a finite number");
    return (float)v;
}

/* The value after argv[*i] as one of the words in names (NULL-terminated): its index. Any other
   value stops the program with a message listing the words. */
static inline int cli_choice(int argc, char **argv, int *i, const char *const *names)
{
    const char *option = argv[*i], *text = cli_value(argc, argv, i);
    int k, n;
    for (n = 0; names[n]; n++)
        if (!strcmp(text, names[n])) return n;
    fprintf(stderr, "%s: %s is ", cli_program, option);
    for (k = 0; k < n; k++) fprintf(stderr, "%s%s", names[k], k + 2 < n ? ", " : k + 1 < n ? " or " : "");
    fprintf(stderr, ", not \"%s\"\n", text);
    exit(2);
    return -1;   /* not reached; said for compilers that do not know exit() */
}

/* MNIST's file names in a folder, DIR/PREFIX-images-idx3-ubyte and DIR/PREFIX-labels-idx1-ubyte
   (PREFIX "train" or "t10k"), written into images and labels, each of CLI_PATH_SIZE chars: DIR is
   an option value or a default, so at most CLI_VALUE_MAX characters, and the names fit. */
static inline void cli_idx_paths(const char *dir, const char *prefix, char *images, char *labels)
{
    snprintf(images, CLI_PATH_SIZE, "%s/%s-images-idx3-ubyte", dir, prefix);
    snprintf(labels, CLI_PATH_SIZE, "%s/%s-labels-idx1-ubyte", dir, prefix);
}
