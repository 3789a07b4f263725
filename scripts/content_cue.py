"""Does a phoneme-viseme content cue see the real forgeries that lipsync-lite's timing cannot?

Phones come from the audio by pocketsphinx's English phone decoder (its acoustic model and phone
language model ship inside its wheel: `pip install pocketsphinx`); the lips from our landmarks.
Two cues, both fitted on genuine clips only, measured on every clip of a list (real vs fake AUC
with a bootstrap 95 % interval, overall and by kind):

- closure: where the voice says /p b m/ the lips must close. Per clip, the median over those
  phones of the smallest inner-lip gap during the phone (+-1 frame), on a 0-1 scale between the
  clip's 5th and 95th percentile of speech-time gaps. Lower = closes as it should: the score is
  its negative, so genuine should score high.
- shape: a linear map, fitted by ridge regression on genuine clips, from the phones (one-hot,
  +-2 frames) to the 16 standardised lip measures of lite.py; the clip is scored like
  lipsync-lite (cosine of predicted and seen lip shapes near zero offset against far offsets).
  Genuine clips are scored by maps fitted on the other folds, forgeries by the map of all.

    python scripts/content_cue.py ../shared/media/dev/MANIFEST.tsv

The result on the dev clips is in the README (lipsync-lite): neither cue is kept.
"""

import argparse
import os
from pathlib import Path

import numpy as np

from speechforensics import lite, metrics, scoring
from speechforensics.backends import LITE_SEARCH
from speechforensics.errors import SpeechForensicsError
from speechforensics.lists import read_list
from speechforensics.mouth import interpolate_landmarks
from speechforensics.pipeline import prepare

BILABIALS = ("P", "B", "M")
PHONE_FRAMES_PER_VIDEO_FRAME = 4  # pocketsphinx: 100 frames a second; video: 25
MIN_PHONE_FRAMES = 3  # shorter phones (under 30 ms) are too uncertain to use
PHONE_CONTEXT = 2  # video frames either side for the shape map
RIDGE = 1.0
FOLDS = 5


def phone_decoder():
    try:
        import pocketsphinx
    except ImportError as e:
        raise SystemExit("this measurement needs pocketsphinx: pip install pocketsphinx") from e
    model = Path(pocketsphinx.__file__).parent / "model"
    return pocketsphinx.Decoder(
        hmm=str(model / "en-us/en-us"),
        allphone=str(model / "en-us-phone.lm.bin"),
        lw=2.0,
        beam=1e-20,
        pbeam=1e-20,
        loglevel="FATAL",
    )


def phones(decoder, audio: np.ndarray) -> list[tuple[str, int, int]]:
    """(phone, first, last) in 10 ms frames."""
    decoder.start_utt()
    decoder.process_raw((np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes(), full_utt=True)
    decoder.end_utt()
    return [(s.word, s.start_frame, s.end_frame) for s in decoder.seg()]


def closure(gap: np.ndarray, speech: np.ndarray, segs) -> float | None:
    low, high = np.percentile(gap[speech] if speech.sum() > 10 else gap, [5, 95])
    scaled = (gap - low) / max(high - low, 1e-6)
    mins = []
    for phone, first, last in segs:
        if phone in BILABIALS and last - first + 1 >= MIN_PHONE_FRAMES:
            a = max(first // PHONE_FRAMES_PER_VIDEO_FRAME - 1, 0)
            b = min(-(-(last + 1) // PHONE_FRAMES_PER_VIDEO_FRAME) + 1, len(gap))
            mins.append(scaled[a:b].min())
    return -float(np.median(mins)) if mins else None


def one_hot(segs, frames: int, inventory: list[str]) -> np.ndarray:
    per_phone = np.full(frames * PHONE_FRAMES_PER_VIDEO_FRAME, inventory.index("SIL"))
    for phone, first, last in segs:
        per_phone[first : last + 1] = inventory.index(phone)
    per_phone = per_phone[: frames * PHONE_FRAMES_PER_VIDEO_FRAME].reshape(frames, -1)
    out = np.zeros((frames, len(inventory)))
    for column in per_phone.T:
        out[np.arange(frames), column] += 1 / PHONE_FRAMES_PER_VIDEO_FRAME
    return lite.with_context(out, PHONE_CONTEXT)


def shape_score(clip: dict, ridge_map: np.ndarray) -> float | None:
    predicted = clip["phones"] @ ridge_map
    matrix = scoring.sync_matrix(clip["lips"], predicted, LITE_SEARCH.max_shift, np.nan)
    matrix = scoring.relative(matrix, LITE_SEARCH.baseline_from)
    return scoring.gated_score(matrix, clip["speech"], LITE_SEARCH.score_shift)


def fit_map(clips: list[dict]) -> np.ndarray:
    x = np.concatenate([c["phones"][c["speech"]] for c in clips])
    y = np.concatenate([c["lips"][c["speech"]] for c in clips])
    return np.linalg.solve(x.T @ x + RIDGE * np.eye(x.shape[1]), x.T @ y)


def measure(items) -> list[dict]:
    decoder, clips = phone_decoder(), []
    for item in items:
        try:
            clip = prepare(item.path, crops=False)
        except SpeechForensicsError as e:
            print(f"skipped: {e}")
            continue
        track = clip.tracks[0]
        lips = lite.lip_measures(interpolate_landmarks(track.face.landmarks))
        speech = scoring.speech_frames(clip.audio) & ~track.missing
        segs = phones(decoder, clip.audio)
        clips.append(
            {"item": item, "segs": segs, "speech": speech, "closure": None,
             "lips": lite.standardise(lips, ~track.missing), "raw_gap": lips[:, :3].mean(1)}
        )  # fmt: skip
        clips[-1]["closure"] = closure(clips[-1]["raw_gap"], speech, segs)
    inventory = sorted({p for c in clips for p, _, _ in c["segs"]} | {"SIL"})
    for c in clips:
        c["phones"] = one_hot(c["segs"], len(c["lips"]), inventory)
    return clips


def score_shapes(clips: list[dict]) -> None:
    genuine = [c for c in clips if c["item"].label == 1]
    for k in range(FOLDS):
        held = genuine[k::FOLDS]
        ridge_map = fit_map([c for c in genuine if all(c is not h for h in held)])
        for c in held:
            c["shape"] = shape_score(c, ridge_map)
    ridge_map = fit_map(genuine)
    for c in clips:
        if c["item"].label == 0:
            c["shape"] = shape_score(c, ridge_map)


def report(clips: list[dict], cue: str) -> None:
    scored = [c for c in clips if c[cue] is not None]
    groups = {"all": scored} | {
        kind: [c for c in scored if c["item"].label == 1 or c["item"].category == kind]
        for kind in sorted({c["item"].category for c in scored if c["item"].label == 0})
    }
    for name, group in groups.items():
        labels = [c["item"].label for c in group]
        scores = [c[cue] for c in group]
        low, high = metrics.auc_interval(labels, scores)
        fakes = labels.count(0)
        auc = metrics.auc(labels, scores)
        print(f"| {cue} | {name} | {fakes} | {auc:.3f} | {low:.2f}-{high:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("list", type=Path, help="videos with labels (formats of evaluate)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    clips = measure(read_list(args.list))
    score_shapes(clips)
    print("| cue | fakes | n fakes | AUC real vs fake | bootstrap 95 % |")
    print("|---|---|---|---|---|")
    for cue in ("closure", "shape"):
        report(clips, cue)


if __name__ == "__main__":
    main()
