"""The Python receiver of docs/events.md, run as it stands there, fed by a
dry-run `wats serve`: every update of a signed delivery reaches it and
verifies with PyPI's standardwebhooks.

usage: python_receiver.py WATS_BINARY COMPONENT   (cargo xtask test runs it)
"""

import hashlib
import hmac
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
SECRET = "whsec_cHl0aG9uLXJlY2VpdmVyLXRlc3Qta2V5LTMyYg=="
APP_SECRET = "dry-run-app-secret"  # wats serve's dry-run one (README.md)
FIXTURE = ROOT / "tests/conformance/fixtures/batched-messages.json"


def documented_receiver() -> str:
    text = (ROOT / "docs/events.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 1, "docs/events.md has one Python block"
    return blocks[0]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(command, env, **options):
    # A process group of its own, stopped as a group.
    return subprocess.Popen(command, env={**os.environ, **env}, start_new_session=True, **options)


def stop(process):
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def main(wats: str, component: str) -> int:
    port = free_port()
    with tempfile.TemporaryDirectory() as scratch:
        script = pathlib.Path(scratch) / "receiver.py"
        script.write_text(documented_receiver())
        env = {"WATS_EVENTS_SIGNING_SECRET": SECRET, "PORT": str(port), "PYTHONUNBUFFERED": "1"}
        receiver = start([sys.executable, str(script)], env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        serve_env = {
            "WATS_EVENTS_ENDPOINTS": f"http://127.0.0.1:{port}/",
            "WATS_EVENTS_SIGNING_SECRET": SECRET,
        }
        serve = start([wats, "serve", "--memory", "--port", "0", "--component", component, "--drain-every-ms", "100"],
                      serve_env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            banner = serve.stdout.readline()
            address = re.search(r"http://(\S+)", banner).group(1)
            body = FIXTURE.read_bytes()
            signature = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
            request = urllib.request.Request(f"http://{address}/webhooks/whatsapp", data=body, method="POST",
                                             headers={"content-type": "application/json", "x-hub-signature-256": signature})
            ack = json.load(urllib.request.urlopen(request, timeout=10))
            assert ack["dispatched"] == 6, ack
            lines = []
            deadline = time.monotonic() + 30
            while len(lines) < 6 and time.monotonic() < deadline:
                line = receiver.stdout.readline()
                if line:
                    lines.append(line.split()[0])
            expected = ["whatsapp.message", "whatsapp.message", "whatsapp.status", "whatsapp.status",
                        "whatsapp.message", "whatsapp.status"]
            assert lines == expected, lines
            print("the Python receiver of docs/events.md verified 6 of 6 events (PyPI standardwebhooks)")
            return 0
        finally:
            stop(serve)
            stop(receiver)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
