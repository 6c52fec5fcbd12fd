/*
 * replay_main.c: a plain main for a fuzz target's LLVMFuzzerTestOneInput, so
 * that the corpus is replayed without libFuzzer (built with $(CC) and
 * ASan+UBSan: gcc where clang is missing; and with clang's source-based
 * coverage, for the coverage figures of npm run fuzz).  Each argument is a file or a
 * directory of files; each file is one input, read into a buffer of exactly
 * its size.  Prints "replay: N inputs, 0 crashes" and exits 0; a sanitizer
 * report or an abort names the input first and ends the process non-zero.
 */
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Present when a sanitizer runtime is linked (the coverage build has none). */
void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

static const char *current;

static void
name_current(void)
{
	static const char what[] = "replay: crash on input ";

	if (current == NULL)
		return;
	(void)!write(2, what, sizeof(what) - 1);
	(void)!write(2, current, strlen(current));
	(void)!write(2, "\n", 1);
}

static void
on_abort(int sig)
{

	name_current();
	signal(sig, SIG_DFL);
	raise(sig);
}

static int
replay_file(const char *path)
{
	struct stat st;
	uint8_t *data;
	FILE *f;
	size_t n;

	f = fopen(path, "rb");
	if (f == NULL || fstat(fileno(f), &st) != 0) {
		perror(path);
		if (f != NULL)
			fclose(f);
		return (-1);
	}
	/*
	 * Exactly the input's bytes, so that an overread hits the redzone
	 * (malloc(0) may return NULL: one byte then, the true size passed).
	 */
	data = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
	if (data == NULL) {
		fclose(f);
		return (-1);
	}
	n = fread(data, 1, (size_t)st.st_size, f);
	fclose(f);
	if (n != (size_t)st.st_size) {
		fprintf(stderr, "%s: short read\n", path);
		free(data);
		return (-1);
	}
	current = path;
	LLVMFuzzerTestOneInput(data, n);
	current = NULL;
	free(data);
	return (0);
}

int
main(int argc, char **argv)
{
	char path[4096];
	struct dirent *e;
	struct stat st;
	unsigned long inputs;
	DIR *d;
	int i;

	if (__sanitizer_set_death_callback != NULL)
		__sanitizer_set_death_callback(name_current);
	signal(SIGABRT, on_abort);
	inputs = 0;
	for (i = 1; i < argc; i++) {
		if (stat(argv[i], &st) != 0) {
			perror(argv[i]);
			return (2);
		}
		if (!S_ISDIR(st.st_mode)) {
			if (replay_file(argv[i]) != 0)
				return (2);
			inputs++;
			continue;
		}
		d = opendir(argv[i]);
		if (d == NULL) {
			perror(argv[i]);
			return (2);
		}
		while ((e = readdir(d)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
			if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
				continue;
			if (replay_file(path) != 0) {
				closedir(d);
				return (2);
			}
			inputs++;
		}
		closedir(d);
	}
	printf("replay: %lu inputs, 0 crashes\n", inputs);
	return (0);
}
