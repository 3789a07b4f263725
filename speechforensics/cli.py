"""The `speechforensics` command: argparse subcommands over the library."""

import argparse
import json
import sys
from pathlib import Path

import torch

from . import __version__
from .avhubert import LARGE, ModelConfig, convert, load_checkpoint, read_checkpoint
from .avhubert.download import available_models, cache_dir, download
from .backends import BACKENDS, CHECKPOINT_ENV
from .errors import SpeechForensicsError
from .media import FORMATS, MAX_SECONDS


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except SpeechForensicsError as e:
        if args.debug:
            raise
        print(f"speechforensics: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("speechforensics: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="speechforensics",
        description="Is this talking-face video forged? Do the lips say what the voice says?",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (_add_detect, _add_download, _add_crops, _add_inspect, _add_convert):
        add(sub)
    for p in sub.choices.values():
        p.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
    return parser


def _add_detect(sub) -> None:
    p = sub.add_parser("detect", help="judge videos: do the lips match the voice?")
    p.add_argument("videos", type=Path, nargs="+", help=f"video files ({FORMATS})")
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        help="timing (no download) or avhubert (the default when a checkpoint is given, set in "
        f"${CHECKPOINT_ENV} or downloaded to the cache)",
    )
    p.add_argument("--checkpoint", type=Path, help=f"AV-HuBERT checkpoint (or ${CHECKPOINT_ENV})")
    p.add_argument("--threshold", type=float, help="score below which a video is called fake")
    p.add_argument("--json", type=Path, help="write one JSON list with a result per video")
    p.add_argument("--plot", type=Path, help="save the timeline figure (.png; per video with -N)")
    p.add_argument("--html", type=Path, help="save a self-contained report page (.html)")
    _add_clip_options(p)
    p.set_defaults(run=_detect)


def _add_crops(sub) -> None:
    p = sub.add_parser("crops", help="save a contact sheet of a video's mouth crops (PNG)")
    p.add_argument("video", type=Path, help=f"video file ({FORMATS})")
    p.add_argument("out", type=Path, help="output image (.png or .jpg)")
    _add_clip_options(p)
    p.set_defaults(run=_crops)


