"""Open-loop load against the Ollama-protocol test server: the schedule as the SERVER saw it
(request count, gaps), send times in the records, a starved client flagged client-bound, the
command line and the suite syntax.

Tolerances: the schedules are seeded, so the schedule's own coefficient of variation (CV) is a
fixed number; what the test checks is that the gaps the server measured
(``Recorded.t_arrival_ns``, taken when the request head is read, in a server process of its own)
keep that shape: a CV near 1, and near the schedule's own.
At 10 req/s the mean gap is 100 ms; on the shared 2-core build machine (load average 10-18
while seven people build and test) the client's wake-up lag and the server's own scheduling
were measured at up to ~50 ms, which moves the CV of 80 gaps by up to ~0.15: 0.2 is the
allowance. The constant schedule runs at 5 req/s (200 ms gaps) and is judged by the
interquartile range over the median, which a few stretched gaps do not move: ~0 for even gaps,
1.58 for exponential ones, 0.3 allowed.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from support.ollama_server import FakeModel
from support.paths import TESTS

from llmbench_tui.engine.arrivals import Arrival, LoadSpec, build_load, parse_arrival, schedule
from llmbench_tui.engine.runner import Engine, Plan
from llmbench_tui.engine.saturation import lag_limit_s, rate_levels, report_lines
from llmbench_tui.engine.workload import Workload, build_workload
from llmbench_tui.schema import ModelSpec, Options, PromptSpec
from llmbench_tui.workload_syntax import WorkloadError

LLMBENCH = [sys.executable, "-m", "llmbench_tui.cli"]
FAKE = "smollm-fake:135m"  # a default model of tests/ollama_server.py

SERVER_SCRIPT = TESTS / "support" / "ollama_server.py"


def cv(values: list[float]) -> float:
    return statistics.pstdev(values) / statistics.fmean(values)


def gaps(instants: list[float]) -> list[float]:
    ordered = sorted(instants)
    return [b - a for a, b in itertools.pairwise(ordered)]


def plan_for(url: str, load: LoadSpec, model: str = "tiny:1m") -> Plan:
    return Plan(
        models=[ModelSpec.parse(f"ollama:{model}@{url}")],
        prompts=[PromptSpec(id="p", text="say something")],
        options=Options(max_tokens=64),
        repetitions=1,
        warmup=0,
        workload=Workload([], [1], [], load=load),
    )


@pytest.fixture
def server_process() -> Iterator[str]:
    """The Ollama test server in a process of its own: its arrival stamps must not wait for
    this process's GIL (an in-process server thread stamps requests in batches when the client
    is busy). Its models answer 3 tokens, 1 ms apart."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, str(SERVER_SCRIPT), "--port", str(port), "--tokens", "3",
         "--token-delay", "0.001", "--no-delays"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # printed once it listens
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def server_arrivals(url: str) -> list[float]:
    """When the server saw each generation request (seconds, the shared monotonic clock)."""
    reply = httpx.get(f"{url}/test/arrivals", timeout=10).json()
    return [a["t_arrival_ns"] / 1e9 for a in reply["arrivals"]]


def tiny(name: str = "tiny:1m", tokens: int = 3, delay: float = 0.001) -> FakeModel:
    return FakeModel(name, tokens=[f"t{i} " for i in range(tokens)], token_delay_s=delay)


