"""A trigger switched off by command (the dashboard's toggle) stops firing, whatever its type."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.engine.helpers import run, running_engine
from tiercel.engine.triggers.webhook import WebhookServer

UPSTREAM = """
id: upstream
namespace: acme.switch
tasks:
  - {id: ok, type: io.kestra.plugin.core.debug.Return, format: done}
"""
DOWNSTREAM = """
id: downstream
namespace: acme.switch
tasks:
  - {id: ok, type: io.kestra.plugin.core.debug.Return, format: "{{ trigger.flowId ?? 'by hand' }}"}
triggers:
  - id: after
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - {type: io.kestra.plugin.core.condition.ExecutionFlow, namespace: acme.switch, flowId: upstream}
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: switch-key
"""


async def test_a_trigger_switched_off_does_not_fire_and_fires_again_once_switched_on(tmp_path: Path) -> None:
    async with running_engine(tmp_path, UPSTREAM, DOWNSTREAM) as engine:
        server = WebhookServer(engine, port=0)
        await server.start()
        hook = f"{server.url}/api/v1/executions/webhook/acme.switch/downstream/switch-key"
        try:

            async def downstream_count() -> int:
                await engine.flow_triggers.settled()
                return len(await engine.store.list_executions(flow_id="downstream"))

            await engine.scheduler.set_enabled("acme.switch", "downstream", "after", False)
            await engine.scheduler.set_enabled("acme.switch", "downstream", "hook", False)
            await run(engine, "acme.switch", "upstream")
            async with httpx.AsyncClient() as client:
                refused = await client.post(hook, json={})
            assert refused.status_code == 409 and "disabled" in refused.text
            assert await downstream_count() == 0

            await engine.scheduler.set_enabled("acme.switch", "downstream", "after", True)
            await engine.scheduler.set_enabled("acme.switch", "downstream", "hook", True)
            await run(engine, "acme.switch", "upstream")
            async with httpx.AsyncClient() as client:
                accepted = await client.post(hook, json={})
            assert accepted.status_code == 200
            for _ in range(500):
                if await downstream_count() == 2:
                    break
                await asyncio.sleep(0.01)
            assert await downstream_count() == 2
        finally:
            await server.stop()
