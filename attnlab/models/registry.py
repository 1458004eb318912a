"""Where each saved ``model_type`` lives, so that :func:`attnlab.checkpoint.load_model` can rebuild it.

Values are ``"module:ClassName"`` strings, imported only when a checkpoint of that type is loaded.
"""

MODEL_TYPES: dict[str, str] = {
    "gpt": "attnlab.models.gpt:GPT",
    "rnn_lm": "attnlab.models.recurrent:RNNLM",
    "lstm_lm": "attnlab.models.recurrent:LSTMLM",
    "gru_lm": "attnlab.models.recurrent:GRULM",
    "seq2seq": "attnlab.models.seq2seq:Seq2Seq",
    "transformer": "attnlab.models.transformer:Transformer",
    "encoder": "attnlab.models.encoder:EncoderLM",
}
