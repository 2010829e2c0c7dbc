"""A minimal OTLP/HTTP receiver for the "OTLP on" target: accepts and counts, decodes nothing.

BMO's exporter posts protobuf batches to ``/v1/traces``; answering 200 with an empty
``ExportTraceServiceResponse`` (zero bytes) is a valid reply. ``GET /stats`` returns
``{"posts": N, "bytes": B}`` so the bench can check spans really left BMO.

Run: ``python -m bench.otlp_sink --port 0``; prints ``READY <port>``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from aiohttp import web

from bench.loop import run_loop


async def serve(port: int) -> None:
    stats = {"posts": 0, "bytes": 0}

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        stats["posts"] += 1
        stats["bytes"] += len(body)
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def show(request: web.Request) -> web.Response:
        return web.json_response(stats)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/traces", receive)
    app.router.add_post("/v1/logs", receive)
    app.router.add_post("/v1/metrics", receive)
    app.router.add_get("/stats", show)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    print(f"READY {site._server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    run_loop(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
