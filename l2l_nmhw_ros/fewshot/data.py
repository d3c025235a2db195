"""Omniglot as distributed, resized as the authors do, and few-shot episodes.

Sources (no download at run time): the zips of Lake et al.'s repository
(``images_background.zip``, ``images_evaluation.zip``, ``images_background_small1/2.zip``: PNGs
at ``<top>/<alphabet>/<character>/<drawing>.png``) or the same tree unpacked in a folder; and
``one_shot_all_runs.zip`` (20 runs of 20-way 1-shot: ``runNN/training/classKK.png``,
``runNN/test/itemKK.png``, ``runNN/class_labels.txt``).

Pre-processing follows the paper code (``few_shot_image_classification/omniglot_v2.py``, which
reads tensorflow-datasets' ``omniglot``): pixel values /255 (white background = 1.0, strokes =
0.0, *not* inverted), grey scale, then ``tf.image.resize(·, [28, 28])`` = bilinear with half-pixel
centres and no antialiasing, which is ``torch.nn.functional.interpolate(mode='bilinear',
align_corners=False, antialias=False)``. During meta-training each class of a task is rotated by a
random multiple of 90° (the code's augmentation).

Differences to the paper code's sampler, on purpose: the classes of an episode are drawn *without*
replacement (the code uses ``random.choices``, so two of the 5 classes can coincide), and the
query images of a class are distinct drawings (the code fills all query slots of a class with one
drawing, paper-notes §4 quirk).
"""

from __future__ import annotations

import dataclasses
import io
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ['IMAGE_SIZE', 'CharacterSet', 'Episode', 'OneShotRun', 'load_characters',
           'load_one_shot_runs', 'preprocess', 'sample_episode', 'sample_one_shot_episode']

#: Side of the network's input images [pixels] (paper code: 28 × 28).
IMAGE_SIZE = 28
_PNG = re.compile(r'(?:^|/)([^/]+)/([^/]+)/([^/]+\.png)$')


def preprocess(pixels: np.ndarray) -> torch.Tensor:
    """Return images scaled to [0, 1] and resized to 28 × 28 as the paper code does.

    Args:
        pixels: uint8 grey values, shape (n, h, w) (Omniglot: (n, 105, 105)).

    Returns:
        float32 tensor (n, 28, 28), 1.0 = white background.

    Raises:
        ValueError: not a 3-d uint8 array.
    """
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim != 3:
        got = f'{getattr(pixels, "dtype", type(pixels))} {getattr(pixels, "shape", "")}'
        raise ValueError(f'pixels: expected a uint8 array (n, h, w), got {got}')
    x = torch.from_numpy(pixels.astype(np.float32) / 255.0).unsqueeze(1)
    y = F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode='bilinear', align_corners=False,
                      antialias=False)
    return y.squeeze(1).contiguous()


def _decode(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert('L'), dtype=np.uint8)


def _entries(source: Path) -> list[tuple[str, bytes]]:
    """(relative path, PNG bytes) of every PNG of a zip or folder, sorted by path."""
    out: list[tuple[str, bytes]] = []
    if source.is_dir():
        for p in sorted(source.rglob('*.png')):
            out.append((p.relative_to(source).as_posix(), p.read_bytes()))
    elif source.is_file() and zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as z:
            for name in sorted(z.namelist()):
                if name.endswith('.png'):
                    out.append((name, z.read(name)))
    else:
        raise FileNotFoundError(f'{source}: not a folder or zip file of Omniglot PNGs')
    return out


@dataclasses.dataclass(frozen=True)
class CharacterSet:
    """Omniglot characters: one float32 tensor (n_drawings, 28, 28) per character.

    Attributes:
        names: ``'<alphabet>/<character>'`` per character, sorted.
        images: the drawings of each character, same order as ``names``.
    """

    names: tuple[str, ...]
    images: tuple[torch.Tensor, ...]

    @property
    def alphabets(self) -> tuple[str, ...]:
        """The alphabets present, sorted."""
        return tuple(sorted({n.split('/')[0] for n in self.names}))

    def __len__(self) -> int:
        return len(self.names)


