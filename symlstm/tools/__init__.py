"""Tools: instruments for the model: `gradcheck` (symbolic against numeric gradients), `gradflow`
(how far gradients reach back), `graphinfo` (the compiled graph), `bench` (speed against
PyTorch), `torch_reference` (the same recipe trained in PyTorch)."""
