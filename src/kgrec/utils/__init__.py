"""Small shared helpers: the one atomic write (:mod:`kgrec.utils.io`)."""
