# The gdb commands: `heap` and its subcommands stats, dump, analyze, examine,
# sampled and pprof, their argument parsing and their output. register()
# (called by tools/gdb/assay.py) defines them in gdb.

import collections
import os
import re
import struct

import gdb

from .inferior import MAX_WARNINGS_SHOWN, Memory, WalkError, commas, source_name
from .layout import Layout
from .pprof import build_pprof, write_pprof
from .symbols import Symbolizer, file_mappings
from .walk import Heap, read_sampled


def parse_size(text):
    m = re.match(r"^(0x[0-9a-fA-F]+|\d+)([kKmMgG]?)$", text)
    if not m:
        raise WalkError("bad size '%s' (a byte count, e.g. 32, 0x20 or 300k)" % text)
    n = int(m.group(1), 0)
    return n << {"": 0, "k": 10, "m": 20, "g": 30}[m.group(2).lower()]


def _walk(quiet=False):
    mem = Memory()
    layout = Layout(mem)
    if not quiet:
        gdb.write("assay heap walker: layout version %d at 0x%x, %d size classes, %d MiB segments "
                  "of %d x %d KiB slices\n" % (layout.version, layout.address, layout.num_classes - 1,
                                               layout.segment_size >> 20, layout.slices_per_segment,
                                               layout.slice_size >> 10))
    return Heap(mem, layout, quiet=quiet)


