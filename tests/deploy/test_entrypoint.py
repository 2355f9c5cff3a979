"""The image's entrypoint, run as the container runs it: the `haggle` console script,
configured only by environment variables, listening on 0.0.0.0, probed like Kubernetes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from haggle.infra import InfraEndpoints
from haggle_lab.testing.ports import free_port

pytestmark = pytest.mark.timeout(180)

HAGGLE = Path(sys.executable).with_name("haggle")


def wait_for(url: str, timeout: float, process: subprocess.Popen[bytes]) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the service exited with {process.returncode} before {url} answered")
        try:
            response = httpx.get(url, timeout=2.0)
            if response.status_code == 200:
                return response
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} did not answer 200 within {timeout:.0f} s")


def container_env(endpoints: InfraEndpoints, port: int) -> dict[str, str]:
    """What the Deployment gives the container: no HAGGLE_STATE_DIR, no local defaults."""
    return {
        "PATH": f"{HAGGLE.parent}:/usr/bin:/bin",
        "HOME": "/nonexistent",
        "KAFKA_BOOTSTRAP_SERVERS": endpoints.kafka_bootstrap,
        "DATABASE_URL": endpoints.database_url,
        "HAGGLE_HTTP_HOST": "0.0.0.0",
        "HAGGLE_HTTP_PORT": str(port),
        "HAGGLE_MARKET_ID": "entrypoint-test",
        "HAGGLE_LOG_LEVEL": "INFO",
        # Its own consumer groups, so the session's running listing service is not rebalanced.
        "HAGGLE_GROUP_PREFIX": f"entrypoint-{uuid.uuid4().hex[:8]}",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def test_haggle_run_serves_probes_on_all_interfaces_and_stops_cleanly(
    endpoints: InfraEndpoints, tmp_path: Path
) -> None:
    assert HAGGLE.is_file(), f"the console script {HAGGLE} is not installed"
    port = free_port()
    log = tmp_path / "listing.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(HAGGLE), "run", "listing"],
            env=container_env(endpoints, port),
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        assert wait_for(f"http://127.0.0.1:{port}/healthz", 60, process).json() == {"status": "ok"}
        ready = wait_for(f"http://127.0.0.1:{port}/readyz", 60, process).json()
        assert ready["ready"] is True and all(ready["checks"].values())
        assert listening_hosts(port) == {"0.0.0.0"}, "not bound to all interfaces"
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert "# TYPE haggle_messages_in_total counter" in metrics
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail("the service did not stop within 30 s of SIGTERM")
    assert code == 0, log.read_text()[-3000:]
    # split on "\n" only: a JSON string may hold U+2028 or \x1c, which splitlines() breaks on.
    lines = [json.loads(line) for line in log.read_text().split("\n") if line.startswith("{")]
    assert any(entry["msg"] == "service started" and entry["service"] == "listing" for entry in lines)


def listening_hosts(port: int) -> set[str]:
    """IPv4 addresses with a socket listening on `port`, from /proc/net/tcp."""
    hosts = set()
    for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = row.split()
        host_hex, port_hex = fields[1].split(":")
        if fields[3] == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
            hosts.add(socket.inet_ntoa(bytes.fromhex(host_hex)[::-1]))
    return hosts
