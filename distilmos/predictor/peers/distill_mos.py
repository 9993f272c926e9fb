"""``peer://distillmos``: Distill-MOS (Stahl & Gamper, ICASSP 2025), the ``distillmos`` package's student.

The package's model, ``distillmos.ConvTransformerSQAModel`` with its shipped weights, scores a 16 kHz
waveform in windows of its own: an input shorter than ``SEQ_LEN`` (7.68 s) is zero-padded to it, a longer one
is cut into the fewest ``SEQ_LEN`` crops whose starts are evenly spread from the first sample to the last with
hops of at most ``MAX_HOP_LEN`` (1 s); every crop is peak-normalised and scored, and the score is
``1 + 4 * mean(crop outputs)``. Here the crops of every input of a batch go through the model together (they
all have the same length, so nothing is padded and no input sees another); each input's score is the mean of
its crops' ``1 + 4 * output``, which is the package's own score to float rounding.
"""

from __future__ import annotations

import contextlib
import sys

import numpy as np
import torch
import torch.nn.functional as F

from .base import PeerPipeline, weights_file

#: crops scored in one forward (bounds memory whatever the batch: a crop is 7.68 s of audio)
MAX_CROPS = 16


class DistillMOSPipeline(PeerPipeline):
    """See the module docstring."""

    def __init__(self, spec):
        super().__init__(spec)
        import distillmos
        from distillmos import sqa

        with contextlib.redirect_stdout(sys.stderr):  # it prints where it loaded its weights from
            # segmenting_in_forward=False: the model takes crops of exactly SEQ_LEN, cut here as its forward cuts
            self.model = distillmos.ConvTransformerSQAModel(segmenting_in_forward=False)
        self.seq_len, self.max_hop = int(sqa.SEQ_LEN), int(sqa.MAX_HOP_LEN)
        self.weights = weights_file(sqa.DEFAULT_WEIGHTS_CHKPT, distillmos.__path__[0])

    def crop_starts(self, n_samples: int) -> list[int]:
        """Where the package's forward starts its ``SEQ_LEN`` crops of an input of ``n_samples``."""
        over = max(0, n_samples - self.seq_len)
        hops = int(np.ceil(over / self.max_hop)) + 1
        return [int(c * over) for c in np.linspace(0, 1, hops)]

    def forward(self, wavs: list[torch.Tensor]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        crops, owners = [], []
        for i, wav in enumerate(wavs):
            wav = wav.to(device=device, dtype=torch.float32)
            if len(wav) < self.seq_len:
                wav = F.pad(wav, (0, self.seq_len - len(wav)))
            for start in self.crop_starts(len(wav)):
                crops.append(wav[start : start + self.seq_len])
                owners.append(i)
        outputs = torch.cat(
            [self.model(torch.stack(crops[k : k + MAX_CROPS])).reshape(-1) for k in range(0, len(crops), MAX_CROPS)]
        )
        owner = torch.tensor(owners, device=outputs.device)
        scores = torch.zeros(len(wavs), dtype=outputs.dtype, device=outputs.device).index_add_(0, owner, outputs)
        return scores / torch.bincount(owner, minlength=len(wavs)).to(outputs.dtype)

    def describe(self) -> dict:
        seconds = self.seq_len / 16000
        return {
            "score": "Distill-MOS: the MOS of speech quality (1-5) predicted by the distilled student of XLS-R-SQA",
            "model": "distillmos.ConvTransformerSQAModel (compressed complex STFT -> 2-D CNN -> transformer -> "
            "attention pooling), the package's shipped weights",
            "weights": self.weights,
            "paper": "Stahl & Gamper, Distillation and Pruning for Scalable Self-Supervised Representation-Based "
            "Speech Quality Assessment, ICASSP 2025",
            "windowing": f"the package's: inputs shorter than {seconds:g} s zero-padded to it; longer ones cut into "
            f"{seconds:g} s crops with hops of at most {self.max_hop / 16000:g} s, each peak-normalised; the "
            "score is the mean over the crops",
            "differences": [
                "multichannel files: the mean of the channels (the package's command line takes the first channel)",
            ],
            "device": "any torch device (--device)",
        }


def build(spec) -> DistillMOSPipeline:
    return DistillMOSPipeline(spec)
