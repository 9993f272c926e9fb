"""``distilmos-predict import``: the DistilMOS authors' released checkpoints (github / Hugging Face
BaleYang/DistilMOS) as predictor files.

The checkpoints here are built in the authors' exact layout (key names and shapes of their ``DistilMOS``
module: ``ssl.*``, ``weighted_sum.*``, ``feature_processor.*``, ``predictors.*``, ``decoder.*``, ``linear.*``)
with tiny seeded random weights, each backbone in the Base layout and in the Large (pre-LN) one.
:class:`AuthorsReference` re-implements their forward from reading their ``model/predictor.py`` and
``model/modules.py`` (attribute names as theirs, so its ``state_dict`` is their layout; entmax by bisection as
their ``entmax_bisect``; their padding rules; WavLM's layer N before the encoder's final LayerNorm): the
imported file must give its scores for every input alone.
"""

import csv
import fractions
import os

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn as nn
import torchaudio.functional as AF
import yaml

from distilmos.models.entmax import entmax15
from distilmos.predictor import hf_wav2vec2, load
from distilmos.predictor.cli import main as cli_main
from distilmos.predictor.fileformat import read_predictor
from distilmos.predictor.import_authors import AuthorsImportError, import_authors
from distilmos.upstream.tiny import model_config

HIDDEN = 16
TOL = 1e-5


# ---- the authors' forward, re-implemented for checking (test only) -------------------------------------------
def bisect_entmax(z: torch.Tensor, alpha: float = 1.5, n_iter: int = 50) -> torch.Tensor:
    """alpha-entmax of a vector by bisection on the threshold, normalised at the end (as ``entmax_bisect``)."""
    x = z * (alpha - 1)
    top = x.max()
    lo, width = top - 1.0, 1.0 - (1.0 / len(z)) ** (alpha - 1)
    f_lo = (x - lo).clamp_min(0).pow(1 / (alpha - 1)).sum() - 1
    for _ in range(n_iter):
        width = width / 2
        mid = lo + width
        p = (x - mid).clamp_min(0).pow(1 / (alpha - 1))
        if (p.sum() - 1) * f_lo >= 0:
            lo = mid
    return p / p.sum()


class WeightedSum(nn.Module):
    def __init__(self, n_layers, dim):
        super().__init__()
        self.layer_weights = nn.Parameter(torch.ones(n_layers))  # their softmax path, off by default
        self.layer_logits = nn.Parameter(torch.zeros(n_layers))
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, layers):
        z = self.layer_logits - self.layer_logits.mean()
        weights = bisect_entmax(z)
        return self.out_proj((torch.stack(layers) * weights.view(-1, 1, 1, 1)).sum(0))


class DSBlock(nn.Module):
    def __init__(self, in_ch, out_ch, kernel, stride):
        super().__init__()
        self.dw = nn.Conv1d(in_ch, in_ch, kernel, stride=stride, padding=(kernel - 1) // 2, groups=in_ch, bias=False)
        self.pw = nn.Conv1d(in_ch, out_ch, 1, bias=False)
        self.bn = nn.BatchNorm1d(out_ch)
        self.act = nn.GELU()

    def forward(self, x):
        return self.act(self.bn(self.pw(self.dw(x))))


class FeatureProcessor(nn.Module):
    def __init__(self, d_in, hidden, strides, kernels):
        super().__init__()
        self.proj_in = nn.Conv1d(d_in, hidden, 1)
        self.blocks = nn.Sequential(*[DSBlock(hidden, hidden, k, s) for s, k in zip(strides, kernels)])
        self.ln = nn.LayerNorm(hidden)

    def forward(self, x):
        return self.ln(self.blocks(self.proj_in(x.transpose(1, 2))).transpose(1, 2))


class MLP(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 200)
        )


class BiLSTMCNNBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.cnn = nn.Conv1d(dim, dim, 3, padding=1)
        self.bilstm = nn.LSTM(dim, dim, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(0.1)
        self.linear = nn.Linear(2 * dim, dim)
        self.batch_norm = nn.BatchNorm1d(dim)  # built, never used
        self.gelu = nn.GELU()
        self.layer_norm = nn.LayerNorm(dim)

    def forward(self, x, padding_mask):
        x = self.cnn(x.transpose(1, 2)).transpose(1, 2)
        lengths = (~padding_mask).long().sum(1).clamp(min=1)
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = nn.utils.rnn.pad_packed_sequence(self.bilstm(packed)[0], batch_first=True, total_length=x.size(1))
        out = self.gelu(self.linear(self.dropout(out))).masked_fill(padding_mask.unsqueeze(-1), 0.0)
        return self.layer_norm(out + x)


class AuthorsReference(nn.Module):
    """Their ``DistilMOS`` module: ``forward(wav [B, T], padding_mask [B, T]) -> mos [B]`` by their rules."""

    def __init__(self, backbone, ssl, n_layers, dim, cfg):
        super().__init__()
        self.backbone = backbone
        self.ssl = ssl
        self.weighted_sum = WeightedSum(n_layers, dim)
        self.strides = cfg.get("downsample_strides", [1, 1, 1])
        self.feature_processor = FeatureProcessor(dim, HIDDEN, self.strides, cfg.get("downsample_kernels", [5, 3, 3]))
        self.predictors = nn.ModuleList(MLP(HIDDEN) for _ in range(n_layers))
        self.decoder = BiLSTMCNNBlock(HIDDEN)
        self.linear = nn.Linear(HIDDEN, 1)

    def layers(self, wav, padding_mask):
        """Transformer layers 1..N and the frame padding mask, as their ``_extract_wavlm`` / ``_extract_w2v2``."""
        if self.backbone == "w2v2":
            out = self.ssl(input_values=wav, attention_mask=(~padding_mask).long(), output_hidden_states=True)
            layers = list(out.hidden_states[1:])
            counts = self.ssl._get_feat_extract_output_lengths((~padding_mask).long().sum(1))
            return layers, torch.arange(layers[-1].size(1))[None, :] >= counts[:, None]
        ssl = self.ssl
        features = ssl.layer_norm(ssl.feature_extractor(wav).transpose(1, 2))
        frame_mask = ssl.forward_padding_mask(features, padding_mask)
        x = features if ssl.post_extract_proj is None else ssl.post_extract_proj(features)
        x[frame_mask] = 0
        x = x + ssl.encoder.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        if not ssl.encoder.layer_norm_first:
            x = ssl.encoder.layer_norm(x)
        x, layers, pos_bias = x.transpose(0, 1), [], None
        for layer in ssl.encoder.layers:
            x, _, pos_bias = layer(x, self_attn_padding_mask=frame_mask, need_weights=False, pos_bias=pos_bias)
            layers.append(x.transpose(0, 1))
        return layers, frame_mask

    def forward(self, wav, padding_mask):
        layers, frame_mask = self.layers(wav, padding_mask)
        x = self.weighted_sum(layers) * (~frame_mask).float().unsqueeze(-1)
        x = self.feature_processor(x)
        token_mask = frame_mask
        for s in self.strides:  # their get_padding_mask: a frame is padding when all its inputs are
            if s > 1:
                pad = -token_mask.size(1) % s
                token_mask = torch.cat([token_mask, token_mask.new_ones(len(token_mask), pad)], 1)
                token_mask = token_mask.view(len(token_mask), -1, s).all(-1)
        frames = self.linear(self.decoder(x, token_mask))
        mask = (~token_mask).float()
        return ((frames * mask.unsqueeze(-1)).sum(1) / mask.sum(1).unsqueeze(-1)).squeeze(-1)

    def score(self, wavs):
        """Their ``_collate_waveforms`` + forward: one padded batch."""
        lengths = [len(w) for w in wavs]
        batch = torch.zeros(len(wavs), max(lengths))
        padding = torch.ones(len(wavs), max(lengths), dtype=torch.bool)
        for i, w in enumerate(wavs):
            batch[i, : len(w)], padding[i, : len(w)] = w, False
        with torch.no_grad():
            return self(batch, padding)


# ---- the checkpoints ---------------------------------------------------------------------------------------
W2V2_CFG = dict(
    hidden_size=48,
    num_hidden_layers=3,
    num_attention_heads=4,
    intermediate_size=96,
    conv_dim=[32] * 7,
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=4,
)
#: wav2vec 2.0 Large's layout: LayerNorm front end with conv bias, pre-LN ("stable layer norm") transformer
W2V2_LARGE = dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True)
#: the releases built here: both backbones in the Base layout and in the Large (pre-LN) one
VARIANTS = ["wavlm", "w2v2", "wavlm_large", "w2v2_large"]


