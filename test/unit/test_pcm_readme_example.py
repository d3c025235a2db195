"""The README's PCM Python API example runs as written."""

from __future__ import annotations

import os
import re
from pathlib import Path


def test_readme_pcm_example_runs(repo_root: Path, tmp_path: Path) -> None:
    text = (repo_root / 'README.md').read_text(encoding='utf-8')
    section = text.split('## PCM emulator (Python API)', 1)[1].split('\n## ', 1)[0]
    code = re.search(r'```python\n(.*?)```', section, re.S).group(1)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        scope: dict[str, object] = {}
        exec(compile(code, 'README.md', 'exec'), scope)  # noqa: S102 - our own documentation
    finally:
        os.chdir(cwd)
    assert scope['y'].shape == (4, 252)
    assert scope['n'] > 0
    assert (tmp_path / 'pcm_state.safetensors').is_file()
