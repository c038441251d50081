"""Training of the embedded models (``python -m interp train``): :mod:`.data` (prepared data, packing, masking),
:mod:`.tokenizer` (the shared WordPiece tokenizer), :mod:`.run` (models, training loop, evaluation, checkpoints),
:mod:`.pipeline` (the whole recipe) and :mod:`.cards` (model cards and the models/ README)."""
