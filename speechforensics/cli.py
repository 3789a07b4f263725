"""The `speechforensics` command: argparse subcommands over the library."""

import argparse
import json
import sys
import warnings
from pathlib import Path

from .errors import SpeechForensicsError, describe, report_skip
from .version import __version__

# Each subcommand's arguments are built (and its modules imported) only when it is the one run:
# `speechforensics --help` and a lipsync-lite `detect` never wait for torch to load.


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    parser = _parser(next((a for a in argv if not a.startswith("-")), None))
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("speechforensics: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if args.debug:
            raise
        print(f"speechforensics: error: {describe(e)}", file=sys.stderr)
        return 1


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser, with the arguments of `command` only (the others show their one-line help)."""
    parser = argparse.ArgumentParser(
        prog="speechforensics",
        description="Is this talking-face video forged? Do the lips say what the voice says?",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (summary, add) in COMMANDS.items():
        p = sub.add_parser(
            name, help=summary, formatter_class=argparse.ArgumentDefaultsHelpFormatter
        )
        if name == command:
            add(p)
        p.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
    return parser


def _add_detect(p) -> None:
    from .media import FORMATS

    p.add_argument("videos", type=Path, nargs="+", help=f"video files ({FORMATS})")
    _add_backend_options(p)
    _add_model_options(p)
    p.add_argument("--json", type=Path, help="write one JSON list with a result per video")
    p.add_argument("--plot", type=Path, help="save the timeline figure (.png; per video with -N)")
    p.add_argument("--html", type=Path, help="save a self-contained report page (.html)")
    _add_engine(p)
    _add_protocol_options(p)
    _add_clip_options(p)
    p.set_defaults(run=_detect)


def _add_backend_options(p, threshold: bool = True) -> None:
    """--backend, --checkpoint, --lite-params and (`threshold`) --threshold: which model judges."""
    from .backends import BACKENDS, CHECKPOINT_ENV

    p.add_argument(
        "--backend",
        choices=BACKENDS,
        help="lipsync-lite (no download) or avhubert (the default when a checkpoint is given, "
        f"set in ${CHECKPOINT_ENV} or downloaded to the cache)",
    )
    p.add_argument("--checkpoint", type=Path, help=f"AV-HuBERT checkpoint (or ${CHECKPOINT_ENV})")
    p.add_argument(
        "--lite-params", type=Path, help="lipsync-lite parameters from fit-lite (default: shipped)"
    )
    if threshold:
        p.add_argument("--threshold", type=float, help="score below which a video is called fake")


def _add_engine(p) -> None:
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: this machine; ray: a Ray cluster (pip install 'speechforensics[ray]'), "
        "CPU tasks preparing the clips and a scorer per GPU judging them",
    )
    p.add_argument(
        "--address",
        help="--engine ray: the cluster's address, host:port as `ray start --head` prints it "
        "(default: start a local cluster on this machine's cores)",
    )


def _engine(args):
    """The Ray engine when asked for (Ray is imported only then), else None: this machine."""
    if args.engine != "ray":
        if args.address is not None:
            raise SpeechForensicsError("--address names a Ray cluster: add --engine ray")
        return None
    from .distributed import RayEngine  # here: Ray loads only for --engine ray

    return RayEngine(args.address)


def _add_protocol_options(p) -> None:
    """--protocol, --landmarks, --rois: the paper's published steps (paper.py), avhubert only."""
    p.add_argument(
        "--protocol",
        choices=("ours", "paper"),
        default="ours",
        help="ours: speech frames of tracked faces (default); paper: the official SpeechForensics "
        "steps exactly (every frame, first 50 s, H.264 mouth crops; avhubert only; README: "
        "Reproducing the paper)",
    )
    p.add_argument(
        "--landmarks",
        type=Path,
        metavar="DIR",
        help="with --protocol paper: official landmark JSON files, matched by the video's path "
        "(ours where a file is absent)",
    )
    p.add_argument(
        "--rois",
        type=Path,
        metavar="DIR",
        help="with --protocol paper: official mouth-ROI .mp4 + 16 kHz .wav pairs, by path",
    )


def _paper_inputs(args):
    """The paper protocol's inputs from the arguments, or None for our protocol."""
    from .paper import PaperInputs

    if args.protocol != "paper":
        if args.landmarks or args.rois:
            raise SpeechForensicsError("--landmarks and --rois need --protocol paper")
        return None
    for folder in (args.landmarks, args.rois):
        if folder is not None and not folder.is_dir():
            raise SpeechForensicsError(f"{folder}: no such folder")
    return PaperInputs(args.landmarks, args.rois)


def _add_model_options(p, calibration: bool = True) -> None:
    """--calibration, --device, --dtype: where thresholds come from, where avhubert runs."""
    from .backends import DTYPES

    if calibration:
        p.add_argument(
            "--calibration",
            type=Path,
            help="thresholds from this file of `speechforensics calibrate` (default: the one "
            "beside the checkpoint or lipsync-lite parameters, <file>.calibration.json, or in "
            "the cache, matched by SHA-256)",
        )
    p.add_argument(
        "--device",
        type=_device,
        help="avhubert: cpu, cuda or cuda:N (default: cuda when PyTorch sees a GPU, else cpu)",
    )
    p.add_argument(
        "--dtype", choices=DTYPES, help="avhubert: what the model computes in (default float32)"
    )


def _device(value: str) -> str:
    from .backends import DEVICE_PATTERN

    if not DEVICE_PATTERN.fullmatch(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a device: use cpu, cuda or cuda:N")
    return value


def _add_crops(p) -> None:
    from .media import FORMATS

    p.add_argument("video", type=Path, help=f"video file ({FORMATS})")
    p.add_argument("out", type=Path, help="output image (.png or .jpg)")
    _add_clip_options(p)
    p.set_defaults(run=_crops)


def _add_clip_options(p) -> None:
    from .media import MAX_SECONDS, PAPER_SECONDS

    p.add_argument(
        "--max-seconds",
        type=float,
        default=MAX_SECONDS,
        help=f"analyse at most this much (default: the whole file; the paper: {PAPER_SECONDS:g})",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_download(p) -> None:
    from .avhubert.download import available_models, cache_dir

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


def _add_inspect(p) -> None:
    p.add_argument("checkpoint", type=Path, help="released .pt file or converted .safetensors")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(run=_inspect)


def _add_convert(p) -> None:
    p.add_argument("checkpoint", type=Path, help="released .pt file")
    p.add_argument(
        "out", type=Path, help="output .safetensors file (a .json config is written beside it)"
    )
    p.set_defaults(run=_convert)


def _add_fit_lite(p) -> None:
    p.add_argument(
        "list", type=Path, nargs="+", help="lists of videos (formats of evaluate; a `source` "
        "column groups clips of one recording set); their real ones are used"
    )  # fmt: skip
    p.add_argument("--root", type=Path, help="folder the lists' paths are relative to")
    p.add_argument("--out", type=Path, required=True, help="parameter file to write (.npz)")
    p.add_argument("--cache", type=Path, help="keep the prepared clips here for the next run")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=_fit_lite)


def _fit_lite(args) -> int:
    from .fit_lite import fit_corpus, list_sources

    sources = [s for path in args.list for s in list_sources(path, args.root)]
    summary = fit_corpus(sources, args.out, args.cache, _show_progress(args), args.debug)
    print(
        f"{args.out}: fitted on {summary['held_out_genuine']} genuine clips of "
        f"{summary['sources']} sources; held out by source: AUC genuine vs swapped voice "
        f"{summary['held_out_auc_swapped_voice']:.3f} ({summary['held_out_genuine']} vs "
        f"{summary['held_out_swapped']}); threshold at {summary['false_alarms']:.0%} false alarms "
        f"{summary['threshold']:.4f} (use --threshold with --lite-params)"
    )
    return 0


def _size_name(config) -> str:
    from .avhubert.model import LARGE, ModelConfig

    def shape(c: ModelConfig) -> tuple:
        return (
            c.encoder_layers,
            c.encoder_embed_dim,
            c.encoder_attention_heads,
            c.encoder_ffn_embed_dim,
        )

    return {shape(ModelConfig()): "BASE", shape(LARGE): "LARGE"}.get(shape(config), "custom")


def _inspect(args) -> int:
    import torch

    from .avhubert.checkpoint import load_checkpoint, read_checkpoint

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
    from .report import write_json

    engine = _engine(args)
    if engine is not None:
        return _detect_ray(args, engine)
    backend, paper = _backend(args), _paper_inputs(args)
    if paper is not None:
        return _detect_paper(args, backend, paper)
    if _show_progress(args):  # to a person at a terminal; stdout carries only results
        print(f"speechforensics: {backend.about}", file=sys.stderr)
        print(f"speechforensics: {_thresholds_line(backend)}", file=sys.stderr)
        if backend.name != "avhubert":
            print(
                "speechforensics: for the paper's method, which also sees lip-sync and generated "
                "faces: `speechforensics download large` (1-2 GB, non-commercial licence); "
                "detect then uses it",
                file=sys.stderr,
            )
    results, failed = [], 0
    for n, video in enumerate(args.videos):
        try:
            result = _detect_one(args, backend, video, n)
        except Exception as e:  # noqa: BLE001 - one file never ends the batch
            report_skip(describe(e, video), e, args.debug)
            result, failed = {"file": str(video), "error": describe(e, video)}, failed + 1
        else:
            print(_result_line(result), flush=True)
        results.append(result)
        if args.json:  # rewritten after every video: an interruption loses nothing done
            write_json(results, args.json)
    return 1 if failed else 0


def _detect_ray(args, engine) -> int:
    """detect --engine ray: the videos judged on the cluster, one line each as they finish;
    --json holds those done so far, in the order given."""
    from .report import write_json

    if args.plot or args.html or _paper_inputs(args) is not None:
        raise SpeechForensicsError(
            "--engine ray writes results only: drop --plot, --html, --protocol"
        )
    order = {str(video): n for n, video in enumerate(args.videos)}
    results, failed = [], 0
    for result in engine.detect(args.videos, args, _show_progress(args)):
        if result.get("error"):
            report_skip(result["error"])
            failed += 1
        else:
            print(_result_line(result), flush=True)
        results.append(result)
        if args.json:
            write_json(sorted(results, key=lambda r: order[r["file"]]), args.json)
    return 1 if failed else 0


def _detect_paper(args, backend, inputs) -> int:
    """detect --protocol paper: the official steps per video (paper.py), one line each."""
    from . import paper
    from .report import write_json

    if backend.name != "avhubert":
        raise SpeechForensicsError("--protocol paper needs the avhubert backend: --checkpoint FILE")
    if args.plot or args.html:
        raise SpeechForensicsError("--plot and --html show our protocol's timeline; drop them")
    if _show_progress(args):
        print(f"speechforensics: {backend.about}", file=sys.stderr)
        print(f"speechforensics: {_thresholds_line(backend, 'paper')}", file=sys.stderr)
    threshold = backend.thresholds.clip if args.threshold is None else args.threshold
    results, failed = [], 0
    for video in args.videos:
        try:
            result = paper.judge(video, backend.model, inputs, threshold)
        except Exception as e:  # noqa: BLE001 - one file never ends the batch
            report_skip(describe(e, video), e, args.debug)
            result, failed = {"file": str(video), "error": describe(e, video)}, failed + 1
        else:
            limit = "none" if threshold is None else f"{threshold:.4f}"
            print(
                f"{result['file']}: {result['verdict']} (score {result['score']:.4f}, threshold "
                f"{limit}, paper protocol); offset {result['offset_frames']:+d} frames; "
                f"{result['frames_video']} video / {result['frames_audio']} audio frames; "
                f"mouth crops from {result['roi_source']}",
                flush=True,
            )
        results.append(result)
        if args.json:
            write_json(results, args.json)
    return 1 if failed else 0


def _detect_one(args, backend, video: Path, n: int) -> dict:
    from .pipeline import judge, prepare
    from .report import html_page, plot_png

    crops = backend.needs_crops or bool(args.plot or args.html)  # the report shows the crops
    clip = prepare(video, args.max_seconds, progress=_show_progress(args), crops=crops)
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

    lite_params = getattr(args, "lite_params", None)
    protocol = getattr(args, "protocol", "ours")
    return load_backend(
        args.backend,
        args.checkpoint,
        lite_params,
        args.calibration,
        args.device,
        args.dtype,
        protocol,
    )


def _thresholds_line(backend, protocol: str = "ours") -> str:
    """Where the backend's verdict thresholds come from, for a person at a terminal."""
    if getattr(backend, "calibration", None) is not None:
        return f"thresholds from the calibration {backend.calibration}"
    if backend.thresholds.clip is None:
        paper = protocol == "paper"
        return (
            f"no calibration for this {backend.name} model"
            + (" under the paper's protocol" if paper else "")
            + ", so verdicts are inconclusive: `speechforensics calibrate GENUINE_CLIPS "
            + ("--protocol paper " if paper else "")
            + "--checkpoint FILE` writes one (README: Calibrating), or pass --threshold"
        )
    return f"the built-in thresholds of {backend.name} (clip {backend.thresholds.clip:g})"


def _result_line(r: dict) -> str:
    from .report import doubt_line

    score = "too little speech" if r["score"] is None else f"score {r['score']:.3f}"
    threshold = "none" if r["threshold"] is None else f"{r['threshold']:.3f}"
    faces = len(r["tracks"])
    line = (
        f"{r['file']}: {r['verdict']} ({score}, threshold {threshold}, {r['backend']} backend); "
        f"offset {r['offset_frames']:+d} frames ({r['offset_ms']:+.0f} ms); "
        f"speech {r['speech_seconds']:.1f} s; {faces} face{'s' if faces > 1 else ''}"
    )
    if len(r["turns"]) > 1 or len(r["shots"]) > 1:
        line += f"; {len(r['shots'])} shot(s), {len(r['turns'])} turns"
    if r["decided_by"]:
        d = r["decided_by"]
        line += f"; out of agreement: face {d['face']} at {d['start_s']:.1f}-{d['end_s']:.1f} s"
    if doubt := doubt_line(r):
        line += f"; {doubt}"
    return line


def _crops(args) -> int:
    from .pipeline import prepare
    from .report import track_sheet, write_image

    clip = prepare(args.video, args.max_seconds, progress=_show_progress(args))
    write_image(track_sheet(clip.tracks, f"{args.video.name}  "), args.out)
    for track in clip.tracks:
        print(json.dumps({"file": str(args.video), **track.summary()}))
    return 0


def _show_progress(args) -> bool:
    return not args.quiet and sys.stderr.isatty()


def _download(args) -> int:
    from .avhubert.download import download

    out = download(
        args.model, args.cache, url=args.url, sha256=args.sha256, progress=_show_progress(args)
    )
    print(out)
    return 0


def _convert(args) -> int:
    from .avhubert.checkpoint import convert

    out = convert(args.checkpoint, args.out)
    print(
        f"{out} (+ {out.with_suffix('.json').name}): load it with load_checkpoint or --checkpoint"
    )
    return 0


def _add_serve(p) -> None:
    from .backends import CHECKPOINT_ENV
    from .media import MAX_SECONDS, PAPER_SECONDS

    p.add_argument("--host", default="127.0.0.1", help="address to listen on (others need --token)")
    p.add_argument("--port", type=int, default=8765, help="port to listen on")
    p.add_argument("--checkpoint", type=Path, help=f"AV-HuBERT checkpoint (or ${CHECKPOINT_ENV})")
    _add_model_options(p)
    p.add_argument(
        "--data", type=Path, help="folder for uploads and results (default: the user data folder)"
    )
    p.add_argument("--token", help="secret needed by every request ($SPEECHFORENSICS_TOKEN)")
    p.add_argument("--workers", type=_positive, default=1, help="videos checked at the same time")
    p.add_argument("--max-upload-mb", type=_positive, default=2048, help="largest upload (MiB)")
    p.add_argument(
        "--max-seconds",
        type=float,
        default=MAX_SECONDS,
        help=f"analyse at most this much (default: the whole file; the paper: {PAPER_SECONDS:g})",
    )
    p.set_defaults(run=_serve)


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of at least 1")
    return int(value)


def _serve(args) -> int:
    import os

    try:
        from . import serve
    except ImportError as e:
        raise SpeechForensicsError(
            f"speechforensics serve needs {e.name}: pip install 'speechforensics[serve]'"
        ) from e
    config = serve.ServeConfig(
        data=args.data or serve.default_data_dir(),
        host=args.host,
        port=args.port,
        token=args.token or os.environ.get(serve.TOKEN_ENV) or None,
        checkpoint=args.checkpoint,
        calibration=args.calibration,
        device=args.device,
        dtype=args.dtype,
        workers=args.workers,
        max_upload_bytes=args.max_upload_mb * 1024**2,
        max_seconds=args.max_seconds,
    )
    serve.serve(config)
    return 0


def _add_evaluate(p) -> None:

    p.add_argument(
        "list",
        type=Path,
        help="'path label' lines (1 real, 0 fake), a CSV/TSV with file and label columns, or "
        "a folder with real/ and fake/ subfolders",
    )
    p.add_argument("--root", type=Path, help="folder the list's paths start from (its own)")
    p.add_argument("--out", type=Path, required=True, help="results folder; rerun to resume")
    _add_backend_options(p)
    _add_model_options(p)
    p.add_argument("--workers", type=int, default=1, help="processes judging videos at once")
    _add_engine(p)
    p.add_argument(
        "--batch",
        type=_positive,
        help="clips per pass through avhubert, judged in this process while --workers "
        "processes prepare them (default: 8 on a GPU, else 1: each worker judges its own)",
    )
    p.add_argument("--cache", type=Path, help="preprocessing cache (default: OUT/cache)")
    p.add_argument("--category-regex", help="category = this regex's first group in the path")
    p.add_argument(
        "--trim-silence", action="store_true", help="also score without leading/trailing silence"
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--perturb", metavar="TYPE:LEVEL", type=_perturbation, help="distort every video first"
    )
    group.add_argument(
        "--robustness",
        nargs="?",
        const="video",
        choices=("video", "audio", "all"),
        help="clean and every distortion at every level (video: the paper's 35)",
    )
    _add_protocol_options(p)
    _add_clip_options(p)
    p.set_defaults(run=_evaluate)


def _perturbation(value: str) -> str:
    from .perturb import parse

    try:
        return parse(value).spec
    except SpeechForensicsError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def _evaluate(args) -> int:
    from . import evaluate, perturb
    from .lists import read_list

    items = read_list(args.list, args.root, args.category_regex)
    checkpoint = None if args.checkpoint is None else str(args.checkpoint)
    config = evaluate.EvalConfig(
        backend=args.backend,
        checkpoint=checkpoint,
        lite_params=None if args.lite_params is None else str(args.lite_params),
        threshold=args.threshold,
        max_seconds=args.max_seconds,
        trim_silence=args.trim_silence,
        perturbation=args.perturb,
        calibration=None if args.calibration is None else str(args.calibration),
        device=args.device,
        dtype=args.dtype,
        protocol=args.protocol,
        landmarks=None if args.landmarks is None else str(args.landmarks),
        rois=None if args.rois is None else str(args.rois),
    )
    if _paper_inputs(args) is not None and (args.trim_silence or args.robustness):
        raise SpeechForensicsError(
            "--protocol paper scores every frame as published: no --trim-silence, no --robustness"
        )
    common = (args.cache, max(1, args.workers), _show_progress(args), args.debug, args.batch)
    engine = _engine(args)
    if engine is not None and args.workers > 1:
        warnings.warn("--workers has no effect with --engine ray: the cluster's CPUs prepare")
    if not args.robustness:
        summary = evaluate.evaluate(
            items, args.out, config, *common, list_path=args.list, engine=engine
        )
        print(evaluate.table(summary))
        if summary.get("official_parser_keeps") is not None:
            print(evaluate.official_parser_line(summary))
        return 1 if summary["failures"] else 0
    conditions = {
        "video": perturb.all_video(),
        "audio": perturb.all_audio(),
        "all": perturb.all_video() + perturb.all_audio(),
    }[args.robustness]
    result = evaluate.robustness(items, args.out, config, conditions, *common, engine=engine)
    print(evaluate.robustness_table(result))
    return 1 if any(result["failures"].values()) else 0


def _add_calibrate(p) -> None:
    from .calibration import FALSE_ALARM

    p.description = (
        "Score genuine clips with a backend and model and write the thresholds that give its "
        "verdicts (clip, turns, segments) at a stated false-alarm rate, with bootstrap "
        "intervals; detect, evaluate and serve then find them for that model."
    )
    p.add_argument(
        "genuine",
        type=Path,
        help="a list (as evaluate reads; its real ones are used) or a folder of genuine videos "
        "(all of them, or its real/ subfolder)",
    )
    p.add_argument("--root", type=Path, help="folder the list's paths start from (its own)")
    p.add_argument(
        "--out",
        type=Path,
        help="calibration file to write (default: the cache, where detect finds it; or put "
        "it beside the model as <model file>.calibration.json, with --protocol paper "
        "<model file>.paper.calibration.json)",
    )
    _add_backend_options(p, threshold=False)
    p.add_argument(
        "--false-alarm",
        type=float,
        default=FALSE_ALARM,
        help="share of genuine clips the verdict threshold calls fake",
    )
    _add_model_options(p, calibration=False)
    p.add_argument("--workers", type=int, default=1, help="processes preparing clips at once")
    p.add_argument("--batch", type=_positive, help="clips per pass through avhubert (as evaluate)")
    p.add_argument("--cache", type=Path, help="preprocessing cache (default: beside the output)")
    _add_protocol_options(p)
    _add_clip_options(p)
    p.set_defaults(run=_calibrate)


def _calibrate(args) -> int:
    from . import calibrate, evaluate

    _paper_inputs(args)  # the folders exist; --landmarks and --rois only with the paper's
    items = calibrate.genuine_items(args.genuine, args.root)
    config = evaluate.EvalConfig(
        backend=args.backend,
        checkpoint=None if args.checkpoint is None else str(args.checkpoint),
        lite_params=None if args.lite_params is None else str(args.lite_params),
        max_seconds=args.max_seconds,
        device=args.device,
        dtype=args.dtype,
        protocol=args.protocol,
        landmarks=None if args.landmarks is None else str(args.landmarks),
        rois=None if args.rois is None else str(args.rois),
    )
    made, where = calibrate.calibrate(
        items,
        config,
        args.out,
        args.cache,
        max(1, args.workers),
        args.batch,
        args.false_alarm,
        progress=_show_progress(args),
    )
    print(calibrate.summary(made, where))
    for warning in made.warnings:
        print(f"speechforensics: warning: {warning}", file=sys.stderr)
    return 1 if made.skipped else 0


def _add_make_fakes(p) -> None:
    from .fakes import GROUPS, KINDS, WHOLE_KINDS

    p.description = (
        "Single-clip fakes of each genuine clip (the default kinds) and, when asked for, whole "
        "videos composed of several clips: turns (two people side by side taking turns), cuts "
        "(three shots), long (every clip, 2 min or more), each also -forged (one turn voiced by "
        "another clip), with <name>.truth.json beside each (who spoke when, what is forged). "
        "All are listed in OUT/fakes.tsv, which evaluate reads."
    )
    p.add_argument(
        "real",
        type=Path,
        help="folder of genuine clips (with MANIFEST.tsv: its real ones) or a list",
    )
    p.add_argument("out", type=Path, help="folder for the fakes and fakes.tsv")
    p.add_argument("--limit", type=int, help="only the first N genuine clips")
    p.add_argument(
        "--kinds",
        nargs="+",
        choices=KINDS + WHOLE_KINDS + tuple(GROUPS),
        default=list(KINDS),
        metavar="KIND",
        help=f"what to make: {', '.join(KINDS + WHOLE_KINDS)}; 'whole' = the last six",
    )
    p.set_defaults(run=_make_fakes)


def _make_fakes(args) -> int:
    from .fakes import make_fakes

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    listing, failed = make_fakes(args.real, args.out, args.limit, tuple(args.kinds), log)
    print(listing)
    return 1 if failed else 0


def _add_pretrain(p) -> None:
    p.add_argument("manifest", type=Path, help="list of videos (as evaluate reads); real ones used")
    p.add_argument("--root", type=Path, help="folder the list's relative paths start from")
    p.add_argument("--out", type=Path, required=True, help="run folder: metrics, checkpoints")
    p.add_argument(
        "--config",
        choices=("tiny", "base", "large"),
        default="base",
        help="model and training sizes: tiny (CPU, tests), base or large (default base)",
    )
    p.add_argument("--max-steps", type=int, help="updates to train for (overrides the config)")
    p.add_argument("--resume", action="store_true", help="go on from OUT/checkpoint_last.pt")
    p.add_argument(
        "--targets-from",
        type=Path,
        metavar="CHECKPOINT",
        help="next iteration: cluster this model's features (target_layer) instead of MFCCs",
    )
    p.add_argument("--cache", type=Path, help="prepared-data folder (default OUT/data)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change a TrainConfig field, e.g. --set clusters=500 --set lr=0.0005",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=_pretrain)


def _pretrain(args) -> int:
    from .pretrain import CHECKPOINT_NAME, METRICS_NAME, run

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    overrides = list(args.set) + ([f"max_steps={args.max_steps}"] if args.max_steps else [])
    _, errors = run(
        args.manifest,
        args.out,
        args.config,
        root=args.root,
        cache=args.cache,
        overrides=tuple(overrides),
        resume=args.resume,
        targets_from=args.targets_from,
        progress=_show_progress(args),
        report=log,
    )
    print(
        json.dumps(
            {"checkpoint": str(args.out / CHECKPOINT_NAME), "metrics": str(args.out / METRICS_NAME)}
        )
    )
    return 1 if errors else 0


COMMANDS = {  # name -> (one-line help, the function that adds its arguments)
    "detect": ("judge videos: do the lips match the voice?", _add_detect),
    "download": ("fetch an official pre-trained checkpoint into the cache", _add_download),
    "crops": ("save a contact sheet of a video's mouth crops (PNG)", _add_crops),
    "inspect": ("describe an AV-HuBERT checkpoint and check that it loads", _add_inspect),
    "convert": ("convert a checkpoint to safetensors (safe, fast to load)", _add_convert),
    "serve": ("a web page on this machine to check videos in a browser", _add_serve),
    "fit-lite": (
        "fit the lipsync-lite backend on genuine clips (no forgery is used)",
        _add_fit_lite,
    ),
    "evaluate": ("score a labelled list of videos: AUC, AP, EER, ...", _add_evaluate),
    "calibrate": (
        "set a backend's verdict thresholds for a checkpoint from genuine clips",
        _add_calibrate,
    ),
    "make-fakes": ("write dubbed, shifted and spliced copies of real clips", _add_make_fakes),
    "pretrain": (
        "self-supervised AV-HuBERT pretraining on genuine videos (torchrun for many GPUs)",
        _add_pretrain,
    ),
}
