/* check.h - the few macros of the learn2confuse test runner (no framework).

   CHECK(cond, fmt, ...)          records a failure (file:line, the condition, a printf message)
   REQUIRE(cond, fmt, ...)        the same, then returns from the (void) test function
   CHECK_NEAR(got, want, tol)     |got - want| <= tol, printing both
   CHECK_FAILS(rc)                rc < 0 and l2c_error() is not empty
   CHECK_NULL_ERR(ptr)            ptr == NULL and l2c_error() is not empty
*/
#ifndef L2CT_CHECK_H
#define L2CT_CHECK_H

#include <stdio.h>
#include <stdarg.h>
#include <string.h>
#include <math.h>

static int l2ct_failures;          /* failed checks in the running test */
static const char *l2ct_test_name = "";

#if defined(__GNUC__) || defined(__clang__)
static void l2ct_fail(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#endif
static void l2ct_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
    va_list ap;
    l2ct_failures++;
    if (l2ct_failures > 25) {
        if (l2ct_failures == 26) printf("    ... (further failures of %s not shown)\n", l2ct_test_name);
        return;
    }
    printf("    %s:%d: [%s] CHECK(%s) failed: ", file, line, l2ct_test_name, cond);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

#define CHECK(cond, ...) \
    do { if (!(cond)) l2ct_fail(__FILE__, __LINE__, #cond, __VA_ARGS__); } while (0)

#define REQUIRE(cond, ...) \
    do { if (!(cond)) { l2ct_fail(__FILE__, __LINE__, #cond, __VA_ARGS__); return; } } while (0)

#define CHECK_NEAR(got, want, tol) \
    do { double l2ct_g_ = (double)(got), l2ct_w_ = (double)(want), l2ct_t_ = (double)(tol); \
         if (!(fabs(l2ct_g_ - l2ct_w_) <= l2ct_t_)) \
             l2ct_fail(__FILE__, __LINE__, #got " ~ " #want, "expected %.9g, got %.9g (tolerance %g)", \
                       l2ct_w_, l2ct_g_, l2ct_t_); } while (0)

#define CHECK_FAILS(rc) \
    do { int l2ct_rc_ = (rc); \
         if (!(l2ct_rc_ < 0)) l2ct_fail(__FILE__, __LINE__, #rc " < 0", "expected a negative code, got %d", l2ct_rc_); \
         else if (!l2c_error()[0]) l2ct_fail(__FILE__, __LINE__, #rc, "failed (%d) but l2c_error() is empty", l2ct_rc_); \
    } while (0)

#define CHECK_NULL_ERR(ptr) \
    do { const void *l2ct_p_ = (const void *)(ptr); \
         if (l2ct_p_) l2ct_fail(__FILE__, __LINE__, #ptr " == NULL", "expected NULL, got a result"); \
         else if (!l2c_error()[0]) l2ct_fail(__FILE__, __LINE__, #ptr, "NULL but l2c_error() is empty"); \
    } while (0)

#endif