def _randomise(module, seed):
    """Seeded values of a plausible scale in every parameter and buffer (running variances positive)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not tensor.is_floating_point():
                tensor.fill_(7)
            elif name.endswith("running_var"):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=generator))
            elif name.endswith(("layer_norm.weight", "ln.weight", "bn.weight")):
                tensor.copy_(1 + 0.2 * torch.randn(tensor.shape, generator=generator))
            elif name.endswith("layer_logits"):
                tensor.copy_(0.5 * torch.randn(tensor.shape, generator=generator))  # entmax keeps 2+ layers
            elif not name.startswith("ssl."):
                tensor.copy_(0.3 * torch.randn(tensor.shape, generator=generator))


def build_reference(backbone, cfg, seed=0):
    torch.manual_seed(seed)
    if backbone == "wavlm":
        from s3prl.upstream.wavlm.WavLM import WavLM, WavLMConfig

        wavlm_cfg = cfg["wavlm_cfg"]
        ssl, n_layers, dim = WavLM(WavLMConfig(wavlm_cfg)), wavlm_cfg["encoder_layers"], wavlm_cfg["encoder_embed_dim"]
    else:
        from transformers import Wav2Vec2Config, Wav2Vec2Model

        ssl, n_layers, dim = Wav2Vec2Model(Wav2Vec2Config(**cfg["w2v2_cfg"])), W2V2_CFG["num_hidden_layers"], 48
    model = AuthorsReference(backbone, ssl, n_layers, dim, cfg)
    _randomise(model, seed)
    return model.eval()


def model_cfg(backbone, large=False, **extra):
    """A ``model_cfg.yaml`` as the authors' code reads it: the Base layout, or the Large one (pre-LN), tiny."""
    cfg = {"hidden_dim": HIDDEN, "downsample_kernels": [5, 3, 3], "downsample_strides": [1, 1, 1], **extra}
    if backbone == "wavlm":  # layer_norm: extractor_mode layer_norm and layer_norm_first, as WavLM Large
        cfg["wavlm_cfg"] = model_config("wavlm", "tiny", frontend="layer_norm" if large else "group_norm")
    else:
        cfg["w2v2_cfg"] = dict(W2V2_CFG, **(W2V2_LARGE if large else {}))
    return cfg


def write_release(root, backbone, reference, cfg, wrapper="model"):
    """``<root>/<backbone>/model.pth.tar`` and ``model_cfg.yaml`` as on Hugging Face; returns the folder."""
    folder = os.path.join(root, backbone)
    os.makedirs(folder, exist_ok=True)
    state = reference.state_dict()
    torch.save({wrapper: state} if wrapper else state, os.path.join(folder, "model.pth.tar"))
    with open(os.path.join(folder, "model_cfg.yaml"), "w") as handle:
        yaml.safe_dump(cfg, handle)
    return folder


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    """``{variant: (reference, folder, predictor file)}`` (:data:`VARIANTS`), the w2v2 ones stored flat (no
    ``model`` key)."""
    out = {}
    for seed, variant in enumerate(VARIANTS):
        backbone, large = variant.split("_")[0], variant.endswith("_large")
        root = tmp_path_factory.mktemp(f"BaleYang-DistilMOS-{variant}")
        cfg = model_cfg(backbone, large)
        reference = build_reference(backbone, cfg, seed)
        folder = write_release(str(root), backbone, reference, cfg, wrapper="model" if backbone == "wavlm" else None)
        path = str(root / f"{variant}.pt")
        import_authors(str(root), backbone, path)
        out[variant] = (reference, folder, path)
    return out


