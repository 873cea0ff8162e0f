"""Named entities: a character tagger with a CRF, decoded (Viterbi and marginals) in its graph."""
