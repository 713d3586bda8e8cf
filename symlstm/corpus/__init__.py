"""Corpus: poems from files to batches: `loading` (reading, filtering, splits, the HDF5 cache),
`batching` (buckets, masks, stream windows), `fetch` (`make data`), `novelty` (what a sample shares
with the training poems)."""
