"""Kestra's webhook endpoint: `/api/v1/executions/webhook/{namespace}/{flowId}/{key}`.

The route and Kestra's answers live here; the HTTP/1.1 protocol, its limits and the share of
connections each client gets live in `httpserver`. Kestra's answers are kept: 404 for an unknown
flow or key, 409 for a disabled flow or trigger, 204 when the trigger's conditions do not hold, 422
when its inputs cannot be rendered, and 200 with the execution once it is stored. A server with
users (`--users`) gives a `gate` that asks each call for a user who may run the flow's namespace,
before anything of the flow is looked at.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ..events import EngineError
from ..expressions import ExpressionError
from ..expressions.variables import build_context
from ..httpserver import (
    MAX_BODY_BYTES,
    BadRequest,
    Handler,
    HttpServer,
    Request,
    Response,
    error_response as _error,
)
from ..inputs import InputError
from ..model import Execution, Flow, Label, State, StateType, TriggerSpec, new_id, utcnow
from ..secrets import SecretError
from ..tasks.base import TaskFailure
from ..tasks.core import labels_of
from .conditions import ConditionContext, ConditionError, conditions_hold
from .host import TriggerHost
from .types import WEBHOOK

# A `wait: true` webhook answers with the execution as it is after this long, as Kestra's server does
# when its 60-minute idle timeout ends the wait; a client that goes away stops the wait at once.
WAIT_SECONDS = 3600.0
_PREFIXES = (("api", "v1", "executions", "webhook"), ("api", "v1", "main", "executions", "webhook"))
_METHODS = ("GET", "POST", "PUT")

_log = logging.getLogger(__name__)

# Asked with a webhook call and the namespace it names: None lets it through, an answer refuses it.
WebhookGate = Callable[[Request, str], Awaitable[Response | None]]


class WebhookServer:
    """Serves Kestra's webhook route for the flows of an engine.

    Every answer, error texts included, is masked: a secret rendered into a webhook's inputs or
    labels never goes back to the client.

    Args:
        engine: The running engine whose flows the webhooks start.
        host: The address to listen on (loopback by default).
        port: The port; 0 picks a free one (see `port` once started).
        routes: Other routes of the port, by exact path (`/health`, `/metrics` ...), served first.
        fallback: What answers the requests no route takes (the REST API), instead of a 404.
        gate: What a webhook call must pass before its flow is looked up (credentials, permissions).
    """

    def __init__(
        self,
        engine: TriggerHost,
        host: str = "127.0.0.1",
        port: int = 8080,
        routes: Mapping[str, Handler] | None = None,
        fallback: Handler | None = None,
        gate: WebhookGate | None = None,
    ) -> None:
        self.engine = engine
        self.routes = dict(routes or {})
        self.fallback = fallback
        self.gate = gate
        self._http = HttpServer(
            self.handle,
            host,
            port,
            mask=lambda value: self.engine.masker.mask_value(value),
            on_error=self._unexpected,
        )
        # Submissions that outlive their request (the client left): awaited before stopping.
        self._submissions: set[asyncio.Future[str]] = set()

    async def start(self) -> None:
        """Bind the port and start serving."""
        await self._http.start()

    async def stop(self) -> None:
        """Stop serving; executions already being stored still start before this returns."""
        await self._http.stop()
        if self._submissions:
            await asyncio.gather(*self._submissions, return_exceptions=True)

    @property
    def host(self) -> str:
        """The address the server listens on."""
        return self._http.host

    @property
    def port(self) -> int:
        """The port (the one picked, once started with 0)."""
        return self._http.port

    @property
    def url(self) -> str:
        """The server's base URL."""
        return self._http.url

    def _unexpected(self, error: BaseException) -> None:
        """An error no answer foresaw: reported once on the engine's bus, never printed."""
        _log.debug("webhook request failed", exc_info=error)
        message = f"Webhook server: {type(error).__name__}: {error}"
        self.engine.events.publish(EngineError(self.engine.masker.mask(message)))

    # -- the route ------------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        """Answer one parsed request."""
        split = urlsplit(request.target)
        other = self.routes.get(split.path.rstrip("/") or "/")
        if other is not None:
            return await other(request)
        segments = tuple(split.path.strip("/").split("/"))
        route = next((p for p in _PREFIXES if segments[: len(p)] == p), None)
        if route is None and self.fallback is not None:
            return await self.fallback(request)
        if route is None or len(segments) != len(route) + 3:
            return _error(
                404, f"No route for `{split.path[:200]}`: use /api/v1/executions/webhook/NS/FLOW/KEY"
            )
        if request.method not in _METHODS:
            return Response(
                405, {"message": f"Method {request.method} not allowed"}, {"Allow": ", ".join(_METHODS)}
            )
        namespace, flow_id, key = (unquote(part) for part in segments[len(route) :])
        refused = await self.gate(request, namespace) if self.gate is not None else None
        if refused is not None:
            return refused
        try:
            text = request.body.decode("utf-8")
        except UnicodeDecodeError as error:
            return _error(400, f"The request body is not valid UTF-8 text (byte {error.start})")
        flow = self.engine.flows.get((namespace, flow_id))
        if flow is None:
            return _error(404, "Flow not found")
        if flow.disabled:
            return _error(409, "Cannot execute flow: flow is disabled.")
        trigger = self._matching_trigger(flow, key)
        if trigger is None:
            return _error(404, "Webhook not found")
        switches = self.engine.trigger_switches
        if trigger.disabled or not switches.is_enabled(flow.namespace, flow.id, trigger.id):
            return _error(409, f"Cannot execute flow: trigger `{trigger.id}` is disabled.")
        headers = dict(request.headers)
        if self.gate is not None:  # the credentials the gate took are not the flow's to keep
            headers.pop("authorization", None)
        variables = {
            "body": _body_value(text) if request.body else None,
            "headers": headers,
            "parameters": _parameters(split.query),
        }
        return await self._execute(flow, trigger, variables)

    def _matching_trigger(self, flow: Flow, key: str) -> TriggerSpec | None:
        """The flow's webhook trigger whose rendered key equals `key` (compared in constant time)."""
        found = None
        given = key.encode()
        for trigger in flow.triggers:
            if trigger.type != WEBHOOK:
                continue
            expected = self._render_key(flow, trigger)
            if expected is not None and hmac.compare_digest(expected.encode(), given) and found is None:
                found = trigger
        return found

    def _render_key(self, flow: Flow, trigger: TriggerSpec) -> str | None:
        raw = trigger.props.get("key")
        if raw is None:
            return None
        if not any(mark in str(raw) for mark in ("{{", "{%", "{#")):
            return str(raw).strip()  # a plain key: no context to build for every request
        try:
            rendered = self.engine.renderer.render(str(raw), self._flow_context(flow, None))
        except (ExpressionError, SecretError) as error:
            self._report(
                f"Webhook trigger `{trigger.id}` of {flow.namespace}.{flow.id}: invalid key: {error}"
            )
            return None
        return str(rendered).strip()

    def _flow_context(self, flow: Flow, trigger: Mapping[str, Any] | None) -> dict[str, Any]:
        stub = Execution(new_id(), flow.namespace, flow.id, flow.revision, State.new(), trigger=trigger)
        context = build_context(flow, stub)

        def secret(name: str) -> str:
            try:
                value: str = self.engine.secrets.get(str(name))
            except SecretError as error:
                raise ExpressionError(str(error)) from None
            self.engine.masker.add(value)
            return value

        context["secret"] = secret
        return context

    async def _execute(self, flow: Flow, trigger: TriggerSpec, variables: dict[str, Any]) -> Response:
        spec = {"id": trigger.id, "type": trigger.type, "variables": variables}
        context = self._flow_context(flow, spec)
        stub = Execution(new_id(), flow.namespace, flow.id, flow.revision, State.new(), trigger=spec)
        conditions = trigger.props.get("conditions") or ()
        if conditions:
            try:
                checked = ConditionContext(flow, self._render, utcnow(), stub, context)
                held = conditions_hold(conditions, checked)
            except (ConditionError, ExpressionError) as error:
                self._report(f"Webhook trigger `{trigger.id}` of {flow.namespace}.{flow.id}: {error}")
                return _error(422, f"Invalid condition: {error}")
            if not held:
                return Response(204)
        try:
            # Costly filters (jq, regexps) run in a worker under the render's time limit, off the loop.
            await self.engine.renderer.prefetch(
                [trigger.props.get("inputs"), trigger.props.get("labels")], context
            )
            inputs = self.engine.renderer.render_value(trigger.props.get("inputs") or {}, context)
            labels = _trigger_labels(self.engine.renderer.render_value(trigger.props.get("labels"), context))
            execution = self.engine.new_execution(flow, inputs, labels, trigger=spec)
        except (ExpressionError, InputError, TaskFailure) as error:
            return _error(422, f"Unable to render the webhook inputs: {error}")
        await self._submit(flow, execution)
        if trigger.props.get("wait") is True:
            ended = await self._wait(execution)
            status = 500 if ended.state.current is StateType.FAILED else 200
            if trigger.props.get("returnOutputs") is True:
                return Response(status, dict(ended.outputs or {}))
            return Response(status, webhook_response(ended))
        return Response(200, webhook_response(execution))

    async def _submit(self, flow: Flow, execution: Execution) -> None:
        """Store and start the execution, even when the request is cancelled meanwhile.

        A client that leaves cancels its request; cancelled halfway, the submission would leave the
        execution stored but never started (CREATED until a restart), and a retrying client would
        then get a duplicate that runs. Shielded, a stored execution always starts.
        """
        submission = asyncio.ensure_future(self.engine.submit(flow, execution))
        self._submissions.add(submission)
        submission.add_done_callback(self._submissions.discard)
        await asyncio.shield(submission)

    async def _wait(self, execution: Execution) -> Execution:
        """The ended execution, or the execution as it is once WAIT_SECONDS have passed."""
        try:
            ended: Execution = await asyncio.wait_for(self.engine.wait(execution.id), WAIT_SECONDS)
        except TimeoutError:
            current: Execution | None = await self.engine.execution(execution.id)
            return current if current is not None else execution
        return ended

    def _render(self, text: str, variables: Mapping[str, Any]) -> str:
        return str(self.engine.renderer.render(text, variables))

    def _report(self, message: str) -> None:
        message = self.engine.masker.mask(message)
        _log.error(message)
        self.engine.events.publish(EngineError(message))


def webhook_response(execution: Execution) -> dict[str, Any]:
    """Kestra's WebhookResponse: the execution's identity, trigger, labels, outputs and state."""
    data = execution.to_json()
    return {
        "id": data["id"],
        "namespace": data["namespace"],
        "flowId": data["flowId"],
        "flowRevision": data["flowRevision"],
        "trigger": data["trigger"],
        "outputs": data["outputs"],
        "labels": data["labels"],
        "state": data["state"],
    }


def _body_value(text: str) -> Any:
    """A JSON object or array is decoded (as Kestra does); anything else stays text."""
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            return text
    return text


def _parameters(query: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        found.setdefault(name, []).append(value)
    return found


def _trigger_labels(value: Any) -> list[Label]:
    return labels_of(value) if value else []


__all__ = [
    "MAX_BODY_BYTES",
    "BadRequest",
    "Request",
    "Response",
    "WebhookServer",
    "webhook_response",
]
