# The walk of the allocator's structures through the layout descriptor: thread
# caches, central transfer caches, segments and their spans (free lists and
# bump), huge blocks and the huge cache give the live blocks (Heap); the
# profiler's entry shards give the live sampled blocks by stack (read_sampled).
#
# Field widths are fixed by the layout version (version 1: free_mask, huge
# capacity and pointers 64-bit; bump, class size, list and batch counts,
# nbatches and stack depth 32-bit; kind, class, first and slices 8-bit;
# weights IEEE doubles), the offsets come from the descriptor.

import struct

import gdb

from .inferior import MAX_WARNINGS_SHOWN, WalkError, commas

MAX_STACK_DEPTH = 256  # MALLOC_PROF depth is 1..256


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
        self.span_purged = 0  # bytes of purged units of partly used spans
        self.cached_runs = 0  # large spans free in a thread's slice-run cache
        # Free-list links: plain unless the process ran with harden=1.
        self.link_shift = layout.link_shift
        self.link_key = mem.u64(layout.link_key_addr) if layout.link_key_addr else 0
        self._walk()

    def warn(self, msg):
        self.warnings.append(msg)

    def say(self, msg, end="\n"):
        if not self.quiet:
            gdb.write(msg + end)
            gdb.flush()

    def _walk_freelists(self, records, owner):
        """Walks the num_classes FreeList records read from a thread cache
        (its lists, or its sampled magazine's) into self.free."""
        L = self.L
        for cls in range(1, L.num_classes):
            rec = cls * L.freelist_record_size
            head = struct.unpack_from("<Q", records, rec + L.freelist_head_off)[0]
            count = struct.unpack_from("<I", records, rec + L.freelist_count_off)[0]
            if not head:
                continue
            what = "%s, class %d" % (owner, L.class_sizes[cls])
            n = self._walk_list(head, count + 16, what, self.free)
            self.tc_free += n
            if n != count:
                self.warn("%s: count says %d blocks, the list has %d" % (what, count, n))

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
                stored = mem.u64(p)
            except gdb.MemoryError:
                self.warn("%s: cannot read block 0x%x; stopped there" % (what, p))
                break
            # ASSAY_OPTIONS=harden=1: links are safe-linked (alloc/free_link.h).
            p = stored ^ ((p >> self.link_shift) ^ self.link_key) if self.link_key else stored
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
            self._walk_freelists(lists, "thread %d cache" % tid)
            # The sampled-pool magazine (layout version 5): same records.
            try:
                magazine = mem.u64(tc + L.tc_sampled_off)
                sampled = mem.read(magazine + L.sampled_lists_off,
                                   L.num_classes * L.freelist_record_size) if magazine else None
            except gdb.MemoryError:
                self.warn("thread cache 0x%x: sampled magazine unreadable" % tc)
                sampled = None
            if sampled:
                self._walk_freelists(sampled, "thread %d sampled magazine" % tid)
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
                # Units returned to the OS (alloc/span_purge.h): their blocks
                # are free, on no list, and their memory reads as zero.
                purged = struct.unpack_from("<Q", rec, L.span_purged_off)[0]
                unit = max(L.page_size, span_bytes // L.span_purge_units)
                if purged:
                    self.span_purged += bin(purged).count("1") * unit
                kname = "sampled" if kind == L.span_kind_sampled else "small"
                free = self.free
                blocks = self.blocks
                for a in range(start, start + carved * size, size):
                    if purged:
                        off = a - start
                        u0, u1 = off // unit, (off + size - 1) // unit
                        if purged & (((2 << u1) - 1) & ~((1 << u0) - 1)):
                            continue
                    if a not in free and a not in span_free:
                        blocks.append(Block(a, size, kname, cls))
            elif kind == L.span_kind_large:
                if rec[L.span_cached_off]:  # a free run in a thread's slice-run cache
                    self.cached_runs += 1
                else:
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
            self.say("DONE (%d caches, %s free blocks)." % (self.tc_count, commas(self.tc_free)))
            self.say("Walking central transfer caches... ", end="")
            self._walk_central()
            self.say("DONE (%s free blocks)." % commas(self.central_free))
            self.say("Walking segments... ", end="")
            self._walk_segments()
            self.say("DONE (%d segments, %s free blocks on spans)."
                     % (len(self.segments), commas(self.span_free)))
            if self.cached_runs:
                self.say("(%d free slice runs in thread caches.)" % self.cached_runs)
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
            gdb.write("(blocks of %s bytes serve requests of %s bytes)\n" % (commas(size), commas(size_arg)))
        return [b for b in self.blocks if b.size == size], size


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
