"""The real-dataset sweeps (VQA-RAD, SLAKE, PathVQA, PMC-VQA, MicroVQA, uBench).

VQA-RAD, PathVQA, PMC-VQA and uBench are biores task folders (their published protocols plus
a ``_direct`` fast variant where kept); SLAKE and MicroVQA are lmms-eval's own tasks wrapped
(tests/test_wrap.py checks them against upstream), MicroVQA keeping a ``_direct`` folder too.
Every data set is a tiny local copy with its real column names and file layout
(``tests/fixtures_real.py``), read through ``metadata.local_path_env``. Unit tests load the tasks
the way lmms-eval does; one real ``lmms-eval`` CLI run checks them end to end.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_lmms_eval
from fixtures_real import BUILDERS, Fixture, build_all

DATASETS = list(BUILDERS)
VARIANTS = ("224", "448", "896", "native")
#: data set -> its sweeps (protocol first); "biores_slake" / "biores_microvqa" are wrapped upstream tasks
SWEEPS = {
    "vqa_rad": ["biores_vqa_rad", "biores_vqa_rad_direct"],
    "slake": ["biores_slake"],
    "pathvqa": ["biores_pathvqa", "biores_pathvqa_direct"],
    "pmc_vqa": ["biores_pmc_vqa", "biores_pmc_vqa_direct"],
    "pmc_vqa2": ["biores_pmc_vqa2"],
    "microvqa": ["biores_microvqa", "biores_microvqa_direct"],
    "ubench": ["biores_ubench", "biores_ubench_direct"],
}
FOLDER_DATASETS = ["vqa_rad", "pathvqa", "pmc_vqa", "pmc_vqa2", "microvqa", "ubench"]  # shipped as biores task folders
HUB_IDS = {
    "vqa_rad": "flaviagiammarino/vqa-rad",
    "slake": "BoKelvin/SLAKE",
    "pathvqa": "flaviagiammarino/path-vqa",
    "pmc_vqa": "xmcmic/PMC-VQA",
    "pmc_vqa2": "xmcmic/PMC-VQA",
    "microvqa": "jmhb/microvqa",
    "ubench": "jnirschl/uBench",
}
TASKS_DIR = Path(__file__).resolve().parent.parent / "tasks"


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory) -> dict[str, Fixture]:
    return build_all(tmp_path_factory.mktemp("real") / "data")


@pytest.fixture(scope="module")
def real_env(fixtures, tmp_path_factory):
    """The local-copy environment variables (and a private datasets cache) for this module."""
    env = {f.env: str(f.root) for f in fixtures.values()}
    env["LMMS_EVAL_DATASETS_CACHE"] = str(tmp_path_factory.mktemp("hf_datasets"))
    mp = pytest.MonkeyPatch()
    for key, value in env.items():
        mp.setenv(key, value)
    yield env
    mp.undo()


@pytest.fixture(scope="module")
def tasks(real_env):
    """Every variant of the six folders, built exactly as lmms-eval builds tasks."""
    from lmms_eval.tasks import TaskManager, get_task_dict

    from biores_plugin.lmms_plugin.plugin import install

    install()
    manager = TaskManager(include_defaults=False)  # the plugin hook adds biores' folders
    names = [f"{prefix}_{v}" for d in DATASETS for prefix in SWEEPS[d] for v in VARIANTS]
    return get_task_dict(names, manager)


def _variant(resolution: str) -> int:
    return 0 if resolution == "native" else int(resolution)


# ----------------------------------------------------------------------------- folders


@pytest.mark.parametrize("dataset", FOLDER_DATASETS)
def test_folder_is_generated_and_points_at_real_data(dataset, tmp_path):
    from lmms_eval import utils as lmms_utils

    from biores_plugin.task_authoring.taskgen import folder_sweeps, write_sweep

    folder = TASKS_DIR / f"biores_{dataset}"
    for name in ("__init__.py", "utils.py", "README.md"):
        assert (folder / name).is_file(), name
    assert (folder / "__init__.py").read_text() == ""
    sweeps = folder_sweeps(folder)
    assert set(sweeps) == {p for p in SWEEPS[dataset] if p != "biores_microvqa"}
    for prefix, template in sweeps.items():  # variants and groups are taskgen output, verbatim
        write_sweep(tmp_path, prefix, template=template)
    for generated in tmp_path.glob("*.yaml"):
        assert (folder / generated.name).read_text() == generated.read_text(), generated.name
    assert {p.name for p in folder.glob("biores_*.yaml")} == {p.name for p in tmp_path.glob("*.yaml")}
    for prefix in sweeps:
        config = lmms_utils.load_yaml_config(str(folder / f"{prefix}_224.yaml"), mode="simple")
        assert config["dataset_path"] == HUB_IDS[dataset]
        assert config["metadata"]["local_path_env"] == f"BIORES_{dataset.upper()}_PATH"
        assert "accuracy" in [m["metric"] for m in config["metric_list"]]  # the sweep group averages it
        assert "biores_skipped_images" in [m["metric"] for m in config["metric_list"]]
    readme = (folder / "README.md").read_text()
    assert f"BIORES_{dataset.upper()}_PATH" in readme and "## Protocol" in readme
    for prefix in SWEEPS[dataset]:
        assert f"{prefix}_sweep" in readme


def test_task_names_do_not_clash_with_builtin_tasks():
    import lmms_eval

    builtin = Path(lmms_eval.__file__).parent / "tasks"
    ours = {f"{p}_{v}" for d in DATASETS for p in SWEEPS[d] for v in (*VARIANTS, "sweep")}
    clashes = [p for p in builtin.rglob("*.yaml") if any(name in p.read_text(errors="ignore") for name in ours)]
    assert not clashes


# ----------------------------------------------------------------------------- process_docs


@pytest.mark.parametrize("dataset", DATASETS)
def test_process_docs_adds_size_columns(tasks, fixtures, dataset):
    fixture = fixtures[dataset]
    for prefix in SWEEPS[dataset]:
        for variant in VARIANTS:
            docs = tasks[f"{prefix}_{variant}"].test_docs()
            assert len(docs) == len(fixture.rows)
            resolution = _variant(variant)
            assert list(docs["biores_doc_id"]) == list(range(len(docs)))
            for doc, row in zip(docs, fixture.rows, strict=True):
                orig = (doc["biores_orig_width"], doc["biores_orig_height"])
                eff = (doc["biores_eff_width"], doc["biores_eff_height"])
                assert doc["biores_resolution"] == resolution
                assert orig == row.size
                if resolution == 0:
                    assert eff == orig  # native: untouched
                    continue
                assert eff[0] <= orig[0] and eff[1] <= orig[1]  # never upsampled
                assert max(eff) == min(resolution, max(orig))  # capped exactly at the resolution
                assert abs(eff[0] / eff[1] - orig[0] / orig[1]) < 0.02  # aspect kept


def test_slake_keeps_english_questions_only(tasks):
    docs = tasks["biores_slake_native"].test_docs()  # lmms-eval's slake_en, wrapped
    assert set(docs["q_lang"]) == {"en"} and len(docs) == 4
    assert docs["answer_type"] == ["CLOSED", "OPEN", "CLOSED", "OPEN"]


def test_ubench_asks_the_classification_question(tasks, fixtures):
    docs = tasks["biores_ubench_native"].test_docs()
    # img2 has no classification question; img6's data set is not in the authors' list
    assert list(docs["image_id"]) == ["img0", "img1", "img3", "img4", "img5", "img7"]
    assert [d["question"] for d in docs] == [r.question for r in fixtures["ubench"].rows]
    assert docs[1]["source_dataset"] == "dataset_null:1"  # null ``dataset`` in the release, not resolvable


# ----------------------------------------------------------------------------- visuals, prompts


@pytest.mark.parametrize("dataset", DATASETS)
def test_doc_to_visual_gives_rgb_images_at_the_effective_size(tasks, dataset):
    for prefix in SWEEPS[dataset]:
        for variant in ("224", "native"):
            task = tasks[f"{prefix}_{variant}"]
            for doc in task.test_docs():
                images = task.doc_to_visual(doc)
                assert images and all(im.mode == "RGB" for im in images)
                eff = (doc["biores_eff_width"], doc["biores_eff_height"])
                assert max(images, key=lambda im: im.width * im.height).size == eff
                if variant == "224":
                    assert all(max(im.size) <= 224 for im in images)


PROMPTS = {  # how each sweep shows option i (0-based) of a multiple-choice question
    "biores_pmc_vqa": lambda i, option: f"{'ABCD'[i]}:",  # MedVInT: the stored "A:text" / " A: text"
    "biores_pmc_vqa2": lambda i, option: f"{'ABCD'[i]}:{option}",
    "biores_microvqa": lambda i, option: f"({i + 1}): {option}",  # the owners' numbered options
    "biores_ubench": lambda i, option: f"{'ABCDEFGH'[i]}) {option}",
    "biores_ubench_direct": lambda i, option: f"{'ABCDEFGH'[i]}) {option}",
}


@pytest.mark.parametrize("dataset", DATASETS)
def test_prompts_carry_question_and_options(tasks, fixtures, dataset):
    fixture = fixtures[dataset]
    for prefix in SWEEPS[dataset]:
        task = tasks[f"{prefix}_448"]
        for doc, row in zip(task.test_docs(), fixture.rows, strict=True):
            text = task.doc_to_text(doc)
            assert row.question in text
            for i, option in enumerate(row.options):
                shown = PROMPTS.get(prefix, lambda i, option: f"{'ABCDEFGH'[i]}. {option}")(i, option)
                assert shown in text and option in text, (prefix, option, text)
            # what lmms-eval's chat tasks call (ConfigurableMessagesTask.doc_to_messages)
            messages = task.config.doc_to_messages(doc, lmms_eval_specific_kwargs=task.lmms_eval_specific_kwargs)
            assert len(messages) == 1 and messages[0]["role"] == "user"
            content = messages[0]["content"]
            images = [c["url"] for c in content if c["type"] == "image"]
            assert [c["text"] for c in content if c["type"] == "text"] == [text]
            assert [im.size for im in images] == [im.size for im in task.doc_to_visual(doc)]
            if prefix != "biores_microvqa":  # the MicroVQA owners put the text first
                assert content[0]["type"] == "image"


def test_protocol_prompts_follow_their_sources(tasks):
    vqa = tasks["biores_vqa_rad_native"]
    doc = vqa.test_docs()[0]
    assert vqa.doc_to_text(doc) == doc["question"].strip()  # LLaVA-Med: the question alone
    assert vqa.config.generation_kwargs["temperature"] == 0.2 and vqa.config.generation_kwargs["max_new_tokens"] == 1024
    pmc = tasks["biores_pmc_vqa_native"]
    doc = pmc.test_docs()[1]
    assert pmc.doc_to_text(doc) == (
        "Question: Which artery is occluded?Choices: A: Left Anterior Descending  B: Right coronary artery "
        " C: Circumflex  D: Left main The Answer is:"
    )


# ----------------------------------------------------------------------------- scoring


def _scores(task, doc, response: str) -> dict[str, float]:
    out = task.process_results(doc, [response])
    metrics = {m["metric"] for m in task.config.metric_list}
    assert set(out) == metrics
    assert out.pop("biores_skipped_images")["skipped"] == 0.0
    for record in out.values():
        assert {"score", "resolution", "orig_size", "eff_size", "biores_orig_width", "biores_eff_height"} <= set(record)
        assert record["orig_size"] == [doc["biores_orig_width"], doc["biores_orig_height"]]
    return {name: record["score"] for name, record in out.items()}


@pytest.mark.parametrize("dataset", ["vqa_rad", "pathvqa"])
def test_llava_med_protocol_scoring(tasks, fixtures, dataset):
    task = tasks[f"biores_{dataset}_224"]
    for doc, row in zip(task.test_docs_no_media(), fixtures[dataset].rows, strict=True):
        assert doc["question_type"] == ("closed" if row.closed else "open")
        right = _scores(task, doc, row.answer)
        assert right["accuracy"] == 1.0
        wrong = _scores(task, doc, row.wrong)["accuracy"]
        assert wrong == (
            0.0
            if row.closed
            else len(set(row.answer.lower().split()) & set(row.wrong.lower().split())) / len(row.answer.split())
        )
        if row.closed:  # yes/no accuracy: the response names yes/no and holds the answer
            assert _scores(task, doc, f"{row.answer.capitalize()}, clearly visible.")["closed_accuracy"] == 1.0
            assert _scores(task, doc, "It is hard to say")["accuracy"] == 0.0
        else:  # LLaVA-Med's recall: the answer's tokens found in the response
            assert _scores(task, doc, f"I think it is the {row.answer} here")["open_recall"] == 1.0
            words = row.answer.split()
            if len(words) > 1:
                assert _scores(task, doc, words[0])["open_recall"] == pytest.approx(1 / len(words))


@pytest.mark.parametrize("dataset", ["vqa_rad", "pathvqa"])
def test_direct_variant_scoring(tasks, fixtures, dataset):
    task = tasks[f"biores_{dataset}_direct_224"]
    for doc, row in zip(task.test_docs_no_media(), fixtures[dataset].rows, strict=True):
        right = _scores(task, doc, row.answer)
        assert right["accuracy"] == 1.0 and right["open_recall"] == 1.0
        assert _scores(task, doc, f"{row.answer.upper()}.")["accuracy"] == 1.0  # case, punctuation
        assert _scores(task, doc, row.wrong)["accuracy"] == 0.0
        if row.answer.lower() in ("yes", "no"):
            assert _scores(task, doc, f"{row.answer}, clearly visible")["accuracy"] == 1.0
            assert _scores(task, doc, f"{row.wrong}, it is not")["accuracy"] == 0.0
        else:
            assert _scores(task, doc, f"the {row.answer}")["accuracy"] == 1.0  # articles dropped
            verbose = _scores(task, doc, f"I think it is {row.answer} here")
            assert verbose["accuracy"] == 0.0 and verbose["open_recall"] == 1.0  # strict vs recall


def test_vqa_aggregations_split_closed_and_open(tasks):
    task = tasks["biores_vqa_rad_direct_native"]
    docs = task.test_docs_no_media()
    responses = ["yes", "yes", "left lung", "x-ray"]  # closed: 1 right 1 wrong; open: 1 right 1 wrong
    records = [task.process_results(doc, [resp]) for doc, resp in zip(docs, responses, strict=True)]
    agg = task.aggregation()
    values = {name: agg[name]([r[name] for r in records]) for name in agg}
    assert values == {
        "accuracy": 0.5,
        "closed_accuracy": 0.5,
        "open_accuracy": 0.5,
        "open_recall": 0.5,
        "biores_skipped_images": 0.0,
        "original_answer_type": 0.0,
    }  # the hub copy: no answer_type, closed = yes/no answer
    task = tasks["biores_vqa_rad_native"]  # LLaVA-Med: closed hits 1, 0; open recalls 1 ("left lung"), 0
    records = [
        task.process_results(doc, [resp]) for doc, resp in zip(task.test_docs_no_media(), responses, strict=True)
    ]
    values = {
        name: task.aggregation()[name]([r[name] for r in records])
        for name in ("accuracy", "closed_accuracy", "open_recall")
    }
    assert values == {"accuracy": 0.5, "closed_accuracy": 0.5, "open_recall": 0.5}


@pytest.mark.parametrize(
    "prefix,dataset",
    [
        ("biores_pmc_vqa", "pmc_vqa"),
        ("biores_pmc_vqa_direct", "pmc_vqa"),
        ("biores_pmc_vqa2", "pmc_vqa2"),
        ("biores_microvqa_direct", "microvqa"),
        ("biores_ubench_direct", "ubench"),
    ],
)
def test_multiple_choice_scoring(tasks, fixtures, prefix, dataset):
    task = tasks[f"{prefix}_native"]
    for doc, row in zip(task.test_docs_no_media(), fixtures[dataset].rows, strict=True):
        correct = row.options["ABCDEFGH".index(row.answer)]
        wrong = row.options["ABCDEFGH".index(row.wrong)]
        rights = (
            [f"{row.answer}:{correct}", correct]
            if prefix in ("biores_pmc_vqa", "biores_pmc_vqa2")
            else [
                row.answer,
                f"({row.answer})",
                f"{row.answer}. {correct}",
                f"{row.answer}) {correct}",
                correct,
                f"The answer is {correct}.",
            ]
        )
        for response in rights:
            assert _scores(task, doc, response)["accuracy"] == 1.0, response
        for response in (f"{row.wrong}:{wrong}", wrong, ""):
            assert _scores(task, doc, response)["accuracy"] == 0.0, response


def test_ubench_macro_average_over_source_datasets(tasks):
    for name in ("biores_ubench_native", "biores_ubench_direct_native"):
        task = tasks[name]
        docs = task.test_docs_no_media()
        responses = ["C", "B", "B", "B", "C", "A"]
        records = [task.process_results(doc, [resp]) for doc, resp in zip(docs, responses, strict=True)]
        agg = task.aggregation()
        assert agg["accuracy"]([r["accuracy"] for r in records]) == pytest.approx(4 / 6)
        # acevedo 1/2, dataset_null:1 0/1, kather 2/2 (one resolved from a null dataset), eulenberg 1/1
        assert agg["macro_dataset_accuracy"]([r["macro_dataset_accuracy"] for r in records]) == pytest.approx(2.5 / 4)


# ----------------------------------------------------------------------------- bad images, archives


def test_bad_image_stops_or_is_skipped_in_a_shipped_task(tmp_path, monkeypatch, real_env):
    """A truncated file decodes under lmms-eval's LOAD_TRUNCATED_IMAGES; biores' checked loader refuses it."""
    from fixtures_real import build_vqa_rad
    from lmms_eval.tasks import TaskManager, get_task_dict
    from PIL import ImageFile

    from biores_plugin.lmms_plugin.plugin import install
    from biores_plugin.task_library.images import BadImageError, placeholder

    install()
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True
    monkeypatch.setenv("BIORES_VQA_RAD_PATH", str(build_vqa_rad(tmp_path / "vqa_rad", truncate=1).root))
    monkeypatch.setenv("LMMS_EVAL_DATASETS_CACHE", str(tmp_path / "cache"))
    task = get_task_dict(["biores_vqa_rad_448"], TaskManager("ERROR", include_defaults=False))["biores_vqa_rad_448"]
    docs, plain = task.test_docs(), task.test_docs_no_media()
    assert task.doc_to_visual(docs[0])[0].size == (448, 336)
    with pytest.raises(BadImageError) as err:
        task.doc_to_visual(docs[1])
    assert (
        "\n" not in str(err.value)
        and "biores_vqa_rad_448, doc 1" in str(err.value)
        and "column 'image'" in str(err.value)
    )
    monkeypatch.setenv("BIORES_SKIP_BAD_IMAGES", "biores_vqa_rad_448")
    assert [im.tobytes() for im in task.doc_to_visual(docs[1])] == [placeholder().tobytes()]
    assert set(task.process_results(plain[1], ["no"])) == {"biores_skipped_images"}  # no score from a broken image
    assert task.process_results(plain[0], ["yes"])["accuracy"]["score"] == 1.0
    agg = task.aggregation()["biores_skipped_images"]
    assert agg([task.process_results(d, ["x"])["biores_skipped_images"] for d in plain]) == 1.0


def test_missing_images_raise_one_line_config_error(tmp_path, monkeypatch, real_env):
    import huggingface_hub.constants

    from biores_plugin.errors import BioresConfigError
    from biores_plugin.task_library import archive
    from biores_plugin.task_library.variant import ADAPTERS
    from biores_plugin.tasks.biores_pmc_vqa import utils as pmc

    archive._archive.cache_clear()
    try:
        # no local copy and no cached hub snapshot
        monkeypatch.delenv("BIORES_SLAKE_PATH")
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
        with pytest.raises(BioresConfigError) as err:
            ADAPTERS["BoKelvin/SLAKE"].archive()  # the wrapped SLAKE's images
        message = str(err.value)
        assert "\n" not in message and "BIORES_SLAKE_PATH" in message and "BoKelvin/SLAKE" in message
        # a local copy without the images
        (tmp_path / "meta-only").mkdir()
        monkeypatch.setenv("BIORES_PMC_VQA_PATH", str(tmp_path / "meta-only"))
        with pytest.raises(BioresConfigError, match="BIORES_PMC_VQA_PATH") as err:
            pmc.images()
        assert "\n" not in str(err.value)
        monkeypatch.setenv("BIORES_PMC_VQA_PATH", str(tmp_path / "nowhere"))
        with pytest.raises(BioresConfigError, match="is not a folder"):
            pmc.images()
        # a present archive, a missing member
        monkeypatch.setenv("BIORES_PMC_VQA_PATH", real_env["BIORES_PMC_VQA_PATH"])
        with pytest.raises(BioresConfigError, match="PMC9_F9.jpg"):
            pmc.images().read("PMC9_F9.jpg")
    finally:
        archive._archive.cache_clear()


# ----------------------------------------------------------------------------- end to end


def _record(sample: dict) -> dict:
    """A sample's size record: the biores task's metric record, or a wrapped task's ``biores``."""
    return sample["biores"] if "biores" in sample else sample["accuracy"]


