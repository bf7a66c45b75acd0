"""Data: labelled text files, the built-in demo dataset and tokenization.

- `read_examples(path, ...)`: TSV / CSV / JSONL -> texts and raw labels.
- `load_text_dataset(train, test=None, ...)`: -> `TextDataset` with seeded
  train/validation/test splits and label names.
- `load_builtin(name)` for a name in `BUILTIN_DATASETS`: the shipped
  movie-review sentences `rt_polarity` (Pang & Lee, ACL 2005) in a seeded
  80/10/10 split, or the AG News subset `ag_news` (Zhang, Zhao & LeCun,
  NeurIPS 2015) with its own test file.
- `WordPieceEncoder(vocab, sequence_length)`: texts -> int32 WordPiece ids.
- `with_augmented_train(dataset, copies, ...)`: unlabeled perturbed copies of
  the training texts as transfer data (`word_neighbors` for replacement).
"""

from kd_keras.data.augment import augment_texts
from kd_keras.data.augment import with_augmented_train
from kd_keras.data.augment import word_neighbors
from kd_keras.data.builtin import BUILTIN_DATASETS
from kd_keras.data.builtin import load_ag_news
from kd_keras.data.builtin import load_builtin
from kd_keras.data.builtin import load_rt_polarity
from kd_keras.data.labels import encode_files
from kd_keras.data.readers import FORMATS
from kd_keras.data.readers import LabelledFile
from kd_keras.data.readers import read_labelled_file
from kd_keras.data.readers import reads_header
from kd_keras.data.readers import DataError
from kd_keras.data.readers import read_examples
from kd_keras.data.text_dataset import SPLITS
from kd_keras.data.text_dataset import TextDataset
from kd_keras.data.text_dataset import encode_labels
from kd_keras.data.text_dataset import load_text_dataset
from kd_keras.data.text_dataset import min_examples_to_split
from kd_keras.data.text_dataset import split_indices
from kd_keras.data.tokenizer import WordPieceEncoder

__all__ = [
    "BUILTIN_DATASETS",
    "DataError",
    "FORMATS",
    "LabelledFile",
    "SPLITS",
    "TextDataset",
    "WordPieceEncoder",
    "augment_texts",
    "encode_files",
    "encode_labels",
    "load_ag_news",
    "load_builtin",
    "load_rt_polarity",
    "load_text_dataset",
    "min_examples_to_split",
    "read_examples",
    "read_labelled_file",
    "reads_header",
    "split_indices",
    "with_augmented_train",
    "word_neighbors",
]
