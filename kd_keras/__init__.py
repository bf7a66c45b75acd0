"""kd_keras: knowledge distillation for Keras 3 / TensorFlow.

The package follows the pipeline a user walks through:

    teachers  ->  cache  ->  Distiller  ->  students  ->  export  ->  verify

The Distiller, its losses, feature terms and schedules form the core,
`kd_keras.distillation`. The attributes `kd_keras.features`,
`kd_keras.feature_losses`, `kd_keras.schedules` and
`kd_keras.transformer_terms` give its modules (`kd_keras.schedules.Linear`);
to import one by name, import it from `kd_keras.distillation` (`from
kd_keras.distillation import schedules`). `kd_keras.losses` is also a module
of its own. Everything is imported on
first attribute access (`kd_keras.Distiller`, `kd_keras.losses`,
`kd_keras.teachers`, ...), so `import kd_keras` and `kd-keras --help` do not
start TensorFlow.
"""

from kd_keras._lazy import lazy_exports

__version__ = "0.1.0"

_LAZY_ATTRIBUTES = {
    "Distiller": "kd_keras.distillation.distiller",
    "FeatureDistillation": "kd_keras.distillation.features",
}
# Attribute name -> the module it gives.
_LAZY_SUBMODULES = {
    "cache": "kd_keras.cache",
    "callbacks": "kd_keras.callbacks",
    "config": "kd_keras.config",
    "cli": "kd_keras.cli",
    "data": "kd_keras.data",
    "distillation": "kd_keras.distillation",
    "distribute": "kd_keras.distribute",
    "errors": "kd_keras.errors",
    "export": "kd_keras.export",
    "feature_losses": "kd_keras.distillation.feature_losses",
    "features": "kd_keras.distillation.features",
    "files": "kd_keras.files",
    "losses": "kd_keras.losses",
    "pipeline": "kd_keras.pipeline",
    "schedules": "kd_keras.distillation.schedules",
    "students": "kd_keras.students",
    "teachers": "kd_keras.teachers",
    "transformer_terms": "kd_keras.distillation.transformer_terms",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY_ATTRIBUTES, _LAZY_SUBMODULES)


__all__ = ["__version__", *_LAZY_ATTRIBUTES, *_LAZY_SUBMODULES]
