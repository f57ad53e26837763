"""The char model: Embedding -> stacked LSTM/GRU (dropout between) -> Dense logits."""

from __future__ import annotations


def build_model(vocab: int, embedding: int, units: int, layers: int, dropout: float, cell: str = "lstm", seed: int = 0):
    """A Keras model over int ids (batch, time) -> logits (batch, time, vocab).

    LSTM/GRU keep Keras' default activations and `recurrent_dropout=0`, the settings that run on the fused
    cuDNN kernel on a GPU, so a model trained on a GPU serves unchanged on a CPU.
    """
    import keras

    rnn = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[cell]
    inp = keras.Input(shape=(None,), dtype="int32", name="ids")
    x = keras.layers.Embedding(vocab, embedding, name="embedding")(inp)
    for i in range(layers):
        x = rnn(units, return_sequences=True, name=f"{cell}_{i}")(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout, seed=seed + i, name=f"dropout_{i}")(x)
    out = keras.layers.Dense(vocab, name="logits")(x)
    return keras.Model(inp, out, name="charlm")
