"""Hostile and unusual input: files over the limits, image modes a phone or a scanner writes,
symbolic links, and CSVs with many bad rows. Each is a named bad file, never a traceback."""

from __future__ import annotations

import io
import os
import re
import zipfile

import numpy as np
import pytest
from PIL import Image

from ferkit.data import DataError, read_fer2013
from ferkit.data.images import MB, BadImage, ReadLimits, pixel_array, read_gray
from tests.factories import (
    blank_png,
    csv_rows,
    face,
    image_tree,
    jpeg_bytes,
    understate_member_size,
    write_csv,
    write_folder,
    write_zip,
    write_zip_with_large_member,
)

BAD = "train/fear/Training_5000.png"


def encoded(img: Image.Image, fmt: str = "PNG", **save) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **save)
    return buffer.getvalue()


class TestLimits:
    def test_defaults_come_from_the_environment(self, monkeypatch):
        monkeypatch.setenv("FERKIT_MAX_IMAGE_PIXELS", "1000")
        monkeypatch.setenv("FERKIT_MAX_FILE_MB", "0.5")
        limits = ReadLimits.from_env(max_files=7)
        assert (limits.max_image_pixels, limits.max_file_bytes, limits.max_files) == (1000, MB // 2, 7)
        assert limits.max_archive_bytes == ReadLimits().max_archive_bytes

    def test_a_bad_setting_is_named(self, monkeypatch):
        monkeypatch.setenv("FERKIT_MAX_FILES", "lots")
        with pytest.raises(ValueError, match=r"\$FERKIT_MAX_FILES='lots' is not a number"):
            ReadLimits.from_env()
        with pytest.raises(ValueError, match="max_files must be positive"):
            ReadLimits(max_files=0)

    def test_an_image_over_the_pixel_limit_is_refused_before_decoding(self):
        # 13,000 x 13,000 is under Pillow's own limit; only the header exists, so decoding would fail loudly.
        with pytest.raises(
            BadImage, match=r"13000x13000 = 169,000,000 pixels, over the limit.*FERKIT_MAX_IMAGE_PIXELS"
        ):
            read_gray(blank_png(13_000, 13_000, header_only=True))

    def test_an_image_over_pillows_bomb_limit_is_a_bad_image_not_a_crash(self):
        with pytest.raises(
            BadImage,
            match=r"20000x10000 = 200,000,000 pixels, over the limit of 50,000,000; raise it with \$FERKIT_MAX_IMAGE_PIXELS",
        ):
            read_gray(blank_png(20_000, 10_000, header_only=True))

    def test_a_large_jpeg_is_read_at_a_reduced_scale(self):
        photo = Image.fromarray(np.tile(face(1, 400), (2, 2)))  # 800 x 800
        gray = read_gray(encoded(photo, "JPEG"), ReadLimits(max_image_pixels=200 * 200))
        assert gray.pixels.size <= 200 * 200 and gray.size == (800, 800) and "reduced" in gray.notes

    def test_a_large_progressive_jpeg_is_refused_not_decoded_whole(self):
        """libjpeg holds a progressive JPEG's every coefficient however small the output: a 1.5 MB
        file of 20,000 x 20,000 took 760 MB to read 'reduced'. Under the limit it reads as usual."""
        photo = Image.fromarray(np.tile(face(1, 400), (2, 2)))  # 800 x 800
        progressive = encoded(photo, "JPEG", progressive=True)
        assert Image.open(io.BytesIO(progressive)).info.get("progressive")
        with pytest.raises(BadImage, match=r"800x800 = 640,000 pixels, over the limit of 40,000 \(a progressive JPEG "
                                           r"is never decoded reduced\)"):  # fmt: skip
            read_gray(progressive, ReadLimits(max_image_pixels=200 * 200))
        assert read_gray(progressive, ReadLimits(max_image_pixels=800 * 800)).pixels.shape == (800, 800)

    def test_pixel_limit_in_an_archive_skips_and_names_the_file(self, tmp_path):
        files = image_tree(16)  # 336 faces: one bad file stays under the 1% bound
        files[BAD] = blank_png(13_000, 13_000, header_only=True)
        data = read_fer2013(write_zip(tmp_path / "d.zip", files), progress=False)
        assert data.report.bad_files == [BAD] and len(data) == 336
        assert "169,000,000 pixels" in data.report.bad_reasons[BAD]
        with pytest.raises(DataError, match=f"cannot read image '{BAD}': image is 13000x13000"):
            read_fer2013(write_zip(tmp_path / "d.zip", files), on_bad_image="fail", progress=False)

    def test_a_member_over_the_size_limit_is_skipped_without_reading_it(self, tmp_path):
        path = write_zip_with_large_member(tmp_path / "d.zip", image_tree(16), BAD, 3 * MB)
        data = read_fer2013(path, progress=False, limits=ReadLimits(max_file_bytes=MB))
        assert data.report.bad_files == [BAD]
        assert (
            data.report.bad_reasons[BAD]
            == "file is 3.0 MB, over the limit of 1 MB; raise it with $FERKIT_MAX_FILE_MB (in MB)"
        )

    def test_a_member_whose_header_understates_its_size_is_caught_while_reading(self, tmp_path):
        files = {**image_tree(16), BAD: b"\x00" * (2 * MB)}
        path = tmp_path / "d.zip"
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, raw in files.items():
                zf.writestr(name, raw)
        understate_member_size(path, BAD, 1000)
        data = read_fer2013(path, progress=False, limits=ReadLimits(max_file_bytes=MB))
        assert data.report.bad_files == [BAD] and "cannot read archive member" in data.report.bad_reasons[BAD]

    def test_an_archive_over_its_total_or_member_count_stops(self, tmp_path):
        path = write_zip(tmp_path / "d.zip", image_tree(2))  # 42 members
        with pytest.raises(DataError, match=r"holds 42 files, over the limit of 10; raise it with \$FERKIT_MAX_FILES"):
            read_fer2013(path, progress=False, limits=ReadLimits(max_files=10))
        with pytest.raises(DataError, match=r"MB uncompressed, over the limit.*FERKIT_MAX_ARCHIVE_MB"):
            read_fer2013(path, progress=False, limits=ReadLimits(max_archive_bytes=10_000))

    def test_a_folder_over_the_file_count_stops(self, tmp_path):
        root = write_folder(tmp_path / "d", image_tree(2))
        with pytest.raises(DataError, match="over the limit of 10"):
            read_fer2013(root, progress=False, limits=ReadLimits(max_files=10))


class TestImageQuirks:
    """Modes and metadata a camera, a scanner or an editor writes, read the way a viewer shows them."""

    def test_exif_orientation_is_applied(self):
        pixels = face(3)[:, :40]  # 48 high, 40 wide, not symmetric
        exif = Image.Exif()
        exif[0x0112] = 6  # stored sideways: a viewer turns it 90 degrees clockwise
        gray = read_gray(encoded(Image.fromarray(pixels), exif=exif.tobytes()))
        np.testing.assert_array_equal(gray.pixels, np.rot90(pixels, k=-1))
        assert gray.notes == ("rotated",)

    def test_16_bit_is_scaled_not_clipped(self):
        pixels = face(4)
        wide = Image.fromarray(pixels.astype(np.uint16) * 257)  # mode I;16, full 16-bit range
        gray = read_gray(encoded(wide))
        np.testing.assert_array_equal(gray.pixels, pixels)
        assert "16-bit" in gray.notes

    def test_cmyk_palette_and_one_bit_convert(self):
        pixels = face(5)
        rgb = Image.fromarray(pixels).convert("RGB")
        cmyk = read_gray(encoded(rgb.convert("CMYK"), "TIFF"))
        assert np.abs(cmyk.pixels.astype(int) - pixels).max() <= 2 and "cmyk" in cmyk.notes
        palette = read_gray(encoded(Image.fromarray(pixels).convert("P")))
        assert np.abs(palette.pixels.astype(int) - pixels).max() <= 2 and "palette" in palette.notes
        assert "1-bit" in read_gray(encoded(Image.fromarray(pixels).convert("1"))).notes

    def test_transparent_parts_are_white(self):
        rgba = np.zeros((48, 48, 4), np.uint8)
        rgba[..., 3] = 255
        rgba[:, :24, 3] = 0  # left half fully transparent (and black underneath)
        gray = read_gray(encoded(Image.fromarray(rgba, "RGBA")))
        assert (gray.pixels[:, :24] == 255).all() and (gray.pixels[:, 24:] == 0).all() and "alpha" in gray.notes

    def test_animated_images_give_their_first_frame(self):
        frames = [Image.fromarray(face(6)).convert("P"), Image.fromarray(255 - face(6)).convert("P")]
        buffer = io.BytesIO()
        frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
        gray = read_gray(buffer.getvalue())
        assert np.abs(gray.pixels.astype(int) - face(6)).mean() < 3 and "animated" in gray.notes

    def test_the_readers_convert_and_count_them(self, tmp_path):
        files = image_tree(1)
        files["train/happy/Training_901.png"] = encoded(Image.fromarray(face(4).astype(np.uint16) * 257))
        files["train/happy/Training_902.tif"] = encoded(Image.fromarray(face(5)).convert("CMYK"), "TIFF")
        data = read_fer2013(write_zip(tmp_path / "d.zip", files), progress=False)
        assert data.report.conversions == {"16-bit": 1, "cmyk": 1} and data.report.converted == 2
        index = list(data.source_ids).index("train/happy/Training_901.png")
        np.testing.assert_array_equal(data.images[index], face(4))


class TestPixelContract:
    def test_dtype_declares_the_range(self):
        np.testing.assert_array_equal(pixel_array(np.full((2, 2), 1, np.uint8)), np.full((2, 2), 1))
        np.testing.assert_array_equal(pixel_array(np.full((2, 2), 1.0)), np.full((2, 2), 255))

    def test_a_dark_0_255_face_is_never_multiplied(self):
        dark = np.ones((48, 48), dtype=np.int64)  # maximum 1 in 0-255
        np.testing.assert_array_equal(pixel_array(dark.astype(float), "0-255"), dark)

    @pytest.mark.parametrize(
        ("values", "pixel_range", "message"),
        [
            (np.full((2, 2), 300), None, "must lie in 0-255"),
            (np.full((2, 2), 0.5), "0-255", "whole numbers"),
            (np.full((2, 2), 2.0), "0-1", "declared 0-1 hold values from 2 to 2"),
            (np.full((2, 2), np.nan), None, "NaN"),
            ([[1, 2], [3]], None, "ragged"),
            (np.array([["a"]]), None, "must be numbers"),
        ],
    )
    def test_violations_are_named(self, values, pixel_range, message):
        with pytest.raises(BadImage, match=message):
            pixel_array(values, pixel_range)


class TestSymlinks:
    def _tree(self, tmp_path):
        root = write_folder(tmp_path / "data", image_tree(16))
        outside = write_folder(tmp_path / "elsewhere", {"secret.jpg": jpeg_bytes(face(99))})
        return root, outside

    def test_links_out_of_the_folder_are_refused_and_named(self, tmp_path):
        root, outside = self._tree(tmp_path)
        os.symlink(outside / "secret.jpg", root / "train/happy/Training_7000.jpg")
        os.symlink(outside, root / "train/sad/more")
        data = read_fer2013(root, progress=False)
        assert set(data.report.refused_links) == {"train/happy/Training_7000.jpg", "train/sad/more"}
        assert "outside the data folder" in data.report.refused_links["train/sad/more"]
        assert len(data) == 336 and "train/happy/Training_7000.jpg" not in set(data.source_ids)
        with pytest.raises(DataError, match="refusing 'train/happy/Training_7000.jpg': symbolic link to"):
            read_fer2013(root, on_bad_image="fail", progress=False)

    def test_links_inside_the_folder_are_read_and_listed(self, tmp_path):
        root, _ = self._tree(tmp_path)
        target = sorted((root / "train/happy").iterdir())[0]
        os.symlink(target, root / "train/happy/Training_7001.jpg")
        os.symlink(root / "train/angry", root / "train/disgust/alias")  # folder links inside read a folder twice
        os.symlink(root / "train", root / "train/fear/loop")  # or loop: both refused
        data = read_fer2013(root, progress=False)
        assert "train/happy/Training_7001.jpg" in set(data.source_ids) and len(data) == 337
        assert data.report.followed_links == ["train/happy/Training_7001.jpg"]
        assert data.report.refused_links == {
            "train/disgust/alias": "symbolic link to the folder 'train/angry', read under its own name",
            "train/fear/loop": "symbolic link to the folder 'train', read under its own name",
        }

    def test_an_archive_never_follows_its_links(self, tmp_path):
        path = write_zip(tmp_path / "d.zip", image_tree(16))
        with zipfile.ZipFile(path, "a") as zf:
            link = zipfile.ZipInfo("train/happy/Training_7002.jpg")
            link.external_attr = 0o120777 << 16
            zf.writestr(link, "/etc/passwd")
        data = read_fer2013(path, progress=False)
        assert list(data.report.refused_links) == ["train/happy/Training_7002.jpg"] and len(data) == 336


class TestCSVErrors:
    def test_every_bad_row_is_listed_in_one_pass(self, tmp_path):
        rows = csv_rows(2)
        rows[0] = ("9", rows[0][1], rows[0][2])
        rows[4] = (rows[4][0], "1 2 3", rows[4][2])
        rows[7] = (rows[7][0], rows[7][1].replace("1", "x", 1), rows[7][2])
        rows[9] = (rows[9][0], rows[9][1], "Validation")
        with pytest.raises(DataError) as caught:
            read_fer2013(write_csv(tmp_path / "f.csv", rows), progress=False)
        message = str(caught.value)
        assert "4 bad row(s) (every one listed)" in message
        for expected in ("row 2, column 'emotion'", "row 6, column 'pixels': has 3 values",
                         "row 9, column 'pixels': value", "row 11, column 'Usage'"):  # fmt: skip
            assert expected in message

    def test_the_list_is_capped_and_says_so(self, tmp_path):
        rows = [("7", p, u) for _, p, u in csv_rows(4)]  # 84 rows, all bad
        with pytest.raises(DataError, match=r"84 bad row\(s\) \(the first 20 listed\)") as caught:
            read_fer2013(write_csv(tmp_path / "f.csv", rows), progress=False)
        assert str(caught.value).count("column 'emotion'") == 20

    def test_a_line_too_long_stops_before_it_is_held(self, tmp_path):
        path = tmp_path / "f.csv"
        path.write_text("emotion,pixels,Usage\n0," + "1 " * 100_000 + ",Training\n")
        with pytest.raises(DataError, match="line 2 is longer than 65,536 characters"):
            read_fer2013(path, progress=False)

    def test_a_quote_never_closed_stops_within_a_lines_worth(self, tmp_path):
        """Each line short, but an open quote makes the rest of the file one record, whose fields the
        CSV reader would gather in memory (a 24 MB file took 238 MB) before the field count is checked."""
        path = tmp_path / "f.csv"
        line = 'a"' + "," * 2000 + '"b\n'
        path.write_text("emotion,pixels,Usage\n" + "0,1 2 3,Training\n" + '0,"' + line * 400)
        with pytest.raises(DataError, match=r"f.csv: the row that begins on line 3 runs on to line (\d+), over "
                                            r"65,536 characters \(a quote never closed\?\)") as caught:  # fmt: skip
            read_fer2013(path, progress=False)
        stopped_at = re.search(r"runs on to line (\d+)", str(caught.value)).group(1)
        assert int(stopped_at) < 40  # within 64 KB of text, not at the file's end (line 403)
        rows = csv_rows(1)  # a good file of many lines still reads: the bound is per record
        assert len(read_fer2013(write_csv(tmp_path / "good.csv", rows), progress=False)) == len(rows)

    def test_rows_over_the_limit_and_non_utf8_are_named(self, tmp_path):
        path = write_csv(tmp_path / "f.csv", csv_rows(1))
        with pytest.raises(DataError, match=r"more than 5 rows; raise it with \$FERKIT_MAX_FILES"):
            read_fer2013(path, progress=False, limits=ReadLimits(max_files=5))
        path.write_bytes(b"emotion,pixels,Usage\n0,\xff\xfe,Training\n")
        with pytest.raises(DataError, match="line 2: not UTF-8"):
            read_fer2013(path, progress=False)


class TestReviewedEdges:
    """Inputs found by fuzzing and review: each is a named bad file, never a hang or a traceback."""

    @pytest.mark.parametrize("orientation", range(1, 9))
    def test_every_exif_orientation_matches_pillows_own_transpose(self, orientation):
        from PIL import ImageOps

        pixels = face(3)[:, :40]
        exif = Image.Exif()
        exif[0x0112] = orientation
        raw = encoded(Image.fromarray(pixels), exif=exif.tobytes())
        with Image.open(io.BytesIO(raw)) as img:
            expected = np.asarray(ImageOps.exif_transpose(img))
        np.testing.assert_array_equal(read_gray(raw).pixels, expected)

    def test_a_broken_exif_block_counts_as_no_orientation(self):
        raw = bytearray(encoded(Image.fromarray(face(3)), "JPEG", exif=b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x01\x00"))
        np.testing.assert_array_equal(read_gray(bytes(raw)).pixels.shape, (48, 48))

    def test_formats_outside_the_face_suffixes_are_not_decoded(self):
        eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
        with pytest.raises(BadImage, match="not an image file"):
            read_gray(eps)

    def test_a_jpeg_over_the_limit_at_any_size_is_read_reduced(self):
        for width, height in ((810, 800), (1900, 1900), (2100, 2000)):
            photo = Image.fromarray(np.resize(face(1, 400), (height, width)))
            gray = read_gray(encoded(photo, "JPEG"), ReadLimits(max_image_pixels=1_000_000 // 4))
            assert gray.pixels.size <= 250_000 and "reduced" in gray.notes, (width, height)

    def test_a_pipe_and_a_link_loop_in_a_folder(self, tmp_path):
        from ferkit.inference.photos import faces_in_file

        root = write_folder(tmp_path / "d", image_tree(16))
        os.mkfifo(root / "train/happy/Training_pipe.png")  # reading it would block for ever
        os.symlink("Training_loop.png", root / "train/happy/Training_loop.png")
        data = read_fer2013(root, progress=False)
        assert data.report.bad_reasons == {
            "train/happy/Training_pipe.png": "not a regular file (a pipe, device or socket)"
        }
        assert data.report.refused_links == {"train/happy/Training_loop.png": "symbolic link loop"}
        assert faces_in_file(root / "train/happy/Training_pipe.png").error == (
            "cannot read image: not a regular file (a pipe, device or socket)"
        )

    def test_broken_archives(self, tmp_path):
        files = image_tree(16)
        path = tmp_path / "lzma.zip"
        with zipfile.ZipFile(path, "w") as zf:
            for name, raw in files.items():
                zf.writestr(name, raw)
            noise = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()  # stays 5 KB
            zf.writestr(BAD, noise, compress_type=zipfile.ZIP_LZMA)
        raw = bytearray(path.read_bytes())
        start = raw.find(BAD.encode()) + len(BAD) + 200
        raw[start : start + 40] = bytes(b ^ 0x5A for b in raw[start : start + 40])  # corrupt the LZMA stream
        path.write_bytes(bytes(raw))
        data = read_fer2013(path, progress=False)
        assert data.report.bad_files == [BAD] and "cannot read archive member" in data.report.bad_reasons[BAD]

        broken = tmp_path / "directory.zip"
        good = write_zip(tmp_path / "good.zip", files).read_bytes()
        broken.write_bytes(good.replace(b"PK\x01\x02", b"XX\x01\x02", 1))
        with pytest.raises(DataError, match="not a readable zip archive"):
            read_fer2013(broken, progress=False)

    def test_an_archive_whose_end_record_understates_its_files(self, tmp_path):
        path = write_zip(tmp_path / "d.zip", image_tree(16))  # 336 members
        raw = bytearray(path.read_bytes())
        end = raw.rfind(b"PK\x05\x06")
        raw[end + 8 : end + 12] = b"\x01\x00\x01\x00"  # "1 entry on this disk, 1 in total"
        path.write_bytes(bytes(raw))
        with pytest.raises(DataError, match=r"its directory is .* MB, more than 10 files need"):
            read_fer2013(path, progress=False, limits=ReadLimits(max_files=10))

    def test_a_pixel_token_that_overflows_is_a_named_row(self, tmp_path):
        rows = csv_rows(1)
        rows[2] = (rows[2][0], "99999999999999999999 " + " ".join(["1"] * 2303), rows[2][2])
        rows[3] = (rows[3][0], "\u00b2 " + " ".join(["1"] * 2303), rows[3][2])
        with pytest.raises(DataError) as caught:
            read_fer2013(write_csv(tmp_path / "f.csv", rows), progress=False)
        assert "row 4, column 'pixels': value '99999999999999999999'" in str(caught.value)
        assert "row 5, column 'pixels': value '\u00b2'" in str(caught.value)

    @pytest.mark.parametrize("value", ["lots", "inf", "nan", "-5"])
    def test_a_bad_limit_setting_is_a_usage_error_without_a_traceback(self, tmp_path, value):
        import subprocess
        import sys

        archive = write_zip(tmp_path / "d.zip", image_tree(1))
        env = {**os.environ, "FERKIT_MAX_FILES": value}
        out = subprocess.run(
            [sys.executable, "-m", "ferkit.cli", "info", str(archive)], capture_output=True, text=True, env=env
        )
        assert out.returncode == 2 and "$FERKIT_MAX_FILES" in out.stderr and "Traceback" not in out.stderr
