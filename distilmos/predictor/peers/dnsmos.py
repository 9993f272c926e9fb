"""``peer://dnsmos/{p808,ovrl,sig,bak}``: DNSMOS (Reddy et al.), the ONNX models of the ``speechmos`` package.

Each input is scored by the package's own call, ``speechmos.dnsmos.DNSMOS(...)(samples, 16000, False)``, which
windows as DNSMOS does: an input shorter than 9.01 s is repeated until it is not, then 9.01 s windows with a
1 s hop are scored and averaged. One call gives four scores; the reference picks one: ``p808`` (the P.808
MOS, its own model on a log-mel spectrogram), or the P.835 model's ``ovrl`` (overall quality), ``sig``
(speech signal) or ``bak`` (background), each mapped by DNSMOS's polynomial. So the scores are the
package's own on the same 16 kHz samples.

Two things are set here, neither of which changes a score: the ONNX Runtime sessions take torch's thread
count (the package's take every core), and samples beyond [-1, 1] (resampling overshoot, float files) are
clipped, as writing them to 16-bit PCM would, where the package refuses such an array (and reads a file
without checking).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from distilmos.data.audio import SAMPLE_RATE

from .base import PeerPipeline, weights_file

#: the key of the package's result dict, and what the score is
SCORES = {
    "p808": ("p808_mos", "DNSMOS P.808: the overall MOS of ITU-T P.808 (ACR) ratings"),
    "ovrl": ("ovrl_mos", "DNSMOS P.835 OVRL: the overall quality of ITU-T P.835 ratings"),
    "sig": ("sig_mos", "DNSMOS P.835 SIG: the speech signal quality of ITU-T P.835 ratings"),
    "bak": ("bak_mos", "DNSMOS P.835 BAK: the background noise quality of ITU-T P.835 ratings"),
}


class DNSMOSPipeline(PeerPipeline):
    """See the module docstring."""

    def __init__(self, spec):
        super().__init__(spec)
        import onnxruntime as ort
        import speechmos
        from speechmos import dnsmos

        self.score_key, self.what = SCORES[spec.option]
        models = os.path.join(os.path.dirname(speechmos.__file__), "dnsmos_models")
        self.paths = {"p835": os.path.join(models, "sig_bak_ovr.onnx"), "p808": os.path.join(models, "model_v8.onnx")}
        self.model = dnsmos.DNSMOS(self.paths["p835"], self.paths["p808"])
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = torch.get_num_threads(), 1
        providers = ["CPUExecutionProvider"]
        self.model.onnx_sess = ort.InferenceSession(self.paths["p835"], options, providers=providers)
        self.model.p808_onnx_sess = ort.InferenceSession(self.paths["p808"], options, providers=providers)
        self.package_dir = os.path.dirname(speechmos.__file__)
        self.input_seconds = float(dnsmos.INPUT_LENGTH)

    @property
    def scoring_model(self) -> str:
        """The ONNX file behind the score: the P.808 model, or the P.835 one."""
        return self.paths["p808" if self.score_key == "p808_mos" else "p835"]

    def forward(self, wavs: list[torch.Tensor]) -> torch.Tensor:
        scores = []
        for wav in wavs:
            samples = np.clip(wav.detach().cpu().numpy().astype(np.float32), -1.0, 1.0)
            scores.append(float(self.model(samples, SAMPLE_RATE, False)[self.score_key]))
        return torch.tensor(scores, dtype=torch.float64)

    def num_parameters(self) -> int | None:
        """The weights of the ONNX model behind the score (``None`` without the ``onnx`` package to count)."""
        try:
            import onnx
        except ImportError:
            return None
        return int(sum(int(np.prod(t.dims)) for t in onnx.load(self.scoring_model).graph.initializer))

    def describe(self) -> dict:
        return {
            "score": self.what,
            "model": f"speechmos.dnsmos.DNSMOS (ONNX Runtime, CPU); the score comes from {self.score_key}",
            "weights": weights_file(self.scoring_model, self.package_dir),
            "paper": "Reddy, Gopal & Cutler, DNSMOS: A Non-Intrusive Perceptual Objective Speech Quality Metric to "
            "Evaluate Noise Suppressors, ICASSP 2021; DNSMOS P.835, ICASSP 2022",
            "windowing": f"the package's: inputs shorter than {self.input_seconds:g} s repeated until they are not, "
            f"then {self.input_seconds:g} s windows with a 1 s hop, averaged",
            "differences": [
                "samples beyond [-1, 1] are clipped (the package refuses such arrays)",
                "files at other rates than 16 kHz are resampled with torchaudio (the package reads files with "
                "librosa's soxr resampler), which can move a score slightly; at 16 kHz the scores are the package's",
                "every call runs both ONNX models (P.835 and P.808), as the package does",
            ],
            "device": "the CPU (ONNX Runtime) whatever --device says",
        }


def build(spec) -> DNSMOSPipeline:
    return DNSMOSPipeline(spec)
