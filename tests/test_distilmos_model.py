import pytest
import torch
from downstream_helpers import import_expert_module

import distilmos.models.distilmos_model as model_mod

targets_mod = import_expert_module("distilmos", "token_targets")


def _batch(lengths, dim=12, pad_to=None, garbage=0.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    frames = [torch.randn(n, dim, generator=gen) for n in lengths]
    total = pad_to or max(lengths)
    x = torch.full((len(lengths), total, dim), garbage)
    for i, f in enumerate(frames):
        x[i, : len(f)] = f
    return x, torch.tensor(lengths)


@pytest.mark.parametrize("training", [True, False])
def test_padding_changes_nothing(training):
    torch.manual_seed(0)
    model = model_mod.DistilMOSModel(12, hidden_dim=16).train(training)
    heads = model_mod.LayerHeads(2, 16, 16, 5)
    lengths = [9, 4, 1]  # a one-frame utterance included
    tight, lens = _batch(lengths)
    loose, _ = _batch(lengths, pad_to=17, garbage=7.5)  # more padding, filled with garbage
    a, b = model(tight, lens), model(loose, lens)
    assert torch.allclose(a["pred"], b["pred"], atol=1e-5)
    assert torch.isfinite(a["pred"]).all()
    tokens = [torch.randint(0, 5, (n, 2)) for n in lengths]

    def ce(out):
        aligned = targets_mod.align_tokens(tokens, lens, out["processed"].size(1), ["a", "b", "c"])
        return torch.stack(
            [
                torch.nn.functional.cross_entropy(logits.transpose(1, 2), aligned[..., n], ignore_index=-100)
                for n, logits in enumerate(heads(out["processed"]))
            ]
        )

    assert torch.allclose(ce(a), ce(b), atol=1e-5)


def test_batch_composition_does_not_change_eval_predictions():
    torch.manual_seed(0)
    model = model_mod.DistilMOSModel(12, hidden_dim=16)
    model.train()(*_batch([8, 8, 8], seed=5))  # move BatchNorm running stats off their init
    model.eval()
    x, lens = _batch([9, 4, 1])
    together = model(x, lens)["pred"]
    alone = torch.stack([model(x[i : i + 1, : lens[i]], lens[i : i + 1])["pred"][0] for i in range(3)])
    assert torch.allclose(together, alone, atol=1e-5)


def test_silence_gives_finite_output():
    model = model_mod.DistilMOSModel(12, hidden_dim=16)
    for training in (True, False):
        out = model.train(training)(torch.zeros(2, 5, 12), torch.tensor([5, 1]))
        assert torch.isfinite(out["pred"]).all() and torch.isfinite(out["processed"]).all()


def test_architecture_as_in_the_paper():
    model = model_mod.DistilMOSModel(768)
    assert model.projector.out_features == 256
    assert [b.conv.kernel_size[0] for b in model.feature_processor.blocks] == [5, 3, 3]
    assert all(b.conv.stride == (1,) for b in model.feature_processor.blocks)
    assert model.cnn_blstm.blstm.hidden_size == 256 and model.cnn_blstm.blstm.bidirectional
    assert model.cnn_blstm.linear.in_features == 512
    # no bias before a BatchNorm (it would be cancelled); older checkpoints with one still rebuild
    assert all(b.conv.bias is None for b in model.feature_processor.blocks)
    old = model_mod.DistilMOSModel(768, conv_bias=True).state_dict()
    assert model_mod.DistilMOSModel.kwargs_from_state(old)["conv_bias"] is True
    assert model_mod.DistilMOSModel.kwargs_from_state(model.state_dict())["conv_bias"] is False
    heads = model_mod.LayerHeads(12, 256, 256, 200)
    assert [m.out_features for m in heads.heads[0] if isinstance(m, torch.nn.Linear)] == [256, 256, 200]


def test_tokens_line_up_with_frames():
    tokens = [torch.arange(10).view(5, 2), torch.arange(6).view(3, 2), torch.arange(2).view(1, 2)]
    lengths = torch.tensor([6, 3, 1])  # featurizer one frame longer for the first: trimmed to 5
    targets = targets_mod.align_tokens(tokens, lengths, 6, ["a", "b", "c"])
    assert targets.shape == (3, 6, 2)
    assert torch.equal(targets[0, :5], tokens[0]) and (targets[0, 5] == -100).all()
    assert torch.equal(targets[1, :3], tokens[1]) and (targets[1, 3:] == -100).all()
    assert torch.equal(targets[2, :1], tokens[2]) and (targets[2, 1:] == -100).all()
    with pytest.raises(targets_mod.TokenAlignmentError, match="'?b'?.*6 token frames but 3"):
        targets_mod.align_tokens([tokens[0], torch.zeros(6, 2, dtype=torch.long)], torch.tensor([5, 3]), 5, ["a", "b"])
