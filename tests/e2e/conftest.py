"""A private JupyterLab server for the browser test, and the headless Chromium that talks to it.

The server runs on a COPY of the notebooks (autosave can never write into tracked files) in a
temporary folder that links back to the repository's utils/, with its own config, settings and
workspace folders (nothing from the user's ~/.jupyter leaks in), a random token, a free port on
127.0.0.1, and MNIST_COURSE_QUICK=1 in its environment so every kernel trains in quick mode.
It is always stopped at the end of the session, whatever happened.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SERVER_START_S = 90
QUICK_ENV = "MNIST_COURSE_QUICK"  # utils.course.QUICK_ENV; not imported so that this stays a plain client


def pytest_addoption(parser):
    parser.addoption("--notebooks", default=str(ROOT / "notebooks"),
                     help="folder whose *.ipynb the browser test opens (default: the repository's notebooks/)")


@dataclass
class Lab:
    url: str           # http://127.0.0.1:PORT
    token: str
    notebooks: Path    # the copies the server serves (lab/tree/notebooks/NAME.ipynb)
    log: Path          # the server's stdout + stderr

    def api(self, method: str, path: str) -> object:
        """One call to the Jupyter REST API; the parsed JSON answer (None when empty)."""
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            body = answer.read()
        return json.loads(body) if body else None

    def shut_down_kernels(self) -> None:
        """End every session (and its kernel), so one notebook's kernel does not slow the next."""
        for session in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{session['id']}")


def notebook_paths(config) -> list[Path]:
    folder = Path(config.getoption("--notebooks")).expanduser().resolve()
    found = sorted(folder.glob("*.ipynb"))
    if not found:
        raise pytest.UsageError(f"--notebooks {folder}: no .ipynb files there; pass a folder of notebooks")
    return found


def pytest_generate_tests(metafunc):
    if "notebook" in metafunc.fixturenames:
        paths = notebook_paths(metafunc.config)
        metafunc.parametrize("notebook", paths, ids=[p.stem for p in paths])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(lab: Lab, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {server.returncode} at start:\n{lab.log.read_text()[-3000:]}")
        try:
            lab.api("GET", "/api/status")
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    raise RuntimeError(f"JupyterLab did not answer within {SERVER_START_S} s:\n{lab.log.read_text()[-3000:]}")


def stop(server: subprocess.Popen) -> None:
    """SIGTERM the server's process group (server and kernels), then SIGKILL what is left after 20 s."""
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)


@pytest.fixture(scope="session")
def lab(request):
    """A running JupyterLab over a temporary copy of the notebooks; stopped at the end, always."""
    base = Path(tempfile.mkdtemp(prefix="mnist-e2e-"))
    copies = base / "notebooks"
    copies.mkdir()
    for path in notebook_paths(request.config):
        shutil.copy2(path, copies / path.name)
    # the notebooks find the course as ../utils (their bootstrap looks in the working folder and its parent)
    (base / "utils").symlink_to(ROOT / "utils", target_is_directory=True)
    config_dir = base / "config"
    config_dir.mkdir()
    # no calls to the outside world: no news feed, no update check
    (config_dir / "jupyter_server_config.json").write_text(json.dumps({
        "LabApp": {"news_url": None, "check_for_updates_class": "jupyterlab.NeverCheckForUpdate"},
    }))
    env = {**os.environ, QUICK_ENV: "1", "JUPYTER_CONFIG_DIR": str(config_dir),
           "JUPYTERLAB_SETTINGS_DIR": str(base / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
           "JUPYTER_RUNTIME_DIR": str(base / "runtime")}
    for name in ("JUPYTER_TOKEN", "MPLBACKEND"):  # a student's kernel draws inline, and the token is ours
        env.pop(name, None)
    token, port = secrets.token_hex(24), free_port()
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.open_browser=False",
               "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={base}"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log = base / "server.log"
    lab = Lab(url=f"http://127.0.0.1:{port}", token=token, notebooks=copies, log=log)
    with open(log, "wb") as out:
        server = subprocess.Popen(command, cwd=base, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until_up(lab, server)
        yield lab
    finally:
        stop(server)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright (Playwright's own browser download is never used)."""
    from playwright.sync_api import sync_playwright

    if not os.access(CHROMIUM, os.X_OK):
        raise RuntimeError(f"{CHROMIUM} not found: run `make e2e` (it installs Debian's chromium) "
                           "or set CHROMIUM=/path/to/chromium")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()
