"""The chat as a person uses it, on the real bundled model and sample notes (issue #26): start
`medchat serve`, ask the questions whose answers once contradicted their own sources, at 1280x720
and on a 390x844 phone, open a citation, and save a screenshot of each answer.

    python bench/walk_grounded_chat.py                       # the default (extractive) answers
    MEDCHAT_GENERATION__GROUNDING=checked python bench/walk_grounded_chat.py --tag checked

Needs an index (`medchat ingest --sample`) under MEDCHAT_HOME and Debian's chromium. Prints each
answer as the page shows it; screenshots go to test-artifacts/walk/.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
QUESTIONS = [
    "Should I take my levothyroxine with breakfast?",
    "What does a high TSH result mean?",
    "What blood pressure counts as high blood pressure?",
    "Is colchicine an anti-inflammatory like ibuprofen for gout?",
    "Can I use a beta blocker if I have asthma?",
    "Can I stop my sertraline suddenly?",
]
SIZES: dict[str, Any] = {"desktop": {"width": 1280, "height": 720}, "phone": {"width": 390, "height": 844}}
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tag", default="extractive")
    ap.add_argument("--questions", type=int, default=len(QUESTIONS))
    args = ap.parse_args()
    from playwright.sync_api import expect, sync_playwright

    out = REPO / "test-artifacts" / "walk"
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    medchat = str(Path(sys.executable).with_name("medchat"))
    log = (out / f"serve-{args.tag}.log").open("w")  # a file, not a pipe: a full pipe would stall it
    server = subprocess.Popen([medchat, "serve", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
            page = browser.new_page(viewport=SIZES["desktop"])
            for _ in range(180):  # until the server answers
                try:
                    urllib.request.urlopen(url, timeout=2)
                    break
                except OSError:
                    time.sleep(1)
            print(f"server up at {url}", flush=True)
            page.goto(url)
            page.set_default_timeout(300_000)
            for n, question in enumerate(QUESTIONS[: args.questions], start=1):
                size = "phone" if n % 2 == 0 else "desktop"
                page.set_viewport_size(SIZES[size])
                print(f"asking [{size}] {question}", flush=True)
                page.locator("#clear").click()
                t = time.perf_counter()
                page.locator("#question textarea").fill(question)
                page.locator("#ask").click()
                reply = page.locator("#chat .message-row").last
                expect(page.locator("#chat-status")).to_contain_text("Answered in", timeout=600_000)
                took = time.perf_counter() - t
                cite = reply.locator("a.cite").first
                if cite.count():
                    cite.click()
                    page.wait_for_timeout(800)
                page.screenshot(path=str(out / f"{args.tag}-{n}-{size}.png"), full_page=size == "phone")
                print(f"=== [{size}] {question}  ({took:.1f} s)\n{reply.inner_text()}\n")
            browser.close()
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
