"""Learnable activation families: subnet, slaf, spline and rational (PAU).

Each is registered by name, keeps its parameters per layer, channel, neuron or
group of channels (``sharing=``, ``groups=``), starts as a fit of any activation (``init=relu``) and
reports the fit error with ``fit_error()``. slaf, spline and rational use
memory-lean custom autograd kernels (``_autograd``).
"""

from actlab.activations.learnable._base import LearnableActivation
from actlab.activations.learnable.bases import BASES
from actlab.activations.learnable.rational import Rational
from actlab.activations.learnable.slaf import SLAF
from actlab.activations.learnable.spline import Spline
from actlab.activations.learnable.subnet import Subnet

__all__ = ["BASES", "LearnableActivation", "Rational", "SLAF", "Spline", "Subnet"]
