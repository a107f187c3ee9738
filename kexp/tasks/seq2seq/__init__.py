"""`task=seq2seq`: translate a source sequence into a target one (kexp.tasks.seq2seq.task)
with an encoder-decoder (model=rnn_seq2seq, transformer_seq2seq), judged by masked
cross-entropy and token accuracy while training and by sacreBLEU's BLEU and chrF of the
decoded test split (kexp.tasks.seq2seq.translation; `python -m kexp.translate`)."""

from kexp.tasks.seq2seq.task import Seq2Seq

__all__ = ["Seq2Seq"]
