"""Offscreen rendering of one camera (``top``) of a scene, in one of two looks.

- ``paper``: the scene as its MJCF defines it (4096-pixel shadow map, 4x multisampling), the
  look of the ACT paper's datasets. On a CPU (Mesa llvmpipe) it costs about 100 ms per frame.
- ``fast``: no shadows, no multisampling: about 10x cheaper on a CPU, for tests and quick
  experiments. Policies trained on one look should be evaluated on the same look.

The offscreen framebuffer size and the multisampling are read from the model when the OpenGL
context is created, so they are set on the model first. Each renderer owns one context: close
it (or use it as a context manager) so the context is freed while OpenGL is still loaded.
"""

from __future__ import annotations

import contextlib

import numpy as np

from act_hydra.aloha_sim.runtime import gl_error, import_mujoco
from act_hydra.errors import ConfigError

RENDER_STYLES = ("paper", "fast")


def check_render_args(height: int, width: int, render_style: str) -> None:
    if render_style not in RENDER_STYLES:
        raise ConfigError(
            f"render_style={render_style!r} is not known. Rule: one of "
            f"{list(RENDER_STYLES)} (paper: shadows and anti-aliasing as in the "
            f"ACT paper; fast: neither, ~10x faster on CPU). Fix: "
            f"`render_style=paper`."
        )
    for key, value in (("height", height), ("width", width)):
        if not isinstance(value, (int, np.integer)) or not 8 <= value <= 4096:
            raise ConfigError(
                f"{key}={value!r} must be an integer in [8, 4096]. Fix: e.g. "
                f"`height=480 width=640` (the paper's size)."
            )


class CameraRenderer:
    """Renders ``camera`` of a scene's ``model``/``data`` as (H, W, 3) uint8 RGB."""

    def __init__(
        self, model, height: int, width: int, render_style: str = "paper", camera: str = "top"
    ):
        check_render_args(height, width, render_style)
        mj = import_mujoco()
        self._mj = mj
        self._renderer = None
        if mj.mj_name2id(model, mj.mjtObj.mjOBJ_CAMERA, camera) < 0:
            raise ValueError(f"the scene has no camera named {camera!r}")
        self.camera, self.height, self.width, self.render_style = (
            camera,
            height,
            width,
            render_style,
        )
        # The offscreen buffer must hold the image; the scenes' default is 640 x 480.
        model.vis.global_.offwidth = max(int(model.vis.global_.offwidth), width)
        model.vis.global_.offheight = max(int(model.vis.global_.offheight), height)
        if render_style == "fast":
            model.vis.quality.offsamples = 0
        try:
            if not hasattr(mj, "Renderer"):
                raise ImportError(
                    "mujoco.Renderer is unavailable (the OpenGL backend failed to load)"
                )
            self._renderer = mj.Renderer(model, height=height, width=width)
        except ConfigError:
            raise
        except Exception as e:  # no EGL/OSMesa library, no device, invalid MUJOCO_GL, ...
            raise gl_error(e) from e
        self._renderer.scene.flags[mj.mjtRndFlag.mjRND_SHADOW] = render_style == "paper"
        self._out = np.empty((height, width, 3), dtype=np.uint8)

    def render(self, data) -> np.ndarray:
        """A new (H, W, 3) uint8 frame of ``data``'s current state."""
        if self._renderer is None:
            raise RuntimeError("render() after close()")
        self._renderer.update_scene(data, camera=self.camera)
        return self._renderer.render(out=self._out).copy()

    def close(self) -> None:
        if self._renderer is not None:
            renderer, self._renderer = self._renderer, None
            renderer.close()

    def __enter__(self) -> CameraRenderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        # At interpreter shutdown OpenGL may already be unloaded: close() explicitly instead.
        with contextlib.suppress(Exception):
            self.close()
