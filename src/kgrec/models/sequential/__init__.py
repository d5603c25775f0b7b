"""Sequential recall: models that encode a user's item history into one vector or several
interest vectors (YouTubeDNN, GRU4Rec, SASRec, MIND, ComiRec-DR, ComiRec-SA)."""
