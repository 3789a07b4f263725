"""What a person looks at: contact sheets of mouth crops, a report figure, an HTML page."""

import base64
import html
import io
import json
from pathlib import Path

import cv2
import numpy as np

from .errors import SpeechForensicsError
from .features import VIDEO_FPS
from .files import replacing

SHEET_COLUMNS = 10  # crops per row of a contact sheet
SHEET_ROWS = 6  # rows per face track
LABEL_PX = 22  # height of the caption band above each track's rows


def contact_sheet(
    crops: list[np.ndarray], captions: list[str], missing: list[np.ndarray]
) -> np.ndarray:
    """One grey image: for each track, a caption and SHEET_ROWS x SHEET_COLUMNS crops sampled
    evenly over the clip, each stamped with its time; frames without a measured face are dimmed."""
    blocks = [
        _track_block(c, caption, miss)
        for c, caption, miss in zip(crops, captions, missing, strict=True)
    ]
    return np.concatenate(blocks, axis=0)


def _track_block(crops: np.ndarray, caption: str, missing: np.ndarray) -> np.ndarray:
    t, side = crops.shape[0], crops.shape[1]
    picks = np.unique(np.linspace(0, t - 1, min(t, SHEET_COLUMNS * SHEET_ROWS)).round().astype(int))
    rows = -(-len(picks) // SHEET_COLUMNS)
    block = np.full((LABEL_PX + rows * side, SHEET_COLUMNS * side), 255, np.uint8)
    cv2.putText(block, caption, (4, LABEL_PX - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 0, 1, cv2.LINE_AA)
    for n, i in enumerate(picks):
        tile = crops[i].copy()
        if missing[i]:
            tile = (tile // 3 + 170).astype(np.uint8)
        cv2.putText(
            tile, f"{i / VIDEO_FPS:.1f}s", (3, side - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.35, 255, 1
        )
        r, c = divmod(n, SHEET_COLUMNS)
        block[LABEL_PX + r * side : LABEL_PX + (r + 1) * side, c * side : (c + 1) * side] = tile
    return block


def write_json(data, path: str | Path) -> Path:
    """`data` as indented JSON at `path`, replaced whole (written aside, then renamed): a reader
    or an interruption never sees half a file."""
    with replacing(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1) + "\n")
    return Path(path)


def track_sheet(tracks, prefix: str = "") -> np.ndarray:
    """`contact_sheet` of prepared face tracks (pipeline.MouthTrack), each captioned `prefix`
    + its id and how many frames measured it."""
    captions = []
    for track in tracks:
        s = track.summary()
        measured, missing = s["frames_measured"], s["frames_missing"]
        captions.append(f"{prefix}face {s['id']}: {measured} frames measured, {missing} missing")
    return contact_sheet([t.crops for t in tracks], captions, [t.missing for t in tracks])


def write_image(image: np.ndarray, path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise SpeechForensicsError(f"{path}: write the contact sheet as .png or .jpg")
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise SpeechForensicsError(f"{path}: could not write the image (check the folder)")
    return path


# One video's report: a figure (--plot) and a self-contained page (--html)

STRIP_CROPS = 12  # mouth crops in a report's strip
REPORT_FIELDS = (
    "verdict", "score", "threshold", "uncertain_band", "error_rates", "backend", "offset_frames",
    "offset_ms",
)  # fmt: skip
REPORT_FIELDS += ("decided_by", "speech_seconds", "duration_s", "segments")


def plot_png(result: dict, crops: np.ndarray | None) -> bytes:
    """PNG bytes: the sync timeline with suspicious segments shaded, the offset curve, and a
    strip of the judged face's mouth crops."""
    from matplotlib.figure import Figure  # here: matplotlib takes a while to import

    fig = Figure(figsize=(10, 6.2), dpi=100)
    grid = fig.add_gridspec(3, 2, height_ratios=[2.2, 1.1, 1.0], width_ratios=[2.4, 1])
    _plot_timeline(fig.add_subplot(grid[0, :]), result)
    _plot_offsets(fig.add_subplot(grid[1, 1]), result)
    _plot_strip(fig.add_subplot(grid[1:, 0]), crops)
    fig.add_subplot(grid[2, 1]).axis("off")
    fig.suptitle(_headline(result), fontsize=11)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _headline(result: dict) -> str:
    score = "too little speech" if result["score"] is None else f"score {result['score']:.3f}"
    return f"{Path(result['file']).name}: {result['verdict']} ({score}, {result['backend']})"


def doubt_line(result: dict) -> str | None:
    """For an `uncertain` verdict: the band and how often either call would be wrong."""
    band, rates = result.get("uncertain_band"), result.get("error_rates")
    if result["verdict"] != "uncertain" or band is None:
        return None
    line = f"the score lies between {band[0]:.3f} and {band[1]:.3f}, where the evidence is unclear"
    if rates:
        line += (
            f": calling it fake would be wrong for {rates['genuine_at_or_below']:.0%} of "
            f"genuine clips (they score this low or lower), calling it real for "
            f"{rates['forged_at_or_above']:.0%} of forged ones (this high or higher)"
        )
    return line


def _plot_timeline(ax, result: dict) -> None:
    windows = result["timeline"]
    centres = [(w["start_s"] + w["end_s"]) / 2 for w in windows]
    scores = [np.nan if w["score"] is None else w["score"] for w in windows]
    ax.plot(centres, scores, "-o", ms=3, color="tab:blue", label="sync (1 s windows)")
    for start, end in result["segments"]:
        ax.axvspan(start, end, color="tab:red", alpha=0.2, lw=0)
    if result["threshold"] is not None:
        ax.axhline(result["threshold"], color="tab:red", ls="--", lw=1, label="threshold")
    for a, _ in result.get("shots", [])[1:]:
        ax.axvline(a, color="0.4", ls=":", lw=1)
    _plot_turns(ax, result)
    ax.set_xlim(0, result["duration_s"])
    ax.set_xlabel(
        "time (s); red: sync breaks down; bars: who speaks (red: judged out of agreement); "
        "dotted: cuts"
    )
    ax.set_ylabel("sync score")
    ax.legend(loc="best", fontsize=8)


TURN_COLOURS = {"real": "tab:blue", "fake": "tab:red", "not judged": "0.6", "inconclusive": "0.4"}


def _plot_turns(ax, result: dict) -> None:
    """A bar per turn under the timeline, labelled with its face."""
    low, high = ax.get_ylim()
    y = low - 0.08 * (high - low)
    for turn in result.get("turns", []):
        colour = TURN_COLOURS.get(turn["verdict"], "0.4")
        ax.plot([turn["start_s"], turn["end_s"]], [y, y], color=colour, lw=5, solid_capstyle="butt")
        ax.annotate(f"face {turn['face']}", (turn["start_s"], y), xytext=(1, 4),
                    textcoords="offset points", fontsize=7, color=colour)  # fmt: skip
    ax.set_ylim(y - 0.05 * (high - low), high)


def _plot_offsets(ax, result: dict) -> None:
    curve = np.asarray(result["offset_curve"])
    shift = len(curve) // 2
    ms = (np.arange(len(curve)) - shift) * 1000 / VIDEO_FPS
    ax.plot(ms, curve, color="tab:green")
    ax.axvline(result["offset_ms"], color="k", lw=1, ls=":")
    ax.set_xlabel("audio offset (ms)")
    ax.set_ylabel("mean sync")


def _plot_strip(ax, crops: np.ndarray | None) -> None:
    ax.axis("off")
    if crops is None or not len(crops):
        return
    picks = np.linspace(0, len(crops) - 1, min(STRIP_CROPS, len(crops))).round().astype(int)
    rows = [np.concatenate(list(crops[picks[i : i + 6]]), axis=1) for i in range(0, len(picks), 6)]
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1])), constant_values=255) for r in rows]
    ax.imshow(np.concatenate(rows, axis=0), cmap="gray", vmin=0, vmax=255)
    ax.set_title("mouth crops of the judged face", fontsize=9)


