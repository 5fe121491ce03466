"""Views: how a slice/reshape/transpose/broadcast of a buffer is read without copying it."""
from __future__ import annotations

from braze.ir.kernel import View
from braze.ir.ops import Shape


class NotAView(Exception):
    """The requested reshape cannot be expressed with strides; the input must be copied first."""


def contiguous_strides(shape: Shape) -> tuple[int, ...]:
    if any(isinstance(d, str) for d in shape[1:]):
        raise NotAView(f"symbolic dims must lead a buffer's shape, got {list(shape)}")
    strides, step = [], 1
    for d in reversed(shape):
        strides.append(step)
        step *= d if isinstance(d, int) else 1
    return tuple(reversed(strides))


def full_view(buffer: str, shape: Shape) -> View:
    return View(buffer, tuple(shape), contiguous_strides(shape), 0)


def slice_view(v: View, axis: int, start: int, stop: int) -> View:
    axis %= len(v.shape)
    shape = v.shape[:axis] + (stop - start,) + v.shape[axis + 1:]
    return View(v.buffer, shape, v.strides, v.offset + start * v.strides[axis])


def transpose_view(v: View, perm: tuple[int, ...] | None) -> View:
    n = len(v.shape)
    perm = perm or tuple(range(n - 2)) + (n - 1, n - 2)
    return View(v.buffer, tuple(v.shape[p] for p in perm), tuple(v.strides[p] for p in perm), v.offset)


def _is_one(d) -> bool:
    return d == 1


def reshape_view(v: View, new_shape: Shape) -> View:
    """Group old and new dims into runs with equal products; each old run must be contiguous."""
    old = [(d, s) for d, s in zip(v.shape, v.strides) if not _is_one(d)]
    new = [d for d in new_shape if not _is_one(d)]
    out_strides: list[int] = []
    i = j = 0
    while i < len(old) or j < len(new):
        if i >= len(old) or j >= len(new):
            raise NotAView(f"cannot view {list(v.shape)} as {list(new_shape)}")
        if isinstance(old[i][0], str) or isinstance(new[j], str):
            if old[i][0] != new[j]:
                raise NotAView(f"cannot view {list(v.shape)} as {list(new_shape)}")
            out_strides.append(old[i][1])
            i, j = i + 1, j + 1
            continue
        run_old, run_new = [old[i]], [new[j]]
        p_old, p_new = old[i][0], new[j]
        i, j = i + 1, j + 1
        while p_old != p_new:
            if p_old < p_new:
                if i >= len(old) or isinstance(old[i][0], str):
                    raise NotAView(f"cannot view {list(v.shape)} as {list(new_shape)}")
                run_old.append(old[i]); p_old *= old[i][0]; i += 1  # noqa: E702
            else:
                if j >= len(new) or isinstance(new[j], str):
                    raise NotAView(f"cannot view {list(v.shape)} as {list(new_shape)}")
                run_new.append(new[j]); p_new *= new[j]; j += 1  # noqa: E702
        for (_, s), (d_next, s_next) in zip(run_old, run_old[1:]):
            if s != d_next * s_next:
                raise NotAView(f"cannot view a strided {list(v.shape)} as {list(new_shape)}")
        step = run_old[-1][1]
        strides = []
        for d in reversed(run_new):
            strides.append(step)
            step *= d
        out_strides.extend(reversed(strides))
    it = iter(out_strides)
    return View(v.buffer, tuple(new_shape), tuple(0 if _is_one(d) else next(it) for d in new_shape), v.offset)


def broadcast_view(v: View, domain: Shape) -> View:
    """Right-align v's shape with domain; size-1 and missing dims read with stride 0."""
    pad = len(domain) - len(v.shape)
    if pad < 0:
        raise ValueError(f"view {v} has more dims than domain {list(domain)}")
    shape, strides = [], []
    for k, d in enumerate(domain):
        src = v.shape[k - pad] if k >= pad else 1
        if src == d:
            shape.append(d)
            strides.append(v.strides[k - pad] if k >= pad else 0)
        elif src == 1:
            shape.append(d)
            strides.append(0)
        else:
            raise ValueError(f"view {v} does not broadcast to {list(domain)}")
    return View(v.buffer, tuple(shape), tuple(strides), v.offset)
