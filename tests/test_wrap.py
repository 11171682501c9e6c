"""Wrapped lmms-eval tasks (``biores sweep``): the native point is the upstream task itself.

Local copies in the hub's own layout (a hub cache snapshot for SLAKE and MicroVQA, a parquet
folder for V*-Bench with one truncated image). The upstream references are lmms-eval's own task
yamls with only ``dataset_path`` pointed at the local copy. In-process checks compare what
lmms-eval builds (docs, prompts, messages, generation settings, requests) and the scores of
every (doc, response) pair; one lmms-eval CLI run compares the samples logs end to end.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_lmms_eval
from fixtures_hub import build_vstar, hub_snapshot
from fixtures_real import build_microvqa, build_slake, image_bytes

BIN = Path(sys.executable).parent
SLAKE_RESPONSES = [
    "Yes",
    "yes.",
    "Yes, it does.",
    "No",
    "no",
    "是",
    "否",
    "MRI",
    "mri",
    "CT",
    "X-ray",
    "x ray",
    "xray",
    "Kidney",
    "the kidney",
    "Kidney (left)",
    "Left Lung",
    "left lung.",
    "Left lung, lower lobe",
    "Right Lung",
    "The liver",
    "Liver",
    "Spleen",
    "There is no abnormality",
    "",
    "I don't know",
    "Yes (the liver is visible)",
    "true",
]
MICROVQA_RESPONSES = [
    "The answer is (2)",
    "the answer is (1)",
    "The answer is 2",
    "**The answer is (2)**",
    "The answer is **(2)**",
    "Answer: (2)",
    "B",
    "(2)",
    "2",
    "The answer is (5)",
    "The answer is (7)",
    "Step by step ... The answer is (4).",
    "The answer is (3)\nThe answer is (2)",
    "answer is (1)",
    "The answer is (6)",
    "",
    "I cannot tell.",
    "The correct option is (2)",
    "The answer is (2). The answer is (3).",
    "THE ANSWER IS (2)",
    "The answer is (1)",
    "the answer is (3)",
    "The answer is(2)",
    "The answer is (0)",
    "The answer is (9)",
    "Lysosomes",
    "A",
    "The answer is (4)",
]


def _upstream(rel: str) -> str:
    import lmms_eval

    return str(Path(lmms_eval.__file__).resolve().parent / "tasks" / rel)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("wrap")
    hf_home = root / "hf"
    slake = build_slake(hub_snapshot(hf_home, "BoKelvin/SLAKE"))
    microvqa = build_microvqa(hub_snapshot(hf_home, "jmhb/microvqa"))
    vstar = build_vstar(root / "vstar", truncate=1)
    tasks = root / "tasks"
    (tasks / "ref").mkdir(parents=True)
    for name, rel, data in (
        ("ref_slake_en", "slake/slake_en.yaml", slake.root),
        ("ref_microvqa", "microvqa/microvqa.yaml", microvqa.root),
    ):
        (tasks / "ref" / f"{name}.yaml").write_text(
            f'include: "{_upstream(rel)}"\ntask: {name}\ndataset_path: "{data}"\n'
        )
    env = {
        "BIORES_SLAKE_PATH": str(slake.root),
        "BIORES_MICROVQA_PATH": str(microvqa.root),
        "BIORES_VSTAR_BENCH_PATH": str(vstar.root),
        "HF_HOME": str(hf_home),
        "HF_HUB_CACHE": str(hf_home / "hub"),
        "XDG_CACHE_HOME": str(root / "cache"),
        "LMMS_EVAL_DATASETS_CACHE": str(root / "datasets"),
    }
    # `biores sweep` of an upstream general high-resolution task, from the command line
    proc = subprocess.run(
        [
            str(BIN / "biores"),
            "sweep",
            "vstar_bench",
            "--resolutions",
            "224,native",
            "--out",
            str(tasks / "sweeps"),
            "--skip-bad-images",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, **env},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    mp = pytest.MonkeyPatch()
    for key, value in env.items():
        mp.setenv(key, value)
    import huggingface_hub.constants

    mp.setattr(huggingface_hub.constants, "HF_HUB_CACHE", env["HF_HUB_CACHE"])
    yield {"root": root, "tasks": tasks, "env": env, "slake": slake, "microvqa": microvqa, "vstar": vstar}
    mp.undo()


@pytest.fixture(scope="module")
def loaded(world):
    from lmms_eval.tasks import TaskManager, get_task_dict

    from biores_plugin.lmms_plugin.plugin import install

    install()
    manager = TaskManager("ERROR", include_path=str(world["tasks"]), include_defaults=False, model_name="biores_llava")
    names = [
        "ref_slake_en",
        "biores_slake_native",
        "biores_slake_224",
        "ref_microvqa",
        "biores_microvqa_native",
        "biores_microvqa_224",
        "biores_vstar_bench_224",
    ]
    return get_task_dict(names, manager, task_type="chat")


PAIRS = [("ref_slake_en", "biores_slake"), ("ref_microvqa", "biores_microvqa")]


def _pixels(messages):
    return [np.asarray(p["url"]) for p in messages[0]["content"] if p["type"] == "image"]


def _texts(messages):
    return [(p["type"], p.get("text")) for p in messages[0]["content"]]


# ----------------------------------------------------------------------------- the native point


@pytest.mark.parametrize("ref,prefix", PAIRS)
def test_native_variant_builds_exactly_the_upstream_requests(loaded, ref, prefix):
    up, native = loaded[ref], loaded[f"{prefix}_native"]
    assert len(up.test_docs()) == len(native.test_docs()) > 0
    assert native.config.generation_kwargs == up.config.generation_kwargs
    assert native.lmms_eval_specific_kwargs == up.lmms_eval_specific_kwargs
    for doc_up, doc in zip(up.test_docs(), native.test_docs(), strict=True):
        assert native.doc_to_text(doc) == up.doc_to_text(doc_up)
        assert native.doc_to_target(doc) == up.doc_to_target(doc_up)
        ours, theirs = native.doc_to_messages(doc), up.doc_to_messages(doc_up)
        assert _texts(ours) == _texts(theirs)  # same parts in the same order (MicroVQA: text first)
        assert [p.shape for p in _pixels(ours)] == [p.shape for p in _pixels(theirs)]
        assert all(np.array_equal(a, b) for a, b in zip(_pixels(ours), _pixels(theirs)))
    up.build_all_requests(limit=None, rank=0, world_size=1)
    native.build_all_requests(limit=None, rank=0, world_size=1)
    ours = [(i.doc_id, i.args[0], i.args[2]) for i in native.instances]
    theirs = [(i.doc_id, i.args[0], i.args[2]) for i in up.instances]
    assert ours == theirs  # what lmms-eval hands the model: context and generation kwargs


@pytest.mark.parametrize("ref,prefix,responses", [(*PAIRS[0], SLAKE_RESPONSES), (*PAIRS[1], MICROVQA_RESPONSES)])
def test_every_doc_response_pair_scores_as_upstream(loaded, ref, prefix, responses):
    up = loaded[ref]
    compared = 0
    for variant in ("native", "224"):
        task = loaded[f"{prefix}_{variant}"]
        for doc_up, doc in zip(up.test_docs_no_media(), task.test_docs_no_media(), strict=True):
            for response in responses:
                theirs = up.process_results(doc_up, [response])
                ours = task.process_results(doc, [response])
                assert {k: ours[k] for k in theirs} == theirs, (variant, response)
                assert ours["biores"]["score"] is not None and ours["biores_skipped_images"]["skipped"] == 0.0
                compared += 1
    assert compared == 2 * len(up.test_docs()) * len(responses)
    metrics = [m["metric"] for m in loaded[f"{prefix}_native"].config.metric_list]
    assert metrics[: len(up.config.metric_list)] == [m["metric"] for m in up.config.metric_list]  # names included


def test_capped_variants_cap_every_image_and_nothing_else(loaded):
    for prefix, ref in (("biores_microvqa", "ref_microvqa"), ("biores_slake", "ref_slake_en")):
        up, low = loaded[ref], loaded[f"{prefix}_224"]
        for doc_up, doc in zip(up.test_docs(), low.test_docs(), strict=True):
            ours, theirs = low.doc_to_messages(doc), up.doc_to_messages(doc_up)
            assert _texts(ours) == _texts(theirs) and low.doc_to_text(doc) == up.doc_to_text(doc_up)
            for a, b in zip(_pixels(ours), _pixels(theirs), strict=True):
                assert max(a.shape[:2]) == min(224, max(b.shape[:2]))  # every image of a multi-image doc
                assert abs(a.shape[1] / a.shape[0] - b.shape[1] / b.shape[0]) < 0.02
            assert (doc["biores_eff_width"], doc["biores_eff_height"]) == max(
                (p.shape[1], p.shape[0]) for p in _pixels(ours)
            )


def test_slake_secondary_metrics_follow_llava_med(loaded):
    from biores_plugin.task_library.protocols import llava_med_closed_hit, llava_med_recall

    task = loaded["biores_slake_native"]
    for doc in task.test_docs_no_media():
        out = task.process_results(doc, ["Yes, the left lung"])
        record = out["llava_med_closed_accuracy"]
        expected = (llava_med_closed_hit if doc["answer_type"] == "CLOSED" else llava_med_recall)(
            "Yes, the left lung", doc["answer"]
        )
        assert record["score"] == expected and record["question_type"] == doc["answer_type"].lower()
    assert llava_med_recall("the left lung, lower lobe", "Left Lung") == 1.0
    assert llava_med_recall("right lung", "Left Lung") == 0.5
    assert llava_med_closed_hit("Yes.", "yes") == 1.0 and llava_med_closed_hit("No", "yes") == 0.0


# ----------------------------------------------------------------------------- bad images, paths


def test_truncated_image_stops_with_one_line_naming_task_doc_and_source(world, loaded, tmp_path):
    from lmms_eval.tasks import TaskManager, get_task_dict
    from PIL import ImageFile

    from biores_plugin.task_authoring.wrap import Source, write_task_sweep
    from biores_plugin.task_library.images import BadImageError

    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # lmms-eval's setting: PIL alone would accept the file
    write_task_sweep(
        Source("vstar_bench", _upstream("vstar_bench/vstar_bench.yaml")),
        tmp_path,
        ["native"],
        prefix="biores_vstar_strict",
    )
    task = get_task_dict(
        ["biores_vstar_strict_native"], TaskManager("ERROR", include_path=str(tmp_path), include_defaults=False)
    )["biores_vstar_strict_native"]
    docs = task.test_docs()
    assert task.doc_to_visual(docs[0])[0].size == world["vstar"].rows[0].size
    with pytest.raises(BadImageError) as err:
        task.doc_to_visual(docs[1])
    message = str(err.value)
    assert "\n" not in message and "biores_vstar_strict_native" in message and "doc 1" in message
    assert "column 'image'" in message and "truncated" in message
    # the skipping sweep records the doc and gives it neither images nor a score
    skipping = loaded["biores_vstar_bench_224"]
    from biores_plugin.task_library.images import placeholder

    [stand_in] = skipping.doc_to_visual(skipping.test_docs()[1])  # the model gets a neutral stand-in
    assert np.array_equal(np.asarray(stand_in), np.asarray(placeholder()))
    out = skipping.process_results(skipping.test_docs_no_media()[1], ["A"])
    assert set(out) == {"biores", "biores_skipped_images"} and out["biores_skipped_images"]["skipped"] == 1.0


def test_paths_from_data_files_stay_inside_the_data_root(tmp_path):
    from biores_plugin.task_library.archive import ImageArchive, UnsafePathError

    snapshot = hub_snapshot(tmp_path / "hf", "org/data")
    blobs = snapshot.parent.parent / "blobs"
    blobs.mkdir()
    (blobs / "abc").write_bytes(image_bytes((20, 10), 1))
    (snapshot / "imgs").mkdir()
    (snapshot / "imgs" / "ok.jpg").symlink_to(blobs / "abc")  # the hub cache's own layout
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(image_bytes((20, 10), 2))
    (snapshot / "imgs" / "leak.jpg").symlink_to(outside)
    archive = ImageArchive(snapshot, [], ["imgs"])
    assert archive.size("ok.jpg") == (20, 10)
    for name in ("../../secret.jpg", "/etc/passwd", "imgs/../../x.jpg", "leak.jpg"):
        with pytest.raises(UnsafePathError) as err:
            archive.read(name)
        assert "\n" not in str(err.value) and "data root" in str(err.value)


def test_user_task_folder_with_template_functions_and_group(tmp_path, world):
    """A user's --include_path folder: include: template, !function utils targets, a group."""
    from lmms_eval.tasks import TaskManager, get_task_dict

    from biores_plugin.task_authoring.wrap import resolve, sweep

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "utils.py").write_text(
        "def visual(doc):\n    return [doc['image'].convert('RGB')]\n\n"
        "def text(doc, lmms_eval_specific_kwargs=None):\n    return 'Q: ' + doc['text']\n\n"
        "def results(doc, results):\n    return {'hit': float(results[0].strip().upper().startswith(doc['label']))}\n"
    )
    (mine / "_template").write_text(
        f'dataset_path: "{world["vstar"].root}"\ntest_split: test\noutput_type: generate_until\n'
        "doc_to_visual: !function utils.visual\ndoc_to_text: !function utils.text\ndoc_to_target: label\n"
        "process_results: !function utils.results\nmetric_list:\n  - metric: hit\n    aggregation: mean\n    "
        "higher_is_better: true\n"
    )
    (mine / "my_a.yaml").write_text("include: _template\ntask: my_a\n")
    (mine / "my_b.yaml").write_text("include: _template\ntask: my_b\n")
    (mine / "my_group.yaml").write_text("group: my_group\ntask:\n  - my_a\n  - my_b\n")
    assert [s.task for s in resolve(["my_group"], include_path=str(mine), include_defaults=False)] == ["my_a", "my_b"]
    folders = sweep(["my_group"], tmp_path / "out", ["64", "native"], include_path=str(mine), include_defaults=False)
    assert [f.name for f in folders] == ["biores_my_a", "biores_my_b"]
    task = get_task_dict(
        ["biores_my_a_64"], TaskManager("ERROR", include_path=str(tmp_path / "out"), include_defaults=False)
    )["biores_my_a_64"]
    doc = task.test_docs()[0]
    assert task.doc_to_text(doc).startswith("Q: What is the color") and max(task.doc_to_visual(doc)[0].size) == 64
    assert task.process_results(task.test_docs_no_media()[0], ["A"])["hit"] == 1.0
    assert [m["metric"] for m in task.config.metric_list] == ["hit", "biores_skipped_images"]


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def cli_run(world, lmms_model_args):
    model, model_args = lmms_model_args
    names = [
        "ref_slake_en",
        "biores_slake_native",
        "biores_slake_224",
        "ref_microvqa",
        "biores_microvqa_native",
        "biores_microvqa_224",
        "biores_vstar_bench_sweep",
    ]
    out = world["root"] / "cli" / "out"
    out.parent.mkdir()
    args = [
        "--model",
        model,
        "--model_args",
        model_args.replace("batch_size=4", "batch_size=1"),
        "--include_path",
        str(world["tasks"]),
        "--tasks",
        ",".join(names),
        "--gen_kwargs",
        "max_new_tokens=6,temperature=0,do_sample=False",
    ]
    return out, run_lmms_eval(args, out, env={**world["env"], "OMP_NUM_THREADS": "1"})


