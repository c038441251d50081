"""Ray as the scale-out engine of a triage run (optional: ``pip install -r requirements-scale.txt``).

Only the scoring stage is handed to Ray. The project's reader still reads every line (each one accounted for,
with its reason), and results still go to the run folder's Parquet parts; in between:

1. **stage** (driver): records read from the resume point, prepared (:func:`runner.prepare`: cut to what the
   model reads, unreadable inputs marked), identical inputs of a chunk linked to one original, and written as
   ``staging/chunk-<first>-<last>.parquet`` (every line) plus ``staging/todo-<first>-<last>.parquet`` (the
   distinct inputs to score); written atomically, so an interrupted run re-stages only what is missing.
2. **score** (Ray Data): ``read_parquet(pending) → map_batches(RayScorer, ActorPoolStrategy)`` — a stateful
   class whose constructor loads the model and its tokenizer once per actor; actors restart and their batches
   are retried when a worker dies (``max_restarts``/``max_task_retries``). The driver iterates the scored
   batches (progress) and writes them as ``ray_out/*.parquet``, keyed by record number: row order inside
   Ray's blocks does not matter. ``pending`` = staged inputs without a scored row yet (DuckDB anti-join), so a
   restarted run scores only what is missing.
3. **assemble** (driver): per staged chunk, in record order, the scored fields are joined back by record
   (copies take their original's scores), the corpus norm is updated, and the project's part is written; then
   the usual finalisation (final norm, ranking in DuckDB) runs.

Scores are the same code as the local engine's (``runner.score_rows``), and an input's scores do not depend on
its batch, so the results equal the local engine's line for line (to float32 noise).

Ray's pitfalls avoided here: its JSON reader drops a whole block for one malformed line (the project's reader is
used instead); ``preserve_order`` does not order rows inside written files (rows are keyed by record number and
ordered in DuckDB); an actor pool that takes every CPU starves the read stage on a small machine (actors ask for
a fraction of the CPUs, leaving one for reading); Ray sets one intra-op thread per actor CPU (the actor sets
torch's threads explicitly); Ray's default block size (128 MiB) reads a run's pending inputs as one block and
lets an actor buffer a task's whole output, so the actor's memory grows with the log (blocks of
:data:`BLOCK_BYTES` here, pending inputs in row groups of :func:`_task_rows`); a pending list split into many
files makes Ray's reader fan its footer reads out into extra worker processes (one file here).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import registry
from .heap import bound_heap, release_free_heap
from .schema import score_columns

RAY_MISSING = ("Ray is not installed: install the scale extra with `make scale` or "
               "`pip install -r requirements-scale.txt`, then choose the Ray engine again")

# The fields a scored row gets from the scoring stage (the rest comes from the reader and the mapping).
SCORED_FIELDS: list[tuple[str, pa.DataType]] = [
    ("record", pa.int64()), ("status", pa.string()), ("reason_code", pa.string()), ("reason", pa.string()),
    ("preview", pa.string()), ("notes", pa.string()), *score_columns(), ("agreement", pa.float64()),
    ("head_concentration", pa.list_(pa.float32())),
]


def scored_fields(settings) -> list[tuple[str, pa.DataType]]:
    """:data:`SCORED_FIELDS` plus the columns of the optional scores switched on in ``settings`` (registry)."""
    return SCORED_FIELDS[:-1] + registry.enabled_columns(settings) + SCORED_FIELDS[-1:]


_CHUNK = re.compile(r"^chunk-(\d{12})-(\d{12})\.parquet$")


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        return False
    return True


class RayScorer:
    """The scoring stage as a Ray Data callable class: the model (and its tokenizer) is loaded once per actor,
    in the constructor; each call scores a batch of staged inputs with the local engine's own code."""

    def __init__(self, model: str, device: str | None, settings: dict, batch_size: int, max_rows: int | None,
                 threads: int, fault: str | None = None):
        import torch

        from ..loader import load_model
        torch.set_num_threads(max(1, int(threads)))
        if os.environ.get("EXPERTLENS_TRIAGE_BOUND_HEAP", "1") != "0":
            bound_heap()
        self.settings = registry.settings_from_dict(settings)
        self.fields = scored_fields(self.settings)
        self.lm = load_model(model, device=device)
        self.batch_size, self.max_rows = int(batch_size), max_rows
        self.fault = fault
        self.calls = 0
        self._memdebug = _MemDebug.from_env()

    def __call__(self, batch: pa.Table) -> pa.Table:
        from .runner import materialise, score_rows
        self.calls += 1
        if self.fault and self.calls == 2 and not os.path.exists(self.fault):
            Path(self.fault).write_text(str(os.getpid()))      # a test's one-off worker death, mid-run
            os.kill(os.getpid(), 9)
        rows = batch.to_pylist()
        for r in rows:
            r["_prediction_raw"] = json.loads(r.pop("prediction_json") or "null")
            r["_label_raw"] = json.loads(r.pop("label_json") or "null")
        score_rows(self.lm, rows, self.settings, self.batch_size, self.max_rows)
        materialise(rows)
        cols = {}
        for name, typ in self.fields:
            vals = [r.get(name) for r in rows]
            if name == "head_concentration":
                vals = [None if v is None else np.asarray(v, np.float32).tolist() for v in vals]
            elif pa.types.is_floating(typ):
                vals = [None if v is None or (isinstance(v, float) and np.isnan(v)) else float(v) for v in vals]
            elif pa.types.is_integer(typ):
                vals = [None if v is None else int(v) for v in vals]
            cols[name] = pa.array(vals, typ)
        out = pa.table(cols)
        del rows, cols, batch
        release_free_heap()
        if self._memdebug is not None:
            self._memdebug.step(self.calls)
        return out


