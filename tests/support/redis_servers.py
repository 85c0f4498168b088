"""redis-server processes of a test's own: one to stop and start mid-test, a cluster of three."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.processes import free_port


class RedisServer:
    """A redis-server of our own, to stop and start mid-test."""

    def __init__(self, port: int, workdir: Path, persistent: bool = False) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self._workdir = workdir
        # Persistent: every write reaches the append-only file, so a killed server comes back
        # with all its state (an outage that loses nothing, as with compose.yaml's AOF).
        self._persistence = ["--appendonly", "yes", "--appendfsync", "always"]
        if not persistent:
            self._persistence = ["--appendonly", "no"]
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it and wait until it accepts connections."""
        self._process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                *self._persistence,
                "--dir",
                str(self._workdir),
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        """Kill it."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None


def cluster_ports(count: int) -> list[int]:
    """Ports for cluster nodes: each port and its cluster bus port (port + 10000) free."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port + 10_000 > 65_535 or port in ports:
            continue
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port + 10_000)) != 0:
                ports.append(port)
    return ports


class RedisClusterNodes:
    """A Redis Cluster of three primaries on loopback, made with ``redis-cli --cluster``."""

    def __init__(self, workdir: Path) -> None:
        self.ports = cluster_ports(3)
        self.url = f"redis://127.0.0.1:{self.ports[0]}"
        self._workdir = workdir
        self._processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        """Start the nodes, join them, and wait until every node says the cluster is ok."""
        for port in self.ports:
            self._processes.append(
                subprocess.Popen(
                    [
                        "redis-server",
                        "--port",
                        str(port),
                        "--bind",
                        "127.0.0.1",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        f"nodes-{port}.conf",
                        "--daemonize",
                        "no",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--dir",
                        str(self._workdir),
                    ],
                    stdout=subprocess.DEVNULL,
                )
            )
        for port in self.ports:
            self._wait(lambda p=port: self._cli(p, "ping") == "PONG", f"node {port} to start")
        subprocess.run(
            ["redis-cli", "--cluster", "create"]
            + [f"127.0.0.1:{port}" for port in self.ports]
            + ["--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        for port in self.ports:
            self._wait(
                lambda p=port: "cluster_state:ok" in self._cli(p, "cluster", "info"),
                f"node {port} to join",
            )

    @staticmethod
    def _cli(port: int, *command: str) -> str:
        done = subprocess.run(
            ["redis-cli", "-p", str(port), *command], capture_output=True, text=True
        )
        return done.stdout.strip()

    @staticmethod
    def _wait(ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 30
        while not ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Kill every node."""
        for process in self._processes:
            process.kill()
            process.wait()
        self._processes = []
