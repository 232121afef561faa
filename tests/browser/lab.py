"""A JupyterLab server on a free localhost port, isolated in a temporary directory."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

# Trap 3 of browser_testing.md: the "Jupyter news" toast covers the notebook.
_NOTIFICATION_SETTINGS = {"fetchNews": "false", "checkForUpdates": False}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterLab:
    """``with JupyterLab(root_dir, tmp) as lab: lab.url(...)`` — started and stopped by pid.

    Config, runtime, user-settings and workspace directories all live under ``tmp`` so the
    server neither reads nor writes anything of the user's.
    """

    def __init__(self, root_dir: Path, tmp: Path, *, startup_timeout: float = 60.0) -> None:
        self.root_dir = Path(root_dir)
        self.tmp = Path(tmp)
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None
        self.log_path = self.tmp / "jupyterlab.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "lab") -> str:
        return f"{self.base_url}/{path}?token={self.token}"

    def _prepare_dirs(self) -> dict[str, str]:
        dirs = {n: self.tmp / n for n in ("config", "runtime", "settings", "workspaces", "data")}
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        notif = dirs["settings"] / "@jupyterlab" / "apputils-extension"
        notif.mkdir(parents=True, exist_ok=True)
        (notif / "notification.jupyterlab-settings").write_text(json.dumps(_NOTIFICATION_SETTINGS))
        return {k: str(v) for k, v in dirs.items()}

    def start(self) -> JupyterLab:
        dirs = self._prepare_dirs()
        env = dict(os.environ)
        # Trap 2: an inherited MPLBACKEND=Agg would silently drop inline plots in the kernel.
        env.pop("MPLBACKEND", None)
        env.update(
            JUPYTER_CONFIG_DIR=dirs["config"],
            JUPYTER_RUNTIME_DIR=dirs["runtime"],
            IPYTHONDIR=str(self.tmp / "ipython"),
        )
        cmd = [
            sys.executable, "-m", "jupyter", "lab",
            "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={self.port}",
            f"--ServerApp.token={self.token}", f"--ServerApp.root_dir={self.root_dir}",
            "--ServerApp.port_retries=0",
            f"--LabApp.user_settings_dir={dirs['settings']}",
            f"--LabApp.workspaces_dir={dirs['workspaces']}",
        ]  # fmt: skip
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        self._log = log
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited early:\n{self.log()}")
            try:
                req = urllib.request.Request(
                    f"{self.base_url}/api/status", headers={"Authorization": f"token {self.token}"}
                )
                with urllib.request.urlopen(req, timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"jupyter lab not ready after {self.startup_timeout} s:\n{self.log()}")

    def api(self, method: str, path: str) -> object:
        """A call of the server's REST API (``GET``, ``DELETE``); the decoded JSON or None."""
        req = urllib.request.Request(
            f"{self.base_url}/api/{path}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            body = r.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        """End every session and its kernel (a notebook's kernel outlives its tab)."""
        for session in self.api("GET", "sessions") or []:  # type: ignore[union-attr]
            self.api("DELETE", f"sessions/{session['id']}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server (its own process group: it started it, and its kernels)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._log.close()
        self.proc = None

    def __enter__(self) -> JupyterLab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