def test_lmms_eval_cli_runs_every_sweep(tmp_path_factory, real_env, fixtures, lmms_model_args):
    """ONE real lmms-eval run: the _224 and _native variant of every sweep, found through the
    installed plugin (no --include_path), local copies through the env vars."""
    model, model_args = lmms_model_args
    names = [f"{p}_{v}" for d in DATASETS for p in SWEEPS[d] for v in ("224", "native")]
    out = tmp_path_factory.mktemp("real_cli") / "out"
    args = [
        "--model",
        model,
        *(["--model_args", model_args] if model_args else []),
        "--tasks",
        ",".join(names),
        "--limit",
        "3",
        "--gen_kwargs",
        "max_new_tokens=6",
    ]  # the protocols allow 1,024-2,048 tokens; a random model uses them all
    results = run_lmms_eval(args, out, env={**real_env, "OMP_NUM_THREADS": "1"})
    visual_tokens: dict[str, int] = {}
    for name in names:
        dataset = next(
            d for d in DATASETS if any(name.startswith(p + "_") and name[len(p) + 1 :] in VARIANTS for p in SWEEPS[d])
        )
        task_results = results["results"][name]
        for metric in [m["metric"] for m in results["configs"][name]["metric_list"]]:
            assert 0.0 <= task_results[f"{metric},none"] <= 1.0 or metric == "biores_skipped_images", (name, metric)
        assert task_results["biores_skipped_images,none"] == 0.0
        assert results["n-samples"][name]["effective"] == 3
        [samples_file] = list(out.glob(f"**/*_samples_{name}.jsonl"))
        samples = [json.loads(line) for line in samples_file.read_text().splitlines() if line.strip()]
        assert len(samples) == 3
        resolution = 224 if name.endswith("_224") else 0
        for sample in samples:
            row = fixtures[dataset].rows[sample["doc_id"]]
            record = _record(sample)
            assert record["orig_size"] == list(row.size) and record["resolution"] == ("224" if resolution else "native")
            eff = tuple(record["eff_size"])
            assert eff == row.size if resolution == 0 else max(eff) == min(224, max(row.size))
            counts = (sample.get("token_counts") or [None])[0] or {}
            if counts.get("visual_tokens") is not None:  # a real model (not lmms-eval's dummy)
                visual_tokens[name] = visual_tokens.get(name, 0) + counts["visual_tokens"]
    for prefix in [
        p for d in DATASETS for p in SWEEPS[d]
    ]:  # the capped variant really reaches the model with fewer pixels
        low, native = visual_tokens.get(f"{prefix}_224"), visual_tokens.get(f"{prefix}_native")
        assert low is not None and native is not None and low < native, prefix


