# real-gcc.awk - writes the C file that the "gcc" real-program timing
# compiles (gcc -O2 -S): awk -v n=80 -f real-gcc.awk > big.c.  Generated so
# that the compile is the same everywhere and takes about a second.
BEGIN {
	if (n == "")
		n = 80
	print "#include <stdio.h>"
	print "#include <stdlib.h>"
	print "#include <string.h>"
	print ""
	print "struct rec {"
	print "\tint id;"
	print "\tdouble v[8];"
	print "\tchar name[32];"
	print "\tstruct rec *next;"
	print "};"
	for (i = 0; i < n; i++) {
		printf "\nstatic int f%d(struct rec *r, int k)\n{\n\tint s = %d;\n\n", i, i
		printf "\tfor (int j = 0; j < k; j++) {\n\t\tswitch ((j + s) %% 5) {\n"
		for (c = 0; c < 5; c++)
			printf "\t\tcase %d:\n\t\t\ts += r->id * %d + (int)r->v[%d];\n\t\t\tbreak;\n", c, c + i, (c + i) % 8
		printf "\t\t}\n\t\tif (r->next)\n\t\t\tr = r->next;\n"
		printf "\t\tsnprintf(r->name, sizeof(r->name), \"f%d-%%d\", s);\n\t}\n", i
		if (i > 0)
			printf "\treturn s + f%d(r, k - 1 > 0 ? k - 1 : 0);\n}\n", i - 1
		else
			printf "\treturn s;\n}\n"
	}
	print "\nint main(int argc, char **argv)\n{\n\tstruct rec r = {0};\n\n\t(void)argv;"
	printf "\treturn f%d(&r, argc) & 1;\n}\n", n - 1
}
