# Names for code addresses and the inferior's file mappings, both from gdb
# without debug info: `info symbol` (minimal symbols), `info proc mappings`
# (live process or a core's NT_FILE note) and the objfiles' build ids.

import os
import re

import gdb


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


def file_mappings():
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


def build_ids():
    ids = {}
    for o in gdb.objfiles():
        if getattr(o, "owner", None) is not None or not o.filename:
            continue
        bid = getattr(o, "build_id", None)
        if bid:
            ids[os.path.realpath(o.filename)] = bid
    return ids
