"""Kestra's HTTP polling trigger (`io.kestra.plugin.core.http.Trigger`): poll, start on a response.

Polled as every polling trigger is (`polling.Polling`: every `interval`, PT60S by default, after
its `conditions`). One poll, following Kestra's Trigger.java:
- The request is the Request task's (`engine.tasks.http.send_request`: uri, method, body, formData,
  contentType, headers, options), with every response code accepted.
- `responseCondition` (default `{{ response.statusCode < 400 }}`) is rendered with
  `response.statusCode`, `response.body` and `response.headers`; when true (Kestra's truthiness),
  an execution starts whose `trigger` variables are the Request task's outputs (`uri`, `code`,
  `headers`, `body`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..expressions import is_truthy
from ..tasks.http import RenderedRequest, send_request
from .polling import PollRequest

DEFAULT_RESPONSE_CONDITION = "{{ response.statusCode < 400 }}"
# The properties a poll sends: the Request task's.
REQUEST_PROPERTIES = (
    "uri",
    "method",
    "body",
    "formData",
    "contentType",
    "headers",
    "options",
    "sslOptions",
    "encryptBody",
)


async def poll_http(request: PollRequest) -> Mapping[str, Any] | None:
    """Send the request; the Request task's outputs when `responseCondition` holds, else None."""
    renderer, context = request.host.renderer, request.context
    spec = request.found.spec
    props = {name: spec.props.get(name) for name in REQUEST_PROPERTIES}
    await renderer.prefetch(props, context)
    rendered = renderer.render_value(props, context)
    outputs = await send_request(RenderedRequest(rendered, request.emit), allow_failed=True)
    response = {"statusCode": outputs["code"], "body": outputs["body"], "headers": outputs["headers"]}
    condition = spec.props.get("responseCondition")
    condition = DEFAULT_RESPONSE_CONDITION if condition is None else str(condition)
    context["response"] = response
    await renderer.prefetch(condition, context)
    return outputs if is_truthy(renderer.render(condition, context)) else None


__all__ = ["DEFAULT_RESPONSE_CONDITION", "REQUEST_PROPERTIES", "poll_http"]