def load_characters(sources: Sequence[str | Path], *, alphabets: Sequence[str] | None = None,
                    exclude: Sequence[str] | None = None) -> CharacterSet:
    """Read Omniglot characters from zips and/or folders of the distributed layout.

    A drawing present in several sources (same alphabet, character and file name, e.g. Greek in
    both ``images_background_small1`` and ``small2``) is read once.

    Args:
        sources: zip files or folders holding ``<alphabet>/<character>/<drawing>.png``.
        alphabets: keep only these alphabets (``None``: all).
        exclude: drop these alphabets (applied after ``alphabets``).

    Returns:
        :class:`CharacterSet` sorted by name.

    Raises:
        FileNotFoundError: a source is neither a folder nor a zip.
        ValueError: no character left after the filters, or a requested alphabet is absent.
    """
    found: dict[str, dict[str, bytes]] = {}
    for src in sources:
        for rel, data in _entries(Path(src)):
            m = _PNG.search(rel)
            if m is None or m.group(1).startswith('run'):
                continue
            found.setdefault(f'{m.group(1)}/{m.group(2)}', {})[m.group(3)] = data
    present = {n.split('/')[0] for n in found}
    if alphabets is not None:
        missing = sorted(set(alphabets) - present)
        if missing:
            raise ValueError(f'alphabets: {missing} not in the sources (present: '
                             f'{sorted(present)})')
        found = {n: v for n, v in found.items() if n.split('/')[0] in set(alphabets)}
    if exclude:
        found = {n: v for n, v in found.items() if n.split('/')[0] not in set(exclude)}
    if not found:
        raise ValueError(f'no Omniglot character found in {[str(s) for s in sources]} after the '
                         'alphabet filters')
    names = tuple(sorted(found))
    images = tuple(preprocess(np.stack([_decode(found[n][f]) for f in sorted(found[n])]))
                   for n in names)
    return CharacterSet(names, images)


@dataclasses.dataclass(frozen=True)
class OneShotRun:
    """One run of Lake et al.'s 20-way 1-shot test: ``support[k]`` is class k's single
    training drawing, ``query[i]`` a test drawing of class ``query_labels[i]``; both
    (20, 28, 28)."""

    name: str
    support: torch.Tensor
    query: torch.Tensor
    query_labels: torch.Tensor


def load_one_shot_runs(source: str | Path) -> list[OneShotRun]:
    """Read ``one_shot_all_runs.zip`` (or its unpacked folder).

    Raises:
        FileNotFoundError: not a zip or folder.
        ValueError: no run found, or a ``class_labels.txt`` that names a missing file.
    """
    files = dict(_entries(Path(source)))
    src = Path(source)
    if src.is_dir():
        labels = {p.relative_to(src).as_posix(): p.read_text() for p in
                  sorted(src.rglob('class_labels.txt'))}
    else:
        with zipfile.ZipFile(src) as z:
            labels = {n: z.read(n).decode() for n in sorted(z.namelist())
                      if n.endswith('class_labels.txt')}
    runs = []
    for path, text in sorted(labels.items()):
        prefix = path[:-len('class_labels.txt')]
        train_names = sorted(n for n in files if n.startswith(prefix + 'training/'))
        pairs = [line.split() for line in text.splitlines() if line.strip()]
        test_names = [prefix + Path(t).relative_to(Path(t).parts[0]).as_posix()
                      if not t.startswith(prefix) else t for t, _ in pairs]
        cls_names = [prefix + Path(c).relative_to(Path(c).parts[0]).as_posix()
                     if not c.startswith(prefix) else c for _, c in pairs]
        for n in test_names + cls_names:
            if n not in files:
                raise ValueError(f'{source}: {path} names {n}, which is missing')
        index = {n: k for k, n in enumerate(train_names)}
        support = preprocess(np.stack([_decode(files[n]) for n in train_names]))
        query = preprocess(np.stack([_decode(files[n]) for n in test_names]))
        lab = torch.tensor([index[c] for c in cls_names], dtype=torch.int64)
        runs.append(OneShotRun(prefix.rstrip('/').split('/')[-1], support, query, lab))
    if not runs:
        raise ValueError(f'{source}: no one-shot run (runNN/class_labels.txt) found')
    return runs


