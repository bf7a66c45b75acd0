"""kd_keras: knowledge distillation for Keras 3 / TensorFlow.

The package follows the pipeline a user walks through:

    teachers  ->  cache  ->  Distiller  ->  students  ->  export  ->  verify

Everything is imported on first attribute access (`kd_keras.Distiller`,
`kd_keras.losses`, `kd_keras.teachers`, ...), so `import kd_keras` and
`kd-keras --help` do not start TensorFlow.
"""

import importlib

__version__ = "0.1.0"

_LAZY_ATTRIBUTES = {
    "Distiller": "kd_keras.distiller",
    "FeatureDistillation": "kd_keras.features",
}
_LAZY_SUBMODULES = (
    "cache",
    "config",
    "cli",
    "data",
    "distribute",
    "errors",
    "export",
    "feature_losses",
    "features",
    "losses",
    "pipeline",
    "schedules",
    "students",
    "teachers",
    "transformer_terms",
)


def __getattr__(name):
    if name in _LAZY_ATTRIBUTES:
        value = getattr(importlib.import_module(_LAZY_ATTRIBUTES[name]), name)
        globals()[name] = value
        return value
    if name in _LAZY_SUBMODULES:
        module = importlib.import_module(f"kd_keras.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'kd_keras' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY_ATTRIBUTES) + list(_LAZY_SUBMODULES))


__all__ = ["__version__", *_LAZY_ATTRIBUTES, *_LAZY_SUBMODULES]
