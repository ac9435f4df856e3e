"""The Results tab: who labelled what, position bias, agreement, gold accuracy, the variant leaderboard,
and downloads of every export format. Admins only: annotators who saw which variant wins would be biased."""

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import gradio as gr

    from chatbot.labelling.leaderboard import Rating
    from chatbot.labelling.store.prefs import PreferenceStore
    from chatbot.ui.auth import Users

ANNOTATOR_COLUMNS = {
    "annotator": "Annotator",
    "role": "Role",
    "judgments": "Judgments",
    "left_rate": "Chose left",
    "tie_rate": "Ties",
    "both_bad_rate": "Both bad",
    "gold_items": "Gold items",
    "gold_accuracy": "Gold correct",
    "median_time_s": "Median time (s)",
}
ADMINS_ONLY = "The results and exports are shown to admins only (`medchat prefs add-user NAME --admin`)."


def plot_title(ratings: list[float]) -> str:
    """The leaderboard chart's title; when every variant is at the average the chart has no bars,
    and the title says why instead of leaving an empty frame."""
    title = "Rating above or below the average (1000)"
    if ratings and all(abs(x - 1000) < 0.5 for x in ratings):
        title += ": every variant is at 1000 so far, so there are no bars"
    return title


def win_rate_chart_html(ratings: "list[Rating]") -> str:
    """Each variant's share of its battles won (ties count half), with its 95% Wilson interval as a
    bar and a dashed line at 50%: an interval that crosses the line means "not yet told apart".

    Drawn as HTML because Gradio's BarPlot has no error bars; the numbers are written out too, so a
    screen reader and a screenshot say the same."""
    import html

    from chatbot.labelling.leaderboard import wilson_interval

    if not ratings:
        return '<div class="res-wr">No votes yet: the win rates appear after the first judgment.</div>'
    rows = []
    for x in ratings:
        rate = x.wins / x.battles if x.battles else 0.0
        lo, hi = wilson_interval(x.wins, x.battles)
        rows.append(
            f'<div class="res-wr-row" data-variant="{html.escape(x.variant)}" '
            f'data-rate="{rate:.3f}" data-lower="{lo:.3f}" data-upper="{hi:.3f}">'
            f'<span class="res-wr-name">{html.escape(x.variant)}</span>'
            '<span class="res-wr-track" style="position:relative;display:inline-block;width:60%;height:1.1em;'
            'background:#eee;vertical-align:middle">'
            f'<span class="res-wr-bar" style="position:absolute;left:0;top:0;bottom:0;width:{rate:.1%};'
            'background:#6b8fd6"></span>'
            f'<span class="res-wr-ci" title="95% interval" style="position:absolute;left:{lo:.1%};'
            f'width:{hi - lo:.1%};top:45%;height:2px;background:#222"></span>'
            '<span class="res-wr-half" style="position:absolute;left:50%;top:-3px;bottom:-3px;'
            'border-left:2px dashed #c00"></span></span> '
            f'<span class="res-wr-num">{rate:.0%} won (95% interval {lo:.0%} to {hi:.0%}), '
            f"{x.battles} battles</span></div>"
        )
    legend = (
        '<div class="res-wr-legend">Bar: share of battles won (ties count half); black line: 95% interval; '
        "dashed red line: 50%, as good as the others.</div>"
    )
    return '<div class="res-wr"><b>Win rate with 95% intervals</b>' + "".join(rows) + legend + "</div>"


def cohen_text(pairs: "list[dict[str, Any]]") -> str:
    """Cohen's kappa per pair of annotators as a reader takes it: two decimals, "n/a" with the reason
    where it is undefined (the page said "None"), and what a negative one means."""
    from chatbot.labelling.leaderboard import kappa_note

    parts = []
    for c in pairs:
        kappa = c["kappa"]
        if kappa is None:
            said, why = "n/a", "; every vote the same category, so agreement beyond chance cannot be measured"
        else:
            said, why = f"{kappa:.2f}", (f"; {kappa_note(kappa)}" if kappa < 0 else "")
        parts.append(f"{c['pair']}: {said} ({c['items']} items{why})")
    return "; ".join(parts) or "n/a"


