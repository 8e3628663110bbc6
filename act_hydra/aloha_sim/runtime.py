"""Finding MuJoCo, the ALOHA scene files and a working offscreen OpenGL, with fixable errors.

The simulation is an optional part of act_hydra (the ``sim`` extra), so nothing here is imported
at package import time: each function loads what it needs when it is called, and every missing
piece becomes a ``ConfigError`` (exit code 2) that says the command that fixes it.

- ``import_mujoco()``: MuJoCo picks its OpenGL backend when it is first imported, from the
  ``MUJOCO_GL`` environment variable. On a headless machine (no ``DISPLAY``) the default (GLFW)
  cannot open a window, so we choose EGL before the import unless the user chose already.
- ``asset_dir()``: the MJCF/STL files of the two bimanual ViperX scenes ship inside the
  ``gym_aloha`` package. We only need its data folder: it is located with ``find_spec`` and never
  imported (importing it would pull in dm_control and gymnasium, which the ``sim`` extra does
  not install and which do not install on Python 3.13).
- ``gl_error()``: wraps a failure to create an offscreen context into a message naming the
  backends and the Debian packages that provide them.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from act_hydra.errors import ConfigError

MUJOCO_VERSION = "3.8.1"
ASSET_PACKAGE = "gym_aloha"
ASSET_PACKAGE_VERSION = "0.1.5"
# The scene files every task needs; checked up front so a broken install fails with one message.
REQUIRED_ASSETS = (
    "scene.xml",
    "vx300s_dependencies.xml",
    "vx300s_left.xml",
    "vx300s_right.xml",
    "bimanual_viperx_transfer_cube.xml",
    "bimanual_viperx_end_effector_transfer_cube.xml",
    "bimanual_viperx_insertion.xml",
    "bimanual_viperx_end_effector_insertion.xml",
)
INSTALL_HINT = (
    f"pip install -e '.[sim]' && pip install --no-deps "
    f"{ASSET_PACKAGE.replace('_', '-')}=={ASSET_PACKAGE_VERSION}"
)
GL_PACKAGES = "libegl1 libegl-mesa0 libgl1-mesa-dri libopengl0"

_mujoco = None


def choose_gl_backend() -> str | None:
    """Set ``MUJOCO_GL=egl`` when the user has not chosen and there is no display.

    Must run before the first ``import mujoco``; returns the backend in force (None = MuJoCo's
    default, GLFW).
    """
    if not os.environ.get("MUJOCO_GL") and not os.environ.get("DISPLAY"):
        os.environ["MUJOCO_GL"] = "egl"
    return os.environ.get("MUJOCO_GL") or None


def import_mujoco():
    """The ``mujoco`` module (imported once), or a ``ConfigError`` saying how to install it."""
    global _mujoco
    if _mujoco is not None:
        return _mujoco
    choose_gl_backend()
    try:
        import mujoco
    except ImportError as e:
        raise ConfigError(
            f"the ALOHA simulation needs the `mujoco` package ({e}). Fix: install the sim extra "
            f"and the scene files: `{INSTALL_HINT}`."
        ) from e
    except Exception as e:  # MuJoCo loads its OpenGL backend on import: bad MUJOCO_GL, no lib
        raise gl_error(e) from e
    _mujoco = mujoco
    return mujoco


def mujoco_version() -> str:
    return import_mujoco().__version__


def asset_dir() -> Path:
    """The folder of ALOHA scene files inside the installed ``gym_aloha`` package."""
    try:
        spec = importlib.util.find_spec(ASSET_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"the ALOHA scene files come from the `{ASSET_PACKAGE}` package, which is not "
            f"installed. Fix: `{INSTALL_HINT}` (--no-deps: only its asset files are used)."
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "assets"
    missing = [name for name in REQUIRED_ASSETS if not (folder / name).is_file()]
    if missing:
        raise ConfigError(
            f"the `{ASSET_PACKAGE}` package at {folder.parent} lacks scene files "
            f"({', '.join(missing)}). Rule: act_hydra loads the scenes of {ASSET_PACKAGE} "
            f"{ASSET_PACKAGE_VERSION}. Fix: `pip install --force-reinstall --no-deps "
            f"{ASSET_PACKAGE.replace('_', '-')}=={ASSET_PACKAGE_VERSION}`."
        )
    return folder


def asset_package_version() -> str | None:
    """The installed version of the asset package (read from its metadata, not imported)."""
    from importlib import metadata

    try:
        return metadata.version(ASSET_PACKAGE.replace("_", "-"))
    except metadata.PackageNotFoundError:
        return None


def gl_error(err: BaseException) -> ConfigError:
    """A ``ConfigError`` for a failed offscreen OpenGL context (``err`` is the cause)."""
    backend = os.environ.get("MUJOCO_GL") or "glfw (MuJoCo's default)"
    return ConfigError(
        f"offscreen rendering failed with MUJOCO_GL={backend}: {type(err).__name__}: {err}. "
        f"Rule: the ALOHA simulation renders its camera offscreen through EGL or OSMesa. Fix: "
        f"set `MUJOCO_GL=egl` (or `MUJOCO_GL=osmesa`, slower) before starting, and install the "
        f"system OpenGL libraries, on Debian/Ubuntu `apt-get install {GL_PACKAGES}` "
        f"(osmesa also needs libosmesa6)."
    )
