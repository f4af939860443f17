"""Open-loop requests over worker processes: one clock for all of them, one writer, and a worker
killed mid-level losing only its own unfinished requests (as failed runs, said so)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time

import psutil
from support.ollama_server import FakeModel

from llmbench_tui.engine.arrivals import Arrival, LoadSpec
from llmbench_tui.engine.runner import Engine, Plan
from llmbench_tui.engine.saturation import report_lines
from llmbench_tui.engine.workers import deal
from llmbench_tui.engine.workload import Workload
from llmbench_tui.schema import ModelSpec, Options, PromptSpec
from llmbench_tui.store import Store
from llmbench_tui.store.runs import RunQuery


def _child_clock(out: multiprocessing.Queue) -> None:
    out.put(time.perf_counter_ns())


def test_workers_stamp_with_the_one_system_wide_monotonic_clock():
    info = time.get_clock_info("perf_counter")
    assert "CLOCK_MONOTONIC" in info.implementation and info.monotonic
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_child_clock, args=(out,))
    before = time.perf_counter_ns()
    proc.start()
    child = out.get(timeout=60)
    after = time.perf_counter_ns()
    proc.join(timeout=10)
    # A per-process clock would start near zero in the child; this one reads between our two.
    assert before < child < after


def test_requests_are_dealt_round_robin():
    assert deal(7, 3) == [[0, 3, 6], [1, 4], [2, 5]]
    assert sorted(i for share in deal(100, 4) for i in share) == list(range(100))


def _workers() -> list[psutil.Process]:
    me = psutil.Process(os.getpid())
    found = []
    for child in me.children():
        try:
            cmd = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "spawn_main" in cmd and "resource_tracker" not in cmd:
            found.append(child)
    return found


async def test_a_killed_worker_loses_only_its_unfinished_requests(ollama_server, tmp_path):
    # 30 requests at 10/s over 2 workers, each answer taking ~0.3 s; one worker is killed once
    # the server has seen 8 requests.
    ollama_server.add_model(FakeModel("slow:1m", tokens=[f"w{i} " for i in range(15)],
                                      token_delay_s=0.02))  # fmt: skip
    load = LoadSpec([10.0], Arrival("constant"), requests=30, seed=3, workers=2)
    plan = Plan(
        models=[ModelSpec.parse(f"ollama:slow:1m@{ollama_server.url}")],
        prompts=[PromptSpec(id="p", text="go")],
        options=Options(max_tokens=32),
        repetitions=1,
        warmup=0,
        workload=Workload([], [1], [], load=load),
    )
    killed: list[int] = []

    def killer() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if len(ollama_server.generations("slow:1m")) >= 8:
                victims = _workers()
                if victims:
                    victims[0].send_signal(signal.SIGKILL)
                    killed.append(victims[0].pid)
                    return
            time.sleep(0.02)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    store = Store(tmp_path / "history.json")
    try:
        finished = await Engine(plan, store=store).run()
    finally:
        store.close()
    thread.join(timeout=5)
    assert killed, "no worker process was found to kill"
    records = finished.records
    assert len(records) == 30  # nothing lost: every scheduled request is a run
    assert sorted(r.load["index"] for r in records) == list(range(30))
    lost = [r for r in records if r.status == "error"]
    assert lost, "the killed worker had requests still to send"
    assert all("died (killed by SIGKILL)" in (r.error or "") for r in lost)
    dead = {r.load["worker"] for r in lost}
    assert len(dead) == 1
    survivor = [r for r in records if r.load["worker"] not in dead]
    assert len(survivor) == 15 and all(r.status == "ok" for r in survivor)
    # The dead worker's runs that had come back before it died are kept as they were.
    served = [r for r in records if r.load["worker"] in dead and r.status == "ok"]
    assert len(served) + len(lost) == 15
    # One writer: the store has every run once.
    stored = Store(tmp_path / "history.json")
    try:
        assert len(stored.query(RunQuery(session_id=finished.session_id))) == 30
    finally:
        stored.close()
    _, notes = report_lines([r.to_json() for r in records], [])
    assert any("worker process" in n and "died" in n for n in notes)
