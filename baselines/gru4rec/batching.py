"""Session-parallel mini-batches, the way the official GRU4Rec builds them.

Each of `batch_size` slots runs one training session click by click: at every step a slot feeds
the current click and is trained to predict the next one. When a slot's session has no next
click left, the slot takes the next session in time order and its hidden state is reset to zero
(the model, not this module, does the reset, from the `reset` flags). When no session is left,
finished slots are dropped and the batch shrinks until every session has been played. There is
no back-propagation across steps: the hidden state is carried forward detached.

The schedule depends only on the session lengths and their order, so it is computed once per fit
and stored flat (one entry per training pair); an epoch then slices it, which costs nothing next
to the network. Sessions of a single click have no training pair and are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from sessbench.data.sessions import SessionSet


@dataclass(frozen=True, eq=False)
class Schedule:
    """Where every slot of every step reads its input click.

    position:    int64 [n_pairs]; flat index (into `SessionSet.items`) of the input click of each
                 (step, slot); the target is the click at `position + 1`.
    reset:       bool [n_pairs]; True where the slot starts a new session at this step (its
                 hidden state must be zero before the step).
    keep:        int64 [n_pairs]; for each slot of a step, the slot of the previous step whose
                 hidden state it continues (the identity until slots start being dropped).
    step_offsets: int64 [n_steps + 1]; step t is the range step_offsets[t]:step_offsets[t+1].
    """

    position: np.ndarray
    reset: np.ndarray
    keep: np.ndarray
    step_offsets: np.ndarray

    @property
    def n_steps(self) -> int:
        return len(self.step_offsets) - 1

    @property
    def n_pairs(self) -> int:
        return len(self.position)

    def step(self, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lo, hi = self.step_offsets[t], self.step_offsets[t + 1]
        return self.position[lo:hi], self.reset[lo:hi], self.keep[lo:hi]


def time_order(sessions: SessionSet) -> np.ndarray:
    """Session indices sorted by time (stable: equal times keep their stored order)."""
    return np.argsort(sessions.timestamps, kind="stable")


def session_parallel_schedule(
    sessions: SessionSet,
    batch_size: int,
    order: np.ndarray | None = None,
    stop_below: int = 1,
) -> Schedule:
    """The session-parallel schedule of `sessions` played in `order` (default: time order).

    stop_below: stop as soon as fewer than this many slots are left (the official code stops
    below 2 slots when it draws no extra negatives, since a lone slot has nothing to rank).

    The loop runs once per block of steps in which no slot finishes (not once per session or
    click): inside a block every slot just advances, which is one vectorized expression.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    order = time_order(sessions) if order is None else np.asarray(order, dtype=np.int64)
    lengths = sessions.lengths[order]
    queue = order[lengths >= 2]  # sessions with at least one (input, target) pair
    starts_all = sessions.offsets[:-1]
    ends_all = sessions.offsets[1:]

    n_first = min(batch_size, len(queue))
    pos = starts_all[queue[:n_first]].astype(np.int64)
    end = ends_all[queue[:n_first]].astype(np.int64)
    next_session = n_first
    reset = np.ones(n_first, dtype=bool)
    keep = np.arange(n_first, dtype=np.int64)

    positions: list[np.ndarray] = []
    resets: list[np.ndarray] = []
    keeps: list[np.ndarray] = []
    step_sizes: list[np.ndarray] = []
    while len(pos) >= max(stop_below, 1):
        n = len(pos)
        # steps until the first slot runs out of targets: every slot advances in lockstep
        block = int((end - pos).min()) - 1
        steps = np.arange(block, dtype=np.int64)
        positions.append((pos[None, :] + steps[:, None]).ravel())
        first_reset = np.zeros((block, n), dtype=bool)
        first_reset[0] = reset
        resets.append(first_reset.ravel())
        block_keep = np.broadcast_to(np.arange(n, dtype=np.int64), (block, n)).copy()
        block_keep[0] = keep
        keeps.append(block_keep.ravel())
        step_sizes.append(np.full(block, n, dtype=np.int64))
        pos = pos + block

        finished = np.flatnonzero(end - pos <= 1)
        n_new = min(len(finished), len(queue) - next_session)
        refill, drop = finished[:n_new], finished[n_new:]
        new_sessions = queue[next_session : next_session + n_new]
        next_session += n_new
        pos[refill] = starts_all[new_sessions]
        end[refill] = ends_all[new_sessions]
        reset = np.zeros(n, dtype=bool)
        reset[refill] = True
        if len(drop):
            alive = np.ones(n, dtype=bool)
            alive[drop] = False
            keep = np.flatnonzero(alive)
            pos, end, reset = pos[keep], end[keep], reset[keep]
        else:
            keep = np.arange(n, dtype=np.int64)

    sizes = np.concatenate(step_sizes) if step_sizes else np.zeros(0, np.int64)
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    empty_i, empty_b = np.zeros(0, np.int64), np.zeros(0, bool)
    return Schedule(
        position=np.concatenate(positions) if positions else empty_i,
        reset=np.concatenate(resets) if resets else empty_b,
        keep=np.concatenate(keeps) if keeps else empty_i,
        step_offsets=offsets,
    )


@dataclass(frozen=True)
class ParallelBatch:
    """One session-parallel step: what the training loop moves to the device and the loss reads.

    inputs, targets: int64 [B]; the current click and the next click of each slot.
    reset:   bool [B]; the slot starts a new session (zero its hidden state first).
    keep:    int64 [B] or None; slots of the previous step to carry (None: all, same order).
    samples: int64 [n_sample]; the step's extra negatives (empty without extra sampling).
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    reset: torch.Tensor
    keep: torch.Tensor | None
    samples: torch.Tensor

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def to(self, device: torch.device | str) -> "ParallelBatch":
        if self.inputs.device == torch.device(device):
            return self
        return replace(
            self,
            inputs=self.inputs.to(device, non_blocking=True),
            targets=self.targets.to(device, non_blocking=True),
            reset=self.reset.to(device, non_blocking=True),
            keep=None if self.keep is None else self.keep.to(device, non_blocking=True),
            samples=self.samples.to(device, non_blocking=True),
        )


def step_batch(sessions: SessionSet, schedule: Schedule, t: int, samples: torch.Tensor) -> ParallelBatch:
    """Step t of `schedule` as a ParallelBatch (a few small gathers)."""
    position, reset, keep = schedule.step(t)
    inputs = sessions.items[position].astype(np.int64)
    targets = sessions.items[position + 1].astype(np.int64)
    # slots are only ever dropped, so the carried state is reordered exactly when the step shrinks
    offsets = schedule.step_offsets
    identity = t == 0 or offsets[t + 1] - offsets[t] == offsets[t] - offsets[t - 1]
    return ParallelBatch(
        inputs=torch.from_numpy(inputs),
        targets=torch.from_numpy(targets),
        reset=torch.from_numpy(reset.copy()),
        keep=None if identity else torch.from_numpy(keep.copy()),
        samples=samples,
    )
