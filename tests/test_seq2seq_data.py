"""data=parallel_text: tab-separated pairs, splits by distinct source sentence, both
vocabularies, the teacher-forcing batches and their padding weights, and bad files in one
line."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import numpy as np
import pytest

from kexp.errors import KexpError
from tests.conftest import compose_train


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


ANKI = ["Go.\tVa !\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272",
        "Run!\tCours !\tCC-BY 2.0", "Run!\tCourez !\tCC-BY 2.0", "Wow!\tÇa alors !\tCC-BY 2.0",
        "Fire!\tAu feu !\tCC-BY 2.0", "Help!\tÀ l'aide !\tCC-BY 2.0",
        "Jump.\tSaute.\tCC-BY 2.0", "Stop!\tÇa suffit !\tCC-BY 2.0",
        "Stop!\tStop !\tCC-BY 2.0", "Stop!\tArrête-toi !\tCC-BY 2.0"]


def load(path: Path, *overrides: str, batch: int = 4):
    from kexp.data import load as load_data

    cfg = compose_train(["task=seq2seq", f"data.path={path}", *overrides])
    return load_data(cfg.data, batch, seed=0)


def test_extra_columns_are_ignored_and_reverse_swaps_the_sides(tmp_path):
    from kexp.data.sources.parallel_text import read_pairs

    path = write(tmp_path / "fra.txt", ANKI)
    pairs = read_pairs(path)
    assert pairs[0] == ("Go.", "Va !") and len(pairs) == len(ANKI)
    assert read_pairs(path, reverse=True)[1] == ("Cours !", "Run!")


def test_no_source_sentence_is_in_two_splits():
    from kexp.data.sources.parallel_text import split_by_source

    rng = np.random.default_rng(0)
    pairs = [(f"s{i % 40}", f"t{i}") for i in rng.permutation(400)]  # 10 targets per source
    train, val, test = split_by_source(pairs, 0.1, 0.1, seed=3)
    sources = [{s for s, _ in split} for split in (train, val, test)]
    assert not (sources[0] & sources[1] or sources[0] & sources[2] or sources[1] & sources[2])
    assert (len(sources[1]), len(sources[2])) == (4, 4)
    assert len(train) + len(val) + len(test) == 400  # every pair goes with its source
    again = split_by_source(pairs, 0.1, 0.1, seed=3)
    assert again == (train, val, test)


def test_batches_teach_with_the_target_behind_a_start_token(tmp_path):
    from kexp.data.pairs import END_ID, START_ID

    rng = np.random.default_rng(0)
    sources = [" ".join(rng.choice(list("abcd"), rng.integers(1, 5))) for _ in range(80)]
    lines = [f"{s}\t{' '.join(reversed(s.split()))}." for s in sources]
    data = load(write(tmp_path / "p.tsv", lines), "data.val_fraction=0.2",
                "data.test_fraction=0.2")
    spec, translation = data.spec, data.tokenizer
    assert spec.input_shape == (4,) and spec.target_shape == (6,)  # longest target 5 + 1
    (source, decoder_in), decoder_out, weight = next(iter(data.test))
    source, decoder_in, decoder_out, weight = (np.asarray(t) for t in
                                               (source, decoder_in, decoder_out, weight))
    first_source, first_target = data.pairs["test"][0]
    assert translation.source.decode(source[0]) == first_source
    n = len(translation.target.encode(first_target))
    assert decoder_in[0, 0] == START_ID and decoder_out[0, n] == END_ID
    np.testing.assert_array_equal(decoder_in[0, 1:n + 1], decoder_out[0, :n])
    assert translation.decode_target(decoder_out[0]) == first_target
    np.testing.assert_array_equal(weight, (decoder_out != 0).astype(np.float32))
    assert spec.num_tokens[2] == int(sum(w.sum() for _, _, w in data.test.as_numpy_iterator()))


def test_nfc_lowercase_and_the_saved_vocabularies_round_trip(tmp_path):
    from kexp.data.pairs import Translation

    decomposed = unicodedata.normalize("NFD", "Été")
    lines = [f"summer {i}\t{decomposed} {i}" for i in range(30)]
    data = load(write(tmp_path / "p.tsv", lines))
    assert "été" in data.tokenizer.target.tokens  # composed, then lowercased
    data.tokenizer.save(tmp_path)
    loaded = Translation.load(tmp_path)
    assert loaded.target == data.tokenizer.target and loaded.source == data.tokenizer.source
    assert loaded.encode_source("Summer 3") == data.tokenizer.encode_source("summer 3")


def test_pairs_longer_than_max_length_are_left_out_and_a_long_source_is_refused(tmp_path):
    lines = [f"w{i} w{i}\tv{i}" for i in range(40)] + ["a b c d e f g\tshort"] * 3
    data = load(write(tmp_path / "p.tsv", lines), "data.max_length=4")
    assert data.spec.input_shape == (2,)
    with pytest.raises(KexpError, match=r"^text: 7 word tokens, longer than the 2"):
        data.tokenizer.encode_source("a b c d e f g")


@pytest.mark.parametrize(("lines", "match"), [
    (["no tab here"], r"line 1 has no tab"),
    (["ok\tfine", "\tmissing"], r"line 2 has an empty source"),
    ([], r"is empty"),
])
def test_bad_files_are_one_line_errors(tmp_path, lines, match):
    path = tmp_path / "bad.tsv"
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(KexpError, match=match) as caught:
        load(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_a_non_utf8_file_names_the_byte_offset(tmp_path):
    path = tmp_path / "latin1.tsv"
    path.write_bytes("Go.\tVa !\nsummer\tété\n".encode("latin-1"))
    with pytest.raises(KexpError, match=r"byte 0xe9 at offset 16"):
        load(path)


def test_decoded_words_rejoin_apostrophes_and_hyphens_as_the_references_write_them():
    from kexp.data.tokenizer import Tokenizer

    tok = Tokenizer.fit("j'ai vu l'aide, montre-moi !", "word")
    assert tok.decode(tok.encode("j'ai vu l'aide, montre-moi")) == "j'ai vu l'aide, montre-moi"


# ------------------------------------------------------------------ TFDS translation sets


def test_a_tfds_translation_set_keeps_its_splits_and_languages():
    import tensorflow_datasets as tfds

    from kexp.data import load as load_data
    from kexp.data.sources.tfds_translation import load_raw

    cfg = compose_train(["task=seq2seq", "data=ted_hrlr_translate", "data.max_length=64",
                         "data.tokens=char"])
    with tfds.testing.mock_data(num_examples=6):  # random text in the pt and en features
        raw = load_raw(cfg.data, 0)
        bundle = load_data(cfg.data, 4, 0)
        reverse = load_raw(compose_train(["task=seq2seq", "data=ted_hrlr_translate",
                                          "data.reverse=true", "data.max_pairs=2"]).data, 0)
    assert raw.version and (len(raw.train), len(raw.val), len(raw.test)) == (6, 6, 6)
    assert bundle.spec.num_train + bundle.spec.num_val + bundle.spec.num_test > 0
    assert bundle.spec.target_vocab_size > 4 and bundle.tokenizer.target.unit == "char"
    assert [(t, s) for s, t in raw.train[:2]] == reverse.train  # the first two, swapped


def test_a_language_the_set_lacks_is_one_line():
    import tensorflow_datasets as tfds

    from kexp.data.sources.tfds_translation import load_raw

    cfg = compose_train(["task=seq2seq", "data=ted_hrlr_translate",
                         "data.target_language=fr"])
    with tfds.testing.mock_data(num_examples=2), pytest.raises(
            KexpError, match=r"^data.target_language: 'fr' is not a language of "
                             r"'ted_hrlr_translate/pt_to_en'; expected one of pt, en$"):
        load_raw(cfg.data, 0)
