import sys

from kd_keras.cli import main

sys.exit(main())
