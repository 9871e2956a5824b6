/* options.c - OSALLOC_OPTIONS, parsed once at initialisation.
 *
 * Syntax: "name=value,name=value".  Sizes accept a k, m or g suffix.  An
 * unknown name or a bad value prints one warning and keeps the default.
 * The result is read-only after initialisation.  A set-user-ID or
 * set-group-ID program (AT_SECURE) ignores the variable, as jemalloc
 * ignores MALLOC_CONF there: whoever runs it must not steer its heap.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* secure_getenv */
#endif
#include "internal.h"

#include <stdlib.h>
#include <string.h>

struct osa_options osa_opt = {
	.mmap_threshold = OSA_DEFAULT_MMAP_THRESHOLD,
	.heap_prealloc = OSA_DEFAULT_PREALLOC,
	.zero = false,
	.junk = false,
	.check = 1,
	.cache = -1, /* on, but off under valgrind unless cache=1 is given */
	.stats = false,
	.thp = true,
};

static void warn(const char *what, const char *name, size_t len)
{
	char line[200];
	size_t n = 0;
	const char *parts[] = {"osalloc: OSALLOC_OPTIONS: ", what, " '"};
	for (size_t i = 0; i < 3; i++)
		for (const char *s = parts[i]; *s && n < 150; s++)
			line[n++] = *s;
	for (size_t i = 0; i < len && n < 190; i++)
		line[n++] = name[i];
	line[n++] = '\'';
	line[n++] = '\n';
	osa_sys_write_stderr(line, n);
}

/* Parses a decimal size with an optional k/m/g suffix; false if malformed
 * or above `max`. */
static bool parse_size(const char *s, size_t len, size_t max, size_t *out)
{
	size_t v = 0, i = 0;
	if (len == 0)
		return false;
	for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
		size_t d = (size_t)(s[i] - '0');
		if (d > max || v > (max - d) / 10) /* v * 10 + d > max */
			return false;
		v = v * 10 + d;
	}
	if (i == 0)
		return false;
	if (i < len) {
		unsigned shift;
		switch (s[i] | 0x20) {
		case 'k': shift = 10; break;
		case 'm': shift = 20; break;
		case 'g': shift = 30; break;
		default: return false;
		}
		if (i + 1 != len || v > (max >> shift))
			return false;
		v <<= shift;
	}
	*out = v;
	return true;
}

struct opt_desc {
	const char *name;
	size_t min, max;
	void (*set)(size_t v);
};

static void set_threshold(size_t v) { osa_opt.mmap_threshold = v; }
static void set_prealloc(size_t v) { osa_opt.heap_prealloc = v; }
static void set_zero(size_t v) { osa_opt.zero = v; }
static void set_junk(size_t v) { osa_opt.junk = v; }
static void set_check(size_t v) { osa_opt.check = (int)v; }
static void set_cache(size_t v) { osa_opt.cache = (int)v; }
static void set_stats(size_t v) { osa_opt.stats = v; }
static void set_thp(size_t v) { osa_opt.thp = v; }

static const struct opt_desc table[] = {
	{"mmap_threshold", 4096, 1u << 30, set_threshold},
	{"heap_prealloc", 4096, 1u << 30, set_prealloc},
	{"zero", 0, 1, set_zero},
	{"junk", 0, 1, set_junk},
	{"check", 1, 2, set_check},
	{"cache", 0, 1, set_cache},
	{"stats", 0, 1, set_stats},
	{"thp", 0, 1, set_thp},
};

static void apply(const char *item, size_t len)
{
	const char *eq = memchr(item, '=', len);
	size_t nlen = eq ? (size_t)(eq - item) : len;
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
		const struct opt_desc *d = &table[i];
		if (strlen(d->name) != nlen || memcmp(d->name, item, nlen))
			continue;
		size_t v;
		if (!eq || !parse_size(eq + 1, len - nlen - 1, d->max, &v) ||
		    v < d->min)
			warn("bad value, default kept:", item, len);
		else
			d->set(v);
		return;
	}
	warn("unknown option ignored:", item, len);
}

void osa_options_init(void)
{
#ifdef HAVE_SECURE_GETENV
	const char *env = secure_getenv("OSALLOC_OPTIONS");
#else
	const char *env = getenv("OSALLOC_OPTIONS");
#endif
	if (!env)
		return;
	while (*env) {
		size_t len = strcspn(env, ",");
		if (len)
			apply(env, len);
		env += len;
		if (*env == ',')
			env++;
	}
	/* Page-granular values keep every mapping computation exact. */
	osa_opt.heap_prealloc = osa_align_up(osa_opt.heap_prealloc, OSA_PAGE);
}
