"""The end-to-end distill job behind `kd-keras distill CONFIG.yaml`.

`run_distill(cfg)` runs the stages data -> teacher adaptation -> teacher
outputs -> distillation -> baseline -> export -> results, from five modules
(`data_stage`, `teacher_stage`, `training_stage`, `export_stage`,
`results_stage`), in a resumable working folder (`workdir`).
"""

from kd_keras.pipeline.data_stage import PreparedData
from kd_keras.pipeline.data_stage import load_data
from kd_keras.pipeline.data_stage import prepare_data
from kd_keras.pipeline.data_stage import vocabulary_path
from kd_keras.pipeline.run import STAGES
from kd_keras.pipeline.run import run_distill

__all__ = ["PreparedData", "STAGES", "load_data", "prepare_data", "run_distill",
           "vocabulary_path"]
