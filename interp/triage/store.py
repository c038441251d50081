"""Incremental Parquet storage of triage results, resume, the final ranking, and DuckDB queries (embedded).

Layout of a run folder::

    run.json            settings and the identity of the log (a resumed run must match them)
    parts/part-<first>-<last>.parquet   rows of records first..last (0-based), written atomically in order
    scored/             the parts re-scored against the final corpus norm (rebuilt at every finalisation)
    results.parquet     one row per record read, ordered by line, with the final suspicion and rank
    summary.json        counts, rates and settings

A part is written to a temporary name and renamed, so a killed run leaves only whole parts; the records they
cover are contiguous from the first record, and a resumed run continues after the last of them.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import registry
from .schema import score_columns

_PART = re.compile(r"^part-(\d{12})-(\d{12})\.parquet$")

# Columns every run writes (slice fields are added after them, as strings).
BASE_FIELDS: list[tuple[str, pa.DataType]] = [
    ("record", pa.int64()), ("line", pa.int64()), ("status", pa.string()), ("reason_code", pa.string()),
    ("reason", pa.string()), ("notes", pa.string()), ("preview", pa.string()),
    ("text", pa.string()), ("id", pa.string()), ("timestamp", pa.string()), ("time", pa.timestamp("us", tz="UTC")),
    ("prediction", pa.string()), ("label", pa.string()),
    *score_columns(),                      # the fields of schema.Scored (the registry's core scores), in order
    ("agreement", pa.float64()), ("logged_correct", pa.float64()),
    ("concentration_z", pa.float64()), ("concentration_layer", pa.int32()), ("concentration_head", pa.int32()),
    ("suspicion", pa.float64()),
]
FINAL_FIELDS = ["rank", "id_count", "first_line_of_id", "text_count"]
RESERVED = frozenset([n for n, _ in BASE_FIELDS] + FINAL_FIELDS + ["head_concentration", "explorer_url"]
                     + registry.all_columns())


def schema_for(slices: tuple[str, ...] | list[str], n_heads_total: int, extras=()) -> pa.Schema:
    """The results schema of a run: the base and core score columns, then the columns of the optional scores
    switched on (``extras``: (column, arrow type) pairs, ``registry.enabled_columns(settings)``; none by
    default, so a run without optional scores has exactly the core schema), the head vector, the slices."""
    fields = [pa.field(n, t) for n, t in BASE_FIELDS]
    fields.extend(pa.field(n, t) for n, t in extras)
    fields.append(pa.field("head_concentration", pa.list_(pa.float32(), int(n_heads_total))))
    fields.extend(pa.field(s, pa.string()) for s in slices)
    return pa.schema(fields)


class ScoreGather:
    """The score values of rows, column by column. A row either holds its values in its dict, or points into the
    columns of the batch it was scored in (``_sc``: (``schema.ScoredColumns``, index), the column path of the
    scoring); values are gathered with one NumPy indexing per batch and column, the dict rows one by one."""

    def __init__(self, rows: list[dict]):
        self.rows = rows
        self.n = len(rows)
        groups: dict[int, tuple] = {}
        plain = []
        for j, r in enumerate(rows):
            ref = r.get("_sc")
            if ref is None:
                plain.append(j)
                continue
            g = groups.get(id(ref[0]))
            if g is None:
                g = groups[id(ref[0])] = (ref[0], [], [])
            g[1].append(j)
            g[2].append(ref[1])
        self.plain = plain
        self.groups = [(cols, np.asarray(at, dtype=np.int64), np.asarray(idx, dtype=np.int64))
                       for cols, at, idx in groups.values()]

    def has(self, name: str) -> bool:
        return any(cols.has(name) for cols, _, _ in self.groups)

    def _fill(self, out: np.ndarray, name: str) -> list[int]:
        """Gathered values into ``out``; returns the positions whose values are in their dicts."""
        rest = list(self.plain)
        for cols, at, idx in self.groups:
            if cols.has(name):
                out[at] = cols.column(name)[idx]
            else:
                rest.extend(at.tolist())
        return rest

    def floats(self, name: str) -> np.ndarray:
        """float64, NaN where missing or None."""
        out = np.full(self.n, np.nan)
        for j in self._fill(out, name):
            v = self.rows[j].get(name)
            out[j] = np.nan if v is None else v
        return out

    def strings(self, name: str) -> list:
        out = np.empty(self.n, dtype=object)
        for j in self._fill(out, name):
            out[j] = self.rows[j].get(name)
        return out.tolist()

    def heads(self, width: int) -> np.ndarray:
        """The rows' head vectors as an n × ``width`` float32 matrix (every row has one)."""
        out = np.zeros((self.n, width), dtype=np.float32)
        for j in self._fill(out, "head_concentration"):
            out[j] = np.asarray(self.rows[j]["head_concentration"], np.float32)
        return out

    def column(self, f: pa.Field) -> pa.Array:
        """The column of field ``f`` (a score column the batches hold), as :func:`to_table` makes it."""
        name, typ, n = f.name, f.type, self.n
        if pa.types.is_floating(typ):
            return pa.array(self.floats(name), type=typ, from_pandas=True)
        if pa.types.is_fixed_size_list(typ):
            width = typ.list_size
            out = np.zeros((n, width), dtype=np.float32)
            valid = np.ones(n, dtype=bool)
            for j in self._fill(out, name):
                v = self.rows[j].get(name)
                if v is None:
                    valid[j] = False
                else:
                    out[j] = np.asarray(v, np.float32)
            return pa.FixedSizeListArray.from_arrays(pa.array(out.reshape(-1), pa.float32()), width,
                                                     mask=pa.array(~valid))
        if pa.types.is_integer(typ):
            out = np.zeros(n, dtype=np.int64)
            null = np.zeros(n, dtype=bool)
            rest = self._fill(out, name)
            if name in _NEG_NULL:
                null |= out < 0
            for j in rest:
                v = self.rows[j].get(name)
                if v is None or (isinstance(v, (int, np.integer)) and v < 0 and name in _NEG_NULL):
                    out[j], null[j] = 0, True
                else:
                    out[j], null[j] = int(v), False
            return pa.array(np.where(null, 0, out), type=typ, mask=null)
        if pa.types.is_boolean(typ):
            out = np.zeros(n, dtype=bool)
            null = np.zeros(n, dtype=bool)
            for j in self._fill(out, name):
                v = self.rows[j].get(name)
                null[j] = v is None
                out[j] = bool(v) if v is not None else False
            return pa.array(out, type=typ, mask=null)
        return pa.array(self.strings(name), typ)


