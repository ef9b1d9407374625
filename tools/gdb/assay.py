# assay heap walker for gdb: `source .../assay.py`, then `heap ...` (see
# tools/gdb/README.md). This file only loads the package assay_gdb/ from the
# directory this file is in (the source tree's tools/gdb, a build tree's
# <build>/tools/gdb, an install's share/assay/gdb) and defines its commands.
#
# Commands:
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

import importlib.util
import os
import sys


def _load_assay_gdb():
    # gdb sets __file__ to the sourced path; realpath so that a symlink to
    # assay.py still finds the package next to the real file.
    here = os.path.dirname(os.path.realpath(__file__))
    pkg = os.path.join(here, "assay_gdb")
    # A package of another tree loaded earlier in this gdb is replaced, not reused.
    for name in [m for m in sys.modules if m == "assay_gdb" or m.startswith("assay_gdb.")]:
        del sys.modules[name]
    init = os.path.join(pkg, "__init__.py")
    if not os.path.isfile(init):
        raise ImportError("assay.py: no package assay_gdb/ next to %s" % __file__)
    spec = importlib.util.spec_from_file_location("assay_gdb", init,
                                                  submodule_search_locations=[pkg])
    mod = importlib.util.module_from_spec(spec)
    sys.modules["assay_gdb"] = mod
    spec.loader.exec_module(mod)
    importlib.import_module("assay_gdb.commands").register()


_load_assay_gdb()
del _load_assay_gdb
