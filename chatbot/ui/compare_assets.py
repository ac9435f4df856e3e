"""The Compare tab's look and keyboard, as plain strings (no Gradio import): `chatbot.ui.app` adds
`COMPARE_CSS` to the page's CSS, and `chatbot.ui.compare` loads `COMPARE_KEYS_JS` with the page.

Layout (issue 27 item 7): at 1280x720 the question, both answers and every vote control down to
Submit fit on one screen unscrolled; the answer panes take the height that is left and scroll inside.
On a phone (390x844) the panes are shorter, the vote controls compact, and Submit stays on screen.

Keys (issue 27 item 8), one per decision, each shown on its option: 1-4 the choice, Q W E R how
much better, Z X C V the safety verdict, Enter submits. A full vote is 4 keystrokes (3 for a tie).
"""

# the keys, in the order of each radio's options (CHOICE_LABELS, STRENGTH_LABELS, SAFETY_LABELS)
CHOICE_KEYS = ("1", "2", "3", "4")
STRENGTH_KEYS = ("q", "w", "e", "r")
SAFETY_KEYS = ("z", "x", "c", "v")


def _badges(group: str, keys: tuple[str, ...]) -> str:
    return "\n".join(
        f'#{group} label:nth-of-type({n}) span::after {{ content: "{k.upper()}"; }}'
        for n, k in enumerate(keys, start=1)
    )


COMPARE_CSS = (
    """
/* Compare: one screen from the question to Submit; the answers take what is left and scroll inside */
#cmp-top { align-items: center; gap: 8px; min-height: 0; }
#cmp-top .prose, #cmp-top p { margin: 0 !important; font-size: 0.9em; }
#cmp-ask-row { align-items: stretch; gap: 8px; }
#cmp-ask-row button { min-height: 40px; max-height: 44px; padding: 4px 10px; }
#cmp-answers { gap: 8px; }
#cmp-answers > .column { gap: 4px; }
.block.cmp-answer { height: clamp(150px, calc(100dvh - 500px), 900px); overflow-y: auto !important;
  padding: 26px 10px 6px 10px !important; }
.block.cmp-answer .html-container { padding: 0 !important; }
.prose.cmp-answer { height: auto; overflow: visible; padding: 0; border: 0; }
.cmp-answer p { margin: 0 0 0.5em 0; }
.block.cmp-sources { padding: 4px 10px !important; }
.cmp-waiting { color: var(--body-text-color-subdued); font-style: italic; }
#cmp-status { min-height: 1.4em; }
#cmp-status p, #cmp-reveal p { margin: 0 !important; }
#cmp-vote .wrap { gap: 4px 8px; }
#cmp-vote fieldset { padding: 2px 8px !important; }
#cmp-vote label { padding: 4px 8px !important; }
#cmp-vote .block { padding-top: 4px !important; padding-bottom: 4px !important; }
#cmp-vote span[data-testid="block-info"] { margin-bottom: 2px !important; }
#cmp-vote label span::after { display: inline-block; margin-left: 6px; padding: 0 5px; border-radius: 3px;
  border: 1px solid var(--border-color-primary); font: 0.75em/1.4 monospace;
  color: var(--body-text-color-subdued); }
#cmp-rationale textarea { min-height: 2.2em; }
#cmp-rationale { padding-top: 4px !important; padding-bottom: 4px !important; }
#cmp-actions { align-items: center; gap: 8px; }
#cmp-actions button { min-height: 40px; }
#cmp-keys p { margin: 0 !important; font-size: 0.85em; }
#tab-compare { gap: 6px !important; padding-top: 4px !important; }
#tab-compare > .column, #tab-compare .form { gap: 6px !important; }
@media (max-height: 820px) and (min-width: 641px) {
  #page-title p { display: none; }
  #page-title h1 { font-size: 1.3em; margin: 0; }
  .block.cmp-answer { height: clamp(150px, calc(100dvh - 450px), 900px); }
}
@media (max-width: 640px) {
  #tab-compare {
    margin-left: -24px !important; width: calc(100% + 48px) !important; max-width: none !important;
  }
  #page-title h1 { font-size: 1.2em; margin: 0; }
  #cmp-keys, #cmp-hello { display: none; }
  .block.cmp-answer { height: clamp(110px, calc((100dvh - 610px) / 2), 420px); font-size: 0.9em;
    padding-top: 22px !important; }
  .block.cmp-sources { padding: 2px 8px !important; font-size: 0.9em; }
  #cmp-ask-row { flex-wrap: wrap; gap: 4px; }
  #cmp-ask-row > :first-child { flex: 1 1 100% !important; min-width: 100% !important; }
  #cmp-ask-row button { flex: 1 1 0 !important; min-width: 0 !important; min-height: 32px; max-height: 34px;
    font-size: 0.85em; white-space: nowrap; }
  #cmp-vote .wrap { gap: 3px 4px; }
  #cmp-vote label { padding: 1px 5px !important; font-size: 0.8em; }
  #cmp-vote label input { margin-right: 3px !important; }
  #cmp-vote span[data-testid="block-info"] { font-size: 0.75em; margin-bottom: 0 !important; }
  #cmp-vote label span::after { margin-left: 3px; padding: 0 3px; }
  #cmp-vote .row { gap: 0 !important; }
  #cmp-vote .block { padding: 2px 6px !important; }
  #cmp-rationale textarea { min-height: 1.8em; padding: 2px 6px !important; }
  #cmp-answers { gap: 4px; }
  #cmp-status { font-size: 0.85em; }
}
"""
    + _badges("cmp-choice", CHOICE_KEYS)
    + "\n"
    + _badges("cmp-strength", STRENGTH_KEYS)
    + "\n"
    + _badges("cmp-safety", SAFETY_KEYS)
    + "\n"
)