def to_table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """Rows (dicts) → a table of ``schema``; NaN floats become nulls (so that ranking puts them last). Score
    values of rows that point into their batch's columns are gathered column by column (:class:`ScoreGather`)."""
    cols = {}
    gather = ScoreGather(rows) if any("_sc" in r for r in rows) else None
    for f in schema:
        if gather is not None and gather.has(f.name):
            cols[f.name] = gather.column(f)
            continue
        vals = [r.get(f.name) for r in rows]
        if pa.types.is_floating(f.type):
            arr = np.array([np.nan if v is None else v for v in vals], dtype=np.float64)
            cols[f.name] = pa.array(arr, type=f.type, from_pandas=True)
        elif pa.types.is_integer(f.type):
            cols[f.name] = pa.array([None if v is None or (isinstance(v, (int, np.integer)) and v < 0 and
                                                          f.name in _NEG_NULL) else int(v) for v in vals], f.type)
        elif pa.types.is_fixed_size_list(f.type):
            cols[f.name] = pa.array([None if v is None else np.asarray(v, np.float32) for v in vals], f.type)
        else:
            cols[f.name] = pa.array(vals, f.type)
    return pa.table(cols, schema=schema)


_NEG_NULL = {"worst_layer", "worst_head", "concentration_layer", "concentration_head", "query"}


