"""Teacher-output cache: run a teacher once, distill from its stored logits.

Example:

```python
cache = kd_keras.cache.cache_teacher_outputs(teacher, x, "cache_dir/", batch_size=256)
ds = cache.as_dataset(x, y, batch_size=64, shuffle=True, seed=0)
distiller = kd_keras.Distiller(teacher=None, student=student)
distiller.compile(optimizer="adam", alpha=0.1, temperature=3.0)
distiller.fit(ds, epochs=5)
cache = kd_keras.cache.load("cache_dir/")
```

With feature terms, the cache also stores the teacher outputs they name
(per token or pooled, float32 or float16) and the batches carry them:

```python
terms = [kd_keras.FeatureDistillation("t_hidden", "s_hidden")]
cache = kd_keras.cache.cache_teacher_outputs(teacher, x, "cache_dir/",
                                             features=terms, feature_dtype="float16")
distiller = kd_keras.Distiller(teacher=None, student=student, features=terms)
distiller.compile(optimizer="adam")
distiller.fit(cache.as_dataset(x, y, batch_size=64), epochs=5)
```

Modules: `builder` (the streaming, resumable build), `shards` (its public
steps, for builders that compute shards elsewhere), `metadata` (the typed
`metadata.json`), `metadata_reader` (reading it, every field checked),
`store` (shard files, checksums, clean-up), `fingerprint` (streamed inputs
fingerprint), `inputs` (arrays, dicts and datasets as chunks),
`teacher_cache` (`TeacherCache`, `load`) and `dataset` (`as_dataset`).

Nothing on disk is trusted: a damaged `metadata.json` is a one-line
`kd_keras.errors.DataError` ("damaged cache: DIR/metadata.json: ..."), and
the cache only ever deletes files whose names it writes itself.
"""

from kd_keras.cache.builder import cache_teacher_outputs
from kd_keras.cache.builder import save_teacher_outputs
from kd_keras.cache.teacher_cache import TeacherCache
from kd_keras.cache.teacher_cache import load

__all__ = ["TeacherCache", "cache_teacher_outputs", "load", "save_teacher_outputs"]
