"""open_video: frame-exactness, seeking, metadata, rotation, frame folders, errors, real files."""
import re
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from cakes_video.datasets import decoding_decord, decoding_frames, decoding_pyav
from cakes_video.datasets.decoding import DecodeError, open_video
from video_factory import frame_index, index_frame

NUM_FRAMES, FPS, SIZE = 36, 25, (64, 48)  # SIZE is (width, height)
CODECS = {  # name -> (encoder, file suffix)
    "h264_mp4": ("libx264", ".mp4"),
    "h264_mkv": ("libx264", ".mkv"),
    "h264_avi": ("libx264", ".avi"),  # AVI hides B-frame reordering from packet pts
    "mpeg4_avi": ("mpeg4", ".avi"),
    "mpeg4_mp4": ("mpeg4", ".mp4"),  # open GOPs: decord's plain seeks return wrong frames
    "vp9_webm": ("libvpx-vp9", ".webm"),
    "mjpeg_avi": ("mjpeg", ".avi"),
}
# Mean abs difference between pyav and decord RGB frames that each codec is allowed (both use
# FFmpeg's decoders and swscale; measured 0.0 on every generated and real file decord reads
# fully, about 0.45 on odd-size VP9).
DECORD_TOLERANCE = 0.0
ODD_VP9_TOLERANCE = 1.0


