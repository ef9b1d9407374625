# assay heap walker for gdb: `source tools/gdb/assay.py`, then `heap ...`.
#
# Works on a live process and on a core file of a release build: it needs no
# debug information. Everything it knows about the allocator comes from the
# exported descriptor `assay_layout` (base/layout.h), read as raw memory: the
# geometry, the addresses of the allocator's roots and the offsets of every
# field it follows. A descriptor of another version is refused, never misread.
#
# Commands (see tools/gdb/README.md):
#   heap stats [SIZE]        live blocks by size, in the table format of the
#                            2011 jemalloc heap walker
#   heap dump [SIZE] DIR     each live block to DIR/<address>.bin
#   heap analyze [SIZE]      a guess per live block: C string, pointer array,
#                            zeroes or binary
#   heap examine [SIZE]      the first 8 words of each live block, as `x /8a`,
#                            heap pointers marked
#   heap sampled [N]         the profiler's live sampled blocks by stack (top
#                            N stacks, default 20; 0: all)
#   heap pprof FILE          the same as a gzipped pprof heap profile
#
# Field widths are fixed by the layout version (version 1: free_mask, huge
# capacity and pointers 64-bit; bump, class size, list and batch counts,
# nbatches and stack depth 32-bit; kind, class, first and slices 8-bit;
# weights IEEE doubles), the offsets come from the descriptor.

import gdb

import collections
import gzip
import importlib.util
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time

WALKER_LAYOUT_VERSION = 2
LAYOUT_MAGIC = 0x4C59414C59415341  # "ASAYLAYL"

# The fields of struct AssayLayout, version 2, in order (all uint64).
LAYOUT_FIELDS = (
    "magic version size "
    "segment_size slice_size slices_per_segment page_size "
    "num_classes max_small_size max_large_size "
    "classes_addr class_record_size class_size_off "
    "segment_head_addr "
    "seg_next_off seg_free_mask_off seg_spans_off "
    "span_size span_free_list_off span_bump_off span_used_off span_kind_off span_cls_off "
    "span_first_off span_slices_off span_sampled_off "
    "span_kind_small span_kind_large span_kind_sampled "
    "central_addr central_pools central_record_size central_nbatches_off "
    "central_batches_off batch_record_size batch_head_off batch_count_off "
    "thread_cache_head_addr "
    "tc_lists_off freelist_record_size freelist_head_off freelist_count_off tc_next_off "
    "tc_thread_id_off "
    "huge_table_addr huge_capacity_addr "
    "huge_record_size huge_ptr_off huge_base_off huge_map_size_off huge_sampled_off "
    "entry_shards_addr entry_shard_count entry_shard_size entry_buckets_off "
    "entry_nbuckets_off "
    "entry_address_off entry_requested_off entry_usable_off entry_alignment_off "
    "entry_points_off entry_stack_off entry_thread_off entry_weight_objects_off "
    "entry_weight_bytes_off entry_next_off "
    "stack_depth_off stack_frames_off "
    "sampling_rate_addr "
    "profiler_session_addr central_batch_slots "
    "huge_cache_addr huge_cache_count_addr huge_cache_record_size huge_cache_base_off "
    "huge_cache_size_off"
).split()

MAX_STACK_DEPTH = 256  # MALLOC_PROF depth is 1..256
MAX_WARNINGS_SHOWN = 10

_SCRIPT_FILE = globals().get("__file__")


class WalkError(gdb.GdbError):
    pass


def _commas(n):
    return "{:,}".format(int(n))


# ---------------------------------------------------------------- memory


class Memory(object):
    """Reads of the inferior's memory, cached in 64 KiB chunks (segment
    headers and small blocks are read many times). One per command: a live
    process moves on between commands."""

    CHUNK = 1 << 16
    MAX_CHUNKS = 4096  # 256 MiB of cache at most

    def __init__(self):
        self.inferior = gdb.selected_inferior()
        self.cache = {}

    def read(self, addr, n):
        if n <= 0:
            return b""
        if addr < 0 or addr + n > (1 << 64):
            raise gdb.MemoryError("address 0x%x out of range" % addr)
        chunk = self.CHUNK
        first = addr & ~(chunk - 1)
        last = (addr + n - 1) & ~(chunk - 1)
        if last - first >= 4 * chunk:
            return bytes(self.inferior.read_memory(addr, n))
        parts = []
        for c in range(first, last + chunk, chunk):
            data = self.cache.get(c)
            if data is None:
                if len(self.cache) >= self.MAX_CHUNKS:
                    self.cache.clear()
                try:
                    data = bytes(self.inferior.read_memory(c, chunk))
                except gdb.MemoryError:
                    data = False  # partly unmapped: read exactly what is asked
                self.cache[c] = data
            if data is False:
                return bytes(self.inferior.read_memory(addr, n))
            parts.append(data)
        buf = parts[0] if len(parts) == 1 else b"".join(parts)
        off = addr - first
        return buf[off:off + n]

    def read_big(self, addr, n, piece=1 << 20):
        """Yields the n bytes at addr in pieces (for huge blocks)."""
        done = 0
        while done < n:
            k = min(piece, n - done)
            yield bytes(self.inferior.read_memory(addr + done, k))
            done += k

    def u8(self, addr):
        return self.read(addr, 1)[0]

    def u32(self, addr):
        return struct.unpack("<I", self.read(addr, 4))[0]

    def u64(self, addr):
        return struct.unpack("<Q", self.read(addr, 8))[0]

    def f64(self, addr):
        return struct.unpack("<d", self.read(addr, 8))[0]


