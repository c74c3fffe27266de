"""Builds the model of every config in a JSON file and says, one JSON line each, how it went.

    python tests/config_fuzz_worker.py CONFIGS.json

A line {"index": i, "started": true} is written before config i is tried and
{"index": i, "outcome": "built" | "refused" | "error", "detail": ...} after, so that a
process killed by TensorFlow (an abort, a check failure) shows which config did it: the
one started and never finished. Used by tests/test_config_fuzz.py.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from experiment.console import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()

import keras  # noqa: E402

from model import build_model  # noqa: E402
from model_utils.config import ConfigError, parse_config  # noqa: E402


def _say(**fields) -> None:
    print(json.dumps(fields), flush=True)


def main(path: str) -> None:
    for index, raw in enumerate(json.loads(Path(path).read_text())):
        _say(index=index, started=True)
        try:
            build_model(parse_config(raw, f"mutated config {index}"))
            outcome, detail = "built", ""
        except ConfigError as error:
            outcome, detail = "refused", str(error)
        except Exception as error:  # the point of the fuzz test: name anything else
            outcome, detail = "error", f"{type(error).__name__}: {error}"
        keras.backend.clear_session()
        _say(index=index, outcome=outcome, detail=detail[:500])


if __name__ == "__main__":
    main(sys.argv[1])
