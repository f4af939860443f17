"""The plan of a session: models × prompts × repetitions, with warm-up, cold runs, concurrency,
conversations, a judge and a workload; built from a suite or from the command line, stored with
the session so it can be re-run exactly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..conversations import ConversationSpec
from ..schema import ModelSpec, Options, PromptSpec, Suite
from .conversation import conversation_run_count
from .judge_runs import JudgeConfig, judge_config
from .workload import Workload, build_workload, cell_prompt


@dataclass
class Plan:
    """Models × prompts × repetitions, with warm-up, cold runs, concurrency and timeouts."""

    models: list[ModelSpec]
    prompts: list[PromptSpec]
    options: Options = field(default_factory=Options)
    repetitions: int = 3
    warmup: int = 1
    cold: int = 0
    concurrency: int = 1
    ttft_timeout_s: float | None = None
    stall_timeout_s: float | None = None
    tags: list[str] = field(default_factory=list)
    name: str = "adhoc"
    allow_code_exec: bool = False  # quality: run python checks' tests (in the sandbox)
    conversations: list[ConversationSpec] = field(default_factory=list)
    judge: JudgeConfig | None = None  # who grades answers after the session
    workload: Workload | None = None  # a size grid / sweep / LocalScore instead of ``prompts``

    @classmethod
    def from_suite(cls, suite: Suite) -> Plan:
        """The suite as a plan; a ``[workload]`` becomes ``workload`` (call
        ``workload.fit_to_models`` with the models' contexts before running it)."""
        workload, _ = build_workload(suite.workload, default_concurrency=suite.concurrency)
        prompts = [cell_prompt(c) for c in workload.cells] if workload and workload.cells else []
        return cls(
            models=[ModelSpec.parse(m) for m in suite.models],
            prompts=prompts or list(suite.prompts),
            options=suite.options,
            repetitions=suite.repetitions,
            warmup=suite.warmup,
            cold=suite.cold,
            concurrency=suite.concurrency,
            ttft_timeout_s=suite.ttft_timeout_s,
            stall_timeout_s=suite.stall_timeout_s,
            tags=list(suite.tags),
            name=suite.name,
            allow_code_exec=suite.allow_code_exec,
            conversations=list(suite.conversations),
            judge=judge_config(suite),
            workload=workload,
        )

    def runs_per_model(self) -> int:
        if self.workload is not None and self.workload.load is not None:
            from .openloop import open_loop_runs

            measured = open_loop_runs(self.workload, len(self.prompts))
        elif self.workload is not None:
            per_rep = self.workload.runs_per_round_set(len(self.prompts))
            measured = per_rep * self.repetitions
        else:
            measured = len(self.prompts) * self.repetitions * self.concurrency
        return self.cold + self.warmup + measured + conversation_run_count(self)

    def total_runs(self) -> int:
        return len(self.models) * self.runs_per_model()

    def describe(self) -> dict[str, Any]:
        """The plan as stored with the session, so a session can be re-run exactly."""
        return {
            "name": self.name,
            "models": [m.label for m in self.models],
            "prompts": [p.model_dump() for p in self.prompts],
            "options": self.options.model_dump(exclude_none=True),
            "repetitions": self.repetitions,
            "warmup": self.warmup,
            "cold": self.cold,
            "concurrency": self.concurrency,
            "ttft_timeout_s": self.ttft_timeout_s,
            "stall_timeout_s": self.stall_timeout_s,
            "tags": self.tags,
            "allow_code_exec": self.allow_code_exec,
            **({"conversations": [c.model_dump() for c in self.conversations]}
               if self.conversations else {}),
            **({"judge": self.judge.describe()} if self.judge else {}),
            **({"workload": self.workload.describe()} if self.workload else {}),
        }
