"""One router per concern: health, the model catalogue, and one per task."""
