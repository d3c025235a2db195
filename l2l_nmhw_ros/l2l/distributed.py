"""Data-parallel meta-training over processes and machines with ``torch.distributed``.

Started by PyTorch's own launcher, nothing home-made::

    torchrun --standalone --nproc-per-node 2 -m l2l_nmhw_ros.cli train ...      # one machine
    torchrun --nnodes 2 --node-rank R --rdzv-backend c10d --rdzv-endpoint HOST:29400 \\
        --nproc-per-node 8 -m l2l_nmhw_ros.cli train ...                        # a cluster

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``;
:func:`init_from_env` joins the process group (backend ``nccl`` on CUDA, ``gloo`` on CPU). How a
step is shared (:class:`~l2l_nmhw_ros.l2l.meta.MetaTrainer`):

- every rank draws the SAME global batch of tasks from the shared task stream (seeded by
  ``seed``; saved in checkpoints) and adapts its contiguous share of it (:meth:`World.shard`):
  the global batch does not depend on the world size, so a run can resume with another one;
- device noise (PCM, stochastic rounding) comes from a stream per (seed, iteration, rank)
  (:func:`noise_seed`): reproducible, and nothing to save;
- the loss is that of the global batch: per-task terms summed and divided by the global batch
  size, firing-rate regularisers on the global mean rates (an all-reduce with autograd); the
  gradients are summed over ranks (all-reduce), so every rank takes the same Adam step and the
  parameters stay identical; rank 0 logs, validates and writes checkpoints.

With one process (no ``torchrun``) :data:`SINGLE` is used and nothing is communicated.
"""

from __future__ import annotations

import dataclasses
import datetime
import os

import numpy as np
import torch

__all__ = ['SINGLE', 'World', 'init_from_env', 'noise_seed', 'resolve_device', 'shutdown']


@dataclasses.dataclass(frozen=True)
class World:
    """This process's place in the process group: ``rank`` of ``size`` (size 1: alone)."""

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        """True on rank 0 (logs, validates, writes checkpoints)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when there are other ranks to talk to."""
        return self.size > 1

    def shard(self, n: int) -> tuple[int, int]:
        """Return this rank's contiguous share [lo, hi) of `n` tasks (sizes differ by <= 1).

        Raises:
            ValueError: fewer tasks than ranks (a rank would have nothing to do).
        """
        if n < self.size:
            raise ValueError(f'batch of {n} tasks over {self.size} ranks: every rank needs at '
                             'least one task (raise meta.batch_size or use fewer processes)')
        bounds = np.cumsum([0] + [n // self.size + (i < n % self.size)
                                  for i in range(self.size)])
        return int(bounds[self.rank]), int(bounds[self.rank + 1])

    def all_reduce_autograd(self, t: torch.Tensor) -> torch.Tensor:
        """Sum `t` over ranks, differentiably (the backward sums the gradients over ranks)."""
        if not self.distributed:
            return t
        return _AllReduceSum.apply(t)

    def all_reduce_(self, t: torch.Tensor) -> torch.Tensor:
        """Sum `t` over ranks in place (no autograd); returns `t`."""
        if self.distributed:
            torch.distributed.all_reduce(t)
        return t

    def all_reduce_grads(self, params: list[torch.Tensor]) -> None:
        """Sum the gradients of `params` over ranks in place (one flat buffer, one call)."""
        if not self.distributed:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        torch.distributed.all_reduce(flat)
        offset = 0
        for p, g in zip(params, grads, strict=True):
            n = g.numel()
            p.grad = flat[offset:offset + n].view_as(p).clone()
            offset += n

    def broadcast_(self, tensors: list[torch.Tensor]) -> None:
        """Copy rank 0's values of `tensors` to every rank, in place."""
        if self.distributed:
            with torch.no_grad():
                for t in tensors:
                    torch.distributed.broadcast(t.data, src=0)

    def barrier(self) -> None:
        """Wait for every rank."""
        if self.distributed:
            torch.distributed.barrier()


SINGLE = World()


class _AllReduceSum(torch.autograd.Function):
    """y = sum over ranks of x; dL/dx = sum over ranks of dL/dy (every rank's loss depends on
    every rank's x through y)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        y = x.clone()
        torch.distributed.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # noqa: D102
        g = g.clone()
        torch.distributed.all_reduce(g)
        return g


def noise_seed(seed: int, iteration: int, rank: int) -> int:
    """Return the seed of the device-noise stream of (`seed`, `iteration`, `rank`), a 63-bit
    hash (numpy SeedSequence) so that nearby seeds give unrelated streams."""
    state = np.random.SeedSequence([int(seed), 0x4E4F495345, int(iteration), int(rank)])
    return int(state.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def resolve_device(name: str) -> torch.device:
    """Return the torch device for ``cpu``, ``cuda`` (``cuda:N``) or ``auto`` (CUDA when
    available, else CPU). Under ``torchrun`` a CUDA device is the one of ``LOCAL_RANK``.

    Raises:
        ValueError: unknown name, or CUDA asked for and not available (the message says what
            torch reports).
    """
    if name == 'auto':
        name = 'cuda' if torch.cuda.is_available() else 'cpu'
    if name == 'cpu':
        return torch.device('cpu')
    if name.startswith('cuda'):
        if not torch.cuda.is_available():
            raise ValueError(f'--device {name}: CUDA is not available in this torch build '
                             f'({torch.__version__}) or on this machine; use --device cpu '
                             '(or auto)')
        if name == 'cuda':
            return torch.device('cuda', int(os.environ.get('LOCAL_RANK', '0')))
        return torch.device(name)
    raise ValueError(f'--device {name!r}: expected cpu, cuda, cuda:N or auto')


def init_from_env(device: torch.device) -> World:
    """Join the process group that ``torchrun`` describes in the environment, or return
    :data:`SINGLE` when there is none (``WORLD_SIZE`` unset or 1).

    Backend ``nccl`` for CUDA devices, ``gloo`` otherwise.

    Raises:
        RuntimeError: the process group cannot be formed (torch's message).
    """
    size = int(os.environ.get('WORLD_SIZE', '1'))
    if size <= 1:
        return SINGLE
    if device.type == 'cuda':
        torch.cuda.set_device(device)
    backend = 'nccl' if device.type == 'cuda' else 'gloo'
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend=backend)
    return World(torch.distributed.get_rank(), torch.distributed.get_world_size())


def shutdown(world: World) -> None:
    """Leave the process group (no-op for :data:`SINGLE`), all ranks together.

    A gloo rank that tore its group down while another still had it open was seen to abort
    (``terminate called without an active exception``, SIGABRT) in a 2-process test; so the
    ranks first meet at a barrier, bounded (gloo: 60 s, then each leaves anyway) so that a rank
    whose peer died is not kept waiting.
    """
    if not (world.distributed and torch.distributed.is_initialized()):
        return
    try:
        if torch.distributed.get_backend() == 'gloo':
            torch.distributed.monitored_barrier(timeout=datetime.timedelta(seconds=60))
        else:
            torch.distributed.barrier()
    except RuntimeError:  # a peer is gone: leave anyway
        pass
    torch.distributed.destroy_process_group()
