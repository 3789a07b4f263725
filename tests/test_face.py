"""Faces, tracks and 68-point landmarks on real dev clips (skipped where ../shared is absent)."""

import inspect
from dataclasses import fields
from itertools import islice

import av
import cv2
import numpy as np
import pytest
from conftest import SHARED, need

from speechforensics import face, media
from speechforensics.errors import SpeechForensicsError
from speechforensics.face import FaceConfig, FaceTrack, box_from_landmarks, track_faces
from speechforensics.shots import CutDetector

DEV = SHARED / "media/dev"
REFERENCE = SHARED / "reference/preprocessing/mouth_crop_reference.npz"


def frames_of(name: str, limit: int | None = None) -> list[np.ndarray]:
    """RGB frames of a dev clip, decoded with PyAV (the first `limit` only, when given)."""
    with av.open(str(need(DEV / name))) as container:
        decoded = container.decode(video=0)
        return [f.to_ndarray(format="rgb24") for f in islice(decoded, limit)]


def mean_side(track: FaceTrack) -> float:
    x0, _, x1, _ = track.mean_box
    return x1 - x0


@pytest.mark.parametrize(
    "clip", ["lrs2_deepavsr_00016.mp4", "grid_lbax4n.mpg", "pcavs_Pose_00067.mp4"]
)
def test_main_track_agrees_with_reference_landmarks(clip):
    # Reference: dlib's predictor on the HOG box of every frame (the original SpeechForensics
    # preprocessing); ours: the same predictor on tracked boxes, HOG now and then.
    with np.load(need(REFERENCE)) as npz:
        reference = npz[clip.rsplit(".", 1)[0] + "__landmarks"]
    frames = frames_of(clip)
    tracks = track_faces(frames)
    assert len(tracks) == 1
    main = tracks[0]
    assert main.landmarks.shape == (len(frames), 68, 2) == reference.shape
    has_reference = ~np.isnan(reference).any(axis=(1, 2))
    assert main.detected[has_reference].all()
    error = np.linalg.norm(main.landmarks - reference, axis=-1)[has_reference]  # [F, 68] px
    per_frame = error.mean(axis=1)
    # Measured: per-frame mean error 0.5-0.8 px median, at most 2.3 px (faces 90-135 px wide).
    assert np.median(per_frame) < 1.2
    assert np.percentile(per_frame, 95) < 2.0
    assert np.median(error[:, 48:68]) <= 1.0  # the mouth, which the crops are cut around


def test_box_from_landmarks_matches_the_hog_box():
    frames = frames_of("grid_lbax4n.mpg")
    config = FaceConfig()
    ious = []
    for frame in frames[::5]:
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        [(box, _)] = face.detect_faces(gray, config)
        ious.append(face._iou(box, box_from_landmarks(face.predict_landmarks(gray, box))))
    assert np.median(ious) > 0.75


def test_portrait_clip_small_face_found_on_most_frames():
    frames = frames_of("latentsync_demo2_video.mp4", 100)  # 1080x1920, face ~270 px
    assert frames[0].shape == (1920, 1080, 3)
    tracks = track_faces(frames)
    assert len(tracks) == 1
    assert tracks[0].frames >= 95
    x0, _, x1, y1 = tracks[0].mean_box
    assert 200 < x1 - x0 < 350 and y1 < 960  # head in the upper half of the frame


def test_small_lrs2_and_offcentre_720p_faces():
    for clip, max_side in [("lrs2_deepavsr_00001.mp4", 120), ("hyperlips_video2_video2.mp4", 200)]:
        frames = frames_of(clip, 60)
        tracks = track_faces(frames)
        assert len(tracks) == 1, clip
        assert tracks[0].frames == 60, clip
        assert 60 < mean_side(tracks[0]) < max_side, clip


def test_vasa_inset_is_not_seen_by_hog():
    # VASA-1 clips show the source still as an inset at the lower left, cut off by the frame's
    # bottom edge (about 50 px); HOG finds it on none of the dev clips' frames, even upsampled.
    # A second detector would give it a track of its own: then expect 2 tracks here.
    frames = frames_of("vexpress_vasa_1_11.mp4", 100)
    tracks = track_faces(frames)
    assert len(tracks) == 1
    x0, y0, x1, _ = tracks[0].mean_box
    assert x1 - x0 > 200 and y0 < 256  # the talking face, not the inset


