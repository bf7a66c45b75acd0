"""kd_keras: knowledge distillation for Keras 3 / TensorFlow.

The package follows the pipeline a user walks through:

    teachers  ->  cache  ->  Distiller  ->  students  ->  export  ->  verify

`kd_keras.Distiller` and `kd_keras.losses` are imported eagerly; the heavier
sub-packages (`teachers`, `cache`, `export`, `data`, `students`,
`distribute`) are imported on first attribute access.
"""

import importlib

from kd_keras import losses
from kd_keras.distiller import Distiller

__version__ = "0.1.0"

_LAZY_SUBMODULES = (
    "cache",
    "cli",
    "data",
    "distribute",
    "export",
    "students",
    "teachers",
)


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        module = importlib.import_module(f"kd_keras.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'kd_keras' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY_SUBMODULES))


__all__ = ["Distiller", "losses", "__version__", *_LAZY_SUBMODULES]