# ---------------------------------------------------------------- layout


def _layout_address():
    try:
        return int(gdb.parse_and_eval("(unsigned long)&assay_layout"))
    except gdb.error:
        pass
    sym = gdb.lookup_global_symbol("assay_layout")
    if sym is not None:
        return int(sym.value().address)
    raise WalkError(
        "assay_layout not found: this program does not run on assay (link libassay "
        "or run it with LD_PRELOAD=libassay.so), or its shared libraries are not loaded "
        "(for a core: gdb PROGRAM CORE, with the libraries at their recorded paths)")


class Layout(object):
    def __init__(self, mem):
        if not gdb.selected_inferior().pid and not gdb.selected_inferior().threads():
            raise WalkError("no process or core file: run the program, attach to it or load a core")
        self.address = _layout_address()
        try:
            head = mem.read(self.address, 24)
        except gdb.MemoryError:
            raise WalkError("cannot read assay_layout at 0x%x" % self.address)
        magic, version, size = struct.unpack("<QQQ", head)
        hint = ""
        if _source_name().startswith("core"):
            hint = (" (or gdb loaded another build of the library than the core was made with: "
                    "see gdb's 'Build-id ... does not match core file' warnings)")
        if magic == 0:
            raise WalkError("assay_layout at 0x%x is not filled yet: the allocator has not "
                            "initialised (no allocation happened yet)%s" % (self.address, hint))
        if magic != LAYOUT_MAGIC:
            raise WalkError("assay_layout at 0x%x has magic 0x%016x, not 0x%016x: not an assay "
                            "layout descriptor, or a corrupt one%s"
                            % (self.address, magic, LAYOUT_MAGIC, hint))
        if version != WALKER_LAYOUT_VERSION:
            raise WalkError("assay layout version %d, this walker understands %d: use the "
                            "tools/gdb/assay.py of the assay that built this program"
                            % (version, WALKER_LAYOUT_VERSION))
        need = 8 * len(LAYOUT_FIELDS)
        if size < need:
            raise WalkError("assay layout version %d has %d bytes, fewer than the %d this walker "
                            "reads: corrupt descriptor" % (version, size, need))
        values = struct.unpack("<%dQ" % len(LAYOUT_FIELDS), mem.read(self.address, need))
        for name, value in zip(LAYOUT_FIELDS, values):
            setattr(self, name, value)
        if not (0 < self.num_classes < 256 and self.slices_per_segment <= 64 and
                self.segment_size == self.slice_size * self.slices_per_segment):
            raise WalkError("assay_layout at 0x%x has implausible geometry: corrupt descriptor"
                            % self.address)
        table = mem.read(self.classes_addr, self.num_classes * self.class_record_size)
        self.class_sizes = [
            struct.unpack_from("<I", table, c * self.class_record_size + self.class_size_off)[0]
            for c in range(self.num_classes)]


# ---------------------------------------------------------------- the walk


class Block(object):
    __slots__ = ("addr", "size", "kind", "cls")

    def __init__(self, addr, size, kind, cls=0):
        self.addr = addr
        self.size = size
        self.kind = kind
        self.cls = cls