def _waves(seed=0, lengths=(16000, 9137, 21011)):
    generator = torch.Generator().manual_seed(seed)
    return [0.1 * torch.randn(n, generator=generator) for n in lengths]


# ---- (a) every tensor where the authors' forward uses it ---------------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_tensor_lands_where_the_authors_forward_uses_it(releases, variant):
    reference, _, path = releases[variant]
    backbone, conv_norm = variant.split("_")[0], "layer" if variant.endswith("_large") else "group"
    blob = read_predictor(path)
    authors = reference.state_dict()
    up = blob["upstream"]["checkpoint"]
    down = blob["downstream"]["state_dict"]
    placed = {}
    for key in authors:
        if key.startswith("ssl."):
            weights = up["model"] if backbone == "wavlm" else up["model_weight"]
            placed[key] = weights[key[4:] if backbone == "wavlm" else hf_wav2vec2.rename(key[4:], conv_norm)]
        elif key == "weighted_sum.layer_logits":
            placed[key] = blob["featurizer"]["state_dict"]["weights"]
        elif key.startswith("weighted_sum.out_proj."):
            placed[key] = down[key[len("weighted_sum.") :]]
        elif key.startswith(
            (
                "feature_processor.",
                "decoder.cnn.",
                "decoder.bilstm.",
                "decoder.linear.",
                "decoder.layer_norm.",
                "linear.",
            )
        ):
            placed[key] = down[key]
    for key, value in placed.items():
        assert torch.equal(value, authors[key]), key
    unused = {k for k in authors if k.startswith(("predictors.", "decoder.batch_norm.")) or k.endswith("layer_weights")}
    assert set(authors) - set(placed) == unused
    # and nothing else in the file, but the head's strides and the pretraining heads s3prl's wav2vec 2.0 always has
    head = {k.removeprefix("weighted_sum.") for k in placed if not k.startswith(("ssl.", "weighted_sum.layer_"))}
    assert set(down) == head | {"feature_processor.strides"}
    pretraining = {"project_q.weight", "project_q.bias", "final_proj.weight", "final_proj.bias"}
    backbone_weights = up["model"] if backbone == "wavlm" else up["model_weight"]
    assert len(backbone_weights) == sum(k.startswith("ssl.") for k in placed) + len(pretraining) * (backbone == "w2v2")
    assert blob["featurizer"]["config"]["weighting"] == "entmax15"
    assert blob["featurizer"]["config"]["first_layer"] == 1
    assert blob["downstream"]["name"] == "distilmos_authors"
    assert blob["upstream"]["kind"] == {"wavlm": "wavlm", "w2v2": "wav2vec2"}[backbone]
    # only WavLM Large's layer N is read before its encoder's final LayerNorm; Base files keep s3prl's keys
    assert blob["upstream"].get("last_layer_before_final_norm") is (True if variant == "wavlm_large" else None)


# ---- (b) the authors' scores -------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS)
def test_scores_equal_the_authors_forward_on_unpadded_input(releases, variant):
    reference, _, path = releases[variant]
    weights = entmax15(reference.weighted_sum.layer_logits.detach())
    assert (weights > 0).sum() >= 2 and len(set(weights.tolist())) > 1  # the layer offset would show
    waves = _waves()
    expected = [float(reference.score([w])) for w in waves]
    predictor = load(path, device="cpu")
    got = predictor.predict(wav=[w.numpy() for w in waves], sr=16000)  # one padded batch
    assert got == pytest.approx(expected, abs=TOL)
    assert len(set(round(e, 3) for e in expected)) == 3


