"""Headlines: a char seq2seq whose beam search runs in its graph."""
