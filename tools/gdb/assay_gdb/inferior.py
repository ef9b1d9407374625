# The inferior as the walker sees it: raw memory reads (cached per command),
# the error every command reports, what is being read (process or core) and
# number formatting shared by the commands' output.

import re
import struct

import gdb

MAX_WARNINGS_SHOWN = 10


class WalkError(gdb.GdbError):
    pass


def commas(n):
    return "{:,}".format(int(n))


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


def source_name():
    inf = gdb.selected_inferior()
    try:
        target = gdb.execute("info target", to_string=True)
    except gdb.error:
        target = ""
    m = re.search(r"Local core dump file:\s*\n\s*`([^']+)'", target)
    if m:
        return "core file %s" % m.group(1)
    return "process %d" % inf.pid