def _samples(out: Path, task: str) -> list[dict]:
    [path] = list(out.glob(f"**/*_samples_{task}.jsonl"))
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_lmms_eval_run_native_points_equal_upstream_per_sample(cli_run):
    out, results = cli_run
    for ref, prefix in PAIRS:
        theirs, ours = _samples(out, ref), _samples(out, f"{prefix}_native")
        assert len(theirs) == len(ours) > 0
        metrics = [k.split(",")[0] for k in results["results"][ref] if k.endswith(",none") and "_stderr" not in k]
        configs = results["configs"]
        for key in ("generation_kwargs", "lmms_eval_specific_kwargs", "output_type", "test_split", "dataset_kwargs"):
            assert configs[f"{prefix}_native"].get(key) == configs[ref].get(key), key
        for a, b in zip(theirs, ours, strict=True):
            assert b["input"] == a["input"] and b["target"] == a["target"]  # the prompt lmms-eval built
            assert b.get("resps") == a.get("resps") and b["filtered_resps"] == a["filtered_resps"]
            assert {m: b[m] for m in metrics} == {m: a[m] for m in metrics}
            assert b["biores"]["orig_size"] == b["biores"]["eff_size"]
        assert {m: results["results"][f"{prefix}_native"][f"{m},none"] for m in metrics} == {
            m: results["results"][ref][f"{m},none"] for m in metrics
        }
        for sample in _samples(out, f"{prefix}_224"):
            assert max(sample["biores"]["eff_size"]) == min(224, max(sample["biores"]["orig_size"]))


