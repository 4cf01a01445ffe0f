"""`tiercel server` reports a webhook's failed condition on stderr with the body's escapes as text."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

TIERCEL = Path(sys.executable).parent / "tiercel"
GUARDED = """
id: guarded
namespace: acme
tasks:
  - {id: log, type: io.kestra.plugin.core.log.Log, message: never}
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: guarded-key-1
    conditions:
      - type: io.kestra.plugin.core.condition.DayWeek
        dayOfWeek: MONDAY
        date: "{{ trigger.body }}"
"""


def test_a_failed_condition_quoting_the_body_is_printed_as_text(flows_dir: Path, tmp_path: Path) -> None:
    (flows_dir / "guarded.yml").write_text(GUARDED.lstrip())
    env = {k: v for k, v in os.environ.items() if k != "TIERCEL_DB"}
    server = subprocess.Popen(
        [str(TIERCEL), "server", "--flows", str(flows_dir), "--db", str(tmp_path / "t.db"), "--port", "0"],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert server.stderr is not None
        started = b""
        deadline = time.monotonic() + 30
        while b"webhooks on" not in started and time.monotonic() < deadline:
            started += server.stderr.readline()
        found = re.search(rb"webhooks on (http://\S+)", started)
        assert found, started
        url = f"{found[1].decode()}/api/v1/executions/webhook/acme/guarded/guarded-key-1"
        answer = httpx.post(url, content=b"x\x1b]0;PWNED\x07\x1b[2J", timeout=10)
        assert answer.status_code == 422, answer.text
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
    printed = started + err
    assert b"\x1b" not in printed and b"\x07" not in printed, printed
    assert b"x\\x1b]0;PWNED\\x07\\x1b[2J" in printed
