import io

import numpy as np
import pytest
import torch
from PIL import Image

from service.imaging import ImageDecodeError, decode_image, decoding_notes, load_image


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def test_png_decodes_pixel_exactly_to_unit_floats() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    tensor = decode_image(_encode(Image.fromarray(pixels), "PNG"))
    assert tensor.shape == (3, 5, 7) and tensor.dtype == torch.float32
    np.testing.assert_array_equal((tensor * 255).round().byte().permute(1, 2, 0).numpy(), pixels)


def test_greyscale_and_alpha_become_rgb() -> None:
    assert decode_image(_encode(Image.new("L", (4, 4), 128), "PNG")).shape == (3, 4, 4)
    assert decode_image(_encode(Image.new("RGBA", (4, 4), (1, 2, 3, 4)), "PNG")).shape[0] == 3


def test_exif_orientation_is_applied() -> None:
    image = Image.new("RGB", (6, 2), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    tensor = decode_image(_encode(image, "JPEG", exif=exif.tobytes()))
    assert tensor.shape == (3, 6, 2)


def test_gif_uses_the_first_frame() -> None:
    frames = [Image.new("P", (4, 4), 1), Image.new("P", (4, 4), 2)]
    palette = [0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9)
    for frame in frames:
        frame.putpalette(palette)
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    tensor = decode_image(data)
    assert tensor[0].mean().item() == pytest.approx(1.0) and tensor[1].mean().item() == 0.0


def test_garbage_is_refused_with_the_accepted_formats() -> None:
    with pytest.raises(ImageDecodeError, match="accepted formats: PNG"):
        decode_image(b"definitely not an image")


def test_unaccepted_format_is_refused() -> None:
    with pytest.raises(ImageDecodeError, match="accepted formats"):
        decode_image(_encode(Image.new("RGB", (4, 4)), "TIFF"))


def test_truncated_image_is_refused() -> None:
    data = _encode(Image.new("RGB", (64, 64), (10, 20, 30)), "PNG")
    with pytest.raises(ImageDecodeError):
        decode_image(data[: len(data) // 2])


def test_pixel_limit_is_enforced_before_decoding() -> None:
    data = _encode(Image.new("RGB", (100, 100)), "PNG")
    with pytest.raises(ImageDecodeError, match="10,000 pixels; the limit is 9,999"):
        decode_image(data, max_pixels=9_999)


def test_unreadable_file_names_the_file(tmp_path) -> None:
    with pytest.raises(ImageDecodeError, match=r"absent\.png"):
        load_image(tmp_path / "absent.png")


def test_sixteen_bit_greyscale_is_scaled_not_clipped() -> None:
    wide = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    tensor = decode_image(_encode(Image.fromarray(wide), "PNG"))
    assert (tensor[0, 0] * 255).round().tolist() == [0.0, 100.0, 255.0]


def test_transparent_pixels_are_composited_onto_white() -> None:
    rgba = Image.new("RGBA", (2, 1), (0, 0, 0, 0))
    rgba.putpixel((1, 0), (0, 0, 0, 255))
    tensor = decode_image(_encode(rgba, "PNG"))
    assert tensor[:, 0, 0].tolist() == [1.0, 1.0, 1.0]  # transparent: white
    assert tensor[:, 0, 1].tolist() == [0.0, 0.0, 0.0]  # opaque black stays black


def test_empty_bytes_are_refused_as_empty() -> None:
    with pytest.raises(ImageDecodeError, match="empty") as caught:
        decode_image(b"")
    assert caught.value.reason == "empty"


def test_a_certificate_says_where_its_pixels_may_differ_from_what_a_viewer_shows() -> None:
    rgba = _encode(Image.new("RGBA", (4, 4), (0, 0, 0, 128)), "PNG")
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = _encode(Image.new("RGB", (6, 2)), "JPEG", exif=exif.tobytes())
    frames = [Image.new("RGB", (4, 4), colour) for colour in ("red", "green", "blue")]
    animated = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert [len(decoding_notes(data)) for data in (rgba, rotated, animated)] == [1, 1, 1]
    assert "composited onto white" in decoding_notes(rgba)[0]
    assert "EXIF orientation" in decoding_notes(rotated)[0]
    assert "3 frames" in decoding_notes(animated)[0]
    # Controls: an opaque PNG, an upright JPEG and garbage (decoding refuses it) have none.
    plain = [_encode(Image.new("RGB", (4, 4)), "PNG"), _encode(Image.new("RGB", (6, 2)), "JPEG")]
    assert [decoding_notes(data) for data in (*plain, b"not an image")] == [[], [], []]
