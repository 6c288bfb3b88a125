"""What a compression asks for: a method and its size, or a tolerance that picks the size.

The one place for the rule that ``poly`` takes a degree and the lookup table
(``pwl``) and ``cubic`` take knots, with their defaults and limits.
"""

from __future__ import annotations

from dataclasses import dataclass

from actlab._registry import unknown_name_message
from actlab.errors import ActlabError

METHODS = ("pwl", "cubic", "poly")
MAX_KNOTS = 4096
MAX_DEGREE = 16  # monomial coefficients in float32 lose accuracy beyond this
# the sizes of ``actlab compress`` and ``compress_run`` when neither a size nor a tolerance is given
DEFAULT_KNOTS = 64
DEFAULT_DEGREE = 6


def check_method(method: str) -> None:
    if method not in METHODS:
        raise ActlabError(unknown_name_message("compression method", method, list(METHODS)))


def size_name(method: str) -> str:
    """What a method's size counts: ``degree`` for poly, ``knots`` for the others."""
    return "degree" if method == "poly" else "knots"


def size_range(method: str) -> tuple[int, int]:
    """The smallest and largest size of ``method``."""
    return (1, MAX_DEGREE) if method == "poly" else (2, MAX_KNOTS)


def check_size(method: str, size: int) -> None:
    smallest, largest = size_range(method)
    if not smallest <= size <= largest:
        raise ActlabError(f"{size_name(method)} must be between {smallest} and {largest}, got {size}")


@dataclass(frozen=True)
class CompressSpec:
    """A method and either its size (knots or degree) or a max error to meet with the smallest size."""

    method: str = "pwl"
    size: int | None = None
    tolerance: float | None = None

    @classmethod
    def of(cls, method: str = "pwl", knots: int | None = None, degree: int | None = None,
           tolerance: float | None = None, default: bool = False) -> CompressSpec:
        """The spec from keyword arguments, as ``compress_model`` and the CLI take them: ``knots`` only
        for pwl/cubic, ``degree`` only for poly. With nothing given, ``default`` picks the default size
        (64 knots, degree 6); otherwise that is an error."""
        check_method(method)
        name = size_name(method)
        size, other = (degree, knots) if name == "degree" else (knots, degree)
        if other is not None:
            raise ActlabError(f"{'knots' if name == 'degree' else 'degree'} does not apply to method "
                              f"{method!r}; give {name} or tolerance")
        if size is not None and tolerance is not None:
            raise ActlabError(f"give either {name} or tolerance, not both")
        if size is None and tolerance is None:
            if not default:
                raise ActlabError(f"give {name} or tolerance for method {method!r}")
            size = DEFAULT_DEGREE if name == "degree" else DEFAULT_KNOTS
        minimum = size_range(method)[0]
        if size is not None and size < minimum:
            raise ActlabError(f"{name} must be at least {minimum}, got {size}")
        return cls(method, size, tolerance)

    def kwargs(self) -> dict:
        """The keyword arguments of ``compress_model`` that ask for this spec."""
        size = {} if self.size is None else {size_name(self.method): self.size}
        return {"method": self.method, "tolerance": self.tolerance} | size

    def label(self) -> str:
        """How the spec reads in a run's activation, e.g. ``pwl(knots=64)``."""
        if self.size is None:
            return f"{self.method}(tolerance={self.tolerance:g})"
        return f"{self.method}({size_name(self.method)}={self.size})"
