"""Dashboard speed and payload, measured in a real browser (headless Debian Chromium via Playwright) against
`streamlit run app.py` on a free local port.

For each model (mini-bert when it is built, and MiniLM) at n = 128 tokens:
* analyze_s: from pressing Analyze (a text not analysed before; the model already loaded) to the overview
  fully drawn (all plotly charts present and the script run finished) — target < 1.5 s on 2 cores;
* head_switch_s: on the one-head page, from choosing another head to its page fully drawn — target < 0.5 s.
Medians over a few repetitions, each with fresh text or head, so no result comes from the cache.

Payload: the largest websocket message the browser receives on each page at n = 512 (MiniLM), next to what
shipping every layer × head × n² attention weight as JSON would take (bertviz's approach). Must stay under a
few MB.

With ``--profile``, each head switch also runs under the browser's CPU profiler and the median main-thread busy
time (all of it, and plotly.js's share) is reported: a figure of the page's own work that the wait for the server
and other processes on a shared machine disturb much less than the wall time.

With ``--baseline DIR`` (another checkout of the app, e.g. ``git archive <commit> | tar -x -C DIR``), a second
server runs that checkout and the head switch is measured on both, in alternating rounds (one layer per round,
the same heads on both, so neither is served from its cache), and both figures and their ratio are reported
("baseline" and "after").

Prints one JSON object as its last line. Usage: .venv/bin/python benchmarks/bench_app.py [--reps 3]
[--models minilm] [--skip-analyze] [--skip-payload] [--profile] [--baseline DIR --rounds 3]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from conftest import CHROMIUM, CHROMIUM_ARGS, free_port, start_server, stop_server  # noqa: E402

IDLE_JS = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  return app && app.getAttribute('data-test-script-state') === 'notRunning';
}"""
# Plotly charts drawn by Streamlit (in the page) and by the app's live-chart component (in a same-origin iframe,
# whose chart counts the figures it has drawn in its data-drawn attribute).
CHARTS_JS = """
  window.__elFrames = () => Array.from(document.querySelectorAll('iframe[data-testid="stCustomComponentV1"]'))
    .map(f => { try { return f.contentDocument && f.contentDocument.getElementById('chart'); } catch (e) { return null; } })
    .filter(c => c);
  window.__elAllDrawn = () => {
    const charts = document.querySelectorAll('[data-testid="stPlotlyChart"]');
    const drawn = document.querySelectorAll('[data-testid="stPlotlyChart"] .main-svg');
    const live = window.__elFrames();
    return (charts.length + live.length) > 0 && drawn.length >= charts.length &&
           live.every(c => c.querySelector('.main-svg'));
  };
"""
ALL_DRAWN_JS = "() => {" + CHARTS_JS + " return window.__elAllDrawn(); }"
SVG_COUNT_JS = """() => document.querySelectorAll('.js-plotly-plot .main-svg').length +
  Array.from(document.querySelectorAll('iframe[data-testid="stCustomComponentV1"]')).reduce((s, f) => {
    try { return s + f.contentDocument.querySelectorAll('.js-plotly-plot .main-svg').length; } catch (e) { return s; }
  }, 0)"""
# In-page clock: pointerdown on anything starts it; done = the script run that followed has finished (the app's
# script-state attribute went running → notRunning, also seen in the recorded old values), every plotly chart on
# the page has drawn its SVG, and every live chart has drawn a new figure since the pointer went down.
CLOCK_JS = """() => {""" + CHARTS_JS + """
  const app = document.querySelector('[data-testid="stApp"]');
  window.__el = {t0: null, seen: false, done: null, live: new Map()};
  new MutationObserver((records) => {
    if (window.__el.t0 === null) return;
    // a short run (a fragment) may go running → notRunning before this callback: read the recorded old values
    if (app.getAttribute('data-test-script-state') === 'running' ||
        records.some(r => r.oldValue === 'running')) window.__el.seen = true;
  }).observe(app, {attributes: true, attributeFilter: ['data-test-script-state'], attributeOldValue: true});
  document.addEventListener('pointerdown', () => {
    window.__el.t0 = performance.now(); window.__el.seen = false;
    window.__el.live = new Map(window.__elFrames().map(c => [c, +(c.getAttribute('data-drawn') || 0)]));
  }, true);
}"""
DONE_JS = """() => {
  const el = window.__el, app = document.querySelector('[data-testid="stApp"]');
  if (!el || el.t0 === null || !el.seen || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  if (!window.__elAllDrawn()) return false;
  for (const c of window.__elFrames())
    if (+(c.getAttribute('data-drawn') || 0) <= (el.live.has(c) ? el.live.get(c) : -1)) return false;
  return performance.now() - el.t0;
}"""


