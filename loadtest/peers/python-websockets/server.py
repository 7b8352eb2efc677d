"""Fan-out benchmark peer: Python `websockets` (asyncio API).

Every 1/hz s one tick frame {"t":"tick","seq":N,"at":<unix ms>,"pad":"xx.."} padded to
--payload-bytes is encoded once and sent to every open connection with
`websockets.broadcast` (no per-client await; a client that is too slow is skipped).
No compression. Stops itself after --duration seconds.
"""

import argparse
import asyncio
import time

import websockets
from websockets.asyncio.server import broadcast, serve


def tick_payload(seq: int, at_ms: int, payload_bytes: int) -> str:
    bare = f'{{"t":"tick","seq":{seq},"at":{at_ms},"pad":""}}'
    pad = "x" * max(0, payload_bytes - len(bare))
    return f'{{"t":"tick","seq":{seq},"at":{at_ms},"pad":"{pad}"}}'


async def handler(connection) -> None:
    await connection.wait_closed()


async def ticks(server, hz: int, payload_bytes: int) -> None:
    interval = 1.0 / hz
    loop = asyncio.get_running_loop()
    due = loop.time()
    seq = 0
    while True:
        due += interval
        await asyncio.sleep(max(0.0, due - loop.time()))
        if loop.time() - due > interval:
            due = loop.time()  # late by more than a tick: skip, do not burst
        seq += 1
        message = tick_payload(seq, time.time_ns() // 1_000_000, payload_bytes)
        broadcast(server.connections, message)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--hz", type=int, default=20)
    parser.add_argument("--payload-bytes", type=int, default=64)
    parser.add_argument("--duration", type=float, required=True)
    args = parser.parse_args()
    async with serve(
        handler,
        "127.0.0.1",
        args.port,
        compression=None,
        backlog=1024,
    ) as server:
        print(
            f"python-websockets listening on 127.0.0.1:{args.port}, "
            f"websockets {websockets.__version__}",
            flush=True,
        )
        task = asyncio.create_task(ticks(server, args.hz, args.payload_bytes))
        await asyncio.sleep(args.duration)
        task.cancel()


if __name__ == "__main__":
    asyncio.run(main())
