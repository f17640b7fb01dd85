"""Constant-rate load (what wrk2 does): requests leave on a fixed timetable, whatever the
server's speed, and each latency is measured from the request's *scheduled* time, so time
spent queueing behind a slow server is counted (no coordinated omission).

    python bench/constant_rate.py URL --rate 150 --duration 10 --key KEY --run RUN --zips 10001,...

Prints one JSON line: sent, status counts, p50/p95/p99/max in ms, achieved rate.
"""

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit


def body(run: str, n: int, zips: list[str]) -> bytes:
    ident = f"{run}-{n}"
    return json.dumps(
        {
            "external_id": ident,
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": f"{ident}@bench.example",
            "zipcode": zips[n % len(zips)],
            "lead_type": "auto",
            "tcpa_consent": True,
        }
    ).encode()


async def exchange(conn, request: bytes) -> int:
    reader, writer = conn
    writer.write(request)
    await writer.drain()
    status_line = await reader.readline()
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return int(status_line.split()[1])


async def run(args) -> dict:
    url = urlsplit(args.url)
    zips = args.zips.split(",")
    # gunicorn's sync workers close the connection after each response: one connection a request.
    slots = asyncio.Semaphore(args.connections)
    latencies, statuses = [], {}
    total = int(args.rate * args.duration)
    start = time.perf_counter() + 0.05

    async def one(n: int, scheduled: float) -> None:
        payload = body(args.run, n, zips)
        request = (
            f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
            f"X-API-Key: {args.key}\r\nConnection: close\r\nContent-Length: {len(payload)}\r\n\r\n"
        ).encode() + payload
        async with slots:
            try:
                conn = await asyncio.open_connection(url.hostname, url.port)
                try:
                    status = await exchange(conn, request)
                finally:
                    conn[1].close()
            except Exception:
                status = 0
        latencies.append(time.perf_counter() - scheduled)
        statuses[status] = statuses.get(status, 0) + 1

    tasks = []
    for n in range(total):
        scheduled = start + n / args.rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(n, scheduled)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000, 2)

    return {
        "sent": total,
        "rate_target": args.rate,
        "rate_achieved": round(total / elapsed, 1),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "p50_ms": pct(50),
        "p95_ms": pct(95),
        "p99_ms": pct(99),
        "max_ms": round(latencies[-1] * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, default=150)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--connections", type=int, default=64, help="most requests in flight")
    parser.add_argument("--key", required=True)
    parser.add_argument("--run", required=True, help="prefix of external_id and email (unique per run)")
    parser.add_argument("--zips", required=True, help="comma-separated ZIP codes, used in turn")
    print(json.dumps(asyncio.run(run(parser.parse_args()))))


if __name__ == "__main__":
    main()
