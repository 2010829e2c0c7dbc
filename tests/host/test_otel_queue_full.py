"""Spans the batch processor drops because its queue is full are counted, not lost in silence."""

from __future__ import annotations

import asyncio
import json

import aiohttp
from aiohttp import web

from bmo.testing.harness import free_port, start_server


class StalledReceiver:
    """An OTLP/HTTP endpoint that takes the connection and answers only when released."""

    def __init__(self):
        self.release = asyncio.Event()
        self.posts = 0
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    async def _traces(self, request: web.Request) -> web.Response:
        self.posts += 1
        await request.read()
        await self.release.wait()
        return web.Response(status=200, content_type="application/x-protobuf", body=b"")

    async def __aenter__(self) -> StalledReceiver:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc) -> None:
        self.release.set()
        assert self._runner is not None
        await self._runner.cleanup()


async def test_a_full_span_queue_is_counted_in_the_posture_and_reported_once(tmp_path):
    async with StalledReceiver() as receiver:
        env = {"OTEL_BSP_MAX_QUEUE_SIZE": "4", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "1"}
        srv = await start_server(tmp_path / "data", load_plugins="", env=env,
                                 config_toml=f'[tracing]\notlp_endpoint = "http://127.0.0.1:{receiver.port}"\n')
        try:
            async with aiohttp.ClientSession(headers=srv.headers()) as http:
                for _ in range(60):  # until the export thread is stuck in the stalled POST
                    async with http.get(srv.api + "/bmo/plugins") as resp:
                        assert resp.status == 200
                    if receiver.posts:
                        break
                    await asyncio.sleep(0.1)
                assert receiver.posts, "the exporter never reached the receiver"
                for _ in range(20):  # one request span each, into a queue of 4 that nothing drains
                    async with http.get(srv.api + "/bmo/plugins") as resp:
                        assert resp.status == 200  # serving is unaffected
                section = (await srv.host.posture())["tracing"]
                assert section["max_queue_size"] == 4
                assert section["queue_dropped_spans"] >= 10
                assert "queue is full" in section["last_error"] and section["last_failure_at"]
            await asyncio.sleep(0)  # the record is handed to the loop
            await asyncio.to_thread(srv.host.records.flush)
            records = [json.loads(line) for line in srv.host.records.path.read_text().splitlines()]
            failed = [r for r in records if r["msg"] == "bmo.tracing.export_failed"]
            assert len(failed) == 1 and failed[0]["level"] == "warn" and failed[0]["queue_dropped_spans"] >= 1
        finally:
            receiver.release.set()
            await srv.stop()
