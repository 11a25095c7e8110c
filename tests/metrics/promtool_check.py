"""`/metrics` of a dry-run `wats serve` after every conformance fixture and a
priced, delivered status, checked by Prometheus's own `promtool check
metrics`; and no identifier of those deliveries (phone numbers, user ids,
WAMIDs, the phone number id) in any series.

usage: promtool_check.py WATS_BINARY COMPONENT PROMTOOL   (cargo xtask test runs it)
"""

import hashlib
import hmac
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
APP_SECRET = "dry-run-app-secret"  # wats serve's dry-run one (README.md)
SERVICE_TOKEN = "dry-run-service-token"
USER_ID = "US.13491208655302741918"
PRICED = {
    "object": "whatsapp_business_account",
    "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
        "statuses": [{"id": "wamid.PROMTOOL1", "status": "delivered", "timestamp": "1790000000",
                      "recipient_id": "16505551234", "recipient_user_id": USER_ID,
                      "pricing": {"pricing_model": "PMP", "category": "marketing_lite", "type": "regular"}}]}}]}],
}


def post(address: str, body: bytes) -> None:
    signature = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(f"http://{address}/webhooks/whatsapp", data=body, method="POST",
                                     headers={"content-type": "application/json", "x-hub-signature-256": signature})
    try:
        urllib.request.urlopen(request, timeout=10).read()
    except urllib.error.HTTPError as refused:  # a fixture may be refused on purpose
        refused.read()


def main(wats: str, component: str, promtool: str) -> int:
    serve = subprocess.Popen([wats, "serve", "--memory", "--port", "0", "--component", component],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        address = re.search(r"http://(\S+)", serve.stdout.readline()).group(1)
        fixtures = sorted((ROOT / "tests/conformance/fixtures").glob("*.json"))
        for fixture in fixtures:
            post(address, fixture.read_bytes())
        post(address, json.dumps(PRICED).encode())
        request = urllib.request.Request(f"http://{address}/metrics",
                                         headers={"authorization": f"Bearer {SERVICE_TOKEN}"})
        text = urllib.request.urlopen(request, timeout=10).read().decode()
    finally:
        os.killpg(serve.pid, signal.SIGKILL)
        serve.wait()
    assert 'whatsapp_messages_priced_total{category="marketing_lite",type="regular"} 1' in text, "the priced status"
    identifiers = [USER_ID, "wamid.", "16505551234", "106540352242922", "15550783881"]
    leaked = [kind for kind, value in enumerate(identifiers) if value in text]
    assert not leaked, f"identifiers in /metrics (by position): {leaked}"
    check = subprocess.run([promtool, "check", "metrics"], input=text, text=True, capture_output=True)
    # promtool prints lint findings and exits non-zero on any of them.
    if check.returncode != 0:
        print(check.stdout + check.stderr)
        return 1
    series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    print(f"promtool check metrics: clean, {series} series after {len(fixtures) + 1} deliveries; no identifiers")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3]))
