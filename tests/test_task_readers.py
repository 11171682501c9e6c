"""The shipped tasks' data readers on their own: PMC-VQA's two CSV versions, the image archive's lookups."""

from __future__ import annotations


def test_pmc_vqa_reads_both_csv_versions():
    from datasets import Dataset

    from biores_plugin.tasks.biores_pmc_vqa import utils as pmc

    assert pmc.strip_letter(" B: Focal uptake ", "B") == "Focal uptake"
    assert pmc.strip_letter("A:Diffuse", "A") == "Diffuse"
    assert pmc.strip_letter("A. CT", "A") == "CT" and pmc.strip_letter("CT", "A") == "CT"
    v2 = Dataset.from_dict(
        {
            "index": [0],
            "Figure_path": ["x.jpg"],
            "Caption": ["c"],
            "Question": ["q?"],
            "Choice A": ["A:one"],
            "Choice B": ["B:two"],
            "Choice C": ["C:three"],
            "Choice D": ["D:four"],
            "Answer": ["C"],
            "split": ["test"],
        }
    )
    doc = pmc._prepare(v2)[0]
    assert doc["options"] == ["one", "two", "three", "four"] and doc["answer_letter"] == "C"
    v1_text_only = Dataset.from_dict(
        {  # no usable label: matched from the answer text
            "Figure_path": ["x.jpg"],
            "Question": ["q?"],
            "Anwser": ["four"],
            "Choice A": ["A:one"],
            "Choice B": ["B:two"],
            "Choice C": ["C:three"],
            "Choice D": ["D:four"],
        }
    )
    assert pmc._prepare(v1_text_only)[0]["answer_letter"] == "D"


def test_image_archive_reads_zip_folder_and_nested_members(tmp_path):
    import zipfile

    from fixtures_real import image_bytes

    from biores_plugin.task_library.archive import ImageArchive

    (tmp_path / "imgs" / "xmlab9").mkdir(parents=True)
    (tmp_path / "imgs" / "xmlab9" / "source.jpg").write_bytes(image_bytes((30, 20), 1))
    with zipfile.ZipFile(tmp_path / "imgs.zip", "w") as zf:
        zf.writestr("Slake1.0/imgs/xmlab7/source.jpg", image_bytes((40, 10), 2))  # unexpected nesting
    archive = ImageArchive(tmp_path, ["imgs.zip"], ["imgs"])
    assert archive.size("xmlab9/source.jpg") == (30, 20)  # unpacked folder
    assert archive.size("xmlab7/source.jpg") == (40, 10)  # found by trailing path
    assert archive.open("xmlab7/source.jpg").mode == "RGB"
