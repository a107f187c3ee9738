"""kexp.decoding: the next-token rules (greedy, temperature, top-k, top-p) against their
definitions, and the batched loop: compiled once, seeded, causal windows read right."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from kexp.decoding import Decoder, next_tokens  # noqa: E402

LOGITS = np.log(np.array([[1e-9, 0.05, 0.1, 0.15, 0.3, 0.4]], np.float32))


def draws(n: int, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> np.ndarray:
    logits = np.repeat(LOGITS, n, axis=0)
    return next_tokens(tf.constant(logits), temperature, top_k, top_p,
                       tf.constant([7, 0])).numpy()


def test_greedy_and_its_limits_pick_the_most_likely_token():
    assert set(draws(50, temperature=0.0)) == {5}
    assert set(draws(50, top_k=1)) == {5}
    assert set(draws(50, top_p=0.01)) == {5}


def test_sampling_follows_the_softmax_and_top_k_and_top_p_cut_the_tail():
    n = 20000
    share = np.bincount(draws(n), minlength=6) / n
    np.testing.assert_allclose(share[1:], [0.05, 0.1, 0.15, 0.3, 0.4], atol=0.015)
    assert share[0] == 0  # the padding id is never drawn
    assert set(draws(2000, top_k=2)) == {4, 5}
    kept = np.bincount(draws(n, top_k=2), minlength=6)[4:] / n
    np.testing.assert_allclose(kept, [0.3 / 0.7, 0.4 / 0.7], atol=0.015)
    # nucleus 0.75: 0.4 + 0.3 reach 0.7 < 0.75, so 0.15 joins; 0.1 and 0.05 stay out
    assert set(draws(5000, top_p=0.75)) == {3, 4, 5}
    hot = np.bincount(draws(n, temperature=0.5), minlength=6)[1:] / n
    p = np.array([0.05, 0.1, 0.15, 0.3, 0.4]) ** 2
    np.testing.assert_allclose(hot, p / p.sum(), atol=0.015)


def copy_model(context: int, vocab: int) -> keras.Model:
    """A causal 'model' whose logits at position t say: the next token is token_t + 1."""
    ids = keras.Input((context,), dtype="int32")
    logits = keras.layers.Lambda(
        lambda x: 30.0 * tf.one_hot((x + 1) % vocab, vocab), output_shape=(context, vocab))(ids)
    return keras.Model(ids, logits)


def test_the_loop_reads_the_last_real_position_slides_the_window_and_traces_once():
    vocab, context = 50, 4
    decoder = Decoder(copy_model(context, vocab), context)
    out = decoder([3], n=2, length=10, temperature=0.0)
    assert out.ids.tolist() == [list(range(4, 14))] * 2  # past the window of 4 as well
    again = decoder([5, 6, 7, 8, 9, 10], n=2, length=3, temperature=1.0, top_k=5, top_p=0.9,
                    seed=4)
    assert again.ids.tolist() == [[11, 12, 13]] * 2
    rows = decoder(np.array([[2], [20]]), n=2, length=2, temperature=0.0)
    assert rows.ids.tolist() == [[3, 4], [21, 22]]
    assert decoder.traces == 1
    assert out.tokens_per_second > 0


def test_sampling_is_seeded():
    vocab, context = 12, 6
    ids = keras.Input((context,), dtype="int32")
    model = keras.Model(ids, keras.layers.Embedding(vocab, vocab)(ids))
    decoder = Decoder(model, context)
    a = decoder([1, 2], n=8, length=20, temperature=1.0, seed=3).ids
    b = decoder([1, 2], n=8, length=20, temperature=1.0, seed=3).ids
    c = decoder([1, 2], n=8, length=20, temperature=1.0, seed=4).ids
    assert (a == b).all() and (a != c).any()
    assert len({tuple(r) for r in a}) > 1  # the n samples of one call differ


# ---------------------------------------------------------------------------- beam search

START, END = 1, 2


def bigram_model(table: np.ndarray) -> keras.Model:
    """Logits at each position = log P(next | this token): a causal model whose most likely
    sequences can be found by enumeration."""
    ids = keras.Input((None,), dtype="int32")
    init = keras.initializers.Constant(np.log(table))
    return keras.Model(ids, keras.layers.Embedding(len(table), len(table),
                                                   embeddings_initializer=init)(ids))


def best_by_enumeration(table: np.ndarray, length: int, alpha: float) -> list[int]:
    """The sequence after START (ending at END or after `length` tokens) of the highest
    log-probability / ((5 + tokens) / 6) ** alpha, by trying them all."""
    best, best_score = None, -np.inf
    for n in range(1, length + 1):
        for seq in itertools.product(range(1, len(table)), repeat=n):
            if END in seq[:-1] or (n < length and seq[-1] != END):
                continue
            logp = sum(np.log(table[a, b]) for a, b in zip((START, *seq), seq, strict=False))
            score = logp / ((5 + n) / 6) ** alpha
            if score > best_score:
                best, best_score = list(seq), score
    return best


def test_beam_search_finds_the_likelier_sequence_greedy_decoding_misses():
    table = np.full((5, 5), 1e-9)
    table[START, 3:] = 0.6, 0.4        # greedy takes 3 (0.6) ...
    table[3, 3:] = 0.5, 0.5            # ... and then 0.5, 0.5: 0.15 in all
    table[4, END] = table[END, END] = 1.0  # 4 then END: 0.4
    decoder = Decoder(bigram_model(table / table.sum(1, keepdims=True)), 6)
    assert decoder([START], n=1, length=3, temperature=0.0).ids.tolist() == [[3, 3, 3]]
    found = decoder.beam([START], n=2, length=3, beam=2, length_penalty=0.0, end_id=END)
    assert found.ids.tolist() == [[4, END, 0]] * 2  # padding after END


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_a_wide_beam_is_exhaustive_search_and_beam_one_is_greedy(alpha):
    rng = np.random.default_rng(int(alpha))
    table = rng.dirichlet(np.full(5, 0.5), size=5)
    table[:, 0] = 1e-9  # padding is never written
    table /= table.sum(1, keepdims=True)
    # a window of 2 slides while 4 tokens are written
    decoder = Decoder(bigram_model(table), context=2)
    wide = decoder.beam([START], n=1, length=4, beam=100, length_penalty=alpha, end_id=END)
    expected = best_by_enumeration(table, 4, alpha)
    assert wide.ids[0, :len(expected)].tolist() == expected
    assert (wide.ids[0, len(expected):] == 0).all()
    greedy = decoder([START], n=3, length=4, temperature=0.0).ids
    np.testing.assert_array_equal(decoder.beam([START], n=3, length=4, beam=1).ids, greedy)
    with pytest.raises(ValueError, match="beam: 0 is not valid; expected an integer >= 1"):
        decoder.beam([START], beam=0)
    traces = decoder.traces
    decoder.beam([START], n=1, length=3, beam=7, length_penalty=0.3, end_id=END)
    assert decoder.traces == traces  # another beam, length or penalty: the same graph