class _MemDebug:
    """A diagnostic hook for the scoring actor's memory: with ``EXPERTLENS_TRIAGE_MEMDEBUG=FILE[,EVERY[,TRACE]]``
    every EVERY calls (default 10) one JSON line is appended to FILE: the process's anonymous and total PSS,
    Arrow's memory pool, glibc's heap figures (``mallinfo2``: in use, free but kept), the thread that ran the
    call, the live Python objects by type, and with TRACE=1 the top allocation sites of ``tracemalloc``."""

    def __init__(self, path: str, every: int, trace: bool):
        import tracemalloc
        self.path, self.every, self.trace = path, max(1, every), trace
        if trace and not tracemalloc.is_tracing():
            tracemalloc.start(6)

    @classmethod
    def from_env(cls) -> "_MemDebug | None":
        spec = os.environ.get("EXPERTLENS_TRIAGE_MEMDEBUG")
        if not spec:
            return None
        parts = spec.split(",")
        return cls(parts[0], int(parts[1]) if len(parts) > 1 else 10, len(parts) > 2 and parts[2] == "1")

    def step(self, calls: int) -> None:
        if calls % self.every:
            return
        import collections
        import ctypes
        import gc
        import threading
        import tracemalloc
        rec = {"calls": calls, "pid": os.getpid(), "thread": threading.current_thread().name,
               "threads": threading.active_count()}
        try:
            with open("/proc/self/smaps_rollup") as f:
                for line in f:
                    k = line.split(":")[0]
                    if k in ("Pss", "Pss_Anon", "Rss"):
                        rec[k.lower() + "_mb"] = round(int(line.split()[1]) / 1024, 1)
        except OSError:
            pass
        try:
            class _MI(ctypes.Structure):
                _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                                           "usmblks", "fsmblks", "uordblks", "fordblks",
                                                           "keepcost")]
            libc = ctypes.CDLL("libc.so.6")
            libc.mallinfo2.restype = _MI
            mi = libc.mallinfo2()
            rec["malloc_in_use_mb"] = round((mi.uordblks + mi.hblkhd) / 2**20, 1)
            rec["malloc_free_kept_mb"] = round(mi.fordblks / 2**20, 1)
            rec["malloc_arena_mb"] = round(mi.arena / 2**20, 1)
        except (OSError, AttributeError):
            pass
        pool = pa.default_memory_pool()
        rec["arrow_pool"] = pool.backend_name
        rec["arrow_allocated_mb"] = round(pool.bytes_allocated() / 2**20, 1)
        rec["arrow_max_mb"] = round((pool.max_memory() or 0) / 2**20, 1)
        gc.collect()
        rec["objects"] = collections.Counter(type(o).__name__ for o in gc.get_objects()).most_common(12)
        if self.trace and tracemalloc.is_tracing():
            rec["traced_mb"] = round(tracemalloc.get_traced_memory()[0] / 2**20, 1)
            rec["top"] = [str(s) for s in tracemalloc.take_snapshot().statistics("lineno")[:10]]
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")


