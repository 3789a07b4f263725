"""What a person looks at: contact sheets of mouth crops (JSON and HTML reports come later)."""

from pathlib import Path

import cv2
import numpy as np

from .errors import SpeechForensicsError
from .features import VIDEO_FPS

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


def write_image(image: np.ndarray, path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise SpeechForensicsError(f"{path}: write the contact sheet as .png or .jpg")
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise SpeechForensicsError(f"{path}: could not write the image (check the folder)")
    return path
