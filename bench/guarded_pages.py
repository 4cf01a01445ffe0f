"""A dashboard's first page of executions for a user with namespace permissions, beside the owner's.

The store holds --executions executions spread evenly over four namespaces (those of
store_scale.py). A user is granted READ on two of them (`company.finance` and `benchmarks`): outside
what they may read whole, their page merges one read per namespace granted (app/guarded.py). Each
page is read --calls times in one process after a first call, through the dashboard's guard, and
reported as p50/p95/p99 and as a ratio to the owner's page (the store's own page, which the guard
passes through):

- owner: every namespace (the root of the tree);
- user, root: the root of the tree, two granted namespaces merged;
- user, company: a namespace they may not read whole, with one granted namespace below it;
- user, granted: a namespace they were granted, read as the owner's.

    .venv/bin/python bench/guarded_pages.py [--executions 20000] [--calls 300]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from store_scale import fill, percentiles  # noqa: E402

from tiercel.app.guarded import GuardedEngine  # noqa: E402
from tiercel.engine import OWNER, Access, Principal  # noqa: E402
from tiercel.engine.engine import Engine  # noqa: E402
from tiercel.engine.store import Store  # noqa: E402

GRANTED = ("company.finance", "benchmarks")
PAGES = {  # (who, namespace shown)
    "owner, root": (OWNER, None),
    "user, root": (Principal("user"), None),
    "user, company": (Principal("user"), "company"),
    "user, granted": (Principal("user"), "company.finance"),
}


async def measure(folder: Path, calls: int, limit: int) -> dict[str, dict[str, float]]:
    flows = folder / "flows"
    for namespace in GRANTED:
        declared = flows / Path(*namespace.split(".")) / "_namespace.yaml"
        declared.parent.mkdir(parents=True, exist_ok=True)
        declared.write_text("permissions:\n  - username: user\n    permission: READ\n")
    engine = Engine(await Store.open(folder / "t.db"), flows_dir=flows)
    await engine.start(control=False)
    results: dict[str, dict[str, float]] = {}
    try:
        for name, (principal, namespace) in PAGES.items():
            guarded = GuardedEngine(engine, Access(engine.catalog.namespaces.chain, principal))
            first = await guarded.list_executions(namespace=namespace, limit=limit)
            if len(first) != limit:
                raise SystemExit(f"{name}: a page of {len(first)} rows")
            timings = []
            for _ in range(calls):
                started = time.perf_counter()
                await guarded.list_executions(namespace=namespace, limit=limit)
                timings.append(time.perf_counter() - started)
            results[name] = percentiles(timings)
    finally:
        await engine.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--executions", type=int, default=20_000)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--limit", type=int, default=100, help="rows per page (the dashboard's: 100)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tiercel-guarded-") as folder:
        filled = asyncio.run(fill(Path(folder) / "t.db", args.executions, 0, 1000))
        pages = f"pages of {args.limit}, {args.calls} calls"
        print(f"{args.executions:,} executions written in {filled:.1f} s; {pages}")
        results = asyncio.run(measure(Path(folder), args.calls, args.limit))
    owner = results["owner, root"]["p50_ms"]
    print(f"{'page':<16}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'p50 / owner':>13}")
    for name, found in results.items():
        ratio = found["p50_ms"] / owner
        print(
            f"{name:<16}{found['p50_ms']:>9.2f}{found['p95_ms']:>9.2f}{found['p99_ms']:>9.2f}{ratio:>12.2f}x"
        )


if __name__ == "__main__":
    main()