def test_two_faces_side_by_side_get_one_track_each():
    left = frames_of("pcavs_Pose_00067.mp4", 60)
    right = frames_of("pcavs_Audio_00104.mp4", 60)
    tracks = track_faces(np.concatenate([a, b], axis=1) for a, b in zip(left, right))
    assert len(tracks) == 2
    assert all(k.frames == 60 for k in tracks)
    centres = sorted((k.mean_box[0] + k.mean_box[2]) / 2 for k in tracks)
    assert centres[0] < 224 < centres[1]


def test_a_face_too_small_for_the_first_search_is_found_by_the_small_face_search():
    # The portrait clip shrunk to a 202x360 panel beside a full-size face (a two-person layout):
    # its face is ~55 px, under what HOG finds at the first search's size.
    small = [cv2.resize(f, (202, 360), interpolation=cv2.INTER_AREA)
             for f in frames_of("latentsync_demo2_video.mp4", 60)]  # fmt: skip
    big = frames_of("grid_lbax4n.mpg", 60)  # 360x288, padded to 360 rows
    frames = [np.concatenate([a, np.pad(b, ((0, 72), (0, 0), (0, 0)))], axis=1)
              for a, b in zip(small, big)]  # fmt: skip
    gray = cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY)
    config = FaceConfig()
    assert len(face.detect_faces(gray, config)) == 1
    assert len(face.detect_faces(gray, config, small=True)) == 2
    found = track_faces(frames)
    assert len(found) == 2 and all(k.frames >= 55 for k in found)
    assert min(mean_side(k) for k in found) < 80
    assert len(track_faces(frames, FaceConfig(small_faces_every=0))) == 1


def test_flat_grey_frames_give_no_tracks():
    frames = (np.full((240, 320, 3), 128, np.uint8) for _ in range(40))
    assert track_faces(frames) == []


def test_face_leaving_the_frame_ends_its_measurement_and_the_gap_is_reported():
    # No dev clip loses its face (the tracker measures the main face on every frame of all
    # 51), so the face is made to leave: from frame 50 the picture pans right 12 px a frame,
    # the face is gone by frame 65, and at frame 70 the clip cuts back to the face.
    frames = frames_of("pcavs_Pose_00067.mp4", 100)

    def panned(image, dx):
        out = np.full_like(image, 128)
        out[:, dx:] = image[:, : image.shape[1] - dx] if dx < image.shape[1] else 128
        return out

    clip = frames[:50] + [panned(frames[t], 12 * (t - 49)) for t in range(50, 70)] + frames[70:]
    tracks = track_faces(clip)
    assert len(tracks) == 1  # the face that comes back in the same place is the same track
    main = tracks[0]
    assert main.detected[:50].all() and main.detected[70:].all()
    assert not main.detected[60:70].any()
    [(start, stop)] = main.gaps()
    assert 50 <= start <= 60 and stop == 70
    inner = main.landmarks[main.detected][:, 27:68]  # nose, eyes, lips stay inside the frame
    assert (inner >= 0).all() and (inner < 224).all()


