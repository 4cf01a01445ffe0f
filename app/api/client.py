"""A client of Kestra's REST API (a Kestra server's, or Tiercel's own), for `deploy` and `pull`.

It calls what Kestra's CLI calls: a namespace's flows replaced in one request
(`POST /flows/{namespace}`, the flows joined by `---`), each namespace file uploaded as the part
`fileContent`, flows read with their source. Paths carry Kestra 1.x's tenant (`main`) unless asked
not to (a server older than Kestra 0.23).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

# A page of a flow search; each namespace file is read whole.
_PAGE = 100
_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


class ApiClientError(Exception):
    """The server refused a request, or could not be reached: what was asked, and why."""


class KestraClient:
    """The REST API of one server.

    Args:
        url: The server's base URL (`http://host:8080`); a trailing `/api/v1` is accepted.
        tenant: The tenant segment of the paths (`main`), or None for a server without one.
        auth: A user name and password for basic authentication, or None.
    """

    def __init__(self, url: str, *, tenant: str | None = "main", auth: tuple[str, str] | None = None) -> None:
        base = url.rstrip("/").removesuffix("/api/v1")
        prefix = f"/api/v1/{tenant}" if tenant else "/api/v1"
        self.url = base
        self._http = httpx.Client(base_url=base + prefix, auth=auth, timeout=_TIMEOUT)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> KestraClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            answer = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise ApiClientError(f"{method} {str(self._http.base_url).rstrip('/')}{path}: {error}") from None
        if answer.status_code >= 400:
            raise ApiClientError(f"{method} {answer.url.path}: {answer.status_code} {_reason(answer)}")
        return answer

    # -- writing ---------------------------------------------------------------------------------
    def update_namespace(self, namespace: str, sources: list[str], *, delete: bool) -> list[dict[str, Any]]:
        """Make the namespace's flows these sources; with `delete`, its other flows go."""
        body = "\n---\n".join(source.strip("\n") for source in sources)
        answer = self._call(
            "POST",
            f"/flows/{namespace}",
            params={"delete": str(delete).lower()},
            content=body.encode(),
            headers={"Content-Type": "application/x-yaml"},
        )
        found: list[dict[str, Any]] = answer.json()
        return found

    def upload_file(self, namespace: str, path: str, data: bytes) -> None:
        name = path.rsplit("/", 1)[-1]
        self._call("POST", f"/namespaces/{namespace}/files", params={"path": f"/{path}"},
                   files={"fileContent": (name, data)})  # fmt: skip

    # -- reading ---------------------------------------------------------------------------------
    def flows(self, namespace: str) -> Iterator[dict[str, Any]]:
        """Every flow of the namespace and the namespaces below it, with its source."""
        page = 1
        while True:
            found = self._call(
                "GET", "/flows/search", params={"namespace": namespace, "page": page, "size": _PAGE}
            ).json()
            for flow in found.get("results") or ():
                yield self._call(
                    "GET", f"/flows/{flow['namespace']}/{flow['id']}", params={"source": "true"}
                ).json()
            if page * _PAGE >= int(found.get("total") or 0) or not found.get("results"):
                return
            page += 1

    def files(self, namespace: str, folder: str = "") -> Iterator[tuple[str, bytes]]:
        """Every namespace file of the namespace, as (path, content), depth first."""
        try:
            listed = self._call(
                "GET", f"/namespaces/{namespace}/files/directory", params={"path": f"/{folder}"}
            )
        except ApiClientError:
            if folder:
                raise
            return  # a namespace without files
        for entry in listed.json():
            path = f"{folder}/{entry['fileName']}" if folder else str(entry["fileName"])
            if entry.get("type") == "Directory":
                yield from self.files(namespace, path)
            else:
                content = self._call("GET", f"/namespaces/{namespace}/files", params={"path": f"/{path}"})
                yield path, content.content


def _reason(answer: httpx.Response) -> str:
    """What an error answer says: Kestra's `message`, a problem's detail, or the status's phrase."""
    try:
        body = answer.json()
    except ValueError:
        return answer.reason_phrase or "error"
    if isinstance(body, dict):
        for key in ("message", "detail", "title", "error"):
            if body.get(key):
                return str(body[key])
    return answer.reason_phrase or "error"
