/*
 * check.h: a minimal test harness for the lab's C unit tests.  Each test
 * program ends with "<name>: N passed, N failed" and exits non-zero on any
 * failure.
 */
#ifndef _LAB_CHECK_H_
#define _LAB_CHECK_H_

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_passed, check_failed;

#define	CHECK(cond) do {						\
	if (cond)							\
		check_passed++;						\
	else {								\
		check_failed++;						\
		fprintf(stderr, "%s:%d: check failed: %s\n",		\
		    __FILE__, __LINE__, #cond);				\
	}								\
} while (0)

#define	CHECK_EQ(a, b) do {						\
	long long a_ = (long long)(a), b_ = (long long)(b);		\
	if (a_ == b_)							\
		check_passed++;						\
	else {								\
		check_failed++;						\
		fprintf(stderr, "%s:%d: check failed: %s == %s "	\
		    "(%lld != %lld)\n", __FILE__, __LINE__, #a, #b,	\
		    a_, b_);						\
	}								\
} while (0)

static inline int
check_done(const char *name)
{

	printf("%s: %d passed, %d failed\n", name, check_passed,
	    check_failed);
	return (check_failed == 0 ? 0 : 1);
}

#endif /* !_LAB_CHECK_H_ */
