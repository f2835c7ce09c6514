"""Log output (issue 5): `log.format` text or JSON lines; under systemd (JOURNAL_STREAM set) text lines carry a
syslog priority prefix instead of a timestamp, so journald records each line's level."""

import json
import os
import re


def test_json_format_is_one_object_per_line_with_metadata(gateway):
    g = gateway(log={"format": "json"})
    device_id, dev = g.device()
    dev.close()
    lines = [line for line in g.log().splitlines() if line.strip()]
    assert lines
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    for record in records:
        assert {"ts", "level", "label", "message", "source"} <= set(record), record
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", record["ts"]), record["ts"]
        assert record["level"] in {"trace", "debug", "info", "notice", "warning", "error", "critical"}
    connected = [r for r in records if r["message"] == "device connected"]
    assert connected and connected[0]["device"] == device_id and connected[0]["level"] == "info", connected


def test_text_format_under_journald_has_priorities_and_no_timestamps(gateway):
    g = gateway(start=False)
    # systemd names the journal stream that is the service's stderr: here, the log file the test gives it.
    g.log_path.touch()
    info = os.stat(g.log_path)
    g.env["JOURNAL_STREAM"] = f"{info.st_dev}:{info.st_ino}"
    g.start()
    g.device()
    lines = [line for line in g.log().splitlines() if line.strip()]
    assert all(re.match(r"^<[2-7]>(trace|debug|info|notice|warning|error|critical) gatehouse: ", line) for line in lines), lines[:5]
    assert any(line.startswith("<6>info gatehouse: ") and "device connected" in line for line in lines)


def test_an_inherited_journal_stream_that_is_not_stderr_is_ignored(gateway):
    g = gateway(env={"JOURNAL_STREAM": "8:12345"})
    first = next(line for line in g.log().splitlines() if line.strip())
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (info|notice) gatehouse: ", first), first


def test_text_format_without_journald_starts_with_a_timestamp(gw):
    first = next(line for line in gw.log().splitlines() if line.strip())
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (info|notice) gatehouse: ", first), first


def test_unknown_log_format_is_a_config_problem(gateway):
    from test_config import run_gatehouse
    g = gateway(start=False, log={"format": "xml"})
    r = run_gatehouse(["--check-config", str(g.config_path)])
    assert r.returncode == 2
    assert 'log.format: must be text or json, got "xml"' in r.stderr, r.stderr


def test_orderly_sigterm_logs_no_lost_broker_warning(gateway):
    g = gateway()
    assert g.stop() == 0
    assert "lost the broker" not in g.log(), g.log_tail()
