"""Where an encoder-decoder looked: the attention weights of its decoder over the source for
a few test translations, drawn as one heatmap per example (attention.png in the run).

The layer is found by name, as the builders name it: rnn_seq2seq's "attention" (Bahdanau or
Luong), transformer_seq2seq's last "..._cross_attention" (its heads averaged). Its weights
are not an output of the trained model, so the layer is called once more on the inputs it
had inside the model (a sub-model gives them, masks included) with
`return_attention_scores=True`: the same weights the forward pass used, with no change to
the model a run saves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kexp.data.pairs import START_ID, Translation

PICTURE_FILE = "attention.png"


def attention_layer(model: Any) -> Any | None:
    """The decoder's attention over the source, or None (attention=none)."""
    found = [layer for layer in model.layers
             if layer.name == "attention" or layer.name.endswith("_cross_attention")]
    return found[-1] if found else None


def attention_weights(model: Any, source_ids: np.ndarray, decoder_ids: np.ndarray
                      ) -> np.ndarray | None:
    """(n, target steps, source steps) weights of the decoder input `decoder_ids` ([START]
    and the tokens written so far) reading `source_ids`; each row sums to 1 over the real
    source steps. None: the model has no attention."""
    import keras

    layer = attention_layer(model)
    if layer is None:
        return None
    arguments = layer._inbound_nodes[0].arguments  # what the layer was called on in the model
    tensors = list(arguments.keras_tensors)
    values = keras.Model(model.inputs, tensors)([source_ids, decoder_ids], training=False)
    args, kwargs = arguments.fill_in({id(t): v for t, v in zip(tensors, values, strict=True)})
    _, scores = layer(*args, **kwargs, return_attention_scores=True, training=False)
    scores = keras.ops.convert_to_numpy(scores)
    return scores.mean(axis=1) if scores.ndim == 4 else scores  # heads averaged


def draw(model: Any, translation: Translation, sources: list[str], hypotheses: list[str],
         out: Path) -> Path | None:
    """attention.png: for each source and its translation, which source token (columns) the
    decoder weighed as it wrote each target token (rows, the last one [END])."""
    from kexp.plotting import pyplot

    src = np.asarray([translation.encode_source(s) for s in sources], np.int32)
    written = [translation.target.encode(translation.prepare(h))[:translation.target_length - 1]
               for h in hypotheses]
    dec = np.zeros((len(sources), translation.target_length), np.int32)
    for row, ids in enumerate(written):
        dec[row, :len(ids) + 1] = [START_ID, *ids]
    weights = attention_weights(model, src, dec)
    if weights is None:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(sources), figsize=(4.5 * len(sources), 4.5), squeeze=False)
    for ax, ids, out_ids, w in zip(axes[0], src, written, weights, strict=True):
        columns = [translation.source.tokens[i] for i in ids if i != 0]
        rows = [translation.target.tokens[i] for i in out_ids] + ["[END]"]
        ax.imshow(w[:len(rows), :len(columns)], cmap="viridis", vmin=0, vmax=1)
        ax.set_xticks(range(len(columns)), columns, rotation=90)
        ax.set_yticks(range(len(rows)), rows)
    fig.suptitle("decoder attention over the source (rows: tokens written)")
    fig.tight_layout()
    path = out / PICTURE_FILE
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