# Single keys act while the Compare tab is shown and no text field has the focus; Ctrl+Enter submits
# from anywhere (also from the rationale), Alt+N next, Alt+S skip. "By how much?" opens once the
# server has seen the choice (a round trip): its key waits for that, up to 3 s.
COMPARE_KEYS_JS = (
    """
() => {
  if (window.__medchatCompareKeys) return;
  window.__medchatCompareKeys = true;
  const groups = {
    '#cmp-choice': '__CHOICE__',
    '#cmp-strength': '__STRENGTH__',
    '#cmp-safety': '__SAFETY__',
  };
  const visible = (el) => el && el.offsetParent !== null;
  const isTyping = (t) => !!t && (t.tagName === 'TEXTAREA' || t.isContentEditable ||
    (t.tagName === 'INPUT' && !['radio', 'checkbox'].includes(t.type)));
  const press = (sel) => { const b = document.querySelector(sel); if (visible(b) && !b.disabled) b.click(); };
  // a key for an option not enabled yet (how much better waits for the server to take the choice)
  // is kept and applied when it is; Enter waits for such keys, so a fast typist's vote is whole
  let waiting = 0;
  const pick = (sel, n, tries, queued) => {
    const input = document.querySelectorAll(sel + ' input[type=radio]')[n];
    if (input && input.disabled && tries > 0) {
      if (!queued) waiting++;
      setTimeout(() => pick(sel, n, tries - 1, true), 50);
      return;
    }
    if (queued) waiting--;
    if (!input || input.disabled) return;
    input.click();
    // so that Enter next goes to the vote, not to a button clicked earlier; but a key applied late
    // never takes the focus from a text field the person has moved to meanwhile (their rationale's
    // letters would become vote keys)
    if (!isTyping(document.activeElement)) input.focus();
  };
  const submitWhenReady = (tries) => {
    if (waiting > 0 && tries > 0) { setTimeout(() => submitWhenReady(tries - 1), 50); return; }
    const submit = document.querySelector('#cmp-submit');
    if (visible(submit) && !submit.disabled) submit.click();
  };
  document.addEventListener('keydown', (e) => {
    if (!visible(document.querySelector('#cmp-choice'))) return;
    const t = e.target;
    const typing = isTyping(t);
    if (e.ctrlKey && e.key === 'Enter') { e.preventDefault(); press('#cmp-submit'); return; }
    if (e.altKey && (e.key === 'n' || e.key === 'N')) { e.preventDefault(); press('#cmp-next'); return; }
    if (e.altKey && (e.key === 's' || e.key === 'S')) { e.preventDefault(); press('#cmp-skip'); return; }
    if (typing || e.ctrlKey || e.altKey || e.metaKey) return;
    const onControl = t && (t.tagName === 'BUTTON' || t.tagName === 'A' || t.tagName === 'SUMMARY' ||
      t.tagName === 'SELECT');
    if (e.key === 'Enter' && !onControl) {
      const submit = document.querySelector('#cmp-submit');
      if (visible(submit) && (!submit.disabled || waiting > 0)) { e.preventDefault(); submitWhenReady(120); }
      return;
    }
    const key = (e.key || '').toLowerCase();
    for (const [sel, keys] of Object.entries(groups)) {
      const n = keys.indexOf(key);
      if (key.length === 1 && n >= 0) { e.preventDefault(); pick(sel, n, 100, false); return; }
    }
  });
}
""".replace("__CHOICE__", "".join(CHOICE_KEYS))
    .replace("__STRENGTH__", "".join(STRENGTH_KEYS))
    .replace("__SAFETY__", "".join(SAFETY_KEYS))
)

SHORTCUTS = (
    "Keys (shown on each option): **1-4** · **Q W E R** · **Z X C V** · **Enter** submit "
    "(**Ctrl+Enter** in a text box) · **Alt+N** next · **Alt+S** skip"
)