def cmd_stats(args):
    if len(args) > 1:
        raise WalkError("usage: heap stats [SIZE]")
    size_arg = parse_size(args[0]) if args else None
    gdb.write("\nAssay Heap Analysis\n-------------------\n")
    heap = _walk()
    blocks, size = heap.select(size_arg)
    by_size = collections.OrderedDict()
    for b in sorted(heap.blocks, key=lambda b: b.size):
        n = by_size.setdefault(b.size, [0, 0])
        n[0] += 1
        n[1] += b.size
    total_n = len(heap.blocks)
    total_b = sum(b.size for b in heap.blocks)
    gdb.write("\nHeap allocation distribution (by size)\n")
    gdb.write("=================================================\n")
    for s, (n, nbytes) in by_size.items():
        if size is not None and s != size:
            continue
        gdb.write("%8s bytes * %10s allocs (%2d%%) = %13s bytes (%2d%%)\n"
                  % (s, commas(n), 100 * n // max(1, total_n),
                     commas(nbytes), 100 * nbytes // max(1, total_b)))
    if size is not None and not blocks:
        gdb.write("%8s bytes: no live blocks\n" % commas(size))
    gdb.write("\nHeap: %s allocs (%s bytes)\n" % (commas(total_n), commas(total_b)))
    gdb.write("Total VM allocated by heap: %s bytes (In-use by application: %s)\n"
              % (commas(heap.vm_bytes()), commas(total_b)))
    heap.print_warnings()


def cmd_dump(args):
    if len(args) == 1:
        size_arg, out = None, args[0]
    elif len(args) == 2:
        size_arg, out = parse_size(args[0]), args[1]
    else:
        raise WalkError("usage: heap dump [SIZE] DIR")
    heap = _walk()
    blocks, _ = heap.select(size_arg)
    os.makedirs(out, exist_ok=True)
    total = 0
    failed = 0
    for b in blocks:
        path = os.path.join(out, "0x%x.bin" % b.addr)
        try:
            with open(path, "wb") as f:
                for piece in heap.mem.read_big(b.addr, b.size):
                    f.write(piece)
            total += b.size
        except gdb.MemoryError:
            failed += 1
            os.unlink(path)
    gdb.write("Wrote %s blocks (%s bytes) to %s\n" % (commas(len(blocks) - failed), commas(total), out))
    if failed:
        gdb.write("%d blocks could not be read (not in the core?)\n" % failed)
    heap.print_warnings()


_PRINTABLE = frozenset(range(0x20, 0x7F)) | {0x09, 0x0A, 0x0D}
ANALYZE_MAX = 1 << 20  # bytes of a block analyzed (the rest of a huge block is not read)


def classify(heap, data, size):
    """A guess for a block's contents: (kind, text)."""
    if not data.strip(b"\0"):
        return "zeroes", "zeroes"
    nul = data.find(b"\0")
    if nul >= 2 and all(c in _PRINTABLE for c in data[:nul]):
        s = data[:nul].decode("ascii")
        shown = s if len(s) <= 64 else s[:61] + "..."
        return "C string", "C string: %r" % shown
    n = len(data) // 8
    if n:
        words = struct.unpack("<%dQ" % n, data[:8 * n])
        k = sum(1 for w in words if w and heap.in_heap(w))
        if k:
            return "pointer array", "pointer array (%d/%d point into the heap)" % (k, n)
    return "binary", "binary"


def cmd_analyze(args):
    if len(args) > 1:
        raise WalkError("usage: heap analyze [SIZE]")
    size_arg = parse_size(args[0]) if args else None
    heap = _walk()
    blocks, _ = heap.select(size_arg)
    counts = collections.Counter()
    gdb.write("\n")
    for b in blocks:
        try:
            data = heap.mem.read(b.addr, min(b.size, ANALYZE_MAX))
        except gdb.MemoryError:
            counts["unreadable"] += 1
            gdb.write("0x%x (%s bytes): unreadable\n" % (b.addr, commas(b.size)))
            continue
        kind, text = classify(heap, data, b.size)
        counts[kind] += 1
        gdb.write("0x%x (%s bytes): %s\n" % (b.addr, commas(b.size), text))
    gdb.write("\nSummary of %s blocks:\n" % commas(len(blocks)))
    for kind in ("C string", "pointer array", "zeroes", "binary", "unreadable"):
        if counts[kind] or kind != "unreadable":
            gdb.write("  %-14s %10s\n" % (kind, commas(counts[kind])))
    heap.print_warnings()


EXAMINE_WORDS = 8


def cmd_examine(args):
    if len(args) > 1:
        raise WalkError("usage: heap examine [SIZE]")
    size_arg = parse_size(args[0]) if args else None
    heap = _walk()
    blocks, _ = heap.select(size_arg)
    sym = Symbolizer()
    code = file_mappings()

    def annotate(w):
        if w and heap.in_heap(w):
            return " [heap]"
        if w >= 0x1000 and any(lo <= w < hi for lo, hi, _, _ in code):
            name, off, _ = sym.lookup(w)
            if name:
                return " <%s%s>" % (name, "+%d" % off if off else "")
        return ""

    gdb.write("\n")
    marked = 0
    for b in blocks:
        n = min(EXAMINE_WORDS, b.size // 8)
        try:
            data = heap.mem.read(b.addr, 8 * n)
        except gdb.MemoryError:
            gdb.write("0x%x (%s bytes): unreadable\n" % (b.addr, commas(b.size)))
            continue
        words = struct.unpack("<%dQ" % n, data)
        gdb.write("0x%x (%s bytes, %s):\n" % (b.addr, commas(b.size), b.kind))
        for i in range(0, n, 2):
            cells = []
            for w in words[i:i + 2]:
                a = annotate(w)
                marked += a == " [heap]"
                cells.append("0x%x%s" % (w, a))
            gdb.write("0x%x:\t%s\n" % (b.addr + 8 * i, "\t".join(cells)))
    gdb.write("\n%s blocks shown, %s words point into the heap ([heap])\n" % (commas(len(blocks)), commas(marked)))
    heap.print_warnings()


def cmd_sampled(args):
    if len(args) > 1:
        raise WalkError("usage: heap sampled [N]   (top N stacks, default 20; 0: all)")
    top = parse_size(args[0]) if args else 20
    mem = Memory()
    layout = Layout(mem)
    warnings = []
    try:
        stacks, rate = read_sampled(mem, layout, warnings)
    except gdb.MemoryError as e:
        raise WalkError("cannot read the profiler's entry table (%s)" % e)
    sym = Symbolizer()
    nblocks = sum(s.blocks for s in stacks)
    est_b = sum(s.bytes for s in stacks)
    est_o = sum(s.objects for s in stacks)
    rate_text = ("sampling rate %s byte%s" % (commas(rate), "" if rate == 1 else "s")
                 if rate else "profiling is off")
    gdb.write("Sampled live blocks (profiler entry table): %s blocks from %s stacks, %s\n"
              % (commas(nblocks), commas(len(stacks)), rate_text))
    gdb.write("Estimated live heap: %s bytes in %s objects\n" % (commas(round(est_b)), commas(round(est_o))))
    if not stacks:
        gdb.write("(no live sampled blocks: profiling is off, or nothing sampled is live)\n")
    shown = stacks if top == 0 else stacks[:top]
    for i, st in enumerate(shown):
        objs = round(st.objects)
        gdb.write("\n[%d] %s bytes (est.) in %s object%s (est.) from %s sampled block%s "
                  "(%s bytes requested, %s usable)\n"
                  % (i + 1, commas(round(st.bytes)), commas(objs), "" if objs == 1 else "s",
                     commas(st.blocks), "" if st.blocks == 1 else "s",
                     commas(st.requested), commas(st.usable)))
        for j, ret in enumerate(st.frames):
            gdb.write("    #%-2d 0x%016x %s\n" % (j, ret, sym.describe(ret - 1)))
    if len(shown) < len(stacks):
        gdb.write("\n(%d more stacks: `heap sampled 0` shows all)\n" % (len(stacks) - len(shown)))
    if warnings:
        gdb.write("\n%d warnings:\n" % len(warnings))
        for w in warnings[:MAX_WARNINGS_SHOWN]:
            gdb.write("  %s\n" % w)


def cmd_pprof(args):
    if len(args) != 1:
        raise WalkError("usage: heap pprof FILE")
    path = args[0]
    mem = Memory()
    layout = Layout(mem)
    warnings = []
    try:
        stacks, rate = read_sampled(mem, layout, warnings)
    except gdb.MemoryError as e:
        raise WalkError("cannot read the profiler's entry table (%s)" % e)
    prof = build_pprof(stacks, rate, Symbolizer(), source_name())
    write_pprof(prof, path)
    gdb.write("Wrote %s: %s samples (stacks) of %s sampled blocks, %s locations, %s functions, "
              "%s mappings; period %s\n"
              % (path, commas(len(prof.sample)), commas(sum(s.blocks for s in stacks)),
                 commas(len(prof.location)), commas(len(prof.function)), commas(len(prof.mapping)),
                 commas(rate)))
    for w in warnings[:MAX_WARNINGS_SHOWN]:
        gdb.write("  warning: %s\n" % w)


HELP = """Walk the assay heap (live process or core file; no debug info needed).

heap stats [SIZE]      live blocks by size (default command)
heap dump [SIZE] DIR   write each live block to DIR/<address>.bin
heap analyze [SIZE]    guess each live block's contents: C string, pointer array, zeroes, binary
heap examine [SIZE]    the first 8 words of each live block, as `x /8a`, heap pointers marked
heap sampled [N]       the profiler's live sampled blocks by stack, top N (default 20; 0: all)
heap pprof FILE        the live sampled blocks as a gzipped pprof heap profile

SIZE is a block size (32, 0x20, 300k); a request size selects the blocks serving it.
Everything is read through the exported descriptor `assay_layout` (base/layout.h)."""


class _Sub(gdb.Command):
    def __init__(self, name, fn, doc):
        self.__doc__ = doc
        super(_Sub, self).__init__("heap " + name, gdb.COMMAND_DATA)
        self.fn = fn

    def invoke(self, arg, from_tty):
        self.dont_repeat()
        self.fn(gdb.string_to_argv(arg))


class _Heap(gdb.Command):
    __doc__ = HELP

    def __init__(self):
        super(_Heap, self).__init__("heap", gdb.COMMAND_DATA, gdb.COMPLETE_NONE, True)

    def invoke(self, arg, from_tty):
        self.dont_repeat()
        argv = gdb.string_to_argv(arg)
        if argv:
            raise gdb.GdbError("heap: unknown subcommand '%s'\n%s" % (argv[0], HELP))
        cmd_stats([])


def register():
    """Defines `heap` and its subcommands in gdb (again: a later definition
    replaces an earlier one, so sourcing assay.py twice is harmless)."""
    _Heap()
    _Sub("stats", cmd_stats, "Live blocks by size: heap stats [SIZE]")
    _Sub("dump", cmd_dump, "Write each live block to DIR/<address>.bin: heap dump [SIZE] DIR")
    _Sub("analyze", cmd_analyze, "Guess each live block's contents: heap analyze [SIZE]")
    _Sub("examine", cmd_examine, "The first 8 words of each live block: heap examine [SIZE]")
    _Sub("sampled", cmd_sampled, "The profiler's live sampled blocks by stack: heap sampled [N]")
    _Sub("pprof", cmd_pprof,
         "The live sampled blocks as a gzipped pprof heap profile: heap pprof FILE")
