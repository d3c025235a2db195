"""Few-shot image classification on PCM (ROS-free): the paper's second scenario.

A 4-layer convolutional network with a dense readout, meta-trained with MAML so that 4 SGD steps
on the readout alone learn 5 new Omniglot classes from 5 (or 1) examples each; at evaluation every
weight lives on the emulated PCM crossbar (:class:`l2l_nmhw_ros.pcm.PCMModel`) and each readout
update is rounded stochastically to the 1/16 grid and re-programmed on the changed devices only.

- :mod:`~l2l_nmhw_ros.fewshot.data` — Omniglot as distributed (zips of PNGs or a folder),
  resized to 28 × 28 as the authors do; episode sampling; the one-shot runs.
- :mod:`~l2l_nmhw_ros.fewshot.model` — the CNN (weights, forward, the BatchNorm quirk).
- :mod:`~l2l_nmhw_ros.fewshot.maml` — the inner loop (readout only) and its closed-form gradient.
- :mod:`~l2l_nmhw_ros.fewshot.pcm` — deployment on PCM, :class:`FewShotClassifier`
  (``learn`` / ``predict``), evaluation of float / 1/16-grid / PCM side by side.
- :mod:`~l2l_nmhw_ros.fewshot.train` — MAML meta-training and the checkpoint folder.
- :mod:`~l2l_nmhw_ros.fewshot.cli` — ``l2l-nmhw fewshot train|eval``.

References: Ortner et al., Nat. Commun. 16 (2025), Fig. 2 and code
``few_shot_image_classification/`` (paper-notes §4); Finn et al. 2017 (MAML); Lake et al. 2015
(Omniglot).
"""

from __future__ import annotations
