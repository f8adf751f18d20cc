"""A real Dask cluster for the tests: ``dask scheduler`` and ``dask worker`` processes.

Started with the command line that comes with ``distributed``, on 127.0.0.1 with ports
the operating system picks (``--port 0``; the scheduler writes its address to a file),
and stopped (SIGTERM, then SIGKILL) with every process it started.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import distributed

from ._leaks import descendants

ROOT = Path(__file__).resolve().parent.parent
# How long the cluster may take to start: each process imports distributed, which takes
# seconds on a busy two-core machine.
START_TIMEOUT = 90.0
# How many times the scheduler lets a task's worker die before it gives up on the task
# (KilledWorker). Dask's default is 3; 1 keeps the crash tests short while still showing
# a task re-run after its worker was killed.
ALLOWED_FAILURES = 1
# Each process also serves HTTP (health, metrics), by default on 0.0.0.0:8787 even with
# --no-dashboard: loopback and a free port, so test runs side by side do not collide.
_HTTP = ["--no-dashboard", "--dashboard-address", "127.0.0.1:0"]


def dask_cli() -> str:
    """The ``dask`` command installed beside this interpreter."""
    beside = Path(sys.executable).parent / "dask"
    found = str(beside) if beside.exists() else shutil.which("dask")
    if found is None:
        raise RuntimeError("the 'dask' command is missing: pip install 'anypool[dask]'")
    return found


class TLSFiles:
    """A certificate authority for one test cluster, and a certificate it signed.

    Made with the same ``openssl`` commands that docs/scaling.md shows.
    """

    def __init__(self, directory: Path) -> None:
        self.ca, self.cert, self.key = (directory / n for n in ("ca.pem", "cert.pem", "key.pem"))
        ca_key, request = directory / "ca-key.pem", directory / "req.pem"
        for command in (
            f"req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=anypool-test-ca "
            f"-keyout {ca_key} -out {self.ca}",
            f"req -newkey rsa:2048 -nodes -subj /CN=anypool-test -keyout {self.key} -out {request}",
            f"x509 -req -in {request} -CA {self.ca} -CAkey {ca_key} -CAcreateserial -days 2 "
            f"-out {self.cert}",
        ):
            subprocess.run(["openssl", *command.split()], check=True, capture_output=True)

    def cli_args(self) -> list[str]:
        files = {"--tls-ca-file": self.ca, "--tls-cert": self.cert, "--tls-key": self.key}
        return [part for flag, path in files.items() for part in (flag, str(path))]

    def security(self, roles: tuple[str, ...] = ("client",)) -> distributed.Security:
        """Dask's TLS settings with this certificate for each of ``roles``."""
        files = {}
        for role in roles:
            files[f"tls_{role}_cert"], files[f"tls_{role}_key"] = str(self.cert), str(self.key)
        return distributed.Security(tls_ca_file=str(self.ca), require_encryption=True, **files)


class DaskCluster:
    """One scheduler and ``n_workers`` single-threaded workers (each under a nanny)."""

    def __init__(self, workdir: Path, n_workers: int = 2, tls: TLSFiles | None = None) -> None:
        self.workdir = workdir
        self.n_workers = n_workers
        self.tls = tls
        self.address = ""
        self.scheduler: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []

    # ── starting ─────────────────────────────────────────────────────────────────

    def start(self) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": str(ALLOWED_FAILURES),
        }
        info = self.workdir / "scheduler.json"
        tls = [] if self.tls is None else self.tls.cli_args()
        protocol = [] if self.tls is None else ["--protocol", "tls"]
        self.scheduler = self._spawn(
            "scheduler",
            ["--host", "127.0.0.1", "--port", "0", "--scheduler-file", str(info), *_HTTP],
            env,
            [*protocol, *tls],
        )
        self.address = self._read_address(info)
        for i in range(self.n_workers):
            args = [self.address, "--host", "127.0.0.1", "--nthreads", "1", *_HTTP]
            args += ["--name", f"worker-{i}", "--local-directory", str(self.workdir / f"w{i}")]
            self.workers.append(self._spawn(f"worker-{i}", args, env, tls))
        if self.n_workers:
            self.wait_for_workers(self.n_workers)

    def _spawn(
        self, name: str, args: list[str], env: dict[str, str], extra: list[str]
    ) -> subprocess.Popen[bytes]:
        kind = "scheduler" if name == "scheduler" else "worker"
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 (the process owns it)
        try:
            return subprocess.Popen(
                [dask_cli(), kind, *args, *extra],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=ROOT,
                env=env,
            )
        finally:
            log.close()

    def _read_address(self, info: Path) -> str:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.scheduler is not None
            if self.scheduler.poll() is not None:
                raise RuntimeError(f"dask scheduler exited:\n{self.log('scheduler')}")
            try:
                return str(json.loads(info.read_text())["address"])
            except (OSError, ValueError, KeyError):
                time.sleep(0.05)  # a start-up guard, not synchronisation between tests
        raise RuntimeError(f"dask scheduler did not start:\n{self.log('scheduler')}")

    def wait_for_workers(self, n: int) -> None:
        """Block until ``n`` workers are registered with the scheduler."""

        async def wait() -> None:
            security = None if self.tls is None else self.tls.security()
            async with distributed.Client(
                self.address, asynchronous=True, set_as_default=False, timeout=30, security=security
            ) as client:
                await client.wait_for_workers(n, timeout=START_TIMEOUT)

        asyncio.run(wait())

    def log(self, name: str) -> str:
        try:
            return (self.workdir / f"{name}.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    # ── what belongs to it ───────────────────────────────────────────────────────

    def processes(self) -> set[int]:
        """Every live process of the cluster: the CLI processes and their children."""
        roots = [p.pid for p in [*self.workers, self.scheduler] if p is not None]
        found = set(roots)
        for pid in roots:
            found |= descendants(pid)
        return found

    # ── stopping ─────────────────────────────────────────────────────────────────

    def stop(self) -> None:
        family = self.processes()
        # Workers first, and wait for them: a worker whose scheduler is already gone
        # spends seconds trying to reach it before it gives up.
        _terminate(self.workers)
        _terminate([self.scheduler] if self.scheduler is not None else [])
        for pid in family | self.processes():  # a nanny's worker left behind
            if _is_python(pid):  # still ours, not a new process that reused the number
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def _terminate(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _is_python(pid: int) -> bool:
    try:
        return b"python" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