def _staging_schema(schema: pa.Schema) -> pa.Schema:
    extra = [pa.field("_tokens", pa.int32()), pa.field("prediction_json", pa.string()),
             pa.field("label_json", pa.string()), pa.field("_todo", pa.bool_()), pa.field("_copy_of", pa.int64())]
    return pa.schema([f for f in schema if f.name != "head_concentration"] + extra)


TODO_SCHEMA = pa.schema([pa.field("record", pa.int64()), pa.field("text", pa.string()),
                         pa.field("_tokens", pa.int32()), pa.field("prediction_json", pa.string()),
                         pa.field("label_json", pa.string()), pa.field("notes", pa.string()),
                         pa.field("preview", pa.string())])


# Ray Data's block size for the scoring stage (see _score_with_ray): an actor holds at most about one input
# block and one output block of this size, whatever the log's length.
BLOCK_BYTES = 512 * 1024


def _task_rows(batch_size: int) -> int:
    """Rows per row group of the pending inputs (what Ray's reader packs into blocks of at most
    :data:`BLOCK_BYTES`): 8 actor calls of ``4 × batch_size`` inputs, at least 2,048. The actor holds a task's
    input block and its scored output (about 250 bytes per input) until the task ends, so this and
    :data:`BLOCK_BYTES` bound the actor's memory whatever the log's length; Ray's per-task overhead (tens of
    ms) stays small against a task's scoring time. The driver also writes its output files in batches of this
    many rows."""
    return max(2048, 32 * max(1, int(batch_size)))


def _regroup_parquet(src: Path, dst: Path, rows: int) -> int:
    """Rewrite ``src`` as ``dst`` with row groups of at most ``rows`` rows, streaming (one row group in memory at
    a time; DuckDB's own row groups come in multiples of 2,048 rows); returns the number of rows."""
    src_file = pq.ParquetFile(src)
    tmp = dst.with_suffix(".parquet.tmp")
    n = 0
    with pq.ParquetWriter(tmp, src_file.schema_arrow, compression="zstd") as w:
        for batch in src_file.iter_batches(batch_size=rows):
            w.write_table(pa.Table.from_batches([batch]), row_group_size=rows)
            n += batch.num_rows
    os.replace(tmp, dst)
    return n


