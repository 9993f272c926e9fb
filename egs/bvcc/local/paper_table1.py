"""Table 1 of Yang et al., "DistilMOS", ICASSP 2026: BVCC (in-domain) and SOMOS (zero-shot) results.

``PAPER_TABLE1[(backbone, model)]`` maps column names (``bvcc_utt_LCC`` ... ``somos_utt_MSE``) to the
published values, exactly as printed.
"""

BACKBONES = {
    # paper name -> s3prl hub name
    "Wav2Vec2 Base": "wav2vec2_base_960",
    "WavLM Base": "wavlm_base",
    "WavLM Base+": "wavlm_base_plus",
    "WavLM Large": "wavlm_large",
}
# the paper's model rows, as printed (the toolkit's variants carry the same labels: distilmos.registry)
MODELS = ("SSL-MOS", "DistilMOS (ours)", "w/o token prediction", "MSE distillation")
COLUMNS = tuple(
    f"{prefix}_{metric}"
    for prefix in ("bvcc_utt", "bvcc_sys", "somos_utt")
    for metric in ("LCC", "SRCC", "KTAU", "MSE")
)

_ROWS = """
Wav2Vec2 Base|SSL-MOS|0.869 0.867 0.687 0.472 0.926 0.923 0.769 0.301 0.320 0.310 0.210 0.654
Wav2Vec2 Base|DistilMOS (ours)|0.884 0.883 0.711 0.186 0.934 0.934 0.782 0.098 0.344 0.318 0.217 0.960
Wav2Vec2 Base|w/o token prediction|0.872 0.871 0.695 0.231 0.928 0.927 0.774 0.143 0.316 0.305 0.207 1.403
Wav2Vec2 Base|MSE distillation|0.884 0.881 0.709 0.187 0.932 0.930 0.777 0.089 0.277 0.255 0.173 0.940
WavLM Base|SSL-MOS|0.869 0.870 0.694 0.354 0.917 0.916 0.763 0.210 0.353 0.336 0.230 0.973
WavLM Base|DistilMOS (ours)|0.886 0.884 0.712 0.190 0.931 0.928 0.778 0.087 0.396 0.375 0.257 1.051
WavLM Base|w/o token prediction|0.881 0.882 0.711 0.190 0.925 0.922 0.768 0.094 0.312 0.297 0.203 0.796
WavLM Base|MSE distillation|0.874 0.871 0.695 0.214 0.923 0.919 0.763 0.098 0.383 0.362 0.248 0.935
WavLM Base+|SSL-MOS|0.862 0.870 0.691 0.281 0.917 0.927 0.779 0.142 0.315 0.287 0.196 0.317
WavLM Base+|DistilMOS (ours)|0.885 0.885 0.713 0.191 0.936 0.932 0.782 0.083 0.396 0.370 0.253 0.998
WavLM Base+|w/o token prediction|0.879 0.878 0.705 0.193 0.931 0.927 0.775 0.090 0.320 0.297 0.202 0.748
WavLM Base+|MSE distillation|0.882 0.881 0.709 0.193 0.927 0.922 0.773 0.091 0.277 0.360 0.225 0.724
WavLM Large|SSL-MOS|0.884 0.881 0.708 0.195 0.934 0.930 0.784 0.104 0.197 0.188 0.127 1.829
WavLM Large|DistilMOS (ours)|0.891 0.889 0.720 0.188 0.939 0.936 0.791 0.105 0.404 0.387 0.264 0.965
WavLM Large|w/o token prediction|0.888 0.887 0.718 0.180 0.934 0.932 0.782 0.088 0.393 0.375 0.256 0.823
WavLM Large|MSE distillation|0.887 0.886 0.715 0.184 0.933 0.930 0.779 0.097 0.387 0.370 0.252 1.200
"""


def _parse(text):
    table = {}
    for line in text.strip().splitlines():
        backbone, model, values = line.split("|")
        numbers = [float(v) for v in values.split()]
        assert len(numbers) == len(COLUMNS), line
        table[(backbone, model)] = dict(zip(COLUMNS, numbers))
    return table


PAPER_TABLE1 = _parse(_ROWS)
