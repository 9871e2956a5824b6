#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_ops (tests/fuzz/corpus/).

Each operation is 4 bytes: opcode, slot, size selector (16 bits, big
endian).  The selector's top 3 bits pick a size class (see pick_size() in
fuzz_ops.c): 0 tiny, 1 boundary table, 2 small, 3 medium, 4 just under the
mmap threshold, 5 above it, 6 page edges, 7 impossible sizes.
"""
import os
import random
import struct

MALLOC, CALLOC, REALLOC, REALLOCARRAY, FREE, ALIGNED = 0, 3, 4, 6, 7, 10
USABLE, CHECK, ARM, VERIFY = 11, 12, 13, 14


def op(code, slot, cls, low):
    return struct.pack(">BBH", code, slot, (cls << 13) | (low & 0x1FFF))


def write(name, ops):
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "corpus", name)
    with open(path, "wb") as f:
        f.write(b"".join(ops))


os.makedirs(os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus"),
            exist_ok=True)

# Around the mmap threshold: 131071, 131072, 131073, then realloc across it.
write("threshold", [op(MALLOC, 0, 1, 37), op(MALLOC, 1, 1, 38),
                    op(MALLOC, 2, 1, 39), op(REALLOC, 0, 1, 39),
                    op(REALLOC, 1, 1, 36), op(REALLOC, 2, 2, 100),
                    op(CHECK, 0, 0, 0), op(FREE, 0, 0, 0),
                    op(FREE, 1, 0, 0), op(FREE, 2, 0, 0)])

# Every boundary size once, in slots 0..42, then free in another order.
write("edges", [op(MALLOC, i, 1, i) for i in range(43)] +
      [op(CHECK, 0, 0, 0)] + [op(FREE, (i * 7) % 43, 0, 0) for i in range(43)])

# A block grown from 1 byte to 1 MiB and shrunk back.
write("realloc-chain", [op(REALLOC, 5, 1, i) for i in range(1, 43)] +
      [op(REALLOC, 5, 1, i) for i in range(42, 0, -1)] + [op(FREE, 5, 0, 0)])

# Aligned allocations, every alignment, small and large.
write("aligned", [op(ALIGNED, i, 2 if i % 2 else 5, i * 37)
                  for i in range(28)] + [op(CHECK, 0, 0, 0)])

# calloc of every class, with overflowing products (opcode 0xF3).
write("calloc", [op(CALLOC, i, i % 7, i * 129) for i in range(30)] +
      [op(0xF3, 40, 2, 5), op(CALLOC, 41, 1, 0)])

# Impossible sizes through every call.
write("impossible", [op(MALLOC, 1, 7, i) for i in range(4)] +
      [op(MALLOC, 2, 2, 10), op(REALLOC, 2, 7, 0), op(REALLOC, 2, 7, 3),
       op(0xE6, 2, 2, 0xFF), op(ALIGNED, 3, 7, 1), op(CALLOC, 4, 7, 2),
       op(VERIFY, 2, 0, 0)])

# Injected OS failures before allocations of every class.
ops = []
for cls in (2, 3, 4, 5, 6):
    ops += [op(ARM, 0, 0, 0x11 + cls * 16), op(MALLOC, cls, cls, 77),
            op(REALLOC, cls, 5, 900), op(CHECK, 0, 0, 0)]
write("faults", ops)

# Small blocks churned in a few slots (thread-cache paths).
write("churn", [op(MALLOC if i % 3 else FREE, i % 5, 2, i * 13)
                for i in range(120)])

# Deterministic noise.
rng = random.Random(1)
write("random-1", [bytes(rng.randrange(256) for _ in range(4))
                   for _ in range(200)])
write("random-2", [bytes(rng.randrange(256) for _ in range(4))
                   for _ in range(60)])
