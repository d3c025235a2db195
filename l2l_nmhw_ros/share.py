"""Find the package's share files (config/, urdf/, checkpoints/, launch/).

Installed (colcon, or the Makefile's editable install with its share links): the ament index,
``share/l2l_nmhw_ros/<relative>``. From a source checkout without an index: the repository root.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = 'l2l_nmhw_ros'
SOURCE_ROOT = Path(__file__).resolve().parent.parent


def share_candidates() -> list[Path]:
    """Return the folders searched, in order: the ament index share (if any), the source root."""
    out = []
    try:
        from ament_index_python.packages import get_package_share_directory

        out.append(Path(get_package_share_directory(PACKAGE)))
    except Exception:  # noqa: BLE001 - ament index absent or package not indexed
        pass
    out.append(SOURCE_ROOT)
    return out


def find_share(relative: str | Path, *, directory: bool = False) -> Path:
    """Return the first existing ``<share>/<relative>`` (a file, or a folder with ``directory``).

    Raises:
        FileNotFoundError: naming every place looked in.
    """
    tried = []
    for base in share_candidates():
        p = base / relative
        if (p.is_dir() if directory else p.is_file()):
            return p
        tried.append(str(p))
    raise FileNotFoundError(f'{relative} not found (looked in {tried})')
