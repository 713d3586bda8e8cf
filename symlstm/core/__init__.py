"""Core: the Theano-style LSTM, readable alone. Read in this order: `cells` (step functions and
their equations), `model` (parameters, the scan graph, the loss, one step), `sampling` (the
sampling graphs), `xent` and `precision` (custom Ops with their own gradients), `optim` (symbolic
update pairs), `compiled` (the build_* helpers that call `pytensor.function`).

Imports only what lies below it (config, vocab, backend, errors): never corpus loading, decoding,
running, tools or the app.
"""
