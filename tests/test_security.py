"""Hostile checkpoints: loading a judge checkpoint never runs code stored in it (issue 10, item 15)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


class _Payload:
    """Unpickling this object runs code: it creates a file, the marker that the loader executed the payload."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_crafted_checkpoint_does_not_run_code(tmp_path: Path) -> None:
    from deepprune.judge.export import head_from_checkpoint

    marker = tmp_path / "pwned"
    ckpt = tmp_path / "run" / "checkpoints" / "evil.ckpt"
    ckpt.parent.mkdir(parents=True)
    torch.save({"state_dict": {"head.w": torch.zeros(1)}, "hyper_parameters": _Payload(marker)}, ckpt)
    # the payload does run under a plain unpickle: the test would catch a loader that went back to it
    torch.load(ckpt, weights_only=False)
    assert marker.is_file()
    marker.unlink()

    config = tmp_path / "config.yaml"
    config.write_text("model:\n  _target_: deepprune.judge.heads.generative_head\n")
    with pytest.raises(ValueError, match=r"evil\.ckpt: refused to load"):
        head_from_checkpoint(ckpt, config)
    assert not marker.exists()
