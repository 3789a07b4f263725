"""pretrain_config.py: every TrainConfig field is read by the training code; overrides are typed
and unknown keys refused."""

import dataclasses
import re
from pathlib import Path

import pytest

from speechforensics import pretrain, pretrain_config, pretrain_data
from speechforensics.errors import SpeechForensicsError


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(pretrain_config.TrainConfig)])
def test_every_train_config_field_is_read(field):
    source = "".join(Path(m.__file__).read_text() for m in (pretrain, pretrain_data))
    assert re.search(rf"\bconfig\.{field}\b", source), f"TrainConfig.{field} is never read"


def test_overrides_are_typed_and_unknown_keys_refused():
    config = pretrain_config.parse_overrides(pretrain_config.TINY, ["lr=0.001", "clusters=7"])
    assert config.lr == 0.001 and config.clusters == 7 and config.window_frames == 64
    with pytest.raises(SpeechForensicsError, match="--set nope=1"):
        pretrain_config.parse_overrides(pretrain_config.TINY, ["nope=1"])
    with pytest.raises(SpeechForensicsError, match="is not a int"):
        pretrain_config.parse_overrides(pretrain_config.TINY, ["clusters=many"])
    with pytest.raises(SpeechForensicsError, match="unknown TrainConfig keys: nope"):
        pretrain_config.TrainConfig.from_dict({"nope": 1})
