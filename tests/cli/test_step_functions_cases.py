"""Today's Step Functions cases through the commands an operator runs, each `ape run ...` in a
process of its own against one local stack for the module (`ape run stack`: anvil with ENS, the
moto server with `tracker.dev.sfn_emulation`, Postgres), with `ape run serve` publishing and
`ape run deploy` linking `local.eth` to the server and its certificate, as the getting-started
page does (tests/cli/test_walkthrough.py runs that page).

moto lacks redrive, Map Run children, nested `states:startExecution`, alias starts and JSONata;
the emulation adds them from the Step Functions API reference (see its docstring and
tests/tracking/). What AWS itself does here through the console or the AWS CLI (fixing the cause
of a failure, RedriveExecution, CreateStateMachineAlias) the tests do with boto3 against the same
moto server; what only time or AWS's own runtime does (14 days passing, a JSONata execution) they
do with the emulation's own actions (`emulation_request`), which no request to AWS can reach;
everything the project does runs as its commands.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.task_services import create_lookup_table
from test_walkthrough import BIN, project_copy, started, stop, wait_for

from tracker.dev.services import free_port
from tracker.dev.sfn_emulation import emulation_request

JSONATA = json.loads(
    (Path(__file__).parents[1] / "tracking" / "fixtures" / "jsonata_evaluation_failed.json").read_text()
)
FIFTEEN_DAYS = 15 * 24 * 3600

ACCOUNT_ARN = "arn:aws:states:us-east-1:123456789012"
ROLE = "arn:aws:iam::123456789012:role/cases"

ETL = {
    "StartAt": "Load",
    "States": {
        "Load": {"Type": "Pass", "Result": {"id": "a"}, "ResultPath": "$.load", "Next": "Transform"},
        # fails for real until its table exists: a task whose dependency is down
        "Transform": {
            "Type": "Task",
            "Resource": "arn:aws:states:::dynamodb:getItem",
            "Parameters": {"TableName": "lookup", "Key": {"id": {"S": "a"}}},
            "ResultPath": "$.item",
            "Next": "Store",
        },
        "Store": {"Type": "Pass", "Next": "Done"},
        "Done": {"Type": "Succeed"},
    },
}
FAN_OUT = {
    "StartAt": "Prepare",
    "States": {
        "Prepare": {"Type": "Pass", "Next": "Fan"},
        "Fan": {
            "Type": "Map",
            "Label": "fan",
            "ItemsPath": "$.items",
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "Work",
                "States": {"Work": {"Type": "Pass", "Next": "Done"}, "Done": {"Type": "Succeed"}},
            },
            "ResultPath": "$.results",
            "Next": "Report",
        },
        "Report": {"Type": "Succeed"},
    },
}
GREETER = {"StartAt": "Greet", "States": {"Greet": {"Type": "Pass", "Result": "hi", "End": True}}}


def caller(child_arn: str) -> dict:
    return {
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": "arn:aws:states:::states:startExecution.sync:2",
                "Parameters": {"StateMachineArn": child_arn, "Input": {"who": "child"}},
                "Next": "After",
            },
            "After": {"Type": "Succeed"},
        },
    }


def pick(result: str) -> dict:
    return {"StartAt": "Pick", "States": {"Pick": {"Type": "Pass", "Result": result, "End": True}}}


@dataclass
class Stack:
    project: Path
    env: dict[str, str]
    origin: str
    schema: str

    def run(self, *arguments: str, expect: int = 0, timeout: float = 180) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(BIN / "ape"), "run", *arguments],
            cwd=self.project,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        assert result.returncode == expect, (
            f"{arguments}: exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
        return result

    def json(self, *arguments: str, expect: int = 0) -> dict:
        return json.loads(self.run(*arguments, "--json", expect=expect).stdout)

    def publishing(self) -> list[str]:
        return ["--publish", "./protocol", "--base-url", self.origin]

    def deploy_model(self, name: str, definition: dict, *extra: str) -> dict:
        path = self.project / f"{name}.asl.json"
        path.write_text(json.dumps(definition, indent=2))
        return self.json("deploy_model", path.name, "--name", name, "--role-arn", ROLE, *extra)

    def start(self, machine: str, name: str, payload: dict | None = None) -> dict:
        return self.json(
            "start_execution",
            machine,
            "--name",
            name,
            "--input",
            json.dumps(payload or {}),
            "--wait",
            "--poll-interval",
            "0.3",
            "--wait-timeout",
            "120",
            *self.publishing(),
        )

    def track(self, *machines: str, state_dir: str = ".tracker") -> dict:
        arns = [f"{ACCOUNT_ARN}:stateMachine:{machine}" for machine in machines]
        return self.json("track_execution", *arns, *self.publishing(), "--state-dir", state_dir)

    def verify(self, instance_id: str, expect: int = 0) -> dict:
        return self.json(
            "verify", "--instance", instance_id, "--owner", "local.eth", "--allow-private-hosts", expect=expect
        )

    def index(self, execution_id: str | None = None, *extra: str) -> dict:
        instance = ["--instance", execution_id] if execution_id else []
        return self.json("index", "--schema", self.schema, "--report", *instance, *extra)

    def document(self, identifier: str) -> dict:
        return json.loads((self.project / "protocol" / "documents" / f"{identifier}.json").read_bytes())

    def protocol(self, instance_id: str) -> dict:
        return json.loads((self.project / "protocol" / f"{instance_id}.json").read_bytes())

    def states(self, instance_id: str) -> list[dict]:
        return [self.document(entry["state_hash"]) for entry in self.protocol(instance_id)["instance_protocol"]]

    def emulation(self, action: str, **body: object) -> dict:
        return emulation_request(self.env["AWS_ENDPOINT_URL"], action, body)

    def aws(self):
        import boto3

        return boto3.session.Session(region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local")

    def client(self, service: str):
        return self.aws().client(service, endpoint_url=self.env["AWS_ENDPOINT_URL"])


def results(report: dict, check: str) -> list[dict]:
    return [item for item in report["results"] if item["check"] == check]


def passed_all_five(report: dict) -> None:
    checks = {item["check"]: item["ok"] for item in report["results"] if item["check"] not in ("state", "attempt")}
    assert report["verdict"] == "passed", report
    assert {
        name: checks[name] for name in ("protocol_tls", "states", "model_instance", "ens", "certificate")
    } == dict.fromkeys(("protocol_tls", "states", "model_instance", "ens", "certificate"), True)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """One stack, server and deployment for the module (starting them takes about a minute)."""
    root = tmp_path_factory.mktemp("cases")
    project = root / "project"
    project.mkdir()
    project_copy(project)
    (project / "protocol").mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("APE_", "AWS_", "TRACKER_"))}
    env["PATH"] = f"{BIN}:{env['PATH']}"
    env["DATABASE_URL"] = os.environ["TEST_DATABASE_URL"]  # the shared server, in a schema of this module
    stack_log = root / "stack.log"
    process = started(
        [str(BIN / "ape"), "run", "stack", "--anvil-port", str(free_port()), "--moto-port", str(free_port())],
        project,
        env,
        stack_log,
    )
    serve = None
    schema = f"sfn_cases_{uuid.uuid4().hex[:10]}"
    try:
        wait_for(process, lambda: "Ctrl-C stops the stack" in stack_log.read_text(), "ape run stack", 300, stack_log)
        exports = dict(re.findall(r"^export (\w+)=(\S+)$", stack_log.read_text(), re.M))
        env.update({name: value.strip("'") for name, value in exports.items()})
        port = free_port()
        serve_log = root / "serve.log"
        serve = started([str(BIN / "ape"), "run", "serve", "./protocol", "--port", str(port)], project, env, serve_log)
        wait_for(serve, lambda: "SHA-256 fingerprint" in serve_log.read_text(), "serve", 120, serve_log)
        cases = Stack(project, env, f"https://localhost:{port}", schema)
        cases.run("deploy", "--client-id", "cases", "--ens-name", "local.eth", "--uri", cases.origin)
        yield cases
    finally:
        if serve is not None:
            stop(serve)
        stop(process)
        import psycopg

        with psycopg.connect(os.environ["TEST_DATABASE_URL"], autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_a_failed_execution_redriven_is_one_trace_verified_final_and_indexed(stack):
    model = stack.deploy_model("etl", ETL)
    began = time.monotonic()
    first = stack.start("etl", "nightly-1")
    # --wait returns once the failed attempt's end is on chain, not after --wait-timeout: a
    # redrive is an operator's decision, maybe days later
    assert time.monotonic() - began < 60
    assert (first["status"], first["final"], first["attempts_ended"], first["states_registered"]) == (
        "FAILED",
        False,
        1,
        2,
    )
    assert first["model_id"] == model["model_id"]
    tracked = stack.track("etl")
    assert (tracked["states_registered"], tracked["instances_terminated"], tracked["skipped"]) == (0, 0, [])

    ended = stack.verify(first["instance_id"])
    passed_all_five(ended)
    assert (ended["status"], ended["status_text"]) == ("ended", "ended, attempt 0, still redrivable")
    assert [(a["attempt"], a["final"], a["ok"]) for a in results(ended, "attempt")] == [(0, False, True)]

    # the operator fixes the cause and redrives (the console or `aws stepfunctions redrive-execution`)
    dynamodb = stack.client("dynamodb")
    create_lookup_table(dynamodb, "lookup", {"id": {"S": "a"}, "value": {"S": "x"}})
    sfn = stack.client("stepfunctions")
    sfn.redrive_execution(executionArn=first["execution_arn"])
    deadline = time.monotonic() + 60
    while (described := sfn.describe_execution(executionArn=first["execution_arn"]))["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert (described["status"], described["redriveCount"]) == ("SUCCEEDED", 1)

    again = stack.track("etl")
    assert (again["states_registered"], again["instances_terminated"], again["skipped"]) == (3, 1, [])
    final = stack.verify(first["instance_id"])
    passed_all_five(final)
    assert (final["status"], final["status_text"]) == ("final", "final (attempt 1, 5 states)")
    assert [(a["attempt"], a["final"]) for a in results(final, "attempt")] == [(0, False), (1, True)]
    assert all(item["ok"] for item in results(final, "state")) and len(results(final, "state")) == 5
    # one trace: the same instance, seq and the hash chain continuing across the redrive
    states = stack.states(first["instance_id"])
    assert [(s["state_name"], s["attempt"], s["seq"]) for s in states] == [
        ("Load", 0, 0),
        ("Transform", 0, 1),
        ("Transform", 1, 2),
        ("Store", 1, 3),
        ("Done", 1, 4),
    ]
    assert all(s["instance_id"] == first["instance_id"] for s in states)
    entries = stack.protocol(first["instance_id"])["instance_protocol"]
    assert [s["previous_state_id"] for s in states[1:]] == [e["state_hash"] for e in entries[:-1]]
    text = stack.run("verify", "--instance", first["instance_id"], "--owner", "local.eth", "--allow-private-hosts")
    assert re.search(r"^verdict: PASSED, instance final \(attempt 1, 5 states\)", text.stdout, re.M), text.stdout

    report = stack.index(first["execution_id"])["report"]
    # the index's protocol of the instance: both attempts' ends among the states, in chain order
    assert [(row["entry"], row["seq"]) for row in report["protocol"]] == [
        ("state", 0),
        ("state", 1),
        ("attempt end", 2),
        ("state", 2),
        ("state", 3),
        ("state", 4),
        ("final end", 5),
    ]
    [etl] = [row for row in report["models"] if row["model_id"] == model["model_id"]]
    assert (etl["instances"], etl["final_instances"], etl["states"]) == (1, 1, 5)


def test_a_distributed_map_parent_is_verified_with_its_children_and_indexed(stack):
    stack.deploy_model("fan", FAN_OUT)
    parent = stack.start("fan", "batch-1", {"items": [1, 2, 3]})
    # the parent's 3 states and each child's Work and Done, the children before their parent
    assert (parent["status"], parent["final"], parent["states_registered"]) == ("SUCCEEDED", True, 9)
    assert stack.track("fan")["states_registered"] == 0
    # a tracker with no checkpoints reads the parent and its children again: nothing to send, and
    # its last line counts the children beside the one listed execution
    text = stack.run("track_execution", f"{ACCOUNT_ARN}:stateMachine:fan", *stack.publishing(), "--state-dir", ".t-fan")
    assert "0 states of 1 executions and 3 child executions registered in 0 transactions" in text.stdout, text.stdout
    assert text.stdout.count("executions seen") == 1 and re.search(r"children seen\W+3\b", text.stdout), text.stdout

    report = stack.verify(parent["instance_id"])
    passed_all_five(report)
    [children] = results(report, "children")
    assert children["ok"] is True
    assert children["reason"].startswith("3 child executions of 1 states verified"), children

    [fan] = [s for s in stack.states(parent["instance_id"]) if s["state_name"] == "Fan"]
    listing = stack.document(fan["children"])
    assert (listing["instance_id"], listing["event_id"]) == (parent["instance_id"], fan["event_id"])
    assert listing["map_run_arn"].startswith(f"{ACCOUNT_ARN}:mapRun:fan/fan:")
    child_models = set()
    for child in listing["instances"]:
        facts = stack.document(child)
        assert (facts["parent_instance_id"], facts["parent_execution_arn"]) == (
            parent["instance_id"],
            parent["execution_arn"],
        )
        assert (facts["parent_state_name"], facts["map_run_arn"]) == ("Fan", listing["map_run_arn"])
        assert facts["state_machine_arn"] == f"{ACCOUNT_ARN}:stateMachine:fan/fan"
        assert [s["state_name"] for s in stack.states(child)] == ["Work", "Done"]
        child_models.add(facts["model_id"])

    # the index counts the children as instances of the child workflow's model; which parent
    # they belong to is in the documents, not in the contract's events
    indexed = stack.index(None, "--documents", "./protocol")
    models = {row["model_id"]: row for row in indexed["report"]["models"]}
    [child_model] = child_models
    assert (models[child_model]["instances"], models[child_model]["final_instances"]) == (3, 3)
    assert (models[parent["model_id"]]["instances"], models[parent["model_id"]]["states"]) == (1, 3)
    # which parent they belong to: the links loaded from the documents, both sides agreeing
    assert (indexed["links"]["added"], indexed["links"]["refused"]) == (3, 0)
    [visit] = [row for row in indexed["report"]["children"] if row["parent_instance_id"] == parent["instance_id"]]
    assert (visit["parent_state_name"], visit["map_run_arn"]) == ("Fan", listing["map_run_arn"])
    assert (visit["children"], visit["final_children"], visit["child_states"]) == (3, 3, 6)


def test_a_distributed_maps_express_children_come_through_the_log_group_deploy_model_set(stack):
    express = json.loads(json.dumps(FAN_OUT))
    express["States"]["Fan"]["ItemProcessor"]["ProcessorConfig"]["ExecutionType"] = "EXPRESS"
    deployed = stack.deploy_model("fanx", express, "--log-group", "fanx-events")
    # the same definition and group again: nothing changes, no new model
    again = stack.deploy_model("fanx", express, "--log-group", "fanx-events")
    assert (again["change"], again["model_id"]) == ("unchanged", deployed["model_id"])
    logging = stack.client("stepfunctions").describe_state_machine(stateMachineArn=deployed["state_machine_arn"])[
        "loggingConfiguration"
    ]
    assert (logging["level"], logging["includeExecutionData"]) == ("ALL", True)
    assert logging["destinations"][0]["cloudWatchLogsLogGroup"]["logGroupArn"].endswith(":log-group:fanx-events:*")

    parent = stack.start("fanx", "batch-x", {"items": [1, 2, 3, 4]})
    # Express children keep no history: their Work and Done come from the log group
    assert (parent["status"], parent["final"], parent["states_registered"]) == ("SUCCEEDED", True, 3 + 4 * 2)
    report = stack.verify(parent["instance_id"])
    passed_all_five(report)
    [children] = results(report, "children")
    assert children["ok"] is True and children["reason"].startswith("4 child executions of 1 states verified")
    [fan] = [s for s in stack.states(parent["instance_id"]) if s["state_name"] == "Fan"]
    for child in stack.document(fan["children"])["instances"]:
        assert ":express:fanx/fan:" in stack.document(child)["execution_arn"]


def test_a_nested_sync_child_and_its_parent_name_each_other(stack):
    greeter = stack.deploy_model("greeter", GREETER)
    stack.deploy_model("caller", caller(greeter["state_machine_arn"]))
    parent = stack.start("caller", "call-1")
    assert (parent["status"], parent["final"], parent["states_registered"]) == ("SUCCEEDED", True, 3)
    # the child's own machine tracked as well: its execution is tracked once, as the child
    assert stack.track("caller", "greeter")["states_registered"] == 0

    [call] = [s for s in stack.states(parent["instance_id"]) if s["state_name"] == "Call"]
    listing = stack.document(call["children"])
    [child] = listing["instances"]
    facts = stack.document(child)
    assert (facts["parent_instance_id"], facts["parent_event_id"], facts["parent_state_name"]) == (
        parent["instance_id"],
        call["event_id"],
        "Call",
    )
    assert "map_run_arn" not in facts and facts["state_machine_arn"] == greeter["state_machine_arn"]
    assert facts["model_id"] == greeter["model_id"]

    report = stack.verify(parent["instance_id"])
    passed_all_five(report)
    [children] = results(report, "children")
    assert children["ok"] is True and children["reason"].startswith("1 child executions of 1 states verified")
    own = stack.verify(child)
    passed_all_five(own)
    assert own["parent"] == {
        "instance": parent["instance_id"],
        "execution_arn": parent["execution_arn"],
        "event_id": call["event_id"],
        "state_name": "Call",
        "map_run_arn": None,
    }
    text = stack.run("verify", "--instance", child, "--owner", "local.eth", "--allow-private-hosts").stdout
    assert f"started by instance {parent['instance_id']} (state 'Call', event {call['event_id']})" in text, text

    indexed = stack.index(None, "--documents", "./protocol")
    models = {row["model_id"]: row for row in indexed["report"]["models"]}
    assert models[greeter["model_id"]]["instances"] == 1 and models[parent["model_id"]]["instances"] == 1
    [visit] = [row for row in indexed["report"]["children"] if row["parent_instance_id"] == parent["instance_id"]]
    assert (visit["parent_state_name"], visit["map_run_arn"], visit["children"]) == ("Call", None, 1)


def test_an_alias_start_records_the_alias_and_the_version_it_ran(stack):
    first = stack.deploy_model("pick", pick("v1"))
    second = stack.deploy_model("pick", pick("v2"))
    assert (second["change"], second["previous_model_id"]) == ("changed", first["model_id"])
    alias = stack.client("stepfunctions").create_state_machine_alias(
        name="live", routingConfiguration=[{"stateMachineVersionArn": first["version_arn"], "weight": 100}]
    )["stateMachineAliasArn"]
    run = stack.start(alias, "via-alias")
    assert (run["alias_arn"], run["version_arn"], run["model_id"]) == (alias, first["version_arn"], first["model_id"])
    assert (run["status"], run["final"]) == ("SUCCEEDED", True)
    facts = stack.document(run["instance_id"])
    assert (facts["state_machine_alias_arn"], facts["state_machine_version_arn"]) == (alias, first["version_arn"])
    assert facts["state_machine_arn"] == first["state_machine_arn"]

    # a tracker that never saw the start reads the same instance from DescribeExecution: nothing to send
    fresh = stack.track("pick", state_dir=".tracker-fresh")
    assert (fresh["states_registered"], fresh["transactions"], fresh["skipped"]) == (0, 0, [])
    passed_all_five(stack.verify(run["instance_id"]))
    models = {row["model_id"]: row for row in stack.index()["report"]["models"]}
    assert models[first["model_id"]]["instances"] == 1
    assert second["model_id"] not in models or models[second["model_id"]]["instances"] == 0


def test_an_execution_past_the_redrive_window_is_refused_and_then_tracked_final(stack):
    """AWS refuses RedriveExecution 14 days after the end and DescribeExecution then says
    NOT_REDRIVABLE; the emulation's clock for the execution is moved 15 days on instead of waiting."""
    late = json.loads(json.dumps(ETL))
    late["States"]["Transform"]["Parameters"]["TableName"] = "never-created"
    model = stack.deploy_model("etl-late", late)
    first = stack.start("etl-late", "nightly-late")
    assert (first["status"], first["final"], first["attempts_ended"], first["states_registered"]) == (
        "FAILED",
        False,
        1,
        2,
    )
    assert stack.verify(first["instance_id"])["status_text"] == "ended, attempt 0, still redrivable"

    sfn = stack.client("stepfunctions")
    assert sfn.describe_execution(executionArn=first["execution_arn"])["redriveStatus"] == "REDRIVABLE"
    stack.emulation("EmulationAdvanceClock", executionArn=first["execution_arn"], seconds=FIFTEEN_DAYS)
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as refused:
        sfn.redrive_execution(executionArn=first["execution_arn"])
    assert refused.value.response["Error"]["Code"] == "ExecutionNotRedrivable"
    described = sfn.describe_execution(executionArn=first["execution_arn"])
    assert (described["status"], described["redriveStatus"], described["redriveCount"]) == (
        "FAILED",
        "NOT_REDRIVABLE",
        0,
    )

    later = stack.track("etl-late")
    # the end already on chain, now final: no new state, one termination
    assert (later["states_registered"], later["instances_terminated"], later["attempts_ended"], later["skipped"]) == (
        0,
        1,
        0,
        [],
    )
    final = stack.verify(first["instance_id"])
    passed_all_five(final)
    assert (final["status"], final["status_text"]) == ("final", "final (attempt 0, 2 states)")
    # the chain holds attempt 0's end twice, redrivable then final, and the protocol lists both
    assert [(a["attempt"], a["final"], a["ok"]) for a in results(final, "attempt")] == [
        (0, False, True),
        (0, True, True),
    ]

    report = stack.index(first["execution_id"])["report"]
    assert [row["entry"] for row in report["protocol"]][-1] == "final end"
    [etl] = [row for row in report["models"] if row["model_id"] == model["model_id"]]
    assert (etl["instances"], etl["final_instances"], etl["states"]) == (1, 1, 2)