def sequential_frames(path, keep=None) -> np.ndarray:
    """Reference: frames ``keep`` (default all) of a plain sequential PyAV decode, [N, H, W, 3]."""
    frames = {}
    with av.open(str(path), metadata_errors="ignore") as container:
        for i, f in enumerate(container.decode(video=0)):
            if keep is None or i in keep:
                frames[i] = np.rot90(f.to_ndarray(format="rgb24"), f.rotation // 90)
            if keep is not None and i >= max(keep):
                break
    return np.stack([frames[i] for i in (range(len(frames)) if keep is None else keep)])


def _encoder_available(encoder: str) -> bool:
    try:
        av.codec.Codec(encoder, "w")
    except av.codec.codec.UnknownCodecError:
        return False
    return True


@pytest.fixture(scope="module", params=sorted(CODECS))
def codec_video(request, tmp_path_factory, make_index_video):
    """(path, sequential reference frames) for one codec/container pair."""
    encoder, suffix = CODECS[request.param]
    if not _encoder_available(encoder):
        pytest.skip(f"PyAV's FFmpeg has no {encoder} encoder")
    path = make_index_video(tmp_path_factory.mktemp(request.param) / f"v{suffix}", encoder,
                            num_frames=NUM_FRAMES, fps=FPS, size=SIZE)
    return path, sequential_frames(path)


@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_metadata(codec_video, backend):
    path, _ = codec_video
    with open_video(path, backend) as video:
        meta = video.meta
    rotation = None if backend == "decord" else 0  # decord turns frames but says not by how much
    assert (meta.num_frames, meta.width, meta.height, meta.rotation) == (NUM_FRAMES, *SIZE, rotation)
    assert meta.fps == pytest.approx(FPS)
    assert meta.duration == pytest.approx(NUM_FRAMES / FPS, abs=1.5 / FPS)
    assert meta.path == str(path)


@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_every_frame_shows_its_index(codec_video, backend):
    path, reference = codec_video
    with open_video(path, backend) as video:
        frames = video.get_frames(range(NUM_FRAMES))
    assert frames.dtype == np.uint8 and frames.shape == (NUM_FRAMES, SIZE[1], SIZE[0], 3)
    assert [frame_index(f) for f in frames] == list(range(NUM_FRAMES))
    assert np.abs(frames.astype(int) - reference).mean() <= DECORD_TOLERANCE


@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_random_indices_equal_sequential_decode(codec_video, backend):
    """Unsorted, repeated, backwards and forwards requests on one decoder, bit-exact."""
    path, reference = codec_video
    rng = np.random.default_rng(0)
    requests = [rng.integers(0, NUM_FRAMES, size=k) for k in (1, 5, 12, 3)]
    requests += [[NUM_FRAMES - 1, 0, NUM_FRAMES - 1], [17, 18, 19, 20], [9], [33, 2, 34]]
    with open_video(path, backend) as video:
        for indices in requests:
            np.testing.assert_array_equal(video.get_frames(indices), reference[np.asarray(indices)])


def test_decord_asks_pyav_only_when_a_read_would_seek(codec_video, monkeypatch):
    """Consecutive reads from where the reader stands need no seek check; the first read
    that would seek runs the PyAV demux pass once."""
    path, reference = codec_video
    probes = []
    demux = decoding_decord.demux_packets
    monkeypatch.setattr(decoding_decord, "demux_packets", lambda p: probes.append(p) or demux(p))
    with open_video(path, "decord") as video:
        for indices in ([0, 1, 2], [3, 4], range(5, NUM_FRAMES)):
            np.testing.assert_array_equal(video.get_frames(indices), reference[np.asarray(indices)])
        assert probes == []
        for indices in ([30, 2], [7, 20]):
            np.testing.assert_array_equal(video.get_frames(indices), reference[np.asarray(indices)])
    assert probes == [str(path)]


def test_decord_walks_a_file_with_one_keyframe(tmp_path, make_index_video):
    """decord's skip-ahead sometimes miscounts near the end of an AVI with B-frames and one
    keyframe (how often depends on its threads' timing: most opens of mmaction2_test.avi, a
    few in 20 here), so such files are walked, which decodes no more than decord's seek from
    the only keyframe would."""
    path = make_index_video(tmp_path / "onekey.avi", "libx264", num_frames=48,
                            codec_options={"g": "1000", "keyint_min": "1000"})
    assert not decoding_decord.decord_seeks_exactly(decoding_pyav.demux_packets(str(path)))
    for _ in range(20):
        with open_video(path, "decord") as video:
            assert [frame_index(f) for f in video.get_frames([5, 20, 46, 47])] == [5, 20, 46, 47]
        with open_video(path, "decord") as video:
            assert frame_index(video.get_frames([47])[0]) == 47


def test_pyav_seeks_instead_of_decoding_from_the_start(codec_video, monkeypatch):
    """Reading the last frame decodes about one keyframe interval (8 here), not all 36."""
    path, reference = codec_video
    decoded = []
    numbered = decoding_pyav.PyAVDecoder._numbered

    def counting(self, frames):
        for item in numbered(self, frames):
            decoded.append(item[0])
            yield item

    monkeypatch.setattr(decoding_pyav.PyAVDecoder, "_numbered", counting)
    with open_video(path) as video:
        decoded.clear()
        np.testing.assert_array_equal(video.get_frames([NUM_FRAMES - 1]), reference[-1:])
    if "h264_avi" in str(path):
        pytest.skip("AVI hides H.264 reordering from packet pts: decoded sequentially by design")
    assert 1 <= len(decoded) <= 10


def test_pyav_falls_back_to_sequential_decoding_when_a_seek_lands_late(tmp_path, make_index_video,
                                                                       monkeypatch):
    """Simulates a demuxer that seeks one keyframe too far: frames still come out exact."""
    path = make_index_video(tmp_path / "v.mp4", "libx264", num_frames=NUM_FRAMES, size=SIZE)
    reference = sequential_frames(path)
    restart = decoding_pyav.PyAVDecoder._restart

    def late(self, keyframe):
        later = [k for k in sorted(self._table.seek_ts) if keyframe is not None and k > keyframe]
        restart(self, later[0] if later and self._seekable else keyframe)

    monkeypatch.setattr(decoding_pyav.PyAVDecoder, "_restart", late)
    with open_video(path) as video:
        indices = [12, 30, 3, 12]
        np.testing.assert_array_equal(video.get_frames(indices), reference[indices])


def test_decoders_agree_on_empty_request_and_reject_bad_indices(codec_video):
    path, _ = codec_video
    with open_video(path) as video:
        assert video.get_frames([]).shape == (0, SIZE[1], SIZE[0], 3)
        with pytest.raises(IndexError, match=re.escape(str(path))):
            video.get_frames([0, NUM_FRAMES])
        with pytest.raises(IndexError, match="-1"):
            video.get_frames([-1])


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_variable_frame_rate_indexes_by_presentation_order(tmp_path, make_index_video, suffix):
    gaps = np.random.default_rng(1).integers(20, 90, size=23)
    pts_ms = np.concatenate([[0], np.cumsum(gaps)]).tolist()
    path = make_index_video(tmp_path / f"vfr{suffix}", "libx264", num_frames=24, pts_ms=pts_ms)
    reference = sequential_frames(path)
    with open_video(path) as video:
        assert video.meta.num_frames == 24
        assert video.meta.fps == pytest.approx(23 / (pts_ms[-1] / 1000), rel=0.02)
        order = np.random.default_rng(2).permutation(24)
        frames = video.get_frames(order)
    assert [frame_index(f) for f in frames] == order.tolist()
    np.testing.assert_array_equal(frames, reference[order])


@pytest.mark.parametrize("ccw_degrees, marker_corner", [(90, "bottom_left"), (180, "bottom_right"),
                                                        (270, "top_right")])
def test_rotation_metadata_turns_frames(tmp_path, make_index_video, ccw_degrees, marker_corner):
    """The white marker written top-left ends where a counter-clockwise turn puts it."""
    size = (96, 64)  # decord mangles some sizes when turning them (next test)
    path = make_index_video(tmp_path / "rot.mp4", "libx264", num_frames=8, size=size,
                            rotation=ccw_degrees)
    frames = {}
    for backend in ("pyav", "decord"):
        with open_video(path, backend) as video:
            frame = frames[backend] = video.get_frames([5])[0]
            assert video.meta.rotation == (None if backend == "decord" else (360 - ccw_degrees) % 360)
        turned = ccw_degrees % 180 == 90
        assert (video.meta.width, video.meta.height) == (size[::-1] if turned else size)
        assert frame.shape[:2] == (video.meta.height, video.meta.width)
        h, w = frame.shape[:2]
        corners = {"top_left": frame[: h // 8, : w // 8], "top_right": frame[: h // 8, -w // 8 :],
                   "bottom_left": frame[-h // 8 :, : w // 8], "bottom_right": frame[-h // 8 :, -w // 8 :]}
        assert {name for name, patch in corners.items() if patch.mean() > 240} == {marker_corner}
    np.testing.assert_array_equal(frames["pyav"], frames["decord"])


def test_decord_rotation_size_bug_is_a_decode_error(tmp_path, make_index_video):
    """decord 0.6 cannot copy out a 64x48 video turned 90 degrees; pyav reads it."""
    path = make_index_video(tmp_path / "rot.mp4", "libx264", num_frames=4, size=(64, 48), rotation=90)
    with pytest.raises(DecodeError, match=re.escape(f"{path}: decord failed")):
        open_video(path, "decord")
    with open_video(path) as video:
        assert video.get_frames([3]).shape == (1, 64, 48, 3)


def _write_frame_folder(folder: Path, num_frames: int, template: str, start: int) -> Path:
    folder.mkdir()
    for i in range(num_frames):
        Image.fromarray(index_frame(i, SIZE)).save(folder / template.format(start + i), quality=95)
    return folder


def test_frame_folder_counts_and_reads_frames(tmp_path):
    folder = _write_frame_folder(tmp_path / "v", 12, "{:05d}.jpg", 1)
    (folder / "00014.jpg").write_bytes(b"")  # after a gap: not part of the video
    with open_video(folder, "frames", fps=12.0) as video:
        assert (video.meta.num_frames, video.meta.width, video.meta.height) == (12, *SIZE)
        assert video.meta.fps == 12.0 and video.meta.duration == pytest.approx(1.0)
        assert [frame_index(f) for f in video.get_frames([11, 0, 5, 5])] == [11, 0, 5, 5]


def test_frame_folder_template_start_index_and_bad_frames(tmp_path):
    folder = _write_frame_folder(tmp_path / "v", 4, "img_{:03d}.jpg", 0)
    with open_video(folder, "frames", template="img_{:03d}.jpg", start_index=0) as video:
        assert video.meta.num_frames == 4
        assert [frame_index(f) for f in video.get_frames([3, 1])] == [3, 1]
    with open_video(folder, "frames", template="img_{:03d}.jpg", start_index=0, num_frames=6) as video:
        with pytest.raises(DecodeError, match="img_005.jpg"):
            video.get_frames([5])
    with pytest.raises(DecodeError, match="no frame named"):
        open_video(folder, "frames")
    with pytest.raises(DecodeError, match="missing"):
        open_video(tmp_path / "absent", "frames")


def test_frame_folder_reads_frame_0_once_and_fails_at_open_when_it_is_corrupt(tmp_path, monkeypatch):
    folder = _write_frame_folder(tmp_path / "v", 3, "{:05d}.jpg", 1)
    opened, image_open = [], decoding_frames.Image.open
    monkeypatch.setattr(decoding_frames.Image, "open", lambda f: opened.append(Path(f).name) or image_open(f))
    with open_video(folder, "frames") as video:
        assert [frame_index(f) for f in video.get_frames([0, 2, 0])] == [0, 2, 0]
        assert [frame_index(f) for f in video.get_frames([0])] == [0]
    assert opened == ["00001.jpg", "00003.jpg"]  # frame 0 at open only
    (folder / "00001.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DecodeError, match="cannot read frame 0"):
        open_video(folder, "frames")


@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_bad_files_raise_decode_error_naming_path_and_reason(tmp_path, make_index_video, backend):
    good = make_index_video(tmp_path / "good.mp4", "libx264", num_frames=24)
    cases = {"missing.mp4": "missing", "empty.mp4": "zero-byte", "text.mp4": "cannot open as a video",
             "truncated.mp4": "cannot open as a video",  # the mp4 index (moov) is at the end
             "unknown.avi": "unsupported video codec"}
    mjpeg = make_index_video(tmp_path / "mjpeg.avi", "mjpeg", num_frames=2)
    (tmp_path / "unknown.avi").write_bytes(mjpeg.read_bytes().replace(b"MJPG", b"ZQZQ"))  # FourCC
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("this is not a video\n" * 20)
    (tmp_path / "truncated.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    for name, reason in cases.items():
        with pytest.raises(DecodeError, match=reason) as info:
            open_video(tmp_path / name, backend)
        assert str(tmp_path / name) in str(info.value)


def test_unknown_backend_is_named():
    with pytest.raises(ValueError, match="'opencv'.*decord"):
        open_video("x.mp4", "opencv")


def test_audio_only_file_has_no_video_stream(tmp_path):
    path = tmp_path / "audio.wav"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        out.mux(stream.encode(frame))
    with pytest.raises(DecodeError, match="no video stream"):
        open_video(path)


# Real files (see shared/videos/MANIFEST.tsv): frames, width, height (displayed), rotation.
REAL_VIDEOS = {
    "mmaction2_demo.mp4": (280, 340, 256, 0),
    "mmaction2_test.avi": (164, 320, 240, 0),
    "decord_flipping_a_pancake.mkv": (310, 426, 240, 0),
    "imageio_test.webm": (94, 640, 480, 0),  # variable frame rate, no container duration
    "moviepy_big_buck_bunny_432_433.webm": (24, 1280, 720, 0),
    "exo_vp9_bear-vp9-odd-dimensions.webm": (30, 161, 121, 0),
    "exo_video_desks.3gp": (71, 352, 288, 0),  # UTF-16 metadata
    "decord_video_90.mov": (3, 320, 568, 90),  # stored 568x320
    "jcodec_issue365_test.mkv": (1, 1024, 576, 0),  # truncated: header claims 46.7 s
}
DECORD_READS_FULLY = ["mmaction2_demo.mp4", "mmaction2_test.avi", "decord_flipping_a_pancake.mkv",
                      "moviepy_big_buck_bunny_432_433.webm", "exo_video_desks.3gp",
                      "decord_video_90.mov", "jcodec_issue365_test.mkv"]


def _real(shared_videos, name) -> Path:
    path = shared_videos / name
    if not path.is_file():
        pytest.skip(f"{name} not in {shared_videos}")
    return path


def _some_indices(num_frames: int) -> list:
    rng = np.random.default_rng(num_frames)
    return sorted({0, num_frames - 1, *rng.integers(0, num_frames, size=6).tolist()})


@pytest.mark.parametrize("name", sorted(REAL_VIDEOS))
def test_real_video_pyav_metadata_and_exact_frames(shared_videos, name):
    path = _real(shared_videos, name)
    num_frames, width, height, rotation = REAL_VIDEOS[name]
    indices = _some_indices(num_frames)
    with open_video(path) as video:
        meta = video.meta
        assert (meta.num_frames, meta.width, meta.height, meta.rotation) == REAL_VIDEOS[name]
        frames = video.get_frames(indices[::-1])[::-1]
    assert meta.fps > 0 and meta.duration == pytest.approx(num_frames / meta.fps, rel=0.05, abs=0.05)
    np.testing.assert_array_equal(frames, sequential_frames(path, indices))


@pytest.mark.parametrize("name", DECORD_READS_FULLY)
def test_real_video_decord_equals_pyav(shared_videos, name):
    path = _real(shared_videos, name)
    indices = _some_indices(REAL_VIDEOS[name][0])
    with open_video(path, "decord") as video, open_video(path) as reference:
        for field in ("num_frames", "width", "height"):
            assert getattr(video.meta, field) == getattr(reference.meta, field)
        assert video.meta.fps == pytest.approx(reference.meta.fps, rel=1e-3)
        assert np.abs(video.get_frames(indices).astype(int) - reference.get_frames(indices)).mean() == 0


def test_real_decord_failures_are_decode_errors(shared_videos):
    vfr = _real(shared_videos, "imageio_test.webm")
    with pytest.raises(DecodeError, match=re.escape(str(vfr)) + ".*duration/frame-count"):
        open_video(vfr, "decord")
    odd_vp9 = _real(shared_videos, "exo_vp9_bear-vp9-odd-dimensions.webm")
    with open_video(odd_vp9, "decord") as video, open_video(odd_vp9) as reference:
        # decord reads at most the first few frames of this file (how many varies with its
        # threads' timing); frame 0 is read at open
        diff = np.abs(video.get_frames([0]).astype(int) - reference.get_frames([0])).mean()
        assert 0 < diff <= ODD_VP9_TOLERANCE  # chroma rounding at the odd edge
        with pytest.raises(DecodeError, match=re.escape(str(odd_vp9))):
            video.get_frames(range(30))


@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_corrupt_packet_gives_frames_before_it_and_a_clear_error_after(shared_videos, backend):
    """decord_corrupted.mp4: 50 packets, packet 28 is invalid H.264 (frame threading may move
    the error a few frames earlier, hence frame 0 and frame 49)."""
    path = _real(shared_videos, "decord_corrupted.mp4")
    with open_video(path, backend) as video:
        assert video.meta.num_frames == 50
        assert video.get_frames([0]).shape == (1, 720, 1280, 3)
        with pytest.raises(DecodeError, match=re.escape(str(path))):
            video.get_frames([49])