class RunFolder:
    """The files of one run (see the module docstring)."""

    def __init__(self, out_dir: str | os.PathLike):
        self.dir = Path(out_dir)
        self.parts = self.dir / "parts"
        self.scored = self.dir / "scored"
        self.results = self.dir / "results.parquet"
        self.summary = self.dir / "summary.json"
        self.run_json = self.dir / "run.json"

    def create(self) -> None:
        self.parts.mkdir(parents=True, exist_ok=True)
        for tmp in self.parts.glob("*.tmp"):
            tmp.unlink()

    @property
    def lock_path(self) -> Path:
        return self.dir / "run.lock"

    def acquire(self) -> None:
        """Take the folder for this process (a lock file holding its pid). Raises ValueError when another
        living process holds it; a lock left by a process that died (a killed run) is taken over."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    pid = int(self.lock_path.read_text().strip() or 0)
                except (OSError, ValueError):
                    pid = 0
                if pid and pid != os.getpid() and _alive(pid):
                    raise ValueError(f"another run (process {pid}) is writing to {self.dir}; wait for it to "
                                     "finish or use another output folder") from None
                self.lock_path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            return
        raise ValueError(f"could not lock {self.dir}")

    def release(self) -> None:
        try:
            if self.lock_path.read_text().strip() == str(os.getpid()):
                self.lock_path.unlink()
        except OSError:
            pass

    def wipe(self) -> None:
        for p in (self.parts, self.scored, self.dir / "staging", self.dir / "ray_out"):
            if p.exists():
                shutil.rmtree(p)
        for f in (self.results, self.summary, self.run_json):
            if f.exists():
                f.unlink()
        tmp = self.dir / ".duckdb_tmp"
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)

    def read_config(self) -> dict | None:
        if not self.run_json.exists():
            return None
        try:
            return json.loads(self.run_json.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None

    def write_config(self, cfg: dict) -> None:
        _atomic_write_text(self.run_json, json.dumps(cfg, indent=2, ensure_ascii=False, default=str))

    def part_files(self) -> list[tuple[int, int, Path]]:
        """Whole parts, in record order; raises ValueError if they are not contiguous from record 0."""
        out = []
        if not self.parts.exists():
            return out
        for p in self.parts.iterdir():
            m = _PART.match(p.name)
            if m:
                out.append((int(m.group(1)), int(m.group(2)), p))
        out.sort()
        expect = 0
        for first, last, p in out:
            if first != expect:
                raise ValueError(f"{self.parts} is inconsistent: records {expect}..{first - 1} are missing; "
                                 "start again with --restart")
            expect = last + 1
        return out

    def done_records(self) -> int:
        parts = self.part_files()
        return parts[-1][1] + 1 if parts else 0

    def write_part(self, table: pa.Table) -> Path:
        first, last = int(table["record"][0].as_py()), int(table["record"][-1].as_py())
        path = self.parts / f"part-{first:012d}-{last:012d}.parquet"
        tmp = path.with_suffix(".parquet.tmp")
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
        return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def head_matrix(table: pa.Table, n_heads_total: int) -> tuple[np.ndarray, np.ndarray]:
    """(row indices with a head_concentration vector, their rows × heads matrix) of a part."""
    col = table["head_concentration"].combine_chunks()
    valid = np.asarray(col.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    idx = np.nonzero(valid)[0]
    if not idx.size:
        return idx, np.zeros((0, n_heads_total), np.float32)
    vals = col.filter(pa.array(valid)).flatten().to_numpy(zero_copy_only=False)
    return idx, np.asarray(vals, np.float32).reshape(idx.size, n_heads_total)


DUCKDB_MEMORY_LIMIT = "256MB"


def duckdb_connect(folder: RunFolder | None = None):
    """An embedded DuckDB connection with bounded memory (``DUCKDB_MEMORY_LIMIT``; spills to the run folder's temp
    files)."""
    import duckdb
    con = duckdb.connect(config={"threads": max(1, min(4, os.cpu_count() or 1)),
                                 "memory_limit": DUCKDB_MEMORY_LIMIT})
    if folder is not None:
        tmp = folder.dir / ".duckdb_tmp"
        tmp.mkdir(exist_ok=True)
        con.execute(f"SET temp_directory = '{_sql_str(str(tmp))}'")
    return con


def _sql_str(s: str) -> str:
    return s.replace("'", "''")


def quote_ident(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def duckdb_available() -> bool:
    try:
        import duckdb  # noqa: F401
    except ImportError:
        return False
    return True


def build_results(folder: RunFolder) -> dict:
    """``results.parquet`` from ``scored/``: ordered by line, with rank (1 = most suspicious analysed input; ties
    by line), duplicate-id and duplicate-text bookkeeping. Returns counts read back with DuckDB. Without DuckDB
    installed (a bare GPU machine running the benchmark, say) the same file and counts are built in memory with
    pyarrow and pandas (:func:`build_results_in_memory`); the query layer (``ResultsQuery``) still needs DuckDB."""
    if not duckdb_available():
        return build_results_in_memory(folder)
    con = duckdb_connect(folder)
    src = f"read_parquet('{_sql_str(str(folder.scored))}/*.parquet')"
    tmp = folder.results.with_suffix(".parquet.tmp")
    # The rank and the duplicate bookkeeping are window functions over the whole run; they are computed on a
    # narrow projection (line, status, suspicion, id, key) into a temporary table, and the wide rows (texts,
    # previews, notes) are joined to it by line and sorted by line: a plain external sort, which spills to the
    # run folder. Window functions over the wide rows themselves ran out of DuckDB's bounded memory at about
    # 1,000,000 lines.
    con.execute(f"""
        CREATE TEMP TABLE el_bookkeeping AS
          SELECT line,
            CASE WHEN status = 'analysed' THEN row_number() OVER (
                PARTITION BY status = 'analysed' ORDER BY suspicion DESC NULLS LAST, line) END AS rank,
            CASE WHEN id IS NOT NULL THEN count(*) OVER (PARTITION BY id) END AS id_count,
            CASE WHEN id IS NOT NULL AND count(*) OVER (PARTITION BY id) > 1
                 THEN min(line) OVER (PARTITION BY id) END AS first_line_of_id,
            CASE WHEN status = 'analysed' THEN count(*) OVER (PARTITION BY status = 'analysed', key) END
                 AS text_count
          FROM (SELECT line, status, suspicion, id, key FROM {src})""")
    con.execute(f"""
        COPY (
          SELECT s.* EXCLUDE (head_concentration), b.rank, b.id_count, b.first_line_of_id, b.text_count
          FROM {src} AS s JOIN el_bookkeeping AS b ON s.line = b.line
          ORDER BY s.line
        ) TO '{_sql_str(str(tmp))}' (FORMAT parquet, COMPRESSION zstd)""")
    con.execute("DROP TABLE el_bookkeeping")
    os.replace(tmp, folder.results)
    res = f"read_parquet('{_sql_str(str(folder.results))}')"
    counts = dict(con.execute(f"SELECT status, count(*) FROM {res} GROUP BY status").fetchall())
    reasons = dict(con.execute(f"SELECT reason_code, count(*) FROM {res} WHERE status <> 'analysed' "
                               "GROUP BY reason_code ORDER BY 2 DESC").fetchall())
    dup = con.execute(f"SELECT count(*), coalesce(sum(c), 0) FROM (SELECT id, count(*) c FROM {res} "
                      "WHERE id IS NOT NULL GROUP BY id HAVING count(*) > 1)").fetchone()
    dup_text = con.execute(f"SELECT count(*), coalesce(sum(c), 0) FROM (SELECT key, count(*) c FROM {res} "
                           "WHERE status = 'analysed' GROUP BY key HAVING count(*) > 1)").fetchone()
    noted = con.execute(f"SELECT count(*) FILTER (WHERE notes LIKE '%U+FFFD%'), "
                        f"count(*) FILTER (WHERE notes LIKE '%NUL%'), count(*) FILTER (WHERE truncated) "
                        f"FROM {res}").fetchone()
    total = con.execute(f"SELECT count(*) FROM {res}").fetchone()[0]
    con.close()
    return {"lines_total": int(total), "analysed": int(counts.get("analysed", 0)),
            "skipped": int(counts.get("skipped", 0)), "failed": int(counts.get("failed", 0)),
            "unreadable": int(counts.get("unreadable", 0)),
            "reasons": {str(k): int(v) for k, v in reasons.items()},
            "duplicate_ids": {"ids": int(dup[0]), "lines": int(dup[1])},
            "duplicate_texts": {"texts": int(dup_text[0]), "lines": int(dup_text[1])},
            "lines_with_replaced_bytes": int(noted[0]), "lines_with_nul_bytes": int(noted[1]),
            "truncated": int(noted[2])}


def build_results_in_memory(folder: RunFolder) -> dict:
    """:func:`build_results` without DuckDB: the same rows, columns, order and counts, computed with pyarrow and
    pandas in memory (every scored row at once: fine for a benchmark, not for a billion-line log)."""
    import pandas as pd
    files = sorted(folder.scored.glob("*.parquet"))
    tables = [pq.read_table(f) for f in files]
    t = pa.concat_tables([x.drop_columns([c for c in ("head_concentration",) if c in x.column_names])
                          for x in tables]) if tables else None
    df = t.to_pandas(types_mapper={pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype(),
                                   pa.bool_(): pd.BooleanDtype()}.get)
    analysed = (df["status"] == "analysed").to_numpy(dtype=bool)
    line = df["line"].to_numpy(dtype=np.int64)
    sus = df["suspicion"].to_numpy(dtype=np.float64, na_value=np.nan)
    order = np.lexsort((line, np.where(np.isnan(sus), np.inf, -sus), np.isnan(sus)))
    order = order[analysed[order]]
    rank = np.zeros(len(df), dtype=np.int64)
    rank[order] = np.arange(1, order.size + 1)
    df["rank"] = pd.Series(rank, index=df.index, dtype="Int64").where(analysed)
    has_id = df["id"].notna()
    id_count = df.groupby("id")["id"].transform("size")
    df["id_count"] = pd.array(id_count.where(has_id), dtype="Int64")
    first = df.groupby("id")["line"].transform("min")
    df["first_line_of_id"] = pd.array(first.where(has_id & (id_count > 1)), dtype="Int64")
    key_count = df[analysed].groupby("key")["key"].transform("size")
    df["text_count"] = pd.array(key_count.reindex(df.index), dtype="Int64")
    df = df.sort_values("line", kind="stable").reset_index(drop=True)
    out = pa.Table.from_pandas(df, preserve_index=False)
    fields = []
    for f in out.schema:
        want = t.schema.field(f.name).type if f.name in t.column_names else pa.int64()
        fields.append(pa.field(f.name, want))
    out = out.cast(pa.schema(fields))
    tmp = folder.results.with_suffix(".parquet.tmp")
    pq.write_table(out, tmp, compression="zstd")
    os.replace(tmp, folder.results)
    status = df["status"]
    reasons = df.loc[status != "analysed", "reason_code"].value_counts(dropna=False)
    ids = df[df["id"].notna()].groupby("id").size()
    ids = ids[ids > 1]
    keys = df[status == "analysed"].groupby("key").size()
    keys = keys[keys > 1]
    notes = df["notes"].fillna("")
    return {"lines_total": int(len(df)), "analysed": int((status == "analysed").sum()),
            "skipped": int((status == "skipped").sum()), "failed": int((status == "failed").sum()),
            "unreadable": int((status == "unreadable").sum()),
            "reasons": {str(None if pd.isna(k) else k): int(v) for k, v in reasons.items()},
            "duplicate_ids": {"ids": int(len(ids)), "lines": int(ids.sum())},
            "duplicate_texts": {"texts": int(len(keys)), "lines": int(keys.sum())},
            "lines_with_replaced_bytes": int(notes.str.contains("U+FFFD", regex=False).sum()),
            "lines_with_nul_bytes": int(notes.str.contains("NUL", regex=False).sum()),
            "truncated": int(df["truncated"].fillna(False).astype(bool).sum())}


# ------------------------------------------------------------------------------------------- queries ---

# Rankings every run has: name → (SQL expression, direction). Every ranking is computed in DuckDB over the
# whole run (see ResultsQuery.ranked); "concentration" ranks by the magnitude of the robust z, either sign. The
# core scores' rankings come from the registry; a run with optional scores also has theirs
# (ResultsQuery.rankings).
RANKINGS: dict[str, tuple[str, str]] = {
    "suspicion": ("suspicion", "DESC"),
    **{name: (expr, direction) for name, expr, direction in registry.CORE.rankings},
    "concentration": ("abs(concentration_z)", "DESC"),
    "line": ("line", "ASC"),
}


def all_rankings() -> dict[str, tuple[str, str]]:
    """Every ranking a run may have: :data:`RANKINGS` and those of the registered optional scores (before
    ``line``)."""
    out = {k: v for k, v in RANKINGS.items() if k != "line"}
    out.update(registry.rankings())
    out["line"] = RANKINGS["line"]
    return out


def export_ranked_csv(out_dir: str | os.PathLike, ranking: str = "suspicion", filters: dict | None = None,
                      time_range=None, group: bool = True, link: dict | None = None) -> bytes:
    """The ranked table of a run as CSV bytes, on a connection of its own (safe to call at any time, e.g. when
    a download is requested after the page that offered it has finished)."""
    q = ResultsQuery(out_dir)
    try:
        return q.ranked_csv(ranking, filters, time_range, group, link)
    finally:
        q.close()


def export_not_analysed_csv(out_dir: str | os.PathLike) -> bytes:
    """Skipped, unreadable and failed lines as CSV bytes, on a connection of its own."""
    q = ResultsQuery(out_dir)
    try:
        return q.not_analysed().to_csv(index=False).encode("utf-8")
    finally:
        q.close()

class ResultsQuery:
    """Read-only DuckDB queries over a finished (or finalised) run's ``results.parquet``."""

    def __init__(self, out_dir: str | os.PathLike):
        self.folder = RunFolder(out_dir)
        if not self.folder.results.exists():
            raise FileNotFoundError(f"no results in {self.folder.dir}: run the triage first")
        self.src = f"read_parquet('{_sql_str(str(self.folder.results))}')"
        self.con = duckdb_connect(None)
        self.columns = [r[0] for r in self.con.execute(f"DESCRIBE SELECT * FROM {self.src}").fetchall()]

    def close(self) -> None:
        self.con.close()

    def _where(self, filters: dict | None, time_range=None, status: str | tuple | None = "analysed"):
        clauses, params = [], []
        if status:
            st = (status,) if isinstance(status, str) else tuple(status)
            clauses.append("status IN (" + ", ".join("?" for _ in st) + ")")
            params.extend(st)
        for col, values in (filters or {}).items():
            if col not in self.columns:
                raise ValueError(f"unknown column {col!r}")
            values = list(values)
            if not values:
                continue
            nulls = any(v is None for v in values)
            vals = [v for v in values if v is not None]
            part = []
            if vals:
                part.append(f"CAST({quote_ident(col)} AS VARCHAR) IN (" + ", ".join("?" for _ in vals) + ")")
                params.extend(str(v) for v in vals)
            if nulls:
                part.append(f"{quote_ident(col)} IS NULL")
            clauses.append("(" + " OR ".join(part) + ")")
        if time_range is not None:
            lo, hi = time_range
            if lo is not None:
                clauses.append("time >= ?")
                params.append(lo)
            if hi is not None:
                clauses.append("time <= ?")
                params.append(hi)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def top(self, limit: int = 100, filters: dict | None = None, time_range=None, order_by: str = "suspicion",
            descending: bool = True, columns: list[str] | None = None):
        """Analysed inputs (a pandas DataFrame) ordered by one column over the whole run, most suspicious first
        by default (one row per line; :meth:`ranked` groups identical inputs)."""
        if order_by not in self.columns:
            raise ValueError(f"unknown column {order_by!r}")
        cols = ", ".join(quote_ident(c) for c in (columns or self.columns) if c in self.columns)
        where, params = self._where(filters, time_range)
        direction = "DESC" if descending else "ASC"
        sql = (f"SELECT {cols} FROM {self.src}{where} ORDER BY {quote_ident(order_by)} {direction} NULLS LAST, "
               f"line LIMIT {int(limit)}")
        return self.con.execute(sql, params).df()

    def rankings(self) -> dict[str, tuple[str, str]]:
        """The rankings this run has: :data:`RANKINGS` plus those of the optional scores it computed."""
        out = {k: v for k, v in RANKINGS.items() if k != "line"}
        out.update(registry.rankings(self.columns))
        out["line"] = RANKINGS["line"]
        return out

    def ranked(self, ranking: str = "suspicion", limit: int | None = 100, filters: dict | None = None,
               time_range=None, group: bool = True):
        """The analysed inputs of the slice ranked by one of :data:`RANKINGS`, computed in DuckDB over the whole
        run (never over a first page of rows). With ``group``, identical inputs (the same token ids: the same
        content key) are one row — the first line of the group, whose scores every copy shares — with
        ``copies`` and ``lines`` (up to the first 20 line numbers). ``rank`` is the position in this ranking
        (ties by line); ``suspicion_rank`` the run's rank by suspicion. The one implementation behind the page,
        the CLI and the exports."""
        have = self.rankings()
        if ranking not in have:
            if ranking in registry.rankings():
                raise ValueError(f"ranking {ranking!r} needs a score this run did not compute: run the triage "
                                 f"again with it switched on (e.g. --{ranking}-score)")
            raise ValueError(f"unknown ranking {ranking!r}: choose one of {', '.join(have)}")
        expr, direction = have[ranking]
        where, params = self._where(filters, time_range)
        lim = "" if limit is None else f" LIMIT {int(limit)}"
        if group:
            sql = f"""
                WITH f AS (SELECT * FROM {self.src}{where}),
                g AS (SELECT key, count(*) AS copies, min(line) AS first_line,
                             list_slice(list(line ORDER BY line), 1, 20) AS some_lines FROM f GROUP BY key)
                SELECT row_number() OVER (ORDER BY {expr} {direction} NULLS LAST, f.line) AS rank,
                       f.* EXCLUDE (rank), f.rank AS suspicion_rank, g.copies,
                       array_to_string(g.some_lines, ', ') || CASE WHEN g.copies > 20 THEN ', …' ELSE '' END
                         AS lines
                FROM f JOIN g ON f.key = g.key AND f.line = g.first_line
                ORDER BY rank{lim}"""
        else:
            sql = f"""
                SELECT row_number() OVER (ORDER BY {expr} {direction} NULLS LAST, line) AS rank,
                       * EXCLUDE (rank), rank AS suspicion_rank, 1 AS copies, CAST(line AS VARCHAR) AS lines
                FROM {self.src}{where} ORDER BY 1{lim}"""
        return self.con.execute(sql, params).df()

    def ranked_csv(self, ranking: str = "suspicion", filters: dict | None = None, time_range=None,
                   group: bool = True, link: dict | None = None) -> bytes:
        """:meth:`ranked` over the whole slice as CSV bytes (UTF-8), with an ``explorer_url`` column when
        ``link`` gives the explorer settings (``model``, ``scheme``, ``k``, ``seed``)."""
        table = self.ranked(ranking, None, filters, time_range, group)
        if link is not None:
            from .links import row_url
            table["explorer_url"] = [row_url(r, link["model"], link["scheme"], link["k"], link["seed"])
                                     for r in table.to_dict("records")]
        return table.to_csv(index=False).encode("utf-8")

    def count(self, filters: dict | None = None, time_range=None, status="analysed") -> int:
        where, params = self._where(filters, time_range, status)
        return int(self.con.execute(f"SELECT count(*) FROM {self.src}{where}", params).fetchone()[0])

    def not_analysed(self, limit: int | None = None):
        """Skipped and failed lines with their line numbers, reasons and a preview of the raw line."""
        lim = f" LIMIT {int(limit)}" if limit else ""
        return self.con.execute(f"SELECT line, status, reason_code, reason, preview, notes FROM {self.src} "
                                f"WHERE status <> 'analysed' ORDER BY line{lim}").df()

    def values(self, column: str, limit: int = 50) -> list[tuple]:
        """The most frequent values of a column among analysed inputs: (value, count)."""
        if column not in self.columns:
            raise ValueError(f"unknown column {column!r}")
        q = quote_ident(column)
        return self.con.execute(f"SELECT {q}, count(*) FROM {self.src} WHERE status = 'analysed' GROUP BY {q} "
                                f"ORDER BY 2 DESC, 1 LIMIT {int(limit)}").fetchall()

    def by_slice(self, column: str, filters: dict | None = None, time_range=None, top_share: float = 0.05):
        """Per value of ``column``: inputs, mean suspicion, and the share of them among the top ``top_share``
        of all analysed inputs by suspicion."""
        if column not in self.columns:
            raise ValueError(f"unknown column {column!r}")
        total = self.count()
        cut = max(1, int(np.ceil(total * top_share))) if total else 1
        where, params = self._where(filters, time_range)
        q = quote_ident(column)
        return self.con.execute(
            f"SELECT {q} AS value, count(*) AS inputs, avg(suspicion) AS mean_suspicion, "
            f"avg(CASE WHEN rank <= {cut} THEN 1.0 ELSE 0.0 END) AS share_in_top "
            f"FROM {self.src}{where} GROUP BY {q} ORDER BY mean_suspicion DESC NULLS LAST", params).df()

    def histogram(self, column: str = "suspicion", bins: int = 40, filters: dict | None = None, time_range=None):
        """(edges, counts) of a score among analysed inputs, computed in DuckDB (bounded memory)."""
        if column not in self.columns:
            raise ValueError(f"unknown column {column!r}")
        q = quote_ident(column)
        where, params = self._where(filters, time_range)
        lo, hi = self.con.execute(f"SELECT min({q}), max({q}) FROM {self.src}{where}", params).fetchone()
        if lo is None:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        lo, hi = float(lo), float(hi)
        if hi <= lo:
            hi = lo + 1e-9
        width = (hi - lo) / bins
        rows = self.con.execute(
            f"SELECT least(CAST(floor(({q} - ?) / ?) AS BIGINT), {bins - 1}) AS b, count(*) FROM {self.src}{where}"
            f"{' AND' if where else ' WHERE'} {q} IS NOT NULL GROUP BY b", [lo, width] + params).fetchall()
        counts = np.zeros(bins, dtype=np.int64)
        for b, c in rows:
            counts[int(b)] = c
        return lo + width * np.arange(bins + 1), counts

    def time_bounds(self):
        if "time" not in self.columns:
            return None
        lo, hi = self.con.execute(f"SELECT epoch_us(min(time)), epoch_us(max(time)) FROM {self.src} "
                                  "WHERE status = 'analysed'").fetchone()
        if lo is None:
            return None
        import datetime as dt
        utc = dt.timezone.utc
        return (dt.datetime.fromtimestamp(lo / 1e6, tz=utc), dt.datetime.fromtimestamp(hi / 1e6, tz=utc))