def build_results_tab(
    app: "gr.Blocks", tab: "gr.Tab", store: "PreferenceStore", users: "Users", *, rounds: int = 200
) -> None:
    import gradio as gr
    import pandas as pd

    from chatbot.labelling.export import AGGREGATIONS, FORMATS, SelectOptions, export
    from chatbot.labelling.leaderboard import kappa_note, results
    from chatbot.ui.downloads import download_links

    def admin(request: gr.Request | None) -> bool:
        return users.is_admin(getattr(request, "username", None))

    def refresh(request: gr.Request) -> tuple[Any, ...]:
        if not admin(request):
            raise gr.Error(ADMINS_ONLY)
        r = results(store, rounds=rounds)
        raw = pd.DataFrame(r.annotators, columns=list(ANNOTATOR_COLUMNS))
        annotators = raw.rename(columns=ANNOTATOR_COLUMNS)
        for col in ("Chose left", "Ties", "Both bad", "Gold correct"):
            annotators[col] = annotators[col].map(lambda x: "" if pd.isna(x) else f"{x:.0%}")
        board = pd.DataFrame(
            [
                {
                    "variant": x.variant,
                    "rating": round(x.rating),
                    "95% CI": f"{x.lower:.0f} to {x.upper:.0f}",
                    "battles": x.battles,
                    "wins": x.wins,
                }
                for x in r.ratings
            ],
            columns=["variant", "rating", "95% CI", "battles", "wins"],
        )
        # bars from the average (1000): an axis that starts at 0 or at 970 hides or exaggerates the gaps
        plot = pd.DataFrame(
            [{"variant": x.variant, "vs average": round(x.rating - 1000)} for x in r.ratings],
            columns=["variant", "vs average"],
        )
        reach = max([50.0, *(abs(x.rating - 1000) for x in r.ratings)])
        reach = 50 * math.ceil(reach / 50)
        left = raw[["annotator", "left_rate"]].dropna()
        fleiss = "n/a" if r.fleiss is None else f"{r.fleiss:.2f} ({kappa_note(r.fleiss)})"
        cohen = cohen_text(r.cohen)
        summary = (
            f"**{r.total}** submitted judgments. Overlapping items: {r.overlapping_items}; "
            f"Fleiss' kappa {fleiss}; Cohen's kappa per pair: {cohen}. "
            "A left rate far from 0.5 suggests position bias."
        )
        title = plot_title([x.rating for x in r.ratings])
        bars = gr.BarPlot(value=plot, y_lim=[-reach, reach], title=title)
        return summary, board, bars, win_rate_chart_html(r.ratings), annotators, left

    def download(fmt: str, aggregate: str, request: gr.Request) -> tuple[str, str]:
        # links, not files: Gradio would serve a returned file to anyone signed in who has its URL;
        # the links' route (chatbot.ui.downloads) checks the admin again and writes nothing to disk
        if not admin(request):
            raise gr.Error(ADMINS_ONLY)
        result = export(store, fmt, SelectOptions(aggregate=aggregate or "majority"))
        rows, excluded = download_links(fmt, aggregate or "majority")
        links = f"[Download medchat-{fmt}.jsonl]({rows}) · [why judgments were left out]({excluded})"
        return links, f"{result.summary()}."

    summary = gr.Markdown(elem_id="res-summary")
    refresh_btn = gr.Button("Refresh", elem_id="res-refresh")
    gr.Markdown("### Variant leaderboard (Bradley-Terry, 95% bootstrap CI)")
    with gr.Row():
        board = gr.Dataframe(elem_id="res-board", interactive=False)
        plot = gr.BarPlot(
            x="variant",
            y="vs average",
            title=plot_title([]),
            y_title="rating points vs. average",
            elem_id="res-plot",
        )
    win_rates = gr.HTML(elem_id="res-winrate")
    gr.Markdown("### Annotators")
    annotators = gr.Dataframe(elem_id="res-annotators", interactive=False, wrap=True)
    left_plot = gr.BarPlot(
        x="annotator",
        y="left_rate",
        title="How often each annotator chose the left answer (0.5 = no position bias)",
        y_title="share of votes for A",
        y_lim=[0, 1],
        elem_id="res-left-plot",
    )
    gr.Markdown("### Export")
    with gr.Row():
        fmt = gr.Dropdown(list(FORMATS), value="dpo", label="Format", elem_id="res-format")
        aggregate = gr.Dropdown(
            list(AGGREGATIONS), value="majority", label="Several votes on a pair", elem_id="res-aggregate"
        )
        go = gr.Button("Export", elem_id="res-export")
    files = gr.Markdown(elem_id="res-files")
    note = gr.Markdown()
    outputs = [summary, board, plot, win_rates, annotators, left_plot]
    refresh_btn.click(refresh, None, outputs, api_name="results")
    go.click(download, [fmt, aggregate], [files, note], api_name="export")

    def on_load(request: gr.Request) -> tuple[Any, ...]:
        if not admin(request):
            return (gr.Tab(visible=False), ADMINS_ONLY, None, None, None, None, None)
        return (gr.Tab(visible=True), *refresh(request))

    app.load(on_load, None, [tab, *outputs], api_visibility="private")