@pytest.mark.parametrize("variant", VARIANTS)
def test_batches_give_scores_alone_where_the_authors_batches_move_them(releases, variant):
    reference, _, path = releases[variant]
    waves = _waves(1)
    alone = [float(reference.score([w])) for w in waves]
    theirs = reference.score(waves).tolist()
    assert max(abs(a - b) for a, b in zip(alone, theirs)) > 1e-3  # their padding rules move scores
    predictor = load(path, device="cpu", batch_size=8)
    assert len(predictor.plan([len(w) for w in waves])[1]) == 1  # one batch, padded
    assert predictor.predict(wav=[w.numpy() for w in waves], sr=16000) == pytest.approx(alone, abs=TOL)


def test_wavlm_large_layer_n_is_read_before_the_final_layer_norm(releases, tmp_path):
    """Their WavLM loop keeps layer N before a layer_norm_first encoder's final LayerNorm: the same file
    reading s3prl's encoder output instead (the entry's key removed) scores otherwise."""
    from distilmos.predictor.fileformat import write_predictor

    reference, _, path = releases["wavlm_large"]
    assert float(entmax15(reference.weighted_sum.layer_logits.detach())[-1]) > 0.1  # layer N counts
    blob = read_predictor(path)
    assert blob["card"]["featurizer"]["last_layer"].startswith("before the encoder's final LayerNorm")
    assert read_predictor(releases["w2v2_large"][2])["card"]["featurizer"]["last_layer"].startswith("after")
    del blob["upstream"]["last_layer_before_final_norm"]
    write_predictor(blob, str(tmp_path / "after_norm.pt"))
    waves = _waves()
    expected = [float(reference.score([w])) for w in waves]
    after_norm = load(str(tmp_path / "after_norm.pt"), device="cpu").predict(wav=[w.numpy() for w in waves], sr=16000)
    assert max(abs(a - e) for a, e in zip(after_norm, expected)) > 100 * TOL


def test_head_with_strides_equals_the_authors_head(tmp_path):
    cfg = model_cfg("wavlm", downsample_strides=[2, 1, 3], downsample_kernels=[5, 3, 3])
    reference = build_reference("wavlm", cfg, seed=3)
    folder = write_release(str(tmp_path), "wavlm", reference, cfg)
    path = str(tmp_path / "strided.pt")
    import_authors(folder, "wavlm", path)
    waves = _waves(2, (16000, 12345, 7000))
    predictor = load(path, device="cpu")
    assert predictor.predict(wav=[w.numpy() for w in waves], sr=16000) == pytest.approx(
        [float(reference.score([w])) for w in waves], abs=TOL
    )


# ---- (c) a wav file, through the command line --------------------------------------------------------------
def test_wav_file_scores_as_the_authors_predict_reads_it(releases, tmp_path, capsys):
    reference, _, path = releases["wavlm"]
    generator = np.random.default_rng(0)
    stereo = (0.1 * generator.standard_normal((30000, 2))).astype(np.float32)
    wav = tmp_path / "a.wav"
    sf.write(wav, stereo, 22050, subtype="PCM_16")
    samples, sr = sf.read(str(wav), dtype="float32")  # their _load_wav: mean of channels, torchaudio resample
    expected = float(reference.score([AF.resample(torch.from_numpy(samples).mean(dim=1), sr, 16000)]))
    out = tmp_path / "scores.csv"
    assert cli_main(["score", path, str(wav), "-o", str(out), "-q"]) == 0
    with open(out) as handle:
        row = next(csv.DictReader(handle))
    assert float(row["pred"]) == pytest.approx(expected, abs=2e-6)


