"""Backend: the process and the machine under the model: `machine` (this CPU, the JAX cache and
what symlstm measured here), `runtime` (backends, the allocator, JAX's patches), `devices`
(data-parallel placement)."""
