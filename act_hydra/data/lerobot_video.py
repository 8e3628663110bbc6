"""Frames of one LeRobot episode, decoded with PyAV from its mp4 span or its PNG column.

LeRobot encodes AV1 (libsvtav1, yuv420p, a key frame every 2 frames) by default; community
datasets also use H.264 or HEVC. The PyPI ``av`` wheels bundle an FFmpeg with dav1d, so all of
these decode without a system FFmpeg. An episode is decoded sequentially from one seek to the
start of its span (v3.0 files hold many episodes back to back), and every decoded frame is
matched to the parquet row of the same time: a video that holds more or fewer frames than the
rows, or frames at other times, is refused instead of silently pairing images with the wrong
actions.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from act_hydra.data.lerobot_format import VideoSpan
from act_hydra.errors import DatasetError

# A frame belongs to a row when its time is within a quarter frame of the row's. LeRobot's own
# check (1e-4 s) is stricter than some muxers' timestamp rounding; a quarter frame still catches
# any frame that is shifted, missing or extra.
TOLERANCE_FRAMES = 0.25


def _video_fix(path: Path) -> str:
    return (
        f"re-encode it, e.g. `ffmpeg -i {path.name} -c:v libsvtav1 -pix_fmt yuv420p -g 2 "
        "out.mp4`, download the dataset again, or leave the camera out with "
        "data.lerobot.camera_keys"
    )


def decode_video_span(
    span: VideoSpan,
    timestamps: np.ndarray,
    fps: float,
    size: tuple[int, int],
    where: str,
) -> Iterator[np.ndarray]:
    """Yield one (H, W, 3) uint8 RGB frame per row, in row order, for rows whose times in the
    episode are ``timestamps``. ``where`` names the episode and camera in messages."""
    import av

    path = span.path
    if not path.is_file():
        raise DatasetError(
            f"{path} does not exist ({where}). Rule: every episode of a video feature has its "
            "frames in the mp4 file its metadata names. Fix: download the dataset again (all "
            "of videos/), or leave the camera out with data.lerobot.camera_keys."
        )
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as err:
        raise DatasetError(
            f"{path} cannot be opened as a video ({err}; {where}). Rule: video features are "
            f"mp4 files FFmpeg can read. Fix: {_video_fix(path)}."
        ) from err
    tol = TOLERANCE_FRAMES / fps
    targets = span.from_s + np.asarray(timestamps, np.float64)
    with container:
        if not container.streams.video:
            raise DatasetError(
                f"{path} holds no video stream ({where}). Rule: a video feature's mp4 holds "
                f"its frames. Fix: {_video_fix(path)}."
            )
        stream = container.streams.video[0]
        if stream.codec_context is None:  # FFmpeg knows no decoder for the stream's codec
            raise _undecodable(path, "unknown to FFmpeg", "no decoder", where)
        stream.codec_context.thread_type = "AUTO"  # multi-threaded decoding (dav1d scales)
        codec = str(stream.codec_context.name)
        row, extra, last = 0, 0, None
        try:
            if span.from_s > 0:
                # In the stream's time base; back to the key frame at or before the span.
                offset = max(0, int(span.from_s / stream.time_base) - 1)
                container.seek(offset, stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                t = float(frame.pts * stream.time_base)
                if t < span.from_s - tol:
                    continue
                if t >= span.to_s - tol:
                    break
                if row >= len(targets):
                    extra += 1
                    last = t
                    continue
                if abs(t - targets[row]) > tol:
                    raise _mismatch(
                        path,
                        where,
                        f"row {row} (frame_index {row}) is at {targets[row]:.4f} s in the file "
                        f"but the video's frame {row} of the episode is at {t:.4f} s",
                    )
                if (frame.height, frame.width) != tuple(size):
                    raise DatasetError(
                        f"{path}: frames are {frame.height}x{frame.width} but meta/info.json "
                        f"says {size[0]}x{size[1]} ({where}). Rule: a camera's frames have the "
                        "size its feature declares. Fix: correct the feature's shape in "
                        "meta/info.json, or download the dataset again."
                    )
                yield frame.to_ndarray(format="rgb24")
                row += 1
        except DatasetError:
            raise
        except (av.FFmpegError, ValueError, NotImplementedError) as err:
            raise _undecodable(path, codec, err, where) from err
    if row < len(targets) or extra:
        found = row + extra
        detail = f"the last extra frame at {last:.4f} s" if extra else "frames end early"
        raise _mismatch(
            path,
            where,
            f"the episode's span [{span.from_s:.4f}, {span.to_s:.4f}) s holds {found} frames "
            f"for {len(targets)} parquet rows ({detail})",
        )


def _undecodable(path: Path, codec: str, err: object, where: str) -> DatasetError:
    return DatasetError(
        f"{path} could not be decoded (codec {codec}: {err}; {where}). Rule: the video codec "
        "must be one PyAV's FFmpeg decodes (AV1 through dav1d, H.264, HEVC, VP9 in the PyPI "
        f"wheels). Fix: `pip install -U av` (the PyPI wheels include dav1d), or "
        f"{_video_fix(path)}."
    )


def _mismatch(path: Path, where: str, detail: str) -> DatasetError:
    return DatasetError(
        f"{path}: {detail} ({where}). Rule: a camera's video holds exactly one frame per "
        "parquet row of the episode, at the row's timestamp (plus the episode's "
        "from_timestamp in v3.0 files). Fix: download the dataset again; if it was written "
        "that way, leave the episode out with data.lerobot.episodes or the camera with "
        "data.lerobot.camera_keys."
    )


def decode_image_column(
    images: np.ndarray, size: tuple[int, int], where: str
) -> Iterator[np.ndarray]:
    """Yield (H, W, 3) uint8 RGB frames from an image feature's encoded bytes (PNG, JPEG)."""
    from PIL import Image

    for row, data in enumerate(images):
        try:
            frame = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        except Exception as err:  # PIL raises many types for corrupt data
            raise DatasetError(
                f"row {row} of {where} is not a readable image ({err}). Rule: an image "
                "feature's column holds PNG or JPEG bytes. Fix: download the dataset again."
            ) from err
        if frame.shape[:2] != tuple(size):
            raise DatasetError(
                f"row {row} of {where} is {frame.shape[0]}x{frame.shape[1]} but meta/info.json "
                f"says {size[0]}x{size[1]}. Rule: a camera's images have the size its feature "
                "declares. Fix: correct meta/info.json or download the dataset again."
            )
        yield frame
