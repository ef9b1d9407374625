# pprof heap profiles of the live sampled blocks: the Python classes of
# proto/profile.proto (profile_pb2.py, found or generated), the Profile built
# from read_sampled's stacks, and the gzipped file.

import gzip
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time

from .inferior import WalkError
from .symbols import build_ids, file_mappings

# This package's directory: the build (and an install) put profile_pb2.py here.
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
# The source tree's root when the package is loaded from tools/gdb/assay_gdb.
_SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(_PACKAGE_DIR)))

_pb2 = None


def load_profile_pb2():
    """The Python classes of proto/profile.proto. Looked up in order:
    $ASSAY_PROTO_PY (the profile_pb2.py file or its directory),
    $ASSAY_BUILD_DIR/proto, this package's directory (the build tree's and an
    install's copy), build/proto of the source tree this package is in (the
    default build directory, where CMake generates it), and failing those
    generated now with protoc from the source tree's proto/profile.proto into
    a temporary directory."""
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
    candidates.append(os.path.join(_PACKAGE_DIR, "profile_pb2.py"))
    candidates.append(os.path.join(_SOURCE_ROOT, "build", "proto", "profile_pb2.py"))
    path = next((c for c in candidates if os.path.isfile(c)), None)
    if path is None:
        proto = os.path.join(_SOURCE_ROOT, "proto", "profile.proto")
        protoc = shutil.which("protoc")
        if not os.path.isfile(proto) or not protoc:
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
    pb2 = load_profile_pb2()
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

    mappings = file_mappings()
    ids = build_ids()
    for i, (start, limit, off, path) in enumerate(mappings):
        m = prof.mapping.add()
        m.id = i + 1
        m.memory_start = start
        m.memory_limit = limit
        m.file_offset = off
        m.filename = idx(path)
        bid = ids.get(os.path.realpath(path))
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


def write_pprof(prof, path):
    """Writes prof gzipped to path, whole or not at all (through a temporary
    file renamed over it)."""
    raw = prof.SerializeToString()
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with gzip.open(tmp, "wb") as f:
        f.write(raw)
    os.replace(tmp, path)
