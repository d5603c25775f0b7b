"""A synthetic KG-recommendation dataset with planted structure (kgrec's built-in default).

Generative story:

* ``n_topics`` latent topics. Every item has one topic and a popularity weight.
* Every user likes a few topics (a sparse Dirichlet preference) and clicks a handful of items,
  drawn with probability ∝ popularity * (preference of the item's topic + a little noise).
  Interactions are sparse: most items have only a few clicks, so collaborative signal alone
  is weak.
* An item's topic is its ``genre`` (``ds.item_features``); the KG reveals the topics:
  ``item -has_topic-> topic``, ``item -by-> creator`` (each creator works within one topic),
  ``item -tagged-> tag`` (tags mostly from the item's topic, some random), and a noise
  relation ``item -released_in-> year`` that carries no signal.

A KG-aware model can pool the sparse clicks of items that share KG neighbours and beats a
KG-blind one: KG-MF vs plain MF, see ``tests/test_e2e.py`` and ``benchmarks/``. Raw ids look
like real ones (``u17``, ``i42``, ``topic3``) and go through the same MKR conversion as the
real datasets. Every click is an observed event (:attr:`Dataset.interactions`) with a
distinct timestamp: a random global order drawn from a second generator, so the CTR rows
(and the dataset checksum) do not depend on it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from kgrec.data.convert import mkr_convert
from kgrec.data.dataset import Dataset

__all__ = ["SyntheticConfig", "make_synthetic"]


@dataclass
class SyntheticConfig:
    """Sizes and noise levels of the generator."""

    n_users: int = 1000
    n_items: int = 3000
    n_topics: int = 12
    n_creators: int = 150
    tags_per_topic: int = 4
    tags_per_item: int = 2
    tag_noise: float = 0.2
    topics_per_user: float = 0.3  # Dirichlet concentration: small = few favourite topics
    clicks_mean: float = 30.0
    clicks_min: int = 3
    click_noise: float = 0.02
    popularity_sigma: float = 1.0
    n_years: int = 20


def make_synthetic(*, seed: int = 0, name: str = "synthetic", **overrides) -> Dataset:
    """Generate the dataset (deterministic for a given ``seed`` and overrides)."""
    cfg = SyntheticConfig(**overrides)
    rng = np.random.default_rng(seed)
    n_u, n_i, n_t = cfg.n_users, cfg.n_items, cfg.n_topics

    topic = rng.integers(0, n_t, n_i)
    pop = rng.lognormal(0.0, cfg.popularity_sigma, n_i)
    pref = rng.dirichlet(np.full(n_t, cfg.topics_per_user), size=n_u)  # (U, T)
    affinity = (pref[:, topic] + cfg.click_noise / n_t) * pop  # (U, I)
    # Gumbel-top-k: k distinct items per user, drawn ∝ affinity without replacement
    n_clicks = np.maximum(rng.poisson(cfg.clicks_mean, n_u), cfg.clicks_min)
    keys = np.log(affinity) + rng.gumbel(size=affinity.shape)
    order = np.argsort(-keys, axis=1)
    mask = np.arange(n_i)[None, :] < n_clicks[:, None]
    users = np.repeat(np.arange(n_u), n_clicks)
    items = order[mask]

    # KG ---------------------------------------------------------------------------------
    item_ent = np.array([f"e:i{i}" for i in range(n_i)])
    creator_topic = rng.integers(0, n_t, cfg.n_creators)
    creators_of = [np.flatnonzero(creator_topic == t) for t in range(n_t)]
    creator = np.array(
        [rng.choice(c) if len(c) else rng.integers(cfg.n_creators) for c in
         (creators_of[t] for t in topic)]
    )
    tag_base = topic[:, None] * cfg.tags_per_topic
    tags = tag_base + rng.integers(0, cfg.tags_per_topic, (n_i, cfg.tags_per_item))
    noisy = rng.random((n_i, cfg.tags_per_item)) < cfg.tag_noise
    tags[noisy] = rng.integers(0, n_t * cfg.tags_per_topic, noisy.sum())
    year = rng.integers(0, cfg.n_years, n_i)

    heads = np.concatenate([
        item_ent, item_ent, np.repeat(item_ent, cfg.tags_per_item), item_ent
    ])
    rels = np.concatenate([
        np.full(n_i, "has_topic"), np.full(n_i, "by"),
        np.full(n_i * cfg.tags_per_item, "tagged"), np.full(n_i, "released_in"),
    ])
    tails = np.concatenate([
        np.char.add("e:topic", topic.astype(str)),
        np.char.add("e:creator", creator.astype(str)),
        np.char.add("e:tag", tags.reshape(-1).astype(str)),
        np.char.add("e:year", year.astype(str)),
    ])
    # drop duplicate triples (an item tagged twice with the same tag)
    trip = np.char.add(np.char.add(heads, "|"), np.char.add(rels, np.char.add("|", tails)))
    _, first = np.unique(trip, return_index=True)
    first.sort()

    ds = mkr_convert(
        name,
        users_raw=np.char.add("u", users.astype(str)),
        items_raw=np.char.add("i", items.astype(str)),
        positive=np.ones(len(users), dtype=bool),
        item_raw_ids=np.char.add("i", np.arange(n_i).astype(str)),
        item_entity_raw=item_ent,
        heads=heads[first],
        relations=rels[first],
        tails=tails[first],
        seed=seed,
        timestamp=np.random.default_rng([seed, 1]).permutation(len(users)),
    )
    # the topic is also a "genre" field (as MovieLens has genres): categories for the
    # diversity metrics and the category views of M2GRL
    from kgrec.data.features import FeatureTable

    raw = ds.item_ids.astype(str)
    k = np.char.replace(raw, "i", "").astype(np.int64)
    ds.item_features = FeatureTable(ds.n_items).add(
        "genre", np.arange(ds.n_items), np.char.add("topic", topic[k].astype(str)), multi=False)
    ds.meta.update({"generator": "kgrec.data.synthetic", "config": asdict(cfg),
                    "timestamps": "random order"})
    ds.source_checksums = {"synthetic": f"generated(seed={seed})"}
    return ds
