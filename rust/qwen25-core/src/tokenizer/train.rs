//! Training a byte-level BPE vocabulary (see `train_bpe`).
