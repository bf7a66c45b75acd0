"""The end-to-end distill job behind `kd-keras distill CONFIG.yaml`.

`run_distill(cfg)` runs data -> teacher (transfer learning, cached logits)
-> `kd_keras.Distiller` -> baseline -> export -> `OUTPUT/results.json`.
Modules: `teacher_stage` (teacher logits), `training` (distillation and
baseline fits, resumable), `report` (curves and tables), `run` (the job).
"""

from kd_keras.pipeline.run import load_data
from kd_keras.pipeline.run import run_distill
from kd_keras.pipeline.run import vocabulary_path
