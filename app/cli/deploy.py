"""`tiercel deploy` and `tiercel pull`: a flows folder to a Kestra (or Tiercel) server, and back.

`deploy` checks every flow of the folder first (nothing is sent while one is invalid), then, for
each namespace, replaces its flows on the server in one request, as `kestra flow namespace update`
does, and uploads its namespace files (`_files/<namespace>/...`). `pull` writes a namespace's flows
(and those below it) to `<folder>/<namespace as folders>/<id>.yml` and their namespace files to
`_files/<namespace>/`. A password never goes on the command line: `--user NAME` reads it from
TIERCEL_DEPLOY_PASSWORD, else asks for it on a terminal.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from .common import EXIT_FAILED, EXIT_OK, UsageError, add_json_option, command, flows_folder, say

if TYPE_CHECKING:
    from ..api.client import KestraClient

PASSWORD_VARIABLE = "TIERCEL_DEPLOY_PASSWORD"


def _server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--user", metavar="NAME", help=f"basic authentication's user ({PASSWORD_VARIABLE} holds the password)"
    )
    parser.add_argument(
        "--no-tenant",
        action="store_true",
        help="paths without Kestra 1.x's tenant segment (/api/v1/flows ...): a server before Kestra 0.23",
    )


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    deploy = command(
        sub,
        "deploy",
        "push a flows folder's flows and namespace files to a Kestra (or Tiercel) server",
        [
            "tiercel deploy --to http://kestra.example:8080",
            "tiercel deploy --flows flows --to http://localhost:8080 --namespace acme.data --delete",
            "TIERCEL_DEPLOY_PASSWORD=... tiercel deploy --to https://kestra.example --user admin@example.com",
        ],
    )
    deploy.add_argument(
        "--flows", metavar="DIR", help="the flows folder (default: ./flows if it exists, else .)"
    )
    deploy.add_argument("--to", required=True, metavar="URL", help="the server's base URL")
    deploy.add_argument("--namespace", metavar="NS", help="only this namespace and the namespaces below it")
    deploy.add_argument(
        "--delete",
        action="store_true",
        help="delete the server's flows of each namespace that the folder does not have",
    )
    _server_options(deploy)
    add_json_option(deploy, "what was deployed, by namespace")

    pull = command(
        sub,
        "pull",
        "bring a namespace's flows and namespace files from a Kestra (or Tiercel) server into a flows folder",
        [
            "tiercel pull --from http://kestra.example:8080 acme",
            "tiercel pull --from http://localhost:8080 --flows flows acme.data",
        ],
    )
    pull.add_argument(
        "--flows", metavar="DIR", help="the flows folder to write to (default: ./flows if it exists, else .)"
    )
    pull.add_argument("--from", dest="source", required=True, metavar="URL", help="the server's base URL")
    pull.add_argument("namespace", metavar="NAMESPACE", help="the namespace (and those below it) to bring")
    _server_options(pull)
    add_json_option(pull, "what was written")


def _client(args: argparse.Namespace, url: str) -> KestraClient:
    from ..api.client import KestraClient

    auth = None
    if args.user:
        password = os.environ.get(PASSWORD_VARIABLE)
        if password is None:
            if not sys.stdin.isatty():
                raise UsageError(
                    f"--user {args.user}: set {PASSWORD_VARIABLE} (no terminal to ask the password on)"
                )
            password = getpass.getpass(f"Password of {args.user} on {url}: ")
        auth = (args.user, password)
    return KestraClient(url, tenant=None if args.no_tenant else "main", auth=auth)


def _within(namespace: str, wanted: str | None) -> bool:
    return wanted is None or namespace == wanted or namespace.startswith(wanted + ".")


def cmd_deploy(args: argparse.Namespace) -> int:
    from tiercel.engine import NAMESPACE_FILES_FOLDER, FlowParseError, is_flow_file, parse_flow_file

    from ..api.client import ApiClientError

    folder = flows_folder(args.flows)
    root = folder.resolve()
    sources: dict[str, list[str]] = defaultdict(list)
    errors: list[str] = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and is_flow_file(folder, path, resolved=root):
            try:
                flow = parse_flow_file(path)
            except FlowParseError as error:
                errors += [str(problem) for problem in error.errors]
                continue
            if _within(flow.namespace, args.namespace):
                sources[flow.namespace].append(flow.source)
    if errors:
        say("\n".join(errors), err=True)
        say(f"tiercel: nothing deployed: {len(errors)} error(s) in {folder}", err=True)
        return EXIT_FAILED
    files: dict[str, list[Path]] = defaultdict(list)
    files_root = folder / NAMESPACE_FILES_FOLDER
    if files_root.is_dir():
        for namespace_folder in sorted(p for p in files_root.iterdir() if p.is_dir()):
            if _within(namespace_folder.name, args.namespace):
                files[namespace_folder.name] = sorted(p for p in namespace_folder.rglob("*") if p.is_file())
    if not sources and not files:
        raise UsageError(f"{folder}: no flows or namespace files to deploy")
    report: dict[str, dict[str, object]] = {}
    try:
        with _client(args, args.to) as client:
            for namespace in sorted(set(sources) | set(files)):
                flows = (
                    client.update_namespace(namespace, sources[namespace], delete=args.delete)
                    if sources[namespace]
                    else []
                )
                sent = [f["id"] for f in flows]
                for path in files[namespace]:
                    relative = path.relative_to(files_root / namespace).as_posix()
                    client.upload_file(namespace, relative, path.read_bytes())
                report[namespace] = {
                    "flows": len(sources[namespace]),
                    "answered": sent,
                    "files": len(files[namespace]),
                }
                if not args.json:
                    counts = f"{len(sources[namespace])} flow(s), {len(files[namespace])} namespace file(s)"
                    say(f"{namespace}: {counts}")
    except ApiClientError as error:
        say(f"tiercel: {error}", err=True)
        return EXIT_FAILED
    if args.json:
        say(json.dumps({"server": args.to, "namespaces": report}, indent=2))
    else:
        say(f"Deployed to {args.to}")
    return EXIT_OK


# What a namespace or a flow id may be (Kestra's patterns, loosely): no path can come of one.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _uid(source: str) -> tuple[str, str] | None:
    """The (namespace, id) a flow source declares, if it parses as a map."""
    try:
        document = yaml.safe_load(source)
    except yaml.YAMLError:
        return None
    if not isinstance(document, dict):
        return None
    return str(document.get("namespace")), str(document.get("id"))


def _flow_files(folder: Path) -> dict[tuple[str, str], Path]:
    """The file of each flow a folder holds already, by (namespace, id)."""
    from tiercel.engine import is_flow_file

    root = folder.resolve()
    found: dict[tuple[str, str], Path] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and is_flow_file(folder, path, resolved=root):
            try:
                uid = _uid(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError):
                continue
            if uid is not None:
                found.setdefault(uid, path.resolve())
    return found


def cmd_pull(args: argparse.Namespace) -> int:
    from tiercel.engine import NAMESPACE_FILES_FOLDER

    from ..api.client import ApiClientError

    folder = Path(args.flows) if args.flows else flows_folder(None)
    root = folder.resolve()
    known = _flow_files(folder) if folder.is_dir() else {}
    written: list[str] = []
    try:
        with _client(args, args.source) as client:
            namespaces = {args.namespace}
            for flow in client.flows(args.namespace):
                namespace, flow_id = str(flow["namespace"]), str(flow["id"])
                source = str(flow.get("source") or "")
                named = _NAME.fullmatch(namespace) and _NAME.fullmatch(flow_id)
                if not named or _uid(source) != (namespace, flow_id):
                    say(
                        f"tiercel: skipped {namespace[:100]}.{flow_id[:100]}: its source is not that flow's",
                        err=True,
                    )
                    continue
                # A flow the folder has already is written where it is; a new one in its namespace's folder.
                target = known.get((namespace, flow_id)) or root.joinpath(
                    *namespace.split("."), f"{flow_id}.yml"
                )
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(source if source.endswith("\n") else source + "\n", encoding="utf-8")
                written.append(str(target))
                namespaces.add(namespace)
            for namespace in sorted(name for name in namespaces if _NAME.fullmatch(name)):
                base = (root / NAMESPACE_FILES_FOLDER / namespace).resolve()
                for path, data in client.files(namespace):
                    target = (base / path).resolve()
                    if not target.is_relative_to(base):
                        say(f"tiercel: skipped {namespace} file {path}: outside its namespace", err=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)
                    written.append(str(target))
    except ApiClientError as error:
        say(f"tiercel: {error}", err=True)
        return EXIT_FAILED
    if args.json:
        say(json.dumps({"server": args.source, "written": written}, indent=2))
    else:
        say("\n".join([*written, f"Pulled {len(written)} file(s) of {args.namespace} from {args.source}"]))
    return EXIT_OK