def _atomic_parquet(table: pa.Table, path: Path) -> None:
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def run_with_ray(tri, *, done: int, counts: dict, limit: int | None, batch_size: int, max_rows: int | None,
                 flush_rows: int, progress: Callable | None, progress_every: float, address: str | None,
                 workers: int, gpus_per_worker: float, device: str | None, t0: float,
                 fault: str | None = None) -> tuple[str, int, int, list[str]]:
    """Stage, score with Ray, assemble (see the module docstring). Returns (stopped, lines this run, analysed this
    run, reader notes)."""
    if not ray_available():
        raise ValueError(RAY_MISSING)
    from . import runner as R
    from .readers import LogReader
    from .store import duckdb_connect, to_table
    folder = tri.folder
    staging, out_dir = folder.dir / "staging", folder.dir / "ray_out"
    staging.mkdir(exist_ok=True)
    out_dir.mkdir(exist_ok=True)
    for tmp in list(staging.glob("*.tmp")) + list(out_dir.glob("*.tmp")):
        tmp.unlink()
    st_schema = _staging_schema(tri.schema)
    chunks = sorted((int(m.group(1)), int(m.group(2)), p) for p in staging.iterdir()
                    if (m := _CHUNK.match(p.name)))
    staged_to = chunks[-1][1] + 1 if chunks else done
    staged_to = max(staged_to, done)
    notes: list[str] = []
    stopped = "end of file"

    def report(lines, tokens, frac, final=False):
        if progress is None:
            return
        elapsed = time.perf_counter() - t0
        eta = None if final or not frac or frac <= 0 else elapsed * (1 - frac) / frac
        progress(R.Progress(lines, counts["analysed"], counts["skipped"], counts["failed"], elapsed,
                            tokens / elapsed if elapsed > 0 else 0.0, frac, eta, done, final,
                            counts["unreadable"], tokens))

    # 1. stage ------------------------------------------------------------------------------------------------
    reader = LogReader(tri.log, tri.info.format, tri.cfg.encoding, tri.cfg.delimiter,
                       columns=tri.cfg.mapping.used(), max_line_bytes=tri.cfg.max_line_bytes)
    it = iter(reader)
    buf: list[dict] = []
    read = staged_to
    last = 0.0

    def stage(rows: list[dict]) -> None:
        first: dict = {}
        todo = []
        for r in rows:
            r["_todo"], r["_copy_of"] = False, None
            r["prediction_json"] = json.dumps(r.pop("_prediction_raw", None), default=str)
            r["label_json"] = json.dumps(r.pop("_label_raw", None), default=str)
            if r["status"] is not None:
                continue
            sig = (r["text"], r["prediction_json"], r["label_json"])
            if sig in first:
                r["_copy_of"] = first[sig]["record"]
            else:
                first[sig] = r
                r["_todo"] = True
                todo.append(r)
        a, b = rows[0]["record"], rows[-1]["record"]
        _atomic_parquet(to_table(todo, TODO_SCHEMA), staging / f"todo-{a:012d}-{b:012d}.parquet")
        _atomic_parquet(to_table(rows, st_schema), staging / f"chunk-{a:012d}-{b:012d}.parquet")
    try:
        for rec in it:
            if rec.index < staged_to:
                continue
            if limit is not None and rec.index >= limit:
                stopped = "limit"
                break
            buf.append(R.prepare(rec, tri.cfg.mapping, tri.lm, tri.cfg.settings.mask_policy, tri.cfg.on_long))
            read += 1
            if len(buf) >= flush_rows:
                stage(buf)
                buf = []
            if time.perf_counter() - last >= progress_every:
                last = time.perf_counter()
                report(read, 0, 0.0)
        if buf:
            stage(buf)
    finally:
        if hasattr(it, "close"):
            it.close()
        notes.extend(reader.notes)

    # 2. score with Ray ---------------------------------------------------------------------------------------
    con = duckdb_connect(folder)
    src_todo = f"read_parquet('{staging}/todo-*.parquet')"
    have_out = any(out_dir.glob("*.parquet"))
    pending = staging / "pending.parquet"
    n_pending = 0
    if any(staging.glob("todo-*.parquet")):
        where = f"record >= {int(done)}"
        if have_out:
            where += f" AND record NOT IN (SELECT record FROM read_parquet('{out_dir}/*.parquet'))"
        # One row group per scoring task (see _task_rows, BLOCK_BYTES). One file, not a file per task: Ray's
        # Parquet reader reads the footers of many files in a fan-out of extra worker processes (measured
        # with 489 files: 37 processes, +2 GB for a minute).
        whole = staging / "pending-all.parquet"
        con.execute(f"COPY (SELECT * FROM {src_todo} WHERE {where} ORDER BY record) TO '{whole}' (FORMAT parquet)")
        n_pending = _regroup_parquet(whole, pending, _task_rows(batch_size))
        whole.unlink()
    con.close()
    if n_pending:
        _score_with_ray(tri, pending, out_dir, n_pending, batch_size, max_rows, address, workers, gpus_per_worker,
                        device, fault, lambda k, tok: report(read, tok, k / n_pending))

    # 3. assemble, in record order ----------------------------------------------------------------------------
    con = duckdb_connect(folder)
    lines_now = analysed_now = 0
    chunks = sorted((int(m.group(1)), int(m.group(2)), p) for p in staging.iterdir()
                    if (m := _CHUNK.match(p.name)))
    out_src = f"read_parquet('{out_dir}/*.parquet')"
    for a, b, path in chunks:
        if b < done:
            continue
        rows = pq.read_table(path).to_pylist()
        scored = {}
        if any(out_dir.glob("*.parquet")):
            tab = con.sql(f"SELECT * FROM {out_src} WHERE record BETWEEN {a} AND {b}").to_arrow_table()
            scored = {r["record"]: r for r in tab.to_pylist()}
        for r in rows:
            got = scored.get(r["record"]) if r["_todo"] else None
            if r["_copy_of"] is not None:
                orig = scored.get(r["_copy_of"])
                got = None if orig is None else {k: v for k, v in orig.items() if k not in R._OWN}
            if got is not None:
                r.update(got)
            elif r["status"] is None:
                raise RuntimeError(f"record {r['record']} was staged but not scored; run again to resume")
        tri._finish_window(rows)
        for r in rows:
            counts[r["status"]] += 1
            analysed_now += r["status"] == "analysed"
        lines_now += len(rows)
        folder.write_part(to_table(rows, tri.schema))
    con.close()
    report(done + lines_now, 0, 1.0, final=True)
    return stopped, lines_now, analysed_now, notes


