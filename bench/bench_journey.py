"""An annotator's labelling session, scripted in a real headless Chromium at 1440x900 (#13).

Setup as the README tells a coordinator: a small index of the sample corpus, QUESTIONS queued
(one gold item among them), `medchat prefs prepare` (here: `CompareService.prepare`, the same code)
with the bundled 4-bit SmolLM2 through llama.cpp, then `medchat serve`'s app with logins. One
annotator logs in and works through the queue with reading time stubbed out (no pauses):

  per round: Next -> both answers on screen and Submit enabled (the wait), then keys 1-4 for the
  choice, a click for "By how much?", a click for safety, Ctrl+Enter; "Saved" on screen.
  Once: change a vote (Change my vote, a new choice, submit), reload the page mid-queue,
  then finish the queue until the page says "All done".

Reported: per-round wait (s), clicks and keys per round, how far the page scrolls (px) when the
vote is cast, the prepare time per pair, and the whole session. JSON goes to --json.

    python bench/bench_journey.py                         # 10 rounds, the bundled model
    python bench/bench_journey.py --rounds 10 --json /tmp/journey.json
    python bench/bench_journey.py --no-prepare            # the old way: pairs written on Next
    python bench/bench_journey.py --engine fake           # the page alone (scripted answers)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

QUESTIONS = [
    "What blood pressure counts as hypertension in adults?",
    "How is type 2 diabetes diagnosed?",
    "What INR should I aim for on warfarin?",
    "How is asthma treated in adults?",
    "What are the warning signs of a migraine?",
    "What HbA1c counts as diabetes?",
    "Which foods affect warfarin?",
    "When should an inhaler be used?",
    "How is high blood pressure treated at first?",
    "What triggers migraines?",
    "How often should HbA1c be checked?",
]
GOLD = {
    "question": "What is the usual INR target on warfarin for atrial fibrillation?",
    "gold": {
        "better": "The usual target is an INR of 2.5, within a range of 2.0 to 3.0.",
        "worse": "Any INR is fine as long as you feel well.",
    },
}
NOTES = ("hypertension.md", "type-2-diabetes.md", "asthma.md", "warfarin.md", "migraine.md")
SCREEN = {"width": 1440, "height": 900}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=10, help="Voted rounds before the change and reload.")
    ap.add_argument("--no-prepare", action="store_true", help="Do not prepare pairs ahead.")
    ap.add_argument("--new-tokens", type=int, default=128, help="max_new_tokens of both variants.")
    ap.add_argument(
        "--engine",
        default=None,
        help="Generation engine (default from settings: the bundled model); `fake` measures the page alone.",
    )
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    home = Path(tempfile.mkdtemp(prefix="medchat-journey-"))
    os.environ["MEDCHAT_HOME"] = str(home)
    from playwright.sync_api import expect, sync_playwright

    from chatbot.chain import Chain
    from chatbot.labelling.store.prefs import open_store
    from chatbot.settings import Settings
    from chatbot.ui.app import build_app
    from chatbot.ui.auth import User, Users, hash_password
    from chatbot.ui.serve import launch_local
    from ingestion.pipeline import ingest

    notes = home / "notes"
    notes.mkdir()
    for name in NOTES:
        shutil.copy(REPO / "data" / "corpus" / name, notes / name)
    settings = Settings(home=home / "home")
    settings.generation.max_new_tokens = args.new_tokens
    if args.engine:
        settings.generation.engine = args.engine
    settings.prefs.gold_ratio = 0.0  # the gold item comes when the others are done: a fixed order
    ingest([notes], settings=settings)
    store = open_store(settings)
    store.add_queue_items([{"question": q} for q in QUESTIONS] + [GOLD], batch="journey")
    users = Users({"dr_ada": User("dr_ada", "clinician", hash_password("secret", iterations=1000))})
    app: Any = build_app(Chain(settings), store=store, users=users)  # with its `medchat_compare` service
    prepare_s = None
    if not args.no_prepare:
        t = time.perf_counter()
        n = app.medchat_compare.prepare(1000)
        prepare_s = (time.perf_counter() - t) / max(n, 1)
        print(f"prepared {n} pairs, {prepare_s:.1f} s a pair", file=sys.stderr)
    url = launch_local(app, users)
    rounds: list[dict[str, float]] = []
    session_start = time.perf_counter()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, headless=True, args=["--no-sandbox"])
        page = browser.new_context(viewport={"width": SCREEN["width"], "height": SCREEN["height"]}).new_page()
        page.set_default_timeout(600_000)
        expect.set_options(timeout=120_000)
        page.goto(url)
        page.get_by_label("username").fill("dr_ada")
        page.get_by_label("password").fill("secret")
        page.get_by_role("button", name="Login").click()
        page.get_by_role("tab", name="Compare").click()
        login_clicks = 2  # Login, the Compare tab

        def one_round(n: int) -> dict[str, float] | None:
            t = time.perf_counter()
            page.locator("#cmp-next").click()
            done = page.locator("#cmp-status")
            expect(done).not_to_contain_text("being written", timeout=600_000)
            if "All done" in done.inner_text():
                return None
            expect(page.locator("#cmp-submit")).to_be_enabled()
            wait = time.perf_counter() - t
            # how far the page would have to scroll to show the Submit button (0: it is on screen)
            box = page.locator("#cmp-submit").bounding_box()
            assert box is not None
            scroll = max(0, round(box["y"] + box["height"] - SCREEN["height"]))
            page.keyboard.press("1" if n % 2 else "2")
            page.locator("#cmp-strength").get_by_text("Slightly better").click()
            page.locator("#cmp-safety").get_by_text("Both safe").click()
            page.keyboard.press("Control+Enter")
            expect(page.locator("#cmp-reveal")).to_contain_text("Saved")
            return {"wait_s": round(wait, 3), "clicks": 3, "keys": 2, "scroll_px": scroll}

        for n in range(args.rounds):
            r = one_round(n)
            if r is None:
                break
            rounds.append(r)
            print(f"round {n + 1}: {r}", file=sys.stderr)
        # change the last vote, then reload mid-queue
        page.locator("#cmp-edit").click()
        expect(page.locator("#cmp-choice input").first).to_be_enabled()  # the vote is open again
        page.keyboard.press("3")  # a tie: "By how much?" is cleared and closed
        expect(page.locator("#cmp-strength input").first).to_be_disabled()
        page.keyboard.press("Control+Enter")
        expect(page.locator("#cmp-reveal")).to_contain_text("replaces your earlier vote")
        change_clicks, change_keys = 1, 2
        page.reload()
        page.get_by_role("tab", name="Compare").click()
        reload_clicks = 1
        finish: list[dict[str, float]] = []
        while (r := one_round(len(rounds) + len(finish))) is not None:
            finish.append(r)
        expect(page.locator("#cmp-status")).to_contain_text("All done")
        browser.close()
    session_s = time.perf_counter() - session_start
    app.close()
    waits = [r["wait_s"] for r in rounds + finish]
    out = {
        "prepared": not args.no_prepare,
        "prepare_s_per_pair": None if prepare_s is None else round(prepare_s, 2),
        "rounds": rounds,
        "finish_rounds": finish,
        "wait_s_median": round(statistics.median(waits), 3),
        "wait_s_max": round(max(waits), 3),
        "clicks_per_round": 3,
        "keys_per_round": 2,
        "max_scroll_px": max(r["scroll_px"] for r in rounds + finish),
        "extra_clicks": {"login": login_clicks, "change_vote": change_clicks, "reload": reload_clicks},
        "extra_keys": {"change_vote": change_keys},
        "judgments": store.count_judgments(),
        "session_s": round(session_s, 1),
    }
    print(json.dumps(out, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
