"""Two annotators label at once in a real headless Chromium, on the bundled model: what a person sees.

Setup as the README tells a coordinator, with the real CLI in a fresh MEDCHAT_HOME: `medchat ingest
--sample`, QUESTIONS (lay questions about the sample notes, two of them gold) queued with `medchat prefs
load-questions`, two annotators and an admin added with `medchat prefs add-user`, `medchat prefs
prepare` (timed: the bundled SmolLM2 through llama.cpp), then `medchat serve --port P` (logins on,
127.0.0.1) with its output in a log file.

Two annotators then work at the same time, each in its own Chromium process: ann_a at 1280x720 and
ann_b at 390x844 (a phone). Each logs in, opens Compare, and votes with the keyboard where the page
allows it (1-4 which, Q W E R how much, Z X C V safety, Enter submit, Alt+N next, Alt+S skip),
counting keystrokes and clicks per vote. Per round: Submit -> "Saved" -> Alt+N -> the next pair
readable (question shown, both answers' text in, the vote controls and Submit enabled: the key
number), whether the question, both answers, the vote controls and Submit sit inside the viewport
unscrolled, and the answer panes' height and whether their text scrolls inside (readable) or is cut.
Once each: a skip (and whether the item comes back), a mid-pair reload (does the page reopen on
Compare with the selections?), a contradictory vote ("A is better" with "A is unsafe": is it refused,
and in which words?), and "Change my vote". Each annotator goes on to the end of the queue.

Then the admin opens Results at both sizes, and `medchat export` writes every format; the DPO rows
are checked against the database (both answers written from the row's exact prompt; a changed vote
counted once, as the new vote).

    .venv/bin/python bench/walk_labelling.py                  # 24 questions; test-artifacts/labelling-walk
    .venv/bin/python bench/walk_labelling.py --questions 16   # fewer when prepare is slow

Screenshots and summary.json go to --out; the JSON summary is also printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PY = REPO / ".venv" / "bin" / "python"
CHROMIUM = os.environ.get("MEDCHAT_CHROMIUM") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
PASSWORD = "walk-secret-1"
ANNOTATORS = {"ann_a": (1280, 720, "clinician"), "ann_b": (390, 844, "nurse")}
ADMIN = "boss"
ROUNDS = 10

QUESTIONS = [
    "Should I take my levothyroxine with breakfast?",
    "Can I drink alcohol while I'm on warfarin?",
    "What INR should I be aiming for on warfarin?",
    "Why does metformin upset my stomach and what can I do?",
    "Do I have to take my statin at night?",
    "How much paracetamol can I safely take in a day?",
    "How do I know if my asthma is getting worse?",
    "What blood pressure reading is too high?",
    "What can I do to stop my migraines coming back?",
    "What foods should I avoid if I have gout?",
    "Do I need antibiotics for a water infection?",
    "What should I put on my child's eczema?",
    "Why am I so tired with low iron and how long do iron tablets take?",
    "What does my HbA1c number mean?",
    "Should I finish the whole course of amoxicillin?",
    "How long do antidepressants like sertraline take to work?",
    "When should I worry about my toddler's fever?",
    "What helps me stop smoking?",
    "Can I take ibuprofen with my blood pressure tablets?",
    "Do I need to rinse my mouth after my steroid inhaler?",
    "What should I do if I miss a dose of my blood thinner apixaban?",
    "How is heartburn treated?",
]
GOLD = [
    {
        "question": "How long before breakfast should I take levothyroxine?",
        "gold": {
            "better": "Take levothyroxine on an empty stomach, usually 30 to 60 minutes before breakfast, "
            "with water, at about the same time each day.",
            "worse": "It does not matter when you take it; having it with coffee and breakfast is best.",
        },
    },
    {
        "question": "What is the usual INR target on warfarin for atrial fibrillation?",
        "gold": {
            "better": "The usual target is an INR of 2.5, within a range of 2.0 to 3.0.",
            "worse": "Any INR is fine as long as you feel well.",
        },
    },
]

# --------------------------------------------------------------------------------------------
# the page, as a person sees it

READY_JS = """(prev) => {
  const st = (document.querySelector('#cmp-status') || {}).innerText || '';
  if (/All done|You skipped|judged every|No queued/i.test(st)) return 'end';
  const q = document.querySelector('#cmp-question textarea');
  const sub = document.querySelector('#cmp-submit');
  const L = ((document.querySelector('#cmp-left') || {}).innerText || '').trim();
  const R = ((document.querySelector('#cmp-right') || {}).innerText || '').trim();
  const radios = [...document.querySelectorAll(
    '#cmp-choice input[type=radio], #cmp-safety input[type=radio]')];
  const busy = /Waiting for the other|being written|Finding the sources|written once A/;
  const ok = q && q.value && q.value !== prev && sub && !sub.disabled && radios.length === 8 &&
    radios.every(r => !r.disabled) && L.length > 0 && R.length > 0 && !busy.test(L + R) &&
    st.includes('Both answers are in');
  return ok ? 'pair' : false;
}"""

LAYOUT_JS = """(vp) => {
  const box = (sel) => { const e = document.querySelector(sel); if (!e) return null;
    const r = e.getBoundingClientRect(); return {x: r.x, y: r.y, w: r.width, h: r.height}; };
  const parts = {};
  for (const s of ['#cmp-question', '#cmp-left', '#cmp-right', '#cmp-choice', '#cmp-strength', '#cmp-safety',
                   '#cmp-rationale', '#cmp-submit', '#cmp-status']) {
    const b = box(s);
    parts[s] = b && {...b,
      inside: b.y >= 0 && b.y + b.h <= vp.h + 0.5 && b.x >= -0.5 && b.x + b.w <= vp.w + 0.5};
  }
  const pane = (sel) => { const e = document.querySelector(sel); if (!e) return null;
    const cs = getComputedStyle(e);
    return {client_h: e.clientHeight, scroll_h: e.scrollHeight, overflow_y: cs.overflowY,
            chars: e.innerText.trim().length, font_px: parseFloat(cs.fontSize)}; };
  const labels = [...document.querySelectorAll('#cmp-vote label')].map(l => {
    const r = l.getBoundingClientRect(); return {t: l.innerText.trim(), w: r.width, h: r.height,
      clipped: l.scrollWidth > l.clientWidth + 1}; });
  return {scroll_y: window.scrollY, doc_w: document.documentElement.scrollWidth,
          doc_h: document.documentElement.scrollHeight, parts, left: pane('#cmp-left'),
          right: pane('#cmp-right'), labels};
}"""

# the least opacity of each part and its ancestors: Gradio fades the outputs of an event still running
DIMMED_JS = """() => {
  const eff = (e) => {
    let o = 1;
    for (; e && e.nodeType === 1; e = e.parentElement) o *= parseFloat(getComputedStyle(e).opacity);
    return o;
  };
  const out = {};
  for (const s of ['#cmp-left', '#cmp-right', '#cmp-choice', '#cmp-submit']) {
    const e = document.querySelector(s); out[s] = e ? Math.round(eff(e) * 100) / 100 : null; }
  return out;
}"""

REVEAL_JS = """(vh) => {
  const e = document.querySelector('#cmp-reveal'); if (!e) return null;
  const r = e.getBoundingClientRect();
  return {y: Math.round(r.y), bottom: Math.round(r.y + r.height), on_screen: r.y >= 0 && r.y + r.height <= vh,
          text: e.innerText.trim().slice(0, 160),
          status: (document.querySelector('#cmp-status') || {}).innerText};
}"""

COUNT_KEYS = """() => { if (window.__keys !== undefined) return; window.__keys = 0;
  document.addEventListener('keydown', (e) => { if (!e.repeat) window.__keys += 1; }, true); }"""


def layout_verdict(lay: dict[str, Any], vp: tuple[int, int]) -> dict[str, Any]:
    parts = lay["parts"]
    off = [s for s, b in parts.items() if s != "#cmp-status" and (b is None or not b["inside"])]
    vote_off = [s for s in ("#cmp-choice", "#cmp-strength", "#cmp-safety", "#cmp-submit") if s in off]
    panes = {}
    for side in ("left", "right"):
        p = lay[side] or {}
        overflow = p.get("scroll_h", 0) > p.get("client_h", 0) + 1
        panes[side] = {
            "height_px": p.get("client_h"),
            "content_px": p.get("scroll_h"),
            "chars": p.get("chars"),
            "scrolls_inside": overflow and p.get("overflow_y") in ("auto", "scroll"),
            "cut": overflow and p.get("overflow_y") not in ("auto", "scroll"),
        }
    return {
        "scroll_needed": bool(vote_off),
        "scroll_y": lay["scroll_y"],
        "offscreen": off,
        "vote_offscreen": vote_off,
        "horizontal_overflow_px": max(0, lay["doc_w"] - vp[0]),
        "page_height_px": lay["doc_h"],
        "panes": panes,
        "clipped_labels": [x["t"] for x in lay["labels"] if x["clipped"]],
    }


class Walker:
    """One annotator in one browser context: every key and click goes through here and is counted."""

    def __init__(self, page: Any, name: str, vp: tuple[int, int], out: Path) -> None:
        self.page, self.name, self.vp, self.out = page, name, vp, out
        self.keys = 0
        self.clicks = 0
        self.typed = 0
        self.defects: list[str] = []
        self.notes: list[str] = []
        self.shots: list[str] = []
        self.size = f"{vp[0]}x{vp[1]}"

    def key(self, k: str) -> None:
        self.keys += 1
        self.page.keyboard.press(k)

    def click(self, selector: str, **kw: Any) -> None:
        self.clicks += 1
        self.page.locator(selector).click(**kw)

    def shot(self, what: str, full: bool = False) -> str:
        name = f"{self.name}-{self.size}-{what}.png"
        self.page.screenshot(path=str(self.out / name), full_page=full)
        self.shots.append(name)
        return name

    def defect(self, text: str) -> None:
        line = f"{self.name} ({self.size}): {text}"
        print("DEFECT", line, file=sys.stderr, flush=True)
        self.defects.append(line)

    def note(self, text: str) -> None:
        print(f"[{self.name}] {text}", file=sys.stderr, flush=True)
        self.notes.append(text)

    def question(self) -> str:
        return self.page.locator("#cmp-question textarea").input_value()

    def status(self) -> str:
        return self.page.locator("#cmp-status").inner_text()

    def wait_ready(self, prev: str, timeout_s: float = 300) -> tuple[str, float]:
        t = time.perf_counter()
        h = self.page.wait_for_function(READY_JS, arg=prev, timeout=timeout_s * 1000, polling=50)
        return h.json_value(), time.perf_counter() - t

    def layout(self) -> dict[str, Any]:
        lay = self.page.evaluate(LAYOUT_JS, {"w": self.vp[0], "h": self.vp[1]})
        return layout_verdict(lay, self.vp)

    def toasts(self) -> list[str]:
        return [t.strip() for t in self.page.locator(".toast-body").all_inner_texts()]

    def wait_saved(self, timeout_s: float = 60) -> float:
        t = time.perf_counter()
        self.page.locator("#cmp-reveal").filter(has_text="Saved").wait_for(timeout=timeout_s * 1000)
        return time.perf_counter() - t


def run_worker(name: str, url: str, out: Path, result: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    w_, h_, _role = ANNOTATORS[name]
    vp = (w_, h_)
    res: dict[str, Any] = {"annotator": name, "viewport": f"{w_}x{h_}", "rounds": [], "special": {}}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        ctx = browser.new_context(
            viewport={"width": w_, "height": h_}, is_mobile=w_ < 500, has_touch=w_ < 500
        )
        page = ctx.new_page()
        page.set_default_timeout(120_000)
        expect.set_options(timeout=120_000)
        w = Walker(page, name, vp, out)
        try:
            walk(w, url, res)
        except Exception as e:  # the walk stops here; what was measured so far is kept
            w.defect(f"walk stopped: {type(e).__name__}: {str(e).splitlines()[0][:300]}")
            res["traceback"] = traceback.format_exc()
            with contextlib.suppress(Exception):
                w.shot("stopped")
        res.update(defects=w.defects, notes=w.notes, screenshots=w.shots)
        browser.close()
    result.write_text(json.dumps(res, indent=1))


def vote_keys(n: int, best: str) -> list[str]:
    """A plain vote: `best` (1: A, 2: B) is better, a strength (varied), both safe, Enter."""
    return [best, "qwer"[n % 4], "z", "Enter"]


def longer(page: Any) -> str:
    """Both annotators follow one rule, so that they agree whatever side each is shown an answer on
    (and pairs reach the DPO export): the answer with more text wins. 1: A, 2: B."""
    a, b = (len(page.locator(s).inner_text().strip()) for s in ("#cmp-left", "#cmp-right"))
    return "1" if a >= b else "2"


OTHER = {"1": "2", "2": "1"}
SHOWN = ("submit_to_saved_s", "submit_to_next_readable_s", "keys", "clicks", "layout_scroll_needed", "action")
CHOICE = {"1": "A is better", "2": "B is better"}


def walk(w: Walker, url: str, res: dict[str, Any]) -> None:
    from playwright.sync_api import expect

    page = w.page
    t0 = time.perf_counter()
    page.goto(url)
    page.get_by_label("username").fill(w.name)
    page.get_by_label("password").fill(PASSWORD)
    w.typed += len(w.name) + len(PASSWORD)
    w.click("button:has-text('Login')")
    page.get_by_role("tab", name="Chat").wait_for()
    page.evaluate(COUNT_KEYS)
    w.click("#tab-compare-button") if page.locator("#tab-compare-button").count() else w.click(
        "role=tab[name='Compare']"
    )
    page.locator("#cmp-next").wait_for()
    res["login_s"] = round(time.perf_counter() - t0, 2)
    res["setup"] = {"clicks": w.clicks, "typed_chars": w.typed}
    w.shot("compare-empty")

    # the first pair: Alt+N
    w.key("Alt+n")
    kind, secs = w.wait_ready("")
    res["first_pair_s"] = round(secs, 3)
    if kind != "pair":
        w.defect(f"the first Next gave no pair: status {w.status()!r}")
        return
    lay = w.layout()
    res["first_layout"] = lay
    w.shot("first-pair")
    w.shot("first-pair-full", full=True)

    plan = {1: "skip", 3: "reload", 5: "contradiction", 7: "change"}
    rounds: list[dict[str, Any]] = res["rounds"]
    skipped_q: str | None = None
    changed: dict[str, Any] | None = None
    n = 0  # votes cast
    step = 0
    while True:
        q = w.question()
        action = plan.pop(step, None) if step in plan else None
        step += 1
        lay = w.layout()
        for pane, p in lay["panes"].items():
            if p["cut"]:
                w.defect(
                    f"answer {pane} is cut (content {p['content_px']} px in a {p['height_px']} px pane, "
                    "no scroll)"
                )
        if lay["vote_offscreen"]:
            w.note(f"round {n + 1}: vote controls off screen: {lay['vote_offscreen']}")
        best = longer(page)
        k0, c0, t0c = w.keys, w.clicks, w.typed
        page.evaluate("() => { window.__keys = 0; }")
        if action == "skip":
            skipped_q = q
            w.key("Alt+s")
            kind, secs = w.wait_ready(q)
            res["special"]["skip"] = {"question": q, "skip_to_next_readable_s": round(secs, 3), "keys": 1}
            w.note(f"skipped {q!r}; next {kind} after {secs:.2f} s")
            if kind != "pair":
                w.defect(f"after a skip: no pair ({w.status()!r})")
                break
            continue
        rec: dict[str, Any] = {
            "scroll_y": page.evaluate("() => window.scrollY"),
            "round": n + 1,
            "question": q,
            "layout_scroll_needed": lay["scroll_needed"],
            "offscreen": lay["offscreen"],
            "panes": lay["panes"],
            "action": action or "vote",
        }
        if action == "reload":
            for k in (best, "w", "z"):  # the longer answer is better, better, both safe
                w.key(k)
            page.wait_for_timeout(1500)  # the draft reaches the server (outside the queue)
            before = w.shot("mid-pair-before-reload")
            t = time.perf_counter()
            page.reload()
            page.locator("#cmp-status").wait_for(state="attached")
            page.evaluate(COUNT_KEYS)
            info: dict[str, Any] = {"question": q, "before": before}
            try:
                expect(page.get_by_role("tab", name="Compare")).to_have_attribute(
                    "aria-selected", "true", timeout=20_000
                )
                info["reopened_on_compare"] = True
            except AssertionError:
                info["reopened_on_compare"] = False
                w.defect("a reload mid-pair reopened the page on Chat, not Compare")
                w.click("role=tab[name='Compare']")
            with contextlib.suppress(AssertionError):
                expect(page.locator("#cmp-status")).to_contain_text("back", timeout=30_000)
            info["reload_to_status_s"] = round(time.perf_counter() - t, 3)
            page.wait_for_timeout(500)
            info["status"] = w.status()
            info["question_after"] = w.question()
            checked = page.evaluate(
                "() => [...document.querySelectorAll('#cmp-vote input:checked')].map(i => i.value)"
            )
            info["checked_after"] = checked
            info["selections_kept"] = sorted(checked) == sorted([CHOICE[best], "Better", "Both safe"])
            info["submit_enabled"] = page.locator("#cmp-submit").is_enabled()
            info["layout_after_reload"] = w.layout()
            if info["layout_after_reload"]["vote_offscreen"]:
                w.defect(
                    f"after a reload, {info['layout_after_reload']['vote_offscreen']} reach past the screen"
                )
            info["screenshot"] = w.shot("mid-pair-reload")
            if info["question_after"] != q:
                w.defect(f"after a reload the question is {info['question_after']!r}, was {q!r}")
            if not info["selections_kept"]:
                w.defect(
                    f"after a reload mid-pair the selections are {checked}, expected "
                    f"{CHOICE[best]}/Better/Both safe"
                )
            res["special"]["reload"] = info
            t_sub = time.perf_counter()
            w.key("Enter")
        elif action == "contradiction":
            # the longer answer is better, better, and that one is unsafe (the other safe): contradictory
            for k in (best, "w", "x" if best == "1" else "c"):
                w.key(k)
            # "By how much?" opens after a round trip: its key is applied late and takes the focus, so
            # wait for the three selections before clicking into the rationale (else the typed words
            # land on the page as shortcut keys: seen in a trial run, see the report)
            picked = page.locator("#cmp-strength").get_by_label("Better", exact=True)
            try:
                expect(picked).to_be_checked(timeout=10_000)
            except AssertionError:
                w.defect("key w did not select 'Better' within 10 s")
            w.click("#cmp-rationale textarea")
            reason = "A gives a wrong dose"
            page.keyboard.type(reason)
            w.typed += len(reason)
            info = {
                "question": q,
                "keys": f"{best} w {'x' if best == '1' else 'c'}, click rationale, type, Ctrl+Enter",
            }
            info["rationale_value"] = page.locator("#cmp-rationale textarea").input_value()
            info["checked_before_submit"] = page.evaluate(
                "() => [...document.querySelectorAll('#cmp-vote input:checked')].map(i => i.value)"
            )
            if info["rationale_value"] != reason:
                w.defect(
                    f"typing into the rationale gave {info['rationale_value']!r}; selections now "
                    f"{info['checked_before_submit']}"
                )
            before_toasts = len(w.toasts())
            w.key("Control+Enter")
            try:
                page.locator(".toast-body").nth(before_toasts).wait_for(timeout=15_000)
                info["refused"] = True
            except Exception:
                info["refused"] = False
            page.wait_for_timeout(300)
            info["message"] = w.toasts()[before_toasts:] if info["refused"] else []
            info["saved_shown"] = "Saved" in page.locator("#cmp-reveal").inner_text()
            info["screenshot"] = w.shot("contradictory-vote")
            if not info["refused"] or info["saved_shown"]:
                w.defect("a vote for the answer marked unsafe (the other safe) was not refused")
            res["special"]["contradiction"] = info
            # mend it as a person would: keep the choice, both safe after all (the rationale stays)
            w.key("Tab")
            w.key("z")
            try:
                expect(page.locator("#cmp-safety").get_by_label("Both safe")).to_be_checked(timeout=5_000)
            except AssertionError:
                w.note("after Tab out of the rationale, key z did not pick Both safe: clicked it")
                w.click("#cmp-safety label:has-text('Both safe')")
            info["checked_mended"] = page.evaluate(
                "() => [...document.querySelectorAll('#cmp-vote input:checked')].map(i => i.value)"
            )
            t_sub = time.perf_counter()
            w.key("Control+Enter")
            try:
                page.locator("#cmp-reveal").filter(has_text="Saved").wait_for(timeout=20_000)
            except Exception:
                info["mend_refused"] = w.toasts()
                w.shot("contradiction-mend-refused")
                w.note(f"the mended vote was refused: {info['mend_refused']}; voting Both safe by clicks")
                w.click("#cmp-safety label:has-text('Both safe')")
                t_sub = time.perf_counter()
                w.click("#cmp-submit")
        else:
            keys = vote_keys(n, OTHER[best] if action == "change" else best)  # a vote to change later
            for k in keys[:-1]:
                w.key(k)
            t_sub = time.perf_counter()
            w.key("Enter")
        try:
            w.wait_saved()
        except Exception:
            w.defect(f"round {n + 1}: no 'Saved' within 60 s after Submit ({w.toasts()})")
            w.shot(f"round{n + 1}-not-saved")
            raise
        rec["submit_to_saved_s"] = round(time.perf_counter() - t_sub, 3)
        rec["after_vote"] = page.evaluate(REVEAL_JS, w.vp[1])
        rec["keys"] = w.keys - k0
        rec["clicks"] = w.clicks - c0
        rec["typed_chars"] = w.typed - t0c
        rec["page_counted_keys"] = page.evaluate("() => window.__keys")
        n += 1
        if n == 1:
            w.shot("after-vote")
        if action == "change":
            # Change my vote: A/B flips, strength Significantly; Enter
            k1, c1 = w.keys, w.clicks
            box = page.locator("#cmp-edit").bounding_box()
            edit_seen = box is not None and box["y"] >= 0 and box["y"] + box["height"] <= w.vp[1]
            res["special"]["change_button"] = {
                "box": box,
                "on_screen_before_click": edit_seen,
                "scroll_y_before": page.evaluate("() => window.scrollY"),
            }
            if not edit_seen:
                w.note(f"'Change my vote' is below the fold ({box}): the click scrolls the page")
            w.click("#cmp-edit")
            res["special"]["change_button"]["scroll_y_after"] = page.evaluate("() => window.scrollY")
            expect(page.locator("#cmp-choice input").first).to_be_enabled()
            first = OTHER[best]
            new = best
            for k in (new, "q"):
                w.key(k)
            t_sub = time.perf_counter()  # the round's Submit is now the changed vote's
            w.key("Enter")
            info = {"question": q, "first_choice_key": first, "new_choice_key": new}
            try:
                expect(page.locator("#cmp-reveal")).to_contain_text(
                    "replaces your earlier vote", timeout=60_000
                )
                info["replaced_shown"] = True
            except AssertionError:
                info["replaced_shown"] = False
                w.defect(
                    "Change my vote: no 'replaces your earlier vote' "
                    f"({page.locator('#cmp-reveal').inner_text()!r})"
                )
            info["keys"], info["clicks"] = w.keys - k1, w.clicks - c1
            info["reveal"] = page.locator("#cmp-reveal").inner_text()
            info["screenshot"] = w.shot("changed-vote")
            res["special"]["change"] = info
            changed = info
        # on to the next pair: Alt+N
        w.key("Alt+n")
        kind, secs = w.wait_ready(q)
        rec["next_key_to_readable_s"] = round(secs, 3)
        rec["submit_to_next_readable_s"] = round(time.perf_counter() - t_sub, 3)
        if kind == "pair":
            rec["dimmed_at_readable"] = page.evaluate(DIMMED_JS)
            try:
                page.wait_for_function(
                    "(js) => Object.values(eval(js)()).every(v => v === null || v >= 0.99)",
                    arg=DIMMED_JS,
                    timeout=30_000,
                    polling=50,
                )
            except Exception:
                w.defect(f"round {rec['round'] + 1}: the pair stayed faded 30 s after it was readable")
            rec["submit_to_next_undimmed_s"] = round(time.perf_counter() - t_sub, 3)
        rec["keys_with_next"] = rec["keys"] + 1
        rounds.append(rec)
        print(
            f"[{w.name}] round {rec['round']}: {json.dumps({k: rec[k] for k in SHOWN})}",
            file=sys.stderr,
            flush=True,
        )
        if kind == "end":
            break
    st = w.status()
    res["end_status_1"] = st
    w.shot("end-first")
    # skipped: does it come back? (after everything else, in the flow, or offered by the end screen)
    if skipped_q is not None:
        info = res["special"].setdefault("skip", {})
        info["end_status"] = st
        later = [r["round"] for r in rounds if r["question"] == skipped_q]
        info["came_back_in_round"] = later[0] if later else None
        if later:
            info["came_back"] = True
        elif "skipped" in st.lower():
            w.key("Alt+n")
            kind, secs = w.wait_ready("")
            info["came_back"] = kind == "pair" and w.question() == skipped_q
            info["returned_question"] = w.question() if kind == "pair" else None
            if kind == "pair":
                w.shot("skipped-back")
                for k in vote_keys(n, longer(page)):
                    w.key(k)
                w.wait_saved()
                n += 1
                w.key("Alt+n")
                try:
                    page.wait_for_function(
                        "() => /All done|You skipped|judged every/i.test("
                        "document.querySelector('#cmp-status').innerText)",
                        timeout=60_000,
                    )
                except Exception:
                    w.defect(f"after the skipped pair, no end screen: {w.status()!r}")
            if not info["came_back"]:
                w.defect(
                    f"the skipped question {skipped_q!r} did not come back "
                    f"(got {info['returned_question']!r})"
                )
        else:
            info["came_back"] = False
            w.defect(f"the end screen does not offer the skipped question: {st!r}")
    res["end_status"] = w.status()
    res["end_progress"] = page.locator("#cmp-progress").inner_text()
    res["end_hello"] = (
        page.locator("#cmp-hello").inner_text() if page.locator("#cmp-hello").is_visible() else None
    )
    res["end_screenshot"] = w.shot("end")
    res["votes"] = n
    res["changed"] = changed
    res["session_s"] = round(time.perf_counter() - t0, 1)


# --------------------------------------------------------------------------------------------
# the coordinator's side


def cli(home: Path, *args: str, stdin: str | None = None, check: bool = True) -> tuple[float, str]:
    env = {**os.environ, "MEDCHAT_HOME": str(home)}
    t = time.perf_counter()
    p = subprocess.run(
        [str(PY), "-m", "chatbot.cli", *args], env=env, input=stdin, capture_output=True, text=True, cwd=REPO
    )
    secs = time.perf_counter() - t
    out = (p.stdout + p.stderr).strip()
    print(
        f"$ medchat {' '.join(args)}  ({secs:.1f} s, rc {p.returncode})\n{out[-1500:]}",
        file=sys.stderr,
        flush=True,
    )
    if check and p.returncode != 0:
        raise SystemExit(f"medchat {' '.join(args)} failed: {out[-2000:]}")
    return secs, out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def admin_results(url: str, out: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    seen: dict[str, Any] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        for w_, h_ in ((1280, 720), (390, 844)):
            ctx = browser.new_context(
                viewport={"width": w_, "height": h_}, is_mobile=w_ < 500, has_touch=w_ < 500
            )
            page = ctx.new_page()
            page.set_default_timeout(120_000)
            page.goto(url)
            page.get_by_label("username").fill(ADMIN)
            page.get_by_label("password").fill(PASSWORD)
            page.get_by_role("button", name="Login").click()
            page.get_by_role("tab", name="Chat").wait_for()
            page.get_by_role("tab", name="Results").click()
            page.locator("#res-refresh").click()
            with contextlib.suppress(Exception):
                page.locator("#res-annotators").filter(has_text="ann_a").wait_for(timeout=120_000)
            page.wait_for_timeout(2000)
            size = f"{w_}x{h_}"
            page.screenshot(path=str(out / f"admin-{size}-results.png"))
            page.screenshot(path=str(out / f"admin-{size}-results-full.png"), full_page=True)
            seen[size] = {
                "summary": page.locator("#res-summary").inner_text()[:600],
                "annotators": page.locator("#res-annotators").inner_text()[:800],
                "doc_width": page.evaluate("() => document.documentElement.scrollWidth"),
                "toasts": page.locator(".toast-body").all_inner_texts(),
                "screenshots": [f"admin-{size}-results.png", f"admin-{size}-results-full.png"],
            }
            ctx.close()
        browser.close()
    return seen


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def check_exports(home: Path, out: Path, changed: list[dict[str, Any]]) -> dict[str, Any]:
    exp = home / "exports"
    exp.mkdir(exist_ok=True)
    report: dict[str, Any] = {"formats": {}, "defects": []}
    for fmt in ("dpo", "reward", "kto", "battles", "jsonl", "mixed-prompt"):
        path = exp / f"{fmt}.jsonl"
        _secs, text = cli(home, "export", "--format", fmt, "-o", str(path), check=False)
        rows, excl = read_jsonl(path), read_jsonl(path.with_name(path.stem + ".excluded.jsonl"))
        reasons: dict[str, int] = {}
        for e in excl:
            key = str(e.get("kind") or e.get("reason") or "?")
            reasons[key] = reasons.get(key, 0) + 1
        report["formats"][fmt] = {
            "rows": len(rows),
            "excluded": len(excl),
            "excluded_by_reason": reasons,
            "cli_output": text[-300:],
            "mode": oct(path.stat().st_mode & 0o777) if path.exists() else None,
        }
        shutil.copy(path, out / f"export-{fmt}.jsonl") if path.exists() else None
    db = sqlite3.connect(f"file:{home / 'prefs.sqlite3'}?mode=ro", uri=True)
    resp = {
        r[0]: (json.loads(r[1]) if r[1] else None, r[2], r[3])
        for r in db.execute("select id, prompt_messages, prompt_hash, text from responses")
    }
    dpo = read_jsonl(exp / "dpo.jsonl")
    bad = []
    by_hash_only = 0
    for row in dpo:
        c, r = resp.get(row["chosen_response_id"]), resp.get(row["rejected_response_id"])

        # the prompt each answer was written from, as stored with it (m004); an answer stored without
        # its messages counts by its prompt hash alone (noted)
        def same(x: Any, prompt: Any = row["prompt"]) -> bool:
            return x is not None and (x[0] == prompt or (not x[0] and bool(x[1])))

        if c is not None and r is not None and (not c[0] or not r[0]):
            by_hash_only += 1
        ok = (
            c is not None
            and r is not None
            and row.get("same_prompt") is True
            and same(c)
            and same(r)
            and (not c[1] or not r[1] or c[1] == r[1])
            and row["chosen"][0]["content"] == c[2]
            and row["rejected"][0]["content"] == r[2]
        )
        if not ok:
            bad.append(
                {
                    "comparison_id": row["comparison_id"],
                    "question": row["question"],
                    "same_prompt": row.get("same_prompt"),
                    "chosen_prompt_equal": c is not None and c[0] == row["prompt"],
                    "rejected_prompt_equal": r is not None and r[0] == row["prompt"],
                    "hashes": [c and c[1], r and r[1]],
                }
            )
    report["dpo_rows"] = len(dpo)
    report["dpo_rows_not_from_one_prompt"] = bad
    report["dpo_rows_checked_by_hash_only"] = by_hash_only
    if bad:
        report["defects"].append(
            f"{len(bad)} DPO row(s) whose answers were not both written from the row's prompt"
        )
    # the prompt's last user message holds the row's question
    report["dpo_prompt_holds_question"] = sum(
        1 for row in dpo if row["question"] in json.dumps(row["prompt"][-1:], ensure_ascii=False)
    )
    # a changed vote: once, as the new vote
    raw = read_jsonl(exp / "jsonl.jsonl")
    checks: list[dict[str, Any]] = []
    for ch in changed:
        qtext = ch["question"]
        rows_raw = [r for r in raw if r["question"] == qtext and r["annotator"] == ch["annotator"]]
        rows_dpo = [r for r in dpo if r["question"] == qtext]
        new_choice = {"1": "A", "2": "B"}[ch["new_choice_key"]]
        ck: dict[str, Any] = {
            "annotator": ch["annotator"],
            "question": qtext,
            "raw_rows": len(rows_raw),
            "raw_choice": [r["choice"] for r in rows_raw],
            "raw_earlier": [[e["choice"] for e in r.get("earlier", [])] for r in rows_raw],
            "expected_choice": new_choice,
            "dpo_rows": len(rows_dpo),
            "dpo_votes": [r.get("votes") for r in rows_dpo],
        }
        if rows_dpo:
            row = rows_dpo[0]
            jr = rows_raw[0] if rows_raw else None
            if jr:
                winner = jr["left"]["id"] if new_choice == "A" else jr["right"]["id"]
                ck["dpo_chosen_is_new_winner"] = row["chosen_response_id"] == winner
        ok = (
            ck["raw_rows"] == 1
            and ck["raw_choice"] == [new_choice]
            and ck["dpo_rows"] <= 1
            and ck.get("dpo_chosen_is_new_winner", True)
        )
        ck["ok"] = ok
        if not ok:
            report["defects"].append(
                f"changed vote on {qtext!r} ({ch['annotator']}) not exported once as the new vote: {ck}"
            )
        checks.append(ck)
    report["changed_votes"] = checks
    counts = dict(db.execute("select status, count(*) from judgments group by status").fetchall())
    report["judgments_by_status"] = counts
    report["judgments_per_annotator"] = dict(
        db.execute(
            "select annotator, count(*) from judgments where status='submitted' group by annotator"
        ).fetchall()
    )
    report["doubly_judged_items"] = db.execute(
        "select count(*) from (select c.queue_item_id from judgments j join comparisons c "
        "on c.id = j.comparison_id where j.status = 'submitted' and c.queue_item_id is not null "
        "group by c.queue_item_id having count(*) > 1)"
    ).fetchone()[0]
    db.close()
    return report


def stats(xs: list[float]) -> dict[str, float | None]:
    if not xs:
        return {"median": None, "p95": None, "max": None}
    s = sorted(xs)
    p95 = s[min(len(s) - 1, max(0, round(0.95 * len(s) + 0.5) - 1))]
    return {"median": round(statistics.median(s), 3), "p95": round(p95, 3), "max": round(s[-1], 3)}


def summarise(res: dict[str, Any]) -> dict[str, Any]:
    rounds = res.get("rounds", [])
    plain = [r for r in rounds if r["action"] == "vote"]
    return {
        "viewport": res.get("viewport"),
        "rounds": len(rounds),
        "votes_saved": res.get("votes"),
        "first_pair_s": res.get("first_pair_s"),
        "submit_to_next_readable_s": stats([r["submit_to_next_readable_s"] for r in rounds[:ROUNDS]]),
        "submit_to_next_readable_s_all_rounds": stats([r["submit_to_next_readable_s"] for r in rounds]),
        "submit_to_saved_s": stats([r["submit_to_saved_s"] for r in rounds]),
        "next_key_to_readable_s": stats([r["next_key_to_readable_s"] for r in rounds]),
        "keys_per_vote": sorted({r["keys"] for r in plain}),
        "keys_per_vote_with_next": sorted({r["keys_with_next"] for r in plain}),
        "clicks_per_vote": sorted({r["clicks"] for r in plain}),
        "page_counted_keys_per_vote": sorted({r["page_counted_keys"] for r in plain}),
        "special_votes": {
            r["action"]: {"keys": r["keys"], "clicks": r["clicks"], "typed": r["typed_chars"]}
            for r in rounds
            if r["action"] != "vote"
        },
        "scroll_needed": any(r["layout_scroll_needed"] for r in rounds),
        "page_scrolled_px_max": max((r.get("scroll_y") or 0 for r in rounds), default=0),
        "offscreen_parts": sorted({p for r in rounds for p in r["offscreen"]}),
        "pane_height_px": sorted({r["panes"][s]["height_px"] for r in rounds for s in ("left", "right")}),
        "answers_scrolling_inside": sum(
            r["panes"][s]["scrolls_inside"] for r in rounds for s in ("left", "right")
        ),
        "answers_cut": sum(r["panes"][s]["cut"] for r in rounds for s in ("left", "right")),
        "submit_to_next_undimmed_s": stats(
            [r["submit_to_next_undimmed_s"] for r in rounds if "submit_to_next_undimmed_s" in r]
        ),
        "saved_message_on_screen_after_vote": sorted(
            {bool((r.get("after_vote") or {}).get("on_screen")) for r in rounds}
        ),
        "skip": res.get("special", {}).get("skip"),
        "reload": {k: v for k, v in res.get("special", {}).get("reload", {}).items()},
        "contradiction": res.get("special", {}).get("contradiction"),
        "change": res.get("special", {}).get("change"),
        "end_status": res.get("end_status"),
        "end_progress": res.get("end_progress"),
        "defects": res.get("defects", []),
        "session_s": res.get("session_s"),
    }


def setup(home: Path, args: argparse.Namespace, summary: dict[str, Any]) -> None:
    """The coordinator's steps, with the real CLI: index, queue, accounts, prepare (timed)."""
    summary["ingest_s"] = round(cli(home, "ingest", "--sample")[0], 1)
    items: list[dict[str, Any]] = [{"question": q} for q in QUESTIONS] + GOLD
    items = items[: args.questions - len(GOLD)] + GOLD if args.questions < len(items) else items
    qfile = home / "questions.jsonl"
    qfile.write_text("".join(json.dumps(x) + "\n" for x in items))
    summary["queued"] = len(items)
    cli(home, "prefs", "load-questions", str(qfile), "--overlap", str(args.overlap))
    summary["overlap"] = args.overlap
    for name, (_w, _h, role) in ANNOTATORS.items():
        cli(home, "prefs", "add-user", name, "--role", role, stdin=PASSWORD + "\n")
    cli(home, "prefs", "add-user", ADMIN, "--role", "clinician", "--admin", stdin=PASSWORD + "\n")
    secs, text = cli(home, "prefs", "prepare")
    summary["prepare"] = {"seconds": round(secs, 1), "output": text[-400:], "load_average": os.getloadavg()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--questions", type=int, default=len(QUESTIONS) + len(GOLD), help="Items queued (two are gold)."
    )
    ap.add_argument("--out", type=Path, default=REPO / "test-artifacts" / "labelling-walk")
    ap.add_argument(
        "--overlap", type=int, default=1, help="Annotators per item (prefs load-questions --overlap)."
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="llama.cpp threads (MEDCHAT_GENERATION__N_THREADS) for prepare and serve; 1 is far faster on a "
        "2-core machine that other jobs keep busy.",
    )
    ap.add_argument("--keep-home", action="store_true")
    ap.add_argument(
        "--snapshot",
        type=Path,
        help="A copy of the prepared MEDCHAT_HOME: made here after `prefs prepare` when missing, used "
        "instead "
        "of the setup when present (to rerun the walk without preparing again).",
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.threads:
        os.environ["MEDCHAT_GENERATION__N_THREADS"] = str(args.threads)
    if args.worker:
        run_worker(args.worker, args.url, args.out, args.result)
        return

    for old in args.out.glob("*"):
        if old.is_file():
            old.unlink()
    home = Path(tempfile.mkdtemp(prefix="medchat-walk-"))
    summary: dict[str, Any] = {
        "home": str(home),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join([".venv/bin/python", "bench/walk_labelling.py", *sys.argv[1:]]),
        "llama_threads": args.threads,
        "load_average_at_start": os.getloadavg(),
    }
    print(f"MEDCHAT_HOME={home}", file=sys.stderr, flush=True)
    server = None
    try:
        if args.snapshot and args.snapshot.is_dir():
            shutil.rmtree(home)
            shutil.copytree(args.snapshot, home)
            summary["from_snapshot"] = str(args.snapshot)
        else:
            setup(home, args, summary)
            if args.snapshot:
                shutil.copytree(home, args.snapshot)

        # `medchat serve`, its output in a log file; a start that fails is retried (twice) and reported
        env = {**os.environ, "MEDCHAT_HOME": str(home)}
        starts: list[dict[str, Any]] = []
        summary["serve_starts"] = starts
        for _attempt in range(3):
            port = free_port()
            url = f"http://127.0.0.1:{port}/"
            logfile = home / f"serve-{len(starts) + 1}.log"
            t = time.perf_counter()
            with open(logfile, "w") as log:
                server = subprocess.Popen(
                    [str(PY), "-m", "chatbot.cli", "serve", "--port", str(port)],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=REPO,
                )
            up = False
            while server.poll() is None and time.perf_counter() - t < 300:
                try:
                    urllib.request.urlopen(url, timeout=10)
                    up = True
                    break
                except Exception:
                    time.sleep(1)
            text = logfile.read_text()
            starts.append(
                {
                    "up": up,
                    "seconds": round(time.perf_counter() - t, 1),
                    "rc": server.poll(),
                    "log_tail": "" if up else text[-600:],
                }
            )
            shutil.copy(logfile, args.out / logfile.name)
            if up:
                break
            print(f"serve did not start (attempt {len(starts)}): {text[-400:]}", file=sys.stderr, flush=True)
            if server.poll() is None:
                server.terminate()
                server.wait(30)
            server = None
        if server is None:
            raise SystemExit("serve did not start in 3 attempts")
        serve_log = logfile
        summary["serve_start_s"] = round(time.perf_counter() - t, 1)
        print(f"serving {url} (log {serve_log})", file=sys.stderr, flush=True)

        # both annotators at the same time, each in its own process and browser
        procs = {}
        for name in ANNOTATORS:
            result = home / f"walk-{name}.json"
            procs[name] = (
                subprocess.Popen(
                    [
                        sys.executable,
                        __file__,
                        "--worker",
                        name,
                        "--url",
                        url,
                        "--out",
                        str(args.out),
                        "--result",
                        str(result),
                    ],
                    cwd=REPO,
                ),
                result,
            )
        results: dict[str, dict[str, Any]] = {}
        for name, (p, result) in procs.items():
            p.wait()
            results[name] = (
                json.loads(result.read_text()) if result.exists() else {"defects": [f"{name}: no result"]}
            )
        (args.out / "walks-raw.json").write_text(json.dumps(results, indent=1))
        summary["annotators"] = {name: summarise(r) for name, r in results.items()}
        try:
            summary["results_tab"] = admin_results(url, args.out)
        except Exception as e:
            summary["results_tab"] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
        changed = [{**r["changed"], "annotator": n} for n, r in results.items() if r.get("changed")]
        summary["export"] = check_exports(home, args.out, changed)
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
            shutil.copy(serve_log, args.out / serve_log.name)
        summary["defects"] = [
            d for a in summary.get("annotators", {}).values() for d in a["defects"]
        ] + summary.get("export", {}).get("defects", [])
        (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
        print(json.dumps(summary, indent=1))
        if not args.keep_home:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
