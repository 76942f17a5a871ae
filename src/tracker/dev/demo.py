"""The whole loop on embedded defaults, touching nothing outside this machine.

1. Services: anvil (with ENS installed at Sepolia's addresses), a moto server that really
   executes Step Functions state machines (reached by boto3 through AWS_ENDPOINT_URL, as a real
   endpoint would be), and Postgres (DATABASE_URL, else an embedded pgserver).
2. Identity: `ape run deploy` deploys InstanceTracker, registers the client id, links the demo
   account's ENS name to the protocol server's URL and registers its certificate fingerprint.
3. Workload: the Lambda function the pipeline's NormalizeRecord task invokes is created and
   published (version 1, alias `live`); `ape run deploy_model` publishes the ETL state machine
   in examples/ as a version, which runs several times: the first run fails because a table its task reads is missing, the
   last on a batch the pipeline rejects.
4. `ape run track_execution` registers everything; the table is created and the first run
   redriven (Step Functions' RedriveExecution) to success, and tracked again as the same trace;
   `ape run serve` publishes over HTTPS; `ape run index` loads Postgres; `ape run verify` proves
   the redriven execution, final, one trace across both attempts, and shows what each Task
   state ran (the Lambda version and its code sha256).
5. The explorer page (served by `ape run serve` under /explorer/) opened on the verified protocol in
   headless Chromium, when it is installed: its verdict, and a screenshot in the work directory.
6. A summary, with the code identity per state of the verified execution; every background
   process is stopped, also on Ctrl-C or failure.

Each step runs the same `ape run` command an operator would run in production, with
`--network`, AWS settings and DATABASE_URL pointing at the local stand-ins.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from tracker.dev import explorer
from tracker.dev.services import ServiceStack, free_port
from tracker.errors import TrackerError, one_line

NETWORK = "ethereum:local:foundry"
ENS_NAME = "demo.eth"
CLIENT_ID = "demo-client"
AWS_REGION = "us-east-1"
AWS_ACCOUNT_ROLE = "arn:aws:iam::123456789012:role/etl-pipeline"
STATE_MACHINE_NAME = "etl-pipeline"
CATALOG_TABLE = "etl-catalog"
NORMALIZE_FUNCTION = "etl-normalize"
NORMALIZE_SOURCE = "def handler(event, context):\n    return {**event, 'normalised': True}\n"


class DemoStepError(TrackerError):
    """A step of the demo failed; the message names the step and its last line of output."""


@dataclass
class DemoConfig:
    project_root: Path
    work_dir: Path
    executions: int = 4
    failing_executions: int = 1


@dataclass
class DemoResult:
    figures: dict[str, Any] = field(default_factory=dict)
    verdict: str = "not run"
    sql_hint: str = ""


class Demo:
    """Runs the loop step by step, printing one line per step."""

    def __init__(self, config: DemoConfig, console: Console | None = None):
        self.config = config
        self.console = console or Console()
        self.env: dict[str, str] = {}

    def run_step(self, title: str, command: list[str], expect_json: bool = False) -> Any:
        """Runs one `ape run ...` command with the demo's environment; returns parsed JSON if asked."""
        started = time.monotonic()
        self.console.print(f"[bold]>[/bold] {title}: [dim]{' '.join(command)}[/dim]")
        completed = subprocess.run(
            command,
            cwd=self.config.project_root,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        log = self.config.work_dir / "logs" / (title.lower().replace(" ", "-") + ".log")
        log.write_text(completed.stdout + "\n--- stderr ---\n" + completed.stderr)
        if completed.returncode != 0:
            last = one_line("\n".join(reversed((completed.stderr or completed.stdout).strip().splitlines())))
            raise DemoStepError(f"{title} failed (exit {completed.returncode}): {last} (full log: {log})")
        self.console.print(f"  done in {time.monotonic() - started:.1f} s")
        if expect_json:
            return json.loads(completed.stdout[completed.stdout.index("{") :])
        return completed.stdout


def ape(*arguments: str) -> list[str]:
    """The command line of `ape run ...` with this interpreter's ape."""
    return [str(Path(sys.executable).parent / "ape"), "run", *arguments]


def prepare_work_dir(work_dir: Path) -> None:
    """The demo's own directories; what an earlier demo published or checkpointed described a
    chain that is gone, so it starts empty (the TLS key and the logs are kept)."""
    import shutil

    for sub in ("protocol", "state", ".build"):
        shutil.rmtree(work_dir / sub, ignore_errors=True)
    for sub in ("logs", "protocol", "state", "tls"):
        (work_dir / sub).mkdir(parents=True, exist_ok=True)


def start_services(stack: ServiceStack, config: DemoConfig) -> dict[str, str]:
    """Starts anvil, moto and Postgres; returns the environment every step runs with."""
    anvil = stack.anvil()
    moto = stack.moto()
    database = stack.database(config.work_dir / "postgres")
    return {
        "APE_FOUNDRY_HOST": anvil.url,
        "AWS_ENDPOINT_URL": moto.endpoint_url,
        "AWS_DEFAULT_REGION": AWS_REGION,
        "AWS_REGION": AWS_REGION,
        "AWS_ACCESS_KEY_ID": "demo",
        "AWS_SECRET_ACCESS_KEY": "demo",
        "DATABASE_URL": database.url,
        "TRACKER_DEMO_PROTOCOL_PORT": str(free_port()),
        # The demo's own deployment record, never the user's .build/local-deployments.json.
        "TRACKER_PROJECT": str(config.work_dir),
    }


def install_identity_prerequisites(env: dict[str, str]) -> str:
    """Installs ENS on the demo chain and registers the demo name for the demo account (TEST::0)
    through the registrar controller, so it is wrapped as a name registered in the ENS app is.

    Returns the account's address. On Sepolia the name is registered through the ENS app instead.
    """
    from ape import accounts, networks

    from tracker.dev.ens import install_local_ens, register_name

    os.environ["APE_FOUNDRY_HOST"] = env["APE_FOUNDRY_HOST"]
    with networks.parse_network_choice(NETWORK):
        account = accounts.test_accounts[0]
        install_local_ens(account)
        register_name(account, ENS_NAME)
        return str(account.address)


def _aws_client(env: dict[str, str], service: str) -> Any:
    import boto3

    return boto3.client(  # type: ignore[call-overload]
        service,
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def _wait_for_ends(client: Any, arns: list[str], timeout: float = 60.0) -> dict[str, str]:
    """Each execution's status once none is running (raises after `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    statuses = {arn: "RUNNING" for arn in arns}
    while "RUNNING" in statuses.values() and time.monotonic() < deadline:
        for arn, status in statuses.items():
            if status == "RUNNING":
                statuses[arn] = client.describe_execution(executionArn=arn)["status"]
        time.sleep(0.3)
    still_running = sum(status == "RUNNING" for status in statuses.values())
    if still_running:
        raise DemoStepError(f"{still_running} execution(s) still running after {timeout:.0f} s on the emulated AWS")
    return statuses


def _batch(number: int, source: str) -> str:
    records = [{"id": f"{number}-{item}", "amount": 10 * item + number} for item in range(1, 4)]
    return json.dumps({"source": source, "records": records})


def create_catalog(env: dict[str, str]) -> None:
    """The DynamoDB table the pipeline's EnrichFromCatalog task reads (the fix before a redrive)."""
    ddb = _aws_client(env, "dynamodb")
    ddb.create_table(
        TableName=CATALOG_TABLE,
        KeySchema=[{"AttributeName": "schema", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "schema", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.put_item(TableName=CATALOG_TABLE, Item={"schema": {"S": "orders-v2"}, "currency": {"S": "EUR"}})


def create_normalize_function(env: dict[str, str]) -> dict[str, Any]:
    """The Lambda function the pipeline's NormalizeRecord task invokes as `etl-normalize:live`:
    version 1, published, behind the alias `live` (the moto server answers invocations without
    running code). Returns its configuration."""
    import io
    import zipfile

    iam = _aws_client(env, "iam")
    role_name = AWS_ACCOUNT_ROLE.rsplit("/", 1)[1]
    try:
        iam.get_role(RoleName=role_name)
    except iam.exceptions.NoSuchEntityException:
        iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17"}))
    package = io.BytesIO()
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("handler.py", NORMALIZE_SOURCE)
    lam = _aws_client(env, "lambda")
    function = lam.create_function(
        FunctionName=NORMALIZE_FUNCTION,
        Runtime="python3.12",
        Role=AWS_ACCOUNT_ROLE,
        Handler="handler.handler",
        Code={"ZipFile": package.getvalue()},
        Publish=True,
    )
    lam.create_alias(FunctionName=NORMALIZE_FUNCTION, Name="live", FunctionVersion=function["Version"])
    return function


def code_identity_per_state(protocol_path: Path) -> list[str]:
    """'state: what ran' for each state of a published protocol that names a task document."""
    from tracker.documents.tasks import describe_code

    documents = protocol_path.parent / "documents"
    lines = []
    for entry in json.loads(protocol_path.read_text())["instance_protocol"]:
        state = json.loads((documents / f"{entry['state_hash']}.json").read_text())
        if "task_id" not in state:
            continue
        task = json.loads((documents / f"{state['task_id']}.json").read_text())
        lines.append(
            f"{state['state_name']}: {describe_code(task.get('code'), task['code_identity'], task.get('code_note'))}"
        )
    return lines


def run_workload(env: dict[str, str], target: str, executions: int, failing: int) -> tuple[str, dict[str, str]]:
    """Runs the ETL state machine's published version `target` on the emulated AWS.

    The first run starts before the catalog table exists, so its EnrichFromCatalog task fails as a
    task whose dependency is down does (it is redriven later); then the table is created and the
    other runs go, the last `failing` of them on a batch the pipeline rejects. Returns the ARN of
    the first run and each execution's final status by ARN.
    """
    client = _aws_client(env, "stepfunctions")
    transient = client.start_execution(stateMachineArn=target, name="batch-000", input=_batch(0, "shop-0"))[
        "executionArn"
    ]
    statuses = _wait_for_ends(client, [transient])
    create_catalog(env)
    started = []
    for number in range(1, executions):
        source = "corrupted" if number >= executions - failing else f"shop-{number}"
        started.append(
            client.start_execution(stateMachineArn=target, name=f"batch-{number:03d}", input=_batch(number, source))[
                "executionArn"
            ]
        )
    statuses.update(_wait_for_ends(client, started))
    return transient, statuses


def redrive(env: dict[str, str], execution_arn: str) -> str:
    """RedriveExecution, then the execution's status once the new attempt ended."""
    client = _aws_client(env, "stepfunctions")
    client.redrive_execution(executionArn=execution_arn)
    return _wait_for_ends(client, [execution_arn])[execution_arn]


def run(config: DemoConfig, console: Console) -> DemoResult:
    """Runs the whole loop; raises `TrackerError` naming the failing step."""
    prepare_work_dir(config.work_dir)
    demo = Demo(config, console)
    result = DemoResult()
    with ServiceStack(config.work_dir / "logs") as stack:
        console.print("[bold]Starting local services[/bold] (anvil, moto server, Postgres)")
        demo.env = start_services(stack, config)
        port = demo.env["TRACKER_DEMO_PROTOCOL_PORT"]
        origin = f"https://localhost:{port}"
        network = ["--network", NETWORK]

        stack.spawn(
            "serve",
            ape(
                "serve",
                str(config.work_dir / "protocol"),
                "--port",
                port,
                "--tls-dir",
                str(config.work_dir / "tls"),
                "--quiet",
            ),
            env={**os.environ, **demo.env},
        )
        wait_for_https(int(port))
        console.print(f"> protocol server at {origin}")

        address = install_identity_prerequisites(demo.env)
        console.print(f"> ENS installed at Sepolia's addresses; {ENS_NAME} registered (wrapped) for {address}")
        demo.run_step(
            "Deploy",
            ape("deploy", *network, "--client-id", CLIENT_ID, "--ens-name", ENS_NAME, "--uri", origin),
        )

        definition = config.project_root / "examples" / "etl-pipeline.asl.json"
        model = demo.run_step(
            "Deploy the model",
            ape(
                "deploy_model",
                str(definition),
                "--name",
                STATE_MACHINE_NAME,
                "--role-arn",
                AWS_ACCOUNT_ROLE,
                *network,
                "--json",
            ),
            expect_json=True,
        )
        function = create_normalize_function(demo.env)
        console.print(
            f"> Lambda {NORMALIZE_FUNCTION} version {function['Version']} (alias live), code sha256 {function['CodeSha256']}"
        )
        console.print(f"> running {config.executions} executions of {definition.name} on the emulated AWS")
        transient, executions = run_workload(
            demo.env, model["version_arn"], config.executions, config.failing_executions
        )
        track = ape(
            "track_execution",
            model["state_machine_arn"],
            *network,
            "--publish",
            str(config.work_dir / "protocol"),
            "--base-url",
            origin,
            "--state-dir",
            str(config.work_dir / "state"),
            "--json",
        )
        tracked = demo.run_step("Track executions", track, expect_json=True)
        console.print(f"> the catalog table now exists: redriving {transient.rsplit(':', 1)[1]}")
        executions[transient] = redrive(demo.env, transient)
        retracked = demo.run_step("Track again (the redrive)", track, expect_json=True)
        indexed = demo.run_step(
            "Index into Postgres",
            ape(
                "index",
                *network,
                "--database",
                demo.env["DATABASE_URL"],
                "--schema",
                "tracker",
                "--documents",
                str(config.work_dir / "protocol"),
                "--report",
                "--json",
            ),
            expect_json=True,
        )
        protocols = sorted({*tracked.get("protocols_written", []), *retracked.get("protocols_written", [])})
        if not protocols:
            raise DemoStepError("the tracker wrote no instance protocol")
        redriven_protocol = redriven_protocol_of(config.work_dir / "protocol", protocols)
        protocol_url = f"{origin}/{redriven_protocol.name}"
        console.print(f"[bold]> Verify the redriven execution[/bold] {protocol_url}")
        verification = subprocess.run(
            ape("verify", protocol_url, *network),
            cwd=config.project_root,
            env={**os.environ, **demo.env},
            stdin=subprocess.DEVNULL,
        )
        result.verdict = "passed" if verification.returncode == 0 else f"failed (exit {verification.returncode})"
        result.figures |= explore(config, origin, protocol_url, demo.env["APE_FOUNDRY_HOST"], console)
        states = int(tracked.get("states_registered", 0)) + int(retracked.get("states_registered", 0))
        gas = int(tracked.get("gas_used", 0)) + int(retracked.get("gas_used", 0))
        failed = sum(status != "SUCCEEDED" for status in executions.values())
        result.figures = {
            "executions": f"{len(executions)} ({len(executions) - failed} succeeded, {failed} failed)",
            "redriven": f"{transient.rsplit(':', 1)[1]}: FAILED, then {executions[transient]} (one trace)",
            "states registered": states,
            "transactions": int(tracked.get("transactions", 0)) + int(retracked.get("transactions", 0)),
            "gas used": gas,
            "gas per state (incl. models, instances, ends)": round(gas / states) if states else 0,
            "events indexed": indexed.get("summary", {}).get("events", "?"),
            "protocols published": len(protocols),
            "verified": protocol_url,
            **result.figures,
        }
        ran = code_identity_per_state(redriven_protocol)
        shown = sorted(set(ran), key=ran.index)
        result.figures["code identity per state"] = "; ".join(
            f"{line} (x{ran.count(line)})" if ran.count(line) > 1 else line for line in shown
        )
        result.sql_hint = database_hint(
            demo.env["DATABASE_URL"], stack_embedded=demo.env["DATABASE_URL"] != os.environ.get("DATABASE_URL")
        )
    return result


def explore(config: DemoConfig, origin: str, protocol_url: str, rpc_url: str, console: Console) -> dict[str, Any]:
    """The explorer page on the verified protocol, opened in headless Chromium when it is here:
    its URL, the verdict it reached in the browser and a screenshot in the work directory."""
    url = explorer.page_url(origin, protocol_url, rpc_url)
    figures: dict[str, Any] = {"explorer": url}
    console.print(f"[bold]> The explorer page[/bold] {url}")
    reason = explorer.missing(config.project_root)
    if reason is not None:
        figures["explorer screenshot"] = f"not taken: {reason}"
        return figures
    path = config.work_dir / "explorer.png"
    try:
        found = explorer.screenshot(url, path)
    except Exception as error:  # the browser or its driver failed: the demo's verdict stands without it
        figures["explorer screenshot"] = f"not taken: {one_line(error)}"
        return figures
    figures["explorer verdict"] = f"{found.verdict} ({found.seconds:.2f} s in the browser)"
    figures["explorer screenshot"] = str(path)
    return figures


def redriven_protocol_of(publish_dir: Path, protocols: list[str]) -> Path:
    """The protocol of the execution that ended in more than one attempt."""
    for name in protocols:
        path = publish_dir / name
        if len({entry["attempt"] for entry in json.loads(path.read_text()).get("attempts") or []}) > 1:
            return path
    raise DemoStepError("no published protocol shows a redriven execution")


def wait_for_https(port: int, timeout: float = 60.0) -> None:
    """Waits until the protocol server accepts TLS connections on the port."""
    import socket
    import ssl

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as raw:
                with context.wrap_socket(raw, server_hostname="localhost"):
                    return
        except OSError:
            time.sleep(0.2)
    raise DemoStepError(f"the protocol server did not answer on port {port} within {timeout:.0f} s")


def database_hint(url: str, stack_embedded: bool) -> str:
    lines = [
        "Explore the indexed data (views in schema tracker):",
        "  SELECT * FROM tracker.model_instance_stats;",
        "  SELECT * FROM tracker.client_activity;",
        "  SELECT * FROM tracker.states_per_day;",
        "  SELECT * FROM tracker.function_version_runs;  -- which executions ran which code",
        "  SELECT * FROM tracker.instance_protocol WHERE instance_id = '<id>' ORDER BY seq;",
    ]
    if stack_embedded:
        lines.append(
            "The embedded Postgres was stopped with the demo; its data stays in .demo/postgres. Reopen it with\n"
            "  .venv/bin/python -c \"import pgserver; print(pgserver.get_server('.demo/postgres').get_uri())\""
        )
    else:
        lines.append(f"  psql '{url}'")
    return "\n".join(lines)
