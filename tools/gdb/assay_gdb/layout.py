# The layout descriptor `assay_layout` (struct AssayLayout, base/layout.h) as
# read from the inferior: magic and version checked, then every field by the
# name the struct gives it. The field names, their order, the magic and the
# version come from layout_fields.py, which the build generates from
# base/layout.h (tools/gdb/gen_layout_fields.py); loaded from the source tree,
# where no generated module exists, the same parser reads base/layout.h now.

import importlib.util
import os
import struct

import gdb

from .inferior import WalkError, source_name


def _fields_from_source():
    """(fields, magic, version) parsed from the source tree's base/layout.h,
    with the generator the build runs; None outside a source tree."""
    gdb_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    gen = os.path.join(gdb_dir, "gen_layout_fields.py")
    header = os.path.join(os.path.dirname(os.path.dirname(gdb_dir)), "base", "layout.h")
    if not (os.path.isfile(gen) and os.path.isfile(header)):
        return None
    spec = importlib.util.spec_from_file_location("assay_gen_layout_fields", gen)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    try:
        return mod.parse_layout_header(header)
    except mod.LayoutParseError as e:
        raise WalkError("assay walker: cannot read the layout's fields: %s" % e)


try:
    from .layout_fields import FIELDS, ASSAY_LAYOUT_MAGIC, ASSAY_LAYOUT_VERSION
except ImportError:
    _parsed = _fields_from_source()
    if _parsed is None:
        raise WalkError("assay walker: %s has no layout_fields.py (the build generates it from "
                        "base/layout.h): source the assay.py of a build tree or of an install"
                        % os.path.dirname(os.path.abspath(__file__)))
    FIELDS, ASSAY_LAYOUT_MAGIC, ASSAY_LAYOUT_VERSION = _parsed
    del _parsed

WALKER_LAYOUT_VERSION = ASSAY_LAYOUT_VERSION
LAYOUT_MAGIC = ASSAY_LAYOUT_MAGIC  # "ASAYLAYL"


def layout_address():
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
        self.address = layout_address()
        try:
            head = mem.read(self.address, 24)
        except gdb.MemoryError:
            raise WalkError("cannot read assay_layout at 0x%x" % self.address)
        magic, version, size = struct.unpack("<QQQ", head)
        hint = ""
        if source_name().startswith("core"):
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
        need = 8 * len(FIELDS)
        if size < need:
            raise WalkError("assay layout version %d has %d bytes, fewer than the %d this walker "
                            "reads: corrupt descriptor" % (version, size, need))
        values = struct.unpack("<%dQ" % len(FIELDS), mem.read(self.address, need))
        for name, value in zip(FIELDS, values):
            setattr(self, name, value)
        if not (0 < self.num_classes < 256 and self.slices_per_segment <= 64 and
                self.segment_size == self.slice_size * self.slices_per_segment):
            raise WalkError("assay_layout at 0x%x has implausible geometry: corrupt descriptor"
                            % self.address)
        table = mem.read(self.classes_addr, self.num_classes * self.class_record_size)
        self.class_sizes = [
            struct.unpack_from("<I", table, c * self.class_record_size + self.class_size_off)[0]
            for c in range(self.num_classes)]
