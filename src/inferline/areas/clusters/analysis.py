"""Density clustering of chunk vectors: HDBSCAN (scikit-learn) for clusters, again inside each cluster for
sub-clusters; members ranked by centrality; a 2-D PCA map of every chunk for the graph.

Vectors are unit length, so Euclidean distance orders pairs as cosine similarity does. Above 2,000 chunks they
are first projected on their 32 principal components (PCA), which keeps the distances between topics and lets
HDBSCAN's trees work (20,000 chunks of 384 dimensions: about 25 s instead of 8 minutes on 2 cores); below, the
full vectors cluster a little better (bench/bench_clusters.py, single sentences). `min_samples` is
kept small (2): `min_cluster_size` alone decides what qualifies as a cluster, and fewer chunks are left as
noise than with HDBSCAN's default (`min_samples = min_cluster_size`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MIN_SAMPLES = 2
PCA_DIMS, PCA_ABOVE = 32, 2000


@dataclass
class Group:
    """A cluster or sub-cluster: its id, its members (row indexes) most central first, its children."""

    cluster_id: str
    members: list[int]
    subclusters: list[Group] = field(default_factory=list)


@dataclass
class Clustering:
    """Top-level clusters (largest first), and each chunk's position on the 2-D map."""

    clusters: list[Group]
    xy: np.ndarray


def density_labels(vectors: np.ndarray, min_cluster_size: int) -> np.ndarray:
    """HDBSCAN labels (-1: noise) of the rows of `vectors`; all noise when there are too few rows."""
    if len(vectors) < max(min_cluster_size, MIN_SAMPLES + 1):
        return np.full(len(vectors), -1, dtype=np.int64)
    from sklearn.cluster import HDBSCAN

    model = HDBSCAN(min_cluster_size=min_cluster_size, min_samples=MIN_SAMPLES, copy=True)
    points = project(vectors, PCA_DIMS) if len(vectors) > PCA_ABOVE else vectors
    return np.asarray(model.fit_predict(points), dtype=np.int64)


def by_centrality(vectors: np.ndarray, members: np.ndarray) -> list[int]:
    """`members` sorted by cosine similarity to their mean direction, most central first."""
    centre = vectors[members].mean(axis=0)
    scores = vectors[members] @ centre
    return [int(members[i]) for i in np.argsort(-scores, kind="stable")]


def _groups(vectors: np.ndarray, rows: np.ndarray, labels: np.ndarray, prefix: str) -> list[Group]:
    found = [rows[labels == label] for label in np.unique(labels) if label >= 0]
    found.sort(key=lambda members: (-len(members), int(members.min())))
    return [Group(f"{prefix}{n}", by_centrality(vectors, m)) for n, m in enumerate(found)]


def project(vectors: np.ndarray, dims: int) -> np.ndarray:
    """The rows' coordinates on their first `dims` principal components (PCA by SVD), zero-padded."""
    out = np.zeros((len(vectors), dims), dtype=np.float64)
    if len(vectors) < 2:
        return out
    centred = vectors.astype(np.float64) - vectors.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    components = vt[:dims]
    out[:, : len(components)] = centred @ components.T
    return out


def project_2d(vectors: np.ndarray) -> np.ndarray:
    """The rows' positions on a 2-D map: their two principal components."""
    return project(vectors, 2)


def cluster(vectors: np.ndarray, min_cluster_size: int, min_subcluster_size: int) -> Clustering:
    """Clusters of the rows of `vectors`, and sub-clusters inside each cluster large enough to hold two."""
    rows = np.arange(len(vectors))
    clusters = _groups(vectors, rows, density_labels(vectors, min_cluster_size), "")
    for group in clusters:
        members = np.asarray(sorted(group.members))
        if len(members) >= 2 * min_subcluster_size:
            labels = density_labels(vectors[members], min_subcluster_size)
            subclusters = _groups(vectors, members, labels, f"{group.cluster_id}.")
            group.subclusters = subclusters if len(subclusters) >= 2 else []
    return Clustering(clusters, project_2d(vectors))
