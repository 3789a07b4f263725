"""Detection and localisation metrics, in numpy (checked against scikit-learn in the tests).

Labels follow the paper: 1 = real, 0 = fake, and a higher score means more likely real. The
positives are the fakes (what a detector looks for): a video is called fake when its score is
below the threshold, TPR is the share of fakes called fake and FPR the share of real videos
called fake. AUC and EER do not depend on which class is called positive.

Localisation follows the temporal-forgery convention (LAV-DF, AV-Deepfake1M): predicted
segments with a confidence are matched one-to-one to true segments by temporal IoU; AP at an IoU
threshold over all videos, and AR@N (the N most confident segments per video) averaged over IoU
0.5, 0.55, ..., 0.95.
"""

import numpy as np

FPR_POINTS = (0.01, 0.05)  # TPR is reported at these false-positive rates
CONFIDENCE = 0.95  # of the bootstrap interval of the AUC
BOOTSTRAP_SAMPLES = 1000
BOOTSTRAP_SEED = 0
AP_IOUS = (0.5, 0.75)
AR_IOUS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))  # 0.5 ... 0.95
AR_COUNTS = (1, 5, 10)


def _arrays(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    labels, scores = np.asarray(labels, int), np.asarray(scores, float)
    if labels.shape != scores.shape or labels.ndim != 1:
        raise ValueError(
            f"labels {labels.shape} and scores {scores.shape}: two 1-D lists of one size"
        )
    if not np.isin(labels, (0, 1)).all() or not np.isfinite(scores).all():
        raise ValueError("labels must be 1 (real) or 0 (fake) and scores finite numbers")
    return labels, scores


def auc(labels, scores) -> float:
    """Area under the ROC curve: the chance that a real video scores above a fake one (ties
    count half), from average ranks (Mann-Whitney)."""
    labels, scores = _arrays(labels, scores)
    real = labels == 1
    n_real, n_fake = int(real.sum()), int((~real).sum())
    ranks = _average_ranks(scores)
    return float((ranks[real].sum() - n_real * (n_real + 1) / 2) / (n_real * n_fake))


def auc_real_fake(real, fake) -> float:
    """``auc`` of two lists of scores: genuine videos' and forgeries'."""
    return auc([1] * len(real) + [0] * len(fake), [*real, *fake])


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their mean rank."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]
    mean_rank = (starts + ends + 1) / 2  # mean of the 1-based ranks start+1 ... end
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def roc(labels, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds): calling fake every video scoring at or below each threshold, from
    the lowest score up, after the point (0, 0)."""
    labels, scores = _arrays(labels, scores)
    order = np.argsort(scores, kind="mergesort")
    s, fake = scores[order], labels[order] == 0
    last = np.r_[s[1:] != s[:-1], True]  # the last video of each run of equal scores
    tp, fp = np.cumsum(fake)[last], np.cumsum(~fake)[last]
    tpr = np.r_[0.0, tp / max(fake.sum(), 1)]
    fpr = np.r_[0.0, fp / max((~fake).sum(), 1)]
    return fpr, tpr, np.r_[-np.inf, s[last]]


def average_precision(labels, scores) -> float:
    """AP of finding the fakes, lowest scores first: sum over thresholds of the recall gained
    times the precision there (scikit-learn's definition, no interpolation)."""
    labels, scores = _arrays(labels, scores)
    fpr, tpr, _ = roc(labels, scores)
    n_fake, n_real = int((labels == 0).sum()), int((labels == 1).sum())
    tp, fp = tpr[1:] * n_fake, fpr[1:] * n_real
    precision = tp / np.maximum(tp + fp, 1)
    return float(np.sum(np.diff(tpr) * precision))


def eer(labels, scores) -> float:
    """Equal error rate: where the share of real videos called fake equals the share of fakes
    called real, on the ROC curve joined by straight lines."""
    fpr, tpr, _ = roc(labels, scores)
    gap = (1 - tpr) - fpr  # falls from 1 to -1
    i = int(np.flatnonzero(gap <= 0)[0])
    alpha = gap[i - 1] / (gap[i - 1] - gap[i])
    return float(fpr[i - 1] + alpha * (fpr[i] - fpr[i - 1]))


def tpr_at_fpr(labels, scores, fpr_max: float) -> float:
    """The largest share of fakes caught while at most `fpr_max` of real videos are called fake."""
    fpr, tpr, _ = roc(labels, scores)
    return float(tpr[fpr <= fpr_max + 1e-12].max())


def auc_interval(labels, scores, samples=BOOTSTRAP_SAMPLES, seed=BOOTSTRAP_SEED) -> list[float]:
    """Bootstrap CONFIDENCE interval of the AUC: real and fake videos resampled separately
    (each resample keeps both classes), percentiles of the resampled AUCs."""
    labels, scores = _arrays(labels, scores)
    rng = np.random.default_rng(seed)
    real, fake = scores[labels == 1], scores[labels == 0]
    both = np.r_[np.ones(len(real), int), np.zeros(len(fake), int)]
    aucs = [
        auc(both, np.r_[rng.choice(real, len(real)), rng.choice(fake, len(fake))])
        for _ in range(samples)
    ]
    tail = (1 - CONFIDENCE) / 2 * 100
    return [float(v) for v in np.percentile(aucs, [tail, 100 - tail])]


def quantile_interval(
    scores, q: float, samples=BOOTSTRAP_SAMPLES, seed=BOOTSTRAP_SEED
) -> list[float]:
    """Bootstrap CONFIDENCE interval of the `q` quantile of `scores` (resampled with
    replacement, percentiles of the resampled quantiles): how far a threshold set at that
    quantile could move with another sample of the same size."""
    scores = np.asarray(scores, dtype=np.float64)
    rng = np.random.default_rng(seed)
    resampled = np.quantile(rng.choice(scores, (samples, len(scores))), q, axis=1)
    tail = (1 - CONFIDENCE) / 2 * 100
    return [float(v) for v in np.percentile(resampled, [tail, 100 - tail])]


def detection(labels, scores, threshold: float | None) -> dict:
    """Every detection metric for one set of scores; None where a class is missing."""
    labels, scores = _arrays(labels, scores)
    n_real, n_fake = int((labels == 1).sum()), int((labels == 0).sum())
    out = {"n_real": n_real, "n_fake": n_fake}
    called_fake = None if threshold is None or not len(labels) else scores < threshold
    out["accuracy"] = None if called_fake is None else float(np.mean(called_fake == (labels == 0)))
    out["tpr"] = (
        None if called_fake is None or not n_fake else float(called_fake[labels == 0].mean())
    )
    out["fpr"] = (
        None if called_fake is None or not n_real else float(called_fake[labels == 1].mean())
    )
    both = n_real > 0 and n_fake > 0
    out["auc"] = auc(labels, scores) if both else None
    out["auc_ci"] = auc_interval(labels, scores) if both else None
    out["ap"] = average_precision(labels, scores) if both else None
    out["eer"] = eer(labels, scores) if both else None
    for point in FPR_POINTS:
        out[f"tpr_at_{point * 100:g}fpr"] = tpr_at_fpr(labels, scores, point) if both else None
    return out


def iou(a, b) -> float:
    """Temporal intersection over union of two (start, end) segments."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def _match(truth: list, predicted: list, threshold: float) -> np.ndarray:
    """[len(predicted)] bool: each prediction (most confident first) takes the unmatched true
    segment it overlaps most, if their IoU reaches `threshold`."""
    free, hits = list(truth), np.zeros(len(predicted), bool)
    for i, (start, end, _) in enumerate(predicted):
        overlaps = [iou((start, end), t) for t in free]
        if overlaps and max(overlaps) >= threshold:
            free.pop(int(np.argmax(overlaps)))
            hits[i] = True
    return hits


def _ranked(predicted: list) -> list:
    return sorted(predicted, key=lambda p: -p[2])


def localisation_ap(truths: list[list], predictions: list[list], threshold: float) -> float:
    """AP at one IoU threshold. `truths[v]`: (start, end) segments of video v; `predictions[v]`:
    (start, end, confidence). Predictions of all videos are ranked together by confidence;
    precision is made non-increasing (the envelope, as COCO / ActivityNet) before integrating."""
    n_true = sum(len(t) for t in truths)
    ranked = []
    for truth, predicted in zip(truths, predictions, strict=True):
        predicted = _ranked(predicted)
        hits = _match(truth, predicted, threshold)
        ranked += [(p[2], bool(h)) for p, h in zip(predicted, hits, strict=True)]
    if not n_true or not ranked:
        return 0.0
    ranked.sort(key=lambda r: -r[0])
    hits = np.array([h for _, h in ranked])
    tp = np.cumsum(hits)
    precision = tp / np.arange(1, len(hits) + 1)
    recall = tp / n_true
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * envelope))


def localisation_ar(truths: list[list], predictions: list[list], count: int) -> float:
    """AR@count: the share of true segments found by each video's `count` most confident
    predictions, averaged over the IoU thresholds AR_IOUS."""
    n_true = sum(len(t) for t in truths)
    if not n_true:
        return 0.0
    recalls = []
    for threshold in AR_IOUS:
        found = sum(
            int(_match(t, _ranked(p)[:count], threshold).sum())
            for t, p in zip(truths, predictions, strict=True)
        )
        recalls.append(found / n_true)
    return float(np.mean(recalls))


def localisation(truths: list[list], predictions: list[list]) -> dict:
    out = {f"ap@{t}": localisation_ap(truths, predictions, t) for t in AP_IOUS}
    return out | {f"ar@{n}": localisation_ar(truths, predictions, n) for n in AR_COUNTS}


def of_reports(records: list[dict], truths: dict) -> dict:
    """Localisation metrics of detect reports (`segments`, `timeline`, `threshold`, plus `file`
    and `label`) against `truths` (file -> true segments), on the real videos (no true segment)
    and the fakes whose segments are known (a whole-clip dub has no place in a temporal
    measure)."""
    used = [r for r in records if r["label"] == 1 or truths.get(r["file"])]
    gold = [list(truths.get(r["file"], ())) for r in used]
    predicted = [_confident_segments(r) for r in used]
    return {"n": len(used), "n_segments": sum(map(len, gold))} | localisation(gold, predicted)


def _confident_segments(record: dict) -> list[tuple[float, float, float]]:
    """detect's segments with a confidence: how far below the threshold the timeline windows
    centred in them score on average."""
    out = []
    for start, end in record["segments"] or []:
        inside = [
            w["score"]
            for w in record["timeline"]
            if w["score"] is not None and start <= (w["start_s"] + w["end_s"]) / 2 < end
        ]
        depth = record["threshold"] - float(np.mean(inside)) if inside else 0.0
        out.append((start, end, depth))
    return out