SENTENCES = ("the old river bank was covered in snow after the long winter storm",
             "markets fell sharply when the central bank raised interest rates again",
             "she put the heavy book on the kitchen table and left the room quietly",
             "a small dog ran across the busy road to meet its owner at the gate",
             "the king and the queen walked through the city to see the new bridge")


def text_of(lm, n_tokens: int, seed: int) -> str:
    """A text of exactly ``n_tokens`` tokens (special tokens included) for this tokenizer, with one [MASK]."""
    words = []
    i = seed
    while True:
        words += SENTENCES[i % len(SENTENCES)].split()
        i += 1
        ids = lm.tokenizer(" ".join(words))["input_ids"]
        if len(ids) >= n_tokens:
            break
    while len(lm.tokenizer(" ".join(words) + " [MASK] .")["input_ids"]) > n_tokens:
        words.pop()
    text = " ".join(words) + " [MASK] ."
    while len(lm.tokenizer(text)["input_ids"]) < n_tokens:
        text = "the " + text
    return text


def url(base: str, path: str = "", **params) -> str:
    return f"{base}/{path}" + ("?" + urllib.parse.urlencode(params) if params else "")


def wait_drawn(page, charts: int, timeout: float = 180_000) -> None:
    page.wait_for_function(f"() => ({SVG_COUNT_JS})() >= {charts}", timeout=timeout)
    page.wait_for_function(IDLE_JS, timeout=timeout, polling="raf")
    page.wait_for_function(ALL_DRAWN_JS, timeout=timeout)


def timed(page, action, timeout: float = 180_000) -> float:
    """Seconds from the pointer going down in ``action`` to the page fully drawn, measured in the page."""
    page.evaluate(CLOCK_JS)
    action()
    return page.wait_for_function(DONE_JS, timeout=timeout, polling="raf").json_value() / 1000.0


def measure_analyze(page, base: str, model: str, text: str) -> float:
    page.goto(url(base, model=model), timeout=180_000)
    page.wait_for_function(IDLE_JS, timeout=180_000)
    box = page.get_by_role("textbox", name="Text")
    box.fill(text)
    box.press("Control+Enter")                      # commit the text (a rerun with nothing to analyse yet)
    page.wait_for_timeout(300)
    page.wait_for_function(IDLE_JS, timeout=180_000)
    return timed(page, lambda: page.get_by_role("button", name="Analyze").click())


def main_thread_ms(profile: dict) -> dict:
    """Milliseconds of the page's main thread in a CPU profile (Chrome DevTools protocol): busy in total, and in
    plotly.js (samples with a plotly frame anywhere on their stack). Unlike wall time, this does not count the
    wait for the server, and is less disturbed by other processes on a shared machine."""
    nodes = {n["id"]: n for n in profile["nodes"]}
    parent = {c: n["id"] for n in profile["nodes"] for c in n.get("children", [])}
    busy = plotly = 0.0
    samples, deltas = profile["samples"], profile["timeDeltas"]
    for i, nid in enumerate(samples):
        dt = (deltas[i + 1] if i + 1 < len(deltas) else 0) / 1000.0
        frames = []
        x = nid
        while x is not None:
            frames.append(nodes[x]["callFrame"])
            x = parent.get(x)
        if frames[0]["functionName"] == "(idle)":
            continue
        busy += dt
        if any("plotly" in f["url"].lower() for f in frames):     # Streamlit's chunk, or the live chart's copy
            plotly += dt
    return {"busy_ms": busy, "plotly_ms": plotly}


CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
SERVER_PIDS: dict[str, int] = {}             # base URL → the pid of the streamlit server behind it
LOST: dict[str, int] = {}                    # base URL → head switches left out (no script run followed the click)


