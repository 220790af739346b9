import sys

from keras_kd.cli.main import main

sys.exit(main())