@dataclasses.dataclass(frozen=True)
class Episode:
    """One few-shot task. Images (n, 1, 28, 28) float32; labels (n,) int64 in 0..ways−1,
    class-major (all shots of class 0 first). ``classes`` names the character of each label."""

    support: torch.Tensor
    support_labels: torch.Tensor
    query: torch.Tensor
    query_labels: torch.Tensor
    classes: tuple[str, ...]


def sample_episode(chars: CharacterSet, ways: int, shots: int, queries: int,
                   rng: np.random.Generator, *, rotate: bool = False) -> Episode:
    """Draw a ``ways``-way ``shots``-shot episode with ``queries`` query drawings per class.

    Classes are drawn without replacement, drawings of a class without replacement
    (support and query disjoint). ``rotate``: each class turned by k·90°, k uniform in 0..3 (the
    meta-training augmentation of the paper code; a rotated character counts as its own class).

    Args:
        chars: the character pool.
        ways: classes per episode (≥ 2).
        shots: support drawings per class (≥ 1).
        queries: query drawings per class (≥ 1).
        rng: numpy random generator (the only randomness used).
        rotate: random 90° rotations per class.

    Returns:
        :class:`Episode` with ways·shots support and ways·queries query images.

    Raises:
        ValueError: bad sizes, fewer than ``ways`` characters, or a character with fewer than
            shots + queries drawings.
    """
    for name, v, lo in (('ways', ways, 2), ('shots', shots, 1), ('queries', queries, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f'{name}: expected an int >= {lo}, got {v!r}')
    if len(chars) < ways:
        raise ValueError(f'ways: {ways} classes requested, the pool has {len(chars)} characters')
    cls = rng.choice(len(chars), size=ways, replace=False)
    sup, qry, names = [], [], []
    for c in cls:
        imgs = chars.images[int(c)]
        if imgs.shape[0] < shots + queries:
            raise ValueError(f'{chars.names[int(c)]}: {imgs.shape[0]} drawings, need '
                             f'{shots + queries}')
        pick = rng.choice(imgs.shape[0], size=shots + queries, replace=False)
        x = imgs[torch.from_numpy(pick)]
        k = int(rng.integers(4)) if rotate else 0
        if k:
            x = torch.rot90(x, k, dims=(1, 2))
        sup.append(x[:shots])
        qry.append(x[shots:])
        names.append(chars.names[int(c)] + (f'@rot{90 * k}' if k else ''))
    lab = torch.arange(ways, dtype=torch.int64)
    return Episode(torch.cat(sup).unsqueeze(1), lab.repeat_interleave(shots),
                   torch.cat(qry).unsqueeze(1), lab.repeat_interleave(queries), tuple(names))


def sample_one_shot_episode(runs: Sequence[OneShotRun], ways: int,
                            rng: np.random.Generator) -> Episode:
    """Draw a ``ways``-way 1-shot episode from the one-shot runs' characters: a run, then
    ``ways`` of its 20 classes; support = their training drawings, query = the test drawings
    of those classes (one each, by another drawer).

    Raises:
        ValueError: ``ways`` < 2 or larger than the classes of a run.
    """
    run = runs[int(rng.integers(len(runs)))]
    n = run.support.shape[0]
    if isinstance(ways, bool) or not isinstance(ways, int) or not 2 <= ways <= n:
        raise ValueError(f'ways: expected an int in 2..{n}, got {ways!r}')
    cls = torch.from_numpy(rng.choice(n, size=ways, replace=False))
    sup = run.support[cls]
    q_idx = [int(torch.nonzero(run.query_labels == c)[0, 0]) for c in cls.tolist()]
    qry = run.query[torch.tensor(q_idx)]
    lab = torch.arange(ways, dtype=torch.int64)
    return Episode(sup.unsqueeze(1), lab, qry.unsqueeze(1), lab.clone(),
                   tuple(f'{run.name}/class{int(c) + 1:02d}' for c in cls))