@pytest.mark.parametrize(
    "first, second",
    [
        ("grid_lbax4n.mpg", "grid_lrwp9a.mpg"),  # 360x288, one studio, the face in one place
        ("lrs2_deepavsr_00001.mp4", "lrs2_deepavsr_00004.mp4"),  # 160x160 face crops
    ],
)
def test_two_people_in_the_same_place_across_a_cut_get_a_track_each(tmp_path, first, second):
    # The cut comes at frame 40, between two full detections (0, 25, 50, ...).
    path = media.write_clip(tmp_path / "joined.mp4", frames_of(first, 40) + frames_of(second, 40))
    a, b = (track_faces(frames_of(n, 40)) for n in (first, second))
    iou = face._iou(np.array(a[0].mean_box), np.array(b[0].mean_box))
    assert iou > 0.4  # the second face takes the first one's place
    detector = CutDetector()
    tracks = track_faces(detector.feed(media.read_frames(path)), cuts=detector.cuts)
    assert detector.cuts == [40]
    assert len(tracks) == 2
    one, two = sorted(tracks, key=lambda k: k.first_frame)
    assert (one.shot, two.shot) == ((0, 40), (40, 80))
    assert one.detected[:40].all() and not one.detected[40:].any()
    assert two.detected[40:].all() and not two.detected[:40].any()

    # Without the cut the face's appearance still tells the two apart at the next detection
    # (frame 50): the first track keeps what the detection at 25 confirmed, the rest of the
    # first shot is dropped, and a new track starts at 50.
    tracks = track_faces(media.read_frames(path))
    assert len(tracks) == 2
    one, two = sorted(tracks, key=lambda k: k.first_frame)
    assert one.detected[:26].all() and not one.detected[26:].any()
    assert two.first_frame == 50 and two.detected[50:].all()
    assert one.shot == two.shot == (0, 80)
    # With neither, one track runs on from one person to the other.
    [track] = track_faces(media.read_frames(path), FaceConfig(identity_distance=float("inf")))
    assert track.detected.all()


def test_one_person_across_a_cut_gets_a_track_per_shot():
    frames = frames_of("pcavs_Pose_00067.mp4", 100)
    tracks = track_faces(frames, cuts={60})  # a list of cuts found beforehand
    assert [(k.shot, k.frames) for k in sorted(tracks, key=lambda k: k.id)] == [
        ((0, 60), 60),
        ((60, 100), 40),
    ]


def test_appearance_tells_people_apart_cheaply_or_by_embedding():
    shot = {}
    for name in ["grid_lbax4n.mpg", "grid_lrwp9a.mpg"]:
        frames = frames_of(name, 26)
        [track] = track_faces(frames)
        shot[name] = [
            face.Appearance(face.face_chip(frames[t], track.landmarks[t])) for t in (0, 25)
        ]
    a0, a25 = shot["grid_lbax4n.mpg"]
    b0, _ = shot["grid_lrwp9a.mpg"]
    assert a0.looks_like(a25) and not a0.looks_like(b0)
    assert a0._embedding is None  # computed only when asked for
    assert a0.embedding.shape == (128,)
    assert np.linalg.norm(a0.embedding - a25.embedding) < 0.5
    assert np.linalg.norm(a0.embedding - b0.embedding) > FaceConfig.identity_distance


def test_gaps_and_summary():
    detected = np.zeros(60, bool)
    detected[5:20] = detected[25:30] = detected[44:46] = True
    landmarks = np.full((60, 68, 2), np.nan)
    landmarks[detected] = np.random.default_rng(0).uniform(10, 50, (detected.sum(), 68, 2))
    track = FaceTrack(7, landmarks, detected, max_gap_frames=4)
    # [0, 5) at the start, [20, 25) between, [30, 44) between, [46, 60) at the end
    assert track.gaps() == [(0, 5), (20, 25), (30, 44), (46, 60)]
    assert FaceTrack(7, landmarks, detected, max_gap_frames=5).gaps() == [(30, 44), (46, 60)]
    assert track.gaps(13) == [(30, 44), (46, 60)]
    summary = track.summary()
    assert summary["id"] == 7 and summary["frames_measured"] == 22 and summary["total_frames"] == 60
    assert (summary["first_frame"], summary["last_frame"]) == (5, 45)
    assert summary["size_px"] > 0 and len(summary["centre_px"]) == 2


def test_progress_and_bad_frames():
    calls = []
    track_faces((np.zeros((32, 32, 3), np.uint8) for _ in range(3)), progress=calls.append)
    assert calls == [1, 1, 1]
    with pytest.raises(SpeechForensicsError, match="uint8 RGB"):
        track_faces([np.zeros((32, 32), np.uint8)])
    with pytest.raises(SpeechForensicsError, match="one frame size"):
        track_faces([np.zeros((32, 32, 3), np.uint8), np.zeros((32, 48, 3), np.uint8)])


def test_every_config_field_is_read():
    source = inspect.getsource(face)
    for f in fields(FaceConfig):
        assert f"config.{f.name}" in source, f.name