def _score_with_ray(tri, pending: Path, out_dir: Path, n_pending: int, batch_size: int, max_rows: int | None,
                    address: str | None, workers: int, gpus_per_worker: float, device: str | None,
                    fault: str | None, tick: Callable[[int, int], None]) -> None:
    import ray
    import ray.data
    from dataclasses import asdict
    started = False
    saved_block = None
    if not ray.is_initialized():
        root = str(Path(__file__).resolve().parents[2])
        env = {"env_vars": {"PYTHONPATH": os.pathsep.join([root] + ([os.environ["PYTHONPATH"]]
                                                                  if os.environ.get("PYTHONPATH") else []))}}
        for var in ("EXPERTLENS_TRIAGE_MEMDEBUG", "EXPERTLENS_TRIAGE_BOUND_HEAP"):
            if os.environ.get(var):
                env["env_vars"][var] = os.environ[var]
        if address:
            ray.init(address=address, runtime_env=env, log_to_driver=False)
        else:
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, runtime_env=env, log_to_driver=False)
        started = True
    try:
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        workers = max(1, int(workers))
        per_actor = max(0.25, min(1.0, (cpus - 1.0) / workers)) if cpus > 1 else 0.5
        threads = max(1, int(per_actor))
        dev = device or ("cuda" if gpus_per_worker else str(tri.lm.device))
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        # Ray's block size (128 MiB by default) sets both how many staged rows one read yields as a block and
        # how much scored output an actor task buffers before handing it on: at the default a whole run of
        # small rows is one block, and the actor holds every scored row until the run ends (measured: Arrow's
        # pool in the actor growing ~250 bytes per line, nothing reaching the driver before the end).
        saved_block = ctx.target_max_block_size
        ctx.target_max_block_size = BLOCK_BYTES
        ds = ray.data.read_parquet(str(pending))
        scored = ds.map_batches(
            RayScorer, batch_size=max(1, batch_size * 4), batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=workers),
            fn_constructor_kwargs={"model": tri.cfg.model, "device": dev, "settings": asdict(tri.cfg.settings),
                                   "batch_size": batch_size, "max_rows": max_rows, "threads": threads,
                                   "fault": fault},
            num_cpus=per_actor, num_gpus=gpus_per_worker or None, max_restarts=-1, max_task_retries=-1)
        done = tokens = 0
        # the driver writes one output file per task-sized batch (small blocks are combined first)
        for batch in scored.iter_batches(batch_size=_task_rows(batch_size), batch_format="pyarrow"):
            if batch.num_rows == 0:
                continue
            _atomic_parquet(batch, out_dir / f"out-{uuid.uuid4().hex}.parquet")
            done += batch.num_rows
            tokens += int(np.nansum(np.asarray(batch["n_tokens"].to_numpy(zero_copy_only=False), dtype=float)))
            tick(done, tokens)
    finally:
        if saved_block is not None:
            ray.data.DataContext.get_current().target_max_block_size = saved_block
        if started:
            ray.shutdown()


def cleanup(folder) -> None:
    """Remove the staging and Ray output files once the parts are complete."""
    for name in ("staging", "ray_out"):
        p = folder.dir / name
        if p.exists():
            shutil.rmtree(p, ignore_errors=True)
