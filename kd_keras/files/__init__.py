"""Files kd_keras writes and reads: atomically, checked, and only its own.

- `atomic`: `atomic_path`, write through a temporary file and a rename, and
  the clean-up of what a killed writer left;
- `json_files`: `write_json` and `read_json` for run records;
- `resume`: `.npz` state and `resumed`, reading back what an interrupted
  run wrote;
- `hashing`: `sha256_path`, the checksum of a file or a folder;
- `ownership`: the marker that lists what kd_keras wrote in a folder, so
  replacing it never loses a user's file;
- `models`: `load_model`, a `.keras` file loaded safely. It imports Keras,
  so it is not imported here: `from kd_keras.files.models import load_model`.

Example:

>>> import kd_keras.files
>>> kd_keras.files.sha256_path.__module__
'kd_keras.files.hashing'
"""

from kd_keras.files.atomic import atomic_path
from kd_keras.files.atomic import remove_leftovers
from kd_keras.files.hashing import sha256_path
from kd_keras.files.json_files import read_json
from kd_keras.files.json_files import write_json
from kd_keras.files.ownership import check_replaceable
from kd_keras.files.ownership import write_marker
from kd_keras.files.resume import load_npz
from kd_keras.files.resume import resumed
from kd_keras.files.resume import save_npz

__all__ = ["atomic_path", "check_replaceable", "load_npz", "read_json", "remove_leftovers",
           "resumed", "save_npz", "sha256_path", "write_json", "write_marker"]
