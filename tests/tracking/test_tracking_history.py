import json

from tracker.documents import chain_head, sha256_hex
from tracker.stepfunctions import HistorySource, Selection
from tracker.tracking import TrackConfig, build_documents, track

from tracking_helpers import FAILING_STATES, SUCCEEDING_STATES, run_execution


def test_history_source_registers_and_publishes_everything(aws, machine, tracker, publisher, state_dir, read_protocol, tmp_path):
    ok = run_execution(aws, machine, "ok-1", {"ok": True})
    bad = run_execution(aws, machine, "bad-1", {"ok": False})
    source = HistorySource(aws, Selection((machine,)))
    summary = track(TrackConfig(state_dir=state_dir), source, tracker, publisher)
    assert summary.executions == 2
    assert summary.states_registered == len(SUCCEEDING_STATES) + len(FAILING_STATES)
    assert summary.transactions == 1 and summary.instances_terminated == 2

    definition = aws.client("stepfunctions").describe_state_machine(stateMachineArn=machine)["definition"]
    for arn, names, status in ((ok, SUCCEEDING_STATES, "SUCCEEDED"), (bad, FAILING_STATES, "FAILED")):
        docs = build_documents(source.load(source.list_executions()[[r.execution_arn for r in source.list_executions()].index(arn)]))
        assert docs.model_id == sha256_hex(definition)
        assert [json.loads(d.content)["state_name"] for d in docs.states] == names
        record = tracker.instance(docs.instance_id)
        assert record.state_count == len(names) and record.terminated
        assert record.head == chain_head(docs.model_id, docs.instance_id, docs.state_ids)
        protocol = read_protocol(docs.instance_id)
        assert [e["state_hash"] for e in protocol["instance_protocol"]] == docs.state_ids
        assert protocol["model_hash"] == docs.model_id
        end = json.loads((tmp_path / "protocol" / "documents" / f"{protocol['end_hash']}.json").read_text())
        assert end["status"] == status
        for entry in protocol["instance_protocol"]:
            body = (tmp_path / "protocol" / "documents" / f"{entry['state_hash']}.json").read_bytes()
            assert sha256_hex(body) == entry["state_hash"]

    again = track(TrackConfig(state_dir=state_dir), source, tracker, publisher)
    assert again.transactions == 0 and again.states_registered == 0
