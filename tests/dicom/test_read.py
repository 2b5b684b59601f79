"""What a file is, where its pixels are, and stored values -> HU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_rescale

from cacflow.conventions import PADDING_HU
from cacflow.dicom.read import (
    DicomReadError,
    PixelFormat,
    decode_slice,
    pixel_format,
    read_header,
    read_stored_native,
    stored_to_hu,
)


def test_non_dicom_files(tmp_path: Path) -> None:
    files = {
        "notes.txt": b"patient list\n",
        "empty": b"",
        "image.png": b"\x89PNG\r\n\x1a\n" + bytes(200),
        "fake.dcm": bytes(128) + b"DICX" + bytes(50),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        assert read_header(str(tmp_path / name)).kind == "not_dicom", name


def test_header_record_of_a_written_slice(write_series) -> None:
    hu, spec, paths = write_series(n=2, kernel="FC03", manufacturer="TOSHIBA")
    h = read_header(str(paths[1]))
    assert h.kind == "dicom"
    assert h.series_uid == spec.series_uid
    assert h.modality == "CT" and h.kernel == "FC03" and h.manufacturer == "TOSHIBA"
    assert h.image_type == "ORIGINAL\\PRIMARY\\AXIAL"
    np.testing.assert_allclose(h.position, spec.position(1))
    assert h.orientation == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    assert (h.rows, h.columns, h.pixel_spacing) == (32, 32, (0.7, 0.7))
    assert (h.rescale_slope, h.rescale_intercept) == (1.0, -1024.0)
    # the pixel value starts right after the 12-byte explicit-VR Pixel Data element header
    data = paths[1].read_bytes()
    assert h.pixel_offset == data.rindex(b"\xe0\x7f\x10\x00OW") + 12
    assert h.pixel_format == PixelFormat(16, 16, True, 1, None)


def test_truncated_files_are_unreadable(write_series) -> None:
    _, _, paths = write_series(n=3)
    data = paths[0].read_bytes()
    paths[0].write_bytes(data[:-100])  # inside the pixel data
    paths[1].write_bytes(data[:400])  # inside the header
    for p in paths[:2]:
        h = read_header(str(p))
        assert h.kind == "unreadable" and h.truncated, p
    assert read_header(str(paths[2])).kind == "dicom"


def test_preamble_less_dataset_is_dicom(tmp_path: Path, write_series) -> None:
    _, spec, paths = write_series(n=1)
    ds = pydicom.dcmread(paths[0])
    bare = tmp_path / "bare"
    ds.preamble = None
    del ds.file_meta
    pydicom.dcmwrite(bare, ds, implicit_vr=True, little_endian=True)
    assert bare.read_bytes()[:2] == b"\x08\x00"
    h = read_header(str(bare))
    assert h.kind == "dicom" and h.series_uid == spec.series_uid
    # implicit VR: the pixel value follows an 8-byte element header
    assert h.pixel_offset == bare.read_bytes().rindex(b"\xe0\x7f\x10\x00") + 8


def test_dicomdir_is_non_image() -> None:
    p = get_testdata_file("DICOMDIR", read=False)
    assert read_header(str(p)).kind == "non_image"


def test_stored_to_hu_hand_computed() -> None:
    stored = np.array([[0, 1000, 3000], [-2000, 24, 1024]], dtype=np.int16)
    hu = stored_to_hu(stored, 1.0, -1024.0, (-2000, -2000))
    np.testing.assert_array_equal(hu, [[-1024, -24, 1976], [PADDING_HU, -1000, 0]])
    assert hu.dtype == np.int16
    hu = stored_to_hu(np.array([[3, 10]], dtype=np.uint16), 0.5, -1.0, None)
    np.testing.assert_array_equal(hu, [[0, 4]])  # 0.5 rounds to even (0), 4.0 stays
    hu = stored_to_hu(np.array([[65535]], dtype=np.uint16), 1.0, 0.0, None)
    assert hu[0, 0] == 32767  # clipped to int16
    hu = stored_to_hu(np.array([[32000, -32000]], dtype=np.int16), 1.0, 1000.0, None)
    np.testing.assert_array_equal(hu, [[32767, -31000]])  # no int16 wrap-around
    hu = stored_to_hu(np.array([[5, 9]], dtype=np.uint16), 1.0, -1024.0, (0, 6))
    np.testing.assert_array_equal(hu, [[PADDING_HU, -1015]])  # a padding range


def test_padding_value_written_unsigned_is_read_signed(write_series) -> None:
    _, _, paths = write_series(n=1)
    ds = pydicom.dcmread(paths[0])
    ds.add_new(0x00280120, "US", 65536 - 2000)  # -2000 as raw 16 bits
    ds.add_new(0x00280121, "US", 65536 - 1500)
    assert pixel_format(ds).padding == (-2000, -1500)


def test_ct_small_decodes_like_pydicom() -> None:
    """pydicom's shipped CT slice: HU = stored * slope + intercept, padding -> -1024."""
    p = get_testdata_file("CT_small.dcm")
    ds = pydicom.dcmread(p)
    stored = ds.pixel_array
    expected = np.rint(apply_rescale(stored, ds)).astype(np.int16)
    expected[stored == int(ds.PixelPaddingValue)] = PADDING_HU
    h = read_header(p)
    assert h.pixel_format.padding == (int(ds.PixelPaddingValue),) * 2
    native = stored_to_hu(
        read_stored_native(p, h.pixel_offset, h.rows, h.columns, h.pixel_format),
        h.rescale_slope,
        h.rescale_intercept,
        h.pixel_format.padding,
    )
    np.testing.assert_array_equal(native, expected)
    np.testing.assert_array_equal(decode_slice(p), expected)


def test_stale_offset_is_detected(write_series) -> None:
    _, _, paths = write_series(n=1)
    h = read_header(str(paths[0]))
    with pytest.raises(DicomReadError):
        read_stored_native(str(paths[0]), h.pixel_offset - 2, 32, 32, h.pixel_format)


def test_bits_stored_mask() -> None:
    from cacflow.dicom.read import _mask_bits

    # 12 of 16 bits used: unsigned values drop the high nibble, signed ones sign-extend
    assert int(_mask_bits(np.array([0xF123], dtype=np.uint16), 12, False)[0]) == 0x123
    assert int(_mask_bits(np.array([0x0FFF], dtype=np.int16), 12, True)[0]) == -1
    assert int(_mask_bits(np.array([0x07FF], dtype=np.int16), 12, True)[0]) == 2047
