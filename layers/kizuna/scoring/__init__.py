"""Daily scoring: RFM scores and segments (:mod:`.rfm`) and the job that writes them
(:mod:`.job`)."""