def _add_clip_options(p) -> None:
    p.add_argument(
        "--max-seconds", type=float, default=MAX_SECONDS, help="analyse at most this much"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_download(sub) -> None:
    p = sub.add_parser("download", help="fetch an official pre-trained checkpoint into the cache")
    p.add_argument(
        "model", nargs="?", default="large", choices=available_models(), help="default: large"
    )
    p.add_argument(
        "--cache",
        type=Path,
        default=None,
        help=f"cache directory (default: $SPEECHFORENSICS_CACHE, else {cache_dir()})",
    )
    p.add_argument("--url", help="download from this URL instead of the official one (a mirror)")
    p.add_argument("--sha256", type=_sha256, help="expected SHA-256 of the .pt file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_download)


def _sha256(value: str) -> str:
    if len(value) != 64 or any(c not in "0123456789abcdefABCDEF" for c in value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a SHA-256 (64 hex digits)")
    return value.lower()


def _add_inspect(sub) -> None:
    p = sub.add_parser("inspect", help="describe an AV-HuBERT checkpoint and check that it loads")
    p.add_argument("checkpoint", type=Path, help="released .pt file or converted .safetensors")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(run=_inspect)


def _add_convert(sub) -> None:
    p = sub.add_parser("convert", help="convert a checkpoint to safetensors (safe, fast to load)")
    p.add_argument("checkpoint", type=Path, help="released .pt file")
    p.add_argument(
        "out", type=Path, help="output .safetensors file (a .json config is written beside it)"
    )
    p.set_defaults(run=_convert)


def _size_name(config: ModelConfig) -> str:
    def shape(c: ModelConfig) -> tuple:
        return (
            c.encoder_layers,
            c.encoder_embed_dim,
            c.encoder_attention_heads,
            c.encoder_ffn_embed_dim,
        )

    return {shape(ModelConfig()): "BASE", shape(LARGE): "LARGE"}.get(shape(config), "custom")


def _inspect(args) -> int:
    ckpt = read_checkpoint(args.checkpoint)
    model = load_checkpoint(args.checkpoint)  # strict: every weight present with its shape
    c = ckpt.config
    with torch.no_grad():  # one frame through both branches proves the weights run
        out = model.extract_features(
            torch.zeros(1, 1, 1, 88, 88), torch.zeros(1, c.audio_feat_dim, 1)
        )
    info = {
        "file": str(args.checkpoint),
        "kind": ckpt.kind,
        "size": _size_name(c),
        "layers": c.encoder_layers,
        "width": c.encoder_embed_dim,
        "heads": c.encoder_attention_heads,
        "ffn": c.encoder_ffn_embed_dim,
        "parameters": ckpt.num_parameters,
        "weight_dtype": str(ckpt.stored_dtype).removeprefix("torch."),
        "loads": bool(torch.isfinite(out).all()),
    }
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"{info['file']}: AV-HuBERT {info['size']} encoder, {info['kind']}")
    print(
        f"  layers {c.encoder_layers}, width {c.encoder_embed_dim}, "
        f"heads {c.encoder_attention_heads}, FFN {c.encoder_ffn_embed_dim}"
    )
    print(
        f"  parameters {info['parameters']:,} (encoder), weights stored as {info['weight_dtype']}"
    )
    print(f"  loads: {'yes' if info['loads'] else 'no: non-finite outputs'}")
    return 0 if info["loads"] else 1


def _detect(args) -> int:
    backend = _backend(args)
    results, failed = [], 0
    for n, video in enumerate(args.videos):
        try:
            result = _detect_one(args, backend, video, n)
        except SpeechForensicsError as e:
            if args.debug:
                raise
            print(f"speechforensics: error: {e}", file=sys.stderr)
            result, failed = {"file": str(video), "error": str(e)}, failed + 1
        else:
            print(_result_line(result), flush=True)
        results.append(result)
        if args.json:  # rewritten after every video: an interruption loses nothing done
            _write_json(results, args.json)
    return 1 if failed else 0


def _detect_one(args, backend, video: Path, n: int) -> dict:
    from .detect import judge, prepare
    from .report import html_page, plot_png

    clip = prepare(video, args.max_seconds, progress=_show_progress(args))
    result = judge(clip, backend, args.threshold)
    if args.plot or args.html:
        crops = next(t.crops for t in clip.tracks if t.face.id == result["face"])
        png = plot_png(result, crops)
        suffix = "" if len(args.videos) == 1 else f"-{n + 1}"
        if args.plot:
            _numbered(args.plot, suffix).write_bytes(png)
        if args.html:
            _numbered(args.html, suffix).write_text(html_page(result, png))
    return result


def _numbered(path: Path, suffix: str) -> Path:
    path = path.with_name(f"{path.stem}{suffix}{path.suffix}")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _backend(args):
    from .backends import load_backend

    return load_backend(args.backend, args.checkpoint)


def _result_line(r: dict) -> str:
    score = "too little speech" if r["score"] is None else f"score {r['score']:.3f}"
    threshold = "none" if r["threshold"] is None else f"{r['threshold']:.3f}"
    faces = len(r["tracks"])
    return (
        f"{r['file']}: {r['verdict']} ({score}, threshold {threshold}, {r['backend']} backend); "
        f"offset {r['offset_frames']:+d} frames ({r['offset_ms']:+.0f} ms); "
        f"speech {r['speech_seconds']:.1f} s; {faces} face{'s' if faces > 1 else ''}"
    )


def _write_json(results: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    tmp.replace(path)


def _crops(args) -> int:
    from .detect import prepare
    from .report import contact_sheet, write_image

    clip = prepare(args.video, args.max_seconds, progress=_show_progress(args))
    captions = [_track_caption(args.video, t) for t in clip.tracks]
    sheet = contact_sheet(
        [t.crops for t in clip.tracks], captions, [t.missing for t in clip.tracks]
    )
    write_image(sheet, args.out)
    for track in clip.tracks:
        print(json.dumps({"file": str(args.video), **track.summary()}))
    return 0


def _track_caption(video: Path, track) -> str:
    s = track.summary()
    measured, missing = s["frames_measured"], s["frames_missing"]
    return f"{video.name}  face {s['id']}: {measured} frames measured, {missing} missing"


def _show_progress(args) -> bool:
    return not args.quiet and sys.stderr.isatty()


def _download(args) -> int:
    out = download(
        args.model, args.cache, url=args.url, sha256=args.sha256, progress=_show_progress(args)
    )
    print(out)
    return 0


def _convert(args) -> int:
    out = convert(args.checkpoint, args.out)
    print(
        f"{out} (+ {out.with_suffix('.json').name}): load it with load_checkpoint or --checkpoint"
    )
    return 0
