"""Conversations: each turn sent with the whole history so far, one run record per turn.

Against the Ollama-protocol test server (which counts the prompt tokens of every message of a
chat request, as Ollama counts the whole rendered conversation) the requests themselves are
checked: 1, 3 and 5 messages, the model's own earlier answers included."""

from __future__ import annotations

import subprocess
import sys

import pytest
from support.ollama_server import FakeModel
from support.paths import EXAMPLES

from llmbench_tui.conversations import ConversationSpec, parse_turn_id
from llmbench_tui.engine.conversation import conversation_tables
from llmbench_tui.engine.runner import Engine, Plan
from llmbench_tui.engine.stats import summarize
from llmbench_tui.schema import ModelSpec, Options, PromptSpec
from llmbench_tui.store import Store
from llmbench_tui.suite import SuiteError, load_suite

TRIP = ConversationSpec(
    id="trip",
    turns=["Plan one day in Lisbon.", "Make it cheaper.", "Now for two people."],
)
REPLIES = ["Morning at Belem , lunch in Alfama .", "Walk , take the tram , eat bifanas .",
           "Same plan , two tram tickets ."]


def plan_for(*specs, **kw):
    kw.setdefault("repetitions", 1)
    kw.setdefault("warmup", 0)
    kw.setdefault("ttft_timeout_s", 10)
    kw.setdefault("stall_timeout_s", 10)
    kw.setdefault("prompts", [])
    kw.setdefault("conversations", [TRIP])
    return Plan(models=[ModelSpec.parse(s) for s in specs], **kw)


def chat_requests(server, model):
    return [r for r in server.generations(model) if r.path == "/api/chat"]


async def test_three_turns_send_1_3_5_messages_with_the_models_answers(ollama_server, tmp_path):
    ollama_server.add_model(FakeModel("talker:1b", replies=REPLIES, token_delay_s=0.001))
    store = Store(tmp_path / "history.json")
    try:
        fin = await Engine(plan_for(f"ollama:talker:1b@{ollama_server.url}"), store=store).run()
    finally:
        store.close()
    sent = [r.body["messages"] for r in chat_requests(ollama_server, "talker:1b")]
    assert [len(m) for m in sent] == [1, 3, 5]
    # The history is what the model was sent and what it answered, in order.
    assert sent[2] == [
        {"role": "user", "content": TRIP.turns[0]},
        {"role": "assistant", "content": REPLIES[0]},
        {"role": "user", "content": TRIP.turns[1]},
        {"role": "assistant", "content": REPLIES[1]},
        {"role": "user", "content": TRIP.turns[2]},
    ]
    recs = fin.records
    assert [r.status for r in recs] == ["ok"] * 3
    assert [(r.conversation_id, r.turn, r.prompt_id) for r in recs] == [
        ("trip", 1, "trip#t1"), ("trip", 2, "trip#t2"), ("trip", 3, "trip#t3")]
    assert [r.prompt for r in recs] == TRIP.turns
    assert [r.response for r in recs] == REPLIES
    # The server's count of the whole conversation: strictly growing with the turn.
    prompt_tokens = [r.tokens.prompt for r in recs]
    assert prompt_tokens[0] < prompt_tokens[1] < prompt_tokens[2]
    assert prompt_tokens == [r.final["prompt_eval_count"]
                             for r in chat_requests(ollama_server, "talker:1b")]
    assert all(r.concurrency == 1 and r.timings.ttft_s > 0 for r in recs)
    # Statistics group per turn.
    assert sorted(g.prompt_id for g in summarize(recs)) == ["trip#t1", "trip#t2", "trip#t3"]
    # Stored with the turn fields, and the plan with the conversation.
    reopened = Store(tmp_path / "history.json")
    try:
        stored = reopened.get_run(recs[1].id)
        assert stored["conversation_id"] == "trip" and stored["turn"] == 2
        plan = reopened.get_session(fin.session_id)["plan"]
        assert plan["conversations"][0]["turns"] == TRIP.turns
    finally:
        reopened.close()


async def test_system_prompt_and_repetitions_start_afresh(ollama_server):
    conv = TRIP.model_copy(update={"system": "Be brief."})
    ollama_server.add_model(FakeModel("talker:1b", replies=REPLIES, token_delay_s=0.001))
    fin = await Engine(plan_for(f"ollama:talker:1b@{ollama_server.url}", repetitions=2,
                                conversations=[conv])).run()
    sent = [r.body["messages"] for r in chat_requests(ollama_server, "talker:1b")]
    assert [len(m) for m in sent] == [2, 4, 6, 2, 4, 6]
    assert all(m[0] == {"role": "system", "content": "Be brief."} for m in sent)
    assert [(r.repetition, r.turn) for r in fin.records] == [
        (0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3)]
    assert all(r.system == "Be brief." for r in fin.records)