def test_custom_resolutions_reuse_the_shipped_tasks(tmp_path, real_env):
    """``biores tasks --dataset X --resolutions ...``: folder tasks re-export the shipped utils,
    wrapped data sets (SLAKE) wrap lmms-eval's task again."""
    from lmms_eval.tasks import TaskManager, get_task_dict

    from biores_plugin.lmms_plugin.plugin import install
    from biores_plugin.task_authoring.taskgen import write_custom_sweep

    install()
    write_custom_sweep("slake", ["320", "native"], tmp_path, name="biores_slake_r")
    write_custom_sweep("vqa_rad", ["320", "native"], tmp_path, name="biores_vqa_rad_r")
    assert (tmp_path / "biores_vqa_rad_r" / "biores_vqa_rad_r_direct_320.yaml").is_file()
    tasks = get_task_dict(
        ["biores_slake_r_320", "biores_vqa_rad_r_320"],
        TaskManager("ERROR", include_path=str(tmp_path), include_defaults=False),
    )
    task = tasks["biores_slake_r_320"]
    doc = task.test_docs()[0]
    assert (doc["biores_orig_width"], doc["biores_eff_width"], doc["biores_eff_height"]) == (1200, 320, 240)
    assert task.doc_to_visual(doc)[0].size == (320, 240)
    assert task.process_results(task.test_docs_no_media()[0], ["yes"])["slake_accuracy"]["is_correct"] is True
    task = tasks["biores_vqa_rad_r_320"]
    assert task.doc_to_visual(task.test_docs()[0])[0].size == (320, 240)
