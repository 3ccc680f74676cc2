"""--on-error for image folders: skip an unreadable file and list it, or fail naming it."""
import numpy as np
import pytest
from PIL import Image

import pipelines
from core.exceptions import DataFormatError

from .conftest import VISION_SMALL, build, read_json


@pytest.fixture
def photos(tmp_path):
    rng = np.random.default_rng(5)
    root = tmp_path / "photos"
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, size=(9, 7), dtype=np.uint8)).save(root / label / f"{i}.png")
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 30)
    return root


def test_on_error_skip_lists_the_file_and_raise_names_it(photos, tmp_path):
    out = str(tmp_path / "out")
    settings = dict(VISION_SMALL, output_dir=out, source=str(photos), image_size="8", test_size=0.5)
    task = pipelines.EvaluateVision(**settings, on_error="skip")
    result, _ = build([task])
    assert result.status.name == "SUCCESS", result.summary_text
    broken = str(photos / "dog" / "broken.png")
    report = open(task.output()["report.md"].path, encoding="utf-8").read()
    assert "## Skipped files" in report and f"`{broken}`" in report
    info = read_json(f"{task.data_folder()}/prepared.json")
    assert [f["path"] for f in info["info"]["skipped_files"]] == [broken]
    assert info["n_samples"] == 12 and info["parameters"]["on_error"] == "skip"

    failing = pipelines.PrepareVision(**{k: v for k, v in settings.items() if k in (
        "output_dir", "source", "image_size", "test_size", "max_samples")}, on_error="raise")
    assert failing.data_folder() != task.data_folder()      # part of the data key: a change prepares again
    result, _ = build([failing])
    assert result.status.name == "FAILED" and not failing.complete()
    with pytest.raises(DataFormatError, match=r"broken\.png.*--on-error skip"):
        failing.run()
