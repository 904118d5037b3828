/* cli_args.h: reading option values for the example programs. A value that is missing, or not
   wholly a number ("16x", "abc", "nan"), stops the program with a message naming the option and exit
   status 2, rather than being read as 0 or as its leading digits. Ranges are checked by the caller
   (or by the library, which names the setting). Set cli_program to the program's name first. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *cli_program = "example";

static void cli_refuse(const char *option, const char *value, const char *kind)
{
    fprintf(stderr, "%s: %s needs %s, not \"%s\"\n", cli_program, option, kind, value);
    exit(2);
}

/* The value after option argv[*i] (advancing *i past it). */
static const char *cli_value(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) { fprintf(stderr, "%s: %s needs a value\n", cli_program, argv[*i]); exit(2); }
    return argv[++*i];
}

/* The value after argv[*i] as a whole decimal number that fits an int. */
static int cli_int(int argc, char **argv, int *i)
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
static unsigned long cli_seed(int argc, char **argv, int *i)
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
static float cli_float(int argc, char **argv, int *i)
{
    const char *option = argv[*i], *text = cli_value(argc, argv, i);
    char *end;
    double v = strtod(text, &end);
    if (end == text || *end || !isfinite(v) || fabs(v) > 3.0e38) cli_refuse(option, text, "a finite number");
    return (float)v;
}
