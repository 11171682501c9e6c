"""``report.html``: self-contained, the flip gallery with the images the model was handed, and a
real browser (headless Chromium) that renders it with every image loaded.

The lmms-eval output folder is written the way lmms-eval writes it (``<model>/<date>_results.json``
and ``<date>_samples_<task>.jsonl``), with each sample's metric record produced by the real task
(``process_results`` of the VQA-RAD sweep, loaded through lmms-eval with the biores plugin) for
chosen responses, so which samples flip is known.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from fixtures_real import build_vqa_rad
from PIL import Image

LEVELS = ("224", "448", "native")
#: doc id -> response per level; rows: 0 yes (closed), 1 no (closed), 2 "left lung", 3 "CT"
RESPONSES = {
    0: {"224": "no", "448": "yes", "native": "yes"},  # wrong at 224 only: 1 flip
    1: {"224": "no", "448": "yes", "native": "no"},  # right, wrong, right: 2 flips
    2: {"224": "left lung", "448": "left lung", "native": "left lung"},  # right throughout: no flip
    3: {"224": "MRI", "448": "CT", "native": "MRI"},  # wrong, right, wrong: 2 flips
}


def write_lmms_eval_output(root: Path, tasks: dict, model: str = "tiny-model", responses: dict = RESPONSES) -> Path:
    """An lmms-eval ``--output_path`` folder for the VQA-RAD sweep's three levels."""
    out = root / f"results-{model}" / model
    out.mkdir(parents=True)
    stamp = "20261206_010203"
    results, configs, n = {}, {}, {}
    for level in LEVELS:
        name = f"biores_vqa_rad_{level}"
        task = tasks[name]
        lines, scores = [], []
        for doc_id, doc in enumerate(task.test_docs_no_media()):
            response = responses[doc_id][level]
            metrics = task.process_results(doc, [response])
            scores.append(metrics["accuracy"]["score"])
            sample = {
                "doc_id": doc_id,
                "doc": {k: v for k, v in doc.items() if k != "image"},
                "target": doc["answer"],
                "arguments": [task.doc_to_text(doc)],
                "resps": [[response]],
                "filtered_resps": [response],
                "token_counts": [None],
                **metrics,
            }
            lines.append(json.dumps(sample, default=str))
        (out / f"{stamp}_samples_{name}.jsonl").write_text("\n".join(lines) + "\n")
        results[name] = {"alias": name, "accuracy,none": sum(scores) / len(scores), "accuracy_stderr,none": "N/A"}
        configs[name] = {"task": name}
        n[name] = {"original": 4, "effective": 4}
    payload = {
        "results": results,
        "configs": configs,
        "n-samples": n,
        "config": {"model": "biores_llava", "model_args": f"pretrained=/models/{model},device=cpu"},
    }
    (out / f"{stamp}_results.json").write_text(json.dumps(payload))
    return root / f"results-{model}"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from lmms_eval.tasks import TaskManager, get_task_dict

    from biores_plugin.cli import main
    from biores_plugin.eval.plugin import install

    root = tmp_path_factory.mktemp("report")
    fixture = build_vqa_rad(root / "vqa_rad")
    mp = pytest.MonkeyPatch()
    mp.setenv(fixture.env, str(fixture.root))
    mp.setenv("LMMS_EVAL_DATASETS_CACHE", str(root / "cache"))
    from biores_plugin.eval import images

    mp.setattr(images, "_SKIPPED", {})  # docs another test skipped as bad images under the same task names
    install()
    tasks = get_task_dict([f"biores_vqa_rad_{level}" for level in LEVELS], TaskManager(include_defaults=False))
    results = write_lmms_eval_output(root, tasks)
    # a second model, trained at another resolution: right everywhere but doc 2 at 224
    other = {
        d: {level: ("the heart" if (d, level) == (2, "224") else r) for level in LEVELS}
        for d, r in enumerate(["yes", "no", "left lung", "CT"])
    }
    second = write_lmms_eval_output(root, tasks, "other-model", other)
    out = root / "out"
    assert (
        main(
            [
                "report",
                str(results),
                str(second),
                "--out",
                str(out),
                "--gallery",
                "2",
                "--label",
                f"{results}=224",
                "--label",
                f"{second}=native",
            ]
        )
        == 0
    )
    yield {"html": out / "report.html", "fixture": fixture, "root": root}
    mp.undo()


def _data_images(page: str) -> list[Image.Image]:
    return [
        Image.open(io.BytesIO(base64.b64decode(m))) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    ]


def test_report_html_is_self_contained(report):
    page = report["html"].read_text()
    srcs = re.findall(r'src="([^"]*)"', page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)  # nothing fetched from anywhere
    assert "http://" not in page and "https://" not in page and "<link" not in page and "<script" not in page
    for heading in (
        "Accuracy against inference resolution",
        "Train × inference resolution",
        "Accuracy by inference resolution",
        "Robustness",
        "Flip gallery",
    ):
        assert heading in page
    assert all(im.width > 0 for im in _data_images(page))