class Heap(object):
    """The result of one walk: live blocks, free blocks, segments, huge maps."""

    def __init__(self, mem, layout, quiet=False):
        self.mem = mem
        self.L = layout
        self.quiet = quiet
        self.warnings = []
        self.free = set()
        self.blocks = []
        self.segments = []
        self.huge = []  # (ptr, base, map_size, sampled)
        self.tc_count = 0
        self.tc_free = 0
        self.central_free = 0
        self.span_free = 0
        self._walk()

    def warn(self, msg):
        self.warnings.append(msg)

    def say(self, msg, end="\n"):
        if not self.quiet:
            gdb.write(msg + end)
            gdb.flush()

    def _walk_list(self, head, bound, what, into):
        """Adds the blocks of a list linked through first words to `into`;
        returns how many. Stops at `bound`, a repeat or unreadable memory."""
        n = 0
        p = head
        mem = self.mem
        while p:
            if n >= bound:
                self.warn("%s: longer than its bound %d (corrupt list?); stopped there" % (what, bound))
                break
            if p in into or p in self.free:
                self.warn("%s: block 0x%x is on a list twice (corrupt list?); stopped there" % (what, p))
                break
            into.add(p)
            n += 1
            try:
                p = mem.u64(p)
            except gdb.MemoryError:
                self.warn("%s: cannot read block 0x%x; stopped there" % (what, p))
                break
        return n

    def _walk_thread_caches(self):
        L, mem = self.L, self.mem
        tc = mem.u64(L.thread_cache_head_addr)
        seen = set()
        while tc and tc not in seen:
            seen.add(tc)
            try:
                lists = mem.read(tc + L.tc_lists_off, L.num_classes * L.freelist_record_size)
                tid = mem.u64(tc + L.tc_thread_id_off)
            except gdb.MemoryError:
                self.warn("thread cache 0x%x: unreadable; the rest of the list is lost" % tc)
                break
            for cls in range(1, L.num_classes):
                rec = cls * L.freelist_record_size
                head = struct.unpack_from("<Q", lists, rec + L.freelist_head_off)[0]
                count = struct.unpack_from("<I", lists, rec + L.freelist_count_off)[0]
                if not head:
                    continue
                what = "thread %d cache, class %d" % (tid, L.class_sizes[cls])
                n = self._walk_list(head, count + 16, what, self.free)
                self.tc_free += n
                if n != count:
                    self.warn("%s: count says %d blocks, the list has %d" % (what, count, n))
            try:
                tc = mem.u64(tc + L.tc_next_off)
            except gdb.MemoryError:
                self.warn("thread cache 0x%x: cannot read its next link" % tc)
                break
        self.tc_count = len(seen)

    def _walk_central(self):
        L, mem = self.L, self.mem
        slots = L.central_batch_slots
        for pool in range(L.central_pools):
            for cls in range(1, L.num_classes):
                rec = L.central_addr + (pool * L.num_classes + cls) * L.central_record_size
                nb = mem.u32(rec + L.central_nbatches_off)
                if nb == 0:
                    continue
                what = "central list %s, class %d" % ("sampled" if pool else "normal", L.class_sizes[cls])
                if nb > slots:
                    self.warn("%s: %d batches, more than its %d slots; reading %d" % (what, nb, slots, slots))
                    nb = slots
                for b in range(nb):
                    brec = rec + L.central_batches_off + b * L.batch_record_size
                    head = mem.u64(brec + L.batch_head_off)
                    count = mem.u32(brec + L.batch_count_off)
                    n = self._walk_list(head, count + 16, "%s, batch %d" % (what, b), self.free)
                    self.central_free += n
                    if n != count:
                        self.warn("%s, batch %d: count says %d blocks, the list has %d"
                                  % (what, b, count, n))

    def _walk_segment(self, seg):
        L, mem = self.L, self.mem
        free_mask = mem.u64(seg + L.seg_free_mask_off)
        i = 1
        while i < L.slices_per_segment:
            if (free_mask >> i) & 1:
                i += 1
                continue
            span = seg + L.seg_spans_off + i * L.span_size
            rec = mem.read(span, L.span_size)
            kind = rec[L.span_kind_off]
            first = rec[L.span_first_off]
            slices = rec[L.span_slices_off]
            if slices == 0 or first != i or i + slices > L.slices_per_segment:
                self.warn("segment 0x%x slice %d: span with first %d and %d slices (corrupt "
                          "header?); skipped one slice" % (seg, i, first, slices))
                i += 1
                continue
            start = seg + first * L.slice_size
            span_bytes = slices * L.slice_size
            if kind == L.span_kind_small or kind == L.span_kind_sampled:
                cls = rec[L.span_cls_off]
                if not 0 < cls < L.num_classes:
                    self.warn("segment 0x%x slice %d: small span of class %d; skipped" % (seg, i, cls))
                    i += slices
                    continue
                size = L.class_sizes[cls]
                bump = struct.unpack_from("<I", rec, L.span_bump_off)[0]
                if bump > span_bytes:
                    self.warn("segment 0x%x slice %d: bump %d beyond the span's %d bytes"
                              % (seg, i, bump, span_bytes))
                    bump = span_bytes
                carved = bump // size
                head = struct.unpack_from("<Q", rec, L.span_free_list_off)[0]
                span_free = set()
                if head:
                    what = "span 0x%x (class %d)" % (start, size)
                    self.span_free += self._walk_list(head, carved, what, span_free)
                    end = start + carved * size
                    for p in span_free:
                        if not (start <= p < end and (p - start) % size == 0):
                            self.warn("%s: free list holds 0x%x, not one of its blocks" % (what, p))
                kname = "sampled" if kind == L.span_kind_sampled else "small"
                free = self.free
                blocks = self.blocks
                for a in range(start, start + carved * size, size):
                    if a not in free and a not in span_free:
                        blocks.append(Block(a, size, kname, cls))
            elif kind == L.span_kind_large:
                self.blocks.append(Block(start, span_bytes, "large"))
            else:
                self.warn("segment 0x%x slice %d: span of unknown kind %d (%d slices); skipped"
                          % (seg, i, kind, slices))
            i += slices

    def _walk_segments(self):
        L, mem = self.L, self.mem
        seg = mem.u64(L.segment_head_addr)
        seen = set()
        while seg and seg not in seen:
            seen.add(seg)
            if seg % L.segment_size:
                self.warn("segment list: 0x%x is not segment-aligned; stopped there" % seg)
                break
            try:
                self._walk_segment(seg)
                self.segments.append(seg)
                seg = mem.u64(seg + L.seg_next_off)
            except gdb.MemoryError as e:
                self.warn("segment 0x%x: unreadable (%s); the rest of the list is lost" % (seg, e))
                break

    def _walk_huge(self):
        L, mem = self.L, self.mem
        table = mem.u64(L.huge_table_addr)
        cap = mem.u64(L.huge_capacity_addr)
        if not table or not cap:
            return
        if cap > (1 << 26):
            self.warn("huge table: capacity %d is implausible; not read" % cap)
            return
        data = mem.read(table, cap * L.huge_record_size)
        for i in range(cap):
            r = i * L.huge_record_size
            ptr = struct.unpack_from("<Q", data, r + L.huge_ptr_off)[0]
            if not ptr:
                continue
            base = struct.unpack_from("<Q", data, r + L.huge_base_off)[0]
            size = struct.unpack_from("<Q", data, r + L.huge_map_size_off)[0]
            sampled = data[r + L.huge_sampled_off]
            if not (base <= ptr < base + size):
                self.warn("huge table slot %d: block 0x%x outside its mapping 0x%x+%d" % (i, ptr, base, size))
                continue
            self.huge.append((ptr, base, size, sampled))
            self.blocks.append(Block(ptr, base + size - ptr, "huge"))

    def _walk(self):
        try:
            self.say("Walking thread caches... ", end="")
            self._walk_thread_caches()
            self.say("DONE (%d caches, %s free blocks)." % (self.tc_count, _commas(self.tc_free)))
            self.say("Walking central transfer caches... ", end="")
            self._walk_central()
            self.say("DONE (%s free blocks)." % _commas(self.central_free))
            self.say("Walking segments... ", end="")
            self._walk_segments()
            self.say("DONE (%d segments, %s free blocks on spans)."
                     % (len(self.segments), _commas(self.span_free)))
            self.say("Walking huge blocks... ", end="")
            self._walk_huge()
            self.say("DONE (%d blocks)." % len(self.huge))
        except gdb.MemoryError as e:
            raise WalkError("cannot read the allocator's memory (%s): a core without the "
                            "heap's mappings, or a corrupt heap" % e)
        self.blocks.sort(key=lambda b: b.addr)
        self.seg_set = set(self.segments)
        self.huge_ranges = sorted((base, base + size) for _, base, size, _ in self.huge)

    def in_heap(self, p):
        L = self.L
        if (p & ~(L.segment_size - 1)) in self.seg_set:
            return True
        for lo, hi in self.huge_ranges:
            if lo <= p < hi:
                return True
        return False

    def vm_bytes(self):
        return (len(self.segments) * self.L.segment_size + sum(h[2] for h in self.huge)
                + self.huge_cached_bytes())

    def huge_cached_bytes(self):
        """Freed huge mappings kept for reuse: mapped, not in use."""
        L, mem = self.L, self.mem
        n = mem.u64(L.huge_cache_count_addr)
        if n > 64:
            self.warn("huge cache: %d entries is implausible; not counted" % n)
            return 0
        return sum(mem.u64(L.huge_cache_addr + i * L.huge_cache_record_size + L.huge_cache_size_off)
                   for i in range(n))

    def print_warnings(self):
        if not self.warnings:
            return
        gdb.write("\n%d warning%s while walking (a heap in mid-update or corrupt):\n"
                  % (len(self.warnings), "" if len(self.warnings) == 1 else "s"))
        for w in self.warnings[:MAX_WARNINGS_SHOWN]:
            gdb.write("  %s\n" % w)
        if len(self.warnings) > MAX_WARNINGS_SHOWN:
            gdb.write("  ... and %d more\n" % (len(self.warnings) - MAX_WARNINGS_SHOWN))

    def resolve_size(self, n):
        """The block size serving requests of n bytes (n itself if blocks of
        exactly n bytes are live)."""
        L = self.L
        if any(b.size == n for b in self.blocks):
            return n
        if n <= L.max_small_size:
            for s in L.class_sizes[1:]:
                if s >= n:
                    return s
        if n <= L.max_large_size:
            return -(-n // L.slice_size) * L.slice_size
        return -(-n // L.page_size) * L.page_size

    def select(self, size_arg):
        """(blocks, size) for an optional size argument."""
        if size_arg is None:
            return self.blocks, None
        size = self.resolve_size(size_arg)
        if size != size_arg:
            gdb.write("(blocks of %s bytes serve requests of %s bytes)\n" % (_commas(size), _commas(size_arg)))
        return [b for b in self.blocks if b.size == size], size


# ---------------------------------------------------------------- symbols


_INFO_SYMBOL = re.compile(r"^(?P<name>.*?)(?: \+ (?P<off>\d+))? in section (?P<sec>\S+)(?: of (?P<obj>.+))?$")


class Symbolizer(object):
    def __init__(self):
        self.cache = {}
        self.main = gdb.current_progspace().filename or ""

    def lookup(self, pc):
        """(name or None, offset, object file or None) of pc, via gdb's
        minimal symbols (no debug info needed)."""
        r = self.cache.get(pc)
        if r is not None:
            return r
        name, off, obj = None, 0, None
        try:
            out = gdb.execute("info symbol 0x%x" % pc, to_string=True).strip()
        except gdb.error:
            out = ""
        m = _INFO_SYMBOL.match(out.splitlines()[0]) if out else None
        if m:
            name = m.group("name")
            off = int(m.group("off") or 0)
            obj = m.group("obj")
        if obj is None:
            try:
                obj = gdb.current_progspace().solib_name(pc)
            except (gdb.error, TypeError):
                obj = None
            if obj is None and name is not None:
                obj = self.main
        r = (name, off, obj)
        self.cache[pc] = r
        return r

    def describe(self, pc):
        name, off, obj = self.lookup(pc)
        where = " in %s" % obj if obj else ""
        if name is None:
            return "??%s" % where
        return "%s%s%s" % (name, " + %d" % off if off else "", where)


def _file_mappings():
    """File-backed mappings of the inferior from `info proc mappings` (live
    process or core), consecutive pieces of one file merged:
    [(start, limit, offset, path)], the main program first."""
    try:
        out = gdb.execute("info proc mappings", to_string=True)
    except gdb.error:
        out = ""
    pieces = []
    for line in out.splitlines():
        t = line.split()
        if len(t) < 5 or not t[0].startswith("0x"):
            continue
        try:
            start, end, _size, off = (int(x, 16) for x in t[:4])
        except ValueError:
            continue
        rest = t[4:]
        if rest and re.match(r"^[r-][w-][x-][ps-]$", rest[0]):
            rest = rest[1:]
        path = " ".join(rest)
        if not path.startswith("/"):
            continue
        pieces.append([start, end, off, path])
    merged = []
    for p in pieces:
        if merged and merged[-1][3] == p[3] and merged[-1][1] == p[0]:
            merged[-1][1] = p[1]
        else:
            merged.append(p)
    if not merged:  # no NT_FILE note or no /proc: the shared libraries' text at least
        try:
            out = gdb.execute("info sharedlibrary", to_string=True)
        except gdb.error:
            out = ""
        for line in out.splitlines():
            t = line.split()
            if len(t) >= 4 and t[0].startswith("0x") and t[1].startswith("0x"):
                merged.append([int(t[0], 16), int(t[1], 16), 0, t[-1]])
    main = gdb.current_progspace().filename
    if main:
        real = os.path.realpath(main)
        merged.sort(key=lambda m: 0 if os.path.realpath(m[3]) == real else 1)
    return [tuple(m) for m in merged]


def _build_ids():
    ids = {}
    for o in gdb.objfiles():
        if getattr(o, "owner", None) is not None or not o.filename:
            continue
        bid = getattr(o, "build_id", None)
        if bid:
            ids[os.path.realpath(o.filename)] = bid
    return ids


# ---------------------------------------------------------------- sampled entries


class SampledStack(object):
    __slots__ = ("frames", "bytes", "objects", "blocks", "requested", "usable")

    def __init__(self, frames):
        self.frames = frames
        self.bytes = 0.0
        self.objects = 0.0
        self.blocks = 0
        self.requested = 0
        self.usable = 0


def read_sampled(mem, L, warnings):
    """Live sampled blocks from the profiler's entry table, by stack:
    (stacks sorted by estimated bytes, sampling rate)."""
    by_frames = {}
    stack_cache = {}
    total = 0
    for s in range(L.entry_shard_count):
        shard = L.entry_shards_addr + s * L.entry_shard_size
        buckets = mem.u64(shard + L.entry_buckets_off)
        nb = mem.u64(shard + L.entry_nbuckets_off)
        if not buckets or not nb:
            continue
        if nb > (1 << 28):
            warnings.append("entry shard %d: %d buckets is implausible; skipped" % (s, nb))
            continue
        heads = struct.unpack("<%dQ" % nb, mem.read(buckets, 8 * nb))
        seen = set()
        for head in heads:
            e = head
            while e:
                if e in seen:
                    warnings.append("entry shard %d: entry 0x%x twice (corrupt chain?)" % (s, e))
                    break
                seen.add(e)
                try:
                    stack = mem.u64(e + L.entry_stack_off)
                    wb = mem.f64(e + L.entry_weight_bytes_off)
                    wo = mem.f64(e + L.entry_weight_objects_off)
                    req = mem.u64(e + L.entry_requested_off)
                    usable = mem.u64(e + L.entry_usable_off)
                    nxt = mem.u64(e + L.entry_next_off)
                except gdb.MemoryError:
                    warnings.append("entry shard %d: entry 0x%x unreadable" % (s, e))
                    break
                frames = stack_cache.get(stack)
                if frames is None:
                    frames = ()
                    if stack:
                        try:
                            depth = mem.u32(stack + L.stack_depth_off)
                            if depth > MAX_STACK_DEPTH:
                                warnings.append("stack 0x%x: depth %d is implausible" % (stack, depth))
                                depth = 0
                            frames = struct.unpack("<%dQ" % depth, mem.read(stack + L.stack_frames_off, 8 * depth))
                        except gdb.MemoryError:
                            warnings.append("stack 0x%x unreadable" % stack)
                    stack_cache[stack] = frames
                agg = by_frames.get(frames)
                if agg is None:
                    agg = by_frames[frames] = SampledStack(frames)
                agg.bytes += wb
                agg.objects += wo
                agg.blocks += 1
                agg.requested += req
                agg.usable += usable
                total += 1
                e = nxt
    rate = mem.u64(L.sampling_rate_addr) if L.sampling_rate_addr else 0
    if not mem.u64(L.profiler_session_addr):
        rate = 0  # profiling off: no rate in force (entries may remain from a stopped session)
    stacks = sorted(by_frames.values(), key=lambda a: (-a.bytes, -a.blocks))
    return stacks, rate


# ---------------------------------------------------------------- pprof


_pb2 = None


def _load_profile_pb2():
    """The Python classes of proto/profile.proto. Looked up in order:
    $ASSAY_PROTO_PY (the profile_pb2.py file or its directory),
    $ASSAY_BUILD_DIR/proto, build/proto of this source tree (the default
    build directory, where CMake generates it), and failing those generated
    now with protoc into a temporary directory."""
    global _pb2
    if _pb2 is not None:
        return _pb2
    if "assay_profile_pb2" in sys.modules:
        _pb2 = sys.modules["assay_profile_pb2"]
        return _pb2
    try:
        import google.protobuf  # noqa: F401
    except ImportError:
        raise WalkError("heap pprof needs google.protobuf for gdb's python %d.%d "
                        "(Debian: apt-get install python3-protobuf)" % sys.version_info[:2])
    candidates = []
    env = os.environ.get("ASSAY_PROTO_PY")
    if env:
        candidates.append(env if env.endswith(".py") else os.path.join(env, "profile_pb2.py"))
    if os.environ.get("ASSAY_BUILD_DIR"):
        candidates.append(os.path.join(os.environ["ASSAY_BUILD_DIR"], "proto", "profile_pb2.py"))
    root = None
    if _SCRIPT_FILE:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(_SCRIPT_FILE))))
        candidates.append(os.path.join(root, "build", "proto", "profile_pb2.py"))
    path = next((c for c in candidates if os.path.isfile(c)), None)
    if path is None:
        proto = os.path.join(root, "proto", "profile.proto") if root else None
        protoc = shutil.which("protoc")
        if not proto or not os.path.isfile(proto) or not protoc:
            raise WalkError("profile_pb2.py not found (tried: %s); build the project (CMake "
                            "generates build/proto/profile_pb2.py) and set ASSAY_PROTO_PY to it"
                            % ", ".join(candidates))
        out = tempfile.mkdtemp(prefix="assay-gdb-proto.")
        r = subprocess.run([protoc, "--python_out=" + out, "-I" + os.path.dirname(proto), proto],
                           capture_output=True, text=True)
        path = os.path.join(out, "profile_pb2.py")
        if r.returncode != 0 or not os.path.isfile(path):
            raise WalkError("protoc could not generate profile_pb2.py: %s" % r.stderr.strip())
    spec = importlib.util.spec_from_file_location("assay_profile_pb2", path)
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
    except Exception as e:  # a version mismatch between protoc and the runtime
        raise WalkError("cannot load %s: %s" % (path, e))
    sys.modules["assay_profile_pb2"] = mod
    _pb2 = mod
    return mod


