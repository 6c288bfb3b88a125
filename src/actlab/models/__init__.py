"""Models by name: ``mlp``, ``cnn``, ``resnet``, ``vit``.

Every model takes an activation spec or factory and creates one activation
module per activation site, so learnable activations get their own
parameters per layer, channel, neuron or group of channels.
"""

from actlab.models import cnn as _cnn  # noqa: F401  (each model file registers its model)
from actlab.models import mlp as _mlp  # noqa: F401
from actlab.models import resnet as _resnet  # noqa: F401
from actlab.models import vit as _vit  # noqa: F401
from actlab.models.factory import MODELS, count_parameters, make_model

__all__ = ["MODELS", "count_parameters", "make_model"]
