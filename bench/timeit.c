/* timeit.c - run a real program under a given allocator and report like a
 * workload: bench/timeit -w NAME [-p LIBRARY] [-o FILE] -- COMMAND [ARG]...
 * runs COMMAND with LD_PRELOAD=LIBRARY (without LD_PRELOAD when -p is not
 * given), its standard output going to FILE (default /dev/null), and prints
 * a RESULT line with the wall time and the peak RSS of the largest process
 * in the tree (ru_maxrss of RUSAGE_CHILDREN).  Exit status: the command's,
 * or 128+signal.  Used by run.sh for the real-program timings (issue 6).
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

#include "bench.h"

int main(int argc, char **argv)
{
	const char *name = "program", *preload = NULL, *out = "/dev/null";
	struct rusage ru;
	double t0, t1;
	pid_t pid;
	int c, st;

	while ((c = getopt(argc, argv, "+w:p:o:")) != -1) {
		switch (c) {
		case 'w':
			name = optarg;
			break;
		case 'p':
			preload = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		default:
			goto usage;
		}
	}
	if (optind >= argc)
		goto usage;
	t0 = bench_now();
	pid = fork();
	if (pid < 0) {
		perror("timeit: fork");
		return 125;
	}
	if (pid == 0) {
		int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (fd < 0 || dup2(fd, 1) < 0) {
			perror(out);
			_exit(126);
		}
		close(fd);
		if (preload != NULL && *preload != '\0')
			setenv("LD_PRELOAD", preload, 1);
		else
			unsetenv("LD_PRELOAD");
		execvp(argv[optind], argv + optind);
		perror(argv[optind]);
		_exit(127);
	}
	if (waitpid(pid, &st, 0) < 0) {
		perror("timeit: waitpid");
		return 125;
	}
	t1 = bench_now();
	if (WIFSIGNALED(st)) {
		fprintf(stderr, "timeit: %s killed by signal %d\n",
		        argv[optind], WTERMSIG(st));
		return 128 + WTERMSIG(st);
	}
	if (WEXITSTATUS(st) != 0)
		return WEXITSTATUS(st);
	getrusage(RUSAGE_CHILDREN, &ru);
	printf("RESULT workload=%s variant=prog threads=1 seconds=%.6f ops=0 "
	       "maxrss_kb=%ld peak_live_bytes=0 minflt=%ld cpu=%.3f\n",
	       name, t1 - t0, ru.ru_maxrss, ru.ru_minflt,
	       (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
	           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) *
	               1e-6);
	return 0;
usage:
	fprintf(
	    stderr,
	    "usage: %s -w NAME [-p LIBRARY] [-o FILE] -- COMMAND [ARG]...\n",
	    argv[0]);
	return 64;
}
