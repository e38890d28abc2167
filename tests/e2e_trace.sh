#!/usr/bin/env bash
# --trace: a 2-rank training writes one Chrome-trace JSON file (checked with python3's json
# module: both ranks, forward and backward of every layer of the config by name, allreduce
# buckets, optimizer, validation, checkpoints, proper nesting per lane); a bad path fails before
# training; a full buffer stops recording and says so; a stopped run still writes its trace;
# bench --trace measures what recording costs; `shardnet timeline` draws a step as a PNG and
# refuses what it cannot draw.
# Args: SHARDNET SOURCE_DIR TMP_DIR
source "$(dirname "$0")/lib.sh" "$@"

command -v python3 > /dev/null || { echo "SKIP: python3 is needed to check the trace's JSON"; exit 77; }
"$bin" dataset fashion-mnist fm --limit 320 > /dev/null 2>&1 || { echo "dataset failed"; exit 1; }
cfg=$src/configs/mnist_convnet.cfg
common=(--set data.dir=fm --set train.epochs=2 --set train.batch_size=32 --set train.threads=1)
"$bin" summary "$cfg" > summary.out 2>&1

# check.py TRACE SUMMARY [--truncated]: the verdict on a trace file, one line per failed check
cat > check.py <<'PY'
import json, re, sys
path, summary = sys.argv[1], sys.argv[2]
truncated = "--truncated" in sys.argv
bad = []
def need(ok, what):
    if not ok:
        bad.append(what)
doc = json.load(open(path))
ev = doc["traceEvents"]
need(doc.get("displayTimeUnit") == "ms", "displayTimeUnit ms")
need(doc["otherData"]["truncated"] == truncated, "otherData.truncated is %s" % truncated)
x = [e for e in ev if e["ph"] == "X"]
need({e["pid"] for e in x} == {0, 1}, "complete events of pid 0 and 1")
names = {(e["pid"], e["args"]["name"]) for e in ev
         if e["ph"] == "M" and e["name"] == "process_name"}
need({n for _, n in names if n.startswith("rank 0")} and {n for _, n in names if n.startswith("rank 1")},
     "process names 'rank 0' and 'rank 1'")
threads = {e["args"]["name"] for e in ev if e["ph"] == "M" and e["name"] == "thread_name"}
need({"compute", "data", "allreduce bucket 0"} <= threads, "lanes compute, data, allreduce bucket 0")
need(all(e["dur"] >= 0 for e in x), "dur >= 0")
need(all(e["ts"] >= 0 for e in x), "ts >= 0 (after the start barrier)")
# layers of the config, from `shardnet summary`: forward for all, backward from the first one
# with parameters (nothing below it needs a gradient)
layers, params = [], []
for line in open(summary):
    m = re.match(r"^ (\S+) \((\w+)\)\s+\S.*?\s(\d[\d,]*)\s*$", line)
    if m and m.group(2) != "InputLayer":
        layers.append(m.group(1))
        params.append(int(m.group(3).replace(",", "")))
need(len(layers) == 8, "8 layers in the summary (got %d)" % len(layers))
first = next(i for i, p in enumerate(params) if p > 0)
for pid in (0, 1):
    mine = [e for e in x if e["pid"] == pid]
    if truncated:
        need(0 < len(mine) <= 60, "rank %d: at most the 60 events of its buffer" % pid)
        continue
    cats = {e["cat"] for e in mine}
    for c in ("epoch", "step", "forward", "backward", "sync", "optimizer", "validation", "allreduce", "data"):
        need(c in cats, "rank %d: events of cat %s" % (pid, c))
    for i, l in enumerate(layers):
        need(any(e["cat"] == "forward" and e["name"] == l for e in mine), "rank %d: forward of %s" % (pid, l))
        if i >= first:
            need(any(e["cat"] == "backward" and e["name"] == l for e in mine), "rank %d: backward of %s" % (pid, l))
    steps = [e for e in mine if e["cat"] == "step"]
    need(len(steps) == 20, "rank %d: 20 steps (2 epochs of 10), got %d" % (pid, len(steps)))
    need(sorted(e["args"]["step"] for e in steps) == list(range(20)), "rank %d: steps 0..19" % pid)
    buckets = {e["args"]["bucket"] for e in mine if e["cat"] == "allreduce"}
    need(len(buckets) >= 2 and all(
        sum(1 for e in mine if e["cat"] == "allreduce" and e["args"]["bucket"] == b) == 20 for b in buckets),
        "rank %d: every bucket's allreduce once per step" % pid)
    # steps hold their forward, backward, gradient sync and optimizer, in that order
    for s in steps:
        inside = [e for e in mine if e["tid"] == 1 and e["cat"] in ("forward", "backward", "sync", "optimizer")
                  and e["name"] in ("forward", "backward", "gradient sync", "optimizer")
                  and s["ts"] <= e["ts"] and e["ts"] + e["dur"] <= s["ts"] + s["dur"] + 0.01]
        need([e["name"] for e in sorted(inside, key=lambda e: e["ts"])] == ["forward", "backward", "gradient sync", "optimizer"],
             "rank %d step %d: forward, backward, gradient sync, optimizer inside it" % (pid, s["args"]["step"]))
# rank 0 writes the checkpoints
ck = [e for e in x if e["cat"] == "checkpoint"]
need(truncated or (ck and all(e["pid"] == 0 for e in ck)), "checkpoint events, on rank 0")
need(truncated or any(e.get("args", {}).get("detail", "").endswith("mnist_convnet-best.ckpt") for e in ck),
     "a checkpoint event names the best checkpoint")