async def test_a_failed_turn_skips_the_rest_and_others_go_on(ollama_server):
    # The second request (turn 2) fails mid-stream; turn 3 is not sent but stored as skipped.
    ollama_server.add_model(FakeModel("flaky:1b", fault="error_midstream", fault_after=1,
                                      fault_on=[1], token_delay_s=0.001))
    events = []
    plan = plan_for(f"ollama:flaky:1b@{ollama_server.url}",
                    f"ollama:smollm-fake:135m@{ollama_server.url}", repetitions=2)
    fin = await Engine(plan, on_event=events.append).run()
    flaky = [r for r in fin.records if r.model == "flaky:1b"]
    assert [(r.repetition, r.turn, r.status) for r in flaky] == [
        (0, 1, "ok"), (0, 2, "error"), (0, 3, "skipped"),
        (1, 1, "ok"), (1, 2, "ok"), (1, 3, "ok")]  # the next repetition starts afresh
    skipped = flaky[2]
    assert skipped.error.startswith("skipped: turn 2 of conversation 'trip' ended with error")
    assert skipped.response == "" and skipped.timings.ttft_s is None
    assert skipped.conversation_id == "trip" and skipped.turn == 3
    assert len(chat_requests(ollama_server, "flaky:1b")) == 5  # turn 3 of rep 0 never sent
    healthy = [r for r in fin.records if r.model == "smollm-fake:135m"]
    assert [r.status for r in healthy] == ["ok"] * 6
    # Progress counts every record, skipped ones too.
    assert [e.index for e in events if type(e).__name__ == "RunFinished"] == list(range(1, 13))
    (t3,) = [g for g in summarize(flaky) if g.prompt_id == "trip#t3"]
    assert (t3.n_runs, t3.n_ok) == (2, 1) and t3.errors[0].startswith("skipped: turn 2")


async def test_prompts_and_conversations_together_with_warm_up(ollama_server):
    ollama_server.add_model(FakeModel("talker:1b", replies=REPLIES, token_delay_s=0.001))
    plan = plan_for(f"ollama:talker:1b@{ollama_server.url}", warmup=1,
                    prompts=[PromptSpec(id="p", text="hi")])
    assert plan.runs_per_model() == 1 + 1 + 3
    fin = await Engine(plan).run()
    assert [(r.prompt_id, r.warmup) for r in fin.records] == [
        ("p", True), ("p", False), ("trip#t1", False), ("trip#t2", False), ("trip#t3", False)]


async def test_conversations_only_warm_up_with_the_first_turn(ollama_server):
    ollama_server.add_model(FakeModel("talker:1b", replies=REPLIES, token_delay_s=0.001))
    fin = await Engine(plan_for(f"ollama:talker:1b@{ollama_server.url}", warmup=1)).run()
    assert [(r.prompt_id, r.warmup, r.turn if not r.warmup else None)
            for r in fin.records] == [
        ("trip#t1", True, None), ("trip#t1", False, 1), ("trip#t2", False, 2),
        ("trip#t3", False, 3)]
    assert "conversation_id" not in fin.records[0].to_json()  # the warm-up is not a turn


async def test_turn_checks_are_scored(ollama_server):
    conv = ConversationSpec.model_validate({
        "id": "trip", "turns": TRIP.turns,
        "checks": [{"turn": 2, "kind": "contains", "text": "tram"},
                   {"kind": "length", "max_words": 8}],
    })
    ollama_server.add_model(FakeModel("talker:1b", replies=REPLIES, token_delay_s=0.001))
    fin = await Engine(plan_for(f"ollama:talker:1b@{ollama_server.url}",
                                conversations=[conv])).run()
    names = [[c.name for c in r.quality.checks] for r in fin.records]
    assert names == [["length"], ["contains:tram", "length"], ["length"]]
    assert [r.quality.score for r in fin.records] == [10.0, 5.0, 10.0]  # turn 2: 9 words


def test_per_turn_table():
    def rec(turn, prompt, ttft, status="ok"):
        return {"model_spec": "m", "model": "m", "conversation_id": "c", "turn": turn,
                "status": status, "tokens": {"prompt": prompt}, "timings": {"ttft_s": ttft,
                "decode_tok_s": 50.0}, "server": {"prompt_tok_s": 900.0}}
    records = [rec(1, 10, 0.1), rec(1, 10, 0.3), rec(2, 40, 0.5), rec(2, None, None, "skipped")]
    ((title, rows),) = conversation_tables(records)
    assert title == "m · conversation c"
    assert rows == [
        ["turn", "ok", "prompt tokens", "TTFT s", "prompt tok/s", "decode tok/s"],
        ["1", "2/2", "10 ± 0", "0.200 ± 0.141", "900.0 ± 0.0", "50.0 ± 0.0"],
        ["2", "1/2", "40", "0.500", "900.0", "50.0"],
    ]


