"""The authors' published checkpoints (safe import) and the fidelity evaluation against
their code."""