def build_pprof(stacks, rate, symbolizer, source):
    pb2 = _load_profile_pb2()
    prof = pb2.Profile()
    strings = {}

    def idx(s):
        i = strings.get(s)
        if i is None:
            i = strings[s] = len(prof.string_table)
            prof.string_table.append(s)
        return i

    idx("")
    for t, u in (("alloc_objects", "count"), ("alloc_space", "bytes"),
                 ("inuse_objects", "count"), ("inuse_space", "bytes")):
        vt = prof.sample_type.add()
        vt.type = idx(t)
        vt.unit = idx(u)
    prof.default_sample_type = idx("inuse_space")
    prof.period_type.type = idx("space")
    prof.period_type.unit = idx("bytes")
    prof.period = rate
    prof.time_nanos = time.time_ns()
    prof.comment.append(idx("assay heap profile of the live sampled blocks, read by "
                            "tools/gdb/assay.py from %s" % source))

    mappings = _file_mappings()
    build_ids = _build_ids()
    for i, (start, limit, off, path) in enumerate(mappings):
        m = prof.mapping.add()
        m.id = i + 1
        m.memory_start = start
        m.memory_limit = limit
        m.file_offset = off
        m.filename = idx(path)
        bid = build_ids.get(os.path.realpath(path))
        if bid:
            m.build_id = idx(bid)
        m.has_functions = True

    def mapping_of(pc):
        for i, (start, limit, _, _) in enumerate(mappings):
            if start <= pc < limit:
                return i + 1
        return 0

    locations = {}
    functions = {}

    def location_of(ret):
        pc = ret - 1  # a return address: the call is one byte back
        lid = locations.get(pc)
        if lid is not None:
            return lid
        lid = locations[pc] = len(locations) + 1
        loc = prof.location.add()
        loc.id = lid
        loc.address = pc
        loc.mapping_id = mapping_of(pc)
        name, _, obj = symbolizer.lookup(pc)
        if name is not None:
            fid = functions.get(name)
            if fid is None:
                fid = functions[name] = len(functions) + 1
                f = prof.function.add()
                f.id = fid
                f.name = idx(name)
                f.system_name = idx(name)
                if obj:
                    f.filename = idx(obj)
            loc.line.add().function_id = fid
        return lid

    for st in stacks:
        s = prof.sample.add()
        for ret in st.frames:
            s.location_id.append(location_of(ret))
        objs = int(round(st.objects))
        nbytes = int(round(st.bytes))
        s.value.extend([objs, nbytes, objs, nbytes])
        lab = s.label.add()
        lab.key = idx("sampled_blocks")
        lab.num = st.blocks
    return prof


