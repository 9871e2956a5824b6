/* example.c - a first program with libosalloc.
 *
 * Build against the installed library with pkg-config:
 *
 *     cc example.c $(pkg-config --cflags --libs osalloc) -o example
 *     ./example
 *
 * or linked statically:
 *
 *     cc -static example.c $(pkg-config --static --cflags --libs osalloc)
 *
 * This file is in the public domain (or, where that is not possible, under
 * the MIT licence of libosalloc); copy it freely.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <osalloc.h>

int main(int argc, char **argv)
{
	/* A growing array: os_realloc keeps the contents. */
	size_t n = 0, cap = 4;
	int *squares = os_malloc(cap * sizeof *squares);
	if (squares == NULL) {
		perror("os_malloc");
		return EXIT_FAILURE;
	}
	for (int i = 0; i < 1000; i++) {
		if (n == cap) {
			/* os_reallocarray checks the product for overflow. */
			int *bigger =
			    os_reallocarray(squares, cap * 2, sizeof *squares);
			if (bigger == NULL) { /* squares is still valid */
				perror("os_reallocarray");
				os_free(squares);
				return EXIT_FAILURE;
			}
			squares = bigger;
			cap *= 2;
		}
		squares[n++] = i * i;
	}
	printf("%zu squares, the last is %d\n", n, squares[n - 1]);
	os_free(squares);

	/* Zeroed memory for a string buffer. */
	char *text = os_calloc(64, 1);
	if (text == NULL) {
		perror("os_calloc");
		return EXIT_FAILURE;
	}
	strcpy(text, "hello from osalloc");
	printf("%s (usable size %zu)\n", text, os_malloc_usable_size(text));
	os_free(text);

	/* A size from outside the program (a file, the network, here the
	 * command line) may be absurd: the request fails cleanly, with ENOMEM,
	 * and nothing else changes. */
	size_t untrusted =
	    strtoull(argc > 1 ? argv[1] : "18446744073709551615", NULL, 10);
	errno = 0;
	void *block = os_malloc(untrusted);
	if (block == NULL) {
		printf("os_malloc(%zu) failed: %s\n", untrusted,
		       errno == ENOMEM ? "ENOMEM" : "unexpected errno");
		if (errno != ENOMEM)
			return EXIT_FAILURE;
	} else {
		printf("os_malloc(%zu) succeeded\n", untrusted);
		os_free(block);
	}

	/* The heap is consistent (os_heap_check prints the cause if not). */
	return os_heap_check() == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
