"""Kernel settings read from the environment: choices as 1 (always), 0 (never) or auto (a rule of the
kernel's own, by its weight's size): BRAZE_INT4_REVSPLITK, BRAZE_INT8_REVSPLITK, BRAZE_FP8_FUSED_ADD;
tiles as comma-separated integers: BRAZE_REVSPLITK_TILE, BRAZE_FP8_ADD_CONFIG. A wrong value is an
InvalidArgumentError naming the right form (the CLI prints it as one line)."""
from __future__ import annotations

import os

from braze.errors import InvalidArgumentError


def auto_setting(name: str, default: str) -> str:
    """The setting `name` from the environment, checked: a wrong value names the right ones."""
    value = os.environ.get(name, default)
    if value not in ("0", "1", "auto"):
        raise InvalidArgumentError(f"{name}={value!r}: use 1 (always), 0 (never) or auto (by weight size)")
    return value


def tile_setting(name: str, default: tuple[int, ...], fields: str) -> tuple[int, ...]:
    """The integers of `name` ("512,32,2,4"), as many as `fields` names, or the default."""
    text = os.environ.get(name)
    if not text:
        return default
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != len(default) or min(values) <= 0:
        raise InvalidArgumentError(f"{name}={text!r}: give {len(default)} positive integers, {fields} "
                                   f"(e.g. {','.join(map(str, default))})")
    return values


def setting_allows(setting, auto: bool) -> bool:
    """Whether a kernel is taken under `setting` ("1", "0", "auto", or True / False as tests set),
    `auto` being the answer of its size rule."""
    if setting == "auto":
        return auto
    return setting in (True, "1")