def recorded_jsonata_execution() -> dict:
    """The JSONata fixture (validated against botocore's model in tests/tracking) as the emulation
    records it: DescribeExecution's answer, the definition and GetExecutionHistory's events."""
    events = JSONATA["history"]["events"]
    failed = events[-1]["executionFailedEventDetails"]
    return {
        "execution": {
            "executionArn": JSONATA["execution_arn"],
            "stateMachineArn": JSONATA["state_machine_arn"],
            "name": JSONATA["execution_arn"].rsplit(":", 1)[1],
            "status": "FAILED",
            "startDate": events[0]["timestamp"],
            "stopDate": events[-1]["timestamp"],
            "input": JSONATA["input"],
            "error": failed["error"],
            "cause": failed["cause"],
        },
        "definition": JSONATA["definition"],
        "events": events,
    }


def test_a_jsonata_execution_with_evaluation_failed_through_the_commands(stack):
    """moto has no JSONata runtime: the execution AWS ran is recorded into the emulation, which
    then answers DescribeExecution, GetExecutionHistory and ListExecutions for it as AWS did."""
    path = stack.project / "pricing.asl.json"
    path.write_text(JSONATA["definition"])  # the definition text the recorded execution ran
    model = stack.json("deploy_model", path.name, "--name", "pricing", "--role-arn", ROLE)
    assert model["state_machine_arn"] == JSONATA["state_machine_arn"]
    stack.emulation("EmulationRecordExecution", **recorded_jsonata_execution())

    tracked = stack.track("pricing")
    assert (tracked["states_registered"], tracked["attempts_ended"], tracked["instances_terminated"]) == (2, 1, 0)
    [protocol] = [
        json.loads(p.read_bytes())
        for p in (stack.project / "protocol").glob("*.json")
        if json.loads(p.read_bytes()).get("model_hash") == model["model_id"]
    ]
    instance_id = protocol["instance_hash"]
    states = stack.states(instance_id)
    assert [(s["state_name"], s["attempt"]) for s in states] == [("Price", 0), ("Split", 0)]
    ended = stack.verify(instance_id)
    passed_all_five(ended)
    assert ended["status_text"] == "ended, attempt 0, still redrivable"

    # 15 days on, the failed JSONata execution can no longer be redriven: final
    stack.emulation("EmulationAdvanceClock", executionArn=JSONATA["execution_arn"], seconds=FIFTEEN_DAYS)
    assert stack.track("pricing")["instances_terminated"] == 1
    final = stack.verify(instance_id)
    passed_all_five(final)
    assert (final["status"], final["status_text"]) == ("final", "final (attempt 0, 2 states)")
    ended_then_final = stack.protocol(instance_id)["attempts"]
    assert [(a["attempt"], a["final"]) for a in ended_then_final] == [(0, False), (0, True)]
    end = stack.document(ended_then_final[-1]["end_hash"])
    assert (end["status"], end["error"], end["state_count"]) == ("FAILED", "States.QueryEvaluationError", 2)

    models = {row["model_id"]: row for row in stack.index()["report"]["models"]}
    assert (models[model["model_id"]]["instances"], models[model["model_id"]]["final_instances"]) == (1, 1)
    assert models[model["model_id"]]["states"] == 2


