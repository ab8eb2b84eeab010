"""Simulator throughput: `./dev.sh bench sim --devices 1000 [--seconds 10] [--connections 10]`.

Generates a plant of N devices (200 unit ids per port, lines of 100 machines), starts
`shopfloor sim` as its own process, and from this process (the client) reads 20 holding
registers from every device in turn over several Modbus TCP connections for a while:
with pymodbus' client (one request in flight per connection), or with `--pipeline N`
over raw sockets with N requests in flight, which loads the sim rather than the client.
Prints the request rate and the sim process' CPU and RSS, idle (ticking only) and under load.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from pymodbus.client import AsyncModbusTcpClient

from shopfloor.sim.generate import plant_yaml

LOOPBACK = "127.0.0.1"
REGISTERS = 20


def _free_base_port(count: int) -> int:
    """A base port with `count` consecutive free ports after it."""
    for base in range(21000, 60000, 97):
        if all(_free(base + i) for i in range(count)):
            return base
    raise RuntimeError("no run of free ports found")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _wait_open(ports: list[int], proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    for port in ports:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"sim exited with {proc.returncode}")
            try:
                socket.create_connection((LOOPBACK, port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"port {port} not open") from None
                time.sleep(0.1)


async def _reader(port: int, units: list[int], stop_at: float, counts: list[int]) -> None:
    async with AsyncModbusTcpClient(LOOPBACK, port=port, timeout=5, retries=0) as client:
        i = 0
        while time.monotonic() < stop_at:
            rr = await client.read_holding_registers(0, count=REGISTERS, device_id=units[i])
            counts[1 if rr.isError() else 0] += 1
            i = (i + 1) % len(units)


async def _raw_reader(
    port: int, units: list[int], stop_at: float, counts: list[int], depth: int
) -> None:
    """Pipelined reads over a raw socket: `depth` requests per write, then their answers."""
    requests = [struct.pack(">HHHBBHH", i, 0, 6, u, 3, 0, REGISTERS) for i, u in enumerate(units)]
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    i = 0
    try:
        while time.monotonic() < stop_at:
            batch = [requests[(i + k) % len(requests)] for k in range(depth)]
            i += depth
            writer.write(b"".join(batch))
            for _ in range(depth):
                _, _, length, _ = struct.unpack(">HHHB", await reader.readexactly(7))
                body = await reader.readexactly(length - 1)
                counts[1 if body[0] & 0x80 else 0] += 1
    finally:
        writer.close()


async def _load(
    layout: dict[int, list[int]], connections: int, seconds: float, depth: int
) -> list[int]:
    """Read for `seconds` over `connections` connections spread over the ports
    (pymodbus' client when depth is 1, else raw pipelined sockets)."""
    counts = [0, 0]  # ok, errors
    stop_at = time.monotonic() + seconds
    ports = sorted(layout)
    tasks = []
    for c in range(connections):
        port = ports[c % len(ports)]
        share = layout[port][c // len(ports) :: max(1, connections // len(ports))] or layout[port]
        if depth > 1:
            tasks.append(_raw_reader(port, share, stop_at, counts, depth))
        else:
            tasks.append(_reader(port, share, stop_at, counts))
    await asyncio.gather(*tasks)
    return counts


def _cpu(process: psutil.Process, seconds: float) -> float:
    process.cpu_percent(None)
    time.sleep(seconds)
    return process.cpu_percent(None)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench sim", description=__doc__)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--per-port", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument(
        "--pipeline",
        type=int,
        default=1,
        help="1: pymodbus' client, one request in flight per connection; N > 1: raw "
        "sockets with N requests in flight (measures the sim, not the client)",
    )
    args = parser.parse_args(argv)
    ports_needed = (args.devices + args.per_port - 1) // args.per_port
    base = _free_base_port(ports_needed)
    with tempfile.TemporaryDirectory() as tmp:
        plant = Path(tmp) / "plant.yaml"
        lines = max(1, args.devices // 100)
        text = plant_yaml(
            machines=args.devices, lines=lines, base_port=base, per_port=args.per_port
        )
        plant.write_text(text)
        layout = {base + p: [] for p in range(ports_needed)}  # type: dict[int, list[int]]
        for i in range(args.devices):
            layout[base + i // args.per_port].append(i % args.per_port + 1)
        started = time.monotonic()
        cmd = [sys.executable, "-m", "shopfloor.cli", "sim", str(plant), "--speed", str(args.speed)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_open(sorted(layout), proc)
            ready_s = time.monotonic() - started
            sim = psutil.Process(proc.pid)
            idle_cpu = _cpu(sim, 5.0)
            sim.cpu_percent(None)
            counts = asyncio.run(_load(layout, args.connections, args.seconds, args.pipeline))
            load_cpu = sim.cpu_percent(None)
            rss_mb = sim.memory_info().rss / 1e6
        finally:
            proc.terminate()
            proc.wait(15)
    ok, errors = counts
    print(
        f"sim benchmark: {args.devices} devices on {ports_needed} port(s), "
        f"{args.connections} client connection(s), {REGISTERS} registers per read, "
        f"{args.pipeline} request(s) in flight per connection"
    )
    print(f"  start-up (plant load + listen):  {ready_s:.1f} s")
    print(f"  sim idle CPU (ticking only):      {idle_cpu:.1f} % of one core")
    print(f"  reads:                            {ok} ok, {errors} errors in {args.seconds:.0f} s")
    print(f"  read rate:                        {ok / args.seconds:,.0f} reads/s")
    print(f"  sim CPU under load:               {load_cpu:.1f} % of one core")
    print(f"  sim RSS:                          {rss_mb:.0f} MB")
    print(f"  sim exit code after SIGTERM:      {proc.returncode}")
