"""What a peer predictor is to the scoring engine: :class:`PeerPipeline`."""

from __future__ import annotations

import datetime
import os
import platform

import torch
import torch.nn as nn

from distilmos.data.audio import SAMPLE_RATE
from distilmos.fileio import sha256_file


class PeerPipeline(nn.Module):
    """A released predictor of another package behind the interface :class:`~distilmos.predictor.Predictor`
    drives (the one :class:`~distilmos.predictor.pipeline.PredictorPipeline` has):

    - ``forward(wavs)``: a list of 16 kHz mono 1-D waveforms -> their scores ``[batch]``, each input scored
      as the package scores it alone (so batches may mix lengths: :attr:`batch_independent`);
    - ``analyze(wavs)``: ``{"pred": ...}``;
    - :attr:`min_samples`: the shortest input it scores; :attr:`settings`: the engine settings the package
      fixes (its own windowing replaces the engine's: ``max_seconds`` 0);
    - :meth:`card`: what :command:`distilmos-predict info` prints.

    ``upstream`` and ``downstream`` are ``None``: there is no SSL upstream or expert head to speak of.
    """

    upstream = None
    downstream = None
    batch_independent = True
    min_samples = 1
    settings = {"max_seconds": 0.0}

    def __init__(self, spec):
        super().__init__()
        self.spec = spec

    def forward(self, wavs: list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def analyze(self, wavs: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"pred": [batch]}``: a peer exposes no intermediate tensors."""
        return {"pred": self(wavs)}

    def num_parameters(self) -> int:
        """The weights behind the score (torch parameters unless a subclass counts otherwise)."""
        return int(sum(p.numel() for p in self.parameters()))

    def describe(self) -> dict:
        """The card's peer-specific part (a subclass fills it)."""
        return {}

    def card(self) -> dict:
        """The model card: the package, what the score is, parameters, windowing, how it meets the engine."""
        from . import SCHEME, package_version

        return {
            "peer": SCHEME + self.spec.name,
            "title": self.spec.title,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "sample_rate": SAMPLE_RATE,
            "source": {"package": self.spec.package, "version": package_version(self.spec)},
            **self.describe(),
            "parameters": self.num_parameters(),
            "engine": (
                "scored by distilmos' engine: files read with soundfile, downmixed to mono by the mean of the "
                "channels and resampled to 16 kHz with torchaudio, length-sorted batches, bad files reported "
                "and skipped; every input is scored as the package scores it alone, so batches mix lengths "
                "freely; the package's own windowing replaces --max_seconds"
            ),
            "toolkit": {"torch": str(torch.__version__), "python": platform.python_version()},
        }


def weights_file(path: str, package_dir: str) -> dict:
    """``{"file", "sha256"}`` of a weights file shipped inside a package (``file`` relative to the package)."""
    return {"file": os.path.relpath(path, os.path.dirname(package_dir)), "sha256": sha256_file(path)}