def html_page(result: dict, png: bytes) -> str:
    """A self-contained page (the figure inlined) with the verdict and every number."""
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(_cell(result.get(k)))}</td></tr>"
        for k in REPORT_FIELDS
    )
    tracks = "".join(f"<li>{html.escape(json.dumps(t))}</li>" for t in result["tracks"])
    turns = "".join(_turn_row(t) for t in result.get("turns", []))
    warnings = "".join(f"<li>{html.escape(w)}</li>" for w in result["warnings"])
    image = base64.b64encode(png).decode()
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>speechforensics: {html.escape(Path(result["file"]).name)}</title>
<style>body{{font-family:sans-serif;max-width:1040px;margin:2em auto}}
th{{text-align:left;padding-right:1em}}img{{max-width:100%}}
tr.fake td{{color:#c0392b;font-weight:bold}}</style></head><body>
<h1>{html.escape(_headline(result))}</h1>
{f"<p><b>Uncertain:</b> {html.escape(doubt)}.</p>" if (doubt := doubt_line(result)) else ""}
<p>Higher scores mean the lips agree more with the voice. The verdict compares the score of the
face that best matches the voice with the backend's threshold, set on genuine videos only.</p>
<img alt="sync timeline, offset curve and mouth crops" src="data:image/png;base64,{image}">
<table>{rows}</table>
<h2>Who spoke when</h2>
<p>Each stretch of speech goes to the visible face whose mouth moves with it; a face that stays
still is a listener (or the voice is off screen) and is not judged on it. A turn is judged on its
own when it holds enough speech; the video is fake when any turn is out of agreement.</p>
<table><tr><th>when</th><th>face</th><th>speech</th><th>score</th><th>verdict</th></tr>{
        turns or '<tr><td colspan="5">no visible face spoke</td></tr>'
    }</table>
<p>Shots: {len(result.get("shots", []))}.</p>
<h2>Faces</h2><ul>{tracks}</ul>
<h2>Warnings</h2><ul>{warnings or "<li>none</li>"}</ul>
<p>File: {html.escape(result["file"])}</p>
</body></html>
"""


def _turn_row(turn: dict) -> str:
    score = "–" if turn["score"] is None else f"{turn['score']:.3f}"
    cells = [
        f"{turn['start_s']:.1f}–{turn['end_s']:.1f} s",
        f"face {turn['face']}",
        f"{turn['speech_seconds']:.1f} s",
        score,
        turn["verdict"],
    ]
    row = "".join(f"<td>{html.escape(c)}</td>" for c in cells)
    return f'<tr class="{html.escape(turn["verdict"])}">{row}</tr>'


def _cell(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else json.dumps(value)
