"""Readers (and one writer) for the file formats of KG-aware and sequential recommendation.

* :mod:`.table`: the validating delimited-text parser (:func:`read_table`) and
  :func:`file_sha256`;
* :mod:`.mkr`: MKR's raw and processed files (Last.FM, Book-Crossing, MovieLens-1M + Satori
  KG; Wang et al., WWW'19);
* :mod:`.recbole`: RecBole atomic files ``.inter`` / ``.kg`` / ``.link`` (read and write),
  ``.item`` / ``.user`` features (read);
* :mod:`.movielens`: MovieLens-100K's native files, MovieLens-1M's ``movies.dat`` /
  ``users.dat`` as features;
* :mod:`.amazon`: the S3-Rec Amazon sequences and item attributes;
* :mod:`.frames`: pandas DataFrames (a KG dataset from your own CSV files).

Every reader validates while it parses: a missing or empty file, a wrong separator, a line
with the wrong number of fields, a non-integer id, bad JSON or a bad label raises
:class:`~kgrec.data.dataset.DataError` naming the file, the 1-based line and the reason.
Every reader fills :attr:`Dataset.interactions` (the observed events, with ratings and
timestamps where the source has them).
"""

from kgrec.data.readers.amazon import read_amazon, read_item_attributes, read_sequences
from kgrec.data.readers.frames import from_dataframes
from kgrec.data.readers.mkr import MKR_FORMATS, RawFormat, read_mkr_final, read_mkr_raw
from kgrec.data.readers.movielens import (
    attach_ml1m_features,
    movie_features_ml1m,
    read_ml100k,
    user_features_ml1m,
)
from kgrec.data.readers.recbole import read_atomic_features, read_recbole, write_recbole
from kgrec.data.readers.table import file_sha256, read_table, read_text

__all__ = [
    "MKR_FORMATS",
    "RawFormat",
    "attach_ml1m_features",
    "file_sha256",
    "from_dataframes",
    "movie_features_ml1m",
    "read_amazon",
    "read_atomic_features",
    "read_item_attributes",
    "read_mkr_final",
    "read_mkr_raw",
    "read_ml100k",
    "read_recbole",
    "read_sequences",
    "read_table",
    "read_text",
    "user_features_ml1m",
    "write_recbole",
]
