"""How a `Distiller` is saved and loaded: its config and compile config.

`DistillerSaving` is mixed into `kd_keras.Distiller`. A saved Distiller
keeps its teacher and student, its feature terms, the shapes of projections
that a batch sized (built again before the weights load), where its
schedules stood, and the arguments of `compile` as given, so a loaded one
evaluates and resumes as it would have.
"""

import keras

from kd_keras.distillation.features import FeatureDistillation
from kd_keras.errors import UsageError


class DistillerSaving:
    """`get_config`, `from_config`, `get_compile_config`,
    `compile_from_config` and `save` of the Distiller (see the module doc).

    Example:

    >>> import os, tempfile, keras, kd_keras
    >>> teacher = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> student = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> distiller = kd_keras.Distiller(teacher=teacher, student=student)
    >>> distiller.compile(optimizer="sgd", alpha=0.2)
    >>> path = os.path.join(tempfile.mkdtemp(), "d.keras")
    >>> distiller.save(path)
    >>> float(keras.saving.load_model(path).alpha)
    0.2
    """

    def get_compile_config(self):
        """Keras's compile config, with the arguments of `compile` as given
        (the metrics went to Keras as weighted metrics)."""
        config = super().get_compile_config()
        if not config:  # Not compiled.
            return config
        config.update(metrics=config["weighted_metrics"], weighted_metrics=None)
        config.update(keras.saving.serialize_keras_object(dict(
            alpha=self.alpha,
            temperature=self.temperature,
            student_loss_fn=self.student_loss_fn,
            distillation_loss_fn=self._distillation_loss_arg,
        )))
        return config

    def _check_savable(self):
        if self._outside_graph:
            raise UsageError(
                f"teacher: a {self.teacher.source_name} cannot be saved with "
                "the Distiller; save distiller.student, or distill with "
                "teacher=None from a cache")

    def save(self, filepath, *args, **kwargs):
        """`keras.Model.save`, refused before Keras opens `filepath` when
        the teacher cannot be saved, so an existing file stays whole."""
        self._check_savable()
        return super().save(filepath, *args, **kwargs)

    def get_config(self):
        self._check_savable()
        config = super().get_config()
        config.update(
            teacher=(None if self.teacher is None else
                     keras.saving.serialize_keras_object(self.teacher)),
            student=keras.saving.serialize_keras_object(self.student),
            features=[term.get_config() for term in self.features],
        )
        if self._features is not None and self._features.shapes is not None:
            # Projections sized by a batch: built again before the weights load.
            config["feature_shapes"] = self._features.shapes
        # Where the schedules stood: a loaded Distiller evaluates as it would have.
        config["progress"] = [int(self._progress.start.numpy()),
                              int(self._progress.total.numpy())]
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        teacher = config.pop("teacher")
        student = config.pop("student")
        if teacher is not None:
            teacher = keras.saving.deserialize_keras_object(
                teacher, custom_objects=custom_objects)
        student = keras.saving.deserialize_keras_object(
            student, custom_objects=custom_objects)
        features = [FeatureDistillation.from_config(term)
                    for term in config.pop("features", [])]
        shapes = config.pop("feature_shapes", None)
        progress = config.pop("progress", None)
        distiller = cls(teacher=teacher, student=student, features=features, **config)
        if progress is not None:
            distiller._progress.start.assign(progress[0])
            distiller._progress.total.assign(progress[1])
        if shapes is not None and not distiller._features.built:
            distiller._features.build(*shapes)
        return distiller

    def compile_from_config(self, config):
        """Compiles again from a saved config, so that a loaded Distiller
        resumes with its `alpha`, `temperature`, losses and optimizer state."""
        config = keras.saving.deserialize_keras_object(config)
        for key in ("loss", "loss_weights"):
            if config.get(key) is None:
                config.pop(key, None)
        self.compile(**config)
        if self.built and hasattr(self, "optimizer"):
            self.optimizer.build(self.trainable_variables)