def test_a_redriven_distributed_map_parent_redrives_its_failed_children(stack):
    """A Map Run whose children fail fails its parent; its failed children are REDRIVABLE_BY_MAP_RUN
    (only a redrive of the parent can redrive them), so they stay open while the parent can be
    redriven. The emulation imitates AWS's failed Map Run (States.ExceedToleratedFailureThreshold)
    and its redrive: the parent's redrive redrives the same Map Run (`MapRunRedriven`), whose failed
    Standard children are redriven under their own ARNs, each then one trace of two attempts."""
    failing = json.loads(json.dumps(FAN_OUT))
    failing["States"]["Fan"]["Label"] = "lookups"
    failing["States"]["Fan"]["ItemProcessor"]["States"]["Work"] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::dynamodb:getItem",
        "Parameters": {"TableName": "fan-lookup", "Key": {"id": {"S": "a"}}},
        "Next": "Done",
    }
    stack.deploy_model("fanredo", failing)
    first = stack.start("fanredo", "batch-redo", {"items": [1, 2]})
    assert (first["status"], first["final"]) == ("FAILED", False), first
    sfn = stack.client("stepfunctions")
    [run] = sfn.list_map_runs(executionArn=first["execution_arn"])["mapRuns"]
    children = sfn.list_executions(mapRunArn=run["mapRunArn"])["executions"]
    assert [c["status"] for c in children] == ["FAILED", "FAILED"]
    assert {sfn.describe_execution(executionArn=c["executionArn"])["redriveStatus"] for c in children} == {
        "REDRIVABLE_BY_MAP_RUN"
    }
    ended = stack.verify(first["instance_id"])
    passed_all_five(ended)
    assert ended["status_text"] == "ended, attempt 0, still redrivable"
    [fan] = [s for s in stack.states(first["instance_id"]) if s["state_name"] == "Fan"]
    failed_children = stack.document(fan["children"])["instances"]
    assert [stack.verify(child)["status"] for child in failed_children] == ["ended", "ended"]

    dynamodb = stack.client("dynamodb")
    create_lookup_table(dynamodb, "fan-lookup", {"id": {"S": "a"}})
    sfn.redrive_execution(executionArn=first["execution_arn"])
    deadline = time.monotonic() + 60
    while sfn.describe_execution(executionArn=first["execution_arn"])["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.1)

    again = stack.track("fanredo")
    # the parent and its two children, redriven and SUCCEEDED: nothing left pending
    assert (again["instances_terminated"], again["pending_executions"], again["child_executions"]) == (3, 0, 2)
    final = stack.verify(first["instance_id"])
    passed_all_five(final)
    assert final["status_text"] == "final (attempt 1, 4 states)"
    # the visit that started the Map Run names both children; the redriven visit started none
    [children_check] = results(final, "children")
    assert children_check["ok"] is True and children_check["reason"].startswith("2 child executions of 1 states")
    for child in failed_children:
        own = stack.verify(child)
        passed_all_five(own)
        assert (own["status"], own["parent"]["instance"]) == ("final", first["instance_id"])
        assert own["status_text"] == "final (attempt 1, 3 states)"


def test_a_redriven_distributed_map_starts_its_failed_express_children_again(stack):
    """Express children are never redriven: the emulation, as AWS, starts each failed item of the
    redriven Map Run again as a new execution. The verifier then walks both visits of the Map state:
    the first one's failed children (final as they ended) and the redriven one's new children."""
    failing = json.loads(json.dumps(FAN_OUT))
    failing["States"]["Fan"]["Label"] = "quick"
    failing["States"]["Fan"]["ItemProcessor"]["ProcessorConfig"]["ExecutionType"] = "EXPRESS"
    failing["States"]["Fan"]["ItemProcessor"]["States"]["Work"] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::dynamodb:getItem",
        "Parameters": {"TableName": "fanx-lookup", "Key": {"id": {"S": "a"}}},
        "Next": "Done",
    }
    stack.deploy_model("fanxredo", failing, "--log-group", "fanxredo-events")
    first = stack.start("fanxredo", "batch-x", {"items": [1, 2]})
    assert (first["status"], first["final"]) == ("FAILED", False), first
    [fan] = [s for s in stack.states(first["instance_id"]) if s["state_name"] == "Fan"]
    failed_children = stack.document(fan["children"])["instances"]
    assert [stack.verify(child)["status"] for child in failed_children] == ["final", "final"]

    dynamodb = stack.client("dynamodb")
    create_lookup_table(dynamodb, "fanx-lookup", {"id": {"S": "a"}})
    sfn = stack.client("stepfunctions")
    sfn.redrive_execution(executionArn=first["execution_arn"])
    deadline = time.monotonic() + 60
    while sfn.describe_execution(executionArn=first["execution_arn"])["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.1)

    again = stack.track("fanxredo")
    # the parent and the two children started again; the failed two were final already
    assert (again["instances_terminated"], again["pending_executions"], again["child_executions"]) == (3, 0, 4)
    final = stack.verify(first["instance_id"])
    passed_all_five(final)
    assert final["status_text"] == "final (attempt 1, 4 states)"
    [children_check] = results(final, "children")
    assert children_check["ok"] is True and children_check["reason"].startswith("4 child executions of 2 states")
    fans = [s for s in stack.states(first["instance_id"]) if s["state_name"] == "Fan"]
    assert [s["attempt"] for s in fans] == [0, 1] and fans[0]["children"] == fan["children"]
    started_again = stack.document(fans[1]["children"])["instances"]
    assert len(started_again) == 2 and not set(started_again) & set(failed_children)
    for child in started_again:
        own = stack.verify(child)
        passed_all_five(own)
        assert (own["status"], own["parent"]["instance"]) == ("final", first["instance_id"])
