"""A task's resource limits as the founding article writes them: Kubernetes quantities.

``memory`` in bytes with binary (``512Mi``, ``1Gi``) or decimal (``500M``, ``1G``) suffixes, ``cpu`` in
cores (``2``, ``0.5``) or millicores (``250m``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["LimitError", "ResourceLimits", "parse_cpu", "parse_memory"]

_BINARY = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "Pi": 1 << 50, "Ei": 1 << 60}
_DECIMAL = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_QUANTITY = re.compile(r"(\d+(?:\.\d+)?|\.\d+)([A-Za-z]*)")
# Below this a program cannot even start: surely a unit left out (`512` for 512 bytes).
_SMALLEST_MEMORY = 1 << 20


class LimitError(ValueError):
    """A limit that is not a quantity of its kind, with the reason."""


def parse_memory(value: Any) -> int:
    """``512Mi`` -> 536870912 bytes."""
    amount, suffix = _split(value, "memory")
    scale = _BINARY.get(suffix) or _DECIMAL.get(suffix) or (1 if suffix == "" else None)
    if scale is None:
        raise LimitError(f"memory `{value}`: unknown unit `{suffix}` (use Ki, Mi, Gi, Ti or k, M, G, T)")
    size = int(amount * scale)
    if size < _SMALLEST_MEMORY:
        raise LimitError(f"memory `{value}` is {size} bytes, too little to run a program (at least 1Mi)")
    return size


def parse_cpu(value: Any) -> float:
    """``250m`` -> 0.25 cores; ``2`` -> 2.0."""
    amount, suffix = _split(value, "cpu")
    if suffix not in ("", "m"):
        raise LimitError(f"cpu `{value}`: a number of cores (`2`, `0.5`) or of millicores (`250m`)")
    cores = amount / 1000 if suffix == "m" else amount
    if cores < 0.001:
        raise LimitError(f"cpu `{value}` is less than a millicore")
    return cores


def _split(value: Any, kind: str) -> tuple[float, str]:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise LimitError(f"{kind} must be a quantity such as {'512Mi' if kind == 'memory' else '250m'}")
    match = _QUANTITY.fullmatch(str(value).strip())
    if match is None:
        raise LimitError(
            f"{kind} `{value}` is not a quantity such as {'512Mi' if kind == 'memory' else '250m'}"
        )
    return float(match.group(1)), match.group(2)


@dataclass(frozen=True, slots=True)
class ResourceLimits:
    """The limits of one task's programs, with the text they were written as (for messages).

    Attributes:
        memory: Bytes of memory the task's processes may hold together; None for no limit.
        cpu: Cores of CPU time per second they may use together; None for no limit.
    """

    memory: int | None = None
    cpu: float | None = None
    memory_text: str = ""
    cpu_text: str = ""

    @staticmethod
    def of(runner: Any) -> ResourceLimits | None:
        """From a rendered ``taskRunner`` map; None when it sets no limit.

        Raises:
            LimitError: A limit is not a quantity of its kind.
        """
        if not isinstance(runner, dict) or (runner.get("memory") is None and runner.get("cpu") is None):
            return None
        memory, cpu = runner.get("memory"), runner.get("cpu")
        return ResourceLimits(
            memory=parse_memory(memory) if memory is not None else None,
            cpu=parse_cpu(cpu) if cpu is not None else None,
            memory_text=str(memory) if memory is not None else "",
            cpu_text=str(cpu) if cpu is not None else "",
        )
