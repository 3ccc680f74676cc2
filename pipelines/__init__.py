"""Luigi pipelines: prepare, train and evaluate each domain's classifier.

```
luigi --module pipelines TrainHAR --local-scheduler
luigi --module pipelines EvaluateVision --source data/train-images-idx3-ubyte.gz --local-scheduler
luigi --module pipelines EvaluateMedical --source data/manifest.csv --shape 32 --local-scheduler
luigi --module pipelines SweepHAR --learning-rates '[0.001, 0.003]' --seeds '[0, 1]' --workers 4 --local-scheduler
luigi --module pipelines RunAll --workers 3 --scheduler-host 127.0.0.1
```

Tasks per domain: ``Prepare* -> Train* -> Evaluate*`` and ``Sweep*``; ``RunAll``
requires the three evaluations. See :mod:`pipelines.base` for the outputs
layout. Run by Luigi's command line, the package applies the repository's
``luigi.cfg`` (exit codes on failure) wherever ``luigi`` is run from; imported
from Python code it changes nothing (see ``pipelines/_config.py``).
"""
from ._config import imported_by_luigi_command_line, plain_parameter_errors, register_config

if imported_by_luigi_command_line():
    register_config()
    plain_parameter_errors()

from .base import PIPELINE_VERSION  # noqa: E402
from .har_tasks import CrossValidateHAR, EvaluateHAR, PrepareHAR, SweepHAR, TrainHAR  # noqa: E402
from .medical_tasks import EvaluateMedical, PrepareMedical, SweepMedical, SyntheticScans, TrainMedical  # noqa: E402
from .run_all import RunAll  # noqa: E402
from .vision_tasks import EvaluateVision, PrepareVision, SweepVision, TrainVision  # noqa: E402

__all__ = ["PrepareHAR", "TrainHAR", "EvaluateHAR", "SweepHAR", "CrossValidateHAR",
           "PrepareVision", "TrainVision", "EvaluateVision", "SweepVision",
           "SyntheticScans", "PrepareMedical", "TrainMedical", "EvaluateMedical", "SweepMedical",
           "RunAll", "PIPELINE_VERSION"]