def test_import_command_and_model_card(releases, tmp_path, capsys):
    from distilmos.fileio import sha256_file

    _, folder, _ = releases["w2v2"]
    out = tmp_path / "w2v2.pt"
    assert cli_main(["import", "--source", folder, "--backbone", "w2v2", "-o", str(out)]) == 0
    assert "w2v2/model.pth.tar" in capsys.readouterr().err
    card = read_predictor(str(out))["card"]
    checkpoint = os.path.join(folder, "model.pth.tar")
    assert card["source"]["repo"] == "https://huggingface.co/BaleYang/DistilMOS"
    assert card["source"]["checkpoint"]["file"] == "w2v2/model.pth.tar"
    assert card["source"]["checkpoint"]["sha256"] == sha256_file(checkpoint)
    assert card["source"]["config"]["sha256"] == sha256_file(os.path.join(folder, "model_cfg.yaml"))
    assert len(card["differences_from_paper"]) == 5 and "padding" in card["batching"]
    assert card["featurizer"]["layers"] == "1..3" and sum(card["featurizer"]["layer_weights"]) == pytest.approx(1)
    assert card["featurizer"]["last_layer"].startswith("the last transformer layer's output")  # Base: no final LN
    dropped = card["downstream"]["dropped"]["modules"]
    assert dropped == ["decoder.batch_norm", "predictors", "weighted_sum.layer_weights"]
    # the two files named one by one give the same network
    again = tmp_path / "again.pt"
    assert (
        cli_main(
            [
                "import",
                "--source",
                checkpoint,
                os.path.join(folder, "model_cfg.yaml"),
                "--backbone",
                "w2v2",
                "-o",
                str(again),
            ]
        )
        == 0
    )
    first, second = read_predictor(str(out)), read_predictor(str(again))
    for section in ("upstream", "featurizer", "downstream"):
        _assert_same(first[section], second[section])
    assert cli_main(["info", str(out)]) == 0
    assert "BaleYang/DistilMOS" in capsys.readouterr().out


def _assert_same(a, b):
    assert type(a) is type(b)
    if isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            _assert_same(a[key], b[key])
    elif torch.is_tensor(a):
        assert torch.equal(a, b)
    else:
        assert a == b


# ---- (d) bad inputs ----------------------------------------------------------------------------------------
def _bad_release(tmp_path, edit_state=None, edit_cfg=None):
    """A tiny WavLM release with one thing broken."""
    cfg = model_cfg("wavlm")
    reference = build_reference("wavlm", cfg)
    state = reference.state_dict()
    if edit_state:
        edit_state(state)
    if edit_cfg:
        edit_cfg(cfg)
    folder = tmp_path / "wavlm"
    folder.mkdir(exist_ok=True)
    torch.save({"state_dict": state}, folder / "model.pth.tar")
    (folder / "model_cfg.yaml").write_text(yaml.safe_dump(cfg))
    return str(folder)


