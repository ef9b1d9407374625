# (h) A real program: python3 (run as /usr/bin/python3 python_workload.py
# [SCALE] under LD_PRELOAD=<allocator>) building dicts and lists, sorting,
# string formatting and JSON encode/decode round trips: CPython's small
# objects come from its own pymalloc arenas (256 KiB, from malloc), while
# dicts, lists, strings over 512 B and json buffers go to malloc.
import json
import random
import sys
import time

scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
rounds = max(1, int(25 * scale))
rng = random.Random(8000)
t0 = time.monotonic()
check = 0
cache = {}
for r in range(rounds):
    records = []
    for i in range(4000):
        rec = {
            "id": r * 100000 + i,
            "name": "user-%d-%s" % (i, "x" * rng.randrange(1, 80)),
            "tags": [rng.choice(("a", "bb", "ccc", "dddd")) * rng.randrange(1, 5) for _ in range(rng.randrange(0, 8))],
            "score": rng.random(),
            "attrs": {str(k): k * i for k in range(rng.randrange(0, 6))},
        }
        records.append(rec)
    text = json.dumps(records)
    back = json.loads(text)
    back.sort(key=lambda d: (d["score"], d["id"]))
    index = {}
    for d in back:
        index.setdefault(len(d["tags"]), []).append(d["name"])
    joined = ",".join(index.get(3, []))
    check += len(text) + len(joined) + len(index)
    # A long-lived cache with random eviction: lifetimes across rounds.
    for d in back[:500]:
        cache[d["id"]] = d
    while len(cache) > 20000:
        cache.pop(next(iter(cache)))
print("python scale=%g threads=1 seconds=%.3f check=%d" % (scale, time.monotonic() - t0, check))
