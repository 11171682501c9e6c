"""Pyramidal OME-TIFF / TIFF read at a physical pixel size (``mpp=``) or in part (``region=``).

The pyramids are written with tifffile as slide scanners write them: OME-XML with
PhysicalSizeX, reduced levels in sub-IFDs, tiles, compression.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import tifffile
from PIL import Image

from biores_plugin.errors import BioresImageError
from biores_plugin.image_io import image_meta, load_array, load_image
from biores_plugin.image_io.pyramid import TILES_READ

BASE = 4096
MIB = 1 << 20


def _base(size: int) -> np.ndarray:
    """A smooth RGB test card (cheap to build, compresses well, changes across every tile)."""
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    r = np.broadcast_to(ramp[None, :], (size, size))
    g = np.broadcast_to(ramp[:, None], (size, size))
    b = (r + g) / 2
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def _write_pyramid(path, base: np.ndarray, factors=(2, 4), mpp=0.25, tile=256, **extra) -> None:
    with tifffile.TiffWriter(path, ome=True) as tw:
        metadata = {"axes": "YXS", "PhysicalSizeX": mpp, "PhysicalSizeY": mpp, "PhysicalSizeXUnit": "µm"}
        options = {"tile": (tile, tile), "compression": "zlib", "photometric": "rgb", **extra}
        tw.write(base, subifds=len(factors), metadata=metadata, **options)
        for f in factors:
            level = np.asarray(Image.fromarray(base).reduce(f))
            tw.write(level, subfiletype=1, **options)


@pytest.fixture(scope="module")
def pyramid(tmp_path_factory):
    path = tmp_path_factory.mktemp("slides") / "slide.ome.tif"
    _write_pyramid(path, _base(BASE), factors=(2, 4, 8))
    return path


def _peak(func) -> tuple[object, int]:
    tracemalloc.start()
    try:
        result = func()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_meta_reads_physical_size_and_levels(pyramid):
    meta = image_meta(pyramid)
    assert meta["format"] == "OME-TIFF"
    assert meta["mpp"] == pytest.approx(0.25)
    assert meta["levels"] == [[4096, 4096], [2048, 2048], [1024, 1024], [512, 512]]


def test_one_um_per_px_is_1024_without_decoding_the_base_level(pyramid):
    before = dict(TILES_READ)
    image, peak = _peak(lambda: load_image(pyramid, mpp=1.0))
    assert image.size == (1024, 1024)
    assert TILES_READ["tiles"] - before["tiles"] == 16  # the 1024 px level: 4 x 4 tiles of 256
    assert TILES_READ["whole_levels"] == before["whole_levels"]
    assert peak < 12 * MIB  # the base level alone is 48 MiB of RGB
    expected = np.asarray(Image.fromarray(_base(BASE)).reduce(4))
    np.testing.assert_array_equal(np.asarray(image), expected)  # that level, exactly


def test_the_measurement_sees_a_base_level_decode(pyramid):
    # the same tracing on a read that must decode the base level: proves the bound above can fail
    image, peak = _peak(lambda: load_image(pyramid, mpp=0.25))
    assert image.size == (4096, 4096)
    assert peak >= 48 * MIB


def test_between_levels_reads_the_finer_one_and_resamples_exactly(tmp_path):
    path = tmp_path / "two_levels.ome.tif"
    _write_pyramid(path, _base(1024), factors=(2,))
    before = TILES_READ["tiles"]
    image = load_image(path, mpp=0.7)  # 1024 * 0.25 / 0.7 = 365.7 -> 366; level 512 (0.5 um) serves
    assert image.size == (366, 366)
    assert TILES_READ["tiles"] - before == 4  # the 512 px level only
    assert load_image(path, mpp=0.1).size == (1024, 1024)  # finer than stored: never upsampled


def test_region_in_base_pixels_reads_only_its_tiles(pyramid):
    base = _base(BASE)
    before = TILES_READ["tiles"]
    crop = load_array(pyramid, region=(1000, 2000, 300, 200))
    assert TILES_READ["tiles"] - before == 6  # x 1000..1300 touches 3 tiles of 256, y 2000..2200 two
    np.testing.assert_array_equal(crop, base[2000:2200, 1000:1300])
    small = load_image(pyramid, region=(1024, 1024, 2048, 1024), mpp=2.0)
    assert small.size == (256, 128)
    expected = np.asarray(Image.fromarray(base).reduce(8))[128:256, 128:384]
    np.testing.assert_array_equal(np.asarray(small), expected)
    with pytest.raises(BioresImageError, match="outside the 4096x4096 image"):
        load_image(pyramid, region=(4000, 0, 200, 10))


def test_size_guards_apply_to_what_is_decoded(pyramid):
    # the slide is 16.8 MP; a 2 MP limit refuses the base but serves the 1024 px level
    assert load_image(pyramid, mpp=1.0, max_pixels=2_000_000).size == (1024, 1024)
    with pytest.raises(BioresImageError, match="exceeds max_pixels=2000000; the file is a pyramid of 4 levels"):
        load_image(pyramid, max_pixels=2_000_000)


def test_resolution_tags_in_cm_and_missing_size(tmp_path):
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, _base(64), photometric="rgb", resolution=(2e4, 2e4), resolutionunit="CENTIMETER")
    assert image_meta(plain)["mpp"] == pytest.approx(0.5)
    assert load_image(plain, mpp=1.0).size == (32, 32)  # a plain TIFF, resampled as a whole
    bare = tmp_path / "bare.tif"
    tifffile.imwrite(bare, _base(64), photometric="rgb")
    assert image_meta(bare)["mpp"] is None
    with pytest.raises(BioresImageError, match="declares none"):
        load_image(bare, mpp=1.0)


def test_sixteen_bit_grayscale_pyramid_keeps_its_dtype_until_the_end(tmp_path):
    path = tmp_path / "gray16.ome.tif"
    base = (np.arange(512 * 512, dtype=np.uint32).reshape(512, 512) % 65536).astype(np.uint16)
    with tifffile.TiffWriter(path, ome=True) as tw:
        tw.write(base, subifds=1, tile=(128, 128), compression="zlib", metadata={"axes": "YX", "PhysicalSizeX": 0.5})
        tw.write(base[::2, ::2], subfiletype=1, tile=(128, 128), compression="zlib")
    raw = load_array(path, mpp=1.0, normalize="raw")
    assert raw.shape == (256, 256, 1) and raw.dtype == np.float32
    np.testing.assert_array_equal(raw[:, :, 0], base[::2, ::2].astype(np.float32))


def test_biores_info_mpp_reports_the_level_read(pyramid, capsys):
    import json

    from biores_plugin.cli import main

    assert main(["info", str(pyramid), "--mpp", "1", "--policy", "native", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["width"], row["height"]) == (1024, 1024)
    assert row["mpp"] == pytest.approx(1.0) and row["stored_mpp"] == pytest.approx(0.25)
    assert row["format"] == "OME-TIFF" and row["stored_width"] == 4096
    with pytest.raises(SystemExit) as exit_info:  # a flag error: argparse's one line, status 2
        main(["info", str(pyramid), "--mpp", "0"])
    assert exit_info.value.code == 2
    assert "--mpp: must be a positive number" in capsys.readouterr().err


@pytest.mark.parametrize("compression", ["jpeg", "lzw", "jpeg2000"])
def test_tiles_of_every_codec_decode_as_tifffile_decodes_them(tmp_path, compression):
    # imagecodecs (a dependency) decodes the slide codecs; the tile reader must match tifffile's own
    path = tmp_path / f"slide_{compression}.tif"
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8).repeat(16, 0).repeat(16, 1)  # 512 px
    with tifffile.TiffWriter(path) as tw:
        options = {"tile": (128, 128), "compression": compression, "photometric": "rgb"}
        tw.write(base, subifds=1, resolution=(2e4, 2e4), resolutionunit="CENTIMETER", **options)  # 0.5 um/px
        tw.write(base[::2, ::2], subfiletype=1, **options)
    with tifffile.TiffFile(path) as tf:
        full, level = tf.series[0].levels[0].asarray(), tf.series[0].levels[1].asarray()
    np.testing.assert_array_equal(load_array(path, mpp=1.0), level)
    np.testing.assert_array_equal(load_array(path, region=(100, 200, 300, 256)), full[200:456, 100:400])


def test_region_on_every_source_kind_is_the_same_crop():
    import io

    pixels = np.arange(80 * 100 * 3, dtype=np.uint8).reshape(80, 100, 3)
    png = io.BytesIO()
    Image.fromarray(pixels).save(png, "PNG")
    for source in (pixels, Image.fromarray(pixels), png.getvalue()):
        np.testing.assert_array_equal(load_array(source, region=(10, 20, 30, 40)), pixels[20:60, 10:40])
    with pytest.raises(BioresImageError, match=r"region \(90, 0, 20, 5\) .* outside the 100x80 image"):
        load_image(Image.fromarray(pixels), region=(90, 0, 20, 5))


def test_aperio_svs_layout_reads_its_mpp_and_levels(tmp_path):
    # the Aperio layout tifffile recognises: tiled baseline, stripped thumbnail, tiled reduced levels,
    # the pixel size only in the description ("MPP = 0.5")
    path = tmp_path / "slide.svs"
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8).repeat(16, 0).repeat(16, 1)  # 1024 px
    head = "Aperio Image Library v12.0.15 \n"
    options = {"compression": "jpeg", "photometric": "rgb", "metadata": None}
    level = np.asarray(Image.fromarray(base).reduce(4))
    with tifffile.TiffWriter(path) as tw:
        tw.write(
            base,
            tile=(256, 256),
            description=head + "1024x1024 (256x256) JPEG/RGB Q=70|AppMag = 20|MPP = 0.5",
            **options,
        )
        tw.write(base[::8, ::8], description=head + "1024x1024 -> 128x128 - |MPP = 0.5", **options)
        tw.write(level, tile=(256, 256), description=head + "1024x1024 -> 256x256 - |MPP = 0.5", **options)
    meta = image_meta(path)
    assert (meta["format"], meta["mpp"], meta["levels"]) == ("SVS", 0.5, [[1024, 1024], [256, 256]])
    with tifffile.TiffFile(path) as tf:
        decoded_level = tf.series[0].levels[1].asarray()
    before = TILES_READ["tiles"]
    np.testing.assert_array_equal(load_array(path, mpp=2.0), decoded_level)
    assert TILES_READ["tiles"] - before == 1  # the one tile of the 256 px level
