"""Synthetic executions for benchmarks and tests: finished runs of a chain of Pass states, shaped
exactly like GetExecutionHistory's events and served through the same `ExecutionSource`
interface as the AWS sources, so the tracker's own cost is what gets measured (moto would spend
minutes running thousands of real executions)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from tracker.aws.events import HistoryEvent
from tracker.aws.executions import Execution, ExecutionRef

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/synthetic"


def definition_text(states: int) -> str:
    """A chain of `states` Pass states."""
    chain = {
        f"Step{i:05d}": {"Type": "Pass", **({"Next": f"Step{i + 1:05d}"} if i + 1 < states else {"End": True})}
        for i in range(states)
    }
    return json.dumps({"Comment": "synthetic", "StartAt": "Step00000", "States": chain}, indent=2)


class SyntheticExecutions:
    """One finished execution per entry of `sizes`, entering that many states, in list order."""

    name = "synthetic"

    def __init__(self, sizes: Sequence[int], label: str, machine: str = "synthetic"):
        self.machine_arn = f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:{machine}"
        self.sizes = {}
        self.refs = []
        for n, size in enumerate(sizes):
            arn = f"arn:aws:states:us-east-1:{ACCOUNT}:execution:{machine}:{label}-{n:05d}"
            self.sizes[arn] = size
            self.refs.append(ExecutionRef(arn, self.machine_arn, "SUCCEEDED", 0))
        self._definitions = {size: definition_text(size) for size in set(sizes)}

    def list_executions(self) -> list[ExecutionRef]:
        return list(self.refs)

    def load(self, ref: ExecutionRef) -> Execution:
        size = self.sizes[ref.execution_arn]
        index = int(ref.execution_arn.rsplit("-", 1)[1])
        start = 1_790_000_000_000 + index * 1000
        payload = json.dumps({"order": ref.execution_arn.rsplit(":", 1)[1]})
        events = [HistoryEvent(1, 0, "ExecutionStarted", start, {"input": payload, "roleArn": ROLE})]
        for i in range(size):
            entered = len(events) + 1
            name = f"Step{i:05d}"
            events.append(HistoryEvent(entered, entered - 1, "PassStateEntered", start + 2 * i + 1, {"name": name}))
            events.append(HistoryEvent(entered + 1, entered, "PassStateExited", start + 2 * i + 2, {"name": name}))
        events.append(HistoryEvent(len(events) + 1, len(events), "ExecutionSucceeded", start + 2 * size + 1, {}))
        return Execution(
            execution_arn=ref.execution_arn,
            state_machine_arn=self.machine_arn,
            name=ref.execution_arn.rsplit(":", 1)[1],
            start_date_ms=start,
            definition=self._definitions[size],
            input=payload,
            events=tuple(events),
            role_arn=ROLE,
            redrive_status="NOT_REDRIVABLE",
        )
