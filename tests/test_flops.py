"""The FLOP counter of the run card, checked against published multiply-add counts."""

from __future__ import annotations

import keras
import pytest
from keras import layers

from kexp.models.flops import count_flops, count_macs


@pytest.mark.parametrize(("reference", "paper_macs", "source"), [
    ("VGG16", 15.5e9, "Simonyan & Zisserman 2014, commonly quoted 15.5 G"),
    ("ResNet50", 3.8e9, "He et al. 2016, Table 1: 3.8 x 10^9"),
    ("MobileNet", 569e6, "Howard et al. 2017, Table 1: 569 M mult-adds"),
    ("MobileNetV2", 300e6, "Sandler et al. 2018, Table 4: 300 M"),
])
def test_published_multiply_adds(reference, paper_macs, source):
    model = getattr(keras.applications, reference)(weights=None)  # 224x224x3, 1000 classes
    assert count_macs(model) == pytest.approx(paper_macs, rel=0.02), source


def test_every_weighted_layer_kind_counts_per_example():
    tokens = keras.Input((20,))
    x = layers.Embedding(100, 16)(tokens)  # a lookup: free
    x = layers.Bidirectional(layers.LSTM(8, return_sequences=True))(x)  # 16 features out
    x = layers.MultiHeadAttention(num_heads=2, key_dim=8)(x, x)
    x = layers.Conv1D(4, 3, padding="same")(x)
    x = layers.GlobalAveragePooling1D()(x)
    outputs = keras.Sequential([layers.Dense(5)])(x)  # a nested model counts too
    model = keras.Model(tokens, outputs)
    lstm = 2 * 20 * 4 * (16 * 8 + 8 * 8)  # two directions, 4 gates, 20 steps
    attention = 3 * 20 * 16 * 16 + 2 * 20 * 20 * 16 + 20 * 16 * 16  # q/k/v, scores+context, out
    conv = 20 * 3 * 16 * 4
    assert count_macs(model) == lstm + attention + conv + 4 * 5
    assert count_flops(model) == 2 * count_macs(model)


def test_a_shared_layer_counts_once_per_call():
    inputs = keras.Input((8,))
    dense = layers.Dense(8)
    model = keras.Model(inputs, dense(dense(inputs)))
    assert count_macs(model) == 2 * 8 * 8


def test_convolutions_count_at_their_output_resolution():
    inputs = keras.Input((32, 32, 3))
    x = layers.Conv2D(8, 3, strides=2, padding="same")(inputs)  # 16x16 out
    x = layers.DepthwiseConv2D(3, padding="same")(x)
    x = layers.SeparableConv2D(16, 3, strides=2, padding="same")(x)  # 8x8 out
    model = keras.Model(inputs, x)
    assert count_macs(model) == (16 * 16 * 27 * 8) + (16 * 16 * 9 * 8) + 8 * 8 * (9 * 8 + 8 * 16)
