"""Reading comprehension: a DGCNN reader's spans → the answer to a question over passages."""
