#!/usr/bin/env python3
# The one list of the layout descriptor's fields: parses `struct AssayLayout`
# in base/layout.h (every field a uint64_t, in declaration order) and its
# ASSAY_LAYOUT_MAGIC / ASSAY_LAYOUT_VERSION, and writes the gdb walker's
# assay_gdb/layout_fields.py and a C++ file of static_asserts that the
# parsed list is the compiled struct (sizeof, and offsetof = 8 * index).
#
# Usage: gen_layout_fields.py LAYOUT_H [--py OUT.py] [--check-cc OUT.cc]
# Exits 1 with `LAYOUT_H:LINE: ...` when a declaration is not `uint64_t a, b;`.
# assay_gdb.layout imports parse_layout_header when loaded from a source tree.

import argparse
import os
import re
import sys

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_DECL = re.compile(r"^uint64_t\s+(%s(?:\s*,\s*%s)*)$" % (_IDENT, _IDENT))


class LayoutParseError(Exception):
    pass


def _blank_comments(text):
    """text with comments replaced by spaces, newlines kept (so that offsets
    still give line numbers)."""
    def blank(m):
        return re.sub(r"[^\n]", " ", m.group(0))
    return re.sub(r"//[^\n]*|/\*.*?\*/", blank, text, flags=re.S)


def _define(text, name, path):
    m = re.search(r"^\s*#\s*define\s+%s\s+(0[xX][0-9a-fA-F]+|\d+)[uUlL]*\b" % name, text, re.M)
    if not m:
        raise LayoutParseError("%s: no `#define %s <integer>`" % (path, name))
    return int(m.group(1), 0)


def parse_layout_header(path):
    """(fields, magic, version) of struct AssayLayout in the header at path;
    raises LayoutParseError for anything but `uint64_t a, b, c;` members."""
    with open(path) as f:
        text = _blank_comments(f.read())
    magic = _define(text, "ASSAY_LAYOUT_MAGIC", path)
    version = _define(text, "ASSAY_LAYOUT_VERSION", path)
    m = re.search(r"\bstruct\s+AssayLayout\s*\{(.*?)\}\s*;", text, re.S)
    if not m:
        raise LayoutParseError("%s: no `struct AssayLayout { ... };`" % path)
    body, start = m.group(1), m.start(1)
    fields = []
    pos = 0
    for decl in body.split(";"):
        line = text.count("\n", 0, start + pos + len(decl) - len(decl.lstrip())) + 1
        pos += len(decl) + 1
        d = " ".join(decl.split())
        if not d:
            continue
        dm = _DECL.match(d)
        if not dm:
            raise LayoutParseError(
                "%s:%d: `%s;` in struct AssayLayout is not a list of uint64_t fields (every field "
                "of the descriptor is a uint64_t: the gdb walker reads it as an array of them)"
                % (path, line, d))
        for name in dm.group(1).split(","):
            name = name.strip()
            if name in fields:
                raise LayoutParseError("%s:%d: field %s declared twice" % (path, line, name))
            fields.append(name)
    if fields[:3] != ["magic", "version", "size"]:
        raise LayoutParseError("%s: struct AssayLayout must begin with magic, version, size "
                               "(walkers read them first), not %s" % (path, ", ".join(fields[:3])))
    return tuple(fields), magic, version


def python_module(fields, magic, version, source):
    lines = [
        "# Generated from %s by tools/gdb/gen_layout_fields.py: do not edit." % source,
        "# The fields of struct AssayLayout in order (each a uint64_t, at 8 * index).",
        "",
        "ASSAY_LAYOUT_MAGIC = 0x%016x" % magic,
        "ASSAY_LAYOUT_VERSION = %d" % version,
        "",
        "FIELDS = (",
    ]
    lines += ['    "%s",' % f for f in fields]
    lines += [")", ""]
    return "\n".join(lines)


def check_cc(fields, magic, version, source):
    lines = [
        "// Generated from %s by tools/gdb/gen_layout_fields.py: do not edit." % source,
        "// Compiles only if the field list the gdb walker uses is struct AssayLayout.",
        "#include <cstddef>",
        "#include <cstdint>",
        "#include <type_traits>",
        "",
        '#include "base/layout.h"',
        "",
        "static_assert(sizeof(AssayLayout) == %d * sizeof(uint64_t),"
        ' "struct AssayLayout has fields the parser of base/layout.h did not find");' % len(fields),
        "static_assert(ASSAY_LAYOUT_MAGIC == 0x%016xull);" % magic,
        "static_assert(ASSAY_LAYOUT_VERSION == %d);" % version,
    ]
    for i, f in enumerate(fields):
        lines.append("static_assert(offsetof(AssayLayout, %s) == %d && "
                     "std::is_same_v<decltype(AssayLayout::%s), uint64_t>);" % (f, 8 * i, f))
    lines.append("")
    return "\n".join(lines)


def _write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("layout_h")
    ap.add_argument("--py", help="write the walker's layout_fields.py here")
    ap.add_argument("--check-cc", help="write the C++ static_asserts here")
    ap.add_argument("--source-name", default="base/layout.h",
                    help="the header's name in the generated files' first line")
    args = ap.parse_args(argv)
    try:
        fields, magic, version = parse_layout_header(args.layout_h)
    except (LayoutParseError, OSError) as e:
        print("gen_layout_fields.py: %s" % e, file=sys.stderr)
        return 1
    if args.py:
        _write(args.py, python_module(fields, magic, version, args.source_name))
    if args.check_cc:
        _write(args.check_cc, check_cc(fields, magic, version, args.source_name))
    if not args.py and not args.check_cc:
        print("\n".join(fields))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
