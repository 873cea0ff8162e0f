import sys

from model_serving_client.cli import main

sys.exit(main())