def _proc_table() -> dict[int, tuple[int, float, str]]:
    """pid → (parent pid, CPU seconds used so far (user + system), command name), from /proc (Linux)."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        out[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK_TCK, name)
    return out


def cpu_seconds(server_pid: int | None) -> dict:
    """CPU seconds used so far by the browser (every chromium process under this one) and by one server process.
    Unlike wall time, CPU time does not grow when other jobs on a shared machine take the cores, so the
    difference across a head switch is the work the switch cost (browser: script, style, layout, paint, in every
    chromium process; server: the fragment's run)."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    browser, stack = 0.0, [os.getpid()]
    while stack:
        pid = stack.pop()
        stack += children.get(pid, [])
        if pid in table and "chrom" in table[pid][2].lower():
            browser += table[pid][1]
    server = table[server_pid][1] if server_pid in table else float("nan")
    return {"browser": browser, "server": server}


def measure_head_switch(page, base: str, model: str, text: str, layer: int, heads: list[int],
                        profile: bool = False) -> tuple[list[float], list[dict]]:
    """Wall seconds of each head switch, and (``profile``) the browser main thread's busy time in each; CPU
    milliseconds of the browser and of the server in each switch are reported with the profile figures."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    page.goto(url(base, "Head", model=model, text=text, layer=layer, head=heads[0]), timeout=180_000)
    wait_drawn(page, 2)             # the SVG layers of the head chart(s): two per chart, one chart or more
    out, cpu = [], []
    cdp = page.context.new_cdp_session(page) if profile else None
    if cdp is not None:
        cdp.send("Profiler.enable")
        cdp.send("Profiler.setSamplingInterval", {"interval": 500})
    for h in heads[1:]:
        page.get_by_role("combobox", name="Head", exact=True).click()
        option = page.get_by_role("option", name=str(h), exact=True)
        if cdp is not None:
            cdp.send("Profiler.start")
        before = cpu_seconds(SERVER_PIDS.get(base))
        try:
            wall = timed(page, option.click, timeout=60_000)
        except PlaywrightTimeout:
            # on a heavily loaded machine the option's click is at times lost (no script run follows): the switch
            # is left out, counted in "lost_switches", and the next head is chosen as usual
            LOST[base] = LOST.get(base, 0) + 1
            if cdp is not None:
                cdp.send("Profiler.stop")
            page.keyboard.press("Escape")
            continue
        out.append(wall)
        after = cpu_seconds(SERVER_PIDS.get(base))
        used = {f"{k}_cpu_ms": 1000.0 * (after[k] - before[k]) for k in ("browser", "server")}
        if cdp is not None:
            cpu.append({**main_thread_ms(cdp.send("Profiler.stop")["profile"]), **used})
        else:
            cpu.append(used)
        assert page.get_by_role("heading", name=f"Layer {layer}, head {h}").is_visible()
    return out, cpu


def compare_head_switch(page, base: str, baseline_base: str, model: str, text: str, lm, heads: list[int],
                        args) -> dict:
    """The head switch on this checkout ("after") and on the baseline, in alternating rounds: round r uses
    layer r mod L on both servers (each server sees each (layer, head) once, so nothing comes from a cache), the
    baseline first in even rounds and second in odd ones. Medians over all switches, and after / baseline."""
    runs = {"baseline": ([], []), "after": ([], [])}
    servers = {"baseline": baseline_base, "after": base}
    for name, b in servers.items():          # warm each server (model loaded, input traced) outside the clock
        page.goto(url(b, model=model, text=text), timeout=300_000)
        wait_drawn(page, 1, timeout=300_000)
    for r in range(args.rounds):
        order = ("baseline", "after") if r % 2 == 0 else ("after", "baseline")
        for name in order:
            wall, cpu = measure_head_switch(page, servers[name], model, text, r % lm.n_layers, heads, args.profile)
            runs[name][0].extend(wall)
            runs[name][1].extend(cpu)
    out = {"layers": lm.n_layers, "heads": lm.n_heads, "rounds": args.rounds}
    for name, (wall, cpu) in runs.items():
        out[name] = {"head_switch_s": round(statistics.median(wall), 3),
                     "head_switch_runs_s": [round(x, 3) for x in wall], "lost_switches": LOST.get(servers[name], 0)}
        if cpu:
            out[name]["head_switch_main_thread_ms"] = {
                k: round(statistics.median(c[k] for c in cpu), 1) for k in cpu[0]}
    out["head_switch_s"] = out["after"]["head_switch_s"]
    after, before = out["after"], out["baseline"]
    out["ratio_after_over_baseline"] = {"wall": round(after["head_switch_s"] / before["head_switch_s"], 3)}
    mine, theirs = after["head_switch_main_thread_ms"], before["head_switch_main_thread_ms"]
    for key in ("busy_ms", "browser_cpu_ms", "server_cpu_ms"):
        if key in mine and theirs.get(key):
            out["ratio_after_over_baseline"][key.replace("_ms", "")] = round(mine[key] / theirs[key], 3)
    return out


def largest_messages(page, base: str, text: str) -> dict:
    """Largest websocket frame received while each page is drawn (n = 512, MiniLM)."""
    sizes: list[int] = []

    def on_ws(ws):
        ws.on("framereceived", lambda payload: sizes.append(len(payload if isinstance(payload, (bytes, str)) else b"")))
    page.on("websocket", on_ws)
    out = {}
    for name, path, charts in (("explore", "", 2), ("head", "Head", 2), ("sampling", "Sampling", 4)):
        sizes.clear()
        page.goto(url(base, path, model="minilm", text=text, layer=3, head=4, k=8, seed=0), timeout=600_000)
        wait_drawn(page, charts, timeout=600_000)
        out[name] = max(sizes) if sizes else 0
        out[name + "_total"] = sum(sizes)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--payload-n", type=int, default=512)
    parser.add_argument("--models", default="mini-bert,minilm", help="comma-separated registry names")
    parser.add_argument("--skip-analyze", action="store_true", help="measure the head switch only")
    parser.add_argument("--skip-payload", action="store_true", help="skip the n = 512 payload pages")
    parser.add_argument("--profile", action="store_true",
                        help="also report the browser main thread's busy time per head switch (CPU profile)")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="another checkout of the app: its head switch is measured side by side with this one's")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds with --baseline")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        print(json.dumps({"error": f"{CHROMIUM} missing: apt-get install -y chromium"}))
        return 1
    from playwright.sync_api import sync_playwright

    from interp.loader import available_models, load_model

    models = [m for m in args.models.split(",") if m in available_models()]
    port = free_port()
    log = ROOT / "tests" / "output"
    log.mkdir(parents=True, exist_ok=True)
    server = start_server(port, log / "bench-server.log")
    base = f"http://127.0.0.1:{port}"
    SERVER_PIDS[base] = server.pid
    baseline_server = baseline_base = None
    if args.baseline is not None:
        baseline_port = free_port()
        baseline_server = start_server(baseline_port, log / "bench-baseline-server.log", root=args.baseline.resolve())
        baseline_base = f"http://127.0.0.1:{baseline_port}"
        SERVER_PIDS[baseline_base] = baseline_server.pid
    result = {"cpu_cores": os.cpu_count(), "n_tokens": args.n, "reps": args.reps, "models": {},
              "targets": {"analyze_s": 1.5, "head_switch_s": 0.5, "max_message_bytes": 3_000_000}}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            for model in models:
                lm = load_model(model)
                # warm: the model enters the server's shared cache, the browser its script cache
                page.goto(url(base, model=model, text=text_of(lm, 16, 99)), timeout=300_000)
                wait_drawn(page, 1, timeout=300_000)
                analyze = [] if args.skip_analyze else [measure_analyze(page, base, model, text_of(lm, args.n, r))
                                                        for r in range(args.reps)]
                heads = list(range(min(lm.n_heads, args.reps + 1)))
                if baseline_base is not None:
                    result["models"][model] = compare_head_switch(page, base, baseline_base, model,
                                                                  text_of(lm, args.n, 0), lm, heads, args)
                    continue
                switch, cpu = measure_head_switch(page, base, model, text_of(lm, args.n, 0), min(2, lm.n_layers - 1),
                                                  heads, args.profile)
                result["models"][model] = {
                    "layers": lm.n_layers, "heads": lm.n_heads,
                    "analyze_s": round(statistics.median(analyze), 3) if analyze else None,
                    "analyze_runs_s": [round(x, 3) for x in analyze],
                    "head_switch_s": round(statistics.median(switch), 3), "head_switch_runs_s": [round(x, 3) for x in switch],
                    "lost_switches": LOST.get(base, 0)}
                if cpu:
                    result["models"][model]["head_switch_main_thread_ms"] = {
                        k: round(statistics.median(c[k] for c in cpu), 1) for k in cpu[0]}
            if not args.skip_payload:
                lm = load_model("minilm")
                big = text_of(lm, args.payload_n, 3)
                payload = largest_messages(page, base, big)
                L, H, n = lm.n_layers, lm.n_heads, args.payload_n
                result["payload_n"] = n
                result["max_message_bytes"] = {k: v for k, v in payload.items() if not k.endswith("_total")}
                result["page_total_bytes"] = {k[:-6]: v for k, v in payload.items() if k.endswith("_total")}
                # every attention weight of every head as JSON numbers (~10 characters each), as bertviz ships them
                result["all_heads_json_bytes_estimate"] = L * H * n * n * 10
            browser.close()
    finally:
        stop_server(server)
        if baseline_server is not None:
            stop_server(baseline_server)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
