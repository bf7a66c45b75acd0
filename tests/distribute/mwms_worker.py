"""One worker of the MultiWorkerMirroredStrategy test.

Usage: python mwms_worker.py OUT.npz [features]  (with TF_CONFIG set by the
test; `features` adds the feature terms of `setup_case`)
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import setup_case  # noqa: E402

strategy = tf.distribute.MultiWorkerMirroredStrategy()
weights, history = setup_case.train(strategy,
                                   features=sys.argv[2:] == ["features"])
task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
np.savez(sys.argv[1], *weights, count=len(weights),
         history=json.dumps({k: [float(v) for v in vs]
                             for k, vs in history.items()}),
         replicas=strategy.num_replicas_in_sync, task=task)
