"""A deterministic allocation-heavy Python workload for the integration tests.

Its output must not depend on the allocator: it prints sizes, counts and
digests, never addresses or timings. python_workload.sh runs it with and
without libassay.so preloaded and requires identical output.
"""
import collections
import gc
import hashlib
import json
import random
import threading


def digest(obj):
    if not isinstance(obj, (bytes, bytearray)):
        obj = repr(obj).encode()
    return hashlib.sha256(obj).hexdigest()[:16]


def emit(label, value):
    print(f"{label}: {value}", flush=True)


rng = random.Random(20240101)

# 1. Dicts of 200k entries: build, mutate (delete half, grow), nested values.
d = {f"key-{i}": [i, str(i) * 3, {"mod7": i % 7}] for i in range(200_000)}
emit("dict.len", len(d))
for i in range(0, 200_000, 2):
    del d[f"key-{i}"]
for i in range(200_000, 300_000):
    d[f"key-{i}"] = {"n": i, "third": i / 3, "tag": "x" * (i % 97)}
emit("dict.len after mutation", len(d))
emit("dict.keys digest", digest(sorted(d)[:1000]))

# 2. JSON round trip of the whole dict.
text = json.dumps(d, sort_keys=True)
emit("json.bytes", len(text))
emit("json.sha", digest(text.encode()))
back = json.loads(text)
emit("json.round trip equal", back == json.loads(json.dumps(back, sort_keys=True)))
emit("json.len", len(back))
del back, text

# 3. Lists and sorting: random floats, strings, tuples.
floats = [rng.random() for _ in range(300_000)]
floats.sort()
emit("floats.sorted digest", digest(floats[::1000]))
words = ["".join(rng.choice("abcdefghij") for _ in range(rng.randint(1, 12))) for _ in range(100_000)]
counts = collections.Counter(words)
emit("words.distinct", len(counts))
emit("words.top", sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5])

# 4. Four threads appending to their own and a shared list.
shared = []
lock = threading.Lock()
per_thread = [[] for _ in range(4)]


def worker(t):
    r = random.Random(t)
    local = per_thread[t]
    for i in range(50_000):
        item = f"{t}-{i}-{r.random():.6f}"
        local.append(item)
        if i % 4 == 0:
            with lock:
                shared.append(item.encode() * (1 + i % 5))
        if i % 1000 == 0:
            # Some larger temporaries freed in another order.
            blob = bytearray(r.randrange(1, 1 << 20))
            local.append(len(blob))
            del blob


threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
for th in threads:
    th.start()
for th in threads:
    th.join()
emit("threads.per-thread lengths", [len(x) for x in per_thread])
emit("threads.per-thread digests", [digest(x) for x in per_thread])
emit("threads.shared length", len(shared))
emit("threads.shared sorted digest", digest(b"\n".join(sorted(shared))))

# 5. Big buffers, bytes churn and garbage cycles.
big = [bytes([i % 256]) * (1 << 20) * (1 + i % 8) for i in range(24)]
emit("big.total MiB", sum(len(b) for b in big) >> 20)
del big
for _ in range(5):
    nodes = [{"id": i} for i in range(20_000)]
    for a, b in zip(nodes, nodes[1:] + nodes[:1]):
        a["next"] = b
    del nodes
emit("gc.collected > 0", gc.collect() > 0)
emit("done", True)
