"""worker/weights.py, which the image builds run: every registered file checked, a bad one named."""

from __future__ import annotations

import dataclasses

import pytest

from worker import weights
from worker.inference.files import ModelIntegrityError
from worker.inference.registry import SCRFD_500M, all_entries


def test_every_network_of_the_registry_is_checked() -> None:
    checked = weights.verify_all()
    assert [spec.name for spec in checked] == [spec.name for entry in all_entries() for spec in entry.specs]
    # Bytes constants, several files, and quantization ranges are all among them.
    assert {"retinaface_mnet025", "mtcnn", "w600k_mbf_int8"} <= {spec.name for spec in checked}
    assert weights.main() == 0


def test_a_changed_file_fails_the_check_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = dataclasses.replace(SCRFD_500M, sha256="0" * 64)
    entry = dataclasses.replace(all_entries()[0], specs=(bad,))
    monkeypatch.setattr(weights, "all_entries", lambda: [entry])
    with pytest.raises(ModelIntegrityError, match="scrfd_500m_bnkps: SHA-256"):
        weights.verify_all()
    assert weights.main() == 1
    assert "scrfd_500m_bnkps" in capsys.readouterr().err