# ---------------------------------------------------------------- commands


def _parse_size(text):
    m = re.match(r"^(0x[0-9a-fA-F]+|\d+)([kKmMgG]?)$", text)
    if not m:
        raise WalkError("bad size '%s' (a byte count, e.g. 32, 0x20 or 300k)" % text)
    n = int(m.group(1), 0)
    return n << {"": 0, "k": 10, "m": 20, "g": 30}[m.group(2).lower()]


def _source_name():
    inf = gdb.selected_inferior()
    try:
        target = gdb.execute("info target", to_string=True)
    except gdb.error:
        target = ""
    m = re.search(r"Local core dump file:\s*\n\s*`([^']+)'", target)
    if m:
        return "core file %s" % m.group(1)
    return "process %d" % inf.pid


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
    size_arg = _parse_size(args[0]) if args else None
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
                  % (s, _commas(n), 100 * n // max(1, total_n),
                     _commas(nbytes), 100 * nbytes // max(1, total_b)))
    if size is not None and not blocks:
        gdb.write("%8s bytes: no live blocks\n" % _commas(size))
    gdb.write("\nHeap: %s allocs (%s bytes)\n" % (_commas(total_n), _commas(total_b)))
    gdb.write("Total VM allocated by heap: %s bytes (In-use by application: %s)\n"
              % (_commas(heap.vm_bytes()), _commas(total_b)))
    heap.print_warnings()


def cmd_dump(args):
    if len(args) == 1:
        size_arg, out = None, args[0]
    elif len(args) == 2:
        size_arg, out = _parse_size(args[0]), args[1]
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
    gdb.write("Wrote %s blocks (%s bytes) to %s\n" % (_commas(len(blocks) - failed), _commas(total), out))
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
    size_arg = _parse_size(args[0]) if args else None
    heap = _walk()
    blocks, _ = heap.select(size_arg)
    counts = collections.Counter()
    gdb.write("\n")
    for b in blocks:
        try:
            data = heap.mem.read(b.addr, min(b.size, ANALYZE_MAX))
        except gdb.MemoryError:
            counts["unreadable"] += 1
            gdb.write("0x%x (%s bytes): unreadable\n" % (b.addr, _commas(b.size)))
            continue
        kind, text = classify(heap, data, b.size)
        counts[kind] += 1
        gdb.write("0x%x (%s bytes): %s\n" % (b.addr, _commas(b.size), text))
    gdb.write("\nSummary of %s blocks:\n" % _commas(len(blocks)))
    for kind in ("C string", "pointer array", "zeroes", "binary", "unreadable"):
        if counts[kind] or kind != "unreadable":
            gdb.write("  %-14s %10s\n" % (kind, _commas(counts[kind])))
    heap.print_warnings()


EXAMINE_WORDS = 8


def cmd_examine(args):
    if len(args) > 1:
        raise WalkError("usage: heap examine [SIZE]")
    size_arg = _parse_size(args[0]) if args else None
    heap = _walk()
    blocks, _ = heap.select(size_arg)
    sym = Symbolizer()
    code = _file_mappings()

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
            gdb.write("0x%x (%s bytes): unreadable\n" % (b.addr, _commas(b.size)))
            continue
        words = struct.unpack("<%dQ" % n, data)
        gdb.write("0x%x (%s bytes, %s):\n" % (b.addr, _commas(b.size), b.kind))
        for i in range(0, n, 2):
            cells = []
            for w in words[i:i + 2]:
                a = annotate(w)
                marked += a == " [heap]"
                cells.append("0x%x%s" % (w, a))
            gdb.write("0x%x:\t%s\n" % (b.addr + 8 * i, "\t".join(cells)))
    gdb.write("\n%s blocks shown, %s words point into the heap ([heap])\n" % (_commas(len(blocks)), _commas(marked)))
    heap.print_warnings()


def cmd_sampled(args):
    if len(args) > 1:
        raise WalkError("usage: heap sampled [N]   (top N stacks, default 20; 0: all)")
    top = _parse_size(args[0]) if args else 20
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
    rate_text = ("sampling rate %s byte%s" % (_commas(rate), "" if rate == 1 else "s")
                 if rate else "profiling is off")
    gdb.write("Sampled live blocks (profiler entry table): %s blocks from %s stacks, %s\n"
              % (_commas(nblocks), _commas(len(stacks)), rate_text))
    gdb.write("Estimated live heap: %s bytes in %s objects\n" % (_commas(round(est_b)), _commas(round(est_o))))
    if not stacks:
        gdb.write("(no live sampled blocks: profiling is off, or nothing sampled is live)\n")
    shown = stacks if top == 0 else stacks[:top]
    for i, st in enumerate(shown):
        objs = round(st.objects)
        gdb.write("\n[%d] %s bytes (est.) in %s object%s (est.) from %s sampled block%s "
                  "(%s bytes requested, %s usable)\n"
                  % (i + 1, _commas(round(st.bytes)), _commas(objs), "" if objs == 1 else "s",
                     _commas(st.blocks), "" if st.blocks == 1 else "s",
                     _commas(st.requested), _commas(st.usable)))
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
    prof = build_pprof(stacks, rate, Symbolizer(), _source_name())
    raw = prof.SerializeToString()
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with gzip.open(tmp, "wb") as f:
        f.write(raw)
    os.replace(tmp, path)
    gdb.write("Wrote %s: %s samples (stacks) of %s sampled blocks, %s locations, %s functions, "
              "%s mappings; period %s\n"
              % (path, _commas(len(prof.sample)), _commas(sum(s.blocks for s in stacks)),
                 _commas(len(prof.location)), _commas(len(prof.function)), _commas(len(prof.mapping)),
                 _commas(rate)))
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


_Heap()
_Sub("stats", cmd_stats, "Live blocks by size: heap stats [SIZE]")
_Sub("dump", cmd_dump, "Write each live block to DIR/<address>.bin: heap dump [SIZE] DIR")
_Sub("analyze", cmd_analyze, "Guess each live block's contents: heap analyze [SIZE]")
_Sub("examine", cmd_examine, "The first 8 words of each live block: heap examine [SIZE]")
_Sub("sampled", cmd_sampled, "The profiler's live sampled blocks by stack: heap sampled [N]")
_Sub("pprof", cmd_pprof, "The live sampled blocks as a gzipped pprof heap profile: heap pprof FILE")
