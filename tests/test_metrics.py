"""metrics.py against scikit-learn on fixed scores; localisation on hand-checked segments."""

import numpy as np
import pytest
from scipy.interpolate import interp1d
from scipy.optimize import brentq
from sklearn import metrics as sk

from speechforensics import metrics

RNG = np.random.default_rng(1234)
# Fixed score sets: separable-ish, overlapping with ties, and small.
CASES = {
    "overlap": (
        np.r_[np.ones(60, int), np.zeros(40, int)],
        np.r_[RNG.normal(0.4, 0.15, 60), RNG.normal(0.2, 0.15, 40)],
    ),
    "ties": (
        np.array([1, 1, 1, 0, 0, 1, 0, 0, 1, 0, 1, 0]),
        np.array([0.3, 0.3, 0.1, 0.1, 0.2, 0.5, 0.3, 0.0, 0.2, 0.2, 0.4, 0.1]),
    ),
    "small": (np.array([1, 0, 1, 0, 1]), np.array([0.9, 0.1, 0.35, 0.4, 0.8])),
}


@pytest.mark.parametrize("case", CASES)
def test_auc_ap_match_sklearn(case):
    labels, scores = CASES[case]
    assert metrics.auc(labels, scores) == pytest.approx(sk.roc_auc_score(labels, scores))
    # positives are the fakes, found by low scores
    expected_ap = sk.average_precision_score(1 - labels, -scores)
    assert metrics.average_precision(labels, scores) == pytest.approx(expected_ap)


@pytest.mark.parametrize("case", CASES)
def test_roc_tpr_at_fpr_and_eer_match_sklearn(case):
    labels, scores = CASES[case]
    fpr, tpr, _ = sk.roc_curve(1 - labels, -scores, drop_intermediate=False)
    ours_fpr, ours_tpr, _ = metrics.roc(labels, scores)
    np.testing.assert_allclose(ours_fpr, fpr)
    np.testing.assert_allclose(ours_tpr, tpr)
    for point in (0.01, 0.05, 0.2):
        expected = tpr[fpr <= point].max()
        assert metrics.tpr_at_fpr(labels, scores, point) == pytest.approx(expected)
    fpr_u, keep = np.unique(fpr, return_index=True)  # the usual brentq recipe needs unique x
    top = np.maximum.reduceat(tpr, keep)
    lower = brentq(lambda x: 1 - x - interp1d(fpr_u, top)(x), 0, 1)
    bottom = np.minimum.reduceat(tpr, keep)
    upper = brentq(lambda x: 1 - x - interp1d(fpr_u, bottom)(x), 0, 1)
    assert min(lower, upper) - 1e-9 <= metrics.eer(labels, scores) <= max(lower, upper) + 1e-9


def test_eer_of_separable_and_reversed_scores():
    labels = np.array([1, 1, 0, 0])
    assert metrics.eer(labels, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert metrics.eer(labels, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert metrics.auc(labels, np.array([0.1, 0.2, 0.8, 0.9])) == 0.0


def test_detection_at_threshold_and_interval():
    labels, scores = CASES["overlap"]
    out = metrics.detection(labels, scores, threshold=0.3)
    called_fake = scores < 0.3
    assert out["accuracy"] == pytest.approx(sk.accuracy_score(1 - labels, called_fake))
    assert out["tpr"] == pytest.approx(sk.recall_score(1 - labels, called_fake))
    assert out["n_real"] == 60 and out["n_fake"] == 40
    low, high = out["auc_ci"]
    assert low < out["auc"] < high and high - low < 0.25
    assert metrics.auc_interval(labels, scores) == out["auc_ci"]  # seeded: repeatable
    one_class = metrics.detection(labels[:60], scores[:60], threshold=0.3)
    assert one_class["auc"] is None and one_class["accuracy"] is not None


def test_iou():
    assert metrics.iou((0, 2), (1, 3)) == pytest.approx(1 / 3)
    assert metrics.iou((0, 1), (2, 3)) == 0.0
    assert metrics.iou((1, 2), (1, 2)) == 1.0


def test_localisation_ap_and_ar():
    truths = [[(2.0, 4.0)], [(1.0, 3.0)], []]
    predictions = [
        [(2.1, 4.1, 0.9), (6.0, 7.0, 0.5)],  # a hit (IoU 0.905), then a false alarm
        [(1.0, 1.8, 0.7)],  # IoU 0.4: a miss at 0.5
        [(0.0, 1.0, 0.8)],  # a false alarm on a real video
    ]
    # ranked: 0.9 hit, 0.8 fa, 0.7 miss, 0.5 fa; recall 1/2 reached at precision 1
    assert metrics.localisation_ap(truths, predictions, 0.5) == pytest.approx(0.5)
    assert metrics.localisation_ap(truths, predictions, 0.95) == 0.0
    # AR@1 over IoU 0.5..0.95: the first video's segment counts at the 9 thresholds <= 0.905
    assert metrics.localisation_ar(truths, predictions, 1) == pytest.approx(9 / 10 / 2)
    assert metrics.localisation([[]], [[]])["ap@0.5"] == 0.0


def test_localisation_of_reports_uses_timeline_depth():
    timeline = [
        {"start_s": 0.0, "end_s": 1.0, "score": 0.5},
        {"start_s": 1.0, "end_s": 2.0, "score": 0.0},
        {"start_s": 2.0, "end_s": 3.0, "score": -0.2},
    ]
    record = {"file": "a", "label": 0, "threshold": 0.2, "timeline": timeline}
    records = [record | {"segments": [[1.0, 3.0]]}, record | {"file": "b", "segments": []}]
    out = metrics.of_reports(records, {"a": ((1.0, 3.0),)})
    assert out["n"] == 1 and out["n_segments"] == 1  # b: a fake without known segments
    assert out["ap@0.5"] == 1.0 and out["ar@1"] == 1.0
