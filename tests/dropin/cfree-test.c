/* cfree-test.c - a program as if linked against a C library before 2.26:
 * it calls cfree through the compatibility symbol that glibc still exports
 * (cfree@GLIBC_2.2.5 on x86-64).  Under libosalloc-malloc, blocks of
 * malloc must go back through its cfree, not the C library's free.  Built
 * by run.sh on x86-64 only.
 *
 * Copyright (c) 2026 The libosalloc developers.  MIT licence (see COPYING).
 */
#include <stdio.h>
#include <stdlib.h>

extern void cfree_compat(void *ptr);
__asm__(".symver cfree_compat, cfree@GLIBC_2.2.5");

int main(void)
{
	for (int i = 0; i < 3; i++) {
		void *small = malloc(100), *large = malloc(200000);
		if (!small || !large)
			return 1;
		cfree_compat(small);
		cfree_compat(large);
	}
	puts("ok");
	return 0;
}
