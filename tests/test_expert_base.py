"""What every expert inherits from :class:`distilmos.train.expert_base.MOSExpert`: the inference path and
the training batch."""

import torch
import torch.nn as nn

from distilmos.train.expert_base import MOSExpert


class _Mean(nn.Module):
    def forward(self, features, lengths):
        return {"pred": features.sum(dim=(1, 2)) / lengths}


def test_predict_runs_the_inference_model(tmp_path):
    """An expert that keeps its model as ``self.model`` needs no ``predict`` of its own."""
    expert = MOSExpert(4, {"datarc": {}}, str(tmp_path), plugin_runner=True)
    expert.model = _Mean()
    features, lengths = torch.ones(2, 3, 4), torch.tensor([3, 2])
    assert torch.equal(expert.predict(features, lengths)["pred"], torch.tensor([4.0, 6.0]))
