// cxx-test.cc - C++ new and delete under the drop-in malloc.
//
// Copyright (c) 2026 The libosalloc developers.  MIT licence (see COPYING).
//
// Compiled and run by tests/dropin/run.sh when a C++ compiler is there,
// under LD_PRELOAD of libosalloc-malloc.  libstdc++'s operator new calls
// malloc, aligned new calls aligned_alloc, delete calls free: so every case
// here runs on libosalloc.  "cxx-test" checks containers, strings, aligned
// and nothrow new, and bad_alloc; "cxx-test double-delete" deletes twice and
// must die with "osalloc: free(): double free: 0x...".
#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

#define CHECK(cond)                                                         \
	do {                                                                \
		if (!(cond)) {                                              \
			std::fprintf(stderr, "FAIL: %s:%d: %s\n", __FILE__, \
			             __LINE__, #cond);                      \
			std::exit(1);                                       \
		}                                                           \
	} while (0)

struct alignas(256) Wide {
	unsigned char bytes[300];
};

static bool from_osalloc(const char *name)
{
	Dl_info info;
	void *sym = dlsym(RTLD_DEFAULT, name);
	return sym && dladdr(sym, &info) && info.dli_fname &&
	       std::strstr(info.dli_fname, "libosalloc-malloc") != nullptr;
}

static void work(int seed)
{
	std::vector<std::string> v;
	for (int i = 0; i < 5000; i++)
		v.push_back(
		    std::string(static_cast<size_t>(i % 200), 'a' + seed % 26));
	std::map<int, std::vector<int>> m;
	for (int i = 0; i < 2000; i++)
		m[i].resize(static_cast<size_t>(i % 50));
	for (int i = 0; i < 5000; i++)
		CHECK(v[static_cast<size_t>(i)].size() ==
		      static_cast<size_t>(i % 200));
	std::unique_ptr<int[]> big(new int[100000]());
	CHECK(big[99999] == 0);
}

int main(int argc, char **argv)
{
	CHECK(from_osalloc("malloc") && from_osalloc("free") &&
	      from_osalloc("aligned_alloc"));

	if (argc > 1 && std::strcmp(argv[1], "double-delete") == 0) {
		int *volatile p = new int(5);
		std::printf("%p\n", static_cast<void *>(p));
		std::fflush(stdout);
		delete p;
		delete p;
		std::fprintf(stderr, "FAIL: double delete not detected\n");
		return 1;
	}

	work(0);

	// Over-aligned types go through aligned new (aligned_alloc).
	Wide *w = new Wide;
	CHECK(reinterpret_cast<std::uintptr_t>(w) % 256 == 0);
	delete w;
	Wide *wa = new Wide[10];
	CHECK(reinterpret_cast<std::uintptr_t>(wa) % 256 == 0);
	delete[] wa;

	// nothrow new of an impossible size gives nullptr; plain new throws.
	volatile std::size_t huge = SIZE_MAX / 2;
	char *volatile n = new (std::nothrow) char[huge];
	CHECK(n == nullptr);
	bool threw = false;
	try {
		// volatile: the compiler may not elide the new-delete pair.
		char *volatile t = new char[huge];
		t[0] = 1;
		delete[] t;
	} catch (const std::bad_alloc &) {
		threw = true;
	}
	CHECK(threw);

	// Threads: each allocates, and exits holding nothing.
	std::vector<std::thread> ts;
	for (int i = 0; i < 4; i++)
		ts.emplace_back(work, i + 1);
	for (auto &t : ts)
		t.join();
	return 0;
}