async def test_poisson_schedule_reaches_the_server_with_exponential_gaps(server_process):
    load = LoadSpec([10.0], Arrival("poisson"), requests=80, seed=11, workers=1)
    offsets = load.schedule(0)
    finished = await Engine(plan_for(server_process, load, model=FAKE)).run()
    seen = server_arrivals(server_process)
    assert len(seen) == 80 == len(finished.records)
    assert all(r.status == "ok" for r in finished.records)
    planned = cv(gaps(offsets))
    assert 0.75 < planned < 1.25  # exponential: CV 1 (a fixed number here: the seed is fixed)
    at_server = cv(gaps(seen))
    assert abs(at_server - planned) < 0.2, (at_server, planned)
    assert 0.7 < at_server < 1.3
    # Each record knows when it should have left and when it did.
    by_index = {r.load["index"]: r.load for r in finished.records}
    assert [by_index[i]["scheduled_s"] for i in range(80)] == pytest.approx(offsets, abs=1e-6)
    for load_obj in by_index.values():
        assert load_obj["sent_s"] >= load_obj["scheduled_s"]
        assert load_obj["lag_s"] == pytest.approx(load_obj["sent_s"] - load_obj["scheduled_s"])
        assert load_obj["rate"] == 10.0 and load_obj["arrival"] == "poisson"
    # The server received them in the scheduled order, one span of the schedule long.
    span = max(seen) - min(seen)
    assert span == pytest.approx(offsets[-1], rel=0.05)
    level = rate_levels([r.to_json() for r in finished.records])[0]
    assert level.n_runs == 80 and level.lag_s["p50"] is not None


async def test_constant_schedule_sends_even_gaps(server_process):
    load = LoadSpec([5.0], Arrival("constant"), duration_s=5.0, seed=1, workers=1)
    assert len(load.schedule(0)) == 25
    await Engine(plan_for(server_process, load, model=FAKE)).run()
    seen = server_arrivals(server_process)
    assert len(seen) == 25
    between = gaps(seen)
    assert statistics.fmean(between) == pytest.approx(0.2, rel=0.1)
    # Interquartile range over median: ~0 for even gaps, 1.58 for exponential ones; robust to the
    # few gaps a busy machine stretches (one late send makes one long and one short gap).
    q1, q2, q3 = statistics.quantiles(between, n=4)
    assert (q3 - q1) / q2 < 0.3


def test_gamma_shape_sets_burstiness_and_a_seed_replays():
    rng = random.Random(3)
    bursty = schedule(10.0, parse_arrival("gamma:0.25"), rng, requests=2000)
    smooth = schedule(10.0, parse_arrival("gamma:4"), random.Random(3), requests=2000)
    # CV of gamma gaps = 1/sqrt(shape): 2 and 0.5; 2000 gaps put the sample CV within ~0.1.
    assert cv(gaps(bursty)) == pytest.approx(2.0, abs=0.25)
    assert cv(gaps(smooth)) == pytest.approx(0.5, abs=0.06)
    assert parse_arrival("gamma:1") == Arrival("poisson")
    one = build_load("1,2", duration=5, seed=42)
    two = build_load("2,1", duration=5, seed=42)
    assert one.schedule(1) == two.schedule(1) and one.schedule(0) != one.schedule(1)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"rate": "0"}, "--rate '0': must be a positive"),
        ({"rate": "2", "duration": 5, "requests": 3}, "exactly one of --duration"),
        ({"rate": "2"}, "exactly one of --duration"),
        ({"duration": 5}, "--duration: only with an open-loop --rate"),
        ({"rate": "2", "duration": 5, "arrival": "bursty"}, "expected poisson, constant"),
        ({"rate": "2", "duration": 5, "workers": 2, "cap": 4}, "holds in one process only"),
    ],
)
def test_bad_load_values_are_refused_in_one_sentence(given, message):
    given = dict(given)
    cap = given.pop("cap", None)
    with pytest.raises(WorkloadError, match=message.replace("(", r"\(")):
        build_workload(None, concurrency=cap, load=given)


def test_c_with_rate_is_a_single_cap():
    workload, _ = build_workload(None, concurrency="4", load={"rate": "1,2", "requests": 5})
    assert workload is not None and workload.load is not None
    assert workload.load.cap == 4 and workload.sweep
    with pytest.raises(WorkloadError, match="give one number"):
        build_workload(None, concurrency="1,2", load={"rate": "1", "requests": 5})