def test_lmms_eval_run_sweeps_vstar_and_records_the_skipped_image(cli_run):
    out, results = cli_run
    for variant in ("biores_vstar_bench_224", "biores_vstar_bench_native"):
        values = results["results"][variant]
        assert values["biores_skipped_images,none"] == 1.0 and 0.0 <= values["vstar_overall_acc,none"] <= 100.0
        samples = _samples(out, variant)
        assert [s["doc_id"] for s in samples] == [0, 1, 2]
        assert "vstar_overall_acc" not in samples[1] and samples[1]["biores_skipped_images"]["skipped"] == 1.0
        assert all("vstar_overall_acc" in s for s in (samples[0], samples[2]))


def test_biores_report_prints_robustness_metrics(cli_run, tmp_path):
    out, _ = cli_run
    proc = subprocess.run(
        [str(BIN / "biores"), "report", str(out), "--out", str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Spearman" in proc.stdout and "ACE" in proc.stdout and "RCE" in proc.stdout
    report = (tmp_path / "report.md").read_text()
    assert "## Robustness to inference resolution" in report and "Res-Bench (arXiv:2510.16926)" in report
    payload = json.loads((tmp_path / "robustness.json").read_text())
    rows = {r["dataset"]: r for r in payload["rows"]}
    assert {"slake", "microvqa", "vstar_bench"} <= set(rows)
    vstar = rows["vstar_bench"]
    assert vstar["levels"] == ["224", "native"] and all(
        0.0 <= a <= 1.0 for a in vstar["accuracy"]
    )  # percent -> fraction
    assert vstar["ace"] == pytest.approx(abs(vstar["accuracy"][1] - vstar["accuracy"][0]))
    assert payload["skipped_image_ids"]["biores_vstar_bench_224"] == [1] and vstar["skipped_images"] == 2
    assert "Skipped for bad images in `biores_vstar_bench_native`: 1 doc(s), ids 1." in report
