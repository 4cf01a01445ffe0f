"""What a client of Kestra's REST API waits on `tiercel server`, beside the webhook route as the peer.

One real server process on a fresh database; one client (httpx, keep-alive) sends, alternating
workloads after a warm-up, each request after the previous answer:

| workload | request |
| --- | --- |
| get | `GET /api/v1/main/executions/{id}` of an ended execution (the API's read path) |
| webhook | `POST /api/v1/main/executions/webhook/bench/hook/key`: starts an execution, answers at once |
| create | `POST /api/v1/main/executions/bench/hook` (no input): starts an execution, answers at once |
| create_wait | the same with `?wait=true`: answers once the one-task execution has ended |
| metrics | `GET /metrics` (the Prometheus exposition) |

It reports the p50, p95 and p99 latency of each, and the API's ratios to the webhook route (create)
and to a read (create_wait against get).

    .venv/bin/python bench/api_latency.py [--requests 300]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
TIERCEL = ROOT / ".venv/bin/tiercel"
FLOW = """id: hook
namespace: bench
tasks:
  - id: ok
    type: io.kestra.plugin.core.debug.Return
    format: ok
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: key
"""


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=300, help="requests per workload (default 300)")
    args = parser.parse_args()
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory() as folder:
        flows = Path(folder) / "flows"
        flows.mkdir()
        (flows / "hook.yml").write_text(FLOW)
        log = Path(folder) / "server.log"
        with log.open("w") as sink:  # a file, not a pipe: the server logs every execution
            server = subprocess.Popen(
                [TIERCEL, "server", "--flows", flows, "--db", Path(folder) / "t.db", "--port", "0"],
                stderr=sink, env=env,
            )  # fmt: skip
        try:
            found = None
            deadline = time.monotonic() + 60
            while found is None:
                if server.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"the server did not start: {log.read_text()[-2000:]}")
                time.sleep(0.05)
                found = re.search(r"webhooks on (http://[\d.]+:\d+)", log.read_text())
            base = found.group(1)
            with httpx.Client(base_url=base, timeout=60) as client:
                ended = client.post("/api/v1/main/executions/bench/hook", params={"wait": "true"}).json()[
                    "id"
                ]
                workloads: dict[str, Callable[[], httpx.Response]] = {
                    "get": lambda: client.get(f"/api/v1/main/executions/{ended}"),
                    "webhook": lambda: client.post("/api/v1/main/executions/webhook/bench/hook/key"),
                    "create": lambda: client.post("/api/v1/main/executions/bench/hook"),
                    "create_wait": lambda: client.post(
                        "/api/v1/main/executions/bench/hook", params={"wait": "true"}
                    ),
                    "metrics": lambda: client.get("/metrics"),
                }
                times: dict[str, list[float]] = {name: [] for name in workloads}
                for _ in range(20):  # warm-up
                    for send in workloads.values():
                        send().raise_for_status()
                for _ in range(args.requests):
                    for name, send in workloads.items():
                        started = time.perf_counter()
                        send().raise_for_status()
                        times[name].append((time.perf_counter() - started) * 1000)
        finally:
            server.terminate()
            server.wait(30)
    print(f"{args.requests} requests per workload, one client, keep-alive; milliseconds")
    print("| workload | p50 | p95 | p99 | mean |")
    print("| --- | --- | --- | --- | --- |")
    for name, values in times.items():
        row = [percentile(values, share) for share in (0.5, 0.95, 0.99)] + [statistics.fmean(values)]
        print(f"| {name} | " + " | ".join(f"{value:.2f}" for value in row) + " |")
    ratio = statistics.median(times["create"]) / statistics.median(times["webhook"])
    print(f"\ncreate / webhook (p50): {ratio:.2f}")


if __name__ == "__main__":
    main()