async def test_a_starved_client_is_flagged_client_bound(ollama_server):
    # The server answers 3,000 tokens per request with no delay and 60 requests/s are due: far
    # more chunks per second than one Python process can read, so requests leave late.
    ollama_server.add_model(tiny("flood:1m", tokens=3000, delay=0.0))
    load = LoadSpec([60.0], Arrival("constant"), requests=40, seed=5, workers=1)
    plan = plan_for(ollama_server.url, load, model="flood:1m")
    plan.options = Options(max_tokens=4000)
    finished = await Engine(plan).run()
    records = [r.to_json() for r in finished.records]
    level = rate_levels(records)[0]
    assert level.lag_s["p99"] > lag_limit_s(60.0) == 0.005
    assert level.client_bound and "the load generator, not the server" in level.client_bound
    assert all(r["load"]["client_bound"] for r in records)
    _, notes = report_lines(records, [])
    assert any(n.startswith("CLIENT-BOUND") for n in notes)


def test_batch_prints_the_rate_sweep(ollama_server, tmp_path):
    ollama_server.add_model(tiny())
    env = {**os.environ, "LLMBENCH_DATA_DIR": str(tmp_path / "data")}
    out = tmp_path / "runs.json"
    start = time.monotonic()
    proc = subprocess.run(
        [*LLMBENCH, "--batch", "-m", f"ollama:tiny:1m@{ollama_server.url}", "--rate", "4,8",
         "--requests", "6", "--arrival", "constant", "--arrival-seed", "9", "--warmup", "0",
         "--slo", "ttft_s<=5", "--json", str(out), "--workers", "1"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - start < 120
    assert "open loop: constant arrivals, 6 requests per rate" in proc.stdout
    assert "achieved r/s" in proc.stdout and "no saturation up to 8 req/s" in proc.stdout
    records = json.loads(out.read_text())
    assert sorted({r["load"]["rate"] for r in records}) == [4.0, 8.0]
    assert {r["load"]["seed"] for r in records} == {9}
    bad = subprocess.run([*LLMBENCH, "--batch", "--duration", "5"], capture_output=True,
                         text=True, env=env, timeout=60)  # fmt: skip
    assert bad.returncode == 2 and "only with an open-loop --rate" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_a_suite_takes_the_open_loop_keys(tmp_path):
    from llmbench_tui.suite import SuiteError, load_suite

    path = tmp_path / "s.toml"
    path.write_text('name = "x"\nmodels = ["embedded"]\n[[prompts]]\nid = "a"\ntext = "hi"\n'
                    '[workload]\nrate = [1, 2.5]\narrival = "gamma:0.5"\nduration = 3\n'
                    'seed = 4\nconcurrency = 2\n')  # fmt: skip
    plan = Plan.from_suite(load_suite(path))
    assert plan.workload is not None and plan.workload.load is not None
    load = plan.workload.load
    assert (load.rates, load.arrival.text, load.duration_s, load.seed, load.cap) == (
        [1.0, 2.5],
        "gamma:0.5",
        3.0,
        4,
        2,
    )
    path.write_text(path.read_text().replace('"gamma:0.5"', '"spiky"'))
    with pytest.raises(SuiteError, match="spiky"):
        load_suite(path)


async def test_a_server_slower_than_the_offered_rate_is_named_the_saturation_point(ollama_server):
    # One request at a time, ~0.2 s each: about 5 req/s. 2 req/s keeps up; at 12 req/s the
    # server's queue grows (TTFT with it) and answers come back at its own pace.
    ollama_server.add_model(FakeModel("one:1m", tokens=[f"t{i} " for i in range(10)],
                                      token_delay_s=0.02, parallel=1))  # fmt: skip
    load = LoadSpec([2.0, 12.0], Arrival("constant"), requests=12, seed=1, workers=1)
    finished = await Engine(plan_for(ollama_server.url, load, model="one:1m")).run()
    records = [r.to_json() for r in finished.records]
    low, high = rate_levels(records)
    assert (low.rate, high.rate) == (2.0, 12.0)
    assert high.achieved_rps < 0.95 * high.scheduled_rps
    assert high.ttft_s["p50"] > 2 * low.ttft_s["p10"] + 0.05  # queueing at the server
    _, notes = report_lines(records, [])
    assert any("saturates at 12 req/s" in n for n in notes), notes
    assert not high.client_bound or "send lag" in high.client_bound
