"""DICOM through the one loader, on every file pydicom ships in its wheel (real CT / MR / US / RGB
files made by others), compared with pydicom's own decoding and rendering."""

from __future__ import annotations

import io
import pathlib
import re
import warnings

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from biores_plugin.errors import BioresImageError
from biores_plugin.image_io import image_meta, image_size, load_array, load_image

TEST_FILES = pathlib.Path(pydicom.__file__).parent / "data" / "test_files"
ALL_FILES = sorted(p for p in TEST_FILES.rglob("*") if p.is_file())


def _pydicom_frame(path: pathlib.Path):
    """pydicom's own decoding (the reference), or None where pydicom itself cannot decode the file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path)
            return ds, ds.pixel_array
        except Exception:  # noqa: BLE001 - the reference fails: biores must then give one line
            return None


def test_the_wheel_ships_the_files_this_suite_is_about():
    assert len(ALL_FILES) >= 80
    assert (TEST_FILES / "CT_small.dcm").exists()


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: str(p.relative_to(TEST_FILES)))
def test_every_shipped_file_loads_at_columns_x_rows_or_gets_one_line(path):
    ref = _pydicom_frame(path)
    if ref is not None:  # every file pydicom decodes loads through biores at Columns x Rows
        ds, _ = ref
        image = load_image(path)
        assert image.mode == "RGB"
        assert image.size == (int(ds.Columns), int(ds.Rows))
        assert image_size(path) == image.size
        return
    with pytest.raises(BioresImageError) as info:
        load_image(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith("cannot load image ")
    assert "TIFF" not in message  # the bug of issue 23: a DICOM preamble is not a TIFF diagnosis


def test_ct_small_was_a_tiff_diagnosis_and_now_is_a_ct():
    # its 128-byte preamble is a TIFF header: DICOM must be recognised first
    assert (TEST_FILES / "CT_small.dcm").read_bytes()[:4] == b"II*\x00"
    meta = image_meta(TEST_FILES / "CT_small.dcm")
    assert meta["format"] == "DICOM" and meta["modality"] == "CT"
    assert meta["pixel_spacing_mm"] == pytest.approx([0.661468, 0.661468])
    assert meta["mpp"] == pytest.approx(661.468)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.astype(np.float64).ravel(), b.astype(np.float64).ravel())[0, 1])


@pytest.mark.parametrize("name", ["MR_small.dcm", "693_J2KI.dcm", "examples_overlay.dcm", "MR_small_bigendian.dcm"])
def test_windowed_ct_mr_matches_pydicoms_modality_and_voi_rendering(name):
    ds, raw = _pydicom_frame(TEST_FILES / name)
    reference = apply_voi_lut(apply_modality_lut(raw, ds), ds)
    ours = load_array(TEST_FILES / name)[:, :, 0]
    assert _correlation(ours, reference) >= 0.99
    # not only correlated: the same picture up to 8-bit rounding (one affine map, residual <= 1 level)
    slope, offset = np.polyfit(reference.astype(np.float64).ravel(), ours.astype(np.float64).ravel(), 1)
    assert slope > 0
    assert np.abs(slope * reference + offset - ours).max() <= 1.0


def test_window_override_and_hounsfield_units_kept_exact():
    path = TEST_FILES / "CT_small.dcm"  # no window in the file: rescale intercept -1024
    ds, raw = _pydicom_frame(path)
    hu = apply_modality_lut(raw, ds)
    raw_out = load_array(path, normalize="raw")[:, :, 0]
    assert raw_out.dtype == np.float32
    np.testing.assert_array_equal(raw_out, hu.astype(np.float32))  # signed 16-bit kept exact
    full = load_array(path)[:, :, 0]  # no window: the full range of the frame
    assert _correlation(full, hu) > 0.999 and full.min() == 0 and full.max() == 255
    soft = load_array(path, window=(40, 400))[:, :, 0]
    low, high = 40 - 200, 40 + 200
    assert (soft[hu <= low - 1] == 0).all() and (soft[hu >= high] == 255).all()
    inside = (hu > low + 10) & (hu < high - 10)
    assert inside.any() and _correlation(soft[inside], hu[inside]) > 0.999


def test_monochrome1_is_inverted(tmp_path):
    ds = pydicom.dcmread(TEST_FILES / "MR_small.dcm")
    normal = load_array(TEST_FILES / "MR_small.dcm")[:, :, 0]
    ds.PhotometricInterpretation = "MONOCHROME1"
    path = tmp_path / "mono1.dcm"
    ds.save_as(path)
    inverted = load_array(path)[:, :, 0]
    np.testing.assert_array_equal(inverted.astype(int), 255 - normal.astype(int))


def test_colour_palette_and_ybr_match_pydicoms_rgb():
    from pydicom.pixels import apply_color_lut

    ds, raw = _pydicom_frame(TEST_FILES / "examples_palette.dcm")
    rgb16 = apply_color_lut(raw, ds)
    ours = load_array(TEST_FILES / "examples_palette.dcm")
    np.testing.assert_array_equal(ours, np.rint(rgb16 / 65535 * 255).astype(np.uint8))
    ds, rgb = _pydicom_frame(TEST_FILES / "SC_ybr_full_422_uncompressed.dcm")  # pydicom converts YBR
    np.testing.assert_array_equal(load_array(TEST_FILES / "SC_ybr_full_422_uncompressed.dcm"), rgb)
    ds, rgb16 = _pydicom_frame(TEST_FILES / "SC_rgb_rle_16bit.dcm")
    np.testing.assert_array_equal(
        load_array(TEST_FILES / "SC_rgb_rle_16bit.dcm"), np.rint(rgb16 / 65535 * 255).astype(np.uint8)
    )


def test_multiframe_default_is_the_middle_frame_and_frame_selects():
    path = TEST_FILES / "examples_ybr_color.dcm"  # 30 frames
    _ds, frames = _pydicom_frame(path)
    np.testing.assert_array_equal(load_array(path), frames[15])
    np.testing.assert_array_equal(load_array(path, frame=3), frames[3])
    with pytest.raises(BioresImageError, match="frame 30 out of range: the DICOM file has 30 frames"):
        load_image(path, frame=30)
    with pytest.raises(BioresImageError, match="applies to DICOM files only"):
        load_image(np.zeros((4, 4), np.uint8), frame=0)


def test_frame_bomb_guard_before_decoding():
    path = TEST_FILES / "examples_ybr_color.dcm"  # 30 x 240 x 320 x 3 values
    with pytest.raises(BioresImageError, match=r"30 frames x 240 x 320 x 3 holds .*\(possible decompression bomb\)"):
        load_image(path, max_pixels=240 * 320)
    with pytest.raises(BioresImageError, match="exceeds max_pixels"):
        load_image(path, max_pixels=1000)


def test_bytes_and_file_objects_take_the_same_route():
    data = (TEST_FILES / "MR_small.dcm").read_bytes()
    np.testing.assert_array_equal(load_array(data), load_array(io.BytesIO(data)))


def test_no_pixel_data_and_truncation_say_what_the_file_is(tmp_path):
    with pytest.raises(BioresImageError, match=r"DICOM file without pixel data \(RT Plan Storage, modality RTPLAN\)"):
        load_image(TEST_FILES / "rtplan.dcm")
    with pytest.raises(BioresImageError, match=r"without pixel data \(Basic Text SR Storage, modality SR\)"):
        load_image(TEST_FILES / "reportsi.dcm")
    with pytest.raises(BioresImageError, match="DICOMDIR"):
        load_image(TEST_FILES / "dicomdirtests" / "DICOMDIR")
    cut = tmp_path / "cut.dcm"
    cut.write_bytes((TEST_FILES / "CT_small.dcm").read_bytes()[:20000])
    with pytest.raises(BioresImageError, match="truncated") as info:
        load_image(cut)
    assert "TIFF" not in str(info.value)


def test_mpp_resamples_dicom_by_its_pixel_spacing():
    path = TEST_FILES / "MR_small.dcm"  # 64 x 64 at 0.3125 mm = 312.5 um/px
    assert load_image(path, mpp=625.0).size == (32, 32)
    assert load_image(path, mpp=100.0).size == (64, 64)  # finer than stored: never upsampled
    with pytest.raises(BioresImageError, match="declares none"):
        load_image(np.zeros((8, 8), np.uint8), mpp=1.0)


def test_biores_info_reports_dicom_spacing_and_one_line_errors(capsys):
    import json

    from biores_plugin.cli import main

    assert main(["info", str(TEST_FILES / "CT_small.dcm"), "--policy", "native", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["width"], row["height"], row["format"]) == (128, 128, "DICOM")
    assert row["pixel_spacing_mm"] == pytest.approx([0.661468, 0.661468])
    assert row["mpp"] == pytest.approx(661.468)
    assert main(["info", str(TEST_FILES / "rtplan.dcm")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "DICOM file without pixel data (RT Plan Storage" in err


@pytest.mark.parametrize(
    "options, message",
    [
        ({"window": (40, 0)}, "window must be (center, width) with width >= 1"),
        ({"window": "soft"}, "window must be (center, width)"),
        ({"frame": -1}, "frame must be None or an int >= 0"),
        ({"mpp": 0}, "mpp must be a positive number"),
        ({"mpp": float("nan")}, "mpp must be a positive number"),
        ({"region": (0, 0, 0, 5)}, "width, height > 0"),
        ({"region": (0, 0, 5)}, "region must be (x, y, width, height)"),
    ],
)
def test_new_options_are_checked_before_reading(options, message):
    from biores_plugin.image_io import ImageOptionError

    with pytest.raises(ImageOptionError, match=re.escape(message)):
        load_image(TEST_FILES / "CT_small.dcm", **options)


def test_wrapped_lmms_eval_tasks_decode_dicom_cells_too():
    # eval/images.decode serves upstream tasks' image cells; Pillow alone would misread CT_small as TIFF
    from biores_plugin.eval.images import decode_cell

    data = (TEST_FILES / "CT_small.dcm").read_bytes()
    image = decode_cell({"bytes": data, "path": None})
    assert image.size == (128, 128)
    np.testing.assert_array_equal(np.asarray(image), np.asarray(load_image(data)))


def test_a_syntax_without_decoder_is_one_line(tmp_path):
    from pydicom.encaps import encapsulate
    from pydicom.uid import MPEG2MPML

    ds = pydicom.dcmread(TEST_FILES / "MR_small.dcm")
    ds.file_meta.TransferSyntaxUID = MPEG2MPML  # video: no pydicom decoder, whatever is installed
    ds.PixelData = encapsulate([b"\x00" * 64])
    ds["PixelData"].VR = "OB"
    path = tmp_path / "video.dcm"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(BioresImageError, match=r"MPEG2 Main Profile / Main Level .* has no pixel decoder in pydicom"):
        load_image(path)
    assert image_size(path) == (64, 64)  # the header still reads
