"""`verify --aws`: the code each task ran, as recorded, against what Lambda and ECS say today.

Read only, with the verifier's own credentials (GetFunctionConfiguration, DescribeTaskDefinition).
A difference is drift: the function version or task definition behind a recorded state now holds
other code, or what the task invoked (an alias, `$LATEST`) now runs other code than it did. Drift
does not change the verdict on the trace (the chain proves what was recorded, not what runs
today); it is reported per state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tracker.aws.errors import AccessDeniedError, AwsRequestError, StateMachineNotFoundError
from tracker.aws.session import AwsService
from tracker.aws.tasks import split_function
from tracker.verify.content import TaskContent

UNREADABLE = (StateMachineNotFoundError, AccessDeniedError, AwsRequestError)


@dataclass(frozen=True)
class DriftResult:
    """One state's recorded code against today's: ok True (the same), False (drift), None (not compared)."""

    position: int
    state_name: str
    ok: bool | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"check": "code_today", **self.__dict__}


class CodeToday:
    """What Lambda and ECS say today (answers cached: one call per function version)."""

    def __init__(self, session: Any):
        self.session = session
        self._lambda: AwsService | None = None
        self._ecs: AwsService | None = None
        self._answers: dict[tuple[str, ...], Any] = {}

    def _call(self, service: str, operation: str, subject: str, **arguments: Any) -> Any:
        key = (service, operation, *(f"{k}={v}" for k, v in sorted(arguments.items())))
        if key not in self._answers:
            if service == "lambda":
                self._lambda = self._lambda or AwsService(self.session, "lambda")
                client = self._lambda
            else:
                self._ecs = self._ecs or AwsService(self.session, "ecs")
                client = self._ecs
            try:
                self._answers[key] = client.call(operation, subject, **arguments)
            except UNREADABLE as error:
                self._answers[key] = error
        return self._answers[key]

    def compare(self, position: int, task: TaskContent) -> DriftResult:
        code = task.code or {}
        if code.get("kind") == "lambda":
            ok, reason = self._lambda_drift(code)
        elif code.get("kind") == "ecs":
            ok, reason = self._ecs_drift(code)
        else:
            ok, reason = None, f"not compared: code identity {task.code_identity}"
        return DriftResult(position, task.state_name, ok, reason)

    def _lambda_drift(self, code: dict[str, Any]) -> tuple[bool | None, str]:
        arn, version, recorded = code["function_arn"], code["version"], code.get("code_sha256")
        name = arn.rsplit(":", 1)[-1]
        shown = "$LATEST" if version == "$LATEST" else f"v{version}"
        arguments = {"FunctionName": arn} if version == "$LATEST" else {"FunctionName": arn, "Qualifier": version}
        answer = self._call("lambda", "get_function_configuration", f"Lambda function {arn} {shown}", **arguments)
        if isinstance(answer, Exception):
            return False, f"drift: lambda {name} {shown} cannot be read today ({answer})"
        today = answer.get("CodeSha256")
        if recorded is None:
            return None, f"not compared: no code sha256 was recorded; {name} {shown} has {today} today"
        if today != recorded:
            return False, f"drift: lambda {name} {shown} has code sha256 {today} today, {recorded} was recorded"
        text = f"lambda {name} {shown}: the same code today ({today})"
        invoked = code.get("invoked", "")
        function, qualifier = split_function(invoked)
        if invoked and (qualifier or "$LATEST") != version:
            now = self._call(
                "lambda",
                "get_function_configuration",
                f"Lambda function {invoked}",
                FunctionName=function,
                **({"Qualifier": qualifier} if qualifier else {}),
            )
            if isinstance(now, Exception):
                return False, f"{text}; {invoked} cannot be read today ({now})"
            if now.get("CodeSha256") != recorded:
                return False, (
                    f"{text}, but {invoked} now runs version {now.get('Version')} with code sha256 "
                    f"{now.get('CodeSha256')}: drift"
                )
            text += f"; {invoked} still runs it"
        return True, text

    def _ecs_drift(self, code: dict[str, Any]) -> tuple[bool | None, str]:
        arn = code["task_definition_arn"]
        answer = self._call("ecs", "describe_task_definition", f"task definition {arn}", taskDefinition=arn)
        if isinstance(answer, Exception):
            return False, f"drift: task definition {code['family']}:{code['revision']} cannot be read today ({answer})"
        definition = answer.get("taskDefinition") or {}
        images = {item.get("name"): item.get("image") for item in definition.get("containerDefinitions") or []}
        recorded = {item["name"]: item["image"] for item in code.get("containers", [])}
        if images != recorded:
            return (
                False,
                f"drift: task definition {code['family']}:{code['revision']} now names other containers or images",
            )
        status = definition.get("status", "ACTIVE")
        return True, (
            f"task definition {code['family']}:{code['revision']} ({status}) names the same images; their digests "
            "are known only from the task's own description"
        )
