"""Checkpoints: every model and optimizer variable plus the loop's state, written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from charlm.errors import PathError

STATE = "state.json"
ARRAYS = "state.npz"
BEST = "best.npz"


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def variables_to_arrays(variables) -> dict[str, np.ndarray]:
    return {f"{i:04d}": np.asarray(v.numpy()) for i, v in enumerate(variables)}


def assign_arrays(variables, arrays) -> None:
    keys = sorted(arrays.keys())
    if len(keys) != len(variables):
        raise ValueError(f"checkpoint holds {len(keys)} arrays, the model has {len(variables)} variables")
    for v, k in zip(variables, keys):
        a = arrays[k]
        if tuple(a.shape) != tuple(v.shape):
            raise ValueError(f"checkpoint array {k} has shape {a.shape}, variable {v.path} has {tuple(v.shape)}")
        v.assign(a)


def save(ckpt_dir: Path, model, optimizer, state: dict) -> None:
    """Write weights + optimizer + loop state; the JSON goes last, so a crash mid-way keeps the old one valid."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    arrays = {"m" + k: a for k, a in variables_to_arrays(model.variables).items()}
    arrays.update({"o" + k: a for k, a in variables_to_arrays(optimizer.variables).items()})
    tag = f"{state['epoch']:05d}-{state['step']:06d}"
    name = f"state-{tag}.npz"
    _atomic_write(ckpt_dir / name, lambda f: np.savez(f, **arrays))
    state = {**state, "arrays": name}
    _atomic_write(ckpt_dir / STATE, lambda f: f.write(json.dumps(state, indent=1).encode()))
    for old in ckpt_dir.glob("state-*.npz"):
        if old.name != name:
            old.unlink(missing_ok=True)


def save_best(ckpt_dir: Path, model) -> None:
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write(ckpt_dir / BEST, lambda f: np.savez(f, **variables_to_arrays(model.variables)))


class CheckpointError(PathError):
    """A checkpoint that cannot be resumed (truncated, edited, half deleted): `path` and `problem`."""


def load_state(ckpt_dir: Path) -> dict | None:
    """The checkpoint's state (None when there is none); CheckpointError when it cannot be resumed."""
    p = ckpt_dir / STATE
    if not p.is_file():
        return None
    try:
        state = json.loads(p.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:  # (JSONDecodeError is a ValueError)
        raise CheckpointError(p, f"unreadable ({e}); was it cut short?") from None
    missing = [k for k in ("epoch", "step", "arrays", "charset", "config") if not isinstance(state, dict) or k not in state]
    if missing:
        raise CheckpointError(p, f"not a checkpoint's state (no {', '.join(missing)})")
    if not (ckpt_dir / str(state["arrays"])).is_file():
        raise CheckpointError(ckpt_dir / str(state["arrays"]), f"missing (named by {p})")
    return state


def restore(ckpt_dir: Path, model, optimizer, state: dict) -> None:
    with np.load(ckpt_dir / state["arrays"]) as z:
        assign_arrays(model.variables, {k[1:]: z[k] for k in z.files if k.startswith("m")})
        assign_arrays(optimizer.variables, {k[1:]: z[k] for k in z.files if k.startswith("o")})


def restore_best(ckpt_dir: Path, model) -> bool:
    p = ckpt_dir / BEST
    if not p.is_file():
        return False
    with np.load(p) as z:
        assign_arrays(model.variables, {k: z[k] for k in z.files})
    return True


def clear(ckpt_dir: Path) -> None:
    """Forget a checkpoint (starting over): the state first, so a crash half-way leaves no checkpoint, not half of one."""
    (ckpt_dir / STATE).unlink(missing_ok=True)
    for old in list(ckpt_dir.glob("state-*.npz")) + [ckpt_dir / BEST]:
        old.unlink(missing_ok=True)
