"""The `kd-keras distill` configuration: typed, frozen, validated once.

`load_config(path)` reads a YAML file (with `yaml.safe_load` semantics) into a
`RunConfig` whose sections are frozen dataclasses (`schema`); `loading` reads
the file and every key and value is checked before any work starts
(`parsing`), and a bad one raises `ConfigError` with a one-line message
naming the key.
"""

from kd_keras.config.loading import apply_overrides
from kd_keras.config.loading import changed_keys
from kd_keras.config.loading import check_files
from kd_keras.config.loading import load_config
from kd_keras.config.loading import read_yaml
from kd_keras.config.parsing import header_resolved
from kd_keras.config.parsing import parse_config
from kd_keras.config.schema import AugmentConfig
from kd_keras.config.schema import DataConfig
from kd_keras.config.schema import DistillConfig
from kd_keras.config.schema import DistributeConfig
from kd_keras.config.schema import EarlyStoppingConfig
from kd_keras.config.schema import ExportConfig
from kd_keras.config.schema import FineTuneConfig
from kd_keras.config.schema import RunConfig
from kd_keras.config.schema import StudentConfig
from kd_keras.config.schema import TeacherConfig
from kd_keras.config.schema import to_dict
from kd_keras.errors import ConfigError

__all__ = [
    "AugmentConfig",
    "ConfigError",
    "DataConfig",
    "DistillConfig",
    "DistributeConfig",
    "EarlyStoppingConfig",
    "ExportConfig",
    "FineTuneConfig",
    "RunConfig",
    "StudentConfig",
    "TeacherConfig",
    "apply_overrides",
    "changed_keys",
    "check_files",
    "header_resolved",
    "load_config",
    "parse_config",
    "read_yaml",
    "to_dict",
]
