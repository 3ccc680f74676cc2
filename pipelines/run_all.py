"""``RunAll``: the three domains' evaluations, as one Luigi target."""
import luigi

from .har_tasks import EvaluateHAR
from .medical_tasks import EvaluateMedical
from .params import AbsPathParameter
from .vision_tasks import EvaluateVision

__all__ = ["RunAll"]


class RunAll(luigi.WrapperTask):
    """Prepare, train and evaluate every domain on its default data.

    ``--epochs`` and ``--seed`` apply to the three domains when given;
    anything else is set per domain with Luigi's ``--<Task>-<param>`` form,
    e.g. ``--EvaluateMedical-shape 24 --EvaluateHAR-synthetic-subjects 6``.
    With ``--workers 3`` the three chains run side by side.
    """

    output_dir = AbsPathParameter(default="outputs", description="Folder for every output")
    epochs = luigi.OptionalIntParameter(default=None, description="Epochs for every domain (default: each one's)")
    seed = luigi.OptionalIntParameter(default=None, description="Training seed for every domain")

    def requires(self):
        common = {"output_dir": self.output_dir}
        if self.epochs is not None:
            common["epochs"] = self.epochs
        if self.seed is not None:
            common["seed"] = self.seed
        return [EvaluateHAR(**common), EvaluateVision(**common), EvaluateMedical(**common)]
