//! (being written) key=value tokenizer.