def test_gallery_lists_flipping_samples_most_flips_first_capped(report):
    page = report["html"].read_text()
    ids = re.findall(r'<div class="flip" id="224-biores_vqa_rad-(\d+)">', page)
    assert ids == ["1", "3"]  # 2 flips each (doc 0 has 1, doc 2 none); --gallery 2 caps at two
    assert "3 flipping sample(s), 2 shown" in page
    assert re.findall(r'<div class="flip" id="native-biores_vqa_rad-(\d+)">', page) == ["2"]  # the other model
    flip = page[page.index('id="224-biores_vqa_rad-1"') : page.index('id="224-biores_vqa_rad-3"')]
    kinds = re.findall(r'<div class="level (right|wrong)"><b>(\w+)</b>', flip)
    assert kinds == [("right", "224"), ("wrong", "448"), ("right", "native")]
    assert "re-derived" in page


def test_gallery_thumbnails_are_what_the_task_handed_the_model(report):
    """Doc 1's image (200x150) and doc 3's (700x1000): at each level, the thumbnail is biores'
    downsampling of the stored image, pixel for pixel where it is small enough to embed as is."""
    from biores_plugin.image_io import load_image
    from biores_plugin.resolution import downsample

    page = report["html"].read_text()
    table = (
        __import__("pyarrow.parquet", fromlist=["read_table"])
        .read_table(report["fixture"].root / "data" / "test-00000-of-00001.parquet")
        .to_pylist()
    )
    for doc_id in (1, 3):
        block = page[page.index(f'id="224-biores_vqa_rad-{doc_id}"') :]
        block = block[: block.index('<div class="flip"', 10)] if '<div class="flip"' in block[10:] else block
        thumbs = [
            Image.open(io.BytesIO(base64.b64decode(m)))
            for m in re.findall(r'class="thumb" alt="[^"]*" src="data:image/png;base64,([^"]+)"', block)
        ]
        assert len(thumbs) == len(LEVELS)
        stored = load_image(table[doc_id]["image"]["bytes"])
        for level, thumb in zip(LEVELS, thumbs, strict=True):
            received = downsample(stored, 0 if level == "native" else int(level))
            if max(received.size) <= 256:
                assert thumb.size == received.size
                assert np.array_equal(np.asarray(thumb.convert("RGB")), np.asarray(received.convert("RGB")))
            else:
                assert (
                    max(thumb.size) == 256 and abs(thumb.width / thumb.height - received.width / received.height) < 0.02
                )
        assert f"{stored.width}×{stored.height}" in block  # the native level's size, as logged


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def test_report_renders_in_headless_chromium_with_every_image_loaded(report, tmp_path):
    binary = _chromium()
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no chromium binary (.ci/run installs Debian's chromium)")
        pytest.skip("no chromium binary here (apt-get install chromium); CI runs this test")
    flags = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    # 1. after load, a small script writes each <img>'s naturalWidth into the DOM, which is dumped
    probe = tmp_path / "probe.html"
    probe.write_text(
        report["html"]
        .read_text()
        .replace(
            "</body>",
            "<script>window.addEventListener('load',()=>{document.body.setAttribute('data-widths',"
            "Array.from(document.images).map(i=>i.complete?i.naturalWidth:-1).join(','))});</script></body>",
        )
    )
    dom = subprocess.run(
        [*flags, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    widths = re.search(r'data-widths="([^"]*)"', dom.stdout)
    assert widths, dom.stdout[:500]
    values = [int(v) for v in widths.group(1).split(",")]
    n_images = len(re.findall(r"<img ", report["html"].read_text()))
    assert len(values) == n_images and all(v > 0 for v in values), values
    # 2. a screenshot of the page itself is not blank
    shot = tmp_path / "report.png"
    run = subprocess.run(
        [*flags, f"--screenshot={shot}", "--window-size=1280,2400", report["html"].as_uri()],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (2400, 1280)
    assert pixels.std() > 10  # a blank page is one colour (std 0)
    assert (pixels < 128).mean() > 0.01  # text, figures and thumbnails: dark pixels somewhere


def test_gallery_says_so_when_the_images_cannot_be_re_derived(report, tmp_path, monkeypatch, capsys):
    """Without the data (the local copy moved away) the page still renders; the gallery names why."""
    from biores_plugin.cli import main

    monkeypatch.setenv(report["fixture"].env, str(tmp_path / "moved"))
    monkeypatch.setenv("LMMS_EVAL_DATASETS_CACHE", str(tmp_path / "empty_cache"))
    results = report["root"] / "results-tiny-model"
    assert main(["report", str(results), "--out", str(tmp_path / "out"), "--gallery", "1"]) == 0
    page = (tmp_path / "out" / "report.html").read_text()
    assert "images not recoverable here" in page and 'class="thumb"' not in page
    assert "1 shown" in page  # the samples are still listed, with their responses and scores
    assert "biores report: gallery: biores_vqa_rad: images not recoverable here" in capsys.readouterr().err