def test_turn_ids():
    assert parse_turn_id("trip#t12") == ("trip", 12)
    assert parse_turn_id("a#b#t2") == ("a#b", 2)
    assert parse_turn_id("sky") is None and parse_turn_id(None) is None


SUITE = """\
name = "chat"
models = ["embedded"]
repetitions = 2

[[conversations]]
id = "trip"
system = "You are a travel agent."
turns = ["Plan one day in Lisbon.", "Make it cheaper."]

[[conversations.checks]]
turn = 2
kind = "contains"
text = "cheap"

[[conversations.checks]]
kind = "judge"
rubric = "Is it a plan?"
"""


def test_suite_with_conversations_only(tmp_path):
    path = tmp_path / "chat.toml"
    path.write_text(SUITE)
    suite = load_suite(path)
    (conv,) = suite.conversations
    assert conv.system == "You are a travel agent." and len(conv.turns) == 2
    assert [c.kind for c in conv.checks_for(1)] == ["judge"]
    assert [c.kind for c in conv.checks_for(2)] == ["contains", "judge"]
    assert Plan.from_suite(suite).runs_per_model() == 1 + 2 * 2


@pytest.mark.parametrize(("extra", "message"), [
    ("[[conversations.checks]]\nturn = 3\nkind = \"contains\"\ntext = \"x\"\n",
     "is for turn 3, but the conversation has 2 turns"),
    ("[[conversations]]\nid = \"trip\"\nturns = [\"again\"]\n",
     "duplicate conversation id 'trip'"),
    ("[[conversations]]\nid = \"a#t1\"\nturns = [\"x\"]\n", "conversations.1.id"),
    ("[[conversations]]\nid = \"empty\"\nturns = [\" \"]\n", "turn 1 is empty"),
    ("[[conversations.checks]]\nkind = \"judge\"\n", "at most one judge check"),
])
def test_bad_conversations_refused(tmp_path, extra, message):
    path = tmp_path / "chat.toml"
    path.write_text(SUITE + extra)
    with pytest.raises(SuiteError, match=r"chat\.toml") as err:
        load_suite(path)
    assert message in str(err.value)


def test_batch_prints_the_per_turn_table(ollama_server, tmp_path):
    ollama_server.add_model(FakeModel("talker:1b", replies=REPLIES, token_delay_s=0.001))
    path = tmp_path / "chat.toml"
    path.write_text(SUITE.replace('["embedded"]', f'["ollama:talker:1b@{ollama_server.url}"]'))
    md = tmp_path / "summary.md"
    p = subprocess.run(
        [sys.executable, "-m", "llmbench_tui.cli", "--batch", str(path), "--no-store",
         "--warmup", "0", "--markdown", str(md)],
        capture_output=True, text=True, timeout=120,
    )
    assert p.returncode == 0, p.stderr
    assert f"ollama:talker:1b@{ollama_server.url} · conversation trip" in p.stdout
    table = p.stdout.split("conversation trip", 1)[1]
    assert "turn  ok   prompt tokens" in table
    lines = [line.split() for line in table.splitlines()[3:5]]
    assert [line[:2] for line in lines] == [["1", "2/2"], ["2", "2/2"]]
    assert "**" in md.read_text() and "| turn | ok | prompt tokens |" in md.read_text()


@pytest.mark.slow
async def test_embedded_conversation_for_real(monkeypatch):
    monkeypatch.setenv("LLMBENCH_GGUF_THREADS", "1")
    plan = plan_for("embedded", options=Options(temperature=0.0, seed=1, max_tokens=6),
                    ttft_timeout_s=300, stall_timeout_s=120)
    fin = await Engine(plan).run()
    assert [r.status for r in fin.records] == ["ok"] * 3, [r.error for r in fin.records]
    assert [r.turn for r in fin.records] == [1, 2, 3]
    prompt_tokens = [r.tokens.prompt for r in fin.records]
    # llama.cpp's own count of the rendered chat: each turn holds the earlier ones.
    assert prompt_tokens[0] < prompt_tokens[1] < prompt_tokens[2], prompt_tokens
    assert all(r.response.strip() for r in fin.records)


def test_the_example_conversation_suite_loads():

    suite = load_suite(EXAMPLES / "conversation.toml")
    (conv,) = suite.conversations
    assert len(conv.turns) == 3 and not suite.prompts
    assert [c.kind for c in conv.checks_for(3)] == ["length", "judge"]
    assert Plan.from_suite(suite).runs_per_model() == 1 + 3 * 3