# per lane: timestamps in order, and events either nested or disjoint (what Perfetto needs)
lanes = {}
for e in x:
    lanes.setdefault((e["pid"], e["tid"]), []).append(e)
for k, es in lanes.items():
    need(all(a["ts"] <= b["ts"] for a, b in zip(es, es[1:])), "lane %s: ts in order" % (k,))
    stack = []
    for e in es:
        while stack and stack[-1] <= e["ts"] + 0.01:
            stack.pop()
        need(not stack or e["ts"] + e["dur"] <= stack[-1] + 0.01, "lane %s: event at %.3f nested" % (k, e["ts"]))
        stack.append(e["ts"] + e["dur"])
if truncated:
    need(any(e["ph"] == "i" and e["name"] == "trace buffer full" for e in ev), "a 'trace buffer full' mark")
    need(doc["otherData"]["dropped_events"] > 0, "dropped events counted")
for b in sorted(set(bad))[:20]:
    print("trace check failed:", b)
sys.exit(1 if bad else 0)
PY

# --- 2 ranks, 2 epochs of 10 steps (320 images, batch 32)
"${mpirun[@]}" -np 2 "$bin" train "$cfg" "${common[@]}" --set checkpoint.dir=run --trace run/trace.json > train.out 2>&1
check "traced training: exit 0" test $? -eq 0
check "traced training: the file said" contains train.out "trace: [0-9]* events of 2 ranks written to run/trace.json"
check "traced training: no temporary file left" test -z "$(find run -name '*.tmp.*')"
check "traced training: the trace's content" python3 check.py run/trace.json summary.out

# --- a path that cannot be written fails before training, naming it
: > notadir
for p in missing/dir/trace.json notadir/trace.json; do
    "${mpirun[@]}" -np 2 "$bin" train "$cfg" "${common[@]}" --set checkpoint.dir=badpath --trace "$p" > bad.out 2>&1
    rc=$?
    check "--trace $p: exit 1 (got $rc)" test $rc -eq 1
    check "--trace $p: named" contains bad.out "error (rank 0): --trace: $p: cannot create"
    check "--trace $p: before training" lacks bad.out "Epoch 1/"
done
"$bin" summary "$cfg" --trace x.json > usage.out 2>&1
check "--trace with summary: usage error (exit 2)" test $? -eq 2

# --- a buffer of 60 events: recording stops, the file and the log say so
"${mpirun[@]}" -np 2 "$bin" train "$cfg" "${common[@]}" --set checkpoint.dir=small --trace small.json \
    --trace-events 60 > small.out 2>&1
check "small buffer: exit 0" test $? -eq 0
check "small buffer: the log says it filled" contains small.out "trace: rank 0's buffer filled .* later events were not recorded"
check "small buffer: 120 events kept" contains small.out "trace: 120 events of 2 ranks"
check "small buffer: the file says it is truncated" python3 check.py small.json summary.out --truncated

# --- a run stopped by SIGUSR1 writes its trace (slow reference kernels: stopped mid-epoch)
"${mpirun[@]}" -np 2 "$bin" train "$cfg" "${common[@]}" --set model.backend=ref --set checkpoint.save_every=1 \
    --set checkpoint.dir=stopped --trace stopped.json > stopped.out 2>&1 &
job=$!
wait_for_file stopped/mnist_convnet-last.ckpt
kill -USR1 $job
wait $job
rc=$?
check "stopped run: exit 75 (got $rc)" test $rc -eq 75
check "stopped run: trace written" contains stopped.out "trace: [0-9]* events of 2 ranks written to stopped.json"
check "stopped run: the trace is JSON with steps of both ranks" python3 -c '
import json, sys
d = json.load(open("stopped.json"))
sys.exit(0 if {e["pid"] for e in d["traceEvents"] if e.get("cat") == "step"} == {0, 1} else 1)'

# --- bench --trace: the trace, and what recording costs
"${mpirun[@]}" -np 2 "$bin" bench "$cfg" --set train.threads=1 --backend blas --batch 8 --iters 8 \
    --trace bench.json > bench.out 2>&1
check "bench --trace: exit 0" test $? -eq 0
check "bench --trace: the cost line" contains bench.out "^trace: an event costs [0-9]* ns, [0-9]* events a step: .* slower with recording on"
check "bench --trace: written" contains bench.out "trace: [0-9]* events of 2 ranks written to bench.json"
"$bin" bench "$cfg" --data-only --trace x.json > bdata.out 2>&1
check "bench --data-only --trace: usage error (exit 2)" test $? -eq 2

# --- the timeline of one step
"$bin" timeline run/trace.json -o step.png --step 14 > tl.out 2>&1
check "timeline: exit 0" test $? -eq 0
check "timeline: says what it drew" contains tl.out "step.png: step 14 of 2 ranks"
check "timeline: a PNG" test "$(head -c 8 step.png | od -An -tx1 | tr -d ' ')" = "89504e470d0a1a0a"
"$bin" timeline run/trace.json -o default.png > tl2.out 2>&1
check "timeline: a middle step by default" contains tl2.out "default.png: step 10 of 2 ranks"
"$bin" timeline run/trace.json -o x.png --step 99 > tl3.out 2>&1
check "timeline: a step not recorded: exit 1" test $? -eq 1
check "timeline: the steps there are named" contains tl3.out "steps 0 to 19 recorded by all 2"
head -c 3000 run/trace.json > cut.json
"$bin" timeline cut.json -o x.png > tl4.out 2>&1
check "timeline: a truncated file: exit 1" test $? -eq 1
check "timeline: a truncated file: named, with its line" contains tl4.out "cut.json:[0-9]*:[0-9]*: not a trace file"
check "timeline: nothing written after an error" test ! -e x.png
finish