@pytest.mark.parametrize(
    "case,expected",
    [
        ("missing", "1 missing (decoder.cnn.weight)"),
        ("shape", "of another shape (weighted_sum.out_proj.weight (64, 32) (expected (64, 64))"),
        ("hidden_dim", "of another shape (feature_processor.proj_in.weight (16, 64, 1) (expected (32, 64, 1))"),
        ("unexpected", "1 unexpected (extra.weight)"),
        ("text", "not a checkpoint that loads safely"),
        ("pickle", "not a checkpoint that loads safely"),
        ("no_state", "holds no state dict"),
        ("backbone", "use --backbone wavlm"),
        ("yaml", "not a readable YAML file"),
        ("kernels", "downsample_kernels must be odd"),
    ],
)
def test_bad_inputs_give_one_error_naming_the_file(tmp_path, capsys, case, expected):
    edits = {
        "missing": dict(edit_state=lambda s: s.pop("decoder.cnn.weight")),
        "shape": dict(edit_state=lambda s: s.update({"weighted_sum.out_proj.weight": torch.zeros(64, 32)})),
        "hidden_dim": dict(edit_cfg=lambda c: c.update(hidden_dim=32)),
        "unexpected": dict(edit_state=lambda s: s.update({"extra.weight": torch.zeros(1)})),
        "kernels": dict(edit_cfg=lambda c: c.update(downsample_kernels=[4, 3, 3])),
    }
    folder = _bad_release(tmp_path, **edits.get(case, {}))
    checkpoint, config = os.path.join(folder, "model.pth.tar"), os.path.join(folder, "model_cfg.yaml")
    named = config if case in ("yaml", "kernels") else checkpoint
    if case == "text":
        with open(checkpoint, "w") as handle:
            handle.write("not a checkpoint\n")
    elif case == "pickle":
        # a class no weights-only load allows (argparse.Namespace may be allowed process-wide by a runner)
        torch.save({"model": {}, "args": fractions.Fraction(1, 3)}, checkpoint)
    elif case == "no_state":
        torch.save({"model": {"epoch": 3}}, checkpoint)
    elif case == "yaml":
        with open(config, "w") as handle:
            handle.write("hidden_dim: [1,\n")
    backbone = "w2v2" if case == "backbone" else "wavlm"
    out = tmp_path / "out.pt"
    assert cli_main(["import", "--source", folder, "--backbone", backbone, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"distilmos-predict: error: {named}:") and expected in err, err
    assert not out.exists()


def test_missing_files_say_how_to_download(tmp_path):
    with pytest.raises(AuthorsImportError, match="neither model.pth.tar nor wavlm/model.pth.tar.*huggingface-cli"):
        import_authors(str(tmp_path), "wavlm", str(tmp_path / "x.pt"))
    (tmp_path / "wavlm").mkdir()
    torch.save({}, tmp_path / "wavlm" / "model.pth.tar")
    with pytest.raises(AuthorsImportError, match=r"model_cfg.yaml: no such file"):
        import_authors(str(tmp_path), "wavlm", str(tmp_path / "x.pt"))


def test_backbones_s3prl_cannot_express_are_refused_by_config_file(tmp_path):
    cfg = model_cfg("w2v2")
    cfg["w2v2_cfg"]["add_adapter"] = True
    folder = tmp_path / "w2v2"
    folder.mkdir()
    torch.save({"linear.bias": torch.zeros(1)}, folder / "model.pth.tar")
    (folder / "model_cfg.yaml").write_text(yaml.safe_dump(cfg))
    expected = "w2v2_cfg cannot be expressed as s3prl's wav2vec 2.0: add_adapter"
    with pytest.raises(AuthorsImportError, match=f"^{folder / 'model_cfg.yaml'}: {expected}"):
        import_authors(str(folder), "w2v2", str(tmp_path / "x.pt"))


# ---- the parts -------------------------------------------------------------------------------------------
def _bisection_entmax64(z):
    """1.5-entmax by bisection to float64 precision: the threshold tau with sum((z/2 - tau)_+^2) = 1."""
    x = z.double() / 2
    lo, hi = float(x.max()) - 1, float(x.max())
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if float((x - mid).clamp_min(0).pow(2).sum()) >= 1 else (lo, mid)
    return (x - lo).clamp_min(0).pow(2)


@pytest.mark.parametrize("seed", range(6))
def test_entmax15_equals_bisection(seed):
    generator = torch.Generator().manual_seed(seed)
    for n in (1, 2, 3, 7, 25):
        for scale in (0.1, 1.0, 10.0):
            z = scale * torch.randn(n, generator=generator)
            p = entmax15(z)
            assert torch.allclose(p.double(), _bisection_entmax64(z), atol=1e-6)
            assert float(p.sum()) == pytest.approx(1, abs=1e-6)
            assert torch.allclose(entmax15(z + 3.0), p, atol=1e-6)


def test_entmax15_is_sparse_splits_ties_and_takes_any_dim():
    z = torch.tensor([[3.0, 0.0, -5.0, 3.0], [0.0, 0.0, 0.0, 0.0]])
    p = entmax15(z, dim=-1)
    assert torch.allclose(p, torch.tensor([[0.5, 0.0, 0.0, 0.5], [0.25] * 4]), atol=1e-6)
    assert p[0, 1] == 0 and p[0, 2] == 0  # exactly zero, not small
    assert torch.equal(entmax15(z.T, dim=0), p.T)


def _old_weight_norm_names(state):
    return {
        k.replace("parametrizations.weight.original0", "weight_g").replace(
            "parametrizations.weight.original1", "weight_v"
        ): v
        for k, v in state.items()
    }


@pytest.mark.parametrize("layout", ["base", "large"])
def test_hf_wav2vec2_in_s3prl_gives_the_same_hidden_states(tmp_path, layout):
    from s3prl.upstream.wav2vec2.hubconf import wav2vec2_local
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    large = layout == "large"  # LayerNorm front end with conv bias, pre-LN transformer
    config = Wav2Vec2Config(
        **W2V2_CFG,
        feat_extract_norm="layer" if large else "group",
        do_stable_layer_norm=large,
        conv_bias=large,
        mask_time_prob=0.0 if large else 0.05,
    )
    torch.manual_seed(0)
    hf = Wav2Vec2Model(config).eval()
    with torch.no_grad():
        for param in hf.parameters():
            param.add_(0.05 * torch.randn_like(param))
    state = hf.state_dict() if large else _old_weight_norm_names(hf.state_dict())  # both torch namings
    path = str(tmp_path / "w2v2.pt")
    torch.save(hf_wav2vec2.to_s3prl(state, config), path)
    s3prl_model = wav2vec2_local(ckpt=path).eval()
    wav = 0.1 * torch.randn(17123)
    last_layer = []
    hf.encoder.layers[-1].register_forward_hook(lambda module, args, output: last_layer.append(output[0]))
    with torch.no_grad():
        expected = hf(wav[None], output_hidden_states=True).hidden_states
        got = s3prl_model([wav])["hidden_states"]
    assert len(got) == len(expected) == 4
    for e, g in zip(expected, got):
        assert torch.allclose(e, g, atol=1e-5)
    # the pre-LN layout's last hidden state is layer N after the encoder's final LayerNorm in both libraries,
    # so the authors' hidden_states[1:] need no change (unlike their WavLM loop)
    with torch.no_grad():
        after_norm = hf.encoder.layer_norm(last_layer[0]) if large else last_layer[0]
    assert torch.allclose(expected[-1], after_norm, atol=1e-6)
    assert not large or not torch.allclose(expected[-1], last_layer[0], atol=1e-2)


def test_hf_wav2vec2_configs_fairseq_cannot_express_are_refused():
    from transformers import Wav2Vec2Config

    with pytest.raises(hf_wav2vec2.ConversionError, match="add_adapter.*hidden_act: swish"):
        hf_wav2vec2.model_cfg(Wav2Vec2Config(add_adapter=True, hidden_act="swish"))
    with pytest.raises(hf_wav2vec2.ConversionError, match="no feature projection"):
        hf_wav2vec2.model_cfg(Wav2Vec2Config(hidden_size=512))
    with pytest.raises(hf_wav2vec2.ConversionError, match="no place in s3prl's wav2vec 2.0: adapter.proj.weight"):
        hf_wav2vec2.model_weight({"adapter.proj.weight": torch.zeros(1)}, Wav2Vec2Config())


def test_s3prl_featurizers_keep_their_config_keys():
    from distilmos.predictor.pipeline import FeatureSelector

    assert set(FeatureSelector(n_layers=4).config()) == {
        "feature_selection",
        "layer_selection",
        "normalize",
        "downsample_rate",
        "output_dim",
        "n_layers",
    }
    with pytest.raises(ValueError, match="weighting 'sparsemax'"):
        FeatureSelector(n_layers=4, weighting="sparsemax")
